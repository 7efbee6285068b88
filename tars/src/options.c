/*
 * options.c - the option table, TARS_OPTIONS parsing, tars_option_get/set.
 *
 * Options live in a page of their own that is made read-only once the
 * allocator is initialised, so a stray write cannot switch protections off;
 * tars_option_set opens it for the length of one store.  The environment is
 * read with secure_getenv: a set-user-ID program ignores TARS_OPTIONS.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "tars_internal.h"

struct option_def {
	const char *name;
	size_t offset;
	long min, max, def;
	int init_only;       /* fixed once the first allocation happened */
};

#define OPT(n, lo, hi, d, io) \
	{ #n, offsetof(struct tars_options, n), lo, hi, d, io }

static const struct option_def defs[] = {
	OPT(junk, 0, 2, 1, 0),
	OPT(canary, 0, 1, 1, 0),
	OPT(cache, 0, TARS_CACHE_MAX, 64, 0),
	OPT(classes, 0, 1, 1, 0),
	OPT(random, 0, 1, 1, 0),
	OPT(mlock, 0, 2, 1, 0),
	OPT(dump, 0, 1, 0, 0),
	OPT(fork, 0, 2, 1, 0),
	OPT(pools, 1, TARS_MAX_POOLS, 4, 1),
	OPT(secretmem, 0, 1, 0, 0),
	OPT(stats, 0, 1, 0, 0),
	OPT(spare, 1, TARS_SPARE_MAX, 64, 0),
};
#define NDEFS (sizeof(defs) / sizeof(defs[0]))

/* Defaults until the options page exists, so reads are always valid. */
static const struct tars_options builtin = {
	.junk = 1, .canary = 1, .cache = 64, .classes = 1, .random = 1,
	.mlock = 1, .dump = 0, .fork = 1, .pools = 4, .secretmem = 0,
	.stats = 0, .spare = 64,
};

const struct tars_options *tars_opt = &builtin;
static struct tars_options *page;      /* the options page, once mapped */
static size_t page_len;
static int sealed;
static pthread_mutex_t opt_lock = PTHREAD_MUTEX_INITIALIZER;

static long *
field(struct tars_options *o, const struct option_def *d)
{
	return (long *)(void *)((char *)o + d->offset);
}

static const struct option_def *
lookup(const char *name, size_t len)
{
	for (size_t i = 0; i < NDEFS; i++) {
		if (strlen(defs[i].name) == len && strncmp(defs[i].name, name, len) == 0) {
			return &defs[i];
		}
	}
	return NULL;
}

static void
parse_env(struct tars_options *o)
{
	const char *env = secure_getenv("TARS_OPTIONS");
	if (env == NULL) {
		return;
	}
	const char *s = env;
	while (*s != '\0') {
		const char *end = strchr(s, ',');
		size_t len = end ? (size_t)(end - s) : strlen(s);
		const char *eq = memchr(s, '=', len);
		if (len == 0) {
			/* empty item: ",," */
		} else if (eq == NULL) {
			tars_warn("TARS_OPTIONS: '%.*s' is not name=value; ignored", (int)len, s);
		} else {
			const struct option_def *d = lookup(s, (size_t)(eq - s));
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
			if (d == NULL) {
				tars_warn("TARS_OPTIONS: unknown option '%.*s'; ignored",
				    (int)(eq - s), s);
			} else if (!ok || v < d->min || v > d->max) {
				tars_warn("TARS_OPTIONS: bad value '%.*s' for %s (%ld..%ld); "
				    "ignored", (int)vlen, eq + 1, d->name, d->min, d->max);
			} else {
				*field(o, d) = v;
			}
		}
		if (end == NULL) {
			break;
		}
		s = end + 1;
	}
}

/* opt_lock held. */
static void
init_locked(void)
{
	if (page != NULL) {
		return;
	}
	size_t ps = tars_g.page_size;
	struct tars_options *p = tars_os_map(NULL, ps, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE, -1);
	if (p == NULL) {
		tars_fatal("tars_init", "cannot map the options page");
	}
	*p = builtin;
	parse_env(p);
	page_len = ps;
	page = p;
	tars_opt = p;
}

void
tars_options_init(void)
{
	pthread_mutex_lock(&opt_lock);
	init_locked();
	pthread_mutex_unlock(&opt_lock);
}

void
tars_options_seal(void)
{
	pthread_mutex_lock(&opt_lock);
	if (!sealed) {
		if (tars_os_protect(page, page_len, PROT_READ) != 0) {
			tars_fatal("tars_init", "cannot protect the options page");
		}
		sealed = 1;
	}
	pthread_mutex_unlock(&opt_lock);
}

int
tars_option_set(const char *name, long value)
{
	const struct option_def *d = lookup(name, strlen(name));
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
	pthread_mutex_lock(&opt_lock);
	init_locked();
	if (sealed && tars_os_protect(page, page_len, PROT_READ | PROT_WRITE) != 0) {
		pthread_mutex_unlock(&opt_lock);
		return -1;
	}
	__atomic_store_n(field(page, d), value, __ATOMIC_RELAXED);
	if (sealed && tars_os_protect(page, page_len, PROT_READ) != 0) {
		tars_fatal("tars_option_set", "cannot re-protect the options page");
	}
	pthread_mutex_unlock(&opt_lock);
	return 0;
}

long
tars_option_get(const char *name)
{
	const struct option_def *d = lookup(name, strlen(name));
	if (d == NULL) {
		errno = EINVAL;
		return -1;
	}
	tars_init_basic();
	tars_options_init();
	return tars_opt_load(field((struct tars_options *)tars_opt, d));
}
