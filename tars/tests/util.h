/*
 * Test helpers shared by every tars test file.
 *
 * Death tests: tars_run_child() forks, runs fn(arg) in the child with stderr
 * captured (and core dumps off), and reports how the child ended.
 * EXPECT_DEATH() asserts the signal AND that stderr holds the expected
 * "tars: " message; EXPECT_FAULT() asserts a SIGSEGV (guard page hit).
 *
 * Bug bodies must survive the optimizer: write through volatile pointers.
 */
#ifndef TARS_TEST_UTIL_H
#define TARS_TEST_UTIL_H

#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/types.h>
#include <unistd.h>
#include <criterion/criterion.h>

#include "tars.h"

/* In a child: report a failed check on stderr and exit 1. */
#define CHILD_CHECK(cond) do {                                               \
	if (!(cond)) {                                                       \
		fprintf(stderr, "%s:%d: check failed: %s (errno %d)\n",      \
		    __FILE__, __LINE__, #cond, errno);                       \
		_exit(1);                                                    \
	}                                                                    \
} while (0)

struct child_result {
	int signaled;     /* 1 if killed by a signal */
	int sig;          /* that signal */
	int exit_code;    /* exit code otherwise */
	char err[8192];   /* captured stderr, NUL-terminated */
};

void tars_run_child(void (*fn)(void *), void *arg, struct child_result *out);

/* The child must die by `sig` and its stderr must contain `msg`. */
#define EXPECT_DEATH(fn, arg, sig_, msg) do {                                \
	struct child_result r_;                                              \
	tars_run_child((fn), (arg), &r_);                                    \
	cr_assert(r_.signaled, "expected signal %d (%s), child exited %d; " \
	    "stderr: %s", (sig_), strsignal(sig_), r_.exit_code, r_.err);    \
	cr_assert_eq(r_.sig, (sig_), "expected signal %d (%s), got %d (%s);" \
	    " stderr: %s", (sig_), strsignal(sig_), r_.sig,                  \
	    strsignal(r_.sig), r_.err);                                      \
	cr_assert(strstr(r_.err, (msg)) != NULL,                             \
	    "stderr lacks \"%s\": \"%s\"", (msg), r_.err);                   \
} while (0)

/* tars misuse: SIGABRT with a message that starts with "tars: ". */
#define EXPECT_ABORT(fn, arg, msg) do {                                      \
	EXPECT_DEATH(fn, arg, SIGABRT, msg);                                 \
} while (0)

/* Guard page or PROT_NONE hit: SIGSEGV. */
#define EXPECT_FAULT(fn, arg) do {                                           \
	struct child_result r_;                                              \
	tars_run_child((fn), (arg), &r_);                                    \
	cr_assert(r_.signaled && r_.sig == SIGSEGV,                          \
	    "expected SIGSEGV, got %s %d; stderr: %s",                       \
	    r_.signaled ? "signal" : "exit",                                 \
	    r_.signaled ? r_.sig : r_.exit_code, r_.err);                    \
} while (0)

/* The child must exit 0 (for checks that need a fresh process). */
#define EXPECT_EXIT0(fn, arg) do {                                           \
	struct child_result r_;                                              \
	tars_run_child((fn), (arg), &r_);                                    \
	cr_assert(!r_.signaled && r_.exit_code == 0,                         \
	    "child %s %d; stderr: %s", r_.signaled ? "signal" : "exit",      \
	    r_.signaled ? r_.sig : r_.exit_code, r_.err);                    \
} while (0)

/* Read one VmFlags line of /proc/self/smaps for the mapping holding addr;
 * returns 0 and fills flags (space separated two-letter flags) or -1. */
int tars_smaps_flags(const void *addr, char *flags, size_t len);

/* 1 if the two-letter flag (e.g. "dd") is among the VmFlags of addr. */
int tars_has_vmflag(const void *addr, const char *flag);

/* Suite .init: every test starts from the documented defaults, whatever
 * TARS_OPTIONS the suite was started with (a test may set its own before its
 * first call). */
void no_env(void);

/* The statistics now (tars_stats_get). */
struct tars_stats snap(void);

/* The system page size. */
size_t page_size(void);

/* A value the compiler cannot see through (deliberate misuse, such as an
 * impossible request, must not be diagnosed at compile time or optimized
 * away). */
size_t hide(size_t n);

/* A pointer the compiler cannot reason about (deliberate out-of-request
 * accesses must not be diagnosed or optimized away). */
volatile unsigned char *launder(void *p);

/* 1 if all len bytes at p equal c (also for len 0), else 0. */
int all_bytes(const void *p, size_t len, unsigned char c);

/* Non-overlapping occurrences of needle in hay. */
size_t count_substr(const char *hay, const char *needle);

/* Fill len bytes at p with a pattern that differs per seed and per byte
 * (and per 256-byte run); check_seeded() is 1 if it is still there. */
void fill_seeded(void *p, size_t len, unsigned seed);
int check_seeded(const void *p, size_t len, unsigned seed);

/* Read len bytes at addr through /proc/self/mem, which ignores page
 * protection: the bytes count read, or -1 with errno (e.g. EIO: not mapped
 * or not readable). */
ssize_t peek(const volatile void *addr, void *out, size_t len);

/*
 * In a child only (irreversible): make system call nr fail with err; if
 * arg >= 0, only when the low 32 bits of that argument equal val (arg < 0:
 * always).  The allocator must be initialised before, since it seeds from
 * getrandom.  Exits the child (CHILD_CHECK) if the filter cannot be set.
 */
void deny_syscall(long nr, int arg, unsigned int val, int err);

/*
 * In a child only: use up the process's VMAs (vm.max_map_count) until
 * `left` remain, by splitting a PROT_NONE reservation of its own page by
 * page; vma_release() merges n of those splits back (2 VMAs each).  The
 * filler starts zeroed; a second vma_fill on it splits on from where the
 * first stopped.
 */
struct vma_filler {
	unsigned char *base;
	size_t pages;       /* of the reservation */
	size_t split;       /* READ pages made so far (odd indices) */
};
void vma_fill(struct vma_filler *f, size_t left);
void vma_release(struct vma_filler *f, size_t n);
/* Permissions ("r--p", ...) of the mapping holding addr, from
 * /proc/self/maps: 0, or -1 if no mapping holds it. */
int perms_of(const volatile void *addr, char perms[5]);
/* Lines of /proc/self/maps. */
size_t count_vmas(void);

/*
 * Keys.  pattern: 32 bytes a test key holds; pattern_key() makes a key
 * holding them, through a buffer as a user would (NULL on failure);
 * key_address() finds a key's bytes through a read scope it closes again
 * (NULL if the scope does not open); peeks_pattern() is 1 if
 * /proc/self/mem reads pattern at addr (as much of it as it can read), 0
 * if it reads other bytes or nothing.
 */
extern const unsigned char pattern[32];
tars_key *pattern_key(void);
const volatile unsigned char *key_address(tars_key *k);
int peeks_pattern(const volatile void *addr);

#endif
