/*
 * bench_key.c - key protection and containers.
 *
 *   tars/protect/read_none/SIZE   tars_protect_read + tars_protect_none
 *   tars/key/read_scope/SIZE      tars_key_read_begin + read_end (opens and
 *                                 closes PROT_READ: two mprotect calls)
 *   tars/key/read_nested/SIZE     the same inside an open read scope (only
 *                                 the count changes: no system call)
 *   tars/key/write_scope/SIZE     tars_key_write_begin + write_end
 *   tars/key/new/SIZE             tars_key_new + tars_key_free (the source
 *                                 tars_buf is made outside the timed region)
 *   tars/buf/new_random/SIZE      tars_buf_new_random + tars_buf_free
 *   tars/buf/clone/SIZE           tars_buf_clone + tars_buf_free
 *   tars/buf/equal/SIZE           tars_buf_equal of two equal buffers
 */
#include "bench.h"

#include <errno.h>

#define KEY_SIZE 32

/* Slow operations (system calls): a stretch of one operation. */
#define SLOW_BATCH 8

/* ------------------------------------------------------------------------
 * Protection changes
 * --------------------------------------------------------------------- */

static void bm_protect(gb_state *st, void *ctx)
{
	struct bench_stats bs;
	struct bench_lat lat;
	int failed = 0;
	const char *what = "tars_protect_read";

	(void)ctx;
	void *p = tars_malloc_key((size_t)gb_state_arg(st, 0));
	if (p == NULL) {
		bench_skip_errno(st, "tars_malloc_key", errno);
		return;
	}
	bench_stats_begin(&bs);
	bench_lat_init(&lat);
	while (!failed && gb_batch(st, SLOW_BATCH)) {
		for (int i = 0; i < SLOW_BATCH; i++) {
			if (tars_protect_read(p) != 0) {
				failed = errno;
				break;
			}
			if (tars_protect_none(p) != 0) {
				what = "tars_protect_none";
				failed = errno;
				break;
			}
			bench_lat_mark(&lat, 1);
		}
	}
	bench_stats_end(&bs, st, gb_state_iterations(st));
	if (tars_protect_write(p) != 0 && !failed) {
		what = "tars_protect_write";
		failed = errno;
	}
	tars_free(p);
	if (failed) {
		bench_skip_errno(st, what, failed);
		return;
	}
	bench_lat_report(&lat, st);
}

/* ------------------------------------------------------------------------
 * Key scopes
 * --------------------------------------------------------------------- */

enum scope_kind { SCOPE_READ, SCOPE_NESTED, SCOPE_WRITE };

static void bm_scope(gb_state *st, void *ctx)
{
	const enum scope_kind kind = *(const enum scope_kind *)ctx;
	struct bench_stats bs;
	struct bench_lat lat;
	const void *outer = NULL;
	int failed = 0;
	/* The nested scope costs tens of nanoseconds, the others two
	 * system calls: size the stretch accordingly. */
	const int batch = kind == SCOPE_NESTED ? BENCH_BATCH : SLOW_BATCH;

	tars_key *k = tars_key_new_random((size_t)gb_state_arg(st, 0));
	if (k == NULL) {
		bench_skip_errno(st, "tars_key_new_random", errno);
		return;
	}
	if (kind == SCOPE_NESTED && (outer = tars_key_read_begin(k)) == NULL) {
		bench_skip_errno(st, "tars_key_read_begin (outer)", errno);
		tars_key_free(k);
		return;
	}
	bench_stats_begin(&bs);
	bench_lat_init(&lat);
	while (!failed && gb_batch(st, (uint64_t)batch)) {
		for (int i = 0; i < batch; i++) {
			if (kind == SCOPE_WRITE) {
				void *w = tars_key_write_begin(k);
				if (w == NULL) {
					failed = errno;
					break;
				}
				GB_KEEP(w);
				tars_key_write_end(k);
			} else {
				const void *r = tars_key_read_begin(k);
				if (r == NULL) {
					failed = errno;
					break;
				}
				GB_KEEP(r);
				tars_key_read_end(k);
			}
			if (kind != SCOPE_NESTED)
				bench_lat_mark(&lat, 1);
		}
		if (kind == SCOPE_NESTED)
			bench_lat_mark(&lat, (uint64_t)batch);
	}
	bench_stats_end(&bs, st, gb_state_iterations(st));
	if (outer != NULL)
		tars_key_read_end(k);
	tars_key_free(k);
	if (failed) {
		bench_skip_errno(st, kind == SCOPE_WRITE ? "tars_key_write_begin" :
		    "tars_key_read_begin", failed);
		return;
	}
	bench_lat_report(&lat, st);
}

static enum scope_kind scope_read = SCOPE_READ;
static enum scope_kind scope_nested = SCOPE_NESTED;
static enum scope_kind scope_write = SCOPE_WRITE;

/* ------------------------------------------------------------------------
 * tars_key_new: manual time, the source buffers are made untimed
 * --------------------------------------------------------------------- */

static void bm_key_new(gb_state *st, void *ctx)
{
	struct bench_stats bs;
	struct bench_lat lat;
	tars_buf *bufs[SLOW_BATCH];
	const size_t len = (size_t)gb_state_arg(st, 0);
	double secs = 0;
	int failed = 0;
	const char *what = "tars_buf_new";

	(void)ctx;
	bench_stats_begin(&bs);
	bench_lat_init(&lat);
	while (!failed && gb_batch_manual(st, SLOW_BATCH, secs)) {
		int made = 0;
		for (; made < SLOW_BATCH; made++)
			if ((bufs[made] = tars_buf_new(len)) == NULL)
				break;
		if (made < SLOW_BATCH) {
			failed = errno;
			while (made > 0)
				tars_buf_free(bufs[--made]);
			break;
		}
		uint64_t t0 = bench_now_ns();
		lat.last = t0;
		for (int i = 0; i < SLOW_BATCH; i++) {
			tars_key *k = tars_key_new(bufs[i]);
			if (k == NULL) {
				what = "tars_key_new";
				failed = errno;
				while (i < SLOW_BATCH)
					tars_buf_free(bufs[i++]);
				break;
			}
			GB_KEEP(k);
			tars_key_free(k);
			bench_lat_mark(&lat, 1);
		}
		secs = (double)(bench_now_ns() - t0) * 1e-9;
	}
	bench_stats_end(&bs, st, gb_state_iterations(st));
	if (failed) {
		bench_skip_errno(st, what, failed);
		return;
	}
	bench_lat_report(&lat, st);
}

/* ------------------------------------------------------------------------
 * tars_buf
 * --------------------------------------------------------------------- */

static void bm_buf_new_random(gb_state *st, void *ctx)
{
	struct bench_stats bs;
	struct bench_lat lat;
	const size_t len = (size_t)gb_state_arg(st, 0);
	int failed = 0;

	(void)ctx;
	bench_stats_begin(&bs);
	bench_lat_init(&lat);
	while (!failed && gb_batch(st, SLOW_BATCH)) {
		for (int i = 0; i < SLOW_BATCH; i++) {
			tars_buf *b = tars_buf_new_random(len);
			if (b == NULL) {
				failed = errno;
				break;
			}
			GB_KEEP(b);
			tars_buf_free(b);
			bench_lat_mark(&lat, 1);
		}
	}
	bench_stats_end(&bs, st, gb_state_iterations(st));
	if (failed) {
		bench_skip_errno(st, "tars_buf_new_random", failed);
		return;
	}
	bench_lat_report(&lat, st);
}

static void bm_buf_clone(gb_state *st, void *ctx)
{
	struct bench_stats bs;
	struct bench_lat lat;
	int failed = 0;

	(void)ctx;
	tars_buf *src = tars_buf_new_random((size_t)gb_state_arg(st, 0));
	if (src == NULL) {
		bench_skip_errno(st, "tars_buf_new_random", errno);
		return;
	}
	bench_stats_begin(&bs);
	bench_lat_init(&lat);
	while (!failed && gb_batch(st, BENCH_BATCH)) {
		for (int i = 0; i < BENCH_BATCH; i++) {
			tars_buf *c = tars_buf_clone(src);
			if (c == NULL) {
				failed = errno;
				break;
			}
			GB_KEEP(c);
			tars_buf_free(c);
		}
		bench_lat_mark(&lat, BENCH_BATCH);
	}
	bench_stats_end(&bs, st, gb_state_iterations(st));
	tars_buf_free(src);
	if (failed) {
		bench_skip_errno(st, "tars_buf_clone", failed);
		return;
	}
	bench_lat_report(&lat, st);
}

static void bm_buf_equal(gb_state *st, void *ctx)
{
	struct bench_stats bs;
	struct bench_lat lat;

	(void)ctx;
	tars_buf *a = tars_buf_new_random((size_t)gb_state_arg(st, 0));
	tars_buf *b = a ? tars_buf_clone(a) : NULL;
	if (b == NULL) {
		bench_skip_errno(st, a ? "tars_buf_clone" : "tars_buf_new_random", errno);
		tars_buf_free(a);
		return;
	}
	bench_stats_begin(&bs);
	bench_lat_init(&lat);
	int unequal = 0;
	while (gb_batch(st, BENCH_BATCH)) {
		for (int i = 0; i < BENCH_BATCH; i++) {
			int r = tars_buf_equal(a, b);
			GB_KEEP(r);
			unequal |= r != 1;
		}
		bench_lat_mark(&lat, BENCH_BATCH);
	}
	bench_stats_end(&bs, st, gb_state_iterations(st));
	tars_buf_free(a);
	tars_buf_free(b);
	if (unequal) {
		gb_skip(st, "tars_buf_equal: a buffer and its clone compare unequal");
		return;
	}
	bench_lat_report(&lat, st);
}

/* ------------------------------------------------------------------------
 * Registration
 * --------------------------------------------------------------------- */

void bench_register_key(void)
{
	gb_bench_arg(gb_register("tars/protect/read_none", bm_protect, NULL), KEY_SIZE);
	gb_bench_arg(gb_register("tars/key/read_scope", bm_scope, &scope_read), KEY_SIZE);
	gb_bench_arg(gb_register("tars/key/read_nested", bm_scope, &scope_nested), KEY_SIZE);
	gb_bench_arg(gb_register("tars/key/write_scope", bm_scope, &scope_write), KEY_SIZE);
	gb_bench_arg(gb_bench_manual_time(gb_register("tars/key/new", bm_key_new, NULL)),
	    KEY_SIZE);
	gb_bench_arg(gb_register("tars/buf/new_random", bm_buf_new_random, NULL), KEY_SIZE);
	gb_bench_arg(gb_register("tars/buf/clone", bm_buf_clone, NULL), KEY_SIZE);
	gb_bench *eq = gb_register("tars/buf/equal", bm_buf_equal, NULL);
	gb_bench_arg(eq, KEY_SIZE);
	gb_bench_arg(eq, 1024);
}
