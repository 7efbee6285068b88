/*
 * util.c - harness memory, the harness's random numbers, and the secret.
 */
#include "sec.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>

static void *map_or_die(size_t bytes, int flags)
{
	void *p = mmap(NULL, bytes ? bytes : 1, PROT_READ | PROT_WRITE,
	    flags | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED) {
		fprintf(stderr, "sec: mmap(%zu) for the harness: %s\n", bytes, strerror(errno));
		exit(2);
	}
	return p;
}

void *sec_mem(size_t bytes)
{
	return map_or_die(bytes, MAP_PRIVATE);
}

void *sec_mem_shared(size_t bytes)
{
	return map_or_die(bytes, MAP_SHARED);
}

void sec_mem_free(void *p, size_t bytes)
{
	if (p != NULL && munmap(p, bytes ? bytes : 1) != 0) {
		fprintf(stderr, "sec: munmap of harness memory: %s\n", strerror(errno));
		exit(2);
	}
}

/* SplitMix64 (Steele, Lea, Flood): the harness only needs well-mixed,
 * reproducible numbers for its own choices (which buffer holds the secret,
 * the order of frees); the allocators' randomness is what is measured. */
void sec_rng_seed(struct sec_rng *r, uint64_t seed)
{
	r->s[0] = seed;
	r->s[1] = r->s[2] = r->s[3] = 0;
}

uint64_t sec_rng_next(struct sec_rng *r)
{
	uint64_t z = (r->s[0] += UINT64_C(0x9e3779b97f4a7c15));

	z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
	return z ^ (z >> 31);
}

size_t sec_rng_below(struct sec_rng *r, size_t n)
{
	return (size_t)(((unsigned __int128)sec_rng_next(r) * n) >> 64);
}

/* ---- the secret ---------------------------------------------------------- */

static unsigned char *secret_page;

void sec_secret_renew(void)
{
	size_t got = 0;

	if (secret_page == NULL)
		secret_page = sec_mem(sec_cfg.page);
	while (got < SEC_SECRET_LEN) {
		ssize_t n = getrandom(secret_page + got, SEC_SECRET_LEN - got, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			fprintf(stderr, "sec: getrandom: %s\n", strerror(errno));
			exit(2);
		}
		got += (size_t)n;
	}
}

const unsigned char *sec_secret(void)
{
	if (secret_page == NULL)
		sec_secret_renew();
	return secret_page;
}

unsigned sec_windows_in(const unsigned char *p, size_t len)
{
	const unsigned char *s = sec_secret();
	unsigned found = 0;

	for (size_t w = 0; w + SEC_WINDOW <= SEC_SECRET_LEN; w += SEC_WINDOW)
		found += memmem(p, len, s + w, SEC_WINDOW) != NULL;
	return found;
}

void *sec_plant(const struct sec_kind *k, size_t size, unsigned char **data)
{
	void *h;

	(void)sec_secret();
	if (size < SEC_SECRET_LEN)
		size = SEC_SECRET_LEN;
	if (size > sec_cfg.page)
		size = sec_cfg.page;
	/* The whole holder's bytes (secret, then fill) from the reference
	 * page, so that a container holds `size` bytes like a plain block and
	 * lands in the same size class as its neighbours. */
	memset(secret_page + SEC_SECRET_LEN, 'A', size - SEC_SECRET_LEN);
	if (k->secret != NULL)
		return k->secret(secret_page, size, data);
	h = k->alloc(size, data);
	if (h == NULL)
		return NULL;
	memcpy(*data, secret_page, size);
	return h;
}

void *sec_alloc_filled(const struct sec_kind *k, size_t size, unsigned char v,
    unsigned char **data)
{
	void *h = k->alloc(size, data);

	if (h != NULL && !k->closed)
		memset(*data, v, size);
	return h;
}

/* Shell sort with Ciura's gaps: qsort may call malloc, which would
 * disturb the heap under test. */
void sec_sort_u64(uint64_t *a, size_t n)
{
	static const size_t gaps[] = { 701, 301, 132, 57, 23, 10, 4, 1 };

	for (size_t g = 0; g < sizeof gaps / sizeof gaps[0]; g++) {
		size_t gap = gaps[g];

		for (size_t i = gap; i < n; i++) {
			uint64_t v = a[i];
			size_t j = i;

			for (; j >= gap && a[j - gap] > v; j -= gap)
				a[j] = a[j - gap];
			a[j] = v;
		}
	}
}

int sec_fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -1;
}
