/* SPDX-License-Identifier: MIT */
/* Prometheus text exposition (format 0.0.4) of a daemon's counters and gauges over plain HTTP
 * on a loopback address, opt-in. Reads values where the daemon keeps them; keeps none itself
 * but its own refusals, and serves nothing but GET /metrics to requests whose Host is loopback
 * (http.c: slow clients are cut off by a deadline, and cannot hold every connection slot). */
#ifndef NTUN_METRICS_H
#define NTUN_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct http;
struct loop;
struct metrics;

/* Listens on addr ("127.0.0.1:PORT"; only loopback addresses are accepted, so metrics never
 * leave the host). Returns NULL with a reason in err on failure. */
struct metrics *metrics_new(struct loop *l, const char *addr, char *err, size_t errsz);
void metrics_free(struct metrics *m);

/* The HTTP server behind m (NULL for a NULL m), to serve more local pages on the same port:
 * http_route() on it. Borrowed; lives as long as m. */
struct http *metrics_http(struct metrics *m);

enum metrics_type { METRICS_COUNTER, METRICS_GAUGE };

/* Exposes *v (borrowed: must outlive m) under name (ntun_*, may end in a {label="..."} set)
 * with help text. A NULL m is a no-op, so daemons register whether or not metrics are on. */
void metrics_add(struct metrics *m, enum metrics_type type, const char *name, const char *help,
		 const uint64_t *v);

/* Exposes a value computed at scrape time. */
typedef uint64_t metrics_fn(void *arg);
void metrics_add_fn(struct metrics *m, enum metrics_type type, const char *name, const char *help,
		    metrics_fn *fn, void *arg);

/* True if a Host header value names this host's loopback: "localhost" (any case), an IPv4
 * address in 127.0.0.0/8 (dotted quad, no leading zeros) or "[::1]", each with an optional
 * ":port" (1..65535). Anything else, notably a DNS name that a page in a local browser could
 * point at 127.0.0.1 (DNS rebinding), is refused. len bytes of value, no NUL needed. */
bool metrics_host_allowed(const char *value, size_t len);

#endif
