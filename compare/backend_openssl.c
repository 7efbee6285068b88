/* backend_openssl.c - the OpenSSL secure heap: one fixed, mlocked arena
 * (a buddy allocator) set up by CRYPTO_secure_malloc_init.  The arena is
 * sized for each workload in prepare(); its capacity is arena-bound. */
#include "compare.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <stdio.h>

#define MIN_ARENA ((size_t)64 << 10)
#define MIN_BLOCK 16

static void *os_alloc(size_t size)
{
	void *p = OPENSSL_secure_malloc(size);

	if (p == NULL) {
		/* OpenSSL sets no errno: the arena is exhausted. */
		compare_fail_call = "OPENSSL_secure_malloc (arena exhausted)";
		errno = ENOMEM;
	}
	return p;
}

static void os_release(void *ptr, size_t size)
{
	OPENSSL_secure_clear_free(ptr, size);
}

static int os_prepare(size_t max_bytes, size_t max_count, size_t *arena,
    char *note, size_t len)
{
	size_t size = MIN_ARENA;
	int rc;

	(void)max_count;
	while (size < max_bytes)
		size <<= 1;
	if (CRYPTO_secure_malloc_initialized() && !CRYPTO_secure_malloc_done()) {
		snprintf(note, len, "CRYPTO_secure_malloc_done: secure heap still in use");
		errno = EBUSY;
		return -1;
	}
	rc = CRYPTO_secure_malloc_init(size, MIN_BLOCK);
	if (rc == 0) {
		snprintf(note, len, "CRYPTO_secure_malloc_init(%zu, %d) failed", size, MIN_BLOCK);
		errno = ENOMEM;
		return -1;
	}
	*arena = size;
	snprintf(note, len, "fixed secure-heap arena of %zu bytes, minimum block %d%s",
	    size, MIN_BLOCK, rc == 2 ? "; mlock of the arena failed (not locked)" : "");
	return 0;
}

static void os_version(char *out, size_t len)
{
	snprintf(out, len, "%s", OpenSSL_version(OPENSSL_VERSION));
}

const struct compare_backend compare_backend = {
	.name = "openssl",
	.what = "OpenSSL secure heap: one mlocked arena, OPENSSL_secure_malloc / "
	    "OPENSSL_secure_clear_free",
	.malloc_owner = "libc.so",
	.alloc_name = "OPENSSL_secure_malloc",
	.prepare = os_prepare,
	.alloc = os_alloc,
	.release = os_release,
	.version = os_version,
	.tls_heap = TLS_OWN,
	.tls_note = "OpenSSL keeps its heap on glibc and puts its own secrets "
	    "(private keys, ephemeral key shares) in the secure heap, as an "
	    "application that calls CRYPTO_secure_malloc_init gets: routing every "
	    "allocation into the arena would recurse (the arena's bookkeeping is "
	    "allocated with OPENSSL_malloc) and serialise on its lock",
	.capacity_note = "fixed arena: capacity is arena-bound (sized here for the cap)",
};
