// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
/*
 * libvigil-agent: the beat loop, acknowledgement checks and the lease safety
 * rule behind include/vigil/agent.h (docs/leases.md). Built into
 * build/libvigil-agent.{a,so} and into `vigil beat`. Depends on nothing but
 * libc, pthreads and the pure headers of include/vigil/, so the static
 * library can be linked into any program.
 *
 * One thread per agent owns the sockets (one per monitor), the sequence
 * counter and the ring of recently sent beats; everything callers can see or
 * change lives behind one mutex. Callbacks run on the agent thread with the
 * mutex released.
 *
 * Several monitors: every beat goes to each (signed with that monitor's key),
 * each monitor's acknowledgements are ordered and remembered apart, and the
 * holding belongs to the monitor that granted it (include/vigil/agent.h).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>
#include "vigil/agent.h"
#include "vigil/auth.h"
#include "vigil/cadence.h"
#include "vigil/maps.h" /* enum vigil_lease_state */
#include "vigil/wire.h"

/* Beats remembered for matching acknowledgements: an ack for a beat older
 * than this many beats is refused (it would be stale anyway). */
#define SENT_RING 512

/* Probe mode: the gate gets this share of the interval in force. */
#define GATE_SHARE_PCT 80

/* After the last of max_beats, wait this long for its acknowledgement. */
#define LINGER_MAX_NS (250 * VIGIL_NSEC_PER_MSEC)

struct sent_beat {
	uint64_t seq;
	uint64_t t_ns; /* vigil_agent_now_ns() just before send(2) */
};

/* One monitor the agent beats to. */
struct monitor {
	struct sockaddr_storage addr; /* its address and port */
	socklen_t len;
	int fd;          /* UDP: beats out, its acknowledgements in */
	int has_key;     /* sign beats to it and require signed acknowledgements */
	struct vigil_key key;
	uint8_t key_id;

	/* ---- under the agent's mu */
	int seen_ack;
	uint64_t last_ack_seq; /* its acks are applied in sequence order only */
	uint64_t holder, token, last_ack_ns;
	uint32_t state, remaining_ms, recommend_ms;
	uint64_t acks_ok, send_errors;
	int send_errno;
};

struct vigil_agent {
	struct vigil_agent_config cfg;
	struct monitor mons[VIGIL_AGENT_MAX_MONITORS];
	uint32_t n_mons;
	int efd; /* eventfd: wakes the thread (status change, stop) */
	int tfd; /* timerfd on CLOCK_BOOTTIME, armed at an absolute time: after
		  * the process was stopped (SIGSTOP) the thread wakes at once,
		  * where a relative timeout would sleep out its remainder */
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;

	/* ---- under mu */
	int stopping, done;
	uint8_t status;
	uint16_t queue_depth;
	int beat_now;   /* send a beat at once (status changed, grant to hand back) */
	int auto_drain; /* the next beat says DRAINING: hand back a grant we refuse */
	int holding;    /* an acknowledgement made us the holder ... */
	uint64_t token; /* ... of this grant ... */
	uint64_t deadline; /* ... until this (safety rule) ... */
	uint32_t granter;  /* ... from this monitor */
	uint64_t last_token; /* token of the grant held last */
	enum vigil_lease_loss lost_reason;
	uint64_t max_token; /* highest token in any verified ack */
	uint64_t min_token; /* grants below this are never taken (released ones) */
	uint64_t drain_seq;    /* last beat that said DRAINING or LEAVING */
	uint32_t interval_ms;
	uint64_t beats, acks_ok, acks_rejected, acks_stale, skipped;
	struct vigil_cadence_cfg ccfg; /* fixed after start */
	struct vigil_cadence cad;      /* the schedule: next beat, level, promise */

	/* ---- agent thread only (and vigil_agent_stop after the join) */
	uint64_t seq;
	uint32_t incarnation;
	struct sent_beat ring[SENT_RING];
	int rep_holding;    /* what the callback was last told */
	uint64_t rep_token;
	uint32_t rep_interval;
};

uint64_t vigil_agent_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_BOOTTIME, &ts);
	return (uint64_t)ts.tv_sec * VIGIL_NSEC_PER_SEC + (uint64_t)ts.tv_nsec;
}

static uint64_t wall_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * VIGIL_NSEC_PER_SEC + (uint64_t)ts.tv_nsec;
}

const char *vigil_lease_change_name(enum vigil_lease_change what)
{
	switch (what) {
	case VIGIL_LEASE_GAINED:
		return "gained";
	case VIGIL_LEASE_LOST:
		return "lost";
	case VIGIL_LEASE_TOKEN:
		return "token";
	case VIGIL_CADENCE_CHANGED:
		return "cadence";
	}
	return "unknown";
}

const char *vigil_lease_loss_name(enum vigil_lease_loss why)
{
	switch (why) {
	case VIGIL_LOSS_NONE:
		return "none";
	case VIGIL_LOSS_DEADLINE:
		return "deadline";
	case VIGIL_LOSS_OTHER_HOLDER:
		return "other_holder";
	case VIGIL_LOSS_NEWER_TOKEN:
		return "newer_token";
	case VIGIL_LOSS_NOT_HELD:
		return "not_held";
	case VIGIL_LOSS_RELEASED:
		return "released";
	}
	return "unknown";
}

int vigil_agent_key_parse(const char *hex, uint8_t key[16])
{
	uint8_t b[16];

	if (!hex || strlen(hex) != 32)
		return -EINVAL;
	for (int i = 0; i < 32; i++) {
		char c = hex[i];
		int v = c >= '0' && c <= '9' ? c - '0' :
			c >= 'a' && c <= 'f' ? c - 'a' + 10 :
			c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;

		if (v < 0)
			return -EINVAL;
		if (i % 2)
			b[i / 2] = (uint8_t)(b[i / 2] << 4 | v);
		else
			b[i / 2] = (uint8_t)v;
	}
	memcpy(key, b, 16);
	return 0;
}

static int draining(uint8_t status)
{
	return status == VIGIL_STATUS_DRAINING || status == VIGIL_STATUS_LEAVING;
}

/* Under mu: the monitor whose answers describe the lease: the granter of
 * the holding; otherwise the one whose newest answer carried the highest
 * token (a standby's "free, token 0" does not hide the granter's grant). */
static uint32_t lease_monitor(const struct vigil_agent *a)
{
	uint32_t best = 0;

	if (a->holding)
		return a->granter;
	for (uint32_t i = 1; i < a->n_mons; i++) {
		const struct monitor *m = &a->mons[i], *b = &a->mons[best];

		if (m->seen_ack && (!b->seen_ack || m->token > b->token ||
				    (m->token == b->token && m->last_ack_ns > b->last_ack_ns)))
			best = i;
	}
	return best;
}

/* Under mu: the slowest interval any monitor recommends (0: none). */
static uint32_t recommend_ms(const struct vigil_agent *a)
{
	uint32_t r = 0;

	for (uint32_t i = 0; i < a->n_mons; i++)
		if (a->mons[i].recommend_ms > r)
			r = a->mons[i].recommend_ms;
	return r;
}

/* Under mu: the view of the lease as of `now`. */
static void fill_view(const struct vigil_agent *a, uint64_t now, struct vigil_lease_view *v)
{
	int h = a->holding && now < a->deadline;
	uint32_t lm = lease_monitor(a);
	const struct monitor *m = &a->mons[lm];

	memset(v, 0, sizeof(*v));
	v->lease_id = a->cfg.lease_id;
	v->now_ns = now;
	v->holder = h;
	v->token = h ? a->token : a->last_token;
	v->deadline_ns = h ? a->deadline : 0;
	v->lost_reason = a->holding && !h ? VIGIL_LOSS_DEADLINE : a->lost_reason;
	v->monitor_holder = m->holder;
	v->monitor_token = a->max_token;
	v->monitor_state = m->state;
	v->remaining_ms = m->remaining_ms;
	v->last_ack_ns = m->last_ack_ns;
	v->recommend_interval_ms = recommend_ms(a);
	v->interval_ms = a->interval_ms;
	v->beats_sent = a->beats;
	v->acks_ok = a->acks_ok;
	v->acks_rejected = a->acks_rejected;
	v->acks_stale = a->acks_stale;
	for (uint32_t i = 0; i < a->n_mons; i++) {
		v->send_errors += a->mons[i].send_errors;
		if (a->mons[i].send_errors)
			v->send_errno = a->mons[i].send_errno;
	}
	v->queue_depth = a->queue_depth;
	v->cadence_level = a->cad.level;
	v->cadence_changes = a->cad.changes;
	v->next_beat_ns = a->cad.next_ns;
	v->beats_skipped = a->skipped;
	v->monitors = a->n_mons;
	v->lease_monitor = lm;
}

/* Under mu: end the holding when the safety rule's deadline has passed. */
static void expire_locked(struct vigil_agent *a, uint64_t now)
{
	if (a->holding && now >= a->deadline) {
		a->holding = 0;
		a->lost_reason = VIGIL_LOSS_DEADLINE;
	}
}

static void lose_locked(struct vigil_agent *a, enum vigil_lease_loss why)
{
	if (a->holding) {
		a->holding = 0;
		a->lost_reason = why;
	}
}

/* Agent thread: tell the callback what changed since it was last told. */
static void report(struct vigil_agent *a)
{
	struct vigil_lease_view v;
	enum vigil_lease_change what;
	uint64_t now;

	pthread_mutex_lock(&a->mu);
	now = vigil_agent_now_ns();
	expire_locked(a, now);
	fill_view(a, now, &v);
	pthread_mutex_unlock(&a->mu);
	if (v.interval_ms != a->rep_interval) {
		a->rep_interval = v.interval_ms;
		if (a->cfg.on_change)
			a->cfg.on_change(a, VIGIL_CADENCE_CHANGED, &v, a->cfg.arg);
	}
	if (v.holder && !a->rep_holding)
		what = VIGIL_LEASE_GAINED;
	else if (!v.holder && a->rep_holding)
		what = VIGIL_LEASE_LOST;
	else if (v.holder && v.token != a->rep_token)
		what = VIGIL_LEASE_TOKEN;
	else
		return;
	a->rep_holding = v.holder;
	if (v.holder)
		a->rep_token = v.token;
	if (a->cfg.on_change)
		a->cfg.on_change(a, what, &v, a->cfg.arg);
}

/* Agent thread (or stop after the join): send one beat. status_override
 * < 0: the agent's current status; due_ns: when it was scheduled (0: not
 * scheduled), for the on_send hook. */
static void send_beat(struct vigil_agent *a, int status_override, uint64_t due_ns)
{
	struct vigil_beat_info info = {};
	struct vigil_beat b;
	struct sent_beat *s;
	uint64_t t;
	uint32_t cap = 0;
	int errs[VIGIL_AGENT_MAX_MONITORS];

	pthread_mutex_lock(&a->mu);
	t = vigil_agent_now_ns();
	info.status = status_override >= 0 ? (uint8_t)status_override : a->status;
	if (a->auto_drain && !draining(info.status)) {
		info.status = VIGIL_STATUS_DRAINING;
		a->auto_drain = 0;
	}
	info.queue_depth = a->queue_depth;
	/* What this beat promises, and so when the next one is due. A holder
	 * renews at least three times per remaining lease time. */
	expire_locked(a, t);
	if (a->cfg.lease_id && a->holding) {
		uint32_t rem = a->mons[a->granter].remaining_ms;

		cap = rem / 3 ? rem / 3 : 1;
	}
	info.interval_ms = vigil_cadence_on_send(&a->ccfg, &a->cad, a->queue_depth,
						 recommend_ms(a), cap, t);
	a->interval_ms = info.interval_ms;
	info.seq = a->seq++;
	if (draining(info.status)) {
		/* Whatever grant the monitor holds for us ends with this beat. */
		lose_locked(a, VIGIL_LOSS_RELEASED);
		a->drain_seq = info.seq;
		if (a->min_token < a->max_token + 1)
			a->min_token = a->max_token + 1;
	}
	a->beats++;
	pthread_mutex_unlock(&a->mu);

	info.agent_id = a->cfg.agent_id;
	info.incarnation = a->incarnation;
	info.lease_id = a->cfg.lease_id;
	/* A clock that never steps back (docs/wire-format.md): the monitor
	 * estimates its offset from the beats and judges its receive path by it. */
	info.send_ts_ns = vigil_agent_now_ns();
	vigil_beat_encode(&b, &info);
	s = &a->ring[info.seq % SENT_RING];
	/* Taken before the first send: the deadline counts from no later than
	 * the moment the beat could reach any monitor. */
	t = vigil_agent_now_ns();
	s->seq = info.seq;
	s->t_ns = t;
	/* The same beat to each monitor, signed with its key. Errors (no route
	 * yet, a full buffer) only cost this beat: liveness and the lease's
	 * deadline account for missing beats. */
	for (uint32_t i = 0; i < a->n_mons; i++) {
		struct monitor *m = &a->mons[i];
		struct vigil_beat out = b;

		if (m->has_key)
			vigil_beat_sign(&out, &m->key, m->key_id);
		errs[i] = sendto(m->fd, &out, sizeof(out), MSG_NOSIGNAL,
				 (struct sockaddr *)&m->addr, m->len) < 0 ? errno : 0;
	}
	pthread_mutex_lock(&a->mu);
	for (uint32_t i = 0; i < a->n_mons; i++) {
		if (errs[i]) {
			a->mons[i].send_errors++;
			a->mons[i].send_errno = errs[i];
		}
	}
	pthread_mutex_unlock(&a->mu);
	if (a->cfg.on_send)
		a->cfg.on_send(a, info.seq, due_ns, t, vigil_agent_now_ns(), a->cfg.arg);
}

/* Agent thread: verify and apply one datagram from monitor mi. */
static void handle_ack(struct vigil_agent *a, uint32_t mi, const void *buf, ssize_t n,
		       uint64_t now)
{
	struct monitor *m = &a->mons[mi];
	const struct vigil_ack *k = buf;
	const struct sent_beat *s;
	uint64_t seq, holder, token, self = a->cfg.agent_id;
	uint32_t state, rem;
	int first, self_held, can_gain;

	if (n != (ssize_t)sizeof(*k) || vg_be16(k->magic) != VIGIL_MAGIC ||
	    k->version != VIGIL_VERSION || !(k->flags & VIGIL_F_ACK))
		goto reject;
	if (m->has_key) {
		if (!(k->flags & VIGIL_F_MAC) || k->key_id != m->key_id ||
		    !vigil_ack_tag_ok(k, &m->key))
			goto reject;
	} else if (!a->cfg.allow_unsigned_acks) {
		goto reject;
	}
	seq = vg_be64(k->seq);
	s = &a->ring[seq % SENT_RING];
	if (vg_be64(k->agent_id) != self || vg_be32(k->lease_id) != a->cfg.lease_id ||
	    s->seq != seq || !s->t_ns)
		goto reject;
	state = k->lease_state;
	holder = vg_be64(k->holder);
	token = vg_be64(k->token);
	rem = vg_be32(k->remaining_ms);

	pthread_mutex_lock(&a->mu);
	expire_locked(a, now);
	if (seq <= m->last_ack_seq) {
		/* Reordered: a newer answer was applied already. */
		a->acks_stale++;
		pthread_mutex_unlock(&a->mu);
		return;
	}
	m->last_ack_seq = seq;
	a->acks_ok++;
	m->acks_ok++;
	m->last_ack_ns = now;
	m->holder = holder;
	m->state = state;
	m->token = token;
	m->remaining_ms = rem;
	m->recommend_ms = vg_be16(k->recommend_interval_ms);
	first = !m->seen_ack;
	m->seen_ack = 1;
	if (token > a->max_token)
		a->max_token = token;
	if (!a->cfg.lease_id)
		goto out;

	self_held = holder == self && state == VIGIL_LEASE_HELD;
	if (self_held && first && !a->cfg.inherit_grant) {
		/* Granted before this process started: not ours to act on. */
		if (a->min_token < token + 1)
			a->min_token = token + 1;
	}
	/* A grant may be taken only from an answer to a beat sent after the
	 * agent last gave a lease up, never while it is giving it up, and
	 * only if it is the newest grant seen. */
	can_gain = self_held && token == a->max_token && token >= a->min_token &&
		   seq > a->drain_seq && !draining(a->status) && !a->auto_drain;
	if (can_gain) {
		uint64_t rem_ns = (uint64_t)rem * VIGIL_NSEC_PER_MSEC;
		uint64_t dl = s->t_ns + rem_ns - rem_ns / 1000000 * a->cfg.drift_ppm -
			      rem_ns % 1000000 * a->cfg.drift_ppm / 1000000;

		if (a->holding && a->token == token) {
			if (dl > a->deadline)
				a->deadline = dl; /* each answer is a valid bound */
		} else if (dl > now) {
			a->holding = 1;
			a->token = a->last_token = token;
			a->deadline = dl;
			a->granter = mi;
			a->lost_reason = VIGIL_LOSS_NONE;
		} else {
			/* Ours, but this answer is too old to act on (the agent
			 * was paused): wait for a fresher one. */
			lose_locked(a, VIGIL_LOSS_NEWER_TOKEN);
		}
	} else {
		if (self_held && token < a->min_token && seq > a->drain_seq && !draining(a->status)) {
			/* The monitor still holds a grant for us that we refuse
			 * (inherited, or released while an answer was in flight):
			 * hand it back, so that it is granted afresh. */
			a->auto_drain = 1;
			a->beat_now = 1;
		}
		/* Any answer of the granter that does not confirm the grant
		 * ends it: another holder, a higher token, or a state other
		 * than HELD. Another monitor ends it only with a newer grant:
		 * a standby's view (free, or an older grant) says nothing about
		 * this one. */
		if (a->holding && mi != a->granter && token <= a->token)
			;
		else if (state != VIGIL_LEASE_HELD)
			lose_locked(a, VIGIL_LOSS_NOT_HELD);
		else if (holder != self)
			lose_locked(a, VIGIL_LOSS_OTHER_HOLDER);
		else
			lose_locked(a, VIGIL_LOSS_NEWER_TOKEN);
	}
out:
	/* The recommendation and the lease take effect with the next beat:
	 * the interval announced by the last one stays the promise in force. */
	pthread_mutex_unlock(&a->mu);
	return;
reject:
	pthread_mutex_lock(&a->mu);
	a->acks_rejected++;
	pthread_mutex_unlock(&a->mu);
}

/* Did this datagram come from the monitor's address and port? */
static int from_monitor(const struct monitor *mon, const struct sockaddr_storage *ss)
{
	if (ss->ss_family != mon->addr.ss_family)
		return 0;
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *x = (const void *)ss, *m = (const void *)&mon->addr;

		return x->sin_port == m->sin_port && x->sin_addr.s_addr == m->sin_addr.s_addr;
	} else {
		const struct sockaddr_in6 *x = (const void *)ss, *m = (const void *)&mon->addr;

		return x->sin6_port == m->sin6_port &&
		       !memcmp(&x->sin6_addr, &m->sin6_addr, sizeof(x->sin6_addr));
	}
}

/* Monitor mi's socket: its acknowledgements, in arrival order. */
static void drain_socket(struct vigil_agent *a, uint32_t mi)
{
	union {
		struct vigil_ack ack;
		char bytes[512];
	} buf;
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	ssize_t n;

	while ((n = recvfrom(a->mons[mi].fd, &buf, sizeof(buf), MSG_DONTWAIT,
			     (struct sockaddr *)&ss, &len)) >= 0 || errno == EINTR ||
	       errno == ECONNREFUSED) {
		if (n >= 0 && from_monitor(&a->mons[mi], &ss)) {
			handle_ack(a, mi, &buf, n, vigil_agent_now_ns());
			report(a);
		}
		len = sizeof(ss);
	}
}

/* Probe mode: the gate's share of the interval in force, in ms (at least 1). */
static uint32_t gate_budget_ms(uint32_t interval_ms)
{
	uint32_t b = (uint32_t)((uint64_t)interval_ms * GATE_SHARE_PCT / 100);

	return b ? b : 1;
}

/*
 * The beat loop. The schedule is a->cad (include/vigil/cadence.h): each beat
 * sets when the next is due from the interval it announced, so the promise
 * of the last beat is what the loop keeps, whatever an acknowledgement or
 * the queue depth changed since (those take effect in the next beat's
 * announcement). With a gate (probe mode) the check runs ahead of each
 * scheduled beat, its budget before the due time, and the beat goes out on
 * time only if it passed.
 */
static void *agent_thread(void *arg)
{
	struct vigil_agent *a = arg;
	uint64_t linger_until = 0;
	int gated = 0, gate_ok = 1; /* the gate ran for the coming slot; its verdict */

	struct pollfd p[2 + VIGIL_AGENT_MAX_MONITORS] = { { .fd = a->efd, .events = POLLIN },
							   { .fd = a->tfd, .events = POLLIN } };

	for (uint32_t i = 0; i < a->n_mons; i++)
		p[2 + i] = (struct pollfd){ .fd = a->mons[i].fd, .events = POLLIN };
	for (;;) {
		uint64_t now = vigil_agent_now_ns(), wake, next, budget_ns = 0;
		struct itimerspec its = {};
		int beat_now, stop;
		uint32_t promise;

		pthread_mutex_lock(&a->mu);
		stop = a->stopping;
		beat_now = a->beat_now;
		a->beat_now = 0;
		next = a->cad.next_ns;
		promise = a->interval_ms;
		pthread_mutex_unlock(&a->mu);
		if (stop)
			break;
		if (a->cfg.gate && !linger_until) {
			uint32_t budget = gate_budget_ms(promise);

			budget_ns = (uint64_t)budget * VIGIL_NSEC_PER_MSEC;
			if (!gated && (!next || now + budget_ns >= next)) {
				gate_ok = a->cfg.gate(a, budget, a->cfg.arg) != 0;
				gated = 1;
				if (beat_now) {
					pthread_mutex_lock(&a->mu);
					a->beat_now = 1; /* not lost while the gate ran */
					pthread_mutex_unlock(&a->mu);
				}
				continue; /* the check took time: look at the clock again */
			}
		}
		if (!linger_until && (beat_now || !next || now >= next)) {
			int scheduled = !next || now >= next;

			if (gate_ok) {
				send_beat(a, -1, scheduled ? next : 0);
			} else if (scheduled) {
				pthread_mutex_lock(&a->mu);
				vigil_cadence_on_skip(&a->ccfg, &a->cad, now);
				a->skipped++;
				pthread_mutex_unlock(&a->mu);
			}
			if (scheduled)
				gated = 0; /* the next slot gets its own check */
			if (a->cfg.max_beats && a->beats >= a->cfg.max_beats) {
				uint64_t iv = (uint64_t)a->interval_ms * VIGIL_NSEC_PER_MSEC;

				/* Wait a little for the last acknowledgement. */
				linger_until = now + (a->cfg.lease_id ?
					(iv < LINGER_MAX_NS ? iv : LINGER_MAX_NS) : 1);
			}
		}
		report(a); /* the deadline may have passed; the cadence may have changed */
		if (linger_until && now >= linger_until)
			break;

		pthread_mutex_lock(&a->mu);
		next = a->cad.next_ns;
		wake = linger_until ? linger_until : next;
		if (a->cfg.gate && !linger_until && !gated) {
			/* Wake for the check, its budget before the beat. */
			budget_ns = (uint64_t)gate_budget_ms(a->interval_ms) * VIGIL_NSEC_PER_MSEC;
			wake = next > budget_ns ? next - budget_ns : 0;
		}
		if (a->holding && a->deadline < wake)
			wake = a->deadline;
		pthread_mutex_unlock(&a->mu);
		if (wake <= vigil_agent_now_ns())
			continue;
		its.it_value.tv_sec = (time_t)(wake / VIGIL_NSEC_PER_SEC);
		its.it_value.tv_nsec = (long)(wake % VIGIL_NSEC_PER_SEC);
		if (timerfd_settime(a->tfd, TFD_TIMER_ABSTIME, &its, NULL))
			break; /* cannot happen with a valid fd and time */
		if (poll(p, 2 + a->n_mons, -1) > 0) {
			uint64_t v;

			if (p[0].revents)
				(void)!read(a->efd, &v, sizeof(v));
			if (p[1].revents)
				(void)!read(a->tfd, &v, sizeof(v));
			for (uint32_t i = 0; i < a->n_mons; i++)
				if (p[2 + i].revents)
					drain_socket(a, i);
		}
	}

	pthread_mutex_lock(&a->mu);
	lose_locked(a, VIGIL_LOSS_RELEASED);
	pthread_mutex_unlock(&a->mu);
	report(a);
	pthread_mutex_lock(&a->mu);
	a->done = 1;
	pthread_cond_broadcast(&a->cv);
	pthread_mutex_unlock(&a->mu);
	return NULL;
}

static void wake(struct vigil_agent *a)
{
	uint64_t one = 1;

	(void)!write(a->efd, &one, sizeof(one));
}

/* Monitor i's address, key and socket; cfg->monitors[i], or the one
 * cfg->monitor. Not connect(2)ed: an agent started before its network is up
 * keeps trying instead of failing; answers are filtered by source instead.
 * Returns 0, or -1 with errno set. */
static int open_monitor(struct monitor *m, const struct vigil_agent_config *cfg, uint32_t i)
{
	const struct vigil_agent_monitor *mc = cfg->n_monitors ? &cfg->monitors[i] : NULL;
	const char *addr = mc ? mc->address : cfg->monitor;
	struct sockaddr_in *in4 = (struct sockaddr_in *)&m->addr;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&m->addr;
	uint16_t port = mc && mc->port ? mc->port : cfg->port ? cfg->port : VIGIL_AGENT_DEFAULT_PORT;

	memset(m, 0, sizeof(*m));
	m->fd = -1;
	if (!addr || (mc && mc->has_key && mc->key_id > 1)) {
		errno = EINVAL;
		return -1;
	}
	if (inet_pton(AF_INET, addr, &in4->sin_addr) == 1) {
		in4->sin_family = AF_INET;
		in4->sin_port = htons(port);
		m->len = sizeof(*in4);
	} else if (inet_pton(AF_INET6, addr, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons(port);
		m->len = sizeof(*in6);
	} else {
		errno = EINVAL;
		return -1;
	}
	if (mc && mc->has_key) {
		m->has_key = 1;
		vigil_key_from_bytes(&m->key, mc->key);
		m->key_id = mc->key_id;
	} else if (cfg->has_key) {
		m->has_key = 1;
		vigil_key_from_bytes(&m->key, cfg->key);
		m->key_id = cfg->key_id;
	}
	m->fd = socket(m->addr.ss_family, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	return m->fd < 0 ? -1 : 0;
}

/* Every monitor slot's fd is a socket or -1. */
static void close_monitors(struct vigil_agent *a)
{
	for (uint32_t i = 0; i < VIGIL_AGENT_MAX_MONITORS; i++)
		if (a->mons[i].fd >= 0)
			close(a->mons[i].fd);
}

struct vigil_agent *vigil_agent_start(const struct vigil_agent_config *cfg)
{
	struct vigil_agent *a;
	pthread_condattr_t ca;
	sigset_t all, old;
	int err;

	if (!cfg || !cfg->agent_id || !cfg->monitor == !cfg->n_monitors ||
	    cfg->n_monitors > VIGIL_AGENT_MAX_MONITORS || (cfg->n_monitors && !cfg->monitors) ||
	    cfg->key_id > 1 ||
	    cfg->status > VIGIL_STATUS_MAX || cfg->interval_ms > 3600000 ||
	    cfg->max_interval_ms > 3600000 ||
	    (cfg->queue_high && cfg->queue_low >= cfg->queue_high)) {
		errno = EINVAL;
		return NULL;
	}
	a = calloc(1, sizeof(*a));
	if (!a)
		return NULL;
	a->cfg = *cfg;
	a->cfg.monitor = NULL; /* not kept: the caller's strings */
	a->cfg.monitors = NULL;
	if (!a->cfg.interval_ms)
		a->cfg.interval_ms = VIGIL_AGENT_DEFAULT_INTERVAL_MS;
	if (!a->cfg.drift_ppm)
		a->cfg.drift_ppm = VIGIL_AGENT_DEFAULT_DRIFT_PPM;
	if (a->cfg.drift_ppm > 1000000)
		a->cfg.drift_ppm = 1000000;
	a->status = cfg->status;
	a->queue_depth = cfg->queue_depth;
	a->ccfg.min_ms = a->cfg.interval_ms;
	a->ccfg.max_ms = a->cfg.max_interval_ms;
	a->ccfg.adaptive = !!a->cfg.adaptive;
	a->ccfg.high = a->cfg.queue_high;
	a->ccfg.low = a->cfg.queue_low;
	a->ccfg.dwell_ms = a->cfg.dwell_ms;
	vigil_cadence_cfg_fix(&a->ccfg);
	a->interval_ms = a->rep_interval = a->cfg.interval_ms;
	a->incarnation = cfg->has_incarnation ? cfg->incarnation : (uint32_t)(wall_ns() / VIGIL_NSEC_PER_SEC);
	/* Like `vigil beat`: sequences start at the wall clock in microseconds,
	 * so a restart within the same second still moves them forward. */
	a->seq = cfg->first_seq ? cfg->first_seq : wall_ns() / 1000;
	a->efd = a->tfd = -1;
	for (uint32_t i = 0; i < VIGIL_AGENT_MAX_MONITORS; i++)
		a->mons[i].fd = -1;
	for (a->n_mons = 0; a->n_mons < (cfg->n_monitors ? cfg->n_monitors : 1); a->n_mons++)
		if (open_monitor(&a->mons[a->n_mons], cfg, a->n_mons))
			goto fail;
	a->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (a->efd < 0)
		goto fail;
	a->tfd = timerfd_create(CLOCK_BOOTTIME, TFD_NONBLOCK | TFD_CLOEXEC);
	if (a->tfd < 0)
		goto fail;
	pthread_mutex_init(&a->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&a->cv, &ca);
	pthread_condattr_destroy(&ca);
	/* The agent thread takes no signals: they stay the application's. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	err = pthread_create(&a->thread, NULL, agent_thread, a);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (err) {
		pthread_cond_destroy(&a->cv);
		pthread_mutex_destroy(&a->mu);
		errno = err;
		goto fail;
	}
	return a;
fail:
	err = errno;
	close_monitors(a);
	if (a->efd >= 0)
		close(a->efd);
	if (a->tfd >= 0)
		close(a->tfd);
	free(a);
	errno = err;
	return NULL;
}

void vigil_agent_stop(struct vigil_agent *a, int leave)
{
	if (!a)
		return;
	pthread_mutex_lock(&a->mu);
	a->stopping = 1;
	pthread_mutex_unlock(&a->mu);
	wake(a);
	pthread_join(a->thread, NULL);
	if (leave)
		send_beat(a, VIGIL_STATUS_LEAVING, 0);
	close_monitors(a);
	close(a->efd);
	close(a->tfd);
	pthread_cond_destroy(&a->cv);
	pthread_mutex_destroy(&a->mu);
	free(a);
}

int vigil_agent_set_status(struct vigil_agent *a, int status)
{
	if (!a || status < 0 || status > VIGIL_STATUS_MAX)
		return -EINVAL;
	pthread_mutex_lock(&a->mu);
	a->status = (uint8_t)status;
	a->beat_now = 1;
	if (draining(a->status)) {
		lose_locked(a, VIGIL_LOSS_RELEASED);
		if (a->min_token < a->max_token + 1)
			a->min_token = a->max_token + 1;
	}
	pthread_mutex_unlock(&a->mu);
	wake(a);
	return 0;
}

void vigil_agent_set_queue_depth(struct vigil_agent *a, uint16_t depth)
{
	if (!a)
		return;
	pthread_mutex_lock(&a->mu);
	a->queue_depth = depth;
	pthread_mutex_unlock(&a->mu);
}

uint32_t vigil_agent_interval_ms(const struct vigil_agent *agent)
{
	struct vigil_agent *a = (struct vigil_agent *)agent; /* the mutex only */
	uint32_t iv;

	pthread_mutex_lock(&a->mu);
	iv = a->interval_ms;
	pthread_mutex_unlock(&a->mu);
	return iv;
}

int vigil_agent_lease(const struct vigil_agent *agent, struct vigil_lease_view *out)
{
	struct vigil_agent *a = (struct vigil_agent *)agent; /* the mutex only */
	uint64_t now;

	pthread_mutex_lock(&a->mu);
	/* Read under the lock: a grant applied before this moment is seen,
	 * and `holder` is true exactly at now_ns. */
	now = vigil_agent_now_ns();
	fill_view(a, now, out);
	pthread_mutex_unlock(&a->mu);
	return out->holder;
}

int vigil_agent_monitor_view(const struct vigil_agent *agent, uint32_t i,
			     struct vigil_monitor_view *out)
{
	struct vigil_agent *a = (struct vigil_agent *)agent; /* the mutex only */
	const struct monitor *m;

	if (!a || !out || i >= a->n_mons)
		return -EINVAL;
	m = &a->mons[i];
	pthread_mutex_lock(&a->mu);
	*out = (struct vigil_monitor_view){
		.acks_ok = m->acks_ok, .last_ack_ns = m->last_ack_ns, .holder = m->holder,
		.token = m->token, .state = m->state, .remaining_ms = m->remaining_ms,
		.recommend_interval_ms = m->recommend_ms, .send_errno = m->send_errno,
		.send_errors = m->send_errors,
	};
	pthread_mutex_unlock(&a->mu);
	return 0;
}

int vigil_agent_holds(const struct vigil_agent *agent, uint64_t *token)
{
	struct vigil_agent *a = (struct vigil_agent *)agent;
	uint64_t now;
	int h;

	pthread_mutex_lock(&a->mu);
	now = vigil_agent_now_ns();
	h = a->holding && now < a->deadline;
	if (h && token)
		*token = a->token;
	pthread_mutex_unlock(&a->mu);
	return h;
}

int vigil_agent_wait(struct vigil_agent *a, int timeout_ms)
{
	struct timespec ts;
	int err = 0;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	if (timeout_ms > 0) {
		ts.tv_sec += timeout_ms / 1000;
		ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
	}
	pthread_mutex_lock(&a->mu);
	while (!a->done && !err) {
		if (timeout_ms < 0)
			pthread_cond_wait(&a->cv, &a->mu);
		else if (timeout_ms == 0)
			err = ETIMEDOUT;
		else
			err = pthread_cond_timedwait(&a->cv, &a->mu, &ts);
	}
	err = a->done ? 0 : -ETIMEDOUT;
	pthread_mutex_unlock(&a->mu);
	return err;
}
