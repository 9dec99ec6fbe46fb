// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
#include <stdlib.h>
#include <string.h>
#include "vigil/wire.h"
#include "common/event.h"
#include "common/json.h"
#include "common/log.h"
#include "common/util.h"

static const char *const state_names[] = {
	[VIGIL_AGENT_FREE] = "free",	   [VIGIL_AGENT_NEW] = "new",
	[VIGIL_AGENT_ALIVE] = "alive",	   [VIGIL_AGENT_SUSPECT] = "suspect",
	[VIGIL_AGENT_DEAD] = "dead",	   [VIGIL_AGENT_LEFT] = "left",
};

static const char *const kind_names[] = {
	[VIGIL_EV_UP] = "up",
	[VIGIL_EV_SUSPECT] = "suspect",
	[VIGIL_EV_DEAD] = "dead",
	[VIGIL_EV_RECOVERED] = "recovered",
	[VIGIL_EV_RESTART] = "restart",
	[VIGIL_EV_LEFT] = "left",
	[VIGIL_EV_REJECTED] = "rejected",
	[VIGIL_EV_LEASE_EXPIRED] = "lease_expired",
	[VIGIL_EV_LEASE_RELEASED] = "lease_released",
	[VIGIL_EV_MONITOR_BEHIND] = "monitor_behind",
	[VIGIL_EV_MONITOR_CAUGHT_UP] = "monitor_caught_up",
};

static const char *const part_names[] = {
	[0] = "",
	[VIGIL_PART_RXQ] = "receive_queue",
	[VIGIL_PART_SWEEPER] = "sweeper",
};

static const char *const lease_state_names[] = {
	[VIGIL_LEASE_FREE] = "free",
	[VIGIL_LEASE_HELD] = "held",
	[VIGIL_LEASE_EXPIRED] = "expired",
	[VIGIL_LEASE_RELEASED] = "released",
};

static const char *const reason_names[] = {
	[VIGIL_REJECT_NONE] = "",
	[VIGIL_REJECT_MALFORMED] = "malformed",
	[VIGIL_REJECT_BAD_VERSION] = "bad_version",
	[VIGIL_REJECT_UNKNOWN_AGENT] = "unknown_agent",
	[VIGIL_REJECT_NOT_ALLOWED] = "not_allowed",
	[VIGIL_REJECT_UNAUTHENTICATED] = "unauthenticated",
	[VIGIL_REJECT_BAD_TAG] = "bad_tag",
	[VIGIL_REJECT_REPLAY] = "replay",
	[VIGIL_REJECT_OVER_RATE_AGENT] = "over_rate_agent",
	[VIGIL_REJECT_OVER_RATE_SOURCE] = "over_rate_source",
	[VIGIL_REJECT_MAPPED_SOURCE] = "mapped_source",
};

static const char *const status_names[] = {
	[VIGIL_STATUS_OK] = "ok",
	[VIGIL_STATUS_DEGRADED] = "degraded",
	[VIGIL_STATUS_DRAINING] = "draining",
	[VIGIL_STATUS_LEAVING] = "leaving",
};

const char *vg_state_name(__u32 state)
{
	return state <= VIGIL_AGENT_STATE_MAX ? state_names[state] : "invalid";
}

const char *vg_lease_state_name(__u32 state)
{
	return state <= VIGIL_LEASE_STATE_MAX ? lease_state_names[state] : "invalid";
}

bool vg_kind_is_lease(__u32 kind)
{
	return kind == VIGIL_EV_LEASE_EXPIRED || kind == VIGIL_EV_LEASE_RELEASED;
}

bool vg_kind_is_monitor(__u32 kind)
{
	return kind == VIGIL_EV_MONITOR_BEHIND || kind == VIGIL_EV_MONITOR_CAUGHT_UP;
}

bool vg_kind_changes_agent(__u32 kind)
{
	return kind != VIGIL_EV_REJECTED && !vg_kind_is_lease(kind) && !vg_kind_is_monitor(kind);
}

const char *vg_part_name(__u32 part)
{
	return part <= VIGIL_PART_SWEEPER ? part_names[part] : "invalid";
}

const char *vg_event_state_name(__u32 kind, __u32 state)
{
	if (vg_kind_is_monitor(kind))
		return vg_part_name(state);
	return vg_kind_is_lease(kind) ? vg_lease_state_name(state) : vg_state_name(state);
}

const char *vg_status_name(__u32 status)
{
	return status <= VIGIL_STATUS_MAX ? status_names[status] : "invalid";
}

const char *vg_kind_name(__u32 kind)
{
	return kind >= 1 && kind <= VIGIL_EV_KIND_MAX ? kind_names[kind] : "invalid";
}

const char *vg_reason_name(__u32 reason)
{
	return reason <= VIGIL_REJECT_REASON_MAX ? reason_names[reason] : "invalid";
}

__u32 vg_name_to(const char *s, const char *(*namer)(__u32), __u32 max)
{
	for (__u32 i = 0; s && i <= max; i++)
		if (!strcmp(s, namer(i)))
			return i;
	return 0;
}

/* How a verdict was reached (vigil_event.flags), and the monitor's own
 * health events: docs/operations.md explains each field. */
static void verdict_notes(struct vg_json *j, const struct vigil_event *e)
{
	if (vg_kind_is_monitor(e->kind)) {
		if (e->state == VIGIL_PART_RXQ)
			vg_json_u64_field(j, "queue", e->slot);
		if (e->kind == VIGIL_EV_MONITOR_BEHIND) {
			vg_json_u64_field(j, "behind_us", e->aux_ns / 1000);
		} else {
			vg_json_u64_field(j, "behind_max_us", e->aux_ns / 1000);
			vg_json_double_field(j, "duration_ms", "%.1f",
					     (double)(e->detected_ns - e->last_seen_ns) / 1e6);
		}
		return;
	}
	if (e->flags & VIGIL_EVF_HELD)
		vg_json_u64_field(j, "held_us", e->aux_ns / 1000);
	if (e->flags & VIGIL_EVF_RX_UNVERIFIED)
		vg_json_bool_field(j, "unverified", true);
	if (e->flags & VIGIL_EVF_MONITOR_BEHIND)
		vg_json_bool_field(j, "monitor_behind", true);
	if (e->flags & VIGIL_EVF_BY_BEAT)
		vg_json_str_field(j, "decided_by", "beat");
	if (e->kind == VIGIL_EV_RECOVERED) {
		vg_json_str_field(j, "cause", e->flags & VIGIL_EVF_MONITOR_DELAY ? "monitor_delay" :
					      e->flags & VIGIL_EVF_BEATS_LOST ? "beats_lost" : "agent");
		if (e->flags & (VIGIL_EVF_MONITOR_DELAY | VIGIL_EVF_BEATS_LOST))
			vg_json_u64_field(j, "sent_ns", e->aux_ns);
	} else if (e->flags & VIGIL_EVF_BEATS_LOST) {
		vg_json_bool_field(j, "queue_losing", true);
	}
}

void vg_event_json(struct vg_json *j, const struct vg_event_view *v)
{
	const struct vigil_event *e = v->e;
	char when[40], inst[17];

	vg_fmt_wall(v->detected_wall_ns ? v->detected_wall_ns : vg_mono_to_wall(e->detected_ns), when,
		    sizeof(when));
	snprintf(inst, sizeof(inst), "%016llx", (unsigned long long)v->instance_id);
	vg_json_obj(j);
	vg_json_u64_field(j, "event_seq", e->event_seq);
	vg_json_u64_field(j, "agent_id", e->agent_id);
	vg_json_str_field(j, "kind", vg_kind_name(e->kind));
	vg_json_str_field(j, "state", vg_event_state_name(e->kind, e->state));
	vg_json_str_field(j, "prev_state", vg_event_state_name(e->kind, e->prev_state));
	vg_json_str_field(j, "name", v->name ? v->name : "");
	vg_json_str_field(j, "group", v->group ? v->group : "");
	vg_json_s64_field(j, "slot", e->slot == 0xffffffffu ? -1 : (__s64)e->slot);
	vg_json_u64_field(j, "seq", e->seq);
	vg_json_u64_field(j, "incarnation", e->incarnation);
	vg_json_u64_field(j, "interval_ms", e->interval_ms);
	vg_json_u64_field(j, "last_seen_ns", e->last_seen_ns);
	vg_json_u64_field(j, "detected_ns", e->detected_ns);
	if (v->deadline_ns) {
		vg_json_u64_field(j, "deadline_ns", v->deadline_ns);
		vg_json_s64_field(j, "late_us", (__s64)(e->detected_ns - v->deadline_ns) / 1000);
	}
	verdict_notes(j, e);
	if (e->kind == VIGIL_EV_REJECTED) {
		char src[64];

		vg_fmt_addr(e->src_addr, src, sizeof(src));
		vg_json_str_field(j, "reason", vg_reason_name(e->reason));
		vg_json_str_field(j, "source", src);
		if (v->seq_last) {
			vg_json_u64_field(j, "event_seq_last", v->seq_last);
			vg_json_u64_field(j, "count", v->seq_last - e->event_seq + 1);
			vg_json_u64_field(j, "last_detected_ns", e->aux_ns);
			if (v->open)
				vg_json_bool_field(j, "open", true);
		}
	}
	if (vg_kind_is_lease(e->kind)) {
		vg_json_u64_field(j, "lease_id", e->slot);
		vg_json_u64_field(j, "token", e->seq);
	}
	vg_json_str_field(j, "time", when);
	vg_json_str_field(j, "instance", inst);
	vg_json_bool_field(j, "reconciled", v->reconciled);
	vg_json_close(j);
}

void vg_event_print_json(FILE *f, const struct vg_event_view *v)
{
	struct vg_json j;

	vg_json_begin(&j, f);
	vg_event_json(&j, v);
	vg_json_end(&j);
}

char *vg_event_json_line(const struct vg_event_view *v, size_t *len_out)
{
	struct vg_json j;
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	if (!f)
		return NULL;
	vg_json_begin(&j, f);
	vg_event_json(&j, v);
	if (fclose(f)) {
		free(buf);
		return NULL;
	}
	if (len_out)
		*len_out = len;
	return buf;
}
