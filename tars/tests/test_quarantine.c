/*
 * Address reuse (suite "quarantine", issues 12 and 16): a freed large
 * block or key keeps its address out of circulation for the next
 * `quarantine` frees, so a second free aborts even after other
 * allocations of the same size, and a stale pointer faults (keys always,
 * large blocks with freed_none=1) or reads zeros (large blocks by
 * default: their pages are kept, wiped, for reuse without a system call),
 * never another live block; the chunk path's optional delayed-free queue
 * (delay=1) does the same for the next 16 local frees.
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

TestSuite(quarantine, .init = no_env, .timeout = 60);

#define BUG __attribute__((noinline, optimize(0)))

/* ---- large blocks and keys -------------------------------------------- */

static BUG void
stale_large_after_reuse(void *arg)
{
	size_t size = (size_t)(uintptr_t)arg;
	CHILD_CHECK(tars_option_set("freed_none", 1) == 0);
	volatile unsigned char *p = tars_malloc(size);
	CHILD_CHECK(p != NULL);
	tars_free((void *)p);
	/* Before the quarantine the next mapping of that size came back at
	 * that address, and p read its bytes. */
	for (int i = 0; i < 10; i++) {
		unsigned char *q = tars_malloc(size);
		CHILD_CHECK(q != NULL && q != p);
		memset(q, 0x42, size);
	}
	fprintf(stderr, "read %#x\n", p[0]);   /* faults */
	_exit(0);
}

Test(quarantine, a_stale_large_pointer_faults_after_other_allocations)
{
	EXPECT_FAULT(stale_large_after_reuse, (void *)(uintptr_t)20000);    /* a slot */
	EXPECT_FAULT(stale_large_after_reuse, (void *)(uintptr_t)200000);   /* a mapping */
}

/* The default: pages kept writable; within the window no other block is
 * put there, so a stale pointer reads the wipe. */
static BUG void
stale_large_default(void *arg)
{
	size_t size = (size_t)(uintptr_t)arg;
	volatile unsigned char *p = tars_malloc(size);
	CHILD_CHECK(p != NULL);
	memset((void *)p, 0x5a, size);
	tars_free((void *)p);
	unsigned char *q[4];
	for (int i = 0; i < 4; i++) {
		q[i] = tars_malloc(size);
		CHILD_CHECK(q[i] != NULL);
		memset(q[i], 0x42, size);
		tars_free(q[i]);   /* free and reuse: still not p's pages */
	}
	for (size_t i = 0; i < size; i += 61) {
		CHILD_CHECK(p[i] == 0);
	}
	_exit(0);
}

Test(quarantine, a_stale_large_pointer_reads_the_wipe_by_default)
{
	EXPECT_EXIT0(stale_large_default, (void *)(uintptr_t)20000);
	EXPECT_EXIT0(stale_large_default, (void *)(uintptr_t)200000);
}

static BUG void
stale_key_after_reuse(void *arg)
{
	(void)arg;
	volatile unsigned char *k = tars_malloc_key(32);
	CHILD_CHECK(k != NULL);
	tars_free((void *)k);
	for (int i = 0; i < 10; i++) {
		unsigned char *n = tars_malloc_key(32);
		CHILD_CHECK(n != NULL && n != k);
		memset(n, 0x42, 32);   /* the next key's secret */
	}
	fprintf(stderr, "read %#x\n", k[0]);   /* faults, never 0x42 */
	_exit(0);
}

Test(quarantine, a_stale_key_pointer_faults_and_never_reads_the_next_key)
{
	EXPECT_FAULT(stale_key_after_reuse, NULL);
}

static BUG void
double_free_large_after_reuse(void *arg)
{
	(void)arg;
	void *p = tars_malloc(20000);
	CHILD_CHECK(p != NULL);
	tars_free(p);
	void *q = tars_malloc(20000);   /* once at p's address: freed below */
	CHILD_CHECK(q != NULL && q != p);
	tars_free(p);
	_exit(3);
}

Test(quarantine, a_double_free_after_reuse_aborts)
{
	EXPECT_ABORT(double_free_large_after_reuse, NULL,
	    "tars: tars_free(): double free of");
}

/* The window, for mappings (blocks of over 16 pages): the last
 * `quarantine` freed are held; beyond, a block of the same size reuses
 * one with no system call, up to `large_cache` pages kept; the rest is
 * unmapped. */
Test(quarantine, the_window_and_the_cache_of_large_mappings)
{
	cr_assert_eq(tars_option_set("quarantine", 4), 0);
	cr_assert_eq(tars_option_set("large_cache", 100), 0);
	size_t ps = page_size(), size = 20 * ps;
	void *p[12];
	for (int i = 0; i < 12; i++) {
		p[i] = tars_malloc(size);
		cr_assert_not_null(p[i]);
	}
	struct tars_stats a = snap();
	for (int i = 0; i < 12; i++) {
		tars_free(p[i]);
	}
	struct tars_stats b = snap();
	/* 100 pages: five 20-page blocks kept; the rest dropped, and
	 * unmapped once out of the window. */
	cr_assert_eq(b.large_cached_pages, 100);
	cr_assert_eq(b.quarantined_blocks, 5 + 4 - 4 + 4, "%zu", b.quarantined_blocks);
	cr_assert_lt(b.locked_bytes, a.locked_bytes);
	/* Blocks of that size now come from the cache: no system call. */
	void *q[8];
	for (int i = 0; i < 5; i++) {
		q[i] = tars_malloc(size);
		cr_assert_not_null(q[i]);
	}
	struct tars_stats c = snap();
	cr_assert_eq(c.syscalls, b.syscalls, "%llu system calls",
	    (unsigned long long)(c.syscalls - b.syscalls));
	cr_assert_eq(c.large_reused - b.large_reused, 5);
	for (int i = 0; i < 5; i++) {
		tars_free(q[i]);
	}
	/* quarantine=0, large_cache=0: unmapped at once. */
	cr_assert_eq(tars_option_set("quarantine", 0), 0);
	cr_assert_eq(tars_option_set("large_cache", 0), 0);
	void *r = tars_malloc(size);
	cr_assert_not_null(r);
	tars_free(r);
	struct tars_stats d = snap();
	cr_assert_eq(d.quarantined_blocks, 0, "lowering the options empties it");
	cr_assert_eq(d.large_cached_pages, 0);
}

/* Multi-page slots: a freed slot waits out its class's window, then is
 * reused with no system call; a burst of allocations and frees settles. */
Test(quarantine, multi_page_slots_settle_with_no_system_call)
{
	/* Room for all four classes' windows (else the cache bound unmaps
	 * the slabs one class empties while another grows). */
	cr_assert_eq(tars_option_set("large_cache", 4096), 0);
	size_t sizes[] = {4096, 5000, 16384, 65536};
	for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
		void *p[64];
		for (int round = 0; round < 8; round++) {
			struct tars_stats a = snap();
			for (int i = 0; i < 16; i++) {
				p[i] = tars_malloc(sizes[k]);
				cr_assert_not_null(p[i]);
			}
			for (int i = 0; i < 16; i++) {
				tars_free(p[i]);
			}
			struct tars_stats b = snap();
			if (round >= 5) {   /* the window (64 slots at most) is full */
				cr_assert_eq(b.syscalls, a.syscalls, "size %zu round %d: %llu "
				    "system calls", sizes[k], round,
				    (unsigned long long)(b.syscalls - a.syscalls));
			}
		}
	}
	struct tars_stats s = snap();
	cr_assert_eq(s.live_count, 0);
	cr_assert_gt(s.slabs, 0);
	cr_assert_gt(s.slab_held, 0);
}

/* ---- chunks: the delayed-free queue ----------------------------------- */

static BUG void
chunk_double_free_after_reuse(void *arg)
{
	long delay = (long)(uintptr_t)arg;
	CHILD_CHECK(tars_option_set("delay", delay) == 0);
	CHILD_CHECK(tars_option_set("random", 0) == 0);   /* first fit: p comes back */
	void *keep = tars_malloc(64);
	void *p = tars_malloc(64);
	CHILD_CHECK(keep != NULL && p != NULL);
	tars_free(p);
	void *q = tars_malloc(64);
	CHILD_CHECK(q != NULL);
	if (q == p) {
		_exit(4);   /* handed straight back: the second free frees q */
	}
	tars_free(p);
	_exit(3);
}

Test(quarantine, delay_1_keeps_a_freed_chunk_out_of_reuse_and_catches_the_second_free)
{
	EXPECT_ABORT(chunk_double_free_after_reuse, (void *)(uintptr_t)1,
	    "tars: tars_free(): double free of");
	/* The control: without the queue, first fit hands the slot back. */
	struct child_result r;
	tars_run_child(chunk_double_free_after_reuse, (void *)(uintptr_t)0, &r);
	cr_assert(!r.signaled && r.exit_code == 4, "child %d %d: %s", r.signaled,
	    r.signaled ? r.sig : r.exit_code, r.err);
}

Test(quarantine, delay_1_frees_are_wiped_at_once_and_counted_exactly)
{
	cr_assert_eq(tars_option_set("delay", 1), 0);
	enum { N = 100 };
	unsigned char *p[N];
	for (int i = 0; i < N; i++) {
		p[i] = tars_malloc(48);
		cr_assert_not_null(p[i]);
		memset(p[i], 0x5a, 48);
	}
	for (int i = 0; i < N; i++) {
		tars_free(p[i]);
		cr_assert(all_bytes(p[i], 48, 0xdf), "slot %d not wiped at its free", i);
	}
	struct tars_stats s = snap();
	cr_assert_eq(s.live_count, 0);
	cr_assert_eq(s.delayed_slots, 16);
	cr_assert_eq(s.frees, s.mallocs);
	/* Switched off, the next free drains the queue. */
	cr_assert_eq(tars_option_set("delay", 0), 0);
	tars_free(tars_malloc(16));
	s = snap();
	cr_assert_eq(s.delayed_slots, 0);
	cr_assert_eq(s.live_count, 0);
}

static BUG void
usable_size_of_delayed(void *arg)
{
	(void)arg;
	CHILD_CHECK(tars_option_set("delay", 1) == 0);
	void *p = tars_malloc(30);
	CHILD_CHECK(p != NULL);
	tars_free(p);
	size_t n = tars_usable_size(p);
	_exit((int)(n & 1) + 3);
}

Test(quarantine, a_delayed_chunk_is_not_live)
{
	EXPECT_ABORT(usable_size_of_delayed, NULL,
	    "tars: tars_usable_size(): bogus pointer");
}

/* ---- multi-page slots and cached mappings: the promises of large blocks */

static BUG void
overflow_slot(void *arg)
{
	size_t size = (size_t)(uintptr_t)arg;
	for (int round = 0; round < 3; round++) {
		/* A fresh slot, then slots and mappings used before. */
		unsigned char *p = tars_malloc(size);
		CHILD_CHECK(p != NULL);
		if (round < 2) {
			tars_free(p);
			for (int i = 0; i < 70; i++) {
				tars_free(tars_malloc(size));   /* past the window */
			}
			continue;
		}
		launder(p)[size + (16 - size % 16) % 16] = 1;   /* the guard */
	}
	_exit(3);
}

Test(quarantine, an_overflow_past_a_reused_slot_or_mapping_faults)
{
	EXPECT_FAULT(overflow_slot, (void *)(uintptr_t)5000);
	EXPECT_FAULT(overflow_slot, (void *)(uintptr_t)16384);
	EXPECT_FAULT(overflow_slot, (void *)(uintptr_t)100000);
}

static BUG void
underflow_slot(void *arg)
{
	size_t size = (size_t)(uintptr_t)arg;
	unsigned char *p = tars_malloc(size);
	CHILD_CHECK(p != NULL);
	tars_free(p);
	for (int i = 0; i < 70; i++) {
		tars_free(tars_malloc(size));
	}
	p = tars_malloc(size);
	CHILD_CHECK(p != NULL);
	launder(p)[-1] = 0;   /* the slack in front: its canary */
	tars_free(p);
	_exit(3);
}

Test(quarantine, an_underflow_in_a_reused_slot_or_mapping_is_caught_at_free)
{
	EXPECT_ABORT(underflow_slot, (void *)(uintptr_t)5000,
	    "tars: tars_free(): canary corrupted 1 bytes before block");
	EXPECT_ABORT(underflow_slot, (void *)(uintptr_t)100001,
	    "tars: tars_free(): canary corrupted 1 bytes before block");
}

static BUG void
double_free_slot_after_reuse(void *arg)
{
	size_t size = (size_t)(uintptr_t)arg;
	void *p = tars_malloc(size);
	CHILD_CHECK(p != NULL);
	tars_free(p);
	/* Within the window: 3 frees of a 2-page class (32), 2 of a
	 * 25-page mapping (256 KiB of blocks). */
	for (int i = 0; i < (size > 65536 ? 2 : 3); i++) {
		void *q = tars_malloc(size);
		CHILD_CHECK(q != NULL && q != p);
		tars_free(q);
	}
	tars_free(p);
	_exit(3);
}

Test(quarantine, a_double_free_of_a_slot_or_cached_mapping_after_reuse_aborts)
{
	EXPECT_ABORT(double_free_slot_after_reuse, (void *)(uintptr_t)5000,
	    "tars: tars_free(): double free of");
	EXPECT_ABORT(double_free_slot_after_reuse, (void *)(uintptr_t)100000,
	    "tars: tars_free(): double free of");
}

static void
sizes_are_exact(void *arg)
{
	(void)arg;
	/* usable size, freezero and realloc across kinds keep their promises
	 * on slots and cached mappings alike. */
	const size_t sizes[] = {2049, 4095, 4096, 4097, 16384, 65536, 65537, 100000};
	for (int round = 0; round < 2; round++) {
		for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
			size_t n = sizes[i];
			unsigned char *p = tars_malloc(n);
			CHILD_CHECK(p != NULL);
			CHILD_CHECK(tars_usable_size(p) == n);
			memset(p, 0x33, n);
			unsigned char *q = tars_realloc(p, 100);   /* to a chunk */
			CHILD_CHECK(q != NULL && all_bytes(q, 100, 0x33));
			p = tars_realloc(q, n);                    /* and back */
			CHILD_CHECK(p != NULL && all_bytes(p, 100, 0x33));
			unsigned char *k = tars_realloc_key(tars_malloc_key(10), n);
			CHILD_CHECK(k != NULL);
			tars_freezero(k, n);
			tars_freezero(p, n);
		}
	}
	_exit(0);
}

Test(quarantine, sizes_and_realloc_stay_exact_on_reused_pages)
{
	EXPECT_EXIT0(sizes_are_exact, NULL);
}
