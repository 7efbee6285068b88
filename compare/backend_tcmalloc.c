/* backend_tcmalloc.c - gperftools' tcmalloc (Debian libgoogle-perftools-dev),
 * which replaces malloc process-wide (linked with -ltcmalloc_minimal: the
 * allocator without the profiler). */
#include "compare.h"

#include <gperftools/tcmalloc.h>
#include <stdlib.h>

static void tcm_version(char *out, size_t len)
{
	int major, minor;
	const char *patch;

	snprintf(out, len, "%s", tc_version(&major, &minor, &patch));
}

const struct compare_backend compare_backend = {
	.name = "tcmalloc",
	.what = "malloc / free replaced by gperftools' tcmalloc (minimal)",
	.malloc_owner = "libtcmalloc",
	.alloc_name = "malloc",
	.alloc = malloc,
	.free = free,
	.realloc = realloc,
	.version = tcm_version,
	.capacity_note = "bounded by address space and memory only",
};
