/*
 * Secrets stay out of reach: core dumps (dump=0), fork children (fork=1
 * reads zeros, fork=2 faults), /proc/self/mem (secretmem=1), and memory
 * that was freed (no copy left anywhere in the process).
 *
 * The tests never hold a plain copy of a secret outside tars memory: the
 * bytes come from getrandom(2) straight into tars memory, and the copy the
 * scanner searches for is masked (each byte XOR MASK), so that the scanner
 * cannot find its own needle.  Where a parent must know a child's secret it
 * gets it through a pipe, written by the kernel from the tars pages.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <elf.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/random.h>
#include <sys/single_threaded.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "tars.h"
#include "tars_internal.h"
#include "util.h"

#define NOOPT __attribute__((noinline, optimize(0)))
#define MASK 0xa5
#define SECRET_LEN 32
#define CORE_MAX_BYTES ((rlim_t)1 << 30)

/* ASan and TSan map terabytes of shadow memory: no core dumps under them. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SANITIZED_SHADOW 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define SANITIZED_SHADOW 1
#endif
#endif
#ifndef SANITIZED_SHADOW
#define SANITIZED_SHADOW 0
#endif

/* A secret: its home in tars memory and the masked copy to search for. */
struct secret {
	volatile uint8_t *where;
	uint8_t masked[SECRET_LEN];
};

/* Fill tars memory with fresh random bytes and remember them, masked.
 * Byte by byte at -O0: no register or stack copy of the plain bytes. */
static NOOPT void
secret_make(struct secret *s, void *where)
{
	s->where = where;
	size_t got = 0;
	while (got < SECRET_LEN) {
		ssize_t n = getrandom((uint8_t *)where + got, SECRET_LEN - got, 0);
		cr_assert(n > 0 || errno == EINTR);
		got += n > 0 ? (size_t)n : 0;
	}
	for (size_t i = 0; i < SECRET_LEN; i++) {
		s->masked[i] = (uint8_t)(s->where[i] ^ MASK);
	}
}

/* Occurrences of the (unmasked) needle in hay. */
static NOOPT size_t
count_in(const uint8_t *hay, size_t len, const uint8_t *masked)
{
	size_t found = 0;
	uint8_t first = (uint8_t)(masked[0] ^ MASK);
	for (size_t i = 0; i + SECRET_LEN <= len; i++) {
		if (hay[i] != first) {
			continue;
		}
		size_t j = 1;
		while (j < SECRET_LEN && (uint8_t)(hay[i + j] ^ MASK) == masked[j]) {
			j++;
		}
		found += j == SECRET_LEN;
	}
	return found;
}

/*
 * Occurrences of the secret in every mapping of this process, read through
 * /proc/self/mem (so PROT_NONE pages, e.g. tars's page cache, count too).
 * Huge mappings (sanitizer shadow, reservations) are skipped: reading them
 * would fault in gigabytes of zero pages.
 */
static size_t
scan_process(const uint8_t *masked)
{
	FILE *maps = fopen("/proc/self/maps", "r");
	cr_assert_not_null(maps);
	int fd = open("/proc/self/mem", O_RDONLY | O_CLOEXEC);
	cr_assert(fd >= 0);
	const size_t win = 1 << 20, over = SECRET_LEN - 1;
	uint8_t *buf = malloc(win + over);
	cr_assert_not_null(buf);
	size_t found = 0;
	char line[512];
	while (fgets(line, sizeof(line), maps) != NULL) {
		unsigned long lo, hi;
		if (sscanf(line, "%lx-%lx", &lo, &hi) != 2) {
			continue;
		}
		if (strstr(line, "[vvar") != NULL || strstr(line, "[vsyscall]") != NULL ||
		    hi - lo > (256ul << 20)) {
			continue;
		}
		size_t carry = 0;
		for (unsigned long a = lo; a < hi;) {
			size_t want = hi - a < win ? hi - a : win;
			ssize_t n = pread(fd, buf + carry, want, (off_t)a);
			if (n <= 0) {
				break;
			}
			found += count_in(buf, carry + (size_t)n, masked);
			size_t keep = carry + (size_t)n < over ? carry + (size_t)n : over;
			memmove(buf, buf + carry + (size_t)n - keep, keep);
			carry = keep;
			a += (unsigned long)n;
		}
	}
	free(buf);
	close(fd);
	fclose(maps);
	return found;
}

/* ==== freed memory keeps no copy ======================================== */

static void
check_gone_after(void *block, void (*release)(void *), struct secret *s)
{
	cr_assert_geq(scan_process(s->masked), 1, "the scanner cannot see the secret");
	uint8_t page[4096];
	uintptr_t pg = (uintptr_t)s->where & ~(uintptr_t)4095;
	release(block);
	cr_assert_eq(scan_process(s->masked), 0, "a copy of the secret survived the free");
	/* The page where it lived: unreadable, or no trace of it. */
	ssize_t n = peek((void *)pg, page, sizeof(page));
	if (n > 0) {
		cr_assert_eq(count_in(page, (size_t)n, s->masked), 0);
	}
}

static void
release_free(void *p)
{
	tars_free(p);
}

Test(secrets, freed_chunk_keeps_no_copy)
{
	struct secret s;
	void *keep = tars_malloc(SECRET_LEN);   /* the page stays in use */
	void *p = tars_malloc(SECRET_LEN);
	cr_assert(keep != NULL && p != NULL);
	secret_make(&s, p);
	check_gone_after(p, release_free, &s);
	tars_free(keep);
}

Test(secrets, freed_chunk_keeps_no_copy_with_junk_0)
{
	cr_assert_eq(tars_option_set("junk", 0), 0);
	struct secret s;
	void *keep = tars_malloc(40);
	void *p = tars_malloc(40);
	cr_assert(keep != NULL && p != NULL);
	secret_make(&s, p);
	check_gone_after(p, release_free, &s);
	tars_free(keep);
}

Test(secrets, freed_chunk_page_in_the_cache_keeps_no_copy)
{
	/* The only block of its page: the page goes to the cache, PROT_NONE;
	 * /proc/self/mem still reads it. */
	struct secret s;
	void *p[64];
	for (int i = 0; i < 64; i++) {
		p[i] = tars_malloc(1000);
		cr_assert_not_null(p[i]);
	}
	secret_make(&s, p[17]);
	for (int i = 0; i < 64; i++) {
		if (i != 17) {
			tars_free(p[i]);
		}
	}
	check_gone_after(p[17], release_free, &s);
}

Test(secrets, freed_large_block_keeps_no_copy)
{
	struct secret s;
	uint8_t *p = tars_malloc(100000);
	cr_assert_not_null(p);
	secret_make(&s, p + 50000);
	check_gone_after(p, release_free, &s);
}

Test(secrets, freed_key_keeps_no_copy)
{
	struct secret s;
	uint8_t *p = tars_malloc_key(SECRET_LEN);
	cr_assert_not_null(p);
	secret_make(&s, p);
	cr_assert_eq(tars_protect_none(p), 0);   /* freed while closed */
	check_gone_after(p, release_free, &s);
}

Test(secrets, realloc_leaves_one_copy_and_free_none)
{
	struct secret s;
	uint8_t *p = tars_malloc(SECRET_LEN);
	cr_assert_not_null(p);
	secret_make(&s, p);
	uint8_t *q = tars_realloc(p, 3000);   /* chunk -> large */
	cr_assert_not_null(q);
	cr_assert_eq(scan_process(s.masked), 1, "the old block was not wiped");
	s.where = q;
	uint8_t *r = tars_realloc(q, 100);    /* large -> chunk */
	cr_assert_not_null(r);
	cr_assert_eq(scan_process(s.masked), 1, "the old block was not wiped");
	s.where = r;
	check_gone_after(r, release_free, &s);
}

Test(secrets, realloc_key_leaves_one_copy_and_free_none)
{
	struct secret s;
	uint8_t *p = tars_malloc_key(SECRET_LEN);
	cr_assert_not_null(p);
	secret_make(&s, p);
	cr_assert_eq(tars_protect_none(p), 0);
	uint8_t *q = tars_realloc_key(p, 10000);
	cr_assert_not_null(q);
	cr_assert_eq(scan_process(s.masked), 1, "the old key was not wiped");
	s.where = q;
	check_gone_after(q, release_free, &s);
}

static void
release_buf(void *b)
{
	tars_buf_free(b);
}

Test(secrets, freed_buf_keeps_no_copy)
{
	struct secret s;
	tars_buf *keep = tars_buf_new(SECRET_LEN);
	tars_buf *b = tars_buf_new(SECRET_LEN);
	cr_assert(keep != NULL && b != NULL);
	secret_make(&s, tars_buf_data(b));
	check_gone_after(b, release_buf, &s);
	tars_buf_free(keep);
}

static void
release_key(void *k)
{
	tars_key_free(k);
}

static NOOPT int
masked_from(const void *data, size_t len, void *arg)
{
	struct secret *s = arg;
	s->where = (volatile uint8_t *)(uintptr_t)data;
	for (size_t i = 0; i < len && i < SECRET_LEN; i++) {
		s->masked[i] = (uint8_t)(s->where[i] ^ MASK);
	}
	return 0;
}

Test(secrets, freed_key_container_keeps_no_copy)
{
	struct secret s;
	tars_key *k = tars_key_new_random(SECRET_LEN);
	cr_assert_not_null(k);
	cr_assert_eq(tars_key_read_with(k, masked_from, &s), 0);
	/* The buffer the key was made from is gone already. */
	cr_assert_eq(scan_process(s.masked), 1);
	check_gone_after(k, release_key, &s);
}

/*
 * The same in a process that never had a second thread.  Criterion's worker
 * has had threads, so glibc leaves __libc_single_threaded at 0 in it and in
 * its fork children, and tars takes its general paths; a single-threaded
 * program takes the leaf fast paths of tars_malloc/tars_free (chunk.h)
 * instead, which must wipe as well.  The fork child really has one thread.
 */
static NOOPT void
single_threaded_frees(void *arg)
{
	(void)arg;
	__libc_single_threaded = 1;
	static const size_t sizes[] = {16, 48, 1000, 2048};
	/* junk=1 wipes with the free junk, junk=0 with zeros: both on the
	 * fast path. */
	for (long junk = 1; junk >= 0; junk--) {
		CHILD_CHECK(tars_option_set("junk", junk) == 0);
		for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
			struct secret s;
			void *keep = tars_malloc(sizes[k]);   /* the page stays in use */
			void *p = tars_malloc(sizes[k]);
			CHILD_CHECK(keep != NULL && p != NULL);
			secret_make(&s, p);
			CHILD_CHECK(scan_process(s.masked) >= 1);
			tars_free(p);
			size_t left = scan_process(s.masked);
			if (left != 0) {
				fprintf(stderr, "junk=%ld size %zu: %zu copies survived the free\n",
				    junk, sizes[k], left);
				_exit(1);
			}
			unsigned char seen[2048];
			CHILD_CHECK(peek(p, seen, sizes[k]) == (ssize_t)sizes[k]);
			CHILD_CHECK(all_bytes(seen, sizes[k], junk ? 0xdf : 0));
			tars_free(keep);
		}
	}
	CHILD_CHECK(tars_option_set("junk", 1) == 0);
	struct secret s;
	tars_buf *keep = tars_buf_new(SECRET_LEN);
	tars_buf *b = tars_buf_new(SECRET_LEN);
	CHILD_CHECK(keep != NULL && b != NULL);
	secret_make(&s, tars_buf_data(b));
	CHILD_CHECK(scan_process(s.masked) >= 1);
	tars_buf_free(b);
	CHILD_CHECK(scan_process(s.masked) == 0);
	tars_buf_free(keep);
}

Test(secrets, freed_chunks_keep_no_copy_single_threaded)
{
	EXPECT_EXIT0(single_threaded_frees, NULL);
}

/* ==== core dumps ======================================================== */

enum { SEC_BUF, SEC_KEY, SEC_CHUNK, SEC_LARGE, SEC_RAWKEY, NSEC };
static const char *const sec_name[NSEC] = {
	"tars_buf", "tars_key", "chunk", "large block", "raw key",
};

/*
 * The target: holds NSEC random secrets (the key pages readable: a read
 * scope open, the raw key PROT_READ), sends them to the parent through
 * `out` (the kernel copies them from the tars pages), then waits on `in`.
 */
static NOOPT void
core_target(long dump, int out, int in)
{
	/* Note: read(2) below is bound lazily, after the secrets exist: the
	 * dynamic linker's trampoline saves every vector register on the
	 * stack.  A library copy that leaves a secret in a vector register
	 * (memcpy) shows up here as a stack copy in the core. */
	char go;
	CHILD_CHECK(tars_option_set("dump", dump) == 0);
	tars_buf *b = tars_buf_new_random(SECRET_LEN);
	tars_key *k = tars_key_new_random(SECRET_LEN);
	uint8_t *c = tars_malloc(SECRET_LEN);
	uint8_t *l = tars_malloc(100000);
	uint8_t *rk = tars_malloc_key(SECRET_LEN);
	CHILD_CHECK(b && k && c && l && rk);
	CHILD_CHECK(getrandom(c, SECRET_LEN, 0) == SECRET_LEN);
	CHILD_CHECK(getrandom(l + 7777, SECRET_LEN, 0) == SECRET_LEN);
	CHILD_CHECK(getrandom(rk, SECRET_LEN, 0) == SECRET_LEN);
	CHILD_CHECK(tars_protect_read(rk) == 0);
	const void *kd = tars_key_read_begin(k);
	CHILD_CHECK(kd != NULL);
	const void *src[NSEC] = {tars_buf_data(b), kd, c, l + 7777, rk};
	for (int i = 0; i < NSEC; i++) {
		CHILD_CHECK(write(out, src[i], SECRET_LEN) == SECRET_LEN);
	}
	(void)!read(in, &go, 1);
	_exit(0);
}

/* Where in the dumped process a secret was found (for the failure log). */
static void
report_in_core(const uint8_t *img, size_t len, const uint8_t *masked, const char *name)
{
	const Elf64_Ehdr *eh = (const Elf64_Ehdr *)(const void *)img;
	for (size_t i = 0; i + SECRET_LEN <= len; i++) {
		if (count_in(img + i, SECRET_LEN, masked) == 0) {
			continue;
		}
		unsigned long va = 0;
		for (unsigned n = 0; n < eh->e_phnum; n++) {
			const Elf64_Phdr *ph = (const Elf64_Phdr *)(const void *)
			    (img + eh->e_phoff + (size_t)n * eh->e_phentsize);
			if (ph->p_type == PT_LOAD && i >= ph->p_offset &&
			    i < ph->p_offset + ph->p_filesz) {
				va = ph->p_vaddr + (i - ph->p_offset);
			}
		}
		cr_log_warn("%s secret at core offset %zu, address %#lx", name, i, va);
	}
}

static int
run_quiet(char *const argv[])
{
	pid_t pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0) {
		/* A core file never needs more than this; a runaway dump (of a
		 * sanitized process's shadow memory, say) must not fill the
		 * disk. */
		struct rlimit fsize = {CORE_MAX_BYTES, CORE_MAX_BYTES};
		(void)setrlimit(RLIMIT_FSIZE, &fsize);
		int null = open("/dev/null", O_RDWR);
		dup2(null, STDIN_FILENO);
		dup2(null, STDOUT_FILENO);
		dup2(null, STDERR_FILENO);
		execvp(argv[0], argv);
		_exit(127);
	}
	int st;
	cr_assert(waitpid(pid, &st, 0) == pid);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static int
have_gdb(void)
{
	char *argv[] = {"gdb", "--version", NULL};
	return run_quiet(argv) == 0;
}

/* Dump a target holding the secrets; count each secret in the core. */
static void
dump_and_count(long dump, size_t counts[NSEC])
{
#if SANITIZED_SHADOW
	cr_skip_test("a sanitized process's core holds terabytes of shadow memory");
#endif
	if (!have_gdb()) {
		cr_skip_test("gdb is not installed");
	}
	int to_parent[2], to_child[2];
	cr_assert(pipe(to_parent) == 0 && pipe(to_child) == 0);
	fflush(NULL);
	pid_t pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0) {
		close(to_parent[0]);
		close(to_child[1]);
		core_target(dump, to_parent[1], to_child[0]);
	}
	close(to_parent[1]);
	close(to_child[0]);
	/* Only the masked secrets are kept in the parent. */
	uint8_t masked[NSEC][SECRET_LEN];
	for (int i = 0; i < NSEC; i++) {
		size_t got = 0;
		while (got < SECRET_LEN) {
			ssize_t n = read(to_parent[0], masked[i] + got, SECRET_LEN - got);
			cr_assert(n > 0, "the target died before sending its secrets");
			got += (size_t)n;
		}
		for (int j = 0; j < SECRET_LEN; j++) {
			masked[i][j] ^= MASK;
		}
	}
	char dir[] = "/tmp/tars-core-XXXXXX";
	cr_assert_not_null(mkdtemp(dir));
	char core[64], pidarg[32], cmd[96];
	snprintf(core, sizeof(core), "%s/core", dir);
	snprintf(pidarg, sizeof(pidarg), "%d", (int)pid);
	snprintf(cmd, sizeof(cmd), "gcore %s", core);
	char *argv[] = {"gdb", "-nx", "-batch", "-p", pidarg, "-ex", cmd, NULL};
	int rc = run_quiet(argv);
	/* Let the target go, whatever happened. */
	(void)!write(to_child[1], "x", 1);
	close(to_child[1]);
	close(to_parent[0]);
	int st;
	cr_assert(waitpid(pid, &st, 0) == pid);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "target failed (status %d)", st);

	/* Remove the file at once: the open descriptor keeps it readable,
	 * and a failed assertion below cannot leave it behind. */
	int fd = open(core, O_RDONLY);
	(void)unlink(core);
	(void)rmdir(dir);
	cr_assert(fd >= 0, "gdb (exit %d) wrote no core file", rc);
	struct stat sb;
	cr_assert(fstat(fd, &sb) == 0 && sb.st_size > 0);
	uint8_t *img = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	cr_assert(img != MAP_FAILED);
	for (int i = 0; i < NSEC; i++) {
		counts[i] = count_in(img, (size_t)sb.st_size, masked[i]);
		if (counts[i] > 0 && dump == 0) {
			report_in_core(img, (size_t)sb.st_size, masked[i], sec_name[i]);
		}
	}
	munmap(img, (size_t)sb.st_size);
	close(fd);
}

Test(secrets, core_dump_excludes_secrets_with_dump_0, .timeout = 120)
{
	size_t counts[NSEC];
	dump_and_count(0, counts);
	for (int i = 0; i < NSEC; i++) {
		cr_expect_eq(counts[i], 0, "the %s secret is in the core dump (%zu times)",
		    sec_name[i], counts[i]);
	}
}

Test(secrets, core_dump_includes_secrets_with_dump_1, .timeout = 120)
{
	/* Proves that the dump_0 test could see the secrets at all. */
	size_t counts[NSEC];
	dump_and_count(1, counts);
	for (int i = 0; i < NSEC; i++) {
		cr_expect_geq(counts[i], 1, "the %s secret is missing from the core dump",
		    sec_name[i]);
	}
}

/* ==== fork ============================================================== */

struct inherited {
	volatile uint8_t *chunk, *large, *key;
	tars_buf *buf;
	volatile uint8_t *buf_data;
	int which;   /* for the fault tests: 0 chunk, 1 large, 2 key, 3 buf */
};

static void
make_inherited(struct inherited *h, long fork_policy)
{
	cr_assert_eq(tars_option_set("fork", fork_policy), 0);
	h->chunk = tars_malloc(SECRET_LEN);
	h->large = tars_malloc(20000);
	h->key = tars_malloc_key(SECRET_LEN);
	h->buf = tars_buf_new(SECRET_LEN);
	cr_assert(h->chunk && h->large && h->key && h->buf);
	h->buf_data = tars_buf_data(h->buf);
	memset((void *)h->chunk, 0x11, SECRET_LEN);
	memset((void *)h->large, 0x22, 20000);
	memset((void *)h->key, 0x33, SECRET_LEN);
	memset((void *)h->buf_data, 0x44, SECRET_LEN);
}

static int
zeros(const volatile uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (p[i] != 0) {
			return 0;
		}
	}
	return 1;
}

static void
child_reads_zeros(void *arg)
{
	struct inherited *h = arg;
	CHILD_CHECK(zeros(h->chunk, SECRET_LEN));
	CHILD_CHECK(zeros(h->large, 20000));
	CHILD_CHECK(zeros(h->key, SECRET_LEN));
	CHILD_CHECK(zeros(h->buf_data, SECRET_LEN));
	/* The inherited raw blocks can be freed (the wiped canaries are not
	 * held against them), and the allocator works on. */
	tars_free((void *)h->chunk);
	tars_free((void *)h->large);
	tars_free((void *)h->key);
	void *p[100];
	for (int i = 0; i < 100; i++) {
		p[i] = tars_malloc((size_t)i * 40);
		CHILD_CHECK(p[i] != NULL);
	}
	for (int i = 0; i < 100; i++) {
		tars_free(p[i]);
	}
}

Test(secrets, fork_1_child_reads_zeros)
{
	struct inherited h;
	make_inherited(&h, 1);
	EXPECT_EXIT0(child_reads_zeros, &h);
	/* The parent keeps its secrets. */
	cr_assert_eq(h.chunk[0], 0x11);
	cr_assert_eq(h.large[19999], 0x22);
	cr_assert_eq(h.key[0], 0x33);
	cr_assert_eq(h.buf_data[0], 0x44);
}

static NOOPT void
child_reads(void *arg)
{
	struct inherited *h = arg;
	const volatile uint8_t *p[4] = {h->chunk, h->large, h->key, h->buf_data};
	uint8_t c = p[h->which][0];
	_exit(c == 0 ? 3 : 4);
}

Test(secrets, fork_2_child_faults_on_a_chunk)
{
	struct inherited h;
	make_inherited(&h, 2);
	h.which = 0;
	EXPECT_FAULT(child_reads, &h);
}

Test(secrets, fork_2_child_faults_on_a_large_block)
{
	struct inherited h;
	make_inherited(&h, 2);
	h.which = 1;
	EXPECT_FAULT(child_reads, &h);
}

Test(secrets, fork_2_child_faults_on_a_key)
{
	struct inherited h;
	make_inherited(&h, 2);
	h.which = 2;
	EXPECT_FAULT(child_reads, &h);
}

Test(secrets, fork_2_child_faults_on_a_buf)
{
	struct inherited h;
	make_inherited(&h, 2);
	h.which = 3;
	EXPECT_FAULT(child_reads, &h);
}

Test(secrets, fork_0_child_inherits)
{
	/* The control: without a policy the child sees the bytes. */
	struct inherited h;
	make_inherited(&h, 0);
	h.which = 0;
	struct child_result r;
	tars_run_child(child_reads, &h, &r);
	cr_assert(!r.signaled && r.exit_code == 4, "child %d/%d: %s", r.signaled, r.sig,
	    r.err);
}

struct holes {
	void *large[8];
	void *chunk[8];
};

static void
child_allocates_over_holes(void *arg)
{
	struct holes *h = arg;
	/* Small mappings made in the child may land in the holes the
	 * DONTFORK data pages left; inherited and new blocks must still be
	 * told apart. */
	void *z[64];
	for (int i = 0; i < 64; i++) {
		z[i] = tars_malloc(i % 2 ? 0 : (size_t)i * 60);
		CHILD_CHECK(z[i] != NULL);
	}
	void *k = tars_malloc_key(100);
	CHILD_CHECK(k != NULL);
	for (int i = 0; i < 64; i++) {
		tars_free(z[i]);
	}
	for (int i = 0; i < 8; i++) {
		tars_free(h->large[i]);
		tars_free(h->chunk[i]);
	}
	tars_free(k);
}

Test(secrets, fork_2_child_allocates_and_frees)
{
	cr_assert_eq(tars_option_set("fork", 2), 0);
	struct holes h;
	for (int i = 0; i < 8; i++) {
		h.large[i] = tars_malloc(3000);   /* one data page each */
		h.chunk[i] = tars_malloc(2000);
		cr_assert(h.large[i] != NULL && h.chunk[i] != NULL);
	}
	EXPECT_EXIT0(child_allocates_over_holes, &h);
}

/* ==== /proc/self/mem and memfd_secret ==================================== */

static int
have_memfd_secret(void)
{
	long fd = syscall(447, 0);   /* SYS_memfd_secret on x86-64 */
	if (fd < 0) {
		return 0;
	}
	close((int)fd);
	return 1;
}

Test(secrets, proc_mem_cannot_read_a_secretmem_key)
{
	if (!have_memfd_secret()) {
		cr_skip_test("memfd_secret(2) is not available");
	}
	cr_assert_eq(tars_option_set("secretmem", 1), 0);
	uint8_t *k = tars_malloc_key(64);
	cr_assert_not_null(k);
	struct tars_stats st;
	tars_stats_get(&st);
	cr_assert_geq(st.secretmem_pages, 1, "the key is not backed by memfd_secret");
	memset(k, 0x5c, 64);
	uint8_t out[64];
	errno = 0;
	ssize_t n = peek(k, out, sizeof(out));
	cr_assert_eq(n, -1, "/proc/self/mem read %zd bytes of a secretmem key", n);
	cr_assert(errno == EIO || errno == EFAULT, "errno %d (%s)", errno, strerror(errno));
	/* Closed, it is still unreadable; the owner still reads it open. */
	cr_assert_eq(tars_protect_none(k), 0);
	cr_assert_eq(peek(k, out, sizeof(out)), -1);
	cr_assert_eq(tars_protect_read(k), 0);
	cr_assert_eq(k[63], 0x5c);
	tars_free(k);
}

Test(secrets, proc_mem_cannot_read_a_secretmem_key_container)
{
	if (!have_memfd_secret()) {
		cr_skip_test("memfd_secret(2) is not available");
	}
	cr_assert_eq(tars_option_set("secretmem", 1), 0);
	tars_key *k = tars_key_new_random(SECRET_LEN);
	cr_assert_not_null(k);
	const uint8_t *d = tars_key_read_begin(k);
	cr_assert_not_null(d);
	uint8_t out[SECRET_LEN];
	errno = 0;
	cr_assert_eq(peek(d, out, sizeof(out)), -1);
	cr_assert(errno == EIO || errno == EFAULT, "errno %d", errno);
	tars_key_read_end(k);
	tars_key_free(k);
}

Test(secrets, proc_mem_reads_a_plain_key)
{
	/* The control: an anonymous key is readable through /proc/self/mem,
	 * even while PROT_NONE. */
	cr_assert_eq(tars_option_set("secretmem", 0), 0);
	uint8_t *k = tars_malloc_key(64);
	cr_assert_not_null(k);
	memset(k, 0x5c, 64);
	uint8_t out[64];
	cr_assert_eq(peek(k, out, sizeof(out)), 64);
	cr_assert_eq(memcmp(out, k, 64), 0);
	cr_assert_eq(tars_protect_none(k), 0);
	memset(out, 0, sizeof(out));
	cr_assert_eq(peek(k, out, sizeof(out)), 64);
	cr_assert_eq(out[0], 0x5c);
	cr_assert_eq(tars_protect_write(k), 0);
	tars_free(k);
}

static void
secretmem_fork_child(void *arg)
{
	volatile uint8_t *k = arg;
	uint8_t c = k[0];
	_exit(c == 0 ? 3 : 4);
}

Test(secrets, secretmem_key_is_not_inherited)
{
	if (!have_memfd_secret()) {
		cr_skip_test("memfd_secret(2) is not available");
	}
	cr_assert_eq(tars_option_set("secretmem", 1), 0);
	cr_assert_eq(tars_option_set("fork", 1), 0);   /* even with wipe-on-fork */
	uint8_t *k = tars_malloc_key(64);
	cr_assert_not_null(k);
	memset(k, 0x5c, 64);
	EXPECT_FAULT(secretmem_fork_child, k);
	tars_free(k);
}
