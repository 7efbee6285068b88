/*
 * chunk.h - small allocations: slots of one size class sharing a page.
 *
 * The types of the chunk allocator and its one slot routine.  tars_malloc
 * and tars_free inline chunk_alloc_slot / chunk_free_local for the common
 * case, and the general path (chunk.c) is built from the same pieces: a
 * page going full or not-full, empty or not, and a bitmap scan past the
 * first word, all happen here, inline.  Only what needs another page
 * (collect remote frees, carve a page, take one from the page source) or a
 * system call (release a page beyond `spare`) is out of line.
 *
 * A page's record (struct chunk_info) lives out of band, in metadata pages
 * (pages.c); the segment that holds the page maps the page's index to its
 * record, and the pagemap maps an address to its segment, so a free finds
 * the record with three dependent loads and no hash probe.
 */
#ifndef TARS_CHUNK_H
#define TARS_CHUNK_H

#include "heap.h"

#pragma GCC visibility push(hidden)

/* ------------------------------------------------------------------ */
/* Page records                                                         */

struct chunk_info {
	/* Set when the page is carved, read-only until it is released: others
	 * read them after the acquire load of the segment's page entry. */
	uint8_t kind;                /* KIND_CHUNK */
	uint8_t cls;
	uint8_t flags;               /* CI_*, written by the owner */
	uint8_t words;               /* bitmap words */
	uint16_t size;               /* slot size */
	uint16_t total;              /* slots in the page */
	uint32_t magic;              /* ceil(2^32 / size): offset -> slot */
	uint16_t nfree;              /* owner: slots free in map */
	uint16_t rsize;              /* bytes of this record */
	uint8_t *page;
	struct tars_heap *heap;      /* owner; fixed while a slot is live */
	struct chunk_info *next;     /* owner: class list */
	struct chunk_info **pprev;   /* owner: NULL when in no class list */
	struct chunk_info *enext;    /* owner: heap's empty pages, newer */
	struct chunk_info *eprev;    /* owner: older */
	struct chunk_info *pnext;    /* the owner's pending stack */
	atomic_int queued;           /* 1 while on the pending stack */
	uint8_t in_empty;            /* owner: on the heap's empty list */
	uint8_t xzeroed;             /* a remote free wiped with zeros (atomic) */
	uint8_t pad[2];
	/*
	 * Then, in the same record:
	 *   uint64_t map[words]    1 = free; the owner writes it with plain
	 *                          (relaxed) stores, others only read it
	 *   uint64_t xfree[words]  1 = freed by another thread, wiped, waiting
	 *                          for the owner (atomic read-modify-write)
	 *   uint16_t req[total]    requested size; REQ_CANARY if the slack holds
	 *                          the canary pattern, REQ_FORKED, REQ_DELAYED
	 *                          (see below)
	 */
	uint64_t bits[];
};

/* chunk_info flags share their values with the region flags R_* where they
 * mean the same thing, so page-policy flags carry over unchanged. */
#define CI_LOCKED   R_LOCKED    /* page mlock'ed */
#define CI_JUNKED   0x02        /* every free byte of the page is free junk */
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
#define REQ_FORKED  0x4000 /* in req[]: allocated before a fork that wiped
                            * the page (fork=1): this child holds zeros */
#define REQ_DELAYED 0x2000 /* in req[]: freed (wiped), waiting in the owner's
                            * delayed-free queue: not live for any thread */
#define REQ_SIZE    0x0fff /* in req[]: the requested size (<= 2048) */

static inline uint64_t *
ci_map(struct chunk_info *ci)
{
	return ci->bits;
}

static inline uint64_t *
ci_xfree(struct chunk_info *ci)
{
	return ci->bits + ci->words;
}

static inline uint16_t *
ci_req(struct chunk_info *ci)
{
	return (uint16_t *)(ci->bits + 2 * ci->words);
}

/* The owner's bitmap: relaxed atomics, since other threads read it (a
 * plain load or store on every target we build for). */
static inline uint64_t
map_load(struct chunk_info *ci, unsigned w)
{
	return __atomic_load_n(&ci_map(ci)[w], __ATOMIC_RELAXED);
}

static inline void
map_store(struct chunk_info *ci, unsigned w, uint64_t v)
{
	__atomic_store_n(&ci_map(ci)[w], v, __ATOMIC_RELAXED);
}

static inline uint64_t
xfree_load(struct chunk_info *ci, unsigned w)
{
	return __atomic_load_n(&ci_xfree(ci)[w], __ATOMIC_RELAXED);
}

/* ------------------------------------------------------------------ */
/* Segments and the pagemap (pages.c)                                   */

#define TARS_VA_BITS 47              /* user addresses below 2^47 */
#define TARS_SEG_SHIFT 21            /* 2 MiB segments, aligned */
#define TARS_SEG_SIZE ((size_t)1 << TARS_SEG_SHIFT)
#define TARS_SEG_PAGES_MAX 512       /* with 4 KiB pages */
#define TARS_LEAF_BITS 14
#define TARS_TOP_BITS (TARS_VA_BITS - TARS_SEG_SHIFT - TARS_LEAF_BITS)

struct segment {
	_Atomic(struct chunk_info *) page[TARS_SEG_PAGES_MAX]; /* in use, or NULL */
	uint8_t *base;
	struct segment *next;        /* every segment */
	size_t nunused;
	uint64_t unused[TARS_SEG_PAGES_MAX / 64];  /* 1 = reserved: no memory */
	uint8_t kept[TARS_SEG_PAGES_MAX];  /* KEPT | flags: writable, wiped, idle */
};
#define KEPT 0x80

/* Leaves of 2^14 segments, made when first needed and never freed. */
extern _Atomic(struct segment **) tars_pagemap[1u << TARS_TOP_BITS];

/* The record of the chunk page holding ptr, or NULL (not a chunk page). */
static inline struct chunk_info *
tars_page_info(const void *ptr)
{
	uintptr_t a = (uintptr_t)ptr;
	if (unlikely(a >> TARS_VA_BITS)) {
		return NULL;
	}
	struct segment **leaf = atomic_load_explicit(
	    &tars_pagemap[a >> (TARS_SEG_SHIFT + TARS_LEAF_BITS)], memory_order_acquire);
	if (unlikely(leaf == NULL)) {
		return NULL;
	}
	struct segment *seg = __atomic_load_n(
	    &leaf[(a >> TARS_SEG_SHIFT) & ((1u << TARS_LEAF_BITS) - 1)], __ATOMIC_ACQUIRE);
	if (unlikely(seg == NULL)) {
		return NULL;
	}
	return atomic_load_explicit(
	    &seg->page[(a & (TARS_SEG_SIZE - 1)) >> tars_g.page_shift], memory_order_acquire);
}

/* The page source: pages for heaps, back from heaps (pages.c, global). */
int tars_pages_init(void);
/* A record for class cls on a writable page, owned by h, published in the
 * pagemap; NULL with errno ENOMEM. */
struct chunk_info *tars_pages_take(struct tars_heap *h, unsigned cls);
/* ci's page carved again for class cls (owner; every slot free, not
 * queued): a new record, published; NULL with ENOMEM (ci untouched). */
struct chunk_info *tars_pages_recarve(struct tars_heap *h, struct chunk_info *ci,
    unsigned cls);
/* An empty page back (unlinked from its heap): cached, released, or kept
 * if the kernel refuses both. */
void tars_pages_give(struct chunk_info *ci);
/* Statistics of the page source (quiescent). */
struct tars_stats;
void tars_pages_stats(struct tars_stats *s);
/* Iterate every record in use (quiescent). */
void tars_pages_foreach(void (*fn)(struct chunk_info *ci, void *arg), void *arg);
/* Fork child: fix pages after wipe-on-fork / dont-fork. */
void tars_pages_after_fork(void);
void tars_pages_relock(int strict);
void tars_pages_lock(void);
void tars_pages_unlock(void);

/* ------------------------------------------------------------------ */
/* Size classes                                                         */

extern const uint32_t tars_class_magic[TARS_NCLASSES];

/* Class index of a request 1..TARS_CHUNK_MAX, computed: scheme 0
 * power-of-two classes (16, 32, 64, ... 2048), scheme 1 quarter steps (16,
 * 32, 48, 64, 80, 96, 112, 128, 160, ...).  Used to fill the table below. */
static inline unsigned
tars_size_class_calc(size_t size, long scheme)
{
	if (size <= 16) {
		return 1;
	}
	unsigned k = 63 - (unsigned)__builtin_clzll((unsigned long long)(size - 1));
	if (scheme == 0) {
		/* next power of two, 2^(k+1): 32 -> 2, 64 -> 4, then every 4th */
		return k + 1 == 5 ? 2 : 4 + (k + 1 - 6) * 4;
	}
	if (size <= 64) {
		return (unsigned)((size + 15) >> 4);
	}
	/* 2^k < size <= 2^(k+1): quarter steps of 2^(k-2) */
	return 5 + (k - 6) * 4 + (unsigned)((size - 1 - ((size_t)1 << k)) >> (k - 2));
}

/* [scheme][(size + 15) / 16]: every class boundary is a multiple of 16.
 * The scheme is option `classes`, 0 or 1 (the option table says so). */
extern uint8_t tars_class_table[2][TARS_CHUNK_MAX / 16 + 1];

static inline unsigned
tars_size_class(size_t size, long scheme)
{
	return tars_class_table[scheme & 1][(size + 15) >> 4];
}

/* ------------------------------------------------------------------ */
/* chunk.c, out of line                                                 */

/* The general path's refill: collect remote frees, else carve an empty
 * page of another class, else take a page; a page of class cls with a free
 * slot, or NULL with ENOMEM. */
struct chunk_info *tars_chunk_refill(struct tars_heap *h, unsigned cls);
/* Release every slot waiting in h's delayed-free queue. */
void tars_chunk_drain_delayed(struct tars_heap *h, const char *func);
/* Too many empty pages: release the oldest (out of line: system calls). */
void tars_chunk_release(struct tars_heap *h, struct chunk_info *ci);
void tars_chunk_junk_check(const uint8_t *slot, unsigned ssize, const char *func);
TARS_NORETURN void tars_chunk_canary_fail(const uint8_t *slot, const uint8_t *bad,
    size_t size, const char *func);
TARS_NORETURN void tars_chunk_bad_pointer(const struct chunk_info *ci,
    const void *ptr, const char *func);
TARS_NORETURN void tars_chunk_double_free(const void *ptr, const char *why,
    const char *func);
TARS_NORETURN void tars_chunk_no_slot(const struct chunk_info *ci);
TARS_NORETURN void tars_chunk_size_mismatch(const void *ptr, size_t expect,
    size_t size, const char *func);
void tars_chunk_init(void);          /* fills the size-class table */
size_t tars_chunk_usable(struct chunk_info *ci, const void *ptr, const char *func);
size_t tars_chunk_requested(struct chunk_info *ci, const void *ptr, const char *func);
/* 1 if the slot of ptr waits in its owner's delayed-free queue. */
int tars_chunk_delayed(struct chunk_info *ci, const void *ptr, const char *func);
/* Bytes of the record of a page of class cls, and its layout. */
size_t tars_chunk_record_size(unsigned cls);
void tars_chunk_record_init(struct chunk_info *ci, uint8_t *page, unsigned cls,
    unsigned flags);

/* remote.c: ptr is in ci's page, owned by another heap (or none). */
void tars_remote_free(struct tars_heap *me, struct chunk_info *ci, void *ptr,
    size_t expect, const char *func);

/* ------------------------------------------------------------------ */
/* Lists, inline                                                        */

/* A random byte of h's stream.  fast: the caller checked that enough are
 * buffered (no refill call, so the fast paths stay leaf functions). */
static inline __attribute__((always_inline)) unsigned
heap_rand_u8(struct tars_heap *h, const int fast)
{
	if (!fast) {
		return tars_rand_u8(&h->rnd);
	}
	return h->rnd.buf[--h->rnd.avail];
}

static inline __attribute__((always_inline)) void
heap_list_insert(struct tars_heap *h, struct chunk_info *ci, long random, const int fast)
{
	unsigned l = random ? (heap_rand_u8(h, fast) & (TARS_NLISTS - 1)) : 0;
	struct chunk_info **head = &h->lists[ci->cls][l];
	ci->next = *head;
	if (*head != NULL) {
		(*head)->pprev = &ci->next;
	}
	*head = ci;
	ci->pprev = head;
	h->listed[ci->cls]++;
	if (h->current[ci->cls] == NULL) {
		h->current[ci->cls] = ci;
	}
}

static inline void
heap_list_remove(struct tars_heap *h, struct chunk_info *ci)
{
	*ci->pprev = ci->next;
	if (ci->next != NULL) {
		ci->next->pprev = ci->pprev;
	}
	ci->pprev = NULL;
	ci->next = NULL;
	h->listed[ci->cls]--;
	if (h->current[ci->cls] == ci) {
		struct chunk_info *next = NULL;
		for (unsigned i = 0; i < TARS_NLISTS && next == NULL; i++) {
			next = h->lists[ci->cls][i];
		}
		h->current[ci->cls] = next;
	}
}

/*
 * The empty list: pages that became empty, oldest first.  It is lazy: a
 * page joins when it empties (unless it is on the list already) and stays
 * there when it is used again, so a page that empties and fills over and
 * over costs no list work; whoever walks the list (trim, carving) drops
 * the entries that are no longer empty.
 */
static inline void
heap_empty_push(struct tars_heap *h, struct chunk_info *ci)
{
	ci->enext = NULL;
	ci->eprev = h->empty_new;
	if (h->empty_new != NULL) {
		h->empty_new->enext = ci;
	} else {
		h->empty_old = ci;
	}
	h->empty_new = ci;
	h->nempty++;
	ci->in_empty = 1;
}

static inline void
heap_empty_unlink(struct tars_heap *h, struct chunk_info *ci)
{
	if (ci->eprev != NULL) {
		ci->eprev->enext = ci->enext;
	} else {
		h->empty_old = ci->enext;
	}
	if (ci->enext != NULL) {
		ci->enext->eprev = ci->eprev;
	} else {
		h->empty_new = ci->eprev;
	}
	ci->enext = ci->eprev = NULL;
	h->nempty--;
	ci->in_empty = 0;
}

/* ------------------------------------------------------------------ */
/* The slot routine                                                     */

/*
 * Every piece below takes `fast`, a compile-time constant.  The general
 * path (fast = 0) reports what it finds (a bogus pointer, a double free, a
 * canary) and calls out of line when it must (a random refill, a page to
 * release).  The fast paths in malloc.c (fast = 1) are the same code with
 * those calls replaced by "not done": every check comes before the first
 * change, so giving up leaves nothing half done, and with no call left the
 * compiler makes them leaf functions without a stack frame.  The general
 * path then does the operation again, and reports what the fast one saw.
 */

/* A page of the class with a free slot: when several pages have room, a
 * random list (the low bits of a random byte) and a random position in
 * it, up to 3 steps from its head (the next two bits, stopping at its
 * tail), so any of 16 pages can be chosen, not only the 4 heads (the
 * security evaluation measured 2 of 4 bits with heads only); else the one
 * there is; NULL if none. */
static inline __attribute__((always_inline)) struct chunk_info *
heap_pick_page(struct tars_heap *h, unsigned cls, long random, const int fast)
{
	if (h->listed[cls] <= 1 || !random) {
		return h->current[cls];
	}
	struct chunk_info **lists = h->lists[cls];
	unsigned r = heap_rand_u8(h, fast);
	for (unsigned i = 0; i < TARS_NLISTS; i++) {
		struct chunk_info *ci = lists[(r + i) & (TARS_NLISTS - 1)];
		if (ci != NULL) {
			for (unsigned steps = (r >> 2) & 3; steps > 0 && ci->next != NULL; steps--) {
				ci = ci->next;
			}
			return ci;
		}
	}
	return NULL;
}

#define NO_SLOT 0xffffffffu
#define WALK_MAX 16                  /* free slots few enough to count */
/* Random bytes a fast allocation may take: a page pick, two for each of
 * at most three slot draws, and two for a counted pick. */
#define FAST_RAND_BYTES 9

static inline __attribute__((always_inline)) unsigned
heap_rand_u16(struct tars_heap *h, const int fast)
{
	unsigned hi = heap_rand_u8(h, fast);
	return (hi << 8) | heap_rand_u8(h, fast);
}

/* A slot index uniform over [0, n): one byte when n divides 256 (every
 * class whose slot count is a power of two), else two. */
static inline __attribute__((always_inline)) unsigned
heap_rand_below(struct tars_heap *h, unsigned n, const int fast)
{
	if (likely((n & (n - 1)) == 0)) {
		return (heap_rand_u8(h, fast) * n) >> 8;
	}
	return (heap_rand_u16(h, fast) * n) >> 16;
}

/*
 * A free slot of the page, chosen uniformly among its free slots (random),
 * or the first one (random=0).  Three regimes, by how many slots are free:
 *   - at least a quarter: indices drawn uniformly over the page until one
 *     is free (two draws when half or more is free, else three); a free
 *     index is then uniform over the free slots;
 *   - at most WALK_MAX (or every draw missed with that few): the k-th free
 *     slot, k uniform, counted through the bitmap;
 *   - in between, after missed draws: the first free slot after the last
 *     draw (biased towards slots after long runs of used ones).
 * A draw over n is 8 bits when n divides 256, else 16 bits: an 8-bit one
 * scaled to 85 slots favours some by a third.  NO_SLOT (fast) if the bitmap says the page is full, which its
 * count denies.
 */
static inline __attribute__((always_inline)) unsigned
chunk_pick_slot(struct tars_heap *h, struct chunk_info *ci, long random, const int fast)
{
	unsigned total = ci->total;
	unsigned words = ci->words;
	unsigned start = 0;
	if (random) {
		unsigned nfree = ci->nfree;
		unsigned draws = 2 * nfree >= total ? 2 : 4 * nfree >= total ? 3 : 0;
		for (unsigned t = 0; t < draws; t++) {
			start = heap_rand_below(h, total, fast);
			if (likely(map_load(ci, start >> 6) & (1ull << (start & 63)))) {
				return start;
			}
		}
		if (nfree <= WALK_MAX) {
			unsigned k = heap_rand_below(h, nfree, fast);
			for (unsigned w = 0; w < words; w++) {
				for (uint64_t m = map_load(ci, w); m != 0; m &= m - 1) {
					if (k-- == 0) {
						return (w << 6) + (unsigned)__builtin_ctzll(m);
					}
				}
			}
			if (fast) {
				return NO_SLOT;
			}
			tars_chunk_no_slot(ci);
		}
		if (draws == 0) {
			start = heap_rand_below(h, total, fast);
		}
	}
	unsigned w = start >> 6;
	uint64_t m = map_load(ci, w) & (~0ull << (start & 63));
	if (likely(m != 0)) {
		return (w << 6) + (unsigned)__builtin_ctzll(m);
	}
	for (unsigned i = 1; i <= words; i++) {
		unsigned ww = w + i >= words ? w + i - words : w + i;
		m = map_load(ci, ww);
		if (ww == w) {
			m &= ~(~0ull << (start & 63));
		}
		if (m != 0) {
			return (ww << 6) + (unsigned)__builtin_ctzll(m);
		}
	}
	if (fast) {
		return NO_SLOT;
	}
	tars_chunk_no_slot(ci);
}

/*
 * The slot's canary, a word at a time: the word holding the first slack
 * byte merges the pattern with the fill of the request's last bytes
 * (`fill`: what the allocation put there), so no byte loop is needed;
 * every later word up to the slot end is the pattern.  Slots are 16-byte
 * aligned, so the words are aligned too.
 */
static inline uint64_t
chunk_canary_mask(size_t size)
{
	return (size & 7) ? ~0ull << (8 * (size & 7)) : ~0ull;
}

static inline void
chunk_canary_fill(uint8_t *slot, size_t size, size_t ssize, uint8_t fill)
{
	uint64_t w = tars_canary_word(slot);
	uint64_t keep = chunk_canary_mask(size);
	size_t a = size & ~(size_t)7;
	uint64_t first = (w & keep) | ((0x0101010101010101ull * fill) & ~keep);
	__builtin_memcpy(slot + a, &first, 8);
	for (a += 8; a < ssize; a += 8) {
		__builtin_memcpy(slot + a, &w, 8);
	}
}

/* 1 if the slack [size, ssize) still holds the slot's pattern. */
static inline int
chunk_canary_intact(const uint8_t *slot, size_t size, size_t ssize)
{
	uint64_t w = tars_canary_word(slot);
	size_t a = size & ~(size_t)7;
	uint64_t v;
	__builtin_memcpy(&v, slot + a, 8);
	uint64_t diff = (v ^ w) & chunk_canary_mask(size);
	for (a += 8; a < ssize; a += 8) {
		__builtin_memcpy(&v, slot + a, 8);
		diff |= v ^ w;
	}
	return diff == 0;
}

/*
 * A slot of class cls from h (entered), prepared: zeroed (calloc), or junk
 * unless the slot still holds the free junk the last free left (junk=1
 * then costs no fill), with junk=2 that junk verified, and the slack
 * behind the request filled with the slot's canary pattern.  NULL when the
 * class has no page with a free slot (the caller refills), or, fast, when
 * anything needs the general path.
 */
static inline __attribute__((always_inline)) void *
chunk_alloc_slot(struct tars_heap *h, size_t size, unsigned cls, int zero,
    const char *func, const int fast)
{
	const struct tars_options *o = tars_opt;
	long random = tars_opt_load(&o->random);
	long junk = tars_opt_load(&o->junk);
	if (fast && (unlikely(h->rnd.avail < FAST_RAND_BYTES) || unlikely(junk == 2))) {
		return NULL;
	}
	struct chunk_info *ci = heap_pick_page(h, cls, random, fast);
	if (unlikely(ci == NULL)) {
		return NULL;
	}
	unsigned slot = chunk_pick_slot(h, ci, random, fast);
	if (fast && unlikely(slot == NO_SLOT)) {
		return NULL;
	}
	unsigned w = slot >> 6;
	uint64_t bit = 1ull << (slot & 63);
	unsigned ssize = ci->size;
	uint8_t *ptr = ci->page + (size_t)slot * ssize;
	if (unlikely(xfree_load(ci, w) & bit)) {
		/* Free here, and freed again by another thread. */
		if (fast) {
			return NULL;
		}
		tars_chunk_double_free(ptr, "freed by two threads", func);
	}
	map_store(ci, w, map_load(ci, w) & ~bit);
	if (unlikely(--ci->nfree == 0)) {
		heap_list_remove(h, ci);
	}
	uint16_t r = (uint16_t)size;
	if (likely(cls != 0)) {
		size_t fill = (size + 15) & ~(size_t)15;   /* whole 16-byte units */
		int junked = (ci->flags & CI_JUNKED) != 0;
		if (!fast && unlikely(junk == 2) && junked) {
			tars_chunk_junk_check(ptr, ssize, func);
		}
		if (zero) {
			tars_fill16(ptr, 0, fill);
		} else if (junk != 0 && !junked) {
			tars_fill16(ptr, TARS_FREE_JUNK, fill);
		}
		if (size < ssize && tars_opt_load(&o->canary)) {
			chunk_canary_fill(ptr, size, ssize, zero || junk == 0 ? 0 : TARS_FREE_JUNK);
			r |= REQ_CANARY;
		}
	}
	ci_req(ci)[slot] = r;
	/* The only counter on the hot path: live counts and bytes are
	 * derived from the pages when the statistics are read. */
	h->class_mallocs[cls]++;
	return ptr;
}

/* Validates that ptr is the start of a slot of ci's page; its index, or
 * NO_SLOT (fast). */
static inline __attribute__((always_inline)) unsigned
chunk_slot_of(struct chunk_info *ci, const void *ptr, const char *func, const int fast)
{
	size_t off = (size_t)((const uint8_t *)ptr - ci->page);
	unsigned slot = (unsigned)((off * ci->magic) >> 32);
	if (unlikely((size_t)slot * ci->size != off || slot >= ci->total)) {
		if (fast) {
			return NO_SLOT;
		}
		tars_chunk_bad_pointer(ci, ptr, func);
	}
	return slot;
}

/* Validates an allocated slot: its index, else a precise abort (NO_SLOT,
 * fast). */
static inline __attribute__((always_inline)) unsigned
chunk_live_slot(struct chunk_info *ci, const void *ptr, const char *func, const int fast)
{
	unsigned slot = chunk_slot_of(ci, ptr, func, fast);
	if (fast && unlikely(slot == NO_SLOT)) {
		return NO_SLOT;
	}
	uint64_t bit = 1ull << (slot & 63);
	if (unlikely(map_load(ci, slot >> 6) & bit)) {
		if (fast) {
			return NO_SLOT;
		}
		tars_chunk_double_free(ptr, "chunk slot is already free", func);
	}
	if (unlikely(xfree_load(ci, slot >> 6) & bit)) {
		if (fast) {
			return NO_SLOT;
		}
		tars_chunk_double_free(ptr, "already freed by another thread", func);
	}
	if (unlikely(ci_req(ci)[slot] & REQ_DELAYED)) {
		if (fast) {
			return NO_SLOT;
		}
		tars_chunk_double_free(ptr, "it waits in the delayed-free queue", func);
	}
	return slot;
}

/* Checks the slack canary: 1 if intact (fast), else reports it. */
static inline __attribute__((always_inline)) int
chunk_canary_ok(uint8_t *ptr, uint16_t req, unsigned ssize, const char *func,
    const int fast)
{
	if (req & REQ_CANARY) {
		size_t size = req & REQ_SIZE;
		if (unlikely(!chunk_canary_intact(ptr, size, ssize))) {
			if (fast) {
				return 0;
			}
			tars_chunk_canary_fail(ptr, tars_canary_find(ptr, ptr + size, ptr + ssize),
			    size, func);
		}
	}
	return 1;
}

/* Wipes a freed slot: free junk, or zeros with junk=0 (two constant
 * fills: a variable byte would cost a broadcast on the hot path). */
static inline void
chunk_wipe(uint8_t *ptr, unsigned ssize, long junk)
{
	if (likely(junk >= 1)) {
		tars_wipe16(ptr, TARS_FREE_JUNK, ssize);
	} else {
		tars_wipe16(ptr, 0, ssize);
	}
}

/* May the slot of ci be released on the fast path?  No page to release,
 * no random refill, no trim. */
static inline __attribute__((always_inline)) int
chunk_release_fast_ok(const struct tars_heap *h, const struct chunk_info *ci, long random)
{
	unsigned nfree = ci->nfree + 1u;
	return likely(!(ci->flags & (CI_NOACCESS | CI_NOLIST))) &&
	    !(unlikely(nfree == 1) && random && unlikely(h->rnd.avail == 0)) &&
	    !(unlikely(nfree == ci->total) && unlikely(h->nempty + !ci->in_empty >
	    (size_t)TARS_OPT(spare)));
}

/* The slot goes back to its page (wiped already): the bitmap, the count,
 * and the page's moves between lists. */
static inline __attribute__((always_inline)) void
chunk_release_slot(struct tars_heap *h, struct chunk_info *ci, unsigned slot, long random,
    const char *func, const int fast)
{
	unsigned w = slot >> 6;
	uint64_t bit = 1ull << (slot & 63), m = map_load(ci, w);
	if (!fast && unlikely(m & bit)) {
		/* Freed meanwhile by another thread and collected (a slot can
		 * wait in the delayed queue): the second free of a pair. */
		tars_chunk_double_free(ci->page + (size_t)slot * ci->size,
		    "freed by two threads", func);
	}
	map_store(ci, w, m | bit);
	unsigned nfree = ++ci->nfree;
	if (!fast && unlikely(ci->flags & CI_NOLIST)) {
		if (nfree == ci->total) {
			tars_chunk_release(h, ci);
		}
		return;
	}
	if (unlikely(nfree == 1)) {
		heap_list_insert(h, ci, random, fast);
	}
	if (unlikely(nfree == ci->total)) {
		if (!ci->in_empty) {
			heap_empty_push(h, ci);
		}
		if (!fast && unlikely(h->nempty > (size_t)TARS_OPT(spare))) {
			tars_heap_trim(h);
		}
	}
}

/*
 * h entered and owning ci's page.  1 when freed; 0 (fast only) when the
 * general path must do it.  The slot is checked and wiped at once.  With
 * option delay=1 it then takes a random place in the heap's delayed-free
 * queue (TARS_DELAY slots, as OpenBSD's malloc), and the slot it displaces
 * is the one released: a freed slot is not handed out again for a while,
 * and a second free while it waits, from any thread, is caught (its req
 * entry carries REQ_DELAYED, which chunk_live_slot refuses).
 */
static inline __attribute__((always_inline)) int
chunk_free_local(struct tars_heap *h, struct chunk_info *ci, void *ptr, size_t expect,
    const char *func, const int fast)
{
	const struct tars_options *o = tars_opt;
	unsigned slot = chunk_live_slot(ci, ptr, func, fast);
	if (fast && unlikely(slot == NO_SLOT)) {
		return 0;
	}
	long delay = tars_opt_load(&o->delay);
	if (fast) {
		if (unlikely((h->ndelayed | (unsigned)delay) != 0)) {
			return 0;   /* the queue is the general path's */
		}
		delay = 0;   /* known, so the code below folds away */
	} else {
		if (unlikely(!delay && h->ndelayed != 0)) {
			tars_chunk_drain_delayed(h, func);   /* delay was switched off */
		}
	}
	uint16_t req = ci_req(ci)[slot];
	if (unlikely(expect != (size_t)-1 && expect != (size_t)(req & REQ_SIZE))) {
		tars_chunk_size_mismatch(ptr, expect, req & REQ_SIZE, func);
	}
	unsigned flags = ci->flags;
	long random = tars_opt_load(&o->random);
	/* What is released: this slot, or the one the queue gives back. */
	struct chunk_info *rci = ci;
	unsigned rslot = slot;
	unsigned qi = 0;
	if (delay) {
		/* The queue fills in order (entries below ndelayed are taken),
		 * then a random entry gives way to each free. */
		qi = h->ndelayed < TARS_DELAY ? h->ndelayed
		    : heap_rand_u8(h, fast) & (TARS_DELAY - 1);
		rci = h->delayed[qi].ci;
		if (rci != NULL) {
			rslot = chunk_slot_of(rci, h->delayed[qi].ptr, func, 0);
		}
	}
	if (fast && (unlikely(flags & (CI_NOACCESS | CI_NOLIST)) ||
	    (rci != NULL && !chunk_release_fast_ok(h, rci, random)))) {
		return 0;   /* a page to release, a refill, or a trim */
	}
	if (likely(!(flags & (CI_NOACCESS | CI_GONE)))) {
		if (!chunk_canary_ok(ptr, req, ci->size, func, fast)) {
			return 0;
		}
		long junk = tars_opt_load(&o->junk);
		chunk_wipe(ptr, ci->size, junk);
		if (unlikely(junk == 0) && (flags & CI_JUNKED)) {
			ci->flags = (uint8_t)(flags & ~CI_JUNKED);
		}
	}
	if (delay) {
		ci_req(ci)[slot] = (uint16_t)(req | REQ_DELAYED);
		h->delayed[qi].ptr = ptr;
		h->delayed[qi].ci = ci;
		if (rci == NULL) {
			h->ndelayed++;   /* an empty entry filled: nothing leaves */
			return 1;
		}
		ci_req(rci)[rslot] &= (uint16_t)~REQ_DELAYED;
	}
	chunk_release_slot(h, rci, rslot, random, func, fast);
	return 1;
}

#pragma GCC visibility pop

#endif /* TARS_CHUNK_H */
