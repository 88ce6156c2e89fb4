/* SPDX-License-Identifier: MIT */
/* Prometheus text exposition (format 0.0.4) of a daemon's counters and gauges over plain HTTP
 * on a loopback address, opt-in. Reads values where the daemon keeps them; keeps none itself
 * and serves nothing but GET /metrics. */
#ifndef NTUN_METRICS_H
#define NTUN_METRICS_H

#include <stddef.h>
#include <stdint.h>

struct loop;
struct metrics;

/* Listens on addr ("127.0.0.1:PORT"; only loopback addresses are accepted, so metrics never
 * leave the host). Returns NULL with a reason in err on failure. */
struct metrics *metrics_new(struct loop *l, const char *addr, char *err, size_t errsz);
void metrics_free(struct metrics *m);

enum metrics_type { METRICS_COUNTER, METRICS_GAUGE };

/* Exposes *v (borrowed: must outlive m) under name (ntun_*, may end in a {label="..."} set)
 * with help text. A NULL m is a no-op, so daemons register whether or not metrics are on. */
void metrics_add(struct metrics *m, enum metrics_type type, const char *name, const char *help,
		 const uint64_t *v);

/* Exposes a value computed at scrape time. */
typedef uint64_t metrics_fn(void *arg);
void metrics_add_fn(struct metrics *m, enum metrics_type type, const char *name, const char *help,
		    metrics_fn *fn, void *arg);

#endif
