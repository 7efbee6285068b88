/*
 * os.c - thin wrappers around the system calls tars issues, each counted for
 * the statistics, and the one fatal-error path.
 *
 * Resource failures (ENOMEM, EAGAIN) are returned to the caller, who turns
 * them into NULL/-1 with errno.  Anything else from munmap means our own
 * bookkeeping is wrong, and that is fatal.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/membarrier.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "tars_internal.h"

atomic_uint_fast64_t tars_syscalls, tars_mmaps, tars_munmaps, tars_mprotects;

static inline void
count(atomic_uint_fast64_t *which)
{
	atomic_fetch_add_explicit(&tars_syscalls, 1, memory_order_relaxed);
	if (which != NULL) {
		atomic_fetch_add_explicit(which, 1, memory_order_relaxed);
	}
}

/* Formats into buf without touching the heap (we may be inside a broken
 * heap) and writes it with one write(2). */
static void
emit(const char *prefix, const char *func, const char *fmt, va_list ap)
{
	char buf[512];
	int n;
	if (func != NULL) {
		n = snprintf(buf, sizeof(buf), "%s%s(): ", prefix, func);
	} else {
		n = snprintf(buf, sizeof(buf), "%s", prefix);
	}
	if (n < 0 || (size_t)n >= sizeof(buf)) {
		n = 0;
	}
	int m = vsnprintf(buf + n, sizeof(buf) - (size_t)n - 1, fmt, ap);
	if (m < 0) {
		m = 0;
	}
	size_t len = (size_t)n + (size_t)m;
	if (len > sizeof(buf) - 2) {
		len = sizeof(buf) - 2;
	}
	buf[len++] = '\n';
	const char *p = buf;
	while (len > 0) {
		ssize_t w = write(STDERR_FILENO, p, len);
		if (w < 0 && errno == EINTR) {
			continue;
		}
		if (w <= 0) {
			break;
		}
		p += w;
		len -= (size_t)w;
	}
}

void
tars_fatal(const char *func, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	emit("tars: ", func, fmt, ap);
	va_end(ap);
	abort();
}

void
tars_warn(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	emit("tars: warning: ", NULL, fmt, ap);
	va_end(ap);
}

void
tars_warn_once(atomic_int *flag, const char *fmt, ...)
{
	if (atomic_exchange(flag, 1) != 0) {
		return;
	}
	va_list ap;
	va_start(ap, fmt);
	emit("tars: warning: ", NULL, fmt, ap);
	va_end(ap);
}

void *
tars_os_map(void *hint, size_t len, int prot, int flags, int fd)
{
	count(&tars_mmaps);
	if (fd < 0) {
		flags |= MAP_ANONYMOUS;
	}
	void *p = mmap(hint, len, prot, flags, fd, 0);
	if (p == MAP_FAILED) {
		if (errno != ENOMEM && errno != EAGAIN && errno != EPERM) {
			tars_fatal("mmap", "unexpected error %d (%s)", errno, strerror(errno));
		}
		errno = ENOMEM;
		return NULL;
	}
	return p;
}

int
tars_os_unmap(void *addr, size_t len)
{
	count(&tars_munmaps);
	if (munmap(addr, len) != 0) {
		/* Unmapping part of a mapping splits it: at vm.max_map_count the
		 * kernel says ENOMEM, and the caller keeps the pages.  Anything
		 * else means our own bookkeeping is wrong. */
		if (errno != ENOMEM) {
			tars_fatal("munmap", "munmap(%p, %zu) failed: %s", addr, len,
			    strerror(errno));
		}
		return -1;
	}
	return 0;
}

int
tars_os_protect(void *addr, size_t len, int prot)
{
	count(&tars_mprotects);
	if (mprotect(addr, len, prot) != 0) {
		if (errno != ENOMEM && errno != EAGAIN) {
			tars_fatal("mprotect", "mprotect(%p, %zu) failed: %s", addr, len,
			    strerror(errno));
		}
		return -1;
	}
	return 0;
}

int
tars_os_advise(void *addr, size_t len, int advice)
{
	count(NULL);
	return madvise(addr, len, advice);
}

int
tars_os_lock(void *addr, size_t len)
{
	count(NULL);
	return mlock(addr, len);
}

int
tars_os_lock_onfault(void *addr, size_t len)
{
	count(NULL);
	return mlock2(addr, len, MLOCK_ONFAULT);
}

int
tars_os_random(void *buf, size_t len)
{
	uint8_t *p = buf;
	while (len > 0) {
		count(NULL);
		ssize_t n = getrandom(p, len, 0);
		if (n < 0) {
			if (errno == EINTR) {
				continue;
			}
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Not counted in tars_syscalls, which counts the calls made for memory:
 * a quiescent point (tars_stats_get itself) must not move the figures it
 * reads. */
int
tars_os_membarrier_register(void)
{
#ifdef SYS_membarrier
	long q = syscall(SYS_membarrier, MEMBARRIER_CMD_QUERY, 0, 0);
	if (q < 0 || !(q & MEMBARRIER_CMD_PRIVATE_EXPEDITED)) {
		return -1;
	}
	return syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0
	    ? 0 : -1;
#else
	errno = ENOSYS;
	return -1;
#endif
}

int
tars_os_membarrier(void)
{
#ifdef SYS_membarrier
	return syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0) == 0 ? 0 : -1;
#else
	errno = ENOSYS;
	return -1;
#endif
}

int
tars_os_memfd_secret(void)
{
#ifdef SYS_memfd_secret
	count(NULL);
	return (int)syscall(SYS_memfd_secret, (unsigned)O_CLOEXEC);
#else
	errno = ENOSYS;
	return -1;
#endif
}

int
tars_os_replace(void *addr, size_t len)
{
	return tars_os_map(addr, len, PROT_NONE, MAP_PRIVATE | MAP_FIXED | MAP_NORESERVE,
	    -1) == NULL ? -1 : 0;
}

int
tars_os_reserve(void *addr, size_t len)
{
	count(&tars_mmaps);
	void *p = mmap(addr, len, PROT_NONE,
	    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE, -1, 0);
	if (p == MAP_FAILED) {
		return -1;
	}
	if (p != addr) {
		/* A kernel older than 4.17 took the flag as a hint. */
		(void)tars_os_unmap(p, len);
		return -1;
	}
	return 0;
}

void
tars_mutex_lock(pthread_mutex_t *m, const char *func)
{
	int rc = pthread_mutex_lock(m);
	if (rc != 0) {
		tars_fatal(func, "pthread_mutex_lock: %s", strerror(rc));
	}
}

void
tars_mutex_unlock(pthread_mutex_t *m, const char *func)
{
	int rc = pthread_mutex_unlock(m);
	if (rc != 0) {
		tars_fatal(func, "pthread_mutex_unlock: %s", strerror(rc));
	}
}
