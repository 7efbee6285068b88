/* backend_tars_key.c - tars keys: tars_malloc_key gives every buffer a
 * guarded slot of a shared key region whose protection tars_protect_* can
 * switch; in the capacity workload the secrets are tars_key containers,
 * closed at rest, as an application holding many keys keeps them. */
#include <string.h>

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

static void *k_alloc_closed(size_t size, unsigned char v)
{
	tars_buf *b = tars_buf_new(size);
	tars_key *k;

	if (b == NULL) {
		compare_fail_call = "tars_buf_new";
		return NULL;
	}
	memset(tars_buf_data(b), v, size);
	k = tars_key_new(b);
	if (k == NULL) {
		compare_fail_call = "tars_key_new";
		tars_buf_free(b);
	}
	return k;
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
	.alloc_closed = k_alloc_closed,
	.capacity_note = "tars_key containers, PROT_NONE at rest in shared guarded "
	    "regions: bounded by memory (and mlock), not by vm.max_map_count",
};
