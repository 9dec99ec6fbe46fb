/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * Authentication, anti-replay and rate limiting of beats (docs/security.md).
 * Pure functions over plain structs, shared by the XDP program and the host
 * (agents sign with the same code the monitor verifies with; tests and the
 * fuzzer compare the two sides verdict for verdict).
 */
#ifndef VIGIL_AUTH_H
#define VIGIL_AUTH_H

#include "types.h"
#include "siphash.h"
#include "wire.h"

/* The tag covers every byte of the beat before mac[]. */
#define VIGIL_TAG_COVERS 48
_Static_assert(__builtin_offsetof(struct vigil_beat, mac) == VIGIL_TAG_COVERS,
	       "the tag covers the whole beat except itself");

/* Tag of an encoded beat. */
VIGIL_INLINE __u64 vigil_beat_tag(const struct vigil_beat *b, const struct vigil_key *k)
{
	return vigil_siphash24((const __u8 *)b, VIGIL_TAG_COVERS, k);
}

/* The 16-byte mac field: the tag, little-endian, then eight zero bytes. */
VIGIL_INLINE void vigil_put_tag(__u8 *mac, __u64 tag)
{
#ifdef VIGIL_LOAD_UNALIGNED
	*(__u64 *)mac = tag;
	*(__u64 *)(mac + 8) = 0;
#else
	for (int i = 0; i < 8; i++)
		mac[i] = (__u8)(tag >> (8 * i));
	for (int i = 8; i < VIGIL_MAC_LEN; i++)
		mac[i] = 0;
#endif
}

/* Sign an encoded beat in place: set VIGIL_F_MAC and key_id, then the tag
 * (little-endian in mac[0..7]; mac[8..15] stay zero). */
VIGIL_INLINE void vigil_beat_sign(struct vigil_beat *b, const struct vigil_key *k, __u8 key_id)
{
	__u64 tag;

	b->flags |= VIGIL_F_MAC;
	b->key_id = key_id;
	tag = vigil_beat_tag(b, k);
	vigil_put_tag(b->mac, tag);
}

/* Sign an acknowledgement in place: the same tag over bytes 0..47. */
VIGIL_INLINE void vigil_ack_sign(struct vigil_ack *a, const struct vigil_key *k)
{
	__u64 tag;

	a->flags |= VIGIL_F_ACK | VIGIL_F_MAC;
	tag = vigil_siphash24((const __u8 *)a, VIGIL_TAG_COVERS, k);
	vigil_put_tag(a->mac, tag);
}

/* Does an acknowledgement verify with the agent's key? */
VIGIL_INLINE int vigil_ack_tag_ok(const struct vigil_ack *a, const struct vigil_key *k)
{
	__u64 tag = vigil_siphash24((const __u8 *)a, VIGIL_TAG_COVERS, k);

	return ((tag ^ vigil_le64(a->mac)) | vigil_le64(a->mac + 8)) == 0;
}

/* Constant-time comparison of a beat's tag with the expected one. */
VIGIL_INLINE int vigil_beat_tag_ok(const struct vigil_beat *b, const struct vigil_key *k)
{
	__u64 tag = vigil_beat_tag(b, k), got = vigil_le64(b->mac);
	__u64 rest = vigil_le64(b->mac + 8);

	return ((tag ^ got) | rest) == 0;
}

/*
 * Anti-replay state of one agent: the highest sequence accepted in the
 * current incarnation and a bitmap of the `window` sequences below it
 * (bit 0 = top). In the spirit of RFC 6479 and WireGuard's counter.
 */
struct vigil_replay {
	__u64 top;
	__u64 seen;     /* bit i set: top - i was accepted */
	__u32 incarnation;
	__u32 started;  /* 0 until the first accepted beat */
};

enum vigil_replay_verdict {
	VIGIL_REPLAY_NEWER = 0,      /* above top: accepted, top moves */
	VIGIL_REPLAY_LATE = 1,       /* inside the window, not seen: accepted, top stays */
	VIGIL_REPLAY_RESTART = 2,    /* higher incarnation: accepted, window restarts */
	VIGIL_REPLAY_FIRST = 3,      /* first beat ever: accepted */
	VIGIL_REPLAY_DUPLICATE = 4,  /* seen already: rejected */
	VIGIL_REPLAY_TOO_OLD = 5,    /* below the window: rejected */
	VIGIL_REPLAY_OLD_INCARNATION = 6, /* lower incarnation: rejected */
};

VIGIL_INLINE int vigil_replay_accepted(enum vigil_replay_verdict v)
{
	return v <= VIGIL_REPLAY_FIRST;
}

/* Does (inc_a, seq_a) come after (inc_b, seq_b) in an agent's life? */
VIGIL_INLINE int vigil_replay_after(__u32 inc_a, __u64 seq_a, __u32 inc_b, __u64 seq_b)
{
	return inc_a > inc_b || (inc_a == inc_b && seq_a > seq_b);
}

/* A window that has seen everything up to and including (inc, seq): where
 * a new registration of an agent id that beat before starts, so that none
 * of the beats it accepted then is accepted again (docs/security.md). */
VIGIL_INLINE void vigil_replay_from_floor(struct vigil_replay *r, __u32 inc, __u64 seq)
{
	r->top = seq;
	r->seen = ~0ULL;
	r->incarnation = inc;
	r->started = 1;
}

/* Check (incarnation, seq) against the window of `window` (1..64) sequences
 * and record it when accepted. A larger window acts as 64, the size of the
 * bitmap: the value comes from a map an operator can write, and testing bit
 * `dist` of a 64-bit map for dist >= 64 would let old beats be accepted again
 * (a shift by 64 or more is undefined in C, masked to 6 bits in BPF). */
VIGIL_INLINE enum vigil_replay_verdict
vigil_replay_check(struct vigil_replay *r, __u32 inc, __u64 seq, __u32 window)
{
	__u64 dist;

	if (window > 64)
		window = 64;
	if (!r->started || inc > r->incarnation) {
		enum vigil_replay_verdict v = r->started ? VIGIL_REPLAY_RESTART : VIGIL_REPLAY_FIRST;

		r->started = 1;
		r->incarnation = inc;
		r->top = seq;
		r->seen = 1;
		return v;
	}
	if (inc < r->incarnation)
		return VIGIL_REPLAY_OLD_INCARNATION;
	if (seq > r->top) {
		dist = seq - r->top;
		r->seen = dist >= 64 ? 1 : (r->seen << dist) | 1;
		r->top = seq;
		return VIGIL_REPLAY_NEWER;
	}
	dist = r->top - seq;
	if (dist >= window)
		return VIGIL_REPLAY_TOO_OLD;
	if (r->seen & (1ULL << dist))
		return VIGIL_REPLAY_DUPLICATE;
	r->seen |= 1ULL << dist;
	return VIGIL_REPLAY_LATE;
}

/* x * y, saturating at 2^64 - 1 instead of wrapping. y has 32 bits, so two
 * 32 x 32-bit partial products do it without a division. */
VIGIL_INLINE __u64 vigil_mul_sat(__u64 x, __u32 y)
{
	__u64 hi = (x >> 32) * y, lo = (x & 0xffffffffULL) * y;

	if (hi >> 32)
		return ~0ULL;
	hi <<= 32;
	return hi + lo < hi ? ~0ULL : hi + lo;
}

/*
 * Rate limiting as a generic cell rate algorithm: one u64 "theoretical
 * arrival time" per bucket, so it can be updated with a compare-and-swap and
 * stays correct across CPUs. A beat arriving at `now` conforms when the
 * bucket is no more than `burst` emission intervals ahead of now.
 * Returns the new TAT, or 0 when the beat does not conform.
 *
 * Nothing wraps: a burst allowance beyond 2^64 ns saturates (a wrapped
 * product would refuse conforming beats), and a beat whose new TAT would not
 * fit in 64 bits does not conform (a wrapped TAT would look long past and
 * let every later beat through).
 */
VIGIL_INLINE __u64 vigil_gcra(__u64 tat, __u64 now, __u64 emission_ns, __u32 burst)
{
	__u64 t = tat > now ? tat : now;

	if (t - now > vigil_mul_sat(emission_ns, burst))
		return 0;
	if (t + emission_ns < t)
		return 0;
	return t + emission_ns;
}

/*
 * When a beat announces a different interval, the debt run up at the old
 * emission interval is rescaled to the new one: an agent that speeds up is
 * judged by what it now announces, not by how slow it used to be.
 */
VIGIL_INLINE __u64 vigil_gcra_rescale(__u64 tat, __u64 now, __u32 old_interval, __u32 new_interval)
{
	if (!old_interval || old_interval == new_interval || tat <= now)
		return tat;
	return now + (tat - now) / old_interval * new_interval +
	       (tat - now) % old_interval * new_interval / old_interval;
}

#endif /* VIGIL_AUTH_H */
