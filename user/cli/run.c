// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
/*
 * `vigil run`: parse and check the options, then hand over to the daemon
 * (daemon/daemon.c). Detection itself never depends on the daemon: stopping
 * it leaves the pinned instance running.
 */
#include <stdio.h>
#include <string.h>
#include "cli/cli.h"
#include "common/eventlog.h"
#include "common/log.h"
#include "common/options.h"
#include "common/secret.h"
#include "common/targets.h"
#include "common/util.h"
#include "daemon/daemon.h"
#include "daemon/metrics.h"

#define RUN struct vg_run_opts

static const char *const modes[] = { "native", "skb", NULL };

static int parse_peer(const char *arg, void *field, const struct vg_opt *o)
{
	return vg_targets_parse(field, arg, o->name);
}
static const char *const alert_formats[] = { "json", "alertmanager", NULL };

/* The environment variables that can hold the URLs instead. */
#define URL_ENV_WEBHOOK "VIGIL_ALERT_WEBHOOK"
#define URL_ENV_NATS "VIGIL_EXPORT_NATS"

static const struct vg_opt opts[] = {
	{ VG_OPT_SECTION("Attaching (at a fresh load; an adopting daemon keeps the instance's)") },
	{ VG_OPT_STR('i', "iface", RUN, load.iface, "IFACE", "interface to attach XDP to") },
	{ VG_OPT_CHOICE('m', "mode", RUN, load.skb_mode, modes, "native|skb",
			"XDP mode; loopback and drivers without XDP need skb") },
	{ VG_OPT_UINT('p', "port", RUN, load.port, 1, 65535, "PORT", "UDP beat port") },
	{ VG_OPT_SCALED("tick-us", RUN, load.tick_ns, 10, 1000000, 1000, "N",
			"sweeper tick in microseconds: how often deadlines are checked") },
	{ VG_OPT_UINT(0, "max-agents", RUN, load.max_agents, 1, 16u << 20, "N",
		      "agent capacity (sizes the per-agent maps)") },
	{ VG_OPT_UINT(0, "id-base", RUN, load.id_base, 1, UINT64_MAX, "ID",
		      "agents ID to ID + max-agents - 1 get their own slots, found without a "
		      "hash lookup"), .zero = "the smallest id in --config, else 1" },
	{ VG_OPT_SCALED("ringbuf-mb", RUN, load.ringbuf_bytes, 1, 1024, 1u << 20, "N",
			"event ring buffer size in MiB, a power of two") },
	{ VG_OPT_PIN_ROOT(RUN, load.pin_root) },

	{ VG_OPT_SECTION("Agents and keys (at every start)") },
	{ VG_OPT_STR('c', "config", RUN, config_path, "FILE",
		     "agents file to register (docs/config.md)") },
	{ VG_OPT_STR('k', "keys", RUN, keys_path, "FILE",
		     "agent keys (root-owned, mode 0600); SIGHUP reloads it") },
	{ VG_OPT_FLAG(0, "no-auth", RUN, no_auth, "development only: accept beats without a tag") },
	{ VG_OPT_UINT(0, "learn", RUN, learn_cap, 1, 1u << 20, "CAP",
		      "development only: register up to CAP unknown agents without keys "
		      "(implies --no-auth)"),
	  .arg_optional = true, .flag_off = offsetof(RUN, learn) },

	{ VG_OPT_SECTION("Detection (written to the kernel at every start; stays after exit)") },
	{ VG_OPT_UINT(0, "dead-misses", RUN, load.cfg.dead_misses, 0, 1000, "N",
		      "further missed intervals from SUSPECT to DEAD") },
	{ VG_OPT_UINT(0, "hold-max-ms", RUN, load.cfg.hold_max_ms, 0, 60000, "N",
		      "longest a verdict waits for evidence that the receive path has caught up "
		      "(0: decide at the deadline)") },
	{ VG_OPT_UINT(0, "sweep-budget", RUN, load.cfg.sweep_budget, 1, 1u << 23, "N",
		      "slots the sweeper may visit per tick") },
	{ VG_OPT_FLAG(0, "pass", RUN, load.cfg.pass_beats,
		      "pass consumed beats up the stack instead of dropping them") },

	{ VG_OPT_SECTION("Event log") },
	{ VG_OPT_DB(RUN, db_path) },
	{ VG_OPT_STR(0, "events-file", RUN, events_path, "FILE",
		     "also append every event to FILE as JSON lines") },
	{ VG_OPT_UINT(0, "retain-days", RUN, retain_days, 1, 36500, "N",
		      "prune events older than N days, at start and hourly"),
	  .zero = "keep all" },
	{ VG_OPT_UINT(0, "retain-events", RUN, retain_events, 1, UINT64_MAX >> 2, "N",
		      "keep the newest N events, pruning at start and hourly"),
	  .zero = "keep all" },
	{ VG_OPT_UINT(0, "retain-rejections-days", RUN, retain_rejections_days, 1, 36500, "N",
		      "prune the breakdown of rejections (by window, reason and source) older than "
		      "N days, at start and hourly") },

	{ VG_OPT_SECTION("Alerts (docs/operations.md)") },
	{ VG_OPT_STR(0, "alert-exec", RUN, acfg.exec_cmd, "CMD",
		     "run CMD (/bin/sh -c) per alert: the event in VIGIL_* variables and as JSON "
		     "on stdin; delivered when it exits 0") },
	{ VG_OPT_STR(0, "alert-webhook", RUN, acfg.webhook_url, "URL",
		     "POST each alert (http:// or https://); delivered on HTTP 2xx") },
	{ VG_OPT_STR(0, "alert-webhook-file", RUN, webhook_file, "FILE",
		     "the webhook URL from FILE, private to you (mode 0600), kept off the command "
		     "line; or set " URL_ENV_WEBHOOK) },
	{ VG_OPT_CHOICE(0, "alert-format", RUN, acfg.alertmanager, alert_formats,
			"json|alertmanager",
			"webhook body: the event's JSON line, or an Alertmanager v2 /api/v2/alerts "
			"array") },
	{ VG_OPT_FLAG(0, "alert-syslog", RUN, acfg.use_syslog,
		      "also write each alert to syslog (facility daemon)") },
	{ VG_OPT_UINT(0, "alert-max-attempts", RUN, acfg.max_attempts, 1, 1000, "N",
		      "failed attempts before an alert goes to the dead-letter queue (vigil dlq)") },
	{ VG_OPT_PAIR("alert-backoff-ms", RUN, acfg.backoff_base_ms, acfg.backoff_max_ms, 1,
		      86400000, 0, ',', 0, "BASE[,MAX]",
		      "retry after a random delay in [0, min(MAX, BASE x 2^(failures-1))]") },
	{ VG_OPT_UINT(0, "alert-timeout-ms", RUN, acfg.timeout_ms, 10, 600000, "N",
		      "per attempt; a command still running is killed with its process group") },
	{ VG_OPT_UINT(0, "alert-resend-s", RUN, acfg.resend_s, 1, 86400, "N",
		      "alertmanager: re-send firing alerts every N s; each ends 4 x N s after it "
		      "was last sent") },

	{ VG_OPT_SECTION("Flap damping and remediation") },
	{ VG_OPT_SCALED("flap-half-life-s", RUN, esc.pcfg.half_life_ns, 1, 86400,
			VIGIL_NSEC_PER_SEC, "N", "half-life of an agent's flap penalty") },
	{ VG_OPT_UINT(0, "flap-suppress", RUN, esc.pcfg.suppress, 1, 1000000, "N",
		      "withhold an agent's alerts above this penalty; each SUSPECT, DEAD or "
		      "RECOVERED adds 1000") },
	{ VG_OPT_UINT(0, "flap-reuse", RUN, esc.pcfg.reuse, 1, 1000000, "N",
		      "let alerts flow again below this penalty (below --flap-suppress)") },
	{ VG_OPT_STR(0, "remediate", RUN, esc.remediate_cmd, "CMD",
		     "while an agent is DEAD, run CMD (/bin/sh -c; VIGIL_AGENT_ID, _NAME, _GROUP, "
		     "VIGIL_ATTEMPT) until it exits 0") },
	{ VG_OPT_UINT(0, "remediate-max", RUN, esc.pcfg.remediate_max, 1, 1000, "N",
		      "attempts per DEAD episode") },
	{ VG_OPT_PAIR("remediate-backoff-ms", RUN, esc.pcfg.remediate_base_ns,
		      esc.pcfg.remediate_cap_ns, 1, 86400000, VIGIL_NSEC_PER_MSEC, ',', 0,
		      "BASE[,CAP]",
		      "after the n-th failed attempt, wait a random delay in [0, min(CAP, BASE x "
		      "2^n)]") },
	{ VG_OPT_SCALED("remediate-timeout-s", RUN, esc.remediate_timeout_ns, 1, 86400,
			VIGIL_NSEC_PER_SEC, "N",
			"kill a hook (its process group) still running after N seconds") },

	{ VG_OPT_SECTION("Export to NATS JetStream (docs/fleet.md)") },
	{ VG_OPT_STR(0, "export-nats", RUN, xcfg.nats_urls, "URL[,URL...]",
		     "publish every recorded event, subject vigil.events.HOST") },
	{ VG_OPT_STR(0, "export-nats-file", RUN, nats_file, "FILE",
		     "the NATS URLs from FILE, private to you (mode 0600), kept off the command "
		     "line; or set " URL_ENV_NATS) },
	{ VG_OPT_STR(0, "export-nats-creds", RUN, xcfg.auth.creds_file, "FILE",
		     "authenticate with a user credentials file (JWT and nkey seed; mode 0600)") },
	{ VG_OPT_STR(0, "export-nats-nkey", RUN, xcfg.auth.nkey_file, "FILE",
		     "authenticate with the user nkey seed (SU...) in FILE (mode 0600)") },
	{ VG_OPT_STR(0, "export-nats-user-file", RUN, xcfg.auth.user_file, "FILE",
		     "authenticate with USER:PASSWORD, or a token, from FILE (mode 0600)") },
	{ VG_OPT_STR(0, "export-nats-ca", RUN, xcfg.auth.ca_file, "FILE",
		     "TLS: trust the CA certificates in FILE (PEM) to sign the servers'") },
	{ VG_OPT_STR(0, "export-nats-cert", RUN, xcfg.auth.cert_file, "FILE",
		     "TLS: present the client certificate chain in FILE (PEM)") },
	{ VG_OPT_STR(0, "export-nats-key", RUN, xcfg.auth.key_file, "FILE",
		     "TLS: the client certificate's private key (PEM, mode 0600)") },
	{ VG_OPT_STR(0, "export-stream", RUN, xcfg.stream, "NAME", "JetStream stream") },
	{ VG_OPT_STR(0, "export-host", RUN, xcfg.host, "NAME",
		     "subject token and message-id prefix"),
	  .zero = "the host name, dots as _" },
	{ VG_OPT_UINT(0, "export-replicas", RUN, xcfg.replicas, 1, 5, "N",
		      "replicas of the stream if vigil creates it") },
	{ VG_OPT_FLAG(0, "export-no-create", RUN, xcfg.no_create,
		      "never create the stream: the operator manages it") },

	{ VG_OPT_SECTION("Leases that outlive their monitor (docs/leases.md)") },
	{ VG_OPT_STR(0, "lease-nats", RUN, lcfg.nats_urls, "URL[,URL...]",
		      "replicate the agents file's leases through this NATS JetStream: one monitor "
		      "grants each, a standby takes over when it dies; authenticates with the "
		      "--export-nats-creds ... -key files") },
	{ VG_OPT_STR(0, "lease-bucket", RUN, lcfg.bucket, "NAME", "the key-value bucket") },
	{ VG_OPT_STR(0, "lease-host", RUN, lcfg.host, "NAME",
		     "this monitor's name in the bucket, unique among the monitors"),
	  .zero = "the host name, dots as _" },
	{ VG_OPT_UINT(0, "lease-replicas", RUN, lcfg.replicas, 1, 5, "N",
		      "replicas of the bucket if vigil creates it") },
	{ VG_OPT_UINT(0, "lease-term-ms", RUN, lcfg.term_ms, 100, 3600000, "N",
		      "the granting monitor's term, renewed every third of it; a standby takes over "
		      "this long (+0.3 %, + the grace) after the last renewal") },

	{ VG_OPT_SECTION("Monitors watching each other (docs/monitors.md)") },
	{ VG_OPT_FUNC(0, "peer", RUN, peers.targets, parse_peer, "ADDR[,ADDR...]",
		      "beat to these peer monitors as agent --peer-id, so that they report this "
		      "one's death; ADDR:PORT, [ADDR]:PORT, ADDR@FILE as for vigil beat --target") },
	{ VG_OPT_UINT(0, "peer-id", RUN, peers.id, 1, UINT64_MAX, "ID",
		      "this monitor's agent id in its peers' agents files; its key comes from "
		      "--keys (or the peer's ADDR@FILE)") },
	{ VG_OPT_UINT(0, "peer-interval-ms", RUN, peers.interval_ms, 1, 3600000, "N",
		      "beat the peers every N ms") },

	{ VG_OPT_SECTION("Metrics") },
	{ VG_OPT_STR(0, "metrics", RUN, metrics_addr, "ADDR:PORT",
		     "serve Prometheus /metrics, /healthz, /readyz ([::1]:PORT for IPv6; off: "
		     "none)"),
	  .none_word = "off", .zero = "off" },
	{ VG_OPT_UINT(0, "metrics-max-agents", RUN, metrics_max_agents, 0, UINT32_MAX, "N",
		      "leave out the per-agent series above N registered agents") },

	{ VG_OPT_SECTION("Storm control (docs/leases.md)") },
	{ VG_OPT_UINT(0, "storm-beats-per-sec", RUN, storm_beats_per_sec, 1, UINT32_MAX, "N",
		      "above N accepted beats a second, acknowledgements recommend a slower "
		      "interval"),
	  .zero = "off" },
	{ VG_OPT_UINT(0, "storm-events-per-sec", RUN, storm_events_per_sec, 1, UINT32_MAX, "N",
		      "the same, counting events"),
	  .zero = "off" },
	{ VG_OPT_UINT(0, "storm-interval-ms", RUN, storm_interval_ms, 1, 65535, "N",
		      "the interval they recommend") },

	{ VG_OPT_SECTION("Running") },
	{ VG_OPT_FLAG(0, "shadow", RUN, shadow,
		      "detect and record, but send no alert, run no remediation and grant no "
		      "lease (for migrating)") },
	{ VG_OPT_UINT(0, "duration", RUN, duration_s, 1, 86400 * 365, "SEC",
		      "stop after SEC seconds"),
	  .zero = "until SIGTERM" },
	{ VG_OPT_FLAG('q', "quiet", RUN, quiet, "do not print events on stdout") },
	{}
};

/* Where a URL option's value comes from: --NAME URL (a URL with
 * credentials is moved off argv, and warned about), --NAME-file FILE, or
 * the environment variable env (file and env may be NULL). -1 after one
 * line. */
static int url_from(const char **url, const char *file, const char *env, char **owned,
		    const char *opt, const char *instead)
{
	char what[64];

	snprintf(what, sizeof(what), "--%s-file", opt);
	if (*url && file) {
		pr_warn("give --%s or --%s-file, not both\n", opt, opt);
		return -1;
	}
	if (file) {
		*url = *owned = vg_secret_read(file, what);
		return *url ? 0 : -1;
	}
	if (!*url) {
		*url = env ? getenv(env) : NULL;
		return 0;
	}
	if (vg_url_has_secret(*url)) {
		*owned = strdup(*url);
		if (!*owned) {
			pr_warn("--%s: out of memory\n", opt);
			return -1;
		}
		snprintf(what, sizeof(what), "--%s", opt);
		vg_secret_on_argv(*url, what, instead);
		*url = *owned;
	}
	return 0;
}

/* Everything that can be judged before touching the kernel, so that a bad
 * option or file changes nothing: exit 2 with one line. */
static int check(struct vg_run_opts *ro)
{
	__u32 ringbuf_mb = ro->load.ringbuf_bytes >> 20;

	if (ringbuf_mb & (ringbuf_mb - 1)) {
		pr_warn("--ringbuf-mb: %u is not a power of two\n", ringbuf_mb);
		return 2;
	}
	if (url_from(&ro->acfg.webhook_url, ro->webhook_file, URL_ENV_WEBHOOK, &ro->owned[0],
		     "alert-webhook", "--alert-webhook-file or " URL_ENV_WEBHOOK) ||
	    url_from(&ro->xcfg.nats_urls, ro->nats_file, URL_ENV_NATS, &ro->owned[1],
		     "export-nats", "--export-nats-file, " URL_ENV_NATS " or the "
		     "--export-nats-creds, -nkey and -user-file options") ||
	    url_from(&ro->lcfg.nats_urls, NULL, NULL, &ro->owned[2], "lease-nats",
		     "the --export-nats-creds, -nkey and -user-file options"))
		return 2;
	/* One set of credentials and TLS files for both NATS connections. */
	ro->lcfg.auth = ro->xcfg.auth;
	if (vg_nats_files_any(&ro->xcfg.auth) && !ro->xcfg.nats_urls && !ro->lcfg.nats_urls) {
		pr_warn("--export-nats-creds, -nkey, -user-file, -ca, -cert and -key need "
			"--export-nats or --lease-nats\n");
		return 2;
	}
	if (vg_alert_cfg_check(&ro->acfg) || vg_export_cfg_check(&ro->xcfg) ||
	    vg_lease_repl_cfg_check(&ro->lcfg))
		return 2;
	if (ro->config_path && vg_config_load(ro->config_path, &ro->config))
		return 2;
	if (ro->esc.pcfg.reuse >= ro->esc.pcfg.suppress) {
		pr_warn("--flap-reuse (%u) must be below --flap-suppress (%u)\n", ro->esc.pcfg.reuse,
			ro->esc.pcfg.suppress);
		return 2;
	}
	if (ro->load.cfg.auth_required && !ro->keys_path) {
		pr_warn("authentication is required but no key file was given: pass --keys FILE "
			"(make one with 'vigil key gen'), or --no-auth for development\n");
		return 2;
	}
	if (ro->keys_path && vg_keyfile_load(ro->keys_path, true, &ro->keys))
		return 2;
	if (!ro->load.id_base) /* the fleet's own numbering, when it has one */
		for (size_t i = 0; i < ro->config.n; i++)
			if (!ro->load.id_base || ro->config.agents[i].id < ro->load.id_base)
				ro->load.id_base = ro->config.agents[i].id;
	if (!ro->load.id_base)
		ro->load.id_base = 1;
	return vg_peers_check(&ro->peers, &ro->keys, ro->keys_path, ro->load.port);
}

static void run_init(void *opts)
{
	vg_run_opts_default(opts);
}

static int run_run(const struct vg_parsed *p)
{
	struct vg_run_opts *ro = p->opts;
	int ret;

	ro->iface_given = vg_opt_given(p, &ro->load.iface);
	ro->mode_given = vg_opt_given(p, &ro->load.skb_mode);
	ro->port_given = vg_opt_given(p, &ro->load.port);
	ro->tick_given = vg_opt_given(p, &ro->load.tick_ns);
	ro->max_given = vg_opt_given(p, &ro->load.max_agents);
	ro->id_base_given = vg_opt_given(p, &ro->load.id_base);
	ro->ringbuf_given = vg_opt_given(p, &ro->load.ringbuf_bytes);
	if (ro->no_auth || ro->learn)
		ro->load.cfg.auth_required = 0;
	ret = check(ro);
	if (!ret)
		ret = vg_daemon_run(ro);
	vg_run_opts_free(ro);
	return ret;
}

const struct vg_cmd cli_run = {
	VG_CMD("run", "load (or adopt) the monitor and record its events",
	       "Load vigil's XDP program and sweeper (or adopt the instance pinned at "
	       "--pin-root) and record its events. Stopping the daemon leaves detection "
	       "running in the kernel.",
	       "  vigil run --iface eth0 --config /etc/vigil/agents.conf --keys /etc/vigil/keys\n"
	       "  vigil run --iface lo --mode skb --learn\n"),
	.opts = opts, .size = sizeof(struct vg_run_opts), .init = run_init, .run = run_run,
};
