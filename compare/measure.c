/*
 * measure.c - clocks (CLOCK_MONOTONIC and the timestamp counter), samples
 * and quantiles, harness memory, the RNG, progress lines.  Calls nothing
 * else of the harness.
 */
#include "compare.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

uint64_t compare_now_ns(void)
{
	struct timespec ts;

	/* CLOCK_MONOTONIC cannot fail with a valid clock id and pointer;
	 * a failure here means the harness itself is broken. */
	if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) {
		perror("compare: clock_gettime");
		exit(2);
	}
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

#define OVERHEAD_PAIRS 1001

static double sorted_median(double *d, size_t n)
{
	qsort(d, n, sizeof d[0], cmp_double);
	return n % 2 ? d[n / 2] : (d[n / 2 - 1] + d[n / 2]) / 2;
}

/* Median cost of two back-to-back reads.  Measured on first use, which
 * main.c makes before a workload runs, in one thread. */
double compare_timer_overhead_ns(void)
{
	static double cached = -1;
	static double d[OVERHEAD_PAIRS];

	if (cached >= 0)
		return cached;
	for (int i = 0; i < OVERHEAD_PAIRS; i++) {
		uint64_t t0 = compare_now_ns();

		d[i] = (double)(compare_now_ns() - t0);
	}
	return cached = sorted_median(d, OVERHEAD_PAIRS);
}

/* Rate of the timestamp counter against CLOCK_MONOTONIC over ~2 ms (the
 * CPU flags constant_tsc and nonstop_tsc make it one rate for the run; two
 * clock reads of ~50 ns each put the error near 1e-4). */
double compare_tsc_per_ns(void)
{
	static double cached = -1;
	struct timespec d = { 0, 2 * 1000 * 1000 };
	uint64_t n0, n1, c0, c1;

	if (cached > 0)
		return cached;
	n0 = compare_now_ns();
	c0 = compare_tsc_begin();
	while (nanosleep(&d, &d) != 0 && errno == EINTR)
		;
	c1 = compare_tsc_end();
	n1 = compare_now_ns();
	cached = (double)(c1 - c0) / (double)(n1 - n0);
	if (!(cached > 0))
		cached = 1; /* no usable counter: ticks read as ns */
	return cached;
}

double compare_tsc_overhead(void)
{
	static double cached = -1;
	static double d[OVERHEAD_PAIRS];

	if (cached >= 0)
		return cached;
	for (int i = 0; i < OVERHEAD_PAIRS; i++) {
		uint64_t t0 = compare_tsc_begin();

		d[i] = (double)(compare_tsc_end() - t0);
	}
	return cached = sorted_median(d, OVERHEAD_PAIRS);
}

double compare_tsc_ns(uint64_t ticks)
{
	double t = (double)ticks - compare_tsc_overhead();

	return t > 0 ? t / compare_tsc_per_ns() : 0;
}

double compare_median(const double *v, int n)
{
	double s[64];

	if (n <= 0)
		return NAN;
	if (n > 64)
		n = 64;
	memcpy(s, v, (size_t)n * sizeof s[0]);
	return sorted_median(s, (size_t)n);
}

void samples_init(struct samples *s, size_t cap)
{
	s->v = compare_mem(cap * sizeof *s->v);
	s->n = 0;
	s->cap = cap;
}

void samples_add(struct samples *s, double ns)
{
	if (s->n < s->cap)
		s->v[s->n++] = ns;
}

void samples_free(struct samples *s)
{
	compare_mem_free(s->v, s->cap * sizeof *s->v);
	s->v = NULL;
	s->n = s->cap = 0;
}

double samples_quantile(struct samples *s, double q)
{
	size_t i;

	if (s->n == 0)
		return NAN;
	qsort(s->v, s->n, sizeof s->v[0], cmp_double);
	/* Nearest rank: the smallest sample with at least q of them <= it. */
	i = (size_t)ceil(q * (double)s->n);
	if (i > 0)
		i--;
	if (i >= s->n)
		i = s->n - 1;
	return s->v[i];
}

void *compare_mem(size_t bytes)
{
	void *p;

	if (bytes == 0)
		bytes = 1;
	p = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (p == MAP_FAILED) {
		fprintf(stderr, "compare: harness mmap of %zu bytes: %s\n",
		    bytes, strerror(errno));
		exit(2);
	}
	return p;
}

void compare_mem_free(void *p, size_t bytes)
{
	if (p == NULL)
		return;
	if (bytes == 0)
		bytes = 1;
	if (munmap(p, bytes) != 0) {
		fprintf(stderr, "compare: harness munmap: %s\n", strerror(errno));
		exit(2);
	}
}

static uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

static uint64_t splitmix(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15u);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
	return z ^ (z >> 31);
}

void rng_seed(struct rng *r, uint64_t seed)
{
	for (int i = 0; i < 4; i++)
		r->s[i] = splitmix(&seed);
}

/* xoshiro256** (Blackman and Vigna), written from the published
 * description. */
uint64_t rng_next(struct rng *r)
{
	uint64_t *s = r->s;
	uint64_t result = rotl(s[1] * 5, 7) * 9;
	uint64_t t = s[1] << 17;

	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return result;
}

size_t rng_below(struct rng *r, size_t n)
{
	/* Multiply-shift: the bias is far below anything measured here. */
	return (size_t)(((unsigned __int128)rng_next(r) * n) >> 64);
}

void compare_progress(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

const size_t compare_crypto_sizes[] = { 16, 32, 64, 68, 128, 200, 208, 256, 512, 1024, 2048 };
const size_t compare_ncrypto_sizes = NELEM(compare_crypto_sizes);
