// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
/*
 * vigil-fleetgen: the monitors' side and the reader's side of the fleet view
 * benchmark (bench/fleet.sh), against a real nats-server.
 *
 * It publishes *synthetic* events of monitors that do not exist, in the
 * exact format a monitor's exporter publishes (user/daemon/export.c): the
 * same subject vigil.events.<host>, message id <host>-<instance>-<seq>, and
 * payload, written by the same function (vg_event_json_line), with
 * event_seq rising by one per host. A real fleet of 100,000 XDP agents
 * cannot be driven on the benchmark machine; the merger cannot tell.
 *
 *   vigil-fleetgen --nats URL setup
 *       create the hosts' stream (as the exporter does) and presence bucket
 *   vigil-fleetgen --nats URL presence --hosts H
 *       put host-1..H's presence every second until SIGTERM
 *   vigil-fleetgen --nats URL publish --hosts H --agents N --kind K [--rate R]
 *       for each host, one event of kind K (up, suspect, dead, recovered)
 *       per agent 1..N, as fast as the stream takes them or at R per second;
 *       prints {"events","seconds","rate"}
 *   vigil-fleetgen --nats URL observe --events K [--timeout-s S]
 *       read the fleet view's new event records until K distinct events;
 *       prints their count, duplicates, the merge lag (p50, p99, max: from
 *       the event's detected_ns, CLOCK_MONOTONIC at publication, to its
 *       record reaching this reader) and the rate records arrived at.
 */
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <nats/nats.h>
#include "common/event.h"
#include "common/json.h"
#include "common/u64map.h"
#include "common/util.h"
#include "daemon/export.h"

#define FLEET_STREAM "VIGIL_FLEET"
#define INSTANCE 0x7e57f1ee70000000ULL

static const char *nats_url = "nats://127.0.0.1:4222";
static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static void die(const char *step, natsStatus s)
{
	const char *t = nats_GetLastError(NULL);

	fprintf(stderr, "vigil-fleetgen: %s failed: %s\n", step, t && *t ? t : natsStatus_GetText(s));
	exit(1);
}

static jsCtx *connect_js(natsConnection **nc)
{
	jsOptions jo;
	jsCtx *js = NULL;
	natsStatus s = natsConnection_ConnectTo(nc, nats_url);

	if (s != NATS_OK)
		die("connecting", s);
	jsOptions_Init(&jo);
	jo.Wait = 10000;
	jo.PublishAsync.MaxPending = 8192;
	jo.PublishAsync.StallWait = 30000;
	s = natsConnection_JetStream(&js, *nc, &jo);
	if (s != NATS_OK)
		die("opening JetStream", s);
	return js;
}

static int cmd_setup(jsCtx *js)
{
	const char *subjects[] = { VG_EXPORT_SUBJECT_PREFIX ">" };
	jsStreamConfig sc;
	jsErrCode jerr = 0;
	kvStore *kv = NULL;
	kvConfig kc;
	natsStatus s;

	jsStreamConfig_Init(&sc);
	sc.Name = VG_EXPORT_STREAM;
	sc.Subjects = subjects;
	sc.SubjectsLen = 1;
	sc.Storage = js_FileStorage;
	sc.Duplicates = (int64_t)VG_EXPORT_DUPLICATE_WINDOW_S * 1000000000LL;
	s = js_AddStream(NULL, js, &sc, NULL, &jerr);
	if (s != NATS_OK)
		die("creating the hosts' stream", s);
	kvConfig_Init(&kc);
	kc.Bucket = VG_EXPORT_STREAM VG_EXPORT_PRESENCE_SUFFIX;
	kc.History = 1;
	kc.StorageType = js_FileStorage;
	s = js_CreateKeyValue(&kv, js, &kc);
	if (s != NATS_OK)
		die("creating the presence bucket", s);
	kvStore_Destroy(kv);
	return 0;
}

static int cmd_presence(natsConnection *nc, int hosts)
{
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	while (!stop) {
		for (int h = 1; h <= hosts; h++) {
			char subj[96], val[160];

			snprintf(subj, sizeof(subj), "$KV." VG_EXPORT_STREAM VG_EXPORT_PRESENCE_SUFFIX ".host-%d", h);
			snprintf(val, sizeof(val), "{\"host\":\"host-%d\",\"interval_ms\":%d,\"instance\":\"\","
				 "\"event_seq\":0,\"time_ns\":%llu}", h, VG_EXPORT_PRESENCE_MS,
				 (unsigned long long)vg_wall_ns());
			natsConnection_PublishString(nc, subj, val);
		}
		natsConnection_Flush(nc);
		for (int i = 0; i < 10 && !stop; i++)
			usleep(VG_EXPORT_PRESENCE_MS * 100);
	}
	return 0;
}

/* The next event_seq of host-h: one past its last message in the stream. */
static __u64 next_seq(jsCtx *js, int h)
{
	char subj[64];
	natsMsg *m = NULL;
	jsErrCode jerr = 0;
	__u64 seq = 0;

	snprintf(subj, sizeof(subj), VG_EXPORT_SUBJECT_PREFIX "host-%d", h);
	if (js_GetLastMsg(&m, js, VG_EXPORT_STREAM, subj, NULL, &jerr) != NATS_OK)
		return 1;
	vg_json_get_u64(natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m), "event_seq", &seq);
	natsMsg_Destroy(m);
	return seq + 1;
}

static const struct {
	const char *kind;
	__u32 k, state, prev;
} kinds[] = {
	{ "up", VIGIL_EV_UP, VIGIL_AGENT_ALIVE, VIGIL_AGENT_NEW },
	{ "suspect", VIGIL_EV_SUSPECT, VIGIL_AGENT_SUSPECT, VIGIL_AGENT_ALIVE },
	{ "dead", VIGIL_EV_DEAD, VIGIL_AGENT_DEAD, VIGIL_AGENT_SUSPECT },
	{ "recovered", VIGIL_EV_RECOVERED, VIGIL_AGENT_ALIVE, VIGIL_AGENT_DEAD },
};

static int cmd_publish(jsCtx *js, int hosts, __u64 agents, const char *kind, double rate)
{
	__u64 seq[64], sent = 0, total = agents * (__u64)hosts, t0 = vg_mono_ns();
	size_t k = 0;
	natsStatus s;
	double secs;

	while (k < sizeof(kinds) / sizeof(kinds[0]) && strcmp(kinds[k].kind, kind))
		k++;
	if (k == sizeof(kinds) / sizeof(kinds[0]) || hosts < 1 || hosts > 64) {
		fprintf(stderr, "vigil-fleetgen: --kind up|suspect|dead|recovered, --hosts 1-64\n");
		return 2;
	}
	for (int h = 1; h <= hosts; h++)
		seq[h - 1] = next_seq(js, h);
	for (__u64 a = 1; a <= agents; a++) {
		for (int h = 1; h <= hosts; h++) {
			struct vigil_event e = {
				.event_seq = seq[h - 1]++, .agent_id = a, .seq = 1000 + a,
				.slot = (__u32)a, .kind = kinds[k].k, .incarnation = 1, .interval_ms = 1000,
				.state = (__u16)kinds[k].state, .prev_state = (__u16)kinds[k].prev,
			};
			struct vg_event_view v = { .e = &e, .group = "bench", .instance_id = INSTANCE + (__u64)h };
			char name[32], subj[64], id[96];
			natsMsg *m = NULL;
			size_t len;
			char *payload;

			/* At a rate: wait for this event's slot. */
			if (rate > 0) {
				__u64 due = t0 + (__u64)((double)sent * 1e9 / rate);

				while (vg_mono_ns() < due)
					usleep(200);
			}
			snprintf(name, sizeof(name), "bench-%llu", (unsigned long long)a);
			v.name = name;
			e.detected_ns = vg_mono_ns();
			e.last_seen_ns = e.detected_ns - 3000000000ULL;
			v.detected_wall_ns = vg_wall_ns();
			payload = vg_event_json_line(&v, &len);
			snprintf(subj, sizeof(subj), VG_EXPORT_SUBJECT_PREFIX "host-%d", h);
			snprintf(id, sizeof(id), "host-%d-%016llx-%llu", h, (unsigned long long)v.instance_id,
				 (unsigned long long)e.event_seq);
			s = natsMsg_Create(&m, subj, NULL, payload, (int)len);
			if (s == NATS_OK)
				s = natsMsgHeader_Set(m, "Nats-Msg-Id", id);
			if (s == NATS_OK)
				s = js_PublishMsgAsync(js, &m, NULL);
			free(payload);
			if (s != NATS_OK)
				die("publishing", s);
			sent++;
		}
	}
	s = js_PublishAsyncComplete(js, NULL);
	if (s != NATS_OK)
		die("waiting for the acknowledgements", s);
	secs = (double)(vg_mono_ns() - t0) / 1e9;
	printf("{\"events\":%llu,\"seconds\":%.3f,\"rate\":%.0f}\n", (unsigned long long)total, secs,
	       (double)total / secs);
	return 0;
}

static int cmp_u64(const void *a, const void *b)
{
	__u64 x = *(const __u64 *)a, y = *(const __u64 *)b;

	return x < y ? -1 : x > y;
}

static int cmd_observe(natsConnection *nc, jsCtx *js, __u64 want, double timeout_s)
{
	const char *subjects[] = { "vigil.fleet." FLEET_STREAM ".>" };
	__u64 *lag = calloc(want + 1, sizeof(*lag)), got = 0, dups = 0, first = 0, last = 0;
	__u64 last_seq = 0, resets = 0;
	int idle = 0;
	__u64 deadline = vg_mono_ns() + (__u64)(timeout_s * 1e9);
	struct u64map seen = {};
	natsSubscription *sub = NULL;
	jsStreamConfig sc;
	jsErrCode jerr = 0;
	jsSubOptions so;
	natsStatus s;

	(void)nc;
	/* The merger creates it too; whoever comes first. */
	jsStreamConfig_Init(&sc);
	sc.Name = FLEET_STREAM;
	sc.Subjects = subjects;
	sc.SubjectsLen = 1;
	sc.Storage = js_FileStorage;
	js_AddStream(NULL, js, &sc, NULL, &jerr);
	jsSubOptions_Init(&so);
	so.Stream = FLEET_STREAM;
	so.Ordered = true;
	so.Config.DeliverPolicy = js_DeliverNew;
	s = js_SubscribeSync(&sub, js, "vigil.fleet." FLEET_STREAM ".>", NULL, &so, &jerr);
	if (s != NATS_OK || !lag)
		die("reading the fleet view", s);
	natsSubscription_SetPendingLimits(sub, -1, -1);
	printf("ready\n");
	fflush(stdout);
	while (got < want && vg_mono_ns() < deadline) {
		jsMsgMetaData *meta = NULL;
		natsMsg *m = NULL;
		const char *d, *ev;
		size_t n, evn;
		__u64 seq = 0, det = 0, now, key;
		char host[72] = "";

		if (natsSubscription_NextMsg(&m, sub, 500) != NATS_OK) {
			/* An ordered consumer an overloaded server stopped feeding
			 * (its reset unanswered): a new one after the last record. */
			if (++idle >= 6 && last_seq) {
				natsSubscription_Destroy(sub);
				so.Config.DeliverPolicy = js_DeliverByStartSequence;
				so.Config.OptStartSeq = last_seq + 1;
				if (js_SubscribeSync(&sub, js, "vigil.fleet." FLEET_STREAM ".>", NULL, &so,
						     &jerr) != NATS_OK)
					die("reading the fleet view again", NATS_ERR);
				natsSubscription_SetPendingLimits(sub, -1, -1);
				idle = 0;
				resets++;
			}
			continue;
		}
		idle = 0;
		if (natsMsg_GetMetaData(&meta, m) == NATS_OK) {
			last_seq = meta->Sequence.Stream;
			jsMsgMetaData_Destroy(meta);
		}
		now = vg_mono_ns();
		d = natsMsg_GetData(m);
		n = (size_t)natsMsg_GetDataLength(m);
		ev = vg_json_lookup(d, n, "event", &evn);
		if (ev && vg_json_get_u64(d, n, "event_seq", &seq) &&
		    vg_json_get_str(d, n, "host", host, sizeof(host)) &&
		    vg_json_get_u64(ev, evn, "detected_ns", &det)) {
			key = ((__u64)strtoul(host + 5, NULL, 10) << 48) ^ seq;
			if (u64map_get(&seen, key | (1ULL << 63), NULL)) {
				dups++;
			} else {
				u64map_put(&seen, key | (1ULL << 63), 1);
				lag[got++] = now - det;
				if (!first)
					first = now;
				last = now;
			}
		}
		natsMsg_Destroy(m);
	}
	qsort(lag, got, sizeof(*lag), cmp_u64);
	printf("{\"events\":%llu,\"wanted\":%llu,\"duplicates\":%llu,\"reader_resets\":%llu,\"lag_p50_ms\":%.2f,"
	       "\"lag_p99_ms\":%.2f,\"lag_max_ms\":%.2f,\"seconds\":%.3f,\"rate\":%.0f}\n",
	       (unsigned long long)got, (unsigned long long)want, (unsigned long long)dups,
	       (unsigned long long)resets, got ? lag[(got - 1) / 2] / 1e6 : NAN, got ? lag[(got * 99 - 1) / 100] / 1e6 : NAN,
	       got ? lag[got - 1] / 1e6 : NAN, (double)(last - first) / 1e9,
	       last > first ? (double)got * 1e9 / (double)(last - first) : NAN);
	u64map_free(&seen);
	free(lag);
	natsSubscription_Destroy(sub);
	return got == want ? 0 : 1;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "nats", required_argument, NULL, 'n' }, { "hosts", required_argument, NULL, 'h' },
		{ "agents", required_argument, NULL, 'a' }, { "kind", required_argument, NULL, 'k' },
		{ "rate", required_argument, NULL, 'r' }, { "events", required_argument, NULL, 'e' },
		{ "timeout-s", required_argument, NULL, 't' }, {}
	};
	const char *kind = "up";
	__u64 agents = 0, events = 0;
	double rate = 0, timeout_s = 300;
	natsConnection *nc = NULL;
	int hosts = 2, opt, ret;
	jsCtx *js;

	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case 'n': nats_url = optarg; break;
		case 'h': hosts = atoi(optarg); break;
		case 'a': agents = strtoull(optarg, NULL, 10); break;
		case 'k': kind = optarg; break;
		case 'r': rate = atof(optarg); break;
		case 'e': events = strtoull(optarg, NULL, 10); break;
		case 't': timeout_s = atof(optarg); break;
		default: return 2;
		}
	}
	if (optind != argc - 1) {
		fprintf(stderr, "usage: vigil-fleetgen --nats URL setup|presence|publish|observe ...\n");
		return 2;
	}
	js = connect_js(&nc);
	if (!strcmp(argv[optind], "setup"))
		ret = cmd_setup(js);
	else if (!strcmp(argv[optind], "presence"))
		ret = cmd_presence(nc, hosts);
	else if (!strcmp(argv[optind], "publish"))
		ret = cmd_publish(js, hosts, agents, kind, rate);
	else if (!strcmp(argv[optind], "observe"))
		ret = cmd_observe(nc, js, events, timeout_s);
	else
		ret = 2;
	jsCtx_Destroy(js);
	natsConnection_Destroy(nc);
	nats_Close();
	return ret;
}
