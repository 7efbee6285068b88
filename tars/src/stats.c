/*
 * stats.c - counters for the research suite, summed over pools.
 */
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "chunk.h"

/*
 * A snapshot: a quiescent point (no thread inside tars, see heap.h), then
 * every heap and every page record.  Live chunks and their bytes are
 * counted from the pages (the hot path keeps no running totals), and the
 * heaps' own counts are checked against them: a drift would keep pages
 * forever or release every one, so it is reported as corruption.
 */
struct walk {
	struct tars_stats *s;
	size_t empty, listed, records;
};

static void
count_record(struct chunk_info *ci, void *arg)
{
	struct walk *w = arg;
	struct tars_stats *s = w->s;
	size_t pending = 0;
	for (unsigned i = 0; i < ci->words; i++) {
		pending += (size_t)__builtin_popcountll(ci_xfree(ci)[i]);
	}
	size_t live = (size_t)(ci->total - ci->nfree) - pending;
	s->pending_slots += pending;
	s->live_count += live;
	w->records++;
	w->empty += ci->in_empty;
	s->empty_pages += ci->nfree == ci->total && ci->cls != 0 &&
	    !(ci->flags & CI_NOLIST);
	w->listed += ci->pprev != NULL;
	if (ci->nfree == ci->total && !ci->in_empty && !(ci->flags & CI_NOLIST)) {
		tars_fatal("tars_stats_get", "chunk metadata corrupted: page %p is empty "
		    "but not on its heap's empty list", (void *)ci->page);
	}
	if (ci->cls == 0 || live == 0) {
		return;
	}
	s->live_reserved += live * ci->size;
	const uint16_t *req = ci_req(ci);
	for (unsigned k = 0; k < ci->total; k++) {
		uint64_t bit = 1ull << (k & 63);
		if (!(ci_map(ci)[k >> 6] & bit) && !(ci_xfree(ci)[k >> 6] & bit)) {
			s->live_requested += req[k] & REQ_SIZE;
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
		tars_heaps_lock();
		tars_quiesce_begin();
		size_t nempty = 0, listed = 0, pages = 0;
		s->heaps = tars_heaps_count();
		for (struct tars_heap *h = tars_heaps_first(); h != NULL; h = h->all_next) {
			tars_heap_check(h, "tars_stats_get");
			for (unsigned c = 0; c < TARS_NCLASSES; c++) {
				s->class_mallocs[c] += h->class_mallocs[c];
				s->mallocs += h->class_mallocs[c];
				listed += h->listed[c];
			}
			s->remote_frees += h->remote_frees;
			s->recarved_pages += h->recarved;
			/* Slots in the delayed-free queue are freed (and wiped),
			 * though their bitmaps still hold them. */
			for (int i = 0; i < TARS_DELAY; i++) {
				struct chunk_info *ci = h->delayed[i].ci;
				if (ci != NULL) {
					unsigned k = (unsigned)(((size_t)((uint8_t *)h->delayed[i].ptr -
					    ci->page) * ci->magic) >> 32);
					s->delayed_slots++;
					s->live_count--;
					s->live_reserved -= ci->cls ? ci->size : 0;
					s->live_requested -= ci->cls ? (ci_req(ci)[k] & REQ_SIZE) : 0;
				}
			}
			s->chunk_pages += h->chunk_pages;
			s->zero_pages += h->zero_pages;
			nempty += h->nempty;
			pages += h->chunk_pages + h->zero_pages;
			s->guard_pages += 2;
		}
		struct walk w = {.s = s};
		tars_pages_lock();
		tars_pages_stats(s);
		tars_pages_foreach(count_record, &w);
		tars_pages_unlock();
		if (w.empty != nempty || w.listed != listed || w.records != pages) {
			tars_fatal("tars_stats_get", "heap metadata corrupted: the heaps count "
			    "%zu empty, %zu listed, %zu pages; the pages say %zu, %zu, %zu",
			    nempty, listed, pages, w.empty, w.listed, w.records);
		}
		tars_blocks_lock();
		struct tars_blocks *b = &tars_blocks;
		s->large_count = b->large_count;
		s->large_pages = b->large_pages;
		s->key_count = b->key_count;
		s->key_pages = b->key_pages;
		s->secretmem_pages = b->secretmem_pages;
		s->guard_pages += b->guard_pages;
		s->quarantined_blocks = tars_quarantine_count();
		s->quarantined_pages = b->quarantined_pages;
		s->large_cached_pages = tars_quarantine_kept();
		s->large_reused = b->cache_hits;
		s->large_mapped = b->cache_misses;
		tars_slab_stats(s);
		s->live_requested += b->block_requested;
		s->live_reserved += b->block_reserved;
		s->live_count += b->block_mallocs - b->block_frees;
		s->mallocs += b->block_mallocs;
		tars_keyarena_stats(s);
		tars_blocks_unlock();
		tars_quiesce_end();
		tars_heaps_unlock();
	}
	/* Chunk frees are not counted either: all chunks ever allocated, less
	 * those still live. */
	s->frees = s->mallocs - s->live_count;
	s->locked_bytes = atomic_load(&tars_locked_bytes);
	s->unlocked_bytes = atomic_load(&tars_unlocked_bytes);
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
	S(heaps, "count", "thread heaps made so far")
	S(segments, "count", "2 MiB address ranges chunk pages come from")
	S(chunk_pages, "pages", "pages holding chunk slots, in use")
	S(empty_pages, "pages", "of which every slot is free (option spare)")
	S(zero_pages, "pages", "PROT_NONE pages holding size-0 slots")
	S(cached_pages, "pages", "empty chunk pages in the cache (PROT_NONE)")
	S(reserve_pages, "pages", "committed chunk pages not handed out yet")
	S(kept_pages, "pages", "pages the kernel would neither protect nor release")
	S(lost_pages, "pages", "pages whose protections failed, never used")
	S(pending_slots, "count", "slots freed by another thread, not yet collected")
	S(delayed_slots, "count", "freed slots waiting in delayed-free queues")
	S(large_count, "count", "live large allocations")
	S(large_pages, "pages", "their data pages (guards excluded)")
	S(key_count, "count", "live key allocations")
	S(key_pages, "pages", "their data pages (guards excluded)")
	S(secretmem_pages, "pages", "key data pages backed by memfd_secret")
	S(guard_pages, "pages", "PROT_NONE guard pages")
	S(quarantined_blocks, "count", "freed large blocks and keys held PROT_NONE")
	S(quarantined_pages, "pages", "their address space, guards included")
	S(large_cached_pages, "pages", "of which data pages kept for reuse")
	S(slabs, "count", "mappings of multi-page slots")
	S(slab_held, "count", "freed multi-page slots waiting out the quarantine")
	S(slab_free_pages, "pages", "pages of multi-page slots holding no block")
	S(meta_pages, "pages", "pages of metadata")
	S(locked_bytes, "bytes", "bytes currently mlock'ed by tars")
	S(unlocked_bytes, "bytes", "bytes that mlock=1 failed to lock")
	S(live_count, "count", "live allocations of all kinds")
	S(live_requested, "bytes", "bytes requested by them")
	S(live_reserved, "bytes", "bytes of slots and pages reserved for them")
	S(mallocs, "count", "successful allocations, all kinds")
	S(frees, "count", "frees, all kinds")
	S(remote_frees, "count", "chunk frees by a thread that does not own the block")
	S(recarved_pages, "count", "empty pages carved again for another class")
	S(cache_hits, "count", "new chunk pages taken from the cache")
	S(cache_misses, "count", "new chunk pages taken from fresh runs")
	S(released_pages, "count", "empty chunk pages given back to the kernel")
	S(large_reused, "count", "large mappings taken from the cache")
	S(large_mapped, "count", "large and key mappings made fresh")
	S(protect_changes, "count", "mprotect calls")
	S(syscalls, "count", "every system call tars issued")
	S(mmaps, "count", "of which mmap")
	S(munmaps, "count", "of which munmap")
	S(key_regions, "count", "shared regions of guarded key slots")
	S(key_region_pages, "pages", "their pages, key slots and guards (reserved)")
	S(key_slots, "count", "key slots in them (n slots, n + 1 guard pages)")
	S(key_quarantined, "count", "freed key slots held back before reuse")
	S(key_open, "count", "arena keys readable or writable now (two VMAs each)")
	S(key_hot, "count", "closed keys kept in a VMA of their own (at most 16)")
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
