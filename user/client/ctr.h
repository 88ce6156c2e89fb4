/* SPDX-License-Identifier: MIT */
/* Containers: the client's listener inside every network namespace a process of the intercepted
 * cgroup subtree runs in, so that connect4's rewrite to 127.0.0.1:PORT reaches the daemon from
 * any netns. Finds them (inotify on the cgroup tree, plus a periodic scan of cgroup.procs), opens
 * the listener there (setns), closes it when no process of the subtree is left in that netns.
 * Accepts nothing itself: the owner's callback does. The daemon's own netns is not served here.
 *
 * Per namespace it holds one listening socket (one fd, which pins the netns while open) and one
 * small entry; nothing else. */
#ifndef NTUN_CTR_H
#define NTUN_CTR_H

#include <stddef.h>
#include <stdint.h>

struct ctr;
struct loop;

/* A network namespace, as people and BPF name it. */
struct ctr_ns {
	uint64_t ino;	 /* netns inode: ls -l /proc/PID/ns/net, lsns */
	uint64_t cookie; /* SO_NETNS_COOKIE, what bpf_get_netns_cookie() returns; 0 if unknown */
};

/* lfd (a listener inside ns) is readable: accept from it until EAGAIN. Both borrowed. */
typedef void ctr_accept_cb(int lfd, const struct ctr_ns *ns, void *arg);

/* cgroup: the intercepted cgroup v2 directory (borrowed for ctr_new only).
 * port: the listener port (host order), the same in every netns.
 * backlog: listen() backlog per namespace.
 * scan_ms: period of the full rescan; 0 = 500. */
struct ctr_opts {
	const char *cgroup;
	uint16_t port;
	int backlog;
	uint32_t scan_ms;
};

/* Starts watching and runs the first scan before it returns, so containers that exist already
 * are served at once. Needs CAP_SYS_ADMIN (setns) and the daemon's own netns as the current
 * one. Returns NULL with errno set (inotify or /proc unusable). */
struct ctr *ctr_new(struct loop *l, const struct ctr_opts *o, ctr_accept_cb *cb, void *arg);

/* Closes every listener and watch. NULL is a no-op. */
void ctr_free(struct ctr *c);

/* Namespaces with a listener now. */
size_t ctr_count(const struct ctr *c);

/* The daemon's own netns. */
void ctr_self(const struct ctr *c, struct ctr_ns *out);

/* The path of cgroup id (as in /proc/PID/cgroup: relative to the cgroup v2 mount, "/a/b") into
 * buf, from the last scan. Returns 0, -ENOENT (not seen under the subtree) or -ENAMETOOLONG. */
int ctr_cgroup_path(const struct ctr *c, uint64_t id, char *buf, size_t size);

#endif
