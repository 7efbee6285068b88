/*
 * backend_openssl.c - the OpenSSL secure heap: one fixed arena, mlock'ed
 * when RLIMIT_MEMLOCK allows (CRYPTO_secure_malloc_init answers 2 when it
 * did not), carved by a buddy allocator; OPENSSL_secure_clear_free wipes.
 */
#include "sec.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <stdio.h>

#define MIN_BLOCK 16

static int init_rc = -1;
static size_t arena_bytes;

static int os_init(size_t arena, char *note, size_t len)
{
	init_rc = CRYPTO_secure_malloc_init(arena, MIN_BLOCK);
	arena_bytes = arena;
	if (init_rc == 0) {
		snprintf(note, len, "CRYPTO_secure_malloc_init(%zu, %d) failed", arena, MIN_BLOCK);
		errno = ENOMEM;
		return -1;
	}
	snprintf(note, len, "secure-heap arena of %zu bytes, minimum block %d, %s", arena,
	    MIN_BLOCK, init_rc == 2 ? "NOT locked (mlock of the arena failed)" : "locked");
	return 0;
}

static void *os_alloc(size_t size, unsigned char **data)
{
	void *p = OPENSSL_secure_malloc(size);

	if (p == NULL)
		errno = ENOMEM;   /* the arena is full; OpenSSL sets no errno */
	return *data = p;
}

static void os_release(void *h, size_t size)
{
	OPENSSL_secure_clear_free(h, size);
}

static const struct sec_kind kinds[] = {
	{ "openssl", "OPENSSL_secure_malloc / OPENSSL_secure_clear_free (one arena)",
	  os_alloc, os_release, NULL, 0 },
	{ NULL, NULL, NULL, NULL, NULL, 0 },
};

static void os_version(char *out, size_t len)
{
	snprintf(out, len, "%s", OpenSSL_version(OPENSSL_VERSION));
}

static void os_counters(void)
{
	js_open("backend_counters");
	js_u64("arena_bytes", arena_bytes);
	js_i64("init_rc", init_rc);
	js_bool("arena_locked", init_rc == 1);
	js_u64("secure_used_bytes", CRYPTO_secure_used());
	js_close();
}

const struct sec_backend sec_backend = {
	.name = "openssl",
	.malloc_owner = "libc.so",
	.kinds = kinds,
	.init = os_init,
	.version = os_version,
	.counters = os_counters,
};
