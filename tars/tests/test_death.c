/*
 * Death tests: every misuse of the allocator and the containers that tars
 * promises to catch, one bug per test, in the style of hardened_malloc's
 * test/ programs.  Each bug runs in a forked child (tars_run_child); the
 * test asserts the signal AND the exact "tars: <function>(): " prefix with
 * the key words of the fault on the same line.  Guard-page and PROT_NONE
 * hits are SIGSEGV with no message (the library installs no handler).
 *
 * Every child runs twice: as forked (one thread), and with a second thread
 * idling beside it for the whole run.  tars's fast paths do not depend on
 * the number of threads (every thread owns its heap), and the same bugs
 * must be caught the same way in both.
 *
 * Bug bodies write and read through volatile pointers and are noinline, so
 * the optimizer cannot prove them undefined and delete them.
 *
 * The suite "edge" holds the neighbouring cases that must NOT die: size
 * overflows that return NULL/ENOMEM, errno left alone on success, distinct
 * size-0 pointers, reads of freed slots.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "tars.h"
#include "tars_internal.h"
#include "util.h"

#define BUG __attribute__((noinline, optimize(0)))

/*
 * How a child runs: as forked, or with an idle second thread (see the top
 * of the file).
 */
enum { ALONE, IDLE_THREAD, NMODES };
static const char *const mode_name[NMODES] = {"as forked", "beside an idle thread"};

struct trampoline {
	void (*fn)(void *);
	void *arg;
};

static void *
idle_thread(void *arg)
{
	(void)arg;
	for (;;) {
		pause();
	}
	return NULL;
}

static void
run_beside_idle(void *arg)
{
	const struct trampoline *t = arg;
	pthread_t th;
	CHILD_CHECK(pthread_create(&th, NULL, idle_thread, NULL) == 0);
	t->fn(t->arg);
}

static void
run_child(void (*fn)(void *), void *arg, int mode, struct child_result *r)
{
	struct trampoline t = {fn, arg};
	if (mode == IDLE_THREAD) {
		tars_run_child(run_beside_idle, &t, r);
	} else {
		tars_run_child(fn, arg, r);
	}
}

/*
 * The child must die by `sig`, and one line of its stderr must start with
 * `prefix` ("tars: tars_free(): ") and contain every key word after it.
 */
static void
expect_death(void (*fn)(void *), void *arg, int sig, const char *prefix,
    const char *word1, const char *word2)
{
	for (int mode = 0; mode < NMODES; mode++) {
		struct child_result r;
		const char *m = mode_name[mode];
		run_child(fn, arg, mode, &r);
		cr_assert(r.signaled, "%s: expected signal %d (%s), child exited %d; "
		    "stderr: %s", m, sig, strsignal(sig), r.exit_code, r.err);
		cr_assert_eq(r.sig, sig, "%s: expected signal %d (%s), got %d (%s); "
		    "stderr: %s", m, sig, strsignal(sig), r.sig, strsignal(r.sig), r.err);
		const char *line = strstr(r.err, prefix);
		cr_assert(line != NULL, "%s: stderr lacks \"%s\": \"%s\"", m, prefix, r.err);
		cr_assert(line == r.err || line[-1] == '\n',
		    "%s: \"%s\" does not start a line: \"%s\"", m, prefix, r.err);
		const char *end = strchr(line, '\n');
		size_t len = end ? (size_t)(end - line) : strlen(line);
		char msg[1024];
		snprintf(msg, sizeof(msg), "%.*s", (int)len, line);
		const char *words[2] = {word1, word2};
		for (int i = 0; i < 2; i++) {
			if (words[i] != NULL) {
				cr_assert(strstr(msg + strlen(prefix), words[i]) != NULL,
				    "%s: message lacks \"%s\": \"%s\"", m, words[i], msg);
			}
		}
	}
}

/* Guard page or PROT_NONE hit: SIGSEGV, in both modes. */
static void
expect_fault(void (*fn)(void *), void *arg)
{
	for (int mode = 0; mode < NMODES; mode++) {
		struct child_result r;
		run_child(fn, arg, mode, &r);
		cr_assert(r.signaled && r.sig == SIGSEGV, "%s: expected SIGSEGV, got %s %d; "
		    "stderr: %s", mode_name[mode], r.signaled ? "signal" : "exit",
		    r.signaled ? r.sig : r.exit_code, r.err);
	}
}

/* The child must exit 0, in both modes. */
static void
expect_exit0(void (*fn)(void *), void *arg)
{
	for (int mode = 0; mode < NMODES; mode++) {
		struct child_result r;
		run_child(fn, arg, mode, &r);
		cr_assert(!r.signaled && r.exit_code == 0, "%s: child %s %d; stderr: %s",
		    mode_name[mode], r.signaled ? "signal" : "exit",
		    r.signaled ? r.sig : r.exit_code, r.err);
	}
}

#define EXPECT_TARS_ABORT(fn, func, w1, w2) \
	expect_death((fn), NULL, SIGABRT, "tars: " func "(): ", (w1), (w2))

/* Rounded size of a large or key block: its end is the trailing guard. */
static size_t
round16(size_t n)
{
	return (n + 15) & ~(size_t)15;
}

/* First byte of the data pages of a large/key block (size > 0). */
static volatile uint8_t *
first_page(void *p)
{
	uintptr_t ps = (uintptr_t)sysconf(_SC_PAGESIZE);
	return (volatile uint8_t *)((uintptr_t)p & ~(ps - 1));
}

static void
set_option(const char *name, long value)
{
	CHILD_CHECK(tars_option_set(name, value) == 0);
}

/* ---- double free ----------------------------------------------------- */

static BUG void
double_free_chunk(void *arg)
{
	(void)arg;
	void *p = tars_malloc(32);
	CHILD_CHECK(p != NULL);
	tars_free(p);
	tars_free(p);
}

Test(death, double_free_chunk_immediately)
{
	EXPECT_TARS_ABORT(double_free_chunk, "tars_free", "double free", NULL);
}

static BUG void
double_free_chunk_later(void *arg)
{
	(void)arg;
	void *p[16];
	for (int i = 0; i < 16; i++) {
		p[i] = tars_malloc(48);
		CHILD_CHECK(p[i] != NULL);
	}
	tars_free(p[5]);
	for (int i = 0; i < 16; i++) {
		if (i != 5 && i != 15) {
			tars_free(p[i]);
		}
	}
	void *q = tars_malloc(200);   /* other classes in between */
	tars_free(q);
	tars_free(p[5]);
}

Test(death, double_free_chunk_after_other_frees)
{
	EXPECT_TARS_ABORT(double_free_chunk_later, "tars_free", "double free", NULL);
}

/*
 * Two emptied chunk pages.  First fit: keep and p[0..62] fill page A,
 * p[63..126] page B, p[127..149] page C.  Freed from the end, C empties
 * first and becomes the heap's one kept empty page (spare=1), writable and
 * wiped; B then empties while C is still empty, so the older of the two, C,
 * goes to the PROT_NONE cache (or, with cache=0, back to the kernel) and
 * its record is forgotten.  stale_b points into C (released), stale_c into
 * B (kept).
 */
static volatile uint8_t *stale_b, *stale_c;

static void
empty_two_pages(long cache)
{
	set_option("random", 0);
	set_option("spare", 1);
	set_option("cache", cache);
	void *keep = tars_malloc(64);
	uint8_t *p[150];
	for (int i = 0; i < 150; i++) {
		p[i] = tars_malloc(64);
		CHILD_CHECK(p[i] != NULL);
		memset(p[i], 0x5a, 64);
	}
	stale_b = p[140];
	stale_c = p[70];
	for (int i = 150; i-- > 0;) {
		tars_free(p[i]);
	}
	(void)keep;
}

static BUG void
double_free_chunk_page_gone(void *arg)
{
	(void)arg;
	/* The second free of a pointer into B finds no owner at all. */
	empty_two_pages(64);
	tars_free((void *)stale_b);
}

Test(death, double_free_chunk_after_its_page_was_released)
{
	EXPECT_TARS_ABORT(double_free_chunk_page_gone, "tars_free", "bogus pointer",
	    "double free");
}

static BUG void
read_released_chunk_page(void *arg)
{
	empty_two_pages((long)(uintptr_t)arg);
	uint8_t v = stale_b[0];   /* faults */
	fprintf(stderr, "read %#x through a stale pointer\n", v);
	_exit(0);
}

/* A read through a pointer into B faults, cached or unmapped; one into C
 * reads free junk, never the old contents. */
Test(death, stale_pointer_into_a_cached_chunk_page_faults)
{
	expect_fault(read_released_chunk_page, (void *)(uintptr_t)64);
}

Test(death, stale_pointer_into_an_unmapped_chunk_page_faults)
{
	expect_fault(read_released_chunk_page, (void *)(uintptr_t)0);
}

static BUG void
read_kept_empty_page(void *arg)
{
	(void)arg;
	empty_two_pages(64);
	for (int i = 0; i < 64; i++) {
		CHILD_CHECK(stale_c[i] == 0xdf);   /* free junk, not 0x5a */
	}
	_exit(0);
}

Test(death, stale_pointer_into_a_kept_empty_page_reads_junk)
{
	expect_exit0(read_kept_empty_page, NULL);
}

static BUG void
double_free_large(void *arg)
{
	(void)arg;
	void *p = tars_malloc(100000);
	CHILD_CHECK(p != NULL);
	tars_free(p);
	tars_free(p);
}

Test(death, double_free_large)
{
	EXPECT_TARS_ABORT(double_free_large, "tars_free", "double free", "in quarantine");
}

static BUG void
double_free_raw_key(void *arg)
{
	(void)arg;
	void *p = tars_malloc_key(32);
	CHILD_CHECK(p != NULL);
	tars_free(p);
	tars_free(p);
}

Test(death, double_free_raw_key)
{
	EXPECT_TARS_ABORT(double_free_raw_key, "tars_free", "double free", "key block");
}

static BUG void
double_free_key(void *arg)
{
	(void)arg;
	tars_key *k = tars_key_new_random(32);
	CHILD_CHECK(k != NULL);
	tars_key_free(k);
	tars_key_free(k);
}

Test(death, double_free_key)
{
	EXPECT_TARS_ABORT(double_free_key, "tars_key_free", "bogus tars_key", "double free");
}

static void *
free_in_thread(void *p)
{
	tars_free(p);
	return NULL;
}

static BUG void
double_free_other_thread(void *arg)
{
	(void)arg;
	void *p = tars_malloc(32);
	CHILD_CHECK(p != NULL);
	tars_free(p);
	pthread_t t;
	CHILD_CHECK(pthread_create(&t, NULL, free_in_thread, p) == 0);
	pthread_join(t, NULL);
}

Test(death, double_free_from_another_thread)
{
	EXPECT_TARS_ABORT(double_free_other_thread, "tars_free", "double free", NULL);
}

static BUG void
double_free_large_other_thread(void *arg)
{
	(void)arg;
	void *p = tars_malloc(10000);
	CHILD_CHECK(p != NULL);
	pthread_t t;
	CHILD_CHECK(pthread_create(&t, NULL, free_in_thread, p) == 0);
	pthread_join(t, NULL);
	tars_free(p);
}

Test(death, double_free_large_freed_first_by_another_thread)
{
	EXPECT_TARS_ABORT(double_free_large_other_thread, "tars_free", "double free",
	    "in quarantine");
}

/* ---- invalid free ---------------------------------------------------- */

static BUG void
free_ptr(void *p)
{
	void *warm = tars_malloc(16);   /* the allocator is initialised */
	(void)warm;
	tars_free(p);
}

Test(death, free_of_one)
{
	expect_death(free_ptr, (void *)1, SIGABRT, "tars: tars_free(): ", "bogus pointer",
	    NULL);
}

Test(death, free_of_one_says_not_from_tars)
{
	/* A pointer into page 0 must be reported like any other stranger,
	 * not as the interior of a block that does not exist. */
	expect_death(free_ptr, (void *)1, SIGABRT, "tars: tars_free(): ", "bogus pointer",
	    "not from tars");
}

Test(death, free_of_a_wild_address)
{
	expect_death(free_ptr, (void *)(uintptr_t)0x5a5a5a5a5000, SIGABRT,
	    "tars: tars_free(): ", "bogus pointer", "not from tars");
}

static BUG void
free_chunk_plus(void *arg)
{
	size_t off = (size_t)(uintptr_t)arg;
	uint8_t *p = tars_malloc(100);
	CHILD_CHECK(p != NULL);
	tars_free(p + off);
}

Test(death, free_of_chunk_plus_1)
{
	expect_death(free_chunk_plus, (void *)1, SIGABRT, "tars: tars_free(): ",
	    "bogus pointer", "not the start");
}

Test(death, free_of_chunk_plus_16)
{
	expect_death(free_chunk_plus, (void *)16, SIGABRT, "tars: tars_free(): ",
	    "bogus pointer", "not the start");
}

static BUG void
free_large_interior(void *arg)
{
	size_t off = (size_t)(uintptr_t)arg;
	uint8_t *p = tars_malloc(20000);
	CHILD_CHECK(p != NULL);
	tars_free(p + off);
}

Test(death, free_of_large_plus_16)
{
	/* Same page as the block start: the region is found, the pointer
	 * is not its start. */
	expect_death(free_large_interior, (void *)16, SIGABRT, "tars: tars_free(): ",
	    "bogus pointer", "inside the large block");
}

Test(death, free_of_large_interior_page)
{
	expect_death(free_large_interior, (void *)10000, SIGABRT, "tars: tars_free(): ",
	    "bogus pointer", NULL);
}

static BUG void
free_stack(void *arg)
{
	(void)arg;
	char local[64];
	memset(local, 1, sizeof(local));
	void *warm = tars_malloc(16);
	(void)warm;
	tars_free(local);
}

Test(death, free_of_a_stack_pointer)
{
	EXPECT_TARS_ABORT(free_stack, "tars_free", "bogus pointer", "not from tars");
}

static BUG void
free_libc(void *arg)
{
	(void)arg;
	void *q = malloc(64);
	CHILD_CHECK(q != NULL);
	void *warm = tars_malloc(16);
	(void)warm;
	tars_free(q);
}

Test(death, free_of_a_glibc_malloc_pointer)
{
	EXPECT_TARS_ABORT(free_libc, "tars_free", "bogus pointer", "not from tars");
}

static BUG void
free_key_interior(void *arg)
{
	(void)arg;
	uint8_t *p = tars_malloc_key(64);
	CHILD_CHECK(p != NULL);
	tars_free(p + 8);
}

Test(death, free_of_key_plus_8)
{
	EXPECT_TARS_ABORT(free_key_interior, "tars_free", "bogus pointer", "inside the key");
}

/* ---- overflow -------------------------------------------------------- */

struct overflow {
	size_t size;   /* requested */
	size_t off;    /* first byte written, from the start */
	size_t count;  /* bytes written */
};

static BUG void
overflow_chunk(void *arg)
{
	const struct overflow *o = arg;
	volatile uint8_t *p = tars_malloc(o->size);
	CHILD_CHECK(p != NULL);
	CHILD_CHECK(tars_slot_size(o->size) >= o->off + o->count);
	for (size_t i = o->off; i < o->off + o->count; i++) {
		p[i] = (uint8_t)~p[i];   /* never the canary byte */
	}
	tars_free((void *)p);
}

Test(death, overflow_chunk_20_by_1)
{
	struct overflow o = {20, 20, 1};
	expect_death(overflow_chunk, &o, SIGABRT, "tars: tars_free(): ", "chunk canary corrupted",
	    "overflow");
}

Test(death, overflow_chunk_20_by_8)
{
	struct overflow o = {20, 20, 8};
	expect_death(overflow_chunk, &o, SIGABRT, "tars: tars_free(): ", "chunk canary corrupted",
	    "overflow");
}

Test(death, overflow_chunk_100_by_1)
{
	struct overflow o = {100, 100, 1};
	expect_death(overflow_chunk, &o, SIGABRT, "tars: tars_free(): ", "chunk canary corrupted",
	    "overflow");
}

Test(death, overflow_chunk_100_by_8)
{
	struct overflow o = {100, 100, 8};
	expect_death(overflow_chunk, &o, SIGABRT, "tars: tars_free(): ", "chunk canary corrupted",
	    "overflow");
}

Test(death, overflow_chunk_last_slack_byte)
{
	/* Only the last byte of the slot: every slack byte is checked. */
	struct overflow o = {100, 111, 1};
	expect_death(overflow_chunk, &o, SIGABRT, "tars: tars_free(): ", "chunk canary corrupted",
	    "byte 11 past the 100 requested");
}

static BUG void
overflow_freezero_chunk(void *arg)
{
	(void)arg;
	volatile uint8_t *p = tars_malloc(20);
	CHILD_CHECK(p != NULL);
	p[21] = (uint8_t)~p[21];
	tars_freezero((void *)p, 20);
}

Test(death, overflow_chunk_caught_by_freezero)
{
	EXPECT_TARS_ABORT(overflow_freezero_chunk, "tars_freezero", "chunk canary corrupted",
	    "byte 1 past");
}

static BUG void
overflow_buf(void *arg)
{
	(void)arg;
	tars_buf *b = tars_buf_new_random(20);
	CHILD_CHECK(b != NULL);
	volatile uint8_t *d = tars_buf_data(b);
	d[20] = (uint8_t)~d[20];
	tars_buf_free(b);
}

Test(death, overflow_buf_by_1)
{
	/* tars_buf_free frees the bytes with tars_freezero. */
	EXPECT_TARS_ABORT(overflow_buf, "tars_freezero", "chunk canary corrupted", "overflow");
}

static BUG void
strcpy_overflow(void *arg)
{
	const char *s = arg;
	size_t n = strlen(s);
	char *p = tars_malloc(n);   /* the classic: no room for the '\0' */
	CHILD_CHECK(p != NULL);
	CHILD_CHECK(tars_slot_size(n) > n);
	char *volatile dst = p;
	strcpy(dst, s);
	tars_free(p);
}

Test(death, strcpy_terminator_into_the_canary)
{
	/* 12 bytes in a 16-byte slot: the terminator lands on the first
	 * canary byte, which is never 0. */
	expect_death(strcpy_overflow, (void *)"hello, world", SIGABRT, "tars: tars_free(): ",
	    "chunk canary corrupted", "byte 0 past the 12 requested");
}

Test(death, strcpy_terminator_into_the_canary_100)
{
	static const char s[] = "0123456789012345678901234567890123456789012345678901234567"
	    "890123456789012345678901234567890123456789";   /* 100 chars */
	expect_death(strcpy_overflow, (void *)s, SIGABRT, "tars: tars_free(): ",
	    "chunk canary corrupted", "byte 0 past the 100 requested");
}

static BUG void
overflow_large_guard(void *arg)
{
	size_t size = (size_t)(uintptr_t)arg;
	volatile uint8_t *p = tars_malloc(size);
	CHILD_CHECK(p != NULL);
	for (size_t i = 0; i < 16; i++) {
		p[round16(size) + i] = 0x41;
	}
	_exit(3);   /* not reached: the first write hits the guard page */
}

Test(death, overflow_large_into_the_guard_page)
{
	expect_fault(overflow_large_guard, (void *)(uintptr_t)5000);
}

Test(death, overflow_large_page_multiple_into_the_guard_page)
{
	expect_fault(overflow_large_guard, (void *)(uintptr_t)8192);
}

static BUG void
overflow_large_padding(void *arg)
{
	(void)arg;
	volatile uint8_t *p = tars_malloc(5001);
	CHILD_CHECK(p != NULL);
	p[5001] = (uint8_t)~p[5001];   /* inside the 16-byte rounding */
	tars_free((void *)p);
}

Test(death, overflow_large_by_1_into_the_padding)
{
	EXPECT_TARS_ABORT(overflow_large_padding, "tars_free", "canary corrupted",
	    "0 bytes past the 5001");
}

static BUG void
overflow_key_guard(void *arg)
{
	size_t size = (size_t)(uintptr_t)arg;
	volatile uint8_t *p = tars_malloc_key(size);
	CHILD_CHECK(p != NULL);
	for (size_t i = 0; i < 16; i++) {
		p[round16(size) + i] = 0x41;
	}
	_exit(3);
}

Test(death, overflow_key_into_the_guard_page)
{
	expect_fault(overflow_key_guard, (void *)(uintptr_t)32);
}

Test(death, overflow_key_unaligned_into_the_guard_page)
{
	expect_fault(overflow_key_guard, (void *)(uintptr_t)33);
}

static BUG void
overflow_key_container(void *arg)
{
	(void)arg;
	tars_key *k = tars_key_new_random(32);
	CHILD_CHECK(k != NULL);
	volatile uint8_t *p = tars_key_write_begin(k);
	CHILD_CHECK(p != NULL);
	for (size_t i = 0; i < 16; i++) {
		p[32 + i] = 0x41;
	}
	_exit(3);
}

Test(death, overflow_key_container_into_the_guard_page)
{
	expect_fault(overflow_key_container, NULL);
}

/* ---- underflow ------------------------------------------------------- */

static BUG void
underflow_guard(void *arg)
{
	int key = arg != NULL;
	void *p = key ? tars_malloc_key(100) : tars_malloc(5000);
	CHILD_CHECK(p != NULL);
	volatile uint8_t *below = first_page(p) - 1;   /* leading guard page */
	*below = 0x41;
	_exit(3);
}

Test(death, underflow_large_into_the_guard_page)
{
	expect_fault(underflow_guard, NULL);
}

Test(death, underflow_key_into_the_guard_page)
{
	expect_fault(underflow_guard, (void *)1);
}

static BUG void
underflow_large_canary(void *arg)
{
	(void)arg;
	volatile uint8_t *p = tars_malloc(5000);
	CHILD_CHECK(p != NULL);
	p[-1] = (uint8_t)~p[-1];
	tars_free((void *)p);
}

Test(death, underflow_large_by_1_caught_by_the_canary)
{
	EXPECT_TARS_ABORT(underflow_large_canary, "tars_free", "canary corrupted",
	    "1 bytes before");
}

/* ---- use after free -------------------------------------------------- */

static BUG void
write_after_free_chunk(void *arg)
{
	long random = (long)(uintptr_t)arg;
	set_option("junk", 2);
	set_option("random", random);
	volatile uint8_t *p = tars_malloc(32);
	CHILD_CHECK(p != NULL);
	tars_free((void *)p);
	p[7] = 0x41;
	/* Never freed, so the written slot must come back before the page
	 * is full: with random=0 at once, else within 4096/32 calls. */
	for (int i = 0; i < 4096; i++) {
		CHILD_CHECK(tars_malloc(32) != NULL);
	}
	_exit(4);   /* not detected */
}

Test(death, write_after_free_chunk_deterministic_reuse)
{
	expect_death(write_after_free_chunk, (void *)0, SIGABRT, "tars: tars_malloc(): ",
	    "write after free", "byte 7 of the 32-byte slot");
}

Test(death, write_after_free_chunk_random_reuse)
{
	expect_death(write_after_free_chunk, (void *)1, SIGABRT, "tars: tars_malloc(): ",
	    "write after free", "byte 7");
}

static BUG void
write_after_free_calloc(void *arg)
{
	(void)arg;
	set_option("junk", 2);
	set_option("random", 0);
	volatile uint8_t *p = tars_malloc(100);
	CHILD_CHECK(p != NULL);
	tars_free((void *)p);
	p[99] = 0;
	CHILD_CHECK(tars_calloc(1, 100) != NULL);
	_exit(4);
}

Test(death, write_after_free_chunk_detected_by_calloc)
{
	expect_death(write_after_free_calloc, NULL, SIGABRT, "tars: tars_calloc(): ",
	    "write after free", "byte 99");
}

/* arg: 0 a large block under freed_none=1 (its kept pages PROT_NONE),
 * 1 a key (never kept: dropped, PROT_NONE), 2 a large block of over 16
 * pages (the region cache) under freed_none=1. */
static BUG void
write_after_free_large(void *arg)
{
	int how = (int)(uintptr_t)arg;
	if (how != 1) {
		set_option("freed_none", 1);
	}
	size_t size = how == 2 ? 100000 : 5000;
	volatile uint8_t *p = how == 1 ? tars_malloc_key(size) : tars_malloc(size);
	CHILD_CHECK(p != NULL);
	tars_free((void *)p);
	p[0] = 0x41;
	_exit(3);
}

Test(death, write_after_free_large)
{
	expect_fault(write_after_free_large, (void *)0);
	expect_fault(write_after_free_large, (void *)2);
}

Test(death, write_after_free_key)
{
	expect_fault(write_after_free_large, (void *)1);
}

/* The default (freed_none=0): a freed large block keeps its pages,
 * writable and wiped, for reuse without a system call; a stale pointer
 * reads zeros, never the old contents nor, within the quarantine window,
 * another live block. */
static BUG void
read_after_free_large_default(void *arg)
{
	size_t size = (size_t)(uintptr_t)arg;
	volatile uint8_t *p = tars_malloc(size);
	CHILD_CHECK(p != NULL);
	memset((void *)p, 0x5e, size);
	tars_free((void *)p);
	for (int i = 0; i < 8; i++) {
		unsigned char *q = tars_malloc(size);
		CHILD_CHECK(q != NULL);
		memset(q, 0x42, size);
	}
	for (size_t i = 0; i < size; i += 97) {
		CHILD_CHECK(p[i] == 0);
	}
	_exit(0);
}

Test(death, read_after_free_large_reads_zeros_by_default)
{
	expect_exit0(read_after_free_large_default, (void *)(uintptr_t)5000);
	expect_exit0(read_after_free_large_default, (void *)(uintptr_t)100000);
}

static BUG void
read_after_free_large(void *arg)
{
	(void)arg;
	set_option("freed_none", 1);
	volatile uint8_t *p = tars_malloc(50000);
	CHILD_CHECK(p != NULL);
	memset((void *)p, 0x5e, 50000);
	tars_free((void *)p);
	uint8_t c = p[100];
	_exit(c);
}

Test(death, read_after_free_large)
{
	expect_fault(read_after_free_large, NULL);
}

/* ---- size 0 ---------------------------------------------------------- */

static BUG void
zero_size_access(void *arg)
{
	int write = arg != NULL;
	volatile uint8_t *p = tars_malloc(0);
	CHILD_CHECK(p != NULL);
	if (write) {
		p[0] = 1;
	} else {
		uint8_t c = p[0];
		_exit(c);
	}
	_exit(3);
}

Test(death, zero_size_read)
{
	expect_fault(zero_size_access, NULL);
}

Test(death, zero_size_write)
{
	expect_fault(zero_size_access, (void *)1);
}

static BUG void
zero_size_key_access(void *arg)
{
	(void)arg;
	volatile uint8_t *p = tars_malloc_key(0);
	CHILD_CHECK(p != NULL);
	uint8_t c = p[0];
	_exit(c);
}

Test(death, zero_size_key_read)
{
	expect_fault(zero_size_key_access, NULL);
}

/* ---- wrong size, wrong pointer, wrong kind --------------------------- */

struct sized {
	int kind;       /* 0 chunk, 1 large, 2 key */
	size_t size, wrong;
};

static BUG void
freezero_wrong(void *arg)
{
	const struct sized *s = arg;
	void *p = s->kind == 2 ? tars_malloc_key(s->size) : tars_malloc(s->size);
	CHILD_CHECK(p != NULL);
	tars_freezero(p, s->wrong);
}

Test(death, freezero_chunk_wrong_size)
{
	struct sized s = {0, 20, 21};
	expect_death(freezero_wrong, &s, SIGABRT, "tars: tars_freezero(): ",
	    "size 21 does not match the allocated size 20", NULL);
}

Test(death, freezero_chunk_slot_size)
{
	/* The slot size is not the allocated size. */
	struct sized s = {0, 20, 32};
	expect_death(freezero_wrong, &s, SIGABRT, "tars: tars_freezero(): ",
	    "does not match the allocated size", NULL);
}

Test(death, freezero_large_wrong_size)
{
	struct sized s = {1, 5000, 4999};
	expect_death(freezero_wrong, &s, SIGABRT, "tars: tars_freezero(): ",
	    "size 4999 does not match the allocated size 5000", NULL);
}

Test(death, freezero_key_wrong_size)
{
	struct sized s = {2, 32, 0};
	expect_death(freezero_wrong, &s, SIGABRT, "tars: tars_freezero(): ",
	    "size 0 does not match the allocated size 32", NULL);
}

static BUG void
realloc_bogus(void *arg)
{
	void *warm = tars_malloc(16);
	(void)warm;
	void *q = tars_realloc(arg, 100);
	(void)q;
	_exit(3);
}

Test(death, realloc_of_a_wild_pointer)
{
	expect_death(realloc_bogus, (void *)(uintptr_t)0x5a5a5a5a5000, SIGABRT,
	    "tars: tars_realloc(): ", "bogus pointer", NULL);
}

static BUG void
realloc_freed(void *arg)
{
	size_t size = (size_t)(uintptr_t)arg;
	void *p = tars_malloc(size);
	CHILD_CHECK(p != NULL);
	tars_free(p);
	void *q = tars_realloc(p, 10);
	(void)q;
	_exit(3);
}

Test(death, realloc_of_a_freed_chunk)
{
	expect_death(realloc_freed, (void *)(uintptr_t)40, SIGABRT, "tars: tars_realloc(): ",
	    "double free", NULL);
}

Test(death, realloc_of_a_freed_large_block)
{
	expect_death(realloc_freed, (void *)(uintptr_t)40000, SIGABRT,
	    "tars: tars_realloc(): ", "use after free", "in quarantine");
}

static BUG void
realloc_interior(void *arg)
{
	(void)arg;
	uint8_t *p = tars_malloc(100);
	CHILD_CHECK(p != NULL);
	void *q = tars_realloc(p + 1, 10);
	(void)q;
	_exit(3);
}

Test(death, realloc_of_a_chunk_interior_pointer)
{
	EXPECT_TARS_ABORT(realloc_interior, "tars_realloc", "bogus pointer", "not the start");
}

static BUG void
usable_size_freed(void *arg)
{
	(void)arg;
	void *p = tars_malloc(40000);
	CHILD_CHECK(p != NULL);
	tars_free(p);
	size_t n = tars_usable_size(p);
	_exit((int)(n & 1) + 3);
}

Test(death, usable_size_of_a_freed_block)
{
	EXPECT_TARS_ABORT(usable_size_freed, "tars_usable_size", "use after free", NULL);
}

struct protect {
	int (*fn)(void *);
	int large;
};

static BUG void
protect_non_key(void *arg)
{
	const struct protect *pr = arg;
	void *p = tars_malloc(pr->large ? 10000 : 64);
	CHILD_CHECK(p != NULL);
	int rc = pr->fn(p);
	_exit(rc == 0 ? 3 : 4);
}

Test(death, protect_none_on_a_chunk)
{
	struct protect pr = {tars_protect_none, 0};
	expect_death(protect_non_key, &pr, SIGABRT, "tars: tars_protect_none(): ",
	    "not a key allocation", NULL);
}

Test(death, protect_read_on_a_chunk)
{
	struct protect pr = {tars_protect_read, 0};
	expect_death(protect_non_key, &pr, SIGABRT, "tars: tars_protect_read(): ",
	    "not a key allocation", NULL);
}

Test(death, protect_write_on_a_chunk)
{
	struct protect pr = {tars_protect_write, 0};
	expect_death(protect_non_key, &pr, SIGABRT, "tars: tars_protect_write(): ",
	    "not a key allocation", NULL);
}

Test(death, protect_none_on_a_large_block)
{
	struct protect pr = {tars_protect_none, 1};
	expect_death(protect_non_key, &pr, SIGABRT, "tars: tars_protect_none(): ",
	    "not a key allocation", NULL);
}

static BUG void
protect_bogus(void *arg)
{
	(void)arg;
	char local[32];
	void *warm = tars_malloc(16);
	(void)warm;
	int rc = tars_protect_none(local);
	_exit(rc == 0 ? 3 : 4);
}

Test(death, protect_on_a_stack_pointer)
{
	EXPECT_TARS_ABORT(protect_bogus, "tars_protect_none", "bogus pointer", NULL);
}

static BUG void
realloc_key_on_chunk(void *arg)
{
	(void)arg;
	void *p = tars_malloc(64);
	CHILD_CHECK(p != NULL);
	void *q = tars_realloc_key(p, 128);
	(void)q;
	_exit(3);
}

Test(death, realloc_key_of_a_chunk)
{
	EXPECT_TARS_ABORT(realloc_key_on_chunk, "tars_realloc_key", "not a key allocation",
	    NULL);
}

/* ---- key scopes ------------------------------------------------------ */

static BUG void
raw_key_access(void *arg)
{
	int mode = (int)(uintptr_t)arg;   /* 0: read when none, 1: write when read */
	volatile uint8_t *p = tars_malloc_key(64);
	CHILD_CHECK(p != NULL);
	p[0] = 7;
	if (mode == 0) {
		CHILD_CHECK(tars_protect_none((void *)p) == 0);
		uint8_t c = p[0];
		_exit(c);
	}
	CHILD_CHECK(tars_protect_read((void *)p) == 0);
	CHILD_CHECK(p[0] == 7);
	p[0] = 8;
	_exit(3);
}

Test(death, raw_key_read_when_protected_none)
{
	expect_fault(raw_key_access, (void *)0);
}

Test(death, raw_key_write_when_protected_read)
{
	expect_fault(raw_key_access, (void *)1);
}

static BUG void
key_read_outside_scope(void *arg)
{
	int mode = (int)(uintptr_t)arg;
	tars_key *k = tars_key_new_random(32);
	CHILD_CHECK(k != NULL);
	if (mode == 0) {
		const volatile uint8_t *d = tars_key_read_begin(k);
		CHILD_CHECK(d != NULL);
		uint8_t c = d[0];
		(void)c;
		tars_key_read_end(k);
		c = d[0];
		_exit(c);
	}
	volatile uint8_t *d = tars_key_write_begin(k);
	CHILD_CHECK(d != NULL);
	d[0] = 1;
	tars_key_write_end(k);
	uint8_t c = d[0];
	_exit(c);
}

Test(death, key_read_after_the_read_scope)
{
	expect_fault(key_read_outside_scope, (void *)0);
}

Test(death, key_read_after_the_write_scope)
{
	expect_fault(key_read_outside_scope, (void *)1);
}

static BUG void
key_write_in_read_scope(void *arg)
{
	(void)arg;
	tars_key *k = tars_key_new_random(32);
	CHILD_CHECK(k != NULL);
	volatile uint8_t *d = (volatile uint8_t *)(uintptr_t)tars_key_read_begin(k);
	CHILD_CHECK(d != NULL);
	d[0] = (uint8_t)~d[0];
	_exit(3);
}

Test(death, key_write_inside_a_read_scope)
{
	expect_fault(key_write_in_read_scope, NULL);
}

static BUG void
key_free_in_scope(void *arg)
{
	int write = arg != NULL;
	tars_key *k = tars_key_new_random(32);
	CHILD_CHECK(k != NULL);
	if (write) {
		CHILD_CHECK(tars_key_write_begin(k) != NULL);
	} else {
		CHILD_CHECK(tars_key_read_begin(k) != NULL);
	}
	tars_key_free(k);
	_exit(3);
}

Test(death, key_free_with_a_read_scope_open)
{
	expect_death(key_free_in_scope, NULL, SIGABRT, "tars: tars_key_free(): ",
	    "read scope open", NULL);
}

Test(death, key_free_with_the_write_scope_open)
{
	expect_death(key_free_in_scope, (void *)1, SIGABRT, "tars: tars_key_free(): ",
	    "write scope open", NULL);
}

static BUG void
key_end_unopened(void *arg)
{
	int write = arg != NULL;
	tars_key *k = tars_key_new_random(32);
	CHILD_CHECK(k != NULL);
	if (write) {
		tars_key_write_end(k);
	} else {
		tars_key_read_end(k);
	}
	_exit(3);
}

Test(death, key_read_end_without_a_scope)
{
	expect_death(key_end_unopened, NULL, SIGABRT, "tars: tars_key_read_end(): ",
	    "no read scope open", NULL);
}

Test(death, key_write_end_without_a_scope)
{
	expect_death(key_end_unopened, (void *)1, SIGABRT, "tars: tars_key_write_end(): ",
	    "no write scope open", NULL);
}

/* ---- frees from another thread (remote.c) --------------------------- */

static void *
free_twice_in_thread(void *p)
{
	tars_free(p);
	tars_free(p);
	return NULL;
}

/* Runs fn(p) on another thread (which owns no block of p), to its end. */
static void
on_another_thread(void *(*fn)(void *), void *p)
{
	pthread_t t;
	CHILD_CHECK(pthread_create(&t, NULL, fn, p) == 0);
	CHILD_CHECK(pthread_join(t, NULL) == 0);
}

static BUG void
remote_double_free(void *arg)
{
	(void)arg;
	void *p = tars_malloc(64);
	CHILD_CHECK(p != NULL);
	/* The second free waits for no owner. */
	on_another_thread(free_twice_in_thread, p);
	_exit(3);
}

Test(death, remote_double_free_same_thread)
{
	EXPECT_TARS_ABORT(remote_double_free, "tars_free", "double free",
	    "already freed by another thread");
}

static BUG void
remote_then_owner_free(void *arg)
{
	(void)arg;
	void *p = tars_malloc(64);
	CHILD_CHECK(p != NULL);
	on_another_thread(free_in_thread, p);   /* waits, wiped, for this heap */
	tars_free(p);
	_exit(3);
}

Test(death, remote_free_then_owner_free)
{
	EXPECT_TARS_ABORT(remote_then_owner_free, "tars_free", "double free",
	    "already freed by another thread");
}

static BUG void
owner_then_remote_free(void *arg)
{
	(void)arg;
	void *keep = tars_malloc(64);   /* the page stays */
	void *p = tars_malloc(64);
	CHILD_CHECK(p != NULL && keep != NULL);
	tars_free(p);
	on_another_thread(free_in_thread, p);
	_exit(3);
}

Test(death, owner_free_then_remote_free)
{
	EXPECT_TARS_ABORT(owner_then_remote_free, "tars_free", "double free",
	    "chunk slot is already free");
}

static BUG void
remote_bogus_pointer(void *arg)
{
	(void)arg;
	uint8_t *p = tars_malloc(64);
	CHILD_CHECK(p != NULL);
	on_another_thread(free_in_thread, p + 16);
	_exit(3);
}

Test(death, remote_free_of_an_interior_pointer)
{
	EXPECT_TARS_ABORT(remote_bogus_pointer, "tars_free", "bogus pointer",
	    "not the start of a 64-byte slot");
}

static BUG void
remote_canary(void *arg)
{
	(void)arg;
	volatile uint8_t *p = tars_malloc(40);   /* slot 48: 8 bytes of canary */
	CHILD_CHECK(p != NULL);
	p[41] = 0;
	on_another_thread(free_in_thread, (void *)p);
	_exit(3);
}

Test(death, remote_free_with_a_corrupted_canary)
{
	EXPECT_TARS_ABORT(remote_canary, "tars_free", "chunk canary corrupted",
	    "byte 1 past the 40 requested");
}

/* Two threads free the same block at the same moment (spin barrier): the
 * second to set the slot's bit in the xfree bitmap sees it set, or, if the
 * first was quicker, finds the slot already waiting. */
struct race {
	void *p;
	atomic_int go;
};

static void *
race_free(void *arg)
{
	struct race *r = arg;
	atomic_fetch_add(&r->go, 1);
	while (atomic_load(&r->go) < 2) {
	}
	tars_free(r->p);
	return NULL;
}

static BUG void
remote_double_free_race(void *arg)
{
	(void)arg;
	for (int i = 0; i < 1000; i++) {
		struct race r = {tars_malloc(64), 0};
		CHILD_CHECK(r.p != NULL);
		pthread_t a, b;
		CHILD_CHECK(pthread_create(&a, NULL, race_free, &r) == 0);
		CHILD_CHECK(pthread_create(&b, NULL, race_free, &r) == 0);
		pthread_join(a, NULL);
		pthread_join(b, NULL);
	}
	_exit(3);
}

Test(death, double_free_racing_on_two_threads)
{
	EXPECT_TARS_ABORT(remote_double_free_race, "tars_free", "double free", NULL);
}

/* The owner and another thread free the same block at the same moment:
 * caught by whichever looks second, or, if neither saw the other, when
 * the slot is handed out again or collected - never handed out twice. */

static BUG void
owner_remote_double_free_race(void *arg)
{
	(void)arg;
	set_option("random", 0);   /* the freed slot is handed out next */
	for (int i = 0; i < 1000; i++) {
		struct race r = {tars_malloc(64), 0};
		CHILD_CHECK(r.p != NULL);
		pthread_t b;
		CHILD_CHECK(pthread_create(&b, NULL, race_free, &r) == 0);
		(void)race_free(&r);   /* the owner's side */
		pthread_join(b, NULL);
		/* Hand the slot out again (first fit), and collect. */
		for (int k = 0; k < 200; k++) {
			CHILD_CHECK(tars_malloc(64) != NULL);
		}
	}
	_exit(3);
}

Test(death, double_free_racing_owner_and_another_thread)
{
	/* tars_free() or tars_malloc(), whichever finds it. */
	expect_death(owner_remote_double_free_race, NULL, SIGABRT, "tars: tars_",
	    "double free", NULL);
}

/* ---- heap metadata --------------------------------------------------- */

static BUG void
heap_canary_malloc(void *arg)
{
	(void)arg;
	void *p = tars_malloc(16);   /* this thread's heap: heap 0 */
	CHILD_CHECK(p != NULL);
	volatile uint64_t *c = tars_test_heap_canary();
	*c ^= 1;
	void *q = tars_malloc(16);
	(void)q;
	_exit(3);
}

Test(death, heap_canary_corrupted_then_malloc)
{
	EXPECT_TARS_ABORT(heap_canary_malloc, "tars_malloc", "heap canary corrupted", "heap 0");
}

static BUG void
heap_canary_free(void *arg)
{
	(void)arg;
	void *p = tars_malloc(16);
	CHILD_CHECK(p != NULL);
	volatile uint64_t *c = tars_test_heap_canary();
	*c = 0;
	tars_free(p);
	_exit(3);
}

Test(death, heap_canary_corrupted_then_free)
{
	EXPECT_TARS_ABORT(heap_canary_free, "tars_free", "heap canary corrupted", NULL);
}

static BUG void
heap_canary_other_thread(void *arg)
{
	(void)arg;
	void *p = tars_malloc(16);   /* heap 0 */
	CHILD_CHECK(p != NULL);
	volatile uint64_t *c = tars_test_heap_canary();
	*c += 1;
	pthread_t t;   /* heap 1, hands p to heap 0: checks heap 0 first */
	CHILD_CHECK(pthread_create(&t, NULL, free_in_thread, p) == 0);
	pthread_join(t, NULL);
	_exit(3);
}

Test(death, heap_canary_corrupted_seen_from_another_thread)
{
	EXPECT_TARS_ABORT(heap_canary_other_thread, "tars_free", "heap canary corrupted",
	    "heap 0");
}

/* ==== must succeed ===================================================== */

/* A size the compiler cannot see (it warns about impossible constants). */
static size_t
opaque(size_t v)
{
	volatile size_t x = v;
	return x;
}

static int
all(const volatile uint8_t *p, size_t n, uint8_t c)
{
	for (size_t i = 0; i < n; i++) {
		if (p[i] != c) {
			return 0;
		}
	}
	return 1;
}

Test(edge, calloc_overflow_is_enomem)
{
	errno = 0;
	cr_assert_null(tars_calloc(opaque(SIZE_MAX / 2 + 1), 2));
	cr_assert_eq(errno, ENOMEM);
	errno = 0;
	cr_assert_null(tars_calloc(opaque((size_t)1 << 33), opaque((size_t)1 << 33)));
	cr_assert_eq(errno, ENOMEM);
	errno = 0;
	cr_assert_null(tars_calloc(opaque(SIZE_MAX), opaque(SIZE_MAX)));
	cr_assert_eq(errno, ENOMEM);
}

Test(edge, impossible_sizes_are_enomem)
{
	const size_t sizes[] = {SIZE_MAX, SIZE_MAX - 4096, SIZE_MAX / 2, (size_t)1 << 48,
	    ((size_t)1 << 47) + 1};
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		errno = 0;
		cr_assert_null(tars_malloc(sizes[i]), "malloc(%zu)", sizes[i]);
		cr_assert_eq(errno, ENOMEM, "malloc(%zu): errno %d", sizes[i], errno);
		errno = 0;
		cr_assert_null(tars_malloc_key(sizes[i]), "malloc_key(%zu)", sizes[i]);
		cr_assert_eq(errno, ENOMEM);
		errno = 0;
		cr_assert_null(tars_aligned_alloc(4096, sizes[i]));
		cr_assert_eq(errno, ENOMEM);
		errno = 0;
		cr_assert_null(tars_calloc(1, sizes[i]));
		cr_assert_eq(errno, ENOMEM);
	}
}

Test(edge, realloc_to_an_impossible_size_keeps_the_block)
{
	uint8_t *p = tars_malloc(100);
	cr_assert_not_null(p);
	memset(p, 0x33, 100);
	errno = 0;
	cr_assert_null(tars_realloc(p, opaque(SIZE_MAX)));
	cr_assert_eq(errno, ENOMEM);
	cr_assert(all(p, 100, 0x33));
	uint8_t *k = tars_malloc_key(64);
	cr_assert_not_null(k);
	memset(k, 0x44, 64);
	errno = 0;
	cr_assert_null(tars_realloc_key(k, opaque(SIZE_MAX)));
	cr_assert_eq(errno, ENOMEM);
	cr_assert(all(k, 64, 0x44));
	tars_freezero(p, 100);
	tars_freezero(k, 64);
}

static void
errno_kept(void *arg)
{
	(void)arg;
	/* The very first call initialises everything (getrandom, mmap,
	 * mprotect, madvise, mlock): none of that may leak into errno. */
	errno = EDOM;
	void *p = tars_malloc(32);
	CHILD_CHECK(p != NULL && errno == EDOM);
	void *l = tars_malloc(100000);
	CHILD_CHECK(l != NULL && errno == EDOM);
	void *k = tars_malloc_key(10);
	CHILD_CHECK(k != NULL && errno == EDOM);
	void *z = tars_calloc(3, 7);
	CHILD_CHECK(z != NULL && errno == EDOM);
	void *a = tars_aligned_alloc(256, 300);
	CHILD_CHECK(a != NULL && errno == EDOM && ((uintptr_t)a & 255) == 0);
	p = tars_realloc(p, 3000);
	CHILD_CHECK(p != NULL && errno == EDOM);
	k = tars_realloc_key(k, 5000);
	CHILD_CHECK(k != NULL && errno == EDOM);
	CHILD_CHECK(tars_protect_none(k) == 0 && errno == EDOM);
	CHILD_CHECK(tars_protect_write(k) == 0 && errno == EDOM);
	tars_free(p);
	tars_free(l);
	tars_free(k);
	tars_free(z);
	tars_free(a);
	CHILD_CHECK(errno == EDOM);
	/* Many pages: new runs, the region table grows, pages are cached. */
	void *many[3000];
	for (int i = 0; i < 3000; i++) {
		many[i] = tars_malloc((size_t)(i % 300) * 7);
		CHILD_CHECK(many[i] != NULL && errno == EDOM);
	}
	for (int i = 0; i < 3000; i++) {
		tars_free(many[i]);
	}
	CHILD_CHECK(errno == EDOM);
	tars_key *key = tars_key_new_random(16);
	CHILD_CHECK(key != NULL && errno == EDOM);
	CHILD_CHECK(tars_key_read_begin(key) != NULL && errno == EDOM);
	tars_key_read_end(key);
	tars_key_free(key);
	CHILD_CHECK(errno == EDOM);
}

Test(edge, errno_is_unchanged_on_success)
{
	expect_exit0(errno_kept, NULL);
}

Test(edge, malloc_zero_pointers_differ)
{
	void *p[64];
	for (int i = 0; i < 64; i++) {
		p[i] = tars_malloc(0);
		cr_assert_not_null(p[i]);
		cr_assert_eq(tars_usable_size(p[i]), 0);
		for (int j = 0; j < i; j++) {
			cr_assert_neq(p[i], p[j]);
		}
	}
	void *c = tars_calloc(0, 5);
	cr_assert_not_null(c);
	void *k = tars_malloc_key(0);
	cr_assert_not_null(k);
	cr_assert_neq(c, k);
	for (int i = 0; i < 64; i++) {
		cr_assert_neq(p[i], c);
		cr_assert_neq(p[i], k);
		tars_freezero(p[i], 0);
	}
	tars_free(c);
	tars_free(k);
}

Test(edge, free_null_is_a_no_op)
{
	tars_free(NULL);
	tars_freezero(NULL, 123);
	cr_assert_eq(tars_usable_size(NULL), 0);
}

struct freed_fill {
	long junk;
	uint8_t expect;
};

static BUG void
freed_chunk_holds(void *arg)
{
	const struct freed_fill *f = arg;
	set_option("junk", f->junk);
	/* Several sizes; a neighbour keeps each page in use and mapped. */
	const size_t sizes[] = {16, 48, 100, 2048};
	for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
		size_t n = sizes[k];
		volatile uint8_t *keep = tars_malloc(n);
		volatile uint8_t *p = tars_malloc(n);
		CHILD_CHECK(keep != NULL && p != NULL);
		for (size_t i = 0; i < n; i++) {
			p[i] = (uint8_t)(0x80 + i);
		}
		tars_free((void *)p);
		for (size_t i = 0; i < n; i++) {
			if (p[i] != f->expect) {
				fprintf(stderr, "size %zu: freed byte %zu is %#x, want %#x\n", n, i,
				    p[i], f->expect);
				_exit(1);
			}
		}
		tars_free((void *)keep);
	}
}

Test(edge, read_after_free_chunk_sees_junk_never_the_secret)
{
	struct freed_fill f = {1, 0xdf};
	expect_exit0(freed_chunk_holds, &f);
}

Test(edge, read_after_free_chunk_sees_zero_with_junk_0)
{
	struct freed_fill f = {0, 0x00};
	expect_exit0(freed_chunk_holds, &f);
}

Test(edge, read_after_free_chunk_sees_junk_with_junk_2)
{
	struct freed_fill f = {2, 0xdf};
	expect_exit0(freed_chunk_holds, &f);
}

Test(edge, large_blocks_end_at_the_guard_page)
{
	/* The contract the guard-page death tests rely on. */
	long ps = sysconf(_SC_PAGESIZE);
	const size_t sizes[] = {2049, 4096, 5000, 5001, 65536, 100003};
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		uint8_t *p = tars_malloc(sizes[i]);
		cr_assert_not_null(p);
		cr_assert_eq(((uintptr_t)p + round16(sizes[i])) % (uintptr_t)ps, 0,
		    "size %zu: %p", sizes[i], (void *)p);
		uint8_t *k = tars_malloc_key(sizes[i]);
		cr_assert_not_null(k);
		cr_assert_eq(((uintptr_t)k + round16(sizes[i])) % (uintptr_t)ps, 0);
		tars_free(p);
		tars_free(k);
	}
}
