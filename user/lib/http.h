/* SPDX-License-Identifier: MIT */
/* A small HTTP/1.x server for local operator endpoints (/metrics, the admin API) over libevent's
 * evhttp, the only user of it: a loopback TCP or unix socket listener, handlers per path, and
 * limits on header and body size, time to send a request, and connections. Not for the
 * tunnel's traffic, and never on a non-local address. */
#ifndef NTUN_HTTP_H
#define NTUN_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct loop;
struct http;
struct http_req; /* one request, borrowed by handlers until they reply */

struct http_opts {
	size_t max_header;    /* request line + headers, bytes (default 8 KiB) */
	size_t max_body;      /* request body, bytes (default 16 KiB) */
	uint32_t deadline_ms; /* accept to the whole request; slow senders end here (default 2 s) */
	uint32_t timeout_ms;  /* no progress reading or writing (default 5 s) */
	unsigned max_conns;   /* open connections; the oldest not yet answered makes room (16) */
	/* If set, a request must carry exactly one Host header whose value this accepts, else
	 * it gets 403 (DNS rebinding on a loopback TCP port). NULL: Host is not looked at. */
	bool (*host_ok)(const char *value, size_t len);
};

/* Requests refused by the server itself, for metrics (borrowed from the http object). */
struct http_stats {
	uint64_t refused_host;	  /* Host missing, repeated or not accepted */
	uint64_t refused_timeout; /* request not complete by the deadline */
	uint64_t refused_busy;	  /* connection closed to make room, or turned away */
};

enum http_method { HTTP_GET, HTTP_POST, HTTP_OTHER };

/* Handles one request: reply with http_reply (now or later from the loop, while the request
 * lives). path is the request path without its query, borrowed. */
typedef void http_handler_cb(struct http_req *r, const char *path, void *arg);

/* Listens on addr: a unix socket path (starting with '/': mode 0600, its directory made 0700
 * if missing, a stale socket nobody answers on replaced, a live one refused) or
 * "127.x.y.z:PORT" (loopback only). Zero fields of opts take the defaults; opts may be NULL.
 * Returns NULL with a reason in err. */
struct http *http_new(struct loop *l, const char *addr, const struct http_opts *opts, char *err,
		      size_t errsz);

/* Stops listening, closes every connection, removes a unix socket it made. NULL ok. */
void http_free(struct http *h);

/* Routes requests whose path equals path, or starts with it when it ends in '/', to cb (the
 * first match in the order added). At most 32 routes; returns 0 or -ENOSPC. Anything not
 * routed gets 404. path is borrowed (a literal). */
int http_route(struct http *h, const char *path, http_handler_cb *cb, void *arg);

const struct http_stats *http_stats(const struct http *h);

enum http_method http_req_method(const struct http_req *r);

/* The decoded value of query parameter key ("?key=value"), copied to buf; NULL if absent,
 * undecodable or too long. */
const char *http_req_query(struct http_req *r, const char *key, char *buf, size_t size);

/* The request body (at most max_body bytes, not NUL-terminated); *len its size. */
const uint8_t *http_req_body(struct http_req *r, size_t *len);

/* Sends the answer and closes the connection after it (one request per connection). body
 * (len bytes, copied) may be NULL for an empty one; ctype defaults to text/plain. */
void http_reply(struct http_req *r, int code, const char *ctype, const void *body, size_t len);

#endif
