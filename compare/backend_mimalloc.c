/* backend_mimalloc.c - Debian's mimalloc, which replaces malloc
 * process-wide (linked with -lmimalloc).  Its own RSS statistics are
 * estimates and are not used: page usage comes from /proc like for every
 * other backend. */
#include "compare.h"

#include <mimalloc.h>
#include <stdio.h>
#include <stdlib.h>

static void *mi_alloc(size_t size)
{
	void *p = malloc(size);

	if (p == NULL)
		compare_fail_call = "malloc";
	return p;
}

static void mi_release(void *ptr, size_t size)
{
	(void)size;
	free(ptr);
}

static void mi_ver(char *out, size_t len)
{
	int v = mi_version();

	snprintf(out, len, "mimalloc %d.%d.%d", v / 100, v / 10 % 10, v % 10);
}

const struct compare_backend compare_backend = {
	.name = "mimalloc",
	.malloc_owner = "libmimalloc",
	.alloc = mi_alloc,
	.release = mi_release,
	.version = mi_ver,
	.capacity_note = "bounded by address space and memory only",
};
