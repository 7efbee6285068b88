/*
 * Stress (suite "stress", also run under TSan by `make test-tsan`) and
 * scale (suite "scale").
 *
 * The stress tests run random operations - malloc, calloc, realloc,
 * aligned_alloc, free, freezero - on sizes from 0 to three pages.  Every
 * live block holds a pattern derived from its address and an id, checked
 * before the block is freed or moved, so a block handed out twice, an
 * overlap, a lost realloc copy or a stray wipe shows up as a mismatch.
 * The random streams have fixed seeds; only the thread interleaving
 * varies, and it cannot change the outcome.
 *
 * Under a sanitizer (about ten times slower) the operation counts are
 * divided by SAN_DIV so that `make test-tsan` stays in minutes.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "tars.h"
#include "util.h"

#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
#define SAN_DIV 10
#else
#define SAN_DIV 1
#endif

TestSuite(scale, .init = no_env);

/* xorshift64*: a fixed, seedable stream. */
static uint64_t
rnd(uint64_t *s)
{
	uint64_t x = *s;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545f4914f6cdd1dull;
}

/* ---------------------------------------------------------------- pattern */

static uint64_t
seed_of(const void *p, uint64_t id)
{
	uint64_t z = (uint64_t)(uintptr_t)p ^ (id * 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	return z ^ (z >> 31);
}

static void
pattern_fill(unsigned char *p, size_t len, uint64_t id)
{
	uint64_t w = seed_of(p, id);
	size_t i = 0;
	for (; i + 8 <= len; i += 8) {
		memcpy(p + i, &w, 8);
		w += 0x9e3779b97f4a7c15ull;
	}
	for (; i < len; i++) {
		p[i] = (unsigned char)(w >> (8 * (i & 7)));
	}
}

/* The first `len` bytes hold the pattern that was written at `at` (a
 * realloc moves the bytes, so the seed comes from the old address). */
static int
pattern_check(const unsigned char *p, size_t len, const void *at, uint64_t id)
{
	uint64_t w = seed_of(at, id);
	size_t i = 0;
	for (; i + 8 <= len; i += 8) {
		uint64_t v;
		memcpy(&v, p + i, 8);
		if (v != w) {
			return 0;
		}
		w += 0x9e3779b97f4a7c15ull;
	}
	for (; i < len; i++) {
		if (p[i] != (unsigned char)(w >> (8 * (i & 7)))) {
			return 0;
		}
	}
	return 1;
}

/* ---------------------------------------------------------------- blocks */

struct block {
	unsigned char *p;
	size_t size;
	uint64_t id;
};

/* Sizes 0 .. 3 pages, weighted towards the chunk sizes that matter. */
static size_t
random_size(uint64_t *s)
{
	size_t ps = page_size();
	uint64_t r = rnd(s);
	unsigned k = (unsigned)(r % 100);
	r >>= 8;
	if (k < 3) {
		return 0;
	}
	if (k < 60) {
		return 1 + (size_t)(r % 256);
	}
	if (k < 85) {
		return 1 + (size_t)(r % (ps / 2));
	}
	return ps / 2 + 1 + (size_t)(r % (3 * ps - ps / 2));
}

/* Allocate a fresh block into b; returns an error string or NULL. */
static const char *
block_new(struct block *b, uint64_t *s, uint64_t id)
{
	size_t size = random_size(s);
	unsigned how = (unsigned)(rnd(s) % 10);
	unsigned char *p;
	if (how < 5) {
		p = tars_malloc(size);
		if (p != NULL && !all_bytes(p, size, 0xdf)) {
			return "fresh malloc block not junk-filled";
		}
	} else if (how < 8) {
		p = tars_calloc(1, size);
		if (p != NULL && !all_bytes(p, size, 0)) {
			return "calloc block not zeroed";
		}
	} else {
		size_t al = (size_t)1 << (rnd(s) % 13);
		if (al > page_size()) {
			al = page_size();
		}
		p = tars_aligned_alloc(al, size);
		if (p != NULL && (uintptr_t)p % al != 0) {
			return "aligned_alloc block misaligned";
		}
	}
	if (p == NULL) {
		return "allocation failed";
	}
	if (tars_usable_size(p) < size) {
		return "usable size below the request";
	}
	pattern_fill(p, size, id);
	b->p = p;
	b->size = size;
	b->id = id;
	return NULL;
}

/* Check b, then free it or move it (realloc); returns an error or NULL. */
static const char *
block_retire(struct block *b, uint64_t *s, uint64_t newid)
{
	if (!pattern_check(b->p, b->size, b->p, b->id)) {
		return "block contents changed while live";
	}
	unsigned how = (unsigned)(rnd(s) % 10);
	if (how < 4) {
		tars_free(b->p);
	} else if (how < 6) {
		tars_freezero(b->p, b->size);
	} else {
		size_t size = random_size(s);
		unsigned char *old = b->p;
		unsigned char *n = tars_realloc(old, size);
		if (n == NULL) {
			return "realloc failed";
		}
		size_t keep = b->size < size ? b->size : size;
		int kept = pattern_check(n, keep, old, b->id);
		/* The block is n from here on, whatever it holds. */
		pattern_fill(n, size, newid);
		b->p = n;
		b->size = size;
		b->id = newid;
		if (!kept) {
			return "realloc lost the contents";
		}
		if (tars_usable_size(n) < size) {
			return "usable size below the realloc request";
		}
		return NULL;
	}
	b->p = NULL;
	return NULL;
}

/* ---------------------------------------------------------------- single */

Test(stress, one_million_random_operations, .init = no_env, .timeout = 120)
{
	enum { NSLOT = 4096 };
	const long ops = 1000000 / SAN_DIV;
	static struct block slot[NSLOT];
	uint64_t s = 0x243f6a8885a308d3ull;
	uint64_t id = 1;
	for (long op = 0; op < ops; op++) {
		struct block *b = &slot[rnd(&s) % NSLOT];
		const char *err = b->p == NULL ? block_new(b, &s, id++)
		    : block_retire(b, &s, id++);
		cr_assert_null(err, "operation %ld: %s (%s)", op, err, strerror(errno));
	}
	struct tars_stats st;
	tars_stats_get(&st);
	size_t live = 0;
	for (size_t i = 0; i < NSLOT; i++) {
		live += slot[i].p != NULL;
	}
	cr_assert_eq(st.live_count, live);
	for (size_t i = 0; i < NSLOT; i++) {
		if (slot[i].p != NULL) {
			cr_assert(pattern_check(slot[i].p, slot[i].size, slot[i].p, slot[i].id));
			tars_freezero(slot[i].p, slot[i].size);
		}
	}
	tars_stats_get(&st);
	cr_assert_eq(st.live_count, 0);
	cr_assert_eq(st.live_requested, 0);
	cr_assert_eq(st.live_reserved, 0);
	cr_assert_eq(st.mallocs, st.frees);
	cr_assert_geq(st.mallocs, (uint64_t)ops / 2);
}

/* ---------------------------------------------------------------- threads */

#define NTHREADS 4
#define XCAP 256

/* Blocks in transit between threads. */
struct exchange {
	pthread_mutex_t lock;
	struct block slot[XCAP];
	size_t count;
	uint64_t given, taken;
};

struct worker {
	struct exchange *x;
	unsigned index;
	long ops;
	const char *err;
	long err_op;
};

static void *
worker_run(void *arg)
{
	struct worker *w = arg;
	enum { NSLOT = 512 };
	struct block *slot = calloc(NSLOT, sizeof(*slot));
	if (slot == NULL) {
		w->err = "calloc";
		return NULL;
	}
	uint64_t s = 0x9e3779b97f4a7c15ull * (w->index + 1);
	uint64_t id = ((uint64_t)w->index << 48) + 1;
	for (long op = 0; op < w->ops && w->err == NULL; op++) {
		struct block *b = &slot[rnd(&s) % NSLOT];
		unsigned what = (unsigned)(rnd(&s) % 100);
		if (what < 12 && b->p != NULL) {
			/* Hand the block to whoever takes it next. */
			pthread_mutex_lock(&w->x->lock);
			if (w->x->count < XCAP) {
				w->x->slot[w->x->count++] = *b;
				w->x->given++;
				b->p = NULL;
			}
			pthread_mutex_unlock(&w->x->lock);
		} else if (what < 24) {
			/* Take a block another thread allocated: check it, then
			 * free it here or keep it (and maybe realloc it). */
			struct block got = {0};
			pthread_mutex_lock(&w->x->lock);
			if (w->x->count > 0) {
				size_t i = rnd(&s) % w->x->count;
				got = w->x->slot[i];
				w->x->slot[i] = w->x->slot[--w->x->count];
				w->x->taken++;
			}
			pthread_mutex_unlock(&w->x->lock);
			if (got.p == NULL) {
				continue;
			}
			if (b->p == NULL) {
				*b = got;
				if (rnd(&s) % 2) {
					w->err = block_retire(b, &s, id++);
				}
			} else {
				struct block tmp = got;
				w->err = block_retire(&tmp, &s, id++);
				if (w->err == NULL && tmp.p != NULL) {
					/* Moved by realloc: free it here. */
					if (!pattern_check(tmp.p, tmp.size, tmp.p, tmp.id)) {
						w->err = "realloc'ed block changed";
					}
					tars_freezero(tmp.p, tmp.size);
				}
			}
		} else if (b->p == NULL) {
			w->err = block_new(b, &s, id++);
		} else {
			w->err = block_retire(b, &s, id++);
		}
		if (w->err != NULL) {
			w->err_op = op;
		}
	}
	for (size_t i = 0; i < NSLOT; i++) {
		if (slot[i].p == NULL) {
			continue;
		}
		if (w->err == NULL && !pattern_check(slot[i].p, slot[i].size, slot[i].p,
		    slot[i].id)) {
			w->err = "block changed at the end";
		}
		tars_free(slot[i].p);
	}
	free(slot);
	return NULL;
}

Test(stress, threads_with_cross_thread_frees, .init = no_env, .timeout = 120)
{
	static struct exchange x;
	cr_assert_eq(pthread_mutex_init(&x.lock, NULL), 0);
	struct worker w[NTHREADS];
	pthread_t t[NTHREADS];
	for (unsigned i = 0; i < NTHREADS; i++) {
		w[i] = (struct worker){.x = &x, .index = i,
		    .ops = 1000000 / NTHREADS / SAN_DIV};
		cr_assert_eq(pthread_create(&t[i], NULL, worker_run, &w[i]), 0);
	}
	for (unsigned i = 0; i < NTHREADS; i++) {
		cr_assert_eq(pthread_join(t[i], NULL), 0);
	}
	for (unsigned i = 0; i < NTHREADS; i++) {
		cr_assert_null(w[i].err, "thread %u, operation %ld: %s", i, w[i].err_op,
		    w[i].err);
	}
	/* What is still in transit is freed by the main thread. */
	for (size_t i = 0; i < x.count; i++) {
		cr_assert(pattern_check(x.slot[i].p, x.slot[i].size, x.slot[i].p,
		    x.slot[i].id));
		tars_freezero(x.slot[i].p, x.slot[i].size);
	}
	cr_assert_gt(x.taken, 1000, "only %llu blocks changed threads",
	    (unsigned long long)x.taken);
	struct tars_stats st;
	tars_stats_get(&st);
	cr_assert_geq(st.heaps, 2);
	cr_assert_leq(st.heaps, NTHREADS + 1);
	cr_assert_eq(st.live_count, 0);
	cr_assert_eq(st.live_requested, 0);
	cr_assert_eq(st.mallocs, st.frees);
	pthread_mutex_destroy(&x.lock);
}

/* Threads that only allocate and free their own small blocks: the
 * uncontended fast path, each in its own heap, four times more threads
 * than cores. */
static void *
small_churn(void *arg)
{
	long n = (long)(intptr_t)arg;
	void *keep[32] = {0};
	for (long i = 0; i < n; i++) {
		unsigned k = (unsigned)(i % 32);
		if (keep[k] != NULL) {
			if (((unsigned char *)keep[k])[0] != (unsigned char)k) {
				return (void *)1;
			}
			tars_free(keep[k]);
		}
		keep[k] = tars_malloc(16 + (size_t)(i % 200));
		if (keep[k] == NULL) {
			return (void *)2;
		}
		((unsigned char *)keep[k])[0] = (unsigned char)k;
	}
	for (unsigned k = 0; k < 32; k++) {
		tars_free(keep[k]);
	}
	return NULL;
}

Test(stress, eight_threads_on_two_cores, .init = no_env, .timeout = 120)
{
	enum { T = 8 };
	pthread_t t[T];
	for (int i = 0; i < T; i++) {
		cr_assert_eq(pthread_create(&t[i], NULL, small_churn,
		    (void *)(intptr_t)(200000 / SAN_DIV)), 0);
	}
	for (int i = 0; i < T; i++) {
		void *rv;
		cr_assert_eq(pthread_join(t[i], &rv), 0);
		cr_assert_null(rv, "thread %d failed (%p)", i, rv);
	}
	struct tars_stats st;
	tars_stats_get(&st);
	cr_assert_eq(st.live_count, 0);
}

/* ---------------------------------------------------------------- scale */

static int
cmp_ptr(const void *a, const void *b)
{
	uintptr_t x = *(const uintptr_t *)a, y = *(const uintptr_t *)b;
	return x < y ? -1 : x > y;
}

Test(scale, one_million_live_64_byte_blocks, .timeout = 120)
{
	const size_t n = 1000000 / SAN_DIV;
	size_t max_maps = 65530;
	FILE *f = fopen("/proc/sys/vm/max_map_count", "r");
	if (f != NULL) {
		if (fscanf(f, "%zu", &max_maps) != 1) {
			max_maps = 65530;
		}
		fclose(f);
	}
	uintptr_t *p = malloc(n * sizeof(*p));
	uintptr_t *sorted = malloc(n * sizeof(*sorted));
	cr_assert(p && sorted);
	size_t maps_before = count_vmas();
	cr_assert_lt(maps_before, max_maps / 4);
	for (size_t i = 0; i < n; i++) {
		unsigned char *b = tars_malloc(64);
		cr_assert_not_null(b, "block %zu: %s (maps: %zu)", i, strerror(errno),
		    count_vmas());
		/* Each block remembers its own index, in both halves. */
		uint64_t tag = (uint64_t)i * 0x9e3779b97f4a7c15ull;
		memset(b + 8, (int)(i & 0xff), 48);
		memcpy(b, &tag, 8);
		memcpy(b + 56, &tag, 8);
		p[i] = (uintptr_t)b;
	}
	size_t maps = count_vmas();
	cr_assert_lt(maps, max_maps / 4, "%zu mappings for %zu live blocks (before: %zu)",
	    maps, n, maps_before);
	struct tars_stats st;
	tars_stats_get(&st);
	cr_assert_eq(st.live_count, n);
	cr_assert_eq(st.live_requested, 64 * n);
	cr_assert_geq(st.chunk_pages, n * 64 / page_size());
	/* All distinct and non-overlapping: sorted, neighbours 64 bytes apart
	 * at least, and every block still holds its own tag. */
	memcpy(sorted, p, n * sizeof(*p));
	qsort(sorted, n, sizeof(*sorted), cmp_ptr);
	for (size_t i = 1; i < n; i++) {
		cr_assert_geq(sorted[i] - sorted[i - 1], 64, "blocks %p and %p overlap",
		    (void *)sorted[i - 1], (void *)sorted[i]);
	}
	for (size_t i = 0; i < n; i++) {
		const unsigned char *b = (const unsigned char *)p[i];
		uint64_t tag = (uint64_t)i * 0x9e3779b97f4a7c15ull, t1, t2;
		memcpy(&t1, b, 8);
		memcpy(&t2, b + 56, 8);
		cr_assert(t1 == tag && t2 == tag && all_bytes(b + 8, 48, (unsigned char)i),
		    "block %zu at %p overwritten", i, (const void *)b);
	}
	for (size_t i = 0; i < n; i++) {
		tars_freezero((void *)p[i], 64);
	}
	tars_stats_get(&st);
	cr_assert_eq(st.live_count, 0);
	cr_assert_eq(st.live_requested, 0);
	/* Emptied, the class keeps at most `spare` empty pages. */
	cr_assert_leq(st.chunk_pages, (size_t)tars_option_get("spare"));
	cr_assert_eq(st.empty_pages, st.chunk_pages);
	cr_assert_lt(count_vmas(), max_maps / 4);
	free(p);
	free(sorted);
}

/* ---------------------------------------------------------------- options */

struct toggler {
	atomic_int stop;
	const char *err;
};

/* Switches every run-time option back and forth while workers allocate.
 * junk stays >= 1 (the workers check the 0xdf fill of fresh blocks). */
static void *
toggle_options(void *arg)
{
	struct toggler *t = arg;
	static const struct {
		const char *name;
		long a, b;
	} sw[] = {
		{"junk", 1, 2}, {"canary", 0, 1}, {"classes", 0, 1}, {"random", 0, 1},
		{"cache", 0, 64}, {"mlock", 0, 1}, {"dump", 0, 1}, {"fork", 0, 1},
	};
	for (unsigned i = 0; !atomic_load(&t->stop); i++) {
		unsigned k = i % (sizeof(sw) / sizeof(sw[0]));
		long v = (i / (sizeof(sw) / sizeof(sw[0]))) % 2 ? sw[k].a : sw[k].b;
		if (tars_option_set(sw[k].name, v) != 0) {
			t->err = sw[k].name;
			break;
		}
	}
	return NULL;
}

Test(stress, options_switched_while_threads_allocate, .init = no_env, .timeout = 120)
{
	static struct exchange x;
	cr_assert_eq(pthread_mutex_init(&x.lock, NULL), 0);
	struct toggler tg = {.err = NULL};
	atomic_init(&tg.stop, 0);
	pthread_t tt;
	cr_assert_eq(pthread_create(&tt, NULL, toggle_options, &tg), 0);
	enum { W = 3 };
	struct worker w[W];
	pthread_t t[W];
	for (unsigned i = 0; i < W; i++) {
		w[i] = (struct worker){.x = &x, .index = i, .ops = 100000 / SAN_DIV};
		cr_assert_eq(pthread_create(&t[i], NULL, worker_run, &w[i]), 0);
	}
	for (unsigned i = 0; i < W; i++) {
		cr_assert_eq(pthread_join(t[i], NULL), 0);
	}
	atomic_store(&tg.stop, 1);
	cr_assert_eq(pthread_join(tt, NULL), 0);
	cr_assert_null(tg.err, "tars_option_set(\"%s\") failed", tg.err);
	for (unsigned i = 0; i < W; i++) {
		cr_assert_null(w[i].err, "thread %u, operation %ld: %s", i, w[i].err_op,
		    w[i].err);
	}
	for (size_t i = 0; i < x.count; i++) {
		tars_freezero(x.slot[i].p, x.slot[i].size);
	}
	struct tars_stats st;
	tars_stats_get(&st);
	cr_assert_eq(st.live_count, 0);
	pthread_mutex_destroy(&x.lock);
}

/* ---------------------------------------------------------------- large */

/*
 * Large blocks of 2049 bytes to 90 KB (multi-page slots and mappings from
 * the cache), allocated, reallocated, aligned, calloc'ed and freed at
 * random while the options that change what a reused slot or mapping must
 * be (canary, junk, mlock, dump, fork, quarantine, large_cache) switch:
 * every block keeps its contents, no two overlap (a canary between them
 * would say so at free), and everything is freed in the end.  (A cached
 * mapping once handed its last block's canary flag to the next block.)
 */
Test(stress, large_blocks_while_options_switch, .init = no_env, .timeout = 120)
{
	enum { N = 64 };
	struct { unsigned char *p; size_t n; unsigned char v; } s[N] = {{0}};
	uint32_t x = 7;
	static const char *const opt[] = {"mlock", "dump", "fork", "junk", "canary",
	    "quarantine", "large_cache"};
	for (long o = 0; o < 30000 / SAN_DIV; o++) {
		x ^= x << 13, x ^= x >> 17, x ^= x << 5;
		uint32_t r = x;
		int i = (int)(r % N);
		if ((r >> 8) % 50 == 0) {
			int k = (int)((r >> 16) % 7);
			long v = k == 5 ? (long)((r >> 20) % 80) : k == 6 ? (long)((r >> 20) % 600)
			    : k == 3 ? 1 + (long)((r >> 20) % 2) : (long)((r >> 20) % 2);
			cr_assert_eq(tars_option_set(opt[k], v), 0, "%s=%ld", opt[k], v);
			continue;
		}
		x ^= x << 13, x ^= x >> 17, x ^= x << 5;
		size_t n = 2049 + x % 90000;
		if (s[i].p != NULL) {
			cr_assert(all_bytes(s[i].p, s[i].n, s[i].v), "block %d lost its bytes", i);
			if (r & 0x10000) {
				tars_free(s[i].p);
				s[i].p = NULL;
				continue;
			}
			unsigned char *q = tars_realloc(s[i].p, n);
			cr_assert_not_null(q);
			if (n > s[i].n) {
				memset(q + s[i].n, s[i].v, n - s[i].n);
			}
			s[i].p = q;
			s[i].n = n;
			continue;
		}
		unsigned char *p = (r & 0x20000) ? tars_aligned_alloc((size_t)64 << ((r >> 18) % 7), n)
		    : (r & 0x40000) ? tars_calloc(1, n) : tars_malloc(n);
		cr_assert_not_null(p, "%zu bytes: %s", n, strerror(errno));
		if (r & 0x40000 && !(r & 0x20000)) {
			cr_assert(all_bytes(p, n, 0), "calloc(%zu) not zero", n);
		}
		s[i].p = p;
		s[i].n = n;
		s[i].v = (unsigned char)(r >> 24);
		memset(p, s[i].v, n);
	}
	for (int i = 0; i < N; i++) {
		if (s[i].p != NULL) {
			cr_assert(all_bytes(s[i].p, s[i].n, s[i].v));
			tars_free(s[i].p);
		}
	}
	struct tars_stats st;
	tars_stats_get(&st);
	cr_assert_eq(st.live_count, 0);
	cr_assert_eq(st.large_count, 0);
}
