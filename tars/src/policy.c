/*
 * policy.c - what every fresh data mapping gets: MADV_DONTDUMP (dump=0),
 * MADV_WIPEONFORK or MADV_DONTFORK (fork=1/2), and mlock (mlock=1/2).
 *
 * Each advice is its own madvise call with its own result check: several
 * advice values OR'ed into one call is not a thing the kernel understands
 * (it answers EINVAL and applies nothing - the original TARS has that bug).
 */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>

#include "tars_internal.h"

static atomic_int warned_lock, warned_dump, warned_fork;

static void
advise(void *addr, size_t len, int advice, const char *name, atomic_int *warned)
{
	if (tars_os_advise(addr, len, advice) != 0) {
		tars_warn_once(warned, "madvise(%s) failed: %s; continuing without it",
		    name, strerror(errno));
	}
}

int
tars_apply_policy(struct tars_pool *p, void *addr, size_t len, uint16_t *flags,
    int secretmem)
{
	int saved = errno;
	uint16_t f = 0;
	long fork_policy = TARS_OPT(fork), mlock_policy = TARS_OPT(mlock);
	if (!secretmem && TARS_OPT(dump) == 0) {
		advise(addr, len, MADV_DONTDUMP, "MADV_DONTDUMP", &warned_dump);
	}
	if (secretmem || fork_policy == 2) {
		/* A shared memfd_secret mapping cannot be wiped on fork: it is
		 * never inherited instead. */
		if (tars_os_advise(addr, len, MADV_DONTFORK) == 0) {
			f |= R_DONTFORK;
		} else {
			tars_warn_once(&warned_fork, "madvise(MADV_DONTFORK) failed: %s",
			    strerror(errno));
		}
	} else if (fork_policy == 1) {
		if (tars_os_advise(addr, len, MADV_WIPEONFORK) == 0) {
			f |= R_WIPEFORK;
		} else {
			tars_warn_once(&warned_fork, "madvise(MADV_WIPEONFORK) failed: %s",
			    strerror(errno));
		}
	}
	if (secretmem) {
		/* memfd_secret pages are locked by the kernel. */
		f |= R_LOCKED;
		p->locked_bytes += len;
	} else if (mlock_policy >= 1) {
		if (tars_os_lock(addr, len) == 0) {
			f |= R_LOCKED;
			p->locked_bytes += len;
		} else if (mlock_policy == 2) {
			*flags = f;
			errno = ENOMEM;
			return -1;
		} else {
			struct rlimit rl = {0, 0};
			(void)getrlimit(RLIMIT_MEMLOCK, &rl);
			tars_warn_once(&warned_lock, "mlock failed (%s; RLIMIT_MEMLOCK %llu "
			    "KiB): secrets may be swapped out; mlock=1 goes on without, "
			    "mlock=2 would fail", strerror(errno),
			    (unsigned long long)rl.rlim_cur / 1024);
			f |= R_UNLOCKED;
			p->unlocked_bytes += len;
		}
	}
	*flags = f;
	errno = saved;
	return 0;
}

void
tars_unlock_stats(struct tars_pool *p, size_t len, uint16_t flags)
{
	if (flags & R_LOCKED) {
		p->locked_bytes -= len;
	} else if (flags & R_UNLOCKED) {
		p->unlocked_bytes -= len;
	}
}
