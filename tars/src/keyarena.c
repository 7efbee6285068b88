/*
 * keyarena.c - keys at scale: key allocations of up to KA_MAX_PAGES data
 * pages live in shared regions laid out
 *
 *     | guard | key | guard | key | guard | ... | key | guard |
 *
 * every page PROT_NONE outside a scope.  The kernel keeps a region whose
 * pages all have the same protection and flags as ONE VMA: a read scope
 * splits it into three while it is open, and closing merges it back.  So
 * live keys are bounded by memory, not by vm.max_map_count (65530 by
 * default; a mapping per key, as large blocks have, stops at ~32,700), and
 * only open scopes cost VMAs, about two each.  keyprobe (tars/tools) has
 * the kernel facts this relies on; paper-notes.md (sections 4.5 and 6.6,
 * appendix B) the figures.
 *
 * Why these choices:
 *
 *   - Regions are MAP_NORESERVE.  A private mapping that is charged to the
 *     commit limit marks a page VM_ACCOUNT the first time it is made
 *     writable, and a written page then never merges back with its
 *     unaccounted neighbours: 8000 written keys were 16,001 VMAs.
 *   - Every policy is a property of the whole region, applied once when it
 *     is made: MADV_DONTDUMP, MADV_WIPEONFORK or MADV_DONTFORK, and the
 *     lock, mlock2(MLOCK_ONFAULT) (a plain mlock of a PROT_NONE range fails
 *     and a per-key mlock splits the region for good).  A key gets the
 *     region of its options; regions made under other options keep theirs.
 *     The kernel charges the WHOLE region, guards and unused slots
 *     included, to RLIMIT_MEMLOCK, so regions start small (32 slots) and
 *     double: an unprivileged user with 8 MiB gets about a thousand locked
 *     one-page keys, then mlock=1 goes on unlocked (counted) and mlock=2
 *     fails with ENOMEM.
 *   - secretmem=1 backs a whole region with one memfd_secret(2) mapping:
 *     one VMA and one descriptor per region instead of three VMAs and a
 *     descriptor per key.
 *   - A key is written and wiped without being opened where the kernel
 *     allows it: through /proc/self/mem, which writes to a PROT_NONE page
 *     without changing its protection, so no VMA is split and merged and
 *     no region is ever open because a key is being made or freed.  It is
 *     also what makes a key's life cost a fraction of a fresh guarded
 *     mapping (each split-and-merge costs two to three times a protection
 *     flip on an isolated page).  Where it is refused (no /proc, a hardened
 *     kernel, memfd_secret pages), the slot is opened, written and closed.
 *     The descriptor is opened on first use, O_CLOEXEC, and dropped in a
 *     fork child (it would still write the parent's memory); a child made
 *     without fork(), by a raw clone(2), must not call tars.
 *   - A key reopened soon after it closed keeps a VMA of its own (the hot
 *     set, below), so a key in steady use costs protection flips, not
 *     splits and merges.
 *
 * Freed slots are wiped and PROT_NONE, leave the block table, and wait in
 * a FIFO quarantine of `quarantine` slots (the option that holds freed large
 * blocks, 64 by default) before they can be handed out again (then at
 * random): for the next `quarantine` key frees a stale pointer faults and a
 * double free aborts ("double free of ... in quarantine").  Its cost is
 * address space (NORESERVE) and, in locked regions, the wiped pages, which
 * stay resident: `quarantine` pages at most.
 *
 * A region whose keys are all freed and out of quarantine is unmapped,
 * unless it is the last of its size.  Everything here runs with tars_blocks
 * locked, inside a heap entry, so a fork's quiescent point never sees it
 * half done; live keys are entries of the block table like large blocks
 * (R_ARENA), so free, realloc, usable_size and tars_protect_* find them as
 * before.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>

#include "heap.h"

#define KA_MAX_PAGES 16              /* larger keys get a mapping each */
#define KA_REGION_PAGES 16384        /* at most 64 MiB of 4 KiB pages */
#define KA_FIRST_SLOTS 32            /* the first region of each size */
#define KA_HOT 16                    /* closed keys kept in a VMA of their own */

/* Slot states. */
enum { S_FREE = 0, S_LIVE = 1, S_QUAR = 2, S_LOST = 3 };
#define S_STATE 0x03
#define S_WRITTEN 0x04               /* was writable: check its canary at free */
#define S_OPENED 0x08                /* opened since it was handed out */
#define S_HOT 0x10                   /* in the hot set: a VMA of its own */

struct ka_region {
	uint8_t *base;               /* the first guard page */
	size_t len;                  /* bytes, guards included */
	uint32_t nslots;
	uint32_t nfree;              /* entries of free[] */
	uint32_t live, quar;
	uint32_t avail;              /* index in avail[cls], or UINT32_MAX */
	unsigned cls;                /* data pages per slot */
	uint16_t flags;              /* R_LOCKED, R_UNLOCKED, R_WIPEFORK,
	                              * R_DONTFORK, R_SECRETMEM, R_GONE */
	uint16_t sig;                /* the options it was made under */
	uint8_t *state;              /* per slot */
	uint32_t *free;              /* slots that may be handed out */
	uint32_t *stamp;             /* per slot: `closes` when it last closed */
	size_t meta_len;             /* this struct and its arrays */
};

static struct ka_region **regions;   /* sorted by base */
static size_t nregions, regions_cap;
static struct ka_region **avail[KA_MAX_PAGES + 1];   /* regions with free slots */
static size_t navail[KA_MAX_PAGES + 1], avail_cap[KA_MAX_PAGES + 1];
static unsigned made[KA_MAX_PAGES + 1];      /* regions ever made, per size */
static unsigned per_cls[KA_MAX_PAGES + 1];   /* regions mapped, per size */
static uintptr_t *quarantine;        /* slot data addresses, oldest at qhead */
static size_t qhead, nquar;
static size_t nslots_all, region_pages, nopen;
static uintptr_t hot[KA_HOT];        /* data addresses, a FIFO ring */
static size_t hot_next, nhot;
static uint32_t closes;              /* scopes closed, ever (wraps) */
static struct tars_rand rnd;
static int rnd_ready;
static uint8_t *scratch;             /* a page: canary images, peeks */
static int memfd = -1;               /* /proc/self/mem */
static int memfd_state;              /* 0 untried, 1 works, -1 refused */
static atomic_int warned_lost;

static size_t
ps(void)
{
	return tars_g.page_size;
}

/* ---- metadata ------------------------------------------------------------ */

static void *
meta_map(size_t len)
{
	void *p = tars_os_map(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE, -1);
	if (p != NULL) {
		atomic_fetch_add(&tars_meta_pages, len / ps());
	}
	return p;
}

static void
meta_unmap(void *p, size_t len)
{
	if (tars_os_unmap(p, len) == 0) {
		atomic_fetch_sub(&tars_meta_pages, len / ps());
	}
}

/* array (n used of *cap) with room for one more: the same or a larger
 * copy; NULL with ENOMEM. */
static void *
grow(void *array, size_t n, size_t *cap)
{
	if (n < *cap) {
		return array;
	}
	size_t ncap = *cap ? 2 * *cap : ps() / sizeof(void *);
	void *a = meta_map(ncap * sizeof(void *));
	if (a == NULL) {
		return NULL;
	}
	if (array != NULL) {
		memcpy(a, array, n * sizeof(void *));
		meta_unmap(array, *cap * sizeof(void *));
	}
	*cap = ncap;
	return a;
}

static int
setup(void)
{
	if (scratch != NULL) {
		return 0;
	}
	if (!rnd_ready) {
		if (tars_rand_seed(&rnd) != 0) {
			errno = ENOMEM;
			return -1;
		}
		rnd_ready = 1;
	}
	size_t qlen = (TARS_QUARANTINE_MAX * sizeof(uintptr_t) + ps() - 1) & ~tars_g.page_mask;
	if (quarantine == NULL && (quarantine = meta_map(qlen)) == NULL) {
		return -1;
	}
	scratch = meta_map(ps());
	return scratch == NULL ? -1 : 0;
}

/* ---- geometry ------------------------------------------------------------ */

static size_t
stride(const struct ka_region *g)
{
	return (size_t)(g->cls + 1) * ps();
}

static uint8_t *
slot_data(const struct ka_region *g, uint32_t i)
{
	return g->base + ps() + (size_t)i * stride(g);
}

/* The region holding addr, or NULL. */
static struct ka_region *
region_of(uintptr_t addr)
{
	size_t lo = 0, hi = nregions;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		struct ka_region *g = regions[mid];
		if (addr < (uintptr_t)g->base) {
			hi = mid;
		} else if (addr >= (uintptr_t)g->base + g->len) {
			lo = mid + 1;
		} else {
			return g;
		}
	}
	return NULL;
}

/* The slot of a live entry's data pages. */
static uint32_t
slot_of(const struct ka_region *g, const uint8_t *data)
{
	return (uint32_t)((size_t)(data - g->base - ps()) / stride(g));
}

static uint16_t
options_sig(void)
{
	return (uint16_t)(TARS_OPT(dump) | TARS_OPT(fork) << 1 | TARS_OPT(mlock) << 3 |
	    TARS_OPT(secretmem) << 5);
}

/* ---- /proc/self/mem ------------------------------------------------------ */

static void
memfd_drop(void)
{
	if (memfd >= 0) {
		(void)close(memfd);   /* a fork child's copy: nothing to flush */
	}
	memfd = -1;
	if (memfd_state > 0) {
		memfd_state = 0;
	}
}

static int
memfd_get(void)
{
	if (memfd_state < 0) {
		return -1;
	}
	if (memfd < 0) {
		atomic_fetch_add_explicit(&tars_syscalls, 1, memory_order_relaxed);
		memfd = open("/proc/self/mem", O_RDWR | O_CLOEXEC);
		if (memfd < 0) {
			memfd_state = -1;
			return -1;
		}
	}
	return memfd;
}

/* Write (or read) iov at addr through /proc/self/mem, whatever the page's
 * protection: 0, or -1 when the kernel refuses.  A refusal on the first
 * use means it never works here (no FOLL_FORCE, memfd_secret pages are
 * never asked); later ones are taken case by case. */
static int
poke(uint8_t *addr, const struct iovec *iov, int n, int write)
{
	int fd = memfd_get();
	if (fd < 0) {
		return -1;
	}
	size_t want = 0;
	for (int i = 0; i < n; i++) {
		want += iov[i].iov_len;
	}
	atomic_fetch_add_explicit(&tars_syscalls, 1, memory_order_relaxed);
	ssize_t got = write ? pwritev(fd, iov, n, (off_t)(uintptr_t)addr)
	    : preadv(fd, iov, n, (off_t)(uintptr_t)addr);
	if (got == (ssize_t)want) {
		memfd_state = 1;
		return 0;
	}
	if (memfd_state == 0) {
		memfd_state = -1;
		(void)close(memfd);
		memfd = -1;
	}
	return -1;
}

/* ---- regions ------------------------------------------------------------- */

static void
avail_add(struct ka_region *g)
{
	if (g->avail != UINT32_MAX || g->nfree == 0 || (g->flags & R_GONE)) {
		return;
	}
	/* Room was made before the region was published (region_new). */
	g->avail = (uint32_t)navail[g->cls];
	avail[g->cls][navail[g->cls]++] = g;
}

static void
avail_remove(struct ka_region *g)
{
	if (g->avail == UINT32_MAX) {
		return;
	}
	struct ka_region **a = avail[g->cls];
	struct ka_region *last = a[--navail[g->cls]];
	a[g->avail] = last;
	last->avail = g->avail;
	g->avail = UINT32_MAX;
}

/* A new region of nslots keys of cls data pages under the current
 * options; NULL with ENOMEM.  strict: only if it can be locked (mlock=1
 * or 2) and backed by memfd_secret (secretmem=1), else not at all. */
static struct ka_region *
region_try(unsigned cls, size_t nslots, int strict)
{
	size_t p = ps();
	size_t len = (nslots * (cls + 1) + 1) * p;
	size_t meta_len = (sizeof(struct ka_region) + nslots + 8 + 2 * nslots * sizeof(uint32_t) +
	    p - 1) & ~tars_g.page_mask;
	void *a = grow(regions, nregions, &regions_cap);
	if (a == NULL) {
		return NULL;
	}
	regions = a;
	if ((a = grow(avail[cls], navail[cls], &avail_cap[cls])) == NULL) {
		return NULL;
	}
	avail[cls] = a;
	struct ka_region *g = meta_map(meta_len);
	if (g == NULL) {
		return NULL;
	}
	uint8_t *base = tars_os_map(NULL, len, PROT_NONE, MAP_PRIVATE | MAP_NORESERVE, -1);
	if (base == NULL) {
		meta_unmap(g, meta_len);
		return NULL;
	}
	int secret = TARS_OPT(secretmem) && tars_map_secret(base, len, PROT_NONE) == 0;
	long lock = TARS_OPT(mlock);
	uint16_t flags;
	if ((strict && TARS_OPT(secretmem) && !secret) ||
	    tars_apply_region_policy(base, len, &flags, secret, strict && lock ? 2 : lock) != 0) {
		if (tars_os_unmap(base, len) != 0) {
			tars_warn_once(&warned_lost, "a key region of %zu bytes could not be "
			    "unmapped (VMA limit): left PROT_NONE", len);
		}
		meta_unmap(g, meta_len);
		errno = ENOMEM;
		return NULL;
	}
	if (secret) {
		flags |= R_SECRETMEM;
	}
	g->base = base;
	g->len = len;
	g->nslots = (uint32_t)nslots;
	g->cls = cls;
	g->flags = flags;
	g->sig = options_sig();
	g->meta_len = meta_len;
	g->state = (uint8_t *)(g + 1);
	g->free = (uint32_t *)(void *)(((uintptr_t)(g->state + nslots) + 7) & ~(uintptr_t)7);
	g->stamp = g->free + nslots;
	g->nfree = (uint32_t)nslots;
	for (uint32_t i = 0; i < nslots; i++) {
		g->free[i] = i;
	}
	g->avail = UINT32_MAX;
	size_t at = nregions;
	while (at > 0 && regions[at - 1]->base > base) {
		regions[at] = regions[at - 1];
		at--;
	}
	regions[at] = g;
	nregions++;
	made[cls]++;
	per_cls[cls]++;
	nslots_all += nslots;
	region_pages += len / p;
	avail_add(g);
	return g;
}

/*
 * A new region for keys of cls data pages: 32 slots for the first of its
 * size, twice as many for each next one, up to 64 MiB.  The kernel charges
 * a locked region (and a memfd_secret one) to RLIMIT_MEMLOCK whole, so
 * when it does not fit, smaller ones are tried, down to one slot, before
 * mlock=1 settles for an unlocked region (and mlock=2 fails); NULL with
 * ENOMEM.
 */
static struct ka_region *
region_new(unsigned cls)
{
	size_t max_slots = (KA_REGION_PAGES - 1) / (cls + 1);
	unsigned shift = made[cls] < 16 ? made[cls] : 16;
	size_t nslots = (size_t)KA_FIRST_SLOTS << shift;
	if (nslots > max_slots) {
		nslots = max_slots;
	}
	int saved = errno;
	for (size_t n = nslots;; n /= 4) {
		struct ka_region *g = region_try(cls, n ? n : 1, 1);
		if (g != NULL) {
			errno = saved;
			return g;
		}
		if (n <= 1) {
			break;
		}
	}
	if (TARS_OPT(mlock) == 2) {
		errno = ENOMEM;
		return NULL;
	}
	return region_try(cls, nslots, 0);
}

/* An empty region goes back to the kernel, unless it is the last of its
 * size (the next key would map it again) or the kernel refuses (it stays,
 * PROT_NONE; a region merged with a neighbour cannot be cut out at the
 * VMA limit). */
static void
region_maybe_release(struct ka_region *g)
{
	if (g->live != 0 || g->quar != 0 || (per_cls[g->cls] <= 1 && !(g->flags & R_GONE))) {
		return;
	}
	if (tars_os_unmap(g->base, g->len) != 0) {
		return;
	}
	avail_remove(g);
	size_t at = 0;
	while (regions[at] != g) {
		at++;
	}
	memmove(&regions[at], &regions[at + 1], (nregions - at - 1) * sizeof(*regions));
	nregions--;
	per_cls[g->cls]--;
	nslots_all -= g->nslots;
	region_pages -= g->len / ps();
	meta_unmap(g, g->meta_len);
}

/* A region of cls pages, made under the current options, with a free
 * slot: at random among those there are, or a new one. */
static struct ka_region *
region_pick(unsigned cls)
{
	uint16_t sig = options_sig();
	size_t n = navail[cls];
	if (n > 0) {
		size_t start = TARS_OPT(random) ? tars_rand_u16(&rnd) % n : 0;
		for (size_t k = 0; k < n; k++) {
			struct ka_region *g = avail[cls][(start + k) % n];
			if (g->sig == sig) {
				return g;
			}
		}
	}
	return region_new(cls);
}

/* ---- slots --------------------------------------------------------------- */

/* Takes a free slot of g (at random): its index. */
static uint32_t
slot_take(struct ka_region *g)
{
	uint32_t k = TARS_OPT(random) ? (uint32_t)((tars_rand_u16(&rnd) * (uint64_t)g->nfree) >> 16) : 0;
	uint32_t i = g->free[k];
	g->free[k] = g->free[--g->nfree];
	if (g->nfree == 0) {
		avail_remove(g);
	}
	g->state[i] = S_LIVE;
	g->live++;
	return i;
}

/* A slot that was never handed out after all goes straight back. */
static void
slot_untake(struct ka_region *g, uint32_t i)
{
	g->state[i] = S_FREE;
	g->live--;
	g->free[g->nfree++] = i;
	avail_add(g);
}

/* A freed slot leaves quarantine: it may be handed out again. */
static void
slot_release(uintptr_t data)
{
	struct ka_region *g = region_of(data);
	uint32_t i = slot_of(g, (const uint8_t *)data);
	g->quar--;
	if ((g->state[i] & S_STATE) == S_LOST || (g->flags & R_GONE)) {
		region_maybe_release(g);
		return;
	}
	g->state[i] = S_FREE;
	g->free[g->nfree++] = i;
	avail_add(g);
	region_maybe_release(g);
}

/* The freed slot i of g waits behind the last `quarantine` freed slots
 * (the option large blocks use); the oldest beyond leave. */
static void
quarantine_push(struct ka_region *g, uint32_t i)
{
	g->state[i] = (uint8_t)((g->state[i] & S_STATE) == S_LOST ? S_LOST : S_QUAR);
	g->live--;
	g->quar++;
	size_t max = (size_t)TARS_OPT(quarantine);
	while (nquar > 0 && nquar >= max) {
		uintptr_t old = quarantine[qhead];
		qhead = (qhead + 1) % TARS_QUARANTINE_MAX;
		nquar--;
		slot_release(old);
	}
	uintptr_t data = (uintptr_t)slot_data(g, i);
	if (max == 0) {
		slot_release(data);
		return;
	}
	quarantine[(qhead + nquar) % TARS_QUARANTINE_MAX] = data;
	nquar++;
}

int
tars_keyarena_quarantined(const void *ptr)
{
	struct ka_region *g = region_of((uintptr_t)ptr);
	if (g == NULL || (const uint8_t *)ptr < g->base + ps()) {
		return 0;
	}
	/* A key ends at its trailing guard (size 0: starts there). */
	size_t off = (size_t)((const uint8_t *)ptr - g->base - ps());
	uint32_t i = (uint32_t)(off / stride(g));
	return i < g->nslots && off % stride(g) <= (size_t)g->cls * ps() &&
	    (g->state[i] & S_STATE) == S_QUAR;
}

/* One page of the canary pattern of the slot at data, in scratch: the
 * pattern repeats every 8 bytes, so it is the image of every page. */
static void
canary_image(const uint8_t *data)
{
	uint64_t w = tars_canary_word(data);
	for (size_t off = 0; off < ps(); off += 8) {
		__builtin_memcpy(scratch + off, &w, 8);
	}
}

/* Writes a new key's bytes, and its canaried slack, into its closed slot
 * without opening it; 0 or -1. */
static int
write_closed(uint8_t *data, size_t dlen, uint8_t *ptr, const void *src, size_t size,
    int canary)
{
	struct iovec iov[KA_MAX_PAGES + 2];
	int n = 0;
	if (!canary) {
		iov[0] = (struct iovec){(void *)(uintptr_t)src, size};
		return poke(ptr, iov, 1, 1);
	}
	canary_image(data);
	size_t front = (size_t)(ptr - data);
	for (size_t off = 0; off < front; off += ps()) {
		iov[n++] = (struct iovec){scratch, front - off < ps() ? front - off : ps()};
	}
	iov[n++] = (struct iovec){(void *)(uintptr_t)src, size};
	size_t tail = front + size;
	iov[n++] = (struct iovec){scratch + (tail & tars_g.page_mask), dlen - tail};
	return poke(data, iov, n, 1);
}

/*
 * The hot set.  Opening a key in a region splits a VMA in three, closing
 * merges them back, and that split and merge costs two to three times a
 * protection flip on a VMA of its own (keyprobe).  A key that is opened
 * again soon after it closed (within KA_HOT closes of any key) is kept in
 * a VMA of its own: MADV_RANDOM gives it a flag its neighbours lack (a
 * harmless one: it only tunes readahead, which anonymous memory does not
 * have), so closing it is a flip, not a merge, and so is its next open.
 * At most KA_HOT keys are hot, in FIFO order; leaving the set is
 * MADV_NORMAL, which merges the closed key back.  So VMAs at rest are the
 * regions plus at most 2 * KA_HOT, and a key used over and over costs what
 * a key with a mapping of its own costs.
 */
static void
hot_leave(struct ka_region *g, uint32_t i)
{
	if (!(g->state[i] & S_HOT)) {
		return;
	}
	/* A refusal (no kernel memory for the merge) leaves a closed key
	 * in a VMA of its own: one VMA more, nothing exposed. */
	(void)tars_os_advise(slot_data(g, i), (size_t)g->cls * ps(), MADV_NORMAL);
	g->state[i] &= (uint8_t)~S_HOT;
	nhot--;
}

static void
hot_evict(uintptr_t data)
{
	struct ka_region *g = region_of(data);
	if (g != NULL) {
		uint32_t i = slot_of(g, (const uint8_t *)data);
		if ((uintptr_t)slot_data(g, i) == data) {
			hot_leave(g, i);
		}
	}
}

/* Every hot key leaves the set (the VMA budget is short). */
static void
hot_flush(void)
{
	for (size_t k = 0; k < KA_HOT; k++) {
		if (hot[k] != 0) {
			hot_evict(hot[k]);
			hot[k] = 0;
		}
	}
}

static void
hot_join(struct ka_region *g, uint32_t i, uint8_t *data)
{
	if (hot[hot_next] != 0) {
		hot_evict(hot[hot_next]);
	}
	if (tars_os_advise(data, (size_t)g->cls * ps(), MADV_RANDOM) != 0) {
		hot[hot_next] = 0;
		return;
	}
	g->state[i] |= S_HOT;
	nhot++;
	hot[hot_next] = (uintptr_t)data;
	hot_next = (hot_next + 1) % KA_HOT;
}

/* ---- the entry points ---------------------------------------------------- */

int
tars_keyarena_fits(size_t size)
{
	size_t rsize = (size + TARS_ALIGN - 1) & ~(size_t)(TARS_ALIGN - 1);
	return size <= KA_MAX_PAGES * ps() && (rsize + ps() - 1) / ps() <= KA_MAX_PAGES;
}

static unsigned
class_of(size_t size)
{
	size_t rsize = (size + TARS_ALIGN - 1) & ~(size_t)(TARS_ALIGN - 1);
	size_t n = (rsize + ps() - 1) / ps();
	return n == 0 ? 1 : (unsigned)n;
}

/*
 * A key slot for size bytes (tars_blocks locked).  src NULL: the slot is opened read-write, junk-filled, its slack
 * canaried (tars_malloc_key).  Else it holds src's bytes and stays
 * PROT_NONE: written through /proc/self/mem, or opened, written and closed
 * where that is refused.  NULL with ENOMEM.
 */
static void *
arena_alloc(size_t size, const void *src, const char *func)
{
	struct tars_blocks *b = &tars_blocks;
	size_t p = ps();
	unsigned cls = class_of(size);
	size_t rsize = (size + TARS_ALIGN - 1) & ~(size_t)(TARS_ALIGN - 1);
	size_t dlen = (size_t)cls * p;
	struct ka_region *g;
	if (setup() != 0 || tars_region_reserve(&b->regions) != 0 ||
	    (g = region_pick(cls)) == NULL) {
		errno = ENOMEM;
		return NULL;
	}
	uint32_t i = slot_take(g);
	uint8_t *data = slot_data(g, i);
	uint8_t *ptr = data + dlen - rsize;
	int canary = TARS_OPT(canary) != 0;
	int prot = PROT_NONE;
	int written = src != NULL && !(g->flags & R_SECRETMEM) &&
	    write_closed(data, dlen, ptr, src, size, canary) == 0;
	if (!written) {
		if (tars_os_protect(data, dlen, PROT_READ | PROT_WRITE) != 0) {
			slot_untake(g, i);
			errno = ENOMEM;
			return NULL;
		}
		g->state[i] |= S_WRITTEN;
		if (src != NULL) {
			tars_secret_copy(ptr, src, size);
		} else if (TARS_OPT(junk)) {
			memset(ptr, TARS_FREE_JUNK, size);
		}
		if (canary) {
			tars_canary_fill(data, data, ptr);
			tars_canary_fill(data, ptr + size, data + dlen);
		}
		if (src != NULL && tars_os_protect(data, dlen, PROT_NONE) != 0) {
			/* A merge refused for want of kernel memory: the copy
			 * cannot stay readable, and nobody owns it yet. */
			tars_wipe(ptr, 0, size);
			tars_fatal(func, "cannot close a new key: %s", strerror(errno));
		}
		prot = src != NULL ? PROT_NONE : PROT_READ | PROT_WRITE;
		nopen += prot != PROT_NONE;
	}
	uint16_t flags = (uint16_t)(g->flags | R_ARENA | (canary ? R_CANARY : 0) |
	    (unsigned)prot << R_PROT_SHIFT);
	struct region r = {.page = (uintptr_t)ptr & ~tars_g.page_mask, .ptr = ptr,
	    .size = size, .npages = cls, .data = data, .kind = KIND_KEY, .flags = flags};
	if (tars_region_insert(&b->regions, &r) != 0) {
		tars_fatal(func, "region table reserve failed");
	}
	if (g->flags & R_LOCKED) {
		atomic_fetch_add(&tars_locked_bytes, dlen);
	} else if (g->flags & R_UNLOCKED) {
		atomic_fetch_add(&tars_unlocked_bytes, dlen);
	}
	b->key_count++;
	b->key_pages += cls;
	if (g->flags & R_SECRETMEM) {
		b->secretmem_pages += cls;
	}
	b->block_mallocs++;
	b->block_requested += size;
	b->block_reserved += dlen;
	return ptr;
}

void *
tars_keyarena_alloc(size_t size, const char *func)
{
	int saved = errno;
	tars_blocks_lock();
	void *ptr = arena_alloc(size, NULL, func);
	tars_blocks_unlock();
	if (ptr != NULL) {
		errno = saved;
	}
	return ptr;
}

void *
tars_key_data_new(const void *src, size_t len, const char *func)
{
	struct tars_heap *h = tars_enter(func);
	int saved = errno;
	void *ptr = NULL;
	if (h == NULL) {
		errno = ENOMEM;
	} else if (tars_keyarena_fits(len)) {
		tars_blocks_lock();
		ptr = arena_alloc(len, src, func);
		tars_blocks_unlock();
	} else {
		ptr = tars_large_alloc(len, TARS_ALIGN, KIND_KEY, 0, func);
		if (ptr != NULL) {
			tars_secret_copy(ptr, src, len);
			if (tars_key_protect(ptr, PROT_NONE, func) != 0) {
				int e = errno;
				tars_free(ptr);
				errno = e;
				ptr = NULL;
			}
		}
	}
	if (ptr != NULL) {
		errno = saved;
	}
	tars_leave(h);
	return ptr;
}

/* Checks the slack canary of a slot whose bytes are at hand (open, or a
 * copy in scratch at the same offsets). */
static void
canary_check(const struct region *r, const uint8_t *data, const uint8_t *view,
    const char *func)
{
	size_t off = (size_t)((uint8_t *)r->ptr - data);
	size_t dlen = (size_t)r->npages * ps();
	uint64_t w = tars_canary_word(data);
	for (size_t k = 0; k < dlen; k++) {
		if (k == off) {
			k += r->size;
			if (k >= dlen) {
				break;
			}
		}
		if (view[k] != (uint8_t)(w >> (8 * (k & 7)))) {
			if (view == scratch) {
				tars_wipe(scratch, 0, ps());   /* a copy of the key */
			}
			if (k < off) {
				tars_fatal(func, "canary corrupted %zu bytes before block %p "
				    "(underflow)", off - k, r->ptr);
			}
			tars_fatal(func, "canary corrupted %zu bytes past the %zu of block %p "
			    "(overflow)", k - off - r->size, r->size, r->ptr);
		}
	}
}

/*
 * Free an arena key (blocks locked; unlocked on return).  The bytes are
 * wiped, the canary checked if the key was ever writable, the slot closed
 * and quarantined.  Nothing here can fail: a slot that can be neither
 * written nor opened is replaced by a fresh PROT_NONE page (its bytes are
 * gone with it) and never used again, and if even that is refused it is
 * left closed with its bytes and never used again (warned once).
 */
void
tars_keyarena_free(struct region *r, const char *func)
{
	struct tars_blocks *b = &tars_blocks;
	size_t p = ps();
	uint8_t *data = tars_large_data(r);
	size_t dlen = (size_t)r->npages * p;
	struct ka_region *g = region_of((uintptr_t)data);
	if (g == NULL) {
		tars_fatal(func, "key metadata corrupted: %p is in no key region", r->ptr);
	}
	uint32_t i = slot_of(g, data);
	uint16_t flags = r->flags;
	int prot = (flags >> R_PROT_SHIFT) & (PROT_READ | PROT_WRITE);
	uint8_t *ptr = r->ptr;
	if (!(flags & R_GONE)) {
		int check = (flags & R_CANARY) && (g->state[i] & S_WRITTEN);
		int done = 0;
		if (prot == PROT_NONE && !(flags & R_SECRETMEM) && (!check || dlen <= p)) {
			/* Closed: peek at the canary and wipe through the
			 * side door, no VMA change. */
			struct iovec rd = {scratch, dlen};
			if (!check || poke(data, &rd, 1, 0) == 0) {
				if (check) {
					canary_check(r, data, scratch, func);
				}
				/* The copy read holds the key: zeros now, the
				 * source of the wipe below. */
				tars_wipe(scratch, 0, p);
				struct iovec wr[KA_MAX_PAGES + 1];
				size_t left = r->size;
				int n = 0;
				while (left > 0) {
					size_t c = left < p ? left : p;
					wr[n++] = (struct iovec){scratch, c};
					left -= c;
				}
				done = n == 0 || poke(ptr, wr, n, 1) == 0;
			}
		}
		if (!done && prot != (PROT_READ | PROT_WRITE)) {
			/* At the VMA limit the hot keys give their VMAs back. */
			int ok = tars_os_protect(data, dlen, PROT_READ | PROT_WRITE) == 0;
			if (!ok && prot == PROT_NONE && nhot > 0) {
				hot_flush();
				ok = tars_os_protect(data, dlen, PROT_READ | PROT_WRITE) == 0;
			}
			if (ok) {
				nopen += prot == PROT_NONE;
				prot = PROT_READ | PROT_WRITE;
			}
		}
		if (!done && prot == PROT_NONE && !(flags & (R_LOCKED | R_SECRETMEM)) &&
		    tars_os_advise(data, dlen, MADV_DONTNEED) == 0) {
			/* Unlocked anonymous pages can be dropped where they
			 * stand: the wipe needs no split (the canary, if any,
			 * goes unchecked). */
			done = 1;
		}
		if (!done && prot == (PROT_READ | PROT_WRITE)) {
			if (flags & R_CANARY) {
				canary_check(r, data, data, func);
			}
			tars_wipe(ptr, 0, r->size);
			done = 1;
		}
		if (prot != PROT_NONE) {
			if (tars_os_protect(data, dlen, PROT_NONE) == 0) {
				nopen--;
				prot = PROT_NONE;
			}
		}
		hot_leave(g, i);
		if (!done || prot != PROT_NONE) {
			/* Neither written nor closed: a fresh reservation takes
			 * the page, bytes and all.  It lacks the region's
			 * flags, so the slot is never used again. */
			if (tars_os_replace(data, dlen) == 0) {
				nopen -= prot != PROT_NONE;
			} else {
				tars_warn_once(&warned_lost, "%s(): key %p could be neither "
				    "wiped nor replaced (%s): its slot is retired", func,
				    (void *)ptr, strerror(errno));
			}
			g->state[i] = S_LOST;
		}
	}
	b->key_count--;
	b->key_pages -= r->npages;
	if (flags & R_SECRETMEM) {
		b->secretmem_pages -= r->npages;
	}
	b->block_frees++;
	b->block_requested -= r->size;
	b->block_reserved -= dlen;
	tars_unlock_stats(dlen, flags);
	tars_region_delete(&b->regions, r);
	quarantine_push(g, i);
	tars_blocks_unlock();
}

/* Switch an arena key to prot (blocks locked, entry checked): 0, or -1
 * with ENOMEM when an open needs a split the kernel refuses (the VMA
 * limit).  Closing needs no split (the open key is a VMA of its own), and
 * where the kernel cannot even merge (no memory for its bookkeeping), the
 * key is made hot first so that the close is a flip, which needs none. */
int
tars_keyarena_protect(struct region *r, int prot)
{
	int old = (r->flags >> R_PROT_SHIFT) & (PROT_READ | PROT_WRITE);
	if (old == prot) {
		return 0;
	}
	uint8_t *data = tars_large_data(r);
	size_t dlen = (size_t)r->npages * ps();
	struct ka_region *g = region_of((uintptr_t)data);
	uint32_t i = slot_of(g, data);
	if (tars_os_protect(data, dlen, prot) != 0) {
		int e = errno;
		if (old == PROT_NONE && nhot > 0) {
			hot_flush();
		} else if (prot == PROT_NONE && !(g->state[i] & S_HOT)) {
			hot_join(g, i, data);
		}
		if (tars_os_protect(data, dlen, prot) != 0) {
			errno = e;
			return -1;
		}
	}
	if (old == PROT_NONE) {
		if ((g->state[i] & (S_OPENED | S_HOT)) == S_OPENED &&
		    closes - g->stamp[i] <= KA_HOT) {
			hot_join(g, i, data);
		}
		g->state[i] |= S_OPENED;
	} else if (prot == PROT_NONE) {
		g->stamp[i] = ++closes;
	}
	if (prot & PROT_WRITE) {
		g->state[i] |= S_WRITTEN;
	}
	nopen += (old == PROT_NONE) - (prot == PROT_NONE);
	r->flags = (uint16_t)((r->flags & ~(7u << R_PROT_SHIFT)) |
	    (unsigned)prot << R_PROT_SHIFT);
	return 0;
}

/* ---- fork and statistics ------------------------------------------------- */

/* Fork child (quiescent, blocks locked): the descriptor writes the
 * parent's memory, and MADV_DONTFORK regions are not here: their address
 * range is held (one reservation each), nothing is handed out there
 * again, and their keys can only be freed. */
void
tars_keyarena_after_fork(void)
{
	memfd_drop();
	rnd.need_reseed = 1;
	rnd.avail = 0;
	nopen = 0;
	for (size_t k = 0; k < nregions; k++) {
		struct ka_region *g = regions[k];
		if (g->flags & (R_DONTFORK | R_SECRETMEM)) {
			g->flags |= R_GONE;
			avail_remove(g);
			(void)tars_os_reserve(g->base, g->len);
		}
	}
	struct region_table *t = &tars_blocks.regions;
	for (size_t s = 0; s < t->cap; s++) {
		struct region *r = &t->slots[s];
		if (r->page != 0 && (r->flags & R_ARENA) && !(r->flags & R_GONE) &&
		    ((r->flags >> R_PROT_SHIFT) & (PROT_READ | PROT_WRITE)) != 0) {
			nopen++;
		}
	}
}

/* A fork child's first call: memory locks are not inherited; lock every
 * locked region again (MLOCK_ONFAULT also locks the pages already there).
 * A region that cannot be locked moves its keys' bytes to unlocked_bytes;
 * under mlock=2 it takes no new keys. */
void
tars_keyarena_relock(int strict)
{
	for (size_t k = 0; k < nregions; k++) {
		struct ka_region *g = regions[k];
		if (!(g->flags & R_LOCKED) || (g->flags & (R_GONE | R_SECRETMEM))) {
			continue;
		}
		if (tars_os_lock_onfault(g->base, g->len) == 0) {
			continue;
		}
		g->flags = (uint16_t)((g->flags & ~R_LOCKED) | R_UNLOCKED);
		if (strict) {
			avail_remove(g);
			g->sig = (uint16_t)~0u;
		}
		struct region_table *t = &tars_blocks.regions;
		for (size_t s = 0; s < t->cap; s++) {
			struct region *r = &t->slots[s];
			if (r->page != 0 && (r->flags & R_ARENA) && (r->flags & R_LOCKED) &&
			    region_of(r->page) == g) {
				size_t len = (size_t)r->npages * ps();
				r->flags = (uint16_t)((r->flags & ~R_LOCKED) | R_UNLOCKED);
				atomic_fetch_sub(&tars_locked_bytes, len);
				atomic_fetch_add(&tars_unlocked_bytes, len);
			}
		}
	}
}

/* Blocks locked. */
void
tars_keyarena_stats(struct tars_stats *s)
{
	s->key_regions = nregions;
	s->key_region_pages = region_pages;
	s->key_slots = nslots_all;
	s->key_quarantined = nquar;
	s->key_open = nopen;
	s->key_hot = nhot;
	s->guard_pages += nslots_all + nregions;
}
