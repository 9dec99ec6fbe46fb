// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
/*
 * `vigil status` reads the pinned maps directly, so it works while the
 * daemon is down. `vigil events` reads (and follows) the daemon's event log.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include "vigil/logic.h"
#include "cli.h"
#include "instance.h"
#include "log.h"
#include "registry.h"
#include "util.h"

struct agent_row {
	__u32 slot;
	struct agent_slot s;
};

struct rows {
	struct agent_row *v;
	size_t n, cap;
};

static int collect(__u32 slot, const struct agent_slot *s, void *ctx)
{
	struct rows *r = ctx;

	if (r->n == r->cap) {
		size_t cap = r->cap ? r->cap * 2 : 256;
		struct agent_row *v = realloc(r->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		r->v = v;
		r->cap = cap;
	}
	r->v[r->n].slot = slot;
	r->v[r->n].s = *s;
	r->n++;
	return 0;
}

static int by_id(const void *a, const void *b)
{
	__u64 x = ((const struct agent_row *)a)->s.agent_id, y = ((const struct agent_row *)b)->s.agent_id;

	return x < y ? -1 : x > y;
}

/* Load every registered agent, sorted by id. */
static int load_rows(const struct vg_maps *m, struct rows *r)
{
	int err = vg_agent_foreach(m, collect, r);

	if (err) {
		pr_warn("reading the agents failed: %s\n", strerror(-err));
		return -1;
	}
	qsort(r->v, r->n, sizeof(*r->v), by_id);
	return 0;
}

static void fmt_age(char *buf, size_t len, const struct agent_slot *s, __u64 now)
{
	__u64 age;

	if (s->state == VIGIL_AGENT_NEW) {
		snprintf(buf, len, "never");
		return;
	}
	age = now > s->last_seen_ns ? now - s->last_seen_ns : 0;
	if (age < 10 * VIGIL_NSEC_PER_SEC)
		snprintf(buf, len, "%.1fms", age / 1e6);
	else
		snprintf(buf, len, "%.1fs", age / 1e9);
}

static void print_agent_json(const struct agent_row *r, __u64 now)
{
	const struct agent_slot *s = &r->s;

	printf("{\"agent_id\":%llu,\"name\":", (unsigned long long)s->agent_id);
	vg_json_str(stdout, s->name);
	printf(",\"group\":");
	vg_json_str(stdout, s->group);
	printf(",\"slot\":%u,\"state\":\"%s\",\"status\":\"%s\",\"age_ms\":%.3f,\"seq\":%llu,"
	       "\"incarnation\":%u,\"interval_ms\":%u,\"interval_min_ms\":%u,"
	       "\"interval_max_ms\":%u,\"multiplier\":%u,\"deadline_in_ms\":%.3f,"
	       "\"queue_depth\":%u,\"beats\":%llu,\"duplicates\":%llu,\"reordered\":%llu,"
	       "\"malformed\":%llu,\"bad_version\":%llu,\"restarts\":%llu,\"bad_tag\":%llu,"
	       "\"replayed\":%llu,\"over_rate\":%llu,\"last_event_seq\":%llu}",
	       r->slot, vg_state_name(s->state), vg_status_name(s->status),
	       now > s->last_seen_ns ? (now - s->last_seen_ns) / 1e6 : 0.0,
	       (unsigned long long)s->seq, s->incarnation, s->interval_ms, s->interval_min_ms,
	       s->interval_max_ms, s->multiplier,
	       ((double)vigil_deadline(s->last_seen_ns, s->interval_ms, s->multiplier) - (double)now) / 1e6,
	       s->queue_depth, (unsigned long long)s->beats, (unsigned long long)s->duplicates,
	       (unsigned long long)s->reordered, (unsigned long long)s->malformed,
	       (unsigned long long)s->bad_version, (unsigned long long)s->restarts,
	       (unsigned long long)s->bad_tag, (unsigned long long)s->replayed,
	       (unsigned long long)s->over_rate, (unsigned long long)s->last_event_seq);
}

#define STAT_FIELDS(X)                                                                  \
	X(packets) X(beats) X(passed) X(malformed) X(bad_version) X(unknown_agent)     \
	X(duplicates) X(reordered) X(restarts) X(events) X(ringbuf_full) X(queue_full) \
	X(stale_slot) X(not_allowed) X(unauthenticated) X(bad_tag) X(replayed)         \
	X(over_rate_agent) X(over_rate_source) X(verdicts_held) X(held_decided)        \
	X(held_unverified) X(held_cancelled) X(held_by_beat) X(held_ns) X(held_max_ns) \
	X(corrected) X(lost_beats)

static void print_stats_json(const struct vigil_stats *st, const struct wheel_state *ws)
{
	const char *sep = "";

	printf("\"stats\":{");
#define X(f)                                                                      \
	printf("%s\"%s\":%llu", sep, #f, (unsigned long long)st->f);           \
	sep = ",";
	STAT_FIELDS(X)
#undef X
	printf("},\"sweeper\":{\"runs\":%llu,\"visits\":%llu,\"refiled\":%llu,\"filed\":%u,"
	       "\"busy_ns\":%llu,\"max_lag_ticks\":%llu,\"budget_exhausted\":%llu,"
	       "\"last_run_ns\":%llu,\"lag_ticks\":%llu,\"behind\":%s,\"behind_episodes\":%llu,"
	       "\"behind_max_ticks\":%llu}",
	       (unsigned long long)ws->runs, (unsigned long long)ws->visits,
	       (unsigned long long)ws->refiled, ws->filed, (unsigned long long)ws->busy_ns,
	       (unsigned long long)ws->max_lag_ticks, (unsigned long long)ws->budget_exhausted,
	       (unsigned long long)ws->last_run_ns, (unsigned long long)ws->lag_ticks,
	       ws->behind_since_ns ? "true" : "false", (unsigned long long)ws->behind_episodes,
	       (unsigned long long)ws->behind_max_ticks);
}

/* Receive queues that have seen timestamped beats. */
static size_t read_rxq(const struct vg_maps *m, __u32 *qs, struct rxq_state *r)
{
	size_t n = 0;

	for (__u32 q = 0; q < VIGIL_MAX_RXQ; q++)
		if (bpf_map_lookup_elem(m->rxq, &q, &r[n]) == 0 && r[n].beats)
			qs[n++] = q;
	return n;
}

static void print_rxq_json(const __u32 *qs, const struct rxq_state *r, size_t n, __u64 now)
{
	printf(",\"receive_queues\":[");
	for (size_t i = 0; i < n; i++)
		printf("%s{\"queue\":%u,\"beats\":%llu,\"lag_ns\":%llu,\"watermark_age_ns\":%llu,"
		       "\"last_rx_ns\":%llu,\"behind\":%s,\"behind_episodes\":%u,"
		       "\"behind_max_ns\":%llu,\"lost\":%llu,\"loss_bursts\":%u}",
		       i ? "," : "", qs[i], (unsigned long long)r[i].beats,
		       (unsigned long long)r[i].lag_ns,
		       (unsigned long long)(now > r[i].sent_wm_ns ? now - r[i].sent_wm_ns : 0),
		       (unsigned long long)r[i].last_rx_ns, r[i].behind_since_ns ? "true" : "false",
		       r[i].episodes, (unsigned long long)r[i].behind_max_ns,
		       (unsigned long long)r[i].lost, r[i].bursts);
	printf("]");
}

/* The monitor's own health, for the SRE on call (docs/operations.md). */
static void print_health_text(const __u32 *qs, const struct rxq_state *r, size_t n,
			      const struct wheel_state *ws, const struct vigil_stats *st,
			      const struct vigil_config *cfg, __u64 now)
{
	printf("monitor: sweeper %s (backlog %llu ticks now, %llu episodes behind, worst %llu "
	       "ticks)\n",
	       ws->behind_since_ns ? "BEHIND" : "on time", (unsigned long long)ws->lag_ticks,
	       (unsigned long long)ws->behind_episodes, (unsigned long long)ws->behind_max_ticks);
	for (size_t i = 0; i < n; i++)
		printf("  receive queue %u: %s, last beat %.3f ms beyond its agent's least delay, "
		       "evidence %.1f ms old, %u episodes behind (worst %.1f ms), %llu beats lost "
		       "(%u bursts)\n",
		       qs[i], r[i].behind_since_ns ? "BEHIND" : "on time", r[i].lag_ns / 1e6,
		       now > r[i].sent_wm_ns ? (now - r[i].sent_wm_ns) / 1e6 : 0.0, r[i].episodes,
		       r[i].behind_max_ns / 1e6, (unsigned long long)r[i].lost, r[i].bursts);
	printf("verdicts: %llu held for receive-path evidence (up to %u ms): %llu taken with it, "
	       "%llu taken unverified, %llu dropped (beat in time), %llu taken on a late beat; "
	       "longest hold %.1f ms; %llu false verdicts corrected (monitor_delay)\n",
	       (unsigned long long)st->verdicts_held, cfg->hold_max_ms,
	       (unsigned long long)st->held_decided, (unsigned long long)st->held_unverified,
	       (unsigned long long)st->held_cancelled, (unsigned long long)st->held_by_beat,
	       st->held_max_ns / 1e6, (unsigned long long)st->corrected);
}

int cmd_status(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "pin-root", required_argument, NULL, 'P' },
		{ "help", no_argument, NULL, 'h' },
		{}
	};
	const char *pin_root = VIGIL_DEFAULT_PIN_ROOT;
	struct rows rows = {};
	struct vigil_stats st;
	struct wheel_state ws = {};
	struct vigil_config cfg = {};
	struct vigil_meta meta;
	struct vg_maps m;
	bool json = false;
	__u32 zero = 0, counts[VIGIL_AGENT_STATE_MAX + 1] = {}, qs[VIGIL_MAX_RXQ];
	struct rxq_state rxq[VIGIL_MAX_RXQ];
	size_t nq;
	__u64 now;
	int opt;

	while ((opt = getopt_long(argc, argv, "jh", opts, NULL)) != -1) {
		switch (opt) {
		case 'j':
			json = true;
			break;
		case 'P':
			pin_root = optarg;
			break;
		case 'h':
			printf("Usage: vigil status [--json] [--pin-root DIR]\n"
			       "Every agent's state, age since its last beat, sequence, interval and\n"
			       "counters, read from the pinned maps (works while the daemon is down).\n");
			return 0;
		default:
			return 2;
		}
	}
	if (optind < argc) {
		pr_warn("status: unexpected argument '%s'\n", argv[optind]);
		return 2;
	}
	if (vg_instance_open(pin_root, &m, &meta))
		return 1;
	if (load_rows(&m, &rows) || vg_stats_read(&m, &st)) {
		vg_maps_close(&m);
		free(rows.v);
		return 1;
	}
	bpf_map_lookup_elem(m.wheel, &zero, &ws);
	bpf_map_lookup_elem(m.config, &zero, &cfg);
	nq = read_rxq(&m, qs, rxq);
	now = vg_mono_ns();
	for (size_t i = 0; i < rows.n; i++)
		if (rows.v[i].s.state <= VIGIL_AGENT_STATE_MAX)
			counts[rows.v[i].s.state]++;

	if (json) {
		printf("{\"agents\":[");
		for (size_t i = 0; i < rows.n; i++) {
			if (i)
				putchar(',');
			print_agent_json(&rows.v[i], now);
		}
		printf("],");
		print_stats_json(&st, &ws);
		print_rxq_json(qs, rxq, nq, now);
		printf(",\"instance\":{\"port\":%u,\"tick_ns\":%llu,\"max_agents\":%u,"
		       "\"ifindex\":%u,\"mode\":\"%s\",\"dead_misses\":%u,\"hold_max_ms\":%u}}\n",
		       meta.port, (unsigned long long)meta.tick_ns, meta.max_agents, meta.ifindex,
		       meta.skb_mode ? "skb" : "native", cfg.dead_misses, cfg.hold_max_ms);
	} else {
		printf("%-8s %-20s %-10s %-8s %-9s %16s %8s %-9s %9s %5s %5s %5s %5s %7s\n", "ID",
		       "NAME", "GROUP", "STATE", "AGE", "SEQ", "INTERVAL", "STATUS", "BEATS", "DUP",
		       "REORD", "MALF", "BADTAG", "RESTART");
		for (size_t i = 0; i < rows.n; i++) {
			const struct agent_slot *s = &rows.v[i].s;
			char age[24], ival[16];

			fmt_age(age, sizeof(age), s, now);
			snprintf(ival, sizeof(ival), "%ums", s->interval_ms);
			printf("%-8llu %-20s %-10s %-8s %-9s %16llu %8s %-9s %9llu %5llu %5llu %5llu %5llu %7llu\n",
			       (unsigned long long)s->agent_id, s->name, s->group,
			       vg_state_name(s->state), age, (unsigned long long)s->seq,
			       ival, vg_status_name(s->status), (unsigned long long)s->beats,
			       (unsigned long long)s->duplicates, (unsigned long long)s->reordered,
			       (unsigned long long)s->malformed, (unsigned long long)s->bad_tag,
			       (unsigned long long)s->restarts);
		}
		printf("\n%zu agents: %u new, %u alive, %u suspect, %u dead, %u left\n", rows.n,
		       counts[VIGIL_AGENT_NEW], counts[VIGIL_AGENT_ALIVE], counts[VIGIL_AGENT_SUSPECT],
		       counts[VIGIL_AGENT_DEAD], counts[VIGIL_AGENT_LEFT]);
		printf("beat path: %llu packets, %llu beats accepted (%llu late but in the window); "
		       "%llu events, %llu lost to a full ring buffer\n",
		       (unsigned long long)st.packets, (unsigned long long)st.beats,
		       (unsigned long long)st.reordered, (unsigned long long)st.events,
		       (unsigned long long)st.ringbuf_full);
		printf("refused: %llu malformed, %llu bad version, %llu unknown agent, "
		       "%llu not allowed, %llu unauthenticated, %llu bad tag, %llu duplicate, "
		       "%llu replayed, %llu over agent rate, %llu over source rate\n",
		       (unsigned long long)st.malformed, (unsigned long long)st.bad_version,
		       (unsigned long long)st.unknown_agent, (unsigned long long)st.not_allowed,
		       (unsigned long long)st.unauthenticated, (unsigned long long)st.bad_tag,
		       (unsigned long long)st.duplicates, (unsigned long long)st.replayed,
		       (unsigned long long)st.over_rate_agent, (unsigned long long)st.over_rate_source);
		printf("sweeper: %llu ticks, %u slots in the wheel, %llu visits, last ran %.1f ms ago, "
		       "largest backlog %llu ticks\n",
		       (unsigned long long)ws.runs, ws.filed, (unsigned long long)ws.visits,
		       ws.last_run_ns && now > ws.last_run_ns ? (now - ws.last_run_ns) / 1e6 : 0.0,
		       (unsigned long long)ws.max_lag_ticks);
		print_health_text(qs, rxq, nq, &ws, &st, &cfg, now);
	}
	vg_maps_close(&m);
	free(rows.v);
	return 0;
}
