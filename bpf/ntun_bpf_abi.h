/* SPDX-License-Identifier: MIT */
/* The only types shared by the BPF programs (bpf/redirect.bpf.c, bpf/xdp_guard.bpf.c) and
 * userspace (user/client/redirect.c, user/server/xdp.c): map keys and values, pin names,
 * constants. No logic lives here. */
#ifndef NTUN_BPF_ABI_H
#define NTUN_BPF_ABI_H

/* The BPF side gets __u8..__u64 from vmlinux.h; userspace from the UAPI header. */
#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

/* SO_MARK value the daemon sets on its own outbound sockets; never redirected in either mode. */
#define NTUN_REDIRECT_MARK 0x4e54554eu /* "NTUN" */

/* Map names double as pin names under /sys/fs/bpf/ntun/<instance>/ (at most 15 characters). */
#define NTUN_MAP_CIDRS "ntun_cidrs"
#define NTUN_MAP_CONN  "ntun_conn"
#define NTUN_MAP_STATS "ntun_stats"

#define NTUN_CIDRS_MAX 4096  /* intercepted prefixes */
#define NTUN_CONN_MAX  16384 /* redirected handshakes in flight (LRU: never refuses an insert) */

/* ntun_cidrs (LPM trie) key: prefixlen then the address in network order, as the trie wants. */
struct ntun_cidr_key {
	__u32 prefixlen;
	__u8 addr[4]; /* a.b.c.d */
};

/* ntun_cidrs value. */
struct ntun_cidr_val {
	__u32 flags; /* reserved, 0 */
};

/* A redirected connection as the app dialed it. Lives in the app socket's SK_STORAGE from
 * connect() on (getpeername reads it there), crosses the handshake in ntun_conn, and ends in
 * the daemon's accepted socket's SK_STORAGE (SO_ORIGINAL_DST and userspace read it there, the
 * latter with the socket's fd as the key). */
struct ntun_orig {
	__u8 addr[4];	 /* original destination a.b.c.d */
	__u16 port;	 /* original destination port, host order */
	__u16 flags;	 /* NTUN_ORIG_* */
	__u32 pid;	 /* tgid that called connect() (init pid namespace) */
	__u32 pad;	 /* 0 */
	__u64 cgroup_id; /* cgroup v2 id of the caller */
};

/* Set on the copy in the daemon's accepted socket (the app's own copy has it clear). */
#define NTUN_ORIG_PASSIVE 0x1

/* ntun_conn (LRU hash) key: the connection as seen from the app side. Both sides build it, the
 * app side from (local, remote), the daemon side from (remote, local). */
struct ntun_conn_key {
	__u64 netns; /* netns cookie: loopback 4-tuples repeat across namespaces */
	__u8 app_addr[4];
	__u8 lsn_addr[4]; /* the daemon's listener, 127.0.0.1 */
	__u16 app_port;	  /* host order */
	__u16 lsn_port;	  /* host order */
	__u32 pad;	  /* 0 */
};

/* ntun_stats (array, one element): counters, updated atomically. */
struct ntun_stats {
	__u64 redirected;  /* connects rewritten to the listener */
	__u64 skip_self;   /* connects skipped: the daemon's cgroup */
	__u64 skip_mark;   /* connects skipped: SO_MARK == NTUN_REDIRECT_MARK */
	__u64 tracked;	   /* established connections entered into ntun_conn */
	__u64 track_fail;  /* ... that did not fit (map full) */
	__u64 orig_answer; /* SO_ORIGINAL_DST answered from ntun_conn */
};

_Static_assert(sizeof(struct ntun_cidr_key) == 8, "ntun_cidr_key layout");
_Static_assert(sizeof(struct ntun_cidr_val) == 4, "ntun_cidr_val layout");
_Static_assert(sizeof(struct ntun_orig) == 24, "ntun_orig layout");
_Static_assert(sizeof(struct ntun_conn_key) == 24, "ntun_conn_key layout");
_Static_assert(sizeof(struct ntun_stats) == 48, "ntun_stats layout");

/* ---- XDP guard at the relay (bpf/xdp_guard.bpf.c, user/server/xdp.c) ----
 * Pinned under /sys/fs/bpf/ntun/server[-<instance>]/ with these names. ntun_xdp_allow is an
 * LPM trie keyed and valued as ntun_cidrs (struct ntun_cidr_key, struct ntun_cidr_val). */
#define NTUN_XDP_PROG  "xdp_guard"
#define NTUN_XDP_CFG   "ntun_xdp_cfg"
#define NTUN_XDP_ALLOW "ntun_xdp_allow"
#define NTUN_XDP_SRC   "ntun_xdp_src"
#define NTUN_XDP_STATS "ntun_xdp_stats"

#define NTUN_XDP_ALLOW_MAX 4096	 /* allow_from prefixes */
#define NTUN_XDP_SRC_MAX   65536 /* sources with a SYN bucket (LRU: the least recent goes) */

#define NTUN_XDP_F_ALLOW 0x1 /* allow_from is set: SYNs from elsewhere are dropped */

/* ntun_xdp_cfg (array, one element), written by userspace before attach. */
struct ntun_xdp_cfg {
	__u8 addr[4];	    /* listen address a.b.c.d; 0.0.0.0 = any */
	__u16 port;	    /* listen port, host order */
	__u16 flags;	    /* NTUN_XDP_F_* */
	__u64 syn_gap_ns;   /* 1 s / syn_rate; 0 = no rate limit */
	__u64 syn_burst_ns; /* syn_burst * syn_gap_ns: how far ahead a source may run */
};

/* ntun_xdp_src (LRU hash) key: a source address, as bytes so that bpftool shows a.b.c.d. */
struct ntun_xdp_src_key {
	__u8 addr[4];
};

/* ntun_xdp_src value: the source's SYN bucket as a GCRA (theoretical arrival time) and what
 * was done with its SYNs. */
struct ntun_xdp_src {
	__u64 tat_ns;  /* bpf_ktime_get_ns() when the bucket is full again */
	__u64 passed;  /* SYNs passed */
	__u64 dropped; /* SYNs dropped over the rate */
};

/* ntun_xdp_stats (per-CPU array, one element): packets to the listen port, per verdict. */
struct ntun_xdp_stats {
	__u64 pass_syn;	  /* SYNs admitted */
	__u64 pass_other; /* other TCP segments to the port (connections under way) */
	__u64 drop_allow; /* SYNs from outside allow_from */
	__u64 drop_rate;  /* SYNs over their source's rate */
	__u64 drop_frag;  /* first fragments of fragmented TCP to the port */
};

_Static_assert(sizeof(struct ntun_xdp_cfg) == 24, "ntun_xdp_cfg layout");
_Static_assert(sizeof(struct ntun_xdp_src_key) == 4, "ntun_xdp_src_key layout");
_Static_assert(sizeof(struct ntun_xdp_src) == 24, "ntun_xdp_src layout");
_Static_assert(sizeof(struct ntun_xdp_stats) == 40, "ntun_xdp_stats layout");

#endif
