# SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
"""The agent against a scripted monitor: a UDP socket on 127.0.0.1 that reads
the agent's beats and answers with acknowledgements of its choosing (right,
forged, reordered, for beats never sent). The rules are those of the C
library's tests (tests/unit/test_agent.c) and docs/leases.md: the lease
deadline is the acknowledged beat's send time + remaining x (1 - drift);
only verified acknowledgements count; they apply in sequence order; another
holder, a higher token or a state other than HELD end the holding at once;
DRAINING ends it before set_status returns; a grant held before the process
started is handed back; LEAVING on stop. No root needed."""
import os
import socket
import subprocess
import sys
import threading
import time
import unittest

from vigil_agent import (Ack, Agent, LeaseState, Status, decode_beat, encode_ack, encode_beat,
                         now_ns, parse_key)

KEY = parse_key("85adbddb3a02173f04ea149a1c420577")
OTHER_KEY = parse_key("000102030405060708090a0b0c0d0e0f")
MS = 1_000_000


class Monitor:
    """The monitor's side of the conversation, scripted by the test."""

    def __init__(self, host="127.0.0.1"):
        self.host = host
        self.sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET,
                                  socket.SOCK_DGRAM)
        self.sock.bind((host, 0))
        self.port = self.sock.getsockname()[1]

    def close(self):
        self.sock.close()

    def beat(self, timeout=2.0):
        """The next beat: (Beat, raw bytes, sender, arrival now_ns())."""
        self.sock.settimeout(timeout)
        raw, src = self.sock.recvfrom(512)
        return decode_beat(raw), raw, src, now_ns()

    def answer(self, beat, src, key=KEY, raw=None, from_sock=None, **fields):
        ack = Ack(flags=0, lease_state=fields.get("state", LeaseState.FREE),
                  key_id=fields.get("key_id", beat.key_id),
                  recommend_interval_ms=fields.get("recommend", 0),
                  agent_id=fields.get("agent_id", beat.agent_id), seq=fields.get("seq", beat.seq),
                  token=fields.get("token", 0), holder=fields.get("holder", 0),
                  lease_id=fields.get("lease_id", beat.lease_id),
                  remaining_ms=fields.get("remaining", 0), tag=0)
        (from_sock or self.sock).sendto(raw if raw is not None else encode_ack(ack, key), src)

    def grant(self, beat, src, token, remaining=200, holder=None):
        self.answer(beat, src, state=LeaseState.HELD, token=token,
                    holder=beat.agent_id if holder is None else holder, remaining=remaining)


def wait_until(cond, timeout=2.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.002)
    return cond()


class AgentTest(unittest.TestCase):
    def setUp(self):
        self.mon = Monitor()
        self.changes = []
        self.agents = []

    def tearDown(self):
        for a in self.agents:
            a.stop(leave=False)
        self.mon.close()

    def agent(self, **kw):
        kw.setdefault("key", KEY)
        kw.setdefault("interval_ms", 40)
        a = Agent(7, self.mon.host, port=self.mon.port,
                  on_change=lambda ag, what, v: self.changes.append((what, v)), **kw)
        self.agents.append(a)
        return a.start()

    def holding(self, lease_id=1, token=3, **kw):
        """An agent holding token `token` of lease `lease_id`: a first answer
        that is not a grant (a grant in the very first answer is taken for
        an earlier process's and handed back), then the grant."""
        a = self.agent(lease_id=lease_id, **kw)
        b, _, src, _ = self.mon.beat()
        self.mon.answer(b, src)
        b, _, src, t = self.mon.beat()
        self.mon.grant(b, src, token)
        self.assertTrue(wait_until(lambda: a.holds() == token), "the grant is taken")
        return a, b, src, t

    # ------------------------------------------------------------ beats

    def test_beats_are_signed_sequenced_and_on_time(self):
        a = self.agent(lease_id=4, queue_depth=9)
        beats = [self.mon.beat() for _ in range(6)]
        for i, (b, raw, _, _) in enumerate(beats):
            self.assertEqual(encode_beat(b._replace(flags=0), KEY), raw, "beat %d verifies" % i)
            self.assertEqual((b.agent_id, b.interval_ms, b.status, b.lease_id, b.queue_depth),
                             (7, 40, Status.OK, 4, 9))
        seqs = [b.seq for b, *_ in beats]
        self.assertEqual(seqs, list(range(seqs[0], seqs[0] + 6)))
        self.assertEqual(len({b.incarnation for b, *_ in beats}), 1)
        self.assertAlmostEqual(beats[0][0].incarnation, time.time(), delta=5)
        self.assertAlmostEqual(seqs[0] / 1e6, time.time(), delta=5)  # wall-clock microseconds
        gaps = [(y[3] - x[3]) / MS for x, y in zip(beats, beats[1:])]
        self.assertTrue(all(g < 40 + 30 for g in gaps), "every beat within its promise: %s" % gaps)
        self.assertGreaterEqual(a.lease().beats_sent, 6)

    def test_ipv6(self):
        self.mon.close()
        try:
            self.mon = Monitor("::1")
        except OSError as e:
            self.skipTest("no IPv6 loopback here: %s" % e)
        a = self.agent(lease_id=1)
        b, _, src, _ = self.mon.beat()
        self.mon.answer(b, src)
        b, _, src, _ = self.mon.beat()
        self.mon.grant(b, src, 5)
        self.assertTrue(wait_until(lambda: a.holds() == 5))

    def test_stop_sends_leaving(self):
        a = self.agent()
        self.mon.beat()
        self.agents.remove(a)
        a.stop(leave=True)
        last = None
        try:
            while True:
                last, *_ = self.mon.beat(timeout=0.3)
        except socket.timeout:
            pass
        self.assertEqual(last.status, Status.LEAVING)

    def test_max_beats(self):
        a = self.agent(max_beats=3, interval_ms=10)
        self.assertTrue(a.wait(2))
        self.assertEqual(a.lease().beats_sent, 3)

    def test_bad_configuration_is_refused(self):
        for kw in ({"agent_id": 0}, {"key_id": 2}, {"interval_ms": 0}, {"status": 4},
                   {"key": "abc"}, {"queue_low": 64, "queue_high": 64}, {"port": 0}):
            args = {"agent_id": 1, "monitor": "127.0.0.1"}
            args.update(kw)
            with self.assertRaises(ValueError, msg=str(kw)):
                Agent(**args)

    # ------------------------------------------------------ the lease

    def test_grant_deadline_is_send_time_plus_remaining_less_drift(self):
        a, b, src, t_arrival = self.holding(token=3, drift_ppm=1000)
        v = a.lease()
        self.assertEqual((v.holder, v.token, v.monitor_state, v.monitor_holder), (True, 3, 1, 7))
        self.assertEqual([w for w, _ in self.changes if w != "cadence"], ["gained"])
        # The beat left before it arrived here, at most a few ms before.
        self.assertLessEqual(v.deadline_ns, t_arrival + 199_800_000)
        self.assertGreater(v.deadline_ns, t_arrival + 199_800_000 - 30 * MS)
        # No further answer: the holding ends at the deadline, not later.
        self.assertTrue(wait_until(lambda: a.holds() is None, 1.0))
        self.assertGreaterEqual(now_ns(), v.deadline_ns)
        self.assertTrue(wait_until(lambda: any(w == "lost" for w, _ in self.changes), 0.5))
        lost = [x for w, x in self.changes if w == "lost"][0]
        self.assertEqual(lost.lost_reason, "deadline")
        self.assertLess(lost.now_ns - v.deadline_ns, 50 * MS, "the loss is reported on time")

    def test_later_answers_only_extend_the_deadline(self):
        a, *_ = self.holding(token=3)
        d0 = a.lease().deadline_ns
        b, _, src, _ = self.mon.beat()
        self.mon.grant(b, src, 3, remaining=100)  # a shorter bound: not earlier
        self.assertTrue(wait_until(lambda: a.lease().acks_ok >= 3))
        self.assertEqual(a.lease().deadline_ns, d0)
        b, _, src, _ = self.mon.beat()
        self.mon.grant(b, src, 3, remaining=200)
        self.assertTrue(wait_until(lambda: a.lease().deadline_ns > d0))

    def test_acknowledgements_that_do_not_verify_are_refused(self):
        a = self.agent(lease_id=1)
        b, _, src, _ = self.mon.beat()
        self.mon.answer(b, src)  # the first answer: nothing held
        self.assertTrue(wait_until(lambda: a.lease().acks_ok == 1))
        b, _, src, _ = self.mon.beat()
        good = encode_ack(Ack(0, LeaseState.HELD, 0, 0, 7, b.seq, 3, 7, 1, 200, 0), KEY)
        forged = [
            encode_ack(Ack(0, LeaseState.HELD, 0, 0, 7, b.seq, 3, 7, 1, 200, 0), OTHER_KEY),
            encode_ack(Ack(0, LeaseState.HELD, 0, 0, 7, b.seq, 3, 7, 1, 200, 0)),  # unsigned
            good[:56] + b"\x01" + good[57:],                      # mac[8..15] not zero
            good[:20] + bytes([good[20] ^ 1]) + good[21:],        # a changed byte
            encode_ack(Ack(0, LeaseState.HELD, 1, 0, 7, b.seq, 3, 7, 1, 200, 0), KEY),  # key id 1
            encode_ack(Ack(0, LeaseState.HELD, 0, 0, 8, b.seq, 3, 8, 1, 200, 0), KEY),  # agent 8
            encode_ack(Ack(0, LeaseState.HELD, 0, 0, 7, b.seq, 3, 7, 2, 200, 0), KEY),  # lease 2
            encode_ack(Ack(0, LeaseState.HELD, 0, 0, 7, b.seq + 1000, 3, 7, 1, 200, 0), KEY),
            good[:63],
            good[:3] + b"\x01" + good[4:],                        # not an ack (no 0x80)
        ]
        for raw in forged:
            self.mon.answer(b, src, raw=raw)
        # From another port of the monitor's address: not from the monitor at all.
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as other:
            other.bind(("127.0.0.1", 0))
            self.mon.answer(b, src, raw=good, from_sock=other)
        self.assertTrue(wait_until(lambda: a.lease().acks_rejected == len(forged)))
        time.sleep(0.05)
        v = a.lease()
        self.assertEqual((v.acks_rejected, v.acks_ok, v.holder), (len(forged), 1, False))
        self.mon.answer(b, src, raw=good)
        self.assertTrue(wait_until(lambda: a.holds() == 3))

    def test_another_holder_a_newer_token_or_not_held_end_it_at_once(self):
        a, *_ = self.holding(token=3)
        b, _, src, _ = self.mon.beat()
        self.mon.grant(b, src, 4)                     # a new grant, still ours
        self.assertTrue(wait_until(lambda: a.holds() == 4))
        b, _, src, _ = self.mon.beat()
        self.mon.grant(b, src, 5, holder=9)           # someone else's
        self.assertTrue(wait_until(lambda: a.holds() is None))
        self.assertEqual(a.lease().lost_reason, "other_holder")
        b, _, src, _ = self.mon.beat()
        self.mon.grant(b, src, 4)                     # an older grant: never again
        b, _, src, _ = self.mon.beat()
        self.assertIsNone(a.holds())
        self.mon.grant(b, src, 6)
        self.assertTrue(wait_until(lambda: a.holds() == 6))
        b, _, src, _ = self.mon.beat()
        self.mon.answer(b, src, state=LeaseState.EXPIRED, token=6, holder=7)
        self.assertTrue(wait_until(lambda: a.holds() is None))
        self.assertEqual(a.lease().lost_reason, "not_held")
        whats = [w for w, _ in self.changes if w != "cadence"]
        self.assertEqual(whats, ["gained", "token", "lost", "gained", "lost"])

    def test_reordered_answers_are_ignored(self):
        a = self.agent(lease_id=1)
        b1, _, src, _ = self.mon.beat()
        self.mon.answer(b1, src)
        b2, _, src, _ = self.mon.beat()
        b3, _, src, _ = self.mon.beat()
        self.mon.grant(b3, src, 3)
        self.assertTrue(wait_until(lambda: a.holds() == 3))
        self.mon.answer(b2, src, state=LeaseState.RELEASED, token=3, holder=7)  # older
        self.assertTrue(wait_until(lambda: a.lease().acks_stale == 1))
        self.assertEqual(a.holds(), 3)

    def test_draining_hands_over_before_set_status_returns(self):
        a, b_old, src_old, _ = self.holding(token=3)
        a.set_status(Status.DRAINING)
        self.assertIsNone(a.holds())
        self.assertEqual(a.lease().lost_reason, "released")
        b, _, src, _ = self.mon.beat()
        self.assertEqual(b.status, Status.DRAINING)
        self.mon.grant(b_old, src_old, 3)  # an answer to a beat sent before: no
        self.mon.grant(b, src, 3)          # the monitor has not seen the release yet: no
        time.sleep(0.1)
        self.assertIsNone(a.holds())
        a.set_status(Status.OK)
        b, _, src, _ = self.mon.beat()
        while b.status != Status.OK:
            b, _, src, _ = self.mon.beat()
        self.mon.grant(b, src, 4)          # a new grant after the hand-over
        self.assertTrue(wait_until(lambda: a.holds() == 4))

    def test_a_grant_held_before_start_is_handed_back(self):
        a = self.agent(lease_id=1)
        b, _, src, _ = self.mon.beat()
        self.mon.grant(b, src, 9)   # the first answer names us: an earlier process's grant
        b, _, src, _ = self.mon.beat()
        self.assertEqual(b.status, Status.DRAINING, "handed back at once")
        self.assertIsNone(a.holds())
        b, _, src, _ = self.mon.beat()
        self.assertEqual(b.status, Status.OK)
        self.mon.grant(b, src, 10)
        self.assertTrue(wait_until(lambda: a.holds() == 10))

    def test_a_holder_renews_three_times_per_remaining_lease(self):
        a, *_ = self.holding(token=3, interval_ms=20, max_interval_ms=1000)
        b, _, src, _ = self.mon.beat()
        # The monitor advises 500 ms, but 90 ms of the lease are left: 30.
        self.mon.answer(b, src, state=LeaseState.HELD, token=3, holder=7, remaining=90,
                        recommend=500)
        self.assertTrue(wait_until(lambda: a.lease().remaining_ms == 90))
        b, *_ = self.mon.beat()
        self.assertEqual(b.interval_ms, 30)

    # ------------------------------------------------------ the cadence

    def test_the_monitors_advice_is_announced_one_beat_ahead(self):
        a = self.agent(interval_ms=20, max_interval_ms=400)
        b, _, src, _ = self.mon.beat()
        self.mon.answer(b, src, recommend=200)
        seen = [self.mon.beat() for _ in range(3)]
        # The beat due under the 20 ms promise comes on time and announces 200.
        ivs = [x[0].interval_ms for x in seen]
        self.assertIn(200, ivs)
        k = ivs.index(200)
        t_prev = seen[k - 1][3] if k else None
        if t_prev is not None:
            self.assertLess((seen[k][3] - t_prev) / MS, 20 + 30)
        if k + 1 < len(seen):
            self.assertGreater((seen[k + 1][3] - seen[k][3]) / MS, 150)
        self.assertTrue(wait_until(lambda: any(w == "cadence" for w, _ in self.changes)))


class CommandLine(unittest.TestCase):
    def run_cli(self, *args):
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
        return subprocess.run([sys.executable, "-m", "vigil_agent", *args], capture_output=True,
                              text=True, timeout=20, env=env)

    def test_bad_input_is_one_line_and_exit_2(self):
        for args in (["--id", "0", "--target", "127.0.0.1"],
                     ["--id", "1", "--target", "127.0.0.1", "--key", "xyz"],
                     ["--id", "1", "--target", "127.0.0.1", "--interval-ms", "0"],
                     ["--id", "1"],
                     ["--id", "1", "--target", "127.0.0.1", "--key", "0" * 32, "--keys", "f"]):
            r = self.run_cli(*args)
            self.assertEqual(r.returncode, 2, args)
            self.assertEqual(len(r.stderr.splitlines()), 1, r.stderr)
            self.assertTrue(r.stderr.startswith("vigil-agent: "), r.stderr)

    def test_missing_key_is_one_line_and_exit_1(self):
        r = self.run_cli("--id", "1", "--target", "127.0.0.1", "--keys", "/nonexistent/keys")
        self.assertEqual(r.returncode, 1)
        self.assertEqual(len(r.stderr.splitlines()), 1, r.stderr)

    def test_count_and_json(self):
        mon = Monitor()
        try:
            got = []
            t = threading.Thread(target=lambda: [got.append(mon.beat(5)) for _ in range(3)])
            t.start()
            r = self.run_cli("--id", "7", "--target", "127.0.0.1", "--port", str(mon.port),
                             "--key", KEY.hex(), "--interval-ms", "10", "--count", "3", "--json")
            t.join()
        finally:
            mon.close()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(len(got), 3)
        self.assertIn('"event": "stopped"', r.stdout.splitlines()[-1])
        self.assertIn('"beats_sent": 3', r.stdout)


if __name__ == "__main__":
    unittest.main()
