// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
/*
 * Host unit tests of the pure functions in include/vigil/wire.h and
 * include/vigil/logic.h: the same code the XDP program and the sweeper run.
 * Built by `make build/test_logic` with ASan and UBSan.
 *
 * Output is TAP-like, one line per case: "ok N - what it proves" or
 * "not ok N - ...", followed by "#" diagnostics on failure. Random property
 * tests and the wheel simulation are deterministic; VIGIL_TEST_SEED=N
 * changes their seed. Exit status 0 iff every case passed.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vigil/wire.h"
#include "vigil/logic.h"

#include "check.h"


static uint64_t base_seed = 0x76696769; /* "vigi" */

static void reseed(uint64_t salt)
{
	rng_state = base_seed ^ (salt * 0x2545f4914f6cdd1dULL);
}

static uint64_t ceil_div(uint64_t a, uint64_t b)
{
	return a / b + (a % b != 0);
}

static const char *verdict_name(enum vigil_beat_verdict v)
{
	switch (v) {
	case VIGIL_BEAT_OK: return "OK";
	case VIGIL_BEAT_MALFORMED: return "MALFORMED";
	case VIGIL_BEAT_BAD_VERSION: return "BAD_VERSION";
	}
	return "?";
}

/* =================================================================== wire */

static const struct vigil_beat_info sample_info = {
	.agent_id = 0x0102030405060708ULL,
	.seq = 0x1112131415161718ULL,
	.send_ts_ns = 0x2122232425262728ULL,
	.incarnation = 0x31323334,
	.interval_ms = 0x41424344,
	.lease_id = 0x51525354,
	.queue_depth = 0x6162,
	.status = VIGIL_STATUS_DRAINING,
	.flags = VIGIL_F_MAC,
	.key_id = 1,
};

/* Decode `len` bytes copied into a heap buffer of exactly min(len, 64) bytes,
 * so ASan catches any read past what the caller guarantees. `out` starts as
 * garbage, so a field the decoder forgets to set shows. */
static enum vigil_beat_verdict decode_exact(const struct vigil_beat *src, __u32 len,
					    struct vigil_beat_info *out)
{
	size_t avail = len < sizeof(*src) ? len : sizeof(*src);
	void *buf = malloc(avail ? avail : 1);
	enum vigil_beat_verdict v;

	if (!buf) {
		perror("malloc");
		exit(2);
	}
	memcpy(buf, src, avail);
	memset(out, 0xa5, sizeof(*out));
	v = vigil_beat_decode(buf, len, out);
	free(buf);
	return v;
}

static bool info_equal(const struct vigil_beat_info *a, const struct vigil_beat_info *b)
{
	bool eq = a->agent_id == b->agent_id && a->seq == b->seq &&
		  a->send_ts_ns == b->send_ts_ns && a->incarnation == b->incarnation &&
		  a->interval_ms == b->interval_ms && a->lease_id == b->lease_id &&
		  a->queue_depth == b->queue_depth && a->status == b->status &&
		  a->flags == b->flags && a->key_id == b->key_id;

	if (!eq) {
		diag("want id=%#" PRIx64 " seq=%#" PRIx64 " ts=%#" PRIx64
		     " inc=%#x ivl=%u lease=%#x qd=%u st=%u fl=%#x key=%u",
		     (uint64_t)a->agent_id, (uint64_t)a->seq, (uint64_t)a->send_ts_ns,
		     a->incarnation, a->interval_ms, a->lease_id, a->queue_depth, a->status,
		     a->flags, a->key_id);
		diag("got  id=%#" PRIx64 " seq=%#" PRIx64 " ts=%#" PRIx64
		     " inc=%#x ivl=%u lease=%#x qd=%u st=%u fl=%#x key=%u",
		     (uint64_t)b->agent_id, (uint64_t)b->seq, (uint64_t)b->send_ts_ns,
		     b->incarnation, b->interval_ms, b->lease_id, b->queue_depth, b->status,
		     b->flags, b->key_id);
	}
	return eq;
}

static void test_wire_golden(void)
{
	static const __u8 want[64] = {
		0x56, 0x47, 0x01, 0x01, 0x02, 0x01, 0x61, 0x62,
		0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08,
		0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18,
		0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27, 0x28,
		0x31, 0x32, 0x33, 0x34, 0x41, 0x42, 0x43, 0x44,
		0x51, 0x52, 0x53, 0x54, 0x00, 0x00, 0x00, 0x00,
		/* mac: zero */
	};
	struct vigil_beat b;
	int first_diff = -1;

	memset(&b, 0xff, sizeof(b));
	vigil_beat_encode(&b, &sample_info);
	for (int i = 0; i < 64 && first_diff < 0; i++)
		if (((const __u8 *)&b)[i] != want[i])
			first_diff = i;
	if (first_diff >= 0)
		diag("byte %d: got %#04x want %#04x", first_diff,
		     ((const __u8 *)&b)[first_diff], want[first_diff]);
	CHECK(first_diff < 0, "encode: big-endian v1 layout byte for byte, mac and reserved zeroed");
}

static void test_wire_roundtrip(void)
{
	const struct {
		const char *what;
		struct vigil_beat_info in;
	} cases[] = {
		{ "distinct bytes in every field", sample_info },
		{ "all fields at their maximum",
		  { .agent_id = UINT64_MAX, .seq = UINT64_MAX, .send_ts_ns = UINT64_MAX,
		    .incarnation = UINT32_MAX, .interval_ms = UINT32_MAX, .lease_id = UINT32_MAX,
		    .queue_depth = UINT16_MAX, .status = VIGIL_STATUS_MAX, .flags = VIGIL_F_KNOWN,
		    .key_id = 1 } },
		{ "smallest valid beat (zeros, interval 1)", { .interval_ms = 1 } },
		{ "high bit set in each wide field",
		  { .agent_id = 1ULL << 63, .seq = 1ULL << 63, .send_ts_ns = 1ULL << 63,
		    .incarnation = 1U << 31, .interval_ms = 1U << 31, .lease_id = 1U << 31,
		    .queue_depth = 1U << 15 } },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct vigil_beat b;
		struct vigil_beat_info out;
		enum vigil_beat_verdict v;

		vigil_beat_encode(&b, &cases[i].in);
		v = decode_exact(&b, sizeof(b), &out);
		if (v != VIGIL_BEAT_OK)
			diag("verdict %s", verdict_name(v));
		CHECK(v == VIGIL_BEAT_OK && out.has_agent_id == 1 && info_equal(&cases[i].in, &out),
		      "encode/decode round trip keeps every field: %s", cases[i].what);
	}

	/* 1000 random beats. */
	reseed(1);
	{
		int bad = 0;

		for (int i = 0; i < 1000 && !bad; i++) {
			struct vigil_beat_info in = {
				.agent_id = rnd(), .seq = rnd(), .send_ts_ns = rnd(),
				.incarnation = (__u32)rnd(), .interval_ms = (__u32)rnd() | 1,
				.lease_id = (__u32)rnd(), .queue_depth = (__u16)rnd(),
				.status = (__u8)(rnd() % (VIGIL_STATUS_MAX + 1)),
				.flags = (__u8)(rnd() & VIGIL_F_KNOWN), .key_id = (__u8)(rnd() & 1),
			}, out;
			struct vigil_beat b;

			vigil_beat_encode(&b, &in);
			if (decode_exact(&b, sizeof(b), &out) != VIGIL_BEAT_OK || !out.has_agent_id ||
			    !info_equal(&in, &out)) {
				diag("random beat %d", i);
				bad = 1;
			}
		}
		CHECK(!bad, "encode/decode round trip of 1000 random valid beats");
	}

	{
		struct vigil_beat b;
		struct vigil_beat_info out;

		vigil_beat_encode(&b, &sample_info);
		memset(b.mac, 0xff, sizeof(b.mac));
		CHECK(decode_exact(&b, sizeof(b), &out) == VIGIL_BEAT_OK && info_equal(&sample_info, &out),
		      "decode ignores the mac bytes (authentication is a separate step)");
	}
}

static void test_wire_lengths(void)
{
	struct vigil_beat b;
	struct vigil_beat_info out;
	enum vigil_beat_verdict v;

	vigil_beat_encode(&b, &sample_info);

	for (__u32 len = 0; len < sizeof(b); len++) {
		bool want_id = len >= VIGIL_BEAT_ID_END;

		v = decode_exact(&b, len, &out);
		diag("verdict %s has_agent_id %u agent_id %#" PRIx64, verdict_name(v),
		     out.has_agent_id, (uint64_t)out.agent_id);
		CHECK(v == VIGIL_BEAT_MALFORMED && out.has_agent_id == want_id &&
			      (!want_id || out.agent_id == sample_info.agent_id),
		      "truncated to %u bytes: MALFORMED, %s agent id", len,
		      want_id ? "with" : "without");
	}

	/* Longer than a beat: the caller guarantees only 64 readable bytes. */
	static const __u32 long_lens[] = { 65, 128, 1472, UINT32_MAX };
	for (size_t i = 0; i < sizeof(long_lens) / sizeof(long_lens[0]); i++) {
		v = decode_exact(&b, long_lens[i], &out);
		diag("verdict %s has_agent_id %u", verdict_name(v), out.has_agent_id);
		CHECK(v == VIGIL_BEAT_MALFORMED && out.has_agent_id == 1 &&
			      out.agent_id == sample_info.agent_id,
		      "length %u (longer than a beat): MALFORMED with agent id, reads only 64 bytes",
		      long_lens[i]);
	}
}

static void test_wire_magic_version(void)
{
	static const __u16 bad_magic[] = { 0x0000, 0x4756 /* byte-swapped */, 0x5646, 0xffff };
	static const __u32 magic_lens[] = { 4, 16, 64, 65 };
	static const __u32 ver_lens[] = { 4, 15, 16, 17, 63, 64, 65 };
	static const __u8 bad_versions[] = { 0, 2, 255 };
	struct vigil_beat b;
	struct vigil_beat_info out;
	enum vigil_beat_verdict v;

	for (size_t m = 0; m < sizeof(bad_magic) / sizeof(bad_magic[0]); m++) {
		for (size_t l = 0; l < sizeof(magic_lens) / sizeof(magic_lens[0]); l++) {
			vigil_beat_encode(&b, &sample_info);
			b.magic = vg_be16(bad_magic[m]);
			v = decode_exact(&b, magic_lens[l], &out);
			diag("verdict %s has_agent_id %u", verdict_name(v), out.has_agent_id);
			CHECK(v == VIGIL_BEAT_MALFORMED && out.has_agent_id == 0,
			      "magic %#06x, length %u: MALFORMED without agent id", bad_magic[m],
			      magic_lens[l]);
		}
	}

	/* Version 2 with a valid magic: BAD_VERSION whatever the length, since a
	 * later version may have another size. */
	for (size_t l = 0; l < sizeof(ver_lens) / sizeof(ver_lens[0]); l++) {
		bool want_id = ver_lens[l] >= VIGIL_BEAT_ID_END;

		vigil_beat_encode(&b, &sample_info);
		b.version = 2;
		v = decode_exact(&b, ver_lens[l], &out);
		diag("verdict %s has_agent_id %u", verdict_name(v), out.has_agent_id);
		CHECK(v == VIGIL_BEAT_BAD_VERSION && out.has_agent_id == want_id &&
			      (!want_id || out.agent_id == sample_info.agent_id),
		      "version 2, length %u: BAD_VERSION %s agent id", ver_lens[l],
		      want_id ? "with" : "without");
	}
	for (size_t i = 0; i < sizeof(bad_versions) / sizeof(bad_versions[0]); i++) {
		if (bad_versions[i] == 2)
			continue;
		vigil_beat_encode(&b, &sample_info);
		b.version = bad_versions[i];
		v = decode_exact(&b, sizeof(b), &out);
		CHECK(v == VIGIL_BEAT_BAD_VERSION && out.has_agent_id == 1,
		      "version %u, full length: BAD_VERSION with agent id", bad_versions[i]);
	}
	vigil_beat_encode(&b, &sample_info);
	b.version = 2;
	v = decode_exact(&b, 3, &out);
	CHECK(v == VIGIL_BEAT_MALFORMED && out.has_agent_id == 0,
	      "version 2 but only 3 bytes: MALFORMED (magic incomplete)");
}

/* One field mutation of a valid 64-byte beat and the verdict it must get. */
static void field_case(const char *what, void (*mutate)(struct vigil_beat *, int), int arg,
		       enum vigil_beat_verdict want)
{
	struct vigil_beat b;
	struct vigil_beat_info out;
	enum vigil_beat_verdict v;

	vigil_beat_encode(&b, &sample_info);
	mutate(&b, arg);
	v = decode_exact(&b, sizeof(b), &out);
	diag("verdict %s has_agent_id %u", verdict_name(v), out.has_agent_id);
	/* Rejected beats still name their agent, for its per-agent counters. */
	CHECK(v == want && out.has_agent_id == 1 && out.agent_id == sample_info.agent_id &&
		      (want != VIGIL_BEAT_OK || (out.flags == b.flags && out.status == b.status &&
						  out.key_id == b.key_id)),
	      "%s %d: %s", what, arg, verdict_name(want));
}

static void set_flags(struct vigil_beat *b, int v) { b->flags = (__u8)v; }
static void set_status(struct vigil_beat *b, int v) { b->status = (__u8)v; }
static void set_key_id(struct vigil_beat *b, int v) { b->key_id = (__u8)v; }
static void set_reserved_byte(struct vigil_beat *b, int i) { ((__u8 *)&b->reserved)[i] = 1; }
static void set_interval(struct vigil_beat *b, int v) { b->interval_ms = vg_be32((__u32)v); }

static void test_wire_fields(void)
{
	field_case("flags", set_flags, 0, VIGIL_BEAT_OK);
	field_case("flags", set_flags, VIGIL_F_MAC, VIGIL_BEAT_OK);
	for (int bit = 1; bit < 8; bit++)
		field_case("unknown flag bit", set_flags, 1 << bit, VIGIL_BEAT_MALFORMED);
	field_case("flags", set_flags, 0xff, VIGIL_BEAT_MALFORMED);

	for (int s = VIGIL_STATUS_OK; s <= VIGIL_STATUS_MAX; s++)
		field_case("status", set_status, s, VIGIL_BEAT_OK);
	field_case("status", set_status, VIGIL_STATUS_MAX + 1, VIGIL_BEAT_MALFORMED);
	field_case("status", set_status, 0xff, VIGIL_BEAT_MALFORMED);

	field_case("key_id", set_key_id, 0, VIGIL_BEAT_OK);
	field_case("key_id", set_key_id, 1, VIGIL_BEAT_OK);
	field_case("key_id", set_key_id, 2, VIGIL_BEAT_MALFORMED);
	field_case("key_id", set_key_id, 0xff, VIGIL_BEAT_MALFORMED);

	for (int i = 0; i < 4; i++)
		field_case("reserved byte non-zero at index", set_reserved_byte, i,
			   VIGIL_BEAT_MALFORMED);

	field_case("interval_ms", set_interval, 0, VIGIL_BEAT_MALFORMED);
	field_case("interval_ms", set_interval, 1, VIGIL_BEAT_OK);
	field_case("interval_ms", set_interval, -1 /* UINT32_MAX */, VIGIL_BEAT_OK);
}

/* ================================================================== logic */

static void test_seq_classify(void)
{
	static const struct {
		int first;
		__u32 slot_inc;
		__u64 slot_seq;
		__u32 inc;
		__u64 seq;
		enum vigil_seq_verdict want;
		const char *what;
	} cases[] = {
		{ 1, 0, 0, 0, 0, VIGIL_SEQ_ACCEPT, "first beat accepted (zeros)" },
		{ 1, 9, 100, 3, 5, VIGIL_SEQ_ACCEPT, "first beat accepted even if older than slot junk" },
		{ 1, 7, 100, 7, 100, VIGIL_SEQ_ACCEPT, "first beat accepted even if equal to slot junk" },
		{ 0, 7, 100, 7, 101, VIGIL_SEQ_ACCEPT, "same incarnation, next sequence: ACCEPT" },
		{ 0, 7, 100, 7, 5000, VIGIL_SEQ_ACCEPT, "same incarnation, sequence jumps ahead: ACCEPT" },
		{ 0, 7, 100, 7, 100, VIGIL_SEQ_DUPLICATE, "same incarnation, same sequence: DUPLICATE" },
		{ 0, 7, 0, 7, 0, VIGIL_SEQ_DUPLICATE, "same incarnation, sequence 0 twice: DUPLICATE" },
		{ 0, 7, 100, 7, 99, VIGIL_SEQ_REORDERED, "same incarnation, older sequence: REORDERED" },
		{ 0, 7, 100, 8, 0, VIGIL_SEQ_RESTART, "higher incarnation, sequence restarts: RESTART" },
		{ 0, 7, 100, 8, 100, VIGIL_SEQ_RESTART, "higher incarnation, same sequence: RESTART" },
		{ 0, 7, 100, 8, 101, VIGIL_SEQ_RESTART, "higher incarnation, higher sequence: RESTART" },
		{ 0, 7, 100, 6, 101, VIGIL_SEQ_REORDERED, "lower incarnation, higher sequence: REORDERED" },
		{ 0, 7, 100, 6, 100, VIGIL_SEQ_REORDERED, "lower incarnation, same sequence: REORDERED" },
		{ 0, 7, UINT64_MAX - 1, 7, UINT64_MAX, VIGIL_SEQ_ACCEPT, "sequence u64 max after max-1: ACCEPT" },
		{ 0, 7, UINT64_MAX, 7, UINT64_MAX, VIGIL_SEQ_DUPLICATE, "sequence u64 max twice: DUPLICATE" },
		{ 0, 7, UINT64_MAX, 7, 0, VIGIL_SEQ_REORDERED, "sequence does not wrap: 0 after u64 max is REORDERED" },
		{ 0, 7, 0, 7, UINT64_MAX, VIGIL_SEQ_ACCEPT, "sequence 0 -> u64 max: ACCEPT" },
		{ 0, 0, UINT64_MAX, UINT32_MAX, 0, VIGIL_SEQ_RESTART, "incarnation 0 -> u32 max: RESTART" },
		{ 0, UINT32_MAX, 0, 0, UINT64_MAX, VIGIL_SEQ_REORDERED, "incarnation does not wrap: 0 after u32 max is REORDERED" },
		{ 0, UINT32_MAX - 1, 5, UINT32_MAX, 0, VIGIL_SEQ_RESTART, "incarnation u32 max after max-1: RESTART" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		enum vigil_seq_verdict v = vigil_seq_classify(cases[i].first, cases[i].slot_inc,
							      cases[i].slot_seq, cases[i].inc,
							      cases[i].seq);
		diag("got %d want %d", v, cases[i].want);
		CHECK(v == cases[i].want, "seq_classify: %s", cases[i].what);
	}
}

/* The run-length coded gap histogram, against a plain one: after any
 * sequence of gaps, hist plus the pending run is the plain histogram, and
 * hist is written only when the bucket changes. */
static void test_gap_count(void)
{
	static const __u64 ms = VIGIL_NSEC_PER_MSEC;
	__u32 hist[VIGIL_GAP_BUCKETS] = { 0 }, plain[VIGIL_GAP_BUCKETS] = { 0 }, run = 0;
	__u32 writes = 0, changes = 0, prev = ~0u;
	__u8 bucket = 0;
	int bad = 0;

	for (int i = 0; i < 100000; i++) {
		/* Runs of a steady cadence, now and then another gap. */
		__u64 gap = i % 1000 < 990 ? 100 * ms : (__u64)(i * 7919 % 40000) * ms / 3;
		__u32 before[VIGIL_GAP_BUCKETS], b = vigil_gap_bucket(gap);

		memcpy(before, hist, sizeof(hist));
		vigil_gap_count(&bucket, &run, hist, gap);
		plain[b]++;
		writes += memcmp(before, hist, sizeof(hist)) != 0;
		changes += prev != ~0u && b != prev;
		prev = b;
		for (__u32 k = 0; k < VIGIL_GAP_BUCKETS; k++)
			bad += hist[k] + (k == bucket ? run : 0) != plain[k];
	}
	diag("%d mismatches, %u writes to hist, %u bucket changes", bad, writes, changes);
	CHECK(!bad && writes <= changes,
	      "gap_count: hist + the pending run equals a plain histogram after every gap, and "
	      "hist is written only when the bucket changes");
}

static void test_clamp(void)
{
	static const struct {
		__u32 ms, min, max, want;
	} cases[] = {
		{ 0, 10, 10000, 10 },
		{ 9, 10, 10000, 10 },
		{ 10, 10, 10000, 10 },
		{ 11, 10, 10000, 11 },
		{ 500, 10, 10000, 500 },
		{ 9999, 10, 10000, 9999 },
		{ 10000, 10, 10000, 10000 },
		{ 10001, 10, 10000, 10000 },
		{ UINT32_MAX, 10, 10000, 10000 },
		{ 0, 0, UINT32_MAX, 0 },
		{ UINT32_MAX, 0, UINT32_MAX, UINT32_MAX },
		{ 1, 50, 50, 50 },
		{ 50, 50, 50, 50 },
		{ 51, 50, 50, 50 },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		__u32 got = vigil_clamp_interval(cases[i].ms, cases[i].min, cases[i].max);

		diag("got %u", got);
		CHECK(got == cases[i].want, "clamp_interval(%u, [%u, %u]) = %u", cases[i].ms,
		      cases[i].min, cases[i].max, cases[i].want);
	}
}

static const char *state_name(__u32 s)
{
	static const char *names[] = { "FREE", "NEW", "ALIVE", "SUSPECT", "DEAD", "LEFT" };

	return s <= VIGIL_AGENT_STATE_MAX ? names[s] : "invalid";
}

static const char *action_name(enum vigil_sweep_action a)
{
	switch (a) {
	case VIGIL_SWEEP_KEEP: return "KEEP";
	case VIGIL_SWEEP_TO_SUSPECT: return "TO_SUSPECT";
	case VIGIL_SWEEP_TO_DEAD: return "TO_DEAD";
	case VIGIL_SWEEP_DROP: return "DROP";
	}
	return "?";
}

#define NO_NEXT UINT64_MAX /* next_ns not looked at */

static void sweep_case(__u32 state, __u64 last, __u32 ivl, __u32 mult, __u32 dm, __u64 now,
		       enum vigil_sweep_action want, __u64 want_next, const char *what)
{
	__u64 next = 0xdeadbeef;
	enum vigil_sweep_action a = vigil_sweep_eval(state, last, ivl, mult, dm, now, &next);

	diag("got %s next_ns %" PRIu64 ", want %s next_ns %" PRIu64, action_name(a),
	     (uint64_t)next, action_name(want), (uint64_t)want_next);
	CHECK(a == want && (want_next == NO_NEXT || next == want_next), "sweep_eval %s: %s",
	      state_name(state), what);
}

static void test_sweep_eval(void)
{
	/* last seen at 5 s, interval 100 ms, multiplier 3, dead after 2 more. */
	const __u64 L = 5 * VIGIL_NSEC_PER_SEC, MS = VIGIL_NSEC_PER_MSEC;
	const __u32 I = 100, M = 3, DM = 2;
	const __u64 DL = L + 300 * MS, DA = L + 500 * MS;
	static const __u32 watched[] = { VIGIL_AGENT_NEW, VIGIL_AGENT_ALIVE };

	CHECK(vigil_deadline(L, I, M) == DL && vigil_dead_at(L, I, M, DM) == DA,
	      "deadline = last + mult x interval; dead_at = deadline + dead_misses x interval");

	for (size_t i = 0; i < 2; i++) {
		__u32 s = watched[i];

		sweep_case(s, L, I, M, DM, L, VIGIL_SWEEP_KEEP, DL, "right after a beat: KEEP until deadline");
		sweep_case(s, L, I, M, DM, DL - 1, VIGIL_SWEEP_KEEP, DL, "deadline-1: KEEP, next at deadline (never early)");
		sweep_case(s, L, I, M, DM, DL, VIGIL_SWEEP_TO_SUSPECT, DA, "at deadline: TO_SUSPECT, next at dead_at");
		sweep_case(s, L, I, M, DM, DA, VIGIL_SWEEP_TO_SUSPECT, DA, "late sweep at dead_at: SUSPECT first, not DEAD");
		sweep_case(s, L, I, M, DM, DA + 3600 * VIGIL_NSEC_PER_SEC, VIGIL_SWEEP_TO_SUSPECT, DA,
			   "an hour late: still SUSPECT first");
		sweep_case(s, L + 7 * MS, I, M, DM, L, VIGIL_SWEEP_KEEP, DL + 7 * MS,
			   "beat newer than the sweep's clock: KEEP");
	}
	sweep_case(VIGIL_AGENT_SUSPECT, L, I, M, DM, DL, VIGIL_SWEEP_KEEP, DA, "at deadline: KEEP, next at dead_at");
	sweep_case(VIGIL_AGENT_SUSPECT, L, I, M, DM, DA - 1, VIGIL_SWEEP_KEEP, DA, "dead_at-1: KEEP (never early)");
	sweep_case(VIGIL_AGENT_SUSPECT, L, I, M, DM, DA, VIGIL_SWEEP_TO_DEAD, NO_NEXT, "exactly at dead_at: TO_DEAD");
	sweep_case(VIGIL_AGENT_SUSPECT, L, I, M, DM, DA + 3600 * VIGIL_NSEC_PER_SEC, VIGIL_SWEEP_TO_DEAD, NO_NEXT,
		   "an hour after dead_at: TO_DEAD");
	sweep_case(VIGIL_AGENT_SUSPECT, L, I, M, DM, L, VIGIL_SWEEP_KEEP, DA,
		   "visited right after last_seen: KEEP, next at dead_at");

	/* dead_misses = 0: DEAD follows SUSPECT on the next look. */
	sweep_case(VIGIL_AGENT_ALIVE, L, I, M, 0, DL, VIGIL_SWEEP_TO_SUSPECT, DL, "dead_misses 0: SUSPECT at deadline, next = deadline");
	sweep_case(VIGIL_AGENT_SUSPECT, L, I, M, 0, DL - 1, VIGIL_SWEEP_KEEP, DL, "dead_misses 0: deadline-1 KEEP");
	sweep_case(VIGIL_AGENT_SUSPECT, L, I, M, 0, DL, VIGIL_SWEEP_TO_DEAD, NO_NEXT, "dead_misses 0: DEAD at deadline");

	{
		static const __u32 dropped[] = { VIGIL_AGENT_FREE, VIGIL_AGENT_DEAD, VIGIL_AGENT_LEFT,
						 VIGIL_AGENT_STATE_MAX + 1, UINT32_MAX };
		static const __u64 nows[] = { 0, DL - 1, DL, DA, UINT64_MAX };

		for (size_t i = 0; i < sizeof(dropped) / sizeof(dropped[0]); i++) {
			bool all = true;

			for (size_t j = 0; j < sizeof(nows) / sizeof(nows[0]); j++) {
				__u64 next = 0;

				if (vigil_sweep_eval(dropped[i], L, I, M, DM, nows[j], &next) != VIGIL_SWEEP_DROP) {
					diag("now %" PRIu64 ": not DROP", (uint64_t)nows[j]);
					all = false;
				}
			}
			CHECK(all, "sweep_eval state %u (%s): DROP at any time", dropped[i],
			      state_name(dropped[i]));
		}
	}

	/* Large intervals: compare with exact 128-bit arithmetic. */
	{
		static const struct {
			__u64 last;
			__u32 ivl, mult, dm;
		} big[] = {
			{ 0, UINT32_MAX, 1, 0 },
			{ 1000000000000000000ULL, UINT32_MAX, 100, 100 },
			{ 1ULL << 62, UINT32_MAX, 1000, 1000 },
			{ 0, UINT32_MAX, 4294, 0 }, /* largest multiplier that fits for any interval */
			{ 1000000000000ULL, 3600000, 3, 10 },
			{ 1ULL << 62, 3600000, 100, 1000 }, /* the daemon's configurable maxima */
			{ 0, 1, UINT32_MAX, UINT32_MAX },
		};

		for (size_t i = 0; i < sizeof(big) / sizeof(big[0]); i++) {
			unsigned __int128 ms = VIGIL_NSEC_PER_MSEC;
			unsigned __int128 dl = big[i].last + (unsigned __int128)big[i].mult * big[i].ivl * ms;
			unsigned __int128 da = dl + (unsigned __int128)big[i].dm * big[i].ivl * ms;
			__u64 d = vigil_deadline(big[i].last, big[i].ivl, big[i].mult);
			__u64 a = vigil_dead_at(big[i].last, big[i].ivl, big[i].mult, big[i].dm);
			__u64 n1 = 0, n2 = 0, n3 = 0, n4 = 0;
			bool ok = da <= UINT64_MAX && d == (__u64)dl && a == (__u64)da;

			ok = ok && vigil_sweep_eval(VIGIL_AGENT_ALIVE, big[i].last, big[i].ivl, big[i].mult,
						    big[i].dm, d - 1, &n1) == VIGIL_SWEEP_KEEP && n1 == d;
			ok = ok && vigil_sweep_eval(VIGIL_AGENT_ALIVE, big[i].last, big[i].ivl, big[i].mult,
						    big[i].dm, d, &n2) == VIGIL_SWEEP_TO_SUSPECT && n2 == a;
			ok = ok && vigil_sweep_eval(VIGIL_AGENT_SUSPECT, big[i].last, big[i].ivl, big[i].mult,
						    big[i].dm, a - 1, &n3) == VIGIL_SWEEP_KEEP && n3 == a;
			ok = ok && vigil_sweep_eval(VIGIL_AGENT_SUSPECT, big[i].last, big[i].ivl, big[i].mult,
						    big[i].dm, a, &n4) == VIGIL_SWEEP_TO_DEAD;
			diag("deadline %" PRIu64 " dead_at %" PRIu64 " next %" PRIu64 "/%" PRIu64,
			     (uint64_t)d, (uint64_t)a, (uint64_t)n1, (uint64_t)n2);
			CHECK(ok, "sweep_eval exact without overflow: last %" PRIu64 " interval %u ms x%u, dead_misses %u",
			      (uint64_t)big[i].last, big[i].ivl, big[i].mult, big[i].dm);
		}
	}

	/* Property: whatever the inputs (within the no-overflow domain), a
	 * watched slot is never early and KEEP always points into the future. */
	reseed(2);
	{
		int bad = 0;

		for (int i = 0; i < 200000 && bad < 3; i++) {
			__u32 state = (__u32)rnd_range(VIGIL_AGENT_NEW, VIGIL_AGENT_SUSPECT);
			__u64 last = rnd() >> 4;
			__u32 ivl = (__u32)rnd_range(1, 1000000), mult = (__u32)rnd_range(1, 10);
			__u32 dm = (__u32)rnd_range(0, 10);
			__u64 d = vigil_deadline(last, ivl, mult), a = vigil_dead_at(last, ivl, mult, dm);
			__u64 now = rnd_range(last > 1000 ? last - 1000 : 0, a + 1000000), next = 0;
			enum vigil_sweep_action act = vigil_sweep_eval(state, last, ivl, mult, dm, now, &next);
			bool ok;

			switch (act) {
			case VIGIL_SWEEP_KEEP:
				ok = next > now && (state == VIGIL_AGENT_SUSPECT ? next == a : next == d);
				break;
			case VIGIL_SWEEP_TO_SUSPECT:
				ok = state != VIGIL_AGENT_SUSPECT && now >= d && next == a;
				break;
			case VIGIL_SWEEP_TO_DEAD:
				ok = state == VIGIL_AGENT_SUSPECT && now >= a;
				break;
			default:
				ok = false;
			}
			if (!ok) {
				diag("state %s last %" PRIu64 " ivl %u x%u dm %u now %" PRIu64 ": %s next %" PRIu64,
				     state_name(state), (uint64_t)last, ivl, mult, dm, (uint64_t)now,
				     action_name(act), (uint64_t)next);
				bad++;
			}
		}
		CHECK(!bad, "sweep_eval property (200000 random cases): SUSPECT only at/after deadline, "
			    "DEAD only at/after dead_at, KEEP always in the future");
	}
}

static void test_wheel_due(void)
{
	const __u64 MS = VIGIL_NSEC_PER_MSEC;
	static const struct {
		__u64 now, next, horizon, tick, want;
		const char *what;
	} cases[] = {
		{ 0, 5 * MS, 100 * MS, MS, 5, "deadline on a tick boundary: that tick" },
		{ 0, 5 * MS + 1, 100 * MS, MS, 6, "1 ns past a boundary: rounds up to the next tick" },
		{ 0, 5 * MS - 1, 100 * MS, MS, 5, "1 ns before a boundary: rounds up to it" },
		{ 0, 1, 100 * MS, MS, 1, "1 ns: tick 1, never tick 0" },
		{ 0, 0, 100 * MS, MS, 0, "deadline 0: tick 0" },
		{ 12345, 67890, UINT64_MAX / 2, 1, 67890, "tick of 1 ns: due = next" },
		{ 10 * MS, 500 * MS, 30 * MS, MS, 40, "far deadline clamped to now + horizon" },
		{ 10 * MS + 1, 500 * MS, 30 * MS, MS, 41, "clamped target rounds up too" },
		{ 10 * MS, 40 * MS, 30 * MS, MS, 40, "deadline exactly at the horizon: not clamped" },
		{ 10 * MS, 40 * MS + 1, 30 * MS, MS, 40, "1 ns beyond the horizon: clamped" },
		{ 10 * MS, 39 * MS + 1, 30 * MS, MS, 40, "just inside the horizon, rounds up" },
		{ 10 * MS + 5, 500 * MS, 0, MS, 11, "horizon 0: the next tick boundary after now" },
		{ 7 * MS, 2 * MS, 30 * MS, MS, 2, "overdue deadline: its own (past) tick; file_slot clamps" },
		{ 0, 10 * MS, 100 * MS, 3 * MS, 4, "tick of 3 ms: 10 ms -> tick 4 (12 ms)" },
		{ 1000003, 2000006, 100 * MS, 1000003, 2, "odd tick length, exact multiple" },
		{ 1000003, 2000007, 100 * MS, 1000003, 3, "odd tick length, 1 ns over" },
		{ 1ULL << 62, (1ULL << 62) + 3 * MS, 10 * VIGIL_NSEC_PER_SEC, MS,
		  ((1ULL << 62) + 3 * MS + MS - 1) / MS, "large clock values" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		__u64 got = vigil_wheel_due(cases[i].now, cases[i].next, cases[i].horizon, cases[i].tick);

		diag("got %" PRIu64 " want %" PRIu64, (uint64_t)got, (uint64_t)cases[i].want);
		CHECK(got == cases[i].want, "wheel_due: %s", cases[i].what);
	}

	CHECK(vigil_horizon_ns(10, 3) == 30 * MS && vigil_horizon_ns(0, 3) == 0 &&
		      vigil_horizon_ns(UINT32_MAX, 1) == (__u64)UINT32_MAX * MS,
	      "horizon_ns = multiplier x interval_min");

	/*
	 * Property. The sweeper visits the slot at time `now` and files it at
	 * tick due = vigil_wheel_due(now, next_ns, horizon, tick); bucket k is
	 * processed at the first sweep with now >= k * tick. Afterwards beats
	 * can only move the deadline to D = b + mult x clamp(i) with b >= now,
	 * so D >= now + horizon. The first tick at which a deadline D can be
	 * observed as passed is ceil(D / tick). The invariant the wheel needs:
	 *   (1) due <= ceil(next_ns / tick)   - the current deadline is not missed
	 *   (2) due <= ceil(D / tick) for every possible D - nor any later one
	 *   (3) due * tick >= min(next_ns, now + horizon) - a visit never comes
	 *       before its target, so a due slot at a deadline is really late
	 *   (4) (due - 1) * tick < min(next_ns, now + horizon) - it is the first
	 *       such tick: no wasted early visit.
	 * Note: the comment in logic.h says "looked at again before its earliest
	 * possible deadline"; with rounding up, due * tick can lie after
	 * now + horizon (within one tick). What holds, and what matters, is (2).
	 */
	reseed(3);
	{
		static const __u64 ticks[] = { 1, 1000, 250000, 1000000, 1000003, 3000000, 7000000 };
		int bad = 0;
		long visits = 0;

		for (int i = 0; i < 300000 && bad < 3; i++) {
			__u64 tick = ticks[rnd() % (sizeof(ticks) / sizeof(ticks[0]))];
			__u32 min = (__u32)rnd_range(1, 5000), max = (__u32)rnd_range(min, 100000);
			__u32 mult = (__u32)rnd_range(1, 10), dm = (__u32)rnd_range(0, 5);
			__u32 ivl = vigil_clamp_interval((__u32)rnd_range(1, 200000), min, max);
			__u32 state = (__u32)rnd_range(VIGIL_AGENT_NEW, VIGIL_AGENT_SUSPECT);
			__u64 now = rnd_range(1, 1ULL << (rnd() % 2 ? 40 : 62));
			__u64 last = now - rnd_range(0, now < 2000000000000ULL ? now : 2000000000000ULL);
			__u64 horizon = vigil_horizon_ns(min, mult), next = 0, due, target;
			enum vigil_sweep_action act = vigil_sweep_eval(state, last, ivl, mult, dm, now, &next);
			bool ok;

			if (act != VIGIL_SWEEP_KEEP && act != VIGIL_SWEEP_TO_SUSPECT)
				continue; /* leaves the wheel */
			visits++;
			due = vigil_wheel_due(now, next, horizon, tick);
			target = next < now + horizon ? next : now + horizon;
			ok = due <= ceil_div(next, tick);                            /* (1) */
			ok = ok && due <= ceil_div(now + horizon, tick);             /* (2) worst case */
			for (int k = 0; k < 8 && ok; k++) {                         /* (2) samples */
				__u64 b = now + (k == 0 ? 0 : rnd_range(0, 10 * VIGIL_NSEC_PER_SEC));
				__u32 adv = (__u32)rnd_range(1, 300000);
				__u64 d = vigil_deadline(b, vigil_clamp_interval(adv, min, max), mult);

				ok = due <= ceil_div(d, tick);
			}
			ok = ok && due * tick >= target;                             /* (3) */
			ok = ok && (due == 0 || (due - 1) * tick < target);          /* (4) */
			if (!ok) {
				diag("now %" PRIu64 " last %" PRIu64 " ivl %u [%u,%u] x%u tick %" PRIu64
				     " next %" PRIu64 " horizon %" PRIu64 " -> due %" PRIu64,
				     (uint64_t)now, (uint64_t)last, ivl, min, max, mult, (uint64_t)tick,
				     (uint64_t)next, (uint64_t)horizon, (uint64_t)due);
				bad++;
			}
		}
		diag("visits %ld", visits);
		CHECK(!bad && visits > 100000,
		      "wheel_due property (300000 random slots): filed no later than the first tick "
		      "at/after the current deadline or any deadline a later beat can set, and "
		      "never before its target");
	}
}

/* ============================================================= simulation */

/*
 * A plain-C model of the sweeper in bpf/wheel.bpf.h (cursor, buckets modulo
 * the wheel size, inbox, file_slot's clamp to the cursor) driven only by the
 * pure functions, with one agent: it registers, beats with random jitter and
 * random interval changes (always keeping its promise "the next beat comes
 * within interval_ms"), sometimes pauses long enough to be suspected or
 * declared dead and comes back, and finally stops.
 *
 * Checked for every gap between two beats (registration counts as the first),
 * with D its deadline, A its dead_at, and "covering firing" of a time X the
 * first timer firing after the gap began whose tick floor(now / tick) is at
 * least ceil(X / tick):
 *   - at most SUSPECT then DEAD, each at most once (never twice);
 *   - SUSPECT at D <= t < covering firing of D (ideal timer: t < D + tick);
 *     if none, the covering firing came no earlier than the next beat;
 *   - DEAD likewise against A (and after SUSPECT);
 *   - the next beat reports UP (first beat) or RECOVERED exactly when due.
 */
struct sim_cfg {
	const char *name;
	__u64 tick_ns;
	__u32 buckets;  /* power of two */
	__u32 min_ms, max_ms, mult, dead_misses;
	int jitter;     /* 0: timer fires exactly at k*tick; 1: late, drifting, stalls */
	int runs;
};

enum { EV_UP = 1, EV_SUSPECT, EV_DEAD, EV_RECOVERED };

struct sim_event {
	int kind;
	__u64 t;
	__u64 cursor; /* sweeper cursor after the event (for DEAD's bound) */
	int gap;
};

struct vec {
	void *p;
	size_t n, cap, elem;
};

static void *vec_push(struct vec *v)
{
	if (v->n == v->cap) {
		v->cap = v->cap ? v->cap * 2 : 64;
		v->p = realloc(v->p, v->cap * v->elem);
		if (!v->p) {
			perror("realloc");
			exit(2);
		}
	}
	return (char *)v->p + v->elem * v->n++;
}

struct beat_plan {
	__u64 t;
	__u32 adv; /* advertised interval_ms */
};

struct sim {
	const struct sim_cfg *c;
	/* agent slot */
	__u32 state;
	__u64 last_seen;
	__u32 interval;
	/* wheel */
	int in_wheel, inbox;
	__u32 bucket;
	__u64 next_tick;
	int started;
	int gap; /* beats applied so far */
	struct vec events, firings;
};

static void sim_emit(struct sim *s, int kind, __u64 t)
{
	struct sim_event *e = vec_push(&s->events);

	e->kind = kind;
	e->t = t;
	e->cursor = s->next_tick;
	e->gap = s->gap;
}

static void sim_file(struct sim *s, __u64 due)
{
	if (due < s->next_tick)
		due = s->next_tick;
	s->bucket = (__u32)(due & (s->c->buckets - 1));
}

/* visit() of the BPF sweeper. */
static void sim_visit(struct sim *s, __u64 now)
{
	__u64 next = 0, horizon = vigil_horizon_ns(s->c->min_ms, s->c->mult);
	__u32 st = s->state;

	switch (vigil_sweep_eval(st, s->last_seen, s->interval, s->c->mult, s->c->dead_misses, now,
				 &next)) {
	case VIGIL_SWEEP_KEEP:
		sim_file(s, vigil_wheel_due(now, next, horizon, s->c->tick_ns));
		break;
	case VIGIL_SWEEP_TO_SUSPECT: /* CAS st -> SUSPECT, as transition() */
		s->state = VIGIL_AGENT_SUSPECT;
		sim_emit(s, EV_SUSPECT, now);
		sim_file(s, vigil_wheel_due(now, next, horizon, s->c->tick_ns));
		break;
	case VIGIL_SWEEP_TO_DEAD:
		s->state = VIGIL_AGENT_DEAD;
		sim_emit(s, EV_DEAD, now);
		s->in_wheel = 0;
		break;
	case VIGIL_SWEEP_DROP:
		s->in_wheel = 0;
		break;
	}
}

/* accept_beat() of the XDP program, for an OK-status beat. */
static void sim_beat(struct sim *s, const struct beat_plan *b)
{
	s->gap++;
	s->last_seen = b->t;
	s->interval = vigil_clamp_interval(b->adv, s->c->min_ms, s->c->max_ms);
	switch (s->state) {
	case VIGIL_AGENT_NEW:
		s->state = VIGIL_AGENT_ALIVE;
		sim_emit(s, EV_UP, b->t);
		break;
	case VIGIL_AGENT_SUSPECT:
		s->state = VIGIL_AGENT_ALIVE;
		sim_emit(s, EV_RECOVERED, b->t);
		break;
	case VIGIL_AGENT_DEAD:
		s->state = VIGIL_AGENT_ALIVE;
		sim_emit(s, EV_RECOVERED, b->t);
		s->inbox = 1; /* hand_to_sweeper() */
		break;
	}
}

/* sweep_tick(): admit the inbox, then process every due bucket. */
static void sim_fire(struct sim *s, __u64 now)
{
	__u64 now_tick = now / s->c->tick_ns;

	*(__u64 *)vec_push(&s->firings) = now;
	if (!s->started) {
		s->next_tick = now_tick;
		s->started = 1;
	}
	if (s->inbox) {
		s->inbox = 0;
		if (!s->in_wheel) {
			s->in_wheel = 1;
			sim_visit(s, now);
		}
	}
	while (s->next_tick <= now_tick) {
		__u32 b = (__u32)(s->next_tick & (s->c->buckets - 1));
		int here = s->in_wheel && s->bucket == b;

		s->next_tick++; /* the bucket is detached before its slots are visited */
		if (here)
			sim_visit(s, now);
	}
}

/* First firing at or after `from` whose tick is at least ceil(x / tick). */
static __u64 covering_firing(const struct sim *s, __u64 from, __u64 x)
{
	const __u64 *f = s->firings.p;
	__u64 k = ceil_div(x, s->c->tick_ns);
	size_t lo = 0, hi = s->firings.n;

	while (lo < hi) { /* firings are sorted: find the first >= from */
		size_t mid = lo + (hi - lo) / 2;

		if (f[mid] < from)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (size_t i = lo; i < s->firings.n; i++)
		if (f[i] / s->c->tick_ns >= k)
			return f[i];
	return UINT64_MAX;
}

static __u32 pick_adv(const struct sim_cfg *c)
{
	switch (rnd() % 6) {
	case 0:
	case 1: return c->min_ms;                                        /* fastest */
	case 2: return (__u32)rnd_range(1, c->min_ms);                   /* faster than allowed: clamped up */
	case 3: return c->max_ms;                                        /* slowest */
	default: return (__u32)rnd_range(c->min_ms, c->max_ms);
	}
}

struct sim_totals {
	long suspects, deads, recovered, gaps;
};

/* One run; returns false (with diagnostics) on the first violation. */
static bool sim_run(const struct sim_cfg *c, struct sim_totals *tot)
{
	const __u64 MS = VIGIL_NSEC_PER_MSEC, tick = c->tick_ns;
	struct vec plan = { .elem = sizeof(struct beat_plan) };
	struct sim s = { .c = c, .events = { .elem = sizeof(struct sim_event) },
			 .firings = { .elem = sizeof(__u64) } };
	__u64 t_reg = rnd_range(1, 1ULL << (rnd() % 4 ? 36 : 60));
	__u64 prev_t = t_reg, end, fire;
	__u32 prev_adv = c->max_ms, prev_ivl = c->max_ms;
	int nbeats = (int)rnd_range(1, 40);
	size_t pi = 0, ei = 0;
	bool ok = true;

	/* The script: when the agent beats and what it promises each time. */
	for (int i = 0; i < nbeats; i++) {
		__u64 d = vigil_deadline(prev_t, prev_ivl, c->mult);
		__u64 a = vigil_dead_at(prev_t, prev_ivl, c->mult, c->dead_misses);
		struct beat_plan *b = vec_push(&plan);
		unsigned r = (unsigned)(rnd() % 10);

		if (r == 0 && a - d >= 3 * tick)      /* late enough for SUSPECT only */
			b->t = d + tick + rnd_range(0, a - d - 3 * tick);
		else if (r == 1)                     /* long enough for DEAD */
			b->t = a + tick + rnd_range(0, 5 * tick + prev_ivl * MS);
		else                                 /* on time: within the promise */
			b->t = prev_t + rnd_range(0, (__u64)prev_adv * MS - 1);
		b->adv = pick_adv(c);
		prev_t = b->t;
		prev_adv = b->adv;
		prev_ivl = vigil_clamp_interval(b->adv, c->min_ms, c->max_ms);
	}
	end = vigil_dead_at(prev_t, prev_ivl, c->mult, c->dead_misses) + 50 * tick;

	/* Registration (vg_agent_add): NEW, deadline from now at the slowest cadence. */
	s.state = VIGIL_AGENT_NEW;
	s.last_seen = t_reg;
	s.interval = c->max_ms;
	s.inbox = 1;

	fire = c->jitter ? t_reg + rnd_range(0, tick - 1) : (t_reg / tick + 1) * tick;
	while (fire <= end) {
		const struct beat_plan *bp = plan.p;

		while (pi < plan.n && bp[pi].t <= fire)
			sim_beat(&s, &bp[pi++]);
		sim_fire(&s, fire);
		if (!c->jitter) {
			fire += tick;
		} else {
			/* bpf_timer_start(tick) after the callback: late and drifting,
			 * sometimes stalled for a while. */
			fire += tick + rnd_range(0, tick / 4);
			if (rnd() % 200 == 0)
				fire += rnd_range(1, 20) * tick;
		}
	}

	/* Check every gap against its deadline. */
	{
		const struct beat_plan *bp = plan.p;
		const struct sim_event *ev = s.events.p;

		prev_t = t_reg;
		prev_ivl = c->max_ms;
		for (int g = 0; g <= nbeats && ok; g++) {
			__u64 d = vigil_deadline(prev_t, prev_ivl, c->mult);
			__u64 a = vigil_dead_at(prev_t, prev_ivl, c->mult, c->dead_misses);
			__u64 next_b = g < nbeats ? bp[g].t : UINT64_MAX;
			__u64 cover_s = covering_firing(&s, prev_t, d);
			const struct sim_event *sus = NULL, *dead = NULL;

			tot->gaps++;
			/* Sweeper events in this gap: nothing, SUSPECT, or SUSPECT + DEAD. */
			if (ei < s.events.n && ev[ei].gap == g && ev[ei].kind == EV_SUSPECT)
				sus = &ev[ei++];
			if (sus && ei < s.events.n && ev[ei].gap == g && ev[ei].kind == EV_DEAD)
				dead = &ev[ei++];
			if (ei < s.events.n && ev[ei].gap == g) {
				diag("gap %d: unexpected event %d at %" PRIu64 " (after %s)", g,
				     ev[ei].kind, (uint64_t)ev[ei].t, sus ? "SUSPECT" : "nothing");
				ok = false;
				break;
			}
			if (sus) {
				tot->suspects++;
				if (sus->t < d || sus->t > cover_s ||
				    (!c->jitter && sus->t >= d + tick)) {
					diag("gap %d: SUSPECT at %" PRIu64 ", deadline %" PRIu64
					     ", covering firing %" PRIu64, g, (uint64_t)sus->t,
					     (uint64_t)d, (uint64_t)cover_s);
					ok = false;
				}
			} else if (cover_s < next_b) {
				diag("gap %d: no SUSPECT, deadline %" PRIu64 " covered at %" PRIu64
				     ", next beat %" PRIu64, g, (uint64_t)d, (uint64_t)cover_s,
				     (uint64_t)next_b);
				ok = false;
			}
			if (sus && ok) {
				/* After SUSPECT the slot is filed no earlier than the cursor. */
				__u64 cover_d = covering_firing(&s, sus->t,
								sus->cursor * tick > a ? sus->cursor * tick : a);
				if (dead) {
					tot->deads++;
					if (dead->t < a || dead->t < sus->t || dead->t > cover_d ||
					    (!c->jitter && a > sus->t && dead->t >= a + tick)) {
						diag("gap %d: DEAD at %" PRIu64 ", dead_at %" PRIu64
						     ", SUSPECT at %" PRIu64 ", covering firing %" PRIu64,
						     g, (uint64_t)dead->t, (uint64_t)a, (uint64_t)sus->t,
						     (uint64_t)cover_d);
						ok = false;
					}
				} else if (cover_d < next_b) {
					diag("gap %d: no DEAD, dead_at %" PRIu64 " covered at %" PRIu64
					     ", next beat %" PRIu64, g, (uint64_t)a, (uint64_t)cover_d,
					     (uint64_t)next_b);
					ok = false;
				}
			}
			/* The beat that ends the gap. */
			if (ok && g < nbeats) {
				int want = g == 0 && !sus ? EV_UP : sus ? EV_RECOVERED : 0;

				if (want) {
					if (ei >= s.events.n || ev[ei].gap != g + 1 || ev[ei].kind != want ||
					    ev[ei].t != next_b) {
						diag("beat %d at %" PRIu64 ": expected event %d", g,
						     (uint64_t)next_b, want);
						ok = false;
					} else {
						ei++;
						tot->recovered += want == EV_RECOVERED;
					}
				}
				prev_t = bp[g].t;
				prev_ivl = vigil_clamp_interval(bp[g].adv, c->min_ms, c->max_ms);
			}
			if (ok && g == nbeats && !dead) {
				diag("agent stopped but was never declared DEAD");
				ok = false;
			}
		}
		if (ok && ei != s.events.n) {
			diag("%zu events left over after the last gap", s.events.n - ei);
			ok = false;
		}
		if (ok && (s.in_wheel || s.state != VIGIL_AGENT_DEAD)) {
			diag("after DEAD: in_wheel %d state %s", s.in_wheel, state_name(s.state));
			ok = false;
		}
	}
	free(plan.p);
	free(s.events.p);
	free(s.firings.p);
	return ok;
}

static void test_simulation(void)
{
	static const struct sim_cfg cfgs[] = {
		{ "defaults: 1 ms tick, 4096 buckets, [10,200] ms x3, dead +2", 1000000, 4096, 10, 200, 3, 2, 0, 300 },
		{ "horizon longer than a rotation: [100,1000] ms x3 on 64 buckets", 1000000, 64, 100, 1000, 3, 2, 0, 60 },
		{ "odd tick 1000003 ns, [1,50] ms x1, dead_misses 0", 1000003, 64, 1, 50, 1, 0, 0, 400 },
		{ "250 us tick, [5,100] ms x2, dead +1", 250000, 256, 5, 100, 2, 1, 0, 200 },
		{ "tick (7 ms) longer than the horizon (1 ms x1)", 7000000, 16, 1, 40, 1, 3, 0, 400 },
	};

	for (size_t i = 0; i < sizeof(cfgs) / sizeof(cfgs[0]); i++) {
		for (int jitter = 0; jitter <= 1; jitter++) {
			struct sim_cfg c = cfgs[i];
			struct sim_totals tot = { 0 };
			bool ok = true;
			int r;

			c.jitter = jitter;
			for (r = 0; r < c.runs && ok; r++) {
				reseed(1000 + i * 100000 + (size_t)jitter * 50000 + (size_t)r);
				ok = sim_run(&c, &tot);
			}
			if (!ok)
				diag("run %d (seed salt %zu)", r - 1,
				     1000 + i * 100000 + (size_t)jitter * 50000 + (size_t)(r - 1));
			diag("%ld gaps, %ld SUSPECT, %ld DEAD, %ld RECOVERED", tot.gaps, tot.suspects,
			     tot.deads, tot.recovered);
			CHECK(ok && tot.suspects > 0 && tot.deads >= c.runs && tot.recovered > 0,
			      "wheel simulation (%s timer), %s: SUSPECT/DEAD never early, by the first "
			      "tick that covers the deadline%s, never twice (%d runs, %ld SUSPECT)",
			      jitter ? "late/stalling" : "exact", c.name,
			      jitter ? "" : " (< deadline + 1 tick)", c.runs, tot.suspects);
		}
	}
}


/* Receive-path evidence: the gate, the hold backoff, the clock estimate. */
static void test_evidence(void)
{
	const __u64 MS = VIGIL_NSEC_PER_MSEC;

	CHECK(vigil_verdict_gate(100 * MS, 100 * MS, 100 * MS, 200 * MS, 0, 0) == VIGIL_GATE_DECIDE,
	      "gate: a watermark at the deadline is evidence");
	CHECK(vigil_verdict_gate(100 * MS, 100 * MS - 1, 299 * MS, 200 * MS, 0, 0) == VIGIL_GATE_HOLD,
	      "gate: a watermark 1 ns short holds until the bound");
	CHECK(vigil_verdict_gate(100 * MS, 0, 300 * MS, 200 * MS, 0, 0) == VIGIL_GATE_UNVERIFIED,
	      "gate: at deadline + bound: decide, unverified");
	CHECK(vigil_verdict_gate(100 * MS, 0, 100 * MS, 0, 0, 0) == VIGIL_GATE_UNVERIFIED &&
		      vigil_verdict_gate(100 * MS, 200 * MS, 100 * MS, 0, 0, 0) == VIGIL_GATE_DECIDE,
	      "gate: bound 0 never holds; evidence still noted");
	CHECK(vigil_verdict_gate(100 * MS, 200 * MS, 150 * MS, 200 * MS, 1, 0) == VIGIL_GATE_HOLD &&
		      vigil_verdict_gate(100 * MS, 200 * MS, 300 * MS, 200 * MS, 1, 0) ==
			      VIGIL_GATE_UNVERIFIED,
	      "gate: a queue losing beats over the silence is no evidence: hold, then unverified");
	CHECK(vigil_verdict_gate(100 * MS, 150 * MS, 160 * MS, 200 * MS, 0, 100 * MS) == VIGIL_GATE_HOLD &&
		      vigil_verdict_gate(100 * MS, 200 * MS, 210 * MS, 200 * MS, 0, 100 * MS) ==
			      VIGIL_GATE_DECIDE,
	      "gate: after recent losses the watermark must pass the deadline by the margin");
	{
		__u64 f = 0, t = 0;
		__u32 n = 0;

		CHECK(!vigil_loss_add(&f, &t, &n, 100 * MS, 110 * MS, 2) &&
			      vigil_loss_add(&f, &t, &n, 115 * MS, 118 * MS, 2) && f == 100 * MS &&
			      t == 118 * MS && n == 4,
		      "loss: losses within 10 ms join one episode; %d lost beats make a burst",
		      VIGIL_LOSS_BURST);
		CHECK(!vigil_loss_add(&f, &t, &n, 200 * MS, 200 * MS, 1) && f == 200 * MS && n == 1,
		      "loss: a loss far from the episode starts a new one");
		CHECK(vigil_loss_overlaps(100 * MS, 118 * MS, 90 * MS, 130 * MS) &&
			      !vigil_loss_overlaps(100 * MS, 118 * MS, 120 * MS, 150 * MS) &&
			      !vigil_loss_overlaps(0, 0, 0, 150 * MS),
		      "loss: a burst counts only if it covers the agent's silence");
		CHECK(vigil_first_lost_ns(100 * MS, 3, 10, 0) == 70 * MS &&
			      vigil_first_lost_ns(100 * MS, 0, 10, 0) == 0 &&
			      vigil_first_lost_ns(10 * MS, 3, 10, 0) == 0,
		      "loss: the first lost beat left about gap intervals earlier (0: unknown)");
		CHECK(vigil_first_lost_ns(100 * MS, 3, 10, 30 * MS) == 40 * MS &&
			      vigil_first_lost_ns(100 * MS, 3, 10, 65 * MS) == 70 * MS,
		      "loss: ... and within one interval of the beat before it (a sender late "
		      "with this one does not make the lost ones late)");
	}

	{
		__u32 step = 0;
		__u64 t = 1000, seen[16];
		int n = 0;

		for (; n < 16; n++) {
			seen[n] = vigil_hold_next_tick(t, &step, 1000 * MS + 700 * MS, MS);
			t = seen[n];
		}
		diag("steps: %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 " ... last %" PRIu64,
		     (uint64_t)seen[0], (uint64_t)seen[1], (uint64_t)seen[2], (uint64_t)seen[3],
		     (uint64_t)seen[15]);
		CHECK(seen[0] == 1001 && seen[1] == 1003 && seen[2] == 1007 && seen[3] == 1015 &&
			      seen[4] == 1023 && seen[15] == 1111,
		      "hold backoff: 1, 2, 4, then every %d ticks",
		      VIGIL_HOLD_STEP_MAX);
		step = 0;
		t = 1000;
		for (n = 0; n < 200 && t < 1700; n++) {
			__u64 next = vigil_hold_next_tick(t, &step, 1000 * MS + 700 * MS, MS);

			if (next - t > VIGIL_HOLD_STEP_MAX || next > 1700)
				break;
			t = next;
		}
		CHECK(t == 1700,
		      "hold backoff: no two looks more than %d ticks apart, the last at the bound "
		      "(a verdict is taken within %d ticks of its evidence)",
		      VIGIL_HOLD_STEP_MAX, VIGIL_HOLD_STEP_MAX);
	}

	{
		const __u64 S = VIGIL_NSEC_PER_SEC, t0 = 100 * S;
		__s64 off = 0, est;
		__u64 at = 0;

		est = vigil_clock_update(&off, &at, t0, 5000);
		CHECK(est == 5000 && at == t0, "clock: the first beat sets the estimate");
		est = vigil_clock_update(&off, &at, t0 + 10, 7000);
		CHECK(est == 5000 && at == t0, "clock: a slower beat does not raise it (least delay)");
		est = vigil_clock_update(&off, &at, t0 + 20, 4000);
		CHECK(est == 4000 && at == t0 + 20, "clock: a faster beat lowers it at once");
		est = vigil_clock_update(&off, &at, t0 + 20 + 10 * S, 1000000000);
		diag("estimate %lld", (long long)est);
		CHECK(est == (__s64)(4000 + 10 * S / 1000000 * VIGIL_CLOCK_DRIFT_PPM) && off == 4000,
		      "clock: a receive path 1 s behind for 10 s raises it by the drift bound only "
		      "(%d ppm)", VIGIL_CLOCK_DRIFT_PPM);
		est = vigil_clock_update(&off, &at, t0 + 20 + 10 * S, 4000 + 1000000);
		CHECK(est == 4000 + 1000000 && at == t0 + 20 + 10 * S,
		      "clock: an agent clock running slow is followed within the bound");
		at = 0;
		est = vigil_clock_update(&off, &at, t0 + 30 * S, -7);
		CHECK(est == -7 && off == -7, "clock: started afresh (a restart), negative offsets too");
		est = vigil_clock_update(&off, &at, ~0ULL, 0);
		CHECK(est <= 0 + (__s64)((1ULL << 50) / 1000 * VIGIL_CLOCK_DRIFT_PPM / 1000),
		      "clock: no overflow however long since the last minimum");
	}

	CHECK(vigil_send_estimate(10 * MS, 10 * MS - 100, 100) == 10 * MS,
	      "send estimate: a beat with the least delay arrived as sent");
	CHECK(vigil_send_estimate(10 * MS, 5 * MS - 100, 100) == 5 * MS,
	      "send estimate: a beat 5 ms late was sent 5 ms ago");
	CHECK(vigil_send_estimate(10 * MS, 10 * MS, 100) == 10 * MS,
	      "send estimate: never after the arrival");
	CHECK(vigil_send_estimate(10 * MS, 0xfedcba9876543210ULL, 100) == 0,
	      "send estimate: a timestamp far from the agent's usual offset gives 0");
	CHECK(vigil_send_estimate(10 * MS, 1000, -(__s64)(MS)) == 0,
	      "send estimate: a delay reaching back before boot gives 0");
	reseed(11);
	{
		int bad = 0;

		for (int i = 0; i < 200000; i++) {
			__u64 now = rnd(), send = rnd();
			__s64 off = (__s64)rnd();
			__u64 est = vigil_send_estimate(now, send, off);

			bad += est > now;
		}
		CHECK(!bad, "send estimate: never later than the arrival (200000 random inputs)");
	}
}

int main(void)
{
	const char *seed = getenv("VIGIL_TEST_SEED");

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (seed && *seed)
		base_seed = strtoull(seed, NULL, 0);
	printf("# test_logic: pure functions of include/vigil (seed %#" PRIx64 ")\n", base_seed);

	test_wire_golden();
	test_wire_roundtrip();
	test_wire_lengths();
	test_wire_magic_version();
	test_wire_fields();
	test_seq_classify();
	test_clamp();
	test_gap_count();
	test_sweep_eval();
	test_wheel_due();
	test_evidence();
	test_simulation();

	return check_finish();
}
