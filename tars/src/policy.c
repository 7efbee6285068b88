/*
 * policy.c - what every fresh data mapping gets: MADV_DONTDUMP (dump=0),
 * MADV_WIPEONFORK or MADV_DONTFORK (fork=1/2), and mlock (mlock=1/2).
 *
 * Each advice is its own madvise call with its own result check: several
 * advice values OR'ed into one call is not a thing the kernel understands
 * (it answers EINVAL and applies nothing - the original TARS has that bug).
 *
 * A protection the options ask for and the kernel refuses is never dropped
 * in silence: madvise fails with EAGAIN or ENOMEM when applying the advice
 * needs a VMA split and the process is at vm.max_map_count, and pages
 * without MADV_WIPEONFORK would hand their secrets to a forked child, pages
 * without MADV_DONTDUMP to a core file.  The caller gets -1 (ENOMEM) and
 * must not put a secret there.  Only mlock=1 is best effort by definition:
 * a failed mlock is warned about once and counted (unlocked_bytes).
 */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>

#include "tars_internal.h"

atomic_size_t tars_locked_bytes, tars_unlocked_bytes;
static atomic_int warned_lock, warned_relock;

static int
advise(void *addr, size_t len, int advice, const char *name)
{
	if (tars_os_advise(addr, len, advice) == 0) {
		return 0;
	}
	if (errno != EAGAIN && errno != ENOMEM) {
		/* EINVAL and the like: our own call is wrong. */
		tars_fatal("madvise", "madvise(%p, %zu, %s) failed: %s", addr, len, name,
		    strerror(errno));
	}
	return -1;
}

/* region: a whole PROT_NONE key region, locked on fault and not counted
 * (its keys count their own bytes). */
static int
apply(void *addr, size_t len, uint16_t *flags, int secretmem, int region, long mlock_policy)
{
	int saved = errno;
	uint16_t f = 0;
	long fork_policy = TARS_OPT(fork);
	size_t counted = region ? 0 : len;
	*flags = 0;
	if (!secretmem && TARS_OPT(dump) == 0 &&
	    advise(addr, len, MADV_DONTDUMP, "MADV_DONTDUMP") != 0) {
		errno = ENOMEM;
		return -1;
	}
	if (secretmem || fork_policy == 2) {
		/* A shared memfd_secret mapping cannot be wiped on fork: it is
		 * never inherited instead. */
		if (advise(addr, len, MADV_DONTFORK, "MADV_DONTFORK") != 0) {
			errno = ENOMEM;
			return -1;
		}
		f |= R_DONTFORK;
	} else if (fork_policy == 1) {
		if (advise(addr, len, MADV_WIPEONFORK, "MADV_WIPEONFORK") != 0) {
			errno = ENOMEM;
			return -1;
		}
		f |= R_WIPEFORK;
	}
	if (secretmem) {
		/* memfd_secret pages are locked by the kernel. */
		f |= R_LOCKED;
		atomic_fetch_add(&tars_locked_bytes, counted);
	} else if (mlock_policy >= 1) {
		if ((region ? tars_os_lock_onfault(addr, len) : tars_os_lock(addr, len)) == 0) {
			f |= R_LOCKED;
			atomic_fetch_add(&tars_locked_bytes, counted);
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
			atomic_fetch_add(&tars_unlocked_bytes, counted);
		}
	}
	*flags = f;
	errno = saved;
	return 0;
}

int
tars_apply_policy(void *addr, size_t len, uint16_t *flags, int secretmem)
{
	return apply(addr, len, flags, secretmem, 0, TARS_OPT(mlock));
}

int
tars_apply_region_policy(void *addr, size_t len, uint16_t *flags, int secretmem,
    long mlock_policy)
{
	return apply(addr, len, flags, secretmem, 1, mlock_policy);
}

void
tars_unlock_stats(size_t len, uint16_t flags)
{
	if (flags & R_LOCKED) {
		atomic_fetch_sub(&tars_locked_bytes, len);
	} else if (flags & R_UNLOCKED) {
		atomic_fetch_sub(&tars_unlocked_bytes, len);
	}
}

/* Lock [addr, addr+len) again after fork; on failure move its bytes from
 * locked to unlocked in the statistics and return 0 so the caller re-flags
 * it.  mlock refuses PROT_NONE ranges (ENOMEM): a closed range is opened
 * for the call and closed again. */
int
tars_relock_range(void *addr, size_t len, int closed)
{
	int saved = errno;
	if (closed && tars_os_protect(addr, len, PROT_READ) != 0) {
		closed = 0;   /* cannot open it: the mlock below fails and says so */
	}
	int rc = tars_os_lock(addr, len);
	if (closed && tars_os_protect(addr, len, PROT_NONE) != 0) {
		tars_fatal("fork", "cannot close %p again after mlock", addr);
	}
	if (rc != 0) {
		tars_warn_once(&warned_relock, "mlock after fork failed (%s): some "
		    "pages are not locked in this process", strerror(errno));
		atomic_fetch_sub(&tars_locked_bytes, len);
		atomic_fetch_add(&tars_unlocked_bytes, len);
		errno = saved;
		return 0;
	}
	errno = saved;
	return 1;
}

uint8_t
tars_policy_now(void)
{
	return (uint8_t)(TARS_OPT(mlock) | TARS_OPT(dump) << 2 | TARS_OPT(fork) << 3 | 0x80);
}
