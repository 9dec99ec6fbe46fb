// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
/* The userspace baselines' monitor (bench/monitor.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include "vigil/auth.h"
#include "vigil/wire.h"
#include "monitor.h"
#include "common/keys.h"
#include "common/util.h"

#define TICK_NS VIGIL_NSEC_PER_MSEC

static void event(struct monitor *m, struct monitor_slot *s, const char *kind, __u64 now)
{
	m->st->events++;
	if (m->print_events)
		printf("{\"agent_id\":%llu,\"kind\":\"%s\",\"now_ns\":%llu,\"last_seen_ns\":%llu}\n",
		       (unsigned long long)s->id, kind, (unsigned long long)now,
		       (unsigned long long)s->last_seen_ns);
}

static void file_slot(struct monitor *m, __u32 i, __u64 due)
{
	struct monitor_slot *s = &m->slots[i];
	__u32 k;

	if (due < m->next_tick)
		due = m->next_tick;
	k = due & (MONITOR_WHEEL - 1);
	s->due_tick = due;
	s->next = m->buckets[k];
	m->buckets[k] = i + 1;
	s->in_wheel = 1;
}

/* The sweeper: as sweep_tick in bpf/wheel.bpf.h, one bucket per elapsed tick. */
bool monitor_tick(struct monitor *m, __u64 now)
{
	__u64 now_tick = now / TICK_NS;

	if (m->next_tick > now_tick)
		return false;
	while (m->next_tick <= now_tick) {
		__u32 k = m->next_tick & (MONITOR_WHEEL - 1), i = m->buckets[k];

		m->buckets[k] = 0;
		m->next_tick++;
		while (i) {
			struct monitor_slot *s = &m->slots[i - 1];
			__u32 cur = i - 1;
			__u64 next_ns = 0, horizon = vigil_horizon_ns(s->interval_min_ms, s->multiplier);
			enum vigil_sweep_action act;

			i = s->next;
			s->in_wheel = 0;
			act = vigil_sweep_eval(s->state, s->last_seen_ns, s->interval_ms, s->multiplier,
					       m->dead_misses, now, &next_ns);
			switch (act) {
			case VIGIL_SWEEP_KEEP:
				file_slot(m, cur, vigil_wheel_due(now, next_ns, horizon, TICK_NS));
				break;
			case VIGIL_SWEEP_TO_SUSPECT:
				s->state = VIGIL_AGENT_SUSPECT;
				m->st->suspect++;
				event(m, s, "suspect", now);
				file_slot(m, cur, vigil_wheel_due(now, next_ns, horizon, TICK_NS));
				break;
			case VIGIL_SWEEP_TO_DEAD:
				s->state = VIGIL_AGENT_DEAD;
				m->st->dead++;
				event(m, s, "dead", now);
				break;
			default:
				break;
			}
		}
		m->st->sweeps++;
	}
	return true;
}

void monitor_beat(struct monitor *m, const __u8 *p, __u32 len, __u64 now)
{
	const struct vigil_beat *beat = (const void *)p;
	struct vigil_beat_info bi;
	enum vigil_replay_verdict rv;
	struct monitor_slot *s;
	__u64 pos;
	__u32 prev;

	if (vigil_beat_decode(beat, len, &bi) != VIGIL_BEAT_OK) {
		m->st->malformed++;
		return;
	}
	if (!u64map_get(&m->index, bi.agent_id, &pos)) {
		m->st->unknown_agent++;
		return;
	}
	s = &m->slots[pos - 1];
	if (!(bi.flags & VIGIL_F_MAC)) {
		m->st->unauthenticated++;
		return;
	}
	if (!(s->valid_keys & (1u << (bi.key_id & 1))) ||
	    !vigil_beat_tag_ok(beat, &s->key[bi.key_id & 1])) {
		m->st->bad_tag++;
		return;
	}
	rv = vigil_replay_check(&s->replay, bi.incarnation, bi.seq, 64);
	if (!vigil_replay_accepted(rv)) {
		m->st->replayed++;
		return;
	}
	if (rv != VIGIL_REPLAY_LATE) {
		s->seq = bi.seq;
		s->incarnation = bi.incarnation;
	}
	s->last_seen_ns = now;
	s->interval_ms = vigil_clamp_interval(bi.interval_ms, s->interval_min_ms, s->interval_max_ms);
	s->beats++;
	m->st->accepted++;
	prev = s->state;
	if (prev != VIGIL_AGENT_ALIVE) {
		s->state = VIGIL_AGENT_ALIVE;
		event(m, s, prev == VIGIL_AGENT_NEW ? "up" : "recovered", now);
		if (!s->in_wheel)
			file_slot(m, (__u32)(pos - 1), now / TICK_NS + 1);
	}
}

int monitor_init(struct monitor *m, const struct monitor_opts *o)
{
	struct vg_keyfile kf = {};
	__u64 now;
	int sfd;

	m->dead_misses = 2;
	m->print_events = o->print_events;
	sfd = open(o->stats_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (sfd < 0 || ftruncate(sfd, 4096)) {
		fprintf(stderr, "%s: %s\n", o->stats_path, strerror(errno));
		return -1;
	}
	m->st = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, sfd, 0);
	close(sfd);
	if (m->st == MAP_FAILED) {
		fprintf(stderr, "mmap %s: %s\n", o->stats_path, strerror(errno));
		m->st = NULL;
		return -1;
	}

	/* The agent table, from the same key file vigil run gets. */
	if (vg_keyfile_load(o->keys_path, false, &kf))
		return -1;
	m->n = o->agents;
	m->slots = calloc(o->agents, sizeof(*m->slots));
	if (!m->slots)
		goto fail;
	now = vg_mono_ns();
	m->next_tick = now / TICK_NS;
	for (__u32 i = 0; i < o->agents; i++) {
		const struct agent_auth *a = vg_keyfile_get(&kf, o->first_id + i);
		struct monitor_slot *s = &m->slots[i];

		if (!a) {
			fprintf(stderr, "%s: no key for agent %llu\n", o->keys_path,
				(unsigned long long)(o->first_id + i));
			goto fail;
		}
		s->id = o->first_id + i;
		s->key[0] = a->key[0];
		s->key[1] = a->key[1];
		s->valid_keys = a->valid;
		s->state = VIGIL_AGENT_NEW;
		s->last_seen_ns = now;
		s->interval_min_ms = o->interval_min_ms;
		s->interval_max_ms = o->interval_max_ms;
		s->interval_ms = o->interval_max_ms;
		s->multiplier = o->multiplier;
		if (u64map_put(&m->index, s->id, i + 1))
			goto fail;
		file_slot(m, i, m->next_tick + 1);
	}
	vg_keyfile_free(&kf);
	return 0;
fail:
	vg_keyfile_free(&kf);
	return -1;
}

void monitor_free(struct monitor *m)
{
	free(m->slots);
	u64map_free(&m->index);
	if (m->st)
		munmap((void *)m->st, 4096);
}
