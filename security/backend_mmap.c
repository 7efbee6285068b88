/*
 * backend_mmap.c - what a careful programmer writes without a library:
 * per buffer one mapping, a PROT_NONE guard page before and after the data
 * pages, the data mlock'ed (best effort: a failure is counted, the buffer
 * kept) and MADV_DONTDUMP; explicit_bzero and munmap on free.  The data
 * starts at its first page, as a page-aligned allocation would.
 *
 *     | guard | data ...... (rest of the page) | guard |
 */
#include "sec.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/utsname.h>

static uint64_t mlock_failed, munmap_failed;
static int mlock_errno;

static size_t pages_for(size_t size)
{
	size_t p = sec_cfg.page;

	return size == 0 ? p : (size + p - 1) / p * p;
}

static void *mm_alloc(size_t size, unsigned char **data)
{
	size_t n = pages_for(size), p = sec_cfg.page;
	unsigned char *base = mmap(NULL, n + 2 * p, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	int e;

	if (base == MAP_FAILED)
		return NULL;
	if (mprotect(base + p, n, PROT_READ | PROT_WRITE) != 0 ||
	    madvise(base + p, n, MADV_DONTDUMP) != 0)
		goto fail;
	if (mlock(base + p, n) != 0) {
		mlock_failed++;
		mlock_errno = errno;
	}
	return *data = base + p;
fail:
	e = errno;
	if (munmap(base, n + 2 * p) != 0)
		munmap_failed++;
	errno = e;
	return NULL;
}

static void mm_release(void *h, size_t size)
{
	size_t n = pages_for(size), p = sec_cfg.page;

	explicit_bzero(h, size);
	if (munmap((unsigned char *)h - p, n + 2 * p) != 0)
		munmap_failed++;
}

static const struct sec_kind kinds[] = {
	{ "mmap", "naive guarded mmap: guard | data (mlock, DONTDUMP) | guard, per buffer",
	  mm_alloc, mm_release, NULL, 0 },
	{ NULL, NULL, NULL, NULL, NULL, 0 },
};

static void mm_version(char *out, size_t len)
{
	struct utsname u;

	if (uname(&u) != 0)
		snprintf(out, len, "naive guarded mmap");
	else
		snprintf(out, len, "naive guarded mmap, Linux %s", u.release);
}

static void mm_counters(void)
{
	js_open("backend_counters");
	js_u64("mlock_failures", mlock_failed);
	js_str("mlock_errno", mlock_failed ? strerrorname_np(mlock_errno) : NULL);
	js_u64("munmap_failures", munmap_failed);
	js_close();
}

const struct sec_backend sec_backend = {
	.name = "mmap",
	.malloc_owner = "libc.so",
	.kinds = kinds,
	.version = mm_version,
	.counters = mm_counters,
};
