/* backend_glibc.c - the C library's malloc (ptmalloc2). */
#include "compare.h"

#include <gnu/libc-version.h>
#include <stdlib.h>

static void glibc_version(char *out, size_t len)
{
	snprintf(out, len, "glibc %s", gnu_get_libc_version());
}

const struct compare_backend compare_backend = {
	.name = "glibc",
	.what = "malloc / free of the C library (ptmalloc2)",
	.malloc_owner = "libc.so",
	.alloc_name = "malloc",
	.alloc = malloc,
	.free = free,
	.realloc = realloc,
	.version = glibc_version,
	.capacity_note = "bounded by address space and memory only",
};
