/*
 * Threads (suite "threads"): blocks outlive the thread that allocated
 * them, heaps are owned by threads and adopted after they exit, and fork()
 * while another thread is
 * inside the allocator never deadlocks (.timeout turns a hang into a
 * failure; a forked child also has its own alarm).  No sleeps: threads synchronise through joins, atomics and
 * mutexes only.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "tars.h"
#include "util.h"

TestSuite(threads, .init = no_env);

struct made {
	unsigned char *chunk, *large, *key, *zero;
	size_t large_size;
};

static void *
allocate_and_exit(void *arg)
{
	struct made *m = arg;
	m->chunk = tars_malloc(100);
	m->large = tars_malloc(m->large_size);
	m->key = tars_malloc_key(48);
	m->zero = tars_malloc(0);
	if (m->chunk && m->large && m->key) {
		fill_seeded(m->chunk, 100, 1);
		fill_seeded(m->large, m->large_size, 2);
		fill_seeded(m->key, 48, 3);
		if (tars_protect_read(m->key) != 0) {
			m->key = NULL;
		}
	}
	return NULL;
}

Test(threads, blocks_outlive_their_thread)
{
	enum { T = 12 };
	struct made m[T];
	for (int i = 0; i < T; i++) {
		memset(&m[i], 0, sizeof(m[i]));
		m[i].large_size = 2 * page_size() + (size_t)i;
		pthread_t t;
		cr_assert_eq(pthread_create(&t, NULL, allocate_and_exit, &m[i]), 0);
		cr_assert_eq(pthread_join(t, NULL), 0);
	}
	struct tars_stats s;
	tars_stats_get(&s);
	cr_assert_eq(s.live_count, 4 * T);
	/* Each thread exited before the next began: one heap, adopted by
	 * every later thread. */
	cr_assert_eq(s.heaps, 1);
	for (int i = 0; i < T; i++) {
		cr_assert(m[i].chunk && m[i].large && m[i].key && m[i].zero);
		cr_assert(check_seeded(m[i].chunk, 100, 1));
		cr_assert(check_seeded(m[i].large, m[i].large_size, 2));
		cr_assert(check_seeded(m[i].key, 48, 3));
		cr_assert_eq(tars_usable_size(m[i].chunk), 100);
		/* Still owned by the dead thread's pool, usable from here. */
		cr_assert_eq(tars_protect_write(m[i].key), 0);
		unsigned char *r = tars_realloc(m[i].chunk, 200);
		cr_assert_not_null(r);
		cr_assert(check_seeded(r, 100, 1));
		tars_free(r);
		tars_freezero(m[i].large, m[i].large_size);
		tars_freezero(m[i].key, 48);
		tars_free(m[i].zero);
	}
	tars_stats_get(&s);
	cr_assert_eq(s.live_count, 0);
}

/* ---------------------------------------------------------------- fork */

struct churn {
	atomic_int stop;
	atomic_long rounds;
	atomic_int failed;
};

static void *
churn_thread(void *arg)
{
	struct churn *c = arg;
	size_t ps = page_size();
	void *keep[64] = {0};
	unsigned i = 0;
	while (!atomic_load(&c->stop)) {
		unsigned slot = i % 64;
		tars_free(keep[slot]);
		size_t size = (i * 37u) % 7 == 0 ? ps + i % 3000 : (i * 7919u) % 2049;
		keep[slot] = i % 5 == 0 ? tars_calloc(1, size) : tars_malloc(size);
		if (keep[slot] == NULL) {
			atomic_store(&c->failed, 1);
			break;
		}
		memset(keep[slot], 0x6b, size);
		if (i % 11 == 0) {
			void *k = tars_malloc_key(32);
			if (k == NULL || tars_protect_none(k) != 0) {
				atomic_store(&c->failed, 1);
				break;
			}
			tars_free(k);
		}
		atomic_fetch_add(&c->rounds, 1);
		i++;
	}
	for (unsigned j = 0; j < 64; j++) {
		tars_free(keep[j]);
	}
	return NULL;
}

static void
child_body(void)
{
	/* The statistics wait until no heap is busy: a heap inherited busy
	 * (its thread is not in the child) would hang here. */
	struct tars_stats st;
	tars_stats_get(&st);
	if (st.heaps < 2) {   /* this thread's and a churning one's at least */
		_exit(4);
	}
	for (int i = 0; i < 200; i++) {
		size_t size = (size_t)i * 97 % 9000;
		unsigned char *p = tars_malloc(size);
		if (p == NULL) {
			_exit(2);
		}
		memset(p, 0x21, size);
		tars_free(p);
	}
	void *k = tars_malloc_key(16);
	if (k == NULL) {
		_exit(3);
	}
	tars_free(k);
	_exit(0);
}

static void
fork_while_allocating(void)
{
	struct churn c;
	atomic_init(&c.stop, 0);
	atomic_init(&c.rounds, 0);
	atomic_init(&c.failed, 0);
	pthread_t t[2];
	for (int i = 0; i < 2; i++) {
		cr_assert_eq(pthread_create(&t[i], NULL, churn_thread, &c), 0);
	}
	void *mine = tars_malloc(64);
	cr_assert_not_null(mine);
	for (int n = 0; n < 50; n++) {
		/* Make sure the threads are inside the allocator loop. */
		long seen = atomic_load(&c.rounds);
		while (atomic_load(&c.rounds) < seen + 20 && !atomic_load(&c.failed)) {
			sched_yield();
		}
		pid_t pid = fork();
		cr_assert_geq(pid, 0, "fork: %s", strerror(errno));
		if (pid == 0) {
			/* A deadlocked child must not outlive the test: it dies
			 * with its parent, and on its own after 20 s. */
			(void)prctl(PR_SET_PDEATHSIG, SIGKILL);
			alarm(20);
			tars_free(mine);
			child_body();
		}
		int st;
		cr_assert_eq(waitpid(pid, &st, 0), pid);
		cr_assert(!(WIFSIGNALED(st) && WTERMSIG(st) == SIGALRM),
		    "fork %d: the child deadlocked in the allocator", n);
		cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0,
		    "fork %d: child %s %d", n, WIFSIGNALED(st) ? "signal" : "exit",
		    WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
	}
	atomic_store(&c.stop, 1);
	for (int i = 0; i < 2; i++) {
		cr_assert_eq(pthread_join(t[i], NULL), 0);
	}
	cr_assert_eq(atomic_load(&c.failed), 0);
	tars_free(mine);
	struct tars_stats s;
	tars_stats_get(&s);
	cr_assert_eq(s.live_count, 0);
}

Test(threads, fork_while_other_threads_allocate, .timeout = 60)
{
	fork_while_allocating();
}

/* ---------------------------------------------------------------- heaps */

struct spread {
	pthread_barrier_t *barrier;
	void *block;
};

static void *
alloc_one(void *arg)
{
	struct spread *s = arg;
	s->block = tars_malloc(16);
	/* Hold the thread alive until all have allocated. */
	pthread_barrier_wait(s->barrier);
	return NULL;
}

Test(threads, every_thread_owns_a_heap)
{
	/* Four live threads allocating one 16-byte block each own four
	 * heaps, hence four different chunk pages. */
	enum { T = 4 };
	pthread_barrier_t b;
	cr_assert_eq(pthread_barrier_init(&b, NULL, T), 0);
	struct spread s[T];
	pthread_t t[T];
	for (int i = 0; i < T; i++) {
		s[i].barrier = &b;
		s[i].block = NULL;
		cr_assert_eq(pthread_create(&t[i], NULL, alloc_one, &s[i]), 0);
	}
	for (int i = 0; i < T; i++) {
		cr_assert_eq(pthread_join(t[i], NULL), 0);
	}
	struct tars_stats st;
	tars_stats_get(&st);
	cr_assert_eq(st.heaps, T);
	cr_assert_eq(st.chunk_pages, T, "%zu chunk pages for %d threads", st.chunk_pages, T);
	uintptr_t mask = ~(uintptr_t)(page_size() - 1);
	for (int i = 0; i < T; i++) {
		cr_assert_not_null(s[i].block);
		for (int j = 0; j < i; j++) {
			cr_assert_neq((uintptr_t)s[i].block & mask, (uintptr_t)s[j].block & mask);
		}
	}
	for (int i = 0; i < T; i++) {
		tars_free(s[i].block);
	}
	pthread_barrier_destroy(&b);
}
