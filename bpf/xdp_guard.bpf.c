// SPDX-License-Identifier: MIT
/* The relay's XDP guard: for TCP to the server's listen port only, admits SYNs from the
 * allow_from prefixes (when set) at no more than a per-source rate, and counts what it did.
 * Everything else (other ports, other protocols, IPv6, what it cannot parse) passes untouched.
 *
 *   frame -> [802.1Q] -> IPv4 -> TCP to cfg.addr:cfg.port?    no -> PASS, not counted
 *     non-first fragment                                      -> PASS (no ports to match)
 *     first fragment of a fragmented segment to the port     -> DROP frag
 *     not a SYN (ACK, data, FIN, RST, SYN-ACK)                -> PASS other
 *     SYN, allow_from set and source outside it               -> DROP allow
 *     SYN over its source's rate (GCRA in ntun_xdp_src)       -> DROP rate
 *     SYN                                                     -> PASS syn
 *
 * The per-source bucket is a GCRA: tat is when the source's bucket is full again; a SYN
 * passes if moving tat one gap on stays within syn_burst gaps of now. Two CPUs may update
 * one source's tat at once and let a SYN more through; the per-source counters are atomic.
 * ntun_xdp_src is an LRU: a flood from more distinct (spoofed) sources than it holds evicts
 * the least recent ones, and an evicted source starts again with a full burst.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "ntun_bpf_abi.h"

/* #defines that vmlinux.h cannot carry. */
#define NTUN_ETH_P_IP	  0x0800
#define NTUN_ETH_P_8021Q  0x8100
#define NTUN_ETH_P_8021AD 0x88A8
#define NTUN_IP_MF	  0x2000
#define NTUN_IP_OFFSET	  0x1fff
#define NTUN_TCP_FLAGS	  13 /* byte of the TCP header with the flags */
#define NTUN_TCP_SYN	  0x02
#define NTUN_TCP_ACK	  0x10

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ntun_xdp_cfg);
} ntun_xdp_cfg SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, NTUN_XDP_ALLOW_MAX);
	__type(key, struct ntun_cidr_key);
	__type(value, struct ntun_cidr_val);
} ntun_xdp_allow SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, NTUN_XDP_SRC_MAX);
	__type(key, struct ntun_xdp_src_key);
	__type(value, struct ntun_xdp_src);
} ntun_xdp_src SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ntun_xdp_stats);
} ntun_xdp_stats SEC(".maps");

/* True if the source's bucket admits one more SYN now (and takes it). */
static __always_inline bool syn_admit(const struct ntun_xdp_cfg *cfg, __be32 saddr_be)
{
	struct ntun_xdp_src *src, fresh = {0};
	__u64 now = bpf_ktime_get_ns(), tat;
	struct ntun_xdp_src_key saddr;

	__builtin_memcpy(saddr.addr, &saddr_be, sizeof(saddr.addr));
	src = bpf_map_lookup_elem(&ntun_xdp_src, &saddr);
	if (!src) {
		fresh.tat_ns = now + cfg->syn_gap_ns;
		fresh.passed = 1;
		if (!bpf_map_update_elem(&ntun_xdp_src, &saddr, &fresh, BPF_NOEXIST))
			return true;
		/* Another CPU made it meanwhile: take from that one. */
		src = bpf_map_lookup_elem(&ntun_xdp_src, &saddr);
		if (!src)
			return true;
	}
	tat = src->tat_ns > now ? src->tat_ns : now;
	if (tat + cfg->syn_gap_ns - now > cfg->syn_burst_ns) {
		__sync_fetch_and_add(&src->dropped, 1);
		return false;
	}
	src->tat_ns = tat + cfg->syn_gap_ns;
	__sync_fetch_and_add(&src->passed, 1);
	return true;
}

SEC("xdp")
int xdp_guard(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data, *data_end = (void *)(long)ctx->data_end;
	const struct ntun_xdp_cfg *cfg;
	struct ntun_xdp_stats *st;
	struct ethhdr *eth = data;
	struct iphdr *ip;
	__u8 *tcp, flags;
	__u16 proto, frag, dport;
	__u32 zero = 0, ihl;
	void *l3;

	if ((void *)(eth + 1) > data_end)
		return XDP_PASS;
	proto = eth->h_proto;
	l3 = eth + 1;
	if (proto == bpf_htons(NTUN_ETH_P_8021Q) || proto == bpf_htons(NTUN_ETH_P_8021AD)) {
		struct vlan_hdr *vh = l3;

		if ((void *)(vh + 1) > data_end)
			return XDP_PASS;
		proto = vh->h_vlan_encapsulated_proto;
		l3 = vh + 1;
	}
	if (proto != bpf_htons(NTUN_ETH_P_IP))
		return XDP_PASS;
	ip = l3;
	if ((void *)(ip + 1) > data_end)
		return XDP_PASS;
	/* Version and header length from the first byte (no bitfields in packet access). */
	ihl = (*(__u8 *)ip & 0x0f) * 4;
	if ((*(__u8 *)ip >> 4) != 4 || ihl < sizeof(*ip) || ip->protocol != IPPROTO_TCP)
		return XDP_PASS;
	cfg = bpf_map_lookup_elem(&ntun_xdp_cfg, &zero);
	st = bpf_map_lookup_elem(&ntun_xdp_stats, &zero);
	if (!cfg || !st || !cfg->port)
		return XDP_PASS;
	if (*(__u32 *)cfg->addr && ip->daddr != *(__u32 *)cfg->addr)
		return XDP_PASS;
	frag = bpf_ntohs(ip->frag_off);
	if (frag & NTUN_IP_OFFSET)
		return XDP_PASS;
	tcp = (__u8 *)ip + ihl;
	/* A SYN is never fragmented by a real stack; a fragmented one dodges the checks below
	 * (its later fragments carry no ports), so the whole segment goes. A first fragment too
	 * short to show even the ports (IP options can push them past the packet) goes too:
	 * passing it would let the reassembled SYN skip every check. */
	if ((void *)(tcp + 4) > data_end) {
		if (!(frag & NTUN_IP_MF))
			return XDP_PASS;
		st->drop_frag++;
		return XDP_DROP;
	}
	dport = bpf_ntohs(*(__be16 *)(tcp + 2));
	if (dport != cfg->port)
		return XDP_PASS;
	if (frag & NTUN_IP_MF) {
		st->drop_frag++;
		return XDP_DROP;
	}
	if ((void *)(tcp + 20) > data_end)
		return XDP_PASS; /* a truncated header: the kernel drops it */
	flags = tcp[NTUN_TCP_FLAGS];
	if ((flags & (NTUN_TCP_SYN | NTUN_TCP_ACK)) != NTUN_TCP_SYN) {
		st->pass_other++;
		return XDP_PASS;
	}
	if (cfg->flags & NTUN_XDP_F_ALLOW) {
		struct ntun_cidr_key k = {.prefixlen = 32};

		__builtin_memcpy(k.addr, &ip->saddr, sizeof(k.addr));
		if (!bpf_map_lookup_elem(&ntun_xdp_allow, &k)) {
			st->drop_allow++;
			return XDP_DROP;
		}
	}
	if (cfg->syn_gap_ns && !syn_admit(cfg, ip->saddr)) {
		st->drop_rate++;
		return XDP_DROP;
	}
	st->pass_syn++;
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
