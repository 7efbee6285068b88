/* backend_tars.c - tars, chunk path: tars_malloc / tars_free with the
 * default options (or TARS_OPTIONS from the environment). */
#include "tars_common.h"

static void *t_alloc(size_t size)
{
	void *p = tars_malloc(size);

	if (p == NULL)
		compare_fail_call = "tars_malloc";
	return p;
}

static void t_release(void *ptr, size_t size)
{
	(void)size;
	tars_free(ptr);
}

const struct compare_backend compare_backend = {
	.name = "tars",
	.malloc_owner = "libc.so",
	.alloc = t_alloc,
	.release = t_release,
	.version = compare_tars_version,
	.counters = compare_tars_counters,
	.capacity_note = "chunks share pages: bounded by memory (and mlock) only",
};
