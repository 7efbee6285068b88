/*
 * buf.c - tars_buf, a fixed-length sensitive buffer (TARS ProtBuf).
 *
 * A tars_buf is two chunk allocations: the struct (magic, length, pointer)
 * and the bytes.  Keeping them apart means no header sits next to user
 * data: an underflow of the bytes cannot rewrite the length, and the
 * allocator's slack canary still catches an overflow at free.  Both live in
 * tars memory, so the struct is locked, kept out of core dumps and wiped
 * like the secret it describes.
 *
 * Small buffers share chunk pages, so they cost no system call once a page
 * is in use; a key, by contrast, has guarded pages of its own (key.c).
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "tars_internal.h"

#define BUF_MAGIC UINT64_C(0x7461727362756621) /* "tarsbuf!" */

struct tars_buf {
	uint64_t magic;      /* BUF_MAGIC while live; the free junk clears it */
	size_t len;          /* fixed for the buffer's lifetime */
	unsigned char *data; /* tars_malloc(len); a size-0 slot when len is 0 */
};

/*
 * Cheap structural check on every entry.  A freed struct has been wiped by
 * the allocator, so a use after free or double free usually lands here
 * rather than deeper in the allocator.  NULL aborts too (the prototypes
 * carry no nonnull attribute, which would let the compiler drop the test).
 */
static void
buf_check(const tars_buf *buf, const char *func)
{
	if (buf == NULL || buf->magic != BUF_MAGIC) {
		tars_container_bad(buf, "tars_buf", func);
	}
}

void
tars_container_bad(const void *obj, const char *what, const char *func)
{
	if (obj == NULL) {
		tars_fatal(func, "NULL %s", what);
	}
	if (tars_chunk_fork_wiped(obj)) {
		tars_fatal(func, "%s %p was inherited through fork() with fork=1: this "
		    "child's copy was wiped (zeros), so it cannot be used or freed here",
		    what, obj);
	}
	tars_fatal(func, "bogus %s %p (double free, or not a %s)", what, obj, what);
}

/* The struct and its bytes; zeroed bytes if zero, else allocator junk. */
static tars_buf *
buf_alloc(size_t len, int zero)
{
	tars_buf *buf = tars_malloc(sizeof(*buf));
	if (buf == NULL) {
		return NULL;
	}
	buf->data = zero ? tars_calloc(1, len) : tars_malloc(len);
	if (buf->data == NULL) {
		int saved = errno;
		tars_freezero(buf, sizeof(*buf));
		errno = saved;
		return NULL;
	}
	buf->len = len;
	buf->magic = BUF_MAGIC;
	return buf;
}

/*
 * 1 if the len bytes at a and b are equal, else 0.  Every byte is read
 * (volatile: the compiler may neither stop at the first difference nor
 * turn the loop into memcmp) and the differences are OR-ed together, so
 * the time depends on len only.
 */
int
tars_ct_equal(const void *a, const void *b, size_t len)
{
	const volatile unsigned char *pa = a;
	const volatile unsigned char *pb = b;
	unsigned int diff = 0;
	for (size_t i = 0; i < len; i++) {
		diff |= (unsigned int)(pa[i] ^ pb[i]);
	}
	/* diff is 0..255: diff - 1 borrows into bit 8 only when diff is 0. */
	return (int)(((diff - 1u) >> 8) & 1u);
}

tars_buf *
tars_buf_new(size_t len)
{
	return buf_alloc(len, 0);
}

tars_buf *
tars_buf_new_zero(size_t len)
{
	return buf_alloc(len, 1);
}

tars_buf *
tars_buf_new_random(size_t len)
{
	tars_buf *buf = buf_alloc(len, 0);
	if (buf == NULL) {
		return NULL;
	}
	int saved = errno;
	if (tars_os_random(buf->data, len) != 0) {
		saved = errno;
		tars_buf_free(buf);
		errno = saved;
		return NULL;
	}
	errno = saved; /* an EINTR retried inside is no error */
	return buf;
}

tars_buf *
tars_buf_from(const void *data, size_t len)
{
	if (data == NULL && len > 0) {
		tars_fatal(__func__, "NULL data with length %zu", len);
	}
	tars_buf *buf = buf_alloc(len, 0);
	if (buf == NULL) {
		return NULL;
	}
	if (len > 0) {
		tars_secret_copy(buf->data, data, len);
	}
	return buf;
}

tars_buf *
tars_buf_concat(const tars_buf *const *bufs, size_t count)
{
	if (bufs == NULL && count > 0) {
		tars_fatal(__func__, "NULL array with count %zu", count);
	}
	size_t total = 0;
	for (size_t i = 0; i < count; i++) {
		if (bufs[i] == NULL) {
			tars_fatal(__func__, "NULL buffer at index %zu", i);
		}
		buf_check(bufs[i], __func__);
		if (__builtin_add_overflow(total, bufs[i]->len, &total)) {
			errno = ENOMEM;
			return NULL;
		}
	}
	tars_buf *buf = buf_alloc(total, 0);
	if (buf == NULL) {
		return NULL;
	}
	size_t off = 0;
	for (size_t i = 0; i < count; i++) {
		if (bufs[i]->len > 0) {
			tars_secret_copy(buf->data + off, bufs[i]->data, bufs[i]->len);
			off += bufs[i]->len;
		}
	}
	return buf;
}

tars_buf *
tars_buf_clone(const tars_buf *buf)
{
	buf_check(buf, __func__);
	return tars_buf_from(buf->data, buf->len);
}

size_t
tars_buf_len(const tars_buf *buf)
{
	buf_check(buf, __func__);
	return buf->len;
}

void *
tars_buf_data(tars_buf *buf)
{
	buf_check(buf, __func__);
	return buf->data;
}

/* The length is not secret: different lengths return 0 at once. */
int
tars_buf_equal(const tars_buf *a, const tars_buf *b)
{
	buf_check(a, __func__);
	buf_check(b, __func__);
	if (a->len != b->len) {
		return 0;
	}
	return tars_ct_equal(a->data, b->data, a->len);
}

/*
 * Wipe here rather than trust the free junk alone: the allocator writes
 * junk (or zeros) over the slot too, but a tars_buf promises that its bytes
 * are gone whatever the options.  tars_freezero also checks that the
 * recorded length still matches the allocation.
 */
void
tars_buf_free(tars_buf *buf)
{
	if (buf == NULL) {
		return;
	}
	buf_check(buf, __func__);
	tars_wipe(buf->data, 0, buf->len);
	tars_freezero(buf->data, buf->len);
	tars_wipe(buf, 0, sizeof(*buf));
	tars_freezero(buf, sizeof(*buf));
}
