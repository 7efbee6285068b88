/*
 * Protections tried where they meet: after the freed address was handed
 * out again, across threads, and with fork() racing other threads, for the
 * per-slot canary and the optional delayed-free queue (delay=1).
 *
 * The delayed-free queue belongs to the heap that freed the block; a block
 * waiting there stays allocated in its page's bitmap.  Before the slot
 * carried REQ_DELAYED, only the owner searched its queue: a second free of
 * the block from another thread passed, the slot was handed out again
 * while still queued, and the queue later freed the new, live block.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#include "tars.h"
#include "util.h"

#define BUG __attribute__((noinline, optimize(0)))

/* SIGABRT, and one stderr line starting with `prefix` that holds `word`. */
static void
expect_abort(void (*fn)(void *), void *arg, const char *prefix, const char *word)
{
	struct child_result r;
	tars_run_child(fn, arg, &r);
	cr_assert(r.signaled && r.sig == SIGABRT, "expected SIGABRT, got %s %d; stderr: %s",
	    r.signaled ? "signal" : "exit", r.signaled ? r.sig : r.exit_code, r.err);
	const char *line = strstr(r.err, prefix);
	cr_assert(line != NULL && (line == r.err || line[-1] == '\n'),
	    "no line starts with \"%s\": %s", prefix, r.err);
	const char *end = strchr(line, '\n');
	size_t len = end != NULL ? (size_t)(end - line) : strlen(line);
	cr_assert(memmem(line, len, word, strlen(word)) != NULL,
	    "\"%.*s\" lacks \"%s\"", (int)len, line, word);
}

/* Runs fn(arg) on a second thread and waits for it. */
static void
on_another_thread(void *(*fn)(void *), void *arg)
{
	pthread_t t;
	CHILD_CHECK(pthread_create(&t, NULL, fn, arg) == 0);
	CHILD_CHECK(pthread_join(t, NULL) == 0);
}

static void *
free_it(void *p)
{
	tars_free(p);
	return NULL;
}

static void *
usable_size_of(void *p)
{
	size_t n = tars_usable_size(p);
	fprintf(stderr, "usable size %zu\n", n);   /* not reached: it aborts */
	return NULL;
}

/* Allocates `size` until the slot at `old` comes back (random placement:
 * any of the page's free slots); the others stay allocated. */
static uint8_t *
reallocate_at(void *old, size_t size)
{
	for (int i = 0; i < 100000; i++) {
		uint8_t *q = tars_malloc(size);
		CHILD_CHECK(q != NULL);
		if (q == old) {
			return q;
		}
	}
	CHILD_CHECK(!"the freed slot never came back");
	return NULL;
}

/* ---- the canary of a slot handed out again ---------------------------- */

static BUG void
overflow_after_reuse(void *arg)
{
	int remote = arg != NULL;
	uint8_t *p = tars_malloc(20);
	CHILD_CHECK(p != NULL);
	tars_free(p);
	volatile uint8_t *q = reallocate_at(p, 20);
	q[20] = (uint8_t)~q[20];   /* one byte past the request: the canary */
	if (remote) {
		on_another_thread(free_it, (void *)q);
	} else {
		tars_free((void *)q);
	}
	_exit(0);
}

Test(reuse, the_canary_of_a_reused_slot_catches_an_overflow)
{
	expect_abort(overflow_after_reuse, NULL, "tars: tars_free(): ", "chunk canary corrupted");
}

Test(reuse, the_canary_of_a_reused_slot_catches_an_overflow_freed_by_another_thread)
{
	expect_abort(overflow_after_reuse, (void *)1, "tars: tars_free(): ",
	    "chunk canary corrupted");
}

/* ---- the delayed-free queue and other threads ------------------------- */

static BUG void
delayed_then_freed_remotely(void *arg)
{
	(void)arg;
	CHILD_CHECK(tars_option_set("delay", 1) == 0);
	void *p = tars_malloc(64);
	CHILD_CHECK(p != NULL);
	tars_free(p);                      /* waits in this thread's queue */
	on_another_thread(free_it, p);     /* the second free */
	_exit(0);
}

Test(reuse, a_second_free_from_another_thread_of_a_delayed_chunk_aborts_at_once)
{
	expect_abort(delayed_then_freed_remotely, NULL, "tars: tars_free(): double free",
	    "delayed-free queue");
}

static BUG void
delayed_then_queried_remotely(void *arg)
{
	(void)arg;
	CHILD_CHECK(tars_option_set("delay", 1) == 0);
	void *p = tars_malloc(64);
	CHILD_CHECK(p != NULL);
	tars_free(p);
	on_another_thread(usable_size_of, p);
	_exit(0);
}

Test(reuse, the_size_of_a_delayed_chunk_asked_from_another_thread_aborts)
{
	expect_abort(delayed_then_queried_remotely, NULL, "tars: tars_usable_size(): bogus pointer",
	    "delayed-free queue");
}

/* ---- fork() racing threads that free through the delayed queue -------- */

struct racers {
	atomic_int stop;
	atomic_long rounds;
	atomic_int failed;
};

static void *
churn_delayed(void *arg)
{
	struct racers *r = arg;
	void *keep[32] = {0};
	for (unsigned i = 0; !atomic_load(&r->stop); i++) {
		unsigned k = i % 32;
		tars_free(keep[k]);
		keep[k] = tars_malloc(16 + (i * 7919u) % 2033);
		if (keep[k] == NULL) {
			atomic_store(&r->failed, 1);
			break;
		}
		memset(keep[k], 0x5c, 16);
		atomic_fetch_add(&r->rounds, 1);
	}
	for (unsigned k = 0; k < 32; k++) {
		tars_free(keep[k]);
	}
	return NULL;
}

static void
fork_races_delayed_frees(void *arg)
{
	(void)arg;
	CHILD_CHECK(tars_option_set("delay", 1) == 0);
	struct racers r;
	atomic_init(&r.stop, 0);
	atomic_init(&r.rounds, 0);
	atomic_init(&r.failed, 0);
	pthread_t t[2];
	for (int i = 0; i < 2; i++) {
		CHILD_CHECK(pthread_create(&t[i], NULL, churn_delayed, &r) == 0);
	}
	void *mine = tars_malloc(100);
	void *queued = tars_malloc(100);
	CHILD_CHECK(mine != NULL && queued != NULL);
	tars_free(queued);   /* waits in this thread's queue */
	for (int n = 0; n < 30; n++) {
		long seen = atomic_load(&r.rounds);
		while (atomic_load(&r.rounds) < seen + 20 && !atomic_load(&r.failed)) {
			sched_yield();
		}
		pid_t pid = fork();
		CHILD_CHECK(pid >= 0);
		if (pid == 0) {
			(void)prctl(PR_SET_PDEATHSIG, SIGKILL);
			alarm(20);
			tars_free(mine);   /* a block of an inherited heap */
			/* No free while these are made, so `queued` cannot leave
			 * the queue: none of them may be it. */
			static void *made[300];
			for (int i = 0; i < 300; i++) {
				made[i] = tars_malloc(100);
				if (made[i] == NULL || made[i] == queued) {
					_exit(2);
				}
			}
			for (int i = 0; i < 300; i++) {
				tars_free(made[i]);
			}
			struct tars_stats s;
			tars_stats_get(&s);   /* every heap quiescent: no hang */
			_exit(s.live_count <= 64 + 3 ? 0 : 3);
		}
		int st;
		CHILD_CHECK(waitpid(pid, &st, 0) == pid);
		if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
			fprintf(stderr, "fork %d: child %s %d\n", n,
			    WIFSIGNALED(st) ? "signal" : "exit",
			    WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
			_exit(1);
		}
	}
	atomic_store(&r.stop, 1);
	for (int i = 0; i < 2; i++) {
		CHILD_CHECK(pthread_join(t[i], NULL) == 0);
	}
	CHILD_CHECK(atomic_load(&r.failed) == 0);
	tars_free(mine);
	struct tars_stats s;
	tars_stats_get(&s);
	CHILD_CHECK(s.live_count == 0);
	_exit(0);
}

Test(reuse, fork_racing_threads_that_free_through_the_delayed_queue, .timeout = 60)
{
	EXPECT_EXIT0(fork_races_delayed_frees, NULL);
}
