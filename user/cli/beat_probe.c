// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
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

/*
 * Names in --probe-tcp/--probe-http are resolved off the beat thread: a
 * resolver that does not answer (getaddrinfo() waits for it for seconds,
 * and cannot be interrupted) must not hold back the beat or the agent's
 * lease bookkeeping on that thread. One lookup thread per probe resolves
 * on request; the check waits for the answer only within its own budget,
 * and when none comes in time it probes the addresses of the last answer
 * (stale rather than nothing, as a caching resolver would serve them).
 */
#define MAX_ADDRS 8

struct vg_resolver {
	pthread_mutex_t mu;
	pthread_cond_t cv;  /* CLOCK_MONOTONIC; a request, or a finished lookup */
	bool numeric;       /* a numeric address: nothing to look up */
	bool started;       /* the lookup thread runs */
	__u64 asked, done;  /* lookups requested and finished, in order */
	int n;              /* addresses of the last successful lookup */
	struct sockaddr_storage addr[MAX_ADDRS];
	socklen_t len[MAX_ADDRS];
	__u64 answered_ns;  /* when that lookup finished */
	bool said_stale;    /* "probing the last known address" said for this streak */
	char host[256], port[8];
};

/* Keep the addresses of a successful lookup (all of them, in order). */
static void keep_addrs(struct vg_resolver *r, const struct addrinfo *res)
{
	r->n = 0;
	for (const struct addrinfo *ai = res; ai && r->n < MAX_ADDRS; ai = ai->ai_next) {
		if (ai->ai_addrlen > sizeof(r->addr[0]))
			continue;
		memcpy(&r->addr[r->n], ai->ai_addr, ai->ai_addrlen);
		r->len[r->n++] = ai->ai_addrlen;
	}
}

static void *lookup_thread(void *arg)
{
	struct vg_resolver *r = arg;
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res = NULL;

	pthread_mutex_lock(&r->mu);
	for (;;) {
		__u64 want;
		int err;

		while (r->done == r->asked)
			pthread_cond_wait(&r->cv, &r->mu);
		want = r->asked;
		pthread_mutex_unlock(&r->mu);
		err = getaddrinfo(r->host, r->port, &hints, &res);
		pthread_mutex_lock(&r->mu);
		if (!err) {
			keep_addrs(r, res);
			freeaddrinfo(res);
			r->answered_ns = vg_mono_ns();
			r->said_stale = false;
		} else if (err != EAI_AGAIN && err != EAI_SYSTEM && err != EAI_MEMORY) {
			r->n = 0; /* the name is gone: so is the service */
		}
		r->done = want;
		pthread_cond_broadcast(&r->cv);
	}
	return NULL;
}

/* Numeric hosts need no lookup: their addresses are kept once, here. */
static int resolver_new(struct vg_probe *p)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV }, *res;
	struct vg_resolver *r = calloc(1, sizeof(*r));
	pthread_condattr_t ca;

	if (!r) {
		pr_warn("probe: out of memory\n");
		return -1;
	}
	snprintf(r->host, sizeof(r->host), "%s", p->host);
	snprintf(r->port, sizeof(r->port), "%s", p->port);
	if (!getaddrinfo(p->host, p->port, &hints, &res)) {
		keep_addrs(r, res);
		freeaddrinfo(res);
		r->numeric = true;
	}
	pthread_mutex_init(&r->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&r->cv, &ca);
	pthread_condattr_destroy(&ca);
	p->res = r;
	return 0;
}

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
		return resolver_new(p);
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
	return resolver_new(p);
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

static struct timespec mono_ts(__u64 ns)
{
	return (struct timespec){ .tv_sec = (time_t)(ns / 1000000000ull),
				  .tv_nsec = (long)(ns % 1000000000ull) };
}

/* The probe's addresses, into addr/len (at most MAX_ADDRS): a fresh lookup
 * if it answers by the deadline -- by half the time left when an earlier
 * answer can stand in -- or else that earlier answer. Returns how many. */
static int resolve_by(struct vg_resolver *r, __u64 deadline, struct sockaddr_storage *addr,
		      socklen_t *len)
{
	__u64 now = vg_mono_ns(), until = deadline, want;
	struct timespec ts;
	int n;

	pthread_mutex_lock(&r->mu);
	if (!r->numeric && !r->started) {
		pthread_t t;
		pthread_attr_t a;

		pthread_attr_init(&a);
		pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
		r->started = !pthread_create(&t, &a, lookup_thread, r);
		pthread_attr_destroy(&a);
		if (!r->started) {
			pthread_mutex_unlock(&r->mu);
			return 0;
		}
	}
	if (!r->numeric && r->done == r->asked) {
		r->asked++; /* a lookup still in flight is waited for instead */
		pthread_cond_broadcast(&r->cv);
	}
	want = r->asked;
	if (r->n && deadline > now)
		until = now + (deadline - now) / 2;
	ts = mono_ts(until);
	while (r->done < want && pthread_cond_timedwait(&r->cv, &r->mu, &ts) != ETIMEDOUT)
		;
	if (r->done < want && r->n && !r->said_stale) {
		pr_warn("probe: resolving %s did not answer in time; probing the address it had "
			"%.1f s ago\n", r->host, (double)(now - r->answered_ns) / 1e9);
		r->said_stale = true;
	}
	n = r->n;
	memcpy(addr, r->addr, sizeof(r->addr[0]) * n);
	memcpy(len, r->len, sizeof(r->len[0]) * n);
	pthread_mutex_unlock(&r->mu);
	return n;
}

/* Non-blocking connect bounded by the deadline; returns the fd or -1. */
static int connect_by(const struct vg_probe *p, __u64 deadline)
{
	struct sockaddr_storage addr[MAX_ADDRS];
	socklen_t len[MAX_ADDRS];
	int n = resolve_by(p->res, deadline, addr, len), fd = -1;

	for (int i = 0; i < n && fd < 0; i++) {
		struct pollfd pfd;
		int err = 0;
		socklen_t elen = sizeof(err);

		fd = socket(addr[i].ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0)
			continue;
		if (connect(fd, (struct sockaddr *)&addr[i], len[i]) && errno != EINPROGRESS)
			goto next;
		pfd = (struct pollfd){ .fd = fd, .events = POLLOUT };
		if (poll(&pfd, 1, remaining_ms(deadline)) != 1 ||
		    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) || err)
			goto next;
		break;
next:
		close(fd);
		fd = -1;
	}
	return fd;
}

static bool run_http(const struct vg_probe *p, __u32 timeout_ms)
{
	__u64 deadline = deadline_after(timeout_ms);
	char req[1024], resp[64];
	int fd = connect_by(p, deadline), n, got = 0, status;
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
		fd = connect_by(p, deadline_after(timeout_ms));
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
