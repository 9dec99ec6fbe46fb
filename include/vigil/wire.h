/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * Beat wire format, version 1 (docs/wire-format.md).
 *
 * A beat is the payload of one UDP datagram sent to the monitor's beat port
 * (default 4747). All multi-byte fields are big-endian. The layout is fixed
 * at 64 bytes; a later version that changes it bumps `version`, and a
 * monitor that does not know a version counts the beat and drops it.
 *
 * The same decode function runs in the XDP program and on the host (unit
 * tests, fuzzing, `vigil beat`), so both sides agree on every verdict.
 */
#ifndef VIGIL_WIRE_H
#define VIGIL_WIRE_H

#include "types.h"

#define VIGIL_MAGIC 0x5647 /* "VG" */
#define VIGIL_VERSION 1
#define VIGIL_DEFAULT_PORT 4747
#define VIGIL_MAC_LEN 16

/* Agent-reported health, carried in every beat. One byte (packed), so the
 * agent slot can hold it with its type and `bpftool map dump` prints the
 * name (docs/maps.md). */
enum vigil_status {
	VIGIL_STATUS_OK = 0,
	VIGIL_STATUS_DEGRADED = 1,
	VIGIL_STATUS_DRAINING = 2,
	VIGIL_STATUS_LEAVING = 3,
	VIGIL_STATUS_MAX = VIGIL_STATUS_LEAVING,
} __attribute__((packed));

_Static_assert(sizeof(enum vigil_status) == 1, "a status is one byte");

/* Beat flags. Unknown bits make a beat malformed, so they can gain meaning
 * later without an old monitor silently misreading them. */
#define VIGIL_F_MAC 0x01 /* mac[] holds a SipHash-2-4 tag (include/vigil/auth.h) */
#define VIGIL_F_ACK 0x80 /* an acknowledgement from the monitor, never a beat */
#define VIGIL_F_KNOWN (VIGIL_F_MAC)

struct vigil_beat {
	__u16 magic;       /* VIGIL_MAGIC */
	__u8 version;      /* VIGIL_VERSION */
	__u8 flags;        /* VIGIL_F_* */
	__u8 status;       /* enum vigil_status */
	__u8 key_id;       /* which of the agent's keys tagged it (0 or 1) */
	__u16 queue_depth; /* agent's backlog, for observability and cadence */
	__u64 agent_id;
	__u64 seq;         /* rises by one per beat within an incarnation */
	__u64 send_ts_ns;  /* agent's clock at send time; observability only */
	__u32 incarnation; /* rises when the agent restarts */
	__u32 interval_ms; /* the next beat comes within this many ms */
	__u32 lease_id;    /* lease the sender wants renewed, 0 = none */
	__u32 reserved;    /* must be zero */
	__u8 mac[VIGIL_MAC_LEN];
};

_Static_assert(sizeof(struct vigil_beat) == 64, "beat v1 is 64 bytes");

/*
 * Acknowledgement, version 1: the monitor's answer to a valid beat (XDP_TX
 * back to its source, same 64-byte size), for agents of groups with `ack`.
 * Tagged with the agent's key over bytes 0..47, like a beat. It tells the
 * agent what the monitor knows of the lease the beat named.
 */
struct vigil_ack {
	__u16 magic;                 /* VIGIL_MAGIC */
	__u8 version;                /* VIGIL_VERSION */
	__u8 flags;                  /* VIGIL_F_ACK | VIGIL_F_MAC */
	__u8 lease_state;            /* enum vigil_lease_state of lease_id */
	__u8 key_id;                 /* the key of the acknowledged beat */
	__u16 recommend_interval_ms; /* beat at this interval (0: as you like) */
	__u64 agent_id;
	__u64 seq;                   /* sequence of the acknowledged beat */
	__u64 token;                 /* fencing token of the lease's current grant */
	__u64 holder;                /* agent id holding the lease, 0 = none */
	__u32 lease_id;
	__u32 remaining_ms;          /* lease time left as the monitor sees it */
	__u8 mac[VIGIL_MAC_LEN];
};

_Static_assert(sizeof(struct vigil_ack) == sizeof(struct vigil_beat), "acks replace beats in place");

/* Offset up to which a truncated beat still names its agent. */
#define VIGIL_BEAT_ID_END 16

/* What the parser concluded about one UDP payload sent to the beat port. */
enum vigil_beat_verdict {
	VIGIL_BEAT_OK = 0,
	VIGIL_BEAT_MALFORMED = 1,   /* bad magic, length, status, flags, interval */
	VIGIL_BEAT_BAD_VERSION = 2, /* well-formed magic, version we do not speak */
};

/* Host-order copy of a beat's fields. */
struct vigil_beat_info {
	__u64 agent_id;
	__u64 seq;
	__u64 send_ts_ns;
	__u32 incarnation;
	__u32 interval_ms;
	__u32 lease_id;
	__u16 queue_depth;
	__u8 status;
	__u8 flags;
	__u8 key_id;
	__u8 has_agent_id; /* agent_id is valid (also for rejected beats) */
};

/*
 * Decode a beat. `len` is the UDP payload length. The caller guarantees that
 * min(len, sizeof(*b)) bytes are readable at b. Pure: no side effects beyond
 * *out, so the host and the kernel can be compared verdict for verdict.
 */
VIGIL_INLINE enum vigil_beat_verdict
vigil_beat_decode(const struct vigil_beat *b, __u32 len, struct vigil_beat_info *out)
{
	out->has_agent_id = 0;
	if (len < 4 || vg_be16(b->magic) != VIGIL_MAGIC)
		return VIGIL_BEAT_MALFORMED;
	if (len >= VIGIL_BEAT_ID_END) {
		out->agent_id = vg_be64(b->agent_id);
		out->has_agent_id = 1;
	}
	if (b->version != VIGIL_VERSION)
		return VIGIL_BEAT_BAD_VERSION;
	if (len != sizeof(struct vigil_beat))
		return VIGIL_BEAT_MALFORMED;
	if ((b->flags & ~VIGIL_F_KNOWN) || b->status > VIGIL_STATUS_MAX ||
	    b->key_id > 1 || b->reserved != 0)
		return VIGIL_BEAT_MALFORMED;
	out->interval_ms = vg_be32(b->interval_ms);
	if (out->interval_ms == 0)
		return VIGIL_BEAT_MALFORMED;
	out->seq = vg_be64(b->seq);
	out->send_ts_ns = vg_be64(b->send_ts_ns);
	out->incarnation = vg_be32(b->incarnation);
	out->lease_id = vg_be32(b->lease_id);
	out->queue_depth = vg_be16(b->queue_depth);
	out->status = b->status;
	out->flags = b->flags;
	out->key_id = b->key_id;
	return VIGIL_BEAT_OK;
}

/* Fill a beat for sending (host side and tests). mac is left zeroed. */
VIGIL_INLINE void vigil_beat_encode(struct vigil_beat *b, const struct vigil_beat_info *in)
{
	__builtin_memset(b, 0, sizeof(*b));
	b->magic = vg_be16(VIGIL_MAGIC);
	b->version = VIGIL_VERSION;
	b->flags = in->flags;
	b->status = in->status;
	b->key_id = in->key_id;
	b->queue_depth = vg_be16(in->queue_depth);
	b->agent_id = vg_be64(in->agent_id);
	b->seq = vg_be64(in->seq);
	b->send_ts_ns = vg_be64(in->send_ts_ns);
	b->incarnation = vg_be32(in->incarnation);
	b->interval_ms = vg_be32(in->interval_ms);
	b->lease_id = vg_be32(in->lease_id);
}

#endif /* VIGIL_WIRE_H */
