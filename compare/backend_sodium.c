/* backend_sodium.c - libsodium's guarded allocations: sodium_malloc puts
 * every buffer in its own mapping between guard pages, with a canary, and
 * mlocks it. */
#include "compare.h"

#include <errno.h>
#include <sodium.h>

static int na_init(char *note, size_t len)
{
	if (sodium_init() < 0) {
		snprintf(note, len, "sodium_init() failed");
		errno = EIO;
		return -1;
	}
	return 0;
}

static int na_none(void *ptr, size_t size)
{
	(void)size;
	return sodium_mprotect_noaccess(ptr);
}

static int na_read(void *ptr, size_t size)
{
	(void)size;
	return sodium_mprotect_readonly(ptr);
}

static void na_release(void *ptr, size_t size)
{
	(void)size;
	sodium_free(ptr);
}

static void na_version(char *out, size_t len)
{
	snprintf(out, len, "libsodium %s", sodium_version_string());
}

const struct compare_backend compare_backend = {
	.name = "sodium",
	.what = "libsodium sodium_malloc / sodium_free: a guarded, mlocked mapping per buffer",
	.malloc_owner = "libc.so",
	.alloc_name = "sodium_malloc",
	.init = na_init,
	.alloc = sodium_malloc,
	.free = sodium_free,
	.alloc_secret = sodium_malloc,
	.release_secret = na_release,
	.protect_none = na_none,
	.protect_read = na_read,
	.version = na_version,
	.capacity_note = "one mapping with guard pages per buffer (about 4 VMAs): "
	    "bounded by vm.max_map_count",
};
