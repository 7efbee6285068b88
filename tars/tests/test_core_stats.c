/*
 * Statistics (suite "stats"): every counter the research suite relies on
 * moves by exactly what the documentation says.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "tars.h"
#include "util.h"

TestSuite(stats, .init = no_env);

Test(stats, before_any_allocation)
{
	struct tars_stats s = snap();
	cr_assert_eq(s.page_size, page_size());
	cr_assert_eq(s.live_count, 0);
	cr_assert_eq(s.mallocs, 0);
	cr_assert_eq(s.frees, 0);
	cr_assert_eq(s.chunk_pages + s.large_pages + s.key_pages, 0);
	for (unsigned c = 1; c < TARS_NCLASSES; c++) {
		cr_assert_gt(s.class_size[c], s.class_size[c - 1]);
	}
	cr_assert_eq(s.class_size[0], 0);
	cr_assert_eq(s.class_size[TARS_NCLASSES - 1], 2048);
}

Test(stats, mallocs_frees_and_live_counts)
{
	size_t ps = page_size();
	const size_t sizes[] = {0, 1, 16, 100, 2048, 2049, ps, 3 * ps + 7};
	enum { N = sizeof(sizes) / sizeof(sizes[0]) };
	void *p[N], *k[N];
	struct tars_stats a = snap();
	size_t requested = 0;
	for (size_t i = 0; i < N; i++) {
		p[i] = tars_malloc(sizes[i]);
		k[i] = tars_malloc_key(sizes[i]);
		cr_assert(p[i] && k[i]);
		requested += 2 * sizes[i];
	}
	struct tars_stats b = snap();
	cr_assert_eq(b.mallocs - a.mallocs, 2 * N);
	cr_assert_eq(b.frees, a.frees);
	cr_assert_eq(b.live_count - a.live_count, 2 * N);
	cr_assert_eq(b.live_requested - a.live_requested, requested);
	cr_assert_eq(b.key_count - a.key_count, N);
	cr_assert_eq(b.large_count - a.large_count, 3);  /* 2049, ps, 3ps+7 */
	cr_assert_geq(b.live_reserved - a.live_reserved, requested);
	/* Failures count nothing. */
	void *none = tars_malloc(hide(SIZE_MAX));
	cr_assert_null(none);
	void *none2 = tars_calloc(hide(SIZE_MAX), 3);
	cr_assert_null(none2);
	struct tars_stats c = snap();
	cr_assert_eq(c.mallocs, b.mallocs);
	cr_assert_eq(c.live_count, b.live_count);
	/* realloc is one malloc and one free. */
	p[2] = tars_realloc(p[2], 200);
	cr_assert_not_null(p[2]);
	struct tars_stats d = snap();
	cr_assert_eq(d.mallocs - c.mallocs, 1);
	cr_assert_eq(d.frees - c.frees, 1);
	cr_assert_eq(d.live_count, c.live_count);
	cr_assert_eq(d.live_requested - c.live_requested, 200 - 16);
	for (size_t i = 0; i < N; i++) {
		tars_free(p[i]);
		tars_free(k[i]);
	}
	tars_free(NULL);  /* not a free */
	struct tars_stats e = snap();
	cr_assert_eq(e.frees - d.frees, 2 * N);
	cr_assert_eq(e.live_count, 0);
	cr_assert_eq(e.live_requested, 0);
	cr_assert_eq(e.live_reserved, 0);
	cr_assert_eq(e.large_count + e.key_count, 0);
	cr_assert_eq(e.large_pages + e.key_pages, 0);
	cr_assert_eq(e.mallocs, e.frees);
}

Test(stats, large_and_key_pages_and_guards)
{
	size_t ps = page_size();
	tars_free(tars_malloc(1));               /* pools (and their guards) exist */
	struct tars_stats a = snap();
	void *l1 = tars_malloc(ps + 1);          /* 2 pages: a 2-page slot */
	void *l2 = tars_malloc(3 * ps);          /* 3 pages: a 3-page slot */
	void *l3 = tars_malloc(20 * ps);         /* 20 pages: a mapping */
	void *k1 = tars_malloc_key(1);           /* 1 page */
	void *k0 = tars_malloc_key(0);           /* 1 inaccessible page */
	cr_assert(l1 && l2 && l3 && k1 && k0);
	struct tars_stats b = snap();
	cr_assert_eq(b.large_count - a.large_count, 3);
	cr_assert_eq(b.large_pages - a.large_pages, 25);
	cr_assert_eq(b.key_count - a.key_count, 2);
	cr_assert_eq(b.key_pages - a.key_pages, 2);
	cr_assert_eq(b.slabs - a.slabs, 2);
	/* Two slabs (a guard per slot and one more), one mapping; the keys
	 * share their region's guards (one per slot and one per region). */
	cr_assert_eq(b.guard_pages - a.guard_pages, (32 + 1) + (21 + 1) + 2 +
	    (b.key_slots + b.key_regions) - (a.key_slots + a.key_regions));
	cr_assert_eq(b.live_reserved - a.live_reserved, 27 * ps);
	tars_free(l1);
	tars_free(l2);
	tars_free(l3);
	tars_free(k1);
	tars_free(k0);
	struct tars_stats c = snap();
	cr_assert_eq(c.guard_pages, b.guard_pages - 2);   /* key regions stay */
	cr_assert_eq(c.large_pages + c.key_pages, a.large_pages + a.key_pages);
	/* The slots wait out the quarantine; the mapping is held in it,
	 * guards included, with its pages kept for reuse; the keys wait in
	 * their region. */
	cr_assert_eq(c.slab_held - b.slab_held, 2);
	cr_assert_eq(c.quarantined_blocks - b.quarantined_blocks, 1);
	cr_assert_eq(c.quarantined_pages - b.quarantined_pages, 22);
	cr_assert_eq(c.large_cached_pages - b.large_cached_pages, 20);
	cr_assert_eq(c.key_quarantined - b.key_quarantined, 2);
	cr_assert_eq(c.munmaps, b.munmaps);
}

Test(stats, chunk_pages_and_class_mallocs)
{
	size_t ps = page_size();
	struct tars_stats a = snap();
	/* 8 full pages of 64-byte slots. */
	size_t per = ps / 64, n = 8 * per;
	void **p = calloc(n, sizeof(*p));
	cr_assert_not_null(p);
	for (size_t i = 0; i < n; i++) {
		p[i] = tars_malloc(64);
		cr_assert_not_null(p[i]);
	}
	struct tars_stats b = snap();
	cr_assert_geq(b.chunk_pages - a.chunk_pages, 8);
	cr_assert_lt(b.chunk_pages - a.chunk_pages, 12, "%zu pages for 8 pages of slots",
	    b.chunk_pages - a.chunk_pages);
	unsigned cls = 0;
	while (b.class_size[cls] != 64) {
		cls++;
	}
	cr_assert_eq(b.class_mallocs[cls] - a.class_mallocs[cls], n);
	cr_assert_eq(b.live_reserved - a.live_reserved, n * 64);
	/* Size-0 blocks live in their own pages and class 0. */
	void *z = tars_malloc(0);
	struct tars_stats c = snap();
	cr_assert_eq(c.class_mallocs[0] - b.class_mallocs[0], 1);
	cr_assert_eq(c.zero_pages - b.zero_pages, 1);
	cr_assert_eq(c.chunk_pages, b.chunk_pages);
	tars_free(z);
	for (size_t i = 0; i < n; i++) {
		tars_free(p[i]);
	}
	/* Far below spare=128: the heap keeps every emptied page, writable
	 * and wiped, for the next burst. */
	struct tars_stats d = snap();
	cr_assert_eq(d.chunk_pages, b.chunk_pages);
	cr_assert_eq(d.empty_pages, d.chunk_pages);
	cr_assert_eq(d.zero_pages, 1);
	cr_assert_eq(d.cached_pages, a.cached_pages);
	/* With spare=1, the next page to empty trims the heap to one empty
	 * page, besides the last page of each class (here the size-0 one). */
	cr_assert_eq(tars_option_set("spare", 1), 0);
	tars_free(tars_malloc(64));
	struct tars_stats e = snap();
	cr_assert_eq(e.chunk_pages, 1, "%zu pages kept", e.chunk_pages);
	cr_assert_eq(e.zero_pages, 1);
	cr_assert_eq(e.cached_pages - d.cached_pages, d.chunk_pages - 1);
	free(p);
}

/*
 * Option spare: 16 full pages of 64-byte slots (first fit, so page k holds
 * p[k * per .. k * per + per - 1]); one slot freed in each of pages 0..7
 * (8 partly used pages), then pages 8..15 emptied.  A heap keeps at most
 * `spare` empty pages: all 8 under spare=16, `spare` under less, the
 * newest ones (the oldest go to the cache first).
 */
static void
spare_run(long spare, size_t want_empty)
{
	cr_assert_eq(tars_option_set("random", 0), 0);
	cr_assert_eq(tars_option_set("spare", spare), 0);
	size_t per = page_size() / 64, n = 16 * per;
	void **p = calloc(n, sizeof(*p));
	cr_assert_not_null(p);
	for (size_t i = 0; i < n; i++) {
		p[i] = tars_malloc(64);
		cr_assert_not_null(p[i]);
	}
	struct tars_stats a = snap();
	cr_assert_eq(a.empty_pages, 0);
	for (size_t k = 0; k < 8; k++) {
		tars_free(p[k * per]);
		p[k * per] = NULL;
	}
	for (size_t i = 8 * per; i < n; i++) {
		tars_free(p[i]);
		p[i] = NULL;
	}
	struct tars_stats b = snap();
	cr_assert_eq(b.empty_pages, want_empty, "spare=%ld: %zu empty pages kept, "
	    "want %zu", spare, b.empty_pages, want_empty);
	cr_assert_eq(a.chunk_pages - b.chunk_pages, 8 - want_empty);
	cr_assert_eq(b.cached_pages - a.cached_pages, 8 - want_empty);
	cr_assert_eq(b.syscalls - a.syscalls, 8 - want_empty, "one mprotect per "
	    "page released to the cache");
	/* Refilling takes the kept pages first: no system call for them. */
	for (size_t i = 8 * per; i < 8 * per + want_empty * per; i++) {
		p[i] = tars_malloc(64);
		cr_assert_not_null(p[i]);
	}
	struct tars_stats c = snap();
	cr_assert_eq(c.syscalls, b.syscalls);
	cr_assert_eq(c.empty_pages, 0);
	for (size_t i = 0; i < n; i++) {
		tars_free(p[i]);
	}
	struct tars_stats d = snap();
	cr_assert_leq(d.empty_pages, (size_t)spare);
	cr_assert_eq(d.empty_pages, d.chunk_pages);
	free(p);
}

Test(stats, spare_keeps_empty_pages_up_to_the_option)
{
	spare_run(16, 8);
}

Test(stats, spare_1_keeps_one_empty_page)
{
	spare_run(1, 1);
}

Test(stats, spare_4_keeps_four)
{
	spare_run(4, 4);
}

Test(stats, cache_hits_after_reuse)
{
	cr_assert_eq(tars_option_set("spare", 1), 0);
	size_t ps = page_size();
	enum { PAGES = 48 };
	size_t per = ps / 2048, n = PAGES * per;
	void *p[PAGES * 8];
	cr_assert_leq(n, sizeof(p) / sizeof(p[0]));
	for (size_t i = 0; i < n; i++) {
		p[i] = tars_malloc(2048);
		cr_assert_not_null(p[i]);
	}
	for (size_t i = 0; i < n; i++) {
		tars_free(p[i]);
	}
	struct tars_stats a = snap();
	cr_assert_geq(a.cached_pages, PAGES - 2);
	for (size_t i = 0; i < n; i++) {
		p[i] = tars_malloc(2048);
		cr_assert_not_null(p[i]);
	}
	struct tars_stats b = snap();
	/* Minus the mapped-but-unused reserve, which is used first. */
	cr_assert_geq(b.cache_hits - a.cache_hits, PAGES - 2 - a.reserve_pages,
	    "%llu cache hits (reserve %zu)", (unsigned long long)(b.cache_hits - a.cache_hits),
	    a.reserve_pages);
	cr_assert_lt(b.cached_pages, a.cached_pages);
	/* Another class reuses cached pages as well. */
	for (size_t i = 0; i < n; i++) {
		tars_free(p[i]);
	}
	struct tars_stats c = snap();
	for (size_t i = 0; i < n; i++) {
		p[i] = tars_malloc(1024);
		cr_assert_not_null(p[i]);
	}
	struct tars_stats d = snap();
	cr_assert_gt(d.cache_hits, c.cache_hits);
	for (size_t i = 0; i < n; i++) {
		tars_free(p[i]);
	}
}

Test(stats, no_system_calls_in_a_hot_loop)
{
	const size_t sizes[] = {1, 16, 64, 100, 256, 1000, 2048};
	enum { NS = sizeof(sizes) / sizeof(sizes[0]) };
	/* Warm-up: one page of each class. */
	for (size_t i = 0; i < NS; i++) {
		tars_free(tars_malloc(sizes[i]));
	}
	void *keep = tars_malloc(0);
	struct tars_stats a = snap();
	for (int round = 0; round < 100000; round++) {
		size_t s = sizes[round % NS];
		void *p = tars_malloc(s);
		void *q = tars_calloc(1, s);
		cr_assert(p && q);
		((volatile unsigned char *)p)[0] = 1;
		tars_free(q);
		tars_freezero(p, s);
		void *z = tars_malloc(0);
		tars_free(z);
	}
	struct tars_stats b = snap();
	cr_assert_eq(b.syscalls - a.syscalls, 0, "%llu system calls in the hot loop",
	    (unsigned long long)(b.syscalls - a.syscalls));
	cr_assert_eq(b.mallocs - a.mallocs, 300000);
	cr_assert_eq(b.frees - a.frees, 300000);
	cr_assert_eq(b.protect_changes, a.protect_changes);
	tars_free(keep);
}

Test(stats, locked_bytes_follow_the_pages)
{
	size_t ps = page_size();
	struct tars_stats a = snap();
	void *l = tars_malloc(4 * ps);
	cr_assert_not_null(l);
	struct tars_stats b = snap();
	cr_assert_eq((b.locked_bytes - a.locked_bytes) + (b.unlocked_bytes - a.unlocked_bytes),
	    4 * ps, "a 4-page block is locked or counted unlocked");
	tars_free(l);
	/* The freed slot keeps its pages, locked, for the next 4-page block. */
	struct tars_stats c = snap();
	cr_assert_eq(c.locked_bytes, b.locked_bytes);
	cr_assert_eq(c.unlocked_bytes, b.unlocked_bytes);
	cr_assert_eq(c.slab_free_pages - b.slab_free_pages, 4);
	cr_assert_eq(tars_option_set("mlock", 0), 0);
	l = tars_malloc(4 * ps);
	/* Under mlock=0 nothing more is locked (a slot kept under mlock=1
	 * would be committed again first). */
	struct tars_stats d = snap();
	cr_assert_leq(d.locked_bytes, c.locked_bytes);
	cr_assert_eq(d.unlocked_bytes, c.unlocked_bytes);
	tars_free(l);
}

Test(stats, protect_changes_count_mprotect)
{
	void *k = tars_malloc_key(10);
	cr_assert_not_null(k);
	struct tars_stats a = snap();
	cr_assert_eq(tars_protect_none(k), 0);
	cr_assert_eq(tars_protect_read(k), 0);
	cr_assert_eq(tars_protect_write(k), 0);
	struct tars_stats b = snap();
	cr_assert_eq(b.protect_changes - a.protect_changes, 3);
	cr_assert_geq(b.syscalls - a.syscalls, 3);
	tars_free(k);
}

Test(stats, print_lists_the_counters)
{
	void *p = tars_malloc(65);
	cr_assert_not_null(p);
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	cr_assert_not_null(f);
	tars_stats_print(f);
	fclose(f);
	cr_assert(strncmp(buf, "tars stats\n", 11) == 0, "\"%s\"", buf);
	const char *names[] = {"page_size", "heaps", "chunk_pages", "zero_pages",
	    "cached_pages", "reserve_pages", "large_count", "large_pages", "key_count",
	    "key_pages", "secretmem_pages", "guard_pages", "meta_pages",
	    "locked_bytes", "unlocked_bytes", "live_count", "live_requested",
	    "live_reserved", "mallocs", "frees", "cache_hits", "cache_misses",
	    "protect_changes", "syscalls", "mmaps", "munmaps"};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		cr_assert(strstr(buf, names[i]) != NULL, "no %s in \"%s\"", names[i], buf);
	}
	/* "name value" per line (any spacing). */
	const char *lc = strstr(buf, "live_count");
	cr_assert_not_null(lc);
	size_t v = 0;
	cr_assert_eq(sscanf(lc, "live_count %zu", &v), 1);
	cr_assert_eq(v, 1);
	free(buf);
	tars_free(p);
}

/* The field table covers struct tars_stats exactly once per scalar field,
 * and the JSON printer writes every one of them with its value. */
Test(stats, field_table_and_json)
{
	void *a = tars_malloc(64), *b = tars_malloc(100000);
	cr_assert(a != NULL && b != NULL);
	struct tars_stats s;
	tars_stats_get(&s);
	size_t n = 0, covered = 0;
	for (const struct tars_stat_desc *d; (d = tars_stat_at(n)) != NULL; n++) {
		cr_assert_leq(d->offset + 8, sizeof(s));
		for (size_t k = 0; k < n; k++) {
			cr_assert_neq(tars_stat_at(k)->offset, d->offset, "%s twice", d->name);
		}
		cr_assert(d->unit != NULL && d->help != NULL);
		covered += 8;
	}
	/* Every byte of the struct but the two per-class arrays. */
	cr_assert_eq(covered, sizeof(s) - sizeof(s.class_mallocs) - sizeof(s.class_size));
	const struct tars_stat_desc *live = NULL;
	for (size_t i = 0; i < n; i++) {
		if (strcmp(tars_stat_at(i)->name, "live_count") == 0) {
			live = tars_stat_at(i);
		}
	}
	cr_assert_not_null(live);
	cr_assert_eq(tars_stat_value(&s, live), s.live_count);
	cr_assert_eq(s.live_count, 2);

	char buf[8192];
	FILE *f = fmemopen(buf, sizeof(buf), "w");
	cr_assert_not_null(f);
	tars_stats_print_json(f);
	cr_assert_eq(fclose(f), 0);
	cr_assert_eq(buf[0], '{');
	cr_assert_eq(buf[strlen(buf) - 1], '}');
	cr_assert(strstr(buf, "\"live_count\": 2,") != NULL, "%s", buf);
	cr_assert(strstr(buf, "\"classes\": [{\"size\": 64, \"mallocs\": 1}]") != NULL,
	    "%s", buf);
	*strstr(buf, "\"classes\"") = '\0';   /* the scalar part */
	for (size_t i = 0; i < n; i++) {
		char key[64];
		snprintf(key, sizeof(key), "\"%s\": ", tars_stat_at(i)->name);
		cr_assert_eq(count_substr(buf, key), 1, "%s in %s", key, buf);
	}
	tars_free(a);
	tars_free(b);
}
