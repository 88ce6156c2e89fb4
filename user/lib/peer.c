// SPDX-License-Identifier: MIT
/* The I/O driver of a TLS + HTTP/2 connection: reads records into the session, writes what the
 * session produces, keeps the handshake and PING deadlines. Service logic lives with the
 * daemons (through on_request and the calls they open on peer_session()). */
#include "peer.h"

#include <errno.h>
#include <linux/tcp.h> /* struct tcp_info with tcpi_min_rtt (glibc's stops short of it) */
#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "buf.h"
#include "log.h"
#include "loop.h"
#include "route.h"
#include "sock.h"
#include "tls.h"

#define PEER_OUT_LIMIT	 (128 * 1024) /* session output gathered per write burst */
#define PEER_READ_BATCH	 (256 * 1024) /* decrypted bytes read per readiness event, then yield */
#define PEER_PING_MAX_MS (24u * 3600 * 1000) /* too_many_pings doubles the keepalive up to this */
#define PEER_WINDOW_MS	 50 /* the receive rate behind the connection window, measured this long */

enum peer_state { PS_CONNECTING, PS_HANDSHAKE, PS_READY, PS_RUNNING, PS_CLOSED };

struct peer {
	struct loop *loop;
	struct tls_ctx *ctx;
	struct tls_conn *tls;
	struct h2_session *h2;
	int fd;
	enum peer_state state;
	struct peer_opts opts;
	const struct peer_cbs *cbs;
	void *arg;
	void *data;
	struct loop_io *io;
	struct loop_timer *flush_task; /* deferred send */
	struct loop_timer *close_task;
	struct loop_timer *deadline; /* connect/handshake deadline, then drain deadline */
	struct loop_timer *ping_timer;
	struct buf out;
	bool write_blocked; /* TLS wants writability before more output */
	bool sink_full;	    /* the sink turned a DATA frame away: records wait for the socket */
	int sink_err;	    /* TLS's fatal -errno from the sink, reported by peer_flush */
	bool closing, draining, goaway_seen;
	bool goaway_told;	/* on_goaway ran */
	uint32_t peer_drain_ms; /* the drain the peer announced (peer_expect_drain), 0 = none */
	bool flooded;		/* the session ended the peer for a flood (ENHANCE_YOUR_CALM) */
	bool ping_outstanding;
	bool ping_probe; /* the outstanding PING is a probe (peer_probe) */
	bool probe_want; /* a probe is asked for: send it after the next flush */
	uint64_t probe_sent, probe_acked;
	bool read_again; /* stopped reading at the budget: resume from the flush task */
	uint64_t ping_sent;
	uint64_t last_rx;	     /* when bytes last arrived from the peer */
	uint64_t rx_bytes, rx_since; /* received since rx_since (ms), for the window's size */
	uint32_t conn_window;	     /* the connection window we grant */
	char reason[160];
	char fatal[160]; /* a protocol error: the close reason once the GOAWAY went out */
	char name[200];
	char addr[32];
};

void peer_opts_default(struct peer_opts *o)
{
	o->connect_ms = 5000;
	o->handshake_ms = 10000;
	o->ping_interval_ms = PEER_KEEPALIVE_MS;
	o->ping_timeout_ms = PEER_KEEPALIVE_TIMEOUT_MS;
	o->drain_ms = 5000;
	h2_settings_default(&o->h2);
}

static void peer_flush(struct peer *p);
static void peer_update_io(struct peer *p);

static void on_ping_ack(void *arg)
{
	struct peer *p = arg;

	p->ping_outstanding = false;
	/* The next PING is due a keepalive time after this answer, not at the timeout. */
	if (p->opts.ping_interval_ms && p->state == PS_RUNNING)
		loop_timer_arm(p->ping_timer, p->opts.ping_interval_ms);
	if (p->ping_probe) {
		p->ping_probe = false;
		p->probe_acked = p->probe_sent;
		if (p->probe_want)
			loop_timer_now(p->flush_task);
		if (p->cbs->on_probe_ack)
			p->cbs->on_probe_ack(p, p->arg);
	}
}

uint64_t peer_probe(struct peer *p)
{
	if (!p->probe_want) {
		p->probe_want = true;
		if (p->state == PS_RUNNING)
			loop_timer_now(p->flush_task);
	}
	return p->probe_sent + 1;
}

uint64_t peer_probe_acked(const struct peer *p)
{
	return p->probe_acked;
}

/* No new streams either way: let the open ones finish within drain_ms, then close, and tell
 * the owner so that it can replace the connection. */
static void drain_start(struct peer *p)
{
	if (!p->draining) {
		p->draining = true;
		loop_timer_arm(p->deadline, p->goaway_seen && p->peer_drain_ms > p->opts.drain_ms
						    ? p->peer_drain_ms
						    : p->opts.drain_ms);
	}
	if (!p->goaway_told && p->cbs->on_goaway) {
		p->goaway_told = true;
		p->cbs->on_goaway(p, p->arg);
	}
}

static void on_goaway(void *arg, uint32_t last, uint32_t code, bool too_many_pings)
{
	struct peer *p = arg;

	p->goaway_seen = true;
	log_write(code ? LOG_LVL_WARN : LOG_LVL_INFO, NULL, p->name,
		  "peer sent GOAWAY (code %u, last stream %u)%s", code, last,
		  too_many_pings ? " too_many_pings" : "");
	if (too_many_pings && p->opts.ping_interval_ms) {
		/* gRPC (A8): the peer allows fewer PINGs than we sent; double the keepalive time
		 * for this and the next connections to it. */
		p->opts.ping_interval_ms = p->opts.ping_interval_ms > PEER_PING_MAX_MS / 2
						   ? PEER_PING_MAX_MS
						   : p->opts.ping_interval_ms * 2;
		log_write(LOG_LVL_WARN, NULL, p->name, "keepalive time doubled to %u ms",
			  p->opts.ping_interval_ms);
	}
	drain_start(p);
}

static void on_goaway_sent(void *arg, uint32_t code)
{
	struct peer *p = arg;

	if (code)
		log_write(LOG_LVL_WARN, NULL, p->name, "sent GOAWAY (code %u)", code);
	if (!p->closing)
		drain_start(p);
}

static void on_request(void *arg, struct h2_stream *st, const struct h2_nv *nv, size_t n, bool end)
{
	struct peer *p = arg;

	if (p->closing || !p->cbs->on_request) {
		h2_stream_reset(st, H2_REFUSED_STREAM);
		return;
	}
	p->cbs->on_request(p, st, nv, n, end, p->arg);
}

static void on_kick(void *arg)
{
	struct peer *p = arg;

	if (p->state == PS_RUNNING)
		loop_timer_now(p->flush_task);
}

static const struct h2_session_cbs peer_h2_cbs = {
	.on_request = on_request,
	.on_ping_ack = on_ping_ack,
	.on_goaway = on_goaway,
	.on_kick = on_kick,
	.on_goaway_sent = on_goaway_sent,
};

static void close_task(struct loop_timer *t, void *arg)
{
	struct peer *p = arg;

	/* Freeing the session closes every open stream; their owners hear on_close. */
	h2_session_free(p->h2);
	p->h2 = NULL;
	if (p->tls)
		tls_close_notify(p->tls);
	tls_conn_free(p->tls);
	loop_io_free(p->io);
	if (p->fd >= 0)
		close(p->fd);
	loop_timer_free(p->flush_task);
	loop_timer_free(p->deadline);
	loop_timer_free(p->ping_timer);
	buf_release(&p->out);
	if (p->cbs->on_close)
		p->cbs->on_close(p, p->reason, p->arg);
	loop_timer_free(p->close_task);
	free(p);
}

void peer_close(struct peer *p, const char *reason)
{
	if (p->closing && p->state == PS_CLOSED)
		return;
	p->closing = true;
	p->state = PS_CLOSED;
	snprintf(p->reason, sizeof(p->reason), "%s", reason);
	log_write(LOG_LVL_INFO, NULL, p->name, "connection closed: %s", reason);
	loop_io_set(p->io, 0);
	loop_timer_cancel(p->deadline);
	loop_timer_cancel(p->ping_timer);
	loop_timer_cancel(p->flush_task);
	loop_timer_now(p->close_task);
}

bool peer_flooded(const struct peer *p)
{
	return p->flooded;
}

bool peer_closing(const struct peer *p)
{
	return p->closing || p->draining || p->goaway_seen;
}

static void set_name(struct peer *p)
{
	const struct tls_identity *id = p->tls ? tls_peer(p->tls) : NULL;

	if (id && id->role != TLS_ROLE_NONE)
		snprintf(p->name, sizeof(p->name), "%s/%s@%s", tls_role_name(id->role), id->id,
			 p->addr);
	else
		snprintf(p->name, sizeof(p->name), "%s", p->addr);
}

static void deadline_fire(struct loop_timer *t, void *arg)
{
	struct peer *p = arg;

	switch (p->state) {
	case PS_CONNECTING:
		peer_close(p, "connect timeout");
		break;
	case PS_HANDSHAKE:
	case PS_READY:
		peer_close(p, "TLS handshake timeout");
		break;
	default:
		if (p->draining)
			peer_close(p, "drain deadline reached");
		break;
	}
}

static void ping_fire(struct loop_timer *t, void *arg)
{
	struct peer *p = arg;
	uint64_t now = loop_now_ms(), quiet;
	uint64_t since = now - (p->last_rx > p->ping_sent ? p->last_rx : p->ping_sent);

	if (p->ping_outstanding) {
		/* The ACK queues behind whatever the peer is sending us: a peer whose bytes keep
		 * arriving is alive, only a silent one is dead. */
		quiet = now - (p->last_rx > p->ping_sent ? p->last_rx : p->ping_sent);
		if (quiet >= p->opts.ping_timeout_ms) {
			peer_close(p, "PING timeout: peer unresponsive");
			return;
		}
		loop_timer_arm(p->ping_timer, p->opts.ping_timeout_ms - quiet);
		return;
	}
	/* gRPC keepalive: only after ping_interval_ms with nothing from the peer (what arrives
	 * shows it alive; grpc-go servers count PINGs, not bytes), and not on a connection
	 * without calls unless allowed (a grpc-go server wants two hours between those). */
	if (since < p->opts.ping_interval_ms) {
		loop_timer_arm(p->ping_timer, p->opts.ping_interval_ms - since);
		return;
	}
	if (!p->opts.ping_without_calls && h2_session_streams(p->h2) == 0) {
		loop_timer_arm(p->ping_timer, p->opts.ping_interval_ms);
		return;
	}
	if (h2_session_ping(p->h2) == 0) {
		p->ping_outstanding = true;
		p->ping_sent = now;
	}
	loop_timer_arm(p->ping_timer, p->opts.ping_timeout_ms);
}

static void peer_read(struct peer *p);

/* The smallest round trip the kernel saw on the connection (µs), 0 if unknown. The peer's
 * kernel acknowledges our segments as they arrive, whatever its process is doing, so this is
 * the path's own delay, without the queues. */
static uint32_t min_rtt_us(int fd)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);

	memset(&ti, 0, sizeof(ti));
	if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) < 0 ||
	    len < offsetof(struct tcp_info, tcpi_min_rtt) + sizeof(ti.tcpi_min_rtt))
		return 0;
	return ti.tcpi_min_rtt;
}

/* Counts what arrived and, every PEER_WINDOW_MS, lets the session size its connection window
 * to the rate and the path's round trip (h2_session_tune_window): a long path gets the window
 * it needs to be filled, a short one keeps the queue in its sockets small. */
static void window_tune(struct peer *p, size_t n)
{
	uint64_t now = p->last_rx, ms;
	uint32_t rtt;

	p->rx_bytes += n;
	ms = now - p->rx_since;
	if (ms < PEER_WINDOW_MS)
		return;
	rtt = p->rx_since ? min_rtt_us(p->fd) : 0;
	if (rtt) {
		uint64_t rate = p->rx_bytes * 1000 / ms;
		uint32_t w = h2_session_tune_window(p->h2, rate, rtt);

		if (w > p->conn_window) {
			/* a few lines per connection: each step is a quarter or more */
			log_write(
				LOG_LVL_INFO, NULL, p->name,
				"receive window raised to %u bytes (%llu bytes/s, path RTT %u us)",
				w, (unsigned long long)rate, rtt);
			p->conn_window = w;
		}
	}
	p->rx_bytes = 0;
	p->rx_since = now;
}

static void flush_task(struct loop_timer *t, void *arg)
{
	struct peer *p = arg;

	if (p->read_again) {
		p->read_again = false;
		peer_read(p); /* flushes too */
		return;
	}
	peer_flush(p);
}

/* DATA frames are sealed into TLS records straight from where their owners keep them (the
 * socket end's read buffer, the other session's receive queue): copying them into out first
 * was one more pass over every byte. */
static ssize_t peer_sink(void *arg, const struct iovec *iov, int n)
{
	struct peer *p = arg;
	ssize_t w = tls_writev(p->tls, iov, n);

	if (w == -EAGAIN)
		p->sink_full = true;
	else if (w < 0)
		p->sink_err = (int)w;
	return w;
}

/* Writes out what we hold and what the session has, until TLS would block. */
static void peer_flush(struct peer *p)
{
	ssize_t w;
	int rv;

	if (p->state != PS_RUNNING || p->write_blocked)
		return;
	for (;;) {
		if (buf_len(&p->out) < PEER_OUT_LIMIT) {
			p->sink_full = false;
			rv = h2_session_send(p->h2, &p->out, PEER_OUT_LIMIT);
			if (p->sink_err)
				goto fail;
			if (rv < 0) {
				char why[96];

				snprintf(why, sizeof(why), "HTTP/2 send: %s", h2_strerror(rv));
				peer_close(p, why);
				return;
			}
			/* The session ran dry: what was queued before the probe is in out or
			 * written, so the PING goes after it (PINGs jump nghttp2's queue). */
			if (p->probe_want && !p->ping_outstanding &&
			    buf_len(&p->out) < PEER_OUT_LIMIT && h2_session_ping(p->h2) == 0) {
				p->probe_want = false;
				p->ping_outstanding = true;
				p->ping_probe = true;
				p->probe_sent++;
				p->ping_sent = loop_now_ms();
				continue;
			}
		}
		if (buf_len(&p->out) == 0) {
			/* Records the socket did not take yet wait inside TLS. */
			w = tls_write_pending(p->tls) ? tls_flush(p->tls) : 0;
			if (w == -EAGAIN)
				p->write_blocked = true;
			else if (w < 0)
				goto fail;
			else if (p->sink_full)
				continue; /* the socket took them all: the session has more */
			break;
		}
		w = tls_write(p->tls, buf_head(&p->out), buf_len(&p->out));
		if (w == -EAGAIN) {
			p->write_blocked = true;
			break;
		}
		if (w < 0)
			goto fail;
		buf_consume(&p->out, (size_t)w);
	}
	peer_update_io(p);
	if (p->fatal[0])
		return; /* the reader closes with the reason */
	if (!h2_session_want_read(p->h2) && !h2_session_want_write(p->h2) && buf_len(&p->out) == 0)
		peer_close(p, p->goaway_seen || p->draining ? "drained" : "session finished");
	else if (p->draining && h2_session_streams(p->h2) == 0 && buf_len(&p->out) == 0)
		peer_close(p, "drained");
	return;
fail : {
	char why[400];

	snprintf(why, sizeof(why), "TLS write: %s", tls_error(p->tls));
	peer_close(p, why);
}
}

static void peer_update_io(struct peer *p)
{
	unsigned ev = LOOP_READ;

	if (p->state == PS_CONNECTING) {
		ev = LOOP_WRITE;
	} else if (p->state == PS_HANDSHAKE) {
		ev = tls_want(p->tls) & TLS_WANT_WRITE ? LOOP_WRITE : LOOP_READ;
	} else if (p->write_blocked) {
		ev |= LOOP_WRITE;
	}
	loop_io_set(p->io, ev);
}

/* One batch per readiness event: a full one may leave records inside TLS, invisible to poll,
 * so the peer comes back from the flush task after the others had their turn. */
static void peer_read_into(struct peer *p, uint8_t *rb, size_t rbsize)
{
	size_t fill;
	ssize_t n = 0;
	int rv;

	/* Gather several records before handing them to nghttp2: bigger DATA pieces mean fewer
	 * callbacks and fewer, larger writes to the socket they go to. */
	for (fill = 0; fill < rbsize; fill += (size_t)n) {
		n = tls_read(p->tls, rb + fill, rbsize - fill);
		if (n <= 0)
			break;
	}
	if (fill) {
		p->last_rx = loop_now_ms();
		window_tune(p, fill);
		rv = h2_session_recv(p->h2, rb, fill);
		if (rv < 0) {
			snprintf(p->fatal, sizeof(p->fatal), "HTTP/2 protocol error: %s",
				 h2_strerror(rv));
			p->flooded = rv == H2_ERR_CALM;
			/* Let nghttp2's GOAWAY go out before closing. */
			peer_flush(p);
			peer_close(p, p->fatal);
			return;
		}
	}
	if (p->state == PS_RUNNING && fill == rbsize) {
		p->read_again = true;
		loop_timer_now(p->flush_task);
	} else if (p->state == PS_RUNNING && n == 0) {
		peer_close(p, "peer closed the connection");
		return;
	} else if (p->state == PS_RUNNING && n < 0 && n != -EAGAIN) {
		char why[400];

		snprintf(why, sizeof(why), "TLS read: %s", tls_error(p->tls));
		peer_close(p, why);
		return;
	}
	peer_flush(p);
}

static void peer_read(struct peer *p)
{
	/* One batch buffer per loop thread (a daemon runs one). It is large so that streams
	 * interleaved on one connection still leave in one write each: with 64 KiB, eight
	 * streams through a client made a 16 KiB write to their apps per DATA frame. */
	static _Thread_local uint8_t rb[PEER_READ_BATCH];
	static _Thread_local bool busy;

	if (busy) {
		/* Nothing a read calls reads another peer today; if that changes, wait a turn. */
		p->read_again = true;
		loop_timer_now(p->flush_task);
		return;
	}
	busy = true;
	peer_read_into(p, rb,
		       p->opts.read_batch && p->opts.read_batch < sizeof(rb) ? p->opts.read_batch
									     : sizeof(rb));
	busy = false;
}

static void peer_handshake(struct peer *p)
{
	int rv = tls_handshake(p->tls);

	if (rv == -EAGAIN) {
		peer_update_io(p);
		return;
	}
	if (rv < 0) {
		char why[240];

		snprintf(why, sizeof(why), "TLS handshake failed: %s", tls_error(p->tls));
		peer_close(p, why);
		return;
	}
	loop_timer_cancel(p->deadline);
	p->state = PS_READY;
	set_name(p);
	log_write(LOG_LVL_INFO, NULL, p->name, "TLS established (kernel TLS: %s)",
		  (const char *[]){"no", "send", "receive", "both"}[tls_ktls(p->tls) & 3]);
	p->cbs->on_ready(p, p->arg);
	if (p->state == PS_READY)
		loop_timer_arm(p->deadline, p->opts.handshake_ms); /* owner must decide */
}

static void peer_io(struct loop_io *io, unsigned events, void *arg)
{
	struct peer *p = arg;
	int err;

	switch (p->state) {
	case PS_CONNECTING:
		err = sock_connect_result(p->fd);
		if (err) {
			char why[96];

			snprintf(why, sizeof(why), "connect failed: %s", strerror(-err));
			peer_close(p, why);
			return;
		}
		p->state = PS_HANDSHAKE;
		loop_timer_arm(p->deadline, p->opts.handshake_ms);
		peer_handshake(p);
		break;
	case PS_HANDSHAKE:
		peer_handshake(p);
		break;
	case PS_RUNNING:
		if (events & LOOP_WRITE) {
			p->write_blocked = false;
			peer_flush(p);
		}
		/* records may wait inside TLS for a write it had to finish first (kernel TLS) */
		if ((events & LOOP_READ) || (p->state == PS_RUNNING && tls_pending(p->tls)))
			peer_read(p);
		break;
	default:
		loop_io_set(io, 0);
		break;
	}
}

static struct peer *peer_alloc(struct loop *l, struct tls_ctx *ctx, int fd,
			       const struct peer_opts *o, const struct peer_cbs *cbs, void *arg)
{
	struct peer *p = calloc(1, sizeof(*p));

	if (!p)
		return NULL;
	p->loop = l;
	p->ctx = ctx;
	p->fd = fd;
	p->opts = *o;
	p->conn_window = o->h2.conn_window;
	p->cbs = cbs;
	p->arg = arg;
	buf_init(&p->out);
	p->io = loop_io_new(l, fd, peer_io, p);
	p->flush_task = loop_timer_new(l, flush_task, p);
	p->close_task = loop_timer_new(l, close_task, p);
	p->deadline = loop_timer_new(l, deadline_fire, p);
	p->ping_timer = loop_timer_new(l, ping_fire, p);
	/* Best effort: the PINGs still work without it. */
	(void)sock_set_keepalive(fd, o->ping_timeout_ms);
	if (!p->io || !p->flush_task || !p->close_task || !p->deadline || !p->ping_timer) {
		loop_io_free(p->io);
		loop_timer_free(p->flush_task);
		loop_timer_free(p->close_task);
		loop_timer_free(p->deadline);
		loop_timer_free(p->ping_timer);
		free(p);
		errno = ENOMEM;
		return NULL;
	}
	return p;
}

struct peer *peer_accept(struct loop *l, struct tls_ctx *ctx, int fd, const char *addr,
			 const struct peer_opts *o, const struct peer_cbs *cbs, void *arg)
{
	struct peer *p = peer_alloc(l, ctx, fd, o, cbs, arg);

	if (!p) {
		close(fd);
		return NULL;
	}
	snprintf(p->addr, sizeof(p->addr), "%s", addr);
	set_name(p);
	p->tls = tls_conn_new(ctx, fd);
	if (!p->tls) {
		p->state = PS_HANDSHAKE;
		peer_close(p, "TLS setup failed");
		return p;
	}
	p->state = PS_HANDSHAKE;
	loop_timer_arm(p->deadline, o->handshake_ms);
	peer_handshake(p);
	return p;
}

struct peer *peer_dial(struct loop *l, struct tls_ctx *ctx, uint32_t addr, uint16_t port,
		       const char *server_name, uint32_t mark, const struct peer_opts *o,
		       const struct peer_cbs *cbs, void *arg)
{
	struct peer *p;
	int fd = sock_connect(addr, port, mark);

	if (fd < 0) {
		errno = -fd;
		return NULL;
	}
	p = peer_alloc(l, ctx, fd, o, cbs, arg);
	if (!p) {
		close(fd);
		return NULL;
	}
	ipport_format(addr, port, p->addr, sizeof(p->addr));
	set_name(p);
	p->state = PS_CONNECTING;
	/* The TLS state now, while the caller's context is alive: it holds its own reference,
	 * so a reload that replaces the context during the connect frees nothing it uses. */
	p->tls = tls_conn_new(ctx, fd);
	if (!p->tls) {
		peer_close(p, "TLS setup failed");
		return p;
	}
	if (server_name && tls_conn_set_server_name(p->tls, server_name) < 0) {
		peer_close(p, "TLS setup failed: bad server name");
		return p;
	}
	loop_timer_arm(p->deadline, o->connect_ms);
	peer_update_io(p);
	return p;
}

int peer_start_h2(struct peer *p, bool h2_server)
{
	if (p->state != PS_READY)
		return -EINVAL;
	p->h2 = h2_session_new(h2_server, &p->opts.h2, &peer_h2_cbs, p);
	if (!p->h2)
		return -ENOMEM;
	h2_session_set_sink(p->h2, peer_sink, p);
	loop_timer_cancel(p->deadline);
	p->state = PS_RUNNING;
	p->ping_sent = loop_now_ms();
	if (p->opts.ping_interval_ms)
		loop_timer_arm(p->ping_timer, p->opts.ping_interval_ms);
	peer_update_io(p);
	peer_flush(p);
	/* TLS may already hold decrypted bytes that arrived with the handshake. */
	peer_read(p);
	return 0;
}

struct h2_session *peer_session(struct peer *p)
{
	return p->state == PS_RUNNING ? p->h2 : NULL;
}

const struct tls_identity *peer_identity(const struct peer *p)
{
	return p->tls ? tls_peer(p->tls) : NULL;
}

const char *peer_name(const struct peer *p)
{
	return p->name;
}

void peer_drain(struct peer *p, uint32_t ms, const char *reason)
{
	if (p->closing)
		return;
	if (p->state != PS_RUNNING) {
		peer_close(p, reason);
		return;
	}
	if (!p->draining) {
		p->draining = true;
		log_write(LOG_LVL_INFO, NULL, p->name, "draining: %s", reason);
		h2_session_goaway(p->h2, H2_NO_ERROR, reason);
		loop_timer_arm(p->deadline, ms);
	}
	loop_timer_now(p->flush_task);
}

void peer_expect_drain(struct peer *p, uint32_t ms)
{
	/* The peer enforces its own deadline; ours only backs it up, a second later. */
	ms = ms > PEER_DRAIN_MAX_MS ? PEER_DRAIN_MAX_MS : ms;
	p->peer_drain_ms = ms + 1000;
	if (p->draining && p->goaway_seen && !p->closing)
		loop_timer_arm(p->deadline, p->peer_drain_ms);
}

uint32_t peer_ping_interval(const struct peer *p)
{
	return p->opts.ping_interval_ms;
}

void peer_set_ping_interval(struct peer *p, uint32_t ms)
{
	p->opts.ping_interval_ms = ms;
}

void peer_set_data(struct peer *p, void *data)
{
	p->data = data;
}

void *peer_data(const struct peer *p)
{
	return p->data;
}

void backoff_init(struct backoff *b, uint32_t base_ms, uint32_t max_ms)
{
	b->base_ms = base_ms;
	b->max_ms = max_ms;
	b->cur_ms = base_ms;
}

uint32_t backoff_next(struct backoff *b)
{
	uint32_t d = b->cur_ms;

	b->cur_ms = b->cur_ms * 2 > b->max_ms ? b->max_ms : b->cur_ms * 2;
	return d / 2 + (uint32_t)(random() % (d / 2 + 1));
}

void backoff_reset(struct backoff *b)
{
	b->cur_ms = b->base_ms;
}
