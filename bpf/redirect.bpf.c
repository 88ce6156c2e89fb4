// SPDX-License-Identifier: MIT
/* Transparent interception: connect4/6 rewrite TCP connects to intercepted CIDRs towards the
 * client's loopback listener and remember the original destination; sockops, getsockopt and
 * getpeername4/6 make it visible again. IPv4 only (also v4-mapped on dual-stack sockets).
 *
 *   app connect(100.64.1.5:80 or ::ffff:100.64.1.5:80)
 *     connect4/6: in ntun_cidrs? -> SK_STORAGE(app sk) = orig, dst := 127.0.0.1:listen_port
 *       (the app's own netns: the daemon keeps a listener in every netns of the subtree)
 *     sockops ACTIVE_ESTABLISHED (app sk): ntun_conn[netns, 4-tuple] = orig, STATE_CB on
 *     sockops PASSIVE_ESTABLISHED (daemon sk): SK_STORAGE(daemon sk) = orig | PASSIVE,
 *       ntun_conn entry deleted
 *   daemon getsockopt(SOL_IP, SO_ORIGINAL_DST) -> SK_STORAGE(daemon sk)
 *   app getpeername() -> SK_STORAGE(app sk)   (getpeername4/6)
 *   app TCP_CLOSE: deletes the ntun_conn entry if the daemon side never took it
 *
 * So ntun_conn only carries a record across the handshake (from the app's ESTABLISHED to the
 * daemon's child socket, one loopback round trip); connections that are open live in socket
 * storage, which no app can exhaust for another. ntun_conn is an LRU: a flood of handshakes
 * that never complete evicts its own oldest records, never fails an insert.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "ntun_bpf_abi.h"

/* #defines that vmlinux.h cannot carry. */
#define NTUN_AF_INET	     2
#define NTUN_AF_INET6	     10
#define NTUN_SOL_IP	     0
#define NTUN_SO_ORIGINAL_DST 80
#define NTUN_LOOPBACK	     0x7f000001 /* 127.0.0.1, host order */

/* Set by userspace before load. */
const volatile __u16 listen_port = 0; /* host order */
const volatile __u64 daemon_cgid = 0; /* the daemon's own cgroup: its connects pass untouched */

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, NTUN_CIDRS_MAX);
	__type(key, struct ntun_cidr_key);
	__type(value, struct ntun_cidr_val);
} ntun_cidrs SEC(".maps");

/* Per-socket record of the original destination; freed with the socket, so failed connects
 * leave nothing behind. */
struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct ntun_orig);
} ntun_sk_orig SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, NTUN_CONN_MAX);
	__type(key, struct ntun_conn_key);
	__type(value, struct ntun_orig);
} ntun_conn SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ntun_stats);
} ntun_stats SEC(".maps");

static __always_inline struct ntun_stats *stats(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&ntun_stats, &zero);
}

#define STAT_INC(field)                                      \
	do {                                                 \
		struct ntun_stats *s_ = stats();             \
		if (s_)                                      \
			__sync_fetch_and_add(&s_->field, 1); \
	} while (0)

/* Addresses arrive in network order (as __u32 loads); ports as noted at each caller. */
static __always_inline void conn_key(struct ntun_conn_key *k, __u64 netns, __u32 app_ip,
				     __u16 app_port, __u32 lsn_ip, __u16 lsn_port)
{
	__builtin_memset(k, 0, sizeof(*k));
	k->netns = netns;
	__builtin_memcpy(k->app_addr, &app_ip, 4);
	__builtin_memcpy(k->lsn_addr, &lsn_ip, 4);
	k->app_port = app_port;
	k->lsn_port = lsn_port;
}

/* Decides for one TCP connect to dst_ip (network order) / dst_port (the __be16 in ctx->user_port)
 * and records the original destination on the socket. True: rewrite it to the listener. */
static __always_inline bool intercept(struct bpf_sock_addr *ctx, __u32 dst_ip, __u32 dst_port)
{
	struct ntun_cidr_key key = {.prefixlen = 32};
	struct bpf_sock *sk = ctx->sk;
	struct ntun_orig *o;

	if (ctx->type != SOCK_STREAM || ctx->protocol != IPPROTO_TCP)
		return false;
	if (bpf_get_current_cgroup_id() == daemon_cgid) {
		STAT_INC(skip_self);
		return false;
	}
	if (sk->mark == NTUN_REDIRECT_MARK) {
		STAT_INC(skip_mark);
		return false;
	}
	__builtin_memcpy(key.addr, &dst_ip, 4);
	if (!bpf_map_lookup_elem(&ntun_cidrs, &key))
		return false;

	/* Without a record the daemon could not serve the connection: leave it alone. */
	o = bpf_sk_storage_get(&ntun_sk_orig, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (!o)
		return false;
	__builtin_memcpy(o->addr, &dst_ip, 4);
	o->port = bpf_ntohs((__u16)dst_port);
	o->flags = 0;
	o->pid = bpf_get_current_pid_tgid() >> 32;
	o->pad = 0;
	o->cgroup_id = bpf_get_current_cgroup_id();
	STAT_INC(redirected);
	return true;
}

SEC("cgroup/connect4")
int ntun_connect4(struct bpf_sock_addr *ctx)
{
	if (intercept(ctx, ctx->user_ip4, ctx->user_port)) {
		ctx->user_ip4 = bpf_htonl(NTUN_LOOPBACK);
		ctx->user_port = bpf_htons(listen_port);
	}
	return 1;
}

/* ::ffff:a.b.c.d on a dual-stack AF_INET6 socket (Java, for one) is an IPv4 connection too. */
static __always_inline bool v4mapped(__u32 a0, __u32 a1, __u32 a2)
{
	return a0 == 0 && a1 == 0 && a2 == bpf_htonl(0xffff);
}

SEC("cgroup/connect6")
int ntun_connect6(struct bpf_sock_addr *ctx)
{
	if (!v4mapped(ctx->user_ip6[0], ctx->user_ip6[1], ctx->user_ip6[2]))
		return 1;
	if (intercept(ctx, ctx->user_ip6[3], ctx->user_port)) {
		ctx->user_ip6[3] = bpf_htonl(NTUN_LOOPBACK);
		ctx->user_port = bpf_htons(listen_port);
	}
	return 1;
}

/* True for the daemon's accepted sockets: local end is the listener. */
static __always_inline bool is_listener_side(struct bpf_sock_ops *skops)
{
	return skops->local_ip4 == bpf_htonl(NTUN_LOOPBACK) && skops->local_port == listen_port;
}

/* skops->local_port is host order; remote_port is the __be16 in the high half on little
 * endian (low half on big endian), which bpf_ntohl() turns into host order on both. */
static __always_inline void sockops_key(struct bpf_sock_ops *skops, struct ntun_conn_key *k,
					bool listener_side)
{
	__u64 netns = bpf_get_netns_cookie(skops);
	__u16 lport = (__u16)skops->local_port;
	__u16 rport = (__u16)bpf_ntohl(skops->remote_port);

	if (listener_side)
		conn_key(k, netns, skops->remote_ip4, rport, skops->local_ip4, lport);
	else
		conn_key(k, netns, skops->local_ip4, lport, skops->remote_ip4, rport);
}

static __always_inline void on_active_established(struct bpf_sock_ops *skops)
{
	struct ntun_conn_key k;
	struct bpf_sock *sk = skops->sk;
	struct ntun_orig *o, rec;

	if (!sk)
		return;
	o = bpf_sk_storage_get(&ntun_sk_orig, sk, 0, 0);
	if (!o)
		return;
	rec = *o;
	rec.flags = 0;
	sockops_key(skops, &k, false);
	if (bpf_map_update_elem(&ntun_conn, &k, &rec, BPF_ANY)) {
		STAT_INC(track_fail);
		return;
	}
	STAT_INC(tracked);
	bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags | BPF_SOCK_OPS_STATE_CB_FLAG);
}

/* The daemon's child socket exists: the record moves onto it, out of the shared map. */
static __always_inline void on_passive_established(struct bpf_sock_ops *skops)
{
	struct ntun_conn_key k;
	struct bpf_sock *sk = skops->sk;
	struct ntun_orig *o, *d;

	if (!sk || !is_listener_side(skops))
		return;
	sockops_key(skops, &k, true);
	o = bpf_map_lookup_elem(&ntun_conn, &k);
	if (!o)
		return;
	d = bpf_sk_storage_get(&ntun_sk_orig, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (d) {
		*d = *o;
		d->flags |= NTUN_ORIG_PASSIVE;
	} else {
		STAT_INC(track_fail);
	}
	bpf_map_delete_elem(&ntun_conn, &k);
}

/* The app closed before the daemon's side existed (accept queue full, reset): drop the record.
 * Listener-side sockets never ask for STATE_CB. */
static __always_inline void on_close(struct bpf_sock_ops *skops)
{
	struct ntun_conn_key k;

	if (is_listener_side(skops))
		return;
	sockops_key(skops, &k, false);
	bpf_map_delete_elem(&ntun_conn, &k);
}

SEC("sockops")
int ntun_sockops(struct bpf_sock_ops *skops)
{
	/* AF_INET6 sockets get here only for v4-mapped connections (connect6 records no others;
	 * their local/remote_ip4 then hold the IPv4 addresses). */
	if (skops->family != NTUN_AF_INET && skops->family != NTUN_AF_INET6)
		return 1;
	switch (skops->op) {
	case BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB:
		on_active_established(skops);
		break;
	case BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB:
		on_passive_established(skops);
		break;
	case BPF_SOCK_OPS_STATE_CB:
		if (skops->args[1] == BPF_TCP_CLOSE)
			on_close(skops);
		break;
	}
	return 1;
}

/* Runs after the kernel's own getsockopt. Answers SO_ORIGINAL_DST for redirected connections
 * and otherwise leaves the kernel's result (netfilter's answer under iptables) untouched. */
SEC("cgroup/getsockopt")
int ntun_getsockopt(struct bpf_sockopt *ctx)
{
	struct bpf_sock *sk = ctx->sk;
	struct sockaddr_in *sin;
	struct ntun_orig *o;
	__u32 ip;

	if (ctx->level != NTUN_SOL_IP || ctx->optname != NTUN_SO_ORIGINAL_DST)
		return 1;
	if (!sk || sk->family != NTUN_AF_INET || sk->protocol != IPPROTO_TCP)
		return 1;
	/* Only the daemon's accepted sockets carry a PASSIVE record. */
	o = bpf_sk_storage_get(&ntun_sk_orig, sk, 0, 0);
	if (!o || !(o->flags & NTUN_ORIG_PASSIVE))
		return 1;
	sin = ctx->optval;
	if ((void *)(sin + 1) > ctx->optval_end)
		return 1;
	__builtin_memcpy(&ip, o->addr, 4);
	sin->sin_family = NTUN_AF_INET;
	sin->sin_port = bpf_htons(o->port);
	sin->sin_addr.s_addr = ip;
	__builtin_memset(sin->__pad, 0, sizeof(sin->__pad));
	ctx->optlen = sizeof(*sin);
	ctx->retval = 0;
	STAT_INC(orig_answer);
	return 1;
}

/* The app's getpeername() shows what it dialed, not the listener. */
static __always_inline struct ntun_orig *peer_orig(struct bpf_sock_addr *ctx, __u32 ip)
{
	if (ip != bpf_htonl(NTUN_LOOPBACK) || ctx->user_port != bpf_htons(listen_port))
		return NULL;
	return bpf_sk_storage_get(&ntun_sk_orig, ctx->sk, 0, 0);
}

SEC("cgroup/getpeername4")
int ntun_getpeer4(struct bpf_sock_addr *ctx)
{
	struct ntun_orig *o = peer_orig(ctx, ctx->user_ip4);
	__u32 ip;

	if (!o)
		return 1;
	__builtin_memcpy(&ip, o->addr, 4);
	ctx->user_ip4 = ip;
	ctx->user_port = bpf_htons(o->port);
	return 1;
}

SEC("cgroup/getpeername6")
int ntun_getpeer6(struct bpf_sock_addr *ctx)
{
	struct ntun_orig *o;
	__u32 ip;

	if (!v4mapped(ctx->user_ip6[0], ctx->user_ip6[1], ctx->user_ip6[2]))
		return 1;
	o = peer_orig(ctx, ctx->user_ip6[3]);
	if (!o)
		return 1;
	__builtin_memcpy(&ip, o->addr, 4);
	ctx->user_ip6[3] = ip;
	ctx->user_port = bpf_htons(o->port);
	return 1;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
