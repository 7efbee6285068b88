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
	 *                          the canary pattern
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

/* [scheme][(size + 15) / 16]: every class boundary is a multiple of 16. */
extern uint8_t tars_class_table[2][TARS_CHUNK_MAX / 16 + 1];

static inline unsigned
tars_size_class(size_t size, long scheme)
{
	return tars_class_table[scheme != 0][(size + 15) >> 4];
}

/* ------------------------------------------------------------------ */
/* chunk.c, out of line                                                 */

/* The general path's refill: collect remote frees, else carve an empty
 * page of another class, else take a page; a page of class cls with a free
 * slot, or NULL with ENOMEM. */
struct chunk_info *tars_chunk_refill(struct tars_heap *h, unsigned cls);
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
/* Bytes of the record of a page of class cls, and its layout. */
size_t tars_chunk_record_size(unsigned cls);
void tars_chunk_record_init(struct chunk_info *ci, uint8_t *page, unsigned cls,
    unsigned flags);

/* remote.c: ptr is in ci's page, owned by another heap (or none). */
void tars_remote_free(struct tars_heap *me, struct chunk_info *ci, void *ptr,
    size_t expect, const char *func);

/* ------------------------------------------------------------------ */
/* Lists, inline                                                        */

static inline void
heap_list_insert(struct tars_heap *h, struct chunk_info *ci, int random)
{
	unsigned l = random ? (tars_rand_u8(&h->rnd) & (TARS_NLISTS - 1)) : 0;
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

/* The empty pages: the newest at empty_new, the oldest at empty_old. */
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

/* A page of the class with a free slot: from a random list when several
 * pages have room, else the one there is; NULL if none. */
static inline struct chunk_info *
heap_pick_page(struct tars_heap *h, unsigned cls, long random)
{
	if (h->listed[cls] <= 1 || !random) {
		return h->current[cls];
	}
	struct chunk_info **lists = h->lists[cls];
	unsigned start = tars_rand_u8(&h->rnd);
	for (unsigned i = 0; i < TARS_NLISTS; i++) {
		struct chunk_info *ci = lists[(start + i) & (TARS_NLISTS - 1)];
		if (ci != NULL) {
			return ci;
		}
	}
	return NULL;
}

/* The first free slot at or after a random index (wrapping). */
static inline unsigned
chunk_pick_slot(struct tars_heap *h, struct chunk_info *ci, long random)
{
	unsigned total = ci->total;
	unsigned start = 0;
	if (random) {
		start = total <= 256 ? (tars_rand_u8(&h->rnd) * total) >> 8
		                     : (tars_rand_u16(&h->rnd) * total) >> 16;
	}
	unsigned w = start >> 6;
	uint64_t m = map_load(ci, w) & (~0ull << (start & 63));
	if (likely(m != 0)) {
		return (w << 6) + (unsigned)__builtin_ctzll(m);
	}
	unsigned words = ci->words;
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
	tars_chunk_no_slot(ci);
}

/*
 * A slot of class cls from h (entered), prepared: zeroed (calloc), or junk
 * unless the slot still holds the free junk the last free left (junk=1
 * then costs no fill), with junk=2 that junk verified, and the slack
 * behind the request filled with the slot's canary pattern.  NULL when the
 * class has no page with a free slot: the caller refills.
 */
static inline __attribute__((always_inline)) void *
chunk_alloc_slot(struct tars_heap *h, size_t size, unsigned cls, int zero,
    const char *func)
{
	const struct tars_options *o = tars_opt;
	long random = tars_opt_load(&o->random);
	struct chunk_info *ci = heap_pick_page(h, cls, random);
	if (unlikely(ci == NULL)) {
		return NULL;
	}
	unsigned slot = chunk_pick_slot(h, ci, random);
	unsigned w = slot >> 6;
	uint64_t bit = 1ull << (slot & 63);
	unsigned ssize = ci->size;
	uint8_t *ptr = ci->page + (size_t)slot * ssize;
	if (unlikely(xfree_load(ci, w) & bit)) {
		/* Free here, and freed again by another thread. */
		tars_chunk_double_free(ptr, "freed by two threads", func);
	}
	map_store(ci, w, map_load(ci, w) & ~bit);
	if (unlikely(ci->nfree == ci->total)) {
		heap_empty_unlink(h, ci);
	}
	if (unlikely(--ci->nfree == 0)) {
		heap_list_remove(h, ci);
	}
	uint16_t r = (uint16_t)size;
	if (likely(cls != 0)) {
		long junk = tars_opt_load(&o->junk);
		size_t fill = (size + 15) & ~(size_t)15;   /* whole 16-byte units */
		int junked = (ci->flags & CI_JUNKED) != 0;
		if (unlikely(junk == 2) && junked) {
			tars_chunk_junk_check(ptr, ssize, func);
		}
		if (zero) {
			tars_fill16(ptr, 0, fill);
		} else if (junk != 0 && !junked) {
			tars_fill16(ptr, TARS_FREE_JUNK, fill);
		}
		if (size < ssize && tars_opt_load(&o->canary)) {
			tars_canary_fill(ptr, ptr + size, ptr + ssize);
			r |= REQ_CANARY;
		}
	}
	ci_req(ci)[slot] = r;
	/* The only counter on the hot path: live counts and bytes are
	 * derived from the pages when the statistics are read. */
	h->class_mallocs[cls]++;
	return ptr;
}

/* Validates that ptr is the start of a slot of ci's page; its index. */
static inline unsigned
chunk_slot_of(struct chunk_info *ci, const void *ptr, const char *func)
{
	size_t off = (size_t)((const uint8_t *)ptr - ci->page);
	unsigned slot = (unsigned)((off * ci->magic) >> 32);
	if (unlikely((size_t)slot * ci->size != off || slot >= ci->total)) {
		tars_chunk_bad_pointer(ci, ptr, func);
	}
	return slot;
}

/* Validates an allocated slot: its index, else a precise abort. */
static inline unsigned
chunk_live_slot(struct chunk_info *ci, const void *ptr, const char *func)
{
	unsigned slot = chunk_slot_of(ci, ptr, func);
	uint64_t bit = 1ull << (slot & 63);
	if (unlikely(map_load(ci, slot >> 6) & bit)) {
		tars_chunk_double_free(ptr, "chunk slot is already free", func);
	}
	if (unlikely(xfree_load(ci, slot >> 6) & bit)) {
		tars_chunk_double_free(ptr, "already freed by another thread", func);
	}
	return slot;
}

/* Checks the slack canary and wipes the slot (free junk, or zeros with
 * junk=0: the page then no longer holds free junk everywhere). */
static inline __attribute__((always_inline)) void
chunk_check_wipe(struct chunk_info *ci, uint8_t *ptr, uint16_t req, const char *func)
{
	unsigned ssize = ci->size;
	if (req & REQ_CANARY) {
		size_t size = req & ~REQ_CANARY;
		const uint8_t *bad = tars_canary_find(ptr, ptr + size, ptr + ssize);
		if (unlikely(bad != NULL)) {
			tars_chunk_canary_fail(ptr, bad, size, func);
		}
	}
	if (likely(TARS_OPT(junk) >= 1)) {
		tars_wipe16(ptr, TARS_FREE_JUNK, ssize);
	} else {
		tars_wipe16(ptr, 0, ssize);
	}
}

/* h entered and owning ci's page. */
static inline __attribute__((always_inline)) void
chunk_free_local(struct tars_heap *h, struct chunk_info *ci, void *ptr, size_t expect,
    const char *func)
{
	unsigned slot = chunk_live_slot(ci, ptr, func);
	uint16_t req = ci_req(ci)[slot];
	if (unlikely(expect != (size_t)-1 && expect != (size_t)(req & ~REQ_CANARY))) {
		tars_chunk_size_mismatch(ptr, expect, req & ~REQ_CANARY, func);
	}
	if (likely(!(ci->flags & (CI_NOACCESS | CI_GONE)))) {
		chunk_check_wipe(ci, ptr, req, func);
		if (unlikely(TARS_OPT(junk) == 0)) {
			ci->flags &= (uint8_t)~CI_JUNKED;
		}
	}
	unsigned w = slot >> 6;
	map_store(ci, w, map_load(ci, w) | (1ull << (slot & 63)));
	unsigned nfree = ++ci->nfree;
	if (unlikely(ci->flags & CI_NOLIST)) {
		if (nfree == ci->total) {
			tars_chunk_release(h, ci);
		}
		return;
	}
	if (unlikely(nfree == 1)) {
		heap_list_insert(h, ci, TARS_OPT(random));
	}
	if (unlikely(nfree == ci->total)) {
		heap_empty_push(h, ci);
		if (unlikely(h->nempty > (size_t)TARS_OPT(spare))) {
			tars_heap_trim(h);
		}
	}
}

#pragma GCC visibility pop

#endif /* TARS_CHUNK_H */
