// SPDX-License-Identifier: MIT
/* Unit tests for peer.c: a real peer (TLS server, HTTP/2 server) on the event loop, fed by a
 * hand-written HTTP/2 client over our TLS, so the test decides exactly what sits in the socket
 * when the peer reads. Certificates come from ntun-gencerts at test time. */
#include "check.h"
#include "h2.h"
#include "log.h"
#include "loop.h"
#include "peer.h"
#include "tls.h"

#include <errno.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef NTUN_GENCERTS_PATH
#define NTUN_GENCERTS_PATH NULL
#endif

static char tmp[256];

static void die(const char *what)
{
	fprintf(stderr, "test_peer: %s\n", what);
	exit(1);
}

static void certs(void)
{
	const char *gencerts = getenv("NTUN_GENCERTS");
	const char *base = getenv("TMPDIR");
	char out[512];
	int status;
	pid_t pid;

	if (!gencerts || !*gencerts)
		gencerts = NTUN_GENCERTS_PATH;
	if (!gencerts || access(gencerts, X_OK))
		die("ntun-gencerts not found: build target ntun-gencerts or set NTUN_GENCERTS");
	snprintf(tmp, sizeof(tmp), "%s/ntun-test-peer.XXXXXX", base && *base ? base : "/tmp");
	if (!mkdtemp(tmp))
		die("mkdtemp");
	snprintf(out, sizeof(out), "%s/pki", tmp);
	fflush(NULL);
	pid = fork();
	if (pid == 0) {
		if (!freopen("/dev/null", "w", stdout))
			_exit(127);
		execl(gencerts, gencerts, "--out", out, (char *)NULL);
		_exit(127);
	}
	if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status))
		die("ntun-gencerts failed");
}

static struct tls_ctx *ctx(bool server)
{
	const char *role = server ? "server" : "client";
	char cert[512], key[512], ca[512], err[512];
	struct tls_ctx_opts o = {
		.cert_file = cert,
		.key_file = key,
		.ca_file = ca,
		.is_server = server,
		.accept_roles =
			server ? TLS_ROLE_BIT(TLS_ROLE_CLIENT) : TLS_ROLE_BIT(TLS_ROLE_SERVER),
	};
	struct tls_ctx *c;

	snprintf(cert, sizeof(cert), "%s/pki/%s/cert.pem", tmp, role);
	snprintf(key, sizeof(key), "%s/pki/%s/key.pem", tmp, role);
	snprintf(ca, sizeof(ca), "%s/pki/ca/cert.pem", tmp);
	c = tls_ctx_new(&o, err, sizeof(err));
	if (!c) {
		fprintf(stderr, "test_peer: %s\n", err);
		die("tls_ctx_new");
	}
	return c;
}

/* ---- the receiving side: a peer and one request stream --------------------------------- */

struct rx {
	struct loop *loop;
	struct peer *peer;
	struct h2_stream *st;
	size_t got, want;
	uint32_t hash; /* FNV-1a of the bytes received */
	bool closed;
	char why[256];
	const uint8_t *out; /* a response body to send, if set */
	size_t out_len, out_off;
};

static uint32_t fnv(uint32_t h, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 16777619u;
	return h;
}

static int rx_data(void *owner, const uint8_t *p, size_t n)
{
	struct rx *r = owner;

	r->got += n;
	r->hash = fnv(r->hash, p, n);
	h2_stream_consume(r->st, n);
	if (r->got >= r->want)
		loop_stop(r->loop);
	return 0;
}

static size_t rx_avail(void *owner, bool *eof)
{
	struct rx *r = owner;

	*eof = r->out && r->out_off == r->out_len;
	return r->out_len - r->out_off;
}

/* The body in two pieces where it can, split somewhere new each time. */
static int rx_peek(void *owner, struct iovec *iov, size_t n)
{
	struct rx *r = owner;
	size_t first = 1 + (r->out_off * 7 + n) % 3000;

	if (first >= n) {
		iov[0] = (struct iovec){(void *)(r->out + r->out_off), n};
		return 1;
	}
	iov[0] = (struct iovec){(void *)(r->out + r->out_off), first};
	iov[1] = (struct iovec){(void *)(r->out + r->out_off + first), n - first};
	return 2;
}

static void rx_drop(void *owner, size_t n)
{
	((struct rx *)owner)->out_off += n;
}

static void rx_stream_close(void *owner, uint32_t code)
{
	((struct rx *)owner)->st = NULL;
}

static void rx_headers(void *owner, enum h2_headers_kind kind, const struct h2_nv *nv, size_t n,
		       bool end)
{
}

static void rx_end(void *owner)
{
}

static const struct h2_stream_cbs rx_stream_cbs = {
	.on_headers = rx_headers,
	.on_data = rx_data,
	.on_end = rx_end,
	.out_avail = rx_avail,
	.out_peek = rx_peek,
	.out_drop = rx_drop,
	.on_close = rx_stream_close,
};

static void rx_ready(struct peer *p, void *arg)
{
	if (peer_start_h2(p, true))
		peer_close(p, "h2 failed");
}

static void rx_request(struct peer *p, struct h2_stream *st, const struct h2_nv *nv, size_t n,
		       bool end, void *arg)
{
	struct rx *r = arg;

	r->st = st;
	h2_stream_attach(st, &rx_stream_cbs, r);
	if (r->out) {
		struct h2_nv status[1] = {H2_NV(":status", "200")};

		CHECK_INT_EQ(h2_stream_respond(st, status, 1, true), 0);
	}
}

static int goaways;		/* on_goaway calls */
static bool flooded;		/* peer_flooded() in on_close */
static uint32_t drain;		/* peer_opts.drain_ms for the next fixture, 0 = default */
static uint32_t resets;		/* h2 reset_burst for the next fixture */
static uint32_t ping_ms;	/* peer_opts.ping_interval_ms for the next fixture */
static uint32_t goaway_ping_ms; /* peer_ping_interval() when on_goaway ran */

static void rx_goaway(struct peer *p, void *arg)
{
	goaways++;
	goaway_ping_ms = peer_ping_interval(p);
}

static void rx_close(struct peer *p, const char *reason, void *arg)
{
	struct rx *r = arg;

	flooded = peer_flooded(p);
	r->closed = true;
	r->peer = NULL;
	snprintf(r->why, sizeof(r->why), "%s", reason);
	loop_stop(r->loop);
}

static int probe_acks; /* on_probe_ack calls */

static void rx_probe_ack(struct peer *p, void *arg)
{
	probe_acks++;
}

static const struct peer_cbs rx_cbs = {
	.on_ready = rx_ready,
	.on_probe_ack = rx_probe_ack,
	.on_request = rx_request,
	.on_goaway = rx_goaway,
	.on_close = rx_close,
};

/* ---- the sending side: HTTP/2 written by hand over our TLS ------------------------------ */

struct tx {
	struct loop *loop;
	struct tls_conn *tls;
	struct loop_io *io;
	int state; /* 0 handshake, 1 waiting for the peer's SETTINGS, 2 ready */
	uint8_t in[64 * 1024];
	size_t in_len;
	bool failed;
	bool download; /* after the request: read the response's DATA */
	size_t got, want;
	uint32_t hash;
};

static void frame_hdr(uint8_t *h, size_t len, uint8_t type, uint8_t flags, uint32_t stream)
{
	h[0] = (uint8_t)(len >> 16);
	h[1] = (uint8_t)(len >> 8);
	h[2] = (uint8_t)len;
	h[3] = type;
	h[4] = flags;
	h[5] = (uint8_t)(stream >> 24);
	h[6] = (uint8_t)(stream >> 16);
	h[7] = (uint8_t)(stream >> 8);
	h[8] = (uint8_t)stream;
}

/* Writes all of p as records (one per call up to 16 KiB) without ever waiting: the socket
 * must take it now. 0 or -1. */
static int tx_write(struct tx *t, const void *p, size_t n)
{
	const uint8_t *b = p;
	ssize_t w;

	while (n) {
		w = tls_write(t->tls, b, n);
		if (w <= 0)
			return -1;
		b += w;
		n -= (size_t)w;
	}
	return tls_write_pending(t->tls) && tls_flush(t->tls) ? -1 : 0;
}

/* The response: DATA payload counted and hashed, other frames skipped, until want bytes. */
static void tx_download(struct tx *t)
{
	size_t len, off;
	ssize_t r;

	for (;;) {
		r = tls_read(t->tls, t->in + t->in_len, sizeof(t->in) - t->in_len);
		if (r == -EAGAIN)
			return;
		if (r <= 0) {
			t->failed = true;
			loop_stop(t->loop);
			return;
		}
		t->in_len += (size_t)r;
		for (off = 0; t->in_len - off >= 9; off += 9 + len) {
			len = (size_t)t->in[off] << 16 | (size_t)t->in[off + 1] << 8 |
			      t->in[off + 2];
			if (t->in_len - off < 9 + len)
				break;
			if (t->in[off + 3] == 0) {
				t->got += len;
				t->hash = fnv(t->hash, t->in + off + 9, len);
			}
		}
		memmove(t->in, t->in + off, t->in_len - off);
		t->in_len -= off;
		if (t->got >= t->want)
			loop_stop(t->loop);
	}
}

/* Until the peer's SETTINGS came: the client preface and our SETTINGS (stream windows of
 * 2^31-1) and a connection window as large, then our ACK and the request's HEADERS (:method
 * POST, :scheme https, :path /, :authority x). */
static void tx_io(struct loop_io *io, unsigned events, void *arg)
{
	static const uint8_t preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
	static const uint8_t hpack[] = {0x83, 0x87, 0x84, 0x01, 0x01, 'x'};
	static const uint8_t windows[] = {0,	4,    0x7f, 0xff,
					  0xff, 0xff,		/* INITIAL_WINDOW_SIZE */
					  0x7f, 0xff, 0,    0}; /* WINDOW_UPDATE +2^31-1-65535 */
	const size_t pl = sizeof(preface) - 1;
	struct tx *t = arg;
	uint8_t f[64];
	ssize_t r;
	int rc;

	if (t->state == 2) {
		tx_download(t);
		return;
	}
	if (t->state == 0) {
		rc = tls_handshake(t->tls);
		if (rc == -EAGAIN) {
			loop_io_set(io,
				    (tls_want(t->tls) & TLS_WANT_WRITE) ? LOOP_WRITE : LOOP_READ);
			return;
		}
		memcpy(f, preface, pl);
		frame_hdr(f + pl, 6, 4, 0, 0);
		memcpy(f + pl + 9, windows, 6);
		frame_hdr(f + pl + 15, 4, 8, 0, 0);
		memcpy(f + pl + 24, windows + 6, 4);
		if (rc || tx_write(t, f, pl + 28))
			goto fail;
		t->state = 1;
		loop_io_set(io, LOOP_READ);
	}
	for (;;) {
		r = tls_read(t->tls, t->in + t->in_len, sizeof(t->in) - t->in_len);
		if (r == -EAGAIN)
			return;
		if (r <= 0)
			goto fail;
		t->in_len += (size_t)r;
		/* The server's first frame is its SETTINGS (no ACK flag). */
		if (t->in_len >= 9 && t->in[3] == 4 && !(t->in[4] & 1))
			break;
		if (t->in_len >= 9)
			goto fail;
	}
	frame_hdr(f, 0, 4, 1, 0);		  /* SETTINGS ACK */
	frame_hdr(f + 9, sizeof(hpack), 1, 4, 1); /* HEADERS, END_HEADERS, stream 1 */
	memcpy(f + 18, hpack, sizeof(hpack));
	if (tx_write(t, f, 18 + sizeof(hpack)))
		goto fail;
	t->state = 2;
	if (t->download) {
		tx_download(t); /* the response may have begun already */
		return;
	}
	loop_io_set(io, 0);
	loop_stop(t->loop);
	return;
fail:
	t->failed = true;
	loop_stop(t->loop);
}

static void stop_timer(struct loop_timer *tm, void *arg)
{
	loop_stop(arg);
}

/* A peer (r) and a hand-written client (t) joined by a socketpair, on a loop of their own. */
struct fixture {
	struct tls_ctx *sc, *cc;
	struct loop *l;
	struct loop_timer *tm; /* stops the loop */
	int fd[2];
};

static void fixture_open(struct fixture *f, struct rx *r, struct tx *t, uint32_t read_batch)
{
	struct peer_opts o;

	f->sc = ctx(true);
	f->cc = ctx(false);
	f->l = loop_new();
	f->tm = f->l ? loop_timer_new(f->l, stop_timer, f->l) : NULL;
	if (!f->l || !f->tm || socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, f->fd))
		die("setup");
	r->loop = t->loop = f->l;
	peer_opts_default(&o);
	o.ping_interval_ms = ping_ms;
	o.read_batch = read_batch;
	if (drain)
		o.drain_ms = drain;
	o.h2.reset_burst = resets;
	r->peer = peer_accept(f->l, f->sc, f->fd[1], "test", &o, &rx_cbs, r);
	t->tls = tls_conn_new(f->cc, f->fd[0]);
	t->io = t->tls ? loop_io_new(f->l, f->fd[0], tx_io, t) : NULL;
	if (!r->peer || !t->io)
		die("peer/tls setup");
	loop_io_set(t->io, LOOP_WRITE);
}

static void fixture_close(struct fixture *f, struct rx *r, struct tx *t)
{
	loop_io_free(t->io);
	if (r->peer) {
		peer_close(r->peer, "test done");
		loop_timer_arm(f->tm, 200);
		loop_run(f->l); /* the close completes on the next iteration */
	}
	tls_conn_free(t->tls);
	close(f->fd[0]);
	loop_timer_free(f->tm);
	loop_free(f->l);
	tls_ctx_free(f->sc);
	tls_ctx_free(f->cc);
}

/* The peer is handed, in one go, a burst of `total` DATA bytes in frames of `frame` bytes
 * (one record each) that it can only read in batches of `batch`, and then nothing more (no
 * PINGs either way). It must deliver every byte at once, not after the next event. */
static void burst_case(size_t batch, size_t total, size_t frame)
{
	struct rx r = {.hash = 2166136261u, .want = total};
	struct tx t = {0};
	struct fixture f;
	uint8_t *buf = malloc(frame + 9);
	uint32_t want_hash = 2166136261u;
	size_t sent = 0, n;

	if (!buf)
		die("malloc");
	fixture_open(&f, &r, &t, (uint32_t)batch);
	loop_timer_arm(f.tm, 2000);
	loop_run(f.l); /* until the request's HEADERS are out (tx_io stops the loop) */
	CHECK(!t.failed && t.state == 2 && !r.closed);
	if (t.failed || t.state != 2 || r.closed) {
		fprintf(stderr, "  set-up failed: %s / %s\n", tls_error(t.tls), r.why);
		goto out;
	}
	/* The whole burst goes into the socket while the loop is not running. */
	for (uint32_t seed = 1; sent < total; sent += n) {
		n = total - sent < frame ? total - sent : frame;
		for (size_t i = 0; i < n; i++) {
			seed = seed * 1103515245u + 12345u;
			buf[9 + i] = (uint8_t)(seed >> 16);
		}
		frame_hdr(buf, n, 0, 0, 1);
		want_hash = fnv(want_hash, buf + 9, n);
		if (tx_write(&t, buf, 9 + n)) {
			CHECK(!"burst fits the socket");
			goto out;
		}
	}
	/* The sender is silent from here on; a second is plenty for what is already there. */
	loop_io_free(t.io);
	t.io = NULL;
	loop_timer_arm(f.tm, 1000);
	loop_run(f.l);
	CHECK_INT_EQ(r.got, total);
	CHECK_INT_EQ(r.hash, want_hash);
	CHECK(!r.closed);
	if (r.got != total || r.closed)
		fprintf(stderr, "  batch %zu, burst %zu in %zu-byte frames: got %zu%s%s\n", batch,
			total, frame, r.got, r.closed ? ", closed: " : "", r.why);
out:
	fixture_close(&f, &r, &t);
	free(buf);
}

static void test_full_batch(void)
{
	/* Bursts just above one batch, a few batches, and sizes that end mid-record. */
	static const size_t totals[] = {33 * 1024, 40000, 48 * 1024, 70000, 100000};

	for (size_t i = 0; i < sizeof(totals) / sizeof(totals[0]); i++) {
		burst_case(32 * 1024, totals[i], 16384 - 9);
		burst_case(32 * 1024, totals[i], 5000);
	}
}

/* The peer sends: a body of `total` bytes, sealed from the owner's pieces, to a client that
 * reads as fast as it can and never sends again (its windows are 2^31-1). Whenever TLS has a
 * full queue and the socket then takes all of it, the peer must go on by itself. */
static void send_case(size_t total)
{
	uint8_t *body = malloc(total);
	struct rx r = {.hash = 2166136261u, .out = body, .out_len = total};
	struct tx t = {.download = true, .want = total, .hash = 2166136261u};
	struct fixture f;
	uint32_t want_hash, seed = 7;

	if (!body)
		die("malloc");
	for (size_t i = 0; i < total; i++) {
		seed = seed * 1103515245u + 12345u;
		body[i] = (uint8_t)(seed >> 16);
	}
	want_hash = fnv(2166136261u, body, total);
	fixture_open(&f, &r, &t, 0);
	loop_timer_arm(f.tm, 5000);
	loop_run(f.l);
	CHECK(!t.failed && !r.closed);
	CHECK_INT_EQ(t.got, total);
	CHECK_INT_EQ(t.hash, want_hash);
	CHECK_INT_EQ(r.out_off, total);
	if (t.got != total)
		fprintf(stderr, "  sent %zu of %zu, client got %zu%s%s\n", r.out_off, total, t.got,
			r.closed ? ", closed: " : "", r.why);
	fixture_close(&f, &r, &t);
	free(body);
}

static void test_send(void)
{
	send_case(100000);
	send_case(8u << 20);
}

/* Sets up a peer with one request stream open (never answered) and stops. */
static bool goaway_setup(struct fixture *f, struct rx *r, struct tx *t)
{
	fixture_open(f, r, t, 0);
	loop_timer_arm(f->tm, 2000);
	loop_run(f->l);
	CHECK(!t->failed && t->state == 2 && !r->closed);
	return !t->failed && t->state == 2 && !r->closed;
}

/* GOAWAY from the peer: the owner hears it once, and the connection closes at the drain
 * deadline even though a stream is still open (it never lingers half-closed). */
static void test_goaway_drains(void)
{
	struct rx r = {.want = SIZE_MAX};
	struct tx t = {0};
	struct fixture f;
	uint8_t g[17];
	uint64_t t0;

	drain = 300;
	goaways = 0;
	if (goaway_setup(&f, &r, &t)) {
		frame_hdr(g, 8, 7, 0, 0); /* GOAWAY, last (server-opened) stream 0, NO_ERROR */
		memset(g + 9, 0, 8);
		CHECK_INT_EQ(tx_write(&t, g, sizeof(g)), 0);
		loop_io_set(t.io, 0);
		t0 = loop_now_ms();
		loop_timer_arm(f.tm, 3000);
		loop_run(f.l);
		CHECK(r.closed);
		CHECK_STR_EQ(r.why, "drain deadline reached");
		CHECK(loop_now_ms() - t0 >= 250);
		CHECK_INT_EQ(goaways, 1);
	}
	fixture_close(&f, &r, &t);
	drain = 0;
}

/* gRPC's GOAWAY ENHANCE_YOUR_CALM "too_many_pings" doubles the keepalive time (A8) before the
 * owner hears the GOAWAY, so it can keep it for the next connection; other GOAWAYs leave it. */
static void test_too_many_pings(void)
{
	static const char dbg[] = "too_many_pings";
	struct rx r = {.want = SIZE_MAX};
	struct tx t = {0};
	struct fixture f;
	uint8_t g[17 + sizeof(dbg) - 1];

	for (int calm = 0; calm < 2; calm++) {
		memset(&r, 0, sizeof(r));
		memset(&t, 0, sizeof(t));
		r.want = SIZE_MAX;
		drain = 100;
		ping_ms = 60000;
		goaways = 0;
		goaway_ping_ms = 0;
		if (goaway_setup(&f, &r, &t)) {
			frame_hdr(g, sizeof(g) - 9, 7, 0, 0); /* GOAWAY, last stream 0 */
			memset(g + 9, 0, 8);
			g[16] = calm ? H2_ENHANCE_CALM : H2_NO_ERROR;
			memcpy(g + 17, dbg, sizeof(dbg) - 1);
			CHECK_INT_EQ(tx_write(&t, g, sizeof(g)), 0);
			loop_io_set(t.io, 0);
			loop_timer_arm(f.tm, 3000);
			loop_run(f.l);
			CHECK_INT_EQ(goaways, 1);
			CHECK_INT_EQ(goaway_ping_ms, calm ? 120000 : 60000);
		}
		fixture_close(&f, &r, &t);
	}
	drain = 0;
	ping_ms = 0;
}

/* Rapid reset through a real peer: GOAWAY(ENHANCE_YOUR_CALM), the connection closes with the
 * reason, and the owner can tell it was a flood (the server remembers the client's id). */
static void test_rapid_reset(void)
{
	static const uint8_t hpack[] = {0x83, 0x87, 0x84, 0x01, 0x01, 'x'};
	struct rx r = {.want = SIZE_MAX};
	struct tx t = {0};
	struct fixture f;
	uint8_t b[64 * 30];
	size_t n = 0;

	resets = 5;
	flooded = false;
	if (goaway_setup(&f, &r, &t)) {
		for (uint32_t sid = 3; sid < 3 + 2 * 30; sid += 2) {
			frame_hdr(b + n, sizeof(hpack), 1, 4, sid);
			memcpy(b + n + 9, hpack, sizeof(hpack));
			n += 9 + sizeof(hpack);
			frame_hdr(b + n, 4, 3, 0, sid); /* RST_STREAM CANCEL */
			memset(b + n + 9, 0, 3);
			b[n + 12] = 8;
			n += 13;
		}
		CHECK_INT_EQ(tx_write(&t, b, n), 0);
		loop_io_set(t.io, 0);
		loop_timer_arm(f.tm, 3000);
		loop_run(f.l);
		CHECK(r.closed);
		CHECK_STR_CONTAINS(r.why, "ENHANCE_YOUR_CALM");
		CHECK(flooded);
	}
	fixture_close(&f, &r, &t);
	resets = 0;
}

static int rm_one(const char *fpath, const struct stat *sb, int type, struct FTW *ftw)
{
	return remove(fpath);
}

/* Reads what the peer sent (2 s at most) until a PING without ACK; its opaque data in op. */
static bool tx_find_ping(struct tx *t, int fd, uint8_t op[8])
{
	uint64_t end = loop_now_ms() + 2000;
	struct pollfd pfd = {.fd = fd, .events = POLLIN};
	size_t len, off;
	ssize_t r;

	while (loop_now_ms() < end) {
		r = tls_read(t->tls, t->in + t->in_len, sizeof(t->in) - t->in_len);
		if (r == -EAGAIN) {
			poll(&pfd, 1, 100);
			continue;
		}
		if (r <= 0)
			return false;
		t->in_len += (size_t)r;
		for (off = 0; t->in_len - off >= 9; off += 9 + len) {
			len = (size_t)t->in[off] << 16 | (size_t)t->in[off + 1] << 8 |
			      t->in[off + 2];
			if (t->in_len - off < 9 + len)
				break;
			if (t->in[off + 3] == 6 && !(t->in[off + 4] & 1) && len == 8) {
				memcpy(op, t->in + off + 9, 8);
				t->in_len = 0; /* what follows it is not needed */
				return true;
			}
		}
		memmove(t->in, t->in + off, t->in_len - off);
		t->in_len -= off;
	}
	return false;
}

/* Probes: one PING per batch of asks, sent after the frames queued before it, numbered; an
 * ask while one is outstanding waits for its ACK and gets the next number; the owner hears
 * each ACK. */
static void test_probe(void)
{
	struct rx r = {.want = SIZE_MAX};
	struct tx t = {0};
	struct fixture f;
	uint8_t op[8], ack[17];

	probe_acks = 0;
	if (goaway_setup(&f, &r, &t)) {
		loop_io_set(t.io, 0);
		CHECK_INT_EQ(peer_probe(r.peer), 1);
		CHECK_INT_EQ(peer_probe(r.peer), 1); /* not sent yet: the same probe */
		loop_timer_arm(f.tm, 200);
		loop_run(f.l);
		CHECK(tx_find_ping(&t, f.fd[0], op));
		CHECK_INT_EQ(peer_probe_acked(r.peer), 0);
		CHECK_INT_EQ(peer_probe(r.peer), 2); /* the first may have left before its frames */
		frame_hdr(ack, 8, 6, 1, 0);
		memcpy(ack + 9, op, 8);
		CHECK_INT_EQ(tx_write(&t, ack, sizeof(ack)), 0);
		loop_timer_arm(f.tm, 200);
		loop_run(f.l);
		CHECK_INT_EQ(peer_probe_acked(r.peer), 1);
		CHECK_INT_EQ(probe_acks, 1);
		/* The second goes out once the first is answered. */
		CHECK(tx_find_ping(&t, f.fd[0], op));
		memcpy(ack + 9, op, 8);
		CHECK_INT_EQ(tx_write(&t, ack, sizeof(ack)), 0);
		loop_timer_arm(f.tm, 200);
		loop_run(f.l);
		CHECK_INT_EQ(peer_probe_acked(r.peer), 2);
		CHECK_INT_EQ(probe_acks, 2);
		CHECK(!r.closed);
	}
	fixture_close(&f, &r, &t);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	log_setup("test_peer", getenv("NTUN_TEST_VERBOSE") ? LOG_LVL_DEBUG : LOG_LVL_WARN,
		  LOG_FMT_TEXT, NULL);
	certs();
	test_full_batch();
	test_send();
	test_goaway_drains();
	test_rapid_reset();
	test_too_many_pings();
	test_probe();
	nftw(tmp, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	return check_done("test_peer");
}
