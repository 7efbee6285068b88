/*
 * selftest.c - checks the shim itself, with glibc only (no tars needed).
 *
 * Each benchmark exercises one feature of gbench.h; bench/check_json.py
 * selftest then checks the JSON for the names, counters, times and errors
 * these produce.  Runs in well under a second.
 *
 *   selftest/args/8/n:3/iterations:1000
 *                          arguments, argument names, context pointer,
 *                          counters with each flag, fixed iterations
 *   selftest/manual/manual_time
 *                          manual time: 1 us per iteration exactly
 *   selftest/reps/min_time:0.010/repeats:3
 *                          repetitions (aggregates), latency counters
 *   selftest/range/{8,16,32}/iterations:100
 *                          a range with multiplier 2, microsecond unit
 *   selftest/dense/{1,2,3}/iterations:100/real_time
 *                          a dense range, wall time, pause/resume, bytes
 *   selftest/skip          gb_skip before the loop
 *   selftest/early         a body returning early (the shim's guard)
 */
#include "bench.h"

#include <stdio.h>
#include <stdlib.h>

#define MAGIC 0x7a125u

struct ctx {
	unsigned magic;
	uint64_t runs;
};

static struct ctx args_ctx = { MAGIC, 0 };

static void bm_args(gb_state *st, void *ctx)
{
	struct ctx *c = ctx;
	uint64_t sum = 0;

	c->runs++;
	while (gb_batch(st, 10))
		for (int i = 0; i < 10; i++) {
			sum += (uint64_t)i;
			GB_KEEP(sum);
		}
	uint64_t it = gb_state_iterations(st);
	gb_counter(st, "ctx_ok", c->magic == MAGIC, 0);
	gb_counter(st, "arg0", (double)gb_state_arg(st, 0), 0);
	gb_counter(st, "arg1", (double)gb_state_arg(st, 1), 0);
	gb_counter(st, "iters", (double)it, 0);
	gb_counter(st, "per_iter", (double)it, GB_COUNTER_AVG_ITERATIONS);   /* 1 */
	gb_counter(st, "invariant", 2.0, GB_COUNTER_ITER_INVARIANT);        /* 2 * it */
	gb_counter(st, "rate", 1.0, GB_COUNTER_RATE);                       /* > 0 */
	gb_counter(st, "inverse", 4.0, GB_COUNTER_INVERT);                  /* 0.25 */
	gb_items_processed(st, it);
	gb_label(st, "selftest-label");
}

static void bm_manual(gb_state *st, void *ctx)
{
	double secs = 0;

	(void)ctx;
	while (gb_batch_manual(st, 16, secs)) {
		void *p = malloc(64);
		GB_KEEP(p);
		free(p);
		secs = 16 * 1e-6;
	}
}

static void bm_reps(gb_state *st, void *ctx)
{
	struct bench_lat lat;

	(void)ctx;
	bench_lat_init(&lat);
	while (gb_batch(st, BENCH_BATCH)) {
		for (int i = 0; i < BENCH_BATCH; i++) {
			void *p = malloc(64);
			GB_KEEP(p);
			free(p);
		}
		bench_lat_mark(&lat, BENCH_BATCH);
	}
	bench_lat_report(&lat, st);
}

static void bm_trivial(gb_state *st, void *ctx)
{
	uint64_t x = 0;

	(void)ctx;
	while (gb_batch(st, 10)) {
		for (int i = 0; i < 10; i++) {
			x += (uint64_t)gb_state_arg(st, 0);
			GB_KEEP(x);
		}
		gb_pause(st);
		gb_resume(st);
	}
	gb_bytes_processed(st, gb_state_iterations(st) * 64);
}

static void bm_skip(gb_state *st, void *ctx)
{
	(void)ctx;
	gb_skip(st, "selftest: skipped on purpose");
	if (!gb_skipped(st))
		abort();
}

static void bm_early(gb_state *st, void *ctx)
{
	(void)st;
	(void)ctx;
}

int main(int argc, char **argv)
{
	gb_bench *b = gb_register("selftest/args", bm_args, &args_ctx);
	GB_ARG_NAMES(b, "", "n");
	GB_ARGS(b, 8, 3);
	gb_bench_iterations(b, 1000);

	gb_bench_manual_time(gb_register("selftest/manual", bm_manual, NULL));
	gb_bench_min_time(gb_bench_repetitions(gb_register("selftest/reps", bm_reps, NULL), 3), 0.01);
	b = gb_register("selftest/range", bm_trivial, NULL);
	gb_bench_range(gb_bench_range_multiplier(b, 2), 8, 32);
	gb_bench_iterations(gb_bench_unit(b, GB_US), 100);
	b = gb_register("selftest/dense", bm_trivial, NULL);
	gb_bench_dense_range(b, 1, 3, 1);
	gb_bench_iterations(gb_bench_real_time(b), 100);
	gb_register("selftest/skip", bm_skip, NULL);
	gb_register("selftest/early", bm_early, NULL);

	gb_context("selftest", "1");
	int rc = gb_main(argc, argv);
	/* Two runs are skipped on purpose: gb_main must say so with 2. */
	if (rc != 2) {
		fprintf(stderr, "selftest: gb_main returned %d, expected 2\n", rc);
		return 1;
	}
	if (args_ctx.runs == 0) {
		fprintf(stderr, "selftest: the context benchmark never ran\n");
		return 1;
	}
	return 0;
}
