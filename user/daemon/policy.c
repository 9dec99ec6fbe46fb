// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include "vigil/maps.h"
#include "common/util.h"
#include "daemon/policy.h"

void vg_policy_cfg_default(struct vg_policy_cfg *c)
{
	/* One DEAD episode is three transitions (SUSPECT, DEAD, RECOVERED):
	 * 3000. Suppressing above 5000 lets one episode, or a second short
	 * blip, through, and catches an agent that goes down twice within
	 * about a half-life. Release at 1500: about two half-lives of calm
	 * after the last flap. The 16000 ceiling bounds the longest
	 * suppression to about 3.4 half-lives (log2(16000/1500)) of calm. */
	c->penalty = 1000;
	c->suppress = 5000;
	c->reuse = 1500;
	c->max_penalty = 16000;
	c->half_life_ns = 60ull * 1000000000ull;
	c->remediate_max = 0;
	c->remediate_base_ns = 1000000000ull;
	c->remediate_cap_ns = 60ull * 1000000000ull;
}

static __u64 urandom64(void)
{
	__u64 v = 0;

	if (getrandom(&v, sizeof(v), 0) != sizeof(v))
		v = (__u64)random() << 32 | (__u64)random();
	return v;
}

int vg_policy_init(struct vg_policy *p, const struct vg_policy_cfg *cfg)
{
	memset(p, 0, sizeof(*p));
	p->cfg = *cfg;
	p->agents.size = sizeof(struct vg_agent_policy);
	p->rand64 = urandom64;
	return 0;
}

void vg_policy_free(struct vg_policy *p)
{
	vg_idtab_free(&p->agents);
	memset(p, 0, sizeof(*p));
}

static struct vg_agent_policy *agent(struct vg_policy *p, __u64 id)
{
	return vg_idtab_add(&p->agents, id);
}

static void decay(const struct vg_policy_cfg *c, struct vg_agent_policy *a, __u64 now)
{
	if (now > a->updated_ns && a->penalty > 0)
		a->penalty *= exp2(-(double)(now - a->updated_ns) / (double)c->half_life_ns);
	a->updated_ns = now;
}

double vg_policy_penalty(struct vg_policy *p, __u64 agent_id, __u64 now_ns)
{
	struct vg_agent_policy *a = agent(p, agent_id);

	if (!a)
		return 0;
	decay(&p->cfg, a, now_ns);
	return a->penalty;
}

static bool alerting_kind(__u32 kind)
{
	return kind == VIGIL_EV_SUSPECT || kind == VIGIL_EV_DEAD || kind == VIGIL_EV_RECOVERED;
}

struct vg_policy_decision vg_policy_on_event(struct vg_policy *p, __u64 agent_id, __u32 kind,
					     __u64 now_ns)
{
	struct vg_policy_decision d = {};
	struct vg_agent_policy *a;

	if (!alerting_kind(kind) || !(a = agent(p, agent_id)))
		return d;
	decay(&p->cfg, a, now_ns);
	a->penalty += p->cfg.penalty;
	if (a->penalty > p->cfg.max_penalty)
		a->penalty = p->cfg.max_penalty;
	if (!a->suppressed && a->penalty > p->cfg.suppress) {
		a->suppressed = true;
		p->n_suppressed++;
		d.suppressed = true;
	}
	if (a->suppressed) {
		a->pending_kind = kind;
	} else {
		d.alert = true;
		a->last_alerted = kind;
	}
	/* Remediation follows the state, suppressed or not. */
	if (kind == VIGIL_EV_DEAD && p->cfg.remediate_max) {
		a->dead = true;
		a->attempts = 0;
		/* A hook of an earlier episode still running reports back first
		 * (vg_policy_remediation_done): one hook per agent at a time. */
		if (a->next_attempt_ns != UINT64_MAX)
			a->next_attempt_ns = now_ns;
	} else if (kind == VIGIL_EV_RECOVERED) {
		a->dead = false;
	}
	return d;
}

struct vg_policy_decision vg_policy_on_correction(struct vg_policy *p, __u64 agent_id,
						 __u32 false_verdicts, __u64 now_ns)
{
	struct vg_policy_decision d = {};
	struct vg_agent_policy *a = agent(p, agent_id);

	if (!a)
		return d;
	decay(&p->cfg, a, now_ns);
	/* The verdicts were never the agent's: take their penalty back. */
	a->penalty -= (double)false_verdicts * p->cfg.penalty;
	if (a->penalty < 0)
		a->penalty = 0;
	a->dead = false;
	/* Only what was alerted needs resolving. */
	if (a->suppressed) {
		if (a->pending_kind)
			a->pending_kind = VIGIL_EV_RECOVERED;
	} else if (a->last_alerted == VIGIL_EV_SUSPECT || a->last_alerted == VIGIL_EV_DEAD) {
		d.alert = true;
		a->last_alerted = VIGIL_EV_RECOVERED;
	}
	return d;
}

/* Full jitter (AWS architecture blog, "Exponential Backoff And Jitter"):
 * a uniformly random wait in [0, min(cap, base * 2^attempt)]. */
static __u64 full_jitter(struct vg_policy *p, __u32 attempt)
{
	__u64 ceiling = p->cfg.remediate_base_ns;

	for (__u32 i = 0; i < attempt && ceiling < p->cfg.remediate_cap_ns; i++)
		ceiling *= 2;
	if (ceiling > p->cfg.remediate_cap_ns)
		ceiling = p->cfg.remediate_cap_ns;
	return p->rand64() % (ceiling + 1);
}

enum vg_policy_due vg_policy_next_due(struct vg_policy *p, __u64 now_ns, size_t *cursor,
				      __u64 *agent_id, __u32 *kind, __u32 *attempt)
{
	for (; *cursor < p->agents.n; (*cursor)++) {
		struct vg_agent_policy *a = vg_idtab_row(&p->agents, *cursor);

		if (a->suppressed) {
			decay(&p->cfg, a, now_ns);
			if (a->penalty < p->cfg.reuse) {
				a->suppressed = false;
				p->n_suppressed--;
				*agent_id = p->agents.ids[*cursor];
				*kind = a->pending_kind && a->pending_kind != a->last_alerted ?
						a->pending_kind : 0;
				if (*kind)
					a->last_alerted = *kind;
				a->pending_kind = 0;
				(*cursor)++;
				return VG_POLICY_RELEASE;
			}
		}
		if (a->dead && a->attempts < p->cfg.remediate_max && now_ns >= a->next_attempt_ns &&
		    a->next_attempt_ns != UINT64_MAX) {
			*agent_id = p->agents.ids[*cursor];
			*attempt = ++a->attempts;
			/* Until the hook reports back, nothing else is due. */
			a->next_attempt_ns = UINT64_MAX;
			(*cursor)++;
			return VG_POLICY_REMEDIATE;
		}
	}
	return VG_POLICY_NOTHING;
}

void vg_policy_remediation_done(struct vg_policy *p, __u64 agent_id, bool success, __u64 now_ns)
{
	struct vg_agent_policy *a = vg_idtab_get(&p->agents, agent_id);

	if (!a)
		return;
	if (!a->dead) {
		a->next_attempt_ns = 0;
		return;
	}
	if (!a->attempts) {
		/* The hook was an earlier episode's (the agent died again while
		 * it ran): this episode's first attempt is due now. */
		a->next_attempt_ns = now_ns;
		return;
	}
	if (success) {
		a->dead = false;
		a->next_attempt_ns = 0;
		return;
	}
	a->next_attempt_ns = now_ns + full_jitter(p, a->attempts);
}
