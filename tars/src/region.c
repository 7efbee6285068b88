/*
 * region.c - the region table: an open-addressing hash from page address to
 * the large or key block that lives there, kept in its own mapping away
 * from user data, as in OpenBSD's malloc.  (Chunk pages are found by index
 * through the pagemap instead: pages.c.)
 *
 * Linear probing with a multiplicative hash of the page number; the table
 * doubles at 5/8 load.  Deletion is Knuth's Algorithm R (TAOCP vol. 3,
 * 6.4): instead of tombstones, later entries of the probe run are moved
 * back into the hole, so lookups never degrade with churn.
 */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#include "tars_internal.h"


static inline size_t
home(const struct region_table *t, uintptr_t page)
{
	uint64_t h = (uint64_t)(page >> tars_g.page_shift) * 0x9e3779b97f4a7c15ull;
	return (size_t)(h >> t->shift);
}

static size_t
table_bytes(size_t cap)
{
	size_t b = cap * sizeof(struct region);
	return (b + tars_g.page_mask) & ~tars_g.page_mask;
}

int
tars_region_init(struct region_table *t, size_t cap)
{
	struct region *s = tars_os_map(NULL, table_bytes(cap), PROT_READ | PROT_WRITE,
	    MAP_PRIVATE, -1);
	if (s == NULL) {
		return -1;
	}
	atomic_fetch_add(&tars_meta_pages, table_bytes(cap) >> tars_g.page_shift);
	t->slots = s;
	t->cap = cap;
	t->count = 0;
	t->shift = 64 - (unsigned)__builtin_ctzll(cap);
	return 0;
}

static void
put(struct region_table *t, const struct region *r)
{
	size_t mask = t->cap - 1;
	size_t i = home(t, r->page);
	while (t->slots[i].page != 0) {
		i = (i + 1) & mask;
	}
	t->slots[i] = *r;
	t->count++;
}

struct region *
tars_region_find(struct region_table *t, uintptr_t page)
{
	if (t->slots == NULL) {
		return NULL;
	}
	size_t mask = t->cap - 1;
	for (size_t i = home(t, page);; i = (i + 1) & mask) {
		struct region *s = &t->slots[i];
		/* Empty first: an empty slot's key 0 must not match the page
		 * of a wild pointer below the first page. */
		if (s->page == 0) {
			return NULL;
		}
		if (s->page == page) {
			return s;
		}
	}
}

int
tars_region_reserve(struct region_table *t)
{
	if ((t->count + 1) * 8 <= t->cap * 5) {
		return 0;
	}
	struct region_table n;
	if (tars_region_init(&n, t->cap * 2) != 0) {
		return -1;
	}
	for (size_t i = 0; i < t->cap; i++) {
		if (t->slots[i].page != 0) {
			put(&n, &t->slots[i]);
		}
	}
	/* At the VMA limit the old table may stay mapped: it is only lost
	 * address space, the new one holds every entry. */
	if (tars_os_unmap(t->slots, table_bytes(t->cap)) == 0) {
		atomic_fetch_sub(&tars_meta_pages, table_bytes(t->cap) >> tars_g.page_shift);
	}
	*t = n;
	return 0;
}

int
tars_region_insert(struct region_table *t, const struct region *r)
{
	if (tars_region_reserve(t) != 0) {
		return -1;
	}
	put(t, r);
	return 0;
}

/* Is r within the cyclic interval (j, i]? */
static inline int
between(size_t r, size_t j, size_t i)
{
	return j <= i ? (r > j && r <= i) : (r > j || r <= i);
}

void
tars_region_delete(struct region_table *t, struct region *r)
{
	size_t mask = t->cap - 1;
	size_t i = (size_t)(r - t->slots);
	size_t j;
	for (;;) {
		t->slots[i].page = 0;
		j = i;
		for (;;) {
			i = (i + 1) & mask;
			if (t->slots[i].page == 0) {
				t->count--;
				return;
			}
			/* An entry whose home lies in (j, i] is still reachable. */
			if (!between(home(t, t->slots[i].page), j, i)) {
				break;
			}
		}
		t->slots[j] = t->slots[i];
	}
}
