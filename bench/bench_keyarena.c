/*
 * bench_keyarena.c - keys at scale (the key arena, tars/src/keyarena.c),
 * each against its baseline in the same run.
 *
 *   keys/life          tars_key_new_random(32) + tars_key_free, beside a
 *                      naive guarded key (mmap 3 pages, mprotect the middle
 *                      read-write, mlock, MADV_DONTDUMP, write 32 bytes,
 *                      munmap).  Target: ratio <= 0.5.
 *   keys/life_secretmem  the same with secretmem=1 (memfd_secret regions).
 *   keys/scope         tars_key_read_begin + read_end on one key, beside
 *                      two bare mprotect calls (READ, NONE) on a page that
 *                      is a VMA of its own.  Target: ratio <= 1.1.
 *   keys/scope_cold    the same on 256 keys in turn: each scope splits a
 *                      region's VMA and merges it back (no hot set).
 *
 * The two sides run in alternating batches of SLOW_BATCH operations, so the
 * noise of a shared machine hits both alike; the counters are the medians
 * of the per-batch averages (tars_ns, base_ns) and their ratio.  The time
 * Google Benchmark reports is that of both sides together.
 */
#include "bench.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define KEY_SIZE 32
#define SLOW_BATCH 8
#define MAX_BATCHES 8192
#define COLD_KEYS 256

struct side {
	/* One operation; 0 or an errno. */
	int (*op)(void *arg);
	void *arg;
};

struct pair {
	struct side tars, base;
};

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static double median(double *v, size_t n)
{
	qsort(v, n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Batches of the two sides in turn; counters tars_ns, base_ns, ratio. */
static void run_pair(gb_state *st, const struct pair *p)
{
	double *a = malloc(MAX_BATCHES * sizeof(*a));
	double *b = malloc(MAX_BATCHES * sizeof(*b));
	size_t n = 0;
	int failed = 0;

	if (a == NULL || b == NULL) {
		free(a);
		free(b);
		bench_skip_errno(st, "malloc", ENOMEM);
		return;
	}
	while (!failed && gb_batch(st, SLOW_BATCH)) {
		const struct side *s[2] = {&p->tars, &p->base};
		double *out[2] = {a, b};

		for (int k = 0; k < 2 && !failed; k++) {
			uint64_t t0 = bench_now_ns();

			for (int i = 0; i < SLOW_BATCH && !failed; i++)
				failed = s[k]->op(s[k]->arg);
			if (n < MAX_BATCHES)
				out[k][n] = (double)(bench_now_ns() - t0) / SLOW_BATCH;
		}
		n += n < MAX_BATCHES;
	}
	if (failed) {
		bench_skip_errno(st, "operation", failed);
	} else if (n > 0) {
		double ta = median(a, n), tb = median(b, n);

		gb_counter(st, "tars_ns", ta, 0);
		gb_counter(st, "base_ns", tb, 0);
		gb_counter(st, "ratio", ta / tb, 0);
	}
	free(a);
	free(b);
}

/* ---- a key's life ------------------------------------------------------ */

static int tars_life(void *arg)
{
	(void)arg;
	tars_key *k = tars_key_new_random(KEY_SIZE);

	if (k == NULL)
		return errno;
	GB_KEEP(k);
	tars_key_free(k);
	return 0;
}

static int naive_life(void *arg)
{
	size_t ps = bench_page_size();
	unsigned char *m = mmap(NULL, 3 * ps, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	(void)arg;
	if (m == MAP_FAILED)
		return errno;
	if (mprotect(m + ps, ps, PROT_READ | PROT_WRITE) != 0 || mlock(m + ps, ps) != 0 ||
	    madvise(m + ps, ps, MADV_DONTDUMP) != 0) {
		int e = errno;

		(void)munmap(m, 3 * ps);
		return e;
	}
	memset(m + 2 * ps - KEY_SIZE, 0x5a, KEY_SIZE);
	GB_KEEP(m);
	return munmap(m, 3 * ps) == 0 ? 0 : errno;
}

/* ctx: secretmem=1 (keys in memfd_secret regions, written by opening
 * them: /proc/self/mem cannot reach such pages). */
static void bm_life(gb_state *st, void *ctx)
{
	const struct pair p = {{tars_life, NULL}, {naive_life, NULL}};
	long secret = ctx != NULL, saved;

	if (bench_option_push(st, "secretmem", secret, &saved) != 0)
		return;
	tars_key_free(tars_key_new_random(KEY_SIZE)); /* heap and region exist */
	run_pair(st, &p);
	bench_option_pop(st, "secretmem", saved);
}

/* ---- scopes ------------------------------------------------------------ */

struct keys {
	tars_key **k;
	size_t n, next;
};

static int tars_scope(void *arg)
{
	struct keys *ks = arg;
	tars_key *k = ks->k[ks->next];
	const volatile unsigned char *d = tars_key_read_begin(k);

	if (d == NULL)
		return errno;
	(void)d[0];
	tars_key_read_end(k);
	ks->next = (ks->next + 1) % ks->n;
	return 0;
}

static int isolated_scope(void *arg)
{
	volatile unsigned char *p = arg;
	size_t ps = bench_page_size();

	if (mprotect((void *)p, ps, PROT_READ) != 0)
		return errno;
	(void)p[0];
	return mprotect((void *)p, ps, PROT_NONE) == 0 ? 0 : errno;
}

static void bm_scope(gb_state *st, void *ctx)
{
	size_t n = *(const size_t *)ctx;
	size_t ps = bench_page_size();
	struct keys ks = {calloc(n, sizeof(tars_key *)), n, 0};
	/* The baseline page: a VMA of its own (locked and not dumped, unlike
	 * its guards), as a key with a mapping of its own was. */
	unsigned char *m = mmap(NULL, 3 * ps, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (ks.k == NULL || m == MAP_FAILED) {
		bench_skip_errno(st, "setup", ENOMEM);
		goto out;
	}
	if (mprotect(m + ps, ps, PROT_READ | PROT_WRITE) != 0 || mlock(m + ps, ps) != 0 ||
	    madvise(m + ps, ps, MADV_DONTDUMP) != 0 || mprotect(m + ps, ps, PROT_NONE) != 0) {
		bench_skip_errno(st, "baseline page", errno);
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		if ((ks.k[i] = tars_key_new_random(KEY_SIZE)) == NULL) {
			bench_skip_errno(st, "tars_key_new_random", errno);
			goto out;
		}
	}
	const struct pair p = {{tars_scope, &ks}, {isolated_scope, m + ps}};
	run_pair(st, &p);
out:
	for (size_t i = 0; ks.k != NULL && i < n; i++)
		tars_key_free(ks.k[i]);
	free(ks.k);
	if (m != MAP_FAILED)
		(void)munmap(m, 3 * ps);
}

void bench_register_keyarena(void)
{
	static const size_t one = 1, cold = COLD_KEYS;

	gb_bench_unit(gb_register("keys/life", bm_life, NULL), GB_US);
	gb_bench_unit(gb_register("keys/life_secretmem", bm_life, (void *)&one), GB_US);
	gb_bench_unit(gb_register("keys/scope", bm_scope, (void *)&one), GB_US);
	gb_bench_unit(gb_register("keys/scope_cold", bm_scope, (void *)&cold), GB_US);
}
