#!/usr/bin/env python3
# SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
"""Check docs/config.md's option tables against the usage vigil generates.

Every command (`vigil --help`) and every verb of a command with verbs
(`vigil log --help`) has its usage generated from its option table
(user/common/options.h). The docs must have, for each, a section whose
heading names it in backquotes (## `vigil run` options, ### `vigil log
query`), holding one or more tables whose first column names the options
(`-p`, `--port PORT`). For each command this checks:

  - the docs list exactly the options --help lists (none missing, none
    extra);
  - where --help states a default, the table's "default" column says the
    same (numbers compared without thousands separators).

Prints "cmd|NAME" for each command it found, one line per check: "ok|what"
or "not ok|what", and the details of a failure as "#|detail" lines.

  options_doc.py VIGIL DOC
"""
import re
import subprocess
import sys

OPTION_LINE = re.compile(r"^(  -[A-Za-z], |      )--([a-z0-9][a-z0-9-]*)")


def run(vigil, *args):
    p = subprocess.run([vigil, *args, "--help"], capture_output=True, text=True)
    return p.stdout


def commands(vigil):
    """[("run", usage), ("log query", usage), ...]"""
    out, top = [], run(vigil)
    for line in top.split("\n\n", 1)[1].splitlines():
        m = re.match(r"  ([a-z]+) ", line)
        if not m:
            break
        usage = run(vigil, m.group(1))
        if usage.startswith("Usage: vigil %s VERB" % m.group(1)):
            for vline in usage.split("\n\n", 1)[1].splitlines():
                v = re.match(r"  ([a-z]+) ", vline)
                if not v:
                    break
                out.append(("%s %s" % (m.group(1), v.group(1)),
                            run(vigil, m.group(1), v.group(1))))
        else:
            out.append((m.group(1), usage))
    return out


def help_options(usage):
    """{option: default or None} from a generated usage."""
    opts, name, text = {}, None, ""
    body = usage.split("\nExamples:\n")[0]

    def flush():
        if name:
            m = re.search(r"\(default: ([^)]*)\)", text)
            opts[name] = m.group(1) if m else None

    for line in body.splitlines():
        m = OPTION_LINE.match(line)
        if m:
            flush()
            name, text = m.group(2), line
        elif name and line.startswith(" " * 28):
            text += " " + line.strip()
        else:
            flush()
            name, text = None, ""
    flush()
    return opts


def doc_sections(doc):
    """{"run": [table rows...]} for every heading naming `vigil CMD`."""
    sections, current = {}, None
    for line in doc.splitlines():
        h = re.match(r"^#{2,4} .*`vigil ([a-z]+(?: [a-z]+)?)`", line)
        if h:
            current = sections.setdefault(h.group(1), {"rows": [], "header": None})
            continue
        if line.startswith("#"):
            current = None
            continue
        if current is None or not line.startswith("|"):
            continue
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
        if all(re.fullmatch(r":?-+:?", c) for c in cells):
            continue
        if cells and cells[0].lower() == "option":
            current["header"] = [c.lower() for c in cells]
            continue
        current["rows"].append((current["header"], cells))
    return sections


def doc_options(rows):
    opts = {}
    for header, cells in rows:
        names = re.findall(r"--([a-z0-9][a-z0-9-]*)", cells[0])
        default = None
        if header and "default" in header and len(cells) > header.index("default"):
            default = cells[header.index("default")]
        for n in names[:1]:  # "--learn[=CAP]", "--retain-days N": the first is the option
            opts[n] = default
    return opts


def norm(s):
    s = s.replace("`", "").replace("\\|", "|")
    return re.sub(r"(?<=\d),(?=\d{3}\b)", "", s)


def main():
    vigil, doc_path = sys.argv[1], sys.argv[2]
    sections = doc_sections(open(doc_path).read())
    for cmd, usage in commands(vigil):
        print("cmd|" + cmd)
        want = help_options(usage)
        sec = sections.get(cmd)
        if not sec:
            print("not ok|vigil %s: docs/config.md has a section for it" % cmd)
            print("#|no heading naming `vigil %s`" % cmd)
            continue
        have = doc_options(sec["rows"])
        missing = sorted(set(want) - set(have))
        extra = sorted(set(have) - set(want))
        print("%s|vigil %s: docs/config.md lists exactly the %d options of its --help"
              % ("not ok" if missing or extra else "ok", cmd, len(want)))
        if missing:
            print("#|missing from the docs: " + " ".join("--" + m for m in missing))
        if extra:
            print("#|in the docs, not in --help: " + " ".join("--" + e for e in extra))
        wrong = []
        for name, dflt in want.items():
            if dflt is None or name not in have:
                continue
            if have[name] is None or norm(dflt) not in norm(have[name]):
                wrong.append("--%s: --help says %r, the docs %r" % (name, dflt, have[name]))
        print("%s|vigil %s: every default --help states is the docs' default"
              % ("not ok" if wrong else "ok", cmd))
        for w in wrong:
            print("#|" + w)


main()
