/*
 * probe.c - what the experiments observe with: reads that may fault,
 * forked children, and /proc (status, maps, mem).  /proc is read with
 * open/read into harness memory: stdio would allocate through the backend
 * under test.
 */
#include "sec.h"

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- reads that may fault ----------------------------------------------- */

static sigjmp_buf read_env;
static volatile sig_atomic_t read_armed;

static void on_fault(int sig)
{
	if (read_armed) {
		read_armed = 0;
		siglongjmp(read_env, 1);
	}
	/* A fault outside a probe: die of it, as without the handler. */
	signal(sig, SIG_DFL);
	raise(sig);
}

static void arm_handlers(void)
{
	static int done;
	struct sigaction sa;

	if (done)
		return;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_fault;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_NODEFER;
	if (sigaction(SIGSEGV, &sa, NULL) != 0 || sigaction(SIGBUS, &sa, NULL) != 0) {
		fprintf(stderr, "sec: sigaction: %s\n", strerror(errno));
		exit(2);
	}
	done = 1;
}

int sec_read(void *dst, const void *src, size_t len)
{
	arm_handlers();
	if (sigsetjmp(read_env, 1) != 0)
		return -1;
	read_armed = 1;
	memcpy(dst, src, len);
	read_armed = 0;
	/* The copy is the experiment: keep the compiler from dropping it. */
	__asm__ volatile("" : : "r"(dst) : "memory");
	return 0;
}

/* ---- children -------------------------------------------------------------- */

int sec_child_run(void (*fn)(void *), void *arg, unsigned secs, struct sec_child *st)
{
	int status;
	pid_t pid, w;

	memset(st, 0, sizeof *st);
	fflush(stdout);
	pid = fork();
	if (pid < 0) {
		st->exited = 1;
		st->code = -errno;
		return -1;
	}
	if (pid == 0) {
		alarm(secs);
		fn(arg);
		_exit(0);
	}
	do
		w = waitpid(pid, &status, 0);
	while (w < 0 && errno == EINTR);
	if (w < 0) {
		st->exited = 1;
		st->code = -errno;
		return -1;
	}
	if (WIFEXITED(status)) {
		st->exited = 1;
		st->code = WEXITSTATUS(status);
		return st->code == 0 ? 0 : -1;
	}
	st->signaled = 1;
	st->sig = WTERMSIG(status);
	return -1;
}

const char *sec_child_desc(const struct sec_child *st, char *out, size_t len)
{
	if (st->signaled && st->sig == SIGALRM)
		snprintf(out, len, "timeout");
	else if (st->signaled)
		snprintf(out, len, "SIG%s", sigabbrev_np(st->sig) ? sigabbrev_np(st->sig) : "?");
	else if (st->code < 0)
		snprintf(out, len, "fork/wait failed: %s", strerror(-st->code));
	else
		snprintf(out, len, "exit %d", st->code);
	return out;
}

/* ---- /proc ------------------------------------------------------------------ */

/* The whole of a /proc file into harness memory (NUL-terminated); its
 * length, or -1.  *buf and *cap grow as needed. */
static ssize_t slurp(const char *path, char **buf, size_t *cap)
{
	size_t len = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -1;
	if (*buf == NULL) {
		*cap = 1 << 16;
		*buf = sec_mem(*cap);
	}
	for (;;) {
		ssize_t n;

		if (len + 1 >= *cap) {
			char *bigger = sec_mem(*cap * 2);

			memcpy(bigger, *buf, len);
			sec_mem_free(*buf, *cap);
			*buf = bigger;
			*cap *= 2;
		}
		n = read(fd, *buf + len, *cap - len - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int e = errno;

			close(fd);
			errno = e;
			return -1;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	if (close(fd) != 0)
		return -1;
	(*buf)[len] = '\0';
	return (ssize_t)len;
}

static char *status_buf;
static size_t status_cap;

/* The value text of "field:" in /proc/self/status, or NULL. */
static const char *status_field(const char *field)
{
	size_t fl = strlen(field);

	if (slurp("/proc/self/status", &status_buf, &status_cap) < 0)
		return NULL;
	for (const char *line = status_buf; *line; ) {
		const char *nl = strchr(line, '\n');

		if (strncmp(line, field, fl) == 0 && line[fl] == ':') {
			const char *v = line + fl + 1;

			while (*v == ' ' || *v == '\t')
				v++;
			return v;
		}
		if (nl == NULL)
			break;
		line = nl + 1;
	}
	return NULL;
}

long sec_status_kb(const char *field)
{
	const char *v = status_field(field);

	return v == NULL ? -1 : strtol(v, NULL, 10);
}

int sec_status_str(const char *field, char *out, size_t len)
{
	const char *v = status_field(field);
	size_t n = 0;

	if (v == NULL || len == 0)
		return -1;
	while (v[n] && v[n] != '\n' && n + 1 < len) {
		out[n] = v[n];
		n++;
	}
	out[n] = '\0';
	return 0;
}

static char *maps_buf;
static size_t maps_cap;

int sec_maps_read(struct sec_maps *maps)
{
	if (slurp("/proc/self/maps", &maps_buf, &maps_cap) < 0)
		return -1;
	maps->n = 0;
	for (char *line = maps_buf; *line; ) {
		char *nl = strchr(line, '\n');
		struct sec_map *m;
		char *end;

		if (maps->n == maps->cap) {
			size_t cap = maps->cap ? maps->cap * 2 : 1024;
			struct sec_map *bigger = sec_mem(cap * sizeof *bigger);

			if (maps->n)
				memcpy(bigger, maps->m, maps->n * sizeof *bigger);
			sec_mem_free(maps->m, maps->cap * sizeof *bigger);
			maps->m = bigger;
			maps->cap = cap;
		}
		m = &maps->m[maps->n];
		m->lo = (uintptr_t)strtoull(line, &end, 16);
		if (*end != '-')
			return errno = EINVAL, -1;
		m->hi = (uintptr_t)strtoull(end + 1, &end, 16);
		if (*end != ' ')
			return errno = EINVAL, -1;
		memcpy(m->perm, end + 1, 4);
		m->perm[4] = '\0';
		m->special = 0;
		if (nl != NULL)
			*nl = '\0';
		m->special = strstr(line, "[vvar") != NULL || strstr(line, "[vsyscall]") != NULL ||
		    strstr(line, "[vdso]") != NULL;
		maps->n++;
		if (nl == NULL)
			break;
		line = nl + 1;
	}
	return 0;
}

void sec_maps_free(struct sec_maps *maps)
{
	sec_mem_free(maps->m, maps->cap * sizeof *maps->m);
	maps->m = NULL;
	maps->n = maps->cap = 0;
}

const struct sec_map *sec_maps_find(const struct sec_maps *maps, uintptr_t addr)
{
	size_t lo = 0, hi = maps->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (addr < maps->m[mid].lo)
			hi = mid;
		else if (addr >= maps->m[mid].hi)
			lo = mid + 1;
		else
			return &maps->m[mid];
	}
	return NULL;
}

void sec_pages_classify(const uint64_t *pages, size_t n, struct sec_pagestates *out)
{
	struct sec_maps maps = {0};

	memset(out, 0, sizeof *out);
	if (sec_maps_read(&maps) != 0) {
		fprintf(stderr, "sec: /proc/self/maps: %s\n", strerror(errno));
		exit(2);
	}
	for (size_t i = 0; i < n; i++) {
		const struct sec_map *m = sec_maps_find(&maps, (uintptr_t)pages[i]);

		if (m == NULL)
			out->unmapped++;
		else if (m->perm[0] == 'r' && m->perm[1] == 'w')
			out->rw++;
		else if (m->perm[0] == '-' && m->perm[1] == '-' && m->perm[2] == '-') {
			unsigned char v = 0;

			out->none++;
			if (mincore((void *)(uintptr_t)pages[i], sec_cfg.page, &v) == 0 && (v & 1))
				out->none_resident++;
		}
		else
			out->other++;
	}
	sec_maps_free(&maps);
}

/* ---- scanning the process for the secret ------------------------------------- */

#define SCAN_CHUNK ((size_t)1 << 20)

static int skipped(uintptr_t lo, uintptr_t hi, const uintptr_t *skip, size_t nskip)
{
	for (size_t i = 0; i < nskip; i += 2)
		if (lo < skip[i + 1] && skip[i] < hi)
			return 1;
	return 0;
}

/* Count secret occurrences in buf[0, len), whose first `carry` bytes are
 * the tail of the previous page (so that an occurrence straddling two pages
 * is found); a match lying wholly in that tail was counted before. */
static void count_secret(const unsigned char *buf, size_t len, size_t carry,
    struct sec_scan *out)
{
	const unsigned char *s = sec_secret();

	for (size_t w = 0; w + SEC_WINDOW <= SEC_SECRET_LEN; w += SEC_WINDOW) {
		const unsigned char *p = buf, *end = buf + len;

		while ((p = memmem(p, (size_t)(end - p), s + w, SEC_WINDOW)) != NULL) {
			/* A full occurrence never lies wholly in the tail
			 * (shorter than the secret): it is counted once. */
			if ((size_t)(p - buf) + SEC_WINDOW > carry)
				out->windows++;
			if (w == 0 && (size_t)(end - p) >= SEC_SECRET_LEN &&
			    memcmp(p, s, SEC_SECRET_LEN) == 0)
				out->full++;
			p++;
		}
	}
}

int sec_scan_secret(struct sec_scan *out)
{
	static unsigned char *buf, *vec;
	const size_t carry_max = SEC_SECRET_LEN - 1;
	const size_t page = sec_cfg.page;
	struct sec_maps maps = {0};
	uintptr_t skip[6];
	int fd;

	memset(out, 0, sizeof *out);
	if (buf == NULL) {
		buf = sec_mem(SCAN_CHUNK + SEC_SECRET_LEN);
		vec = sec_mem(SCAN_CHUNK / page + 1);
	}
	/* The reference copy of the secret and the scanner's own buffer
	 * (which holds whatever it read last) are not findings. */
	skip[0] = (uintptr_t)sec_secret();
	skip[1] = skip[0] + page;
	skip[2] = (uintptr_t)buf;
	skip[3] = skip[2] + SCAN_CHUNK + SEC_SECRET_LEN;
	skip[4] = (uintptr_t)vec;
	skip[5] = skip[4] + SCAN_CHUNK / page + 1;
	if (sec_maps_read(&maps) != 0)
		return -1;
	fd = open("/proc/self/mem", O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		sec_maps_free(&maps);
		return -1;
	}
	for (size_t i = 0; i < maps.n; i++) {
		const struct sec_map *m = &maps.m[i];
		size_t carry = 0;

		if (m->special || skipped(m->lo, m->hi, skip, 6))
			continue;
		for (uintptr_t a = m->lo; a < m->hi; a += SCAN_CHUNK) {
			size_t want = m->hi - a < SCAN_CHUNK ? m->hi - a : SCAN_CHUNK;
			size_t npages = want / page;

			/* Only resident pages hold bytes (there is no swap to
			 * hold others: tars mlocks, and the machine has none);
			 * reading the rest would fault in zero pages. */
			if (mincore((void *)a, want, vec) != 0) {
				carry = 0;
				continue;
			}
			for (size_t p = 0; p < npages; p++) {
				ssize_t n;

				if (!(vec[p] & 1)) {
					carry = 0;
					continue;
				}
				n = pread(fd, buf + carry, page, (off_t)(a + p * page));
				if (n != (ssize_t)page) {
					/* memfd_secret pages refuse (EIO): not
					 * readable by this route, which is the point. */
					out->unreadable += page;
					carry = 0;
					continue;
				}
				out->bytes += page;
				count_secret(buf, carry + page, carry, out);
				memmove(buf, buf + carry + page - carry_max, carry_max);
				carry = carry_max;
			}
		}
	}
	if (close(fd) != 0) {
		sec_maps_free(&maps);
		return -1;
	}
	sec_maps_free(&maps);
	return 0;
}

uint64_t sec_stat(const char *name, int *ok)
{
	uint64_t v = 0;

	*ok = sec_backend.stat != NULL && sec_backend.stat(name, &v) == 0;
	return v;
}
