/*
 * API semantics of the core allocator (suite "api") and the memory layout
 * of large and key blocks (suite "layout").
 *
 * Every size from 0 to three pages goes through malloc, calloc, realloc,
 * aligned_alloc, free and freezero; the answers of tars_usable_size and
 * tars_slot_size are checked against what the allocator reports it
 * reserved (struct tars_stats.live_reserved), so a wrong formula cannot
 * hide behind a loose ">=".
 *
 * Accesses that must fault run in a forked child (EXPECT_FAULT) through
 * volatile pointers, so the optimizer cannot drop them.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "tars.h"
#include "util.h"

#define SENTINEL 0x7a5e

TestSuite(api, .init = no_env);
TestSuite(layout, .init = no_env);

static size_t
round16(size_t n)
{
	return (n + 15) & ~(size_t)15;
}

/* Interesting sizes around every boundary up to three pages. */
static size_t
boundary_sizes(size_t *out, size_t max)
{
	size_t ps = page_size();
	size_t n = 0;
	const size_t base[] = {
		0, 1, 2, 7, 8, 15, 16, 17, 31, 32, 33, 47, 48, 49, 63, 64, 65,
		80, 81, 96, 100, 112, 127, 128, 129, 160, 200, 255, 256, 257,
		320, 384, 448, 500, 511, 512, 513, 640, 768, 896, 1000, 1023,
		1024, 1025, 1280, 1536, 1792, 2000, 2047, 2048, 2049,
	};
	for (size_t i = 0; i < sizeof(base) / sizeof(base[0]) && n < max; i++) {
		out[n++] = base[i];
	}
	const size_t around[] = {ps / 2, ps, 2 * ps, 3 * ps};
	for (size_t i = 0; i < 4; i++) {
		for (size_t d = 0; d <= 17 && n < max; d++) {
			size_t s = around[i] - 17 + d * 2;
			out[n++] = s;
		}
		if (n < max) {
			out[n++] = around[i];
		}
	}
	return n;
}

static size_t
live_reserved(void)
{
	struct tars_stats s;
	tars_stats_get(&s);
	return s.live_reserved;
}

/* ---------------------------------------------------------------- malloc */

Test(api, malloc_every_size_up_to_three_pages)
{
	size_t ps = page_size();
	for (size_t size = 0; size <= 3 * ps; size++) {
		unsigned char *p = tars_malloc(size);
		cr_assert_not_null(p, "malloc(%zu): %s", size, strerror(errno));
		if (size >= 16) {
			cr_assert_eq((uintptr_t)p % 16, 0, "malloc(%zu) = %p", size, (void *)p);
		}
		cr_assert_eq(tars_usable_size(p), size, "usable_size(malloc(%zu))", size);
		fill_seeded(p, size, (unsigned)size);
		cr_assert(check_seeded(p, size, (unsigned)size), "size %zu", size);
		if (size & 1) {
			tars_freezero(p, size);
		} else {
			tars_free(p);
		}
	}
	struct tars_stats s;
	tars_stats_get(&s);
	cr_assert_eq(s.live_count, 0);
	cr_assert_eq(s.live_requested, 0);
	cr_assert_eq(s.live_reserved, 0);
}

Test(api, usable_size_is_the_whole_slot_when_no_canary_fits)
{
	/* A request that fills its slot exactly has no slack to guard. */
	const size_t exact[] = {16, 32, 64, 80, 128, 256, 1024, 2048};
	for (size_t i = 0; i < sizeof(exact) / sizeof(exact[0]); i++) {
		void *p = tars_malloc(exact[i]);
		cr_assert_not_null(p);
		cr_assert_eq(tars_usable_size(p), exact[i]);
		tars_free(p);
	}
	cr_assert_eq(tars_usable_size(NULL), 0);
}

Test(api, slot_size_matches_the_bytes_reserved)
{
	size_t sizes[128];
	size_t n = boundary_sizes(sizes, 128);
	for (size_t i = 0; i < n; i++) {
		size_t before = live_reserved();
		void *p = tars_malloc(sizes[i]);
		cr_assert_not_null(p);
		size_t got = live_reserved() - before;
		cr_assert_eq(tars_slot_size(sizes[i]), got,
		    "tars_slot_size(%zu) = %zu, but the allocator reserved %zu",
		    sizes[i], tars_slot_size(sizes[i]), got);
		cr_assert_geq(tars_slot_size(sizes[i]), sizes[i]);
		tars_free(p);
	}
}

Test(api, slot_size_of_large_blocks_counts_their_data_pages)
{
	size_t ps = page_size();
	/* The block end is 16-aligned: any size that rounds up to a page
	 * multiple occupies exactly that many pages. */
	for (size_t k = 1; k <= 3; k++) {
		for (size_t size = k * ps - 15; size <= k * ps; size++) {
			if (size <= ps / 2) {
				continue;
			}
			struct tars_stats a, b;
			tars_stats_get(&a);
			void *p = tars_malloc(size);
			cr_assert_not_null(p);
			tars_stats_get(&b);
			cr_assert_eq(b.large_pages - a.large_pages, k, "size %zu", size);
			cr_assert_eq(tars_slot_size(size), k * ps,
			    "tars_slot_size(%zu) = %zu, want %zu (%zu data pages)",
			    size, tars_slot_size(size), k * ps, k);
			tars_free(p);
		}
	}
}

Test(api, errno_is_unchanged_on_success)
{
	size_t ps = page_size();
	/* From the very first call: initialisation must not leak errno. */
	errno = SENTINEL;
	void *a = tars_malloc(1);
	cr_assert_not_null(a);
	cr_assert_eq(errno, SENTINEL, "tars_malloc (first call) set errno %d", errno);
	const size_t sizes[] = {0, 1, 64, 2048, 2049, ps, 3 * ps};
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		size_t s = sizes[i];
		errno = SENTINEL;
		void *m = tars_malloc(s);
		void *c = tars_calloc(1, s);
		void *al = tars_aligned_alloc(64, s);
		void *k = tars_malloc_key(s);
		cr_assert(m && c && al && k, "size %zu", s);
		m = tars_realloc(m, s + 100);
		cr_assert_not_null(m);
		k = tars_realloc_key(k, s + 1);
		cr_assert_not_null(k);
		cr_assert_eq(tars_protect_read(k), 0);
		cr_assert_eq(tars_protect_none(k), 0);
		cr_assert_eq(tars_protect_write(k), 0);
		volatile size_t sink = tars_usable_size(m) + tars_slot_size(s);
		(void)sink;
		tars_free(m);
		tars_free(c);
		tars_free(al);
		tars_freezero(k, s + 1);
		cr_assert_eq(errno, SENTINEL, "size %zu: errno changed to %d", s, errno);
	}
	/* Enough blocks to map new pages and grow the metadata. */
	void *many[3000];
	errno = SENTINEL;
	for (size_t i = 0; i < 3000; i++) {
		many[i] = tars_malloc(i % 3 == 0 ? 100 : 2048 - i % 100);
		cr_assert_not_null(many[i]);
	}
	for (size_t i = 0; i < 3000; i++) {
		tars_free(many[i]);
	}
	cr_assert_eq(errno, SENTINEL, "errno changed to %d", errno);
	tars_free(a);
}

/* ---------------------------------------------------------------- size 0 */

Test(api, malloc_zero_gives_distinct_pointers)
{
	enum { N = 1000 };
	void *p[N];
	for (size_t i = 0; i < N; i++) {
		p[i] = i % 2 ? tars_malloc(0) : tars_calloc(0, 0);
		cr_assert_not_null(p[i]);
		cr_assert_eq(tars_usable_size(p[i]), 0);
		for (size_t j = 0; j < i; j++) {
			cr_assert_neq(p[i], p[j], "malloc(0) returned %p twice", p[i]);
		}
	}
	/* And they do not collide with real blocks. */
	void *real = tars_malloc(16);
	for (size_t i = 0; i < N; i++) {
		cr_assert_neq(p[i], real);
	}
	for (size_t i = 0; i < N; i++) {
		if (i % 3) {
			tars_free(p[i]);
		} else {
			tars_freezero(p[i], 0);
		}
	}
	tars_free(real);
	struct tars_stats s;
	tars_stats_get(&s);
	cr_assert_eq(s.live_count, 0);
}

static void
read_zero_size(void *arg)
{
	(void)arg;
	volatile unsigned char *p = launder(tars_malloc(0));
	CHILD_CHECK(p != NULL);
	unsigned char c = p[0];
	(void)c;
}

static void
write_zero_size(void *arg)
{
	(void)arg;
	volatile unsigned char *p = launder(tars_malloc(0));
	CHILD_CHECK(p != NULL);
	p[0] = 1;
}

static void
write_realloc_zero(void *arg)
{
	(void)arg;
	void *q = tars_malloc(100);
	CHILD_CHECK(q != NULL);
	volatile unsigned char *p = launder(tars_realloc(q, 0));
	CHILD_CHECK(p != NULL);
	p[0] = 1;
}

Test(api, zero_size_pointer_faults_on_read)
{
	EXPECT_FAULT(read_zero_size, NULL);
}

Test(api, zero_size_pointer_faults_on_write)
{
	EXPECT_FAULT(write_zero_size, NULL);
}

Test(api, realloc_to_zero_gives_a_zero_size_pointer)
{
	EXPECT_FAULT(write_realloc_zero, NULL);
	void *p = tars_malloc(100);
	cr_assert_not_null(p);
	void *z = tars_realloc(p, 0);
	cr_assert_not_null(z);
	cr_assert_eq(tars_usable_size(z), 0);
	tars_free(z);
	struct tars_stats s;
	tars_stats_get(&s);
	cr_assert_eq(s.live_count, 0, "realloc(p, 0) must free p");
}

/* ---------------------------------------------------------------- calloc */

Test(api, calloc_is_zeroed_even_in_reused_memory)
{
	size_t sizes[128];
	size_t n = boundary_sizes(sizes, 128);
	for (size_t i = 0; i < n; i++) {
		size_t s = sizes[i];
		/* Dirty a few slots of this class first. */
		void *dirty[8];
		for (int j = 0; j < 8; j++) {
			dirty[j] = tars_malloc(s);
			cr_assert_not_null(dirty[j]);
			memset(dirty[j], 0xff, s);
		}
		for (int j = 0; j < 8; j++) {
			tars_free(dirty[j]);
		}
		for (int j = 0; j < 8; j++) {
			dirty[j] = tars_calloc(1, s);
			cr_assert_not_null(dirty[j]);
			cr_assert(all_bytes(dirty[j], s, 0), "calloc(1, %zu) not zeroed", s);
		}
		for (int j = 0; j < 8; j++) {
			tars_free(dirty[j]);
		}
	}
	unsigned char *p = tars_calloc(3, 1000);
	cr_assert_not_null(p);
	cr_assert(all_bytes(p, 3000, 0));
	cr_assert_eq(tars_usable_size(p), 3000);
	tars_free(p);
}

Test(api, calloc_overflow_fails_with_enomem)
{
	const size_t pairs[][2] = {
		{SIZE_MAX, 2}, {2, SIZE_MAX}, {SIZE_MAX, SIZE_MAX},
		{(SIZE_MAX >> 1) + 1, 2}, {(size_t)1 << 33, (size_t)1 << 33},
		{65537, SIZE_MAX / 65536},
	};
	for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++) {
		errno = 0;
		void *p = tars_calloc(pairs[i][0], pairs[i][1]);
		cr_assert_null(p, "calloc(%zu, %zu)", pairs[i][0], pairs[i][1]);
		cr_assert_eq(errno, ENOMEM, "calloc(%zu, %zu): errno %d",
		    pairs[i][0], pairs[i][1], errno);
	}
}

Test(api, impossibly_large_requests_fail_with_enomem)
{
	size_t ps = page_size();
	const size_t huge[] = {
		SIZE_MAX, SIZE_MAX - 1, SIZE_MAX - ps, SIZE_MAX - 2 * ps - 15,
		SIZE_MAX / 2, (size_t)PTRDIFF_MAX, (size_t)1 << 60, (size_t)1 << 48,
	};
	for (size_t i = 0; i < sizeof(huge) / sizeof(huge[0]); i++) {
		errno = 0;
		cr_assert_null(tars_malloc(huge[i]), "malloc(%zu)", huge[i]);
		cr_assert_eq(errno, ENOMEM, "malloc(%zu): errno %d", huge[i], errno);
		errno = 0;
		cr_assert_null(tars_calloc(1, huge[i]), "calloc(1, %zu)", huge[i]);
		cr_assert_eq(errno, ENOMEM);
		errno = 0;
		cr_assert_null(tars_aligned_alloc(ps, huge[i]));
		cr_assert_eq(errno, ENOMEM, "aligned_alloc(page, %zu): errno %d",
		    huge[i], errno);
		errno = 0;
		cr_assert_null(tars_malloc_key(huge[i]), "malloc_key(%zu)", huge[i]);
		cr_assert_eq(errno, ENOMEM);
	}
	/* Nothing leaked, and the allocator still works. */
	struct tars_stats s;
	tars_stats_get(&s);
	cr_assert_eq(s.live_count, 0);
	cr_assert_eq(s.large_count + s.key_count, 0);
	void *p = tars_malloc(10);
	cr_assert_not_null(p);
	tars_free(p);
}

/* ---------------------------------------------------------------- junk */

Test(api, fresh_blocks_are_junk_filled)
{
	size_t sizes[128];
	size_t n = boundary_sizes(sizes, 128);
	for (int round = 0; round < 2; round++) {
		for (size_t i = 0; i < n; i++) {
			size_t s = sizes[i];
			unsigned char *p = tars_malloc(s);
			cr_assert_not_null(p);
			cr_assert(all_bytes(p, s, 0xdf), "malloc(%zu) round %d: not 0xdf",
			    s, round);
			unsigned char *k = tars_malloc_key(s);
			cr_assert_not_null(k);
			cr_assert(all_bytes(k, s, 0xdf), "malloc_key(%zu): not 0xdf", s);
			unsigned char *a = tars_aligned_alloc(256, s);
			cr_assert_not_null(a);
			cr_assert(all_bytes(a, s, 0xdf), "aligned_alloc(256, %zu)", s);
			/* Dirty them: the second round reuses the memory. */
			memset(p, 0x11, s);
			memset(k, 0x22, s);
			memset(a, 0x33, s);
			tars_free(p);
			tars_free(k);
			tars_free(a);
		}
	}
}

/* ---------------------------------------------------------------- realloc */

Test(api, realloc_keeps_the_contents)
{
	size_t sizes[128];
	size_t n = boundary_sizes(sizes, 128);
	for (size_t i = 0; i < n; i++) {
		for (size_t j = 0; j < n; j += 3) {
			size_t from = sizes[i], to = sizes[j];
			unsigned char *p = tars_malloc(from);
			cr_assert_not_null(p);
			fill_seeded(p, from, (unsigned)(i * 1000 + j));
			unsigned char *q = tars_realloc(p, to);
			cr_assert_not_null(q, "realloc(%zu -> %zu)", from, to);
			size_t keep = from < to ? from : to;
			cr_assert(check_seeded(q, keep, (unsigned)(i * 1000 + j)),
			    "realloc(%zu -> %zu) lost the contents", from, to);
			cr_assert_eq(tars_usable_size(q), to);
			if (to > from) {
				/* The new tail is writable. */
				memset(q + from, 0x5a, to - from);
			}
			tars_freezero(q, to);
		}
	}
	struct tars_stats s;
	tars_stats_get(&s);
	cr_assert_eq(s.live_count, 0);
}

Test(api, realloc_null_acts_as_malloc)
{
	size_t ps = page_size();
	const size_t sizes[] = {0, 1, 100, 2048, 2049, 3 * ps};
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		struct tars_stats a, b;
		tars_stats_get(&a);
		unsigned char *p = tars_realloc(NULL, sizes[i]);
		cr_assert_not_null(p);
		tars_stats_get(&b);
		cr_assert_eq(b.mallocs - a.mallocs, 1);
		cr_assert_eq(b.frees, a.frees);
		cr_assert_eq(tars_usable_size(p), sizes[i]);
		cr_assert(all_bytes(p, sizes[i], 0xdf));
		memset(p, 1, sizes[i]);
		tars_freezero(p, sizes[i]);
	}
}

Test(api, failed_realloc_leaves_the_block_intact)
{
	size_t ps = page_size();
	const size_t sizes[] = {1, 100, 2048, 2049, 3 * ps};
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		unsigned char *p = tars_malloc(sizes[i]);
		cr_assert_not_null(p);
		fill_seeded(p, sizes[i], 77);
		errno = 0;
		cr_assert_null(tars_realloc(p, hide(SIZE_MAX)));
		cr_assert_eq(errno, ENOMEM);
		errno = 0;
		cr_assert_null(tars_realloc(p, (size_t)1 << 50));
		cr_assert_eq(errno, ENOMEM);
		cr_assert(check_seeded(p, sizes[i], 77), "failed realloc touched the block");
		cr_assert_eq(tars_usable_size(p), sizes[i]);
		/* Still live and still the same size. */
		tars_freezero(p, sizes[i]);
	}
	unsigned char *k = tars_malloc_key(100);
	cr_assert_not_null(k);
	fill_seeded(k, 100, 5);
	cr_assert_eq(tars_protect_none(k), 0);
	errno = 0;
	cr_assert_null(tars_realloc_key(k, hide(SIZE_MAX)));
	cr_assert_eq(errno, ENOMEM);
	cr_assert_eq(tars_protect_read(k), 0);
	cr_assert(check_seeded(k, 100, 5));
	tars_freezero(k, 100);
}

/* ---------------------------------------------------------------- aligned */

Test(api, aligned_alloc_every_power_of_two_up_to_the_page)
{
	size_t ps = page_size();
	for (size_t al = 1; al <= ps; al <<= 1) {
		const size_t sizes[] = {
			0, 1, al > 1 ? al - 1 : 1, al, al + 1, 3 * al, 100, 2047,
			2048, 2049, ps - 1, ps, ps + 1, 3 * ps,
		};
		void *ptrs[sizeof(sizes) / sizeof(sizes[0])];
		for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
			size_t s = sizes[i];
			errno = SENTINEL;
			unsigned char *p = tars_aligned_alloc(al, s);
			cr_assert_not_null(p, "aligned_alloc(%zu, %zu): %s", al, s,
			    strerror(errno));
			cr_assert_eq(errno, SENTINEL);
			cr_assert_eq((uintptr_t)p % al, 0, "aligned_alloc(%zu, %zu) = %p",
			    al, s, (void *)p);
			if (s >= 16) {
				cr_assert_eq((uintptr_t)p % 16, 0);
			}
			cr_assert_geq(tars_usable_size(p), s);
			fill_seeded(p, s, (unsigned)(al + s));
			ptrs[i] = p;
		}
		for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
			cr_assert(check_seeded(ptrs[i], sizes[i], (unsigned)(al + sizes[i])),
			    "aligned_alloc(%zu, %zu) block overwritten", al, sizes[i]);
			tars_freezero(ptrs[i], sizes[i]);
		}
	}
	struct tars_stats st;
	tars_stats_get(&st);
	cr_assert_eq(st.live_count, 0);
}

Test(api, aligned_alloc_rejects_bad_alignments)
{
	size_t ps = page_size();
	const size_t bad[] = {0, 3, 5, 6, 12, 24, 48, 100, ps - 1, ps + 1, 2 * ps,
	    4 * ps, SIZE_MAX, (SIZE_MAX >> 1) + 1};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		errno = 0;
		cr_assert_null(tars_aligned_alloc(bad[i], 64), "alignment %zu", bad[i]);
		cr_assert_eq(errno, EINVAL, "alignment %zu: errno %d", bad[i], errno);
	}
	struct tars_stats s;
	tars_stats_get(&s);
	cr_assert_eq(s.live_count, 0);
}

/* ---------------------------------------------------------------- keys */

Test(api, key_allocations_start_readable_and_writable)
{
	size_t ps = page_size();
	for (size_t size = 0; size <= 3 * ps; size += (size < 64 ? 1 : 61)) {
		unsigned char *k = tars_malloc_key(size);
		cr_assert_not_null(k, "malloc_key(%zu)", size);
		if (size >= 16) {
			cr_assert_eq((uintptr_t)k % 16, 0);
		}
		cr_assert_eq(tars_usable_size(k), size);
		fill_seeded(k, size, (unsigned)size);
		cr_assert(check_seeded(k, size, (unsigned)size));
		tars_freezero(k, size);
	}
	struct tars_stats s;
	tars_stats_get(&s);
	cr_assert_eq(s.key_count, 0);
	cr_assert_eq(s.live_count, 0);
}

static void
key_read_after_protect_read(void *arg)
{
	size_t size = (size_t)(uintptr_t)arg;
	unsigned char *k = tars_malloc_key(size);
	CHILD_CHECK(k != NULL);
	fill_seeded(k, size, 9);
	CHILD_CHECK(tars_protect_read(k) == 0);
	CHILD_CHECK(check_seeded(k, size, 9));
	CHILD_CHECK(tars_protect_none(k) == 0);
	CHILD_CHECK(tars_protect_write(k) == 0);
	volatile unsigned char *vk = k;  /* writable again */
	vk[0] ^= 1;
	vk[size - 1] ^= 1;
	vk[0] ^= 1;
	vk[size - 1] ^= 1;
	CHILD_CHECK(tars_protect_read(k) == 0);
	CHILD_CHECK(tars_protect_read(k) == 0); /* idempotent */
	CHILD_CHECK(check_seeded(k, size, 9));
	tars_freezero(k, size);  /* a read-only key can be freed */
}

static void
key_write_after_protect_read(void *arg)
{
	size_t size = (size_t)(uintptr_t)arg;
	volatile unsigned char *k = tars_malloc_key(size);
	CHILD_CHECK(k != NULL);
	CHILD_CHECK(tars_protect_read((void *)k) == 0);
	unsigned char c = k[size - 1];  /* reading is fine */
	(void)c;
	k[size - 1] = 1;
}

static void
key_read_after_protect_none(void *arg)
{
	size_t size = (size_t)(uintptr_t)arg;
	volatile unsigned char *k = tars_malloc_key(size);
	CHILD_CHECK(k != NULL);
	k[0] = 7;
	CHILD_CHECK(tars_protect_none((void *)k) == 0);
	unsigned char c = k[0];
	(void)c;
}

static void
key_write_after_reopen(void *arg)
{
	size_t size = (size_t)(uintptr_t)arg;
	volatile unsigned char *k = tars_malloc_key(size);
	CHILD_CHECK(k != NULL);
	CHILD_CHECK(tars_protect_none((void *)k) == 0);
	CHILD_CHECK(tars_protect_write((void *)k) == 0);
	for (size_t i = 0; i < size; i++) {
		k[i] = (unsigned char)i;
	}
	CHILD_CHECK(tars_protect_read((void *)k) == 0);
	for (size_t i = 0; i < size; i++) {
		CHILD_CHECK(k[i] == (unsigned char)i);
	}
	CHILD_CHECK(tars_protect_none((void *)k) == 0);
	/* Free works on a closed key. */
	tars_freezero((void *)k, size);
	struct tars_stats s;
	tars_stats_get(&s);
	CHILD_CHECK(s.key_count == 0);
}

Test(api, protect_read_allows_reads_and_faults_writes)
{
	size_t ps = page_size();
	const size_t sizes[] = {1, 32, ps, 2 * ps + 5};
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		void *arg = (void *)(uintptr_t)sizes[i];
		EXPECT_EXIT0(key_read_after_protect_read, arg);
		EXPECT_FAULT(key_write_after_protect_read, arg);
	}
}

Test(api, protect_none_faults_reads)
{
	size_t ps = page_size();
	const size_t sizes[] = {1, 32, ps, 2 * ps + 5};
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		EXPECT_FAULT(key_read_after_protect_none, (void *)(uintptr_t)sizes[i]);
	}
}

Test(api, protect_write_reopens_a_closed_key)
{
	size_t ps = page_size();
	const size_t sizes[] = {1, 32, ps, 2 * ps + 5};
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		EXPECT_EXIT0(key_write_after_reopen, (void *)(uintptr_t)sizes[i]);
	}
}

Test(api, realloc_key_keeps_the_contents_and_stays_a_key)
{
	size_t ps = page_size();
	const size_t sizes[] = {0, 1, 16, 100, 2049, ps, ps + 1, 3 * ps};
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		for (size_t j = 0; j < sizeof(sizes) / sizeof(sizes[0]); j++) {
			size_t from = sizes[i], to = sizes[j];
			unsigned char *k = tars_malloc_key(from);
			cr_assert_not_null(k);
			fill_seeded(k, from, (unsigned)(i + 10 * j));
			/* The old key may be closed (read-only or none). */
			if (j % 2) {
				cr_assert_eq(tars_protect_read(k), 0);
			}
			unsigned char *n = tars_realloc_key(k, to);
			cr_assert_not_null(n, "realloc_key(%zu -> %zu)", from, to);
			size_t keep = from < to ? from : to;
			cr_assert(check_seeded(n, keep, (unsigned)(i + 10 * j)),
			    "realloc_key(%zu -> %zu) lost the contents", from, to);
			/* Readable and writable, and still a key. */
			memset(n, 0x3c, to);
			cr_assert_eq(tars_usable_size(n), to);
			cr_assert_eq(tars_protect_read(n), 0);
			cr_assert_eq(tars_protect_none(n), 0);
			tars_freezero(n, to);
		}
	}
	/* NULL acts as tars_malloc_key. */
	unsigned char *k = tars_realloc_key(NULL, 40);
	cr_assert_not_null(k);
	cr_assert_eq(tars_protect_none(k), 0);
	tars_free(k);
	struct tars_stats s;
	tars_stats_get(&s);
	cr_assert_eq(s.key_count, 0);
	cr_assert_eq(s.live_count, 0);
}

Test(api, realloc_of_a_key_stays_a_key)
{
	unsigned char *k = tars_malloc_key(100);
	cr_assert_not_null(k);
	fill_seeded(k, 100, 3);
	cr_assert_eq(tars_protect_none(k), 0);
	unsigned char *n = tars_realloc(k, 300);
	cr_assert_not_null(n);
	cr_assert(check_seeded(n, 100, 3));
	struct tars_stats s;
	tars_stats_get(&s);
	cr_assert_eq(s.key_count, 1);
	cr_assert_eq(tars_protect_read(n), 0);
	tars_free(n);
}

/* ---------------------------------------------------------------- layout */

struct poke {
	int kind;            /* 0 large, 1 key, 2 aligned_alloc(page) */
	size_t size;
	long where;          /* 0: 16 bytes past the rounded end; 1: leading
	                      * guard; 2: p[-1] */
};

static void *
alloc_kind(int kind, size_t size)
{
	switch (kind) {
	case 0:
		return tars_malloc(size);
	case 1:
		return tars_malloc_key(size);
	default:
		return tars_aligned_alloc(page_size(), size);
	}
}

static void
poke_guard(void *arg)
{
	const struct poke *k = arg;
	size_t ps = page_size();
	volatile unsigned char *p = launder(alloc_kind(k->kind, k->size));
	CHILD_CHECK(p != NULL);
	if (k->where == 0) {
		/* Everything up to the rounded end is ours. */
		volatile unsigned char *end = p + round16(k->size);
		unsigned char c = end[-1];
		(void)c;
		for (int i = 0; i < 16; i++) {
			end[i] = 0x41;
		}
	} else if (k->where == 1) {
		volatile unsigned char *lead =
		    (volatile unsigned char *)(((uintptr_t)p & ~(uintptr_t)(ps - 1)) - 1);
		unsigned char c = *lead;
		(void)c;
	} else {
		p[-1] = 0x41;
	}
}

static void
expect_guards(int kind, size_t size)
{
	struct poke k = {kind, size, 0};
	EXPECT_FAULT(poke_guard, &k);
	k.where = 1;
	EXPECT_FAULT(poke_guard, &k);
}

Test(layout, large_blocks_end_at_the_trailing_guard)
{
	size_t ps = page_size();
	size_t sizes[128];
	size_t n = boundary_sizes(sizes, 128);
	for (size_t i = 0; i < n; i++) {
		if (sizes[i] <= ps / 2) {
			continue;
		}
		unsigned char *p = tars_malloc(sizes[i]);
		cr_assert_not_null(p);
		cr_assert_eq(((uintptr_t)p + round16(sizes[i])) % ps, 0,
		    "malloc(%zu) = %p does not end at a page boundary", sizes[i], (void *)p);
		/* The block starts in its first data page. */
		struct tars_stats s;
		tars_stats_get(&s);
		cr_assert_eq(s.large_pages, (round16(sizes[i]) + ps - 1) / ps);
		tars_free(p);
	}
	const size_t probe[] = {ps / 2 + 1, ps - 17, ps - 1, ps, ps + 1, 2 * ps + 100, 3 * ps};
	for (size_t i = 0; i < sizeof(probe) / sizeof(probe[0]); i++) {
		expect_guards(0, probe[i]);
	}
}

Test(layout, key_blocks_end_at_the_trailing_guard)
{
	size_t ps = page_size();
	const size_t sizes[] = {1, 15, 16, 17, 100, ps / 2, ps - 1, ps, ps + 1, 3 * ps};
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		unsigned char *p = tars_malloc_key(sizes[i]);
		cr_assert_not_null(p);
		cr_assert_eq(((uintptr_t)p + round16(sizes[i])) % ps, 0,
		    "malloc_key(%zu) = %p", sizes[i], (void *)p);
		tars_free(p);
		expect_guards(1, sizes[i]);
	}
}

Test(layout, page_multiple_blocks_have_a_guard_right_before)
{
	size_t ps = page_size();
	for (size_t k = 1; k <= 3; k++) {
		struct poke pk = {0, k * ps, 2};
		EXPECT_FAULT(poke_guard, &pk);
		pk.kind = 1;
		EXPECT_FAULT(poke_guard, &pk);
		pk.kind = 2;
		EXPECT_FAULT(poke_guard, &pk);
		unsigned char *p = tars_malloc(k * ps);
		cr_assert_not_null(p);
		cr_assert_eq((uintptr_t)p % ps, 0);
		tars_free(p);
	}
}

static void
poke_zero_key(void *arg)
{
	(void)arg;
	volatile unsigned char *k = launder(tars_malloc_key(0));
	CHILD_CHECK(k != NULL);
	k[0] = 1;
}

Test(layout, zero_size_key_points_at_its_guard)
{
	EXPECT_FAULT(poke_zero_key, NULL);
	void *a = tars_malloc_key(0), *b = tars_malloc_key(0);
	cr_assert(a != NULL && b != NULL && a != b);
	cr_assert_eq(tars_usable_size(a), 0);
	cr_assert_eq(tars_protect_none(a), 0);
	cr_assert_eq(tars_protect_write(a), 0);
	tars_free(a);
	tars_freezero(b, 0);
}
