/*
 * exp_window.c - freed memory that stays mapped and writable.
 *
 *   window  -n blocks of -s bytes (-s 0: sizes 32, 48, ... 2048 in turn, every
 *           chunk class), each holding the secret in its first 32 bytes,
 *           are freed in random order.  Then: the state of every page
 *           that held them (read-write, PROT_NONE, other, unmapped, from
 *           /proc/self/maps), what the read-write ones contain (free junk,
 *           zeros, the harness's fill, other), the allocator's statistics
 *           before and after (tars: every field, enumerated), and a scan of
 *           all resident memory for the secret.
 *   churn   -L live blocks; -M times a random one is freed and a new one
 *           allocated.  For every freed address: after how many allocations
 *           it is handed out again (its reuse distance), and, for those
 *           never reused, what their pages are at the end.
 */
#include "sec.h"

#include <errno.h>
#include <string.h>

#define FREE_JUNK 0xdf   /* tars's free junk; counted for any backend */

/* Sorts a and drops repeats; the number left. */
static size_t sort_unique(uint64_t *a, size_t n)
{
	size_t u = 0;

	sec_sort_u64(a, n);
	for (size_t i = 0; i < n; i++)
		if (u == 0 || a[u - 1] != a[i])
			a[u++] = a[i];
	return u;
}

static void emit_states(const char *key, const struct sec_pagestates *ps)
{
	js_open(key);
	js_u64("rw", ps->rw);
	js_u64("none", ps->none);
	js_u64("none_resident", ps->none_resident);
	js_u64("other", ps->other);
	js_u64("unmapped", ps->unmapped);
	js_close();
}

#define MIXED_SIZES 127   /* 32 + 16 k for k < 127: 32 .. 2048 */

static size_t block_size(size_t i)
{
	return sec_cfg.size ? sec_cfg.size : 32 + 16 * (i % MIXED_SIZES);
}

int exp_window(char *err, size_t errlen)
{
	const size_t n = sec_cfg.count, page = sec_cfg.page;
	void **h = sec_mem(n * sizeof *h);
	size_t *order = sec_mem(n * sizeof *order);
	unsigned char **d = sec_mem(n * sizeof *d), *copy = sec_mem(page);
	uint64_t *pages = sec_mem(n * sizeof *pages);
	struct sec_pagestates live_ps, ps;
	struct sec_maps maps = {0};
	struct sec_scan scan_live, scan;
	struct sec_rng rng;
	uint64_t junk = 0, zero = 0, fill = 0, unread = 0, readable = 0;
	size_t npages;

	if (sec_cfg.size != 0 && sec_cfg.size < SEC_SECRET_LEN)
		return sec_fail(err, errlen, "-s must be 0 or at least %d", SEC_SECRET_LEN);
	sec_rng_seed(&rng, sec_cfg.seed);
	for (size_t i = 0; i < n; i++) {
		if ((h[i] = sec_plant(sec_cfg.kind, block_size(i), &d[i])) == NULL)
			return sec_fail(err, errlen, "allocation %zu of %zu failed: %s", i + 1, n,
			    strerrorname_np(errno));
		pages[i] = (uintptr_t)d[i] & ~(uintptr_t)(page - 1);
	}
	npages = sort_unique(pages, n);
	sec_pages_classify(pages, npages, &live_ps);
	if (sec_scan_secret(&scan_live) != 0)
		return sec_fail(err, errlen, "scan: %s", strerror(errno));
	if (sec_backend.stats != NULL)
		sec_backend.stats("stats_live");

	/* Free in random order (Fisher-Yates on the indices). */
	for (size_t i = 0; i < n; i++)
		order[i] = i;
	for (size_t i = n; i > 1; i--) {
		size_t j = sec_rng_below(&rng, i), t = order[i - 1];

		order[i - 1] = order[j];
		order[j] = t;
	}
	for (size_t i = 0; i < n; i++)
		sec_cfg.kind->release(h[order[i]], block_size(order[i]));
	if (sec_backend.stats != NULL)
		sec_backend.stats("stats_freed");
	sec_pages_classify(pages, npages, &ps);

	/* What the freed pages that are still readable hold. */
	if (sec_maps_read(&maps) != 0)
		return sec_fail(err, errlen, "/proc/self/maps: %s", strerror(errno));
	for (size_t i = 0; i < npages; i++) {
		const struct sec_map *m = sec_maps_find(&maps, (uintptr_t)pages[i]);

		if (m == NULL || m->perm[0] != 'r')
			continue;
		if (sec_read(copy, (const void *)pages[i], page) != 0) {
			unread += page;
			continue;
		}
		readable += page;
		for (size_t b = 0; b < page; b++) {
			junk += copy[b] == FREE_JUNK;
			zero += copy[b] == 0;
			fill += copy[b] == 'A';
		}
	}
	sec_maps_free(&maps);
	explicit_bzero(copy, page);
	if (sec_scan_secret(&scan) != 0)
		return sec_fail(err, errlen, "scan: %s", strerror(errno));

	js_u64("blocks", n);
	js_u64("pages", npages);
	emit_states("pages_live", &live_ps);
	emit_states("pages_freed", &ps);
	js_u64("freed_rw_bytes", (uint64_t)ps.rw * page);
	js_u64("freed_none_bytes", (uint64_t)ps.none * page);
	js_open("readable_content");   /* bytes of the freed pages still readable */
	js_u64("bytes", readable);
	js_u64("free_junk", junk);
	js_u64("zero", zero);
	js_u64("fill", fill);
	js_u64("unreadable", unread);
	js_u64("other", readable - junk - zero - fill);
	js_close();
	js_u64("scan_live_full", scan_live.full);
	js_u64("scan_full", scan.full);
	js_u64("scan_windows", scan.windows);
	js_u64("scan_bytes", scan.bytes);
	js_u64("scan_unreadable", scan.unreadable);
	return 0;
}

/* ---- churn: reuse distance --------------------------------------------------------- */

/* Freed addresses waiting for reuse: linear probing, deletion by backward
 * shift (Knuth's Algorithm R), so no tombstones pile up. */
struct waiting {
	uintptr_t *key;
	uint64_t *op;
	size_t mask, n;
};

static size_t slot_of(const struct waiting *w, uintptr_t k)
{
	uint64_t x = (uint64_t)k * UINT64_C(0x9e3779b97f4a7c15);

	return (size_t)(x >> 20) & w->mask;
}

static void w_put(struct waiting *w, uintptr_t k, uint64_t op)
{
	size_t i = slot_of(w, k);

	while (w->key[i] != 0 && w->key[i] != k)
		i = (i + 1) & w->mask;
	w->n += w->key[i] == 0;
	w->key[i] = k;
	w->op[i] = op;
}

/* The op at which k was freed, and k removed; 0 if k is not waiting. */
static uint64_t w_take(struct waiting *w, uintptr_t k)
{
	size_t i = slot_of(w, k), j;
	uint64_t op;

	while (w->key[i] != k) {
		if (w->key[i] == 0)
			return 0;
		i = (i + 1) & w->mask;
	}
	op = w->op[i];
	w->n--;
	for (j = i;;) {
		size_t home;

		w->key[i] = 0;
		do {
			j = (j + 1) & w->mask;
			if (w->key[j] == 0)
				return op;
			home = slot_of(w, w->key[j]);
		} while (i <= j ? (i < home && home <= j) : (i < home || home <= j));
		w->key[i] = w->key[j];
		w->op[i] = w->op[j];
		i = j;
	}
}

int exp_churn(char *err, size_t errlen)
{
	const size_t live = sec_cfg.live, ops = sec_cfg.ops, size = sec_cfg.size;
	void **h = sec_mem(live * sizeof *h);
	uintptr_t *a = sec_mem(live * sizeof *a);
	uint64_t *left;
	uint64_t *dist = sec_mem((ops + 1) * sizeof *dist), nd = 0, immediate = 0;
	struct waiting w;
	struct sec_pagestates ps;
	struct sec_rng rng;
	size_t cap = 1024, nleft = 0;

	while (cap < 2 * (ops + live))
		cap *= 2;
	w.key = sec_mem(cap * sizeof *w.key);
	w.op = sec_mem(cap * sizeof *w.op);
	w.mask = cap - 1;
	w.n = 0;
	sec_rng_seed(&rng, sec_cfg.seed);
	for (size_t i = 0; i < live; i++) {
		unsigned char *d;

		if ((h[i] = sec_alloc_filled(sec_cfg.kind, size, 'A', &d)) == NULL)
			return sec_fail(err, errlen, "allocation %zu failed: %s", i + 1,
			    strerrorname_np(errno));
		a[i] = (uintptr_t)d;
	}
	for (uint64_t op = 1; op <= ops; op++) {
		size_t j = sec_rng_below(&rng, live);
		unsigned char *d;
		uint64_t freed_at;

		sec_cfg.kind->release(h[j], size);
		w_put(&w, a[j], op);
		if ((h[j] = sec_alloc_filled(sec_cfg.kind, size, 'A', &d)) == NULL)
			return sec_fail(err, errlen, "operation %llu: allocation failed: %s",
			    (unsigned long long)op, strerrorname_np(errno));
		a[j] = (uintptr_t)d;
		freed_at = w_take(&w, a[j]);
		if (freed_at != 0) {
			/* Allocations since the free, this one included. */
			dist[nd++] = op - freed_at + 1;
			immediate += freed_at == op;
		}
	}
	/* The addresses never handed out again: their pages now. */
	left = sec_mem((w.n + 1) * sizeof *left);
	for (size_t i = 0; i <= w.mask; i++)
		if (w.key[i] != 0)
			left[nleft++] = w.key[i] & ~(uintptr_t)(sec_cfg.page - 1);
	sec_pages_classify(left, nleft, &ps);
	sec_sort_u64(dist, nd);

	js_u64("live", live);
	js_u64("ops", ops);
	js_u64("reused", nd);
	js_u64("reused_immediately", immediate);
	js_array("distance_quantiles");   /* [q, allocations] */
	{
		static const double qs[] = { 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 1.0 };

		for (size_t i = 0; nd && i < sizeof qs / sizeof qs[0]; i++) {
			size_t idx = (size_t)(qs[i] * (double)(nd - 1) + 0.5);

			js_array(NULL);
			js_num(NULL, qs[i]);
			js_u64(NULL, dist[idx]);
			js_array_end();
		}
	}
	js_array_end();
	js_u64("never_reused", nleft);
	emit_states("never_reused_pages", &ps);
	return 0;
}
