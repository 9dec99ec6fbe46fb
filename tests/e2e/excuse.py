#!/usr/bin/env python3
# SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
"""Tell a monitor bug from an agent that did not beat, from the agent's side.

The e2e tests check that agents which beat every 20 ms never get a SUSPECT.
On a loaded machine an agent can be left off the CPU for longer than its
deadline; the monitor is then right to report it. Only the agent can say
whether it sent: every beater the tests start writes `vigil beat --send-log`
(one JSON line per beat: sequence, due time, when send(2) started and
returned, CLOCK_MONOTONIC ns, the clock of the events' *_ns fields).

A SUSPECT or DEAD is excused only when that log shows the agent sent no beat
after the one the monitor last accepted (the event's `seq`) before the
event's deadline: the agent really was silent. A beat that was sent in time
and still missed its deadline is the monitor's fault (a late receive path, a
sweeper that judged without evidence, a send blocked inside the kernel's
receive path) and is never excused. A RECOVERED is excused with its SUSPECT
or DEAD. Nothing else is.

  excuse.py excuse --send-logs DIR --events FILE --agents 1-45,47 [--until NS]
      Print the event_seq of each excused event of those agents (detected
      before NS), one per line; a summary goes to stderr.

  excuse.py evidence --send-logs DIR --events FILE
      For each SUSPECT or DEAD, print "event_seq wait_ns": how long after its
      deadline the first beat of any agent started (0: none did). The monitor
      takes a verdict once such a beat has reached it (docs/design.md); before
      that it has no evidence that its receive path is not just behind, so
      agents that all sent nothing (a machine that held every beater off the
      CPU) delay the verdict by that much.

  excuse.py now
      Print CLOCK_MONOTONIC in ns.
"""
import argparse
import bisect
import glob
import json
import os
import sys
import time


def parse_ids(spec):
    ids = set()
    for part in spec.split(","):
        if "-" in part:
            a, b = part.split("-")
            ids.update(range(int(a), int(b) + 1))
        elif part:
            ids.add(int(part))
    return ids


def load_rounds(d):
    """[(lo, hi, seq, start_ns)] from every send log in d."""
    rounds = []
    for path in glob.glob(os.path.join(d, "send.*.jsonl")):
        with open(path) as f:
            for line in f:
                try:
                    r = json.loads(line)
                    lo, _, hi = r["ids"].partition("-")
                    rounds.append((int(lo), int(hi or lo), r["seq"], r["start_ns"]))
                except (ValueError, KeyError):
                    continue
    return rounds


def excuse(args):
    ids = parse_ids(args.agents)
    rounds = load_rounds(args.send_logs)
    by_agent = {}
    for lo, hi, seq, start in rounds:
        for a in ids:
            if lo <= a <= hi:
                by_agent.setdefault(a, []).append((seq, start))
    events = []
    with open(args.events) as f:
        for line in f:
            try:
                events.append(json.loads(line))
            except ValueError:
                pass

    excused, considered, miss_excused = [], 0, {}
    for e in sorted(events, key=lambda e: e.get("event_seq", 0)):
        agent, kind = e.get("agent_id"), e.get("kind")
        if agent not in ids or kind == "up":
            continue
        if args.until is not None and e.get("detected_ns", 0) >= args.until:
            continue
        considered += 1
        ok = False
        if kind in ("suspect", "dead"):
            deadline = e.get("deadline_ns")
            sent = by_agent.get(agent)
            if deadline and sent:
                # Any beat after the last accepted one, started before the
                # deadline, means the agent did its part.
                ok = not any(s > e.get("seq", 0) and t < deadline for s, t in sent)
            miss_excused[agent] = ok
        elif kind == "recovered":
            ok = miss_excused.get(agent, False)
        if ok:
            excused.append(e["event_seq"])
    for seq in excused:
        print(seq)
    print("%d of %d events excused: the agent's own send log shows no beat sent between "
          "its last accepted beat and the deadline (%d beats logged)"
          % (len(excused), considered, len(rounds)), file=sys.stderr)


def json_lines(path):
    """The JSON objects of a JSON-lines file, skipping lines that are not JSON
    (a line cut short by a writer that was killed)."""
    with open(path) as f:
        for line in f:
            try:
                yield json.loads(line)
            except ValueError:
                continue


def evidence(args):
    starts = sorted(start for _, _, _, start in load_rounds(args.send_logs))
    for e in json_lines(args.events):
        if e.get("kind") in ("suspect", "dead") and e.get("deadline_ns"):
            i = bisect.bisect_left(starts, e["deadline_ns"])
            print(e["event_seq"], starts[i] - e["deadline_ns"] if i < len(starts) else 0)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    x = sub.add_parser("excuse")
    x.add_argument("--send-logs", required=True)
    x.add_argument("--events", required=True)
    x.add_argument("--agents", required=True)
    x.add_argument("--until", type=int)
    x = sub.add_parser("evidence")
    x.add_argument("--send-logs", required=True)
    x.add_argument("--events", required=True)
    sub.add_parser("now")
    args = ap.parse_args()
    if args.cmd == "excuse":
        excuse(args)
    elif args.cmd == "evidence":
        evidence(args)
    else:
        print(time.monotonic_ns())


if __name__ == "__main__":
    main()
