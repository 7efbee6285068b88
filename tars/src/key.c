/*
 * key.c - tars_key, a buffer with no access by default (TARS ProtKey).
 *
 * The bytes live in a key allocation (tars_malloc_key): pages of their own
 * between two guard pages, so their protection can change without touching
 * anyone else's data.  Outside a scope they are PROT_NONE.
 *
 * Scopes.  Read scopes are shared and counted across threads: the first
 * read_begin switches the pages to PROT_READ, the last read_end back to
 * PROT_NONE, and nested or concurrent readers in between cost no system
 * call.  The write scope is exclusive (PROT_READ|PROT_WRITE).  A request
 * that conflicts with an open scope fails with EBUSY rather than wait: a
 * caller holding a read scope who asks for the write scope would otherwise
 * deadlock against itself.
 *
 * Locking.  One mutex per key guards the counters AND the protection
 * change, and the mprotect happens inside the critical section.  Done after
 * unlocking, a last reader's PROT_NONE could land after the next writer's
 * PROT_READ|PROT_WRITE (the writer faults on its own key), or a first
 * reader's PROT_READ after a writer's PROT_NONE: the count and the page
 * state would disagree.  The lock is held for the bookkeeping and at most
 * one mprotect (about a microsecond), so a scope request never waits for
 * another scope to end.
 *
 * A zero-length key has no bytes to expose.  Its scopes are tracked like
 * any other (so misuse is still caught), but its page stays inaccessible
 * and no protection change is made.
 *
 * The struct (magic, mutex, counters) lives in tars memory, not on the libc
 * heap.
 *
 * Every entry runs inside the calling thread's heap entry (tars_enter), the
 * key's mutex inside it: a fork() waits until no thread is inside tars, so
 * a child never inherits a key mutex held by a thread it does not have.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

#include "heap.h"

#define KEY_MAGIC UINT64_C(0x746172736b657921) /* "tarskey!" */

struct tars_key {
	uint64_t magic;        /* KEY_MAGIC while live */
	pthread_mutex_t lock;  /* guards readers, writer, and the protection */
	unsigned long readers; /* open read scopes, over all threads */
	int writer;            /* 1 while the write scope is open */
	size_t len;            /* fixed for the key's lifetime */
	unsigned char *data;   /* tars_malloc_key(len) */
};

static void
key_check(const tars_key *key, const char *func)
{
	if (key == NULL || key->magic != KEY_MAGIC) {
		tars_container_bad(key, "tars_key", func);
	}
}

static void
key_lock(tars_key *key, const char *func)
{
	tars_mutex_lock(&key->lock, func);
}

static void
key_unlock(tars_key *key, const char *func)
{
	tars_mutex_unlock(&key->lock, func);
}

/* Switch the key's pages to prot (nothing to do for a zero-length key):
 * 0, or -1 with the mprotect errno.  Misuse found by the allocator is
 * reported in the name of func. */
static int
key_protect(tars_key *key, int prot, const char *func)
{
	if (key->len == 0) {
		return 0;
	}
	return tars_key_protect(key->data, prot, func);
}

/* A new key holding the len bytes at src, closed, no scope open.  The
 * bytes go straight into a closed key allocation (tars_key_data_new): in
 * the key arena no VMA is split to write them. */
static tars_key *
key_alloc(const void *src, size_t len, const char *func)
{
	tars_key *key = tars_malloc(sizeof(*key));
	if (key == NULL) {
		return NULL;
	}
	key->data = tars_key_data_new(src, len, func);
	if (key->data == NULL) {
		int saved = errno;
		tars_freezero(key, sizeof(*key));
		errno = saved;
		return NULL;
	}
	int rc = pthread_mutex_init(&key->lock, NULL);
	if (rc != 0) {
		tars_free(key->data);
		tars_freezero(key, sizeof(*key));
		errno = rc;
		return NULL;
	}
	key->magic = KEY_MAGIC;
	key->readers = 0;
	key->writer = 0;
	key->len = len;
	return key;
}

/*
 * Free a key with no scope open.  tars_free wipes a key's bytes whatever
 * its protection (in the key arena without opening it), so the container
 * does not open it for a wipe of its own: that would split a region.
 */
static void
key_destroy(tars_key *key, const char *func)
{
	int saved = errno;
	tars_free(key->data);
	int rc = pthread_mutex_destroy(&key->lock);
	if (rc != 0) {
		tars_fatal(func, "pthread_mutex_destroy: %s", strerror(rc));
	}
	tars_wipe(key, 0, sizeof(*key));
	tars_freezero(key, sizeof(*key));
	errno = saved;
}

tars_key *
tars_key_new(tars_buf *buf)
{
	if (buf == NULL) {
		tars_container_bad(NULL, "tars_buf", __func__);
	}
	tars_key *key = key_alloc(tars_buf_data(buf), tars_buf_len(buf), __func__);
	if (key == NULL) {
		return NULL;
	}
	tars_buf_free(buf);
	return key;
}

tars_key *
tars_key_new_random(size_t len)
{
	tars_buf *buf = tars_buf_new_random(len);
	if (buf == NULL) {
		return NULL;
	}
	tars_key *key = tars_key_new(buf);
	if (key == NULL) {
		int saved = errno;
		tars_buf_free(buf);
		errno = saved;
	}
	return key;
}

tars_key *
tars_key_clone(tars_key *key)
{
	key_check(key, __func__);
	const void *src = tars_key_read_begin(key);
	if (src == NULL) {
		return NULL;
	}
	tars_key *copy = key_alloc(src, key->len, __func__);
	int saved = errno;
	tars_key_read_end(key);
	errno = saved;
	return copy;
}

size_t
tars_key_len(const tars_key *key)
{
	key_check(key, __func__);
	return key->len;
}

const void *
tars_key_read_begin(tars_key *key)
{
	struct tars_heap *h = tars_enter(__func__);
	key_check(key, __func__);
	const void *data = NULL;
	key_lock(key, __func__);
	if (key->writer) {
		errno = EBUSY;
	} else if (key->readers == 0 &&
	    key_protect(key, PROT_READ, __func__) != 0) {
		/* errno from mprotect; still no reader, still PROT_NONE */
	} else {
		key->readers++;
		data = key->data;
	}
	key_unlock(key, __func__);
	tars_leave(h);
	return data;
}

/*
 * Revoking access cannot be reported to the caller (void), and a key left
 * readable is exactly what tars exists to prevent: a failed PROT_NONE is
 * fatal.  It does not happen in practice, since going back to PROT_NONE
 * merges the pages with their guards rather than splitting a mapping.
 */
void
tars_key_read_end(tars_key *key)
{
	struct tars_heap *h = tars_enter(__func__);
	key_check(key, __func__);
	key_lock(key, __func__);
	if (key->readers == 0) {
		tars_fatal(__func__, key->writer ?
		    "no read scope open (the write scope is)" :
		    "no read scope open");
	}
	if (key->readers == 1 && key_protect(key, PROT_NONE, __func__) != 0) {
		tars_fatal(__func__, "cannot revoke read access: %s",
		    strerror(errno));
	}
	key->readers--;
	key_unlock(key, __func__);
	tars_leave(h);
}

void *
tars_key_write_begin(tars_key *key)
{
	struct tars_heap *h = tars_enter(__func__);
	key_check(key, __func__);
	void *data = NULL;
	key_lock(key, __func__);
	if (key->writer || key->readers > 0) {
		errno = EBUSY;
	} else if (key_protect(key, PROT_READ | PROT_WRITE, __func__) != 0) {
		/* errno from mprotect; the state is unchanged */
	} else {
		key->writer = 1;
		data = key->data;
	}
	key_unlock(key, __func__);
	tars_leave(h);
	return data;
}

void
tars_key_write_end(tars_key *key)
{
	struct tars_heap *h = tars_enter(__func__);
	key_check(key, __func__);
	key_lock(key, __func__);
	if (!key->writer) {
		tars_fatal(__func__, key->readers > 0 ?
		    "no write scope open (a read scope is)" :
		    "no write scope open");
	}
	if (key_protect(key, PROT_NONE, __func__) != 0) {
		tars_fatal(__func__, "cannot revoke write access: %s",
		    strerror(errno));
	}
	key->writer = 0;
	key_unlock(key, __func__);
	tars_leave(h);
}

int
tars_key_read_with(tars_key *key,
    int (*fn)(const void *data, size_t len, void *arg), void *arg)
{
	key_check(key, __func__);
	if (fn == NULL) {
		tars_fatal(__func__, "NULL function");
	}
	const void *data = tars_key_read_begin(key);
	if (data == NULL) {
		return -1;
	}
	int ret = fn(data, key->len, arg);
	tars_key_read_end(key);
	return ret;
}

int
tars_key_write_with(tars_key *key,
    int (*fn)(void *data, size_t len, void *arg), void *arg)
{
	key_check(key, __func__);
	if (fn == NULL) {
		tars_fatal(__func__, "NULL function");
	}
	void *data = tars_key_write_begin(key);
	if (data == NULL) {
		return -1;
	}
	int ret = fn(data, key->len, arg);
	tars_key_write_end(key);
	return ret;
}

/* The length is not secret: different lengths return 0 without opening
 * either key.  a == b is fine (two nested read scopes). */
int
tars_key_equal(tars_key *a, tars_key *b)
{
	key_check(a, __func__);
	key_check(b, __func__);
	if (a->len != b->len) {
		return 0;
	}
	const void *pa = tars_key_read_begin(a);
	if (pa == NULL) {
		return -1;
	}
	const void *pb = tars_key_read_begin(b);
	if (pb == NULL) {
		int saved = errno;
		tars_key_read_end(a);
		errno = saved;
		return -1;
	}
	int eq = tars_ct_equal(pa, pb, a->len);
	tars_key_read_end(b);
	tars_key_read_end(a);
	return eq;
}

void
tars_key_free(tars_key *key)
{
	if (key == NULL) {
		return;
	}
	struct tars_heap *h = tars_enter(__func__);
	key_check(key, __func__);
	key_lock(key, __func__);
	if (key->readers > 0) {
		tars_fatal(__func__, "key freed with a read scope open");
	}
	if (key->writer) {
		tars_fatal(__func__, "key freed with a write scope open");
	}
	key->magic = 0; /* from here on, any other entry aborts */
	key_unlock(key, __func__);
	key_destroy(key, __func__);
	tars_leave(h);
}
