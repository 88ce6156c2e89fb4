// SPDX-License-Identifier: MIT
/*
 * ntbench: the traffic of tools/bench. One server and three client modes; every byte that
 * crosses a path is compared in place with a deterministic pattern, so "exact" is checked at
 * each position, not by a digest at the end. Not a general load tool: it does what iperf3 and
 * wrk don't (content checks, connect included in latency, 10,000 idle connections held open).
 *
 *   ntbench serve --bind ADDR --port P [--ports K] [--threads T]
 *   ntbench bulk  --host H --port P --bytes N [--streams K] [--seconds S] [--timeout S]
 *   ntbench rr    --host H --port P [--conc C] [--seconds S | --count N] [--req B] [--resp B]
 *   ntbench ping  --host H --port P --seconds S [--req B] [--resp B] [--timeout S]
 *   ntbench flows --host H --port P --conns N --seconds S [--window W] [--timeout S]
 *   ntbench hold  --host H --port P --conns N [--ports K] [--src A,B,..] [--window W]
 *                 [--timeout S]
 *
 * --ports K: the server listens on P..P+K-1, and hold spreads its connections over them (with
 * --src, over several source addresses too), so that 100,000 connections do not run one hop's
 * (address, port) pair out of ephemeral ports. bulk --seconds: each stream asks for --bytes but
 * reads only for S seconds, then closes. ping: one connection, request/response after
 * request/response on it (the latency of an open connection). flows: N connections receiving
 * at once for S seconds after every one has received its first byte (a relay may accept at
 * once and dial later); per-flow bytes give Jain's fairness index.
 *
 * Server protocol: one header line, then the mode's bytes. OFF is the stream's offset in the
 * pattern; the byte at stream position k is pattern[(OFF + k) mod PAT_LEN].
 *   GET n OFF          server sends n pattern bytes from OFF, then closes
 *   RR req resp OFF    client sends req pattern bytes from OFF, server checks them, answers resp
 *                      pattern bytes from OFF + req, then closes (the server closes first, so
 *                      TIME_WAIT stays on the accepting side of every hop)
 *   ECHO               server echoes until EOF
 *   PP req resp OFF    like RR, again and again on one connection: after each response the
 *                      next req bytes follow on, offsets continuing; ends at the client's EOF
 * A wrong request byte makes the server reset the connection, so the client sees every error.
 *
 * Clients print one JSON object on stdout. hold prints {"phase":"held",...} once all its
 * connections are open and echoed once, waits for SIGUSR1, makes every connection echo once
 * more, then prints its result.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* A prime period: no power-of-two sized slip, duplication or loss can line the pattern up. */
#define PAT_LEN 1048573u
#define CHUNK	(256u * 1024u)
#define TOKEN	16u

static unsigned char *pat; /* PAT_LEN bytes, then the first CHUNK bytes again */

static void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "ntbench: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	exit(2);
}

static void pat_init(void)
{
	uint64_t x = 0x9e3779b97f4a7c15ull;
	pat = malloc(PAT_LEN + CHUNK);
	if (!pat)
		die("out of memory");
	for (size_t i = 0; i < PAT_LEN; i += 8) {
		uint64_t z = (x += 0x9e3779b97f4a7c15ull);
		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
		z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
		z ^= z >> 31;
		memcpy(pat + i, &z, PAT_LEN - i < 8 ? PAT_LEN - i : 8);
	}
	memcpy(pat + PAT_LEN, pat, CHUNK);
}

/* Pattern bytes at stream offset off; at least CHUNK bytes are contiguous there. */
static const unsigned char *pat_at(uint64_t off)
{
	return pat + off % PAT_LEN;
}

/* Index of the first byte of b[0..n) that differs from the pattern at off, or -1. */
static long pat_check(const unsigned char *b, size_t n, uint64_t off)
{
	const unsigned char *p = pat_at(off);
	if (memcmp(b, p, n) == 0)
		return -1;
	for (size_t i = 0; i < n; i++)
		if (b[i] != p[i])
			return (long)i;
	return -1;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* CPU seconds this process has used (user + system, all threads): exact, unlike the ticks of
 * /proc/stat, so even a figure of a second says what its load generator cost. */
static double self_cpu(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
	       (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static struct sockaddr_in parse_addr(const char *host, int port)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	if (inet_pton(AF_INET, host, &a.sin_addr) != 1)
		die("bad IPv4 address '%s'", host);
	return a;
}

static void close_rst(int fd)
{
	struct linger l = {.l_onoff = 1, .l_linger = 0};
	setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
	close(fd);
}

/* ------------------------------------------------------------------ server */

enum { S_HDR, S_GET, S_REQ, S_RESP, S_ECHO };

struct sconn {
	int fd;
	int state;
	char hdr[96];
	unsigned hlen;
	uint64_t off, left; /* S_GET/S_RESP: bytes still to send; S_REQ: to receive */
	uint64_t req, resp;
	bool loop; /* PP: back to S_REQ after each response */
	bool out;  /* EPOLLOUT is on */
	unsigned elen;
	unsigned char ebuf[512];
};

struct server {
	struct sockaddr_in addr;
	int ports;
	unsigned long bad; /* requests with wrong bytes, all threads (racy count, logged only) */
};

static void s_close(int ep, struct sconn *c, bool rst)
{
	epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
	if (rst)
		close_rst(c->fd);
	else
		close(c->fd);
	free(c);
}

static void s_want(int ep, struct sconn *c, uint32_t ev)
{
	struct epoll_event e = {.events = ev, .data.ptr = c};
	epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &e);
}

/* Sends what is left of the pattern, at most CHUNK bytes per call (one connection must not
 * keep a thread while its socket buffer, autotuned to megabytes, takes more: with 1,000 flows
 * the others would wait seconds for their turn); returns 1 when all sent, 0 on EAGAIN or when
 * the share is used up, -1 on error. */
static int s_send_pattern(struct sconn *c)
{
	size_t budget = CHUNK;
	while (c->left > 0) {
		if (!budget)
			return 0;
		size_t n = c->left < budget ? c->left : budget;
		ssize_t w = send(c->fd, pat_at(c->off), n, MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return errno == EAGAIN ? 0 : -1;
		}
		c->off += (uint64_t)w;
		c->left -= (uint64_t)w;
		budget -= (size_t)w;
	}
	return 1;
}

/* Consumes request bytes b[0..n) in S_REQ or S_ECHO. Returns -1 to reset the connection. */
static int s_payload(struct server *sv, struct sconn *c, const unsigned char *b, size_t n)
{
	if (c->state == S_ECHO) {
		if (c->elen + n > sizeof(c->ebuf))
			return -1; /* clients send TOKEN bytes and wait */
		memcpy(c->ebuf + c->elen, b, n);
		c->elen += n;
		return 0;
	}
	if (c->state != S_REQ)
		return n ? -1 : 0; /* GET: nothing may follow the header */
	if (n > c->left || pat_check(b, n, c->off) >= 0) {
		__atomic_add_fetch(&sv->bad, 1, __ATOMIC_RELAXED);
		return -1;
	}
	c->off += n;
	c->left -= n;
	if (c->left == 0) {
		c->state = S_RESP;
		c->left = c->resp;
	}
	return 0;
}

static int s_header(struct server *sv, struct sconn *c)
{
	char *nl = memchr(c->hdr, '\n', c->hlen);
	unsigned long long a = 0, b = 0, o = 0;
	if (!nl)
		return c->hlen >= sizeof(c->hdr) - 1 ? -1 : 0;
	*nl = 0;
	if (sscanf(c->hdr, "GET %llu %llu", &a, &o) == 2) {
		c->state = S_GET;
		c->left = a;
		c->off = o;
	} else if (sscanf(c->hdr, "RR %llu %llu %llu", &a, &b, &o) == 3) {
		c->state = a ? S_REQ : S_RESP;
		c->left = a ? a : b;
		c->resp = b;
		c->off = o;
	} else if (sscanf(c->hdr, "PP %llu %llu %llu", &a, &b, &o) == 3 && a > 0) {
		c->state = S_REQ;
		c->left = c->req = a;
		c->resp = b;
		c->off = o;
		c->loop = true;
	} else if (strcmp(c->hdr, "ECHO") == 0) {
		c->state = S_ECHO;
	} else {
		return -1;
	}
	size_t used = (size_t)(nl + 1 - c->hdr);
	return s_payload(sv, c, (unsigned char *)nl + 1, c->hlen - used);
}

/* Runs the connection as far as it goes; returns false once it is closed. */
static bool s_step(struct server *sv, int ep, struct sconn *c, unsigned char *scratch)
{
	for (;;) {
		switch (c->state) {
		case S_HDR: {
			ssize_t r = recv(c->fd, c->hdr + c->hlen, sizeof(c->hdr) - 1 - c->hlen, 0);
			if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR))
				goto drop;
			if (r < 0)
				return true;
			c->hlen += (unsigned)r;
			int rc = s_header(sv, c);
			if (rc < 0)
				goto reset;
			if (c->state == S_HDR)
				return true;
			break;
		}
		case S_REQ: {
			size_t want = c->left < CHUNK ? c->left : CHUNK;
			ssize_t r = recv(c->fd, scratch, want, 0);
			if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR))
				goto drop;
			if (r < 0)
				return true;
			if (s_payload(sv, c, scratch, (size_t)r) < 0)
				goto reset;
			break;
		}
		case S_GET:
		case S_RESP: {
			int rc = s_send_pattern(c);
			if (rc < 0)
				goto drop;
			if (rc == 0) {
				s_want(ep, c, EPOLLOUT);
				c->out = true;
				return true;
			}
			if (!c->loop)
				goto drop; /* all sent: we close first */
			if (c->out) {
				s_want(ep, c, EPOLLIN);
				c->out = false;
			}
			c->state = S_REQ;
			c->left = c->req;
			break;
		}
		case S_ECHO: {
			if (c->elen > 0) {
				ssize_t w = send(c->fd, c->ebuf, c->elen, MSG_NOSIGNAL);
				if (w < 0 && errno != EAGAIN && errno != EINTR)
					goto drop;
				if (w < 0) {
					s_want(ep, c, EPOLLOUT);
					return true;
				}
				memmove(c->ebuf, c->ebuf + w, c->elen - (size_t)w);
				c->elen -= (unsigned)w;
				if (c->elen == 0)
					s_want(ep, c, EPOLLIN);
				continue;
			}
			ssize_t r = recv(c->fd, c->ebuf, sizeof(c->ebuf), 0);
			if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR))
				goto drop;
			if (r < 0)
				return true;
			c->elen = (unsigned)r;
			break;
		}
		}
	}
drop:
	s_close(ep, c, false);
	return false;
reset:
	s_close(ep, c, true);
	return false;
}

static void *s_thread(void *arg)
{
	struct server *sv = arg;
	int one = 1, ep, lfd;
	unsigned char *scratch = malloc(CHUNK);
	struct epoll_event ev[256];

	ep = epoll_create1(EPOLL_CLOEXEC);
	/* Listening sockets are marked by data.ptr values 1..ports (never a connection's). */
	int lfds[64];
	for (int p = 0; p < sv->ports; p++) {
		struct sockaddr_in a = sv->addr;
		a.sin_port = htons((uint16_t)(ntohs(a.sin_port) + p));
		lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		setsockopt(lfd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
		if (bind(lfd, (struct sockaddr *)&a, sizeof(a)) || listen(lfd, 4096))
			die("listen: %s", strerror(errno));
		lfds[p] = lfd;
		struct epoll_event le = {.events = EPOLLIN, .data.ptr = (void *)(uintptr_t)(p + 1)};
		epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &le);
	}
	for (;;) {
		int n = epoll_wait(ep, ev, 256, -1);
		for (int i = 0; i < n; i++) {
			struct sconn *c = ev[i].data.ptr;
			if ((uintptr_t)c <= (uintptr_t)sv->ports) {
				int fd;
				lfd = lfds[(uintptr_t)c - 1];
				while ((fd = accept4(lfd, NULL, NULL,
						     SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
					c = calloc(1, sizeof(*c));
					c->fd = fd;
					setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
					struct epoll_event e = {.events = EPOLLIN, .data.ptr = c};
					epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e);
				}
				continue;
			}
			s_step(sv, ep, c, scratch);
		}
	}
	return NULL;
}

static int cmd_serve(const char *bind_ip, int port, int ports, int threads)
{
	static struct server sv;
	pthread_t t;
	sv.addr = parse_addr(bind_ip, port);
	sv.ports = ports;
	for (int i = 1; i < threads; i++)
		pthread_create(&t, NULL, s_thread, &sv);
	fprintf(stderr, "ntbench: listening on %s:%d (%d port(s)) with %d thread(s)\n", bind_ip,
		port, ports, threads);
	s_thread(&sv);
	return 0;
}

/* ------------------------------------------------------------------ bulk */

struct stream {
	struct sockaddr_in addr;
	uint64_t bytes, off, got;
	double timeout, t1, until; /* until: stop reading then (0: read all bytes) */
	pthread_barrier_t *go;
	char err[160];
};

static void *bulk_thread(void *arg)
{
	struct stream *s = arg;
	unsigned char *buf = malloc(CHUNK);
	char hdr[64];
	struct timeval tv = {.tv_sec = (time_t)s->timeout};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	pthread_barrier_wait(s->go);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&s->addr, sizeof(s->addr))) {
		snprintf(s->err, sizeof(s->err), "connect: %s", strerror(errno));
		goto out;
	}
	int hl = snprintf(hdr, sizeof(hdr), "GET %" PRIu64 " %" PRIu64 "\n", s->bytes, s->off);
	if (send(fd, hdr, (size_t)hl, MSG_NOSIGNAL) != hl) {
		snprintf(s->err, sizeof(s->err), "send: %s", strerror(errno));
		goto out;
	}
	for (;;) {
		if (s->until > 0 && now_s() >= s->until)
			goto out;
		ssize_t r = recv(fd, buf, CHUNK, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			snprintf(s->err, sizeof(s->err), "%s after %" PRIu64 " bytes",
				 errno == EAGAIN ? "stalled (no data for the timeout)"
						 : strerror(errno),
				 s->got);
			goto out;
		}
		if (r == 0)
			break;
		if (s->got + (uint64_t)r > s->bytes) {
			snprintf(s->err, sizeof(s->err), "more bytes than sent (%" PRIu64 "+)",
				 s->got + (uint64_t)r);
			goto out;
		}
		long bad = pat_check(buf, (size_t)r, s->off + s->got);
		if (bad >= 0) {
			snprintf(s->err, sizeof(s->err), "wrong byte at offset %" PRIu64,
				 s->got + (uint64_t)bad);
			goto out;
		}
		s->got += (uint64_t)r;
	}
	if (s->got != s->bytes && s->until <= 0)
		snprintf(s->err, sizeof(s->err), "EOF after %" PRIu64 " of %" PRIu64 " bytes",
			 s->got, s->bytes);
out:
	s->t1 = now_s();
	close(fd);
	free(buf);
	return NULL;
}

static int cmd_bulk(const char *host, int port, uint64_t bytes, int streams, double seconds,
		    double timeout)
{
	struct stream *s = calloc((size_t)streams, sizeof(*s));
	pthread_t *t = calloc((size_t)streams, sizeof(*t));
	pthread_barrier_t go;
	uint64_t total = 0;
	int errors = 0;
	double t0, t1 = 0;

	pthread_barrier_init(&go, NULL, (unsigned)streams + 1);
	for (int i = 0; i < streams; i++) {
		s[i].addr = parse_addr(host, port);
		s[i].bytes = bytes / (uint64_t)streams + (i == 0 ? bytes % (uint64_t)streams : 0);
		s[i].off = (uint64_t)i * 7919u * 131u;
		s[i].timeout = timeout;
		s[i].go = &go;
		pthread_create(&t[i], NULL, bulk_thread, &s[i]);
	}
	t0 = now_s();
	for (int i = 0; i < streams; i++)
		s[i].until = seconds > 0 ? t0 + seconds : 0;
	pthread_barrier_wait(&go);
	for (int i = 0; i < streams; i++) {
		pthread_join(t[i], NULL);
		total += s[i].got;
		if (s[i].t1 > t1)
			t1 = s[i].t1;
		if (s[i].err[0])
			errors++;
	}
	if (seconds > 0)
		bytes = total; /* timed: whatever arrived in the time, all of it checked */
	printf("{\"ok\":%d,\"cpu_self_s\":%.4f,\"bytes\":%" PRIu64 ",\"want\":%" PRIu64
	       ",\"seconds\":%.6f,\"gbps\":%.4f,\"streams\":%d,\"errors\":[",
	       errors == 0 && total > 0, self_cpu(), total, bytes, t1 - t0,
	       total * 8 / (t1 - t0) / 1e9, streams);
	for (int i = 0, k = 0; i < streams; i++)
		if (s[i].err[0])
			printf("%s\"stream %d: %s\"", k++ ? "," : "", i, s[i].err);
	printf("]}\n");
	return errors ? 1 : 0;
}

/* ------------------------------------------------------------------ rr */

enum { R_IDLE, R_CONNECTING, R_SENDING, R_RESP, R_EOF };

struct rconn {
	int fd, state;
	double t0;
	uint64_t off;
	uint32_t sent, got;
};

struct rr {
	struct sockaddr_in addr;
	int ep;
	uint32_t req, resp;
	unsigned char *reqbuf; /* header + request, rebuilt per connection */
	uint32_t reqlen;
	uint64_t seq;
	double *lat;
	size_t nlat, caplat;
	unsigned long done, in_window, e_connect, e_reset, e_bad, e_timeout, e_eof;
	double t_end;
	char first_err[160];
};

static void rr_err(struct rr *r, unsigned long *ctr, const char *what, int err)
{
	(*ctr)++;
	if (!r->first_err[0])
		snprintf(r->first_err, sizeof(r->first_err), "%s%s%s", what, err ? ": " : "",
			 err ? strerror(err) : "");
}

static void rr_finish(struct rr *r, struct rconn *c, bool rst)
{
	epoll_ctl(r->ep, EPOLL_CTL_DEL, c->fd, NULL);
	if (rst)
		close_rst(c->fd);
	else
		close(c->fd);
	c->fd = -1;
	c->state = R_IDLE;
}

static void rr_start(struct rr *r, struct rconn *c)
{
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	c->off = (r->seq++ * 7919u) % PAT_LEN;
	c->sent = c->got = 0;
	c->t0 = now_s();
	c->state = R_CONNECTING;
	int one = 1;
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(c->fd, (struct sockaddr *)&r->addr, sizeof(r->addr)) && errno != EINPROGRESS) {
		rr_err(r, &r->e_connect, "connect", errno);
		close(c->fd);
		c->fd = -1;
		c->state = R_IDLE;
		return;
	}
	struct epoll_event e = {.events = EPOLLOUT, .data.ptr = c};
	epoll_ctl(r->ep, EPOLL_CTL_ADD, c->fd, &e);
}

static void rr_step(struct rr *r, struct rconn *c, unsigned char *buf)
{
	int err;
	socklen_t el = sizeof(err);
	ssize_t n;

	switch (c->state) {
	case R_CONNECTING:
		if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el) || err) {
			rr_err(r, &r->e_connect, "connect", err);
			rr_finish(r, c, false);
			return;
		}
		c->state = R_SENDING;
		/* fall through */
	case R_SENDING: {
		char hdr[64];
		int hl = snprintf(hdr, sizeof(hdr), "RR %u %u %" PRIu64 "\n", r->req, r->resp,
				  c->off);
		r->reqlen = (uint32_t)hl + r->req;
		memcpy(r->reqbuf, hdr, (size_t)hl);
		memcpy(r->reqbuf + hl, pat_at(c->off), r->req);
		n = send(c->fd, r->reqbuf + c->sent, r->reqlen - c->sent, MSG_NOSIGNAL);
		if (n < 0 && errno != EAGAIN) {
			rr_err(r, &r->e_reset, "send", errno);
			rr_finish(r, c, false);
			return;
		}
		if (n > 0)
			c->sent += (uint32_t)n;
		if (c->sent < r->reqlen)
			return;
		c->state = R_RESP;
		struct epoll_event e = {.events = EPOLLIN, .data.ptr = c};
		epoll_ctl(r->ep, EPOLL_CTL_MOD, c->fd, &e);
		return;
	}
	case R_RESP:
	case R_EOF:
		for (;;) {
			n = recv(c->fd, buf, CHUNK, 0);
			if (n < 0 && errno == EAGAIN)
				return;
			if (n < 0) {
				rr_err(r, &r->e_reset, "recv", errno);
				rr_finish(r, c, false);
				return;
			}
			if (n == 0) {
				if (c->state != R_EOF) {
					rr_err(r, &r->e_eof, "EOF before the whole response", 0);
					rr_finish(r, c, false);
					return;
				}
				r->done++;
				rr_finish(r, c, false);
				return;
			}
			if (c->state == R_EOF || c->got + (uint64_t)n > r->resp ||
			    pat_check(buf, (size_t)n, c->off + r->req + c->got) >= 0) {
				rr_err(r, &r->e_bad, "wrong response bytes", 0);
				rr_finish(r, c, true);
				return;
			}
			c->got += (uint32_t)n;
			if (c->got == r->resp) {
				double t = now_s();
				if (t <= r->t_end) {
					r->in_window++;
					if (r->nlat == r->caplat) {
						r->caplat = r->caplat ? 2 * r->caplat : 4096;
						r->lat =
							realloc(r->lat, r->caplat * sizeof(double));
					}
					r->lat[r->nlat++] = t - c->t0;
				}
				c->state = R_EOF;
			}
		}
	}
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double pct(const double *v, size_t n, double p)
{
	if (!n)
		return 0;
	size_t i = (size_t)(p * (double)(n - 1) + 0.5);
	return v[i];
}

static int cmd_rr(const char *host, int port, int conc, double seconds, unsigned long count,
		  uint32_t req, uint32_t resp, double timeout)
{
	struct rr r = {.addr = parse_addr(host, port), .req = req, .resp = resp};
	struct rconn *cs = calloc((size_t)conc, sizeof(*cs));
	unsigned char *buf = malloc(CHUNK);
	struct epoll_event ev[256];
	unsigned long started = 0;
	double t0, tlast;

	r.reqbuf = malloc(64 + req);
	r.ep = epoll_create1(EPOLL_CLOEXEC);
	t0 = now_s();
	r.t_end = seconds > 0 ? t0 + seconds : 1e300;
	for (int i = 0; i < conc; i++)
		cs[i].fd = -1;
	for (;;) {
		double t = now_s();
		bool more = t < r.t_end && (!count || started < count);
		int active = 0;
		for (int i = 0; i < conc; i++) {
			if (cs[i].state == R_IDLE && more) {
				rr_start(&r, &cs[i]);
				started++;
				more = t < r.t_end && (!count || started < count);
			}
			if (cs[i].state != R_IDLE && t - cs[i].t0 > timeout) {
				rr_err(&r, &r.e_timeout, "no answer within the timeout", 0);
				rr_finish(&r, &cs[i], true);
			}
			active += cs[i].state != R_IDLE;
		}
		if (!active && !more)
			break;
		int n = epoll_wait(r.ep, ev, 256, 100);
		for (int i = 0; i < n; i++)
			rr_step(&r, ev[i].data.ptr, buf);
	}
	tlast = now_s();
	/* A count reached before the time is up: the rate is over the time it took. */
	double span = seconds > 0 && (!count || tlast - t0 >= seconds) ? seconds : tlast - t0;
	qsort(r.lat, r.nlat, sizeof(double), cmp_double);
	double sum = 0;
	for (size_t i = 0; i < r.nlat; i++)
		sum += r.lat[i];
	unsigned long errors = r.e_connect + r.e_reset + r.e_bad + r.e_timeout + r.e_eof;
	printf("{\"ok\":%d,\"cpu_self_s\":%.4f,\"conns\":%lu,\"in_window\":%lu,"
	       "\"seconds\":%.4f,\"rate\":%.1f,"
	       "\"conc\":%d,\"req\":%u,\"resp\":%u,\"p50_us\":%.1f,\"p90_us\":%.1f,"
	       "\"p99_us\":%.1f,\"mean_us\":%.1f,\"max_us\":%.1f,\"errors\":%lu,"
	       "\"e_connect\":%lu,\"e_reset\":%lu,\"e_bad\":%lu,\"e_timeout\":%lu,\"e_eof\":%lu,"
	       "\"first_error\":\"%s\"}\n",
	       errors == 0 && r.done > 0, self_cpu(), r.done, r.in_window, span, r.in_window / span,
	       conc, req, resp, pct(r.lat, r.nlat, 0.5) * 1e6, pct(r.lat, r.nlat, 0.9) * 1e6,
	       pct(r.lat, r.nlat, 0.99) * 1e6, r.nlat ? sum / (double)r.nlat * 1e6 : 0,
	       r.nlat ? r.lat[r.nlat - 1] * 1e6 : 0, errors, r.e_connect, r.e_reset, r.e_bad,
	       r.e_timeout, r.e_eof, r.first_err);
	return errors || !r.done ? 1 : 0;
}

/* ------------------------------------------------------------------ ping */

/* Reads exactly n bytes and checks them against the pattern at off; 0, or -1 with err set. */
static int read_exact(int fd, unsigned char *buf, size_t n, uint64_t off, char *err, size_t el)
{
	size_t got = 0;
	while (got < n) {
		ssize_t r = recv(fd, buf + got, n - got, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			snprintf(err, el, "%s after %zu of %zu response bytes",
				 r == 0		   ? "EOF"
				 : errno == EAGAIN ? "no answer within the timeout"
						   : strerror(errno),
				 got, n);
			return -1;
		}
		got += (size_t)r;
	}
	if (pat_check(buf, n, off) >= 0) {
		snprintf(err, el, "wrong response bytes");
		return -1;
	}
	return 0;
}

static int cmd_ping(const char *host, int port, double seconds, uint32_t req, uint32_t resp,
		    double timeout)
{
	struct sockaddr_in a = parse_addr(host, port);
	struct timeval tv = {.tv_sec = (time_t)timeout};
	unsigned char *buf = malloc(64 + req + resp);
	size_t nlat = 0, caplat = 4096;
	double *lat = malloc(caplat * sizeof(double)), t0, t_end, sum = 0;
	uint64_t off = 0;
	char err[160] = "";
	int one = 1, fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, (struct sockaddr *)&a, sizeof(a))) {
		snprintf(err, sizeof(err), "connect: %s", strerror(errno));
		goto out;
	}
	t0 = now_s();
	t_end = t0 + seconds;
	for (bool first = true; now_s() < t_end; first = false) {
		size_t hl = 0;
		if (first)
			hl = (size_t)snprintf((char *)buf, 64, "PP %u %u 0\n", req, resp);
		memcpy(buf + hl, pat_at(off), req);
		double t = now_s();
		if (send(fd, buf, hl + req, MSG_NOSIGNAL) != (ssize_t)(hl + req)) {
			snprintf(err, sizeof(err), "send: %s", strerror(errno));
			goto out;
		}
		if (read_exact(fd, buf, resp, off + req, err, sizeof(err)))
			goto out;
		off += req + resp;
		if (nlat == caplat)
			lat = realloc(lat, (caplat *= 2) * sizeof(double));
		lat[nlat++] = now_s() - t;
	}
out:
	close(fd);
	qsort(lat, nlat, sizeof(double), cmp_double);
	for (size_t i = 0; i < nlat; i++)
		sum += lat[i];
	printf("{\"ok\":%d,\"cpu_self_s\":%.4f,\"count\":%zu,\"req\":%u,\"resp\":%u,\"p50_us\":%.1f,\"p90_us\":%.1f,"
	       "\"p99_us\":%.1f,\"mean_us\":%.1f,\"max_us\":%.1f,\"errors\":%d,"
	       "\"first_error\":\"%s\"}\n",
	       !err[0] && nlat > 0, self_cpu(), nlat, req, resp, pct(lat, nlat, 0.5) * 1e6,
	       pct(lat, nlat, 0.9) * 1e6, pct(lat, nlat, 0.99) * 1e6,
	       nlat ? sum / (double)nlat * 1e6 : 0, nlat ? lat[nlat - 1] * 1e6 : 0, err[0] != 0,
	       err);
	return err[0] || !nlat;
}

/* ------------------------------------------------------------------ flows */

struct flow {
	int fd;
	bool connected, moving; /* moving: its first byte arrived (the path is up end to end) */
	uint64_t got, win;	/* bytes in all; in the measured window */
};

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static int cmd_flows(const char *host, int port, unsigned long n, double seconds,
		     unsigned long window, double timeout)
{
	struct sockaddr_in a = parse_addr(host, port);
	struct flow *f = calloc(n, sizeof(*f));
	unsigned char *buf = malloc(CHUNK);
	struct epoll_event ev[512];
	unsigned long next = 0, connected = 0, moving = 0, pending = 0, errors = 0;
	double t0 = now_s(), tw = 0, t_end = 0;
	char err[160] = "";
	const uint64_t want = 1ull << 50; /* more than any run reads */
	int rcvbuf = 128 * 1024;
	int ep = epoll_create1(EPOLL_CLOEXEC);

	for (;;) {
		double t = now_s();
		while (!tw && next < n && pending < window) {
			struct flow *c = &f[next];
			c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
			if (c->fd < 0)
				die("socket: %s (raise ulimit -n)", strerror(errno));
			/* Autotuned buffers of 1,000 flows would put the machine's TCP memory
			 * under pressure (tcp_mem), which starves flows at random: fixed. */
			setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
			if (connect(c->fd, (struct sockaddr *)&a, sizeof(a)) &&
			    errno != EINPROGRESS) {
				snprintf(err, sizeof(err), "flow %lu: connect: %s", next,
					 strerror(errno));
				errors++;
				goto done;
			}
			struct epoll_event e = {.events = EPOLLOUT, .data.u64 = next};
			epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &e);
			next++;
			pending++;
		}
		if (!tw && moving == n) {
			/* All moving data (a relay may accept at once and dial later): the measured
			 * window starts now. */
			tw = t;
			t_end = tw + seconds;
			for (unsigned long i = 0; i < n; i++)
				f[i].win = 0;
		}
		if (tw && t >= t_end)
			break;
		if (!tw && t - t0 > timeout) {
			snprintf(err, sizeof(err),
				 "only %lu of %lu flows open, %lu moving in %.0f s", connected, n,
				 moving, timeout);
			errors++;
			goto done;
		}
		int k = epoll_wait(ep, ev, 512, 50);
		for (int i = 0; i < k; i++) {
			unsigned long id = ev[i].data.u64;
			struct flow *c = &f[id];
			if (!c->connected) {
				int e = 0;
				socklen_t el = sizeof(e);
				char hdr[64];
				getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &e, &el);
				int hl = snprintf(hdr, sizeof(hdr), "GET %" PRIu64 " %lu\n", want,
						  (id * 7919u) % PAT_LEN);
				if (e || send(c->fd, hdr, (size_t)hl, MSG_NOSIGNAL) != hl) {
					snprintf(err, sizeof(err), "flow %lu: connect: %s", id,
						 strerror(e ? e : errno));
					errors++;
					goto done;
				}
				c->connected = true;
				connected++;
				pending--;
				struct epoll_event e2 = {.events = EPOLLIN, .data.u64 = id};
				epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &e2);
				continue;
			}
			/* One read per event, at most 64 KiB: no flow is served ahead of its turn. */
			ssize_t r = recv(c->fd, buf, 65536, 0);
			if (r < 0 && (errno == EAGAIN || errno == EINTR))
				continue;
			if (r <= 0) {
				snprintf(err, sizeof(err), "flow %lu: %s after %" PRIu64 " bytes",
					 id, r == 0 ? "EOF" : strerror(errno), c->got);
				errors++;
				goto done;
			}
			if (pat_check(buf, (size_t)r, (id * 7919u) % PAT_LEN + c->got) >= 0) {
				snprintf(err, sizeof(err), "flow %lu: wrong byte", id);
				errors++;
				goto done;
			}
			if (!c->moving) {
				c->moving = true;
				moving++;
			}
			c->got += (uint64_t)r;
			if (tw)
				c->win += (uint64_t)r;
		}
	}
done:;
	double span = tw ? now_s() - tw : 0, s1 = 0, s2 = 0;
	uint64_t *w = calloc(n, sizeof(*w)), total = 0, all = 0;
	unsigned long starved = 0;
	for (unsigned long i = 0; i < n; i++) {
		w[i] = f[i].win;
		starved += tw && !w[i];
		total += w[i];
		all += f[i].got;
		s1 += (double)w[i];
		s2 += (double)w[i] * (double)w[i];
		if (f[i].fd > 0)
			close_rst(f[i].fd);
	}
	qsort(w, n, sizeof(*w), cmp_u64);
	double jain = s2 > 0 ? s1 * s1 / ((double)n * s2) : 0;
	printf("{\"ok\":%d,\"cpu_self_s\":%.4f,\"flows\":%lu,\"open\":%lu,\"connect_s\":%.3f,\"seconds\":%.3f,"
	       "\"bytes\":%" PRIu64 ",\"bytes_all\":%" PRIu64 ",\"gbps\":%.4f,\"jain\":%.4f,"
	       "\"min_bytes\":%" PRIu64 ",\"p10_bytes\":%" PRIu64 ",\"median_bytes\":%" PRIu64
	       ",\"max_bytes\":%" PRIu64
	       ",\"starved\":%lu,\"errors\":%lu,\"first_error\":\"%s\"}\n",
	       !errors && tw && total > 0, self_cpu(), n, connected, tw ? tw - t0 : now_s() - t0,
	       span, total, all, span > 0 ? (double)total * 8 / span / 1e9 : 0, jain, w[0],
	       w[n / 10], w[n / 2], w[n - 1], starved, errors, err);
	return errors || !total;
}

/* ------------------------------------------------------------------ hold */

enum { H_NEW, H_CONNECTING, H_WAIT1, H_IDLE, H_WAIT2, H_DONE, H_FAILED };

struct hconn {
	int fd, state;
	uint32_t got;
};

struct hold {
	struct sockaddr_in addr;
	int ports, nsrc;
	struct in_addr src[16];
	int ep;
	struct hconn *c;
	unsigned long n, inflight, held, verified;
	unsigned long f_connect, f_reset, f_eof, f_bad, f_timeout, f_dropped;
	char first_err[160];
};

static const unsigned char *token(unsigned long i, int phase)
{
	return pat_at((uint64_t)i * 2 * TOKEN + (uint64_t)(phase - 1) * TOKEN);
}

static void h_fail(struct hold *h, unsigned long i, unsigned long *ctr, const char *what, int err)
{
	struct hconn *c = &h->c[i];
	(*ctr)++;
	if (!h->first_err[0])
		snprintf(h->first_err, sizeof(h->first_err), "conn %lu: %s%s%s", i, what,
			 err ? ": " : "", err ? strerror(err) : "");
	if (c->state == H_CONNECTING || c->state == H_WAIT1)
		h->inflight--;
	epoll_ctl(h->ep, EPOLL_CTL_DEL, c->fd, NULL);
	close_rst(c->fd);
	c->fd = -1;
	c->state = H_FAILED;
}

static void h_start(struct hold *h, unsigned long i)
{
	struct hconn *c = &h->c[i];
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0)
		die("socket: %s (raise ulimit -n)", strerror(errno));
	c->state = H_CONNECTING;
	h->inflight++;
	struct sockaddr_in a = h->addr;
	a.sin_port = htons((uint16_t)(ntohs(a.sin_port) + (int)(i % (unsigned long)h->ports)));
	if (h->nsrc) {
		/* The port is picked at connect, per 4-tuple, not at bind (which would cap it). */
		int one = 1;
		struct sockaddr_in s = {
			.sin_family = AF_INET,
			.sin_addr = h->src[(i / (unsigned long)h->ports) % (unsigned long)h->nsrc]};
		setsockopt(c->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
		if (bind(c->fd, (struct sockaddr *)&s, sizeof(s))) {
			h_fail(h, i, &h->f_connect, "bind", errno);
			return;
		}
	}
	if (connect(c->fd, (struct sockaddr *)&a, sizeof(a)) && errno != EINPROGRESS) {
		h_fail(h, i, &h->f_connect, "connect", errno);
		return;
	}
	struct epoll_event e = {.events = EPOLLOUT, .data.u64 = i};
	epoll_ctl(h->ep, EPOLL_CTL_ADD, c->fd, &e);
}

static void h_step(struct hold *h, unsigned long i)
{
	struct hconn *c = &h->c[i];
	unsigned char b[64];
	int err;
	socklen_t el = sizeof(err);

	if (c->state == H_NEW || c->state == H_FAILED)
		return;
	if (c->state == H_CONNECTING) {
		if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el) || err) {
			h_fail(h, i, &h->f_connect, "connect", err);
			return;
		}
		memcpy(b, "ECHO\n", 5);
		memcpy(b + 5, token(i, 1), TOKEN);
		if (send(c->fd, b, 5 + TOKEN, MSG_NOSIGNAL) != 5 + TOKEN) {
			h_fail(h, i, &h->f_reset, "send", errno);
			return;
		}
		c->state = H_WAIT1;
		c->got = 0;
		struct epoll_event e = {.events = EPOLLIN, .data.u64 = i};
		epoll_ctl(h->ep, EPOLL_CTL_MOD, c->fd, &e);
		return;
	}
	int phase = c->state == H_WAIT2 ? 2 : 1;
	ssize_t n = recv(c->fd, b, sizeof(b), 0);
	if (n < 0 && errno == EAGAIN)
		return;
	if (c->state == H_IDLE || c->state == H_DONE) {
		/* An idle connection must stay silent: data, EOF or reset means the path dropped it. */
		int was = c->state;
		h_fail(h, i, &h->f_dropped, n == 0 ? "EOF while idle" : "event while idle",
		       n < 0 ? errno : 0);
		if (was == H_IDLE)
			h->held--;
		else
			h->verified--;
		return;
	}
	if (n < 0) {
		h_fail(h, i, &h->f_reset, "recv", errno);
		return;
	}
	if (n == 0) {
		h_fail(h, i, &h->f_eof, "EOF before the echo", 0);
		return;
	}
	if (c->got + (uint32_t)n > TOKEN || memcmp(b, token(i, phase) + c->got, (size_t)n)) {
		h_fail(h, i, &h->f_bad, "wrong echo bytes", 0);
		return;
	}
	c->got += (uint32_t)n;
	if (c->got < TOKEN)
		return;
	if (phase == 1) {
		c->state = H_IDLE;
		h->inflight--;
		h->held++;
	} else {
		c->state = H_DONE;
		h->verified++;
	}
}

static void h_print(struct hold *h, const char *phase, double secs)
{
	printf("{\"phase\":\"%s\",\"ok\":%d,\"conns\":%lu,\"held\":%lu,\"verified\":%lu,"
	       "\"seconds\":%.3f,\"f_connect\":%lu,\"f_reset\":%lu,\"f_eof\":%lu,\"f_bad\":%lu,"
	       "\"f_timeout\":%lu,\"f_dropped\":%lu,\"first_error\":\"%s\"}\n",
	       phase,
	       strcmp(phase, "held") == 0 ? h->held == h->n
					  : h->verified == h->n && h->held == h->n,
	       h->n, h->held, h->verified, secs, h->f_connect, h->f_reset, h->f_eof, h->f_bad,
	       h->f_timeout, h->f_dropped, h->first_err);
	fflush(stdout);
}

static int cmd_hold(const char *host, int port, int ports, const char *srcs, unsigned long n,
		    unsigned long window, double timeout)
{
	struct hold h = {.addr = parse_addr(host, port), .n = n, .ports = ports};
	char *list = srcs ? strdup(srcs) : NULL, *save = NULL;
	for (char *t = list ? strtok_r(list, ",", &save) : NULL; t && h.nsrc < 16;
	     t = strtok_r(NULL, ",", &save))
		h.src[h.nsrc++] = parse_addr(t, 1).sin_addr;
	free(list);
	struct epoll_event ev[512];
	unsigned long next = 0;
	sigset_t ss;
	int sfd;
	double t0 = now_s(), t;

	sigemptyset(&ss);
	sigaddset(&ss, SIGUSR1);
	sigprocmask(SIG_BLOCK, &ss, NULL);
	sfd = signalfd(-1, &ss, SFD_CLOEXEC | SFD_NONBLOCK);
	h.c = calloc(n, sizeof(*h.c));
	h.ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event se = {.events = EPOLLIN, .data.u64 = UINT64_MAX};
	epoll_ctl(h.ep, EPOLL_CTL_ADD, sfd, &se);

	/* Phase 1: open all, at most window at a time, each echoing one token. */
	while (next < n || h.inflight > 0) {
		while (next < n && h.inflight < window)
			h_start(&h, next++);
		if (now_s() - t0 > timeout) {
			for (unsigned long i = 0; i < n; i++)
				if (h.c[i].state == H_CONNECTING || h.c[i].state == H_WAIT1)
					h_fail(&h, i, &h.f_timeout, "not echoed in time", 0);
			break;
		}
		int k = epoll_wait(h.ep, ev, 512, 100);
		for (int i = 0; i < k; i++)
			if (ev[i].data.u64 != UINT64_MAX)
				h_step(&h, ev[i].data.u64);
	}
	h_print(&h, "held", now_s() - t0);

	/* Hold: idle connections must stay silent until SIGUSR1. */
	for (bool go = false; !go;) {
		int k = epoll_wait(h.ep, ev, 512, -1);
		for (int i = 0; i < k; i++) {
			if (ev[i].data.u64 == UINT64_MAX) {
				struct signalfd_siginfo si;
				while (read(sfd, &si, sizeof(si)) == sizeof(si))
					go = true;
			} else {
				h_step(&h, ev[i].data.u64);
			}
		}
	}

	/* Phase 2: every held connection echoes a second token, all at once. */
	t = now_s();
	for (unsigned long i = 0; i < n; i++) {
		struct hconn *c = &h.c[i];
		if (c->state != H_IDLE)
			continue;
		c->state = H_WAIT2;
		c->got = 0;
		if (send(c->fd, token(i, 2), TOKEN, MSG_NOSIGNAL) != TOKEN)
			h_fail(&h, i, &h.f_reset, "send", errno);
	}
	while (h.verified + h.f_connect + h.f_reset + h.f_eof + h.f_bad + h.f_timeout +
		       h.f_dropped <
	       n) {
		if (now_s() - t > timeout) {
			for (unsigned long i = 0; i < n; i++)
				if (h.c[i].state == H_WAIT2)
					h_fail(&h, i, &h.f_timeout, "second echo not back in time",
					       0);
			break;
		}
		int k = epoll_wait(h.ep, ev, 512, 100);
		for (int i = 0; i < k; i++)
			if (ev[i].data.u64 != UINT64_MAX)
				h_step(&h, ev[i].data.u64);
	}
	h_print(&h, "verified", now_s() - t);
	for (unsigned long i = 0; i < n; i++)
		if (h.c[i].fd >= 0)
			close(h.c[i].fd);
	return h.verified == n ? 0 : 1;
}

/* ------------------------------------------------------------------ main */

static void usage(void)
{
	fprintf(stderr,
		"usage: ntbench serve --bind ADDR --port P [--ports K] [--threads T]\n"
		"       ntbench bulk --host H --port P --bytes N [--streams K] [--seconds S]"
		" [--timeout S]\n"
		"       ntbench rr --host H --port P [--conc C] [--seconds S | --count N]"
		" [--req B] [--resp B] [--timeout S]\n"
		"       ntbench ping --host H --port P --seconds S [--req B] [--resp B]"
		" [--timeout S]\n"
		"       ntbench flows --host H --port P --conns N --seconds S [--window W]"
		" [--timeout S]\n"
		"       ntbench hold --host H --port P --conns N [--ports K] [--src A,B,..]"
		" [--window W] [--timeout S]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	const char *host = "127.0.0.1", *bind_ip = "0.0.0.0", *srcs = NULL;
	int port = 0, ports = 1, threads = 2, streams = 1, conc = 1;
	unsigned long long bytes = 0, count = 0, conns = 0, window = 100;
	double seconds = 0, timeout = 30;
	unsigned req = 1024, resp = 1024;

	if (argc < 2)
		usage();
	for (int i = 2; i < argc; i++) {
		const char *k = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!v)
			usage();
		i++;
		if (!strcmp(k, "--host"))
			host = v;
		else if (!strcmp(k, "--bind"))
			bind_ip = v;
		else if (!strcmp(k, "--port"))
			port = atoi(v);
		else if (!strcmp(k, "--ports"))
			ports = atoi(v);
		else if (!strcmp(k, "--src"))
			srcs = v;
		else if (!strcmp(k, "--threads"))
			threads = atoi(v);
		else if (!strcmp(k, "--bytes"))
			bytes = strtoull(v, NULL, 0);
		else if (!strcmp(k, "--streams"))
			streams = atoi(v);
		else if (!strcmp(k, "--conc"))
			conc = atoi(v);
		else if (!strcmp(k, "--seconds"))
			seconds = atof(v);
		else if (!strcmp(k, "--count"))
			count = strtoull(v, NULL, 0);
		else if (!strcmp(k, "--req"))
			req = (unsigned)atoi(v);
		else if (!strcmp(k, "--resp"))
			resp = (unsigned)atoi(v);
		else if (!strcmp(k, "--conns"))
			conns = strtoull(v, NULL, 0);
		else if (!strcmp(k, "--window"))
			window = strtoull(v, NULL, 0);
		else if (!strcmp(k, "--timeout"))
			timeout = atof(v);
		else
			usage();
	}
	if (port <= 0 || port > 65535 || ports < 1 || ports > 64 || port + ports > 65536 ||
	    threads < 1 || streams < 1 || conc < 1 || window < 1 || req > CHUNK ||
	    resp > (1u << 30))
		usage();
	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IOLBF, 0);
	pat_init();
	if (!strcmp(argv[1], "serve"))
		return cmd_serve(bind_ip, port, ports, threads);
	if (!strcmp(argv[1], "bulk"))
		return bytes ? cmd_bulk(host, port, bytes, streams, seconds, timeout)
			     : (usage(), 2);
	if (!strcmp(argv[1], "ping"))
		return seconds > 0 ? cmd_ping(host, port, seconds, req, resp, timeout)
				   : (usage(), 2);
	if (!strcmp(argv[1], "flows"))
		return conns && seconds > 0 ? cmd_flows(host, port, conns, seconds, window, timeout)
					    : (usage(), 2);
	if (!strcmp(argv[1], "rr"))
		return seconds > 0 || count
			       ? cmd_rr(host, port, conc, seconds, count, req, resp, timeout)
			       : (usage(), 2);
	if (!strcmp(argv[1], "hold"))
		return conns ? cmd_hold(host, port, ports, srcs, conns, window, timeout)
			     : (usage(), 2);
	usage();
	return 2;
}
