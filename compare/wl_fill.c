/* wl_fill.c - N live 64-byte buffers, then freed in random order: the
 * latency of each half, and the page usage at the peak of the first fill
 * of a fresh process. */
#include "compare.h"

#include <errno.h>
#include <string.h>

#define FILL_SIZE 64

struct fill_ctx {
	void **ptr;
	size_t *order;
};

static int fill_alloc(void *ctx, size_t i)
{
	struct fill_ctx *c = ctx;
	void *p = compare_alloc(FILL_SIZE);

	if (p == NULL)
		return -1;
	compare_touch(p, FILL_SIZE, (unsigned char)i);
	c->ptr[i] = p;
	return 0;
}

static int fill_free(void *ctx, size_t i)
{
	struct fill_ctx *c = ctx;
	size_t j = c->order[i];

	compare_release(c->ptr[j], FILL_SIZE);
	c->ptr[j] = NULL;
	return 0;
}

static void fill_peak(const struct measure_key *k, const struct memsnap *base, size_t count)
{
	struct memsnap peak;

	if (memsnap_take(&peak) != 0)
		compare_progress("  fill: /proc unreadable: %s", strerror(errno));
	compare_emit_memory(k, &peak, base);
	compare_emit(k, "rss_per_buffer_bytes", (peak.rss - base->rss) / (double)count,
	    "bytes", "VmRSS growth / live buffers (64-byte buffers)");
	compare_emit(k, "overhead_per_buffer_bytes",
	    (peak.rss - base->rss) / (double)count - FILL_SIZE, "bytes",
	    "VmRSS growth / live buffers - 64 requested bytes");
	compare_emit(k, "vma_per_buffer", (peak.vmas - base->vmas) / (double)count,
	    "count", "VMA growth / live buffers");
	if (compare_backend.counters)
		compare_backend.counters(k);
}

static void fill_one(const struct compare_workload *w, long live)
{
	size_t count = (size_t)live;
	struct measure_key k = { w->name, "", w->param, (double)count };
	struct measure_key ka = k, kf = k;
	struct fill_ctx c;
	struct timing ta, tf;
	struct memsnap base, peak;
	struct rng rng;
	/* The first fill of a fresh process is the measurement (page usage
	 * too); the full scale repeats it in the same process for steadier
	 * latencies, the default scale takes its spread from the processes. */
	int reps = compare_cfg.scale == SCALE_FULL ? 3 : 1;
	double am[8], fm[8], flt0, flt_alloc = 0, flt_free = 0;
	const size_t b = 16;
	int done_reps = 0;

	ka.variant = "alloc";
	kf.variant = "free";
	c.ptr = compare_mem(count * sizeof *c.ptr);
	c.order = compare_mem(count * sizeof *c.order);
	rng_seed(&rng, compare_cfg.seed ^ count);
	for (size_t i = 0; i < count; i++)
		c.order[i] = i;
	for (size_t i = count - 1; i > 0; i--) {
		size_t j = rng_below(&rng, i + 1), t = c.order[i];

		c.order[i] = c.order[j];
		c.order[j] = t;
	}
	timing_init(&ta, (size_t)reps * (count / b + 1), (size_t)reps * (count / b + 1));
	timing_init(&tf, (size_t)reps * (count / b + 1), (size_t)reps * (count / b + 1));
	if (compare_prepare(count * FILL_SIZE, count, &k) != 0)
		goto out;
	if (memsnap_take(&base) != 0)
		compare_progress("  fill: /proc unreadable: %s", strerror(errno));

	for (int rep = 0; rep < reps; rep++) {
		struct run_result r = { 0 };

		flt0 = compare_minflt();
		run_batches(fill_alloc, &c, 0, count, b, 1, &ta, &r);
		flt_alloc += compare_minflt() - flt0;
		if (r.err != 0) {
			compare_emit_failure(&ka, "ns_per_op", &r, "fill");
			compare_emit_full(&k, "live_reached", (double)r.done, "count",
			    "failed", r.err, "live buffers when the allocation failed");
			(void)memsnap_take(&peak);
			compare_emit_memory(&k, &peak, &base);
			/* Free what was allocated, untimed. */
			for (size_t i = 0; i < r.done; i++)
				compare_release(c.ptr[i], FILL_SIZE);
			goto out;
		}
		am[rep] = (double)r.ns / (double)r.batched;
		if (rep == 0)
			fill_peak(&k, &base, count); /* the first fill of a fresh process */
		r = (struct run_result){ 0 };
		flt0 = compare_minflt();
		run_batches(fill_free, &c, 0, count, b, 1, &tf, &r);
		flt_free += compare_minflt() - flt0;
		fm[rep] = (double)r.ns / (double)r.batched;
		done_reps++;
	}
	compare_emit_latency(&ka, am, done_reps, &ta, "alloc + touch 64 bytes");
	compare_emit(&ka, "minflt_per_op", flt_alloc / ((double)count * done_reps),
	    "faults/op", "minor page faults while filling");
	compare_emit_latency(&kf, fm, done_reps, &tf, "free, random order");
	compare_emit(&kf, "minflt_per_op", flt_free / ((double)count * done_reps),
	    "faults/op", "minor page faults while freeing");
out:
	timing_free(&ta);
	timing_free(&tf);
	compare_mem_free(c.ptr, count * sizeof *c.ptr);
	compare_mem_free(c.order, count * sizeof *c.order);
}

static int fill_run(const struct compare_workload *w)
{
	compare_for_params(w, 1, 1L << 30, fill_one);
	return 0;
}

COMPARE_WORKLOAD(wl_fill) = {
	.name = "fill",
	.what = "N live 64-byte buffers (alloc + touch), then freed in random order; "
	    "page usage at the peak",
	.param = "live",
	.params = {
		[SCALE_TINY] = COMPARE_PARAMS(1000),
		[SCALE_DEFAULT] = COMPARE_PARAMS(10000, 100000),
		[SCALE_FULL] = COMPARE_PARAMS(1000, 10000, 100000, 1000000),
	},
	.per_param = 1,
	COMPARE_HEADLINES(
		{ "fill 10k: alloc", "alloc", 10000, "ns_per_op", 0 },
		{ "fill 10k: free", "free", 10000, "ns_per_op", 0 },
		{ "fill 10k: RSS/buffer", "", 10000, "rss_per_buffer_bytes", 0 },
		{ "fill 100k: RSS/buffer", "", 100000, "rss_per_buffer_bytes", 0 },
		{ "fill 100k: VMAs", "", 100000, "vma_count", 0 },
	),
	.run = fill_run,
};
