/*
 * fork.c - fork() while other threads are anywhere inside tars.
 *
 * The prepare handler takes every lock tars owns, in one order: the
 * initialisation lock, the options lock, the heaps lock; then it makes a
 * quiescent point (no thread is inside a heap entry: no chunk list, page
 * record, key scope or large block is half updated); then the page-source
 * and block locks, which only heap entries take, so they are free by then.
 * Every public function that can take a lock runs inside a heap entry or
 * under one of the first three locks, so the child inherits no lock held
 * by a thread it does not have.
 *
 * In the child only the forking thread exists.  Every heap is abandoned,
 * to be adopted by the child's threads (their blocks stay valid and
 * freeable), pages that were MADV_WIPEONFORK read as zeros and pages that
 * were MADV_DONTFORK are gone; the records are fixed up so that freeing an
 * inherited block neither trips a canary nor touches a missing page.
 * Memory locks are not inherited: the child's first call locks its pages
 * again before it puts a secret in them (not the handler, so that
 * fork+exec pays nothing).
 */
#include <errno.h>
#include <string.h>

#include "chunk.h"

static void
fork_prepare(void)
{
	tars_init_lock();
	tars_options_lock();
	tars_heaps_lock();
	tars_quiesce_begin();
	tars_pages_lock();
	tars_blocks_lock();
}

static void
fork_parent(void)
{
	tars_blocks_unlock();
	tars_pages_unlock();
	tars_quiesce_end();
	tars_heaps_unlock();
	tars_options_unlock();
	tars_init_unlock();
}

static void
fork_child(void)
{
	int saved = errno;
	tars_pages_after_fork();
	tars_large_after_fork();
	tars_heaps_after_fork();
	tars_g.relock_pending = 1;
	tars_blocks_unlock();
	tars_pages_unlock();
	tars_heaps_unlock();
	tars_options_unlock();
	tars_init_unlock();
	errno = saved;
}

int
tars_fork_hooks(void)
{
	return pthread_atfork(fork_prepare, fork_parent, fork_child) == 0 ? 0 : -1;
}

/* The child's first call (no heap yet): lock its pages again. */
void
tars_fork_relock(void)
{
	tars_init_lock();
	if (tars_g.relock_pending) {
		int strict = TARS_OPT(mlock) == 2;
		tars_heaps_lock();
		tars_quiesce_begin();
		tars_pages_lock();
		tars_pages_relock(strict);
		tars_pages_unlock();
		tars_blocks_lock();
		tars_large_relock(strict);
		tars_blocks_unlock();
		tars_quiesce_end();
		tars_heaps_unlock();
		tars_g.relock_pending = 0;
	}
	tars_init_unlock();
}
