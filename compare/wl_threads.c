/*
 * wl_threads.c - churn on several threads at once (each on its own 1024
 * slots), with more threads than cores too; and remote frees: two threads,
 * each allocating and touching buffers that the other one frees (handed
 * over through single-producer single-consumer rings).
 */
#include "churn.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <time.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SAMPLES_PER_REP 50000

#define THREAD_SLOTS 1024
#define MAX_THREADS 8
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
	const uint32_t *sizes;
	struct timing t;
	struct run_result r;
	double cpu_ns;            /* the thread's CPU time in its timed loop */
	uint64_t start_ns, end_ns; /* its timed loop, wall clock */
	atomic_int *stop;
};

static int remote_op(void *ctx, size_t i)
{
	struct thread_arg *a = ctx;
	size_t sz = a->sizes[i % CHURN_STREAM];
	void *p = compare_alloc(sz), *q;
	size_t qs;

	if (p == NULL)
		return -1;
	compare_touch(p, sz, (unsigned char)i);
	while (!ring_push(a->out, p, sz)) {
		/* Full: free what the other thread sent meanwhile, or let it
		 * run (with 2 busy cores it may be waiting for this one). */
		if (ring_pop(a->in, &q, &qs))
			compare_release(q, qs);
		else
			(void)sched_yield();
	}
	if (ring_pop(a->in, &q, &qs))
		compare_release(q, qs);
	return 0;
}

/* CPU time of the calling thread, ns.  On a shared machine the wall-clock
 * throughput of N threads depends on the share of the cores they win from
 * other processes (more threads, more share); operations per CPU-second
 * does not. */
static double thread_cpu_ns(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) != 0) {
		perror("compare: clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
		exit(2);
	}
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static void *thread_main(void *arg)
{
	struct thread_arg *a = arg;
	op_fn op = a->remote ? remote_op : churn_op;
	void *ctx = a->remote ? (void *)a : (void *)&a->churn;
	size_t b = 32, i = 0;
	uint64_t start;
	double cpu0;

	(void)pthread_barrier_wait(a->barrier);
	start = compare_now_ns();
	cpu0 = thread_cpu_ns();
	while (compare_now_ns() - start < a->budget_ns &&
	    !atomic_load_explicit(a->stop, memory_order_relaxed)) {
		run_batches(op, ctx, i, (b + 1) * 4, b, 1, &a->t, &a->r);
		i = a->r.done;
		if (a->r.err != 0) {
			atomic_store(a->stop, 1);
			break;
		}
	}
	a->cpu_ns = thread_cpu_ns() - cpu0;
	a->start_ns = start;
	a->end_ns = compare_now_ns();
	/* Hold on until the peer stops too, freeing what it sends, so that no
	 * ring fills up with nobody left to drain it. */
	atomic_fetch_add(a->stop + 1, 1);
	if (a->remote) {
		void *q;
		size_t qs;

		while (atomic_load(a->stop + 1) < 2)
			if (ring_pop(a->in, &q, &qs))
				compare_release(q, qs);
			else
				(void)sched_yield();
	}
	return NULL;
}

static void threads_variant(const struct compare_workload *w, int nthreads, int remote)
{
	struct measure_key k = { w->name, remote ? "remote" : "local", w->param,
		(double)nthreads };
	struct thread_arg a[MAX_THREADS];
	struct ring *rings = NULL;
	pthread_t tid[MAX_THREADS];
	pthread_barrier_t barrier;
	atomic_int stop[2];
	uint32_t *sizes;
	struct timing all;
	struct rng rng;
	int reps = compare_cfg.reps, err;
	double means[64], agg[64], per_cpu[64], flt0, ops_total = 0;
	const char *what = remote ? "alloc + touch, handed to the other thread, which frees it"
	    : "free a random slot + alloc + touch (1024 slots per thread)";

	if (compare_prepare((size_t)nthreads * (THREAD_SLOTS + 2 * RING + 64) * 2048 * 2,
	    (size_t)nthreads * (THREAD_SLOTS + 2 * RING + 64), &k) != 0)
		return;
	sizes = compare_mem(CHURN_STREAM * sizeof *sizes);
	rng_seed(&rng, compare_cfg.seed ^ 0x7468);
	for (size_t i = 0; i < CHURN_STREAM; i++)
		sizes[i] = (uint32_t)compare_crypto_sizes[rng_below(&rng, compare_ncrypto_sizes)];
	if (remote)
		rings = compare_mem(2 * sizeof *rings);
	timing_init(&all, (size_t)reps * MAX_SAMPLES_PER_REP * (size_t)nthreads,
	    (size_t)reps * MAX_SAMPLES_PER_REP * (size_t)nthreads);
	memset(a, 0, sizeof a);
	for (int t = 0; t < nthreads; t++) {
		struct churn_ctx *c = &a[t].churn;

		a[t].id = t;
		a[t].remote = remote;
		a[t].sizes = sizes;
		a[t].stop = stop;
		a[t].barrier = &barrier;
		/* Oversubscribed threads get twice the time: each runs a
		 * fraction of it. */
		a[t].budget_ns = (uint64_t)(compare_cfg.rep_seconds * 1e9 *
		    (nthreads > 2 ? 2 : 1));
		timing_init(&a[t].t, MAX_SAMPLES_PER_REP, MAX_SAMPLES_PER_REP);
		if (remote) {
			a[t].out = &rings[t];
			a[t].in = &rings[1 - t];
			continue;
		}
		c->ptr = compare_mem(THREAD_SLOTS * sizeof *c->ptr);
		c->size = compare_mem(THREAD_SLOTS * sizeof *c->size);
		c->slot_stream = compare_mem(CHURN_STREAM * sizeof *c->slot_stream);
		c->size_stream = sizes;
		for (size_t i = 0; i < CHURN_STREAM; i++)
			c->slot_stream[i] = (uint32_t)rng_below(&rng, THREAD_SLOTS);
		for (size_t i = 0; i < THREAD_SLOTS; i++) {
			c->size[i] = sizes[(i * 13 + (size_t)t) % CHURN_STREAM];
			compare_fail_call = NULL;
			c->ptr[i] = compare_backend.alloc(c->size[i]);
			if (c->ptr[i] == NULL) {
				struct run_result r = { .done = i, .err = errno,
					.call = compare_fail_call };

				compare_emit_failure(&k, "ns_per_op", &r, "prefill");
				reps = 0;
				break;
			}
		}
	}

	flt0 = compare_minflt();
	for (int rep = 0; rep < reps; rep++) {
		uint64_t t0, t1;
		double ops = 0, busy = 0, batched = 0, cpu = 0;
		int started = 0;

		atomic_init(&stop[0], 0);
		atomic_init(&stop[1], 0);
		if ((err = pthread_barrier_init(&barrier, NULL, (unsigned)nthreads + 1)) != 0) {
			struct run_result r = { .err = err, .call = "pthread_barrier_init" };

			compare_emit_failure(&k, "ns_per_op", &r, "setup");
			reps = 0;
			break;
		}
		for (int t = 0; t < nthreads; t++) {
			a[t].r = (struct run_result){ 0 };
			a[t].t.batch.n = a[t].t.op.n = 0;
			if ((err = pthread_create(&tid[t], NULL, thread_main, &a[t])) != 0) {
				struct run_result r = { .err = err, .call = "pthread_create" };

				compare_emit_failure(&k, "ns_per_op", &r, "setup");
				reps = 0;
				/* The barrier can never complete: this is fatal for
				 * the process, but report first. */
				(void)fflush(stdout);
				exit(1);
			}
			started++;
		}
		(void)pthread_barrier_wait(&barrier);
		for (int t = 0; t < started; t++)
			if ((err = pthread_join(tid[t], NULL)) != 0) {
				fprintf(stderr, "compare: pthread_join: %s\n", strerror(err));
				exit(2);
			}
		if ((err = pthread_barrier_destroy(&barrier)) != 0)
			fprintf(stderr, "compare: pthread_barrier_destroy: %s\n", strerror(err));
		for (int t = 0; t < nthreads; t++) {
			if (a[t].r.err != 0) {
				compare_emit_failure(&k, "ns_per_op", &a[t].r, "threads");
				reps = rep;
				goto drain;
			}
			ops += (double)a[t].r.done;
			cpu += a[t].cpu_ns;
			batched += (double)a[t].r.batched;
			busy += (double)a[t].r.ns;
			for (size_t i = 0; i < a[t].t.batch.n; i++)
				samples_add(&all.batch, a[t].t.batch.v[i]);
			for (size_t i = 0; i < a[t].t.op.n; i++)
				samples_add(&all.op, a[t].t.op.v[i]);
		}
		means[rep] = busy / batched;          /* per-thread ns per op */
		/* Wall time: from the first thread's start to the last one's
		 * end (not the main thread's view: it may be descheduled right
		 * after the barrier while the workers run). */
		t0 = a[0].start_ns;
		t1 = a[0].end_ns;
		for (int t = 1; t < nthreads; t++) {
			t0 = a[t].start_ns < t0 ? a[t].start_ns : t0;
			t1 = a[t].end_ns > t1 ? a[t].end_ns : t1;
		}
		agg[rep] = ops / ((double)(t1 - t0) / 1e9); /* all threads */
		per_cpu[rep] = cpu > 0 ? ops / (cpu / 1e9) : NAN;
		ops_total += ops;
	}
	if (reps > 0) {
		compare_emit_latency(&k, means, reps, &all, what);
		compare_emit(&k, "aggregate_ops_per_s", compare_median(agg, reps), "ops/s",
		    "all threads together, per second of wall time, median over repetitions");
		compare_emit(&k, "ops_per_cpu_s", compare_median(per_cpu, reps), "ops/s",
		    "all threads together, per second of their CPU time (independent of the "
		    "share of the cores other processes leave), median over repetitions");
		compare_emit(&k, "minflt_per_op", (compare_minflt() - flt0) / ops_total,
		    "faults/op", "minor page faults over the timed repetitions");
	}
drain:
	if (remote) {
		void *q;
		size_t qs;

		for (int t = 0; t < 2; t++)
			while (ring_pop(&rings[t], &q, &qs))
				compare_release(q, qs);
	}
	for (int t = 0; t < nthreads; t++) {
		if (!remote) {
			for (size_t i = 0; i < THREAD_SLOTS; i++)
				if (a[t].churn.ptr[i])
					compare_release(a[t].churn.ptr[i], a[t].churn.size[i]);
			compare_mem_free(a[t].churn.ptr, THREAD_SLOTS * sizeof(void *));
			compare_mem_free(a[t].churn.size, THREAD_SLOTS * sizeof(size_t));
			compare_mem_free(a[t].churn.slot_stream, CHURN_STREAM * sizeof(uint32_t));
		}
		timing_free(&a[t].t);
	}
	timing_free(&all);
	if (rings)
		compare_mem_free(rings, 2 * sizeof *rings);
	compare_mem_free(sizes, CHURN_STREAM * sizeof *sizes);
}

/* Local churn on n threads; with 2 threads, remote frees too. */
static void threads_one(const struct compare_workload *w, long n)
{
	if (compare_variant_on("local"))
		threads_variant(w, (int)n, 0);
	if (n == 2 && compare_variant_on("remote"))
		threads_variant(w, 2, 1);
}

static int threads_run(const struct compare_workload *w)
{
	compare_for_params(w, 1, MAX_THREADS, threads_one);
	return 0;
}

COMPARE_WORKLOAD(wl_threads) = {
	.name = "threads",
	.what = "churn on 1024 slots per thread (local), or buffers freed by the other "
	    "thread (remote, 2 threads)",
	.param = "threads",
	.params = {
		[SCALE_TINY] = COMPARE_PARAMS(2, 8),
		[SCALE_DEFAULT] = COMPARE_PARAMS(1, 2, 8),
		[SCALE_FULL] = COMPARE_PARAMS(1, 2, 4, 8),
	},
	COMPARE_HEADLINES(
		{ "threads 1: throughput", "local", 1, "aggregate_ops_per_s", 1 },
		{ "threads 2: throughput", "local", 2, "aggregate_ops_per_s", 1 },
		{ "threads 2, remote free", "remote", 2, "aggregate_ops_per_s", 1 },
		{ "threads 8 on 2 cores", "local", 8, "aggregate_ops_per_s", 1 },
		{ "threads 8 on 2 cores, per CPU-second", "local", 8, "ops_per_cpu_s", 1 },
	),
	.run = threads_run,
};
