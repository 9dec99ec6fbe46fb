// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "common/log.h"
#include "cli/beat_probe.h"
#include "common/util.h"

extern char **environ;

/* HOST[:PORT] or [V6][:PORT], the first len bytes of s, into p->host and
 * p->port (default_port without one). */
static int split_host_port(struct vg_probe *p, const char *s, size_t len, const char *default_port)
{
	const char *end = s + len, *colon, *host = s;
	size_t host_len;

	if (*s == '[') {
		const char *rb = memchr(s, ']', len);

		if (!rb)
			return -1;
		host++;
		host_len = (size_t)(rb - host);
		colon = rb + 1 < end && rb[1] == ':' ? rb + 1 : NULL;
	} else {
		colon = memrchr(s, ':', len);
		host_len = (size_t)((colon ? colon : end) - host);
	}
	if (host_len >= sizeof(p->host))
		return -1;
	memcpy(p->host, host, host_len);
	p->host[host_len] = '\0';
	if (colon)
		snprintf(p->port, sizeof(p->port), "%.*s", (int)(end - colon - 1), colon + 1);
	else
		snprintf(p->port, sizeof(p->port), "%s", default_port);
	return *p->host && *p->port ? 0 : -1;
}

int vg_probe_parse(struct vg_probe *p, const char *kind, const char *arg)
{
	const char *rest;
	size_t host_len;

	memset(p, 0, sizeof(*p));
	p->http_status_max = 400;
	if (!strcmp(kind, "exec")) {
		p->kind = VG_PROBE_EXEC;
		p->cmd = arg;
		return 0;
	}
	if (!strcmp(kind, "tcp")) {
		p->kind = VG_PROBE_TCP;
		if (split_host_port(p, arg, strlen(arg), "")) {
			pr_warn("--probe-tcp: '%s' is not HOST:PORT\n", arg);
			return -1;
		}
		return 0;
	}
	if (strcmp(kind, "http")) {
		pr_warn("unknown probe kind '%s'\n", kind);
		return -1;
	}
	p->kind = VG_PROBE_HTTP;
	if (strncmp(arg, "http://", strlen("http://"))) {
		pr_warn("--probe-http: '%s' must start with http:// (https is not supported)\n", arg);
		return -1;
	}
	rest = arg + strlen("http://");
	host_len = strcspn(rest, "/");
	snprintf(p->path, sizeof(p->path), "%s", rest[host_len] ? rest + host_len : "/");
	if (split_host_port(p, rest, host_len, "80")) {
		pr_warn("--probe-http: '%s' has no host\n", arg);
		return -1;
	}
	return 0;
}

static __u64 deadline_after(__u32 ms)
{
	return vg_mono_ns() + (__u64)ms * 1000000ull;
}

static int remaining_ms(__u64 deadline)
{
	__u64 now = vg_mono_ns();

	return now >= deadline ? 0 : (int)((deadline - now + 999999) / 1000000);
}

static bool run_exec(const struct vg_probe *p, __u32 timeout_ms)
{
	char *argv[] = { "/bin/sh", "-c", (char *)p->cmd, NULL };
	__u64 deadline = deadline_after(timeout_ms);
	posix_spawnattr_t attr;
	sigset_t none, dfl;
	pid_t pid;
	int status, err;

	/* The caller may be a thread that blocks every signal (the agent
	 * library's): the check must not inherit that mask, nor an ignored
	 * SIGPIPE. */
	sigemptyset(&none);
	sigemptyset(&dfl);
	sigaddset(&dfl, SIGPIPE);
	sigaddset(&dfl, SIGINT);
	sigaddset(&dfl, SIGTERM);
	sigaddset(&dfl, SIGHUP);
	sigaddset(&dfl, SIGCHLD);
	posix_spawnattr_init(&attr);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
					POSIX_SPAWN_SETSIGDEF);
	posix_spawnattr_setpgroup(&attr, 0);
	posix_spawnattr_setsigmask(&attr, &none);
	posix_spawnattr_setsigdefault(&attr, &dfl);
	err = posix_spawn(&pid, "/bin/sh", NULL, &attr, argv, environ);
	posix_spawnattr_destroy(&attr);
	if (err)
		return false;
	for (;;) {
		pid_t got = waitpid(pid, &status, WNOHANG);

		if (got == pid)
			return WIFEXITED(status) && WEXITSTATUS(status) == 0;
		if (got < 0 && errno != EINTR)
			return false;
		if (!remaining_ms(deadline)) {
			/* Its whole process group: the check must not outlive its turn. */
			kill(-pid, SIGKILL);
			waitpid(pid, &status, 0);
			return false;
		}
		usleep(2000);
	}
}

/* Non-blocking connect bounded by the deadline; returns the fd or -1. */
static int connect_by(const char *host, const char *port, __u64 deadline)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res, *ai;
	int fd = -1;

	if (getaddrinfo(host, port, &hints, &res))
		return -1;
	for (ai = res; ai && fd < 0; ai = ai->ai_next) {
		struct pollfd pfd;
		int err = 0;
		socklen_t len = sizeof(err);

		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0)
			continue;
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) && errno != EINPROGRESS)
			goto next;
		pfd = (struct pollfd){ .fd = fd, .events = POLLOUT };
		if (poll(&pfd, 1, remaining_ms(deadline)) != 1 ||
		    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) || err)
			goto next;
		break;
next:
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	return fd;
}

static bool run_http(const struct vg_probe *p, __u32 timeout_ms)
{
	__u64 deadline = deadline_after(timeout_ms);
	char req[1024], resp[64];
	int fd = connect_by(p->host, p->port, deadline), n, got = 0, status;
	bool ok = false;

	if (fd < 0)
		return false;
	n = snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\nHost: %s\r\nUser-Agent: vigil-probe\r\n\r\n",
		     p->path, p->host);
	if (write(fd, req, n) != n)
		goto out;
	while (got < (int)sizeof(resp) - 1) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		ssize_t r;

		if (poll(&pfd, 1, remaining_ms(deadline)) != 1)
			goto out;
		r = read(fd, resp + got, sizeof(resp) - 1 - got);
		if (r <= 0)
			break;
		got += (int)r;
		if (memchr(resp, '\n', got))
			break;
	}
	resp[got] = '\0';
	ok = sscanf(resp, "HTTP/%*d.%*d %d", &status) == 1 && status >= 200 &&
	     status < (int)p->http_status_max;
out:
	close(fd);
	return ok;
}

bool vg_probe_run(const struct vg_probe *p, __u32 timeout_ms)
{
	int fd;

	switch (p->kind) {
	case VG_PROBE_EXEC:
		return run_exec(p, timeout_ms);
	case VG_PROBE_TCP:
		fd = connect_by(p->host, p->port, deadline_after(timeout_ms));
		if (fd < 0)
			return false;
		close(fd);
		return true;
	case VG_PROBE_HTTP:
		return run_http(p, timeout_ms);
	default:
		return true;
	}
}
