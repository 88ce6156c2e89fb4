// SPDX-License-Identifier: MIT
/* metrics: which Host values name loopback, and what a request head gets (exposition, 404,
 * or 403 for a missing, repeated, folded or foreign Host). */
#include <string.h>

#include "check.h"
#include "metrics.h"

static bool host_ok(const char *v)
{
	return metrics_host_allowed(v, strlen(v));
}

static enum metrics_verdict req(const char *head)
{
	return metrics_request_check(head, strlen(head));
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

static void test_request(void)
{
	CHECK_INT_EQ(req("GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:9100\r\n\r\n"), METRICS_SERVE);
	CHECK_INT_EQ(req("GET / HTTP/1.0\r\nhost:localhost\r\n\r\n"), METRICS_SERVE);
	CHECK_INT_EQ(req("GET /metrics HTTP/1.1\r\nUser-Agent: x\r\nHOST:  [::1]:9100 \t\r\n"
			 "Accept: */*\r\n\r\n"),
		     METRICS_SERVE);
	CHECK_INT_EQ(req("GET /metrics HTTP/1.1\nHost: localhost\n\n"), METRICS_SERVE);
	CHECK_INT_EQ(req("GET /nope HTTP/1.1\r\nHost: localhost\r\n\r\n"), METRICS_NOT_FOUND);
	CHECK_INT_EQ(req("POST /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n"), METRICS_NOT_FOUND);

	/* DNS rebinding: the browser sends the attacker's name. */
	CHECK_INT_EQ(req("GET /metrics HTTP/1.1\r\nHost: evil.example\r\n\r\n"), METRICS_BAD_HOST);
	CHECK_INT_EQ(req("GET /metrics HTTP/1.1\r\nHost: evil.example:9100\r\n\r\n"),
		     METRICS_BAD_HOST);
	/* A foreign Host is refused before the path is looked at. */
	CHECK_INT_EQ(req("GET /nope HTTP/1.1\r\nHost: evil.example\r\n\r\n"), METRICS_BAD_HOST);
	CHECK_INT_EQ(req("GET /metrics HTTP/1.0\r\n\r\n"), METRICS_BAD_HOST);
	CHECK_INT_EQ(req("GET /metrics HTTP/1.1\r\nHost:\r\n\r\n"), METRICS_BAD_HOST);
	CHECK_INT_EQ(req("GET /metrics HTTP/1.1\r\nHost: localhost\r\nHost: evil.example\r\n\r\n"),
		     METRICS_BAD_HOST);
	CHECK_INT_EQ(req("GET /metrics HTTP/1.1\r\nHost: localhost\r\nHost: localhost\r\n\r\n"),
		     METRICS_BAD_HOST);
	CHECK_INT_EQ(req("GET /metrics HTTP/1.1\r\nHost: localhost\r\n .evil.example\r\n\r\n"),
		     METRICS_BAD_HOST);
	CHECK_INT_EQ(req("GET /metrics HTTP/1.1\r\nX-Host: localhost\r\n\r\n"), METRICS_BAD_HOST);
	CHECK_INT_EQ(req("GET /metrics HTTP/1.1\r\nHost : localhost\r\n\r\n"), METRICS_BAD_HOST);
	CHECK_INT_EQ(req("GET /metrics HTTP/1.1"), METRICS_BAD_HOST);
	/* Bytes after the blank line are not headers. */
	CHECK_INT_EQ(req("GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\nHost: evil.example\r\n"),
		     METRICS_SERVE);
	CHECK_INT_EQ(req("GET /metrics HTTP/1.1\r\n\r\nHost: localhost\r\n"), METRICS_BAD_HOST);
}

int main(void)
{
	test_host();
	test_request();
	return check_done("test_metrics");
}
