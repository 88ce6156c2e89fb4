// SPDX-License-Identifier: MIT
/* http: a unix socket made 0600 in a 0700 directory, stale sockets replaced and live ones
 * kept, routing by exact path and prefix, query and body, and the limits: oversize header and
 * body answered 4xx and closed, a slow sender cut off at the deadline from accept (not only
 * when idle), a connection still counted while its answer is written, and the connection
 * cap making room by closing the oldest unanswered one. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>

#include "check.h"
#include "http.h"
#include "httpc.h"
#include "loop.h"

static char dir[64], sock_path[128];

static void on_hello(struct http_req *r, const char *path, void *arg)
{
	char q[32], body[256];
	const uint8_t *b;
	size_t n;
	int len;

	b = http_req_body(r, &n);
	len = snprintf(body, sizeof(body), "%s %s q=%s body=%.*s",
		       http_req_method(r) == HTTP_POST ? "POST" : "GET", path,
		       http_req_query(r, "q", q, sizeof(q)) ?: "-", (int)n, (const char *)b);
	http_reply(r, 200, "application/json", body, (size_t)len);
}

#define REQ(s) s, sizeof(s) - 1

static void *client_basic(void *arg)
{
	char body[512];
	bool closed;

	CHECK_INT_EQ(httpc_do(sock_path, REQ("GET /v1/hello HTTP/1.1\r\nHost: x\r\n\r\n"), body,
			      sizeof(body), &closed),
		     200);
	CHECK_STR_EQ(body, "GET /v1/hello q=- body=");
	CHECK(closed); /* one request per connection */
	CHECK_INT_EQ(httpc_do(sock_path, REQ("GET /v1/hello?q=a%20b HTTP/1.0\r\n\r\n"), body,
			      sizeof(body), NULL),
		     200);
	CHECK_STR_EQ(body, "GET /v1/hello q=a b body=");
	CHECK_INT_EQ(httpc_do(sock_path,
			      REQ("POST /v1/t/42/close HTTP/1.1\r\nHost: x\r\n"
				  "Content-Length: 5\r\n\r\nhello"),
			      body, sizeof(body), NULL),
		     200);
	CHECK_STR_EQ(body, "POST /v1/t/42/close q=- body=hello");
	CHECK_INT_EQ(httpc_do(sock_path, REQ("GET /v1/hellox HTTP/1.1\r\nHost: x\r\n\r\n"), NULL, 0,
			      NULL),
		     404);
	CHECK_INT_EQ(
		httpc_do(sock_path, REQ("GET /v1/t HTTP/1.1\r\nHost: x\r\n\r\n"), NULL, 0, NULL),
		404);
	/* An encoded NUL in the path is refused, not cut short. */
	CHECK_INT_EQ(httpc_do(sock_path, REQ("GET /v1/hello%00x HTTP/1.1\r\nHost: x\r\n\r\n"), NULL,
			      0, NULL),
		     400);
	CHECK_INT_EQ(httpc_do(sock_path, REQ("DELETE /v1/hello HTTP/1.1\r\nHost: x\r\n\r\n"), NULL,
			      0, NULL),
		     501);
	return NULL;
}

static void *client_limits(void *arg)
{
	static char big[20000];
	char body[256];
	bool closed = false;
	int n, code;

	/* A header larger than max_header (4 KiB here). */
	n = snprintf(big, sizeof(big), "GET /v1/hello HTTP/1.1\r\nHost: x\r\nX-Big: ");
	memset(big + n, 'a', 6000);
	n += 6000;
	n += snprintf(big + n, sizeof(big) - (size_t)n, "\r\n\r\n");
	code = httpc_do(sock_path, big, (size_t)n, NULL, 0, &closed);
	fprintf(stderr, "  oversize header: %d, closed %d\n", code, closed);
	CHECK(code == 400 || code == 413 || code == 431);
	CHECK(closed);

	/* A body larger than max_body (1 KiB here), announced and sent. */
	n = snprintf(big, sizeof(big),
		     "POST /v1/hello HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n");
	memset(big + n, 'b', 5000);
	n += 5000;
	closed = false;
	code = httpc_do(sock_path, big, (size_t)n, body, sizeof(body), &closed);
	fprintf(stderr, "  oversize body: %d, closed %d\n", code, closed);
	CHECK_INT_EQ(code, 413);
	CHECK(closed);
	return NULL;
}

/* A sender that never finishes its request, one byte every 100 ms: evhttp's idle timeout
 * alone would let it stay; the deadline (500 ms here) closes it. */
static void *client_slow(void *arg)
{
	static const char req[] = "GET /v1/hello HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaa";
	uint64_t t0 = loop_now_ms(), took;
	struct pollfd p;
	int fd = httpc_connect(sock_path);
	bool closed = false;

	CHECK(fd >= 0);
	for (size_t i = 0; i < sizeof(req) - 1 && !closed; i++) {
		p = (struct pollfd){.fd = fd, .events = POLLIN};
		if (poll(&p, 1, 100) == 1) {
			char c;

			closed = read(fd, &c, 1) <= 0;
			break;
		}
		if (write(fd, req + i, 1) != 1)
			closed = true;
	}
	if (!closed) {
		char buf[64];

		httpc_read(fd, buf, sizeof(buf), 2000, &closed);
	}
	took = loop_now_ms() - t0;
	fprintf(stderr, "  slow sender closed after %llu ms\n", (unsigned long long)took);
	CHECK(closed);
	CHECK(took >= 450 && took < 2500);
	close(fd);
	return NULL;
}

static void on_big(struct http_req *r, const char *path, void *arg)
{
	static char big[32 << 20];

	memset(big, 'x', sizeof(big));
	http_reply(r, 200, "text/plain", big, sizeof(big));
}

/* max_conns 1: a connection whose 32 MiB answer is still being written (its reader is not
 * reading) keeps its slot, so a second one is turned away without an answer. evhttp clears
 * only the read callback while it writes: taking that alone for "gone" dropped such
 * connections from the count (and from the deadlines), and the second one was served. */
static void *client_writing(void *arg)
{
	static const char req[] = "GET /v1/big HTTP/1.1\r\nHost: x\r\n\r\n";
	int fd = httpc_connect(sock_path);

	CHECK(fd >= 0);
	CHECK(write(fd, req, sizeof(req) - 1) == (ssize_t)sizeof(req) - 1);
	usleep(400000); /* answered, being written; the 100 ms sweep has run several times */
	CHECK(httpc_do(sock_path, REQ("GET /v1/hello HTTP/1.1\r\nHost: x\r\n\r\n"), NULL, 0,
		       NULL) != 200);
	close(fd);
	return NULL;
}

/* max_conns 2: two silent connections, then a whole request: it is answered, the oldest
 * silent one is closed to make room. */
static void *client_cap(void *arg)
{
	int a = httpc_connect(sock_path), b, code;
	char buf[64];
	bool eof_a = false, eof_b = false;

	usleep(50000);
	b = httpc_connect(sock_path);
	usleep(50000);
	code = httpc_do(sock_path, REQ("GET /v1/hello HTTP/1.1\r\nHost: x\r\n\r\n"), NULL, 0, NULL);
	CHECK_INT_EQ(code, 200);
	httpc_read(a, buf, sizeof(buf), 300, &eof_a);
	httpc_read(b, buf, sizeof(buf), 50, &eof_b);
	CHECK(eof_a);  /* the oldest went */
	CHECK(!eof_b); /* the other stays until its deadline */
	close(a);
	close(b);
	return NULL;
}

/* Holds the loop, so that what clients do meanwhile waits for it in the sockets. */
static void on_slow(struct http_req *r, const char *path, void *arg)
{
	usleep(300000);
	http_reply(r, 200, "text/plain", "slow\n", 5);
}

/* max_conns 3: while the loop is busy, A sends a whole request, then B and C only connect. When
 * the loop takes them, C's arrival must evict B (silent), not A (the oldest, whose request
 * waits unread): A is answered. Before, the oldest unanswered went whatever it had sent. */
static void *client_waiting(void *arg)
{
	static const char slow[] = "GET /v1/slow HTTP/1.1\r\nHost: x\r\n\r\n";
	static const char req[] = "GET /v1/hello HTTP/1.1\r\nHost: x\r\n\r\n";
	int s = httpc_connect(sock_path), a, b, c;
	char buf[256];
	bool eof_a, eof_b, eof_s;

	CHECK(write(s, slow, sizeof(slow) - 1) == (ssize_t)sizeof(slow) - 1);
	usleep(100000); /* the loop is inside on_slow */
	a = httpc_connect(sock_path);
	CHECK(write(a, req, sizeof(req) - 1) == (ssize_t)sizeof(req) - 1);
	b = httpc_connect(sock_path);
	c = httpc_connect(sock_path);
	httpc_read(s, buf, sizeof(buf), 2000, &eof_s);
	CHECK(!strncmp(buf, "HTTP/1.1 200", 12));
	httpc_read(a, buf, sizeof(buf), 2000, &eof_a);
	CHECK(!strncmp(buf, "HTTP/1.1 200", 12)); /* A was answered */
	httpc_read(b, buf, sizeof(buf), 1000, &eof_b);
	CHECK(eof_b); /* B gave its slot up */
	close(s);
	close(a);
	close(b);
	close(c);
	return NULL;
}

static struct http *serve(struct loop *l, const struct http_opts *o)
{
	char err[256];
	struct http *h = http_new(l, sock_path, o, err, sizeof(err));

	if (!h)
		fprintf(stderr, "http_new: %s\n", err);
	CHECK(h);
	if (h) {
		CHECK_INT_EQ(http_route(h, "/v1/hello", on_hello, NULL), 0);
		CHECK_INT_EQ(http_route(h, "/v1/t/", on_hello, NULL), 0);
	}
	return h;
}

static void test_unix_socket(struct loop *l)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct http *h, *h2;
	struct stat st;
	char err[256];
	int fd;

	h = serve(l, NULL);
	if (!h)
		return;
	CHECK(stat(dir, &st) == 0 && (st.st_mode & 0777) == 0700);
	CHECK(stat(sock_path, &st) == 0 && S_ISSOCK(st.st_mode) && (st.st_mode & 0777) == 0600);
	/* A live socket is not taken over. */
	h2 = http_new(l, sock_path, NULL, err, sizeof(err));
	CHECK(!h2);
	CHECK_STR_CONTAINS(err, "in use");
	httpc_run(l, client_basic, NULL);
	http_free(h);
	CHECK(stat(sock_path, &st) < 0 && errno == ENOENT);

	/* A stale one (bound, nobody listening) is replaced. */
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock_path);
	CHECK(bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	close(fd);
	h = serve(l, NULL);
	CHECK(h);
	http_free(h);
	/* Something that is not a socket is left alone. */
	fd = open(sock_path, O_CREAT | O_WRONLY, 0600);
	close(fd);
	CHECK(!http_new(l, sock_path, NULL, err, sizeof(err)));
	CHECK_STR_CONTAINS(err, "not a socket");
	unlink(sock_path);
	/* Not loopback over TCP. */
	CHECK(!http_new(l, "10.1.2.3:9100", NULL, err, sizeof(err)));
	CHECK_STR_CONTAINS(err, "not a loopback");
}

static void test_limits(struct loop *l)
{
	struct http_opts o = {.max_header = 4096, .max_body = 1024};
	struct http *h = serve(l, &o);

	if (!h)
		return;
	httpc_run(l, client_limits, NULL);
	http_free(h);
}

static void test_deadline(struct loop *l)
{
	struct http_opts o = {.deadline_ms = 500, .timeout_ms = 5000};
	struct http *h = serve(l, &o);

	if (!h)
		return;
	httpc_run(l, client_slow, NULL);
	CHECK_INT_EQ(http_stats(h)->refused_timeout, 1);
	http_free(h);
}

static void test_answer_counted(struct loop *l)
{
	struct http_opts o = {.deadline_ms = 1000, .timeout_ms = 5000, .max_conns = 1};
	struct http *h = serve(l, &o);

	if (!h)
		return;
	CHECK_INT_EQ(http_route(h, "/v1/big", on_big, NULL), 0);
	httpc_run(l, client_writing, NULL);
	CHECK(http_stats(h)->refused_busy >= 1);
	http_free(h);
}

static void test_cap(struct loop *l)
{
	struct http_opts o = {.max_conns = 2, .deadline_ms = 3000};
	struct http *h = serve(l, &o);

	if (!h)
		return;
	httpc_run(l, client_cap, NULL);
	CHECK(http_stats(h)->refused_busy >= 1);
	http_free(h);
}

static void test_cap_request_waiting(struct loop *l)
{
	struct http_opts o = {.max_conns = 3, .deadline_ms = 3000};
	struct http *h = serve(l, &o);

	if (!h)
		return;
	CHECK_INT_EQ(http_route(h, "/v1/slow", on_slow, NULL), 0);
	httpc_run(l, client_waiting, NULL);
	CHECK(http_stats(h)->refused_busy >= 1);
	http_free(h);
}

int main(void)
{
	struct loop *l = loop_new();
	char tmpl[] = "/tmp/ntun-http-XXXXXX";

	signal(SIGPIPE, SIG_IGN); /* as the daemons do: a reader that left is an error, not death */
	CHECK(mkdtemp(tmpl));
	snprintf(dir, sizeof(dir), "%s/run", tmpl);
	snprintf(sock_path, sizeof(sock_path), "%s/admin.sock", dir);
	test_unix_socket(l);
	test_limits(l);
	test_deadline(l);
	test_answer_counted(l);
	test_cap(l);
	test_cap_request_waiting(l);
	loop_free(l);
	rmdir(dir);
	rmdir(tmpl);
	return check_done("test_http");
}
