// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
/*
 * A no-op XDP program for the lease test (tests/e2e/85-leases.sh). A frame
 * that the monitor sends back with XDP_TX on a veth is delivered to the
 * peer through its XDP receive path, which exists only while the peer has an
 * XDP program attached; without one the acknowledgement is dropped.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

SEC("xdp")
int xdp_pass(struct xdp_md *ctx)
{
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
