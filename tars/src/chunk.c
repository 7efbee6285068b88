/*
 * chunk.c - small allocations: slots of one size class sharing a page.
 *
 * Per pool and class, pages with free slots sit on TARS_NLISTS lists; a
 * page is taken from a random list and the slot at a random position (the
 * first free one at or after a random index), so consecutive allocations
 * are not adjacent and a freed slot is not handed straight back.
 *
 * All bookkeeping is out of band (struct chunk_info, in metadata pages):
 * the free bitmap, and per slot the requested size, whose top bit says the
 * slack behind the data holds the canary pattern.  Freed slots are wiped
 * with TARS_FREE_JUNK (or zero with junk=0); with junk=2 the wipe is
 * verified when the slot is handed out again, which catches a write after
 * free.  A page whose slots are all free goes to the pool's cache
 * (PROT_NONE) or back to the kernel, unless it is the class's last page
 * with free slots: keeping that one means a malloc/free loop never makes a
 * system call.
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

/* ---- metadata records ---------------------------------------------- */

static struct chunk_info *
info_get(struct tars_pool *p)
{
	if (p->info_free == NULL) {
		size_t len = 16 * tars_g.page_size;
		uint8_t *m = tars_os_map(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE, -1);
		if (m == NULL) {
			return NULL;
		}
		atomic_fetch_add(&tars_meta_pages, 16);
		for (size_t off = 0; off + tars_g.info_size <= len; off += tars_g.info_size) {
			struct chunk_info *ci = (struct chunk_info *)(void *)(m + off);
			ci->next = p->info_free;
			p->info_free = ci;
		}
	}
	struct chunk_info *ci = p->info_free;
	p->info_free = ci->next;
	return ci;
}

static void
info_put(struct tars_pool *p, struct chunk_info *ci)
{
	memset(ci, 0, sizeof(*ci));
	ci->next = p->info_free;
	p->info_free = ci;
}

/* ---- class lists ---------------------------------------------------- */

void
tars_chunk_list_insert(struct tars_pool *p, struct chunk_info *ci)
{
	unsigned l = TARS_OPT(random) ? (tars_rand_u8(&p->rnd) & (TARS_NLISTS - 1)) : 0;
	struct chunk_info **head = &p->lists[ci->cls][l];
	ci->next = *head;
	if (*head != NULL) {
		(*head)->pprev = &ci->next;
	}
	*head = ci;
	ci->pprev = head;
	p->listed[ci->cls]++;
	p->nempty[ci->cls] += ci->nfree == ci->total;
	if (p->current[ci->cls] == NULL) {
		p->current[ci->cls] = ci;
	}
}

void
tars_chunk_list_remove(struct tars_pool *p, struct chunk_info *ci)
{
	*ci->pprev = ci->next;
	if (ci->next != NULL) {
		ci->next->pprev = ci->pprev;
	}
	ci->pprev = NULL;
	ci->next = NULL;
	p->listed[ci->cls]--;
	p->nempty[ci->cls] -= ci->nfree == ci->total;
	if (p->current[ci->cls] == ci) {
		struct chunk_info *next = NULL;
		for (unsigned i = 0; i < TARS_NLISTS && next == NULL; i++) {
			next = p->lists[ci->cls][i];
		}
		p->current[ci->cls] = next;
	}
}

/* ---- pages ---------------------------------------------------------- */

static void
unmap_page(struct tars_pool *p, uint8_t *page, unsigned flags)
{
	tars_os_unmap("tars_free", page, tars_g.page_size);
	tars_unlock_stats(p, tars_g.page_size, (uint16_t)flags);
}

struct chunk_info *
tars_chunk_new_page(struct tars_pool *p, unsigned cls)
{
	size_t ps = tars_g.page_size;
	int saved = errno;
	if (tars_region_reserve(&p->regions) != 0) {
		return NULL;
	}
	struct chunk_info *ci = info_get(p);
	if (ci == NULL) {
		return NULL;
	}
	uint8_t *page;
	unsigned flags;
	if (cls == 0) {
		/* Size-0 slots: distinct pointers into a page nobody may touch. */
		page = tars_os_map(NULL, ps, PROT_NONE, MAP_PRIVATE, -1);
		if (page == NULL) {
			info_put(p, ci);
			return NULL;
		}
		flags = CI_NOACCESS;
		p->zero_pages++;
	} else if (p->run_left > 0) {
		page = p->run_next;
		p->run_next += ps;
		p->run_left--;
		flags = p->run_flags & CI_POLICY;
		p->cache_misses++;
	} else if (p->ncached > 0) {
		size_t i = TARS_OPT(random) ? tars_rand_u16(&p->rnd) % p->ncached : p->ncached - 1;
		uintptr_t e = p->cache[i];
		page = (uint8_t *)(e & ~tars_g.page_mask);
		if (tars_os_protect(page, ps, PROT_READ | PROT_WRITE) != 0) {
			info_put(p, ci);
			errno = ENOMEM;
			return NULL;
		}
		p->cache[i] = p->cache[--p->ncached];
		flags = (unsigned)(e & CI_POLICY);
		p->cache_hits++;
	} else {
		size_t len = TARS_RUN_PAGES * ps;
		uint8_t *run = tars_os_map(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE, -1);
		if (run == NULL) {
			info_put(p, ci);
			return NULL;
		}
		uint16_t rf;
		if (tars_apply_policy(p, run, len, &rf, 0) != 0) {
			tars_os_unmap("tars_malloc", run, len);
			info_put(p, ci);
			return NULL;
		}
		page = run;
		p->run_next = run + ps;
		p->run_left = TARS_RUN_PAGES - 1;
		p->run_flags = rf;
		flags = rf & CI_POLICY;
		p->cache_misses++;
	}
	unsigned size = cls == 0 ? TARS_ALIGN : tars_class_size[cls];
	unsigned total = (unsigned)(ps / size);
	memset(ci, 0, tars_g.info_size);
	ci->page = page;
	ci->size = (uint16_t)size;
	ci->total = (uint16_t)total;
	ci->nfree = (uint16_t)total;
	ci->cls = (uint8_t)cls;
	ci->magic = tars_class_magic[cls];
	for (unsigned w = 0; w < total / 64; w++) {
		ci->map[w] = ~0ull;
	}
	if (total % 64) {
		ci->map[total / 64] = (1ull << (total % 64)) - 1;
	}
	if (cls != 0) {
		p->chunk_pages++;
		if (TARS_OPT(junk) >= 1) {
			/* Free slots hold free junk from the start, so junk=2
			 * can verify every slot it hands out. */
			memset(page, TARS_FREE_JUNK, ps);
			flags |= CI_JUNKED;
		}
	}
	ci->flags = (uint8_t)flags;
	struct region r = {.page = (uintptr_t)page, .ptr = ci, .kind = KIND_CHUNK,
	    .flags = (uint16_t)(flags & CI_POLICY)};
	if (tars_region_insert(&p->regions, &r) != 0) {
		tars_fatal("tars_malloc", "region table reserve failed");
	}
	tars_chunk_list_insert(p, ci);
	errno = saved;
	return ci;
}

/* All slots free: give the page back (cache or kernel) and forget it. */
void
tars_chunk_release(struct tars_pool *p, struct region *r, struct chunk_info *ci)
{

	uint8_t *page = ci->page;
	unsigned flags = ci->flags;
	if (ci->pprev != NULL) {
		tars_chunk_list_remove(p, ci);
	}
	tars_region_delete(&p->regions, r);
	if (flags & CI_NOACCESS) {
		p->zero_pages--;
		tars_os_unmap("tars_free", page, tars_g.page_size);
	} else {
		p->chunk_pages--;
		if (flags & CI_GONE) {
			/* Not mapped in this process: nothing to wipe or keep. */
			tars_os_unmap("tars_free", page, tars_g.page_size);
		} else if (flags & CI_RETIRED) {
			unmap_page(p, page, flags);   /* unlocked: never reused */
		} else if (p->ncached < (size_t)TARS_OPT(cache) &&
		    tars_os_protect(page, tars_g.page_size, PROT_NONE) == 0) {
			p->cache[p->ncached++] = (uintptr_t)page | (flags & CI_POLICY);
		} else {
			unmap_page(p, page, flags);
		}
	}
	info_put(p, ci);
}

/* ---- canaries and junk ---------------------------------------------- */

/* ---- allocation ----------------------------------------------------- */

/* ---- failures and slow checks --------------------------------------- */

void
tars_chunk_canary_check(const uint8_t *slot, size_t from, size_t to, const char *func)
{
	const uint8_t *bad = tars_canary_find(slot + from, slot + to);
	if (unlikely(bad != NULL)) {
		tars_fatal(func, "chunk canary corrupted: %p, byte %zu past the %zu "
		    "requested (overflow)", (const void *)slot, (size_t)(bad - slot) - from,
		    from);
	}
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
tars_chunk_double_free(const void *ptr, const char *func)
{
	tars_fatal(func, "double free of %p (chunk slot is already free)", ptr);
}

void
tars_chunk_no_slot(const struct chunk_info *ci)
{
	tars_fatal("tars_malloc", "chunk metadata corrupted (page %p has no free slot)",
	    (void *)ci->page);
}

size_t
tars_chunk_requested(struct region *r, const void *ptr, const char *func)
{
	struct chunk_info *ci = r->ptr;
	return tars_ci_req(ci)[tars_chunk_slot_of(ci, ptr, func)] & ~REQ_CANARY;
}

size_t
tars_chunk_usable(struct region *r, const void *ptr, const char *func)
{
	struct chunk_info *ci = r->ptr;
	uint16_t req = tars_ci_req(ci)[tars_chunk_slot_of(ci, ptr, func)];
	if (ci->cls == 0) {
		return 0;
	}
	return (req & REQ_CANARY) ? (size_t)(req & ~REQ_CANARY) : ci->size;
}

void
tars_chunk_after_fork(struct tars_pool *p, struct region *r)
{
	struct chunk_info *ci = r->ptr;
	if (ci->flags & CI_DONTFORK) {
		/* The page does not exist here: never hand out its slots, and
		 * hold its address so that no new mapping lands on a page the
		 * region table still names. */
		ci->flags |= CI_GONE;
		r->flags |= R_GONE;
		(void)tars_os_reserve(ci->page, tars_g.page_size);
		if (ci->pprev != NULL) {
			tars_chunk_list_remove(p, ci);
		}
	} else if (ci->flags & CI_WIPEFORK) {
		/* The page reads as zeros here: no canaries, no free junk. */
		uint16_t *req = tars_ci_req(ci);
		for (unsigned i = 0; i < ci->total; i++) {
			req[i] &= (uint16_t)~REQ_CANARY;
		}
		ci->flags &= (uint8_t)~CI_JUNKED;
	}
}
