// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
/* The merged fleet view's state: see fleet.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "common/fleet.h"
#include "common/util.h"

static const char *const verdict_names[] = {
	[VG_VERDICT_NONE] = "",
	[VG_VERDICT_ALIVE] = "alive",
	[VG_VERDICT_SUSPECT] = "suspect",
	[VG_VERDICT_DEAD] = "dead",
	[VG_VERDICT_LEFT] = "left",
};

static const char *const fleet_state_names[] = {
	[VG_FLEET_UNKNOWN] = "unknown",
	[VG_FLEET_ALIVE] = "alive",
	[VG_FLEET_SUSPECT] = "suspect",
	[VG_FLEET_DEAD] = "dead",
	[VG_FLEET_LEFT] = "left",
	[VG_FLEET_DISAGREE] = "disagree",
};

const char *vg_verdict_name(__u32 v)
{
	return v <= VG_VERDICT_MAX ? verdict_names[v] : "invalid";
}

const char *vg_fleet_state_name(__u32 s)
{
	return s <= VG_FLEET_STATE_MAX ? fleet_state_names[s] : "invalid";
}

enum vg_verdict vg_verdict_of_state(const char *state)
{
	for (__u32 v = VG_VERDICT_ALIVE; v <= VG_VERDICT_MAX; v++)
		if (!strcmp(state, verdict_names[v]))
			return v;
	return VG_VERDICT_NONE;
}

void vg_fleet_init(struct vg_fleet *f)
{
	memset(f, 0, sizeof(*f));
	f->monitors.size = sizeof(struct vg_fleet_monitor);
	f->agents.size = sizeof(struct vg_fleet_agent);
	f->seen.size = sizeof(struct vg_fleet_seen);
}

void vg_fleet_free(struct vg_fleet *f)
{
	vg_idtab_free(&f->monitors);
	vg_idtab_free(&f->agents);
	vg_idtab_free(&f->seen);
}

/* FNV-1a, never 0 (the maps' reserved key). */
static __u64 host_key(const char *host)
{
	__u64 h = 0xcbf29ce484222325ULL;

	for (; *host; host++)
		h = (h ^ (unsigned char)*host) * 0x100000001b3ULL;
	return h ? h : 1;
}

static bool host_ok(const char *s)
{
	return vg_token_ok(s, VG_FLEET_HOST_LEN);
}

int vg_fleet_find_monitor(const struct vg_fleet *f, const char *host)
{
	__u64 place;

	/* Two hosts whose keys collide: the second is refused as unknown. */
	if (!u64map_get(&f->monitors.index, host_key(host), &place) ||
	    strcmp(vg_fleet_mon(f, (__u32)(place - 1))->host, host))
		return -1;
	return (int)(place - 1);
}

int vg_fleet_monitor(struct vg_fleet *f, const char *host)
{
	struct vg_fleet_monitor *m;
	int i = vg_fleet_find_monitor(f, host);

	if (i >= 0)
		return i;
	if (!host_ok(host) || vg_idtab_get(&f->monitors, host_key(host)))
		return -1;
	m = vg_idtab_add(&f->monitors, host_key(host));
	if (!m)
		return -1;
	snprintf(m->host, sizeof(m->host), "%s", host);
	return (int)(f->monitors.n - 1);
}

struct vg_fleet_agent *vg_fleet_agent(struct vg_fleet *f, __u64 id)
{
	struct vg_fleet_agent *a = vg_idtab_get(&f->agents, id);

	if (a)
		return a;
	a = vg_idtab_add(&f->agents, id);
	if (a)
		a->id = id;
	return a;
}

int vg_fleet_set_verdict(struct vg_fleet_agent *a, __u32 m, enum vg_verdict v)
{
	for (__u8 i = 0; i < a->n; i++) {
		if (a->w[i].monitor == m) {
			a->w[i].verdict = (__u8)v;
			return 0;
		}
	}
	if (a->n == VG_FLEET_MAX_WATCHERS)
		return -1;
	a->w[a->n++] = (struct vg_fleet_watch){ .monitor = m, .verdict = (__u8)v };
	return 0;
}

enum vg_verdict vg_fleet_verdict(const struct vg_fleet_agent *a, __u32 m)
{
	for (__u8 i = 0; i < a->n; i++)
		if (a->w[i].monitor == m)
			return a->w[i].verdict;
	return VG_VERDICT_NONE;
}

enum vg_fleet_state vg_fleet_judge(const struct vg_fleet *f, const struct vg_fleet_agent *a)
{
	unsigned n = 0, count[VG_VERDICT_MAX + 1] = {};

	for (__u8 i = 0; i < a->n; i++) {
		if (!a->w[i].verdict || !vg_fleet_mon(f, a->w[i].monitor)->live)
			continue;
		count[a->w[i].verdict]++;
		n++;
	}
	if (!n)
		return VG_FLEET_UNKNOWN;
	if (count[VG_VERDICT_ALIVE] == n)
		return VG_FLEET_ALIVE;
	if (count[VG_VERDICT_LEFT] == n)
		return VG_FLEET_LEFT;
	/* One monitor hears it, another has declared it gone: a partition. */
	if (count[VG_VERDICT_ALIVE] && (count[VG_VERDICT_DEAD] || count[VG_VERDICT_LEFT]))
		return VG_FLEET_DISAGREE;
	if (count[VG_VERDICT_SUSPECT])
		return VG_FLEET_SUSPECT;
	return VG_FLEET_DEAD; /* dead for all, or dead for some and left for the rest */
}

/* ------------------------------------------------------ merged events */

static __u64 seen_key(__u32 m, __u64 inst)
{
	__u64 k = (inst ^ ((__u64)m * 0x9e3779b97f4a7c15ULL)) * 0xbf58476d1ce4e5b9ULL;

	return k ? k : 1;
}

struct vg_fleet_seen *vg_fleet_seen_of(const struct vg_fleet *f, __u32 m, __u64 inst)
{
	struct vg_fleet_seen *s = vg_idtab_get(&f->seen, seen_key(m, inst));

	return s && s->monitor == m && s->inst == inst ? s : NULL;
}

static struct vg_fleet_seen *seen_add(struct vg_fleet *f, __u32 m, __u64 inst)
{
	struct vg_fleet_seen *s = vg_fleet_seen_of(f, m, inst);

	if (s)
		return s;
	if (vg_idtab_get(&f->seen, seen_key(m, inst)))
		return NULL; /* a colliding key: refused rather than mixed up */
	s = vg_idtab_add(&f->seen, seen_key(m, inst));
	if (s) {
		s->monitor = m;
		s->inst = inst;
	}
	return s;
}

bool vg_fleet_seen(const struct vg_fleet *f, __u32 m, __u64 inst, __u64 seq)
{
	const struct vg_fleet_seen *s = vg_fleet_seen_of(f, m, inst);

	if (!s || seq > s->hi)
		return false;
	for (__u32 i = 0; i < s->n_holes; i++)
		if (seq >= s->holes[i].lo && seq <= s->holes[i].hi)
			return false;
	return true;
}

static void add_hole(struct vg_fleet_seen *s, __u64 lo, __u64 hi)
{
	if (s->n_holes == VG_FLEET_MAX_HOLES) {
		memmove(&s->holes[0], &s->holes[1], (VG_FLEET_MAX_HOLES - 1) * sizeof(s->holes[0]));
		s->n_holes--;
	}
	s->holes[s->n_holes++] = (struct vg_fleet_range){ lo, hi };
}

int vg_fleet_mark(struct vg_fleet *f, __u32 m, __u64 inst, __u64 seq)
{
	struct vg_fleet_seen *s = seen_add(f, m, inst);

	if (!s)
		return -1;
	if (seq > s->hi) {
		if (seq > s->hi + 1)
			add_hole(s, s->hi + 1, seq - 1);
		s->hi = seq;
		return 0;
	}
	for (__u32 i = 0; i < s->n_holes; i++) {
		struct vg_fleet_range *h = &s->holes[i];

		if (seq < h->lo || seq > h->hi)
			continue;
		if (h->lo == h->hi) {
			memmove(h, h + 1, (s->n_holes - i - 1) * sizeof(*h));
			s->n_holes--;
		} else if (seq == h->lo) {
			h->lo++;
		} else if (seq == h->hi) {
			h->hi--;
		} else {
			struct vg_fleet_range upper = { seq + 1, h->hi };

			h->hi = seq - 1;
			if (s->n_holes == VG_FLEET_MAX_HOLES) {
				/* No room to split: forget the lower part, the oldest. */
				*h = upper;
			} else {
				memmove(h + 2, h + 1, (s->n_holes - i - 1) * sizeof(*h));
				h[1] = upper;
				s->n_holes++;
			}
		}
		break;
	}
	return 0;
}

int vg_fleet_seen_set(struct vg_fleet *f, __u32 m, __u64 inst, __u64 hi, const char *holes)
{
	struct vg_fleet_seen *s = seen_add(f, m, inst), tmp = { .hi = hi };
	const char *p = holes;

	if (!s)
		return -1;
	while (*p) {
		unsigned long long lo, up;
		int used = 0;

		if (sscanf(p, "%llu-%llu%n", &lo, &up, &used) != 2 || lo > up || up >= hi ||
		    (tmp.n_holes && lo <= tmp.holes[tmp.n_holes - 1].hi) ||
		    tmp.n_holes == VG_FLEET_MAX_HOLES)
			return -1;
		tmp.holes[tmp.n_holes++] = (struct vg_fleet_range){ lo, up };
		p += used;
		if (*p == ',')
			p++;
		else if (*p)
			return -1;
	}
	s->hi = tmp.hi;
	s->n_holes = tmp.n_holes;
	memcpy(s->holes, tmp.holes, tmp.n_holes * sizeof(tmp.holes[0]));
	return 0;
}

void vg_fleet_holes_fmt(const struct vg_fleet_seen *s, char *buf, size_t len)
{
	size_t o = 0;

	if (len)
		buf[0] = '\0';
	for (__u32 i = 0; s && i < s->n_holes; i++) {
		int n = snprintf(buf + o, len - o, "%s%llu-%llu", i ? "," : "",
				 (unsigned long long)s->holes[i].lo, (unsigned long long)s->holes[i].hi);

		if (n < 0 || (size_t)n >= len - o) {
			buf[o] = '\0';
			return;
		}
		o += (size_t)n;
	}
}
