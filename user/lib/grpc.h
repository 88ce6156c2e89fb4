/* SPDX-License-Identifier: MIT */
/* gRPC calls over h2 streams: request validation, metadata, the 5-byte message framing, the
 * Chunk message of the tunnel, optional gzip, status trailers. A call is also a relay end
 * (bytes mode: Chunk payloads streamed as they arrive) or a message queue (control calls).
 * protobuf-c is used here only; no I/O happens here.
 *
 * Status mapping: a call that ends with grpc-status 0 is EOF; any other status, RST_STREAM or a
 * malformed message is a failure. ntun-error carries an errno name (ECONNREFUSED, ...) so that
 * a refused dial at the proxy becomes a refused connection, not a generic error. */
#ifndef NTUN_GRPC_H
#define NTUN_GRPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "h2.h"

struct grpc_call;
struct relay_end;

/* gRPC status codes used here. */
enum grpc_status {
	GRPC_OK = 0,
	GRPC_CANCELLED = 1,
	GRPC_UNKNOWN = 2,
	GRPC_INVALID_ARGUMENT = 3,
	GRPC_DEADLINE_EXCEEDED = 4,
	GRPC_NOT_FOUND = 5,
	GRPC_PERMISSION_DENIED = 7,
	GRPC_RESOURCE_EXHAUSTED = 8,
	GRPC_FAILED_PRECONDITION = 9,
	GRPC_ABORTED = 10,
	GRPC_UNIMPLEMENTED = 12,
	GRPC_INTERNAL = 13,
	GRPC_UNAVAILABLE = 14,
	GRPC_UNAUTHENTICATED = 16,
};

#define GRPC_MAX_MESSAGE   (16u << 20) /* uncompressed messages are streamed, not held */
#define GRPC_MAX_HELD	   (4u << 20)  /* compressed or control messages are held whole */
#define GRPC_OUT_HIGHWATER (256u * 1024)

/* Finds header name (lowercase) in nv; returns its value (borrowed) or NULL. */
const char *grpc_md_get(const struct h2_nv *nv, size_t n, const char *name);

/* Checks a request header block: POST, content-type application/grpc[+proto], a :path, and
 * a grpc-encoding we take (identity; gzip only if gzip_ok, else UNIMPLEMENTED as the gRPC
 * spec asks). Returns GRPC_OK and *path (borrowed), or a status to answer with (msg says
 * why). */
enum grpc_status grpc_request_check(const struct h2_nv *nv, size_t n, bool gzip_ok,
				    const char **path, const char **msg);

/* Answers a request stream with a Trailers-Only response (status, message, optional
 * ntun-error errno name) and resets nothing: the stream ends cleanly. 0 or negative. */
int grpc_reject(struct h2_stream *st, enum grpc_status status, const char *msg,
		const char *ntun_error);

enum grpc_mode {
	GRPC_BYTES,    /* Chunk messages, payload streamed through the relay end */
	GRPC_MESSAGES, /* whole messages through grpc_call_recv/grpc_call_send */
};

/* Client side: opens a call on s to path with extra metadata (lowercase names). gzip: send
 * compressed messages and accept compressed answers (without it we offer identity only and a
 * compressed answer fails the call). Returns the call or NULL + errno (EAGAIN: the session takes no new
 * streams). The call belongs to the caller until it becomes a relay end or is freed. */
struct grpc_call *grpc_call_open(struct h2_session *s, const char *path, const struct h2_nv *md,
				 size_t nmd, enum grpc_mode mode, bool gzip);

/* Server side: adopts a checked request stream (from h2 on_request). end: the request
 * headers ended the stream. gzip: compressed messages are accepted, and sent if the peer
 * accepts them (check the request with the same gzip_ok). Messages that must be held whole
 * count against the session's max_held; beyond it the call fails with RESOURCE_EXHAUSTED.
 * The request headers are no longer available afterwards. */
struct grpc_call *grpc_call_accept(struct h2_stream *st, const struct h2_nv *nv, size_t n, bool end,
				   enum grpc_mode mode, bool gzip);

/* The call as a relay end (bytes mode). The relay owns it from relay_new on. */
struct relay_end *grpc_call_end(struct grpc_call *c);

/* Message mode, or a bytes-mode call not (yet) in a relay: wake(arg) runs (from inside h2
 * callbacks) when a message, bytes, the answer, the end or a failure arrives; defer real
 * work to the loop. In a relay, the relay is woken instead. wake NULL stops the calls; a
 * bytes-mode call then gives back the part it kept the wake in when that held nothing else. */
void grpc_call_set_wake(struct grpc_call *c, void (*wake)(void *arg), void *arg);

/* Message mode: takes the next whole message. Returns 1 and sets *p and *n (valid until the next
 * call), 0 if none is complete yet, or -errno when the call failed or ended (-EPIPE: clean
 * end with status OK). */
int grpc_call_recv(struct grpc_call *c, const uint8_t **p, size_t *n);

/* Message mode: queues one message. 0 or -errno. */
int grpc_call_send(struct grpc_call *c, const void *p, size_t n);

/* Ends our side: client = END_STREAM; server = trailers with status (and ntun-error if
 * non-NULL) after the queued data. */
void grpc_call_finish(struct grpc_call *c, enum grpc_status status, const char *msg,
		      const char *ntun_error);

/* Frees a call the caller still owns (not handed to a relay). An open stream is reset with
 * CANCEL unless it was finished cleanly and is only flushing, in which case it lives on until
 * the stream closes. NULL is a no-op. */
void grpc_call_free(struct grpc_call *c);

/* Client side: the peer answered the call (response headers or a status arrived). */
bool grpc_call_answered(const struct grpc_call *c);

/* Status the peer sent (client side) once known, else -1; and its grpc-message. */
int grpc_call_peer_status(const struct grpc_call *c);
const char *grpc_call_peer_message(const struct grpc_call *c);

/* The stream id, for logs (0 once closed). */
uint32_t grpc_call_stream_id(const struct grpc_call *c);

/* Maps an errno from a failed connection to the status a server reports. */
enum grpc_status grpc_status_from_errno(int err);

/* ---- message framing, exposed for tests and fuzzing ---- */

/* Writes the 5-byte prefix for a message of len bytes. */
void grpc_frame_prefix(uint8_t out[5], bool compressed, uint32_t len);

/* Encodes a Chunk{data} protobuf header (tag + length varint) for a payload of len bytes into
 * out[11]; returns its size. The payload itself follows it unchanged. */
size_t grpc_chunk_header(uint8_t out[11], size_t len);

/* Parses one whole Chunk message (protobuf, any valid encoding incl. unknown fields). Sets
  * *data and *len to the payload (borrowed from msg). 0 or -EPROTO. */
int grpc_chunk_parse(const uint8_t *msg, size_t n, const uint8_t **data, size_t *len);

/* gzip (RFC 1952) helpers for grpc-encoding: gzip. Output appended to out (struct buf).
 * inflate refuses output above max bytes (-EMSGSIZE). 0 or -errno. */
struct buf;
int grpc_gzip(const uint8_t *p, size_t n, struct buf *out);
int grpc_gunzip(const uint8_t *p, size_t n, struct buf *out, size_t max);

#endif

/* ---- control messages (proto ClientEvent, ServerEvent, ProxyEvent) as plain structs ---- */

enum ctl_family { CTL_CLIENT_EVENT, CTL_SERVER_EVENT, CTL_PROXY_EVENT };
enum ctl_kind {
	CTL_NONE,
	CTL_CLIENT_HELLO, /* ClientEvent.hello: id, version, cidrs */
	CTL_SERVER_HELLO, /* ServerEvent.hello: id, version */
	CTL_ROUTES,	  /* ServerEvent.routes: routes */
	CTL_DRAIN,	  /* ServerEvent.drain or ProxyEvent.drain: deadline_ms, reason, refusal */
	CTL_REGISTER,	  /* ProxyEvent.register: id, cidrs (managed), virt, capacity, version */
};

#define CTL_MAX_LIST 1024 /* entries in any list; more is malformed */
#define CTL_CIDR_LEN 20	  /* "255.255.255.255/32" + NUL */

struct ctl_route {
	char virt[CTL_CIDR_LEN];
	char real[CTL_CIDR_LEN];
	char proxy_id[64];
};

struct ctl_msg {
	enum ctl_kind kind;
	char id[128];
	char version[32];
	char reason[128];
	uint32_t deadline_ms, capacity;
	uint32_t refusal; /* CTL_DRAIN: 0, or the enum grpc_status of a refusal (see ntun.proto) */
	size_t n_cidrs, n_virt, n_routes;
	char (*cidrs)[CTL_CIDR_LEN];
	char (*virt)[CTL_CIDR_LEN];
	struct ctl_route *routes;
};

/* Serialises m as a message of family f (the kind must belong to it) into out.
 * 0, -EINVAL or -ENOMEM. */
int grpc_ctl_encode(enum ctl_family f, const struct ctl_msg *m, struct buf *out);

/* Parses a message of family f into m (zeroed first; free with grpc_ctl_release). Strings that
 * do not fit, lists above CTL_MAX_LIST, an unset oneof or bad protobuf are -EPROTO. */
int grpc_ctl_decode(enum ctl_family f, const uint8_t *p, size_t n, struct ctl_msg *m);
void grpc_ctl_release(struct ctl_msg *m);
