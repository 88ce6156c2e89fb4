// SPDX-License-Identifier: MIT
/* A tiny HTTP/1.0 responder for Prometheus scrapes: one request per connection, bounded
 * request size and time, the whole exposition rendered at once. Not a general HTTP server.
 * The Host header must name loopback, so a page in a local browser cannot read the metrics
 * through a DNS name rebound to 127.0.0.1. When every slot is taken, the oldest connection
 * still sending its request gives its slot up: slow clients cannot lock scrapes out. */
#include "metrics.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "buf.h"
#include "log.h"
#include "loop.h"
#include "route.h"
#include "sock.h"

#define METRICS_MAX	  128
#define METRICS_REQ_MAX	  4096
#define METRICS_DEADLINE  2000 /* ms from accept to the whole request; slowloris ends here */
#define METRICS_MAX_CONNS 16

enum { REFUSED_HOST, REFUSED_TIMEOUT, REFUSED_BUSY, REFUSED_N };

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

/* A vec's row: its label values and one counter per series. Allocated as one piece: the
 * counters, then the values' bytes. */
struct vec_row {
	struct vec_row *hnext; /* in its hash bucket */
	struct vec_row *next;  /* in the order rows were made */
	uint32_t hash;
	const char *val[METRICS_VEC_LABELS];
	uint64_t v[];
};

#define VEC_BUCKETS 256

struct metrics_vec {
	struct metrics_vec *next;
	const char *const *labels;
	size_t nlabels;
	const struct metrics_series *series;
	size_t nseries;
	struct vec_row *bucket[VEC_BUCKETS];
	struct vec_row *rows, **tail;
	size_t nrows;
	struct vec_row *other; /* every label "other": rows past METRICS_VEC_ROWS */
	bool other_used;
};

#define HIST_MAX 32

struct metrics_hist {
	struct metrics_hist *next;
	const char *name, *help;
	const uint32_t *bounds; /* ms */
	size_t n;
	uint64_t count, sum_ms;
	uint64_t bucket[HIST_MAX + 1]; /* not cumulative; the last is above every bound */
};

struct metrics {
	struct loop *loop;
	int lfd;
	struct loop_io *lio;
	struct metric list[METRICS_MAX];
	size_t n;
	struct metrics_vec *vecs;   /* in the order they were made */
	struct metrics_hist *hists; /* likewise */
	struct scrape *scrapes;	    /* newest first */
	size_t nscrapes;
	uint64_t refused[REFUSED_N];
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
	char body_hdr[160];
	struct buf body = BUF_INIT;
	int n, rv = -ENOMEM;

	if (metrics_render(m, &body) < 0)
		goto out;
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

/* Queues the answer (status, or the exposition when NULL). -1 if s was freed instead. */
static int respond(struct scrape *s, const char *status)
{
	char hdr[160];
	int n, rv;

	if (status) {
		n = snprintf(hdr, sizeof(hdr),
			     "HTTP/1.0 %s\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
			     status);
		rv = buf_append(&s->out, hdr, (size_t)n);
	} else {
		rv = render(s->m, &s->out);
	}
	if (rv < 0) {
		scrape_free(s);
		return -1;
	}
	loop_io_set(s->io, LOOP_WRITE);
	return 1;
}

bool metrics_host_allowed(const char *value, size_t len)
{
	const char *colon = NULL;
	char host[16];
	struct cidr c;
	size_t hl;

	/* The port, if any, follows the last ':' outside brackets. */
	for (size_t i = len; i-- > 0 && value[i] != ']';) {
		if (value[i] == ':') {
			colon = value + i;
			break;
		}
	}
	hl = colon ? (size_t)(colon - value) : len;
	if (colon) {
		size_t pl = len - hl - 1;
		unsigned port = 0;

		if (pl == 0 || pl > 5)
			return false;
		for (size_t i = 1; i <= pl; i++) {
			if (colon[i] < '0' || colon[i] > '9')
				return false;
			port = port * 10 + (unsigned)(colon[i] - '0');
		}
		if (port == 0 || port > 65535)
			return false;
	}
	if ((hl == 9 && !strncasecmp(value, "localhost", 9)) ||
	    (hl == 5 && !memcmp(value, "[::1]", 5)))
		return true;
	if (hl >= sizeof(host) || memchr(value, '\0', hl))
		return false;
	memcpy(host, value, hl);
	host[hl] = '\0';
	return cidr_parse(host, &c) == 0 && c.len == 32 && (c.addr >> 24) == 127;
}

enum metrics_verdict metrics_request_check(const char *head, size_t len)
{
	const char *end = head + len, *line, *eol, *host = NULL;
	size_t hosts = 0, host_len = 0;
	bool found;

	eol = memchr(head, '\n', len);
	if (!eol)
		return METRICS_BAD_HOST;
	found = (len >= 13 && !memcmp(head, "GET /metrics ", 13)) ||
		(len >= 6 && !memcmp(head, "GET / ", 6));
	for (line = eol + 1; line < end; line = eol + 1) {
		const char *v;

		eol = memchr(line, '\n', (size_t)(end - line));
		if (!eol)
			eol = end;
		if (eol == line || (eol - line == 1 && line[0] == '\r'))
			break; /* the end of the head */
		if (line[0] == ' ' || line[0] == '\t')
			return METRICS_BAD_HOST; /* obsolete line folding: refuse, don't guess */
		if (eol - line < 5 || strncasecmp(line, "host:", 5))
			continue;
		hosts++;
		for (v = line + 5; v < eol && (*v == ' ' || *v == '\t'); v++)
			;
		host = v;
		for (v = eol; v > host && (v[-1] == '\r' || v[-1] == ' ' || v[-1] == '\t'); v--)
			;
		host_len = (size_t)(v - host);
	}
	if (hosts != 1 || !metrics_host_allowed(host, host_len))
		return METRICS_BAD_HOST;
	return found ? METRICS_SERVE : METRICS_NOT_FOUND;
}

/* Reads what the client has sent and answers once the request is whole. Returns -1 if s was
 * freed (the client left, or out of memory), 1 if an answer is on its way, 0 if the request is
 * still incomplete. */
static int scrape_read(struct scrape *s)
{
	ssize_t n;

	for (;;) {
		uint8_t *p = buf_reserve(&s->in, 1024);

		if (!p) {
			scrape_free(s);
			return -1;
		}
		n = read(s->fd, p, 1024);
		if (n < 0 && errno == EAGAIN)
			return 0;
		if (n <= 0) {
			scrape_free(s);
			return -1;
		}
		buf_commit(&s->in, (size_t)n);
		if (buf_len(&s->in) > METRICS_REQ_MAX)
			return respond(s, "431 Request Header Fields Too Large");
		if (!memmem(buf_head(&s->in), buf_len(&s->in), "\r\n\r\n", 4) &&
		    !memmem(buf_head(&s->in), buf_len(&s->in), "\n\n", 2))
			continue;
		switch (metrics_request_check((const char *)buf_head(&s->in), buf_len(&s->in))) {
		case METRICS_SERVE:
			return respond(s, NULL);
		case METRICS_NOT_FOUND:
			return respond(s, "404 Not Found");
		case METRICS_BAD_HOST:
			break;
		}
		s->m->refused[REFUSED_HOST]++;
		return respond(s, "403 Forbidden");
	}
}

static void scrape_io(struct loop_io *io, unsigned events, void *arg)
{
	struct scrape *s = arg;
	ssize_t n;

	if (!buf_len(&s->out)) {
		scrape_read(s);
		return;
	}
	n = write(s->fd, buf_head(&s->out), buf_len(&s->out));
	if (n < 0 && errno != EAGAIN) {
		scrape_free(s);
		return;
	}
	if (n > 0)
		buf_consume(&s->out, (size_t)n);
	if (buf_len(&s->out) == 0)
		scrape_free(s);
}

static void scrape_timeout(struct loop_timer *t, void *arg)
{
	struct scrape *s = arg;

	if (!buf_len(&s->out))
		s->m->refused[REFUSED_TIMEOUT]++;
	scrape_free(s);
}

/* All slots taken: one connection still sending its request makes room. Each is read first,
 * so one whose request has arrived is answered rather than evicted. Then the oldest with a
 * partial request goes (a slowloris sends its request a little at a time; a scraper sends it
 * whole), else the oldest that sent nothing yet. False if every connection is being answered
 * (then the newcomer is turned away). */
static bool evict_one(struct metrics *m)
{
	struct scrape *s, *next, *partial = NULL, *silent = NULL;

	for (s = m->scrapes; s; s = next) {
		next = s->next;
		if (!buf_len(&s->out))
			scrape_read(s); /* may free s */
	}
	if (m->nscrapes < METRICS_MAX_CONNS)
		return true;
	for (s = m->scrapes; s; s = s->next) { /* newest first: the last match is the oldest */
		if (buf_len(&s->out))
			continue;
		if (buf_len(&s->in))
			partial = s;
		else
			silent = s;
	}
	if (!partial && !silent)
		return false;
	m->refused[REFUSED_BUSY]++;
	scrape_free(partial ? partial : silent);
	return true;
}

static void on_accept(struct loop_io *io, unsigned events, void *arg)
{
	struct metrics *m = arg;
	struct scrape *s;
	int fd;

	while ((fd = sock_accept(m->lfd, NULL, NULL)) >= 0) {
		if (m->nscrapes >= METRICS_MAX_CONNS && !evict_one(m)) {
			m->refused[REFUSED_BUSY]++;
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
		/* A scraper's request is usually here already: answer it at once. */
		scrape_read(s);
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
	{
		static const char *const names[REFUSED_N] = {
			"ntun_metrics_refused_total{reason=\"host\"}",
			"ntun_metrics_refused_total{reason=\"timeout\"}",
			"ntun_metrics_refused_total{reason=\"busy\"}",
		};

		for (int i = 0; i < REFUSED_N; i++)
			metrics_add(m, METRICS_COUNTER, names[i],
				    "metrics requests refused: Host not loopback, request not "
				    "complete in time, or slot given to a newer connection",
				    &m->refused[i]);
	}
	log_info("metrics on http://%s/metrics", addr);
	return m;
}

static void registry_release(struct metrics *m);

void metrics_free(struct metrics *m)
{
	if (!m)
		return;
	while (m->scrapes)
		scrape_free(m->scrapes);
	loop_io_free(m->lio);
	if (m->lfd >= 0)
		close(m->lfd);
	registry_release(m);
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

/* ---- the registry: vecs, histograms, and the exposition ---- */

/* Appends printf output to b. 0 or -ENOMEM. */
static int __attribute__((format(printf, 2, 3))) bprintf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	uint8_t *p;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || !(p = buf_reserve(b, (size_t)n + 1)))
		return -ENOMEM;
	va_start(ap, fmt);
	vsnprintf((char *)p, (size_t)n + 1, fmt, ap);
	va_end(ap);
	buf_commit(b, (size_t)n);
	return 0;
}

/* A label value as the text format wants it inside quotes: \, " and newline escaped. */
static int append_label_value(struct buf *b, const char *v)
{
	for (const char *p = v; *p; p++) {
		const char *esc = *p == '\\'   ? "\\\\"
				  : *p == '"'  ? "\\\""
				  : *p == '\n' ? "\\n"
					       : NULL;
		int rv = esc ? buf_append(b, esc, 2) : buf_append(b, p, 1);

		if (rv < 0)
			return rv;
	}
	return 0;
}

static int append_help_type(struct buf *b, const char *name, size_t len, const char *help,
			    const char *type)
{
	return bprintf(b, "# HELP %.*s %s\n# TYPE %.*s %s\n", (int)len, name, help, (int)len, name,
		       type);
}

static const char *type_name(enum metrics_type t)
{
	return t == METRICS_COUNTER ? "counter" : "gauge";
}

static int render_row(const struct metrics_vec *v, size_t s, const struct vec_row *r, struct buf *b)
{
	if (bprintf(b, "%s{", v->series[s].name))
		return -ENOMEM;
	for (size_t l = 0; l < v->nlabels; l++) {
		if (bprintf(b, "%s%s=\"", l ? "," : "", v->labels[l]) ||
		    append_label_value(b, r->val[l]) || buf_append(b, "\"", 1))
			return -ENOMEM;
	}
	return bprintf(b, "} %llu\n", (unsigned long long)r->v[s]);
}

static int render_vec(const struct metrics_vec *v, struct buf *b)
{
	for (size_t s = 0; s < v->nseries; s++) {
		const struct metrics_series *se = &v->series[s];

		if (append_help_type(b, se->name, strlen(se->name), se->help, type_name(se->type)))
			return -ENOMEM;
		for (const struct vec_row *r = v->rows; r; r = r->next)
			if (render_row(v, s, r, b))
				return -ENOMEM;
		if (v->other_used && render_row(v, s, v->other, b))
			return -ENOMEM;
	}
	return 0;
}

static int render_hist(const struct metrics_hist *h, struct buf *b)
{
	uint64_t cum = 0;

	if (append_help_type(b, h->name, strlen(h->name), h->help, "histogram"))
		return -ENOMEM;
	for (size_t i = 0; i < h->n; i++) {
		cum += h->bucket[i];
		if (bprintf(b, "%s_bucket{le=\"%g\"} %llu\n", h->name, h->bounds[i] / 1000.0,
			    (unsigned long long)cum))
			return -ENOMEM;
	}
	if (bprintf(b, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %llu.%03llu\n%s_count %llu\n", h->name,
		    (unsigned long long)h->count, h->name, (unsigned long long)(h->sum_ms / 1000),
		    (unsigned long long)(h->sum_ms % 1000), h->name, (unsigned long long)h->count))
		return -ENOMEM;
	return 0;
}

int metrics_render(struct metrics *m, struct buf *b)
{
	for (size_t i = 0; i < m->n; i++) {
		const struct metric *x = &m->list[i];
		size_t bl = base_len(x->name);
		uint64_t v = x->fn ? x->fn(x->arg) : *x->v;
		bool first = i == 0 || base_len(m->list[i - 1].name) != bl ||
			     strncmp(m->list[i - 1].name, x->name, bl);

		if (first && append_help_type(b, x->name, bl, x->help, type_name(x->type)))
			return -ENOMEM;
		if (bprintf(b, "%s %llu\n", x->name, (unsigned long long)v))
			return -ENOMEM;
	}
	for (const struct metrics_vec *v = m->vecs; v; v = v->next)
		if (render_vec(v, b))
			return -ENOMEM;
	for (const struct metrics_hist *h = m->hists; h; h = h->next)
		if (render_hist(h, b))
			return -ENOMEM;
	return 0;
}

/* A row for values (already cut to their kept length), or NULL if out of memory. */
static struct vec_row *row_new(const struct metrics_vec *v, const char *const *values,
			       const size_t *len, uint32_t hash)
{
	size_t size = sizeof(struct vec_row) + v->nseries * sizeof(uint64_t), off;
	struct vec_row *r;

	for (size_t l = 0; l < v->nlabels; l++)
		size += len[l] + 1;
	r = calloc(1, size);
	if (!r)
		return NULL;
	r->hash = hash;
	off = sizeof(struct vec_row) + v->nseries * sizeof(uint64_t);
	for (size_t l = 0; l < v->nlabels; l++) {
		char *dst = (char *)r + off;

		memcpy(dst, values[l], len[l]);
		dst[len[l]] = '\0';
		r->val[l] = dst;
		off += len[l] + 1;
	}
	return r;
}

struct metrics_vec *metrics_vec_new(struct metrics *m, const char *const *labels, size_t nlabels,
				    const struct metrics_series *series, size_t nseries)
{
	static const char *const other[METRICS_VEC_LABELS] = {"other", "other", "other", "other"};
	static const size_t other_len[METRICS_VEC_LABELS] = {5, 5, 5, 5};
	struct metrics_vec *v, **pp;

	if (!m || !nlabels || nlabels > METRICS_VEC_LABELS || !nseries ||
	    nseries > METRICS_VEC_SERIES)
		return NULL;
	v = calloc(1, sizeof(*v));
	if (!v)
		return NULL;
	v->labels = labels;
	v->nlabels = nlabels;
	v->series = series;
	v->nseries = nseries;
	v->tail = &v->rows;
	v->other = row_new(v, other, other_len, 0);
	if (!v->other) {
		free(v);
		return NULL;
	}
	for (pp = &m->vecs; *pp; pp = &(*pp)->next)
		;
	*pp = v;
	return v;
}

uint64_t *metrics_vec_row(struct metrics_vec *v, const char *const *values)
{
	static uint64_t scratch[METRICS_VEC_SERIES];
	size_t len[METRICS_VEC_LABELS];
	uint32_t h = 2166136261u; /* FNV-1a over the values, each ended by 0xff */
	struct vec_row *r;
	size_t l;

	if (!v)
		return scratch;
	for (l = 0; l < v->nlabels; l++) {
		len[l] = strnlen(values[l], METRICS_LABEL_MAX);
		for (size_t i = 0; i <= len[l]; i++)
			h = (h ^ (i < len[l] ? (uint8_t)values[l][i] : 0xffu)) * 16777619u;
	}
	for (r = v->bucket[h % VEC_BUCKETS]; r; r = r->hnext) {
		if (r->hash != h)
			continue;
		for (l = 0; l < v->nlabels; l++)
			if (strncmp(r->val[l], values[l], len[l]) || r->val[l][len[l]])
				break;
		if (l == v->nlabels)
			return r->v;
	}
	if (v->nrows >= METRICS_VEC_ROWS || !(r = row_new(v, values, len, h))) {
		v->other_used = true;
		return v->other->v;
	}
	r->hnext = v->bucket[h % VEC_BUCKETS];
	v->bucket[h % VEC_BUCKETS] = r;
	*v->tail = r;
	v->tail = &r->next;
	v->nrows++;
	return r->v;
}

struct metrics_hist *metrics_hist_new(struct metrics *m, const char *name, const char *help,
				      const uint32_t *bounds_ms, size_t n)
{
	struct metrics_hist *h, **pp;

	if (!m || n > HIST_MAX)
		return NULL;
	h = calloc(1, sizeof(*h));
	if (!h)
		return NULL;
	h->name = name;
	h->help = help;
	h->bounds = bounds_ms;
	h->n = n;
	for (pp = &m->hists; *pp; pp = &(*pp)->next)
		;
	*pp = h;
	return h;
}

void metrics_hist_observe(struct metrics_hist *h, uint64_t ms)
{
	size_t i;

	if (!h)
		return;
	for (i = 0; i < h->n && ms > h->bounds[i]; i++)
		;
	h->bucket[i]++;
	h->count++;
	h->sum_ms += ms;
}

struct metrics *metrics_registry_new(void)
{
	struct metrics *m = calloc(1, sizeof(*m));

	if (m)
		m->lfd = -1;
	return m;
}

static void registry_release(struct metrics *m)
{
	while (m->vecs) {
		struct metrics_vec *v = m->vecs;

		m->vecs = v->next;
		while (v->rows) {
			struct vec_row *r = v->rows;

			v->rows = r->next;
			free(r);
		}
		free(v->other);
		free(v);
	}
	while (m->hists) {
		struct metrics_hist *h = m->hists;

		m->hists = h->next;
		free(h);
	}
}
