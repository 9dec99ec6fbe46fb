// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
/* Monitor address lists of the command line (targets.h). */
#include <arpa/inet.h>
#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include "common/log.h"
#include "common/targets.h"
#include "common/util.h"

/* One entry, without its @KEYFILE: ADDR, ADDR:PORT or [ADDR]:PORT. */
static int parse_addr(struct vg_target *t, const char *s, const char *opt)
{
	struct sockaddr_in *in4 = (struct sockaddr_in *)&t->ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&t->ss;
	char host[INET6_ADDRSTRLEN], what[96];
	const char *port = NULL, *colon = strchr(s, ':');
	bool bracketed = s[0] == '[';
	size_t n;

	if (bracketed) {
		const char *end = strchr(s, ']');

		if (!end || (end[1] && end[1] != ':'))
			goto bad;
		n = (size_t)(end - s - 1);
		port = end[1] ? end + 2 : NULL;
		s++;
	} else if (colon && !strchr(colon + 1, ':')) {
		n = (size_t)(colon - s); /* one colon: IPv4 with a port */
		port = colon + 1;
	} else {
		n = strlen(s);
	}
	if (!n || n >= sizeof(host))
		goto bad;
	memcpy(host, s, n);
	host[n] = '\0';
	if (port) {
		__u32 p;

		snprintf(what, sizeof(what), "--%s: the port of %s", opt, host);
		if (vg_parse_u32(port, what, 1, 65535, &p))
			return -1;
		t->port = (__u16)p;
	}
	if (inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
		in4->sin_family = AF_INET;
		t->len = sizeof(*in4);
	} else if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1 &&
		   (bracketed || !port)) {
		in6->sin6_family = AF_INET6;
		t->len = sizeof(*in6);
	} else {
		goto bad;
	}
	memcpy(t->addr, host, n + 1);
	return 0;
bad:
	pr_warn("--%s: '%s' is not an IPv4 or IPv6 address (ADDR, ADDR:PORT or [ADDR]:PORT)\n",
		opt, s);
	return -1;
}

int vg_targets_parse(struct vg_targets *ts, const char *arg, const char *opt)
{
	struct vg_targets out = *ts;
	const char *p = arg;

	for (;;) {
		size_t len = strcspn(p, ",");
		char entry[INET6_ADDRSTRLEN + 16], *at;
		struct vg_target *t;

		if (out.n == VG_MAX_TARGETS) {
			pr_warn("--%s: at most %d monitors\n", opt, VG_MAX_TARGETS);
			return -1;
		}
		t = &out.t[out.n];
		memset(t, 0, sizeof(*t));
		if (len >= sizeof(entry) + PATH_MAX) {
			pr_warn("--%s: '%.*s' is too long\n", opt, (int)len, p);
			return -1;
		}
		at = memchr(p, '@', len);
		if (at) {
			if (at + 1 == p + len) {
				pr_warn("--%s: '%.*s': no key file after '@'\n", opt, (int)len, p);
				return -1;
			}
			t->keys_path = strndup(at + 1, (size_t)(p + len - at - 1));
			if (!t->keys_path) {
				pr_warn("--%s: out of memory\n", opt);
				return -1;
			}
			len = (size_t)(at - p);
		}
		if (len >= sizeof(entry)) {
			pr_warn("--%s: '%.*s' is not an address\n", opt, (int)len, p);
			return -1;
		}
		memcpy(entry, p, len);
		entry[len] = '\0';
		if (parse_addr(t, entry, opt)) {
			free((char *)t->keys_path);
			return -1;
		}
		out.n++;
		p += strcspn(p, ",");
		if (!*p)
			break;
		p++;
	}
	*ts = out;
	return 0;
}

void vg_targets_set_port(struct vg_targets *ts, __u16 port)
{
	for (unsigned i = 0; i < ts->n; i++) {
		struct vg_target *t = &ts->t[i];

		if (!t->port)
			t->port = port;
		if (t->ss.ss_family == AF_INET)
			((struct sockaddr_in *)&t->ss)->sin_port = htons(t->port);
		else
			((struct sockaddr_in6 *)&t->ss)->sin6_port = htons(t->port);
	}
}

const char *vg_target_name(const struct vg_target *t, char *buf, size_t len)
{
	if (t->ss.ss_family == AF_INET6)
		snprintf(buf, len, "[%s]:%u", t->addr, t->port);
	else
		snprintf(buf, len, "%s:%u", t->addr, t->port);
	return buf;
}
