/*
 * fuzz_tars.c - libFuzzer target: the input is a program of allocator and
 * container operations, run against a simple model.
 *
 * Every live block has a shadow copy of its contents (plain libc memory,
 * which ASan watches) and a per-byte "known" mask: bytes tars promises
 * (calloc zeros, junk 0xdf on allocation, the prefix kept by realloc,
 * everything the program wrote) are checked; the others are not.  After
 * each operation the results are held against the model: contents, the
 * requested and usable sizes, alignment, no overlap between live blocks,
 * key protection, container lengths and equality.  At the end of an input
 * everything is freed and the allocator must be back where it started
 * (live_count, live_requested).
 *
 * The program never misuses the API (that is the death tests' job): a
 * tars abort, a fault or a model mismatch is a finding.
 *
 * Operations are one byte each, followed by their operands; a short input
 * reads zeros.  Sizes are drawn from a mix of small, medium, large and
 * boundary values.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tars.h"

#define NSLOTS 48
#define NBUFS 12
#define NKEYS 12
#define MAX_LARGE 70000

#define CHECK(cond, ...) do {                                                \
	if (!(cond)) {                                                       \
		fprintf(stderr, "fuzz_tars: check failed at line %d: %s: ",  \
		    __LINE__, #cond);                                        \
		fprintf(stderr, __VA_ARGS__);                                \
		fputc('\n', stderr);                                         \
		abort();                                                     \
	}                                                                    \
} while (0)

/* ---- input -------------------------------------------------------------- */

struct input {
	const uint8_t *p;
	size_t left;
};

static uint8_t
u8(struct input *in)
{
	if (in->left == 0) {
		return 0;
	}
	in->left--;
	return *in->p++;
}

static uint16_t
u16(struct input *in)
{
	uint16_t hi = u8(in);
	return (uint16_t)(hi << 8 | u8(in));
}

static size_t
draw_size(struct input *in)
{
	static const size_t edges[] = {
		0, 1, 7, 8, 15, 16, 17, 31, 32, 33, 48, 63, 64, 65, 100, 127, 128,
		129, 255, 256, 257, 511, 512, 513, 1023, 1024, 1025, 2047, 2048,
		2049, 4079, 4080, 4081, 4095, 4096, 4097, 8191, 8192, 8193, 65536,
	};
	uint8_t how = u8(in);
	switch (how & 3) {
	case 0:
		return u8(in) % 65;
	case 1:
		return u16(in) % 2600;
	case 2:
		return u16(in) % MAX_LARGE + 1;
	default:
		return edges[(how >> 2) % (sizeof(edges) / sizeof(edges[0]))];
	}
}

/* ---- model -------------------------------------------------------------- */

enum kind { K_NONE, K_PLAIN, K_KEY };

struct block {
	enum kind kind;
	uint8_t *ptr;
	size_t size;
	size_t align;          /* guaranteed alignment of ptr */
	size_t usable_want;    /* 0: only check usable >= size */
	int prot;              /* keys: 0 none, 1 read, 2 read+write */
	uint8_t *shadow;       /* expected contents */
	uint8_t *known;        /* 1 where shadow is promised */
};

struct mbuf {
	tars_buf *b;
	size_t len;
	uint8_t *shadow;       /* NULL for new_random/new (unknown bytes) */
};

struct mkey {
	tars_key *k;
	size_t len;
	uint8_t *shadow;       /* NULL: unknown (random) */
};

static struct block slots[NSLOTS];
static struct mbuf bufs[NBUFS];
static struct mkey keys[NKEYS];
static size_t page_size;

static void *
xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	CHECK(p != NULL, "libc malloc(%zu)", n);
	return p;
}

static uint8_t
pattern(uint8_t seed, size_t i)
{
	return (uint8_t)(seed * 31u + (uint8_t)i * 7u + (uint8_t)(i >> 8));
}

static size_t
round16(size_t n)
{
	return (n + 15) & ~(size_t)15;
}

/* Junk that a fresh block holds under the current options, or -1. */
static int
fresh_fill(int zeroed)
{
	if (zeroed) {
		return 0;
	}
	return tars_option_get("junk") >= 1 ? 0xdf : -1;
}

static void
block_check_contents(const struct block *b, int slot)
{
	if (b->kind == K_KEY && b->prot == 0) {
		return;   /* not readable */
	}
	for (size_t i = 0; i < b->size; i++) {
		if (b->known[i]) {
			CHECK(b->ptr[i] == b->shadow[i], "slot %d (%p, size %zu): byte %zu is "
			    "%#x, want %#x", slot, (void *)b->ptr, b->size, i, b->ptr[i],
			    b->shadow[i]);
		}
	}
}

static void
no_overlap(const uint8_t *p, size_t size, int self)
{
	size_t len = size ? size : 1;
	for (int i = 0; i < NSLOTS; i++) {
		const struct block *o = &slots[i];
		if (i == self || o->kind == K_NONE) {
			continue;
		}
		size_t olen = o->size ? o->size : 1;
		CHECK(p + len <= o->ptr || o->ptr + olen <= p, "new block %p+%zu overlaps "
		    "slot %d %p+%zu", (const void *)p, size, i, (void *)o->ptr, o->size);
	}
}

/* Record a fresh block in slot s; fill: -1 unknown, else the byte value.
 * The caller checks the contents (realloc first copies the old ones). */
static void
block_new(int s, enum kind kind, uint8_t *p, size_t size, size_t align, int fill)
{
	CHECK(p != NULL, "allocation of %zu failed: errno %d", size, errno);
	if (size >= 16 || align > 16) {
		CHECK(((uintptr_t)p & (align - 1)) == 0, "%p not %zu-aligned (size %zu)",
		    (void *)p, align, size);
	}
	no_overlap(p, size, s);
	struct block *b = &slots[s];
	b->kind = kind;
	b->ptr = p;
	b->size = size;
	b->align = align;
	b->prot = 2;
	b->shadow = xmalloc(size);
	b->known = xmalloc(size);
	memset(b->shadow, fill < 0 ? 0 : fill, size);
	memset(b->known, fill >= 0, size);
	/* usable size: the request when the canary guards the slack. */
	b->usable_want = tars_option_get("canary") ? size : 0;
	if (size == 0) {
		b->usable_want = 0;
	}
	size_t u = tars_usable_size(p);
	if (size == 0 && kind == K_PLAIN && align <= 16) {
		/* malloc(0): an inaccessible slot.  (aligned_alloc(a, 0)
		 * takes an a-byte slot: with canary=0 all of it is usable.) */
		CHECK(u == 0, "usable_size of a size-0 block is %zu", u);
	} else if (b->usable_want != 0) {
		CHECK(u == size, "usable_size %zu, want %zu (canary on)", u, size);
	} else {
		CHECK(u >= size, "usable_size %zu < size %zu", u, size);
		if (size > 0 && size <= 2048 && align <= 16) {
			CHECK(u <= tars_slot_size(size) || u <= round16(size) + page_size,
			    "usable_size %zu > slot", u);
		}
	}
}

static void
block_forget(int s)
{
	struct block *b = &slots[s];
	free(b->shadow);
	free(b->known);
	memset(b, 0, sizeof(*b));
}

static void
block_write(int s, uint8_t seed, size_t from, size_t len)
{
	struct block *b = &slots[s];
	if (from >= b->size) {
		return;
	}
	if (len > b->size - from) {
		len = b->size - from;
	}
	for (size_t i = from; i < from + len; i++) {
		b->ptr[i] = b->shadow[i] = pattern(seed, i);
		b->known[i] = 1;
	}
}

static void
block_open(struct block *b, int prot)
{
	int rc = prot == 0 ? tars_protect_none(b->ptr)
	    : prot == 1 ? tars_protect_read(b->ptr) : tars_protect_write(b->ptr);
	CHECK(rc == 0, "tars_protect(%d) failed: errno %d", prot, errno);
	b->prot = prot;
}

static void
block_free(int s, int zero)
{
	struct block *b = &slots[s];
	if (b->kind == K_NONE) {
		return;
	}
	block_check_contents(b, s);
	if (zero) {
		tars_freezero(b->ptr, b->size);
	} else {
		tars_free(b->ptr);
	}
	block_forget(s);
}

/* ---- containers --------------------------------------------------------- */

static void
buf_check(int i)
{
	struct mbuf *m = &bufs[i];
	CHECK(tars_buf_len(m->b) == m->len, "buf len %zu, want %zu", tars_buf_len(m->b),
	    m->len);
	if (m->shadow != NULL && m->len > 0) {
		CHECK(memcmp(tars_buf_data(m->b), m->shadow, m->len) == 0, "buf %d contents", i);
	}
}

static void
buf_set(int i, tars_buf *b, size_t len, uint8_t *shadow)
{
	CHECK(b != NULL, "buf allocation of %zu failed: errno %d", len, errno);
	bufs[i].b = b;
	bufs[i].len = len;
	bufs[i].shadow = shadow;
	buf_check(i);
}

static void
buf_drop(int i)
{
	if (bufs[i].b != NULL) {
		buf_check(i);
		tars_buf_free(bufs[i].b);
		free(bufs[i].shadow);
		memset(&bufs[i], 0, sizeof(bufs[i]));
	}
}

/* Make the shadow of a buf known (read it back once). */
static uint8_t *
buf_snapshot(int i)
{
	uint8_t *s = xmalloc(bufs[i].len);
	if (bufs[i].len > 0) {
		memcpy(s, tars_buf_data(bufs[i].b), bufs[i].len);
	}
	return s;
}

static int
key_compare(const void *data, size_t len, void *arg)
{
	const struct mkey *m = arg;
	CHECK(len == m->len, "key len %zu, want %zu", len, m->len);
	if (m->shadow != NULL && len > 0) {
		CHECK(memcmp(data, m->shadow, len) == 0, "key contents");
	}
	return 7;
}

struct key_fill {
	struct mkey *m;
	uint8_t seed;
};

static int
key_write(void *data, size_t len, void *arg)
{
	struct key_fill *f = arg;
	CHECK(len == f->m->len, "key len");
	if (f->m->shadow == NULL) {
		f->m->shadow = xmalloc(len);
	}
	for (size_t i = 0; i < len; i++) {
		((uint8_t *)data)[i] = f->m->shadow[i] = pattern(f->seed, i);
	}
	return 9;
}

static void
key_check(int i)
{
	struct mkey *m = &keys[i];
	CHECK(tars_key_len(m->k) == m->len, "key len");
	CHECK(tars_key_read_with(m->k, key_compare, m) == 7, "read_with: errno %d", errno);
}

static void
key_set(int i, tars_key *k, size_t len, uint8_t *shadow)
{
	CHECK(k != NULL, "key allocation of %zu failed: errno %d", len, errno);
	keys[i].k = k;
	keys[i].len = len;
	keys[i].shadow = shadow;
	key_check(i);
}

static void
key_drop(int i)
{
	if (keys[i].k != NULL) {
		key_check(i);
		tars_key_free(keys[i].k);
		free(keys[i].shadow);
		memset(&keys[i], 0, sizeof(keys[i]));
	}
}

/* ---- the interpreter ---------------------------------------------------- */

#define ANY_KIND (K_PLAIN + 10)

/* A slot of the wanted kind (K_NONE: a free slot), from a random start. */
static int
pick(struct input *in, int want)
{
	int s = u8(in) % NSLOTS;
	for (int i = 0; i < NSLOTS; i++) {
		int j = (s + i) % NSLOTS;
		if (want == K_NONE ? slots[j].kind == K_NONE
		    : want == ANY_KIND ? slots[j].kind != K_NONE
		    : (int)slots[j].kind == want) {
			return j;
		}
	}
	return -1;
}

static void
set_option(struct input *in)
{
	static const char *const names[] = {"junk", "canary", "classes", "random",
	    "cache", "mlock", "dump", "fork", "secretmem", "spare"};
	static const long maxv[] = {2, 1, 1, 1, 3, 1, 1, 2, 1, 3};
	unsigned n = u8(in) % (sizeof(names) / sizeof(names[0]));
	long v = u8(in) % (maxv[n] + 1);
	if (n == 4) {
		static const long cache[] = {0, 1, 8, 64};
		v = cache[v];
	} else if (n == 9) {
		static const long spare[] = {1, 2, 16, 64};
		v = spare[v];
	}
	int saved = errno = 1234;
	CHECK(tars_option_set(names[n], v) == 0, "option_set(%s, %ld): errno %d", names[n],
	    v, errno);
	CHECK(errno == saved, "option_set changed errno");
	CHECK(tars_option_get(names[n]) == v, "option_get(%s)", names[n]);
}

static void
step(struct input *in)
{
	uint8_t op = u8(in);
	int s, t;
	size_t size;
	switch (op % 24) {
	case 0: /* malloc */
	case 1:
		if ((s = pick(in, K_NONE)) < 0) {
			break;
		}
		size = draw_size(in);
		errno = 4321;
		{
			int fill = fresh_fill(0);
			uint8_t *p = tars_malloc(size);
			CHECK(errno == 4321, "malloc(%zu) changed errno to %d", size, errno);
			block_new(s, K_PLAIN, p, size, 16, fill);
			block_check_contents(&slots[s], s);
		}
		break;
	case 2: /* calloc */
		if ((s = pick(in, K_NONE)) < 0) {
			break;
		}
		{
			size_t n = u8(in) % 40, m = draw_size(in) % 3000;
			uint8_t *p = tars_calloc(n, m);
			block_new(s, K_PLAIN, p, n * m, 16, 0);
			block_check_contents(&slots[s], s);
		}
		break;
	case 3: /* aligned_alloc */
		if ((s = pick(in, K_NONE)) < 0) {
			break;
		}
		{
			size_t align = (size_t)1 << (u8(in) % 13);
			size = draw_size(in);
			int fill = fresh_fill(0);
			uint8_t *p = tars_aligned_alloc(align, size);
			block_new(s, K_PLAIN, p, size, align, fill);
			block_check_contents(&slots[s], s);
		}
		break;
	case 4: /* malloc_key */
		if ((s = pick(in, K_NONE)) < 0) {
			break;
		}
		size = draw_size(in) % 9000;
		{
			int fill = fresh_fill(0);
			uint8_t *p = tars_malloc_key(size);
			block_new(s, K_KEY, p, size, 16, fill);
			block_check_contents(&slots[s], s);
		}
		break;
	case 5: /* realloc / realloc_key */
		if ((s = pick(in, ANY_KIND)) < 0) {
			break;
		}
		{
			struct block old = slots[s];
			size = old.kind == K_KEY ? draw_size(in) % 9000 : draw_size(in);
			int fill = fresh_fill(0);
			if (old.kind == K_KEY && old.prot != 0) {
				block_check_contents(&old, s);
			}
			uint8_t *p = old.kind == K_KEY && (u8(in) & 1)
			    ? tars_realloc_key(old.ptr, size) : tars_realloc(old.ptr, size);
			CHECK(p != NULL, "realloc(%zu) failed: errno %d", size, errno);
			slots[s].kind = K_NONE;   /* the old block is gone */
			block_new(s, old.kind, p, size, 16, fill);
			size_t keep = old.size < size ? old.size : size;
			memcpy(slots[s].shadow, old.shadow, keep);
			memcpy(slots[s].known, old.known, keep);
			block_check_contents(&slots[s], s);
			free(old.shadow);
			free(old.known);
		}
		break;
	case 6: /* free */
	case 7:
		if ((s = pick(in, ANY_KIND)) >= 0) {
			block_free(s, 0);
		}
		break;
	case 8: /* freezero */
		if ((s = pick(in, ANY_KIND)) >= 0) {
			block_free(s, 1);
		}
		break;
	case 9: /* write a range */
	case 10:
		if ((s = pick(in, ANY_KIND)) >= 0) {
			if (slots[s].kind == K_KEY && slots[s].prot != 2) {
				block_open(&slots[s], 2);
			}
			size_t from = u16(in), len = u16(in);
			if (u8(in) & 1) {
				from = 0;
				len = SIZE_MAX;
			}
			block_write(s, u8(in), from % (slots[s].size + 1), len);
		}
		break;
	case 11: /* check contents and sizes */
		if ((s = pick(in, ANY_KIND)) >= 0) {
			block_check_contents(&slots[s], s);
			size_t u = tars_usable_size(slots[s].ptr);
			if (slots[s].usable_want) {
				CHECK(u == slots[s].usable_want, "usable %zu", u);
			}
			CHECK(u >= slots[s].size || (slots[s].size == 0 && u == 0), "usable");
		}
		break;
	case 12: /* key protection */
		if ((s = pick(in, K_KEY)) >= 0) {
			block_open(&slots[s], u8(in) % 3);
			block_check_contents(&slots[s], s);
		}
		break;
	case 13:
		set_option(in);
		break;
	case 14: /* new bufs */
		if ((t = u8(in) % NBUFS, bufs[t].b == NULL)) {
			size = draw_size(in) % 5000;
			switch (u8(in) % 4) {
			case 0:
				buf_set(t, tars_buf_new_zero(size), size, calloc(1, size ? size : 1));
				break;
			case 1: {
				uint8_t *src = xmalloc(size);
				for (size_t i = 0; i < size; i++) {
					src[i] = pattern((uint8_t)t, i);
				}
				buf_set(t, tars_buf_from(src, size), size, src);
				break;
			}
			case 2:
				buf_set(t, tars_buf_new_random(size), size, NULL);
				bufs[t].shadow = buf_snapshot(t);
				break;
			default:
				buf_set(t, tars_buf_new(size), size, NULL);
				bufs[t].shadow = buf_snapshot(t);
				break;
			}
		}
		break;
	case 15: /* clone, concat, equal */
		t = u8(in) % NBUFS;
		s = u8(in) % NBUFS;
		if (bufs[t].b == NULL || bufs[s].b != NULL) {
			break;
		}
		if (u8(in) & 1) {
			uint8_t *sh = xmalloc(bufs[t].len);
			memcpy(sh, bufs[t].shadow, bufs[t].len);
			buf_set(s, tars_buf_clone(bufs[t].b), bufs[t].len, sh);
			CHECK(tars_buf_equal(bufs[s].b, bufs[t].b) == 1, "clone not equal");
		} else {
			const tars_buf *parts[3];
			size_t n = 0, total = 0;
			for (int i = 0; i < NBUFS && n < 3; i++) {
				if (bufs[i].b != NULL) {
					parts[n++] = bufs[i].b;
					total += bufs[i].len;
				}
			}
			uint8_t *sh = xmalloc(total);
			size_t off = 0;
			for (int i = 0, k = 0; i < NBUFS && k < (int)n; i++) {
				if (bufs[i].b != NULL) {
					memcpy(sh + off, bufs[i].shadow, bufs[i].len);
					off += bufs[i].len;
					k++;
				}
			}
			buf_set(s, tars_buf_concat(parts, n), total, sh);
		}
		break;
	case 16: /* buf equal against the model */
		t = u8(in) % NBUFS;
		s = u8(in) % NBUFS;
		if (bufs[t].b != NULL && bufs[s].b != NULL) {
			int want = bufs[t].len == bufs[s].len &&
			    (bufs[t].len == 0 || memcmp(bufs[t].shadow, bufs[s].shadow,
			    bufs[t].len) == 0);
			CHECK(tars_buf_equal(bufs[t].b, bufs[s].b) == want, "buf_equal");
		}
		break;
	case 17: /* buf write */
		t = u8(in) % NBUFS;
		if (bufs[t].b != NULL && bufs[t].len > 0) {
			size_t i = u16(in) % bufs[t].len;
			uint8_t v = u8(in);
			((uint8_t *)tars_buf_data(bufs[t].b))[i] = v;
			bufs[t].shadow[i] = v;
		}
		break;
	case 18:
		buf_drop(u8(in) % NBUFS);
		break;
	case 19: /* new keys */
		t = u8(in) % NKEYS;
		if (keys[t].k != NULL) {
			break;
		}
		s = u8(in) % NBUFS;
		if ((u8(in) & 1) && bufs[s].b != NULL) {
			uint8_t *sh = bufs[s].shadow;
			size = bufs[s].len;
			key_set(t, tars_key_new(bufs[s].b), size, sh);
			memset(&bufs[s], 0, sizeof(bufs[s]));   /* moved */
		} else {
			size = draw_size(in) % 5000;
			key_set(t, tars_key_new_random(size), size, NULL);
			struct key_fill f = {&keys[t], u8(in)};
			CHECK(tars_key_write_with(keys[t].k, key_write, &f) == 9, "write_with");
		}
		break;
	case 20: /* key scopes */
		t = u8(in) % NKEYS;
		if (keys[t].k == NULL) {
			break;
		}
		switch (u8(in) % 4) {
		case 0:
			key_check(t);
			break;
		case 1: {
			struct key_fill f = {&keys[t], u8(in)};
			CHECK(tars_key_write_with(keys[t].k, key_write, &f) == 9, "write_with");
			break;
		}
		case 2: {
			/* nested reads; a writer must be refused meanwhile */
			const void *a = tars_key_read_begin(keys[t].k);
			const void *b = tars_key_read_begin(keys[t].k);
			CHECK(a != NULL && a == b, "read_begin");
			errno = 0;
			CHECK(tars_key_write_begin(keys[t].k) == NULL && errno == EBUSY,
			    "write_begin inside a read scope");
			if (keys[t].len > 0 && keys[t].shadow != NULL) {
				CHECK(memcmp(a, keys[t].shadow, keys[t].len) == 0, "key read");
			}
			tars_key_read_end(keys[t].k);
			tars_key_read_end(keys[t].k);
			break;
		}
		default: {
			void *w = tars_key_write_begin(keys[t].k);
			CHECK(w != NULL, "write_begin: errno %d", errno);
			errno = 0;
			CHECK(tars_key_read_begin(keys[t].k) == NULL && errno == EBUSY,
			    "read_begin inside the write scope");
			tars_key_write_end(keys[t].k);
			break;
		}
		}
		break;
	case 21: /* key clone / equal */
		t = u8(in) % NKEYS;
		s = u8(in) % NKEYS;
		if (keys[t].k == NULL) {
			break;
		}
		if (keys[s].k == NULL) {
			uint8_t *sh = NULL;
			if (keys[t].shadow != NULL) {
				sh = xmalloc(keys[t].len);
				memcpy(sh, keys[t].shadow, keys[t].len);
			}
			key_set(s, tars_key_clone(keys[t].k), keys[t].len, sh);
			CHECK(tars_key_equal(keys[s].k, keys[t].k) == 1, "clone not equal");
		} else if (keys[t].shadow != NULL && keys[s].shadow != NULL) {
			int want = keys[t].len == keys[s].len && (keys[t].len == 0 ||
			    memcmp(keys[t].shadow, keys[s].shadow, keys[t].len) == 0);
			CHECK(tars_key_equal(keys[t].k, keys[s].k) == want, "key_equal");
		}
		break;
	case 22:
		key_drop(u8(in) % NKEYS);
		break;
	default: /* slot_size is monotonic and covers the request */
		size = draw_size(in);
		{
			size_t a = tars_slot_size(size), b = tars_slot_size(size + 1);
			CHECK(size == 0 || a >= size, "slot_size(%zu) = %zu", size, a);
			CHECK(b >= a, "slot_size not monotonic at %zu", size);
		}
		break;
	}
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	page_size = (size_t)sysconf(_SC_PAGESIZE);
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct input in = {data, size};
	struct tars_stats before, after;
	tars_stats_get(&before);
	/* Each input starts from the same options. */
	CHECK(tars_option_set("junk", 2) == 0 && tars_option_set("canary", 1) == 0 &&
	    tars_option_set("classes", 1) == 0 && tars_option_set("random", 1) == 0 &&
	    tars_option_set("cache", 64) == 0 && tars_option_set("secretmem", 0) == 0 &&
	    tars_option_set("fork", 1) == 0 && tars_option_set("dump", 0) == 0 &&
	    tars_option_set("mlock", 1) == 0 && tars_option_set("spare", 64) == 0,
	    "option reset");
	for (unsigned n = 0; in.left > 0 && n < 2000; n++) {
		step(&in);
	}
	for (int s = 0; s < NSLOTS; s++) {
		if (slots[s].kind == K_KEY && slots[s].prot == 0 && (s & 1)) {
			block_open(&slots[s], 1);   /* some keys are checked at the end */
		}
		block_free(s, s & 1);
	}
	for (int i = 0; i < NBUFS; i++) {
		buf_drop(i);
	}
	for (int i = 0; i < NKEYS; i++) {
		key_drop(i);
	}
	tars_stats_get(&after);
	CHECK(after.live_count == before.live_count, "live_count %zu -> %zu",
	    before.live_count, after.live_count);
	CHECK(after.live_requested == before.live_requested, "live_requested %zu -> %zu",
	    before.live_requested, after.live_requested);
	CHECK(after.key_count == before.key_count && after.large_count == before.large_count,
	    "key/large counts");
	return 0;
}
