# SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
"""The beat and acknowledgement packets, version 1 (docs/wire-format.md).

A beat is the 64-byte payload of one UDP datagram to the monitor's beat port;
an acknowledgement is the monitor's 64-byte answer to an accepted beat of an
agent whose group is marked `ack`. All integers are big-endian except the
tag, a little-endian SipHash-2-4 of bytes 0-47 stored in mac[0..7], with
mac[8..15] zero.
"""
import enum
import hmac
import struct
from typing import NamedTuple, Optional

from .siphash import siphash24

__all__ = [
    "MAGIC", "VERSION", "DEFAULT_PORT", "F_MAC", "F_ACK", "TAG_COVERS", "BEAT_LEN",
    "Status", "LeaseState", "Beat", "Ack", "encode_beat", "decode_beat", "tag_of",
    "decode_ack", "encode_ack", "ack_tag_ok", "parse_key",
]

MAGIC = 0x5647  # "VG"
VERSION = 1
DEFAULT_PORT = 4747
F_MAC = 0x01  # mac[0..7] holds a tag
F_ACK = 0x80  # an acknowledgement from the monitor, never a beat
TAG_COVERS = 48  # the tag covers every byte before mac[]
BEAT_LEN = 64

_BEAT = struct.Struct(">HBBBBHQQQIIII16s")
_ACK = struct.Struct(">HBBBBHQQQQII16s")
assert _BEAT.size == BEAT_LEN and _ACK.size == BEAT_LEN


class Status(enum.IntEnum):
    """The agent's own health, carried in every beat."""
    OK = 0
    DEGRADED = 1
    DRAINING = 2  # gives a held lease up with this beat
    LEAVING = 3   # gives it up and ends the agent's monitoring (no alarm)


class LeaseState(enum.IntEnum):
    """A lease as the monitor sees it (an acknowledgement's lease_state)."""
    FREE = 0      # never granted, or the beat named no lease
    HELD = 1
    EXPIRED = 2
    RELEASED = 3


class Beat(NamedTuple):
    agent_id: int
    seq: int
    incarnation: int
    interval_ms: int
    send_ts_ns: int = 0
    status: int = Status.OK
    queue_depth: int = 0
    lease_id: int = 0
    key_id: int = 0
    flags: int = 0


class Ack(NamedTuple):
    flags: int
    lease_state: int
    key_id: int
    recommend_interval_ms: int
    agent_id: int
    seq: int
    token: int
    holder: int
    lease_id: int
    remaining_ms: int
    tag: int  # mac[0..7] as a little-endian number, 0 when unsigned


def parse_key(key) -> bytes:
    """A key as 16 bytes, from the 32 hex digits of a key file or from bytes."""
    if isinstance(key, (bytes, bytearray)):
        b = bytes(key)
    else:
        s = str(key).strip()
        if len(s) != 32:
            raise ValueError("a key is 32 hex digits, got %d characters" % len(s))
        try:
            b = bytes.fromhex(s)
        except ValueError:
            raise ValueError("a key is 32 hex digits, got %r" % s) from None
    if len(b) != 16:
        raise ValueError("a key is 16 bytes, got %d" % len(b))
    return b


def tag_of(packet: bytes, key: bytes) -> int:
    """The tag of a beat or acknowledgement: SipHash-2-4 of bytes 0-47."""
    return siphash24(key, bytes(packet[:TAG_COVERS]))


def encode_beat(b: Beat, key: Optional[bytes] = None) -> bytes:
    """The 64 bytes of a beat; signed with key (16 bytes) when one is given:
    flags gets MAC and the tag is computed over bytes 0-47 as they are then,
    that flag and key_id included."""
    flags = b.flags | (F_MAC if key is not None else 0)
    raw = _BEAT.pack(MAGIC, VERSION, flags, b.status, b.key_id, b.queue_depth, b.agent_id,
                     b.seq, b.send_ts_ns, b.incarnation, b.interval_ms, b.lease_id, 0,
                     bytes(16))
    if key is None:
        return raw
    return raw[:TAG_COVERS] + struct.pack("<Q", tag_of(raw, key)) + bytes(8)


def decode_beat(data: bytes) -> Beat:
    """Parse a beat (for tests and packet captures); ValueError if it is not one."""
    if len(data) != BEAT_LEN:
        raise ValueError("a beat is %d bytes, got %d" % (BEAT_LEN, len(data)))
    (magic, version, flags, status, key_id, depth, agent_id, seq, ts, inc, iv, lease,
     reserved, _mac) = _BEAT.unpack(data)
    if magic != MAGIC or version != VERSION:
        raise ValueError("not a version-1 beat (magic %#06x, version %d)" % (magic, version))
    return Beat(agent_id, seq, inc, iv, ts, status, depth, lease, key_id, flags)


def decode_ack(data: bytes) -> Optional[Ack]:
    """Parse an acknowledgement without verifying it; None if it is not one."""
    if len(data) != BEAT_LEN:
        return None
    (magic, version, flags, lease_state, key_id, rec, agent_id, seq, token, holder, lease_id,
     remaining, mac) = _ACK.unpack(data)
    if magic != MAGIC or version != VERSION or not flags & F_ACK:
        return None
    return Ack(flags, lease_state, key_id, rec, agent_id, seq, token, holder, lease_id,
               remaining, int.from_bytes(mac[:8], "little"))


def encode_ack(a: Ack, key: Optional[bytes] = None) -> bytes:
    """The 64 bytes of an acknowledgement as the monitor makes them (for
    tests and tools): tagged under key with flags 0x81, else flags 0x80 and
    mac all zero. a.flags and a.tag are ignored."""
    flags = F_ACK | (F_MAC if key is not None else 0)
    raw = _ACK.pack(MAGIC, VERSION, flags, a.lease_state, a.key_id, a.recommend_interval_ms,
                    a.agent_id, a.seq, a.token, a.holder, a.lease_id, a.remaining_ms, bytes(16))
    if key is None:
        return raw
    return raw[:TAG_COVERS] + struct.pack("<Q", tag_of(raw, key)) + bytes(8)


def ack_tag_ok(data: bytes, key: bytes) -> bool:
    """Does a received acknowledgement carry a valid tag under key? The tag
    covers bytes 0-47 as received (flags 0x81 included), and mac[8..15]
    must be zero, as in a beat."""
    if len(data) != BEAT_LEN or not data[3] & F_MAC:
        return False
    want = struct.pack("<Q", tag_of(data, key)) + bytes(8)
    return hmac.compare_digest(want, bytes(data[TAG_COVERS:]))
