#!/usr/bin/env python3
# SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
"""Checks on the event log for tests/e2e/80-crash.sh. Each subcommand prints
one JSON document; the test asserts on its fields with jq.

  verify DB [JSONL]      sequence, per-agent order, duplicates, export, timing
  rows DB                every row parses: known kind and states, sane fields
  seqs DB [rw]           the event_seqs in the log (one JSON list); rw for a
                         copy of a crashed log (recovery writes its -shm)
  upto DB N              the latest instance's events with event_seq <= N:
                         how many, the highest; and the kinds of those above N
  wal-truncate WAL CUT   cut CUT bytes off the last committed frame of a WAL
                         (and drop whatever follows it)

The database is read with Python's sqlite3 module (read-only URI), the same
library the daemon links.
"""
import json
import sqlite3
import struct
import sys

STATES = {"free", "new", "alive", "suspect", "dead", "left"}
KINDS = {"up", "suspect", "dead", "recovered", "restart", "left", "rejected"}
# The monitor's own health events: no agent, `state` names the part.
MONITOR_KINDS = {"monitor_behind", "monitor_caught_up"}
PARTS = {"receive_queue", "sweeper"}
# kind -> (allowed previous states, state after), None: the state stays.
EDGES = {
    "up": ({"new", "left"}, "alive"),
    "suspect": ({"new", "alive"}, "suspect"),
    "dead": ({"suspect"}, "dead"),
    "recovered": ({"suspect", "dead"}, "alive"),
    "restart": (STATES - {"free"}, None),
    "left": (STATES - {"free", "left"}, "left"),
}
U64 = (1 << 64) - 1


def connect(path, rw=False):
    if rw:  # a copy of a crashed log: recovery needs to write its -shm
        return sqlite3.connect(path)
    return sqlite3.connect("file:%s?mode=ro" % path, uri=True)


def rows_of(path):
    db = connect(path)
    db.row_factory = sqlite3.Row
    rows = [dict(r) for r in db.execute("SELECT * FROM events ORDER BY instance_id, event_seq")]
    db.close()
    return rows


def span(r):
    """The event_seqs a row covers: a row of rejections covers event_seq ..
    event_seq_last."""
    return range(r["event_seq"], (r.get("event_seq_last") or r["event_seq"]) + 1)


def verify(db_path, jsonl_path=None):
    rows = rows_of(db_path)
    out = {"rows": len(rows)}
    insts = sorted({r["instance_id"] for r in rows})
    out["instances"] = ["%016x" % (i & U64) for i in insts]
    inst = insts[-1] if insts else None
    cur = [r for r in rows if r["instance_id"] == inst]
    seqs = [s for r in cur for s in span(r)]
    out["instance_rows"] = len(cur)
    out["instance_events"] = len(seqs)
    out["min_seq"] = min(seqs) if seqs else 0
    out["max_seq"] = max(seqs) if seqs else 0
    out["duplicate_seqs"] = len(seqs) - len(set(seqs))
    out["missing_seqs"] = sorted(set(range(1, out["max_seq"] + 1)) - set(seqs))[:20]
    out["kinds"] = {}
    for r in cur:
        out["kinds"][r["kind"]] = out["kinds"].get(r["kind"], 0) + len(span(r))

    # Per agent, in event_seq order: every event starts from the state the
    # previous one left, and its kind is an edge that exists.
    violations = []
    per_agent = {}
    state = {}
    for r in cur:  # already ordered by event_seq
        if r["kind"] == "rejected" or r["kind"] in MONITOR_KINDS:
            continue
        a = r["agent_id"]
        pa = per_agent.setdefault(a, {"events": 0, "dead": 0, "suspect": 0, "recovered": 0,
                                      "restart": 0, "up": 0, "left": 0, "reconciled": 0})
        pa["events"] += 1
        pa[r["kind"]] = pa.get(r["kind"], 0) + 1
        pa["reconciled"] += r["reconciled"]
        before = state.get(a, "new")
        why = None
        if r["prev_state"] != before:
            why = "prev_state %s but the agent was %s" % (r["prev_state"], before)
        edge = EDGES.get(r["kind"])
        if edge is None:
            why = why or "unknown kind %s" % r["kind"]
        else:
            prevs, after = edge
            if r["prev_state"] not in prevs:
                why = why or "%s from %s" % (r["kind"], r["prev_state"])
            elif after is None and r["state"] != r["prev_state"]:
                why = why or "%s changed the state %s -> %s" % (r["kind"], r["prev_state"],
                                                                 r["state"])
            elif after is not None and r["state"] != after:
                why = why or "%s into %s" % (r["kind"], r["state"])
        if why:
            violations.append({"event_seq": r["event_seq"], "agent_id": a, "kind": r["kind"],
                               "prev_state": r["prev_state"], "state": r["state"],
                               "reconciled": r["reconciled"], "why": why})
        state[a] = r["state"]
    out["agents"] = {str(k): v for k, v in sorted(per_agent.items())}
    out["final_states"] = {str(k): v for k, v in sorted(state.items())}
    out["order_violations"] = len(violations)
    out["violations"] = violations[:10]

    # Recorded well after detection: the daemon was down (or starting) then.
    lags = [(r["recorded_wall_ns"] - r["detected_wall_ns"]) / 1e6 for r in cur]
    late = [(l, r) for l, r in zip(lags, cur) if l > 50]
    out["late_50ms"] = len(late)
    out["late_reconciled"] = sum(r["reconciled"] for _, r in late)
    out["max_lag_ms"] = round(max(lags), 1) if lags else 0
    out["reconciled"] = sum(r["reconciled"] for r in cur)
    out["reconciled_seqs"] = [r["event_seq"] for r in cur if r["reconciled"]][:20]
    out["reconciled_rows"] = [
        "%d agent %d %s %s->%s recorded %.1f ms after detection" % (
            r["event_seq"], r["agent_id"], r["kind"], r["prev_state"], r["state"],
            (r["recorded_wall_ns"] - r["detected_wall_ns"]) / 1e6)
        for r in cur if r["reconciled"]][:5]

    if jsonl_path:
        j = {"lines": 0, "torn": 0, "other_instance": 0, "duplicates": 0}
        seen = {}
        torn_seqs = []
        with open(jsonl_path, "rb") as f:
            for raw in f:
                j["lines"] += 1
                try:
                    ev = json.loads(raw)
                except ValueError:
                    j["torn"] += 1
                    head = raw[:40].decode("utf-8", "replace")
                    if head.startswith('{"event_seq":'):
                        try:
                            torn_seqs.append(int(head[13:].split(",")[0]))
                        except ValueError:
                            pass
                    continue
                if inst is None or int(ev["instance"], 16) != inst & U64:
                    j["other_instance"] += 1
                    continue
                for s in span(ev):
                    if s in seen:
                        j["duplicates"] += 1
                    seen[s] = ev
        # A row of rejections still open is exported when it closes.
        dbset = {s for r in cur if not r.get("open") for s in span(r)}
        jset = set(seen)
        j["missing"] = sorted(dbset - jset)[:20]
        j["missing_count"] = len(dbset - jset)
        j["extra"] = sorted(jset - dbset)[:20]
        j["extra_count"] = len(jset - dbset)
        # An event present only as a torn line: the export lost it.
        j["only_torn"] = sorted(set(torn_seqs) & (dbset - jset))
        j["same_set"] = dbset == jset
        out["jsonl"] = j
    return out


def rows_check(db_path):
    bad = []
    n = 0
    db = connect(db_path)
    for r in db.execute("SELECT instance_id, event_seq, agent_id, kind, state, prev_state,"
                        " detected_wall_ns, recorded_wall_ns, reconciled, typeof(event_seq),"
                        " typeof(agent_id) FROM events"):
        n += 1
        inst, seq, agent, kind, st, prev, det, rec, recon, t1, t2 = r
        monitor = kind in MONITOR_KINDS and st in PARTS and prev == "" and agent == 0
        ok = (t1 == "integer" and t2 == "integer" and seq > 0 and
              (monitor or (kind in KINDS and st in STATES and prev in STATES and
                           (kind == "rejected" or agent > 0))) and
              isinstance(det, int) and det > 0 and isinstance(rec, int) and rec > 0 and
              recon in (0, 1))
        if not ok:
            bad.append([str(x) for x in r])
    db.close()
    return {"rows": n, "bad": len(bad), "examples": bad[:5]}


def seqs(db_path, rw=False):
    db = connect(db_path, rw)
    s = [q for r in db.execute("SELECT event_seq, coalesce(event_seq_last, event_seq) FROM events"
                               " ORDER BY event_seq") for q in range(r[0], r[1] + 1)]
    db.close()
    return s


def wal_checksum(data, be, s0, s1):
    fmt = (">" if be else "<") + "%dI" % (len(data) // 4)
    w = struct.unpack(fmt, data)
    for k in range(0, len(w), 2):
        s0 = (s0 + w[k] + s1) & 0xFFFFFFFF
        s1 = (s1 + w[k + 1] + s0) & 0xFFFFFFFF
    return s0, s1


def wal_truncate(path, cut):
    """Find the committed frames the way SQLite's recovery does (salts and
    the cumulative checksum), then cut the last committed frame short."""
    with open(path, "rb") as f:
        buf = f.read()
    out = {"size_before": len(buf)}
    if len(buf) < 32:
        out["error"] = "no WAL header"
        return out
    magic, _ver, psz, _ckpt, salt1, salt2, c1, c2 = struct.unpack(">8I", buf[:32])
    be = magic & 1
    if magic & ~1 != 0x377F0682:
        out["error"] = "bad magic %x" % magic
        return out
    s0, s1 = wal_checksum(buf[:24], be, 0, 0)
    if (s0, s1) != (c1, c2):
        out["error"] = "header checksum mismatch"
        return out
    fsz = 24 + psz
    off, frames, last_commit_end, commits = 32, 0, 0, 0
    while off + fsz <= len(buf):
        hdr = buf[off:off + 24]
        pgno, commit, fs1, fs2, fc1, fc2 = struct.unpack(">6I", hdr)
        if (fs1, fs2) != (salt1, salt2) or pgno == 0:
            break
        s0, s1 = wal_checksum(hdr[:8], be, s0, s1)
        s0, s1 = wal_checksum(buf[off + 24:off + fsz], be, s0, s1)
        if (s0, s1) != (fc1, fc2):
            break
        frames += 1
        off += fsz
        if commit:
            commits += 1
            last_commit_end = off
    out.update({"page_size": psz, "valid_frames": frames, "commits": commits,
                "stale_bytes": len(buf) - off})
    if not last_commit_end:
        out["error"] = "no committed frame"
        return out
    new_size = last_commit_end - cut
    with open(path, "r+b") as f:
        f.truncate(new_size)
    out["size_after"] = new_size
    return out


def upto(db_path, n):
    rows = rows_of(db_path)
    insts = sorted({r["instance_id"] for r in rows})
    cur = [r for r in rows if insts and r["instance_id"] == insts[-1]]
    seqs = [s for r in cur for s in span(r)]
    below = [s for s in seqs if s <= n]
    return {"events": len(below), "distinct": len(set(below)), "max": max(below, default=0),
            "above": [r["kind"] for r in cur if r["event_seq"] > n]}


def main():
    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    cmd = sys.argv[1]
    if cmd == "verify":
        res = verify(sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else None)
    elif cmd == "rows":
        res = rows_check(sys.argv[2])
    elif cmd == "seqs":
        res = seqs(sys.argv[2], len(sys.argv) > 3 and sys.argv[3] == "rw")
    elif cmd == "upto":
        res = upto(sys.argv[2], int(sys.argv[3]))
    elif cmd == "wal-truncate":
        res = wal_truncate(sys.argv[2], int(sys.argv[3]))
    else:
        print(__doc__, file=sys.stderr)
        return 2
    json.dump(res, sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
