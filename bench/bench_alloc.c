/*
 * bench_alloc.c - allocation hot paths: malloc+free pairs per size class,
 * batches freed in random order, large and key allocations; each tars
 * benchmark has a glibc reference line in the same binary.
 *
 *   tars/pair/SIZE, glibc/pair/SIZE      one malloc + free per iteration
 *   tars/batch/64/n:N, glibc/batch/...   N mallocs, then N frees in a
 *                                        random order; an iteration is
 *                                        one malloc or one free
 *   tars/large/pages:P, glibc/large/...  malloc + free of P pages
 *   tars/key_alloc/pages:P               tars_malloc_key + free of P pages
 *   tars/burst/64/k:K, glibc/burst/...   K mallocs, then K frees in the
 *                                        same order, again and again (a
 *                                        live set that swings); an
 *                                        iteration is one operation
 */
#include "bench.h"

#include <errno.h>
#include <stdlib.h>

/* Every size class of 16..2048 under both class settings (the
 * quarter-step classes include the powers of two), merged with the sizes
 * crypto code allocates: 32 (key), 64 (hash state, key pair), 68, 200,
 * 208 (cipher and hash contexts). */
static const int64_t pair_sizes[] = {
	16, 32, 48, 64, 68, 80, 96, 112, 128, 160, 192, 200, 208, 224, 256,
	320, 384, 448, 512, 640, 768, 896, 1024, 1280, 1536, 1792, 2048,
};

static const int64_t batch_counts[] = { 64, 1024, 16384 };
static const int64_t burst_counts[] = { 64, 1024, 4096 };
#define BATCH_SIZE 64 /* bytes per allocation in the batch benchmarks */

/* ------------------------------------------------------------------------
 * The operation loop: alloc + free per iteration
 *
 * always_inline with constant function pointers: each caller gets direct
 * calls, no indirect call per iteration.  `stretch` is the number of
 * operations per latency sample: 1 for slow operations (microseconds),
 * BENCH_BATCH for fast ones, where a timestamp per operation would cost
 * more than the operation.
 * --------------------------------------------------------------------- */

#define SLOW_BATCH 8 /* iterations per shim call when stretch is 1 */

static inline __attribute__((always_inline)) void
op_loop(gb_state *st, size_t size, void *(*alloc)(size_t), void (*dealloc)(void *),
    const char *what, int stretch)
{
	const int batch = stretch == 1 ? SLOW_BATCH : stretch;
	struct bench_lat lat;
	int failed = 0;

	bench_lat_init(&lat);
	while (!failed && gb_batch(st, (uint64_t)batch)) {
		for (int i = 0; i < batch; i++) {
			void *p = alloc(size);
			if (__builtin_expect(p == NULL, 0)) {
				failed = errno ? errno : ENOMEM;
				break;
			}
			GB_KEEP(p);
			dealloc(p);
			if (stretch == 1)
				bench_lat_mark(&lat, 1);
		}
		if (stretch != 1)
			bench_lat_mark(&lat, (uint64_t)batch);
	}
	if (failed) {
		bench_skip_errno(st, what, failed);
		return;
	}
	bench_lat_report(&lat, st);
}

void bench_run_tars_pair(gb_state *st, size_t size)
{
	struct bench_stats bs;

	bench_stats_begin(&bs);
	op_loop(st, size, tars_malloc, tars_free, "tars_malloc", BENCH_BATCH);
	bench_stats_end(&bs, st, gb_state_iterations(st));
}

static void bm_tars_pair(gb_state *st, void *ctx)
{
	(void)ctx;
	bench_run_tars_pair(st, (size_t)gb_state_arg(st, 0));
}

static void bm_glibc_pair(gb_state *st, void *ctx)
{
	(void)ctx;
	op_loop(st, (size_t)gb_state_arg(st, 0), malloc, free, "malloc", BENCH_BATCH);
}

/* ------------------------------------------------------------------------
 * Batches: N allocations, then N frees in random order
 *
 * An iteration is one operation, so Google Benchmark's time per iteration
 * is the cost per malloc or free.  The free orders are BATCH_PERMS random
 * permutations drawn before the timer starts and used in turn: no shuffle
 * in the timed loop, so the CPU time stays the measure (manual wall time
 * would count the preemptions of a shared machine).
 * --------------------------------------------------------------------- */

#define BATCH_PERMS 16

/* n allocations into ptrs, a latency mark every BENCH_BATCH; returns how
 * many succeeded (*failed: errno of the one that did not). */
static inline __attribute__((always_inline)) size_t
alloc_n(void **ptrs, size_t n, size_t size, void *(*alloc)(size_t),
    struct bench_lat *lat, int *failed)
{
	size_t got = 0;

	for (; got < n; got++) {
		void *p = alloc(size);
		if (__builtin_expect(p == NULL, 0)) {
			*failed = errno ? errno : ENOMEM;
			break;
		}
		GB_KEEP(p);
		ptrs[got] = p;
		if ((got & (BENCH_BATCH - 1)) == BENCH_BATCH - 1)
			bench_lat_mark(lat, BENCH_BATCH);
	}
	return got;
}

static inline __attribute__((always_inline)) void
batch_loop(gb_state *st, size_t size, size_t n, void *(*alloc)(size_t),
    void (*dealloc)(void *), const char *what)
{
	struct bench_lat lat;
	struct bench_rng rng;
	void **ptrs = malloc(n * sizeof(*ptrs));
	uint32_t *perms = malloc(BATCH_PERMS * n * sizeof(*perms));
	unsigned round = 0;
	int failed = 0;

	if (ptrs == NULL || perms == NULL) {
		free(ptrs);
		free(perms);
		bench_skip_errno(st, "malloc (batch arrays)", ENOMEM);
		return;
	}
	bench_rng_seed(&rng);
	for (size_t k = 0; k < BATCH_PERMS; k++) {
		uint32_t *perm = perms + k * n;
		for (size_t i = 0; i < n; i++)
			perm[i] = (uint32_t)i;
		bench_shuffle(&rng, perm, n);
	}
	bench_lat_init(&lat);

	while (!failed && gb_batch(st, 2 * n)) {
		const uint32_t *perm = perms + (round++ % BATCH_PERMS) * n;
		size_t got = alloc_n(ptrs, n, size, alloc, &lat, &failed);
		if (failed) {
			/* Free what was allocated; order no longer matters. */
			for (size_t i = 0; i < got; i++)
				dealloc(ptrs[i]);
			break;
		}
		for (size_t i = 0; i < n; i++) {
			dealloc(ptrs[perm[i]]);
			if ((i & (BENCH_BATCH - 1)) == BENCH_BATCH - 1)
				bench_lat_mark(&lat, BENCH_BATCH);
		}
	}
	free(ptrs);
	free(perms);
	if (failed) {
		bench_skip_errno(st, what, failed);
		return;
	}
	bench_lat_report(&lat, st);
}

void bench_run_tars_batch(gb_state *st, size_t size, size_t n)
{
	struct bench_stats bs;

	bench_stats_begin(&bs);
	batch_loop(st, size, n, tars_malloc, tars_free, "tars_malloc");
	bench_stats_end(&bs, st, gb_state_iterations(st));
}

static void bm_tars_batch(gb_state *st, void *ctx)
{
	(void)ctx;
	bench_run_tars_batch(st, (size_t)gb_state_arg(st, 0), (size_t)gb_state_arg(st, 1));
}

static void bm_glibc_batch(gb_state *st, void *ctx)
{
	(void)ctx;
	batch_loop(st, (size_t)gb_state_arg(st, 0), (size_t)gb_state_arg(st, 1),
	    malloc, free, "malloc");
}

/* ------------------------------------------------------------------------
 * Bursts: K allocations, then K frees in allocation order, repeatedly
 *
 * Two whole bursts run before the timer starts, so the run measures the
 * steady state: an allocator that unmaps or protects every page that
 * empties and maps it again on the next burst pays system calls here
 * (syscalls_per_op for tars; issue 11 asks for ~0 at K = 1024).
 * --------------------------------------------------------------------- */

/* One burst: k allocations, then as many frees in the same order (all
 * that were made, if one failed: *failed says so). */
static inline __attribute__((always_inline)) void
burst(void **ptrs, size_t k, size_t size, void *(*alloc)(size_t),
    void (*dealloc)(void *), struct bench_lat *lat, int *failed)
{
	size_t got = alloc_n(ptrs, k, size, alloc, lat, failed);

	for (size_t i = 0; i < got; i++) {
		dealloc(ptrs[i]);
		if ((i & (BENCH_BATCH - 1)) == BENCH_BATCH - 1)
			bench_lat_mark(lat, BENCH_BATCH);
	}
}

static inline __attribute__((always_inline)) void
burst_loop(gb_state *st, size_t size, size_t k, void *(*alloc)(size_t),
    void (*dealloc)(void *), const char *what, int with_tars_stats)
{
	struct bench_stats bs;
	struct bench_lat lat;
	void **ptrs = malloc(k * sizeof(*ptrs));
	int failed = 0;

	if (ptrs == NULL) {
		bench_skip_errno(st, "malloc (burst array)", ENOMEM);
		return;
	}
	bench_lat_init(&lat);
	for (int warm = 0; warm < 2 && !failed; warm++)
		burst(ptrs, k, size, alloc, dealloc, &lat, &failed);
	if (with_tars_stats)
		bench_stats_begin(&bs);
	bench_lat_init(&lat);   /* the warm-up's samples are dropped */
	while (!failed && gb_batch(st, 2 * k))
		burst(ptrs, k, size, alloc, dealloc, &lat, &failed);
	free(ptrs);
	if (failed) {
		bench_skip_errno(st, what, failed);
		return;
	}
	bench_lat_report(&lat, st);
	if (with_tars_stats)
		bench_stats_end(&bs, st, gb_state_iterations(st));
}

static void bm_tars_burst(gb_state *st, void *ctx)
{
	(void)ctx;
	burst_loop(st, (size_t)gb_state_arg(st, 0), (size_t)gb_state_arg(st, 1),
	    tars_malloc, tars_free, "tars_malloc", 1);
}

static void bm_glibc_burst(gb_state *st, void *ctx)
{
	(void)ctx;
	burst_loop(st, (size_t)gb_state_arg(st, 0), (size_t)gb_state_arg(st, 1),
	    malloc, free, "malloc", 0);
}

/* ------------------------------------------------------------------------
 * Large and key allocations of 1, 2, 4 pages: alloc + free
 *
 * tars takes microseconds (mmap, mlock, madvise, munmap): a latency
 * sample per operation.  glibc serves these from its heap in tens of
 * nanoseconds: a sample per BENCH_BATCH, as for the pairs.
 * --------------------------------------------------------------------- */

static void bm_tars_large(gb_state *st, void *ctx)
{
	struct bench_stats bs;

	(void)ctx;
	bench_stats_begin(&bs);
	op_loop(st, (size_t)gb_state_arg(st, 0) * bench_page_size(),
	    tars_malloc, tars_free, "tars_malloc", 1);
	bench_stats_end(&bs, st, gb_state_iterations(st));
}

static void bm_tars_key_alloc(gb_state *st, void *ctx)
{
	struct bench_stats bs;

	(void)ctx;
	bench_stats_begin(&bs);
	op_loop(st, (size_t)gb_state_arg(st, 0) * bench_page_size(),
	    tars_malloc_key, tars_free, "tars_malloc_key", 1);
	bench_stats_end(&bs, st, gb_state_iterations(st));
}

static void bm_glibc_large(gb_state *st, void *ctx)
{
	(void)ctx;
	op_loop(st, (size_t)gb_state_arg(st, 0) * bench_page_size(),
	    malloc, free, "malloc", BENCH_BATCH);
}

/* ------------------------------------------------------------------------
 * Registration
 * --------------------------------------------------------------------- */

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/*
 * Google Benchmark runs families in registration order, each with all its
 * arguments.  One family per size and allocator, tars then glibc, keeps
 * the two lines of a ratio seconds apart instead of minutes, so that the
 * load of a shared machine drifts less between them.  The names are the
 * same as with one family per allocator.
 */
void bench_register_alloc(void)
{
	for (size_t i = 0; i < COUNT(pair_sizes); i++) {
		gb_bench_arg(gb_register("tars/pair", bm_tars_pair, NULL), pair_sizes[i]);
		gb_bench_arg(gb_register("glibc/pair", bm_glibc_pair, NULL), pair_sizes[i]);
	}

	for (size_t i = 0; i < COUNT(batch_counts); i++) {
		gb_bench *t = gb_register("tars/batch", bm_tars_batch, NULL);
		gb_bench *g = gb_register("glibc/batch", bm_glibc_batch, NULL);
		GB_ARGS(GB_ARG_NAMES(t, "", "n"), BATCH_SIZE, batch_counts[i]);
		GB_ARGS(GB_ARG_NAMES(g, "", "n"), BATCH_SIZE, batch_counts[i]);
	}

	for (size_t i = 0; i < COUNT(burst_counts); i++) {
		gb_bench *t = gb_register("tars/burst", bm_tars_burst, NULL);
		gb_bench *g = gb_register("glibc/burst", bm_glibc_burst, NULL);
		GB_ARGS(GB_ARG_NAMES(t, "", "k"), BATCH_SIZE, burst_counts[i]);
		GB_ARGS(GB_ARG_NAMES(g, "", "k"), BATCH_SIZE, burst_counts[i]);
	}

	for (int64_t pages = 1; pages <= 4; pages *= 2) {
		gb_bench_arg(GB_ARG_NAMES(gb_register("tars/large", bm_tars_large, NULL), "pages"), pages);
		gb_bench_arg(GB_ARG_NAMES(gb_register("tars/key_alloc", bm_tars_key_alloc, NULL), "pages"), pages);
		gb_bench_arg(GB_ARG_NAMES(gb_register("glibc/large", bm_glibc_large, NULL), "pages"), pages);
	}
}
