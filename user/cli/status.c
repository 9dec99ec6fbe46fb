// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
/*
 * `vigil status` reads the pinned maps directly, so it works while the
 * daemon is down.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include "vigil/logic.h"
#include "cli/cli.h"
#include "common/instance.h"
#include "common/json.h"
#include "common/log.h"
#include "common/options.h"
#include "common/registry.h"
#include "common/event.h"
#include "common/util.h"
#include "cli/status.h"

static int collect(__u32 slot, const struct vg_agent *a, void *ctx)
{
	struct rows *r = ctx;

	if (vg_grow(&r->v, &r->cap, r->n, sizeof(*r->v), 256))
		return -ENOMEM;
	r->v[r->n].slot = slot;
	r->v[r->n].a = *a;
	r->n++;
	return 0;
}

static int by_id(const void *a, const void *b)
{
	__u64 x = ((const struct agent_row *)a)->a.s.agent_id;
	__u64 y = ((const struct agent_row *)b)->a.s.agent_id;

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

static void agent_json(struct vg_json *j, const struct agent_row *r, __u64 now)
{
	const struct agent_slot *s = &r->a.s;
	const struct agent_info *i = &r->a.i;

	vg_json_obj(j);
	vg_json_u64_field(j, "agent_id", s->agent_id);
	vg_json_str_field(j, "name", i->name);
	vg_json_str_field(j, "group", i->group);
	vg_json_u64_field(j, "slot", r->slot);
	vg_json_str_field(j, "state", vg_state_name(s->state));
	vg_json_str_field(j, "status", vg_status_name(s->status));
	vg_json_double_field(j, "age_ms", "%.3f",
			     now > s->last_seen_ns ? (now - s->last_seen_ns) / 1e6 : 0.0);
	vg_json_u64_field(j, "seq", s->replay.top);
	vg_json_u64_field(j, "incarnation", s->replay.incarnation);
	vg_json_u64_field(j, "interval_ms", s->interval_ms);
	vg_json_u64_field(j, "interval_min_ms", s->interval_min_ms);
	vg_json_u64_field(j, "interval_max_ms", s->interval_max_ms);
	vg_json_u64_field(j, "multiplier", s->multiplier);
	vg_json_double_field(j, "deadline_in_ms", "%.3f",
			     ((double)vigil_deadline(s->last_seen_ns, s->interval_ms, s->multiplier) -
			      (double)now) / 1e6);
	vg_json_u64_field(j, "queue_depth", s->queue_depth);
	vg_json_u64_field(j, "beats", s->beats);
	vg_json_u64_field(j, "duplicates", i->duplicates);
	vg_json_u64_field(j, "reordered", i->reordered);
	vg_json_u64_field(j, "malformed", i->malformed);
	vg_json_u64_field(j, "bad_version", i->bad_version);
	vg_json_u64_field(j, "restarts", i->restarts);
	vg_json_u64_field(j, "bad_tag", i->bad_tag);
	vg_json_u64_field(j, "replayed", i->replayed);
	vg_json_u64_field(j, "over_rate", i->over_rate);
	vg_json_u64_field(j, "last_event_seq", i->last_event_seq);
	vg_json_close(j);
}

#define STAT_FIELDS(X)                                                                  \
	X(packets) X(beats) X(passed) X(malformed) X(bad_version) X(unknown_agent)     \
	X(duplicates) X(reordered) X(restarts) X(events) X(ringbuf_full) X(queue_full) \
	X(stale_slot) X(not_allowed) X(unauthenticated) X(bad_tag) X(replayed)         \
	X(over_rate_agent) X(over_rate_source) X(verdicts_held) X(held_decided)        \
	X(held_unverified) X(held_cancelled) X(held_by_beat) X(held_ns) X(held_max_ns) \
	X(corrected) X(lost_beats) X(mapped_source)

static void stats_json(struct vg_json *j, const struct vigil_stats *st,
		       const struct wheel_state *ws)
{
	vg_json_obj_field(j, "stats");
#define X(f) vg_json_u64_field(j, #f, st->f);
	STAT_FIELDS(X)
#undef X
	vg_json_close(j);
	vg_json_obj_field(j, "sweeper");
	vg_json_u64_field(j, "runs", ws->runs);
	vg_json_u64_field(j, "visits", ws->visits);
	vg_json_u64_field(j, "refiled", ws->refiled);
	vg_json_u64_field(j, "filed", ws->filed);
	vg_json_u64_field(j, "busy_ns", ws->busy_ns);
	vg_json_u64_field(j, "max_lag_ticks", ws->max_lag_ticks);
	vg_json_u64_field(j, "budget_exhausted", ws->budget_exhausted);
	vg_json_u64_field(j, "last_run_ns", ws->last_run_ns);
	vg_json_u64_field(j, "lag_ticks", ws->lag_ticks);
	vg_json_bool_field(j, "behind", ws->behind_since_ns != 0);
	vg_json_u64_field(j, "behind_episodes", ws->behind_episodes);
	vg_json_u64_field(j, "behind_max_ticks", ws->behind_max_ticks);
	vg_json_close(j);
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

static void rxq_json(struct vg_json *j, const __u32 *qs, const struct rxq_state *r, size_t n,
		     __u64 now)
{
	vg_json_arr_field(j, "receive_queues");
	for (size_t i = 0; i < n; i++) {
		vg_json_obj(j);
		vg_json_u64_field(j, "queue", qs[i]);
		vg_json_u64_field(j, "beats", r[i].beats);
		vg_json_u64_field(j, "lag_ns", r[i].lag_ns);
		vg_json_u64_field(j, "watermark_age_ns",
				  now > r[i].sent_wm_ns ? now - r[i].sent_wm_ns : 0);
		vg_json_u64_field(j, "last_rx_ns", r[i].last_rx_ns);
		vg_json_bool_field(j, "behind", r[i].behind_since_ns != 0);
		vg_json_u64_field(j, "behind_episodes", r[i].episodes);
		vg_json_u64_field(j, "behind_max_ns", r[i].behind_max_ns);
		vg_json_u64_field(j, "lost", r[i].lost);
		vg_json_u64_field(j, "loss_bursts", r[i].bursts);
		vg_json_close(j);
	}
	vg_json_close(j);
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

int read_snapshot(const char *pin_root, struct snapshot *sn)
{
	struct vg_maps m;
	__u32 zero = 0;
	int ret = 0;

	if (vg_instance_open(pin_root, &m, &sn->meta))
		return 1;
	if (load_rows(&m, &sn->rows) || vg_stats_read(&m, &sn->st)) {
		ret = 1;
		goto out;
	}
	bpf_map_lookup_elem(m.wheel, &zero, &sn->ws);
	bpf_map_lookup_elem(m.config, &zero, &sn->cfg);
	sn->nq = read_rxq(&m, sn->qs, sn->rxq);
	sn->now = vg_mono_ns();
	for (size_t i = 0; i < sn->rows.n; i++)
		if (sn->rows.v[i].a.s.state <= VIGIL_AGENT_STATE_MAX)
			sn->counts[sn->rows.v[i].a.s.state]++;
out:
	vg_maps_close(&m);
	return ret;
}

static void print_json(const struct snapshot *sn)
{
	struct vg_json j;

	vg_json_begin(&j, stdout);
	vg_json_obj(&j);
	vg_json_arr_field(&j, "agents");
	for (size_t i = 0; i < sn->rows.n; i++)
		agent_json(&j, &sn->rows.v[i], sn->now);
	vg_json_close(&j);
	stats_json(&j, &sn->st, &sn->ws);
	rxq_json(&j, sn->qs, sn->rxq, sn->nq, sn->now);
	vg_json_obj_field(&j, "instance");
	vg_json_u64_field(&j, "port", sn->meta.port);
	vg_json_u64_field(&j, "tick_ns", sn->meta.tick_ns);
	vg_json_u64_field(&j, "max_agents", sn->meta.max_agents);
	vg_json_u64_field(&j, "ifindex", sn->meta.ifindex);
	vg_json_str_field(&j, "mode", sn->meta.skb_mode ? "skb" : "native");
	vg_json_u64_field(&j, "dead_misses", sn->cfg.dead_misses);
	vg_json_u64_field(&j, "hold_max_ms", sn->cfg.hold_max_ms);
	vg_json_bool_field(&j, "auth_required", sn->cfg.auth_required);
	vg_json_end(&j);
}

static void print_agents_text(const struct snapshot *sn)
{
	printf("%-8s %-20s %-10s %-8s %-9s %16s %8s %-9s %9s %5s %5s %5s %5s %7s\n", "ID", "NAME",
	       "GROUP", "STATE", "AGE", "SEQ", "INTERVAL", "STATUS", "BEATS", "DUP", "REORD", "MALF",
	       "BADTAG", "RESTART");
	for (size_t i = 0; i < sn->rows.n; i++) {
		const struct agent_slot *s = &sn->rows.v[i].a.s;
		const struct agent_info *in = &sn->rows.v[i].a.i;
		char age[24], ival[16];

		fmt_age(age, sizeof(age), s, sn->now);
		snprintf(ival, sizeof(ival), "%ums", s->interval_ms);
		printf("%-8llu %-20s %-10s %-8s %-9s %16llu %8s %-9s %9llu %5llu %5llu %5llu %5llu %7llu\n",
		       (unsigned long long)s->agent_id, in->name, in->group, vg_state_name(s->state),
		       age, (unsigned long long)s->replay.top, ival, vg_status_name(s->status),
		       (unsigned long long)s->beats, (unsigned long long)in->duplicates,
		       (unsigned long long)in->reordered, (unsigned long long)in->malformed,
		       (unsigned long long)in->bad_tag, (unsigned long long)in->restarts);
	}
}

static void print_text(const struct snapshot *sn)
{
	const struct vigil_stats *st = &sn->st;
	const struct wheel_state *ws = &sn->ws;
	const __u32 *c = sn->counts;

	print_agents_text(sn);
	/* It outlives the daemon that set it: say so whoever looks. */
	printf("\nauthentication: %s\n", sn->cfg.auth_required ? "required" :
	       "OFF (--no-auth or --learn): beats without a tag are accepted");
	printf("%zu agents: %u new, %u alive, %u suspect, %u dead, %u left\n", sn->rows.n,
	       c[VIGIL_AGENT_NEW], c[VIGIL_AGENT_ALIVE], c[VIGIL_AGENT_SUSPECT], c[VIGIL_AGENT_DEAD],
	       c[VIGIL_AGENT_LEFT]);
	printf("beat path: %llu packets, %llu beats accepted (%llu late but in the window); "
	       "%llu events, %llu lost to a full ring buffer\n",
	       (unsigned long long)st->packets, (unsigned long long)st->beats,
	       (unsigned long long)st->reordered, (unsigned long long)st->events,
	       (unsigned long long)st->ringbuf_full);
	printf("refused: %llu malformed, %llu bad version, %llu unknown agent, %llu not allowed, "
	       "%llu unauthenticated, %llu bad tag, %llu duplicates, %llu replayed, "
	       "%llu over agent rate, %llu over source rate, %llu IPv4-mapped IPv6 source\n",
	       (unsigned long long)st->malformed, (unsigned long long)st->bad_version,
	       (unsigned long long)st->unknown_agent, (unsigned long long)st->not_allowed,
	       (unsigned long long)st->unauthenticated, (unsigned long long)st->bad_tag,
	       (unsigned long long)st->duplicates, (unsigned long long)st->replayed,
	       (unsigned long long)st->over_rate_agent, (unsigned long long)st->over_rate_source,
	       (unsigned long long)st->mapped_source);
	printf("sweeper: %llu ticks, %u slots in the wheel, %llu visits, last ran %.1f ms ago, "
	       "largest backlog %llu ticks\n",
	       (unsigned long long)ws->runs, ws->filed, (unsigned long long)ws->visits,
	       ws->last_run_ns && sn->now > ws->last_run_ns ? (sn->now - ws->last_run_ns) / 1e6 : 0.0,
	       (unsigned long long)ws->max_lag_ticks);
	print_health_text(sn->qs, sn->rxq, sn->nq, ws, st, &sn->cfg, sn->now);
}

__u64 snapshot_refused(const struct vigil_stats *st)
{
	__u64 n = 0;

#define X(r) n += st->r;
	VIGIL_REFUSALS(X)
#undef X
	return n;
}

struct status_opts {
	const char *pin_root;
	bool json, watch, bpftool, from_bpftool;
	__u32 interval_ms, count;
};

static const struct vg_opt status_opts[] = {
	{ VG_OPT_JSON(struct status_opts, json, "print one JSON object") },
	{ VG_OPT_FLAG('w', "watch", struct status_opts, watch,
		      "refresh a terminal view: the fleet's counts and rates, the agents that "
		      "changed last (Ctrl-C ends it)") },
	{ VG_OPT_UINT(0, "interval-ms", struct status_opts, interval_ms, 100, 3600000, "MS",
		      "--watch: time between refreshes") },
	{ VG_OPT_UINT(0, "count", struct status_opts, count, 1, 1000000, "N",
		      "--watch: stop after N refreshes"), .zero = "until Ctrl-C" },
	{ VG_OPT_FLAG(0, "bpftool", struct status_opts, bpftool,
		      "print the bpftool commands that look up the slots in use "
		      "(registered agents, leases), for `| sh`") },
	{ VG_OPT_FLAG(0, "from-bpftool", struct status_opts, from_bpftool,
		      "read bpftool map output on stdin and write it back with each monotonic "
		      "time (*_ns) also as UTC and age") },
	{ VG_OPT_PIN_ROOT(struct status_opts, pin_root) },
	{}
};

static const struct status_opts status_defaults = { .pin_root = VIGIL_DEFAULT_PIN_ROOT,
						     .interval_ms = 1000 };

/* One view at a time; --interval-ms and --count only with --watch. */
static int status_usage_ok(const struct vg_parsed *p, const struct status_opts *o)
{
	if (o->json + o->watch + o->bpftool + o->from_bpftool > 1) {
		pr_warn("status: give one of --json, --watch, --bpftool, --from-bpftool\n");
		return 0;
	}
	if (!o->watch && (vg_opt_given(p, &o->interval_ms) || vg_opt_given(p, &o->count))) {
		pr_warn("status: --interval-ms and --count go with --watch\n");
		return 0;
	}
	return 1;
}

static int status_run(const struct vg_parsed *p)
{
	const struct status_opts *o = p->opts;
	struct snapshot *sn;
	int ret;

	if (!status_usage_ok(p, o))
		return 2;
	if (o->watch)
		return status_watch(o->pin_root, o->interval_ms, o->count);
	if (o->bpftool)
		return status_bpftool(o->pin_root);
	if (o->from_bpftool)
		return status_from_bpftool(stdin, stdout);
	sn = calloc(1, sizeof(*sn));
	if (!sn)
		return 1;
	ret = read_snapshot(o->pin_root, sn);
	if (!ret && o->json)
		print_json(sn);
	else if (!ret)
		print_text(sn);
	free(sn->rows.v);
	free(sn);
	return ret;
}

const struct vg_cmd cli_status = {
	VG_CMD("status", "every agent's state and counters, from the pinned maps",
	       "Every agent's state, age since its last beat, sequence, interval and counters, "
	       "and the monitor's own health, read from the pinned maps: it works while the "
	       "daemon is down. --watch refreshes a view for the SRE on call; --bpftool and "
	       "--from-bpftool read the raw maps with bpftool, only the slots in use, with "
	       "times readable (docs/maps.md).", "  vigil status\n"
	       "  vigil status --json | jq '.agents[] | select(.state != \"alive\")'\n"
	       "  vigil status --watch\n"
	       "  vigil status --bpftool | sh | vigil status --from-bpftool\n"
	       "  bpftool map dump pinned /sys/fs/bpf/vigil/vigil_leases | vigil status --from-bpftool\n"),
	.opts = status_opts, .size = sizeof(struct status_opts), .defaults = &status_defaults,
	.run = status_run,
};
