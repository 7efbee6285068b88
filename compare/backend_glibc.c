/* backend_glibc.c - the C library's malloc (ptmalloc2). */
#include "compare.h"

#include <gnu/libc-version.h>
#include <stdio.h>
#include <stdlib.h>

static void *glibc_alloc(size_t size)
{
	void *p = malloc(size);

	if (p == NULL)
		compare_fail_call = "malloc";
	return p;
}

static void glibc_release(void *ptr, size_t size)
{
	(void)size;
	free(ptr);
}

static void glibc_version(char *out, size_t len)
{
	snprintf(out, len, "glibc %s", gnu_get_libc_version());
}

const struct compare_backend compare_backend = {
	.name = "glibc",
	.malloc_owner = "libc.so",
	.alloc = glibc_alloc,
	.release = glibc_release,
	.version = glibc_version,
	.capacity_note = "bounded by address space and memory only",
};
