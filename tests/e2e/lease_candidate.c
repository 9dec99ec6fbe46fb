// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
/*
 * A lease candidate for tests/e2e/85-leases.sh, built on the static agent
 * library (include/vigil/agent.h). It beats for one agent id naming one
 * lease and, every --write-ms, writes to the protected resource
 * (fence_resource.c) with its fencing token whenever the library says it
 * holds the lease. Lease changes are printed as JSON lines on stdout.
 *
 *   lease_candidate --id N --target ADDR[,ADDR...] --key HEX --lease L
 *                   --socket PATH [--interval-ms I] [--write-ms W] [--port P]
 *
 * Several targets: it beats to each monitor (one key set shared by all),
 * as in tests/e2e/88-lease-failover.sh.
 *
 * SIGUSR1: go DRAINING for --drain-ms (default 300), handing the lease over,
 * then back to OK. SIGUSR2: at the next write as the holder, stop the whole
 * process (SIGSTOP) between the check and the write, the way a pause hits an
 * application at the worst moment; after SIGCONT the write goes out with the
 * token it checked, which the resource must refuse if a newer holder wrote.
 * SIGTERM/SIGINT: stop (SIGHUP: stop with a LEAVING beat).
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include "vigil/agent.h"
#include "fence.h"

static volatile sig_atomic_t stop, leave, drain, stall;

static void on_signal(int sig)
{
	if (sig == SIGUSR1)
		drain = 1;
	else if (sig == SIGUSR2)
		stall = 1;
	else
		stop = 1;
	if (sig == SIGHUP)
		leave = 1;
}

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t wall_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void on_change(struct vigil_agent *a, enum vigil_lease_change what,
		      const struct vigil_lease_view *v, void *arg)
{
	uint64_t id = *(const uint64_t *)arg;

	(void)a;
	printf("{\"agent_id\":%llu,\"pid\":%d,\"event\":\"%s\",\"token\":%llu,\"holder\":%s,"
	       "\"reason\":\"%s\",\"monitor_holder\":%llu,\"monitor_token\":%llu,"
	       "\"deadline_ns\":%llu,\"now_ns\":%llu,\"mono_ns\":%llu,\"wall_ns\":%llu}\n",
	       (unsigned long long)id, (int)getpid(), vigil_lease_change_name(what),
	       (unsigned long long)v->token, v->holder ? "true" : "false",
	       vigil_lease_loss_name(v->lost_reason), (unsigned long long)v->monitor_holder,
	       (unsigned long long)v->monitor_token, (unsigned long long)v->deadline_ns,
	       (unsigned long long)vigil_agent_now_ns(), (unsigned long long)mono_ns(),
	       (unsigned long long)wall_ns());
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "id", required_argument, NULL, 'i' },
		{ "target", required_argument, NULL, 't' },
		{ "port", required_argument, NULL, 'p' },
		{ "key", required_argument, NULL, 'k' },
		{ "lease", required_argument, NULL, 'L' },
		{ "socket", required_argument, NULL, 's' },
		{ "interval-ms", required_argument, NULL, 'I' },
		{ "write-ms", required_argument, NULL, 'w' },
		{ "drain-ms", required_argument, NULL, 'd' },
		{}
	};
	struct vigil_agent_config c = { .interval_ms = 50 };
	struct vigil_agent_monitor mons[VIGIL_AGENT_MAX_MONITORS] = {};
	char *list = NULL;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct sigaction act = { .sa_handler = on_signal };
	unsigned write_ms = 5, drain_ms = 300;
	uint64_t id = 0, n = 0, drain_until = 0;
	const char *sock = NULL;
	struct vigil_agent *a;
	int opt, fd;

	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case 'i':
			id = strtoull(optarg, NULL, 10);
			break;
		case 't':
			list = optarg;
			break;
		case 'p':
			c.port = (uint16_t)atoi(optarg);
			break;
		case 'k':
			if (vigil_agent_key_parse(optarg, c.key)) {
				fprintf(stderr, "--key: 32 hex digits\n");
				return 2;
			}
			c.has_key = 1;
			break;
		case 'L':
			c.lease_id = (uint32_t)atoi(optarg);
			break;
		case 's':
			sock = optarg;
			break;
		case 'I':
			c.interval_ms = (uint32_t)atoi(optarg);
			break;
		case 'w':
			write_ms = (unsigned)atoi(optarg);
			break;
		case 'd':
			drain_ms = (unsigned)atoi(optarg);
			break;
		default:
			return 2;
		}
	}
	for (char *p = list ? strtok(list, ",") : NULL; p; p = strtok(NULL, ",")) {
		if (c.n_monitors == VIGIL_AGENT_MAX_MONITORS) {
			fprintf(stderr, "--target: at most %d monitors\n", VIGIL_AGENT_MAX_MONITORS);
			return 2;
		}
		mons[c.n_monitors++].address = p;
	}
	if (c.n_monitors == 1) {
		c.monitor = mons[0].address; /* the one-monitor form of the API */
		c.n_monitors = 0;
	} else {
		c.monitors = mons;
	}
	if (!id || !list || !sock || strlen(sock) >= sizeof(sa.sun_path) || !write_ms) {
		fprintf(stderr, "usage: lease_candidate --id N --target ADDR --key HEX --lease L "
				"--socket PATH [--interval-ms I] [--write-ms W]\n");
		return 2;
	}
	strcpy(sa.sun_path, sock);
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		perror("socket");
		return 1;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	sigaction(SIGTERM, &act, NULL);
	sigaction(SIGINT, &act, NULL);
	sigaction(SIGHUP, &act, NULL);
	sigaction(SIGUSR1, &act, NULL);
	sigaction(SIGUSR2, &act, NULL);
	c.agent_id = id;
	c.on_change = on_change;
	c.arg = &id;
	a = vigil_agent_start(&c);
	if (!a) {
		perror("vigil_agent_start");
		return 1;
	}
	while (!stop) {
		struct timespec ts = { .tv_nsec = (long)write_ms * 1000000L };
		struct vigil_lease_view v;

		if (drain) {
			drain = 0;
			vigil_agent_set_status(a, VIGIL_AGENT_STATUS_DRAINING);
			drain_until = mono_ns() + (uint64_t)drain_ms * 1000000ull;
		}
		if (drain_until && mono_ns() >= drain_until) {
			drain_until = 0;
			vigil_agent_set_status(a, VIGIL_AGENT_STATUS_OK);
		}
		/* The check and the write, as an application would do them. A
		 * pause between the two is exactly what the token fences. */
		if (vigil_agent_lease(a, &v)) {
			struct fence_write w = {
				.magic = FENCE_MAGIC,
				.pid = (uint32_t)getpid(),
				.agent_id = id,
				.token = v.token,
				.decided_ns = v.now_ns, /* holder at exactly this time */
				.deadline_ns = v.deadline_ns,
				.n = ++n,
			};

			if (stall) {
				stall = 0;
				printf("{\"agent_id\":%llu,\"pid\":%d,\"event\":\"stall\","
				       "\"token\":%llu}\n", (unsigned long long)id, (int)getpid(),
				       (unsigned long long)v.token);
				raise(SIGSTOP);
			}

			if (sendto(fd, &w, sizeof(w), 0, (struct sockaddr *)&sa, sizeof(sa)) < 0 &&
			    errno != ENOENT && errno != ECONNREFUSED && errno != EAGAIN)
				perror("write to the resource");
		}
		nanosleep(&ts, NULL);
	}
	vigil_agent_stop(a, leave);
	close(fd);
	return 0;
}
