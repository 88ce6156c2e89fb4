// SPDX-License-Identifier: MIT
/* Keeps one peer connection to the server alive: backoff from 250 ms doubling to 10 s, reset
 * once a connection has stayed up for 10 s so a flapping server is not hammered. A connection
 * that stops taking new calls (GOAWAY either way) is replaced at once while it drains. */
#include "uplink.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "daemon.h"
#include "log.h"
#include "loop.h"
#include "peer.h"
#include "sock.h"

#define UPLINK_BACKOFF_MIN 250
#define UPLINK_BACKOFF_MAX 10000
#define UPLINK_STABLE_MS   10000

struct uplink {
	struct daemon *d;
	bool h2_server;
	uint32_t mark;
	const struct uplink_cbs *cbs;
	void *arg;
	struct peer *p;
	struct peer *old; /* the connection p replaced, draining its streams */
	bool up;
	bool stopping;
	uint64_t up_since;
	struct backoff bo;
	struct loop_timer *redial;
	unsigned failures;
};

static void uplink_dial(struct uplink *u);

/* at_once: a connection that stayed up long enough is replaced without a delay. */
static void schedule_redial(struct uplink *u, bool at_once)
{
	uint32_t delay;

	if (u->stopping)
		return;
	if (u->up_since && loop_now_ms() - u->up_since >= UPLINK_STABLE_MS) {
		backoff_reset(&u->bo);
		if (at_once) {
			u->up_since = 0;
			log_info("replacing the connection to %s", u->d->cfg.server_addr);
			loop_timer_arm(u->redial, 0);
			return;
		}
	}
	u->up_since = 0;
	delay = backoff_next(&u->bo);
	log_write(u->failures++ < 3 || u->failures % 20 == 0 ? LOG_LVL_INFO : LOG_LVL_DEBUG, NULL,
		  NULL, "reconnecting to %s in %u ms", u->d->cfg.server_addr, delay);
	loop_timer_arm(u->redial, delay);
}

static void on_ready(struct peer *p, void *arg)
{
	struct uplink *u = arg;

	if (peer_start_h2(p, u->h2_server) < 0) {
		peer_close(p, "HTTP/2 setup failed");
		return;
	}
	u->up = true;
	u->up_since = loop_now_ms();
	u->failures = 0;
	log_write(LOG_LVL_INFO, NULL, peer_name(p), "connected to server");
	if (u->cbs->on_up)
		u->cbs->on_up(u, p, u->arg);
}

static void on_request(struct peer *p, struct h2_stream *st, const struct h2_nv *nv, size_t n,
		       bool end, void *arg)
{
	struct uplink *u = arg;

	if (u->cbs->on_request)
		u->cbs->on_request(u, st, nv, n, end, u->arg);
	else
		h2_stream_reset(st, H2_REFUSED_STREAM);
}

static void on_goaway(struct peer *p, void *arg)
{
	struct uplink *u = arg;

	/* GOAWAY either way: open calls finish on this connection (until its drain deadline)
	 * while a new one takes the new calls; a half-closed connection must not be all we
	 * have. (A second server would be dialed here once several are configured.) */
	log_write(LOG_LVL_INFO, NULL, peer_name(p), "connection takes no new calls; draining");
	if (p != u->p)
		return;
	if (u->old)
		peer_close(u->old, "replaced twice while draining");
	u->old = p;
	u->p = NULL;
	u->up = false;
	schedule_redial(u, true);
}

static void on_close(struct peer *p, const char *reason, void *arg)
{
	struct uplink *u = arg;

	if (p == u->old) {
		u->old = NULL;
		return;
	}
	u->p = NULL;
	u->up = false;
	if (u->cbs->on_down)
		u->cbs->on_down(u, reason, u->arg);
	schedule_redial(u, false);
}

static const struct peer_cbs uplink_peer_cbs = {
	.on_ready = on_ready,
	.on_request = on_request,
	.on_goaway = on_goaway,
	.on_close = on_close,
};

static void uplink_dial(struct uplink *u)
{
	uint32_t addr;
	uint16_t port;
	int rv;

	rv = sock_resolve(u->d->cfg.server_addr, &addr, &port);
	if (rv < 0) {
		log_warn("server address '%s': %s", u->d->cfg.server_addr, strerror(-rv));
		schedule_redial(u, false);
		return;
	}
	u->p = peer_dial(u->d->loop, u->d->tls, addr, port, u->mark, &u->d->popts, &uplink_peer_cbs,
			 u);
	if (!u->p) {
		log_warn("dial %s: %s", u->d->cfg.server_addr, strerror(errno));
		schedule_redial(u, false);
	}
}

static void redial_fire(struct loop_timer *t, void *arg)
{
	uplink_dial(arg);
}

struct uplink *uplink_new(struct daemon *d, bool h2_server, uint32_t mark,
			  const struct uplink_cbs *cbs, void *arg)
{
	struct uplink *u = calloc(1, sizeof(*u));

	if (!u)
		fatal("out of memory");
	u->d = d;
	u->h2_server = h2_server;
	u->mark = mark;
	u->cbs = cbs;
	u->arg = arg;
	backoff_init(&u->bo, UPLINK_BACKOFF_MIN, UPLINK_BACKOFF_MAX);
	u->redial = loop_timer_new(d->loop, redial_fire, u);
	if (!u->redial)
		fatal("out of memory");
	uplink_dial(u);
	return u;
}

struct peer *uplink_peer(struct uplink *u)
{
	return u->up && u->p && !peer_closing(u->p) ? u->p : NULL;
}

void uplink_stop(struct uplink *u, uint32_t ms)
{
	u->stopping = true;
	loop_timer_cancel(u->redial);
	if (u->p)
		peer_drain(u->p, ms, "shutting down");
	if (u->old)
		peer_drain(u->old, ms, "shutting down");
}

bool uplink_stopped(const struct uplink *u)
{
	return u->stopping && !u->p && !u->old;
}

void uplink_free(struct uplink *u)
{
	if (!u)
		return;
	loop_timer_free(u->redial);
	free(u);
}
