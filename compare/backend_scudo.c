/* backend_scudo.c - LLVM's scudo (standalone), the hardened general-purpose
 * allocator of Android: malloc / free replaced by
 * libclang_rt.scudo_standalone from Debian's libclang-rt-14-dev (linked by
 * path with an rpath, so that it owns malloc as an LD_PRELOAD would), with
 * its default options (SCUDO_OPTIONS unset): checksummed chunk headers
 * (double and invalid frees abort), randomised placement within a size
 * class region, memory released back to the OS by its own policy. */
#include "compare.h"

#include <stdlib.h>

static void scudo_version(char *out, size_t len)
{
	/* scudo exports no version: the toolchain release it comes from. */
	snprintf(out, len, "scudo standalone (LLVM 14, libclang-rt-14-dev)");
}

const struct compare_backend compare_backend = {
	.name = "scudo",
	.what = "malloc / free replaced by LLVM's hardened scudo (standalone)",
	.malloc_owner = "libclang_rt.scudo_standalone",
	.alloc_name = "malloc",
	.alloc = malloc,
	.free = free,
	.realloc = realloc,
	.version = scudo_version,
	.capacity_note = "bounded by address space and memory only",
};
