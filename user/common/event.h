/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * Events as people and programs read them: the names of states, kinds,
 * reasons and statuses, and the one JSON line of an event, printed by the
 * daemon (stdout, --events-file), `vigil events`, `vigil log query --json`,
 * the alert payloads and the NATS export alike (docs/operations.md).
 */
#ifndef VIGIL_EVENT_H
#define VIGIL_EVENT_H

#include <stdbool.h>
#include <stdio.h>
#include <linux/types.h>
#include "vigil/maps.h"

const char *vg_state_name(__u32 state);
const char *vg_kind_name(__u32 kind);
const char *vg_lease_state_name(__u32 state);
/* Lease events carry the lease id in `slot`, the token in `seq` and lease
 * states in state/prev_state. */
bool vg_kind_is_lease(__u32 kind);
/* MONITOR_BEHIND/CAUGHT_UP: the monitor's own health; `state` is the part. */
bool vg_kind_is_monitor(__u32 kind);
const char *vg_part_name(__u32 part);
/* Does an event of this kind record an agent's state (not REJECTED/lease/monitor)? */
bool vg_kind_changes_agent(__u32 kind);
/* Name of an event's state fields, agent or lease states by kind. */
const char *vg_event_state_name(__u32 kind, __u32 state);
const char *vg_status_name(__u32 status);
const char *vg_reason_name(__u32 reason);
/* The number whose name namer() gives (0 if none up to max): reads the
 * names the log stores back into enum values. */
__u32 vg_name_to(const char *s, const char *(*namer)(__u32), __u32 max);

/* What is printed and stored beside the raw record. */
struct vg_event_view {
	const struct vigil_event *e;
	const char *name;
	const char *group;
	__u64 deadline_ns; /* the deadline a SUSPECT/DEAD event answered; 0 = none */
	bool reconciled;   /* recovered from the maps, not from the ring buffer */
	__u64 instance_id; /* printed so consumers can tell instances apart */
	__u64 detected_wall_ns; /* printed as "time"; 0: derived from e->detected_ns now */
	/* A row of rejections (REJECTED): the last event_seq it covers, 0 for
	 * one event; still growing (the daemon may add to it). */
	__u64 seq_last;
	bool open;
};

struct vg_json;
/* An event as a JSON object, into a document being written... */
void vg_event_json(struct vg_json *j, const struct vg_event_view *v);
/* ... or as one JSON line of its own (the log's, the stream's, a webhook's). */
void vg_event_print_json(FILE *f, const struct vg_event_view *v);
/* The same line in memory, without the newline (malloc'd; NULL: no memory):
 * a webhook body, an export payload. */
char *vg_event_json_line(const struct vg_event_view *v, size_t *len);

#endif
