// SPDX-License-Identifier: MIT
/* Fuzzes gRPC deframing through a real server-side h2 session: a valid client preface and
 * Relay/Connect HEADERS, then the input as the DATA of that stream, read as a bytes-mode call
 * (peek/consume) or a message-mode call (recv). HTTP/2 framing itself is fuzz_h2's job.
 *
 * Input: [flags] [frame size] DATA payload...
 *   flags bit 0: message mode    bit 1: grpc-encoding gzip    bit 2: END_STREAM on the last
 *   bit 3: read after every frame (else only at the end)     bit 4: consume in halves
 *   bit 5: finish the call with an error status              frame size: 1 + 64 * byte */
#include <errno.h>
#include <string.h>

#include "buf.h"
#include "fuzz.h"
#include "grpc.h"
#include "h2.h"
#include "relay.h"

#define PATH "/ntun.v1.Relay/Connect"

static struct buf preface[2]; /* client preface + SETTINGS + HEADERS, without / with gzip */

/* ---- the client side, only to produce the preface bytes once ---- */

static size_t idle_avail(void *owner, bool *eof)
{
	*eof = false;
	return 0;
}

static int idle_peek(void *owner, struct iovec *iov, size_t n)
{
	return 0;
}

static void idle_drop(void *owner, size_t n)
{
}

static void idle_headers(void *owner, enum h2_headers_kind kind, const struct h2_nv *nv, size_t n,
			 bool end)
{
}

static int idle_data(void *owner, const uint8_t *p, size_t n)
{
	return 0;
}

static void idle_end(void *owner)
{
}

static void idle_close(void *owner, uint32_t code)
{
}

static const struct h2_stream_cbs idle_cbs = {
	.on_headers = idle_headers,
	.on_data = idle_data,
	.on_end = idle_end,
	.out_avail = idle_avail,
	.out_peek = idle_peek,
	.out_drop = idle_drop,
	.on_close = idle_close,
};

static void make_preface(bool gzip, struct buf *out)
{
	static const struct h2_session_cbs cbs;
	struct h2_nv nv[9] = {
		H2_NV(":method", "POST"),
		H2_NV(":scheme", "https"),
		H2_NV(":path", PATH),
		H2_NV(":authority", "ntun"),
		H2_NV("content-type", "application/grpc"),
		H2_NV("te", "trailers"),
		H2_NV("grpc-accept-encoding", "identity,gzip"),
		H2_NV("ntun-dst", "192.168.1.5:80"),
	};
	struct h2_settings set;
	struct h2_session *c;
	size_t n = 8;
	int dummy;

	if (gzip)
		nv[n++] = (struct h2_nv)H2_NV("grpc-encoding", "gzip");
	h2_settings_default(&set);
	c = h2_session_new(false, &set, &cbs, NULL);
	FUZZ_CHECK(c != NULL);
	FUZZ_CHECK(h2_stream_request(c, nv, n, &idle_cbs, &dummy) != NULL);
	FUZZ_CHECK(h2_session_send(c, out, SIZE_MAX) == 0);
	h2_session_free(c);
}

/* ---- the server side under test ---- */

struct state {
	enum grpc_mode mode;
	bool gzip;
	struct grpc_call *call;
	int requests;
};

static void on_request(void *arg, struct h2_stream *st, const struct h2_nv *nv, size_t n, bool end)
{
	struct state *s = arg;
	const char *path, *msg;

	s->requests++;
	FUZZ_CHECK(grpc_request_check(nv, n, s->gzip, &path, &msg) == GRPC_OK &&
		   !strcmp(path, PATH));
	FUZZ_CHECK(!s->call);
	s->call = grpc_call_accept(st, nv, n, end, s->mode, s->gzip);
	FUZZ_CHECK(s->call != NULL);
}

static void flush(struct h2_session *s)
{
	struct buf out = BUF_INIT;

	/* Output goes nowhere; what matters is that producing it is sound. */
	for (int i = 0; i < 64; i++) {
		if (h2_session_send(s, &out, 1 << 20) < 0 || !buf_len(&out))
			break;
		buf_release(&out);
	}
	buf_release(&out);
}

/* Reads everything the call has; returns the payload bytes (bytes mode) taken. */
static size_t drain(struct state *s, bool halves)
{
	struct relay_end *e = grpc_call_end(s->call);
	const uint8_t *p;
	size_t n, total = 0;
	struct ctl_msg m;
	int rv;

	if (s->mode == GRPC_MESSAGES) {
		while ((rv = grpc_call_recv(s->call, &p, &n)) == 1) {
			FUZZ_CHECK(n <= GRPC_MAX_HELD);
			/* Control calls decode what they receive. */
			if (grpc_ctl_decode(CTL_PROXY_EVENT, p, n, &m) == 0)
				grpc_ctl_release(&m);
		}
		return 0;
	}
	while ((n = e->ops->peek(e, &p)) > 0) {
		FUZZ_CHECK(!e->rx_err);
		if (halves && n > 1)
			n = n / 2;
		total += n;
		e->ops->consume(e, n);
	}
	FUZZ_CHECK(!(e->rx_eof && e->rx_err));
	return total;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_in in = {data, size};
	uint8_t flags = fuzz_u8(&in), hdr[9];
	size_t fsz = 1 + 64 * (size_t)fuzz_u8(&in), got = 0, sent = in.n;
	struct state st = {0};
	struct h2_session_cbs cbs = {.on_request = on_request};
	struct h2_settings set;
	struct h2_session *s;
	const uint8_t *p;
	bool halves = flags & 16;
	int rv;

	if (!buf_len(&preface[0])) {
		make_preface(false, &preface[0]);
		make_preface(true, &preface[1]);
	}
	st.mode = flags & 1 ? GRPC_MESSAGES : GRPC_BYTES;
	st.gzip = flags & 2;
	h2_settings_default(&set);
	s = h2_session_new(true, &set, &cbs, &st);
	FUZZ_CHECK(s != NULL);
	flush(s);
	rv = h2_session_recv(s, buf_head(&preface[st.gzip]), buf_len(&preface[st.gzip]));
	FUZZ_CHECK(rv == 0 && st.call);

	while (in.n) {
		size_t n = fuzz_take(&in, fsz, &p);
		bool end = !in.n && (flags & 4);

		hdr[0] = (uint8_t)(n >> 16);
		hdr[1] = (uint8_t)(n >> 8);
		hdr[2] = (uint8_t)n;
		hdr[3] = 0; /* DATA */
		hdr[4] = end ? 1 : 0;
		hdr[5] = hdr[6] = hdr[7] = 0;
		hdr[8] = 1; /* stream 1 */
		rv = h2_session_recv(s, hdr, sizeof(hdr));
		if (rv == 0)
			rv = h2_session_recv(s, p, n);
		if (rv < 0)
			break;
		if (flags & 8)
			got += drain(&st, halves);
		flush(s);
	}
	got += drain(&st, halves);
	FUZZ_CHECK(st.gzip || got <= sent); /* gzip may expand */
	if (flags & 32)
		grpc_call_finish(st.call, GRPC_INVALID_ARGUMENT, "bad input", NULL);
	else
		grpc_call_finish(st.call, GRPC_OK, NULL, NULL);
	flush(s);
	grpc_call_free(st.call);
	flush(s);
	h2_session_free(s);
	FUZZ_CHECK(st.requests == 1);
	return 0;
}
