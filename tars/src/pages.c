/*
 * pages.c - the page source behind every heap: segments, the pagemap,
 * committed runs, the PROT_NONE cache, and the page records.
 *
 * Chunk pages come from 2 MiB segments, aligned and reserved PROT_NONE
 * (MAP_NORESERVE: an unused page costs neither memory nor commit charge).
 * A two-level pagemap maps an address to its segment, and the segment maps
 * a page index to the page's record, so a free finds its metadata by index.
 * Pages are committed TARS_RUN_PAGES at a time: made writable, then given
 * every protection the options ask for (MADV_DONTDUMP, MADV_WIPEONFORK or
 * MADV_DONTFORK, mlock), each call checked.  A run whose protections cannot
 * all be applied is never handed out: the allocation fails with ENOMEM.
 *
 * Pages handed back (empty, wiped) go to the cache, PROT_NONE, up to
 * `cache` pages, and are reused with one mprotect; beyond that they are
 * released: replaced by a fresh PROT_NONE reservation (mmap MAP_FIXED), so
 * their memory and their lock go back to the kernel and the address stays
 * in the segment.  If the kernel refuses both (at the VMA limit a page in
 * the middle of a mapping cannot be split off), the page is kept, wiped and
 * writable, and reused before any other: a free never fails.
 *
 * Records are carved from metadata areas, one size per class.  A record no
 * longer in use waits in a FIFO of TARS_RETIRE_FIFO before it is reused: a
 * thread that loaded it just before its page went away (only a buggy free
 * can) still finds its page empty and reports the double free.
 *
 * Everything here runs under pages_lock, off the hot path.
 */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#include "chunk.h"

#define TARS_RETIRE_FIFO 256
#define META_AREA (64 * 1024)        /* metadata is mapped this much at a time */
#define CACHE_FLAGS (CI_POLICY | CI_JUNKED)

_Atomic(struct segment **) tars_pagemap[1u << TARS_TOP_BITS];

static pthread_mutex_t pages_lock = PTHREAD_MUTEX_INITIALIZER;
static struct segment *segs;         /* every segment, newest first */
static size_t nsegs;

/* The run being handed out: committed, protected, not yet taken. */
static struct segment *run_seg;
static uint8_t *run_next;
static size_t run_left;
static uint16_t run_flags;

/* Cached pages (PROT_NONE, wiped): address | CACHE_FLAGS bits. */
static uintptr_t *cache;
static size_t ncached;
/* Kept pages: the kernel refused to protect or release them. */
static size_t nkept;
static size_t lost_pages;            /* could not even be re-reserved */

/* Metadata areas, records. */
static uint8_t *meta_next;
static size_t meta_left;
static struct chunk_info *rec_free[TARS_NCLASSES];
static struct chunk_info *retired[TARS_RETIRE_FIFO];
static size_t retired_head, nretired;

static uint64_t cache_hits, cache_misses, released;
static struct tars_rand prng;        /* cache picks */

void
tars_pages_lock(void)
{
	tars_mutex_lock(&pages_lock, "tars_pages");
}

void
tars_pages_unlock(void)
{
	tars_mutex_unlock(&pages_lock, "tars_pages");
}

int
tars_pages_init(void)
{
	if (cache != NULL) {
		return 0;
	}
	size_t bytes = TARS_CACHE_MAX * sizeof(uintptr_t);
	uintptr_t *c = tars_os_map(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE, -1);
	if (c == NULL) {
		return -1;
	}
	if (tars_rand_seed(&prng) != 0) {
		(void)tars_os_unmap(c, bytes);
		errno = ENOMEM;
		return -1;
	}
	atomic_fetch_add(&tars_meta_pages, bytes / tars_g.page_size);
	cache = c;
	return 0;
}

/* ---- metadata ----------------------------------------------------------- */

/* Metadata in whole cache lines (see tars_chunk_record_size). */
static void *
meta_alloc(size_t len)
{
	len = (len + 63) & ~(size_t)63;
	if (meta_left < len) {
		uint8_t *m = tars_os_map(NULL, META_AREA, PROT_READ | PROT_WRITE, MAP_PRIVATE, -1);
		if (m == NULL) {
			return NULL;
		}
		atomic_fetch_add(&tars_meta_pages, META_AREA / tars_g.page_size);
		meta_next = m;
		meta_left = META_AREA;
	}
	void *p = meta_next;
	meta_next += len;
	meta_left -= len;
	return p;
}

static struct chunk_info *
record_alloc(unsigned cls)
{
	struct chunk_info *ci = rec_free[cls];
	if (ci != NULL) {
		rec_free[cls] = ci->next;
		return ci;
	}
	return meta_alloc(tars_chunk_record_size(cls));
}

/* A record leaves use; it is reused after TARS_RETIRE_FIFO others. */
static void
record_retire(struct chunk_info *ci)
{
	if (nretired == TARS_RETIRE_FIFO) {
		struct chunk_info *old = retired[retired_head];
		old->next = rec_free[old->cls];
		rec_free[old->cls] = old;
		retired[retired_head] = ci;
		retired_head = (retired_head + 1) % TARS_RETIRE_FIFO;
	} else {
		retired[(retired_head + nretired) % TARS_RETIRE_FIFO] = ci;
		nretired++;
	}
}

/* ---- segments ------------------------------------------------------------ */

static _Atomic(struct chunk_info *) *
page_slot(struct segment *seg, const uint8_t *page)
{
	return &seg->page[(size_t)(page - seg->base) >> tars_g.page_shift];
}

static struct segment *
seg_of(const void *p)
{
	uintptr_t a = (uintptr_t)p;
	struct segment **leaf = atomic_load_explicit(
	    &tars_pagemap[a >> (TARS_SEG_SHIFT + TARS_LEAF_BITS)], memory_order_relaxed);
	return leaf[(a >> TARS_SEG_SHIFT) & ((1u << TARS_LEAF_BITS) - 1)];
}

static size_t
page_index(struct segment *seg, const uint8_t *page)
{
	return (size_t)(page - seg->base) >> tars_g.page_shift;
}

static void
bit_set(uint64_t *map, size_t i)
{
	map[i / 64] |= 1ull << (i % 64);
}

static void
bit_clear(uint64_t *map, size_t i)
{
	map[i / 64] &= ~(1ull << (i % 64));
}

static int
bit_get(const uint64_t *map, size_t i)
{
	return (int)((map[i / 64] >> (i % 64)) & 1);
}

/* A new segment: 2 MiB reserved at a 2 MiB boundary, in the pagemap. */
static struct segment *
seg_new(void)
{
	struct segment *seg = meta_alloc(sizeof(*seg));
	if (seg == NULL) {
		return NULL;
	}
	uint8_t *m = tars_os_map(NULL, 2 * TARS_SEG_SIZE, PROT_NONE,
	    MAP_PRIVATE | MAP_NORESERVE, -1);
	if (m == NULL) {
		return NULL;   /* the record is lost: a few KiB, on exhaustion */
	}
	uint8_t *base = (uint8_t *)(((uintptr_t)m + TARS_SEG_SIZE - 1) & ~(TARS_SEG_SIZE - 1));
	/* Trim the over-mapping; at the VMA limit a trim can fail, which only
	 * leaves unused PROT_NONE address space behind. */
	if (base > m) {
		(void)tars_os_unmap(m, (size_t)(base - m));
	}
	if (m + 2 * TARS_SEG_SIZE > base + TARS_SEG_SIZE) {
		(void)tars_os_unmap(base + TARS_SEG_SIZE,
		    (size_t)(m + 2 * TARS_SEG_SIZE - (base + TARS_SEG_SIZE)));
	}
	uintptr_t a = (uintptr_t)base;
	if (a >> TARS_VA_BITS) {
		(void)tars_os_unmap(base, TARS_SEG_SIZE);
		errno = ENOMEM;
		return NULL;
	}
	_Atomic(struct segment **) *top = &tars_pagemap[a >> (TARS_SEG_SHIFT + TARS_LEAF_BITS)];
	struct segment **leaf = atomic_load_explicit(top, memory_order_relaxed);
	if (leaf == NULL) {
		size_t len = sizeof(*leaf) << TARS_LEAF_BITS;
		leaf = tars_os_map(NULL, len, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_NORESERVE, -1);
		if (leaf == NULL) {
			(void)tars_os_unmap(base, TARS_SEG_SIZE);
			return NULL;
		}
		atomic_store_explicit(top, leaf, memory_order_release);
	}
	memset(seg, 0, sizeof(*seg));
	seg->base = base;
	seg->nunused = tars_g.seg_pages;
	for (size_t i = 0; i < tars_g.seg_pages; i++) {
		bit_set(seg->unused, i);
	}
	seg->next = segs;
	segs = seg;
	nsegs++;
	__atomic_store_n(&leaf[(a >> TARS_SEG_SHIFT) & ((1u << TARS_LEAF_BITS) - 1)], seg,
	    __ATOMIC_RELEASE);
	return seg;
}

/* Commit up to TARS_RUN_PAGES unused pages of some segment as the new run.
 * 0, or -1 with ENOMEM. */
static int
commit_run(void)
{
	size_t ps = tars_g.page_size;
	struct segment *seg = segs;
	while (seg != NULL && seg->nunused == 0) {
		seg = seg->next;
	}
	if (seg == NULL && (seg = seg_new()) == NULL) {
		errno = ENOMEM;
		return -1;
	}
	size_t first = 0;
	while (!bit_get(seg->unused, first)) {
		first++;
	}
	size_t n = 0;
	while (n < TARS_RUN_PAGES && first + n < tars_g.seg_pages &&
	    bit_get(seg->unused, first + n)) {
		n++;
	}
	uint8_t *a = seg->base + first * ps;
	if (tars_os_protect(a, n * ps, PROT_READ | PROT_WRITE) != 0) {
		errno = ENOMEM;
		return -1;
	}
	uint16_t f;
	if (tars_apply_policy(a, n * ps, &f, 0) != 0) {
		/* Unprotected pages never hold a secret: back to reserved; if
		 * even that is refused they are lost to this process (counted),
		 * never handed out. */
		tars_unlock_stats(n * ps, f);
		if (tars_os_replace(a, n * ps) != 0) {
			for (size_t i = 0; i < n; i++) {
				bit_clear(seg->unused, first + i);
			}
			seg->nunused -= n;
			lost_pages += n;
		}
		errno = ENOMEM;
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		bit_clear(seg->unused, first + i);
	}
	seg->nunused -= n;
	run_seg = seg;
	run_next = a;
	run_left = n;
	run_flags = f;
	return 0;
}

/* A kept page (writable, wiped): its address and flags, or NULL. */
static uint8_t *
take_kept(unsigned *flags)
{
	if (nkept == 0) {
		return NULL;
	}
	for (struct segment *seg = segs; seg != NULL; seg = seg->next) {
		for (size_t i = 0; i < tars_g.seg_pages; i++) {
			if (!(seg->kept[i] & KEPT)) {
				continue;
			}
			uint8_t *page = seg->base + i * tars_g.page_size;
			if ((seg->kept[i] & CI_NOACCESS) && tars_os_protect(page,
			    tars_g.page_size, PROT_READ | PROT_WRITE) != 0) {
				continue;   /* still the VMA limit */
			}
			*flags = seg->kept[i] & CACHE_FLAGS;
			seg->kept[i] = 0;
			nkept--;
			return page;
		}
	}
	return NULL;
}

static void
keep(uint8_t *page, unsigned flags)
{
	struct segment *seg = seg_of(page);
	seg->kept[page_index(seg, page)] = (uint8_t)(KEPT | (flags & (CACHE_FLAGS |
	    CI_NOACCESS)));
	nkept++;
}

/* A page back to the kernel (flags: its lock), or kept. */
static void
release(uint8_t *page, unsigned flags)
{
	size_t ps = tars_g.page_size;
	if (tars_os_replace(page, ps) == 0) {
		struct segment *seg = seg_of(page);
		bit_set(seg->unused, page_index(seg, page));
		seg->nunused++;
		tars_unlock_stats(ps, (uint16_t)flags);
		released++;
	} else {
		keep(page, flags);
	}
}

/* A writable page for a new record: its address and flags (policy, and
 * CI_JUNKED if every byte holds free junk), or NULL with ENOMEM. */
static uint8_t *
source_page(unsigned *flags)
{
	size_t ps = tars_g.page_size;
	uint8_t *page = take_kept(flags);
	if (page != NULL) {
		return page;
	}
	if (run_left == 0 && ncached > 0) {
		/* Cached pages first (one mprotect), at random. */
		size_t i = TARS_OPT(random) ? tars_rand_u16(&prng) % ncached : ncached - 1;
		uintptr_t e = cache[i];
		page = (uint8_t *)(e & ~tars_g.page_mask);
		if (tars_os_protect(page, ps, PROT_READ | PROT_WRITE) == 0) {
			cache[i] = cache[--ncached];
			cache_hits++;
			*flags = (unsigned)(e & CACHE_FLAGS);
			return page;
		}
		/* The VMA limit: try a fresh run instead. */
	}
	if (run_left == 0 && commit_run() != 0) {
		/* Freed large blocks may hold the memory or mlock budget a
		 * new run needs: let them go, then try once more. */
		if (tars_large_flush() == 0 || commit_run() != 0) {
			return NULL;
		}
	}
	page = run_next;
	run_next += ps;
	run_left--;
	cache_misses++;
	*flags = run_flags & CI_POLICY;   /* zeros: not junked yet */
	return page;
}

/* Publish a record for page (pages_lock held). */
static void
publish(struct chunk_info *ci)
{
	struct segment *seg = seg_of(ci->page);
	atomic_store_explicit(page_slot(seg, ci->page), ci, memory_order_release);
}

struct chunk_info *
tars_pages_take(struct tars_heap *h, unsigned cls)
{
	size_t ps = tars_g.page_size;
	int saved = errno;
	tars_pages_lock();
	struct chunk_info *ci = record_alloc(cls);
	unsigned flags = 0;
	uint8_t *page = ci == NULL ? NULL : source_page(&flags);
	if (page == NULL) {
		if (ci != NULL) {
			ci->next = rec_free[cls];
			rec_free[cls] = ci;
		}
		tars_pages_unlock();
		errno = ENOMEM;
		return NULL;
	}
	if (cls == 0) {
		/* Size-0 slots: distinct pointers into a page nobody may touch. */
		if (tars_os_protect(page, ps, PROT_NONE) != 0) {
			keep(page, flags);
			ci->next = rec_free[cls];
			rec_free[cls] = ci;
			tars_pages_unlock();
			errno = ENOMEM;
			return NULL;
		}
		flags = (flags & CI_POLICY) | CI_NOACCESS;
	} else if (!(flags & CI_JUNKED) && TARS_OPT(junk) >= 1) {
		/* Free slots hold free junk from the start, so an allocation
		 * needs no fill and junk=2 can verify every slot it hands out. */
		memset(page, TARS_FREE_JUNK, ps);
		flags |= CI_JUNKED;
	}
	tars_chunk_record_init(ci, page, cls, flags);
	ci->heap = h;
	publish(ci);
	tars_pages_unlock();
	errno = saved;
	return ci;
}

struct chunk_info *
tars_pages_recarve(struct tars_heap *h, struct chunk_info *old, unsigned cls)
{
	int saved = errno;
	tars_pages_lock();
	struct chunk_info *ci = record_alloc(cls);
	if (ci == NULL) {
		tars_pages_unlock();
		errno = ENOMEM;
		return NULL;
	}
	unsigned flags = old->flags & (CI_POLICY | CI_JUNKED);
	if (!(flags & CI_JUNKED) && TARS_OPT(junk) >= 1) {
		memset(old->page, TARS_FREE_JUNK, tars_g.page_size);
		flags |= CI_JUNKED;
	}
	tars_chunk_record_init(ci, old->page, cls, flags);
	ci->heap = h;
	publish(ci);
	record_retire(old);
	tars_pages_unlock();
	errno = saved;
	return ci;
}

/* pages_lock held. */
static void
give_locked(struct chunk_info *ci)
{
	size_t ps = tars_g.page_size;
	uint8_t *page = ci->page;
	unsigned flags = ci->flags;
	struct segment *seg = seg_of(page);
	atomic_store_explicit(page_slot(seg, page), NULL, memory_order_release);
	record_retire(ci);
	if (flags & CI_GONE) {
		/* Not in this (child) process: its address is reserved. */
		bit_set(seg->unused, page_index(seg, page));
		seg->nunused++;
		tars_unlock_stats(ps, (uint16_t)flags);
	} else if (flags & CI_RETIRED) {
		release(page, flags & CI_POLICY);
	} else if (ncached < (size_t)TARS_OPT(cache) &&
	    ((flags & CI_NOACCESS) || tars_os_protect(page, ps, PROT_NONE) == 0)) {
		/* A page of size-0 slots never held data, nor junk. */
		cache[ncached++] = (uintptr_t)page |
		    (flags & ((flags & CI_NOACCESS) ? CI_POLICY : CACHE_FLAGS));
	} else {
		release(page, flags & (CACHE_FLAGS | CI_NOACCESS));
	}
}

void
tars_pages_give(struct chunk_info *ci)
{
	int saved = errno;
	tars_pages_lock();
	give_locked(ci);
	tars_pages_unlock();
	errno = saved;
}

int
tars_chunk_owns(const void *ptr)
{
	return tars_page_info(ptr) != NULL;
}

int
tars_chunk_fork_wiped(const void *ptr)
{
	struct chunk_info *ci = tars_page_info(ptr);
	if (ci == NULL) {
		return 0;
	}
	size_t off = (size_t)((const uint8_t *)ptr - ci->page);
	unsigned slot = (unsigned)((off * ci->magic) >> 32);
	if ((size_t)slot * ci->size != off || slot >= ci->total ||
	    (map_load(ci, slot >> 6) & (1ull << (slot & 63)))) {
		return 0;
	}
	return (ci_req(ci)[slot] & REQ_FORKED) != 0;
}

/* ---- statistics, iteration, fork ------------------------------------------ */

void
tars_pages_stats(struct tars_stats *s)
{
	s->cached_pages += ncached;
	s->reserve_pages += run_left;
	s->kept_pages += nkept;
	s->lost_pages += lost_pages;
	s->segments += nsegs;
	s->cache_hits += cache_hits;
	s->cache_misses += cache_misses;
	s->released_pages += released;
}

void
tars_pages_foreach(void (*fn)(struct chunk_info *ci, void *arg), void *arg)
{
	for (struct segment *seg = segs; seg != NULL; seg = seg->next) {
		for (size_t i = 0; i < tars_g.seg_pages; i++) {
			struct chunk_info *ci = atomic_load_explicit(&seg->page[i],
			    memory_order_relaxed);
			if (ci != NULL) {
				fn(ci, arg);
			}
		}
	}
}

/* A page that did not come with us into this child: hold its address
 * (nothing else may land where the pagemap still points) and count it as
 * unused.  Only MADV_DONTFORK pages are absent. */
static void
gone(struct segment *seg, size_t i, unsigned flags)
{
	size_t ps = tars_g.page_size;
	(void)tars_os_reserve(seg->base + i * ps, ps);
	bit_set(seg->unused, i);
	seg->nunused++;
	tars_unlock_stats(ps, (uint16_t)flags);
}

/* A record in use in the child: wiped-on-fork pages read zeros (no canary
 * to check, no free junk), dont-fork pages are gone. */
static void
record_after_fork(struct chunk_info *ci)
{
	if (ci->flags & CI_DONTFORK) {
		ci->flags |= CI_GONE;
		(void)tars_os_reserve(ci->page, tars_g.page_size);
		struct tars_heap *h = ci->heap;
		if (ci->pprev != NULL) {
			heap_list_remove(h, ci);
		}
		if (ci->in_empty) {
			heap_empty_unlink(h, ci);
		}
	} else if (ci->flags & CI_WIPEFORK) {
		uint16_t *req = ci_req(ci);
		for (unsigned i = 0; i < ci->total; i++) {
			req[i] = (uint16_t)((req[i] & ~REQ_CANARY) | REQ_FORKED);
		}
		ci->flags &= (uint8_t)~CI_JUNKED;
	}
}

/* Fork child, quiescent, pages_lock held. */
void
tars_pages_after_fork(void)
{
	size_t ps = tars_g.page_size;
	prng.need_reseed = 1;
	prng.avail = 0;
	if (run_left > 0 && (run_flags & R_DONTFORK)) {
		struct segment *seg = run_seg;
		for (size_t k = 0; k < run_left; k++) {
			gone(seg, page_index(seg, run_next + k * ps), run_flags);
		}
		run_left = 0;
	}
	size_t kept_c = 0;
	for (size_t c = 0; c < ncached; c++) {
		uint8_t *page = (uint8_t *)(cache[c] & ~tars_g.page_mask);
		if (cache[c] & CI_DONTFORK) {
			struct segment *seg = seg_of(page);
			gone(seg, page_index(seg, page), (unsigned)cache[c]);
		} else {
			cache[kept_c++] = cache[c];
		}
	}
	ncached = kept_c;
	for (struct segment *seg = segs; seg != NULL; seg = seg->next) {
		for (size_t i = 0; i < tars_g.seg_pages; i++) {
			if ((seg->kept[i] & KEPT) && (seg->kept[i] & CI_DONTFORK)) {
				gone(seg, i, seg->kept[i]);
				seg->kept[i] = 0;
				nkept--;
			}
			struct chunk_info *ci = atomic_load_explicit(&seg->page[i],
			    memory_order_relaxed);
			if (ci != NULL) {
				record_after_fork(ci);
			}
		}
	}
}

/* mlock again, in a fork child, every page tars had locked (pages_lock
 * held; heaps quiescent).  Under mlock=2 a page that cannot be locked again
 * must not receive new secrets: run and cached pages are released, pages
 * in use retired (their live blocks can still be freed). */
void
tars_pages_relock(int strict)
{
	size_t ps = tars_g.page_size;
	if ((run_flags & R_LOCKED) && run_left > 0) {
		if (!tars_relock_range(run_next, run_left * ps, 0)) {
			run_flags = (uint16_t)((run_flags & ~R_LOCKED) | R_UNLOCKED);
			if (strict) {
				for (size_t k = 0; k < run_left; k++) {
					release(run_next + k * ps, run_flags);
				}
				run_left = 0;
			}
		}
	}
	size_t kept_c = 0;
	for (size_t c = 0; c < ncached; c++) {
		uintptr_t e = cache[c];
		uint8_t *page = (uint8_t *)(e & ~tars_g.page_mask);
		if ((e & CI_LOCKED) && !tars_relock_range(page, ps, 1)) {
			e = (e & ~(uintptr_t)CI_LOCKED) | CI_UNLOCKED;
		}
		if (strict && (e & CI_UNLOCKED)) {
			if (tars_os_replace(page, ps) == 0) {
				struct segment *seg = seg_of(page);
				bit_set(seg->unused, page_index(seg, page));
				seg->nunused++;
				tars_unlock_stats(ps, (uint16_t)e);
				continue;
			}
		}
		cache[kept_c++] = e;
	}
	ncached = kept_c;
	for (struct segment *seg = segs; seg != NULL; seg = seg->next) {
		for (size_t i = 0; i < tars_g.seg_pages; i++) {
			struct chunk_info *ci = atomic_load_explicit(&seg->page[i],
			    memory_order_relaxed);
			if (ci == NULL || !(ci->flags & CI_LOCKED) || (ci->flags & CI_GONE)) {
				continue;
			}
			if (tars_relock_range(ci->page, ps, (ci->flags & CI_NOACCESS) != 0)) {
				continue;
			}
			ci->flags = (uint8_t)((ci->flags & ~CI_LOCKED) | CI_UNLOCKED);
			if (strict && ci->cls != 0) {
				ci->flags |= CI_RETIRED;
				struct tars_heap *h = ci->heap;
				if (ci->pprev != NULL) {
					heap_list_remove(h, ci);
				}
				if (ci->in_empty) {
					heap_empty_unlink(h, ci);
					h->chunk_pages--;
					if (h->last_page == (uintptr_t)ci->page) {
						h->last_page = 0;
					}
					give_locked(ci);
				}
			}
		}
	}
}
