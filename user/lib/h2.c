// SPDX-License-Identifier: MIT
/* nghttp2 behind ntun's stream-owner callbacks: memory in, memory out, manual window
 * updates, header blocks collected per stream. It never reads or writes a socket and never
 * interprets header values beyond handing them up. */
#include "h2.h"

#include <errno.h>
#include <nghttp2/nghttp2.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>

#include "buf.h"

#define H2_MAX_HEADER_BYTES 16384 /* per header block, names + values */
#define H2_MAX_HEADERS	    64
#define H2_FRAME_MAX	    (64 * 1024) /* SETTINGS_MAX_FRAME_SIZE we advertise */

/* Floods nghttp2 stops itself (the peer gets GOAWAY, h2_session_recv an error): a header block
 * may span a HEADERS and this many CONTINUATION frames (8 x 64 KiB is far above our 16 KiB
 * header cap, and each frame costs HPACK work, CVE-2024-27316 style), a SETTINGS frame this
 * many entries, and answers we owe (SETTINGS and PING ACKs, RST_STREAMs) may queue up to this
 * many while the peer does not read them: beyond that the peer is flooding us. */
#define H2_MAX_CONTINUATIONS 8
#define H2_MAX_SETTINGS	     32
#define H2_MAX_OUTBOUND_ACK  1000
/* SETTINGS frames a peer may send (each may change every stream's window: work per stream),
 * as a token bucket. Peers that tune their windows as they go send a few per second. */
#define H2_SETTINGS_BURST 256
#define H2_SETTINGS_RATE  32
/* PINGs a server session takes closer together than h2_settings.ping_min_ms with no HEADERS or
 * DATA either way in between ("strikes", as grpc-go counts them); one more gets GOAWAY
 * (ENHANCE_YOUR_CALM, "too_many_pings"), which gRPC clients answer by doubling their
 * keepalive time. Without open streams (and !ping_without_calls) the spacing wanted is
 * H2_PING_IDLE_MS, gRPC's two hours. */
#define H2_PING_STRIKES	  2
#define H2_PING_IDLE_MS	  (2ull * 3600 * 1000)
#define H2_TOO_MANY_PINGS "too_many_pings"

/* A token bucket: burst tokens, refilled at rate per second. */
struct h2_bucket {
	uint64_t milli; /* tokens x 1000 */
	uint64_t t_ms;	/* last refill */
	uint32_t burst, rate;
};

struct h2_session {
	nghttp2_session *ng;
	const struct h2_session_cbs *cbs;
	void *arg;
	bool server;
	struct buf *out; /* set during h2_session_send */
	size_t out_limit;
	h2_sink_fn sink; /* where DATA frames go without a copy, if set */
	void *sink_arg;
	size_t nstreams;
	struct h2_stream *streams; /* every h2_stream alive, for h2_session_free */
	struct h2_stream *batch;   /* streams given DATA in this h2_session_recv (on_data_done) */
	struct h2_bucket resets;   /* server: streams the peer reset before we answered them */
	struct h2_bucket settings; /* SETTINGS frames from the peer */
	size_t held, max_held;	   /* bytes owners hold beyond the windows, and the cap */
	uint32_t conn_window, conn_window_floor, conn_window_max; /* see h2_settings */
	bool calm;		 /* we ended the session with ENHANCE_YOUR_CALM */
	bool pinged_out;	 /* we sent GOAWAY too_many_pings */
	uint32_t ping_min_ms;	 /* server: PING spacing we take without strikes, 0 = any */
	bool ping_without_calls; /* server: ping_min_ms also applies without streams */
	bool ping_fresh;	 /* HEADERS or DATA went either way since the last PING */
	uint32_t ping_strikes;
	uint64_t ping_rx_ms; /* when the last PING arrived, 0 = none yet */
};

/* A header block being collected: names and values in hbuf, offsets until it is complete. */
struct h2_hdrs {
	struct h2_nv nv[H2_MAX_HEADERS];
	size_t nnv;
	size_t bytes;
	bool overflow;
	struct buf hbuf;
};

struct h2_stream {
	struct h2_session *s;
	struct h2_stream *next, *prev;		     /* in s->streams */
	struct h2_stream *batch_next, **batch_pprev; /* in s->batch; pprev NULL when not */
	int32_t id;
	const struct h2_stream_cbs *cbs;
	void *owner;
	size_t unconsumed;    /* received DATA bytes not yet given back with consume */
	size_t held;	      /* of the session's held bytes, this stream's owner's */
	bool responded;	      /* server: response headers submitted */
	bool has_body;	      /* a data provider is attached */
	struct h2_hdrs *hdrs; /* the header block being received, only while one is */
	/* trailers to send at eof */
	nghttp2_nv *trailers;
	size_t ntrailers;
};

void h2_settings_default(struct h2_settings *s)
{
	/* One stream crosses three hops and five processes on two CPUs: with 256 KiB the
	 * pipeline ran dry between window updates (0.7-1.1 Gbit/s, 6.9 relay CPU s/GiB), with
	 * 1 MiB the two CPUs still idled 15-33% of the time (vmstat); 2 MiB moved one stream
	 * 12% faster (tools/bench --also, same run: 1.95 -> 2.2 Gbit/s). A stalled stream holds
	 * at most this much in each daemon. */
	s->stream_window = 2048 * 1024;
	/* The connection window was 1 GiB and given back only as streams forwarded: with eight
	 * bulk streams on a client-server connection, 2-7.5 MiB waited in each socket buffer
	 * along the way (ss), and a 1 KiB answer behind them took 80-110 ms (p50; tools/bench
	 * figure 6). Given back on receipt and kept near the path's needs, the queue is a few
	 * hundred KiB per hop. */
	s->conn_window = 512 * 1024;
	s->conn_window_max = 256u * 1024 * 1024;
	s->max_streams = 0;
	s->reset_burst = 0;
	s->reset_rate = 0;
	s->max_held = 0;
	s->ping_min_ms = 0;
	s->ping_without_calls = false;
}

const char *h2_strerror(int code)
{
	if (code == H2_ERR_CALM)
		return "flood of early stream resets or SETTINGS: GOAWAY ENHANCE_YOUR_CALM sent";
	return nghttp2_strerror(code);
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void bucket_init(struct h2_bucket *b, uint32_t burst, uint32_t rate)
{
	b->burst = burst;
	b->rate = rate;
	b->milli = (uint64_t)burst * 1000;
	b->t_ms = now_ms();
}

/* Takes a token; false if none is left. A bucket of burst 0 never runs out. */
static bool bucket_take(struct h2_bucket *b)
{
	uint64_t now = now_ms(), cap = (uint64_t)b->burst * 1000;

	if (!b->burst)
		return true;
	b->milli += (now - b->t_ms) * b->rate;
	if (b->milli > cap)
		b->milli = cap;
	b->t_ms = now;
	if (b->milli < 1000)
		return false;
	b->milli -= 1000;
	return true;
}

/* Ends the session for a flood: GOAWAY(ENHANCE_YOUR_CALM) goes out with the next send, and
 * nghttp2 stops reading the input here (the callback failure). */
static int calm(struct h2_session *s)
{
	s->calm = true;
	nghttp2_session_terminate_session(s->ng, NGHTTP2_ENHANCE_YOUR_CALM);
	return NGHTTP2_ERR_CALLBACK_FAILURE;
}

/* A PING from the peer (server sessions): grpc-go's keepalive enforcement. A PING after
 * HEADERS or DATA went either way is free; otherwise one closer than the allowed spacing to
 * the previous PING is a strike, and a strike beyond H2_PING_STRIKES gets GOAWAY
 * (ENHANCE_YOUR_CALM, "too_many_pings"). Unlike grpc-go we do not cut the connection: its
 * open streams (tunnels) finish while the owner drains it, and the peer reconnects with a
 * doubled keepalive time. nghttp2 still caps the ACKs we owe meanwhile. */
static int ping_check(struct h2_session *s)
{
	uint64_t now = now_ms(), last = s->ping_rx_ms, min = s->ping_min_ms;

	s->ping_rx_ms = now;
	if (!s->server || !s->ping_min_ms || s->pinged_out)
		return 0;
	if (s->ping_fresh) {
		s->ping_fresh = false;
		s->ping_strikes = 0;
		return 0;
	}
	if (!s->nstreams && !s->ping_without_calls)
		min = H2_PING_IDLE_MS;
	if (last && now - last < min)
		s->ping_strikes++;
	if (s->ping_strikes <= H2_PING_STRIKES)
		return 0;
	s->pinged_out = true;
	h2_session_goaway(s, NGHTTP2_ENHANCE_YOUR_CALM, H2_TOO_MANY_PINGS);
	return 0;
}

/* The stream's held bytes leave the session's count. */
static void held_drop(struct h2_stream *st)
{
	st->s->held -= st->held;
	st->held = 0;
}

static void kick(struct h2_session *s)
{
	if (s->cbs->on_kick && !s->out)
		s->cbs->on_kick(s->arg);
}

static void stream_link(struct h2_stream *st)
{
	struct h2_session *s = st->s;

	st->prev = NULL;
	st->next = s->streams;
	if (s->streams)
		s->streams->prev = st;
	s->streams = st;
	s->nstreams++;
}

static void stream_unlink(struct h2_stream *st)
{
	struct h2_session *s = st->s;

	if (st->prev)
		st->prev->next = st->next;
	else
		s->streams = st->next;
	if (st->next)
		st->next->prev = st->prev;
	s->nstreams--;
}

static void headers_reset(struct h2_stream *st)
{
	if (!st->hdrs)
		return;
	buf_release(&st->hdrs->hbuf);
	free(st->hdrs);
	st->hdrs = NULL;
}

static void stream_free(struct h2_stream *st)
{
	headers_reset(st);
	if (st->trailers) {
		for (size_t i = 0; i < st->ntrailers; i++)
			free(st->trailers[i].name); /* name and value share one allocation */
		free(st->trailers);
	}
	free(st);
}

static struct h2_stream *stream_new(struct h2_session *s)
{
	struct h2_stream *st = calloc(1, sizeof(*st));

	if (!st)
		return NULL;
	st->s = s;
	return st;
}

/* ---- outbound ---- */

static ssize_t data_read_cb(nghttp2_session *ng, int32_t id, uint8_t *dst, size_t len,
			    uint32_t *flags, nghttp2_data_source *src, void *user)
{
	struct h2_stream *st = src->ptr;
	bool eof = false;
	size_t avail;

	if (!st->owner)
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* resets the stream */
	avail = st->cbs->out_avail(st->owner, &eof);
	if (avail == 0 && !eof)
		return NGHTTP2_ERR_DEFERRED;
	if (avail > len) {
		avail = len;
		eof = false;
	}
	if (avail)
		*flags |= NGHTTP2_DATA_FLAG_NO_COPY;
	if (eof) {
		*flags |= NGHTTP2_DATA_FLAG_EOF;
		if (st->trailers) {
			*flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
			if (nghttp2_submit_trailer(ng, id, st->trailers, st->ntrailers) != 0)
				return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
		}
	}
	return (ssize_t)avail;
}

static int send_data_cb(nghttp2_session *ng, nghttp2_frame *frame, const uint8_t *framehd,
			size_t length, nghttp2_data_source *src, void *user)
{
	static const uint8_t zeros[256];
	struct h2_session *s = user;
	struct h2_stream *st = src->ptr;
	size_t pad = frame->data.padlen, hlen = 9 + (pad > 0), k, i;
	struct iovec v[2 + H2_OUT_PIECES + 1];
	uint8_t hd[10];
	ssize_t w;
	bool eof;
	uint8_t *p;

	/* A frame that waited (WOULDBLOCK) for a stream its owner released since: the bytes went
	 * with the owner. nghttp2 resets the stream instead of the connection. */
	if (!st->owner)
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	if (buf_len(s->out) >= s->out_limit)
		return NGHTTP2_ERR_WOULDBLOCK;
	/* ...or whose bytes are no longer all there (an owner that pulls them from elsewhere
	 * lost its source meanwhile): reset the stream rather than send what is not there. */
	if (length && st->cbs->out_avail(st->owner, &eof) < length)
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	memcpy(hd, framehd, 9);
	hd[9] = (uint8_t)(pad ? pad - 1 : 0);
	/* The frames queued before this one lead, then its header, its bytes where the owner
	 * keeps them, its padding. */
	k = 0;
	if (s->sink && buf_len(s->out))
		v[k++] = (struct iovec){buf_head(s->out), buf_len(s->out)};
	v[k++] = (struct iovec){hd, hlen};
	if (length)
		k += (size_t)st->cbs->out_peek(st->owner, v + k, length);
	if (pad > 1)
		v[k++] = (struct iovec){(void *)zeros, pad - 1};
	if (s->sink) {
		w = s->sink(s->sink_arg, v, (int)k);
		if (w == -EAGAIN)
			return NGHTTP2_ERR_WOULDBLOCK;
		if (w < 0)
			return NGHTTP2_ERR_CALLBACK_FAILURE;
		if (v[0].iov_base != hd)
			buf_consume(s->out, v[0].iov_len);
	} else {
		p = buf_reserve(s->out, hlen + length + (pad > 1 ? pad - 1 : 0));
		if (!p)
			return NGHTTP2_ERR_CALLBACK_FAILURE;
		for (i = 0; i < k; i++) {
			memcpy(p, v[i].iov_base, v[i].iov_len);
			p += v[i].iov_len;
			buf_commit(s->out, v[i].iov_len);
		}
	}
	if (length)
		st->cbs->out_drop(st->owner, length);
	return 0;
}

static ssize_t send_cb(nghttp2_session *ng, const uint8_t *data, size_t len, int flags, void *user)
{
	struct h2_session *s = user;

	if (buf_len(s->out) >= s->out_limit)
		return NGHTTP2_ERR_WOULDBLOCK;
	if (buf_append(s->out, data, len) < 0)
		return NGHTTP2_ERR_CALLBACK_FAILURE;
	return (ssize_t)len;
}

/* ---- inbound ---- */

static int begin_headers_cb(nghttp2_session *ng, const nghttp2_frame *frame, void *user)
{
	struct h2_session *s = user;
	struct h2_stream *st;

	if (frame->hd.type != NGHTTP2_HEADERS)
		return 0;
	st = nghttp2_session_get_stream_user_data(ng, frame->hd.stream_id);
	if (!st && frame->headers.cat == NGHTTP2_HCAT_REQUEST && s->server) {
		st = stream_new(s);
		if (!st)
			return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
		st->id = frame->hd.stream_id;
		nghttp2_session_set_stream_user_data(ng, st->id, st);
		stream_link(st);
	}
	if (st)
		headers_reset(st);
	return 0;
}

static int header_cb(nghttp2_session *ng, const nghttp2_frame *frame, const uint8_t *name,
		     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
		     void *user)
{
	struct h2_stream *st = nghttp2_session_get_stream_user_data(ng, frame->hd.stream_id);
	struct h2_hdrs *h;
	uint8_t *p;

	if (!st || frame->hd.type != NGHTTP2_HEADERS)
		return 0;
	if (!st->hdrs) {
		st->hdrs = calloc(1, sizeof(*st->hdrs));
		if (!st->hdrs)
			return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	}
	h = st->hdrs;
	h->bytes += namelen + valuelen + 2;
	if (h->nnv >= H2_MAX_HEADERS || h->bytes > H2_MAX_HEADER_BYTES) {
		h->overflow = true;
		return 0;
	}
	/* Offsets now, pointers once the block is complete: hbuf may move while it grows. */
	p = buf_reserve(&h->hbuf, namelen + valuelen + 2);
	if (!p)
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	h->nv[h->nnv].name = (const char *)(uintptr_t)buf_len(&h->hbuf);
	h->nv[h->nnv].namelen = namelen;
	h->nv[h->nnv].value = (const char *)(uintptr_t)(buf_len(&h->hbuf) + namelen + 1);
	h->nv[h->nnv].valuelen = valuelen;
	memcpy(p, name, namelen);
	p[namelen] = 0;
	memcpy(p + namelen + 1, value, valuelen);
	p[namelen + 1 + valuelen] = 0;
	buf_commit(&h->hbuf, namelen + valuelen + 2);
	h->nnv++;
	return 0;
}

static void headers_finish(struct h2_hdrs *h)
{
	const char *base = (const char *)buf_head(&h->hbuf);

	for (size_t i = 0; i < h->nnv; i++) {
		h->nv[i].name = base + (uintptr_t)h->nv[i].name;
		h->nv[i].value = base + (uintptr_t)h->nv[i].value;
	}
}

static int frame_recv_cb(nghttp2_session *ng, const nghttp2_frame *frame, void *user)
{
	struct h2_session *s = user;
	struct h2_stream *st = NULL;
	bool end = frame->hd.flags & NGHTTP2_FLAG_END_STREAM;
	enum h2_headers_kind kind;
	const struct h2_nv *nv;
	size_t nnv;

	if (frame->hd.stream_id)
		st = nghttp2_session_get_stream_user_data(ng, frame->hd.stream_id);

	if (frame->hd.type == NGHTTP2_HEADERS || frame->hd.type == NGHTTP2_DATA)
		s->ping_fresh = true;
	switch (frame->hd.type) {
	case NGHTTP2_HEADERS:
		if (!st)
			return 0;
		if (st->hdrs && st->hdrs->overflow) {
			headers_reset(st);
			nghttp2_submit_rst_stream(ng, NGHTTP2_FLAG_NONE, st->id,
						  NGHTTP2_ENHANCE_YOUR_CALM);
			return 0;
		}
		if (st->hdrs)
			headers_finish(st->hdrs);
		nv = st->hdrs ? st->hdrs->nv : NULL;
		nnv = st->hdrs ? st->hdrs->nnv : 0;
		if (frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
			if (s->cbs->on_request)
				s->cbs->on_request(s->arg, st, nv, nnv, end);
			if (!st->owner && !st->responded)
				nghttp2_submit_rst_stream(ng, NGHTTP2_FLAG_NONE, st->id,
							  NGHTTP2_REFUSED_STREAM);
		} else if (st->owner) {
			kind = frame->headers.cat == NGHTTP2_HCAT_RESPONSE ? H2_HEADERS_RESPONSE
									   : H2_HEADERS_TRAILERS;
			st->cbs->on_headers(st->owner, kind, nv, nnv, end);
		}
		headers_reset(st);
		break;
	case NGHTTP2_DATA:
		if (st && st->owner && end)
			st->cbs->on_end(st->owner);
		break;
	case NGHTTP2_RST_STREAM:
		/* Rapid reset: a stream reset before we answered it cost us (and the hop behind
		 * us) the work of starting it, and the peer nothing. */
		if (s->server && st && !st->responded && !bucket_take(&s->resets))
			return calm(s);
		break;
	case NGHTTP2_SETTINGS:
		if (!(frame->hd.flags & NGHTTP2_FLAG_ACK) && !bucket_take(&s->settings))
			return calm(s);
		break;
	case NGHTTP2_PING:
		if (!(frame->hd.flags & NGHTTP2_FLAG_ACK))
			return ping_check(s);
		if (s->cbs->on_ping_ack)
			s->cbs->on_ping_ack(s->arg);
		break;
	case NGHTTP2_GOAWAY:
		if (s->cbs->on_goaway)
			s->cbs->on_goaway(s->arg, (uint32_t)frame->goaway.last_stream_id,
					  frame->goaway.error_code,
					  frame->goaway.error_code == NGHTTP2_ENHANCE_YOUR_CALM &&
						  frame->goaway.opaque_data_len ==
							  strlen(H2_TOO_MANY_PINGS) &&
						  !memcmp(frame->goaway.opaque_data,
							  H2_TOO_MANY_PINGS,
							  strlen(H2_TOO_MANY_PINGS)));
		break;
	default:
		break;
	}
	return 0;
}

static int data_chunk_cb(nghttp2_session *ng, uint8_t flags, int32_t id, const uint8_t *data,
			 size_t len, void *user)
{
	struct h2_stream *st = nghttp2_session_get_stream_user_data(ng, id);

	if (!st || !st->owner) {
		/* Nobody will forward these: give the window back now. */
		nghttp2_session_consume(ng, id, len);
		return 0;
	}
	/* The connection's window comes back as soon as nghttp2 has the bytes: it bounds what
	 * waits in the sockets between us, where every stream queues behind every other. Each
	 * stream's own window comes back as its owner forwards (h2_stream_consume), so a stalled
	 * stream holds its window, not the connection's. */
	nghttp2_session_consume_connection(ng, len);
	st->unconsumed += len;
	if (st->cbs->on_data_done && !st->batch_pprev) {
		st->batch_next = st->s->batch;
		if (st->batch_next)
			st->batch_next->batch_pprev = &st->batch_next;
		st->batch_pprev = &st->s->batch;
		st->s->batch = st;
	}
	if (st->cbs->on_data(st->owner, data, len) < 0)
		nghttp2_submit_rst_stream(ng, NGHTTP2_FLAG_NONE, id, NGHTTP2_PROTOCOL_ERROR);
	return 0;
}

/* Takes st off the batch list and tells its owner that the lent input goes away. */
static void batch_done(struct h2_stream *st)
{
	*st->batch_pprev = st->batch_next;
	if (st->batch_next)
		st->batch_next->batch_pprev = st->batch_pprev;
	st->batch_pprev = NULL;
	if (st->owner && st->cbs->on_data_done)
		st->cbs->on_data_done(st->owner);
}

static int stream_close_cb(nghttp2_session *ng, int32_t id, uint32_t code, void *user)
{
	struct h2_stream *st = nghttp2_session_get_stream_user_data(ng, id);

	if (!st)
		return 0;
	nghttp2_session_set_stream_user_data(ng, id, NULL);
	if (st->batch_pprev)
		batch_done(st);
	stream_unlink(st);
	held_drop(st);
	if (st->owner)
		st->cbs->on_close(st->owner, code);
	stream_free(st);
	return 0;
}

static int frame_send_cb(nghttp2_session *ng, const nghttp2_frame *frame, void *user)
{
	struct h2_session *s = user;

	if (frame->hd.type == NGHTTP2_HEADERS || frame->hd.type == NGHTTP2_DATA)
		s->ping_fresh = true;
	if (frame->hd.type == NGHTTP2_GOAWAY && s->cbs->on_goaway_sent)
		s->cbs->on_goaway_sent(s->arg, frame->goaway.error_code);
	return 0;
}

/* DATA frames as large as the peer allows (we advertise H2_FRAME_MAX ourselves): nghttp2
 * otherwise cuts every frame at 16 KiB whatever the peer accepts. */
static ssize_t read_length_cb(nghttp2_session *ng, uint8_t frame_type, int32_t stream_id,
			      int32_t session_window, int32_t stream_window,
			      uint32_t remote_max_frame, void *user)
{
	int32_t n = session_window < stream_window ? session_window : stream_window;

	if ((uint32_t)n > remote_max_frame)
		n = (int32_t)remote_max_frame;
	return n > 0 ? n : 1;
}

/* ---- session ---- */

struct h2_session *h2_session_new(bool server, const struct h2_settings *set,
				  const struct h2_session_cbs *cbs, void *arg)
{
	nghttp2_session_callbacks *cb = NULL;
	nghttp2_option *opt = NULL;
	nghttp2_settings_entry iv[5];
	size_t niv = 0;
	struct h2_session *s;
	int rv;

	s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->cbs = cbs;
	s->arg = arg;
	s->server = server;
	s->max_held = set->max_held;
	bucket_init(&s->resets, set->reset_burst, set->reset_rate);
	bucket_init(&s->settings, H2_SETTINGS_BURST, H2_SETTINGS_RATE);
	s->ping_min_ms = set->ping_min_ms;
	s->ping_without_calls = set->ping_without_calls;
	if (nghttp2_session_callbacks_new(&cb) || nghttp2_option_new(&opt))
		goto err;
	nghttp2_session_callbacks_set_send_callback(cb, send_cb);
	nghttp2_session_callbacks_set_send_data_callback(cb, send_data_cb);
	nghttp2_session_callbacks_set_data_source_read_length_callback(cb, read_length_cb);
	nghttp2_session_callbacks_set_on_begin_headers_callback(cb, begin_headers_cb);
	nghttp2_session_callbacks_set_on_header_callback(cb, header_cb);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cb, frame_recv_cb);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, data_chunk_cb);
	nghttp2_session_callbacks_set_on_stream_close_callback(cb, stream_close_cb);
	nghttp2_session_callbacks_set_on_frame_send_callback(cb, frame_send_cb);
	nghttp2_option_set_no_auto_window_update(opt, 1);
	/* Closed streams are kept only for priority bookkeeping we do not use: with one stream
	 * per tunneled connection they would be memory per recently closed connection. */
	nghttp2_option_set_no_closed_streams(opt, 1);
	nghttp2_option_set_peer_max_concurrent_streams(opt, 1u << 20);
	nghttp2_option_set_max_continuations(opt, H2_MAX_CONTINUATIONS);
	nghttp2_option_set_max_settings(opt, H2_MAX_SETTINGS);
	nghttp2_option_set_max_outbound_ack(opt, H2_MAX_OUTBOUND_ACK);
	/* nghttp2's own rapid-reset limit counts every RST_STREAM (33 a second after 1000): a
	 * relay whose apps reset their connections sends that many honestly, and the server's
	 * Dials carry all its clients' resets. Ours (reset_burst) counts only streams reset
	 * before they were answered, per client; this one is set out of reach. */
	nghttp2_option_set_stream_reset_rate_limit(opt, UINT64_C(1) << 40, UINT64_C(1) << 24);
	rv = server ? nghttp2_session_server_new2(&s->ng, cb, s, opt)
		    : nghttp2_session_client_new2(&s->ng, cb, s, opt);
	if (rv)
		goto err;
	iv[niv++] =
		(nghttp2_settings_entry){NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, set->stream_window};
	iv[niv++] = (nghttp2_settings_entry){NGHTTP2_SETTINGS_ENABLE_PUSH, 0};
	iv[niv++] = (nghttp2_settings_entry){NGHTTP2_SETTINGS_MAX_FRAME_SIZE, H2_FRAME_MAX};
	iv[niv++] = (nghttp2_settings_entry){NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE,
					     H2_MAX_HEADER_BYTES};
	if (server && set->max_streams)
		iv[niv++] = (nghttp2_settings_entry){NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS,
						     set->max_streams};
	if (nghttp2_submit_settings(s->ng, NGHTTP2_FLAG_NONE, iv, niv) ||
	    nghttp2_session_set_local_window_size(s->ng, NGHTTP2_FLAG_NONE, 0,
						  (int32_t)set->conn_window))
		goto err;
	s->conn_window = s->conn_window_floor = set->conn_window;
	s->conn_window_max =
		set->conn_window_max > set->conn_window ? set->conn_window_max : set->conn_window;
	nghttp2_session_callbacks_del(cb);
	nghttp2_option_del(opt);
	return s;
err:
	nghttp2_session_callbacks_del(cb);
	nghttp2_option_del(opt);
	if (s->ng)
		nghttp2_session_del(s->ng);
	free(s);
	errno = ENOMEM;
	return NULL;
}

void h2_session_free(struct h2_session *s)
{
	struct h2_stream *st;

	if (!s)
		return;
	/* nghttp2_session_del frees its streams without running on_stream_close, so close ours
	 * here: owners hear on_close(CANCEL) while the session is still valid. */
	s->out = NULL;
	while ((st = s->streams)) {
		stream_unlink(st);
		if (st->owner)
			st->cbs->on_close(st->owner, H2_CANCEL);
		stream_free(st);
	}
	nghttp2_session_del(s->ng);
	free(s);
}

int h2_session_recv(struct h2_session *s, const uint8_t *p, size_t n)
{
	ssize_t rv = nghttp2_session_mem_recv(s->ng, p, n);

	while (s->batch)
		batch_done(s->batch);
	if (s->calm)
		return H2_ERR_CALM;
	return rv < 0 ? (int)rv : 0;
}

void h2_session_set_sink(struct h2_session *s, h2_sink_fn fn, void *arg)
{
	s->sink = fn;
	s->sink_arg = arg;
}

int h2_session_send(struct h2_session *s, struct buf *out, size_t limit)
{
	int rv;

	s->out = out;
	s->out_limit = limit;
	rv = nghttp2_session_send(s->ng);
	s->out = NULL;
	return rv;
}

bool h2_session_want_read(const struct h2_session *s)
{
	return nghttp2_session_want_read(s->ng);
}

bool h2_session_want_write(const struct h2_session *s)
{
	return nghttp2_session_want_write(s->ng);
}

int h2_session_ping(struct h2_session *s)
{
	kick(s);
	return nghttp2_submit_ping(s->ng, NGHTTP2_FLAG_NONE, NULL);
}

int h2_session_goaway(struct h2_session *s, uint32_t code, const char *debug)
{
	int32_t last = nghttp2_session_get_last_proc_stream_id(s->ng);

	kick(s);
	return nghttp2_submit_goaway(s->ng, NGHTTP2_FLAG_NONE, last, code, (const uint8_t *)debug,
				     debug ? strlen(debug) : 0);
}

size_t h2_session_streams(const struct h2_session *s)
{
	return s->nstreams;
}

size_t h2_session_held(const struct h2_session *s)
{
	return s->held;
}

static void to_ng(const struct h2_nv *nv, size_t n, nghttp2_nv *out)
{
	for (size_t i = 0; i < n; i++) {
		out[i].name = (uint8_t *)(uintptr_t)nv[i].name;
		out[i].value = (uint8_t *)(uintptr_t)nv[i].value;
		out[i].namelen = nv[i].namelen;
		out[i].valuelen = nv[i].valuelen;
		out[i].flags = NGHTTP2_NV_FLAG_NONE;
	}
}

struct h2_stream *h2_stream_request(struct h2_session *s, const struct h2_nv *nv, size_t n,
				    const struct h2_stream_cbs *cbs, void *owner)
{
	nghttp2_nv ngv[H2_MAX_HEADERS];
	nghttp2_data_provider prd;
	struct h2_stream *st;
	int32_t id;

	if (n > H2_MAX_HEADERS) {
		errno = EINVAL;
		return NULL;
	}
	st = stream_new(s);
	if (!st)
		return NULL;
	st->cbs = cbs;
	st->owner = owner;
	st->has_body = true;
	to_ng(nv, n, ngv);
	prd.source.ptr = st;
	prd.read_callback = data_read_cb;
	id = nghttp2_submit_request(s->ng, NULL, ngv, n, &prd, st);
	if (id < 0) {
		stream_free(st);
		errno = id == NGHTTP2_ERR_NOMEM ? ENOMEM : EAGAIN;
		return NULL;
	}
	st->id = id;
	stream_link(st);
	kick(s);
	return st;
}

void h2_stream_attach(struct h2_stream *st, const struct h2_stream_cbs *cbs, void *owner)
{
	st->cbs = cbs;
	st->owner = owner;
}

int h2_stream_respond(struct h2_stream *st, const struct h2_nv *nv, size_t n, bool with_body)
{
	nghttp2_nv ngv[H2_MAX_HEADERS];
	nghttp2_data_provider prd;
	int rv;

	if (n > H2_MAX_HEADERS || st->responded)
		return NGHTTP2_ERR_INVALID_ARGUMENT;
	to_ng(nv, n, ngv);
	prd.source.ptr = st;
	prd.read_callback = data_read_cb;
	rv = nghttp2_submit_response(st->s->ng, st->id, ngv, n, with_body ? &prd : NULL);
	if (rv == 0) {
		st->responded = true;
		st->has_body = with_body;
	}
	kick(st->s);
	return rv;
}

int h2_stream_set_trailers(struct h2_stream *st, const struct h2_nv *nv, size_t n)
{
	nghttp2_nv *t = calloc(n ? n : 1, sizeof(*t));

	if (!t)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		char *p = malloc(nv[i].namelen + nv[i].valuelen + 2);

		if (!p) {
			for (size_t j = 0; j < i; j++)
				free(t[j].name);
			free(t);
			return -ENOMEM;
		}
		memcpy(p, nv[i].name, nv[i].namelen);
		p[nv[i].namelen] = 0;
		memcpy(p + nv[i].namelen + 1, nv[i].value, nv[i].valuelen);
		p[nv[i].namelen + 1 + nv[i].valuelen] = 0;
		t[i].name = (uint8_t *)p;
		t[i].namelen = nv[i].namelen;
		t[i].value = (uint8_t *)p + nv[i].namelen + 1;
		t[i].valuelen = nv[i].valuelen;
		t[i].flags = NGHTTP2_NV_FLAG_NONE;
	}
	if (st->trailers) {
		for (size_t i = 0; i < st->ntrailers; i++)
			free(st->trailers[i].name);
		free(st->trailers);
	}
	st->trailers = t;
	st->ntrailers = n;
	return 0;
}

uint32_t h2_window_for(uint64_t rate, uint32_t min_rtt_us, uint32_t floor, uint32_t max)
{
	uint64_t w = rate * min_rtt_us / 1000000 * H2_WINDOW_BDP_GAIN;

	if (max > INT32_MAX)
		max = INT32_MAX; /* HTTP/2's largest window */
	return w < floor ? floor : w > max ? max : (uint32_t)w;
}

uint32_t h2_session_tune_window(struct h2_session *s, uint64_t rate, uint32_t min_rtt_us)
{
	uint32_t w = h2_window_for(rate, min_rtt_us, s->conn_window_floor, s->conn_window_max);

	/* Steps of less than a quarter are not worth a WINDOW_UPDATE (or a log line). */
	if (w > s->conn_window + s->conn_window / 4 &&
	    !nghttp2_session_set_local_window_size(s->ng, NGHTTP2_FLAG_NONE, 0, (int32_t)w)) {
		s->conn_window = w;
		kick(s); /* the WINDOW_UPDATE goes out with the next send */
	}
	return s->conn_window;
}

void h2_stream_resume(struct h2_stream *st)
{
	if (st->has_body)
		nghttp2_session_resume_data(st->s->ng, st->id);
	kick(st->s);
}

void h2_stream_consume(struct h2_stream *st, size_t n)
{
	if (n > st->unconsumed)
		n = st->unconsumed;
	if (!n)
		return;
	st->unconsumed -= n;
	nghttp2_session_consume_stream(st->s->ng, st->id, n);
	kick(st->s);
}

int h2_stream_hold(struct h2_stream *st, size_t n)
{
	struct h2_session *s = st->s;

	if (n > st->held && s->max_held && s->held - st->held + n > s->max_held)
		return -ENOBUFS;
	s->held = s->held - st->held + n;
	st->held = n;
	return 0;
}

void h2_stream_reset(struct h2_stream *st, uint32_t code)
{
	nghttp2_submit_rst_stream(st->s->ng, NGHTTP2_FLAG_NONE, st->id, code);
	kick(st->s);
}

void h2_stream_release(struct h2_stream *st, uint32_t code)
{
	st->owner = NULL;
	held_drop(st);
	/* A stream in the session's table is still open in at least one direction. */
	if (nghttp2_session_find_stream(st->s->ng, st->id))
		nghttp2_submit_rst_stream(st->s->ng, NGHTTP2_FLAG_NONE, st->id, code);
	if (st->unconsumed) {
		nghttp2_session_consume_stream(st->s->ng, st->id, st->unconsumed);
		st->unconsumed = 0;
	}
	kick(st->s);
}

uint32_t h2_stream_id(const struct h2_stream *st)
{
	return (uint32_t)st->id;
}

struct h2_session *h2_stream_session(const struct h2_stream *st)
{
	return st->s;
}
