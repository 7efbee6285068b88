/* wl_keylife.c - the life of a key: a 32-byte secret of random bytes made,
 * closed at rest, and freed (wiped).  tars-key: tars_key_new_random +
 * tars_key_free; the other backends that can protect a buffer:
 * alloc_secret + getrandom + protect_none, then release_secret.  Ratios to
 * tars-key, the workload's reference. */
#include "compare.h"

#include <errno.h>
#include <sys/random.h>

struct keylife_ctx {
	size_t size;
};

/* A random key of the backend's own kind, closed, then freed. */
static int keylife_op(void *ctx, size_t i)
{
	struct keylife_ctx *c = ctx;
	const struct compare_backend *b = &compare_backend;
	void *k;
	ssize_t got;

	(void)i;
	if (b->key_new != NULL) {
		k = b->key_new(c->size);
		if (k == NULL)
			return -1;
		b->key_free(k, c->size);
		return 0;
	}
	k = b->alloc_secret(c->size);
	if (k == NULL) {
		if (compare_fail_call == NULL)
			compare_fail_call = "alloc_secret";
		return -1;
	}
	got = getrandom(k, c->size, 0);
	if (got != (ssize_t)c->size || b->protect_none(k, c->size) != 0) {
		int e = got < 0 ? errno : got != (ssize_t)c->size ? EIO : errno;

		compare_fail_call = got != (ssize_t)c->size ? "getrandom" : "protect_none";
		b->release_secret(k, c->size);
		errno = e;
		return -1;
	}
	b->release_secret(k, c->size);
	return 0;
}

static void keylife_one(const struct compare_workload *w, long size)
{
	struct measure_key k = { w->name, "life", w->param, (double)size };
	struct keylife_ctx c = { (size_t)size };

	if (compare_backend.key_new == NULL && compare_backend.protect_none == NULL) {
		compare_emit_status(&k, "ns_per_op", "unsupported", 0,
		    "the backend cannot keep a buffer closed at rest");
		return;
	}
	if (compare_prepare(c.size * 4 + 4096, 4, &k) != 0)
		return;
	(void)run_reps(&k, keylife_op, &c, compare_cfg.rep_seconds,
	    compare_backend.key_new != NULL
	    ? "new random key (closed at rest) + free, the backend's key container"
	    : "alloc_secret + getrandom + protect none + release (wiped)");
}

static int keylife_run(const struct compare_workload *w)
{
	compare_for_params(w, 1, 1L << 20, keylife_one);
	return 0;
}

COMPARE_WORKLOAD(wl_keylife) = {
	.name = "keylife",
	.what = "a key's life: new random 32-byte key, closed at rest, freed "
	    "(backends that keep keys closed)",
	.param = "size",
	.params = {
		[SCALE_TINY] = COMPARE_PARAMS(32),
		[SCALE_DEFAULT] = COMPARE_PARAMS(32),
		[SCALE_FULL] = COMPARE_PARAMS(32),
	},
	COMPARE_HEADLINES(
		{ "key life (new + free, 32 B)", "life", 32, "ns_per_op", 0 },
		{ "key life, per-op p99", "life", 32, "op_p99_ns", 0 },
	),
	.run = keylife_run,
	.reference = "tars-key",
};
