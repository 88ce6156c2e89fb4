/* SPDX-License-Identifier: MIT */
/* The connection a client or proxy keeps to ntun-server: dial, TLS, HTTP/2 in the role the
 * daemon plays, and redial with exponential backoff and jitter whenever it is lost. One
 * connection at a time, to one fixed server (a proxy keeps one uplink per server) or to the
 * first that answers of all of server_addr in an order of our own (a client); what runs over
 * it is the daemon's business. */
#ifndef NTUN_UPLINK_H
#define NTUN_UPLINK_H

#include <stdbool.h>
#include <stdint.h>

#include "h2.h"

struct config;
struct daemon;
struct peer;
struct uplink;

#define UPLINK_MAX_TARGETS 64 /* addresses of all server_addr entries together */

/* One server: an address of a server_addr entry (a name with several addresses gives one
 * target per address) and the name its certificate must have. */
struct uplink_target {
	uint32_t addr; /* host order */
	uint16_t port;
	char name[256];	 /* tls.server_name, else the entry's host (brackets removed) */
	char label[300]; /* "entry", or "entry at a.b.c.d:port" for a name, for logs */
};

/* Resolves every server_addr entry of cfg (getaddrinfo: blocks; start-up, reconnect and
 * reload only) into targets in the order of the entries and of their addresses, duplicates
 * dropped, at most UPLINK_MAX_TARGETS. An entry that does not resolve is logged (warn) and
 * left out, and *all (if not NULL) becomes false. Returns the count (*t malloc'd, the caller
 * frees; NULL when 0) or -ENOMEM. */
int uplink_resolve(const struct config *cfg, struct uplink_target **t, bool *all);

/* True if a and b are the same server (address, port and name). */
bool uplink_target_eq(const struct uplink_target *a, const struct uplink_target *b);

struct uplink_cbs {
	/* HTTP/2 is running on p. */
	void (*on_up)(struct uplink *u, struct peer *p, void *arg);
	/* h2_server uplinks: a request from the server (see peer_cbs.on_request). */
	void (*on_request)(struct uplink *u, struct h2_stream *st, const struct h2_nv *nv, size_t n,
			   bool end, void *arg);
	/* The connection is gone (or never came up); a redial is scheduled unless stopped. */
	void (*on_down)(struct uplink *u, const char *reason, void *arg);
};

/* Starts dialing at once. fixed: the one server to keep a connection to (copied); NULL: every
 * server of d->cfg.server_addr, resolved again before each round through them, tried in an
 * order given by a hash of our certificate's identity with each server's address (rendezvous
 * hashing: a stable first choice per identity, identities spread evenly over the servers).
 * The connection moves to the next server at once when its server fails or drains; after a
 * whole round without success it backs off. h2_server: we play the HTTP/2 server on the
 * connection (proxy). mark: SO_MARK for the socket (0 = none). fatal() if out of memory. */
struct uplink *uplink_new(struct daemon *d, bool h2_server, uint32_t mark,
			  const struct uplink_target *fixed, const struct uplink_cbs *cbs,
			  void *arg);

/* The running connection, or NULL while down or draining. */
struct peer *uplink_peer(struct uplink *u);

/* The server of the running (or next) connection. Borrowed; NULL before any resolved. */
const struct uplink_target *uplink_target(const struct uplink *u);

/* The server refused us as we are (a Drain with a refusal): until uplink_reset, or a
 * connection that stays up, redials wait from 2-4 s doubling up to 5 minutes. */
void uplink_refused(struct uplink *u);

/* The server announced (a Drain) that it drains within ms: the connection it came on (the one
 * draining if there is one, else the running one) lets its open calls run that long (see
 * peer_expect_drain) rather than our own drain_ms, so tunnels open on it can finish. */
void uplink_expect_drain(struct uplink *u, uint32_t ms);

/* The configuration changed to cfg (SIGHUP; borrowed for the call): backoffs start over and
 * a pending redial runs now. Without a fixed server the targets are resolved again from cfg;
 * a running connection to a server no longer among them drains while the next one is
 * dialed. */
void uplink_reset(struct uplink *u, const struct config *cfg);

/* Stops redialing and drains the connection within ms; *done becomes true once it is gone. */
void uplink_stop(struct uplink *u, uint32_t ms);
bool uplink_stopped(const struct uplink *u);

void uplink_free(struct uplink *u);

#endif
