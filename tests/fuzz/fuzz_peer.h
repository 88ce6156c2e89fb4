/* SPDX-License-Identifier: MIT */
/* The peer of a session under test: another in-memory h2 session whose streams send a given
 * body and drop what they get, and the pump between the two. */
#ifndef NTUN_FUZZ_PEER_H
#define NTUN_FUZZ_PEER_H

#include <stdbool.h>
#include <sys/uio.h>

#include "buf.h"
#include "h2.h"

/* One stream of the peer: sends body[0..len) (then ends it if eof), ignores what arrives. */
struct fuzz_peer_stream {
	const uint8_t *body;
	size_t len, off;
	bool eof;
	bool closed;
	struct h2_stream *st;
};

static inline void fuzz_peer_headers(void *o, enum h2_headers_kind k, const struct h2_nv *nv,
				     size_t n, bool end)
{
}

static inline int fuzz_peer_data(void *o, const uint8_t *p, size_t n)
{
	h2_stream_consume(((struct fuzz_peer_stream *)o)->st, n);
	return 0;
}

static inline void fuzz_peer_end(void *o)
{
}

static inline size_t fuzz_peer_avail(void *o, bool *eof)
{
	struct fuzz_peer_stream *h = o;

	*eof = h->eof;
	return h->len - h->off;
}

static inline int fuzz_peer_peek(void *o, struct iovec *iov, size_t n)
{
	struct fuzz_peer_stream *h = o;

	iov[0].iov_base = (void *)(h->body + h->off);
	iov[0].iov_len = n;
	return 1;
}

static inline void fuzz_peer_drop(void *o, size_t n)
{
	((struct fuzz_peer_stream *)o)->off += n;
}

static inline void fuzz_peer_close(void *o, uint32_t code)
{
	((struct fuzz_peer_stream *)o)->closed = true;
}

static const struct h2_stream_cbs fuzz_peer_cbs = {
	.on_headers = fuzz_peer_headers,
	.on_data = fuzz_peer_data,
	.on_end = fuzz_peer_end,
	.out_avail = fuzz_peer_avail,
	.out_peek = fuzz_peer_peek,
	.out_drop = fuzz_peer_drop,
	.on_close = fuzz_peer_close,
};

/* Moves one session's output into the other; returns how many bytes moved. */
static inline size_t fuzz_xfer(struct h2_session *from, struct h2_session *to)
{
	struct buf b = BUF_INIT;
	size_t total = 0;

	for (int i = 0; i < 64; i++) {
		if (h2_session_send(from, &b, 1 << 20) < 0 || !buf_len(&b))
			break;
		total += buf_len(&b);
		if (h2_session_recv(to, buf_head(&b), buf_len(&b)) < 0)
			i = 64;
		buf_release(&b);
	}
	buf_release(&b);
	return total;
}

/* Pumps both ways, with serve(arg) in between (the tested side reads its calls), until
 * nothing moves (at most 64 rounds). */
static inline void fuzz_settle(struct h2_session *tested, struct h2_session *peer,
			       void (*serve)(void *arg), void *arg)
{
	for (int i = 0; i < 64; i++) {
		size_t n = fuzz_xfer(peer, tested) + fuzz_xfer(tested, peer);

		serve(arg);
		n += fuzz_xfer(tested, peer);
		if (!n)
			break;
	}
}

#endif
