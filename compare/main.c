/*
 * main.c - command line, the JSON document, and the malloc-owner check.
 *
 *   compare-<backend> WORKLOAD [--scale tiny|default|full] [--param N]
 *                              [--reps N] [--rep-seconds S] [--seed N]
 *                              [--capacity-seconds S]
 *   compare-<backend> --info
 *
 * WORKLOAD is pair, fill, churn, session, threads, protect or capacity.
 * The document goes to stdout; progress to stderr.
 */
#include "compare.h"

#include <dlfcn.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

struct compare_config compare_cfg = {
	.scale = SCALE_DEFAULT,
	.reps = -1,           /* -1: the scale's default */
	.rep_seconds = -1,
	.capacity_seconds = -1,
	.param = -1,
	.seed = 0x7a25,
};

_Thread_local const char *compare_fail_call;

/* stdout gets a static buffer so that writing the document does not take
 * memory from the backend under test. */
static char outbuf[1 << 16];
static int nrows;

static void json_str(const char *s)
{
	putchar('"');
	for (; s && *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c < 0x20)
			printf("\\u%04x", c);
		else
			putchar(c);
	}
	putchar('"');
}

static void json_num(double v)
{
	if (isnan(v) || isinf(v))
		fputs("null", stdout);
	else
		printf("%.10g", v);
}

static const char *errno_name(int err)
{
	const char *n;

	if (err == 0)
		return "";
	n = strerrorname_np(err);
	return n ? n : "E?";
}

void compare_emit_full(const struct measure_key *k, const char *metric, double value,
    const char *unit, const char *status, int err, const char *note)
{
	fputs(nrows++ ? ",\n    " : "\n    ", stdout);
	fputs("{\"workload\": ", stdout);
	json_str(k->workload);
	fputs(", \"variant\": ", stdout);
	json_str(k->variant ? k->variant : "");
	fputs(", \"param\": ", stdout);
	json_str(k->param ? k->param : "");
	fputs(", \"param_value\": ", stdout);
	json_num(k->param_value);
	fputs(", \"metric\": ", stdout);
	json_str(metric);
	fputs(", \"value\": ", stdout);
	json_num(value);
	fputs(", \"unit\": ", stdout);
	json_str(unit);
	fputs(", \"status\": ", stdout);
	json_str(status);
	fputs(", \"errno\": ", stdout);
	json_str(errno_name(err));
	fputs(", \"note\": ", stdout);
	json_str(note ? note : "");
	putchar('}');
}

void compare_emit(const struct measure_key *k, const char *metric, double value,
    const char *unit, const char *note)
{
	compare_emit_full(k, metric, value, unit, "ok", 0, note);
}

void compare_emit_status(const struct measure_key *k, const char *metric,
    const char *status, int err, const char *note)
{
	compare_emit_full(k, metric, NAN, "", status, err, note);
}

/* Which shared object really defines the malloc that calls bind to. */
static const char *malloc_owner(void)
{
	static char path[512];
	Dl_info info;
	void *sym = dlsym(RTLD_DEFAULT, "malloc");

	if (sym == NULL || dladdr(sym, &info) == 0 || info.dli_fname == NULL)
		return "unknown";
	snprintf(path, sizeof path, "%s", info.dli_fname);
	return path;
}

static const struct {
	const char *name;
	int (*fn)(void);
} workloads[] = {
	{ "pair", wl_pair },
	{ "fill", wl_fill },
	{ "churn", wl_churn },
	{ "session", wl_session },
	{ "threads", wl_threads },
	{ "protect", wl_protect },
	{ "capacity", wl_capacity },
};

static void usage(const char *argv0)
{
	fprintf(stderr,
	    "usage: %s WORKLOAD [--scale tiny|default|full] [--param N] [--reps N]\n"
	    "          [--rep-seconds S] [--capacity-seconds S] [--seed N]\n"
	    "       %s --info\n"
	    "WORKLOAD: pair fill churn session threads protect capacity\n",
	    argv0, argv0);
	exit(2);
}

static double num_arg(const char *argv0, const char *s)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno != 0 || end == s || *end != '\0')
		usage(argv0);
	return v;
}

int main(int argc, char **argv)
{
	const char *wl = NULL;
	int (*fn)(void) = NULL;
	char version[256] = "", note[256] = "";
	const char *owner;
	int owner_ok, init_rc, init_err = 0, rc = 0;
	struct rlimit rl;
	uint64_t t0;

	if (setvbuf(stdout, outbuf, _IOFBF, sizeof outbuf) != 0) {
		perror("compare: setvbuf");
		return 2;
	}
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (strcmp(a, "--info") == 0) {
			wl = "info";
		} else if (strcmp(a, "--scale") == 0 && i + 1 < argc) {
			const char *s = argv[++i];

			if (strcmp(s, "tiny") == 0)
				compare_cfg.scale = SCALE_TINY;
			else if (strcmp(s, "default") == 0)
				compare_cfg.scale = SCALE_DEFAULT;
			else if (strcmp(s, "full") == 0)
				compare_cfg.scale = SCALE_FULL;
			else
				usage(argv[0]);
		} else if (strcmp(a, "--param") == 0 && i + 1 < argc) {
			compare_cfg.param = (long)num_arg(argv[0], argv[++i]);
		} else if (strcmp(a, "--reps") == 0 && i + 1 < argc) {
			compare_cfg.reps = (int)num_arg(argv[0], argv[++i]);
		} else if (strcmp(a, "--rep-seconds") == 0 && i + 1 < argc) {
			compare_cfg.rep_seconds = num_arg(argv[0], argv[++i]);
		} else if (strcmp(a, "--capacity-seconds") == 0 && i + 1 < argc) {
			compare_cfg.capacity_seconds = num_arg(argv[0], argv[++i]);
		} else if (strcmp(a, "--seed") == 0 && i + 1 < argc) {
			compare_cfg.seed = (uint64_t)num_arg(argv[0], argv[++i]);
		} else if (a[0] != '-' && wl == NULL) {
			wl = a;
		} else {
			usage(argv[0]);
		}
	}
	if (wl == NULL)
		usage(argv[0]);
	/* Defaults per scale: tiny is a smoke test; default fits `make report`
	 * in a few minutes on 2 cores; full takes longer for steadier medians. */
	if (compare_cfg.reps < 0)
		compare_cfg.reps = compare_cfg.scale == SCALE_TINY ? 3
		    : compare_cfg.scale == SCALE_FULL ? 9 : 7;
	if (compare_cfg.rep_seconds < 0)
		compare_cfg.rep_seconds = compare_cfg.scale == SCALE_TINY ? 0.005
		    : compare_cfg.scale == SCALE_FULL ? 0.15 : 0.08;
	if (compare_cfg.capacity_seconds < 0)
		compare_cfg.capacity_seconds = compare_cfg.scale == SCALE_FULL ? 120 : 30;
	if (compare_cfg.reps < 1 || compare_cfg.reps > 64)
		compare_cfg.reps = compare_cfg.reps < 1 ? 1 : 64;
	for (size_t i = 0; i < sizeof workloads / sizeof workloads[0]; i++)
		if (strcmp(wl, workloads[i].name) == 0)
			fn = workloads[i].fn;
	if (fn == NULL && strcmp(wl, "info") != 0)
		usage(argv[0]);

	t0 = compare_now_ns();
	errno = 0;
	init_rc = compare_backend.init ? compare_backend.init(note, sizeof note) : 0;
	if (init_rc != 0)
		init_err = errno;
	compare_backend.version(version, sizeof version);
	owner = malloc_owner();
	owner_ok = strstr(owner, compare_backend.malloc_owner) != NULL;
	if (getrlimit(RLIMIT_MEMLOCK, &rl) != 0)
		rl.rlim_cur = 0;

	printf("{\n  \"backend\": ");
	json_str(compare_backend.name);
	printf(",\n  \"workload\": ");
	json_str(wl);
	printf(",\n  \"scale\": \"%s\"", compare_cfg.scale == SCALE_TINY ? "tiny" :
	    compare_cfg.scale == SCALE_FULL ? "full" : "default");
	printf(",\n  \"library\": ");
	json_str(version);
	printf(",\n  \"malloc_owner\": ");
	json_str(owner);
	printf(",\n  \"malloc_owner_expected\": ");
	json_str(compare_backend.malloc_owner);
	printf(",\n  \"malloc_owner_ok\": %s", owner_ok ? "true" : "false");
	printf(",\n  \"page_size\": %ld", sysconf(_SC_PAGESIZE));
	printf(",\n  \"memlock_limit\": ");
	json_num(rl.rlim_cur == RLIM_INFINITY ? -1.0 : (double)rl.rlim_cur);
	printf(",\n  \"euid\": %ld", (long)geteuid());
	printf(",\n  \"timer_overhead_ns\": ");
	json_num(compare_timer_overhead_ns());
	printf(",\n  \"reps\": %d, \"rep_seconds\": ", compare_cfg.reps);
	json_num(compare_cfg.rep_seconds);
	printf(",\n  \"capacity_note\": ");
	json_str(compare_backend.capacity_note ? compare_backend.capacity_note : "");
	printf(",\n  \"init\": {\"status\": \"%s\", \"errno\": ",
	    init_rc == 0 ? "ok" : "failed");
	json_str(errno_name(init_err));
	printf(", \"note\": ");
	json_str(note);
	printf("},\n  \"measurements\": [");

	if (!owner_ok) {
		fprintf(stderr, "compare-%s: malloc is owned by %s, expected %s: mislinked\n",
		    compare_backend.name, owner, compare_backend.malloc_owner);
		rc = 1;
	} else if (init_rc != 0) {
		fprintf(stderr, "compare-%s: init failed: %s (%s)\n",
		    compare_backend.name, strerror(init_err), note);
		rc = 1;
	} else if (fn != NULL) {
		rc = fn() == 0 ? 0 : 1;
	}

	printf("\n  ],\n  \"elapsed_s\": ");
	json_num((double)(compare_now_ns() - t0) / 1e9);
	printf(",\n  \"status\": \"%s\"\n}\n", rc == 0 ? "ok" : "failed");
	if (fflush(stdout) != 0) {
		perror("compare: stdout");
		return 2;
	}
	return rc;
}
