/*
 * malloc.c - the public allocation API.  Each entry point names itself to
 * the functions below it, so that a fatal error says which call found it.
 */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#include "chunk.h"

#define NO_SIZE ((size_t)-1)

static __attribute__((noinline)) void *
alloc_impl(size_t size, int zero, const char *func)
{
	struct tars_pool *p = tars_pool_enter(func);
	void *ptr;
	if (likely(size <= tars_g.chunk_max)) {
		unsigned cls = size ? tars_size_class(size, TARS_OPT(classes)) : 0;
		ptr = tars_chunk_alloc(p, size, cls, zero, func);
	} else {
		ptr = tars_large_alloc(p, size, TARS_ALIGN, KIND_LARGE, zero, func);
	}
	tars_pool_unlock(p);
	return ptr;
}

static __attribute__((noinline)) void
free_impl(void *ptr, size_t expect, const char *func)
{
	struct tars_pool *first = tars_pool_enter(func), *p;
	struct region *r = tars_find_region(ptr, &p, first, func);
	if (unlikely(r == NULL)) {
		tars_fatal(func, "bogus pointer %p (double free, or not from tars)", ptr);
	}
	if (likely(r->kind == KIND_CHUNK)) {
		tars_chunk_free(p, r, ptr, expect, func);
	} else {
		tars_large_free(p, r, ptr, expect, func);
	}
	tars_pool_unlock(p);
}

/* Kind and requested size of a live block; aborts on a bad pointer. */
static int
block_info(const void *ptr, size_t *size, size_t *usable, const char *func)
{
	struct tars_pool *first = tars_pool_enter(func), *p;
	struct region *r = tars_find_region(ptr, &p, first, func);
	if (r == NULL) {
		tars_fatal(func, "bogus pointer %p (freed, or not from tars)", ptr);
	}
	int kind = r->kind;
	if (kind == KIND_CHUNK) {
		if (size != NULL) {
			*size = tars_chunk_requested(r, ptr, func);
		}
		if (usable != NULL) {
			*usable = tars_chunk_usable(r, ptr, func);
		}
	} else {
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
	}
	tars_pool_unlock(p);
	return kind;
}

void *
tars_malloc(size_t size)
{
	void *p = tars_chunk_alloc_fast(size);
	if (likely(p != NULL)) {
		return p;
	}
	return alloc_impl(size, 0, "tars_malloc");
}

void *
tars_calloc(size_t nmemb, size_t size)
{
	size_t total;
	if (__builtin_mul_overflow(nmemb, size, &total)) {
		errno = ENOMEM;
		return NULL;
	}
	return alloc_impl(total, 1, "tars_calloc");
}

void
tars_free(void *ptr)
{
	if (ptr != NULL && !tars_chunk_free_fast(ptr)) {
		free_impl(ptr, NO_SIZE, "tars_free");
	}
}

void
tars_freezero(void *ptr, size_t size)
{
	if (ptr != NULL) {
		free_impl(ptr, size, "tars_freezero");
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
	tars_init();
	if (alignment == 0 || (alignment & (alignment - 1)) != 0 ||
	    alignment > tars_g.page_size) {
		errno = EINVAL;
		return NULL;
	}
	if (alignment <= TARS_ALIGN) {
		return alloc_impl(size, 0, func);
	}
	size_t want = size > alignment ? size : alignment;
	struct tars_pool *p = tars_pool_enter(func);
	void *ptr;
	if (want <= tars_g.chunk_max) {
		/* Power-of-two slots of at least `alignment` bytes start at
		 * multiples of their size within a page: aligned. */
		ptr = tars_chunk_alloc(p, size, tars_size_class(want, 0), 0, func);
	} else {
		ptr = tars_large_alloc(p, size, alignment, KIND_LARGE, 0, func);
	}
	tars_pool_unlock(p);
	return ptr;
}

void *
tars_malloc_key(size_t size)
{
	struct tars_pool *p = tars_pool_enter("tars_malloc_key");
	void *ptr = tars_large_alloc(p, size, TARS_ALIGN, KIND_KEY, 0, "tars_malloc_key");
	tars_pool_unlock(p);
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
	void *n;
	if (kind == KIND_KEY) {
		struct tars_pool *p = tars_pool_enter(func);
		n = tars_large_alloc(p, size, TARS_ALIGN, KIND_KEY, 0, func);
		tars_pool_unlock(p);
		/* The old key may be closed: open it to copy and wipe it. */
		if (n != NULL && tars_key_protect(ptr, PROT_READ | PROT_WRITE, func) != 0) {
			int e = errno;
			free_impl(n, NO_SIZE, func);
			errno = e;
			return NULL;
		}
	} else {
		n = alloc_impl(size, 0, func);
	}
	if (n == NULL) {
		return NULL;
	}
	tars_secret_copy(n, ptr, old < size ? old : size);
	free_impl(ptr, NO_SIZE, func);
	return n;
}

void *
tars_realloc(void *ptr, size_t size)
{
	if (ptr == NULL) {
		return alloc_impl(size, 0, "tars_realloc");
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

int
tars_protect_none(void *ptr)
{
	return tars_key_protect(ptr, PROT_NONE, "tars_protect_none");
}

int
tars_protect_read(void *ptr)
{
	return tars_key_protect(ptr, PROT_READ, "tars_protect_read");
}

int
tars_protect_write(void *ptr)
{
	return tars_key_protect(ptr, PROT_READ | PROT_WRITE, "tars_protect_write");
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
