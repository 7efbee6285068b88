/*
 * backend_sodium.c - libsodium's sodium_malloc: every buffer in its own
 * mapping, its end against a guard page, a canary in front, mlock'ed
 * (sodium_mlock's failure is ignored by sodium_malloc: the VmLck figures
 * show what was really locked).
 */
#include "sec.h"

#include <errno.h>
#include <sodium.h>
#include <stdio.h>

static int na_init(size_t arena, char *note, size_t len)
{
	(void)arena;
	if (sodium_init() < 0) {
		snprintf(note, len, "sodium_init() failed");
		errno = EIO;
		return -1;
	}
	return 0;
}

static void *na_alloc(size_t size, unsigned char **data)
{
	return *data = sodium_malloc(size);
}

static void na_release(void *h, size_t size)
{
	(void)size;
	sodium_free(h);
}

static const struct sec_kind kinds[] = {
	{ "sodium", "sodium_malloc / sodium_free (own guarded mapping)",
	  na_alloc, na_release, NULL, 0 },
	{ NULL, NULL, NULL, NULL, NULL, 0 },
};

static void na_version(char *out, size_t len)
{
	snprintf(out, len, "libsodium %s", sodium_version_string());
}

const struct sec_backend sec_backend = {
	.name = "sodium",
	.malloc_owner = "libc.so",
	.kinds = kinds,
	.init = na_init,
	.version = na_version,
};
