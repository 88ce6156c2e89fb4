// SPDX-License-Identifier: MIT
/* Renders the registered counters and gauges as a Prometheus exposition, served by the http
 * module on a loopback TCP port. The Host header must name loopback, so a page in a local
 * browser cannot read the metrics through a DNS name rebound to 127.0.0.1; the http module
 * bounds request size, time and connections. */
#include "metrics.h"

#include <errno.h>
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

struct metrics {
	struct http *http;
	struct metric list[METRICS_MAX];
	size_t n;
};

/* The base name of a metric (before any label set), for HELP and TYPE lines. */
static size_t base_len(const char *name)
{
	const char *brace = strchr(name, '{');

	return brace ? (size_t)(brace - name) : strlen(name);
}

static int render(struct metrics *m, struct buf *out)
{
	char line[512];
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
	if (buf_append(out, buf_head(&body), buf_len(&body)) == 0)
		rv = 0;
out:
	buf_release(&body);
	return rv;
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
	} else if (render(m, &out) < 0) {
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
	http_route(m->http, "/metrics", on_scrape, m);
	http_route(m->http, "/", on_scrape, m);
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

void metrics_free(struct metrics *m)
{
	if (!m)
		return;
	http_free(m->http);
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
