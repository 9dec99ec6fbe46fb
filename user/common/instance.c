// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <linux/if_link.h>
#include <linux/genetlink.h>
#include <linux/netlink.h>
#include <sys/socket.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "vigil.skel.h"
#include "common/instance.h"
#include "common/log.h"
#include "common/util.h"

#ifndef BPF_FS_MAGIC
#define BPF_FS_MAGIC 0xcafe4a11
#endif

#define LINK_PIN "link"
#define NAPI_LINK_PIN "napi_link" /* the receive queues' watch (bpf/napi.bpf.h) */

/* Every map that is pinned, by name, and where its fd lives in vg_maps. */
static const struct {
	const char *name;
	size_t off;
	size_t value_size;
} pinned_maps[] = {
	{ "vigil_agents", offsetof(struct vg_maps, agents), sizeof(struct agent_slot) },
	{ "vigil_agent_info", offsetof(struct vg_maps, info), sizeof(struct agent_info) },
	{ "vigil_index", offsetof(struct vg_maps, index), sizeof(__u32) },
	{ "vigil_links", offsetof(struct vg_maps, links), sizeof(struct wheel_link) },
	{ "vigil_buckets", offsetof(struct vg_maps, buckets), sizeof(struct wheel_bucket) },
	{ "vigil_wheel", offsetof(struct vg_maps, wheel), sizeof(struct wheel_state) },
	{ "vigil_inbox", offsetof(struct vg_maps, inbox), sizeof(__u32) },
	{ "vigil_config", offsetof(struct vg_maps, config), sizeof(struct vigil_config) },
	{ "vigil_globals", offsetof(struct vg_maps, globals), sizeof(struct vigil_globals) },
	{ "vigil_stats", offsetof(struct vg_maps, stats), sizeof(struct vigil_stats) },
	{ "vigil_events", offsetof(struct vg_maps, events), 0 },
	{ "vigil_meta", offsetof(struct vg_maps, meta), sizeof(struct vigil_meta) },
	{ "vigil_auth", offsetof(struct vg_maps, auth), sizeof(struct agent_keys) },
	{ "vigil_groups", offsetof(struct vg_maps, groups), sizeof(struct group_policy) },
	{ "vigil_sources", offsetof(struct vg_maps, sources), sizeof(__u64) },
	{ "vigil_allow", offsetof(struct vg_maps, allow), sizeof(__u32) },
	{ "vigil_leases", offsetof(struct vg_maps, leases), sizeof(struct lease_slot) },
	{ "vigil_rxq", offsetof(struct vg_maps, rxq), sizeof(struct rxq_state) },
	{ "vigil_floors", offsetof(struct vg_maps, floors), sizeof(struct replay_floor) },
	{ "vigil_lease_terms", offsetof(struct vg_maps, lease_terms), sizeof(__u64) },
	{ "vigil_timer", (size_t)-1, 0 }, /* pinned so the sweeper outlives us */
};
#define N_PINNED (sizeof(pinned_maps) / sizeof(pinned_maps[0]))

#define MAP_FD(m, i) (*(int *)((char *)(m) + pinned_maps[i].off))

void vg_load_opts_default(struct vg_load_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->pin_root = VIGIL_DEFAULT_PIN_ROOT;
	o->iface = "lo";
	o->port = 4747;
	o->tick_ns = 1000000;
	o->max_agents = VIGIL_MAX_AGENTS;
	o->id_base = 1;
	o->ringbuf_bytes = 16 << 20;
	o->cfg.dead_misses = 2;
	o->cfg.pass_beats = 0;
	o->cfg.reject_events_per_sec = 10;
	o->cfg.sweep_budget = 1 << 18;
	o->cfg.auth_required = 1;
	o->cfg.replay_window = 64;
	o->cfg.rate_multiple = 4;
	o->cfg.rate_burst = 8;
	o->cfg.source_pps = 100000;
	o->cfg.source_burst = 10000;
	o->cfg.hold_max_ms = VIGIL_DEFAULT_HOLD_MAX_MS;
}

__u64 vg_instance_new_id(void)
{
	__u64 id = 0;

	if (getrandom(&id, sizeof(id), 0) != sizeof(id) || !id)
		id = vg_wall_ns();
	return id;
}

static void maps_init(struct vg_maps *m)
{
	for (size_t i = 0; i < N_PINNED; i++)
		if (pinned_maps[i].off != (size_t)-1)
			MAP_FD(m, i) = -1;
	m->ncpus = libbpf_num_possible_cpus();
}

void vg_maps_from_skel(struct vigil_bpf *skel, struct vg_maps *m)
{
	maps_init(m);
	m->agents = bpf_map__fd(skel->maps.vigil_agents);
	m->info = bpf_map__fd(skel->maps.vigil_agent_info);
	m->index = bpf_map__fd(skel->maps.vigil_index);
	m->links = bpf_map__fd(skel->maps.vigil_links);
	m->buckets = bpf_map__fd(skel->maps.vigil_buckets);
	m->wheel = bpf_map__fd(skel->maps.vigil_wheel);
	m->inbox = bpf_map__fd(skel->maps.vigil_inbox);
	m->config = bpf_map__fd(skel->maps.vigil_config);
	m->globals = bpf_map__fd(skel->maps.vigil_globals);
	m->stats = bpf_map__fd(skel->maps.vigil_stats);
	m->events = bpf_map__fd(skel->maps.vigil_events);
	m->meta = bpf_map__fd(skel->maps.vigil_meta);
	m->auth = bpf_map__fd(skel->maps.vigil_auth);
	m->groups = bpf_map__fd(skel->maps.vigil_groups);
	m->sources = bpf_map__fd(skel->maps.vigil_sources);
	m->allow = bpf_map__fd(skel->maps.vigil_allow);
	m->leases = bpf_map__fd(skel->maps.vigil_leases);
	m->lease_terms = bpf_map__fd(skel->maps.vigil_lease_terms);
	m->rxq = bpf_map__fd(skel->maps.vigil_rxq);
	m->floors = bpf_map__fd(skel->maps.vigil_floors);
	m->max_agents = bpf_map__max_entries(skel->maps.vigil_agents);
	m->id_base = skel->rodata->id_base;
}

void vg_maps_close(struct vg_maps *m)
{
	/* Only for maps opened from pins; skeleton-owned fds close with it. */
	for (size_t i = 0; i < N_PINNED; i++) {
		if (pinned_maps[i].off == (size_t)-1)
			continue;
		if (MAP_FD(m, i) >= 0)
			close(MAP_FD(m, i));
		MAP_FD(m, i) = -1;
	}
}

int vg_daemon_lock(const char *pin_root)
{
	char path[600], pid[32] = "";
	size_t n;
	int fd;

	n = (size_t)snprintf(path, sizeof(path), "%s/vigil-",
			     access("/run/lock", W_OK) == 0 ? "/run/lock" : "/run");
	for (const char *c = pin_root; *c && n < sizeof(path) - 6; c++)
		path[n++] = *c == '/' ? '_' : *c;
	snprintf(path + n, sizeof(path) - n, ".lock");
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		pr_warn("cannot open the daemon lock %s: %s\n", path, strerror(errno));
		return -1;
	}
	if (flock(fd, LOCK_EX | LOCK_NB)) {
		ssize_t r = pread(fd, pid, sizeof(pid) - 1, 0);

		pid[r > 0 ? r : 0] = '\0';
		pid[strcspn(pid, "\n")] = '\0';
		pr_warn("another 'vigil run' (pid %s) already serves %s; stop it first, or use "
			"another --pin-root\n", *pid ? pid : "?", pin_root);
		close(fd);
		return -1;
	}
	n = (size_t)snprintf(pid, sizeof(pid), "%d\n", (int)getpid());
	if (ftruncate(fd, 0) || pwrite(fd, pid, n, 0) != (ssize_t)n)
		pr_debug("writing the daemon lock %s failed: %s\n", path, strerror(errno));
	return fd;
}

int vg_ensure_bpffs(const char *pin_root)
{
	struct statfs st;

	if (statfs("/sys/fs/bpf", &st) == 0 && st.f_type == BPF_FS_MAGIC)
		goto mkroot;
	if (strncmp(pin_root, "/sys/fs/bpf/", 12) != 0)
		goto mkroot;
	if (mount("bpf", "/sys/fs/bpf", "bpf", 0, "mode=0700")) {
		pr_warn("mounting bpffs at /sys/fs/bpf failed: %s; mount it (mount -t bpf bpf /sys/fs/bpf) "
			"or run as root\n", strerror(errno));
		return -1;
	}
	pr_info("mounted bpffs at /sys/fs/bpf\n");
mkroot:
	if (mkdir(pin_root, 0700) && errno != EEXIST) {
		pr_warn("creating pin directory %s failed: %s\n", pin_root, strerror(errno));
		return -1;
	}
	return 0;
}

static void path_join(char *buf, size_t len, const char *root, const char *name)
{
	snprintf(buf, len, "%s/%s", root, name);
}

bool vg_instance_exists(const char *pin_root)
{
	char p[512];

	path_join(p, sizeof(p), pin_root, LINK_PIN);
	return access(p, F_OK) == 0;
}

static int start_sweeper(struct vigil_bpf *skel)
{
	LIBBPF_OPTS(bpf_test_run_opts, topts);
	int err = bpf_prog_test_run_opts(bpf_program__fd(skel->progs.vigil_start_sweeper), &topts);

	if (err || topts.retval) {
		pr_warn("starting the sweeper timer failed: %s\n",
			strerror(err ? errno : -(int)topts.retval));
		return -1;
	}
	return 0;
}

/* The interface's XDP features (netlink family "netdev", kernel 6.3+: its
 * NETDEV_A_DEV_XDP_FEATURES; bit 0, NETDEV_XDP_ACT_BASIC, is native XDP),
 * asked in the current network namespace. Returns 0 and sets *features, or
 * -1 when the kernel cannot say. Numbers from include/uapi/linux/netdev.h,
 * which Debian 12's headers predate. */
#define NETDEV_CMD_DEV_GET 1
#define NETDEV_A_DEV_IFINDEX 1
#define NETDEV_A_DEV_XDP_FEATURES 3
#define NETDEV_XDP_ACT_BASIC 1ULL

struct genl_msg {
	struct nlmsghdr n;
	struct genlmsghdr g;
	char buf[256];
};

/* One request, its first answer into *m; the attribute `type` of it
 * copied to out (len bytes). 0 when found. */
static int genl_ask(int fd, struct genl_msg *m, __u16 type, void *out, size_t len)
{
	struct nlattr *a;
	ssize_t n;
	int left;

	if (send(fd, m, m->n.nlmsg_len, 0) < 0)
		return -1;
	n = recv(fd, m, sizeof(*m), 0);
	if (n < (ssize_t)NLMSG_LENGTH(GENL_HDRLEN) || m->n.nlmsg_type == NLMSG_ERROR)
		return -1;
	left = (int)(m->n.nlmsg_len < (size_t)n ? m->n.nlmsg_len : (size_t)n) -
	       (int)NLMSG_LENGTH(GENL_HDRLEN);
	for (a = (struct nlattr *)m->buf; left >= (int)sizeof(*a) && a->nla_len >= sizeof(*a) &&
					  a->nla_len <= left;
	     left -= NLA_ALIGN(a->nla_len), a = (struct nlattr *)((char *)a + NLA_ALIGN(a->nla_len)))
		if ((a->nla_type & NLA_TYPE_MASK) == type && a->nla_len >= NLA_HDRLEN + len) {
			memcpy(out, (char *)a + NLA_HDRLEN, len);
			return 0;
		}
	return -1;
}

static void genl_put(struct genl_msg *m, __u16 family, __u8 cmd, __u16 type, const void *v,
		     size_t len)
{
	struct nlattr *a = (struct nlattr *)m->buf;

	memset(m, 0, sizeof(*m));
	m->n.nlmsg_type = family;
	m->n.nlmsg_flags = NLM_F_REQUEST;
	m->g.cmd = cmd;
	m->g.version = 1;
	a->nla_type = type;
	a->nla_len = (__u16)(NLA_HDRLEN + len);
	memcpy((char *)a + NLA_HDRLEN, v, len);
	m->n.nlmsg_len = NLMSG_LENGTH(GENL_HDRLEN) + NLA_ALIGN(a->nla_len);
}

static int xdp_features(int ifindex, __u64 *features)
{
	struct sockaddr_nl sa = { .nl_family = AF_NETLINK };
	struct timeval tv = { .tv_sec = 1 };
	struct genl_msg m;
	__u16 family;
	__u32 idx = (__u32)ifindex;
	int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_GENERIC), ret = -1;

	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)))
		goto out;
	genl_put(&m, GENL_ID_CTRL, CTRL_CMD_GETFAMILY, CTRL_ATTR_FAMILY_NAME, "netdev", 7);
	if (genl_ask(fd, &m, CTRL_ATTR_FAMILY_ID, &family, sizeof(family)))
		goto out;
	genl_put(&m, family, NETDEV_CMD_DEV_GET, NETDEV_A_DEV_IFINDEX, &idx, sizeof(idx));
	ret = genl_ask(fd, &m, NETDEV_A_DEV_XDP_FEATURES, features, sizeof(*features));
out:
	close(fd);
	return ret;
}

static void say_no_iface(const char *iface)
{
	pr_warn("no network interface named '%s'; check --iface (ip link)\n", iface);
}

static void say_xdp_taken(const char *iface)
{
	pr_warn("another XDP program is attached to %s; remove it first "
		"(vigil detach, or ip link set dev %s xdp off)\n", iface, iface);
}

int vg_instance_can_attach(const char *iface, bool skb_mode)
{
	LIBBPF_OPTS(bpf_xdp_query_opts, q);
	int ifindex = if_nametoindex(iface);
	__u64 features;

	if (!ifindex) {
		say_no_iface(iface);
		return -1;
	}
	if (!bpf_xdp_query(ifindex, 0, &q) && q.prog_id) {
		say_xdp_taken(iface);
		return -1;
	}
	if (!skb_mode && !xdp_features(ifindex, &features) && !(features & NETDEV_XDP_ACT_BASIC)) {
		pr_warn("native XDP not supported on %s (its driver has no XDP); use --mode skb\n",
			iface);
		return -1;
	}
	return 0;
}

static int attach_xdp(struct vigil_bpf *skel, const char *iface, bool skb_mode)
{
	LIBBPF_OPTS(bpf_link_create_opts, lopts);
	int ifindex = if_nametoindex(iface), fd;

	if (!ifindex) {
		say_no_iface(iface);
		return -1;
	}
	lopts.flags = skb_mode ? XDP_FLAGS_SKB_MODE : XDP_FLAGS_DRV_MODE;
	fd = bpf_link_create(bpf_program__fd(skel->progs.vigil_xdp), ifindex, BPF_XDP, &lopts);
	if (fd < 0) {
		int e = errno;

		if (!skb_mode && (e == EOPNOTSUPP || e == EINVAL))
			pr_warn("native XDP not supported on %s (%s); use --mode skb\n", iface,
				strerror(e));
		else if (e == EBUSY || e == EEXIST)
			say_xdp_taken(iface);
		else
			pr_warn("attaching XDP to %s failed: %s\n", iface, strerror(e));
		return -1;
	}
	return fd;
}

/* Watch the interface's NAPI polls, so the sweeper sees a receive queue that
 * stalls (bpf/napi.bpf.h), and pin the watch beside the XDP link. Without it
 * a stall shows only in the beats once they arrive: say so, and go on. */
static void watch_napi(struct vigil_bpf *skel, const char *root)
{
	struct bpf_link *l = bpf_program__attach(skel->progs.vigil_napi_poll);
	char p[512];

	path_join(p, sizeof(p), root, NAPI_LINK_PIN);
	if (!l || bpf_link__pin(l, p)) {
		pr_warn("watching the receive queues (tracepoint napi:napi_poll) failed: %s; a "
			"stalled queue will be seen only from its late beats, and verdicts wait "
			"--hold-max-ms for it at most\n", strerror(errno));
		if (l)
			bpf_link__destroy(l);
		return;
	}
	bpf_link__disconnect(l); /* the pin keeps it */
	bpf_link__destroy(l);
}

static int pin_all(struct vigil_bpf *skel, const char *root, int link_fd)
{
	char p[512];

	for (size_t i = 0; i < N_PINNED; i++) {
		struct bpf_map *map = bpf_object__find_map_by_name(skel->obj, pinned_maps[i].name);

		path_join(p, sizeof(p), root, pinned_maps[i].name);
		if (!map || bpf_map__pin(map, p)) {
			pr_warn("pinning %s at %s failed: %s\n", pinned_maps[i].name, p,
				strerror(errno));
			return -1;
		}
	}
	path_join(p, sizeof(p), root, LINK_PIN);
	if (link_fd >= 0 && bpf_obj_pin(link_fd, p)) {
		pr_warn("pinning the XDP link at %s failed: %s\n", p, strerror(errno));
		return -1;
	}
	return 0;
}

static void unpin_all(const char *root)
{
	char p[512];

	path_join(p, sizeof(p), root, LINK_PIN);
	unlink(p);
	path_join(p, sizeof(p), root, NAPI_LINK_PIN);
	unlink(p);
	for (size_t i = 0; i < N_PINNED; i++) {
		path_join(p, sizeof(p), root, pinned_maps[i].name);
		unlink(p);
	}
	rmdir(root);
}

int vg_instance_load(const struct vg_load_opts *o, struct vg_maps *m, struct vigil_bpf **skel_out)
{
	struct vigil_meta meta = {};
	struct vigil_bpf *skel;
	struct stat ns;
	__u32 zero = 0;
	int link_fd = -1;

	if (o->pin_root && vg_instance_exists(o->pin_root)) {
		pr_warn("an instance is already pinned at %s; adopt it or run 'vigil detach'\n",
			o->pin_root);
		return -1;
	}
	skel = vigil_bpf__open();
	if (!skel) {
		pr_warn("opening the BPF object failed: %s\n", strerror(errno));
		return -1;
	}
	skel->rodata->beat_port_be = htons(o->port);
	skel->rodata->tick_ns = o->tick_ns;
	skel->rodata->max_agents = o->max_agents;
	skel->rodata->id_base = o->id_base;
	if (o->iface && o->pin_root && !stat("/proc/self/ns/net", &ns)) {
		skel->rodata->rx_ifindex = if_nametoindex(o->iface);
		skel->rodata->rx_netns_ino = (__u32)ns.st_ino;
	} else {
		bpf_program__set_autoload(skel->progs.vigil_napi_poll, false);
	}
	bpf_map__set_max_entries(skel->maps.vigil_agents, o->max_agents);
	bpf_map__set_max_entries(skel->maps.vigil_agent_info, o->max_agents);
	bpf_map__set_max_entries(skel->maps.vigil_index, o->max_agents);
	/* Wheel slots: agents, then one per lease. */
	bpf_map__set_max_entries(skel->maps.vigil_links, o->max_agents + VIGIL_MAX_LEASES);
	bpf_map__set_max_entries(skel->maps.vigil_auth, o->max_agents);
	bpf_map__set_max_entries(skel->maps.vigil_floors, o->max_agents);
	bpf_map__set_max_entries(skel->maps.vigil_inbox, 2 * (o->max_agents + VIGIL_MAX_LEASES));
	bpf_map__set_max_entries(skel->maps.vigil_events, o->ringbuf_bytes);
	/* Nothing is pinned by libbpf itself: we pin explicitly below, after
	 * everything is set up, so a half-built instance is never adopted. */
	if (vigil_bpf__load(skel)) {
		pr_warn("loading the BPF programs failed: %s (run with -v for the verifier log)\n",
			strerror(errno));
		goto fail;
	}
	vg_maps_from_skel(skel, m);
	meta.instance_id = o->instance_id ? o->instance_id : vg_instance_new_id();
	meta.tick_ns = o->tick_ns;
	meta.layout_version = VIGIL_LAYOUT_VERSION;
	meta.max_agents = o->max_agents;
	meta.id_base = o->id_base;
	meta.port = o->port;
	meta.skb_mode = o->skb_mode;
	meta.ifindex = o->iface ? if_nametoindex(o->iface) : 0;
	if (bpf_map_update_elem(m->config, &zero, &o->cfg, BPF_ANY) ||
	    bpf_map_update_elem(m->meta, &zero, &meta, BPF_ANY)) {
		pr_warn("writing settings failed: %s\n", strerror(errno));
		goto fail;
	}
	if (start_sweeper(skel))
		goto fail;
	if (o->iface) {
		link_fd = attach_xdp(skel, o->iface, o->skb_mode);
		if (link_fd < 0)
			goto fail;
	}
	if (o->pin_root) {
		if (vg_ensure_bpffs(o->pin_root) || pin_all(skel, o->pin_root, link_fd)) {
			unpin_all(o->pin_root);
			goto fail;
		}
		if (o->iface)
			watch_napi(skel, o->pin_root);
	}
	/* The pinned link keeps XDP attached; our fd is no longer needed. */
	if (link_fd >= 0)
		close(link_fd);
	*skel_out = skel;
	return 0;
fail:
	if (link_fd >= 0)
		close(link_fd);
	vigil_bpf__destroy(skel);
	return -1;
}

/* Read vigil_meta from the pins and check its layout version. */
static int read_layout(const char *pin_root, struct vigil_meta *meta)
{
	struct bpf_map_info info = {};
	__u32 zero = 0, len = sizeof(info);
	char p[512];
	int fd, err = -1;

	path_join(p, sizeof(p), pin_root, "vigil_meta");
	fd = bpf_obj_get(p);
	if (fd < 0) {
		pr_warn("opening pinned map %s failed: %s; the instance is incomplete, run 'vigil "
			"detach' and start again\n", p, strerror(errno));
		return -1;
	}
	if (bpf_obj_get_info_by_fd(fd, &info, &len) || info.value_size > 256 ||
	    info.value_size < offsetof(struct vigil_meta, layout_version) +
				      sizeof(meta->layout_version)) {
		pr_warn("%s is not a vigil_meta map; run 'vigil detach' and start again\n", p);
	} else {
		/* Every layout begins with the same three fields: a larger or
		 * smaller value still says which layout it is. */
		__u8 buf[info.value_size];

		memset(meta, 0, sizeof(*meta));
		if (bpf_map_lookup_elem(fd, &zero, buf))
			pr_warn("reading vigil_meta failed: %s\n", strerror(errno));
		else
			memcpy(meta, buf, info.value_size < sizeof(*meta) ? info.value_size :
									      sizeof(*meta));
		if (meta->layout_version != VIGIL_LAYOUT_VERSION)
			pr_warn("instance at %s has map layout %u, this vigil speaks %u; run 'vigil "
				"detach' (drops state) or use the matching vigil\n", pin_root,
				meta->layout_version, VIGIL_LAYOUT_VERSION);
		else
			err = 0;
	}
	close(fd);
	return err;
}

int vg_instance_open(const char *pin_root, struct vg_maps *m, struct vigil_meta *meta)
{
	char p[512];

	maps_init(m);
	if (!vg_instance_exists(pin_root)) {
		pr_warn("no vigil instance is pinned at %s; start one with 'vigil run'\n", pin_root);
		return -1;
	}
	/* The layout first: another version's instance may lack maps this one
	 * has, and the layout says why better than a missing pin would. */
	if (read_layout(pin_root, meta))
		return -1;
	for (size_t i = 0; i < N_PINNED; i++) {
		struct bpf_map_info info = {};
		__u32 len = sizeof(info);
		int fd;

		if (pinned_maps[i].off == (size_t)-1)
			continue;
		path_join(p, sizeof(p), pin_root, pinned_maps[i].name);
		fd = bpf_obj_get(p);
		if (fd < 0) {
			pr_warn("opening pinned map %s failed: %s; the instance is incomplete, "
				"run 'vigil detach' and start again\n", p, strerror(errno));
			goto fail;
		}
		MAP_FD(m, i) = fd;
		if (bpf_obj_get_info_by_fd(fd, &info, &len) == 0 && pinned_maps[i].value_size &&
		    info.value_size != pinned_maps[i].value_size) {
			pr_warn("pinned map %s has %u-byte values, this vigil expects %zu: it was "
				"made by another version; run 'vigil detach' (drops state) or use "
				"the matching vigil\n", p, info.value_size, pinned_maps[i].value_size);
			goto fail;
		}
		if (MAP_FD(m, i) == m->agents)
			m->max_agents = info.max_entries;
	}
	m->id_base = meta->id_base;
	return 0;
fail:
	vg_maps_close(m);
	return -1;
}

int vg_instance_remove(const char *pin_root)
{
	char p[512];
	int fd;

	if (!vg_instance_exists(pin_root) && access(pin_root, F_OK)) {
		pr_warn("nothing to detach: no vigil instance at %s\n", pin_root);
		return -1;
	}
	/* Detach the link even if a running daemon still holds an fd to it. */
	path_join(p, sizeof(p), pin_root, LINK_PIN);
	fd = bpf_obj_get(p);
	if (fd >= 0) {
		if (bpf_link_detach(fd))
			pr_warn("detaching XDP failed: %s\n", strerror(errno));
		close(fd);
	}
	unpin_all(pin_root);
	return 0;
}
