/* SPDX-License-Identifier: MIT */
/* The only types shared by the BPF programs (bpf/redirect.bpf.c) and userspace
 * (user/client/redirect.c): map keys and values, pin names, constants. No logic lives here. */
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

#endif
