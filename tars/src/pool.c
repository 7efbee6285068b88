/*
 * pool.c - initialisation, pools, locking, fork handling.
 *
 * Each pool is a struct placed at a random offset in a page of its own,
 * between two PROT_NONE guard pages, with a canary at each end
 * (canary1 = secret ^ address, canary2 = ~canary1) that every entry checks:
 * a linear overwrite of the pool, or a forged pool, is caught at the next
 * call.  Threads are spread round-robin over the pools; a block can be freed
 * from any thread (the owning pool is looked up), and pools outlive threads.
 *
 * Locks are a word each: a plain store while the process has one thread,
 * else a compare-and-swap, a short spin, then a futex sleep (so a thread
 * holding the lock across an mmap does not leave the others spinning).  The
 * critical sections are a few dozen instructions on the hot path, where a
 * pthread mutex would cost as much as the whole allocation.
 */
#include <errno.h>
#include <pthread.h>
#include <linux/futex.h>
#include <sched.h>
#include <sys/syscall.h>
#include <sys/single_threaded.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "chunk.h"

struct tars_global tars_g;
static pthread_mutex_t init_lock = PTHREAD_MUTEX_INITIALIZER;
_Thread_local struct tars_pool *tars_tls_pool;

_Static_assert(sizeof(struct tars_pool) <= 2048, "pool must fit half a page");

static long
futex(atomic_int *word, int op, int val)
{
	return syscall(SYS_futex, (int *)word, op | FUTEX_PRIVATE_FLAG, val, NULL, NULL, 0);
}

/* Contended: spin a little (the holder is usually a few dozen
 * instructions from done), then sleep on the lock word.  State 2 tells the
 * holder that someone sleeps; whoever takes the lock from a sleep keeps
 * state 2, since others may still be waiting. */
void
tars_pool_lock_slow(struct tars_pool *p)
{
	for (unsigned spins = 0; spins < 100; spins++) {
		int free_ = 0;
		if (atomic_load_explicit(&p->lock, memory_order_relaxed) == 0 &&
		    atomic_compare_exchange_weak_explicit(&p->lock, &free_, 1,
		    memory_order_acquire, memory_order_relaxed)) {
			return;
		}
		tars_cpu_relax();
	}
	while (atomic_exchange_explicit(&p->lock, 2, memory_order_acquire) != 0) {
		if (futex(&p->lock, FUTEX_WAIT, 2) != 0 && errno != EAGAIN &&
		    errno != EINTR) {
			tars_fatal("tars_pool_lock", "futex wait: %s", strerror(errno));
		}
	}
}

void
tars_pool_wake(struct tars_pool *p)
{
	int saved = errno;
	if (futex(&p->lock, FUTEX_WAKE, 1) < 0) {
		tars_fatal("tars_pool_unlock", "futex wake: %s", strerror(errno));
	}
	errno = saved;
}

void
tars_pool_corrupted(const struct tars_pool *p, const char *func)
{
	tars_fatal(func, "pool canary corrupted (pool %u at %p)", p->index,
	    (const void *)p);
}

/* init_lock held. */
static void
init_basic_locked(void)
{
	if (atomic_load_explicit(&tars_g.basic_ready, memory_order_relaxed)) {
		return;
	}
	long ps = sysconf(_SC_PAGESIZE);
	if (ps < 4096 || (ps & (ps - 1)) != 0) {
		tars_fatal("tars_init", "unsupported page size %ld", ps);
	}
	tars_g.page_mask = (uintptr_t)ps - 1;
	tars_g.page_shift = (unsigned)__builtin_ctzl((unsigned long)ps);
	tars_region_page_shift = tars_g.page_shift;
	tars_g.chunk_max = (size_t)ps / 2 < TARS_CHUNK_MAX ? (size_t)ps / 2 : TARS_CHUNK_MAX;
	size_t slots = (size_t)ps / TARS_ALIGN;
	tars_g.map_words = (slots + 63) / 64;
	size_t info = sizeof(struct chunk_info) + tars_g.map_words * 8 + slots * 2;
	tars_g.info_size = (info + 15) & ~(size_t)15;
	uint64_t rnd[2];
	if (tars_os_random(rnd, sizeof(rnd)) != 0) {
		tars_fatal("tars_init", "getrandom failed");
	}
	tars_g.secret = rnd[0];
	memcpy(tars_g.canary_bytes, &rnd[1], 8);
	for (int i = 0; i < 8; i++) {
		/* Never 0: a string terminator must not match the canary. */
		if (tars_g.canary_bytes[i] == 0) {
			tars_g.canary_bytes[i] = 0xa5;
		}
	}
	tars_chunk_init();
	tars_g.page_size = (size_t)ps;
	tars_options_init();
	atomic_store_explicit(&tars_g.basic_ready, 1, memory_order_release);
}

void
tars_init_basic(void)
{
	if (likely(atomic_load_explicit(&tars_g.basic_ready, memory_order_acquire))) {
		return;
	}
	pthread_mutex_lock(&init_lock);
	init_basic_locked();
	pthread_mutex_unlock(&init_lock);
}

static struct tars_pool *
pool_create(unsigned index)
{
	size_t ps = tars_g.page_size;
	uint8_t *map = tars_os_map(NULL, 3 * ps, PROT_NONE, MAP_PRIVATE, -1);
	if (map == NULL || tars_os_protect(map + ps, ps, PROT_READ | PROT_WRITE) != 0) {
		tars_fatal("tars_init", "cannot map pool %u", index);
	}
	uint32_t r;
	if (tars_os_random(&r, sizeof(r)) != 0) {
		tars_fatal("tars_init", "getrandom failed");
	}
	size_t room = (ps - sizeof(struct tars_pool)) / 64;
	struct tars_pool *p = (struct tars_pool *)(void *)(map + ps + (r % (room + 1)) * 64);
	memset(p, 0, sizeof(*p));
	p->index = index;
	p->mapping = map;
	tars_rand_seed(&p->rnd);
	if (tars_region_init(&p->regions, 512) != 0) {
		tars_fatal("tars_init", "cannot map the region table of pool %u", index);
	}
	size_t cache_bytes = TARS_CACHE_MAX * sizeof(uintptr_t);
	p->cache = tars_os_map(NULL, cache_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE, -1);
	if (p->cache == NULL) {
		tars_fatal("tars_init", "cannot map the page cache of pool %u", index);
	}
	atomic_fetch_add(&tars_meta_pages, 1 + cache_bytes / ps);
	p->guard_pages = 2;
	p->canary1 = tars_g.secret ^ (uintptr_t)p;
	p->canary2 = ~p->canary1;
	return p;
}

static void
fork_prepare(void)
{
	pthread_mutex_lock(&init_lock);
	for (unsigned i = 0; i < tars_g.npools; i++) {
		tars_pool_lock(tars_g.pools[i]);
	}
}

static void
fork_parent(void)
{
	for (unsigned i = tars_g.npools; i-- > 0;) {
		tars_pool_unlock(tars_g.pools[i]);
	}
	pthread_mutex_unlock(&init_lock);
}

/* In the child, pages mapped MADV_WIPEONFORK read as zeros and pages mapped
 * MADV_DONTFORK are gone: fix the bookkeeping so that freeing inherited
 * blocks neither trips a canary nor touches a missing page. */
static void
fork_child(void)
{
	for (unsigned i = 0; i < tars_g.npools; i++) {
		struct tars_pool *p = tars_g.pools[i];
		p->rnd.need_reseed = 1;
		p->rnd.avail = 0;
		if (p->run_flags & R_DONTFORK) {
			p->run_left = 0;
		}
		size_t kept = 0;
		for (size_t c = 0; c < p->ncached; c++) {
			if (!(p->cache[c] & CI_DONTFORK)) {
				p->cache[kept++] = p->cache[c];
			}
		}
		p->ncached = kept;
		for (size_t s = 0; s < p->regions.cap; s++) {
			struct region *r = &p->regions.slots[s];
			if (r->page == 0) {
				continue;
			}
			if (r->kind == KIND_CHUNK) {
				tars_chunk_after_fork(p, r);
			} else {
				tars_large_after_fork(r);
			}
		}
	}
	/* Memory locks are not inherited: the child's pages must be locked
	 * again before it puts secrets in them.  That is done on the child's
	 * first call into tars (see relock), not here, so that fork+exec pays
	 * nothing; clearing the thread's pool pointer routes that first call
	 * through tars_pool_assign. */
	tars_g.relock_pending = 1;
	tars_tls_pool = NULL;
	for (unsigned i = tars_g.npools; i-- > 0;) {
		tars_pool_unlock(tars_g.pools[i]);
	}
	pthread_mutex_unlock(&init_lock);
}

static atomic_int warned_relock;

/* Lock [addr, addr+len) again; on failure move its bytes from locked to
 * unlocked in the statistics and return 0 so the caller re-flags it (its
 * later release must not take the bytes off `locked` a second time).
 * mlock refuses PROT_NONE ranges (ENOMEM): a closed range is opened for
 * the call and closed again. */
static int
relock_range(struct tars_pool *p, void *addr, size_t len, int closed)
{
	if (closed && tars_os_protect(addr, len, PROT_READ) != 0) {
		closed = 0;   /* cannot open it: the mlock below fails and says so */
	}
	int rc = tars_os_lock(addr, len);
	if (closed && tars_os_protect(addr, len, PROT_NONE) != 0) {
		tars_fatal("fork", "cannot close %p again after mlock", addr);
	}
	if (rc != 0) {
		tars_warn_once(&warned_relock, "mlock after fork failed (%s): some "
		    "pages are not locked in this process", strerror(errno));
		p->locked_bytes -= len;
		p->unlocked_bytes += len;
		return 0;
	}
	return 1;
}

/* R_LOCKED becomes R_UNLOCKED unless the relock worked. */
static unsigned
relocked(unsigned flags, int ok)
{
	return ok ? flags : (flags & ~(unsigned)R_LOCKED) | R_UNLOCKED;
}

/* In a fork child, lock again every page tars had locked (pool locked). */
static void
relock(struct tars_pool *p)
{
	size_t ps = tars_g.page_size;
	int saved = errno;
	/* Under mlock=2 a page that cannot be locked again must not receive
	 * new secrets: reserve and cached pages are unmapped, chunk pages
	 * retired (their live blocks can still be freed). */
	int strict = TARS_OPT(mlock) == 2;
	if ((p->run_flags & R_LOCKED) && p->run_left > 0) {
		p->run_flags = (uint16_t)relocked(p->run_flags,
		    relock_range(p, p->run_next, p->run_left * ps, 0));
		if (strict && (p->run_flags & R_UNLOCKED)) {
			tars_os_unmap("fork", p->run_next, p->run_left * ps);
			tars_unlock_stats(p, p->run_left * ps, p->run_flags);
			p->run_left = 0;
		}
	}
	size_t kept = 0;
	for (size_t c = 0; c < p->ncached; c++) {
		uintptr_t e = p->cache[c];
		void *page = (void *)(e & ~tars_g.page_mask);
		if (e & CI_LOCKED) {
			e = relocked((unsigned)e, relock_range(p, page, ps, 1)) |
			    (e & ~tars_g.page_mask);
		}
		if (strict && (e & CI_UNLOCKED)) {
			tars_os_unmap("fork", page, ps);
			tars_unlock_stats(p, ps, (uint16_t)(e & CI_POLICY));
		} else {
			p->cache[kept++] = e;
		}
	}
	p->ncached = kept;
	for (size_t s = 0; s < p->regions.cap; s++) {
		struct region *r = &p->regions.slots[s];
		if (r->page == 0 || !(r->flags & R_LOCKED) || (r->flags & R_GONE)) {
			continue;
		}
		int ok;
		if (r->kind == KIND_CHUNK) {
			struct chunk_info *ci = r->ptr;
			ok = relock_range(p, ci->page, ps, 0);
			ci->flags = (uint8_t)relocked(ci->flags, ok);
			if (!ok && strict) {
				ci->flags |= CI_RETIRED;
				if (ci->pprev != NULL) {
					tars_chunk_list_remove(p, ci);
				}
			}
		} else {
			ok = relock_range(p, tars_large_data(r), (size_t)r->npages * ps,
			    (r->flags >> R_PROT_SHIFT) == PROT_NONE);
		}
		r->flags = (uint16_t)relocked(r->flags, ok);
	}
	errno = saved;
}

void
tars_init_slow(void)
{
	pthread_mutex_lock(&init_lock);
	if (atomic_load(&tars_g.ready)) {
		pthread_mutex_unlock(&init_lock);
		return;
	}
	init_basic_locked();
	unsigned n = (unsigned)TARS_OPT(pools);
	for (unsigned i = 0; i < n; i++) {
		tars_g.pools[i] = pool_create(i);
	}
	tars_g.npools = n;
	if (pthread_atfork(fork_prepare, fork_parent, fork_child) != 0) {
		tars_fatal("tars_init", "pthread_atfork failed");
	}
	/* Always registered: `stats` may be switched on later. */
	if (atexit(tars_stats_atexit) != 0) {
		tars_fatal("tars_init", "atexit failed");
	}
	tars_options_seal();
	atomic_store_explicit(&tars_g.ready, 1, memory_order_release);
	pthread_mutex_unlock(&init_lock);
}

struct tars_pool *
tars_pool_assign(void)
{
	tars_init();
	if (unlikely(tars_g.relock_pending)) {
		pthread_mutex_lock(&init_lock);
		if (tars_g.relock_pending) {
			for (unsigned i = 0; i < tars_g.npools; i++) {
				tars_pool_lock(tars_g.pools[i]);
				relock(tars_g.pools[i]);
				tars_pool_unlock(tars_g.pools[i]);
			}
			tars_g.relock_pending = 0;
		}
		pthread_mutex_unlock(&init_lock);
	}
	unsigned idx = atomic_fetch_add(&tars_g.next_pool, 1) % tars_g.npools;
	tars_tls_pool = tars_g.pools[idx];
	return tars_tls_pool;
}

/* ptr's page is not in `first` (locked): unlock it and try the others. */
struct region *
tars_find_region_slow(const void *ptr, struct tars_pool **poolp,
    struct tars_pool *first, const char *func)
{
	uintptr_t page = (uintptr_t)ptr & ~tars_g.page_mask;
	tars_pool_unlock(first);
	for (unsigned i = 0; i < tars_g.npools; i++) {
		struct tars_pool *p = tars_g.pools[i];
		if (p == first) {
			continue;
		}
		tars_pool_lock(p);
		tars_pool_check(p, func);
		struct region *r = tars_region_find(&p->regions, page);
		if (r != NULL) {
			*poolp = p;
			return r;
		}
		tars_pool_unlock(p);
	}
	return NULL;
}

uint64_t *
tars_test_pool_canary(void)
{
	tars_init();
	return &tars_g.pools[0]->canary1;
}
