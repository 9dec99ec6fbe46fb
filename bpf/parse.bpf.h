/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Packet parsing for the beat path, in the xdp-tools manner: a cursor and
 * one small function per header, each bound-checked, each returning the next
 * protocol (or -1). Reads top to bottom like the packet.
 */
#ifndef VIGIL_PARSE_BPF_H
#define VIGIL_PARSE_BPF_H

#include <bpf/bpf_endian.h>

#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define ETH_P_8021Q 0x8100
#define ETH_P_8021AD 0x88A8
#define IPPROTO_UDP_ 17
#define IP_MF_OFFSET 0x3fff /* "more fragments" flag and fragment offset */

struct hdr_cursor {
	void *pos;
};

/* Source address of the datagram, IPv4 mapped into IPv6 (::ffff:a.b.c.d). */
struct src_addr {
	__u8 a[16];
};

struct vlan_hdr_ {
	__be16 tci;
	__be16 encap_proto;
};

/* Ethernet plus at most one 802.1Q/802.1ad tag; returns the inner ethertype
 * in network byte order. */
static __always_inline int parse_ethhdr(struct hdr_cursor *c, void *data_end)
{
	struct ethhdr *eth = c->pos;
	__be16 proto;

	if ((void *)(eth + 1) > data_end)
		return -1;
	c->pos = eth + 1;
	proto = eth->h_proto;
	if (proto == bpf_htons(ETH_P_8021Q) || proto == bpf_htons(ETH_P_8021AD)) {
		struct vlan_hdr_ *vh = c->pos;

		if ((void *)(vh + 1) > data_end)
			return -1;
		c->pos = vh + 1;
		proto = vh->encap_proto;
	}
	return proto;
}

/* IPv4 without fragments; returns the L4 protocol. */
static __always_inline int parse_iphdr(struct hdr_cursor *c, void *data_end, struct src_addr *src)
{
	struct iphdr *iph = c->pos;
	__u32 hdrsize;

	if ((void *)(iph + 1) > data_end)
		return -1;
	hdrsize = iph->ihl * 4;
	if (hdrsize < sizeof(*iph))
		return -1;
	if (c->pos + hdrsize > data_end)
		return -1;
	/* A fragment cannot be judged on its own; let the stack reassemble it. */
	if (iph->frag_off & bpf_htons(IP_MF_OFFSET))
		return -1;
	c->pos += hdrsize;
	__builtin_memset(src->a, 0, 10);
	src->a[10] = 0xff;
	src->a[11] = 0xff;
	__builtin_memcpy(&src->a[12], &iph->saddr, 4);
	return iph->protocol;
}

/* IPv6 with UDP directly after the fixed header (no extension headers). */
static __always_inline int parse_ip6hdr(struct hdr_cursor *c, void *data_end, struct src_addr *src)
{
	struct ipv6hdr *ip6h = c->pos;

	if ((void *)(ip6h + 1) > data_end)
		return -1;
	c->pos = ip6h + 1;
	__builtin_memcpy(src->a, &ip6h->saddr, 16);
	return ip6h->nexthdr;
}

/* Returns the UDP payload length claimed by the header, or -1. */
static __always_inline int parse_udphdr(struct hdr_cursor *c, void *data_end, __be16 *dport)
{
	struct udphdr *uh = c->pos;
	int len;

	if ((void *)(uh + 1) > data_end)
		return -1;
	c->pos = uh + 1;
	*dport = uh->dest;
	len = bpf_ntohs(uh->len) - (int)sizeof(*uh);
	return len < 0 ? -1 : len;
}

#endif /* VIGIL_PARSE_BPF_H */
