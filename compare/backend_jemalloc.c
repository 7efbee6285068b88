/* backend_jemalloc.c - Debian's jemalloc, which replaces malloc
 * process-wide (linked with -ljemalloc). */
#include "compare.h"

#include <jemalloc/jemalloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *je_alloc(size_t size)
{
	void *p = malloc(size);

	if (p == NULL)
		compare_fail_call = "malloc";
	return p;
}

static void je_release(void *ptr, size_t size)
{
	(void)size;
	free(ptr);
}

static void je_version(char *out, size_t len)
{
	const char *v = NULL;
	size_t sz = sizeof v;

	if (mallctl("version", &v, &sz, NULL, 0) != 0 || v == NULL)
		v = "unknown";
	snprintf(out, len, "jemalloc %s", v);
}

const struct compare_backend compare_backend = {
	.name = "jemalloc",
	.malloc_owner = "libjemalloc",
	.alloc = je_alloc,
	.release = je_release,
	.version = je_version,
	.capacity_note = "bounded by address space and memory only",
};
