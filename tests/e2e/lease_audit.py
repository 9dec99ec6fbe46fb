#!/usr/bin/env python3
# SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
"""Audit the protected resource's write log against the monitor's grants
(tests/e2e/85-leases.sh), independently of the resource's own rule.

  lease_audit.py --db vigil.db [--db ...] --lease 1 --writes resource.jsonl --offset NS

Several --db: the grants of several monitors of one replicated lease
(tests/e2e/88-lease-failover.sh), merged in the order they were made.

--offset is CLOCK_REALTIME minus CLOCK_BOOTTIME in ns: the grants' wall_ns
(lease_log) become comparable with the writers' decided_ns (CLOCK_BOOTTIME).

Prints one JSON object:
  grants            grants in lease_log
  tokens_rising     every grant's token is above the previous grant's
  writes            writes in the log (accepted or not)
  wrong_holder      writes under a token whose grant went to another agent
  unknown_token     writes under a token no grant carries
  after_next_grant  writes decided at or after the grant of a higher token:
                    a former holder acting while another one may (must be 0)
  accepted_stale    accepted writes under a token below one accepted before
  min_margin_ms     the smallest gap between a write under token T and the
                    next grant (how early holders stop before the next one may act)
"""
import argparse
import json
import sqlite3
import sys


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--db", required=True, action="append")
    ap.add_argument("--lease", type=int, required=True)
    ap.add_argument("--writes", required=True)
    ap.add_argument("--offset", type=int, required=True)
    a = ap.parse_args()

    grants = []
    for path in a.db:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        grants += db.execute(
            "SELECT token, holder, wall_ns FROM lease_log WHERE lease_id = ? AND event = 'granted' "
            "ORDER BY id", (a.lease,)).fetchall()
    if len(a.db) > 1:
        grants.sort(key=lambda g: g[2])
    rising = all(grants[i][0] > grants[i - 1][0] for i in range(1, len(grants)))
    holder_of = {t: h for t, h, _ in grants}
    # Grant times on the writers' clock; the next grant above each token.
    granted_at = {t: w - a.offset for t, _, w in grants}
    tokens = sorted(granted_at)

    def next_grant(t):
        later = [granted_at[u] for u in tokens if u > t]
        return min(later) if later else None

    nxt = {t: next_grant(t) for t in tokens}
    writes = wrong = unknown = after = acc_stale = 0
    top = 0
    min_margin = None
    with open(a.writes) as f:
        for line in f:
            w = json.loads(line)
            writes += 1
            t = w["token"]
            if t not in holder_of:
                unknown += 1
                continue
            if holder_of[t] != w["agent_id"]:
                wrong += 1
            n = nxt.get(t)
            if n is not None:
                margin = n - w["decided_ns"]
                if margin <= 0:
                    after += 1
                if min_margin is None or margin < min_margin:
                    min_margin = margin
            if w["accepted"]:
                if t < top:
                    acc_stale += 1
                top = max(top, t)
    print(json.dumps({
        "grants": len(grants), "tokens_rising": rising, "writes": writes,
        "wrong_holder": wrong, "unknown_token": unknown, "after_next_grant": after,
        "accepted_stale": acc_stale,
        "min_margin_ms": None if min_margin is None else round(min_margin / 1e6, 3),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
