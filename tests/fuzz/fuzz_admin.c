// SPDX-License-Identifier: MIT
/* Fuzzes the admin API as a local client drives it: the input is sent, in pieces, over a real
 * connection to an admin socket served on a loop (evhttp's request parser behind the http
 * module's limits and routes, the shared endpoints, a server-like /v1/proxies/ID/ACTION with
 * the same path handling as ntun-server's, two live tunnels to list and close). Every answer
 * must be one HTTP response whose JSON body (when it has one) is valid JSON (RFC 8259, UTF-8
 * strings, checked by a strict reader below), so what a request puts into an answer (ids,
 * paths) is escaped.
 *
 * Input: [flags] bytes...   bits 0-1: pieces: whole, 1 byte, 1..64, log-uniform
 *   bit 2: the client shuts down its sending side after the last piece
 *   bit 3: reload fails */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "admin.h"
#include "buf.h"
#include "fuzz.h"
#include "http.h"
#include "json.h"
#include "log.h"
#include "loop.h"
#include "relay.h"

struct tun {
	struct admin_tunnel t;
	char id[40];
	int far[2]; /* the other ends of the relay's sockets: open while it lives */
	bool live;
};

static struct loop *loop;
static struct loop_timer *stop_task;
static struct admin *adm;
static char dir[64], sock_path[96];
static struct tun tuns[2];
static bool fail_reload;

static void stop_cb(struct loop_timer *t, void *arg)
{
	loop_stop(loop);
}

static void run_round(void)
{
	loop_timer_now(stop_task);
	FUZZ_CHECK(loop_run(loop) == 0);
}

static void cleanup(void)
{
	admin_free(adm);
	if (dir[0])
		rmdir(dir);
}

static const char *tunnel_id(void *arg, const struct admin_tunnel *t)
{
	return ((const struct tun *)t)->id;
}

static void tunnel_json(void *arg, const struct admin_tunnel *t, struct json *j)
{
	json_str(j, "destination", "192.168.1.5:80");
}

static void status_json(void *arg, struct json *j)
{
	json_u64(j, "connections", 2);
}

static int reload(void *arg, char *err, size_t errsz)
{
	if (!fail_reload)
		return 0;
	snprintf(err, errsz, "config.yaml:3: key 'x\x01\"\\': unknown setting (got '\xff\xfe')");
	return -EINVAL;
}

static void tun_done(void *arg, const char *reason, int err, uint64_t a, uint64_t b)
{
	struct tun *t = arg;

	admin_tunnel_del(adm, &t->t);
	close(t->far[0]);
	close(t->far[1]);
	t->live = false;
}

/* A tunnel: a relay between two socket pairs' near ends, idle, linked into the list. */
static void tun_open(struct tun *t, int i)
{
	int p1[2], p2[2];
	struct relay_end *a, *b;
	struct relay *r;

	FUZZ_CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, p1) == 0);
	FUZZ_CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, p2) == 0);
	t->far[0] = p1[1];
	t->far[1] = p2[1];
	a = relay_sock_end(loop, p1[0], false, 0);
	b = relay_sock_end(loop, p2[0], false, 0);
	FUZZ_CHECK(a && b);
	snprintf(t->id, sizeof(t->id), "%032x", 0xabc0 + i);
	r = relay_new(loop, a, b, 0, tun_done, t);
	FUZZ_CHECK(r != NULL);
	t->live = true;
	admin_tunnel_add(adm, &t->t, r);
}

/* A server-like endpoint: POST /v1/proxies/<id>/drain|resume, parsed as ntun-server does. */
static void proxy_action(struct http_req *r, const char *path, void *arg)
{
	const char *id = path + strlen("/v1/proxies/"), *slash = strchr(id, '/');
	size_t idlen = slash ? (size_t)(slash - id) : 0;
	char pid[64];
	struct json j;
	struct buf b;

	if (!slash || (strcmp(slash, "/drain") && strcmp(slash, "/resume")) || !idlen ||
	    idlen >= sizeof(pid)) {
		admin_error(r, 404, path);
		return;
	}
	if (!admin_want_post(r))
		return;
	memcpy(pid, id, idlen);
	pid[idlen] = '\0';
	admin_json_begin(&j, &b);
	json_str(&j, "proxy", pid);
	json_bool(&j, "drained", !strcmp(slash, "/drain"));
	admin_reply(r, 200, &j, &b);
}

static void setup(void)
{
	static const struct admin_ops ops = {
		.status = status_json, .tunnel_id = tunnel_id, .tunnel = tunnel_json};
	char err[256];

	/* Logged, as the daemons do, and formatted (what a request puts in a line is escaped
	 * there too), but not shown. */
	FUZZ_CHECK(log_setup("fuzz", LOG_LVL_DEBUG, LOG_FMT_JSON, "/dev/null") == 0);
	loop = loop_new();
	FUZZ_CHECK(loop != NULL);
	stop_task = loop_timer_new(loop, stop_cb, NULL);
	FUZZ_CHECK(stop_task != NULL);
	snprintf(dir, sizeof(dir), "/tmp/ntun-fuzz-admin-XXXXXX");
	FUZZ_CHECK(mkdtemp(dir) != NULL);
	snprintf(sock_path, sizeof(sock_path), "%s/admin.sock", dir);
	adm = admin_new(loop, sock_path, "server", "spiffe://ntun.local/server/relay", reload, NULL,
			err, sizeof(err));
	if (!adm) {
		fprintf(stderr, "fuzz_admin: %s\n", err);
		abort();
	}
	atexit(cleanup);
	admin_set_ops(adm, &ops, NULL);
	FUZZ_CHECK(admin_route(adm, "/v1/proxies/", proxy_action, NULL) == 0);
}

/* ---- a strict JSON reader: true if [*p, end) starts with one valid value ---- */

static void ws(const char **p, const char *end)
{
	while (*p < end && (**p == ' ' || **p == '\t' || **p == '\n' || **p == '\r'))
		(*p)++;
}

static bool lit(const char **p, const char *end, const char *word)
{
	size_t n = strlen(word);

	if ((size_t)(end - *p) < n || memcmp(*p, word, n))
		return false;
	*p += n;
	return true;
}

static bool str(const char **p, const char *end)
{
	if (*p == end || **p != '"')
		return false;
	for ((*p)++; *p < end;) {
		unsigned char c = (unsigned char)**p;
		size_t k;

		if (c == '"') {
			(*p)++;
			return true;
		}
		if (c < 0x20)
			return false;
		if (c == '\\') {
			if (++(*p) == end)
				return false;
			if (**p == 'u') {
				if (end - *p < 5)
					return false;
				for (int i = 1; i <= 4; i++)
					if (!strchr("0123456789abcdefABCDEF", (*p)[i]) || !(*p)[i])
						return false;
				*p += 5;
			} else if (strchr("\"\\/bfnrt", **p) && **p) {
				(*p)++;
			} else {
				return false;
			}
			continue;
		}
		k = c < 0x80 ? 1 : log_utf8_seq((const unsigned char *)*p, (size_t)(end - *p));
		if (!k)
			return false;
		*p += k;
	}
	return false;
}

static bool num(const char **p, const char *end)
{
	const char *s = *p;

	if (*p < end && **p == '-')
		(*p)++;
	if (*p == end || **p < '0' || **p > '9')
		return false;
	if (**p == '0')
		(*p)++;
	else
		while (*p < end && **p >= '0' && **p <= '9')
			(*p)++;
	return *p > s;
}

static bool value(const char **p, const char *end, int depth)
{
	ws(p, end);
	if (*p == end || depth > 16)
		return false;
	if (**p == '{' || **p == '[') {
		char close = **p == '{' ? '}' : ']';
		bool obj = close == '}';

		(*p)++;
		ws(p, end);
		if (*p < end && **p == close) {
			(*p)++;
			return true;
		}
		for (;;) {
			if (obj) {
				ws(p, end);
				if (!str(p, end))
					return false;
				ws(p, end);
				if (*p == end || *(*p)++ != ':')
					return false;
			}
			if (!value(p, end, depth + 1))
				return false;
			ws(p, end);
			if (*p == end)
				return false;
			if (**p == close) {
				(*p)++;
				return true;
			}
			if (*(*p)++ != ',')
				return false;
		}
	}
	if (**p == '"')
		return str(p, end);
	return lit(p, end, "true") || lit(p, end, "false") || lit(p, end, "null") || num(p, end);
}

/* One HTTP response; its body, if it says JSON, is one valid JSON value. */
static void check_answer(const struct buf *b)
{
	const char *p = (const char *)buf_head(b), *body, *q, *end;
	size_t n = buf_len(b);

	if (!n)
		return; /* closed without an answer (e.g. the request never completed) */
	end = p + n;
	/* evhttp answers with the request's version (HTTP/0.1 gets HTTP/0.1). */
	FUZZ_CHECK(n > 12 && !memcmp(p, "HTTP/", 5));
	body = memmem(p, n, "\r\n\r\n", 4);
	FUZZ_CHECK(body != NULL);
	body += 4;
	if (!memmem(p, (size_t)(body - p), "application/json", 16) || body == end)
		return;
	q = body;
	if (!value(&q, end, 0) || (ws(&q, end), q != end)) {
		fprintf(stderr, "fuzz_admin: not valid JSON:\n%.*s\n", (int)n, p);
		abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_in in = {data, size};
	uint32_t rnd = 0x9e3779b9u ^ (uint32_t)size;
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct buf answer = BUF_INIT;
	uint8_t flags;
	bool eof = false;
	int fd;

	if (!loop)
		setup();
	for (int i = 0; i < 2; i++)
		if (!tuns[i].live)
			tun_open(&tuns[i], i);
	flags = fuzz_u8(&in);
	fail_reload = flags & 8;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock_path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	FUZZ_CHECK(fd >= 0);
	FUZZ_CHECK(fuzz_connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	while (in.n) {
		const uint8_t *p;
		size_t piece = fuzz_take(&in, fuzz_piece(flags & 3, in.n, &rnd), &p);

		if (send(fd, p, piece, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
			break; /* the server closed (an answer came early) */
		run_round();
	}
	if (flags & 4)
		shutdown(fd, SHUT_WR);
	/* Reads the answer until the server closes; a request it still waits for is given up
	 * after a few rounds (its deadline is seconds away). */
	for (int i = 0; i < 32 && !eof; i++) {
		char tmp[4096];
		ssize_t n;

		run_round();
		while ((n = recv(fd, tmp, sizeof(tmp), MSG_DONTWAIT)) > 0)
			FUZZ_CHECK(buf_append(&answer, tmp, (size_t)n) == 0);
		eof = n == 0 || (n < 0 && errno != EAGAIN);
	}
	if (eof)
		check_answer(&answer);
	close(fd);
	for (int i = 0; i < 4; i++)
		run_round(); /* the server sees the close and lets the connection go */
	buf_release(&answer);
	return 0;
}
