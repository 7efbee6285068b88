/*
 * large.c - large blocks (> chunk_max) and keys.
 *
 * Every block lies at the END of its data pages (its end 16-byte aligned,
 * or `align`-aligned), a PROT_NONE guard page right behind it and another
 * in front, so an overflow faults at once:
 *
 *     | guard | data pages ................................ | guard |
 *             | canary .. | block ......... | canary (<16) |
 *
 * The slack in front of the block and the padding behind it hold the
 * canary pattern (canary=1), checked at free: a small underflow, which
 * lands inside the first data page rather than the guard, is caught there.
 *
 * Where the data pages come from:
 *   - blocks of up to SLAB_MAX_PAGES pages: a slot of a multi-page size
 *     class (slab.c), guard after every slot, no system call once the slot
 *     has been used;
 *   - larger blocks: a mapping of their own, or one a freed block of the
 *     same size left in the cache (below);
 *   - keys: a mapping of their own, always (tars_protect_* switches their
 *     pages; with secretmem=1 they come from memfd_secret(2), gone from the
 *     kernel's direct map).
 *
 * Freed mappings (quarantine and cache).  A freed block's address is not
 * handed back at once: the next mmap of its size would return it, a stale
 * pointer would read the next block's secret and a second free would free
 * the new block.  The mapping is wiped and held in a FIFO: the last
 * `quarantine` freed mappings are never reused, so a stale pointer reads
 * free junk or (freed_none=1, and always for keys) faults, and a second
 * free aborts "double free ... in quarantine".  A large block's mapping
 * keeps its memory and lock while the cache holds less than `large_cache`
 * pages, and once out of its window (the quarantine, capped at 256 KiB of
 * blocks) it is handed out again to a block of the same size, or up to a
 * quarter smaller: no system call (one mprotect with freed_none=1).  A key's
 * mapping, and a large one beyond the cache, is replaced by one PROT_NONE
 * reservation (memory and lock back to the kernel) and unmapped when it
 * leaves the window.
 *
 * Large and key blocks are found through one global table under one lock
 * (tars_blocks): a block freed or protected from any thread is found at
 * once.  The lock is only taken inside a heap entry, so a quiescent point
 * (fork) never sees it held.
 */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "tars_internal.h"

static atomic_int secretmem_broken, warned_secretmem, warned_unmap;

struct tars_blocks tars_blocks = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* Freed mappings: a ring, oldest at quar_head. */
struct quarantined {
	uint8_t *map;        /* guard | data | guard */
	size_t len;
	void *ptr;           /* the user pointer it had */
	int kind;
	int kept;            /* memory kept (a large block's, for reuse) */
	int closed;          /* data pages PROT_NONE */
	uint16_t flags;      /* R_LOCKED etc. of its data pages (kept) */
	uint8_t policy;      /* the options they were protected under */
};
static struct quarantined *quar;
static size_t quar_head, quar_n, kept_pages;

int
tars_blocks_init(void)
{
	if (quar == NULL) {
		size_t len = TARS_QUARANTINE_MAX * sizeof(*quar);
		len = (len + tars_g.page_mask) & ~tars_g.page_mask;
		struct quarantined *q = tars_os_map(NULL, len, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE, -1);
		if (q == NULL) {
			return -1;
		}
		atomic_fetch_add(&tars_meta_pages, len >> tars_g.page_shift);
		quar = q;
	}
	if (tars_blocks.regions.slots != NULL) {
		return 0;
	}
	return tars_region_init(&tars_blocks.regions, 256);
}

static struct quarantined *
quar_at(size_t i)
{
	return &quar[(quar_head + i) % TARS_QUARANTINE_MAX];
}

static size_t
data_pages(const struct quarantined *q)
{
	return (q->len >> tars_g.page_shift) - 2;
}

/* Entry i leaves the ring (the ones after it move up one). */
static void
quar_remove(size_t i)
{
	for (; i + 1 < quar_n; i++) {
		*quar_at(i) = *quar_at(i + 1);
	}
	quar_n--;
}

/* blocks locked.  Freed mapping i leaves: unmapped. */
static void
quarantine_evict_at(size_t i)
{
	struct quarantined *q = quar_at(i);
	/* A whole mapping: munmap needs no split, the VMA limit cannot
	 * refuse it; should it fail anyway, the range stays as it is. */
	(void)tars_os_unmap(q->map, q->len);
	if (q->kept) {
		tars_unlock_stats(data_pages(q) << tars_g.page_shift, q->flags);
		kept_pages -= data_pages(q);
	}
	tars_blocks.quarantined_pages -= q->len >> tars_g.page_shift;
	if (i == 0) {
		quar_head = (quar_head + 1) % TARS_QUARANTINE_MAX;
		quar_n--;
	} else {
		quar_remove(i);
	}
}

static void
quarantine_evict(void)
{
	quarantine_evict_at(0);
}

/* Shrink the ring to what the options allow: entries beyond the window
 * leave if nothing can reuse them (a key's, a dropped one's) or the cache
 * holds too much; the ring never exceeds its size. */
static void
quarantine_trim(void)
{
	size_t window = (size_t)TARS_OPT(quarantine), cap = (size_t)TARS_OPT(large_cache);
	while (quar_n > window && (!quar_at(0)->kept || kept_pages > cap)) {
		quarantine_evict();
	}
	/* Out of the window, only what the cache can hand out stays. */
	for (size_t i = 0; i + window < quar_n;) {
		if (!quar_at(i)->kept) {
			quarantine_evict_at(i);
		} else {
			i++;
		}
	}
	/* Kept ones inside the window beyond the cache: memory dropped. */
	for (size_t i = 0; i < quar_n && kept_pages > cap; i++) {
		struct quarantined *q = quar_at(i);
		if (q->kept && tars_os_replace(q->map, q->len) == 0) {
			tars_unlock_stats(data_pages(q) << tars_g.page_shift, q->flags);
			kept_pages -= data_pages(q);
			q->kept = 0;
			q->closed = 1;
		}
	}
	while (quar_n >= TARS_QUARANTINE_MAX - 1) {
		quarantine_evict();
	}
}

/* blocks locked.  The freed mapping goes to the ring: 0, or -1 if there
 * is no quarantine (quarantine=0) or the kernel refused (the caller then
 * unmaps it).  Its data pages are wiped. */
static int
quarantine_push(uint8_t *map, size_t len, void *ptr, int kind, uint16_t flags)
{
	quarantine_trim();   /* the options may have been lowered */
	if (TARS_OPT(quarantine) == 0 && (kind == KIND_KEY ||
	    (size_t)TARS_OPT(large_cache) == 0)) {
		return -1;
	}
	size_t dpages = (len >> tars_g.page_shift) - 2;
	struct quarantined q = {map, len, ptr, kind, 0, 1, flags, 0};
	int keep = kind == KIND_LARGE && !(flags & (R_GONE | R_SECRETMEM)) &&
	    kept_pages + dpages <= (size_t)TARS_OPT(large_cache);
	if (keep) {
		q.kept = 1;
		q.policy = tars_policy_now();
		q.closed = TARS_OPT(freed_none) &&
		    tars_os_protect(map + tars_g.page_size, dpages << tars_g.page_shift,
		    PROT_NONE) == 0;
		kept_pages += dpages;
	} else {
		if (tars_os_replace(map, len) != 0) {
			return -1;
		}
		tars_unlock_stats(dpages << tars_g.page_shift, flags);
	}
	*quar_at(quar_n) = q;
	quar_n++;
	tars_blocks.quarantined_pages += len >> tars_g.page_shift;
	quarantine_trim();
	return 0;
}

/* How many later frees a kept mapping of dpages data pages waits before
 * it may be reused: the quarantine, but no more than 256 KiB of blocks
 * (a window of 64 blocks of 200 KiB would hold 12 MiB, or the cache
 * would never serve them); at least one. */
static size_t
reuse_window(size_t dpages)
{
	size_t w = (size_t)TARS_OPT(quarantine);
	size_t cap = (256 * 1024 / tars_g.page_size) / dpages;
	w = w < cap ? w : cap;
	return w < 1 ? 1 : w;
}

/* blocks locked.  A kept mapping for a block of dpages data pages (exact,
 * or at most a quarter larger: the block sits at its end all the same),
 * out of its window, under today's options, made writable: its map (its
 * data pages in *have, its flags in *flags), or NULL. */
static uint8_t *
cache_take(size_t dpages, size_t *have, uint16_t *flags)
{
	uint8_t pol = tars_policy_now();
	size_t best = SIZE_MAX, bi = 0;
	for (size_t i = 0; i < quar_n; i++) {
		struct quarantined *q = quar_at(i);
		size_t n = data_pages(q);
		if (!q->kept || n < dpages || n > dpages + dpages / 4 || q->policy != pol ||
		    quar_n - 1 - i < reuse_window(n) || n >= best) {
			continue;
		}
		best = n;
		bi = i;
	}
	if (best == SIZE_MAX) {
		return NULL;
	}
	struct quarantined *q = quar_at(bi);
	if (q->closed && tars_os_protect(q->map + tars_g.page_size,
	    best << tars_g.page_shift, PROT_READ | PROT_WRITE) != 0) {
		return NULL;   /* the VMA limit: a fresh mapping fails too */
	}
	uint8_t *map = q->map;
	/* Its pages' protections only: the last block's canary and
	 * protection bits are not this one's. */
	*flags = (uint16_t)((q->flags & R_POLICY) | R_REUSED);
	*have = best;
	kept_pages -= best;
	tars_blocks.quarantined_pages -= q->len >> tars_g.page_shift;
	quar_remove(bi);
	tars_blocks.cache_hits++;
	return map;
}

/* blocks locked.  Give back the memory and mlock budget the cache and
 * the free multi-page slots hold: when an allocation fails (mlock=2 at
 * RLIMIT_MEMLOCK, or memory), freed blocks must not be what is in the
 * way.  The pages given back. */
static size_t
large_flush(void)
{
	size_t freed = tars_slab_flush();
	for (size_t i = 0; i < quar_n; i++) {
		struct quarantined *q = quar_at(i);
		if (q->kept && tars_os_replace(q->map, q->len) == 0) {
			tars_unlock_stats(data_pages(q) << tars_g.page_shift, q->flags);
			kept_pages -= data_pages(q);
			freed += data_pages(q);
			q->kept = 0;
			q->closed = 1;
		}
	}
	quarantine_trim();
	return freed;
}

size_t
tars_large_flush(void)
{
	tars_blocks_lock();
	size_t n = large_flush();
	tars_blocks_unlock();
	return n;
}

/* blocks locked.  The quarantined block whose range holds ptr, or NULL. */
static const struct quarantined *
quarantine_find(const void *ptr)
{
	for (size_t i = 0; i < quar_n; i++) {
		const struct quarantined *q = quar_at(i);
		if ((const uint8_t *)ptr >= q->map && (const uint8_t *)ptr < q->map + q->len) {
			return q;
		}
	}
	return NULL;
}

void
tars_block_not_found(const void *ptr, int freeing, const char *func)
{
	tars_blocks_lock();
	const struct quarantined *q = quarantine_find(ptr);
	if (q == NULL && tars_slab_held(ptr)) {
		tars_fatal(func, "%s %p (a large block freed before, its slot in "
		    "quarantine)", freeing ? "double free of" : "use after free of", ptr);
	}
	if (q != NULL) {
		tars_fatal(func, "%s %p (a %s block freed before, in quarantine%s)",
		    freeing ? "double free of" : "use after free of",
		    ptr, q->kind == KIND_KEY ? "key" : "large",
		    q->ptr == ptr ? "" : "; not even its start");
	}
	if (tars_keyarena_quarantined(ptr)) {
		tars_fatal(func, "%s %p (a key block freed before, in quarantine)",
		    freeing ? "double free of" : "use after free of", ptr);
	}
	tars_blocks_unlock();
}

size_t
tars_quarantine_count(void)
{
	return quar_n;
}

size_t
tars_quarantine_kept(void)
{
	return kept_pages;
}

void
tars_blocks_lock(void)
{
	tars_mutex_lock(&tars_blocks.lock, "tars_blocks");
}

void
tars_blocks_unlock(void)
{
	tars_mutex_unlock(&tars_blocks.lock, "tars_blocks");
}

struct region *
tars_block_find(const void *ptr)
{
	tars_blocks_lock();
	struct region *r = tars_region_find(&tars_blocks.regions,
	    (uintptr_t)ptr & ~tars_g.page_mask);
	if (r == NULL) {
		tars_blocks_unlock();
	}
	return r;
}

uint8_t *
tars_large_data(const struct region *r)
{
	return r->data;
}

/* Unmaps a whole block mapping.  At the VMA limit munmap of a whole
 * mapping cannot fail (it needs no split); if the kernel refuses anyway,
 * the pages are made inaccessible and left: the free itself succeeds. */
static void
unmap_fresh(uint8_t *map, size_t len, const char *func)
{
	if (tars_os_unmap(map, len) != 0 && tars_os_protect(map, len, PROT_NONE) != 0) {
		tars_warn_once(&warned_unmap, "%s(): munmap(%p, %zu) and mprotect both "
		    "failed (%s): the wiped pages stay mapped", func, (void *)map, len,
		    strerror(errno));
	}
}

/* Maps memfd_secret pages over the reserved range, with protection prot;
 * 0 or -1 (the range stays reserved). */
int
tars_map_secret(uint8_t *data, size_t len, int prot)
{
	if (atomic_load(&secretmem_broken)) {
		return -1;
	}
	int saved = errno;
	int fd = tars_os_memfd_secret();
	if (fd < 0) {
		if (errno == ENOSYS || errno == EINVAL || errno == EPERM) {
			atomic_store(&secretmem_broken, 1);
		}
		tars_warn_once(&warned_secretmem, "memfd_secret unavailable (%s); keys "
		    "use anonymous memory", strerror(errno));
		errno = saved;
		return -1;
	}
	int ok = ftruncate(fd, (off_t)len) == 0;
	if (ok && tars_os_map(data, len, prot, MAP_SHARED | MAP_FIXED, fd) == NULL) {
		/* A MAP_FIXED mmap that fails (RLIMIT_MEMLOCK counts a
		 * memfd_secret mapping whole) has unmapped the range already:
		 * reserve it again.  If even that is refused (the VMA limit),
		 * the hole makes the caller's next step fail, and it unmaps
		 * its whole mapping. */
		int e = errno;
		ok = 0;
		(void)tars_os_replace(data, len);
		errno = e;
	}
	if (!ok) {
		tars_warn_once(&warned_secretmem, "memfd_secret mapping failed (%s); "
		    "keys use anonymous memory", strerror(errno));
	}
	if (close(fd) != 0 && ok) {
		tars_fatal("tars_malloc_key", "close(memfd_secret) failed: %s", strerror(errno));
	}
	errno = saved;
	return ok ? 0 : -1;
}

/* blocks locked.  A fresh mapping, guard | dpages data pages | guard,
 * writable and protected: its data pages, or NULL with ENOMEM. */
static uint8_t *
map_fresh(size_t dpages, int kind, uint16_t *flags, const char *func)
{
	size_t ps = tars_g.page_size, dlen = dpages * ps;
	uint8_t *map = tars_os_map(NULL, dlen + 2 * ps, PROT_NONE, MAP_PRIVATE, -1);
	if (map == NULL) {
		return NULL;
	}
	uint8_t *data = map + ps;
	*flags = 0;
	int secret = kind == KIND_KEY && TARS_OPT(secretmem) &&
	    tars_map_secret(data, dlen, PROT_READ | PROT_WRITE) == 0;
	if (secret) {
		*flags |= R_SECRETMEM;
	} else if (tars_os_protect(data, dlen, PROT_READ | PROT_WRITE) != 0) {
		unmap_fresh(map, dlen + 2 * ps, func);
		errno = ENOMEM;
		return NULL;
	}
	uint16_t pf;
	if (tars_apply_policy(data, dlen, &pf, secret) != 0) {
		tars_unlock_stats(dlen, pf);
		unmap_fresh(map, dlen + 2 * ps, func);
		errno = ENOMEM;
		return NULL;
	}
	*flags |= pf;
	tars_blocks.guard_pages += 2;
	tars_blocks.cache_misses++;
	return data;
}

void *
tars_large_alloc(size_t size, size_t align, int kind, int zero, const char *func)
{
	struct tars_blocks *p = &tars_blocks;
	size_t ps = tars_g.page_size;
	int saved = errno;
	if (size > ((size_t)1 << 47)) {
		errno = ENOMEM;
		return NULL;
	}
	if (kind == KIND_KEY && tars_keyarena_fits(size)) {
		return tars_keyarena_alloc(size, func);
	}
	size_t rsize = (size + align - 1) & ~(align - 1);
	size_t npages = (rsize + ps - 1) / ps;
	if (npages == 0) {
		npages = 1;
	}
	tars_blocks_lock();
	if (tars_region_reserve(&p->regions) != 0) {
		tars_blocks_unlock();
		return NULL;
	}
	uint8_t *data = NULL;
	uint16_t flags = 0;
	void *slab = NULL;
	unsigned slot = 0;
	size_t dpages = npages;
	for (int attempt = 0; data == NULL && attempt < 2; attempt++) {
		/* The second attempt after the caches gave their memory back. */
		if (attempt == 1 && large_flush() == 0) {
			break;
		}
		if (kind == KIND_LARGE && npages <= SLAB_MAX_PAGES) {
			unsigned cls = tars_slab_class(npages);
			dpages = tars_slab_class_pages(cls);
			data = tars_slab_alloc(cls, &flags, &slab, &slot);
			flags |= R_SLAB;
		} else {
			uint8_t *map = kind == KIND_LARGE ? cache_take(npages, &dpages, &flags)
			    : NULL;
			data = map != NULL ? map + ps : map_fresh(npages, kind, &flags, func);
		}
	}
	if (data == NULL) {
		tars_blocks_unlock();
		errno = ENOMEM;
		return NULL;
	}
	size_t dlen = dpages * ps;
	uint8_t *ptr = data + dlen - rsize;
	if (!zero && TARS_OPT(junk)) {
		memset(ptr, TARS_FREE_JUNK, size);
	} else if (zero && (flags & (R_SLAB | R_REUSED))) {
		memset(ptr, 0, size);   /* reused pages hold the last block's wipe */
	}
	if (TARS_OPT(canary)) {
		tars_canary_fill(data, data, ptr);
		tars_canary_fill(data, ptr + size, data + dlen);
		flags |= R_CANARY;
	}
	flags &= (uint16_t)~R_REUSED;
	flags |= (uint16_t)((PROT_READ | PROT_WRITE) << R_PROT_SHIFT);
	struct region r = {.page = (uintptr_t)ptr & ~tars_g.page_mask, .ptr = ptr,
	    .size = size, .npages = dpages, .kind = (uint16_t)kind, .flags = flags,
	    .data = data, .slab = slab, .slot = slot};
	if (tars_region_insert(&p->regions, &r) != 0) {
		tars_fatal(func, "region table reserve failed");
	}
	if (kind == KIND_KEY) {
		p->key_count++;
		p->key_pages += dpages;
		if (flags & R_SECRETMEM) {
			p->secretmem_pages += dpages;
		}
	} else {
		p->large_count++;
		p->large_pages += dpages;
	}
	p->block_mallocs++;
	p->block_requested += size;
	p->block_reserved += dlen;
	tars_blocks_unlock();
	errno = saved;
	return ptr;
}

void
tars_large_free(struct region *r, void *ptr, size_t expect_size, const char *func)
{
	struct tars_blocks *p = &tars_blocks;
	size_t ps = tars_g.page_size;
	if (ptr != r->ptr) {
		tars_fatal(func, "bogus pointer %p (inside the %s block %p)", ptr,
		    r->kind == KIND_KEY ? "key" : "large", r->ptr);
	}
	if (expect_size != (size_t)-1 && expect_size != r->size) {
		tars_fatal(func, "size %zu does not match the allocated size %zu of %p",
		    expect_size, r->size, ptr);
	}
	if (r->flags & R_ARENA) {
		tars_keyarena_free(r, func);
		return;
	}
	uint8_t *data = r->data;
	size_t dlen = r->npages * ps;
	uint16_t flags = r->flags;
	int prot = flags >> R_PROT_SHIFT;
	int readable = !(flags & R_GONE);
	if (readable && prot != (PROT_READ | PROT_WRITE)) {
		readable = tars_os_protect(data, dlen, PROT_READ | PROT_WRITE) == 0;
	}
	if (readable) {
		if (flags & R_CANARY) {
			const uint8_t *bad = tars_canary_find(data, data, r->ptr);
			if (bad != NULL) {
				tars_fatal(func, "canary corrupted %zu bytes before block %p "
				    "(underflow)", (size_t)((uint8_t *)ptr - bad), ptr);
			}
			bad = tars_canary_find(data, (uint8_t *)ptr + r->size, data + dlen);
			if (bad != NULL) {
				tars_fatal(func, "canary corrupted %zu bytes past the %zu "
				    "of block %p (overflow)",
				    (size_t)(bad - ((uint8_t *)ptr + r->size)), r->size, ptr);
			}
		}
		tars_wipe(ptr, 0, r->size);
	}
	if (r->kind == KIND_KEY) {
		p->key_count--;
		p->key_pages -= r->npages;
		if (flags & R_SECRETMEM) {
			p->secretmem_pages -= r->npages;
		}
	} else {
		p->large_count--;
		p->large_pages -= r->npages;
	}
	p->block_frees++;
	p->block_requested -= r->size;
	p->block_reserved -= dlen;
	int kind = r->kind;
	void *slab = r->slab;
	unsigned slot = r->slot;
	tars_region_delete(&p->regions, r);
	if (flags & R_SLAB) {
		tars_slab_free(slab, slot);
	} else {
		p->guard_pages -= 2;
		if (!readable && !(flags & R_GONE)) {
			flags |= R_GONE;   /* not wiped: never kept for reuse */
		}
		if (quarantine_push(data - ps, dlen + 2 * ps, ptr, kind, flags) != 0) {
			tars_unlock_stats(dlen, flags);
			unmap_fresh(data - ps, dlen + 2 * ps, func);
		}
	}
	tars_blocks_unlock();
}

int
tars_key_protect(void *ptr, int prot, const char *func)
{
	struct region *r = tars_block_find(ptr);
	if (r == NULL && tars_chunk_owns(ptr)) {
		tars_fatal(func, "%p is not a key allocation (use tars_malloc_key)", ptr);
	}
	if (r == NULL) {
		tars_block_not_found(ptr, 0, func);
		tars_fatal(func, "bogus pointer %p (not a tars allocation)", ptr);
	}
	if (r->kind != KIND_KEY) {
		tars_fatal(func, "%p is not a key allocation (use tars_malloc_key)", ptr);
	}
	if (r->ptr != ptr) {
		tars_fatal(func, "bogus pointer %p (inside the key %p)", ptr, r->ptr);
	}
	if (r->flags & R_GONE) {
		tars_blocks_unlock();
		errno = EFAULT;
		return -1;
	}
	int rc = 0;
	if (r->flags & R_ARENA) {
		rc = tars_keyarena_protect(r, prot);
	} else if ((r->flags >> R_PROT_SHIFT) != prot) {
		rc = tars_os_protect(tars_large_data(r), (size_t)r->npages * tars_g.page_size, prot);
		if (rc == 0) {
			r->flags = (uint16_t)((r->flags & ((1u << R_PROT_SHIFT) - 1)) |
			    (unsigned)prot << R_PROT_SHIFT);
		}
	}
	tars_blocks_unlock();
	return rc;
}

/* Fork child (quiescent, blocks locked). */
void
tars_large_after_fork(void)
{
	tars_slab_after_fork();
	for (size_t i = 0; i < quar_n; i++) {
		struct quarantined *q = quar_at(i);
		if (!q->kept) {
			continue;
		}
		/* Locks are not inherited: never reused here (its policy
		 * no longer holds); a dont-fork one is gone altogether. */
		q->policy = 0;
		if (q->flags & R_DONTFORK) {
			(void)tars_os_reserve(q->map + tars_g.page_size,
			    data_pages(q) << tars_g.page_shift);
		}
	}
	struct region_table *t = &tars_blocks.regions;
	for (size_t s = 0; s < t->cap; s++) {
		struct region *r = &t->slots[s];
		if (r->page == 0) {
			continue;
		}
		if (r->flags & (R_DONTFORK | R_SECRETMEM)) {
			/* The data pages are not here; keep their addresses
			 * taken, so no new mapping lands where the table points
			 * (the key arena holds its regions whole). */
			r->flags |= R_GONE;
			if (!(r->flags & R_ARENA)) {
				(void)tars_os_reserve(tars_large_data(r),
				    r->npages * tars_g.page_size);
			}
		} else if (r->flags & R_WIPEFORK) {
			r->flags &= (uint16_t)~R_CANARY;
		}
	}
	tars_keyarena_after_fork();
}

/* Fork child's first call: mlock again (blocks locked). */
void
tars_large_relock(int strict)
{
	(void)strict;   /* live blocks stay usable; only new pages are refused */
	/* What the caches keep is not locked in this child: given back,
	 * rather than handed out unlocked or counted as locked. */
	(void)large_flush();
	tars_slab_relock();
	struct region_table *t = &tars_blocks.regions;
	for (size_t s = 0; s < t->cap; s++) {
		struct region *r = &t->slots[s];
		if (r->page == 0 || !(r->flags & R_LOCKED) || (r->flags & (R_GONE | R_ARENA))) {
			continue;   /* the key arena locks its regions whole */
		}
		if (!tars_relock_range(tars_large_data(r), r->npages * tars_g.page_size,
		    (r->flags >> R_PROT_SHIFT) == PROT_NONE)) {
			r->flags = (uint16_t)((r->flags & ~R_LOCKED) | R_UNLOCKED);
		}
	}
	tars_keyarena_relock(strict);
}
