#!/usr/bin/env python3
# SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
"""Signed beats kept as bytes, to send once and then replay unchanged.

    beat_frames.py make FILE AGENT_ID KEY_HEX INCARNATION SEQ[:leaving] ...
    beat_frames.py send FILE HOST [PORT]

`make` writes one 64-byte beat per SEQ (status `leaving` with ":leaving",
else `ok`; interval 1000 ms) signed with key 0, as docs/wire-format.md
describes them; `send` sends every beat in FILE, in order, one datagram
each. Sending the same FILE twice is what an on-path attacker who recorded
the beats does.
"""
import socket
import struct
import sys
import time

BEAT = struct.Struct(">HBBBBHQQQIIII16s")
MAGIC, VERSION, F_MAC = 0x5647, 1, 0x01
OK, LEAVING = 0, 3
M64 = (1 << 64) - 1


def _rotl(x, b):
    return ((x << b) | (x >> (64 - b))) & M64


def siphash24(key, msg):
    k0, k1 = struct.unpack("<QQ", key)
    v = [k0 ^ 0x736F6D6570736575, k1 ^ 0x646F72616E646F6D,
         k0 ^ 0x6C7967656E657261, k1 ^ 0x7465646279746573]

    def rnd():
        v[0] = (v[0] + v[1]) & M64; v[1] = _rotl(v[1], 13) ^ v[0]; v[0] = _rotl(v[0], 32)
        v[2] = (v[2] + v[3]) & M64; v[3] = _rotl(v[3], 16) ^ v[2]
        v[0] = (v[0] + v[3]) & M64; v[3] = _rotl(v[3], 21) ^ v[0]
        v[2] = (v[2] + v[1]) & M64; v[1] = _rotl(v[1], 17) ^ v[2]; v[2] = _rotl(v[2], 32)

    tail = len(msg) % 8
    for (m,) in struct.iter_unpack("<Q", msg[:len(msg) - tail]):
        v[3] ^= m; rnd(); rnd(); v[0] ^= m
    b = int.from_bytes(msg[len(msg) - tail:], "little") | (len(msg) & 0xFF) << 56
    v[3] ^= b; rnd(); rnd(); v[0] ^= b
    v[2] ^= 0xFF
    rnd(); rnd(); rnd(); rnd()
    return v[0] ^ v[1] ^ v[2] ^ v[3]


def beat(agent_id, seq, incarnation, status, key):
    b = BEAT.pack(MAGIC, VERSION, F_MAC, status, 0, 0, agent_id, seq, time.monotonic_ns(),
                  incarnation, 1000, 0, 0, bytes(16))
    return b[:48] + struct.pack("<Q", siphash24(key, b[:48])) + bytes(8)


def main():
    if len(sys.argv) >= 7 and sys.argv[1] == "make":
        agent_id, key, inc = int(sys.argv[3]), bytes.fromhex(sys.argv[4]), int(sys.argv[5])
        with open(sys.argv[2], "wb") as f:
            for spec in sys.argv[6:]:
                seq, _, what = spec.partition(":")
                f.write(beat(agent_id, int(seq), inc, LEAVING if what == "leaving" else OK, key))
        return 0
    if len(sys.argv) in (4, 5) and sys.argv[1] == "send":
        data = open(sys.argv[2], "rb").read()
        port = int(sys.argv[4]) if len(sys.argv) == 5 else 4747
        sock = socket.socket(socket.getaddrinfo(sys.argv[3], port, type=socket.SOCK_DGRAM)[0][0],
                             socket.SOCK_DGRAM)
        for i in range(0, len(data), BEAT.size):
            sock.sendto(data[i:i + BEAT.size], (sys.argv[3], port))
        return 0
    print(__doc__.strip(), file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
