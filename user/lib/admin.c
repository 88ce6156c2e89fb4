// SPDX-License-Identifier: MIT
/* The shared admin endpoints. Answers are built whole in memory, so each is bounded: the
 * tunnel list is paged (at most ADMIN_PAGE_MAX per answer, with "truncated" and the total),
 * and rates come from samples taken when the list is read, not from a timer per tunnel (which
 * would cost every tunnel something every second whether anyone looks or not). */
#include "admin.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "http.h"
#include "json.h"
#include "log.h"
#include "loop.h"
#include "relay.h"

#define ADMIN_PAGE_DEFAULT 500
#define ADMIN_PAGE_MAX	   5000
#define ADMIN_RATE_MS	   1000 /* a rate spans at least this long */

struct admin {
	struct http *http;
	char daemon[16];
	char *identity;
	const struct admin_ops *ops;
	void *arg;
	admin_reload_cb *reload;
	void *reload_arg;
	uint64_t start_ms;
	struct admin_tunnel *head, *tail; /* oldest first */
	size_t ntunnels;
};

void admin_json_begin(struct json *j, struct buf *b)
{
	buf_init(b);
	json_init(j, b);
	json_object(j, NULL);
}

void admin_reply(struct http_req *r, int code, struct json *j, struct buf *b)
{
	if (json_finish(j) < 0)
		http_reply(r, 500, NULL, NULL, 0);
	else
		http_reply(r, code, "application/json", buf_head(b), buf_len(b));
	buf_release(b);
}

void admin_error(struct http_req *r, int code, const char *msg)
{
	struct json j;
	struct buf b;

	admin_json_begin(&j, &b);
	json_str(&j, "error", msg);
	admin_reply(r, code, &j, &b);
}

bool admin_want_post(struct http_req *r)
{
	if (http_req_method(r) == HTTP_POST)
		return true;
	admin_error(r, 405, "use POST");
	return false;
}

bool admin_want_get(struct http_req *r)
{
	if (http_req_method(r) == HTTP_GET)
		return true;
	admin_error(r, 405, "use GET");
	return false;
}

void admin_tunnel_bytes(const struct admin_tunnel *t, uint64_t *up, uint64_t *down)
{
	*up = *down = 0;
	if (t->relay)
		relay_bytes(t->relay, up, down);
}

/* t's rate in bytes per second, each way, over the last one to two seconds (longer when the
 * list is read seldom): from the older of two samples the reads leave behind to now. */
static void rate(struct admin_tunnel *t, uint64_t now, uint64_t up, uint64_t down, uint64_t *ru,
		 uint64_t *rd)
{
	uint64_t dt;

	if (now - t->sample[1].ms >= ADMIN_RATE_MS) {
		t->sample[0] = t->sample[1];
		t->sample[1].ms = now;
		t->sample[1].up = up;
		t->sample[1].down = down;
	}
	dt = now - t->sample[0].ms;
	*ru = dt ? (up - t->sample[0].up) * 1000 / dt : 0;
	*rd = dt ? (down - t->sample[0].down) * 1000 / dt : 0;
}

void admin_json_status(struct admin *a, struct json *j)
{
	json_str(j, "daemon", a->daemon);
	json_str(j, "version", NTUN_VERSION);
	json_str(j, "identity", a->identity);
	json_u64(j, "pid", (uint64_t)getpid());
	json_u64(j, "uptime_s", (loop_now_ms() - a->start_ms) / 1000);
	json_u64(j, "tunnels_open", a->ntunnels);
	if (a->ops && a->ops->status)
		a->ops->status(a->arg, j);
}

static void on_status(struct http_req *r, const char *path, void *arg)
{
	struct json j;
	struct buf b;

	if (!admin_want_get(r))
		return;
	admin_json_begin(&j, &b);
	admin_json_status(arg, &j);
	admin_reply(r, 200, &j, &b);
}

static bool parse_size(const char *s, size_t *v)
{
	char *end;
	unsigned long long x;

	if (!s || !*s || *s == '-')
		return false;
	errno = 0;
	x = strtoull(s, &end, 10);
	if (errno || *end || x > 1000000000ull)
		return false;
	*v = (size_t)x;
	return true;
}

void admin_json_tunnels(struct admin *a, struct json *j, size_t offset, size_t limit)
{
	uint64_t now = loop_now_ms(), up, down, ru, rd;
	size_t i = 0, n = 0;
	struct admin_tunnel *t;

	json_u64(j, "count", a->ntunnels);
	json_u64(j, "offset", offset);
	json_array(j, "tunnels");
	for (t = a->ops && a->ops->tunnel_id ? a->head : NULL; t && n < limit; t = t->next) {
		if (i++ < offset)
			continue;
		n++;
		admin_tunnel_bytes(t, &up, &down);
		rate(t, now, up, down, &ru, &rd);
		json_object(j, NULL);
		json_str(j, "conn_id", a->ops->tunnel_id(a->arg, t));
		if (a->ops->tunnel)
			a->ops->tunnel(a->arg, t, j);
		json_u64(j, "age_ms", now - t->start_ms);
		json_u64(j, "bytes_up", up);
		json_u64(j, "bytes_down", down);
		json_u64(j, "rate_up", ru);
		json_u64(j, "rate_down", rd);
		json_end(j);
	}
	json_end(j);
	json_u64(j, "returned", n);
	json_bool(j, "truncated", offset + n < a->ntunnels);
}

static void on_tunnels(struct http_req *r, const char *path, void *arg)
{
	struct admin *a = arg;
	size_t limit = ADMIN_PAGE_DEFAULT, offset = 0;
	char q[32];
	struct json j;
	struct buf b;

	if (!admin_want_get(r))
		return;
	if (!a->ops || !a->ops->tunnel_id) {
		admin_error(r, 501, "this daemon does not list tunnels");
		return;
	}
	if ((http_req_query(r, "limit", q, sizeof(q)) && !parse_size(q, &limit)) ||
	    (http_req_query(r, "offset", q, sizeof(q)) && !parse_size(q, &offset))) {
		admin_error(r, 400, "limit and offset are numbers");
		return;
	}
	if (limit > ADMIN_PAGE_MAX || limit == 0)
		limit = ADMIN_PAGE_MAX;
	admin_json_begin(&j, &b);
	admin_json_tunnels(a, &j, offset, limit);
	admin_reply(r, 200, &j, &b);
}

/* POST /v1/tunnels/<conn-id>/close */
static void on_tunnel_action(struct http_req *r, const char *path, void *arg)
{
	struct admin *a = arg;
	const char *id = path + strlen("/v1/tunnels/"), *slash = strchr(id, '/');
	size_t idlen = slash ? (size_t)(slash - id) : 0;
	struct admin_tunnel *t, *found = NULL;
	unsigned matches = 0;
	char msg[96];

	if (!slash || strcmp(slash, "/close") || idlen == 0) {
		admin_error(r, 404, "no such endpoint: POST /v1/tunnels/CONN-ID/close");
		return;
	}
	if (!admin_want_post(r))
		return;
	/* Ids hash the 4-tuple only: containers with overlapping networks can share one, and
	 * then no one of them is reset on a guess. */
	for (t = a->ops && a->ops->tunnel_id ? a->head : NULL; t; t = t->next) {
		const char *tid = a->ops->tunnel_id(a->arg, t);

		if (strlen(tid) == idlen && !memcmp(tid, id, idlen) && !matches++)
			found = t;
	}
	t = found;
	snprintf(msg, sizeof(msg), "%.*s", (int)(idlen < 64 ? idlen : 64), id);
	if (!t || matches > 1) {
		char why[160];

		if (matches > 1) {
			snprintf(why, sizeof(why), "%u open tunnels have the id %s", matches, msg);
			admin_error(r, 409, why);
		} else {
			snprintf(why, sizeof(why), "no open tunnel %s", msg);
			admin_error(r, 404, why);
		}
		return;
	}
	log_write(LOG_LVL_INFO, msg, NULL, "tunnel reset by the admin API");
	relay_abort(t->relay, ECONNRESET); /* the done callback unlinks and frees t */
	{
		struct json j;
		struct buf b;

		admin_json_begin(&j, &b);
		json_str(&j, "closed", msg);
		admin_reply(r, 200, &j, &b);
	}
}

static void on_reload(struct http_req *r, const char *path, void *arg)
{
	struct admin *a = arg;
	char err[512] = "";
	struct json j;
	struct buf b;
	int rv;

	if (!admin_want_post(r))
		return;
	if (!a->reload) {
		admin_error(r, 501, "reload not supported");
		return;
	}
	log_info("admin API: reloading the configuration");
	rv = a->reload(a->reload_arg, err, sizeof(err));
	admin_json_begin(&j, &b);
	json_bool(&j, "ok", rv == 0);
	if (rv < 0)
		json_str(&j, "error", err);
	admin_reply(r, rv == 0 ? 200 : 409, &j, &b);
}

struct admin *admin_new(struct loop *l, const char *path, const char *daemon, const char *identity,
			admin_reload_cb *reload, void *reload_arg, char *err, size_t errsz)
{
	struct http_opts o = {.max_header = 8192, .max_body = 4096, .max_conns = 32};
	struct admin *a = calloc(1, sizeof(*a));

	if (!a || !(a->identity = strdup(identity ? identity : ""))) {
		free(a);
		snprintf(err, errsz, "out of memory");
		return NULL;
	}
	a->http = http_new(l, path, &o, err, errsz);
	if (!a->http) {
		free(a->identity);
		free(a);
		return NULL;
	}
	snprintf(a->daemon, sizeof(a->daemon), "%s", daemon);
	a->reload = reload;
	a->reload_arg = reload_arg;
	a->start_ms = loop_now_ms();
	http_route(a->http, "/v1/status", on_status, a);
	http_route(a->http, "/v1/tunnels", on_tunnels, a);
	http_route(a->http, "/v1/tunnels/", on_tunnel_action, a);
	http_route(a->http, "/v1/reload", on_reload, a);
	return a;
}

void admin_free(struct admin *a)
{
	if (!a)
		return;
	http_free(a->http);
	free(a->identity);
	free(a);
}

void admin_set_ops(struct admin *a, const struct admin_ops *ops, void *arg)
{
	if (!a)
		return;
	a->ops = ops;
	a->arg = arg;
}

int admin_route(struct admin *a, const char *path, admin_handler_cb *cb, void *arg)
{
	return a ? http_route(a->http, path, cb, arg) : 0;
}

void admin_tunnel_add(struct admin *a, struct admin_tunnel *t, struct relay *r)
{
	if (!a || !r)
		return;
	t->relay = r;
	t->start_ms = loop_now_ms();
	memset(t->sample, 0, sizeof(t->sample));
	t->sample[0].ms = t->sample[1].ms = t->start_ms;
	t->next = NULL;
	t->prev = a->tail;
	if (a->tail)
		a->tail->next = t;
	else
		a->head = t;
	a->tail = t;
	a->ntunnels++;
}

void admin_tunnel_del(struct admin *a, struct admin_tunnel *t)
{
	if (!a || !t->relay)
		return;
	if (t->prev)
		t->prev->next = t->next;
	else
		a->head = t->next;
	if (t->next)
		t->next->prev = t->prev;
	else
		a->tail = t->prev;
	t->next = t->prev = NULL;
	t->relay = NULL;
	a->ntunnels--;
}

size_t admin_tunnel_count(const struct admin *a)
{
	return a ? a->ntunnels : 0;
}

struct admin_tunnel *admin_tunnels(const struct admin *a)
{
	return a ? a->head : NULL;
}
