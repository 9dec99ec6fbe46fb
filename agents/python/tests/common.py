# SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
"""What the tests share: where the repository is (its docs and C headers are
what the Python agent is checked against)."""
import os
import pathlib

ROOT = pathlib.Path(os.environ.get("VIGIL_ROOT") or pathlib.Path(__file__).resolve().parents[3])
BUILD = ROOT / "build"


def repo_file(rel: str) -> pathlib.Path:
    p = ROOT / rel
    if not p.exists():
        raise FileNotFoundError("%s not found: run the tests from a vigil checkout "
                                "(or set VIGIL_ROOT)" % p)
    return p
