/*
 * sec.h - the security evaluation (make security).
 *
 * One executable per backend (sec-tars, sec-glibc, sec-jemalloc, ...), all
 * built from the same experiment sources plus one backend_<name>.c that
 * defines `sec_backend`: jemalloc and mimalloc replace malloc process-wide,
 * so each backend needs a process of its own.  Each run executes one
 * experiment on one "kind" of allocation and writes one JSON document on
 * stdout; security/security.py runs the processes, computes the figures
 * (entropy, exposure rates) and writes the report.
 *
 * The harness never allocates through the backend: its arrays come from
 * plain mmap (sec_mem), stdout has a static buffer, and /proc is read with
 * open/read, so the allocator under test sees only the experiment's calls.
 */
#ifndef SEC_H
#define SEC_H

#include <stddef.h>
#include <stdint.h>

/* ------------------------------------------------------------------------
 * Backends and kinds of allocation
 * --------------------------------------------------------------------- */

/* One kind of allocation a backend offers ("tars", "tars-key", ...). */
struct sec_kind {
	const char *name;
	const char *what;    /* one line for the report */
	/* A block of `size` bytes: its handle, and in *data where its bytes
	 * are.  NULL with errno on failure. */
	void *(*alloc)(size_t size, unsigned char **data);
	void (*release)(void *handle, size_t size);
	/* A holder of the len bytes at src (a container that copies them in);
	 * NULL: alloc(len) and memcpy. */
	void *(*secret)(const unsigned char *src, size_t len, unsigned char **data);
	/* 1: the bytes are not accessible at rest (PROT_NONE): the harness
	 * neither fills nor reads them directly. */
	int closed;
};

struct sec_backend {
	const char *name;          /* "tars", "glibc", ... */
	const char *malloc_owner;  /* substring of the object defining malloc */
	const struct sec_kind *kinds;  /* ends with a NULL name */
	/* Once, before any experiment; arena: bytes the OpenSSL secure heap
	 * is set up with.  0, or -1 with a reason in note. */
	int (*init)(size_t arena, char *note, size_t notelen);
	void (*version)(char *out, size_t outlen);
	/* tars only (else NULL): set an option; 0 or -1 with errno. */
	int (*option)(const char *name, long value);
	/* tars only: JSON members "options" (values in force), "option_table". */
	void (*describe)(void);
	/* tars only: JSON member `key`: every statistic by its name. */
	void (*stats)(const char *key);
	/* tars only: one statistic by name; 0, or -1 if there is none. */
	int (*stat)(const char *name, uint64_t *out);
	/* tars only: the slot a chunk request of `size` occupies. */
	size_t (*slot)(size_t size);
	/* Extra JSON members after an experiment (mlock failures ...); may be NULL. */
	void (*counters)(void);
};

extern const struct sec_backend sec_backend;

/* ------------------------------------------------------------------------
 * Run configuration (main.c)
 * --------------------------------------------------------------------- */

#define SEC_MAX_N 8

struct sec_config {
	const struct sec_kind *kind;    /* -k: the kind under test */
	const struct sec_kind *bkind;   /* -b: over-read buffers (default kind) */
	size_t size;          /* -s: request size (64) */
	size_t secret_size;   /* -z: the secret's block in overread (0: -s) */
	size_t count;         /* -n: allocations, samples, buffers */
	size_t trials;        /* -t: forked trials */
	size_t cap;           /* -c: most allocations (memlock) */
	size_t live;          /* -L: live slots (churn) */
	size_t ops;           /* -M: operations (churn) */
	size_t pages;         /* -p: pages to fill (reuse states) */
	size_t limit;         /* -l: RLIMIT_MEMLOCK to set, 0 = leave */
	size_t arena;         /* -a: OpenSSL secure-heap arena bytes */
	const char *state;    /* -S: reuse state */
	size_t over[SEC_MAX_N];   /* -N: over-read lengths */
	size_t nover;
	uint64_t seed;        /* -r */
	size_t page;          /* sysconf(_SC_PAGESIZE) */
};

extern struct sec_config sec_cfg;

/* Experiments: each writes its JSON members and returns 0, or -1 with a
 * reason in err. */
typedef int (*sec_experiment)(char *err, size_t errlen);
int exp_first(char *err, size_t errlen);
int exp_seq(char *err, size_t errlen);
int exp_reuse(char *err, size_t errlen);
int exp_forkdiv(char *err, size_t errlen);
int exp_overread(char *err, size_t errlen);
int exp_uaf(char *err, size_t errlen);
int exp_memlock(char *err, size_t errlen);
int exp_window(char *err, size_t errlen);
int exp_churn(char *err, size_t errlen);

/* ------------------------------------------------------------------------
 * JSON on stdout (json.c): members of the open object or items of the open
 * array; commas are handled here.
 * --------------------------------------------------------------------- */

void js_open(const char *key);        /* "key": {   (key NULL: a bare {) */
void js_close(void);                  /* } */
void js_array(const char *key);       /* "key": [ */
void js_array_end(void);              /* ] */
void js_u64(const char *key, uint64_t v);   /* key NULL: an array item */
void js_i64(const char *key, int64_t v);
void js_num(const char *key, double v);
void js_str(const char *key, const char *v);
void js_bool(const char *key, int v);
void js_null(const char *key);

/* ------------------------------------------------------------------------
 * Harness memory, randomness, secrets (util.c)
 * --------------------------------------------------------------------- */

/* Zeroed private anonymous memory outside every backend; exits on failure. */
void *sec_mem(size_t bytes);
/* Shared with forked children (trial results). */
void *sec_mem_shared(size_t bytes);
void sec_mem_free(void *p, size_t bytes);

struct sec_rng {
	uint64_t s[4];
};
void sec_rng_seed(struct sec_rng *r, uint64_t seed);
uint64_t sec_rng_next(struct sec_rng *r);
size_t sec_rng_below(struct sec_rng *r, size_t n);

/* The secret: SEC_SECRET_LEN random bytes on a page of their own (the
 * reference copy, which memory scans skip).  Created once (getrandom). */
#define SEC_SECRET_LEN 32
#define SEC_WINDOW 8      /* a "window": 8 aligned bytes of the secret */
const unsigned char *sec_secret(void);
/* A fresh secret (new random bytes) for the next trial. */
void sec_secret_renew(void);
/* How many of the secret's SEC_SECRET_LEN / SEC_WINDOW windows occur in
 * [p, p + len). */
unsigned sec_windows_in(const unsigned char *p, size_t len);
/* Holder of the secret of kind k (k->secret, or alloc + copy): its handle,
 * *data its bytes.  The rest of a plain block is filled with 'A'. */
void *sec_plant(const struct sec_kind *k, size_t size, unsigned char **data);

/* Blocks of the kind under test: alloc and fill with byte v (unless closed). */
void *sec_alloc_filled(const struct sec_kind *k, size_t size, unsigned char v,
    unsigned char **data);

/* Sorts ascending, without qsort (which may call malloc and so disturb the
 * heap under test). */
void sec_sort_u64(uint64_t *a, size_t n);

/* sprintf into err, return -1 (experiments' failure path). */
int sec_fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ------------------------------------------------------------------------
 * Probes: faults, children, /proc (probe.c)
 * --------------------------------------------------------------------- */

/* Plain memcpy of len bytes from src; 0, or -1 if the read faulted
 * (SIGSEGV or SIGBUS: the fault is caught and the copy abandoned). */
int sec_read(void *dst, const void *src, size_t len);

/* How a forked child ended. */
struct sec_child {
	int exited, code;     /* normal exit and its status */
	int signaled, sig;    /* killed by a signal (SIGALRM: ran over) */
};
/* Runs fn(arg) in a forked child bounded to secs seconds; 0 if it exited
 * 0, else -1 (how it ended in *st).  fn reports through shared memory. */
int sec_child_run(void (*fn)(void *), void *arg, unsigned secs, struct sec_child *st);
/* "exit 3", "SIGSEGV", "timeout" ... */
const char *sec_child_desc(const struct sec_child *st, char *out, size_t len);

/* A field of /proc/self/status in kB (VmLck ...); -1 if absent. */
long sec_status_kb(const char *field);
/* A field's text (CapEff ...); 0 or -1. */
int sec_status_str(const char *field, char *out, size_t len);

/* /proc/self/maps, sorted by address. */
struct sec_map {
	uintptr_t lo, hi;
	char perm[5];
	int special;   /* [vvar], [vsyscall], [vdso]: never scanned */
};
struct sec_maps {
	struct sec_map *m;
	size_t n, cap;
};
int sec_maps_read(struct sec_maps *maps);
void sec_maps_free(struct sec_maps *maps);
/* The mapping holding addr, or NULL. */
const struct sec_map *sec_maps_find(const struct sec_maps *maps, uintptr_t addr);

/* Page states for a set of page addresses: readable+writable, PROT_NONE,
 * another protection, or not mapped. */
struct sec_pagestates {
	size_t rw, none, other, unmapped;
	size_t none_resident;   /* of the PROT_NONE ones, resident (mincore):
	                         * a cache still holding (wiped) bytes, where
	                         * the rest are bare address reservations */
};
void sec_pages_classify(const uint64_t *pages, size_t n, struct sec_pagestates *out);

/* Every resident page of every mapping (PROT_NONE ones too), read through
 * /proc/self/mem, searched for the secret.  The secret's own page and the
 * scanner's buffers are skipped. */
struct sec_scan {
	uint64_t full;       /* occurrences of all SEC_SECRET_LEN bytes */
	uint64_t windows;    /* occurrences of any SEC_WINDOW-byte window */
	uint64_t bytes;      /* bytes read */
	uint64_t unreadable; /* resident bytes /proc/self/mem refused (EIO) */
};
int sec_scan_secret(struct sec_scan *out);

/* tars stats by name when the backend has them; *ok 0 when not. */
uint64_t sec_stat(const char *name, int *ok);

#endif /* SEC_H */
