/*
 * tars_internal.h - declarations shared by the library's source files.
 * Nothing here is exported: the library is built with -fvisibility=hidden
 * and only the functions marked TARS_API in tars.h are visible.
 */
#ifndef TARS_INTERNAL_H
#define TARS_INTERNAL_H

#include <stdatomic.h>
#include <stdint.h>
#include <stddef.h>
#include <sys/single_threaded.h>

#include "tars.h"

/* Everything declared below is internal to the library: hidden, so that
 * position-independent code reaches it directly rather than via the GOT. */
#pragma GCC visibility push(hidden)

#define TARS_NORETURN __attribute__((noreturn))
#define TARS_PRINTF(a, b) __attribute__((format(printf, a, b)))
#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

#define TARS_ALIGN 16            /* minimum alignment of every block */
#define TARS_CHUNK_MAX 2048      /* largest chunk class (<= page/2) */
#define TARS_ALLOC_JUNK 0xd0     /* fill of fresh allocations */
#define TARS_FREE_JUNK 0xdf      /* fill of freed chunk slots */
#define TARS_MAX_POOLS 64
#define TARS_CACHE_MAX 4096      /* upper bound of option `cache` */
#define TARS_SPARE_MAX 1024      /* upper bound of option `spare` */
#define TARS_SPARE_SHIFT 1       /* keep empty at most 1 + listed/2 pages */
#define TARS_NLISTS 4            /* random lists of free-slot pages per class */
#define TARS_RUN_PAGES 16        /* chunk pages mapped per mmap */

/* ------------------------------------------------------------------ */
/* os.c: system call wrappers (counted), fatal errors and warnings     */

TARS_NORETURN TARS_PRINTF(2, 3)
void tars_fatal(const char *func, const char *fmt, ...);
TARS_PRINTF(1, 2) void tars_warn(const char *fmt, ...);
/* Warn once per `flag` (an atomic_int set on the first call). */
TARS_PRINTF(2, 3) void tars_warn_once(atomic_int *flag, const char *fmt, ...);

extern atomic_uint_fast64_t tars_syscalls, tars_mmaps, tars_munmaps, tars_mprotects;

/* NULL with errno on failure. */
void *tars_os_map(void *hint, size_t len, int prot, int flags, int fd);
/* Aborts on failure: unmapping our own mapping cannot legitimately fail. */
void tars_os_unmap(const char *func, void *addr, size_t len);
/* 0, or -1 with errno (ENOMEM when the VMA limit is reached). */
int tars_os_protect(void *addr, size_t len, int prot);
int tars_os_advise(void *addr, size_t len, int advice);
int tars_os_lock(void *addr, size_t len);
/* getrandom(2) until full; 0 or -1 with errno. */
int tars_os_random(void *buf, size_t len);
/* memfd_secret(2); fd or -1 with errno. */
int tars_os_memfd_secret(void);
/* Maps PROT_NONE at exactly addr unless something is there; 0 or -1.
 * Keeps the address range of pages a fork child did not inherit. */
int tars_os_reserve(void *addr, size_t len);

/* ------------------------------------------------------------------ */
/* random.c: ChaCha8 keystream per pool, seeded from getrandom          */

struct tars_rand {
	uint32_t key[8];
	uint64_t counter;
	uint8_t buf[256];
	unsigned avail;
	int need_reseed;
};

/* ChaCha8 keystream blocks (nonce 0): one, or four from `counter` on. */
void tars_chacha8_block(const uint32_t key[8], uint64_t counter, uint8_t out[64]);
void tars_chacha8_blocks4(const uint32_t key[8], uint64_t counter, uint8_t out[256]);

void tars_rand_seed(struct tars_rand *r);
void tars_rand_refill(struct tars_rand *r);

static inline uint8_t
tars_rand_u8(struct tars_rand *r)
{
	if (unlikely(r->avail == 0)) {
		tars_rand_refill(r);
	}
	return r->buf[--r->avail];
}

static inline uint32_t
tars_rand_u16(struct tars_rand *r)
{
	return ((uint32_t)tars_rand_u8(r) << 8) | tars_rand_u8(r);
}

/* ------------------------------------------------------------------ */
/* options.c                                                            */

struct tars_options {
	long junk, canary, cache, classes, random, mlock, dump, fork;
	long pools, secretmem, stats, spare;
};

/* Read-only after initialisation (the page is mprotect'ed). */
extern const struct tars_options *tars_opt;

/* Options may change (tars_option_set) while other threads allocate: each
 * read is a relaxed atomic load (a plain load on x86 and arm64), so a
 * reader sees the old or the new value, never a torn one. */
static inline long
tars_opt_load(const long *field)
{
	return __atomic_load_n(field, __ATOMIC_RELAXED);
}
#define TARS_OPT(name) tars_opt_load(&tars_opt->name)

void tars_options_init(void);      /* parse TARS_OPTIONS once */
void tars_options_seal(void);      /* make the options page read-only */

/* ------------------------------------------------------------------ */
/* Size classes (chunk.c; tars_size_class in chunk.h)                   */

extern const uint16_t tars_class_size[TARS_NCLASSES];
void tars_chunk_init(void);         /* fills the size-class table */

/* ------------------------------------------------------------------ */
/* Region table (region.c): open addressing keyed by page address      */

enum { KIND_CHUNK = 1, KIND_LARGE = 2, KIND_KEY = 3 };

/* region flags */
#define R_LOCKED     0x01   /* data pages mlock'ed */
#define R_CANARY     0x02   /* large: slack before/after the data is canaried */
#define R_SECRETMEM  0x04   /* key: data pages from memfd_secret */
#define R_GONE       0x08   /* data pages not inherited by this (child) process */
#define R_WIPEFORK   0x10   /* data pages MADV_WIPEONFORK */
#define R_DONTFORK   0x20   /* data pages MADV_DONTFORK */
#define R_UNLOCKED   0x40   /* mlock=1 failed to lock the data pages */
#define R_PROT_SHIFT 8      /* key: current protection (PROT_*) << 8 */

struct chunk_info;

struct region {
	uintptr_t page;          /* key: first page of the block; 0 = empty */
	void *ptr;               /* chunk: struct chunk_info *; else user pointer */
	size_t size;             /* large/key: requested size */
	uint32_t npages;         /* large/key: data pages */
	uint16_t kind;
	uint16_t flags;
};

extern unsigned tars_region_page_shift;  /* = tars_g.page_shift */

struct region_table {
	struct region *slots;
	size_t cap;              /* power of two */
	size_t count;
	unsigned shift;          /* 64 - log2(cap) */
	/* One-entry lookup cache for the free path (a page freed into twice
	 * in a row skips the hash): reset by every insert, delete and growth,
	 * since those move entries. */
	uintptr_t last_page;     /* TARS_NO_PAGE when empty */
	struct region *last_region;
};
/* Not page-aligned, so no page address (not even that of a wild pointer
 * like (void *)1, whose page is 0) can match it. */
#define TARS_NO_PAGE UINTPTR_MAX

int tars_region_init(struct region_table *t, size_t cap);
/* Inserts (page must not be present); 0, or -1 with errno ENOMEM. */
int tars_region_insert(struct region_table *t, const struct region *r);
static inline struct region *
tars_region_find(struct region_table *t, uintptr_t page)
{
	size_t mask = t->cap - 1;
	uint64_t h = (uint64_t)(page >> tars_region_page_shift) * 0x9e3779b97f4a7c15ull;
	size_t i = (size_t)(h >> t->shift);
	for (;;) {
		struct region *s = &t->slots[i];
		/* Empty first: an empty slot's key 0 must not match the page
		 * of a wild pointer below the first page. */
		if (s->page == 0) {
			return NULL;
		}
		if (likely(s->page == page)) {
			return s;
		}
		i = (i + 1) & mask;
	}
}
void tars_region_delete(struct region_table *t, struct region *r);
extern atomic_uint_fast64_t tars_meta_pages;   /* all pools, all metadata */
/* Make room for one more entry before taking resources: 0 or -1/ENOMEM. */
int tars_region_reserve(struct region_table *t);

/* ------------------------------------------------------------------ */
/* Pools (pool.c)                                                       */

struct chunk_info {
	struct chunk_info *next;     /* in a class list, or the free list */
	struct chunk_info **pprev;   /* NULL when in no class list */
	uint8_t *page;
	uint16_t size;               /* slot size */
	uint16_t total;              /* slots in the page */
	uint16_t nfree;
	uint8_t cls;
	uint8_t flags;               /* CI_* */
	uint32_t magic;              /* tars_class_magic[cls], at hand */
	uint64_t map[];              /* free bitmap (1 = free), then uint16 req[] */
};
/* chunk_info flags share their values with the region flags R_* where they
 * mean the same thing, so page-policy flags carry over unchanged. */
#define CI_LOCKED   R_LOCKED    /* page mlock'ed */
#define CI_JUNKED   0x02        /* every free slot holds TARS_FREE_JUNK */
#define CI_NOACCESS 0x04        /* PROT_NONE page of size-0 slots */
#define CI_GONE     R_GONE      /* not inherited by this (child) process */
#define CI_WIPEFORK R_WIPEFORK
#define CI_DONTFORK R_DONTFORK
#define CI_UNLOCKED R_UNLOCKED  /* mlock=1 could not lock it */
#define CI_RETIRED  0x80        /* frees only: a strict-mlock fork child
                                 * could not lock it again */
#define CI_NOLIST   (CI_GONE | CI_RETIRED) /* never hands out its slots */
#define CI_POLICY   (CI_LOCKED | CI_UNLOCKED | CI_WIPEFORK | CI_DONTFORK)
#define REQ_CANARY  0x8000 /* in req[]: the slack of this slot is canaried */

struct tars_pool {
	uint64_t canary1;            /* tars_secret ^ (uintptr_t)pool */
	atomic_int lock;
	unsigned index;
	uint8_t *mapping;            /* guard | pool page | guard */
	struct tars_rand rnd;
	struct chunk_info *lists[TARS_NCLASSES][TARS_NLISTS];
	uint32_t listed[TARS_NCLASSES];    /* pages in the class lists */
	uint32_t nempty[TARS_NCLASSES];    /* listed pages with every slot free */
	struct chunk_info *current[TARS_NCLASSES]; /* a listed page, or NULL:
	                                    * the pick when there is no choice */
	struct region_table regions;
	uintptr_t *cache;                  /* empty pages; low bits CI_LOCKED etc */
	size_t ncached;
	uint8_t *run_next;                 /* reserve of mapped chunk pages */
	size_t run_left;
	uint16_t run_flags;                /* R_LOCKED, R_WIPEFORK, R_DONTFORK */
	struct chunk_info *info_free;      /* free chunk_info records */
	/* statistics, under the lock */
	size_t chunk_pages, zero_pages, large_count, large_pages, key_count;
	size_t key_pages, secretmem_pages, guard_pages;
	size_t locked_bytes, unlocked_bytes;
	size_t block_requested;            /* bytes requested by live large/key */
	size_t block_reserved;             /* their data pages, in bytes */
	uint64_t block_mallocs, block_frees, cache_hits, cache_misses;
	uint64_t class_mallocs[TARS_NCLASSES];
	uint64_t canary2;            /* ~canary1 */
};

struct tars_global {
	size_t page_size;
	uintptr_t page_mask;         /* page_size - 1 */
	unsigned page_shift;
	size_t chunk_max;            /* min(page/2, TARS_CHUNK_MAX) */
	size_t info_size;            /* bytes of one chunk_info record */
	size_t map_words;            /* bitmap words per chunk_info */
	uint64_t secret;             /* pool canary secret */
	uint8_t canary_bytes[8];     /* chunk slack pattern, no zero byte */
	unsigned npools;
	struct tars_pool *pools[TARS_MAX_POOLS];
	atomic_uint next_pool;
	atomic_int basic_ready;      /* page size and options set (release) */
	atomic_int ready;
	int relock_pending;          /* fork child: pages to mlock again */
};

extern struct tars_global tars_g;

/* Page size and options (no pools): enough for tars_option_get/set. */
void tars_init_basic(void);
void tars_init_slow(void);
static inline void
tars_init(void)
{
	if (unlikely(!atomic_load_explicit(&tars_g.ready, memory_order_acquire))) {
		tars_init_slow();
	}
}

/*
 * While the process has a single thread (glibc's __libc_single_threaded,
 * which only the thread itself can clear by creating another), no other
 * thread can contend, so the lock is a plain store: the locked
 * read-modify-write would otherwise be the largest cost of a malloc/free
 * pair.  Once threads exist every acquisition is an atomic exchange.
 */
void tars_pool_lock_slow(struct tars_pool *p);
void tars_pool_wake(struct tars_pool *p);

static inline void
tars_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ volatile("yield");
#endif
}

/* Lock word: 0 free, 1 held, 2 held with sleepers (futex). */
static inline int
tars_pool_trylock(struct tars_pool *p)
{
	if (likely(__libc_single_threaded)) {
		atomic_store_explicit(&p->lock, 1, memory_order_relaxed);
		return 1;
	}
	int free_ = 0;
	return atomic_compare_exchange_strong_explicit(&p->lock, &free_, 1,
	    memory_order_acquire, memory_order_relaxed);
}

static inline void
tars_pool_lock(struct tars_pool *p)
{
	if (unlikely(!tars_pool_trylock(p))) {
		tars_pool_lock_slow(p);
	}
}
static inline void
tars_pool_unlock(struct tars_pool *p)
{
	if (likely(__libc_single_threaded)) {
		atomic_store_explicit(&p->lock, 0, memory_order_release);
	} else if (atomic_exchange_explicit(&p->lock, 0, memory_order_release) == 2) {
		tars_pool_wake(p);
	}
}

TARS_NORETURN void tars_pool_corrupted(const struct tars_pool *p, const char *func);

/* Checks the pool canaries; aborts naming func. */
static inline void
tars_pool_check(const struct tars_pool *p, const char *func)
{
	if (unlikely(p->canary1 != (tars_g.secret ^ (uintptr_t)p) ||
	    p->canary2 != ~p->canary1)) {
		tars_pool_corrupted(p, func);
	}
}

/* The calling thread's pool; NULL until its first call (one TLS load on
 * the hot path, no index to look up). */
extern _Thread_local struct tars_pool *tars_tls_pool
    __attribute__((tls_model("initial-exec")));
struct tars_pool *tars_pool_assign(void);

/* The calling thread's pool, locked and checked. */
static inline struct tars_pool *
tars_pool_enter(const char *func)
{
	/* A thread gets its pool only after initialisation, so a set pool
	 * also says the allocator is ready. */
	struct tars_pool *p = tars_tls_pool;
	if (unlikely(p == NULL)) {
		p = tars_pool_assign();
	}
	tars_pool_lock(p);
	tars_pool_check(p, func);
	return p;
}

/* Finds the region holding ptr's page in some pool and returns it with
 * that pool locked (*poolp), or NULL with no lock held. `first` is tried
 * first (it may be NULL). */
struct region *tars_find_region_slow(const void *ptr, struct tars_pool **poolp,
    struct tars_pool *first, const char *func);
static inline struct region *
tars_find_region(const void *ptr, struct tars_pool **poolp, struct tars_pool *first,
    const char *func)
{
	uintptr_t page = (uintptr_t)ptr & ~tars_g.page_mask;
	struct region_table *t = &first->regions;
	if (likely(t->last_page == page)) {
		*poolp = first;
		return t->last_region;
	}
	struct region *r = tars_region_find(t, page);
	if (likely(r != NULL)) {
		t->last_page = page;
		t->last_region = r;
		*poolp = first;
		return r;
	}
	return tars_find_region_slow(ptr, poolp, first, func);
}

static inline uint16_t *
tars_ci_req(struct chunk_info *ci)
{
	return (uint16_t *)(ci->map + tars_g.map_words);
}

/* Test hook: the address of pool 0's first canary (NULL before init). */
uint64_t *tars_test_pool_canary(void);

/* ------------------------------------------------------------------ */
/* chunk.c                                                              */

/* The hot paths, tars_chunk_alloc and tars_chunk_free, are in chunk.h. */
size_t tars_chunk_usable(struct region *r, const void *ptr, const char *func);
size_t tars_chunk_requested(struct region *r, const void *ptr, const char *func);
/* Fork child: fix up chunk pages after wipe-on-fork / dont-fork. */
void tars_chunk_after_fork(struct tars_pool *p, struct region *r);

/* ------------------------------------------------------------------ */
/* large.c: large and key allocations                                   */

void *tars_large_alloc(struct tars_pool *p, size_t size, size_t align,
    int kind, int zero, const char *func);
void tars_large_free(struct tars_pool *p, struct region *r, void *ptr,
    size_t expect_size, const char *func);
int tars_key_protect(void *ptr, int prot, const char *func);
/* Release or re-flag data pages in a fork child. */
void tars_large_after_fork(struct region *r);
/* First data page of a large or key block. */
uint8_t *tars_large_data(const struct region *r);

/* Shared mapping policy: madvise + mlock of fresh data pages.  Sets
 * *flags (R_LOCKED, R_WIPEFORK, R_DONTFORK).  0, or -1 with ENOMEM (strict
 * mlock failure). `p` is locked; its lock stats are updated. */
int tars_apply_policy(struct tars_pool *p, void *addr, size_t len,
    uint16_t *flags, int secretmem);
void tars_unlock_stats(struct tars_pool *p, size_t len, uint16_t flags);

/* ------------------------------------------------------------------ */
/* buf.c                                                                */

/* 1 if the len bytes are equal; reads every byte whatever it finds. */
int tars_ct_equal(const void *a, const void *b, size_t len);

/* ------------------------------------------------------------------ */
/* stats.c                                                              */

void tars_stats_atexit(void);

/* ------------------------------------------------------------------ */
/* util                                                                 */

/* Fill n bytes (a multiple of 16) at a 16-byte aligned p, inline: slot
 * fills are short, and a call to memset costs more than the stores. */
typedef uint8_t tars_v16 __attribute__((vector_size(16), aligned(16), may_alias));

static inline void
tars_fill16(void *p, uint8_t c, size_t n)
{
	tars_v16 v = (tars_v16){0} + c;
	uint8_t *b = p;
	uint8_t *end = b + n;
	while (end - b >= 64) {
		/* The empty asm hides the pattern from gcc, which would
		 * otherwise turn the loop back into a memset call. */
		__asm__("" : "+r"(b));
		*(tars_v16 *)(void *)(b + 0) = v;
		*(tars_v16 *)(void *)(b + 16) = v;
		*(tars_v16 *)(void *)(b + 32) = v;
		*(tars_v16 *)(void *)(b + 48) = v;
		b += 64;
	}
	if (end - b >= 32) {
		*(tars_v16 *)(void *)(b + 0) = v;
		*(tars_v16 *)(void *)(b + 16) = v;
		b += 32;
	}
	if (b < end) {
		*(tars_v16 *)(void *)b = v;
		if (end - b > 16) {
			*(tars_v16 *)(void *)(b + 16) = v;
		}
	}
}

/*
 * Copy secret bytes through general-purpose registers only.  memcpy moves
 * them through vector registers, which keep stale contents long after and
 * get saved wholesale to the stack (lazy PLT binding saves every vector
 * register with xsave; so do signal frames), where a core dump finds them
 * despite MADV_DONTDUMP: the core-dump test caught exactly that.  The empty
 * asm pins each word to a GPR, so gcc can neither vectorize the loop nor
 * turn it back into memcpy.
 */
static inline void
tars_secret_copy(void *dst, const void *src, size_t n)
{
	uint8_t *d = dst;
	const uint8_t *s = src;
	for (; n >= 8; n -= 8, d += 8, s += 8) {
		uint64_t w;
		__builtin_memcpy(&w, s, 8);
		__asm__ volatile("" : "+r"(w));
		__builtin_memcpy(d, &w, 8);
	}
	for (; n > 0; n--) {
		uint8_t b = *s++;
		__asm__ volatile("" : "+r"(b));
		*d++ = b;
	}
}

/*
 * The canary pattern: the byte at address a is tars_g.canary_bytes[a & 7],
 * so it can be written and checked eight aligned bytes at a time (slots are
 * 16-byte aligned, so a slot-relative index gives the same pattern).
 */
static inline uint64_t
tars_canary_word(void)
{
	uint64_t w;
	__builtin_memcpy(&w, tars_g.canary_bytes, 8);
	return w;
}

static inline void
tars_canary_fill(uint8_t *from, uint8_t *to)
{
	uint64_t w = tars_canary_word();
	for (; from < to && ((uintptr_t)from & 7); from++) {
		*from = tars_g.canary_bytes[(uintptr_t)from & 7];
	}
	for (; to - from >= 8; from += 8) {
		__builtin_memcpy(from, &w, 8);
	}
	for (; from < to; from++) {
		*from = tars_g.canary_bytes[(uintptr_t)from & 7];
	}
}

/* The first byte in [from, to) that differs from the pattern, or NULL. */
static inline const uint8_t *
tars_canary_find(const uint8_t *from, const uint8_t *to)
{
	uint64_t w = tars_canary_word();
	for (; from < to && ((uintptr_t)from & 7); from++) {
		if (*from != tars_g.canary_bytes[(uintptr_t)from & 7]) {
			return from;
		}
	}
	for (; to - from >= 8; from += 8) {
		uint64_t v;
		__builtin_memcpy(&v, from, 8);
		if (v != w) {
			break;   /* the byte loop below finds which */
		}
	}
	for (; from < to; from++) {
		if (*from != tars_g.canary_bytes[(uintptr_t)from & 7]) {
			return from;
		}
	}
	return NULL;
}

/* memset that the compiler may not drop (wiping secrets). */
static inline void
tars_wipe(void *p, int c, size_t n)
{
	__builtin_memset(p, c, n);
	__asm__ volatile("" : : "r"(p) : "memory");
}

/* tars_fill16 that the compiler may not drop. */
static inline void
tars_wipe16(void *p, uint8_t c, size_t n)
{
	tars_fill16(p, c, n);
	__asm__ volatile("" : : "r"(p) : "memory");
}

#pragma GCC visibility pop

#endif /* TARS_INTERNAL_H */
