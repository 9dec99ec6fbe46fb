# SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
"""The packets against docs/wire-format.md itself: its worked beat example
(unsigned, signed, and a capture of `vigil beat`) and its acknowledgement
example with the key that tagged it, so the page an agent writer reads and
this implementation cannot drift apart."""
import re
import struct
import unittest

from common import repo_file
from vigil_agent import (Beat, LeaseState, Status, ack_tag_ok, decode_ack, decode_beat,
                         encode_beat, parse_key, siphash24)
from vigil_agent.wire import F_ACK, F_MAC

DOC_KEY = parse_key("000102030405060708090a0b0c0d0e0f")


def section(title):
    text = repo_file("docs/wire-format.md").read_text()
    m = re.search(r"^## %s\n(.*?)(?=^## )" % re.escape(title), text, re.S | re.M)
    if not m:
        raise AssertionError("docs/wire-format.md has no section %r" % title)
    return m.group(1)


def hex_blocks(text):
    """The code blocks made of rows of hex bytes ("offset 16: 00 06 ..." or
    "00 06 ..."), each as bytes."""
    out = []
    for block in re.findall(r"```\n(.*?)```", text, re.S):
        rows = [re.sub(r"^offset\s+\d+:", "", r).split() for r in block.strip().splitlines()]
        if rows and all(w and all(re.fullmatch(r"[0-9a-f]{2}", x) for x in w) for w in rows):
            out.append(bytes.fromhex("".join("".join(w) for w in rows)))
    return out


EXAMPLE = Beat(agent_id=42, seq=1732700000000000, incarnation=1732700000, interval_ms=1000,
               send_ts_ns=1732700000123456789, status=Status.OK, queue_depth=3)


class WorkedBeatExample(unittest.TestCase):
    def setUp(self):
        self.blocks = hex_blocks(section("Worked example"))
        self.assertEqual(len(self.blocks), 3, "unsigned, signed, captured")

    def test_unsigned_bytes(self):
        self.assertEqual(encode_beat(EXAMPLE), self.blocks[0])

    def test_signed_bytes(self):
        signed = encode_beat(EXAMPLE, DOC_KEY)
        self.assertEqual(signed, self.blocks[1])
        self.assertEqual(struct.unpack("<Q", signed[48:56])[0], 0x9116A1C11800FAC7)

    def test_captured_beat_verifies(self):
        cap = self.blocks[2]
        b = decode_beat(cap)
        self.assertEqual((b.agent_id, b.queue_depth, b.incarnation, b.flags), (42, 3, 1732700000, F_MAC))
        # Re-encoding the decoded fields under the documented key gives the captured tag.
        self.assertEqual(encode_beat(b._replace(flags=0), DOC_KEY), cap)

    def test_struct_format_is_the_documented_one(self):
        doc = section("Layout (64 bytes)")
        self.assertIn('`">HBBBBHQQQIIII16s"`', doc)
        self.assertEqual(struct.calcsize(">HBBBBHQQQIIII16s"), 64)

    def test_key_id_is_covered(self):
        a = encode_beat(EXAMPLE, DOC_KEY)
        b = encode_beat(EXAMPLE._replace(key_id=1), DOC_KEY)
        self.assertNotEqual(a[48:56], b[48:56])

    def test_decode_refuses_what_is_not_a_beat(self):
        with self.assertRaises(ValueError):
            decode_beat(encode_beat(EXAMPLE)[:63])
        with self.assertRaises(ValueError):
            decode_beat(b"XX" + encode_beat(EXAMPLE)[2:])


class MinimalSenderOnThePage(unittest.TestCase):
    """The page's own Python sender makes the same beats as this package."""

    def setUp(self):
        code = re.search(r"```python\n(.*?)```", section("A minimal sender in Python"), re.S)
        self.assertIsNotNone(code, "the page shows its sender")
        self.ns = {"__name__": "vigil_beat"}
        exec(compile(code.group(1), "docs/wire-format.md", "exec"), self.ns)

    def test_siphash(self):
        for n in range(64):
            msg = bytes(range(n))
            self.assertEqual(self.ns["siphash24"](DOC_KEY, msg), siphash24(DOC_KEY, msg))

    def test_same_bytes(self):
        class Clock:
            @staticmethod
            def monotonic_ns():
                return EXAMPLE.send_ts_ns
        self.ns["time"] = Clock
        want = EXAMPLE._replace(queue_depth=0)
        for key in (None, DOC_KEY):
            got = self.ns["beat"](want.agent_id, want.seq, want.incarnation, want.interval_ms,
                                  key=key)
            self.assertEqual(got, encode_beat(want, key))


class AckExample(unittest.TestCase):
    def setUp(self):
        text = section("Acknowledgements")
        blocks = hex_blocks(text)
        self.assertEqual(len(blocks), 1)
        self.ack = blocks[0]
        keys = re.findall(r"key 0 = `([0-9a-f]{32})`", text)
        self.assertEqual(len(keys), 1, "the example names the key that tagged it")
        self.key = parse_key(keys[0])

    def test_fields(self):
        k = decode_ack(self.ack)
        self.assertEqual(k.flags, F_ACK | F_MAC)
        self.assertEqual((k.agent_id, k.holder, k.token, k.lease_id, k.remaining_ms),
                         (5, 5, 2, 1, 500))
        self.assertEqual(k.lease_state, LeaseState.HELD)

    def test_tag_verifies_with_the_documented_key(self):
        self.assertTrue(ack_tag_ok(self.ack, self.key))

    def test_tag_covers_the_flags_byte_as_sent(self):
        # Computed with 0x81 in the flags byte, not 0x80.
        unflagged = self.ack[:3] + bytes([F_ACK]) + self.ack[4:]
        self.assertFalse(ack_tag_ok(unflagged, self.key))

    def test_any_changed_byte_fails(self):
        for i in range(64):
            bad = bytearray(self.ack)
            bad[i] ^= 0x01
            self.assertFalse(ack_tag_ok(bytes(bad), self.key), "byte %d flipped" % i)

    def test_wrong_key_fails(self):
        self.assertFalse(ack_tag_ok(self.ack, bytes(16)))

    def test_not_an_ack(self):
        self.assertIsNone(decode_ack(encode_beat(EXAMPLE, DOC_KEY)))  # a beat: no 0x80
        self.assertIsNone(decode_ack(self.ack[:60]))


class Keys(unittest.TestCase):
    def test_parse_key(self):
        self.assertEqual(parse_key("000102030405060708090A0B0C0D0E0F"), DOC_KEY)
        for bad in ("00", "zz" * 16, "0" * 33):
            with self.assertRaises(ValueError):
                parse_key(bad)


if __name__ == "__main__":
    unittest.main()
