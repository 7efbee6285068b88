/*
 * procmem.c - page usage from /proc/self, read with open/read into static
 * buffers so that taking a snapshot allocates nothing from the backend.
 * Always called outside timed regions.
 */
#include "compare.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

static char buf[1 << 16];

/* Reads the whole file (up to sizeof buf - 1) into buf; -1 with errno. */
static ssize_t slurp(const char *path)
{
	size_t len = 0;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	for (;;) {
		ssize_t r = read(fd, buf + len, sizeof buf - 1 - len);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			int e = errno;
			(void)close(fd);
			errno = e;
			return -1;
		}
		if (r == 0 || len + (size_t)r >= sizeof buf - 1) {
			len += (size_t)r;
			break;
		}
		len += (size_t)r;
	}
	if (close(fd) != 0)
		return -1;
	buf[len] = '\0';
	return (ssize_t)len;
}

/* "Key:   1234 kB" -> bytes, or NAN when absent. */
static double field_kb(const char *key)
{
	size_t kl = strlen(key);

	for (const char *p = buf; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : p) {
		if (strncmp(p, key, kl) == 0 && p[kl] == ':')
			return strtod(p + kl + 1, NULL) * 1024.0;
	}
	return NAN;
}

/* Lines of /proc/self/maps: one per VMA.  The file can be megabytes at the
 * VMA limit, so count while reading. */
static double count_vmas(void)
{
	double lines = 0;
	int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return NAN;
	for (;;) {
		ssize_t r = read(fd, buf, sizeof buf);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			lines = NAN;
			break;
		}
		if (r == 0)
			break;
		for (ssize_t i = 0; i < r; i++)
			lines += buf[i] == '\n';
	}
	if (close(fd) != 0)
		return NAN;
	return lines;
}

double compare_minflt(void)
{
	struct rusage ru;

	if (getrusage(RUSAGE_SELF, &ru) != 0)
		return NAN;
	return (double)ru.ru_minflt;
}

int memsnap_take(struct memsnap *m)
{
	int ok = 0;

	m->rss = m->hwm = m->vsize = m->locked = m->anon = m->vmas = NAN;
	m->minflt = compare_minflt();
	if (slurp("/proc/self/status") >= 0) {
		m->rss = field_kb("VmRSS");
		m->hwm = field_kb("VmHWM");
		m->vsize = field_kb("VmSize");
		m->locked = field_kb("VmLck");
	} else {
		ok = -1;
	}
	if (slurp("/proc/self/smaps_rollup") >= 0)
		m->anon = field_kb("Anonymous");
	m->vmas = count_vmas();
	if (isnan(m->vmas))
		ok = -1;
	return ok;
}

void compare_emit_memory(const struct measure_key *k, const struct memsnap *now,
    const struct memsnap *base)
{
	compare_emit(k, "rss_bytes", now->rss, "bytes", "VmRSS");
	compare_emit(k, "vmlck_bytes", now->locked, "bytes", "VmLck");
	compare_emit(k, "vmhwm_bytes", now->hwm, "bytes", "VmHWM (process peak)");
	compare_emit(k, "vsize_bytes", now->vsize, "bytes", "VmSize");
	compare_emit(k, "anon_bytes", now->anon, "bytes", "smaps_rollup Anonymous");
	compare_emit(k, "vma_count", now->vmas, "count", "lines of /proc/self/maps");
	if (base == NULL)
		return;
	compare_emit(k, "rss_delta_bytes", now->rss - base->rss, "bytes",
	    "VmRSS growth over the workload's baseline");
	compare_emit(k, "vmlck_delta_bytes", now->locked - base->locked, "bytes",
	    "VmLck growth");
	compare_emit(k, "vsize_delta_bytes", now->vsize - base->vsize, "bytes",
	    "VmSize growth");
	compare_emit(k, "vma_delta", now->vmas - base->vmas, "count", "VMA growth");
}
