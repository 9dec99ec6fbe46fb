#!/usr/bin/env python3
# SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
"""Find result checks in the e2e scripts that cannot fail as written.

`check DESC CMD...` runs CMD and prints one result line. Written as
`check DESC [ a ] && [ b ]`, only `[ a ]` is the check: the shell runs
`&& [ b ]` afterwards, on check's own status, and its result is lost.
Compound conditions belong in `check_sh DESC 'a && b'` (or a function).

Usage: check_lint.py SCRIPT... ; prints FILE:LINE: TEXT per finding, and
exits 1 when there is one.
"""
import re
import shlex
import sys


def statements(lines):
    """Yield (first line number, text) with backslash continuations joined."""
    i = 0
    while i < len(lines):
        start, text = i, lines[i]
        while text.endswith("\\") and i + 1 < len(lines):
            i += 1
            text = text[:-1] + " " + lines[i]
        yield start + 1, text.strip()
        i += 1


def top_level_ops(text):
    lex = shlex.shlex(text, posix=True, punctuation_chars=True)
    lex.whitespace_split = True
    try:
        return [t for t in lex if t in ("&&", "||", "|", ";")]
    except ValueError:  # a quote that spans lines: not a one-statement check
        return []


found = 0
for path in sys.argv[1:]:
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    for n, text in statements(lines):
        if re.match(r"check\s", text) and top_level_ops(text):
            print(f"{path}:{n}: {text[:150]}")
            found += 1
sys.exit(1 if found else 0)
