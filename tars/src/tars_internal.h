/*
 * tars_internal.h - declarations shared by the library's source files.
 * Nothing here is exported: the library is built with -fvisibility=hidden
 * and only the functions marked TARS_API in tars.h are visible.
 */
#ifndef TARS_INTERNAL_H
#define TARS_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stddef.h>
#include <sys/single_threaded.h>

#include "tars.h"

/* Everything declared below is internal to the library: hidden, so that
 * position-independent code reaches it directly rather than via the GOT. */
#pragma GCC visibility push(hidden)

#define TARS_NORETURN __attribute__((noreturn))
#define TARS_PRINTF(a, b) __attribute__((format(printf, a, b)))
#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

#define TARS_ALIGN 16            /* minimum alignment of every block */
#define TARS_CHUNK_MAX 2048      /* largest chunk class (<= page/2) */
#define TARS_FREE_JUNK 0xdf      /* junk: freed slots, new blocks */
#define TARS_CACHE_MAX 4096      /* upper bound of option `cache` */
#define TARS_SPARE_MAX 4096      /* upper bound of option `spare` */
#define TARS_QUARANTINE_MAX 4096 /* upper bound of option `quarantine` */
#define TARS_LARGE_CACHE_MAX 65536 /* upper bound of option `large_cache` */
#define TARS_NLISTS 4            /* random lists of free-slot pages per class */
#define TARS_RUN_PAGES 16        /* chunk pages committed at a time */

/* ------------------------------------------------------------------ */
/* os.c: system call wrappers (counted), fatal errors and warnings     */

TARS_NORETURN TARS_PRINTF(2, 3)
void tars_fatal(const char *func, const char *fmt, ...);
TARS_PRINTF(1, 2) void tars_warn(const char *fmt, ...);
/* Warn once per `flag` (an atomic_int set on the first call). */
TARS_PRINTF(2, 3) void tars_warn_once(atomic_int *flag, const char *fmt, ...);

extern atomic_uint_fast64_t tars_syscalls, tars_mmaps, tars_munmaps, tars_mprotects;

/* NULL with errno on failure. */
void *tars_os_map(void *hint, size_t len, int prot, int flags, int fd);
/* pthread mutexes; a failure is a bug (fatal, naming func). */
void tars_mutex_lock(pthread_mutex_t *m, const char *func);
void tars_mutex_unlock(pthread_mutex_t *m, const char *func);
/* 0, or -1 with ENOMEM (a split refused at the VMA limit); aborts on any
 * other error, which would mean tars's own bookkeeping is wrong. */
int tars_os_unmap(void *addr, size_t len);
/* 0, or -1 with errno (ENOMEM when the VMA limit is reached). */
int tars_os_protect(void *addr, size_t len, int prot);
int tars_os_advise(void *addr, size_t len, int advice);
int tars_os_lock(void *addr, size_t len);
/* mlock2(MLOCK_ONFAULT): pages are locked as they are faulted in. */
int tars_os_lock_onfault(void *addr, size_t len);
/* getrandom(2) until full; 0 or -1 with errno. */
int tars_os_random(void *buf, size_t len);
/* membarrier(2): registration (0 or -1) and a barrier on every thread of
 * the process (0 or -1). */
int tars_os_membarrier_register(void);
int tars_os_membarrier(void);
/* memfd_secret(2); fd or -1 with errno. */
int tars_os_memfd_secret(void);
/* Replaces [addr, addr+len) by a fresh PROT_NONE reservation (MAP_FIXED):
 * memory, locks and advice go back to the kernel, the address range stays
 * tars's.  0, or -1 with errno (ENOMEM at the VMA limit). */
int tars_os_replace(void *addr, size_t len);
/* Maps PROT_NONE at exactly addr unless something is there; 0 or -1.
 * Keeps the address range of pages a fork child did not inherit. */
int tars_os_reserve(void *addr, size_t len);

static inline void
tars_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ volatile("yield");
#endif
}

/* ------------------------------------------------------------------ */
/* random.c: ChaCha8 keystream per heap, seeded from getrandom          */

struct tars_rand {
	uint32_t key[8];
	uint64_t counter;
	uint8_t buf[256];
	unsigned avail;
	int need_reseed;
};

/* ChaCha8 keystream blocks (nonce 0): one, or four from `counter` on. */
void tars_chacha8_block(const uint32_t key[8], uint64_t counter, uint8_t out[64]);
void tars_chacha8_blocks4(const uint32_t key[8], uint64_t counter, uint8_t out[256]);

/* 0, or -1 with errno when getrandom fails. */
int tars_rand_seed(struct tars_rand *r);
void tars_rand_refill(struct tars_rand *r);

static inline uint8_t
tars_rand_u8(struct tars_rand *r)
{
	if (unlikely(r->avail == 0)) {
		tars_rand_refill(r);
	}
	return r->buf[--r->avail];
}

static inline uint32_t
tars_rand_u16(struct tars_rand *r)
{
	return ((uint32_t)tars_rand_u8(r) << 8) | tars_rand_u8(r);
}

/* ------------------------------------------------------------------ */
/* options.c                                                            */

struct tars_options {
	long junk, canary, cache, classes, random, mlock, dump, fork;
	long secretmem, stats, spare, delay, quarantine, large_cache, freed_none;
};

/* Read-only after initialisation (the page is mprotect'ed). */
extern const struct tars_options *tars_opt;

/* Options may change (tars_option_set) while other threads allocate: each
 * read is a relaxed atomic load (a plain load on x86 and arm64), so a
 * reader sees the old or the new value, never a torn one. */
static inline long
tars_opt_load(const long *field)
{
	return __atomic_load_n(field, __ATOMIC_RELAXED);
}
#define TARS_OPT(name) tars_opt_load(&tars_opt->name)

/* Map the options page and parse TARS_OPTIONS, once; 0 or -1 (ENOMEM, the
 * built-in defaults stay in force). */
int tars_options_init(void);
/* Make the options page read-only; 0 or -1. */
int tars_options_seal(void);
void tars_options_lock(void);
void tars_options_unlock(void);

/* ------------------------------------------------------------------ */
/* Size classes (chunk.c; tars_size_class in chunk.h)                   */

extern const uint16_t tars_class_size[TARS_NCLASSES];
void tars_chunk_init(void);         /* fills the size-class table */

/* ------------------------------------------------------------------ */
/* Region table (region.c): large and key blocks, keyed by page address */

enum { KIND_CHUNK = 1, KIND_LARGE = 2, KIND_KEY = 3 };

/* region flags */
#define R_LOCKED     0x01   /* data pages mlock'ed */
#define R_CANARY     0x02   /* large: slack before/after the data is canaried */
#define R_SECRETMEM  0x04   /* key: data pages from memfd_secret */
#define R_GONE       0x08   /* data pages not inherited by this (child) process */
#define R_WIPEFORK   0x10   /* data pages MADV_WIPEONFORK */
#define R_DONTFORK   0x20   /* data pages MADV_DONTFORK */
#define R_UNLOCKED   0x40   /* mlock=1 failed to lock the data pages */
#define R_SLAB       0x80   /* large: a slot of a multi-page class (slab.c) */
#define R_POLICY     (R_LOCKED | R_UNLOCKED | R_WIPEFORK | R_DONTFORK)
#define R_REUSED     0x4000 /* large: pages reused, not fresh (alloc only) */
#define R_ARENA      0x0800 /* key: a slot of the key arena (keyarena.c) */
#define R_PROT_SHIFT 8      /* key: current protection (PROT_*) << 8 */

struct region {
	uintptr_t page;          /* key: the page of ptr; 0 = empty */
	void *ptr;               /* the user pointer */
	size_t size;             /* requested size */
	size_t npages;           /* data pages */
	uint8_t *data;           /* the first of them */
	void *slab;              /* R_SLAB: its slab, and the slot in it */
	unsigned slot;
	uint16_t kind;
	uint16_t flags;
};

struct region_table {
	struct region *slots;
	size_t cap;              /* power of two */
	size_t count;
	unsigned shift;          /* 64 - log2(cap) */
};

int tars_region_init(struct region_table *t, size_t cap);
/* Inserts (page must not be present); 0, or -1 with errno ENOMEM. */
int tars_region_insert(struct region_table *t, const struct region *r);
struct region *tars_region_find(struct region_table *t, uintptr_t page);
void tars_region_delete(struct region_table *t, struct region *r);
/* Make room for one more entry before taking resources: 0 or -1/ENOMEM. */
int tars_region_reserve(struct region_table *t);

/* ------------------------------------------------------------------ */
/* Global state (init.c)                                                */

struct tars_global {
	size_t page_size;
	uintptr_t page_mask;         /* page_size - 1 */
	unsigned page_shift;
	unsigned seg_pages;          /* pages per segment (pages.c) */
	size_t chunk_max;            /* min(page/2, TARS_CHUNK_MAX) */
	uint64_t secret;             /* heap canary secret */
	uint64_t canary_key[2];      /* keys of the per-slot canary pattern */
	atomic_int basic_ready;      /* page size and options set (release) */
	atomic_int ready;
	int relock_pending;          /* fork child: pages to mlock again */
};

extern struct tars_global tars_g;
extern atomic_uint_fast64_t tars_meta_pages;   /* all metadata pages */

/* Page size and options (no heaps): enough for tars_option_get/set. */
void tars_init_basic(void);
/* 0, or -1 with errno ENOMEM: nothing is left half made, a later call
 * tries again. */
int tars_init_slow(void);
static inline int
tars_init(void)
{
	if (likely(atomic_load_explicit(&tars_g.ready, memory_order_acquire))) {
		return 0;
	}
	return tars_init_slow();
}

/* init_lock: initialisation; taken by fork before anything else. */
void tars_init_lock(void);
void tars_init_unlock(void);

/* Test hook: the address of the calling thread's heap's first canary. */
uint64_t *tars_test_heap_canary(void);

/* ------------------------------------------------------------------ */
/* Large and key blocks (large.c)                                       */

/* Global: large and key blocks are few and cost system calls anyway. */
struct tars_blocks {
	pthread_mutex_t lock;
	struct region_table regions;
	size_t large_count, large_pages, key_count, key_pages, secretmem_pages;
	size_t guard_pages;
	size_t quarantined_pages;    /* address space held by the quarantine */
	uint64_t cache_hits, cache_misses;  /* large mappings reused / fresh */
	size_t block_requested, block_reserved;
	uint64_t block_mallocs, block_frees;
};
extern struct tars_blocks tars_blocks;

int tars_blocks_init(void);
void tars_blocks_lock(void);
void tars_blocks_unlock(void);
void *tars_large_alloc(size_t size, size_t align, int kind, int zero,
    const char *func);
/* The large or key block at ptr's page, with tars_blocks locked; NULL (and
 * unlocked) if there is none. */
struct region *tars_block_find(const void *ptr);
/* blocks locked on entry, unlocked on return. */
void tars_large_free(struct region *r, void *ptr, size_t expect_size,
    const char *func);
/* No block holds ptr: if a quarantined one did, abort with "double free"
 * (freeing) or "use after free"; else return (the caller reports the
 * bogus pointer). */
void tars_block_not_found(const void *ptr, int freeing, const char *func);
/* Give back the memory and mlock budget that freed large blocks keep
 * (takes the blocks lock): the pages given back.  Called when an
 * allocation runs out. */
size_t tars_large_flush(void);
/* Blocks in quarantine, and the pages kept for reuse (blocks locked). */
size_t tars_quarantine_count(void);
size_t tars_quarantine_kept(void);

/* ------------------------------------------------------------------ */
/* slab.c: multi-page size classes (blocks locked)                      */

#define SLAB_CLASSES 12
#define SLAB_MAX_PAGES 16        /* blocks of up to this many pages */

/* The class of a block of npages pages (SLAB_CLASSES if none), its pages. */
unsigned tars_slab_class(size_t npages);
size_t tars_slab_class_pages(unsigned cls);
/* A writable, protected slot of class cls: its first page; its policy
 * flags, slab and slot index through the pointers.  NULL with ENOMEM. */
void *tars_slab_alloc(unsigned cls, uint16_t *flags, void **slab, unsigned *slot);
/* The slot (wiped) waits in its class's FIFO, then is free again. */
void tars_slab_free(void *slab, unsigned slot);
/* 1 if ptr is in a slot waiting in a FIFO. */
int tars_slab_held(const void *ptr);
/* Drop the memory of every slot that holds no block; the pages dropped. */
size_t tars_slab_flush(void);
void tars_slab_stats(struct tars_stats *st);
void tars_slab_after_fork(void);
void tars_slab_relock(void);
int tars_key_protect(void *ptr, int prot, const char *func);
/* Release or re-flag data pages in a fork child (blocks locked). */
void tars_large_after_fork(void);
/* mlock again in a fork child (blocks locked). */
void tars_large_relock(int strict);
/* memfd_secret(2) pages over [data, data+len), protection prot; 0 or -1
 * (unavailable, or refused: the range is left as it was). */
int tars_map_secret(uint8_t *data, size_t len, int prot);
/* 1 if ptr is in a chunk page (pages.c). */
int tars_chunk_owns(const void *ptr);
/* 1 if ptr is a chunk allocated before a fork that wiped its page
 * (fork=1): in this child it reads zeros (pages.c). */
int tars_chunk_fork_wiped(const void *ptr);
/* A container struct failed its check (buf.c, key.c): NULL, wiped by
 * fork, or bogus; aborts with a line that says which. */
TARS_NORETURN void tars_container_bad(const void *obj, const char *what,
    const char *func);
/* First data page of a large or key block. */
uint8_t *tars_large_data(const struct region *r);

/* ------------------------------------------------------------------ */
/* keyarena.c: keys of up to 16 pages in shared guarded regions         */

/* 1 if a key of size bytes goes to the arena. */
int tars_keyarena_fits(size_t size);
/* An open (read-write, junk-filled) arena key; NULL with ENOMEM. */
void *tars_keyarena_alloc(size_t size, const char *func);
/* Blocks locked on entry, unlocked on return. */
void tars_keyarena_free(struct region *r, const char *func);
/* Blocks locked: 0, or -1 with errno. */
int tars_keyarena_protect(struct region *r, int prot);
/* Blocks locked: 1 if ptr is in a freed arena key slot still in
 * quarantine. */
int tars_keyarena_quarantined(const void *ptr);
/* Fork child, blocks locked. */
void tars_keyarena_after_fork(void);
void tars_keyarena_relock(int strict);
/* Blocks locked: the arena's fields of s. */
void tars_keyarena_stats(struct tars_stats *s);
/* A closed (PROT_NONE) key allocation holding the len bytes at src, for
 * tars_key: written without opening it where the kernel allows.  NULL
 * with errno. */
void *tars_key_data_new(const void *src, size_t len, const char *func);

/* ------------------------------------------------------------------ */
/* policy.c: page hygiene of fresh data pages                           */

extern atomic_size_t tars_locked_bytes, tars_unlocked_bytes;

/* madvise + mlock of fresh data pages.  Sets *flags (R_LOCKED,
 * R_UNLOCKED, R_WIPEFORK, R_DONTFORK).  0, or -1 with ENOMEM when a
 * protection the options ask for could not be applied (an madvise refused
 * at the VMA limit, or mlock under mlock=2): such pages must not hold a
 * secret. */
int tars_apply_policy(void *addr, size_t len, uint16_t *flags, int secretmem);
/* The same for a whole key region, PROT_NONE, under mlock_policy (not the
 * option's: the arena tries strict first): the lock is
 * mlock2(MLOCK_ONFAULT), and no bytes are counted (keys count theirs). */
int tars_apply_region_policy(void *addr, size_t len, uint16_t *flags, int secretmem,
    long mlock_policy);
/* The bytes of len at flags leave the lock statistics. */
void tars_unlock_stats(size_t len, uint16_t flags);
/* What the protections of fresh pages depend on (mlock, dump, fork): kept
 * pages are reused only under the same options.  Never 0. */
uint8_t tars_policy_now(void);
/* mlock again after fork; 1 if locked. */
int tars_relock_range(void *addr, size_t len, int closed);

/* ------------------------------------------------------------------ */
/* buf.c                                                                */

/* 1 if the len bytes are equal; reads every byte whatever it finds. */
int tars_ct_equal(const void *a, const void *b, size_t len);

/* ------------------------------------------------------------------ */
/* stats.c                                                              */

void tars_stats_atexit(void);

/* ------------------------------------------------------------------ */
/* util                                                                 */

/* Fill n bytes (a multiple of 16) at a 16-byte aligned p, inline: slot
 * fills are short, and a call to memset costs more than the stores. */
typedef uint8_t tars_v16 __attribute__((vector_size(16), aligned(16), may_alias));

static inline void
tars_fill16(void *p, uint8_t c, size_t n)
{
	tars_v16 v = (tars_v16){0} + c;
	uint8_t *b = p;
	uint8_t *end = b + n;
	while (end - b >= 64) {
		/* The empty asm hides the pattern from gcc, which would
		 * otherwise turn the loop back into a memset call. */
		__asm__("" : "+r"(b));
		*(tars_v16 *)(void *)(b + 0) = v;
		*(tars_v16 *)(void *)(b + 16) = v;
		*(tars_v16 *)(void *)(b + 32) = v;
		*(tars_v16 *)(void *)(b + 48) = v;
		b += 64;
	}
	if (end - b >= 32) {
		*(tars_v16 *)(void *)(b + 0) = v;
		*(tars_v16 *)(void *)(b + 16) = v;
		b += 32;
	}
	if (b < end) {
		*(tars_v16 *)(void *)b = v;
		if (end - b > 16) {
			*(tars_v16 *)(void *)(b + 16) = v;
		}
	}
}

/*
 * Copy secret bytes through general-purpose registers only.  memcpy moves
 * them through vector registers, which keep stale contents long after and
 * get saved wholesale to the stack (lazy PLT binding saves every vector
 * register with xsave; so do signal frames), where a core dump finds them
 * despite MADV_DONTDUMP: the core-dump test caught exactly that.  The empty
 * asm pins each word to a GPR, so gcc can neither vectorize the loop nor
 * turn it back into memcpy.
 */
static inline void
tars_secret_copy(void *dst, const void *src, size_t n)
{
	uint8_t *d = dst;
	const uint8_t *s = src;
	for (; n >= 8; n -= 8, d += 8, s += 8) {
		uint64_t w;
		__builtin_memcpy(&w, s, 8);
		__asm__ volatile("" : "+r"(w));
		__builtin_memcpy(d, &w, 8);
	}
	for (; n > 0; n--) {
		uint8_t b = *s++;
		__asm__ volatile("" : "+r"(b));
		*d++ = b;
	}
}

/*
 * The canary pattern of a slot or block: eight bytes derived from its
 * address and two secrets, repeated (byte i of the slack is byte (i & 7)
 * of the word, counted from the slot start).  Every slot has its own, so
 * slack bytes copied from another slot of the same class (a memcpy with
 * the wrong length) do not match.  The low bit of every byte is set, so no
 * byte is 0 and a string terminator written one past the request is
 * caught; that leaves 56 secret bits a slot.  (The mixer is one multiply:
 * the canary catches overflows and copies, it is not meant to survive an
 * attacker who can already read memory.)
 */
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "canary words are little-endian");

static inline uint64_t
tars_canary_word(const void *slot)
{
	uint64_t x = ((uint64_t)(uintptr_t)slot ^ tars_g.canary_key[0]) * 0x9e3779b97f4a7c15ull;
	x ^= x >> 29;
	return (x ^ tars_g.canary_key[1]) | 0x0101010101010101ull;
}

/* Fill [from, to) of the slot at base with base's pattern. */
static inline void
tars_canary_fill(const uint8_t *base, uint8_t *from, uint8_t *to)
{
	uint64_t w = tars_canary_word(base);
	size_t off = (size_t)(from - base);
	for (; from < to && (off & 7); from++, off++) {
		*from = (uint8_t)(w >> (8 * (off & 7)));
	}
	for (; to - from >= 8; from += 8) {
		__builtin_memcpy(from, &w, 8);
	}
	for (off = 0; from < to; from++, off++) {
		*from = (uint8_t)(w >> (8 * off));
	}
}

/* The first byte in [from, to) that differs from base's pattern, or NULL. */
static inline const uint8_t *
tars_canary_find(const uint8_t *base, const uint8_t *from, const uint8_t *to)
{
	uint64_t w = tars_canary_word(base);
	size_t off = (size_t)(from - base);
	for (; from < to && (off & 7); from++, off++) {
		if (*from != (uint8_t)(w >> (8 * (off & 7)))) {
			return from;
		}
	}
	for (; to - from >= 8; from += 8) {
		uint64_t v;
		__builtin_memcpy(&v, from, 8);
		if (v != w) {
			break;   /* the byte loop below finds which */
		}
	}
	for (off = 0; from < to; from++, off++) {
		if (*from != (uint8_t)(w >> (8 * (off & 7)))) {
			return from;
		}
	}
	return NULL;
}

/* memset that the compiler may not drop (wiping secrets). */
static inline void
tars_wipe(void *p, int c, size_t n)
{
	__builtin_memset(p, c, n);
	__asm__ volatile("" : : "r"(p) : "memory");
}

/* tars_fill16 that the compiler may not drop. */
static inline void
tars_wipe16(void *p, uint8_t c, size_t n)
{
	tars_fill16(p, c, n);
	__asm__ volatile("" : : "r"(p) : "memory");
}

#pragma GCC visibility pop

#endif /* TARS_INTERNAL_H */
