// SPDX-License-Identifier: MIT
/* h2 sessions against a peer that misbehaves, in memory: the limits a server session keeps
 * (concurrent streams, early resets, SETTINGS/PING/CONTINUATION floods, held bytes) and the
 * GOAWAY that ends a flood. The bad peer is hand-made frames, so every limit is hit exactly. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "buf.h"
#include "check.h"
#include "h2.h"

#define MAXS 64

enum policy {
	POL_HOLD,    /* adopt the stream and never answer it (a Dial still in progress) */
	POL_RESPOND, /* adopt it and send response headers at once, body to follow */
};

struct srv {
	struct h2_session *h;
	enum policy pol;
	size_t requests, closes;
	struct h2_stream *st[MAXS];
	int goaway_sent; /* code + 1 of the GOAWAY the session sent, 0 = none */
};

static void o_headers(void *owner, enum h2_headers_kind kind, const struct h2_nv *nv, size_t n,
		      bool end)
{
}

static int o_data(void *owner, const uint8_t *p, size_t n)
{
	return 0;
}

static void o_end(void *owner)
{
}

static size_t o_avail(void *owner, bool *eof)
{
	*eof = false;
	return 0;
}

static int o_peek(void *owner, struct iovec *iov, size_t n)
{
	return 0;
}

static void o_drop(void *owner, size_t n)
{
}

static void o_close(void *owner, uint32_t code)
{
	struct srv *s = owner;

	s->closes++;
}

static const struct h2_stream_cbs owner_cbs = {
	.on_headers = o_headers,
	.on_data = o_data,
	.on_end = o_end,
	.out_avail = o_avail,
	.out_peek = o_peek,
	.out_drop = o_drop,
	.on_close = o_close,
};

static void on_request(void *arg, struct h2_stream *st, const struct h2_nv *nv, size_t n, bool end)
{
	struct srv *s = arg;
	struct h2_nv rsp[] = {H2_NV(":status", "200")};

	if (s->requests < MAXS)
		s->st[s->requests] = st;
	s->requests++;
	h2_stream_attach(st, &owner_cbs, s);
	if (s->pol == POL_RESPOND)
		CHECK_INT_EQ(h2_stream_respond(st, rsp, 1, true), 0);
}

static void on_goaway_sent(void *arg, uint32_t code)
{
	struct srv *s = arg;

	s->goaway_sent = (int)code + 1;
}

static const struct h2_session_cbs srv_cbs = {
	.on_request = on_request,
	.on_goaway_sent = on_goaway_sent,
};

static void srv_init(struct srv *s, const struct h2_settings *set)
{
	memset(s, 0, sizeof(*s));
	s->h = h2_session_new(true, set, &srv_cbs, s);
	CHECK(s->h != NULL);
}

/* ---- hand-made frames ---- */

static void frame(struct buf *b, uint8_t type, uint8_t flags, uint32_t sid, const void *p, size_t n)
{
	uint8_t hd[9] = {(uint8_t)(n >> 16),
			 (uint8_t)(n >> 8),
			 (uint8_t)n,
			 type,
			 flags,
			 (uint8_t)(sid >> 24 & 0x7f),
			 (uint8_t)(sid >> 16),
			 (uint8_t)(sid >> 8),
			 (uint8_t)sid};

	buf_append(b, hd, 9);
	if (n)
		buf_append(b, p, n);
}

#define F_DATA		0x0
#define F_HEADERS	0x1
#define F_RST		0x3
#define F_SETTINGS	0x4
#define F_PING		0x6
#define F_GOAWAY	0x7
#define F_WINDOW_UPDATE 0x8
#define F_CONTINUATION	0x9
#define FL_END_STREAM	0x1
#define FL_END_HEADERS	0x4
#define FL_ACK		0x1

/* HPACK literal without indexing, new name (names and values under 127 bytes). */
static void hpack_lit(struct buf *b, const char *name, const char *value)
{
	uint8_t z = 0, nl = (uint8_t)strlen(name), vl = (uint8_t)strlen(value);

	buf_append(b, &z, 1);
	buf_append(b, &nl, 1);
	buf_append(b, name, nl);
	buf_append(b, &vl, 1);
	buf_append(b, value, vl);
}

static void request_block(struct buf *hb)
{
	hpack_lit(hb, ":method", "POST");
	hpack_lit(hb, ":scheme", "https");
	hpack_lit(hb, ":path", "/ntun.v1.Relay/Connect");
	hpack_lit(hb, ":authority", "ntun");
	hpack_lit(hb, "content-type", "application/grpc");
}

/* The client preface and an empty SETTINGS. */
static void preface(struct buf *b)
{
	static const char pri[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

	buf_append(b, pri, sizeof(pri) - 1);
	frame(b, F_SETTINGS, 0, 0, NULL, 0);
}

static void headers(struct buf *b, uint32_t sid)
{
	struct buf hb = BUF_INIT;

	request_block(&hb);
	frame(b, F_HEADERS, FL_END_HEADERS, sid, buf_head(&hb), buf_len(&hb));
	buf_release(&hb);
}

static void rst(struct buf *b, uint32_t sid, uint32_t code)
{
	uint8_t p[4] = {(uint8_t)(code >> 24), (uint8_t)(code >> 16), (uint8_t)(code >> 8),
			(uint8_t)code};

	frame(b, F_RST, 0, sid, p, 4);
}

static int feed(struct srv *s, struct buf *b)
{
	int rv = h2_session_recv(s->h, buf_head(b), buf_len(b));

	buf_consume(b, buf_len(b));
	return rv;
}

/* What the server sends: the value of a SETTINGS entry (-1 if absent), RST_STREAM codes per
 * stream, the GOAWAY code (-1 if none). */
struct seen {
	long long setting[8];
	int rst_code[64];
	int goaway;
	char goaway_debug[32];
	size_t pings;
	uint64_t conn_credit; /* connection WINDOW_UPDATE increments, summed */
};

static void parse_out(struct srv *s, struct seen *v)
{
	struct buf out = BUF_INIT;
	const uint8_t *p;
	size_t n;

	memset(v, 0, sizeof(*v));
	for (int i = 0; i < 8; i++)
		v->setting[i] = -1;
	for (int i = 0; i < 64; i++)
		v->rst_code[i] = -1;
	v->goaway = -1;
	CHECK(h2_session_send(s->h, &out, SIZE_MAX) >= 0);
	p = buf_head(&out);
	n = buf_len(&out);
	while (n >= 9) {
		size_t len = (size_t)p[0] << 16 | (size_t)p[1] << 8 | p[2];
		uint8_t type = p[3], flags = p[4];
		uint32_t sid =
			((uint32_t)p[5] << 24 | (uint32_t)p[6] << 16 | (uint32_t)p[7] << 8 | p[8]) &
			0x7fffffff;
		const uint8_t *q = p + 9;

		if (n < 9 + len)
			break;
		if (type == F_SETTINGS && !(flags & FL_ACK)) {
			for (size_t i = 0; i + 6 <= len; i += 6) {
				unsigned id = (unsigned)q[i] << 8 | q[i + 1];

				if (id < 8)
					v->setting[id] =
						(long long)((uint32_t)q[i + 2] << 24 |
							    (uint32_t)q[i + 3] << 16 |
							    (uint32_t)q[i + 4] << 8 | q[i + 5]);
			}
		} else if (type == F_WINDOW_UPDATE && sid == 0 && len == 4) {
			v->conn_credit += ((uint32_t)q[0] << 24 | (uint32_t)q[1] << 16 |
					   (uint32_t)q[2] << 8 | q[3]) &
					  0x7fffffff;
		} else if (type == F_RST && sid < 64 && len == 4) {
			v->rst_code[sid] = (int)((uint32_t)q[2] << 8 | q[3]);
		} else if (type == F_GOAWAY && len >= 8) {
			v->goaway = (int)((uint32_t)q[4] << 24 | (uint32_t)q[5] << 16 |
					  (uint32_t)q[6] << 8 | q[7]);
			memcpy(v->goaway_debug, q + 8,
			       len - 8 < sizeof(v->goaway_debug) ? len - 8
								 : sizeof(v->goaway_debug) - 1);
		} else if (type == F_PING && (flags & FL_ACK)) {
			v->pings++;
		}
		p += 9 + len;
		n -= 9 + len;
	}
	buf_release(&out);
}

/* ---- cases ---- */

/* SETTINGS_MAX_CONCURRENT_STREAMS is advertised by server sessions only, and a stream above
 * it is refused (before our SETTINGS are acknowledged) or a connection error (after). */
static void test_max_streams(void)
{
	struct h2_settings set;
	struct srv s;
	struct seen v;
	struct buf b = BUF_INIT;

	h2_settings_default(&set);
	set.max_streams = 4;
	srv_init(&s, &set);
	parse_out(&s, &v);
	CHECK_INT_EQ(v.setting[3], 4);	   /* MAX_CONCURRENT_STREAMS */
	CHECK_INT_EQ(v.setting[6], 16384); /* MAX_HEADER_LIST_SIZE */
	preface(&b);
	for (uint32_t sid = 1; sid <= 9; sid += 2)
		headers(&b, sid);
	CHECK_INT_EQ(feed(&s, &b), 0);
	CHECK_INT_EQ(s.requests, 4);
	parse_out(&s, &v);
	CHECK_INT_EQ(v.rst_code[9], H2_REFUSED_STREAM);
	CHECK_INT_EQ(v.rst_code[1], -1);
	/* once our SETTINGS are acknowledged, one more is a protocol error */
	frame(&b, F_SETTINGS, FL_ACK, 0, NULL, 0);
	headers(&b, 11);
	CHECK(feed(&s, &b) == 0);
	parse_out(&s, &v);
	CHECK(v.goaway == H2_PROTOCOL_ERROR || v.rst_code[11] == H2_REFUSED_STREAM);
	CHECK_INT_EQ(s.requests, 4);
	h2_session_free(s.h);

	/* a client session does not advertise it; a server with 0 neither */
	set.max_streams = 0;
	srv_init(&s, &set);
	parse_out(&s, &v);
	CHECK_INT_EQ(v.setting[3], -1);
	h2_session_free(s.h);
	buf_release(&b);
}

/* Rapid reset: streams reset before they were answered take a token each; the one that finds
 * none ends the session with GOAWAY(ENHANCE_YOUR_CALM) and stops reading at once. Streams
 * reset after their answer cost nothing. */
static void test_rapid_reset(void)
{
	struct h2_settings set;
	struct srv s;
	struct seen v;
	struct buf b = BUF_INIT;
	int rv;

	h2_settings_default(&set);
	set.reset_burst = 10;
	set.reset_rate = 0;
	srv_init(&s, &set);
	preface(&b);
	for (uint32_t i = 0; i < 1000; i++) {
		headers(&b, 1 + 2 * i);
		rst(&b, 1 + 2 * i, H2_CANCEL);
	}
	rv = feed(&s, &b);
	CHECK_INT_EQ(rv, H2_ERR_CALM);
	CHECK_STR_CONTAINS(h2_strerror(rv), "ENHANCE_YOUR_CALM");
	CHECK_INT_EQ(s.requests, 11); /* the storm stopped where the bucket ran dry */
	parse_out(&s, &v);
	CHECK_INT_EQ(v.goaway, H2_ENHANCE_CALM);
	CHECK_INT_EQ(s.goaway_sent, H2_ENHANCE_CALM + 1);
	h2_session_free(s.h);

	/* answered streams may be reset freely */
	srv_init(&s, &set);
	s.pol = POL_RESPOND;
	preface(&b);
	for (uint32_t i = 0; i < 1000; i++) {
		headers(&b, 1 + 2 * i);
		rst(&b, 1 + 2 * i, H2_CANCEL);
	}
	CHECK_INT_EQ(feed(&s, &b), 0);
	CHECK_INT_EQ(s.requests, 1000);
	CHECK_INT_EQ(s.closes, 1000);
	parse_out(&s, &v);
	CHECK_INT_EQ(v.goaway, -1);
	h2_session_free(s.h);

	/* the bucket refills at reset_rate */
	set.reset_rate = 1000;
	srv_init(&s, &set);
	preface(&b);
	for (uint32_t i = 0; i < 10; i++) {
		headers(&b, 1 + 2 * i);
		rst(&b, 1 + 2 * i, H2_CANCEL);
	}
	CHECK_INT_EQ(feed(&s, &b), 0);
	usleep(50 * 1000); /* >= 50 tokens, capped at the burst of 10 */
	for (uint32_t i = 10; i < 20; i++) {
		headers(&b, 1 + 2 * i);
		rst(&b, 1 + 2 * i, H2_CANCEL);
	}
	CHECK_INT_EQ(feed(&s, &b), 0);
	h2_session_free(s.h);

	/* no limit set: nghttp2's own (1000, then 33/s, counting every reset) is out of reach */
	set.reset_burst = 0;
	srv_init(&s, &set);
	preface(&b);
	for (uint32_t i = 0; i < 3000; i++) {
		headers(&b, 1 + 2 * i);
		rst(&b, 1 + 2 * i, H2_CANCEL);
	}
	CHECK_INT_EQ(feed(&s, &b), 0);
	CHECK_INT_EQ(s.requests, 3000);
	parse_out(&s, &v);
	CHECK_INT_EQ(v.goaway, -1);
	h2_session_free(s.h);
	buf_release(&b);
}

/* A header block may continue over at most 8 CONTINUATION frames. */
static void test_continuation_flood(void)
{
	struct h2_settings set;
	struct srv s;
	struct buf b = BUF_INIT, hb = BUF_INIT, pad = BUF_INIT;

	h2_settings_default(&set);
	for (int i = 0; i < 3; i++)
		hpack_lit(&pad, "x-pad", "0123456789");
	/* 3 CONTINUATIONs: fine */
	srv_init(&s, &set);
	preface(&b);
	request_block(&hb);
	frame(&b, F_HEADERS, FL_END_STREAM, 1, buf_head(&hb), buf_len(&hb));
	for (int i = 0; i < 3; i++)
		frame(&b, F_CONTINUATION, i == 2 ? FL_END_HEADERS : 0, 1, buf_head(&pad),
		      buf_len(&pad));
	CHECK_INT_EQ(feed(&s, &b), 0);
	CHECK_INT_EQ(s.requests, 1);
	h2_session_free(s.h);

	/* 10000 of them, never ending: a connection error after the 8th */
	srv_init(&s, &set);
	preface(&b);
	frame(&b, F_HEADERS, FL_END_STREAM, 1, buf_head(&hb), buf_len(&hb));
	for (int i = 0; i < 10000; i++)
		frame(&b, F_CONTINUATION, 0, 1, buf_head(&pad), buf_len(&pad));
	CHECK(feed(&s, &b) < 0);
	CHECK_INT_EQ(s.requests, 0);
	h2_session_free(s.h);
	buf_release(&b);
	buf_release(&hb);
	buf_release(&pad);
}

/* SETTINGS: a burst of 256 frames, then 32 a second; more entries than 32 in one frame. */
static void test_settings_flood(void)
{
	struct h2_settings set;
	struct srv s;
	struct seen v;
	struct buf b = BUF_INIT;
	uint8_t e[6 * 40];
	int rv;

	h2_settings_default(&set);
	srv_init(&s, &set);
	preface(&b);
	for (int i = 0; i < 200; i++)
		frame(&b, F_SETTINGS, 0, 0, NULL, 0);
	CHECK_INT_EQ(feed(&s, &b), 0);
	for (int i = 0; i < 1000; i++)
		frame(&b, F_SETTINGS, 0, 0, NULL, 0);
	rv = feed(&s, &b);
	CHECK_INT_EQ(rv, H2_ERR_CALM);
	parse_out(&s, &v);
	CHECK_INT_EQ(v.goaway, H2_ENHANCE_CALM);
	h2_session_free(s.h);

	memset(e, 0, sizeof(e));
	for (int i = 0; i < 40; i++)
		e[6 * i + 1] = 2; /* ENABLE_PUSH = 0, 40 times */
	srv_init(&s, &set);
	preface(&b);
	frame(&b, F_SETTINGS, 0, 0, e, sizeof(e));
	CHECK_INT_EQ(feed(&s, &b), 0); /* nghttp2 ends the session itself */
	parse_out(&s, &v);
	CHECK_INT_EQ(v.goaway, H2_ENHANCE_CALM);
	CHECK(!h2_session_want_read(s.h));
	h2_session_free(s.h);
	buf_release(&b);
}

/* PINGs from a peer that does not read our answers: at most 1000 ACKs wait, then the
 * session ends; a peer that reads may ping as often as it likes. */
static void test_ping_flood(void)
{
	struct h2_settings set;
	struct srv s;
	struct seen v;
	struct buf b = BUF_INIT;
	uint8_t data[8] = {1, 2, 3, 4, 5, 6, 7, 8};
	size_t acks = 0;

	h2_settings_default(&set);
	srv_init(&s, &set);
	preface(&b);
	CHECK_INT_EQ(feed(&s, &b), 0);
	for (int round = 0; round < 10; round++) {
		for (int i = 0; i < 500; i++)
			frame(&b, F_PING, 0, 0, data, 8);
		CHECK_INT_EQ(feed(&s, &b), 0);
		parse_out(&s, &v);
		acks += v.pings;
	}
	CHECK_INT_EQ(acks, 5000);
	h2_session_free(s.h);

	srv_init(&s, &set);
	preface(&b);
	for (int i = 0; i < 5000; i++)
		frame(&b, F_PING, 0, 0, data, 8);
	CHECK(feed(&s, &b) < 0);
	h2_session_free(s.h);
	buf_release(&b);
}

/* gRPC keepalive enforcement (grpc-go's): PINGs closer than ping_min_ms with no HEADERS or
 * DATA in between are strikes; the third gets GOAWAY ENHANCE_YOUR_CALM "too_many_pings",
 * once, and the open streams go on. Without streams the spacing wanted is two hours unless
 * allowed. */
static void test_ping_strikes(void)
{
	static const uint8_t data[8] = {1, 2, 3, 4, 5, 6, 7, 8}, msg[5] = {0};
	struct h2_settings set;
	struct srv s;
	struct seen v;
	struct buf b = BUF_INIT;

	h2_settings_default(&set);
	set.ping_min_ms = 60000;
	srv_init(&s, &set);
	preface(&b);
	headers(&b, 1); /* a call stays open */
	CHECK_INT_EQ(feed(&s, &b), 0);
	for (int i = 0; i < 3; i++) /* the first is free, then two strikes */
		frame(&b, F_PING, 0, 0, data, 8);
	CHECK_INT_EQ(feed(&s, &b), 0);
	/* HEADERS or DATA either way in between: the next PING is free and the count restarts */
	headers(&b, 3);
	frame(&b, F_PING, 0, 0, data, 8);
	frame(&b, F_PING, 0, 0, data, 8);
	frame(&b, F_DATA, 0, 1, msg, 5);
	frame(&b, F_PING, 0, 0, data, 8);
	frame(&b, F_PING, 0, 0, data, 8);
	frame(&b, F_PING, 0, 0, data, 8);
	CHECK_INT_EQ(feed(&s, &b), 0);
	parse_out(&s, &v);
	CHECK_INT_EQ(v.goaway, -1);
	CHECK_INT_EQ(v.pings, 8);
	frame(&b, F_PING, 0, 0, data, 8); /* the third strike in a row */
	CHECK_INT_EQ(feed(&s, &b), 0);
	parse_out(&s, &v);
	CHECK_INT_EQ(v.goaway, H2_ENHANCE_CALM);
	CHECK_STR_EQ(v.goaway_debug, "too_many_pings");
	CHECK_INT_EQ(s.goaway_sent, H2_ENHANCE_CALM + 1);
	/* the open calls go on (DATA still taken); more PINGs get no second GOAWAY */
	frame(&b, F_DATA, 0, 1, msg, 5);
	frame(&b, F_PING, 0, 0, data, 8);
	frame(&b, F_PING, 0, 0, data, 8);
	frame(&b, F_PING, 0, 0, data, 8);
	frame(&b, F_PING, 0, 0, data, 8);
	CHECK_INT_EQ(feed(&s, &b), 0);
	parse_out(&s, &v);
	CHECK_INT_EQ(v.goaway, -1);
	CHECK_INT_EQ(v.pings, 4);
	CHECK_INT_EQ(s.closes, 0);
	CHECK(h2_session_want_read(s.h));
	h2_session_free(s.h);

	/* no call open: two hours wanted, whatever ping_min_ms ... */
	set.ping_min_ms = 1;
	srv_init(&s, &set);
	preface(&b);
	for (int i = 0; i < 4; i++) {
		frame(&b, F_PING, 0, 0, data, 8);
		usleep(3000);
		CHECK_INT_EQ(feed(&s, &b), 0);
		parse_out(&s, &v);
		CHECK_INT_EQ(v.goaway, i < 3 ? -1 : (int)H2_ENHANCE_CALM);
	}
	h2_session_free(s.h);
	/* ... unless PINGs without calls are allowed */
	set.ping_without_calls = true;
	srv_init(&s, &set);
	preface(&b);
	for (int i = 0; i < 10; i++) {
		frame(&b, F_PING, 0, 0, data, 8);
		usleep(3000);
		CHECK_INT_EQ(feed(&s, &b), 0);
		parse_out(&s, &v);
		CHECK_INT_EQ(v.goaway, -1);
	}
	h2_session_free(s.h);
	buf_release(&b);
}

/* Held bytes: counted per session against max_held, per stream, released with the stream. */
static void test_held(void)
{
	struct h2_settings set;
	struct srv s;
	struct buf b = BUF_INIT;

	h2_settings_default(&set);
	set.max_held = 1000;
	srv_init(&s, &set);
	preface(&b);
	headers(&b, 1);
	headers(&b, 3);
	headers(&b, 5);
	CHECK_INT_EQ(feed(&s, &b), 0);
	CHECK_INT_EQ(s.requests, 3);
	CHECK_INT_EQ(h2_stream_hold(s.st[0], 600), 0);
	CHECK_INT_EQ(h2_stream_hold(s.st[1], 500), -ENOBUFS);
	CHECK_INT_EQ(h2_session_held(s.h), 600);
	CHECK_INT_EQ(h2_stream_hold(s.st[1], 400), 0);
	CHECK_INT_EQ(h2_session_held(s.h), 1000);
	CHECK_INT_EQ(h2_stream_hold(s.st[0], 700), -ENOBUFS);
	CHECK_INT_EQ(h2_stream_hold(s.st[0], 100), 0); /* shrinking always works */
	CHECK_INT_EQ(h2_stream_hold(s.st[2], 500), 0);
	CHECK_INT_EQ(h2_session_held(s.h), 1000);
	/* a stream that closes takes its count along; so does a released one */
	rst(&b, 3, H2_CANCEL);
	CHECK_INT_EQ(feed(&s, &b), 0);
	CHECK_INT_EQ(h2_session_held(s.h), 600);
	h2_stream_release(s.st[2], H2_CANCEL);
	CHECK_INT_EQ(h2_session_held(s.h), 100);
	h2_session_free(s.h);

	set.max_held = 0; /* no limit */
	srv_init(&s, &set);
	preface(&b);
	headers(&b, 1);
	CHECK_INT_EQ(feed(&s, &b), 0);
	CHECK_INT_EQ(h2_stream_hold(s.st[0], 1u << 30), 0);
	h2_session_free(s.h);
	buf_release(&b);
}

/* Our own GOAWAY is reported once it is sent, so that the owner replaces the connection. */
static void test_goaway_sent(void)
{
	struct h2_settings set;
	struct srv s;
	struct seen v;

	h2_settings_default(&set);
	srv_init(&s, &set);
	CHECK_INT_EQ(h2_session_goaway(s.h, H2_NO_ERROR, "bye"), 0);
	CHECK_INT_EQ(s.goaway_sent, 0);
	parse_out(&s, &v);
	CHECK_INT_EQ(v.goaway, H2_NO_ERROR);
	CHECK_INT_EQ(s.goaway_sent, H2_NO_ERROR + 1);
	h2_session_free(s.h);
}

/* A fresh server session (s) with settings set; a peer opens stream 1, which the session
 * holds and never consumes, and sends it DATA only as the connection's credit allows, up to a
 * stream window or until no credit comes back. Returns the bytes sent; *granted is the credit
 * the peer got in all, v what the session said last. */
static uint64_t send_as_granted(struct srv *s, const struct h2_settings *set, uint64_t *granted,
				struct seen *v)
{
	static uint8_t chunk[16384];
	struct buf b = BUF_INIT;
	uint64_t sent = 0;

	srv_init(s, set);
	parse_out(s, v);
	s->pol = POL_HOLD;
	preface(&b);
	frame(&b, F_SETTINGS, FL_ACK, 0, NULL, 0); /* our stream window applies */
	headers(&b, 1);
	CHECK_INT_EQ(feed(s, &b), 0);
	*granted = set->conn_window;
	for (int i = 0; i < 1000 && sent < set->stream_window; i++) {
		uint64_t before = sent;

		while (sent + sizeof(chunk) <= *granted && sent < set->stream_window) {
			frame(&b, F_DATA, 0, 1, chunk, sizeof(chunk));
			sent += sizeof(chunk);
		}
		CHECK_INT_EQ(feed(s, &b), 0);
		parse_out(s, v);
		*granted += v->conn_credit;
		if (sent == before)
			break; /* no credit came back: the peer is stopped */
	}
	buf_release(&b);
	return sent;
}

/* The connection window: sized to the path (gain x rate x smallest round trip, within the
 * floor and the cap), granted with a WINDOW_UPDATE when it grows, never taken back; and given
 * back on receipt, whatever the stream's owner does with the bytes. */
static void test_conn_window(void)
{
	struct h2_settings set;
	struct srv s;
	struct seen v;
	uint64_t granted, sent;

	/* a veth pair at 2 Gbit/s (50 us): the floor; a 1 Gbit/s path of 50 ms: 4 x 6.25 MB */
	CHECK_INT_EQ(h2_window_for(250000000, 50, 512 * 1024, 1u << 28), 512 * 1024);
	CHECK_INT_EQ(h2_window_for(125000000, 50000, 512 * 1024, 1u << 28), 25000000);
	CHECK_INT_EQ(h2_window_for(125000000, 50000, 512 * 1024, 1u << 20), 1u << 20);
	CHECK_INT_EQ(h2_window_for(UINT64_C(1) << 40, 1000000, 0, UINT32_MAX), INT32_MAX);

	h2_settings_default(&set);
	CHECK_INT_EQ(set.conn_window, 512 * 1024);
	srv_init(&s, &set);
	parse_out(&s, &v);
	CHECK_INT_EQ(v.conn_credit, 512 * 1024 - 65535); /* the floor, granted at the start */
	CHECK_INT_EQ(h2_session_tune_window(s.h, 250000000, 50), 512 * 1024);
	parse_out(&s, &v);
	CHECK_INT_EQ(v.conn_credit, 0);
	CHECK_INT_EQ(h2_session_tune_window(s.h, 125000000, 50000), 25000000);
	parse_out(&s, &v);
	CHECK_INT_EQ(v.conn_credit, 25000000 - 512 * 1024);
	/* a slower spell does not take credit back */
	CHECK_INT_EQ(h2_session_tune_window(s.h, 1000, 50), 25000000);
	parse_out(&s, &v);
	CHECK_INT_EQ(v.conn_credit, 0);

	h2_session_free(s.h);

	/* a stream window of DATA (2 MiB, four connection windows) on a stream whose owner
	 * never consumes: the connection's credit comes back as the bytes arrive, so the peer,
	 * sending only what it was granted, gets all of it through */
	sent = send_as_granted(&s, &set, &granted, &v);
	CHECK_INT_EQ(sent, set.stream_window);
	CHECK_INT_EQ(v.rst_code[1], -1);
	CHECK_INT_EQ(v.goaway, -1);
	h2_session_free(s.h);

	/* past max_unforwarded bytes waiting for their owner, the connection's credit waits
	 * too; forwarding them pays it */
	set.max_unforwarded = 1u << 20;
	sent = send_as_granted(&s, &set, &granted, &v);
	CHECK(sent >= set.max_unforwarded);
	CHECK(sent <= set.max_unforwarded + set.conn_window);
	CHECK(sent < set.stream_window);
	h2_stream_consume(s.st[0], sent);
	parse_out(&s, &v);
	granted += v.conn_credit;
	CHECK(granted - set.conn_window >= sent - set.conn_window / 2);
	CHECK_INT_EQ(v.goaway, -1);
	h2_session_free(s.h);
}

int main(void)
{
	test_conn_window();
	test_max_streams();
	test_rapid_reset();
	test_continuation_flood();
	test_settings_flood();
	test_ping_flood();
	test_ping_strikes();
	test_held();
	test_goaway_sent();
	return check_done("test_h2");
}
