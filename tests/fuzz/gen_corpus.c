// SPDX-License-Identifier: MIT
/* Writes the generated seeds of the fuzz corpora: real Chunk, gzip and control messages, gRPC
 * streams, and HTTP/2 byte streams captured between two in-memory sessions. Run by hand:
 *   fuzz_gen_corpus tests/fuzz/corpus     (fuzz_config seeds are copies of configs/) */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "grpc.h"
#include "h2.h"
#include "relay.h"

#define MAXC	     16
#define CONNECT_PATH "/ntun.v1.Relay/Connect"
#define ATTACH_PATH  "/ntun.v1.Relay/Attach"

static const char *top;

static void die(const char *what)
{
	fprintf(stderr, "fuzz_gen_corpus: %s\n", what);
	exit(1);
}

/* Writes corpus/<harness>/<name>: an optional lead of nlead bytes, then the body. */
static void save(const char *harness, const char *name, const void *lead, size_t nlead,
		 const void *p, size_t n)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s/%s", top, harness, name);
	f = fopen(path, "wb");
	if (!f || fwrite(lead, 1, nlead, f) != nlead || fwrite(p, 1, n, f) != n || fclose(f))
		die(path);
	printf("%s (%zu bytes)\n", path, nlead + n);
}

static void save_buf(const char *harness, const char *name, const void *lead, size_t nlead,
		     const struct buf *b)
{
	save(harness, name, lead, nlead, buf_head(b), buf_len(b));
}

/* ---- messages ---- */

/* A gRPC message: prefix (gzip: compressed) and body into out. */
static void frame(struct buf *out, const void *p, size_t n, bool gzip)
{
	struct buf z = BUF_INIT;
	uint8_t pfx[5];

	if (gzip) {
		if (grpc_gzip(p, n, &z))
			die("gzip");
		p = buf_head(&z);
		n = buf_len(&z);
	}
	grpc_frame_prefix(pfx, gzip, (uint32_t)n);
	if (buf_append(out, pfx, 5) || (n && buf_append(out, p, n)))
		die("nomem");
	buf_release(&z);
}

/* A Chunk{data} message body. */
static void chunk(struct buf *out, const char *s)
{
	uint8_t hdr[11];
	size_t n = strlen(s), hl = grpc_chunk_header(hdr, n);

	if (buf_append(out, hdr, hl) || (n && buf_append(out, s, n)))
		die("nomem");
}

static void ctl(struct buf *out, enum ctl_family f, const struct ctl_msg *m)
{
	if (grpc_ctl_encode(f, m, out))
		die("ctl encode");
}

static char cidrs[3][CTL_CIDR_LEN] = {"10.0.0.0/8", "192.168.1.0/24", "100.64.1.7"};
static char virts[3][CTL_CIDR_LEN] = {"100.64.0.0/8", "100.65.1.0/24", "100.66.0.1"};
static struct ctl_route routes[2] = {{"100.64.1.0/24", "192.168.1.0/24", "site-1"},
				     {"100.64.2.0/24", "192.168.1.0/24", "site-2"}};

static void gen_ctl_and_chunks(void)
{
	struct ctl_msg m = {0};
	struct buf b = BUF_INIT, z = BUF_INIT;
	/* Chunk with unknown fields of every wire type around the data. */
	static const uint8_t odd[] = {0x10, 0x96, 0x01, 0x19, 1,    2,	  3,	4,
				      5,    6,	  7,	8,    0x25, 1,	  2,	3,
				      4,    0x22, 2,	'x',  'y',  0x0a, 3,	'a',
				      'b',  'c',  0xfa, 0xff, 0xff, 0xff, 0x0f, 0x00};

	save("fuzz_chunk", "unknown_fields", NULL, 0, odd, sizeof(odd));
	chunk(&b, "hello, world");
	save_buf("fuzz_chunk", "chunk", NULL, 0, &b);
	if (grpc_gzip(buf_head(&b), buf_len(&b), &z))
		die("gzip");
	save_buf("fuzz_chunk", "chunk_gzip", NULL, 0, &z);
	buf_release(&z);
	if (grpc_gzip(NULL, 0, &z))
		die("gzip");
	save_buf("fuzz_chunk", "empty_gzip", NULL, 0, &z);
	buf_release(&z);
	buf_release(&b);

	m.kind = CTL_CLIENT_HELLO;
	snprintf(m.id, sizeof(m.id), "laptop-1");
	snprintf(m.version, sizeof(m.version), "0.1.0");
	m.cidrs = cidrs;
	m.n_cidrs = 3;
	ctl(&b, CTL_CLIENT_EVENT, &m);
	save_buf("fuzz_ctl", "client_hello", NULL, 0, &b);
	buf_release(&b);

	memset(&m, 0, sizeof(m));
	m.kind = CTL_SERVER_HELLO;
	snprintf(m.id, sizeof(m.id), "relay-1");
	snprintf(m.version, sizeof(m.version), "0.1.0");
	ctl(&b, CTL_SERVER_EVENT, &m);
	save_buf("fuzz_ctl", "server_hello", NULL, 0, &b);
	buf_release(&b);

	memset(&m, 0, sizeof(m));
	m.kind = CTL_ROUTES;
	m.routes = routes;
	m.n_routes = 2;
	ctl(&b, CTL_SERVER_EVENT, &m);
	save_buf("fuzz_ctl", "routes", NULL, 0, &b);
	buf_release(&b);

	memset(&m, 0, sizeof(m));
	m.kind = CTL_DRAIN;
	m.deadline_ms = 30000;
	snprintf(m.reason, sizeof(m.reason), "shutting down");
	ctl(&b, CTL_SERVER_EVENT, &m);
	save_buf("fuzz_ctl", "server_drain", NULL, 0, &b);
	buf_release(&b);
	ctl(&b, CTL_PROXY_EVENT, &m);
	save_buf("fuzz_ctl", "proxy_drain", NULL, 0, &b);
	buf_release(&b);

	memset(&m, 0, sizeof(m));
	m.kind = CTL_REGISTER;
	snprintf(m.id, sizeof(m.id), "site-1");
	snprintf(m.version, sizeof(m.version), "0.1.0");
	m.cidrs = cidrs;
	m.n_cidrs = 3;
	m.virt = virts;
	m.n_virt = 3;
	m.capacity = 1024;
	ctl(&b, CTL_PROXY_EVENT, &m);
	save_buf("fuzz_ctl", "register", NULL, 0, &b);
	buf_release(&b);
}

/* ---- gRPC streams for fuzz_grpc_frames: [flags] [frame size] stream ---- */

static void gen_frames(void)
{
	struct buf b = BUF_INIT, body = BUF_INIT;
	struct ctl_msg m = {0};
	static const uint8_t odd[] = {0x10, 0x01, 0x0a, 0x03, 'a',  'b', 'c',
				      0x22, 0x02, 'x',	'y',  0x0a, 0x00};
	uint8_t lead[2];

	chunk(&body, "GET / HTTP/1.0\r\n\r\n");
	frame(&b, buf_head(&body), buf_len(&body), false);
	buf_release(&body);
	frame(&b, NULL, 0, false); /* an empty message: no data field */
	chunk(&body, "more bytes");
	frame(&b, buf_head(&body), buf_len(&body), false);
	lead[0] = 4 | 8;
	lead[1] = 0; /* 1-byte DATA frames */
	save_buf("fuzz_grpc_frames", "bytes_small_frames", lead, 2, &b);
	lead[0] = 4 | 8 | 16;
	lead[1] = 255;
	save_buf("fuzz_grpc_frames", "bytes_one_frame_halves", lead, 2, &b);
	buf_release(&b);

	frame(&b, odd, sizeof(odd), false);
	lead[0] = 4 | 8;
	lead[1] = 1;
	save_buf("fuzz_grpc_frames", "bytes_unknown_fields", lead, 2, &b);
	buf_release(&b);

	frame(&b, buf_head(&body), buf_len(&body), true);
	frame(&b, buf_head(&body), buf_len(&body), false);
	lead[0] = 2 | 4 | 8;
	lead[1] = 0;
	save_buf("fuzz_grpc_frames", "bytes_gzip", lead, 2, &b);
	buf_release(&b);
	buf_release(&body);

	m.kind = CTL_REGISTER;
	snprintf(m.id, sizeof(m.id), "site-1");
	m.cidrs = cidrs;
	m.n_cidrs = 2;
	ctl(&body, CTL_PROXY_EVENT, &m);
	frame(&b, buf_head(&body), buf_len(&body), false);
	frame(&b, buf_head(&body), buf_len(&body), false);
	lead[0] = 1 | 4 | 8;
	lead[1] = 0;
	save_buf("fuzz_grpc_frames", "messages", lead, 2, &b);
	buf_release(&b);
	frame(&b, buf_head(&body), buf_len(&body), true);
	lead[0] = 1 | 2 | 4 | 8 | 32;
	lead[1] = 2;
	save_buf("fuzz_grpc_frames", "messages_gzip", lead, 2, &b);
	buf_release(&b);
	buf_release(&body);
}

/* ---- HTTP/2 captures for fuzz_h2: [flags] bytes one session received ---- */

struct side {
	struct h2_session *h;
	struct grpc_call *calls[MAXC];
	enum grpc_mode modes[MAXC];
	bool done[MAXC];
	size_t n;
};

struct pair {
	struct side c, s;
	struct buf c2s, s2c; /* everything each session received */
	bool gzip;
	bool reject; /* server answers every request Trailers-Only */
};

static void on_request(void *arg, struct h2_stream *st, const struct h2_nv *nv, size_t n, bool end)
{
	struct pair *p = arg;
	const char *path, *msg;
	enum grpc_status status = grpc_request_check(nv, n, p->gzip, &path, &msg);
	size_t i = p->s.n;

	if (status != GRPC_OK || p->reject || i == MAXC) {
		grpc_reject(st, status != GRPC_OK ? status : GRPC_UNAVAILABLE,
			    msg ? msg : "connect: refused", status ? NULL : "ECONNREFUSED");
		return;
	}
	p->s.modes[i] = strcmp(path, CONNECT_PATH) ? GRPC_MESSAGES : GRPC_BYTES;
	p->s.calls[i] = grpc_call_accept(st, nv, n, end, p->s.modes[i], p->gzip);
	p->s.n++;
}

/* Moves from's output into to, recording it. Returns bytes moved. */
static size_t xfer(struct side *from, struct side *to, struct buf *rec)
{
	struct buf b = BUF_INIT;
	size_t total = 0;

	for (;;) {
		if (h2_session_send(from->h, &b, 1 << 20) < 0 || !buf_len(&b))
			break;
		if (buf_append(rec, buf_head(&b), buf_len(&b)))
			die("nomem");
		h2_session_recv(to->h, buf_head(&b), buf_len(&b));
		total += buf_len(&b);
		buf_release(&b);
	}
	buf_release(&b);
	return total;
}

/* Reads every call of a side; the server echoes and ends its side after the peer's end. */
static void serve(struct side *sd, bool echo)
{
	for (size_t i = 0; i < sd->n; i++) {
		struct grpc_call *c = sd->calls[i];
		const uint8_t *q;
		size_t n;
		int rv;

		if (!c)
			continue;
		if (sd->modes[i] == GRPC_BYTES) {
			struct relay_end *e = grpc_call_end(c);

			while ((n = e->ops->peek(e, &q)) > 0) {
				if (echo)
					e->ops->write(e, q, n);
				e->ops->consume(e, n);
			}
			if (e->rx_eof && echo && !sd->done[i]) {
				e->ops->shutdown(e);
				sd->done[i] = true;
			}
			continue;
		}
		while ((rv = grpc_call_recv(c, &q, &n)) == 1)
			if (echo)
				grpc_call_send(c, q, n);
		if (rv == -EPIPE && echo && !sd->done[i]) {
			grpc_call_finish(c, GRPC_OK, NULL, NULL);
			sd->done[i] = true;
		}
	}
}

static void settle(struct pair *p)
{
	for (int i = 0; i < 1000; i++) {
		size_t n = xfer(&p->c, &p->s, &p->c2s) + xfer(&p->s, &p->c, &p->s2c);

		serve(&p->s, true);
		serve(&p->c, false);
		n += xfer(&p->c, &p->s, &p->c2s) + xfer(&p->s, &p->c, &p->s2c);
		if (!n)
			break;
	}
}

static void pair_init(struct pair *p, bool gzip)
{
	static struct h2_session_cbs ccbs, scbs = {.on_request = on_request};
	struct h2_settings set;

	memset(p, 0, sizeof(*p));
	p->gzip = gzip;
	h2_settings_default(&set);
	p->c.h = h2_session_new(false, &set, &ccbs, p);
	p->s.h = h2_session_new(true, &set, &scbs, p);
	if (!p->c.h || !p->s.h)
		die("h2_session_new");
}

static void pair_free(struct pair *p)
{
	for (size_t i = 0; i < p->c.n; i++)
		grpc_call_free(p->c.calls[i]);
	for (size_t i = 0; i < p->s.n; i++)
		grpc_call_free(p->s.calls[i]);
	h2_session_free(p->c.h);
	h2_session_free(p->s.h);
	buf_release(&p->c2s);
	buf_release(&p->s2c);
}

static struct grpc_call *client_call(struct pair *p, const char *path, enum grpc_mode mode,
				     bool gzip)
{
	struct h2_nv md[] = {H2_NV("ntun-dst", "192.168.1.5:80")};
	size_t i = p->c.n++;

	p->c.modes[i] = mode;
	p->c.calls[i] = grpc_call_open(p->c.h, path, md, 1, mode, gzip);
	if (!p->c.calls[i])
		die("grpc_call_open");
	return p->c.calls[i];
}

/* Exactly what fuzz_h2 opens on its client session: Connect (bytes, "GET /" written),
 * Attach (a ClientHello sent), Connect (bytes, gzip with flag bit 4). */
static void harness_calls(struct pair *p, bool gzip)
{
	static const char hello[] = "\x0a\x07\x0a\x02id\x12\x01v";
	struct relay_end *e;

	e = grpc_call_end(client_call(p, CONNECT_PATH, GRPC_BYTES, false));
	client_call(p, ATTACH_PATH, GRPC_MESSAGES, false);
	client_call(p, CONNECT_PATH, GRPC_BYTES, gzip);
	e->ops->write(e, (const uint8_t *)"GET /", 5);
	grpc_call_send(p->c.calls[1], hello, sizeof(hello) - 1);
}

static void client_finish_all(struct pair *p)
{
	for (size_t i = 0; i < p->c.n; i++)
		if (p->c.calls[i])
			grpc_call_finish(p->c.calls[i], GRPC_OK, NULL, NULL);
}

/* A request stream that sends no body and ignores its answer. */
static void nop_headers(void *o, enum h2_headers_kind k, const struct h2_nv *nv, size_t n, bool end)
{
}

static int nop_data(void *o, const uint8_t *p, size_t n)
{
	return 0;
}

static void nop_end(void *o)
{
}

static size_t nop_avail(void *o, bool *eof)
{
	*eof = true;
	return 0;
}

static int nop_peek(void *o, struct iovec *iov, size_t n)
{
	return 0;
}

static void nop_drop(void *o, size_t n)
{
}

static void nop_close(void *o, uint32_t code)
{
}

static const struct h2_stream_cbs nop_cbs = {
	.on_headers = nop_headers,
	.on_data = nop_data,
	.on_end = nop_end,
	.out_avail = nop_avail,
	.out_peek = nop_peek,
	.out_drop = nop_drop,
	.on_close = nop_close,
};

static void gen_h2_server(void)
{
	struct h2_nv bad[3][6] = {
		{H2_NV(":method", "GET"), H2_NV(":scheme", "https"), H2_NV(":path", CONNECT_PATH),
		 H2_NV(":authority", "ntun"), H2_NV("content-type", "application/grpc")},
		{H2_NV(":method", "POST"), H2_NV(":scheme", "https"), H2_NV(":path", CONNECT_PATH),
		 H2_NV(":authority", "ntun"), H2_NV("content-type", "text/plain")},
		{H2_NV(":method", "POST"), H2_NV(":scheme", "https"), H2_NV(":path", CONNECT_PATH),
		 H2_NV(":authority", "ntun"), H2_NV("content-type", "application/grpc"),
		 H2_NV("grpc-encoding", "br")},
	};
	static int owner;
	struct relay_end *e;
	struct pair p;
	uint8_t lead;

	/* A Connect call both ways with half-closes, and an Attach call with a hello. */
	pair_init(&p, false);
	e = grpc_call_end(client_call(&p, CONNECT_PATH, GRPC_BYTES, false));
	e->ops->write(e, (const uint8_t *)"GET / HTTP/1.0\r\n\r\n", 18);
	settle(&p);
	e->ops->shutdown(e);
	harness_calls(&p, false);
	settle(&p);
	client_finish_all(&p);
	settle(&p);
	lead = 32 | 64;
	save_buf("fuzz_h2", "server_calls", &lead, 1, &p.c2s);
	lead = 4 | 32 | 64 | 128;
	save_buf("fuzz_h2", "server_calls_bytewise", &lead, 1, &p.c2s);
	pair_free(&p);

	/* gzip calls, then a reset call, a PING and a GOAWAY. */
	pair_init(&p, true);
	harness_calls(&p, true);
	settle(&p);
	grpc_call_free(p.c.calls[0]);
	p.c.calls[0] = NULL;
	h2_session_ping(p.c.h);
	settle(&p);
	client_finish_all(&p);
	h2_session_goaway(p.c.h, H2_NO_ERROR, "bye");
	settle(&p);
	lead = 8 | 16 | 32 | 64;
	save_buf("fuzz_h2", "server_gzip_reset_goaway", &lead, 1, &p.c2s);
	pair_free(&p);

	/* Reproducer: 40000 bytes on an open Connect call; the harness echoes them with a 64-byte
	 * send limit, so a DATA frame is still waiting (WOULDBLOCK) when it frees the call. h2's
	 * send_data_cb then copied from the released owner (NULL) and crashed. */
	pair_init(&p, false);
	e = grpc_call_end(client_call(&p, CONNECT_PATH, GRPC_BYTES, false));
	{
		static uint8_t big[40000];

		memset(big, 'x', sizeof(big));
		e->ops->write(e, big, sizeof(big));
	}
	settle(&p);
	lead = 32 | 64 | 128;
	save_buf("fuzz_h2", "crash_free_with_data_pending", &lead, 1, &p.c2s);
	pair_free(&p);

	/* Two Connect calls (the harness may join them by a relay that pulls one into the
	 * other): 40000 bytes on the first, then the client resets it while the other's DATA
	 * waits behind a 64-byte send limit. h2 sent that frame from a source that had failed. */
	pair_init(&p, false);
	e = grpc_call_end(client_call(&p, CONNECT_PATH, GRPC_BYTES, false));
	client_call(&p, CONNECT_PATH, GRPC_BYTES, false);
	settle(&p);
	{
		static uint8_t big[40000];

		memset(big, 'y', sizeof(big));
		e->ops->write(e, big, sizeof(big));
	}
	settle(&p);
	grpc_call_free(p.c.calls[0]);
	p.c.calls[0] = NULL;
	settle(&p);
	lead = 2 | 12 | 32 | 128;
	save_buf("fuzz_h2", "relay_source_reset", &lead, 1, &p.c2s);
	/* The same with eleven PINGs after it: this input's size seeds a schedule on which the
	 * crash happens (found by trying sizes against the unfixed h2.c). */
	{
		static const uint8_t ping[17] = {0, 0, 8, 6};

		for (int i = 0; i < 11; i++)
			if (buf_append(&p.c2s, ping, sizeof(ping)))
				die("nomem");
	}
	lead = 2 | 12 | 32 | 128;
	save_buf("fuzz_h2", "crash_relay_pull_failed_source", &lead, 1, &p.c2s);
	pair_free(&p);

	/* Requests that are refused. */
	pair_init(&p, false);
	for (size_t i = 0; i < 3; i++)
		if (!h2_stream_request(p.c.h, bad[i], i == 2 ? 6 : 5, &nop_cbs, &owner))
			die("h2_stream_request");
	settle(&p);
	lead = 0;
	save_buf("fuzz_h2", "server_bad_requests", &lead, 1, &p.c2s);
	pair_free(&p);
}

static void gen_h2_client(void)
{
	struct pair p;
	uint8_t lead;

	pair_init(&p, false);
	harness_calls(&p, false);
	settle(&p);
	client_finish_all(&p);
	settle(&p);
	lead = 1 | 32 | 64;
	save_buf("fuzz_h2", "client_echo", &lead, 1, &p.s2c);
	pair_free(&p);

	pair_init(&p, true);
	harness_calls(&p, true);
	settle(&p);
	h2_session_ping(p.s.h);
	client_finish_all(&p);
	settle(&p);
	h2_session_goaway(p.s.h, H2_NO_ERROR, "drain");
	settle(&p);
	lead = 1 | 8 | 16 | 32 | 64;
	save_buf("fuzz_h2", "client_gzip_ping_goaway", &lead, 1, &p.s2c);
	pair_free(&p);

	pair_init(&p, false);
	p.reject = true;
	harness_calls(&p, false);
	settle(&p);
	lead = 1 | 4 | 32;
	save_buf("fuzz_h2", "client_rejected", &lead, 1, &p.s2c);
	pair_free(&p);
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
		return 2;
	}
	top = argv[1];
	gen_ctl_and_chunks();
	gen_frames();
	gen_h2_server();
	gen_h2_client();
	return 0;
}
