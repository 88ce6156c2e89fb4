// SPDX-License-Identifier: MIT
/* evhttp parses requests and writes answers; this module adds what a local endpoint facing
 * untrusted local clients needs on top: a deadline from accept to the whole request (evhttp's
 * own timeouts restart with every byte, so a slowloris would never end), a cap on connections
 * where the oldest unanswered one without a whole request waiting gives its slot up, and the
 * Host check. One request per
 * connection. Each connection's bufferevent is made here (evhttp's bevcb) and held by one
 * extra reference, so a periodic sweep can see when evhttp has let it go and what it is doing:
 *
 *   accept -> [reading] --request whole--> [answered] --written--> evhttp frees -> swept
 *                 \--deadline or evicted: shutdown(fd) -> evhttp sees EOF, frees -> swept
 */
#include "http.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"
#include "loop.h"
#include "sock.h"

#define HTTP_ROUTES_MAX 32
#define HTTP_SWEEP_MS	100

struct http_conn {
	struct bufferevent *bev; /* one reference is ours */
	uint64_t accepted_ms;
	bool answered, killed;
	struct http_conn *next;
};

struct http_route {
	const char *path;
	size_t len;
	bool prefix;
	http_handler_cb *cb;
	void *arg;
};

struct http {
	struct loop *loop;
	struct evhttp *ev;
	struct http_opts o;
	struct loop_timer *sweep;
	struct http_conn *conns; /* newest first */
	unsigned nconns;
	struct http_route routes[HTTP_ROUTES_MAX];
	size_t nroutes;
	struct http_stats stats;
	char *unix_path; /* removed on free if still ours */
	dev_t unix_dev;
	ino_t unix_ino;
};

/* The socket file, if it is still the one we bound (not a successor's). */
static void unlink_own(const struct http *h)
{
	struct stat st;

	if (h->unix_path && stat(h->unix_path, &st) == 0 && st.st_dev == h->unix_dev &&
	    st.st_ino == h->unix_ino)
		unlink(h->unix_path);
}

/* A daemon that ends in exit() with its socket up (fatal() later in its start-up) removes the
 * file too; http_free does it otherwise. Not in a forked child (which leaves by _exit anyway). */
static struct http *exit_unlink;
static pid_t exit_pid;

static void unlink_at_exit(void)
{
	if (exit_unlink && getpid() == exit_pid)
		unlink_own(exit_unlink);
}

static bool conn_gone(const struct http_conn *c)
{
	bufferevent_data_cb rd = NULL, wr = NULL;
	bufferevent_event_cb ev = NULL;

	/* bufferevent_free() clears all three callbacks; our reference keeps the memory. evhttp
	 * itself clears only the read callback while it writes an answer, so that alone does not
	 * mean the connection is gone (it would leave the count and the deadlines). */
	bufferevent_getcb(c->bev, &rd, &wr, &ev, NULL);
	return !rd && !wr && !ev;
}

static void conn_kill(struct http *h, struct http_conn *c)
{
	int fd = bufferevent_getfd(c->bev);

	c->killed = true;
	if (fd >= 0)
		shutdown(fd, SHUT_RDWR); /* evhttp reads EOF and frees the connection */
}

/* Lets go of connections evhttp is done with; ends those past their deadline. */
static void sweep(struct http *h)
{
	uint64_t now = loop_now_ms();
	struct http_conn **pp = &h->conns, *c;

	while ((c = *pp)) {
		if (conn_gone(c)) {
			*pp = c->next;
			bufferevent_decref(c->bev);
			free(c);
			h->nconns--;
			continue;
		}
		if (!c->answered && !c->killed && now - c->accepted_ms >= h->o.deadline_ms) {
			h->stats.refused_timeout++;
			conn_kill(h, c);
		} else if (c->answered && !c->killed &&
			   now - c->accepted_ms >=
				   h->o.deadline_ms + 2 * (uint64_t)h->o.timeout_ms) {
			/* An answer read a few bytes at a time keeps evhttp's write timeout from
			 * ever firing: the whole exchange has a deadline too. */
			h->stats.refused_timeout++;
			conn_kill(h, c);
		} else if (c->killed && !c->answered) {
			conn_kill(h, c); /* its fd may have been set only after it was chosen */
		}
		pp = &c->next;
	}
	if (h->conns && !loop_timer_pending(h->sweep))
		loop_timer_arm(h->sweep, HTTP_SWEEP_MS);
}

static void on_sweep(struct loop_timer *t, void *arg)
{
	sweep(arg);
}

/* Whether a whole request head waits in c's socket, not read yet: a client that sent its
 * request at once is about to be answered, while a slowloris never gets that far. Under a flood
 * of new connections a slot lives a fraction of a second; an honest request the loop had not
 * read yet was evicted as the oldest (1 of 10 scrapes, sanitizer build, ~150 connections/s). */
static bool request_waiting(const struct http_conn *c)
{
	char buf[4096];
	int fd = bufferevent_getfd(c->bev);
	ssize_t n;

	if (fd < 0)
		return false;
	n = recv(fd, buf, sizeof(buf), MSG_PEEK | MSG_DONTWAIT);
	return n >= 4 && memmem(buf, (size_t)n, "\r\n\r\n", 4) != NULL;
}

/* evhttp asks for each accepted connection's bufferevent: count it, and make room. */
static struct bufferevent *on_bev(struct event_base *base, void *arg)
{
	struct http *h = arg;
	struct http_conn *c, *victim = NULL;

	sweep(h);
	c = calloc(1, sizeof(*c));
	if (!c)
		return NULL; /* evhttp makes one itself; it still has its deadline-free timeouts */
	c->bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
	if (!c->bev) {
		free(c);
		return NULL;
	}
	bufferevent_incref(c->bev);
	c->accepted_ms = loop_now_ms();
	if (h->nconns >= h->o.max_conns) {
		for (struct http_conn *o = h->conns; o; o = o->next)
			if (!o->answered && !o->killed && !request_waiting(o))
				victim = o; /* newest first: the last one is the oldest */
		h->stats.refused_busy++;
		if (victim)
			conn_kill(h, victim);
		else
			c->killed = true; /* every slot is (about to be) answered: turn this away */
	}
	c->next = h->conns;
	h->conns = c;
	h->nconns++;
	if (c->killed)
		loop_timer_now(h->sweep); /* evhttp sets the fd once we return */
	else if (!loop_timer_pending(h->sweep))
		loop_timer_arm(h->sweep, HTTP_SWEEP_MS);
	return c->bev;
}

static struct http_conn *conn_of(struct http *h, struct evhttp_request *req)
{
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);
	struct bufferevent *bev = evcon ? evhttp_connection_get_bufferevent(evcon) : NULL;

	for (struct http_conn *c = h->conns; c; c = c->next)
		if (c->bev == bev)
			return c;
	return NULL;
}

/* Exactly one Host header, accepted by opts.host_ok. */
static bool host_ok(struct http *h, struct evhttp_request *req)
{
	struct evkeyvalq *hdrs = evhttp_request_get_input_headers(req);
	const char *v = NULL;
	struct evkeyval *kv;
	int n = 0;

	for (kv = hdrs->tqh_first; kv; kv = kv->next.tqe_next) {
		if (!strcasecmp(kv->key, "Host")) {
			v = kv->value;
			n++;
		}
	}
	return n == 1 && h->o.host_ok(v, strlen(v));
}

static void on_request(struct evhttp_request *req, void *arg)
{
	struct http *h = arg;
	struct http_conn *c = conn_of(h, req);
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *raw = uri ? evhttp_uri_get_path(uri) : NULL;
	char *path = NULL;
	size_t len = 0;

	if (c)
		c->answered = true;
	if (h->o.host_ok && !host_ok(h, req)) {
		h->stats.refused_host++;
		http_reply((struct http_req *)req, 403, NULL, NULL, 0);
		return;
	}
	if (raw && *raw)
		path = evhttp_uridecode(raw, 0, &len);
	if (!path || strlen(path) != len) {
		free(path);
		http_reply((struct http_req *)req, 400, NULL, NULL, 0);
		return;
	}
	for (size_t i = 0; i < h->nroutes; i++) {
		const struct http_route *rt = &h->routes[i];

		if (rt->prefix ? !strncmp(path, rt->path, rt->len) : !strcmp(path, rt->path)) {
			rt->cb((struct http_req *)req, path, rt->arg);
			free(path);
			return;
		}
	}
	free(path);
	http_reply((struct http_req *)req, 404, NULL, NULL, 0);
}

/* A unix stream socket at path, mode 0600 in a directory we make 0700 if it is missing. An
 * existing socket is replaced only if nothing answers on it. Returns the fd or -errno with
 * the reason in err. */
static int listen_unix(const char *path, char *err, size_t errsz)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	char dir[sizeof(sa.sun_path)];
	struct stat st;
	mode_t old;
	int fd, rv;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		snprintf(err, errsz, "socket path '%s' is too long", path);
		return -ENAMETOOLONG;
	}
	strcpy(sa.sun_path, path);
	strcpy(dir, path);
	if (mkdir(dirname(dir), 0700) < 0 && errno != EEXIST) {
		rv = -errno;
		snprintf(err, errsz, "cannot make the directory of '%s': %s", path, strerror(-rv));
		return rv;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		rv = -errno;
		snprintf(err, errsz, "socket: %s", strerror(-rv));
		return rv;
	}
	if (lstat(path, &st) == 0) {
		int probe;

		if (!S_ISSOCK(st.st_mode)) {
			snprintf(err, errsz, "'%s' exists and is not a socket", path);
			rv = -EEXIST;
			goto err;
		}
		/* Non-blocking: a live server with a full backlog answers EAGAIN, not a hang. */
		probe = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (probe < 0) {
			rv = -errno;
			snprintf(err, errsz, "socket: %s", strerror(-rv));
			goto err;
		}
		rv = connect(probe, (struct sockaddr *)&sa, sizeof(sa)) == 0 ? 0 : -errno;
		close(probe);
		if (rv != -ECONNREFUSED && rv != -ENOENT) { /* live, busy, or not ours (EACCES) */
			snprintf(err, errsz, "'%s' is in use by a running process", path);
			rv = -EADDRINUSE;
			goto err;
		}
		unlink(path); /* stale: nothing listens on it */
	}
	old = umask(0177);
	rv = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (rv == 0)
		rv = chmod(path, 0600);
	if (rv == 0)
		rv = listen(fd, 16);
	if (rv < 0) {
		rv = -errno;
		snprintf(err, errsz, "listen on '%s': %s", path, strerror(-rv));
		goto err;
	}
	return fd;
err:
	close(fd);
	return rv;
}

static int listen_tcp(const char *addr, char *err, size_t errsz)
{
	uint32_t a;
	uint16_t port;
	int fd, rv = sock_resolve(addr, &a, &port);

	if (rv < 0) {
		snprintf(err, errsz, "address '%s': %s", addr, strerror(-rv));
		return rv;
	}
	if ((a >> 24) != 127) {
		snprintf(err, errsz, "address '%s' is not a loopback address", addr);
		return -EINVAL;
	}
	fd = sock_listen(a, port, 16);
	if (fd < 0)
		snprintf(err, errsz, "listen on %s: %s", addr, strerror(-fd));
	return fd;
}

struct http *http_new(struct loop *l, const char *addr, const struct http_opts *opts, char *err,
		      size_t errsz)
{
	struct http *h = calloc(1, sizeof(*h));
	struct timeval tv;
	struct stat st;
	int fd = -1;

	if (!h) {
		snprintf(err, errsz, "out of memory");
		return NULL;
	}
	h->loop = l;
	if (opts)
		h->o = *opts;
	if (!h->o.max_header)
		h->o.max_header = 8192;
	if (!h->o.max_body)
		h->o.max_body = 16384;
	if (!h->o.deadline_ms)
		h->o.deadline_ms = 2000;
	if (!h->o.timeout_ms)
		h->o.timeout_ms = 5000;
	if (!h->o.max_conns)
		h->o.max_conns = 16;
	h->ev = evhttp_new(loop_event_base(l));
	h->sweep = loop_timer_new(l, on_sweep, h);
	if (!h->ev || !h->sweep) {
		snprintf(err, errsz, "out of memory");
		goto err;
	}
	evhttp_set_max_headers_size(h->ev, (ev_ssize_t)h->o.max_header);
	evhttp_set_max_body_size(h->ev, (ev_ssize_t)h->o.max_body);
	tv.tv_sec = h->o.timeout_ms / 1000;
	tv.tv_usec = (h->o.timeout_ms % 1000) * 1000;
	evhttp_set_timeout_tv(h->ev, &tv);
	evhttp_set_allowed_methods(h->ev, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD);
	evhttp_set_default_content_type(h->ev, NULL);
	evhttp_set_bevcb(h->ev, on_bev, h);
	evhttp_set_gencb(h->ev, on_request, h);
	fd = addr[0] == '/' ? listen_unix(addr, err, errsz) : listen_tcp(addr, err, errsz);
	if (fd < 0)
		goto err;
	if (addr[0] == '/') {
		h->unix_path = strdup(addr);
		if (!h->unix_path || fstat(fd, &st) < 0 || stat(addr, &st) < 0) {
			snprintf(err, errsz, "out of memory");
			unlink(addr);
			goto err;
		}
		h->unix_dev = st.st_dev;
		h->unix_ino = st.st_ino;
	}
	if (!evhttp_accept_socket_with_handle(h->ev, fd)) {
		snprintf(err, errsz, "cannot serve HTTP on %s", addr);
		if (h->unix_path)
			unlink(addr);
		goto err;
	}
	if (h->unix_path && !exit_unlink) {
		static bool registered;

		if (!registered)
			registered = atexit(unlink_at_exit) == 0;
		exit_unlink = h;
		exit_pid = getpid();
	}
	return h;
err:
	if (fd >= 0)
		close(fd);
	free(h->unix_path);
	h->unix_path = NULL;
	if (h->ev)
		evhttp_free(h->ev);
	loop_timer_free(h->sweep);
	free(h);
	return NULL;
}

void http_free(struct http *h)
{
	if (!h)
		return;
	evhttp_free(h->ev); /* frees every connection and the listener */
	while (h->conns) {
		struct http_conn *c = h->conns;

		h->conns = c->next;
		bufferevent_decref(c->bev);
		free(c);
	}
	loop_timer_free(h->sweep);
	unlink_own(h);
	if (exit_unlink == h)
		exit_unlink = NULL;
	free(h->unix_path);
	free(h);
}

int http_route(struct http *h, const char *path, http_handler_cb *cb, void *arg)
{
	size_t len = strlen(path);

	if (h->nroutes >= HTTP_ROUTES_MAX)
		return -ENOSPC;
	h->routes[h->nroutes++] =
		(struct http_route){path, len, len > 1 && path[len - 1] == '/', cb, arg};
	return 0;
}

const struct http_stats *http_stats(const struct http *h)
{
	return &h->stats;
}

enum http_method http_req_method(const struct http_req *r)
{
	switch (evhttp_request_get_command((const struct evhttp_request *)r)) {
	case EVHTTP_REQ_GET:
	case EVHTTP_REQ_HEAD:
		return HTTP_GET;
	case EVHTTP_REQ_POST:
		return HTTP_POST;
	default:
		return HTTP_OTHER;
	}
}

const char *http_req_query(struct http_req *r, const char *key, char *buf, size_t size)
{
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri((struct evhttp_request *)r);
	const char *q = uri ? evhttp_uri_get_query(uri) : NULL, *v, *out = NULL;
	struct evkeyvalq kv = {0};

	if (!q || evhttp_parse_query_str(q, &kv) < 0)
		goto out;
	v = evhttp_find_header(&kv, key);
	if (v && strlen(v) < size) {
		strcpy(buf, v);
		out = buf;
	}
out:
	evhttp_clear_headers(&kv);
	return out;
}

const uint8_t *http_req_body(struct http_req *r, size_t *len)
{
	struct evbuffer *in = evhttp_request_get_input_buffer((struct evhttp_request *)r);

	*len = evbuffer_get_length(in);
	return *len ? evbuffer_pullup(in, -1) : (const uint8_t *)"";
}

void http_reply(struct http_req *r, int code, const char *ctype, const void *body, size_t len)
{
	struct evhttp_request *req = (struct evhttp_request *)r;
	struct evkeyvalq *hdrs = evhttp_request_get_output_headers(req);
	struct evbuffer *out = evhttp_request_get_output_buffer(req);
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);
	struct bufferevent *bev;

	evhttp_add_header(hdrs, "Content-Type", ctype ? ctype : "text/plain; charset=utf-8");
	evhttp_add_header(hdrs, "Connection", "close");
	evhttp_add_header(hdrs, "X-Content-Type-Options", "nosniff");
	evhttp_add_header(hdrs, "Cache-Control", "no-store");
	if (body && len && evbuffer_add(out, body, len) < 0) {
		evbuffer_drain(out, evbuffer_get_length(out));
		code = 500;
	}
	evhttp_send_reply(req, code, NULL, NULL);
	/* The request is whole and the connection closes after this answer: nothing more is
	 * read. Left on, a client's half-close (EOF) while a long answer is still being written
	 * makes evhttp fail the connection and cut the answer. */
	if (evcon && (bev = evhttp_connection_get_bufferevent(evcon)))
		bufferevent_disable(bev, EV_READ);
}
