/* tars_common.c - tars's version, options and statistics for the report,
 * enumerated from the library's own tables. */
#include "tars_common.h"

#include <string.h>

void compare_tars_version(char *out, size_t len)
{
	const struct tars_option_desc *d;
	size_t n = (size_t)snprintf(out, len, "tars %s (", TARS_VERSION);

	for (size_t i = 0; (d = tars_option_at(i)) != NULL && n < len; i++)
		n += (size_t)snprintf(out + n, len - n, "%s%s=%ld", i ? "," : "",
		    d->name, tars_option_get(d->name));
	if (n < len)
		snprintf(out + n, len - n, ")");
}

/* , "options": {"junk": 1, ...}, "option_table": [{name, min, max, default,
 * init_only, help}, ...] */
void compare_tars_describe(FILE *out)
{
	const struct tars_option_desc *d;

	fputs(", \"options\": {", out);
	for (size_t i = 0; (d = tars_option_at(i)) != NULL; i++) {
		fputs(i ? ", " : "", out);
		json_fstr(out, d->name);
		fprintf(out, ": %ld", tars_option_get(d->name));
	}
	fputs("}, \"option_table\": [", out);
	for (size_t i = 0; (d = tars_option_at(i)) != NULL; i++) {
		fputs(i ? ", {\"name\": " : "{\"name\": ", out);
		json_fstr(out, d->name);
		fprintf(out, ", \"min\": %ld, \"max\": %ld, \"default\": %ld, "
		    "\"init_only\": %s, \"help\": ", d->min, d->max, d->def,
		    d->init_only ? "true" : "false");
		json_fstr(out, d->help);
		fputc('}', out);
	}
	fputs("], \"stat_table\": [", out);
	const struct tars_stat_desc *s;
	for (size_t i = 0; (s = tars_stat_at(i)) != NULL; i++) {
		fputs(i ? ", {\"name\": " : "{\"name\": ", out);
		json_fstr(out, s->name);
		fputs(", \"unit\": ", out);
		json_fstr(out, s->unit);
		fputs(", \"help\": ", out);
		json_fstr(out, s->help);
		fputc('}', out);
	}
	fputc(']', out);
}

void compare_tars_stats_json(FILE *out)
{
	tars_stats_print_json(out);
}

/* Every scalar statistic as a row tars_<name>. */
void compare_tars_counters(const struct measure_key *k)
{
	const struct tars_stat_desc *d;
	struct tars_stats st;
	char metric[96], note[160];

	tars_stats_get(&st);
	for (size_t i = 0; (d = tars_stat_at(i)) != NULL; i++) {
		snprintf(metric, sizeof metric, "tars_%s", d->name);
		snprintf(note, sizeof note, "tars stats: %s", d->help);
		compare_emit(k, metric, (double)tars_stat_value(&st, d),
		    strcmp(d->unit, "bytes") == 0 ? "bytes" : "count", note);
	}
}

double compare_tars_syscalls(void)
{
	static const struct tars_stat_desc *sys;
	const struct tars_stat_desc *d;
	struct tars_stats st;

	if (sys == NULL)
		for (size_t i = 0; (d = tars_stat_at(i)) != NULL; i++)
			if (strcmp(d->name, "syscalls") == 0)
				sys = d;
	if (sys == NULL)
		return -1; /* the library stopped counting them */
	tars_stats_get(&st);
	return (double)tars_stat_value(&st, sys);
}
