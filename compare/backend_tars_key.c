/* backend_tars_key.c - tars keys: tars_malloc_key gives every buffer a
 * guarded mapping of its own whose protection tars_protect_* can switch. */
#include "tars_common.h"

static void *k_alloc(size_t size)
{
	void *p = tars_malloc_key(size);

	if (p == NULL)
		compare_fail_call = "tars_malloc_key";
	return p;
}

static void k_release(void *ptr, size_t size)
{
	(void)size;
	tars_free(ptr);
}

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

const struct compare_backend compare_backend = {
	.name = "tars-key",
	.malloc_owner = "libc.so",
	.alloc = k_alloc,
	.release = k_release,
	.alloc_secret = k_alloc,
	.release_secret = k_release,
	.protect_none = k_none,
	.protect_read = k_read,
	.version = compare_tars_version,
	.counters = compare_tars_counters,
	.capacity_note = "one guarded mapping per key: bounded by vm.max_map_count",
};
