/* wl_capacity.c - live 64-byte buffers until the backend fails (or the
 * cap), in a forked child bounded in time, so that a backend that dies at
 * its limit still reports how far it got. */
#include "compare.h"

#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CAPACITY_SIZE 64
#define CAPACITY_CAP 2000000

/* Shared with the child, so a child that dies still tells how far it got. */
struct capacity_state {
	_Atomic size_t count;
	int err;
	int finished;     /* 1 failed, 2 reached the cap, 3 hit its time bound */
	char call[48];
	double seconds;
	struct memsnap peak, base;
};

static void capacity_child(struct capacity_state *st, size_t cap)
{
	void **ptr = compare_mem(cap * sizeof *ptr);
	uint64_t t0 = compare_now_ns();
	uint64_t bound = (uint64_t)(compare_cfg.capacity_seconds * 1e9);
	size_t i;

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
			st->finished = 1;
			break;
		}
		if (compare_backend.alloc_closed == NULL)
			compare_touch(ptr[i], CAPACITY_SIZE, (unsigned char)i);
		atomic_store_explicit(&st->count, i + 1, memory_order_relaxed);
		if ((i & 4095) == 4095 && compare_now_ns() - t0 > bound) {
			st->finished = 3;
			i++;
			break;
		}
	}
	if (st->finished == 0)
		st->finished = 2;
	st->seconds = (double)(compare_now_ns() - t0) / 1e9;
	(void)memsnap_take(&st->peak);
	/* No cleanup: the process ends and the kernel takes everything. */
	_exit(0);
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

	if (st->finished == 0) {
		snprintf(note, sizeof note, "child %s after %zu live buffers",
		    killed ? "killed at the hard time bound" : WIFSIGNALED(status)
		    ? strsignal(WTERMSIG(status)) : "exited early",
		    atomic_load(&st->count));
		compare_emit_full(&k, "capacity_count", (double)atomic_load(&st->count), "count",
		    "failed", 0, note);
	} else {
		const char *cn = compare_backend.capacity_note;

		if (st->finished == 1)
			snprintf(note, sizeof note, "allocation #%zu failed in %s(): %s%s%s",
			    atomic_load(&st->count) + 1, st->call, strerror(st->err),
			    cn ? "; " : "", cn ? cn : "");
		else if (st->finished == 2)
			snprintf(note, sizeof note, "reached the cap of %zu%s%s", cap,
			    cn ? "; " : "", cn ? cn : "");
		else
			snprintf(note, sizeof note, "stopped at the %g s time bound%s%s",
			    compare_cfg.capacity_seconds, cn ? "; " : "", cn ? cn : "");
		compare_emit_full(&k, "capacity_count", (double)atomic_load(&st->count), "count",
		    "ok", st->finished == 1 ? st->err : 0, note);
		compare_emit(&k, "capacity_reached_cap", st->finished == 2, "bool",
		    "1 when the cap was reached without failure");
		compare_emit(&k, "capacity_seconds", st->seconds, "s", "time to fill");
		compare_emit_memory(&k, &st->peak, &st->base);
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
