/* wl_churn.c - K live slots in steady state: free a random slot, allocate
 * a new size into it, touch it.  Sizes uniform in 16..2048, the crypto
 * sizes, or large (4, 16 and 64 KiB: the multi-page and large-block paths;
 * at most CHURN_LARGE_SLOTS slots, so that the per-mapping designs stay
 * within vm.max_map_count).  Latency, and the bytes of overhead per live
 * slot. */
#include "churn.h"

#include <errno.h>

#define CHURN_LARGE_SLOTS 1000

static const size_t large_sizes[] = { 4096, 16384, 65536 };

/* The variants, in run order: how a size is drawn, the largest size (for
 * the OpenSSL arena) and the most slots the variant runs with. */
enum churn_kind { CHURN_UNIFORM, CHURN_CRYPTO, CHURN_LARGE };

static const struct {
	const char *name;
	size_t max_size;
	size_t max_slots;
} kinds[] = {
	[CHURN_UNIFORM] = { "uniform", 2048, SIZE_MAX },
	[CHURN_CRYPTO] = { "crypto", 2048, SIZE_MAX },
	[CHURN_LARGE] = { "large", 65536, CHURN_LARGE_SLOTS },
};

static size_t churn_draw(struct rng *rng, enum churn_kind kind)
{
	switch (kind) {
	case CHURN_UNIFORM:
		return 16 + rng_below(rng, 2048 - 16 + 1);
	case CHURN_CRYPTO:
		return compare_crypto_sizes[rng_below(rng, compare_ncrypto_sizes)];
	case CHURN_LARGE:
		break;
	}
	return large_sizes[rng_below(rng, NELEM(large_sizes))];
}

int churn_op(void *ctx, size_t i)
{
	struct churn_ctx *c = ctx;
	size_t s = c->slot_stream[i % CHURN_STREAM];
	size_t sz = c->size_stream[(i * 7 + 3) % CHURN_STREAM];
	void *p;

	compare_release(c->ptr[s], c->size[s]);
	c->ptr[s] = NULL;
	p = compare_alloc(sz);
	if (p == NULL)
		return -1;
	compare_touch(p, sz, (unsigned char)i);
	c->ptr[s] = p;
	c->size[s] = sz;
	return 0;
}

static void churn_variant(const struct compare_workload *w, size_t slots,
    enum churn_kind kind)
{
	struct measure_key k = { w->name, kinds[kind].name, w->param, (double)slots };
	struct churn_ctx c;
	struct memsnap base, now;
	struct rng rng;
	size_t filled = 0;
	double live = 0;

	c.ptr = compare_mem(slots * sizeof *c.ptr);
	c.size = compare_mem(slots * sizeof *c.size);
	c.slot_stream = compare_mem(CHURN_STREAM * sizeof *c.slot_stream);
	c.size_stream = compare_mem(CHURN_STREAM * sizeof *c.size_stream);
	/* The uniform and crypto streams are drawn as before the large
	 * variant existed (seed slots * 2 + 1 and slots * 2). */
	rng_seed(&rng, compare_cfg.seed ^ (slots * 2 + (kind == CHURN_UNIFORM)
	    + (kind == CHURN_LARGE ? (size_t)1 << 40 : 0)));
	for (size_t i = 0; i < CHURN_STREAM; i++) {
		c.slot_stream[i] = (uint32_t)rng_below(&rng, slots);
		c.size_stream[i] = (uint32_t)churn_draw(&rng, kind);
	}
	/* Buddy-style arenas round up to a power of two and fragment: room
	 * for twice the worst case. */
	if (compare_prepare(slots * kinds[kind].max_size * 2, slots + 16, &k) != 0)
		goto out;
	(void)memsnap_take(&base);
	for (filled = 0; filled < slots; filled++) {
		size_t sz = c.size_stream[(filled * 13) % CHURN_STREAM];

		compare_fail_call = NULL;
		c.ptr[filled] = compare_alloc(sz);
		if (c.ptr[filled] == NULL) {
			struct run_result r = { .done = filled, .err = errno,
				.call = compare_fail_call };

			compare_emit_failure(&k, "ns_per_op", &r, "prefill");
			goto release;
		}
		compare_touch(c.ptr[filled], sz, 1);
		c.size[filled] = sz;
	}
	if (run_reps(&k, churn_op, &c, compare_cfg.rep_seconds,
	    "free a random slot + alloc + touch") != 0)
		goto release;
	for (size_t i = 0; i < slots; i++)
		live += (double)c.size[i];
	(void)memsnap_take(&now);
	compare_emit_memory(&k, &now, &base);
	compare_emit(&k, "overhead_per_buffer_bytes", (now.rss - base.rss - live) / (double)slots,
	    "bytes", "(VmRSS growth - live requested bytes) / live slots, steady state");
	if (compare_backend.counters)
		compare_backend.counters(&k);
release:
	for (size_t i = 0; i < filled; i++)
		if (c.ptr[i])
			compare_release(c.ptr[i], c.size[i]);
out:
	compare_mem_free(c.ptr, slots * sizeof *c.ptr);
	compare_mem_free(c.size, slots * sizeof *c.size);
	compare_mem_free(c.slot_stream, CHURN_STREAM * sizeof *c.slot_stream);
	compare_mem_free(c.size_stream, CHURN_STREAM * sizeof *c.size_stream);
}

static void churn_one(const struct compare_workload *w, long slots)
{
	for (size_t kind = 0; kind < NELEM(kinds); kind++)
		if ((size_t)slots <= kinds[kind].max_slots && compare_variant_on(kinds[kind].name))
			churn_variant(w, (size_t)slots, (enum churn_kind)kind);
}

static int churn_run(const struct compare_workload *w)
{
	compare_for_params(w, 1, 1L << 30, churn_one);
	return 0;
}

COMPARE_WORKLOAD(wl_churn) = {
	.name = "churn",
	.what = "K live slots: free a random slot, alloc a new size (uniform 16..2048, "
	    "crypto sizes, or large: 4, 16, 64 KiB with at most 1000 slots), touch it",
	.param = "slots",
	.params = {
		[SCALE_TINY] = COMPARE_PARAMS(64),
		[SCALE_DEFAULT] = COMPARE_PARAMS(1000, 10000),
		[SCALE_FULL] = COMPARE_PARAMS(64, 1000, 10000, 100000),
	},
	.per_param = 1,
	COMPARE_HEADLINES(
		{ "churn 1k crypto", "crypto", 1000, "ns_per_op", 0 },
		{ "churn 1k crypto, per-op p99", "crypto", 1000, "op_p99_ns", 0 },
		{ "churn 10k uniform", "uniform", 10000, "ns_per_op", 0 },
		{ "churn 10k uniform: overhead/buffer", "uniform", 10000,
		  "overhead_per_buffer_bytes", 0 },
		{ "churn 1k large (4-64 KiB)", "large", 1000, "ns_per_op", 0 },
		{ "churn 1k large, per-op p99", "large", 1000, "op_p99_ns", 0 },
	),
	.run = churn_run,
};
