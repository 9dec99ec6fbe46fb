/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * The daemon's reaction to a recorded event: the policy (policy.h) decides,
 * this carries it out — alerts into the outbox (alert.h), notices into the
 * log, and the remediation hook as a child process that is never waited
 * for, so nothing here can delay the ring-buffer consumer.
 */
#ifndef VIGIL_ESCALATE_H
#define VIGIL_ESCALATE_H

#include <sys/types.h>
#include "daemon/alert.h"
#include "daemon/dstats.h"
#include "common/eventlog.h"
#include "common/instance.h"
#include "daemon/policy.h"

struct vg_remedy {
	__u64 agent_id;
	pid_t pid;
	__u64 started_ns;
};

struct vg_escalation {
	struct vg_policy_cfg pcfg;
	struct vg_policy policy;
	const char *remediate_cmd;  /* NULL: no remediation */
	__u64 remediate_timeout_ns;
	struct vg_remedy *running;
	size_t n_running, cap_running;
	/* Borrowed from the daemon. */
	struct vg_eventlog *log;
	const struct vg_alert_cfg *acfg;
	struct vg_daemon_stats *ds;
	const struct vg_maps *maps;
	bool quiet;
	bool shadow;                /* record what would be done, do nothing */
};

void vg_escalation_defaults(struct vg_escalation *x);
int vg_escalation_start(struct vg_escalation *x, struct vg_eventlog *log,
			const struct vg_alert_cfg *acfg, struct vg_daemon_stats *ds,
			const struct vg_maps *maps, bool quiet);
void vg_escalation_stop(struct vg_escalation *x);
/* A newly recorded event: alert it unless the agent is flapping. Called in
 * the event's transaction, so its alert is exactly as durable as the event. */
void vg_escalation_on_event(struct vg_escalation *x, const struct vg_event_view *v);
/* Releases, remediation attempts, reaping hooks. Cheap; call every loop. */
void vg_escalation_tick(struct vg_escalation *x);

#endif
