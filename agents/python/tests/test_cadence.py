# SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
"""The adaptive cadence: decision for decision the same as the C library's
include/vigil/cadence.h (driven through build/cadence_trace on random
scripts), and the guardrails of docs/leases.md#adaptive-cadence on their own."""
import random
import subprocess
import unittest

from common import BUILD
from vigil_agent import Cadence, CadenceConfig

MS = 1_000_000
TRACE = BUILD / "cadence_trace"


def random_script(rng):
    cfg = (rng.choice([1, 5, 20, 50]), rng.choice([0, 20, 320, 1000, 5000]),
           rng.choice([0, 0, 10, 100]), rng.choice([0, 0, 16, 64, 200]), 0,
           rng.choice([0, 1, 1]))
    high = cfg[3] or 64
    cfg = cfg[:4] + (rng.choice([0, rng.randrange(0, high + 2)]),) + cfg[5:]
    now, ops = rng.randrange(0, 10**12), []
    for _ in range(400):
        now += rng.choice([0, 1, rng.randrange(1, 50 * MS), rng.randrange(1, 2000 * MS)])
        if rng.random() < 0.1:
            ops.append(("k", now))
        else:
            ops.append(("s", rng.choice([0, 10, 100, 1000, rng.randrange(0, 65536)]),
                        rng.choice([0, 0, 0, 200, rng.randrange(0, 65536)]),
                        rng.choice([0, 0, 0, 1, rng.randrange(1, 2000)]), now))
    return cfg, ops


def run_python(cfg, ops):
    c = Cadence(CadenceConfig(min_ms=cfg[0], max_ms=cfg[1], dwell_ms=cfg[2], high=cfg[3],
                              low=cfg[4], adaptive=bool(cfg[5])))
    out = []
    for op in ops:
        iv = 0
        if op[0] == "s":
            iv = c.on_send(op[1], op[2], op[3], op[4])
        else:
            c.on_skip(op[1])
        out.append("%d %d %d %d %d %d" % (iv, c.next_ns, c.level, c.promised_ms, c.changes,
                                          c.level_changes))
    return out


class SameAsC(unittest.TestCase):
    @unittest.skipUnless(TRACE.exists(), "%s is not built (make build/cadence_trace)" % TRACE)
    def test_random_scripts_decide_as_cadence_h(self):
        rng = random.Random(16)
        for n in range(150):
            cfg, ops = random_script(rng)
            script = " ".join(map(str, cfg)) + "\n" + "\n".join(
                " ".join(map(str, op)) for op in ops) + "\n"
            c_out = subprocess.run([str(TRACE)], input=script, capture_output=True, text=True,
                                   check=True).stdout.splitlines()
            py_out = run_python(cfg, ops)
            for i, (a, b) in enumerate(zip(c_out, py_out)):
                self.assertEqual(a, b, "script %d (config %s), step %d %s" % (n, cfg, i, ops[i]))
            self.assertEqual(len(c_out), len(py_out))


class Guardrails(unittest.TestCase):
    def test_step_load_moves_20_to_320_and_back_8_times(self):
        c = Cadence(CadenceConfig(min_ms=20, max_ms=320, adaptive=True))
        now, seen = 10**9, []
        for depth in [0] * 10 + [1000] * 200 + [0] * 400:
            iv = c.on_send(depth, 0, 0, now)
            seen.append(iv)
            now = c.next_ns
        self.assertEqual(max(seen), 320)
        self.assertEqual(seen[-1], 20)
        self.assertEqual(c.changes, 8)

    def test_every_beat_comes_within_the_previous_promise(self):
        rng = random.Random(7)
        c = Cadence(CadenceConfig(min_ms=20, max_ms=1000, adaptive=True))
        now, promise, last = 10**9, None, None
        for _ in range(20000):
            # Beats go out when due, or early (a status change).
            t = c.next_ns if c.next_ns and rng.random() < 0.9 else now + rng.randrange(0, 5 * MS)
            t = max(t, now)
            iv = c.on_send(rng.randrange(0, 4000), rng.choice([0, 0, 200, 5000]),
                           rng.choice([0, 0, 30]), t)
            if last is not None:
                self.assertLessEqual(t - last, promise * MS)
            self.assertLessEqual(c.next_ns - t, iv * MS)
            self.assertTrue(20 <= iv <= 1000)
            last, promise, now = t, iv, t

    def test_advice_is_clamped_and_a_holder_is_capped(self):
        c = Cadence(CadenceConfig(min_ms=20, max_ms=400))
        self.assertEqual(c.on_send(0, 5000, 0, 10**9), 400)  # advice above the bound
        self.assertEqual(c.on_send(0, 200, 0, 2 * 10**9), 200)
        self.assertEqual(c.on_send(0, 200, 50, 3 * 10**9), 50)  # a third of the lease left
        self.assertEqual(c.on_send(0, 200, 1, 4 * 10**9), 20)   # never below the minimum
        self.assertEqual(c.on_send(0, 0, 0, 5 * 10**9), 20)     # advice withdrawn


if __name__ == "__main__":
    unittest.main()
