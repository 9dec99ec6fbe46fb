#!/usr/bin/env python3
# SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
"""Replay one agent's logged transitions through the flap-damping model and
compare with what the daemon did (tests/e2e/75-policy.sh).

  flap_model.py --db vigil.db --alerts alerts.jsonl --agent 1 --half-life-s 2 [--until NS]

--until (CLOCK_REALTIME ns, default now): replay what was recorded before,
while one daemon ran (a daemon starts with no penalties).

The model is docs/alerts.md's (user/daemon/policy.c): each SUSPECT, DEAD or
RECOVERED adds 1000 to a penalty that halves every half-life, up to 16000;
above 5000 the agent's alerts are withheld (a `suppressed` notice, recorded
with the event that crossed); once the penalty has decayed below 1500 the
agent is released (a `released` notice) and, if the kind of its last
withheld event differs from the last alert, the event that brought it into
its current state is alerted. A RECOVERED caused by monitor delay takes back
the penalty of the verdicts it corrects.

It replays every transition the log holds, whatever caused it (a beater
killed by the test, or held off the CPU long enough to miss a deadline, as
its send log shows), in the order and at the times the daemon recorded them
(recorded_wall_ns), and judges each `released` notice against the time at
which the penalty fell below 1500: not more than 50 ms before, not more than
400 ms after (the daemon looks at least every 100 ms).

Prints one JSON object:
  kinds              the agent's transitions, in order
  events             their "event_seq kind", in order
  suppressed_at      1-based index of the events that started a suppression
  suppressed_ok      one `suppressed` notice per suppression, recorded with
                     its event (before the next one)
  releases           [{model_ns, actual_ns, diff_ms, alert}] per release;
                     alert: the "event_seq kind" it must alert, or ""
  expected_alerts    the alerts the model predicts ("event_seq kind")
  alerts             the alerts the exec sink got for the agent
  problems           what the daemon did that the model does not allow
"""
import argparse
import json
import math
import sqlite3
import time

ALERTING = ("suspect", "dead", "recovered")
MONITOR_DELAY = 0x08


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--db", required=True)
    ap.add_argument("--alerts", required=True)
    ap.add_argument("--agent", type=int, required=True)
    ap.add_argument("--half-life-s", type=float, required=True)
    ap.add_argument("--penalty", type=float, default=1000)
    ap.add_argument("--suppress", type=float, default=5000)
    ap.add_argument("--reuse", type=float, default=1500)
    ap.add_argument("--max-penalty", type=float, default=16000)
    ap.add_argument("--early-ms", type=float, default=50)
    ap.add_argument("--late-ms", type=float, default=400)
    ap.add_argument("--until", type=int, default=time.time_ns())
    a = ap.parse_args()
    hl = a.half_life_s * 1e9

    db = sqlite3.connect(f"file:{a.db}?mode=ro", uri=True)
    db.execute("PRAGMA busy_timeout = 5000")
    events = db.execute(
        "SELECT event_seq, kind, prev_state, state, recorded_wall_ns, COALESCE(flags, 0) "
        "FROM events WHERE agent_id = ? AND recorded_wall_ns < ? ORDER BY event_seq",
        (a.agent, a.until)).fetchall()
    notices = db.execute(
        "SELECT kind, wall_ns FROM notices WHERE agent_id = ? AND kind IN "
        "('suppressed', 'released') AND wall_ns < ? ORDER BY id", (a.agent, a.until)).fetchall()
    seqs = {e[0] for e in events}
    alerts = []
    with open(a.alerts) as f:
        for line in f:
            try:
                j = json.loads(line)
            except ValueError:
                continue
            if j.get("agent_id") == a.agent and j.get("event_seq") in seqs:
                alerts.append("%d %s" % (j["event_seq"], j["kind"]))
    end = a.until

    # One timeline: the transitions and the daemon's release decisions.
    timeline = [(t, 0, ("event", seq, kind, prev, state, flags))
                for seq, kind, prev, state, t, flags in events]
    timeline += [(t, 1, ("release",)) for kind, t in notices if kind == "released"]
    timeline.sort(key=lambda x: (x[0], x[1]))
    sup_notices = [t for kind, t in notices if kind == "suppressed"]

    p, t0 = 0.0, None
    suppressed, pending, last_alerted = False, None, None
    latest = None  # the event of the agent's latest transition ("event_seq kind")
    out = {"kinds": [], "events": [], "suppressed_at": [], "releases": [],
           "expected_alerts": [], "alerts": alerts, "problems": []}
    sup_windows = []  # (time of the crossing event, time of the next event)
    n = 0

    def decay(t):
        nonlocal p, t0
        if t0 is not None and t > t0:
            p *= 2 ** (-(t - t0) / hl)
        t0 = t

    def crossing():
        """When the penalty falls below reuse, with no further event."""
        return t0 + hl * math.log2(p / a.reuse) if p >= a.reuse else t0

    for t, _, item in timeline:
        if item[0] == "release":
            if not suppressed:
                out["problems"].append("released at %d while not suppressed" % t)
                continue
            c = crossing()
            diff = (t - c) / 1e6
            if diff < -a.early_ms or diff > a.late_ms:
                out["problems"].append("released %.0f ms after the penalty fell below %d" %
                                       (diff, a.reuse))
            decay(t)
            suppressed = False
            kind = pending if pending and pending != last_alerted else None
            alert = ""
            if kind:
                last_alerted = kind
                if latest and latest.split()[1] in ALERTING:
                    alert = latest
                    out["expected_alerts"].append(alert)
            pending = None
            out["releases"].append({"model_ns": int(c), "actual_ns": t, "diff_ms": round(diff, 1),
                                    "alert": alert})
            continue
        _, seq, kind, prev, state, flags = item
        if prev != state:  # a transition: the slot remembers its event
            latest = "%d %s" % (seq, kind)
        if kind not in ALERTING:
            continue
        n += 1
        out["kinds"].append(kind)
        out["events"].append("%d %s" % (seq, kind))
        if sup_windows and sup_windows[-1][1] is None:
            sup_windows[-1][1] = t
        if suppressed and (t - crossing()) / 1e6 > a.late_ms:
            out["problems"].append("not released within %d ms of the penalty falling below %d "
                                   "(by event %d)" % (a.late_ms, a.reuse, seq))
        decay(t)
        if kind == "recovered" and flags & MONITOR_DELAY:
            p = max(p - (2 if prev == "dead" else 1) * a.penalty, 0)
            if suppressed:
                pending = "recovered" if pending else pending
            elif last_alerted in ("suspect", "dead"):
                last_alerted = "recovered"
                out["expected_alerts"].append("%d %s" % (seq, kind))
            continue
        p = min(p + a.penalty, a.max_penalty)
        if not suppressed and p > a.suppress:
            suppressed = True
            out["suppressed_at"].append(n)
            sup_windows.append([t, None])
        if suppressed:
            pending = kind
        else:
            last_alerted = kind
            out["expected_alerts"].append("%d %s" % (seq, kind))
    if suppressed and (end - crossing()) / 1e6 > a.late_ms:
        out["problems"].append("still suppressed %.0f ms after the penalty fell below %d" %
                               ((end - crossing()) / 1e6, a.reuse))
    out["suppressed_ok"] = len(sup_notices) == len(sup_windows) and all(
        lo <= s and (hi is None or s <= hi) for s, (lo, hi) in zip(sup_notices, sup_windows))
    if not out["suppressed_ok"]:
        out["problems"].append("%d 'suppressed' notices for %d suppressions" %
                               (len(sup_notices), len(sup_windows)))
    if alerts != out["expected_alerts"]:
        out["problems"].append("alerts differ from the model")
    out["kinds"] = ",".join(out["kinds"])
    print(json.dumps(out))


if __name__ == "__main__":
    main()
