// SPDX-License-Identifier: MIT
/* Fuzzes gRPC metadata through both session roles: header lists taken from the input are sent
 * by a real peer session (nghttp2 encodes them; fuzz_h2 covers malformed HPACK and frames) to
 *   - a server session, as requests: grpc_request_check, then the checks ntun-server's Connect
 *     and ntun-proxy's Dial make (ntun-dst and ntun-src as IPv4:port, ntun-conn-id, the
 *     policy), then grpc_call_accept with its grpc-encoding / grpc-accept-encoding and a body;
 *   - a client session with calls open, as the answers: response headers (grpc-encoding of the
 *     body), trailers (grpc-status, grpc-message, ntun-error) or Trailers-Only.
 * grpc-timeout is carried but nothing reads it (no deadline is taken from a peer).
 *
 * Input: [flags] then header blocks separated by an empty line, one "name:value" per line
 * (split at the first ':' after the first byte, so ":path:/x" is a pseudo-header).
 *   bit 0: client session (else server)     bit 1: gzip enabled on the tested side
 *   bit 2: bodies: one Chunk message        bit 3: that message is gzip-compressed
 *   bit 4: the tested side echoes           bit 5: free the calls after one exchange */
#include <errno.h>
#include <string.h>
#include <sys/uio.h>

#include "buf.h"
#include "conntrack.h"
#include "fuzz.h"
#include "fuzz_peer.h"
#include "grpc.h"
#include "h2.h"
#include "relay.h"
#include "route.h"

#define MAXB	     8	/* header blocks */
#define MAXF	     24 /* fields per block */
#define MAXC	     8	/* calls on the tested side */
#define CONNECT_PATH "/ntun.v1.Relay/Connect"
#define DIAL_PATH    "/ntun.v1.Proxy/Dial"

struct block {
	struct h2_nv nv[MAXF];
	size_t n;
};

struct tested_call {
	struct grpc_call *call;
	enum grpc_mode mode;
	bool finished;
};

struct state {
	uint8_t flags;
	struct block b[MAXB];
	size_t nb;
	struct h2_session *tested, *helper;
	struct tested_call calls[MAXC];
	size_t ncalls;
	struct fuzz_peer_stream hs[MAXB];
	size_t nhs, next_answer;
	struct buf body;
	const struct policy_rule *policy;
	size_t n_policy;
};

static struct policy_rule rules[2];

/* Helper as the server: answers the i-th request with block 2i as response headers and block
 * 2i+1 as trailers, or block 2i alone as Trailers-Only when there is no 2i+1. */
static void helper_request(void *arg, struct h2_stream *st, const struct h2_nv *nv, size_t n,
			   bool end)
{
	struct state *s = arg;
	size_t i = s->next_answer++;
	struct fuzz_peer_stream *h;

	if (2 * i >= s->nb || s->nhs == MAXB) {
		h2_stream_reset(st, H2_REFUSED_STREAM);
		return;
	}
	h = &s->hs[s->nhs++];
	h->st = st;
	h->body = buf_head(&s->body);
	h->len = s->flags & 4 ? buf_len(&s->body) : 0;
	h->eof = true;
	h2_stream_attach(st, &fuzz_peer_cbs, h);
	if (2 * i + 1 < s->nb) {
		h2_stream_set_trailers(st, s->b[2 * i + 1].nv, s->b[2 * i + 1].n);
		h2_stream_respond(st, s->b[2 * i].nv, s->b[2 * i].n, true);
	} else {
		h2_stream_respond(st, s->b[2 * i].nv, s->b[2 * i].n, false);
	}
}

/* ---- the tested side ---- */

/* What ntun-server (Connect) and ntun-proxy (Dial) check before they accept a call. */
static enum grpc_status daemon_checks(const struct state *s, const struct h2_nv *nv, size_t n)
{
	const char *dst = grpc_md_get(nv, n, "ntun-dst");
	const char *src = grpc_md_get(nv, n, "ntun-src");
	const char *cid = grpc_md_get(nv, n, "ntun-conn-id");
	const char *timeout = grpc_md_get(nv, n, "grpc-timeout");
	uint32_t daddr, saddr, a;
	uint16_t dport, sport, p;
	char txt[32];

	(void)timeout;
	if (!dst || ipport_parse(dst, &daddr, &dport) < 0)
		return GRPC_INVALID_ARGUMENT;
	/* What parses formats back to an address that parses the same. */
	FUZZ_CHECK(ipport_format(daddr, dport, txt, sizeof(txt)) != NULL);
	FUZZ_CHECK(ipport_parse(txt, &a, &p) == 0 && a == daddr && p == dport);
	if (src && ipport_parse(src, &saddr, &sport) < 0)
		return GRPC_INVALID_ARGUMENT;
	if (cid) {
		if (!conntrack_id_valid(cid))
			return GRPC_INVALID_ARGUMENT;
		FUZZ_CHECK(strlen(cid) == CONNTRACK_ID_LEN &&
			   strspn(cid, "0123456789abcdefABCDEF") == CONNTRACK_ID_LEN);
	}
	if (!policy_allows(s->policy, s->n_policy, "spiffe://ntun/client/laptop-1", daddr, dport))
		return GRPC_PERMISSION_DENIED;
	return GRPC_OK;
}

static void tested_request(void *arg, struct h2_stream *st, const struct h2_nv *nv, size_t n,
			   bool end)
{
	struct state *s = arg;
	bool gzip = s->flags & 2;
	const char *path = NULL, *msg = NULL, *method, *ctype;
	enum grpc_status status = grpc_request_check(nv, n, gzip, &path, &msg);
	struct tested_call *c;

	if (status != GRPC_OK) {
		FUZZ_CHECK(msg != NULL);
		grpc_reject(st, status, msg, NULL);
		return;
	}
	/* What the check lets through is a gRPC request. */
	method = grpc_md_get(nv, n, ":method");
	ctype = grpc_md_get(nv, n, "content-type");
	FUZZ_CHECK(path && method && !strcmp(method, "POST"));
	FUZZ_CHECK(ctype && !strncmp(ctype, "application/grpc", 16));
	if (!strcmp(path, CONNECT_PATH) || !strcmp(path, DIAL_PATH)) {
		status = daemon_checks(s, nv, n);
		if (status != GRPC_OK) {
			grpc_reject(st, status, "refused\n%\xff", "EINVAL");
			return;
		}
	}
	if (s->ncalls == MAXC) {
		grpc_reject(st, GRPC_RESOURCE_EXHAUSTED, "too many calls", "ENOBUFS");
		return;
	}
	c = &s->calls[s->ncalls++];
	c->mode =
		strcmp(path, CONNECT_PATH) && strcmp(path, DIAL_PATH) ? GRPC_MESSAGES : GRPC_BYTES;
	c->call = grpc_call_accept(st, nv, n, end, c->mode, gzip);
	FUZZ_CHECK(c->call != NULL);
}

static void serve(struct state *s)
{
	for (size_t i = 0; i < s->ncalls; i++) {
		struct tested_call *c = &s->calls[i];
		const uint8_t *p;
		size_t n;
		int rv, st;

		if (!c->call)
			continue;
		st = grpc_call_peer_status(c->call);
		FUZZ_CHECK(st >= -1 && st <= 0xffff);
		if (st >= 0)
			FUZZ_CHECK(grpc_call_answered(c->call));
		if (c->mode == GRPC_BYTES) {
			struct relay_end *e = grpc_call_end(c->call);

			while ((n = e->ops->peek(e, &p)) > 0) {
				if (s->flags & 16)
					e->ops->write(e, p, n);
				e->ops->consume(e, n);
			}
			if (e->rx_err) {
				grpc_call_free(c->call);
				c->call = NULL;
			} else if (e->rx_eof && !c->finished) {
				e->ops->shutdown(e);
				c->finished = true;
			}
			continue;
		}
		while ((rv = grpc_call_recv(c->call, &p, &n)) == 1)
			if (s->flags & 16)
				grpc_call_send(c->call, p, n);
		if (rv == -EPIPE && !c->finished) {
			grpc_call_finish(c->call, GRPC_OK, NULL, NULL);
			c->finished = true;
		} else if (rv < 0 && rv != -EPIPE) {
			grpc_call_free(c->call);
			c->call = NULL;
		}
	}
}

static void serve_cb(void *arg)
{
	serve(arg);
}

static void settle(struct state *s)
{
	fuzz_settle(s->tested, s->helper, serve_cb, s);
}

/* Splits the input (a NUL-terminated copy, edited in place) into header blocks. */
static void parse_blocks(struct state *s, char *text, size_t len)
{
	char *p = text, *end = text + len;

	while (p < end && s->nb < MAXB) {
		struct block *b = &s->b[s->nb++];

		while (p < end && *p != '\n') {
			char *eol = memchr(p, '\n', (size_t)(end - p)), *colon;

			if (!eol)
				eol = end;
			*eol = 0;
			colon = eol - p > 1 ? memchr(p + 1, ':', (size_t)(eol - p - 1)) : NULL;
			if (colon && b->n < MAXF) {
				*colon = 0;
				b->nv[b->n++] = (struct h2_nv){p, colon + 1, (size_t)(colon - p),
							       (size_t)(eol - colon - 1)};
			}
			p = eol + 1;
		}
		p++; /* the empty line */
	}
}

static void make_body(struct state *s)
{
	static const char payload[] = "GET / HTTP/1.0\r\n\r\n";
	struct buf msg = BUF_INIT, z = BUF_INIT;
	uint8_t hdr[11], pfx[5];
	size_t hl = grpc_chunk_header(hdr, sizeof(payload) - 1);
	bool gz = s->flags & 8;

	FUZZ_CHECK(buf_append(&msg, hdr, hl) == 0);
	FUZZ_CHECK(buf_append(&msg, payload, sizeof(payload) - 1) == 0);
	if (gz)
		FUZZ_CHECK(grpc_gzip(buf_head(&msg), buf_len(&msg), &z) == 0);
	grpc_frame_prefix(pfx, gz, (uint32_t)(gz ? buf_len(&z) : buf_len(&msg)));
	FUZZ_CHECK(buf_append(&s->body, pfx, 5) == 0);
	FUZZ_CHECK(buf_append(&s->body, gz ? buf_head(&z) : buf_head(&msg),
			      gz ? buf_len(&z) : buf_len(&msg)) == 0);
	buf_release(&msg);
	buf_release(&z);
}

/* Client side under test: the calls ntun-client and the server's Dial leg open. */
static void open_calls(struct state *s)
{
	static const char hello[] = "\x0a\x07\x0a\x02id\x12\x01v";
	struct h2_nv md[] = {H2_NV("ntun-dst", "192.168.1.5:80"),
			     H2_NV("ntun-conn-id", "0123456789abcdef0123456789abcdef")};
	size_t want = (s->nb + 1) / 2;

	for (size_t i = 0; i < want && i < MAXC; i++) {
		struct tested_call *c = &s->calls[s->ncalls++];

		c->mode = i % 2 ? GRPC_MESSAGES : GRPC_BYTES;
		c->call = grpc_call_open(
			s->tested, c->mode == GRPC_BYTES ? CONNECT_PATH : "/ntun.v1.Relay/Attach",
			md, 2, c->mode, s->flags & 2);
		FUZZ_CHECK(c->call != NULL);
		if (c->mode == GRPC_BYTES) {
			struct relay_end *e = grpc_call_end(c->call);

			e->ops->write(e, (const uint8_t *)"GET /", 5);
			e->ops->shutdown(e);
		} else {
			grpc_call_send(c->call, hello, sizeof(hello) - 1);
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct h2_session_cbs tested_cbs = {.on_request = tested_request};
	static struct h2_session_cbs helper_cbs = {.on_request = helper_request}, none;
	struct state s = {0};
	struct h2_settings set;
	bool client;
	char *text;

	if (!size)
		return 0;
	if (!rules[0].client[0]) {
		snprintf(rules[0].client, sizeof(rules[0].client), "*");
		FUZZ_CHECK(policy_dest_parse("0.0.0.0/1", &rules[0]) == 0);
		snprintf(rules[1].client, sizeof(rules[1].client), "spiffe://ntun/client/laptop-1");
		FUZZ_CHECK(policy_dest_parse("192.168.0.0/16:1-1024", &rules[1]) == 0);
	}
	s.flags = data[0];
	client = s.flags & 1;
	s.policy = rules;
	s.n_policy = 2;
	text = malloc(size);
	FUZZ_CHECK(text != NULL);
	memcpy(text, data + 1, size - 1);
	text[size - 1] = 0;
	parse_blocks(&s, text, size - 1);
	make_body(&s);

	h2_settings_default(&set);
	s.tested = h2_session_new(!client, &set, &tested_cbs, &s);
	s.helper = h2_session_new(client, &set, client ? &helper_cbs : &none, &s);
	FUZZ_CHECK(s.tested && s.helper);
	if (client) {
		open_calls(&s);
	} else {
		for (size_t i = 0; i < s.nb; i++) {
			struct fuzz_peer_stream *h = &s.hs[s.nhs++];

			h->body = buf_head(&s.body);
			h->len = s.flags & 4 ? buf_len(&s.body) : 0;
			h->eof = true;
			h->st = h2_stream_request(s.helper, s.b[i].nv, s.b[i].n, &fuzz_peer_cbs, h);
			if (!h->st)
				s.nhs--;
		}
	}
	if (s.flags & 32) { /* one exchange, then the calls go while answers are on the way */
		fuzz_xfer(s.helper, s.tested);
		fuzz_xfer(s.tested, s.helper);
		fuzz_xfer(s.helper, s.tested);
		serve(&s);
	} else {
		settle(&s);
	}
	for (size_t i = 0; i < s.ncalls; i++) {
		grpc_call_free(s.calls[i].call);
		s.calls[i].call = NULL;
	}
	settle(&s);
	h2_session_free(s.tested);
	h2_session_free(s.helper);
	buf_release(&s.body);
	free(text);
	return 0;
}
