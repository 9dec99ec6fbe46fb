// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
/* Host tests of the daemon's alert policy: flap damping and remediation
 * backoff (user/daemon/policy.c), with the clock and the jitter source controlled. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include "vigil/maps.h"
#include "daemon/policy.h"

static int n, failed;

static void check(int cond, const char *what)
{
	n++;
	if (!cond)
		failed++;
	printf("%s %d - %s\n", cond ? "ok" : "not ok", n, what);
}

#define SEC 1000000000ull
static __u64 jitter_value;
static __u64 fixed_rand(void)
{
	return jitter_value;
}

/* One full episode: SUSPECT, DEAD, RECOVERED, each alerted. */
static int episode(struct vg_policy *p, __u64 id, __u64 *t, int *alerts)
{
	static const __u32 kinds[] = { VIGIL_EV_SUSPECT, VIGIL_EV_DEAD, VIGIL_EV_RECOVERED };
	int suppressed = 0;

	for (int i = 0; i < 3; i++) {
		struct vg_policy_decision d = vg_policy_on_event(p, id, kinds[i], *t);

		*alerts += d.alert;
		suppressed += d.suppressed;
		*t += SEC;
	}
	return suppressed;
}

int main(void)
{
	struct vg_policy_cfg cfg;
	struct vg_policy p;
	struct vg_policy_decision d;
	__u64 t = 1000 * SEC, id, got_id;
	__u32 kind, attempt;
	size_t cursor;
	int alerts = 0, s;

	vg_policy_cfg_default(&cfg);
	vg_policy_init(&p, &cfg);

	s = episode(&p, 7, &t, &alerts);
	check(alerts == 3 && !s, "one DEAD episode alerts SUSPECT, DEAD and RECOVERED, no suppression");
	s = episode(&p, 7, &t, &alerts);
	check(s == 1, "a second episode within seconds starts a suppression, recorded once");
	check(alerts == 5, "alerts up to the threshold go out, the rest are withheld");
	d = vg_policy_on_event(&p, 7, VIGIL_EV_SUSPECT, t);
	check(!d.alert && !d.suppressed, "while suppressed: no alert, no second suppression notice");
	check(p.n_suppressed == 1, "one agent counted as suppressed");
	d = vg_policy_on_event(&p, 7, VIGIL_EV_UP, t);
	check(!d.alert, "UP, RESTART and LEFT never alert and add no penalty");
	check(vg_policy_penalty(&p, 8, t) == 0, "other agents are unaffected");

	{
		double before = vg_policy_penalty(&p, 7, t);
		double after = vg_policy_penalty(&p, 7, t + cfg.half_life_ns);

		check(fabs(after - before / 2) < 1e-6 * before, "the penalty halves every half-life");
	}
	cursor = 0;
	check(vg_policy_next_due(&p, t + cfg.half_life_ns, &cursor, &got_id, &kind, &attempt) ==
		      VG_POLICY_NOTHING, "still above the reuse threshold after one half-life");
	cursor = 0;
	check(vg_policy_next_due(&p, t + 3 * cfg.half_life_ns, &cursor, &got_id, &kind, &attempt) ==
			      VG_POLICY_RELEASE && got_id == 7,
	      "released once the penalty decays below reuse");
	check(kind == VIGIL_EV_SUSPECT, "on release the withheld current state (SUSPECT) is alerted");
	check(p.n_suppressed == 0, "a released agent is no longer counted as suppressed");
	d = vg_policy_on_event(&p, 7, VIGIL_EV_RECOVERED, t + 3 * cfg.half_life_ns);
	check(d.alert, "after release alerts flow again");

	{
		/* Penalty ceiling: a storm of flaps cannot suppress for ever. */
		__u64 t2 = t + 10 * cfg.half_life_ns;
		double worst;

		for (int i = 0; i < 1000; i++)
			vg_policy_on_event(&p, 9, VIGIL_EV_SUSPECT, t2);
		worst = vg_policy_penalty(&p, 9, t2);
		check(worst <= cfg.max_penalty, "the penalty never exceeds its ceiling");
		cursor = 0;
		id = 0;
		while (vg_policy_next_due(&p, t2 + (__u64)(ceil(log2(cfg.max_penalty / (double)cfg.reuse)) *
							   cfg.half_life_ns) + SEC,
					  &cursor, &got_id, &kind, &attempt) != VG_POLICY_NOTHING)
			id |= got_id == 9;
		check(id, "the longest suppression ends after log2(ceiling/reuse) half-lives");
	}
	vg_policy_free(&p);

	/* Remediation: retried with full-jitter exponential backoff, capped. */
	cfg.remediate_max = 4;
	cfg.remediate_base_ns = SEC;
	cfg.remediate_cap_ns = 4 * SEC;
	vg_policy_init(&p, &cfg);
	p.rand64 = fixed_rand;
	t = 5000 * SEC;
	vg_policy_on_event(&p, 3, VIGIL_EV_SUSPECT, t);
	vg_policy_on_event(&p, 3, VIGIL_EV_DEAD, t);
	cursor = 0;
	check(vg_policy_next_due(&p, t, &cursor, &got_id, &kind, &attempt) == VG_POLICY_REMEDIATE &&
		      got_id == 3 && attempt == 1, "DEAD: the hook is due at once (attempt 1)");
	cursor = 0;
	check(vg_policy_next_due(&p, t + 100 * SEC, &cursor, &got_id, &kind, &attempt) ==
		      VG_POLICY_NOTHING, "no second attempt while the first is running");
	{
		__u64 waits[4] = { 0 }, ceilings[] = { 2 * SEC, 4 * SEC, 4 * SEC };
		int ok = 1;

		for (int i = 0; i < 3; i++) {
			__u64 now = t;

			/* The largest draw: x % (ceiling + 1) == ceiling, so wait == ceiling. */
			jitter_value = ceilings[i];
			vg_policy_remediation_done(&p, 3, false, now);
			cursor = 0;
			/* Due exactly at now + min(cap, base * 2^attempt). */
			for (__u64 w = 0; w <= 5 * SEC; w += SEC / 4) {
				cursor = 0;
				if (vg_policy_next_due(&p, now + w, &cursor, &got_id, &kind, &attempt) ==
				    VG_POLICY_REMEDIATE) {
					waits[i] = w;
					break;
				}
			}
			ok &= waits[i] >= ceilings[i] - SEC / 4 && waits[i] <= ceilings[i] + SEC / 4;
		}
		check(ok, "backoff doubles per failed attempt and stops at the cap (2 s, 4 s, 4 s)");
		vg_policy_remediation_done(&p, 3, false, t);
		cursor = 0;
		check(vg_policy_next_due(&p, t + 100 * SEC, &cursor, &got_id, &kind, &attempt) ==
			      VG_POLICY_NOTHING, "no attempt beyond remediate_max");
	}
	jitter_value = 12345;
	vg_policy_on_event(&p, 4, VIGIL_EV_DEAD, t);
	cursor = 0;
	vg_policy_next_due(&p, t, &cursor, &got_id, &kind, &attempt);
	vg_policy_remediation_done(&p, 4, false, t);
	cursor = 0;
	check(vg_policy_next_due(&p, t + 12345, &cursor, &got_id, &kind, &attempt) ==
		      VG_POLICY_REMEDIATE, "full jitter: the wait is the random draw modulo the ceiling");
	vg_policy_on_event(&p, 5, VIGIL_EV_DEAD, t);
	vg_policy_on_event(&p, 5, VIGIL_EV_RECOVERED, t);
	cursor = 0;
	id = 0;
	while (vg_policy_next_due(&p, t, &cursor, &got_id, &kind, &attempt) != VG_POLICY_NOTHING)
		id |= got_id == 5;
	check(!id, "recovery cancels a pending remediation");
	vg_policy_on_event(&p, 6, VIGIL_EV_DEAD, t);
	cursor = 0;
	vg_policy_next_due(&p, t, &cursor, &got_id, &kind, &attempt);
	vg_policy_remediation_done(&p, 6, true, t);
	cursor = 0;
	id = 0;
	while (vg_policy_next_due(&p, t + 100 * SEC, &cursor, &got_id, &kind, &attempt) != VG_POLICY_NOTHING)
		id |= got_id == 6;
	check(!id, "a successful hook ends the episode");
	vg_policy_free(&p);

	/* A false verdict undone (RECOVERED with cause monitor_delay). */
	vg_policy_init(&p, &cfg);
	t = 1000 * SEC;
	d = vg_policy_on_event(&p, 8, VIGIL_EV_SUSPECT, t);
	check(d.alert, "correction: the SUSPECT was alerted");
	d = vg_policy_on_correction(&p, 8, 1, t + SEC / 10);
	check(d.alert && vg_policy_penalty(&p, 8, t + SEC / 10) < 1.0,
	      "correction: its RECOVERED resolves the alert and takes the penalty back");
	d = vg_policy_on_correction(&p, 8, 1, t + SEC);
	check(!d.alert, "correction: nothing left to resolve, nothing alerted");
	for (int i = 0; i < 10; i++) {
		vg_policy_on_event(&p, 9, VIGIL_EV_SUSPECT, t + i * SEC);
		d = vg_policy_on_correction(&p, 9, 1, t + i * SEC + SEC / 10);
		s = d.alert;
	}
	check(s && vg_policy_penalty(&p, 9, t + 10 * SEC) < 1.0,
	      "correction: ten false verdicts in ten seconds are no flapping (still alerted, "
	      "no penalty)");
	vg_policy_on_event(&p, 10, VIGIL_EV_SUSPECT, t);
	vg_policy_on_event(&p, 10, VIGIL_EV_DEAD, t + SEC);
	cursor = 0;
	vg_policy_on_correction(&p, 10, 2, t + 2 * SEC);
	id = 0;
	while (vg_policy_next_due(&p, t + 100 * SEC, &cursor, &got_id, &kind, &attempt) !=
	       VG_POLICY_NOTHING)
		id |= got_id == 10;
	check(!id && vg_policy_penalty(&p, 10, t + 2 * SEC) < 1.0,
	      "correction of a DEAD: both penalties back, no remediation");
	vg_policy_free(&p);

	printf("1..%d\n", n);
	return failed ? 1 : 0;
}
