/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * Tables shared by the host tests (tests/unit/test_auth.c) and the BPF tests
 * (tests/prog/test_prog.c), so both sides are held to the same expectations:
 *
 *   - the SipHash-2-4 reference vectors, and the context of the test-only
 *     BPF program that runs vigil_siphash24() in the kernel (siphash.bpf.c);
 *   - an anti-replay script for a 64-wide window, ported from the edges
 *     WireGuard's counter self-test covers.
 */
#ifndef VIGIL_TEST_AUTH_VECTORS_H
#define VIGIL_TEST_AUTH_VECTORS_H

#define SIPVEC_N 64

/* ctx of SEC("syscall") siphash_vector: in key, len, data; out out. */
struct sipvec_ctx {
	__u8 key[16];
	__u32 len;  /* 0..SIPVEC_N-1 */
	__u8 data[SIPVEC_N];
	__u32 pad;
	__u64 out;
};

#ifndef __bpf__
/*
 * The 64-bit outputs of the SipHash-2-4 reference implementation
 * (vectors_sip64 of github.com/veorq/SipHash) for key 00 01 .. 0f and input
 * 00 01 .. len-1, len = 0..63, as the little-endian u64 the bytes spell.
 */
static const __u64 sipvec_want[SIPVEC_N] = {
	0x726fdb47dd0e0e31ULL, 0x74f839c593dc67fdULL, 0x0d6c8009d9a94f5aULL,
	0x85676696d7fb7e2dULL, 0xcf2794e0277187b7ULL, 0x18765564cd99a68dULL,
	0xcbc9466e58fee3ceULL, 0xab0200f58b01d137ULL, 0x93f5f5799a932462ULL,
	0x9e0082df0ba9e4b0ULL, 0x7a5dbbc594ddb9f3ULL, 0xf4b32f46226bada7ULL,
	0x751e8fbc860ee5fbULL, 0x14ea5627c0843d90ULL, 0xf723ca908e7af2eeULL,
	0xa129ca6149be45e5ULL, 0x3f2acc7f57c29bdbULL, 0x699ae9f52cbe4794ULL,
	0x4bc1b3f0968dd39cULL, 0xbb6dc91da77961bdULL, 0xbed65cf21aa2ee98ULL,
	0xd0f2cbb02e3b67c7ULL, 0x93536795e3a33e88ULL, 0xa80c038ccd5ccec8ULL,
	0xb8ad50c6f649af94ULL, 0xbce192de8a85b8eaULL, 0x17d835b85bbb15f3ULL,
	0x2f2e6163076bcfadULL, 0xde4daaaca71dc9a5ULL, 0xa6a2506687956571ULL,
	0xad87a3535c49ef28ULL, 0x32d892fad841c342ULL, 0x7127512f72f27cceULL,
	0xa7f32346f95978e3ULL, 0x12e0b01abb051238ULL, 0x15e034d40fa197aeULL,
	0x314dffbe0815a3b4ULL, 0x027990f029623981ULL, 0xcadcd4e59ef40c4dULL,
	0x9abfd8766a33735cULL, 0x0e3ea96b5304a7d0ULL, 0xad0c42d6fc585992ULL,
	0x187306c89bc215a9ULL, 0xd4a60abcf3792b95ULL, 0xf935451de4f21df2ULL,
	0xa9538f0419755787ULL, 0xdb9acddff56ca510ULL, 0xd06c98cd5c0975ebULL,
	0xe612a3cb9ecba951ULL, 0xc766e62cfcadaf96ULL, 0xee64435a9752fe72ULL,
	0xa192d576b245165aULL, 0x0a8787bf8ecb74b2ULL, 0x81b3e73d20b49b6fULL,
	0x7fa8220ba3b2eceaULL, 0x245731c13ca42499ULL, 0xb78dbfaf3a8d83bdULL,
	0xea1ad565322a1a0bULL, 0x60e61c23a3795013ULL, 0x6606d7e446282b93ULL,
	0x6ca4ecb15c5f91e1ULL, 0x9f626da15c9625f3ULL, 0xe51b38608ef25f57ULL,
	0x958a324ceb064572ULL,
};

/* Key 00 01 .. 0f, input 00 01 .. len-1: the reference's test input. */
static inline void sipvec_input(__u8 key[16], __u8 data[SIPVEC_N])
{
	for (int i = 0; i < 16; i++)
		key[i] = (__u8)i;
	for (int i = 0; i < SIPVEC_N; i++)
		data[i] = (__u8)i;
}

/* ------------------------------------------------------- anti-replay */

#include "vigil/auth.h"

/* The window the script is written for (vigil_config.replay_window): the
 * highest sequence and the 63 below it; top - 64 is the first too old. */
#define REPLAY_W 64
#define REPLAY_MAX_STEPS 1024
#define U64_MAX_ (~0ULL)
#define U32_MAX_ (~0U)

struct replay_step {
	__u64 seq;
	__u32 inc;
	__u8 want;  /* enum vigil_replay_verdict */
	__u8 fresh; /* first step of a block: a fresh window (a new agent) */
	__u8 block; /* which block, for messages */
};

struct replay_builder {
	struct replay_step *s;
	size_t n;
	__u8 block;
	int fresh;
};

static inline void rp_block(struct replay_builder *b)
{
	b->block++;
	b->fresh = 1;
}

static inline void rp(struct replay_builder *b, __u32 inc, __u64 seq, enum vigil_replay_verdict v)
{
	if (b->n < REPLAY_MAX_STEPS)
		b->s[b->n++] = (struct replay_step){ .seq = seq, .inc = inc, .want = (__u8)v,
						     .fresh = (__u8)b->fresh, .block = b->block };
	b->fresh = 0;
}

/*
 * The script. Block 1 walks the edges of WireGuard's single-counter test
 * (drivers/net/wireguard/selftest/counter.c) with this window's arithmetic:
 * duplicates, reordering, the oldest sequence still inside the window and
 * the first one outside it, jumps beyond the window, the top of the u64
 * sequence space (vigil has no cut-off there, and nothing wraps), then
 * incarnations. Blocks 2..7 are its bulk tests: fill the window ascending
 * and descending, then probe both ends; and shifts of exactly 63 and 64.
 * Returns the number of steps written to out (REPLAY_MAX_STEPS at most).
 */
static inline size_t replay_script(struct replay_step *out)
{
	struct replay_builder b = { .s = out };
	const __u64 W = REPLAY_W, M = U64_MAX_;

	rp_block(&b);
	rp(&b, 1, 0, VIGIL_REPLAY_FIRST);
	rp(&b, 1, 1, VIGIL_REPLAY_NEWER);
	rp(&b, 1, 1, VIGIL_REPLAY_DUPLICATE);
	rp(&b, 1, 9, VIGIL_REPLAY_NEWER);
	rp(&b, 1, 8, VIGIL_REPLAY_LATE);
	rp(&b, 1, 7, VIGIL_REPLAY_LATE);
	rp(&b, 1, 7, VIGIL_REPLAY_DUPLICATE);
	rp(&b, 1, W, VIGIL_REPLAY_NEWER);
	rp(&b, 1, W - 1, VIGIL_REPLAY_LATE);
	rp(&b, 1, W - 1, VIGIL_REPLAY_DUPLICATE);
	rp(&b, 1, W - 2, VIGIL_REPLAY_LATE);
	rp(&b, 1, 1, VIGIL_REPLAY_DUPLICATE);   /* oldest inside: remembered */
	rp(&b, 1, 0, VIGIL_REPLAY_TOO_OLD);     /* first outside */
	rp(&b, 1, 2, VIGIL_REPLAY_LATE);
	rp(&b, 1, 2, VIGIL_REPLAY_DUPLICATE);
	rp(&b, 1, W + 16, VIGIL_REPLAY_NEWER);
	rp(&b, 1, 3, VIGIL_REPLAY_TOO_OLD);
	rp(&b, 1, W + 16, VIGIL_REPLAY_DUPLICATE);
	rp(&b, 1, 4 * W, VIGIL_REPLAY_NEWER);   /* jump beyond the window */
	rp(&b, 1, 4 * W - (W - 1), VIGIL_REPLAY_LATE);
	rp(&b, 1, 10, VIGIL_REPLAY_TOO_OLD);
	rp(&b, 1, 4 * W - W, VIGIL_REPLAY_TOO_OLD);
	rp(&b, 1, 4 * W - (W + 1), VIGIL_REPLAY_TOO_OLD);
	rp(&b, 1, 4 * W - (W - 2), VIGIL_REPLAY_LATE);
	rp(&b, 1, 4 * W - (W - 1), VIGIL_REPLAY_DUPLICATE);
	rp(&b, 1, 0, VIGIL_REPLAY_TOO_OLD);
	rp(&b, 1, M - 1, VIGIL_REPLAY_NEWER);   /* top of the sequence space */
	rp(&b, 1, M, VIGIL_REPLAY_NEWER);
	rp(&b, 1, M, VIGIL_REPLAY_DUPLICATE);
	rp(&b, 1, M - 1, VIGIL_REPLAY_DUPLICATE);
	rp(&b, 1, M - 2, VIGIL_REPLAY_LATE);
	rp(&b, 1, M - (W - 1), VIGIL_REPLAY_LATE);
	rp(&b, 1, M - W, VIGIL_REPLAY_TOO_OLD);
	rp(&b, 1, 0, VIGIL_REPLAY_TOO_OLD);     /* no wrap-around */
	rp(&b, 1, 1, VIGIL_REPLAY_TOO_OLD);
	rp(&b, 2, 0, VIGIL_REPLAY_RESTART);     /* a restart starts a new window */
	rp(&b, 1, M, VIGIL_REPLAY_OLD_INCARNATION);
	rp(&b, 2, 0, VIGIL_REPLAY_DUPLICATE);
	rp(&b, 2, 1, VIGIL_REPLAY_NEWER);
	rp(&b, 1, 2, VIGIL_REPLAY_OLD_INCARNATION);
	rp(&b, U32_MAX_, 5, VIGIL_REPLAY_RESTART);
	rp(&b, U32_MAX_, 4, VIGIL_REPLAY_LATE);
	rp(&b, U32_MAX_, 5, VIGIL_REPLAY_DUPLICATE);
	rp(&b, 2, 100, VIGIL_REPLAY_OLD_INCARNATION);
	rp(&b, 0, 6, VIGIL_REPLAY_OLD_INCARNATION);

	/* Ascending fill: 1..W-1, then 0 is the oldest inside. */
	rp_block(&b);
	for (__u64 i = 1; i <= W - 1; i++)
		rp(&b, 1, i, i == 1 ? VIGIL_REPLAY_FIRST : VIGIL_REPLAY_NEWER);
	rp(&b, 1, 0, VIGIL_REPLAY_LATE);
	rp(&b, 1, 0, VIGIL_REPLAY_DUPLICATE);

	/* Ascending fill: 2..W, then 1 is the oldest inside, 0 the first out. */
	rp_block(&b);
	for (__u64 i = 2; i <= W; i++)
		rp(&b, 1, i, i == 2 ? VIGIL_REPLAY_FIRST : VIGIL_REPLAY_NEWER);
	rp(&b, 1, 1, VIGIL_REPLAY_LATE);
	rp(&b, 1, 0, VIGIL_REPLAY_TOO_OLD);

	/* Descending fill: W-1..0 all accepted, then each one is a duplicate. */
	rp_block(&b);
	for (__u64 i = W; i-- > 0;)
		rp(&b, 1, i, i == W - 1 ? VIGIL_REPLAY_FIRST : VIGIL_REPLAY_LATE);
	for (__u64 i = 0; i < W; i += 9)
		rp(&b, 1, i, VIGIL_REPLAY_DUPLICATE);

	/* Descending fill: W..1, then 0 is the first out. */
	rp_block(&b);
	for (__u64 i = W + 1; i-- > 1;)
		rp(&b, 1, i, i == W ? VIGIL_REPLAY_FIRST : VIGIL_REPLAY_LATE);
	rp(&b, 1, 0, VIGIL_REPLAY_TOO_OLD);

	/* Descending fill W..1, then one step up: 1 falls out, 2 is remembered. */
	rp_block(&b);
	for (__u64 i = W + 1; i-- > 1;)
		rp(&b, 1, i, i == W ? VIGIL_REPLAY_FIRST : VIGIL_REPLAY_LATE);
	rp(&b, 1, W + 1, VIGIL_REPLAY_NEWER);
	rp(&b, 1, 1, VIGIL_REPLAY_TOO_OLD);
	rp(&b, 1, 2, VIGIL_REPLAY_DUPLICATE);

	/* Shifts of exactly W-1 (the bitmap keeps its oldest bit) and exactly W
	 * (the bitmap starts over). */
	rp_block(&b);
	for (__u64 i = 0; i <= 10; i++)
		rp(&b, 1, i, i == 0 ? VIGIL_REPLAY_FIRST : VIGIL_REPLAY_NEWER);
	rp(&b, 1, 10 + (W - 1), VIGIL_REPLAY_NEWER);
	rp(&b, 1, 10, VIGIL_REPLAY_DUPLICATE);
	rp(&b, 1, 9, VIGIL_REPLAY_TOO_OLD);
	rp(&b, 1, 11, VIGIL_REPLAY_LATE);
	rp(&b, 1, 10 + (W - 1) + W, VIGIL_REPLAY_NEWER);
	rp(&b, 1, 10 + (W - 1), VIGIL_REPLAY_TOO_OLD);
	rp(&b, 1, 10 + W, VIGIL_REPLAY_LATE);
	rp(&b, 1, 10 + (W - 1) + W, VIGIL_REPLAY_DUPLICATE);
	return b.n;
}

static inline const char *replay_verdict_name(unsigned v)
{
	static const char *const names[] = { "newer", "late", "restart", "first", "duplicate",
					     "too old", "old incarnation" };

	return v < sizeof(names) / sizeof(names[0]) ? names[v] : "invalid";
}
#endif /* !__bpf__ */

#endif /* VIGIL_TEST_AUTH_VECTORS_H */
