// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
/*
 * `vigil beat`: be one agent, or a range of agents, sending beats to a
 * monitor, or to several (each gets every beat; docs/monitors.md). The
 * reference sender for the wire format in include/vigil/wire.h.
 *
 * Two engines send (pick_engine() says which and why): the agent library
 * (include/vigil/agent.h), a thread per agent, and the round loop, one
 * thread sending a round of beats for a whole range every interval.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
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
#include "cli/beat_probe.h"
#include "cli/cli.h"
#include "common/event.h"
#include "common/json.h"
#include "common/keys.h"
#include "common/log.h"
#include "common/options.h"
#include "common/secret.h"
#include "common/targets.h"
#include "common/util.h"

struct beat_opts {
	__u64 id_lo, id_hi;          /* --id */
	struct vg_targets targets;   /* --target: the round loop sends to .ss, the
				      * agent library parses .addr itself */
	__u16 port;
	struct vigil_beat_info info; /* interval, status, incarnation, queue depth, lease */
	__u64 count;
	__u32 duration_s, drift_ppm;
	bool leave, print_acks;
	const char *send_log_path;
	const char *keys_path;
	struct vg_key_src key;       /* --key, --key-file, VIGIL_KEY */
	__u8 key_id;
	__u32 max_interval_ms;
	__u32 adaptive_min, adaptive_max;
	struct thresholds { __u16 high, low; } thresholds; /* 0: the agent library's */
	__u32 dwell_ms;
	const char *queue_file;      /* --queue-depth-from */
	bool print_cadence;
	struct vg_probe probe;       /* kind VG_PROBE_NONE: no probe mode */

	/* From check() and open_files(), released by close_files(). */
	bool have_inc, adaptive;
	struct vg_keyfile kf;
	struct vg_keyfile target_kf[VG_MAX_TARGETS]; /* a target's own key file (@FILE) */
	FILE *send_log;
};

#define BEAT struct beat_opts

/* The order of enum vigil_agent_status. */
static const char *const statuses[] = {
	[VIGIL_STATUS_OK] = "ok",
	[VIGIL_STATUS_DEGRADED] = "degraded",
	[VIGIL_STATUS_DRAINING] = "draining",
	[VIGIL_STATUS_LEAVING] = "leaving",
	NULL,
};
_Static_assert(VIGIL_STATUS_MAX == VIGIL_STATUS_LEAVING, "a new status needs its name here");

static int parse_target(const char *arg, void *field, const struct vg_opt *o)
{
	return vg_targets_parse(field, arg, o->name);
}

/* --queue-thresholds HIGH,LOW: HIGH in [1, 65535], LOW below it. */
static int parse_thresholds(const char *arg, void *field, const struct vg_opt *o)
{
	struct thresholds *th = field;
	char what[32], buf[64], *comma;
	__u32 high, low;

	snprintf(what, sizeof(what), "--%s", o->name);
	snprintf(buf, sizeof(buf), "%s", arg);
	comma = strchr(buf, ',');
	if (!comma) {
		pr_warn("%s: '%s' is not two numbers separated by a comma\n", what, arg);
		return -1;
	}
	*comma = '\0';
	if (vg_parse_u32(buf, what, 1, 65535, &high) ||
	    vg_parse_u32(comma + 1, what, 0, high - 1, &low))
		return -1;
	th->high = (__u16)high;
	th->low = (__u16)low;
	return 0;
}

/* --probe-exec, --probe-tcp, --probe-http: the kind is the option's name. */
static int parse_probe(const char *arg, void *field, const struct vg_opt *o)
{
	struct vg_probe *p = field;

	if (p->kind != VG_PROBE_NONE) {
		pr_warn("beat: give one --probe-* option\n");
		return -1;
	}
	return vg_probe_parse(p, o->name + strlen("probe-"), arg);
}

static const struct vg_opt opts[] = {
	{ VG_OPT_SECTION("Beats") },
	{ VG_OPT_PAIR("id", BEAT, id_lo, id_hi, 1, UINT64_MAX, 0, '-', VG_OPT_PAIR_SAME, "ID[-ID]",
		      "agent id, or an inclusive range of ids (one process beats for all)"),
	  .required = true },
	{ VG_OPT_FUNC('t', "target", BEAT, targets, parse_target, "ADDR[,ADDR...]",
		      "the monitor's IPv4 or IPv6 address; several (a list, or the option again) "
		      "each get every beat. ADDR:PORT, [ADDR]:PORT: its own port; ADDR@FILE: its "
		      "own key file (docs/monitors.md)"), .required = true },
	{ VG_OPT_UINT('p', "port", BEAT, port, 1, 65535, "PORT", "beat port") },
	{ VG_OPT_UINT('I', "interval-ms", BEAT, info.interval_ms, 1, 3600000, "N",
		      "promise and send a beat every N ms") },
	{ VG_OPT_CHOICE('s', "status", BEAT, info.status, statuses, "ok|degraded|draining|leaving",
			"the status the beats report") },
	{ VG_OPT_UINT(0, "incarnation", BEAT, info.incarnation, 0, UINT32_MAX, "N",
		      "the agent's incarnation, which must rise on restart"),
	  .zero = "seconds since the epoch" },
	{ VG_OPT_UINT(0, "queue-depth", BEAT, info.queue_depth, 0, 65535, "N",
		      "backlog to report") },
	{ VG_OPT_UINT(0, "lease", BEAT, info.lease_id, 0, UINT32_MAX, "N", "lease id to renew"),
	  .zero = "none" },
	{ VG_OPT_UINT(0, "drift-ppm", BEAT, drift_ppm, 1, 999999, "N",
		      "clock rate bound for the lease safety rule") },

	{ VG_OPT_SECTION("Keys") },
	{ VG_OPT_STR('k', "keys", BEAT, keys_path, "FILE",
		     "sign with each agent's key from a key file (vigil key gen)") },
	VG_OPT_KEY(BEAT, key, "sign with one key (one agent or all in --id)"),
	{ VG_OPT_UINT(0, "key-id", BEAT, key_id, 0, 1, "0|1",
		      "which of the agent's two keys to use") },

	{ VG_OPT_SECTION("Cadence (the agent library; docs/leases.md#adaptive-cadence)") },
	{ VG_OPT_UINT(0, "max-interval-ms", BEAT, max_interval_ms, 1, 3600000, "N",
		      "follow the monitor's recommended interval (storm control) up to N ms; "
		      "keep N within the group's interval-max-ms"),
	  .zero = "off" },
	{ VG_OPT_PAIR("adaptive", BEAT, adaptive_min, adaptive_max, 1, 3600000, 0, ',', 0,
		      "MIN,MAX",
		      "adapt the interval to the queue depth within MIN..MAX ms (replaces "
		      "--interval-ms and --max-interval-ms)"),
	  .zero = "off" },
	{ VG_OPT_FUNC(0, "queue-thresholds", BEAT, thresholds, parse_thresholds, "HIGH,LOW",
		      "step up from level k at depth >= HIGH x 2^k, down at depth <= LOW x "
		      "2^(k-1)"),
	  .zero = "64,16" },
	{ VG_OPT_UINT(0, "dwell-ms", BEAT, dwell_ms, 1, 3600000, "N",
		      "least time between two steps"),
	  .zero = "4 intervals" },
	{ VG_OPT_STR(0, "queue-depth-from", BEAT, queue_file, "FILE",
		     "read the queue depth to report from FILE (its first number) every 20 ms, "
		     "e.g. to drive --adaptive") },
	{ VG_OPT_FLAG(0, "print-cadence", BEAT, print_cadence,
		      "print each change of the announced interval as a JSON line") },

	{ VG_OPT_SECTION("Probe mode (one agent id; docs/migration.md)") },
	{ VG_OPT_FUNC(0, "probe-exec", BEAT, probe, parse_probe, "CMD",
		      "beat only while /bin/sh -c CMD exits 0 (killed with its process group when "
		      "its time is up)") },
	{ VG_OPT_FUNC(0, "probe-tcp", BEAT, probe, parse_probe, "HOST:PORT",
		      "beat only while a TCP connection to HOST:PORT opens") },
	{ VG_OPT_FUNC(0, "probe-http", BEAT, probe, parse_probe, "URL",
		      "beat only while http://HOST[:PORT]/PATH answers 200..399") },

	{ VG_OPT_SECTION("Running") },
	{ VG_OPT_UINT('n', "count", BEAT, count, 1, UINT64_MAX, "N",
		      "stop after N beats per agent"),
	  .zero = "no limit" },
	{ VG_OPT_UINT('d', "duration", BEAT, duration_s, 1, 86400 * 365, "SEC",
		      "stop after SEC seconds"),
	  .zero = "until SIGINT or SIGTERM" },
	{ VG_OPT_FLAG(0, "leave", BEAT, leave, "send one LEAVING beat on exit (graceful stop)") },
	{ VG_OPT_FLAG(0, "print-acks", BEAT, print_acks,
		      "one agent: print lease changes learnt from the monitor's acknowledgements "
		      "as JSON lines (held/lost, token)") },
	{ VG_OPT_STR(0, "send-log", BEAT, send_log_path, "FILE",
		     "append a JSON line per beat sent: sequence, when it was due, when send(2) "
		     "started and returned (CLOCK_MONOTONIC ns): proof of when the agent beat") },
	{}
};


/* ------------------------------------------------------------ checks */

/* --adaptive, --max-interval-ms: each agent's interval can then change on
 * its own, which takes a thread per agent. */
static bool cadence_can_change(const struct beat_opts *o)
{
	return o->adaptive || o->max_interval_ms;
}

/* After check(): the range is at most a million ids. */
static __u64 n_agents(const struct beat_opts *o)
{
	return o->id_hi - o->id_lo + 1;
}

static int bad(const char *problem)
{
	pr_warn("%s\n", problem);
	return 2;
}

/* What the options say together; one line and exit 2 when they disagree.
 * Also what follows from them: the port in the target, --adaptive's
 * bounds as the interval's. */
static int check(struct beat_opts *o, const struct vg_parsed *p)
{
	o->have_inc = vg_opt_given(p, &o->info.incarnation);
	o->adaptive = vg_opt_given(p, &o->adaptive_min);
	if (o->id_hi - o->id_lo >= 1000000)
		return bad("--id: at most 1000000 agents per process");
	if (o->keys_path && vg_opt_given(p, &o->key))
		return bad("beat: give --keys or --key/--key-file, not both");
	if (o->adaptive) {
		if (vg_opt_given(p, &o->info.interval_ms) || vg_opt_given(p, &o->max_interval_ms))
			return bad("beat: --adaptive MIN,MAX replaces --interval-ms and "
				   "--max-interval-ms");
		o->info.interval_ms = o->adaptive_min;
		o->max_interval_ms = o->adaptive_max;
	} else if (vg_opt_given(p, &o->thresholds) || vg_opt_given(p, &o->dwell_ms)) {
		return bad("beat: --queue-thresholds and --dwell-ms need --adaptive");
	}
	if (o->max_interval_ms && o->max_interval_ms < o->info.interval_ms) {
		pr_warn("--max-interval-ms: %u is below the interval (%u ms)\n", o->max_interval_ms,
			o->info.interval_ms);
		return 2;
	}
	if (o->probe.kind != VG_PROBE_NONE && o->id_lo != o->id_hi)
		return bad("beat: probe mode beats for one agent id");
	if (cadence_can_change(o) && o->id_hi - o->id_lo >= 1024)
		return bad("--id: at most 1024 agents per process with --adaptive or "
			   "--max-interval-ms");
	vg_targets_set_port(&o->targets, o->port);
	return 0;
}

/* The key agent `id` signs with: --key for all, its own from --keys, or none. */
static const struct vigil_key *key_for(const struct beat_opts *o, __u64 id)
{
	const struct agent_auth *a;

	if (!o->keys_path)
		return o->key.have ? &o->key.key : NULL;
	a = vg_keyfile_get(&o->kf, id);
	return a && (a->valid & (1u << o->key_id)) ? &a->key[o->key_id] : NULL;
}

/* The key agent `id` signs its beats to target ti with: from the target's
 * own key file, or key_for()'s. */
static const struct vigil_key *target_key(const struct beat_opts *o, unsigned ti, __u64 id)
{
	const struct agent_auth *a;

	if (!o->targets.t[ti].keys_path)
		return key_for(o, id);
	a = vg_keyfile_get(&o->target_kf[ti], id);
	return a && (a->valid & (1u << o->key_id)) ? &a->key[o->key_id] : NULL;
}

/* Each target's own key file (ADDR@FILE), with a key for every agent.
 * Exit 2 when one cannot be used. */
static int open_target_keys(struct beat_opts *o)
{
	for (unsigned ti = 0; ti < o->targets.n; ti++) {
		const char *path = o->targets.t[ti].keys_path;

		if (!path)
			continue;
		if (vg_keyfile_load(path, false, &o->target_kf[ti]))
			return 2;
		for (__u64 i = 0; i < n_agents(o); i++) {
			if (!target_key(o, ti, o->id_lo + i)) {
				pr_warn("%s: no key %u for agent %llu\n", path, o->key_id,
					(unsigned long long)(o->id_lo + i));
				return 2;
			}
		}
	}
	return 0;
}

/* The files the options name: the key (--key-file, stdin, VIGIL_KEY) or
 * the key file, with a key for every agent, and the send log. Exit 2 when
 * one cannot be used. */
static int open_files(struct beat_opts *o)
{
	if (!o->keys_path && vg_key_choose(&o->key))
		return 2;
	if (o->keys_path) {
		if (vg_keyfile_load(o->keys_path, false, &o->kf))
			return 2;
		for (__u64 i = 0; i < n_agents(o); i++) {
			if (!key_for(o, o->id_lo + i)) {
				pr_warn("%s: no key %u for agent %llu\n", o->keys_path, o->key_id,
					(unsigned long long)(o->id_lo + i));
				return 2;
			}
		}
	}
	if (o->send_log_path) {
		o->send_log = fopen(o->send_log_path, "ae");
		if (!o->send_log) {
			pr_warn("--send-log: cannot open %s: %s\n", o->send_log_path,
				strerror(errno));
			return 2;
		}
		setvbuf(o->send_log, NULL, _IOLBF, 0);
	}
	return open_target_keys(o);
}

static void close_files(struct beat_opts *o)
{
	if (o->send_log)
		fclose(o->send_log);
	vg_keyfile_free(&o->kf);
	for (unsigned ti = 0; ti < o->targets.n; ti++)
		vg_keyfile_free(&o->target_kf[ti]);
}

/* ------------------------------------------------------ what both do */

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
	(void)sig;
	stop_requested = 1;
}

static void catch_signals(void)
{
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
}

static bool duration_over(const struct beat_opts *o, __u64 start_ns, __u64 at_ns)
{
	return o->duration_s && at_ns - start_ns >= (__u64)o->duration_s * VIGIL_NSEC_PER_SEC;
}

/* One JSON line on f, written whole: the agents' threads share f. */
static void line_begin(struct vg_json *j, FILE *f)
{
	flockfile(f);
	vg_json_begin(j, f);
	vg_json_obj(j);
}

static void line_end(struct vg_json *j)
{
	FILE *f = j->f;

	vg_json_end(j);
	funlockfile(f);
}

/* --send-log: when each beat (or round, for ids lo-hi) really went out,
 * on the monitor's clock. */
static void log_send(FILE *f, __u64 lo, __u64 hi, __u64 seq, __u64 due, __u64 start, __u64 end)
{
	struct vg_json j;
	char ids[48];

	if (lo == hi)
		snprintf(ids, sizeof(ids), "%llu", (unsigned long long)lo);
	else
		snprintf(ids, sizeof(ids), "%llu-%llu", (unsigned long long)lo,
			 (unsigned long long)hi);
	line_begin(&j, f);
	vg_json_str_field(&j, "ids", ids);
	vg_json_u64_field(&j, "seq", seq);
	vg_json_u64_field(&j, "due_ns", due);
	vg_json_u64_field(&j, "start_ns", start);
	vg_json_u64_field(&j, "end_ns", end);
	line_end(&j);
}

/* ------------------------------------------------ the agent library */

/* One agent's own state; the library's callbacks get it as their argument. */
struct lib_agent {
	const struct beat_opts *o;
	struct vigil_agent *a;
	__u64 id;
	__u32 last_iv;   /* cadence printing: the interval before the change */
	int probe_state; /* -1 unknown, 0 failing, 1 passing: logged on change */
};

/* The clocks a --print-* line ends with: the agent library's
 * (CLOCK_BOOTTIME), CLOCK_MONOTONIC (the events') and the wall clock. */
static void clock_fields(struct vg_json *j)
{
	vg_json_u64_field(j, "now_ns", vigil_agent_now_ns());
	vg_json_u64_field(j, "mono_ns", vg_mono_ns());
	vg_json_u64_field(j, "wall_ns", vg_wall_ns());
}

static void print_cadence(const struct lib_agent *la, const struct vigil_lease_view *v)
{
	struct vg_json j;

	line_begin(&j, stdout);
	vg_json_u64_field(&j, "agent_id", la->id);
	vg_json_str_field(&j, "event", "cadence");
	vg_json_u64_field(&j, "interval_ms", v->interval_ms);
	vg_json_u64_field(&j, "previous_ms", la->last_iv);
	vg_json_u64_field(&j, "level", v->cadence_level);
	vg_json_u64_field(&j, "queue_depth", v->queue_depth);
	vg_json_u64_field(&j, "recommend_interval_ms", v->recommend_interval_ms);
	vg_json_u64_field(&j, "changes", v->cadence_changes);
	clock_fields(&j);
	line_end(&j);
}

static void print_lease(const struct lib_agent *la, enum vigil_lease_change what,
			const struct vigil_lease_view *v)
{
	struct vg_json j;

	line_begin(&j, stdout);
	vg_json_u64_field(&j, "agent_id", la->id);
	vg_json_u64_field(&j, "lease_id", v->lease_id);
	vg_json_str_field(&j, "event", what == VIGIL_LEASE_LOST	  ? "lost" :
				       what == VIGIL_LEASE_GAINED ? "held" : "token");
	vg_json_bool_field(&j, "holder", v->holder);
	vg_json_u64_field(&j, "token", v->token);
	vg_json_u64_field(&j, "deadline_ns", v->deadline_ns);
	vg_json_str_field(&j, "reason", vigil_lease_loss_name(v->lost_reason));
	vg_json_u64_field(&j, "monitor_holder", v->monitor_holder);
	vg_json_u64_field(&j, "monitor_token", v->monitor_token);
	vg_json_str_field(&j, "monitor_state", vg_lease_state_name(v->monitor_state));
	vg_json_u64_field(&j, "remaining_ms", v->remaining_ms);
	clock_fields(&j);
	line_end(&j);
}

/* --print-acks / --print-cadence: one JSON line per change, on the agent's
 * thread. */
static void on_change(struct vigil_agent *a, enum vigil_lease_change what,
		      const struct vigil_lease_view *v, void *arg)
{
	struct lib_agent *la = arg;

	(void)a;
	if (what == VIGIL_CADENCE_CHANGED) {
		if (la->o->print_cadence)
			print_cadence(la, v);
		la->last_iv = v->interval_ms;
	} else if (la->o->print_acks) {
		print_lease(la, what, v);
	}
}

/* The agent library's clock (CLOCK_BOOTTIME) to CLOCK_MONOTONIC; 0 stays 0. */
static __u64 boot_to_mono(__u64 boot_ns, __u64 boot_minus_mono)
{
	return boot_ns ? boot_ns - boot_minus_mono : 0;
}

static void on_sent(struct vigil_agent *a, uint64_t seq, uint64_t due_ns, uint64_t start_ns,
		    uint64_t end_ns, void *arg)
{
	struct lib_agent *la = arg;
	__u64 mono = vg_mono_ns(), off = vigil_agent_now_ns() - mono;

	(void)a;
	log_send(la->o->send_log, la->id, la->id, seq, boot_to_mono(due_ns, off),
		 boot_to_mono(start_ns, off), boot_to_mono(end_ns, off));
}

/* Probe mode: the check, ahead of each beat, within 80 % of the interval. */
static int probe_gate(struct vigil_agent *a, __u32 timeout_ms, void *arg)
{
	struct lib_agent *la = arg;
	__u64 t0 = vg_mono_ns();
	bool ok = vg_probe_run(&la->o->probe, timeout_ms);

	(void)a;
	if ((int)ok != la->probe_state) {
		if (ok)
			pr_info("probe passes: beating for agent %llu\n",
				(unsigned long long)la->id);
		else
			pr_warn("probe failed after %.1f ms (budget %u ms): not beating for agent "
				"%llu\n", (double)(vg_mono_ns() - t0) / 1e6, timeout_ms,
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

/* vigil_key_from_bytes() backwards. */
static void key_bytes(const struct vigil_key *k, __u8 out[16])
{
	for (int j = 0; j < 16; j++)
		out[j] = (__u8)((j < 8 ? k->k0 : k->k1) >> (8 * (j % 8)));
}

/* Start agent `id` of the range; `depth` is the queue depth read at start (-1: none). */
static int lib_start(const struct beat_opts *o, struct lib_agent *la, __u64 id, int depth)
{
	const struct vigil_key *k = key_for(o, id);
	struct vigil_agent_monitor mons[VG_MAX_TARGETS] = {};
	struct vigil_agent_config c = {
		.agent_id = id,
		.monitors = mons,
		.n_monitors = o->targets.n,
		.key_id = o->key_id,
		.has_key = k != NULL,
		/* Without a key the monitor runs --no-auth: its acks are unsigned. */
		.allow_unsigned_acks = k == NULL,
		.interval_ms = o->info.interval_ms,
		.max_interval_ms = o->max_interval_ms,
		.incarnation = o->info.incarnation,
		.has_incarnation = o->have_inc,
		.lease_id = o->info.lease_id,
		.drift_ppm = o->drift_ppm,
		.status = o->info.status,
		.queue_depth = depth >= 0 ? (__u16)depth : o->info.queue_depth,
		.max_beats = o->count,
		.on_change = o->print_acks || o->print_cadence ? on_change : NULL,
		.arg = la,
		.adaptive = o->adaptive,
		.queue_high = o->thresholds.high,
		.queue_low = o->thresholds.low,
		.dwell_ms = o->dwell_ms,
		.gate = o->probe.kind != VG_PROBE_NONE ? probe_gate : NULL,
		.on_send = o->send_log ? on_sent : NULL,
	};

	if (k)
		key_bytes(k, c.key);
	for (unsigned ti = 0; ti < o->targets.n; ti++) {
		const struct vg_target *t = &o->targets.t[ti];

		mons[ti].address = t->addr;
		mons[ti].port = t->port;
		if (t->keys_path) {
			mons[ti].has_key = 1;
			mons[ti].key_id = o->key_id;
			key_bytes(target_key(o, ti, id), mons[ti].key);
		}
	}
	*la = (struct lib_agent){
		.o = o, .id = id, .last_iv = o->info.interval_ms, .probe_state = -1
	};
	la->a = vigil_agent_start(&c);
	if (!la->a) {
		pr_warn("starting agent %llu failed: %s\n", (unsigned long long)id,
			strerror(errno));
		return -1;
	}
	return 0;
}

/* About 20 ms; true when every agent's beat loop has ended (--count). */
static bool lib_all_done(struct lib_agent *las, size_t n)
{
	struct timespec ts = { .tv_nsec = 20 * 1000000L };

	if (n == 1)
		return vigil_agent_wait(las[0].a, 20) == 0;
	nanosleep(&ts, NULL);
	for (size_t i = 0; i < n; i++)
		if (vigil_agent_wait(las[i].a, 0))
			return false;
	return true;
}

/* While the agents beat: follow --queue-depth-from, say once that beats
 * cannot be sent, stop at --duration or a signal. */
static void lib_watch(const struct beat_opts *o, struct lib_agent *las, size_t n, int depth,
		      __u64 start)
{
	bool warned[VG_MAX_TARGETS] = {};

	while (!stop_requested && !lib_all_done(las, n)) {
		int d = o->queue_file ? read_queue_depth(o->queue_file) : -1;

		if (d >= 0 && d != depth) {
			depth = d;
			for (size_t i = 0; i < n; i++)
				vigil_agent_set_queue_depth(las[i].a, (__u16)d);
		}
		for (unsigned ti = 0; ti < o->targets.n; ti++) {
			struct vigil_monitor_view mv;
			char name[INET6_ADDRSTRLEN + 8];

			if (warned[ti] || vigil_agent_monitor_view(las[0].a, ti, &mv) ||
			    !mv.send_errors)
				continue;
			warned[ti] = true;
			pr_warn("sending beats to %s failed: %s (still trying)\n",
				vg_target_name(&o->targets.t[ti], name, sizeof(name)),
				strerror(mv.send_errno));
		}
		if (duration_over(o, start, vg_mono_ns()))
			break;
	}
}

/* Stop the agents (--leave: with a LEAVING beat). Like the round loop, an
 * agent none of whose beats went out to some monitor has failed: 1. */
static int lib_stop(const struct beat_opts *o, struct lib_agent *las, size_t started)
{
	int ret = 0;

	for (size_t i = 0; i < started; i++) {
		struct vigil_lease_view v;

		vigil_agent_lease(las[i].a, &v);
		for (unsigned ti = 0; ti < o->targets.n; ti++) {
			struct vigil_monitor_view mv;

			if (!vigil_agent_monitor_view(las[i].a, ti, &mv) && v.beats_sent &&
			    mv.send_errors >= v.beats_sent)
				ret = 1;
		}
		vigil_agent_stop(las[i].a, o->leave);
	}
	return ret;
}

static int beat_lib(const struct beat_opts *o)
{
	size_t n = (size_t)n_agents(o), started = 0;
	struct lib_agent *las = calloc(n, sizeof(*las));
	__u64 start = vg_mono_ns();
	int depth = o->queue_file ? read_queue_depth(o->queue_file) : -1, ret;

	if (!las) {
		pr_warn("beat: out of memory\n");
		return 1;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	catch_signals();
	while (started < n && lib_start(o, &las[started], o->id_lo + started, depth) == 0)
		started++;
	if (started == n)
		lib_watch(o, las, n, depth, start);
	ret = lib_stop(o, las, started) || started < n; /* stop them all first */
	free(las);
	return ret;
}

/* ---------------------------------------------------- the round loop */

static void sleep_until(__u64 mono_ns)
{
	struct timespec ts = { .tv_sec = mono_ns / VIGIL_NSEC_PER_SEC,
			       .tv_nsec = mono_ns % VIGIL_NSEC_PER_SEC };

	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR &&
	       !stop_requested)
		;
}

/* One beat for every agent of the range to every target (fds[ti]), each
 * signed with the agent's key for that target. */
static int send_round(const int *fds, const struct beat_opts *o, struct vigil_beat_info *info,
		      __u64 seq)
{
	struct vigil_beat b;

	for (__u64 i = 0; i < n_agents(o) && !stop_requested; i++) {
		info->agent_id = o->id_lo + i;
		info->seq = seq;
		info->send_ts_ns = vg_mono_ns(); /* never steps back (docs/wire-format.md) */
		for (unsigned ti = 0; ti < o->targets.n; ti++) {
			const struct vigil_key *k = target_key(o, ti, info->agent_id);
			const struct vg_target *t = &o->targets.t[ti];

			vigil_beat_encode(&b, info);
			if (k)
				vigil_beat_sign(&b, k, o->key_id);
			if (sendto(fds[ti], &b, sizeof(b), 0, (const struct sockaddr *)&t->ss,
				   t->len) < 0 && errno != ENOBUFS && errno != ECONNREFUSED) {
				char name[INET6_ADDRSTRLEN + 8];

				pr_warn("sending beat for agent %llu to %s failed: %s\n",
					(unsigned long long)info->agent_id,
					vg_target_name(t, name, sizeof(name)), strerror(errno));
				return -1;
			}
		}
	}
	return 0;
}

static int beat_loop(const struct beat_opts *o)
{
	struct vigil_beat_info info = o->info;
	__u64 interval_ns = (__u64)info.interval_ms * VIGIL_NSEC_PER_MSEC;
	__u64 seq, next, start, now, round;
	int fds[VG_MAX_TARGETS], ret = 0;
	unsigned nfd;

	if (o->queue_file || o->print_cadence)
		pr_warn("beat: --queue-depth-from and --print-cadence need one agent id, "
			"--adaptive or --max-interval-ms; ignored\n");
	if (o->print_acks)
		pr_warn("beat: --print-acks works with one agent id only; ignored\n");
	if (!o->have_inc)
		info.incarnation = (__u32)(vg_wall_ns() / VIGIL_NSEC_PER_SEC);
	for (nfd = 0; nfd < o->targets.n; nfd++) {
		fds[nfd] = socket(o->targets.t[nfd].ss.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		if (fds[nfd] < 0) {
			pr_warn("creating a UDP socket failed: %s\n", strerror(errno));
			ret = 1;
			goto out;
		}
	}
	catch_signals();
	/* Sequences start at the wall clock in microseconds, so a restart
	 * within the same second (same default incarnation) still moves them
	 * forward instead of being taken for a replay. */
	seq = vg_wall_ns() / 1000;
	start = next = vg_mono_ns();
	for (round = 1; !stop_requested; round++, seq++) {
		__u64 t0 = vg_mono_ns();

		if (send_round(fds, o, &info, seq)) {
			ret = 1;
			break;
		}
		if (o->send_log)
			log_send(o->send_log, o->id_lo, o->id_hi, seq, next, t0, vg_mono_ns());
		if (o->count && round >= o->count)
			break;
		next += interval_ns;
		/* Held off past a whole interval (stopped, starved): beat once
		 * now and keep the cadence from here. Sending every missed round
		 * in a burst says nothing more and trips the monitor's rate limit. */
		now = vg_mono_ns();
		if (next + interval_ns <= now)
			next = now;
		if (duration_over(o, start, next))
			break;
		sleep_until(next);
	}
	if (o->leave) {
		info.status = VIGIL_STATUS_LEAVING;
		stop_requested = 0;
		send_round(fds, o, &info, seq + 1);
	}
out:
	while (nfd--)
		close(fds[nfd]);
	return ret;
}

/* --------------------------------------------------------- the command */

typedef int engine_fn(const struct beat_opts *o);

/* The agent library (include/vigil/agent.h) runs a thread per agent: it
 * reads the monitor's acknowledgements (leases, the recommended interval),
 * moves each agent's cadence on its own, and gates beats on a probe. So one
 * agent always beats through it, and a range does when its cadence can
 * change. A range at a fixed cadence needs none of that: the round loop
 * sends it from one thread and one socket, up to a million agents. */
static engine_fn *pick_engine(const struct beat_opts *o)
{
	bool lib = o->id_lo == o->id_hi || cadence_can_change(o);

	pr_debug("beat: agents %llu-%llu %s\n", (unsigned long long)o->id_lo,
		 (unsigned long long)o->id_hi,
		 lib ? "through the agent library" : "by the round loop");
	return lib ? beat_lib : beat_loop;
}

static const struct beat_opts beat_defaults = {
	.port = VIGIL_DEFAULT_PORT,
	.info.interval_ms = VIGIL_AGENT_DEFAULT_INTERVAL_MS,
	.drift_ppm = VIGIL_AGENT_DEFAULT_DRIFT_PPM,
};

static int beat_run(const struct vg_parsed *p)
{
	struct beat_opts *o = p->opts;
	int ret = check(o, p);

	if (!ret)
		ret = open_files(o);
	if (!ret)
		ret = pick_engine(o)(o);
	close_files(o);
	return ret;
}

const struct vg_cmd cli_beat = {
	VG_CMD("beat", "send beats as one agent or a range of agents",
	       "Send beats as one agent (or a range of agents) to a vigil monitor. One agent, "
	       "or a range whose cadence can change, beats through the agent library; a range "
	       "at a fixed cadence is sent by one loop. In probe mode the agent beats only "
	       "while a check passes; it runs ahead of each beat with 80\v% of the interval as "
	       "its timeout.",
	       "  vigil beat --id 7 --target 127.0.0.1 --interval-ms 100 --keys agent7.key\n"
	       "  vigil beat --id 7 --target 198.18.0.1,198.18.1.1@/etc/vigil/keys.b --keys k\n"
	       "  vigil beat --id 1-50 --target 198.18.0.1 --interval-ms 20 --duration 30\n"
	       "  vigil beat --id 9 --target 127.0.0.1 --keys k "
	       "--probe-http http://127.0.0.1:8080/healthz\n"
	       "  vigil beat --id 7 --target 127.0.0.1 --keys k --adaptive 20,320 "
	       "--queue-depth-from /run/q\n"),
	.opts = opts, .size = sizeof(struct beat_opts), .defaults = &beat_defaults,
	.run = beat_run,
};
