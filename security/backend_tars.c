/*
 * backend_tars.c - tars through its public API only: the chunk allocator,
 * raw keys, and the two containers.  Options are set with tars_option_set
 * (the driver clears TARS_OPTIONS), and options and statistics are read by
 * enumerating tars_option_at / tars_stat_at, so that a renamed or new field
 * shows up here without a change.
 */
#include "sec.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <tars.h>

static void *chunk_alloc(size_t size, unsigned char **data)
{
	return *data = tars_malloc(size);
}

static void chunk_release(void *h, size_t size)
{
	(void)size;
	tars_free(h);
}

static void *key_alloc(size_t size, unsigned char **data)
{
	return *data = tars_malloc_key(size);
}

/* A tars_key's bytes: where its read scope points (closed again at once:
 * the address is what the experiments need, the access they must not
 * have). */
static unsigned char *key_bytes(tars_key *k)
{
	const void *p = tars_key_read_begin(k);

	if (p == NULL)
		return NULL;
	tars_key_read_end(k);
	return (unsigned char *)(uintptr_t)p;
}

static void *keyobj_alloc(size_t size, unsigned char **data)
{
	tars_key *k = tars_key_new_random(size);

	if (k != NULL && (*data = key_bytes(k)) == NULL) {
		int e = errno;

		tars_key_free(k);
		errno = e;
		return NULL;
	}
	return k;
}

static void *keyobj_secret(const unsigned char *src, size_t len, unsigned char **data)
{
	tars_buf *b = tars_buf_from(src, len);
	tars_key *k;

	if (b == NULL)
		return NULL;
	k = tars_key_new(b);   /* moves the bytes and frees b (wiped) */
	if (k == NULL) {
		int e = errno;

		tars_buf_free(b);
		errno = e;
		return NULL;
	}
	if ((*data = key_bytes(k)) == NULL) {
		int e = errno;

		tars_key_free(k);
		errno = e;
		return NULL;
	}
	return k;
}

static void keyobj_release(void *h, size_t size)
{
	(void)size;
	tars_key_free(h);
}

static void *buf_alloc(size_t size, unsigned char **data)
{
	tars_buf *b = tars_buf_new(size);

	if (b != NULL)
		*data = tars_buf_data(b);
	return b;
}

static void *buf_secret(const unsigned char *src, size_t len, unsigned char **data)
{
	tars_buf *b = tars_buf_from(src, len);

	if (b != NULL)
		*data = tars_buf_data(b);
	return b;
}

static void buf_release(void *h, size_t size)
{
	(void)size;
	tars_buf_free(h);
}

static const struct sec_kind kinds[] = {
	{ "tars", "tars_malloc / tars_free (chunk slots sharing pages)",
	  chunk_alloc, chunk_release, NULL, 0 },
	{ "tars-key", "tars_malloc_key / tars_free (own guarded mapping, open)",
	  key_alloc, chunk_release, NULL, 0 },
	{ "tars-keyobj", "tars_key container (tars_key_new: PROT_NONE outside scopes)",
	  keyobj_alloc, keyobj_release, keyobj_secret, 1 },
	{ "tars-buf", "tars_buf container (tars_buf_new / tars_buf_from: chunk-backed)",
	  buf_alloc, buf_release, buf_secret, 0 },
	{ NULL, NULL, NULL, NULL, NULL, 0 },
};

static void t_version(char *out, size_t len)
{
	snprintf(out, len, "tars %s", TARS_VERSION);
}

static int t_option(const char *name, long value)
{
	return tars_option_set(name, value);
}

static void t_describe(void)
{
	const struct tars_option_desc *d;

	js_open("options");
	for (size_t i = 0; (d = tars_option_at(i)) != NULL; i++)
		js_i64(d->name, tars_option_get(d->name));
	js_close();
	js_open("option_table");   /* name: {min, max, default, init_only, help} */
	for (size_t i = 0; (d = tars_option_at(i)) != NULL; i++) {
		js_open(d->name);
		js_i64("min", d->min);
		js_i64("max", d->max);
		js_i64("default", d->def);
		js_bool("init_only", d->init_only);
		js_str("help", d->help);
		js_close();
	}
	js_close();
}

static void t_stats(const char *key)
{
	struct tars_stats st;
	const struct tars_stat_desc *d;

	tars_stats_get(&st);
	js_open(key);
	for (size_t i = 0; (d = tars_stat_at(i)) != NULL; i++)
		js_u64(d->name, tars_stat_value(&st, d));
	js_close();
}

static int t_stat(const char *name, uint64_t *out)
{
	struct tars_stats st;
	const struct tars_stat_desc *d;

	for (size_t i = 0; (d = tars_stat_at(i)) != NULL; i++) {
		if (strcmp(d->name, name) == 0) {
			tars_stats_get(&st);
			*out = tars_stat_value(&st, d);
			return 0;
		}
	}
	return -1;
}

static size_t t_slot(size_t size)
{
	return tars_slot_size(size);
}

const struct sec_backend sec_backend = {
	.name = "tars",
	.malloc_owner = "libc.so",
	.kinds = kinds,
	.version = t_version,
	.option = t_option,
	.describe = t_describe,
	.stats = t_stats,
	.stat = t_stat,
	.slot = t_slot,
};
