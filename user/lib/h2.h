/* SPDX-License-Identifier: MIT */
/* HTTP/2 sessions over memory: bytes in through h2_session_recv, bytes out into a caller's
 * buffer through h2_session_send. The only module that includes nghttp2; it does no I/O and
 * knows nothing of gRPC beyond carrying headers, DATA and trailers for the layer above.
 *
 * Flow control is manual: the owner of a stream calls h2_stream_consume() for bytes as it
 * passes them on, so a stream's window closes while its bytes sit unforwarded. The connection
 * window is set far above any stream window, so one stalled stream never starves the others.
 *
 * Stream life:   open --(owner attached)--> flowing --(both sides ended / RST)--> closed
 * The owner hears on_close exactly once (unless it released the stream first); the h2_stream
 * is freed right after on_close returns. */
#ifndef NTUN_H2_H
#define NTUN_H2_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct buf;
struct h2_session;
struct h2_stream;

struct h2_nv {
	const char *name;
	const char *value;
	size_t namelen, valuelen;
};

/* A header name/value pair from NUL-terminated strings. */
#define H2_NV(n, v)                                \
	{                                          \
		(n), (v), sizeof(n) - 1, strlen(v) \
	}

enum h2_headers_kind {
	H2_HEADERS_REQUEST,  /* server side: the request headers */
	H2_HEADERS_RESPONSE, /* client side: response headers (maybe with END_STREAM) */
	H2_HEADERS_TRAILERS, /* trailers, either side */
};

/* HTTP/2 error codes used by callers. */
#define H2_NO_ERROR	  0x0u
#define H2_PROTOCOL_ERROR 0x1u
#define H2_INTERNAL_ERROR 0x2u
#define H2_REFUSED_STREAM 0x7u
#define H2_CANCEL	  0x8u
#define H2_ENHANCE_CALM	  0xbu

#define H2_OUT_PIECES 2

struct iovec;

/* Callbacks to the owner of one stream. All run inside h2_session_recv or h2_session_send;
 * they may call h2_stream_* on this or other streams but must not free the session. */
struct h2_stream_cbs {
	/* A complete header block; nv borrowed for the call. end = the block ended the stream. */
	void (*on_headers)(void *owner, enum h2_headers_kind kind, const struct h2_nv *nv, size_t n,
			   bool end);
	/* DATA payload (borrowed). Return 0, or -1 to reset the stream with PROTOCOL_ERROR. */
	int (*on_data)(void *owner, const uint8_t *p, size_t n);
	/* Optional. The bytes on_data lent stay valid until this call: once at the end of the
	 * h2_session_recv that delivered them (or just before on_close, if the stream closes
	 * inside it). An owner may keep the pointers until then, e.g. to write a whole input
	 * batch to a socket with one system call. */
	void (*on_data_done)(void *owner);
	/* END_STREAM on a DATA frame (ends carried on HEADERS come with on_headers' end). */
	void (*on_end)(void *owner);
	/* Outbound: how many bytes are ready now, and whether nothing follows them (*eof). 0 and
	 * !*eof defers the stream until h2_stream_resume(). */
	size_t (*out_avail)(void *owner, bool *eof);
	/* Outbound: the first n ready bytes (n <= what out_avail reported) as at most
	 * H2_OUT_PIECES pieces in iov, where the owner keeps them; returns how many pieces. The
	 * bytes stay the owner's until out_drop. */
	int (*out_peek)(void *owner, struct iovec *iov, size_t n);
	/* Outbound: the first n ready bytes went out (into a frame): drop them. */
	void (*out_drop)(void *owner, size_t n);
	/* The stream closed; error_code is H2_NO_ERROR for a clean close. */
	void (*on_close)(void *owner, uint32_t error_code);
};

/* Callbacks to the owner of the session. */
struct h2_session_cbs {
	/* Server side: a new request's headers are complete. The callee attaches an owner with
	 * h2_stream_attach() or refuses with h2_stream_reset()/h2_stream_respond(). */
	void (*on_request)(void *arg, struct h2_stream *st, const struct h2_nv *nv, size_t n,
			   bool end);
	/* PING ACK received. */
	void (*on_ping_ack)(void *arg);
	/* GOAWAY received: no stream above last_stream_id will be processed. too_many_pings: it
	 * is gRPC's ENHANCE_YOUR_CALM "too_many_pings" (we PINGed more often than the peer
	 * allows; gRPC clients double their keepalive time). */
	void (*on_goaway)(void *arg, uint32_t last_stream_id, uint32_t error_code,
			  bool too_many_pings);
	/* Something was queued (frames, data, window updates) outside h2_session_send: the
	 * session's owner should arrange a send soon. Called often; must be cheap. */
	void (*on_kick)(void *arg);
	/* Optional. We sent GOAWAY (our owner's, or the session's own on a protocol error or
	 * flood): the connection takes no new streams and should be replaced. */
	void (*on_goaway_sent)(void *arg, uint32_t error_code);
};

struct h2_settings {
	uint32_t stream_window; /* initial per-stream receive window, bytes */
	/* The connection's receive window: what may be in flight to us, on the wire and in the
	 * socket buffers, ahead of any frame the peer sends next. It is given back as DATA
	 * arrives (each stream's own window as its owner forwards), so it bounds the bytes that
	 * every stream queues behind, not what a stalled stream holds. It starts at conn_window
	 * and grows with h2_session_tune_window up to conn_window_max when the path's
	 * bandwidth-delay product needs more. */
	uint32_t conn_window;
	uint32_t conn_window_max;
	/* Server sessions only: SETTINGS_MAX_CONCURRENT_STREAMS we advertise and enforce (a
	 * stream above it is refused), 0 = unlimited. */
	uint32_t max_streams;
	/* Server sessions only (CVE-2023-44487, rapid reset): streams the peer may reset before
	 * we answered them, as a token bucket of reset_burst tokens refilled at reset_rate per
	 * second. The one that finds it empty ends the session with GOAWAY(ENHANCE_YOUR_CALM) and
	 * h2_session_recv returns H2_ERR_CALM. reset_burst 0 = no limit. */
	uint32_t reset_burst;
	uint32_t reset_rate;
	/* Bytes the owners of all streams may hold beyond the windows (h2_stream_hold), 0 = no
	 * limit. */
	size_t max_held;
	/* Server sessions only, PINGs received (gRPC keepalive enforcement, as grpc-go does it):
	 * a PING with no HEADERS or DATA either way since the previous one must come at least
	 * ping_min_ms after it (two hours while no stream is open, unless ping_without_calls),
	 * else it is a strike; the third strike in a row gets GOAWAY(ENHANCE_YOUR_CALM,
	 * "too_many_pings") once: no new streams, the open ones may finish (on_goaway_sent tells
	 * the owner to drain). ping_min_ms 0 = no limit. */
	uint32_t ping_min_ms;
	bool ping_without_calls;
};

/* h2_session_recv's answer to a peer that ended up with GOAWAY(ENHANCE_YOUR_CALM) for rapid
 * resets or a SETTINGS flood (our limits; nghttp2's own floods come as its codes). */
#define H2_ERR_CALM (-1000)

/* Defaults: 2 MiB stream window, connection window 512 KiB growing up to 256 MiB, the rest 0
 * (no limit). */
void h2_settings_default(struct h2_settings *s);

/* The connection window a path needs: H2_WINDOW_BDP_GAIN times the bandwidth-delay product of
 * rate (bytes/s arriving lately) and min_rtt_us (the path's smallest round trip, not its
 * current one, which grows with whatever queues), never below floor nor above max. While the
 * window is what limits the rate, rate x min_rtt is about the window itself, so the gain makes
 * it grow each round until the path or the sender is the limit. */
#define H2_WINDOW_BDP_GAIN 4
uint32_t h2_window_for(uint64_t rate, uint32_t min_rtt_us, uint32_t floor, uint32_t max);

/* Raises the connection's receive window to h2_window_for(rate, min_rtt_us) if that is a
 * quarter more than it has or better (it never shrinks: credit given stays given). Returns the
 * window now. */
uint32_t h2_session_tune_window(struct h2_session *s, uint64_t rate, uint32_t min_rtt_us);

/* Creates a session. server = we accept streams (HTTP/2 server role). Queues our SETTINGS
 * (and, as client, the connection preface) for the first h2_session_send. NULL + errno. */
struct h2_session *h2_session_new(bool server, const struct h2_settings *set,
				  const struct h2_session_cbs *cbs, void *arg);

/* Frees the session. Every stream still open is closed: owners hear on_close(CANCEL).
 * NULL is a no-op. */
void h2_session_free(struct h2_session *s);

/* Feeds received bytes. Returns 0, or a negative value on a connection error (the caller
 * sends what h2_session_send still produces, e.g. GOAWAY, then closes); h2_strerror names it. */
int h2_session_recv(struct h2_session *s, const uint8_t *p, size_t n);

/* Where DATA frames go without a copy. During h2_session_send, sink gets each DATA frame as
 * pieces (what out holds of frames queued before it, the frame's header, the owner's bytes
 * where the owner keeps them) and takes all of them, returning their length, or none:
 * -EAGAIN (the frame waits; h2_session_send returns) or another negative value (the session
 * fails: h2_session_send returns NGHTTP2_ERR_CALLBACK_FAILURE). Without a sink, DATA is copied
 * into out like every other frame. */
typedef ssize_t (*h2_sink_fn)(void *arg, const struct iovec *iov, int n);
void h2_session_set_sink(struct h2_session *s, h2_sink_fn fn, void *arg);

/* Serialises pending frames into out until out holds at least limit bytes or nothing is
 * pending. Returns 0 or a negative error (see h2_strerror). */
int h2_session_send(struct h2_session *s, struct buf *out, size_t limit);

/* Whether the session still wants to read / has something to write. Both false: finished. */
bool h2_session_want_read(const struct h2_session *s);
bool h2_session_want_write(const struct h2_session *s);

/* Queues a PING. 0 or negative error. */
int h2_session_ping(struct h2_session *s);

/* Queues GOAWAY with code (last stream = the last one we processed). Streams already open
 * continue; new ones are refused. 0 or negative error. */
int h2_session_goaway(struct h2_session *s, uint32_t code, const char *debug);

/* Number of open streams. */
size_t h2_session_streams(const struct h2_session *s);

/* Bytes held beyond the windows by all streams' owners (see h2_stream_hold). */
size_t h2_session_held(const struct h2_session *s);

/* Text for a negative code from this module. */
const char *h2_strerror(int code);

/* Client side: opens a stream with request headers nv. The request body is pulled from the
 * owner's out_avail/out_peek/out_drop. Returns the stream or NULL (errno EAGAIN: no stream ids
 * left or GOAWAY received, ENOMEM). */
struct h2_stream *h2_stream_request(struct h2_session *s, const struct h2_nv *nv, size_t n,
				    const struct h2_stream_cbs *cbs, void *owner);

/* Server side: adopt a stream offered by on_request. */
void h2_stream_attach(struct h2_stream *st, const struct h2_stream_cbs *cbs, void *owner);

/* Server side: submits response headers. with_body: a body follows, pulled from the owner
 * (and ended by trailers if h2_stream_set_trailers was called); !with_body: the headers end
 * the stream (Trailers-Only). 0 or negative error. */
int h2_stream_respond(struct h2_stream *st, const struct h2_nv *nv, size_t n, bool with_body);

/* Sets the trailers that end the body once out_avail reports eof (copied). 0 or -ENOMEM. */
int h2_stream_set_trailers(struct h2_stream *st, const struct h2_nv *nv, size_t n);

/* The owner has new outbound bytes or reached eof after a deferral. */
void h2_stream_resume(struct h2_stream *st);

/* Gives n received bytes of window back to the peer (the owner forwarded or dropped them). */
void h2_stream_consume(struct h2_stream *st, size_t n);

/* The owner now holds n received bytes whose window it gave back (a message that must arrive
 * whole before it can be used, its decoded form). Counted per session against max_held: a
 * growth beyond it is refused with -ENOBUFS (the count stays as it was), a shrink always
 * succeeds. The count goes with the stream when it closes or is released. 0 or -ENOBUFS. */
int h2_stream_hold(struct h2_stream *st, size_t n);

/* Sends RST_STREAM(code). The owner still hears on_close. */
void h2_stream_reset(struct h2_stream *st, uint32_t code);

/* The owner lets go: no more callbacks. An open stream is reset with code first. */
void h2_stream_release(struct h2_stream *st, uint32_t code);

uint32_t h2_stream_id(const struct h2_stream *st);
struct h2_session *h2_stream_session(const struct h2_stream *st);

#endif
