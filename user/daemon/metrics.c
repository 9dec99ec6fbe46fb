// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
/*
 * Prometheus metrics for `vigil run`. Every scrape reads the maps afresh
 * (one walk over the agent index, the per-CPU stats, the sweeper state) and
 * the daemon's own atomics; nothing is cached between scrapes except buffer
 * sizes. libmicrohttpd runs one internal polling thread, so requests are
 * answered one at a time and the scratch space in struct vg_metrics needs no
 * lock.
 *
 * Naming follows Prometheus practice: vigil_ prefix, base units (seconds),
 * counters end in _total. Times are printed from integer nanoseconds, so
 * they are exact.
 *
 * vigil_agent_beat_interval_seconds has buckets and _count but no _sum: the
 * kernel keeps only counts per log2 bucket, so any sum would be invented
 * (from bucket midpoints it could be a third off for every beat). The text
 * format and promtool accept a histogram without _sum, histogram_quantile()
 * needs only the buckets, and a missing series is better than a wrong one.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include "vigil/logic.h"
#include "common/log.h"
#include "daemon/metrics.h"
#include "common/registry.h"
#include "common/event.h"
#include "common/util.h"

#define CONTENT_TYPE_METRICS "text/plain; version=0.0.4; charset=utf-8"
#define CONTENT_TYPE_TEXT "text/plain; charset=utf-8"
#define LABELS_MAX 192 /* agent_id, name and group, each fully escaped */

struct agent_row {
	struct vg_agent a;
	__u32 gaps[VIGIL_GAP_BUCKETS]; /* vg_agent_gap_hist */
	char labels[LABELS_MAX]; /* agent_id="1",name="web-1",group="web" */
};

struct lease_row {
	struct lease_slot l;
	char labels[48 + 2 * VIGIL_NAME_LEN]; /* lease_id="1",lease="primary" */
};

struct vg_metrics {
	struct MHD_Daemon *httpd;
	int fd; /* listening socket until vg_metrics_serve hands it over (-1 then) */
	char listen[80];
	const struct vg_maps *maps;
	struct vg_daemon_stats *ds;
	__u32 max_agents;
	/* Scratch reused by every scrape (only the server thread touches it). */
	struct agent_row *rows;
	size_t cap_rows;
	size_t last_len; /* size of the previous /metrics body: first guess for the next */
	struct lease_row leases[VIGIL_MAX_LEASES];
};

/* ------------------------------------------------------------- text */

/* A growing output buffer; after an allocation failure it stops growing
 * and `failed` says the body is incomplete. */
struct text {
	char *p;
	size_t len, cap;
	bool failed;
};

static int text_reserve(struct text *t, size_t need)
{
	size_t cap = t->cap ? t->cap : 4096;
	char *p;

	while (cap < need)
		cap *= 2;
	if (cap == t->cap)
		return 0;
	p = realloc(t->p, cap);
	if (!p) {
		t->failed = true;
		return -1;
	}
	t->p = p;
	t->cap = cap;
	return 0;
}

static void __attribute__((format(printf, 2, 3))) put(struct text *t, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (!t->cap)
		text_reserve(t, 1);
	while (!t->failed) {
		size_t room = t->cap - t->len;

		va_start(ap, fmt);
		n = vsnprintf(t->p + t->len, room, fmt, ap);
		va_end(ap);
		if (n < 0) {
			t->failed = true;
			return;
		}
		if ((size_t)n < room) {
			t->len += n;
			return;
		}
		text_reserve(t, t->len + n + 1);
	}
}

/* The # HELP and # TYPE lines that open a metric family. */
static void family(struct text *t, const char *name, const char *type, const char *help)
{
	put(t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void one_u64(struct text *t, const char *name, const char *type, const char *help,
		    __u64 v)
{
	family(t, name, type, help);
	put(t, "%s %llu\n", name, (unsigned long long)v);
}

/* Nanoseconds printed as exact seconds. */
#define NS_FMT "%llu.%09llu"
#define NS_ARG(ns) (unsigned long long)((ns) / VIGIL_NSEC_PER_SEC), \
		   (unsigned long long)((ns) % VIGIL_NSEC_PER_SEC)

static void one_seconds(struct text *t, const char *name, const char *type, const char *help,
			__u64 ns)
{
	family(t, name, type, help);
	put(t, "%s " NS_FMT "\n", name, NS_ARG(ns));
}

/* Length of the valid UTF-8 sequence at s (at most n bytes), 0 if invalid. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
	unsigned char c = s[0], lo = 0x80, hi = 0xbf;
	size_t len;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		len = 2;
	} else if (c >= 0xe0 && c <= 0xef) {
		len = 3;
		lo = c == 0xe0 ? 0xa0 : 0x80; /* no overlong forms */
		hi = c == 0xed ? 0x9f : 0xbf; /* no surrogates */
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4;
		lo = c == 0xf0 ? 0x90 : 0x80;
		hi = c == 0xf4 ? 0x8f : 0xbf; /* nothing above U+10FFFF */
	} else {
		return 0;
	}
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++, lo = 0x80, hi = 0xbf)
		if (s[i] < lo || s[i] > hi)
			return 0;
	return len;
}

/* Append a label value from a fixed-size field: backslash, double quote and
 * newline escaped as the text format requires; bytes that are not UTF-8
 * (a name cut in the middle of a character) become '?', because one invalid
 * byte would make Prometheus reject the whole scrape. dst must have room
 * for 2 * srcsize + 1 bytes. */
static char *escape_label(char *dst, const char *src, size_t srcsize)
{
	const unsigned char *s = (const unsigned char *)src;
	size_t n = strnlen(src, srcsize);

	for (size_t i = 0; i < n;) {
		size_t k = utf8_seq(s + i, n - i);

		if (k == 0) {
			*dst++ = '?';
			i++;
		} else if (s[i] == '\\' || s[i] == '"' || s[i] == '\n') {
			*dst++ = '\\';
			*dst++ = s[i] == '\n' ? 'n' : (char)s[i];
			i++;
		} else {
			memcpy(dst, s + i, k);
			dst += k;
			i += k;
		}
	}
	*dst = '\0';
	return dst;
}

static void agent_labels(struct agent_row *r)
{
	char *p = r->labels;

	p += snprintf(p, 40, "agent_id=\"%llu\",name=\"", (unsigned long long)r->a.s.agent_id);
	p = escape_label(p, r->a.i.name, sizeof(r->a.i.name));
	p = stpcpy(p, "\",group=\"");
	p = escape_label(p, r->a.i.group, sizeof(r->a.i.group));
	strcpy(p, "\"");
}

_Static_assert(LABELS_MAX >= 40 + 2 * VIGIL_NAME_LEN + 10 + 2 * VIGIL_GROUP_LEN + 2,
	       "room for fully escaped labels");

/* ----------------------------------------------------------- agents */

struct scrape {
	struct vg_metrics *mt;
	size_t n;                                  /* rows kept */
	__u64 total;                               /* agents seen */
	__u64 by_state[VIGIL_AGENT_STATE_MAX + 1];
	int err;
};

static int collect(__u32 slot, const struct vg_agent *a, void *ctx)
{
	const struct agent_slot *s = &a->s;
	struct scrape *sc = ctx;
	struct vg_metrics *mt = sc->mt;

	(void)slot;
	if (s->state == VIGIL_AGENT_FREE || s->state > VIGIL_AGENT_STATE_MAX)
		return 0; /* removed while we walked */
	sc->by_state[s->state]++;
	if (++sc->total > mt->max_agents)
		return 0; /* only counted: the per-agent series will be left out */
	if (vg_grow(&mt->rows, &mt->cap_rows, sc->n, sizeof(*mt->rows), 256))
		return -ENOMEM;
	mt->rows[sc->n].a = *a;
	vg_agent_gap_hist(a, mt->rows[sc->n].gaps);
	agent_labels(&mt->rows[sc->n]);
	sc->n++;
	return 0;
}

/* Per-agent values printed as plain integers. */
enum agent_field { AF_SEQ, AF_INCARNATION, AF_QUEUE, AF_BEATS, AF_DUPS, AF_REORDERED, AF_RESTARTS };

static const struct {
	const char *name, *type, *help;
	enum agent_field f;
} agent_ints[] = {
	{ "vigil_agent_sequence", "gauge",
	  "Highest beat sequence accepted from the agent in its current incarnation.", AF_SEQ },
	{ "vigil_agent_incarnation", "gauge",
	  "Incarnation the agent announces (rises when it restarts).", AF_INCARNATION },
	{ "vigil_agent_queue_depth", "gauge", "Backlog the agent reported in its last beat.",
	  AF_QUEUE },
	{ "vigil_agent_beats_total", "counter", "Beats accepted from the agent.", AF_BEATS },
	{ "vigil_agent_duplicates_total", "counter",
	  "Beats refused because their sequence was already accepted.", AF_DUPS },
	{ "vigil_agent_reordered_total", "counter",
	  "Beats accepted out of order (older sequence inside the replay window).", AF_REORDERED },
	{ "vigil_agent_restarts_total", "counter", "Incarnation rises seen (agent restarts).",
	  AF_RESTARTS },
};

static __u64 agent_int(const struct vg_agent *a, enum agent_field f)
{
	switch (f) {
	case AF_SEQ:
		return a->s.replay.top;
	case AF_INCARNATION:
		return a->s.replay.incarnation;
	case AF_QUEUE:
		return a->s.queue_depth;
	case AF_BEATS:
		return a->s.beats;
	case AF_DUPS:
		return a->i.duplicates;
	case AF_REORDERED:
		return a->i.reordered;
	case AF_RESTARTS:
		return a->i.restarts;
	}
	return 0;
}

static const struct {
	const char *reason;
	size_t off;
} agent_rejects[] = {
	{ "malformed", offsetof(struct agent_info, malformed) },
	{ "bad_version", offsetof(struct agent_info, bad_version) },
	{ "bad_tag", offsetof(struct agent_info, bad_tag) },
	{ "duplicates", offsetof(struct agent_info, duplicates) },
	{ "replayed", offsetof(struct agent_info, replayed) },
	{ "over_rate", offsetof(struct agent_info, over_rate) },
};

static __u64 u64_at(const void *base, size_t off)
{
	__u64 v;

	memcpy(&v, (const char *)base + off, sizeof(v));
	return v;
}

static void emit_agents(struct text *t, const struct agent_row *rows, size_t n, __u64 now)
{
	family(t, "vigil_agent_state", "gauge",
	       "Agent state, one series per state: 1 for the state the agent is in, else 0.");
	for (size_t i = 0; i < n; i++)
		for (__u32 st = VIGIL_AGENT_NEW; st <= VIGIL_AGENT_STATE_MAX; st++)
			put(t, "vigil_agent_state{%s,state=\"%s\"} %d\n", rows[i].labels,
			    vg_state_name(st), rows[i].a.s.state == st);

	family(t, "vigil_agent_last_beat_age_seconds", "gauge",
	       "Time since the agent's last accepted beat (since registration for state new).");
	for (size_t i = 0; i < n; i++) {
		__u64 seen = rows[i].a.s.last_seen_ns;

		put(t, "vigil_agent_last_beat_age_seconds{%s} " NS_FMT "\n", rows[i].labels,
		    NS_ARG(now > seen ? now - seen : 0));
	}

	family(t, "vigil_agent_interval_seconds", "gauge",
	       "Beat interval the agent advertises, clamped to its configured bounds.");
	for (size_t i = 0; i < n; i++)
		put(t, "vigil_agent_interval_seconds{%s} %u.%03u\n", rows[i].labels,
		    rows[i].a.s.interval_ms / 1000, rows[i].a.s.interval_ms % 1000);

	family(t, "vigil_agent_deadline_seconds", "gauge",
	       "Gap after the last beat at which the agent turns suspect (multiplier x interval).");
	for (size_t i = 0; i < n; i++) {
		__u64 ms = (__u64)rows[i].a.s.multiplier * rows[i].a.s.interval_ms;

		put(t, "vigil_agent_deadline_seconds{%s} %llu.%03llu\n", rows[i].labels,
		    (unsigned long long)(ms / 1000), (unsigned long long)(ms % 1000));
	}

	for (size_t k = 0; k < sizeof(agent_ints) / sizeof(agent_ints[0]); k++) {
		family(t, agent_ints[k].name, agent_ints[k].type, agent_ints[k].help);
		for (size_t i = 0; i < n; i++)
			put(t, "%s{%s} %llu\n", agent_ints[k].name, rows[i].labels,
			    (unsigned long long)agent_int(&rows[i].a, agent_ints[k].f));
	}

	family(t, "vigil_agent_rejected_total", "counter",
	       "Beats naming the agent that were refused, by reason.");
	for (size_t i = 0; i < n; i++)
		for (size_t k = 0; k < sizeof(agent_rejects) / sizeof(agent_rejects[0]); k++)
			put(t, "vigil_agent_rejected_total{%s,reason=\"%s\"} %llu\n", rows[i].labels,
			    agent_rejects[k].reason,
			    (unsigned long long)u64_at(&rows[i].a.i, agent_rejects[k].off));

	/* Bucket i of gap_hist counts gaps in [2^(i-1), 2^i) ms, so its upper
	 * bound is 2^i ms; the last bucket is open and becomes +Inf. */
	family(t, "vigil_agent_beat_interval_seconds", "histogram",
	       "Time between consecutive accepted beats (log2 buckets kept in the kernel; "
	       "no _sum, the kernel keeps counts only).");
	for (size_t i = 0; i < n; i++) {
		__u64 cum = 0;

		for (__u32 b = 0; b < VIGIL_GAP_BUCKETS - 1; b++) {
			__u32 ms = 1u << b;

			cum += rows[i].gaps[b];
			put(t, "vigil_agent_beat_interval_seconds_bucket{%s,le=\"%u.%03u\"} %llu\n",
			    rows[i].labels, ms / 1000, ms % 1000, (unsigned long long)cum);
		}
		cum += rows[i].gaps[VIGIL_GAP_BUCKETS - 1];
		put(t, "vigil_agent_beat_interval_seconds_bucket{%s,le=\"+Inf\"} %llu\n",
		    rows[i].labels, (unsigned long long)cum);
		put(t, "vigil_agent_beat_interval_seconds_count{%s} %llu\n", rows[i].labels,
		    (unsigned long long)cum);
	}
}

/* ----------------------------------------------------------- global */

#define HOLD_MAX ((size_t)-1) /* a maximum across CPUs, in seconds, not a counter */

static const struct {
	const char *name, *help;
	size_t off;
} stat_counters[] = {
	{ "vigil_packets_total", "Packets seen by the XDP program.",
	  offsetof(struct vigil_stats, packets) },
	{ "vigil_beats_total", "Beats accepted.", offsetof(struct vigil_stats, beats) },
	{ "vigil_passed_total", "Packets that were not beats, passed up the stack.",
	  offsetof(struct vigil_stats, passed) },
	{ "vigil_reordered_total", "Beats accepted out of order (inside the replay window).",
	  offsetof(struct vigil_stats, reordered) },
	{ "vigil_restarts_total", "Agent restarts seen (incarnation rises).",
	  offsetof(struct vigil_stats, restarts) },
	{ "vigil_events_total", "Event records submitted to the ring buffer.",
	  offsetof(struct vigil_stats, events) },
	{ "vigil_ringbuf_full_total",
	  "Event records lost because the ring buffer was full (the daemon reconciles the "
	  "transitions from the maps).",
	  offsetof(struct vigil_stats, ringbuf_full) },
	{ "vigil_queue_full_total", "Agent slots that could not be handed to the sweeper.",
	  offsetof(struct vigil_stats, queue_full) },
	{ "vigil_stale_slot_total", "Index entries that pointed at a slot no longer holding the agent.",
	  offsetof(struct vigil_stats, stale_slot) },
	{ "vigil_verdicts_held_total",
	  "SUSPECT/DEAD verdicts that waited for evidence that the receive path had caught up.",
	  offsetof(struct vigil_stats, verdicts_held) },
	{ "vigil_verdicts_corrected_total",
	  "False verdicts undone: a beat sent in time arrived late (cause monitor_delay); not "
	  "agent failures.",
	  offsetof(struct vigil_stats, corrected) },
	{ "vigil_beats_lost_total",
	  "Beats proven lost before XDP by a gap in their agent's sequence (receive ring "
	  "overflow, or the network).",
	  offsetof(struct vigil_stats, lost_beats) },
	{ "vigil_verdict_hold_seconds_max",
	  "Longest a verdict waited for receive-path evidence.", HOLD_MAX /* see emit_stats */ },
};

/* How held verdicts ended (vigil_verdict_holds_total{outcome}). */
static const struct {
	const char *outcome;
	size_t off;
} hold_outcomes[] = {
	{ "evidence", offsetof(struct vigil_stats, held_decided) },
	{ "unverified", offsetof(struct vigil_stats, held_unverified) },
	{ "cancelled", offsetof(struct vigil_stats, held_cancelled) },
	{ "late_beat", offsetof(struct vigil_stats, held_by_beat) },
};

static const struct {
	const char *reason;
	size_t off;
} stat_rejects[] = {
	{ "malformed", offsetof(struct vigil_stats, malformed) },
	{ "bad_version", offsetof(struct vigil_stats, bad_version) },
	{ "unknown_agent", offsetof(struct vigil_stats, unknown_agent) },
	{ "not_allowed", offsetof(struct vigil_stats, not_allowed) },
	{ "unauthenticated", offsetof(struct vigil_stats, unauthenticated) },
	{ "bad_tag", offsetof(struct vigil_stats, bad_tag) },
	{ "duplicates", offsetof(struct vigil_stats, duplicates) },
	{ "replayed", offsetof(struct vigil_stats, replayed) },
	{ "over_rate_agent", offsetof(struct vigil_stats, over_rate_agent) },
	{ "over_rate_source", offsetof(struct vigil_stats, over_rate_source) },
	{ "mapped_source", offsetof(struct vigil_stats, mapped_source) },
};

static void emit_stats(struct text *t, const struct vigil_stats *st)
{
	for (size_t k = 0; k < sizeof(stat_counters) / sizeof(stat_counters[0]); k++) {
		if (stat_counters[k].off == HOLD_MAX)
			one_seconds(t, stat_counters[k].name, "gauge", stat_counters[k].help,
				    st->held_max_ns);
		else
			one_u64(t, stat_counters[k].name, "counter", stat_counters[k].help,
				u64_at(st, stat_counters[k].off));
	}
	one_seconds(t, "vigil_verdict_hold_seconds_total", "counter",
		    "Time verdicts spent waiting for receive-path evidence.", st->held_ns);
	family(t, "vigil_verdict_holds_total", "counter",
	       "Held verdicts by how the hold ended: evidence came (taken), the bound passed "
	       "(taken, unverified), a beat sent in time came (dropped), a beat sent late came "
	       "(taken).");
	for (size_t k = 0; k < sizeof(hold_outcomes) / sizeof(hold_outcomes[0]); k++)
		put(t, "vigil_verdict_holds_total{outcome=\"%s\"} %llu\n", hold_outcomes[k].outcome,
		    (unsigned long long)u64_at(st, hold_outcomes[k].off));
	family(t, "vigil_rejected_total", "counter",
	       "Datagrams to the beat port that were refused, by reason.");
	for (size_t k = 0; k < sizeof(stat_rejects) / sizeof(stat_rejects[0]); k++)
		put(t, "vigil_rejected_total{reason=\"%s\"} %llu\n", stat_rejects[k].reason,
		    (unsigned long long)u64_at(st, stat_rejects[k].off));
}

static void emit_sweeper(struct text *t, const struct wheel_state *ws,
			 const struct vigil_meta *meta, __u64 now)
{
	one_u64(t, "vigil_sweeper_runs_total", "counter", "Sweeper timer callbacks.", ws->runs);
	one_u64(t, "vigil_sweeper_visits_total", "counter", "Agent slots the sweeper examined.",
		ws->visits);
	one_u64(t, "vigil_sweeper_refiled_total", "counter",
		"Slots put back into a later wheel bucket.", ws->refiled);
	one_u64(t, "vigil_sweeper_budget_exhausted_total", "counter",
		"Sweeper callbacks that stopped on their visit budget.", ws->budget_exhausted);
	one_seconds(t, "vigil_sweeper_busy_seconds_total", "counter",
		    "Time spent inside sweeper callbacks.", ws->busy_ns);
	one_u64(t, "vigil_sweeper_max_lag_ticks", "gauge",
		"Largest sweeper backlog seen, in ticks (see vigil_sweeper_tick_seconds).",
		ws->max_lag_ticks);
	one_seconds(t, "vigil_sweeper_tick_seconds", "gauge", "Sweeper tick.", meta->tick_ns);
	one_u64(t, "vigil_sweeper_slots", "gauge", "Agent slots filed in the timing wheel.",
		ws->filed);
	one_seconds(t, "vigil_sweeper_last_run_age_seconds", "gauge",
		    "Time since the sweeper last ran.",
		    ws->last_run_ns && now > ws->last_run_ns ? now - ws->last_run_ns : 0);
	one_u64(t, "vigil_sweeper_lag_ticks", "gauge",
		"Sweeper backlog at its last callback, in ticks (0 or 1: on time).", ws->lag_ticks);
}

/* The monitor's own health: each receive queue that has seen timestamped
 * beats (how late they reach XDP beyond each agent's least delay), and how
 * often a part fell behind (docs/operations.md). */
static void emit_health(struct text *t, const struct vg_maps *m, const struct wheel_state *ws,
			__u64 now)
{
	struct rxq_state r[VIGIL_MAX_RXQ];
	bool used[VIGIL_MAX_RXQ];

	for (__u32 q = 0; q < VIGIL_MAX_RXQ; q++)
		used[q] = bpf_map_lookup_elem(m->rxq, &q, &r[q]) == 0 && r[q].beats;
	family(t, "vigil_rx_lag_seconds", "gauge",
	       "Delay of the last beat on a receive queue beyond its agent's least delay.");
	for (__u32 q = 0; q < VIGIL_MAX_RXQ; q++)
		if (used[q])
			put(t, "vigil_rx_lag_seconds{queue=\"%u\"} " NS_FMT "\n", q,
			    NS_ARG(r[q].lag_ns));
	family(t, "vigil_rx_watermark_age_seconds", "gauge",
	       "How far a receive queue's send-time watermark (the evidence held verdicts wait "
	       "for) is behind the clock.");
	for (__u32 q = 0; q < VIGIL_MAX_RXQ; q++)
		if (used[q])
			put(t, "vigil_rx_watermark_age_seconds{queue=\"%u\"} " NS_FMT "\n", q,
			    NS_ARG(now > r[q].sent_wm_ns ? now - r[q].sent_wm_ns : 0));
	family(t, "vigil_monitor_behind", "gauge",
	       "1 while a part of the monitor is more than a tick behind.");
	put(t, "vigil_monitor_behind{part=\"sweeper\"} %d\n", ws->behind_since_ns != 0);
	for (__u32 q = 0; q < VIGIL_MAX_RXQ; q++)
		if (used[q])
			put(t, "vigil_monitor_behind{part=\"receive_queue\",queue=\"%u\"} %d\n", q,
			    r[q].behind_since_ns != 0);
	family(t, "vigil_monitor_behind_episodes_total", "counter",
	       "Times a part of the monitor fell more than a tick behind (MONITOR_BEHIND events).");
	put(t, "vigil_monitor_behind_episodes_total{part=\"sweeper\"} %llu\n",
	    (unsigned long long)ws->behind_episodes);
	for (__u32 q = 0; q < VIGIL_MAX_RXQ; q++)
		if (used[q])
			put(t, "vigil_monitor_behind_episodes_total{part=\"receive_queue\","
			       "queue=\"%u\"} %u\n", q, r[q].episodes);
}

/* Per-lease series, of each lease that is configured or was ever granted
 * (docs/leases.md). Remaining time is printed in seconds from nanoseconds. */
enum lease_field { LF_HELD, LF_HOLDER, LF_TOKEN, LF_REMAINING_NS, LF_RENEWALS };

static const struct {
	const char *name, *type, *help;
	enum lease_field f;
} lease_fields[] = {
	{ "vigil_lease_held", "gauge", "1 while the lease has a holder whose time runs.", LF_HELD },
	{ "vigil_lease_holder", "gauge", "Agent id of the lease's current holder (0: none).",
	  LF_HOLDER },
	{ "vigil_lease_token", "gauge", "Fencing token of the latest grant; rises with each grant.",
	  LF_TOKEN },
	{ "vigil_lease_remaining_seconds", "gauge",
	  "Time until the lease expires unless the holder's beats renew it (0 when not held).",
	  LF_REMAINING_NS },
	{ "vigil_lease_renewals_total", "counter",
	  "Renewals of the current grant by the holder's beats.", LF_RENEWALS },
};

static __u64 lease_value(const struct lease_slot *l, enum lease_field f, __u64 now)
{
	bool held = l->state == VIGIL_LEASE_HELD;

	switch (f) {
	case LF_HELD:
		return held;
	case LF_HOLDER:
		return held ? l->holder : 0;
	case LF_TOKEN:
		return l->token;
	case LF_REMAINING_NS:
		return held && l->expires_ns > now ? l->expires_ns - now : 0;
	case LF_RENEWALS:
		return l->renewals;
	}
	return 0;
}

static void emit_leases(struct text *t, struct vg_metrics *mt, __u64 now)
{
	struct lease_row *rows = mt->leases;
	size_t n = 0;

	for (__u32 id = 1; id < VIGIL_MAX_LEASES; id++) {
		struct lease_slot *l = &rows[n].l;
		char *p = rows[n].labels;

		if (bpf_map_lookup_elem(mt->maps->leases, &id, l) ||
		    (!l->name[0] && !l->token && l->state == VIGIL_LEASE_FREE))
			continue;
		p += sprintf(p, "lease_id=\"%u\",lease=\"", id);
		p = escape_label(p, l->name, sizeof(l->name));
		strcpy(p, "\"");
		n++;
	}
	for (size_t k = 0; k < sizeof(lease_fields) / sizeof(lease_fields[0]); k++) {
		family(t, lease_fields[k].name, lease_fields[k].type, lease_fields[k].help);
		for (size_t i = 0; i < n; i++) {
			__u64 v = lease_value(&rows[i].l, lease_fields[k].f, now);

			if (lease_fields[k].f == LF_REMAINING_NS)
				put(t, "%s{%s} " NS_FMT "\n", lease_fields[k].name, rows[i].labels,
				    NS_ARG(v));
			else
				put(t, "%s{%s} %llu\n", lease_fields[k].name, rows[i].labels,
				    (unsigned long long)v);
		}
	}
}

/* The daemon's own counters (struct vg_daemon_stats). */
static const struct {
	const char *name, *help;
	size_t off;
} daemon_counters[] = {
#define DS(f) offsetof(struct vg_daemon_stats, f)
	{ "vigil_events_recorded_total", "Events the daemon added to the durable event log.",
	  DS(events_recorded) },
	{ "vigil_events_reconciled_total",
	  "Transitions recovered from the maps because their event was lost.",
	  DS(events_reconciled) },
	{ "vigil_log_errors_total", "Failed writes to the event log.", DS(log_errors) },
	{ "vigil_alerts_enqueued_total", "Alerts queued for delivery.", DS(alerts_enqueued) },
	{ "vigil_alerts_delivered_total", "Alerts a sink accepted.", DS(alerts_delivered) },
	{ "vigil_alert_attempts_failed_total",
	  "Alert delivery attempts that failed (each is retried until dead-lettered).",
	  DS(alert_attempts_failed) },
	{ "vigil_alerts_dead_lettered_total",
	  "Alerts moved to the dead-letter table after their last retry.",
	  DS(alerts_dead_lettered) },
	{ "vigil_alerts_suppressed_total", "Alerts withheld by flap damping.",
	  DS(alerts_suppressed) },
	{ "vigil_alerts_resent_total",
	  "Firing alerts re-sent to Alertmanager (every --alert-resend-s) and accepted.",
	  DS(alerts_resent) },
	{ "vigil_alert_resends_failed_total",
	  "Re-send requests to Alertmanager that failed (tried again the next period).",
	  DS(alert_resends_failed) },
	{ "vigil_remediations_run_total", "Remediation hooks run.", DS(remediations_run) },
	{ "vigil_learned_agents_total", "Unknown agents registered by --learn.", DS(learned) },
	{ "vigil_events_exported_total", "Events NATS JetStream acknowledged.",
	  DS(events_exported) },
	{ "vigil_export_errors_total", "Failed export steps (each retried).", DS(export_errors) },
#undef DS
};

static void emit_lag(struct text *t, struct vg_daemon_stats *ds)
{
	__u64 cum = 0, count = atomic_load(&ds->lag_count);

	family(t, "vigil_event_delivery_lag_seconds", "histogram",
	       "Time from the kernel taking a transition to the daemon recording it.");
	for (int i = 0; i < VG_LAG_BUCKETS; i++) {
		cum += atomic_load(&ds->lag_bucket[i]);
		put(t, "vigil_event_delivery_lag_seconds_bucket{le=\"%g\"} %llu\n", vg_lag_bounds[i],
		    (unsigned long long)cum);
	}
	/* Samples above the last bound are only in lag_count; read after the
	 * buckets, so +Inf is never below a finite bucket. */
	if (count < cum)
		count = cum;
	put(t, "vigil_event_delivery_lag_seconds_bucket{le=\"+Inf\"} %llu\n",
	    (unsigned long long)count);
	put(t, "vigil_event_delivery_lag_seconds_sum " NS_FMT "\n",
	    NS_ARG((__u64)atomic_load(&ds->lag_sum_ns)));
	put(t, "vigil_event_delivery_lag_seconds_count %llu\n", (unsigned long long)count);
}

static void emit_daemon(struct text *t, struct vg_daemon_stats *ds)
{
	for (size_t k = 0; k < sizeof(daemon_counters) / sizeof(daemon_counters[0]); k++)
		one_u64(t, daemon_counters[k].name, "counter", daemon_counters[k].help,
			atomic_load((atomic_ullong *)((char *)ds + daemon_counters[k].off)));
	emit_lag(t, ds);
	one_u64(t, "vigil_agents_flapping", "gauge",
		"Agents whose alerts flap damping withholds now (--flap-suppress).",
		atomic_load(&ds->agents_flapping));
	one_u64(t, "vigil_alerts_firing", "gauge",
		"Alerts the last re-send kept firing in Alertmanager (agents still SUSPECT or DEAD).",
		atomic_load(&ds->alerts_firing));
	one_u64(t, "vigil_alerts_pending", "gauge",
		"Alerts waiting in the outbox for delivery or a retry (counted every second while "
		"a sink is configured).", atomic_load(&ds->alerts_pending));
	one_u64(t, "vigil_alerts_dead_letter_queue", "gauge",
		"Alerts in the dead-letter queue, waiting for 'vigil dlq replay' (counted every "
		"second while a sink is configured).", atomic_load(&ds->alerts_dead_letter_queue));
	one_seconds(t, "vigil_process_start_time_seconds", "gauge",
		    "When the daemon started, in seconds since the Unix epoch.",
		    atomic_load(&ds->started_wall_ns));
	one_u64(t, "vigil_ready", "gauge",
		"1 once the daemon finished its initial drain and reconcile (as /readyz).",
		atomic_load(&ds->ready));
}

/* Build the /metrics body. On failure returns -errno and leaves a one-line
 * reason in *why. */
static int build_metrics(struct vg_metrics *mt, struct text *t, const char **why)
{
	const struct vg_maps *m = mt->maps;
	struct scrape sc = { .mt = mt };
	struct wheel_state ws = {};
	struct vigil_meta meta = {};
	struct vigil_config cfg = {};
	struct vigil_stats st;
	__u32 zero = 0;
	__u64 now;
	int err;

	err = vg_stats_read(m, &st);
	if (err) {
		*why = "reading vigil_stats failed";
		return err;
	}
	if (bpf_map_lookup_elem(m->wheel, &zero, &ws) ||
	    bpf_map_lookup_elem(m->meta, &zero, &meta)) {
		*why = "reading the sweeper state failed";
		return -errno;
	}
	if (bpf_map_lookup_elem(m->config, &zero, &cfg)) {
		*why = "reading vigil_config failed";
		return -errno;
	}
	err = vg_agent_foreach(m, collect, &sc);
	if (err) {
		*why = "reading the agents failed";
		return err;
	}
	now = vg_mono_ns();
	text_reserve(t, mt->last_len + mt->last_len / 8 + 1);

	one_u64(t, "vigil_up", "gauge", "1: the daemon is serving metrics.", 1);
	one_u64(t, "vigil_auth_required", "gauge",
		"1: beats must carry a valid tag; 0: --no-auth or --learn, unsigned beats are "
		"accepted.", cfg.auth_required != 0);
	emit_stats(t, &st);
	emit_sweeper(t, &ws, &meta, now);
	emit_health(t, m, &ws, now);
	emit_leases(t, mt, now);

	family(t, "vigil_agents", "gauge", "Registered agents by state.");
	for (__u32 s = VIGIL_AGENT_NEW; s <= VIGIL_AGENT_STATE_MAX; s++)
		put(t, "vigil_agents{state=\"%s\"} %llu\n", vg_state_name(s),
		    (unsigned long long)sc.by_state[s]);
	one_u64(t, "vigil_agents_capacity", "gauge", "Agent slots in the maps (--max-agents).",
		meta.max_agents);
	put(t, "# HELP vigil_agent_series_omitted Agents whose per-agent series (those labelled "
	       "agent_id) are left out because there are more than --metrics-max-agents (%u); "
	       "the totals cover all agents.\n"
	       "# TYPE vigil_agent_series_omitted gauge\nvigil_agent_series_omitted %llu\n",
	    mt->max_agents, (unsigned long long)(sc.total > mt->max_agents ? sc.total : 0));

	emit_daemon(t, mt->ds);
	if (sc.total <= mt->max_agents)
		emit_agents(t, mt->rows, sc.n, now);
	if (t->failed) {
		*why = "out of memory";
		return -ENOMEM;
	}
	mt->last_len = t->len;
	return 0;
}

/* ------------------------------------------------------------- HTTP */

static enum MHD_Result reply(struct MHD_Connection *c, unsigned int code, const char *type,
			     char *body, size_t len)
{
	struct MHD_Response *r;
	enum MHD_Result ret;

	r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
	if (!r) {
		free(body);
		return MHD_NO;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	if (code == MHD_HTTP_METHOD_NOT_ALLOWED)
		MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
	ret = MHD_queue_response(c, code, r);
	MHD_destroy_response(r);
	return ret;
}

/* A one-line plain-text answer. */
static enum MHD_Result __attribute__((format(printf, 3, 4)))
reply_line(struct MHD_Connection *c, unsigned int code, const char *fmt, ...)
{
	char *body = NULL;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&body, fmt, ap);
	va_end(ap);
	if (n < 0)
		return MHD_NO;
	return reply(c, code, CONTENT_TYPE_TEXT, body, n);
}

static enum MHD_Result serve_metrics(struct vg_metrics *mt, struct MHD_Connection *c)
{
	struct text t = {};
	const char *why = "";
	int err = build_metrics(mt, &t, &why);

	if (err) {
		free(t.p);
		pr_warn("metrics: %s: %s\n", why, strerror(-err));
		return reply_line(c, MHD_HTTP_SERVICE_UNAVAILABLE, "%s: %s\n", why, strerror(-err));
	}
	return reply(c, MHD_HTTP_OK, CONTENT_TYPE_METRICS, t.p, t.len);
}

/* Healthy while the sweeper keeps running: it ran within the last second
 * (or three ticks, for ticks that long). */
static enum MHD_Result serve_healthz(struct vg_metrics *mt, struct MHD_Connection *c)
{
	struct wheel_state ws;
	struct vigil_meta meta = {};
	__u64 now, age, limit = VIGIL_NSEC_PER_SEC;
	__u32 zero = 0;

	if (bpf_map_lookup_elem(mt->maps->wheel, &zero, &ws))
		return reply_line(c, MHD_HTTP_SERVICE_UNAVAILABLE,
				  "unhealthy: cannot read the sweeper state: %s\n", strerror(errno));
	if (bpf_map_lookup_elem(mt->maps->meta, &zero, &meta) == 0 && 3 * meta.tick_ns > limit)
		limit = 3 * meta.tick_ns;
	if (!ws.last_run_ns)
		return reply_line(c, MHD_HTTP_SERVICE_UNAVAILABLE,
				  "unhealthy: the sweeper has never run\n");
	now = vg_mono_ns();
	age = now > ws.last_run_ns ? now - ws.last_run_ns : 0;
	if (age > limit)
		return reply_line(c, MHD_HTTP_SERVICE_UNAVAILABLE,
				  "unhealthy: the sweeper last ran %.3f s ago (limit %.3f s); "
				  "the instance was detached or its timer stopped\n",
				  age / 1e9, limit / 1e9);
	return reply_line(c, MHD_HTTP_OK, "ok: the sweeper ran %.3f ms ago\n", age / 1e6);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
				  const char *method, const char *version, const char *upload,
				  size_t *upload_size, void **req)
{
	struct vg_metrics *mt = cls;

	(void)version;
	(void)upload;
	(void)req;
	*upload_size = 0; /* no endpoint takes a body */
	if (strcmp(url, "/metrics") && strcmp(url, "/healthz") && strcmp(url, "/readyz"))
		return reply_line(c, MHD_HTTP_NOT_FOUND,
				  "not found: try /metrics, /healthz or /readyz\n");
	if (strcmp(method, MHD_HTTP_METHOD_GET) && strcmp(method, MHD_HTTP_METHOD_HEAD))
		return reply_line(c, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed: use GET\n");
	if (!strcmp(url, "/metrics"))
		return serve_metrics(mt, c);
	if (!strcmp(url, "/healthz"))
		return serve_healthz(mt, c);
	if (atomic_load(&mt->ds->ready))
		return reply_line(c, MHD_HTTP_OK, "ready\n");
	return reply_line(c, MHD_HTTP_SERVICE_UNAVAILABLE,
			  "not ready: the initial drain and reconcile are not done\n");
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
	char buf[256];

	(void)cls;
	vsnprintf(buf, sizeof(buf), fmt, ap);
	buf[strcspn(buf, "\n")] = '\0';
	pr_debug("metrics: libmicrohttpd: %s\n", buf);
}

/* --------------------------------------------------------- lifecycle */

/* "A.B.C.D:PORT" or "[V6]:PORT" into a socket address. Numeric only: a
 * name could resolve to several addresses, and we bind exactly one. */
static int parse_listen(const char *addr, struct sockaddr_storage *ss, socklen_t *len)
{
	struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)ss;
	struct sockaddr_in *v4 = (struct sockaddr_in *)ss;
	const char *colon = strrchr(addr, ':'), *host = addr;
	char buf[INET6_ADDRSTRLEN];
	size_t hlen = colon ? (size_t)(colon - addr) : 0;
	bool bracketed = addr[0] == '[';
	__u32 port;

	if (bracketed && hlen >= 2 && addr[hlen - 1] == ']') {
		host++;
		hlen -= 2;
	}
	if (!colon || !hlen || hlen >= sizeof(buf) || (bracketed && host == addr)) {
		pr_warn("--metrics: '%s' is not ADDR:PORT (e.g. %s or [::1]:9747) or 'off'\n", addr,
			VG_METRICS_DEFAULT_LISTEN);
		return -EINVAL;
	}
	memcpy(buf, host, hlen);
	buf[hlen] = '\0';
	if (vg_parse_u32(colon + 1, "--metrics port", 1, 65535, &port))
		return -EINVAL;
	memset(ss, 0, sizeof(*ss));
	if (!bracketed && inet_pton(AF_INET, buf, &v4->sin_addr) == 1) {
		v4->sin_family = AF_INET;
		v4->sin_port = htons(port);
		*len = sizeof(*v4);
	} else if (bracketed && inet_pton(AF_INET6, buf, &v6->sin6_addr) == 1) {
		v6->sin6_family = AF_INET6;
		v6->sin6_port = htons(port);
		*len = sizeof(*v6);
	} else {
		pr_warn("--metrics: '%s' is not a numeric IPv4 address or a bracketed IPv6 "
			"address (e.g. %s or [::1]:9747)\n", addr, VG_METRICS_DEFAULT_LISTEN);
		return -EINVAL;
	}
	return 0;
}

int vg_metrics_bind(const char *addr, struct vg_metrics **out)
{
	struct sockaddr_storage ss;
	struct vg_metrics *mt;
	socklen_t len;
	int one = 1, err;

	*out = NULL;
	err = parse_listen(addr, &ss, &len);
	if (err)
		return err;
	mt = calloc(1, sizeof(*mt));
	if (!mt)
		return -ENOMEM;
	vg_strlcpy(mt->listen, addr, sizeof(mt->listen));
	mt->max_agents = VG_METRICS_DEFAULT_MAX_AGENTS;
	mt->fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (mt->fd < 0)
		goto fail;
	/* SO_REUSEADDR lets a restarted daemon bind while old connections
	 * linger in TIME_WAIT; it does not let two listeners share a port. */
	setsockopt(mt->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (ss.ss_family == AF_INET6)
		setsockopt(mt->fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(mt->fd, (struct sockaddr *)&ss, len) || listen(mt->fd, 64))
		goto fail;
	*out = mt;
	return 0;
fail:
	err = -errno;
	pr_warn("metrics: cannot listen on %s: %s (port in use? pass --metrics ADDR:PORT or "
		"--metrics off)\n", addr, strerror(-err));
	if (mt->fd >= 0)
		close(mt->fd);
	free(mt);
	return err;
}

/* Any process on the node can connect to the health port, and the kubelet's
 * liveness probe must still get in: idle connections are closed after a few
 * seconds (a scrape or a probe takes milliseconds), and the limit is far above
 * what the scrapers and probes of one node hold, bounded by what the
 * process may open beside its maps, log and sockets. */
#define HTTP_IDLE_S 5
#define HTTP_MAX_CONNECTIONS 512
#define HTTP_FDS_KEPT 128

static unsigned int connection_limit(void)
{
	struct rlimit rl;
	rlim_t n = HTTP_MAX_CONNECTIONS;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
	    rl.rlim_cur < n + HTTP_FDS_KEPT)
		n = rl.rlim_cur > 2 * HTTP_FDS_KEPT ? rl.rlim_cur - HTTP_FDS_KEPT : HTTP_FDS_KEPT;
	return (unsigned int)n;
}

int vg_metrics_serve(struct vg_metrics *mt, const struct vg_maps *m, struct vg_daemon_stats *ds,
		     __u32 max_agents)
{
	sigset_t block, old;

	mt->maps = m;
	mt->ds = ds;
	mt->max_agents = max_agents;
	/* The server thread inherits this mask: the daemon's signals go to
	 * its main thread, whose loop acts on them. */
	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &block, &old);
	mt->httpd = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO |
				     MHD_USE_ERROR_LOG, 0, NULL, NULL, on_request, mt,
				     MHD_OPTION_LISTEN_SOCKET, mt->fd,
				     MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL,
				     MHD_OPTION_CONNECTION_LIMIT, connection_limit(),
				     MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)HTTP_IDLE_S,
				     MHD_OPTION_END);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	/* From here libmicrohttpd owns the socket (MHD_stop_daemon closes it).
	 * After a failed start it may or may not have closed it: leave it
	 * rather than risk closing someone else's descriptor. */
	mt->fd = -1;
	if (!mt->httpd) {
		pr_warn("metrics: starting the HTTP server on %s failed\n", mt->listen);
		return -EIO;
	}
	pr_info("metrics: http://%s/metrics (also /healthz, /readyz)\n", mt->listen);
	return 0;
}

int vg_metrics_start(const char *addr, const struct vg_maps *m, struct vg_daemon_stats *ds,
		     struct vg_metrics **out)
{
	int err = vg_metrics_bind(addr, out);

	if (err)
		return err;
	err = vg_metrics_serve(*out, m, ds, VG_METRICS_DEFAULT_MAX_AGENTS);
	if (err) {
		vg_metrics_stop(*out);
		*out = NULL;
	}
	return err;
}

void vg_metrics_stop(struct vg_metrics *mt)
{
	if (!mt)
		return;
	if (mt->httpd)
		MHD_stop_daemon(mt->httpd);
	if (mt->fd >= 0)
		close(mt->fd); /* bound, never served */
	free(mt->rows);
	free(mt);
}
