/* backend_jemalloc.c - Debian's jemalloc, which replaces malloc
 * process-wide (linked with -ljemalloc). */
#include "compare.h"

#include <jemalloc/jemalloc.h>
#include <stdlib.h>

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
	.what = "malloc / free replaced by Debian's jemalloc",
	.malloc_owner = "libjemalloc",
	.alloc_name = "malloc",
	.alloc = malloc,
	.free = free,
	.realloc = realloc,
	.version = je_version,
	.capacity_note = "bounded by address space and memory only",
};
