// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
/*
 * vigil-baseline: vigil's job done the way a user would without vigil, as
 * the benchmark's comparison points (docs/BENCHMARKS.md, section 2). One
 * process on one CPU; the monitor itself (agent table, tag check, replay
 * window, deadline wheel) is bench/monitor.c. Two ways in:
 *
 *   --via udp  (default) a UDP socket, recvmmsg() in batches of 64: the
 *              kernel's IP and UDP stack and a socket queue per beat. The
 *              receiving interface needs an XDP_PASS program (vigil-bench
 *              sink --pass) only so that veth runs NAPI, as with the others.
 *   --via xsk  an AF_XDP socket on --iface's queue 0 (libxdp's xsk API, copy
 *              mode: veth has no zero-copy), fed by bench.bpf.c's xsk_beats,
 *              which this process attaches in native mode: no skb, no stack,
 *              one copy into the socket's memory per beat. The fastest thing
 *              a user could write without vigil.
 *
 * Counters go to a file (struct baseline_stats, bench/bench.h) that
 * vigil-trafficgen reads while it steps the rate; rcvbuf_drops is the
 * socket's own drop count (SO_MEMINFO, or XDP_STATISTICS for AF_XDP: ring
 * full and dropped), read once per tick.
 */
#include <errno.h>
#include <getopt.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <linux/if_link.h>
#include <linux/if_xdp.h>
#include <linux/sock_diag.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <xdp/xsk.h>
#include "vigil/wire.h"
#include "bench.h"
#include "bench.skel.h"
#include "common.h"
#include "monitor.h"
#include "common/log.h"
#include "common/util.h"

#define BATCH 64

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
	(void)sig;
	stop_requested = 1;
}

/* ------------------------------------------------------------- UDP */

static int run_udp(struct monitor *m, __u32 port, __u32 rcvbuf)
{
	struct mmsghdr msgs[BATCH];
	struct iovec iov[BATCH];
	static __u8 bufs[BATCH][128];
	struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = htons((__u16)port) };
	struct timeval tv = { .tv_usec = 1000 };
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf)) ||
	    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) ||
	    bind(fd, (struct sockaddr *)&addr, sizeof(addr))) {
		fprintf(stderr, "vigil-baseline: UDP socket on port %u: %s\n", port, strerror(errno));
		return 1;
	}
	for (int i = 0; i < BATCH; i++) {
		iov[i].iov_base = bufs[i];
		iov[i].iov_len = sizeof(bufs[i]);
	}
	fprintf(stderr, "vigil-baseline: %u agents, UDP port %u, ready\n", m->n, port);
	while (!stop_requested) {
		__u64 now;
		int got;

		for (int i = 0; i < BATCH; i++) {
			memset(&msgs[i].msg_hdr, 0, sizeof(msgs[i].msg_hdr));
			msgs[i].msg_hdr.msg_iov = &iov[i];
			msgs[i].msg_hdr.msg_iovlen = 1;
		}
		got = recvmmsg(fd, msgs, BATCH, MSG_WAITFORONE, NULL);
		now = vg_mono_ns();
		if (got > 0) {
			m->st->calls++;
			m->st->received += (__u64)got;
			for (int i = 0; i < got; i++)
				monitor_beat(m, bufs[i], msgs[i].msg_len, now);
		} else if (got < 0 && errno != EAGAIN && errno != EINTR) {
			fprintf(stderr, "recvmmsg: %s\n", strerror(errno));
			break;
		}
		if (monitor_tick(m, now)) {
			/* Once a tick: the socket's own count of datagrams it dropped. */
			__u32 mi[SK_MEMINFO_VARS];
			socklen_t ml = sizeof(mi);

			if (getsockopt(fd, SOL_SOCKET, SO_MEMINFO, mi, &ml) == 0)
				m->st->rcvbuf_drops = mi[SK_MEMINFO_DROPS];
		}
	}
	close(fd);
	return 0;
}

/* ----------------------------------------------------------- AF_XDP */

#define XSK_FRAMES 4096
#define XSK_FRAME_SIZE 2048
#define XSK_RING 2048

struct xsk {
	void *area;
	struct xsk_umem *umem;
	struct xsk_socket *sock;
	struct xsk_ring_prod fill;
	struct xsk_ring_cons comp, rx;
	struct bench_bpf *skel;
	int link_fd;
};

/* The UDP payload of an Ethernet + IPv4 + UDP frame to `port`, or NULL. */
static const __u8 *udp_payload(const __u8 *f, __u32 len, __u16 port, __u32 *plen)
{
	__u32 ihl, ulen;

	if (len < 14 + 20 + 8 || f[12] != 0x08 || f[13] != 0x00 || (f[14] >> 4) != 4)
		return NULL;
	ihl = (__u32)(f[14] & 15) * 4;
	if (ihl < 20 || f[23] != 17 || len < 14 + ihl + 8)
		return NULL;
	f += 14 + ihl;
	if ((f[2] << 8 | f[3]) != port)
		return NULL;
	ulen = (__u32)(f[4] << 8 | f[5]);
	if (ulen < 8)
		return NULL;
	ulen -= 8;
	*plen = ulen < len - 14 - ihl - 8 ? ulen : len - 14 - ihl - 8;
	return f + 8;
}

static int xsk_open(struct xsk *x, const char *ifname, __u32 port)
{
	struct xsk_umem_config ucfg = { .fill_size = XSK_RING, .comp_size = XSK_RING,
					.frame_size = XSK_FRAME_SIZE };
	struct xsk_socket_config scfg = { .rx_size = XSK_RING,
					  .libxdp_flags = XSK_LIBXDP_FLAGS__INHIBIT_PROG_LOAD,
					  .xdp_flags = XDP_FLAGS_DRV_MODE,
					  .bind_flags = XDP_COPY | XDP_USE_NEED_WAKEUP };
	LIBBPF_OPTS(bpf_link_create_opts, lopts, .flags = XDP_FLAGS_DRV_MODE);
	int ifindex = (int)if_nametoindex(ifname), err;
	__u32 idx;

	x->link_fd = -1;
	if (!ifindex) {
		fprintf(stderr, "vigil-baseline: no interface '%s' here\n", ifname);
		return -1;
	}
	x->area = mmap(NULL, (size_t)XSK_FRAMES * XSK_FRAME_SIZE, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (x->area == MAP_FAILED) {
		x->area = NULL;
		return -1;
	}
	err = xsk_umem__create(&x->umem, x->area, (__u64)XSK_FRAMES * XSK_FRAME_SIZE, &x->fill,
			       &x->comp, &ucfg);
	if (!err)
		err = xsk_socket__create(&x->sock, ifname, 0, x->umem, &x->rx, NULL, &scfg);
	if (err) {
		fprintf(stderr, "vigil-baseline: AF_XDP socket on %s queue 0 failed: %s\n", ifname,
			strerror(-err));
		return -1;
	}
	/* Every frame of the umem starts in the fill ring (it holds XSK_RING). */
	if (xsk_ring_prod__reserve(&x->fill, XSK_RING, &idx) != XSK_RING)
		return -1;
	for (__u32 i = 0; i < XSK_RING; i++)
		*xsk_ring_prod__fill_addr(&x->fill, idx + i) = (__u64)i * XSK_FRAME_SIZE;
	xsk_ring_prod__submit(&x->fill, XSK_RING);

	x->skel = bench_bpf__open_and_load();
	if (!x->skel) {
		fprintf(stderr, "vigil-baseline: loading bench.bpf.o failed: %s\n", strerror(errno));
		return -1;
	}
	x->skel->bss->xsk_port = htons((__u16)port);
	err = xsk_socket__update_xskmap(x->sock, bpf_map__fd(x->skel->maps.xsks));
	if (err) {
		fprintf(stderr, "vigil-baseline: adding the socket to the XSKMAP failed: %s\n",
			strerror(-err));
		return -1;
	}
	x->link_fd = bpf_link_create(bpf_program__fd(x->skel->progs.xsk_beats), ifindex, BPF_XDP,
				     &lopts);
	if (x->link_fd < 0) {
		fprintf(stderr, "vigil-baseline: attaching XDP (native) to %s failed: %s\n", ifname,
			strerror(errno));
		return -1;
	}
	return 0;
}

static void xsk_close(struct xsk *x)
{
	if (x->link_fd >= 0)
		close(x->link_fd);
	if (x->sock)
		xsk_socket__delete(x->sock);
	if (x->umem)
		xsk_umem__delete(x->umem);
	bench_bpf__destroy(x->skel);
	if (x->area)
		munmap(x->area, (size_t)XSK_FRAMES * XSK_FRAME_SIZE);
}

static int run_xsk(struct monitor *m, const char *ifname, __u32 port)
{
	struct xsk x = {};
	int ret = 1;

	if (xsk_open(&x, ifname, port))
		goto out;
	fprintf(stderr, "vigil-baseline: %u agents, AF_XDP on %s queue 0, UDP port %u, ready\n",
		m->n, ifname, port);
	while (!stop_requested) {
		struct pollfd p = { .fd = xsk_socket__fd(x.sock), .events = POLLIN };
		__u32 idx_rx = 0, idx_fill = 0, got;
		__u64 now;

		got = xsk_ring_cons__peek(&x.rx, BATCH, &idx_rx);
		if (!got) {
			if (xsk_ring_prod__needs_wakeup(&x.fill))
				recvfrom(p.fd, NULL, 0, MSG_DONTWAIT, NULL, NULL);
			poll(&p, 1, 1);
			monitor_tick(m, vg_mono_ns());
			continue;
		}
		now = vg_mono_ns();
		m->st->calls++;
		m->st->received += got;
		/* The frames go straight back to the fill ring. */
		while (xsk_ring_prod__reserve(&x.fill, got, &idx_fill) != got)
			;
		for (__u32 i = 0; i < got; i++) {
			const struct xdp_desc *d = xsk_ring_cons__rx_desc(&x.rx, idx_rx + i);
			const __u8 *pl;
			__u32 plen = 0;

			pl = udp_payload(xsk_umem__get_data(x.area, d->addr), d->len, (__u16)port, &plen);
			if (pl)
				monitor_beat(m, pl, plen, now);
			else
				m->st->malformed++;
			*xsk_ring_prod__fill_addr(&x.fill, idx_fill + i) = xsk_umem__extract_addr(d->addr);
		}
		xsk_ring_prod__submit(&x.fill, got);
		xsk_ring_cons__release(&x.rx, got);
		if (monitor_tick(m, now)) {
			struct xdp_statistics xs;
			socklen_t len = sizeof(xs);

			if (getsockopt(p.fd, SOL_XDP, XDP_STATISTICS, &xs, &len) == 0)
				m->st->rcvbuf_drops = xs.rx_dropped + xs.rx_ring_full;
		}
	}
	ret = 0;
out:
	xsk_close(&x);
	return ret;
}

/* ------------------------------------------------------------- main */

int main(int argc, char **argv)
{
	struct monitor_opts mo = { .first_id = 1, .agents = 1000, .interval_min_ms = 10,
				   .interval_max_ms = 1000, .multiplier = 3 };
	const char *via = "udp", *iface = NULL;
	__u32 port = VIGIL_DEFAULT_PORT, rcvbuf = 4u << 20;
	int opt, cpu = -1, ret;
	const struct bc_opt opts[] = {
		BC_U32("port", 'p', &port, 1, 65535),
		BC_STR("keys", 'k', &mo.keys_path),
		BC_U32("agents", 'n', &mo.agents, 1, 16u << 20),
		BC_U64("first-id", 'f', &mo.first_id, 1, UINT64_MAX / 2),
		BC_U32("interval-min-ms", 'm', &mo.interval_min_ms, 1, 3600000),
		BC_U32("interval-max-ms", 'M', &mo.interval_max_ms, 1, 3600000),
		BC_U32("multiplier", 'x', &mo.multiplier, 1, 1000),
		BC_STR("stats", 's', &mo.stats_path),
		BC_INT("cpu", 'c', &cpu, 0, 4095),
		BC_U32("rcvbuf", 'b', &rcvbuf, 4096, 1u << 30),
		BC_FLAG("events", 'e', &mo.print_events),
		BC_STR("via", 'v', &via),
		BC_STR("iface", 'i', &iface),
		BC_OTHER("help", 'h', no_argument),
		{}
	};
	struct monitor m = {};

	while ((opt = bc_getopt(argc, argv, "p:k:n:i:h", opts)) != -1) {
		if (opt == BC_BAD)
			return 2;
		fprintf(opt == 'h' ? stdout : stderr,
			"Usage: vigil-baseline --keys FILE --stats FILE [--via udp|xsk] [--iface IF]\n"
			"        [--agents N] [--first-id ID] [--port P] [--interval-min-ms N]\n"
			"        [--interval-max-ms N] [--multiplier N] [--cpu N] [--rcvbuf BYTES]\n"
			"        [--events]\n"
			"vigil's beat handling in one userspace process: from a UDP socket\n"
			"(recvmmsg x%d, the default) or an AF_XDP socket on IF's queue 0 (--via xsk,\n"
			"which attaches its own XDP program to IF in native mode).\n"
			"Stats file: struct baseline_stats (bench/bench.h); accepted at offset %d,\n"
			"socket drops at offset %d.\n", BATCH, BASELINE_OFF_ACCEPTED,
			BASELINE_OFF_RCVBUF_DROPS);
		return opt == 'h' ? 0 : 2;
	}
	if (!mo.keys_path || !mo.stats_path) {
		fprintf(stderr, "vigil-baseline: --keys and --stats are required (see --help)\n");
		return 2;
	}
	if (strcmp(via, "udp") && strcmp(via, "xsk")) {
		fprintf(stderr, "vigil-baseline: --via '%s': expected udp or xsk\n", via);
		return 2;
	}
	if (!strcmp(via, "xsk") && !iface) {
		fprintf(stderr, "vigil-baseline: --via xsk needs --iface IF\n");
		return 2;
	}
	if (cpu >= 0 && bc_pin_cpu(cpu))
		return 1;
	setvbuf(stdout, NULL, _IOLBF, 0);
	vg_log_hook_libbpf();
	if (monitor_init(&m, &mo)) {
		monitor_free(&m);
		return 1;
	}
	{
		struct sigaction sa = { .sa_handler = on_signal };

		sigaction(SIGINT, &sa, NULL);
		sigaction(SIGTERM, &sa, NULL);
	}
	ret = !strcmp(via, "xsk") ? run_xsk(&m, iface, port) : run_udp(&m, port, rcvbuf);
	monitor_free(&m);
	return ret;
}
