# SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
"""SipHash-2-4 with a 64-bit output (Aumasson and Bernstein, 2012).

Python's hashlib has no keyed SipHash-2-4, so it is written out here. The
key is 16 bytes; as the paper specifies, k0 is bytes 0-7 and k1 bytes 8-15,
each read little-endian. The result is the 64-bit number the reference
implementation's 8 output bytes spell in little-endian order.
"""
import struct

__all__ = ["siphash24"]

_M64 = (1 << 64) - 1


def _rotl(x, b):
    return ((x << b) | (x >> (64 - b))) & _M64


def siphash24(key: bytes, msg: bytes) -> int:
    """SipHash-2-4 of msg under the 16-byte key, as an int in [0, 2**64)."""
    if len(key) != 16:
        raise ValueError("a SipHash key is 16 bytes, got %d" % len(key))
    k0, k1 = struct.unpack("<QQ", key)
    v0 = k0 ^ 0x736F6D6570736575
    v1 = k1 ^ 0x646F72616E646F6D
    v2 = k0 ^ 0x6C7967656E657261
    v3 = k1 ^ 0x7465646279746573

    def rounds(n, v0, v1, v2, v3):
        for _ in range(n):
            v0 = (v0 + v1) & _M64
            v1 = _rotl(v1, 13) ^ v0
            v0 = _rotl(v0, 32)
            v2 = (v2 + v3) & _M64
            v3 = _rotl(v3, 16) ^ v2
            v0 = (v0 + v3) & _M64
            v3 = _rotl(v3, 21) ^ v0
            v2 = (v2 + v1) & _M64
            v1 = _rotl(v1, 17) ^ v2
            v2 = _rotl(v2, 32)
        return v0, v1, v2, v3

    tail = len(msg) % 8
    for (m,) in struct.iter_unpack("<Q", msg[: len(msg) - tail]):
        v3 ^= m
        v0, v1, v2, v3 = rounds(2, v0, v1, v2, v3)
        v0 ^= m
    b = int.from_bytes(msg[len(msg) - tail:], "little") | (len(msg) & 0xFF) << 56
    v3 ^= b
    v0, v1, v2, v3 = rounds(2, v0, v1, v2, v3)
    v0 ^= b
    v2 ^= 0xFF
    v0, v1, v2, v3 = rounds(4, v0, v1, v2, v3)
    return v0 ^ v1 ^ v2 ^ v3
