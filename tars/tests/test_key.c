/*
 * tars_key: the buffer with no access outside its scopes.
 *
 * Faults and aborts are checked in forked children (util.h).  Those
 * children allocate their own keys: tars pages are wiped on fork (option
 * fork=1), so a key made by the parent reads as zeros in the child.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>

#include <criterion/criterion.h>

#include "tars.h"
#include "util.h"

#define ASSERT_PERMS(addr, want) do {                                        \
	char perms_[5];                                                      \
	cr_assert_eq(perms_of((addr), perms_), 0, "no mapping");             \
	cr_assert_eq(strncmp(perms_, (want), 3), 0, "pages are %s, want %s", \
	    perms_, (want));                                                 \
} while (0)

static uint64_t
protect_changes(void)
{
	struct tars_stats st;
	tars_stats_get(&st);
	return st.protect_changes;
}

/* --------------------------------------------------------------- making */

Test(key, new_moves_the_buffer_into_the_key)
{
	tars_key *k = pattern_key();
	cr_assert_not_null(k, "%s", strerror(errno));
	cr_assert_eq(tars_key_len(k), sizeof(pattern));
	const unsigned char *p = tars_key_read_begin(k);
	cr_assert_not_null(p);
	cr_assert_eq(memcmp(p, pattern, sizeof(pattern)), 0);
	tars_key_read_end(k);
	tars_key_free(k);
}

static void
new_fails_without_mmap(void *arg)
{
	(void)arg;
	tars_key_free(pattern_key()); /* allocator up and seeded */
	tars_buf *b = tars_buf_from(pattern, sizeof(pattern));
	CHILD_CHECK(b != NULL);
	/* The key arena has free slots already: no page can be mapped,
	 * written closed (/proc/self/mem) or opened. */
	deny_syscall(SYS_mmap, -1, 0, ENOMEM);
	deny_syscall(SYS_pwritev, -1, 0, ENOMEM);
	deny_syscall(SYS_mprotect, -1, 0, ENOMEM);
	errno = 0;
	tars_key *k = tars_key_new(b);
	CHILD_CHECK(k == NULL);
	CHILD_CHECK(errno == ENOMEM);
	/* buf untouched: still valid, same length and bytes. */
	CHILD_CHECK(tars_buf_len(b) == sizeof(pattern));
	CHILD_CHECK(memcmp(tars_buf_data(b), pattern, sizeof(pattern)) == 0);
	tars_buf_free(b);
}

Test(key, new_failure_leaves_the_buffer_untouched)
{
	EXPECT_EXIT0(new_fails_without_mmap, NULL);
}

Test(key, new_random_has_the_length_and_differs)
{
	tars_key *a = tars_key_new_random(32);
	tars_key *b = tars_key_new_random(32);
	cr_assert(a != NULL && b != NULL);
	cr_assert_eq(tars_key_len(a), 32);
	cr_assert_eq(tars_key_equal(a, b), 0);
	const unsigned char *p = tars_key_read_begin(a);
	cr_assert_not_null(p);
	int zero = 1;
	for (size_t i = 0; i < 32; i++) {
		zero &= p[i] == 0;
	}
	cr_assert(!zero);
	tars_key_read_end(a);
	tars_key_free(b);
	tars_key_free(a);

	tars_key *big = tars_key_new_random(10000);
	cr_assert_not_null(big);
	cr_assert_eq(tars_key_len(big), 10000);
	tars_key_free(big);
}

static void
random_fails_without_getrandom(void *arg)
{
	(void)arg;
	tars_key_free(tars_key_new_random(16));
	deny_syscall(SYS_getrandom, -1, 0, EIO);
	errno = 0;
	CHILD_CHECK(tars_key_new_random(32) == NULL);
	CHILD_CHECK(errno == EIO);
}

Test(key, new_random_fails_with_errno_when_getrandom_fails)
{
	EXPECT_EXIT0(random_fails_without_getrandom, NULL);
}

static int
fill_byte(void *data, size_t len, void *arg)
{
	memset(data, *(const unsigned char *)arg, len);
	return 0;
}

Test(key, clone_is_equal_and_independent)
{
	tars_key *k = pattern_key();
	cr_assert_not_null(k);
	tars_key *c = tars_key_clone(k);
	cr_assert_not_null(c);
	cr_assert_eq(tars_key_len(c), sizeof(pattern));
	cr_assert_eq(tars_key_equal(k, c), 1);
	/* Cloning leaves both keys closed. */
	ASSERT_PERMS(key_address(k), "---");
	ASSERT_PERMS(key_address(c), "---");
	unsigned char x = 'x';
	cr_assert_eq(tars_key_write_with(c, fill_byte, &x), 0);
	cr_assert_eq(tars_key_equal(k, c), 0);
	const unsigned char *p = tars_key_read_begin(k);
	cr_assert_eq(memcmp(p, pattern, sizeof(pattern)), 0);
	tars_key_read_end(k);
	tars_key_free(c);
	tars_key_free(k);
}

Test(key, clone_fails_with_ebusy_during_a_write_scope)
{
	tars_key *k = pattern_key();
	cr_assert_not_null(k);
	cr_assert_not_null(tars_key_write_begin(k));
	errno = 0;
	cr_assert_null(tars_key_clone(k));
	cr_assert_eq(errno, EBUSY);
	tars_key_write_end(k);
	/* Cloning inside a read scope is fine. */
	cr_assert_not_null(tars_key_read_begin(k));
	tars_key *c = tars_key_clone(k);
	cr_assert_not_null(c);
	tars_key_read_end(k);
	ASSERT_PERMS(key_address(k), "---");
	tars_key_free(c);
	tars_key_free(k);
}

/* --------------------------------------------------------------- scopes */

Test(key, bytes_are_inaccessible_outside_scopes)
{
	tars_key *k = pattern_key();
	cr_assert_not_null(k);
	ASSERT_PERMS(key_address(k), "---");
	tars_key *r = tars_key_new_random(5000);
	cr_assert_not_null(r);
	const volatile unsigned char *p = key_address(r);
	ASSERT_PERMS(p, "---");
	ASSERT_PERMS(p + 4999, "---");
	tars_key_free(r);
	tars_key_free(k);
}

Test(key, read_scope_is_read_only_and_write_scope_read_write)
{
	tars_key *k = pattern_key();
	cr_assert_not_null(k);
	const unsigned char *r = tars_key_read_begin(k);
	cr_assert_not_null(r);
	ASSERT_PERMS(r, "r--");
	tars_key_read_end(k);
	ASSERT_PERMS(r, "---");

	unsigned char *w = tars_key_write_begin(k);
	cr_assert_eq((const void *)w, (const void *)r);
	ASSERT_PERMS(w, "rw-");
	memset(w, 'w', sizeof(pattern));
	tars_key_write_end(k);
	ASSERT_PERMS(w, "---");

	r = tars_key_read_begin(k);
	for (size_t i = 0; i < sizeof(pattern); i++) {
		cr_assert_eq(r[i], 'w');
	}
	tars_key_read_end(k);
	tars_key_free(k);
}

/* The first reader opens, the last closes, and nobody else calls mprotect. */
Test(key, nested_readers_change_protection_once)
{
	tars_key *k = pattern_key();
	cr_assert_not_null(k);
	uint64_t base = protect_changes();
	const void *p1 = tars_key_read_begin(k);
	cr_assert_not_null(p1);
	cr_assert_eq(protect_changes() - base, 1);
	const void *p2 = tars_key_read_begin(k);
	const void *p3 = tars_key_read_begin(k);
	cr_assert(p2 == p1 && p3 == p1);
	cr_assert_eq(protect_changes() - base, 1);
	tars_key_read_end(k);
	tars_key_read_end(k);
	ASSERT_PERMS(p1, "r--");
	cr_assert_eq(memcmp(p1, pattern, sizeof(pattern)), 0);
	cr_assert_eq(protect_changes() - base, 1);
	tars_key_read_end(k);
	ASSERT_PERMS(p1, "---");
	cr_assert_eq(protect_changes() - base, 2, "%llu", (unsigned long long)(protect_changes() - base));

	cr_assert_not_null(tars_key_write_begin(k));
	cr_assert_eq(protect_changes() - base, 3);
	tars_key_write_end(k);
	cr_assert_eq(protect_changes() - base, 4);
	tars_key_free(k);
}

Test(key, conflicting_scopes_fail_with_ebusy)
{
	tars_key *k = pattern_key();
	tars_key *other = pattern_key();
	cr_assert(k != NULL && other != NULL);

	/* A read scope is open: writers are refused, readers welcome. */
	cr_assert_not_null(tars_key_read_begin(k));
	errno = 0;
	cr_assert_null(tars_key_write_begin(k));
	cr_assert_eq(errno, EBUSY);
	ASSERT_PERMS(key_address(k), "r--");
	cr_assert_not_null(tars_key_read_begin(k));
	tars_key_read_end(k);
	tars_key_read_end(k);

	/* The write scope is open: everyone is refused. */
	cr_assert_not_null(tars_key_write_begin(k));
	errno = 0;
	cr_assert_null(tars_key_read_begin(k));
	cr_assert_eq(errno, EBUSY);
	errno = 0;
	cr_assert_null(tars_key_write_begin(k));
	cr_assert_eq(errno, EBUSY);
	errno = 0;
	cr_assert_eq(tars_key_equal(k, other), -1);
	cr_assert_eq(errno, EBUSY);
	errno = 0;
	cr_assert_eq(tars_key_equal(other, k), -1);
	cr_assert_eq(errno, EBUSY);
	tars_key_write_end(k);

	/* Refusals changed nothing: the key is closed, other too. */
	ASSERT_PERMS(key_address(k), "---");
	ASSERT_PERMS(key_address(other), "---");
	cr_assert_eq(tars_key_equal(k, other), 1);
	tars_key_free(other);
	tars_key_free(k);
}

Test(key, errno_is_unchanged_on_success)
{
	errno = EDOM;
	tars_key *k = pattern_key();
	cr_assert_not_null(k);
	tars_key *c = tars_key_clone(k);
	cr_assert_not_null(c);
	cr_assert_not_null(tars_key_read_begin(k));
	tars_key_read_end(k);
	cr_assert_not_null(tars_key_write_begin(k));
	tars_key_write_end(k);
	cr_assert_eq(tars_key_equal(k, c), 1);
	tars_key_free(c);
	tars_key_free(k);
	cr_assert_eq(errno, EDOM);
}

struct with_args {
	size_t len;
	int calls;
	unsigned char first;
};

static int
read_fn(const void *data, size_t len, void *arg)
{
	struct with_args *a = arg;
	a->len = len;
	a->calls++;
	a->first = *(const unsigned char *)data;
	return 42;
}

static int
write_fn(void *data, size_t len, void *arg)
{
	struct with_args *a = arg;
	a->len = len;
	a->calls++;
	memset(data, 'W', len);
	return -7;
}

Test(key, read_with_and_write_with_run_fn_inside_a_scope)
{
	tars_key *k = pattern_key();
	cr_assert_not_null(k);
	struct with_args a = {0, 0, 0};
	cr_assert_eq(tars_key_read_with(k, read_fn, &a), 42);
	cr_assert_eq(a.calls, 1);
	cr_assert_eq(a.len, sizeof(pattern));
	cr_assert_eq(a.first, '0');
	ASSERT_PERMS(key_address(k), "---");

	/* fn's own -1 or other values come back as they are. */
	cr_assert_eq(tars_key_write_with(k, write_fn, &a), -7);
	cr_assert_eq(a.calls, 2);
	cr_assert_eq(tars_key_read_with(k, read_fn, &a), 42);
	cr_assert_eq(a.first, 'W');
	ASSERT_PERMS(key_address(k), "---");

	/* Conflicts: -1, EBUSY, fn not called. */
	cr_assert_not_null(tars_key_read_begin(k));
	errno = 0;
	cr_assert_eq(tars_key_write_with(k, write_fn, &a), -1);
	cr_assert_eq(errno, EBUSY);
	cr_assert_eq(tars_key_read_with(k, read_fn, &a), 42); /* nested reader */
	tars_key_read_end(k);
	cr_assert_not_null(tars_key_write_begin(k));
	errno = 0;
	cr_assert_eq(tars_key_read_with(k, read_fn, &a), -1);
	cr_assert_eq(errno, EBUSY);
	errno = 0;
	cr_assert_eq(tars_key_write_with(k, write_fn, &a), -1);
	cr_assert_eq(errno, EBUSY);
	cr_assert_eq(a.calls, 4);
	tars_key_write_end(k);
	tars_key_free(k);
}

Test(key, equal_is_one_or_zero)
{
	tars_key *a = pattern_key();
	tars_key *b = pattern_key();
	tars_key *r = tars_key_new_random(32);
	tars_key *s = tars_key_new_random(31);
	cr_assert(a != NULL && b != NULL && r != NULL && s != NULL);
	cr_assert_eq(tars_key_equal(a, b), 1);
	cr_assert_eq(tars_key_equal(a, a), 1);
	cr_assert_eq(tars_key_equal(a, r), 0);
	cr_assert_eq(tars_key_equal(a, s), 0);
	unsigned char *w = tars_key_write_begin(b);
	w[31] ^= 1;
	tars_key_write_end(b);
	cr_assert_eq(tars_key_equal(a, b), 0);
	/* Both keys closed again afterwards. */
	ASSERT_PERMS(key_address(a), "---");
	ASSERT_PERMS(key_address(b), "---");
	tars_key_free(s);
	tars_key_free(r);
	tars_key_free(b);
	tars_key_free(a);
}

Test(key, zero_length_keys_are_valid)
{
	tars_buf *b = tars_buf_new(0);
	cr_assert_not_null(b);
	tars_key *k = tars_key_new(b);
	cr_assert_not_null(k);
	cr_assert_eq(tars_key_len(k), 0);
	cr_assert_not_null(tars_key_read_begin(k));
	cr_assert_not_null(tars_key_read_begin(k));
	errno = 0;
	cr_assert_null(tars_key_write_begin(k));
	cr_assert_eq(errno, EBUSY);
	tars_key_read_end(k);
	tars_key_read_end(k);
	cr_assert_not_null(tars_key_write_begin(k));
	tars_key_write_end(k);
	tars_key *r = tars_key_new_random(0);
	cr_assert_not_null(r);
	tars_key *c = tars_key_clone(k);
	cr_assert_not_null(c);
	cr_assert_eq(tars_key_equal(k, r), 1);
	cr_assert_eq(tars_key_equal(k, c), 1);
	struct with_args a = {99, 0, 0};
	cr_assert_eq(tars_key_write_with(c, write_fn, &a), -7);
	cr_assert_eq(a.len, 0);
	tars_key_free(c);
	tars_key_free(r);
	tars_key_free(k);
}

Test(key, free_null_is_a_no_op)
{
	tars_key_free(NULL);
}

/* ------------------------------------------------------- where it lives */

Test(key, struct_is_tars_memory_and_bytes_have_their_own_pages)
{
	tars_key *k = pattern_key();
	tars_key *k2 = pattern_key();
	tars_buf *b = tars_buf_new(32);
	cr_assert(k != NULL && k2 != NULL && b != NULL);
	/* tars_usable_size aborts on a pointer tars did not return. */
	cr_assert_geq(tars_usable_size(k), 1);
	cr_assert(tars_has_vmflag(k, "dd"), "key struct page lacks VM_DONTDUMP");

	long pg = sysconf(_SC_PAGESIZE);
	cr_assert_gt(pg, 0);
	uintptr_t mask = ~(uintptr_t)(pg - 1);
	uintptr_t page = (uintptr_t)key_address(k) & mask;
	cr_assert_neq(page, (uintptr_t)key_address(k2) & mask);
	cr_assert_neq(page, (uintptr_t)k & mask);
	cr_assert_neq(page, (uintptr_t)tars_buf_data(b) & mask);
	tars_buf_free(b);
	tars_key_free(k2);
	tars_key_free(k);
}

/* ------------------------------------------------------ faults (SIGSEGV) */

static void
read_after_read_end(void *arg)
{
	(void)arg;
	tars_key *k = pattern_key();
	const volatile unsigned char *p = key_address(k);
	(void)p[0];
}

Test(key, read_outside_a_scope_faults)
{
	EXPECT_FAULT(read_after_read_end, NULL);
}

static void
read_after_write_end(void *arg)
{
	(void)arg;
	tars_key *k = pattern_key();
	volatile unsigned char *p = tars_key_write_begin(k);
	p[0] = 1;
	tars_key_write_end(k);
	fputs("write scope closed\n", stderr); /* the fault comes after this */
	(void)p[0];
}

Test(key, read_after_the_write_scope_faults)
{
	EXPECT_DEATH(read_after_write_end, NULL, SIGSEGV, "write scope closed");
}

static void
write_in_read_scope(void *arg)
{
	(void)arg;
	tars_key *k = pattern_key();
	volatile unsigned char *p = (volatile unsigned char *)tars_key_read_begin(k);
	p[0] = 1;
}

Test(key, write_inside_a_read_scope_faults)
{
	EXPECT_FAULT(write_in_read_scope, NULL);
}

static void
read_after_last_nested_end(void *arg)
{
	(void)arg;
	tars_key *k = pattern_key();
	const volatile unsigned char *p = tars_key_read_begin(k);
	CHILD_CHECK(tars_key_read_begin(k) != NULL);
	tars_key_read_end(k);
	if (p[0] != '0') { /* still readable: one scope left */
		_exit(3);
	}
	tars_key_read_end(k);
	fputs("last reader gone\n", stderr); /* the fault comes after this */
	(void)p[0];
}

Test(key, read_after_the_last_nested_reader_faults)
{
	EXPECT_DEATH(read_after_last_nested_end, NULL, SIGSEGV, "last reader gone");
}

/* The bytes end at the trailing guard page (16-byte aligned end). */
static void
read_past_the_end(void *arg)
{
	(void)arg;
	tars_key *k = pattern_key();
	const volatile unsigned char *p = tars_key_read_begin(k);
	(void)p[sizeof(pattern)];
}

Test(key, read_past_the_end_hits_the_guard_page)
{
	EXPECT_FAULT(read_past_the_end, NULL);
}

/* ------------------------------------------------------- misuse (abort) */

static void
read_end_unopened(void *arg)
{
	(void)arg;
	tars_key_read_end(pattern_key());
}

Test(key, read_end_without_a_scope_aborts)
{
	EXPECT_ABORT(read_end_unopened, NULL,
	    "tars: tars_key_read_end(): no read scope open");
}

static void
read_end_twice(void *arg)
{
	(void)arg;
	tars_key *k = pattern_key();
	CHILD_CHECK(tars_key_read_begin(k) != NULL);
	tars_key_read_end(k);
	tars_key_read_end(k);
}

Test(key, read_end_once_too_often_aborts)
{
	EXPECT_ABORT(read_end_twice, NULL,
	    "tars: tars_key_read_end(): no read scope open");
}

static void
read_end_in_write_scope(void *arg)
{
	(void)arg;
	tars_key *k = pattern_key();
	CHILD_CHECK(tars_key_write_begin(k) != NULL);
	tars_key_read_end(k);
}

Test(key, read_end_during_the_write_scope_aborts)
{
	EXPECT_ABORT(read_end_in_write_scope, NULL,
	    "tars: tars_key_read_end(): no read scope open");
}

static void
write_end_unopened(void *arg)
{
	(void)arg;
	tars_key_write_end(pattern_key());
}

Test(key, write_end_without_a_scope_aborts)
{
	EXPECT_ABORT(write_end_unopened, NULL,
	    "tars: tars_key_write_end(): no write scope open");
}

static void
write_end_in_read_scope(void *arg)
{
	(void)arg;
	tars_key *k = pattern_key();
	CHILD_CHECK(tars_key_read_begin(k) != NULL);
	tars_key_write_end(k);
}

Test(key, write_end_during_a_read_scope_aborts)
{
	EXPECT_ABORT(write_end_in_read_scope, NULL,
	    "tars: tars_key_write_end(): no write scope open");
}

static void
free_in_read_scope(void *arg)
{
	(void)arg;
	tars_key *k = pattern_key();
	CHILD_CHECK(tars_key_read_begin(k) != NULL);
	tars_key_free(k);
}

Test(key, free_with_a_read_scope_open_aborts)
{
	EXPECT_ABORT(free_in_read_scope, NULL,
	    "tars: tars_key_free(): key freed with a read scope open");
}

static void
free_in_write_scope(void *arg)
{
	(void)arg;
	tars_key *k = pattern_key();
	CHILD_CHECK(tars_key_write_begin(k) != NULL);
	tars_key_free(k);
}

Test(key, free_with_the_write_scope_open_aborts)
{
	EXPECT_ABORT(free_in_write_scope, NULL,
	    "tars: tars_key_free(): key freed with a write scope open");
}

static void
double_free(void *arg)
{
	(void)arg;
	tars_key *keep = pattern_key(); /* keeps the struct page in use */
	tars_key *k = pattern_key();
	tars_key_free(k);
	tars_key *volatile again = k;
	tars_key_free(again);
	tars_key_free(keep);
}

Test(key, double_free_aborts)
{
	EXPECT_ABORT(double_free, NULL, "tars: ");
}

/* ---------------------------------------------------------------- wiping */

Test(key, freed_bytes_are_gone)
{
	tars_key *k = pattern_key();
	cr_assert_not_null(k);
	const volatile unsigned char *p = key_address(k);
	unsigned char seen[sizeof(pattern)];
	cr_assert_eq(peek(p, seen, sizeof(seen)), (ssize_t)sizeof(seen));
	cr_assert_eq(memcmp(seen, pattern, sizeof(pattern)), 0, "peek sees no key");
	tars_key_free(k);
	ssize_t n = peek(p, seen, sizeof(seen));
	if (n < 0) {
		cr_assert(errno == EIO || errno == EFAULT, "peek: %s", strerror(errno));
	} else {
		cr_assert_neq(memcmp(seen, pattern, (size_t)n), 0, "freed key still readable");
	}
}

/* ---------------------------------------------- protection change fails */

static void
read_begin_enomem(void *arg)
{
	(void)arg;
	tars_key *k = pattern_key();
	CHILD_CHECK(k != NULL);
	const volatile unsigned char *p = key_address(k);
	deny_syscall(SYS_mprotect, 2, PROT_READ, ENOMEM);
	errno = 0;
	CHILD_CHECK(tars_key_read_begin(k) == NULL);
	CHILD_CHECK(errno == ENOMEM);
	errno = 0;
	CHILD_CHECK(tars_key_equal(k, k) == -1);
	CHILD_CHECK(errno == ENOMEM);
	/* No reader was counted: the write scope opens, and closes again. */
	unsigned char *w = tars_key_write_begin(k);
	CHILD_CHECK(w != NULL);
	CHILD_CHECK(memcmp(w, pattern, sizeof(pattern)) == 0);
	tars_key_write_end(k);
	char perms[5];
	CHILD_CHECK(perms_of(p, perms) == 0 && strncmp(perms, "---", 3) == 0);
	tars_key_free(k);
}

Test(key, read_begin_reports_a_protection_failure)
{
	EXPECT_EXIT0(read_begin_enomem, NULL);
}

static void
write_begin_enomem(void *arg)
{
	(void)arg;
	tars_key *k = pattern_key();
	CHILD_CHECK(k != NULL);
	const volatile unsigned char *p = key_address(k);
	deny_syscall(SYS_mprotect, 2, PROT_READ | PROT_WRITE, ENOMEM);
	errno = 0;
	CHILD_CHECK(tars_key_write_begin(k) == NULL);
	CHILD_CHECK(errno == ENOMEM);
	/* No writer was recorded: a read scope opens, and closes again. */
	const unsigned char *r = tars_key_read_begin(k);
	CHILD_CHECK(r != NULL);
	CHILD_CHECK(memcmp(r, pattern, sizeof(pattern)) == 0);
	tars_key_read_end(k);
	char perms[5];
	CHILD_CHECK(perms_of(p, perms) == 0 && strncmp(perms, "---", 3) == 0);
	/* Freeing cannot open the pages to wipe them: they are wiped closed
	 * (the key arena writes through /proc/self/mem) or unmapped. */
	tars_key_free(k);
	CHILD_CHECK(perms_of(p, perms) == -1 || strncmp(perms, "---", 3) == 0);
	CHILD_CHECK(!peeks_pattern(p));
}

Test(key, write_begin_reports_a_protection_failure)
{
	EXPECT_EXIT0(write_begin_enomem, NULL);
}

/* -------------------------------------------------------------- threads */

enum { READERS = 4 };

struct shared {
	tars_key *key;
	pthread_barrier_t opened; /* every reader holds its scope */
	pthread_barrier_t checked;/* the refusals have been checked */
	int read_ok[READERS];
	int write_errno;
	const void *write_ret;
};

struct reader_arg {
	struct shared *s;
	int id;
};

static void *
reader(void *p)
{
	struct reader_arg *a = p;
	struct shared *s = a->s;
	const unsigned char *data = tars_key_read_begin(s->key);
	(void)pthread_barrier_wait(&s->opened);
	(void)pthread_barrier_wait(&s->checked);
	/* Still readable although other threads may have ended theirs. */
	s->read_ok[a->id] = data != NULL &&
	    memcmp(data, pattern, sizeof(pattern)) == 0;
	if (data != NULL) {
		tars_key_read_end(s->key);
	}
	return NULL;
}

static void *
writer(void *p)
{
	struct shared *s = p;
	errno = 0;
	s->write_ret = tars_key_write_begin(s->key);
	s->write_errno = errno;
	return NULL;
}

static void *
warm_heap(void *arg)
{
	pthread_barrier_t *b = arg;
	tars_free(tars_malloc(1));
	(void)pthread_barrier_wait(b);
	return NULL;
}

/* n threads alive at once make n heaps, which later threads adopt: their
 * first call then makes no system call. */
static void
warm_heaps(int n)
{
	pthread_barrier_t b;
	pthread_t th[16];
	cr_assert_leq(n, 16);
	cr_assert_eq(pthread_barrier_init(&b, NULL, (unsigned)n), 0);
	for (int i = 0; i < n; i++) {
		cr_assert_eq(pthread_create(&th[i], NULL, warm_heap, &b), 0);
	}
	for (int i = 0; i < n; i++) {
		cr_assert_eq(pthread_join(th[i], NULL), 0);
	}
	pthread_barrier_destroy(&b);
}

Test(key, readers_on_several_threads_share_the_scope_and_block_writers,
    .timeout = 30)
{
	struct shared s;
	memset(&s, 0, sizeof(s));
	tars_free(tars_malloc(1));   /* this thread's heap first */
	warm_heaps(READERS + 1);     /* then one for each thread below */
	s.key = pattern_key();
	cr_assert_not_null(s.key);
	cr_assert_eq(pthread_barrier_init(&s.opened, NULL, READERS + 1), 0);
	cr_assert_eq(pthread_barrier_init(&s.checked, NULL, READERS + 1), 0);
	uint64_t base = protect_changes();

	pthread_t th[READERS];
	struct reader_arg args[READERS];
	for (int i = 0; i < READERS; i++) {
		args[i] = (struct reader_arg){&s, i};
		cr_assert_eq(pthread_create(&th[i], NULL, reader, &args[i]), 0);
	}
	(void)pthread_barrier_wait(&s.opened);

	/* All readers in: one PROT_READ for all of them. */
	const volatile unsigned char *p = key_address(s.key);
	ASSERT_PERMS(p, "r--");
	cr_assert_eq(protect_changes() - base, 1);
	pthread_t w;
	cr_assert_eq(pthread_create(&w, NULL, writer, &s), 0);
	cr_assert_eq(pthread_join(w, NULL), 0);
	cr_assert_null(s.write_ret);
	cr_assert_eq(s.write_errno, EBUSY);
	errno = 0;
	cr_assert_null(tars_key_write_begin(s.key));
	cr_assert_eq(errno, EBUSY);

	(void)pthread_barrier_wait(&s.checked);
	for (int i = 0; i < READERS; i++) {
		cr_assert_eq(pthread_join(th[i], NULL), 0);
		cr_assert(s.read_ok[i], "reader %d", i);
	}
	/* The last reader closed it. */
	ASSERT_PERMS(p, "---");
	cr_assert_eq(protect_changes() - base, 2, "%llu", (unsigned long long)(protect_changes() - base));
	cr_assert_not_null(tars_key_write_begin(s.key));
	tars_key_write_end(s.key);
	cr_assert_eq(pthread_barrier_destroy(&s.checked), 0);
	cr_assert_eq(pthread_barrier_destroy(&s.opened), 0);
	tars_key_free(s.key);
}

static void *
open_read(void *k)
{
	return (void *)tars_key_read_begin(k);
}

static void *
close_read(void *k)
{
	tars_key_read_end(k);
	return NULL;
}

static void *
run_on_thread(void *(*fn)(void *), void *arg)
{
	pthread_t t;
	void *ret;
	cr_assert_eq(pthread_create(&t, NULL, fn, arg), 0);
	cr_assert_eq(pthread_join(t, &ret), 0);
	return ret;
}

/* Scopes belong to the key, not to a thread: any thread may end one. */
Test(key, the_last_read_end_on_any_thread_closes)
{
	tars_key *k = pattern_key();
	cr_assert_not_null(k);
	const volatile unsigned char *p = run_on_thread(open_read, k);
	cr_assert_not_null(p);
	cr_assert_eq(run_on_thread(open_read, k), p);
	run_on_thread(close_read, k);
	ASSERT_PERMS(p, "r--");
	cr_assert_eq(p[0], '0');
	run_on_thread(close_read, k);
	ASSERT_PERMS(p, "---");
	tars_key_free(k);
}

/*
 * Readers check that the key always holds one byte value repeated (a
 * writer never runs during a read), the writer changes that value when it
 * gets the scope.  Run with test-tsan too.
 */
enum { STRESS_READERS = 3, STRESS_LEN = 4096 + 100 };

struct stress {
	tars_key *key;
	int stop;                /* atomic */
	unsigned long reads[STRESS_READERS];
	unsigned long torn[STRESS_READERS];
	unsigned long writes;
	unsigned long refused;
};

struct stress_arg {
	struct stress *s;
	int id;
};

static void
pause_briefly(void)
{
	struct timespec ts = {0, 20000};
	(void)nanosleep(&ts, NULL);
}

static void *
stress_reader(void *p)
{
	struct stress_arg *a = p;
	struct stress *s = a->s;
	while (!__atomic_load_n(&s->stop, __ATOMIC_RELAXED)) {
		const unsigned char *d = tars_key_read_begin(s->key);
		if (d == NULL) {
			pause_briefly();
			continue;
		}
		for (size_t i = 1; i < STRESS_LEN; i++) {
			if (d[i] != d[0]) {
				s->torn[a->id]++;
				break;
			}
		}
		tars_key_read_end(s->key);
		s->reads[a->id]++;
		pause_briefly();
	}
	return NULL;
}

static void *
stress_writer(void *p)
{
	struct stress *s = p;
	unsigned char v = 0;
	while (!__atomic_load_n(&s->stop, __ATOMIC_RELAXED)) {
		unsigned char *d = tars_key_write_begin(s->key);
		if (d == NULL) {
			s->refused++;
			sched_yield();
			continue;
		}
		memset(d, ++v, STRESS_LEN);
		tars_key_write_end(s->key);
		s->writes++;
	}
	return NULL;
}

Test(stress, key_scopes_under_contention, .timeout = 60)
{
	struct stress s;
	memset(&s, 0, sizeof(s));
	tars_buf *b = tars_buf_new_zero(STRESS_LEN);
	cr_assert_not_null(b);
	s.key = tars_key_new(b);
	cr_assert_not_null(s.key);

	pthread_t rd[STRESS_READERS], wr;
	struct stress_arg args[STRESS_READERS];
	for (int i = 0; i < STRESS_READERS; i++) {
		args[i] = (struct stress_arg){&s, i};
		cr_assert_eq(pthread_create(&rd[i], NULL, stress_reader, &args[i]), 0);
	}
	cr_assert_eq(pthread_create(&wr, NULL, stress_writer, &s), 0);
	struct timespec run = {0, 500 * 1000 * 1000};
	(void)nanosleep(&run, NULL);
	__atomic_store_n(&s.stop, 1, __ATOMIC_RELAXED);
	cr_assert_eq(pthread_join(wr, NULL), 0);
	unsigned long reads = 0;
	for (int i = 0; i < STRESS_READERS; i++) {
		cr_assert_eq(pthread_join(rd[i], NULL), 0);
		cr_assert_eq(s.torn[i], 0, "reader %d saw a write in progress", i);
		reads += s.reads[i];
	}
	cr_assert_gt(reads, 0);
	cr_assert_gt(s.writes, 0, "the writer never got the scope (%lu refusals)", s.refused);
	ASSERT_PERMS(key_address(s.key), "---");
	tars_key_free(s.key);
}
