// SPDX-License-Identifier: MIT
/* gRPC calls on top of h2 streams: framing and deframing, the Chunk payload stream, whole
 * messages for control calls, gzip, status trailers, and the relay-end face of a call.
 * Windows are given back as bytes leave the inbound buffer (or, for messages that must be
 * held whole, as they arrive), so memory per call stays within its HTTP/2 window. */
#include "grpc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <zlib.h>

#include "buf.h"
#include "relay.h"
#include "sock.h"

enum deframe {
	DF_PREFIX, /* expecting the 5-byte message prefix */
	DF_FIELD,  /* bytes mode: expecting a protobuf field key inside a message */
	DF_DATA,   /* bytes mode: inside Chunk.data, streamed out */
	DF_SKIP,   /* bytes mode: inside an unknown length-delimited field */
	DF_HELD,   /* the whole message must arrive first (compressed, or message mode) */
};

/* What only some calls need: held (compressed) messages, message mode, the pushed-bytes path
 * and the peer's status text. Kept apart so that a bulk tunnel call stays small. */
struct grpc_aux {
	struct buf dec;		 /* a decoded held message (or its Chunk payload in bytes mode) */
	size_t dec_off, dec_len; /* bytes mode: the part of dec still to hand out */
	size_t dec_owed;	 /* of dec's head, bytes whose window is given back as they go */
	size_t dec_held;	 /* dec is a decoded held message of this many bytes */
	bool msg_drop;		 /* message mode: release dec at the next recv */
	char *peer_msg;
	void (*wake)(void *arg);
	void *wake_arg;
	struct buf out; /* framed messages waiting for nghttp2 (message mode, gzip, written ends) */
};

#define GATHER_MAX 16 /* pieces per writev; more are written early */

/* Cut-through pieces taken during one h2_session_recv: they point into its input and leave in
 * one writev when it ends (cb_data_done), not in a send(2) each. With 32 KiB messages in
 * 64 KiB reads a client made four sends per read, most under 4 KiB. */
struct gather {
	struct iovec iov[GATHER_MAX];
	int n;
	size_t bytes;
};

struct grpc_call {
	struct relay_end end; /* first: the relay sees the call as its end */
	struct h2_stream *st; /* NULL once the stream closed */
	struct grpc_aux *aux; /* see above; allocated on first need */

	/* zero-copy outbound (bytes mode): messages are framed from src's bytes as nghttp2
	 * asks for DATA, copied once, straight into the connection's output */
	struct relay_end *src;
	struct relay_end *sink; /* cut-through inbound: a socket end that takes bytes at once */
	struct gather *g;	/* cut-through pieces not written yet, only inside a recv */

	/* inbound */
	struct bufq in;
	uint32_t in_credited; /* bytes at the head of in already given back to the window */
	uint32_t msg_left, data_left;
	uint32_t payload_left;	    /* outbound: payload of the current message not yet sent */
	int16_t peer_status;	    /* client side: grpc-status, -1 until known */
	int16_t peer_errno;	    /* from ntun-error */
	uint8_t phdr[16];	    /* outbound: the current message's prefix + Chunk header */
	uint8_t phdr_len, phdr_off; /* of phdr, how much is built / already sent */
	uint8_t df;		    /* enum deframe */
	uint8_t mode;		    /* enum grpc_mode */

	bool server : 1;
	bool gzip_out : 1, gzip_in : 1;
	bool gzip_ok : 1; /* we accept gzip (and say so in grpc-accept-encoding) */
	bool held_compressed : 1;
	bool field1_seen : 1;
	bool in_end : 1;     /* the peer ended its side */
	bool out_eof : 1;    /* our side is finished once what is queued drains */
	bool responded : 1;  /* server: response headers submitted */
	bool answered : 1;   /* client: response headers (or Trailers-Only) arrived */
	bool aborted : 1;    /* we reset the stream */
	bool blocked : 1;    /* the relay found out full; wake it when it drains */
	bool relay_gone : 1; /* nobody owns us: live until the stream closes, then free */
};

/* The call's aux part, made on first need; NULL if memory ran out. */
static struct grpc_aux *aux_get(struct grpc_call *c)
{
	if (!c->aux)
		c->aux = calloc(1, sizeof(*c->aux));
	return c->aux;
}

static size_t out_len(const struct grpc_call *c)
{
	return c->aux ? buf_len(&c->aux->out) : 0;
}

static size_t dec_len(const struct grpc_call *c)
{
	return c->aux ? c->aux->dec_len : 0;
}

static const struct h2_stream_cbs call_stream_cbs;
static const struct relay_end_ops call_end_ops;

const char *grpc_md_get(const struct h2_nv *nv, size_t n, const char *name)
{
	size_t len = strlen(name);

	for (size_t i = 0; i < n; i++)
		if (nv[i].namelen == len && !memcmp(nv[i].name, name, len))
			return nv[i].value;
	return NULL;
}

static bool content_type_ok(const char *ct)
{
	if (!ct || strncmp(ct, "application/grpc", 16) != 0)
		return false;
	return ct[16] == 0 || ct[16] == '+' || ct[16] == ';';
}

/* identity (or absent) -> 0, gzip -> 1, anything else -> -1 */
static int encoding_kind(const char *enc)
{
	if (!enc || !strcmp(enc, "identity"))
		return 0;
	if (!strcmp(enc, "gzip"))
		return 1;
	return -1;
}

/* Whether a comma-separated list (grpc-accept-encoding) names gzip. */
static bool accepts_gzip(const char *list)
{
	const char *p = list;

	while (p && *p) {
		while (*p == ' ' || *p == ',')
			p++;
		if (!strncmp(p, "gzip", 4) && (p[4] == 0 || p[4] == ',' || p[4] == ' '))
			return true;
		p = strchr(p, ',');
	}
	return false;
}

enum grpc_status grpc_request_check(const struct h2_nv *nv, size_t n, bool gzip_ok,
				    const char **path, const char **msg)
{
	int enc;

	const char *method = grpc_md_get(nv, n, ":method");

	*path = grpc_md_get(nv, n, ":path");
	if (!method || strcmp(method, "POST")) {
		*msg = "method must be POST";
		return GRPC_UNIMPLEMENTED;
	}
	if (!content_type_ok(grpc_md_get(nv, n, "content-type"))) {
		*msg = "content-type must be application/grpc";
		return GRPC_INVALID_ARGUMENT;
	}
	if (!*path || (*path)[0] != '/') {
		*msg = "missing :path";
		return GRPC_UNIMPLEMENTED;
	}
	enc = encoding_kind(grpc_md_get(nv, n, "grpc-encoding"));
	if (enc < 0 || (enc == 1 && !gzip_ok)) {
		*msg = gzip_ok ? "unsupported grpc-encoding (identity, gzip)"
			       : "unsupported grpc-encoding (identity; gzip is not enabled here)";
		return GRPC_UNIMPLEMENTED;
	}
	*msg = NULL;
	return GRPC_OK;
}

/* Percent-encodes a grpc-message as the protocol requires. */
static void encode_message(const char *msg, char *out, size_t size)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;

	for (; msg && *msg && o + 4 < size; msg++) {
		unsigned char ch = (unsigned char)*msg;

		if (ch < 0x20 || ch > 0x7e || ch == '%') {
			out[o++] = '%';
			out[o++] = hex[ch >> 4];
			out[o++] = hex[ch & 15];
		} else {
			out[o++] = (char)ch;
		}
	}
	out[o] = 0;
}

static char *decode_message(const char *msg)
{
	size_t len = strlen(msg), o = 0;
	char *out = malloc(len + 1);

	if (!out)
		return NULL;
	for (size_t i = 0; i < len; i++) {
		unsigned v;

		if (msg[i] == '%' && i + 2 < len + 0 && sscanf(msg + i + 1, "%2x", &v) == 1) {
			out[o++] = (char)v;
			i += 2;
		} else {
			out[o++] = msg[i];
		}
	}
	out[o] = 0;
	return out;
}

static size_t status_headers(struct h2_nv *nv, size_t n, enum grpc_status status, const char *msg,
			     const char *ntun_error, char *sbuf, char *mbuf, size_t msize)
{
	snprintf(sbuf, 12, "%d", (int)status);
	nv[n++] = (struct h2_nv)H2_NV("grpc-status", sbuf);
	if (msg && *msg) {
		encode_message(msg, mbuf, msize);
		nv[n++] = (struct h2_nv)H2_NV("grpc-message", mbuf);
	}
	if (ntun_error)
		nv[n++] = (struct h2_nv)H2_NV("ntun-error", ntun_error);
	return n;
}

int grpc_reject(struct h2_stream *st, enum grpc_status status, const char *msg,
		const char *ntun_error)
{
	struct h2_nv nv[6];
	char sbuf[12], mbuf[512];
	size_t n = 0;

	nv[n++] = (struct h2_nv)H2_NV(":status", "200");
	nv[n++] = (struct h2_nv)H2_NV("content-type", "application/grpc");
	n = status_headers(nv, n, status, msg, ntun_error, sbuf, mbuf, sizeof(mbuf));
	return h2_stream_respond(st, nv, n, false);
}

enum grpc_status grpc_status_from_errno(int err)
{
	switch (err) {
	case 0:
		return GRPC_OK;
	case ECONNRESET:
	case ECANCELED:
		return GRPC_CANCELLED;
	case ETIMEDOUT:
		return GRPC_DEADLINE_EXCEEDED;
	case EACCES:
	case EPERM:
		return GRPC_PERMISSION_DENIED;
	case EPROTO:
	case EMSGSIZE:
		return GRPC_INTERNAL;
	case ENOMEM:
	case ENOBUFS:
		return GRPC_RESOURCE_EXHAUSTED;
	default:
		return GRPC_UNAVAILABLE;
	}
}

/* ---- framing ---- */

void grpc_frame_prefix(uint8_t out[5], bool compressed, uint32_t len)
{
	out[0] = compressed ? 1 : 0;
	out[1] = (uint8_t)(len >> 24);
	out[2] = (uint8_t)(len >> 16);
	out[3] = (uint8_t)(len >> 8);
	out[4] = (uint8_t)len;
}

static size_t put_varint(uint8_t *out, uint64_t v)
{
	size_t n = 0;

	while (v >= 0x80) {
		out[n++] = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	out[n++] = (uint8_t)v;
	return n;
}

/* Parses a varint from p[0..n). Returns its length, 0 if incomplete, -1 if malformed. */
static int get_varint(const uint8_t *p, size_t n, uint64_t *v)
{
	uint64_t r = 0;

	for (size_t i = 0; i < n && i < 10; i++) {
		r |= (uint64_t)(p[i] & 0x7f) << (7 * i);
		if (!(p[i] & 0x80)) {
			*v = r;
			return (int)i + 1;
		}
	}
	return n >= 10 ? -1 : 0;
}

size_t grpc_chunk_header(uint8_t out[11], size_t len)
{
	out[0] = 0x0a; /* field 1, length-delimited */
	return 1 + put_varint(out + 1, len);
}

/* Skips the value of a field with wire type wt at p[0..n). Returns bytes skipped or -1. */
static long skip_value(unsigned wt, const uint8_t *p, size_t n)
{
	uint64_t v;
	int k;

	switch (wt) {
	case 0:
		k = get_varint(p, n, &v);
		return k > 0 ? k : -1;
	case 1:
		return n >= 8 ? 8 : -1;
	case 5:
		return n >= 4 ? 4 : -1;
	case 2:
		k = get_varint(p, n, &v);
		if (k <= 0 || v > n - (size_t)k)
			return -1;
		return k + (long)v;
	default:
		return -1;
	}
}

int grpc_chunk_parse(const uint8_t *msg, size_t n, const uint8_t **data, size_t *len)
{
	size_t off = 0;
	bool seen = false;

	*data = msg;
	*len = 0;
	while (off < n) {
		uint64_t key, l;
		int k = get_varint(msg + off, n - off, &key);
		long s;

		if (k <= 0 || (key >> 3) == 0 || (key >> 3) > 0x1fffffff)
			return -EPROTO;
		off += (size_t)k;
		if ((key >> 3) == 1) {
			if ((key & 7) != 2 || seen)
				return -EPROTO;
			k = get_varint(msg + off, n - off, &l);
			if (k <= 0 || l > n - off - (size_t)k)
				return -EPROTO;
			off += (size_t)k;
			*data = msg + off;
			*len = (size_t)l;
			off += (size_t)l;
			seen = true;
			continue;
		}
		s = skip_value((unsigned)(key & 7), msg + off, n - off);
		if (s < 0)
			return -EPROTO;
		off += (size_t)s;
	}
	return 0;
}

int grpc_gzip(const uint8_t *p, size_t n, struct buf *out)
{
	z_stream z = {0};
	uint8_t *dst;
	size_t bound;
	int rv, ret = 0;

	if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY))
		return -ENOMEM;
	bound = deflateBound(&z, n);
	dst = buf_reserve(out, bound);
	if (!dst) {
		ret = -ENOMEM;
		goto out;
	}
	z.next_in = (uint8_t *)(uintptr_t)p;
	z.avail_in = (uInt)n;
	z.next_out = dst;
	z.avail_out = (uInt)bound;
	rv = deflate(&z, Z_FINISH);
	if (rv != Z_STREAM_END) {
		ret = -EIO;
		goto out;
	}
	buf_commit(out, bound - z.avail_out);
out:
	deflateEnd(&z);
	return ret;
}

int grpc_gunzip(const uint8_t *p, size_t n, struct buf *out, size_t max)
{
	z_stream z = {0};
	size_t total = 0;
	int rv = Z_OK, ret = 0;

	if (inflateInit2(&z, 15 + 16))
		return -ENOMEM;
	z.next_in = (uint8_t *)(uintptr_t)p;
	z.avail_in = (uInt)n;
	while (rv != Z_STREAM_END) {
		uint8_t *dst = buf_reserve(out, 16384);

		if (!dst) {
			ret = -ENOMEM;
			goto out;
		}
		z.next_out = dst;
		z.avail_out = (uInt)buf_room(out);
		rv = inflate(&z, Z_NO_FLUSH);
		if (rv != Z_OK && rv != Z_STREAM_END) {
			ret = -EPROTO;
			goto out;
		}
		buf_commit(out, buf_room(out) - z.avail_out);
		total = buf_len(out);
		if (total > max) {
			ret = -EMSGSIZE;
			goto out;
		}
		if (rv == Z_OK && z.avail_in == 0 && z.avail_out != 0) {
			ret = -EPROTO; /* truncated */
			goto out;
		}
	}
	if (z.avail_in != 0)
		ret = -EPROTO; /* trailing garbage */
out:
	inflateEnd(&z);
	return ret;
}

/* ---- calls ---- */

static struct grpc_call *call_new(enum grpc_mode mode, bool server)
{
	struct grpc_call *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->end.ops = &call_end_ops;
	c->mode = mode;
	c->server = server;
	c->peer_status = -1;
	bufq_init(&c->in);
	if (mode == GRPC_MESSAGES && !aux_get(c)) {
		free(c);
		return NULL;
	}
	return c;
}

static void call_destroy(struct grpc_call *c)
{
	free(c->g);
	bufq_release(&c->in);
	if (c->aux) {
		buf_release(&c->aux->dec);
		buf_release(&c->aux->out);
		free(c->aux->peer_msg);
		free(c->aux);
	}
	free(c);
}

static void call_notify(struct grpc_call *c)
{
	if (c->mode == GRPC_BYTES && (c->end.relay || !c->aux || !c->aux->wake))
		relay_end_wake(&c->end);
	else if (c->aux && c->aux->wake)
		c->aux->wake(c->aux->wake_arg);
}

static void call_fail(struct grpc_call *c, int err)
{
	if (!c->end.rx_err)
		c->end.rx_err = err;
	call_notify(c);
}

struct grpc_call *grpc_call_open(struct h2_session *s, const char *path, const struct h2_nv *md,
				 size_t nmd, enum grpc_mode mode, bool gzip)
{
	struct h2_nv nv[32];
	size_t n = 0;
	struct grpc_call *c;

	if (nmd > 20) {
		errno = EINVAL;
		return NULL;
	}
	c = call_new(mode, false);
	if (!c)
		return NULL;
	c->gzip_out = gzip;
	c->gzip_ok = gzip;
	nv[n++] = (struct h2_nv)H2_NV(":method", "POST");
	nv[n++] = (struct h2_nv)H2_NV(":scheme", "https");
	nv[n++] = (struct h2_nv)H2_NV(":path", path);
	nv[n++] = (struct h2_nv)H2_NV(":authority", "ntun");
	nv[n++] = (struct h2_nv)H2_NV("content-type", "application/grpc");
	nv[n++] = (struct h2_nv)H2_NV("te", "trailers");
	nv[n++] = (struct h2_nv)H2_NV("user-agent", "ntun/" NTUN_VERSION);
	nv[n++] = (struct h2_nv)H2_NV("grpc-accept-encoding", gzip ? "identity,gzip" : "identity");
	if (gzip)
		nv[n++] = (struct h2_nv)H2_NV("grpc-encoding", "gzip");
	for (size_t i = 0; i < nmd; i++)
		nv[n++] = md[i];
	c->st = h2_stream_request(s, nv, n, &call_stream_cbs, c);
	if (!c->st) {
		int err = errno;

		call_destroy(c);
		errno = err;
		return NULL;
	}
	return c;
}

struct grpc_call *grpc_call_accept(struct h2_stream *st, const struct h2_nv *nv, size_t n, bool end,
				   enum grpc_mode mode, bool gzip)
{
	struct grpc_call *c = call_new(mode, true);

	if (!c)
		return NULL;
	c->st = st;
	c->gzip_ok = gzip;
	c->gzip_in = gzip && encoding_kind(grpc_md_get(nv, n, "grpc-encoding")) == 1;
	c->gzip_out = gzip && accepts_gzip(grpc_md_get(nv, n, "grpc-accept-encoding"));
	c->in_end = end;
	h2_stream_attach(st, &call_stream_cbs, c);
	return c;
}

struct relay_end *grpc_call_end(struct grpc_call *c)
{
	return &c->end;
}

void grpc_call_set_wake(struct grpc_call *c, void (*wake)(void *arg), void *arg)
{
	struct grpc_aux *x = c->aux;

	/* A bytes-mode call whose aux held only the wake lets it go: a pending tunnel needs one
	 * while it waits for its Dial's answer, an idle relayed tunnel should not keep it. */
	if (!wake && x && c->mode == GRPC_BYTES && !buf_len(&x->dec) && !x->dec_len &&
	    !x->dec_owed && !x->dec_held && !x->peer_msg && !buf_len(&x->out)) {
		buf_release(&x->dec);
		buf_release(&x->out);
		free(x);
		c->aux = NULL;
		return;
	}
	if (!wake && !x)
		return;
	if (!aux_get(c))
		return; /* message-mode calls have theirs from the start */
	c->aux->wake = wake;
	c->aux->wake_arg = arg;
}

bool grpc_call_answered(const struct grpc_call *c)
{
	return c->answered;
}

int grpc_call_peer_status(const struct grpc_call *c)
{
	return c->peer_status;
}

const char *grpc_call_peer_message(const struct grpc_call *c)
{
	return c->aux && c->aux->peer_msg ? c->aux->peer_msg : "";
}

uint32_t grpc_call_stream_id(const struct grpc_call *c)
{
	return c->st ? h2_stream_id(c->st) : 0;
}

/* Tells the session what the call holds beyond its window: the buffered part of a message
 * that must arrive whole, and a decoded held message. Growth beyond the connection's budget
 * is -ENOBUFS (the call then fails with RESOURCE_EXHAUSTED). */
static int held_sync(struct grpc_call *c, size_t credited)
{
	size_t dec = c->aux ? c->aux->dec_held : 0;

	return c->st ? h2_stream_hold(c->st, credited + dec) : 0;
}

/* Releases dec (and what it counted as held). */
static void dec_release(struct grpc_call *c)
{
	buf_release(&c->aux->dec);
	c->aux->dec_held = 0;
	held_sync(c, c->in_credited);
}

/* Drops n bytes from the head of in, giving back the window not given back yet. */
static void in_drop(struct grpc_call *c, size_t n)
{
	size_t pre = n < c->in_credited ? n : c->in_credited;

	c->in_credited -= pre;
	bufq_consume(&c->in, n);
	if (n - pre && c->st)
		h2_stream_consume(c->st, n - pre);
	if (pre)
		held_sync(c, c->in_credited);
}

/* Gives back the window for everything buffered: used while a whole message must arrive,
 * as long as the connection's budget for held bytes allows. 0 or -ENOBUFS. */
static int in_credit_all(struct grpc_call *c)
{
	size_t n = bufq_len(&c->in) - c->in_credited;

	if (!n)
		return 0;
	if (held_sync(c, bufq_len(&c->in)) < 0)
		return -ENOBUFS;
	if (c->st)
		h2_stream_consume(c->st, n);
	c->in_credited = (uint32_t)bufq_len(&c->in);
	return 0;
}

/* Parses a message prefix at h[0..avail). Returns the bytes it used (5), 0 if more are
 * needed, or -errno if malformed. Updates the deframer state; the caller drops the bytes. */
static int parse_prefix_at(struct grpc_call *c, const uint8_t *h, size_t avail)
{
	uint32_t len;
	uint8_t flag;

	if (avail < 5)
		return 0;
	flag = h[0];
	len = (uint32_t)h[1] << 24 | (uint32_t)h[2] << 16 | (uint32_t)h[3] << 8 | h[4];
	if (flag > 1)
		return -EPROTO;
	if (flag == 1 && !c->gzip_in)
		return -EPROTO; /* compressed flag without grpc-encoding */
	if (len > (flag || c->mode == GRPC_MESSAGES ? GRPC_MAX_HELD : GRPC_MAX_MESSAGE))
		return -EMSGSIZE;
	c->msg_left = len;
	c->field1_seen = false;
	c->held_compressed = flag == 1;
	c->df = (flag == 1 || c->mode == GRPC_MESSAGES) ? DF_HELD : DF_FIELD;
	return 5;
}

/* Bytes mode: one protobuf key (and length, or small value) inside a Chunk message at
 * h[0..avail). Returns the bytes used, 0 if more are needed, -errno if malformed. */
static int parse_field_at(struct grpc_call *c, const uint8_t *h, size_t avail)
{
	size_t lim = avail < c->msg_left ? avail : c->msg_left;
	uint64_t key, len;
	int k, k2;
	long s;

	k = get_varint(h, lim, &key);
	if (k < 0 || (k == 0 && lim >= c->msg_left))
		return -EPROTO;
	if (k == 0)
		return 0;
	if ((key >> 3) == 0)
		return -EPROTO;
	if ((key >> 3) == 1 || (key & 7) == 2) {
		if ((key & 7) != 2 || ((key >> 3) == 1 && c->field1_seen))
			return -EPROTO;
		k2 = get_varint(h + k, lim - (size_t)k, &len);
		if (k2 < 0 || (k2 == 0 && lim >= c->msg_left))
			return -EPROTO;
		if (k2 == 0)
			return 0;
		if (len > c->msg_left - (uint32_t)k - (uint32_t)k2)
			return -EPROTO;
		c->msg_left -= (uint32_t)(k + k2);
		c->data_left = (uint32_t)len;
		if ((key >> 3) == 1) {
			c->field1_seen = true;
			c->df = DF_DATA;
		} else {
			c->df = DF_SKIP;
		}
		return k + k2;
	}
	/* fixed-size or varint value of an unknown field: need it whole */
	s = skip_value((unsigned)(key & 7), h + k, lim - (size_t)k);
	if (s < 0) {
		if ((key & 7) == 3 || (key & 7) == 4 || (key & 7) > 5 || lim >= c->msg_left)
			return -EPROTO;
		return 0;
	}
	c->msg_left -= (uint32_t)(k + s);
	return k + (int)s;
}

/* The same two steps on the head of in, made contiguous up to max bytes: a prefix is 5, a
 * Chunk field head at most 20 (key and length varints, or a key and a value of up to 10; the
 * parsers ask for more bytes, never fewer, when they do not all fit). 1 = progressed, 0 = need
 * more, -errno = malformed. */
static int parse_head(struct grpc_call *c, size_t max,
		      int (*parse_at)(struct grpc_call *, const uint8_t *, size_t))
{
	size_t n = bufq_len(&c->in) < max ? bufq_len(&c->in) : max;
	const uint8_t *h = bufq_pullup(&c->in, n);
	int r;

	if (!h)
		return n ? -ENOMEM : 0;
	r = parse_at(c, h, n);
	if (r > 0)
		in_drop(c, (size_t)r);
	return r > 0 ? 1 : r;
}

static int parse_prefix(struct grpc_call *c)
{
	return parse_head(c, 5, parse_prefix_at);
}

static int parse_field(struct grpc_call *c)
{
	return parse_head(c, 20, parse_field_at);
}

/* The end of a Chunk field (data_left 0) leads to the next field head, the end of a message
 * (msg_left 0) to the next prefix: both deframers take these steps before looking at bytes. */
static void df_settle(struct grpc_call *c)
{
	if ((c->df == DF_DATA || c->df == DF_SKIP) && c->data_left == 0)
		c->df = DF_FIELD;
	if (c->df == DF_FIELD && c->msg_left == 0)
		c->df = DF_PREFIX;
}

/* Copies what the sink did not take (all after its first w bytes) into dec. dec is empty: a
 * gather starts only with dec empty and the pump never runs inside a recv. Returns the bytes
 * kept, 0 if the call failed instead. */
static size_t gather_keep(struct grpc_call *c, const struct gather *g, size_t w)
{
	struct grpc_aux *x = aux_get(c);
	size_t rest = g->bytes - w, skip = w;
	uint8_t *d = NULL;

	if (x && !x->dec_len) {
		dec_release(c);
		x->dec_off = 0;
		d = buf_reserve(&x->dec, rest);
	}
	if (!d) {
		call_fail(c, x && x->dec_len ? EPROTO : ENOMEM);
		return 0;
	}
	for (int i = 0; i < g->n; i++) {
		size_t len = g->iov[i].iov_len, off = skip < len ? skip : len;

		memcpy(d, (const uint8_t *)g->iov[i].iov_base + off, len - off);
		d += len - off;
		skip -= off;
	}
	buf_commit(&x->dec, rest);
	x->dec_len = x->dec_owed = rest;
	return rest;
}

/* Writes what the gather holds; the rest waits in dec, which call_peek hands out before
 * anything buffered after it. The window comes back for what was written (or dropped with a
 * failed call) now, for what dec keeps as the pump hands it out. */
static void gather_flush(struct grpc_call *c)
{
	struct gather *g = c->g;
	struct relay_end *sink = c->sink;
	size_t w = 0, kept = 0;

	if (!g)
		return;
	c->g = NULL;
	if (sink && !sink->rx_err && !c->end.rx_err) {
		w = sink->ops->writev(sink, g->iov, g->n);
		relay_end_pulled(sink, &c->end, w);
		if (w < g->bytes && !sink->rx_err)
			kept = gather_keep(c, g, w);
		if (w < g->bytes || sink->rx_err)
			call_notify(c);
	}
	if (c->st)
		h2_stream_consume(c->st, g->bytes - kept);
	free(g);
}

/* Cut-through of one piece of payload: gathered for one writev at the end of the recv if
 * the sink can, else written now. Returns the bytes taken; adds to *owed those whose window
 * the gather gives back. */
static size_t sink_write(struct grpc_call *c, const uint8_t *p, size_t n, size_t *owed)
{
	struct relay_end *sink = c->sink;
	struct gather *g = c->g;
	size_t w;

	if (g && g->n == GATHER_MAX) {
		gather_flush(c);
		if (dec_len(c) || sink->rx_err || c->end.rx_err)
			return 0; /* full: the caller buffers the rest, after dec */
		g = NULL;
	}
	if (!g && sink->ops->writev) {
		g = c->g = malloc(sizeof(*g));
		if (g) {
			g->n = 0;
			g->bytes = 0;
		}
	}
	if (!g) {
		w = sink->ops->write(sink, p, n);
		relay_end_pulled(sink, &c->end, w);
		return w;
	}
	g->iov[g->n++] = (struct iovec){.iov_base = (void *)(uintptr_t)p, .iov_len = n};
	g->bytes += n;
	*owed += n;
	return n;
}

/* Cut-through: with nothing buffered, DATA payload goes straight from nghttp2's input to the
 * sink (a socket, which copies it out at once), skipping the inbound buffer. Stops where a
 * header straddles the end, the sink is full, or a message must be held whole; the caller
 * buffers the rest. Returns the bytes used. */
static size_t deframe_direct(struct grpc_call *c, const uint8_t *p, size_t n, size_t *owed)
{
	struct relay_end *sink = c->sink;
	size_t used = 0, k, w;
	int r;

	while (used < n && !c->end.rx_err && !sink->rx_err) {
		df_settle(c);
		switch (c->df) {
		case DF_PREFIX:
			r = parse_prefix_at(c, p + used, n - used);
			break;
		case DF_FIELD:
			r = parse_field_at(c, p + used, n - used);
			break;
		case DF_DATA:
		case DF_SKIP:
			k = n - used < c->data_left ? n - used : c->data_left;
			w = c->df == DF_DATA ? sink_write(c, p + used, k, owed) : k;
			used += w;
			c->data_left -= (uint32_t)w;
			c->msg_left -= (uint32_t)w;
			if (w < k)
				return used;
			continue;
		default:
			return used;
		}
		if (r < 0) {
			call_fail(c, -r);
			return used;
		}
		if (r == 0)
			return used;
		used += (size_t)r;
	}
	return used;
}

/* Decodes a held message (all msg_left bytes are in in) into dec / a view. */
static int take_held(struct grpc_call *c, const uint8_t **msg, size_t *len)
{
	struct grpc_aux *x = aux_get(c);
	int rv;

	if (!x)
		return -ENOMEM;
	dec_release(c);
	x->dec_off = 0;
	if (c->held_compressed) {
		const uint8_t *z = bufq_pullup(&c->in, c->msg_left);

		if (!z && c->msg_left)
			return -ENOMEM;
		rv = grpc_gunzip(z, c->msg_left, &x->dec, GRPC_MAX_HELD);
		if (rv < 0)
			return rv;
		*msg = buf_head(&x->dec);
		*len = buf_len(&x->dec);
	} else {
		uint8_t *d = c->msg_left ? buf_reserve(&x->dec, c->msg_left) : NULL;

		if (c->msg_left && !d)
			return -ENOMEM;
		bufq_copyout(&c->in, d, c->msg_left);
		buf_commit(&x->dec, c->msg_left);
		*msg = buf_head(&x->dec);
		*len = c->msg_left;
	}
	in_drop(c, c->msg_left);
	c->msg_left = 0;
	c->df = DF_PREFIX;
	x->dec_held = buf_len(&x->dec);
	if (held_sync(c, c->in_credited) < 0) {
		dec_release(c);
		return -ENOBUFS;
	}
	return 0;
}

static size_t call_peek(struct relay_end *e, const uint8_t **p)
{
	struct grpc_call *c = (struct grpc_call *)e;
	const uint8_t *msg, *data;
	size_t len, dlen, avail, n;
	int rv = 0;

	for (;;) {
		if (e->rx_err)
			return 0;
		if (dec_len(c)) {
			*p = buf_head(&c->aux->dec) + c->aux->dec_off;
			return c->aux->dec_len;
		}
		avail = bufq_len(&c->in);
		df_settle(c);
		switch (c->df) {
		case DF_PREFIX:
			rv = parse_prefix(c);
			break;
		case DF_FIELD:
			rv = parse_field(c);
			break;
		case DF_DATA:
		case DF_SKIP:
			if (!avail) {
				rv = 0;
				break;
			}
			n = avail < c->data_left ? avail : c->data_left;
			if (c->df == DF_DATA) {
				const uint8_t *h;
				size_t here = bufq_peek(&c->in, &h);

				*p = h;
				return n < here ? n : here;
			}
			in_drop(c, n);
			c->data_left -= (uint32_t)n;
			c->msg_left -= (uint32_t)n;
			continue;
		case DF_HELD:
			if (avail < c->msg_left) {
				rv = in_credit_all(c);
				break;
			}
			rv = take_held(c, &msg, &len);
			if (rv == 0)
				rv = grpc_chunk_parse(msg, len, &data, &dlen);
			if (rv == 0) {
				c->aux->dec_off = (size_t)(data - buf_head(&c->aux->dec));
				c->aux->dec_len = dlen;
				if (!dlen)
					dec_release(c);
				rv = 1;
			}
			break;
		}
		if (rv < 0) {
			call_fail(c, -rv);
			return 0;
		}
		if (rv == 0)
			break;
	}
	/* Nothing more for now. At the peer's end, anything left over is a truncated message. */
	if (c->in_end && !e->rx_eof && (c->server || c->peer_status == GRPC_OK)) {
		if (c->df != DF_PREFIX || bufq_len(&c->in))
			call_fail(c, EPROTO);
		else
			e->rx_eof = true;
	}
	return 0;
}

static void call_consume(struct relay_end *e, size_t n)
{
	struct grpc_call *c = (struct grpc_call *)e;

	if (dec_len(c)) {
		struct grpc_aux *x = c->aux;
		size_t k = n < x->dec_owed ? n : x->dec_owed;

		x->dec_off += n;
		x->dec_len -= n;
		x->dec_owed -= k;
		if (k && c->st)
			h2_stream_consume(c->st, k);
		if (!x->dec_len)
			dec_release(c);
		return;
	}
	in_drop(c, n);
	c->data_left -= (uint32_t)n;
	c->msg_left -= (uint32_t)n;
}

static int respond_headers(struct grpc_call *c)
{
	struct h2_nv nv[4];
	size_t n = 0;
	int rv;

	if (!c->server || c->responded)
		return 0;
	nv[n++] = (struct h2_nv)H2_NV(":status", "200");
	nv[n++] = (struct h2_nv)H2_NV("content-type", "application/grpc");
	nv[n++] = (struct h2_nv)H2_NV("grpc-accept-encoding",
				      c->gzip_ok ? "identity,gzip" : "identity");
	if (c->gzip_out)
		nv[n++] = (struct h2_nv)H2_NV("grpc-encoding", "gzip");
	rv = h2_stream_respond(c->st, nv, n, true);
	if (rv == 0)
		c->responded = true;
	return rv;
}

/* Appends one framed message: prefix, optional Chunk header, payload (maybe gzipped). */
static int frame_message(struct grpc_call *c, const uint8_t *p, size_t n, bool chunk)
{
	struct grpc_aux *x = aux_get(c);
	uint8_t hdr[16];
	size_t hl = 0, before;
	struct buf tmp = BUF_INIT;
	int rv = 0;

	if (!x)
		return -ENOMEM;
	before = buf_len(&x->out);

	if (c->gzip_out) {
		if (chunk) {
			uint8_t ch[11];
			size_t cl = grpc_chunk_header(ch, n);
			struct buf plain = BUF_INIT;

			if (buf_append(&plain, ch, cl) < 0 || buf_append(&plain, p, n) < 0)
				rv = -ENOMEM;
			else
				rv = grpc_gzip(buf_head(&plain), buf_len(&plain), &tmp);
			buf_release(&plain);
		} else {
			rv = grpc_gzip(p, n, &tmp);
		}
		if (rv < 0)
			goto out;
		grpc_frame_prefix(hdr, true, (uint32_t)buf_len(&tmp));
		if (buf_append(&x->out, hdr, 5) < 0 ||
		    buf_append(&x->out, buf_head(&tmp), buf_len(&tmp)) < 0)
			rv = -ENOMEM;
		goto out;
	}
	if (chunk) {
		hl = grpc_chunk_header(hdr + 5, n);
		grpc_frame_prefix(hdr, false, (uint32_t)(hl + n));
	} else {
		grpc_frame_prefix(hdr, false, (uint32_t)n);
	}
	if (buf_append(&x->out, hdr, 5 + hl) < 0 || buf_append(&x->out, p, n) < 0)
		rv = -ENOMEM;
out:
	buf_release(&tmp);
	if (rv < 0 && buf_len(&x->out) > before)
		x->out.tail = x->out.head + before; /* drop a half-written message */
	return rv;
}

static size_t call_write(struct relay_end *e, const uint8_t *p, size_t n)
{
	struct grpc_call *c = (struct grpc_call *)e;
	size_t used = out_len(c), take;

	if (!c->st || c->out_eof || c->aborted)
		return 0;
	if (used >= GRPC_OUT_HIGHWATER) {
		c->blocked = true;
		return 0;
	}
	take = GRPC_OUT_HIGHWATER - used;
	if (take > n)
		take = n;
	if (respond_headers(c) < 0 || frame_message(c, p, take, true) < 0) {
		call_fail(c, ENOMEM);
		return 0;
	}
	h2_stream_resume(c->st);
	return take;
}

static void call_finish_out(struct grpc_call *c, enum grpc_status status, const char *msg,
			    const char *ntun_error)
{
	struct h2_nv nv[3];
	char sbuf[12], mbuf[512];
	size_t n;

	if (!c->st || c->out_eof || c->aborted)
		return;
	c->out_eof = true;
	if (c->server) {
		if (!c->responded && status != GRPC_OK) {
			/* Nothing sent yet: one HEADERS frame says it all (Trailers-Only). */
			n = status_headers(nv, 0, status, msg, ntun_error, sbuf, mbuf,
					   sizeof(mbuf));
			struct h2_nv full[5] = {H2_NV(":status", "200"),
						H2_NV("content-type", "application/grpc")};
			for (size_t i = 0; i < n; i++)
				full[2 + i] = nv[i];
			if (h2_stream_respond(c->st, full, 2 + n, false) == 0)
				c->responded = true;
			if (c->aux)
				buf_release(&c->aux->out);
			return;
		}
		n = status_headers(nv, 0, status, msg, ntun_error, sbuf, mbuf, sizeof(mbuf));
		if (h2_stream_set_trailers(c->st, nv, n) < 0 || respond_headers(c) < 0) {
			h2_stream_reset(c->st, H2_INTERNAL_ERROR);
			c->aborted = true;
			return;
		}
	}
	h2_stream_resume(c->st);
}

static void call_shutdown(struct relay_end *e)
{
	call_finish_out((struct grpc_call *)e, GRPC_OK, NULL, NULL);
}

static void call_abort(struct relay_end *e, int err)
{
	struct grpc_call *c = (struct grpc_call *)e;

	if (!e->rx_err)
		e->rx_err = err;
	if (!c->st || c->aborted)
		return;
	if (c->server && !c->responded && err != ECONNRESET) {
		char msg[96];

		snprintf(msg, sizeof(msg), "tunnel: %s", strerror(err));
		call_finish_out(c, grpc_status_from_errno(err), msg, sock_errname(err));
		return;
	}
	c->aborted = true;
	h2_stream_reset(c->st, H2_CANCEL);
}

static void call_free_end(struct relay_end *e)
{
	grpc_call_free((struct grpc_call *)e);
}

static bool call_pull(struct relay_end *e, struct relay_end *src)
{
	struct grpc_call *c = (struct grpc_call *)e;

	/* Compressed output needs whole messages in hand: that path stays a copy. */
	if (c->mode != GRPC_BYTES || c->gzip_out || out_len(c) || c->out_eof)
		return false;
	c->src = src;
	return true;
}

static void call_push_to(struct relay_end *e, struct relay_end *sink)
{
	struct grpc_call *c = (struct grpc_call *)e;

	if (c->mode == GRPC_BYTES)
		c->sink = sink;
}

static void call_kick(struct relay_end *e)
{
	struct grpc_call *c = (struct grpc_call *)e;
	const uint8_t *p;

	if (!c->st || c->aborted || c->end.rx_err || c->out_eof)
		return;
	if (c->server && !c->responded) {
		/* Response headers wait for the first byte (or EOF), so that a failure before
		 * it can still be a Trailers-Only status. */
		if (!c->src->ops->peek(c->src, &p) && !c->src->rx_eof)
			return;
		if (respond_headers(c) < 0) {
			call_fail(c, ENOMEM);
			return;
		}
	}
	h2_stream_resume(c->st);
}

void grpc_call_free(struct grpc_call *c)
{
	if (!c)
		return;
	c->end.relay = NULL;
	if (c->aux)
		c->aux->wake = NULL;
	c->sink = NULL;
	gather_flush(c); /* without a sink: drops the bytes, gives their window back */
	if (c->src) {
		c->src = NULL;
		if (c->payload_left || c->phdr_off < c->phdr_len)
			c->aborted =
				c->aborted || (c->st && (h2_stream_reset(c->st, H2_CANCEL), true));
	}
	if (!c->st) {
		call_destroy(c);
		return;
	}
	if (c->aborted || !c->out_eof) {
		h2_stream_release(c->st, H2_CANCEL);
		call_destroy(c);
		return;
	}
	/* Finished cleanly but still flushing: live until the stream closes. */
	c->relay_gone = true;
	in_drop(c, bufq_len(&c->in));
	if (c->aux && c->aux->dec_owed) {
		h2_stream_consume(c->st, c->aux->dec_owed);
		c->aux->dec_owed = 0;
	}
}

static const struct relay_end_ops call_end_ops = {
	.peek = call_peek,
	.consume = call_consume,
	.write = call_write,
	.shutdown = call_shutdown,
	.abort = call_abort,
	.free = call_free_end,
	.pull = call_pull,
	.kick = call_kick,
	.push_to = call_push_to,
};

/* ---- message mode ---- */

int grpc_call_recv(struct grpc_call *c, const uint8_t **p, size_t *n)
{
	int rv;

	if (c->aux->msg_drop) {
		dec_release(c);
		c->aux->msg_drop = false;
	}
	if (c->end.rx_err)
		return -c->end.rx_err;
	if (c->df == DF_PREFIX) {
		rv = parse_prefix(c);
		if (rv < 0) {
			call_fail(c, -rv);
			return rv;
		}
	}
	if (c->df == DF_HELD) {
		if (bufq_len(&c->in) < c->msg_left) {
			rv = in_credit_all(c);
			if (rv < 0) {
				call_fail(c, -rv);
				return rv;
			}
		} else {
			rv = take_held(c, p, n);
			if (rv < 0) {
				call_fail(c, -rv);
				return rv;
			}
			c->aux->msg_drop = true;
			return 1;
		}
	}
	if (c->in_end && (c->server || c->peer_status >= 0)) {
		if (c->df != DF_PREFIX || bufq_len(&c->in))
			return -EPROTO;
		return -EPIPE;
	}
	return 0;
}

int grpc_call_send(struct grpc_call *c, const void *p, size_t n)
{
	int rv;

	if (!c->st || c->out_eof || c->aborted)
		return -EPIPE;
	rv = respond_headers(c);
	if (rv == 0)
		rv = frame_message(c, p, n, false);
	if (rv < 0)
		return -ENOMEM;
	h2_stream_resume(c->st);
	return 0;
}

void grpc_call_finish(struct grpc_call *c, enum grpc_status status, const char *msg,
		      const char *ntun_error)
{
	call_finish_out(c, status, msg, ntun_error);
}

/* ---- h2 stream callbacks ---- */

static void apply_status(struct grpc_call *c, const struct h2_nv *nv, size_t n)
{
	const char *s = grpc_md_get(nv, n, "grpc-status");
	const char *m = grpc_md_get(nv, n, "grpc-message");
	const char *ne = grpc_md_get(nv, n, "ntun-error");
	char *end;
	long v;

	if (!s)
		return;
	v = strtol(s, &end, 10);
	if (!*s || *end || v < 0 || v > 16) {
		call_fail(c, EPROTO);
		return;
	}
	c->peer_status = (int)v;
	if (m) {
		if (aux_get(c)) {
			free(c->aux->peer_msg);
			c->aux->peer_msg = decode_message(m);
		}
	}
	if (ne)
		c->peer_errno = sock_errno_from_name(ne);
	if (v != GRPC_OK)
		call_fail(c, c->peer_errno ? c->peer_errno : ECONNRESET);
}

static void cb_headers(void *owner, enum h2_headers_kind kind, const struct h2_nv *nv, size_t n,
		       bool end)
{
	struct grpc_call *c = owner;
	const char *status;

	if (kind == H2_HEADERS_RESPONSE) {
		c->answered = true;
		status = grpc_md_get(nv, n, ":status");
		if (!status || strcmp(status, "200")) {
			call_fail(c, !status || strcmp(status, "503") ? EPROTO : ECONNREFUSED);
			return;
		}
		if (!content_type_ok(grpc_md_get(nv, n, "content-type"))) {
			call_fail(c, EPROTO);
			return;
		}
		switch (encoding_kind(grpc_md_get(nv, n, "grpc-encoding"))) {
		case 1:
			if (!c->gzip_ok) {
				call_fail(c, EPROTO); /* we did not offer it */
				return;
			}
			c->gzip_in = true;
			break;
		case -1:
			call_fail(c, EPROTO);
			return;
		}
	}
	if (!c->server)
		apply_status(c, nv, n);
	if (end) {
		c->in_end = true;
		if (!c->server && c->peer_status < 0)
			call_fail(c, EPROTO); /* ended without a status */
	}
	if (kind == H2_HEADERS_RESPONSE && !c->end.rx_err)
		c->end.up = true; /* the relay's up callback: connect time */
	call_notify(c);
}

static int cb_data(void *owner, const uint8_t *p, size_t n)
{
	struct grpc_call *c = owner;

	if (c->relay_gone || c->end.rx_err) {
		h2_stream_consume(c->st, n);
		return 0;
	}
	if (c->sink && !bufq_len(&c->in) && !dec_len(c)) {
		size_t owed = 0, used = deframe_direct(c, p, n, &owed);

		h2_stream_consume(c->st, used - owed);
		p += used;
		n -= used;
		if (!n && !c->end.rx_err)
			return 0;
	}
	if (c->end.rx_err) {
		h2_stream_consume(c->st, n);
		call_notify(c);
		return 0;
	}
	if (bufq_append(&c->in, p, n) < 0) {
		h2_stream_consume(c->st, n);
		call_fail(c, ENOMEM);
		return -1;
	}
	call_notify(c);
	return 0;
}

static void cb_data_done(void *owner)
{
	gather_flush(owner);
}

static void cb_end(void *owner)
{
	struct grpc_call *c = owner;

	c->in_end = true;
	if (!c->server && c->peer_status < 0)
		call_fail(c, EPROTO); /* a response must end with trailers */
	call_notify(c);
}

#define PULL_MSG_MAX (64 * 1024) /* payload per framed message on the zero-copy path */

/* Zero-copy path: what can be sent now from src (framing included), or EOF. */
static size_t pull_avail(struct grpc_call *c, bool *eof)
{
	struct relay_end *src = c->src;
	const uint8_t *p;
	size_t n, hl;

	*eof = false;
	if (c->payload_left || c->phdr_off < c->phdr_len) {
		n = src->ops->peek(src, &p);
		if (n > c->payload_left)
			n = c->payload_left;
		return (size_t)(c->phdr_len - c->phdr_off) + n;
	}
	if (src->rx_err || c->end.rx_err)
		return 0; /* the relay aborts us */
	n = src->ops->peek(src, &p);
	if (src->rx_err) {
		relay_end_wake(src);
		return 0;
	}
	if (n == 0) {
		if (!src->rx_eof)
			return 0;
		/* Source drained and ended: end the stream (trailers with status 0 as server). */
		if (c->server) {
			struct h2_nv nv[1] = {H2_NV("grpc-status", "0")};

			if (h2_stream_set_trailers(c->st, nv, 1) < 0) {
				call_fail(c, ENOMEM);
				return 0;
			}
		}
		c->out_eof = true;
		c->end.pull_done = true;
		relay_end_wake(&c->end);
		*eof = true;
		return 0;
	}
	if (n > PULL_MSG_MAX)
		n = PULL_MSG_MAX;
	hl = grpc_chunk_header(c->phdr + 5, n);
	grpc_frame_prefix(c->phdr, false, (uint32_t)(hl + n));
	c->phdr_len = (uint8_t)(5 + hl);
	c->phdr_off = 0;
	c->payload_left = (uint32_t)n;
	return c->phdr_len + n;
}

/* The next n bytes of the message being sent: what is left of its prefix, then its payload in
 * place in src. */
static int pull_peek(struct grpc_call *c, struct iovec *iov, size_t n)
{
	const uint8_t *p;
	size_t k = (size_t)(c->phdr_len - c->phdr_off);
	int i = 0;

	if (k > n)
		k = n;
	if (k)
		iov[i++] = (struct iovec){c->phdr + c->phdr_off, k};
	if (n > k) {
		/* n - k <= payload_left <= what src's peek offered when the message was framed */
		c->src->ops->peek(c->src, &p);
		iov[i++] = (struct iovec){(void *)p, n - k};
	}
	return i;
}

static void pull_drop(struct grpc_call *c, size_t n)
{
	size_t k = (size_t)(c->phdr_len - c->phdr_off);

	if (k > n)
		k = n;
	c->phdr_off = (uint8_t)(c->phdr_off + k);
	n -= k;
	if (!n)
		return;
	c->src->ops->consume(c->src, n);
	c->payload_left -= (uint32_t)n;
	relay_end_pulled(&c->end, c->src, n);
}

static size_t cb_out_avail(void *owner, bool *eof)
{
	struct grpc_call *c = owner;

	if (c->src)
		return pull_avail(c, eof);
	*eof = c->out_eof;
	return out_len(c);
}

static int cb_out_peek(void *owner, struct iovec *iov, size_t n)
{
	struct grpc_call *c = owner;

	if (c->src)
		return pull_peek(c, iov, n);
	iov[0] = (struct iovec){buf_head(&c->aux->out), n};
	return 1;
}

static void cb_out_drop(void *owner, size_t n)
{
	struct grpc_call *c = owner;

	if (c->src) {
		pull_drop(c, n);
		return;
	}
	buf_consume(&c->aux->out, n);
	if (c->blocked && buf_len(&c->aux->out) <= GRPC_OUT_HIGHWATER / 2) {
		c->blocked = false;
		relay_end_wake(&c->end);
	}
}

static void cb_close(void *owner, uint32_t code)
{
	struct grpc_call *c = owner;

	c->st = NULL;
	if (c->relay_gone) {
		call_destroy(c);
		return;
	}
	/* A close before both sides finished cleanly is a reset. */
	if (code == H2_REFUSED_STREAM)
		call_fail(c, ECONNREFUSED); /* never processed by the peer (e.g. after GOAWAY) */
	else if (code != H2_NO_ERROR || !c->in_end || !c->out_eof)
		call_fail(c, code == H2_NO_ERROR || code == H2_CANCEL ? ECONNRESET : EPROTO);
	else
		call_notify(c);
}

static const struct h2_stream_cbs call_stream_cbs = {
	.on_headers = cb_headers,
	.on_data = cb_data,
	.on_data_done = cb_data_done,
	.on_end = cb_end,
	.out_avail = cb_out_avail,
	.out_peek = cb_out_peek,
	.out_drop = cb_out_drop,
	.on_close = cb_close,
};
