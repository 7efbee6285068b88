/* wl_pair.c - alloc, touch every byte, free: the hot path, by size. */
#include "compare.h"

struct pair_ctx {
	size_t size;
};

static int pair_op(void *ctx, size_t i)
{
	struct pair_ctx *c = ctx;
	void *p = compare_alloc(c->size);

	if (p == NULL)
		return -1;
	compare_touch(p, c->size, (unsigned char)i);
	compare_release(p, c->size);
	return 0;
}

static void pair_one(const struct compare_workload *w, long size)
{
	struct measure_key k = { w->name, "", w->param, (double)size };
	struct pair_ctx c = { (size_t)size };

	if (compare_prepare(c.size * 4 + 4096, 4, &k) != 0)
		return;
	(void)run_reps(&k, pair_op, &c, compare_cfg.rep_seconds,
	    "alloc + touch every byte + free");
}

static int pair_run(const struct compare_workload *w)
{
	compare_for_params(w, 0, 1L << 30, pair_one);
	return 0;
}

COMPARE_WORKLOAD(wl_pair) = {
	.name = "pair",
	.what = "alloc, touch every byte, free",
	.param = "size",
	.params = {
		[SCALE_TINY] = COMPARE_PARAMS(64, 4096, 65536),
		/* 4, 16 and 64 KiB: secrets of several pages (post-quantum and
		 * RSA private keys, TLS records), tars's multi-page classes and
		 * its large-block cache. */
		[SCALE_DEFAULT] = COMPARE_PARAMS(16, 64, 256, 1024, 2048, 4096, 16384, 65536),
		[SCALE_FULL] = COMPARE_PARAMS(16, 32, 64, 68, 128, 200, 208, 256, 512,
		    1024, 2048, 4096, 8192, 16384, 32768, 65536, 131072),
	},
	COMPARE_HEADLINES(
		{ "pair 16 B", "", 16, "ns_per_op", 0 },
		{ "pair 64 B", "", 64, "ns_per_op", 0 },
		{ "pair 64 B, per-op p99.9", "", 64, "op_p999_ns", 0 },
		{ "pair 1024 B", "", 1024, "ns_per_op", 0 },
		{ "pair 4 KiB", "", 4096, "ns_per_op", 0 },
		{ "pair 16 KiB", "", 16384, "ns_per_op", 0 },
		{ "pair 64 KiB", "", 65536, "ns_per_op", 0 },
	),
	.run = pair_run,
};
