// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
/*
 * vigil-trafficgen: send beats (valid, forged, unknown, replayed, malformed)
 * into one end of a veth pair at a set rate or flat out, from one CPU.
 *
 * Two engines make the same frames (bench/tg_frame.h) in the same order:
 *
 *   live    BPF_PROG_TEST_RUN with BPF_F_TEST_XDP_LIVE_FRAMES runs
 *           bench/trafficgen.bpf.c on frames built from a template; every
 *           frame it returns XDP_TX for leaves through --iface as an
 *           xdp_frame, i.e. arrives at the peer's XDP program without an skb.
 *   packet  an AF_PACKET socket on --iface, qdisc bypassed: frames built here,
 *           handed to the interface by sendmmsg() in batches. Each is an skb,
 *           which the peer's veth turns into an xdp_buff (a copy) before its
 *           program runs, so the receiver pays more per frame than with live
 *           frames.
 *
 * --engine auto (the default) uses live frames when the kernel allows them
 * and says so when it does not. Either way the peer must have an XDP program
 * attached (vigil, or `vigil-bench sink`): veth drops frames, or passes them
 * around XDP, otherwise. Run it inside the namespace that holds --iface.
 *
 * With --search it measures a receiver against its accepted-beat counter
 * (measure(): the saturated and the loss-free view, each repeated), and
 * charges the receiver CPU's busy time (/proc/stat) to the beats it
 * accepted: the run time of the threads on that CPU, by the scheduler's own
 * count (bench/common.h, bc_threads_snap), so the receiver's NAPI must be
 * threaded.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <math.h>
#include <net/if.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "vigil/auth.h"
#include "tg.h"
#include "trafficgen.skel.h"
#include "common.h"
#include "common/keys.h"
#include "common/log.h"
#include "common/util.h"

static const char *mode_names[TG_NMODES] = { "valid", "forged", "random", "replay", "malformed" };

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
	(void)sig;
	stop_requested = 1;
}

enum engine { ENGINE_AUTO, ENGINE_LIVE, ENGINE_PACKET };

static const char *engine_names[] = { "auto", "live", "packet" };

/* What the frames are made from, as the packet engine reads it (the live
 * engine reads the same from the program's maps). */
static struct {
	const struct vigil_key *keys; /* agent first_id + i at i */
	__u32 n_keys;
	const struct vigil_beat *replay;
	__u32 n_replay;
	__u64 rand;                   /* xorshift64 state */
} host;

static __u64 tg_now_ns(void)
{
	return vg_mono_ns();
}

static __u32 tg_rand32(void)
{
	host.rand ^= host.rand << 13;
	host.rand ^= host.rand >> 7;
	host.rand ^= host.rand << 17;
	return (__u32)(host.rand >> 16);
}

static const struct vigil_key *tg_agent_key(__u32 i)
{
	return i < host.n_keys ? &host.keys[i] : NULL;
}

static const struct vigil_beat *tg_captured(__u32 i)
{
	return i < host.n_replay ? &host.replay[i] : NULL;
}

#include "tg_frame.h"

#define TG_MAX_BATCH 256

struct gen {
	struct trafficgen_bpf *skel;
	enum engine engine;
	int prog_fd, ifindex;
	int sock;       /* packet engine: AF_PACKET socket bound to --iface */
	__u32 batch;
	__u64 refused;  /* packet engine: frames the interface dropped (its peer's ring full) */
	timer_t timer;  /* ends a run with SIGALRM */
	__u8 frame[TG_FRAME_LEN];
	/* packet engine: one batch of frames and the kind of each */
	__u8 (*bufs)[TG_FRAME_LEN];
	__u8 modes[TG_MAX_BATCH];
	struct mmsghdr msgs[TG_MAX_BATCH];
	struct iovec iovs[TG_MAX_BATCH];
};

struct result {
	__u64 sent[TG_NMODES];
	__u64 total, idle, stalls, refused;
	__u64 ns;      /* time the generator ran */
	__u64 acc;     /* receiver's accepted count, delta */
	__u64 drops;   /* receiver's second counter, delta */
	__u64 busy_ns; /* run time of the receiver CPU's threads, delta */
	__u64 rate;    /* requested rate (0 = flat out) */
};

struct counters {
	struct bc_counter acc, drops;
	int have_acc, have_drops, rx_cpu;
};

static double pps(__u64 n, __u64 ns)
{
	return ns ? (double)n * 1e9 / (double)ns : 0;
}

/* ------------------------------------------------------------ frame */

static __u32 sum16(const __u8 *p, size_t len)
{
	__u32 s = 0;

	for (size_t i = 0; i + 1 < len; i += 2)
		s += (__u32)p[i] << 8 | p[i + 1];
	return s;
}

static void build_frame(struct gen *g, const __u8 dmac[6], const __u8 smac[6], __u32 saddr,
			__u32 daddr, __u16 port, const struct vigil_beat *beat)
{
	__u8 *f = g->frame, *ip = f + TG_IP_OFF;
	__u8 hdr[20];

	/* The shared template (UDP checksum 0: none, allowed over IPv4), with
	 * the interfaces' MACs and the beat. */
	bc_frame_template(f, saddr, daddr, port);
	memcpy(f, dmac, 6);
	memcpy(f + 6, smac, 6);
	memcpy(f + TG_BEAT_OFF, beat, 64);

	/* Sum of the header with neither source nor checksum, for spoofing. */
	memcpy(hdr, ip, 20);
	memset(hdr + 10, 0, 2);
	memset(hdr + 12, 0, 4);
	g->skel->bss->cfg.ip_sum_nosrc = sum16(hdr, 20);
}

/* Smooth weighted round robin over 64 slots, so modes interleave. */
static int fill_schedule(__u8 sched[TG_SCHED], const __u32 w[TG_NMODES])
{
	long credit[TG_NMODES] = {}, total = 0;

	for (int m = 0; m < TG_NMODES; m++)
		total += w[m];
	if (!total)
		return -1;
	for (int k = 0; k < TG_SCHED; k++) {
		int best = -1;

		for (int m = 0; m < TG_NMODES; m++) {
			credit[m] += w[m];
			if (w[m] && (best < 0 || credit[m] > credit[best]))
				best = m;
		}
		credit[best] -= total;
		sched[k] = (__u8)best;
	}
	return 0;
}

static int parse_mix(const char *s, __u32 w[TG_NMODES])
{
	char buf[256], *save = NULL, *tok;

	memset(w, 0, sizeof(__u32) * TG_NMODES);
	if (strlen(s) >= sizeof(buf))
		return -1;
	strcpy(buf, s);
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(tok, '=');
		int m;

		if (eq)
			*eq = '\0';
		for (m = 0; m < TG_NMODES && strcmp(tok, mode_names[m]); m++)
			;
		if (m == TG_NMODES) {
			fprintf(stderr, "--mix: unknown kind '%s' (valid, forged, random, replay, "
					"malformed)\n", tok);
			return -1;
		}
		if (vg_parse_u32(eq ? eq + 1 : "1", "--mix weight", 0, 64, &w[m]))
			return -1;
	}
	return 0;
}

/* ---------------------------------------------------------- capture */

/* Collect up to n beats that leave or arrive on ifname for UDP port `port`
 * (AF_PACKET sees outgoing frames too), for at most timeout_ns. */
static int capture(const char *ifname, __u16 port, struct vigil_beat *out, __u32 n,
		   __u64 timeout_ns)
{
	/* ETH_P_ALL: only taps for all protocols see outgoing frames. */
	struct sockaddr_ll sll = { .sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_ALL) };
	__u64 end = vg_mono_ns() + timeout_ns;
	__u8 buf[2048];
	__u32 got = 0;
	int fd;

	sll.sll_ifindex = (int)if_nametoindex(ifname);
	if (!sll.sll_ifindex) {
		fprintf(stderr, "--capture: no interface '%s'\n", ifname);
		return -1;
	}
	fd = socket(AF_PACKET, SOCK_DGRAM | SOCK_CLOEXEC, htons(ETH_P_ALL));
	if (fd < 0 || bind(fd, (struct sockaddr *)&sll, sizeof(sll))) {
		fprintf(stderr, "--capture: AF_PACKET socket on %s failed: %s\n", ifname,
			strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	while (got < n && !stop_requested) {
		__u64 now = vg_mono_ns();
		struct pollfd p = { .fd = fd, .events = POLLIN };
		struct sockaddr_ll from;
		socklen_t flen = sizeof(from);
		ssize_t len;
		size_t ihl;

		if (now >= end)
			break;
		if (poll(&p, 1, (int)((end - now) / 1000000 + 1)) <= 0)
			continue;
		len = recvfrom(fd, buf, sizeof(buf), 0, (struct sockaddr *)&from, &flen);
		if (len < 20 || from.sll_protocol != htons(ETH_P_IP) || (buf[0] >> 4) != 4)
			continue;
		ihl = (size_t)(buf[0] & 15) * 4;
		if (buf[9] != 17 || (size_t)len < ihl + 8 + 64)
			continue;
		if ((buf[ihl + 2] << 8 | buf[ihl + 3]) != port)
			continue;
		memcpy(&out[got], buf + ihl + 8, 64);
		if (vg_be16(out[got].magic) == VIGIL_MAGIC)
			got++;
	}
	close(fd);
	return (int)got;
}

/* -------------------------------------------------------------- run */

/* Run the generator for duration_ns at `rate` frames per second (0: flat
 * out) and fill r with what it sent and what the receiver counted. A timer
 * signal ends the run (alarm_fired). The window the frames went out in is
 * timed per frame (tg_pace()). */
static volatile sig_atomic_t alarm_fired;

static void on_alarm(int sig)
{
	(void)sig;
	alarm_fired = 1;
}

/* Live frames. One BPF_PROG_TEST_RUN call sets up and tears down a page
 * pool, which takes milliseconds here; calls in a loop would leave the
 * receiver idle between them. So a run is one call with a huge repeat count,
 * cut short by the timer signal: the kernel checks for pending signals
 * between batches and returns EINTR. */
static int send_live(struct gen *g)
{
	struct xdp_md ctx = { .data_end = TG_FRAME_LEN, .ingress_ifindex = (__u32)g->ifindex };

	while (!alarm_fired && !stop_requested) {
		LIBBPF_OPTS(bpf_test_run_opts, t, .data_in = g->frame, .data_size_in = TG_FRAME_LEN,
			    .ctx_in = &ctx, .ctx_size_in = sizeof(ctx),
			    .flags = BPF_F_TEST_XDP_LIVE_FRAMES, .batch_size = g->batch,
			    .repeat = 1u << 31);

		if (bpf_prog_test_run_opts(g->prog_fd, &t) && errno != EINTR) {
			fprintf(stderr, "BPF_PROG_TEST_RUN (live frames) on ifindex %d failed: %s\n",
				g->ifindex, strerror(errno));
			return -1;
		}
	}
	return 0;
}

/* Would the kernel run the generator with live frames? A test run in which
 * every frame's time has not come yet (so none is sent) answers. Returns 0
 * or the errno. */
static int probe_live(struct gen *g)
{
	struct tg_config *cfg = &g->skel->bss->cfg;
	struct tg_stats *st = &g->skel->bss->st, saved = *st;
	struct xdp_md ctx = { .data_end = TG_FRAME_LEN, .ingress_ifindex = (__u32)g->ifindex };
	LIBBPF_OPTS(bpf_test_run_opts, t, .data_in = g->frame, .data_size_in = TG_FRAME_LEN,
		    .ctx_in = &ctx, .ctx_size_in = sizeof(ctx), .flags = BPF_F_TEST_XDP_LIVE_FRAMES,
		    .batch_size = 1, .repeat = 1);
	__u64 gap = cfg->gap_ps;
	int err;

	cfg->gap_ps = 1;
	st->next_ps = ~0ULL;
	err = bpf_prog_test_run_opts(g->prog_fd, &t) ? errno : 0;
	cfg->gap_ps = gap;
	*st = saved;
	return err;
}

/* The packet engine's socket: raw AF_PACKET on --iface, bound with protocol
 * 0 (it receives nothing), the qdisc bypassed (veth has none anyway), and a
 * send buffer far larger than the peer's 256-frame ring holds, so that a
 * full ring drops frames, as it drops live frames, instead of blocking us. */
static int open_packet(struct gen *g)
{
	struct sockaddr_ll sll = { .sll_family = AF_PACKET, .sll_ifindex = g->ifindex };
	int one = 1, sndbuf = 64 << 20;

	g->sock = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
	if (g->sock < 0 || bind(g->sock, (struct sockaddr *)&sll, sizeof(sll))) {
		fprintf(stderr, "AF_PACKET socket on ifindex %d failed: %s\n", g->ifindex,
			strerror(errno));
		return -1;
	}
	if (setsockopt(g->sock, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof(one)) ||
	    (setsockopt(g->sock, SOL_SOCKET, SO_SNDBUFFORCE, &sndbuf, sizeof(sndbuf)) &&
	     setsockopt(g->sock, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf)))) {
		fprintf(stderr, "setting up the AF_PACKET socket failed: %s\n", strerror(errno));
		return -1;
	}
	g->bufs = calloc(g->batch, TG_FRAME_LEN);
	if (!g->bufs)
		return -1;
	for (__u32 i = 0; i < g->batch; i++) {
		memcpy(g->bufs[i], g->frame, TG_FRAME_LEN);
		g->iovs[i] = (struct iovec){ .iov_base = g->bufs[i], .iov_len = TG_FRAME_LEN };
		g->msgs[i].msg_hdr = (struct msghdr){ .msg_iov = &g->iovs[i], .msg_iovlen = 1 };
	}
	return 0;
}

/* Hand frames [0, n) of the batch to the interface. A frame the interface
 * refused with ENOBUFS was dropped by veth (its peer's ring was full; veth
 * counts it in tx_dropped): it counts as sent, as a live frame dropped there
 * does, and in `refused`. */
static int send_batch(struct gen *g, __u32 n)
{
	struct tg_stats *st = &g->skel->bss->st;
	__u32 i = 0;

	while (i < n) {
		int k = sendmmsg(g->sock, g->msgs + i, n - i, 0), err = 0;
		socklen_t len = sizeof(err);

		if (k < 0) {
			k = 0;
			err = errno;
		} else if ((__u32)k < n - i) {
			/* sendmmsg() keeps the error of a partial batch for the
			 * next call; take it now. */
			getsockopt(g->sock, SOL_SOCKET, SO_ERROR, &err, &len);
		}
		for (int j = 0; j < k; j++)
			st->sent[g->modes[i + j]]++;
		i += (__u32)k;
		if (i == n || err == EINTR || err == EAGAIN || !err)
			continue;
		if (err != ENOBUFS) {
			fprintf(stderr, "sending on ifindex %d failed: %s\n", g->ifindex,
				strerror(err));
			return -1;
		}
		st->sent[g->modes[i++]]++;
		g->refused++;
	}
	return 0;
}

static int send_packets(struct gen *g)
{
	struct tg_config *cfg = &g->skel->bss->cfg;
	struct tg_stats *st = &g->skel->bss->st;

	while (!alarm_fired && !stop_requested) {
		__u32 n = 0;

		/* A batch ends when it is full or (paced) at the end of a burst;
		 * between bursts we spin until the next one is due. */
		while (n < g->batch && !alarm_fired && !stop_requested) {
			int mode;

			if (!tg_pace(cfg, st)) {
				if (n)
					break;
				continue;
			}
			mode = tg_build(g->bufs[n], cfg, st);
			if (mode < 0) {
				fprintf(stderr, "building a frame failed (no key or captured beat)\n");
				return -1;
			}
			g->modes[n++] = (__u8)mode;
		}
		if (send_batch(g, n))
			return -1;
	}
	return 0;
}

/* --engine auto: live frames if the kernel runs them, else the packet
 * engine; one line on stderr says which runs and why. */
static int choose_engine(struct gen *g)
{
	int err = 0;

	if (g->engine != ENGINE_PACKET) {
		err = probe_live(g);
		if (!err) {
			g->engine = ENGINE_LIVE;
			fprintf(stderr, "engine: live frames (BPF_PROG_TEST_RUN, XDP_TX on ifindex %d)\n",
				g->ifindex);
			return 0;
		}
		if (g->engine == ENGINE_LIVE) {
			fprintf(stderr, "--engine live: BPF_PROG_TEST_RUN with live frames failed: %s\n",
				strerror(err));
			return -1;
		}
	}
	g->engine = ENGINE_PACKET;
	host.rand = vg_mono_ns() | 1;
	if (err)
		fprintf(stderr, "engine: packet (AF_PACKET sendmmsg, qdisc bypass): this kernel "
				"refuses BPF_PROG_TEST_RUN with live frames (%s)\n", strerror(err));
	else
		fprintf(stderr, "engine: packet (AF_PACKET sendmmsg, qdisc bypass): --engine packet\n");
	return open_packet(g);
}

static int run(struct gen *g, __u64 rate, __u64 duration_ns, struct counters *c,
	       struct result *r)
{
	struct tg_stats *st = &g->skel->bss->st, s0;
	struct itimerspec its = { .it_value = { .tv_sec = duration_ns / VIGIL_NSEC_PER_SEC,
						.tv_nsec = duration_ns % VIGIL_NSEC_PER_SEC } };
	__u64 a0 = 0, a1 = 0, d0 = 0, d1 = 0, t0, refused0 = g->refused;
	struct bc_threads *b0 = NULL, *b1 = NULL;

	memset(r, 0, sizeof(*r));
	r->rate = rate;
	g->skel->bss->cfg.gap_ps = rate ? 1000000000000ULL / rate : 0;
	/* After a stall (preemption), catch up by at most one more burst. */
	g->skel->bss->cfg.slack_ps = g->skel->bss->cfg.gap_ps * 2 * g->skel->bss->cfg.burst;
	st->next_ps = vg_mono_ns() * 1000;
	st->in_burst = 0;
	st->t_first = st->t_last = 0;
	s0 = *st;
	if (c && c->have_acc)
		bc_counter_read(&c->acc, &a0);
	if (c && c->have_drops)
		bc_counter_read(&c->drops, &d0);
	if (c && c->rx_cpu >= 0)
		b0 = bc_threads_snap();
	alarm_fired = 0;
	t0 = vg_mono_ns();
	if (duration_ns == 0 || timer_settime(g->timer, 0, &its, NULL)) {
		fprintf(stderr, "arming the run timer failed: %s\n", strerror(errno));
		free(b0);
		return -1;
	}
	if (g->engine == ENGINE_LIVE ? send_live(g) : send_packets(g)) {
		free(b0);
		return -1;
	}
	/* Let the receiver drain its ring before counting. */
	usleep(50000);
	if (c && c->have_acc)
		bc_counter_read(&c->acc, &a1);
	if (c && c->have_drops)
		bc_counter_read(&c->drops, &d1);
	if (c && c->rx_cpu >= 0)
		b1 = bc_threads_snap();
	for (int m = 0; m < TG_NMODES; m++) {
		r->sent[m] = st->sent[m] - s0.sent[m];
		r->total += r->sent[m];
	}
	r->idle = st->idle - s0.idle;
	r->stalls = st->stalls - s0.stalls;
	r->refused = g->refused - refused0;
	/* The timed frames are one in 64 (flat out): extend the window by the
	 * average gap so that rate = frames / window stays unbiased. */
	r->ns = st->t_last > st->t_first ? st->t_last - st->t_first : vg_mono_ns() - t0;
	if (r->total > 64 && st->t_last > st->t_first)
		r->ns += r->ns / (r->total - 1);
	r->acc = a1 - a0;
	r->drops = d1 - d0;
	r->busy_ns = b0 && b1 ? bc_threads_cpu_ns(b0, b1, c->rx_cpu) : 0;
	free(b0);
	free(b1);
	return 0;
}

static __s64 loss_of(const struct result *r)
{
	return (__s64)r->total - (__s64)r->acc;
}

static void print_step(FILE *f, int i, const struct result *r, const struct counters *c)
{
	fprintf(f, "step %2d: %s %9.0f pps  generated %9.0f pps", i, r->rate ? "paced" : "flat ",
		r->rate ? (double)r->rate : 0.0, pps(r->total, r->ns));
	if (c->have_acc)
		fprintf(f, "  accepted %9.0f pps  loss %lld (%.4f %%)", pps(r->acc, r->ns),
			(long long)loss_of(r),
			r->total ? 100.0 * (double)loss_of(r) / (double)r->total : 0.0);
	if (c->have_drops)
		fprintf(f, "  drops %llu", (unsigned long long)r->drops);
	if (c->rx_cpu >= 0 && r->acc)
		fprintf(f, "  rx cpu %.0f %%  %.0f ns/beat", 100.0 * (double)r->busy_ns / (double)r->ns,
			(double)r->busy_ns / (double)r->acc);
	if (r->stalls > 1)
		fprintf(f, "  stalls %llu", (unsigned long long)r->stalls);
	if (r->refused)
		fprintf(f, "  refused %llu", (unsigned long long)r->refused);
	fputc('\n', f);
}

static void json_result(FILE *f, const char *name, const struct result *r)
{
	fprintf(f, "\"%s\":{\"requested_pps\":%llu,\"seconds\":%.3f,\"generated\":%llu,"
		   "\"generated_pps\":%.0f,\"accepted\":%llu,\"accepted_pps\":%.0f,\"loss\":%lld,"
		   "\"drops\":%llu,\"rx_busy_ns\":%llu,\"rx_ns_per_beat\":%.1f,\"stalls\":%llu,"
		   "\"refused\":%llu,\"sent\":{",
		name, (unsigned long long)r->rate, r->ns / 1e9, (unsigned long long)r->total,
		pps(r->total, r->ns), (unsigned long long)r->acc, pps(r->acc, r->ns),
		(long long)loss_of(r), (unsigned long long)r->drops, (unsigned long long)r->busy_ns,
		r->acc ? (double)r->busy_ns / (double)r->acc : 0.0, (unsigned long long)r->stalls,
		(unsigned long long)r->refused);
	for (int m = 0; m < TG_NMODES; m++)
		fprintf(f, "%s\"%s\":%llu", m ? "," : "", mode_names[m],
			(unsigned long long)r->sent[m]);
	fputs("}}", f);
}

/* ----------------------------------------------------------- search */

/* How --search measures (docs/BENCHMARKS.md, Method). */
struct method {
	__u64 step_ns, min_rate, idle_ns;
	__u64 common_rate;   /* also rate_trials runs at this rate (0: none) */
	double tol;          /* lost fraction still called loss-free */
	double agree;        /* two searches agree within this fraction */
	__u32 steps;         /* bisection steps per search */
	__u32 retries;       /* a step that lost under 1 % is run up to this many times */
	__u32 sat_trials;    /* flat-out runs: the saturated accepted rate */
	__u32 searches;      /* at most this many searches, until two agree */
	__u32 rate_trials;   /* runs at the loss-free rate: CPU per beat there */
};

#define MAX_TRIALS 16

static double rx_ns(const struct result *r)
{
	return r->acc ? (double)r->busy_ns / (double)r->acc : 0;
}

/* "NAME":{"min":..,"median":..,"max":..} of v[0..n). */
static void json_spread(FILE *f, const char *name, const double *v, int n)
{
	double t[MAX_TRIALS];

	memcpy(t, v, sizeof(double) * (size_t)n);
	fprintf(f, "\"%s\":{\"min\":%.1f,\"median\":%.1f,\"max\":%.1f}", name,
		n ? bc_quantile_d(t, (size_t)n, 0) : 0, n ? bc_quantile_d(t, (size_t)n, 0.5) : 0,
		n ? bc_quantile_d(t, (size_t)n, 1) : 0);
}

/* "NAME":{"rate":..,"trials":N,"rx_ns_per_beat":{..},"accepted_pps":{..},
 * "loss_fraction_max":..} of n runs at one rate. */
static void json_trials(FILE *f, const char *name, __u64 rate, const struct result *r, __u32 n)
{
	double ns[MAX_TRIALS], acc[MAX_TRIALS], lost = 0;

	fprintf(f, "\"%s\":{\"rate\":%llu,\"trials\":%u", name, (unsigned long long)rate, n);
	if (n) {
		for (__u32 i = 0; i < n; i++) {
			double l = r[i].total ? (double)loss_of(&r[i]) / (double)r[i].total : 0;

			ns[i] = rx_ns(&r[i]);
			acc[i] = pps(r[i].acc, r[i].ns);
			lost = l > lost ? l : lost;
		}
		fputc(',', f);
		json_spread(f, "rx_ns_per_beat", ns, (int)n);
		fputc(',', f);
		json_spread(f, "accepted_pps", acc, (int)n);
		fprintf(f, ",\"loss_fraction_max\":%.6f", lost);
	}
	fputc('}', f);
}

/* n runs at `rate` (0: flat out), each printed as a step. */
static int trials(struct gen *g, struct counters *c, const struct method *m, __u64 rate, __u32 n,
		  FILE *log, int *step_no, struct result *res)
{
	for (__u32 i = 0; i < n && !stop_requested; i++) {
		if (run(g, rate, m->step_ns, c, &res[i]))
			return -1;
		print_step(log, (*step_no)++, &res[i], c);
	}
	return 0;
}

static int lossless(const struct result *r, double tol)
{
	return (double)loss_of(r) <= tol * (double)r->total;
}

/* One bisection for the highest loss-free rate between --min-rate and hi,
 * starting at `start`. Returns 1 with *best set, 0 if no rate at or above
 * --min-rate was loss-free, -1 on error. */
static int search_once(struct gen *g, struct counters *c, const struct method *m, double start,
		       double hi, FILE *log, int *step_no, struct result *best)
{
	double lo = (double)m->min_rate, r = start;
	struct result cur;
	int found = 0;

	for (__u32 i = 1; i <= m->steps && !stop_requested; i++) {
		/* A receiver over its capacity loses a lot, every time; one
		 * thread held off for a few ms (a busy or virtual machine) loses
		 * a little, now and then. So a step that lost under 1 % is tried
		 * again, up to --trials times, and counts as loss-free if any
		 * trial was. */
		for (__u32 k = 0; k < m->retries && !stop_requested; k++) {
			if (run(g, (__u64)r, m->step_ns, c, &cur))
				return -1;
			print_step(log, (*step_no)++, &cur, c);
			if (lossless(&cur, m->tol) || (double)loss_of(&cur) > 0.01 * (double)cur.total)
				break;
		}
		if (lossless(&cur, m->tol)) {
			lo = r;
			if (!found || cur.total * best->ns > best->total * cur.ns)
				*best = cur;
			found = 1;
		} else {
			hi = r;
			if (r <= (double)m->min_rate)
				break; /* nothing loss-free at or above --min-rate */
		}
		/* Bisect on a log scale: receivers differ by orders of magnitude,
		 * and the flat-out estimate can be far off (a receiver in
		 * livelock accepts almost nothing). */
		r = lo > 0 ? sqrt(lo * hi) : hi / 2;
	}
	return found;
}

/* The closest pair of rates[0..n) within `agree` of each other: their
 * mean in *rate; 0 if no two agree. */
static int agreeing(const double *rates, int n, double agree, double *rate)
{
	double gap = -1;

	for (int i = 0; i < n; i++)
		for (int j = i + 1; j < n; j++) {
			double a = rates[i], b = rates[j], hi = a > b ? a : b;
			double d = fabs(a - b);

			if (hi > 0 && d <= agree * hi && (gap < 0 || d < gap)) {
				gap = d;
				*rate = (a + b) / 2;
			}
		}
	return gap >= 0;
}

/*
 * --search, the whole method for one receiver: check its CPU is idle; the
 * saturated view (flat out, sat_trials times: accepted rate and CPU per
 * beat, median, min and max); the loss-free view (the bisection repeated
 * until two searches agree within `agree`, then rate_trials runs at their
 * rate for the CPU per beat there). One JSON object on stdout with --json.
 */
static int measure(struct gen *g, struct counters *c, const struct method *m, bool json,
		   const char *ifname, const char *mix)
{
	struct result sat[MAX_TRIALS], at[MAX_TRIALS], common[MAX_TRIALS], best = {};
	struct result found_best[MAX_TRIALS];
	double acc[MAX_TRIALS], gen[MAX_TRIALS], ns[MAX_TRIALS], rates[MAX_TRIALS], rate = 0;
	double sat_acc, sat_gen;
	FILE *log = json ? stderr : stdout;
	struct bc_idle idle = {};
	int step_no = 0, n_search = 0, agreed = 0, gen_bound, any_found = 0;

	if (c->rx_cpu >= 0 && m->idle_ns) {
		bc_idle_check(c->rx_cpu, m->idle_ns, 0, &idle);
		fprintf(log, "receiver CPU %d before the case: busy %.0f %%, steal %.0f %% over %.1f s%s%s\n",
			c->rx_cpu, idle.busy_pct, idle.steal_pct, idle.seconds,
			idle.others[0] ? "; ran there: " : "", idle.others);
	}
	if (trials(g, c, m, 0, m->sat_trials, log, &step_no, sat))
		return -1;
	for (__u32 i = 0; i < m->sat_trials; i++) {
		acc[i] = pps(sat[i].acc, sat[i].ns);
		gen[i] = pps(sat[i].total, sat[i].ns);
	}
	memcpy(ns, acc, sizeof(acc));
	sat_acc = bc_quantile_d(ns, m->sat_trials, 0.5);
	memcpy(ns, gen, sizeof(gen));
	sat_gen = bc_quantile_d(ns, m->sat_trials, 0.5);
	/* The receiver kept up flat out (in most trials): the generator is the
	 * limit, and the loss-free rate is at least what it made. */
	gen_bound = 0;
	for (__u32 i = 0; i < m->sat_trials; i++)
		gen_bound += lossless(&sat[i], m->tol);
	gen_bound = gen_bound * 2 > (int)m->sat_trials;
	if (gen_bound) {
		rate = sat_gen;
		agreed = 1;
		any_found = 1;
		for (__u32 i = 0; i < m->sat_trials; i++)
			if (lossless(&sat[i], m->tol) &&
			    (!best.total || sat[i].total * best.ns > best.total * sat[i].ns))
				best = sat[i];
	} else {
		double start = sat_acc * 0.97 < sat_gen * 0.97 ? sat_acc * 0.97 : sat_gen * 0.97;

		if (start < (double)m->min_rate)
			start = (double)m->min_rate;
		while (n_search < (int)m->searches && !agreed && !stop_requested) {
			int f = search_once(g, c, m, start, sat_gen, log, &step_no,
					    &found_best[n_search]);

			if (f < 0)
				return -1;
			rates[n_search] = f ? pps(found_best[n_search].total, found_best[n_search].ns) : 0;
			fprintf(log, "search %d: %s %.0f pps\n", n_search + 1,
				f ? "highest loss-free rate" : "nothing loss-free at or above",
				f ? rates[n_search] : (double)m->min_rate);
			any_found |= f;
			n_search++;
			agreed = agreeing(rates, n_search, m->agree, &rate);
		}
		/* The reported search result: the found one closest to the rate. */
		for (int i = 0; i < n_search; i++)
			if (rates[i] > 0 && (!best.total ||
			    fabs(rates[i] - rate) < fabs(pps(best.total, best.ns) - rate)))
				best = found_best[i];
		if (!agreed) {
			memcpy(ns, rates, sizeof(double) * (size_t)n_search);
			rate = bc_quantile_d(ns, (size_t)n_search, 0.5);
		}
	}
	/* CPU per beat at the loss-free rate, and at the rate every receiver
	 * is measured at. */
	if (rate > 0 && m->rate_trials && trials(g, c, m, gen_bound ? 0 : (__u64)rate,
						 m->rate_trials, log, &step_no, at))
		return -1;
	if (m->common_rate && m->rate_trials &&
	    trials(g, c, m, m->common_rate, m->rate_trials, log, &step_no, common))
		return -1;
	if (!json) {
		printf("saturated: accepted %.0f pps (median of %u), %.0f ns/beat\n", sat_acc,
		       m->sat_trials, rx_ns(&sat[0]));
		if (rate > 0)
			printf("loss-free: %.0f pps%s%s\n", rate,
			       gen_bound ? " (flat out: the generator is the limit)" : "",
			       agreed ? "" : " (searches did not agree)");
		else
			printf("no loss-free rate found\n");
		return 0;
	}
	printf("{\"iface\":\"%s\",\"engine\":\"%s\",\"mix\":\"%s\",\"loss_tolerance\":%g,"
	       "\"generator_bound\":%s,\"found\":%s,", ifname, engine_names[g->engine], mix, m->tol,
	       gen_bound ? "true" : "false", any_found ? "true" : "false");
	if (c->rx_cpu >= 0 && m->idle_ns)
		printf("\"idle_check\":{\"cpu\":%d,\"seconds\":%.1f,\"busy_pct\":%.1f,"
		       "\"steal_pct\":%.1f,\"others\":\"%s\"},", c->rx_cpu, idle.seconds, idle.busy_pct,
		       idle.steal_pct, idle.others);
	printf("\"saturated\":{\"trials\":%u,", m->sat_trials);
	json_spread(stdout, "accepted_pps", acc, (int)m->sat_trials);
	putchar(',');
	json_spread(stdout, "generated_pps", gen, (int)m->sat_trials);
	for (__u32 i = 0; i < m->sat_trials; i++)
		ns[i] = rx_ns(&sat[i]);
	putchar(',');
	json_spread(stdout, "rx_ns_per_beat", ns, (int)m->sat_trials);
	printf("},\"searches\":[");
	for (int i = 0; i < n_search; i++)
		printf("%s%.0f", i ? "," : "", rates[i]);
	printf("],\"agreed\":%s,\"loss_free_pps\":%.0f,", agreed ? "true" : "false", rate);
	json_trials(stdout, "at_loss_free", (__u64)rate, at, rate > 0 ? m->rate_trials : 0);
	putchar(',');
	if (m->common_rate && m->rate_trials) {
		json_trials(stdout, "at_common_rate", m->common_rate, common, m->rate_trials);
		putchar(',');
	}
	/* The saturated trial with the median accepted rate, and the search's
	 * result: single runs, as the earlier single-search output had them. */
	{
		__u32 k = 0;

		for (__u32 i = 1; i < m->sat_trials; i++)
			if (fabs(pps(sat[i].acc, sat[i].ns) - sat_acc) <
			    fabs(pps(sat[k].acc, sat[k].ns) - sat_acc))
				k = i;
		json_result(stdout, "flat_out", &sat[k]);
	}
	putchar(',');
	json_result(stdout, "loss_free", &best);
	printf("}\n");
	return 0;
}

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: vigil-trafficgen --iface IF [OPTIONS]\n"
		"Send beats out of IF (one end of a veth pair; run inside its namespace) from\n"
		"one CPU. The peer must have an XDP program attached.\n"
		"\n"
		"Frames:\n"
		"  -i, --iface IF            generating interface (required)\n"
		"      --dst-mac MAC         peer's MAC address (default ff:ff:ff:ff:ff:ff)\n"
		"      --src ADDR            IPv4 source (default: IF's address)\n"
		"      --src-random-bits N   vary the low N bits of the source (0-24): random per\n"
		"                            frame, or with --src-per-agent the agent's index\n"
		"      --src-per-agent       valid and forged beats come from their agent's address\n"
		"      --dst ADDR            IPv4 destination (default 198.18.0.1)\n"
		"  -p, --port PORT           beat port (default 4747)\n"
		"  -m, --mix SPEC            kinds and weights, e.g. valid=1 (default) or\n"
		"                            forged=1,random=1,replay=1 (also: malformed)\n"
		"  -n, --agents N            agents for valid/forged beats (default 1000)\n"
		"      --first-id ID         first agent id (default 1)\n"
		"  -k, --keys FILE           key file (vigil key gen) for valid beats\n"
		"      --unsigned            valid beats carry no tag (vigil run --no-auth)\n"
		"      --interval-ms N       interval the beats announce (default 10)\n"
		"      --incarnation N       default: seconds since the epoch\n"
		"      --capture IF          first capture beats seen on IF, to replay them\n"
		"      --capture-count N     beats to capture (default 1024)\n"
		"      --capture-timeout SEC give up capturing after SEC (default 5)\n"
		"Run:\n"
		"  -r, --rate PPS            frames per second, 0 = as fast as possible (default 0)\n"
		"  -d, --duration SEC        how long (default 10; decimals allowed)\n"
		"      --cpu N               pin to CPU N (default: the CPU we start on)\n"
		"      --batch N             frames per kernel batch (default 64, at most 256)\n"
		"      --engine E            live: BPF_PROG_TEST_RUN with XDP live frames; packet:\n"
		"                            AF_PACKET sendmmsg (an skb per frame); auto: live\n"
		"                            if the kernel allows it (default auto)\n"
		"      --burst N             paced: send N frames back to back, then pause N gaps\n"
		"                            (default 1)\n"
		"Receiver (optional; with --search required):\n"
		"      --count SPEC          receiver's accepted count: map:PIN[:OFFSET] (a pinned\n"
		"                            array, summed over CPUs) or file:PATH[:OFFSET]\n"
		"      --drops SPEC          a second receiver counter to report (e.g. socket drops)\n"
		"      --rx-cpu N            CPU whose busy time (/proc/stat) is the receiver's\n"
		"      --search              measure the receiver: its CPU's idle check, then the\n"
		"                            saturated view (flat out, --sat-trials runs), then the\n"
		"                            loss-free view (a bisection on a log scale, repeated\n"
		"                            until two searches agree, then --rate-trials runs at\n"
		"                            that rate); median, min and max of each figure\n"
		"      --idle-sec SEC        before it all, how long to watch the receiver CPU for\n"
		"                            anything else running (default 1; 0 = do not)\n"
		"      --sat-trials N        flat-out runs (default 5)\n"
		"      --searches N          at most N searches (default 4)\n"
		"      --agree F             two searches agree within this fraction (default 0.10)\n"
		"      --rate-trials N       runs at the loss-free rate (default 5)\n"
		"      --common-rate PPS     then as many runs at PPS, the rate every receiver is\n"
		"                            compared at (default: none)\n"
		"      --steps N             rate steps of one search (default 7)\n"
		"      --step-sec SEC        length of each run (default 2)\n"
		"      --loss-tolerance F    lost fraction still called loss-free (default 0.0001)\n"
		"      --trials N            a step that lost under 1 %% is run up to N times and is\n"
		"                            loss-free if any run was (default 3)\n"
		"      --min-rate PPS        never step below PPS (default 0)\n"
		"      --warmup-sec SEC      first send at --warmup-rate (default 100000) for SEC,\n"
		"                            uncounted: first beats, caches, the receiver's backlog\n"
		"      --json                print one JSON object on stdout\n"
		"\n"
		"Examples:\n"
		"  vigil-trafficgen -i veth0 --dst-mac 02:00:00:00:00:01 -k keys -n 65536 -r 1000000 -d 5\n"
		"  vigil-trafficgen -i veth0 --mix forged=1,random=1,replay=1 --capture veth0 \\\n"
		"      --src 198.19.0.0 --src-random-bits 16 -d 10\n");
}

int main(int argc, char **argv)
{
	enum {
		O_DSTMAC = 256, O_SRC, O_SRCBITS, O_DST, O_FIRST, O_UNSIGNED, O_INTERVAL, O_INC,
		O_CAPTURE, O_CAPCOUNT, O_CAPTIMEOUT, O_CPU, O_BATCH, O_COUNT, O_DROPS, O_RXCPU,
		O_SEARCH, O_STEPS, O_STEPSEC, O_TOL, O_JSON, O_MINRATE, O_WARMRATE, O_WARMSEC,
		O_SRCAGENT, O_BURST, O_TRIALS, O_ENGINE, O_SATTRIALS, O_SEARCHES, O_AGREE,
		O_RATETRIALS, O_IDLESEC, O_COMMONRATE,
	};
	static const struct option opts[] = {
		{ "iface", required_argument, NULL, 'i' },
		{ "dst-mac", required_argument, NULL, O_DSTMAC },
		{ "src", required_argument, NULL, O_SRC },
		{ "src-random-bits", required_argument, NULL, O_SRCBITS },
		{ "src-per-agent", no_argument, NULL, O_SRCAGENT },
		{ "dst", required_argument, NULL, O_DST },
		{ "port", required_argument, NULL, 'p' },
		{ "mix", required_argument, NULL, 'm' },
		{ "agents", required_argument, NULL, 'n' },
		{ "first-id", required_argument, NULL, O_FIRST },
		{ "keys", required_argument, NULL, 'k' },
		{ "unsigned", no_argument, NULL, O_UNSIGNED },
		{ "interval-ms", required_argument, NULL, O_INTERVAL },
		{ "incarnation", required_argument, NULL, O_INC },
		{ "capture", required_argument, NULL, O_CAPTURE },
		{ "capture-count", required_argument, NULL, O_CAPCOUNT },
		{ "capture-timeout", required_argument, NULL, O_CAPTIMEOUT },
		{ "rate", required_argument, NULL, 'r' },
		{ "duration", required_argument, NULL, 'd' },
		{ "cpu", required_argument, NULL, O_CPU },
		{ "batch", required_argument, NULL, O_BATCH },
		{ "burst", required_argument, NULL, O_BURST },
		{ "trials", required_argument, NULL, O_TRIALS },
		{ "engine", required_argument, NULL, O_ENGINE },
		{ "sat-trials", required_argument, NULL, O_SATTRIALS },
		{ "searches", required_argument, NULL, O_SEARCHES },
		{ "agree", required_argument, NULL, O_AGREE },
		{ "rate-trials", required_argument, NULL, O_RATETRIALS },
		{ "idle-sec", required_argument, NULL, O_IDLESEC },
		{ "common-rate", required_argument, NULL, O_COMMONRATE },
		{ "count", required_argument, NULL, O_COUNT },
		{ "drops", required_argument, NULL, O_DROPS },
		{ "rx-cpu", required_argument, NULL, O_RXCPU },
		{ "search", no_argument, NULL, O_SEARCH },
		{ "steps", required_argument, NULL, O_STEPS },
		{ "step-sec", required_argument, NULL, O_STEPSEC },
		{ "loss-tolerance", required_argument, NULL, O_TOL },
		{ "json", no_argument, NULL, O_JSON },
		{ "min-rate", required_argument, NULL, O_MINRATE },
		{ "warmup-rate", required_argument, NULL, O_WARMRATE },
		{ "warmup-sec", required_argument, NULL, O_WARMSEC },
		{ "help", no_argument, NULL, 'h' },
		{}
	};
	const char *ifname = NULL, *keys_path = NULL, *capture_if = NULL, *count_spec = NULL,
		   *drops_spec = NULL, *mix = "valid=1";
	__u8 dmac[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff }, smac[6];
	__u32 saddr = 0, daddr = htonl(0xc6120001), src_bits = 0, n_agents = 1000, port = 4747;
	__u32 interval_ms = 10, incarnation = 0, cap_count = 1024, batch = 64, v32;
	__u32 burst = 1;
	__u32 w[TG_NMODES];
	__u8 sched_check[TG_SCHED];
	__u64 first_id = 1, rate = 0, duration_ns = 10ULL * VIGIL_NSEC_PER_SEC;
	__u64 cap_timeout_ns = 5ULL * VIGIL_NSEC_PER_SEC;
	__u64 warm_rate = 100000, warm_ns = 0;
	struct method meth = { .step_ns = 2ULL * VIGIL_NSEC_PER_SEC, .idle_ns = VIGIL_NSEC_PER_SEC,
			       .tol = 0.0001, .agree = 0.10, .steps = 7, .retries = 3,
			       .sat_trials = 5, .searches = 4, .rate_trials = 5 };
	bool src_per_agent = false, unsigned_beats = false, have_inc = false, search = false, json = false;
	int cpu = -1, opt, ret = 1;
	struct counters c = { .rx_cpu = -1, .acc.fd = -1, .drops.fd = -1 };
	struct vigil_beat_info bi = {};
	struct vigil_beat beat;
	struct vg_keyfile kf = {};
	struct vigil_key *keys = NULL;
	struct vigil_beat *cap = NULL;
	struct gen g = { .sock = -1 };
	struct tg_config *cfg;
	struct result res;

	while ((opt = getopt_long(argc, argv, "i:p:m:n:k:r:d:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'i':
			ifname = optarg;
			break;
		case O_DSTMAC:
			if (bc_parse_mac(optarg, dmac)) {
				fprintf(stderr, "--dst-mac: '%s' is not a MAC address\n", optarg);
				return 2;
			}
			break;
		case O_SRC:
		case O_DST:
			if (inet_pton(AF_INET, optarg, opt == O_SRC ? &saddr : &daddr) != 1) {
				fprintf(stderr, "%s: '%s' is not an IPv4 address\n",
					opt == O_SRC ? "--src" : "--dst", optarg);
				return 2;
			}
			break;
		case O_SRCBITS:
			if (vg_parse_u32(optarg, "--src-random-bits", 0, 24, &src_bits))
				return 2;
			break;
		case O_SRCAGENT:
			src_per_agent = true;
			break;
		case 'p':
			if (vg_parse_u32(optarg, "--port", 1, 65535, &port))
				return 2;
			break;
		case 'm':
			mix = optarg;
			break;
		case 'n':
			if (vg_parse_u32(optarg, "--agents", 1, 16u << 20, &n_agents))
				return 2;
			break;
		case O_FIRST:
			if (vg_parse_u64(optarg, "--first-id", 1, (1ULL << 62), &first_id))
				return 2;
			break;
		case 'k':
			keys_path = optarg;
			break;
		case O_UNSIGNED:
			unsigned_beats = true;
			break;
		case O_INTERVAL:
			if (vg_parse_u32(optarg, "--interval-ms", 1, 3600000, &interval_ms))
				return 2;
			break;
		case O_INC:
			if (vg_parse_u32(optarg, "--incarnation", 0, UINT32_MAX, &incarnation))
				return 2;
			have_inc = true;
			break;
		case O_CAPTURE:
			capture_if = optarg;
			break;
		case O_CAPCOUNT:
			if (vg_parse_u32(optarg, "--capture-count", 1, 1u << 20, &cap_count))
				return 2;
			break;
		case O_CAPTIMEOUT:
			if (bc_parse_seconds(optarg, "--capture-timeout", &cap_timeout_ns))
				return 2;
			break;
		case 'r':
			if (vg_parse_u64(optarg, "--rate", 0, 100000000, &rate))
				return 2;
			break;
		case 'd':
			if (bc_parse_seconds(optarg, "--duration", &duration_ns))
				return 2;
			break;
		case O_CPU:
			if (vg_parse_u32(optarg, "--cpu", 0, 4095, &v32))
				return 2;
			cpu = (int)v32;
			break;
		case O_BATCH:
			if (vg_parse_u32(optarg, "--batch", 1, TG_MAX_BATCH, &batch))
				return 2;
			break;
		case O_BURST:
			if (vg_parse_u32(optarg, "--burst", 1, 128, &burst))
				return 2;
			break;
		case O_ENGINE:
			for (g.engine = ENGINE_AUTO; g.engine <= ENGINE_PACKET &&
			     strcmp(optarg, engine_names[g.engine]); g.engine++)
				;
			if (g.engine > ENGINE_PACKET) {
				fprintf(stderr, "--engine: '%s' is not auto, live or packet\n", optarg);
				return 2;
			}
			break;
		case O_SATTRIALS:
			if (vg_parse_u32(optarg, "--sat-trials", 1, MAX_TRIALS, &meth.sat_trials))
				return 2;
			break;
		case O_SEARCHES:
			if (vg_parse_u32(optarg, "--searches", 1, MAX_TRIALS, &meth.searches))
				return 2;
			break;
		case O_RATETRIALS:
			if (vg_parse_u32(optarg, "--rate-trials", 0, MAX_TRIALS, &meth.rate_trials))
				return 2;
			break;
		case O_AGREE: {
			char *end;

			meth.agree = strtod(optarg, &end);
			if (*end || meth.agree < 0 || meth.agree > 1) {
				fprintf(stderr, "--agree: '%s' is not a fraction 0..1\n", optarg);
				return 2;
			}
			break;
		}
		case O_COMMONRATE:
			if (vg_parse_u64(optarg, "--common-rate", 0, 100000000, &meth.common_rate))
				return 2;
			break;
		case O_IDLESEC:
			if (bc_parse_seconds(optarg, "--idle-sec", &meth.idle_ns))
				return 2;
			break;
		case O_TRIALS:
			if (vg_parse_u32(optarg, "--trials", 1, 10, &meth.retries))
				return 2;
			break;
		case O_COUNT:
			count_spec = optarg;
			break;
		case O_DROPS:
			drops_spec = optarg;
			break;
		case O_RXCPU:
			if (vg_parse_u32(optarg, "--rx-cpu", 0, 4095, &v32))
				return 2;
			c.rx_cpu = (int)v32;
			break;
		case O_SEARCH:
			search = true;
			break;
		case O_STEPS:
			if (vg_parse_u32(optarg, "--steps", 0, 30, &meth.steps))
				return 2;
			break;
		case O_STEPSEC:
			if (bc_parse_seconds(optarg, "--step-sec", &meth.step_ns))
				return 2;
			break;
		case O_TOL: {
			char *end;

			meth.tol = strtod(optarg, &end);
			if (*end || meth.tol < 0 || meth.tol > 1) {
				fprintf(stderr, "--loss-tolerance: '%s' is not a fraction 0..1\n", optarg);
				return 2;
			}
			break;
		}
		case O_JSON:
			json = true;
			break;
		case O_MINRATE:
			if (vg_parse_u64(optarg, "--min-rate", 0, 100000000, &meth.min_rate))
				return 2;
			break;
		case O_WARMRATE:
			if (vg_parse_u64(optarg, "--warmup-rate", 1, 100000000, &warm_rate))
				return 2;
			break;
		case O_WARMSEC:
			if (bc_parse_seconds(optarg, "--warmup-sec", &warm_ns))
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
	if (!ifname || optind < argc) {
		usage(stderr);
		return 2;
	}
	if (parse_mix(mix, w) || fill_schedule(sched_check, w)) {
		fprintf(stderr, "--mix: '%s' gives no frames\n", mix);
		return 2;
	}
	if (w[TG_VALID] && !keys_path && !unsigned_beats) {
		fprintf(stderr, "valid beats need --keys FILE (or --unsigned)\n");
		return 2;
	}
	if (w[TG_REPLAY] && !capture_if) {
		fprintf(stderr, "replays need --capture IF (the beats to replay)\n");
		return 2;
	}
	if (search && !count_spec) {
		fprintf(stderr, "--search needs --count (the receiver's accepted count)\n");
		return 2;
	}
	if (cpu >= 0 && bc_pin_cpu(cpu))
		return 1;
	g.batch = batch;
	g.ifindex = (int)if_nametoindex(ifname);
	if (!g.ifindex || bc_iface_addrs(ifname, smac, &v32)) {
		fprintf(stderr, "no interface '%s' in this network namespace\n", ifname);
		return 1;
	}
	if (!saddr)
		saddr = v32;
	if (!saddr) {
		fprintf(stderr, "%s has no IPv4 address; give --src\n", ifname);
		return 1;
	}
	if (count_spec && bc_counter_open(count_spec, &c.acc))
		return 1;
	c.have_acc = count_spec != NULL;
	if (drops_spec && bc_counter_open(drops_spec, &c.drops))
		return 1;
	c.have_drops = drops_spec != NULL;
	{
		/* No SA_RESTART: the signal must cut BPF_PROG_TEST_RUN short. */
		struct sigaction sa = { .sa_handler = on_signal };
		struct sigevent sev = { .sigev_notify = SIGEV_SIGNAL, .sigev_signo = SIGALRM };

		sigaction(SIGINT, &sa, NULL);
		sigaction(SIGTERM, &sa, NULL);
		sa.sa_handler = on_alarm;
		sigaction(SIGALRM, &sa, NULL);
		if (timer_create(CLOCK_MONOTONIC, &sev, &g.timer)) {
			fprintf(stderr, "timer_create failed: %s\n", strerror(errno));
			return 1;
		}
	}

	vg_log_hook_libbpf();
	g.skel = trafficgen_bpf__open();
	if (!g.skel) {
		fprintf(stderr, "opening the generator's BPF object failed: %s\n", strerror(errno));
		return 1;
	}
	bpf_map__set_max_entries(g.skel->maps.tg_keys, n_agents);
	bpf_map__set_max_entries(g.skel->maps.tg_replay, cap_count);
	if (trafficgen_bpf__load(g.skel)) {
		fprintf(stderr, "loading the generator's BPF program failed: %s\n", strerror(errno));
		goto out;
	}
	g.prog_fd = bpf_program__fd(g.skel->progs.tg_gen);
	cfg = &g.skel->bss->cfg;
	fill_schedule(cfg->sched, w);
	cfg->first_id = first_id;
	cfg->n_agents = n_agents;
	/* Sequences start at the wall clock in microseconds, as `vigil beat`
	 * does, so a later run is never taken for a replay of an earlier one. */
	cfg->seq_base = vg_wall_ns() / 1000;
	cfg->sign = !unsigned_beats;
	cfg->src_base = saddr;
	cfg->src_mask = src_bits ? (1u << src_bits) - 1 : 0;
	cfg->src_per_agent = src_per_agent;
	cfg->burst = burst;

	if (w[TG_VALID] && keys_path) {
		int fd = bpf_map__fd(g.skel->maps.tg_keys);

		if (vg_keyfile_load(keys_path, false, &kf))
			goto out;
		keys = calloc(n_agents, sizeof(*keys));
		if (!keys)
			goto out;
		host.keys = keys;
		host.n_keys = n_agents;
		for (__u32 i = 0; i < n_agents; i++) {
			const struct agent_auth *a = vg_keyfile_get(&kf, first_id + i);

			if (!a || !(a->valid & 1)) {
				fprintf(stderr, "%s: no key 0 for agent %llu\n", keys_path,
					(unsigned long long)(first_id + i));
				goto out;
			}
			keys[i] = a->key[0];
			if (bpf_map_update_elem(fd, &i, &a->key[0], BPF_ANY)) {
				fprintf(stderr, "writing key %u failed: %s\n", i, strerror(errno));
				goto out;
			}
		}
	}
	if (capture_if) {
		int fd = bpf_map__fd(g.skel->maps.tg_replay), got;

		cap = calloc(cap_count, sizeof(*cap));
		if (!cap)
			goto out;
		got = capture(capture_if, (__u16)port, cap, cap_count, cap_timeout_ns);
		if (got <= 0) {
			fprintf(stderr, "--capture: saw no beat on %s within the timeout\n", capture_if);
			goto out;
		}
		for (__u32 i = 0; i < (__u32)got; i++)
			bpf_map_update_elem(fd, &i, &cap[i], BPF_ANY);
		cfg->n_replay = (__u32)got;
		host.replay = cap;
		host.n_replay = (__u32)got;
		if (!json)
			printf("captured %d beats on %s to replay\n", got, capture_if);
	}

	bi.agent_id = first_id;
	bi.interval_ms = interval_ms;
	bi.incarnation = have_inc ? incarnation : (__u32)(vg_wall_ns() / VIGIL_NSEC_PER_SEC);
	bi.send_ts_ns = vg_wall_ns();
	bi.flags = unsigned_beats ? 0 : VIGIL_F_MAC;
	vigil_beat_encode(&beat, &bi);
	memcpy(cfg->beat, &beat, sizeof(beat));
	build_frame(&g, dmac, smac, saddr, daddr, (__u16)port, &beat);
	if (choose_engine(&g))
		goto out;

	if (warm_ns) {
		if (run(&g, warm_rate, warm_ns, NULL, &res))
			goto out;
		if (!json)
			printf("warm-up: %llu frames at %.0f pps\n", (unsigned long long)res.total,
			       pps(res.total, res.ns));
	}
	if (!search) {
		if (run(&g, rate, duration_ns, &c, &res))
			goto out;
		if (json) {
			printf("{\"iface\":\"%s\",\"engine\":\"%s\",\"mix\":\"%s\",", ifname,
			       engine_names[g.engine], mix);
			json_result(stdout, "run", &res);
			printf("}\n");
		} else {
			printf("sent %llu frames in %.3f s: %.0f pps (", (unsigned long long)res.total,
			       res.ns / 1e9, pps(res.total, res.ns));
			for (int m = 0, first = 1; m < TG_NMODES; m++)
				if (res.sent[m]) {
					printf("%s%s %llu", first ? "" : ", ", mode_names[m],
					       (unsigned long long)res.sent[m]);
					first = 0;
				}
			printf(")\n");
			if (c.have_acc)
				print_step(stdout, 0, &res, &c);
		}
		ret = stop_requested ? 130 : 0;
		goto out;
	}

	if (measure(&g, &c, &meth, json, ifname, mix))
		goto out;
	ret = stop_requested ? 130 : 0;
out:
	vg_keyfile_free(&kf);
	trafficgen_bpf__destroy(g.skel);
	if (g.sock >= 0)
		close(g.sock);
	free(g.bufs);
	free(keys);
	free(cap);
	bc_counter_close(&c.acc);
	bc_counter_close(&c.drops);
	return ret;
}
