/*
 * tars_buf: the fixed-length sensitive buffer.
 */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/syscall.h>

#include <criterion/criterion.h>

#include "tars.h"
#include "util.h"

static const size_t sizes[] = {
	0, 1, 15, 16, 17, 31, 32, 64, 100, 1000, 2047, 2048, 2049, 4095,
	4096, 4097, 10000, 100000,
};
#define NSIZES (sizeof(sizes) / sizeof(sizes[0]))

static int
contains_byte(const unsigned char *p, size_t len, unsigned char c)
{
	return memchr(p, c, len) != NULL;
}

/* ---------------------------------------------------------------- basics */

Test(buf, new_has_the_length_and_writable_bytes)
{
	for (size_t i = 0; i < NSIZES; i++) {
		tars_buf *b = tars_buf_new(sizes[i]);
		cr_assert_not_null(b, "size %zu: %s", sizes[i], strerror(errno));
		cr_assert_eq(tars_buf_len(b), sizes[i]);
		unsigned char *p = tars_buf_data(b);
		cr_assert_not_null(p);
		memset(p, 0xa5, sizes[i]);
		cr_assert(all_bytes(p, sizes[i], 0xa5));
		tars_buf_free(b);
	}
}

Test(buf, new_zero_is_zeroed_even_in_a_reused_slot)
{
	for (size_t i = 0; i < NSIZES; i++) {
		tars_buf *dirty = tars_buf_new(sizes[i]);
		cr_assert_not_null(dirty);
		memset(tars_buf_data(dirty), 0xff, sizes[i]);
		tars_buf_free(dirty);
		tars_buf *b = tars_buf_new_zero(sizes[i]);
		cr_assert_not_null(b);
		cr_assert_eq(tars_buf_len(b), sizes[i]);
		cr_assert(all_bytes(tars_buf_data(b), sizes[i], 0), "size %zu", sizes[i]);
		tars_buf_free(b);
	}
}

Test(buf, new_random_differs_each_time)
{
	tars_buf *a = tars_buf_new_random(64);
	tars_buf *b = tars_buf_new_random(64);
	cr_assert_not_null(a);
	cr_assert_not_null(b);
	cr_assert_eq(tars_buf_len(a), 64);
	cr_assert_neq(memcmp(tars_buf_data(a), tars_buf_data(b), 64), 0);
	cr_assert(!all_bytes(tars_buf_data(a), 64, 0));
	cr_assert(!all_bytes(tars_buf_data(a), 64, 0xdf), "still junk");
	tars_buf_free(a);
	tars_buf_free(b);

	/* Larger than one getrandom call guarantees (256 bytes), and 0. */
	tars_buf *big = tars_buf_new_random(100000);
	cr_assert_not_null(big);
	const unsigned char *p = tars_buf_data(big);
	cr_assert(!all_bytes(p + 99000, 1000, 0xdf), "tail not filled");
	tars_buf_free(big);
	tars_buf *empty = tars_buf_new_random(0);
	cr_assert_not_null(empty);
	cr_assert_eq(tars_buf_len(empty), 0);
	tars_buf_free(empty);
}

static void
random_fails_without_getrandom(void *arg)
{
	(void)arg;
	tars_buf_free(tars_buf_new_random(16)); /* allocator up and seeded */
	tars_buf *keep = tars_buf_new(32);      /* the page stays in use */
	CHILD_CHECK(keep != NULL);
	deny_syscall(SYS_getrandom, -1, 0, EIO);
	errno = 0;
	tars_buf *b = tars_buf_new_random(32);
	CHILD_CHECK(b == NULL);
	CHILD_CHECK(errno == EIO);
	tars_buf_free(keep);
}

Test(buf, new_random_fails_with_errno_when_getrandom_fails)
{
	EXPECT_EXIT0(random_fails_without_getrandom, NULL);
}

Test(buf, from_copies_the_bytes)
{
	unsigned char src[100];
	for (size_t i = 0; i < sizeof(src); i++) {
		src[i] = (unsigned char)(i * 7 + 1);
	}
	tars_buf *b = tars_buf_from(src, sizeof(src));
	cr_assert_not_null(b);
	cr_assert_eq(tars_buf_len(b), sizeof(src));
	cr_assert_neq(tars_buf_data(b), (void *)src);
	cr_assert_eq(memcmp(tars_buf_data(b), src, sizeof(src)), 0);
	src[0] ^= 0xff; /* the copy is independent of its source */
	cr_assert_neq(memcmp(tars_buf_data(b), src, sizeof(src)), 0);
	tars_buf_free(b);

	tars_buf *empty = tars_buf_from(NULL, 0);
	cr_assert_not_null(empty);
	cr_assert_eq(tars_buf_len(empty), 0);
	tars_buf_free(empty);
}

static void
from_null_data(void *arg)
{
	(void)arg;
	const void *volatile data = NULL;
	tars_buf_free(tars_buf_from(data, 4));
}

Test(buf, from_null_data_with_a_length_aborts)
{
	EXPECT_ABORT(from_null_data, NULL, "tars: tars_buf_from(): NULL data");
}

Test(buf, concat_joins_in_order)
{
	tars_buf *a = tars_buf_from("abc", 3);
	tars_buf *e = tars_buf_new(0);
	tars_buf *d = tars_buf_from("defg", 4);
	cr_assert(a != NULL && e != NULL && d != NULL);
	const tars_buf *parts[] = {a, e, d, a};
	tars_buf *all = tars_buf_concat(parts, 4);
	cr_assert_not_null(all);
	cr_assert_eq(tars_buf_len(all), 10);
	cr_assert_eq(memcmp(tars_buf_data(all), "abcdefgabc", 10), 0);

	tars_buf *none = tars_buf_concat(NULL, 0);
	cr_assert_not_null(none);
	cr_assert_eq(tars_buf_len(none), 0);

	const tars_buf *one[] = {d};
	tars_buf *copy = tars_buf_concat(one, 1);
	cr_assert_not_null(copy);
	cr_assert_eq(tars_buf_equal(copy, d), 1);
	cr_assert_neq(tars_buf_data(copy), tars_buf_data(d));

	tars_buf_free(copy);
	tars_buf_free(none);
	tars_buf_free(all);
	tars_buf_free(d);
	tars_buf_free(e);
	tars_buf_free(a);
}

static void
concat_null_element(void *arg)
{
	(void)arg;
	tars_buf *a = tars_buf_new(8);
	const tars_buf *parts[] = {a, NULL};
	tars_buf_free(tars_buf_concat(parts, 2));
}

Test(buf, concat_with_a_null_buffer_aborts)
{
	EXPECT_ABORT(concat_null_element, NULL,
	    "tars: tars_buf_concat(): NULL buffer at index 1");
}

Test(buf, clone_is_equal_and_independent)
{
	for (size_t i = 0; i < NSIZES; i++) {
		tars_buf *b = tars_buf_new_random(sizes[i]);
		cr_assert_not_null(b);
		tars_buf *c = tars_buf_clone(b);
		cr_assert_not_null(c);
		cr_assert_eq(tars_buf_len(c), sizes[i]);
		cr_assert_eq(tars_buf_equal(b, c), 1);
		if (sizes[i] > 0) {
			cr_assert_neq(tars_buf_data(c), tars_buf_data(b));
			((unsigned char *)tars_buf_data(c))[sizes[i] - 1] ^= 1;
			cr_assert_eq(tars_buf_equal(b, c), 0);
		}
		tars_buf_free(c);
		tars_buf_free(b);
	}
}

Test(buf, equal_compares_length_and_every_byte)
{
	tars_buf *a = tars_buf_new_random(256);
	cr_assert_not_null(a);
	tars_buf *b = tars_buf_clone(a);
	cr_assert_not_null(b);
	cr_assert_eq(tars_buf_equal(a, b), 1);
	cr_assert_eq(tars_buf_equal(a, a), 1);
	unsigned char *pb = tars_buf_data(b);
	const size_t where[] = {0, 1, 127, 254, 255};
	for (size_t i = 0; i < sizeof(where) / sizeof(where[0]); i++) {
		for (unsigned int bit = 0; bit < 8; bit++) {
			pb[where[i]] ^= (unsigned char)(1u << bit);
			cr_assert_eq(tars_buf_equal(a, b), 0, "byte %zu bit %u", where[i], bit);
			cr_assert_eq(tars_buf_equal(b, a), 0);
			pb[where[i]] ^= (unsigned char)(1u << bit);
		}
	}
	cr_assert_eq(tars_buf_equal(a, b), 1);

	/* Different lengths are never equal, even as prefixes. */
	tars_buf *prefix = tars_buf_from(tars_buf_data(a), 255);
	cr_assert_not_null(prefix);
	cr_assert_eq(tars_buf_equal(a, prefix), 0);
	tars_buf *e1 = tars_buf_new(0);
	tars_buf *e2 = tars_buf_new_zero(0);
	cr_assert(e1 != NULL && e2 != NULL);
	cr_assert_eq(tars_buf_equal(e1, e2), 1);
	cr_assert_eq(tars_buf_equal(e1, a), 0);
	tars_buf_free(e2);
	tars_buf_free(e1);
	tars_buf_free(prefix);
	tars_buf_free(b);
	tars_buf_free(a);
}

static double
now_ns(void)
{
	struct timespec ts;
	cr_assert_eq(clock_gettime(CLOCK_MONOTONIC, &ts), 0);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* Keeps in *best the fastest time of a tars_buf_equal call. */
static void
time_equal(double *best, const tars_buf *a, const tars_buf *b, int expect)
{
	double t0 = now_ns();
	int eq = tars_buf_equal(a, b);
	double t = now_ns() - t0;
	cr_assert_eq(eq, expect);
	if (t < *best) {
		*best = t;
	}
}

/*
 * A comparison that stopped at the first difference would answer "differs
 * in byte 0" a million times faster than "equal"; a constant-time one takes
 * the same time.  The bound is loose: only an early exit can break it.
 */
Test(buf, equal_takes_the_same_time_whatever_the_contents, .timeout = 60)
{
	const size_t len = 1 << 20;
	tars_buf *a = tars_buf_new_random(len);
	cr_assert_not_null(a);
	tars_buf *same = tars_buf_clone(a);
	tars_buf *first = tars_buf_clone(a);
	tars_buf *last = tars_buf_clone(a);
	cr_assert(same != NULL && first != NULL && last != NULL);
	((unsigned char *)tars_buf_data(first))[0] ^= 0x80;
	((unsigned char *)tars_buf_data(last))[len - 1] ^= 0x01;

	/* Fastest of interleaved runs: the least noisy estimate, and a burst
	 * of load hits all three cases alike. */
	double t_same = 1e30, t_first = 1e30, t_last = 1e30;
	for (int run = 0; run < 20; run++) {
		time_equal(&t_same, a, same, 1);
		time_equal(&t_first, a, first, 0);
		time_equal(&t_last, a, last, 0);
	}
	cr_assert(t_first > t_same / 3 && t_first < t_same * 3,
	    "equal %.0f ns, differing first byte %.0f ns", t_same, t_first);
	cr_assert(t_last > t_same / 3 && t_last < t_same * 3,
	    "equal %.0f ns, differing last byte %.0f ns", t_same, t_last);
	tars_buf_free(last);
	tars_buf_free(first);
	tars_buf_free(same);
	tars_buf_free(a);
}

Test(buf, free_null_is_a_no_op)
{
	tars_buf_free(NULL);
}

/* ------------------------------------------------------- where it lives */

Test(buf, struct_and_bytes_are_tars_memory)
{
	tars_buf *b = tars_buf_new(48);
	cr_assert_not_null(b);
	/* tars_usable_size aborts on a pointer tars did not return. */
	cr_assert_geq(tars_usable_size(b), 1);
	cr_assert_geq(tars_usable_size(tars_buf_data(b)), 48);
	/* Not in core dumps (option dump=0, the default). */
	cr_assert(tars_has_vmflag(b, "dd"), "struct page lacks VM_DONTDUMP");
	cr_assert(tars_has_vmflag(tars_buf_data(b), "dd"), "data page lacks VM_DONTDUMP");
	tars_buf_free(b);
}

Test(buf, small_buffers_share_pages)
{
	enum { N = 16 };
	tars_buf *bufs[N];
	long pg = sysconf(_SC_PAGESIZE);
	cr_assert_gt(pg, 0);
	uintptr_t pages[N];
	size_t distinct = 0;
	for (int i = 0; i < N; i++) {
		bufs[i] = tars_buf_new_random(32);
		cr_assert_not_null(bufs[i]);
		uintptr_t page = (uintptr_t)tars_buf_data(bufs[i]) & ~(uintptr_t)(pg - 1);
		int seen = 0;
		for (size_t j = 0; j < distinct; j++) {
			seen |= pages[j] == page;
		}
		if (!seen) {
			pages[distinct++] = page;
		}
	}
	cr_assert_lt(distinct, N / 2, "%d buffers of 32 bytes on %zu pages", N, distinct);
	for (int i = 0; i < N; i++) {
		tars_buf_free(bufs[i]);
	}
}

/* --------------------------------------------------------------- wiping */

/*
 * After tars_buf_free the old bytes must be gone.  Neighbours of the same
 * size class keep the chunk page in use (so it is neither cached nor
 * unmapped), and /proc/self/mem reads the slot without going through the
 * allocator (no junk validation, no protection).  Large buffers have pages
 * of their own: once freed they may be unmapped (EIO) or cached, and in the
 * latter case they must be wiped too.
 */
Test(buf, freed_bytes_are_wiped)
{
	const size_t lens[] = {1, 24, 64, 300, 2048, 3000, 10000};
	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		size_t len = lens[i];
		tars_buf *before = tars_buf_new(len);
		tars_buf *b = tars_buf_new(len);
		tars_buf *after = tars_buf_new(len);
		cr_assert(before != NULL && b != NULL && after != NULL);
		unsigned char *addr = tars_buf_data(b);
		memset(addr, 0x5a, len);

		unsigned char seen[10000];
		cr_assert_eq(peek(addr, seen, len), (ssize_t)len, "peek: %s", strerror(errno));
		cr_assert(all_bytes(seen, len, 0x5a), "peek does not see the secret");

		tars_buf_free(b);
		ssize_t n = peek(addr, seen, len);
		if (n < 0) {
			cr_assert(errno == EIO || errno == EFAULT, "peek: %s", strerror(errno));
			cr_assert_gt(len, 2048, "a chunk page was unmapped with live slots");
		} else {
			cr_assert(!contains_byte(seen, (size_t)n, 0x5a),
			    "freed %zu-byte buffer still holds its bytes", len);
		}
		tars_buf_free(after);
		tars_buf_free(before);
	}
}

static void
double_free(void *arg)
{
	(void)arg;
	tars_buf *keep = tars_buf_new(64); /* keeps the struct page in use */
	tars_buf *b = tars_buf_new(64);
	tars_buf_free(b);
	tars_buf *volatile again = b;
	tars_buf_free(again);
	tars_buf_free(keep);
}

Test(buf, double_free_aborts)
{
	EXPECT_ABORT(double_free, NULL, "tars: ");
}

static void
use_after_free(void *arg)
{
	(void)arg;
	tars_buf *keep = tars_buf_new(64);
	tars_buf *b = tars_buf_new(64);
	tars_buf_free(b);
	tars_buf *volatile stale = b;
	size_t len = tars_buf_len(stale);
	fprintf(stderr, "len %zu\n", len);
	tars_buf_free(keep);
}

Test(buf, use_after_free_aborts)
{
	EXPECT_ABORT(use_after_free, NULL, "tars: tars_buf_len(): bogus tars_buf");
}
