// SPDX-License-Identifier: MIT
/* The status page and its JSON. The daemon's byte totals are sampled once a second into a ring
 * (STATUS_HISTORY seconds); everything else is read when status.json is asked for, so an idle
 * page costs the daemon one timer a second and nothing per tunnel. */
#include "status.h"

#include <stdlib.h>

#include "admin.h"
#include "buf.h"
#include "daemon.h"
#include "http.h"
#include "json.h"
#include "log.h"
#include "loop.h"
#include "metrics.h"
#include "tls.h"

#define STATUS_TICK_MS	   1000
#define STATUS_TUNNELS_MAX 200 /* tunnels listed; the page says how many more are open */

extern const unsigned char status_html[];
extern const size_t status_html_len;

struct status {
	struct daemon *d;
	struct loop_timer *tick;
	uint64_t start_ms;
	uint64_t next_ms;	     /* when the next tick is due: start + k seconds, no drift */
	uint64_t last_up, last_down; /* totals at the last tick */
	uint32_t head, count;	     /* ring: next slot to write, slots filled */
	uint64_t up[STATUS_HISTORY], down[STATUS_HISTORY]; /* bytes moved in each second */
	status_json_cb *json;
	void *arg;
};

static void on_tick(struct loop_timer *t, void *arg)
{
	struct status *st = arg;
	const struct daemon_stats *s = &st->d->stats;
	uint64_t now;

	st->up[st->head] = s->bytes_up - st->last_up;
	st->down[st->head] = s->bytes_down - st->last_down;
	st->last_up = s->bytes_up;
	st->last_down = s->bytes_down;
	st->head = (st->head + 1) % STATUS_HISTORY;
	if (st->count < STATUS_HISTORY)
		st->count++;
	now = loop_now_ms();
	st->next_ms += STATUS_TICK_MS;
	if (st->next_ms < now) /* the loop was held up: catch up, don't repeat the slots */
		st->next_ms = now;
	loop_timer_arm(t, (uint32_t)(st->next_ms - now));
}

static void history(const struct status *st, struct json *j, const char *key, const uint64_t *ring)
{
	uint32_t first = (st->head + STATUS_HISTORY - st->count) % STATUS_HISTORY;

	json_array(j, key);
	for (uint32_t i = 0; i < st->count; i++)
		json_u64(j, NULL, ring[(first + i) % STATUS_HISTORY]);
	json_end(j);
}

static void on_json(struct http_req *r, const char *path, void *arg)
{
	struct status *st = arg;
	struct daemon *d = st->d;
	struct buf b = BUF_INIT;
	struct json j;

	if (http_req_method(r) != HTTP_GET) {
		http_reply(r, 405, NULL, NULL, 0);
		return;
	}
	json_init(&j, &b);
	json_object(&j, NULL);
	json_str(&j, "daemon", d->name);
	json_str(&j, "version", NTUN_VERSION);
	json_str(&j, "id", tls_ctx_identity(d->tls)->uri);
	json_u64(&j, "uptime_ms", loop_now_ms() - st->start_ms);
	json_object(&j, "totals");
	json_u64(&j, "bytes_up", d->stats.bytes_up);
	json_u64(&j, "bytes_down", d->stats.bytes_down);
	json_u64(&j, "tunnels_open", d->stats.tunnels_active);
	json_u64(&j, "tunnels_total", d->stats.tunnels_total);
	json_u64(&j, "tunnels_failed", d->stats.tunnels_failed);
	json_u64(&j, "refused", d->stats.refused_total);
	json_end(&j);
	json_object(&j, "history");
	json_u64(&j, "interval_ms", STATUS_TICK_MS);
	json_u64(&j, "slots", STATUS_HISTORY);
	history(st, &j, "up", st->up);
	history(st, &j, "down", st->down);
	json_end(&j);
	if (d->admin) { /* what the admin API lists, read-only, the first tunnels only */
		json_object(&j, "status");
		admin_json_status(d->admin, &j);
		json_end(&j);
		admin_json_tunnels(d->admin, &j, 0, STATUS_TUNNELS_MAX);
	}
	if (st->json)
		st->json(st->arg, &j);
	if (json_finish(&j) < 0)
		http_reply(r, 500, NULL, NULL, 0);
	else
		http_reply(r, 200, "application/json", buf_head(&b), buf_len(&b));
	buf_release(&b);
}

static void on_page(struct http_req *r, const char *path, void *arg)
{
	if (http_req_method(r) != HTTP_GET) {
		http_reply(r, 405, NULL, NULL, 0);
		return;
	}
	http_reply(r, 200, "text/html; charset=utf-8", status_html, status_html_len);
}

struct status *status_new(struct daemon *d)
{
	struct http *h = metrics_http(d->metrics);
	struct status *st;

	if (!h)
		return NULL;
	st = calloc(1, sizeof(*st));
	if (!st || !(st->tick = loop_timer_new(d->loop, on_tick, st))) {
		free(st);
		log_warn("status page off: out of memory");
		return NULL;
	}
	st->d = d;
	st->start_ms = loop_now_ms();
	if (http_route(h, "/status.json", on_json, st) < 0 || http_route(h, "/", on_page, st) < 0) {
		loop_timer_free(st->tick);
		free(st);
		log_warn("status page off: no room for its routes");
		return NULL;
	}
	st->next_ms = st->start_ms + STATUS_TICK_MS;
	loop_timer_arm(st->tick, STATUS_TICK_MS);
	return st;
}

void status_set_json(struct status *st, status_json_cb *cb, void *arg)
{
	if (!st)
		return;
	st->json = cb;
	st->arg = arg;
}

void status_free(struct status *st)
{
	if (!st)
		return;
	loop_timer_free(st->tick);
	free(st);
}
