// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
/*
 * Host tests of the agent library (user/libagent.c, include/vigil/agent.h)
 * against a scripted monitor: a UDP socket on 127.0.0.1 that reads the
 * agent's beats and answers with acknowledgements of its choosing — right,
 * late, reordered, forged, for beats never sent. They pin down the lease
 * safety rule and the rules around it (docs/leases.md):
 *
 *   - the deadline is the acknowledged beat's send time + remaining x (1 - drift);
 *   - only verified acknowledgements count (tag, agent, lease, a sent seq);
 *   - acknowledgements apply in sequence order only;
 *   - another holder, a higher token or a state other than HELD end the
 *     holding at once; DRAINING ends it before set_status returns, and no
 *     answer to an earlier beat brings it back;
 *   - a grant held before the process started is handed back (DRAINING);
 *   - LEAVING on stop, max_beats.
 *
 * Built by `make build/test_agent` with ASan and UBSan; no root needed.
 * Output is TAP-like; exit status 0 iff every case passed.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "vigil/agent.h"
#include "vigil/auth.h"
#include "vigil/maps.h"
#include "vigil/wire.h"

static unsigned n_cases, n_failed;

static void result(bool ok, const char *fmt, ...)
{
	va_list ap;

	n_cases++;
	if (!ok)
		n_failed++;
	printf("%s %u - ", ok ? "ok" : "not ok", n_cases);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
}

static uint64_t now_ns(void)
{
	return vigil_agent_now_ns();
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* ------------------------------------------------------------ the monitor */

static const uint8_t KEY[16] = { 0x85, 0xad, 0xbd, 0xdb, 0x3a, 0x02, 0x17, 0x3f,
				 0x04, 0xea, 0x14, 0x9a, 0x1c, 0x42, 0x05, 0x77 };
#define AGENT 7
#define LEASE 3

struct monitor {
	int fd;
	uint16_t port;
	struct vigil_key key;
};

struct beat {
	struct vigil_beat raw;
	struct vigil_beat_info info;
	struct sockaddr_in from;
	uint64_t recv_ns;
};

static int monitor_open(struct monitor *m)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sa);

	m->fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (m->fd < 0 || bind(m->fd, (struct sockaddr *)&sa, sizeof(sa)) ||
	    getsockname(m->fd, (struct sockaddr *)&sa, &len))
		return -1;
	m->port = ntohs(sa.sin_port);
	vigil_key_from_bytes(&m->key, KEY);
	return 0;
}

/* Next beat within timeout_ms; 0, or -1 on timeout. */
static int next_beat(struct monitor *m, struct beat *b, int timeout_ms)
{
	struct pollfd p = { .fd = m->fd, .events = POLLIN };
	socklen_t len = sizeof(b->from);
	ssize_t n;

	if (poll(&p, 1, timeout_ms) != 1)
		return -1;
	n = recvfrom(m->fd, &b->raw, sizeof(b->raw), 0, (struct sockaddr *)&b->from, &len);
	b->recv_ns = now_ns();
	if (n != sizeof(b->raw) || vigil_beat_decode(&b->raw, (uint32_t)n, &b->info) != VIGIL_BEAT_OK)
		return -1;
	return 0;
}

/* Discard what is queued, then return the next fresh beat. */
static int fresh_beat(struct monitor *m, struct beat *b)
{
	while (next_beat(m, b, 0) == 0)
		;
	return next_beat(m, b, 1000);
}

struct ack_opts {
	uint8_t state;
	uint64_t holder, token;
	uint32_t remaining_ms;
	int unsigned_ack;       /* send without a tag */
	int wrong_key;          /* tag with another key */
	uint64_t seq_delta;     /* answer a sequence this far off the beat's */
	uint32_t lease_id;      /* 0: LEASE */
};

static void ack(struct monitor *m, const struct beat *b, const struct ack_opts *o)
{
	struct vigil_ack a = {};

	a.magic = vg_be16(VIGIL_MAGIC);
	a.version = VIGIL_VERSION;
	a.flags = VIGIL_F_ACK;
	a.lease_state = o->state;
	a.key_id = 0;
	a.agent_id = vg_be64(b->info.agent_id);
	a.seq = vg_be64(b->info.seq + o->seq_delta);
	a.token = vg_be64(o->token);
	a.holder = vg_be64(o->holder);
	a.lease_id = vg_be32(o->lease_id ? o->lease_id : LEASE);
	a.remaining_ms = vg_be32(o->remaining_ms);
	if (o->wrong_key) {
		struct vigil_key k = { 1, 2 };

		vigil_ack_sign(&a, &k);
	} else if (!o->unsigned_ack) {
		vigil_ack_sign(&a, &m->key);
	}
	sendto(m->fd, &a, sizeof(a), 0, (const struct sockaddr *)&b->from, sizeof(b->from));
}

static void held_ack(struct monitor *m, const struct beat *b, uint64_t holder, uint64_t token,
		     uint32_t rem)
{
	struct ack_opts o = { .state = VIGIL_LEASE_HELD, .holder = holder, .token = token,
			      .remaining_ms = rem };

	ack(m, b, &o);
}

/* ---------------------------------------------------------- the callback */

struct change {
	enum vigil_lease_change what;
	struct vigil_lease_view v;
	uint64_t at;
};

static pthread_mutex_t ch_mu = PTHREAD_MUTEX_INITIALIZER;
static struct change changes[256];
static unsigned n_changes;

static void on_change(struct vigil_agent *a, enum vigil_lease_change what,
		      const struct vigil_lease_view *v, void *arg)
{
	(void)a;
	(void)arg;
	pthread_mutex_lock(&ch_mu);
	if (n_changes < 256)
		changes[n_changes++] = (struct change){ .what = what, .v = *v, .at = now_ns() };
	pthread_mutex_unlock(&ch_mu);
}

static unsigned changes_seen(void)
{
	unsigned n;

	pthread_mutex_lock(&ch_mu);
	n = n_changes;
	pthread_mutex_unlock(&ch_mu);
	return n;
}

/* Wait until the last change reported is `what` (up to 1 s). */
static bool wait_last(enum vigil_lease_change what)
{
	for (int i = 0; i < 1000; i++) {
		unsigned n;
		bool hit;

		pthread_mutex_lock(&ch_mu);
		n = n_changes;
		hit = n && changes[n - 1].what == what;
		pthread_mutex_unlock(&ch_mu);
		if (hit)
			return true;
		sleep_ms(1);
	}
	return false;
}

/* Wait until the agent's view satisfies holder == want (up to 500 ms). */
static bool wait_holder(struct vigil_agent *a, int want, struct vigil_lease_view *v)
{
	for (int i = 0; i < 500; i++) {
		if (vigil_agent_lease(a, v) == want)
			return true;
		sleep_ms(1);
	}
	return false;
}

static struct vigil_agent *start(struct monitor *m, int inherit)
{
	struct vigil_agent_config c = {
		.agent_id = AGENT, .monitor = "127.0.0.1", .port = m->port, .has_key = 1,
		.interval_ms = 20, .lease_id = LEASE, .drift_ppm = 1000,
		.inherit_grant = inherit, .on_change = on_change,
	};

	memcpy(c.key, KEY, 16);
	pthread_mutex_lock(&ch_mu);
	n_changes = 0;
	pthread_mutex_unlock(&ch_mu);
	return vigil_agent_start(&c);
}

int main(void)
{
	struct vigil_lease_view v;
	struct monitor m;
	struct vigil_agent *a;
	struct beat b, b2;
	uint64_t t0, wall_us;
	unsigned nc;
	bool ok;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (monitor_open(&m)) {
		printf("not ok 1 - a UDP socket on 127.0.0.1: %s\n", strerror(errno));
		return 1;
	}

	/* Config errors. */
	{
		struct vigil_agent_config c = { .agent_id = 1, .monitor = "not-an-address" };

		errno = 0;
		ok = !vigil_agent_start(&c) && errno == EINVAL;
		c.monitor = "127.0.0.1";
		c.agent_id = 0;
		ok = ok && !vigil_agent_start(&c) && errno == EINVAL;
		c.agent_id = 1;
		c.key_id = 2;
		ok = ok && !vigil_agent_start(&c) && errno == EINVAL;
		result(ok, "vigil_agent_start refuses a bad address, agent id 0 and key id 2 (EINVAL)");
	}

	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	wall_us = (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
	a = start(&m, 0);
	if (!a || next_beat(&m, &b, 1000)) {
		result(false, "the agent beats");
		return 1;
	}
	result(vigil_beat_tag_ok(&b.raw, &m.key) && b.info.agent_id == AGENT &&
		       b.info.lease_id == LEASE && b.info.interval_ms == 20 &&
		       b.info.seq >= wall_us && b.info.seq < wall_us + 5000000 &&
		       b.info.incarnation >= wall_us / 1000000 - 1,
	       "beats are signed, name the lease and the interval; seq starts at the wall clock in "
	       "us (%llu vs %llu), incarnation at its seconds",
	       (unsigned long long)b.info.seq, (unsigned long long)wall_us);
	result(!vigil_agent_lease(a, &v) && v.lease_id == LEASE && !v.token,
	       "no acknowledgement yet: not the holder, no token");

	/* Forged and misdirected answers change nothing. */
	{
		struct ack_opts forged[] = {
			{ .state = 1, .holder = AGENT, .token = 9, .remaining_ms = 200, .unsigned_ack = 1 },
			{ .state = 1, .holder = AGENT, .token = 9, .remaining_ms = 200, .wrong_key = 1 },
			{ .state = 1, .holder = AGENT, .token = 9, .remaining_ms = 200, .seq_delta = 1000 },
			{ .state = 1, .holder = AGENT, .token = 9, .remaining_ms = 200, .lease_id = 4 },
		};

		fresh_beat(&m, &b);
		for (unsigned i = 0; i < 4; i++)
			ack(&m, &b, &forged[i]);
		sleep_ms(30);
		vigil_agent_lease(a, &v);
		result(!v.holder && v.acks_rejected == 4 && v.acks_ok == 0 && !v.monitor_token,
		       "unsigned, wrongly tagged, unknown-seq and other-lease acknowledgements are "
		       "refused (%llu refused, %llu applied)",
		       (unsigned long long)v.acks_rejected, (unsigned long long)v.acks_ok);
	}

	/* The first answer: someone else holds it. Then a grant to us. */
	fresh_beat(&m, &b);
	held_ack(&m, &b, 99, 4, 150);
	fresh_beat(&m, &b);
	held_ack(&m, &b, AGENT, 5, 200);
	ok = wait_holder(a, 1, &v);
	{
		/* deadline = send time + 200 ms x (1 - 0.001) = + 199.8 ms; the
		 * beat was sent before we received it. */
		uint64_t bound = b.recv_ns + 199800000ull;

		result(ok && v.token == 5 && v.deadline_ns <= bound &&
			       v.deadline_ns + 5000000ull >= bound,
		       "an acknowledgement naming the agent makes it the holder of token 5 until its "
		       "beat's send time + 199.8 ms (%.3f ms before the receive-based bound)",
		       ((double)bound - (double)v.deadline_ns) / 1e6);
	}
	nc = changes_seen();
	result(nc >= 1 && changes[nc - 1].what == VIGIL_LEASE_GAINED && changes[nc - 1].v.token == 5,
	       "the callback reports the gain with its token");

	/* Silence: the holding ends at the deadline, not before, not much after. */
	t0 = v.deadline_ns;
	while (now_ns() + 2000000 < t0) {
		sleep_ms(1);
		if (!vigil_agent_holds(a, NULL))
			break;
	}
	ok = now_ns() + 2000000 >= t0;
	while (now_ns() < t0 + 20000000 && vigil_agent_holds(a, NULL))
		sleep_ms(1);
	/* The callback comes from the agent's thread, woken at the deadline. */
	while (now_ns() < t0 + 20000000 && changes_seen() < 2)
		sleep_ms(1);
	nc = changes_seen();
	result(ok && !vigil_agent_holds(a, NULL) && nc >= 2 &&
		       changes[nc - 1].what == VIGIL_LEASE_LOST &&
		       changes[nc - 1].v.lost_reason == VIGIL_LOSS_DEADLINE &&
		       changes[nc - 1].at >= t0 && changes[nc - 1].at < t0 + 10000000,
	       "without renewal the holding ends at the deadline (callback %.2f ms after it, "
	       "reason deadline)",
	       nc ? ((double)changes[nc - 1].at - (double)t0) / 1e6 : -1.0);
	if (n_failed) {
		vigil_agent_lease(a, &v);
		printf("#   now %+.3f ms: holder %d token %llu reason %s monitor holder %llu token %llu "
		       "state %u rem %u acks ok %llu stale %llu rejected %llu\n",
		       ((double)v.now_ns - (double)t0) / 1e6, v.holder, (unsigned long long)v.token,
		       vigil_lease_loss_name(v.lost_reason), (unsigned long long)v.monitor_holder,
		       (unsigned long long)v.monitor_token, v.monitor_state, v.remaining_ms,
		       (unsigned long long)v.acks_ok, (unsigned long long)v.acks_stale,
		       (unsigned long long)v.acks_rejected);
	}
	if (n_failed)
		for (unsigned i = 0; i < nc; i++)
			printf("#   change %u: %s token %llu reason %s at %+.3f ms, monitor holder %llu "
			       "token %llu state %u\n", i, vigil_lease_change_name(changes[i].what),
			       (unsigned long long)changes[i].v.token,
			       vigil_lease_loss_name(changes[i].v.lost_reason),
			       ((double)changes[i].at - (double)t0) / 1e6,
			       (unsigned long long)changes[i].v.monitor_holder,
			       (unsigned long long)changes[i].v.monitor_token, changes[i].v.monitor_state);

	/* Renewals move the deadline; a higher token for us is a TOKEN change. */
	fresh_beat(&m, &b);
	held_ack(&m, &b, AGENT, 5, 200);
	wait_holder(a, 1, &v);
	fresh_beat(&m, &b);
	held_ack(&m, &b, AGENT, 6, 200);
	wait_last(VIGIL_LEASE_TOKEN);
	vigil_agent_lease(a, &v);
	nc = changes_seen();
	result(v.holder && v.token == 6 && changes[nc - 1].what == VIGIL_LEASE_TOKEN,
	       "a new grant to the holder (token 6) is reported as a token change");

	/* Reordering: the newer answer says another holder; the older one,
	 * arriving after it, must not bring the lease back. */
	fresh_beat(&m, &b);
	next_beat(&m, &b2, 1000);
	held_ack(&m, &b2, 99, 7, 200);
	held_ack(&m, &b, AGENT, 6, 200);
	wait_last(VIGIL_LEASE_LOST);
	sleep_ms(15); /* the older answer is applied (or not) by now */
	vigil_agent_lease(a, &v);
	nc = changes_seen();
	result(!v.holder && v.acks_stale >= 1 && changes[nc - 1].what == VIGIL_LEASE_LOST &&
		       changes[nc - 1].v.lost_reason == VIGIL_LOSS_OTHER_HOLDER,
	       "another holder ends the holding at once; an older answer arriving later is "
	       "ignored as stale (%llu stale)", (unsigned long long)v.acks_stale);
	/* A lower token naming us, after a higher one was seen: refused. */
	fresh_beat(&m, &b);
	held_ack(&m, &b, AGENT, 6, 200);
	sleep_ms(15);
	result(!vigil_agent_holds(a, NULL), "a grant below the highest token seen (6 < 7) is not taken");
	fresh_beat(&m, &b);
	held_ack(&m, &b, AGENT, 8, 200);
	result(wait_holder(a, 1, &v) && v.token == 8, "the next grant (token 8) is taken");
	{
		struct ack_opts exp = { .state = VIGIL_LEASE_EXPIRED, .holder = AGENT, .token = 8 };

		fresh_beat(&m, &b);
		ack(&m, &b, &exp);
		wait_holder(a, 0, &v);
		result(!v.holder && v.lost_reason == VIGIL_LOSS_NOT_HELD,
		       "an acknowledgement saying EXPIRED ends it at once (reason not_held)");
	}

	/* DRAINING: lost before set_status returns; answers to earlier beats
	 * cannot bring it back; the same grant is handed back if still held. */
	fresh_beat(&m, &b);
	held_ack(&m, &b, AGENT, 9, 200);
	wait_holder(a, 1, &v);
	fresh_beat(&m, &b); /* sent while not draining */
	vigil_agent_set_status(a, VIGIL_AGENT_STATUS_DRAINING);
	ok = !vigil_agent_holds(a, NULL);
	next_beat(&m, &b2, 1000);
	ok = ok && b2.info.status == VIGIL_STATUS_DRAINING && b2.recv_ns < b.recv_ns + 15000000;
	held_ack(&m, &b, AGENT, 9, 200);
	sleep_ms(15);
	result(ok && !vigil_agent_holds(a, NULL),
	       "set_status(DRAINING): not the holder when it returns, a DRAINING beat at once, "
	       "and an answer to an earlier beat does not bring the grant back");
	vigil_agent_set_status(a, VIGIL_AGENT_STATUS_OK);
	fresh_beat(&m, &b);
	held_ack(&m, &b, AGENT, 9, 200); /* the monitor missed the DRAINING beat */
	ok = false;
	for (int i = 0; i < 5 && !ok; i++)
		ok = next_beat(&m, &b2, 1000) == 0 && b2.info.status == VIGIL_STATUS_DRAINING;
	result(ok && !vigil_agent_holds(a, NULL),
	       "back to OK, a grant it gave up (token 9) is not taken again but handed back with "
	       "another DRAINING beat");
	fresh_beat(&m, &b);
	held_ack(&m, &b, AGENT, 10, 200);
	result(wait_holder(a, 1, &v) && v.token == 10 && b.info.status == VIGIL_STATUS_OK,
	       "a fresh grant (token 10) is taken");

	/* Stop with LEAVING. */
	vigil_agent_stop(a, 1);
	ok = false;
	while (next_beat(&m, &b, 200) == 0)
		ok = b.info.status == VIGIL_STATUS_LEAVING;
	nc = changes_seen();
	result(ok && changes[nc - 1].what == VIGIL_LEASE_LOST &&
		       changes[nc - 1].v.lost_reason == VIGIL_LOSS_RELEASED,
	       "vigil_agent_stop(leave): the lease is reported lost, the last beat says LEAVING");

	/* A new process finding itself the holder hands the grant back. */
	a = start(&m, 0);
	next_beat(&m, &b, 1000);
	held_ack(&m, &b, AGENT, 10, 200);
	ok = false;
	for (int i = 0; i < 5 && !ok; i++)
		ok = next_beat(&m, &b2, 1000) == 0 && b2.info.status == VIGIL_STATUS_DRAINING;
	result(ok && !vigil_agent_holds(a, NULL),
	       "a grant held before the process started (token 10) is not adopted but handed "
	       "back with a DRAINING beat");
	fresh_beat(&m, &b);
	held_ack(&m, &b, AGENT, 11, 200);
	result(wait_holder(a, 1, &v) && v.token == 11, "the grant that follows (token 11) is taken");
	vigil_agent_stop(a, 0);
	while (next_beat(&m, &b, 50) == 0)
		;

	/* inherit_grant = 1 adopts it. */
	a = start(&m, 1);
	next_beat(&m, &b, 1000);
	held_ack(&m, &b, AGENT, 11, 200);
	result(wait_holder(a, 1, &v) && v.token == 11, "with inherit_grant the earlier grant is adopted");
	vigil_agent_stop(a, 0);
	while (next_beat(&m, &b, 50) == 0)
		;

	/* max_beats and vigil_agent_wait. */
	{
		struct vigil_agent_config c = { .agent_id = AGENT, .monitor = "127.0.0.1",
						.port = m.port, .interval_ms = 5, .max_beats = 3 };
		int n = 0, w;

		a = vigil_agent_start(&c);
		w = a ? vigil_agent_wait(a, 2000) : -1;
		while (next_beat(&m, &b, 50) == 0)
			n++;
		result(w == 0 && n == 3 && !vigil_agent_holds(a, NULL),
		       "max_beats 3: three beats, then vigil_agent_wait returns (%d beats)", n);
		vigil_agent_stop(a, 0);
	}

	/* Key parsing. */
	{
		uint8_t k[16];

		result(vigil_agent_key_parse("85adbddb3a02173f04ea149a1c420577", k) == 0 &&
			       !memcmp(k, KEY, 16) && vigil_agent_key_parse("85ad", k) < 0 &&
			       vigil_agent_key_parse("85adbddb3a02173f04ea149a1c42057g", k) < 0,
		       "vigil_agent_key_parse: 32 hex digits, nothing else");
	}

	close(m.fd);
	printf("# %u of %u cases failed\n", n_failed, n_cases);
	return n_failed ? 1 : 0;
}
