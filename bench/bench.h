/*
 * bench.h - helpers shared by the tars benchmark bodies.
 *
 * Latency percentiles of batch means.  Google Benchmark reports the mean
 * time per iteration of each run (and mean/median/stddev over
 * repetitions).  The spread is measured here: the body takes one timestamp
 * every `ops` operations (clock_gettime costs ~20 ns, so timing single
 * 10 ns operations this way is meaningless) and files the per-operation
 * mean of that stretch in a log-linear histogram (64 buckets per power of
 * two, <= 1.6% error).  p50, p99 and p99.9 of those means are reported as
 * counters batch_p50_ns, batch_p99_ns and batch_p99.9_ns.  A stretch is
 * short (64 fast operations, or one slow one), so a page fault, an mmap or
 * a preemption still stands out, but for fast operations these are not
 * per-operation tails (compare/ measures those, with the TSC).
 *
 * tars stats.  bench_stats_begin/bench_stats_end bracket a run (outside
 * the timed region) and report syscalls_per_op (tars system calls during
 * the run / operations) and, at the end of the run, every statistic tars
 * counts in pages, under its name in the library's table (chunk_pages,
 * cached_pages, guard_pages, ...).
 */
#ifndef TARS_BENCH_H
#define TARS_BENCH_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "gbench.h"
#include "tars.h"

/* ------------------------------------------------------------------------
 * util.c (no tars needed)
 * --------------------------------------------------------------------- */

/* Print "bench: what: strerror(err)" and exit(1). */
__attribute__((noreturn, cold)) void bench_die(const char *what, int err);

static inline uint64_t bench_now_ns(void)
{
	struct timespec ts;

	/* Served by the vDSO (~20 ns); the check is a predicted branch. */
	if (__builtin_expect(clock_gettime(CLOCK_MONOTONIC, &ts) != 0, 0))
		bench_die("clock_gettime", 0);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

#define BENCH_LAT_SUB 64 /* buckets per power of two */
#define BENCH_LAT_MAXBIT 48 /* per-op times up to 2^48 ps (~281 s) */
#define BENCH_LAT_NBUCKETS ((BENCH_LAT_MAXBIT - 5) * BENCH_LAT_SUB)

struct bench_lat {
	uint64_t last;  /* ns timestamp of the previous mark */
	uint64_t count; /* samples */
	uint64_t bucket[BENCH_LAT_NBUCKETS];
};

void bench_lat_init(struct bench_lat *lat);
void bench_lat_add(struct bench_lat *lat, uint64_t ns, uint64_t ops);
/* Counters batch_p50_ns, batch_p99_ns, batch_p99.9_ns (nothing when there
 * are no samples). */
void bench_lat_report(const struct bench_lat *lat, gb_state *st);

/* Restart the stretch now (after untimed work). */
static inline void bench_lat_restart(struct bench_lat *lat)
{
	lat->last = bench_now_ns();
}

/* The last `ops` operations ended now. */
static inline void bench_lat_mark(struct bench_lat *lat, uint64_t ops)
{
	uint64_t now = bench_now_ns();

	bench_lat_add(lat, now - lat->last, ops);
	lat->last = now;
}

/* A small fast PRNG (splitmix64) for shuffles outside timed regions. */
struct bench_rng {
	uint64_t s;
};

void bench_rng_seed(struct bench_rng *r);
uint64_t bench_rng_next(struct bench_rng *r);
/* Fisher-Yates shuffle of perm[0..n). */
void bench_shuffle(struct bench_rng *r, uint32_t *perm, size_t n);

/* gb_skip with "what: strerror(err)". */
void bench_skip_errno(gb_state *st, const char *what, int err);

size_t bench_page_size(void);

/* ------------------------------------------------------------------------
 * tarsutil.c
 * --------------------------------------------------------------------- */

struct bench_stats {
	struct tars_stats before;
};

void bench_stats_begin(struct bench_stats *bs);
/* ops: operations the run performed (for syscalls_per_op). */
void bench_stats_end(const struct bench_stats *bs, gb_state *st, uint64_t ops);

/* Set option name to value for one run; *saved receives the old value.
 * 0, or -1 after skipping the run with the error. */
int bench_option_push(gb_state *st, const char *name, long value, long *saved);
/* Restore the value bench_option_push saved (skips the run on failure). */
void bench_option_pop(gb_state *st, const char *name, long saved);

/* "junk=1,canary=1,..." of the current option values, for the context. */
void bench_options_string(char *out, size_t outlen);

/* 1 if the library has option name, value is in its range, and it can
 * change after the first allocation. */
int bench_option_valid(const char *name, long value);

/* ------------------------------------------------------------------------
 * Benchmark families (bench_alloc.c, bench_key.c, bench_opts.c)
 * --------------------------------------------------------------------- */

/* Batch size of the fast loops: one shim call and one timestamp per
 * BENCH_BATCH operations. */
#define BENCH_BATCH 64

void bench_register_alloc(void);
void bench_register_key(void);
void bench_register_opts(void);
void bench_register_keyarena(void);

/* The tars pair and batch runs (with stats), also run by the sweeps. */
void bench_run_tars_pair(gb_state *st, size_t size);
void bench_run_tars_batch(gb_state *st, size_t size, size_t n);

#endif /* TARS_BENCH_H */
