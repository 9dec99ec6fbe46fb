// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "vigil/maps.h"
#include "vigil/wire.h"
#include "common/log.h"
#include "common/event.h"
#include "common/util.h"

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

int vg_each_line(FILE *f, const char *path, vg_line_fn fn, void *ctx)
{
	char *line = NULL;
	size_t cap = 0;
	int lineno = 0, ret = 0;

	while (!ret && getline(&line, &cap, f) > 0) {
		lineno++;
		line[strcspn(line, "#\r\n")] = '\0';
		if (line[strspn(line, " \t")])
			ret = fn(ctx, line, path, lineno);
	}
	if (!ret && ferror(f)) {
		pr_warn("%s: read error: %s\n", path, strerror(errno));
		ret = -1;
	}
	free(line);
	return ret;
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

void vg_strlcpy(char *dst, const char *src, size_t size)
{
	size_t n = strnlen(src, size - 1);

	memcpy(dst, src, n);
	dst[n] = '\0';
}

bool vg_token_ok(const char *s, size_t max)
{
	size_t n = strlen(s);

	if (!n || n > max)
		return false;
	for (; *s; s++)
		if (!(*s >= 'a' && *s <= 'z') && !(*s >= 'A' && *s <= 'Z') &&
		    !(*s >= '0' && *s <= '9') && *s != '_' && *s != '-')
			return false;
	return true;
}
