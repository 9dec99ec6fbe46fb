/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The acknowledgement of an accepted beat, built in place of the beat and
 * sent back out of the interface it came in on (XDP_TX): what the monitor
 * knows of the lease the beat named, tagged with the agent's key. Only for
 * agents registered with acknowledgements (VIGIL_AUTH_ACK).
 */
#ifndef VIGIL_ACK_BPF_H
#define VIGIL_ACK_BPF_H

#include <bpf/bpf_endian.h>
#include "vigil/wire.h"
#include "vigil/auth.h"
#include "parse.bpf.h"
#include "maps.bpf.h"
#include "lease.bpf.h"

/* Where the headers of the datagram start, for turning it into an ack. */
struct beat_frame {
	struct ethhdr *eth;
	void *l3;
	struct udphdr *udp;
	int v6;
};

/* UDP over IPv6 must carry a checksum (RFC 8200); IPv4 may send 0. */
static __always_inline __u16 udp6_csum(struct ipv6hdr *ip6, struct udphdr *uh, void *data_end)
{
	__be32 pseudo[2] = { bpf_htonl(sizeof(*uh) + sizeof(struct vigil_ack)),
			     bpf_htonl(IPPROTO_UDP_) };
	__s64 sum;

	if ((void *)(ip6 + 1) > data_end ||
	    (void *)uh + sizeof(*uh) + sizeof(struct vigil_ack) > data_end)
		return 0;
	sum = bpf_csum_diff(0, 0, (__be32 *)&ip6->saddr, 32, 0);
	sum = bpf_csum_diff(0, 0, pseudo, sizeof(pseudo), sum);
	sum = bpf_csum_diff(0, 0, (__be32 *)uh, sizeof(*uh) + sizeof(struct vigil_ack), sum);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = ~sum & 0xffff;
	return sum ? (__u16)sum : 0xffff;
}

/*
 * Answer a valid beat in place: the 64-byte beat becomes a 64-byte
 * acknowledgement (lengths, and so the IPv4 header checksum, stay as they
 * are), addresses and ports are swapped, and the frame goes back out of the
 * interface it came in on. It tells the agent what the monitor knows of the
 * lease the beat named, tagged with the agent's key.
 */
static __always_inline int send_ack(const struct beat_frame *f, void *data_end, void *payload,
				    const struct agent_auth *auth, const struct vigil_beat_info *b,
				    const struct vigil_config *cfg, __u64 now)
{
	struct vigil_ack *a = payload;
	struct ethhdr *eth = f->eth;
	struct udphdr *uh = f->udp;
	struct lease_slot *l = NULL;
	struct lease_view v = { .state = VIGIL_LEASE_FREE };
	__u32 id = b->lease_id, remaining = 0, rec = cfg->recommend_interval_ms;
	__u8 kid = b->key_id & 1, mac[6];
	__be16 port;

	if ((void *)(eth + 1) > data_end || (void *)(uh + 1) > data_end ||
	    (void *)(a + 1) > data_end)
		return XDP_DROP;
	if (id && id < VIGIL_MAX_LEASES)
		l = bpf_map_lookup_elem(&vigil_leases, &id);
	if (l) { /* one grant, whole: never a holder with another grant's token */
		bpf_spin_lock(&l->lock);
		lease_copy(l, &v);
		bpf_spin_unlock(&l->lock);
	}
	a->magic = bpf_htons(VIGIL_MAGIC);
	a->version = VIGIL_VERSION;
	a->flags = VIGIL_F_ACK;
	a->key_id = kid;
	a->recommend_interval_ms = bpf_htons(rec > 65535 ? 65535 : rec);
	a->agent_id = vg_be64(b->agent_id);
	a->seq = vg_be64(b->seq);
	a->lease_id = vg_be32(id);
	if (v.state == VIGIL_LEASE_HELD && v.expires_ns > now)
		remaining = (v.expires_ns - now) / VIGIL_NSEC_PER_MSEC;
	a->lease_state = v.state;
	a->token = vg_be64(v.token);
	a->holder = vg_be64(v.holder);
	a->remaining_ms = vg_be32(remaining);
	if ((b->flags & VIGIL_F_MAC) && (auth->valid & (1u << kid)))
		vigil_ack_sign(a, &auth->key[kid]);
	else
		__builtin_memset(a->mac, 0, sizeof(a->mac));

	__builtin_memcpy(mac, eth->h_dest, 6);
	__builtin_memcpy(eth->h_dest, eth->h_source, 6);
	__builtin_memcpy(eth->h_source, mac, 6);
	if (f->v6) {
		struct ipv6hdr *ip6 = f->l3;
		struct in6_addr t;

		if ((void *)(ip6 + 1) > data_end)
			return XDP_DROP;
		t = ip6->saddr;
		ip6->saddr = ip6->daddr;
		ip6->daddr = t;
	} else {
		struct iphdr *ip = f->l3;
		__be32 t;

		if ((void *)(ip + 1) > data_end)
			return XDP_DROP;
		t = ip->saddr;
		ip->saddr = ip->daddr;
		ip->daddr = t;
	}
	port = uh->source;
	uh->source = uh->dest;
	uh->dest = port;
	uh->check = 0;
	if (f->v6)
		uh->check = udp6_csum(f->l3, uh, data_end);
	return XDP_TX;
}

#endif /* VIGIL_ACK_BPF_H */
