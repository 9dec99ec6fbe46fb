#!/usr/bin/env python3
# SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
"""Tell a monitor bug from a machine that stopped running the agents.

The e2e tests check that agents which beat every 20 ms never get a SUSPECT.
On a loaded (or oversubscribed virtual) machine a process can be left
unscheduled for longer than three intervals; the monitor is then right to
report it. To tell the two apart the tests run one probe per CPU at the
beaters' real-time priority, and only excuse an event when a probe on the
same machine was itself held off at that very time.

  stalls.py probe --cpu N --out FILE
      Wake every 2 ms on CPU N (run it under chrt like the beaters) and
      append "START_NS LATE_MS CPU" (CLOCK_MONOTONIC, the clock of the
      events' *_ns fields) for every wake-up at least 10 ms late. Runs
      until SIGTERM/SIGINT.

  stalls.py excuse --stalls DIR --events FILE --agents 1-45,47 [--until NS]
                   [--min-ms 30]
      Print the event_seq of each non-`up` event of those agents (detected
      before NS) whose window the probes lost at least MIN_MS of (the union
      of their stalls, across CPUs), one per line;
      a summary goes to stderr. Windows: SUSPECT/DEAD from the last beat to
      detection; RECOVERED from the last beat before its SUSPECT/DEAD;
      REJECTED (the beater's catch-up burst after a stall) the 2 s before it.

  stalls.py now
      Print CLOCK_MONOTONIC in ns.
"""
import argparse
import glob
import json
import os
import signal
import sys
import time


def probe(cpu, out, period_ns=2_000_000, report_ns=10_000_000):
    stop = False

    def on_signal(_sig, _frm):
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        os.sched_setaffinity(0, {cpu})
    except OSError:
        pass
    with open(out, "a", buffering=1) as f:
        nxt = time.monotonic_ns()
        while not stop:
            nxt += period_ns
            d = nxt - time.monotonic_ns()
            if d > 0:
                time.sleep(d / 1e9)
            now = time.monotonic_ns()
            late = now - nxt
            if late >= report_ns:
                f.write("%d %.1f %d\n" % (nxt, late / 1e6, cpu))
            if late > period_ns:
                nxt = now


def parse_ids(spec):
    ids = set()
    for part in spec.split(","):
        if "-" in part:
            a, b = part.split("-")
            ids.update(range(int(a), int(b) + 1))
        elif part:
            ids.add(int(part))
    return ids


def load_stalls(d):
    stalls = []
    for path in glob.glob(os.path.join(d, "stalls.cpu*")):
        with open(path) as f:
            for line in f:
                try:
                    start, late, _cpu = line.split()
                except ValueError:
                    continue
                if float(late) >= 10:
                    stalls.append((int(start), int(start) + int(float(late) * 1e6)))
    return stalls


def excuse(args):
    ids = parse_ids(args.agents)
    stalls = load_stalls(args.stalls)
    events = []
    with open(args.events) as f:
        for line in f:
            try:
                events.append(json.loads(line))
            except ValueError:
                pass

    def stalled(lo, hi):
        """Did the probes lose at least min_ms in [lo, hi] (union over CPUs)?"""
        parts = sorted((max(a, lo), min(b, hi)) for a, b in stalls if a <= hi and b >= lo)
        total, end = 0, lo
        for a, b in parts:
            a = max(a, end)
            if b > a:
                total += b - a
                end = b
        return total >= args.min_ms * 1_000_000

    excused, considered, last_miss = [], 0, {}
    for e in sorted(events, key=lambda e: e.get("event_seq", 0)):
        agent, kind = e.get("agent_id"), e.get("kind")
        if agent not in ids or kind == "up":
            continue
        det = e.get("detected_ns", 0)
        if args.until is not None and det >= args.until:
            continue
        considered += 1
        if kind in ("suspect", "dead"):
            lo = e.get("last_seen_ns", det)
            last_miss[agent] = lo
        elif kind == "recovered":
            lo = last_miss.get(agent, det)
        elif kind == "rejected":
            lo = det - 2_000_000_000
        else:
            continue
        if stalled(lo, det):
            excused.append(e["event_seq"])
    for seq in excused:
        print(seq)
    longest = max((s[1] - s[0] for s in stalls), default=0) / 1e6
    print("%d of %d events excused: the machine held the probes off >= %d ms then "
          "(%d stalls >= 10 ms, longest %.1f ms)"
          % (len(excused), considered, args.min_ms, len(stalls), longest), file=sys.stderr)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("probe")
    p.add_argument("--cpu", type=int, required=True)
    p.add_argument("--out", required=True)
    x = sub.add_parser("excuse")
    x.add_argument("--stalls", required=True)
    x.add_argument("--events", required=True)
    x.add_argument("--agents", required=True)
    x.add_argument("--until", type=int)
    x.add_argument("--min-ms", type=int, default=30)
    sub.add_parser("now")
    args = ap.parse_args()
    if args.cmd == "probe":
        probe(args.cpu, args.out)
    elif args.cmd == "excuse":
        excuse(args)
    else:
        print(time.monotonic_ns())


if __name__ == "__main__":
    main()
