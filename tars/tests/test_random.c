/*
 * The allocator's random source (suite "random"): ChaCha8 against the
 * published keystream, and the four-lane version against the one-block one.
 * Internal functions: the tests link the static library.
 */
#include <stdint.h>
#include <string.h>

#include <criterion/criterion.h>

#include "../src/tars_internal.h"

static void
hex(const uint8_t *b, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++) {
		static const char d[] = "0123456789abcdef";
		out[2 * i] = d[b[i] >> 4];
		out[2 * i + 1] = d[b[i] & 15];
	}
	out[2 * n] = '\0';
}

Test(random, chacha8_zero_key_test_vector)
{
	/* ChaCha8, 256-bit zero key, zero nonce, block 0 (the reference
	 * implementation's test vector). */
	static const char want[] =
	    "3e00ef2f895f40d67f5bb8e81f09a5a12c840ec3ce9a7f3b181be188ef711a1e"
	    "984ce172b9216f419f445367456d5619314a42a3da86b001387bfdb80e0cfe42";
	const uint32_t key[8] = {0};
	uint8_t out[64];
	char got[129];
	tars_chacha8_block(key, 0, out);
	hex(out, sizeof(out), got);
	cr_assert_str_eq(got, want);
}

Test(random, four_lanes_equal_four_blocks)
{
	uint32_t key[8];
	for (unsigned i = 0; i < 8; i++) {
		key[i] = 0x03020100u + 0x04040404u * i;   /* bytes 0..31 */
	}
	/* Including a counter whose low word wraps inside the four. */
	const uint64_t counters[] = {0, 4, 0xfffffffeull, 0x1ffffffffull, 1ull << 40};
	for (size_t c = 0; c < sizeof(counters) / sizeof(counters[0]); c++) {
		uint8_t four[256], one[64];
		tars_chacha8_blocks4(key, counters[c], four);
		for (unsigned lane = 0; lane < 4; lane++) {
			tars_chacha8_block(key, counters[c] + lane, one);
			cr_assert(memcmp(four + 64 * lane, one, 64) == 0,
			    "counter %llu lane %u differs",
			    (unsigned long long)counters[c], lane);
		}
	}
	/* And one block computed independently (Python reference, key
	 * bytes 0..31, block 0x1ffffffff). */
	static const char want[] =
	    "570e2d8cf4f9a19ae119eb9f21915f3306022e1e0f1679bab6195c1e1d6f83bd"
	    "48ef905428da2a36a34fb2b9d681f6da00c821b5491e429a1780e836add36002";
	uint8_t out[64];
	char got[129];
	tars_chacha8_block(key, 0x1ffffffffull, out);
	hex(out, sizeof(out), got);
	cr_assert_str_eq(got, want);
}
