/*
 * bench_opts.c - option sweeps over the chunk hot path.
 *
 *   tars/opt/pair/SIZE/OPT:V     tars/pair/SIZE with option OPT set to V
 *   tars/opt/batch/n:N/OPT:V     tars/batch/64/n:N with OPT set to V
 *
 * Each run sets the option with tars_option_set before its loop and puts
 * the previous value back after it; a value the library refuses (EINVAL,
 * EBUSY) skips that run with the error instead of measuring the wrong
 * thing.  A sweep of an option the library's table no longer has (or a
 * value out of its range) is not registered at all.  Only options that
 * change the hot path are swept:
 *
 *   junk     0/1/2   fill on alloc and free, verify on reuse: cost grows
 *                    with the slot size, hence 64 and 2048
 *   canary   0/1     slack fill and check: needs slack, hence 68 and 200
 *   classes  0/1     power-of-two vs quarter-step classes: 68 and 200 land
 *                    in different slots
 *   random   0/1     slot and page choice: a pair and a 1k batch
 *   cache    0/8/64  empty pages kept or unmapped: a pair (one page that
 *                    empties every iteration) and a 1k batch (16 pages)
 */
#include "bench.h"

#include <stddef.h>

enum sweep_kind { SWEEP_PAIR, SWEEP_BATCH };

struct sweep {
	const char *opt;
	enum sweep_kind kind;
	int64_t sizes[2]; /* bytes (pair) or allocations (batch); 0 ends */
	int64_t values[3];
	size_t nvalues;
};

#define BATCH_SIZE 64

static const struct sweep sweeps[] = {
	{ "junk", SWEEP_PAIR, { 64, 2048 }, { 0, 1, 2 }, 3 },
	{ "canary", SWEEP_PAIR, { 68, 200 }, { 0, 1 }, 2 },
	{ "classes", SWEEP_PAIR, { 68, 200 }, { 0, 1 }, 2 },
	{ "random", SWEEP_PAIR, { 64, 0 }, { 0, 1 }, 2 },
	{ "random", SWEEP_BATCH, { 1024, 0 }, { 0, 1 }, 2 },
	{ "cache", SWEEP_PAIR, { 64, 0 }, { 0, 8, 64 }, 3 },
	{ "cache", SWEEP_BATCH, { 1024, 0 }, { 0, 8, 64 }, 3 },
	{ "spare", SWEEP_BATCH, { 1024, 0 }, { 1, 8, 64 }, 3 },
};

static void bm_sweep(gb_state *st, void *ctx)
{
	const struct sweep *sw = ctx;
	long saved;

	if (bench_option_push(st, sw->opt, (long)gb_state_arg(st, 1), &saved) != 0)
		return;
	if (sw->kind == SWEEP_PAIR)
		bench_run_tars_pair(st, (size_t)gb_state_arg(st, 0));
	else
		bench_run_tars_batch(st, BATCH_SIZE, (size_t)gb_state_arg(st, 0));
	bench_option_pop(st, sw->opt, saved);
}

void bench_register_opts(void)
{
	for (size_t i = 0; i < sizeof(sweeps) / sizeof(sweeps[0]); i++) {
		const struct sweep *sw = &sweeps[i];
		gb_bench *b;

		if (!bench_option_valid(sw->opt, (long)sw->values[0]))
			continue;
		if (sw->kind == SWEEP_PAIR) {
			b = gb_register("tars/opt/pair", bm_sweep, (void *)sw);
			GB_ARG_NAMES(b, "", sw->opt);
		} else {
			b = gb_register("tars/opt/batch", bm_sweep, (void *)sw);
			GB_ARG_NAMES(b, "n", sw->opt);
		}
		for (size_t s = 0; s < 2 && sw->sizes[s] != 0; s++)
			for (size_t v = 0; v < sw->nvalues; v++)
				if (bench_option_valid(sw->opt, (long)sw->values[v]))
					GB_ARGS(b, sw->sizes[s], sw->values[v]);
	}
}
