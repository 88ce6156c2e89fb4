// SPDX-License-Identifier: MIT
/* Keeps one peer connection to a server alive: backoff from 250 ms doubling to 10 s, reset
 * once a connection has stayed up for 2 s so a flapping server is not hammered. A connection
 * that stops taking new calls (GOAWAY either way) is replaced at once while it drains. With
 * several servers, a failed or draining one is left for the next at once; only a whole round
 * of failures waits. */
#include "uplink.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "daemon.h"
#include "log.h"
#include "loop.h"
#include "peer.h"
#include "route.h"
#include "sock.h"
#include "tls.h"

#define UPLINK_BACKOFF_MIN 250
#define UPLINK_BACKOFF_MAX 10000
/* Longer than a server that accepts and drops at once keeps a connection, shorter than the
 * gaps between real failures: with 10 s, a proxy whose connection had carried tunnels for 5 s
 * waited 3.6 s to redial after the next failure (a backoff left over from the one before). */
#define UPLINK_STABLE_MS 2000
/* For the first 30 s of an outage redials come at most 1 s apart, so a server restarted (or a
 * link back) is found again within about a second; only a longer outage backs off to 10 s. A
 * server that is down refuses a SYN for next to nothing; with the 10 s cap alone, a server
 * down for 2.5 s was redialled only 3.9 s after it listened again. */
#define UPLINK_FAST_MS	30000
#define UPLINK_FAST_MAX 1000
/* A refusal comes back the same until someone changes a configuration: at most a few
 * attempts a minute at first, then one every few minutes (the server logs each one). */
#define UPLINK_REFUSED_MIN 4000
#define UPLINK_REFUSED_MAX 300000

struct uplink {
	struct daemon *d;
	bool h2_server;
	uint32_t mark;
	const struct uplink_cbs *cbs;
	void *arg;
	bool fixed;		 /* t[0] for good; else d->cfg's servers */
	struct uplink_target *t; /* in the order they are tried */
	size_t n, cur;		 /* cur: the server of p, or the next to dial */
	size_t tried;		 /* servers that failed in a row since one came up */
	bool resolve;		 /* resolve the servers again before the next dial */
	uint64_t key;		 /* hash of our identity: orders the servers */
	struct peer *p;
	struct peer *old; /* the connection p replaced, draining its streams */
	bool up;
	bool stopping;
	bool refused;
	uint64_t up_since;
	uint64_t down_since; /* the outage's first failed redial, 0 while up */
	struct backoff bo, refused_bo;
	struct loop_timer *redial;
	unsigned failures;
	uint32_t ping_ms; /* keepalive time a server's too_many_pings doubled to, 0 = config's */
};

/* A server said too_many_pings: its doubled keepalive time stays for the next connections. */
static void keep_ping_interval(struct uplink *u, struct peer *p)
{
	if (peer_ping_interval(p) > u->d->popts.ping_interval_ms)
		u->ping_ms = peer_ping_interval(p);
}

static void uplink_dial(struct uplink *u);

/* ---- servers ---- */

bool uplink_target_eq(const struct uplink_target *a, const struct uplink_target *b)
{
	return a->addr == b->addr && a->port == b->port && !strcmp(a->name, b->name);
}

int uplink_resolve(const struct config *cfg, struct uplink_target **out, bool *all)
{
	struct uplink_target *t = NULL;
	uint32_t addrs[UPLINK_MAX_TARGETS];
	char ip[24];
	size_t n = 0;

	*out = NULL;
	if (all)
		*all = true;
	for (size_t e = 0; e < cfg->n_server_addr && n < UPLINK_MAX_TARGETS; e++) {
		const char *entry = cfg->server_addr[e];
		uint16_t port;
		int k = sock_resolve_all(entry, addrs, UPLINK_MAX_TARGETS - n, &port);

		if (k < 0) {
			log_warn("server address '%s': %s", entry, strerror(-k));
			if (all)
				*all = false;
			continue;
		}
		if (!t && !(t = calloc(UPLINK_MAX_TARGETS, sizeof(*t))))
			return -ENOMEM;
		for (int i = 0; i < k; i++) {
			struct uplink_target *x = &t[n];
			const char *name;
			size_t j;

			memset(x, 0, sizeof(*x));
			x->addr = addrs[i];
			x->port = port;
			name = daemon_server_name(cfg, entry, x->name, sizeof(x->name));
			if (!name)
				continue;
			if (name != x->name)
				snprintf(x->name, sizeof(x->name), "%s", name);
			ipport_format(x->addr, x->port, ip, sizeof(ip));
			if (!strcmp(ip, entry))
				snprintf(x->label, sizeof(x->label), "%s", entry);
			else
				snprintf(x->label, sizeof(x->label), "%s at %s", entry, ip);
			for (j = 0; j < n && !uplink_target_eq(&t[j], x); j++)
				;
			if (j == n)
				n++;
		}
	}
	if (!n) {
		free(t);
		t = NULL;
	}
	*out = t;
	return (int)n;
}

/* FNV-1a over bytes, continuing from h. */
static uint64_t fnv1a(uint64_t h, const void *p, size_t n)
{
	const unsigned char *b = p;

	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 0x100000001b3ull;
	return h;
}

static uint64_t target_weight(uint64_t key, const struct uplink_target *t)
{
	uint8_t b[6] = {t->addr >> 24, t->addr >> 16, t->addr >> 8, t->addr, t->port >> 8, t->port};
	uint64_t h = fnv1a(key, b, sizeof(b));

	/* fmix64 (MurmurHash3): FNV alone leaves the last byte's effect in the low bits. */
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 33;
	return h;
}

/* Resolves cfg's servers and orders them by weight, highest first. When none resolves, the
 * ones known are kept. */
static void targets_update(struct uplink *u, const struct config *cfg)
{
	struct uplink_target *t, tmp;
	int n = uplink_resolve(cfg, &t, NULL), j;

	u->resolve = false;
	if (n <= 0) {
		if (n < 0)
			log_warn("resolving servers: %s", strerror(-n));
		return;
	}
	/* Insertion sort: a handful of servers. */
	for (int i = 1; i < n; i++) {
		tmp = t[i];
		j = i - 1;
		while (j >= 0 && target_weight(u->key, &t[j]) < target_weight(u->key, &tmp)) {
			t[j + 1] = t[j];
			j--;
		}
		t[j + 1] = tmp;
	}
	free(u->t);
	u->t = t;
	u->n = (size_t)n;
	u->cur = 0;
}

const struct uplink_target *uplink_target(const struct uplink *u)
{
	return u->n ? &u->t[u->cur] : NULL;
}

static const char *cur_label(const struct uplink *u)
{
	return u->n ? u->t[u->cur].label : "server";
}

/* ---- redial ---- */

/* The same server again after a delay. at_once: a connection that stayed up long enough is
 * replaced without one. */
static void schedule_redial(struct uplink *u, bool at_once)
{
	uint32_t delay;

	if (u->stopping)
		return;
	if (u->up_since && loop_now_ms() - u->up_since >= UPLINK_STABLE_MS) {
		backoff_reset(&u->bo);
		backoff_reset(&u->refused_bo);
		u->refused = false;
		/* Only a connection that stayed up ends the outage: one the server closes right
		 * after the handshake (a cool-down, a revoked id) keeps backing off to 10 s. */
		u->down_since = 0;
		u->failures = 0;
		if (at_once) {
			u->up_since = 0;
			log_info("replacing the connection to %s", cur_label(u));
			loop_timer_arm(u->redial, 0);
			return;
		}
	}
	u->up_since = 0;
	delay = backoff_next(u->refused ? &u->refused_bo : &u->bo);
	if (!u->down_since)
		u->down_since = loop_now_ms();
	if (!u->refused && delay > UPLINK_FAST_MAX &&
	    loop_now_ms() - u->down_since < UPLINK_FAST_MS)
		delay = UPLINK_FAST_MAX / 2 + (uint32_t)(random() % (UPLINK_FAST_MAX / 2 + 1));
	log_write(u->failures++ < 3 || u->failures % 20 == 0 ? LOG_LVL_INFO : LOG_LVL_DEBUG, NULL,
		  NULL, "reconnecting to %s in %u ms", cur_label(u), delay);
	loop_timer_arm(u->redial, delay);
}

/* The current server failed (or drains): true if the next one is to be dialed at once, false
 * when every server failed in a row (back off, then start over from the first). */
static bool move_on(struct uplink *u)
{
	if (u->fixed || u->n <= 1 || u->stopping)
		return false;
	if (++u->tried >= u->n) {
		u->tried = 0;
		u->cur = 0;
		u->resolve = true;
		return false;
	}
	u->cur = (u->cur + 1) % u->n;
	log_info("trying the next server: %s", cur_label(u));
	loop_timer_arm(u->redial, 0);
	return true;
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
	u->tried = 0;
	log_write(LOG_LVL_INFO, NULL, peer_name(p), "connected to server %s", cur_label(u));
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

/* p stops taking new calls: it drains as u->old while a new connection takes them. */
static void retire(struct uplink *u, struct peer *p)
{
	if (u->old)
		peer_close(u->old, "replaced twice while draining");
	u->old = p;
	u->p = NULL;
	u->up = false;
}

static void on_goaway(struct peer *p, void *arg)
{
	struct uplink *u = arg;

	/* GOAWAY either way: open calls finish on this connection (until its drain deadline)
	 * while a new one takes the new calls, on the next server if there is one; a
	 * half-closed connection must not be all we have. */
	log_write(LOG_LVL_INFO, NULL, peer_name(p), "connection takes no new calls; draining");
	keep_ping_interval(u, p);
	if (p != u->p)
		return;
	retire(u, p);
	if (!u->refused && move_on(u))
		return;
	schedule_redial(u, true);
}

static void on_close(struct peer *p, const char *reason, void *arg)
{
	struct uplink *u = arg;

	keep_ping_interval(u, p);
	if (p == u->old) {
		u->old = NULL;
		return;
	}
	u->p = NULL;
	u->up = false;
	if (u->cbs->on_down)
		u->cbs->on_down(u, reason, u->arg);
	if (u->refused || !move_on(u))
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
	const struct uplink_target *t;

	if (!u->fixed && (u->resolve || !u->n))
		targets_update(u, &u->d->cfg);
	if (!u->n) {
		u->resolve = true;
		schedule_redial(u, false);
		return;
	}
	t = &u->t[u->cur];
	u->p = peer_dial(u->d->loop, u->d->tls, t->addr, t->port, t->name, u->mark, &u->d->popts,
			 &uplink_peer_cbs, u);
	if (u->p && u->ping_ms)
		peer_set_ping_interval(u->p, u->ping_ms);
	if (!u->p) {
		log_warn("dial %s: %s", t->label, strerror(errno));
		if (u->refused || !move_on(u))
			schedule_redial(u, false);
	}
}

static void redial_fire(struct loop_timer *t, void *arg)
{
	uplink_dial(arg);
}

struct uplink *uplink_new(struct daemon *d, bool h2_server, uint32_t mark,
			  const struct uplink_target *fixed, const struct uplink_cbs *cbs,
			  void *arg)
{
	struct uplink *u = calloc(1, sizeof(*u));
	const char *me = tls_ctx_identity(d->tls)->uri;

	if (!u)
		fatal("out of memory");
	u->d = d;
	u->h2_server = h2_server;
	u->mark = mark;
	u->cbs = cbs;
	u->arg = arg;
	u->key = fnv1a(0xcbf29ce484222325ull, me, strlen(me));
	if (fixed) {
		u->t = malloc(sizeof(*u->t));
		if (!u->t)
			fatal("out of memory");
		u->t[0] = *fixed;
		u->n = 1;
		u->fixed = true;
	}
	backoff_init(&u->bo, UPLINK_BACKOFF_MIN, UPLINK_BACKOFF_MAX);
	backoff_init(&u->refused_bo, UPLINK_REFUSED_MIN, UPLINK_REFUSED_MAX);
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

void uplink_refused(struct uplink *u)
{
	bool was = u->refused;

	u->refused = true;
	/* The GOAWAY that follows a first refusal may have scheduled a quick redial already. */
	if (!was && !u->p && loop_timer_pending(u->redial))
		schedule_redial(u, false);
}

void uplink_expect_drain(struct uplink *u, uint32_t ms)
{
	struct peer *p = u->old ? u->old : u->p;

	if (p)
		peer_expect_drain(p, ms);
}

void uplink_reset(struct uplink *u, const struct config *cfg)
{
	struct uplink_target cur = {0};
	bool had = u->p && u->n;

	backoff_reset(&u->bo);
	backoff_reset(&u->refused_bo);
	u->refused = false;
	u->failures = 0;
	if (u->stopping)
		return;
	if (!u->fixed) {
		if (had)
			cur = u->t[u->cur];
		targets_update(u, cfg);
		u->tried = 0;
		for (size_t i = 0; had && i < u->n; i++) {
			if (uplink_target_eq(&u->t[i], &cur)) {
				u->cur = i;
				had = false;
			}
		}
		if (had && u->p) {
			/* Its server left the list: new calls go to the first one now. */
			log_info("%s is no longer configured; moving", cur.label);
			peer_drain(u->p, u->d->cfg.drain_timeout_ms,
				   "server left the configuration");
			retire(u, u->p);
			loop_timer_arm(u->redial, 0);
			return;
		}
	}
	if (!u->p && loop_timer_pending(u->redial))
		loop_timer_arm(u->redial, 0);
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
	free(u->t);
	free(u);
}
