// SPDX-License-Identifier: MIT
/* Renders the registered counters and gauges as a Prometheus exposition, served by the http
 * module on a loopback TCP port. The Host header must name loopback, so a page in a local
 * browser cannot read the metrics through a DNS name rebound to 127.0.0.1; the http module
 * bounds request size, time and connections. */
#include "metrics.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "buf.h"
#include "http.h"
#include "log.h"
#include "route.h"

#define METRICS_MAX	  128
#define METRICS_REQ_MAX	  4096
#define METRICS_DEADLINE  2000 /* ms from accept to the whole request; slowloris ends here */
#define METRICS_MAX_CONNS 16

struct metric {
	enum metrics_type type;
	const char *name, *help;
	const uint64_t *v;
	metrics_fn *fn;
	void *arg;
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
	struct http *http;
	struct metric list[METRICS_MAX];
	size_t n;
	struct metrics_vec *vecs;   /* in the order they were made */
	struct metrics_hist *hists; /* likewise */
};

/* The base name of a metric (before any label set), for HELP and TYPE lines. */
static size_t base_len(const char *name)
{
	const char *brace = strchr(name, '{');

	return brace ? (size_t)(brace - name) : strlen(name);
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

static void on_scrape(struct http_req *r, const char *path, void *arg)
{
	struct metrics *m = arg;
	struct buf out = BUF_INIT;

	if (http_req_method(r) != HTTP_GET) {
		http_reply(r, 404, NULL, NULL, 0);
	} else if (metrics_render(m, &out) < 0) {
		http_reply(r, 500, NULL, NULL, 0);
	} else {
		http_reply(r, 200, "text/plain; version=0.0.4", buf_head(&out), buf_len(&out));
	}
	buf_release(&out);
}

struct metrics *metrics_new(struct loop *l, const char *addr, char *err, size_t errsz)
{
	struct http_opts o = {
		.max_header = METRICS_REQ_MAX,
		.deadline_ms = METRICS_DEADLINE,
		.max_conns = METRICS_MAX_CONNS,
		.host_ok = metrics_host_allowed,
	};
	const struct http_stats *st;
	struct metrics *m;
	char why[300];

	m = calloc(1, sizeof(*m));
	if (!m) {
		snprintf(err, errsz, "out of memory");
		return NULL;
	}
	m->http = http_new(l, addr, &o, why, sizeof(why));
	if (!m->http) {
		snprintf(err, errsz, "metrics: %s", why);
		free(m);
		return NULL;
	}
	/* "/" is the status page's (status.c). */
	http_route(m->http, "/metrics", on_scrape, m);
	st = http_stats(m->http);
	{
		static const char help[] =
			"metrics requests refused: Host not loopback, request not "
			"complete in time, or slot given to a newer connection";

		metrics_add(m, METRICS_COUNTER, "ntun_metrics_refused_total{reason=\"host\"}", help,
			    &st->refused_host);
		metrics_add(m, METRICS_COUNTER, "ntun_metrics_refused_total{reason=\"timeout\"}",
			    help, &st->refused_timeout);
		metrics_add(m, METRICS_COUNTER, "ntun_metrics_refused_total{reason=\"busy\"}", help,
			    &st->refused_busy);
	}
	log_info("metrics on http://%s/metrics", addr);
	return m;
}

struct http *metrics_http(struct metrics *m)
{
	return m ? m->http : NULL;
}

static void registry_release(struct metrics *m);

void metrics_free(struct metrics *m)
{
	if (!m)
		return;
	http_free(m->http);
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
	return calloc(1, sizeof(struct metrics));
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
