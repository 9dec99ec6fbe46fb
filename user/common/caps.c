// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
/* The capability check at the start of `vigil run` (caps.h). No libcap:
 * capget(2) for the effective set, statfs(2) for bpffs. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/vfs.h>
#include <unistd.h>
#include <linux/capability.h>
#include "common/caps.h"
#include "common/log.h"

#ifndef CAP_PERFMON
#define CAP_PERFMON 38
#endif
#ifndef CAP_BPF
#define CAP_BPF 39
#endif
#ifndef BPF_FS_MAGIC
#define BPF_FS_MAGIC 0xcafe4a11
#endif
/* The inode number of the initial user namespace (PROC_USER_INIT_INO). */
#define VG_INIT_USER_NS_INO 0xEFFFFFFDu

/* The effective set, 64 bits; -1 if the kernel would not say. */
static int effective_caps(__u64 *eff)
{
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {};

	if (syscall(SYS_capget, &hdr, data))
		return -1;
	*eff = (__u64)data[1].effective << 32 | data[0].effective;
	return 0;
}

static bool has(__u64 eff, int cap)
{
	return eff >> cap & 1;
}

int vg_caps_check_run(const char *iface, const char *pin_root)
{
	struct {
		int cap;
		const char *name, *k8s; /* k8s: the name securityContext uses */
		char why[200];
		bool missing;
	} need[4] = {
		{ CAP_BPF, "CAP_BPF", "BPF", "needed to create vigil's maps and load its programs "
		  "(bpf_timer, bpf_spin_lock and bpf_loop are CAP_BPF helpers)", false },
		{ CAP_NET_ADMIN, "CAP_NET_ADMIN", "NET_ADMIN", "", false },
		{ CAP_PERFMON, "CAP_PERFMON", "PERFMON", "needed for the verifier to accept the XDP "
		  "program's packet-pointer arithmetic (Spectre v1 sanitation is bypassed only with "
		  "CAP_PERFMON)", false },
		{ CAP_SYS_ADMIN, "CAP_SYS_ADMIN", "SYS_ADMIN", "", false },
	};
	const size_t n = sizeof(need) / sizeof(need[0]);
	char also[96] = "";
	struct statfs sfs;
	struct stat st;
	__u64 eff;
	int first = -1;

	if (effective_caps(&eff)) {
		pr_warn("cannot read this process's capabilities (capget: %s)\n", strerror(errno));
		return -1;
	}
	/* Capabilities held in a child user namespace do not count for bpf(2),
	 * which checks them against the initial one. */
	if (stat("/proc/self/ns/user", &st) == 0 && st.st_ino != VG_INIT_USER_NS_INO) {
		pr_warn("missing CAP_BPF in the initial user namespace: vigil runs in a user "
			"namespace, whose capabilities do not allow loading BPF; run it in the host's "
			"user namespace (Kubernetes: hostUsers: true, the default) or as root on the "
			"host\n");
		return -1;
	}
	snprintf(need[1].why, sizeof(need[1].why),
		 "needed to load vigil's XDP program and attach it to %s", iface ? iface : "lo");
	/* As in the kernel (bpf_capable(), perfmon_capable(), and
	 * bpf_token_capable() since 6.7), CAP_SYS_ADMIN stands in for the
	 * other three. */
	for (size_t i = 0; i < 3; i++)
		need[i].missing = !has(eff, need[i].cap) && !has(eff, CAP_SYS_ADMIN);
	/* Only a mount of bpffs needs CAP_SYS_ADMIN itself (vg_ensure_bpffs). */
	if (pin_root && strncmp(pin_root, "/sys/fs/bpf/", 12) == 0 &&
	    !(statfs("/sys/fs/bpf", &sfs) == 0 && sfs.f_type == BPF_FS_MAGIC) &&
	    !has(eff, CAP_SYS_ADMIN)) {
		need[3].missing = true;
		snprintf(need[3].why, sizeof(need[3].why),
			 "needed to mount bpffs at /sys/fs/bpf, where nothing is mounted; better, "
			 "mount the host's /sys/fs/bpf there (Kubernetes: a hostPath volume)");
	}
	for (size_t i = 0; i < n; i++) {
		if (!need[i].missing)
			continue;
		if (first < 0) {
			first = (int)i;
			continue;
		}
		snprintf(also + strlen(also), sizeof(also) - strlen(also), "%s%s",
			 also[0] ? ", " : " (also missing: ", need[i].name);
	}
	if (first < 0)
		return 0;
	if (also[0])
		snprintf(also + strlen(also), sizeof(also) - strlen(also), ")");
	pr_warn("missing %s: %s; grant it (Kubernetes: securityContext.capabilities.add %s; "
		"systemd: AmbientCapabilities=%s) or run as root%s\n", need[first].name,
		need[first].why, need[first].k8s, need[first].name, also);
	return -1;
}
