#!/usr/bin/env python3
# SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
"""Agent churn for tests/e2e/80-crash.sh.

One `vigil beat` process per agent, inside the test's network namespace
(nsenter --net only). Each agent is killed (SIGKILL) and restarted at random:
it beats for UP ms, stays silent for DOWN ms, and so on. A silence longer than
multiplier x interval makes it SUSPECT, longer still DEAD; the next beat
RECOVERS it, and a restart in a later second raises its incarnation
(RESTART). All timing is done here, so no stray `sleep` processes exist.

SIGTERM or SIGINT stops the churn: every beater is killed (so every agent
ends DEAD), the per-agent figures are written to --stats, and it exits 0.
Beaters also get PR_SET_PDEATHSIG, so they die with this process even if it
is SIGKILLed (the test also kills whatever is left in its namespace).
"""
import argparse
import ctypes
import heapq
import json
import os
import random
import signal
import subprocess
import sys
import time

stop = False


def on_signal(_sig, _frame):
    global stop
    stop = True


def die_with_parent():
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def parse_range(s):
    a, _, b = s.partition("-")
    lo, hi = int(a), int(b or a)
    return range(lo, hi + 1)


def parse_ms(s):
    a, _, b = s.partition("-")
    return int(a), int(b or a)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vigil", required=True)
    ap.add_argument("--netns", required=True)
    ap.add_argument("--keys", required=True)
    ap.add_argument("--ids", required=True, help="A-B")
    ap.add_argument("--target", default="127.0.0.1")
    ap.add_argument("--interval-ms", type=int, default=20)
    ap.add_argument("--up-ms", default="150-900")
    ap.add_argument("--down-ms", default="20-400")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--stats", required=True)
    ap.add_argument("--errdir", required=True, help="beater stderr goes to DIR/beat-ID.err")
    a = ap.parse_args()

    rnd = random.Random(a.seed)
    up_lo, up_hi = parse_ms(a.up_ms)
    down_lo, down_hi = parse_ms(a.down_ms)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    procs = {}  # id -> Popen
    stats = {i: {"starts": 0, "kills": 0, "longest_down_ms": 0} for i in parse_range(a.ids)}
    down_since = {}
    errs = {}

    def start(i):
        if i not in errs:
            errs[i] = open(os.path.join(a.errdir, "beat-%d.err" % i), "ab")
        procs[i] = subprocess.Popen(
            ["nsenter", "--net=/run/netns/" + a.netns, a.vigil, "beat", "--id", str(i),
             "--target", a.target, "--interval-ms", str(a.interval_ms), "--keys", a.keys],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=errs[i],
            preexec_fn=die_with_parent)
        stats[i]["starts"] += 1
        if i in down_since:
            ms = int((time.monotonic() - down_since.pop(i)) * 1000)
            stats[i]["longest_down_ms"] = max(stats[i]["longest_down_ms"], ms)

    def kill(i):
        p = procs.pop(i, None)
        if p is None:
            return
        p.kill()
        p.wait()
        stats[i]["kills"] += 1
        down_since[i] = time.monotonic()

    # (when, id, action): start everyone now, staggered a little.
    now = time.monotonic()
    todo = [(now + rnd.uniform(0, 0.02), i, "start") for i in stats]
    heapq.heapify(todo)
    while not stop:
        when, i, action = todo[0]
        delay = when - time.monotonic()
        if delay > 0:
            time.sleep(min(delay, 0.05))
            continue
        heapq.heappop(todo)
        if action == "start":
            start(i)
            heapq.heappush(todo, (time.monotonic() + rnd.uniform(up_lo, up_hi) / 1000, i, "kill"))
        else:
            kill(i)
            heapq.heappush(todo, (time.monotonic() + rnd.uniform(down_lo, down_hi) / 1000, i,
                                  "start"))
    for i in list(procs):
        procs[i].kill()
    for i in list(procs):
        procs[i].wait()
    with open(a.stats, "w") as f:
        json.dump({str(k): v for k, v in stats.items()}, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
