/*
 * runner.c - how every workload times its operations.
 *
 * Batches.  Operations run in batches calibrated to last ~2 us: one
 * clock_gettime pair per batch, its own ~20 ns subtracted, gives one
 * batch-mean sample (the mean ns/op of the batch).  ns_per_op is the median
 * over repetitions of each repetition's mean over its batches.  Percentiles
 * of batch means (batch_p50_ns ...) say how batches vary, not how single
 * operations do: a fast allocator gets ~100 operations averaged per sample,
 * a system-call-bound one a single operation.
 *
 * Single operations.  After every batch a few operations (4, or 1 when the
 * batch is shorter than 4) are timed one by one with the timestamp counter
 * (measure.c: fenced rdtsc/rdtscp, the timer's own median cost subtracted,
 * ticks calibrated to ns).  Their percentiles (op_p50_ns, op_p99_ns,
 * op_p999_ns) are per-operation tails: a page fault, an mmap or an
 * mprotect shows at its real size.  They are not part of ns_per_op.
 *
 * Everything random (sizes, slots, free order) is drawn before the timed
 * region.  /proc is read only between timed regions.
 */
#include "compare.h"

#include <errno.h>
#include <math.h>
#include <string.h>

#define BATCH_TARGET_NS 2000.0
#define BATCH_MAX 256
#define SINGLES 4                /* operations timed alone after a batch */
#define MAX_BATCHES_PER_REP 50000

void timing_init(struct timing *t, size_t batches, size_t ops)
{
	samples_init(&t->batch, batches);
	samples_init(&t->op, ops);
}

void timing_free(struct timing *t)
{
	samples_free(&t->batch);
	samples_free(&t->op);
}

static size_t singles_for(size_t b)
{
	return b >= SINGLES ? SINGLES : 1;
}

void run_batches(op_fn op, void *ctx, size_t first, size_t n, size_t b,
    size_t singles, struct timing *t, struct run_result *r)
{
	double over = compare_timer_overhead_ns();
	size_t i = 0;

	if (singles > 0)
		(void)compare_tsc_ns(0); /* calibrated before the first sample */
	while (i < n) {
		size_t m = n - i < b ? n - i : b;
		uint64_t t0, t1;
		double dt;
		size_t j;

		compare_fail_call = NULL;
		t0 = compare_now_ns();
		for (j = 0; j < m; j++)
			if (op(ctx, first + i + j) != 0)
				break;
		t1 = compare_now_ns();
		dt = (double)(t1 - t0) - over;
		if (dt < 0)
			dt = 0;
		if (j < m) {
			r->err = errno ? errno : EIO;
			r->call = compare_fail_call;
			r->done += j;
			return;
		}
		if (t)
			samples_add(&t->batch, dt / (double)m);
		r->ns += (uint64_t)dt;
		r->done += m;
		r->batched += m;
		i += m;
		for (size_t s = 0; s < singles && i < n; s++, i++) {
			uint64_t c0, c1;
			int rc;

			compare_fail_call = NULL;
			c0 = compare_tsc_begin();
			rc = op(ctx, first + i);
			c1 = compare_tsc_end();
			if (rc != 0) {
				r->err = errno ? errno : EIO;
				r->call = compare_fail_call;
				return;
			}
			if (t)
				samples_add(&t->op, compare_tsc_ns(c1 - c0));
			r->done++;
		}
	}
}

/* Batch size for ~BATCH_TARGET_NS per batch, from a short warm-up that also
 * brings the backend to a steady state.  0 on failure (r says why). */
static size_t calibrate(op_fn op, void *ctx, struct run_result *r)
{
	struct run_result w = { 0 };
	double est = INFINITY;

	run_batches(op, ctx, 0, 16, 16, 0, NULL, &w);
	/* The fastest of a few rounds: the first ones pay for cold caches. */
	for (int round = 0; round < 4 && w.err == 0; round++) {
		uint64_t ns0 = w.ns;

		run_batches(op, ctx, w.done, 64, 64, 0, NULL, &w);
		if (w.err == 0 && (double)(w.ns - ns0) / 64 < est)
			est = (double)(w.ns - ns0) / 64;
	}
	if (w.err != 0) {
		*r = w;
		return 0;
	}
	r->done = w.done;
	if (est < 1)
		est = 1;
	est = ceil(BATCH_TARGET_NS / est);
	return est > BATCH_MAX ? BATCH_MAX : (size_t)est;
}

void compare_emit_failure(const struct measure_key *k, const char *metric,
    const struct run_result *r, const char *what)
{
	char note[256];

	snprintf(note, sizeof note, "%s failed after %zu operations in %s(): %s",
	    what, r->done, r->call ? r->call : compare_backend.alloc_name,
	    strerror(r->err));
	compare_emit_status(k, metric, "failed", r->err, note);
	compare_progress("  %s %s %s=%g: %s", k->workload, k->variant, k->param,
	    k->param_value, note);
}

void compare_emit_latency(const struct measure_key *k, const double *rep_means,
    int nreps, struct timing *t, const char *unit_op)
{
	double med = compare_median(rep_means, nreps);
	char note[200];

	if (nreps <= 0 || t->batch.n == 0)
		return;
	snprintf(note, sizeof note, "%s; median of %d repetition means", unit_op, nreps);
	compare_emit(k, "ns_per_op", med, "ns", note);
	compare_emit(k, "ops_per_s", med > 0 ? 1e9 / med : NAN, "ops/s", unit_op);
	snprintf(note, sizeof note, "%s; percentile of batch means (~2 us batches)", unit_op);
	compare_emit(k, "batch_p50_ns", samples_quantile(&t->batch, 0.50), "ns", note);
	compare_emit(k, "batch_p99_ns", samples_quantile(&t->batch, 0.99), "ns", note);
	compare_emit(k, "batch_p999_ns", samples_quantile(&t->batch, 0.999), "ns", note);
	compare_emit(k, "batches", (double)t->batch.n, "count", "timed batches");
	if (t->op.n == 0)
		return;
	snprintf(note, sizeof note, "%s; percentile of single operations (TSC)", unit_op);
	compare_emit(k, "op_p50_ns", samples_quantile(&t->op, 0.50), "ns", note);
	compare_emit(k, "op_p99_ns", samples_quantile(&t->op, 0.99), "ns", note);
	compare_emit(k, "op_p999_ns", samples_quantile(&t->op, 0.999), "ns", note);
	compare_emit(k, "op_samples", (double)t->op.n, "count",
	    "operations timed one by one");
}

int run_reps(const struct measure_key *k, op_fn op, void *ctx, double rep_seconds,
    const char *unit_op)
{
	return run_reps_whole(k, op, ctx, rep_seconds, unit_op, 1);
}

/* Ops first .. first+n-1, untimed except for the batch and single samples
 * run_batches files (t may be NULL); r accumulates. */
static void run_more(op_fn op, void *ctx, size_t first, size_t n, size_t b, size_t s,
    struct timing *t, struct run_result *r)
{
	if (n > 0)
		run_batches(op, ctx, first, n, b, s, t, r);
}

int run_reps_whole(const struct measure_key *k, op_fn op, void *ctx, double rep_seconds,
    const char *unit_op, size_t granule)
{
	int reps = compare_cfg.reps;
	double means[64];
	struct timing t;
	struct run_result r = { 0 };
	size_t b, s, next;
	double flt0, flt1, sys0, ops_total = 0;

	b = calibrate(op, ctx, &r);
	if (b == 0) {
		compare_emit_failure(k, "ns_per_op", &r, "calibration");
		return -1;
	}
	next = r.done;
	s = singles_for(b);
	/* Every repetition covers whole granules (burst: allocs and frees in
	 * equal numbers), from a granule boundary on. */
	if (granule > 1 && next % granule != 0) {
		r = (struct run_result){ 0 };
		run_more(op, ctx, next, granule - next % granule, b, 0, NULL, &r);
		if (r.err != 0) {
			compare_emit_failure(k, "ns_per_op", &r, "alignment to a whole granule");
			return -1;
		}
		next += r.done;
	}
	timing_init(&t, (size_t)reps * MAX_BATCHES_PER_REP,
	    (size_t)reps * MAX_BATCHES_PER_REP * s);
	flt0 = compare_minflt();
	sys0 = compare_syscalls();
	for (int rep = 0; rep < reps; rep++) {
		uint64_t start = compare_now_ns();
		uint64_t budget = (uint64_t)(rep_seconds * 1e9);
		size_t limit = t.batch.n + MAX_BATCHES_PER_REP;

		r = (struct run_result){ 0 };
		do {
			run_batches(op, ctx, next + r.done, (b + s) * 8, b, s, &t, &r);
			if (r.err == 0 && granule > 1 &&
			    (compare_now_ns() - start >= budget || t.batch.n + 8 > limit))
				run_more(op, ctx, next + r.done,
				    (granule - (next + r.done) % granule) % granule, b, s, &t, &r);
			if (r.err != 0) {
				compare_emit_failure(k, "ns_per_op", &r, "timed run");
				timing_free(&t);
				return -1;
			}
		} while (compare_now_ns() - start < budget && t.batch.n + 8 <= limit);
		next += r.done;
		ops_total += (double)r.done;
		means[rep] = (double)r.ns / (double)r.batched;
	}
	flt1 = compare_minflt();
	compare_emit_latency(k, means, reps, &t, unit_op);
	compare_emit(k, "minflt_per_op", (flt1 - flt0) / ops_total, "faults/op",
	    "minor page faults over the timed repetitions");
	compare_emit(k, "ops", ops_total, "count", "operations in the timed repetitions");
	if (!isnan(sys0))
		compare_emit(k, "syscalls_per_op", (compare_syscalls() - sys0) / ops_total,
		    "count", "system calls the backend counted itself, per operation");
	timing_free(&t);
	return 0;
}

int compare_prepare(size_t max_bytes, size_t max_count, const struct measure_key *k)
{
	char note[256] = "";
	size_t arena = 0;

	if (compare_backend.prepare == NULL)
		return 0;
	errno = 0;
	if (compare_backend.prepare(max_bytes, max_count, &arena, note, sizeof note) != 0) {
		int e = errno;

		compare_emit_status(k, "ns_per_op", "failed", e, note);
		compare_progress("  prepare failed: %s (%s)", strerror(e), note);
		return -1;
	}
	if (arena)
		compare_emit(k, "arena_bytes", (double)arena, "bytes", note);
	return 0;
}

size_t compare_params(const struct compare_workload *w, long *out, size_t max)
{
	const struct compare_params *p = &w->params[compare_cfg.scale];
	size_t n = p->n < max ? p->n : max;

	if (compare_cfg.param >= 0) {
		out[0] = compare_cfg.param;
		return 1;
	}
	memcpy(out, p->v, n * sizeof *out);
	return n;
}

void compare_for_params(const struct compare_workload *w, long min, long max,
    void (*one)(const struct compare_workload *w, long value))
{
	long list[32];
	size_t n = compare_params(w, list, NELEM(list));

	for (size_t i = 0; i < n; i++) {
		if (list[i] < min || list[i] > max) {
			compare_progress("  %s %s=%ld: out of range %ld..%ld", w->name, w->param,
			    list[i], min, max);
			continue;
		}
		compare_progress("  %s %s=%ld", w->name, w->param, list[i]);
		one(w, list[i]);
	}
}

int compare_variant_on(const char *variant)
{
	const char *l = compare_cfg.variants;
	size_t n = strlen(variant);

	if (l == NULL)
		return 1;
	for (;;) {
		const char *end = strchr(l, ',');
		size_t len = end ? (size_t)(end - l) : strlen(l);

		if (len == n && strncmp(l, variant, n) == 0)
			return 1;
		if (end == NULL)
			return 0;
		l = end + 1;
	}
}

double compare_syscalls(void)
{
	double v = compare_backend.syscalls ? compare_backend.syscalls() : -1;

	return v < 0 ? NAN : v;
}
