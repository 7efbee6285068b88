/* tars_common.h - what the tars backends share: the version string with
 * the options in force, the option table and the statistics as JSON, the
 * statistics as rows, and tars's own system call count.  Everything comes
 * from the library's tables (tars_option_at, tars_stat_at): no option or
 * statistic is named here. */
#ifndef COMPARE_TARS_COMMON_H
#define COMPARE_TARS_COMMON_H

#include "compare.h"

#include <tars.h>

void compare_tars_version(char *out, size_t len);
void compare_tars_counters(const struct measure_key *k);
void compare_tars_describe(FILE *out);
void compare_tars_stats_json(FILE *out);
double compare_tars_syscalls(void);

/* The fields every tars backend shares (spread into its initializer). */
#define COMPARE_TARS_COMMON                               \
	.version = compare_tars_version,                      \
	.counters = compare_tars_counters,                    \
	.describe_json = compare_tars_describe,               \
	.stats_json = compare_tars_stats_json,                \
	.syscalls = compare_tars_syscalls

#endif
