// SPDX-License-Identifier: MIT
/* A tiny HTTP/1.0 responder for Prometheus scrapes: one request per connection, bounded
 * request size and time, the whole exposition rendered at once. Not a general HTTP server. */
#include "metrics.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "log.h"
#include "loop.h"
#include "sock.h"

#define METRICS_MAX	  128
#define METRICS_REQ_MAX	  4096
#define METRICS_DEADLINE  2000
#define METRICS_MAX_CONNS 16

struct metric {
	enum metrics_type type;
	const char *name, *help;
	const uint64_t *v;
	metrics_fn *fn;
	void *arg;
};

struct scrape {
	struct metrics *m;
	int fd;
	struct loop_io *io;
	struct loop_timer *deadline;
	struct buf in, out;
	struct scrape *next;
};

struct metrics {
	struct loop *loop;
	int lfd;
	struct loop_io *lio;
	struct metric list[METRICS_MAX];
	size_t n;
	struct scrape *scrapes;
	size_t nscrapes;
};

static void scrape_free(struct scrape *s)
{
	struct scrape **pp;

	for (pp = &s->m->scrapes; *pp; pp = &(*pp)->next) {
		if (*pp == s) {
			*pp = s->next;
			break;
		}
	}
	s->m->nscrapes--;
	loop_io_free(s->io);
	loop_timer_free(s->deadline);
	close(s->fd);
	buf_release(&s->in);
	buf_release(&s->out);
	free(s);
}

/* The base name of a metric (before any label set), for HELP and TYPE lines. */
static size_t base_len(const char *name)
{
	const char *brace = strchr(name, '{');

	return brace ? (size_t)(brace - name) : strlen(name);
}

static int render(struct metrics *m, struct buf *out)
{
	char body_hdr[160], line[512];
	struct buf body = BUF_INIT;
	int n, rv = -ENOMEM;

	for (size_t i = 0; i < m->n; i++) {
		const struct metric *x = &m->list[i];
		size_t bl = base_len(x->name);
		uint64_t v = x->fn ? x->fn(x->arg) : *x->v;
		bool first = i == 0 || base_len(m->list[i - 1].name) != bl ||
			     strncmp(m->list[i - 1].name, x->name, bl);

		if (first) {
			n = snprintf(line, sizeof(line), "# HELP %.*s %s\n# TYPE %.*s %s\n",
				     (int)bl, x->name, x->help, (int)bl, x->name,
				     x->type == METRICS_COUNTER ? "counter" : "gauge");
			if (buf_append(&body, line, (size_t)n) < 0)
				goto out;
		}
		n = snprintf(line, sizeof(line), "%s %llu\n", x->name, (unsigned long long)v);
		if (buf_append(&body, line, (size_t)n) < 0)
			goto out;
	}
	n = snprintf(body_hdr, sizeof(body_hdr),
		     "HTTP/1.0 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\n"
		     "Content-Length: %zu\r\nConnection: close\r\n\r\n",
		     buf_len(&body));
	if (buf_append(out, body_hdr, (size_t)n) == 0 &&
	    buf_append(out, buf_head(&body), buf_len(&body)) == 0)
		rv = 0;
out:
	buf_release(&body);
	return rv;
}

static void respond(struct scrape *s, const char *status)
{
	char hdr[160];
	int n;

	if (status) {
		n = snprintf(hdr, sizeof(hdr),
			     "HTTP/1.0 %s\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
			     status);
		buf_append(&s->out, hdr, (size_t)n);
	} else if (render(s->m, &s->out) < 0) {
		scrape_free(s);
		return;
	}
	loop_io_set(s->io, LOOP_WRITE);
}

static void scrape_io(struct loop_io *io, unsigned events, void *arg)
{
	struct scrape *s = arg;
	ssize_t n;

	if (buf_len(&s->out)) {
		n = write(s->fd, buf_head(&s->out), buf_len(&s->out));
		if (n < 0 && errno != EAGAIN) {
			scrape_free(s);
			return;
		}
		if (n > 0)
			buf_consume(&s->out, (size_t)n);
		if (buf_len(&s->out) == 0)
			scrape_free(s);
		return;
	}
	uint8_t *p = buf_reserve(&s->in, 1024);

	if (!p) {
		scrape_free(s);
		return;
	}
	n = read(s->fd, p, 1024);
	if (n <= 0) {
		if (n < 0 && errno == EAGAIN)
			return;
		scrape_free(s);
		return;
	}
	buf_commit(&s->in, (size_t)n);
	if (buf_len(&s->in) > METRICS_REQ_MAX) {
		respond(s, "431 Request Header Fields Too Large");
		return;
	}
	if (!memmem(buf_head(&s->in), buf_len(&s->in), "\r\n\r\n", 4) &&
	    !memmem(buf_head(&s->in), buf_len(&s->in), "\n\n", 2))
		return;
	if ((buf_len(&s->in) >= 13 && !memcmp(buf_head(&s->in), "GET /metrics ", 13)) ||
	    (buf_len(&s->in) >= 6 && !memcmp(buf_head(&s->in), "GET / ", 6)))
		respond(s, NULL);
	else
		respond(s, "404 Not Found");
}

static void scrape_timeout(struct loop_timer *t, void *arg)
{
	scrape_free(arg);
}

static void on_accept(struct loop_io *io, unsigned events, void *arg)
{
	struct metrics *m = arg;
	struct scrape *s;
	int fd;

	while ((fd = sock_accept(m->lfd, NULL, NULL)) >= 0) {
		if (m->nscrapes >= METRICS_MAX_CONNS) {
			close(fd);
			continue;
		}
		s = calloc(1, sizeof(*s));
		if (!s) {
			close(fd);
			continue;
		}
		s->m = m;
		s->fd = fd;
		buf_init(&s->in);
		buf_init(&s->out);
		s->io = loop_io_new(m->loop, fd, scrape_io, s);
		s->deadline = loop_timer_new(m->loop, scrape_timeout, s);
		s->next = m->scrapes;
		m->scrapes = s;
		m->nscrapes++;
		if (!s->io || !s->deadline) {
			scrape_free(s);
			continue;
		}
		loop_timer_arm(s->deadline, METRICS_DEADLINE);
		loop_io_set(s->io, LOOP_READ);
	}
}

struct metrics *metrics_new(struct loop *l, const char *addr, char *err, size_t errsz)
{
	struct metrics *m;
	uint32_t a;
	uint16_t port;
	int rv = sock_resolve(addr, &a, &port);

	if (rv < 0) {
		snprintf(err, errsz, "metrics address '%s': %s", addr, strerror(-rv));
		return NULL;
	}
	if ((a >> 24) != 127) {
		snprintf(err, errsz, "metrics address '%s' is not a loopback address", addr);
		return NULL;
	}
	m = calloc(1, sizeof(*m));
	if (!m) {
		snprintf(err, errsz, "out of memory");
		return NULL;
	}
	m->loop = l;
	m->lfd = sock_listen(a, port, 16);
	if (m->lfd < 0) {
		snprintf(err, errsz, "metrics listen on %s: %s", addr, strerror(-m->lfd));
		free(m);
		return NULL;
	}
	m->lio = loop_io_new(l, m->lfd, on_accept, m);
	if (!m->lio) {
		close(m->lfd);
		free(m);
		snprintf(err, errsz, "out of memory");
		return NULL;
	}
	loop_io_set(m->lio, LOOP_READ);
	log_info("metrics on http://%s/metrics", addr);
	return m;
}

void metrics_free(struct metrics *m)
{
	if (!m)
		return;
	while (m->scrapes)
		scrape_free(m->scrapes);
	loop_io_free(m->lio);
	close(m->lfd);
	free(m);
}

static void add(struct metrics *m, enum metrics_type type, const char *name, const char *help,
		const uint64_t *v, metrics_fn *fn, void *arg)
{
	if (!m || m->n >= METRICS_MAX)
		return;
	m->list[m->n++] = (struct metric){type, name, help, v, fn, arg};
}

void metrics_add(struct metrics *m, enum metrics_type type, const char *name, const char *help,
		 const uint64_t *v)
{
	add(m, type, name, help, v, NULL, NULL);
}

void metrics_add_fn(struct metrics *m, enum metrics_type type, const char *name, const char *help,
		    metrics_fn *fn, void *arg)
{
	add(m, type, name, help, NULL, fn, arg);
}
