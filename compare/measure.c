/*
 * measure.c - clocks, batched samples, percentiles, harness memory, RNG.
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

double compare_timer_overhead_ns(void)
{
	static double cached = -1;
	double d[101];

	if (cached >= 0)
		return cached;
	for (int i = 0; i < 101; i++) {
		uint64_t t0 = compare_now_ns();
		uint64_t t1 = compare_now_ns();
		d[i] = (double)(t1 - t0);
	}
	qsort(d, 101, sizeof d[0], cmp_double);
	cached = d[50];
	return cached;
}

void samples_init(struct samples *s, size_t cap)
{
	s->v = compare_mem(cap * sizeof *s->v);
	s->n = 0;
	s->cap = cap;
}

void samples_add(struct samples *s, double ns_per_op)
{
	if (s->n < s->cap)
		s->v[s->n++] = ns_per_op;
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

void compare_emit_latency(const struct measure_key *k, const char *prefix,
    const double *rep_means, int nreps, struct samples *s, const char *unit_op)
{
	char name[64];
	double means[64];
	double med;
	int n = nreps < 64 ? nreps : 64;

	if (n <= 0 || s->n == 0)
		return;
	memcpy(means, rep_means, (size_t)n * sizeof means[0]);
	qsort(means, (size_t)n, sizeof means[0], cmp_double);
	med = n % 2 ? means[n / 2] : (means[n / 2 - 1] + means[n / 2]) / 2;

	snprintf(name, sizeof name, "%sns_per_op", prefix);
	compare_emit(k, name, med, "ns", unit_op);
	snprintf(name, sizeof name, "%sp50_ns", prefix);
	compare_emit(k, name, samples_quantile(s, 0.50), "ns", unit_op);
	snprintf(name, sizeof name, "%sp99_ns", prefix);
	compare_emit(k, name, samples_quantile(s, 0.99), "ns", unit_op);
	snprintf(name, sizeof name, "%sp999_ns", prefix);
	compare_emit(k, name, samples_quantile(s, 0.999), "ns", unit_op);
	snprintf(name, sizeof name, "%sops_per_s", prefix);
	compare_emit(k, name, med > 0 ? 1e9 / med : NAN, "ops/s", unit_op);
	snprintf(name, sizeof name, "%sbatches", prefix);
	compare_emit(k, name, (double)s->n, "count", "timed batches behind the percentiles");
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

void compare_touch(void *p, size_t n, unsigned char v)
{
	memset(p, v, n);
	__asm__ volatile("" : : "r"(p) : "memory");
}

void compare_progress(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}
