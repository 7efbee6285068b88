/* backend_tars_bare.c - tars with its protections off: junk=0, canary=0,
 * random=0, mlock=0, set before the first allocation.  Beside `tars` in
 * the same figures it shows what those protections cost; guard pages,
 * out-of-band metadata and wiping on free (zero) stay. */
#include "tars_common.h"

#include <errno.h>
#include <string.h>

static int bare_init(char *note, size_t len)
{
	static const char *const off[] = { "junk", "canary", "random", "mlock" };

	for (size_t i = 0; i < NELEM(off); i++)
		if (tars_option_set(off[i], 0) != 0) {
			snprintf(note, len, "tars_option_set(%s, 0): %s", off[i],
			    strerror(errno));
			return -1;
		}
	return 0;
}

const struct compare_backend compare_backend = {
	.name = "tars-bare",
	.what = "tars_malloc / tars_free with junk=0, canary=0, random=0, mlock=0",
	.malloc_owner = "libc.so",
	.alloc_name = "tars_malloc",
	.init = bare_init,
	.alloc = tars_malloc,
	.free = tars_free,
	.realloc = tars_realloc,
	COMPARE_TARS_COMMON,
	.capacity_note = "chunks share pages: bounded by memory only",
};
