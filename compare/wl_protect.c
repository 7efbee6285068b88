/* wl_protect.c - toggle a 32-byte secret between no access and read. */
#include "compare.h"

#include <errno.h>
#include <string.h>

struct protect_ctx {
	void *p;
	size_t size;
	volatile unsigned char sink;
};

static int protect_op(void *ctx, size_t i)
{
	struct protect_ctx *c = ctx;

	(void)i;
	if (compare_backend.protect_read(c->p, c->size) != 0)
		return -1;
	c->sink = ((const unsigned char *)c->p)[c->size - 1];
	if (compare_backend.protect_none(c->p, c->size) != 0)
		return -1;
	return 0;
}

static int protect_run(const struct compare_workload *w)
{
	struct measure_key k = { w->name, "toggle", w->param, 32 };
	struct protect_ctx c = { NULL, 32, 0 };

	compare_progress("  protect 32-byte secret none <-> read");
	if (compare_backend.protect_none == NULL) {
		compare_emit_status(&k, "ns_per_op", "unsupported", 0,
		    "the backend cannot change the protection of one buffer");
		return 0;
	}
	if (compare_prepare(4096, 1, &k) != 0)
		return 0;
	compare_fail_call = NULL;
	c.p = compare_backend.alloc_secret(c.size);
	if (c.p == NULL) {
		struct run_result r = { .err = errno, .call = compare_fail_call };

		compare_emit_failure(&k, "ns_per_op", &r, "secret allocation");
		return 0;
	}
	compare_touch(c.p, c.size, 0x5a);
	if (compare_backend.protect_none(c.p, c.size) != 0) {
		struct run_result r = { .err = errno, .call = "protect_none" };

		compare_emit_failure(&k, "ns_per_op", &r, "first protect");
	} else {
		(void)run_reps(&k, protect_op, &c, compare_cfg.rep_seconds,
		    "protect read + read one byte + protect none (two mprotect)");
		if (compare_backend.protect_read(c.p, c.size) != 0)
			compare_progress("  protect: cannot reopen the secret: %s", strerror(errno));
	}
	compare_backend.release_secret(c.p, c.size);
	return 0;
}

COMPARE_WORKLOAD(wl_protect) = {
	.name = "protect",
	.what = "protect read, read one byte, protect none (backends that can)",
	.param = "size",
	.params = {
		[SCALE_TINY] = COMPARE_PARAMS(32),
		[SCALE_DEFAULT] = COMPARE_PARAMS(32),
		[SCALE_FULL] = COMPARE_PARAMS(32),
	},
	COMPARE_HEADLINES(
		{ "protect toggle", "toggle", 32, "ns_per_op", 0 },
	),
	.run = protect_run,
	.reference = "tars-key",
};
