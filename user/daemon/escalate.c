// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
#include <errno.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <stdatomic.h>
#include <sqlite3.h>
#include "daemon/escalate.h"
#include "common/json.h"
#include "common/log.h"
#include "common/registry.h"
#include "common/event.h"
#include "common/util.h"

extern char **environ;

void vg_escalation_defaults(struct vg_escalation *x)
{
	memset(x, 0, sizeof(*x));
	vg_policy_cfg_default(&x->pcfg);
	x->pcfg.remediate_max = 5; /* with --remediate; vg_escalation_start() zeroes it without */
	x->remediate_timeout_ns = 30 * VIGIL_NSEC_PER_SEC;
}


int vg_escalation_start(struct vg_escalation *x, struct vg_eventlog *log,
			const struct vg_alert_cfg *acfg, struct vg_daemon_stats *ds,
			const struct vg_maps *maps, bool quiet)
{
	if (x->pcfg.reuse >= x->pcfg.suppress) {
		pr_warn("--flap-reuse (%u) must be below --flap-suppress (%u)\n", x->pcfg.reuse,
			x->pcfg.suppress);
		return -1;
	}
	if (!x->remediate_cmd)
		x->pcfg.remediate_max = 0;
	x->log = log;
	x->acfg = acfg;
	x->ds = ds;
	x->maps = maps;
	x->quiet = quiet;
	return vg_policy_init(&x->policy, &x->pcfg);
}

void vg_escalation_stop(struct vg_escalation *x)
{
	/* Hooks still running are left to finish on their own; they are not
	 * the daemon's to kill on a restart. */
	vg_policy_free(&x->policy);
	free(x->running);
	x->running = NULL;
	x->n_running = 0;
}

static void notice(struct vg_escalation *x, __u64 agent_id, const char *kind, const char *detail)
{
	if (vg_eventlog_notice(x->log, agent_id, kind, detail))
		atomic_fetch_add(&x->ds->log_errors, 1);
	if (!x->quiet) {
		struct vg_json j;

		vg_json_begin(&j, stdout);
		vg_json_obj(&j);
		vg_json_str_field(&j, "notice", kind);
		vg_json_u64_field(&j, "agent_id", agent_id);
		vg_json_str_field(&j, "detail", detail);
		vg_json_end(&j);
	}
}

static void enqueue(struct vg_escalation *x, const struct vg_event_view *v)
{
	int queued;

	if (x->shadow) {
		char what[96];

		snprintf(what, sizeof(what), "shadow: would alert %s (event %llu)",
			 vg_kind_name(v->e->kind), (unsigned long long)v->e->event_seq);
		notice(x, v->e->agent_id, "would_alert", what);
		return;
	}
	queued = vg_alert_enqueue(x->log->db, x->acfg, x->log->instance_id, v);

	if (queued > 0)
		atomic_fetch_add(&x->ds->alerts_enqueued, queued);
}

void vg_escalation_on_event(struct vg_escalation *x, const struct vg_event_view *v)
{
	const struct vigil_event *e = v->e;
	struct vg_policy_decision d;

	if (e->kind == VIGIL_EV_RECOVERED && (e->flags & VIGIL_EVF_MONITOR_DELAY)) {
		/* A false verdict undone: not the agent's failure, not a flap. */
		d = vg_policy_on_correction(&x->policy, e->agent_id,
					    e->prev_state == VIGIL_AGENT_DEAD ? 2 : 1, vg_mono_ns());
		if (d.alert)
			enqueue(x, v);
		return;
	}
	d = vg_policy_on_event(&x->policy, e->agent_id, e->kind, vg_mono_ns());

	if (d.suppressed)
		notice(x, v->e->agent_id, "suppressed",
		       "flapping: alerts withheld until the agent is stable");
	if (d.alert)
		enqueue(x, v);
	else if (v->e->kind == VIGIL_EV_SUSPECT || v->e->kind == VIGIL_EV_DEAD ||
		 v->e->kind == VIGIL_EV_RECOVERED)
		atomic_fetch_add(&x->ds->alerts_suppressed, 1);
}

/* On release, alert the agent's latest transition: the logged event that
 * brought it into its current state (the slot remembers its sequence), sent
 * exactly as it was recorded. */
static void alert_current(struct vg_escalation *x, __u64 agent_id)
{
	struct vigil_event e;
	struct vg_event_view v;
	struct vg_agent a;
	sqlite3_stmt *st = NULL;

	if (vg_agent_get(x->maps, agent_id, NULL, &a) || !a.i.last_event_seq)
		return;
	if (sqlite3_prepare_v2(x->log->db, "SELECT " VG_EVENT_COLS " FROM events WHERE "
					  "instance_id = ? AND event_seq = ?", -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_int64(st, 1, (sqlite3_int64)x->log->instance_id);
		sqlite3_bind_int64(st, 2, (sqlite3_int64)a.i.last_event_seq);
		if (sqlite3_step(st) == SQLITE_ROW) {
			vg_event_from_row(st, &e, &v);
			if (e.kind == VIGIL_EV_SUSPECT || e.kind == VIGIL_EV_DEAD ||
			    e.kind == VIGIL_EV_RECOVERED)
				enqueue(x, &v);
		}
	}
	sqlite3_finalize(st);
}

static void run_hook(struct vg_escalation *x, __u64 agent_id, __u32 attempt)
{
	char id[32], name[64], group[48], att[32], *envp[256];
	char *argv[] = { "/bin/sh", "-c", (char *)x->remediate_cmd, NULL };
	posix_spawnattr_t attr;
	struct vg_agent a;
	size_t n = 0;
	pid_t pid;
	int err;

	if (vg_agent_get(x->maps, agent_id, NULL, &a) || a.s.state != VIGIL_AGENT_DEAD) {
		/* Recovered, left or removed since: the episode is over. */
		vg_policy_remediation_done(&x->policy, agent_id, true, vg_mono_ns());
		return;
	}
	if (x->shadow) {
		snprintf(att, sizeof(att), "shadow: would run attempt %u", attempt);
		notice(x, agent_id, "would_remediate", att);
		vg_policy_remediation_done(&x->policy, agent_id, false, vg_mono_ns());
		return;
	}
	snprintf(id, sizeof(id), "VIGIL_AGENT_ID=%llu", (unsigned long long)agent_id);
	snprintf(name, sizeof(name), "VIGIL_AGENT_NAME=%s", a.i.name);
	snprintf(group, sizeof(group), "VIGIL_GROUP=%s", a.i.group);
	snprintf(att, sizeof(att), "VIGIL_ATTEMPT=%u", attempt);
	for (char **e = environ; *e && n < 250; e++)
		if (strncmp(*e, "VIGIL_", 6))
			envp[n++] = *e;
	envp[n++] = id;
	envp[n++] = name;
	envp[n++] = group;
	envp[n++] = att;
	envp[n] = NULL;
	posix_spawnattr_init(&attr);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
	posix_spawnattr_setpgroup(&attr, 0);
	err = posix_spawn(&pid, "/bin/sh", NULL, &attr, argv, envp);
	posix_spawnattr_destroy(&attr);
	if (err) {
		pr_warn("remediation for agent %llu: cannot run the hook: %s\n",
			(unsigned long long)agent_id, strerror(err));
		vg_policy_remediation_done(&x->policy, agent_id, false, vg_mono_ns());
		return;
	}
	if (vg_grow(&x->running, &x->cap_running, x->n_running, sizeof(*x->running), 16)) {
		kill(-pid, SIGKILL);
		waitpid(pid, NULL, 0);
		vg_policy_remediation_done(&x->policy, agent_id, false, vg_mono_ns());
		return;
	}
	x->running[x->n_running++] = (struct vg_remedy){ agent_id, pid, vg_mono_ns() };
	atomic_fetch_add(&x->ds->remediations_run, 1);
	snprintf(att, sizeof(att), "attempt %u", attempt);
	notice(x, agent_id, "remediation", att);
}

static void reap(struct vg_escalation *x, __u64 now)
{
	for (size_t i = 0; i < x->n_running;) {
		struct vg_remedy *r = &x->running[i];
		int status;
		pid_t got = waitpid(r->pid, &status, WNOHANG);

		if (got == 0 && now - r->started_ns > x->remediate_timeout_ns) {
			kill(-r->pid, SIGKILL);
			got = waitpid(r->pid, &status, 0);
			status = -1;
		}
		if (got == 0) {
			i++;
			continue;
		}
		vg_policy_remediation_done(&x->policy, r->agent_id,
					   got > 0 && status >= 0 && WIFEXITED(status) &&
						   WEXITSTATUS(status) == 0,
					   now);
		*r = x->running[--x->n_running];
	}
}

void vg_escalation_tick(struct vg_escalation *x)
{
	__u64 now = vg_mono_ns(), agent_id;
	__u32 kind, attempt;
	size_t cursor = 0;
	enum vg_policy_due due;

	reap(x, now);
	while ((due = vg_policy_next_due(&x->policy, now, &cursor, &agent_id, &kind, &attempt))) {
		if (due == VG_POLICY_RELEASE) {
			notice(x, agent_id, "released", "stable again: alerts flow");
			if (kind)
				alert_current(x, agent_id);
		} else if (due == VG_POLICY_REMEDIATE) {
			run_hook(x, agent_id, attempt);
		}
	}
	atomic_store(&x->ds->agents_flapping, x->policy.n_suppressed);
}
