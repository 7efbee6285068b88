/*
 * exp_overread.c - what a read past a small buffer, or through a dangling
 * pointer, shows of a secret.  Each trial runs in a forked child with a
 * fresh secret; faults are caught (sec_read) and counted as outcomes.
 *
 *   overread  -n blocks of -s bytes: one (at a random position of the
 *             allocation order, never first or last) holds the secret (in a
 *             block of -z bytes if given), the others are filled with 'A'.  Every other block is read from
 *             its start for size + N bytes (each -N length), as a
 *             Heartbleed-style memcpy would; the copy is searched for the
 *             secret.  "prev" is the block allocated just before the
 *             secret, "next" the one just after.
 *   uaf       a secret block is freed; its dangling pointer is read, a block
 *             of the same size is allocated (is it the same address? does
 *             it hold the secret?), the dangling pointer read again, 64
 *             more blocks allocated, and all of the process's memory
 *             scanned for the secret.
 */
#include "sec.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define TRIAL_SECS 30

/* ---- over-read ---------------------------------------------------------------- */

struct over_counts {
	uint32_t prev_windows, prev_fault, next_windows, next_fault;
	uint32_t any, full, fault;   /* blocks (secret's excluded) */
};

/* Every trial's result starts with this. */
struct trial_head {
	uint32_t done;         /* 1: the trial ran to its end */
	int32_t setup_errno;   /* an allocation the trial needed failed */
};

struct over_trial {
	struct trial_head head;
	uint32_t blocks;
	struct over_counts n[SEC_MAX_N];
};

struct trial_arg {
	void *out;     /* this trial's slot in shared memory */
	size_t index;
};

static void over_child(void *p)
{
	struct trial_arg *ta = p;
	struct over_trial *out = ta->out;
	const size_t count = sec_cfg.count, size = sec_cfg.size;
	size_t maxn = 0, s;
	struct sec_rng rng;
	unsigned char **data = sec_mem(count * sizeof *data), *dst;

	for (size_t i = 0; i < sec_cfg.nover; i++)
		if (sec_cfg.over[i] > maxn)
			maxn = sec_cfg.over[i];
	dst = sec_mem(size + maxn);
	sec_rng_seed(&rng, sec_cfg.seed ^ (ta->index * UINT64_C(0x9e3779b97f4a7c15)));
	sec_secret_renew();
	s = 1 + sec_rng_below(&rng, count - 2);
	for (size_t i = 0; i < count; i++) {
		void *h = i == s ? sec_plant(sec_cfg.kind, sec_cfg.secret_size ?
		    sec_cfg.secret_size : size, &data[i]) :
		    sec_alloc_filled(sec_cfg.bkind, size, 'A', &data[i]);

		if (h == NULL) {
			out->head.setup_errno = errno;
			_exit(1);
		}
	}
	out->blocks = (uint32_t)(count - 1);
	for (size_t k = 0; k < sec_cfg.nover; k++) {
		struct over_counts *c = &out->n[k];
		size_t len = size + sec_cfg.over[k];

		for (size_t i = 0; i < count; i++) {
			unsigned w;

			if (i == s)
				continue;
			if (sec_read(dst, data[i], len) != 0) {
				c->fault++;
				c->prev_fault += i == s - 1;
				c->next_fault += i == s + 1;
				continue;
			}
			w = sec_windows_in(dst, len);
			explicit_bzero(dst, len);
			c->any += w > 0;
			c->full += w == SEC_SECRET_LEN / SEC_WINDOW;
			if (i == s - 1)
				c->prev_windows = w;
			if (i == s + 1)
				c->next_windows = w;
		}
	}
	out->head.done = 1;
}

/* Trials in forked children; a child that dies is a result (counted, the
 * first reason kept), never the end of the run. */
static size_t run_trials(void (*fn)(void *), void *results, size_t each,
    size_t *failed, char *first_fail, size_t flen)
{
	size_t ok = 0;

	*failed = 0;
	for (size_t t = 0; t < sec_cfg.trials; t++) {
		struct trial_arg ta = { (char *)results + t * each, t };
		struct sec_child st;

		if (sec_child_run(fn, &ta, TRIAL_SECS, &st) == 0) {
			ok++;
			continue;
		}
		if ((*failed)++ == 0) {
			char desc[64];
			int e = ((struct trial_head *)ta.out)->setup_errno;

			snprintf(first_fail, flen, "trial %zu: %s%s%s", t,
			    sec_child_desc(&st, desc, sizeof desc),
			    e ? ", allocation failed: " : "", e ? strerrorname_np(e) : "");
		}
	}
	return ok;
}

int exp_overread(char *err, size_t errlen)
{
	struct over_trial *res;
	size_t failed, ok;
	char first_fail[256] = "";

	if (sec_cfg.count < 3)
		return sec_fail(err, errlen, "-n must be at least 3");
	res = sec_mem_shared(sec_cfg.trials * sizeof *res);
	ok = run_trials(over_child, res, sizeof *res, &failed, first_fail, sizeof first_fail);
	js_str("secret_kind", sec_cfg.kind->name);
	js_str("buffer_kind", sec_cfg.bkind->name);
	js_str("buffer_kind_what", sec_cfg.bkind->what);
	js_u64("blocks", sec_cfg.count);
	js_u64("secret_bytes", SEC_SECRET_LEN);
	js_u64("secret_block_size", sec_cfg.secret_size ? sec_cfg.secret_size : sec_cfg.size);
	js_u64("trials", sec_cfg.trials);
	js_u64("trials_ok", ok);
	js_u64("trials_failed", failed);
	js_str("first_failure", failed ? first_fail : NULL);
	js_array("over");
	for (size_t k = 0; k < sec_cfg.nover; k++) {
		uint64_t pe = 0, pf = 0, pfault = 0, ne = 0, nf = 0, nfault = 0;
		uint64_t bl = 0, any = 0, full = 0, fault = 0, trials_any = 0, pw = 0;

		for (size_t t = 0; t < sec_cfg.trials; t++) {
			const struct over_trial *r = &res[t];
			const struct over_counts *c = &r->n[k];

			if (!r->head.done)
				continue;
			pe += c->prev_windows > 0;
			pf += c->prev_windows == SEC_SECRET_LEN / SEC_WINDOW;
			pw += c->prev_windows;
			pfault += c->prev_fault;
			ne += c->next_windows > 0;
			nf += c->next_windows == SEC_SECRET_LEN / SEC_WINDOW;
			nfault += c->next_fault;
			bl += r->blocks;
			any += c->any;
			full += c->full;
			fault += c->fault;
			trials_any += c->any > 0;
		}
		js_open(NULL);
		js_u64("n", sec_cfg.over[k]);
		js_u64("prev_exposed", pe);
		js_u64("prev_full", pf);
		js_u64("prev_windows", pw);
		js_u64("prev_fault", pfault);
		js_u64("next_exposed", ne);
		js_u64("next_full", nf);
		js_u64("next_fault", nfault);
		js_u64("blocks_read", bl);
		js_u64("blocks_exposing", any);
		js_u64("blocks_exposing_full", full);
		js_u64("blocks_faulting", fault);
		js_u64("trials_exposed", trials_any);
		js_close();
	}
	js_array_end();
	return 0;
}

/* ---- use after free -------------------------------------------------------------- */

#define CHURN 64
#define WARM 8

struct uaf_trial {
	struct trial_head head;
	uint32_t dangling_fault, dangling_same, dangling_run;
	uint32_t reused, new_windows, new_checked;
	uint32_t dangling2_fault, dangling2_windows;
	uint32_t churn_exposing, churn_checked;
	uint64_t scan_full, scan_windows, scan_bytes;
	int32_t scan_failed;
};

/* Bytes of the secret still at their place, and the longest such run. */
static void survivors(const unsigned char *p, uint32_t *same, uint32_t *run)
{
	const unsigned char *s = sec_secret();
	uint32_t cur = 0;

	*same = *run = 0;
	for (size_t i = 0; i < SEC_SECRET_LEN; i++) {
		if (p[i] == s[i]) {
			(*same)++;
			if (++cur > *run)
				*run = cur;
		} else {
			cur = 0;
		}
	}
}

static void uaf_child(void *p)
{
	struct trial_arg *ta = p;
	struct uaf_trial *out = ta->out;
	const struct sec_kind *k = sec_cfg.kind;
	const size_t size = sec_cfg.size < SEC_SECRET_LEN ? SEC_SECRET_LEN : sec_cfg.size;
	unsigned char *buf = sec_mem(size), *d, *rd, *cd;
	struct sec_scan scan;
	void *h;

	sec_secret_renew();
	for (int i = 0; i < WARM; i++)
		if (sec_alloc_filled(k, size, 'B', &cd) == NULL)
			goto fail;
	if ((h = sec_plant(k, size, &d)) == NULL)
		goto fail;
	k->release(h, size);

	if (sec_read(buf, d, SEC_SECRET_LEN) != 0) {
		out->dangling_fault = 1;
	} else {
		survivors(buf, &out->dangling_same, &out->dangling_run);
		explicit_bzero(buf, size);
	}

	if (k->alloc(size, &rd) == NULL)
		goto fail;
	out->reused = rd == d;
	if (!k->closed) {
		out->new_checked = 1;
		out->new_windows = sec_windows_in(rd, size);
	}
	if (sec_read(buf, d, SEC_SECRET_LEN) != 0) {
		out->dangling2_fault = 1;
	} else {
		out->dangling2_windows = sec_windows_in(buf, SEC_SECRET_LEN);
		explicit_bzero(buf, size);
	}

	for (int i = 0; i < CHURN; i++) {
		if (k->alloc(size, &cd) == NULL)
			goto fail;
		if (!k->closed) {
			out->churn_checked++;
			out->churn_exposing += sec_windows_in(cd, size) > 0;
		}
	}
	if (sec_scan_secret(&scan) != 0) {
		out->scan_failed = errno ? errno : -1;
	} else {
		out->scan_full = scan.full;
		out->scan_windows = scan.windows;
		out->scan_bytes = scan.bytes;
	}
	out->head.done = 1;
	return;
fail:
	out->head.setup_errno = errno;
	_exit(1);
}

int exp_uaf(char *err, size_t errlen)
{
	struct uaf_trial *res = sec_mem_shared(sec_cfg.trials * sizeof *res);
	size_t failed, ok;
	char first_fail[256] = "";
	uint64_t df = 0, dsame = 0, drun8 = 0, reused = 0, nw = 0, nchk = 0;
	uint64_t d2f = 0, d2w = 0, cexp = 0, cchk = 0, sfull = 0, swin = 0, sbytes = 0;
	uint64_t sfail = 0;

	(void)err;
	(void)errlen;
	ok = run_trials(uaf_child, res, sizeof *res, &failed, first_fail, sizeof first_fail);
	for (size_t t = 0; t < sec_cfg.trials; t++) {
		const struct uaf_trial *r = &res[t];

		if (!r->head.done)
			continue;
		df += r->dangling_fault;
		dsame += r->dangling_same;
		drun8 += r->dangling_run >= SEC_WINDOW;
		reused += r->reused;
		nchk += r->new_checked;
		nw += r->new_windows > 0;
		d2f += r->dangling2_fault;
		d2w += r->dangling2_windows > 0;
		cchk += r->churn_checked;
		cexp += r->churn_exposing > 0;
		sfail += r->scan_failed != 0;
		sfull += r->scan_full > 0;
		swin += r->scan_windows > 0;
		sbytes += r->scan_bytes;
	}
	js_u64("trials", sec_cfg.trials);
	js_u64("trials_ok", ok);
	js_u64("trials_failed", failed);
	js_str("first_failure", failed ? first_fail : NULL);
	js_u64("secret_bytes", SEC_SECRET_LEN);
	js_u64("dangling_fault", df);
	js_u64("dangling_same_bytes", dsame);
	js_u64("dangling_exposed", drun8);
	js_u64("reused_same_address", reused);
	js_u64("new_block_checked", nchk);
	js_u64("new_block_exposed", nw);
	js_u64("dangling_after_realloc_fault", d2f);
	js_u64("dangling_after_realloc_exposed", d2w);
	js_u64("churn_blocks_checked", cchk);
	js_u64("churn_trials_exposed", cexp);
	js_u64("scan_failed", sfail);
	js_u64("scan_found_full", sfull);
	js_u64("scan_found_window", swin);
	js_u64("scan_bytes", sbytes);
	return 0;
}
