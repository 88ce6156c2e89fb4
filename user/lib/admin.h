/* SPDX-License-Identifier: MIT */
/* The admin API every daemon serves on a local unix socket: HTTP with JSON bodies (curl
 * --unix-socket works; ntunctl is its client). Owns the endpoints all daemons share (status,
 * the open tunnels with live bytes and rates, closing one, reload) and the list of tunnels;
 * a daemon adds its own (peers, routes, drain) with admin_route. Access is the socket's
 * mode (0600): whoever can connect may act. */
#ifndef NTUN_ADMIN_H
#define NTUN_ADMIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct admin;
struct http_req;
struct json;
struct loop;
struct relay;

/* A relaying tunnel as the API lists it, embedded in the daemon's own per-tunnel struct and
 * linked while its relay runs (admin_tunnel_add after relay_new, admin_tunnel_del in the
 * relay's done callback). a->b of the relay is "up" (toward the destination). */
struct admin_tunnel {
	struct admin_tunnel *next, *prev;
	struct relay *relay;
	uint64_t start_ms;
	/* Two samples of the bytes, taken by reads of the list at least ADMIN_RATE_MS apart:
	 * the rate is measured from the older one to now. */
	struct {
		uint64_t ms, up, down;
	} sample[2];
};

struct admin_ops {
	/* The daemon's members of GET /v1/status (connections, counts). */
	void (*status)(void *arg, struct json *j);
	/* The tunnel's conn id (what `close` takes). */
	const char *(*tunnel_id)(void *arg, const struct admin_tunnel *t);
	/* The daemon's members of one tunnel (client, source, destination, proxy, ...). */
	void (*tunnel)(void *arg, const struct admin_tunnel *t, struct json *j);
};

/* POST /v1/reload: re-reads the configuration. 0, or -errno with the reason in err. */
typedef int admin_reload_cb(void *arg, char *err, size_t errsz);

/* Serves the API on the unix socket path for daemon ("server", ...) with identity (its
 * SPIFFE id, copied). Returns NULL with the reason in err. */
struct admin *admin_new(struct loop *l, const char *path, const char *daemon, const char *identity,
			admin_reload_cb *reload, void *reload_arg, char *err, size_t errsz);

/* Stops serving and removes the socket. Tunnels still linked are forgotten. NULL ok. */
void admin_free(struct admin *a);

/* Sets the daemon's callbacks (ops borrowed; any member may be NULL). NULL a: no-op. */
void admin_set_ops(struct admin *a, const struct admin_ops *ops, void *arg);

/* Links t (relay r just started) / unlinks it. NULL a: no-op (t is left zeroed). */
void admin_tunnel_add(struct admin *a, struct admin_tunnel *t, struct relay *r);
void admin_tunnel_del(struct admin *a, struct admin_tunnel *t);

/* Bytes of t so far, a->b and b->a, read live from its relay. */
void admin_tunnel_bytes(const struct admin_tunnel *t, uint64_t *up, uint64_t *down);

/* The struct of type embedding t as member. */
#define admin_tunnel_owner(t, type, member) ((type *)((char *)(t)-offsetof(type, member)))

/* The oldest linked tunnel (follow ->next), NULL if none or a is NULL. */
struct admin_tunnel *admin_tunnels(const struct admin *a);

/* Tunnels linked now. */
size_t admin_tunnel_count(const struct admin *a);

/* A daemon's own endpoint (see http_route): cb answers with admin_reply or admin_error. */
typedef void admin_handler_cb(struct http_req *r, const char *path, void *arg);
int admin_route(struct admin *a, const char *path, admin_handler_cb *cb, void *arg);

/* Starts a JSON answer object in j; admin_reply finishes and sends it with code. */
struct buf;
void admin_json_begin(struct json *j, struct buf *b);
void admin_reply(struct http_req *r, int code, struct json *j, struct buf *b);

/* Answers {"error": msg} with code (4xx/5xx). */
void admin_error(struct http_req *r, int code, const char *msg);

/* Requires method POST (GET for reads): false after answering 405 otherwise. */
bool admin_want_post(struct http_req *r);
bool admin_want_get(struct http_req *r);

#endif
