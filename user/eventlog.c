// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
#include <errno.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "eventlog.h"
#include "log.h"
#include "util.h"

static int mkdir_parents(const char *path)
{
	char *dup = strdup(path), *dir;
	int ret = 0;

	if (!dup)
		return -1;
	dir = dirname(dup);
	for (char *p = dir + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(dir, 0755) && errno != EEXIST)
			ret = -1;
		*p = '/';
	}
	if (mkdir(dir, 0755) && errno != EEXIST)
		ret = -1;
	free(dup);
	return ret;
}

static void remember(struct vg_eventlog *log, __u64 seq, __u64 agent_id, __u32 state)
{
	__u64 last;

	u64map_put(&log->seen, seq, 1);
	if (seq > log->max_seq)
		log->max_seq = seq;
	if (!agent_id || state == VIGIL_AGENT_FREE)
		return;
	if (!u64map_get(&log->agent_last, agent_id, &last) || (last >> 3) < seq)
		u64map_put(&log->agent_last, agent_id, seq << 3 | state);
}

static __u32 state_from_name(const char *s)
{
	for (__u32 i = 0; i <= VIGIL_AGENT_STATE_MAX; i++)
		if (!strcmp(s, vg_state_name(i)))
			return i;
	return VIGIL_AGENT_FREE;
}

/* Read back what an earlier run recorded. A torn last line (crash mid-write)
 * is ignored and later appends start on a fresh line. */
static int load(struct vg_eventlog *log)
{
	char *line = NULL, state[16];
	size_t cap = 0;
	ssize_t n;
	long bad = 0;
	int last_char = '\n';

	rewind(log->f);
	while ((n = getline(&line, &cap, log->f)) > 0) {
		unsigned long long seq, agent;
		char *p;

		last_char = line[n - 1];
		if (sscanf(line, "{\"event_seq\":%llu,\"agent_id\":%llu,", &seq, &agent) != 2 ||
		    last_char != '\n') {
			bad++;
			continue;
		}
		state[0] = '\0';
		p = strstr(line, "\"state\":\"");
		if (p)
			sscanf(p + 9, "%15[a-z_]", state);
		remember(log, seq, agent, state_from_name(state));
	}
	free(line);
	if (bad)
		pr_warn("%s: ignored %ld unreadable line(s) (torn write after a crash?)\n", log->path,
			bad);
	if (last_char != '\n')
		fputc('\n', log->f);
	return 0;
}

int vg_eventlog_open(struct vg_eventlog *log, const char *path)
{
	memset(log, 0, sizeof(*log));
	log->path = path;
	if (mkdir_parents(path)) {
		pr_warn("%s: cannot create its directory: %s\n", path, strerror(errno));
		return -1;
	}
	log->f = fopen(path, "a+");
	if (!log->f) {
		pr_warn("%s: cannot open event log: %s\n", path, strerror(errno));
		return -1;
	}
	return load(log);
}

void vg_eventlog_close(struct vg_eventlog *log)
{
	if (log->f) {
		vg_eventlog_sync(log);
		fclose(log->f);
	}
	u64map_free(&log->seen);
	u64map_free(&log->agent_last);
	log->f = NULL;
}

bool vg_eventlog_has(const struct vg_eventlog *log, __u64 event_seq)
{
	return u64map_get(&log->seen, event_seq, NULL);
}

bool vg_eventlog_agent_last(const struct vg_eventlog *log, __u64 agent_id, __u64 *seq, __u32 *state)
{
	__u64 v;

	if (!u64map_get(&log->agent_last, agent_id, &v))
		return false;
	*seq = v >> 3;
	*state = v & 7;
	return true;
}

void vg_event_print_json(FILE *f, const struct vg_event_view *v)
{
	const struct vigil_event *e = v->e;
	char when[40];

	vg_fmt_wall(vg_mono_to_wall(e->detected_ns), when, sizeof(when));
	fprintf(f, "{\"event_seq\":%llu,\"agent_id\":%llu,\"kind\":\"%s\",\"state\":\"%s\","
		   "\"prev_state\":\"%s\",\"name\":",
		(unsigned long long)e->event_seq, (unsigned long long)e->agent_id,
		vg_kind_name(e->kind), vg_state_name(e->state), vg_state_name(e->prev_state));
	vg_json_str(f, v->name ? v->name : "");
	fputs(",\"group\":", f);
	vg_json_str(f, v->group ? v->group : "");
	fprintf(f, ",\"slot\":%d,\"seq\":%llu,\"incarnation\":%u,\"interval_ms\":%u,"
		   "\"last_seen_ns\":%llu,\"detected_ns\":%llu",
		e->slot == 0xffffffffu ? -1 : (int)e->slot, (unsigned long long)e->seq,
		e->incarnation, e->interval_ms, (unsigned long long)e->last_seen_ns,
		(unsigned long long)e->detected_ns);
	if (v->deadline_ns)
		fprintf(f, ",\"deadline_ns\":%llu,\"late_us\":%lld",
			(unsigned long long)v->deadline_ns,
			(long long)((__s64)(e->detected_ns - v->deadline_ns) / 1000));
	if (e->kind == VIGIL_EV_REJECTED) {
		char src[64];

		vg_fmt_addr(e->src_addr, src, sizeof(src));
		fprintf(f, ",\"reason\":\"%s\",\"source\":\"%s\"", vg_reason_name(e->reason), src);
	}
	fprintf(f, ",\"time\":\"%s\",\"reconciled\":%s}\n", when, v->reconciled ? "true" : "false");
}

int vg_eventlog_append(struct vg_eventlog *log, const struct vg_event_view *v)
{
	if (vg_eventlog_has(log, v->e->event_seq))
		return 0;
	vg_event_print_json(log->f, v);
	remember(log, v->e->event_seq, v->e->kind == VIGIL_EV_REJECTED ? 0 : v->e->agent_id,
		 v->e->state);
	log->written++;
	log->dirty = true;
	return 1;
}

int vg_eventlog_sync(struct vg_eventlog *log)
{
	if (!log->dirty)
		return 0;
	log->dirty = false;
	if (fflush(log->f) || fdatasync(fileno(log->f))) {
		pr_warn("%s: writing the event log failed: %s\n", log->path, strerror(errno));
		return -1;
	}
	return 0;
}
