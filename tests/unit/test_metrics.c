// SPDX-License-Identifier: MIT
/* metrics: which Host values name loopback, and what a request gets over the socket
 * (exposition, 404, or 403 for a missing, repeated, folded or foreign Host); the exposition of
 * labelled metrics (escaping, the cap on label sets) and histograms, checked as text and by
 * Prometheus' own Python parser (prom_parse.py). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "check.h"
#include "httpc.h"
#include "metrics.h"

static bool host_ok(const char *v)
{
	return metrics_host_allowed(v, strlen(v));
}

static void test_host(void)
{
	CHECK(host_ok("localhost"));
	CHECK(host_ok("LocalHost:9100"));
	CHECK(host_ok("127.0.0.1"));
	CHECK(host_ok("127.0.0.1:9100"));
	CHECK(host_ok("127.255.3.4:1"));
	CHECK(host_ok("127.0.0.1:65535"));
	CHECK(host_ok("[::1]"));
	CHECK(host_ok("[::1]:9100"));

	CHECK(!host_ok(""));
	CHECK(!host_ok("evil.example"));
	CHECK(!host_ok("evil.example:9100"));
	CHECK(!host_ok("localhost.evil.example"));
	CHECK(!host_ok("localhost."));
	CHECK(!host_ok("localhostx"));
	CHECK(!host_ok("127.0.0.1.nip.io"));
	CHECK(!host_ok("128.0.0.1"));
	CHECK(!host_ok("10.0.0.1:9100"));
	CHECK(!host_ok("0.0.0.0"));
	CHECK(!host_ok("127.0.0.01")); /* leading zero: octal to some parsers */
	CHECK(!host_ok("127.1"));      /* short forms are not dotted quads */
	CHECK(!host_ok("2130706433")); /* 127.0.0.1 as one number */
	CHECK(!host_ok("127.0.0.1:")); /* empty port */
	CHECK(!host_ok("127.0.0.1:0"));
	CHECK(!host_ok("127.0.0.1:65536"));
	CHECK(!host_ok("127.0.0.1:123456"));
	CHECK(!host_ok("127.0.0.1:91a0"));
	CHECK(!host_ok("127.0.0.1:9100:80"));
	CHECK(!host_ok("::1"));
	CHECK(!host_ok("[::1"));
	CHECK(!host_ok("[::2]:9100"));
	CHECK(!host_ok("[::ffff:127.0.0.1]"));
	CHECK(!host_ok("localhost:9100 "));
	CHECK(!host_ok("user@localhost"));
	/* A NUL inside the value does not end it. */
	CHECK(!metrics_host_allowed("127.0.0.5\0\nH", 12));
	CHECK(!metrics_host_allowed("localhost\0", 10));
	/* Only len bytes count: what follows is not part of the value. */
	CHECK(metrics_host_allowed("localhost.evil", 9));
	CHECK(!metrics_host_allowed("127.0.0.1", 8));
}

static char addr[32];

/* The status of one request to the metrics port; the body in last_body. */
static char last_body[4096];
static int req(const char *head)
{
	return httpc_do(addr, head, strlen(head), last_body, sizeof(last_body), NULL);
}

static void *client_requests(void *arg)
{
	CHECK_INT_EQ(req("GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:9100\r\n\r\n"), 200);
	CHECK_STR_CONTAINS(last_body, "# TYPE ntun_test_total counter\nntun_test_total 42\n");
	/* "/" is the status page's (status.c), not served by metrics alone */
	CHECK_INT_EQ(req("GET / HTTP/1.0\r\nhost:localhost\r\n\r\n"), 404);
	CHECK_INT_EQ(req("GET /metrics HTTP/1.1\r\nUser-Agent: x\r\nHOST:  [::1]:9100 \t\r\n"
			 "Accept: */*\r\n\r\n"),
		     200);
	CHECK_INT_EQ(req("GET /metrics HTTP/1.1\nHost: localhost\n\n"), 200);
	CHECK_INT_EQ(req("GET /nope HTTP/1.1\r\nHost: localhost\r\n\r\n"), 404);
	CHECK_INT_EQ(req("POST /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n"), 404);

	/* DNS rebinding: the browser sends the attacker's name. Nothing leaks. */
	CHECK_INT_EQ(req("GET /metrics HTTP/1.1\r\nHost: evil.example\r\n\r\n"), 403);
	CHECK_STR_EQ(last_body, "");
	CHECK_INT_EQ(req("GET /metrics HTTP/1.1\r\nHost: evil.example:9100\r\n\r\n"), 403);
	/* A foreign Host is refused before the path is looked at. */
	CHECK_INT_EQ(req("GET /nope HTTP/1.1\r\nHost: evil.example\r\n\r\n"), 403);
	CHECK_INT_EQ(req("GET /metrics HTTP/1.0\r\n\r\n"), 403);
	CHECK_INT_EQ(req("GET /metrics HTTP/1.1\r\nHost:\r\n\r\n"), 403);
	CHECK_INT_EQ(req("GET /metrics HTTP/1.1\r\nHost: localhost\r\nHost: evil.example\r\n\r\n"),
		     403);
	CHECK_INT_EQ(req("GET /metrics HTTP/1.1\r\nHost: localhost\r\nHost: localhost\r\n\r\n"),
		     403);
	/* Obsolete line folding: the folded value is not a loopback name. */
	CHECK_INT_EQ(req("GET /metrics HTTP/1.1\r\nHost: localhost\r\n .evil.example\r\n\r\n"),
		     403);
	CHECK_INT_EQ(req("GET /metrics HTTP/1.1\r\nX-Host: localhost\r\n\r\n"), 403);
	/* Bytes after the blank line are not headers. */
	CHECK_INT_EQ(req("GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n"
			 "Host: evil.example\r\n"),
		     200);
	CHECK_INT_EQ(req("GET /metrics HTTP/1.0\r\n\r\nHost: localhost\r\n"), 403);
	/* The refusals are counted in the exposition itself. */
	CHECK_INT_EQ(req("GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n"), 200);
	CHECK_STR_CONTAINS(last_body, "ntun_metrics_refused_total{reason=\"host\"} 10\n");
	return NULL;
}

static void test_request(void)
{
	struct loop *l = loop_new();
	struct metrics *m = NULL;
	uint64_t v = 42;
	char err[256];

	/* A free port near one derived from our pid. */
	for (int i = 0; i < 50 && !m; i++) {
		snprintf(addr, sizeof(addr), "127.0.0.1:%d",
			 20000 + (getpid() * 7 + i * 131) % 30000);
		m = metrics_new(l, addr, err, sizeof(err));
	}
	CHECK(m);
	if (!m)
		return;
	CHECK(metrics_http(m) != NULL);
	metrics_add(m, METRICS_COUNTER, "ntun_test_total", "a test counter", &v);
	httpc_run(l, client_requests, NULL);
	metrics_free(m);
	loop_free(l);
}

/* The exposition of m as a NUL-terminated string (malloc'd). */
static char *render(struct metrics *m)
{
	struct buf b = BUF_INIT;
	char *s;

	CHECK_INT_EQ(metrics_render(m, &b), 0);
	s = calloc(1, buf_len(&b) + 1);
	memcpy(s, buf_head(&b), buf_len(&b));
	buf_release(&b);
	return s;
}

/* Feeds text to Prometheus' parser; returns what it read back, one "name{labels} value" per
 * sample (labels sorted), or NULL if it refused the text. */
static char *parse(const char *text)
{
	char path[] = "/tmp/test_metrics.XXXXXX", cmd[128], *out = calloc(1, 1 << 20);
	int fd = mkstemp(path);
	size_t n = 0, r;
	FILE *f;
	int rv;

	CHECK(fd >= 0);
	CHECK_INT_EQ(write(fd, text, strlen(text)), (long long)strlen(text));
	close(fd);
	snprintf(cmd, sizeof(cmd), "/usr/bin/python3 prom_parse.py < %s", path);
	f = popen(cmd, "r");
	while (f && (r = fread(out + n, 1, (1 << 20) - 1 - n, f)) > 0)
		n += r;
	rv = f ? pclose(f) : -1;
	unlink(path);
	if (rv != 0) {
		free(out);
		return NULL;
	}
	return out;
}

static const uint32_t bounds[] = {1, 5, 250, 1000};

static void test_exposition(void)
{
	static const char *const labels[] = {"route", "proxy"};
	static const struct metrics_series series[] = {
		{METRICS_COUNTER, "ntun_x_bytes_total", "bytes"},
		{METRICS_GAUGE, "ntun_x_open", "open now"},
	};
	static const uint64_t one = 7;
	struct metrics *m = metrics_registry_new();
	struct metrics_vec *v = metrics_vec_new(m, labels, 2, series, 2);
	struct metrics_hist *h = metrics_hist_new(m, "ntun_x_seconds", "how long", bounds, 4);
	uint64_t *a, *b;
	char *text, *parsed, long_id[400], id[32];

	CHECK(m && v && h);
	metrics_add(m, METRICS_COUNTER, "ntun_plain_total", "plain", &one);
	a = metrics_vec_row(v, (const char *const[]){"10.1.0.0/16", "site-a"});
	a[0] += 100;
	a[1]++;
	/* Same values: same row. Quote, backslash and newline are escaped. */
	CHECK(metrics_vec_row(v, (const char *const[]){"10.1.0.0/16", "site-a"}) == a);
	b = metrics_vec_row(v, (const char *const[]){"10.2.0.0/16", "we\"ird\\id\nx"});
	CHECK(b != a);
	b[0] = 5;
	/* Values are cut at METRICS_LABEL_MAX: two that differ only beyond it share a row. */
	memset(long_id, 'z', sizeof(long_id) - 1);
	long_id[sizeof(long_id) - 1] = '\0';
	a = metrics_vec_row(v, (const char *const[]){"r", long_id});
	long_id[300] = 'y';
	CHECK(metrics_vec_row(v, (const char *const[]){"r", long_id}) == a);
	a[0] = 1;
	metrics_hist_observe(h, 0);
	metrics_hist_observe(h, 1);
	metrics_hist_observe(h, 3);
	metrics_hist_observe(h, 999);
	metrics_hist_observe(h, 5000);

	text = render(m);
	CHECK_STR_CONTAINS(text, "# HELP ntun_plain_total plain\n# TYPE ntun_plain_total counter\n"
				 "ntun_plain_total 7\n");
	CHECK_STR_CONTAINS(
		text,
		"# TYPE ntun_x_bytes_total counter\n"
		"ntun_x_bytes_total{route=\"10.1.0.0/16\",proxy=\"site-a\"} 100\n"
		"ntun_x_bytes_total{route=\"10.2.0.0/16\",proxy=\"we\\\"ird\\\\id\\nx\"} 5\n");
	CHECK_STR_CONTAINS(text, "# TYPE ntun_x_open gauge\n"
				 "ntun_x_open{route=\"10.1.0.0/16\",proxy=\"site-a\"} 1\n");
	CHECK_STR_CONTAINS(text, "# TYPE ntun_x_seconds histogram\n"
				 "ntun_x_seconds_bucket{le=\"0.001\"} 2\n"
				 "ntun_x_seconds_bucket{le=\"0.005\"} 3\n"
				 "ntun_x_seconds_bucket{le=\"0.25\"} 3\n"
				 "ntun_x_seconds_bucket{le=\"1\"} 4\n"
				 "ntun_x_seconds_bucket{le=\"+Inf\"} 5\n"
				 "ntun_x_seconds_sum 6.003\n"
				 "ntun_x_seconds_count 5\n");
	CHECK(!strstr(text, "other"));
	parsed = parse(text);
	CHECK(parsed != NULL);
	CHECK_STR_CONTAINS(
		parsed,
		"ntun_x_bytes_total{proxy=\"we\\\"ird\\\\id\\nx\",route=\"10.2.0.0/16\"} 5.0\n");
	CHECK_STR_CONTAINS(parsed, "ntun_x_seconds_bucket{le=\"0.005\"} 3.0\n");
	CHECK_STR_CONTAINS(parsed, "ntun_x_seconds_sum 6.003\n");
	CHECK_STR_CONTAINS(parsed, "ntun_plain_total 7.0\n");
	free(parsed);
	free(text);

	/* The cap: rows past METRICS_VEC_ROWS all count in the "other" row. */
	for (int i = 0; i < METRICS_VEC_ROWS + 10; i++) {
		snprintf(id, sizeof(id), "p%d", i);
		metrics_vec_row(v, (const char *const[]){"10.3.0.0/16", id})[0] += 2;
	}
	text = render(m);
	CHECK_STR_CONTAINS(text, "ntun_x_bytes_total{route=\"other\",proxy=\"other\"} ");
	parsed = parse(text);
	CHECK(parsed != NULL);
	if (parsed) {
		size_t rows = 0;
		const char *p = parsed;

		while ((p = strstr(p, "ntun_x_bytes_total{"))) {
			rows++;
			p++;
		}
		/* 3 made above, then 1021 more up to the cap, and "other" */
		CHECK_INT_EQ(rows, METRICS_VEC_ROWS + 1);
		/* 13 of the p%d ids did not fit: 26 bytes in "other" */
		CHECK_STR_CONTAINS(parsed,
				   "ntun_x_bytes_total{proxy=\"other\",route=\"other\"} 26.0\n");
	}
	free(parsed);
	free(text);

	/* A parser that refuses broken text: the checks above are not vacuous. */
	CHECK(parse("ntun_bad{route=\"a} 1\n") == NULL);
	CHECK(parse("a{c=\"1\"} 1\nb 1\na{c=\"2\"} 1\n") == NULL); /* a family split */

	/* No registry: no-ops, and rows that take writes. */
	CHECK(metrics_vec_new(NULL, labels, 2, series, 2) == NULL);
	CHECK(metrics_vec_row(NULL, (const char *const[]){"a", "b"}) != NULL);
	metrics_vec_row(NULL, (const char *const[]){"a", "b"})[1]++;
	CHECK(metrics_hist_new(NULL, "x", "y", bounds, 4) == NULL);
	metrics_hist_observe(NULL, 5);
	metrics_free(m);
}

int main(void)
{
	test_host();
	test_request();
	test_exposition();
	return check_done("test_metrics");
}
