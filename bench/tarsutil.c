/*
 * tarsutil.c - tars stats counters and option handling for the benchmark
 * bodies; called outside timed regions only.  Option and statistic names
 * come from the library's tables (tars_option_at, tars_stat_at).
 */
#include "bench.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* ------------------------------------------------------------------------
 * tars stats
 * --------------------------------------------------------------------- */

void bench_stats_begin(struct bench_stats *bs)
{
	tars_stats_get(&bs->before);
}

/* The scalar statistic called name, or NULL (the library's table). */
static const struct tars_stat_desc *stat_named(const char *name)
{
	const struct tars_stat_desc *d;

	for (size_t i = 0; (d = tars_stat_at(i)) != NULL; i++)
		if (strcmp(d->name, name) == 0)
			return d;
	return NULL;
}

/* syscalls_per_op from the statistic "syscalls", and every statistic
 * counted in pages as a counter of its own name (chunk_pages, ...): the
 * names come from the library's table. */
void bench_stats_end(const struct bench_stats *bs, gb_state *st, uint64_t ops)
{
	const struct tars_stat_desc *sys = stat_named("syscalls"), *d;
	struct tars_stats s;

	tars_stats_get(&s);
	if (sys != NULL) {
		double n = (double)(tars_stat_value(&s, sys) - tars_stat_value(&bs->before, sys));

		gb_counter(st, "syscalls_per_op", ops ? n / (double)ops : 0.0, 0);
	}
	for (size_t i = 0; (d = tars_stat_at(i)) != NULL; i++)
		if (strcmp(d->unit, "pages") == 0)
			gb_counter(st, d->name, (double)tars_stat_value(&s, d), 0);
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
	const struct tars_option_desc *d;
	size_t len = 0;

	if (outlen == 0)
		return;
	out[0] = '\0';
	for (size_t i = 0; (d = tars_option_at(i)) != NULL; i++) {
		int n = snprintf(out + len, outlen - len, "%s%s=%ld",
		    i ? "," : "", d->name, tars_option_get(d->name));
		if (n < 0 || (size_t)n >= outlen - len)
			return;
		len += (size_t)n;
	}
}

int bench_option_valid(const char *name, long value)
{
	const struct tars_option_desc *d;

	for (size_t i = 0; (d = tars_option_at(i)) != NULL; i++)
		if (strcmp(d->name, name) == 0)
			return value >= d->min && value <= d->max && !d->init_only;
	return 0;
}
