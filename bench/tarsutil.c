/*
 * tarsutil.c - tars stats counters and option handling for the benchmark
 * bodies; called outside timed regions only.
 */
#include "bench.h"

#include <errno.h>
#include <stdio.h>

/* ------------------------------------------------------------------------
 * tars stats
 * --------------------------------------------------------------------- */

void bench_stats_begin(struct bench_stats *bs)
{
	tars_stats_get(&bs->before);
}

void bench_stats_end(const struct bench_stats *bs, gb_state *st, uint64_t ops)
{
	struct tars_stats s;

	tars_stats_get(&s);
	double sys = (double)(s.syscalls - bs->before.syscalls);
	size_t pages = s.chunk_pages + s.zero_pages + s.cached_pages +
	    s.reserve_pages + s.large_pages + s.key_pages + s.guard_pages +
	    s.meta_pages;

	gb_counter(st, "syscalls_per_op", ops ? sys / (double)ops : 0.0, 0);
	gb_counter(st, "pages_mapped", (double)pages, 0);
	gb_counter(st, "chunk_pages", (double)s.chunk_pages, 0);
	gb_counter(st, "cached_pages", (double)s.cached_pages, 0);
}

/* ------------------------------------------------------------------------
 * Options
 * --------------------------------------------------------------------- */

int bench_option_push(gb_state *st, const char *name, long value, long *saved)
{
	char what[96];

	errno = 0;
	*saved = tars_option_get(name);
	if (*saved < 0) {
		snprintf(what, sizeof(what), "tars_option_get(%s)", name);
		bench_skip_errno(st, what, errno ? errno : EINVAL);
		return -1;
	}
	if (tars_option_set(name, value) != 0) {
		snprintf(what, sizeof(what), "tars_option_set(%s=%ld)", name, value);
		bench_skip_errno(st, what, errno);
		return -1;
	}
	return 0;
}

void bench_option_pop(gb_state *st, const char *name, long saved)
{
	char what[96];

	if (tars_option_set(name, saved) != 0) {
		snprintf(what, sizeof(what), "restoring tars_option_set(%s=%ld)", name, saved);
		bench_skip_errno(st, what, errno);
	}
}

void bench_options_string(char *out, size_t outlen)
{
	static const char *const names[] = {
		"junk", "canary", "cache", "classes", "random", "mlock",
		"dump", "fork", "secretmem", "spare",
	};
	size_t len = 0;

	if (outlen == 0)
		return;
	out[0] = '\0';
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		int n = snprintf(out + len, outlen - len, "%s%s=%ld",
		    i ? "," : "", names[i], tars_option_get(names[i]));
		if (n < 0 || (size_t)n >= outlen - len)
			return;
		len += (size_t)n;
	}
}
