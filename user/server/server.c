// SPDX-License-Identifier: MIT
/* The relay in the middle. Peers are told apart by the role in their certificate: for a client
 * we are the HTTP/2 server (Relay service); for a proxy, which dialed us, we are the HTTP/2
 * client and open Connector calls on its connection. It forwards bytes only through relays. */
#include "server.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "admin.h"
#include "buf.h"
#include "conntrack.h"
#include "daemon.h"
#include "grpc.h"
#include "http.h"
#include "json.h"
#include "log.h"
#include "loop.h"
#include "metrics.h"
#include "peer.h"
#include "relay.h"
#include "route.h"
#include "sock.h"
#include "srclimit.h"
#include "status.h"
#include "tls.h"

#define PATH_CONNECT "/ntun.v1.Relay/Connect"
#define PATH_ATTACH  "/ntun.v1.Relay/Attach"
#define PATH_DIAL    "/ntun.v1.Connector/Dial"
#define PATH_CONTROL "/ntun.v1.Connector/Control"

/* A client connection ended for a flood (rapid reset: limits.early_resets) costs its id a
 * cool-down: new connections with that certificate are closed after the handshake for
 * SRV_CALM_MS. Without it an attacker reconnects at once, and every connection's fresh burst
 * of early resets is a burst of cancelled Dials at the proxy (one every 45 ms was measured).
 * With it one certificate passes on at most one burst per 10 s. */
#define SRV_CALM_SLOTS 256 /* client ids remembered; the oldest is forgotten first */
#define SRV_CALM_MS    10000

struct srv_calm {
	char id[128];
	uint64_t until;
};

/* Keepalive times proxies' too_many_pings GOAWAYs doubled, per proxy id: the next connection
 * of that proxy starts with it (gRPC keeps the doubled time for the channel). */
#define SRV_KA_SLOTS 256 /* proxy ids remembered; the least recently used is forgotten */

struct srv_ka {
	char id[128];
	uint32_t ms;
	uint64_t used;
};

#define REFUSED_LOG_MS	 10000 /* at most one line about refused connections this often */
#define DIAL_TRIES	 4     /* proxies a tunnel's Dial is offered to before it fails */
#define DENIED_LABELS	 16    /* client ids of the policy with a denied counter of their own */
#define DENIED_LOG_BURST 20    /* lines about denied tunnels, then one per DENIED_LOG_MS */
#define DENIED_LOG_MS	 1000

/* Per client id (every connection with that certificate): its tunnels, for the limits. */
struct srv_client {
	struct srv_client *next;
	char uri[POLICY_CLIENT_LEN];
	uint32_t refs;	  /* connections with this id */
	uint32_t active;  /* tunnels (pending or relaying) */
	uint64_t tokens;  /* new-tunnel budget, in thousandths of a tunnel */
	uint64_t fill_ms; /* when tokens were last refilled */
};

/* ntun_tunnels_denied_total{client="..."}: one counter per client id the policy names (the
 * first DENIED_LABELS of them), the rest count as "other": the label set is bounded by the
 * configuration, never by what peers present. */
struct srv_denied {
	char uri[POLICY_CLIENT_LEN];
	uint64_t *n; /* its row of the denied vec */
};

/* ntun_route_*{route="10.1.0.0/16",proxy="..."}: per route and proxy, the DAEMON_ROW_*
 * counters and the Dials that failed. Bounded by the routes and proxy ids the grants allow
 * (and by METRICS_VEC_ROWS), never by connections. */
enum { ROUTE_ROW_DIAL_FAILED = DAEMON_ROW_N, ROUTE_ROW_N };
#define ACCEPT_PAUSE_MS 100 /* out of descriptors: stop accepting this long */
#define SRV_DRAINED_MAX 64  /* proxy ids drained at once */

/* Connections from outside allow_from: each source is logged at most once per
 * ALLOW_LOG_MS (the ALLOW_LOG_SLOTS most recent remembered), and at most ALLOW_LOG_BURST
 * lines per ALLOW_LOG_MS in all however many sources there are. */
#define ALLOW_LOG_SLOTS 64
#define ALLOW_LOG_MS	60000
#define ALLOW_LOG_BURST 20

struct srv_allow_log {
	uint32_t addr;
	uint64_t ms; /* when it was last logged; 0 = free slot */
	uint64_t unlogged;
};

struct srv_peer;

struct server {
	struct daemon *d;
	struct config *cfg;
	struct route_table *routes;
	int lfd;
	struct loop_io *lio;
	struct srv_peer *peers; /* every live peer, doubly linked */
	uint32_t held;		/* srv_peer structs not freed yet: live, or kept by tunnels */
	struct loop_timer *stop_timer;
	bool stopping;
	unsigned rr;	  /* rotates config routes over proxies with the same id */
	uint64_t reg_seq; /* registrations accepted so far; orders proxies by seniority */
	struct srv_calm calm[SRV_CALM_SLOTS];
	struct srv_ka ka[SRV_KA_SLOTS];
	/* Connections still in their TLS handshake: capped in total and per source address, the
	 * excess closed at accept (it costs no certificate to open them). */
	struct srclimit *hs;
	uint64_t hs_refused[2];	   /* over the total cap, over the per-source cap */
	uint64_t refused_unlogged; /* refusals since the last log line about them */
	uint64_t refused_logged_ms;
	struct loop_timer *accept_pause; /* accept failed for want of descriptors */
	uint64_t accept_fail_logged_ms;
	uint64_t allow_refused; /* connections from outside allow_from */
	struct srv_allow_log allow_log[ALLOW_LOG_SLOTS];
	uint64_t allow_log_ms, allow_log_lines; /* the current window and its lines */
	struct srv_client *clients;
	struct srv_denied denied[DENIED_LABELS];
	size_t n_denied;
	struct metrics_vec *denied_vec;
	uint64_t *denied_other;
	struct metrics_vec *route_vec;
	uint64_t limited[2]; /* refused: concurrent tunnels, new tunnels per second */
	uint64_t dial_retries;
	uint32_t denied_log_budget;
	uint64_t denied_log_ms, denied_unlogged;
	/* Proxy ids drained by the admin API: no new tunnels, whichever connection they use. */
	char drained[SRV_DRAINED_MAX][64];
	size_t n_drained;
};

struct srv_peer {
	struct server *srv;
	struct peer *p; /* NULL once the connection is gone */
	struct srv_peer *next, *prev;
	enum tls_role role;
	uint32_t src; /* source address, for the handshake count */
	bool hs_slot; /* holds a handshake slot (until on_ready or close) */
	char id[128];
	char name[200];
	struct grpc_call *ctl;	     /* Connector/Control or Relay/Attach */
	struct loop_timer *ctl_task; /* handles control messages outside h2 callbacks */
	struct loop_timer *reg_timer;
	bool registered;
	uint64_t reg_seq; /* when its connection first registered (0 = never) */
	uint32_t capacity;
	uint32_t active;	       /* relays through this peer; the struct lives while > 0 */
	char uri[POLICY_CLIENT_LEN];   /* the whole SPIFFE id, for the policy */
	struct srv_client *cl;	       /* clients: the per-id counts */
	bool suspect;		       /* proxies: a Dial went unanswered; out of rotation */
	bool drained;		       /* proxies: drained by the admin API; out of rotation */
	struct srv_conn *pending;      /* proxies: tunnels whose Dial is not answered yet */
	char addr[24];		       /* ip:port it connected from */
	uint64_t since_ms;	       /* when its handshake completed */
	uint64_t bytes_up, bytes_down; /* of its tunnels, live (relay_count_into) */
};

/* One tunneled connection, for its log line and the peers' counts. Kept small: a server
 * holds one per open tunnel. Both peers stay allocated while it refers to them.
 *
 * Until the proxy answers the Dial (response headers, or a probe PING sent after the Dial
 * came back) the tunnel is pending: the client's call is accepted but not relayed, so its
 * bytes wait in its stream window and none reaches a proxy that may never answer. A Dial
 * unanswered for timeouts.dial_ms (or failed without an answer) is cancelled and offered to
 * another proxy of the route; the app sees a slower connect. */
struct srv_conn {
	struct server *srv;
	struct srv_peer *client, *proxy;
	struct grpc_call *in, *out;	/* pending only; then the relay's */
	struct loop_timer *eval;	/* pending only */
	struct srv_conn *pnext, *pprev; /* in proxy->pending */
	uint64_t probe;			/* proxy probe that answers the Dial */
	uint64_t dial_ms;		/* when the current Dial was opened */
	uint64_t start_ms;		/* when the client's call came */
	uint64_t *row;			/* route_vec row of the route and proxy */
	uint32_t daddr, raddr;
	uint16_t dport;
	uint8_t tries;
	char src[24]; /* ntun-src as the client sent it, "" if none */
	char conn_id[CONNTRACK_ID_LEN + 1];
	struct admin_tunnel at; /* linked while relaying */
};

static void client_put(struct server *s, struct srv_client *cl)
{
	struct srv_client **pp;

	if (!cl || --cl->refs)
		return;
	for (pp = &s->clients; *pp != cl; pp = &(*pp)->next)
		;
	*pp = cl->next;
	free(cl);
}

/* The record of client id uri, made on first need (one per id connected). NULL if out of
 * memory. */
static struct srv_client *client_get(struct server *s, const char *uri)
{
	struct srv_client *cl;

	for (cl = s->clients; cl; cl = cl->next)
		if (!strcmp(cl->uri, uri))
			break;
	if (!cl) {
		cl = calloc(1, sizeof(*cl));
		if (!cl)
			return NULL;
		snprintf(cl->uri, sizeof(cl->uri), "%s", uri);
		cl->tokens = (uint64_t)s->cfg->client_tunnel_rate * 1000;
		cl->fill_ms = loop_now_ms();
		cl->next = s->clients;
		s->clients = cl;
	}
	cl->refs++;
	return cl;
}

static void peer_put(struct srv_peer *sp)
{
	if (sp->p || sp->active)
		return;
	client_put(sp->srv, sp->cl);
	grpc_call_free(sp->ctl);
	loop_timer_free(sp->ctl_task);
	loop_timer_free(sp->reg_timer);
	sp->srv->held--;
	free(sp);
}

static struct srv_calm *calm_find(struct server *s, const char *id)
{
	for (size_t i = 0; i < SRV_CALM_SLOTS; i++)
		if (!strcmp(s->calm[i].id, id))
			return &s->calm[i];
	return NULL;
}

static void calm_note(struct server *s, const char *id)
{
	struct srv_calm *c = calm_find(s, id);

	if (!c) { /* the slot that expires first (an unused one has until 0) */
		c = &s->calm[0];
		for (size_t i = 1; i < SRV_CALM_SLOTS; i++)
			if (s->calm[i].until < c->until)
				c = &s->calm[i];
	}
	snprintf(c->id, sizeof(c->id), "%s", id);
	c->until = loop_now_ms() + SRV_CALM_MS;
}

static bool calm_active(struct server *s, const char *id)
{
	struct srv_calm *c = calm_find(s, id);

	return c && c->until > loop_now_ms();
}

/* The keepalive time remembered for proxy id (0 = none), or with ms != 0 remembers it. */
static uint32_t ka_time(struct server *s, const char *id, uint32_t ms)
{
	struct srv_ka *k = NULL, *lru = &s->ka[0];

	for (size_t i = 0; i < SRV_KA_SLOTS && !k; i++) {
		if (!strcmp(s->ka[i].id, id) && s->ka[i].used)
			k = &s->ka[i];
		else if (s->ka[i].used < lru->used)
			lru = &s->ka[i];
	}
	if (!k && !ms)
		return 0;
	if (!k) {
		k = lru;
		snprintf(k->id, sizeof(k->id), "%s", id);
	}
	if (ms)
		k->ms = ms;
	k->used = loop_now_ms() | 1;
	return k->ms;
}

/* The handshake is over (verified, failed or abandoned): its slot goes back. */
/* True if the admin API drained proxy id. */
static bool drained_id(const struct server *s, const char *id)
{
	for (size_t i = 0; i < s->n_drained; i++)
		if (!strcmp(s->drained[i], id))
			return true;
	return false;
}

static void hs_done(struct srv_peer *sp)
{
	if (sp->hs_slot)
		srclimit_put(sp->srv->hs, sp->src);
	sp->hs_slot = false;
}

/* Stopping ends once every peer is gone and so is every tunnel a closed peer still held (their
 * relays end in loop tasks of their own): stopping the loop before, at the drain deadline with
 * tunnels in flight, left their memory behind (LeakSanitizer in the chaos test). */
static void server_check_stopped(struct server *s)
{
	if (s->stopping && !s->peers && !s->held) {
		log_info("all peers gone; exiting");
		loop_stop(s->d->loop);
	}
}

/* ---- routes pushed to clients ---- */

static int routes_message(struct server *s, struct buf *out)
{
	struct ctl_msg m = {.kind = CTL_ROUTES};
	size_t n = route_count(s->routes);
	int rv;

	if (n > CTL_MAX_LIST)
		n = CTL_MAX_LIST;
	m.routes = calloc(n ? n : 1, sizeof(*m.routes));
	if (!m.routes)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		const struct route *r = route_at(s->routes, i);

		cidr_format(&r->virt, m.routes[m.n_routes].virt, CTL_CIDR_LEN);
		cidr_format(&r->real, m.routes[m.n_routes].real, CTL_CIDR_LEN);
		snprintf(m.routes[m.n_routes].proxy_id, sizeof(m.routes[0].proxy_id), "%s",
			 r->proxy_id);
		m.n_routes++;
	}
	rv = grpc_ctl_encode(CTL_SERVER_EVENT, &m, out);
	free(m.routes);
	return rv;
}

static void push_routes(struct server *s)
{
	struct buf msg = BUF_INIT;

	if (routes_message(s, &msg) < 0)
		return;
	for (struct srv_peer *sp = s->peers; sp; sp = sp->next)
		if (sp->role == TLS_ROLE_CLIENT && sp->ctl && sp->p)
			grpc_call_send(sp->ctl, buf_head(&msg), buf_len(&msg));
	buf_release(&msg);
}

/* ---- proxy registration (Connector/Control, we are the HTTP/2 client) ---- */

static void reg_timeout(struct loop_timer *t, void *arg)
{
	struct srv_peer *sp = arg;

	if (sp->p && !sp->registered)
		peer_close(sp->p, "proxy did not register in time");
}

/* Whether proxy id may hold virtual prefix virt next to the routes in t under cfg's grants
 * (route_claim_check); if not, why says so. 0, -EPERM or -EEXIST. */
static int claim_check(const struct route_table *t, const struct config *cfg, const char *id,
		       const struct cidr *virt, char *why, size_t wsz)
{
	const struct route *o = NULL;
	char a[24], b[24];
	int rv = route_claim_check(t, cfg->grants, cfg->n_grants, id, virt, &o);

	if (rv == -EPERM)
		snprintf(why, wsz, "virtual prefix %s is not granted to proxy '%s'",
			 cidr_format(virt, a, sizeof(a)), id);
	else if (rv == -EEXIST)
		snprintf(why, wsz, "virtual prefix %s overlaps %s of proxy '%s' (no shared grant)",
			 cidr_format(virt, a, sizeof(a)), cidr_format(&o->virt, b, sizeof(b)),
			 o->proxy_id);
	return rv;
}

/* Refuses a proxy's registration, or withdraws it: the reason goes to the proxy as a Drain
 * on its control call (as the HTTP/2 client of that call we cannot send it a status), the
 * call ends, and the connection drains; tunnels already open through it finish. */
static void proxy_refuse(struct srv_peer *sp, const char *what, const char *why)
{
	struct ctl_msg m = {
		.kind = CTL_DRAIN, .deadline_ms = 1000, .refusal = GRPC_PERMISSION_DENIED};
	struct buf out = BUF_INIT;

	log_write(LOG_LVL_WARN, NULL, sp->name, "%s: %s", what, why);
	route_remove_owner(sp->srv->routes, sp);
	sp->registered = false;
	if (sp->ctl) {
		snprintf(m.reason, sizeof(m.reason), "%s: %s", what, why);
		if (grpc_ctl_encode(CTL_SERVER_EVENT, &m, &out) == 0)
			grpc_call_send(sp->ctl, buf_head(&out), buf_len(&out));
		buf_release(&out);
		grpc_call_finish(sp->ctl, GRPC_PERMISSION_DENIED, why, NULL);
	}
	if (sp->p)
		peer_drain(sp->p, 1000, what);
}

static int proxy_register(struct srv_peer *sp, const struct ctl_msg *m, char *why, size_t wsz)
{
	struct server *s = sp->srv;
	struct route r;
	int rv;

	if (!sp->p || peer_closing(sp->p)) {
		snprintf(why, wsz, "the connection is closing");
		return -ESHUTDOWN;
	}
	if (strcmp(m->id, sp->id)) {
		snprintf(why, wsz, "registration proxy_id '%s' does not match certificate id '%s'",
			 m->id, sp->id);
		return -EPERM;
	}
	if (m->n_cidrs == 0 || (m->n_virt && m->n_virt != m->n_cidrs)) {
		snprintf(why, wsz, "registration needs managed CIDRs (and as many virtual CIDRs)");
		return -EINVAL;
	}
	for (size_t i = 0; i < m->n_cidrs; i++) {
		memset(&r, 0, sizeof(r));
		if (cidr_parse(m->cidrs[i], &r.real) < 0 ||
		    (m->n_virt && cidr_parse(m->virt[i], &r.virt) < 0)) {
			snprintf(why, wsz, "bad CIDR in registration: '%s'",
				 m->n_virt ? m->virt[i] : m->cidrs[i]);
			return -EINVAL;
		}
		if (!m->n_virt)
			r.virt = r.real;
		if (r.virt.len != r.real.len) {
			snprintf(why, wsz, "virtual %s and managed %s differ in length", m->virt[i],
				 m->cidrs[i]);
			return -EINVAL;
		}
		rv = claim_check(s->routes, s->cfg, sp->id, &r.virt, why, wsz);
		if (rv < 0)
			return rv;
	}
	for (size_t i = 0; i < m->n_cidrs; i++) {
		memset(&r, 0, sizeof(r));
		cidr_parse(m->cidrs[i], &r.real);
		r.virt = r.real;
		if (m->n_virt)
			cidr_parse(m->virt[i], &r.virt);
		snprintf(r.proxy_id, sizeof(r.proxy_id), "%s", sp->id);
		r.owner = sp;
		if (route_add(s->routes, &r) < 0) {
			snprintf(why, wsz, "cannot add route");
			return -ENOMEM;
		}
	}
	sp->capacity = m->capacity;
	sp->registered = true;
	sp->drained = drained_id(s, sp->id);
	if (!sp->reg_seq)
		sp->reg_seq = ++s->reg_seq;
	return 0;
}

static void ctl_task(struct loop_timer *t, void *arg)
{
	struct srv_peer *sp = arg;
	const uint8_t *p;
	size_t n;
	int rv;

	while (sp->ctl && (rv = grpc_call_recv(sp->ctl, &p, &n)) == 1) {
		struct ctl_msg m;
		char why[256];

		if (grpc_ctl_decode(sp->role == TLS_ROLE_PROXY ? CTL_PROXY_EVENT : CTL_CLIENT_EVENT,
				    p, n, &m) < 0) {
			log_write(LOG_LVL_WARN, NULL, sp->name, "malformed control message");
			grpc_call_finish(sp->ctl, GRPC_INVALID_ARGUMENT,
					 "malformed control message", NULL);
			if (sp->p)
				peer_close(sp->p, "malformed control message");
			return;
		}
		if (sp->role == TLS_ROLE_PROXY && m.kind == CTL_REGISTER) {
			/* A new registration replaces the proxy's earlier one (e.g. after its
			 * SIGHUP); a refused one leaves it with none. */
			size_t had = route_remove_owner(sp->srv->routes, sp);

			sp->registered = false;
			if (proxy_register(sp, &m, why, sizeof(why)) < 0) {
				proxy_refuse(sp, "registration refused", why);
				if (had)
					push_routes(sp->srv);
			} else {
				log_write(LOG_LVL_INFO, NULL, sp->name,
					  "proxy registered: %zu route(s), capacity %u", m.n_cidrs,
					  m.capacity);
				loop_timer_cancel(sp->reg_timer);
				push_routes(sp->srv);
			}
		} else if (sp->role == TLS_ROLE_PROXY && m.kind == CTL_DRAIN) {
			/* Its routes leave the table now, so lookups fall back to covering routes
			 * at once; tunnels already open through it finish. */
			size_t gone = route_remove_owner(sp->srv->routes, sp);

			log_write(LOG_LVL_INFO, NULL, sp->name,
				  "proxy draining: %s (%zu route(s) withdrawn)", m.reason, gone);
			sp->registered = false;
			if (sp->p)
				peer_expect_drain(sp->p, m.deadline_ms);
			if (gone)
				push_routes(sp->srv);
		} else if (sp->role == TLS_ROLE_CLIENT && m.kind == CTL_CLIENT_HELLO) {
			struct buf out = BUF_INIT;

			log_write(LOG_LVL_INFO, NULL, sp->name, "client attached (version %s)",
				  m.version);
			if (routes_message(sp->srv, &out) == 0)
				grpc_call_send(sp->ctl, buf_head(&out), buf_len(&out));
			buf_release(&out);
		}
		grpc_ctl_release(&m);
	}
	if (!sp->ctl || rv >= 0)
		return;
	/* The peer ended its control call (draining) or it failed: end ours too. */
	if (rv == -EPIPE)
		log_write(LOG_LVL_INFO, NULL, sp->name, "%s ended its control call",
			  tls_role_name(sp->role));
	else
		log_write(LOG_LVL_WARN, NULL, sp->name, "control call failed: %s", strerror(-rv));
	grpc_call_finish(sp->ctl, GRPC_OK, NULL, NULL);
	grpc_call_free(sp->ctl);
	sp->ctl = NULL;
	if (sp->role == TLS_ROLE_PROXY && sp->registered) {
		/* No new dials through a proxy that is going away; open ones continue. */
		sp->registered = false;
		if (route_remove_owner(sp->srv->routes, sp))
			push_routes(sp->srv);
	}
}

static void ctl_wake(void *arg)
{
	struct srv_peer *sp = arg;

	loop_timer_now(sp->ctl_task);
}

static void proxy_start(struct srv_peer *sp)
{
	struct ctl_msg hello = {.kind = CTL_SERVER_HELLO};
	struct buf out = BUF_INIT;

	sp->ctl = grpc_call_open(peer_session(sp->p), PATH_CONTROL, NULL, 0, GRPC_MESSAGES, false);
	if (!sp->ctl) {
		peer_close(sp->p, "cannot open Connector/Control");
		return;
	}
	grpc_call_set_wake(sp->ctl, ctl_wake, sp);
	snprintf(hello.id, sizeof(hello.id), "%s", tls_ctx_identity(sp->srv->d->tls)->id);
	snprintf(hello.version, sizeof(hello.version), "%s", NTUN_VERSION);
	if (grpc_ctl_encode(CTL_SERVER_EVENT, &hello, &out) == 0)
		grpc_call_send(sp->ctl, buf_head(&out), buf_len(&out));
	buf_release(&out);
	loop_timer_arm(sp->reg_timer, sp->srv->cfg->handshake_timeout_ms);
}

/* ---- Relay/Connect ---- */

static bool proxy_usable(const struct srv_peer *sp)
{
	return sp && sp->p && sp->registered && !sp->drained && !peer_closing(sp->p) &&
	       peer_session(sp->p) && (sp->capacity == 0 || sp->active < sp->capacity);
}

/* What a lookup may pick: usable proxies, not the one just given up on, and suspect ones
 * only if the caller allows them (when no healthy one is left). */
struct pick {
	struct server *s;
	const struct srv_peer *exclude;
	bool suspect_ok;
};

static bool pick_ok(const struct pick *k, const struct srv_peer *sp)
{
	return sp != k->exclude && proxy_usable(sp) && (k->suspect_ok || !sp->suspect);
}

static bool route_usable(const struct route *r, void *arg)
{
	struct pick *k = arg;

	if (r->owner)
		return pick_ok(k, r->owner);
	for (struct srv_peer *sp = k->s->peers; sp; sp = sp->next)
		if (sp->role == TLS_ROLE_PROXY && !strcmp(sp->id, r->proxy_id) && pick_ok(k, sp))
			return true;
	return false;
}

/* The proxy connection to use for a route: its owner, or (config routes) one of the proxies
 * with its id, rotating. */
static struct srv_peer *route_proxy(struct pick *k, const struct route *r)
{
	struct srv_peer *c[64];
	size_t n = 0;

	if (r->owner)
		return r->owner;
	for (struct srv_peer *sp = k->s->peers; sp && n < 64; sp = sp->next)
		if (sp->role == TLS_ROLE_PROXY && !strcmp(sp->id, r->proxy_id) && pick_ok(k, sp))
			c[n++] = sp;
	return n ? c[k->s->rr++ % n] : NULL;
}

/* The proxy for a new Dial to daddr: longest prefix with a usable proxy, and among the
 * proxies registered for that prefix the one with the fewest tunnels (ties in turn: the
 * table rotates its pick). Healthy proxies first; suspect ones only if no other is left.
 * Sets *raddr to daddr in that proxy's real prefix. */
static struct srv_peer *pick_proxy(struct server *s, uint32_t daddr, uint32_t *raddr,
				   struct cidr *virt, const struct srv_peer *exclude)
{
	struct pick k = {.s = s, .exclude = exclude};
	const struct route *r = route_lookup(s->routes, daddr, raddr, route_usable, &k);
	struct srv_peer *best;

	if (!r) {
		k.suspect_ok = true;
		r = route_lookup(s->routes, daddr, raddr, route_usable, &k);
	}
	best = r ? route_proxy(&k, r) : NULL;
	if (r)
		*virt = r->virt;
	for (size_t i = 0; best && i < route_count(s->routes); i++) {
		const struct route *o = route_at(s->routes, i);

		if (o->owner && o->virt.addr == r->virt.addr && o->virt.len == r->virt.len &&
		    pick_ok(&k, o->owner) && ((struct srv_peer *)o->owner)->active < best->active) {
			best = o->owner;
			*raddr = o->real.addr | (daddr - o->virt.addr);
		}
	}
	return best;
}

/* Drops c's counts on its peers (its proxy: if it still has one) and frees it. */
static void conn_release(struct srv_conn *c)
{
	struct server *s = c->client->srv;

	if (c->proxy) {
		c->proxy->active--;
		peer_put(c->proxy);
	}
	c->client->cl->active--;
	c->client->active--;
	peer_put(c->client);
	free(c);
	server_check_stopped(s);
}

/* A tunnel that ended with err before any byte came back failed at its Dial when err is what
 * the proxy's connect gives (refused, unreachable, timed out, not allowed): the proxy answers
 * such a Dial with that error, which may come after the relay started (when a probe answered
 * first). */
static bool dial_failed(int err, uint64_t down)
{
	return !down && (err == ECONNREFUSED || err == EHOSTUNREACH || err == ENETUNREACH ||
			 err == ETIMEDOUT || err == EACCES);
}

static void conn_done(void *arg, const char *reason, int err, uint64_t up, uint64_t down)
{
	struct srv_conn *c = arg;
	char dst[24], real[24];

	admin_tunnel_del(c->srv->d->admin, &c->at);
	if (dial_failed(err, down))
		c->row[ROUTE_ROW_DIAL_FAILED]++;
	daemon_tunnel_ended(c->srv->d, err, c->start_ms, c->row);
	if (log_enabled(err ? LOG_LVL_INFO : LOG_LVL_DEBUG))
		log_write(err ? LOG_LVL_INFO : LOG_LVL_DEBUG, c->conn_id, c->client->name,
			  "tunnel %s -> %s closed: %s (%llu bytes up, %llu down)",
			  ipport_format(c->daddr, c->dport, dst, sizeof(dst)),
			  ipport_format(c->raddr, c->dport, real, sizeof(real)), reason,
			  (unsigned long long)up, (unsigned long long)down);
	conn_release(c);
}

static void conn_wake(void *arg)
{
	struct srv_conn *c = arg;

	loop_timer_now(c->eval);
}

/* Takes the pending Dial off its proxy: cancels the call (unless keep) and drops the count. */
static void dial_drop(struct srv_conn *c, bool keep)
{
	struct srv_peer *px = c->proxy;

	if (c->pprev)
		c->pprev->pnext = c->pnext;
	else
		px->pending = c->pnext;
	if (c->pnext)
		c->pnext->pprev = c->pprev;
	c->pnext = c->pprev = NULL;
	if (!keep) {
		grpc_call_free(c->out);
		c->out = NULL;
		px->active--;
		peer_put(px);
		c->proxy = NULL;
	}
}

/* Opens the Dial for c on proxy px for route virt (c->raddr set). 0, or -errno with nothing
 * changed. */
static int dial_open(struct srv_conn *c, struct srv_peer *px, const struct cidr *virt)
{
	struct server *s = c->srv;
	struct h2_nv md[4];
	size_t nmd = 0;
	char real[24], route[24];
	const char *labels[2] = {route, px->id};

	ipport_format(c->raddr, c->dport, real, sizeof(real));
	md[nmd++] = (struct h2_nv)H2_NV("ntun-dst", real);
	md[nmd++] = (struct h2_nv)H2_NV("ntun-conn-id", c->conn_id);
	if (c->src[0])
		md[nmd++] = (struct h2_nv)H2_NV("ntun-src", c->src);
	md[nmd++] = (struct h2_nv)H2_NV("ntun-client", c->client->id);
	c->out = grpc_call_open(peer_session(px->p), PATH_DIAL, md, nmd, GRPC_BYTES, s->cfg->gzip);
	if (!c->out)
		return errno ? -errno : -ENOMEM;
	grpc_call_set_wake(c->out, conn_wake, c);
	c->proxy = px;
	cidr_format(virt, route, sizeof(route));
	c->row = metrics_vec_row(s->route_vec, labels);
	px->active++;
	c->pnext = px->pending;
	c->pprev = NULL;
	if (px->pending)
		px->pending->pprev = c;
	px->pending = c;
	c->probe = peer_probe(px->p);
	c->dial_ms = loop_now_ms();
	c->tries++;
	loop_timer_arm(c->eval, s->cfg->dial_timeout_ms);
	return 0;
}

/* A pending tunnel that cannot go on: the client's call ends with status (a reset for the
 * app) and everything is let go. */
static void conn_fail(struct srv_conn *c, enum grpc_status status, const char *why, const char *err)
{
	log_write(LOG_LVL_INFO, c->conn_id, c->client->name, "%s", why);
	if (c->proxy)
		dial_drop(c, false);
	grpc_call_finish(c->in, status, why, err);
	grpc_call_free(c->in);
	loop_timer_free(c->eval);
	daemon_refused(c->srv->d);
	conn_release(c);
}

/* The Dial went unanswered or failed before an answer: offer it to another proxy. False if
 * there is none (the caller decides whether to wait on or give up). */
static bool dial_retry(struct srv_conn *c, const char *why)
{
	struct srv_peer *old = c->proxy, *px;
	struct cidr virt;
	uint32_t raddr;
	char dst[24];

	if (c->tries >= DIAL_TRIES)
		return false;
	px = pick_proxy(c->srv, c->daddr, &raddr, &virt, old);
	if (!px)
		return false;
	log_write(LOG_LVL_INFO, c->conn_id, c->client->name, "dial %s via %s %s; trying %s",
		  ipport_format(c->daddr, c->dport, dst, sizeof(dst)), old->name, why, px->name);
	c->srv->dial_retries++;
	dial_drop(c, false);
	c->raddr = raddr;
	return dial_open(c, px, &virt) == 0;
}

static void conn_start(struct srv_conn *c)
{
	struct server *s = c->srv;
	struct relay *r;
	char dst[24];

	dial_drop(c, true);
	loop_timer_free(c->eval);
	c->eval = NULL;
	grpc_call_set_wake(c->in, NULL, NULL);
	grpc_call_set_wake(c->out, NULL, NULL);
	if (!grpc_call_end(c->out)->rx_err) /* else answered with a failure: see dial_failed */
		daemon_tunnel_connected(s->d, c->start_ms);
	log_write(LOG_LVL_DEBUG, c->conn_id, c->client->name, "tunnel %s via %s",
		  ipport_format(c->daddr, c->dport, dst, sizeof(dst)), c->proxy->name);
	r = relay_new(s->d->loop, grpc_call_end(c->in), grpc_call_end(c->out),
		      s->cfg->idle_timeout_ms, conn_done, c);
	if (!r) { /* the relay freed both ends */
		conn_release(c);
		return;
	}
	daemon_tunnel_started(s->d, r, c->row);
	/* Both peers live while c holds them (their active counts), so as long as r. */
	relay_count_into(r, &c->client->bytes_up, &c->client->bytes_down);
	relay_count_into(r, &c->proxy->bytes_up, &c->proxy->bytes_down);
	admin_tunnel_add(s->d->admin, &c->at, r);
}

/* A pending tunnel's state changed, or its dial timeout passed: start, retry, wait or fail. */
static void conn_eval(struct loop_timer *t, void *arg)
{
	struct srv_conn *c = arg;
	struct srv_peer *px = c->proxy;
	uint64_t waited = loop_now_ms() - c->dial_ms, *row;

	if (grpc_call_end(c->in)->rx_err) { /* the app gave up */
		conn_fail(c, GRPC_CANCELLED, "client cancelled before the proxy answered", NULL);
		return;
	}
	if (grpc_call_answered(c->out) || (px->p && peer_probe_acked(px->p) >= c->probe)) {
		conn_start(c);
		return;
	}
	if (grpc_call_end(c->out)->rx_err) {
		c->row[ROUTE_ROW_DIAL_FAILED]++;
		if (!dial_retry(c, "failed before an answer"))
			conn_fail(c, GRPC_UNAVAILABLE, "no proxy of the route answered",
				  "EHOSTUNREACH");
		return;
	}
	if (waited < c->srv->cfg->dial_timeout_ms) {
		loop_timer_arm(c->eval, c->srv->cfg->dial_timeout_ms - waited);
		return;
	}
	if (!px->suspect) {
		px->suspect = true;
		log_write(LOG_LVL_WARN, NULL, px->name,
			  "proxy left a Dial unanswered for %llu ms: out of rotation until it "
			  "answers",
			  (unsigned long long)waited);
	}
	/* No other proxy: wait on; the answer, or the PING timeout closing it, wakes us. */
	row = c->row;
	if (dial_retry(c, "unanswered"))
		row[ROUTE_ROW_DIAL_FAILED]++;
}

/* A proxy answered a probe: every Dial sent before it is answered, and it is healthy. */
static void on_probe_ack(struct peer *p, void *arg)
{
	struct srv_peer *sp = arg;

	if (sp->role != TLS_ROLE_PROXY)
		return;
	if (sp->suspect) {
		sp->suspect = false;
		log_write(LOG_LVL_INFO, NULL, sp->name, "proxy answers again: back in rotation");
	}
	for (struct srv_conn *c = sp->pending; c; c = c->pnext)
		if (peer_probe_acked(p) >= c->probe)
			loop_timer_now(c->eval);
}

/* Counts and logs a tunnel the policy does not allow; lines are rate-limited, the count is
 * not. */
static void note_denied(struct server *s, const struct srv_peer *cp, const char *conn_id,
			const char *dst)
{
	uint64_t now = loop_now_ms(), *n = s->denied_other;

	for (size_t i = 0; i < s->n_denied; i++)
		if (!strcmp(s->denied[i].uri, cp->uri))
			n = s->denied[i].n;
	(*n)++;
	if (now - s->denied_log_ms >= DENIED_LOG_MS) {
		s->denied_log_ms = now;
		s->denied_log_budget = DENIED_LOG_BURST;
	}
	if (!s->denied_log_budget) {
		s->denied_unlogged++;
		return;
	}
	s->denied_log_budget--;
	log_write(LOG_LVL_WARN, conn_id, cp->name,
		  "tunnel denied by policy: client %s -> %s (%llu more denied unlogged before)",
		  cp->uri, dst, (unsigned long long)s->denied_unlogged);
	s->denied_unlogged = 0;
}

/* Adds a denied counter for each client id cfg's policy names, while there is room. */
static void denied_labels(struct server *s, const struct config *cfg)
{
	for (size_t i = 0; i < cfg->n_policy; i++) {
		const char *uri = cfg->policy[i].client;
		size_t j;

		if (!strcmp(uri, "*"))
			continue;
		for (j = 0; j < s->n_denied && strcmp(s->denied[j].uri, uri); j++)
			;
		if (j < s->n_denied)
			continue;
		if (s->n_denied == DENIED_LABELS) {
			log_warn(
				"policy names more than %d client ids: tunnels denied to the others "
				"count as client=\"other\"",
				DENIED_LABELS);
			return;
		}
		snprintf(s->denied[j].uri, sizeof(s->denied[j].uri), "%s", uri);
		s->denied[j].n = metrics_vec_row(s->denied_vec, &uri);
		s->n_denied++;
	}
}

/* Whether client cl may open one more tunnel under the per-client limits; takes it if so.
 * 0, or a reason. */
static const char *client_limit(struct server *s, struct srv_client *cl)
{
	uint32_t rate = s->cfg->client_tunnel_rate;
	uint64_t now = loop_now_ms();

	if (s->cfg->client_tunnels && cl->active >= s->cfg->client_tunnels) {
		s->limited[0]++;
		return "too many concurrent tunnels for this client id";
	}
	if (rate) {
		cl->tokens += (now - cl->fill_ms) * rate;
		if (cl->tokens > (uint64_t)rate * 1000)
			cl->tokens = (uint64_t)rate * 1000;
		cl->fill_ms = now;
		if (cl->tokens < 1000) {
			s->limited[1]++;
			return "too many new tunnels per second for this client id";
		}
		cl->tokens -= 1000;
	}
	return NULL;
}

/* A client-supplied label for logs: printable, no spaces, at most 255 bytes; else "-". */
static const char *md_label(const char *v)
{
	size_t i = 0;

	for (; v && i < 256 && v[i] > 0x20 && v[i] < 0x7f; i++)
		;
	return v && i && !v[i] ? v : "-";
}

static void handle_connect(struct srv_peer *cp, struct h2_stream *st, const struct h2_nv *nv,
			   size_t n, bool end)
{
	struct server *s = cp->srv;
	const char *dst = grpc_md_get(nv, n, "ntun-dst");
	const char *src = grpc_md_get(nv, n, "ntun-src");
	const char *cid = grpc_md_get(nv, n, "ntun-conn-id");
	const char *limit;
	struct srv_peer *proxy;
	struct srv_conn *c;
	struct cidr virt;
	uint32_t daddr, raddr, saddr = 0;
	uint16_t dport, sport = 0;
	char why[128];
	int rv;

	if (cp->role != TLS_ROLE_CLIENT) {
		grpc_reject(st, GRPC_PERMISSION_DENIED, "only clients may call Relay/Connect",
			    "EACCES");
		return;
	}
	if (!dst || ipport_parse(dst, &daddr, &dport) < 0) {
		grpc_reject(st, GRPC_INVALID_ARGUMENT, "ntun-dst must be IPv4:port", "EINVAL");
		return;
	}
	if (src && ipport_parse(src, &saddr, &sport) < 0) {
		grpc_reject(st, GRPC_INVALID_ARGUMENT, "ntun-src must be IPv4:port", "EINVAL");
		return;
	}
	if (cid && !conntrack_id_valid(cid)) {
		grpc_reject(st, GRPC_INVALID_ARGUMENT, "ntun-conn-id must be 32 hex chars",
			    "EINVAL");
		return;
	}
	c = calloc(1, sizeof(*c));
	if (!c || !cp->cl || !(c->eval = loop_timer_new(s->d->loop, conn_eval, c))) {
		free(c);
		grpc_reject(st, GRPC_RESOURCE_EXHAUSTED, "out of memory", "ENOMEM");
		return;
	}
	if (cid)
		snprintf(c->conn_id, sizeof(c->conn_id), "%s", cid);
	else
		conntrack_id(saddr, sport, daddr, dport, c->conn_id);
	if (src)
		ipport_format(saddr, sport, c->src, sizeof(c->src));
	c->srv = s;
	c->client = cp;
	c->start_ms = loop_now_ms();
	c->daddr = daddr;
	c->dport = dport;

	/* Refusals answer before any byte reaches a proxy: the app sees a reset at once. */
	if (s->cfg->n_policy &&
	    !policy_allows(s->cfg->policy, s->cfg->n_policy, cp->uri, daddr, dport)) {
		note_denied(s, cp, c->conn_id, dst);
		grpc_reject(st, GRPC_PERMISSION_DENIED, "denied by policy", "EACCES");
		daemon_refused(s->d);
		goto out_free;
	}
	limit = client_limit(s, cp->cl);
	if (limit) {
		log_write(LOG_LVL_DEBUG, c->conn_id, cp->name, "tunnel to %s refused: %s", dst,
			  limit);
		grpc_reject(st, GRPC_RESOURCE_EXHAUSTED, limit, "EAGAIN");
		daemon_refused(s->d);
		goto out_free;
	}
	proxy = pick_proxy(s, daddr, &raddr, &virt, NULL);
	if (!proxy) {
		snprintf(why, sizeof(why), "no route to %s", dst);
		log_write(LOG_LVL_INFO, c->conn_id, cp->name, "%s", why);
		grpc_reject(st, GRPC_UNAVAILABLE, why, "EHOSTUNREACH");
		daemon_refused(s->d);
		goto out_free;
	}
	c->raddr = raddr;
	rv = dial_open(c, proxy, &virt);
	if (rv < 0) {
		snprintf(why, sizeof(why), "proxy %s cannot take a call: %s", proxy->id,
			 strerror(-rv));
		log_write(LOG_LVL_WARN, c->conn_id, cp->name, "%s", why);
		grpc_reject(st, GRPC_UNAVAILABLE, why, "EHOSTUNREACH");
		daemon_refused(s->d);
		goto out_free;
	}
	c->in = grpc_call_accept(st, nv, n, end, GRPC_BYTES, s->cfg->gzip);
	if (!c->in) {
		dial_drop(c, false);
		grpc_reject(st, GRPC_RESOURCE_EXHAUSTED, "out of memory", "ENOMEM");
		goto out_free;
	}
	grpc_call_set_wake(c->in, conn_wake, c);
	cp->active++;
	cp->cl->active++;
	log_write(LOG_LVL_DEBUG, c->conn_id, cp->name,
		  "tunnel %s requested from cgroup %s netns %s", dst,
		  md_label(grpc_md_get(nv, n, "ntun-src-cgroup")),
		  md_label(grpc_md_get(nv, n, "ntun-src-netns")));
	return;
out_free:
	loop_timer_free(c->eval);
	free(c);
}

static void handle_attach(struct srv_peer *cp, struct h2_stream *st, const struct h2_nv *nv,
			  size_t n, bool end)
{
	if (cp->role != TLS_ROLE_CLIENT) {
		grpc_reject(st, GRPC_PERMISSION_DENIED, "only clients may call Relay/Attach", NULL);
		return;
	}
	if (cp->ctl) {
		grpc_reject(st, GRPC_ABORTED, "already attached", NULL);
		return;
	}
	cp->ctl = grpc_call_accept(st, nv, n, end, GRPC_MESSAGES, false);
	if (!cp->ctl) {
		grpc_reject(st, GRPC_RESOURCE_EXHAUSTED, "out of memory", NULL);
		return;
	}
	grpc_call_set_wake(cp->ctl, ctl_wake, cp);
	loop_timer_now(cp->ctl_task);
}

static void on_request(struct peer *p, struct h2_stream *st, const struct h2_nv *nv, size_t n,
		       bool end, void *arg)
{
	struct srv_peer *sp = arg;
	const char *path, *msg;
	enum grpc_status status = grpc_request_check(nv, n, sp->srv->cfg->gzip, &path, &msg);

	if (status != GRPC_OK) {
		log_write(LOG_LVL_WARN, NULL, sp->name, "bad request: %s", msg);
		grpc_reject(st, status, msg, NULL);
		return;
	}
	if (sp->srv->stopping) {
		grpc_reject(st, GRPC_UNAVAILABLE, "server is shutting down", "ECONNREFUSED");
		return;
	}
	if (!strcmp(path, PATH_CONNECT)) {
		handle_connect(sp, st, nv, n, end);
	} else if (!strcmp(path, PATH_ATTACH)) {
		handle_attach(sp, st, nv, n, end);
	} else {
		log_write(LOG_LVL_WARN, NULL, sp->name, "unknown method %s", path);
		grpc_reject(st, GRPC_UNIMPLEMENTED, "unknown method", NULL);
	}
}

static void on_ready(struct peer *p, void *arg)
{
	struct srv_peer *sp = arg;
	const struct tls_identity *id = peer_identity(p);

	sp->p = p; /* on_ready may run before peer_accept has returned */
	sp->since_ms = loop_now_ms();
	hs_done(sp);
	sp->role = id->role;
	snprintf(sp->id, sizeof(sp->id), "%s", id->id);
	snprintf(sp->name, sizeof(sp->name), "%s", peer_name(p));
	snprintf(sp->uri, sizeof(sp->uri), "%s", id->uri);
	if (sp->role == TLS_ROLE_CLIENT && calm_active(sp->srv, sp->id)) {
		peer_close(p, "client id cooling down after a flood");
		return;
	}
	if (sp->role == TLS_ROLE_CLIENT && !sp->cl) {
		sp->cl = client_get(sp->srv, sp->uri);
		if (!sp->cl) {
			peer_close(p, "out of memory");
			return;
		}
	}
	if (sp->role == TLS_ROLE_PROXY && ka_time(sp->srv, sp->id, 0)) {
		peer_set_ping_interval(p, ka_time(sp->srv, sp->id, 0));
		log_write(LOG_LVL_INFO, NULL, sp->name,
			  "keepalive time %u ms (doubled after its too_many_pings)",
			  peer_ping_interval(p));
	}
	/* The role in the verified certificate decides which HTTP/2 side we play. */
	if (peer_start_h2(p, sp->role == TLS_ROLE_CLIENT) < 0) {
		peer_close(p, "HTTP/2 setup failed");
		return;
	}
	if (sp->role == TLS_ROLE_PROXY)
		proxy_start(sp);
}

static void on_close(struct peer *p, const char *reason, void *arg)
{
	struct srv_peer *sp = arg;
	struct server *s = sp->srv;
	size_t removed = route_remove_owner(s->routes, sp);

	if (sp->role == TLS_ROLE_CLIENT && peer_flooded(p))
		calm_note(s, sp->id);
	if (sp->role == TLS_ROLE_PROXY && peer_ping_interval(p) > s->d->popts.ping_interval_ms)
		ka_time(s, sp->id, peer_ping_interval(p));

	if (sp->prev)
		sp->prev->next = sp->next;
	else
		s->peers = sp->next;
	if (sp->next)
		sp->next->prev = sp->prev;
	sp->p = NULL;
	hs_done(sp);
	if (sp->ctl) {
		grpc_call_free(sp->ctl);
		sp->ctl = NULL;
	}
	loop_timer_cancel(sp->ctl_task);
	loop_timer_cancel(sp->reg_timer);
	if (removed && !s->stopping)
		push_routes(s);
	peer_put(sp);
	server_check_stopped(s);
}

static const struct peer_cbs srv_peer_cbs = {
	.on_ready = on_ready,
	.on_probe_ack = on_probe_ack,
	.on_request = on_request,
	.on_close = on_close,
};

/* One line per REFUSED_LOG_MS at most, however many connections a flood makes us refuse. */
static void log_refused(struct server *s, enum srclimit_verdict v, const char *addr)
{
	uint64_t now = loop_now_ms();

	s->refused_unlogged++;
	if (s->refused_logged_ms && now - s->refused_logged_ms < REFUSED_LOG_MS)
		return;
	log_warn("refused %llu connection(s) at accept since the last such line, the last from "
		 "%s: %s (so far %llu over max_handshakes %u, %llu over "
		 "max_handshakes_per_source %u)",
		 (unsigned long long)s->refused_unlogged, addr,
		 v == SRCLIMIT_TOTAL ? "too many handshakes in progress"
				     : "too many handshakes in progress from this address",
		 (unsigned long long)s->hs_refused[0], srclimit_max_total(s->hs),
		 (unsigned long long)s->hs_refused[1], s->cfg->max_handshakes_per_source);
	s->refused_unlogged = 0;
	s->refused_logged_ms = now;
}

/* A connection from outside allow_from was closed: one line per source per ALLOW_LOG_MS. */
static void log_disallowed(struct server *s, uint32_t a, const char *addr)
{
	struct srv_allow_log *slot = &s->allow_log[0];
	uint64_t now = loop_now_ms();

	for (size_t i = 0; i < ALLOW_LOG_SLOTS; i++) {
		if (s->allow_log[i].ms && s->allow_log[i].addr == a) {
			slot = &s->allow_log[i];
			break;
		}
		if (s->allow_log[i].ms < slot->ms)
			slot = &s->allow_log[i];
	}
	if (slot->addr != a || !slot->ms)
		*slot = (struct srv_allow_log){.addr = a};
	if (slot->ms && now - slot->ms < ALLOW_LOG_MS) {
		slot->unlogged++;
		return;
	}
	if (!s->allow_log_ms || now - s->allow_log_ms >= ALLOW_LOG_MS) {
		s->allow_log_ms = now;
		s->allow_log_lines = 0;
	}
	if (s->allow_log_lines >= ALLOW_LOG_BURST) {
		slot->unlogged++;
		return;
	}
	s->allow_log_lines++;
	log_warn("refused a connection from %s: not in allow_from (%llu more from it unlogged "
		 "since its last line; %llu refused so far)",
		 addr, (unsigned long long)slot->unlogged, (unsigned long long)s->allow_refused);
	slot->ms = now;
	slot->unlogged = 0;
}

static void accept_resume(struct loop_timer *t, void *arg)
{
	struct server *s = arg;

	if (s->lio)
		loop_io_set(s->lio, LOOP_READ);
}

/* accept() failed: out of descriptors or memory, the listener stays readable. Polling it
 * again at once would spin; wait a moment for connections to close. */
static void accept_failed(struct server *s, int err)
{
	uint64_t now = loop_now_ms();

	if (!s->accept_fail_logged_ms || now - s->accept_fail_logged_ms >= REFUSED_LOG_MS) {
		log_warn("accept: %s; pausing new connections for %d ms", strerror(-err),
			 ACCEPT_PAUSE_MS);
		s->accept_fail_logged_ms = now;
	}
	if (err == -EMFILE || err == -ENFILE || err == -ENOBUFS || err == -ENOMEM) {
		loop_io_set(s->lio, 0);
		loop_timer_arm(s->accept_pause, ACCEPT_PAUSE_MS);
	}
}

static void on_accept(struct loop_io *io, unsigned events, void *arg)
{
	struct server *s = arg;
	enum srclimit_verdict v;
	char addr[24];
	uint32_t a;
	uint16_t port;
	int fd;

	for (int i = 0; i < 64; i++) {
		struct srv_peer *sp;

		fd = sock_accept(s->lfd, &a, &port);
		if (fd == -EAGAIN)
			return;
		if (fd < 0) {
			accept_failed(s, fd);
			return;
		}
		ipport_format(a, port, addr, sizeof(addr));
		if (!cidr_list_allows(s->cfg->allow_from, s->cfg->n_allow_from, a)) {
			sock_close_reset(fd);
			s->allow_refused++;
			log_disallowed(s, a, addr);
			continue;
		}
		v = srclimit_take(s->hs, a);
		if (v != SRCLIMIT_OK) {
			/* A reset: no TIME_WAIT left behind for each refused connection. */
			sock_close_reset(fd);
			s->hs_refused[v == SRCLIMIT_TOTAL ? 0 : 1]++;
			log_refused(s, v, addr);
			continue;
		}
		sp = calloc(1, sizeof(*sp));
		if (sp) {
			sp->srv = s;
			sp->src = a;
			sp->hs_slot = true;
			sp->ctl_task = loop_timer_new(s->d->loop, ctl_task, sp);
			sp->reg_timer = loop_timer_new(s->d->loop, reg_timeout, sp);
		}
		if (!sp || !sp->ctl_task || !sp->reg_timer) {
			srclimit_put(s->hs, a);
			if (sp) {
				loop_timer_free(sp->ctl_task);
				loop_timer_free(sp->reg_timer);
				free(sp);
			}
			close(fd);
			continue;
		}
		snprintf(sp->name, sizeof(sp->name), "%s", addr);
		snprintf(sp->addr, sizeof(sp->addr), "%s", addr);
		s->held++;
		sp->p = NULL;
		sp->next = s->peers;
		if (s->peers)
			s->peers->prev = sp;
		s->peers = sp;
		sp->p = peer_accept(s->d->loop, s->d->tls, fd, addr, &s->d->popts, &srv_peer_cbs,
				    sp);
		if (!sp->p) {
			s->peers = sp->next;
			if (s->peers)
				s->peers->prev = NULL;
			hs_done(sp);
			peer_put(sp);
		}
	}
}

static uint64_t count_peers(struct server *s, enum tls_role role, bool registered)
{
	uint64_t n = 0;

	for (struct srv_peer *sp = s->peers; sp; sp = sp->next)
		if (sp->p && sp->role == role && (!registered || sp->registered))
			n++;
	return n;
}

static uint64_t m_clients(void *arg)
{
	return count_peers(arg, TLS_ROLE_CLIENT, false);
}

static uint64_t m_proxies(void *arg)
{
	return count_peers(arg, TLS_ROLE_PROXY, true);
}

static uint64_t m_routes(void *arg)
{
	struct server *s = arg;

	return route_count(s->routes);
}

static uint64_t m_handshakes(void *arg)
{
	struct server *s = arg;

	return srclimit_total(s->hs);
}

/* Applies cfg's handshake caps. Handshakes get at most half the descriptors: the others are
 * for the peers already in. 0 or -ENOMEM. */
static int set_hs_caps(struct server *s, const struct config *cfg)
{
	uint32_t total = cfg->max_handshakes;
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
	    total > rl.rlim_cur / 2) {
		total = rl.rlim_cur / 2 ? (uint32_t)(rl.rlim_cur / 2) : 1;
		log_warn("max_handshakes %u is above half the open-file limit (%llu): using %u",
			 cfg->max_handshakes, (unsigned long long)rl.rlim_cur, total);
	}
	if (!s->hs) {
		s->hs = srclimit_new(total, cfg->max_handshakes_per_source);
		return s->hs ? 0 : -ENOMEM;
	}
	return srclimit_set(s->hs, total, cfg->max_handshakes_per_source);
}

/* Adds cfg's static routes (owner NULL) to t. 0 or -ENOMEM. */
static int add_config_routes(struct route_table *t, const struct config *cfg)
{
	for (size_t i = 0; i < cfg->n_routes; i++) {
		struct route r = {.virt = cfg->routes[i].virt, .real = cfg->routes[i].real};

		snprintf(r.proxy_id, sizeof(r.proxy_id), "%s", cfg->routes[i].proxy_id);
		if (route_add(t, &r) < 0)
			return -ENOMEM;
	}
	return 0;
}

/* Says how open registration is; names grants of two ids that overlap without being shared,
 * since then whichever proxy registers first holds the overlap. */
static void log_grants(const struct config *cfg)
{
	const struct route_grant *g = cfg->grants;
	size_t n = cfg->n_grants, warned = 0;
	char a[24], b[24];

	if (n == 0) {
		log_warn("no proxies section in the configuration: any proxy may register any "
			 "prefix (overlapping claims by different proxy ids are still refused)");
		return;
	}
	log_info("%zu proxy grant(s) loaded", n);
	for (size_t i = 0; i < n && warned < 10; i++) {
		for (size_t j = i + 1; j < n && warned < 10; j++) {
			const struct cidr *l =
				g[i].prefix.len < g[j].prefix.len ? &g[i].prefix : &g[j].prefix;

			if (!strcmp(g[i].proxy_id, g[j].proxy_id) ||
			    !cidr_overlap(&g[i].prefix, &g[j].prefix) ||
			    (route_granted(g, n, g[i].proxy_id, l) &&
			     route_granted(g, n, g[j].proxy_id, l)))
				continue;
			warned++;
			log_warn("grants %s to '%s' and %s to '%s' overlap but are not shared: "
				 "whichever registers first holds the overlap",
				 cidr_format(&g[i].prefix, a, sizeof(a)), g[i].proxy_id,
				 cidr_format(&g[j].prefix, b, sizeof(b)), g[j].proxy_id);
		}
	}
}

/* Says whether a policy applies (and adds the denied counters of the ids it names). */
static void log_policy(struct server *s, const struct config *cfg)
{
	denied_labels(s, cfg);
	if (cfg->n_policy == 0)
		log_warn("no policy section in the configuration: every client may reach every "
			 "route");
	else
		log_info("policy loaded: %zu (client, destination) rule(s)", cfg->n_policy);
	if (cfg->client_tunnels || cfg->client_tunnel_rate)
		log_info("per-client limits: %u concurrent tunnels, %u new per second (0 = none)",
			 cfg->client_tunnels, cfg->client_tunnel_rate);
}

/* The registered proxy that registered first after seniority after (0: the first), or NULL. */
static struct srv_peer *next_senior(struct server *s, uint64_t after)
{
	struct srv_peer *best = NULL;

	for (struct srv_peer *sp = s->peers; sp; sp = sp->next)
		if (sp->role == TLS_ROLE_PROXY && sp->registered && sp->reg_seq > after &&
		    (!best || sp->reg_seq < best->reg_seq))
			best = sp;
	return best;
}

struct revoked {
	struct srv_peer *sp;
	char why[256];
};

/* Builds the table nc asks for: its static routes, then the routes of each registered proxy,
 * oldest registration first, if nc's grants still allow all of them next to what is kept
 * so far. A proxy that fails loses every route (a registration is accepted whole or not at
 * all) and is told, as a refused one is; *rv lists those. Changes nothing on -ENOMEM. */
static int reload_table(struct server *s, const struct config *nc, struct route_table *t,
			struct revoked *rv, size_t *n_rv)
{
	if (add_config_routes(t, nc) < 0)
		return -ENOMEM;
	for (struct srv_peer *sp = next_senior(s, 0); sp; sp = next_senior(s, sp->reg_seq)) {
		size_t i, n = route_count(s->routes);

		for (i = 0; i < n; i++) {
			const struct route *r = route_at(s->routes, i);

			if (r->owner == sp && claim_check(t, nc, sp->id, &r->virt, rv[*n_rv].why,
							  sizeof(rv->why)) < 0)
				break;
		}
		if (i < n) {
			rv[(*n_rv)++].sp = sp;
			continue;
		}
		for (i = 0; i < n; i++) {
			const struct route *r = route_at(s->routes, i);

			if (r->owner == sp && route_add(t, r) < 0)
				return -ENOMEM;
		}
	}
	return 0;
}

/* The listener's guard is set up once (the XDP program reads its maps): true if nc changes
 * it. */
static bool guard_changed(const struct config *o, const struct config *n)
{
	if (o->n_allow_from != n->n_allow_from || o->xdp_mode != n->xdp_mode ||
	    o->xdp_syn_rate != n->xdp_syn_rate || o->xdp_syn_burst != n->xdp_syn_burst ||
	    (!o->xdp_interface != !n->xdp_interface) ||
	    (o->xdp_interface && strcmp(o->xdp_interface, n->xdp_interface)))
		return true;
	for (size_t i = 0; i < o->n_allow_from; i++)
		if (o->allow_from[i].addr != n->allow_from[i].addr ||
		    o->allow_from[i].len != n->allow_from[i].len)
			return true;
	return false;
}

int server_reload(struct server *s, const struct config *nc, char *err, size_t errsz)
{
	struct route_table *t;
	struct revoked *rv;
	size_t n = 1, n_rv = 0;

	if (guard_changed(s->cfg, nc)) {
		snprintf(err, errsz, "allow_from or xdp.* changed: they need a restart");
		return -EINVAL;
	}
	if (set_hs_caps(s, nc) < 0) {
		snprintf(err, errsz, "out of memory for max_handshakes %u", nc->max_handshakes);
		return -ENOMEM;
	}
	t = route_table_new();
	for (struct srv_peer *sp = s->peers; sp; sp = sp->next)
		n += sp->role == TLS_ROLE_PROXY;
	rv = calloc(n, sizeof(*rv));
	if (!t || !rv || reload_table(s, nc, t, rv, &n_rv) < 0) {
		route_table_free(t);
		free(rv);
		set_hs_caps(s, s->cfg);
		snprintf(err, errsz, "out of memory loading routes");
		return -ENOMEM;
	}
	route_table_free(s->routes);
	s->routes = t;
	/* Their routes are already out of the new table: lookups skip them from now on. */
	for (size_t i = 0; i < n_rv; i++)
		proxy_refuse(rv[i].sp, "grant withdrawn by reload", rv[i].why);
	free(rv);
	log_info("%zu configured route(s) loaded", nc->n_routes);
	log_grants(nc);
	log_policy(s, nc);
	push_routes(s);
	return 0;
}

static const char *const denied_labels_names[] = {"client"};
static const struct metrics_series denied_series[] = {
	{METRICS_COUNTER, "ntun_tunnels_denied_total",
	 "tunnels the policy did not allow, by the client id the policy names (other: the rest)"},
};
static const char *const route_labels[] = {"route", "proxy"};
static const struct metrics_series route_series[ROUTE_ROW_N] = {
	[DAEMON_ROW_OPENED] = {METRICS_COUNTER, "ntun_route_tunnels_total",
			       "tunnels started, by route and proxy"},
	[DAEMON_ROW_OPEN] = {METRICS_GAUGE, "ntun_route_tunnels_open",
			     "tunnels open now, by route and proxy"},
	[DAEMON_ROW_UP] = {METRICS_COUNTER, "ntun_route_tunnel_bytes_up_total",
			   "bytes carried toward destinations, by route and proxy"},
	[DAEMON_ROW_DOWN] = {METRICS_COUNTER, "ntun_route_tunnel_bytes_down_total",
			     "bytes carried back toward clients, by route and proxy"},
	[ROUTE_ROW_DIAL_FAILED] =
		{METRICS_COUNTER, "ntun_route_dial_failures_total",
		 "Dials that failed or went unanswered, and tunnels that ended with "
		 "a connect error (refused, unreachable, timed out, not allowed) "
		 "before any byte came back, by route and proxy"},
};

/* ---- admin API: peers, routes, tunnels, drain ---- */

#define ADMIN_PEERS_MAX 2000 /* peers listed in one answer */

static const char *role_str(enum tls_role r)
{
	return r == TLS_ROLE_CLIENT ? "client" : r == TLS_ROLE_PROXY ? "proxy" : "unknown";
}

static const char *proxy_health(const struct srv_peer *sp)
{
	if (!sp->p || peer_closing(sp->p))
		return "closing";
	if (!sp->registered)
		return "unregistered";
	if (sp->drained)
		return "draining";
	if (sp->suspect)
		return "suspect";
	if (sp->capacity && sp->active >= sp->capacity)
		return "full";
	return "healthy";
}

static void adm_status(void *arg, struct json *j)
{
	struct server *s = arg;

	daemon_admin_status(s->d, j);
	json_str(j, "listen", s->cfg->listen_addr);
	json_u64(j, "clients", count_peers(s, TLS_ROLE_CLIENT, false));
	json_u64(j, "proxies", count_peers(s, TLS_ROLE_PROXY, true));
	json_u64(j, "routes", route_count(s->routes));
	json_u64(j, "handshakes", srclimit_total(s->hs));
	json_bool(j, "stopping", s->stopping);
}

static const char *adm_tunnel_id(void *arg, const struct admin_tunnel *t)
{
	return admin_tunnel_owner(t, struct srv_conn, at)->conn_id;
}

static void adm_tunnel(void *arg, const struct admin_tunnel *t, struct json *j)
{
	const struct srv_conn *c = admin_tunnel_owner(t, struct srv_conn, at);
	char b[24];

	json_str(j, "client", c->client->id);
	json_str(j, "client_uri", c->client->uri);
	json_str(j, "client_addr", c->client->addr);
	json_str(j, "src", c->src[0] ? c->src : NULL);
	json_str(j, "dst", ipport_format(c->daddr, c->dport, b, sizeof(b)));
	json_str(j, "dst_site", ipport_format(c->raddr, c->dport, b, sizeof(b)));
	json_str(j, "proxy", c->proxy ? c->proxy->id : NULL);
	json_str(j, "proxy_addr", c->proxy ? c->proxy->addr : NULL);
}

/* The members of GET /v1/peers (and of the status page's JSON) into j, an open object. */
static void peers_json(struct server *s, struct json *j)
{
	uint64_t now = loop_now_ms();
	size_t n = 0, total = 0;

	json_array(j, "peers");
	for (struct srv_peer *sp = s->peers; sp; sp = sp->next) {
		if (!sp->p || !sp->since_ms)
			continue; /* still in its handshake */
		if (total++ >= ADMIN_PEERS_MAX)
			continue;
		n++;
		json_object(j, NULL);
		json_str(j, "role", role_str(sp->role));
		json_str(j, "id", sp->id);
		json_str(j, "uri", sp->uri);
		json_str(j, "addr", sp->addr);
		json_u64(j, "since_ms", now - sp->since_ms);
		json_u64(j, "tunnels", sp->active);
		if (sp->role == TLS_ROLE_PROXY) {
			json_str(j, "health", proxy_health(sp));
			json_u64(j, "capacity", sp->capacity);
		}
		/* Live: its relays add to them as bytes move (conn_start), no walk over tunnels. */
		json_u64(j, "bytes_up", sp->bytes_up);
		json_u64(j, "bytes_down", sp->bytes_down);
		json_u64(j, "recv_window", peer_recv_window(sp->p));
		json_end(j);
	}
	json_end(j);
	json_u64(j, "count", total);
	json_bool(j, "truncated", n < total);
}

static void adm_peers(struct http_req *r, const char *path, void *arg)
{
	struct json j;
	struct buf b;

	if (!admin_want_get(r))
		return;
	admin_json_begin(&j, &b);
	peers_json(arg, &j);
	admin_reply(r, 200, &j, &b);
}

static void adm_route_proxy(struct json *j, const struct srv_peer *sp)
{
	json_object(j, NULL);
	json_str(j, "id", sp->id);
	json_str(j, "addr", sp->addr);
	json_str(j, "health", proxy_health(sp));
	json_u64(j, "tunnels", sp->active);
	json_end(j);
}

/* The members of GET /v1/routes (and of the status page's JSON) into j, an open object. */
static void routes_json(struct server *s, struct json *j)
{
	char v[24], re[24];

	json_array(j, "routes");
	for (size_t i = 0; i < route_count(s->routes); i++) {
		const struct route *rt = route_at(s->routes, i);

		json_object(j, NULL);
		json_str(j, "virtual", cidr_format(&rt->virt, v, sizeof(v)));
		json_str(j, "real", cidr_format(&rt->real, re, sizeof(re)));
		json_str(j, "proxy_id", rt->proxy_id);
		json_str(j, "source", rt->owner ? "registered" : "config");
		json_array(j, "proxies");
		if (rt->owner) {
			adm_route_proxy(j, rt->owner);
		} else {
			for (struct srv_peer *sp = s->peers; sp; sp = sp->next)
				if (sp->p && sp->role == TLS_ROLE_PROXY &&
				    !strcmp(sp->id, rt->proxy_id))
					adm_route_proxy(j, sp);
		}
		json_end(j);
		json_end(j);
	}
	json_end(j);
	json_array(j, "drained");
	for (size_t i = 0; i < s->n_drained; i++)
		json_str(j, NULL, s->drained[i]);
	json_end(j);
}

static void adm_routes(struct http_req *r, const char *path, void *arg)
{
	struct json j;
	struct buf b;

	if (!admin_want_get(r))
		return;
	admin_json_begin(&j, &b);
	routes_json(arg, &j);
	admin_reply(r, 200, &j, &b);
}

/* POST /v1/proxies/<id>/drain: no new tunnels to any connection of that proxy id; open ones
 * run on. /resume undoes it. Kept for the id across its reconnections, not across restarts. */
static void adm_proxy_action(struct http_req *r, const char *path, void *arg)
{
	struct server *s = arg;
	const char *id = path + strlen("/v1/proxies/"), *slash = strchr(id, '/');
	size_t idlen = slash ? (size_t)(slash - id) : 0, i, hit = 0;
	bool drain;
	char pid[64];
	struct json j;
	struct buf b;

	if (!slash || (strcmp(slash, "/drain") && strcmp(slash, "/resume")) || !idlen ||
	    idlen >= sizeof(pid)) {
		admin_error(r, 404, "no such endpoint: POST /v1/proxies/ID/drain or /resume");
		return;
	}
	if (!admin_want_post(r))
		return;
	drain = !strcmp(slash, "/drain");
	memcpy(pid, id, idlen);
	pid[idlen] = '\0';
	for (i = 0; i < s->n_drained && strcmp(s->drained[i], pid); i++)
		;
	if (drain && i == s->n_drained) {
		if (s->n_drained >= SRV_DRAINED_MAX) {
			admin_error(r, 409, "too many proxies drained");
			return;
		}
		snprintf(s->drained[s->n_drained++], sizeof(s->drained[0]), "%s", pid);
	} else if (!drain && i < s->n_drained) {
		memmove(s->drained[i], s->drained[i + 1],
			(s->n_drained - i - 1) * sizeof(s->drained[0]));
		s->n_drained--;
	}
	for (struct srv_peer *sp = s->peers; sp; sp = sp->next) {
		if (sp->role != TLS_ROLE_PROXY || strcmp(sp->id, pid))
			continue;
		sp->drained = drain;
		hit++;
	}
	log_info("admin API: proxy %s %s (%zu connection(s))", pid,
		 drain ? "drained: no new tunnels" : "back in rotation", hit);
	admin_json_begin(&j, &b);
	json_str(&j, "proxy", pid);
	json_bool(&j, "drained", drain);
	json_u64(&j, "connections", hit);
	admin_reply(r, 200, &j, &b);
}

static const struct admin_ops srv_admin_ops = {
	.status = adm_status,
	.tunnel_id = adm_tunnel_id,
	.tunnel = adm_tunnel,
};

/* The server's members of the status page's JSON (status.c adds status and tunnels). */
static void status_json(void *arg, struct json *j)
{
	peers_json(arg, j);
	routes_json(arg, j);
}

static void admin_setup(struct server *s)
{
	admin_set_ops(s->d->admin, &srv_admin_ops, s);
	admin_route(s->d->admin, "/v1/peers", adm_peers, s);
	admin_route(s->d->admin, "/v1/routes", adm_routes, s);
	admin_route(s->d->admin, "/v1/proxies/", adm_proxy_action, s);
	status_set_json(s->d->status, status_json, s);
}

struct server *server_new(struct daemon *d)
{
	struct server *s = calloc(1, sizeof(*s));
	uint32_t addr;
	uint16_t port;
	int rv;

	if (!s)
		fatal("out of memory");
	s->d = d;
	s->cfg = &d->cfg;
	s->routes = route_table_new();
	if (!s->routes)
		fatal("out of memory");
	if (add_config_routes(s->routes, s->cfg) < 0)
		fatal("out of memory loading routes");
	if (set_hs_caps(s, s->cfg) < 0)
		fatal("out of memory for max_handshakes %u", s->cfg->max_handshakes);
	s->accept_pause = loop_timer_new(d->loop, accept_resume, s);
	if (!s->accept_pause)
		fatal("out of memory");
	rv = sock_resolve(s->cfg->listen_addr, &addr, &port);
	if (rv < 0)
		fatal("listen address '%s': %s", s->cfg->listen_addr, strerror(-rv));
	s->lfd = sock_listen(addr, port, 1024);
	if (s->lfd < 0)
		fatal("listen on %s: %s", s->cfg->listen_addr, strerror(-s->lfd));
	s->lio = loop_io_new(d->loop, s->lfd, on_accept, s);
	if (!s->lio)
		fatal("out of memory");
	loop_io_set(s->lio, LOOP_READ);
	metrics_add_fn(d->metrics, METRICS_GAUGE, "ntun_clients_connected", "client connections",
		       m_clients, s);
	metrics_add_fn(d->metrics, METRICS_GAUGE, "ntun_proxies_registered",
		       "proxy connections with an accepted registration", m_proxies, s);
	metrics_add_fn(d->metrics, METRICS_GAUGE, "ntun_routes", "routes in the table", m_routes,
		       s);
	metrics_add_fn(d->metrics, METRICS_GAUGE, "ntun_handshakes_in_progress",
		       "accepted connections still in their TLS handshake", m_handshakes, s);
	metrics_add(d->metrics, METRICS_COUNTER, "ntun_handshakes_refused_total{reason=\"total\"}",
		    "connections closed at accept: too many handshakes in progress",
		    &s->hs_refused[0]);
	metrics_add(d->metrics, METRICS_COUNTER, "ntun_handshakes_refused_total{reason=\"source\"}",
		    "connections closed at accept: too many handshakes in progress",
		    &s->hs_refused[1]);
	metrics_add(d->metrics, METRICS_COUNTER,
		    "ntun_handshakes_refused_total{reason=\"allow_from\"}",
		    "connections closed at accept: source not in allow_from", &s->allow_refused);
	s->denied_vec = metrics_vec_new(d->metrics, denied_labels_names, 1, denied_series, 1);
	s->denied_other = metrics_vec_row(s->denied_vec, (const char *const[]){"other"});
	s->route_vec = metrics_vec_new(d->metrics, route_labels, 2, route_series, ROUTE_ROW_N);
	metrics_add(d->metrics, METRICS_COUNTER, "ntun_tunnels_limited_total{limit=\"concurrent\"}",
		    "tunnels refused by the per-client limits", &s->limited[0]);
	metrics_add(d->metrics, METRICS_COUNTER, "ntun_tunnels_limited_total{limit=\"rate\"}",
		    "tunnels refused by the per-client limits", &s->limited[1]);
	metrics_add(d->metrics, METRICS_COUNTER, "ntun_dial_retries_total",
		    "Dials offered to another proxy after one did not answer", &s->dial_retries);
	admin_setup(s);
	log_info("listening on %s (%zu configured route(s))", s->cfg->listen_addr,
		 s->cfg->n_routes);
	log_grants(s->cfg);
	log_policy(s, s->cfg);
	return s;
}

static void stop_deadline(struct loop_timer *t, void *arg)
{
	struct server *s = arg;

	log_warn("drain deadline reached with peers still connected; exiting");
	loop_stop(s->d->loop);
}

void server_stop(struct server *s)
{
	if (s->stopping)
		return;
	s->stopping = true;
	loop_io_free(s->lio);
	s->lio = NULL;
	loop_timer_cancel(s->accept_pause);
	close(s->lfd);
	s->lfd = -1;
	for (struct srv_peer *sp = s->peers; sp; sp = sp->next) {
		if (sp->ctl) {
			struct ctl_msg m = {.kind = CTL_DRAIN,
					    .deadline_ms = s->cfg->drain_timeout_ms};
			struct buf out = BUF_INIT;

			snprintf(m.reason, sizeof(m.reason), "server shutting down");
			if (grpc_ctl_encode(CTL_SERVER_EVENT, &m, &out) == 0)
				grpc_call_send(sp->ctl, buf_head(&out), buf_len(&out));
			buf_release(&out);
			grpc_call_finish(sp->ctl, GRPC_OK, NULL, NULL);
		}
		if (sp->p)
			peer_drain(sp->p, s->cfg->drain_timeout_ms, "server shutting down");
	}
	s->stop_timer = loop_timer_new(s->d->loop, stop_deadline, s);
	if (s->stop_timer)
		loop_timer_arm(s->stop_timer, s->cfg->drain_timeout_ms + 1000);
	server_check_stopped(s);
}

void server_free(struct server *s)
{
	if (!s)
		return;
	/* Peers still open are abandoned with the process; free what is ours. */
	loop_io_free(s->lio);
	if (s->lfd >= 0)
		close(s->lfd);
	loop_timer_free(s->stop_timer);
	loop_timer_free(s->accept_pause);
	srclimit_free(s->hs);
	route_table_free(s->routes);
	free(s);
}
