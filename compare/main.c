/*
 * main.c - command line, --list, the document, and the malloc-owner check.
 *
 *   compare-<backend> WORKLOAD [--scale tiny|default|full] [--param N]
 *                              [--reps N] [--rep-seconds S] [--seed N]
 *                              [--capacity-seconds S] [--variant V[,V]]
 *   compare-<backend> --info   the document without measurements
 *   compare-<backend> --list   the backend and every workload, as JSON
 *
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

/* The workloads linked into this binary (COMPARE_WORKLOAD). */
extern const struct compare_workload *const __start_compare_workloads[];
extern const struct compare_workload *const __stop_compare_workloads[];

static const char *const scale_names[SCALE_COUNT] = { "tiny", "default", "full" };

/* stdout gets a static buffer so that writing the document does not take
 * memory from the backend under test. */
static char outbuf[1 << 16];

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

static const struct compare_workload *find_workload(const char *name)
{
	for (const struct compare_workload *const *w = __start_compare_workloads;
	    w < __stop_compare_workloads; w++)
		if (strcmp((*w)->name, name) == 0)
			return *w;
	return NULL;
}

static void usage(const char *argv0)
{
	fprintf(stderr,
	    "usage: %s WORKLOAD [--scale tiny|default|full] [--param N] [--reps N]\n"
	    "          [--rep-seconds S] [--capacity-seconds S] [--seed N]\n"
	    "          [--variant V[,V...]]\n"
	    "       %s --info | --list\n"
	    "WORKLOAD:", argv0, argv0);
	for (const struct compare_workload *const *w = __start_compare_workloads;
	    w < __stop_compare_workloads; w++)
		fprintf(stderr, " %s", (*w)->name);
	fputc('\n', stderr);
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

/* The "backend_info" object: what the backend is, for --list and for every
 * document. */
static void backend_info(const char *version)
{
	const struct compare_backend *b = &compare_backend;

	json_key("backend_info");
	fputs("{\"name\": ", stdout);
	json_str(b->name);
	fputs(", \"what\": ", stdout);
	json_str(b->what);
	fputs(", \"library\": ", stdout);
	json_str(version);
	fputs(", \"malloc_owner_expected\": ", stdout);
	json_str(b->malloc_owner);
	fputs(", \"protect\": ", stdout);
	json_bool(b->protect_none != NULL);
	fputs(", \"counts_syscalls\": ", stdout);
	json_bool(b->syscalls != NULL);
	fputs(", \"tls_heap\": ", stdout);
	json_str(b->tls_heap == TLS_OWN ? "own" : "routed");
	fputs(", \"tls_note\": ", stdout);
	json_str(b->tls_note ? b->tls_note : "");
	fputs(", \"capacity_note\": ", stdout);
	json_str(b->capacity_note ? b->capacity_note : "");
	fputs(", \"keys\": ", stdout);
	json_bool(b->key_new != NULL || b->protect_none != NULL);
	if (b->describe_json)
		b->describe_json(stdout);
	fputc('}', stdout);
}

static void list_workloads(void)
{
	json_key("workloads");
	fputc('[', stdout);
	for (const struct compare_workload *const *wp = __start_compare_workloads;
	    wp < __stop_compare_workloads; wp++) {
		const struct compare_workload *w = *wp;

		fputs(wp == __start_compare_workloads ? "\n    " : ",\n    ", stdout);
		fputs("{\"name\": ", stdout);
		json_str(w->name);
		fputs(", \"what\": ", stdout);
		json_str(w->what);
		fputs(", \"param\": ", stdout);
		json_str(w->param);
		fputs(", \"per_param\": ", stdout);
		json_bool(w->per_param);
		fputs(", \"once\": ", stdout);
		json_bool(w->once);
		fputs(", \"reference\": ", stdout);
		json_str(w->reference ? w->reference : "tars");
		fputs(", \"params\": {", stdout);
		for (int s = 0; s < SCALE_COUNT; s++) {
			printf("%s\"%s\": [", s ? ", " : "", scale_names[s]);
			for (size_t i = 0; i < w->params[s].n; i++)
				printf("%s%ld", i ? ", " : "", w->params[s].v[i]);
			putchar(']');
		}
		fputs("}, \"headlines\": [", stdout);
		for (size_t i = 0; i < w->nheadlines; i++) {
			const struct compare_headline *h = &w->headlines[i];

			fputs(i ? ", {\"label\": " : "{\"label\": ", stdout);
			json_str(h->label);
			fputs(", \"variant\": ", stdout);
			json_str(h->variant);
			fputs(", \"param_value\": ", stdout);
			json_num(h->param_value);
			fputs(", \"metric\": ", stdout);
			json_str(h->metric);
			fputs(", \"better\": ", stdout);
			json_str(h->higher_is_better ? "high" : "low");
			fputc('}', stdout);
		}
		fputs("]}", stdout);
	}
	fputs("\n  ]", stdout);
}

int main(int argc, char **argv)
{
	const char *wl = NULL;
	const struct compare_workload *w = NULL;
	char version[256] = "", note[256] = "";
	const char *owner;
	int owner_ok, init_rc = 0, init_err = 0, rc = 0, list = 0;
	struct rlimit rl;
	uint64_t t0;

	if (setvbuf(stdout, outbuf, _IOFBF, sizeof outbuf) != 0) {
		perror("compare: setvbuf");
		return 2;
	}
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (strcmp(a, "--info") == 0 && wl == NULL) {
			wl = "info";
		} else if (strcmp(a, "--list") == 0 && wl == NULL) {
			wl = "list";
			list = 1;
		} else if (strcmp(a, "--scale") == 0 && i + 1 < argc) {
			const char *s = argv[++i];
			int found = 0;

			for (int j = 0; j < SCALE_COUNT; j++)
				if (strcmp(s, scale_names[j]) == 0) {
					compare_cfg.scale = (enum compare_scale)j;
					found = 1;
				}
			if (!found)
				usage(argv[0]);
		} else if (strcmp(a, "--param") == 0 && i + 1 < argc) {
			compare_cfg.param = (long)num_arg(argv[0], argv[++i]);
		} else if (strcmp(a, "--reps") == 0 && i + 1 < argc) {
			compare_cfg.reps = (int)num_arg(argv[0], argv[++i]);
		} else if (strcmp(a, "--rep-seconds") == 0 && i + 1 < argc) {
			compare_cfg.rep_seconds = num_arg(argv[0], argv[++i]);
		} else if (strcmp(a, "--capacity-seconds") == 0 && i + 1 < argc) {
			compare_cfg.capacity_seconds = num_arg(argv[0], argv[++i]);
		} else if (strcmp(a, "--variant") == 0 && i + 1 < argc) {
			compare_cfg.variants = argv[++i];
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
	/* Defaults per scale: tiny is a smoke test; default is one of the
	 * (at least five) processes per measurement of `make report`, which
	 * takes its spread from the processes; full runs longer ones. */
	if (compare_cfg.reps < 0)
		compare_cfg.reps = compare_cfg.scale == SCALE_TINY ? 2
		    : compare_cfg.scale == SCALE_FULL ? 7 : 3;
	if (compare_cfg.rep_seconds < 0)
		compare_cfg.rep_seconds = compare_cfg.scale == SCALE_TINY ? 0.004
		    : compare_cfg.scale == SCALE_FULL ? 0.1 : 0.01;
	if (compare_cfg.capacity_seconds < 0) {
		compare_cfg.capacity_seconds = compare_cfg.scale == SCALE_FULL ? 120 : 30;
		if (compare_backend.capacity_seconds > compare_cfg.capacity_seconds)
			compare_cfg.capacity_seconds = compare_backend.capacity_seconds;
	}
	if (compare_cfg.reps < 1 || compare_cfg.reps > 64)
		compare_cfg.reps = compare_cfg.reps < 1 ? 1 : 64;
	if (strcmp(wl, "info") != 0 && !list) {
		w = find_workload(wl);
		if (w == NULL)
			usage(argv[0]);
	}

	t0 = compare_now_ns();
	if (!list && compare_backend.init) {
		errno = 0;
		init_rc = compare_backend.init(note, sizeof note);
		if (init_rc != 0)
			init_err = errno;
	}
	compare_backend.version(version, sizeof version);
	json_begin(stdout);
	if (list) {
		backend_info(version);
		list_workloads();
		json_end();
		return fflush(stdout) == 0 ? 0 : 2;
	}
	owner = malloc_owner();
	owner_ok = strstr(owner, compare_backend.malloc_owner) != NULL;
	if (getrlimit(RLIMIT_MEMLOCK, &rl) != 0)
		rl.rlim_cur = 0;

	json_key("backend");
	json_str(compare_backend.name);
	json_key("workload");
	json_str(wl);
	json_key("scale");
	json_str(scale_names[compare_cfg.scale]);
	json_key("library");
	json_str(version);
	backend_info(version);
	json_key("malloc_owner");
	json_str(owner);
	json_key("malloc_owner_expected");
	json_str(compare_backend.malloc_owner);
	json_key("malloc_owner_ok");
	json_bool(owner_ok);
	json_key("page_size");
	json_num((double)sysconf(_SC_PAGESIZE));
	json_key("memlock_limit");
	json_num(rl.rlim_cur == RLIM_INFINITY ? -1.0 : (double)rl.rlim_cur);
	json_key("euid");
	json_num((double)geteuid());
	json_key("timer_overhead_ns");
	json_num(compare_timer_overhead_ns());
	json_key("reps");
	json_num(compare_cfg.reps);
	json_key("rep_seconds");
	json_num(compare_cfg.rep_seconds);
	json_key("capacity_note");
	json_str(compare_backend.capacity_note ? compare_backend.capacity_note : "");
	json_key("init");
	printf("{\"status\": \"%s\", \"errno\": ", init_rc == 0 ? "ok" : "failed");
	json_str(compare_errno_name(init_err));
	printf(", \"note\": ");
	json_str(note);
	putchar('}');
	json_rows_begin();

	if (!owner_ok) {
		fprintf(stderr, "compare-%s: malloc is owned by %s, expected %s: mislinked\n",
		    compare_backend.name, owner, compare_backend.malloc_owner);
		rc = 1;
	} else if (init_rc != 0) {
		fprintf(stderr, "compare-%s: init failed: %s (%s)\n",
		    compare_backend.name, strerror(init_err), note);
		rc = 1;
	} else if (w != NULL) {
		/* Both clocks calibrated before any workload starts threads
		 * (their lazy first use is not thread-safe). */
		(void)compare_timer_overhead_ns();
		(void)compare_tsc_ns(0);
		rc = w->run(w) == 0 ? 0 : 1;
	}

	json_rows_end();
	/* The backend's own statistics for the whole process (tars: its stats
	 * table as JSON): the tuning sweep reads them here. */
	json_key("stats_at_exit");
	if (compare_backend.stats_json && owner_ok && init_rc == 0)
		compare_backend.stats_json(stdout);
	else
		fputs("null", stdout);
	json_key("tsc_per_ns");
	json_num(compare_tsc_per_ns());
	json_key("tsc_overhead_ns");
	json_num(compare_tsc_overhead() / compare_tsc_per_ns());
	json_key("elapsed_s");
	json_num((double)(compare_now_ns() - t0) / 1e9);
	json_key("status");
	json_str(rc == 0 ? "ok" : "failed");
	json_end();
	if (fflush(stdout) != 0) {
		perror("compare: stdout");
		return 2;
	}
	return rc;
}
