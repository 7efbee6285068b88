/*
 * keyprobe - what the kernel does with many small protected ranges in one
 * mapping: the facts the key arena (tars/src/keyarena.c) is built on.
 * Bare system calls, no tars: each figure is a median of several rounds.
 *
 *   build/tools/keyprobe [rounds]
 *
 * Prints, for a region laid out guard | key | guard | key ... (one page
 * each), the VMA count after keys were written and closed and with some
 * open, for NORESERVE and accounted regions, with and without mlock (whole
 * region, MLOCK_ONFAULT) and memfd_secret backing; and the cost of a read
 * scope (mprotect READ + NONE) on a page of such a region beside two
 * mprotect calls on an isolated page, and the cost of a naive guarded key's
 * life (mmap 3 pages + mprotect + mlock + MADV_DONTDUMP + munmap).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#ifndef MLOCK_ONFAULT
#define MLOCK_ONFAULT 1
#endif

#define BATCH 2000

static size_t ps;

static void
die(const char *what)
{
	fprintf(stderr, "keyprobe: %s: %s\n", what, strerror(errno));
	exit(1);
}

static double
now_ns(void)
{
	struct timespec ts;
	if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) {
		die("clock_gettime");
	}
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int
cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static double
median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static long
vmas(void)
{
	FILE *f = fopen("/proc/self/maps", "r");
	if (f == NULL) {
		die("/proc/self/maps");
	}
	long n = 0;
	int c;
	while ((c = fgetc(f)) != EOF) {
		n += c == '\n';
	}
	(void)fclose(f);
	return n;
}

static void
prot(void *p, size_t len, int pr)
{
	if (mprotect(p, len, pr) != 0) {
		die("mprotect");
	}
}

enum { NORESERVE = 1, LOCKED = 2, SECRET = 4, TOUCHED = 8 };

/* A region of npages, every page PROT_NONE, prepared as `how` says. */
static unsigned char *
region(size_t npages, int how)
{
	size_t len = npages * ps;
	int flags = MAP_PRIVATE | MAP_ANONYMOUS | ((how & NORESERVE) ? MAP_NORESERVE : 0);
	unsigned char *r = mmap(NULL, len, (how & TOUCHED) ? PROT_READ | PROT_WRITE : PROT_NONE,
	    flags, -1, 0);
	if (r == MAP_FAILED) {
		die("mmap region");
	}
	if (how & TOUCHED) {
		r[0] = 1;   /* an anon_vma: VM_ACCOUNT stays on PROT_NONE */
		prot(r, len, PROT_NONE);
	}
	if (how & SECRET) {
		int fd = (int)syscall(SYS_memfd_secret, (unsigned)O_CLOEXEC);
		if (fd < 0 || ftruncate(fd, (off_t)len) != 0) {
			die("memfd_secret");
		}
		if (mmap(r, len, PROT_NONE, MAP_SHARED | MAP_FIXED, fd, 0) == MAP_FAILED) {
			die("mmap secret");
		}
		(void)close(fd);
	}
	if ((how & LOCKED) && syscall(SYS_mlock2, r, len, MLOCK_ONFAULT) != 0) {
		die("mlock2");
	}
	if (madvise(r, len, MADV_DONTDUMP) != 0) {
		die("MADV_DONTDUMP");
	}
	if (!(how & SECRET) && madvise(r, len, MADV_WIPEONFORK) != 0) {
		die("MADV_WIPEONFORK");
	}
	return r;
}

/* The page of key k of a region (keys on odd pages). */
static unsigned char *
key_page(unsigned char *r, size_t k)
{
	return r + (2 * k + 1) * ps;
}

/* Write 32 bytes to every key of a region and close it again. */
static void
write_keys(unsigned char *r, size_t nkeys)
{
	for (size_t k = 0; k < nkeys; k++) {
		unsigned char *p = key_page(r, k);
		prot(p, ps, PROT_READ | PROT_WRITE);
		memset(p, 0x5a, 32);
		prot(p, ps, PROT_NONE);
	}
}

/* Write and close every key (odd pages) of a region: VMAs after, and with
 * `open` keys left readable. */
static void
vma_figures(const char *name, int how, size_t nkeys, size_t open)
{
	long before = vmas();
	unsigned char *r = region(2 * nkeys + 1, how);
	long empty = vmas() - before;
	write_keys(r, nkeys);
	long rest = vmas() - before;
	for (size_t k = 0; k < open; k++) {
		prot(key_page(r, k * (nkeys / open)), ps, PROT_READ);
	}
	long opened = vmas() - before;
	printf("  %-34s %8zu keys: region %ld VMA, written+closed %ld, %zu open %ld\n",
	    name, nkeys, empty, rest, open, opened);
	if (munmap(r, (2 * nkeys + 1) * ps) != 0) {
		die("munmap");
	}
}

/*
 * Median over `rounds` of the mean ns of op(arg, b), b = 0 .. BATCH - 1;
 * -1 as soon as an op fails (returns nonzero).  Inlined into each caller,
 * so that op is a direct call there.
 */
static inline __attribute__((always_inline)) double
median_ns(int rounds, int (*op)(void *arg, size_t b), void *arg)
{
	double t[64];
	for (int i = 0; i < rounds; i++) {
		double t0 = now_ns();
		for (size_t b = 0; b < BATCH; b++) {
			if (op(arg, b) != 0) {
				return -1;
			}
		}
		t[i] = (now_ns() - t0) / BATCH;
	}
	return median(t, rounds);
}

/* A region of written, closed keys; the b-th operation of a batch works
 * on key (b * 7919) % n. */
struct keys {
	unsigned char *r;
	size_t n;
	int fd;   /* /proc/self/mem, for procmem_op */
};

static unsigned char *
batch_key(const struct keys *ks, size_t b)
{
	return key_page(ks->r, (b * 7919) % ks->n);
}

/* A read scope (READ then NONE) on a key of the region. */
static int
scope_op(void *arg, size_t b)
{
	unsigned char *p = batch_key(arg, b);
	prot(p, ps, PROT_READ);
	__asm__ volatile("" : : "r"(*(volatile unsigned char *)p) : "memory");
	prot(p, ps, PROT_NONE);
	return 0;
}

/* A key's life in a region: open RW, write 32 bytes, close; open RW,
 * wipe, close (what a key allocation and its free cost at least). */
static int
life_op(void *arg, size_t b)
{
	unsigned char *p = batch_key(arg, b);
	prot(p, ps, PROT_READ | PROT_WRITE);
	memset(p, 0x5a, 32);
	prot(p, ps, PROT_NONE);
	prot(p, ps, PROT_READ | PROT_WRITE);
	memset(p, 0, 32);
	__asm__ volatile("" : : "r"(p) : "memory");
	prot(p, ps, PROT_NONE);
	return 0;
}

/* Two mprotect calls on the page arg. */
static int
isolated_op(void *arg, size_t b)
{
	unsigned char *p = arg;
	(void)b;
	prot(p, ps, PROT_READ);
	__asm__ volatile("" : : "r"(*(volatile unsigned char *)p) : "memory");
	prot(p, ps, PROT_NONE);
	return 0;
}

/* Two mprotect calls on a page that is a VMA of its own (its flags differ
 * from its guards'): today's key scope, and the 1.1x baseline. */
static double
isolated_cost(int rounds)
{
	unsigned char *m = mmap(NULL, 3 * ps, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED) {
		die("mmap");
	}
	unsigned char *p = m + ps;
	prot(p, ps, PROT_READ | PROT_WRITE);
	p[0] = 1;
	if (mlock(p, ps) != 0 || madvise(p, ps, MADV_DONTDUMP) != 0) {
		die("mlock/madvise");
	}
	prot(p, ps, PROT_NONE);
	double t = median_ns(rounds, isolated_op, p);
	(void)munmap(m, 3 * ps);
	return t;
}

/* A naive guarded key's life: mmap 3 pages, mprotect the middle one RW,
 * mlock, MADV_DONTDUMP, write, munmap. */
static int
naive_op(void *arg, size_t b)
{
	(void)arg, (void)b;
	unsigned char *m = mmap(NULL, 3 * ps, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED) {
		die("mmap");
	}
	prot(m + ps, ps, PROT_READ | PROT_WRITE);
	if (mlock(m + ps, ps) != 0 || madvise(m + ps, ps, MADV_DONTDUMP) != 0) {
		die("mlock/madvise");
	}
	memset(m + ps, 0x5a, 32);
	__asm__ volatile("" : : "r"(m) : "memory");
	if (munmap(m, 3 * ps) != 0) {
		die("munmap");
	}
	return 0;
}

/* A key's life with memfd_secret pages of its own (one descriptor and
 * three VMAs per key), as a key with a mapping of its own has them. */
static int
secret_key_op(void *arg, size_t b)
{
	(void)arg, (void)b;
	unsigned char *m = mmap(NULL, 3 * ps, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	int fd = (int)syscall(SYS_memfd_secret, (unsigned)O_CLOEXEC);
	if (m == MAP_FAILED || fd < 0 || ftruncate(fd, (off_t)ps) != 0 ||
	    mmap(m + ps, ps, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd,
	    0) == MAP_FAILED || close(fd) != 0) {
		die("memfd_secret key");
	}
	memset(m + ps, 0x5a, 32);
	prot(m + ps, ps, PROT_NONE);
	prot(m + ps, ps, PROT_READ | PROT_WRITE);
	memset(m + ps, 0, 32);
	__asm__ volatile("" : : "r"(m) : "memory");
	if (munmap(m, 3 * ps) != 0) {
		die("munmap");
	}
	return 0;
}

/* Wiping a closed key without opening it: a write through /proc/self/mem
 * (FOLL_FORCE), then MADV_DONTNEED where the region is not locked. */
static int
procmem_op(void *arg, size_t b)
{
	static const unsigned char zero[32];
	const struct keys *ks = arg;
	return pwrite(ks->fd, zero, sizeof(zero), (off_t)(uintptr_t)batch_key(ks, b)) ==
	    (ssize_t)sizeof(zero) ? 0 : -1;
}

static double
procmem_cost(struct keys *ks, int rounds)
{
	ks->fd = open("/proc/self/mem", O_RDWR | O_CLOEXEC);
	if (ks->fd < 0) {
		return -1;
	}
	double t = median_ns(rounds, procmem_op, ks);
	(void)close(ks->fd);
	return t;
}

static int
dontneed_op(void *arg, size_t b)
{
	return madvise(batch_key(arg, b), ps, MADV_DONTNEED);
}

int
main(int argc, char **argv)
{
	int rounds = argc > 1 ? atoi(argv[1]) : 9;
	if (rounds < 1 || rounds > 64) {
		rounds = 9;
	}
	ps = (size_t)sysconf(_SC_PAGESIZE);
	printf("VMAs (keys on odd pages, every page PROT_NONE at rest):\n");
	vma_figures("NORESERVE", NORESERVE, 8000, 1000);
	vma_figures("accounted, untouched", 0, 8000, 1000);
	vma_figures("accounted, touched", TOUCHED, 8000, 1000);
	vma_figures("NORESERVE+mlock(ONFAULT)", NORESERVE | LOCKED, 8000, 1000);
	vma_figures("memfd_secret", SECRET, 1000, 100);

	const size_t nkeys = 8000;
	static const struct {
		const char *name;
		int how;
	} kinds[] = {
		{"NORESERVE", NORESERVE},
		{"accounted, touched", TOUCHED},
		{"NORESERVE+mlock(ONFAULT)", NORESERVE | LOCKED},
		{"memfd_secret", SECRET},
	};
	double iso = isolated_cost(rounds);
	double naive = median_ns(rounds, naive_op, NULL);
	printf("\nmedian ns over %d rounds of %d:\n", rounds, BATCH);
	printf("  isolated page, mprotect READ+NONE       %8.0f\n", iso);
	printf("  naive guarded key life                  %8.0f\n", naive);
	double sk = median_ns(rounds, secret_key_op, NULL);
	printf("  memfd_secret key of its own, life       %8.0f (%.2fx naive)\n", sk, sk / naive);
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		struct keys ks = {region(2 * nkeys + 1, kinds[i].how), nkeys, -1};
		write_keys(ks.r, nkeys);
		double sc = median_ns(rounds, scope_op, &ks);
		double lc = median_ns(rounds, life_op, &ks);
		double pm = procmem_cost(&ks, rounds);
		double dn = median_ns(rounds, dontneed_op, &ks);
		printf("  %-26s scope %6.0f (%.2fx iso)  life(4 mprotect) %6.0f (%.2fx naive)"
		    "  procmem wipe %6.0f  DONTNEED %6.0f\n", kinds[i].name, sc, sc / iso, lc,
		    lc / naive, pm, dn);
		(void)munmap(ks.r, (2 * nkeys + 1) * ps);
	}
	return 0;
}
