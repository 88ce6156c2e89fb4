/* SPDX-License-Identifier: MIT */
/* The client's interception: BPF programs on a cgroup v2 (or iptables REDIRECT as fallback)
 * send TCP connects to intercepted CIDRs to our loopback listener. Owns libbpf; does no relaying.
 *
 * Policy while the daemon is down, the operator's choice (redirect_opts.fail_closed):
 * - fail open (default): the BPF links are not pinned, so they detach when the process exits
 *   (cleanly or not) and connects to the CIDRs go wherever the routing table sends them (for
 *   virtual prefixes usually ENETUNREACH or a timeout); redirect_free() also removes the
 *   iptables chain, the pins and the daemon cgroup. After a SIGKILL in iptables mode the chain
 *   stays (connects are then refused) until the next start or redirect_cleanup().
 * - fail closed: the links on the intercepted cgroup are pinned in /sys/fs/bpf/ntun/<instance>/
 *   next to the maps, and neither SIGKILL nor redirect_free() removes them or the iptables
 *   chain: connects to the CIDRs still go to 127.0.0.1:<listen_port> of the app's netns, where
 *   nothing listens any more, and are refused at once (ECONNREFUSED). The next redirect_new()
 *   of the instance takes the pinned links over with BPF_LINK_UPDATE (in iptables mode it
 *   builds the new chain beside the old one and renames it), so connects never escape;
 *   redirect_cleanup() removes it all.
 * Either way redirect_new() removes a crashed run's empty daemon cgroup.
 *
 * Scope: IPv4 TCP connects to the CIDRs, also as ::ffff:a.b.c.d from dual-stack AF_INET6
 * sockets; IPv6 destinations are never intercepted. BPF mode intercepts processes in the chosen
 * cgroup subtree, in any network namespace: connect4 rewrites to 127.0.0.1:<listen_port> of the
 * app's OWN netns, so the daemon keeps a listener in each netns that a process of the subtree
 * runs in (ctr.h does that); until it has one there, such connects are refused (RST). The
 * original destination travels with the sockets (keyed by netns cookie + 4-tuple only during
 * the handshake), so overlapping addresses in different namespaces never mix. iptables mode
 * intercepts every process of the daemon's own network namespace, whatever its cgroup, and no
 * other namespace (logged at start). */
#ifndef NTUN_REDIRECT_H
#define NTUN_REDIRECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cidr;
struct redirect;

enum redirect_mode { REDIRECT_AUTO, REDIRECT_BPF, REDIRECT_IPTABLES };

/* Set on the daemon's own outbound sockets (SO_MARK); such connects are never redirected. */
#define REDIRECT_MARK 0x4e54554eu

/* mode: enum redirect_mode.
 * cgroup: cgroup v2 dir whose processes are intercepted (BPF mode); NULL = the v2 root found in
 *   /proc/self/mountinfo.
 * instance: names /sys/fs/bpf/ntun/<instance>/, the chain NTUN-<instance> and the daemon cgroup;
 *   [A-Za-z0-9_-], at most 23 characters; NULL = "default".
 * listen_port: the client's listener on 127.0.0.1, host order, not 0.
 * cidrs: borrowed, copied; host bits are ignored. None with fail_closed: start with what a
 *   fail-closed predecessor of the instance intercepted (until redirect_set_cidrs).
 * fail_closed: see the policy above. */
struct redirect_opts {
	int mode;
	const char *cgroup;
	const char *instance;
	uint16_t listen_port;
	const struct cidr *cidrs;
	size_t n_cidrs;
	bool fail_closed;
};

/* Loads and attaches (BPF) or installs rules (iptables); logs which. REDIRECT_AUTO = BPF if it
 * can be set up (daemon cgroup, bpffs, load, attach, pins), else iptables with one warning line
 * saying why; an explicit REDIRECT_BPF fails instead, with one error line. BPF needs root
 * (CAP_SYS_ADMIN, CAP_BPF), iptables CAP_NET_ADMIN.
 * Before loading it creates the daemon's own cgroup <v2root>/ntun-<instance>-<pid> and moves the
 * calling process (all its threads) into it (iptables mode does without it if that fails), so
 * call it before creating any socket: the
 * daemon's own connects are never redirected (skipped by cgroup id in connect4, and by SO_MARK
 * REDIRECT_MARK in both modes), and the getsockopt program sits on that cgroup, never on the
 * root. Leftovers of an earlier crashed run of the same instance are removed first; a live
 * daemon of the same instance (BPF: on this host; iptables: in this netns) makes it fail with
 * EBUSY, and AUTO never falls back to iptables for that, nor for a cgroup that is not a cgroup
 * v2 directory (EINVAL). Mounts bpffs on /sys/fs/bpf if needed; maps are pinned under
 * /sys/fs/bpf/ntun/<instance>/ (ntun_cidrs, ntun_conn, ntun_stats). Not thread-safe; call from
 * the main thread. Returns NULL with errno and a logged reason on failure (the caller then
 * fatal()s). */
struct redirect *redirect_new(const struct redirect_opts *o);

/* Replaces the intercepted CIDR set live (LPM map in BPF mode, rules in the chain in iptables
 * mode): new prefixes are added before old ones are removed, so prefixes present in both sets
 * never stop being intercepted. Host bits are ignored. Returns 0, -EINVAL (len > 32), -ENOSPC
 * (more than 4096), or another -errno with the old set left in place. */
int redirect_set_cidrs(struct redirect *r, const struct cidr *c, size_t n);

/* Original destination of an accepted socket: getsockopt(SOL_IP, SO_ORIGINAL_DST), one code
 * path for both modes (BPF answers via the cgroup/getsockopt program, iptables via netfilter).
 * Fills host-order addr/port. Returns 0, -ENOENT if the connection was not redirected (including
 * a direct connect to the listener itself), or another -errno. Thread-safe, no state. */
int redirect_original_dst(int fd, uint32_t *addr, uint16_t *port);

/* Sets SO_MARK REDIRECT_MARK on fd (before connect). Returns 0 or -errno (-EPERM without
 * CAP_NET_ADMIN). */
int redirect_mark_socket(int fd);

/* Who made the redirected connection accepted as fd (BPF mode): the cgroup v2 id and the tgid
 * (init pid namespace) that called connect(). Returns 0, -ENOENT (fd was not redirected),
 * -ENOTSUP in iptables mode, or another -errno. */
int redirect_conn_origin(const struct redirect *r, int fd, uint64_t *cgroup_id, uint32_t *pid);

/* The intercepted cgroup v2 directory (resolved), or NULL in iptables mode. Owned by r. */
const char *redirect_cgroup(const struct redirect *r);

/* The cgroup v2 id of the cgroup directory path (what bpf_get_current_cgroup_id() returns).
 * Returns 0 or -errno. */
int redirect_cgroup_id(const char *path, uint64_t *id);

/* "bpf" or "iptables". */
const char *redirect_mode_name(const struct redirect *r);

/* Parses "auto", "bpf" or "iptables" into *mode. Returns 0 or -EINVAL. */
int redirect_mode_parse(const char *s, int *mode);

/* Finds the cgroup v2 mount point (what cgroup == NULL means) into buf. Returns 0, -ENOENT
 * (no cgroup2 mount) or -ENAMETOOLONG. */
int redirect_cgroup_root(char *buf, size_t size);

/* Counters of the BPF programs since redirect_new(). */
struct redirect_stats {
	uint64_t redirected;  /* connects rewritten to the listener */
	uint64_t skip_self;   /* connects of the daemon's cgroup left alone */
	uint64_t skip_mark;   /* connects carrying REDIRECT_MARK left alone */
	uint64_t tracked;     /* established redirected connections recorded */
	uint64_t track_fail;  /* ... not recorded (out of BPF memory) */
	uint64_t orig_answer; /* SO_ORIGINAL_DST answers given */
};

/* Fills *out. Returns 0, -ENOTSUP in iptables mode, or -errno. */
int redirect_get_stats(const struct redirect *r, struct redirect_stats *out);

/* Detaches everything it attached, removes pins, rules, the chain and the daemon cgroup
 * (moving the process back to the cgroup it came from first); failing closed, it keeps the
 * pinned links, the map pins and the chain. Call it on every exit path, including
 * SIGINT/SIGTERM, after the listener is closed. NULL is a no-op. */
void redirect_free(struct redirect *r);

/* Removes what a stopped daemon of the instance left, in either policy: every pin under
 * /sys/fs/bpf/ntun/<instance>/ (so pinned links detach), the chains NTUN-<instance> and
 * NTUX-<instance> of this network namespace, and empty daemon cgroups of dead daemons.
 * Returns 0, -EINVAL (bad name) or -EBUSY (a live daemon holds the instance; nothing
 * removed). */
int redirect_cleanup(const char *instance);

#endif
