# SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
"""Adaptive cadence: which interval each beat announces, and when the next
is due (docs/leases.md#adaptive-cadence).

The same rules as the C agent library (include/vigil/cadence.h), decision
for decision; tests/test_cadence.py compares the two on random scripts.

The promise rule: a beat sent at t announcing P means the next beat is due
no later than t + P, whatever is decided in between. Lengthening therefore
takes effect one beat late (the beat due under the old promise announces the
longer interval), shortening at once.

Levels: level k beats every min_ms * 2**k, capped at max_ms. The queue depth
moves the level one step at a time: up from k at depth >= high * 2**k, down
from k at depth <= low * 2**(k-1), at most one step per dwell time (dwell_ms,
or 4 x the current level's interval). The monitor's advice R > 0 means "no
faster than R" (clamped into the bounds); a lease holder never announces more
than a third of its remaining lease (cap_ms, not below min_ms).
"""
from dataclasses import dataclass

__all__ = ["CadenceConfig", "Cadence", "QUEUE_HIGH", "DWELL_BEATS", "MAX_LEVEL"]

QUEUE_HIGH = 64
DWELL_BEATS = 4
MAX_LEVEL = 16
_NS_PER_MS = 1_000_000


@dataclass
class CadenceConfig:
    min_ms: int = 1000    # the own cadence at an empty queue; hard lower bound
    max_ms: int = 0       # hard upper bound (raised to min_ms)
    dwell_ms: int = 0     # least time between two level steps; 0: 4 x the level's interval
    high: int = 0         # step up from level k at depth >= high << k (0: 64)
    low: int = 0          # step down from level k at depth <= low << (k - 1) (0: high // 4)
    adaptive: bool = False  # False: the queue depth does not move the cadence

    def fix(self):
        """Fill in defaults and make the bounds consistent."""
        if not self.min_ms:
            self.min_ms = 1
        if self.max_ms < self.min_ms:
            self.max_ms = self.min_ms
        if not self.high:
            self.high = QUEUE_HIGH
        if not self.low and self.high >= 4:
            self.low = self.high // 4
        if self.low >= self.high:
            self.low = self.high - 1
        return self

    def top(self) -> int:
        """The highest level: the first whose interval reaches max_ms."""
        k = 0
        while k < MAX_LEVEL and (self.min_ms << k) < self.max_ms:
            k += 1
        return k

    def level_ms(self, k: int) -> int:
        return min(self.min_ms << min(k, MAX_LEVEL), self.max_ms)


class Cadence:
    """The schedule of one agent: the next beat's due time, the level and
    the promise in force. Times are nanoseconds of one monotonic clock."""

    def __init__(self, cfg: CadenceConfig):
        self.cfg = cfg.fix()
        self.next_ns = 0         # the next beat is due at this time (0: at once)
        self.level_since_ns = 0  # time of the last level step (0: none yet)
        self.level = 0
        self.promised_ms = 0     # what the last beat announced (0: no beat yet)
        self.changes = 0         # how often the announced interval changed
        self.level_changes = 0

    def step(self, depth: int, now: int) -> bool:
        """Move the level at most one step for this queue depth."""
        c = self.cfg
        dwell_ms = c.dwell_ms or DWELL_BEATS * c.level_ms(self.level)
        top = c.top()
        if not c.adaptive:
            self.level = 0
            return False
        if self.level > top:
            self.level = top
        if self.level_since_ns and now - self.level_since_ns < dwell_ms * _NS_PER_MS:
            return False
        if self.level < top and depth >= c.high << self.level:
            self.level += 1
        elif self.level > 0 and depth <= c.low << (self.level - 1):
            self.level -= 1
        else:
            return False
        self.level_since_ns = now
        self.level_changes += 1
        return True

    def pick(self, recommend_ms: int, cap_ms: int) -> int:
        """The interval to announce at the current level."""
        c = self.cfg
        iv = c.level_ms(self.level) if c.adaptive else c.min_ms
        if recommend_ms:
            iv = max(iv, min(max(recommend_ms, c.min_ms), c.max_ms))
        if cap_ms and iv > cap_ms:
            iv = max(cap_ms, c.min_ms)
        return iv

    def on_send(self, depth: int, recommend_ms: int, cap_ms: int, now: int) -> int:
        """A beat goes out at now: the interval it announces; sets next_ns.
        A beat at or after the due time stays on the grid (no catch-up
        burst after a hold-off); an early one (a status change) keeps the
        earlier of the old due time and now + its own interval."""
        self.step(depth, now)
        p = self.pick(recommend_ms, cap_ms)
        p_ns = p * _NS_PER_MS
        if self.next_ns and now < self.next_ns:
            nxt = min(now + p_ns, self.next_ns)
        else:
            nxt = (self.next_ns or now) + p_ns
            if nxt <= now:
                nxt = now + p_ns
        if self.promised_ms and p != self.promised_ms:
            self.changes += 1
        self.promised_ms = p
        self.next_ns = nxt
        return p

    def on_skip(self, now: int):
        """The beat due at now was not sent: the next slot follows on the grid."""
        p_ns = (self.promised_ms or self.cfg.level_ms(self.level)) * _NS_PER_MS
        nxt = (self.next_ns or now) + p_ns
        self.next_ns = now + p_ns if nxt <= now else nxt
