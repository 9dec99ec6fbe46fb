// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
/*
 * Host tests of the agent library (libagent/libagent.c, include/vigil/agent.h)
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
 *   - LEAVING on stop, max_beats;
 *   - several monitors: each gets every beat signed with its own key (or
 *     the shared one); a grant counts from its granter, a standby's "free"
 *     changes nothing, a higher token anywhere ends the holding.
 *
 * And the adaptive cadence (include/vigil/cadence.h, docs/leases.md): the
 * pure decision step by step (a step in queue depth moves the cadence a
 * bounded number of times; a load hovering around a threshold does not make
 * it oscillate; every beat comes within the interval the previous one
 * announced, through every change), then the library's beat loop against
 * the scripted monitor (queue depth, the monitor's recommended interval, the
 * probe-mode gate).
 *
 * Built by `make build/test_agent` with ASan and UBSan; no root needed.
 * Output is TAP-like; exit status 0 iff every case passed.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
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
#include "vigil/cadence.h"
#include "vigil/maps.h"
#include "vigil/wire.h"

#include "check.h"

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
	uint8_t key_id; /* the agent's key id this monitor knows it by */
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
	m->key_id = 0;
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
	uint16_t recommend_ms;  /* recommend_interval_ms (storm control) */
};

static void ack(struct monitor *m, const struct beat *b, const struct ack_opts *o)
{
	struct vigil_ack a = {};

	a.magic = vg_be16(VIGIL_MAGIC);
	a.version = VIGIL_VERSION;
	a.flags = VIGIL_F_ACK;
	a.lease_state = o->state;
	a.key_id = m->key_id;
	a.agent_id = vg_be64(b->info.agent_id);
	a.seq = vg_be64(b->info.seq + o->seq_delta);
	a.token = vg_be64(o->token);
	a.holder = vg_be64(o->holder);
	a.lease_id = vg_be32(o->lease_id ? o->lease_id : LEASE);
	a.remaining_ms = vg_be32(o->remaining_ms);
	a.recommend_interval_ms = vg_be16(o->recommend_ms);
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

/* The monitor grants us the lease (token, 200 ms) in answer to a fresh beat. */
static void grant_on_fresh_beat(struct monitor *m, struct beat *b, uint64_t token)
{
	fresh_beat(m, b);
	held_ack(m, b, AGENT, token, 200);
}

/* The agent hands a grant back: a DRAINING beat among its next `beats`. */
static bool drains_within(struct monitor *m, struct beat *b, int beats)
{
	for (int i = 0; i < beats; i++)
		if (next_beat(m, b, 1000) == 0 && b->info.status == VIGIL_STATUS_DRAINING)
			return true;
	return false;
}

/* The calling thread's run delay so far (ns), 0 when the kernel keeps none. */
static uint64_t thread_run_delay(void)
{
	static __thread int fd = -1;
	unsigned long long on_cpu, waited;
	char buf[96];
	ssize_t n;

	if (fd < 0)
		fd = open("/proc/thread-self/schedstat", O_RDONLY | O_CLOEXEC);
	if (fd < 0 || (n = pread(fd, buf, sizeof(buf) - 1, 0)) <= 0)
		return 0;
	buf[n] = '\0';
	return sscanf(buf, "%llu %llu", &on_cpu, &waited) == 2 ? waited : 0;
}

/* ---------------------------------------------------------- the callback */

struct change {
	enum vigil_lease_change what;
	struct vigil_lease_view v;
	uint64_t at, run_delay_ns; /* when, and its thread's run delay then */
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
		changes[n_changes++] = (struct change){ .what = what, .v = *v, .at = now_ns(),
							 .run_delay_ns = thread_run_delay() };
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

/*
 * What the agent side did, from the library's on_send hook (called in the
 * agent's thread): when each beat's send started, and how long that thread
 * had by then waited for a CPU in all (the run delay of
 * /proc/thread-self/schedstat). A beat late against its promise because
 * the machine kept the agent's thread off the CPU is the machine's doing;
 * a beat late for any other reason (scheduled late, slept too long, held
 * up inside the library) is the library's. The checks below excuse only
 * the first, and only as much of it as was measured.
 */
struct sent_rec {
	uint64_t seq, start_ns, run_delay_ns;
};

static struct sent_rec sent[1024];
static unsigned n_sent; /* under ch_mu */

static void on_send(struct vigil_agent *a, uint64_t seq, uint64_t due_ns, uint64_t start_ns,
		    uint64_t end_ns, void *arg)
{
	uint64_t rd = thread_run_delay();

	(void)a;
	(void)due_ns;
	(void)end_ns;
	(void)arg;
	pthread_mutex_lock(&ch_mu);
	sent[n_sent++ % 1024] = (struct sent_rec){ seq, start_ns, rd };
	pthread_mutex_unlock(&ch_mu);
}

/* The record of beat seq. The hook runs once send(2) has returned, so the
 * beat can arrive first: wait for it (up to a second). */
static bool sent_find(uint64_t seq, struct sent_rec *r)
{
	for (int waited = 0; waited < 1000; waited++) {
		bool found = false;

		pthread_mutex_lock(&ch_mu);
		for (unsigned i = n_sent; i-- > 0 && i + 1024 > n_sent;)
			if (sent[i % 1024].seq == seq) {
				*r = sent[i % 1024];
				found = true;
				break;
			}
		pthread_mutex_unlock(&ch_mu);
		if (found)
			return true;
		sleep_ms(1);
	}
	return false;
}

/* The agent thread's run delay at its last beat sent at or before t (ns),
 * or `otherwise` when there is none. */
static uint64_t run_delay_at(uint64_t t, uint64_t otherwise)
{
	uint64_t rd = otherwise;

	pthread_mutex_lock(&ch_mu);
	for (unsigned i = n_sent; i-- > 0 && i + 1024 > n_sent;)
		if (sent[i % 1024].start_ns <= t) {
			rd = sent[i % 1024].run_delay_ns;
			break;
		}
	pthread_mutex_unlock(&ch_mu);
	return rd;
}

static struct vigil_agent *start(struct monitor *m, int inherit)
{
	struct vigil_agent_config c = {
		.agent_id = AGENT, .monitor = "127.0.0.1", .port = m->port, .has_key = 1,
		.interval_ms = 20, .lease_id = LEASE, .drift_ppm = 1000,
		.inherit_grant = inherit, .on_change = on_change, .on_send = on_send,
	};

	memcpy(c.key, KEY, 16);
	pthread_mutex_lock(&ch_mu);
	n_changes = 0;
	pthread_mutex_unlock(&ch_mu);
	return vigil_agent_start(&c);
}

/* ------------------------------------------------------ several monitors */

static const uint8_t KEY2[16] = { 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88,
				  0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff, 0x01 };

/* The beats with one sequence, as two monitors got them (up to 1 s). */
static bool same_beat(struct monitor *m1, struct monitor *m2, struct beat *b1, struct beat *b2)
{
	if (fresh_beat(m1, b1))
		return false;
	while (next_beat(m2, b2, 1000) == 0)
		if (b2->info.seq >= b1->info.seq)
			return b2->info.seq == b1->info.seq;
	return false;
}

static void test_several_monitors(struct monitor *m1)
{
	struct monitor m2;
	struct vigil_agent_monitor mons[2] = {
		{ .address = "127.0.0.1", .port = m1->port }, /* the shared key */
		{ .address = "127.0.0.1", .has_key = 1, .key_id = 1 },
	};
	struct vigil_agent_config c = {
		.agent_id = AGENT, .has_key = 1, .interval_ms = 20, .lease_id = LEASE,
		.on_change = on_change, .monitors = mons, .n_monitors = 2,
	};
	struct ack_opts free0 = { .state = VIGIL_LEASE_FREE };
	struct vigil_monitor_view mv;
	struct vigil_lease_view v;
	struct vigil_agent *a;
	struct beat b1, b2;
	struct vigil_key k1;
	bool ok;

	if (monitor_open(&m2)) {
		result(false, "a second scripted monitor");
		return;
	}
	vigil_key_from_bytes(&m2.key, KEY2);
	m2.key_id = 1;
	vigil_key_from_bytes(&k1, KEY);
	mons[1].port = m2.port;
	memcpy(mons[1].key, KEY2, 16);
	memcpy(c.key, KEY, 16);

	c.monitor = "127.0.0.1";
	errno = 0;
	ok = !vigil_agent_start(&c) && errno == EINVAL;
	c.monitor = NULL;
	c.n_monitors = VIGIL_AGENT_MAX_MONITORS + 1;
	ok = ok && !vigil_agent_start(&c) && errno == EINVAL;
	c.n_monitors = 2;
	result(ok, "several monitors: `monitor` and `monitors` together, or more than %d, are "
	       "refused (EINVAL)", VIGIL_AGENT_MAX_MONITORS);

	pthread_mutex_lock(&ch_mu);
	n_changes = 0;
	pthread_mutex_unlock(&ch_mu);
	a = vigil_agent_start(&c);
	if (!a || !same_beat(m1, &m2, &b1, &b2)) {
		result(false, "an agent with two monitors beats to both");
		vigil_agent_stop(a, 0);
		close(m2.fd);
		return;
	}
	result(vigil_beat_tag_ok(&b1.raw, &m1->key) && b1.raw.key_id == 0 &&
		       vigil_beat_tag_ok(&b2.raw, &m2.key) && b2.raw.key_id == 1 &&
		       !vigil_beat_tag_ok(&b2.raw, &k1),
	       "two monitors get every beat (seq %llu at both): the first signed with the shared "
	       "key, the second with its own (key id 1)", (unsigned long long)b1.info.seq);

	/* Monitor 1 grants; monitor 2, a standby, keeps saying "free". (The
	 * first answers say "free": a grant in a monitor's first answer would
	 * be an earlier process's, handed back.) */
	ack(m1, &b1, &free0);
	ack(&m2, &b2, &free0);
	same_beat(m1, &m2, &b1, &b2);
	held_ack(m1, &b1, AGENT, 5, 200);
	ack(&m2, &b2, &free0);
	ok = wait_holder(a, 1, &v) && v.token == 5;
	for (int i = 0; i < 5 && ok; i++) {
		ok = same_beat(m1, &m2, &b1, &b2);
		ack(&m2, &b2, &free0);
		held_ack(m1, &b1, AGENT, 5, 200);
		sleep_ms(5);
		ok = ok && vigil_agent_holds(a, NULL);
	}
	vigil_agent_lease(a, &v);
	result(ok && v.holder && v.token == 5 && v.monitors == 2 && v.lease_monitor == 0 &&
		       v.monitor_state == VIGIL_LEASE_HELD && v.monitor_holder == AGENT,
	       "the grant of monitor 1 (token 5) holds while monitor 2 answers 'free' to every "
	       "beat; the view's monitor fields are the granter's");
	vigil_agent_monitor_view(a, 1, &mv);
	result(mv.acks_ok >= 5 && mv.state == VIGIL_LEASE_FREE && !mv.token &&
		       vigil_agent_monitor_view(a, 2, &mv) == -EINVAL,
	       "vigil_agent_monitor_view: monitor 2's own acknowledgements (%llu, 'free'); no "
	       "monitor 3 (-EINVAL)", (unsigned long long)mv.acks_ok);

	/* Storm advice: the slowest of the two. */
	{
		struct ack_opts r1 = { .state = VIGIL_LEASE_HELD, .holder = AGENT, .token = 5,
				       .remaining_ms = 200, .recommend_ms = 40 };
		struct ack_opts r2 = { .state = VIGIL_LEASE_FREE, .recommend_ms = 80 };

		same_beat(m1, &m2, &b1, &b2);
		ack(m1, &b1, &r1);
		ack(&m2, &b2, &r2);
		sleep_ms(10);
		vigil_agent_lease(a, &v);
		result(v.recommend_interval_ms == 80,
		       "the recommended interval is the slowest any monitor advises (40 and 80: %u)",
		       v.recommend_interval_ms);
	}

	/* A newer grant seen at the standby ends the holding at once. */
	same_beat(m1, &m2, &b1, &b2);
	held_ack(&m2, &b2, 99, 6, 200);
	ok = wait_holder(a, 0, &v);
	result(ok && v.lost_reason == VIGIL_LOSS_OTHER_HOLDER && v.monitor_token == 6,
	       "a higher token for another agent at monitor 2 ends monitor 1's grant (reason %s)",
	       vigil_lease_loss_name(v.lost_reason));

	/* Monitor 2 takes over granting; monitor 1's old grant, now expired, is
	 * a lower token from a monitor that is not the granter. */
	same_beat(m1, &m2, &b1, &b2);
	held_ack(&m2, &b2, AGENT, 7, 200);
	ok = wait_holder(a, 1, &v) && v.token == 7;
	{
		struct ack_opts exp5 = { .state = VIGIL_LEASE_EXPIRED, .holder = AGENT, .token = 5 };

		same_beat(m1, &m2, &b1, &b2);
		ack(m1, &b1, &exp5);
		held_ack(&m2, &b2, AGENT, 7, 200);
		sleep_ms(10);
		vigil_agent_lease(a, &v);
	}
	result(ok && v.holder && v.token == 7 && v.lease_monitor == 1,
	       "monitor 2 grants token 7: taken; monitor 1 then saying 'expired, token 5' does not "
	       "end it");
	{
		struct ack_opts exp7 = { .state = VIGIL_LEASE_EXPIRED, .holder = AGENT, .token = 7 };

		same_beat(m1, &m2, &b1, &b2);
		ack(&m2, &b2, &exp7);
		ok = wait_holder(a, 0, &v);
		result(ok && v.lost_reason == VIGIL_LOSS_NOT_HELD,
		       "the granter (monitor 2) saying 'expired' ends it (reason %s)",
		       vigil_lease_loss_name(v.lost_reason));
	}

	vigil_agent_stop(a, 0);
	while (next_beat(m1, &b1, 50) == 0)
		;
	close(m2.fd);
}

/* ------------------------------------------------- adaptive cadence: pure */

#define MS(x) ((uint64_t)(x) * 1000000ull)

/* The simulations' own PRNG (xorshift64, fixed seed), apart from check.h's. */
static uint64_t sim_rng = 0x9e3779b97f4a7c15ull;

static uint32_t sim_rnd(uint32_t n) /* 0..n-1, deterministic */
{
	sim_rng ^= sim_rng << 13;
	sim_rng ^= sim_rng >> 7;
	sim_rng ^= sim_rng << 17;
	return n ? (uint32_t)(sim_rng % n) : 0;
}

/* One simulated agent: beats at the due time, depth from a function. */
struct sim {
	struct vigil_cadence_cfg c;
	struct vigil_cadence s;
	uint64_t t, last_t;
	uint32_t last_p, ups, downs, reversals, broken;
	int last_dir;
	uint32_t values[64], n_values;
};

static void sim_init(struct sim *m, uint32_t min, uint32_t max, int adaptive)
{
	memset(m, 0, sizeof(*m));
	m->c.min_ms = min;
	m->c.max_ms = max;
	m->c.adaptive = (uint8_t)adaptive;
	vigil_cadence_cfg_fix(&m->c);
	m->t = MS(1000);
}

/* The next beat, sent when due; checks the promise of the previous one. */
static uint32_t sim_beat(struct sim *m, uint16_t depth, uint32_t rec, uint32_t cap)
{
	uint32_t p;

	if (m->s.next_ns)
		m->t = m->s.next_ns;
	if (m->last_p && m->t - m->last_t > MS(m->last_p))
		m->broken++;
	p = vigil_cadence_on_send(&m->c, &m->s, depth, rec, cap, m->t);
	if (m->last_p && p != m->last_p) {
		int dir = p > m->last_p ? 1 : -1;

		if (dir > 0)
			m->ups++;
		else
			m->downs++;
		if (m->last_dir && dir != m->last_dir)
			m->reversals++;
		m->last_dir = dir;
	}
	if (!m->n_values || m->values[m->n_values - 1] != p)
		if (m->n_values < 64)
			m->values[m->n_values++] = p;
	m->last_p = p;
	m->last_t = m->t;
	return p;
}

static const char *fmt_values(const struct sim *m)
{
	static char buf[512];
	size_t n = 0;

	buf[0] = '\0';
	for (uint32_t i = 0; i < m->n_values && n < sizeof(buf) - 16; i++)
		n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s%u", i ? "," : "", m->values[i]);
	return buf;
}

static void test_cadence_pure(void)
{
	struct sim m;
	uint32_t top;

	/* Defaults and levels. */
	sim_init(&m, 20, 320, 1);
	top = vigil_cadence_top(&m.c);
	result(m.c.high == 64 && m.c.low == 16 && top == 4 &&
		       vigil_cadence_level_ms(&m.c, 0) == 20 && vigil_cadence_level_ms(&m.c, 4) == 320 &&
		       vigil_cadence_level_ms(&m.c, 9) == 320,
	       "cadence: defaults high 64, low 16; 20..320 ms is levels 0..%u (20, 40, 80, 160, 320)",
	       top);
	sim_init(&m, 20, 1000, 1);
	result(vigil_cadence_top(&m.c) == 6 && vigil_cadence_level_ms(&m.c, 6) == 1000 &&
		       vigil_cadence_level_ms(&m.c, 5) == 640,
	       "cadence: 20..1000 ms has 6 steps, the last one capped at 1000");

	/* A step in queue depth: 0 for 2 s, 1000 for 10 s, 0 for 30 s. */
	sim_init(&m, 20, 320, 1);
	while (m.t < MS(1000 + 42000)) {
		uint64_t rel = m.t - MS(1000);

		sim_beat(&m, rel >= MS(2000) && rel < MS(12000) ? 1000 : 0, 0, 0);
	}
	result(m.ups == top && m.downs == top && m.reversals == 1 && !m.broken &&
		       m.last_p == 20 && m.s.changes == 2 * top,
	       "cadence: a step up and down of the queue depth (0 -> 1000 -> 0) moves it %u times "
	       "(%u up, %u down, one reversal): %s ms",
	       m.ups + m.downs, m.ups, m.downs, fmt_values(&m));

	/* Dwell: steps are at least 4 intervals of the level they leave apart. */
	{
		uint64_t last = 0, min_gap = UINT64_MAX;
		uint32_t lvl = 0, bad = 0;

		sim_init(&m, 20, 320, 1);
		while (m.t < MS(1000 + 20000)) {
			sim_beat(&m, m.t < MS(11000) ? 5000 : 0, 0, 0);
			if (m.s.level != lvl) {
				if (last) {
					uint64_t need = MS(4 * vigil_cadence_level_ms(&m.c, lvl));

					if (m.t - last < need)
						bad++;
					if (m.t - last < min_gap)
						min_gap = m.t - last;
				}
				last = m.t;
				lvl = m.s.level;
			}
		}
		result(!bad && m.s.level_changes == 2 * top,
		       "cadence: two steps are never closer than the dwell time (4 intervals of the "
		       "level left; shortest %.0f ms)", (double)min_gap / 1e6);
		sim_init(&m, 20, 320, 1);
		m.c.dwell_ms = 1000;
		last = 0;
		bad = 0;
		lvl = 0;
		while (m.t < MS(1000 + 20000)) {
			sim_beat(&m, 5000, 0, 0);
			if (m.s.level != lvl) {
				if (last && m.t - last < MS(1000))
					bad++;
				last = m.t;
				lvl = m.s.level;
			}
		}
		result(!bad && m.s.level == top, "cadence: dwell_ms 1000 spaces the steps by 1 s");
	}

	/* Noise around a threshold: no oscillation. */
	sim_init(&m, 20, 320, 1);
	while (m.t < MS(1000 + 60000))
		sim_beat(&m, (uint16_t)(48 + sim_rnd(33)), 0, 0); /* 48..80 around 64 */
	result(m.s.level_changes == 1 && m.s.level == 1 && m.reversals == 0,
	       "cadence: a depth hovering around the first threshold (48..80 around 64) for 60 s "
	       "moves it once (%u level changes): %s ms", m.s.level_changes, fmt_values(&m));
	{
		uint32_t before = m.s.level_changes;

		while (m.t < MS(1000 + 120000))
			sim_beat(&m, (uint16_t)(12 + sim_rnd(9)), 0, 0); /* 12..20 around 16 */
		result(m.s.level_changes - before == 1 && m.s.level == 0,
		       "cadence: then hovering around the way back (12..20 around 16) for 60 s moves "
		       "it once more (%u), back to %u ms", m.s.level_changes - before, m.last_p);
	}
	/* Random loads held 20 s each with +-25 % noise: within each hold the
	 * cadence only ever moves one way. */
	{
		uint32_t holds = 0, bad = 0, moves = 0;

		sim_init(&m, 10, 5000, 1);
		for (int h = 0; h < 40; h++) {
			uint32_t base = 4 + sim_rnd(4000), rev0;
			uint64_t end = m.t + MS(20000);

			m.last_dir = 0;
			rev0 = m.reversals;
			while (m.t < end) {
				uint32_t d = base * (75 + sim_rnd(51)) / 100;

				sim_beat(&m, (uint16_t)(d > 65535 ? 65535 : d), 0, 0);
			}
			if (m.reversals != rev0)
				bad++;
			holds++;
		}
		moves = m.ups + m.downs;
		result(!bad && !m.broken,
		       "cadence: 40 random loads with +-25 %% noise, 20 s each: never back and forth "
		       "within one (%u moves in all, every beat within the previous promise)", moves);
	}

	/* The promise rule through random changes: depth, advice, lease cap,
	 * early beats (status changes), late ones. */
	{
		struct vigil_cadence_cfg c = { .min_ms = 20, .max_ms = 2000, .adaptive = 1 };
		struct vigil_cadence s = {};
		uint64_t t = MS(1000), last_t = 0;
		uint32_t last_p = 0, broken = 0, out = 0, slow = 0, capped = 0, rec = 0, cap = 0;
		uint32_t n = 0, early = 0, late = 0, changes = 0;
		uint16_t depth = 0;

		vigil_cadence_cfg_fix(&c);
		for (n = 0; n < 200000; n++) {
			uint32_t p, kind = sim_rnd(100);
			int was_late = 0;

			if (sim_rnd(50) == 0)
				depth = (uint16_t)sim_rnd(3000);
			if (sim_rnd(200) == 0)
				rec = sim_rnd(3) ? 0 : sim_rnd(4000);
			if (sim_rnd(300) == 0)
				cap = sim_rnd(2) ? 0 : sim_rnd(1000);
			if (s.next_ns && kind < 5 && s.next_ns > last_t + 1) {
				t = last_t + 1 + sim_rnd((uint32_t)(s.next_ns - last_t - 1)); /* early */
				early++;
			} else if (s.next_ns && kind < 7) {
				t = s.next_ns + MS(sim_rnd(3 * last_p + 1)); /* held off (late) */
				was_late = 1;
				late++;
			} else if (s.next_ns) {
				t = s.next_ns;
			}
			if (last_p && !was_late && t - last_t > MS(last_p))
				broken++;
			p = vigil_cadence_on_send(&c, &s, depth, rec, cap, t);
			if (p < c.min_ms || p > c.max_ms || s.next_ns <= t || s.next_ns - t > MS(p))
				out++;
			if (rec && !cap && p < (rec < c.min_ms ? c.min_ms : rec > c.max_ms ? c.max_ms : rec))
				slow++;
			if (cap && p > (cap < c.min_ms ? c.min_ms : cap))
				capped++;
			if (last_p && p != last_p)
				changes++;
			last_p = p;
			last_t = t;
		}
		result(!broken && !out && !slow && !capped && changes > 1000,
		       "cadence: 200000 beats under random depth, advice, lease cap, early and late "
		       "beats (%u interval changes, %u early, %u late): every beat within the interval "
		       "the previous one announced, every interval within 20..2000 ms, no faster than "
		       "the advice, no slower than the cap",
		       changes, early, late);
	}

	/* Lengthening keeps the old promise: the beat due under 20 ms goes out
	 * on time announcing 200, and only then the beats are 200 ms apart. */
	{
		struct vigil_cadence_cfg c = { .min_ms = 20, .max_ms = 1000 };
		struct vigil_cadence s = {};
		uint64_t t0 = MS(1000), t1, t2, t3;
		uint32_t p0, p1, p2, p3;

		vigil_cadence_cfg_fix(&c);
		p0 = vigil_cadence_on_send(&c, &s, 0, 0, 0, t0);
		t1 = s.next_ns;
		p1 = vigil_cadence_on_send(&c, &s, 0, 200, 0, t1); /* advice arrived */
		t2 = s.next_ns;
		p2 = vigil_cadence_on_send(&c, &s, 0, 200, 0, t2);
		t3 = s.next_ns;
		p3 = vigil_cadence_on_send(&c, &s, 0, 0, 0, t3); /* advice withdrawn */
		result(p0 == 20 && t1 - t0 == MS(20) && p1 == 200 && t2 - t1 == MS(200) && p2 == 200 &&
			       p3 == 20 && s.next_ns - t3 == MS(20),
		       "cadence: advice 200 ms: the next beat still comes 20 ms after the last (%llu ms) "
		       "announcing 200, the one after 200 ms later; advice 0: back to 20 at once",
		       (unsigned long long)((t1 - t0) / 1000000));
		/* An early beat (status change) that shortens pulls the due time in. */
		s = (struct vigil_cadence){};
		vigil_cadence_on_send(&c, &s, 0, 500, 0, t0);
		p1 = vigil_cadence_on_send(&c, &s, 0, 0, 0, t0 + MS(100));
		result(p1 == 20 && s.next_ns == t0 + MS(120),
		       "cadence: an early beat announcing a shorter interval brings the next one forward");
		s = (struct vigil_cadence){};
		vigil_cadence_on_send(&c, &s, 0, 0, 0, t0);
		p1 = vigil_cadence_on_send(&c, &s, 0, 5000, 0, t0);
		p2 = vigil_cadence_on_send(&c, &s, 0, 5, 0, s.next_ns);
		result(p1 == 1000 && p2 == 20, "cadence: advice is clamped into the agent's bounds "
		       "(5000 -> %u, 5 -> %u)", p1, p2);
		s = (struct vigil_cadence){};
		p1 = vigil_cadence_on_send(&c, &s, 0, 900, 66, t0);
		p2 = vigil_cadence_on_send(&c, &s, 0, 900, 5, s.next_ns);
		result(p1 == 66 && p2 == 20, "cadence: a lease holder's cap (a third of the lease left) "
		       "wins over the advice, never below the minimum (%u, %u)", p1, p2);
		s = (struct vigil_cadence){};
		p1 = vigil_cadence_on_send(&c, &s, 60000, 0, 0, t0);
		p2 = vigil_cadence_on_send(&c, &s, 60000, 0, 0, s.next_ns + MS(1000));
		result(p1 == 20 && p2 == 20 && s.level == 0,
		       "cadence: without `adaptive` the queue depth does not move it");
		s = (struct vigil_cadence){};
		vigil_cadence_on_send(&c, &s, 0, 0, 0, t0);
		vigil_cadence_on_skip(&c, &s, s.next_ns);
		result(s.next_ns == t0 + MS(40) && s.promised_ms == 20,
		       "cadence: a beat held back (probe failed) keeps the grid and makes no promise");
	}
}

/* ------------------------------------------- adaptive cadence: the library */

/* The beats as the agent sent them: t its send time (the monitor's receive
 * time, with nothing excused, when the hook did not report it), rd its
 * thread's run delay then, iv the interval it announced. */
struct beat_log {
	uint64_t t[512], rd[512];
	uint32_t iv[512];
	unsigned n;
};

/* Collect beats for ms milliseconds (answering each with `rec` when ack). */
static void collect(struct monitor *m, struct beat_log *l, unsigned ms, int ack_it, uint16_t rec)
{
	uint64_t end = now_ns() + MS(ms);
	struct sent_rec r;
	struct beat b;

	while (now_ns() < end && l->n < 512) {
		int left = (int)((end - now_ns()) / 1000000) + 1;

		if (next_beat(m, &b, left))
			continue;
		if (!sent_find(b.info.seq, &r))
			r = (struct sent_rec){ .start_ns = b.recv_ns,
					       .run_delay_ns = l->n ? l->rd[l->n - 1] : 0 };
		l->t[l->n] = r.start_ns;
		l->rd[l->n] = r.run_delay_ns;
		l->iv[l->n] = b.info.interval_ms;
		l->n++;
		if (ack_it) {
			struct ack_opts o = { .state = VIGIL_LEASE_FREE, .recommend_ms = rec,
					      .lease_id = 5 };

			ack(m, &b, &o);
		}
	}
}

/* How late beat i was against the promise of beat i - 1 (ms), and how much
 * of that its thread spent waiting for a CPU (never more than the lateness). */
struct lateness {
	double late, waited;
};

static struct lateness late_at(const struct beat_log *l, unsigned i)
{
	struct lateness x;

	x.late = ((double)l->t[i] - (double)l->t[i - 1]) / 1e6 - l->iv[i - 1];
	x.waited = ((double)l->rd[i] - (double)l->rd[i - 1]) / 1e6;
	if (x.waited > x.late)
		x.waited = x.late > 0 ? x.late : 0;
	return x;
}

/* The worst lateness of a beat against the previous beat's promise that
 * the agent's thread waiting for a CPU does not explain, in ms. */
static double worst_late(const struct beat_log *l, unsigned from)
{
	double w = -1e9;

	for (unsigned i = from + 1; i < l->n; i++) {
		struct lateness x = late_at(l, i);

		if (x.late - x.waited > w)
			w = x.late - x.waited;
		if (x.late > 1)
			diag("beat %u: %+.1f ms against its promise, %.1f ms of it waiting for a CPU",
			     i, x.late, x.waited);
	}
	return w;
}

static const char *fmt_log(const struct beat_log *l, unsigned from)
{
	static char buf[512];
	size_t n = 0;

	buf[0] = '\0';
	for (unsigned i = from; i < l->n && n < sizeof(buf) - 16; i++)
		if (i == from || l->iv[i] != l->iv[i - 1])
			n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s%u", i == from ? "" : ",",
					      l->iv[i]);
	return buf;
}

static unsigned cadence_events(void)
{
	unsigned c = 0;

	pthread_mutex_lock(&ch_mu);
	for (unsigned i = 0; i < n_changes; i++)
		c += changes[i].what == VIGIL_CADENCE_CHANGED;
	pthread_mutex_unlock(&ch_mu);
	return c;
}

/* Allowance for a beat against its promise beyond what its thread waited
 * for a CPU (measured, see on_send): timer slack, ASan, the send itself. */
#define LATE_OK_MS 8.0

static int gate_mode; /* 0 pass, 1 fail, 2 pass slowly */
static unsigned gate_calls;
static uint32_t gate_budget;

static int test_gate(struct vigil_agent *a, uint32_t timeout_ms, void *arg)
{
	(void)a;
	(void)arg;
	__atomic_add_fetch(&gate_calls, 1, __ATOMIC_RELAXED);
	__atomic_store_n(&gate_budget, timeout_ms, __ATOMIC_RELAXED);
	if (__atomic_load_n(&gate_mode, __ATOMIC_RELAXED) == 2)
		sleep_ms(timeout_ms * 3 / 4);
	return __atomic_load_n(&gate_mode, __ATOMIC_RELAXED) != 1;
}

static void test_cadence_agent(struct monitor *m)
{
	static struct beat_log l;
	struct vigil_agent_config c = {
		.agent_id = AGENT, .monitor = "127.0.0.1", .port = m->port, .has_key = 1,
		.interval_ms = 20, .max_interval_ms = 160, .adaptive = 1, .lease_id = 5,
		.on_change = on_change, .on_send = on_send,
	};
	struct vigil_agent *a;
	struct vigil_lease_view v;
	struct beat b;
	struct lateness first;
	unsigned from, ev;
	double late;

	memcpy(c.key, KEY, 16);
	c.queue_high = 64;
	c.queue_low = 64; /* refused: must be below queue_high */
	errno = 0;
	result(!vigil_agent_start(&c) && errno == EINVAL,
	       "vigil_agent_start refuses queue_low >= queue_high (EINVAL)");
	c.queue_low = 0;
	pthread_mutex_lock(&ch_mu);
	n_changes = 0;
	pthread_mutex_unlock(&ch_mu);
	a = vigil_agent_start(&c);
	if (!a) {
		result(false, "an adaptive agent starts");
		return;
	}
	while (next_beat(m, &b, 0) == 0)
		;
	memset(&l, 0, sizeof(l));
	collect(m, &l, 150, 0, 0);
	vigil_agent_set_queue_depth(a, 1000);
	from = l.n ? l.n - 1 : 0;
	/* 4 x (20 + 40 + 80) ms of dwell to reach 160, then a while at it. */
	collect(m, &l, 1200, 0, 0);
	late = worst_late(&l, 0);
	ev = cadence_events();
	vigil_agent_lease(a, &v);
	result(l.n > from + 12 && l.iv[l.n - 1] == 160 && v.interval_ms == 160 &&
		       vigil_agent_interval_ms(a) == 160 && v.cadence_level == 3 && ev == 3 &&
		       late < LATE_OK_MS && !strcmp(fmt_log(&l, from), "20,40,80,160"),
	       "library: queue depth 1000 lengthens the interval 20 -> 160 ms in steps (%s), "
	       "each beat within the previous one's promise (worst %+.1f ms besides waiting for a "
	       "CPU), %u cadence callbacks, the view says %u ms at level %u",
	       fmt_log(&l, from), late, ev, v.interval_ms, v.cadence_level);
	vigil_agent_set_queue_depth(a, 0);
	from = l.n - 1;
	collect(m, &l, 1800, 0, 0);
	late = worst_late(&l, from);
	ev = cadence_events();
	result(l.iv[l.n - 1] == 20 && !strcmp(fmt_log(&l, from), "160,80,40,20") && ev == 6 &&
		       late < LATE_OK_MS,
	       "library: an empty queue brings it back (%s), %u callbacks in all, worst %+.1f ms "
	       "besides waiting for a CPU",
	       fmt_log(&l, from), ev, late);
	vigil_agent_stop(a, 0);
	while (next_beat(m, &b, 50) == 0)
		;

	/* Storm control: the monitor's advice, within the bounds. */
	c.adaptive = 0;
	c.max_interval_ms = 1000;
	a = vigil_agent_start(&c);
	memset(&l, 0, sizeof(l));
	collect(m, &l, 100, 1, 0);
	from = l.n - 1;
	collect(m, &l, 900, 1, 200);
	late = worst_late(&l, 0);
	first = l.n > from + 1 ? late_at(&l, from + 1) : (struct lateness){ 1e9, 0 };
	vigil_agent_lease(a, &v);
	result(l.iv[l.n - 1] == 200 && v.recommend_interval_ms == 200 &&
		       !strcmp(fmt_log(&l, from), "20,200") && late < LATE_OK_MS &&
		       first.late - first.waited < LATE_OK_MS,
	       "library: acknowledgements recommending 200 ms: the beat due under 20 ms comes on "
	       "time (%+.1f ms, %.1f of them waiting for a CPU) announcing 200, then beats are "
	       "200 ms apart (worst %+.1f ms besides waiting for a CPU)",
	       first.late, first.waited, late);
	from = l.n - 1;
	collect(m, &l, 500, 1, 0);
	late = worst_late(&l, from);
	result(l.iv[l.n - 1] == 20 && !strcmp(fmt_log(&l, from), "200,20") && late < LATE_OK_MS,
	       "library: advice withdrawn (0): back to 20 ms with the next beat (%s, worst %+.1f ms "
	       "besides waiting for a CPU)",
	       fmt_log(&l, from), late);
	from = l.n - 1;
	collect(m, &l, 400, 1, 5000);
	result(l.iv[l.n - 1] == 1000, "library: advice above max_interval_ms (5000) is clamped to "
	       "it (%u)", l.iv[l.n - 1]);
	vigil_agent_stop(a, 0);
	while (next_beat(m, &b, 50) == 0)
		;

	/* Probe mode: the gate. */
	c.max_interval_ms = 0;
	c.interval_ms = 40;
	c.gate = test_gate;
	gate_mode = 1;
	gate_calls = 0;
	a = vigil_agent_start(&c);
	memset(&l, 0, sizeof(l));
	collect(m, &l, 300, 0, 0);
	vigil_agent_lease(a, &v);
	result(l.n == 0 && v.beats_skipped >= 5 && gate_calls >= 5 && gate_budget == 32,
	       "library: while the gate fails no beat goes out (%u beats, %llu held back, budget "
	       "%u ms = 80 %% of 40)", l.n, (unsigned long long)v.beats_skipped, gate_budget);
	__atomic_store_n(&gate_mode, 2, __ATOMIC_RELAXED);
	collect(m, &l, 600, 0, 0);
	late = worst_late(&l, 1);
	result(l.n >= 12 && late < LATE_OK_MS,
	       "library: a gate that passes after 75 %% of its budget still lets every beat out "
	       "on time (%u beats in 600 ms, worst %+.1f ms against the promise besides waiting "
	       "for a CPU)", l.n, late);
	vigil_agent_stop(a, 0);
	while (next_beat(m, &b, 50) == 0)
		;
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
	grant_on_fresh_beat(&m, &b, 5);
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
	/* The callback comes from the agent's thread, woken at the deadline
	 * (waited for up to 2 s: how late it came is judged below). */
	while (now_ns() < t0 + 2000000000ull && changes_seen() < 2)
		sleep_ms(1);
	nc = changes_seen();
	{
		/* Late only by what the agent's thread did not spend waiting for
		 * a CPU since its last beat before the deadline. */
		const struct change *c = nc ? &changes[nc - 1] : NULL;
		uint64_t base = c ? run_delay_at(t0, c->run_delay_ns) : 0;
		uint64_t waited = c && c->run_delay_ns > base ? c->run_delay_ns - base : 0;

		result(ok && !vigil_agent_holds(a, NULL) && nc >= 2 &&
			       c->what == VIGIL_LEASE_LOST &&
			       c->v.lost_reason == VIGIL_LOSS_DEADLINE && c->at >= t0 &&
			       c->at < t0 + waited + 10000000,
		       "without renewal the holding ends at the deadline (callback %.2f ms after it, "
		       "%.2f ms of them waiting for a CPU; reason deadline)",
		       c ? ((double)c->at - (double)t0) / 1e6 : -1.0, (double)waited / 1e6);
	}
	if (tap_failed) {
		vigil_agent_lease(a, &v);
		printf("#   now %+.3f ms: holder %d token %llu reason %s monitor holder %llu token %llu "
		       "state %u rem %u acks ok %llu stale %llu rejected %llu\n",
		       ((double)v.now_ns - (double)t0) / 1e6, v.holder, (unsigned long long)v.token,
		       vigil_lease_loss_name(v.lost_reason), (unsigned long long)v.monitor_holder,
		       (unsigned long long)v.monitor_token, v.monitor_state, v.remaining_ms,
		       (unsigned long long)v.acks_ok, (unsigned long long)v.acks_stale,
		       (unsigned long long)v.acks_rejected);
	}
	if (tap_failed)
		for (unsigned i = 0; i < nc; i++)
			printf("#   change %u: %s token %llu reason %s at %+.3f ms, monitor holder %llu "
			       "token %llu state %u\n", i, vigil_lease_change_name(changes[i].what),
			       (unsigned long long)changes[i].v.token,
			       vigil_lease_loss_name(changes[i].v.lost_reason),
			       ((double)changes[i].at - (double)t0) / 1e6,
			       (unsigned long long)changes[i].v.monitor_holder,
			       (unsigned long long)changes[i].v.monitor_token, changes[i].v.monitor_state);

	/* Renewals move the deadline; a higher token for us is a TOKEN change. */
	grant_on_fresh_beat(&m, &b, 5);
	wait_holder(a, 1, &v);
	grant_on_fresh_beat(&m, &b, 6);
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
	grant_on_fresh_beat(&m, &b, 6);
	sleep_ms(15);
	result(!vigil_agent_holds(a, NULL), "a grant below the highest token seen (6 < 7) is not taken");
	grant_on_fresh_beat(&m, &b, 8);
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
	grant_on_fresh_beat(&m, &b, 9);
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
	grant_on_fresh_beat(&m, &b, 9); /* the monitor missed the DRAINING beat */
	result(drains_within(&m, &b2, 5) && !vigil_agent_holds(a, NULL),
	       "back to OK, a grant it gave up (token 9) is not taken again but handed back with "
	       "another DRAINING beat");
	grant_on_fresh_beat(&m, &b, 10);
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
	result(drains_within(&m, &b2, 5) && !vigil_agent_holds(a, NULL),
	       "a grant held before the process started (token 10) is not adopted but handed "
	       "back with a DRAINING beat");
	grant_on_fresh_beat(&m, &b, 11);
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

	test_several_monitors(&m);
	test_cadence_pure();
	test_cadence_agent(&m);

	close(m.fd);
	printf("# %u of %u cases failed\n", tap_failed, tap_count);
	return tap_failed ? 1 : 0;
}
