# SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
"""SipHash-2-4 against the reference vectors of the paper's implementation
(vectors_sip64: key 00..0f, messages 00 01 .. len-1 for len 0..63), read from
tests/prog/auth_vectors.h, the table the C code is held to on the host and in
the kernel."""
import re
import unittest

from common import repo_file
from vigil_agent import siphash24


def reference_vectors():
    text = repo_file("tests/prog/auth_vectors.h").read_text()
    table = re.search(r"sipvec_want\[SIPVEC_N\] = \{(.*?)\};", text, re.S).group(1)
    return [int(h, 16) for h in re.findall(r"0x([0-9a-f]{16})ULL", table)]


class SipHashVectors(unittest.TestCase):
    def test_64_reference_vectors(self):
        want = reference_vectors()
        self.assertEqual(len(want), 64)
        key = bytes(range(16))
        for n, w in enumerate(want):
            self.assertEqual(siphash24(key, bytes(range(n))), w, "message of %d bytes" % n)

    def test_key_must_be_16_bytes(self):
        with self.assertRaises(ValueError):
            siphash24(bytes(15), b"")


if __name__ == "__main__":
    unittest.main()
