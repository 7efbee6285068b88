/*
 * mt_stress.c - multithreaded stress of tars, as a standalone program.
 *
 * Criterion aborts under -fsanitize=thread ("Could not initialize
 * inheritable arena", Criterion bug #274), so the ThreadSanitizer run of
 * the concurrent paths uses this program instead (make test-mt-stress
 * SAN=thread).  It runs in the plain and ASan suites too.  Plain C11 and
 * pthreads; only the public API of tars.h.
 *
 * For a bounded time (-t, default 5 s) these sections run at once:
 *
 *   alloc    4 threads: random malloc/calloc/realloc/aligned_alloc/free/
 *            freezero of 0..3 pages (and now and then a key allocation:
 *            tars_malloc_key, tars_protect_*, tars_realloc_key), every
 *            block pattern-filled and verified; blocks change threads
 *            through a mutex-protected exchange queue, so frees cross
 *            threads and heaps (remote frees)
 *   outlive  main starts short-lived threads that free blocks main made
 *            and allocate blocks, a key allocation, a tars_buf and two
 *            tars_keys that outlive them; main verifies and frees those
 *   key      3 readers and a writer on one tars_key.  Rounds: every
 *            reader holds a read scope (the writer must get EBUSY), then
 *            none does (the writer must get the scope), then free
 *            contention; the contents are always one consistent version
 *   stats    2 threads calling tars_stats_get (and tars_stats_print)
 *   fork     main forks while the others allocate; each child checks an
 *            inherited block, allocates, frees and _exits; a child that
 *            hangs is killed by its alarm() and reported as a deadlock
 *
 * preceded by `init` (the very first tars calls made by 4 threads at once)
 * and followed by `final` (every allocation of the run is gone again).
 * One line per section, then "mt_stress: N passed, M failed" (N, M count
 * sections); exit status 0 only if all passed.  A watchdog ends a run
 * that takes 4 times as long as it should, plus a minute.
 *
 * Options: -t SECONDS (run time, default 5), -n OPS (stop each alloc
 * thread after OPS operations; 0, the default, means run for the whole
 * time), -s SEED (random seed, default from the clock; printed).
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tars.h"

#define NWORKERS 4          /* alloc threads */
#define NSLOTS 64           /* live blocks per alloc thread */
#define XQ_CAP 256          /* exchange queue entries */
#define NREADERS 3          /* key readers (plus one writer) */
#define NSTATS 2            /* stats threads */
#define KEY_ROUND_OPS 64    /* contended scope attempts per key round */
#define OUTLIVE_BLOCKS 16   /* blocks a short-lived thread leaves behind */
#define OUTLIVE_GIFTS 4     /* blocks of main a short-lived thread frees */
#define MAX_FORKS 32        /* fork children per run, at most */
#define CHILD_ALARM 30      /* seconds a fork child may live */

enum { S_INIT, S_ALLOC, S_OUTLIVE, S_KEY, S_STATS, S_FORK, S_FINAL, NSECT };
static const char *const sect_name[NSECT] = {
	"init", "alloc", "outlive", "key", "stats", "fork", "final",
};

/* Set by main before any thread starts, read-only afterwards. */
static size_t g_ps;                 /* page size */
static uint64_t g_deadline;         /* CLOCK_MONOTONIC ns */
static unsigned char *g_tmpl;       /* pattern source: 3 pages + 256 */
static unsigned char *g_zero;       /* 3 pages of zeros */
static size_t g_heaps_min;           /* heaps after init: never fewer */

static atomic_uint sect_fails[NSECT];
static atomic_int g_stop;           /* a check failed, or time is up */
static atomic_int workers_done;

/* ------------------------------------------------------------------------
 * Reporting and helpers
 * --------------------------------------------------------------------- */

static void die(const char *what, int err) __attribute__((noreturn));
static void
die(const char *what, int err)
{
	fprintf(stderr, "mt_stress: %s: %s\n", what, strerror(err));
	exit(2);
}

static void fail(int sect, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void
fail(int sect, const char *fmt, ...)
{
	va_list ap;
	flockfile(stderr);
	fprintf(stderr, "mt_stress: FAIL %s: ", sect_name[sect]);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	funlockfile(stderr);
	atomic_fetch_add(&sect_fails[sect], 1);
	atomic_store(&g_stop, 1);
}

static void
lock(pthread_mutex_t *m)
{
	int rc = pthread_mutex_lock(m);
	if (rc != 0) {
		die("pthread_mutex_lock", rc);
	}
}

static void
unlock(pthread_mutex_t *m)
{
	int rc = pthread_mutex_unlock(m);
	if (rc != 0) {
		die("pthread_mutex_unlock", rc);
	}
}

static void
bwait(pthread_barrier_t *b)
{
	int rc = pthread_barrier_wait(b);
	if (rc != 0 && rc != PTHREAD_BARRIER_SERIAL_THREAD) {
		die("pthread_barrier_wait", rc);
	}
}

static void
start(pthread_t *t, void *(*fn)(void *), void *arg)
{
	int rc = pthread_create(t, NULL, fn, arg);
	if (rc != 0) {
		die("pthread_create", rc);
	}
}

static void
join(pthread_t t)
{
	int rc = pthread_join(t, NULL);
	if (rc != 0) {
		die("pthread_join", rc);
	}
}

static uint64_t
now_ns(void)
{
	struct timespec ts;
	if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) {
		die("clock_gettime", errno);
	}
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int
time_up(void)
{
	return atomic_load_explicit(&g_stop, memory_order_relaxed) ||
	    now_ns() >= g_deadline;
}

/* xorshift64* */
static uint64_t
rnd(uint64_t *s)
{
	uint64_t x = *s;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * UINT64_C(0x2545f4914f6cdd1d);
}

static size_t
rnd_below(uint64_t *s, size_t n)
{
	return (size_t)((rnd(s) >> 16) % n);
}

/* ------------------------------------------------------------------------
 * Blocks: pattern-filled allocations
 *
 * A block's expected contents are g_tmpl[tag & 255 ...], so a fill is a
 * memcpy and a check a memcmp (cheap under the sanitizers).
 * --------------------------------------------------------------------- */

enum { PR_NONE, PR_READ, PR_WRITE };

struct blk {
	unsigned char *p;   /* NULL: no block */
	size_t size;        /* requested size */
	size_t align;       /* from tars_aligned_alloc, else 0 */
	uint32_t tag;
	int key;            /* a key allocation (tars_malloc_key) */
	int prot;           /* a key's protection, PR_* */
};

static const unsigned char *
pattern(uint32_t tag)
{
	return g_tmpl + (tag & 255);
}

/* 1 if the n bytes at p are tag's pattern (or zeros, zero != 0). */
static int
check_bytes(int sect, const unsigned char *p, size_t n, uint32_t tag, int zero,
    const char *what)
{
	const unsigned char *want = zero ? g_zero : pattern(tag);
	if (n == 0 || memcmp(p, want, n) == 0) {
		return 1;
	}
	size_t i = 0;
	while (p[i] == want[i]) {
		i++;
	}
	fail(sect, "%s: block %p corrupted at offset %zu of %zu: %#x, expected %#x",
	    what, (const void *)p, i, n, p[i], want[i]);
	return 0;
}

/* Makes a closed key allocation readable. */
static void
blk_open(int sect, struct blk *b)
{
	if (b->key && b->prot == PR_NONE) {
		if (tars_protect_read(b->p) != 0) {
			fail(sect, "tars_protect_read(%p): %s", (void *)b->p, strerror(errno));
			return;
		}
		b->prot = PR_READ;
	}
}

static int
blk_check(int sect, struct blk *b, const char *what)
{
	blk_open(sect, b);
	return check_bytes(sect, b->p, b->size, b->tag, 0, what);
}

static void
blk_fill(struct blk *b)
{
	if (b->size > 0) {
		memcpy(b->p, pattern(b->tag), b->size);
	}
}

/* 0..3 pages, weighted towards chunk sizes. */
static size_t
rnd_size(uint64_t *s)
{
	size_t r = rnd_below(s, 100);
	if (r < 5) {
		return 0;
	}
	if (r < 70) {
		return 1 + rnd_below(s, 256);
	}
	if (r < 85) {
		return 257 + rnd_below(s, g_ps / 2 - 256);
	}
	return g_ps / 2 + 1 + rnd_below(s, 3 * g_ps - g_ps / 2);
}

/* Leaves a key allocation closed, read-only or open, at random. */
static void
blk_key_protect(int sect, struct blk *b, uint64_t *s)
{
	int prot = (int)rnd_below(s, 3);
	int rc = prot == PR_NONE ? tars_protect_none(b->p) :
	    prot == PR_READ ? tars_protect_read(b->p) : tars_protect_write(b->p);
	if (rc != 0) {
		fail(sect, "tars_protect_*(%p): %s", (void *)b->p, strerror(errno));
		return;
	}
	b->prot = prot;
}

/* Allocates b (size `size`) by a random entry point, checks and fills it.
 * 1 on success; on failure b->p is NULL and the failure reported. */
static int
blk_alloc_size(int sect, struct blk *b, uint64_t *s, size_t size)
{
	static const char *const names[] = {
		"tars_malloc", "tars_calloc", "tars_aligned_alloc", "tars_realloc(NULL)",
		"tars_malloc_key",
	};
	size_t r = rnd_below(s, 100);
	size_t how = r < 6 ? 4 : r % 4;     /* a key allocation now and then */
	b->size = size;
	b->align = 0;
	b->tag = (uint32_t)rnd(s);
	b->key = how == 4;
	b->prot = PR_WRITE;
	errno = 0;
	switch (how) {
	case 0:
		b->p = tars_malloc(size);
		break;
	case 1:
		b->p = size % 4 == 0 ? tars_calloc(size / 4, 4) : tars_calloc(1, size);
		break;
	case 2:
		b->align = (size_t)1 << rnd_below(s, (size_t)__builtin_ctzl(g_ps) + 1);
		b->p = tars_aligned_alloc(b->align, size);
		break;
	case 3:
		b->p = tars_realloc(NULL, size);
		break;
	default:
		b->p = tars_malloc_key(size);
		break;
	}
	if (b->p == NULL) {
		fail(sect, "%s(%zu) failed: %s", names[how], size, strerror(errno));
		return 0;
	}
	if (b->align != 0 && (uintptr_t)b->p % b->align != 0) {
		fail(sect, "tars_aligned_alloc(%zu, %zu) = %p: misaligned", b->align,
		    size, (void *)b->p);
	}
	if (size >= 16 && (uintptr_t)b->p % 16 != 0) {
		fail(sect, "%s(%zu) = %p: not 16-byte aligned", names[how], size,
		    (void *)b->p);
	}
	if (how == 1) {
		(void)check_bytes(sect, b->p, size, 0, 1, "tars_calloc not zeroed");
	}
	blk_fill(b);
	if (b->key) {
		blk_key_protect(sect, b, s);
	}
	return 1;
}

static int
blk_alloc(int sect, struct blk *b, uint64_t *s)
{
	return blk_alloc_size(sect, b, s, rnd_size(s));
}

/* Checks and frees b: tars_freezero if zero, else tars_free. */
static void
blk_free(int sect, struct blk *b, int zero, const char *what)
{
	(void)blk_check(sect, b, what);
	if (zero) {
		tars_freezero(b->p, b->size);
	} else {
		tars_free(b->p);
	}
	b->p = NULL;
}

/* Checks b, moves it to a random new size, checks the kept prefix.  A
 * key stays a key, open (through either entry point). */
static void
blk_realloc(int sect, struct blk *b, uint64_t *s)
{
	(void)blk_check(sect, b, "before tars_realloc");
	size_t size = rnd_size(s);
	int rk = b->key && (b->tag & 1);
	errno = 0;
	unsigned char *n = rk ? tars_realloc_key(b->p, size) : tars_realloc(b->p, size);
	if (n == NULL) {
		fail(sect, "%s(%p, %zu) failed: %s", rk ? "tars_realloc_key" :
		    "tars_realloc", (void *)b->p, size, strerror(errno));
		return;   /* b untouched, still live */
	}
	(void)check_bytes(sect, n, size < b->size ? size : b->size, b->tag, 0,
	    "after tars_realloc");
	b->p = n;
	b->size = size;
	b->align = 0;
	b->tag = (uint32_t)rnd(s);
	b->prot = PR_WRITE;
	blk_fill(b);
	if (b->key) {
		blk_key_protect(sect, b, s);
	}
}

/* ------------------------------------------------------------------------
 * Section init: the first tars calls of the process, from 4 threads at once
 * --------------------------------------------------------------------- */

struct init_arg {
	pthread_barrier_t *bar;
	int id;
};

static void *
init_main(void *arg)
{
	struct init_arg *a = arg;
	bwait(a->bar);
	switch (a->id) {
	case 0: {
		unsigned char *p = tars_malloc(24);
		if (p == NULL) {
			fail(S_INIT, "first tars_malloc failed: %s", strerror(errno));
			break;
		}
		memcpy(p, pattern(7), 24);
		(void)check_bytes(S_INIT, p, 24, 7, 0, "first tars_malloc");
		tars_free(p);
		break;
	}
	case 1: {
		struct tars_stats st;
		tars_stats_get(&st);
		if (st.page_size != g_ps) {
			fail(S_INIT, "first tars_stats_get: page_size %zu, expected %zu",
			    st.page_size, g_ps);
		}
		break;
	}
	case 2: {
		size_t slot = tars_slot_size(100);
		if (slot < 100 || slot > g_ps) {
			fail(S_INIT, "first tars_slot_size(100) = %zu", slot);
		}
		unsigned char *p = tars_calloc(3, 40);
		if (p == NULL) {
			fail(S_INIT, "first tars_calloc failed: %s", strerror(errno));
			break;
		}
		(void)check_bytes(S_INIT, p, 120, 0, 1, "first tars_calloc");
		tars_freezero(p, 120);
		break;
	}
	default: {
		long junk = tars_option_get("junk");
		if (junk < 0 || junk > 2) {
			fail(S_INIT, "first tars_option_get(junk) = %ld", junk);
		}
		unsigned char *k = tars_malloc_key(10);
		if (k == NULL) {
			fail(S_INIT, "first tars_malloc_key failed: %s", strerror(errno));
			break;
		}
		memcpy(k, pattern(9), 10);
		if (tars_protect_read(k) != 0) {
			fail(S_INIT, "tars_protect_read: %s", strerror(errno));
		}
		(void)check_bytes(S_INIT, k, 10, 9, 0, "first key");
		tars_free(k);
		break;
	}
	}
	return NULL;
}

static void
run_init(void)
{
	pthread_barrier_t bar;
	int rc = pthread_barrier_init(&bar, NULL, 4);
	if (rc != 0) {
		die("pthread_barrier_init", rc);
	}
	pthread_t t[4];
	struct init_arg a[4];
	for (int i = 0; i < 4; i++) {
		a[i] = (struct init_arg){&bar, i};
		start(&t[i], init_main, &a[i]);
	}
	for (int i = 0; i < 4; i++) {
		join(t[i]);
	}
	rc = pthread_barrier_destroy(&bar);
	if (rc != 0) {
		die("pthread_barrier_destroy", rc);
	}
}

/* ------------------------------------------------------------------------
 * Section alloc: random operations, cross-thread frees via a queue
 * --------------------------------------------------------------------- */

struct xitem {
	struct blk b;
	int from;           /* worker that sent it */
};

static struct {
	pthread_mutex_t lock;
	struct xitem it[XQ_CAP];
	size_t head, count;
} xq = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* 1 if queued, 0 if the queue is full. */
static int
xq_push(const struct blk *b, int from)
{
	int ok = 0;
	lock(&xq.lock);
	if (xq.count < XQ_CAP) {
		xq.it[(xq.head + xq.count++) % XQ_CAP] = (struct xitem){*b, from};
		ok = 1;
	}
	unlock(&xq.lock);
	return ok;
}

/* 1 if an item was taken: the oldest one another worker than `self` sent
 * (self < 0: any). */
static int
xq_pop(struct xitem *out, int self)
{
	int ok = 0;
	lock(&xq.lock);
	for (size_t i = 0; i < xq.count; i++) {
		struct xitem *x = &xq.it[(xq.head + i) % XQ_CAP];
		if (x->from != self) {
			*out = *x;
			*x = xq.it[xq.head];    /* the oldest fills the hole */
			xq.head = (xq.head + 1) % XQ_CAP;
			xq.count--;
			ok = 1;
			break;
		}
	}
	unlock(&xq.lock);
	return ok;
}

struct worker {
	pthread_t tid;
	int id;
	uint64_t seed;
	unsigned long max_ops;      /* 0: until time is up */
	/* results, read by main after the join */
	unsigned long ops, allocs, frees, reallocs, sent, received;
};

static void
check_usable(int sect, const struct blk *b)
{
	size_t u = tars_usable_size(b->p);
	if (u < b->size) {
		fail(sect, "tars_usable_size(%p) = %zu < requested %zu", (void *)b->p,
		    u, b->size);
	}
}

static void *
worker_main(void *arg)
{
	struct worker *w = arg;
	uint64_t s = w->seed;
	struct blk slots[NSLOTS];
	memset(slots, 0, sizeof(slots));

	/* volatile: gcc would warn about the constant too-large size. */
	volatile size_t half = SIZE_MAX / 2 + 1;
	errno = 0;
	void *o = tars_calloc(half, 2);
	if (o != NULL || errno != ENOMEM) {
		fail(S_ALLOC, "tars_calloc overflow: %p, errno %d", o, errno);
	}
	while (w->max_ops == 0 || w->ops < w->max_ops) {
		if (w->ops % 32 == 0 && time_up()) {
			break;
		}
		w->ops++;
		size_t r = rnd_below(&s, 100);
		if (r < 8) {
			struct xitem x;
			if (xq_pop(&x, w->id)) {
				check_usable(S_ALLOC, &x.b);
				blk_free(S_ALLOC, &x.b, r & 1, "block from another thread");
				w->received++;
				w->frees++;
			}
			continue;
		}
		struct blk *b = &slots[rnd_below(&s, NSLOTS)];
		if (b->p == NULL) {
			w->allocs += blk_alloc(S_ALLOC, b, &s);
		} else if (r < 25) {
			if (blk_check(S_ALLOC, b, "before sending") && xq_push(b, w->id)) {
				w->sent++;
				b->p = NULL;
			}
		} else if (r < 45) {
			blk_realloc(S_ALLOC, b, &s);
			w->reallocs++;
		} else if (r < 55) {
			(void)blk_check(S_ALLOC, b, "live block");
			check_usable(S_ALLOC, b);
		} else {
			blk_free(S_ALLOC, b, r & 1, "own block");
			w->frees++;
		}
	}
	for (size_t i = 0; i < NSLOTS; i++) {
		if (slots[i].p != NULL) {
			blk_free(S_ALLOC, &slots[i], (int)(i & 1), "own block at exit");
			w->frees++;
		}
	}
	atomic_fetch_add(&workers_done, 1);
	return NULL;
}

/* ------------------------------------------------------------------------
 * Section stats: concurrent tars_stats_get
 * --------------------------------------------------------------------- */

struct statw {
	pthread_t tid;
	unsigned long snaps;
};

static void *
stats_main(void *arg)
{
	struct statw *sw = arg;
	FILE *devnull = fopen("/dev/null", "w");
	if (devnull == NULL) {
		die("fopen /dev/null", errno);
	}
	uint64_t last_mallocs = 0, last_frees = 0;
	do {
		struct tars_stats st;
		tars_stats_get(&st);
		sw->snaps++;
		if (st.page_size != g_ps || st.heaps < g_heaps_min) {
			fail(S_STATS, "page_size %zu, heaps %zu; expected %zu, >= %zu",
			    st.page_size, st.heaps, g_ps, g_heaps_min);
		}
		/* The counters only grow and the snapshot is consistent (no
		 * thread inside tars while it is taken): a heap never has freed
		 * more than it allocated. */
		if (st.mallocs < last_mallocs || st.frees < last_frees) {
			fail(S_STATS, "counters went back: mallocs %" PRIu64 " -> %" PRIu64
			    ", frees %" PRIu64 " -> %" PRIu64, last_mallocs, st.mallocs,
			    last_frees, st.frees);
		}
		if (st.frees > st.mallocs) {
			fail(S_STATS, "frees %" PRIu64 " > mallocs %" PRIu64, st.frees,
			    st.mallocs);
		}
		uint64_t classes = 0;
		for (unsigned c = 0; c < TARS_NCLASSES; c++) {
			classes += st.class_mallocs[c];
		}
		if (classes > st.mallocs || st.live_reserved < st.live_requested) {
			fail(S_STATS, "inconsistent snapshot: class mallocs %" PRIu64
			    " of %" PRIu64 " mallocs, %zu bytes reserved for %zu "
			    "requested", classes, st.mallocs, st.live_reserved,
			    st.live_requested);
		}
		last_mallocs = st.mallocs;
		last_frees = st.frees;
		if (sw->snaps % 64 == 1) {
			tars_stats_print(devnull);
		}
	} while (!time_up());
	if (fclose(devnull) != 0) {
		die("fclose /dev/null", errno);
	}
	return NULL;
}

/* ------------------------------------------------------------------------
 * Section key: shared read scopes against an exclusive write scope
 *
 * The key holds a version (8 bytes) and then pattern(version): a reader
 * that ever sees a mix of two versions saw a write through its scope.
 * --------------------------------------------------------------------- */

struct keyctx {
	tars_key *key;
	size_t len;
	pthread_barrier_t bar;
	atomic_int stop_rounds;
	atomic_int readers_in;      /* read scopes open, counted by the test */
	atomic_int writer_in;       /* write scope open, by the test */
	atomic_uint_fast64_t published; /* last version written and closed */
	atomic_ulong reads, busy_reads, writes, busy_writes, rounds, clones;
};

struct reader {
	pthread_t tid;
	struct keyctx *k;
};

/* The version in d, or reports a torn key and returns UINT64_MAX. */
static uint64_t
key_version(const unsigned char *d, size_t len, const char *what)
{
	uint64_t v;
	memcpy(&v, d, sizeof(v));
	if (!check_bytes(S_KEY, d + 8, len - 8, (uint32_t)v, 0, what)) {
		return UINT64_MAX;
	}
	return v;
}

/* A read scope just opened by the test: checks it and the version order. */
static void
reader_check(struct keyctx *k, const unsigned char *d, uint64_t *last,
    const char *what)
{
	if (atomic_load(&k->writer_in)) {
		fail(S_KEY, "%s: read scope open while the write scope is", what);
	}
	uint64_t v = key_version(d, k->len, what);
	uint64_t pub = atomic_load(&k->published);
	if (v != UINT64_MAX && (v < *last || v > pub + 1)) {
		fail(S_KEY, "%s: version %" PRIu64 " after %" PRIu64
		    " (published %" PRIu64 ")", what, v, *last, pub);
	}
	if (v != UINT64_MAX) {
		*last = v;
	}
}

/* Clone the key (may meet the writer: EBUSY) and check the copy. */
static void
reader_clone(struct keyctx *k, uint64_t *last)
{
	errno = 0;
	tars_key *c = tars_key_clone(k->key);
	if (c == NULL) {
		if (errno != EBUSY) {
			fail(S_KEY, "tars_key_clone: %s", strerror(errno));
		}
		return;
	}
	atomic_fetch_add(&k->clones, 1);
	if (tars_key_len(c) != k->len) {
		fail(S_KEY, "clone length %zu, expected %zu", tars_key_len(c), k->len);
	}
	const unsigned char *d = tars_key_read_begin(c);
	if (d == NULL) {
		fail(S_KEY, "read_begin on a private clone: %s", strerror(errno));
	} else {
		uint64_t v = key_version(d, k->len, "clone");
		if (v != UINT64_MAX && v < *last) {
			fail(S_KEY, "clone has version %" PRIu64 " after %" PRIu64, v, *last);
		}
		tars_key_read_end(c);
	}
	if (tars_key_equal(c, c) != 1) {
		fail(S_KEY, "tars_key_equal(clone, clone) != 1");
	}
	tars_key_free(c);
}

static void *
reader_main(void *arg)
{
	struct reader *rd = arg;
	struct keyctx *k = rd->k;
	uint64_t last = 0;
	for (;;) {
		bwait(&k->bar);                             /* A */
		if (atomic_load(&k->stop_rounds)) {
			break;
		}
		/* The writer waits at B: this scope must open. */
		const unsigned char *held = tars_key_read_begin(k->key);
		if (held == NULL) {
			fail(S_KEY, "read_begin with no writer: %s", strerror(errno));
		} else {
			atomic_fetch_add(&k->readers_in, 1);
			reader_check(k, held, &last, "held read scope");
		}
		bwait(&k->bar);                             /* B: all hold */
		bwait(&k->bar);                             /* C: writer refused */
		if (held != NULL) {
			reader_check(k, held, &last, "held read scope, after EBUSY");
			atomic_fetch_sub(&k->readers_in, 1);
			tars_key_read_end(k->key);
			atomic_fetch_add(&k->reads, 1);
		}
		bwait(&k->bar);                             /* D: none hold */
		bwait(&k->bar);                             /* E: writer wrote */
		for (int i = 0; i < KEY_ROUND_OPS; i++) {
			if (i % 16 == 0) {
				reader_clone(k, &last);
			}
			errno = 0;
			const unsigned char *d = tars_key_read_begin(k->key);
			if (d == NULL) {
				if (errno != EBUSY) {
					fail(S_KEY, "read_begin: %s, expected EBUSY",
					    strerror(errno));
				}
				atomic_fetch_add(&k->busy_reads, 1);
				continue;
			}
			atomic_fetch_add(&k->readers_in, 1);
			reader_check(k, d, &last, "read scope");
			if (i % 8 == 0) {
				/* Nested: a second scope of the same thread. */
				const unsigned char *d2 = tars_key_read_begin(k->key);
				if (d2 != d) {
					fail(S_KEY, "nested read_begin: %p, expected %p (%s)",
					    (const void *)d2, (const void *)d,
					    strerror(errno));
				} else {
					reader_check(k, d2, &last, "nested read scope");
					tars_key_read_end(k->key);
				}
			}
			atomic_fetch_sub(&k->readers_in, 1);
			tars_key_read_end(k->key);
			atomic_fetch_add(&k->reads, 1);
		}
	}
	return NULL;
}

/* One write attempt; must_open: no scope can be open, so it must work. */
static void
writer_try(struct keyctx *k, int must_open)
{
	errno = 0;
	unsigned char *d = tars_key_write_begin(k->key);
	if (d == NULL) {
		if (must_open || errno != EBUSY) {
			fail(S_KEY, "write_begin: %s%s", strerror(errno),
			    must_open ? " with no scope open" : ", expected EBUSY");
		}
		atomic_fetch_add(&k->busy_writes, 1);
		return;
	}
	atomic_store(&k->writer_in, 1);
	int in = atomic_load(&k->readers_in);
	if (in != 0) {
		fail(S_KEY, "write scope open while %d read scopes are", in);
	}
	uint64_t pub = atomic_load(&k->published);
	uint64_t v = key_version(d, k->len, "write scope");
	if (v != UINT64_MAX && v != pub) {
		fail(S_KEY, "write scope found version %" PRIu64 ", published %" PRIu64,
		    v, pub);
	}
	v = pub + 1;
	memcpy(d, &v, sizeof(v));
	memcpy(d + 8, pattern((uint32_t)v), k->len - 8);
	atomic_store(&k->writer_in, 0);
	tars_key_write_end(k->key);
	atomic_store(&k->published, v);
	atomic_fetch_add(&k->writes, 1);
}

static void *
writer_main(void *arg)
{
	struct keyctx *k = arg;
	for (;;) {
		if (time_up()) {
			atomic_store(&k->stop_rounds, 1);
		}
		bwait(&k->bar);                             /* A */
		if (atomic_load(&k->stop_rounds)) {
			break;
		}
		atomic_fetch_add(&k->rounds, 1);
		bwait(&k->bar);                             /* B: all hold */
		int in = atomic_load(&k->readers_in);
		if (in != NREADERS) {
			fail(S_KEY, "%d of %d readers hold a scope", in, NREADERS);
		}
		errno = 0;
		void *d = tars_key_write_begin(k->key);
		if (d != NULL) {
			fail(S_KEY, "write_begin succeeded while %d readers hold the key", in);
			tars_key_write_end(k->key);
		} else if (errno != EBUSY) {
			fail(S_KEY, "write_begin against readers: %s, expected EBUSY",
			    strerror(errno));
		} else {
			atomic_fetch_add(&k->busy_writes, 1);
		}
		/* Reading is shared: the writer thread may join the readers. */
		const void *r = tars_key_read_begin(k->key);
		if (r == NULL) {
			fail(S_KEY, "read_begin beside %d readers: %s", in, strerror(errno));
		} else {
			tars_key_read_end(k->key);
		}
		bwait(&k->bar);                             /* C */
		bwait(&k->bar);                             /* D: none hold */
		writer_try(k, 1);
		bwait(&k->bar);                             /* E */
		for (int i = 0; i < KEY_ROUND_OPS; i++) {
			writer_try(k, 0);
		}
	}
	return NULL;
}

static tars_key *
key_make(size_t len)
{
	tars_buf *b = tars_buf_new(len);
	if (b == NULL) {
		die("tars_buf_new", errno);
	}
	uint64_t v = 0;
	unsigned char *d = tars_buf_data(b);
	memcpy(d, &v, sizeof(v));
	memcpy(d + 8, pattern(0), len - 8);
	tars_key *key = tars_key_new(b);
	if (key == NULL) {
		die("tars_key_new", errno);
	}
	return key;
}

/* ------------------------------------------------------------------------
 * Section outlive: blocks that outlive the thread that allocated them
 * --------------------------------------------------------------------- */

struct outlive {
	uint64_t seed;
	struct blk gifts[OUTLIVE_GIFTS];    /* main's, freed by the thread */
	struct blk blocks[OUTLIVE_BLOCKS];  /* the thread's, freed by main */
	struct blk keymem;                  /* tars_malloc_key, left PROT_READ */
	tars_buf *buf;
	uint32_t buf_tag;
	tars_key *key, *key2;               /* key2 a clone of key */
};

static void *
outlive_main(void *arg)
{
	struct outlive *o = arg;
	uint64_t s = o->seed;
	for (int i = 0; i < OUTLIVE_GIFTS; i++) {
		blk_free(S_OUTLIVE, &o->gifts[i], i & 1, "block from main");
	}
	for (int i = 0; i < OUTLIVE_BLOCKS; i++) {
		(void)blk_alloc(S_OUTLIVE, &o->blocks[i], &s);
	}
	struct blk *km = &o->keymem;
	km->size = rnd_size(&s);
	km->tag = (uint32_t)rnd(&s);
	km->key = 1;
	km->prot = PR_READ;
	km->p = tars_malloc_key(km->size);
	if (km->p == NULL) {
		fail(S_OUTLIVE, "tars_malloc_key(%zu): %s", km->size, strerror(errno));
	} else {
		blk_fill(km);
		if (tars_protect_read(km->p) != 0) {
			fail(S_OUTLIVE, "tars_protect_read: %s", strerror(errno));
		}
	}
	o->buf_tag = (uint32_t)rnd(&s);
	o->buf = tars_buf_from(pattern(o->buf_tag), 1 + rnd_below(&s, 600));
	if (o->buf == NULL) {
		fail(S_OUTLIVE, "tars_buf_from: %s", strerror(errno));
	}
	o->key = tars_key_new_random(48);
	o->key2 = o->key != NULL ? tars_key_clone(o->key) : NULL;
	if (o->key == NULL || o->key2 == NULL) {
		fail(S_OUTLIVE, "tars_key_new_random/clone: %s", strerror(errno));
	}
	return NULL;
}

/* One short-lived thread: gives it blocks to free, frees what it left. */
static void
outlive_round(uint64_t *s, unsigned long *blocks)
{
	struct outlive o;
	memset(&o, 0, sizeof(o));
	o.seed = rnd(s) | 1;
	for (int i = 0; i < OUTLIVE_GIFTS; i++) {
		if (!blk_alloc(S_OUTLIVE, &o.gifts[i], s)) {
			while (i-- > 0) {
				blk_free(S_OUTLIVE, &o.gifts[i], 0, "gift");
			}
			return;
		}
	}
	pthread_t t;
	start(&t, outlive_main, &o);
	join(t);
	for (int i = 0; i < OUTLIVE_BLOCKS; i++) {
		if (o.blocks[i].p != NULL) {
			blk_free(S_OUTLIVE, &o.blocks[i], i & 1, "block of a gone thread");
			++*blocks;
		}
	}
	if (o.keymem.p != NULL) {
		(void)blk_check(S_OUTLIVE, &o.keymem, "key allocation of a gone thread");
		if (tars_protect_none(o.keymem.p) != 0) {
			fail(S_OUTLIVE, "tars_protect_none: %s", strerror(errno));
		}
		tars_free(o.keymem.p);   /* frees a closed key allocation */
		++*blocks;
	}
	if (o.buf != NULL) {
		(void)check_bytes(S_OUTLIVE, tars_buf_data(o.buf), tars_buf_len(o.buf),
		    o.buf_tag, 0, "tars_buf of a gone thread");
		tars_buf_free(o.buf);
		++*blocks;
	}
	if (o.key != NULL && o.key2 != NULL && tars_key_equal(o.key, o.key2) != 1) {
		fail(S_OUTLIVE, "tars_key and its clone differ");
	}
	tars_key_free(o.key);
	tars_key_free(o.key2);
	*blocks += 2;
}

/* ------------------------------------------------------------------------
 * Section fork: fork while the other threads allocate
 * --------------------------------------------------------------------- */

/* In the child: a watchdog of its own (SIG_DFL, so a hung child dies even
 * if nothing in it can run a handler), then use the allocator. */
static void child_main(struct blk *probe, long forkopt, uint64_t s)
    __attribute__((noreturn));
static void
child_main(struct blk *probe, long forkopt, uint64_t s)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_DFL;
	if (sigemptyset(&sa.sa_mask) != 0 || sigaction(SIGALRM, &sa, NULL) != 0) {
		_exit(10);
	}
	(void)alarm(CHILD_ALARM);   /* cannot fail */
	unsigned before = atomic_load(&sect_fails[S_FORK]);
	/* With fork=1 the inherited block reads as zeros (or intact, if the
	 * kernel refused MADV_WIPEONFORK); fork=2 leaves it unmapped. */
	if (forkopt != 2 && memcmp(probe->p, g_zero, probe->size) != 0) {
		(void)blk_check(S_FORK, probe, "inherited block");
	}
	tars_free(probe->p);
	struct blk live[8];
	memset(live, 0, sizeof(live));
	for (int i = 0; i < 64; i++) {
		struct blk *b = &live[i % 8];
		if (b->p != NULL) {
			blk_free(S_FORK, b, i & 1, "child block");
		}
		(void)blk_alloc(S_FORK, b, &s);
	}
	for (int i = 0; i < 8; i++) {
		if (live[i].p != NULL) {
			blk_free(S_FORK, &live[i], i & 1, "child block");
		}
	}
	struct blk km = {.size = 100, .tag = 3, .key = 1, .prot = PR_READ};
	km.p = tars_malloc_key(km.size);
	if (km.p == NULL) {
		fail(S_FORK, "child tars_malloc_key: %s", strerror(errno));
	} else {
		blk_fill(&km);
		if (tars_protect_none(km.p) != 0 || tars_protect_read(km.p) != 0) {
			fail(S_FORK, "child tars_protect_*: %s", strerror(errno));
		}
		(void)blk_check(S_FORK, &km, "child key allocation");
		tars_free(km.p);
	}
	struct tars_stats st;
	tars_stats_get(&st);
	if (st.page_size != g_ps) {
		fail(S_FORK, "child tars_stats_get: page_size %zu", st.page_size);
	}
	_exit(atomic_load(&sect_fails[S_FORK]) != before ? 1 : 0);
}

static void
fork_round(uint64_t *s, long forkopt, unsigned long *forks)
{
	/* A chunk or a large block (never a key: it must stay readable). */
	struct blk probe = {.size = *forks % 2 ? 100 : 2 * g_ps + 5,
	    .tag = (uint32_t)rnd(s), .prot = PR_WRITE};
	probe.p = tars_malloc(probe.size);
	if (probe.p == NULL) {
		fail(S_FORK, "tars_malloc(%zu): %s", probe.size, strerror(errno));
		return;
	}
	blk_fill(&probe);
	uint64_t cs = rnd(s) | 1;
	++*forks;
	pid_t pid = fork();
	if (pid < 0) {
		fail(S_FORK, "fork: %s", strerror(errno));
	} else if (pid == 0) {
		child_main(&probe, forkopt, cs);
	} else {
		int st;
		while (waitpid(pid, &st, 0) < 0) {
			if (errno != EINTR) {
				die("waitpid", errno);
			}
		}
		if (WIFSIGNALED(st) && WTERMSIG(st) == SIGALRM) {
			fail(S_FORK, "child %d hung (deadlock?): killed by its %d s alarm",
			    (int)pid, CHILD_ALARM);
		} else if (WIFSIGNALED(st)) {
			fail(S_FORK, "child %d killed by signal %d (%s)", (int)pid,
			    WTERMSIG(st), strsignal(WTERMSIG(st)));
		} else if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
			fail(S_FORK, "child %d exited with status %d", (int)pid,
			    WEXITSTATUS(st));
		}
	}
	blk_free(S_FORK, &probe, 0, "probe after fork");
}

/* ------------------------------------------------------------------------
 * main
 * --------------------------------------------------------------------- */

/*
 * Watchdog for the whole run: a thread in a timed wait, not a SIGALRM
 * handler, because ThreadSanitizer defers a handler until the thread it
 * interrupts reaches an interceptor - never, for a thread stuck in a
 * deadlock.
 */
static struct {
	pthread_mutex_t lock;
	pthread_cond_t cond;        /* on CLOCK_MONOTONIC */
	int done;
	struct timespec limit;
	pthread_t tid;
} wd = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void *
watchdog_main(void *arg)
{
	static const char msg[] = "mt_stress: watchdog: no progress, giving up "
	    "(deadlock?)\nmt_stress: 0 passed, 1 failed\n";
	(void)arg;
	lock(&wd.lock);
	while (!wd.done) {
		int rc = pthread_cond_timedwait(&wd.cond, &wd.lock, &wd.limit);
		if (rc == ETIMEDOUT && !wd.done) {
			/* Nothing to do about a failed write: exiting is the
			 * report. */
			(void)!write(STDERR_FILENO, msg, sizeof(msg) - 1);
			_exit(3);
		}
		if (rc != 0 && rc != ETIMEDOUT) {
			die("pthread_cond_timedwait", rc);
		}
	}
	unlock(&wd.lock);
	return NULL;
}

static void
watchdog_start(uint64_t limit_ns)
{
	pthread_condattr_t ca;
	int rc = pthread_condattr_init(&ca);
	if (rc == 0) {
		rc = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	}
	if (rc == 0) {
		rc = pthread_cond_init(&wd.cond, &ca);
	}
	if (rc != 0) {
		die("pthread_cond_init", rc);
	}
	rc = pthread_condattr_destroy(&ca);
	if (rc != 0) {
		die("pthread_condattr_destroy", rc);
	}
	wd.limit.tv_sec = (time_t)(limit_ns / 1000000000u);
	wd.limit.tv_nsec = (long)(limit_ns % 1000000000u);
	start(&wd.tid, watchdog_main, NULL);
}

static void
watchdog_stop(void)
{
	lock(&wd.lock);
	wd.done = 1;
	int rc = pthread_cond_signal(&wd.cond);
	unlock(&wd.lock);
	if (rc != 0) {
		die("pthread_cond_signal", rc);
	}
	join(wd.tid);
	rc = pthread_cond_destroy(&wd.cond);
	if (rc != 0) {
		die("pthread_cond_destroy", rc);
	}
}

static void
usage(const char *argv0)
{
	fprintf(stderr, "usage: %s [-t SECONDS] [-n OPS] [-s SEED]\n", argv0);
	exit(2);
}

int
main(int argc, char **argv)
{
	double secs = 5.0;
	unsigned long max_ops = 0;
	uint64_t seed = 0;
	int opt;
	char *end;
	while ((opt = getopt(argc, argv, "t:n:s:")) != -1) {
		switch (opt) {
		case 't':
			secs = strtod(optarg, &end);
			if (*end != '\0' || !(secs > 0 && secs < 86400)) {
				usage(argv[0]);
			}
			break;
		case 'n':
			errno = 0;
			max_ops = strtoul(optarg, &end, 0);
			if (errno != 0 || *end != '\0') {
				usage(argv[0]);
			}
			break;
		case 's':
			errno = 0;
			seed = strtoull(optarg, &end, 0);
			if (errno != 0 || *end != '\0') {
				usage(argv[0]);
			}
			break;
		default:
			usage(argv[0]);
		}
	}
	if (optind != argc) {
		usage(argv[0]);
	}
	uint64_t t0 = now_ns();
	if (seed == 0) {
		seed = t0 ^ ((uint64_t)getpid() << 32);
	}
	/* Line by line, in order with the FAIL lines on stderr. */
	if (setvbuf(stdout, NULL, _IOLBF, 0) != 0) {
		die("setvbuf", errno);
	}
	if (max_ops) {
		printf("mt_stress: %.1f s, at most %lu ops per alloc thread, seed %#"
		    PRIx64 "\n", secs, max_ops, seed);
	} else {
		printf("mt_stress: %.1f s, seed %#" PRIx64 "\n", secs, seed);
	}

	/* Generous: the sanitizers are slow. */
	watchdog_start(t0 + (uint64_t)((secs * 4 + 60) * 1e9));

	long ps = sysconf(_SC_PAGESIZE);
	if (ps <= 0) {
		die("sysconf(_SC_PAGESIZE)", errno);
	}
	g_ps = (size_t)ps;
	g_tmpl = malloc(3 * g_ps + 256);
	g_zero = calloc(3, g_ps);
	if (g_tmpl == NULL || g_zero == NULL) {
		die("malloc", errno);
	}
	uint64_t ts = seed | 1;
	for (size_t i = 0; i < 3 * g_ps + 256; i++) {
		g_tmpl[i] = (unsigned char)(1 + rnd_below(&ts, 255));   /* never 0 */
	}
	g_deadline = t0 + (uint64_t)(secs * 1e9);

	/* init: before anything else calls tars. */
	run_init();
	struct tars_stats base;
	tars_stats_get(&base);
	g_heaps_min = base.heaps;
	long forkopt = tars_option_get("fork");

	struct worker w[NWORKERS];
	struct statw sw[NSTATS];
	struct reader rd[NREADERS];
	struct keyctx *k = calloc(1, sizeof(*k));
	if (k == NULL) {
		die("calloc", errno);
	}
	k->len = g_ps + 200;
	k->key = key_make(k->len);
	int rc = pthread_barrier_init(&k->bar, NULL, NREADERS + 1);
	if (rc != 0) {
		die("pthread_barrier_init", rc);
	}
	uint64_t s = seed;
	pthread_t writer;
	for (int i = 0; i < NWORKERS; i++) {
		memset(&w[i], 0, sizeof(w[i]));
		w[i].id = i;
		w[i].seed = rnd(&s) | 1;
		w[i].max_ops = max_ops;
		start(&w[i].tid, worker_main, &w[i]);
	}
	for (int i = 0; i < NSTATS; i++) {
		memset(&sw[i], 0, sizeof(sw[i]));
		start(&sw[i].tid, stats_main, &sw[i]);
	}
	for (int i = 0; i < NREADERS; i++) {
		rd[i] = (struct reader){.k = k};
		start(&rd[i].tid, reader_main, &rd[i]);
	}
	start(&writer, writer_main, k);

	/* main: short-lived threads and forks until time is up (or every
	 * alloc thread has done its operations), at least once each. */
	unsigned long rounds = 0, outlived = 0, forks = 0;
	do {
		outlive_round(&s, &outlived);
		if (forks < MAX_FORKS && rounds % 2 == 0) {
			fork_round(&s, forkopt, &forks);
		}
		rounds++;
	} while (!time_up() && atomic_load(&workers_done) < NWORKERS);
	atomic_store(&g_stop, 1);

	for (int i = 0; i < NWORKERS; i++) {
		join(w[i].tid);
	}
	for (int i = 0; i < NSTATS; i++) {
		join(sw[i].tid);
	}
	for (int i = 0; i < NREADERS; i++) {
		join(rd[i].tid);
	}
	join(writer);

	/* Blocks still in the queue: main is yet another thread to free them. */
	struct xitem x;
	unsigned long drained = 0;
	while (xq_pop(&x, -1)) {
		blk_free(S_ALLOC, &x.b, 0, "queued block");
		drained++;
	}

	const unsigned char *d = tars_key_read_begin(k->key);
	if (d == NULL) {
		fail(S_KEY, "final read_begin: %s", strerror(errno));
	} else {
		uint64_t v = key_version(d, k->len, "final key");
		if (v != UINT64_MAX && v != atomic_load(&k->published)) {
			fail(S_KEY, "final version %" PRIu64 ", published %" PRIu64, v,
			    (uint64_t)atomic_load(&k->published));
		}
		tars_key_read_end(k->key);
	}
	tars_key_free(k->key);
	rc = pthread_barrier_destroy(&k->bar);
	if (rc != 0) {
		die("pthread_barrier_destroy", rc);
	}

	watchdog_stop();
	struct tars_stats fin;
	tars_stats_get(&fin);
	if (fin.live_count != base.live_count || fin.large_count != base.large_count ||
	    fin.key_count != base.key_count) {
		fail(S_FINAL, "allocations left: live %zu (was %zu), large %zu (was %zu), "
		    "keys %zu (was %zu)", fin.live_count, base.live_count,
		    fin.large_count, base.large_count, fin.key_count, base.key_count);
	}

	unsigned long ops = 0, allocs = 0, frees = 0, reallocs = 0, sent = 0, received = 0;
	for (int i = 0; i < NWORKERS; i++) {
		ops += w[i].ops;
		allocs += w[i].allocs;
		frees += w[i].frees;
		reallocs += w[i].reallocs;
		sent += w[i].sent;
		received += w[i].received;
	}
	unsigned long snaps = 0;
	for (int i = 0; i < NSTATS; i++) {
		snaps += sw[i].snaps;
	}
	char info[NSECT][200];
	snprintf(info[S_INIT], sizeof(info[0]), "4 threads' first calls");
	snprintf(info[S_ALLOC], sizeof(info[0]), "%d threads, %lu ops: %lu allocs, "
	    "%lu reallocs, %lu frees, %lu queued (%lu freed by another thread, "
	    "%lu by main)", NWORKERS, ops, allocs, reallocs, frees + drained, sent,
	    received, drained);
	snprintf(info[S_OUTLIVE], sizeof(info[0]), "%lu threads, %lu of their "
	    "allocations freed by main", rounds, outlived);
	snprintf(info[S_KEY], sizeof(info[0]), "%lu rounds, %d readers: %lu read "
	    "scopes (%lu EBUSY), %lu writes (%lu EBUSY), %lu clones",
	    (unsigned long)atomic_load(&k->rounds), NREADERS,
	    (unsigned long)atomic_load(&k->reads),
	    (unsigned long)atomic_load(&k->busy_reads),
	    (unsigned long)atomic_load(&k->writes),
	    (unsigned long)atomic_load(&k->busy_writes),
	    (unsigned long)atomic_load(&k->clones));
	snprintf(info[S_STATS], sizeof(info[0]), "%d threads, %lu snapshots",
	    NSTATS, snaps);
	snprintf(info[S_FORK], sizeof(info[0]), "%lu children (option fork=%ld)",
	    forks, forkopt);
	snprintf(info[S_FINAL], sizeof(info[0]), "live allocations back to %zu",
	    base.live_count);
	free(k);

	int passed = 0, failed = 0;
	for (int i = 0; i < NSECT; i++) {
		unsigned f = atomic_load(&sect_fails[i]);
		printf("mt_stress: %-8s %s (%s)\n", sect_name[i], f ? "FAILED" : "ok",
		    info[i]);
		if (f) {
			failed++;
		} else {
			passed++;
		}
	}
	printf("mt_stress: ran %.1f s\n", (double)(now_ns() - t0) / 1e9);
	printf("mt_stress: %d passed, %d failed\n", passed, failed);
	free(g_tmpl);
	free(g_zero);
	if (fflush(stdout) != 0) {
		die("stdout", errno);
	}
	return failed ? 1 : 0;
}
