#!/usr/bin/env python3
# SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
"""Split a lease failover's time into the monitor's part and the agents'
(tests/e2e/85-leases.sh, "kill the holder").

A failover is due `grace` after the lease expires, but the daemon may only
grant to a healthy candidate (ALIVE). A candidate the machine held off its
CPU goes SUSPECT and is granted nothing until it beats again: that wait is
the agents', not the monitor's. It is excused only when the candidate's own
send log shows it sent nothing between its last accepted beat and the
deadline (excuse.py's rule); a candidate taken SUSPECT although it beat in
time counts as healthy, so the monitor's false verdict counts against it.

  lease_failover.py --events DAEMON.OUT --send-logs DIR --grace-ms G \\
      --token T --killed H --grant-mono NS

Prints one JSON object (times in microseconds):
  expired_late_us  the kernel's LEASE_EXPIRED after the lease's expiry (sweeper)
  eligible_us      from the grant falling due (expiry + grace) until a
                   candidate other than H was healthy (0: one was already)
  monitor_us       the grant after max(due, a candidate healthy): the daemon's part
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import excuse  # noqa: E402  (beside this file)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", required=True)
    ap.add_argument("--send-logs", required=True)
    ap.add_argument("--grace-ms", type=int, required=True)
    ap.add_argument("--token", type=int, required=True)
    ap.add_argument("--killed", type=int, required=True)
    ap.add_argument("--grant-mono", type=int, required=True)
    a = ap.parse_args()

    events = [e for e in excuse.json_lines(a.events) if "event_seq" in e]
    expiry = [e for e in events if e["kind"] == "lease_expired" and e.get("token") == a.token]
    if not expiry:
        print(json.dumps({"error": "no lease_expired for token %d" % a.token}))
        return 1
    expires, detected = expiry[-1]["last_seen_ns"], expiry[-1]["detected_ns"]
    due = expires + a.grace_ms * 1000000

    # What the agents' own send logs excuse (the candidate sent nothing).
    by_agent = {}
    for lo, hi, seq, start in excuse.load_rounds(a.send_logs):
        for agent in range(lo, hi + 1):
            by_agent.setdefault(agent, []).append((seq, start))

    def excused(e):
        sent = by_agent.get(e["agent_id"])
        return bool(sent) and not any(s > e.get("seq", 0) and t < e["deadline_ns"] for s, t in sent)

    # When each other candidate was healthy again at or after `due`.
    eligible = None
    for agent in {e["agent_id"] for e in events if e["kind"] in ("up", "suspect", "dead")}:
        if agent == a.killed:
            continue
        # Sick: from the deadline of an excused verdict (the daemon grants
        # no candidate past its deadline) until its recovery.
        sick, back = False, due
        for e in sorted((e for e in events if e.get("agent_id") == agent),
                        key=lambda e: e["event_seq"]):
            if e["kind"] in ("suspect", "dead") and e.get("deadline_ns") and excused(e):
                if e["deadline_ns"] > due and not sick:
                    break  # healthy when the grant fell due
                sick = True
            elif e["kind"] in ("recovered", "up", "restart"):
                if sick and e["detected_ns"] > due:
                    back = e["detected_ns"]
                    break
                sick = False
        else:
            if sick:
                continue  # never healthy again: not a candidate
        eligible = back if eligible is None else min(eligible, back)
    if eligible is None:
        eligible = due
    print(json.dumps({"expired_late_us": (detected - expires) // 1000,
                      "eligible_us": (eligible - due) // 1000,
                      "monitor_us": (a.grant_mono - max(due, eligible)) // 1000}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
