/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * Fixed-width types and byte order helpers usable both from BPF programs
 * (compiled with clang -target bpf against vmlinux.h) and from userspace.
 * Every other header in include/vigil/ builds on this one only.
 */
#ifndef VIGIL_TYPES_H
#define VIGIL_TYPES_H

#ifdef __bpf__
/* vmlinux.h, included first by every BPF program, provides __u8..__u64. */
#ifndef __always_inline
#define __always_inline inline __attribute__((always_inline))
#endif
#else
#include <linux/types.h>
#ifndef __always_inline
#define __always_inline inline __attribute__((always_inline))
#endif
#endif

#define VIGIL_INLINE static __always_inline

#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define vg_be16(x) ((__u16)__builtin_bswap16((__u16)(x)))
#define vg_be32(x) ((__u32)__builtin_bswap32((__u32)(x)))
#define vg_be64(x) ((__u64)__builtin_bswap64((__u64)(x)))
#else
#define vg_be16(x) ((__u16)(x))
#define vg_be32(x) ((__u32)(x))
#define vg_be64(x) ((__u64)(x))
#endif

#define VIGIL_NSEC_PER_MSEC 1000000ULL
#define VIGIL_NSEC_PER_SEC 1000000000ULL

#endif /* VIGIL_TYPES_H */
