/*
 * slab.c - multi-page size classes: large blocks of up to SLAB_MAX_PAGES
 * pages without a system call per allocation.
 *
 * A slab is one mapping of slots of k pages, each followed by a PROT_NONE
 * guard page, with one more in front:
 *
 *     | guard | slot (k pages) | guard | slot | guard | ... | slot | guard |
 *
 * A block sits at the END of its slot (its end 16-byte aligned), so an
 * overflow runs into the guard at once, as for a dedicated mapping; the
 * slack in front holds the canary (large.c fills and checks it), and a
 * larger underflow runs into the guard before.  A slot costs two VMAs
 * while committed (its pages and its guard): as much as one guard per
 * block, one fewer than a dedicated mapping.  A guard per slab instead
 * (slots side by side) would cost one VMA per slab, and an overflow would
 * run into the next block, not a guard: not taken.
 *
 * Slots are committed (made writable, then given every protection the
 * options ask for, each call checked) the first time they are used, and
 * stay so: a freed slot is wiped and kept, and the next allocation of its
 * class takes it with no system call.  A freed slot is not reused at once:
 * it waits in its class's FIFO for the next `window` frees of the class
 * (the quarantine of large blocks, in slots), so within that window a stale
 * pointer reads the free junk, never another live block; with option
 * freed_none=1 the freed slot is also PROT_NONE and a stale pointer faults,
 * at a system call per free and one per reuse.  The window is the option
 * `quarantine` capped at 256 KiB of slots per class, the memory a class
 * holds for it.  Slabs whose slots are all free are unmapped once the free
 * slots of all classes exceed `large_cache` pages.
 *
 * Everything runs under the blocks lock (large.c).  Metadata is out of
 * band: the slab records live in metadata pages; the block's region (the
 * table entry large.c keeps for every live block) points at the slot.
 */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#include "tars_internal.h"

static const uint8_t class_pages[SLAB_CLASSES] = {1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 14, 16};

#define SLAB_MAX_SLOTS 32
#define WINDOW_BYTES (256 * 1024)

struct slab {
	uint8_t *base;               /* the mapping; slot i at base + ps + i * (k + 1) * ps */
	size_t len;
	struct slab *next, *prev;    /* every slab of the class */
	unsigned cls, k, nslots;
	unsigned nfree;              /* slots free to allocate */
	uint32_t free_map;           /* 1: free to allocate */
	uint32_t held_map;           /* 1: freed, waiting in the class FIFO */
	uint32_t committed;          /* 1: pages writable once, protections applied */
	uint32_t closed;             /* 1: made PROT_NONE at free (freed_none=1) */
	uint16_t flags[SLAB_MAX_SLOTS]; /* R_LOCKED etc. of each committed slot */
	uint8_t policy[SLAB_MAX_SLOTS]; /* options it was committed under */
};

struct fifo_entry {
	struct slab *slab;
	unsigned slot;
};

struct slab_class {
	struct slab *slabs;
	size_t nslabs;
	struct fifo_entry fifo[SLAB_MAX_SLOTS * 2];
	unsigned fifo_head, fifo_n;
};

static struct slab_class classes[SLAB_CLASSES];
static struct slab *slab_free_records;
static struct tars_rand prng;
static int prng_seeded;

/* Committed pages of slots that hold no block (free or waiting). */
static size_t
free_pages(void)
{
	size_t n = 0;
	for (unsigned c = 0; c < SLAB_CLASSES; c++) {
		for (struct slab *s = classes[c].slabs; s != NULL; s = s->next) {
			n += (size_t)__builtin_popcount(s->committed & (s->free_map | s->held_map)) *
			    s->k;
		}
	}
	return n;
}

unsigned
tars_slab_class(size_t npages)
{
	for (unsigned c = 0; c < SLAB_CLASSES; c++) {
		if (class_pages[c] >= npages) {
			return c;
		}
	}
	return SLAB_CLASSES;
}

size_t
tars_slab_class_pages(unsigned cls)
{
	return class_pages[cls];
}

static unsigned
slots_of(unsigned k)
{
	unsigned n = 64 / k;
	return n < 4 ? 4 : n > SLAB_MAX_SLOTS ? SLAB_MAX_SLOTS : n;
}

/* The FIFO length of a class: the quarantine, at most 256 KiB of slots,
 * and never more than the FIFO holds. */
static unsigned
window_of(unsigned cls)
{
	size_t slot = (size_t)class_pages[cls] * tars_g.page_size;
	size_t w = (size_t)TARS_OPT(quarantine);
	size_t cap = WINDOW_BYTES / slot;
	if (w > cap) {
		w = cap;
	}
	return w > SLAB_MAX_SLOTS * 2 ? SLAB_MAX_SLOTS * 2 : (unsigned)w;
}

static uint8_t *
slot_addr(const struct slab *s, unsigned i)
{
	size_t ps = tars_g.page_size;
	return s->base + ps + (size_t)i * (s->k + 1) * ps;
}

static struct slab *
slab_new(unsigned cls)
{
	size_t ps = tars_g.page_size;
	unsigned k = class_pages[cls], n = slots_of(k);
	size_t len = ((size_t)n * (k + 1) + 1) * ps;
	struct slab *s = slab_free_records;
	if (s != NULL) {
		slab_free_records = s->next;
	} else {
		s = tars_os_map(NULL, ps, PROT_READ | PROT_WRITE, MAP_PRIVATE, -1);
		if (s == NULL) {
			return NULL;
		}
		atomic_fetch_add(&tars_meta_pages, 1);
		/* A page of records: keep the others. */
		size_t per = ps / sizeof(*s);
		for (size_t i = 1; i < per; i++) {
			s[i].next = slab_free_records;
			slab_free_records = &s[i];
		}
	}
	uint8_t *base = tars_os_map(NULL, len, PROT_NONE, MAP_PRIVATE | MAP_NORESERVE, -1);
	if (base == NULL) {
		s->next = slab_free_records;
		slab_free_records = s;
		return NULL;
	}
	memset(s, 0, sizeof(*s));
	s->base = base;
	s->len = len;
	s->cls = cls;
	s->k = k;
	s->nslots = n;
	s->nfree = n;
	s->free_map = n == 32 ? ~0u : (1u << n) - 1;
	struct slab_class *c = &classes[cls];
	s->next = c->slabs;
	if (c->slabs != NULL) {
		c->slabs->prev = s;
	}
	c->slabs = s;
	c->nslabs++;
	tars_blocks.guard_pages += n + 1;
	return s;
}

static void
slab_delete(struct slab *s)
{
	struct slab_class *c = &classes[s->cls];
	for (unsigned i = 0; i < s->nslots; i++) {
		if (s->committed & (1u << i)) {
			tars_unlock_stats((size_t)s->k * tars_g.page_size, s->flags[i]);
		}
	}
	/* A whole mapping: no split, so the VMA limit cannot refuse it. */
	(void)tars_os_unmap(s->base, s->len);
	tars_blocks.guard_pages -= s->nslots + 1;
	if (s->prev != NULL) {
		s->prev->next = s->next;
	} else {
		c->slabs = s->next;
	}
	if (s->next != NULL) {
		s->next->prev = s->prev;
	}
	c->nslabs--;
	s->next = slab_free_records;
	slab_free_records = s;
}

/* Writable, with the protections the options ask for: 0, or -1 (ENOMEM),
 * the slot left as it was (uncommitted, or closed). */
static int
slot_open(struct slab *s, unsigned i)
{
	size_t len = (size_t)s->k * tars_g.page_size;
	uint8_t *a = slot_addr(s, i);
	uint32_t bit = 1u << i;
	if ((s->committed & bit) && s->policy[i] == tars_policy_now()) {
		if (!(s->closed & bit)) {
			return 0;
		}
		if (tars_os_protect(a, len, PROT_READ | PROT_WRITE) != 0) {
			return -1;
		}
		s->closed &= ~bit;
		return 0;
	}
	if (s->committed & bit) {
		/* Committed under other options: dropped (memory, lock, advice)
		 * and committed again.  If the kernel refuses, it stays as it
		 * was, wiped, and the allocation fails. */
		if (tars_os_replace(a, len) != 0) {
			return -1;
		}
		tars_unlock_stats(len, s->flags[i]);
		s->committed &= ~bit;
		s->closed &= ~bit;
	}
	if (tars_os_protect(a, len, PROT_READ | PROT_WRITE) != 0) {
		return -1;
	}
	uint16_t f;
	if (tars_apply_policy(a, len, &f, 0) != 0) {
		tars_unlock_stats(len, f);
		(void)tars_os_replace(a, len);
		return -1;
	}
	s->committed |= bit;
	s->flags[i] = f;
	s->policy[i] = tars_policy_now();
	return 0;
}

void *
tars_slab_alloc(unsigned cls, uint16_t *flags, void **slab, unsigned *slot)
{
	if (!prng_seeded) {
		if (tars_rand_seed(&prng) != 0) {
			errno = ENOMEM;
			return NULL;
		}
		prng_seeded = 1;
	}
	struct slab_class *c = &classes[cls];
	/* A slab with a free slot, one already committed if there is one (no
	 * system call, and the slots in use stay as few as the working set
	 * needs): a random one among the first few such. */
	struct slab *pick = NULL;
	for (int pass = 0; pass < 2 && pick == NULL; pass++) {
		unsigned seen = 0;
		for (struct slab *s = c->slabs; s != NULL && seen < 4; s = s->next) {
			uint32_t cand = pass == 0 ? s->free_map & s->committed : s->free_map;
			if (cand != 0 && (pick == NULL || (tars_rand_u8(&prng) & 1))) {
				pick = s;
				seen++;
			}
		}
	}
	if (pick == NULL && (pick = slab_new(cls)) == NULL) {
		errno = ENOMEM;
		return NULL;
	}
	/* A random free slot of it, a committed one if it has any. */
	uint32_t cand = pick->free_map & pick->committed;
	if (cand == 0) {
		cand = pick->free_map;
	}
	unsigned k = (tars_rand_u8(&prng) * (unsigned)__builtin_popcount(cand)) >> 8, i = 0;
	for (uint32_t m = cand;; m &= m - 1) {
		if (k-- == 0) {
			i = (unsigned)__builtin_ctz(m);
			break;
		}
	}
	if (slot_open(pick, i) != 0) {
		errno = ENOMEM;
		return NULL;
	}
	pick->free_map &= ~(1u << i);
	pick->nfree--;
	*flags = pick->flags[i];
	*slab = pick;
	*slot = i;
	return slot_addr(pick, i);
}

/* A slot leaves the FIFO: free to allocate again, or its slab goes. */
static void
fifo_release(struct slab_class *c)
{
	struct fifo_entry e = c->fifo[c->fifo_head];
	c->fifo_head = (c->fifo_head + 1) % (SLAB_MAX_SLOTS * 2);
	c->fifo_n--;
	struct slab *s = e.slab;
	s->held_map &= ~(1u << e.slot);
	s->free_map |= 1u << e.slot;
	s->nfree++;
	if (s->nfree == s->nslots && free_pages() > (size_t)TARS_OPT(large_cache)) {
		slab_delete(s);
	}
}

void
tars_slab_free(void *slab, unsigned slot)
{
	struct slab *s = slab;
	struct slab_class *c = &classes[s->cls];
	size_t len = (size_t)s->k * tars_g.page_size;
	if (TARS_OPT(freed_none) && tars_os_protect(slot_addr(s, slot), len, PROT_NONE) == 0) {
		s->closed |= 1u << slot;
	}
	/* Room first: the ring holds at most w <= its size entries (pushing
	 * into a full ring would overwrite its oldest entry). */
	unsigned w = window_of(s->cls);
	while (c->fifo_n > 0 && c->fifo_n >= w) {
		fifo_release(c);
	}
	c->fifo[(c->fifo_head + c->fifo_n) % (SLAB_MAX_SLOTS * 2)] =
	    (struct fifo_entry){s, slot};
	c->fifo_n++;
	s->held_map |= 1u << slot;
	if (w == 0) {
		fifo_release(c);   /* quarantine=0: free again at once */
	}
}

/* Give back the memory (and mlock budget) of every slot that holds no
 * block: dropped (one PROT_NONE reservation each), committed again when
 * used.  Slabs left with nothing are unmapped.  The pages given back. */
size_t
tars_slab_flush(void)
{
	size_t ps = tars_g.page_size, freed = 0;
	for (unsigned c = 0; c < SLAB_CLASSES; c++) {
		struct slab *s = classes[c].slabs;
		while (s != NULL) {
			struct slab *next = s->next;
			uint32_t idle = s->committed & (s->free_map | s->held_map);
			for (unsigned i = 0; i < s->nslots; i++) {
				uint32_t bit = 1u << i;
				if ((idle & bit) && tars_os_replace(slot_addr(s, i), s->k * ps) == 0) {
					tars_unlock_stats(s->k * ps, s->flags[i]);
					s->committed &= ~bit;
					s->closed &= ~bit;
					freed += s->k;
				}
			}
			if (s->nfree == s->nslots && s->committed == 0) {
				slab_delete(s);
			}
			s = next;
		}
	}
	return freed;
}

/* The slab slot holding ptr (any byte of it), if it is waiting in a FIFO:
 * for the "double free" report. */
int
tars_slab_held(const void *ptr)
{
	size_t ps = tars_g.page_size;
	for (unsigned ci = 0; ci < SLAB_CLASSES; ci++) {
		struct slab_class *c = &classes[ci];
		for (unsigned j = 0; j < c->fifo_n; j++) {
			struct fifo_entry *e = &c->fifo[(c->fifo_head + j) % (SLAB_MAX_SLOTS * 2)];
			const uint8_t *a = slot_addr(e->slab, e->slot);
			if ((const uint8_t *)ptr >= a && (const uint8_t *)ptr < a + e->slab->k * ps) {
				return 1;
			}
		}
	}
	return 0;
}

void
tars_slab_stats(struct tars_stats *st)
{
	for (unsigned c = 0; c < SLAB_CLASSES; c++) {
		st->slabs += classes[c].nslabs;
		st->slab_held += classes[c].fifo_n;
	}
	st->slab_free_pages += free_pages();
}

/* Fork child (blocks locked): slots under MADV_DONTFORK are gone; their
 * addresses are held and the slots forgotten (never handed out again). */
void
tars_slab_after_fork(void)
{
	prng.need_reseed = 1;
	prng.avail = 0;
	for (unsigned c = 0; c < SLAB_CLASSES; c++) {
		for (struct slab *s = classes[c].slabs; s != NULL; s = s->next) {
			for (unsigned i = 0; i < s->nslots; i++) {
				uint32_t bit = 1u << i;
				if ((s->committed & bit) && (s->flags[i] & R_DONTFORK)) {
					size_t len = (size_t)s->k * tars_g.page_size;
					(void)tars_os_reserve(slot_addr(s, i), len);
					if (s->free_map & bit) {
						/* Free: drop it from the class. */
						s->free_map &= ~bit;
						s->nfree--;
					}
					s->committed &= ~bit;
					tars_unlock_stats(len, s->flags[i]);
				}
			}
		}
	}
}

/* Fork child's first call (blocks locked): committed free slots lose
 * their lock in the child; they are committed again when next used, by
 * forgetting their policy. */
void
tars_slab_relock(void)
{
	for (unsigned c = 0; c < SLAB_CLASSES; c++) {
		for (struct slab *s = classes[c].slabs; s != NULL; s = s->next) {
			for (unsigned i = 0; i < s->nslots; i++) {
				if ((s->committed & (1u << i)) && (s->free_map & (1u << i))) {
					s->policy[i] = 0;
				}
			}
		}
	}
}
