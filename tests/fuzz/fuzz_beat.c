// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
/*
 * fuzz_beat: libFuzzer target over the host build of the beat parser, the
 * tag check and the anti-replay window: include/vigil/{wire,auth,siphash}.h,
 * the very code the XDP program runs. Built by `make build/fuzz_beat`
 * (clang, -fsanitize=fuzzer,address,undefined); run by `make fuzz` and, for
 * a few seconds, by tests/fuzz/smoke.sh.
 *
 * Input: byte 0 is a control byte: bits 0-6 are the replay window, taken as
 * is (0..127, so values beyond the documented 1..64 are tried too, as a
 * hand-edited vigil_config could hold them); bit 7 picks one of two keys.
 * The rest is one UDP payload, copied into a heap buffer of exactly its size
 * so ASan reports any read past it. The same bytes are then read again as
 * steps (incarnation, sequence) for the replay window.
 *
 * Invariants (any violation aborts with a message):
 *  - vigil_beat_decode agrees with an independent decoder written from
 *    docs/wire-format.md: verdict, has_agent_id (only when len >= 16 and the
 *    magic matches), agent_id, and every field of an OK beat; OK only when
 *    len == 64;
 *  - decode reads nothing at or past len: the verdict is the same from a
 *    buffer padded with zeros (the XDP short-datagram path) or with junk;
 *  - an OK beat re-encodes to the same 48 bytes (vigil_beat_encode);
 *  - vigil_beat_tag_ok agrees with a reference SipHash-2-4 (itself checked
 *    against the published test vector), and vigil_siphash24 agrees with it
 *    for any length;
 *  - a beat signed with vigil_beat_sign verifies with its key, not with the
 *    other key, stays well-formed, and no 1-bit change of it verifies;
 *  - vigil_replay_check agrees, verdict by verdict and state by state, with
 *    a reference window kept as an explicit set, and never accepts the same
 *    (incarnation, sequence) twice;
 *  - vigil_clamp_interval stays within its bounds.
 *
 * Seeds (tests/fuzz/seeds, control byte first): valid-signed-key0 and
 * valid-signed-key1-leaving (well-formed beats tagged with the keys below),
 * valid-then-steps (a beat followed by replay steps), truncated-20,
 * bad-version, unsigned, and replay-window-over-64 (window 127: a sequence
 * 70 below the top, which once shifted a 64-bit bitmap by 70; regression of
 * the clamp in vigil_replay_check).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* siphash.h asks clang to unroll its loops, which it can only do for the
 * constant lengths of the BPF call sites; the host build is not one. */
#pragma clang diagnostic ignored "-Wpass-failed"
#include "vigil/wire.h"
#include "vigil/auth.h"
#include "vigil/logic.h"

#define CHECK(cond, ...)                                                        \
	do {                                                                    \
		if (!(cond)) {                                                  \
			fprintf(stderr, "fuzz_beat: %s:%d: invariant failed: %s: ", \
				__FILE__, __LINE__, #cond);                     \
			fprintf(stderr, __VA_ARGS__);                           \
			fputc('\n', stderr);                                    \
			abort();                                                \
		}                                                               \
	} while (0)

/* ------------------------------------------------- reference SipHash-2-4 */

/* Written after the reference implementation (Aumasson and Bernstein), not
 * after include/vigil/siphash.h: byte-wise tail through a switch. */
#define REF_ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define REF_ROUND                                                               \
	do {                                                                    \
		v0 += v1; v1 = REF_ROTL(v1, 13); v1 ^= v0; v0 = REF_ROTL(v0, 32); \
		v2 += v3; v3 = REF_ROTL(v3, 16); v3 ^= v2;                       \
		v0 += v3; v3 = REF_ROTL(v3, 21); v3 ^= v0;                       \
		v2 += v1; v1 = REF_ROTL(v1, 17); v1 ^= v2; v2 = REF_ROTL(v2, 32); \
	} while (0)

static uint64_t ref_le64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static uint64_t ref_siphash(const uint8_t *in, size_t len, const uint8_t key[16])
{
	uint64_t k0 = ref_le64(key), k1 = ref_le64(key + 8);
	uint64_t v0 = 0x736f6d6570736575ULL ^ k0, v1 = 0x646f72616e646f6dULL ^ k1;
	uint64_t v2 = 0x6c7967656e657261ULL ^ k0, v3 = 0x7465646279746573ULL ^ k1;
	uint64_t b = (uint64_t)len << 56, m;
	const uint8_t *end = in + len - (len % 8);

	for (; in != end; in += 8) {
		m = ref_le64(in);
		v3 ^= m;
		REF_ROUND;
		REF_ROUND;
		v0 ^= m;
	}
	switch (len & 7) {
	case 7: b |= (uint64_t)in[6] << 48; /* fall through */
	case 6: b |= (uint64_t)in[5] << 40; /* fall through */
	case 5: b |= (uint64_t)in[4] << 32; /* fall through */
	case 4: b |= (uint64_t)in[3] << 24; /* fall through */
	case 3: b |= (uint64_t)in[2] << 16; /* fall through */
	case 2: b |= (uint64_t)in[1] << 8;  /* fall through */
	case 1: b |= (uint64_t)in[0];       /* fall through */
	case 0: break;
	}
	v3 ^= b;
	REF_ROUND;
	REF_ROUND;
	v0 ^= b;
	v2 ^= 0xff;
	REF_ROUND;
	REF_ROUND;
	REF_ROUND;
	REF_ROUND;
	return v0 ^ v1 ^ v2 ^ v3;
}

/* Two fixed keys, as bytes and as struct vigil_key. Seeds are signed with
 * key 0 (control byte bit 7 clear). */
static const uint8_t key_bytes[2][16] = {
	{ 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07,
	  0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f },
	{ 0x76, 0x69, 0x67, 0x69, 0x6c, 0x2d, 0x66, 0x75,
	  0x7a, 0x7a, 0x2d, 0x6b, 0x65, 0x79, 0x2d, 0x31 },
};
static struct vigil_key keys[2];

static void init_once(void)
{
	static int done;
	uint8_t msg[15];

	if (done)
		return;
	done = 1;
	for (int i = 0; i < 2; i++)
		vigil_key_from_bytes(&keys[i], key_bytes[i]);
	/* The published vector: key 00..0f, message 00..0e. */
	for (int i = 0; i < 15; i++)
		msg[i] = (uint8_t)i;
	CHECK(ref_siphash(msg, 15, key_bytes[0]) == 0xa129ca6149be45e5ULL, "reference SipHash");
	CHECK(vigil_siphash24(msg, 15, &keys[0]) == 0xa129ca6149be45e5ULL, "vigil SipHash");
}

/* ------------------------------------------------------ reference decoder */

/* Offsets of docs/wire-format.md, version 1. */
enum {
	OFF_MAGIC = 0, OFF_VERSION = 2, OFF_FLAGS = 3, OFF_STATUS = 4, OFF_KEY_ID = 5,
	OFF_QUEUE = 6, OFF_AGENT = 8, OFF_SEQ = 16, OFF_SEND_TS = 24, OFF_INC = 32,
	OFF_INTERVAL = 36, OFF_LEASE = 40, OFF_RESERVED = 44, OFF_MAC = 48, BEAT_LEN = 64,
};

static uint64_t be(const uint8_t *p, int n)
{
	uint64_t v = 0;

	for (int i = 0; i < n; i++)
		v = v << 8 | p[i];
	return v;
}

struct ref_beat {
	int verdict, has_agent_id;
	uint64_t agent_id, seq, send_ts;
	uint32_t inc, interval, lease;
	uint16_t queue;
	uint8_t status, flags, key_id;
};

static void ref_decode(const uint8_t *p, size_t len, struct ref_beat *r)
{
	memset(r, 0, sizeof(*r));
	r->verdict = VIGIL_BEAT_MALFORMED;
	if (len < 4 || be(p + OFF_MAGIC, 2) != 0x5647)
		return;
	if (len >= 16) {
		r->has_agent_id = 1;
		r->agent_id = be(p + OFF_AGENT, 8);
	}
	if (p[OFF_VERSION] != 1) {
		r->verdict = VIGIL_BEAT_BAD_VERSION;
		return;
	}
	if (len != BEAT_LEN || (p[OFF_FLAGS] & ~1) || p[OFF_STATUS] > 3 || p[OFF_KEY_ID] > 1 ||
	    be(p + OFF_RESERVED, 4) || !be(p + OFF_INTERVAL, 4))
		return;
	r->verdict = VIGIL_BEAT_OK;
	r->seq = be(p + OFF_SEQ, 8);
	r->send_ts = be(p + OFF_SEND_TS, 8);
	r->inc = (uint32_t)be(p + OFF_INC, 4);
	r->interval = (uint32_t)be(p + OFF_INTERVAL, 4);
	r->lease = (uint32_t)be(p + OFF_LEASE, 4);
	r->queue = (uint16_t)be(p + OFF_QUEUE, 2);
	r->status = p[OFF_STATUS];
	r->flags = p[OFF_FLAGS];
	r->key_id = p[OFF_KEY_ID];
}

/* Decode from a 64-byte buffer holding the first min(len, 64) bytes of p
 * and `fill` after them. */
static enum vigil_beat_verdict decode_padded(const uint8_t *p, size_t len, uint8_t fill,
					     struct vigil_beat_info *out)
{
	union {
		struct vigil_beat b;
		uint8_t u[BEAT_LEN];
	} buf;
	size_t n = len < BEAT_LEN ? len : BEAT_LEN;

	memset(buf.u, fill, sizeof(buf.u));
	memcpy(buf.u, p, n);
	memset(out, 0, sizeof(*out));
	return vigil_beat_decode(&buf.b, (__u32)len, out);
}

static int same_info(const struct vigil_beat_info *a, const struct vigil_beat_info *b, int ok)
{
	if (a->has_agent_id != b->has_agent_id || (a->has_agent_id && a->agent_id != b->agent_id))
		return 0;
	if (!ok)
		return 1;
	return a->seq == b->seq && a->send_ts_ns == b->send_ts_ns &&
	       a->incarnation == b->incarnation && a->interval_ms == b->interval_ms &&
	       a->lease_id == b->lease_id && a->queue_depth == b->queue_depth &&
	       a->status == b->status && a->flags == b->flags && a->key_id == b->key_id;
}

static void check_decode(const uint8_t *p, size_t len, struct vigil_beat_info *info,
			 enum vigil_beat_verdict *v_out)
{
	struct vigil_beat_info pz, pj;
	enum vigil_beat_verdict v;
	struct ref_beat r;

	memset(info, 0, sizeof(*info));
	v = vigil_beat_decode((const struct vigil_beat *)p, (__u32)len, info);
	ref_decode(p, len, &r);
	CHECK(v == (enum vigil_beat_verdict)r.verdict, "len %zu: decode %d, reference %d", len, v,
	      r.verdict);
	CHECK(v != VIGIL_BEAT_OK || len == BEAT_LEN, "OK at len %zu", len);
	CHECK(!info->has_agent_id || len >= VIGIL_BEAT_ID_END, "agent id at len %zu", len);
	CHECK(info->has_agent_id == r.has_agent_id, "has_agent_id %u, reference %d (len %zu)",
	      info->has_agent_id, r.has_agent_id, len);
	CHECK(!r.has_agent_id || info->agent_id == r.agent_id, "agent_id");
	if (v == VIGIL_BEAT_OK) {
		CHECK(info->seq == r.seq && info->send_ts_ns == r.send_ts &&
		      info->incarnation == r.inc && info->interval_ms == r.interval &&
		      info->lease_id == r.lease && info->queue_depth == r.queue &&
		      info->status == r.status && info->flags == r.flags &&
		      info->key_id == r.key_id, "decoded fields differ from the reference");
	}

	/* Nothing at or past len matters. */
	CHECK(decode_padded(p, len, 0x00, &pz) == v && same_info(&pz, info, v == VIGIL_BEAT_OK),
	      "zero-padded copy decodes differently (len %zu)", len);
	CHECK(decode_padded(p, len, 0xa5, &pj) == v && same_info(&pj, info, v == VIGIL_BEAT_OK),
	      "junk-padded copy decodes differently (len %zu)", len);

	/* An OK beat re-encodes to the bytes it came from. */
	if (v == VIGIL_BEAT_OK) {
		struct vigil_beat enc;

		vigil_beat_encode(&enc, info);
		CHECK(!memcmp(&enc, p, VIGIL_TAG_COVERS), "re-encoding changes the beat");
	}
	*v_out = v;
}

/* --------------------------------------------------------------- tags */

static void check_tags(const uint8_t *p, size_t len, int k, enum vigil_beat_verdict v,
		       uint64_t mix)
{
	union {
		struct vigil_beat b;
		uint8_t u[BEAT_LEN];
	} s;
	struct vigil_beat_info si;
	uint8_t kid = (uint8_t)k;
	size_t n = len < BEAT_LEN ? len : BEAT_LEN;

	/* The hash itself, at the payload's own length and at a prefix. */
	CHECK(vigil_siphash24(p, (__u32)len, &keys[k]) == ref_siphash(p, len, key_bytes[k]),
	      "siphash of %zu bytes", len);
	CHECK(vigil_siphash24(p, (__u32)(len / 2), &keys[k]) ==
	      ref_siphash(p, len / 2, key_bytes[k]), "siphash of %zu bytes", len / 2);

	if (v == VIGIL_BEAT_OK) {
		uint64_t want = ref_siphash(p, VIGIL_TAG_COVERS, key_bytes[k]);
		int ok = want == ref_le64(p + OFF_MAC) && !ref_le64(p + OFF_MAC + 8);

		CHECK(vigil_beat_tag_ok((const struct vigil_beat *)p, &keys[k]) == ok,
		      "tag_ok disagrees with the reference");
	}

	/* Sign a 64-byte beat made of the payload: it must verify with its key
	 * and with nothing else, and no single bit flip may survive. */
	memset(s.u, 0, sizeof(s.u));
	memcpy(s.u, p, n);
	vigil_beat_sign(&s.b, &keys[k], kid);
	CHECK((s.b.flags & VIGIL_F_MAC) && s.b.key_id == kid, "sign sets the flag and key id");
	CHECK(!ref_le64(s.u + OFF_MAC + 8), "sign leaves mac[8..15] zero");
	CHECK(vigil_beat_tag_ok(&s.b, &keys[k]), "signed beat does not verify");
	CHECK(!vigil_beat_tag_ok(&s.b, &keys[!k]), "signed beat verifies with the other key");
	if (v == VIGIL_BEAT_OK) {
		CHECK(vigil_beat_decode(&s.b, BEAT_LEN, &si) == VIGIL_BEAT_OK && si.key_id == kid,
		      "signing an OK beat made it malformed");
	}
	if ((mix & 7) == 0) { /* one input in eight: every bit */
		for (int bit = 0; bit < 8 * BEAT_LEN; bit++) {
			s.u[bit / 8] ^= (uint8_t)(1u << (bit % 8));
			CHECK(!vigil_beat_tag_ok(&s.b, &keys[k]), "flipping bit %d still verifies",
			      bit);
			s.u[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		}
	} else {
		mix |= 1; /* xorshift state must not be zero */
		for (int i = 0; i < 16; i++) {
			int bit;

			mix ^= mix << 13; /* xorshift64 */
			mix ^= mix >> 7;
			mix ^= mix << 17;
			bit = (int)(mix % (8 * BEAT_LEN));

			s.u[bit / 8] ^= (uint8_t)(1u << (bit % 8));
			CHECK(!vigil_beat_tag_ok(&s.b, &keys[k]), "flipping bit %d still verifies",
			      bit);
			s.u[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		}
	}
}

/* ------------------------------------------------------- replay window */

#define MAX_STEPS 256

/* The window as a plain set: the sequences accepted in the current
 * incarnation, all of them, plus every pair ever accepted. */
struct ref_replay {
	int started;
	uint32_t inc;
	uint64_t top;
	uint64_t seen[MAX_STEPS + 1];
	int n_seen;
	struct {
		uint32_t inc;
		uint64_t seq;
	} ever[MAX_STEPS + 1];
	int n_ever;
};

static int ref_has(const struct ref_replay *r, uint64_t seq)
{
	for (int i = 0; i < r->n_seen; i++)
		if (r->seen[i] == seq)
			return 1;
	return 0;
}

static enum vigil_replay_verdict ref_replay(struct ref_replay *r, uint32_t inc, uint64_t seq,
					    uint32_t window)
{
	/* The window covers at most the 64 sequences the bitmap can hold. */
	uint64_t w = window > 64 ? 64 : window;
	enum vigil_replay_verdict v;

	if (!r->started || inc > r->inc) {
		v = r->started ? VIGIL_REPLAY_RESTART : VIGIL_REPLAY_FIRST;
		r->started = 1;
		r->inc = inc;
		r->top = seq;
		r->n_seen = 0;
	} else if (inc < r->inc) {
		return VIGIL_REPLAY_OLD_INCARNATION;
	} else if (seq > r->top) {
		r->top = seq;
		v = VIGIL_REPLAY_NEWER;
	} else if (r->top - seq >= w) {
		return VIGIL_REPLAY_TOO_OLD;
	} else if (ref_has(r, seq)) {
		return VIGIL_REPLAY_DUPLICATE;
	} else {
		v = VIGIL_REPLAY_LATE;
	}
	r->seen[r->n_seen++] = seq;
	return v;
}

/* One step: the real window and the reference must agree. */
static void replay_step(struct vigil_replay *r, struct ref_replay *ref, uint32_t inc,
			uint64_t seq, uint32_t window, int step)
{
	enum vigil_replay_verdict want = ref_replay(ref, inc, seq, window);
	enum vigil_replay_verdict v = vigil_replay_check(r, inc, seq, window);

	CHECK(v == want, "step %d (inc %u seq %llu window %u): verdict %d, reference %d", step,
	      inc, (unsigned long long)seq, window, v, want);
	CHECK(r->started == (uint32_t)ref->started && r->incarnation == ref->inc &&
	      r->top == ref->top, "step %d: window state differs from the reference", step);
	if (!vigil_replay_accepted(v))
		return;
	for (int i = 0; i < ref->n_ever; i++)
		CHECK(ref->ever[i].inc != inc || ref->ever[i].seq != seq,
		      "(inc %u, seq %llu) accepted twice", inc, (unsigned long long)seq);
	ref->ever[ref->n_ever].inc = inc;
	ref->ever[ref->n_ever].seq = seq;
	ref->n_ever++;
}

/*
 * The decoded beat (if any) first, then one step per 3 payload bytes:
 * b0 bits 0-1 move the incarnation (same, up, down, absolute b1), bits 2-4
 * pick the sequence relative to the current top (next, below, at the
 * window's edge, far ahead, absolute, near 2^64, a replay of an accepted
 * pair, top again).
 */
static void check_replay(const uint8_t *p, size_t len, uint32_t window,
			 const struct vigil_beat_info *beat, int beat_ok)
{
	static struct ref_replay ref; /* large: not on the stack */
	struct vigil_replay r = { 0 };
	int step = 0;

	memset(&ref, 0, sizeof(ref));
	if (beat_ok)
		replay_step(&r, &ref, beat->incarnation, beat->seq, window, step++);
	for (size_t off = 0; off + 3 <= len && step < MAX_STEPS; off += 3) {
		uint8_t b0 = p[off], b1 = p[off + 1], b2 = p[off + 2];
		uint32_t inc = ref.inc;
		uint64_t seq = ref.top;

		switch (b0 & 3) {
		case 0: break;
		case 1: inc = ref.inc + 1 + (b1 & 3); break;
		case 2: inc = ref.inc - 1 - (b1 & 1); break;
		default: inc = b1; break;
		}
		switch ((b0 >> 2) & 7) {
		case 0: seq = ref.top + 1 + b2; break;
		case 1: seq = ref.top - b2; break;
		case 2: seq = ref.top - 60 - (b2 & 7); break; /* the window's edge */
		case 3: seq = ref.top + (1ULL << (b2 & 63)); break;
		case 4: seq = (uint64_t)b1 << 8 | b2; break;
		case 5: seq = ~0ULL - b2; break;
		case 6: /* a true replay of something accepted before */
			if (ref.n_ever) {
				int i = (b1 << 8 | b2) % ref.n_ever;

				inc = ref.ever[i].inc;
				seq = ref.ever[i].seq;
			}
			break;
		default: break; /* top again */
		}
		replay_step(&r, &ref, inc, seq, window, step++);
	}
	/* The bitmap says exactly which of the last 64 sequences were seen. */
	if (ref.started)
		for (int i = 0; i < 64; i++)
			CHECK(!!(r.seen & (1ULL << i)) == ref_has(&ref, ref.top - i),
			      "bitmap bit %d (top %llu)", i, (unsigned long long)ref.top);
}

/* -------------------------------------------------------------- entry */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vigil_beat_info info;
	enum vigil_beat_verdict v;
	uint8_t *p;
	size_t len;
	uint32_t window;
	int k;

	init_once();
	if (size < 1)
		return 0;
	window = data[0] & 0x7f;
	k = data[0] >> 7;
	len = size - 1;
	p = malloc(len); /* exactly len bytes: ASan flags any read past them */
	if (!p)
		return 0;
	memcpy(p, data + 1, len);

	check_decode(p, len, &info, &v);
	check_tags(p, len, k, v, ref_siphash(data, size, key_bytes[1]));
	check_replay(p, len, window, &info, v == VIGIL_BEAT_OK);

	if (len >= 12) {
		uint32_t x = (uint32_t)be(p, 4), lo = (uint32_t)be(p + 4, 4), hi = (uint32_t)be(p + 8, 4);
		uint32_t c;

		if (lo > hi) {
			uint32_t t = lo;

			lo = hi;
			hi = t;
		}
		c = vigil_clamp_interval(x, lo, hi);
		CHECK(c >= lo && c <= hi && (x < lo || x > hi || c == x), "clamp(%u, %u, %u) = %u",
		      x, lo, hi, c);
	}
	free(p);
	return 0;
}
