/*
 * workloads.c - the seven workloads, identical for every backend.
 *
 * Timing: operations run in batches; one clock read pair per batch, the
 * timer's own cost subtracted, gives one sample (mean ns/op of the batch).
 * The batch size is calibrated so a batch lasts ~2 us, which keeps the
 * ~20 ns clock cost out of the numbers while leaving enough batches for
 * p99.9.  ns_per_op is the median over repetitions of each repetition's
 * mean; the percentiles are over all batches of all repetitions.
 *
 * Everything random (sizes, slots, free order) is drawn before the timed
 * region.  /proc is read only between timed regions.
 */
#include "compare.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define BATCH_TARGET_NS 2000.0
#define BATCH_MAX 256
#define MAX_SAMPLES_PER_REP 50000

static const size_t pair_sizes[] = { 16, 32, 64, 68, 128, 200, 208, 256, 512, 1024, 2048 };
static const size_t pair_sizes_full[] = { 16, 32, 64, 68, 128, 200, 208, 256, 512, 1024,
	2048, 4096, 8192 };
static const size_t crypto_sizes[] = { 16, 32, 64, 68, 128, 200, 208, 256, 512, 1024, 2048 };
static const size_t session_sizes[] = { 32, 64, 68, 200, 208 };
#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

#define FILL_SIZE 64
#define CAPACITY_SIZE 64
#define CAPACITY_CAP 2000000

/* ------------------------------------------------------------------------
 * Generic batched runner
 * --------------------------------------------------------------------- */

/* One operation; 0, or -1 with errno set (compare_fail_call says which
 * call failed when the backend knows). */
typedef int (*op_fn)(void *ctx, size_t i);

struct run_result {
	size_t done;      /* operations completed */
	uint64_t ns;      /* timed nanoseconds, timer cost removed */
	int err;          /* errno of the failing operation, 0 if none */
	const char *call; /* which call failed */
};

/* Runs operations first .. first+n-1 in batches of b, one sample each. */
static void run_batches(op_fn op, void *ctx, size_t first, size_t n, size_t b,
    struct samples *s, struct run_result *r)
{
	double over = compare_timer_overhead_ns();
	size_t i = 0;

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
		if (s)
			samples_add(s, dt / (double)m);
		r->ns += (uint64_t)dt;
		r->done += m;
		i += m;
	}
}

/* Batch size for ~BATCH_TARGET_NS per batch, from a short warm-up that also
 * brings the backend to a steady state.  0 on failure (r says why). */
static size_t calibrate(op_fn op, void *ctx, struct run_result *r)
{
	struct run_result w = { 0 };
	double est = INFINITY;
	size_t i = 0;

	run_batches(op, ctx, 0, 16, 16, NULL, &w);
	/* The fastest of a few rounds: the first ones pay for cold caches. */
	for (int round = 0; round < 4 && w.err == 0; round++) {
		uint64_t ns0 = w.ns;

		i = w.done;
		run_batches(op, ctx, i, 64, 64, NULL, &w);
		if (w.err == 0 && (double)(w.ns - ns0) / 64 < est)
			est = (double)(w.ns - ns0) / 64;
	}
	if (w.err != 0) {
		*r = w;
		return 0;
	}
	if (est < 1)
		est = 1;
	est = ceil(BATCH_TARGET_NS / est);
	return est > BATCH_MAX ? BATCH_MAX : (size_t)est;
}

static void emit_failure(const struct measure_key *k, const char *metric,
    const struct run_result *r, const char *what)
{
	char note[256];

	snprintf(note, sizeof note, "%s failed after %zu operations in %s(): %s",
	    what, r->done, r->call ? r->call : "alloc", strerror(r->err));
	compare_emit_status(k, metric, "failed", r->err, note);
	compare_progress("  %s %s %s=%g: %s", k->workload, k->variant, k->param,
	    k->param_value, note);
}

/*
 * Time-bounded repetitions of op: calibration, then reps of about
 * rep_seconds each.  Emits the latency rows (and minor faults per op).
 * The op must be repeatable indefinitely (i is a running counter).
 */
static int run_reps(const struct measure_key *k, op_fn op, void *ctx,
    double rep_seconds, const char *unit_op)
{
	int reps = compare_cfg.reps;
	double means[64];
	struct samples s;
	struct run_result r = { 0 };
	size_t b, next = 0;
	double flt0, flt1, ops_total = 0;

	b = calibrate(op, ctx, &r);
	if (b == 0) {
		emit_failure(k, "ns_per_op", &r, "calibration");
		return -1;
	}
	next = 16 + 4 * 64;
	samples_init(&s, (size_t)reps * MAX_SAMPLES_PER_REP);
	flt0 = compare_minflt();
	for (int rep = 0; rep < reps; rep++) {
		uint64_t start = compare_now_ns();
		uint64_t budget = (uint64_t)(rep_seconds * 1e9);
		size_t limit = s.n + MAX_SAMPLES_PER_REP;

		r = (struct run_result){ 0 };
		do {
			run_batches(op, ctx, next + r.done, b * 8, b, &s, &r);
			if (r.err != 0) {
				emit_failure(k, "ns_per_op", &r, "timed run");
				samples_free(&s);
				return -1;
			}
		} while (compare_now_ns() - start < budget && s.n + 8 <= limit);
		next += r.done;
		ops_total += (double)r.done;
		means[rep] = (double)r.ns / (double)r.done;
	}
	flt1 = compare_minflt();
	compare_emit_latency(k, "", means, reps, &s, unit_op);
	compare_emit(k, "minflt_per_op", (flt1 - flt0) / ops_total, "faults/op",
	    "minor page faults over the timed repetitions");
	samples_free(&s);
	return 0;
}

static int prepare(size_t max_bytes, size_t max_count, const struct measure_key *k)
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

/* Parameter list: the one given with --param, else the scale's list. */
static size_t params(const long *tiny, size_t ntiny, const long *def, size_t ndef,
    const long *full, size_t nfull, long *out)
{
	const long *src;
	size_t n;

	if (compare_cfg.param >= 0) {
		out[0] = compare_cfg.param;
		return 1;
	}
	switch (compare_cfg.scale) {
	case SCALE_TINY: src = tiny; n = ntiny; break;
	case SCALE_FULL: src = full; n = nfull; break;
	default: src = def; n = ndef; break;
	}
	memcpy(out, src, n * sizeof *out);
	return n;
}

/* ------------------------------------------------------------------------
 * 1. pair: alloc, touch every byte, free
 * --------------------------------------------------------------------- */

struct pair_ctx {
	size_t size;
};

static int pair_op(void *ctx, size_t i)
{
	struct pair_ctx *c = ctx;
	void *p = compare_backend.alloc(c->size);

	if (p == NULL)
		return -1;
	compare_touch(p, c->size, (unsigned char)i);
	compare_backend.release(p, c->size);
	return 0;
}

int wl_pair(void)
{
	long list[32];
	size_t n;
	long tiny[] = { 64 };
	long def[NELEM(pair_sizes)], full[NELEM(pair_sizes_full)];

	for (size_t i = 0; i < NELEM(pair_sizes); i++)
		def[i] = (long)pair_sizes[i];
	for (size_t i = 0; i < NELEM(pair_sizes_full); i++)
		full[i] = (long)pair_sizes_full[i];
	n = params(tiny, 1, def, NELEM(def), full, NELEM(full), list);
	for (size_t i = 0; i < n; i++) {
		struct measure_key k = { "pair", "", "size", (double)list[i] };
		struct pair_ctx c = { (size_t)list[i] };

		compare_progress("  pair size=%ld", list[i]);
		if (prepare(c.size * 4 + 4096, 4, &k) != 0)
			continue;
		(void)run_reps(&k, pair_op, &c, compare_cfg.rep_seconds,
		    "alloc + touch every byte + free");
	}
	return 0;
}

/* ------------------------------------------------------------------------
 * 2. fill: N live buffers, then freed in random order
 * --------------------------------------------------------------------- */

struct fill_ctx {
	void **ptr;
	size_t *order;
};

static int fill_alloc(void *ctx, size_t i)
{
	struct fill_ctx *c = ctx;
	void *p = compare_backend.alloc(FILL_SIZE);

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

	compare_backend.release(c->ptr[j], FILL_SIZE);
	c->ptr[j] = NULL;
	return 0;
}

static void fill_one(size_t count)
{
	struct measure_key k = { "fill", "", "live", (double)count };
	struct fill_ctx c;
	struct samples sa, sf;
	struct memsnap base, peak;
	struct rng rng;
	int reps = compare_cfg.scale == SCALE_TINY ? 1 : 3;
	double am[8], fm[8], flt0, flt_alloc = 0, flt_free = 0;
	const size_t b = 16;
	int done_reps = 0;

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
	samples_init(&sa, (size_t)reps * (count / b + 1));
	samples_init(&sf, (size_t)reps * (count / b + 1));
	if (prepare(count * FILL_SIZE, count, &k) != 0)
		goto out;
	if (memsnap_take(&base) != 0)
		compare_progress("  fill: /proc unreadable: %s", strerror(errno));

	for (int rep = 0; rep < reps; rep++) {
		struct run_result r = { 0 };

		flt0 = compare_minflt();
		run_batches(fill_alloc, &c, 0, count, b, &sa, &r);
		flt_alloc += compare_minflt() - flt0;
		if (r.err != 0) {
			struct measure_key ka = k;

			ka.variant = "alloc";
			emit_failure(&ka, "ns_per_op", &r, "fill");
			compare_emit_full(&k, "live_reached", (double)r.done, "count",
			    "failed", r.err, "live buffers when the allocation failed");
			(void)memsnap_take(&peak);
			compare_emit_memory(&k, &peak, &base);
			/* Free what was allocated, untimed. */
			for (size_t i = 0; i < r.done; i++)
				compare_backend.release(c.ptr[i], FILL_SIZE);
			goto out;
		}
		am[rep] = (double)r.ns / (double)count;
		if (rep == 0) {
			/* The first fill of a fresh process: its page usage. */
			if (memsnap_take(&peak) != 0)
				compare_progress("  fill: /proc unreadable: %s", strerror(errno));
			compare_emit_memory(&k, &peak, &base);
			compare_emit(&k, "rss_per_buffer_bytes", (peak.rss - base.rss) / (double)count,
			    "bytes", "VmRSS growth / live buffers (64-byte buffers)");
			compare_emit(&k, "overhead_per_buffer_bytes",
			    (peak.rss - base.rss) / (double)count - FILL_SIZE, "bytes",
			    "VmRSS growth / live buffers - 64 requested bytes");
			compare_emit(&k, "vma_per_buffer", (peak.vmas - base.vmas) / (double)count,
			    "count", "VMA growth / live buffers");
			if (compare_backend.counters)
				compare_backend.counters(&k);
		}
		r = (struct run_result){ 0 };
		flt0 = compare_minflt();
		run_batches(fill_free, &c, 0, count, b, &sf, &r);
		flt_free += compare_minflt() - flt0;
		fm[rep] = (double)r.ns / (double)count;
		done_reps++;
	}
	{
		struct measure_key ka = k, kf = k;

		ka.variant = "alloc";
		kf.variant = "free";
		compare_emit_latency(&ka, "", am, done_reps, &sa, "alloc + touch 64 bytes");
		compare_emit(&ka, "minflt_per_op", flt_alloc / ((double)count * done_reps),
		    "faults/op", "minor page faults while filling");
		compare_emit_latency(&kf, "", fm, done_reps, &sf, "free, random order");
		compare_emit(&kf, "minflt_per_op", flt_free / ((double)count * done_reps),
		    "faults/op", "minor page faults while freeing");
	}
out:
	samples_free(&sa);
	samples_free(&sf);
	compare_mem_free(c.ptr, count * sizeof *c.ptr);
	compare_mem_free(c.order, count * sizeof *c.order);
}

int wl_fill(void)
{
	long list[8];
	long tiny[] = { 1000 }, def[] = { 1000, 10000, 100000 },
	     full[] = { 1000, 10000, 100000, 1000000 };
	size_t n = params(tiny, NELEM(tiny), def, NELEM(def), full, NELEM(full), list);

	for (size_t i = 0; i < n; i++) {
		compare_progress("  fill live=%ld", list[i]);
		fill_one((size_t)list[i]);
	}
	return 0;
}

/* ------------------------------------------------------------------------
 * 3. churn: K live slots, random replacement
 * --------------------------------------------------------------------- */

#define STREAM 65536 /* pre-drawn (slot, size) pairs, reused cyclically */

struct churn_ctx {
	void **ptr;
	size_t *size;
	uint32_t *slot_stream;
	uint16_t *size_stream;
};

static void churn_draw(struct churn_ctx *c, size_t slots, int uniform, struct rng *rng)
{
	for (size_t i = 0; i < STREAM; i++) {
		c->slot_stream[i] = (uint32_t)rng_below(rng, slots);
		c->size_stream[i] = (uint16_t)(uniform ? 16 + rng_below(rng, 2048 - 16 + 1)
		    : crypto_sizes[rng_below(rng, NELEM(crypto_sizes))]);
	}
}

static int churn_op(void *ctx, size_t i)
{
	struct churn_ctx *c = ctx;
	size_t s = c->slot_stream[i % STREAM];
	size_t sz = c->size_stream[(i * 7 + 3) % STREAM];
	void *p;

	compare_backend.release(c->ptr[s], c->size[s]);
	c->ptr[s] = NULL;
	p = compare_backend.alloc(sz);
	if (p == NULL)
		return -1;
	compare_touch(p, sz, (unsigned char)i);
	c->ptr[s] = p;
	c->size[s] = sz;
	return 0;
}

static void churn_one(size_t slots, int uniform)
{
	struct measure_key k = { "churn", uniform ? "uniform" : "crypto", "slots",
		(double)slots };
	struct churn_ctx c;
	struct memsnap base, now;
	struct rng rng;
	size_t filled = 0;
	double live = 0;

	c.ptr = compare_mem(slots * sizeof *c.ptr);
	c.size = compare_mem(slots * sizeof *c.size);
	c.slot_stream = compare_mem(STREAM * sizeof *c.slot_stream);
	c.size_stream = compare_mem(STREAM * sizeof *c.size_stream);
	rng_seed(&rng, compare_cfg.seed ^ (slots * 2 + (size_t)uniform));
	churn_draw(&c, slots, uniform, &rng);
	/* Buddy-style arenas round up to a power of two and fragment: room
	 * for twice the worst case. */
	if (prepare(slots * 2048 * 2, slots + 16, &k) != 0)
		goto out;
	(void)memsnap_take(&base);
	for (filled = 0; filled < slots; filled++) {
		size_t sz = c.size_stream[(filled * 13) % STREAM];

		compare_fail_call = NULL;
		c.ptr[filled] = compare_backend.alloc(sz);
		if (c.ptr[filled] == NULL) {
			struct run_result r = { filled, 0, errno, compare_fail_call };

			emit_failure(&k, "ns_per_op", &r, "prefill");
			goto release;
		}
		compare_touch(c.ptr[filled], sz, 1);
		c.size[filled] = sz;
	}
	if (run_reps(&k, churn_op, &c, compare_cfg.rep_seconds,
	    "free a random slot + alloc + touch") != 0)
		goto release;
	for (size_t i = 0; i < slots; i++)
		live += (double)c.size[i];
	(void)memsnap_take(&now);
	compare_emit_memory(&k, &now, &base);
	compare_emit(&k, "overhead_per_buffer_bytes", (now.rss - base.rss - live) / (double)slots,
	    "bytes", "(VmRSS growth - live requested bytes) / live slots, steady state");
	if (compare_backend.counters)
		compare_backend.counters(&k);
release:
	for (size_t i = 0; i < filled; i++)
		if (c.ptr[i])
			compare_backend.release(c.ptr[i], c.size[i]);
out:
	compare_mem_free(c.ptr, slots * sizeof *c.ptr);
	compare_mem_free(c.size, slots * sizeof *c.size);
	compare_mem_free(c.slot_stream, STREAM * sizeof *c.slot_stream);
	compare_mem_free(c.size_stream, STREAM * sizeof *c.size_stream);
}

int wl_churn(void)
{
	long list[8];
	long tiny[] = { 64 }, def[] = { 64, 1000, 10000 }, full[] = { 64, 1000, 10000, 100000 };
	size_t n = params(tiny, NELEM(tiny), def, NELEM(def), full, NELEM(full), list);

	for (size_t i = 0; i < n; i++) {
		compare_progress("  churn slots=%ld uniform", list[i]);
		churn_one((size_t)list[i], 1);
		compare_progress("  churn slots=%ld crypto", list[i]);
		churn_one((size_t)list[i], 0);
	}
	return 0;
}

/* ------------------------------------------------------------------------
 * 4. session: a crypto-session bundle, allocated, used, freed in reverse
 * --------------------------------------------------------------------- */

static int session_op(void *ctx, size_t i)
{
	void *p[NELEM(session_sizes)];
	volatile unsigned char *sink = ctx;
	unsigned char acc = 0;
	size_t n;

	for (n = 0; n < NELEM(session_sizes); n++) {
		p[n] = compare_backend.alloc(session_sizes[n]);
		if (p[n] == NULL)
			break;
		compare_touch(p[n], session_sizes[n], (unsigned char)(i + n));
	}
	if (n == NELEM(session_sizes))
		for (size_t j = 0; j < n; j++)
			acc ^= ((unsigned char *)p[j])[session_sizes[j] - 1];
	*sink = acc;
	for (size_t j = n; j-- > 0;)
		compare_backend.release(p[j], session_sizes[j]);
	return n == NELEM(session_sizes) ? 0 : -1;
}

int wl_session(void)
{
	struct measure_key k = { "session", "", "buffers", (double)NELEM(session_sizes) };
	unsigned char sink;

	compare_progress("  session 32+64+68+200+208");
	if (prepare(4096, 8, &k) != 0)
		return 0;
	(void)run_reps(&k, session_op, &sink, compare_cfg.rep_seconds,
	    "one bundle: 5 allocs + use + 5 frees in reverse");
	return 0;
}

/* ------------------------------------------------------------------------
 * 5. threads: churn on several threads; or buffers freed by the other one
 * --------------------------------------------------------------------- */

#define THREAD_SLOTS 1024
#define MAX_THREADS 4
#define RING 1024

struct ring {
	_Atomic size_t head;
	char pad1[64 - sizeof(size_t)];
	_Atomic size_t tail;
	char pad2[64 - sizeof(size_t)];
	void *ptr[RING];
	size_t size[RING];
};

static int ring_push(struct ring *r, void *p, size_t sz)
{
	size_t h = atomic_load_explicit(&r->head, memory_order_relaxed);
	size_t t = atomic_load_explicit(&r->tail, memory_order_acquire);

	if (h - t == RING)
		return 0;
	r->ptr[h % RING] = p;
	r->size[h % RING] = sz;
	atomic_store_explicit(&r->head, h + 1, memory_order_release);
	return 1;
}

static int ring_pop(struct ring *r, void **p, size_t *sz)
{
	size_t t = atomic_load_explicit(&r->tail, memory_order_relaxed);
	size_t h = atomic_load_explicit(&r->head, memory_order_acquire);

	if (t == h)
		return 0;
	*p = r->ptr[t % RING];
	*sz = r->size[t % RING];
	atomic_store_explicit(&r->tail, t + 1, memory_order_release);
	return 1;
}

struct thread_arg {
	int id;
	int remote;
	uint64_t budget_ns;
	pthread_barrier_t *barrier;
	struct churn_ctx churn;   /* local variant */
	struct ring *out, *in;    /* remote variant */
	const uint16_t *sizes;
	struct samples s;
	struct run_result r;
	atomic_int *stop;
};

static int remote_op(void *ctx, size_t i)
{
	struct thread_arg *a = ctx;
	size_t sz = a->sizes[i % STREAM];
	void *p = compare_backend.alloc(sz), *q;
	size_t qs;

	if (p == NULL)
		return -1;
	compare_touch(p, sz, (unsigned char)i);
	while (!ring_push(a->out, p, sz)) {
		/* Full: free what the other thread sent meanwhile, or let it
		 * run (with 2 busy cores it may be waiting for this one). */
		if (ring_pop(a->in, &q, &qs))
			compare_backend.release(q, qs);
		else
			(void)sched_yield();
	}
	if (ring_pop(a->in, &q, &qs))
		compare_backend.release(q, qs);
	return 0;
}

static void *thread_main(void *arg)
{
	struct thread_arg *a = arg;
	op_fn op = a->remote ? remote_op : churn_op;
	void *ctx = a->remote ? (void *)a : (void *)&a->churn;
	size_t b = 32, i = 0;
	uint64_t start;

	(void)pthread_barrier_wait(a->barrier);
	start = compare_now_ns();
	while (compare_now_ns() - start < a->budget_ns &&
	    !atomic_load_explicit(a->stop, memory_order_relaxed)) {
		run_batches(op, ctx, i, b * 4, b, &a->s, &a->r);
		i = a->r.done;
		if (a->r.err != 0) {
			atomic_store(a->stop, 1);
			break;
		}
	}
	/* Hold on until the peer stops too, freeing what it sends, so that no
	 * ring fills up with nobody left to drain it. */
	atomic_fetch_add(a->stop + 1, 1);
	if (a->remote) {
		void *q;
		size_t qs;

		while (atomic_load(a->stop + 1) < 2)
			if (ring_pop(a->in, &q, &qs))
				compare_backend.release(q, qs);
			else
				(void)sched_yield();
	}
	return NULL;
}

static void threads_one(int nthreads, int remote)
{
	struct measure_key k = { "threads", remote ? "remote" : "local", "threads",
		(double)nthreads };
	struct thread_arg a[MAX_THREADS];
	struct ring *rings = NULL;
	pthread_t tid[MAX_THREADS];
	pthread_barrier_t barrier;
	atomic_int stop[2];
	uint16_t *sizes;
	struct samples all;
	struct rng rng;
	int reps = compare_cfg.reps, err;
	double means[64], agg[64], flt0, ops_total = 0;
	const char *what = remote ? "alloc + touch, handed to the other thread, which frees it"
	    : "free a random slot + alloc + touch (1024 slots per thread)";

	if (prepare((size_t)nthreads * (THREAD_SLOTS + 2 * RING + 64) * 2048 * 2,
	    (size_t)nthreads * (THREAD_SLOTS + 2 * RING + 64), &k) != 0)
		return;
	sizes = compare_mem(STREAM * sizeof *sizes);
	rng_seed(&rng, compare_cfg.seed ^ 0x7468);
	for (size_t i = 0; i < STREAM; i++)
		sizes[i] = (uint16_t)crypto_sizes[rng_below(&rng, NELEM(crypto_sizes))];
	if (remote)
		rings = compare_mem(2 * sizeof *rings);
	samples_init(&all, (size_t)reps * MAX_SAMPLES_PER_REP * (size_t)nthreads);
	memset(a, 0, sizeof a);
	for (int t = 0; t < nthreads; t++) {
		struct churn_ctx *c = &a[t].churn;

		a[t].id = t;
		a[t].remote = remote;
		a[t].sizes = sizes;
		a[t].stop = stop;
		a[t].barrier = &barrier;
		a[t].budget_ns = (uint64_t)(compare_cfg.rep_seconds * 2e9);
		samples_init(&a[t].s, MAX_SAMPLES_PER_REP);
		if (remote) {
			a[t].out = &rings[t];
			a[t].in = &rings[1 - t];
			continue;
		}
		c->ptr = compare_mem(THREAD_SLOTS * sizeof *c->ptr);
		c->size = compare_mem(THREAD_SLOTS * sizeof *c->size);
		c->slot_stream = compare_mem(STREAM * sizeof *c->slot_stream);
		c->size_stream = sizes;
		for (size_t i = 0; i < STREAM; i++)
			c->slot_stream[i] = (uint32_t)rng_below(&rng, THREAD_SLOTS);
		for (size_t i = 0; i < THREAD_SLOTS; i++) {
			c->size[i] = sizes[(i * 13 + (size_t)t) % STREAM];
			compare_fail_call = NULL;
			c->ptr[i] = compare_backend.alloc(c->size[i]);
			if (c->ptr[i] == NULL) {
				struct run_result r = { i, 0, errno, compare_fail_call };

				emit_failure(&k, "ns_per_op", &r, "prefill");
				reps = 0;
				break;
			}
		}
	}

	flt0 = compare_minflt();
	for (int rep = 0; rep < reps; rep++) {
		uint64_t t0, t1;
		double ops = 0, busy = 0;
		int started = 0;

		atomic_init(&stop[0], 0);
		atomic_init(&stop[1], 0);
		if ((err = pthread_barrier_init(&barrier, NULL, (unsigned)nthreads + 1)) != 0) {
			struct run_result r = { 0, 0, err, "pthread_barrier_init" };

			emit_failure(&k, "ns_per_op", &r, "setup");
			reps = 0;
			break;
		}
		for (int t = 0; t < nthreads; t++) {
			a[t].r = (struct run_result){ 0 };
			a[t].s.n = 0;
			if ((err = pthread_create(&tid[t], NULL, thread_main, &a[t])) != 0) {
				struct run_result r = { 0, 0, err, "pthread_create" };

				emit_failure(&k, "ns_per_op", &r, "setup");
				reps = 0;
				/* The barrier can never complete: this is fatal for
				 * the process, but report first. */
				(void)fflush(stdout);
				exit(1);
			}
			started++;
		}
		(void)pthread_barrier_wait(&barrier);
		t0 = compare_now_ns();
		for (int t = 0; t < started; t++)
			if ((err = pthread_join(tid[t], NULL)) != 0) {
				fprintf(stderr, "compare: pthread_join: %s\n", strerror(err));
				exit(2);
			}
		t1 = compare_now_ns();
		if ((err = pthread_barrier_destroy(&barrier)) != 0)
			fprintf(stderr, "compare: pthread_barrier_destroy: %s\n", strerror(err));
		for (int t = 0; t < nthreads; t++) {
			if (a[t].r.err != 0) {
				emit_failure(&k, "ns_per_op", &a[t].r, "threads");
				reps = rep;
				goto drain;
			}
			ops += (double)a[t].r.done;
			busy += (double)a[t].r.ns;
			for (size_t i = 0; i < a[t].s.n; i++)
				samples_add(&all, a[t].s.v[i]);
		}
		means[rep] = busy / ops;              /* per-thread ns per op */
		agg[rep] = ops / ((double)(t1 - t0) / 1e9); /* all threads */
		ops_total += ops;
	}
	if (reps > 0) {
		double v[64];

		compare_emit_latency(&k, "", means, reps, &all, what);
		memcpy(v, agg, (size_t)reps * sizeof v[0]);
		for (int i = 1; i < reps; i++)   /* insertion sort, reps <= 64 */
			for (int j = i; j > 0 && v[j - 1] > v[j]; j--) {
				double t = v[j];

				v[j] = v[j - 1];
				v[j - 1] = t;
			}
		compare_emit(&k, "aggregate_ops_per_s", reps % 2 ? v[reps / 2]
		    : (v[reps / 2 - 1] + v[reps / 2]) / 2, "ops/s",
		    "all threads together, median over repetitions");
		compare_emit(&k, "minflt_per_op", (compare_minflt() - flt0) / ops_total,
		    "faults/op", "minor page faults over the timed repetitions");
	}
drain:
	if (remote) {
		void *q;
		size_t qs;

		for (int t = 0; t < 2; t++)
			while (ring_pop(&rings[t], &q, &qs))
				compare_backend.release(q, qs);
	}
	for (int t = 0; t < nthreads; t++) {
		if (!remote) {
			for (size_t i = 0; i < THREAD_SLOTS; i++)
				if (a[t].churn.ptr[i])
					compare_backend.release(a[t].churn.ptr[i], a[t].churn.size[i]);
			compare_mem_free(a[t].churn.ptr, THREAD_SLOTS * sizeof(void *));
			compare_mem_free(a[t].churn.size, THREAD_SLOTS * sizeof(size_t));
			compare_mem_free(a[t].churn.slot_stream, STREAM * sizeof(uint32_t));
		}
		samples_free(&a[t].s);
	}
	samples_free(&all);
	if (rings)
		compare_mem_free(rings, 2 * sizeof *rings);
	compare_mem_free(sizes, STREAM * sizeof *sizes);
}

int wl_threads(void)
{
	long list[4];
	long tiny[] = { 2 }, def[] = { 1, 2 }, full[] = { 1, 2, 4 };
	size_t n = params(tiny, NELEM(tiny), def, NELEM(def), full, NELEM(full), list);

	for (size_t i = 0; i < n; i++) {
		if (list[i] < 1 || list[i] > MAX_THREADS) {
			compare_progress("  threads=%ld: out of range 1..4", list[i]);
			continue;
		}
		compare_progress("  threads=%ld local", list[i]);
		threads_one((int)list[i], 0);
		if (list[i] == 2) {
			compare_progress("  threads=2 remote frees");
			threads_one(2, 1);
		}
	}
	return 0;
}

/* ------------------------------------------------------------------------
 * 6. protect: toggle a 32-byte secret between no access and read
 * --------------------------------------------------------------------- */

struct protect_ctx {
	void *p;
	size_t size;
	volatile unsigned char sink;
};

static int protect_op(void *ctx, size_t i)
{
	struct protect_ctx *c = ctx;

	(void)i;
	if (compare_backend.protect_read(c->p, c->size) != 0)
		return -1;
	c->sink = ((const unsigned char *)c->p)[c->size - 1];
	if (compare_backend.protect_none(c->p, c->size) != 0)
		return -1;
	return 0;
}

int wl_protect(void)
{
	struct measure_key k = { "protect", "toggle", "size", 32 };
	struct protect_ctx c = { NULL, 32, 0 };

	compare_progress("  protect 32-byte secret none <-> read");
	if (compare_backend.protect_none == NULL) {
		compare_emit_status(&k, "ns_per_op", "unsupported", 0,
		    "the backend cannot change the protection of one buffer");
		return 0;
	}
	if (prepare(4096, 1, &k) != 0)
		return 0;
	compare_fail_call = NULL;
	c.p = compare_backend.alloc_secret(c.size);
	if (c.p == NULL) {
		struct run_result r = { 0, 0, errno, compare_fail_call };

		emit_failure(&k, "ns_per_op", &r, "secret allocation");
		return 0;
	}
	compare_touch(c.p, c.size, 0x5a);
	if (compare_backend.protect_none(c.p, c.size) != 0) {
		struct run_result r = { 0, 0, errno, "protect_none" };

		emit_failure(&k, "ns_per_op", &r, "first protect");
	} else {
		(void)run_reps(&k, protect_op, &c, compare_cfg.rep_seconds,
		    "protect read + read one byte + protect none (two mprotect)");
		if (compare_backend.protect_read(c.p, c.size) != 0)
			compare_progress("  protect: cannot reopen the secret: %s", strerror(errno));
	}
	compare_backend.release_secret(c.p, c.size);
	return 0;
}

/* ------------------------------------------------------------------------
 * 7. capacity: live 64-byte buffers until the backend fails
 * --------------------------------------------------------------------- */

/* Shared with the child, so a child that dies still tells how far it got. */
struct capacity_state {
	_Atomic size_t count;
	int err;
	int finished;     /* 1 failed, 2 reached the cap, 3 hit its time bound */
	char call[48];
	double seconds;
	struct memsnap peak, base;
};

static void capacity_child(struct capacity_state *st, size_t cap)
{
	void **ptr = compare_mem(cap * sizeof *ptr);
	uint64_t t0 = compare_now_ns();
	uint64_t bound = (uint64_t)(compare_cfg.capacity_seconds * 1e9);
	size_t i;

	(void)memsnap_take(&st->base);
	for (i = 0; i < cap; i++) {
		compare_fail_call = NULL;
		errno = 0;
		ptr[i] = compare_backend.alloc_closed != NULL
		    ? compare_backend.alloc_closed(CAPACITY_SIZE, (unsigned char)i)
		    : compare_backend.alloc(CAPACITY_SIZE);
		if (ptr[i] == NULL) {
			st->err = errno;
			snprintf(st->call, sizeof st->call, "%s",
			    compare_fail_call ? compare_fail_call : "alloc");
			st->finished = 1;
			break;
		}
		if (compare_backend.alloc_closed == NULL)
			compare_touch(ptr[i], CAPACITY_SIZE, (unsigned char)i);
		atomic_store_explicit(&st->count, i + 1, memory_order_relaxed);
		if ((i & 4095) == 4095 && compare_now_ns() - t0 > bound) {
			st->finished = 3;
			i++;
			break;
		}
	}
	if (st->finished == 0)
		st->finished = 2;
	st->seconds = (double)(compare_now_ns() - t0) / 1e9;
	(void)memsnap_take(&st->peak);
	/* No cleanup: the process ends and the kernel takes everything. */
	_exit(0);
}

int wl_capacity(void)
{
	size_t cap = compare_cfg.param > 0 ? (size_t)compare_cfg.param
	    : compare_cfg.scale == SCALE_TINY ? 20000 : CAPACITY_CAP;
	struct measure_key k = { "capacity", "", "size", CAPACITY_SIZE };
	struct capacity_state *st;
	char note[320];
	uint64_t t0, hard = (uint64_t)((compare_cfg.capacity_seconds + 30) * 1e9);
	int status = 0, killed = 0;
	pid_t pid, w;

	compare_progress("  capacity: live 64-byte buffers, cap %zu", cap);
	if (prepare(cap * CAPACITY_SIZE, cap, &k) != 0)
		return 0;
	st = mmap(NULL, sizeof *st, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (st == MAP_FAILED) {
		compare_emit_status(&k, "capacity_count", "failed", errno, "mmap of the shared state");
		return -1;
	}
	memset(st, 0, sizeof *st);
	(void)fflush(stdout);
	(void)fflush(stderr);
	t0 = compare_now_ns();
	pid = fork();
	if (pid < 0) {
		compare_emit_status(&k, "capacity_count", "failed", errno, "fork");
		return -1;
	}
	if (pid == 0)
		capacity_child(st, cap);
	for (;;) {
		w = waitpid(pid, &status, WNOHANG);
		if (w == pid)
			break;
		if (w < 0 && errno != EINTR) {
			compare_emit_status(&k, "capacity_count", "failed", errno, "waitpid");
			return -1;
		}
		if (!killed && compare_now_ns() - t0 > hard) {
			if (kill(pid, SIGKILL) != 0)
				compare_progress("  capacity: kill: %s", strerror(errno));
			killed = 1;
		}
		(void)nanosleep(&(struct timespec){ 0, 20 * 1000 * 1000 }, NULL);
	}

	if (st->finished == 0) {
		snprintf(note, sizeof note, "child %s after %zu live buffers",
		    killed ? "killed at the hard time bound" : WIFSIGNALED(status)
		    ? strsignal(WTERMSIG(status)) : "exited early",
		    atomic_load(&st->count));
		compare_emit_full(&k, "capacity_count", (double)atomic_load(&st->count), "count",
		    "failed", 0, note);
	} else {
		const char *cn = compare_backend.capacity_note;

		if (st->finished == 1)
			snprintf(note, sizeof note, "allocation #%zu failed in %s(): %s%s%s",
			    atomic_load(&st->count) + 1, st->call, strerror(st->err),
			    cn ? "; " : "", cn ? cn : "");
		else if (st->finished == 2)
			snprintf(note, sizeof note, "reached the cap of %zu%s%s", cap,
			    cn ? "; " : "", cn ? cn : "");
		else
			snprintf(note, sizeof note, "stopped at the %g s time bound%s%s",
			    compare_cfg.capacity_seconds, cn ? "; " : "", cn ? cn : "");
		compare_emit_full(&k, "capacity_count", (double)atomic_load(&st->count), "count",
		    "ok", st->finished == 1 ? st->err : 0, note);
		compare_emit(&k, "capacity_reached_cap", st->finished == 2, "bool",
		    "1 when the cap was reached without failure");
		compare_emit(&k, "capacity_seconds", st->seconds, "s", "time to fill");
		compare_emit_memory(&k, &st->peak, &st->base);
	}
	if (munmap(st, sizeof *st) != 0)
		compare_progress("  capacity: munmap: %s", strerror(errno));
	return 0;
}
