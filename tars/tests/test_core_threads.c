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

/* ------------------------------------------------------- remote frees */

struct batch {
	void **p;
	size_t n;
};

static void *
free_batch(void *arg)
{
	struct batch *b = arg;
	for (size_t i = 0; i < b->n; i++) {
		tars_free(b->p[i]);
	}
	return NULL;
}

/*
 * Blocks freed by another thread are wiped at once and wait for their
 * heap, counted once: as pending, not live.  The owner collects them when
 * its class runs out of slots, and reuses their slots.
 */
Test(threads, remote_frees_are_pending_then_collected)
{
	cr_assert_eq(tars_option_set("random", 0), 0);
	enum { N = 512 };   /* 8 pages of 64-byte slots */
	void *p[N];
	for (int i = 0; i < N; i++) {
		p[i] = tars_malloc(64);
		cr_assert_not_null(p[i]);
		memset(p[i], 0x5a, 64);
	}
	struct tars_stats a;
	tars_stats_get(&a);
	cr_assert_eq(a.live_count, N);
	cr_assert_eq(a.pending_slots, 0);
	struct batch b = {p, N};
	pthread_t t;
	cr_assert_eq(pthread_create(&t, NULL, free_batch, &b), 0);
	cr_assert_eq(pthread_join(t, NULL), 0);
	struct tars_stats c;
	tars_stats_get(&c);
	cr_assert_eq(c.live_count, 0);
	cr_assert_eq(c.pending_slots, N, "%zu pending", c.pending_slots);
	cr_assert_eq(c.remote_frees - a.remote_frees, N);
	cr_assert_eq(c.frees - a.frees, N);
	for (int i = 0; i < N; i++) {
		cr_assert(all_bytes(p[i], 64, 0xdf), "slot %d not wiped by the freeing thread", i);
	}
	/* The heap has no free 64-byte slot left but the pending ones: the
	 * next allocations collect them, with no new page. */
	void *q[N];
	for (int i = 0; i < N; i++) {
		q[i] = tars_malloc(64);
		cr_assert_not_null(q[i]);
	}
	struct tars_stats d;
	tars_stats_get(&d);
	cr_assert_eq(d.pending_slots, 0);
	cr_assert_eq(d.live_count, N);
	cr_assert_eq(d.chunk_pages, c.chunk_pages, "collected slots were not reused");
	cr_assert_eq(d.syscalls, c.syscalls);
	for (int i = 0; i < N; i++) {
		tars_free(q[i]);
	}
}

/* A thread that exits with live blocks: its heap, blocks included, is
 * adopted by the next thread; frees from the main thread in between go
 * to the abandoned heap, and the adopter collects them. */
static void *
alloc_and_leave(void *arg)
{
	struct batch *b = arg;
	for (size_t i = 0; i < b->n; i++) {
		b->p[i] = tars_malloc(32 + i % 200);
		if (b->p[i] == NULL) {
			return (void *)1;
		}
		memset(b->p[i], (int)(i & 0xff), 32 + i % 200);
	}
	return NULL;
}

Test(threads, an_exited_threads_heap_is_adopted_with_its_blocks)
{
	enum { N = 300 };
	void *p[N], *q[N];
	struct batch b = {p, N}, c = {q, N};
	pthread_t t;
	void *rv;
	tars_free(tars_malloc(1));   /* this thread's heap first: heap 0 */
	cr_assert_eq(pthread_create(&t, NULL, alloc_and_leave, &b), 0);
	cr_assert_eq(pthread_join(t, &rv), 0);
	cr_assert_null(rv);
	for (int i = 0; i < N; i += 2) {
		tars_free(p[i]);   /* to the abandoned heap */
	}
	struct tars_stats s0;
	tars_stats_get(&s0);
	cr_assert_eq(s0.pending_slots, N / 2);
	cr_assert_eq(s0.heaps, 2);
	cr_assert_eq(pthread_create(&t, NULL, alloc_and_leave, &c), 0);
	cr_assert_eq(pthread_join(t, &rv), 0);
	cr_assert_null(rv);
	struct tars_stats s1;
	tars_stats_get(&s1);
	cr_assert_eq(s1.heaps, 2, "the second thread adopted the first one's heap");
	cr_assert_eq(s1.live_count, N / 2 + N);
	cr_assert_leq(s1.pending_slots, s0.pending_slots, "pending slots only get collected");
	for (int i = 1; i < N; i += 2) {
		cr_assert(all_bytes(p[i], 1, (unsigned char)(i & 0xff)));
		tars_free(p[i]);
	}
	for (int i = 0; i < N; i++) {
		tars_free(q[i]);
	}
	struct tars_stats s2;
	tars_stats_get(&s2);
	cr_assert_eq(s2.live_count, 0);
}

/* fork() with blocks of several threads' heaps live: the child frees them
 * all (its own heap and the others', which it adopts or hands back) and
 * allocates from them. */
static void
child_frees_everything(void *arg)
{
	struct batch *b = arg;
	for (size_t k = 0; k < 4; k++) {
		free_batch(&b[k]);
	}
	for (int i = 0; i < 2000; i++) {
		void *x = tars_malloc((size_t)i % 300);
		CHILD_CHECK(x != NULL);
		tars_free(x);
	}
	struct tars_stats s;
	tars_stats_get(&s);
	CHILD_CHECK(s.live_count == 0);
	_exit(0);
}

Test(threads, a_fork_child_frees_blocks_of_every_heap)
{
	enum { N = 200, T = 3 };
	void *p[T + 1][N];
	struct batch b[T + 1];
	for (int k = 0; k <= T; k++) {
		b[k] = (struct batch){p[k], N};
	}
	/* Three threads allocate and stay alive, each with its own heap. */
	pthread_t t[T];
	for (int k = 0; k < T; k++) {
		cr_assert_eq(pthread_create(&t[k], NULL, alloc_and_leave, &b[k]), 0);
	}
	for (int k = 0; k < T; k++) {
		cr_assert_eq(pthread_join(t[k], NULL), 0);
	}
	cr_assert_null(alloc_and_leave(&b[T]));   /* and this thread */
	EXPECT_EXIT0(child_frees_everything, b);
	for (int k = 0; k <= T; k++) {
		free_batch(&b[k]);
	}
}
