// SPDX-License-Identifier: GPL-2.0
/*
 * Test-only program: vigil_siphash24() run by the kernel, so test_prog can
 * check the code the XDP program uses against the reference vectors on the
 * CPU that really runs it (JIT, verifier rewrites and all).
 *
 * vigil_siphash24() wants a compile-time length (its loops unroll), so the
 * switch below instantiates it once per length 0..63. The input is copied
 * out of the context first: the context only allows constant offsets.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "vigil/siphash.h"
#include "auth_vectors.h"

char LICENSE[] SEC("license") = "GPL";

#define LEN(n) case n: c->out = vigil_siphash24(buf, n, &k); break
#define LEN8(n) LEN(n); LEN(n + 1); LEN(n + 2); LEN(n + 3); LEN(n + 4); LEN(n + 5); \
	LEN(n + 6); LEN(n + 7)

/* Returns 0 and sets c->out, or 1 for a length outside 0..63. */
SEC("syscall")
int siphash_vector(struct sipvec_ctx *c)
{
	__u8 buf[SIPVEC_N] __attribute__((aligned(8))); /* vigil_le64 loads whole words */
	struct vigil_key k;

	for (int i = 0; i < SIPVEC_N; i++)
		buf[i] = c->data[i];
	vigil_key_from_bytes(&k, c->key);
	switch (c->len) {
	LEN8(0); LEN8(8); LEN8(16); LEN8(24); LEN8(32); LEN8(40); LEN8(48); LEN8(56);
	default:
		return 1;
	}
	return 0;
}
