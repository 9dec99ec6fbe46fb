// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
/*
 * Host unit tests of include/vigil/siphash.h and include/vigil/auth.h: the
 * SipHash-2-4 the XDP program and every agent use, beat signing and tag
 * checks, the anti-replay window and the GCRA rate limiter. Built by
 * `make build/test_auth` with ASan and UBSan.
 *
 * The SipHash reference vectors and the anti-replay script live in
 * tests/prog/auth_vectors.h, shared with test_prog, which holds the kernel
 * to the same tables. The key file parser (user/common/keys.c) is tested in
 * test_prog, which links user/.
 *
 * Output is TAP-like, one line per case: "ok N - what it proves" or
 * "not ok N - ...", followed by "#" diagnostics on failure. Random property
 * tests are deterministic; VIGIL_TEST_SEED=N changes their seed. Exit status
 * 0 iff every case passed.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vigil/siphash.h"
#include "vigil/auth.h"
#include "vigil/wire.h"
#include "../prog/auth_vectors.h"

#include "check.h"

static uint64_t below(uint64_t n)
{
	return n ? rnd() % n : 0;
}

/* ---------------------------------------------------------------- SipHash */

static void test_siphash_vectors(void)
{
	__u8 kb[16], data[SIPVEC_N], shifted[SIPVEC_N + 8];
	struct vigil_key k;
	int bad_aligned = 0;

	sipvec_input(kb, data);
	vigil_key_from_bytes(&k, kb);
	CHECK(k.k0 == 0x0706050403020100ULL && k.k1 == 0x0f0e0d0c0b0a0908ULL,
	      "siphash: key bytes 00..0f load as k0 = 0x0706050403020100, k1 = "
	      "0x0f0e0d0c0b0a0908 (byte 0 first, little-endian words)");
	CHECK(sipvec_want[0] == 0x726fdb47dd0e0e31ULL,
	      "siphash: the table's first vector is 31 0e 0e dd 47 db 6f 72 read little-endian");
	for (__u32 n = 0; n < SIPVEC_N; n++) {
		__u64 got = vigil_siphash24(data, n, &k);

		diag("got 0x%016" PRIx64 ", want 0x%016" PRIx64, (uint64_t)got,
		     (uint64_t)sipvec_want[n]);
		CHECK(got == sipvec_want[n], "siphash: reference vector %u (%u-byte input)", n, n);
	}
	/* Byte loads only: the input's alignment must not matter. */
	for (int off = 1; off < 8; off++) {
		memcpy(shifted + off, data, SIPVEC_N);
		for (__u32 n = 0; n < SIPVEC_N; n++)
			bad_aligned += vigil_siphash24(shifted + off, n, &k) != sipvec_want[n];
	}
	CHECK(!bad_aligned, "siphash: all 64 vectors again from inputs at offsets 1..7 (%d wrong)",
	      bad_aligned);
}

/* ------------------------------------------------------------ beat tags */

static const __u8 ref_key_bytes[16] = { 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15 };

static void ref_beat(struct vigil_beat *b)
{
	const struct vigil_beat_info bi = {
		.agent_id = 0x0102030405060708ULL, .seq = 0x1112131415161718ULL,
		.send_ts_ns = 0x2122232425262728ULL, .incarnation = 0x31323334, .interval_ms = 4000,
		.lease_id = 0x41424344, .queue_depth = 0x1234, .status = VIGIL_STATUS_DEGRADED,
	};

	vigil_beat_encode(b, &bi);
}

static void test_beat_tags(void)
{
	/* Computed independently (a from-the-paper SipHash-2-4 in Python) over
	 * the 48 bytes 5647 01 01 01 <key_id> 1234 0102..08 1112..18 2122..28
	 * 31323334 00000fa0 41424344 00000000, key 00 01 .. 0f. */
	static const __u64 want_tag[2] = { 0x6956a6a62f4123b6ULL, 0x0bc9eef1a9072f06ULL };
	struct vigil_key k, other = { 0x0706050403020100ULL, 0x0f0e0d0c0b0a0909ULL };
	struct vigil_beat b, unsigned_b, s2;
	const __u8 *p = (const __u8 *)&b, *u = (const __u8 *)&unsigned_b;
	int changed = 0, flips_ok = 0, flips_body = 0;

	vigil_key_from_bytes(&k, ref_key_bytes);
	for (int kid = 0; kid < 2; kid++) {
		__u8 want_mac[VIGIL_MAC_LEN] = {};

		for (int i = 0; i < 8; i++)
			want_mac[i] = (__u8)(want_tag[kid] >> (8 * i));
		ref_beat(&b);
		vigil_beat_sign(&b, &k, (__u8)kid);
		diag("mac %02x%02x%02x%02x%02x%02x%02x%02x", b.mac[0], b.mac[1], b.mac[2],
		     b.mac[3], b.mac[4], b.mac[5], b.mac[6], b.mac[7]);
		CHECK(!memcmp(b.mac, want_mac, sizeof(want_mac)) && b.flags == VIGIL_F_MAC &&
			      b.key_id == kid && vigil_beat_tag(&b, &k) == want_tag[kid],
		      "tag: known answer for a fixed beat signed as key_id %d (tag over bytes "
		      "0..47 incl. flags and key_id, little-endian in mac[0..7], mac[8..15] zero)",
		      kid);
	}

	ref_beat(&unsigned_b);
	ref_beat(&b);
	vigil_beat_sign(&b, &k, 1);
	for (size_t i = 0; i < VIGIL_TAG_COVERS; i++)
		if (p[i] != u[i] && i != 3 && i != 5)
			changed++;
	CHECK(!changed && b.flags == (unsigned_b.flags | VIGIL_F_MAC) && b.key_id == 1,
	      "sign: changes only flags (sets VIGIL_F_MAC), key_id and mac");
	s2 = b;
	vigil_beat_sign(&s2, &k, 1);
	CHECK(!memcmp(&s2, &b, sizeof(b)), "sign: signing a signed beat again gives the same bytes");

	CHECK(vigil_beat_tag_ok(&b, &k), "tag_ok: a signed beat verifies with its key");
	CHECK(!vigil_beat_tag_ok(&b, &other),
	      "tag_ok: and not with a key one bit away");
	{
		struct vigil_info_check { struct vigil_beat_info in, out; } ic = {};

		ic.in = (struct vigil_beat_info){ .agent_id = 7, .seq = 9, .incarnation = 3,
						  .interval_ms = 100 };
		vigil_beat_encode(&s2, &ic.in);
		vigil_beat_sign(&s2, &k, 0);
		CHECK(vigil_beat_decode(&s2, sizeof(s2), &ic.out) == VIGIL_BEAT_OK &&
			      ic.out.flags == VIGIL_F_MAC && ic.out.key_id == 0 &&
			      vigil_beat_tag_ok(&s2, &k),
		      "sign: a signed beat still decodes (VIGIL_F_MAC is a known flag) and verifies");
	}

	for (int bit = 0; bit < 8 * (int)sizeof(b); bit++) {
		struct vigil_beat f = b;

		((__u8 *)&f)[bit / 8] ^= (__u8)(1u << (bit % 8));
		flips_ok += vigil_beat_tag_ok(&f, &k);
		flips_body += bit < 8 * VIGIL_TAG_COVERS;
	}
	CHECK(!flips_ok, "tag_ok: each of the 512 single-bit flips of a signed beat fails to "
	      "verify (%d in the covered body, %d in mac[]; %d verified)", flips_body,
	      512 - flips_body, flips_ok);

	s2 = b;
	s2.mac[15] = 1;
	CHECK(!vigil_beat_tag_ok(&s2, &k), "tag_ok: mac[15] non-zero fails");
	s2 = b;
	memset(s2.mac, 0, sizeof(s2.mac));
	CHECK(!vigil_beat_tag_ok(&s2, &k), "tag_ok: an all-zero mac fails");
	{
		/* Random beats and keys: sign and verify round trip; the other key
		 * and a random single-byte change never verify. */
		int rt = 0, cross = 0, tamper = 0;

		for (int i = 0; i < 20000; i++) {
			struct vigil_key k1 = { rnd(), rnd() }, k2 = { rnd(), rnd() };
			struct vigil_beat r;
			__u8 *rp = (__u8 *)&r;

			for (size_t j = 0; j < sizeof(r); j++)
				rp[j] = (__u8)rnd();
			vigil_beat_sign(&r, &k1, (__u8)(i & 1));
			rt += !vigil_beat_tag_ok(&r, &k1);
			cross += vigil_beat_tag_ok(&r, &k2);
			rp[below(sizeof(r))] ^= (__u8)(1 + below(255));
			tamper += vigil_beat_tag_ok(&r, &k1);
		}
		CHECK(!rt && !cross && !tamper, "tag: 20000 random beats and keys: every signed beat "
		      "verifies (%d failed), none with another key (%d), none after a random byte "
		      "change (%d)", rt, cross, tamper);
	}
}

/* ------------------------------------------------------------ anti-replay */

static void test_replay_script(void)
{
	static struct replay_step steps[REPLAY_MAX_STEPS];
	size_t n = replay_script(steps);
	struct vigil_replay r = {};
	__u64 top = 0;
	__u32 inc = 0;
	int block_bad = 0, block_steps = 0;

	CHECK(n > 0 && n < REPLAY_MAX_STEPS, "replay script: %zu steps in %u blocks", n,
	      steps[n - 1].block);
	for (size_t i = 0; i < n; i++) {
		const struct replay_step *s = &steps[i];
		enum vigil_replay_verdict v;
		bool ok;

		if (s->fresh) {
			memset(&r, 0, sizeof(r));
			block_bad = block_steps = 0;
		}
		v = vigil_replay_check(&r, s->inc, s->seq, REPLAY_W);
		if (v == VIGIL_REPLAY_FIRST || v == VIGIL_REPLAY_RESTART || v == VIGIL_REPLAY_NEWER) {
			top = s->seq;
			inc = s->inc;
		}
		/* The verdict, and the window's own record of what it accepted. */
		ok = v == s->want && r.started && r.top == top && r.incarnation == inc &&
		     (r.seen & 1) && vigil_replay_accepted(v) == (s->want <= VIGIL_REPLAY_FIRST);
		if (!ok)
			diag("step %zu: inc %u seq %" PRIu64 ": got %s, want %s; top %" PRIu64
			     " (want %" PRIu64 ") inc %u", i, s->inc, (uint64_t)s->seq,
			     replay_verdict_name(v), replay_verdict_name(s->want), (uint64_t)r.top,
			     (uint64_t)top, r.incarnation);
		block_bad += !ok;
		block_steps++;
		if (s->block == 1)
			CHECK(ok, "replay script: incarnation %u, seq %" PRIu64 " -> %s", s->inc,
			      (uint64_t)s->seq, replay_verdict_name(s->want));
		else if (i + 1 == n || steps[i + 1].fresh)
			CHECK(!block_bad, "replay script block %u: %d steps as the window says "
			      "(%d wrong)", s->block, block_steps, block_bad);
	}
}

/* A model of the window as a set: accepted (inc, seq) pairs, the highest
 * accepted sequence of the current incarnation, and `w` = the sequences
 * top - w + 1 .. top that can still be told apart. */
struct replay_model {
	__u64 *seqs;
	size_t n, cap;
	__u64 top;
	__u32 inc;
	int started;
};

static enum vigil_replay_verdict model_check(struct replay_model *m, __u32 inc, __u64 seq,
					     __u32 w)
{
	enum vigil_replay_verdict v;

	if (w > 64)
		w = 64;
	if (!m->started || inc > m->inc) {
		v = m->started ? VIGIL_REPLAY_RESTART : VIGIL_REPLAY_FIRST;
		m->started = 1;
		m->inc = inc;
		m->n = 0;
		m->top = seq;
		goto add;
	}
	if (inc < m->inc)
		return VIGIL_REPLAY_OLD_INCARNATION;
	if (seq > m->top) {
		m->top = seq;
		v = VIGIL_REPLAY_NEWER;
		goto add;
	}
	if (m->top - seq >= w)
		return VIGIL_REPLAY_TOO_OLD;
	for (size_t i = 0; i < m->n; i++)
		if (m->seqs[i] == seq)
			return VIGIL_REPLAY_DUPLICATE;
	v = VIGIL_REPLAY_LATE;
add:
	if (m->n == m->cap) {
		m->cap = m->cap ? 2 * m->cap : 256;
		m->seqs = realloc(m->seqs, m->cap * sizeof(*m->seqs));
		if (!m->seqs)
			abort();
	}
	m->seqs[m->n++] = seq;
	return v;
}

static void test_replay_model(void)
{
	static const __u32 windows[] = { 1, 2, 17, 63, 64, 65, 1000, 0xffffffffu };

	for (size_t wi = 0; wi < sizeof(windows) / sizeof(windows[0]); wi++) {
		__u32 w = windows[wi];
		struct replay_model m = {};
		struct vigil_replay r = {};
		unsigned long long counts[7] = {};
		int mismatches = 0;

		for (int i = 0; i < 200000; i++) {
			__u32 inc = m.started ? m.inc : 1;
			__u64 seq, base = m.started ? m.top : 1000;
			enum vigil_replay_verdict got, want;
			uint64_t dice = below(1000);

			/* Mostly near the top, both sides; sometimes far; rarely a
			 * restart or an old incarnation; sometimes at the u64 edge. */
			if (dice < 700)
				seq = base + below(80) - 70;
			else if (dice < 900)
				seq = base + 1 + below(3);
			else if (dice < 960)
				seq = base + below(1000);
			else if (dice < 970)
				seq = rnd();
			else if (dice < 980)
				seq = ~0ULL - below(100);
			else if (dice < 990)
				inc = inc + 1, seq = below(100);
			else
				inc = inc ? inc - 1 : 0, seq = base;
			want = model_check(&m, inc, seq, w);
			got = vigil_replay_check(&r, inc, seq, w);
			counts[want]++;
			if (got != want) {
				if (mismatches++ < 5)
					diag("op %d: inc %u seq %" PRIu64 ": got %s, model %s", i, inc,
					     (uint64_t)seq, replay_verdict_name(got),
					     replay_verdict_name(want));
			}
			/* Keep the model's set small: it only has to remember the
			 * sequences within 64 of the top. */
			if (m.n > 4096) {
				size_t k = 0;

				for (size_t j = 0; j < m.n; j++)
					if (m.top - m.seqs[j] < 64)
						m.seqs[k++] = m.seqs[j];
				m.n = k;
			}
		}
		CHECK(!mismatches, "replay: window %u agrees with a set-based model over 200000 random "
		      "steps (%llu newer, %llu late, %llu duplicate, %llu too old, %llu restarts, "
		      "%llu old incarnation; %d disagreements)%s", w, counts[VIGIL_REPLAY_NEWER],
		      counts[VIGIL_REPLAY_LATE], counts[VIGIL_REPLAY_DUPLICATE],
		      counts[VIGIL_REPLAY_TOO_OLD], counts[VIGIL_REPLAY_RESTART],
		      counts[VIGIL_REPLAY_OLD_INCARNATION], mismatches,
		      w > 64 ? " (a window above 64 acts as 64)" : "");
		free(m.seqs);
	}
}

static void test_replay_edges(void)
{
	struct vigil_replay r = {};
	int bad = 0;

	/* Window 1: only the top itself, so nothing older is accepted. */
	vigil_replay_check(&r, 1, 10, 1);
	CHECK(vigil_replay_check(&r, 1, 9, 1) == VIGIL_REPLAY_TOO_OLD &&
		      vigil_replay_check(&r, 1, 10, 1) == VIGIL_REPLAY_DUPLICATE &&
		      vigil_replay_check(&r, 1, 11, 1) == VIGIL_REPLAY_NEWER,
	      "replay: window 1 accepts only rising sequences, refuses the top again as a "
	      "duplicate");

	/* Refused steps leave the window as it was. */
	memset(&r, 0, sizeof(r));
	vigil_replay_check(&r, 5, 100, 64);
	vigil_replay_check(&r, 5, 90, 64);
	{
		struct vigil_replay before = r;

		vigil_replay_check(&r, 5, 100, 64);
		vigil_replay_check(&r, 5, 90, 64);
		vigil_replay_check(&r, 5, 36, 64);
		vigil_replay_check(&r, 4, 1000, 64);
		bad = memcmp(&before, &r, sizeof(r)) != 0;
	}
	CHECK(!bad, "replay: a duplicate, a too-old sequence and an old incarnation leave the "
	      "window unchanged");

	/* The first beat can be any (inc, seq), including all zeros and all ones. */
	memset(&r, 0, sizeof(r));
	CHECK(vigil_replay_check(&r, 0, 0, 64) == VIGIL_REPLAY_FIRST &&
		      vigil_replay_check(&r, 0, 0, 64) == VIGIL_REPLAY_DUPLICATE,
	      "replay: incarnation 0, sequence 0 is a valid first beat, and then a duplicate");
	memset(&r, 0, sizeof(r));
	CHECK(vigil_replay_check(&r, ~0U, ~0ULL, 64) == VIGIL_REPLAY_FIRST &&
		      vigil_replay_check(&r, ~0U, ~0ULL, 64) == VIGIL_REPLAY_DUPLICATE &&
		      vigil_replay_check(&r, ~0U, 0, 64) == VIGIL_REPLAY_TOO_OLD,
	      "replay: the highest incarnation and sequence: first, then duplicate; 0 does not "
	      "wrap around to 'newer'");
}

/* ------------------------------------------------------------------- GCRA */

/* Conforming calls at one instant, from a given TAT; stops at the first
 * refusal (or at `limit`). *tat is updated as the caller would. */
static unsigned burst_at(__u64 *tat, __u64 now, __u64 e, __u32 b, unsigned limit)
{
	unsigned n = 0;

	while (n < limit) {
		__u64 next = vigil_gcra(*tat, now, e, b);

		if (!next)
			break;
		*tat = next;
		n++;
	}
	return n;
}

/* A window started at a floor (a new registration of an id that beat
 * before) refuses everything up to the floor and takes what comes after. */
static void test_replay_floor(void)
{
	struct vigil_replay r = {};
	int bad = 0;

	CHECK(vigil_replay_after(2, 0, 1, ~0ULL) && vigil_replay_after(1, 6, 1, 5) &&
		      !vigil_replay_after(1, 5, 1, 5) && !vigil_replay_after(1, ~0ULL, 2, 0),
	      "floor: (incarnation, seq) order: incarnation first, then sequence, unsigned");
	for (__u64 seq = 4900; seq <= 5002; seq++) {
		vigil_replay_from_floor(&r, 3, 5002);
		if (vigil_replay_accepted(vigil_replay_check(&r, 3, seq, 64)))
			bad++, diag("seq %llu accepted below the floor", (unsigned long long)seq);
	}
	CHECK(!bad, "floor: at floor (3, 5002) every sequence from 4900 to 5002 is refused");
	vigil_replay_from_floor(&r, 3, 5002);
	CHECK(vigil_replay_check(&r, 2, 9000, 64) == VIGIL_REPLAY_OLD_INCARNATION &&
		      vigil_replay_check(&r, 3, 5000, 64) == VIGIL_REPLAY_DUPLICATE &&
		      vigil_replay_check(&r, 3, 4000, 64) == VIGIL_REPLAY_TOO_OLD,
	      "floor: an older incarnation is replayed, a sequence in the window a duplicate, one "
	      "below it too old");
	CHECK(vigil_replay_check(&r, 3, 5005, 64) == VIGIL_REPLAY_NEWER &&
		      vigil_replay_check(&r, 3, 5003, 64) == VIGIL_REPLAY_LATE &&
		      vigil_replay_check(&r, 3, 5002, 64) == VIGIL_REPLAY_DUPLICATE,
	      "floor: past it, the window works as usual: 5005 newer, 5003 late, 5002 still seen");
	vigil_replay_from_floor(&r, 3, 5002);
	CHECK(vigil_replay_check(&r, 4, 0, 64) == VIGIL_REPLAY_RESTART,
	      "floor: a higher incarnation is a restart, whatever its sequence");
}

static void test_gcra(void)
{
	const __u64 e = 250 * 1000000ULL; /* 1000 ms interval, rate_multiple 4 */
	__u64 tat, now = 1000 * 1000000000ULL;
	unsigned n;
	int bad = 0;

	for (__u32 b = 0; b <= 16; b++) {
		tat = 0;
		n = burst_at(&tat, now, e, b, 1000);
		bad += n != b + 1 || tat != now + (__u64)(b + 1) * e;
	}
	CHECK(!bad, "gcra: from a fresh state, burst b lets exactly b + 1 beats through at one "
	      "instant (b = 0..16), and the TAT ends (b + 1) emission intervals ahead");

	tat = 0;
	bad = 0;
	for (int i = 0; i < 10000; i++) {
		__u64 t = now + (__u64)i * e, next = vigil_gcra(tat, t, e, 0);

		bad += next != t + e;
		tat = next ? next : tat;
	}
	CHECK(!bad, "gcra: beats exactly one emission interval apart always conform, even with "
	      "burst 0 (10000 beats)");

	tat = 0;
	bad = 0;
	{
		unsigned accepted = 0;

		/* Twice the allowed rate for 100 emission intervals, burst 8: the
		 * long-run rate is held to one per interval, plus the burst. */
		for (int i = 0; i < 200; i++) {
			__u64 t = now + (__u64)i * (e / 2), next = vigil_gcra(tat, t, e, 8);

			if (next) {
				tat = next;
				accepted++;
			}
		}
		CHECK(accepted == 100 + 8 || accepted == 100 + 9,
		      "gcra: 200 beats at twice the rate over 100 intervals, burst 8: %u accepted "
		      "(100 for the rate plus the burst)", accepted);
	}

	/* The boundary: conform while the TAT is at most burst x e ahead. */
	CHECK(vigil_gcra(now + 3 * e, now, e, 3) == now + 4 * e &&
		      vigil_gcra(now + 3 * e + 1, now, e, 3) == 0,
	      "gcra: a TAT exactly burst x e ahead conforms, one nanosecond more does not");
	CHECK(vigil_gcra(now - 5 * e, now, e, 0) == now + e,
	      "gcra: a TAT in the past counts from now: idle time is not banked");

	/* Catch-up after idle: a full burst again, never more. */
	tat = 0;
	burst_at(&tat, now, e, 4, 1000);
	n = burst_at(&tat, now + 2 * e, e, 4, 1000);
	bad = n != 2;
	n = burst_at(&tat, now + 3600 * 1000000000ULL, e, 4, 1000);
	CHECK(!bad && n == 5, "gcra: after a burst, 2 intervals later exactly 2 more; after an "
	      "hour idle exactly burst + 1 = 5 again (got %u)", n);

	/* A refusal is pure: the caller keeps the TAT, and the next interval
	 * frees exactly one. */
	tat = 0;
	burst_at(&tat, now, e, 2, 1000);
	{
		__u64 kept = tat;

		bad = vigil_gcra(tat, now + e / 2, e, 2) != 0 || tat != kept;
		n = burst_at(&tat, now + e, e, 2, 1000);
	}
	CHECK(!bad && n == 1, "gcra: a refused beat changes nothing; one interval after the burst, "
	      "exactly one more conforms");

	/* The top of the clock: nothing may wrap around. */
	{
		const __u64 top = ~0ULL - 10;

		tat = 0;
		n = burst_at(&tat, top, 100, 1, 1000);
		diag("%u beats conformed at now = 2^64 - 11 (TAT 0x%" PRIx64 ")", n, (uint64_t)tat);
		CHECK(n <= 2 && (!n || tat >= top),
		      "gcra: near 2^64 the TAT never wraps below now (which would let every later "
		      "beat through): at most burst + 1 conform at one instant");
	}
	{
		/* burst x emission beyond 2^64 must mean "a very large allowance",
		 * not a product that wrapped to a small one. */
		const __u64 big_e = 1ULL << 34; /* ~17 s */
		const __u32 big_b = 1u << 31;

		tat = 0;
		n = burst_at(&tat, now, big_e, big_b, 4);
		diag("%u of 4 conformed", n);
		CHECK(n == 4, "gcra: burst 2^31 with a 17 s emission interval (product beyond 2^64) "
		      "still allows a burst");
	}
}

/* Rescaling GCRA debt when an agent announces another interval. */
static void test_gcra_rescale(void)
{
	const __u64 now = 1000000000000ull;

	CHECK(vigil_gcra_rescale(now + 800, now, 1000, 10) == now + 8,
	      "debt shrinks in proportion when the interval shortens (1000 ms -> 10 ms)");
	CHECK(vigil_gcra_rescale(now + 8, now, 10, 1000) == now + 800,
	      "debt grows in proportion when the interval lengthens");
	CHECK(vigil_gcra_rescale(now + 800, now, 1000, 1000) == now + 800,
	      "unchanged interval: unchanged debt");
	CHECK(vigil_gcra_rescale(now - 5, now, 1000, 10) == now - 5,
	      "no debt (arrival time in the past): nothing to rescale");
	CHECK(vigil_gcra_rescale(now + 800, now, 0, 10) == now + 800,
	      "first beat (no interval recorded yet): unchanged");
	CHECK(vigil_gcra_rescale(now + (1ull << 40), now, 3600000, 3600000 - 1) <= now + (1ull << 40),
	      "large debt and intervals: no overflow, never grows when the interval shrinks");
}

int main(void)
{
	const char *seed = getenv("VIGIL_TEST_SEED");

	setvbuf(stdout, NULL, _IOLBF, 0);
	rng_state = seed ? strtoull(seed, NULL, 0) : 4747;
	printf("# seed %" PRIu64 " (VIGIL_TEST_SEED)\n", rng_state);

	test_siphash_vectors();
	test_beat_tags();
	test_replay_script();
	test_replay_model();
	test_replay_edges();
	test_replay_floor();
	test_gcra();
	test_gcra_rescale();

	return check_finish();
}
