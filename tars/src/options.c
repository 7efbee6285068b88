/*
 * options.c - the option table, TARS_OPTIONS parsing, tars_option_get/set.
 *
 * Options live in a page of their own that is made read-only once the
 * allocator is initialised, so a stray write cannot switch protections off;
 * tars_option_set opens it for the length of one store.  The environment is
 * read with secure_getenv: a set-user-ID program ignores TARS_OPTIONS.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "tars_internal.h"

/*
 * The one option table: name, range, default, whether it is fixed at the
 * first allocation, and its documentation line.  Everything else (the
 * defaults before the options page exists, tars_option_at, the harnesses,
 * the fuzzer and the tuning sweep) is derived from it.
 */
#define TARS_OPTION_TABLE(X)                                                  \
	X(junk, 0, 2, 1, 0, "0 zero on free only; 1 junk on alloc and free; "    \
	    "2 also verify the free junk when a chunk slot is reused")            \
	X(canary, 0, 1, 1, 0, "1 fill chunk slack and large-block padding with " \
	    "a per-slot secret pattern, checked at free")                         \
	X(cache, 0, TARS_CACHE_MAX, 64, 0, "empty chunk pages kept PROT_NONE "   \
	    "and wiped instead of released")                                      \
	X(classes, 0, 1, 1, 0, "0 power-of-two size classes; 1 quarter steps")  \
	X(random, 0, 1, 1, 0, "1 random slot and page choice; 0 first fit")     \
	X(mlock, 0, 2, 1, 0, "0 off; 1 best effort; 2 strict (ENOMEM)")          \
	X(dump, 0, 1, 0, 0, "0 data pages excluded from core dumps; 1 included") \
	X(fork, 0, 2, 1, 0, "0 inherit; 1 wipe on fork; 2 not inherited")       \
	X(secretmem, 0, 1, 0, 0, "1 back keys with memfd_secret(2) when "        \
	    "available")                                                          \
	X(stats, 0, 1, 0, 0, "1 print the statistics to stderr at exit")        \
	X(spare, 1, TARS_SPARE_MAX, 128, 0, "empty chunk pages each thread's heap " \
	    "keeps writable and wiped, for any class")                            \
	X(delay, 0, 1, 0, 0, "1 a freed chunk slot waits in a 16-slot queue "    \
	    "before reuse (double frees caught meanwhile)")                       \
	X(quarantine, 0, TARS_QUARANTINE_MAX, 64, 0, "freed large blocks and "   \
	    "keys not reused for this many later frees (multi-page slots: at "    \
	    "most 256 KiB a class)")                                              \
	X(large_cache, 0, TARS_LARGE_CACHE_MAX, 256, 0, "pages of freed large "  \
	    "blocks kept (wiped) for reuse without a system call")              \
	X(freed_none, 0, 1, 0, 0, "1 freed large blocks kept for reuse are "     \
	    "PROT_NONE (a stale pointer faults), a system call per free and reuse")

#define OPT_DESC(n, lo, hi, d, io, help) \
	{ #n, lo, hi, d, io, help },
static const struct tars_option_desc descs[] = {
	TARS_OPTION_TABLE(OPT_DESC)
};
#undef OPT_DESC
#define NDEFS (sizeof(descs) / sizeof(descs[0]))

#define OPT_OFFSET(n, lo, hi, d, io, help) offsetof(struct tars_options, n),
static const size_t offsets[NDEFS] = {
	TARS_OPTION_TABLE(OPT_OFFSET)
};
#undef OPT_OFFSET

/* Defaults until the options page exists, so reads are always valid. */
#define OPT_DEFAULT(n, lo, hi, d, io, help) .n = d,
static const struct tars_options builtin = {
	TARS_OPTION_TABLE(OPT_DEFAULT)
};
#undef OPT_DEFAULT

const struct tars_options *tars_opt = &builtin;
static struct tars_options *page;      /* the options page, once mapped */
static size_t page_len;
static int sealed;
static pthread_mutex_t opt_lock = PTHREAD_MUTEX_INITIALIZER;

static long *
field(struct tars_options *o, const struct tars_option_desc *d)
{
	return (long *)(void *)((char *)o + offsets[d - descs]);
}

static const struct tars_option_desc *
lookup(const char *name, size_t len)
{
	for (size_t i = 0; i < NDEFS; i++) {
		if (strlen(descs[i].name) == len && strncmp(descs[i].name, name, len) == 0) {
			return &descs[i];
		}
	}
	return NULL;
}

const struct tars_option_desc *
tars_option_at(size_t i)
{
	return i < NDEFS ? &descs[i] : NULL;
}

/* TARS_OPTIONS problems reported one line each, at most this many; the
 * rest are counted in one closing line (10,000 bad items once wrote
 * 10,000 lines). */
#define ENV_WARN_MAX 8

struct env_warnings {
	unsigned shown, dropped;
};

TARS_PRINTF(2, 3) static void
env_warn(struct env_warnings *w, const char *fmt, ...)
{
	if (w->shown == ENV_WARN_MAX) {
		w->dropped++;
		return;
	}
	w->shown++;
	char line[256];
	va_list ap;
	va_start(ap, fmt);
	(void)vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	tars_warn("TARS_OPTIONS: %s", line);
}

static void
parse_env(struct tars_options *o)
{
	const char *env = secure_getenv("TARS_OPTIONS");
	if (env == NULL) {
		return;
	}
	struct env_warnings w = {0, 0};
	const char *s = env;
	while (*s != '\0') {
		const char *end = strchr(s, ',');
		size_t len = end ? (size_t)(end - s) : strlen(s);
		const char *eq = memchr(s, '=', len);
		if (len == 0) {
			/* empty item: ",," */
		} else if (eq == NULL) {
			env_warn(&w, "'%.*s' is not name=value; ignored", (int)(len > 64 ? 64 : len), s);
		} else {
			const struct tars_option_desc *d = lookup(s, (size_t)(eq - s));
			char num[32];
			size_t vlen = len - (size_t)(eq - s) - 1;
			char *stop = NULL;
			long v = 0;
			int ok = 0;
			if (vlen > 0 && vlen < sizeof(num)) {
				memcpy(num, eq + 1, vlen);
				num[vlen] = '\0';
				errno = 0;
				v = strtol(num, &stop, 10);
				ok = errno == 0 && *stop == '\0';
			}
			int nlen = (int)(eq - s > 64 ? 64 : eq - s);
			if (d == NULL && eq - s == 5 && strncmp(s, "pools", 5) == 0) {
				env_warn(&w, "option 'pools' was retired in 0.2 (every thread "
				    "owns a heap); ignored");
			} else if (d == NULL) {
				env_warn(&w, "unknown option '%.*s'; ignored", nlen, s);
			} else if (!ok || v < d->min || v > d->max) {
				env_warn(&w, "bad value '%.*s' for %s (%ld..%ld); ignored",
				    (int)(vlen > 32 ? 32 : vlen), eq + 1, d->name, d->min, d->max);
			} else {
				*field(o, d) = v;
			}
		}
		if (end == NULL) {
			break;
		}
		s = end + 1;
	}
	if (w.dropped > 0) {
		tars_warn("TARS_OPTIONS: %u more problems not shown", w.dropped);
	}
}

/* opt_lock held.  0, or -1 (ENOMEM): the built-in defaults stay in force
 * and a later call tries again. */
static int
init_locked(void)
{
	if (page != NULL) {
		return 0;
	}
	size_t ps = tars_g.page_size;
	struct tars_options *p = tars_os_map(NULL, ps, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE, -1);
	if (p == NULL) {
		return -1;
	}
	atomic_fetch_add(&tars_meta_pages, 1);
	*p = builtin;
	parse_env(p);
	page_len = ps;
	page = p;
	tars_opt = p;
	return 0;
}

void
tars_options_lock(void)
{
	tars_mutex_lock(&opt_lock, "tars_options");
}

void
tars_options_unlock(void)
{
	tars_mutex_unlock(&opt_lock, "tars_options");
}

int
tars_options_init(void)
{
	tars_options_lock();
	int rc = init_locked();
	tars_options_unlock();
	return rc;
}

int
tars_options_seal(void)
{
	int rc = 0;
	tars_options_lock();
	if (!sealed) {
		rc = tars_os_protect(page, page_len, PROT_READ);
		sealed = rc == 0;
	}
	tars_options_unlock();
	return rc;
}

int
tars_option_set(const char *name, long value)
{
	const struct tars_option_desc *d = lookup(name, strlen(name));
	if (d == NULL || value < d->min || value > d->max) {
		errno = EINVAL;
		return -1;
	}
	tars_init_basic();   /* options need the page size */
	int busy = d->init_only && atomic_load(&tars_g.ready);
	if (busy) {
		errno = EBUSY;
		return -1;
	}
	tars_options_lock();
	if (init_locked() != 0 ||
	    (sealed && tars_os_protect(page, page_len, PROT_READ | PROT_WRITE) != 0)) {
		tars_options_unlock();
		errno = ENOMEM;
		return -1;
	}
	__atomic_store_n(field(page, d), value, __ATOMIC_RELAXED);
	if (sealed && tars_os_protect(page, page_len, PROT_READ) != 0) {
		/* Closing a page we just opened merges it back: it needs no new
		 * mapping, so the kernel has no reason to refuse. */
		tars_fatal("tars_option_set", "cannot re-protect the options page");
	}
	tars_options_unlock();
	return 0;
}

long
tars_option_get(const char *name)
{
	const struct tars_option_desc *d = lookup(name, strlen(name));
	if (d == NULL) {
		errno = EINVAL;
		return -1;
	}
	tars_init_basic();
	(void)tars_options_init();   /* else the built-in defaults */
	return tars_opt_load(field((struct tars_options *)tars_opt, d));
}
