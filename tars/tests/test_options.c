/*
 * Options (suite "options"): TARS_OPTIONS parsing, tars_option_get/set,
 * and that every option actually changes what the allocator does.
 *
 * Criterion runs each test in a fresh process, so a test may setenv()
 * TARS_OPTIONS or call tars_option_set before its first allocation.  Checks
 * of stderr output (warnings, the stats printed at exit) run in a forked
 * child whose stderr is captured (tars_run_child).
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "tars.h"
#include "util.h"

struct opt {
	const char *name;
	long min, max, def;
};

TestSuite(options, .init = no_env);

/* The table documented in tars.h. */
static const struct opt opts[] = {
	{"junk", 0, 2, 1},
	{"canary", 0, 1, 1},
	{"cache", 0, 4096, 64},
	{"classes", 0, 1, 1},
	{"random", 0, 1, 1},
	{"mlock", 0, 2, 1},
	{"dump", 0, 1, 0},
	{"fork", 0, 2, 1},
	{"secretmem", 0, 1, 0},
	{"stats", 0, 1, 0},
	{"spare", 1, 4096, 128},
	{"delay", 0, 1, 0},
	{"quarantine", 0, 4096, 64},
	{"large_cache", 0, 65536, 256},
	{"freed_none", 0, 1, 0},
};
#define NOPTS (sizeof(opts) / sizeof(opts[0]))

/* ---------------------------------------------------------------- get/set */

Test(options, defaults_are_as_documented)
{
	unsetenv("TARS_OPTIONS");
	for (size_t i = 0; i < NOPTS; i++) {
		errno = 0;
		cr_assert_eq(tars_option_get(opts[i].name), opts[i].def,
		    "default of %s", opts[i].name);
		cr_assert_eq(errno, 0);
	}
	/* The same after initialisation. */
	void *p = tars_malloc(1);
	cr_assert_not_null(p);
	for (size_t i = 0; i < NOPTS; i++) {
		cr_assert_eq(tars_option_get(opts[i].name), opts[i].def);
	}
	tars_free(p);
}

/* The public table (tars_option_at) is the one documented above, in order,
 * and agrees with tars_option_get. */
Test(options, the_option_table_is_the_documented_one)
{
	size_t n = 0;
	for (const struct tars_option_desc *d; (d = tars_option_at(n)) != NULL; n++) {
		cr_assert_lt(n, NOPTS, "undocumented option %s", d->name);
		cr_assert_str_eq(d->name, opts[n].name);
		cr_assert_eq(d->min, opts[n].min, "%s min", d->name);
		cr_assert_eq(d->max, opts[n].max, "%s max", d->name);
		cr_assert_eq(d->def, opts[n].def, "%s default", d->name);
		cr_assert_eq(d->init_only, 0, "%s", d->name);   /* none is, since pools retired */
		cr_assert(d->help != NULL && strlen(d->help) > 10, "%s help", d->name);
		cr_assert_eq(tars_option_get(d->name), d->def);
	}
	cr_assert_eq(n, NOPTS);
	cr_assert_null(tars_option_at(n));
	cr_assert_null(tars_option_at((size_t)-1));
}

/* Every option, the same before and after the first allocation. */
static void
set_get_all(void)
{
	for (size_t i = 0; i < NOPTS; i++) {
		const struct opt *o = &opts[i];
		long before = tars_option_get(o->name);
		errno = 0;
		cr_assert_eq(tars_option_set(o->name, o->min - 1), -1, "%s=%ld", o->name,
		    o->min - 1);
		cr_assert_eq(errno, EINVAL);
		errno = 0;
		cr_assert_eq(tars_option_set(o->name, o->max + 1), -1, "%s=%ld", o->name,
		    o->max + 1);
		cr_assert_eq(errno, EINVAL);
		errno = 0;
		cr_assert_eq(tars_option_set(o->name, -1000000), -1);
		cr_assert_eq(errno, EINVAL);
		cr_assert_eq(tars_option_get(o->name), before, "%s changed by a rejected set",
		    o->name);
		for (long v = o->min; v <= o->max; v += (o->max > 8 ? o->max / 4 : 1)) {
			cr_assert_eq(tars_option_set(o->name, v), 0, "%s=%ld: %s", o->name, v,
			    strerror(errno));
			cr_assert_eq(tars_option_get(o->name), v, "%s", o->name);
		}
		cr_assert_eq(tars_option_set(o->name, o->max), 0);
		cr_assert_eq(tars_option_get(o->name), o->max);
		/* Back to the default, so later allocations stay sane. */
		cr_assert_eq(tars_option_set(o->name, o->def), 0);
		cr_assert_eq(tars_option_get(o->name), o->def);
	}
}

Test(options, set_and_get_every_option_before_init)
{
	unsetenv("TARS_OPTIONS");
	set_get_all();
	/* The values set before init are the ones used. */
	cr_assert_eq(tars_option_set("classes", 0), 0);
	void *p = tars_malloc(100);
	cr_assert_not_null(p);
	cr_assert_eq(tars_option_get("classes"), 0);
	cr_assert_eq(tars_usable_size(p), 100);
	cr_assert_eq(tars_slot_size(100), 128);
	tars_free(p);
}

Test(options, set_and_get_every_option_after_init)
{
	unsetenv("TARS_OPTIONS");
	void *p = tars_malloc(1);
	cr_assert_not_null(p);
	set_get_all();
	tars_free(p);
	/* Still a working allocator after all those switches. */
	for (int i = 0; i < 100; i++) {
		void *q = tars_malloc((size_t)i * 50);
		cr_assert_not_null(q);
		tars_free(q);
	}
}

Test(options, unknown_names_are_einval)
{
	const char *bad[] = {"", "junk ", "JUNK", "junkk", "jun", "nosuch", "pool",
	    "junk=1", "stats,junk"};
	for (int round = 0; round < 2; round++) {
		for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			errno = 0;
			cr_assert_eq(tars_option_get(bad[i]), -1, "get(\"%s\")", bad[i]);
			cr_assert_eq(errno, EINVAL);
			errno = 0;
			cr_assert_eq(tars_option_set(bad[i], 1), -1, "set(\"%s\")", bad[i]);
			cr_assert_eq(errno, EINVAL);
		}
		void *p = tars_malloc(1); /* and again after init */
		cr_assert_not_null(p);
		tars_free(p);
	}
}

/* Thread-owned heaps replaced the pools in 0.2: the name is gone from the
 * API, and TARS_OPTIONS says it was retired rather than unknown. */
Test(options, pools_is_retired)
{
	errno = 0;
	cr_assert_eq(tars_option_set("pools", 4), -1);
	cr_assert_eq(errno, EINVAL);
	errno = 0;
	cr_assert_eq(tars_option_get("pools"), -1);
	cr_assert_eq(errno, EINVAL);
}

/* ---------------------------------------------------------------- env */

Test(options, environment_sets_every_option)
{
	setenv("TARS_OPTIONS", "junk=2,canary=0,cache=7,classes=0,random=0,mlock=0,"
	    "dump=1,fork=2,secretmem=1,stats=0,spare=5,delay=1,quarantine=9,"
	    "large_cache=3,freed_none=1", 1);
	const long want[NOPTS] = {2, 0, 7, 0, 0, 0, 1, 2, 1, 0, 5, 1, 9, 3, 1};
	for (size_t i = 0; i < NOPTS; i++) {
		cr_assert_eq(tars_option_get(opts[i].name), want[i], "%s", opts[i].name);
	}
	void *p = tars_malloc(100);
	cr_assert_not_null(p);
	cr_assert_eq(tars_slot_size(100), 128, "classes=0 from the environment");
	tars_free(p);
}

Test(options, environment_edge_syntax)
{
	/* Empty items, the last one wins, leading zeros. */
	setenv("TARS_OPTIONS", ",,cache=5,,cache=0012,junk=0,canary=0,", 1);
	cr_assert_eq(tars_option_get("cache"), 12);
	cr_assert_eq(tars_option_get("junk"), 0);
	cr_assert_eq(tars_option_get("canary"), 0);
	cr_assert_eq(tars_option_get("classes"), 1);
}

static void
env_child(void *arg)
{
	setenv("TARS_OPTIONS", arg, 1);
	void *p = tars_malloc(10);
	CHILD_CHECK(p != NULL);
	tars_free(p);
	/* The values as seen, for the parent, on stderr after the warnings. */
	fprintf(stderr, "values junk=%ld cache=%ld spare=%ld classes=%ld canary=%ld\n",
	    tars_option_get("junk"), tars_option_get("cache"),
	    tars_option_get("spare"), tars_option_get("classes"),
	    tars_option_get("canary"));
}

Test(options, unknown_name_warns_once_and_is_ignored)
{
	struct child_result r;
	tars_run_child(env_child, "frobnicate=1,junk=0,cache=3", &r);
	cr_assert(!r.signaled && r.exit_code == 0, "child died: %s", r.err);
	cr_assert(strstr(r.err, "tars: warning:") != NULL, "no warning: \"%s\"", r.err);
	cr_assert(strstr(r.err, "frobnicate") != NULL, "warning lacks the name: \"%s\"",
	    r.err);
	cr_assert_eq(count_substr(r.err, "tars: warning:"), 1, "\"%s\"", r.err);
	/* The known options around it still apply. */
	cr_assert(strstr(r.err, "values junk=0 cache=3 spare=128 classes=1 canary=1") != NULL,
	    "\"%s\"", r.err);
}

Test(options, retired_pools_warns_that_it_is_retired)
{
	struct child_result r;
	tars_run_child(env_child, "pools=4,junk=0", &r);
	cr_assert(!r.signaled && r.exit_code == 0, "child died: %s", r.err);
	cr_assert_eq(count_substr(r.err, "tars: warning:"), 1, "\"%s\"", r.err);
	cr_assert(strstr(r.err, "option 'pools' was retired") != NULL, "\"%s\"", r.err);
	cr_assert(strstr(r.err, "values junk=0 cache=64 spare=128") != NULL, "\"%s\"", r.err);
}

Test(options, bad_values_warn_and_are_ignored)
{
	const char *cases[] = {
		"junk=3", "junk=-1", "junk=abc", "junk=1x", "junk=", "junk",
		"cache=4097", "cache=99999999999999999999999", "spare=0", "spare=4097",
		"classes=2", "junk=0x1", "junk=1.0",
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char env[128];
		snprintf(env, sizeof(env), "%s,canary=0", cases[i]);
		struct child_result r;
		tars_run_child(env_child, env, &r);
		cr_assert(!r.signaled && r.exit_code == 0, "%s: child died: %s", env, r.err);
		cr_assert(strstr(r.err, "tars: warning:") != NULL, "%s: no warning: \"%s\"",
		    env, r.err);
		cr_assert_eq(count_substr(r.err, "tars: warning:"), 1, "%s: \"%s\"", env,
		    r.err);
		cr_assert(strstr(r.err, "values junk=1 cache=64 spare=128 classes=1 canary=0")
		    != NULL, "%s: the bad value was not ignored: \"%s\"", env, r.err);
	}
}

Test(options, good_environment_prints_nothing)
{
	struct child_result r;
	tars_run_child(env_child, "junk=2,cache=100,spare=2,classes=0", &r);
	cr_assert(!r.signaled && r.exit_code == 0, "child died: %s", r.err);
	cr_assert(strstr(r.err, "tars:") == NULL, "unexpected output: \"%s\"", r.err);
	cr_assert(strstr(r.err, "values junk=2 cache=100 spare=2 classes=0") != NULL,
	    "\"%s\"", r.err);
}

/* ---------------------------------------------------------------- effects */

Test(options, junk_0_does_not_fill_fresh_blocks)
{
	cr_assert_eq(tars_option_set("junk", 0), 0);
	size_t ps = page_size();
	const size_t sizes[] = {16, 64, 100, 2048, 2049, ps, 3 * ps};
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		unsigned char *p = tars_malloc(sizes[i]);
		unsigned char *k = tars_malloc_key(sizes[i]);
		cr_assert(p != NULL && k != NULL);
		cr_assert(!all_bytes(p, sizes[i], 0xdf), "malloc(%zu) junk-filled", sizes[i]);
		cr_assert(!all_bytes(k, sizes[i], 0xdf), "malloc_key(%zu) junk-filled",
		    sizes[i]);
		/* Freed with junk=0 means zeroed: reuse finds no 0xdf either. */
		memset(p, 0xdf, sizes[i]);
		tars_free(p);
		tars_free(k);
	}
	for (int i = 0; i < 64; i++) {
		unsigned char *p = tars_malloc(64);
		cr_assert_not_null(p);
		cr_assert(!all_bytes(p, 64, 0xdf));
		tars_free(p);
	}
	/* And junk=1 switched on at run time fills again. */
	cr_assert_eq(tars_option_set("junk", 1), 0);
	unsigned char *p = tars_malloc(100);
	cr_assert(all_bytes(p, 100, 0xdf));
	tars_free(p);
}

static void
overflow_into_slack(void *arg)
{
	(void)arg;
	size_t ps = page_size();
	/* Chunk: 10 requested in a 16-byte slot. */
	volatile unsigned char *p = launder(tars_malloc(10));
	CHILD_CHECK(p != NULL);
	CHILD_CHECK(tars_usable_size((void *)p) == 16);
	for (int i = 0; i < 16; i++) {
		p[i] = 0xee;
	}
	tars_freezero((void *)p, 10);
	/* Large: slack in front of the block (in its first page) and the
	 * padding up to the 16-byte end. */
	volatile unsigned char *q = launder(tars_malloc(ps + 1));
	CHILD_CHECK(q != NULL);
	CHILD_CHECK(tars_usable_size((void *)q) == ps + 16);
	for (int i = 1; i <= 32; i++) {
		q[-i] = 0xee;
	}
	for (size_t i = 0; i < ps + 16; i++) {
		q[i] = 0xee;
	}
	tars_free((void *)q);
}

Test(options, canary_0_checks_no_slack)
{
	cr_assert_eq(tars_option_set("canary", 0), 0);
	EXPECT_EXIT0(overflow_into_slack, NULL);
}

Test(options, canary_1_usable_size_is_the_request)
{
	void *p = tars_malloc(10);
	cr_assert_eq(tars_usable_size(p), 10);
	tars_free(p);
	/* Switching canaries off at run time applies to new blocks only. */
	void *old = tars_malloc(20);
	cr_assert_eq(tars_option_set("canary", 0), 0);
	void *n = tars_malloc(20);
	cr_assert_eq(tars_usable_size(old), 20);
	cr_assert_eq(tars_usable_size(n), 32);
	tars_free(old);
	tars_free(n);
}

static size_t
pow2_class(size_t n)
{
	size_t c = 16;
	while (c < n) {
		c <<= 1;
	}
	return c;
}

static size_t
quarter_class(size_t n)
{
	if (n <= 64) {
		return (n + 15) & ~(size_t)15;
	}
	size_t p = 64;
	while (p * 2 < n) {
		p <<= 1;
	}
	size_t step = p / 4;
	return (n + step - 1) / step * step;
}

static size_t
reserved_for(size_t size)
{
	struct tars_stats a, b;
	tars_stats_get(&a);
	void *p = tars_malloc(size);
	cr_assert_not_null(p);
	tars_stats_get(&b);
	tars_free(p);
	return b.live_reserved - a.live_reserved;
}

Test(options, classes_0_is_power_of_two)
{
	cr_assert_eq(tars_option_set("classes", 0), 0);
	cr_assert_eq(tars_slot_size(65), 128);
	size_t max = page_size() / 2 < 2048 ? page_size() / 2 : 2048;
	for (size_t n = 1; n <= max; n++) {
		cr_assert_eq(tars_slot_size(n), pow2_class(n), "slot_size(%zu)", n);
		if (n % 7 == 0 || (n & (n - 1)) == 0 || ((n - 1) & (n - 2)) == 0) {
			cr_assert_eq(reserved_for(n), pow2_class(n), "reserved for %zu", n);
		}
	}
}

Test(options, classes_1_is_quarter_steps)
{
	cr_assert_eq(tars_slot_size(65), 80);
	size_t max = page_size() / 2 < 2048 ? page_size() / 2 : 2048;
	for (size_t n = 1; n <= max; n++) {
		cr_assert_eq(tars_slot_size(n), quarter_class(n), "slot_size(%zu)", n);
		if (n % 7 == 0 || n % 16 == 0 || n % 16 == 1) {
			cr_assert_eq(reserved_for(n), quarter_class(n), "reserved for %zu", n);
		}
	}
	/* Switchable at run time. */
	cr_assert_eq(tars_option_set("classes", 0), 0);
	cr_assert_eq(tars_slot_size(65), 128);
	cr_assert_eq(reserved_for(65), 128);
	cr_assert_eq(tars_option_set("classes", 1), 0);
	cr_assert_eq(reserved_for(65), 80);
}

Test(options, random_0_is_first_fit)
{
	cr_assert_eq(tars_option_set("random", 0), 0);
	unsigned char *p[64];
	for (int i = 0; i < 64; i++) {
		p[i] = tars_malloc(64);
		cr_assert_not_null(p[i]);
	}
	for (int i = 1; i < 64; i++) {
		cr_assert_eq(p[i], p[0] + 64 * i, "slot %d not next to the previous", i);
	}
	/* The lowest free slot is handed out again. */
	tars_free(p[5]);
	tars_free(p[9]);
	cr_assert_eq(tars_malloc(64), (void *)p[5]);
	cr_assert_eq(tars_malloc(64), (void *)p[9]);
	for (int i = 0; i < 64; i++) {
		tars_free(p[i]);
	}
}

Test(options, random_1_scatters_slots)
{
	unsigned char *p[64];
	int sequential = 0;
	for (int i = 0; i < 64; i++) {
		p[i] = tars_malloc(64);
		cr_assert_not_null(p[i]);
		if (i > 0 && p[i] == p[i - 1] + 64) {
			sequential++;
		}
	}
	/* 63 neighbours in a row would be first fit; random placement gives a
	 * handful at most (the chance of >= 32 is astronomically small). */
	cr_assert_lt(sequential, 32, "%d of 63 allocations were adjacent", sequential);
	for (int i = 0; i < 64; i++) {
		tars_free(p[i]);
	}
}

static void
churn_pages(size_t npages, size_t *cached, uint64_t *released)
{
	/* 2048-byte slots: two per page; one empty page kept writable. */
	cr_assert_eq(tars_option_set("spare", 1), 0);
	void **p = calloc(2 * npages, sizeof(*p));
	cr_assert_not_null(p);
	for (size_t i = 0; i < 2 * npages; i++) {
		p[i] = tars_malloc(2048);
		cr_assert_not_null(p[i]);
	}
	struct tars_stats a, b;
	tars_stats_get(&a);
	for (size_t i = 0; i < 2 * npages; i++) {
		tars_free(p[i]);
	}
	tars_stats_get(&b);
	*cached = b.cached_pages;
	*released = b.released_pages - a.released_pages;
	free(p);
}

Test(options, cache_bounds_the_kept_pages)
{
	cr_assert_eq(tars_option_set("cache", 10), 0);
	size_t cached;
	uint64_t unmapped;
	churn_pages(100, &cached, &unmapped);
	cr_assert_eq(cached, 10, "cache=10 kept %zu pages", cached);
	cr_assert_eq(unmapped, 100 - 10 - 1, "%llu pages released",
	    (unsigned long long)unmapped);
}

Test(options, cache_0_unmaps_empty_pages)
{
	cr_assert_eq(tars_option_set("cache", 0), 0);
	size_t cached;
	uint64_t unmapped;
	churn_pages(100, &cached, &unmapped);
	cr_assert_eq(cached, 0);
	cr_assert_eq(unmapped, 100 - 1, "%llu pages released", (unsigned long long)unmapped);
}

static void
stats_child(void *arg)
{
	int how = (int)(intptr_t)arg;
	if (how == 0) {
		setenv("TARS_OPTIONS", "stats=1", 1);
	} else if (how == 1) {
		CHILD_CHECK(tars_option_set("stats", 1) == 0);
	}
	void *p = tars_malloc(100);
	void *q = tars_malloc(5000);
	CHILD_CHECK(p != NULL && q != NULL);
	if (how == 2) {
		CHILD_CHECK(tars_option_set("stats", 1) == 0);
	}
	tars_free(p);
	exit(0);  /* not _exit: the statistics print from an atexit handler */
}

static void
expect_stats_at_exit(int how)
{
	struct child_result r;
	tars_run_child(stats_child, (void *)(intptr_t)how, &r);
	cr_assert(!r.signaled && r.exit_code == 0, "child died: %s", r.err);
	cr_assert(strstr(r.err, "tars stats") != NULL, "no stats at exit: \"%s\"", r.err);
	cr_assert(strstr(r.err, "mallocs") != NULL, "\"%s\"", r.err);
	cr_assert_eq(count_substr(r.err, "tars stats"), 1, "\"%s\"", r.err);
}

Test(options, stats_1_from_the_environment_prints_at_exit)
{
	expect_stats_at_exit(0);
}

Test(options, stats_1_set_before_init_prints_at_exit)
{
	expect_stats_at_exit(1);
}

Test(options, stats_1_set_after_init_prints_at_exit)
{
	/* stats is not an init-only option: setting it later must work. */
	expect_stats_at_exit(2);
}

static void
no_stats_child(void *arg)
{
	(void)arg;
	void *p = tars_malloc(100);
	CHILD_CHECK(p != NULL);
	tars_free(p);
	exit(0);
}

Test(options, stats_0_prints_nothing)
{
	unsetenv("TARS_OPTIONS");
	struct child_result r;
	tars_run_child(no_stats_child, NULL, &r);
	cr_assert(!r.signaled && r.exit_code == 0, "child died: %s", r.err);
	cr_assert_eq(r.err[0], '\0', "unexpected output: \"%s\"", r.err);
}
