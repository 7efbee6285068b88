/* backend_mimalloc.c - Debian's mimalloc, which replaces malloc
 * process-wide (linked with -lmimalloc).  Its own RSS statistics are
 * estimates and are not used: page usage comes from /proc like for every
 * other backend. */
#include "compare.h"

#include <mimalloc.h>
#include <stdlib.h>

static void mi_ver(char *out, size_t len)
{
	int v = mi_version();

	snprintf(out, len, "mimalloc %d.%d.%d", v / 100, v / 10 % 10, v % 10);
}

const struct compare_backend compare_backend = {
	.name = "mimalloc",
	.what = "malloc / free replaced by Debian's mimalloc",
	.malloc_owner = "libmimalloc",
	.alloc_name = "malloc",
	.alloc = malloc,
	.free = free,
	.realloc = realloc,
	.version = mi_ver,
	.capacity_note = "bounded by address space and memory only",
};
