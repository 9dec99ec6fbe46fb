// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
/*
 * `vigil fleet`: one view of many monitors, merged from their JetStream
 * streams (docs/fleet.md, "The merged fleet view").
 *
 *   merge   reads every host's events (vigil.events.<host> in the --source
 *           streams) and presence (the <stream>_MONITORS bucket), merges the
 *           monitors' verdicts per agent (common/fleet.h) and appends what it
 *           decides to its own stream, --out (VIGIL_FLEET, subjects
 *           vigil.fleet.<out>.>): one record per merged event, one per
 *           monitor that turns live or lost, one per agent whose fleet state
 *           that changed.
 *   status  the fleet's state of every agent, from that stream alone;
 *   events  its records, as JSON lines or a table; --follow keeps going.
 *
 * The output stream is also the merger's only memory. Every record carries
 * what a restarted merger needs (the monitor's verdict, the fleet state, the
 * per-(host, instance) record of merged event_seqs, and the source stream's
 * sequence), on a subject per (agent, host), per host, per monitor and per
 * agent, so reading the last message of every subject rebuilds the state and
 * the cursor. Records are appended with the stream's expected-last-sequence
 * check: when one append fails, every later one fails too, and the merger
 * rebuilds from what the stream holds. Hence each source event is merged
 * exactly once however the merger is killed, and a second merger writing to
 * the same stream makes both start over rather than interleave.
 */
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <nats/nats.h>
#include "cli/cli.h"
#include "common/event.h"
#include "common/fleet.h"
#include "common/json.h"
#include "common/log.h"
#include "common/options.h"
#include "common/util.h"
#include "daemon/export.h"
#include "daemon/natsauth.h"

/* The view's subjects: vigil.fleet.<its stream>.<kind>..., so several views
 * (a region's, the global one) can share a cluster. */
#define OUT_PREFIX "vigil.fleet."
#define SOURCE_FILTER VG_EXPORT_SUBJECT_PREFIX ">"
#define MAX_URLS 16
#define MAX_SOURCES 16
#define NAME_LEN 64
#define WAIT_MS 5000
#define TICK_MS 100
/* Appends in flight; a merger whose appends go unacknowledged this long
 * starts over from the stream. */
#define MAX_IN_FLIGHT 4096
#define ACK_STALL_MS 10000
/* A source silent this long while its stream holds more is stalled. */
#define SOURCE_STALL_MS 3000
#define HOLES_LEN (VG_FLEET_MAX_HOLES * 44)
/* A read of the view that ends short of its last record is tried again
 * this many times, this far apart (load_view). */
#define STALE_READS 20
#define STALE_WAIT_MS 250

struct fleet_opts {
	const char *nats;
	const char *sources;
	const char *presence;
	const char *out;
	__u32 replicas;
	__u64 lost_after_ms;
	__u64 agent;
	bool json, follow, new_only;
};

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
	(void)sig;
	stop_requested = 1;
}

/* ------------------------------------------------------------ NATS */

struct conn {
	natsConnection *nc;
	jsCtx *js;
};


static void conn_close(struct conn *c)
{
	jsCtx_Destroy(c->js);
	natsConnection_Destroy(c->nc);
	c->js = NULL;
	c->nc = NULL;
}

/* Connect to the first reachable URL of a comma-separated list; libnats
 * reconnects by itself afterwards. opts may set async publish handlers. */
static int conn_open(struct conn *c, const char *list, jsOptions *jo)
{
	char *buf = strdup(list), *save = NULL;
	const char *urls[MAX_URLS];
	natsOptions *no = NULL;
	natsStatus s;
	int n = 0;

	if (!buf)
		return -1;
	for (char *u = strtok_r(buf, ",", &save); u && n < MAX_URLS; u = strtok_r(NULL, ",", &save))
		urls[n++] = u;
	s = natsOptions_Create(&no);
	if (s == NATS_OK)
		s = natsOptions_SetServers(no, urls, n);
	if (s == NATS_OK)
		s = natsOptions_SetName(no, "vigil-fleet");
	if (s == NATS_OK)
		s = natsOptions_SetTimeout(no, 1000);
	if (s == NATS_OK)
		s = natsOptions_SetMaxReconnect(no, -1);
	if (s == NATS_OK)
		s = natsOptions_SetReconnectWait(no, 250);
	if (s == NATS_OK)
		s = natsConnection_Connect(&c->nc, no);
	natsOptions_Destroy(no);
	free(buf);
	if (s != NATS_OK) {
		pr_warn("fleet: connecting to NATS (%s) failed: %s\n", list, vg_nats_why(s));
		return -1;
	}
	s = natsConnection_JetStream(&c->js, c->nc, jo);
	if (s != NATS_OK) {
		pr_warn("fleet: opening a JetStream context failed: %s\n", vg_nats_why(s));
		conn_close(c);
		return -1;
	}
	return 0;
}

/* An ordered consumer on stream, from start_seq (0: as `deliver` says). */
static natsStatus subscribe(natsSubscription **sub, struct conn *c, const char *stream,
			    const char *filter, jsDeliverPolicy deliver, __u64 start_seq)
{
	jsErrCode jerr = 0;
	jsSubOptions so;
	natsStatus s = NATS_TIMEOUT;

	jsSubOptions_Init(&so);
	so.Stream = stream;
	so.Ordered = true;
	so.Config.DeliverPolicy = start_seq ? js_DeliverByStartSequence : deliver;
	so.Config.OptStartSeq = start_seq;
	/* A cluster electing leaders can be slow to answer: a few tries. */
	for (int attempt = 0; attempt < 4 && s == NATS_TIMEOUT; attempt++)
		s = js_SubscribeSync(sub, c->js, filter, NULL, &so, &jerr);
	/* Flow control bounds what waits here; a client-side limit would only
	 * drop messages (a slow consumer) and force the consumer to start over. */
	if (s == NATS_OK)
		natsSubscription_SetPendingLimits(*sub, -1, -1);
	return s;
}

/* Has the ordered consumer sub on stream stopped delivering while the stream
 * holds more after last_seq, the stream sequence of the last message it
 * delivered? Seen under load: an ordered consumer whose reset the
 * overloaded server did not answer; and a consumer lost with the node that
 * held it. *to_go: how many messages wait. The caller then subscribes again
 * from last_seq + 1, so nothing is skipped or delivered twice. */
static bool consumer_stalled(struct conn *c, natsSubscription *sub, const char *stream,
			     __u64 last_seq, __u64 *to_go)
{
	jsConsumerInfo *ci = NULL;
	jsStreamInfo *si = NULL;
	jsErrCode jerr = 0;
	int pending = 0;

	*to_go = 0;
	if (sub)
		natsSubscription_GetPending(sub, &pending, NULL);
	if (pending)
		return false;
	if (sub && natsSubscription_GetConsumerInfo(&ci, sub, NULL, &jerr) == NATS_OK)
		*to_go = ci->NumPending;
	else if (js_GetStreamInfo(&si, c->js, stream, NULL, &jerr) == NATS_OK &&
		 si->State.LastSeq > last_seq)
		*to_go = si->State.LastSeq - last_seq; /* the consumer is gone */
	jsConsumerInfo_Destroy(ci);
	jsStreamInfo_Destroy(si);
	return *to_go > 0;
}

/* "vigil.fleet.<out>." + rest */
static void out_subject(char *buf, size_t len, const char *out, const char *rest)
{
	snprintf(buf, len, OUT_PREFIX "%s.%s", out, rest);
}

/* ----------------------------------------------------- the view's state */

struct cursor {
	char stream[NAME_LEN + 1];
	__u64 seq;               /* last source message merged */
};

/* What the output stream says: the state, the cursors, and where it ends. */
struct view {
	struct vg_fleet f;
	struct cursor cur[MAX_SOURCES];
	int n_cur;
	__u64 last_seq;          /* the output stream's last sequence */
	__u64 newest_ns;         /* when its newest record was stored */
	__u64 records;
};

static struct cursor *cursor_of(struct view *v, const char *stream)
{
	for (int i = 0; i < v->n_cur; i++)
		if (!strcmp(v->cur[i].stream, stream))
			return &v->cur[i];
	if (v->n_cur == MAX_SOURCES)
		return NULL;
	snprintf(v->cur[v->n_cur].stream, sizeof(v->cur[0].stream), "%s", stream);
	v->cur[v->n_cur].seq = 0;
	return &v->cur[v->n_cur++];
}

#define GET_STR(d, n, k, buf) vg_json_get_str(d, n, k, buf, sizeof(buf))

static bool get_inst(const char *d, size_t n, __u64 *inst)
{
	char hex[17];
	char *end;

	if (!GET_STR(d, n, "instance", hex))
		return false;
	*inst = strtoull(hex, &end, 16);
	return *hex && !*end;
}

/* One record of the output stream, into the view (in stream order). */
static void fold_record(struct view *v, const char *d, size_t n)
{
	char type[16] = "", host[VG_FLEET_HOST_LEN + 1] = "", state[16] = "";
	__u64 agent_id = 0;
	int m = -1;

	if (!GET_STR(d, n, "type", type))
		return;
	if (GET_STR(d, n, "host", host))
		m = vg_fleet_monitor(&v->f, host);
	GET_STR(d, n, "state", state);
	vg_json_get_u64(d, n, "agent_id", &agent_id);
	if (!strcmp(type, "monitor") && m >= 0) {
		vg_fleet_mon(&v->f, (__u32)m)->live = !strcmp(state, "live");
		return;
	}
	if (!strcmp(type, "event") && m >= 0) {
		char holes[HOLES_LEN] = "", source[NAME_LEN + 1], verdict[16] = "";
		__u64 inst, hi, source_seq;
		struct cursor *c;

		if (get_inst(d, n, &inst) && vg_json_get_u64(d, n, "seen_hi", &hi)) {
			GET_STR(d, n, "seen_holes", holes);
			vg_fleet_seen_set(&v->f, (__u32)m, inst, hi, holes);
		}
		if (GET_STR(d, n, "source", source) && vg_json_get_u64(d, n, "source_seq", &source_seq) &&
		    (c = cursor_of(v, source)) && source_seq > c->seq)
			c->seq = source_seq;
		if (!GET_STR(d, n, "verdict", verdict) || !vg_verdict_of_state(verdict))
			return;
		{
			struct vg_fleet_agent *a = vg_fleet_agent(&v->f, agent_id);

			if (!a)
				return;
			vg_fleet_set_verdict(a, (__u32)m, vg_verdict_of_state(verdict));
			GET_STR(d, n, "name", a->name);
			a->state = (__u8)vg_name_to(state, vg_fleet_state_name, VG_FLEET_STATE_MAX);
		}
		return;
	}
	if (!strcmp(type, "change")) {
		struct vg_fleet_agent *a = vg_fleet_agent(&v->f, agent_id);

		if (a)
			a->state = (__u8)vg_name_to(state, vg_fleet_state_name, VG_FLEET_STATE_MAX);
	}
}

/* Fold the last record of every subject of the output stream into v; the
 * stream sequence of the newest one read into *newest. -1 after one line. */
static int read_last_records(struct conn *c, const char *out, struct view *v, __u64 *newest)
{
	char filter[NAME_LEN + 16];
	natsSubscription *sub = NULL;
	natsStatus s;
	int ret = -1;

	*newest = 0;
	out_subject(filter, sizeof(filter), out, ">");
	s = subscribe(&sub, c, out, filter, js_DeliverLastPerSubject, 0);
	if (s != NATS_OK) {
		pr_warn("fleet: reading stream %s failed: %s\n", out, vg_nats_why(s));
		return -1;
	}
	for (;;) {
		jsMsgMetaData *meta = NULL;
		natsMsg *m = NULL;
		bool last;

		s = natsSubscription_NextMsg(&m, sub, WAIT_MS);
		if (s != NATS_OK) {
			pr_warn("fleet: reading stream %s failed after %llu record(s): %s\n", out,
				(unsigned long long)v->records, vg_nats_why(s));
			break;
		}
		if (natsMsg_GetMetaData(&meta, m) != NATS_OK) {
			natsMsg_Destroy(m);
			continue;
		}
		fold_record(v, natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m));
		v->records++;
		if ((__u64)meta->Timestamp > v->newest_ns)
			v->newest_ns = (__u64)meta->Timestamp;
		if (meta->Sequence.Stream > *newest)
			*newest = meta->Sequence.Stream;
		last = meta->NumPending == 0;
		jsMsgMetaData_Destroy(meta);
		natsMsg_Destroy(m);
		if (last) {
			ret = 0;
			break;
		}
	}
	natsSubscription_Destroy(sub);
	return ret;
}

/* Rebuild the view from the last record of every subject of the output
 * stream. Returns 0 (an empty stream is an empty view), -1 after one line
 * naming the failure (a missing stream is one).
 * The stream's last record is the last of its subject, so a complete read
 * delivers it. A consumer served from a replica still catching up (a node
 * just restarted) ends short of it, with an older state and cursor; merging
 * on from those would merge events twice, so the view is read again. */
static int load_view(struct conn *c, const char *out, struct view *v)
{
	jsStreamInfo *si = NULL;
	jsErrCode jerr = 0;
	natsStatus s;
	__u64 last = 0, newest = 0;

	for (int attempt = 0;; attempt++) {
		s = js_GetStreamInfo(&si, c->js, out, NULL, &jerr);
		if (s == NATS_NOT_FOUND || jerr == JSStreamNotFoundErr) {
			pr_warn("fleet: there is no stream %s (has `vigil fleet merge --out %s` run?)\n",
				out, out);
			return -1;
		}
		if (s != NATS_OK) {
			pr_warn("fleet: looking up stream %s failed: %s\n", out, vg_nats_why(s));
			return -1;
		}
		last = si->State.LastSeq;
		newest = 0;
		if (si->State.Msgs && read_last_records(c, out, v, &newest)) {
			jsStreamInfo_Destroy(si);
			return -1;
		}
		jsStreamInfo_Destroy(si);
		si = NULL;
		if (!v->records || newest >= last || attempt == STALE_READS)
			break;
		if (!attempt)
			pr_info("fleet: reading the last records of %s ended at sequence %llu, short of "
				"its last, %llu (a replica catching up?); reading again\n", out,
				(unsigned long long)newest, (unsigned long long)last);
		vg_fleet_free(&v->f);
		memset(v, 0, sizeof(*v));
		vg_fleet_init(&v->f);
		usleep(STALE_WAIT_MS * 1000);
	}
	if (v->records && newest < last) {
		pr_warn("fleet: reading the last records of %s ended at sequence %llu, short of its "
			"last, %llu, %d times (a replica catching up?)\n", out,
			(unsigned long long)newest, (unsigned long long)last, STALE_READS + 1);
		return -1;
	}
	v->last_seq = last > newest ? last : newest;
	return 0;
}

/* ------------------------------------------------------------ records */

static void watchers_json(struct vg_json *j, const struct vg_fleet *f, const struct vg_fleet_agent *a)
{
	vg_json_arr_field(j, "watchers");
	for (__u8 i = 0; i < a->n; i++) {
		const struct vg_fleet_monitor *m = vg_fleet_mon(f, a->w[i].monitor);

		vg_json_obj(j);
		vg_json_str_field(j, "host", m->host);
		vg_json_str_field(j, "verdict", vg_verdict_name(a->w[i].verdict));
		vg_json_bool_field(j, "live", m->live);
		vg_json_close(j);
	}
	vg_json_close(j);
}

static void time_field(struct vg_json *j, __u64 wall_ns)
{
	char when[40];

	vg_fmt_wall(wall_ns, when, sizeof(when));
	vg_json_str_field(j, "time", when);
}

/* A record being written: a JSON object in memory. */
struct rec {
	char *buf;
	size_t len;
	FILE *f;
	struct vg_json j;
};

static int rec_begin(struct rec *r, const char *type)
{
	memset(r, 0, sizeof(*r));
	r->f = open_memstream(&r->buf, &r->len);
	if (!r->f)
		return -1;
	vg_json_begin(&r->j, r->f);
	vg_json_obj(&r->j);
	vg_json_str_field(&r->j, "type", type);
	return 0;
}

static int rec_end(struct rec *r)
{
	vg_json_close(&r->j);
	if (fclose(r->f)) {
		free(r->buf);
		r->buf = NULL;
		return -1;
	}
	return 0;
}

/* ------------------------------------------------------------- merge */

struct merger {
	const struct fleet_opts *o;
	char *sources[MAX_SOURCES];
	char *sources_buf;
	int n_sources;
	char presence_stream[NAME_LEN + 16];
	struct conn c;
	natsSubscription *src[MAX_SOURCES];
	natsSubscription *presence;
	struct view v;
	__u64 next_expect;       /* the output's last sequence, as the next append expects */
	/* Set by libnats' threads. */
	atomic_bool broken;
	atomic_ullong acked;
	char why[256];
	__u64 appended;          /* this session */
	__u64 last_ack_progress, acked_seen;
	__u64 last_source_ns;    /* a source message last arrived */
	bool was_disconnected;
	/* Counters for the whole run. */
	__u64 merged, duplicates, malformed, records, restarts;
};

static void on_pub_error(jsCtx *js, jsPubAckErr *pae, void *closure)
{
	struct merger *g = closure;

	(void)js;
	if (!atomic_exchange(&g->broken, true))
		snprintf(g->why, sizeof(g->why), "appending to %s failed: %s", g->o->out,
			 pae->ErrText ? pae->ErrText : natsStatus_GetText(pae->Err));
}

static void on_pub_ack(jsCtx *js, natsMsg *msg, jsPubAck *pa, jsPubAckErr *pae, void *closure)
{
	struct merger *g = closure;

	(void)js;
	(void)pa;
	if (!pae)
		atomic_fetch_add(&g->acked, 1);
	natsMsg_Destroy(msg);
}

static void broke(struct merger *g, const char *fmt, const char *arg)
{
	if (!atomic_exchange(&g->broken, true))
		snprintf(g->why, sizeof(g->why), fmt, arg);
}

/* Append one record, expecting the stream to end where the last one went. */
static int append(struct merger *g, const char *subject, struct rec *r)
{
	jsPubOptions po;
	natsMsg *m = NULL;
	natsStatus s;

	if (!r->buf || atomic_load(&g->broken))
		goto fail;
	s = natsMsg_Create(&m, subject, NULL, r->buf, (int)r->len);
	if (s != NATS_OK)
		goto fail;
	jsPubOptions_Init(&po);
	po.ExpectLastSeq = g->next_expect;
	s = js_PublishMsgAsync(g->c.js, &m, &po);
	if (s != NATS_OK) {
		natsMsg_Destroy(m);
		broke(g, "appending failed: %s", vg_nats_why(s));
		goto fail;
	}
	free(r->buf);
	g->next_expect++;
	g->appended++;
	g->records++;
	return 0;
fail:
	free(r->buf);
	r->buf = NULL;
	return -1;
}

static void change_record(struct merger *g, struct vg_fleet_agent *a, __u8 prev, const char *cause)
{
	char subject[NAME_LEN + 48], rest[40];
	struct rec r;

	if (rec_begin(&r, "change")) {
		broke(g, "%s", "out of memory");
		return;
	}
	vg_json_u64_field(&r.j, "agent_id", a->id);
	vg_json_str_field(&r.j, "name", a->name);
	vg_json_str_field(&r.j, "state", vg_fleet_state_name(a->state));
	vg_json_str_field(&r.j, "prev_state", vg_fleet_state_name(prev));
	vg_json_str_field(&r.j, "cause", cause);
	watchers_json(&r.j, &g->v.f, a);
	time_field(&r.j, vg_wall_ns());
	rec_end(&r);
	snprintf(rest, sizeof(rest), "change.%llu", (unsigned long long)a->id);
	out_subject(subject, sizeof(subject), g->o->out, rest);
	append(g, subject, &r);
}

/* Judge every agent again and record each change (after a monitor turned
 * live or lost, or a restart found the stream short of one). */
static void rejudge(struct merger *g, const char *cause)
{
	for (size_t i = 0; i < g->v.f.agents.n; i++) {
		struct vg_fleet_agent *a = vg_idtab_row(&g->v.f.agents, i);
		__u8 prev = a->state, now = (__u8)vg_fleet_judge(&g->v.f, a);

		if (now == prev)
			continue;
		a->state = now;
		change_record(g, a, prev, cause);
	}
}

static void monitor_record(struct merger *g, __u32 mi, bool live)
{
	struct vg_fleet_monitor *m = vg_fleet_mon(&g->v.f, mi);
	char subject[NAME_LEN + VG_FLEET_HOST_LEN + 32], rest[VG_FLEET_HOST_LEN + 16], inst[17];
	char cause[128];
	struct rec r;

	m->live = live;
	pr_info("fleet: monitor %s is %s\n", m->host, live ? "live" : "lost (no presence within "
		"the bound; its verdicts no longer count)");
	if (rec_begin(&r, "monitor")) {
		broke(g, "%s", "out of memory");
		return;
	}
	snprintf(inst, sizeof(inst), "%016llx", (unsigned long long)m->presence_inst);
	vg_json_str_field(&r.j, "host", m->host);
	vg_json_str_field(&r.j, "state", live ? "live" : "lost");
	vg_json_str_field(&r.j, "prev_state", live ? "lost" : "live");
	vg_json_str_field(&r.j, "instance", m->presence_inst ? inst : "");
	vg_json_u64_field(&r.j, "event_seq", m->presence_seq);
	vg_json_u64_field(&r.j, "interval_ms", m->interval_ms);
	time_field(&r.j, vg_wall_ns());
	rec_end(&r);
	snprintf(rest, sizeof(rest), "monitor.%s", m->host);
	out_subject(subject, sizeof(subject), g->o->out, rest);
	append(g, subject, &r);
	snprintf(cause, sizeof(cause), "monitor %s %s", m->host, live ? "live" : "lost");
	rejudge(g, cause);
}

/* Has the view merged what the monitor's presence says it exported? */
static bool caught_up(const struct merger *g, __u32 mi)
{
	const struct vg_fleet_monitor *m = vg_fleet_mon(&g->v.f, mi);

	return !m->presence_seq || vg_fleet_seen(&g->v.f, mi, m->presence_inst, m->presence_seq);
}

static __u64 lost_after_ns(const struct merger *g, const struct vg_fleet_monitor *m)
{
	__u64 ms = g->o->lost_after_ms ? g->o->lost_after_ms : 3ULL * (m->interval_ms ? m->interval_ms : 1000);

	return ms * 1000000ULL;
}

/* Every TICK_MS: monitors whose presence stopped are lost; monitors that
 * announced themselves and whose events have arrived are live. */
static void tick(struct merger *g)
{
	__u64 now = vg_mono_ns();

	/* Presence that cannot reach the merger says nothing about the
	 * monitors: while disconnected, and for one bound after, none is lost. */
	if (natsConnection_Status(g->c.nc) != NATS_CONN_STATUS_CONNECTED) {
		g->was_disconnected = true;
		return;
	}
	if (g->was_disconnected) {
		g->was_disconnected = false;
		for (__u32 i = 0; i < g->v.f.monitors.n; i++)
			if (vg_fleet_mon(&g->v.f, i)->live)
				vg_fleet_mon(&g->v.f, i)->presence_ns = now;
	}

	for (__u32 i = 0; i < g->v.f.monitors.n; i++) {
		struct vg_fleet_monitor *m = vg_fleet_mon(&g->v.f, i);
		bool fresh = m->presence_ns && now - m->presence_ns <= lost_after_ns(g, m);

		if (m->live && !fresh)
			monitor_record(g, i, false);
		else if (!m->live && fresh && m->announced && caught_up(g, i))
			monitor_record(g, i, true);
	}
}

static void on_presence(struct merger *g, natsMsg *msg)
{
	const char *subj = natsMsg_GetSubject(msg), *key = strrchr(subj, '.'), *op = NULL;
	const char *d = natsMsg_GetData(msg);
	size_t n = (size_t)natsMsg_GetDataLength(msg);
	__u64 interval = 0, seq = 0, inst = 0;
	struct vg_fleet_monitor *m;
	int mi;

	/* A deleted key: the host left the fleet; it stops being live. */
	if (natsMsgHeader_Get(msg, "KV-Operation", &op) == NATS_OK && op)
		return;
	mi = key ? vg_fleet_monitor(&g->v.f, key + 1) : -1;
	if (mi < 0 || !vg_json_get_u64(d, n, "interval_ms", &interval) ||
	    !vg_json_get_u64(d, n, "event_seq", &seq) || (seq && !get_inst(d, n, &inst))) {
		g->malformed++;
		return;
	}
	m = vg_fleet_mon(&g->v.f, (__u32)mi);
	m->presence_ns = vg_mono_ns();
	m->announced = true;
	m->interval_ms = (__u32)(interval < 60000 ? interval : 60000);
	m->presence_inst = inst;
	m->presence_seq = seq;
}

/* One event of a host's stream: merged once by (host, instance, event_seq). */
static void on_event(struct merger *g, const char *source, natsMsg *msg)
{
	const char *subj = natsMsg_GetSubject(msg), *d = natsMsg_GetData(msg);
	size_t n = (size_t)natsMsg_GetDataLength(msg);
	char state[16] = "", kind[24] = "", holes[HOLES_LEN], raw_inst[17];
	char subject[NAME_LEN + VG_FLEET_HOST_LEN + 48], rest[VG_FLEET_HOST_LEN + 40];
	const char *host = subj + strlen(SOURCE_FILTER) - 1;
	__u64 seq = 0, agent_id = 0, inst = 0;
	jsMsgMetaData *meta = NULL;
	struct vg_fleet_agent *a = NULL;
	enum vg_verdict verdict;
	struct vg_fleet_seen *seen;
	struct cursor *cur;
	__u8 prev = 0;
	struct rec r;
	int mi;

	if (natsMsg_GetMetaData(&meta, msg) != NATS_OK) {
		broke(g, "%s", "a source message without JetStream metadata");
		return;
	}
	cur = cursor_of(&g->v, source);
	if (cur && meta->Sequence.Stream > cur->seq)
		cur->seq = meta->Sequence.Stream;
	jsMsgMetaData_Destroy(meta);
	mi = strncmp(subj, SOURCE_FILTER, strlen(SOURCE_FILTER) - 1) ? -1 :
	     vg_fleet_monitor(&g->v.f, host);
	if (mi < 0 || !get_inst(d, n, &inst) || !vg_json_get_u64(d, n, "event_seq", &seq) ||
	    !vg_json_get_u64(d, n, "agent_id", &agent_id) || !GET_STR(d, n, "kind", kind) ||
	    !GET_STR(d, n, "state", state) || !GET_STR(d, n, "instance", raw_inst)) {
		if (!g->malformed++)
			pr_warn("fleet: %s: a message that is not a vigil event; skipped (counted)\n", subj);
		return;
	}
	if (vg_fleet_seen(&g->v.f, (__u32)mi, inst, seq)) {
		g->duplicates++;
		return;
	}
	if (vg_fleet_mark(&g->v.f, (__u32)mi, inst, seq)) {
		broke(g, "%s", "out of memory");
		return;
	}
	g->merged++;
	verdict = vg_kind_changes_agent(vg_name_to(kind, vg_kind_name, VIGIL_EV_KIND_MAX)) ?
		  vg_verdict_of_state(state) : VG_VERDICT_NONE;
	if (verdict) {
		a = vg_fleet_agent(&g->v.f, agent_id);
		if (!a) {
			broke(g, "%s", "out of memory");
			return;
		}
		if (vg_fleet_set_verdict(a, (__u32)mi, verdict))
			pr_debug("fleet: agent %llu has more than %d monitors; %s is not counted\n",
				 (unsigned long long)agent_id, VG_FLEET_MAX_WATCHERS, host);
		GET_STR(d, n, "name", a->name);
		prev = a->state;
		a->state = (__u8)vg_fleet_judge(&g->v.f, a);
	}
	if (rec_begin(&r, "event")) {
		broke(g, "%s", "out of memory");
		return;
	}
	vg_json_str_field(&r.j, "host", host);
	vg_json_str_field(&r.j, "instance", raw_inst);
	vg_json_u64_field(&r.j, "event_seq", seq);
	vg_json_u64_field(&r.j, "agent_id", agent_id);
	vg_json_str_field(&r.j, "kind", kind);
	if (a) {
		vg_json_str_field(&r.j, "name", a->name);
		vg_json_str_field(&r.j, "verdict", vg_verdict_name(verdict));
		vg_json_str_field(&r.j, "state", vg_fleet_state_name(a->state));
		vg_json_str_field(&r.j, "prev_state", vg_fleet_state_name(prev));
		watchers_json(&r.j, &g->v.f, a);
	}
	seen = vg_fleet_seen_of(&g->v.f, (__u32)mi, inst);
	vg_fleet_holes_fmt(seen, holes, sizeof(holes));
	vg_json_u64_field(&r.j, "seen_hi", seen->hi);
	vg_json_str_field(&r.j, "seen_holes", holes);
	vg_json_str_field(&r.j, "source", source);
	vg_json_u64_field(&r.j, "source_seq", cur ? cur->seq : 0);
	time_field(&r.j, vg_wall_ns()); /* merged; the event's own time is inside it */
	{
		char *ev = strndup(d, n);

		vg_json_raw_field(&r.j, "event", ev);
		free(ev);
	}
	rec_end(&r);
	if (a)
		snprintf(rest, sizeof(rest), "agent.%llu.%s", (unsigned long long)agent_id, host);
	else
		snprintf(rest, sizeof(rest), "host.%s", host);
	out_subject(subject, sizeof(subject), g->o->out, rest);
	append(g, subject, &r);
}

static int create_out(struct merger *g)
{
	char filter[NAME_LEN + 16];
	const char *subjects[] = { filter };
	jsStreamInfo *si = NULL;
	jsErrCode jerr = 0;
	jsStreamConfig sc;
	natsStatus s;

	out_subject(filter, sizeof(filter), g->o->out, ">");
	s = js_GetStreamInfo(&si, g->c.js, g->o->out, NULL, &jerr);
	if (s == NATS_OK) {
		jsStreamInfo_Destroy(si);
		return 0;
	}
	jsStreamConfig_Init(&sc);
	sc.Name = g->o->out;
	sc.Subjects = subjects;
	sc.SubjectsLen = 1;
	sc.Storage = js_FileStorage;
	sc.Replicas = g->o->replicas;
	s = js_AddStream(&si, g->c.js, &sc, NULL, &jerr);
	if (s != NATS_OK) {
		pr_warn("fleet: creating stream %s failed: %s\n", g->o->out, vg_nats_why(s));
		return -1;
	}
	jsStreamInfo_Destroy(si);
	pr_info("fleet: created stream %s (subjects %s, file storage, %u replica(s))\n",
		g->o->out, filter, g->o->replicas);
	return 0;
}

/* The presence stream's own subjects ($KV.<bucket>.>), or any bucket's for
 * a stream that only sources regional buckets (docs/fleet.md, Regions). */
static const char *presence_filter(struct merger *g)
{
	static char filter[NAME_LEN + 16];
	jsStreamInfo *si = NULL;
	jsErrCode jerr = 0;

	snprintf(filter, sizeof(filter), "$KV.>");
	if (js_GetStreamInfo(&si, g->c.js, g->presence_stream, NULL, &jerr) == NATS_OK &&
	    si->Config->SubjectsLen == 1)
		snprintf(filter, sizeof(filter), "%s", si->Config->Subjects[0]);
	jsStreamInfo_Destroy(si);
	return filter;
}

static void session_end(struct merger *g)
{
	for (int i = 0; i < g->n_sources; i++)
		natsSubscription_Destroy(g->src[i]);
	natsSubscription_Destroy(g->presence);
	memset(g->src, 0, sizeof(g->src));
	g->presence = NULL;
	conn_close(&g->c);
	vg_fleet_free(&g->v.f);
	memset(&g->v, 0, sizeof(g->v));
}

/* Connect, rebuild the state from the output stream, subscribe after the
 * cursors. -1 after one line naming what failed. */
static int session_start(struct merger *g)
{
	jsOptions jo;
	natsStatus s;
	__u32 live = 0;

	jsOptions_Init(&jo);
	jo.Wait = WAIT_MS;
	jo.PublishAsync.MaxPending = MAX_IN_FLIGHT;
	jo.PublishAsync.ErrHandler = on_pub_error;
	jo.PublishAsync.ErrHandlerClosure = g;
	jo.PublishAsync.AckHandler = on_pub_ack;
	jo.PublishAsync.AckHandlerClosure = g;
	jo.PublishAsync.StallWait = ACK_STALL_MS;
	atomic_store(&g->broken, false);
	atomic_store(&g->acked, 0);
	g->acked_seen = 0;
	g->appended = 0;
	g->last_ack_progress = vg_mono_ns();
	g->last_source_ns = vg_mono_ns();
	vg_fleet_init(&g->v.f);
	if (conn_open(&g->c, g->o->nats, &jo) || create_out(g) || load_view(&g->c, g->o->out, &g->v))
		return -1;
	g->next_expect = g->v.last_seq;
	/* Monitors live before the restart stay so for one bound, unless their
	 * presence has stopped by then. */
	for (__u32 i = 0; i < g->v.f.monitors.n; i++) {
		struct vg_fleet_monitor *m = vg_fleet_mon(&g->v.f, i);

		if (m->live) {
			m->presence_ns = vg_mono_ns();
			live++;
		}
	}
	for (int i = 0; i < g->n_sources; i++) {
		struct cursor *c = cursor_of(&g->v, g->sources[i]);
		__u64 from = c && c->seq ? c->seq + 1 : 0;

		s = subscribe(&g->src[i], &g->c, g->sources[i], SOURCE_FILTER, js_DeliverAll, from);
		if (s != NATS_OK) {
			pr_warn("fleet: reading stream %s failed: %s\n", g->sources[i], vg_nats_why(s));
			return -1;
		}
		pr_info("fleet: merging %s from sequence %llu\n", g->sources[i],
			(unsigned long long)(from ? from : 1));
	}
	s = subscribe(&g->presence, &g->c, g->presence_stream, presence_filter(g),
		      js_DeliverLastPerSubject, 0);
	if (s != NATS_OK) {
		pr_warn("fleet: reading the presence bucket (stream %s) failed: %s\n",
			g->presence_stream, vg_nats_why(s));
		return -1;
	}
	pr_info("fleet: %s holds %llu agent(s), %llu monitor(s) (%u live) in %llu record(s); "
		"appending after sequence %llu\n", g->o->out, (unsigned long long)g->v.f.agents.n,
		(unsigned long long)g->v.f.monitors.n, live, (unsigned long long)g->v.records,
		(unsigned long long)g->v.last_seq);
	/* A merger killed between an event's record and the changes it caused
	 * left the stream short of those changes. */
	rejudge(g, "merger restart");
	return 0;
}

/* Hand over what has arrived. Returns how many messages. */
static int drain(struct merger *g, int i, int max)
{
	natsSubscription *sub = i < 0 ? g->presence : g->src[i];
	int pending = 0, done = 0;

	natsSubscription_GetPending(sub, &pending, NULL);
	for (; done < pending && done < max && !atomic_load(&g->broken); done++) {
		natsMsg *m = NULL;

		if (natsSubscription_NextMsg(&m, sub, WAIT_MS) != NATS_OK)
			break;
		if (i < 0) {
			on_presence(g, m);
		} else {
			on_event(g, g->sources[i], m);
			g->last_source_ns = vg_mono_ns();
		}
		natsMsg_Destroy(m);
	}
	return done;
}

/* Appends that stopped being acknowledged (a server gone while they were in
 * flight) mean starting over, like a refused one. */
static void watch_acks(struct merger *g)
{
	__u64 acked = atomic_load(&g->acked), now = vg_mono_ns();

	if (acked != g->acked_seen || acked >= g->appended) {
		g->acked_seen = acked;
		g->last_ack_progress = now;
	} else if (now - g->last_ack_progress > ACK_STALL_MS * 1000000ULL) {
		broke(g, "%s", "appends to the output stream went unacknowledged");
	}
}

/* A source consumer that stopped delivering while its stream holds more is
 * replaced by a new one from the cursor (consumer_stalled). */
static void watch_sources(struct merger *g)
{
	__u64 now = vg_mono_ns();

	if (now - g->last_source_ns < SOURCE_STALL_MS * 1000000ULL)
		return;
	g->last_source_ns = now; /* look again one stall period later */
	for (int i = 0; i < g->n_sources; i++) {
		struct cursor *c = cursor_of(&g->v, g->sources[i]);
		__u64 to_go;
		natsStatus s;

		if (!c || !consumer_stalled(&g->c, g->src[i], g->sources[i], c->seq, &to_go))
			continue;
		pr_warn("fleet: reading %s stalled with %llu message(s) to go; reading again after "
			"sequence %llu\n", g->sources[i], (unsigned long long)to_go,
			(unsigned long long)c->seq);
		natsSubscription_Destroy(g->src[i]);
		g->src[i] = NULL;
		s = subscribe(&g->src[i], &g->c, g->sources[i], SOURCE_FILTER, js_DeliverAll, c->seq + 1);
		if (s != NATS_OK)
			broke(g, "reading the source again failed: %s", vg_nats_why(s));
	}
}

static int session_run(struct merger *g)
{
	__u64 next_tick = vg_mono_ns();

	while (!stop_requested && !atomic_load(&g->broken)) {
		int got = drain(g, -1, 1024);

		for (int i = 0; i < g->n_sources; i++)
			got += drain(g, i, 256);
		if (vg_mono_ns() >= next_tick) {
			tick(g);
			watch_acks(g);
			watch_sources(g);
			next_tick = vg_mono_ns() + TICK_MS * 1000000ULL;
		}
		if (got)
			continue;
		if (g->n_sources == 1) {
			natsMsg *m = NULL;

			if (natsSubscription_NextMsg(&m, g->src[0], 20) == NATS_OK) {
				on_event(g, g->sources[0], m);
				natsMsg_Destroy(m);
				g->last_source_ns = vg_mono_ns();
			}
		} else {
			usleep(1000);
		}
	}
	if (atomic_load(&g->broken)) {
		pr_warn("fleet: %s; starting over from what %s holds\n", g->why, g->o->out);
		return -1;
	}
	/* Stopping: let the appends in flight land. */
	js_PublishAsyncComplete(g->c.js, NULL);
	return 0;
}

static int split_sources(struct merger *g)
{
	char *save = NULL;

	g->sources_buf = strdup(g->o->sources);
	if (!g->sources_buf)
		return -1;
	for (char *s = strtok_r(g->sources_buf, ",", &save); s; s = strtok_r(NULL, ",", &save)) {
		if (g->n_sources == MAX_SOURCES) {
			pr_warn("--source: at most %d streams\n", MAX_SOURCES);
			return -1;
		}
		g->sources[g->n_sources++] = s;
	}
	return 0;
}

static int run_merge(const struct vg_parsed *p)
{
	const struct fleet_opts *o = p->opts;
	struct merger g = { .o = o };
	__u32 failures = 0;
	int ret = 1;

	if (split_sources(&g))
		goto out;
	snprintf(g.presence_stream, sizeof(g.presence_stream), "KV_%s", o->presence ? o->presence : "");
	if (!o->presence)
		snprintf(g.presence_stream, sizeof(g.presence_stream), "KV_%s" VG_EXPORT_PRESENCE_SUFFIX,
			 g.sources[0]);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	while (!stop_requested) {
		if (!session_start(&g) && !session_run(&g))
			break;
		session_end(&g);
		g.restarts++;
		failures++;
		/* 100 ms doubling to 5 s. */
		for (__u64 ms = failures > 6 ? 5000 : 100ULL << (failures - 1); ms && !stop_requested;
		     ms -= ms > 50 ? 50 : ms)
			usleep(50 * 1000);
		if (failures > 6)
			failures = 6;
	}
	pr_info("fleet: stopped: %llu event(s) merged, %llu duplicate(s) dropped, %llu malformed, "
		"%llu record(s) appended, %llu restart(s)\n", (unsigned long long)g.merged,
		(unsigned long long)g.duplicates, (unsigned long long)g.malformed,
		(unsigned long long)g.records, (unsigned long long)g.restarts);
	ret = 0;
	session_end(&g);
out:
	free(g.sources_buf);
	nats_CloseAndWait(2000);
	return ret;
}

/* ------------------------------------------------------------ status */

static int by_agent_id(const void *a, const void *b)
{
	__u64 x = (*(struct vg_fleet_agent *const *)a)->id, y = (*(struct vg_fleet_agent *const *)b)->id;

	return x < y ? -1 : x > y;
}

static void status_json(const struct fleet_opts *o, const struct view *v,
			struct vg_fleet_agent **rows, size_t n, const unsigned *count)
{
	struct vg_json j;

	vg_json_begin(&j, stdout);
	vg_json_obj(&j);
	vg_json_str_field(&j, "stream", o->out);
	vg_json_u64_field(&j, "records", v->records);
	if (v->newest_ns)
		time_field(&j, v->newest_ns);
	vg_json_obj_field(&j, "counts");
	for (__u32 s = 0; s <= VG_FLEET_STATE_MAX; s++)
		vg_json_u64_field(&j, vg_fleet_state_name(s), count[s]);
	vg_json_close(&j);
	vg_json_arr_field(&j, "monitors");
	for (__u32 i = 0; i < v->f.monitors.n; i++) {
		vg_json_obj(&j);
		vg_json_str_field(&j, "host", vg_fleet_mon(&v->f, i)->host);
		vg_json_bool_field(&j, "live", vg_fleet_mon(&v->f, i)->live);
		vg_json_close(&j);
	}
	vg_json_close(&j);
	vg_json_arr_field(&j, "agents");
	for (size_t i = 0; i < n; i++) {
		vg_json_obj(&j);
		vg_json_u64_field(&j, "agent_id", rows[i]->id);
		vg_json_str_field(&j, "name", rows[i]->name);
		vg_json_str_field(&j, "state", vg_fleet_state_name(rows[i]->state));
		watchers_json(&j, &v->f, rows[i]);
		vg_json_close(&j);
	}
	vg_json_end(&j);
}

static void status_table(const struct view *v, struct vg_fleet_agent **rows, size_t n,
			 const unsigned *count)
{
	char when[40] = "never";

	printf("%-10s %-20s %-9s %s\n", "AGENT", "NAME", "STATE", "MONITORS (verdict)");
	for (size_t i = 0; i < n; i++) {
		printf("%-10llu %-20s %-9s", (unsigned long long)rows[i]->id, rows[i]->name,
		       vg_fleet_state_name(rows[i]->state));
		for (__u8 w = 0; w < rows[i]->n; w++) {
			const struct vg_fleet_monitor *m = vg_fleet_mon(&v->f, rows[i]->w[w].monitor);

			printf(" %s:%s%s", m->host, vg_verdict_name(rows[i]->w[w].verdict),
			       m->live ? "" : "(lost)");
		}
		printf("\n");
	}
	printf("\n%zu agent(s):", n);
	for (__u32 s = 0; s <= VG_FLEET_STATE_MAX; s++)
		printf("%s %u %s", s ? "," : "", count[s], vg_fleet_state_name(s));
	printf("\nmonitors:");
	for (__u32 i = 0; i < v->f.monitors.n; i++)
		printf(" %s (%s)", vg_fleet_mon(&v->f, i)->host,
		       vg_fleet_mon(&v->f, i)->live ? "live" : "lost");
	if (v->newest_ns)
		vg_fmt_wall(v->newest_ns, when, sizeof(when));
	printf("\nlast merged: %s\n", when);
}

static int run_status(const struct vg_parsed *p)
{
	const struct fleet_opts *o = p->opts;
	struct vg_fleet_agent **rows = NULL;
	unsigned count[VG_FLEET_STATE_MAX + 1] = {};
	struct conn c = {};
	struct view v = {};
	size_t n = 0;
	int ret = 1;

	vg_fleet_init(&v.f);
	if (conn_open(&c, o->nats, NULL) || load_view(&c, o->out, &v))
		goto out;
	rows = calloc(v.f.agents.n + 1, sizeof(*rows));
	if (!rows)
		goto out;
	for (size_t i = 0; i < v.f.agents.n; i++) {
		struct vg_fleet_agent *a = vg_idtab_row(&v.f.agents, i);

		if (o->agent && a->id != o->agent)
			continue;
		rows[n++] = a;
		count[a->state <= VG_FLEET_STATE_MAX ? a->state : 0]++;
	}
	qsort(rows, n, sizeof(*rows), by_agent_id);
	if (o->agent && !n) {
		pr_warn("fleet: agent %llu is not in the fleet view %s\n",
			(unsigned long long)o->agent, o->out);
		goto out;
	}
	if (o->json)
		status_json(o, &v, rows, n, count);
	else
		status_table(&v, rows, n, count);
	ret = 0;
out:
	free(rows);
	vg_fleet_free(&v.f);
	conn_close(&c);
	nats_Close();
	return ret;
}

/* ------------------------------------------------------------ events */

static void event_row(natsMsg *m, __u64 stored_ns)
{
	const char *d = natsMsg_GetData(m);
	size_t n = (size_t)natsMsg_GetDataLength(m);
	char type[16] = "", name[VIGIL_NAME_LEN] = "-", state[16] = "", prev[16] = "";
	char host[VG_FLEET_HOST_LEN + 1] = "-", what[160] = "", when[40], agent[24] = "-";
	__u64 id;

	GET_STR(d, n, "type", type);
	GET_STR(d, n, "name", name);
	GET_STR(d, n, "state", state);
	GET_STR(d, n, "prev_state", prev);
	GET_STR(d, n, "host", host);
	if (vg_json_get_u64(d, n, "agent_id", &id))
		snprintf(agent, sizeof(agent), "%llu", (unsigned long long)id);
	if (!strcmp(type, "event"))
		GET_STR(d, n, "kind", what);
	else if (!strcmp(type, "change"))
		GET_STR(d, n, "cause", what);
	else
		snprintf(agent, sizeof(agent), "-");
	vg_fmt_wall(stored_ns, when, sizeof(when));
	printf("%-24s %-7s %-10s %-16s %-9s %-9s %-16s %s\n", when, type, agent, *name ? name : "-",
	       *prev ? prev : "-", *state ? state : "-", host, what);
}

/* --follow: a consumer that stopped delivering, or failed, is replaced by a
 * new one after the last record printed (the merger's watchdog, above). */
struct follower {
	struct conn *c;
	const char *out;
	char filter[NAME_LEN + 16];
	natsSubscription *sub;
	__u64 last_seq;     /* the stream sequence of the last record printed */
	__u64 quiet_since;  /* nothing arrived since (monotonic ns) */
	bool failing;       /* a failure was said, not yet a recovery */
};

static natsStatus follow_again(struct follower *fw, const char *why, __u64 to_go)
{
	natsStatus s;

	if (!fw->failing) {
		if (to_go)
			pr_warn("fleet: reading %s stalled with %llu record(s) to go; reading again "
				"after sequence %llu\n", fw->out, (unsigned long long)to_go,
				(unsigned long long)fw->last_seq);
		else
			pr_warn("fleet: reading %s failed: %s; reading again after sequence %llu\n",
				fw->out, why, (unsigned long long)fw->last_seq);
	}
	natsSubscription_Destroy(fw->sub);
	fw->sub = NULL;
	s = subscribe(&fw->sub, fw->c, fw->out, fw->filter, js_DeliverAll, fw->last_seq + 1);
	fw->failing = s != NATS_OK;
	fw->quiet_since = vg_mono_ns();
	return s;
}

/* The next record, or NATS_TIMEOUT; when following, never a failure. */
static natsStatus next_record(struct follower *fw, bool follow, natsMsg **m)
{
	__u64 to_go;
	natsStatus s;

	if (!follow)
		return natsSubscription_NextMsg(m, fw->sub, WAIT_MS);
	s = fw->sub ? natsSubscription_NextMsg(m, fw->sub, 200) : NATS_INVALID_SUBSCRIPTION;
	if (s == NATS_OK) {
		fw->quiet_since = vg_mono_ns();
		if (fw->failing)
			pr_info("fleet: reading %s again\n", fw->out);
		fw->failing = false;
		return s;
	}
	if (vg_mono_ns() - fw->quiet_since < SOURCE_STALL_MS * 1000000ULL)
		return NATS_TIMEOUT;
	if (s != NATS_TIMEOUT)
		follow_again(fw, vg_nats_why(s), 0);
	else if (consumer_stalled(fw->c, fw->sub, fw->out, fw->last_seq, &to_go))
		follow_again(fw, NULL, to_go);
	else
		fw->quiet_since = vg_mono_ns(); /* look again one stall period later */
	return NATS_TIMEOUT;
}

static int run_events(const struct vg_parsed *p)
{
	const struct fleet_opts *o = p->opts;
	jsStreamInfo *si = NULL;
	jsErrCode jerr = 0;
	struct conn c = {};
	struct follower fw = { .c = &c, .out = o->out };
	natsStatus s;
	int ret = 1;

	if (conn_open(&c, o->nats, NULL))
		goto out;
	s = js_GetStreamInfo(&si, c.js, o->out, NULL, &jerr);
	if (s != NATS_OK) {
		if (s == NATS_NOT_FOUND || jerr == JSStreamNotFoundErr)
			pr_warn("fleet: there is no stream %s (has `vigil fleet merge --out %s` run?)\n",
				o->out, o->out);
		else
			pr_warn("fleet: looking up stream %s failed: %s\n", o->out, vg_nats_why(s));
		goto out;
	}
	ret = 0;
	if (!si->State.Msgs && !o->follow)
		goto out;
	out_subject(fw.filter, sizeof(fw.filter), o->out, ">");
	/* --new: from after the stream's end now. */
	if (o->new_only)
		fw.last_seq = si->State.LastSeq;
	s = subscribe(&fw.sub, &c, o->out, fw.filter, js_DeliverAll, fw.last_seq + 1);
	if (s != NATS_OK) {
		pr_warn("fleet: reading stream %s failed: %s\n", o->out, vg_nats_why(s));
		ret = 1;
		goto out;
	}
	fw.quiet_since = vg_mono_ns();
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (!o->json && !o->follow)
		printf("%-24s %-7s %-10s %-16s %-9s %-9s %-16s %s\n", "TIME", "TYPE", "AGENT", "NAME",
		       "PREV", "STATE", "HOST", "KIND/CAUSE");
	while (!stop_requested) {
		jsMsgMetaData *meta = NULL;
		natsMsg *m = NULL;
		__u64 id = 0, pending = 1, stored = 0, seq = 0;

		s = next_record(&fw, o->follow, &m);
		if (s == NATS_TIMEOUT && o->follow)
			continue;
		if (s != NATS_OK) {
			pr_warn("fleet: reading stream %s failed: %s\n", o->out, vg_nats_why(s));
			ret = 1;
			break;
		}
		if (natsMsg_GetMetaData(&meta, m) == NATS_OK) {
			pending = meta->NumPending;
			stored = (__u64)meta->Timestamp;
			seq = meta->Sequence.Stream;
			jsMsgMetaData_Destroy(meta);
		}
		/* A consumer started again may repeat what its predecessor had
		 * in flight: each record is printed once, in stream order. */
		if (seq && seq <= fw.last_seq) {
			natsMsg_Destroy(m);
			continue;
		}
		if (seq)
			fw.last_seq = seq;
		if (!o->agent || (vg_json_get_u64(natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m),
						  "agent_id", &id) && id == o->agent)) {
			if (o->json || o->follow)
				printf("%.*s\n", natsMsg_GetDataLength(m), natsMsg_GetData(m));
			else
				event_row(m, stored);
		}
		natsMsg_Destroy(m);
		if (!pending && !o->follow)
			break;
	}
out:
	natsSubscription_Destroy(fw.sub);
	jsStreamInfo_Destroy(si);
	conn_close(&c);
	nats_Close();
	return ret;
}

/* ------------------------------------------------------------ options */

static int parse_urls(const char *arg, void *field, const struct vg_opt *o)
{
	const char *p = arg;
	int n = 0;

	for (;;) {
		size_t len = strcspn(p, ",");

		if (!len || (strncmp(p, "nats://", 7) && strncmp(p, "tls://", 6)) || ++n > MAX_URLS) {
			pr_warn("--%s: '%s' is not a list of up to %d nats:// or tls:// URLs separated "
				"by commas\n", o->name, arg, MAX_URLS);
			return -1;
		}
		if (!p[len])
			break;
		p += len + 1;
	}
	*(const char **)field = arg;
	return 0;
}

/* Stream and bucket names, one or (--source) a list. */
static int parse_names(const char *arg, void *field, const struct vg_opt *o)
{
	bool list = !strcmp(o->name, "source");
	const char *p = arg;
	int n = 0;

	for (;;) {
		size_t len = strcspn(p, list ? "," : "");
		size_t ok = 0;

		while (ok < len && ((p[ok] >= 'a' && p[ok] <= 'z') || (p[ok] >= 'A' && p[ok] <= 'Z') ||
				    (p[ok] >= '0' && p[ok] <= '9') || p[ok] == '_' || p[ok] == '-'))
			ok++;
		if (!len || ok != len || len > NAME_LEN || ++n > MAX_SOURCES) {
			pr_warn("--%s: '%s' is not %s (1-%d of A-Z a-z 0-9 _ -)\n", o->name, arg,
				list ? "a list of up to 16 stream names separated by commas" : "a name",
				NAME_LEN);
			return -1;
		}
		if (!p[len])
			break;
		p += len + 1;
	}
	*(const char **)field = arg;
	return 0;
}

static void show_str(const void *field, const struct vg_opt *o, char *buf, size_t len)
{
	(void)o;
	snprintf(buf, len, "%s", *(const char *const *)field ? *(const char *const *)field : "");
}

#define OPT_NATS { VG_OPT_FUNC(0, "nats", struct fleet_opts, nats, parse_urls, "URL[,URL...]", \
			       "the NATS servers (any of the cluster)"), .show = show_str }
#define OPT_OUT { VG_OPT_FUNC(0, "out", struct fleet_opts, out, parse_names, "NAME", \
			      "the fleet view's stream"), .show = show_str }

static const struct vg_opt merge_opts[] = {
	OPT_NATS,
	{ VG_OPT_FUNC(0, "source", struct fleet_opts, sources, parse_names, "NAME[,NAME...]",
		      "the streams holding the hosts' events (vigil.events.HOST)"), .show = show_str },
	{ VG_OPT_FUNC(0, "presence", struct fleet_opts, presence, parse_names, "BUCKET",
		      "the key-value bucket of the monitors' presence"), .show = show_str,
	  .zero = "the first source's name, then _MONITORS" },
	OPT_OUT,
	{ VG_OPT_UINT(0, "replicas", struct fleet_opts, replicas, 1, 5, "N",
		      "replicas of the fleet view's stream, if the merger creates it") },
	{ VG_OPT_UINT(0, "lost-after-ms", struct fleet_opts, lost_after_ms, 100, 3600000, "MS",
		      "a monitor whose presence stops for this long is lost"),
	  .zero = "3 presence intervals" },
	{}
};

static const struct vg_opt status_opts[] = {
	OPT_NATS,
	OPT_OUT,
	{ VG_OPT_UINT(0, "agent", struct fleet_opts, agent, 1, UINT64_MAX, "ID", "only this agent") },
	{ VG_OPT_JSON(struct fleet_opts, json, "one JSON object: counts, monitors, agents") },
	{}
};

static const struct vg_opt events_opts[] = {
	OPT_NATS,
	OPT_OUT,
	{ VG_OPT_UINT(0, "agent", struct fleet_opts, agent, 1, UINT64_MAX, "ID",
		      "only this agent's records") },
	{ VG_OPT_JSON(struct fleet_opts, json, "one JSON line per record") },
	{ VG_OPT_FLAG('f', "follow", struct fleet_opts, follow,
		      "keep printing records as they are appended (JSON lines), until SIGINT") },
	{ VG_OPT_FLAG(0, "new", struct fleet_opts, new_only, "only records appended from now on") },
	{}
};

static const struct fleet_opts fleet_defaults = {
	.nats = "nats://127.0.0.1:4222",
	.sources = VG_EXPORT_STREAM,
	.out = "VIGIL_FLEET",
	.replicas = 1,
};

static const struct vg_cmd cli_fleet_merge = {
	VG_CMD("fleet merge", "merge every host's stream into the fleet view",
	       "Read the events and the presence every monitor publishes (vigil run "
	       "--export-nats), merge the monitors' verdicts per agent, and append the fleet's "
	       "view to --out, exactly once per (host, instance, event_seq). Runs until SIGINT "
	       "or SIGTERM; restarts from where the view's stream ends.",
	       "  vigil fleet merge --nats nats://10.0.0.5:4222 --replicas 3\n"
	       "  vigil fleet merge --source VIGIL_GLOBAL --presence VIGIL_GLOBAL_MONITORS\n"),
	.opts = merge_opts, .size = sizeof(struct fleet_opts), .defaults = &fleet_defaults,
	.run = run_merge,
};

static const struct vg_cmd cli_fleet_status = {
	VG_CMD("fleet status", "the fleet's state of every agent",
	       "The fleet's state of every agent (alive, suspect, dead, left, disagree, unknown) "
	       "and each monitor's verdict, from the fleet view's stream alone.",
	       "  vigil fleet status\n  vigil fleet status --json | jq .counts\n"),
	.opts = status_opts, .size = sizeof(struct fleet_opts), .defaults = &fleet_defaults,
	.run = run_status,
};

static const struct vg_cmd cli_fleet_events = {
	VG_CMD("fleet events", "the fleet view's records: merged events, monitors, changes",
	       "Print the fleet view's records, oldest first: each merged event with the fleet "
	       "state it led to, monitors turning live or lost, and the changes of state they "
	       "caused. --follow keeps printing new ones as JSON lines.",
	       "  vigil fleet events --follow\n  vigil fleet events --agent 7\n"),
	.opts = events_opts, .size = sizeof(struct fleet_opts), .defaults = &fleet_defaults,
	.run = run_events,
};

VG_VERBS(cli_fleet, "fleet", "the merged view of many monitors (NATS JetStream)",
	 "One view of the fleet, merged from every monitor's JetStream stream "
	 "(docs/fleet.md).",
	 { .cmd = &cli_fleet_merge }, { .cmd = &cli_fleet_status }, { .cmd = &cli_fleet_events });
