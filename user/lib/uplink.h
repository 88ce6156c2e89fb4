/* SPDX-License-Identifier: MIT */
/* The connection a client or proxy keeps to ntun-server: dial, TLS, HTTP/2 in the role the
 * daemon plays, and redial with exponential backoff and jitter whenever it is lost. One
 * connection at a time; what runs over it is the daemon's business. */
#ifndef NTUN_UPLINK_H
#define NTUN_UPLINK_H

#include <stdbool.h>
#include <stdint.h>

#include "h2.h"

struct daemon;
struct peer;
struct uplink;

struct uplink_cbs {
	/* HTTP/2 is running on p. */
	void (*on_up)(struct uplink *u, struct peer *p, void *arg);
	/* h2_server uplinks: a request from the server (see peer_cbs.on_request). */
	void (*on_request)(struct uplink *u, struct h2_stream *st, const struct h2_nv *nv, size_t n,
			   bool end, void *arg);
	/* The connection is gone (or never came up); a redial is scheduled unless stopped. */
	void (*on_down)(struct uplink *u, const char *reason, void *arg);
};

/* Starts dialing d->cfg.server_addr at once. h2_server: we play the HTTP/2 server on the
 * connection (proxy). mark: SO_MARK for the socket (0 = none). fatal() if out of memory. */
struct uplink *uplink_new(struct daemon *d, bool h2_server, uint32_t mark,
			  const struct uplink_cbs *cbs, void *arg);

/* The running connection, or NULL while down or draining. */
struct peer *uplink_peer(struct uplink *u);

/* Stops redialing and drains the connection within ms; *done becomes true once it is gone. */
void uplink_stop(struct uplink *u, uint32_t ms);
bool uplink_stopped(const struct uplink *u);

void uplink_free(struct uplink *u);

#endif
