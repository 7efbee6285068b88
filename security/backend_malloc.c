/*
 * backend_malloc.c - plain malloc/free, built three times: against glibc
 * (SEC_GLIBC), and with Debian's jemalloc (SEC_JEMALLOC) or mimalloc
 * (SEC_MIMALLOC) linked in, which replace malloc process-wide.  main.c
 * checks which shared object really defines malloc.
 */
#include "sec.h"

#include <stdio.h>
#include <stdlib.h>

#if defined(SEC_JEMALLOC)
#include <jemalloc/jemalloc.h>
#define NAME "jemalloc"
#define OWNER "libjemalloc"
#elif defined(SEC_MIMALLOC)
#include <mimalloc.h>
#define NAME "mimalloc"
#define OWNER "libmimalloc"
#else
#include <gnu/libc-version.h>
#define NAME "glibc"
#define OWNER "libc.so"
#endif

static void *m_alloc(size_t size, unsigned char **data)
{
	return *data = malloc(size);
}

static void m_release(void *h, size_t size)
{
	(void)size;
	free(h);
}

static const struct sec_kind kinds[] = {
	{ NAME, "malloc / free", m_alloc, m_release, NULL, 0 },
	{ NULL, NULL, NULL, NULL, NULL, 0 },
};

static void m_version(char *out, size_t len)
{
#if defined(SEC_JEMALLOC)
	const char *v = NULL;
	size_t sz = sizeof v;

	if (mallctl("version", &v, &sz, NULL, 0) != 0 || v == NULL)
		v = "unknown";
	snprintf(out, len, "jemalloc %s", v);
#elif defined(SEC_MIMALLOC)
	int v = mi_version();

	snprintf(out, len, "mimalloc %d.%d.%d", v / 100, v / 10 % 10, v % 10);
#else
	snprintf(out, len, "glibc %s", gnu_get_libc_version());
#endif
}

const struct sec_backend sec_backend = {
	.name = NAME,
	.malloc_owner = OWNER,
	.kinds = kinds,
	.version = m_version,
};
