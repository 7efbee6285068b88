/*
 * compare.h - the allocator comparison harness.
 *
 * One executable per backend (compare-tars, compare-glibc, ...), all built
 * from the same workload sources plus one backend_<name>.c that defines
 * `compare_backend`.  Each run executes one workload (optionally one
 * parameter of it) and writes one JSON document on stdout; compare/run.py
 * runs the processes, merges their documents and writes the tidy CSV.
 *
 * The harness never allocates its own bookkeeping through the backend:
 * sample arrays and slot tables come from compare_mem() (plain mmap), so
 * the page usage read from /proc is the backend's.
 */
#ifndef COMPARE_H
#define COMPARE_H

#include <stddef.h>
#include <stdint.h>

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

struct compare_backend {
	const char *name;          /* as printed: "tars", "tars-key", ... */
	const char *malloc_owner;  /* substring expected in the path of the
	                            * object that defines malloc ("libc.so") */
	/* Once, before any workload.  0, or -1 with errno (reason in note). */
	int (*init)(char *note, size_t notelen);
	/* Before a workload: the most bytes and buffers it may hold live.  The
	 * OpenSSL secure heap sizes its arena here (*arena: its bytes).  NULL
	 * if not needed.  0 or -1 with errno. */
	int (*prepare)(size_t max_bytes, size_t max_count, size_t *arena,
	    char *note, size_t notelen);
	/* NULL with errno on failure; compare_fail_call says which call. */
	void *(*alloc)(size_t size);
	void (*release)(void *ptr, size_t size);
	/* Protection toggling; NULL when the backend cannot. 0 or -1, errno. */
	void *(*alloc_secret)(size_t size);
	void (*release_secret)(void *ptr, size_t size);
	int (*protect_none)(void *ptr, size_t size);
	int (*protect_read)(void *ptr, size_t size);
	/* Library name and version, as the library reports it at run time. */
	void (*version)(char *out, size_t outlen);
	/* Extra backend counters after a workload (mlock failures, ...); may
	 * be NULL. */
	void (*counters)(const struct measure_key *k);
	const char *capacity_note; /* what bounds its capacity, or NULL */
	/* capacity: a secret of size bytes of v, closed at rest, as the
	 * backend keeps secrets (used instead of alloc + write when set);
	 * NULL with errno. */
	void *(*alloc_closed)(size_t size, unsigned char v);
};

extern const struct compare_backend compare_backend;

/* Name of the call that failed in the last failing alloc (thread-local;
 * backends set it, e.g. "mprotect"); the harness resets it to NULL. */
extern _Thread_local const char *compare_fail_call;

/* ------------------------------------------------------------------------
 * Run configuration
 * --------------------------------------------------------------------- */

enum compare_scale { SCALE_TINY, SCALE_DEFAULT, SCALE_FULL };

struct compare_config {
	enum compare_scale scale;
	int reps;              /* repetitions per measurement */
	double rep_seconds;    /* time budget of one repetition */
	double capacity_seconds; /* time bound of the capacity child */
	long param;            /* one parameter only, or -1 for the default list */
	uint64_t seed;
};

extern struct compare_config compare_cfg;

/* ------------------------------------------------------------------------
 * Output: one measurement = one row of the tidy CSV
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

/* ------------------------------------------------------------------------
 * Timing and statistics (measure.c)
 * --------------------------------------------------------------------- */

uint64_t compare_now_ns(void);
/* Median cost of one compare_now_ns() call, measured once. */
double compare_timer_overhead_ns(void);

/* Batched samples: each sample is the mean ns/op of one batch. */
struct samples {
	double *v;
	size_t n, cap;
};
void samples_init(struct samples *s, size_t cap);
void samples_add(struct samples *s, double ns_per_op);
void samples_free(struct samples *s);
/* Sorts in place; q in [0, 1]. */
double samples_quantile(struct samples *s, double q);

/* Latency rows (median of repetition means, p50/p99/p99.9 of batches,
 * throughput, sample count) for one measurement. */
void compare_emit_latency(const struct measure_key *k, const char *prefix,
    const double *rep_means, int nreps, struct samples *s, const char *unit_op);

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
 * Harness memory and helpers
 * --------------------------------------------------------------------- */

/* Zeroed, pre-faulted anonymous memory outside every backend; exits on
 * failure (the harness cannot run without it). */
void *compare_mem(size_t bytes);
void compare_mem_free(void *p, size_t bytes);

/* xoshiro-style generator, deterministic from compare_cfg.seed. */
struct rng {
	uint64_t s[4];
};
void rng_seed(struct rng *r, uint64_t seed);
uint64_t rng_next(struct rng *r);
/* Uniform in [0, n). */
size_t rng_below(struct rng *r, size_t n);

/* Write every byte of p (the buffer is really used) and keep the compiler
 * from dropping it. */
void compare_touch(void *p, size_t n, unsigned char v);

/* Progress line on stderr (the driver shows it). */
void compare_progress(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Workloads (workloads.c); each returns 0 or -1 when it could not run. */
int wl_pair(void);
int wl_fill(void);
int wl_churn(void);
int wl_session(void);
int wl_threads(void);
int wl_protect(void);
int wl_capacity(void);

#endif /* COMPARE_H */
