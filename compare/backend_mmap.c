/*
 * backend_mmap.c - the naive guarded allocator: every buffer is its own
 * mapping, a PROT_NONE guard page on each side, the data pages mlock'ed
 * and excluded from core dumps, munmap on free.  Every call is checked.
 *
 *     | guard | data pages (RW, mlock, DONTDUMP) | guard |
 *
 * mlock failure (RLIMIT_MEMLOCK) is best effort: counted, not fatal.
 */
#include "compare.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/utsname.h>
#include <unistd.h>

static size_t page;
static atomic_ulong mlock_failures, munmap_failures;
static atomic_int mlock_errno, munmap_errno;

static int mm_init(char *note, size_t len)
{
	long p = sysconf(_SC_PAGESIZE);

	if (p <= 0) {
		snprintf(note, len, "sysconf(_SC_PAGESIZE)");
		return -1;
	}
	page = (size_t)p;
	return 0;
}

static size_t data_len(size_t size)
{
	return size == 0 ? page : (size + page - 1) / page * page;
}

static void *mm_alloc(size_t size)
{
	size_t n = data_len(size);
	char *base, *data;
	int e;

	base = mmap(NULL, n + 2 * page, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (base == MAP_FAILED) {
		compare_fail_call = "mmap";
		return NULL;
	}
	data = base + page;
	if (mprotect(data, n, PROT_READ | PROT_WRITE) != 0) {
		compare_fail_call = "mprotect";
		goto fail;
	}
	if (mlock(data, n) != 0) {
		atomic_fetch_add(&mlock_failures, 1);
		atomic_store(&mlock_errno, errno);
	}
	if (madvise(data, n, MADV_DONTDUMP) != 0) {
		compare_fail_call = "madvise";
		goto fail;
	}
	return data;
fail:
	e = errno;
	if (munmap(base, n + 2 * page) != 0) {
		atomic_fetch_add(&munmap_failures, 1);
		atomic_store(&munmap_errno, errno);
	}
	errno = e;
	return NULL;
}

static void mm_release(void *ptr, size_t size)
{
	size_t n = data_len(size);

	if (ptr == NULL)
		return;
	explicit_bzero(ptr, size);
	if (munmap((char *)ptr - page, n + 2 * page) != 0) {
		atomic_fetch_add(&munmap_failures, 1);
		atomic_store(&munmap_errno, errno);
	}
}

/* A secret may be left read-only or inaccessible: make it writable again so
 * that it can be wiped before munmap. */
static void mm_release_secret(void *ptr, size_t size)
{
	if (ptr != NULL && mprotect(ptr, data_len(size), PROT_READ | PROT_WRITE) != 0) {
		atomic_fetch_add(&munmap_failures, 1);
		atomic_store(&munmap_errno, errno);
		return; /* cannot wipe it: leave it mapped rather than crash */
	}
	mm_release(ptr, size);
}

static int mm_none(void *ptr, size_t size)
{
	return mprotect(ptr, data_len(size), PROT_NONE);
}

static int mm_read(void *ptr, size_t size)
{
	return mprotect(ptr, data_len(size), PROT_READ);
}

static void mm_version(char *out, size_t len)
{
	struct utsname u;

	if (uname(&u) != 0)
		snprintf(out, len, "naive guarded mmap (kernel unknown)");
	else
		snprintf(out, len, "naive guarded mmap, Linux %s", u.release);
}

static void mm_counters(const struct measure_key *k)
{
	compare_emit_full(k, "mlock_failures", (double)atomic_load(&mlock_failures), "count",
	    "ok", atomic_load(&mlock_errno), "mlock calls that failed (buffer kept, unlocked)");
	compare_emit_full(k, "munmap_failures", (double)atomic_load(&munmap_failures), "count",
	    "ok", atomic_load(&munmap_errno), "munmap calls that failed (mapping leaked)");
}

const struct compare_backend compare_backend = {
	.name = "mmap",
	.what = "naive guarded mmap: a mapping per buffer, guard page each side, "
	    "mlock, MADV_DONTDUMP; munmap on free",
	.malloc_owner = "libc.so",
	.alloc_name = "mmap",
	.init = mm_init,
	.alloc = mm_alloc,
	.release = mm_release,
	.alloc_secret = mm_alloc,
	.release_secret = mm_release_secret,
	.protect_none = mm_none,
	.protect_read = mm_read,
	.version = mm_version,
	.counters = mm_counters,
	.capacity_note = "one mapping with guard pages per buffer (about 2 VMAs once "
	    "neighbouring guards merge): bounded by vm.max_map_count",
};
