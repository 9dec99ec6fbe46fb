# SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
"""vigil agents in Python: authenticated beats, adaptive cadence, leases with
fencing tokens and verified acknowledgements, in the standard library only.

    from vigil_agent import Agent

    with Agent(7, "198.18.0.1", key="85adbddb3a02173f04ea149a1c420577",
               interval_ms=100, lease_id=1) as agent:
        while serving():
            token = agent.holds()          # None unless this agent holds lease 1 now
            if token is not None:
                write_with_token(token)    # the resource refuses lower tokens

The protocol is docs/wire-format.md of the vigil repository; leases and the
safety rule are docs/leases.md.
"""
from .agent import (Agent, LeaseView, now_ns, read_key_file, DEFAULT_DRIFT_PPM, LOSS_NONE,
                    LOSS_DEADLINE, LOSS_OTHER_HOLDER, LOSS_NEWER_TOKEN, LOSS_NOT_HELD,
                    LOSS_RELEASED)
from .cadence import Cadence, CadenceConfig
from .siphash import siphash24
from .wire import (Ack, Beat, LeaseState, Status, ack_tag_ok, decode_ack, decode_beat,
                   encode_ack, encode_beat, parse_key, DEFAULT_PORT)

__version__ = "1.0.0"

__all__ = [
    "Agent", "LeaseView", "now_ns", "read_key_file", "Cadence", "CadenceConfig", "siphash24",
    "Ack", "Beat", "LeaseState", "Status", "ack_tag_ok", "decode_ack", "decode_beat",
    "encode_ack", "encode_beat", "parse_key", "DEFAULT_PORT", "DEFAULT_DRIFT_PPM", "LOSS_NONE",
    "LOSS_DEADLINE", "LOSS_OTHER_HOLDER", "LOSS_NEWER_TOKEN", "LOSS_NOT_HELD", "LOSS_RELEASED",
]
