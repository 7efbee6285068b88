/*
 * Page hygiene (suite "pages") and the mlock policy (suite "mlock").
 *
 * What the kernel applied is read back from /proc/self/smaps VmFlags:
 * dd = MADV_DONTDUMP, lo = mlock'ed, wf = MADV_WIPEONFORK,
 * dc = MADV_DONTFORK.  Every kind of data page is checked: chunk pages,
 * large blocks, keys.  Fork behaviour is checked from a real child.
 *
 * The mlock tests lower RLIMIT_MEMLOCK in a child.  A process with
 * CAP_IPC_LOCK (root) ignores that limit, so the child drops the
 * capability first; if the limit still is not enforced the test is skipped.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/capability.h>

#include <criterion/criterion.h>

#include "tars.h"
#include "util.h"

#define SKIP_EXIT 77

TestSuite(pages, .init = no_env);
TestSuite(mlock, .init = no_env);

/* One block of each kind of data page. */
struct blocks {
	unsigned char *chunk, *large, *key, *aligned;
	size_t chunk_size, large_size, key_size, aligned_size;
};

static void
blocks_alloc(struct blocks *b, unsigned char fillc)
{
	size_t ps = page_size();
	b->chunk_size = 64;
	b->large_size = 3 * ps;
	b->key_size = 100;
	b->aligned_size = ps / 2 + 100;
	b->chunk = tars_malloc(b->chunk_size);
	b->large = tars_malloc(b->large_size);
	b->key = tars_malloc_key(b->key_size);
	b->aligned = tars_aligned_alloc(ps, b->aligned_size);
	cr_assert(b->chunk && b->large && b->key && b->aligned, "%s", strerror(errno));
	memset(b->chunk, fillc, b->chunk_size);
	memset(b->large, fillc, b->large_size);
	memset(b->key, fillc, b->key_size);
	memset(b->aligned, fillc, b->aligned_size);
}

static void
blocks_free(struct blocks *b)
{
	tars_freezero(b->chunk, b->chunk_size);
	tars_freezero(b->large, b->large_size);
	tars_freezero(b->key, b->key_size);
	tars_freezero(b->aligned, b->aligned_size);
}

/* Every data page of every block has (want=1) or lacks (want=0) flag. */
static void
expect_flag(const struct blocks *b, const char *flag, int want)
{
	size_t ps = page_size();
	const unsigned char *const ptrs[] = {
		b->chunk, b->large, b->large + ps, b->large + b->large_size - 1,
		b->key, b->aligned,
	};
	const char *names[] = {"chunk", "large", "large+page", "large end", "key",
	    "aligned"};
	for (size_t i = 0; i < sizeof(ptrs) / sizeof(ptrs[0]); i++) {
		char flags[256] = "";
		cr_assert_eq(tars_smaps_flags(ptrs[i], flags, sizeof(flags)), 0,
		    "%s %p not in smaps", names[i], (const void *)ptrs[i]);
		cr_assert_eq(tars_has_vmflag(ptrs[i], flag), want,
		    "%s block %p: VmFlags%s %s \"%s\"", names[i], (const void *)ptrs[i],
		    flags, want ? "lacks" : "has", flag);
	}
}

/* Does mlock of `len` more bytes report success?  (What tars sees.) */
static int
mlock_succeeds(size_t len)
{
	void *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
	    -1, 0);
	if (m == MAP_FAILED) {
		return 0;
	}
	int ok = mlock(m, len) == 0;
	munmap(m, len);
	return ok;
}

/* Can this process really lock `len` more bytes (limit and capabilities)? */
static int
can_lock(size_t len)
{
	void *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
	    -1, 0);
	if (m == MAP_FAILED) {
		return 0;
	}
	/* Believe the kernel, not the return value: AddressSanitizer turns
	 * mlock into a no-op that reports success. */
	int ok = mlock(m, len) == 0 && tars_has_vmflag(m, "lo");
	munmap(m, len);
	return ok;
}

/* ---------------------------------------------------------------- dump */

Test(pages, data_pages_are_dontdump_by_default)
{
	struct blocks b;
	blocks_alloc(&b, 0x11);
	expect_flag(&b, "dd", 1);
	blocks_free(&b);
}

Test(pages, dump_1_leaves_pages_in_core_dumps)
{
	cr_assert_eq(tars_option_set("dump", 1), 0);
	struct blocks b;
	blocks_alloc(&b, 0x11);
	expect_flag(&b, "dd", 0);
	blocks_free(&b);
}

Test(pages, dump_switched_at_run_time_applies_to_new_pages)
{
	struct blocks a, b;
	blocks_alloc(&a, 0x11);
	cr_assert_eq(tars_option_set("dump", 1), 0);
	/* New large and key mappings follow the new value at once. */
	b.large_size = 2 * page_size();
	b.large = tars_malloc(b.large_size);
	b.key = tars_malloc_key(10);
	cr_assert(b.large && b.key);
	cr_assert(!tars_has_vmflag(b.large, "dd"));
	cr_assert(!tars_has_vmflag(b.key, "dd"));
	cr_assert(tars_has_vmflag(a.large, "dd"), "old pages keep their advice");
	cr_assert(tars_has_vmflag(a.key, "dd"));
	tars_free(b.large);
	tars_free(b.key);
	blocks_free(&a);
}

/* ---------------------------------------------------------------- mlock */

Test(pages, data_pages_are_locked_with_mlock_1)
{
	if (!can_lock(1 << 20)) {
		cr_skip_test("RLIMIT_MEMLOCK too small to lock 1 MiB here");
	}
	struct blocks b;
	blocks_alloc(&b, 0x22);
	expect_flag(&b, "lo", 1);
	struct tars_stats s;
	tars_stats_get(&s);
	cr_assert_geq(s.locked_bytes, 4 * page_size());
	cr_assert_eq(s.unlocked_bytes, 0);
	blocks_free(&b);
}

Test(pages, mlock_0_locks_nothing)
{
	cr_assert_eq(tars_option_set("mlock", 0), 0);
	struct blocks b;
	blocks_alloc(&b, 0x22);
	expect_flag(&b, "lo", 0);
	struct tars_stats s;
	tars_stats_get(&s);
	cr_assert_eq(s.locked_bytes, 0);
	cr_assert_eq(s.unlocked_bytes, 0);
	blocks_free(&b);
}

Test(pages, cached_pages_keep_their_policy_when_reused)
{
	int lock = can_lock(1 << 20);
	/* 64 pages of 2048-byte slots, freed into the cache (spare=1), then
	 * reused. */
	cr_assert_eq(tars_option_set("spare", 1), 0);
	enum { N = 128 };
	void *p[N];
	for (int round = 0; round < 2; round++) {
		for (int i = 0; i < N; i++) {
			p[i] = tars_malloc(2048);
			cr_assert_not_null(p[i]);
			memset(p[i], 0x66, 2048);
		}
		struct tars_stats s;
		tars_stats_get(&s);
		if (round == 1) {
			cr_assert_gt(s.cache_hits, 0, "no page came from the cache");
		}
		for (int i = 0; i < N; i++) {
			cr_assert(tars_has_vmflag(p[i], "dd"), "round %d: %p", round, p[i]);
			cr_assert(tars_has_vmflag(p[i], "wf"), "round %d: %p", round, p[i]);
			if (lock) {
				cr_assert(tars_has_vmflag(p[i], "lo"), "round %d: %p", round,
				    p[i]);
			}
		}
		for (int i = 0; i < N; i++) {
			tars_free(p[i]);
		}
	}
}

/* ---------------------------------------------------------------- fork flags */

Test(pages, fork_1_marks_pages_wipeonfork)
{
	struct blocks b;
	blocks_alloc(&b, 0x33);
	expect_flag(&b, "wf", 1);
	expect_flag(&b, "dc", 0);
	blocks_free(&b);
}

Test(pages, fork_2_marks_pages_dontfork)
{
	cr_assert_eq(tars_option_set("fork", 2), 0);
	struct blocks b;
	blocks_alloc(&b, 0x33);
	expect_flag(&b, "dc", 1);
	expect_flag(&b, "wf", 0);
	blocks_free(&b);
}

Test(pages, fork_0_marks_nothing)
{
	cr_assert_eq(tars_option_set("fork", 0), 0);
	struct blocks b;
	blocks_alloc(&b, 0x33);
	expect_flag(&b, "dc", 0);
	expect_flag(&b, "wf", 0);
	blocks_free(&b);
}

/* ---------------------------------------------------------------- fork */

static void
child_sees_zeros(void *arg)
{
	struct blocks *b = arg;
	struct tars_stats s;
	tars_stats_get(&s);
	size_t live = s.live_count;  /* the parent's blocks, inherited */
	CHILD_CHECK(all_bytes(b->chunk, b->chunk_size, 0));
	CHILD_CHECK(all_bytes(b->large, b->large_size, 0));
	CHILD_CHECK(all_bytes(b->key, b->key_size, 0));
	CHILD_CHECK(all_bytes(b->aligned, b->aligned_size, 0));
	/* The inherited blocks can be freed: their canaries read as zeros
	 * too, which must not count as corruption. */
	tars_freezero(b->chunk, b->chunk_size);
	tars_freezero(b->large, b->large_size);
	tars_freezero(b->key, b->key_size);
	tars_freezero(b->aligned, b->aligned_size);
	/* The allocator goes on working, in the inherited pages as well. */
	void *p[512];
	for (int i = 0; i < 512; i++) {
		p[i] = tars_malloc(i % 2 ? 64 : (size_t)i * 20);
		CHILD_CHECK(p[i] != NULL);
		memset(p[i], 0x44, i % 2 ? 64 : (size_t)i * 20);
	}
	for (int i = 0; i < 512; i++) {
		tars_free(p[i]);
	}
	tars_stats_get(&s);
	CHILD_CHECK(s.live_count == live - 4);
}

static void
fork_wipe_case(long junk)
{
	cr_assert_eq(tars_option_set("junk", junk), 0);
	struct blocks b;
	blocks_alloc(&b, 0x5c);
	/* Partly used chunk pages around the secret. */
	void *neighbours[100];
	for (int i = 0; i < 100; i++) {
		neighbours[i] = tars_malloc(64);
		cr_assert_not_null(neighbours[i]);
	}
	for (int i = 0; i < 100; i += 2) {
		tars_free(neighbours[i]);
	}
	struct child_result r;
	tars_run_child(child_sees_zeros, &b, &r);
	cr_assert(!r.signaled && r.exit_code == 0, "child %s %d; stderr: %s",
	    r.signaled ? "signal" : "exit", r.signaled ? r.sig : r.exit_code, r.err);
	/* The parent's copy is untouched. */
	cr_assert(all_bytes(b.chunk, b.chunk_size, 0x5c));
	cr_assert(all_bytes(b.large, b.large_size, 0x5c));
	cr_assert(all_bytes(b.key, b.key_size, 0x5c));
	blocks_free(&b);
	for (int i = 1; i < 100; i += 2) {
		tars_free(neighbours[i]);
	}
}

Test(pages, fork_1_child_reads_zeros_and_can_free)
{
	fork_wipe_case(1);
}

Test(pages, fork_1_child_with_junk_2_and_canaries)
{
	/* junk=2 verifies free junk on reuse: the zeroed pages of the child
	 * must not look like a write after free. */
	fork_wipe_case(2);
}

static void
child_reads(void *arg)
{
	volatile unsigned char *p = arg;
	unsigned char c = p[0];
	(void)c;
}

Test(pages, fork_2_child_faults_on_the_secret)
{
	cr_assert_eq(tars_option_set("fork", 2), 0);
	struct blocks b;
	blocks_alloc(&b, 0x5c);
	EXPECT_FAULT(child_reads, b.chunk);
	EXPECT_FAULT(child_reads, b.large);
	EXPECT_FAULT(child_reads, b.large + b.large_size - 1);
	EXPECT_FAULT(child_reads, b.key);
	EXPECT_FAULT(child_reads, b.aligned);
	cr_assert(all_bytes(b.chunk, b.chunk_size, 0x5c));
	cr_assert(all_bytes(b.large, b.large_size, 0x5c));
	blocks_free(&b);
}

static void
child_frees_gone_blocks(void *arg)
{
	struct blocks *b = arg;
	tars_freezero(b->chunk, b->chunk_size);
	tars_freezero(b->large, b->large_size);
	tars_freezero(b->key, b->key_size);
	tars_freezero(b->aligned, b->aligned_size);
	void *p[256];
	for (int i = 0; i < 256; i++) {
		p[i] = tars_malloc(64);
		CHILD_CHECK(p[i] != NULL);
		memset(p[i], 1, 64);
	}
	for (int i = 0; i < 256; i++) {
		tars_free(p[i]);
	}
	struct tars_stats s;
	tars_stats_get(&s);
	CHILD_CHECK(s.live_count == 0);
	CHILD_CHECK(s.large_count == 0 && s.key_count == 0);
}

Test(pages, fork_2_child_can_free_inherited_blocks)
{
	cr_assert_eq(tars_option_set("fork", 2), 0);
	struct blocks b;
	blocks_alloc(&b, 0x5c);
	EXPECT_EXIT0(child_frees_gone_blocks, &b);
	blocks_free(&b);
}

/*
 * In a fork=2 child the data pages of inherited blocks are holes in the
 * address space, and the kernel hands holes out again.  Freeing an
 * inherited block must not unmap whatever the child mapped there since.
 */
static void
child_maps_then_frees_gone_blocks(void *arg)
{
	struct blocks *b = arg;
	size_t ps = page_size();
	enum { N = 64 };
	unsigned char *fresh[N];
	size_t size[N];
	for (int i = 0; i < N; i++) {
		size[i] = i % 2 ? ps : 64 + (size_t)i;
		fresh[i] = tars_malloc(size[i]);
		CHILD_CHECK(fresh[i] != NULL);
		memset(fresh[i], 0x77, size[i]);
	}
	tars_freezero(b->large, b->large_size);
	tars_freezero(b->key, b->key_size);
	tars_freezero(b->aligned, b->aligned_size);
	tars_freezero(b->chunk, b->chunk_size);
	for (int i = 0; i < N; i++) {
		/* Faults if the free above unmapped this block. */
		CHILD_CHECK(all_bytes(fresh[i], size[i], 0x77));
		tars_free(fresh[i]);
	}
}

Test(pages, fork_2_child_free_spares_mappings_made_since)
{
	cr_assert_eq(tars_option_set("fork", 2), 0);
	struct blocks b;
	blocks_alloc(&b, 0x5c);
	EXPECT_EXIT0(child_maps_then_frees_gone_blocks, &b);
	blocks_free(&b);
}

static void
child_sees_secret(void *arg)
{
	struct blocks *b = arg;
	CHILD_CHECK(all_bytes(b->chunk, b->chunk_size, 0x5c));
	CHILD_CHECK(all_bytes(b->large, b->large_size, 0x5c));
	CHILD_CHECK(all_bytes(b->key, b->key_size, 0x5c));
	blocks_free(b);
}

Test(pages, fork_0_child_inherits_the_contents)
{
	cr_assert_eq(tars_option_set("fork", 0), 0);
	struct blocks b;
	blocks_alloc(&b, 0x5c);
	EXPECT_EXIT0(child_sees_secret, &b);
	blocks_free(&b);
}

/* ---------------------------------------------------------------- mlock policy */

#define SMALL_LIMIT (64 * 1024)

/* In a child: drop CAP_IPC_LOCK (which overrides RLIMIT_MEMLOCK), lower
 * the limit, and make sure it is enforced; exit SKIP_EXIT otherwise. */
static void
lower_memlock_limit(void)
{
	struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
	struct __user_cap_data_struct d[2];
	if (syscall(SYS_capget, &h, d) == 0) {
		unsigned idx = CAP_IPC_LOCK / 32, bit = 1u << (CAP_IPC_LOCK % 32);
		d[idx].effective &= ~bit;
		d[idx].permitted &= ~bit;
		d[idx].inheritable &= ~bit;
		(void)syscall(SYS_capset, &h, d);
	}
	struct rlimit rl = {SMALL_LIMIT, SMALL_LIMIT};
	CHILD_CHECK(setrlimit(RLIMIT_MEMLOCK, &rl) == 0);
	if (mlock_succeeds(2 * SMALL_LIMIT)) {
		fprintf(stderr, "RLIMIT_MEMLOCK not enforced here\n");
		_exit(SKIP_EXIT);
	}
}

static void
best_effort_child(void *arg)
{
	(void)arg;
	size_t ps = page_size();
	lower_memlock_limit();
	/* 4 MiB: 2 MiB of chunks, 2 MiB of large blocks, some keys. */
	enum { NCHUNK = 1024, NLARGE = 64, NKEY = 16 };
	static void *chunk[NCHUNK], *large[NLARGE], *key[NKEY];
	errno = 0x7a5e;  /* failing mlock calls must not leak into errno */
	for (int i = 0; i < NCHUNK; i++) {
		chunk[i] = tars_malloc(2048);
		CHILD_CHECK(chunk[i] != NULL);
		memset(chunk[i], 1, 2048);
	}
	for (int i = 0; i < NLARGE; i++) {
		large[i] = tars_malloc(8 * ps);
		CHILD_CHECK(large[i] != NULL);
		memset(large[i], 2, 8 * ps);
	}
	for (int i = 0; i < NKEY; i++) {
		key[i] = tars_malloc_key(32);
		CHILD_CHECK(key[i] != NULL);
		CHILD_CHECK(tars_protect_none(key[i]) == 0);
	}
	CHILD_CHECK(errno == 0x7a5e);
	struct tars_stats s;
	tars_stats_get(&s);
	CHILD_CHECK(s.unlocked_bytes > 0);
	CHILD_CHECK(s.locked_bytes <= SMALL_LIMIT);
	/* Everything that is not locked is counted. */
	CHILD_CHECK(s.locked_bytes + s.unlocked_bytes >=
	    (NCHUNK * 2048) + NLARGE * 8 * ps + NKEY * ps);
	size_t before = s.unlocked_bytes;
	for (int i = 0; i < NLARGE; i++) {
		tars_free(large[i]);
	}
	for (int i = 0; i < NKEY; i++) {
		tars_free(key[i]);
	}
	tars_stats_get(&s);
	CHILD_CHECK(s.unlocked_bytes < before);
	for (int i = 0; i < NCHUNK; i++) {
		tars_free(chunk[i]);
	}
	tars_stats_get(&s);
	CHILD_CHECK(s.live_count == 0);
	fprintf(stderr, "child done\n");
}

Test(mlock, best_effort_goes_on_and_counts_unlocked_bytes)
{
	struct child_result r;
	tars_run_child(best_effort_child, NULL, &r);
	if (!r.signaled && r.exit_code == SKIP_EXIT) {
		cr_skip_test("%s", r.err);
	}
	cr_assert(!r.signaled && r.exit_code == 0, "child %s %d; stderr: %s",
	    r.signaled ? "signal" : "exit", r.signaled ? r.sig : r.exit_code, r.err);
	cr_assert(strstr(r.err, "child done") != NULL);
	cr_assert_eq(count_substr(r.err, "tars: warning:"), 1,
	    "want exactly one warning: \"%s\"", r.err);
	cr_assert(strstr(r.err, "mlock") != NULL, "\"%s\"", r.err);
}

static void
strict_child(void *arg)
{
	(void)arg;
	size_t ps = page_size();
	lower_memlock_limit();
	CHILD_CHECK(tars_option_set("mlock", 2) == 0);
	enum { MAX = 1000 };
	static void *large[MAX];
	int n = 0;
	errno = 0;
	/* One-page blocks use the lock budget up to the last page. */
	for (; n < MAX; n++) {
		large[n] = tars_malloc(ps);
		if (large[n] == NULL) {
			break;
		}
		memset(large[n], 3, ps);
	}
	CHILD_CHECK(n > 0);            /* what the limit allows works */
	CHILD_CHECK(n < MAX);          /* and then it stops */
	CHILD_CHECK(errno == ENOMEM);
	CHILD_CHECK((size_t)n * ps <= SMALL_LIMIT);
	/* Chunk pages and keys need locked pages too. */
	size_t fails = 0;
	errno = 0;
	for (int i = 0; i < 100; i++) {
		void *p = tars_malloc_key(16);
		if (p == NULL) {
			CHILD_CHECK(errno == ENOMEM);
			fails++;
		} else {
			tars_free(p);
		}
	}
	CHILD_CHECK(fails == 100);
	errno = 0;
	void *c = tars_malloc(2048);
	CHILD_CHECK(c == NULL && errno == ENOMEM);
	struct tars_stats s;
	tars_stats_get(&s);
	CHILD_CHECK(s.unlocked_bytes == 0);
	CHILD_CHECK(s.locked_bytes <= SMALL_LIMIT);
	CHILD_CHECK(s.live_count == (size_t)n);
	CHILD_CHECK(s.large_count == (size_t)n && s.key_count == 0);
	/* Freeing releases the lock budget: allocation works again. */
	for (int i = 0; i < n; i++) {
		tars_free(large[i]);
	}
	void *again = tars_malloc(4 * ps);
	CHILD_CHECK(again != NULL);
	tars_free(again);
	again = tars_malloc(64);
	CHILD_CHECK(again != NULL);
	tars_free(again);
	fprintf(stderr, "child done\n");
}

Test(mlock, strict_fails_with_enomem_and_never_aborts)
{
	struct child_result r;
	tars_run_child(strict_child, NULL, &r);
	if (!r.signaled && r.exit_code == SKIP_EXIT) {
		cr_skip_test("%s", r.err);
	}
	cr_assert(!r.signaled && r.exit_code == 0, "child %s %d; stderr: %s",
	    r.signaled ? "signal" : "exit", r.signaled ? r.sig : r.exit_code, r.err);
	cr_assert(strstr(r.err, "child done") != NULL);
	cr_assert(strstr(r.err, "tars: ") == NULL, "strict mode printed: \"%s\"", r.err);
}

static void
strict_chunk_child(void *arg)
{
	(void)arg;
	lower_memlock_limit();
	CHILD_CHECK(tars_option_set("mlock", 2) == 0);
	/* 64-byte chunks: the first run of pages fits the limit, a later
	 * one cannot be locked. */
	enum { MAX = 100000 };
	static void *p[MAX];
	int n = 0;
	errno = 0;
	for (; n < MAX; n++) {
		p[n] = tars_malloc(64);
		if (p[n] == NULL) {
			break;
		}
		memset(p[n], 4, 64);
	}
	CHILD_CHECK(n > 0 && n < MAX);
	CHILD_CHECK(errno == ENOMEM);
	CHILD_CHECK((size_t)n * 64 <= SMALL_LIMIT);
	struct tars_stats s;
	tars_stats_get(&s);
	CHILD_CHECK(s.live_count == (size_t)n);
	CHILD_CHECK(s.unlocked_bytes == 0);
	for (int i = 0; i < n; i++) {
		tars_free(p[i]);
	}
	tars_stats_get(&s);
	CHILD_CHECK(s.live_count == 0);
	fprintf(stderr, "child done\n");
}

Test(mlock, strict_fails_chunk_allocations_too)
{
	struct child_result r;
	tars_run_child(strict_chunk_child, NULL, &r);
	if (!r.signaled && r.exit_code == SKIP_EXIT) {
		cr_skip_test("%s", r.err);
	}
	cr_assert(!r.signaled && r.exit_code == 0, "child %s %d; stderr: %s",
	    r.signaled ? "signal" : "exit", r.signaled ? r.sig : r.exit_code, r.err);
	cr_assert(strstr(r.err, "tars: ") == NULL, "strict mode printed: \"%s\"", r.err);
}

/*
 * Memory locks are not inherited across fork(2): in the child, pages
 * tars had locked come back unlocked.  Secrets the child allocates in them
 * (a chunk page with free slots, inherited) must still be locked, as the
 * child's statistics claim.
 */
static void
child_locks(void *arg)
{
	(void)arg;
	enum { N = 32 };
	void *p[N];
	for (int i = 0; i < N; i++) {
		p[i] = tars_malloc(64);
		CHILD_CHECK(p[i] != NULL);
		memset(p[i], 0x5c, 64);
	}
	void *l = tars_malloc(3 * page_size());
	CHILD_CHECK(l != NULL);
	CHILD_CHECK(tars_has_vmflag(l, "lo"));   /* new mapping: locked */
	struct tars_stats s;
	tars_stats_get(&s);
	for (int i = 0; i < N; i++) {
		if (!tars_has_vmflag(p[i], "lo")) {
			fprintf(stderr, "child block %p (64 bytes) in an unlocked page; "
			    "stats say %zu bytes locked\n", p[i], s.locked_bytes);
			_exit(1);
		}
	}
	for (int i = 0; i < N; i++) {
		tars_free(p[i]);
	}
	tars_free(l);
}

Test(pages, fork_child_allocations_are_locked)
{
	if (!can_lock(1 << 20)) {
		cr_skip_test("RLIMIT_MEMLOCK too small to lock 1 MiB here");
	}
	/* A chunk page with free slots, locked in the parent. */
	void *mine = tars_malloc(64);
	cr_assert_not_null(mine);
	cr_assert(tars_has_vmflag(mine, "lo"));
	EXPECT_EXIT0(child_locks, NULL);
	tars_free(mine);
}

/* A thread's first allocation in the fork child: a small one. */
static void *
thread_alloc(void *arg)
{
	(void)arg;
	void *p = tars_malloc(2048);
	if (p != NULL) {
		memset(p, 1, 2048);
	}
	tars_free(p);
	return p;
}

static void
spawn_allocating_threads(int n)
{
	for (int i = 0; i < n; i++) {
		pthread_t t;
		void *rv;
		CHILD_CHECK(pthread_create(&t, NULL, thread_alloc, NULL) == 0);
		CHILD_CHECK(pthread_join(t, &rv) == 0);
		CHILD_CHECK(rv != NULL);
	}
}

/* The pages are locked again once in the child, not at every new thread's
 * first call. */
static void
child_relocks_once(void *arg)
{
	(void)arg;
	tars_free(tars_malloc(64));          /* the first call: relocks */
	spawn_allocating_threads(4);         /* every pool has a page now */
	struct tars_stats a, b;
	tars_stats_get(&a);
	spawn_allocating_threads(8);
	tars_stats_get(&b);
	if (b.syscalls - a.syscalls > 16) {
		fprintf(stderr, "8 threads' first allocations made %llu system calls\n",
		    (unsigned long long)(b.syscalls - a.syscalls));
		_exit(1);
	}
}

/* With mlock failing in the child, the bytes move from locked to unlocked
 * once: the statistics stay consistent. */
static void
expect_sane_lock_stats(const char *when)
{
	struct tars_stats s;
	tars_stats_get(&s);
	size_t mapped = (s.chunk_pages + s.cached_pages + s.reserve_pages +
	    s.large_pages + s.key_pages + s.slab_free_pages + s.large_cached_pages) *
	    page_size();
	if (s.locked_bytes > mapped || s.unlocked_bytes > mapped) {
		fprintf(stderr, "%s: locked %zu + unlocked %zu bytes > %zu mapped\n",
		    when, s.locked_bytes, s.unlocked_bytes, mapped);
		_exit(1);
	}
}

static void
child_cannot_relock(void *arg)
{
	void **inherited = arg;
	lower_memlock_limit();
	struct rlimit none = {0, 0};
	CHILD_CHECK(setrlimit(RLIMIT_MEMLOCK, &none) == 0);
	tars_free(tars_malloc(64));          /* relock fails: one warning */
	expect_sane_lock_stats("after the relock");
	spawn_allocating_threads(8);
	expect_sane_lock_stats("after new threads");
	/* Freeing the inherited blocks gives back what they hold. */
	for (size_t i = 0; i < 64; i++) {
		tars_free(inherited[i]);
	}
	expect_sane_lock_stats("after freeing the inherited blocks");
}

static void
keep_many_pages(void **p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		p[i] = tars_malloc(i % 2 ? 2048 : 5000);
		cr_assert_not_null(p[i]);
	}
}

Test(pages, fork_child_relocks_once)
{
	if (!can_lock(1 << 20)) {
		cr_skip_test("RLIMIT_MEMLOCK too small to lock 1 MiB here");
	}
	void *p[64];
	keep_many_pages(p, 64);
	EXPECT_EXIT0(child_relocks_once, NULL);
	for (size_t i = 0; i < 64; i++) {
		tars_free(p[i]);
	}
}

Test(pages, fork_child_failing_relock_keeps_stats_sane)
{
	if (!can_lock(1 << 20)) {
		cr_skip_test("RLIMIT_MEMLOCK too small to lock 1 MiB here");
	}
	void *p[64];
	keep_many_pages(p, 64);
	struct child_result r;
	tars_run_child(child_cannot_relock, p, &r);
	if (!r.signaled && r.exit_code == SKIP_EXIT) {
		cr_skip_test("%s", r.err);
	}
	cr_assert(!r.signaled && r.exit_code == 0, "child %s %d; stderr: %s",
	    r.signaled ? "signal" : "exit", r.signaled ? r.sig : r.exit_code, r.err);
	/* Each warning once (failed relock; failed mlock of new pages). */
	cr_assert_leq(count_substr(r.err, "after fork"), 1, "\"%s\"", r.err);
	cr_assert_leq(count_substr(r.err, "tars: warning:"), 2, "\"%s\"", r.err);
	for (size_t i = 0; i < 64; i++) {
		tars_free(p[i]);
	}
}

/*
 * mlock=2 is strict: a secret never goes to a page that is not locked.  In
 * a fork child whose pages cannot be locked again, allocating must fail
 * with ENOMEM rather than hand out an unlocked slot.
 */
static void
strict_child_cannot_relock(void *arg)
{
	(void)arg;
	lower_memlock_limit();
	struct rlimit none = {0, 0};
	CHILD_CHECK(setrlimit(RLIMIT_MEMLOCK, &none) == 0);
	const size_t sizes[] = {64, 2048, 100, 3 * 4096};
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		errno = 0;
		void *p = tars_malloc(sizes[i]);
		if (p == NULL) {
			CHILD_CHECK(errno == ENOMEM);
			continue;
		}
		if (!tars_has_vmflag(p, "lo")) {
			fprintf(stderr, "mlock=2: malloc(%zu) = %p in an unlocked page\n",
			    sizes[i], p);
			_exit(1);
		}
		tars_free(p);
	}
}

Test(mlock, strict_fork_child_never_uses_unlocked_pages)
{
	if (!can_lock(1 << 20)) {
		cr_skip_test("RLIMIT_MEMLOCK too small to lock 1 MiB here");
	}
	cr_assert_eq(tars_option_set("mlock", 2), 0);
	/* The child's thread adopts the parent's heap (the only one). */
	/* Chunk pages with free slots, locked here. */
	void *p[16];
	for (int i = 0; i < 16; i++) {
		p[i] = tars_malloc(i % 2 ? 64 : 2048);
		cr_assert_not_null(p[i]);
	}
	cr_assert(tars_has_vmflag(p[0], "lo"));
	struct child_result r;
	tars_run_child(strict_child_cannot_relock, NULL, &r);
	if (!r.signaled && r.exit_code == SKIP_EXIT) {
		cr_skip_test("%s", r.err);
	}
	cr_assert(!r.signaled && r.exit_code == 0, "child %s %d; stderr: %s",
	    r.signaled ? "signal" : "exit", r.signaled ? r.sig : r.exit_code, r.err);
	for (int i = 0; i < 16; i++) {
		tars_free(p[i]);
	}
}

/* In a fork=2 child the pages that were not inherited are not locked
 * again (there is nothing there to lock): no warning, no stats drift. */
static void
child_first_call(void *arg)
{
	(void)arg;
	struct tars_stats a, b;
	tars_stats_get(&a);
	void *p = tars_malloc(64);
	CHILD_CHECK(p != NULL);
	tars_free(p);
	tars_stats_get(&b);
	CHILD_CHECK(b.unlocked_bytes == a.unlocked_bytes);
}

Test(pages, fork_2_child_relocks_without_warnings)
{
	if (!can_lock(1 << 20)) {
		cr_skip_test("RLIMIT_MEMLOCK too small to lock 1 MiB here");
	}
	cr_assert_eq(tars_option_set("fork", 2), 0);
	struct blocks b;
	blocks_alloc(&b, 0x5c);
	struct child_result r;
	tars_run_child(child_first_call, NULL, &r);
	cr_assert(!r.signaled && r.exit_code == 0, "child %s %d; stderr: %s",
	    r.signaled ? "signal" : "exit", r.signaled ? r.sig : r.exit_code, r.err);
	cr_assert_eq(r.err[0], '\0', "unexpected output: \"%s\"", r.err);
	blocks_free(&b);
}
