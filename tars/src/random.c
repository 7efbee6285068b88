/*
 * random.c - the allocator's random source: a ChaCha8 keystream per pool,
 * keyed from getrandom(2).  Placement decisions take one byte each from a
 * 64-byte block, so the hot path pays a load and a decrement; a block costs
 * one ChaCha permutation.  A forked child reseeds (need_reseed) so parent
 * and child do not make the same choices.
 *
 * Eight rounds (ChaCha8), not twenty: the stream only has to keep slot and
 * page choices unpredictable, no practical attack on ChaCha8's keystream is
 * known, and the block function is the costliest part of the hot path's
 * randomness.  Keys come from getrandom(2) and are rotated from the stream.
 */
#define TARS_CHACHA_DOUBLE_ROUNDS 4
#include <string.h>

#include "tars_internal.h"

#define ROTL(v, n) (((v) << (n)) | ((v) >> (32 - (n))))
#define QR(a, b, c, d) do {                       \
	a += b; d ^= a; d = ROTL(d, 16);          \
	c += d; b ^= c; b = ROTL(b, 12);          \
	a += b; d ^= a; d = ROTL(d, 8);           \
	c += d; b ^= c; b = ROTL(b, 7);           \
} while (0)

static void
chacha_block(const uint32_t key[8], uint64_t counter, uint8_t out[64])
{
	uint32_t in[16] = {
		0x61707865, 0x3320646e, 0x79622d32, 0x6b206574,
		key[0], key[1], key[2], key[3], key[4], key[5], key[6], key[7],
		(uint32_t)counter, (uint32_t)(counter >> 32), 0, 0,
	};
	uint32_t x[16];
	memcpy(x, in, sizeof(x));
	for (int i = 0; i < TARS_CHACHA_DOUBLE_ROUNDS; i++) {
		QR(x[0], x[4], x[8], x[12]);
		QR(x[1], x[5], x[9], x[13]);
		QR(x[2], x[6], x[10], x[14]);
		QR(x[3], x[7], x[11], x[15]);
		QR(x[0], x[5], x[10], x[15]);
		QR(x[1], x[6], x[11], x[12]);
		QR(x[2], x[7], x[8], x[13]);
		QR(x[3], x[4], x[9], x[14]);
	}
	for (int i = 0; i < 16; i++) {
		uint32_t v = x[i] + in[i];
		out[4 * i + 0] = (uint8_t)v;
		out[4 * i + 1] = (uint8_t)(v >> 8);
		out[4 * i + 2] = (uint8_t)(v >> 16);
		out[4 * i + 3] = (uint8_t)(v >> 24);
	}
}

void
tars_rand_seed(struct tars_rand *r)
{
	if (tars_os_random(r->key, sizeof(r->key)) != 0) {
		tars_fatal("getrandom", "no randomness available");
	}
	r->counter = 0;
	r->avail = 0;
	r->need_reseed = 0;
}

void
tars_rand_refill(struct tars_rand *r)
{
	if (r->need_reseed) {
		tars_rand_seed(r);
	}
	chacha_block(r->key, r->counter++, r->buf);
	/* Rekey from the stream now and then (backtracking resistance). */
	if ((r->counter & 0xffff) == 0) {
		uint8_t k[64];
		chacha_block(r->key, r->counter++, k);
		memcpy(r->key, k, sizeof(r->key));
		tars_wipe(k, 0, sizeof(k));
	}
	r->avail = sizeof(r->buf);
}
