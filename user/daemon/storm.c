// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
/* Storm control (--storm-*): too many beats or events, and the monitor's
 * acknowledgements ask agents to beat more slowly (docs/leases.md). */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <bpf/bpf.h>
#include "common/log.h"
#include "daemon/state.h"

/* Seconds after the switch on at which the beat rate counts as obeyed: the
 * recommendation reaches each agent with the acknowledgement of its next
 * beat, and takes effect with the beat after that. */
#define STORM_SETTLE_S 3

/*
 * Called once a second with the beat path's counters. Over budget for two
 * seconds in a row: acknowledgements recommend storm.interval_ms, which
 * agents obey within their bounds. Back under 80 % of it for five seconds:
 * the recommendation is withdrawn. Each switch is a notice.
 *
 * While the recommendation is in force the beat rate is low because agents
 * obey it, so "under budget" alone would withdraw it, the agents would speed
 * up, and the storm would come back (it would flap with a period of about
 * 7 s). The beat rate is therefore judged as it would be without the
 * recommendation: scaled by the slow-down it caused, measured as the rate
 * of the second that switched it on over the rate STORM_SETTLE_S seconds
 * later. The recommendation is withdrawn only when the fleet, back at its
 * own cadence, would stay under 80 % of the budget: when it shrank or slowed
 * down by itself. (Events are not scaled: slower beats do not make fewer
 * transitions.)
 */
void vg_daemon_storm(struct daemon *d, const struct vigil_stats *st)
{
	__u64 beats = st->beats - d->storm.last_beats, events = st->events - d->storm.last_events;
	bool first = !d->storm.last_beats && !d->storm.last_events;
	__u32 zero = 0;
	bool over, calm;

	d->storm.last_beats = st->beats;
	d->storm.last_events = st->events;
	if (first || (!d->o->storm_beats_per_sec && !d->o->storm_events_per_sec))
		return;
	over = (d->o->storm_beats_per_sec && beats > d->o->storm_beats_per_sec) ||
	       (d->o->storm_events_per_sec && events > d->o->storm_events_per_sec);
	if (d->storm.active && ++d->storm.since == STORM_SETTLE_S)
		d->storm.rate_obeyed = beats ? beats : 1;
	if (d->storm.active && d->o->storm_beats_per_sec) {
		/* beats x (before / obeyed) < 80 % of the budget; nothing is
		 * calm before the obeyed rate is known. */
		calm = d->storm.rate_obeyed &&
		       (unsigned __int128)beats * d->storm.rate_before * 5 <
			       (unsigned __int128)d->o->storm_beats_per_sec * 4 * d->storm.rate_obeyed;
	} else {
		calm = !d->o->storm_beats_per_sec || beats * 5 < d->o->storm_beats_per_sec * 4;
	}
	calm = calm && (!d->o->storm_events_per_sec || events * 5 < d->o->storm_events_per_sec * 4);
	d->storm.over = over ? d->storm.over + 1 : 0;
	d->storm.calm = calm ? d->storm.calm + 1 : 0;
	if ((!d->storm.active && d->storm.over >= 2) || (d->storm.active && d->storm.calm >= 5)) {
		char detail[128];

		d->storm.active = !d->storm.active;
		d->storm.since = 0;
		d->storm.rate_before = beats;
		d->storm.rate_obeyed = 0;
		d->storm.over = d->storm.calm = 0;
		d->cfg.recommend_interval_ms = d->storm.active ? d->o->storm_interval_ms : 0;
		if (bpf_map_update_elem(d->maps.config, &zero, &d->cfg, BPF_ANY))
			pr_warn("storm control: writing vigil_config failed: %s\n", strerror(errno));
		snprintf(detail, sizeof(detail), "%llu beats/s, %llu events/s: %s",
			 (unsigned long long)beats, (unsigned long long)events,
			 d->storm.active ? "acknowledgements recommend a slower interval" :
					   "recommendation withdrawn");
		vg_eventlog_notice(&d->log, 0, d->storm.active ? "storm" : "storm_over", detail);
		vg_eventlog_sync(&d->log);
		pr_info("storm control: %s\n", detail);
	}
}

