/*
 * compare.h - the allocator comparison harness.
 *
 * One executable per backend (compare-tars, compare-glibc, ...), all built
 * from the same workload sources plus one backend_<name>.c that defines
 * `compare_backend`.  Each run executes one workload (optionally one
 * parameter of it) and writes one JSON document on stdout; compare/run.py
 * runs the processes, merges their documents and writes the tidy CSV.
 * `compare-<backend> --list` describes the backend and every workload
 * (parameters per scale, headline measurements) as JSON: the Python side
 * asks the binaries instead of keeping lists of its own.
 *
 * Adding a backend: backend_<name>.c (a `struct compare_backend`) and one
 * line in compare/compare.mk.  Adding a workload: wl_<name>.c (a
 * COMPARE_WORKLOAD) and one line in compare/compare.mk.
 *
 * The harness never allocates its own bookkeeping through the backend:
 * sample arrays and slot tables come from compare_mem() (plain mmap), so
 * the page usage read from /proc is the backend's.
 *
 * Files, bottom up (no file calls one above it):
 *   measure.c   clocks (clock_gettime, TSC), samples, quantiles, RNG,
 *               harness memory, progress lines
 *   json.c      the JSON document and its measurement rows
 *   procmem.c   page usage from /proc
 *   runner.c    batched and per-operation timing, repetitions, failures
 *   wl_*.c      one workload each
 *   main.c      command line, --list, the document, the malloc-owner check
 */
#ifndef COMPARE_H
#define COMPARE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* What one measurement is about: a row of the tidy CSV has these, plus
 * metric, value, unit, status, errno and note. */
struct measure_key {
	const char *workload;
	const char *variant;   /* "" when the workload has one variant */
	const char *param;     /* parameter name: "size", "live", ... */
	double param_value;
};

/* ------------------------------------------------------------------------
 * Backends
 * --------------------------------------------------------------------- */

/* How the tls workload gives OpenSSL's heap to the backend. */
enum compare_tls_heap {
	TLS_ROUTED,   /* CRYPTO_set_mem_functions to alloc/realloc/free */
	TLS_OWN,      /* OpenSSL keeps its heap; the backend set up its own
	               * allocator for OpenSSL's secrets (tls_note says how) */
};

struct compare_backend {
	const char *name;          /* as printed: "tars", "tars-key", ... */
	const char *what;          /* one line: what it is */
	/* Substring expected in the path of the shared object that defines
	 * malloc in this process ("libc.so", "libjemalloc"): a process whose
	 * malloc comes from elsewhere is mislinked and fails the run. */
	const char *malloc_owner;
	const char *alloc_name;    /* the call alloc makes ("malloc"), named in
	                            * failure notes unless alloc says otherwise */
	/* Once, before any workload.  0, or -1 with errno (reason in note). */
	int (*init)(char *note, size_t notelen);
	/* Before a workload: the most bytes and buffers it may hold live.  The
	 * OpenSSL secure heap sizes its arena here (*arena: its bytes).  NULL
	 * if not needed.  0 or -1 with errno. */
	int (*prepare)(size_t max_bytes, size_t max_count, size_t *arena,
	    char *note, size_t notelen);
	/* NULL with errno on failure (compare_fail_call may name the call). */
	void *(*alloc)(size_t size);
	/* Exactly one of the two: free() needs no size, release() does. */
	void (*free)(void *ptr);
	void (*release)(void *ptr, size_t size);
	/* NULL when the backend has none (the tls workload then keeps each
	 * block's size in a 16-byte header and moves blocks itself). */
	void *(*realloc)(void *ptr, size_t size);
	/* Protection toggling; NULL when the backend cannot. 0 or -1, errno. */
	void *(*alloc_secret)(size_t size);
	void (*release_secret)(void *ptr, size_t size);
	int (*protect_none)(void *ptr, size_t size);
	int (*protect_read)(void *ptr, size_t size);
	/* Library name and version, as the library reports it at run time. */
	void (*version)(char *out, size_t outlen);
	/* Extra rows after a measurement (mlock failures, the backend's own
	 * statistics); may be NULL. */
	void (*counters)(const struct measure_key *k);
	/* Extra fields of the document's "backend_info" object, written as
	 * `"name": value` pairs each preceded by ", " (tars: its options);
	 * may be NULL. */
	void (*describe_json)(FILE *out);
	/* The backend's own statistics as one JSON object; NULL if none. */
	void (*stats_json)(FILE *out);
	/* System calls the backend counted itself so far, or -1 when it does
	 * not count them; NULL likewise. */
	double (*syscalls)(void);
	enum compare_tls_heap tls_heap;
	const char *tls_note;      /* how OpenSSL's heap is handled, or NULL */
	const char *capacity_note; /* what bounds its capacity, or NULL */
	/* capacity: a secret of size bytes of v, closed at rest, as the
	 * backend keeps secrets (used instead of alloc + touch when set);
	 * NULL with errno. */
	void *(*alloc_closed)(size_t size, unsigned char v);
	/* capacity: the time bound of the child at the default and tiny
	 * scales when the scale's own (30 s) is too short for this backend to
	 * reach the cap or its limit; 0 for the scale's.  --capacity-seconds
	 * overrides both. */
	double capacity_seconds;
	/* keylife: a key of size random bytes, closed at rest, as the backend
	 * keeps keys (tars-key: tars_key_new_random), and its free.  NULL:
	 * the workload uses alloc_secret + getrandom + protect_none and
	 * release_secret. */
	void *(*key_new)(size_t size);
	void (*key_free)(void *key, size_t size);
};

extern const struct compare_backend compare_backend;

/* Name of the call that failed in the last failing alloc (thread-local;
 * backends may set it, e.g. "mprotect"); the harness resets it. */
extern _Thread_local const char *compare_fail_call;

/* The backend's allocation and release, as every workload calls them. */
static inline void *compare_alloc(size_t size)
{
	void *p = compare_backend.alloc(size);

	if (__builtin_expect(p == NULL, 0) && compare_fail_call == NULL)
		compare_fail_call = compare_backend.alloc_name;
	return p;
}

static inline void compare_release(void *ptr, size_t size)
{
	if (compare_backend.release)
		compare_backend.release(ptr, size);
	else
		compare_backend.free(ptr);
}

/* ------------------------------------------------------------------------
 * Workloads: each wl_<name>.c registers itself with COMPARE_WORKLOAD
 * --------------------------------------------------------------------- */

enum compare_scale { SCALE_TINY, SCALE_DEFAULT, SCALE_FULL, SCALE_COUNT };

struct compare_params {
	const long *v;
	size_t n;
};

/* A list of parameter values: COMPARE_PARAMS(64, 1000, 10000). */
#define COMPARE_PARAMS(...) { (const long[]){ __VA_ARGS__ }, \
	sizeof((const long[]){ __VA_ARGS__ }) / sizeof(long) }

/* One measurement the summary ranks backends by. */
struct compare_headline {
	const char *label;         /* "pair 64 B" */
	const char *variant;
	double param_value;
	const char *metric;
	int higher_is_better;      /* throughput, capacity */
};

struct compare_workload {
	const char *name;
	const char *what;          /* one line */
	const char *param;         /* parameter name */
	struct compare_params params[SCALE_COUNT]; /* tiny, default, full */
	/* 1: one process per parameter (page usage from a fresh process). */
	int per_param;
	/* 1: one round is enough (a deterministic count, e.g. capacity). */
	int once;
	const struct compare_headline *headlines;
	size_t nheadlines;
	/* Runs the parameters of compare_params(); 0, or -1 when it could not
	 * run at all (a failed measurement is a row, not an error). */
	int (*run)(const struct compare_workload *w);
	/* The backend the ratios of this workload are taken against: NULL
	 * for tars; "tars-key" for the workloads only key backends run. */
	const char *reference;
};

/*
 * COMPARE_WORKLOAD(wl_pair) = { .name = "pair", ... };
 *
 * defines the workload and puts a pointer to it in the linker section
 * compare_workloads, which main.c walks: a new wl_<name>.c needs no table
 * entry anywhere else.  The order is the link order (compare.mk).
 */
#define COMPARE_WORKLOAD(var)                                                  \
	static const struct compare_workload var;                                  \
	static const struct compare_workload *const var##_entry                    \
	    __attribute__((used, section("compare_workloads"),                     \
		aligned(sizeof(void *)))) = &var;                                     \
	static const struct compare_workload var

#define COMPARE_HEADLINES(...) \
	.headlines = (const struct compare_headline[]){ __VA_ARGS__ }, \
	.nheadlines = sizeof((const struct compare_headline[]){ __VA_ARGS__ }) / \
	    sizeof(struct compare_headline)

/* ------------------------------------------------------------------------
 * Run configuration
 * --------------------------------------------------------------------- */

struct compare_config {
	enum compare_scale scale;
	int reps;              /* repetitions per measurement */
	double rep_seconds;    /* time budget of one repetition */
	double capacity_seconds; /* time bound of the capacity child */
	long param;            /* one parameter only, or -1 for the scale's list */
	const char *variants;  /* --variant V[,V...]: only these, or NULL for all */
	uint64_t seed;
};

extern struct compare_config compare_cfg;

/* ------------------------------------------------------------------------
 * Output (json.c): one measurement = one row of the tidy CSV
 * --------------------------------------------------------------------- */

void compare_emit(const struct measure_key *k, const char *metric, double value,
    const char *unit, const char *note);
/* A failed or impossible measurement: status "failed" or "unsupported",
 * errno by name, and a note saying what happened. */
void compare_emit_status(const struct measure_key *k, const char *metric,
    const char *status, int err, const char *note);
/* Everything explicit: a value that comes with an errno (capacity). */
void compare_emit_full(const struct measure_key *k, const char *metric, double value,
    const char *unit, const char *status, int err, const char *note);

/* The document around the rows (main.c writes it, json.c formats it):
 * fields of the top-level object, in order. */
void json_begin(FILE *out);
void json_key(const char *name);        /* `,\n  "name": ` */
void json_str(const char *s);
void json_num(double v);
void json_bool(int v);
void json_rows_begin(void);             /* the "measurements" array */
void json_rows_end(void);
void json_end(void);
/* s as a JSON string on out (quoted, escaped). */
void json_fstr(FILE *out, const char *s);
/* "ENOMEM", or "" for 0. */
const char *compare_errno_name(int err);

/* ------------------------------------------------------------------------
 * Timing and statistics (measure.c)
 * --------------------------------------------------------------------- */

uint64_t compare_now_ns(void);
/* Median cost of one compare_now_ns() call, measured once. */
double compare_timer_overhead_ns(void);

/*
 * Single operations are timed with the timestamp counter: lfence; rdtsc
 * before, rdtscp; lfence after (the operation can neither start before the
 * first read nor be still running at the second).  The counter's rate is
 * calibrated against CLOCK_MONOTONIC once (~20 ms), and the cost of an
 * empty begin/end pair (median of 1001) is subtracted from every sample.
 */
static inline uint64_t compare_tsc_begin(void)
{
	uint32_t lo, hi;

	__asm__ volatile("lfence\n\trdtsc" : "=a"(lo), "=d"(hi) : : "memory");
	return (uint64_t)hi << 32 | lo;
}

static inline uint64_t compare_tsc_end(void)
{
	uint32_t lo, hi, aux;

	__asm__ volatile("rdtscp\n\tlfence" : "=a"(lo), "=d"(hi), "=c"(aux) : : "memory");
	(void)aux;
	return (uint64_t)hi << 32 | lo;
}

/* Ticks per nanosecond, and the cost of an empty begin/end pair in ticks;
 * both measured once. */
double compare_tsc_per_ns(void);
double compare_tsc_overhead(void);
/* Nanoseconds of an operation that took `ticks` between begin and end,
 * the timer's own cost removed (never below 0). */
double compare_tsc_ns(uint64_t ticks);

/* Samples of latency in ns (per batch: the batch's mean per operation; per
 * operation: one timed operation). */
struct samples {
	double *v;
	size_t n, cap;
};
void samples_init(struct samples *s, size_t cap);
void samples_add(struct samples *s, double ns);
void samples_free(struct samples *s);
/* Sorts in place; q in [0, 1]; nearest rank. */
double samples_quantile(struct samples *s, double q);
/* Median of n values (copied, not sorted in place); n <= 64. */
double compare_median(const double *v, int n);

/* ------------------------------------------------------------------------
 * Memory from /proc, read outside timed regions (procmem.c)
 * --------------------------------------------------------------------- */

struct memsnap {
	double rss;      /* bytes, VmRSS */
	double hwm;      /* bytes, VmHWM */
	double vsize;    /* bytes, VmSize */
	double locked;   /* bytes, VmLck */
	double anon;     /* bytes, Anonymous from smaps_rollup */
	double vmas;     /* lines of /proc/self/maps */
	double minflt;   /* minor faults so far (getrusage) */
};

int memsnap_take(struct memsnap *m);
/* Rows rss_bytes, vmlck_bytes, vmhwm_bytes, vsize_bytes, vma_count (at the
 * snapshot) and their growth over `base`. */
void compare_emit_memory(const struct measure_key *k, const struct memsnap *now,
    const struct memsnap *base);
double compare_minflt(void);

/* ------------------------------------------------------------------------
 * The runner (runner.c)
 * --------------------------------------------------------------------- */

/* One operation; 0, or -1 with errno set (compare_fail_call may say
 * which call failed). */
typedef int (*op_fn)(void *ctx, size_t i);

struct run_result {
	size_t done;      /* operations completed */
	size_t batched;   /* of which timed in batches (ns is their time) */
	uint64_t ns;      /* batch nanoseconds, timer cost removed */
	int err;          /* errno of the failing operation, 0 if none */
	const char *call; /* which call failed */
};

/* Batch-mean samples and per-operation samples of one measurement. */
struct timing {
	struct samples batch;
	struct samples op;
};
void timing_init(struct timing *t, size_t batches, size_t ops);
void timing_free(struct timing *t);

/* Operations first .. first+n-1: a batch of b timed together (one batch
 * sample), then `singles` timed one by one (per-operation samples), and so
 * on.  t may be NULL (untimed warm-up). */
void run_batches(op_fn op, void *ctx, size_t first, size_t n, size_t b,
    size_t singles, struct timing *t, struct run_result *r);

/* Calibration, then compare_cfg.reps repetitions of about rep_seconds
 * each; emits the latency rows and minor faults per op.  The op must be
 * repeatable indefinitely (i is a running counter).  0 or -1 (failure
 * emitted). */
int run_reps(const struct measure_key *k, op_fn op, void *ctx, double rep_seconds,
    const char *unit_op);
/* The same, every repetition made of whole granules of operations (a
 * burst: K allocations and K frees), whatever its time budget says. */
int run_reps_whole(const struct measure_key *k, op_fn op, void *ctx, double rep_seconds,
    const char *unit_op, size_t granule);

/* Latency rows: ns_per_op (median of the repetition means), the batch-mean
 * percentiles batch_p50_ns/batch_p99_ns/batch_p999_ns, the per-operation
 * percentiles op_p50_ns/op_p99_ns/op_p999_ns, ops_per_s, and the sample
 * counts. */
void compare_emit_latency(const struct measure_key *k, const double *rep_means,
    int nreps, struct timing *t, const char *unit_op);

/* A failed measurement: one row (status failed) and a progress line. */
void compare_emit_failure(const struct measure_key *k, const char *metric,
    const struct run_result *r, const char *what);

/* compare_backend.prepare for a workload; emits the failure row (or the
 * arena size) itself.  0 or -1. */
int compare_prepare(size_t max_bytes, size_t max_count, const struct measure_key *k);

/* The workload's parameters: the one given with --param, else the list of
 * the scale.  Returns the count (at most max). */
size_t compare_params(const struct compare_workload *w, long *out, size_t max);

/* one(w, v) for every parameter v of compare_params(), with a progress
 * line; values outside min..max are skipped (with a line saying so). */
void compare_for_params(const struct compare_workload *w, long min, long max,
    void (*one)(const struct compare_workload *w, long value));

/* 1 when the variant is to run: no --variant, or named in its list. */
int compare_variant_on(const char *variant);

/* Backend system calls so far (compare_backend.syscalls), or NAN. */
double compare_syscalls(void);

/* ------------------------------------------------------------------------
 * Harness memory and helpers (measure.c)
 * --------------------------------------------------------------------- */

/* Zeroed, pre-faulted anonymous memory outside every backend; exits on
 * failure (the harness cannot run without it). */
void *compare_mem(size_t bytes);
void compare_mem_free(void *p, size_t bytes);

/* xoshiro256**, deterministic from compare_cfg.seed. */
struct rng {
	uint64_t s[4];
};
void rng_seed(struct rng *r, uint64_t seed);
uint64_t rng_next(struct rng *r);
/* Uniform in [0, n). */
size_t rng_below(struct rng *r, size_t n);

/* Write every byte of p (the buffer is really used) and keep the compiler
 * from dropping it. */
static inline void compare_touch(void *p, size_t n, unsigned char v)
{
	__builtin_memset(p, v, n);
	__asm__ volatile("" : : "r"(p) : "memory");
}

/* Progress line on stderr (the driver shows it). */
void compare_progress(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The crypto sizes: what TLS and crypto code allocate (keys, hash and
 * cipher states), used by churn, threads and the pair sizes. */
extern const size_t compare_crypto_sizes[];
extern const size_t compare_ncrypto_sizes;

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

#endif /* COMPARE_H */
