/* wl_session.c - a crypto-session bundle: 32, 64, 68, 200 and 208 bytes
 * allocated, used, and freed in reverse. */
#include "compare.h"

static const size_t session_sizes[] = { 32, 64, 68, 200, 208 };

static int session_op(void *ctx, size_t i)
{
	void *p[NELEM(session_sizes)];
	volatile unsigned char *sink = ctx;
	unsigned char acc = 0;
	size_t n;

	for (n = 0; n < NELEM(session_sizes); n++) {
		p[n] = compare_alloc(session_sizes[n]);
		if (p[n] == NULL)
			break;
		compare_touch(p[n], session_sizes[n], (unsigned char)(i + n));
	}
	if (n == NELEM(session_sizes))
		for (size_t j = 0; j < n; j++)
			acc ^= ((unsigned char *)p[j])[session_sizes[j] - 1];
	*sink = acc;
	for (size_t j = n; j-- > 0;)
		compare_release(p[j], session_sizes[j]);
	return n == NELEM(session_sizes) ? 0 : -1;
}

static int session_run(const struct compare_workload *w)
{
	struct measure_key k = { w->name, "", w->param, (double)NELEM(session_sizes) };
	unsigned char sink;

	compare_progress("  session 32+64+68+200+208");
	if (compare_prepare(4096, 8, &k) != 0)
		return 0;
	(void)run_reps(&k, session_op, &sink, compare_cfg.rep_seconds,
	    "one bundle: 5 allocs + use + 5 frees in reverse");
	return 0;
}

COMPARE_WORKLOAD(wl_session) = {
	.name = "session",
	.what = "alloc 32, 64, 68, 200, 208 B, use, free in reverse",
	.param = "buffers",
	.params = {
		[SCALE_TINY] = COMPARE_PARAMS(5),
		[SCALE_DEFAULT] = COMPARE_PARAMS(5),
		[SCALE_FULL] = COMPARE_PARAMS(5),
	},
	COMPARE_HEADLINES(
		{ "session bundle", "", 5, "ns_per_op", 0 },
	),
	.run = session_run,
};
