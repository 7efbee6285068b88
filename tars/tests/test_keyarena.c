/*
 * The key arena (tars/src/keyarena.c): keys of up to 16 pages in shared
 * regions, guard | key | guard | key, PROT_NONE at rest.  VMAs follow the
 * regions and the open scopes, not the keys; the VMA limit makes an open
 * fail with ENOMEM and nothing else; guards hold between neighbours; freed
 * slots wait in a quarantine; the policies hold per region.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "tars.h"
#include "util.h"

TestSuite(keyarena, .init = no_env, .timeout = 120);

#define QUARANTINE 64     /* option quarantine, default */
#define HOT 16            /* KA_HOT */

/* 1 if the key still holds pattern (opened and closed again). */
static int
holds_pattern(tars_key *k)
{
	const unsigned char *p = tars_key_read_begin(k);
	if (p == NULL) {
		return 0;
	}
	int ok = memcmp(p, pattern, sizeof(pattern)) == 0;
	tars_key_read_end(k);
	return ok;
}

static int
closed(const volatile void *addr)
{
	char p[5];
	return perms_of(addr, p) == 0 && strncmp(p, "---", 3) == 0;
}

/* ---- capacity and VMAs ------------------------------------------------- */

Test(keyarena, a_hundred_thousand_keys_cost_a_few_vmas)
{
	enum { N = 100000, OPEN = 200 };
	tars_key **k = calloc(N, sizeof(*k));
	cr_assert_not_null(k);
	size_t before = count_vmas();
	for (size_t i = 0; i < N; i++) {
		k[i] = tars_key_new_random(32);
		cr_assert_not_null(k[i], "key %zu: %s", i, strerror(errno));
	}
	size_t rest = count_vmas();
	struct tars_stats s = snap();
	cr_assert_eq(s.key_count, N);
	cr_assert_eq(s.key_pages, N);
	cr_assert_eq(s.key_open, 0);
	/* A region is one VMA (or less: neighbours with the same flags
	 * merge), its metadata another at most; nothing per key. */
	cr_assert_lt(rest - before, 2 * s.key_regions + 32, "%zu VMAs for %zu keys in %zu "
	    "regions", rest - before, (size_t)N, s.key_regions);
	cr_assert_lt(rest, N / 100);
	/* Open scopes cost about two VMAs each, and only while open. */
	for (size_t i = 0; i < OPEN; i++) {
		cr_assert_not_null(tars_key_read_begin(k[i * (N / OPEN)]));
	}
	size_t open = count_vmas();
	cr_assert_eq(snap().key_open, OPEN);
	cr_assert_geq(open - rest, OPEN);
	cr_assert_leq(open - rest, 2 * OPEN);
	for (size_t i = 0; i < OPEN; i++) {
		tars_key_read_end(k[i * (N / OPEN)]);
	}
	cr_assert_eq(count_vmas(), rest);
	for (size_t i = 0; i < N; i++) {
		tars_key_free(k[i]);
	}
	s = snap();
	cr_assert_eq(s.key_count, 0);
	cr_assert_eq(s.key_pages, 0);
	cr_assert_leq(s.key_quarantined, QUARANTINE);
	free(k);
}

/* A key opened again soon after closing stays a VMA of its own (the hot
 * set); at most HOT of them, and VMAs at rest stay bounded. */
Test(keyarena, the_hot_set_is_bounded)
{
	enum { N = 64 };
	tars_key *k[N];
	for (int i = 0; i < N; i++) {
		k[i] = pattern_key();
		cr_assert_not_null(k[i]);
	}
	size_t rest = count_vmas();
	cr_assert(holds_pattern(k[0]));
	cr_assert_eq(snap().key_hot, 0, "a key opened once is not hot");
	cr_assert(holds_pattern(k[0]));
	cr_assert_eq(snap().key_hot, 1);
	cr_assert_leq(count_vmas(), rest + 2);
	uint64_t base = snap().protect_changes;
	cr_assert(holds_pattern(k[0]));
	cr_assert_eq(snap().protect_changes - base, 2, "a hot scope is two flips");
	for (int round = 0; round < 3; round++) {
		for (int i = 0; i < N; i++) {
			cr_assert(holds_pattern(k[i]));
		}
	}
	struct tars_stats s = snap();
	cr_assert_leq(s.key_hot, HOT);
	cr_assert_leq(count_vmas(), rest + 2 * HOT);
	for (int i = 0; i < N; i++) {
		tars_key_free(k[i]);
	}
	cr_assert_eq(snap().key_hot, 0);
}

/* ---- the VMA limit ------------------------------------------------------ */

static void
scopes_at_the_vma_limit(void *arg)
{
	(void)arg;
	enum { N = 64 };
	tars_key *k[N];
	for (int i = 0; i < N; i++) {
		k[i] = pattern_key();
		CHILD_CHECK(k[i] != NULL);
	}
	CHILD_CHECK(holds_pattern(k[0]) && holds_pattern(k[0]));   /* hot */
	CHILD_CHECK(snap().key_hot == 1);
	const volatile unsigned char *early = tars_key_read_begin(k[1]);
	CHILD_CHECK(early != NULL);
	struct vma_filler f = {0};
	vma_fill(&f, 0);
	/* The hot key opens and closes: flips, no split. */
	CHILD_CHECK(holds_pattern(k[0]));
	/* A cold key: the hot one leaves the set, which gives two VMAs back. */
	CHILD_CHECK(holds_pattern(k[2]));
	CHILD_CHECK(snap().key_hot == 0);
	vma_fill(&f, 0);
	for (int i = 3; i < N; i++) {
		errno = 0;
		CHILD_CHECK(tars_key_read_begin(k[i]) == NULL && errno == ENOMEM);
		errno = 0;
		CHILD_CHECK(tars_key_write_begin(k[i]) == NULL && errno == ENOMEM);
	}
	errno = 0;
	CHILD_CHECK(tars_key_equal(k[3], k[4]) == -1 && errno == ENOMEM);
	/* A failed open left no scope behind. */
	CHILD_CHECK(snap().key_open == 1);
	/* A key is still made (written closed, no split), or refused with
	 * ENOMEM if its struct needs a page: never an abort. */
	errno = 0;
	tars_key *fresh = pattern_key();
	CHILD_CHECK(fresh != NULL || errno == ENOMEM);
	/* Closing never fails: the open key is a VMA of its own and merges. */
	tars_key_read_end(k[1]);
	CHILD_CHECK(closed(early));
	/* Freeing never fails, open or closed. */
	vma_fill(&f, 0);
	CHILD_CHECK(tars_key_read_begin(k[0]) == NULL || (tars_key_read_end(k[0]), 1));
	for (int i = 0; i < N; i++) {
		tars_key_free(k[i]);
	}
	tars_key_free(fresh);
	/* With VMAs back, keys open again. */
	vma_release(&f, 64);
	tars_key *again = pattern_key();
	CHILD_CHECK(again != NULL && holds_pattern(again));
	tars_key_free(again);
	struct tars_stats s = snap();
	CHILD_CHECK(s.key_count == 0 && s.key_open == 0);
	_exit(0);
}

Test(keyarena, at_the_vma_limit_an_open_fails_with_enomem_and_nothing_else)
{
	EXPECT_EXIT0(scopes_at_the_vma_limit, NULL);
}

static void
open_keys_freed_at_the_limit(void *arg)
{
	(void)arg;
	enum { N = 32 };
	unsigned char *p[N];
	for (int i = 0; i < N; i++) {
		p[i] = tars_malloc_key(32);   /* open: read-write */
		CHILD_CHECK(p[i] != NULL);
		memcpy(p[i], pattern, 32);
		if (i % 2) {
			CHILD_CHECK(tars_protect_read(p[i]) == 0);
		}
	}
	struct vma_filler f = {0};
	vma_fill(&f, 0);
	for (int i = 0; i < N; i++) {
		tars_free(p[i]);
		CHILD_CHECK(closed(p[i]));
		CHILD_CHECK(!peeks_pattern(p[i]));
	}
	CHILD_CHECK(snap().key_open == 0);
	_exit(0);
}

Test(keyarena, open_keys_are_wiped_and_closed_when_freed_at_the_limit)
{
	EXPECT_EXIT0(open_keys_freed_at_the_limit, NULL);
}

/* Closed keys freed at the limit where /proc/self/mem is refused: an
 * unlocked page is dropped (MADV_DONTNEED), a locked one is opened with
 * the VMAs the hot set gives back. */
static void
closed_keys_freed_at_the_limit(void *arg)
{
	long lock = (long)(uintptr_t)arg;
	CHILD_CHECK(tars_option_set("mlock", lock) == 0);
	enum { N = 32 };
	tars_key *k[N];
	const volatile unsigned char *data[N];
	for (int i = 0; i < N; i++) {
		k[i] = pattern_key();
		CHILD_CHECK(k[i] != NULL);
		data[i] = key_address(k[i]);
		CHILD_CHECK(data[i] != NULL);
	}
	CHILD_CHECK(holds_pattern(k[0]) && holds_pattern(k[0]) && snap().key_hot == 1);
	deny_syscall(SYS_pwritev, -1, 0, EPERM);
	deny_syscall(SYS_preadv, -1, 0, EPERM);
	struct vma_filler f = {0};
	vma_fill(&f, 0);
	for (int i = N - 1; i >= 0; i--) {   /* the hot key last */
		tars_key_free(k[i]);
		CHILD_CHECK(closed(data[i]));
		CHILD_CHECK(!peeks_pattern(data[i]));
	}
	_exit(0);
}

Test(keyarena, closed_keys_are_wiped_at_the_limit_without_proc_mem_unlocked)
{
	EXPECT_EXIT0(closed_keys_freed_at_the_limit, (void *)0);
}

Test(keyarena, closed_keys_are_wiped_at_the_limit_without_proc_mem_locked)
{
	EXPECT_EXIT0(closed_keys_freed_at_the_limit, (void *)1);
}

/* ---- guard pages ----------------------------------------------------------- */

/* Two open keys in neighbouring slots (one guard page between them). */
static void
neighbours(unsigned char **a, unsigned char **b)
{
	enum { N = 96 };
	static unsigned char *p[N];
	size_t ps = page_size();
	for (int i = 0; i < N; i++) {
		p[i] = tars_malloc_key(32);
		CHILD_CHECK(p[i] != NULL);
	}
	for (int i = 0; i < N; i++) {
		for (int j = 0; j < N; j++) {
			uintptr_t pa = (uintptr_t)p[i] & ~(uintptr_t)(ps - 1);
			uintptr_t pb = (uintptr_t)p[j] & ~(uintptr_t)(ps - 1);
			if (pb == pa + 2 * ps) {
				*a = p[i];
				*b = p[j];
				return;
			}
		}
	}
	fprintf(stderr, "no neighbours among %d keys\n", N);
	_exit(2);
}

static void
past_the_end_with_the_neighbour_open(void *arg)
{
	(void)arg;
	unsigned char *a, *b;
	neighbours(&a, &b);
	b[0] = 1;   /* both open, read-write */
	volatile unsigned char *end = launder(a) + 32;   /* the guard */
	fputs("at the guard\n", stderr);
	*end = 1;
	_exit(3);
}

static void
before_the_start_with_the_neighbour_open(void *arg)
{
	(void)arg;
	unsigned char *a, *b;
	neighbours(&a, &b);
	a[31] = 1;
	size_t ps = page_size();
	volatile unsigned char *below = (volatile unsigned char *)
	    ((uintptr_t)launder(b) & ~(uintptr_t)(ps - 1)) - 1;
	fputs("at the guard\n", stderr);
	(void)*below;
	_exit(3);
}

Test(keyarena, one_byte_past_a_key_faults_with_its_neighbour_open)
{
	EXPECT_DEATH(past_the_end_with_the_neighbour_open, NULL, SIGSEGV, "at the guard");
}

Test(keyarena, one_byte_before_a_key_faults_with_its_neighbour_open)
{
	EXPECT_DEATH(before_the_start_with_the_neighbour_open, NULL, SIGSEGV, "at the guard");
}

/* ---- freed slots: quarantine ------------------------------------------------ */

static void
stale_pointer_after_other_keys(void *arg)
{
	(void)arg;
	unsigned char *p = tars_malloc_key(32);
	CHILD_CHECK(p != NULL);
	memcpy(p, pattern, 32);
	tars_free(p);
	/* Other keys come and go; none gets p's slot within the window. */
	static unsigned char *q[QUARANTINE - 1];
	for (int i = 0; i < QUARANTINE - 1; i++) {
		q[i] = tars_malloc_key(32);
		CHILD_CHECK(q[i] != NULL && q[i] != p);
		if (i % 2) {
			tars_free(q[i]);
		}
	}
	fputs("stale read\n", stderr);
	(void)*launder(p);
	_exit(3);
}

Test(keyarena, a_stale_key_pointer_faults_while_other_keys_come_and_go)
{
	EXPECT_DEATH(stale_pointer_after_other_keys, NULL, SIGSEGV, "stale read");
}

static void
double_free_within_the_window(void *arg)
{
	(void)arg;
	void *p = tars_malloc_key(32);
	CHILD_CHECK(p != NULL);
	tars_free(p);
	/* QUARANTINE - 1 other frees: p is still held back. */
	for (int i = 0; i < QUARANTINE - 1; i++) {
		void *q = tars_malloc_key(32);
		CHILD_CHECK(q != NULL && q != p);
		tars_free(q);
	}
	CHILD_CHECK(snap().key_quarantined == QUARANTINE);
	tars_free(p);
	_exit(3);
}

Test(keyarena, a_double_free_aborts_within_the_window)
{
	EXPECT_ABORT(double_free_within_the_window, NULL,
	    "tars: tars_free(): double free of");
}

static void
key_double_free_after_others(void *arg)
{
	(void)arg;
	tars_key *k = pattern_key();
	CHILD_CHECK(k != NULL);
	const volatile unsigned char *data = key_address(k);
	tars_key_free(k);
	for (int i = 0; i < 100; i++) {
		tars_key_free(pattern_key());
	}
	CHILD_CHECK(closed(data));
	CHILD_CHECK(!peeks_pattern(data));
	tars_key_free(k);
}

Test(keyarena, a_freed_tars_key_is_wiped_closed_and_its_double_free_aborts)
{
	EXPECT_ABORT(key_double_free_after_others, NULL, "tars: tars_key_free(): ");
}

/* ---- canaries ----------------------------------------------------------- */

static void
underflow_then_free(void *arg)
{
	int close_first = arg != NULL;
	unsigned char *k = tars_malloc_key(100);
	CHILD_CHECK(k != NULL);
	volatile unsigned char *p = launder(k);
	p[-1] ^= 0xff;
	if (close_first) {
		CHILD_CHECK(tars_protect_none((void *)p) == 0);
	}
	tars_free((void *)p);
	_exit(3);
}

Test(keyarena, an_underflow_is_caught_at_free_open)
{
	EXPECT_ABORT(underflow_then_free, NULL,
	    "tars: tars_free(): canary corrupted 1 bytes before block");
}

Test(keyarena, an_underflow_is_caught_at_free_closed)
{
	EXPECT_ABORT(underflow_then_free, (void *)1,
	    "tars: tars_free(): canary corrupted 1 bytes before block");
}

/* ---- policies ------------------------------------------------------------ */

Test(keyarena, regions_carry_the_policies_of_their_keys)
{
	void *a = tars_malloc_key(32);
	cr_assert_not_null(a);
	cr_assert_eq(tars_protect_none(a), 0);
	cr_assert(tars_has_vmflag(a, "dd"), "dump=0: no VM_DONTDUMP");
	cr_assert(tars_has_vmflag(a, "wf"), "fork=1: no VM_WIPEONFORK");
	cr_assert(tars_has_vmflag(a, "lo"), "mlock=1 as root: not locked");
	/* Keys made under other options go to other regions. */
	cr_assert_eq(tars_option_set("dump", 1), 0);
	cr_assert_eq(tars_option_set("fork", 2), 0);
	void *b = tars_malloc_key(32);
	cr_assert_not_null(b);
	cr_assert_eq(tars_protect_none(b), 0);
	cr_assert(!tars_has_vmflag(b, "dd"), "dump=1: VM_DONTDUMP");
	cr_assert(tars_has_vmflag(b, "dc"), "fork=2: no VM_DONTCOPY");
	cr_assert(tars_has_vmflag(a, "dd") && tars_has_vmflag(a, "wf"));
	tars_free(b);
	tars_free(a);
}

static void
child_reads_and_frees(void *arg)
{
	tars_key **k = arg;
	for (int i = 0; i < 8; i++) {
		CHILD_CHECK(holds_pattern(k[i]));
		tars_key_free(k[i]);
	}
	for (int i = 0; i < 100; i++) {
		tars_key *n = pattern_key();
		CHILD_CHECK(n != NULL && holds_pattern(n));
		tars_key_free(n);
	}
}

/* fork=0: a child uses and frees inherited keys; what it wipes is its own
 * copy (the writes go through its own /proc/self/mem, not the parent's). */
Test(keyarena, fork_0_child_uses_inherited_keys_and_leaves_the_parents_alone)
{
	cr_assert_eq(tars_option_set("fork", 0), 0);
	tars_key *k[8];
	for (int i = 0; i < 8; i++) {
		k[i] = pattern_key();
		cr_assert_not_null(k[i]);
	}
	EXPECT_EXIT0(child_reads_and_frees, k);
	for (int i = 0; i < 8; i++) {
		cr_assert(holds_pattern(k[i]), "key %d changed by the child", i);
		tars_key_free(k[i]);
	}
}

struct raw {
	unsigned char *p[8];
};

static void
child_sees_zeros(void *arg)
{
	struct raw *r = arg;
	for (int i = 0; i < 8; i++) {
		CHILD_CHECK(tars_protect_read(r->p[i]) == 0);
		CHILD_CHECK(all_bytes(r->p[i], 32, 0));
		tars_free(r->p[i]);
	}
	CHILD_CHECK(snap().key_count == 0);
}

static void
child_finds_them_gone(void *arg)
{
	struct raw *r = arg;
	size_t before = count_vmas();
	for (int i = 0; i < 8; i++) {
		errno = 0;
		CHILD_CHECK(tars_protect_read(r->p[i]) == -1 && errno == EFAULT);
		tars_free(r->p[i]);
	}
	CHILD_CHECK(count_vmas() == before);
	unsigned char *n = tars_malloc_key(32);   /* a new region */
	CHILD_CHECK(n != NULL);
	memset(n, 1, 32);
	tars_free(n);
}

static void
raw_keys(struct raw *r)
{
	for (int i = 0; i < 8; i++) {
		r->p[i] = tars_malloc_key(32);
		cr_assert_not_null(r->p[i]);
		memset(r->p[i], 0x5c, 32);
		cr_assert_eq(tars_protect_none(r->p[i]), 0);
	}
}

Test(keyarena, fork_1_child_reads_zeros_in_every_key)
{
	struct raw r;
	raw_keys(&r);
	EXPECT_EXIT0(child_sees_zeros, &r);
	for (int i = 0; i < 8; i++) {
		cr_assert_eq(tars_protect_read(r.p[i]), 0);
		cr_assert(all_bytes(r.p[i], 32, 0x5c));
		tars_free(r.p[i]);
	}
}

Test(keyarena, fork_2_child_has_no_keys_and_frees_them)
{
	cr_assert_eq(tars_option_set("fork", 2), 0);
	struct raw r;
	raw_keys(&r);
	EXPECT_EXIT0(child_finds_them_gone, &r);
	for (int i = 0; i < 8; i++) {
		tars_free(r.p[i]);
	}
}

static void
touch_inherited(void *arg)
{
	struct raw *r = arg;
	fputs("touching\n", stderr);
	(void)*launder(r->p[3]);
	_exit(3);
}

Test(keyarena, fork_2_child_faults_on_a_key)
{
	cr_assert_eq(tars_option_set("fork", 2), 0);
	struct raw r;
	raw_keys(&r);
	for (int i = 0; i < 8; i++) {
		cr_assert_eq(tars_protect_read(r.p[i]), 0);
	}
	EXPECT_DEATH(touch_inherited, &r, SIGSEGV, "touching");
	for (int i = 0; i < 8; i++) {
		tars_free(r.p[i]);
	}
}

Test(keyarena, secretmem_regions_hold_many_keys_out_of_proc_mem)
{
	cr_assert_eq(tars_option_set("secretmem", 1), 0);
	enum { N = 200 };
	tars_key *k[N];
	size_t before = count_vmas();
	for (int i = 0; i < N; i++) {
		k[i] = pattern_key();
		cr_assert_not_null(k[i]);
	}
	struct tars_stats s = snap();
	if (s.secretmem_pages == 0) {
		for (int i = 0; i < N; i++) {
			tars_key_free(k[i]);
		}
		cr_skip_test("memfd_secret unavailable: keys fell back to anonymous memory");
	}
	cr_assert_eq(s.secretmem_pages, N);
	size_t vmas = count_vmas() - before;
	cr_assert_lt(vmas, 24, "%zu VMAs more for %d keys in %zu regions", vmas, N, s.key_regions);
	for (int i = 0; i < N; i++) {
		cr_assert(holds_pattern(k[i]));
	}
	const volatile unsigned char *p = tars_key_read_begin(k[7]);
	cr_assert_not_null(p);
	cr_assert_eq(p[0], '0');
	unsigned char seen[32];
	cr_assert_leq(peek(p, seen, 32), 0, "/proc/self/mem reads a memfd_secret key");
	tars_key_read_end(k[7]);
	for (int i = 0; i < N; i++) {
		tars_key_free(k[i]);
	}
	cr_assert_eq(snap().secretmem_pages, 0);
}

/* The statistics agree with the regions: every key page, guard and slot. */
Test(keyarena, statistics_are_exact)
{
	enum { N = 300 };
	void *p[N];
	tars_free(tars_malloc(1));   /* the heap (and its guards) exists */
	struct tars_stats a = snap();
	for (int i = 0; i < N; i++) {
		p[i] = tars_malloc_key((size_t)(i % 3) * page_size() + 1);   /* 1-3 pages */
		cr_assert_not_null(p[i]);
	}
	struct tars_stats b = snap();
	cr_assert_eq(b.key_count - a.key_count, N);
	cr_assert_eq(b.key_pages - a.key_pages, N * 2);   /* 1, 2, 3 pages in turn */
	cr_assert_eq(b.key_open, N);
	cr_assert_eq(b.guard_pages - a.guard_pages, (b.key_slots + b.key_regions) -
	    (a.key_slots + a.key_regions));
	cr_assert_geq(b.key_slots, N);
	cr_assert_eq(b.locked_bytes - a.locked_bytes, N * 2 * page_size());
	for (int i = 0; i < N; i++) {
		tars_free(p[i]);
	}
	struct tars_stats c = snap();
	cr_assert_eq(c.key_count, a.key_count);
	cr_assert_eq(c.key_pages, a.key_pages);
	cr_assert_eq(c.key_open, 0);
	cr_assert_eq(c.locked_bytes, a.locked_bytes);
	cr_assert_eq(c.key_quarantined, N < QUARANTINE ? N : QUARANTINE);
}
