/*
 * wl_burst.c - a live set that swings: allocate K 64-byte buffers, then
 * free all K (in allocation order), again and again.  An allocator that
 * releases every page that empties and maps it again on the next burst
 * pays system calls per operation here; one that keeps them does not.
 * One whole burst runs untimed first, so the numbers are the steady state,
 * and every timed repetition covers whole bursts (as many frees as
 * allocations, however slow the backend).
 * syscalls_per_op comes from backends that count their own system calls
 * (tars); for the others see compare/README.md (strace -c).
 */
#include "compare.h"

#define BURST_SIZE 64

struct burst_ctx {
	void **ptr;
	size_t k;
};

static int burst_op(void *ctx, size_t i)
{
	struct burst_ctx *c = ctx;
	size_t phase = i % (2 * c->k);

	if (phase < c->k) {
		void *p = compare_alloc(BURST_SIZE);

		if (p == NULL)
			return -1;
		compare_touch(p, BURST_SIZE, (unsigned char)i);
		c->ptr[phase] = p;
	} else {
		compare_release(c->ptr[phase - c->k], BURST_SIZE);
		c->ptr[phase - c->k] = NULL;
	}
	return 0;
}

static void burst_one(const struct compare_workload *w, long kk)
{
	size_t k = (size_t)kk;
	struct measure_key key = { w->name, "", w->param, (double)k };
	struct burst_ctx c = { compare_mem(k * sizeof(void *)), k };
	struct run_result r = { 0 };
	size_t cleanup = 0;

	if (compare_prepare(k * BURST_SIZE * 2, k + 16, &key) != 0)
		goto out;
	/* Phases are positions in the burst: the warm-up ends where a burst
	 * ends, and the repetitions start at index 0 of the next one. */
	run_batches(burst_op, &c, 0, 2 * k, 2 * k, 0, NULL, &r);
	if (r.err != 0) {
		compare_emit_failure(&key, "ns_per_op", &r, "warm-up bursts");
	} else {
		(void)run_reps_whole(&key, burst_op, &c, compare_cfg.rep_seconds,
		    "one alloc + touch or one free of a burst of K 64-byte buffers",
		    2 * k);
		if (compare_backend.counters)
			compare_backend.counters(&key);
	}
	for (size_t i = 0; i < k; i++)
		if (c.ptr[i]) {
			compare_release(c.ptr[i], BURST_SIZE);
			cleanup++;
		}
	/* compare/syscalls.py counts these with the timed operations. */
	compare_emit(&key, "cleanup_frees", (double)cleanup, "count",
	    "frees of the last, unfinished burst, after the timed repetitions");
out:
	compare_mem_free(c.ptr, k * sizeof(void *));
}

static int burst_run(const struct compare_workload *w)
{
	compare_for_params(w, 1, 1L << 24, burst_one);
	return 0;
}

COMPARE_WORKLOAD(wl_burst) = {
	.name = "burst",
	.what = "allocate K 64-byte buffers, then free all K, repeatedly (steady state)",
	.param = "k",
	.params = {
		[SCALE_TINY] = COMPARE_PARAMS(64, 1024),
		[SCALE_DEFAULT] = COMPARE_PARAMS(64, 1024, 4096),
		[SCALE_FULL] = COMPARE_PARAMS(64, 1024, 4096),
	},
	COMPARE_HEADLINES(
		{ "burst K=1024", "", 1024, "ns_per_op", 0 },
		{ "burst K=4096, per-op p99", "", 4096, "op_p99_ns", 0 },
		{ "burst K=1024: syscalls/op", "", 1024, "syscalls_per_op", 0 },
	),
	.run = burst_run,
};
