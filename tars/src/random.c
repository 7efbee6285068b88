/*
 * random.c - the allocator's random source: a ChaCha8 keystream per pool,
 * keyed from getrandom(2).  Placement decisions take one byte each from a
 * 256-byte buffer (four blocks computed side by side in vector lanes), so
 * the hot path pays a load and a decrement, and a refill about one
 * ChaCha permutation's time.  Every heap has its own stream.  A forked
 * child reseeds (need_reseed) so parent and child do not make the same
 * choices.
 *
 * Eight rounds (ChaCha8), not twenty: the stream only has to keep slot and
 * page choices unpredictable, no practical attack on ChaCha8's keystream is
 * known, and the block function is the costliest part of the hot path's
 * randomness.  Keys come from getrandom(2) and are rotated from the stream.
 */
#define TARS_CHACHA_DOUBLE_ROUNDS 4
#include <string.h>
#include <unistd.h>

#include "tars_internal.h"

#define ROTL(v, n) (((v) << (n)) | ((v) >> (32 - (n))))
#define QR(a, b, c, d) do {                       \
	a += b; d ^= a; d = ROTL(d, 16);          \
	c += d; b ^= c; b = ROTL(b, 12);          \
	a += b; d ^= a; d = ROTL(d, 8);           \
	c += d; b ^= c; b = ROTL(b, 7);           \
} while (0)
#define DOUBLE_ROUND(x) do {                      \
	QR(x[0], x[4], x[8], x[12]);              \
	QR(x[1], x[5], x[9], x[13]);              \
	QR(x[2], x[6], x[10], x[14]);             \
	QR(x[3], x[7], x[11], x[15]);             \
	QR(x[0], x[5], x[10], x[15]);             \
	QR(x[1], x[6], x[11], x[12]);             \
	QR(x[2], x[7], x[8], x[13]);              \
	QR(x[3], x[4], x[9], x[14]);              \
} while (0)

static const uint32_t sigma[4] = {0x61707865, 0x3320646e, 0x79622d32, 0x6b206574};

static void
store32le(uint8_t *out, uint32_t v)
{
	out[0] = (uint8_t)v;
	out[1] = (uint8_t)(v >> 8);
	out[2] = (uint8_t)(v >> 16);
	out[3] = (uint8_t)(v >> 24);
}

/* One 64-byte block of the keystream (block `counter`, nonce 0). */
void
tars_chacha8_block(const uint32_t key[8], uint64_t counter, uint8_t out[64])
{
	uint32_t in[16] = {
		sigma[0], sigma[1], sigma[2], sigma[3],
		key[0], key[1], key[2], key[3], key[4], key[5], key[6], key[7],
		(uint32_t)counter, (uint32_t)(counter >> 32), 0, 0,
	};
	uint32_t x[16];
	memcpy(x, in, sizeof(x));
	for (int i = 0; i < TARS_CHACHA_DOUBLE_ROUNDS; i++) {
		DOUBLE_ROUND(x);
	}
	for (int i = 0; i < 16; i++) {
		store32le(out + 4 * i, x[i] + in[i]);
	}
}

/*
 * Blocks counter .. counter+3 at once, one block per lane of a 4 x 32-bit
 * vector (GCC/Clang generic vectors: SSE2 on x86-64, NEON on arm64), so
 * the permutation runs on four blocks for the price of about one.  Output
 * identical to four tars_chacha8_block calls.
 */
typedef uint32_t v4u32 __attribute__((vector_size(16)));

void
tars_chacha8_blocks4(const uint32_t key[8], uint64_t counter, uint8_t out[256])
{
	v4u32 in[16], x[16];
	for (int i = 0; i < 4; i++) {
		in[i] = (v4u32){sigma[i], sigma[i], sigma[i], sigma[i]};
	}
	for (int i = 0; i < 8; i++) {
		in[4 + i] = (v4u32){key[i], key[i], key[i], key[i]};
	}
	uint64_t c0 = counter, c1 = counter + 1, c2 = counter + 2, c3 = counter + 3;
	in[12] = (v4u32){(uint32_t)c0, (uint32_t)c1, (uint32_t)c2, (uint32_t)c3};
	in[13] = (v4u32){(uint32_t)(c0 >> 32), (uint32_t)(c1 >> 32), (uint32_t)(c2 >> 32),
	    (uint32_t)(c3 >> 32)};
	in[14] = (v4u32){0, 0, 0, 0};
	in[15] = in[14];
	memcpy(x, in, sizeof(x));
	for (int i = 0; i < TARS_CHACHA_DOUBLE_ROUNDS; i++) {
		DOUBLE_ROUND(x);
	}
	for (int i = 0; i < 16; i++) {
		v4u32 v = x[i] + in[i];
		for (int lane = 0; lane < 4; lane++) {
			store32le(out + 64 * lane + 4 * i, v[lane]);
		}
	}
}

int
tars_rand_seed(struct tars_rand *r)
{
	if (tars_os_random(r->key, sizeof(r->key)) != 0) {
		return -1;
	}
	r->counter = 0;
	r->avail = 0;
	r->need_reseed = 0;
	return 0;
}

void
tars_rand_refill(struct tars_rand *r)
{
	if (r->need_reseed && tars_rand_seed(r) != 0) {
		/* getrandom worked at initialisation and fails now (a seccomp
		 * filter in the child?): the child must still not repeat its
		 * parent's choices, so the key moves on by its own pid. */
		r->key[0] ^= (uint32_t)getpid();
		r->counter += 1u << 20;
		r->need_reseed = 0;
	}
	tars_chacha8_blocks4(r->key, r->counter, r->buf);
	r->counter += 4;
	/* Rekey from the stream now and then (backtracking resistance). */
	if ((r->counter & 0xffff) == 0) {
		uint8_t k[64];
		tars_chacha8_block(r->key, r->counter++, k);
		memcpy(r->key, k, sizeof(r->key));
		tars_wipe(k, 0, sizeof(k));
	}
	r->avail = sizeof(r->buf);
}
