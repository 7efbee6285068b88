/*
 * malloc.c - the public allocation API.  Each entry point names itself to
 * the functions below it, so that a fatal error says which call found it.
 *
 * tars_malloc and tars_free first try the inline fast path: the calling
 * thread's heap, entered without a lock, and the one slot routine of
 * chunk.h.  Anything else (no heap yet, a quiescent point, a class with no
 * free slot, a block of another heap, a large block or key) goes to the
 * general path, which is built from the same routine.
 */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#include "chunk.h"

#define NO_SIZE ((size_t)-1)

/* A chunk of class cls from h (entered); NULL with ENOMEM. */
static inline void *
chunk_alloc(struct tars_heap *h, size_t size, unsigned cls, int zero, const char *func)
{
	if (h->rnd.avail < FAST_RAND_BYTES) {
		/* The fast path wants that many bytes at hand: refill now
		 * rather than send it here for each of the last few. */
		tars_rand_refill(&h->rnd);
	}
	void *p = chunk_alloc_slot(h, size, cls, zero, func, 0);
	if (unlikely(p == NULL)) {
		if (tars_chunk_refill(h, cls) == NULL) {
			errno = ENOMEM;
			return NULL;
		}
		p = chunk_alloc_slot(h, size, cls, zero, func, 0);
	}
	return p;
}

static __attribute__((noinline)) void *
alloc_slow(size_t size, int zero, const char *func)
{
	struct tars_heap *h = tars_enter(func);
	void *ptr;
	if (unlikely(h == NULL)) {
		ptr = NULL;
		errno = ENOMEM;
	} else if (likely(size <= tars_g.chunk_max)) {
		unsigned cls = size ? tars_size_class(size, TARS_OPT(classes)) : 0;
		ptr = chunk_alloc(h, size, cls, zero, func);
	} else {
		ptr = tars_large_alloc(size, TARS_ALIGN, KIND_LARGE, zero, func);
	}
	tars_leave(h);
	return ptr;
}

/* h entered (or NULL: no heap, heaps lock held). */
static void
free_in(struct tars_heap *h, void *ptr, size_t expect, const char *func)
{
	struct chunk_info *ci = tars_page_info(ptr);
	if (likely(ci != NULL)) {
		if (likely(ci->heap == h && h != NULL)) {
			(void)chunk_free_local(h, ci, ptr, expect, func, 0);
		} else {
			tars_remote_free(h, ci, ptr, expect, func);
		}
		return;
	}
	struct region *r = tars_block_find(ptr);
	if (unlikely(r == NULL)) {
		tars_block_not_found(ptr, 1, func);
		tars_fatal(func, "bogus pointer %p (double free, or not from tars)", ptr);
	}
	tars_large_free(r, ptr, expect, func);
}

static __attribute__((noinline)) void
free_slow(void *ptr, size_t expect, const char *func)
{
	struct tars_heap *h = tars_enter(func);
	free_in(h, ptr, expect, func);
	tars_leave(h);
}

/* Kind and requested size of a live block; aborts on a bad pointer. */
static int
block_info(const void *ptr, size_t *size, size_t *usable, const char *func)
{
	struct tars_heap *h = tars_enter(func);
	struct chunk_info *ci = tars_page_info(ptr);
	int kind;
	if (ci != NULL) {
		kind = KIND_CHUNK;
		if (tars_chunk_delayed(ci, ptr, func)) {
			tars_fatal(func, "bogus pointer %p (freed: it waits in the "
			    "delayed-free queue)", ptr);
		}
		if (size != NULL) {
			*size = tars_chunk_requested(ci, ptr, func);
		}
		if (usable != NULL) {
			*usable = tars_chunk_usable(ci, ptr, func);
		}
	} else {
		struct region *r = tars_block_find(ptr);
		if (r == NULL) {
			tars_block_not_found(ptr, 0, func);
			tars_fatal(func, "bogus pointer %p (freed, or not from tars)", ptr);
		}
		kind = r->kind;
		if (r->ptr != ptr) {
			tars_fatal(func, "bogus pointer %p (inside the block %p)", ptr, r->ptr);
		}
		if (size != NULL) {
			*size = r->size;
		}
		if (usable != NULL) {
			*usable = (r->flags & R_CANARY) ? r->size
			    : (size_t)((r->size + TARS_ALIGN - 1) & ~(size_t)(TARS_ALIGN - 1));
		}
		tars_blocks_unlock();
	}
	tars_leave(h);
	return kind;
}

/*
 * The fast paths: the caller's heap, entered, and the slot routine with
 * fast = 1 (no call, no stack frame).  Anything else, including a
 * corrupted heap (which the general path reports), goes the general way.
 */
void *
tars_malloc(size_t size)
{
	struct tars_heap *h = tars_tls_heap;
	unsigned depth;
	if (likely(h != NULL && size - 1 < TARS_CHUNK_MAX) &&
	    likely(tars_heap_try_enter_fast(h, &depth))) {
		void *p = NULL;
		if (likely(tars_heap_ok_fast(h))) {
			unsigned cls = tars_size_class(size, TARS_OPT(classes));
			p = chunk_alloc_slot(h, size, cls, 0, "tars_malloc", 1);
		}
		tars_heap_leave_fast(h, depth);
		if (likely(p != NULL)) {
			return p;
		}
	}
	return alloc_slow(size, 0, "tars_malloc");
}

void *
tars_calloc(size_t nmemb, size_t size)
{
	size_t total;
	if (__builtin_mul_overflow(nmemb, size, &total)) {
		errno = ENOMEM;
		return NULL;
	}
	return alloc_slow(total, 1, "tars_calloc");
}

void
tars_free(void *ptr)
{
	if (ptr == NULL) {
		return;
	}
	struct tars_heap *h = tars_tls_heap;
	unsigned depth;
	if (likely(h != NULL) && likely(tars_heap_try_enter_fast(h, &depth))) {
		uintptr_t page = (uintptr_t)ptr & ~tars_g.page_mask;
		struct chunk_info *ci = h->last_ci;
		if (unlikely(page != h->last_page)) {
			ci = tars_page_info(ptr);
			if (ci != NULL && ci->heap == h) {
				h->last_page = page;
				h->last_ci = ci;
			}
		}
		int done = likely(ci != NULL && ci->heap == h) && likely(tars_heap_ok_fast(h)) &&
		    chunk_free_local(h, ci, ptr, NO_SIZE, "tars_free", 1);
		tars_heap_leave_fast(h, depth);
		if (likely(done)) {
			return;
		}
	}
	free_slow(ptr, NO_SIZE, "tars_free");
}

void
tars_freezero(void *ptr, size_t size)
{
	if (ptr != NULL) {
		free_slow(ptr, size, "tars_freezero");
	}
}

size_t
tars_usable_size(const void *ptr)
{
	size_t usable = 0;
	if (ptr != NULL) {
		(void)block_info(ptr, NULL, &usable, "tars_usable_size");
	}
	return usable;
}

void *
tars_aligned_alloc(size_t alignment, size_t size)
{
	static const char func[] = "tars_aligned_alloc";
	tars_init_basic();
	if (alignment == 0 || (alignment & (alignment - 1)) != 0 ||
	    alignment > tars_g.page_size) {
		errno = EINVAL;
		return NULL;
	}
	if (alignment <= TARS_ALIGN) {
		return alloc_slow(size, 0, func);
	}
	size_t want = size > alignment ? size : alignment;
	struct tars_heap *h = tars_enter(func);
	void *ptr;
	if (h == NULL) {
		ptr = NULL;
		errno = ENOMEM;
	} else if (want <= tars_g.chunk_max) {
		/* Power-of-two slots of at least `alignment` bytes start at
		 * multiples of their size within a page: aligned. */
		ptr = chunk_alloc(h, size, tars_size_class(want, 0), 0, func);
	} else {
		ptr = tars_large_alloc(size, alignment, KIND_LARGE, 0, func);
	}
	tars_leave(h);
	return ptr;
}

void *
tars_malloc_key(size_t size)
{
	struct tars_heap *h = tars_enter("tars_malloc_key");
	void *ptr;
	if (h == NULL) {
		ptr = NULL;
		errno = ENOMEM;
	} else {
		ptr = tars_large_alloc(size, TARS_ALIGN, KIND_KEY, 0, "tars_malloc_key");
	}
	tars_leave(h);
	return ptr;
}

static void *
move(void *ptr, size_t size, int key, const char *func)
{
	size_t old;
	int kind = block_info(ptr, &old, NULL, func);
	if (key && kind != KIND_KEY) {
		tars_fatal(func, "%p is not a key allocation", ptr);
	}
	struct tars_heap *h = tars_enter(func);
	void *n;
	if (kind == KIND_KEY) {
		n = h == NULL ? NULL : tars_large_alloc(size, TARS_ALIGN, KIND_KEY, 0, func);
		/* The old key may be closed: open it to copy and wipe it. */
		if (n != NULL && tars_key_protect(ptr, PROT_READ | PROT_WRITE, func) != 0) {
			int e = errno;
			free_in(h, n, NO_SIZE, func);
			errno = e;
			n = NULL;
		}
	} else if (h == NULL) {
		n = NULL;
	} else if (size <= tars_g.chunk_max) {
		n = chunk_alloc(h, size, size ? tars_size_class(size, TARS_OPT(classes)) : 0,
		    0, func);
	} else {
		n = tars_large_alloc(size, TARS_ALIGN, KIND_LARGE, 0, func);
	}
	if (n != NULL) {
		tars_secret_copy(n, ptr, old < size ? old : size);
		free_in(h, ptr, NO_SIZE, func);
	} else if (h == NULL) {
		errno = ENOMEM;
	}
	tars_leave(h);
	return n;
}

void *
tars_realloc(void *ptr, size_t size)
{
	if (ptr == NULL) {
		return alloc_slow(size, 0, "tars_realloc");
	}
	return move(ptr, size, 0, "tars_realloc");
}

void *
tars_realloc_key(void *ptr, size_t size)
{
	if (ptr == NULL) {
		return tars_malloc_key(size);
	}
	return move(ptr, size, 1, "tars_realloc_key");
}

static int
protect(void *ptr, int prot, const char *func)
{
	struct tars_heap *h = tars_enter(func);
	int rc = tars_key_protect(ptr, prot, func);
	tars_leave(h);
	return rc;
}

int
tars_protect_none(void *ptr)
{
	return protect(ptr, PROT_NONE, "tars_protect_none");
}

int
tars_protect_read(void *ptr)
{
	return protect(ptr, PROT_READ, "tars_protect_read");
}

int
tars_protect_write(void *ptr)
{
	return protect(ptr, PROT_READ | PROT_WRITE, "tars_protect_write");
}

size_t
tars_slot_size(size_t size)
{
	tars_init_basic();
	if (size == 0) {
		return 0;
	}
	if (size <= tars_g.chunk_max) {
		return tars_class_size[tars_size_class(size, TARS_OPT(classes))];
	}
	size_t ps = tars_g.page_size;
	if (size > SIZE_MAX - ps - TARS_ALIGN) {
		return 0;
	}
	size_t rsize = (size + TARS_ALIGN - 1) & ~(size_t)(TARS_ALIGN - 1);
	return (rsize + ps - 1) / ps * ps;
}
