/*
 * chunk.h - the chunk allocator's hot path, inline so that tars_malloc and
 * tars_free compile to one function each with no calls once a page is in
 * use.  Everything rare (a new page, list moves, canary and junk failures,
 * releasing an empty page) is out of line in chunk.c.
 */
#ifndef TARS_CHUNK_H
#define TARS_CHUNK_H

#include "tars_internal.h"

#pragma GCC visibility push(hidden)

extern const uint32_t tars_class_magic[TARS_NCLASSES];

/* chunk.c, out of line */
struct chunk_info *tars_chunk_new_page(struct tars_pool *p, unsigned cls);
void tars_chunk_list_insert(struct tars_pool *p, struct chunk_info *ci);
void tars_chunk_list_remove(struct tars_pool *p, struct chunk_info *ci);
void tars_chunk_release(struct tars_pool *p, struct region *r, struct chunk_info *ci);
void tars_chunk_junk_check(const uint8_t *slot, unsigned ssize, const char *func);
void tars_chunk_canary_check(const uint8_t *slot, size_t from, size_t to,
    const char *func);
TARS_NORETURN void tars_chunk_bad_pointer(const struct chunk_info *ci,
    const void *ptr, const char *func);
TARS_NORETURN void tars_chunk_double_free(const void *ptr, const char *func);
TARS_NORETURN void tars_chunk_no_slot(const struct chunk_info *ci);

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

/* A page of the class with a free slot: from a random list when several
 * pages have room, else the one there is; NULL if none. */
static inline struct chunk_info *
tars_chunk_pick_page(struct tars_pool *p, unsigned cls)
{
	if (p->listed[cls] <= 1 || !TARS_OPT(random)) {
		return p->current[cls];
	}
	struct chunk_info **lists = p->lists[cls];
	unsigned start = tars_rand_u8(&p->rnd);
	for (unsigned i = 0; i < TARS_NLISTS; i++) {
		struct chunk_info *ci = lists[(start + i) & (TARS_NLISTS - 1)];
		if (ci != NULL) {
			return ci;
		}
	}
	return NULL;
}

/*
 * Each class keeps up to `spare` empty pages (mapped, writable, every slot
 * wiped) besides its partly used ones; a page that empties beyond that is
 * released (to the PROT_NONE cache or the kernel).  So a malloc/free loop
 * never makes a system call, and churn does not cycle pages through the
 * cache (two mprotects each) whenever the number of empty pages of a class
 * wobbles.  A page that empties stays only while the class's empty pages
 * are fewer than min(spare, 1 + its listed pages >> TARS_SPARE_SHIFT): a
 * class with few pages keeps few, a busy class up to `spare`.  1 if one
 * more empty page may stay.
 */
static inline int
tars_chunk_may_keep_empty(const struct tars_pool *p, unsigned cls)
{
	size_t n = p->nempty[cls];
	if (likely(n == 0)) {
		return 1;   /* the limit is at least 1: no need to read it */
	}
	size_t cap = 1 + (p->listed[cls] >> TARS_SPARE_SHIFT);
	size_t spare = (size_t)TARS_OPT(spare);
	return n < (cap < spare ? cap : spare);
}

/* Wipes a freed slot: free junk, or zeros with junk=0 (the page then no
 * longer holds free junk everywhere, which junk=2 would check). */
static inline void
tars_chunk_wipe_slot(struct chunk_info *ci, void *ptr, unsigned ssize)
{
	if (likely(TARS_OPT(junk) >= 1)) {
		tars_wipe16(ptr, TARS_FREE_JUNK, ssize);
	} else {
		tars_wipe16(ptr, 0, ssize);
		ci->flags &= (uint8_t)~CI_JUNKED;
	}
}

/* The first free slot at or after a random index (wrapping). */
static inline unsigned
tars_chunk_pick_slot(struct tars_pool *p, struct chunk_info *ci, int random)
{
	unsigned total = ci->total;
	unsigned start = 0;
	if (random) {
		start = total <= 256 ? (tars_rand_u8(&p->rnd) * total) >> 8
		                     : (tars_rand_u16(&p->rnd) * total) >> 16;
	}
	unsigned w = start >> 6;
	uint64_t m = ci->map[w] & (~0ull << (start & 63));
	if (likely(m != 0)) {
		return (w << 6) + (unsigned)__builtin_ctzll(m);
	}
	unsigned words = (total + 63) >> 6;
	for (unsigned i = 1; i <= words; i++) {
		unsigned ww = w + i >= words ? w + i - words : w + i;
		m = ci->map[ww];
		if (ww == w) {
			m &= ~(~0ull << (start & 63));
		}
		if (m != 0) {
			return (ww << 6) + (unsigned)__builtin_ctzll(m);
		}
	}
	tars_chunk_no_slot(ci);
}

static inline __attribute__((always_inline)) void *
tars_chunk_alloc(struct tars_pool *p, size_t size, unsigned cls, int zero,
    const char *func)
{
	const struct tars_options *o = tars_opt;
	struct chunk_info *ci = tars_chunk_pick_page(p, cls);
	if (unlikely(ci == NULL)) {
		ci = tars_chunk_new_page(p, cls);
		if (ci == NULL) {
			return NULL;
		}
	}
	unsigned slot = tars_chunk_pick_slot(p, ci, (int)tars_opt_load(&o->random));
	ci->map[slot >> 6] &= ~(1ull << (slot & 63));
	p->nempty[cls] -= ci->nfree == ci->total;
	if (unlikely(--ci->nfree == 0)) {
		tars_chunk_list_remove(p, ci);
	}
	unsigned ssize = ci->size;
	uint8_t *ptr = ci->page + (size_t)slot * ssize;
	uint16_t r = (uint16_t)size;
	if (likely(cls != 0)) {
		if (unlikely(tars_opt_load(&o->junk) == 2) && (ci->flags & CI_JUNKED)) {
			tars_chunk_junk_check(ptr, ssize, func);
		}
		/* Whole 16-byte units; the canary then covers the slack. */
		size_t fill = (size + 15) & ~(size_t)15;
		if (zero) {
			tars_fill16(ptr, 0, fill);
		} else if (tars_opt_load(&o->junk)) {
			tars_fill16(ptr, TARS_ALLOC_JUNK, fill);
		}
		if (size < ssize && tars_opt_load(&o->canary)) {
			tars_canary_fill(ptr + size, ptr + ssize);
			r |= REQ_CANARY;
		}
	}
	tars_ci_req(ci)[slot] = r;
	/* The only counter on the hot path: live counts and bytes are
	 * derived from the pages when the statistics are read. */
	p->class_mallocs[cls]++;
	return ptr;
}

/* Validates that ptr is the start of an allocated slot; its index. */
static inline unsigned
tars_chunk_slot_of(struct chunk_info *ci, const void *ptr, const char *func)
{
	size_t off = (size_t)((const uint8_t *)ptr - ci->page);
	unsigned slot = (unsigned)((off * ci->magic) >> 32);
	if (unlikely((size_t)slot * ci->size != off || slot >= ci->total)) {
		tars_chunk_bad_pointer(ci, ptr, func);
	}
	if (unlikely(ci->map[slot >> 6] & (1ull << (slot & 63)))) {
		tars_chunk_double_free(ptr, func);
	}
	return slot;
}

/* p locked, r the region of ptr's page. */
static inline __attribute__((always_inline)) void
tars_chunk_free(struct tars_pool *p, struct region *r, void *ptr, size_t expect_size,
    const char *func)
{
	struct chunk_info *ci = r->ptr;
	unsigned slot = tars_chunk_slot_of(ci, ptr, func);
	uint16_t req = tars_ci_req(ci)[slot];
	size_t size = req & ~REQ_CANARY;
	unsigned ssize = ci->size;
	if (unlikely(expect_size != (size_t)-1 && expect_size != size)) {
		tars_fatal(func, "size %zu does not match the allocated size %zu of %p",
		    expect_size, size, ptr);
	}
	if (likely(!(ci->flags & (CI_NOACCESS | CI_GONE)))) {
		if (req & REQ_CANARY) {
			tars_chunk_canary_check(ptr, size, ssize, func);
		}
		tars_chunk_wipe_slot(ci, ptr, ssize);
	}
	ci->map[slot >> 6] |= 1ull << (slot & 63);
	unsigned nfree = ++ci->nfree;
	if (unlikely(nfree == 1) && !(ci->flags & CI_NOLIST)) {
		tars_chunk_list_insert(p, ci);
	}
	if (unlikely(nfree == ci->total)) {
		if (ci->flags & CI_NOLIST) {
			tars_chunk_release(p, r, ci);   /* never listed, never counted */
		} else {
			int keep = tars_chunk_may_keep_empty(p, ci->cls);
			p->nempty[ci->cls]++;           /* release uncounts it */
			if (!keep) {
				tars_chunk_release(p, r, ci);
			}
		}
	}
}

/* ------------------------------------------------------------------------
 * Leaf fast paths for tars_malloc and tars_free, taken while the process
 * has a single thread: the lock is then a plain store and unlocking never
 * has to wake a sleeper.  They make no calls, so the compiler needs no
 * stack frame.  Every check comes before the first change, and anything
 * unusual (threads, no page with room, a page filling up or emptying,
 * junk=2, a failed check) returns "not done": the caller takes the general
 * path, which handles it - or reports it, since a corrupted canary or a bad
 * pointer is diagnosed there, not here.
 * --------------------------------------------------------------------- */

static inline int
tars_pool_ok(const struct tars_pool *p)
{
	return p->canary1 == (tars_g.secret ^ (uintptr_t)p) && p->canary2 == ~p->canary1;
}

static inline void *
tars_chunk_alloc_fast(size_t size)
{
	struct tars_pool *p = tars_tls_pool;
	if (unlikely(p == NULL || size - 1 >= TARS_CHUNK_MAX)) {
		return NULL;
	}
	if (unlikely(!__libc_single_threaded)) {
		return NULL;   /* threads: the general path locks (and may sleep) */
	}
	atomic_store_explicit(&p->lock, 1, memory_order_relaxed);
	const struct tars_options *o = tars_opt;
	long junk = tars_opt_load(&o->junk), random = tars_opt_load(&o->random);
	unsigned cls = tars_size_class(size, tars_opt_load(&o->classes));
	struct tars_rand *rnd = &p->rnd;
	struct chunk_info *ci = p->current[cls];
	if (unlikely(!tars_pool_ok(p) || junk == 2 || rnd->avail < 2)) {
		goto out;
	}
	if (p->listed[cls] > 1 && random) {
		struct chunk_info **lists = p->lists[cls];
		unsigned start = rnd->buf[--rnd->avail];
		for (unsigned i = 0; i < TARS_NLISTS; i++) {
			ci = lists[(start + i) & (TARS_NLISTS - 1)];
			if (ci != NULL) {
				break;
			}
		}
	}
	if (unlikely(ci == NULL || ci->nfree == 1 || ci->total > 256)) {
		goto out;
	}
	unsigned slot = 0;
	if (random) {
		slot = (rnd->buf[--rnd->avail] * (unsigned)ci->total) >> 8;
	}
	uint64_t m = ci->map[slot >> 6] & (~0ull << (slot & 63));
	if (unlikely(m == 0)) {
		goto out;
	}
	slot = (slot & ~63u) + (unsigned)__builtin_ctzll(m);
	ci->map[slot >> 6] &= ~(1ull << (slot & 63));
	p->nempty[cls] -= ci->nfree == ci->total;
	ci->nfree--;
	unsigned ssize = ci->size;
	uint8_t *ptr = ci->page + (size_t)slot * ssize;
	if (junk) {
		tars_fill16(ptr, TARS_ALLOC_JUNK, (size + 15) & ~(size_t)15);
	}
	uint16_t r = (uint16_t)size;
	if (size < ssize && tars_opt_load(&o->canary)) {
		tars_canary_fill(ptr + size, ptr + ssize);
		r |= REQ_CANARY;
	}
	tars_ci_req(ci)[slot] = r;
	p->class_mallocs[cls]++;
	atomic_store_explicit(&p->lock, 0, memory_order_release);
	return ptr;
out:
	atomic_store_explicit(&p->lock, 0, memory_order_release);
	return NULL;
}

/* 1 if ptr was freed, 0 if the general path must do it (and check it). */
static inline int
tars_chunk_free_fast(void *ptr)
{
	struct tars_pool *p = tars_tls_pool;
	if (unlikely(p == NULL)) {
		return 0;
	}
	if (unlikely(!__libc_single_threaded)) {
		return 0;   /* threads: the general path locks (and may sleep) */
	}
	atomic_store_explicit(&p->lock, 1, memory_order_relaxed);
	uintptr_t page = (uintptr_t)ptr & ~tars_g.page_mask;
	struct region_table *t = &p->regions;
	struct region *r;
	if (unlikely(!tars_pool_ok(p))) {
		goto out;
	}
	if (likely(t->last_page == page)) {
		r = t->last_region;
	} else {
		r = tars_region_find(t, page);
		if (r == NULL) {
			goto out;
		}
		t->last_page = page;
		t->last_region = r;
	}
	if (unlikely(r->kind != KIND_CHUNK)) {
		goto out;
	}
	struct chunk_info *ci = r->ptr;
	size_t off = (size_t)((uintptr_t)ptr - page);   /* page == ci->page */
	unsigned slot = (unsigned)((off * ci->magic) >> 32);
	unsigned nfree = ci->nfree + 1u;
	if (unlikely((size_t)slot * ci->size != off || slot >= ci->total ||
	    (ci->map[slot >> 6] & (1ull << (slot & 63))) ||
	    (ci->flags & (CI_NOACCESS | CI_NOLIST)) ||
	    nfree == 1 || (nfree == ci->total && !tars_chunk_may_keep_empty(p, ci->cls)))) {
		goto out;   /* the general path releases the page */
	}
	uint16_t req = tars_ci_req(ci)[slot];
	unsigned ssize = ci->size;
	if ((req & REQ_CANARY) && unlikely(tars_canary_find((uint8_t *)ptr +
	    (req & ~REQ_CANARY), (uint8_t *)ptr + ssize) != NULL)) {
		goto out;   /* the general path reports it */
	}
	tars_chunk_wipe_slot(ci, ptr, ssize);
	ci->map[slot >> 6] |= 1ull << (slot & 63);
	ci->nfree = (uint16_t)nfree;
	p->nempty[ci->cls] += nfree == ci->total;
	atomic_store_explicit(&p->lock, 0, memory_order_release);
	return 1;
out:
	atomic_store_explicit(&p->lock, 0, memory_order_release);
	return 0;
}

#pragma GCC visibility pop

#endif /* TARS_CHUNK_H */
