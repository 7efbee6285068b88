/*
 * heap.c - thread-owned heaps: creation, adoption, abandonment at thread
 * exit, quiescent points, and collection of slots other threads freed.
 *
 * See heap.h for the entry protocol.  Everything here is off the hot path:
 * a thread's first call, a thread's exit, a class running out of slots.
 */
#include <errno.h>
#include <linux/futex.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "chunk.h"

_Thread_local struct tars_heap *tars_tls_heap;
atomic_int tars_quiesce;

static pthread_mutex_t heaps_lock = PTHREAD_MUTEX_INITIALIZER;
static struct tars_heap *heaps_all;        /* every heap, newest first */
static struct tars_heap *heaps_abandoned;  /* heaps no thread owns */
static unsigned heaps_count;
static pthread_key_t heap_key;
static int heap_key_made;

_Static_assert(sizeof(struct tars_heap) <= 3584, "a heap must fit a page with room to move");


void
tars_heap_corrupted(const struct tars_heap *h, const char *func)
{
	tars_fatal(func, "heap canary corrupted (heap %u at %p)", h->index, (const void *)h);
}

/* A heap in a page of its own, between two PROT_NONE guard pages, at a
 * random 64-byte aligned offset: a linear overwrite from anywhere runs
 * into a guard, and the heap's address cannot be guessed from another's.
 * NULL with ENOMEM. */
static struct tars_heap *
heap_create(void)
{
	size_t ps = tars_g.page_size;
	uint8_t *map = tars_os_map(NULL, 3 * ps, PROT_NONE, MAP_PRIVATE, -1);
	if (map == NULL) {
		return NULL;
	}
	uint32_t r;
	if (tars_os_protect(map + ps, ps, PROT_READ | PROT_WRITE) != 0 ||
	    tars_os_random(&r, sizeof(r)) != 0) {
		(void)tars_os_unmap(map, 3 * ps);
		errno = ENOMEM;
		return NULL;
	}
	size_t room = (ps - sizeof(struct tars_heap)) / 64;
	struct tars_heap *h = (struct tars_heap *)(void *)(map + ps + (r % (room + 1)) * 64);
	memset(h, 0, sizeof(*h));
	h->mapping = map;
	if (tars_rand_seed(&h->rnd) != 0) {
		(void)tars_os_unmap(map, 3 * ps);
		errno = ENOMEM;
		return NULL;
	}
	h->canary1 = tars_g.secret ^ (uintptr_t)h;
	h->canary2 = ~h->canary1;
	atomic_fetch_add(&tars_meta_pages, 1);
	return h;
}

/* Thread exit (the key's destructor): the heap waits for a new owner. */
static void
heap_abandon(void *arg)
{
	struct tars_heap *h = arg;
	if (tars_tls_heap == h) {
		tars_tls_heap = NULL;
	}
	tars_mutex_lock(&heaps_lock, "tars_heap_abandon");
	if (h->owned) {   /* a fork child's thread may hold a stale value */
		h->owned = 0;
		h->free_next = heaps_abandoned;
		heaps_abandoned = h;
	}
	tars_mutex_unlock(&heaps_lock, "tars_heap_abandon");
}

/* Called once, from tars_init_slow (init lock held). */
int
tars_heaps_init(void)
{
	if (!heap_key_made) {
		int rc = pthread_key_create(&heap_key, heap_abandon);
		if (rc != 0) {
			errno = rc == EAGAIN ? ENOMEM : rc;
			return -1;
		}
		heap_key_made = 1;
	}
	return 0;
}

struct tars_heap *
tars_heap_acquire(void)
{
	if (tars_init() != 0) {
		return NULL;
	}
	int saved = errno;
	if (unlikely(tars_g.relock_pending)) {
		tars_fork_relock();
	}
	tars_mutex_lock(&heaps_lock, "tars_heap_acquire");
	struct tars_heap *h = heaps_abandoned;
	if (h != NULL) {
		heaps_abandoned = h->free_next;
		h->free_next = NULL;
	} else {
		h = heap_create();
		if (h == NULL) {
			tars_mutex_unlock(&heaps_lock, "tars_heap_acquire");
			errno = ENOMEM;
			return NULL;
		}
		h->index = heaps_count++;
		h->all_next = heaps_all;
		heaps_all = h;
	}
	h->owned = 1;
	tars_mutex_unlock(&heaps_lock, "tars_heap_acquire");
	/* Failing to register the destructor only means the heap is not
	 * adopted after this thread exits. */
	(void)pthread_setspecific(heap_key, h);
	tars_tls_heap = h;
	errno = saved;
	return h;
}

static _Thread_local unsigned noheap_depth;

struct tars_heap *
tars_enter_slow(const char *func)
{
	if (noheap_depth > 0) {
		noheap_depth++;
		return NULL;
	}
	struct tars_heap *h = tars_heap_acquire();
	if (h != NULL) {
		tars_heap_enter(h);
		tars_heap_check(h, func);
		return h;
	}
	int saved = errno;
	tars_mutex_lock(&heaps_lock, func);
	noheap_depth = 1;
	errno = saved;
	return NULL;
}

void
tars_leave_noheap(void)
{
	if (--noheap_depth == 0) {
		tars_mutex_unlock(&heaps_lock, "tars_leave");
	}
}

struct tars_heap *
tars_heaps_first(void)
{
	return heaps_all;
}

unsigned
tars_heaps_count(void)
{
	return heaps_count;
}

void
tars_heaps_lock(void)
{
	tars_mutex_lock(&heaps_lock, "tars_heaps_lock");
}

void
tars_heaps_unlock(void)
{
	tars_mutex_unlock(&heaps_lock, "tars_heaps_unlock");
}

/* ---- quiescent points --------------------------------------------------- */

static long
futex(atomic_int *word, int op, int val)
{
	return syscall(SYS_futex, (int *)word, op | FUTEX_PRIVATE_FLAG, val, NULL, NULL, 0);
}

void
tars_heap_wait(struct tars_heap *h)
{
	(void)h;
	int saved = errno;
	int q;
	while ((q = atomic_load_explicit(&tars_quiesce, memory_order_acquire)) & QUIESCE_ON) {
		if (futex(&tars_quiesce, FUTEX_WAIT, q) != 0 && errno != EAGAIN &&
		    errno != EINTR) {
			tars_fatal("tars_heap_wait", "futex wait: %s", strerror(errno));
		}
	}
	errno = saved;
}

/* heaps_lock held (no heap is made or adopted meanwhile). */
void
tars_quiesce_begin(void)
{
	int q = atomic_fetch_or_explicit(&tars_quiesce, QUIESCE_ON, memory_order_seq_cst);
	/* No heap yet (a fork before the first allocation): nothing to wait
	 * for, and membarrier is not registered yet either. */
	if (heaps_all != NULL && !(q & QUIESCE_FENCE) && tars_os_membarrier() != 0) {
		tars_fatal("tars_quiesce", "membarrier failed: %s", strerror(errno));
	}
	struct tars_heap *mine = tars_tls_heap;
	for (struct tars_heap *h = heaps_all; h != NULL; h = h->all_next) {
		if (h == mine) {
			continue;   /* the caller is not inside tars */
		}
		for (unsigned spins = 0; atomic_load_explicit(&h->busy,
		    memory_order_acquire) != 0; spins++) {
			if (spins < 64) {
				tars_cpu_relax();
			} else {
				sched_yield();
			}
		}
	}
}

void
tars_quiesce_end(void)
{
	atomic_fetch_and_explicit(&tars_quiesce, ~QUIESCE_ON, memory_order_release);
	int saved = errno;
	if (futex(&tars_quiesce, FUTEX_WAKE, 0x7fffffff) < 0) {
		tars_fatal("tars_quiesce", "futex wake: %s", strerror(errno));
	}
	errno = saved;
}

/* Fork child (quiescent, heaps_lock held): only the forking thread
 * exists.  Every heap is abandoned, its own included, so that the child's
 * first call goes through tars_heap_acquire, which locks the pages again
 * before any secret goes there; heaps are adopted with their blocks, empty
 * pages and pending frees. */
void
tars_heaps_after_fork(void)
{
	for (struct tars_heap *h = heaps_all; h != NULL; h = h->all_next) {
		atomic_store_explicit(&h->busy, 0, memory_order_relaxed);
		h->last_page = 0;   /* records may be flagged gone or retired */
		h->rnd.need_reseed = 1;
		h->rnd.avail = 0;
		if (h->owned) {
			h->owned = 0;
			h->free_next = heaps_abandoned;
			heaps_abandoned = h;
		}
	}
	tars_tls_heap = NULL;
	noheap_depth = 0;
	if (heap_key_made) {
		(void)pthread_setspecific(heap_key, NULL);
	}
	atomic_fetch_and_explicit(&tars_quiesce, ~QUIESCE_ON, memory_order_relaxed);
}

/* ---- collection of remote frees ----------------------------------------- */

void
tars_heap_collect(struct tars_heap *h)
{
	if (atomic_load_explicit(&h->pending, memory_order_relaxed) == NULL) {
		return;
	}
	struct chunk_info *ci = atomic_exchange_explicit(&h->pending, NULL,
	    memory_order_acquire);
	long random = TARS_OPT(random);
	while (ci != NULL) {
		struct chunk_info *next = ci->pnext;
		/* Cleared before the bits are taken: a slot freed after its word
		 * was read queues the page again (see remote.c). */
		atomic_store_explicit(&ci->queued, 0, memory_order_seq_cst);
		unsigned got = 0;
		for (unsigned w = 0; w < ci->words; w++) {
			uint64_t x = __atomic_exchange_n(&ci_xfree(ci)[w], 0, __ATOMIC_SEQ_CST);
			if (x == 0) {
				continue;
			}
			uint64_t m = map_load(ci, w);
			if (unlikely(x & m)) {
				unsigned slot = w * 64 + (unsigned)__builtin_ctzll(x & m);
				tars_chunk_double_free(ci->page + (size_t)slot * ci->size,
				    "freed by two threads", "tars_malloc");
			}
			/* A remote free that raced the owner's delayed free of
			 * the same block passed its check before the flag was
			 * set: the pair is caught here, before either frees. */
			for (uint64_t y = h->ndelayed != 0 ? x : 0; y != 0; y &= y - 1) {
				unsigned slot = w * 64 + (unsigned)__builtin_ctzll(y);
				if (unlikely(ci_req(ci)[slot] & REQ_DELAYED)) {
					tars_chunk_double_free(ci->page + (size_t)slot * ci->size,
					    "freed by two threads", "tars_malloc");
				}
			}
			map_store(ci, w, m | x);
			got += (unsigned)__builtin_popcountll(x);
		}
		if (__atomic_exchange_n(&ci->xzeroed, 0, __ATOMIC_ACQUIRE)) {
			ci->flags &= (uint8_t)~CI_JUNKED;
		}
		if (got != 0) {
			h->collected += got;
			unsigned before = ci->nfree;
			ci->nfree = (uint16_t)(before + got);
			if (ci->flags & CI_NOLIST) {
				if (ci->nfree == ci->total) {
					tars_chunk_release(h, ci);
				}
			} else {
				if (before == 0) {
					heap_list_insert(h, ci, random, 0);
				}
				if (ci->nfree == ci->total && !ci->in_empty) {
					heap_empty_push(h, ci);
				}
			}
		}
		ci = next;
	}
	if (h->nempty > (size_t)TARS_OPT(spare)) {
		tars_heap_trim(h);
	}
}

uint64_t *
tars_test_heap_canary(void)
{
	struct tars_heap *h = tars_tls_heap;
	if (h == NULL) {
		h = tars_heap_acquire();
	}
	return h == NULL ? NULL : &h->canary1;
}
