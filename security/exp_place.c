/*
 * exp_place.c - where the allocator puts blocks, as addresses: the raw
 * material of the entropy figures (security.py computes them).
 *
 *   first    the first -n allocations of a fresh process (the driver runs
 *            many processes: placement across processes)
 *   seq      -n consecutive allocations: distances from one to the next
 *   reuse    in a prepared state (-S), -n samples of "allocate one block,
 *            note where it went, free it": the distribution of the next
 *            placement over pages and over offsets within a page
 *   forkdiv  two forked children of one parent allocate -n blocks each:
 *            do they make the same choices?
 */
#include "sec.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static uintptr_t page_of(uintptr_t a)
{
	return a & ~(uintptr_t)(sec_cfg.page - 1);
}

/* The stride of slots: tars's slot size for its chunk kinds, else the
 * request size (an approximation the report labels as such). */
static size_t stride(void)
{
	if (sec_backend.slot != NULL && (strcmp(sec_cfg.kind->name, "tars") == 0 ||
	    strcmp(sec_cfg.kind->name, "tars-buf") == 0))
		return sec_backend.slot(sec_cfg.size);
	return sec_cfg.size;
}

/* n allocations of the kind under test; addresses into out (harness
 * memory).  0, or -1 with err set. */
static int alloc_n(size_t n, uintptr_t *out, void **handles, char *err, size_t errlen)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char *d;
		void *h = sec_cfg.kind->alloc(sec_cfg.size, &d);

		if (h == NULL)
			return sec_fail(err, errlen, "allocation %zu of %zu failed: %s", i + 1, n,
			    strerrorname_np(errno));
		out[i] = (uintptr_t)d;
		if (handles != NULL)
			handles[i] = h;
	}
	return 0;
}

static void emit_addrs(const char *key, const uintptr_t *a, size_t n)
{
	js_array(key);
	for (size_t i = 0; i < n; i++)
		js_u64(NULL, a[i]);
	js_array_end();
}

int exp_first(char *err, size_t errlen)
{
	uintptr_t *a = sec_mem(sec_cfg.count * sizeof *a);

	if (alloc_n(sec_cfg.count, a, NULL, err, errlen) != 0)
		return -1;
	js_u64("stride", stride());
	emit_addrs("addrs", a, sec_cfg.count);
	return 0;
}

int exp_seq(char *err, size_t errlen)
{
	return exp_first(err, errlen);
}

/* Index of v in the sorted array a[0, n), or -1. */
static long find(const uintptr_t *a, size_t n, uintptr_t v)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (a[mid] < v)
			lo = mid + 1;
		else if (a[mid] > v)
			hi = mid;
		else
			return (long)mid;
	}
	return -1;
}

/* The nonzero entries of a per-offset histogram, as [offset, count]
 * pairs, closing the array the caller opened. */
static void emit_offsets(const uint64_t *hist, size_t page)
{
	for (size_t o = 0; o < page; o++) {
		if (hist[o] == 0)
			continue;
		js_array(NULL);
		js_u64(NULL, o);
		js_u64(NULL, hist[o]);
		js_array_end();
	}
	js_array_end();
}

/*
 * States of reuse:
 *   empty      one block allocated and freed: the class has one page, empty
 *   alternate  -p pages filled, then every other block (in address order)
 *              freed: every page has free slots spread over it
 *   halfrun    -p pages filled, then the blocks in the first half of each
 *              page freed: every page has one run of free slots
 * "Candidate pages" are the pages holding the freed blocks.
 */
int exp_reuse(char *err, size_t errlen)
{
	const size_t page = sec_cfg.page, st = stride();
	const char *state = sec_cfg.state;
	size_t fill, nfreed = 0, ncand = 0, samples = sec_cfg.count;
	uintptr_t *addr, *freed, *cand, prev = 0;
	void **handles;
	uint64_t *page_hist, *off_hist, *per_page, *delta, same_prev = 0, in_freed = 0;

	if (strcmp(state, "empty") == 0)
		fill = 1;
	else if (strcmp(state, "alternate") == 0 || strcmp(state, "halfrun") == 0)
		fill = sec_cfg.pages * (page / st);
	else
		return sec_fail(err, errlen, "unknown state %s (empty, alternate, halfrun)", state);
	addr = sec_mem(fill * sizeof *addr);
	freed = sec_mem(fill * sizeof *freed);
	cand = sec_mem(fill * sizeof *cand);
	handles = sec_mem(fill * sizeof *handles);
	if (alloc_n(fill, addr, handles, err, errlen) != 0)
		return -1;
	/* Free in address order (the allocation order could itself be
	 * random): sort the handles along with the addresses.  Insertion
	 * sort: qsort may call malloc, which would disturb glibc's heap. */
	for (size_t i = 1; i < fill; i++)
		for (size_t j = i; j > 0 && addr[j - 1] > addr[j]; j--) {
			uintptr_t ta = addr[j];
			void *th = handles[j];

			addr[j] = addr[j - 1];
			handles[j] = handles[j - 1];
			addr[j - 1] = ta;
			handles[j - 1] = th;
		}
	for (size_t i = 0; i < fill; i++) {
		int go = fill == 1 ||
		    (state[0] == 'a' && i % 2 == 1) ||
		    (state[0] == 'h' && (addr[i] & (page - 1)) < page / 2);

		if (!go)
			continue;
		sec_cfg.kind->release(handles[i], sec_cfg.size);
		freed[nfreed++] = addr[i];
		if (ncand == 0 || cand[ncand - 1] != page_of(addr[i]))
			cand[ncand++] = page_of(addr[i]);
	}
	/* freed[] and cand[] are sorted: addr[] was. */
	per_page = sec_mem(ncand * sizeof *per_page);
	for (size_t i = 0; i < nfreed; i++)
		per_page[find(cand, ncand, page_of(freed[i]))]++;
	if (fill == 1 && st != 0)
		per_page[0] = page / st;   /* the whole page is free */

	page_hist = sec_mem((ncand + 1) * sizeof *page_hist);
	off_hist = sec_mem(page * sizeof *off_hist);
	delta = sec_mem(samples * sizeof *delta);
	for (size_t s = 0; s < samples; s++) {
		unsigned char *d;
		void *h = sec_cfg.kind->alloc(sec_cfg.size, &d);
		uintptr_t a = (uintptr_t)d;
		long r;

		if (h == NULL)
			return sec_fail(err, errlen, "sample %zu: allocation failed: %s", s,
			    strerrorname_np(errno));
		r = find(cand, ncand, page_of(a));
		page_hist[r < 0 ? ncand : (size_t)r]++;
		off_hist[a & (page - 1)]++;
		same_prev += s > 0 && a == prev;
		/* Signed distance from the previous sample, mapped to an
		 * order-preserving unsigned key (sign bit flipped). */
		if (s > 0)
			delta[s - 1] = (uint64_t)((int64_t)(a - prev)) ^ (UINT64_C(1) << 63);
		in_freed += find(freed, nfreed, a) >= 0;
		prev = a;
		sec_cfg.kind->release(h, sec_cfg.size);
	}
	js_str("state", state);
	js_u64("stride", st);
	js_u64("filled", fill);
	js_u64("freed", nfreed);
	js_u64("samples", samples);
	js_u64("same_as_previous", same_prev);
	js_u64("in_freed", in_freed);
	js_array("offset_hist");     /* [offset in page, samples] */
	emit_offsets(off_hist, page);
	js_array("delta_hist");      /* [distance from the previous sample, count] */
	if (samples > 1) {
		size_t n = samples - 1;

		sec_sort_u64(delta, n);
		for (size_t i = 0, j; i < n; i = j) {
			for (j = i; j < n && delta[j] == delta[i]; j++)
				;
			js_array(NULL);
			js_i64(NULL, (int64_t)(delta[i] ^ (UINT64_C(1) << 63)));
			js_u64(NULL, j - i);
			js_array_end();
		}
	}
	js_array_end();
	js_array("freed_offsets");   /* [offset in page, blocks freed there] */
	memset(off_hist, 0, page * sizeof *off_hist);
	for (size_t i = 0; i < nfreed; i++)
		off_hist[freed[i] & (page - 1)]++;
	emit_offsets(off_hist, page);
	js_array("free_per_candidate_page");
	for (size_t i = 0; i < ncand; i++)
		js_u64(NULL, per_page[i]);
	js_array_end();
	js_array("page_hist");   /* per candidate page, then "elsewhere" */
	for (size_t i = 0; i <= ncand; i++)
		js_u64(NULL, page_hist[i]);
	js_array_end();
	return 0;
}

struct forkdiv_arg {
	uintptr_t *out;
	size_t n;
};

static void forkdiv_child(void *p)
{
	struct forkdiv_arg *a = p;
	char err[256];

	if (alloc_n(a->n, a->out, NULL, err, sizeof err) != 0)
		_exit(1);
}

int exp_forkdiv(char *err, size_t errlen)
{
	const size_t n = sec_cfg.count;
	uintptr_t *shared = sec_mem_shared(2 * n * sizeof *shared), *mine = sec_mem(n * sizeof *mine);
	struct forkdiv_arg a[2] = { { shared, n }, { shared + n, n } };
	struct sec_child st;
	char desc[64];
	uint64_t same_children = 0, same_parent = 0;
	uintptr_t one;

	/* The parent's allocator is initialised and has made choices. */
	if (alloc_n(1, &one, NULL, err, errlen) != 0)
		return -1;
	for (int c = 0; c < 2; c++)
		if (sec_child_run(forkdiv_child, &a[c], 30, &st) != 0)
			return sec_fail(err, errlen, "child %d: %s", c,
			    sec_child_desc(&st, desc, sizeof desc));
	if (alloc_n(n, mine, NULL, err, errlen) != 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		same_children += shared[i] == shared[n + i];
		same_parent += shared[i] == mine[i];
	}
	js_u64("n", n);
	js_u64("same_in_both_children", same_children);
	js_u64("same_in_child_and_parent", same_parent);
	return 0;
}
