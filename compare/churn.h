/* churn.h - the churn operation, shared by wl_churn.c and wl_threads.c
 * (each thread of the local variant churns its own slots). */
#ifndef COMPARE_CHURN_H
#define COMPARE_CHURN_H

#include "compare.h"

#define CHURN_STREAM 65536 /* pre-drawn (slot, size) pairs, reused cyclically */

struct churn_ctx {
	void **ptr;
	size_t *size;
	uint32_t *slot_stream;
	uint32_t *size_stream;
};

/* Free a pre-drawn slot, allocate a pre-drawn size into it, touch it. */
int churn_op(void *ctx, size_t i);

#endif
