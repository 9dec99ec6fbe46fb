/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * The daemon's reaction to a recorded event: the policy (policy.h) decides,
 * this carries it out — alerts into the outbox (alert.h), notices into the
 * log, and the remediation hook as a child process that is never waited
 * for, so nothing here can delay the ring-buffer consumer.
 */
#ifndef VIGIL_ESCALATE_H
#define VIGIL_ESCALATE_H

#include <getopt.h>
#include <sys/types.h>
#include "alert.h"
#include "dstats.h"
#include "eventlog.h"
#include "instance.h"
#include "policy.h"

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

enum {
	VG_ESC_OPT_FIRST = 0x4300,
	VG_ESC_OPT_HALF_LIFE = VG_ESC_OPT_FIRST,
	VG_ESC_OPT_SUPPRESS,
	VG_ESC_OPT_REUSE,
	VG_ESC_OPT_REMEDIATE,
	VG_ESC_OPT_REMEDIATE_MAX,
	VG_ESC_OPT_REMEDIATE_BACKOFF,
	VG_ESC_OPT_REMEDIATE_TIMEOUT,
	VG_ESC_OPT_LAST = VG_ESC_OPT_REMEDIATE_TIMEOUT,
};

#define VG_ESC_LONGOPTS                                                                     \
	{ "flap-half-life-s", required_argument, NULL, VG_ESC_OPT_HALF_LIFE },             \
	{ "flap-suppress", required_argument, NULL, VG_ESC_OPT_SUPPRESS },                 \
	{ "flap-reuse", required_argument, NULL, VG_ESC_OPT_REUSE },                       \
	{ "remediate", required_argument, NULL, VG_ESC_OPT_REMEDIATE },                    \
	{ "remediate-max", required_argument, NULL, VG_ESC_OPT_REMEDIATE_MAX },            \
	{ "remediate-backoff-ms", required_argument, NULL, VG_ESC_OPT_REMEDIATE_BACKOFF }, \
	{ "remediate-timeout-s", required_argument, NULL, VG_ESC_OPT_REMEDIATE_TIMEOUT }

#define VG_ESC_USAGE                                                                        \
	"      --flap-half-life-s N  flap penalty half-life (default 60)\n"                  \
	"      --flap-suppress N    withhold an agent's alerts above this penalty; each\n"   \
	"                           SUSPECT, DEAD or RECOVERED adds 1000 (default 5000)\n"   \
	"      --flap-reuse N       release below this penalty (default 1500)\n"             \
	"      --remediate CMD      while an agent is DEAD, run CMD (/bin/sh -c, agent in\n" \
	"                           VIGIL_AGENT_ID/NAME/GROUP, VIGIL_ATTEMPT) until it\n"     \
	"                           exits 0, with full-jitter exponential backoff\n"        \
	"      --remediate-max N    attempts per DEAD episode (default 5)\n"                 \
	"      --remediate-backoff-ms BASE[,CAP]  (default 1000,60000)\n"                    \
	"      --remediate-timeout-s N  kill a hook still running after N s (default 30)\n"

void vg_escalation_defaults(struct vg_escalation *x);
int vg_escalation_parse_opt(struct vg_escalation *x, int opt, const char *arg);
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
