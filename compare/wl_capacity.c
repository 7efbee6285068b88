/* wl_capacity.c - live 64-byte buffers until the backend fails (or the
 * cap), in a forked child bounded in time, so that a backend that dies at
 * its limit still reports how far it got.  On the way, VMAs and resident
 * bytes at 1k, 2k, 5k, 10k ... live buffers (the "curve" rows): how the
 * mappings grow with live keys. */
#include "compare.h"

#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CAPACITY_SIZE 64
#define CAPACITY_CAP 2000000
#define CURVE_MAX 40

enum capacity_end { END_NONE, END_FAILED, END_CAP, END_TIME };

/* Shared with the child, so a child that dies still tells how far it got. */
struct capacity_state {
	_Atomic size_t count;
	int err;
	int finished;     /* enum capacity_end */
	char call[48];
	double seconds;   /* filling, /proc reads of the curve excluded */
	struct memsnap peak, base;
	size_t ncurve;
	struct {
		size_t live;
		struct memsnap m;
	} curve[CURVE_MAX];
};

/* The next point of the curve after n live buffers: 1, 2, 5 times a power
 * of ten, from 1000. */
static size_t curve_next(size_t n)
{
	size_t p = 1000;

	for (;;) {
		if (p > n)
			return p;
		if (2 * p > n)
			return 2 * p;
		if (5 * p > n)
			return 5 * p;
		p *= 10;
	}
}

static void curve_point(struct capacity_state *st, size_t live)
{
	if (st->ncurve < CURVE_MAX && memsnap_take(&st->curve[st->ncurve].m) == 0)
		st->curve[st->ncurve++].live = live;
}

static void capacity_child(struct capacity_state *st, size_t cap)
{
	void **ptr = compare_mem(cap * sizeof *ptr);
	uint64_t t0 = compare_now_ns(), paused = 0;
	uint64_t bound = (uint64_t)(compare_cfg.capacity_seconds * 1e9);
	size_t i, next = curve_next(0);

	(void)memsnap_take(&st->base);
	for (i = 0; i < cap; i++) {
		compare_fail_call = NULL;
		errno = 0;
		ptr[i] = compare_backend.alloc_closed != NULL
		    ? compare_backend.alloc_closed(CAPACITY_SIZE, (unsigned char)i)
		    : compare_alloc(CAPACITY_SIZE);
		if (ptr[i] == NULL) {
			st->err = errno;
			snprintf(st->call, sizeof st->call, "%s",
			    compare_fail_call ? compare_fail_call : "alloc");
			st->finished = END_FAILED;
			break;
		}
		if (compare_backend.alloc_closed == NULL)
			compare_touch(ptr[i], CAPACITY_SIZE, (unsigned char)i);
		atomic_store_explicit(&st->count, i + 1, memory_order_relaxed);
		if (i + 1 == next) {
			uint64_t c0 = compare_now_ns();

			curve_point(st, i + 1);
			next = curve_next(i + 1);
			paused += compare_now_ns() - c0;
		}
		if ((i & 4095) == 4095 && compare_now_ns() - t0 - paused > bound) {
			st->finished = END_TIME;
			i++;
			break;
		}
	}
	if (st->finished == END_NONE)
		st->finished = END_CAP;
	st->seconds = (double)(compare_now_ns() - t0 - paused) / 1e9;
	(void)memsnap_take(&st->peak);
	/* No cleanup: the process ends and the kernel takes everything. */
	_exit(0);
}

/* vm.max_map_count, or 0 when unreadable. */
static double max_map_count(void)
{
	char buf[32] = "";
	FILE *f = fopen("/proc/sys/vm/max_map_count", "re");

	if (f == NULL)
		return 0;
	if (fgets(buf, sizeof buf, f) == NULL)
		buf[0] = '\0';
	if (fclose(f) != 0)
		return 0;
	return strtod(buf, NULL);
}

/* Rows of how the child ended: the count with its note, the way it ended
 * as bools, the time, memory and VMAs at the peak and per buffer, and the
 * curve. */
static void capacity_emit(const struct measure_key *k, const struct capacity_state *st,
    size_t cap)
{
	const char *cn = compare_backend.capacity_note;
	size_t count = atomic_load(&st->count);
	double maxmaps = max_map_count();
	/* The kernel refuses a mapping once the count reaches the limit; a few
	 * VMAs of slack for the harness's own. */
	int vma_limit = st->finished == END_FAILED && maxmaps > 0 &&
	    st->peak.vmas >= maxmaps - 16;
	char note[320];

	if (st->finished == END_FAILED)
		snprintf(note, sizeof note, "allocation #%zu failed in %s(): %s (%s)%s%s",
		    count + 1, st->call, strerror(st->err),
		    vma_limit ? "at the VMA limit, vm.max_map_count" :
		    "below the VMA limit: memory or address space", cn ? "; " : "", cn ? cn : "");
	else if (st->finished == END_CAP)
		snprintf(note, sizeof note, "reached the cap of %zu%s%s", cap,
		    cn ? "; " : "", cn ? cn : "");
	else
		snprintf(note, sizeof note, "stopped at the %g s time bound%s%s",
		    compare_cfg.capacity_seconds, cn ? "; " : "", cn ? cn : "");
	compare_emit_full(k, "capacity_count", (double)count, "count",
	    "ok", st->finished == END_FAILED ? st->err : 0, note);
	compare_emit(k, "capacity_reached_cap", st->finished == END_CAP, "bool",
	    "1 when the cap was reached without failure");
	compare_emit(k, "capacity_time_bound", st->finished == END_TIME, "bool",
	    "1 when the child stopped at its time bound (neither cap nor failure)");
	compare_emit(k, "capacity_vma_limit", vma_limit, "bool",
	    "1 when the allocation failed with the VMAs at vm.max_map_count");
	compare_emit(k, "capacity_seconds", st->seconds, "s",
	    "time to fill (the curve's /proc reads excluded)");
	compare_emit(k, "capacity_bound_seconds", compare_cfg.capacity_seconds, "s",
	    "the child's time bound");
	compare_emit_memory(k, &st->peak, &st->base);
	if (count > 0) {
		compare_emit(k, "rss_per_buffer_bytes", (st->peak.rss - st->base.rss) / (double)count,
		    "bytes", "VmRSS growth / live buffers at the end");
		compare_emit(k, "vma_per_buffer", (st->peak.vmas - st->base.vmas) / (double)count,
		    "count", "VMA growth / live buffers at the end");
	}
	for (size_t i = 0; i <= st->ncurve; i++) {
		/* The curve's points, then the end as its last point. */
		const struct memsnap *m = i < st->ncurve ? &st->curve[i].m : &st->peak;
		size_t live = i < st->ncurve ? st->curve[i].live : count;
		struct measure_key c = { k->workload, "curve", "live", (double)live };

		if (i == st->ncurve && (live == 0 || (st->ncurve > 0 && st->curve[i - 1].live == live)))
			break;
		compare_emit(&c, "vma_count", m->vmas, "count",
		    "lines of /proc/self/maps with this many live buffers");
		compare_emit(&c, "vma_delta", m->vmas - st->base.vmas, "count",
		    "VMA growth over the child's start");
		compare_emit(&c, "rss_delta_bytes", m->rss - st->base.rss, "bytes",
		    "VmRSS growth over the child's start");
	}
}

static int capacity_run(const struct compare_workload *w)
{
	size_t cap = compare_cfg.param > 0 ? (size_t)compare_cfg.param
	    : compare_cfg.scale == SCALE_TINY ? 20000 : CAPACITY_CAP;
	struct measure_key k = { w->name, "", w->param, CAPACITY_SIZE };
	struct capacity_state *st;
	char note[320];
	uint64_t t0, hard = (uint64_t)((compare_cfg.capacity_seconds + 30) * 1e9);
	int status = 0, killed = 0;
	pid_t pid, waited;

	compare_progress("  capacity: live 64-byte buffers, cap %zu", cap);
	if (compare_prepare(cap * CAPACITY_SIZE, cap, &k) != 0)
		return 0;
	st = mmap(NULL, sizeof *st, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (st == MAP_FAILED) {
		compare_emit_status(&k, "capacity_count", "failed", errno, "mmap of the shared state");
		return -1;
	}
	memset(st, 0, sizeof *st);
	(void)fflush(stdout);
	(void)fflush(stderr);
	t0 = compare_now_ns();
	pid = fork();
	if (pid < 0) {
		compare_emit_status(&k, "capacity_count", "failed", errno, "fork");
		return -1;
	}
	if (pid == 0)
		capacity_child(st, cap);
	for (;;) {
		waited = waitpid(pid, &status, WNOHANG);
		if (waited == pid)
			break;
		if (waited < 0 && errno != EINTR) {
			compare_emit_status(&k, "capacity_count", "failed", errno, "waitpid");
			return -1;
		}
		if (!killed && compare_now_ns() - t0 > hard) {
			if (kill(pid, SIGKILL) != 0)
				compare_progress("  capacity: kill: %s", strerror(errno));
			killed = 1;
		}
		(void)nanosleep(&(struct timespec){ 0, 20 * 1000 * 1000 }, NULL);
	}

	if (st->finished == END_NONE) {
		snprintf(note, sizeof note, "child %s after %zu live buffers",
		    killed ? "killed at the hard time bound" : WIFSIGNALED(status)
		    ? strsignal(WTERMSIG(status)) : "exited early",
		    atomic_load(&st->count));
		compare_emit_full(&k, "capacity_count", (double)atomic_load(&st->count), "count",
		    "failed", 0, note);
	} else {
		capacity_emit(&k, st, cap);
	}
	if (munmap(st, sizeof *st) != 0)
		compare_progress("  capacity: munmap: %s", strerror(errno));
	return 0;
}

COMPARE_WORKLOAD(wl_capacity) = {
	.name = "capacity",
	.what = "live 64-byte buffers until the first failure or the 2,000,000 cap "
	    "(forked child, time-bounded)",
	.param = "size",
	.params = {
		[SCALE_TINY] = COMPARE_PARAMS(64),
		[SCALE_DEFAULT] = COMPARE_PARAMS(64),
		[SCALE_FULL] = COMPARE_PARAMS(64),
	},
	.once = 1,
	COMPARE_HEADLINES(
		{ "capacity (64 B)", "", 64, "capacity_count", 1 },
	),
	.run = capacity_run,
};
