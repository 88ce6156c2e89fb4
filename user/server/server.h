/* SPDX-License-Identifier: MIT */
/* ntun-server's service logic: accepts clients and proxies on one TLS listener, registers
 * proxies and their routes, serves Relay/Connect by opening Connector/Dial on a proxy and
 * joining the two calls in a relay. Configuration and start-up are in main.c. */
#ifndef NTUN_SERVER_H
#define NTUN_SERVER_H

#include <stddef.h>

struct daemon;
struct server;

/* Builds the listener and route table from d->cfg. fatal() on start-up errors. */
struct server *server_new(struct daemon *d);

/* SIGHUP: replaces the configured routes and the proxy grants with nc's and pushes the table
 * to clients. A registered proxy that nc's grants no longer allow (outside its grants, or
 * overlapping an older registration of another id without a shared grant) loses all its
 * routes at once, is told why, and its connection drains. 0, or -ENOMEM with nothing changed
 * and err set. */
struct config;
int server_reload(struct server *s, const struct config *nc, char *err, size_t errsz);

/* Stops accepting, drains every peer, and stops the loop when all are gone (or at the drain
 * deadline). */
void server_stop(struct server *s);

void server_free(struct server *s);

#endif
