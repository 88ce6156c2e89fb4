// SPDX-License-Identifier: MIT
/* Unit tests for grpc.c, grpc_ctl.c and h2.c in memory: a client and a server h2 session wired
 * back to back (bytes moved by hand, optionally one byte at a time), gRPC calls in message mode
 * and in bytes mode (driven through their relay-end ops), hand-made "raw" streams for malformed
 * input, flow control and the head-of-line property, and the framing/control-message helpers. */
#include "buf.h"
#include "check.h"
#include "grpc.h"
#include "h2.h"
#include "relay.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#define MAXC 64

/* ---- deterministic data ---------------------------------------------------------------- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static void fill_random(uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		rng_state ^= rng_state << 13;
		rng_state ^= rng_state >> 7;
		rng_state ^= rng_state << 17;
		p[i] = (uint8_t)rng_state;
	}
}

static uint8_t *random_bytes(size_t n)
{
	uint8_t *p = malloc(n ? n : 1);

	if (p)
		fill_random(p, n);
	return p;
}

/* b holds exactly the n bytes at p (n may be 0). */
static bool same(const struct buf *b, const void *p, size_t n)
{
	return buf_len(b) == n && (n == 0 || !memcmp(buf_head(b), p, n));
}

/* ---- raw stream owner: hand-made gRPC bytes on either side ------------------------------ */

struct raw {
	struct h2_stream *st;
	struct buf out; /* bytes to send, exactly as given */
	bool eof;	/* end our side once out drains */
	struct buf in;	/* DATA received */
	bool autoconsume;
	bool in_end;
	int nheaders;
	char status[16], message[256], ntun_error[32], http_status[8];
	bool closed;
	uint32_t close_code;
};

static void copy_hdr(char *dst, size_t size, const struct h2_nv *nv, size_t n, const char *name)
{
	const char *v = grpc_md_get(nv, n, name);

	if (v)
		snprintf(dst, size, "%s", v);
}

static void raw_headers(void *owner, enum h2_headers_kind kind, const struct h2_nv *nv, size_t n,
			bool end)
{
	struct raw *r = owner;

	r->nheaders++;
	copy_hdr(r->http_status, sizeof(r->http_status), nv, n, ":status");
	copy_hdr(r->status, sizeof(r->status), nv, n, "grpc-status");
	copy_hdr(r->message, sizeof(r->message), nv, n, "grpc-message");
	copy_hdr(r->ntun_error, sizeof(r->ntun_error), nv, n, "ntun-error");
	if (end)
		r->in_end = true;
}

static int raw_data(void *owner, const uint8_t *p, size_t n)
{
	struct raw *r = owner;

	buf_append(&r->in, p, n);
	if (r->autoconsume)
		h2_stream_consume(r->st, n);
	return 0;
}

static void raw_end(void *owner)
{
	((struct raw *)owner)->in_end = true;
}

static size_t raw_avail(void *owner, bool *eof)
{
	struct raw *r = owner;

	*eof = r->eof;
	return buf_len(&r->out);
}

static int raw_peek(void *owner, struct iovec *iov, size_t n)
{
	struct raw *r = owner;

	iov[0] = (struct iovec){buf_head(&r->out), n};
	return 1;
}

static void raw_drop(void *owner, size_t n)
{
	struct raw *r = owner;

	buf_consume(&r->out, n);
}

static void raw_close(void *owner, uint32_t code)
{
	struct raw *r = owner;

	r->closed = true;
	r->close_code = code;
	r->st = NULL;
}

static const struct h2_stream_cbs raw_cbs = {
	.on_headers = raw_headers,
	.on_data = raw_data,
	.on_end = raw_end,
	.out_avail = raw_avail,
	.out_peek = raw_peek,
	.out_drop = raw_drop,
	.on_close = raw_close,
};

/* A raw owner that keeps the pointers on_data lends until on_data_done, and checks there
 * that they still hold what was delivered. */
#define LEND_MAX 256

struct lender {
	struct raw r; /* first: the raw callbacks see a struct raw */
	const uint8_t *p[LEND_MAX];
	size_t n[LEND_MAX], off[LEND_MAX];
	int nlent, ndone, nrecv_with_data, bad;
	bool closed_with_lent;
};

static int lend_data(void *owner, const uint8_t *p, size_t n)
{
	struct lender *l = owner;

	if (l->nlent == 0)
		l->nrecv_with_data++;
	if (l->nlent < LEND_MAX) {
		l->p[l->nlent] = p;
		l->n[l->nlent] = n;
		l->off[l->nlent] = buf_len(&l->r.in);
		l->nlent++;
	}
	return raw_data(owner, p, n);
}

static void lend_done(void *owner)
{
	struct lender *l = owner;

	l->ndone++;
	for (int i = 0; i < l->nlent; i++)
		if (memcmp(l->p[i], buf_head(&l->r.in) + l->off[i], l->n[i]))
			l->bad++;
	if (l->nlent == 0)
		l->bad++; /* called without anything lent */
	l->nlent = 0;
}

static void lend_close(void *owner, uint32_t code)
{
	struct lender *l = owner;

	if (l->nlent)
		l->closed_with_lent = true;
	raw_close(owner, code);
}

static const struct h2_stream_cbs lend_cbs = {
	.on_headers = raw_headers,
	.on_data = lend_data,
	.on_data_done = lend_done,
	.on_end = raw_end,
	.out_avail = raw_avail,
	.out_peek = raw_peek,
	.out_drop = raw_drop,
	.on_close = lend_close,
};

static struct raw *raw_new(void)
{
	struct raw *r = calloc(1, sizeof(*r));

	buf_init(&r->out);
	buf_init(&r->in);
	r->autoconsume = true;
	return r;
}

static void raw_free(struct raw *r)
{
	if (!r)
		return;
	if (r->st)
		h2_stream_release(r->st, H2_CANCEL);
	buf_release(&r->out);
	buf_release(&r->in);
	free(r);
}

/* Queues raw bytes (and maybe the end) on a raw stream. */
static void raw_send(struct raw *r, const void *p, size_t n, bool eof)
{
	buf_append(&r->out, p, n);
	r->eof = eof;
	if (r->st)
		h2_stream_resume(r->st);
}

/* Queues one gRPC message: prefix with flag, then the body. */
static void raw_msg(struct raw *r, uint8_t flag, const void *body, size_t n, bool eof)
{
	uint8_t pfx[5];

	grpc_frame_prefix(pfx, false, (uint32_t)n);
	pfx[0] = flag;
	buf_append(&r->out, pfx, 5);
	raw_send(r, body, n, eof);
}

/* ---- two sessions back to back --------------------------------------------------------- */

enum policy {
	P_ACCEPT, /* grpc_call_accept in pol_mode */
	P_REJECT, /* grpc_reject with rej_* */
	P_RAW,	  /* a raw owner answers (raw_encoding in its response headers) */
	P_IGNORE, /* do nothing: h2 refuses the stream */
};

struct pair {
	struct h2_session *c, *s;
	struct h2_session_cbs ccbs, scbs;
	enum policy pol;
	enum grpc_mode pol_mode;
	bool pol_gzip;
	enum grpc_status rej_status;
	const char *rej_msg, *rej_err;
	const char *raw_encoding;
	struct grpc_call *acc[MAXC]; /* server calls in arrival order */
	size_t nacc;
	struct raw *raws[MAXC];
	size_t nraw;
	int requests;
	uint64_t c2s, s2c; /* bytes moved on the wire */
	bool bytewise;	   /* feed received bytes one at a time */
	int err;	   /* first session error */
};

static void on_request(void *arg, struct h2_stream *st, const struct h2_nv *nv, size_t n, bool end)
{
	struct pair *p = arg;
	const char *path, *msg;

	p->requests++;
	CHECK_INT_EQ(grpc_request_check(nv, n, true, &path, &msg), GRPC_OK);
	switch (p->pol) {
	case P_ACCEPT:
		if (p->nacc < MAXC)
			p->acc[p->nacc++] =
				grpc_call_accept(st, nv, n, end, p->pol_mode, p->pol_gzip);
		break;
	case P_REJECT:
		CHECK_INT_EQ(grpc_reject(st, p->rej_status, p->rej_msg, p->rej_err), 0);
		break;
	case P_RAW: {
		struct raw *r = raw_new();
		struct h2_nv rh[3] = {H2_NV(":status", "200"),
				      H2_NV("content-type", "application/grpc")};
		size_t nh = 2;

		if (p->raw_encoding)
			rh[nh++] = (struct h2_nv)H2_NV("grpc-encoding", p->raw_encoding);
		r->st = st;
		r->in_end = end;
		h2_stream_attach(st, &raw_cbs, r);
		CHECK_INT_EQ(h2_stream_respond(st, rh, nh, true), 0);
		if (p->nraw < MAXC)
			p->raws[p->nraw++] = r;
		break;
	}
	case P_IGNORE:
		break;
	}
}

static void pair_init(struct pair *p, const struct h2_settings *cset,
		      const struct h2_settings *sset)
{
	struct h2_settings def;

	memset(p, 0, sizeof(*p));
	h2_settings_default(&def);
	p->scbs.on_request = on_request;
	p->c = h2_session_new(false, cset ? cset : &def, &p->ccbs, p);
	p->s = h2_session_new(true, sset ? sset : &def, &p->scbs, p);
	CHECK(p->c && p->s);
	p->pol = P_ACCEPT;
	p->pol_mode = GRPC_BYTES;
}

/* Moves everything one session has to send into the other. Returns bytes moved. */
static size_t xfer(struct pair *p, bool to_server)
{
	struct h2_session *from = to_server ? p->c : p->s, *to = to_server ? p->s : p->c;
	struct buf b = BUF_INIT;
	size_t total = 0;
	int rv;

	for (;;) {
		rv = h2_session_send(from, &b, 64 * 1024);
		if (rv < 0 && !p->err)
			p->err = rv;
		if (!buf_len(&b))
			break;
		if (p->bytewise) {
			for (size_t i = 0; i < buf_len(&b); i++) {
				rv = h2_session_recv(to, buf_head(&b) + i, 1);
				if (rv < 0 && !p->err)
					p->err = rv;
			}
		} else {
			rv = h2_session_recv(to, buf_head(&b), buf_len(&b));
			if (rv < 0 && !p->err)
				p->err = rv;
		}
		total += buf_len(&b);
		buf_release(&b);
		if (rv < 0)
			break;
	}
	if (to_server)
		p->c2s += total;
	else
		p->s2c += total;
	return total;
}

/* Moves bytes both ways until both sessions are quiet. Returns bytes moved. */
static size_t settle(struct pair *p)
{
	size_t total = 0, n;

	for (int i = 0; i < 100000; i++) {
		n = xfer(p, true);
		n += xfer(p, false);
		total += n;
		if (!n)
			break;
	}
	return total;
}

static void pair_free(struct pair *p)
{
	for (size_t i = 0; i < p->nacc; i++)
		grpc_call_free(p->acc[i]);
	for (size_t i = 0; i < p->nraw; i++)
		raw_free(p->raws[i]);
	settle(p);
	h2_session_free(p->c);
	h2_session_free(p->s);
}

static struct grpc_call *open_call(struct pair *p, enum grpc_mode mode, bool gzip)
{
	struct h2_nv md[] = {H2_NV("ntun-dst", "192.168.1.5:80")};
	struct grpc_call *c = grpc_call_open(p->c, "/ntun.v1.Relay/Connect", md, 1, mode, gzip);

	CHECK(c != NULL);
	return c;
}

/* Opens a call and lets the server see it; returns the client call, *srv the server's. */
static struct grpc_call *open_pair(struct pair *p, enum grpc_mode mode, bool gzip,
				   struct grpc_call **srv)
{
	size_t before = p->nacc;
	struct grpc_call *c;

	p->pol = P_ACCEPT;
	p->pol_mode = mode;
	p->pol_gzip = gzip;
	c = open_call(p, mode, gzip);
	settle(p);
	CHECK_INT_EQ(p->nacc, before + 1);
	*srv = p->nacc > before ? p->acc[before] : NULL;
	return c;
}

/* Opens a client stream owned by r (raw_cbs or a variant) with the standard gRPC request
 * headers (and grpc-encoding enc). */
static void raw_request(struct pair *p, struct raw *r, const struct h2_stream_cbs *cbs,
			const char *enc)
{
	struct h2_nv nv[8] = {
		H2_NV(":method", "POST"),
		H2_NV(":scheme", "https"),
		H2_NV(":path", "/ntun.v1.Relay/Connect"),
		H2_NV(":authority", "ntun"),
		H2_NV("content-type", "application/grpc"),
		H2_NV("te", "trailers"),
	};
	size_t n = 6;

	if (enc)
		nv[n++] = (struct h2_nv)H2_NV("grpc-encoding", enc);
	r->st = h2_stream_request(p->c, nv, n, cbs, r);
	CHECK(r->st != NULL);
}

/* A raw client stream, freed with the pair. */
static struct raw *raw_open(struct pair *p, const char *enc)
{
	struct raw *r = raw_new();

	raw_request(p, r, &raw_cbs, enc);
	if (p->nraw < MAXC)
		p->raws[p->nraw++] = r;
	return r;
}

/* ---- bytes-mode helpers through the relay-end ops -------------------------------------- */

/* Takes up to max readable bytes from e into dst. */
static size_t end_read(struct relay_end *e, struct buf *dst, size_t max)
{
	const uint8_t *q;
	size_t total = 0, n;

	while (total < max) {
		n = e->ops->peek(e, &q);
		if (!n)
			break;
		if (n > max - total)
			n = max - total;
		if (dst)
			buf_append(dst, q, n);
		e->ops->consume(e, n);
		total += n;
	}
	return total;
}

/* Writes as much of p as e takes now. */
static size_t end_write(struct relay_end *e, const uint8_t *p, size_t n)
{
	size_t t = 0, w;

	while (t < n) {
		w = e->ops->write(e, p + t, n - t);
		if (!w)
			break;
		t += w;
	}
	return t;
}

/* Streams n bytes from src to dst (bytes-mode ends on opposite sides of p), reading as they
 * come; returns what dst delivered in got. True if all n arrived. */
static bool stream_bytes(struct pair *p, struct relay_end *src, struct relay_end *dst,
			 const uint8_t *data, size_t n, struct buf *got)
{
	size_t sent = 0;

	for (int i = 0; i < 100000 && buf_len(got) < n; i++) {
		size_t w = end_write(src, data + sent, n - sent);

		sent += w;
		settle(p);
		if (!end_read(dst, got, SIZE_MAX) && !w && sent == n && !settle(p))
			break;
		if (src->rx_err || dst->rx_err)
			break;
	}
	return same(got, data, n);
}

/* Message mode: receives one message within a bounded number of settles. 1, 0 or -errno. */
static int recv_msg(struct pair *p, struct grpc_call *c, struct buf *dst)
{
	const uint8_t *q;
	size_t n;
	int rv = 0;

	for (int i = 0; i < 10000; i++) {
		rv = grpc_call_recv(c, &q, &n);
		if (rv != 0)
			break;
		if (!settle(p)) {
			rv = grpc_call_recv(c, &q, &n);
			break;
		}
	}
	if (rv == 1 && dst) {
		buf_release(dst);
		buf_append(dst, q, n);
	}
	return rv;
}

/* ---- framing vectors ------------------------------------------------------------------- */

static void test_frame_vectors(void)
{
	uint8_t pfx[5], hdr[11];
	static const uint8_t p1[5] = {0, 1, 2, 3, 4}, p2[5] = {1, 0xff, 0xff, 0xff, 0xff},
			     p0[5] = {0, 0, 0, 0, 0};

	grpc_frame_prefix(pfx, false, 0x01020304);
	CHECK(!memcmp(pfx, p1, 5));
	grpc_frame_prefix(pfx, true, 0xffffffffu);
	CHECK(!memcmp(pfx, p2, 5));
	grpc_frame_prefix(pfx, false, 0);
	CHECK(!memcmp(pfx, p0, 5));

	CHECK_INT_EQ(grpc_chunk_header(hdr, 0), 2);
	CHECK(hdr[0] == 0x0a && hdr[1] == 0);
	CHECK_INT_EQ(grpc_chunk_header(hdr, 127), 2);
	CHECK(hdr[1] == 0x7f);
	CHECK_INT_EQ(grpc_chunk_header(hdr, 128), 3);
	CHECK(hdr[1] == 0x80 && hdr[2] == 0x01);
	CHECK_INT_EQ(grpc_chunk_header(hdr, 300), 3);
	CHECK(hdr[1] == 0xac && hdr[2] == 0x02);
	CHECK_INT_EQ(grpc_chunk_header(hdr, 16384), 4);
	CHECK(hdr[1] == 0x80 && hdr[2] == 0x80 && hdr[3] == 0x01);
	CHECK_INT_EQ(grpc_chunk_header(hdr, GRPC_MAX_MESSAGE), 5);
	CHECK_INT_EQ(grpc_chunk_header(hdr, SIZE_MAX), 11); /* the documented worst case */
}

static int parse(const void *msg, size_t n, const char *want)
{
	const uint8_t *d;
	size_t len;
	int rv = grpc_chunk_parse(msg, n, &d, &len);

	if (rv == 0 && want && (len != strlen(want) || memcmp(d, want, len)))
		return 1;
	return rv;
}

static void test_chunk_parse(void)
{
	/* field 2 varint 150, field 3 fixed64, field 4 bytes "xy", field 5 fixed32, then data */
	static const uint8_t unknown[] = {0x10, 0x96, 0x01, 0x19, 1,	2,   3,	  4,	5,
					  6,	7,    8,    0x22, 0x02, 'x', 'y', 0x2d, 9,
					  9,	9,    9,    0x0a, 0x02, 'h', 'i'};
	static const uint8_t after[] = {
		0x0a, 0x03, 'a',  'b',	'c',  0x10, 0x01,
		0xf8, 0xff, 0xff, 0xff, 0x0f, 0x00}; /* data, then fields 2 and 0x1fffffff */
	static const uint8_t big_field[] = {0x82, 0x80, 0x80, 0x80, 0x10, 0}; /* field 2^29 */
	static const uint8_t twice[] = {0x0a, 0x01, 'a', 0x0a, 0x01, 'b'};
	static const uint8_t wrong_wt[] = {0x08, 0x01};
	static const uint8_t trunc_len[] = {0x0a, 0x05, 'a', 'b'};
	static const uint8_t trunc_varint[] = {0x0a, 0x80};
	static const uint8_t key0[] = {0x00, 0x01};
	static const uint8_t group[] = {0x1b, 0x1c};
	static const uint8_t wt7[] = {0x17, 0x00};
	static const uint8_t long_varint[] = {0x10, 0xff, 0xff, 0xff, 0xff, 0xff,
					      0xff, 0xff, 0xff, 0xff, 0xff, 0x01};
	static const uint8_t trunc_fixed64[] = {0x19, 1, 2, 3};
	static const uint8_t trunc_fixed32[] = {0x0a, 0x00, 0x2d, 1, 2};
	static const uint8_t huge_len[] = {0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 'a'};
	uint8_t big[1 + 3 + 20000];
	size_t hl;

	CHECK_INT_EQ(parse("\x0a\x03"
			   "abc",
			   5, "abc"),
		     0);
	CHECK_INT_EQ(parse("", 0, ""), 0);	   /* empty Chunk: no data */
	CHECK_INT_EQ(parse("\x0a\x00", 2, ""), 0); /* explicit empty data */
	CHECK_INT_EQ(parse(unknown, sizeof(unknown), "hi"), 0);
	CHECK_INT_EQ(parse(after, sizeof(after), "abc"), 0);
	CHECK_INT_EQ(parse("\x10\x01", 2, ""), 0); /* only an unknown field */
	CHECK_INT_EQ(parse(twice, sizeof(twice), NULL), -EPROTO);
	CHECK_INT_EQ(parse(wrong_wt, sizeof(wrong_wt), NULL), -EPROTO);
	CHECK_INT_EQ(parse(trunc_len, sizeof(trunc_len), NULL), -EPROTO);
	CHECK_INT_EQ(parse(trunc_varint, sizeof(trunc_varint), NULL), -EPROTO);
	CHECK_INT_EQ(parse(key0, sizeof(key0), NULL), -EPROTO);
	CHECK_INT_EQ(parse(group, sizeof(group), NULL), -EPROTO);
	CHECK_INT_EQ(parse(wt7, sizeof(wt7), NULL), -EPROTO);
	CHECK_INT_EQ(parse(long_varint, sizeof(long_varint), NULL), -EPROTO);
	CHECK_INT_EQ(parse(trunc_fixed64, sizeof(trunc_fixed64), NULL), -EPROTO);
	CHECK_INT_EQ(parse(trunc_fixed32, sizeof(trunc_fixed32), NULL), -EPROTO);
	CHECK_INT_EQ(parse(huge_len, sizeof(huge_len), NULL), -EPROTO);
	CHECK_INT_EQ(parse(big_field, sizeof(big_field), NULL), -EPROTO);

	/* what grpc_chunk_header writes, grpc_chunk_parse reads */
	hl = grpc_chunk_header(big, 20000);
	fill_random(big + hl, 20000);
	{
		const uint8_t *d;
		size_t len;

		CHECK_INT_EQ(grpc_chunk_parse(big, hl + 20000, &d, &len), 0);
		CHECK(d == big + hl);
		CHECK_INT_EQ(len, 20000);
		/* one byte short is truncated */
		CHECK_INT_EQ(grpc_chunk_parse(big, hl + 19999, &d, &len), -EPROTO);
	}
}

static void test_gzip_helpers(void)
{
	struct buf z = BUF_INIT, out = BUF_INIT;
	size_t n = 300000;
	uint8_t *data = random_bytes(n);
	uint8_t *zeros = calloc(1, 8u << 20);

	/* random data round trip */
	CHECK_INT_EQ(grpc_gzip(data, n, &z), 0);
	CHECK(buf_len(&z) > 18 && buf_head(&z)[0] == 0x1f && buf_head(&z)[1] == 0x8b);
	CHECK_INT_EQ(grpc_gunzip(buf_head(&z), buf_len(&z), &out, n), 0);
	CHECK(same(&out, data, n));
	buf_release(&out);
	/* one byte under the size: refused */
	CHECK_INT_EQ(grpc_gunzip(buf_head(&z), buf_len(&z), &out, n - 1), -EMSGSIZE);
	buf_release(&out);
	/* truncated and trailing garbage */
	CHECK_INT_EQ(grpc_gunzip(buf_head(&z), buf_len(&z) - 4, &out, n), -EPROTO);
	buf_release(&out);
	buf_append(&z, "junk", 4);
	CHECK_INT_EQ(grpc_gunzip(buf_head(&z), buf_len(&z), &out, n), -EPROTO);
	buf_release(&out);
	buf_release(&z);
	/* not gzip at all (a zlib stream) */
	CHECK_INT_EQ(grpc_gunzip((const uint8_t *)"\x78\x9c\x03\x00\x00\x00\x00\x01", 8, &out, n),
		     -EPROTO);
	buf_release(&out);
	/* empty input compresses to a valid empty member */
	CHECK_INT_EQ(grpc_gzip(NULL, 0, &z), 0);
	CHECK_INT_EQ(grpc_gunzip(buf_head(&z), buf_len(&z), &out, 0), 0);
	CHECK_INT_EQ(buf_len(&out), 0);
	buf_release(&z);
	buf_release(&out);
	/* a bomb: 8 MiB of zeros is a few KiB compressed; the cap stops inflation early */
	CHECK_INT_EQ(grpc_gzip(zeros, 8u << 20, &z), 0);
	CHECK(buf_len(&z) < 64 * 1024);
	CHECK_INT_EQ(grpc_gunzip(buf_head(&z), buf_len(&z), &out, GRPC_MAX_HELD), -EMSGSIZE);
	CHECK(out.cap <= 2 * (GRPC_MAX_HELD + 16384)); /* memory stayed near the cap */
	buf_release(&out);
	buf_release(&z);
	free(zeros);
	free(data);
}

static void test_request_check(void)
{
	const char *path, *msg;
#define REQ(...)                                                                          \
	({                                                                                \
		struct h2_nv nv_[] = {__VA_ARGS__};                                       \
		grpc_request_check(nv_, sizeof(nv_) / sizeof(nv_[0]), true, &path, &msg); \
	})
#define M(v)   H2_NV(":method", v)
#define P(v)   H2_NV(":path", v)
#define CT(v)  H2_NV("content-type", v)
#define ENC(v) H2_NV("grpc-encoding", v)

	CHECK_INT_EQ(REQ(M("POST"), P("/ntun.v1.Relay/Connect"), CT("application/grpc")), GRPC_OK);
	CHECK_STR_EQ(path, "/ntun.v1.Relay/Connect");
	CHECK(msg == NULL);
	CHECK_INT_EQ(REQ(M("POST"), P("/a/b"), CT("application/grpc+proto")), GRPC_OK);
	CHECK_INT_EQ(REQ(M("POST"), P("/a/b"), CT("application/grpc;charset=utf-8")), GRPC_OK);
	CHECK_INT_EQ(REQ(M("POST"), P("/a/b"), CT("application/grpc"), ENC("gzip")), GRPC_OK);
	{
		/* gzip only where it is enabled (gRPC: UNIMPLEMENTED for an encoding not taken) */
		struct h2_nv nv[] = {M("POST"), P("/a/b"), CT("application/grpc"), ENC("gzip")};

		CHECK_INT_EQ(grpc_request_check(nv, 4, false, &path, &msg), GRPC_UNIMPLEMENTED);
		CHECK_STR_CONTAINS(msg, "gzip is not enabled");
		nv[3] = (struct h2_nv)ENC("identity");
		CHECK_INT_EQ(grpc_request_check(nv, 4, false, &path, &msg), GRPC_OK);
	}
	CHECK_INT_EQ(REQ(M("POST"), P("/a/b"), CT("application/grpc"), ENC("identity")), GRPC_OK);
	CHECK_INT_EQ(REQ(M("GET"), P("/a/b"), CT("application/grpc")), GRPC_UNIMPLEMENTED);
	CHECK_STR_CONTAINS(msg, "POST");
	CHECK_INT_EQ(REQ(P("/a/b"), CT("application/grpc")), GRPC_UNIMPLEMENTED);
	CHECK_INT_EQ(REQ(M("POST"), P("/a/b")), GRPC_INVALID_ARGUMENT);
	CHECK_STR_CONTAINS(msg, "content-type");
	CHECK_INT_EQ(REQ(M("POST"), P("/a/b"), CT("application/grpcx")), GRPC_INVALID_ARGUMENT);
	CHECK_INT_EQ(REQ(M("POST"), P("/a/b"), CT("application/json")), GRPC_INVALID_ARGUMENT);
	CHECK_INT_EQ(REQ(M("POST"), P("/a/b"), CT("")), GRPC_INVALID_ARGUMENT);
	CHECK_INT_EQ(REQ(M("POST"), CT("application/grpc")), GRPC_UNIMPLEMENTED);
	CHECK_STR_CONTAINS(msg, ":path");
	CHECK_INT_EQ(REQ(M("POST"), P("a/b"), CT("application/grpc")), GRPC_UNIMPLEMENTED);
	CHECK_INT_EQ(REQ(M("POST"), P("/a/b"), CT("application/grpc"), ENC("deflate")),
		     GRPC_UNIMPLEMENTED);
	CHECK_STR_CONTAINS(msg, "grpc-encoding");
	CHECK_INT_EQ(REQ(M("POST"), P("/a/b"), CT("application/grpc"), ENC("snappy")),
		     GRPC_UNIMPLEMENTED);
#undef REQ
#undef M
#undef P
#undef CT
#undef ENC
	{
		struct h2_nv nv[] = {H2_NV("a", "1"), H2_NV("ab", "2"), H2_NV("b", "3")};

		CHECK_STR_EQ(grpc_md_get(nv, 3, "ab"), "2");
		CHECK_STR_EQ(grpc_md_get(nv, 3, "b"), "3");
		CHECK(grpc_md_get(nv, 3, "c") == NULL);
		CHECK(grpc_md_get(nv, 0, "a") == NULL);
	}
	CHECK_INT_EQ(grpc_status_from_errno(0), GRPC_OK);
	CHECK_INT_EQ(grpc_status_from_errno(ECONNREFUSED), GRPC_UNAVAILABLE);
	CHECK_INT_EQ(grpc_status_from_errno(EHOSTUNREACH), GRPC_UNAVAILABLE);
	CHECK_INT_EQ(grpc_status_from_errno(ETIMEDOUT), GRPC_DEADLINE_EXCEEDED);
	CHECK_INT_EQ(grpc_status_from_errno(EACCES), GRPC_PERMISSION_DENIED);
	CHECK_INT_EQ(grpc_status_from_errno(ECONNRESET), GRPC_CANCELLED);
	CHECK_INT_EQ(grpc_status_from_errno(EMSGSIZE), GRPC_INTERNAL);
	CHECK_INT_EQ(grpc_status_from_errno(ENOMEM), GRPC_RESOURCE_EXHAUSTED);
}

/* ---- control messages ------------------------------------------------------------------ */

static void test_ctl(void)
{
	struct ctl_msg m = {0}, d;
	struct buf b = BUF_INIT;
	char cidrs[3][CTL_CIDR_LEN] = {"192.168.1.0/24", "10.0.0.0/8", "255.255.255.255/32"};
	char virt[3][CTL_CIDR_LEN] = {"100.64.1.0/24", "100.0.0.0/8", "100.64.9.9/32"};
	struct ctl_route routes[2] = {{"100.64.1.0/24", "192.168.1.0/24", "site-1"},
				      {"", "172.20.0.0/16", "lab"}};

	/* ClientHello */
	m.kind = CTL_CLIENT_HELLO;
	strcpy(m.id, "client-1");
	strcpy(m.version, "0.1.0");
	m.cidrs = cidrs;
	m.n_cidrs = 3;
	CHECK_INT_EQ(grpc_ctl_encode(CTL_CLIENT_EVENT, &m, &b), 0);
	CHECK_INT_EQ(grpc_ctl_decode(CTL_CLIENT_EVENT, buf_head(&b), buf_len(&b), &d), 0);
	CHECK_INT_EQ(d.kind, CTL_CLIENT_HELLO);
	CHECK_STR_EQ(d.id, "client-1");
	CHECK_STR_EQ(d.version, "0.1.0");
	CHECK_INT_EQ(d.n_cidrs, 3);
	if (d.n_cidrs == 3) {
		CHECK_STR_EQ(d.cidrs[0], "192.168.1.0/24");
		CHECK_STR_EQ(d.cidrs[2], "255.255.255.255/32");
	}
	grpc_ctl_release(&d);
	/* truncated encodings of it are malformed */
	for (size_t cut = 1; cut < buf_len(&b); cut++) {
		int rv = grpc_ctl_decode(CTL_CLIENT_EVENT, buf_head(&b), cut, &d);

		if (rv == 0) /* a cut at a field boundary is still valid protobuf */
			grpc_ctl_release(&d);
		else
			CHECK_INT_EQ(rv, -EPROTO);
	}
	CHECK_INT_EQ(grpc_ctl_decode(CTL_CLIENT_EVENT, buf_head(&b), 1, &d), -EPROTO);
	buf_release(&b);

	/* ServerHello, Routes, Drain */
	memset(&m, 0, sizeof(m));
	m.kind = CTL_SERVER_HELLO;
	strcpy(m.id, "server-1");
	strcpy(m.version, "9.9");
	CHECK_INT_EQ(grpc_ctl_encode(CTL_SERVER_EVENT, &m, &b), 0);
	CHECK_INT_EQ(grpc_ctl_decode(CTL_SERVER_EVENT, buf_head(&b), buf_len(&b), &d), 0);
	CHECK_INT_EQ(d.kind, CTL_SERVER_HELLO);
	CHECK_STR_EQ(d.id, "server-1");
	CHECK_STR_EQ(d.version, "9.9");
	grpc_ctl_release(&d);
	buf_release(&b);

	memset(&m, 0, sizeof(m));
	m.kind = CTL_ROUTES;
	m.routes = routes;
	m.n_routes = 2;
	CHECK_INT_EQ(grpc_ctl_encode(CTL_SERVER_EVENT, &m, &b), 0);
	CHECK_INT_EQ(grpc_ctl_decode(CTL_SERVER_EVENT, buf_head(&b), buf_len(&b), &d), 0);
	CHECK_INT_EQ(d.kind, CTL_ROUTES);
	CHECK_INT_EQ(d.n_routes, 2);
	if (d.n_routes == 2) {
		CHECK_STR_EQ(d.routes[0].virt, "100.64.1.0/24");
		CHECK_STR_EQ(d.routes[0].real, "192.168.1.0/24");
		CHECK_STR_EQ(d.routes[0].proxy_id, "site-1");
		CHECK_STR_EQ(d.routes[1].virt, "");
		CHECK_STR_EQ(d.routes[1].proxy_id, "lab");
	}
	grpc_ctl_release(&d);
	buf_release(&b);
	/* an empty route set is a valid message */
	m.n_routes = 0;
	m.routes = NULL;
	CHECK_INT_EQ(grpc_ctl_encode(CTL_SERVER_EVENT, &m, &b), 0);
	CHECK_INT_EQ(grpc_ctl_decode(CTL_SERVER_EVENT, buf_head(&b), buf_len(&b), &d), 0);
	CHECK_INT_EQ(d.kind, CTL_ROUTES);
	CHECK_INT_EQ(d.n_routes, 0);
	grpc_ctl_release(&d);
	buf_release(&b);

	memset(&m, 0, sizeof(m));
	m.kind = CTL_DRAIN;
	m.deadline_ms = 15000;
	strcpy(m.reason, "server shutting down");
	CHECK_INT_EQ(grpc_ctl_encode(CTL_SERVER_EVENT, &m, &b), 0);
	CHECK_INT_EQ(grpc_ctl_decode(CTL_SERVER_EVENT, buf_head(&b), buf_len(&b), &d), 0);
	CHECK_INT_EQ(d.kind, CTL_DRAIN);
	CHECK_INT_EQ(d.deadline_ms, 15000);
	CHECK_STR_EQ(d.reason, "server shutting down");
	grpc_ctl_release(&d);
	buf_release(&b);
	CHECK_INT_EQ(grpc_ctl_encode(CTL_PROXY_EVENT, &m, &b), 0);
	CHECK_INT_EQ(grpc_ctl_decode(CTL_PROXY_EVENT, buf_head(&b), buf_len(&b), &d), 0);
	CHECK_INT_EQ(d.kind, CTL_DRAIN);
	CHECK_INT_EQ(d.deadline_ms, 15000);
	grpc_ctl_release(&d);
	buf_release(&b);

	/* Registration */
	memset(&m, 0, sizeof(m));
	m.kind = CTL_REGISTER;
	strcpy(m.id, "site-1");
	strcpy(m.version, "0.1.0");
	m.cidrs = cidrs;
	m.n_cidrs = 3;
	m.virt = virt;
	m.n_virt = 3;
	m.capacity = 1024;
	CHECK_INT_EQ(grpc_ctl_encode(CTL_PROXY_EVENT, &m, &b), 0);
	CHECK_INT_EQ(grpc_ctl_decode(CTL_PROXY_EVENT, buf_head(&b), buf_len(&b), &d), 0);
	CHECK_INT_EQ(d.kind, CTL_REGISTER);
	CHECK_STR_EQ(d.id, "site-1");
	CHECK_INT_EQ(d.capacity, 1024);
	CHECK_INT_EQ(d.n_cidrs, 3);
	CHECK_INT_EQ(d.n_virt, 3);
	if (d.n_virt == 3) {
		CHECK_STR_EQ(d.virt[1], "100.0.0.0/8");
		CHECK_STR_EQ(d.cidrs[1], "10.0.0.0/8");
	}
	grpc_ctl_release(&d);
	buf_release(&b);

	/* kinds that do not belong to the family */
	m.kind = CTL_REGISTER;
	CHECK_INT_EQ(grpc_ctl_encode(CTL_SERVER_EVENT, &m, &b), -EINVAL);
	CHECK_INT_EQ(grpc_ctl_encode(CTL_CLIENT_EVENT, &m, &b), -EINVAL);
	m.kind = CTL_ROUTES;
	CHECK_INT_EQ(grpc_ctl_encode(CTL_PROXY_EVENT, &m, &b), -EINVAL);
	m.kind = CTL_NONE;
	CHECK_INT_EQ(grpc_ctl_encode(CTL_SERVER_EVENT, &m, &b), -EINVAL);
	m.kind = CTL_CLIENT_HELLO;
	m.n_cidrs = CTL_MAX_LIST + 1;
	CHECK_INT_EQ(grpc_ctl_encode(CTL_CLIENT_EVENT, &m, &b), -EINVAL);
	CHECK_INT_EQ(buf_len(&b), 0);
	buf_release(&b);

	/* malformed input */
	CHECK_INT_EQ(grpc_ctl_decode(CTL_SERVER_EVENT, (const uint8_t *)"", 0, &d), -EPROTO);
	CHECK(d.cidrs == NULL && d.routes == NULL);
	CHECK_INT_EQ(grpc_ctl_decode(CTL_CLIENT_EVENT, (const uint8_t *)"", 0, &d), -EPROTO);
	CHECK_INT_EQ(grpc_ctl_decode(CTL_PROXY_EVENT, (const uint8_t *)"\xff\xff\xff", 3, &d),
		     -EPROTO);
	CHECK_INT_EQ(grpc_ctl_decode(CTL_SERVER_EVENT, (const uint8_t *)"\x0a\x05\x0a", 3, &d),
		     -EPROTO);
	/* an unknown oneof member only (field 9): parses, but no kind is set */
	CHECK_INT_EQ(grpc_ctl_decode(CTL_SERVER_EVENT, (const uint8_t *)"\x48\x01", 2, &d),
		     -EPROTO);
	{
		/* ClientEvent{hello{client_id: 200 x 'a'}}: longer than ctl_msg.id */
		uint8_t msg[3 + 3 + 200];
		size_t n = 0;

		msg[n++] = 0x0a;
		msg[n++] = 0x80 | (203 & 0x7f);
		msg[n++] = 203 >> 7;
		msg[n++] = 0x0a;
		msg[n++] = 0x80 | (200 & 0x7f);
		msg[n++] = 200 >> 7;
		memset(msg + n, 'a', 200);
		n += 200;
		CHECK_INT_EQ(grpc_ctl_decode(CTL_CLIENT_EVENT, msg, n, &d), -EPROTO);
		/* the same with 127 chars fits: outer length 129, inner 0x0a 127 'b'... */
		msg[1] = 0x80 | (129 & 0x7f);
		msg[2] = 129 >> 7;
		msg[3] = 0x0a;
		msg[4] = 127;
		memset(msg + 5, 'b', 127);
		CHECK_INT_EQ(grpc_ctl_decode(CTL_CLIENT_EVENT, msg, 5 + 127, &d), 0);
		CHECK_INT_EQ(strlen(d.id), 127);
		grpc_ctl_release(&d);
	}
	{
		/* Registration with a 22-char managed CIDR: does not fit CTL_CIDR_LEN */
		static const char reg[] = "\x0a\x18\x12\x16"
					  "1111111111111111111111";

		CHECK_INT_EQ(
			grpc_ctl_decode(CTL_PROXY_EVENT, (const uint8_t *)reg, sizeof(reg) - 1, &d),
			-EPROTO);
		CHECK(d.cidrs == NULL);
	}
	{
		/* ClientHello with CTL_MAX_LIST + 1 cidrs: too many */
		size_t count = CTL_MAX_LIST + 1, inner = count * 3, n = 0;
		uint8_t *msg = malloc(inner + 16);

		msg[n++] = 0x0a;
		msg[n++] = (uint8_t)(0x80 | ((inner + 0) & 0x7f));
		msg[n++] = (uint8_t)(inner >> 7);
		for (size_t i = 0; i < count; i++) {
			msg[n++] = 0x1a;
			msg[n++] = 1;
			msg[n++] = '1';
		}
		CHECK_INT_EQ(grpc_ctl_decode(CTL_CLIENT_EVENT, msg, n, &d), -EPROTO);
		/* CTL_MAX_LIST is accepted */
		msg[1] = (uint8_t)(0x80 | ((inner - 3) & 0x7f));
		msg[2] = (uint8_t)((inner - 3) >> 7);
		CHECK_INT_EQ(grpc_ctl_decode(CTL_CLIENT_EVENT, msg, n - 3, &d), 0);
		CHECK_INT_EQ(d.n_cidrs, CTL_MAX_LIST);
		grpc_ctl_release(&d);
		free(msg);
	}
}

/* ---- calls ----------------------------------------------------------------------------- */

/* Message mode, both ways: empty, small and window-sized messages, in order. */
static void test_messages(bool bytewise)
{
	struct pair p;
	struct grpc_call *c, *s;
	struct buf got = BUF_INIT;
	size_t sizes[] = {0, 1, 5, 70000, 300000, 0, 3};
	uint8_t *data = random_bytes(300001);

	pair_init(&p, NULL, NULL);
	p.bytewise = bytewise;
	c = open_pair(&p, GRPC_MESSAGES, false, &s);
	for (size_t i = 0; s && i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		CHECK_INT_EQ(grpc_call_send(c, data, sizes[i]), 0);
		CHECK_INT_EQ(grpc_call_send(s, data + 1, sizes[i]), 0);
	}
	for (size_t i = 0; s && i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		CHECK_INT_EQ(recv_msg(&p, s, &got), 1);
		CHECK(same(&got, data, sizes[i]));
		CHECK_INT_EQ(recv_msg(&p, c, &got), 1);
		CHECK(same(&got, data + 1, sizes[i]));
	}
	/* nothing more yet */
	CHECK_INT_EQ(recv_msg(&p, s, NULL), 0);
	grpc_call_finish(c, GRPC_OK, NULL, NULL);
	CHECK_INT_EQ(recv_msg(&p, s, NULL), -EPIPE);
	grpc_call_finish(s, GRPC_OK, NULL, NULL);
	CHECK_INT_EQ(recv_msg(&p, c, NULL), -EPIPE);
	CHECK_INT_EQ(grpc_call_peer_status(c), GRPC_OK);
	CHECK_INT_EQ(h2_session_streams(p.c), 0);
	CHECK_INT_EQ(h2_session_streams(p.s), 0);
	CHECK_INT_EQ(p.err, 0);
	grpc_call_free(c);
	buf_release(&got);
	free(data);
	pair_free(&p);
}

/* Bytes mode: data split over many DATA frames (and bytes) comes out exact, both ways. */
static void test_bytes_stream(bool bytewise)
{
	struct pair p;
	struct grpc_call *c, *s;
	struct buf got = BUF_INIT;
	size_t n = bytewise ? 200000 : 3u << 20;
	uint8_t *data = random_bytes(n);

	pair_init(&p, NULL, NULL);
	p.bytewise = bytewise;
	c = open_pair(&p, GRPC_BYTES, false, &s);
	CHECK(stream_bytes(&p, grpc_call_end(c), grpc_call_end(s), data, n, &got));
	buf_release(&got);
	CHECK(stream_bytes(&p, grpc_call_end(s), grpc_call_end(c), data, n, &got));
	buf_release(&got);
	CHECK_INT_EQ(grpc_call_end(c)->rx_err, 0);
	CHECK_INT_EQ(grpc_call_end(s)->rx_err, 0);
	CHECK(!grpc_call_end(s)->rx_eof);
	CHECK_INT_EQ(p.err, 0);
	grpc_call_free(c);
	free(data);
	pair_free(&p);
}

/* Half-close both ways (bytes mode): one side ends, the other keeps sending. */
static void test_half_close(bool client_first)
{
	struct pair p;
	struct grpc_call *c, *s;
	struct relay_end *ce, *se, *first, *second;
	struct buf got = BUF_INIT;
	uint8_t *data = random_bytes(100000);

	pair_init(&p, NULL, NULL);
	c = open_pair(&p, GRPC_BYTES, false, &s);
	ce = grpc_call_end(c);
	se = grpc_call_end(s);
	first = client_first ? ce : se;
	second = client_first ? se : ce;

	/* first says "hello" and ends its side */
	CHECK_INT_EQ(end_write(first, (const uint8_t *)"hello", 5), 5);
	first->ops->shutdown(first);
	settle(&p);
	CHECK_INT_EQ(end_read(second, &got, SIZE_MAX), 5);
	CHECK(!memcmp(buf_head(&got), "hello", 5));
	CHECK(second->rx_eof);
	CHECK(!first->rx_eof);
	buf_release(&got);
	/* the other direction still flows, after the EOF */
	CHECK(stream_bytes(&p, second, first, data, 100000, &got));
	buf_release(&got);
	CHECK(!first->rx_eof);
	CHECK_INT_EQ(first->rx_err, 0);
	CHECK_INT_EQ(h2_session_streams(p.c), 1);
	/* a write after our own shutdown is refused */
	CHECK_INT_EQ(first->ops->write(first, (const uint8_t *)"x", 1), 0);
	second->ops->shutdown(second);
	settle(&p);
	CHECK_INT_EQ(end_read(first, NULL, SIZE_MAX), 0);
	CHECK(first->rx_eof);
	CHECK_INT_EQ(first->rx_err, 0);
	CHECK_INT_EQ(second->rx_err, 0);
	CHECK_INT_EQ(grpc_call_peer_status(c), GRPC_OK);
	CHECK_INT_EQ(h2_session_streams(p.c), 0);
	CHECK_INT_EQ(h2_session_streams(p.s), 0);
	CHECK_INT_EQ(p.err, 0);
	grpc_call_free(c);
	free(data);
	pair_free(&p);
}

/* Message mode half-close: the client finishes, the server keeps sending, then status 0. */
static void test_half_close_messages(void)
{
	struct pair p;
	struct grpc_call *c, *s;
	struct buf got = BUF_INIT;

	pair_init(&p, NULL, NULL);
	c = open_pair(&p, GRPC_MESSAGES, false, &s);
	CHECK_INT_EQ(grpc_call_send(c, "ping", 4), 0);
	grpc_call_finish(c, GRPC_OK, NULL, NULL);
	CHECK_INT_EQ(grpc_call_send(c, "late", 4), -EPIPE);
	CHECK_INT_EQ(recv_msg(&p, s, &got), 1);
	CHECK(same(&got, "ping", 4));
	CHECK_INT_EQ(recv_msg(&p, s, NULL), -EPIPE);
	for (int i = 0; i < 3; i++)
		CHECK_INT_EQ(grpc_call_send(s, "pong", 4), 0);
	for (int i = 0; i < 3; i++) {
		CHECK_INT_EQ(recv_msg(&p, c, &got), 1);
		CHECK(same(&got, "pong", 4));
	}
	CHECK_INT_EQ(recv_msg(&p, c, NULL), 0);
	CHECK_INT_EQ(grpc_call_peer_status(c), -1);
	grpc_call_finish(s, GRPC_OK, NULL, NULL);
	CHECK_INT_EQ(recv_msg(&p, c, NULL), -EPIPE);
	CHECK_INT_EQ(grpc_call_peer_status(c), GRPC_OK);
	buf_release(&got);
	grpc_call_free(c);
	pair_free(&p);
}

/* A server that finishes with a non-OK status after some data: the client gets the data,
 * then the failure named by ntun-error, with the status and message. */
static void test_status_after_data(void)
{
	struct pair p;
	struct grpc_call *c, *s;
	struct buf got = BUF_INIT;

	pair_init(&p, NULL, NULL);
	c = open_pair(&p, GRPC_MESSAGES, false, &s);
	CHECK_INT_EQ(grpc_call_send(s, "partial", 7), 0);
	settle(&p);
	CHECK_INT_EQ(recv_msg(&p, c, &got), 1);
	grpc_call_finish(s, GRPC_UNAVAILABLE, "dial failed: 100% gone\n", "EHOSTUNREACH");
	CHECK_INT_EQ(recv_msg(&p, c, NULL), -EHOSTUNREACH);
	CHECK_INT_EQ(grpc_call_peer_status(c), GRPC_UNAVAILABLE);
	CHECK_STR_EQ(grpc_call_peer_message(c), "dial failed: 100% gone\n");
	buf_release(&got);
	grpc_call_free(c);
	pair_free(&p);
}

/* Trailers-Only (grpc_reject, and a server call aborted before it answered). */
static void test_trailers_only(void)
{
	struct pair p;
	struct grpc_call *c, *s;
	struct relay_end *e;
	int rv;

	/* grpc_reject with an ntun-error: message mode client */
	pair_init(&p, NULL, NULL);
	p.pol = P_REJECT;
	p.rej_status = GRPC_UNAVAILABLE;
	p.rej_msg = "connect 192.168.1.5:80: Connection refused (100%)";
	p.rej_err = "ECONNREFUSED";
	c = open_call(&p, GRPC_MESSAGES, false);
	settle(&p);
	CHECK_INT_EQ(p.requests, 1);
	rv = recv_msg(&p, c, NULL);
	CHECK_INT_EQ(rv, -ECONNREFUSED);
	CHECK_INT_EQ(grpc_call_peer_status(c), GRPC_UNAVAILABLE);
	CHECK_STR_EQ(grpc_call_peer_message(c),
		     "connect 192.168.1.5:80: Connection refused (100%)");
	grpc_call_free(c); /* our side was still open: free resets it */
	settle(&p);
	CHECK_INT_EQ(h2_session_streams(p.c), 0);
	CHECK_INT_EQ(h2_session_streams(p.s), 0);

	/* bytes mode client: rx_err, no bytes, no eof */
	c = open_call(&p, GRPC_BYTES, false);
	settle(&p);
	e = grpc_call_end(c);
	CHECK_INT_EQ(end_read(e, NULL, SIZE_MAX), 0);
	CHECK_INT_EQ(e->rx_err, ECONNREFUSED);
	CHECK(!e->rx_eof);
	grpc_call_free(c);

	/* no ntun-error: a non-OK status is a reset */
	p.rej_status = GRPC_UNIMPLEMENTED;
	p.rej_msg = "unknown method";
	p.rej_err = NULL;
	c = open_call(&p, GRPC_MESSAGES, false);
	CHECK_INT_EQ(recv_msg(&p, c, NULL), -ECONNRESET);
	CHECK_INT_EQ(grpc_call_peer_status(c), GRPC_UNIMPLEMENTED);
	CHECK_STR_EQ(grpc_call_peer_message(c), "unknown method");
	grpc_call_free(c);
	settle(&p);
	CHECK_INT_EQ(p.err, 0);
	pair_free(&p);

	/* the proxy's dial failure: abort(ECONNREFUSED) on an unanswered server call */
	pair_init(&p, NULL, NULL);
	c = open_pair(&p, GRPC_BYTES, false, &s);
	e = grpc_call_end(s);
	e->ops->abort(e, ECONNREFUSED);
	settle(&p);
	CHECK_INT_EQ(end_read(grpc_call_end(c), NULL, SIZE_MAX), 0);
	CHECK_INT_EQ(grpc_call_end(c)->rx_err, ECONNREFUSED);
	CHECK_INT_EQ(grpc_call_peer_status(c), GRPC_UNAVAILABLE);
	CHECK_STR_CONTAINS(grpc_call_peer_message(c), "refused");
	grpc_call_free(c);
	pair_free(&p);

	/* a server that declines the stream entirely: REFUSED_STREAM, seen as a reset */
	pair_init(&p, NULL, NULL);
	p.pol = P_IGNORE;
	c = open_call(&p, GRPC_MESSAGES, false);
	rv = recv_msg(&p, c, NULL);
	CHECK(rv < 0 && rv != -EPIPE); /* a failure (today EPROTO: REFUSED_STREAM is not CANCEL) */
	CHECK_INT_EQ(grpc_call_peer_status(c), -1);
	grpc_call_free(c);
	pair_free(&p);
}

/* RST_STREAM either way ends the call with ECONNRESET at the other side. */
static void test_reset(void)
{
	struct pair p;
	struct grpc_call *c, *s;
	struct relay_end *ce, *se;
	struct raw *r;

	pair_init(&p, NULL, NULL);
	/* client resets */
	c = open_pair(&p, GRPC_BYTES, false, &s);
	ce = grpc_call_end(c);
	se = grpc_call_end(s);
	CHECK_INT_EQ(end_write(ce, (const uint8_t *)"abc", 3), 3);
	settle(&p);
	ce->ops->abort(ce, ECONNRESET);
	settle(&p);
	CHECK_INT_EQ(se->rx_err, ECONNRESET);
	CHECK_INT_EQ(end_read(se, NULL, SIZE_MAX), 0); /* nothing is read after a failure */
	CHECK_INT_EQ(se->ops->write(se, (const uint8_t *)"x", 1), 0);
	grpc_call_free(c);
	CHECK_INT_EQ(h2_session_streams(p.s), 0);

	/* server resets after answering */
	c = open_pair(&p, GRPC_BYTES, false, &s);
	ce = grpc_call_end(c);
	se = grpc_call_end(s);
	CHECK_INT_EQ(end_write(se, (const uint8_t *)"abc", 3), 3);
	settle(&p);
	CHECK_INT_EQ(end_read(ce, NULL, SIZE_MAX), 3);
	se->ops->abort(se, ECONNRESET);
	settle(&p);
	CHECK_INT_EQ(ce->rx_err, ECONNRESET);
	grpc_call_free(c);

	/* server resets before answering: still a reset, not a status */
	c = open_pair(&p, GRPC_BYTES, false, &s);
	ce = grpc_call_end(c);
	se = grpc_call_end(s);
	se->ops->abort(se, ECONNRESET);
	settle(&p);
	CHECK_INT_EQ(ce->rx_err, ECONNRESET);
	CHECK_INT_EQ(grpc_call_peer_status(c), -1);
	grpc_call_free(c);

	/* server call freed while open (the relay let go after a failure): CANCEL */
	c = open_pair(&p, GRPC_MESSAGES, false, &s);
	grpc_call_free(s);
	p.acc[--p.nacc] = NULL;
	CHECK_INT_EQ(recv_msg(&p, c, NULL), -ECONNRESET);
	grpc_call_free(c);

	/* a peer's RST_STREAM(PROTOCOL_ERROR) is a protocol failure */
	r = raw_open(&p, NULL);
	settle(&p);
	s = p.acc[p.nacc - 1];
	h2_stream_reset(r->st, H2_PROTOCOL_ERROR);
	settle(&p);
	CHECK_INT_EQ(grpc_call_end(s)->rx_err, EPROTO);
	CHECK_INT_EQ(h2_session_streams(p.c), 0);
	CHECK_INT_EQ(h2_session_streams(p.s), 0);
	CHECK_INT_EQ(p.err, 0);
	pair_free(&p);
}

/* on_data_done: once per h2_session_recv that gave a stream DATA, with the lent bytes still
 * in place, and before on_close when the stream ends inside that recv. */
static void test_data_done(bool bytewise)
{
	struct pair p;
	struct lender l = {0};
	struct grpc_call *s;
	size_t n = bytewise ? 3000 : 300000;
	uint8_t *data = random_bytes(n);

	pair_init(&p, NULL, NULL);
	p.bytewise = bytewise;
	buf_init(&l.r.in);
	buf_init(&l.r.out);
	l.r.autoconsume = true;
	raw_request(&p, &l.r, &lend_cbs, NULL);
	settle(&p);
	CHECK_INT_EQ(p.nacc, 1);
	s = p.nacc ? p.acc[0] : NULL;
	if (s) {
		size_t sent = 0;

		raw_send(&l.r, NULL, 0, true);
		for (int i = 0; i < 1000 && sent < n; i++) {
			sent += end_write(grpc_call_end(s), data + sent, n - sent);
			if (sent == n) /* the last DATA and the trailers go in one batch */
				grpc_call_end(s)->ops->shutdown(grpc_call_end(s));
			settle(&p);
		}
		CHECK_INT_EQ(sent, n);
	}
	CHECK(l.r.closed);
	CHECK(!l.closed_with_lent);
	CHECK_INT_EQ(l.bad, 0);
	CHECK(l.ndone > 0);
	CHECK_INT_EQ(l.ndone, l.nrecv_with_data);
	CHECK(buf_len(&l.r.in) > n); /* framed: prefix and Chunk headers around the payload */
	CHECK_INT_EQ(p.err, 0);
	if (s)
		grpc_call_free(s);
	p.nacc = 0;
	buf_release(&l.r.in);
	buf_release(&l.r.out);
	free(data);
	pair_free(&p);
}

/* A socket-like sink for cut-through: copies what it takes at once, and takes a random part
 * (nothing, some, all) of each write, as a socket with little room would. */
struct fake_sink {
	struct relay_end end;
	struct buf got;
	unsigned seed;
	bool full; /* takes nothing */
	int writes, short_writes, full_gathers;
};

static size_t fs_writev(struct relay_end *e, const struct iovec *iov, int n)
{
	struct fake_sink *f = (struct fake_sink *)e;
	size_t want = 0, take, done = 0;
	unsigned r = (unsigned)rand_r(&f->seed);

	for (int i = 0; i < n; i++)
		want += iov[i].iov_len;
	take = f->full || r % 3 == 0 ? 0
	       : r % 3 == 1	     ? (size_t)rand_r(&f->seed) % (want + 1)
				     : want;
	f->writes++;
	f->short_writes += take < want;
	f->full_gathers += n == 16;
	for (int i = 0; i < n && done < take; i++) {
		size_t k = iov[i].iov_len < take - done ? iov[i].iov_len : take - done;

		buf_append(&f->got, iov[i].iov_base, k);
		done += k;
	}
	return take;
}

static size_t fs_write(struct relay_end *e, const uint8_t *p, size_t n)
{
	struct iovec v = {.iov_base = (void *)(uintptr_t)p, .iov_len = n};

	return fs_writev(e, &v, 1);
}

static size_t fs_peek(struct relay_end *e, const uint8_t **p)
{
	return 0;
}

static void fs_nop(struct relay_end *e)
{
}

static void fs_abort(struct relay_end *e, int err)
{
}

static void fs_consume(struct relay_end *e, size_t n)
{
}

static const struct relay_end_ops fake_sink_ops = {
	.peek = fs_peek,
	.consume = fs_consume,
	.write = fs_write,
	.shutdown = fs_nop,
	.abort = fs_abort,
	.free = fs_nop,
	.writev = fs_writev,
	.sync_write = true,
};

/* Cut-through into a sink that takes random parts: many small Chunk messages (some with an
 * unknown field to skip) arrive per recv, so gathers fill up mid-batch and flushes come back
 * short; what the sink did not take is handed out by the call before anything after it, and
 * the payload arrives whole and in order. */
static void test_cut_through(void)
{
	struct pair p;
	struct fake_sink f = {.end.ops = &fake_sink_ops, .seed = 7};
	struct buf want = BUF_INIT, body = BUF_INIT;
	struct grpc_call *s;
	struct relay_end *e;
	struct raw *r;
	int nmsg = 3000;
	uint8_t *data = random_bytes(512);

	pair_init(&p, NULL, NULL);
	r = raw_open(&p, NULL);
	settle(&p);
	CHECK_INT_EQ(p.nacc, 1);
	s = p.nacc ? p.acc[0] : NULL;
	if (!s) {
		free(data);
		pair_free(&p);
		return;
	}
	e = grpc_call_end(s);
	e->ops->push_to(e, &f.end);
	for (int i = 0; i < nmsg; i++) {
		size_t len = 1 + (size_t)rand_r(&f.seed) % 400, hl;
		uint8_t hdr[11];

		buf_release(&body);
		if (i % 7 == 3) { /* field 2, length-delimited: skipped */
			hdr[0] = 0x12;
			hdr[1] = 3;
			buf_append(&body, hdr, 2);
			buf_append(&body, "abc", 3);
		}
		hl = grpc_chunk_header(hdr, len);
		buf_append(&body, hdr, hl);
		buf_append(&body, data + i % 100, len);
		buf_append(&want, data + i % 100, len);
		raw_msg(r, 0, buf_head(&body), buf_len(&body), false);
		if (i % 100 == 99) {
			settle(&p);
			end_read(e, &f.got, SIZE_MAX); /* what the sink left, as the pump would */
		}
	}
	for (int i = 0; i < 1000 && buf_len(&f.got) < buf_len(&want); i++) {
		settle(&p);
		end_read(e, &f.got, SIZE_MAX);
	}
	CHECK(same(&f.got, buf_head(&want), buf_len(&want)));
	CHECK(f.short_writes > 0);
	CHECK(f.full_gathers > 0);
	CHECK_INT_EQ(e->rx_err, 0);
	CHECK_INT_EQ(p.err, 0);
	buf_release(&f.got);
	buf_release(&want);
	buf_release(&body);
	free(data);
	pair_free(&p);
}

/* A sink that takes nothing: what the call keeps from its gathers counts against the stream
 * window like anything it buffers, so the peer stops after one window. */
static void test_cut_through_window(void)
{
	struct pair p;
	struct fake_sink f = {.end.ops = &fake_sink_ops, .full = true};
	struct h2_settings set;
	struct grpc_call *s;
	struct raw *r;
	size_t len = 10000, queued = 0, hl;
	uint8_t *data = random_bytes(len), hdr[11];
	struct buf body = BUF_INIT;

	/* A small window, so that bytes given back early would pass nghttp2's half-window
	 * threshold and show as a WINDOW_UPDATE. */
	h2_settings_default(&set);
	set.stream_window = 32768;
	pair_init(&p, NULL, &set);
	r = raw_open(&p, NULL);
	settle(&p);
	s = p.nacc ? p.acc[0] : NULL;
	CHECK(s != NULL);
	if (s)
		grpc_call_end(s)->ops->push_to(grpc_call_end(s), &f.end);
	hl = grpc_chunk_header(hdr, len);
	buf_append(&body, hdr, hl);
	buf_append(&body, data, len);
	for (int i = 0; i < 20; i++) { /* 200 KB, six windows */
		raw_msg(r, 0, buf_head(&body), buf_len(&body), false);
		queued += 5 + buf_len(&body);
	}
	settle(&p);
	CHECK(queued - buf_len(&r->out) <= set.stream_window);
	CHECK(queued - buf_len(&r->out) > set.stream_window / 2);
	CHECK_INT_EQ(p.err, 0);
	buf_release(&body);
	free(data);
	pair_free(&p);
}

/* Oversize messages fail their call with EMSGSIZE; another call on the session is unharmed. */
static void test_oversize(void)
{
	struct pair p;
	struct grpc_call *c, *s, *c2, *s2;
	struct buf got = BUF_INIT;
	size_t big = GRPC_MAX_HELD + 1;
	uint8_t *data = random_bytes(big);
	uint8_t pfx[5], hdr[11];
	struct raw *r;
	size_t hl;

	pair_init(&p, NULL, NULL);
	/* message mode: exactly GRPC_MAX_HELD passes, one more byte fails */
	c = open_pair(&p, GRPC_MESSAGES, false, &s);
	c2 = open_pair(&p, GRPC_MESSAGES, false, &s2);
	CHECK_INT_EQ(grpc_call_send(c, data, GRPC_MAX_HELD), 0);
	CHECK_INT_EQ(recv_msg(&p, s, &got), 1);
	CHECK(same(&got, data, GRPC_MAX_HELD));
	buf_release(&got);
	CHECK_INT_EQ(grpc_call_send(c, data, big), 0);
	CHECK_INT_EQ(grpc_call_send(c2, "neighbour", 9), 0);
	CHECK_INT_EQ(recv_msg(&p, s, NULL), -EMSGSIZE);
	CHECK_INT_EQ(recv_msg(&p, s, NULL), -EMSGSIZE); /* sticky */
	settle(&p);
	CHECK_INT_EQ(recv_msg(&p, s2, &got), 1);
	CHECK(same(&got, "neighbour", 9));
	grpc_call_free(s); /* the server lets go: the client sees a reset */
	p.acc[0] = NULL;
	CHECK_INT_EQ(recv_msg(&p, c, NULL), -ECONNRESET);
	grpc_call_free(c);
	CHECK_INT_EQ(grpc_call_send(s2, "still here", 10), 0);
	CHECK_INT_EQ(recv_msg(&p, c2, &got), 1);
	CHECK(same(&got, "still here", 10));
	grpc_call_free(c2);
	buf_release(&got);
	pair_free(&p);

	/* bytes mode: a prefix announcing GRPC_MAX_MESSAGE is accepted (streamed), one more is
	 * EMSGSIZE; a compressed message above GRPC_MAX_HELD is EMSGSIZE */
	pair_init(&p, NULL, NULL);
	r = raw_open(&p, "gzip");
	settle(&p);
	s = p.acc[0];
	c2 = open_pair(&p, GRPC_BYTES, false, &s2);
	grpc_frame_prefix(pfx, false, GRPC_MAX_MESSAGE);
	hl = grpc_chunk_header(hdr, GRPC_MAX_MESSAGE - 5);
	CHECK_INT_EQ(hl, 5);
	raw_send(r, pfx, 5, false);
	raw_send(r, hdr, hl, false);
	raw_send(r, data, 1000, false);
	settle(&p);
	CHECK_INT_EQ(end_read(grpc_call_end(s), &got, SIZE_MAX), 1000);
	CHECK_INT_EQ(grpc_call_end(s)->rx_err, 0);
	buf_release(&got);
	raw_free(r);
	p.raws[0] = NULL;
	grpc_call_free(s);
	p.acc[0] = NULL;

	r = raw_open(&p, NULL);
	settle(&p);
	s = p.acc[p.nacc - 1];
	grpc_frame_prefix(pfx, false, GRPC_MAX_MESSAGE + 1);
	raw_send(r, pfx, 5, false);
	raw_send(r, data, 100000, false);
	settle(&p);
	CHECK_INT_EQ(end_read(grpc_call_end(s), NULL, SIZE_MAX), 0);
	CHECK_INT_EQ(grpc_call_end(s)->rx_err, EMSGSIZE);

	p.pol_gzip = true;
	r = raw_open(&p, "gzip");
	settle(&p);
	s = p.acc[p.nacc - 1];
	grpc_frame_prefix(pfx, true, GRPC_MAX_HELD + 1);
	raw_send(r, pfx, 5, false);
	settle(&p);
	CHECK_INT_EQ(end_read(grpc_call_end(s), NULL, SIZE_MAX), 0);
	CHECK_INT_EQ(grpc_call_end(s)->rx_err, EMSGSIZE);

	/* the neighbour still streams both ways */
	CHECK(stream_bytes(&p, grpc_call_end(c2), grpc_call_end(s2), data, 1u << 20, &got));
	buf_release(&got);
	CHECK(stream_bytes(&p, grpc_call_end(s2), grpc_call_end(c2), data, 1u << 20, &got));
	buf_release(&got);
	CHECK_INT_EQ(p.err, 0);
	grpc_call_free(c2);
	pair_free(&p);
	free(data);
}

/* Compressed flag without grpc-encoding, or a flag other than 0/1: EPROTO (both sides). */
static void test_bad_flag(void)
{
	struct pair p;
	struct grpc_call *s, *c;
	struct raw *r;

	pair_init(&p, NULL, NULL);
	for (int mode = 0; mode < 2; mode++) {
		p.pol_mode = mode ? GRPC_MESSAGES : GRPC_BYTES;
		r = raw_open(&p, NULL);
		raw_msg(r, 1, "\x0a\x01x", 3, false);
		settle(&p);
		s = p.acc[p.nacc - 1];
		if (mode) {
			CHECK_INT_EQ(recv_msg(&p, s, NULL), -EPROTO);
		} else {
			CHECK_INT_EQ(end_read(grpc_call_end(s), NULL, SIZE_MAX), 0);
			CHECK_INT_EQ(grpc_call_end(s)->rx_err, EPROTO);
		}
		r = raw_open(&p, "gzip");
		raw_msg(r, 2, "\x0a\x01x", 3, false);
		settle(&p);
		s = p.acc[p.nacc - 1];
		if (mode) {
			CHECK_INT_EQ(recv_msg(&p, s, NULL), -EPROTO);
		} else {
			CHECK_INT_EQ(end_read(grpc_call_end(s), NULL, SIZE_MAX), 0);
			CHECK_INT_EQ(grpc_call_end(s)->rx_err, EPROTO);
		}
	}
	pair_free(&p);

	/* client side: a response with flag 1 but no grpc-encoding */
	pair_init(&p, NULL, NULL);
	p.pol = P_RAW;
	c = open_call(&p, GRPC_BYTES, false);
	settle(&p);
	CHECK_INT_EQ(p.nraw, 1);
	if (p.nraw == 1) {
		raw_msg(p.raws[0], 1, "\x0a\x01x", 3, false);
		settle(&p);
		CHECK_INT_EQ(end_read(grpc_call_end(c), NULL, SIZE_MAX), 0);
		CHECK_INT_EQ(grpc_call_end(c)->rx_err, EPROTO);
	}
	grpc_call_free(c);
	/* a response with an unknown grpc-encoding */
	p.raw_encoding = "br";
	c = open_call(&p, GRPC_BYTES, false);
	settle(&p);
	CHECK_INT_EQ(end_read(grpc_call_end(c), NULL, SIZE_MAX), 0);
	CHECK_INT_EQ(grpc_call_end(c)->rx_err, EPROTO);
	grpc_call_free(c);
	pair_free(&p);
}

/* gzip both ways, both modes; the wire really carries compressed bytes. */
static void test_gzip_calls(void)
{
	struct pair p;
	struct grpc_call *c, *s;
	struct buf got = BUF_INIT;
	size_t n = 1u << 20;
	uint8_t *text = malloc(n), *rnd = random_bytes(200000);
	uint64_t before;

	for (size_t i = 0; i < n; i++)
		text[i] = "ntun tunnels TCP over gRPC\n"[i % 27];
	pair_init(&p, NULL, NULL);
	/* message mode */
	c = open_pair(&p, GRPC_MESSAGES, true, &s);
	before = p.c2s;
	CHECK_INT_EQ(grpc_call_send(c, text, n), 0);
	CHECK_INT_EQ(recv_msg(&p, s, &got), 1);
	CHECK(same(&got, text, n));
	CHECK(p.c2s - before < n / 20); /* compressed on the wire */
	before = p.s2c;
	CHECK_INT_EQ(grpc_call_send(s, text, n), 0);
	CHECK_INT_EQ(recv_msg(&p, c, &got), 1);
	CHECK(same(&got, text, n));
	CHECK(p.s2c - before < n / 20);
	CHECK_INT_EQ(grpc_call_send(s, rnd, 200000), 0);
	CHECK_INT_EQ(recv_msg(&p, c, &got), 1);
	CHECK(same(&got, rnd, 200000));
	CHECK_INT_EQ(grpc_call_send(c, "", 0), 0);
	CHECK_INT_EQ(recv_msg(&p, s, &got), 1);
	CHECK_INT_EQ(buf_len(&got), 0);
	buf_release(&got);
	grpc_call_free(c);

	/* bytes mode */
	c = open_pair(&p, GRPC_BYTES, true, &s);
	before = p.c2s;
	CHECK(stream_bytes(&p, grpc_call_end(c), grpc_call_end(s), text, n, &got));
	CHECK(p.c2s - before < n / 20);
	buf_release(&got);
	before = p.s2c;
	CHECK(stream_bytes(&p, grpc_call_end(s), grpc_call_end(c), text, n, &got));
	CHECK(p.s2c - before < n / 20);
	buf_release(&got);
	CHECK(stream_bytes(&p, grpc_call_end(c), grpc_call_end(s), rnd, 200000, &got));
	buf_release(&got);
	CHECK_INT_EQ(p.err, 0);
	grpc_call_free(c);

	/* an identity client against a gzip server: it offers identity only, so the answers
	 * come uncompressed */
	p.pol_gzip = true;
	p.pol_mode = GRPC_BYTES;
	c = open_call(&p, GRPC_BYTES, false);
	settle(&p);
	s = p.acc[p.nacc - 1];
	before = p.s2c;
	CHECK(stream_bytes(&p, grpc_call_end(c), grpc_call_end(s), text, n, &got));
	buf_release(&got);
	CHECK(stream_bytes(&p, grpc_call_end(s), grpc_call_end(c), text, 100000, &got));
	CHECK(p.s2c - before > 100000);
	buf_release(&got);
	grpc_call_free(c);

	/* a gzip client against a server without gzip: its compressed messages are refused */
	p.pol_gzip = false;
	c = open_call(&p, GRPC_BYTES, true);
	settle(&p);
	s = p.acc[p.nacc - 1];
	CHECK_INT_EQ(grpc_call_end(c)->ops->write(grpc_call_end(c), text, 1000), 1000);
	settle(&p);
	CHECK_INT_EQ(end_read(grpc_call_end(s), NULL, SIZE_MAX), 0);
	CHECK_INT_EQ(grpc_call_end(s)->rx_err, EPROTO);
	grpc_call_free(c);
	pair_free(&p);
	free(text);
	free(rnd);
}

/* Hand-made compressed messages: uncompressed ones under grpc-encoding gzip, a bomb. */
static void test_gzip_raw(void)
{
	struct pair p;
	struct grpc_call *s;
	struct buf z = BUF_INIT, plain = BUF_INIT, got = BUF_INIT;
	uint8_t hdr[11];
	size_t bomb = 8u << 20;
	uint8_t *zeros = calloc(1, bomb);
	struct raw *r;

	pair_init(&p, NULL, NULL);
	p.pol_gzip = true;
	/* bytes mode: flag 0 under gzip, then a compressed Chunk of 1 MiB, then a bomb */
	r = raw_open(&p, "gzip");
	raw_msg(r, 0,
		"\x0a\x03"
		"abc",
		5, false);
	buf_append(&plain, hdr, grpc_chunk_header(hdr, 1u << 20));
	buf_append(&plain, zeros, 1u << 20);
	grpc_gzip(buf_head(&plain), buf_len(&plain), &z);
	raw_msg(r, 1, buf_head(&z), buf_len(&z), false);
	buf_release(&z);
	buf_release(&plain);
	settle(&p);
	s = p.acc[0];
	CHECK_INT_EQ(end_read(grpc_call_end(s), &got, SIZE_MAX), 3 + (1u << 20));
	CHECK(!memcmp(buf_head(&got), "abc", 3));
	CHECK(!memcmp(buf_head(&got) + 3, zeros, 1u << 20));
	buf_release(&got);
	buf_append(&plain, hdr, grpc_chunk_header(hdr, bomb));
	buf_append(&plain, zeros, bomb);
	grpc_gzip(buf_head(&plain), buf_len(&plain), &z);
	CHECK(buf_len(&z) < GRPC_MAX_HELD / 100);
	raw_msg(r, 1, buf_head(&z), buf_len(&z), false);
	buf_release(&plain);
	settle(&p);
	CHECK_INT_EQ(end_read(grpc_call_end(s), NULL, SIZE_MAX), 0);
	CHECK_INT_EQ(grpc_call_end(s)->rx_err, EMSGSIZE);

	/* message mode: the same bomb */
	p.pol_mode = GRPC_MESSAGES;
	r = raw_open(&p, "gzip");
	raw_msg(r, 1, buf_head(&z), buf_len(&z), false);
	settle(&p);
	s = p.acc[1];
	CHECK_INT_EQ(recv_msg(&p, s, NULL), -EMSGSIZE);
	buf_release(&z);
	/* corrupt gzip is EPROTO */
	r = raw_open(&p, "gzip");
	raw_msg(r, 1, "\x1f\x8b\x08\x00garbage", 11, false);
	settle(&p);
	CHECK_INT_EQ(recv_msg(&p, p.acc[2], NULL), -EPROTO);
	CHECK_INT_EQ(p.err, 0);
	pair_free(&p);
	free(zeros);
}

/* Chunk encodings from other implementations, parsed by the streaming deframer. */
static void test_chunk_stream(bool bytewise)
{
	static const uint8_t unknown[] = {0x10, 0x96, 0x01, 0x19, 1,	2,   3,	  4,	5,
					  6,	7,    8,    0x22, 0x02, 'x', 'y', 0x0a, 0x02,
					  'h',	'i',  0x2d, 9,	  9,	9,   9,	  0x22, 0x00};
	static const uint8_t twice[] = {0x0a, 0x01, 'a', 0x0a, 0x01, 'b'};
	struct pair p;
	struct grpc_call *s;
	struct relay_end *e;
	struct buf got = BUF_INIT;
	struct raw *r;

	pair_init(&p, NULL, NULL);
	p.bytewise = bytewise;
	r = raw_open(&p, NULL);
	raw_msg(r, 0, unknown, sizeof(unknown), false); /* "hi" among unknown fields */
	raw_msg(r, 0, "", 0, false);			/* empty Chunk */
	raw_msg(r, 0, "\x0a\x00", 2, false);		/* empty data */
	raw_msg(r, 0, "\x10\x01", 2, false);		/* only an unknown field */
	raw_msg(r, 0,
		"\x0a\x03"
		"abc",
		5, false);
	raw_msg(r, 0, "", 0, false);
	settle(&p);
	s = p.acc[0];
	e = grpc_call_end(s);
	CHECK_INT_EQ(end_read(e, &got, SIZE_MAX), 5);
	CHECK(!memcmp(buf_head(&got), "hiabc", 5));
	CHECK_INT_EQ(e->rx_err, 0);
	CHECK(!e->rx_eof);
	/* a clean end after whole messages is EOF */
	raw_send(r, NULL, 0, true);
	settle(&p);
	CHECK_INT_EQ(end_read(e, NULL, SIZE_MAX), 0);
	CHECK(e->rx_eof);
	CHECK_INT_EQ(e->rx_err, 0);
	buf_release(&got);

	/* data field twice: an error */
	r = raw_open(&p, NULL);
	raw_msg(r, 0, twice, sizeof(twice), false);
	settle(&p);
	e = grpc_call_end(p.acc[1]);
	end_read(e, &got, SIZE_MAX);
	CHECK_INT_EQ(e->rx_err, EPROTO);
	CHECK(buf_len(&got) <= 1); /* at most the first copy came out */
	buf_release(&got);

	/* truncated message at END_STREAM: inside data, inside the key, inside the prefix */
	for (int k = 0; k < 3; k++) {
		static const uint8_t part[] = {0x0a, 0x0a, 'a', 'b', 'c'}; /* says 10 data bytes */
		uint8_t pfx[5];

		r = raw_open(&p, NULL);
		grpc_frame_prefix(pfx, false, 12);
		if (k == 0) {
			raw_send(r, pfx, 5, false);
			raw_send(r, part, sizeof(part), true);
		} else if (k == 1) {
			grpc_frame_prefix(pfx, false, 3);
			raw_send(r, pfx, 5, false);
			raw_send(r, "\x10\x96", 2, true); /* a varint cut short */
		} else {
			raw_send(r, pfx, 3, true);
		}
		settle(&p);
		e = grpc_call_end(p.acc[p.nacc - 1]);
		end_read(e, &got, SIZE_MAX);
		CHECK_INT_EQ(e->rx_err, EPROTO);
		CHECK(!e->rx_eof);
		CHECK_INT_EQ(buf_len(&got), k == 0 ? 3 : 0);
		buf_release(&got);
	}
	/* message mode: truncated at END_STREAM */
	p.pol_mode = GRPC_MESSAGES;
	r = raw_open(&p, NULL);
	raw_msg(r, 0, "abc", 3, false);
	raw_send(r, "\x00\x00\x00\x00\x09zz", 7, true);
	settle(&p);
	CHECK_INT_EQ(recv_msg(&p, p.acc[p.nacc - 1], &got), 1);
	CHECK(same(&got, "abc", 3));
	CHECK_INT_EQ(recv_msg(&p, p.acc[p.nacc - 1], NULL), -EPROTO);
	buf_release(&got);
	CHECK_INT_EQ(p.err, 0);
	pair_free(&p);

	/* client side: a response body cut short before status 0; and one without trailers */
	pair_init(&p, NULL, NULL);
	p.bytewise = bytewise;
	p.pol = P_RAW;
	for (int k = 0; k < 2; k++) {
		struct grpc_call *c = open_call(&p, GRPC_BYTES, false);
		struct h2_nv ok[] = {H2_NV("grpc-status", "0")};

		settle(&p);
		r = p.raws[p.nraw - 1];
		if (k == 0)
			CHECK_INT_EQ(h2_stream_set_trailers(r->st, ok, 1), 0);
		raw_send(r,
			 "\x00\x00\x00\x00\x09\x0a\x07"
			 "ab",
			 9, true);
		settle(&p);
		e = grpc_call_end(c);
		end_read(e, &got, SIZE_MAX);
		CHECK_INT_EQ(e->rx_err, EPROTO);
		CHECK(!e->rx_eof);
		buf_release(&got);
		grpc_call_free(c);
	}
	CHECK_INT_EQ(p.err, 0);
	pair_free(&p);
}

/* Writes into w until the session stops taking bytes; returns what w accepted. */
static size_t fill_until_stuck(struct pair *p, struct relay_end *w, const uint8_t *data, size_t max)
{
	size_t total = 0, n;

	for (int i = 0; i < 1000 && total < max; i++) {
		n = end_write(w, data + total, max - total);
		total += n;
		if (!settle(p) && !n)
			break;
	}
	return total;
}

/* Flow control: a stream whose receiver does not consume stops its sender near the stream
 * window while other streams on the same session flow (no head-of-line blocking); consuming
 * resumes it. The connection window (512 KiB by default) is below what each stuck stream holds
 * (2 MiB): had the stuck bytes counted against it, as they did when it was given back only as
 * streams forwarded, the neighbour could not move at all. */
static void test_flow_control(void)
{
	struct pair p;
	struct h2_settings set;
	struct grpc_call *ca, *sa, *cb, *sb, *cc, *sc;
	struct buf got = BUF_INIT, got2 = BUF_INIT;
	size_t n = 4u << 20, acc_a, acc_c, before, moved;
	uint8_t *data = random_bytes(n);

	h2_settings_default(&set);
	CHECK(set.conn_window < set.stream_window);
	pair_init(&p, NULL, NULL);
	ca = open_pair(&p, GRPC_BYTES, false, &sa); /* client -> server, server never reads */
	cc = open_pair(&p, GRPC_BYTES, false, &sc); /* server -> client, client never reads */
	cb = open_pair(&p, GRPC_BYTES, false, &sb); /* the neighbour */

	before = p.c2s;
	acc_a = fill_until_stuck(&p, grpc_call_end(ca), data, n);
	moved = p.c2s - before;
	/* the wire carried about one stream window (plus frame headers and WINDOW_UPDATEs)... */
	CHECK(moved >= set.stream_window);
	CHECK(moved <= set.stream_window + 4096);
	/* ...and the sender accepted at most the window plus its own high-water mark */
	CHECK(acc_a >= set.stream_window);
	CHECK(acc_a <= set.stream_window + GRPC_OUT_HIGHWATER + 64);
	CHECK_INT_EQ(grpc_call_end(ca)->ops->write(grpc_call_end(ca), data, 1), 0);
	before = p.s2c;
	acc_c = fill_until_stuck(&p, grpc_call_end(sc), data, n);
	moved = p.s2c - before;
	CHECK(moved >= set.stream_window);
	CHECK(moved <= set.stream_window + 4096);
	CHECK(acc_c <= set.stream_window + GRPC_OUT_HIGHWATER + 64);

	/* the neighbour moves 4 MiB each way past both stuck streams */
	CHECK(stream_bytes(&p, grpc_call_end(cb), grpc_call_end(sb), data, n, &got));
	buf_release(&got);
	CHECK(stream_bytes(&p, grpc_call_end(sb), grpc_call_end(cb), data, n, &got));
	buf_release(&got);
	/* still stuck */
	CHECK_INT_EQ(grpc_call_end(ca)->ops->write(grpc_call_end(ca), data, 1), 0);
	CHECK_INT_EQ(grpc_call_end(sc)->ops->write(grpc_call_end(sc), data, 1), 0);

	/* consuming resumes: everything arrives in order */
	for (int i = 0; i < 10000 && (buf_len(&got) < n || buf_len(&got2) < n); i++) {
		acc_a += end_write(grpc_call_end(ca), data + acc_a, n - acc_a);
		acc_c += end_write(grpc_call_end(sc), data + acc_c, n - acc_c);
		settle(&p);
		end_read(grpc_call_end(sa), &got, SIZE_MAX);
		end_read(grpc_call_end(cc), &got2, SIZE_MAX);
	}
	CHECK(same(&got, data, n));
	CHECK(same(&got2, data, n));
	buf_release(&got);
	buf_release(&got2);
	CHECK_INT_EQ(p.err, 0);
	grpc_call_free(ca);
	grpc_call_free(cb);
	grpc_call_free(cc);
	pair_free(&p);

	free(data);
}

/* Window given back on stream close: streams closed in every way with unconsumed bytes must
 * not leak the connection window (here only 1 MiB, so a leak shows within a few rounds). */
static void test_window_on_close(void)
{
	struct pair p;
	struct h2_settings set;
	struct grpc_call *c, *s;
	struct buf got = BUF_INIT;
	size_t chunk = 250000, n = 2u << 20;
	uint8_t *data = random_bytes(n);

	h2_settings_default(&set);
	set.conn_window = 1u << 20;
	set.stream_window = 256 * 1024; /* below the held message's 750,000 bytes */
	pair_init(&p, &set, &set);
	for (int round = 0; round < 30; round++) {
		struct relay_end *ce, *se;
		int how = round % 6;

		c = open_pair(&p, how == 5 ? GRPC_MESSAGES : GRPC_BYTES, false, &s);
		ce = grpc_call_end(c);
		se = grpc_call_end(s);
		if (how == 3) { /* server -> client, unread by the client */
			CHECK_INT_EQ(end_write(se, data, chunk), chunk);
		} else if (how == 5) { /* a partial held message */
			CHECK_INT_EQ(grpc_call_send(c, data, 3 * chunk), 0);
			settle(&p);
			CHECK_INT_EQ(grpc_call_recv(s, &(const uint8_t *){NULL}, &(size_t){0}), 0);
		} else {
			CHECK_INT_EQ(end_write(ce, data, chunk), chunk);
		}
		settle(&p);
		switch (how) {
		case 0: /* client resets */
			ce->ops->abort(ce, ECONNRESET);
			break;
		case 1: /* server lets go (h2_stream_release) */
			grpc_call_free(s);
			p.acc[p.nacc - 1] = NULL;
			break;
		case 2: /* both end cleanly: the stream closes with bytes unread */
			ce->ops->shutdown(ce);
			se->ops->shutdown(se);
			break;
		case 3: /* client lets go of unread response bytes */
			break;
		case 4: /* server resets */
			se->ops->abort(se, ECONNRESET);
			break;
		case 5: /* server lets go of a half-received message */
			grpc_call_free(s);
			p.acc[p.nacc - 1] = NULL;
			break;
		}
		settle(&p);
		grpc_call_free(c);
		settle(&p);
		CHECK_INT_EQ(h2_session_streams(p.c), 0);
		CHECK_INT_EQ(h2_session_streams(p.s), 0);
	}
	/* 30 x 250 KB were left unread against a 1 MiB connection window: a fresh stream must
	 * still carry 2 MiB each way */
	c = open_pair(&p, GRPC_BYTES, false, &s);
	CHECK(stream_bytes(&p, grpc_call_end(c), grpc_call_end(s), data, n, &got));
	buf_release(&got);
	CHECK(stream_bytes(&p, grpc_call_end(s), grpc_call_end(c), data, n, &got));
	buf_release(&got);
	CHECK_INT_EQ(p.err, 0);
	grpc_call_free(c);
	pair_free(&p);
	free(data);
}

static int pings, goaways;
static uint32_t goaway_last;

static void on_ping_ack(void *arg)
{
	pings++;
}

static void on_goaway(void *arg, uint32_t last, uint32_t code, bool too_many_pings)
{
	goaways++;
	goaway_last = last;
}

/* PING is answered; after GOAWAY the open call carries on, new calls are refused. */
static void test_goaway_ping(void)
{
	struct pair p;
	struct grpc_call *c, *s, *c2;
	struct buf got = BUF_INIT;
	uint8_t *data = random_bytes(100000);
	int rv;

	pair_init(&p, NULL, NULL);
	p.ccbs.on_ping_ack = on_ping_ack;
	p.ccbs.on_goaway = on_goaway;
	c = open_pair(&p, GRPC_BYTES, false, &s);
	CHECK_INT_EQ(h2_session_ping(p.c), 0);
	settle(&p);
	CHECK_INT_EQ(pings, 1);
	CHECK_INT_EQ(h2_session_goaway(p.s, H2_NO_ERROR, "draining"), 0);
	settle(&p);
	CHECK_INT_EQ(goaways, 1);
	CHECK_INT_EQ(goaway_last, grpc_call_stream_id(c));
	/* the open call still works both ways */
	CHECK(stream_bytes(&p, grpc_call_end(c), grpc_call_end(s), data, 100000, &got));
	buf_release(&got);
	CHECK(stream_bytes(&p, grpc_call_end(s), grpc_call_end(c), data, 100000, &got));
	buf_release(&got);
	/* a new one is refused, at once or when its HEADERS cannot be sent */
	c2 = grpc_call_open(p.c, "/ntun.v1.Relay/Connect", NULL, 0, GRPC_MESSAGES, false);
	if (c2) {
		rv = recv_msg(&p, c2, NULL);
		CHECK(rv < 0 && rv != -EPIPE);
		grpc_call_free(c2);
	} else {
		CHECK_INT_EQ(errno, EAGAIN);
	}
	CHECK_INT_EQ(p.nacc, 1);
	grpc_call_end(c)->ops->shutdown(grpc_call_end(c));
	grpc_call_end(s)->ops->shutdown(grpc_call_end(s));
	settle(&p);
	CHECK(grpc_call_end(c)->ops->peek(grpc_call_end(c), &(const uint8_t *){NULL}) == 0);
	CHECK(grpc_call_end(c)->rx_eof);
	CHECK_INT_EQ(h2_session_streams(p.c), 0);
	CHECK_INT_EQ(p.err, 0);
	grpc_call_free(c);
	pair_free(&p);
	free(data);
}

/* h2_session_free closes every open stream: owners hear on_close (their calls fail with
 * ECONNRESET) and may then be freed without touching the gone session. */
static void test_session_free(void)
{
	struct pair p;
	struct grpc_call *c, *s, *c2, *s2;
	struct raw *r;

	pair_init(&p, NULL, NULL);
	c = open_pair(&p, GRPC_BYTES, false, &s);
	c2 = open_pair(&p, GRPC_MESSAGES, false, &s2);
	r = raw_open(&p, NULL);
	CHECK_INT_EQ(end_write(grpc_call_end(c), (const uint8_t *)"abc", 3), 3);
	settle(&p);
	CHECK_INT_EQ(h2_session_streams(p.s), 3);
	h2_session_free(p.s);
	p.s = NULL;
	CHECK_INT_EQ(grpc_call_end(s)->rx_err, ECONNRESET);
	CHECK_INT_EQ(grpc_call_recv(s2, &(const uint8_t *){NULL}, &(size_t){0}), -ECONNRESET);
	CHECK_INT_EQ(grpc_call_stream_id(s), 0);
	for (size_t i = 0; i < p.nacc; i++)
		grpc_call_free(p.acc[i]);
	p.nacc = 0;
	h2_session_free(p.c);
	p.c = NULL;
	CHECK(r->closed);
	CHECK_INT_EQ(r->close_code, H2_CANCEL);
	CHECK_INT_EQ(grpc_call_end(c)->rx_err, ECONNRESET);
	CHECK_INT_EQ(grpc_call_recv(c2, &(const uint8_t *){NULL}, &(size_t){0}), -ECONNRESET);
	grpc_call_free(c);
	grpc_call_free(c2);
	raw_free(r);
	p.nraw = 0;
}

/* Whole messages held beyond the window count per connection: a call that would take the
 * connection over max_held fails with RESOURCE_EXHAUSTED (Trailers-Only), its neighbours and
 * the connection do not; freed calls give their share back. Also for control messages. */
static void test_held_budget(void)
{
	struct h2_settings sset;
	struct pair p;
	struct grpc_call *s1, *s2, *s3;
	struct buf plain = BUF_INIT, z = BUF_INIT, got = BUF_INIT;
	size_t n = 800000;
	uint8_t *rnd = random_bytes(n), hdr[11], pfx[5];
	struct raw *r1, *r2;

	h2_settings_default(&sset);
	sset.max_held = 1u << 20;
	pair_init(&p, NULL, &sset);
	p.pol_gzip = true;
	buf_append(&plain, hdr, grpc_chunk_header(hdr, n));
	buf_append(&plain, rnd, n);
	CHECK_INT_EQ(grpc_gzip(buf_head(&plain), buf_len(&plain), &z), 0);
	CHECK(buf_len(&z) > n); /* random bytes do not shrink */
	grpc_frame_prefix(pfx, true, (uint32_t)buf_len(&z));

	/* call 1 holds 600 KB of its message, call 2 would go over the 1 MiB */
	r1 = raw_open(&p, "gzip");
	raw_send(r1, pfx, 5, false);
	raw_send(r1, buf_head(&z), 600000, false);
	settle(&p);
	s1 = p.acc[0];
	CHECK_INT_EQ(end_read(grpc_call_end(s1), NULL, SIZE_MAX), 0);
	CHECK_INT_EQ(grpc_call_end(s1)->rx_err, 0);
	CHECK(h2_session_held(p.s) >= 600000);
	r2 = raw_open(&p, "gzip");
	raw_send(r2, pfx, 5, false);
	raw_send(r2, buf_head(&z), 600000, false);
	settle(&p);
	s2 = p.acc[1];
	CHECK_INT_EQ(end_read(grpc_call_end(s2), NULL, SIZE_MAX), 0);
	CHECK_INT_EQ(grpc_call_end(s2)->rx_err, ENOBUFS);
	CHECK(h2_session_held(p.s) <= sset.max_held);
	/* the relay aborts a failed end with its error: RESOURCE_EXHAUSTED to the peer */
	grpc_call_end(s2)->ops->abort(grpc_call_end(s2), ENOBUFS);
	settle(&p);
	CHECK_STR_EQ(r2->status, "8");
	grpc_call_free(s2);
	p.acc[1] = NULL;
	/* call 1 completes: its decoded 800 KB fit once the compressed bytes are gone */
	raw_send(r1, buf_head(&z) + 600000, buf_len(&z) - 600000, false);
	settle(&p);
	CHECK_INT_EQ(end_read(grpc_call_end(s1), &got, SIZE_MAX), n);
	CHECK(same(&got, rnd, n));
	CHECK_INT_EQ(grpc_call_end(s1)->rx_err, 0);
	CHECK_INT_EQ(h2_session_held(p.s), 0);
	buf_release(&got);
	CHECK_INT_EQ(p.err, 0);

	/* message mode: a 2 MiB control message does not fit */
	p.pol_mode = GRPC_MESSAGES;
	s3 = NULL;
	{
		struct grpc_call *c = open_pair(&p, GRPC_MESSAGES, false, &s3);
		uint8_t *big = calloc(1, 2u << 20);

		CHECK_INT_EQ(grpc_call_send(c, big, 2u << 20), 0);
		CHECK_INT_EQ(recv_msg(&p, s3, NULL), -ENOBUFS);
		CHECK_INT_EQ(grpc_call_send(c, "small", 5), 0);
		grpc_call_free(c);
		free(big);
	}
	CHECK(h2_session_held(p.s) <= sset.max_held);
	pair_free(&p);
	buf_release(&plain);
	buf_release(&z);
	free(rnd);
}

int main(void)
{
	test_frame_vectors();
	test_chunk_parse();
	test_gzip_helpers();
	test_request_check();
	test_ctl();
	test_messages(false);
	test_messages(true);
	test_bytes_stream(false);
	test_bytes_stream(true);
	test_half_close(true);
	test_half_close(false);
	test_half_close_messages();
	test_status_after_data();
	test_trailers_only();
	test_reset();
	test_data_done(false);
	test_data_done(true);
	test_cut_through();
	test_cut_through_window();
	test_oversize();
	test_bad_flag();
	test_gzip_calls();
	test_gzip_raw();
	test_held_budget();
	test_chunk_stream(false);
	test_chunk_stream(true);
	test_flow_control();
	test_window_on_close();
	test_goaway_ping();
	test_session_free();
	return check_done("test_grpc");
}
