/*
 * gbench.h - a C interface to Google Benchmark (libbenchmark 1.7.1).
 *
 * Google Benchmark is C++ only; gbench.cc wraps the few parts the tars
 * benchmarks need so that benchmark bodies can be plain C.
 *
 * A benchmark is a C function and a context pointer, registered under a
 * name before gb_main() runs.  The function owns its timed loop and asks
 * the shim for iterations a batch at a time, so the only shim call in the
 * loop is one per batch (an indirect call per iteration would be measured
 * at these speeds):
 *
 *	static void bm_pair(gb_state *st, void *ctx)
 *	{
 *		size_t size = (size_t)gb_state_arg(st, 0);
 *		(setup: not timed)
 *		while (gb_batch(st, 64))
 *			for (int i = 0; i < 64; i++) {
 *				void *p = malloc(size);
 *				GB_KEEP(p);
 *				free(p);
 *			}
 *		(teardown: not timed)
 *	}
 *
 *	gb_bench_arg(gb_register("glibc/pair", bm_pair, NULL), 64);
 *						->  "glibc/pair/64"
 *
 * The timer starts with the first gb_batch() call and stops when a
 * gb_batch() call returns 0.  A batch may run past the iteration count
 * Google Benchmark asked for; it counts every iteration run, so the time
 * per iteration stays right.  A body must either loop until gb_batch()
 * returns 0 or call gb_skip() (the shim reports a body that returns early
 * without either as an error instead of letting the library abort).
 *
 * Output: use --benchmark_out=FILE --benchmark_out_format=json; the CSV
 * output of 1.7.1 is not clean enough to parse.
 * 1.7.1 flag forms: --benchmark_min_time takes a plain number of seconds
 * (no "s" or "x" suffix).
 */
#ifndef GBENCH_H
#define GBENCH_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct gb_bench gb_bench; /* a registered benchmark family */
typedef struct gb_state gb_state; /* one run of one benchmark instance */
typedef void gb_fn(gb_state *st, void *ctx);

/* Keep a value alive against the optimizer without costing an instruction. */
#define GB_KEEP(p) __asm__ volatile("" : : "r"(p) : "memory")

/* ------------------------------------------------------------------------
 * Registration (before gb_main).  Every function returns b for chaining
 * and aborts with a message on a NULL b.
 * --------------------------------------------------------------------- */

/* name is copied.  ctx is passed, untouched, to every run of fn. */
gb_bench *gb_register(const char *name, gb_fn *fn, void *ctx);

/* One instance per call: gb_bench_arg(b, 64) -> "name/64". */
gb_bench *gb_bench_arg(gb_bench *b, int64_t x);
/* One instance with several arguments: "name/x0/x1". */
gb_bench *gb_bench_args(gb_bench *b, const int64_t *xs, size_t n);
#define GB_ARGS(b, ...) \
	gb_bench_args((b), (const int64_t[]){__VA_ARGS__}, \
	    sizeof((const int64_t[]){__VA_ARGS__}) / sizeof(int64_t))
/* Powers of mult (default 8) from lo to hi, both included. */
gb_bench *gb_bench_range(gb_bench *b, int64_t lo, int64_t hi);
gb_bench *gb_bench_range_multiplier(gb_bench *b, int mult);
/* lo, lo+step, ... up to hi. */
gb_bench *gb_bench_dense_range(gb_bench *b, int64_t lo, int64_t hi, int step);
/* Names printed before the arguments: "name/size:64/junk:1".  An empty
 * string prints the bare value. */
gb_bench *gb_bench_arg_names(gb_bench *b, const char *const *names, size_t n);
#define GB_ARG_NAMES(b, ...) \
	gb_bench_arg_names((b), (const char *const[]){__VA_ARGS__}, \
	    sizeof((const char *const[]){__VA_ARGS__}) / sizeof(const char *))

gb_bench *gb_bench_repetitions(gb_bench *b, int n);
gb_bench *gb_bench_min_time(gb_bench *b, double seconds);
gb_bench *gb_bench_iterations(gb_bench *b, uint64_t n); /* fixed count */
/* The body reports its own time with gb_batch_manual(). */
gb_bench *gb_bench_manual_time(gb_bench *b);
gb_bench *gb_bench_real_time(gb_bench *b); /* wall clock, not CPU time */

enum gb_unit { GB_NS, GB_US, GB_MS, GB_S };
gb_bench *gb_bench_unit(gb_bench *b, enum gb_unit unit);

/* ------------------------------------------------------------------------
 * Inside a benchmark body
 * --------------------------------------------------------------------- */

/* Start the next batch of n iterations (n >= 1): 1 to run it, 0 when the
 * benchmark is done (or was skipped). */
int gb_batch(gb_state *st, uint64_t n);

/* For gb_bench_manual_time(): record `seconds`, the time the batch just
 * finished took (0 before the first batch), then as gb_batch(). */
int gb_batch_manual(gb_state *st, uint64_t n, double seconds);

/* Argument i of this instance; i below the number of arguments it was
 * registered with (the library asserts). */
int64_t gb_state_arg(const gb_state *st, size_t i);
/* Iterations run so far (all of them once gb_batch() returned 0). */
uint64_t gb_state_iterations(const gb_state *st);

/* Counter flags (Google Benchmark's Counter::Flags). */
#define GB_COUNTER_RATE 0x1u           /* value / seconds */
#define GB_COUNTER_AVG_THREADS 0x2u    /* value / threads */
#define GB_COUNTER_ITER_INVARIANT 0x4u /* value * iterations */
#define GB_COUNTER_AVG_ITERATIONS 0x8u /* value / iterations */
#define GB_COUNTER_INVERT 0x80000000u  /* 1 / value, after the above */

/* Set counter `name` (copied) to value; reported in the JSON "name" field
 * of the run and averaged by the aggregates. */
void gb_counter(gb_state *st, const char *name, double value, unsigned flags);

/* Mark the run failed with msg (copied): the JSON row carries
 * "error_occurred": true and "error_message".  The next gb_batch() returns
 * 0; a body that has not looped yet may return at once. */
void gb_skip(gb_state *st, const char *msg);
int gb_skipped(const gb_state *st);

void gb_label(gb_state *st, const char *label);
void gb_items_processed(gb_state *st, uint64_t items);
void gb_bytes_processed(gb_state *st, uint64_t bytes);
/* Exclude a stretch from the timed region: only between two gb_batch()
 * calls of a running loop (the library aborts otherwise).  Each costs two
 * clock reads and more: not for batches of fast operations. */
void gb_pause(gb_state *st);
void gb_resume(gb_state *st);

/* ------------------------------------------------------------------------
 * Running
 * --------------------------------------------------------------------- */

/* A key/value pair for the "context" object of the JSON output. */
void gb_context(const char *key, const char *value);

/* Parse the --benchmark_* flags, run the matching benchmarks, report.
 * 0 on success; 1 on an unrecognised argument or when no benchmark
 * matched the filter; 2 when some benchmark was skipped with an error. */
int gb_main(int argc, char **argv);

#ifdef __cplusplus
}
#endif
#endif /* GBENCH_H */
