#!/usr/bin/env python3
# SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
"""A tiny authoritative DNS server for the tests: answers A queries for one
name with one IPv4 address, any other type of that name with no records,
and every other name with NXDOMAIN. UDP only, on 127.0.0.1:53 of the test's
own network namespace. Stop it (SIGSTOP) to make a resolver that hangs.

    dns_server.py NAME ADDR
"""
import socket
import struct
import sys


def main():
    name, addr = sys.argv[1].lower().rstrip("."), socket.inet_aton(sys.argv[2])
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 53))
    print("listening", flush=True)
    while True:
        q, peer = s.recvfrom(512)
        if len(q) < 12:
            continue
        qid, _flags, qdcount = struct.unpack("!HHH", q[:6])
        labels, i = [], 12
        while i < len(q) and q[i]:
            labels.append(q[i + 1:i + 1 + q[i]].decode(errors="replace"))
            i += 1 + q[i]
        qtype = struct.unpack("!H", q[i + 1:i + 3])[0] if i + 3 <= len(q) else 0
        question = q[12:i + 5]
        ours = qdcount == 1 and ".".join(labels).lower() == name
        answers = b""
        if ours and qtype == 1:
            answers = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 5, 4) + addr
        rcode = 0 if ours else 3
        head = struct.pack("!HHHHHH", qid, 0x8580 | rcode, 1, 1 if answers else 0, 0, 0)
        s.sendto(head + question + answers, peer)


if __name__ == "__main__":
    main()
