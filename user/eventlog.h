/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * The daemon's durable record of events: one JSON object per line, appended
 * and fdatasync'ed after every batch (docs/operations.md). On open it is read
 * back so that an event already recorded is never written twice and the
 * daemon knows, per agent, the last transition it recorded.
 */
#ifndef VIGIL_EVENTLOG_H
#define VIGIL_EVENTLOG_H

#include <stdbool.h>
#include <stdio.h>
#include "vigil/maps.h"
#include "u64map.h"

struct vg_eventlog {
	FILE *f;
	const char *path;
	struct u64map seen;      /* event_seq -> 1 */
	struct u64map agent_last; /* agent_id -> (event_seq << 3 | state) */
	__u64 max_seq;
	__u64 written;
	bool dirty;
};

/* What is printed beside the raw record. */
struct vg_event_view {
	const struct vigil_event *e;
	const char *name;
	const char *group;
	__u64 deadline_ns; /* the deadline a SUSPECT/DEAD event answered; 0 = none */
	bool reconciled;   /* recovered from the maps, not from the ring buffer */
};

int vg_eventlog_open(struct vg_eventlog *log, const char *path);
void vg_eventlog_close(struct vg_eventlog *log);
bool vg_eventlog_has(const struct vg_eventlog *log, __u64 event_seq);
/* Last recorded (event_seq, state) of an agent; false if none. */
bool vg_eventlog_agent_last(const struct vg_eventlog *log, __u64 agent_id, __u64 *seq, __u32 *state);
/* Record an event (skipped if already recorded). Returns 1 if written. */
int vg_eventlog_append(struct vg_eventlog *log, const struct vg_event_view *v);
/* Flush and fdatasync what was appended since the last call. */
int vg_eventlog_sync(struct vg_eventlog *log);
/* The JSON line format shared by the log, stdout and `vigil events`. */
void vg_event_print_json(FILE *f, const struct vg_event_view *v);

#endif
