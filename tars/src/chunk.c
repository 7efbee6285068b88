/*
 * chunk.c - small allocations, the out-of-line part: size classes, page
 * records, refilling a class, releasing pages, and the failure reports.
 *
 * Per heap and class, pages with free slots sit on TARS_NLISTS lists; a
 * page is taken from a random list and the slot at a random position (the
 * first free one at or after a random index), so consecutive allocations
 * are not adjacent and a freed slot is not handed straight back.
 *
 * All bookkeeping is out of band (struct chunk_info, in metadata pages):
 * the free bitmap, the bitmap of slots freed by other threads, and per
 * slot the requested size, whose top bit says the slack behind the data
 * holds the slot's canary pattern.  Freed slots are wiped with
 * TARS_FREE_JUNK (or zero with junk=0); a fresh allocation finds that junk
 * in place and needs no second fill; with junk=2 the junk is verified when
 * the slot is handed out again, which catches a write after free.
 *
 * A page whose slots are all free stays with its heap (writable, wiped),
 * on the heap's list of empty pages, oldest first: its class reuses it at
 * once, and another class carves it again before asking the page source
 * for a fresh page.  Beyond `spare` empty pages, the oldest goes back to
 * the page source (PROT_NONE cache, or released).  A class's last page is
 * neither carved for another class nor released, so a loop over a few
 * sizes never touches the page source.  A burst of K allocations then K
 * frees settles with no system call at all, and the memory kept is
 * bounded by `spare` pages per heap plus one per class in use.
 */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#include "chunk.h"

const uint16_t tars_class_size[TARS_NCLASSES] = {
	0, 16, 32, 48, 64,
	80, 96, 112, 128,
	160, 192, 224, 256,
	320, 384, 448, 512,
	640, 768, 896, 1024,
	1280, 1536, 1792, 2048,
};

/* ceil(2^32 / size): (offset * magic) >> 32 == offset / size exactly for
 * offsets below 2^20 and sizes below 2^11 (the error stays under 1/size). */
const uint32_t tars_class_magic[TARS_NCLASSES] = {
#define M(s) (uint32_t)((((uint64_t)1 << 32) + (s) - 1) / (s))
	M(16), M(16), M(32), M(48), M(64),
	M(80), M(96), M(112), M(128),
	M(160), M(192), M(224), M(256),
	M(320), M(384), M(448), M(512),
	M(640), M(768), M(896), M(1024),
	M(1280), M(1536), M(1792), M(2048),
#undef M
};

uint8_t tars_class_table[2][TARS_CHUNK_MAX / 16 + 1];

void
tars_chunk_init(void)
{
	for (unsigned s = 0; s < 2; s++) {
		for (unsigned i = 1; i <= TARS_CHUNK_MAX / 16; i++) {
			tars_class_table[s][i] = (uint8_t)tars_size_class_calc(i * 16, s);
		}
	}
}

/* ---- records ---------------------------------------------------------- */

static unsigned
slot_size(unsigned cls)
{
	return cls == 0 ? TARS_ALIGN : tars_class_size[cls];
}

size_t
tars_chunk_record_size(unsigned cls)
{
	size_t total = tars_g.page_size / slot_size(cls);
	size_t words = (total + 63) / 64;
	size_t b = sizeof(struct chunk_info) + 2 * words * 8 + total * 2;
	/* Whole cache lines: records of pages owned by different threads
	 * sit side by side, and their owners write them on every malloc and
	 * free (false sharing cost 3x in a two-thread churn). */
	return (b + 63) & ~(size_t)63;
}

void
tars_chunk_record_init(struct chunk_info *ci, uint8_t *page, unsigned cls,
    unsigned flags)
{
	unsigned size = slot_size(cls);
	unsigned total = (unsigned)(tars_g.page_size / size);
	size_t rsize = tars_chunk_record_size(cls);
	memset(ci, 0, rsize);
	ci->kind = KIND_CHUNK;
	ci->cls = (uint8_t)cls;
	ci->flags = (uint8_t)flags;
	ci->words = (uint8_t)((total + 63) / 64);
	ci->size = (uint16_t)size;
	ci->total = (uint16_t)total;
	ci->nfree = (uint16_t)total;
	ci->rsize = (uint16_t)rsize;
	ci->magic = tars_class_magic[cls];
	ci->page = page;
	uint64_t *map = ci_map(ci);
	for (unsigned w = 0; w < total / 64; w++) {
		map[w] = ~0ull;
	}
	if (total % 64) {
		map[total / 64] = (1ull << (total % 64)) - 1;
	}
}

/* ---- refill ------------------------------------------------------------ */

/* A fresh record (carved or taken) joins its class: listed, and empty. */
static struct chunk_info *
adopt_page(struct tars_heap *h, struct chunk_info *ci)
{
	heap_list_insert(h, ci, TARS_OPT(random), 0);
	heap_empty_push(h, ci);
	if (ci->cls == 0) {
		h->zero_pages++;
	} else {
		h->chunk_pages++;
	}
	return ci;
}

/* Whether ci is empty and may leave its class: not the class's last page
 * (a loop over a few sizes then never touches the page source), not a
 * page of size-0 slots when carving (PROT_NONE), not queued (waiting for
 * its collection). */
static int
may_leave(struct tars_heap *h, struct chunk_info *ci)
{
	return ci->nfree == ci->total && h->listed[ci->cls] > 1 &&
	    !atomic_load_explicit(&ci->queued, memory_order_relaxed);
}

struct chunk_info *
tars_chunk_refill(struct tars_heap *h, unsigned cls)
{
	tars_heap_collect(h);
	struct chunk_info *ci = heap_pick_page(h, cls, TARS_OPT(random), 0);
	if (ci != NULL) {
		return ci;
	}
	/* The oldest empty page of another class. */
	struct chunk_info *e = h->empty_old;
	while (cls != 0 && e != NULL) {
		struct chunk_info *next = e->enext;
		if (e->nfree != e->total) {
			heap_empty_unlink(h, e);   /* used again since it emptied */
		} else if (!(e->flags & CI_NOACCESS) && may_leave(h, e)) {
			heap_empty_unlink(h, e);
			heap_list_remove(h, e);
			h->chunk_pages--;
			if (h->last_page == (uintptr_t)e->page) {
				h->last_page = 0;   /* a new record for that page */
			}
			struct chunk_info *n = tars_pages_recarve(h, e, cls);
			if (n == NULL) {
				/* No record: the page goes back where it was. */
				h->chunk_pages++;
				heap_list_insert(h, e, TARS_OPT(random), 0);
				heap_empty_push(h, e);
				return NULL;
			}
			h->recarved++;
			return adopt_page(h, n);
		}
		e = next;
	}
	ci = tars_pages_take(h, cls);
	if (ci == NULL) {
		return NULL;
	}
	return adopt_page(h, ci);
}

/*
 * Release the oldest empty pages while the empty list holds more than
 * `spare` (dropping the entries used again since they emptied).  A class's
 * last page stays whatever its age, so the heap may keep up to one page
 * per class beyond `spare`.
 */
void
tars_heap_trim(struct tars_heap *h)
{
	size_t spare = (size_t)TARS_OPT(spare);
	struct chunk_info *ci = h->empty_old;
	while (h->nempty > spare && ci != NULL) {
		struct chunk_info *next = ci->enext;
		if (ci->nfree != ci->total) {
			heap_empty_unlink(h, ci);
		} else if (may_leave(h, ci)) {
			tars_chunk_release(h, ci);
		}
		ci = next;
	}
}

/* ---- release ----------------------------------------------------------- */

void
tars_chunk_release(struct tars_heap *h, struct chunk_info *ci)
{
	if (h->last_page == (uintptr_t)ci->page) {
		h->last_page = 0;
	}
	if (ci->pprev != NULL) {
		heap_list_remove(h, ci);
	}
	if (ci->in_empty) {
		heap_empty_unlink(h, ci);
	}
	if (ci->cls == 0) {
		h->zero_pages--;
	} else {
		h->chunk_pages--;
	}
	tars_pages_give(ci);
}

/* ---- delayed frees ----------------------------------------------------- */

void
tars_chunk_drain_delayed(struct tars_heap *h, const char *func)
{
	long random = TARS_OPT(random);
	for (int i = 0; i < TARS_DELAY; i++) {
		struct chunk_info *ci = h->delayed[i].ci;
		if (ci != NULL) {
			unsigned slot = chunk_slot_of(ci, h->delayed[i].ptr, func, 0);
			ci_req(ci)[slot] &= (uint16_t)~REQ_DELAYED;
			h->delayed[i].ptr = NULL;
			h->delayed[i].ci = NULL;
			chunk_release_slot(h, ci, slot, random, func, 0);
		}
	}
	h->ndelayed = 0;
}

/* ---- failures and slow checks ----------------------------------------- */

void
tars_chunk_canary_fail(const uint8_t *slot, const uint8_t *bad, size_t size,
    const char *func)
{
	tars_fatal(func, "chunk canary corrupted: %p, byte %zu past the %zu "
	    "requested (overflow)", (const void *)slot, (size_t)(bad - slot) - size, size);
}

void
tars_chunk_junk_check(const uint8_t *slot, unsigned ssize, const char *func)
{
	for (unsigned i = 0; i < ssize; i++) {
		if (slot[i] != TARS_FREE_JUNK) {
			tars_fatal(func, "write after free detected: byte %u of the "
			    "%u-byte slot %p was modified", i, ssize, (const void *)slot);
		}
	}
}

void
tars_chunk_bad_pointer(const struct chunk_info *ci, const void *ptr, const char *func)
{
	tars_fatal(func, "bogus pointer %p (not the start of a %u-byte slot)", ptr,
	    ci->size);
}

void
tars_chunk_double_free(const void *ptr, const char *why, const char *func)
{
	tars_fatal(func, "double free of %p (%s)", ptr, why);
}

void
tars_chunk_no_slot(const struct chunk_info *ci)
{
	tars_fatal("tars_malloc", "chunk metadata corrupted (page %p has no free slot)",
	    (void *)ci->page);
}

void
tars_chunk_size_mismatch(const void *ptr, size_t expect, size_t size, const char *func)
{
	tars_fatal(func, "size %zu does not match the allocated size %zu of %p",
	    expect, size, ptr);
}

int
tars_chunk_delayed(struct chunk_info *ci, const void *ptr, const char *func)
{
	return (ci_req(ci)[chunk_slot_of(ci, ptr, func, 0)] & REQ_DELAYED) != 0;
}

size_t
tars_chunk_requested(struct chunk_info *ci, const void *ptr, const char *func)
{
	return ci_req(ci)[chunk_live_slot(ci, ptr, func, 0)] & REQ_SIZE;
}

size_t
tars_chunk_usable(struct chunk_info *ci, const void *ptr, const char *func)
{
	uint16_t req = ci_req(ci)[chunk_live_slot(ci, ptr, func, 0)];
	if (ci->cls == 0) {
		return 0;
	}
	return (req & REQ_CANARY) ? (size_t)(req & REQ_SIZE) : ci->size;
}
