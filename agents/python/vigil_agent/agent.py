# SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
"""A vigil agent inside a Python program: beats, adaptive cadence, leases
with fencing tokens, verified acknowledgements (docs/leases.md).

Agent.start() runs the beat loop in a thread of its own, on one UDP socket
for beats and acknowledgements, with the same rules as the C agent library
(libagent/libagent.c):

SAFETY RULE. The agent holds its lease only while the newest verified
acknowledgement said holder == this agent, state HELD, with a token no lower
than any it has seen, and now < deadline, where

    deadline = (this agent's clock when it SENT the acknowledged beat)
               + remaining_ms of that acknowledgement x (1 - drift bound).

An acknowledgement naming another holder, a higher token or a state other
than HELD ends the holding at once. As long as the two clocks' rates differ
by less than the drift bound, the agent stops acting before the monitor can
grant the lease to anyone else. A write already under way when the deadline
passes is what the fencing token is for: present it with every write, and
have the resource refuse any token lower than the highest it has seen.

Times are CLOCK_BOOTTIME nanoseconds (now_ns()): monotonic, and still
counting while the machine is suspended, so a suspend only makes the agent
stop earlier.

Thread safety: every method may be called from any thread. Callbacks run on
the agent's thread with no lock held; they may call lease(), holds() and
set_*(), not stop().
"""
import ipaddress
import os
import select
import socket
import threading
import time
from dataclasses import dataclass
from typing import Callable, Optional

from .cadence import Cadence, CadenceConfig
from .wire import (DEFAULT_PORT, F_MAC, Beat, LeaseState, Status, ack_tag_ok, decode_ack,
                   encode_beat, parse_key)

__all__ = ["Agent", "LeaseView", "now_ns", "read_key_file", "DEFAULT_DRIFT_PPM"]

DEFAULT_INTERVAL_MS = 1000
DEFAULT_DRIFT_PPM = 1000  # 0.1 %: far above real quartz drift, above NTP's slew limit
MAX_INTERVAL_MS = 3_600_000
SENT_RING = 512           # beats remembered for matching acknowledgements
LINGER_MAX_NS = 250_000_000  # after the last of max_beats, wait this long for its ack
_NS_PER_MS = 1_000_000
_M64 = (1 << 64) - 1

# Why the agent stopped being the holder (LeaseView.lost_reason).
LOSS_NONE = "none"
LOSS_DEADLINE = "deadline"          # the safety rule's deadline passed without renewal
LOSS_OTHER_HOLDER = "other_holder"  # an acknowledgement named another holder
LOSS_NEWER_TOKEN = "newer_token"    # an acknowledgement carried a higher token
LOSS_NOT_HELD = "not_held"          # the monitor says expired, released or free
LOSS_RELEASED = "released"          # this agent went DRAINING/LEAVING or stopped


def now_ns() -> int:
    """The agent's clock: CLOCK_BOOTTIME in nanoseconds."""
    return time.clock_gettime_ns(time.CLOCK_BOOTTIME)


def read_key_file(path: str, agent_id: int, key_id: int = 0) -> bytes:
    """The agent's key from a key file (`vigil key gen`: "ID KEY-ID HEX" lines,
    '#' comments). LookupError when the file has no such key."""
    with open(path, encoding="ascii") as f:
        for n, line in enumerate(f, 1):
            words = line.split("#", 1)[0].split()
            if not words:
                continue
            if len(words) != 3:
                raise ValueError("%s:%d: expected 'AGENT-ID KEY-ID KEY', got %r"
                                 % (path, n, line.strip()))
            try:
                aid, kid = int(words[0]), int(words[1])
            except ValueError:
                raise ValueError("%s:%d: agent id and key id must be numbers" % (path, n)) from None
            if aid == agent_id and kid == key_id:
                return parse_key(words[2])
    raise LookupError("%s: no key %d for agent %d" % (path, key_id, agent_id))


@dataclass(frozen=True)
class LeaseView:
    """What the agent knows of its lease at now_ns (see Agent.lease())."""
    lease_id: int            # the configured lease; 0: the agent names none
    now_ns: int              # the now_ns() this view holds at
    holder: bool             # the holder at now_ns
    token: int               # holder: the fencing token to present with every
                             # action; otherwise the token held last (0: never)
    deadline_ns: int         # holder: stop acting before this now_ns(); else 0
    lost_reason: str         # why the last holding ended (LOSS_*)
    # The newest verified acknowledgement, as the monitor saw the lease:
    monitor_holder: int      # agent id holding it, 0 = none
    monitor_token: int       # highest token in any verified acknowledgement
    monitor_state: int       # LeaseState
    remaining_ms: int        # lease time left when the monitor answered
    last_ack_ns: int         # now_ns() of its arrival, 0 = none yet
    recommend_interval_ms: int  # the monitor's advice (0: none)
    interval_ms: int         # the interval the last beat announced (the promise in force)
    beats_sent: int
    acks_ok: int             # verified and applied
    acks_rejected: int       # failed verification, wrong agent or lease, unknown sequence
    acks_stale: int          # verified, but older than one already applied
    send_errors: int         # beats the socket refused (no route yet, ...)
    send_errno: int          # the last such error
    queue_depth: int
    cadence_level: int       # 0: interval_ms; each level doubles it
    cadence_changes: int     # how often the announced interval changed
    next_beat_ns: int        # now_ns() the next beat is due at


def _draining(status) -> bool:
    return status in (Status.DRAINING, Status.LEAVING)


def _resolve(monitor: str, port: int):
    """The monitor's socket address and the key its answers are matched by."""
    try:
        ip = ipaddress.ip_address(monitor)
        family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
        addr = (str(ip), port) if ip.version == 4 else (str(ip), port, 0, 0)
    except ValueError:
        try:
            family, _, _, _, addr = socket.getaddrinfo(monitor, port, type=socket.SOCK_DGRAM)[0]
        except socket.gaierror as e:
            raise ValueError("monitor %r: %s" % (monitor, e.strerror)) from None
    return family, addr, (ipaddress.ip_address(addr[0].split("%")[0]), port)


ChangeCallback = Callable[["Agent", str, LeaseView], None]


class Agent:
    """One agent beating to one monitor. Use as a context manager, or call
    start() and stop(). Keyword arguments as in the C library's
    struct vigil_agent_config (include/vigil/agent.h)."""

    def __init__(self, agent_id: int, monitor: str, *, port: int = DEFAULT_PORT,
                 key=None, key_id: int = 0, interval_ms: int = DEFAULT_INTERVAL_MS,
                 max_interval_ms: int = 0, adaptive: bool = False, queue_high: int = 0,
                 queue_low: int = 0, dwell_ms: int = 0, lease_id: int = 0,
                 drift_ppm: int = DEFAULT_DRIFT_PPM, status: int = Status.OK,
                 queue_depth: int = 0, incarnation: Optional[int] = None,
                 first_seq: Optional[int] = None, max_beats: int = 0,
                 allow_unsigned_acks: bool = False, inherit_grant: bool = False,
                 on_change: Optional[ChangeCallback] = None):
        def need(ok, what):
            if not ok:
                raise ValueError(what)

        need(isinstance(agent_id, int) and 0 < agent_id <= _M64,
             "agent_id must be 1..2^64-1, got %r" % (agent_id,))
        need(0 < port < 65536, "port must be 1..65535, got %r" % (port,))
        need(key_id in (0, 1), "key_id must be 0 or 1, got %r" % (key_id,))
        need(0 < interval_ms <= MAX_INTERVAL_MS,
             "interval_ms must be 1..%d, got %r" % (MAX_INTERVAL_MS, interval_ms))
        need(0 <= max_interval_ms <= MAX_INTERVAL_MS,
             "max_interval_ms must be 0..%d, got %r" % (MAX_INTERVAL_MS, max_interval_ms))
        need(0 <= queue_high < 65536 and 0 <= queue_low < 65536,
             "queue_high and queue_low must be 0..65535")
        need(not queue_high or queue_low < queue_high,
             "queue_low (%d) must be below queue_high (%d)" % (queue_low, queue_high))
        need(0 <= lease_id < 2**32, "lease_id must be 0..2^32-1, got %r" % (lease_id,))
        need(0 <= drift_ppm <= 1_000_000, "drift_ppm must be 0..1000000, got %r" % (drift_ppm,))
        need(status in tuple(Status), "status must be 0..3, got %r" % (status,))
        need(0 <= queue_depth < 65536, "queue_depth must be 0..65535, got %r" % (queue_depth,))
        need(incarnation is None or 0 <= incarnation < 2**32, "incarnation must be 0..2^32-1")
        need(first_seq is None or 0 <= first_seq <= _M64, "first_seq must be 0..2^64-1")
        self.agent_id = agent_id
        self.lease_id = lease_id
        self.key = parse_key(key) if key is not None else None
        self.key_id = key_id
        self.drift_ppm = drift_ppm or DEFAULT_DRIFT_PPM
        self.max_beats = max_beats
        self.allow_unsigned_acks = allow_unsigned_acks
        self.inherit_grant = inherit_grant
        self.on_change = on_change
        self._family, self._mon_addr, self._mon_key = _resolve(monitor, port)
        wall = time.time_ns()
        # Like `vigil beat`: the incarnation is the wall clock in seconds and
        # sequences start at it in microseconds, so a restart always moves
        # (incarnation, seq) forward (docs/wire-format.md).
        self._incarnation = (wall // 1_000_000_000) & 0xFFFFFFFF if incarnation is None else incarnation
        self._seq = wall // 1000 if first_seq is None else first_seq
        self._cad = Cadence(CadenceConfig(min_ms=interval_ms, max_ms=max_interval_ms,
                                          dwell_ms=dwell_ms, high=queue_high, low=queue_low,
                                          adaptive=adaptive))
        self._ring = [(0, 0)] * SENT_RING  # (seq, send time) of recent beats

        self._mu = threading.Lock()
        # ---- under _mu
        self._stopping = False
        self._status = Status(status)
        self._queue_depth = queue_depth
        self._beat_now = False
        self._auto_drain = False   # the next beat says DRAINING: hand back a grant we refuse
        self._holding = False      # an acknowledgement made us the holder ...
        self._token = 0            # ... of this grant ...
        self._deadline = 0         # ... until this (safety rule)
        self._last_token = 0
        self._lost_reason = LOSS_NONE
        self._max_token = 0        # highest token in any verified ack
        self._min_token = 0        # grants below this are never taken (released ones)
        self._last_ack_seq = -1    # acks are applied in sequence order only
        self._drain_seq = -1       # last beat that said DRAINING or LEAVING
        self._seen_ack = False
        self._mon_holder = self._mon_state = self._remaining_ms = 0
        self._recommend_ms = self._last_ack_ns = 0
        self._interval_ms = self._cad.cfg.min_ms
        self._beats = self._acks_ok = self._acks_rejected = self._acks_stale = 0
        self._send_errors = self._send_errno = 0
        # ---- agent thread only
        self._rep_holding = False
        self._rep_token = 0
        self._rep_interval = self._interval_ms

        self._sock = None
        self._wake_r = self._wake_w = -1
        self._thread = None
        self._done = threading.Event()

    # ------------------------------------------------------------ public

    def start(self) -> "Agent":
        """Open the socket and start beating (the first beat goes out at once)."""
        if self._thread is not None:
            raise RuntimeError("agent %d already started" % self.agent_id)
        # Not connect()ed: an agent started before its network is up keeps
        # trying; answers are filtered by their source instead.
        self._sock = socket.socket(self._family, socket.SOCK_DGRAM)
        self._sock.setblocking(False)
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._thread = threading.Thread(target=self._run, name="vigil-agent-%d" % self.agent_id,
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self, leave: bool = True):
        """Stop beating; with leave, send one LEAVING beat first, so the
        monitor records `left` instead of raising an alarm. Any lease is lost."""
        if self._thread is None:
            return
        if threading.current_thread() is self._thread:
            raise RuntimeError("Agent.stop() called from the agent's own callback")
        with self._mu:
            self._stopping = True
        self._wake()
        self._thread.join()
        if leave:
            self._send_beat(Status.LEAVING)
        self._sock.close()
        os.close(self._wake_r)
        os.close(self._wake_w)
        self._thread = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop(leave=True)

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Wait for the loop to end by itself (max_beats); True when it did."""
        return self._done.wait(timeout)

    def lease(self) -> LeaseView:
        """The lease as of now: `holder` is exact at `now_ns`."""
        with self._mu:
            return self._view(now_ns())

    def holds(self) -> Optional[int]:
        """The fencing token if this agent holds the lease right now, else None."""
        with self._mu:
            t = now_ns()
            return self._token if self._holding and t < self._deadline else None

    def set_status(self, status: int):
        """A new status, sent in a beat at once. DRAINING and LEAVING end the
        holding before this returns (and hand the lease over on the monitor)."""
        status = Status(status)
        with self._mu:
            self._status = status
            self._beat_now = True
            if _draining(status):
                self._lose(LOSS_RELEASED)
                self._min_token = max(self._min_token, self._max_token + 1)
        self._wake()

    def set_queue_depth(self, depth: int):
        """The backlog reported in the following beats; with adaptive, it moves the cadence."""
        with self._mu:
            self._queue_depth = max(0, min(int(depth), 0xFFFF))

    @property
    def interval_ms(self) -> int:
        """The interval the last beat announced: the next beat comes within it."""
        with self._mu:
            return self._interval_ms

    # ---------------------------------------------------- under self._mu

    def _view(self, now: int) -> LeaseView:
        h = self._holding and now < self._deadline
        return LeaseView(
            lease_id=self.lease_id, now_ns=now, holder=h,
            token=self._token if h else self._last_token,
            deadline_ns=self._deadline if h else 0,
            lost_reason=LOSS_DEADLINE if self._holding and not h else self._lost_reason,
            monitor_holder=self._mon_holder, monitor_token=self._max_token,
            monitor_state=self._mon_state, remaining_ms=self._remaining_ms,
            last_ack_ns=self._last_ack_ns, recommend_interval_ms=self._recommend_ms,
            interval_ms=self._interval_ms, beats_sent=self._beats, acks_ok=self._acks_ok,
            acks_rejected=self._acks_rejected, acks_stale=self._acks_stale,
            send_errors=self._send_errors, send_errno=self._send_errno,
            queue_depth=self._queue_depth, cadence_level=self._cad.level,
            cadence_changes=self._cad.changes, next_beat_ns=self._cad.next_ns)

    def _expire(self, now: int):
        if self._holding and now >= self._deadline:
            self._holding = False
            self._lost_reason = LOSS_DEADLINE

    def _lose(self, why: str):
        if self._holding:
            self._holding = False
            self._lost_reason = why

    # ------------------------------------------------------ agent thread

    def _wake(self):
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass  # the pipe is full: the thread wakes anyway

    def _send_beat(self, status_override=None):
        with self._mu:
            t = now_ns()
            status = self._status if status_override is None else status_override
            if self._auto_drain and not _draining(status):
                status = Status.DRAINING
                self._auto_drain = False
            depth = self._queue_depth
            # What this beat promises, and so when the next is due. A holder
            # renews at least three times per remaining lease time.
            self._expire(t)
            cap = max(self._remaining_ms // 3, 1) if self.lease_id and self._holding else 0
            interval = self._cad.on_send(depth, self._recommend_ms, cap, t)
            self._interval_ms = interval
            seq = self._seq
            self._seq = (self._seq + 1) & _M64
            if _draining(status):
                # Whatever grant the monitor holds for us ends with this beat.
                self._lose(LOSS_RELEASED)
                self._drain_seq = seq
                self._min_token = max(self._min_token, self._max_token + 1)
            self._beats += 1
        raw = encode_beat(Beat(agent_id=self.agent_id, seq=seq, incarnation=self._incarnation,
                               interval_ms=interval, send_ts_ns=now_ns(), status=status,
                               queue_depth=depth, lease_id=self.lease_id,
                               key_id=self.key_id if self.key else 0), self.key)
        # Taken before the send: the lease deadline counts from no later
        # than the moment the beat could reach the monitor.
        self._ring[seq % SENT_RING] = (seq, now_ns())
        try:
            self._sock.sendto(raw, self._mon_addr)
        except OSError as e:
            # Only this beat is lost: liveness and the lease deadline account for it.
            with self._mu:
                self._send_errors += 1
                self._send_errno = e.errno or 0

    def _handle_ack(self, data: bytes, now: int):
        k = decode_ack(data)
        ok = k is not None
        if ok and self.key is not None:
            ok = bool(k.flags & F_MAC) and k.key_id == self.key_id and ack_tag_ok(data, self.key)
        elif ok:
            ok = self.allow_unsigned_acks
        if ok:
            sent_seq, sent_ns = self._ring[k.seq % SENT_RING]
            ok = (k.agent_id == self.agent_id and k.lease_id == self.lease_id and
                  sent_seq == k.seq and sent_ns != 0)
        with self._mu:
            if not ok:
                self._acks_rejected += 1
                return
            self._expire(now)
            if k.seq <= self._last_ack_seq:
                self._acks_stale += 1  # reordered: a newer answer was applied already
                return
            self._last_ack_seq = k.seq
            self._acks_ok += 1
            self._last_ack_ns = now
            self._mon_holder, self._mon_state = k.holder, k.lease_state
            self._remaining_ms = k.remaining_ms
            self._recommend_ms = k.recommend_interval_ms
            first = not self._seen_ack
            self._seen_ack = True
            self._max_token = max(self._max_token, k.token)
            if not self.lease_id:
                return
            self_held = k.holder == self.agent_id and k.lease_state == LeaseState.HELD
            if self_held and first and not self.inherit_grant:
                # Granted before this process started: not ours to act on.
                self._min_token = max(self._min_token, k.token + 1)
            # A grant may be taken only from an answer to a beat sent after
            # the agent last gave a lease up, never while it is giving it
            # up, and only if it is the newest grant seen.
            can_gain = (self_held and k.token == self._max_token and k.token >= self._min_token
                        and k.seq > self._drain_seq and not _draining(self._status)
                        and not self._auto_drain)
            if can_gain:
                rem_ns = k.remaining_ms * _NS_PER_MS
                deadline = sent_ns + rem_ns - rem_ns * self.drift_ppm // 1_000_000
                if self._holding and self._token == k.token:
                    self._deadline = max(self._deadline, deadline)  # each answer is a valid bound
                elif deadline > now:
                    self._holding = True
                    self._token = self._last_token = k.token
                    self._deadline = deadline
                    self._lost_reason = LOSS_NONE
                else:
                    # Ours, but too old to act on (the agent was paused).
                    self._lose(LOSS_NEWER_TOKEN)
                return
            if (self_held and k.token < self._min_token and k.seq > self._drain_seq
                    and not _draining(self._status)):
                # The monitor holds a grant for us that we refuse (inherited,
                # or released while an answer was in flight): hand it back.
                self._auto_drain = True
                self._beat_now = True
            # Any answer that does not confirm the grant ends it.
            if k.lease_state != LeaseState.HELD:
                self._lose(LOSS_NOT_HELD)
            elif k.holder != self.agent_id:
                self._lose(LOSS_OTHER_HOLDER)
            else:
                self._lose(LOSS_NEWER_TOKEN)

    def _drain_socket(self):
        while True:
            try:
                data, src = self._sock.recvfrom(512)
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionRefusedError:
                continue  # an ICMP error for an earlier beat
            try:
                key = (ipaddress.ip_address(src[0].split("%")[0]), src[1])
            except ValueError:
                continue
            if key == self._mon_key:
                self._handle_ack(data, now_ns())
                self._report()

    def _report(self):
        """Tell the callback what changed since it was last told."""
        with self._mu:
            t = now_ns()
            self._expire(t)
            v = self._view(t)
        cb = self.on_change
        if v.interval_ms != self._rep_interval:
            self._rep_interval = v.interval_ms
            if cb:
                cb(self, "cadence", v)
        if v.holder and not self._rep_holding:
            what = "gained"
        elif not v.holder and self._rep_holding:
            what = "lost"
        elif v.holder and v.token != self._rep_token:
            what = "token"
        else:
            return
        self._rep_holding = v.holder
        if v.holder:
            self._rep_token = v.token
        if cb:
            cb(self, what, v)

    def _run(self):
        poller = select.poll()
        poller.register(self._sock.fileno(), select.POLLIN)
        poller.register(self._wake_r, select.POLLIN)
        linger_until = 0
        while True:
            t = now_ns()
            with self._mu:
                if self._stopping:
                    break
                beat_now, self._beat_now = self._beat_now, False
                due = self._cad.next_ns
            if not linger_until and (beat_now or not due or t >= due):
                self._send_beat()
                if self.max_beats and self._beats >= self.max_beats:
                    iv = self._interval_ms * _NS_PER_MS
                    linger_until = t + (min(iv, LINGER_MAX_NS) if self.lease_id else 1)
            self._report()  # the deadline may have passed; the cadence may have changed
            if linger_until and t >= linger_until:
                break
            with self._mu:
                wake = linger_until or self._cad.next_ns
                if self._holding and self._deadline < wake:
                    wake = self._deadline  # report a loss on time
            timeout_ms = (wake - now_ns()) / _NS_PER_MS
            if timeout_ms <= 0:
                continue
            for fd, _ in poller.poll(timeout_ms):
                if fd == self._wake_r:
                    try:
                        os.read(self._wake_r, 512)
                    except BlockingIOError:
                        pass
                else:
                    self._drain_socket()
        with self._mu:
            self._lose(LOSS_RELEASED)
        self._report()
        self._done.set()

