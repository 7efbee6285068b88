/*
 * tars.h - protected memory for secrets.
 *
 * tars is an allocator for keys, plaintexts and other secrets, modelled on
 * OpenBSD's malloc and on the Rust project TARS.  Every byte it hands out
 * lives in anonymous mmap'd pages that are
 *
 *   - locked in RAM (mlock; policy: option `mlock`),
 *   - excluded from core dumps (MADV_DONTDUMP; option `dump`),
 *   - wiped, or not inherited, across fork (option `fork`),
 *   - wiped when freed (junk or zero; option `junk`),
 *
 * and whose bookkeeping lives out of band, never next to user data.
 *
 * WARNING - memory layout.
 *
 *   Small allocations (size <= page_size / 2) are "chunks": slots of one size
 *   class share a page.  The slack between the requested size and the slot
 *   size holds a canary checked at free (option `canary`); an overflow that
 *   stays inside the slot is detected there, not when it happens.
 *
 *       | slot | slot | req..canary | slot | ... |     one data page
 *
 *   Large allocations (size > page_size / 2) and keys of more than 16 pages
 *   get a mapping of their own with a PROT_NONE guard page on each side.  The data
 *   ends at the trailing guard page (the end is 16-byte aligned), so an
 *   overflow past the rounded size faults at once with SIGSEGV:
 *
 *       | guard | canary.. data........ pad | guard |
 *                                            ^ 16-byte aligned end
 *
 *   Key allocations (tars_malloc_key) never share pages, so their protection
 *   can be switched with tars_protect_none/read/write.  Keys of up to 16
 *   pages share regions, every key between guard pages and PROT_NONE
 *   outside its scopes, so that a region is one VMA at rest:
 *
 *       | guard | ..key | guard | ..key | guard | ..key | guard | ...
 *
 *   Only open keys cost VMAs (about two each; at most 16 closed keys that
 *   were reopened soon after closing keep theirs too).  At the VMA limit
 *   an open fails with ENOMEM; closing and freeing never fail.  A freed
 *   key slot is wiped, PROT_NONE, and not handed out again for the next
 *   `quarantine` (64) key frees: within that window a stale pointer faults
 *   and a second free aborts.  tars_key writes and wipes its bytes through
 *   /proc/self/mem (O_CLOEXEC; reopened in a fork() child) where the
 *   kernel allows, without opening the key.
 *
 * Errors.  Misuse and heap corruption (double free, a pointer tars never
 * returned, a canary or junk mismatch, corrupted metadata) print one line
 * "tars: <function>(): <what>" on stderr and abort().  This is not
 * configurable.  Resource failures return NULL (or -1) with errno set; errno
 * is left unchanged on success.  Guard page hits are SIGSEGV.
 *
 * Limits.  The compiler may copy secrets to the stack or registers; tars
 * protects the heap copy only.  Protection changes are process-wide.
 */
#ifndef TARS_H
#define TARS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TARS_VERSION_MAJOR 0
#define TARS_VERSION_MINOR 1
#define TARS_VERSION_PATCH 0
#define TARS_VERSION "0.1.0"

#if defined(__GNUC__)
#define TARS_API __attribute__((visibility("default")))
#define TARS_WUR __attribute__((warn_unused_result))
#define TARS_MALLOC __attribute__((malloc))
#define TARS_ALLOC_SIZE(...) __attribute__((alloc_size(__VA_ARGS__)))
#define TARS_NONNULL(...) __attribute__((nonnull(__VA_ARGS__)))
#else
#define TARS_API
#define TARS_WUR
#define TARS_MALLOC
#define TARS_ALLOC_SIZE(...)
#define TARS_NONNULL(...)
#endif

/* ------------------------------------------------------------------------
 * Allocation
 * --------------------------------------------------------------------- */

/* Junk-filled (0xdf, the byte freed memory is wiped with) unless junk=0.
 * size 0 returns a distinct
 * pointer to an inaccessible slot: touching it faults, freeing it is fine.
 * NULL with errno ENOMEM on exhaustion.  Every block of 16 bytes or more is
 * 16-byte aligned. */
TARS_API TARS_MALLOC TARS_WUR TARS_ALLOC_SIZE(1)
void *tars_malloc(size_t size);

/* Zeroed.  NULL with ENOMEM if nmemb * size overflows. */
TARS_API TARS_MALLOC TARS_WUR TARS_ALLOC_SIZE(1, 2)
void *tars_calloc(size_t nmemb, size_t size);

/* ptr NULL acts as tars_malloc.  The block always moves; the old one is
 * wiped and freed.  On failure returns NULL, errno set, ptr untouched.
 * size 0 frees ptr and returns a zero-size pointer.  A key pointer stays a
 * key (see tars_realloc_key). */
TARS_API TARS_WUR TARS_ALLOC_SIZE(2)
void *tars_realloc(void *ptr, size_t size);

/* alignment: a power of two, at most the page size; else NULL, EINVAL. */
TARS_API TARS_MALLOC TARS_WUR TARS_ALLOC_SIZE(2)
void *tars_aligned_alloc(size_t alignment, size_t size);

/* NULL is a no-op.  Wipes (junk or zero) before the slot is reused, cached
 * or unmapped.  Aborts on a pointer tars did not return or already freed. */
TARS_API void tars_free(void *ptr);

/* tars_free, aborting unless size is exactly the size that was requested
 * for ptr (a cheap check that the caller frees what it thinks it frees). */
TARS_API void tars_freezero(void *ptr, size_t size);

/* Bytes usable at ptr: the requested size when a canary guards the slack
 * (writing past it is an overflow), else the whole slot.  0 for NULL. */
TARS_API TARS_WUR size_t tars_usable_size(const void *ptr);

/* Bytes a request of `size` occupies under the current options: the slot
 * size for chunks, the data pages for large blocks. */
TARS_API TARS_WUR size_t tars_slot_size(size_t size);

/* ------------------------------------------------------------------------
 * Keys: guarded pages whose protection can change (shared regions)
 * --------------------------------------------------------------------- */

/* Starts readable and writable (an open key: two VMAs until it is closed
 * with tars_protect_none).  Any size, 0 included (a key of size 0 has one
 * inaccessible data page).  With secretmem=1 the data pages come from
 * memfd_secret(2) where the kernel has it.  NULL with ENOMEM, also when
 * the VMA limit leaves no room to open it. */
TARS_API TARS_MALLOC TARS_WUR TARS_ALLOC_SIZE(1)
void *tars_malloc_key(size_t size);

/* Like tars_realloc for keys: a new key with the old contents (truncated
 * or junk-extended), readable and writable; the old one is wiped and freed.
 * ptr must be a key (or NULL), open or closed (it is opened to copy it). */
TARS_API TARS_WUR TARS_ALLOC_SIZE(2)
void *tars_realloc_key(void *ptr, size_t size);

/* Change the protection of a key's data pages.  0, or -1 with errno (the
 * mprotect error, e.g. ENOMEM when the VMA limit is reached).  Aborts if
 * ptr is not a key allocation. */
TARS_API TARS_WUR int tars_protect_none(void *ptr);
TARS_API TARS_WUR int tars_protect_read(void *ptr);
TARS_API TARS_WUR int tars_protect_write(void *ptr); /* read + write */

/* ------------------------------------------------------------------------
 * Options
 *
 * Read once from TARS_OPTIONS="name=value,name=value" (unknown names and bad
 * values warn once on stderr and are ignored), and through these calls.
 *
 *   name       values                                             default
 *   junk       0 zero on free only; 1 junk (0xdf) in freed and new   1
 *              blocks (a chunk slot keeps the junk its free left,
 *              no second fill); 2 as 1, and verify the free junk
 *              when a chunk slot is reused (catches write-after-free)
 *   canary     1 fill chunk slack and large-block padding with a     1
 *              pattern of the slot's own (address and secret),
 *              checked at free
 *   spare      empty chunk pages each thread's heap keeps writable  128
 *              and wiped, for any class; beyond that the oldest
 *              goes to the cache; 1..4096
 *   cache      empty chunk pages kept PROT_NONE and wiped (for      64
 *              all threads) instead of released; 0..4096
 *   classes    0 power-of-two size classes (as TARS);                1
 *              1 quarter-step classes (less waste)
 *   random     1 random slot in a page and random page among those   1
 *              with free slots; 0 first fit (deterministic)
 *   mlock      0 off; 1 best effort (warn once, count the unlocked    1
 *              bytes in stats); 2 strict (allocation fails, ENOMEM)
 *   dump       0 MADV_DONTDUMP on data pages; 1 leave in core dumps  0
 *   fork       0 inherit; 1 MADV_WIPEONFORK (child reads zeros);     1
 *              2 MADV_DONTFORK (child faults)
 *   secretmem  1 back keys with memfd_secret(2) when available,      0
 *              else fall back to anonymous memory
 *   stats      1 print tars_stats_print(stderr) at exit              0
 *   delay      1 a freed chunk slot waits in a 16-slot queue per     0
 *              thread before its slot is reused (a double free
 *              meanwhile aborts); costs about 60% per free+malloc
 *   quarantine freed large blocks and keys held PROT_NONE (a stale   64
 *              pointer faults, a double free aborts) before their
 *              address is unmapped; 0..4096
 *
 * mlock, dump, fork and secretmem apply to pages mapped after the change.
 * --------------------------------------------------------------------- */

/* 0, or -1 with errno EINVAL (unknown name, value out of range) or EBUSY
 * (an init-only option after the first allocation). */
TARS_API TARS_WUR int tars_option_set(const char *name, long value) TARS_NONNULL(1);

/* The value, or -1 with errno EINVAL for an unknown name. */
TARS_API TARS_WUR long tars_option_get(const char *name) TARS_NONNULL(1);

/* One entry of the option table: the harnesses, the fuzzer and the tuning
 * sweep enumerate names, ranges and defaults here instead of copying them. */
struct tars_option_desc {
	const char *name;
	long min, max;       /* accepted values, inclusive */
	long def;            /* the default */
	int init_only;       /* 1: fixed at the first allocation (EBUSY after) */
	const char *help;    /* one line */
};

/* The i-th option, or NULL past the last one. */
TARS_API TARS_WUR const struct tars_option_desc *tars_option_at(size_t i);

/* ------------------------------------------------------------------------
 * Statistics: one consistent snapshot of every heap (tars_stats_get waits
 * until no thread is inside tars, a few microseconds; do not call it on a
 * hot path)
 * --------------------------------------------------------------------- */

#define TARS_NCLASSES 25 /* class 0 holds size-0 allocations */

struct tars_stats {
	size_t page_size;        /* bytes per page */
	size_t heaps;            /* thread heaps made so far (one per thread
	                          * that used tars; reused after thread exit) */
	size_t segments;         /* 2 MiB address ranges chunk pages come from */
	size_t chunk_pages;      /* pages holding chunk slots, in use */
	size_t empty_pages;      /* of which every slot is free (option spare) */
	size_t zero_pages;       /* PROT_NONE pages holding size-0 slots */
	size_t cached_pages;     /* empty chunk pages in the cache (PROT_NONE) */
	size_t reserve_pages;    /* committed chunk pages not handed out yet */
	size_t kept_pages;       /* empty pages the kernel would neither protect
	                          * nor release (VMA limit): kept, wiped */
	size_t lost_pages;       /* pages whose protections failed and that
	                          * could not be released: never used */
	size_t pending_slots;    /* slots freed by another thread, wiped, not
	                          * yet collected by their heap */
	size_t delayed_slots;    /* freed slots, wiped, waiting in a heap's
	                          * delayed-free queue (option delay) */
	size_t large_count;      /* live large allocations */
	size_t large_pages;      /* their data pages (guards excluded) */
	size_t key_count;        /* live key allocations */
	size_t key_pages;        /* their data pages (guards excluded) */
	size_t secretmem_pages;  /* key data pages backed by memfd_secret */
	size_t guard_pages;      /* PROT_NONE guard pages (large, key, heaps) */
	size_t quarantined_blocks; /* freed large blocks and keys held PROT_NONE
	                          * before their address is reused */
	size_t quarantined_pages;/* their address space, guards included */
	size_t large_cached_pages; /* of which data pages kept (wiped, with
	                          * memory) for reuse by a block of that size */
	size_t slabs;            /* mappings of multi-page slots (blocks of
	                          * 2049 bytes to 16 pages) */
	size_t slab_held;        /* freed slots waiting out the quarantine */
	size_t slab_free_pages;  /* pages of slots holding no block (kept
	                          * wiped for reuse) */
	size_t meta_pages;       /* pages of metadata (heaps, records, tables) */
	size_t locked_bytes;     /* bytes currently mlock'ed by tars */
	size_t unlocked_bytes;   /* bytes that mlock=1 failed to lock */
	size_t live_count;       /* live allocations of all kinds */
	size_t live_requested;   /* bytes requested by them */
	size_t live_reserved;    /* bytes of slots/pages reserved for them */
	uint64_t mallocs;        /* successful allocations, all kinds */
	uint64_t frees;          /* frees, all kinds */
	uint64_t remote_frees;   /* chunk frees by a thread other than the
	                          * owner of the block's heap */
	uint64_t recarved_pages; /* empty pages carved again for another class */
	uint64_t class_mallocs[TARS_NCLASSES]; /* chunk allocations per class */
	size_t class_size[TARS_NCLASSES];      /* slot bytes of each class */
	uint64_t cache_hits;     /* new chunk pages taken from the cache */
	uint64_t cache_misses;   /* new chunk pages taken from fresh runs */
	uint64_t released_pages; /* empty chunk pages given back to the kernel */
	uint64_t large_reused;   /* large mappings taken from the cache */
	uint64_t large_mapped;   /* large and key mappings made fresh */
	uint64_t protect_changes;/* mprotect calls */
	uint64_t syscalls;       /* every system call tars issued */
	uint64_t mmaps;          /* of which mmap */
	uint64_t munmaps;        /* of which munmap */
	size_t key_regions;      /* shared regions keys of up to 16 pages live in */
	size_t key_region_pages; /* their pages: key slots and guards (reserved,
	                          * MAP_NORESERVE) */
	size_t key_slots;        /* key slots in them (a region of n slots has
	                          * n + 1 guard pages, counted in guard_pages) */
	size_t key_quarantined;  /* freed key slots (wiped, PROT_NONE) not yet
	                          * handed out again (quarantined_blocks counts
	                          * large blocks and keys over 16 pages) */
	size_t key_open;         /* arena keys readable or writable now: each
	                          * costs about two VMAs */
	size_t key_hot;          /* closed keys reopened soon after, kept in a
	                          * VMA of their own (at most 16: two VMAs each) */
};

TARS_API void tars_stats_get(struct tars_stats *out) TARS_NONNULL(1);
/* Human-readable, one "name value" per line. */
TARS_API void tars_stats_print(FILE *out) TARS_NONNULL(1);
/* One JSON object: every scalar field by name, then "classes": an array
 * of {"size", "mallocs"} for the classes used.  No trailing newline. */
TARS_API void tars_stats_print_json(FILE *out) TARS_NONNULL(1);

/* One scalar field of struct tars_stats, for programs that enumerate them
 * (every field is 64 bits wide). */
struct tars_stat_desc {
	const char *name;    /* the field's name in struct tars_stats */
	size_t offset;       /* offsetof(struct tars_stats, name) */
	const char *unit;    /* "bytes", "pages", "count" */
	const char *help;    /* one line */
};

/* The i-th scalar field, or NULL past the last one. */
TARS_API TARS_WUR const struct tars_stat_desc *tars_stat_at(size_t i);
/* Its value in a snapshot. */
TARS_API TARS_WUR uint64_t tars_stat_value(const struct tars_stats *s,
    const struct tars_stat_desc *d) TARS_NONNULL(1, 2);

/* ------------------------------------------------------------------------
 * tars_buf: a fixed-length sensitive buffer (TARS ProtBuf)
 *
 * Lives on the chunk allocator (small buffers share pages); the struct
 * itself is tars memory too.  Length 0 is valid.  Freed contents are wiped.
 * A NULL or freed container passed to any function but tars_buf_free and
 * tars_key_free (where NULL is a no-op) aborts with a "tars: " line; so
 * does one inherited through fork() with fork=1 (the child's copy reads
 * zeros).
 * --------------------------------------------------------------------- */

typedef struct tars_buf tars_buf;

TARS_API TARS_WUR tars_buf *tars_buf_new(size_t len);       /* junk */
TARS_API TARS_WUR tars_buf *tars_buf_new_zero(size_t len);
TARS_API TARS_WUR tars_buf *tars_buf_new_random(size_t len); /* getrandom */
TARS_API TARS_WUR tars_buf *tars_buf_from(const void *data, size_t len);
TARS_API TARS_WUR tars_buf *tars_buf_concat(const tars_buf *const *bufs, size_t count);
TARS_API TARS_WUR tars_buf *tars_buf_clone(const tars_buf *buf);
TARS_API TARS_WUR size_t tars_buf_len(const tars_buf *buf);
TARS_API TARS_WUR void *tars_buf_data(tars_buf *buf);
/* 1 if equal length and contents, else 0; time independent of contents. */
TARS_API TARS_WUR int tars_buf_equal(const tars_buf *a, const tars_buf *b);
TARS_API void tars_buf_free(tars_buf *buf);

/* ------------------------------------------------------------------------
 * tars_key: a buffer with no access by default (TARS ProtKey)
 *
 * Outside a scope its bytes are PROT_NONE.  Read scopes are shared and
 * counted (the first opens PROT_READ, the last closes it); the write scope
 * is exclusive.  A conflicting request fails with EBUSY, never blocks.
 * Ending a scope that is not open, or freeing a key with a scope open,
 * aborts with a "tars: " message.
 * --------------------------------------------------------------------- */

typedef struct tars_key tars_key;

/* Moves buf's bytes into a key and frees buf.  On failure NULL, errno set,
 * buf untouched. */
TARS_API TARS_WUR tars_key *tars_key_new(tars_buf *buf);
TARS_API TARS_WUR tars_key *tars_key_new_random(size_t len);
TARS_API TARS_WUR tars_key *tars_key_clone(tars_key *key);
TARS_API TARS_WUR size_t tars_key_len(const tars_key *key);
TARS_API TARS_WUR const void *tars_key_read_begin(tars_key *key);
TARS_API void tars_key_read_end(tars_key *key);
TARS_API TARS_WUR void *tars_key_write_begin(tars_key *key);
TARS_API void tars_key_write_end(tars_key *key);
/* fn's return value, or -1 with errno EBUSY if the scope cannot open. */
TARS_API int tars_key_read_with(tars_key *key,
    int (*fn)(const void *data, size_t len, void *arg), void *arg);
TARS_API int tars_key_write_with(tars_key *key,
    int (*fn)(void *data, size_t len, void *arg), void *arg);
/* 1 or 0; constant time in the contents.  -1 with EBUSY if a key cannot be
 * opened for reading. */
TARS_API TARS_WUR int tars_key_equal(tars_key *a, tars_key *b);
TARS_API void tars_key_free(tars_key *key);

#ifdef __cplusplus
}
#endif
#endif /* TARS_H */
