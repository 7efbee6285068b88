/* tars_common.c - tars version, options and statistics for the report. */
#include "tars_common.h"

#include <stdio.h>

void compare_tars_version(char *out, size_t len)
{
	static const char *const opts[] = { "junk", "canary", "cache", "classes",
		"random", "mlock", "dump", "fork", "secretmem", "spare" };
	size_t n = (size_t)snprintf(out, len, "tars %s (", TARS_VERSION);

	for (size_t i = 0; i < sizeof opts / sizeof opts[0] && n < len; i++)
		n += (size_t)snprintf(out + n, len - n, "%s%s=%ld", i ? "," : "",
		    opts[i], tars_option_get(opts[i]));
	if (n < len)
		snprintf(out + n, len - n, ")");
}

void compare_tars_counters(const struct measure_key *k)
{
	struct tars_stats st;

	tars_stats_get(&st);
	compare_emit(k, "tars_locked_bytes", (double)st.locked_bytes, "bytes",
	    "tars stats: bytes mlock'ed");
	compare_emit(k, "tars_unlocked_bytes", (double)st.unlocked_bytes, "bytes",
	    "tars stats: bytes mlock failed to lock (best effort)");
	compare_emit(k, "tars_live_reserved_bytes", (double)st.live_reserved, "bytes",
	    "tars stats: slot/page bytes reserved for live allocations");
	compare_emit(k, "tars_meta_pages", (double)st.meta_pages, "count",
	    "tars stats: metadata pages");
	compare_emit(k, "tars_guard_pages", (double)st.guard_pages, "count",
	    "tars stats: guard pages");
	compare_emit(k, "tars_syscalls", (double)st.syscalls, "count",
	    "tars stats: system calls so far");
}
