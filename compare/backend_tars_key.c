/* backend_tars_key.c - tars keys: tars_malloc_key gives every buffer a
 * guarded slot of a shared key region whose protection tars_protect_* can
 * switch; in the capacity workload the secrets are tars_key containers,
 * closed at rest, as an application holding many keys keeps them. */
#include <string.h>

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

static void *k_key_new(size_t size)
{
	tars_key *k = tars_key_new_random(size);

	if (k == NULL)
		compare_fail_call = "tars_key_new_random";
	return k;
}

static void k_key_free(void *key, size_t size)
{
	(void)size;
	tars_key_free(key);
}

const struct compare_backend compare_backend = {
	.name = "tars-key",
	.what = "tars_malloc_key / tars_free: a guarded slot of a shared key region "
	    "per buffer, tars_protect_* toggles it",
	.malloc_owner = "libc.so",
	.alloc_name = "tars_malloc_key",
	.alloc = tars_malloc_key,
	.free = tars_free,
	.realloc = tars_realloc, /* a key stays a key */
	.alloc_secret = tars_malloc_key,
	.release_secret = k_release,
	.protect_none = k_none,
	.protect_read = k_read,
	.alloc_closed = k_alloc_closed,
	/* ~45 s to the 2,000,000 cap on an idle 2-vCPU machine (a resident
	 * page and a /proc/self/mem write per key): the scale's 30 s stopped
	 * it at ~1.5M. */
	.capacity_seconds = 120,
	.key_new = k_key_new,
	.key_free = k_key_free,
	COMPARE_TARS_COMMON,
	.capacity_note = "tars_key containers, PROT_NONE at rest in shared guarded "
	    "regions: bounded by memory (and mlock), not by vm.max_map_count",
};
