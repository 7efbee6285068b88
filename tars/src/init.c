/*
 * init.c - global state and first-call initialisation.
 *
 * Initialisation maps the options page, the page source's cache array, the
 * table of large blocks, and registers the thread-exit, fork and exit
 * hooks.  Any of it may fail when the process is out of memory, address
 * space or mappings: the first call then returns NULL (or -1) with errno
 * ENOMEM, nothing is left half made that a later call cannot finish, and a
 * later call succeeds once resources are back.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chunk.h"

struct tars_global tars_g;
atomic_uint_fast64_t tars_meta_pages;
static pthread_mutex_t init_lock = PTHREAD_MUTEX_INITIALIZER;
static int hooks_registered;

void
tars_init_lock(void)
{
	tars_mutex_lock(&init_lock, "tars_init");
}

void
tars_init_unlock(void)
{
	tars_mutex_unlock(&init_lock, "tars_init");
}

static int
register_hooks(void)
{
	if (hooks_registered) {
		return 0;
	}
	if (tars_fork_hooks() != 0) {
		return -1;
	}
	/* Always registered: `stats` may be switched on later.  A failure
	 * only loses the statistics printed at exit. */
	(void)atexit(tars_stats_atexit);
	hooks_registered = 1;
	return 0;
}

/* init_lock held. */
static void
init_basic_locked(void)
{
	if (atomic_load_explicit(&tars_g.basic_ready, memory_order_relaxed)) {
		return;
	}
	long ps = sysconf(_SC_PAGESIZE);
	if (ps < 4096 || (ps & (ps - 1)) != 0 || (size_t)ps > TARS_SEG_SIZE / 16) {
		tars_fatal("tars_init", "unsupported page size %ld", ps);
	}
	tars_g.page_mask = (uintptr_t)ps - 1;
	tars_g.page_shift = (unsigned)__builtin_ctzl((unsigned long)ps);
	tars_g.seg_pages = (unsigned)(TARS_SEG_SIZE / (size_t)ps);
	tars_g.chunk_max = (size_t)ps / 2 < TARS_CHUNK_MAX ? (size_t)ps / 2 : TARS_CHUNK_MAX;
	uint64_t rnd[3];
	if (tars_os_random(rnd, sizeof(rnd)) != 0) {
		/* Not exhaustion: a system without getrandom(2) (or a sandbox
		 * that forbids it) cannot randomise anything tars promises. */
		tars_fatal("tars_init", "getrandom failed: %s", strerror(errno));
	}
	tars_g.secret = rnd[0];
	tars_g.canary_key[0] = rnd[1];
	tars_g.canary_key[1] = rnd[2];
	tars_wipe(rnd, 0, sizeof(rnd));
	tars_chunk_init();
	tars_g.page_size = (size_t)ps;
	(void)tars_options_init();   /* the built-in defaults until it can map */
	/* The fork handlers from the first call of any kind: a thread inside
	 * tars_option_set (which needs no allocator) must not leave the
	 * options lock held in a child.  Retried by tars_init_slow if the
	 * registration failed here. */
	(void)register_hooks();
	atomic_store_explicit(&tars_g.basic_ready, 1, memory_order_release);
}

void
tars_init_basic(void)
{
	if (likely(atomic_load_explicit(&tars_g.basic_ready, memory_order_acquire))) {
		return;
	}
	tars_init_lock();
	init_basic_locked();
	tars_init_unlock();
}

int
tars_init_slow(void)
{
	int saved = errno;
	tars_init_lock();
	if (atomic_load(&tars_g.ready)) {
		tars_init_unlock();
		return 0;
	}
	init_basic_locked();
	if (tars_options_init() != 0 || tars_pages_init() != 0 || tars_blocks_init() != 0 ||
	    tars_heaps_init() != 0 || register_hooks() != 0 || tars_options_seal() != 0) {
		tars_init_unlock();
		errno = ENOMEM;
		return -1;
	}
#if defined(__SANITIZE_THREAD__)
	/* TSan does not model membarrier: entries fence, which it does. */
	int fence = 1;
#else
	int fence = tars_os_membarrier_register() != 0;
#endif
	if (fence) {
		atomic_fetch_or(&tars_quiesce, QUIESCE_FENCE);
	}
	atomic_store_explicit(&tars_g.ready, 1, memory_order_release);
	tars_init_unlock();
	errno = saved;
	return 0;
}
