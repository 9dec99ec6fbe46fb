/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * What the daemon does about a transition (docs/operations.md):
 *
 *  - Alert: SUSPECT (warning), DEAD (critical), RECOVERED (resolved) — unless
 *    the agent is flapping.
 *  - Flap damping, in the spirit of BGP route-flap damping (RFC 2439): each
 *    transition adds a penalty that decays exponentially; above `suppress`
 *    the agent's alerts are withheld, below `reuse` they flow again. Both
 *    edges are recorded as notices; on release the current state is alerted
 *    if it differs from the last one alerted.
 *  - Remediation: while an agent is DEAD an exec hook is retried with
 *    exponential backoff and full jitter, per agent, up to a cap.
 *
 * Pure bookkeeping with the time passed in, so it can be tested exactly.
 * Nothing here blocks: running the hook is the caller's (asynchronous) job.
 */
#ifndef VIGIL_POLICY_H
#define VIGIL_POLICY_H

#include <stdbool.h>
#include <linux/types.h>
#include "common/u64map.h"

struct vg_policy_cfg {
	__u32 penalty;        /* added per transition */
	__u32 suppress;       /* suppress alerts above this */
	__u32 reuse;          /* release below this */
	__u32 max_penalty;    /* ceiling, bounds the longest suppression */
	__u64 half_life_ns;
	__u32 remediate_max;  /* attempts per DEAD episode (0: no remediation) */
	__u64 remediate_base_ns;
	__u64 remediate_cap_ns;
};

void vg_policy_cfg_default(struct vg_policy_cfg *c);

struct vg_agent_policy {
	double penalty;       /* as of `updated_ns` */
	__u64 updated_ns;
	bool suppressed;
	__u32 last_alerted;   /* enum vigil_event_kind of the last alert sent, 0 = none */
	__u32 pending_kind;   /* kind withheld while suppressed, 0 = none */
	bool dead;            /* remediation episode open */
	__u32 attempts;       /* remediation attempts in this episode */
	__u64 next_attempt_ns;
};

struct vg_policy {
	struct vg_policy_cfg cfg;
	struct vg_idtab agents; /* agent id -> struct vg_agent_policy */
	size_t n_suppressed;    /* agents whose alerts are withheld now */
	__u64 (*rand64)(void); /* jitter source; tests replace it */
};

/* What to do about one event. */
struct vg_policy_decision {
	bool alert;        /* enqueue an alert for this event */
	bool suppressed;   /* this event started a suppression (record a notice) */
};

int vg_policy_init(struct vg_policy *p, const struct vg_policy_cfg *cfg);
void vg_policy_free(struct vg_policy *p);
/* Only the current penalty, decayed to now (for tests and metrics). */
double vg_policy_penalty(struct vg_policy *p, __u64 agent_id, __u64 now_ns);
/* A transition of `kind` (enum vigil_event_kind) happened to an agent. */
struct vg_policy_decision vg_policy_on_event(struct vg_policy *p, __u64 agent_id, __u32 kind,
					     __u64 now_ns);

/* A RECOVERED showed its SUSPECT (and DEAD: false_verdicts 2) false: the beat
 * was sent in time and arrived late (cause monitor_delay). Their penalty is
 * taken back and no remediation runs; the alert resolves only what was
 * alerted. */
struct vg_policy_decision vg_policy_on_correction(struct vg_policy *p, __u64 agent_id,
						 __u32 false_verdicts, __u64 now_ns);

/* Periodic work, one agent per call. Returns:
 *  VG_POLICY_RELEASE (flapping ended; *kind = state to alert, 0 = none),
 *  VG_POLICY_REMEDIATE (run the hook now; *attempt = its number),
 *  VG_POLICY_NOTHING when nothing more is due. `cursor` walks the agents. */
enum vg_policy_due { VG_POLICY_NOTHING = 0, VG_POLICY_RELEASE, VG_POLICY_REMEDIATE };
enum vg_policy_due vg_policy_next_due(struct vg_policy *p, __u64 now_ns, size_t *cursor,
				      __u64 *agent_id, __u32 *kind, __u32 *attempt);
/* The hook for an agent finished at now_ns; success ends the episode,
 * failure schedules the next attempt after a fully jittered backoff. */
void vg_policy_remediation_done(struct vg_policy *p, __u64 agent_id, bool success, __u64 now_ns);

#endif
