// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
/*
 * Alert sinks and the outbox worker (see alert.h for the delivery contract).
 *
 * Each configured sink has a thread of its own, with its own connection to
 * the event log. A thread never holds a database lock while it delivers: it
 * reads the due rows, lets go of the database, delivers them one by one
 * (each attempt bounded by the timeout), and writes each outcome in a short
 * transaction of its own. Those writes use synchronous=NORMAL: a power cut
 * may forget a recent outcome, which means one more delivery (at-least-once
 * allows duplicates) but never a lost alert, and the daemon's own commits do
 * not wait behind an extra fsync.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>
#include <sys/random.h>
#include <sys/wait.h>
#include <curl/curl.h>
#include <sqlite3.h>
#include "daemon/alert.h"
#include "daemon/dstats.h"
#include "common/event.h"
#include "common/instance.h"
#include "common/registry.h"
#include "common/eventlog.h"
#include "common/json.h"
#include "common/log.h"
#include "common/secret.h"
#include "common/sql.h"
#include "common/waker.h"
#include "common/util.h"

extern char **environ;

/* The worker looks for due rows at least this often. */
#define POLL_MS 100
/* Rows read per pass; a full batch is followed by another pass at once. */
#define BATCH 32
#define ERR_LEN 256
/* Firing alerts per re-send request to Alertmanager. */
#define RESEND_BATCH 256
/* How often the outbox and dead-letter gauges are counted. */
#define COUNT_MS 1000

void vg_alert_cfg_default(struct vg_alert_cfg *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->max_attempts = VG_ALERT_MAX_ATTEMPTS;
	cfg->backoff_base_ms = VG_ALERT_BACKOFF_BASE_MS;
	cfg->backoff_max_ms = VG_ALERT_BACKOFF_MAX_MS;
	cfg->timeout_ms = VG_ALERT_TIMEOUT_MS;
	cfg->resend_s = VG_ALERT_RESEND_S;
}

bool vg_alert_enabled(const struct vg_alert_cfg *cfg)
{
	return cfg->exec_cmd || cfg->webhook_url || cfg->use_syslog;
}

int vg_alert_cfg_check(const struct vg_alert_cfg *cfg)
{
	if (cfg->exec_cmd && !*cfg->exec_cmd) {
		pr_warn("--alert-exec: the command is empty\n");
		return -1;
	}
	if (cfg->webhook_url && strncmp(cfg->webhook_url, "http://", 7) &&
	    strncmp(cfg->webhook_url, "https://", 8)) {
		char shown[128];

		pr_warn("--alert-webhook: '%s' is not an http:// or https:// URL\n",
			vg_url_redact(cfg->webhook_url, shown, sizeof(shown)));
		return -1;
	}
	return 0;
}

/* ------------------------------------------------------------ enqueue */

static const char *const sink_names[] = { "exec", "webhook", "syslog" };
enum { SINK_EXEC, SINK_WEBHOOK, SINK_SYSLOG, N_SINKS };

static bool sink_on(const struct vg_alert_cfg *cfg, int sink)
{
	switch (sink) {
	case SINK_EXEC:
		return cfg->exec_cmd;
	case SINK_WEBHOOK:
		return cfg->webhook_url;
	default:
		return cfg->use_syslog;
	}
}


int vg_alert_enqueue(struct sqlite3 *db, const struct vg_alert_cfg *cfg, __u64 instance_id,
		     const struct vg_event_view *v)
{
	static const char sql[] =
		"INSERT INTO outbox (sink, instance_id, event_seq, agent_id, payload, attempts,"
		" next_attempt_wall_ns, created_wall_ns) VALUES (?, ?, ?, ?, ?, 0, ?, ?)";
	struct vg_event_view vi = *v;
	__u64 now = vg_wall_ns();
	sqlite3_stmt *st = NULL;
	char *payload;
	int n = 0;

	if (!vg_alert_enabled(cfg))
		return 0;
	vi.instance_id = instance_id;
	payload = vg_event_json_line(&vi, NULL);
	if (!payload) {
		pr_warn("alert for event %llu: out of memory\n", (unsigned long long)v->e->event_seq);
		return -1;
	}
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		goto fail;
	for (int sink = 0; sink < N_SINKS; sink++) {
		if (!sink_on(cfg, sink))
			continue;
		sqlite3_reset(st);
		sqlite3_bind_text(st, 1, sink_names[sink], -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, (sqlite3_int64)instance_id);
		sqlite3_bind_int64(st, 3, (sqlite3_int64)v->e->event_seq);
		sqlite3_bind_int64(st, 4, (sqlite3_int64)v->e->agent_id);
		sqlite3_bind_text(st, 5, payload, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 6, (sqlite3_int64)now);
		sqlite3_bind_int64(st, 7, (sqlite3_int64)now);
		if (sqlite3_step(st) != SQLITE_DONE)
			goto fail;
		n++;
	}
	sqlite3_finalize(st);
	free(payload);
	return n;
fail:
	pr_warn("queueing the alert for event %llu failed: %s\n",
		(unsigned long long)v->e->event_seq, sqlite3_errmsg(db));
	sqlite3_finalize(st);
	free(payload);
	return -1;
}

/* ------------------------------------------------- reading the payload */

/* Append code point cp to out (n of len used) as UTF-8; lone surrogates
 * (the writer never emits them) as U+FFFD. */
static void put_utf8(char *out, size_t len, size_t *n, unsigned int cp)
{
	unsigned char b[3];
	int k;

	if (cp >= 0xd800 && cp <= 0xdfff)
		cp = 0xfffd;
	if (cp < 0x80) {
		b[0] = (unsigned char)cp, k = 1;
	} else if (cp < 0x800) {
		b[0] = 0xc0 | cp >> 6, b[1] = 0x80 | (cp & 0x3f), k = 2;
	} else {
		b[0] = 0xe0 | cp >> 12, b[1] = 0x80 | ((cp >> 6) & 0x3f), b[2] = 0x80 | (cp & 0x3f);
		k = 3;
	}
	if (out && *n + k < len) {
		memcpy(out + *n, b, k);
		*n += k;
	}
}

/* Read the JSON string at *p (just past its opening quote) into out,
 * decoding escapes; *p ends past the closing quote. */
static bool json_string(const char **p, char *out, size_t len)
{
	const char *s = *p;
	size_t n = 0;

	while (*s && *s != '"') {
		unsigned int c = (unsigned char)*s++;

		if (c == '\\') {
			c = (unsigned char)*s++;
			switch (c) {
			case 'b': c = '\b'; break;
			case 'f': c = '\f'; break;
			case 'n': c = '\n'; break;
			case 'r': c = '\r'; break;
			case 't': c = '\t'; break;
			case 'u':
				if (sscanf(s, "%4x", &c) != 1)
					return false;
				s += 4;
				put_utf8(out, len, &n, c);
				continue;
			case '\0':
				return false;
			default: /* '"', '\\', '/' */
				break;
			}
		}
		if (out && n + 1 < len)
			out[n++] = (char)c;
	}
	if (*s != '"')
		return false;
	if (out && len)
		out[n] = '\0';
	*p = s + 1;
	return true;
}

/* The value of a top-level field of a flat JSON object (the event format:
 * strings, numbers, booleans), as text. False if absent or malformed. */
static bool json_get(const char *json, const char *key, char *out, size_t len)
{
	const char *p = strchr(json, '{');
	char k[64];

	if (!p)
		return false;
	p++;
	for (;;) {
		bool match;

		while (*p == ' ' || *p == ',')
			p++;
		if (*p != '"' || (p++, !json_string(&p, k, sizeof(k))) || *p++ != ':')
			return false;
		match = !strcmp(k, key);
		if (*p == '"') {
			p++;
			if (!json_string(&p, match ? out : NULL, len))
				return false;
		} else {
			const char *end = p + strcspn(p, ",}");
			size_t n = end - p;

			if (match) {
				if (n >= len)
					n = len - 1;
				memcpy(out, p, n);
				out[n] = '\0';
			}
			p = end;
		}
		if (match)
			return true;
		if (*p != ',')
			return false;
	}
}

/* The fields the sinks use, read back from a stored payload. */
struct alert_event {
	char event_seq[24], agent_id[24], kind[16], state[16], prev_state[16];
	char detected_ns[24], time[40], instance[24];
	char name[128], group[128];
};

static void parse_event(const char *json, struct alert_event *ev)
{
	memset(ev, 0, sizeof(*ev));
	json_get(json, "event_seq", ev->event_seq, sizeof(ev->event_seq));
	json_get(json, "agent_id", ev->agent_id, sizeof(ev->agent_id));
	json_get(json, "kind", ev->kind, sizeof(ev->kind));
	json_get(json, "state", ev->state, sizeof(ev->state));
	json_get(json, "prev_state", ev->prev_state, sizeof(ev->prev_state));
	json_get(json, "detected_ns", ev->detected_ns, sizeof(ev->detected_ns));
	json_get(json, "time", ev->time, sizeof(ev->time));
	json_get(json, "instance", ev->instance, sizeof(ev->instance));
	json_get(json, "name", ev->name, sizeof(ev->name));
	json_get(json, "group", ev->group, sizeof(ev->group));
}

/* ------------------------------------------------------------- worker */

enum outcome { DELIVERED, FAILED, ABANDONED };

struct vg_alerter;

struct sink_worker {
	struct vg_alerter *a;
	int sink;
	pthread_t thread;
	bool running;
	sqlite3 *db;
	CURLM *multi; /* webhook: keeps connections between alerts */
	__u64 rng;
};

struct vg_alerter {
	struct vg_alert_cfg cfg;
	char *db_path;
	const struct vg_maps *maps;
	__u64 instance_id;
	struct vg_daemon_stats *ds;
	struct vg_waker waker;
	struct sink_worker w[N_SINKS];
	int counting_sink; /* the worker that keeps the outbox and DLQ gauges */
};

/* The Alertmanager webhook keeps what it sent firing (alertmanager_resend). */
static bool is_alertmanager(const struct sink_worker *w)
{
	return w->sink == SINK_WEBHOOK && w->a->cfg.alertmanager;
}

static bool stopping(const struct sink_worker *w)
{
	return vg_waker_stopping(&w->a->waker);
}

/* ---- exec */

/* Keep the daemon's environment, minus any VIGIL_* it had, plus the event. */
static char **exec_env(const char *payload, const struct alert_event *ev)
{
	const char *vars[][2] = {
		{ "VIGIL_EVENT_SEQ", ev->event_seq }, { "VIGIL_AGENT_ID", ev->agent_id },
		{ "VIGIL_AGENT_NAME", ev->name },     { "VIGIL_GROUP", ev->group },
		{ "VIGIL_KIND", ev->kind },           { "VIGIL_STATE", ev->state },
		{ "VIGIL_PREV_STATE", ev->prev_state }, { "VIGIL_DETECTED_NS", ev->detected_ns },
		{ "VIGIL_TIME", ev->time },           { "VIGIL_INSTANCE", ev->instance },
		{ "VIGIL_EVENT_JSON", payload },
	};
	size_t n_env = 0, n = 0, n_vars = sizeof(vars) / sizeof(vars[0]);
	char **env;

	while (environ && environ[n_env])
		n_env++;
	env = calloc(n_env + n_vars + 1, sizeof(*env));
	if (!env)
		return NULL;
	for (size_t i = 0; i < n_env; i++)
		if (strncmp(environ[i], "VIGIL_", 6) && !(env[n++] = strdup(environ[i])))
			goto fail;
	for (size_t i = 0; i < n_vars; i++)
		if (asprintf(&env[n++], "%s=%s", vars[i][0], vars[i][1]) < 0) {
			env[--n] = NULL;
			goto fail;
		}
	return env;
fail:
	for (size_t i = 0; i < n; i++)
		free(env[i]);
	free(env);
	return NULL;
}

static void free_env(char **env)
{
	for (size_t i = 0; env && env[i]; i++)
		free(env[i]);
	free(env);
}

/* Write the payload to the command's stdin until done, the command stops
 * reading, or the deadline. */
static void feed_stdin(int fd, const char *buf, size_t len, __u64 deadline)
{
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	while (len) {
		struct pollfd p = { .fd = fd, .events = POLLOUT };
		__u64 now = vg_mono_ns();
		ssize_t n;

		if (now >= deadline || poll(&p, 1, (int)((deadline - now) / 1000000 + 1)) <= 0)
			return;
		n = write(fd, buf, len);
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				continue;
			return; /* EPIPE: it does not read stdin, which is its right */
		}
		buf += n;
		len -= n;
	}
}

static enum outcome deliver_exec(struct sink_worker *w, const char *payload,
				 const struct alert_event *ev, char *err)
{
	const struct vg_alert_cfg *cfg = &w->a->cfg;
	char *argv[] = { "sh", "-c", (char *)cfg->exec_cmd, NULL };
	__u64 deadline = vg_mono_ns() + cfg->timeout_ms * 1000000ULL;
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	sigset_t none, dfl;
	char **env = exec_env(payload, ev);
	int fds[2], rc, status;
	pid_t pid;

	if (!env) {
		snprintf(err, ERR_LEN, "out of memory");
		return FAILED;
	}
	if (pipe2(fds, O_CLOEXEC)) {
		snprintf(err, ERR_LEN, "pipe: %s", strerror(errno));
		free_env(env);
		return FAILED;
	}
	/* The command gets its own process group (killed as a whole on a
	 * timeout), default signals and an empty mask (this thread blocks all),
	 * the event on stdin, and stdout on the daemon's stderr: the daemon's
	 * stdout carries events. Nothing else of the daemon's is inherited. */
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, fds[0], 0);
	posix_spawn_file_actions_adddup2(&fa, 2, 1);
	posix_spawn_file_actions_addclosefrom_np(&fa, 3);
	posix_spawnattr_init(&attr);
	sigemptyset(&none);
	sigemptyset(&dfl);
	for (int sig = 1; sig < SIGRTMIN; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			sigaddset(&dfl, sig);
	posix_spawnattr_setsigmask(&attr, &none);
	posix_spawnattr_setsigdefault(&attr, &dfl);
	posix_spawnattr_setpgroup(&attr, 0);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
						POSIX_SPAWN_SETSIGDEF);
	rc = posix_spawn(&pid, "/bin/sh", &fa, &attr, argv, env);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&attr);
	free_env(env);
	close(fds[0]);
	if (rc) {
		close(fds[1]);
		snprintf(err, ERR_LEN, "cannot run /bin/sh: %s", strerror(rc));
		return FAILED;
	}
	feed_stdin(fds[1], payload, strlen(payload), deadline);
	close(fds[1]);
	for (;;) {
		pid_t r = waitpid(pid, &status, WNOHANG);

		if (r == pid)
			break;
		if (r < 0 && errno != EINTR) {
			snprintf(err, ERR_LEN, "waiting for the command: %s", strerror(errno));
			return FAILED;
		}
		if (stopping(w) || vg_mono_ns() >= deadline) {
			kill(-pid, SIGKILL);
			waitpid(pid, &status, 0);
			if (stopping(w))
				return ABANDONED;
			snprintf(err, ERR_LEN, "timed out after %llu ms (process group killed)",
				 (unsigned long long)cfg->timeout_ms);
			return FAILED;
		}
		usleep(5000);
	}
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return DELIVERED;
	if (WIFEXITED(status))
		snprintf(err, ERR_LEN, "command exited with status %d", WEXITSTATUS(status));
	else
		snprintf(err, ERR_LEN, "command killed by signal %d", WTERMSIG(status));
	return FAILED;
}

/* ---- webhook */

static const char *severity_of(const char *kind)
{
	if (!strcmp(kind, "dead"))
		return "critical";
	if (!strcmp(kind, "suspect"))
		return "warning";
	return "info";
}

/* One Alertmanager alert. It fires until ends_at, or is resolved when
 * ends_at is the event's own time (in the past by the time it arrives). */
static void am_alert(struct vg_json *j, const struct alert_event *ev, const char *alertname,
		     const char *severity, const char *summary, const char *ends_at)
{
	vg_json_obj(j);
	vg_json_obj_field(j, "labels");
	vg_json_str_field(j, "alertname", alertname);
	vg_json_str_field(j, "agent_id", ev->agent_id);
	vg_json_str_field(j, "name", ev->name);
	vg_json_str_field(j, "group", ev->group);
	vg_json_str_field(j, "severity", severity);
	vg_json_close(j);
	vg_json_obj_field(j, "annotations");
	vg_json_str_field(j, "summary", summary);
	vg_json_str_field(j, "event_seq", ev->event_seq);
	vg_json_str_field(j, "instance", ev->instance);
	vg_json_close(j);
	vg_json_str_field(j, "startsAt", ev->time);
	vg_json_str_field(j, "endsAt", ends_at);
	vg_json_close(j);
}

/* The Alertmanager v2 alerts (POST /api/v2/alerts) for one event, into an
 * open array: SUSPECT fires VigilAgentSuspect (warning); DEAD fires
 * VigilAgentDead (critical) and resolves VigilAgentSuspect; RECOVERED
 * resolves both (same labels, endsAt = the event's time); other kinds are
 * info alerts. A firing alert carries endsAt = fire_until, a few re-send
 * periods ahead: Alertmanager keeps it while vigil re-sends it
 * (alertmanager_resend) and lets it end by itself when nobody does, without
 * waiting for its resolve_timeout. */
static void am_event(struct vg_json *j, const struct alert_event *ev, const char *fire_until)
{
	const char *who = *ev->name ? ev->name : ev->agent_id;
	char summary[512], alertname[64];

	if (!strcmp(ev->kind, "recovered")) {
		snprintf(summary, sizeof(summary), "agent %s (id %s) recovered", who, ev->agent_id);
		am_alert(j, ev, "VigilAgentSuspect", "warning", summary, ev->time);
		am_alert(j, ev, "VigilAgentDead", "critical", summary, ev->time);
		return;
	}
	snprintf(alertname, sizeof(alertname), "VigilAgent%c%s",
		 ev->kind[0] ? ev->kind[0] - 'a' + 'A' : 'X', ev->kind[0] ? ev->kind + 1 : "");
	snprintf(summary, sizeof(summary), "agent %s (id %s, group %s) is %s (was %s)", who,
		 ev->agent_id, *ev->group ? ev->group : "-", ev->state, ev->prev_state);
	am_alert(j, ev, alertname, severity_of(ev->kind), summary, fire_until);
	if (!strcmp(ev->kind, "dead"))
		am_alert(j, ev, "VigilAgentSuspect", "warning", summary, ev->time);
}

/* When a firing alert sent now ends unless it is sent again. */
static void fire_until(const struct vg_alert_cfg *cfg, char *buf, size_t len)
{
	vg_fmt_wall(vg_wall_ns() + (__u64)cfg->resend_s * VG_ALERT_VALIDITY_PERIODS *
					   VIGIL_NSEC_PER_SEC, buf, len);
}

/* A JSON array of the Alertmanager alerts of n events. */
static char *alertmanager_body(const struct vg_alert_cfg *cfg, const struct alert_event *ev,
			       size_t n)
{
	char *buf = NULL, until[40];
	struct vg_json j;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	if (!f)
		return NULL;
	fire_until(cfg, until, sizeof(until));
	vg_json_begin(&j, f);
	vg_json_arr(&j);
	for (size_t i = 0; i < n; i++)
		am_event(&j, &ev[i], until);
	vg_json_close(&j);
	if (fclose(f)) {
		free(buf);
		return NULL;
	}
	return buf;
}

struct response {
	char text[128];
	size_t len;
};

static size_t keep_response(char *data, size_t size, size_t nmemb, void *ctx)
{
	struct response *r = ctx;
	size_t n = size * nmemb, room = sizeof(r->text) - 1 - r->len;

	if (room) {
		memcpy(r->text + r->len, data, n < room ? n : room);
		r->len += n < room ? n : room;
		r->text[r->len] = '\0';
	}
	return n;
}

/* POST body to the webhook; the outcome, and why in err when it failed. */
static enum outcome post(struct sink_worker *w, const char *body, char *err)
{
	const struct vg_alert_cfg *cfg = &w->a->cfg;
	struct curl_slist *hdr = NULL;
	struct response resp = {};
	enum outcome out = FAILED;
	CURLcode result = CURLE_OK;
	bool done = false;
	long code = 0;
	int running = 1;
	CURLMsg *msg;
	CURL *h;

	h = curl_easy_init();
	hdr = curl_slist_append(hdr, "Content-Type: application/json");
	if (!h || !hdr) {
		snprintf(err, ERR_LEN, "cannot set up libcurl");
		goto out;
	}
	curl_easy_setopt(h, CURLOPT_URL, cfg->webhook_url);
	curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "vigil");
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)cfg->timeout_ms);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, keep_response);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &resp);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_multi_add_handle(w->multi, h);
	/* The multi interface, so that vg_alerter_stop() (curl_multi_wakeup)
	 * ends an attempt in flight at once. */
	while (running) {
		if (curl_multi_perform(w->multi, &running) != CURLM_OK)
			break;
		if (running && curl_multi_poll(w->multi, NULL, 0, POLL_MS, NULL) != CURLM_OK)
			break;
		if (stopping(w)) {
			out = ABANDONED;
			break;
		}
	}
	while ((msg = curl_multi_info_read(w->multi, &running)))
		if (msg->msg == CURLMSG_DONE && msg->easy_handle == h) {
			result = msg->data.result;
			done = true;
		}
	curl_multi_remove_handle(w->multi, h);
	if (out == ABANDONED)
		goto out;
	if (!done) {
		snprintf(err, ERR_LEN, "libcurl stopped before the request completed");
		goto out;
	}
	if (result != CURLE_OK) {
		snprintf(err, ERR_LEN, "%s", curl_easy_strerror(result));
		if (result == CURLE_OPERATION_TIMEDOUT)
			snprintf(err, ERR_LEN, "timed out after %llu ms",
				 (unsigned long long)cfg->timeout_ms);
		goto out;
	}
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
	if (code >= 200 && code < 300) {
		out = DELIVERED;
	} else {
		for (char *c = resp.text; *c; c++)
			if (*c == '\n' || *c == '\r')
				*c = ' ';
		snprintf(err, ERR_LEN, "HTTP %ld%s%.100s", code, resp.len ? ": " : "", resp.text);
	}
out:
	curl_slist_free_all(hdr);
	if (h)
		curl_easy_cleanup(h);
	return out;
}

static enum outcome deliver_webhook(struct sink_worker *w, const char *payload,
				    const struct alert_event *ev, char *err)
{
	enum outcome out;
	char *body;

	if (!w->a->cfg.alertmanager)
		return post(w, payload, err);
	body = alertmanager_body(&w->a->cfg, ev, 1);
	if (!body) {
		snprintf(err, ERR_LEN, "out of memory");
		return FAILED;
	}
	out = post(w, body, err);
	free(body);
	return out;
}

/* ---- syslog */

static enum outcome deliver_syslog(const char *payload, const struct alert_event *ev)
{
	int prio = !strcmp(ev->kind, "dead") ? LOG_CRIT :
		   !strcmp(ev->kind, "suspect") ? LOG_WARNING : LOG_NOTICE;

	syslog(LOG_DAEMON | prio, "agent %s (id %s, group %s) %s: %s -> %s, event %s: %s",
	       *ev->name ? ev->name : "-", ev->agent_id, *ev->group ? ev->group : "-", ev->kind,
	       ev->prev_state, ev->state, ev->event_seq, payload);
	return DELIVERED;
}

/* ---- outcomes */

struct row {
	sqlite3_int64 id;
	__u64 instance_id, event_seq, agent_id;
	__u32 attempts;
	char *payload;
};

/* Per agent, the newest alert event Alertmanager accepted from this log: what
 * alertmanager_resend() keeps firing. Kept in the event log, so that it
 * outlives the daemon; a late delivery of an older event never replaces a
 * newer one. */
static const char am_schema[] =
	"CREATE TABLE IF NOT EXISTS alertmanager_alerts ("
	"  instance_id INTEGER NOT NULL, agent_id INTEGER NOT NULL,"
	"  event_seq INTEGER NOT NULL, kind TEXT NOT NULL, payload TEXT NOT NULL,"
	"  PRIMARY KEY (instance_id, agent_id)) WITHOUT ROWID";

static bool am_record(struct sink_worker *w, const struct row *r, const char *kind)
{
	return vg_sql_run(w->db,
			  "INSERT INTO alertmanager_alerts VALUES (?1, ?2, ?3, ?4, ?5)"
			  " ON CONFLICT (instance_id, agent_id) DO UPDATE SET"
			  " event_seq = excluded.event_seq, kind = excluded.kind,"
			  " payload = excluded.payload WHERE excluded.event_seq > event_seq",
			  "iiitt", (long long)r->instance_id, (long long)r->agent_id,
			  (long long)r->event_seq, kind, r->payload);
}

/* Alertmanager already has a newer event of this agent (this one was
 * retried, or replayed from the dead-letter queue, after it): sending it
 * would fire an alert that is over, or resolve one that is not. */
static bool am_superseded(struct sink_worker *w, const struct row *r, __u64 *newer)
{
	return vg_sql_u64(w->db, newer,
			  "SELECT event_seq FROM alertmanager_alerts WHERE instance_id = ?1 AND"
			  " agent_id = ?2 AND event_seq > ?3", "iii", (long long)r->instance_id,
			  (long long)r->agent_id, (long long)r->event_seq);
}

static void delivered(struct sink_worker *w, const struct row *r, const struct alert_event *ev)
{
	bool ok = vg_sql_exec(w->db, "BEGIN IMMEDIATE") &&
		  vg_sql_run(w->db, "DELETE FROM outbox WHERE id = ?1", "i", (long long)r->id) &&
		  (!is_alertmanager(w) || am_record(w, r, ev->kind)) &&
		  vg_sql_exec(w->db, "COMMIT");

	if (!ok) {
		vg_sql_exec(w->db, "ROLLBACK");
		pr_warn("alert %lld (%s): delivered, but removing it from the outbox failed: %s "
			"(it will be delivered again)\n", (long long)r->id, sink_names[w->sink],
			sqlite3_errmsg(w->db));
	}
	atomic_fetch_add(&w->a->ds->alerts_delivered, 1);
	if (r->attempts)
		pr_info("alert %lld (%s, event %llu): delivered after %u failed attempt(s)\n",
			(long long)r->id, sink_names[w->sink], (unsigned long long)r->event_seq,
			r->attempts);
	else
		pr_debug("alert %lld (%s, event %llu): delivered\n", (long long)r->id,
			 sink_names[w->sink], (unsigned long long)r->event_seq);
}

static void dead_letter(struct sink_worker *w, const struct row *r, __u32 attempts,
			const char *err)
{
	bool ok = vg_sql_exec(w->db, "BEGIN IMMEDIATE") &&
		  vg_sql_run(w->db,
			     "INSERT INTO dlq (sink, instance_id, event_seq, agent_id, payload,"
			     " attempts, last_error, created_wall_ns, failed_wall_ns)"
			     " SELECT sink, instance_id, event_seq, agent_id, payload, ?2, ?4,"
			     " created_wall_ns, ?3 FROM outbox WHERE id = ?1", "iiit",
			     (long long)r->id, (long long)attempts, (long long)vg_wall_ns(), err) &&
		  vg_sql_run(w->db, "DELETE FROM outbox WHERE id = ?1", "i", (long long)r->id) &&
		  vg_sql_exec(w->db, "COMMIT");

	if (!ok) {
		pr_warn("alert %lld (%s): moving it to the dead-letter queue failed: %s (it stays "
			"in the outbox)\n", (long long)r->id, sink_names[w->sink],
			sqlite3_errmsg(w->db));
		vg_sql_exec(w->db, "ROLLBACK");
		return;
	}
	atomic_fetch_add(&w->a->ds->alerts_dead_lettered, 1);
	pr_warn("alert %lld (%s, event %llu): %u attempts failed (last: %s); moved to the "
		"dead-letter queue ('vigil dlq list', 'vigil dlq replay')\n", (long long)r->id,
		sink_names[w->sink], (unsigned long long)r->event_seq, attempts, err);
}

static void failed(struct sink_worker *w, const struct row *r, const char *err)
{
	const struct vg_alert_cfg *cfg = &w->a->cfg;
	__u32 attempts = r->attempts + 1;
	__u64 cap = cfg->backoff_max_ms, delay;

	atomic_fetch_add(&w->a->ds->alert_attempts_failed, 1);
	if (attempts >= cfg->max_attempts) {
		dead_letter(w, r, attempts, err);
		return;
	}
	/* Full jitter: uniform in [0, min(max, base * 2^failures before this)]. */
	if (r->attempts < 63 && cfg->backoff_base_ms <= cap >> r->attempts)
		cap = cfg->backoff_base_ms << r->attempts;
	delay = vg_splitmix64(&w->rng) % (cap + 1);
	if (!vg_sql_run(w->db,
			"UPDATE outbox SET attempts = ?2, next_attempt_wall_ns = ?3, last_error = ?4"
			" WHERE id = ?1", "iiit", (long long)r->id, (long long)attempts,
			(long long)(vg_wall_ns() + delay * 1000000ULL), err))
		pr_warn("alert %lld (%s): recording a failed attempt failed: %s\n", (long long)r->id,
			sink_names[w->sink], sqlite3_errmsg(w->db));
	pr_info("alert %lld (%s, event %llu): attempt %u of %u failed: %s; retrying in %llu ms "
		"(backoff cap %llu ms)\n", (long long)r->id, sink_names[w->sink],
		(unsigned long long)r->event_seq, attempts, cfg->max_attempts, err,
		(unsigned long long)delay, (unsigned long long)cap);
}

/* Read up to BATCH due rows of this sink; returns how many, -1 on error. */
static int due_rows(struct sink_worker *w, struct row *rows)
{
	sqlite3_stmt *st;
	int n = 0, rc;

	if (sqlite3_prepare_v2(w->db,
			       "SELECT id, event_seq, attempts, payload, instance_id, agent_id"
			       " FROM outbox WHERE sink = ?1 AND next_attempt_wall_ns <= ?2"
			       " ORDER BY id LIMIT ?3",
			       -1, &st, NULL) != SQLITE_OK)
		return -1;
	sqlite3_bind_text(st, 1, sink_names[w->sink], -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)vg_wall_ns());
	sqlite3_bind_int(st, 3, BATCH);
	while (n < BATCH && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *p = (const char *)sqlite3_column_text(st, 3);

		rows[n].id = sqlite3_column_int64(st, 0);
		rows[n].event_seq = (__u64)sqlite3_column_int64(st, 1);
		rows[n].attempts = (__u32)sqlite3_column_int64(st, 2);
		rows[n].instance_id = (__u64)sqlite3_column_int64(st, 4);
		rows[n].agent_id = (__u64)sqlite3_column_int64(st, 5);
		rows[n].payload = strdup(p ? p : "{}");
		if (!rows[n].payload)
			break;
		n++;
	}
	sqlite3_finalize(st);
	return n;
}

/* One pass over the due rows; returns true if there may be more. */
static bool pass(struct sink_worker *w)
{
	struct row rows[BATCH];
	int n = due_rows(w, rows), i;

	if (n < 0) {
		pr_warn("alert worker (%s): reading the outbox failed: %s\n", sink_names[w->sink],
			sqlite3_errmsg(w->db));
		return false;
	}
	for (i = 0; i < n && !stopping(w); i++) {
		struct alert_event ev;
		char err[ERR_LEN] = "";
		enum outcome o;
		__u64 newer;

		parse_event(rows[i].payload, &ev);
		if (is_alertmanager(w) && am_superseded(w, &rows[i], &newer)) {
			pr_info("alert %lld (webhook, event %llu): not sent, Alertmanager has the "
				"agent's newer event %llu\n", (long long)rows[i].id,
				(unsigned long long)rows[i].event_seq, (unsigned long long)newer);
			delivered(w, &rows[i], &ev);
			continue;
		}
		switch (w->sink) {
		case SINK_EXEC:
			o = deliver_exec(w, rows[i].payload, &ev, err);
			break;
		case SINK_WEBHOOK:
			o = deliver_webhook(w, rows[i].payload, &ev, err);
			break;
		default:
			o = deliver_syslog(rows[i].payload, &ev);
			break;
		}
		if (o == DELIVERED)
			delivered(w, &rows[i], &ev);
		else if (o == FAILED)
			failed(w, &rows[i], err);
	}
	for (i = 0; i < n; i++)
		free(rows[i].payload);
	return n == BATCH;
}

/* ---- keeping Alertmanager's alerts firing */

/* The alerts Alertmanager accepted that still fire, as their events'
 * payloads: the agent's newest delivered event is a SUSPECT or DEAD, and the
 * maps say the agent is still SUSPECT or DEAD (a RECOVERED still on its way,
 * withheld by flap damping, an agent removed since: not re-sent, so the
 * alert ends at its endsAt). Returns how many, or -1 when the log cannot be
 * read. */
static long firing_alerts(struct sink_worker *w, char ***out)
{
	const struct vg_alerter *a = w->a;
	sqlite3_stmt *st;
	size_t n = 0, cap = 0;

	if (sqlite3_prepare_v2(w->db,
			       "SELECT agent_id, payload FROM alertmanager_alerts WHERE instance_id"
			       " = ?1 AND kind IN ('suspect', 'dead') ORDER BY agent_id", -1, &st,
			       NULL) != SQLITE_OK)
		return -1;
	sqlite3_bind_int64(st, 1, (sqlite3_int64)a->instance_id);
	while (sqlite3_step(st) == SQLITE_ROW) {
		const char *p = (const char *)sqlite3_column_text(st, 1);
		struct vg_agent ag;

		if (vg_agent_get(a->maps, (__u64)sqlite3_column_int64(st, 0), NULL, &ag) ||
		    (ag.s.state != VIGIL_AGENT_SUSPECT && ag.s.state != VIGIL_AGENT_DEAD))
			continue;
		if (vg_grow(out, &cap, n, sizeof(**out), 64) || !((*out)[n] = strdup(p ? p : "{}")))
			break;
		n++;
	}
	sqlite3_finalize(st);
	return (long)n;
}

/* Re-send every firing alert with endsAt moved ahead (docs/operations.md):
 * Alertmanager expects its clients to repeat what still fires, and ends an
 * alert nobody repeats. Done every --alert-resend-s from the log and the
 * maps, so a restarted daemon goes on where the last one stopped. A failed
 * re-send is tried again at the next period: the alerts' endsAt leaves
 * VG_ALERT_VALIDITY_PERIODS periods for that. */
static void alertmanager_resend(struct sink_worker *w, bool *failing)
{
	struct vg_alerter *a = w->a;
	struct alert_event *ev = malloc(RESEND_BATCH * sizeof(*ev));
	char **payloads = NULL;
	long n = firing_alerts(w, &payloads), sent = 0;

	if (n < 0)
		pr_warn("alerts: reading the alerts Alertmanager keeps failed: %s\n",
			sqlite3_errmsg(w->db));
	for (long i = 0; i < n && !stopping(w); i += RESEND_BATCH) {
		long k = n - i < RESEND_BATCH ? n - i : RESEND_BATCH;
		char err[ERR_LEN] = "out of memory", *body = NULL;
		enum outcome o = FAILED;

		for (long j = 0; ev && j < k; j++)
			parse_event(payloads[i + j], &ev[j]);
		if (ev)
			body = alertmanager_body(&a->cfg, ev, k);
		if (body)
			o = post(w, body, err);
		free(body);
		if (o == DELIVERED) {
			sent += k;
		} else if (o == FAILED) {
			atomic_fetch_add(&a->ds->alert_resends_failed, 1);
			if (!*failing)
				pr_warn("alerts: re-sending %ld firing alert(s) to Alertmanager failed "
					"(%s); trying again every %u s, they end %u s after the last "
					"one that got through\n", n, err, a->cfg.resend_s,
					a->cfg.resend_s * VG_ALERT_VALIDITY_PERIODS);
			*failing = true;
			break;
		}
	}
	if (sent == n && *failing) {
		pr_info("alerts: re-sending to Alertmanager works again (%ld firing)\n", n);
		*failing = false;
	}
	atomic_fetch_add(&a->ds->alerts_resent, sent);
	if (n >= 0)
		atomic_store(&a->ds->alerts_firing, n);
	for (long i = 0; i < n; i++)
		free(payloads[i]);
	free(payloads);
	free(ev);
}

/* The outbox and dead-letter gauges. */
static void count_rows(struct sink_worker *w)
{
	__u64 v;

	if (vg_sql_u64(w->db, &v, "SELECT count(*) FROM outbox", ""))
		atomic_store(&w->a->ds->alerts_pending, v);
	if (vg_sql_u64(w->db, &v, "SELECT count(*) FROM dlq", ""))
		atomic_store(&w->a->ds->alerts_dead_letter_queue, v);
}

static void *worker_main(void *arg)
{
	struct sink_worker *w = arg;
	struct vg_alerter *a = w->a;
	__u64 resend_ns = (__u64)a->cfg.resend_s * VIGIL_NSEC_PER_SEC, next_resend = 0;
	__u64 next_count = 0;
	bool failing = false;

	if (w->sink == SINK_SYSLOG)
		openlog("vigil", LOG_PID, LOG_DAEMON);
	while (!stopping(w)) {
		bool more = pass(w);
		__u64 now = vg_mono_ns();

		/* The first re-send comes right after the first pass: a
		 * restarted daemon renews at once what the last one sent. */
		if (is_alertmanager(w) && now >= next_resend) {
			alertmanager_resend(w, &failing);
			next_resend = now + resend_ns;
		}
		if (w->sink == a->counting_sink && now >= next_count) {
			count_rows(w);
			next_count = now + COUNT_MS * 1000000ULL;
		}
		if (!more)
			vg_waker_nap(&a->waker, POLL_MS);
	}
	return NULL;
}

/* Rows of sinks this run does not deliver wait; say so once. */
static void note_waiting(struct vg_alerter *a, sqlite3 *db)
{
	sqlite3_stmt *st;

	if (sqlite3_prepare_v2(db, "SELECT sink, count(*) FROM outbox GROUP BY sink", -1, &st,
			       NULL) != SQLITE_OK)
		return;
	while (sqlite3_step(st) == SQLITE_ROW) {
		const char *sink = (const char *)sqlite3_column_text(st, 0);
		bool on = false;

		for (int i = 0; i < N_SINKS; i++)
			if (sink && !strcmp(sink, sink_names[i]))
				on = sink_on(&a->cfg, i);
		if (!on)
			pr_warn("%lld alert(s) for sink '%s' wait in the outbox: that sink is not "
				"configured in this run\n", (long long)sqlite3_column_int64(st, 1),
				sink ? sink : "?");
	}
	sqlite3_finalize(st);
}

static sqlite3 *open_db(const char *path)
{
	sqlite3 *db = NULL;

	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_FULLMUTEX, NULL) !=
	    SQLITE_OK) {
		pr_warn("%s: the alert worker cannot open the event log: %s\n", path,
			db ? sqlite3_errmsg(db) : "out of memory");
		sqlite3_close(db);
		return NULL;
	}
	sqlite3_busy_timeout(db, 5000);
	vg_sql_exec(db, "PRAGMA synchronous=NORMAL");
	return db;
}

int vg_alerter_start(const char *db_path, const struct vg_alert_cfg *cfg,
		     const struct vg_maps *maps, __u64 instance_id, struct vg_daemon_stats *ds,
		     struct vg_alerter **out)
{
	struct vg_alerter *a;
	char webhook[80];
	__u64 seed = 0;
	sqlite3 *db;

	*out = NULL;
	if (!vg_alert_enabled(cfg))
		return 0;
	if (cfg->max_attempts < 1 || !cfg->backoff_base_ms || !cfg->timeout_ms || !cfg->resend_s) {
		pr_warn("alerts: max attempts, backoff, timeout and re-send period must be positive\n");
		return -1;
	}
	if (curl_global_init(CURL_GLOBAL_DEFAULT)) {
		pr_warn("alerts: libcurl cannot be initialised\n");
		return -1;
	}
	a = calloc(1, sizeof(*a));
	if (!a) {
		pr_warn("alerts: out of memory\n");
		curl_global_cleanup();
		return -1;
	}
	a->cfg = *cfg;
	a->maps = maps;
	a->instance_id = instance_id;
	a->ds = ds;
	a->counting_sink = -1;
	vg_waker_init(&a->waker);
	if (!(a->db_path = strdup(db_path))) {
		pr_warn("alerts: out of memory\n");
		goto fail;
	}

	/* Due-time lookups; harmless if it exists. */
	db = open_db(db_path);
	if (!db)
		goto fail;
	vg_sql_exec(db, "CREATE INDEX IF NOT EXISTS outbox_due ON outbox(sink, next_attempt_wall_ns)");
	/* Alerts of an earlier instance (before a detach) are not re-sent: its
	 * agents are gone; Alertmanager ends them at their endsAt. */
	if (cfg->alertmanager &&
	    (!vg_sql_exec(db, am_schema) ||
	     !vg_sql_run(db, "DELETE FROM alertmanager_alerts WHERE instance_id != ?1", "i",
			 (long long)instance_id))) {
		pr_warn("%s: preparing the table of Alertmanager's alerts failed: %s\n", db_path,
			sqlite3_errmsg(db));
		sqlite3_close(db);
		goto fail;
	}
	note_waiting(a, db);
	sqlite3_close(db);

	if (getrandom(&seed, sizeof(seed), 0) != sizeof(seed))
		seed = vg_mono_ns();
	/* Workers block every signal (vg_worker_start): an exec sink that
	 * closes its stdin early gives EPIPE. */
	for (int i = 0; i < N_SINKS; i++) {
		struct sink_worker *w = &a->w[i];

		if (!sink_on(cfg, i))
			continue;
		w->a = a;
		w->sink = i;
		if (a->counting_sink < 0)
			a->counting_sink = i;
		w->rng = seed + (__u64)i * 0x632be59bd9b4e019ULL;
		w->db = open_db(db_path);
		if (!w->db || (i == SINK_WEBHOOK && !(w->multi = curl_multi_init())) ||
		    vg_worker_start(&w->thread, worker_main, w)) {
			pr_warn("alerts: cannot start the %s worker\n", sink_names[i]);
			goto fail;
		}
		w->running = true;
	}
	if (cfg->alertmanager)
		snprintf(webhook, sizeof(webhook),
			 "webhook (alertmanager, firing alerts re-sent every %u s)", cfg->resend_s);
	else
		vg_strlcpy(webhook, "webhook (json)", sizeof(webhook));
	pr_info("alerts: %s%s%s%s%s; up to %u attempts, backoff %llu..%llu ms, timeout %llu ms\n",
		cfg->exec_cmd ? "exec" : "", cfg->exec_cmd && cfg->webhook_url ? ", " : "",
		cfg->webhook_url ? webhook : "",
		(cfg->exec_cmd || cfg->webhook_url) && cfg->use_syslog ? ", " : "",
		cfg->use_syslog ? "syslog" : "", cfg->max_attempts,
		(unsigned long long)cfg->backoff_base_ms, (unsigned long long)cfg->backoff_max_ms,
		(unsigned long long)cfg->timeout_ms);
	*out = a;
	return 0;
fail:
	vg_alerter_stop(a);
	return -1;
}

void vg_alerter_stop(struct vg_alerter *a)
{
	if (!a)
		return;
	vg_waker_stop(&a->waker);
	for (int i = 0; i < N_SINKS; i++)
		if (a->w[i].running && a->w[i].multi)
			curl_multi_wakeup(a->w[i].multi);
	for (int i = 0; i < N_SINKS; i++) {
		struct sink_worker *w = &a->w[i];

		if (w->running)
			pthread_join(w->thread, NULL);
		if (w->multi)
			curl_multi_cleanup(w->multi);
		sqlite3_close(w->db);
	}
	vg_waker_destroy(&a->waker);
	free(a->db_path);
	free(a);
	curl_global_cleanup();
}
