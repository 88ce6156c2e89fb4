// SPDX-License-Identifier: MIT
/* metrics: which Host values name loopback, and what a request gets over the socket
 * (exposition, 404, or 403 for a missing, repeated, folded or foreign Host). */
#include <string.h>

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
	CHECK_INT_EQ(req("GET / HTTP/1.0\r\nhost:localhost\r\n\r\n"), 200);
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

int main(void)
{
	test_host();
	test_request();
	return check_done("test_metrics");
}
