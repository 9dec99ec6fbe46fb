// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
/*
 * `vigil beat`: be one agent, or a range of agents, sending beats to a
 * monitor. The reference sender for the wire format in include/vigil/wire.h.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include "vigil/agent.h"
#include "vigil/auth.h"
#include "vigil/wire.h"
#include "cli.h"
#include "keys.h"
#include "log.h"
#include "util.h"

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
	(void)sig;
	stop_requested = 1;
}

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: vigil beat --id ID[-ID] --target ADDR [OPTIONS]\n"
		"Send beats as one agent (or a range of agents) to a vigil monitor.\n"
		"\n"
		"      --id ID|A-B          agent id, or an inclusive range of ids (one process beats for all)\n"
		"  -t, --target ADDR        monitor's IPv4 or IPv6 address\n"
		"  -p, --port PORT          beat port (default 4747)\n"
		"  -I, --interval-ms N      promise and send a beat every N ms (default 1000)\n"
		"  -n, --count N            stop after N beats per agent\n"
		"  -d, --duration SEC       stop after SEC seconds\n"
		"  -s, --status STATUS      ok, degraded, draining or leaving (default ok)\n"
		"      --incarnation N      default: seconds since the epoch (rises on restart)\n"
		"      --queue-depth N      backlog to report (default 0)\n"
		"      --lease N            lease id to renew (default 0: none)\n"
		"      --leave              send one LEAVING beat on exit (graceful stop)\n"
		"      --print-acks         one agent: print lease changes learnt from the monitor's\n"
		"                           acknowledgements as JSON lines (held/lost, token)\n"
		"      --drift-ppm N        clock rate bound for the lease safety rule (default 1000)\n"
		"  -k, --keys FILE          sign with each agent's key from a key file (vigil key gen)\n"
		"      --key HEX            sign with this key (32 hex digits; one agent or all in --id)\n"
		"      --key-id 0|1         which of the agent's two keys to use (default 0)\n"
		"\n"
		"Examples:\n"
		"  vigil beat --id 7 --target 127.0.0.1 --interval-ms 100 --keys agent7.key\n"
		"  vigil beat --id 1-50 --target 198.18.0.1 --interval-ms 20 --duration 30\n");
}

struct target {
	struct sockaddr_storage ss;
	socklen_t len;
};

static int parse_target(const char *s, __u16 port, struct target *t)
{
	struct sockaddr_in *in4 = (struct sockaddr_in *)&t->ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&t->ss;

	memset(t, 0, sizeof(*t));
	if (inet_pton(AF_INET, s, &in4->sin_addr) == 1) {
		in4->sin_family = AF_INET;
		in4->sin_port = htons(port);
		t->len = sizeof(*in4);
		return 0;
	}
	if (inet_pton(AF_INET6, s, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons(port);
		t->len = sizeof(*in6);
		return 0;
	}
	pr_warn("--target: '%s' is not an IPv4 or IPv6 address\n", s);
	return -1;
}

static void sleep_until(__u64 mono_ns)
{
	struct timespec ts = { .tv_sec = mono_ns / VIGIL_NSEC_PER_SEC,
			       .tv_nsec = mono_ns % VIGIL_NSEC_PER_SEC };

	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR &&
	       !stop_requested)
		;
}

/* How beats are signed: one key for all, a key file, or not at all. */
struct signer {
	const struct vigil_key *key;
	const struct vg_keyfile *kf;
	__u8 key_id;
};

static void sign(const struct signer *sg, struct vigil_beat *b, __u64 id)
{
	const struct vigil_key *k = sg->key;

	if (sg->kf) {
		const struct agent_auth *a = vg_keyfile_get(sg->kf, id);

		k = a && (a->valid & (1u << sg->key_id)) ? &a->key[sg->key_id] : NULL;
	}
	if (k)
		vigil_beat_sign(b, k, sg->key_id);
}

static int send_round(int fd, const struct target *t, struct vigil_beat_info *info, __u64 lo,
		      __u64 hi, __u64 seq, const struct signer *sg)
{
	struct vigil_beat b;

	for (__u64 id = lo; id <= hi && !stop_requested; id++) {
		info->agent_id = id;
		info->seq = seq;
		info->send_ts_ns = vg_wall_ns();
		vigil_beat_encode(&b, info);
		sign(sg, &b, id);
		if (sendto(fd, &b, sizeof(b), 0, (const struct sockaddr *)&t->ss, t->len) < 0 &&
		    errno != ENOBUFS && errno != ECONNREFUSED) {
			pr_warn("sending beat for agent %llu failed: %s\n", (unsigned long long)id,
				strerror(errno));
			return -1;
		}
		if (id == hi)
			break; /* hi may be UINT64_MAX */
	}
	return 0;
}

/* One agent, beating through the agent library. */
struct one_agent {
	const char *target;
	__u16 port;
	struct vigil_beat_info info; /* agent_id, status, interval, lease, ... */
	bool have_inc, leave, print_acks, has_key;
	__u64 count;
	__u32 duration_s, drift_ppm;
	struct vigil_key key;
	__u8 key_id;
};

/* --print-acks: one JSON line per lease change, on the agent's thread. */
static void print_change(struct vigil_agent *a, enum vigil_lease_change what,
			 const struct vigil_lease_view *v, void *arg)
{
	const struct one_agent *o = arg;

	(void)a;
	printf("{\"agent_id\":%llu,\"lease_id\":%u,\"event\":\"%s\",\"holder\":%s,"
	       "\"token\":%llu,\"deadline_ns\":%llu,\"reason\":\"%s\",\"monitor_holder\":%llu,"
	       "\"monitor_token\":%llu,\"monitor_state\":\"%s\",\"remaining_ms\":%u,"
	       "\"now_ns\":%llu,\"mono_ns\":%llu,\"wall_ns\":%llu}\n",
	       (unsigned long long)o->info.agent_id, v->lease_id,
	       what == VIGIL_LEASE_LOST ? "lost" : what == VIGIL_LEASE_GAINED ? "held" : "token",
	       v->holder ? "true" : "false", (unsigned long long)v->token,
	       (unsigned long long)v->deadline_ns, vigil_lease_loss_name(v->lost_reason),
	       (unsigned long long)v->monitor_holder, (unsigned long long)v->monitor_token,
	       vg_lease_state_name(v->monitor_state), v->remaining_ms,
	       (unsigned long long)vigil_agent_now_ns(), (unsigned long long)vg_mono_ns(),
	       (unsigned long long)vg_wall_ns());
}

static int beat_one(struct one_agent *o)
{
	struct vigil_agent_config c = {
		.agent_id = o->info.agent_id,
		.monitor = o->target,
		.port = o->port,
		.has_key = o->has_key,
		.key_id = o->key_id,
		.interval_ms = o->info.interval_ms,
		.incarnation = o->info.incarnation,
		.has_incarnation = o->have_inc,
		.lease_id = o->info.lease_id,
		.drift_ppm = o->drift_ppm,
		.status = o->info.status,
		.queue_depth = o->info.queue_depth,
		.max_beats = o->count,
		/* Without a key the monitor runs --no-auth: its acks are unsigned. */
		.allow_unsigned_acks = !o->has_key,
		.on_change = o->print_acks ? print_change : NULL,
		.arg = o,
	};
	struct vigil_agent *a;
	__u64 start = vg_mono_ns(), send_errors = 0;

	if (o->has_key)
		for (int i = 0; i < 16; i++)
			c.key[i] = (__u8)((i < 8 ? o->key.k0 : o->key.k1) >> (8 * (i % 8)));
	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	a = vigil_agent_start(&c);
	if (!a) {
		pr_warn("starting the agent failed: %s\n", strerror(errno));
		return 1;
	}
	while (!stop_requested && vigil_agent_wait(a, 20) != 0) {
		struct vigil_lease_view v;

		vigil_agent_lease(a, &v);
		if (v.send_errors && !send_errors)
			pr_warn("sending beats to %s failed: %s (still trying)\n", o->target,
				strerror(v.send_errno));
		send_errors = v.send_errors;
		if (o->duration_s &&
		    vg_mono_ns() - start >= (__u64)o->duration_s * VIGIL_NSEC_PER_SEC)
			break;
	}
	{
		struct vigil_lease_view v;

		vigil_agent_lease(a, &v);
		vigil_agent_stop(a, o->leave);
		/* Like the loop for ranges: a run in which no beat went out failed. */
		return v.beats_sent && v.send_errors >= v.beats_sent ? 1 : 0;
	}
}

int cmd_beat(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "id", required_argument, NULL, 'i' },
		{ "target", required_argument, NULL, 't' },
		{ "port", required_argument, NULL, 'p' },
		{ "interval-ms", required_argument, NULL, 'I' },
		{ "count", required_argument, NULL, 'n' },
		{ "duration", required_argument, NULL, 'd' },
		{ "status", required_argument, NULL, 's' },
		{ "incarnation", required_argument, NULL, 'C' },
		{ "queue-depth", required_argument, NULL, 'Q' },
		{ "lease", required_argument, NULL, 'L' },
		{ "leave", no_argument, NULL, 'l' },
		{ "keys", required_argument, NULL, 'k' },
		{ "key", required_argument, NULL, 'K' },
		{ "key-id", required_argument, NULL, 'X' },
		{ "print-acks", no_argument, NULL, 'P' },
		{ "drift-ppm", required_argument, NULL, 'D' },
		{ "help", no_argument, NULL, 'h' },
		{}
	};
	struct vigil_beat_info info = { .interval_ms = 1000 };
	const char *target_s = NULL;
	__u64 lo = 0, hi = 0, count = 0, seq, next, start, round, now;
	__u32 port = VIGIL_DEFAULT_PORT, duration_s = 0, v32;
	bool leave = false, have_inc = false, print_acks = false;
	__u32 drift_ppm = 0;
	const char *keys_path = NULL;
	struct vg_keyfile kf = {};
	struct vigil_key key;
	struct signer sg = {};
	struct target t;
	int opt, fd, ret = 0;

	while ((opt = getopt_long(argc, argv, "t:p:I:n:d:s:k:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'i':
			if (vg_parse_range(optarg, "--id", &lo, &hi))
				return 2;
			break;
		case 't':
			target_s = optarg;
			break;
		case 'p':
			if (vg_parse_u32(optarg, "--port", 1, 65535, &port))
				return 2;
			break;
		case 'I':
			if (vg_parse_u32(optarg, "--interval-ms", 1, 3600000, &info.interval_ms))
				return 2;
			break;
		case 'n':
			if (vg_parse_u64(optarg, "--count", 1, UINT64_MAX, &count))
				return 2;
			break;
		case 'd':
			if (vg_parse_u32(optarg, "--duration", 1, 86400 * 365, &duration_s))
				return 2;
			break;
		case 's':
			if (vg_status_parse(optarg, &v32))
				return 2;
			info.status = (__u8)v32;
			break;
		case 'C':
			if (vg_parse_u32(optarg, "--incarnation", 0, UINT32_MAX, &info.incarnation))
				return 2;
			have_inc = true;
			break;
		case 'Q':
			if (vg_parse_u32(optarg, "--queue-depth", 0, 65535, &v32))
				return 2;
			info.queue_depth = (__u16)v32;
			break;
		case 'L':
			if (vg_parse_u32(optarg, "--lease", 0, UINT32_MAX, &info.lease_id))
				return 2;
			break;
		case 'l':
			leave = true;
			break;
		case 'k':
			keys_path = optarg;
			break;
		case 'K':
			if (vg_key_parse(optarg, &key)) {
				pr_warn("--key: must be 32 hex digits (128 bits)\n");
				return 2;
			}
			sg.key = &key;
			break;
		case 'X':
			if (vg_parse_u32(optarg, "--key-id", 0, 1, &v32))
				return 2;
			sg.key_id = (__u8)v32;
			break;
		case 'P':
			print_acks = true;
			break;
		case 'D':
			if (vg_parse_u32(optarg, "--drift-ppm", 1, 999999, &drift_ppm))
				return 2;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		pr_warn("beat: unexpected argument '%s' (see vigil beat --help)\n", argv[optind]);
		return 2;
	}
	if (!lo || !target_s) {
		pr_warn("beat: --id and --target are required (see vigil beat --help)\n");
		return 2;
	}
	if (hi - lo >= 1000000) {
		pr_warn("--id: at most 1000000 agents per process\n");
		return 2;
	}
	if (parse_target(target_s, (__u16)port, &t))
		return 2;
	if (keys_path && sg.key) {
		pr_warn("beat: give --keys or --key, not both\n");
		return 2;
	}
	if (keys_path) {
		if (vg_keyfile_load(keys_path, false, &kf))
			return 2;
		sg.kf = &kf;
		for (__u64 id = lo; id <= hi; id++) {
			const struct agent_auth *a = vg_keyfile_get(&kf, id);

			if (!a || !(a->valid & (1u << sg.key_id))) {
				pr_warn("%s: no key %u for agent %llu\n", keys_path, sg.key_id,
					(unsigned long long)id);
				vg_keyfile_free(&kf);
				return 2;
			}
			if (id == hi)
				break;
		}
	}
	if (lo == hi) {
		/* One agent: the agent library (include/vigil/agent.h). */
		const struct vigil_key *k = sg.key;
		struct one_agent o = { .target = target_s, .port = (__u16)port, .info = info,
				       .have_inc = have_inc, .count = count,
				       .duration_s = duration_s, .leave = leave,
				       .print_acks = print_acks, .drift_ppm = drift_ppm,
				       .key_id = sg.key_id };

		o.info.agent_id = lo;
		if (sg.kf)
			k = &vg_keyfile_get(&kf, lo)->key[sg.key_id];
		if (k) {
			o.key = *k;
			o.has_key = true;
		}
		ret = beat_one(&o);
		vg_keyfile_free(&kf);
		return ret;
	}
	if (print_acks)
		pr_warn("beat: --print-acks works with one agent id only; ignored\n");
	if (!have_inc)
		info.incarnation = (__u32)(vg_wall_ns() / VIGIL_NSEC_PER_SEC);
	fd = socket(t.ss.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		pr_warn("creating a UDP socket failed: %s\n", strerror(errno));
		return 1;
	}
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);

	/* Sequences start at the wall clock in microseconds, so a restart
	 * within the same second (same default incarnation) still moves them
	 * forward instead of being taken for a replay. */
	seq = vg_wall_ns() / 1000;
	start = next = vg_mono_ns();
	for (round = 1; !stop_requested; round++, seq++) {
		if (send_round(fd, &t, &info, lo, hi, seq, &sg)) {
			ret = 1;
			break;
		}
		if (count && round >= count)
			break;
		next += (__u64)info.interval_ms * VIGIL_NSEC_PER_MSEC;
		/* Held off past a whole interval (stopped, starved): beat once
		 * now and keep the cadence from here. Sending every missed round
		 * in a burst says nothing more and trips the monitor's rate limit. */
		now = vg_mono_ns();
		if (next + (__u64)info.interval_ms * VIGIL_NSEC_PER_MSEC <= now)
			next = now;
		if (duration_s && next - start >= (__u64)duration_s * VIGIL_NSEC_PER_SEC)
			break;
		sleep_until(next);
	}
	if (leave) {
		info.status = VIGIL_STATUS_LEAVING;
		stop_requested = 0;
		send_round(fd, &t, &info, lo, hi, seq + 1, &sg);
	}
	close(fd);
	vg_keyfile_free(&kf);
	return ret;
}
