/*
 * Address reuse (suite "quarantine", issue 12 item 7): a freed large block
 * or key keeps its address out of circulation for the next `quarantine`
 * frees (PROT_NONE, no memory behind it), so a stale pointer faults and a
 * second free aborts even after other allocations of the same size; the
 * chunk path's optional delayed-free queue (delay=1) does the same for
 * the next 16 local frees, without the fault (chunk pages stay mapped).
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

static struct tars_stats
snap(void)
{
	struct tars_stats s;
	tars_stats_get(&s);
	return s;
}

/* ---- large blocks and keys -------------------------------------------- */

static BUG void
stale_large_after_reuse(void *arg)
{
	size_t size = (size_t)(uintptr_t)arg;
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
	EXPECT_FAULT(stale_large_after_reuse, (void *)(uintptr_t)20000);
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

/* The window: the quarantine holds `quarantine` blocks, then the oldest
 * is unmapped.  Its memory is gone at once; only address space is held. */
Test(quarantine, the_window_is_the_option_and_holds_no_memory)
{
	cr_assert_eq(tars_option_set("quarantine", 8), 0);
	size_t ps = page_size();
	struct tars_stats a = snap();
	for (int i = 0; i < 20; i++) {
		void *p = tars_malloc(5 * ps);
		cr_assert_not_null(p);
		memset(p, 0x11, 5 * ps);
		tars_free(p);
	}
	struct tars_stats b = snap();
	cr_assert_eq(b.quarantined_blocks, 8);
	cr_assert_eq(b.quarantined_pages, 8 * 7);   /* data and two guards */
	cr_assert_eq(b.munmaps - a.munmaps, 12);
	cr_assert_eq(b.locked_bytes, a.locked_bytes, "quarantined pages keep no lock");
	/* quarantine=0: unmapped at once, as before. */
	cr_assert_eq(tars_option_set("quarantine", 0), 0);
	void *p = tars_malloc(5 * ps);
	cr_assert_not_null(p);
	tars_free(p);
	struct tars_stats c = snap();
	cr_assert_eq(c.quarantined_blocks, 0, "lowering the option empties it");
	cr_assert_eq(c.munmaps - b.munmaps, 9);
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
