/*
 * stats.c - counters for the research suite, summed over pools.
 */
#include <inttypes.h>
#include <stddef.h>
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

/* The scalar fields, in the order they are printed. */
#define S(f, unit, help) { #f, offsetof(struct tars_stats, f), unit, help },
static const struct tars_stat_desc stat_descs[] = {
	S(page_size, "bytes", "bytes per page")
	S(pools, "count", "pools created so far")
	S(chunk_pages, "pages", "pages holding chunk slots, in use")
	S(empty_pages, "pages", "of which every slot is free (option spare)")
	S(zero_pages, "pages", "PROT_NONE pages holding size-0 slots")
	S(cached_pages, "pages", "empty chunk pages in the caches")
	S(reserve_pages, "pages", "mapped chunk pages not handed out yet")
	S(large_count, "count", "live large allocations")
	S(large_pages, "pages", "their data pages (guards excluded)")
	S(key_count, "count", "live key allocations")
	S(key_pages, "pages", "their data pages (guards excluded)")
	S(secretmem_pages, "pages", "key data pages backed by memfd_secret")
	S(guard_pages, "pages", "PROT_NONE guard pages")
	S(meta_pages, "pages", "pages of metadata")
	S(locked_bytes, "bytes", "bytes currently mlock'ed by tars")
	S(unlocked_bytes, "bytes", "bytes that mlock=1 failed to lock")
	S(live_count, "count", "live allocations of all kinds")
	S(live_requested, "bytes", "bytes requested by them")
	S(live_reserved, "bytes", "bytes of slots and pages reserved for them")
	S(mallocs, "count", "successful allocations, all kinds")
	S(frees, "count", "frees, all kinds")
	S(cache_hits, "count", "new chunk pages taken from the cache")
	S(cache_misses, "count", "new chunk pages taken from the OS")
	S(protect_changes, "count", "mprotect calls")
	S(syscalls, "count", "every system call tars issued")
	S(mmaps, "count", "of which mmap")
	S(munmaps, "count", "of which munmap")
};
#undef S
#define NSTATS (sizeof(stat_descs) / sizeof(stat_descs[0]))
_Static_assert(sizeof(size_t) == sizeof(uint64_t), "stats fields are 64-bit");

const struct tars_stat_desc *
tars_stat_at(size_t i)
{
	return i < NSTATS ? &stat_descs[i] : NULL;
}

uint64_t
tars_stat_value(const struct tars_stats *s, const struct tars_stat_desc *d)
{
	uint64_t v;
	memcpy(&v, (const char *)s + d->offset, sizeof(v));
	return v;
}

void
tars_stats_print(FILE *out)
{
	struct tars_stats s;
	tars_stats_get(&s);
	fprintf(out, "tars stats\n");
	for (size_t i = 0; i < NSTATS; i++) {
		fprintf(out, "  %-16s %" PRIu64 "\n", stat_descs[i].name,
		    tars_stat_value(&s, &stat_descs[i]));
	}
	fprintf(out, "  class  slot  mallocs\n");
	for (unsigned c = 0; c < TARS_NCLASSES; c++) {
		if (s.class_mallocs[c] != 0) {
			fprintf(out, "  %5u %5zu  %" PRIu64 "\n", c, s.class_size[c],
			    s.class_mallocs[c]);
		}
	}
}

void
tars_stats_print_json(FILE *out)
{
	struct tars_stats s;
	tars_stats_get(&s);
	fputc('{', out);
	for (size_t i = 0; i < NSTATS; i++) {
		fprintf(out, "%s\"%s\": %" PRIu64, i ? ", " : "", stat_descs[i].name,
		    tars_stat_value(&s, &stat_descs[i]));
	}
	fprintf(out, ", \"classes\": [");
	int first = 1;
	for (unsigned c = 0; c < TARS_NCLASSES; c++) {
		if (s.class_mallocs[c] != 0) {
			fprintf(out, "%s{\"size\": %zu, \"mallocs\": %" PRIu64 "}",
			    first ? "" : ", ", s.class_size[c], s.class_mallocs[c]);
			first = 0;
		}
	}
	fprintf(out, "]}");
}

void
tars_stats_atexit(void)
{
	if (TARS_OPT(stats)) {
		tars_stats_print(stderr);
	}
}
