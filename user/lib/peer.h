/* SPDX-License-Identifier: MIT */
/* One long-lived connection to another daemon: TCP, mutual TLS, then an HTTP/2 session in
 * whichever role the owner picks once it knows the peer's identity. Drives the I/O on the
 * loop, PINGs for liveness, enforces the handshake deadline, drains on GOAWAY, and ends in a
 * single close path that logs the reason once. Knows nothing of gRPC services or routing.
 *
 *   connecting -> handshaking -> ready (owner: peer_start_h2) -> running -> draining -> closed */
#ifndef NTUN_PEER_H
#define NTUN_PEER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "h2.h"

struct loop;
struct peer;
struct tls_ctx;
struct tls_identity;

/* Keepalive defaults. gRPC clients do not PING unless configured (A8), and a grpc-go server
 * by default takes one PING per 5 minutes while calls are open (three closer ones end the
 * connection): 5 minutes is the most often a PING reaches any default gRPC peer. A vanished
 * peer host or link is found sooner, by TCP keepalive and TCP_USER_TIMEOUT after the timeout,
 * gRPC's 20 s; only a peer process that hangs with its kernel alive waits for a PING. */
#define PEER_KEEPALIVE_MS	  (5u * 60 * 1000)
#define PEER_KEEPALIVE_TIMEOUT_MS 20000u
/* PINGs received: the spacing taken without strikes (h2_settings.ping_min_ms) by default.
 * Far below grpc-go's 5 minutes so that operators may lower the keepalive time of their own
 * clients and proxies for fast failover; a flood is still stopped after three PINGs. */
#define PEER_PING_MIN_MS 1000u

struct peer_opts {
	uint32_t connect_ms;   /* TCP connect deadline (dialing side) */
	uint32_t handshake_ms; /* TLS handshake deadline */
	/* Keepalive, gRPC's rules (proposal A8): a PING goes out once nothing arrived from the
	 * peer for ping_interval_ms (0 = never), only while streams are open unless
	 * ping_without_calls; no ACK and nothing else within ping_timeout_ms: the peer is dead.
	 * The socket gets TCP keepalive and TCP_USER_TIMEOUT of ping_timeout_ms (sock.h), which
	 * find a vanished host or link in that time even where PINGs are rare. A peer's GOAWAY
	 * ENHANCE_YOUR_CALM "too_many_pings" doubles ping_interval_ms (peer_ping_interval). */
	uint32_t ping_interval_ms;
	uint32_t ping_timeout_ms;
	bool ping_without_calls;
	uint32_t drain_ms;   /* after GOAWAY either way: streams left this long, then
				    * the connection closes (never lingers half-closed) */
	uint32_t read_batch; /* decrypted bytes taken per readiness event (0 or above
				    * 256 KiB: 256 KiB) */
	struct h2_settings h2;
};

void peer_opts_default(struct peer_opts *o);

struct peer_cbs {
	/* TLS is up and the peer verified: call peer_start_h2() or peer_close(). */
	void (*on_ready)(struct peer *p, void *arg);
	/* Server role: a new request stream (see h2_session_cbs.on_request). */
	void (*on_request)(struct peer *p, struct h2_stream *st, const struct h2_nv *nv, size_t n,
			   bool end, void *arg);
	/* GOAWAY went either way (the peer drains, or we refused it more streams): open no new
	 * calls on it; it closes once its streams are done or drain_ms passed. Once per
	 * connection. */
	void (*on_goaway)(struct peer *p, void *arg);
	/* Optional: a probe (peer_probe) was answered: the peer has processed everything sent
	 * before it. */
	void (*on_probe_ack)(struct peer *p, void *arg);
	/* The connection is gone; p is freed when this returns. reason is borrowed. */
	void (*on_close)(struct peer *p, const char *reason, void *arg);
};

/* Adopts an accepted, non-blocking fd (owned from now on) and starts the TLS handshake as the
 * TLS server. NULL + errno (fd closed). */
struct peer *peer_accept(struct loop *l, struct tls_ctx *ctx, int fd, const char *addr,
			 const struct peer_opts *o, const struct peer_cbs *cbs, void *arg);

/* Dials addr:port (host order) with SO_MARK mark (0 = none) and runs the TLS handshake as the
 * TLS client; server_name (copied; NULL = the context's) is the name the server's certificate
 * must have (tls_conn_set_server_name). Failures arrive through on_close. NULL + errno only
 * if nothing could start. */
struct peer *peer_dial(struct loop *l, struct tls_ctx *ctx, uint32_t addr, uint16_t port,
		       const char *server_name, uint32_t mark, const struct peer_opts *o,
		       const struct peer_cbs *cbs, void *arg);

/* Starts HTTP/2: h2_server = accept streams (and expect the client preface). 0 or -errno. */
int peer_start_h2(struct peer *p, bool h2_server);

/* The session, once started (else NULL). Borrowed. */
struct h2_session *peer_session(struct peer *p);

/* The verified identity (after on_ready) and a printable "role/id@addr" name. Borrowed. */
const struct tls_identity *peer_identity(const struct peer *p);
const char *peer_name(const struct peer *p);

/* The connection-level receive window we grant the peer now (h2_settings.conn_window, raised to
 * the path's needs as data arrives). */
uint32_t peer_recv_window(const struct peer *p);

/* True from peer_close/peer_drain/GOAWAY on: open no new calls. */
bool peer_closing(const struct peer *p);

/* True once the session ended the peer for a flood (rapid reset, SETTINGS): GOAWAY
 * ENHANCE_YOUR_CALM, see h2_settings. Valid up to and during on_close. */
bool peer_flooded(const struct peer *p);

/* The peer said it drains within ms (a proxy's Drain message): when its GOAWAY arrives, its open
 * streams get that long (plus a second, at most PEER_DRAIN_MAX_MS) instead of our own drain_ms,
 * so the side that drains decides how long its tunnels may finish. */
#define PEER_DRAIN_MAX_MS (10u * 60 * 1000)
void peer_expect_drain(struct peer *p, uint32_t ms);

/* Asks the peer for a sign that it processed everything queued on the connection so far: a
 * PING sent once the frames queued now are written (after any PING still outstanding), whose
 * ACK can only come after the peer read them. Returns the probe's number; once
 * peer_probe_acked() reaches it, the peer answered (on_probe_ack runs on each answer). A
 * frame the session holds back (a stream above the peer's concurrency limit) is not covered.
 * The probe also serves as the liveness PING. */
uint64_t peer_probe(struct peer *p);
uint64_t peer_probe_acked(const struct peer *p);

/* The keepalive time now: ping_interval_ms, doubled for each too_many_pings GOAWAY the peer
 * sent. An owner that reconnects to the same peer passes it on (gRPC keeps the doubled time
 * for the channel). Valid up to and during on_close. */
uint32_t peer_ping_interval(const struct peer *p);

/* Sets the keepalive time before peer_start_h2 (e.g. once on_ready named the peer). */
void peer_set_ping_interval(struct peer *p, uint32_t ms);

/* Sends GOAWAY, lets open streams finish, closes when none are left or after ms. */
void peer_drain(struct peer *p, uint32_t ms, const char *reason);

/* Ends the connection: logs reason once, and on the next loop iteration frees the session
 * (every open stream hears on_close), the TLS state and the socket, then calls on_close. */
void peer_close(struct peer *p, const char *reason);

/* Per-peer owner data. */
void peer_set_data(struct peer *p, void *data);
void *peer_data(const struct peer *p);

/* Exponential backoff with jitter for reconnects: base doubles up to max; each delay is
 * uniformly drawn from [d/2, d]. */
struct backoff {
	uint32_t base_ms, max_ms, cur_ms;
};
void backoff_init(struct backoff *b, uint32_t base_ms, uint32_t max_ms);
uint32_t backoff_next(struct backoff *b);
void backoff_reset(struct backoff *b);

#endif
