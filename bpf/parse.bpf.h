/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Packet parsing for the beat path, in the xdp-tools manner: a cursor and
 * one small function per header, each bound-checked, each returning the next
 * protocol (or -1). Reads top to bottom like the packet.
 *
 * What the stack would drop as a bad IP header (wrong version, a length
 * shorter than the header) is not read as a beat: it goes up (XDP_PASS),
 * where the stack drops and counts it as it would without vigil
 * (docs/security.md). The IP header's length, not the frame's, bounds the
 * datagram: bytes after it are link-layer padding. A packet longer than the
 * frame is truncated: its datagram is judged on the bytes that are there
 * and is never a valid beat.
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
	/* Past the IP header: the bytes after pos within the IP packet's own
	 * length and the frame, and whether that length runs past the frame. */
	__u32 left;
	__u32 truncated;
};

/* The IP packet holds `len` more bytes after the cursor, by its header; the
 * frame may hold fewer. */
static __always_inline void set_left(struct hdr_cursor *c, void *data_end, __u32 len)
{
	__u32 in_frame = data_end - c->pos;

	c->truncated = len > in_frame;
	c->left = c->truncated ? in_frame : len;
}

/* Source address of the datagram, IPv4 mapped into IPv6 (::ffff:a.b.c.d). */
struct src_addr {
	__u8 a[16] __attribute__((aligned(8))); /* IPv4 as ::ffff:a.b.c.d */
	__u8 v6;       /* from an IPv6 header */
	__u8 v4mapped; /* an IPv6 source in ::ffff:0:0/96: it would read as IPv4 */
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

/* IPv4 without fragments; returns the L4 protocol. As ip_rcv() does: the
 * version must be 4 and the total length cover the header. */
static __always_inline int parse_iphdr(struct hdr_cursor *c, void *data_end, struct src_addr *src)
{
	struct iphdr *iph = c->pos;
	__u32 hdrsize, tot_len;

	if ((void *)(iph + 1) > data_end)
		return -1;
	if (iph->version != 4)
		return -1;
	hdrsize = iph->ihl * 4;
	if (hdrsize < sizeof(*iph))
		return -1;
	if (c->pos + hdrsize > data_end)
		return -1;
	tot_len = bpf_ntohs(iph->tot_len);
	if (tot_len < hdrsize)
		return -1;
	/* A fragment cannot be judged on its own; let the stack reassemble it. */
	if (iph->frag_off & bpf_htons(IP_MF_OFFSET))
		return -1;
	c->pos += hdrsize;
	set_left(c, data_end, tot_len - hdrsize);
	__builtin_memset(src->a, 0, 10);
	src->a[10] = 0xff;
	src->a[11] = 0xff;
	__builtin_memcpy(&src->a[12], &iph->saddr, 4);
	src->v6 = 0;
	src->v4mapped = 0;
	return iph->protocol;
}

/* IPv6 with UDP directly after the fixed header (no extension headers). As
 * ipv6_rcv() does: the version must be 6. */
static __always_inline int parse_ip6hdr(struct hdr_cursor *c, void *data_end, struct src_addr *src)
{
	struct ipv6hdr *ip6h = c->pos;
	__u32 payload_len;

	if ((void *)(ip6h + 1) > data_end)
		return -1;
	if (ip6h->version != 6)
		return -1;
	payload_len = bpf_ntohs(ip6h->payload_len);
	c->pos = ip6h + 1;
	set_left(c, data_end, payload_len);
	__builtin_memcpy(src->a, &ip6h->saddr, 16);
	src->v6 = 1;
	src->v4mapped = !ip6h->saddr.in6_u.u6_addr32[0] && !ip6h->saddr.in6_u.u6_addr32[1] &&
			ip6h->saddr.in6_u.u6_addr32[2] == bpf_htonl(0xffff);
	return ip6h->nexthdr;
}

/* Returns the UDP payload length claimed by the header, or -1. A header the
 * IP packet does not hold is not read (*dport stays 0). */
static __always_inline int parse_udphdr(struct hdr_cursor *c, void *data_end, __be16 *dport)
{
	struct udphdr *uh = c->pos;
	int len;

	if ((void *)(uh + 1) > data_end || c->left < sizeof(*uh))
		return -1;
	c->pos = uh + 1;
	c->left -= sizeof(*uh);
	*dport = uh->dest;
	len = bpf_ntohs(uh->len) - (int)sizeof(*uh);
	return len < 0 ? -1 : len;
}

#endif /* VIGIL_PARSE_BPF_H */
