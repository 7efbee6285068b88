/* backend_tars.c - tars, chunk path: tars_malloc / tars_free with the
 * default options (or TARS_OPTIONS from the environment). */
#include "tars_common.h"

const struct compare_backend compare_backend = {
	.name = "tars",
	.what = "tars_malloc / tars_free (chunk path), default options",
	.malloc_owner = "libc.so",
	.alloc_name = "tars_malloc",
	.alloc = tars_malloc,
	.free = tars_free,
	.realloc = tars_realloc,
	COMPARE_TARS_COMMON,
	.capacity_note = "chunks share pages: bounded by memory (and mlock) only",
};
