/*
 * heap.h - thread-owned heaps.
 *
 * Every thread allocates chunks from a heap it owns (tars_tls_heap): the
 * class lists, the empty-page list, the random stream and the counters are
 * touched by the owner only, so a local malloc or free takes no lock and
 * makes no atomic read-modify-write.  Others reach a heap in two ways only:
 *
 *   - a free from another thread (remote.c) marks the slot in the page's
 *     atomic `xfree` bitmap and pushes the page on the heap's lock-free
 *     `pending` stack; the owner collects such slots when it runs out;
 *   - a quiescent point (fork, tars_stats_get): the quiescer raises
 *     tars_quiesce and waits until no heap is `busy`.
 *
 * The entry protocol is an asymmetric Dekker: the owner stores busy = 1 and
 * then loads tars_quiesce with only a compiler barrier between; the
 * quiescer stores tars_quiesce = 1, runs membarrier(2) (a full barrier on
 * every thread of the process), then loads every heap's busy.  Either the
 * owner sees the flag and backs off, or the quiescer sees busy and waits.
 * Where membarrier is unavailable (old kernels, seccomp, valgrind, TSan),
 * entries pay a full fence instead (QUIESCE_FENCE).
 *
 * Heaps outlive threads: a thread that exits leaves its heap on the
 * abandoned list, and the next thread that needs one adopts it, live
 * blocks, empty pages and pending frees included.
 */
#ifndef TARS_HEAP_H
#define TARS_HEAP_H

#include "tars_internal.h"

#pragma GCC visibility push(hidden)

struct chunk_info;

#define TARS_DELAY 16   /* slots of the delayed-free queue (option delay) */

struct tars_delayed {
	void *ptr;                   /* freed, wiped, not yet released */
	struct chunk_info *ci;       /* its page's record; NULL: empty entry */
};

struct tars_heap {
	/* Read by other threads (a remote free checks the canary, pushes to
	 * `pending`): kept off the cache lines the owner writes on every
	 * call, or each remote free would take that line from the owner. */
	uint64_t canary1;            /* tars_g.secret ^ (uintptr_t)heap */
	unsigned index;
	_Alignas(64) _Atomic(struct chunk_info *) pending; /* remotely freed pages */
	_Alignas(64) atomic_uint busy;   /* entry depth; written by the owner */
	struct chunk_info *lists[TARS_NCLASSES][TARS_NLISTS]; /* pages with free slots */
	struct chunk_info *current[TARS_NCLASSES]; /* a listed page, or NULL */
	uint32_t listed[TARS_NCLASSES];            /* pages in the class lists */
	/* Empty pages (every slot free, still listed in their class), oldest
	 * first: kept writable and wiped up to `spare`, re-carved for another
	 * class before a fresh page is taken. */
	struct chunk_info *empty_old, *empty_new;
	size_t nempty;
	struct tars_delayed delayed[TARS_DELAY];
	unsigned ndelayed;           /* entries in use */
	/* The last page this heap freed into, and its record: a free into
	 * the same page (the common case of a malloc/free loop) skips the
	 * pagemap.  Reset whenever that page's record changes. */
	uintptr_t last_page;
	struct chunk_info *last_ci;
	struct tars_rand rnd;
	struct tars_heap *all_next;  /* every heap (heaps_lock) */
	struct tars_heap *free_next; /* abandoned heaps (heaps_lock) */
	int owned;                   /* a live thread owns it (heaps_lock) */
	uint8_t *mapping;            /* guard | heap page | guard */
	/* statistics, written by the owner */
	uint64_t class_mallocs[TARS_NCLASSES];
	uint64_t remote_frees;       /* slots this heap's threads freed for others */
	uint64_t collected;          /* slots others freed, collected here */
	uint64_t recarved;           /* empty pages carved again for another class */
	size_t chunk_pages, zero_pages;
	uint64_t canary2;            /* ~canary1 */
};

extern _Thread_local struct tars_heap *tars_tls_heap
    __attribute__((tls_model("initial-exec")));
extern atomic_int tars_quiesce;

/* Once, at initialisation: the thread-exit hook. 0 or -1 with errno. */
int tars_heaps_init(void);
/* heaps_lock: heap creation and adoption, and every quiescent point. */
void tars_heaps_lock(void);
void tars_heaps_unlock(void);
unsigned tars_heaps_count(void);
/* fork.c: the atfork handlers (once), and a fork child's first call,
 * which locks its pages again. */
int tars_fork_hooks(void);
void tars_fork_relock(void);

/* The calling thread's heap, adopted or created; NULL with errno ENOMEM. */
struct tars_heap *tars_heap_acquire(void);
/* Wait out a quiescent point (busy was raised, tars_quiesce seen). */
void tars_heap_wait(struct tars_heap *h);
TARS_NORETURN void tars_heap_corrupted(const struct tars_heap *h, const char *func);

/* Quiescent point: every heap idle, no heap created, until the end.  The
 * caller must not be inside tars. */
void tars_quiesce_begin(void);
void tars_quiesce_end(void);
/* Fork child: heaps of threads that do not exist here are abandoned. */
void tars_heaps_after_fork(void);
/* Iterate every heap (quiescent). */
struct tars_heap *tars_heaps_first(void);

/* Collect the slots other threads freed into h's pages. */
void tars_heap_collect(struct tars_heap *h);
/* Keep at most `spare` empty pages: release the oldest beyond. */
void tars_heap_trim(struct tars_heap *h);

static inline int
tars_heap_ok(const struct tars_heap *h)
{
	return h->canary1 == (tars_g.secret ^ (uintptr_t)h) && h->canary2 == ~h->canary1;
}

/* The fast paths' check: the first canary only (the heap is alone in its
 * page between guard pages, so only a wild write can reach it, and that
 * the general path's full check, on every other entry, also sees). */
static inline int
tars_heap_ok_fast(const struct tars_heap *h)
{
	return h->canary1 == (tars_g.secret ^ (uintptr_t)h);
}

/* Checks the heap canaries; aborts naming func. */
static inline void
tars_heap_check(const struct tars_heap *h, const char *func)
{
	if (unlikely(!tars_heap_ok(h))) {
		tars_heap_corrupted(h, func);
	}
}

/* tars_quiesce: QUIESCE_ON while a quiescent point is under way;
 * QUIESCE_FENCE for good when membarrier is unavailable (entries then
 * fence, and the fast paths, which do not, always give way). */
#define QUIESCE_ON 1
#define QUIESCE_FENCE 2

/*
 * The fast paths' entry: busy raised, 0 if the fast path may go on; else
 * (a quiescent point, or fence mode) the entry is undone and the caller
 * takes the general path.  Nested or not, the old depth is restored by
 * tars_heap_leave_fast(h, depth).
 */
static inline int
tars_heap_try_enter_fast(struct tars_heap *h, unsigned *depth)
{
	unsigned b = atomic_load_explicit(&h->busy, memory_order_relaxed);
	atomic_store_explicit(&h->busy, b + 1, memory_order_relaxed);
	atomic_signal_fence(memory_order_seq_cst);
	/* Acquire (a plain load on x86): what a quiescer read happens
	 * before what this entry writes. */
	if (unlikely(atomic_load_explicit(&tars_quiesce, memory_order_acquire) != 0)) {
		atomic_store_explicit(&h->busy, b, memory_order_release);
		return 0;
	}
	*depth = b;
	return 1;
}

static inline void
tars_heap_leave_fast(struct tars_heap *h, unsigned depth)
{
	atomic_store_explicit(&h->busy, depth, memory_order_release);
}

/* Enter h (the caller's own heap); nested entries only count.  Waits out
 * a quiescent point. */
static inline void
tars_heap_enter(struct tars_heap *h)
{
	for (;;) {
		unsigned b = atomic_load_explicit(&h->busy, memory_order_relaxed);
		atomic_store_explicit(&h->busy, b + 1, memory_order_relaxed);
		if (likely(b != 0)) {
			return;
		}
		int q = atomic_load_explicit(&tars_quiesce, memory_order_relaxed);
		if (unlikely(q & QUIESCE_FENCE)) {
			atomic_thread_fence(memory_order_seq_cst);
		} else {
			atomic_signal_fence(memory_order_seq_cst);
		}
		q = atomic_load_explicit(&tars_quiesce, memory_order_acquire);
		if (likely(!(q & QUIESCE_ON))) {
			return;
		}
		atomic_store_explicit(&h->busy, 0, memory_order_release);
		tars_heap_wait(h);
	}
}

static inline void
tars_heap_leave(struct tars_heap *h)
{
	unsigned b = atomic_load_explicit(&h->busy, memory_order_relaxed);
	atomic_store_explicit(&h->busy, b - 1, memory_order_release);
}

/*
 * Enter tars for a public call: the calling thread's heap, entered and
 * checked.  When no heap can be made (out of memory), NULL, with the heaps
 * lock held instead, which keeps quiescent points out just the same: a
 * free, a scope end or a key free must work even then.  Allocations
 * answer ENOMEM on NULL.  Pair with tars_leave.
 */
struct tars_heap *tars_enter_slow(const char *func);
void tars_leave_noheap(void);

static inline struct tars_heap *
tars_enter(const char *func)
{
	struct tars_heap *h = tars_tls_heap;
	if (unlikely(h == NULL)) {
		return tars_enter_slow(func);
	}
	tars_heap_enter(h);
	tars_heap_check(h, func);
	return h;
}

static inline void
tars_leave(struct tars_heap *h)
{
	if (likely(h != NULL)) {
		tars_heap_leave(h);
	} else {
		tars_leave_noheap();
	}
}

#pragma GCC visibility pop

#endif /* TARS_HEAP_H */
