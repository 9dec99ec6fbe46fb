# SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
"""vigil-agent: beat to a vigil monitor from the command line.

    vigil-agent --id 7 --target 198.18.0.1 --keys agent.keys --interval-ms 100
    vigil-agent --id 2 --target 198.18.0.1 --key HEX --lease 1 --json

With --json it prints one JSON line per change of the lease or of the
announced interval, and one with the counters when it stops. SIGTERM and
Ctrl-C stop it with a LEAVING beat (no alarm; a held lease is handed over);
SIGUSR1 announces DRAINING (hands a held lease over, keeps beating), SIGUSR2
announces OK again.
"""
import argparse
import json
import signal
import sys
import threading

from .agent import Agent, LeaseView, read_key_file
from .wire import DEFAULT_PORT, LeaseState, Status


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        # One line naming the problem, exit status 2, as every vigil command.
        sys.stderr.write("vigil-agent: %s (see --help)\n" % message)
        sys.exit(2)


def _uint(lo, hi):
    def parse(s):
        try:
            v = int(s, 10)
        except ValueError:
            raise argparse.ArgumentTypeError("%r is not a whole number" % s) from None
        if not lo <= v <= hi:
            raise argparse.ArgumentTypeError("%s is out of range %d..%d" % (s, lo, hi))
        return v
    return parse


def _min_max(s):
    try:
        lo, hi = (int(x, 10) for x in s.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError("%r is not MIN,MAX in ms" % s) from None
    if not 0 < lo <= hi <= 3_600_000:
        raise argparse.ArgumentTypeError("%r: need 0 < MIN <= MAX <= 3600000" % s)
    return lo, hi


def _parser():
    p = _Parser(prog="vigil-agent", description=__doc__.split("\n\n")[0],
                formatter_class=argparse.RawDescriptionHelpFormatter,
                epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    p.add_argument("--id", type=_uint(1, 2**64 - 1), required=True, help="the agent's id")
    p.add_argument("--target", required=True, help="the monitor's address (IPv4 or IPv6)")
    p.add_argument("--port", type=_uint(1, 65535), default=DEFAULT_PORT,
                   help="the monitor's beat port (default %(default)s)")
    keys = p.add_mutually_exclusive_group()
    keys.add_argument("--keys", metavar="FILE", help="key file (vigil key gen); its line for --id")
    keys.add_argument("--key", metavar="HEX", help="the key itself, 32 hex digits")
    p.add_argument("--key-id", type=_uint(0, 1), default=0, help="which of the agent's keys (0|1)")
    p.add_argument("--interval-ms", type=_uint(1, 3_600_000), default=1000,
                   help="beat interval (default %(default)s)")
    p.add_argument("--max-interval-ms", type=_uint(0, 3_600_000), default=0,
                   help="follow the monitor's advice (storm control) up to this interval")
    p.add_argument("--adaptive", type=_min_max, metavar="MIN,MAX",
                   help="adapt the interval to the queue depth between MIN and MAX ms")
    p.add_argument("--queue-depth", type=_uint(0, 65535), default=0,
                   help="backlog reported in the beats")
    p.add_argument("--lease", type=_uint(0, 2**32 - 1), default=0,
                   help="lease id to hold when granted (needs the group's ack line)")
    p.add_argument("--status", choices=[s.name.lower() for s in Status], default="ok",
                   help="status announced at start")
    p.add_argument("--incarnation", type=_uint(0, 2**32 - 1),
                   help="default: the wall clock in seconds")
    p.add_argument("--count", type=_uint(0, 2**63), default=0,
                   help="stop after this many beats (0: run until stopped)")
    p.add_argument("--drift-ppm", type=_uint(1, 1_000_000), default=1000,
                   help="clock rate bound of the lease safety rule (default %(default)s)")
    p.add_argument("--json", action="store_true",
                   help="print lease and cadence changes, then the counters, as JSON lines")
    p.add_argument("--allow-unsigned-acks", action="store_true",
                   help="accept unsigned acknowledgements (monitors run with --no-auth only)")
    p.add_argument("--no-leave", action="store_true",
                   help="do not send a LEAVING beat when stopped")
    return p


def _record(agent_id: int, event: str, v: LeaseView) -> dict:
    return {
        "agent_id": agent_id, "lease_id": v.lease_id, "event": event, "holder": v.holder,
        "token": v.token, "deadline_ns": v.deadline_ns, "reason": v.lost_reason,
        "monitor_holder": v.monitor_holder, "monitor_token": v.monitor_token,
        "monitor_state": LeaseState(v.monitor_state).name.lower()
        if v.monitor_state in tuple(LeaseState) else v.monitor_state,
        "remaining_ms": v.remaining_ms, "interval_ms": v.interval_ms, "now_ns": v.now_ns,
        "beats_sent": v.beats_sent, "acks_ok": v.acks_ok, "acks_rejected": v.acks_rejected,
        "acks_stale": v.acks_stale, "send_errors": v.send_errors,
    }


def main(argv=None) -> int:
    o = _parser().parse_args(argv)
    key = None
    try:
        if o.keys:
            key = read_key_file(o.keys, o.id, o.key_id)
        elif o.key:
            key = o.key
        out_lock = threading.Lock()

        def emit(rec):
            with out_lock:
                print(json.dumps(rec), flush=True)

        def changed(a, what, view):
            if o.json:
                emit(_record(a.agent_id, what, view))

        adaptive = o.adaptive is not None
        agent = Agent(o.id, o.target, port=o.port, key=key, key_id=o.key_id,
                      interval_ms=o.adaptive[0] if adaptive else o.interval_ms,
                      max_interval_ms=o.adaptive[1] if adaptive else o.max_interval_ms,
                      adaptive=adaptive, lease_id=o.lease, drift_ppm=o.drift_ppm,
                      status=Status[o.status.upper()], queue_depth=o.queue_depth,
                      incarnation=o.incarnation, max_beats=o.count,
                      allow_unsigned_acks=o.allow_unsigned_acks, on_change=changed)
    except (OSError, ValueError, LookupError) as e:
        sys.stderr.write("vigil-agent: %s\n" % e)
        return 1 if isinstance(e, (OSError, LookupError)) else 2

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGUSR1, lambda *_: agent.set_status(Status.DRAINING))
    signal.signal(signal.SIGUSR2, lambda *_: agent.set_status(Status.OK))
    agent.start()
    while not stop.is_set() and not agent.wait(0.05):
        pass
    ended_by_count = not stop.is_set()
    agent.stop(leave=not o.no_leave and not ended_by_count)
    if o.json:
        emit(_record(o.id, "stopped", agent.lease()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
