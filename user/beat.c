// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
/*
 * `vigil beat`: be one agent, or a range of agents, sending beats to a
 * monitor. The reference sender for the wire format in include/vigil/wire.h.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
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
#include "probe.h"
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
		"      --send-log FILE      append a JSON line per beat sent: sequence, when it was\n"
		"                           due, when send(2) started and returned (CLOCK_MONOTONIC\n"
		"                           ns): proof of when the agent beat\n"
		"  -k, --keys FILE          sign with each agent's key from a key file (vigil key gen)\n"
		"      --key HEX            sign with this key (32 hex digits; one agent or all in --id)\n"
		"      --key-id 0|1         which of the agent's two keys to use (default 0)\n"
		"\n"
		"Cadence (the agent library; docs/leases.md#adaptive-cadence):\n"
		"      --max-interval-ms N  follow the monitor's recommended interval (storm\n"
		"                           control) up to N ms; keep N within the group's\n"
		"                           interval-max-ms\n"
		"      --adaptive MIN,MAX   adapt the interval to the queue depth within MIN..MAX ms\n"
		"                           (replaces --interval-ms and --max-interval-ms)\n"
		"      --queue-thresholds HIGH,LOW  step up from level k at depth >= HIGH x 2^k,\n"
		"                           down at depth <= LOW x 2^(k-1) (default 64,16)\n"
		"      --dwell-ms N         least time between two steps (default 4 intervals)\n"
		"      --queue-depth-from FILE  read the queue depth to report from FILE (its\n"
		"                           first number) every 20 ms, e.g. to drive --adaptive\n"
		"      --print-cadence      print each change of the announced interval as a JSON line\n"
		"\n"
		"Probe mode (one agent id; docs/migration.md): beat only while a check passes.\n"
		"The check runs ahead of each beat with 80 %% of the interval as its timeout\n"
		"(a command is killed with its process group when the time is up):\n"
		"      --probe-exec CMD     /bin/sh -c CMD exits 0\n"
		"      --probe-tcp HOST:PORT  a TCP connection opens\n"
		"      --probe-http URL     http://HOST[:PORT]/PATH answers 200..399\n"
		"\n"
		"Examples:\n"
		"  vigil beat --id 7 --target 127.0.0.1 --interval-ms 100 --keys agent7.key\n"
		"  vigil beat --id 1-50 --target 198.18.0.1 --interval-ms 20 --duration 30\n"
		"  vigil beat --id 9 --target 127.0.0.1 --keys k --probe-http http://127.0.0.1:8080/healthz\n"
		"  vigil beat --id 7 --target 127.0.0.1 --keys k --adaptive 20,320 --queue-depth-from /run/q\n");
}

struct target {
	struct sockaddr_storage ss;
	socklen_t len;
};

/* --send-log: when each beat really went out, on the monitor's clock. */
static FILE *send_log;

static void log_send(__u64 lo, __u64 hi, __u64 seq, __u64 due, __u64 start, __u64 end)
{
	if (lo == hi)
		fprintf(send_log, "{\"ids\":\"%llu\",", (unsigned long long)lo);
	else
		fprintf(send_log, "{\"ids\":\"%llu-%llu\",", (unsigned long long)lo,
			(unsigned long long)hi);
	fprintf(send_log, "\"seq\":%llu,\"due_ns\":%llu,\"start_ns\":%llu,\"end_ns\":%llu}\n",
		(unsigned long long)seq, (unsigned long long)due, (unsigned long long)start,
		(unsigned long long)end);
}

/* The agent library's clock (CLOCK_BOOTTIME) to CLOCK_MONOTONIC. */
static __u64 boot_to_mono(__u64 boot_ns)
{
	__u64 mono = vg_mono_ns(), boot = vigil_agent_now_ns();

	return boot_ns ? boot_ns - (boot - mono) : 0;
}

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
		info->send_ts_ns = vg_mono_ns(); /* never steps back (docs/wire-format.md) */
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

/* Agents beating through the agent library: one id, or a range when the
 * cadence can change (--adaptive, --max-interval-ms). */
struct lib_opts {
	const char *target;
	__u16 port;
	struct vigil_beat_info info; /* status, interval, lease, queue depth, ... */
	bool have_inc, leave, print_acks, print_cadence;
	__u64 count;
	__u32 duration_s, drift_ppm;
	__u32 max_interval_ms, dwell_ms;
	__u16 queue_high, queue_low;
	bool adaptive;
	const char *queue_file;   /* --queue-depth-from */
	const struct vg_probe *probe; /* one agent only */
	const struct signer *sg;
};

/* One agent's own state; the callbacks get it as their argument. */
struct lib_agent {
	const struct lib_opts *o;
	struct vigil_agent *a;
	__u64 id;
	__u32 last_iv;   /* cadence printing: the interval before the change */
	int probe_state; /* -1 unknown, 0 failing, 1 passing: logged on change */
};

/* --print-acks / --print-cadence: one JSON line per change, on the agent's
 * thread. */
static void print_change(struct vigil_agent *a, enum vigil_lease_change what,
			 const struct vigil_lease_view *v, void *arg)
{
	struct lib_agent *la = arg;
	const struct lib_opts *o = la->o;

	(void)a;
	if (what == VIGIL_CADENCE_CHANGED) {
		if (o->print_cadence)
			printf("{\"agent_id\":%llu,\"event\":\"cadence\",\"interval_ms\":%u,"
			       "\"previous_ms\":%u,\"level\":%u,\"queue_depth\":%u,"
			       "\"recommend_interval_ms\":%u,\"changes\":%u,\"now_ns\":%llu,"
			       "\"mono_ns\":%llu,\"wall_ns\":%llu}\n",
			       (unsigned long long)la->id, v->interval_ms, la->last_iv,
			       v->cadence_level, v->queue_depth, v->recommend_interval_ms,
			       v->cadence_changes, (unsigned long long)vigil_agent_now_ns(),
			       (unsigned long long)vg_mono_ns(), (unsigned long long)vg_wall_ns());
		la->last_iv = v->interval_ms;
		return;
	}
	if (!o->print_acks)
		return;
	printf("{\"agent_id\":%llu,\"lease_id\":%u,\"event\":\"%s\",\"holder\":%s,"
	       "\"token\":%llu,\"deadline_ns\":%llu,\"reason\":\"%s\",\"monitor_holder\":%llu,"
	       "\"monitor_token\":%llu,\"monitor_state\":\"%s\",\"remaining_ms\":%u,"
	       "\"now_ns\":%llu,\"mono_ns\":%llu,\"wall_ns\":%llu}\n",
	       (unsigned long long)la->id, v->lease_id,
	       what == VIGIL_LEASE_LOST ? "lost" : what == VIGIL_LEASE_GAINED ? "held" : "token",
	       v->holder ? "true" : "false", (unsigned long long)v->token,
	       (unsigned long long)v->deadline_ns, vigil_lease_loss_name(v->lost_reason),
	       (unsigned long long)v->monitor_holder, (unsigned long long)v->monitor_token,
	       vg_lease_state_name(v->monitor_state), v->remaining_ms,
	       (unsigned long long)vigil_agent_now_ns(), (unsigned long long)vg_mono_ns(),
	       (unsigned long long)vg_wall_ns());
}

static void on_sent(struct vigil_agent *a, uint64_t seq, uint64_t due_ns, uint64_t start_ns,
		    uint64_t end_ns, void *arg)
{
	struct lib_agent *la = arg;

	(void)a;
	log_send(la->id, la->id, seq, boot_to_mono(due_ns), boot_to_mono(start_ns),
		 boot_to_mono(end_ns));
}

/* Probe mode: the check, ahead of each beat, within 80 % of the interval. */
static int probe_gate(struct vigil_agent *a, __u32 timeout_ms, void *arg)
{
	struct lib_agent *la = arg;
	__u64 t0 = vg_mono_ns();
	bool ok = vg_probe_run(la->o->probe, timeout_ms);

	(void)a;
	if ((int)ok != la->probe_state) {
		if (ok)
			pr_info("probe passes: beating for agent %llu\n", (unsigned long long)la->id);
		else
			pr_warn("probe failed after %.1f ms (budget %u ms): not beating for agent %llu\n",
				(double)(vg_mono_ns() - t0) / 1e6, timeout_ms,
				(unsigned long long)la->id);
		la->probe_state = ok;
	}
	return ok;
}

/* --queue-depth-from FILE: its first number, 0..65535; -1 when unreadable. */
static int read_queue_depth(const char *path)
{
	char buf[32];
	ssize_t n;
	long v;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	v = strtol(buf, NULL, 10);
	return v < 0 ? 0 : v > 65535 ? 65535 : (int)v;
}

static int beat_lib(const struct lib_opts *o, __u64 lo, __u64 hi)
{
	size_t n = (size_t)(hi - lo + 1), started = 0;
	struct lib_agent *las = calloc(n, sizeof(*las));
	__u64 start = vg_mono_ns();
	int ret = 0, depth = -1;
	bool warned = false;

	if (!las) {
		pr_warn("beat: out of memory\n");
		return 1;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	if (o->queue_file)
		depth = read_queue_depth(o->queue_file);
	for (size_t i = 0; i < n; i++) {
		struct lib_agent *la = &las[i];
		struct vigil_agent_config c = {
			.agent_id = lo + i,
			.monitor = o->target,
			.port = o->port,
			.key_id = o->sg->key_id,
			.interval_ms = o->info.interval_ms,
			.max_interval_ms = o->max_interval_ms,
			.incarnation = o->info.incarnation,
			.has_incarnation = o->have_inc,
			.lease_id = o->info.lease_id,
			.drift_ppm = o->drift_ppm,
			.status = o->info.status,
			.queue_depth = depth >= 0 ? (__u16)depth : o->info.queue_depth,
			.max_beats = o->count,
			.on_change = o->print_acks || o->print_cadence ? print_change : NULL,
			.arg = la,
			.adaptive = o->adaptive,
			.queue_high = o->queue_high,
			.queue_low = o->queue_low,
			.dwell_ms = o->dwell_ms,
			.gate = o->probe ? probe_gate : NULL,
			.on_send = send_log ? on_sent : NULL,
		};
		const struct vigil_key *k = o->sg->key;

		la->o = o;
		la->id = lo + i;
		la->last_iv = o->info.interval_ms;
		la->probe_state = -1;
		if (o->sg->kf)
			k = &vg_keyfile_get(o->sg->kf, la->id)->key[o->sg->key_id];
		if (k) {
			c.has_key = 1;
			for (int j = 0; j < 16; j++)
				c.key[j] = (__u8)((j < 8 ? k->k0 : k->k1) >> (8 * (j % 8)));
		}
		/* Without a key the monitor runs --no-auth: its acks are unsigned. */
		c.allow_unsigned_acks = !c.has_key;
		la->a = vigil_agent_start(&c);
		if (!la->a) {
			pr_warn("starting agent %llu failed: %s\n", (unsigned long long)la->id,
				strerror(errno));
			ret = 1;
			break;
		}
		started++;
	}
	while (!ret && !stop_requested) {
		bool all_done = true;

		if (n == 1) {
			all_done = vigil_agent_wait(las[0].a, 20) == 0;
		} else {
			struct timespec ts = { .tv_nsec = 20 * 1000000L };

			nanosleep(&ts, NULL);
			for (size_t i = 0; i < n && all_done; i++)
				all_done = vigil_agent_wait(las[i].a, 0) == 0;
		}
		if (all_done)
			break;
		if (o->queue_file) {
			int d = read_queue_depth(o->queue_file);

			if (d >= 0 && d != depth) {
				depth = d;
				for (size_t i = 0; i < n; i++)
					vigil_agent_set_queue_depth(las[i].a, (__u16)d);
			}
		}
		if (!warned) {
			struct vigil_lease_view v;

			vigil_agent_lease(las[0].a, &v);
			if (v.send_errors) {
				pr_warn("sending beats to %s failed: %s (still trying)\n", o->target,
					strerror(v.send_errno));
				warned = true;
			}
		}
		if (o->duration_s &&
		    vg_mono_ns() - start >= (__u64)o->duration_s * VIGIL_NSEC_PER_SEC)
			break;
	}
	for (size_t i = 0; i < started; i++) {
		struct vigil_lease_view v;

		vigil_agent_lease(las[i].a, &v);
		vigil_agent_stop(las[i].a, o->leave);
		/* Like the loop for ranges: an agent none of whose beats went out failed. */
		if (v.beats_sent && v.send_errors >= v.beats_sent)
			ret = 1;
	}
	free(las);
	return ret;
}

/* "A,B" with A in [amin, amax] and B in [bmin(A), bmax]; one line on error. */
static int parse_pair(const char *arg, const char *what, __u32 amin, __u32 amax, bool b_above_a,
		      __u32 bmin, __u32 bmax, __u32 *a, __u32 *b)
{
	char buf[64], *comma;

	snprintf(buf, sizeof(buf), "%s", arg);
	comma = strchr(buf, ',');
	if (!comma) {
		pr_warn("%s: '%s' is not two numbers separated by a comma\n", what, arg);
		return -1;
	}
	*comma = '\0';
	if (vg_parse_u32(buf, what, amin, amax, a))
		return -1;
	if (b_above_a)
		bmin = *a;
	else if (*a - 1 < bmax)
		bmax = *a - 1; /* B below A */
	return vg_parse_u32(comma + 1, what, bmin, bmax, b);
}

int cmd_beat(int argc, char **argv)
{
	enum {
		OPT_MAX_INTERVAL = 0x4400,
		OPT_ADAPTIVE,
		OPT_THRESHOLDS,
		OPT_DWELL,
		OPT_QUEUE_FROM,
		OPT_PRINT_CADENCE,
		OPT_PROBE_EXEC,
		OPT_PROBE_TCP,
		OPT_PROBE_HTTP,
		OPT_SEND_LOG,
	};
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
		{ "max-interval-ms", required_argument, NULL, OPT_MAX_INTERVAL },
		{ "adaptive", required_argument, NULL, OPT_ADAPTIVE },
		{ "queue-thresholds", required_argument, NULL, OPT_THRESHOLDS },
		{ "dwell-ms", required_argument, NULL, OPT_DWELL },
		{ "queue-depth-from", required_argument, NULL, OPT_QUEUE_FROM },
		{ "print-cadence", no_argument, NULL, OPT_PRINT_CADENCE },
		{ "probe-exec", required_argument, NULL, OPT_PROBE_EXEC },
		{ "probe-tcp", required_argument, NULL, OPT_PROBE_TCP },
		{ "probe-http", required_argument, NULL, OPT_PROBE_HTTP },
		{ "send-log", required_argument, NULL, OPT_SEND_LOG },
		{ "help", no_argument, NULL, 'h' },
		{}
	};
	struct vigil_beat_info info = { .interval_ms = 1000 };
	const char *target_s = NULL;
	__u64 lo = 0, hi = 0, count = 0, seq, next, start, round, now;
	__u32 port = VIGIL_DEFAULT_PORT, duration_s = 0, v32;
	bool leave = false, have_inc = false, print_acks = false, interval_given = false;
	__u32 drift_ppm = 0, ad_min = 0, ad_max = 0, th_high, th_low;
	struct lib_opts lo_opts = {};
	struct vg_probe probe;
	bool have_probe = false;
	const char *keys_path = NULL, *send_log_path = NULL;
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
			interval_given = true;
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
		case OPT_MAX_INTERVAL:
			if (vg_parse_u32(optarg, "--max-interval-ms", 1, 3600000,
					 &lo_opts.max_interval_ms))
				return 2;
			break;
		case OPT_ADAPTIVE:
			if (parse_pair(optarg, "--adaptive", 1, 3600000, true, 0, 3600000, &ad_min,
				       &ad_max))
				return 2;
			lo_opts.adaptive = true;
			break;
		case OPT_THRESHOLDS:
			if (parse_pair(optarg, "--queue-thresholds", 1, 65535, false, 0, 65535, &th_high,
				       &th_low))
				return 2;
			lo_opts.queue_high = (__u16)th_high;
			lo_opts.queue_low = (__u16)th_low;
			break;
		case OPT_DWELL:
			if (vg_parse_u32(optarg, "--dwell-ms", 1, 3600000, &lo_opts.dwell_ms))
				return 2;
			break;
		case OPT_QUEUE_FROM:
			lo_opts.queue_file = optarg;
			break;
		case OPT_PRINT_CADENCE:
			lo_opts.print_cadence = true;
			break;
		case OPT_PROBE_EXEC:
		case OPT_PROBE_TCP:
		case OPT_PROBE_HTTP:
			if (have_probe) {
				pr_warn("beat: give one --probe-* option\n");
				return 2;
			}
			if (vg_probe_parse(&probe, opt == OPT_PROBE_EXEC ? "exec" :
						   opt == OPT_PROBE_TCP ? "tcp" : "http", optarg))
				return 2;
			have_probe = true;
			break;
		case OPT_SEND_LOG:
			send_log_path = optarg;
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
	if (send_log_path) {
		send_log = fopen(send_log_path, "ae");
		if (!send_log) {
			pr_warn("--send-log: cannot open %s: %s\n", send_log_path, strerror(errno));
			return 2;
		}
		setvbuf(send_log, NULL, _IOLBF, 0);
	}
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
	if (lo_opts.adaptive) {
		if (interval_given || lo_opts.max_interval_ms) {
			pr_warn("beat: --adaptive MIN,MAX replaces --interval-ms and --max-interval-ms\n");
			vg_keyfile_free(&kf);
			return 2;
		}
		info.interval_ms = ad_min;
		lo_opts.max_interval_ms = ad_max;
	} else if (lo_opts.queue_high || lo_opts.dwell_ms) {
		pr_warn("beat: --queue-thresholds and --dwell-ms need --adaptive\n");
		vg_keyfile_free(&kf);
		return 2;
	}
	if (lo_opts.max_interval_ms && lo_opts.max_interval_ms < info.interval_ms) {
		pr_warn("--max-interval-ms: %u is below the interval (%u ms)\n",
			lo_opts.max_interval_ms, info.interval_ms);
		vg_keyfile_free(&kf);
		return 2;
	}
	if (have_probe && lo != hi) {
		pr_warn("beat: probe mode beats for one agent id\n");
		vg_keyfile_free(&kf);
		return 2;
	}
	/* One agent, or agents whose cadence can change: the agent library
	 * (include/vigil/agent.h), one thread per agent. */
	if (lo == hi || lo_opts.adaptive || lo_opts.max_interval_ms) {
		if (hi - lo >= 1024) {
			pr_warn("--id: at most 1024 agents per process with --adaptive or "
				"--max-interval-ms\n");
			vg_keyfile_free(&kf);
			return 2;
		}
		lo_opts.target = target_s;
		lo_opts.port = (__u16)port;
		lo_opts.info = info;
		lo_opts.have_inc = have_inc;
		lo_opts.count = count;
		lo_opts.duration_s = duration_s;
		lo_opts.leave = leave;
		lo_opts.print_acks = print_acks;
		lo_opts.drift_ppm = drift_ppm;
		lo_opts.probe = have_probe ? &probe : NULL;
		lo_opts.sg = &sg;
		ret = beat_lib(&lo_opts, lo, hi);
		vg_keyfile_free(&kf);
		return ret;
	}
	if (lo_opts.queue_file || lo_opts.print_cadence)
		pr_warn("beat: --queue-depth-from and --print-cadence need one agent id, --adaptive "
			"or --max-interval-ms; ignored\n");
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
		__u64 t0 = vg_mono_ns();

		if (send_round(fd, &t, &info, lo, hi, seq, &sg)) {
			ret = 1;
			break;
		}
		if (send_log)
			log_send(lo, hi, seq, next, t0, vg_mono_ns());
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
