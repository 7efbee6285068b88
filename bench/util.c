/*
 * util.c - latency histogram, shuffles and errors for the benchmark bodies.
 * Nothing here needs tars (the shim self-test links it alone), and nothing
 * runs per operation except bench_lat_add (once per stretch).
 */
#include "bench.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

void bench_die(const char *what, int err)
{
	if (err == 0)
		err = errno;
	fprintf(stderr, "bench: %s: %s\n", what, strerror(err));
	exit(1);
}

/* ------------------------------------------------------------------------
 * Latency histogram
 *
 * Values are picoseconds per operation.  Below 128 ps a bucket is one
 * picosecond; above, a value with its top bit at position b >= 7 goes to
 * bucket (b - 6) * 64 + (v >> (b - 6)), whose second term lies in
 * [64, 127]: 64 buckets per power of two, contiguous with the linear part.
 * --------------------------------------------------------------------- */

void bench_lat_init(struct bench_lat *lat)
{
	memset(lat, 0, sizeof(*lat));
	lat->last = bench_now_ns();
}

static size_t lat_index(uint64_t v)
{
	if (v < 2 * BENCH_LAT_SUB)
		return (size_t)v;
	if (v >> BENCH_LAT_MAXBIT)
		v = (UINT64_C(1) << BENCH_LAT_MAXBIT) - 1;
	unsigned e = (unsigned)(63 - __builtin_clzll(v)) - 6;
	return (size_t)e * BENCH_LAT_SUB + (size_t)(v >> e);
}

/* Midpoint of bucket i, in picoseconds. */
static double lat_value(size_t i)
{
	if (i < 2 * BENCH_LAT_SUB)
		return (double)i;
	unsigned e = (unsigned)(i / BENCH_LAT_SUB) - 1;
	uint64_t m = (uint64_t)(i % BENCH_LAT_SUB) + BENCH_LAT_SUB;
	return (double)(m << e) + (double)(UINT64_C(1) << e) / 2.0;
}

void bench_lat_add(struct bench_lat *lat, uint64_t ns, uint64_t ops)
{
	if (ops == 0)
		return;
	lat->bucket[lat_index(ns * 1000 / ops)]++;
	lat->count++;
}

/* The value below which a fraction q of the samples lie (nearest rank). */
static double lat_quantile(const struct bench_lat *lat, double q)
{
	uint64_t rank = (uint64_t)(q * (double)lat->count);
	uint64_t seen = 0;

	if (rank >= lat->count)
		rank = lat->count - 1;
	for (size_t i = 0; i < BENCH_LAT_NBUCKETS; i++) {
		seen += lat->bucket[i];
		if (seen > rank)
			return lat_value(i) / 1000.0;
	}
	return lat_value(BENCH_LAT_NBUCKETS - 1) / 1000.0;
}

void bench_lat_report(const struct bench_lat *lat, gb_state *st)
{
	if (lat->count == 0)
		return;
	gb_counter(st, "batch_p50_ns", lat_quantile(lat, 0.50), 0);
	gb_counter(st, "batch_p99_ns", lat_quantile(lat, 0.99), 0);
	gb_counter(st, "batch_p99.9_ns", lat_quantile(lat, 0.999), 0);
}

/* ------------------------------------------------------------------------
 * Random order (splitmix64, seeded once from getrandom)
 * --------------------------------------------------------------------- */

void bench_rng_seed(struct bench_rng *r)
{
	ssize_t n;

	do
		n = getrandom(&r->s, sizeof(r->s), 0);
	while (n < 0 && errno == EINTR);
	if (n != (ssize_t)sizeof(r->s))
		bench_die("getrandom", n < 0 ? errno : EIO);
}

uint64_t bench_rng_next(struct bench_rng *r)
{
	uint64_t z = (r->s += UINT64_C(0x9e3779b97f4a7c15));

	z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
	return z ^ (z >> 31);
}

void bench_shuffle(struct bench_rng *r, uint32_t *perm, size_t n)
{
	for (size_t i = n; i > 1; i--) {
		/* Multiply-shift maps 64 random bits to [0, i); the bias is
		 * below 2^-40 for the sizes used here. */
		size_t j = (size_t)(((unsigned __int128)bench_rng_next(r) * i) >> 64);
		uint32_t t = perm[i - 1];
		perm[i - 1] = perm[j];
		perm[j] = t;
	}
}

/* ------------------------------------------------------------------------
 * Errors and the page size
 * --------------------------------------------------------------------- */

void bench_skip_errno(gb_state *st, const char *what, int err)
{
	char msg[256];

	snprintf(msg, sizeof(msg), "%s: %s", what, strerror(err));
	gb_skip(st, msg);
}

size_t bench_page_size(void)
{
	long ps = sysconf(_SC_PAGESIZE);

	if (ps <= 0)
		bench_die("sysconf(_SC_PAGESIZE)", ps < 0 ? errno : EINVAL);
	return (size_t)ps;
}
