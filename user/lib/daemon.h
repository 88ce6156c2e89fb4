/* SPDX-License-Identifier: MIT */
/* What every ntun daemon does before and around its own work: configuration, logging, the
 * loop, TLS credentials with the roles it accepts, PING/deadline options, and signals.
 * Start-up failures are fatal here; nothing here runs per connection. */
#ifndef NTUN_DAEMON_H
#define NTUN_DAEMON_H

#include <stdbool.h>

#include "config.h"
#include "peer.h"

struct admin;
struct json;
struct loop;
struct loop_signal;
struct metrics;
struct tls_ctx;

/* Counters every daemon keeps about the tunneled connections it relays. "up" is toward the
 * destination, "down" back toward the app. */
struct daemon_stats {
	uint64_t tunnels_total;	 /* relays started */
	uint64_t tunnels_active; /* relays running */
	uint64_t tunnels_failed; /* relays that ended with an error (reset, refused, timeout) */
	uint64_t refused_total;	 /* connections refused before a relay started */
	uint64_t bytes_up, bytes_down;
};

struct daemon {
	const char *name; /* "ntun-server", ... */
	enum config_daemon kind;
	int argc;
	char **argv; /* kept for SIGHUP, which reads every source again */
	struct config cfg;
	struct loop *loop;
	struct tls_ctx *tls;
	struct peer_opts popts;
	struct metrics *metrics; /* NULL unless metrics_addr is set */
	struct admin *admin;	 /* NULL when off (or its default socket is taken); the daemon
				  * adds its callbacks and endpoints (admin_set_ops, admin_route) */
	struct daemon_stats stats;
	uint64_t caps_keep, caps_reserve; /* see daemon_drop_privileges */
	struct loop_signal *sig[3];
	struct loop_timer *trim;	   /* gives freed heap back to the system now and then */
	int stops;			   /* SIGINT/SIGTERM received */
	void (*on_stop)(struct daemon *d); /* first SIGINT/SIGTERM: drain and stop */
	/* SIGHUP: the new configuration nc is complete and valid; apply what belongs to the
	 * daemon (routes, CIDRs) or return -errno with a reason in err to keep the old one.
	 * d->cfg still holds the running configuration; it is replaced after this returns 0.
	 * Restart-only settings (listen addresses, cgroup, mode, instance, ids) never change. */
	int (*on_reload)(struct daemon *d, const struct config *nc, char *err, size_t errsz);
};

/* Loads the configuration (exits 0 after --help/--version, 1 with the message on an error),
 * sets up logging, the loop, TLS (as TLS server for the server daemon, else TLS client), peer
 * options, and signal handling; SIGPIPE is ignored. */
void daemon_init(struct daemon *d, enum config_daemon kind, int argc, char **argv);

/* The name a client or proxy checks in the certificate of the server at entry (a server_addr
 * "host:port"): tls.server_name, else the host part of entry ("[v6]:port" without brackets), a
 * DNS name or an IP address. Returns it (in buf, or cfg's), or NULL if entry has no host. */
const char *daemon_server_name(const struct config *cfg, const char *entry, char *buf, size_t size);

/* Bit of a capability (CAP_* from <linux/capability.h>) in daemon_drop_privileges' mask. */
#define DAEMON_CAP(cap) (1ull << (cap))

/* Once set-up that needs privileges is done (sockets bound, BPF attached): sets no_new_privs
 * and keeps only the capabilities in keep (DAEMON_CAP() bits) in the bounding, permitted and
 * effective sets. Those in reserve stay in the permitted set only, out of the effective and
 * bounding sets, until daemon_raise_reserved() (for clean-up at exit). The inheritable and
 * ambient sets hold keep when we are not root (so a helper we exec keeps it) and nothing when
 * we are (root's exec gets the bounding set). A bounding set that cannot be lowered (no
 * CAP_SETPCAP) is left as it is: no_new_privs keeps an exec from gaining beyond the permitted
 * set anyway. Logs the sets; fatal() if they cannot be lowered. Single-threaded callers only:
 * capabilities belong to the thread. */
void daemon_drop_privileges(struct daemon *d, uint64_t keep, uint64_t reserve);

/* Makes the reserved capabilities effective again. Returns 0 or -errno. */
int daemon_raise_reserved(struct daemon *d);

/* Account a relay's start and end, and a refusal. */
void daemon_tunnel_started(struct daemon *d);
void daemon_tunnel_ended(struct daemon *d, int err, uint64_t up, uint64_t down);
void daemon_refused(struct daemon *d);

/* Where admin sockets are by default. */
#define DAEMON_ADMIN_DIR "/run/ntun"

/* The members of the admin API's status every daemon has (tunnel counts), into j. */
void daemon_admin_status(struct daemon *d, struct json *j);

/* Runs the loop until loop_stop(). */
void daemon_run(struct daemon *d);

void daemon_release(struct daemon *d);

#endif
