/* backend_tars_key.c - tars keys: tars_malloc_key gives every buffer a
 * guarded mapping of its own whose protection tars_protect_* can switch. */
#include "tars_common.h"

static int k_none(void *ptr, size_t size)
{
	(void)size;
	return tars_protect_none(ptr);
}

static int k_read(void *ptr, size_t size)
{
	(void)size;
	return tars_protect_read(ptr);
}

static void k_release(void *ptr, size_t size)
{
	(void)size;
	tars_free(ptr);
}

const struct compare_backend compare_backend = {
	.name = "tars-key",
	.what = "tars_malloc_key / tars_free: a guarded mapping per buffer, "
	    "tars_protect_* toggles it",
	.malloc_owner = "libc.so",
	.alloc_name = "tars_malloc_key",
	.alloc = tars_malloc_key,
	.free = tars_free,
	.realloc = tars_realloc, /* a key stays a key */
	.alloc_secret = tars_malloc_key,
	.release_secret = k_release,
	.protect_none = k_none,
	.protect_read = k_read,
	COMPARE_TARS_COMMON,
	.capacity_note = "one guarded mapping per key: bounded by vm.max_map_count",
};
