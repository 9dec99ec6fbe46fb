/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * What `vigil run` needs from the kernel's capability model, checked before
 * it touches anything, so that a container or unit with too few privileges
 * fails at once with one line naming the missing capability instead of a
 * libbpf or verifier error half-way through a load.
 *
 * The set (why each, with sources: deploy/kubernetes/README.md):
 *   CAP_BPF        create the maps, load the programs; bpf_spin_lock,
 *                  bpf_timer and bpf_loop are CAP_BPF helpers
 *   CAP_NET_ADMIN  load an XDP program and attach it to the interface
 *   CAP_PERFMON    the verifier accepts the XDP program's register-offset
 *                  packet-pointer arithmetic only when Spectre v1
 *                  sanitation is bypassed, which CAP_PERFMON grants
 *   CAP_SYS_ADMIN  only to mount bpffs when nothing is mounted at
 *                  /sys/fs/bpf (mount the host's instead)
 * CAP_SYS_ADMIN also stands in for the first three, as it does in the kernel.
 */
#ifndef VIGIL_CAPS_H
#define VIGIL_CAPS_H

/* 0 when the effective set holds what `vigil run --iface IFACE --pin-root
 * PIN_ROOT` needs; otherwise print one line naming the missing capability,
 * what it is needed for and how to grant it, and return -1. */
int vg_caps_check_run(const char *iface, const char *pin_root);

#endif
