// SPDX-License-Identifier: MIT
/* Fuzzes control messages where they arrive: on a real message-mode call, framed (optionally
 * gzip-compressed) by a peer session, at each of the four ends that take them:
 *   0: ntun-server, Relay/Attach request from a client (ClientEvent: hello)
 *   1: ntun-proxy, Proxy/Control request from the server (ServerEvent: hello, drain)
 *   2: ntun-client, Relay/Attach answer from the server (ServerEvent: routes, drain)
 *   3: ntun-server, Proxy/Control answer from a proxy (ProxyEvent: register, drain)
 * Each message is decoded as that end does and applied with the library pieces it uses: a
 * client hello is answered with the RouteSet of the table; a proxy's registration goes
 * through the same checks as the server's (CIDRs parse, virtual and real of one length,
 * route_claim_check under grants, then route_add; a new one replaces the proxy's routes, a
 * drain withdraws them); a RouteSet's prefixes are parsed as the client does. Checks: no two
 * proxy ids hold overlapping prefixes unless both are granted the larger one, a drained proxy
 * holds no route, the answer encodes and decodes back.
 *
 * Input: [flags] then messages, each [length byte] bytes...
 *   bits 0-1: the end (above)   bit 2: messages gzip-compressed (grpc-encoding gzip)
 *   bit 3: the peer ends its side (END_STREAM / trailers with status 0) after them */
#include <errno.h>
#include <string.h>

#include "buf.h"
#include "fuzz.h"
#include "fuzz_peer.h"
#include "grpc.h"
#include "h2.h"
#include "route.h"

#define OUR_ID "site-1" /* the proxy whose connection this is, as its certificate says */

static const char *const paths[] = {"/ntun.v1.Relay/Attach", "/ntun.v1.Proxy/Control",
				    "/ntun.v1.Relay/Attach", "/ntun.v1.Proxy/Control"};
static const enum ctl_family families[] = {CTL_CLIENT_EVENT, CTL_SERVER_EVENT, CTL_SERVER_EVENT,
					   CTL_PROXY_EVENT};

struct state {
	unsigned end;
	bool gzip, fin;
	struct h2_session *tested, *peer;
	struct fuzz_peer_stream ps;
	struct grpc_call *call;
	struct buf body;
	struct route_table *routes;
	struct route_grant grants[2];
	int owner; /* our routes' owner tag */
};

/* Another proxy id's route, and grants under which some overlap is shared. */
static void table_init(struct state *s)
{
	struct route r = {.proxy_id = "site-2"};
	static int other;

	s->routes = route_table_new();
	FUZZ_CHECK(s->routes != NULL);
	FUZZ_CHECK(cidr_parse("100.64.2.0/24", &r.virt) == 0);
	r.real = r.virt;
	r.owner = &other;
	FUZZ_CHECK(route_add(s->routes, &r) == 0);
	FUZZ_CHECK(cidr_parse("100.64.0.0/10", &s->grants[0].prefix) == 0);
	snprintf(s->grants[0].proxy_id, sizeof(s->grants[0].proxy_id), "*");
	FUZZ_CHECK(cidr_parse("10.0.0.0/8", &s->grants[1].prefix) == 0);
	snprintf(s->grants[1].proxy_id, sizeof(s->grants[1].proxy_id), OUR_ID);
}

static void check_table(const struct state *s)
{
	size_t n = route_count(s->routes);

	for (size_t i = 0; i < n; i++) {
		const struct route *a = route_at(s->routes, i);

		FUZZ_CHECK(a->virt.len == a->real.len);
		for (size_t j = i + 1; j < n; j++) {
			const struct route *b = route_at(s->routes, j);
			const struct cidr *big = a->virt.len <= b->virt.len ? &a->virt : &b->virt;

			if (strcmp(a->proxy_id, b->proxy_id) && cidr_overlap(&a->virt, &b->virt))
				FUZZ_CHECK(route_granted(s->grants, 2, a->proxy_id, big) &&
					   route_granted(s->grants, 2, b->proxy_id, big));
		}
	}
}

/* ntun-server's proxy_register, from the library pieces it is made of. */
static void do_register(struct state *s, const struct ctl_msg *m)
{
	struct route r;

	route_remove_owner(s->routes, &s->owner);
	if (strcmp(m->id, OUR_ID) || !m->n_cidrs || (m->n_virt && m->n_virt != m->n_cidrs))
		return;
	for (size_t i = 0; i < m->n_cidrs; i++) {
		memset(&r, 0, sizeof(r));
		if (cidr_parse(m->cidrs[i], &r.real) < 0 ||
		    (m->n_virt && cidr_parse(m->virt[i], &r.virt) < 0))
			goto refuse;
		if (!m->n_virt)
			r.virt = r.real;
		if (r.virt.len != r.real.len ||
		    route_claim_check(s->routes, s->grants, 2, OUR_ID, &r.virt, NULL) < 0)
			goto refuse;
	}
	for (size_t i = 0; i < m->n_cidrs; i++) {
		memset(&r, 0, sizeof(r));
		cidr_parse(m->cidrs[i], &r.real);
		r.virt = r.real;
		if (m->n_virt)
			cidr_parse(m->virt[i], &r.virt);
		snprintf(r.proxy_id, sizeof(r.proxy_id), OUR_ID);
		r.owner = &s->owner;
		FUZZ_CHECK(route_add(s->routes, &r) == 0);
	}
	check_table(s);
	return;
refuse:
	route_remove_owner(s->routes, &s->owner);
}

/* ntun-server's answer to a client hello: the RouteSet of its table. */
static void answer_hello(struct state *s)
{
	struct ctl_route rs[8];
	struct ctl_msg m = {.kind = CTL_ROUTES, .routes = rs}, back;
	struct buf out = BUF_INIT;

	for (size_t i = 0; i < route_count(s->routes) && m.n_routes < 8; i++) {
		const struct route *e = route_at(s->routes, i);
		struct ctl_route *c = &rs[m.n_routes++];

		cidr_format(&e->virt, c->virt, sizeof(c->virt));
		cidr_format(&e->real, c->real, sizeof(c->real));
		snprintf(c->proxy_id, sizeof(c->proxy_id), "%s", e->proxy_id);
	}
	FUZZ_CHECK(grpc_ctl_encode(CTL_SERVER_EVENT, &m, &out) == 0);
	FUZZ_CHECK(grpc_ctl_decode(CTL_SERVER_EVENT, buf_head(&out), buf_len(&out), &back) == 0);
	FUZZ_CHECK(back.kind == CTL_ROUTES && back.n_routes == m.n_routes);
	grpc_ctl_release(&back);
	grpc_call_send(s->call, buf_head(&out), buf_len(&out));
	buf_release(&out);
}

static void apply(struct state *s, const struct ctl_msg *m)
{
	struct cidr c;

	switch (m->kind) {
	case CTL_CLIENT_HELLO:
		answer_hello(s);
		break;
	case CTL_REGISTER:
		do_register(s, m);
		break;
	case CTL_DRAIN:
		if (s->end == 3) {
			route_remove_owner(s->routes, &s->owner);
			for (size_t i = 0; i < route_count(s->routes); i++)
				FUZZ_CHECK(route_at(s->routes, i)->owner != &s->owner);
		}
		break;
	case CTL_ROUTES: /* the client intercepts the virtual prefixes that parse */
		for (size_t i = 0; i < m->n_routes; i++)
			if (cidr_parse(m->routes[i].virt, &c) == 0)
				FUZZ_CHECK(c.len <= 32);
		break;
	default:
		break;
	}
}

static void serve(struct state *s)
{
	const uint8_t *p;
	size_t n;
	int rv;

	if (!s->call)
		return;
	while ((rv = grpc_call_recv(s->call, &p, &n)) == 1) {
		struct ctl_msg m;

		if (grpc_ctl_decode(families[s->end], p, n, &m) < 0)
			continue; /* the daemons log it (the server also ends the call) */
		apply(s, &m);
		grpc_ctl_release(&m);
	}
	if (rv < 0) {
		grpc_call_finish(s->call, GRPC_OK, NULL, NULL);
		grpc_call_free(s->call);
		s->call = NULL;
	}
}

static void serve_cb(void *arg)
{
	serve(arg);
}

static void settle(struct state *s)
{
	fuzz_settle(s->tested, s->peer, serve_cb, s);
}

/* The tested end as a server (0, 1): the daemons check with their gzip setting but take
 * control calls uncompressed. */
static void tested_request(void *arg, struct h2_stream *st, const struct h2_nv *nv, size_t n,
			   bool end)
{
	struct state *s = arg;
	const char *path, *msg;

	if (grpc_request_check(nv, n, s->gzip, &path, &msg) != GRPC_OK || s->call) {
		grpc_reject(st, GRPC_ABORTED, "no", NULL);
		return;
	}
	s->call = grpc_call_accept(st, nv, n, end, GRPC_MESSAGES, false);
	FUZZ_CHECK(s->call != NULL);
}

/* The peer as a server (2, 3): answers the tested end's call with the messages. */
static void peer_request(void *arg, struct h2_stream *st, const struct h2_nv *nv, size_t n,
			 bool end)
{
	struct state *s = arg;
	struct h2_nv head[] = {H2_NV(":status", "200"), H2_NV("content-type", "application/grpc"),
			       H2_NV("grpc-encoding", "gzip")};
	struct h2_nv trailers[] = {H2_NV("grpc-status", "0")};

	if (s->ps.st) {
		h2_stream_reset(st, H2_REFUSED_STREAM);
		return;
	}
	s->ps.st = st;
	h2_stream_attach(st, &fuzz_peer_cbs, &s->ps);
	if (s->fin)
		h2_stream_set_trailers(st, trailers, 1);
	h2_stream_respond(st, head, s->gzip ? 3 : 2, true);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct h2_session_cbs server_cbs = {.on_request = tested_request},
				     peer_cbs = {.on_request = peer_request}, none;
	struct fuzz_in in = {data, size};
	struct state s = {0};
	struct h2_settings set;
	uint8_t flags = fuzz_u8(&in);
	bool tested_server;

	s.end = flags & 3;
	s.gzip = flags & 4;
	s.fin = flags & 8;
	tested_server = s.end < 2;
	table_init(&s);
	while (in.n) {
		const uint8_t *p;
		size_t n = fuzz_take(&in, fuzz_u8(&in), &p);
		struct buf z = BUF_INIT;
		uint8_t pfx[5];

		if (s.gzip) {
			FUZZ_CHECK(grpc_gzip(p, n, &z) == 0);
			p = buf_head(&z);
			n = buf_len(&z);
		}
		grpc_frame_prefix(pfx, s.gzip, (uint32_t)n);
		FUZZ_CHECK(buf_append(&s.body, pfx, 5) == 0);
		FUZZ_CHECK(!n || buf_append(&s.body, p, n) == 0);
		buf_release(&z);
	}
	s.ps.body = buf_head(&s.body);
	s.ps.len = buf_len(&s.body);
	/* Trailers end a server's answer; a client's request ends with its body. */
	s.ps.eof = tested_server ? s.fin : true;

	h2_settings_default(&set);
	s.tested = h2_session_new(tested_server, &set, tested_server ? &server_cbs : &none, &s);
	s.peer = h2_session_new(!tested_server, &set, tested_server ? &none : &peer_cbs, &s);
	FUZZ_CHECK(s.tested && s.peer);
	if (tested_server) {
		struct h2_nv req[] = {
			H2_NV(":method", "POST"),
			H2_NV(":scheme", "https"),
			H2_NV(":path", paths[s.end]),
			H2_NV(":authority", "ntun"),
			H2_NV("content-type", "application/grpc"),
			H2_NV("te", "trailers"),
			H2_NV("grpc-encoding", "gzip"),
		};

		s.ps.st = h2_stream_request(s.peer, req, s.gzip ? 7 : 6, &fuzz_peer_cbs, &s.ps);
		FUZZ_CHECK(s.ps.st != NULL);
	} else {
		static const char hello[] = "\x0a\x07\x0a\x02id\x12\x01v";

		/* As the daemons open them: uncompressed (a compressed answer fails the call). */
		s.call = grpc_call_open(s.tested, paths[s.end], NULL, 0, GRPC_MESSAGES, false);
		FUZZ_CHECK(s.call != NULL);
		grpc_call_send(s.call, hello, sizeof(hello) - 1);
	}
	settle(&s);
	if (s.call)
		grpc_call_free(s.call);
	s.call = NULL;
	settle(&s);
	h2_session_free(s.tested);
	h2_session_free(s.peer);
	route_table_free(s.routes);
	buf_release(&s.body);
	return 0;
}
