#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <sys/mman.h>
#include <unistd.h>

#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>

void
tars_run_child(void (*fn)(void *), void *arg, struct child_result *out)
{
	int fds[2];
	memset(out, 0, sizeof(*out));
	if (pipe(fds) != 0) {
		cr_assert_fail("pipe: %s", strerror(errno));
	}
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0) {
		cr_assert_fail("fork: %s", strerror(errno));
	}
	if (pid == 0) {
		struct rlimit nocore = {0, 0};
		(void)setrlimit(RLIMIT_CORE, &nocore);
		close(fds[0]);
		if (dup2(fds[1], STDERR_FILENO) < 0) {
			_exit(99);
		}
		close(fds[1]);
		fn(arg);
		_exit(0);
	}
	close(fds[1]);
	size_t used = 0;
	for (;;) {
		ssize_t n = read(fds[0], out->err + used, sizeof(out->err) - 1 - used);
		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n <= 0) {
			break;
		}
		used += (size_t)n;
		if (used == sizeof(out->err) - 1) {
			char sink[512];
			while (read(fds[0], sink, sizeof(sink)) > 0) {
			}
			break;
		}
	}
	out->err[used] = '\0';
	close(fds[0]);
	int status;
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR) {
			cr_assert_fail("waitpid: %s", strerror(errno));
		}
	}
	if (WIFSIGNALED(status)) {
		out->signaled = 1;
		out->sig = WTERMSIG(status);
	} else {
		out->exit_code = WEXITSTATUS(status);
	}
}

int
tars_smaps_flags(const void *addr, char *flags, size_t len)
{
	FILE *f = fopen("/proc/self/smaps", "r");
	if (f == NULL) {
		return -1;
	}
	char line[512];
	int inside = 0, found = -1;
	unsigned long a = (unsigned long)addr;
	while (fgets(line, sizeof(line), f) != NULL) {
		unsigned long lo, hi;
		if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && strchr(line, '-') < strchr(line, ' ')) {
			inside = (a >= lo && a < hi);
			continue;
		}
		if (inside && strncmp(line, "VmFlags:", 8) == 0) {
			snprintf(flags, len, "%s", line + 8);
			found = 0;
			break;
		}
	}
	fclose(f);
	return found;
}

int
tars_has_vmflag(const void *addr, const char *flag)
{
	char flags[256];
	if (tars_smaps_flags(addr, flags, sizeof(flags)) != 0) {
		return 0;
	}
	char want[8];
	snprintf(want, sizeof(want), " %s", flag);
	char *p = flags;
	size_t n = strlen(want);
	while ((p = strstr(p, want)) != NULL) {
		if (p[n] == ' ' || p[n] == '\n' || p[n] == '\0') {
			return 1;
		}
		p += n;
	}
	return 0;
}

void
no_env(void)
{
	unsetenv("TARS_OPTIONS");
}

struct tars_stats
snap(void)
{
	struct tars_stats s;
	tars_stats_get(&s);
	return s;
}

size_t
page_size(void)
{
	return (size_t)sysconf(_SC_PAGESIZE);
}

size_t
hide(size_t n)
{
	volatile size_t v = n;
	return v;
}

volatile unsigned char *
launder(void *p)
{
	__asm__ volatile("" : "+r"(p));
	return p;
}

int
all_bytes(const void *p, size_t len, unsigned char c)
{
	const unsigned char *b = p;
	for (size_t i = 0; i < len; i++) {
		if (b[i] != c) {
			return 0;
		}
	}
	return 1;
}

size_t
count_substr(const char *hay, const char *needle)
{
	size_t n = 0;
	for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle)) {
		n++;
	}
	return n;
}

static unsigned char
seeded_byte(size_t i, unsigned seed)
{
	return (unsigned char)(seed * 131u + i * 7u + (i >> 8));
}

void
fill_seeded(void *p, size_t len, unsigned seed)
{
	unsigned char *b = p;
	for (size_t i = 0; i < len; i++) {
		b[i] = seeded_byte(i, seed);
	}
}

int
check_seeded(const void *p, size_t len, unsigned seed)
{
	const unsigned char *b = p;
	for (size_t i = 0; i < len; i++) {
		if (b[i] != seeded_byte(i, seed)) {
			return 0;
		}
	}
	return 1;
}

ssize_t
peek(const volatile void *addr, void *out, size_t len)
{
	int fd = open("/proc/self/mem", O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		return -1;
	}
	ssize_t n = pread(fd, out, len, (off_t)(uintptr_t)addr);
	int saved = errno;
	(void)close(fd);
	errno = saved;
	return n;
}

void
deny_syscall(long nr, int arg, unsigned int val, int err)
{
#if defined(__x86_64__)
	const unsigned int arch = AUDIT_ARCH_X86_64;
#elif defined(__aarch64__)
	const unsigned int arch = AUDIT_ARCH_AARCH64;
#else
	fprintf(stderr, "deny_syscall: unsupported architecture\n");
	_exit(1);
#endif
	/* Without an argument test, compare the number with itself. */
	unsigned int off = arg < 0 ? (unsigned int)offsetof(struct seccomp_data, nr) :
	    (unsigned int)offsetof(struct seccomp_data, args[arg]);
	if (arg < 0) {
		val = (unsigned int)nr;
	}
	struct sock_filter code[] = {
		/* 0 */ BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
		/* 1 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, arch, 0, 5),
		/* 2 */ BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		/* 3 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned int)nr, 0, 3),
		/* 4 */ BPF_STMT(BPF_LD | BPF_W | BPF_ABS, off),
		/* 5 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, val, 0, 1),
		/* 6 */ BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ((unsigned int)err & SECCOMP_RET_DATA)),
		/* 7 */ BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = {
		.len = (unsigned short)(sizeof(code) / sizeof(code[0])),
		.filter = code,
	};
	CHILD_CHECK(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0);
	CHILD_CHECK(prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) == 0);
}

size_t
count_vmas(void)
{
	FILE *f = fopen("/proc/self/maps", "r");
	CHILD_CHECK(f != NULL);
	size_t n = 0;
	int c;
	while ((c = getc(f)) != EOF) {
		n += c == '\n';
	}
	fclose(f);
	return n;
}

void
vma_fill(struct vma_filler *f, size_t left)
{
	size_t max = 65530;
	FILE *mf = fopen("/proc/sys/vm/max_map_count", "r");
	if (mf != NULL) {
		CHILD_CHECK(fscanf(mf, "%zu", &max) == 1);
		fclose(mf);
	}
	size_t ps = page_size();
	if (f->base == NULL) {   /* else: split on where the last fill stopped */
		f->pages = max + 8;
		f->split = 0;
		f->base = mmap(NULL, f->pages * ps, PROT_NONE,
		    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		CHILD_CHECK(f->base != MAP_FAILED);
	}
	/* Each READ page between two NONE ones adds two VMAs, until the
	 * kernel refuses (ENOMEM): then none is left. */
	for (size_t i = 2 * f->split + 1; i < f->pages; i += 2) {
		if (mprotect(f->base + i * ps, ps, PROT_READ) != 0) {
			CHILD_CHECK(errno == ENOMEM);
			break;
		}
		f->split++;
	}
	CHILD_CHECK(f->split > 1000);
	vma_release(f, (left + 1) / 2);
}

void
vma_release(struct vma_filler *f, size_t n)
{
	size_t ps = page_size();
	for (; n > 0 && f->split > 0; n--) {
		f->split--;
		CHILD_CHECK(mprotect(f->base + (2 * f->split + 1) * ps, ps, PROT_NONE) == 0);
	}
}

/* Permissions ("r--p", ...) of the mapping holding addr, from
 * /proc/self/maps: 0, or -1 if no mapping holds it. */
int
perms_of(const volatile void *addr, char perms[5])
{
	FILE *f = fopen("/proc/self/maps", "r");
	if (f == NULL) {
		return -1;
	}
	uintptr_t a = (uintptr_t)addr;
	char line[512];
	int found = -1;
	while (fgets(line, sizeof(line), f) != NULL) {
		unsigned long lo, hi;
		char p[5];
		if (sscanf(line, "%lx-%lx %4s", &lo, &hi, p) == 3 && a >= lo && a < hi) {
			memcpy(perms, p, 5);
			found = 0;
			break;
		}
	}
	(void)fclose(f);
	return found;
}

const unsigned char pattern[32] = "0123456789abcdefghijklmnopqrstu";

tars_key *
pattern_key(void)
{
	tars_buf *b = tars_buf_from(pattern, sizeof(pattern));
	if (b == NULL) {
		return NULL;
	}
	tars_key *k = tars_key_new(b);
	if (k == NULL) {
		tars_buf_free(b);
	}
	return k;
}

const volatile unsigned char *
key_address(tars_key *k)
{
	const unsigned char *p = tars_key_read_begin(k);
	if (p != NULL) {
		tars_key_read_end(k);
	}
	return p;
}

int
peeks_pattern(const volatile void *addr)
{
	unsigned char seen[sizeof(pattern)];
	ssize_t n = peek(addr, seen, sizeof(seen));
	return n > 0 && memcmp(seen, pattern, (size_t)n) == 0;
}
