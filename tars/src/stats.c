/*
 * stats.c - counters for the research suite, summed over pools.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "tars_internal.h"

/* Live chunks, their requested and slot bytes, counted from the pages: the
 * hot path keeps no running totals (fewer stores per malloc and free). */
static void
chunk_live(struct tars_pool *p, size_t *count, size_t *requested, size_t *reserved,
    size_t *empty)
{
	size_t nempty[TARS_NCLASSES] = {0};
	for (size_t i = 0; i < p->regions.cap; i++) {
		const struct region *r = &p->regions.slots[i];
		if (r->page == 0 || r->kind != KIND_CHUNK) {
			continue;
		}
		struct chunk_info *ci = r->ptr;
		*count += (size_t)(ci->total - ci->nfree);
		if (ci->nfree == ci->total && ci->pprev != NULL) {
			nempty[ci->cls]++;
		}
		if (ci->cls == 0 || ci->nfree == ci->total) {
			continue;
		}
		*reserved += (size_t)(ci->total - ci->nfree) * ci->size;
		const uint16_t *req = tars_ci_req(ci);
		for (unsigned s = 0; s < ci->total; s++) {
			if (!(ci->map[s >> 6] & (1ull << (s & 63)))) {
				*requested += req[s] & ~REQ_CANARY;
			}
		}
	}
	/* The running counts of empty pages decide what free releases: a
	 * drift would keep pages forever or release every one. */
	for (unsigned c = 0; c < TARS_NCLASSES; c++) {
		if (nempty[c] != p->nempty[c]) {
			tars_fatal("tars_stats_get", "pool metadata corrupted: class %u "
			    "counts %zu empty pages, has %zu", c, (size_t)p->nempty[c], nempty[c]);
		}
		if (c != 0) {
			*empty += nempty[c];
		}
	}
}

void
tars_stats_get(struct tars_stats *s)
{
	memset(s, 0, sizeof(*s));
	tars_init_basic();
	s->page_size = tars_g.page_size;
	for (unsigned c = 0; c < TARS_NCLASSES; c++) {
		s->class_size[c] = tars_class_size[c];
	}
	if (atomic_load(&tars_g.ready)) {
		s->pools = tars_g.npools;
		for (unsigned i = 0; i < tars_g.npools; i++) {
			struct tars_pool *p = tars_g.pools[i];
			tars_pool_lock(p);
			tars_pool_check(p, "tars_stats_get");
			s->chunk_pages += p->chunk_pages;
			s->zero_pages += p->zero_pages;
			s->cached_pages += p->ncached;
			s->reserve_pages += p->run_left;
			s->large_count += p->large_count;
			s->large_pages += p->large_pages;
			s->key_count += p->key_count;
			s->key_pages += p->key_pages;
			s->secretmem_pages += p->secretmem_pages;
			s->guard_pages += p->guard_pages;
			s->locked_bytes += p->locked_bytes;
			s->unlocked_bytes += p->unlocked_bytes;
			s->live_requested += p->block_requested;
			s->live_reserved += p->block_reserved;
			size_t chunks = 0;
			chunk_live(p, &chunks, &s->live_requested, &s->live_reserved,
			    &s->empty_pages);
			s->live_count += p->block_mallocs - p->block_frees + chunks;
			s->mallocs += p->block_mallocs;
			s->cache_hits += p->cache_hits;
			s->cache_misses += p->cache_misses;
			for (unsigned c = 0; c < TARS_NCLASSES; c++) {
				s->class_mallocs[c] += p->class_mallocs[c];
				s->mallocs += p->class_mallocs[c];
			}
			tars_pool_unlock(p);
		}
	}
	/* Chunk frees are not counted either: all chunks ever allocated, less
	 * those still live. */
	s->frees = s->mallocs - s->live_count;
	s->meta_pages = (size_t)atomic_load(&tars_meta_pages);
	s->protect_changes = atomic_load(&tars_mprotects);
	s->syscalls = atomic_load(&tars_syscalls);
	s->mmaps = atomic_load(&tars_mmaps);
	s->munmaps = atomic_load(&tars_munmaps);
}

void
tars_stats_print(FILE *out)
{
	struct tars_stats s;
	tars_stats_get(&s);
	fprintf(out, "tars stats\n");
#define Z(f) fprintf(out, "  %-16s %zu\n", #f, s.f)
#define U(f) fprintf(out, "  %-16s %" PRIu64 "\n", #f, s.f)
	Z(page_size); Z(pools); Z(chunk_pages); Z(zero_pages); Z(empty_pages); Z(cached_pages);
	Z(reserve_pages); Z(large_count); Z(large_pages); Z(key_count);
	Z(key_pages); Z(secretmem_pages); Z(guard_pages); Z(meta_pages);
	Z(locked_bytes); Z(unlocked_bytes); Z(live_count); Z(live_requested);
	Z(live_reserved);
	U(mallocs); U(frees); U(cache_hits); U(cache_misses);
	U(protect_changes); U(syscalls); U(mmaps); U(munmaps);
#undef Z
#undef U
	fprintf(out, "  class  slot  mallocs\n");
	for (unsigned c = 0; c < TARS_NCLASSES; c++) {
		if (s.class_mallocs[c] != 0) {
			fprintf(out, "  %5u %5zu  %" PRIu64 "\n", c, s.class_size[c],
			    s.class_mallocs[c]);
		}
	}
}

void
tars_stats_atexit(void)
{
	if (TARS_OPT(stats)) {
		tars_stats_print(stderr);
	}
}
