// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "vigil/maps.h"
#include "vigil/wire.h"
#include "log.h"
#include "util.h"

int vg_parse_u64(const char *s, const char *what, __u64 min, __u64 max, __u64 *out)
{
	unsigned long long v;
	char *end;

	if (!s || !*s || *s == '-' || *s == '+' || *s == ' ') {
		pr_warn("%s: '%s' is not a non-negative whole number\n", what, s ? s : "");
		return -1;
	}
	errno = 0;
	v = strtoull(s, &end, 10); /* decimal, like the agents file: 010 is ten */
	if (errno || *end) {
		pr_warn("%s: '%s' is not a non-negative whole number\n", what, s);
		return -1;
	}
	if (v < min || v > max) {
		pr_warn("%s: %llu is out of range [%llu, %llu]\n", what, v,
			(unsigned long long)min, (unsigned long long)max);
		return -1;
	}
	*out = v;
	return 0;
}

int vg_parse_u32(const char *s, const char *what, __u32 min, __u32 max, __u32 *out)
{
	__u64 v;

	if (vg_parse_u64(s, what, min, max, &v))
		return -1;
	*out = (__u32)v;
	return 0;
}

int vg_parse_range(const char *s, const char *what, __u64 *lo, __u64 *hi)
{
	char buf[64];
	char *dash;

	if (!s || strlen(s) >= sizeof(buf)) {
		pr_warn("%s: '%s' is not an id or a range A-B\n", what, s ? s : "");
		return -1;
	}
	strcpy(buf, s);
	dash = strchr(buf, '-');
	if (!dash)
		return vg_parse_u64(buf, what, 1, UINT64_MAX, lo) ? -1 : (*hi = *lo, 0);
	*dash = '\0';
	if (vg_parse_u64(buf, what, 1, UINT64_MAX, lo) ||
	    vg_parse_u64(dash + 1, what, 1, UINT64_MAX, hi))
		return -1;
	if (*hi < *lo) {
		pr_warn("%s: range '%s' ends before it starts\n", what, s);
		return -1;
	}
	return 0;
}

static __u64 clock_ns(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (__u64)ts.tv_sec * 1000000000ULL + (__u64)ts.tv_nsec;
}

__u64 vg_mono_ns(void)
{
	return clock_ns(CLOCK_MONOTONIC);
}

__u64 vg_wall_ns(void)
{
	return clock_ns(CLOCK_REALTIME);
}

__u64 vg_mono_to_wall(__u64 mono_ns)
{
	__u64 mono = vg_mono_ns(), wall = vg_wall_ns();

	return wall - (mono - mono_ns);
}

void vg_fmt_wall(__u64 wall_ns, char *buf, size_t len)
{
	time_t sec = (time_t)(wall_ns / 1000000000ULL);
	struct tm tm;
	size_t n;

	gmtime_r(&sec, &tm);
	n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf + n, len - n, ".%03lluZ", (unsigned long long)(wall_ns / 1000000ULL % 1000));
}

static const char *const state_names[] = {
	[VIGIL_AGENT_FREE] = "free",	   [VIGIL_AGENT_NEW] = "new",
	[VIGIL_AGENT_ALIVE] = "alive",	   [VIGIL_AGENT_SUSPECT] = "suspect",
	[VIGIL_AGENT_DEAD] = "dead",	   [VIGIL_AGENT_LEFT] = "left",
};

static const char *const kind_names[] = {
	[VIGIL_EV_UP] = "up",
	[VIGIL_EV_SUSPECT] = "suspect",
	[VIGIL_EV_DEAD] = "dead",
	[VIGIL_EV_RECOVERED] = "recovered",
	[VIGIL_EV_RESTART] = "restart",
	[VIGIL_EV_LEFT] = "left",
	[VIGIL_EV_REJECTED] = "rejected",
	[VIGIL_EV_LEASE_EXPIRED] = "lease_expired",
	[VIGIL_EV_LEASE_RELEASED] = "lease_released",
	[VIGIL_EV_MONITOR_BEHIND] = "monitor_behind",
	[VIGIL_EV_MONITOR_CAUGHT_UP] = "monitor_caught_up",
};

static const char *const part_names[] = {
	[0] = "",
	[VIGIL_PART_RXQ] = "receive_queue",
	[VIGIL_PART_SWEEPER] = "sweeper",
};

static const char *const lease_state_names[] = {
	[VIGIL_LEASE_FREE] = "free",
	[VIGIL_LEASE_HELD] = "held",
	[VIGIL_LEASE_EXPIRED] = "expired",
	[VIGIL_LEASE_RELEASED] = "released",
};

static const char *const reason_names[] = {
	[VIGIL_REJECT_NONE] = "",
	[VIGIL_REJECT_MALFORMED] = "malformed",
	[VIGIL_REJECT_BAD_VERSION] = "bad_version",
	[VIGIL_REJECT_UNKNOWN_AGENT] = "unknown_agent",
	[VIGIL_REJECT_NOT_ALLOWED] = "not_allowed",
	[VIGIL_REJECT_UNAUTHENTICATED] = "unauthenticated",
	[VIGIL_REJECT_BAD_TAG] = "bad_tag",
	[VIGIL_REJECT_REPLAY] = "replay",
	[VIGIL_REJECT_OVER_RATE_AGENT] = "over_rate_agent",
	[VIGIL_REJECT_OVER_RATE_SOURCE] = "over_rate_source",
};

static const char *const status_names[] = {
	[VIGIL_STATUS_OK] = "ok",
	[VIGIL_STATUS_DEGRADED] = "degraded",
	[VIGIL_STATUS_DRAINING] = "draining",
	[VIGIL_STATUS_LEAVING] = "leaving",
};

const char *vg_state_name(__u32 state)
{
	return state <= VIGIL_AGENT_STATE_MAX ? state_names[state] : "invalid";
}

const char *vg_lease_state_name(__u32 state)
{
	return state <= VIGIL_LEASE_STATE_MAX ? lease_state_names[state] : "invalid";
}

bool vg_kind_is_lease(__u32 kind)
{
	return kind == VIGIL_EV_LEASE_EXPIRED || kind == VIGIL_EV_LEASE_RELEASED;
}

bool vg_kind_is_monitor(__u32 kind)
{
	return kind == VIGIL_EV_MONITOR_BEHIND || kind == VIGIL_EV_MONITOR_CAUGHT_UP;
}

bool vg_kind_changes_agent(__u32 kind)
{
	return kind != VIGIL_EV_REJECTED && !vg_kind_is_lease(kind) && !vg_kind_is_monitor(kind);
}

const char *vg_part_name(__u32 part)
{
	return part <= VIGIL_PART_SWEEPER ? part_names[part] : "invalid";
}

const char *vg_event_state_name(__u32 kind, __u32 state)
{
	if (vg_kind_is_monitor(kind))
		return vg_part_name(state);
	return vg_kind_is_lease(kind) ? vg_lease_state_name(state) : vg_state_name(state);
}

const char *vg_kind_name(__u32 kind)
{
	return kind >= 1 && kind <= VIGIL_EV_KIND_MAX ? kind_names[kind] : "invalid";
}

const char *vg_reason_name(__u32 reason)
{
	return reason <= VIGIL_REJECT_REASON_MAX ? reason_names[reason] : "invalid";
}

void vg_fmt_addr(const __u8 a[16], char *buf, size_t len)
{
	static const __u8 v4mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

	if (!memcmp(a, v4mapped, sizeof(v4mapped)))
		inet_ntop(AF_INET, a + 12, buf, len);
	else
		inet_ntop(AF_INET6, a, buf, len);
}

int vg_parse_addr(const char *s, __u8 out[16])
{
	return inet_pton(AF_INET6, s, out) == 1 ? 0 : -1;
}

const char *vg_status_name(__u32 status)
{
	return status <= VIGIL_STATUS_MAX ? status_names[status] : "invalid";
}

int vg_status_parse(const char *s, __u32 *out)
{
	for (__u32 i = 0; i <= VIGIL_STATUS_MAX; i++) {
		if (!strcmp(s, status_names[i])) {
			*out = i;
			return 0;
		}
	}
	pr_warn("--status: '%s' is not one of ok, degraded, draining, leaving\n", s);
	return -1;
}

void vg_json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

void vg_strlcpy(char *dst, const char *src, size_t size)
{
	size_t n = strnlen(src, size - 1);

	memcpy(dst, src, n);
	dst[n] = '\0';
}
