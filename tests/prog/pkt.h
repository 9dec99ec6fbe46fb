/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * Crafted frames for BPF_PROG_TEST_RUN: Ethernet, optional 802.1Q tags,
 * IPv4 (correct header checksum) or IPv6, UDP or TCP, and a beat made with
 * vigil_beat_encode(), so the test and the XDP program share the wire format,
 * optionally signed with vigil_beat_sign() as an agent signs it.
 * Every field of struct frame_spec is "as a well-behaved agent sends it" when
 * zero, so a table entry names only what it changes.
 */
#ifndef VIGIL_TEST_PKT_H
#define VIGIL_TEST_PKT_H

#include <stddef.h>
#include <string.h>
#include <linux/types.h>
#include "vigil/wire.h"
#include "vigil/auth.h"

#define PKT_MAX 512
#define PKT_ETH_HLEN 14

enum { L3_IPV4 = 0, L3_IPV6 = 1, L3_ARP = 2 };
enum { L4_UDP = 0, L4_TCP = 6 };
#define IPV_0 16 /* frame_spec.ip_version: version nibble 0 */

struct frame_spec {
	int l3;            /* L3_* */
	int vlans;         /* 802.1Q tags before the ethertype (0, 1, 2) */
	int l4;            /* L4_* */
	__u16 dport;       /* 0: VIGIL_DEFAULT_PORT */
	__u16 frag_off;    /* IPv4 flags and fragment offset, host order; 0: DF only */
	int ip_opt_words;  /* IPv4 options (NOPs), in 32-bit words */
	int ip6_hbh;       /* IPv6: a hop-by-hop extension header before UDP */
	int short_payload; /* the payload is only the first payload_len bytes of the beat */
	int payload_len;
	int udp_len;       /* UDP length field; 0: the true length */
	int trailer;       /* Ethernet padding after the IP packet */
	int cut;           /* truncate the finished frame to frame_len bytes */
	int frame_len;
	const struct vigil_key *key; /* sign the beat with this key (NULL: unsigned) */
	__u8 key_id;       /* ... naming this key id */
	const __u8 *saddr; /* source address: 4 bytes (IPv4) or 16 (IPv6); NULL: the default */
	int ip_version;    /* the IP header's version nibble (IPV_0 for 0); 0: the right one */
	int ip_len;        /* IPv4 total length or IPv6 payload length field; 0: the true one */
};

/* Overwrite `len` bytes of the encoded (and signed) beat at `off` with `val`,
 * big-endian; with `xor`, flip the bits set in `val` instead. Applied after
 * signing, so it models a beat changed in flight. */
struct beat_patch {
	int off, len;
	__u64 val;
	int xor;
};

struct pkt_writer {
	__u8 *p;
	size_t n;
};

static inline void put8(struct pkt_writer *w, __u8 v)
{
	w->p[w->n++] = v;
}

static inline void put16(struct pkt_writer *w, __u16 v)
{
	put8(w, v >> 8);
	put8(w, v & 0xff);
}

static inline void put32(struct pkt_writer *w, __u32 v)
{
	put16(w, v >> 16);
	put16(w, v & 0xffff);
}

static inline void put_bytes(struct pkt_writer *w, const void *src, size_t len)
{
	memcpy(w->p + w->n, src, len);
	w->n += len;
}

static inline __u32 csum_add(__u32 sum, const __u8 *p, size_t len)
{
	for (size_t i = 0; i + 1 < len; i += 2)
		sum += (__u32)p[i] << 8 | p[i + 1];
	if (len & 1)
		sum += (__u32)p[len - 1] << 8;
	return sum;
}

static inline __u16 csum_fold(__u32 sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)~sum;
}

static inline void set16(__u8 *p, __u16 v)
{
	p[0] = v >> 8;
	p[1] = v & 0xff;
}

static const __u8 mac_dst[6] = { 0x02, 0, 0, 0, 0, 0x01 };
static const __u8 mac_src[6] = { 0x02, 0, 0, 0, 0, 0x02 };
static const __u8 ip4_src[4] = { 198, 18, 0, 2 };
static const __u8 ip4_dst[4] = { 198, 18, 0, 1 };
static const __u8 ip6_src[16] = { 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2 };
static const __u8 ip6_dst[16] = { 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1 };

static inline const __u8 *frame_saddr(const struct frame_spec *f)
{
	if (f->saddr)
		return f->saddr;
	return f->l3 == L3_IPV6 ? ip6_src : ip4_src;
}

/* The source address as the XDP program reports it: IPv6, or IPv4 mapped
 * into IPv6 (::ffff:a.b.c.d). */
static inline void frame_src_mapped(const struct frame_spec *f, __u8 out[16])
{
	memset(out, 0, 16);
	if (f->l3 == L3_IPV6) {
		memcpy(out, frame_saddr(f), 16);
		return;
	}
	out[10] = out[11] = 0xff;
	memcpy(out + 12, frame_saddr(f), 4);
}

/* The 64-byte beat a frame carries: encoded, signed if f->key, patched. */
static inline void build_beat(struct vigil_beat *beat, const struct frame_spec *f,
			      const struct vigil_beat_info *bi, const struct beat_patch *patch)
{
	__u8 *p = (__u8 *)beat;

	vigil_beat_encode(beat, bi);
	if (f->key)
		vigil_beat_sign(beat, f->key, f->key_id);
	if (patch && patch->len)
		for (int i = 0; i < patch->len; i++) {
			__u8 v = patch->val >> (8 * (patch->len - 1 - i));

			p[patch->off + i] = patch->xor ? p[patch->off + i] ^ v : v;
		}
}

/*
 * Build one frame into buf (PKT_MAX bytes) and return its length. The L4
 * checksum is computed over the untruncated datagram, as the sender would.
 */
static inline size_t build_frame(__u8 *buf, const struct frame_spec *f,
				 const struct vigil_beat_info *bi, const struct beat_patch *patch)
{
	struct pkt_writer w = { .p = buf };
	struct vigil_beat beat;
	__u8 *payload = (__u8 *)&beat;
	const __u8 *saddr = frame_saddr(f);
	size_t plen = f->short_payload ? (size_t)f->payload_len : sizeof(beat);
	size_t l4_hlen = f->l4 == L4_TCP ? 20 : 8;
	size_t ip_hlen = f->l3 == L3_IPV6 ? 40 + (f->ip6_hbh ? 8 : 0) : 20 + 4 * f->ip_opt_words;
	size_t ip_start, l4_start;
	__u16 udp_len = f->udp_len ? f->udp_len : (__u16)(8 + plen);
	__u32 sum;

	memset(buf, 0, PKT_MAX);
	if (bi)
		build_beat(&beat, f, bi, patch);
	else
		memset(&beat, 0, sizeof(beat));

	put_bytes(&w, mac_dst, 6);
	put_bytes(&w, mac_src, 6);
	for (int i = 0; i < f->vlans; i++) {
		put16(&w, 0x8100);
		put16(&w, 100 + i); /* TCI: priority 0, VLAN 100 + i */
	}
	if (f->l3 == L3_ARP) {
		put16(&w, 0x0806);
		put16(&w, 1);      /* Ethernet */
		put16(&w, 0x0800); /* IPv4 */
		put8(&w, 6);
		put8(&w, 4);
		put16(&w, 1);      /* request */
		put_bytes(&w, mac_src, 6);
		put_bytes(&w, ip4_src, 4);
		put_bytes(&w, (const __u8[6]){ 0 }, 6);
		put_bytes(&w, ip4_dst, 4);
		goto out;
	}

	ip_start = w.n + 2;
	if (f->l3 == L3_IPV4) {
		put16(&w, 0x0800);
		put8(&w, (f->ip_version ? f->ip_version & 15 : 4) << 4 | (ip_hlen / 4));
		put8(&w, 0);
		put16(&w, f->ip_len ? (__u16)f->ip_len : ip_hlen + l4_hlen + plen);
		put16(&w, 0x1234);
		put16(&w, f->frag_off ? f->frag_off : 0x4000);
		put8(&w, 64);
		put8(&w, f->l4 == L4_TCP ? 6 : 17);
		put16(&w, 0);
		put_bytes(&w, saddr, 4);
		put_bytes(&w, ip4_dst, 4);
		for (int i = 0; i < 4 * f->ip_opt_words; i++)
			put8(&w, 1); /* NOP */
		set16(buf + ip_start + 10, csum_fold(csum_add(0, buf + ip_start, ip_hlen)));
	} else {
		put16(&w, 0x86DD);
		put32(&w, (__u32)(f->ip_version ? f->ip_version & 15 : 6) << 28);
		put16(&w, f->ip_len ? (__u16)f->ip_len : (ip_hlen - 40) + l4_hlen + plen);
		put8(&w, f->ip6_hbh ? 0 : (f->l4 == L4_TCP ? 6 : 17));
		put8(&w, 64);
		put_bytes(&w, saddr, 16);
		put_bytes(&w, ip6_dst, 16);
		if (f->ip6_hbh) {
			put8(&w, f->l4 == L4_TCP ? 6 : 17);
			put8(&w, 0);
			put8(&w, 1); /* PadN, 4 bytes */
			put8(&w, 4);
			put32(&w, 0);
		}
	}

	l4_start = w.n;
	if (f->l4 == L4_TCP) {
		put16(&w, 40000);
		put16(&w, f->dport ? f->dport : VIGIL_DEFAULT_PORT);
		put32(&w, 1);
		put32(&w, 0);
		put8(&w, 5 << 4);
		put8(&w, 0x18); /* PSH, ACK */
		put16(&w, 65535);
		put16(&w, 0);
		put16(&w, 0);
	} else {
		put16(&w, 40000);
		put16(&w, f->dport ? f->dport : VIGIL_DEFAULT_PORT);
		put16(&w, udp_len);
		put16(&w, 0);
	}
	put_bytes(&w, payload, plen);

	/* Pseudo-header, then the segment as built. */
	if (f->l3 == L3_IPV4) {
		sum = csum_add(0, saddr, 4);
		sum = csum_add(sum, ip4_dst, 4);
	} else {
		sum = csum_add(0, saddr, 16);
		sum = csum_add(sum, ip6_dst, 16);
	}
	sum += f->l4 == L4_TCP ? 6 : 17;
	sum += l4_hlen + plen;
	sum = csum_add(sum, buf + l4_start, l4_hlen + plen);
	{
		__u16 c = csum_fold(sum);

		if (f->l4 != L4_TCP && c == 0)
			c = 0xffff;
		set16(buf + l4_start + (f->l4 == L4_TCP ? 16 : 6), c);
	}
out:
	w.n += f->trailer; /* zero padding, as a NIC pads short frames */
	if (f->cut && (size_t)f->frame_len < w.n)
		w.n = f->frame_len;
	return w.n;
}

/* How many bytes of UDP payload the IP header's length field leaves room
 * for (the true length unless f->ip_len says otherwise), or -1. */
static inline int frame_ip_payload(const struct frame_spec *f)
{
	int ip_hlen = f->l3 == L3_IPV6 ? 40 + (f->ip6_hbh ? 8 : 0) : 20 + 4 * f->ip_opt_words;
	int l4_hlen = f->l4 == L4_TCP ? 20 : 8;

	if (!f->ip_len)
		return f->short_payload ? f->payload_len : (int)sizeof(struct vigil_beat);
	if (f->l3 == L3_IPV6)
		return f->ip_len - (ip_hlen - 40) - l4_hlen;
	return f->ip_len - ip_hlen - l4_hlen;
}

/* Length of the headers in front of the beat payload. */
static inline size_t frame_hdr_len(const struct frame_spec *f)
{
	size_t n = PKT_ETH_HLEN + 4 * f->vlans;

	if (f->l3 == L3_IPV6)
		n += 40 + (f->ip6_hbh ? 8 : 0);
	else
		n += 20 + 4 * f->ip_opt_words;
	return n + (f->l4 == L4_TCP ? 20 : 8);
}

#endif /* VIGIL_TEST_PKT_H */
