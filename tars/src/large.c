/*
 * large.c - large blocks (> chunk_max) and keys: one mapping each,
 *
 *     | guard | data pages ................................ | guard |
 *             | canary .. | block ......... | canary (<16) |
 *
 * with the block placed at the END of its pages (its end 16-byte aligned,
 * or `align`-aligned) so that an overflow runs into the trailing guard page
 * at once.  The slack in front of the block and the padding behind it hold
 * the canary pattern (canary=1), checked at free: a small underflow, which
 * lands inside the first data page rather than the guard, is caught there.
 *
 * Keys never share pages, so tars_protect_* can switch them between
 * PROT_NONE, PROT_READ and read-write.  With secretmem=1 their data pages
 * come from memfd_secret(2): gone from the kernel's direct map.
 *
 * Large and key blocks are found through one global table under one lock
 * (tars_blocks): each costs system calls anyway, so a lock per call is
 * noise, and a block freed or protected from any thread is found at once.
 * The lock is only taken inside a heap entry, so a quiescent point (fork)
 * never sees it held.
 *
 * Quarantine.  A freed block's address is not handed back at once (the
 * next mmap of the same size would return it, and a stale pointer would
 * read the next block's secret; a second free would free the new block).
 * The freed mapping, guards and data, is replaced by one PROT_NONE
 * reservation (its memory and lock go back to the kernel) and held in a
 * FIFO of `quarantine` blocks; only when it leaves the FIFO is it unmapped.
 * Within that window a stale pointer faults and a second free aborts with
 * "double free".  The cost: one mmap instead of one munmap per free (the
 * same system call count), and at most `quarantine` PROT_NONE ranges of
 * address space (one VMA each) with no memory behind them.
 */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "tars_internal.h"

static atomic_int secretmem_broken, warned_secretmem, warned_unmap;

struct tars_blocks tars_blocks = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* The quarantine: a ring of freed mappings, oldest at quar_head. */
struct quarantined {
	uint8_t *map;        /* guard | data | guard, all PROT_NONE now */
	size_t len;
	void *ptr;           /* the user pointer it had */
	int kind;
};
static struct quarantined *quar;
static size_t quar_head, quar_n;

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

/* blocks locked.  The oldest quarantined mapping leaves: unmapped. */
static void
quarantine_evict(void)
{
	struct quarantined *q = &quar[quar_head];
	/* A whole mapping: munmap needs no split, the VMA limit cannot
	 * refuse it; should it fail anyway, the range stays PROT_NONE. */
	(void)tars_os_unmap(q->map, q->len);
	tars_blocks.quarantined_pages -= q->len >> tars_g.page_shift;
	quar_head = (quar_head + 1) % TARS_QUARANTINE_MAX;
	quar_n--;
}

/* blocks locked.  The freed mapping goes to the quarantine: 0, or -1 if
 * there is none (quarantine=0) or the kernel refused the reservation. */
static int
quarantine_push(uint8_t *map, size_t len, void *ptr, int kind)
{
	size_t max = (size_t)TARS_OPT(quarantine);
	while (quar_n > 0 && quar_n >= max) {
		quarantine_evict();
	}
	if (max == 0 || tars_os_map(map, len, PROT_NONE,
	    MAP_PRIVATE | MAP_FIXED | MAP_NORESERVE, -1) == NULL) {
		return -1;
	}
	quar[(quar_head + quar_n) % TARS_QUARANTINE_MAX] =
	    (struct quarantined){map, len, ptr, kind};
	quar_n++;
	tars_blocks.quarantined_pages += len >> tars_g.page_shift;
	return 0;
}

/* blocks locked.  The quarantined block whose range holds ptr, or NULL. */
static const struct quarantined *
quarantine_find(const void *ptr)
{
	for (size_t i = 0; i < quar_n; i++) {
		const struct quarantined *q = &quar[(quar_head + i) % TARS_QUARANTINE_MAX];
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
	/* The block starts inside the first data page; a zero-size key sits
	 * right at the trailing guard. */
	uintptr_t p = (uintptr_t)r->ptr;
	if (r->size == 0) {
		p -= tars_g.page_size;
	}
	return (uint8_t *)(p & ~tars_g.page_mask);
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
 * 0 or -1 (the range stays as it was). */
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
		(void)tars_os_map(data, len, PROT_NONE, MAP_PRIVATE | MAP_FIXED | MAP_NORESERVE, -1);
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
	size_t dlen = npages * ps;
	tars_blocks_lock();
	if (tars_region_reserve(&p->regions) != 0) {
		tars_blocks_unlock();
		return NULL;
	}
	uint8_t *map = tars_os_map(NULL, dlen + 2 * ps, PROT_NONE, MAP_PRIVATE, -1);
	if (map == NULL) {
		tars_blocks_unlock();
		return NULL;
	}
	uint8_t *data = map + ps;
	uint16_t flags = 0;
	int secret = kind == KIND_KEY && TARS_OPT(secretmem) &&
	    tars_map_secret(data, dlen, PROT_READ | PROT_WRITE) == 0;
	if (secret) {
		flags |= R_SECRETMEM;
	} else if (tars_os_protect(data, dlen, PROT_READ | PROT_WRITE) != 0) {
		unmap_fresh(map, dlen + 2 * ps, func);
		tars_blocks_unlock();
		errno = ENOMEM;
		return NULL;
	}
	uint16_t pf;
	if (tars_apply_policy(data, dlen, &pf, secret) != 0) {
		tars_unlock_stats(dlen, pf);
		unmap_fresh(map, dlen + 2 * ps, func);
		tars_blocks_unlock();
		errno = ENOMEM;
		return NULL;
	}
	flags |= pf;
	uint8_t *ptr = data + dlen - rsize;
	if (!zero && TARS_OPT(junk)) {
		memset(ptr, TARS_FREE_JUNK, size);
	}
	if (TARS_OPT(canary)) {
		tars_canary_fill(data, data, ptr);
		tars_canary_fill(data, ptr + size, data + dlen);
		flags |= R_CANARY;
	}
	flags |= (uint16_t)((PROT_READ | PROT_WRITE) << R_PROT_SHIFT);
	struct region r = {.page = (uintptr_t)ptr & ~tars_g.page_mask, .ptr = ptr,
	    .size = size, .npages = (uint32_t)npages, .kind = (uint16_t)kind,
	    .flags = flags};
	if (tars_region_insert(&p->regions, &r) != 0) {
		tars_fatal(func, "region table reserve failed");
	}
	if (kind == KIND_KEY) {
		p->key_count++;
		p->key_pages += npages;
		if (secret) {
			p->secretmem_pages += npages;
		}
	} else {
		p->large_count++;
		p->large_pages += npages;
	}
	p->guard_pages += 2;
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
	uint8_t *data = tars_large_data(r);
	size_t dlen = (size_t)r->npages * ps;
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
	p->guard_pages -= 2;
	p->block_frees++;
	p->block_requested -= r->size;
	p->block_reserved -= dlen;
	tars_unlock_stats(dlen, flags);
	int kind = r->kind;
	tars_region_delete(&p->regions, r);
	if (quarantine_push(data - ps, dlen + 2 * ps, ptr, kind) != 0) {
		unmap_fresh(data - ps, dlen + 2 * ps, func);
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
