// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
/*
 * The other views of `vigil status` (docs/operations.md, docs/maps.md):
 *
 *   --watch         a terminal view refreshed in place, for the SRE on call:
 *                   the fleet's counts and rates, the monitor's health, the
 *                   agents whose state changed last;
 *   --bpftool       the `bpftool map lookup` commands of the slots in use, so
 *                   a raw look at the maps skips the free slots of an array;
 *   --from-bpftool  bpftool's output with each monotonic time also as UTC and
 *                   as an age, so a dump reads without arithmetic.
 */
#include <ctype.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include "cli/status.h"
#include "common/event.h"
#include "common/instance.h"
#include "common/log.h"
#include "common/util.h"

/* ------------------------------------------------------------- --watch */

static volatile sig_atomic_t watch_stop;

static void on_stop_signal(int sig)
{
	(void)sig;
	watch_stop = 1;
}

/* A duration for a narrow column: 850ms, 12.3s, 5m03s, 2h05m, 3d04h. */
static void fmt_dur(char *buf, size_t len, __u64 ns)
{
	__u64 s = ns / VIGIL_NSEC_PER_SEC;

	if (ns < VIGIL_NSEC_PER_SEC)
		snprintf(buf, len, "%llums", (unsigned long long)(ns / VIGIL_NSEC_PER_MSEC));
	else if (s < 60)
		snprintf(buf, len, "%.1fs", ns / 1e9);
	else if (s < 3600)
		snprintf(buf, len, "%llum%02llus", s / 60, s % 60);
	else if (s < 86400)
		snprintf(buf, len, "%lluh%02llum", s / 3600, s / 60 % 60);
	else
		snprintf(buf, len, "%llud%02lluh", s / 86400, s / 3600 % 24);
}

static __u64 since(__u64 now, __u64 t)
{
	return now > t ? now - t : 0;
}

/* One frame's lines, each cut to the terminal's width (a wrapped line
 * would shift everything below it). */
struct frame {
	char (*line)[512];
	size_t n, max, cols, cap; /* lines used, allowed, allocated */
};

__attribute__((format(printf, 2, 3))) static void add(struct frame *f, const char *fmt, ...)
{
	va_list ap;

	if (f->n >= f->max)
		return;
	va_start(ap, fmt);
	vsnprintf(f->line[f->n], sizeof(f->line[0]), fmt, ap);
	va_end(ap);
	if (f->cols < sizeof(f->line[0]))
		f->line[f->n][f->cols] = '\0';
	f->n++;
}

static int by_change(const void *a, const void *b)
{
	__u64 x = ((const struct agent_row *)a)->a.i.state_since_ns;
	__u64 y = ((const struct agent_row *)b)->a.i.state_since_ns;

	return x > y ? -1 : x < y;
}

/* Per second over the time between two snapshots. */
static double rate(__u64 now_v, __u64 prev_v, double secs)
{
	return secs > 0 && now_v >= prev_v ? (now_v - prev_v) / secs : 0.0;
}

static void rates_line(struct frame *f, const struct snapshot *sn, const struct snapshot *prev)
{
	const struct vigil_stats *st = &sn->st, *ps = prev ? &prev->st : NULL;
	double secs = prev ? (sn->now - prev->now) / 1e9 : 0;
	char why[256] = "";
	size_t w = 0;

	if (!prev) {
		add(f, "beats %llu, refused %llu, events %llu so far, ring buffer lost %llu "
		       "(rates next)",
		    (unsigned long long)st->beats, (unsigned long long)snapshot_refused(st),
		    (unsigned long long)st->events, (unsigned long long)st->ringbuf_full);
		return;
	}
#define X(r)                                                                              \
	if (st->r > ps->r && w < sizeof(why))                                             \
		w += snprintf(why + w, sizeof(why) - w, "%s %s %.1f/s", w ? "," : ":", #r, \
			      rate(st->r, ps->r, secs));
	VIGIL_REFUSALS(X)
#undef X
	add(f, "beats %.1f/s (late %.1f/s), refused %.1f/s%s; events %.1f/s, ring buffer lost %llu",
	    rate(st->beats, ps->beats, secs), rate(st->reordered, ps->reordered, secs),
	    rate(snapshot_refused(st), snapshot_refused(ps), secs), why,
	    rate(st->events, ps->events, secs), (unsigned long long)st->ringbuf_full);
}

static void health_line(struct frame *f, const struct snapshot *sn)
{
	char qs[128] = "";
	size_t w = 0, behind = 0;

	for (size_t i = 0; i < sn->nq; i++)
		if (sn->rxq[i].behind_since_ns) {
			behind++;
			if (w < sizeof(qs))
				w += snprintf(qs + w, sizeof(qs) - w, " %u", sn->qs[i]);
		}
	add(f, "monitor: sweeper %s, last ran %.1f ms ago; receive queues: %s%s",
	    sn->ws.behind_since_ns ? "BEHIND" : "on time",
	    sn->ws.last_run_ns ? since(sn->now, sn->ws.last_run_ns) / 1e6 : 0.0,
	    !sn->nq ? "none has seen a beat" : behind ? "BEHIND:" : "all on time", qs);
}

static void build_frame(struct frame *f, const char *pin_root, __u32 interval_ms,
			struct snapshot *sn, const struct snapshot *prev)
{
	const __u32 *c = sn->counts;
	char when[40];
	size_t shown, rows = sn->rows.n;

	vg_fmt_wall(vg_wall_ns(), when, sizeof(when));
	add(f, "%s  every %.1f s  %s  (Ctrl-C ends)", when, interval_ms / 1000.0, pin_root);
	add(f, "%zu agents: %u new, %u alive, %u suspect, %u dead, %u left", sn->rows.n,
	    c[VIGIL_AGENT_NEW], c[VIGIL_AGENT_ALIVE], c[VIGIL_AGENT_SUSPECT], c[VIGIL_AGENT_DEAD],
	    c[VIGIL_AGENT_LEFT]);
	rates_line(f, sn, prev);
	health_line(f, sn);
	add(f, "%s", "");
	add(f, "  %-7s %-16s %-8s %-7s %7s %9s %8s %s", "ID", "NAME", "GROUP", "STATE", "FOR",
	    "LAST BEAT", "INTERVAL", "STATUS");
	/* The agents whose state changed last first; '*': since the last refresh. */
	qsort(sn->rows.v, rows, sizeof(*sn->rows.v), by_change);
	shown = f->max > f->n + 1 ? f->max - f->n - 1 : 0;
	if (shown >= rows)
		shown = rows;
	for (size_t i = 0; i < shown; i++) {
		const struct agent_slot *s = &sn->rows.v[i].a.s;
		const struct agent_info *in = &sn->rows.v[i].a.i;
		char in_state[16], beat[16];

		fmt_dur(in_state, sizeof(in_state), since(sn->now, in->state_since_ns));
		if (s->state == VIGIL_AGENT_NEW)
			snprintf(beat, sizeof(beat), "never");
		else
			fmt_dur(beat, sizeof(beat), since(sn->now, s->last_seen_ns));
		add(f, "%c %-7llu %-16.16s %-8.8s %-7s %7s %9s %6ums %s",
		    prev && in->state_since_ns > prev->now ? '*' : ' ',
		    (unsigned long long)s->agent_id, in->name, in->group, vg_state_name(s->state),
		    in_state, beat, s->interval_ms, vg_status_name(s->status));
	}
	if (shown < rows)
		add(f, "  ... and %zu more, whose state changed earlier (vigil status lists all)",
		    rows - shown);
}

/* The terminal's size, or 24 x 80 when stdout is not one. */
static void term_size(size_t *rows, size_t *cols)
{
	struct winsize ws;

	*rows = 24;
	*cols = 80;
	if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_row && ws.ws_col) {
		*rows = ws.ws_row;
		*cols = ws.ws_col;
	}
}

/* Draw in place without flicker: home, each line then clear to its end,
 * then clear below; the screen is never cleared as a whole. */
static void draw(const struct frame *f)
{
	fputs("\033[H", stdout);
	for (size_t i = 0; i < f->n; i++)
		printf("%s\033[K\n", f->line[i]);
	fputs("\033[J", stdout);
	fflush(stdout);
}

int status_watch(const char *pin_root, __u32 interval_ms, __u32 count)
{
	struct snapshot *sn = NULL, *prev = NULL;
	struct sigaction sa = { .sa_handler = on_stop_signal };
	struct frame f = {};
	int ret = 0;

	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	fputs("\033[?25l", stdout); /* no cursor blinking through the view */
	for (__u32 n = 0; !watch_stop && (!count || n < count); n++) {
		struct timespec ts = { interval_ms / 1000, (long)(interval_ms % 1000) * 1000000L };
		size_t rows;

		if (n && nanosleep(&ts, NULL) && errno == EINTR && watch_stop)
			break;
		sn = calloc(1, sizeof(*sn));
		if (!sn || read_snapshot(pin_root, sn)) {
			ret = 1;
			break;
		}
		term_size(&rows, &f.cols);
		if (rows > f.cap) {
			free(f.line);
			f.line = calloc(rows, sizeof(*f.line));
			f.cap = f.line ? rows : 0;
			if (!f.line) {
				ret = 1;
				break;
			}
		}
		f.max = rows - 1; /* a newline on the last row would scroll */
		f.n = 0;
		build_frame(&f, pin_root, interval_ms, sn, prev);
		draw(&f);
		if (prev)
			free(prev->rows.v);
		free(prev);
		prev = sn;
		sn = NULL;
	}
	fputs("\033[?25h", stdout);
	fflush(stdout);
	if (sn)
		free(sn->rows.v);
	free(sn);
	if (prev)
		free(prev->rows.v);
	free(prev);
	free(f.line);
	return ret;
}

/* ----------------------------------------------------------- --bpftool */

/* bpftool's key argument: a u32 as its 4 bytes in memory order. */
static void print_lookup(const char *pin_root, const char *map, __u32 key)
{
	const __u8 *b = (const __u8 *)&key;

	printf("bpftool map lookup pinned %s/%s key %u %u %u %u\n", pin_root, map, b[0], b[1],
	       b[2], b[3]);
}

int status_bpftool(const char *pin_root)
{
	struct snapshot *sn = calloc(1, sizeof(*sn));
	struct vigil_meta meta;
	struct vg_maps m;
	int ret = 1;

	if (!sn || read_snapshot(pin_root, sn))
		goto out;
	for (size_t i = 0; i < sn->rows.n; i++) {
		const struct agent_row *r = &sn->rows.v[i];

		printf("# agent %llu (%s), slot %u\n", (unsigned long long)r->a.s.agent_id,
		       r->a.i.name, r->slot);
		print_lookup(pin_root, "vigil_agents", r->slot);
		print_lookup(pin_root, "vigil_agent_info", r->slot);
	}
	if (vg_instance_open(pin_root, &m, &meta))
		goto out;
	for (__u32 id = 1; id < VIGIL_MAX_LEASES; id++) {
		struct lease_slot l;

		if (bpf_map_lookup_elem(m.leases, &id, &l) || (l.state == VIGIL_LEASE_FREE && !l.name[0]))
			continue;
		printf("# lease %u (%s)\n", id, l.name);
		print_lookup(pin_root, "vigil_leases", id);
	}
	vg_maps_close(&m);
	ret = 0;
out:
	if (sn)
		free(sn->rows.v);
	free(sn);
	return ret;
}

/* ------------------------------------------------------ --from-bpftool */

/* The fields that are points in time on the monitor's CLOCK_MONOTONIC
 * (docs/maps.md); other *_ns fields are durations, or the agent's clock
 * (send_ts_ns). */
static const char *const mono_points[] = {
	"last_seen_ns", "state_since_ns", "clock_at_ns", "hold_since_ns",           /* agents */
	"expires_ns", "granted_ns",                                                 /* leases */
	"last_run_ns", "behind_since_ns", "health_next_ns",                         /* wheel */
	"sent_wm_ns", "last_rx_ns", "loss_from_ns", "loss_to_ns", "burst_from_ns",  /* rxq */
	"burst_to_ns", "reject_window_ns",                                          /* globals */
	NULL,
};

static bool is_mono_point(const char *key)
{
	for (const char *const *p = mono_points; *p; p++)
		if (!strcmp(key, *p))
			return true;
	return false;
}

/* After `"last_seen_ns": 1767191442126` add
 * `, "last_seen": "2026-11-27T21:47:41.917Z (1.234 s ago)"`: the same
 * instant as UTC and as its distance from now (later times: "in ..."). */
static void annotate(FILE *out, const char *key, const char *num, __u64 now)
{
	char *end, when[40];
	__u64 v;

	errno = 0;
	v = strtoull(num, &end, 10);
	if (errno || *end || !v)
		return; /* 0: never happened */
	vg_fmt_wall(vg_mono_to_wall(v), when, sizeof(when));
	fprintf(out, ", \"%.*s\": \"%s (%s%.3f s%s)\"", (int)(strlen(key) - 3), key, when,
		v > now ? "in " : "", (v > now ? v - now : now - v) / 1e9, v > now ? "" : " ago");
}

/* A streaming pass over bpftool's JSON (plain or -j): strings are copied as
 * they are, keys remembered, and a number that is the value of a monotonic
 * time point is followed by its readable twin. Everything else passes
 * through unchanged, so any map's dump can go through it. */
int status_from_bpftool(FILE *in, FILE *out)
{
	char str[64], key[64] = "", num[32];
	size_t sl = 0, nl = 0;
	bool in_str = false, esc = false, after_colon = false;
	__u64 now = vg_mono_ns();
	int ch;

	while ((ch = getc(in)) != EOF) {
		if (in_str) {
			putc(ch, out);
			if (esc) {
				esc = false;
			} else if (ch == '\\') {
				esc = true;
			} else if (ch == '"') {
				in_str = false;
				str[sl < sizeof(str) ? sl : sizeof(str) - 1] = '\0';
			} else if (sl < sizeof(str) - 1) {
				str[sl++] = (char)ch;
			}
			continue;
		}
		if (nl && !(isdigit(ch) || ch == '-' || ch == '+' || ch == '.' || ch == 'e' ||
			    ch == 'E')) {
			num[nl] = '\0';
			fputs(num, out);
			if (after_colon && is_mono_point(key))
				annotate(out, key, num, now);
			nl = 0;
			after_colon = false;
		}
		if (isdigit(ch) || (ch == '-' && !nl) || (nl && strchr("+-.eE", ch))) {
			if (nl < sizeof(num) - 1)
				num[nl++] = (char)ch;
			continue;
		}
		putc(ch, out);
		if (ch == '"') {
			in_str = true; /* a key, or a value: no number follows it */
			after_colon = false;
			sl = 0;
		} else if (ch == ':') {
			snprintf(key, sizeof(key), "%s", str);
			after_colon = true;
		} else if (!isspace(ch)) {
			after_colon = false;
		}
	}
	if (nl) {
		num[nl] = '\0';
		fputs(num, out);
	}
	if (ferror(in)) {
		pr_warn("status: reading stdin failed: %s\n", strerror(errno));
		return 1;
	}
	return fflush(out) ? 1 : 0;
}
