/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * SipHash-2-4 (Aumasson and Bernstein), the one implementation used by the
 * XDP program, the daemon, `vigil beat` and the agent library.
 *
 * Written so the BPF verifier accepts it: the length is a compile-time
 * constant at every kernel call site, so the block loop unrolls; the input is
 * read as little-endian 64-bit words with byte loads only at the tail.
 */
#ifndef VIGIL_SIPHASH_H
#define VIGIL_SIPHASH_H

#include "types.h"

struct vigil_key {
	__u64 k0, k1; /* the 128-bit key as two little-endian words */
};

#ifdef __clang__
#define VG_UNROLL _Pragma("unroll")
#else
#define VG_UNROLL
#endif

#define VG_ROTL(x, b) (__u64)(((x) << (b)) | ((x) >> (64 - (b))))

#define VG_SIPROUND(v0, v1, v2, v3)                                          \
	do {                                                                 \
		v0 += v1; v1 = VG_ROTL(v1, 13); v1 ^= v0; v0 = VG_ROTL(v0, 32); \
		v2 += v3; v3 = VG_ROTL(v3, 16); v3 ^= v2;                       \
		v0 += v3; v3 = VG_ROTL(v3, 21); v3 ^= v0;                       \
		v2 += v1; v1 = VG_ROTL(v1, 17); v1 ^= v2; v2 = VG_ROTL(v2, 32); \
	} while (0)

/* In the kernel, on the little-endian CPUs vigil is built for, a word of
 * packet data is one 8-byte load: the verifier allows unaligned packet reads
 * where the CPU does them well (x86-64, arm64), and the eight byte loads,
 * shifts and ors they replace were a fifth of the tag check. */
#if defined(__bpf__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__ && \
	(defined(__TARGET_ARCH_x86) || defined(__TARGET_ARCH_arm64))
#define VIGIL_LOAD_UNALIGNED 1
#endif

VIGIL_INLINE __u64 vigil_le64(const __u8 *p)
{
#ifdef VIGIL_LOAD_UNALIGNED
	return *(const __u64 *)p;
#else
	return (__u64)p[0] | (__u64)p[1] << 8 | (__u64)p[2] << 16 | (__u64)p[3] << 24 |
	       (__u64)p[4] << 32 | (__u64)p[5] << 40 | (__u64)p[6] << 48 | (__u64)p[7] << 56;
#endif
}

/* SipHash-2-4 of `len` bytes at `in`. */
VIGIL_INLINE __u64 vigil_siphash24(const __u8 *in, __u32 len, const struct vigil_key *key)
{
	__u64 v0 = 0x736f6d6570736575ULL ^ key->k0;
	__u64 v1 = 0x646f72616e646f6dULL ^ key->k1;
	__u64 v2 = 0x6c7967656e657261ULL ^ key->k0;
	__u64 v3 = 0x7465646279746573ULL ^ key->k1;
	__u64 b = (__u64)len << 56, m;
	__u32 blocks = len / 8, i, tail = len & 7;

VG_UNROLL
	for (i = 0; i < blocks; i++) {
		m = vigil_le64(in + 8 * i);
		v3 ^= m;
		VG_SIPROUND(v0, v1, v2, v3);
		VG_SIPROUND(v0, v1, v2, v3);
		v0 ^= m;
	}
	in += 8 * blocks;
VG_UNROLL
	for (i = 0; i < 7; i++)
		if (i < tail)
			b |= (__u64)in[i] << (8 * i);
	v3 ^= b;
	VG_SIPROUND(v0, v1, v2, v3);
	VG_SIPROUND(v0, v1, v2, v3);
	v0 ^= b;
	v2 ^= 0xff;
	VG_SIPROUND(v0, v1, v2, v3);
	VG_SIPROUND(v0, v1, v2, v3);
	VG_SIPROUND(v0, v1, v2, v3);
	VG_SIPROUND(v0, v1, v2, v3);
	return v0 ^ v1 ^ v2 ^ v3;
}

/* Key from 16 bytes as written in key files (byte 0 first). */
VIGIL_INLINE void vigil_key_from_bytes(struct vigil_key *k, const __u8 b[16])
{
	k->k0 = vigil_le64(b);
	k->k1 = vigil_le64(b + 8);
}

#endif /* VIGIL_SIPHASH_H */
