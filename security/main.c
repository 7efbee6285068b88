/*
 * main.c - sec-<backend> EXPERIMENT [options]: run one experiment and print
 * one JSON document.  Exit 0 on success, 2 when the experiment could not
 * run (the document then has "error"), 3 when malloc is not the backend's.
 *
 *   -k KIND    kind of allocation under test (default: the backend's first)
 *   -b KIND    over-read buffers' kind (overread; default -k)
 *   -s SIZE    request size (64)          -n N      count / samples
 *   -z SIZE    the secret's block (overread; default -s)
 *   -t N       forked trials              -c N      allocation cap
 *   -L N       live slots (churn)         -M N      operations (churn)
 *   -p N       pages to fill (reuse)      -S STATE  reuse state
 *   -N A,B,..  over-read lengths          -l BYTES  set RLIMIT_MEMLOCK
 *   -a BYTES   OpenSSL secure-heap arena  -r SEED   harness seed
 *   -o NAME=V  tars option (repeatable; applied before the first allocation)
 */
#include "sec.h"

#include <dlfcn.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <unistd.h>

struct sec_config sec_cfg = {
	.size = 64,
	.count = 1000,
	.trials = 100,
	.cap = 100000,
	.live = 1000,
	.ops = 100000,
	.pages = 16,
	.arena = (size_t)16 << 20,
	.state = "empty",
	.over = {16, 64, 256, 4096},
	.nover = 4,
};

static const struct {
	const char *name;
	sec_experiment fn;
} experiments[] = {
	{ "first", exp_first },
	{ "seq", exp_seq },
	{ "reuse", exp_reuse },
	{ "forkdiv", exp_forkdiv },
	{ "overread", exp_overread },
	{ "uaf", exp_uaf },
	{ "memlock", exp_memlock },
	{ "window", exp_window },
	{ "churn", exp_churn },
};

static char out_buf[1 << 20];

static const struct sec_kind *find_kind(const char *name)
{
	for (const struct sec_kind *k = sec_backend.kinds; k->name != NULL; k++)
		if (strcmp(k->name, name) == 0)
			return k;
	return NULL;
}

static const char *malloc_path(void)
{
	static char path[512];
	Dl_info info;
	void *sym = dlsym(RTLD_DEFAULT, "malloc");

	if (sym == NULL || dladdr(sym, &info) == 0 || info.dli_fname == NULL)
		return "unknown";
	snprintf(path, sizeof path, "%s", info.dli_fname);
	return path;
}

static size_t num(const char *s, const char *what)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno != 0 || end == s || *end != '\0') {
		fprintf(stderr, "sec: bad %s: %s\n", what, s);
		exit(2);
	}
	return (size_t)v;
}

/* RLIMIT_MEMLOCK's soft limit to `bytes` (at most the hard limit). */
static int set_memlock(size_t bytes, char *note, size_t len)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_MEMLOCK, &rl) != 0) {
		snprintf(note, len, "getrlimit(RLIMIT_MEMLOCK): %s", strerror(errno));
		return -1;
	}
	rl.rlim_cur = bytes;
	if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < rl.rlim_cur)
		rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_MEMLOCK, &rl) != 0) {
		snprintf(note, len, "setrlimit(RLIMIT_MEMLOCK, %zu): %s", bytes, strerror(errno));
		return -1;
	}
	return 0;
}

static void usage(void)
{
	fprintf(stderr, "usage: sec-%s EXPERIMENT [-k kind] [-b kind] [-s size] [-z size] [-n n] "
	    "[-t trials] [-c cap] [-L live] [-M ops] [-p pages] [-S state] [-N a,b] "
	    "[-l bytes] [-a bytes] [-r seed] [-o name=value]...\n"
	    "experiments:", sec_backend.name);
	for (size_t i = 0; i < sizeof experiments / sizeof experiments[0]; i++)
		fprintf(stderr, " %s", experiments[i].name);
	fprintf(stderr, "\nkinds:");
	for (const struct sec_kind *k = sec_backend.kinds; k->name != NULL; k++)
		fprintf(stderr, " %s", k->name);
	fprintf(stderr, "\n");
	exit(2);
}

static void parse_over(const char *arg)
{
	char tmp[256];
	char *save = NULL;

	snprintf(tmp, sizeof tmp, "%s", arg);
	sec_cfg.nover = 0;
	for (char *t = strtok_r(tmp, ",", &save); t != NULL; t = strtok_r(NULL, ",", &save)) {
		if (sec_cfg.nover == SEC_MAX_N) {
			fprintf(stderr, "sec: at most %d over-read lengths\n", SEC_MAX_N);
			exit(2);
		}
		sec_cfg.over[sec_cfg.nover++] = num(t, "over-read length");
	}
}

int main(int argc, char **argv)
{
	static const char *optnames[32];
	static long optvalues[32];
	size_t nopts = 0;
	sec_experiment fn = NULL;
	const char *exp_name, *expected, *path;
	char note[512] = "", err[512] = "", version[512] = "", opt_err[512] = "";
	int c, rc, mislinked;
	long page;

	/* Before anything can allocate: stdout never calls malloc. */
	if (setvbuf(stdout, out_buf, _IOFBF, sizeof out_buf) != 0)
		return 2;
	page = sysconf(_SC_PAGESIZE);
	if (page <= 0)
		return 2;
	sec_cfg.page = (size_t)page;
	if (argc < 2)
		usage();
	exp_name = argv[1];
	for (size_t i = 0; i < sizeof experiments / sizeof experiments[0]; i++)
		if (strcmp(experiments[i].name, exp_name) == 0)
			fn = experiments[i].fn;
	if (fn == NULL)
		usage();
	if (getrandom(&sec_cfg.seed, sizeof sec_cfg.seed, 0) != (ssize_t)sizeof sec_cfg.seed)
		sec_cfg.seed = (uint64_t)getpid();
	sec_cfg.kind = sec_backend.kinds;
	optind = 2;
	while ((c = getopt(argc, argv, "k:b:s:z:n:t:c:L:M:p:S:N:l:a:r:o:")) != -1) {
		switch (c) {
		case 'k':
		case 'b':
			if (find_kind(optarg) == NULL) {
				fprintf(stderr, "sec-%s: no kind %s\n", sec_backend.name, optarg);
				usage();
			}
			*(c == 'k' ? &sec_cfg.kind : &sec_cfg.bkind) = find_kind(optarg);
			break;
		case 's': sec_cfg.size = num(optarg, "size"); break;
		case 'z': sec_cfg.secret_size = num(optarg, "secret size"); break;
		case 'n': sec_cfg.count = num(optarg, "count"); break;
		case 't': sec_cfg.trials = num(optarg, "trials"); break;
		case 'c': sec_cfg.cap = num(optarg, "cap"); break;
		case 'L': sec_cfg.live = num(optarg, "live"); break;
		case 'M': sec_cfg.ops = num(optarg, "ops"); break;
		case 'p': sec_cfg.pages = num(optarg, "pages"); break;
		case 'S': sec_cfg.state = optarg; break;
		case 'N': parse_over(optarg); break;
		case 'l': sec_cfg.limit = num(optarg, "limit"); break;
		case 'a': sec_cfg.arena = num(optarg, "arena"); break;
		case 'r': sec_cfg.seed = num(optarg, "seed"); break;
		case 'o': {
			char *eq = strchr(optarg, '=');

			if (eq == NULL || nopts == 32 || sec_backend.option == NULL) {
				fprintf(stderr, "sec-%s: -o %s: not an option of this backend\n",
				    sec_backend.name, optarg);
				exit(2);
			}
			*eq = '\0';
			optnames[nopts] = optarg;
			optvalues[nopts++] = (long)num(eq + 1, optarg);
			break;
		}
		default:
			usage();
		}
	}
	if (optind != argc)
		usage();
	if (sec_cfg.bkind == NULL)
		sec_cfg.bkind = sec_cfg.kind;

	/* Options first: some are fixed at tars's first allocation. */
	for (size_t i = 0; i < nopts && !opt_err[0]; i++)
		if (sec_backend.option(optnames[i], optvalues[i]) != 0)
			snprintf(opt_err, sizeof opt_err, "option %s=%ld refused: %s",
			    optnames[i], optvalues[i], strerror(errno));
	path = malloc_path();
	expected = sec_backend.malloc_owner;
	mislinked = strstr(path, expected) == NULL;
	sec_backend.version(version, sizeof version);
	js_open(NULL);
	js_str("backend", sec_backend.name);
	js_str("version", version);
	js_str("experiment", exp_name);
	js_str("kind", sec_cfg.kind->name);
	js_str("kind_what", sec_cfg.kind->what);
	js_str("malloc_owner", path);
	js_str("malloc_expected", expected);
	js_u64("page_size", sec_cfg.page);
	js_u64("size", sec_cfg.size);
	if (sec_backend.slot != NULL)
		js_u64("slot_size", sec_backend.slot(sec_cfg.size));
	js_u64("seed", sec_cfg.seed);
	if (mislinked) {
		js_str("error", "malloc is not defined by the expected library (mislinked)");
		js_close();
		fflush(stdout);
		return 3;
	}
	if (opt_err[0]) {
		js_str("error", opt_err);
		js_close();
		fflush(stdout);
		return 2;
	}
	if (sec_cfg.limit && set_memlock(sec_cfg.limit, note, sizeof note) != 0) {
		js_str("error", note);
		js_close();
		fflush(stdout);
		return 2;
	}
	if (sec_backend.init != NULL && sec_backend.init(sec_cfg.arena, note, sizeof note) != 0) {
		js_str("error", note);
		js_close();
		fflush(stdout);
		return 2;
	}
	if (note[0])
		js_str("backend_note", note);
	if (sec_backend.describe != NULL)
		sec_backend.describe();
	js_open("result");
	rc = fn(err, sizeof err);
	js_close();
	if (rc != 0)
		js_str("error", err[0] ? err : "failed");
	if (sec_backend.counters != NULL)
		sec_backend.counters();
	js_close();
	if (fflush(stdout) != 0)
		return 2;
	return rc == 0 ? 0 : 2;
}
