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

/* ---- labelled metrics and histograms ----
 * A vec is a few metric families that share their label names (e.g. route and proxy), with one
 * row of values, one per family, for each set of label values. Rows are made on first use and
 * live as long as m; label values come from configuration or peer ids, so a vec holds at most
 * METRICS_VEC_ROWS rows: label sets beyond that all count in one row whose every label is
 * "other", and a peer cannot make it grow. Values are escaped in the exposition. */
#define METRICS_VEC_ROWS   1024
#define METRICS_VEC_LABELS 4
#define METRICS_VEC_SERIES 8
#define METRICS_LABEL_MAX  255 /* bytes of a label value kept; the rest is cut */

struct buf;
struct metrics_vec;
struct metrics_hist;

struct metrics_series {
	enum metrics_type type;
	const char *name; /* ntun_*, no labels */
	const char *help;
};

/* A vec of nseries families (at most METRICS_VEC_SERIES) with nlabels label names (at most
 * METRICS_VEC_LABELS; Prometheus label names). Names, help and label names are borrowed (static
 * strings). NULL if m is NULL, if the counts are out of range, or out of memory. */
struct metrics_vec *metrics_vec_new(struct metrics *m, const char *const *labels, size_t nlabels,
				    const struct metrics_series *series, size_t nseries);

/* The row for these label values (one per label name, any bytes, cut at METRICS_LABEL_MAX):
 * nseries counters, in the order of the series, for the caller to add to (and subtract from,
 * for gauges). Never NULL: a full vec gives its "other" row, and a NULL vec (metrics off) or
 * one out of memory a scratch row nobody reads. Valid as long as the vec's metrics. */
uint64_t *metrics_vec_row(struct metrics_vec *v, const char *const *values);

/* A histogram with fixed buckets: bounds_ms ascending upper bounds in milliseconds (n at most
 * 32, borrowed), exposed in seconds as name_bucket{le=...}, name_sum and name_count. NULL if m
 * is NULL or out of memory. */
struct metrics_hist *metrics_hist_new(struct metrics *m, const char *name, const char *help,
				      const uint32_t *bounds_ms, size_t n);

/* Counts one observation of ms milliseconds. A NULL h is a no-op. */
void metrics_hist_observe(struct metrics_hist *h, uint64_t ms);

/* A registry with no listener: metrics_render() is its only reader (tests, or a daemon that
 * serves the exposition some other way). NULL if out of memory. Freed by metrics_free(). */
struct metrics *metrics_registry_new(void);

/* Appends the exposition (text format 0.0.4) of everything registered in m to out: plain
 * metrics in the order they were added, then vecs, then histograms. 0 or -ENOMEM. */
int metrics_render(struct metrics *m, struct buf *out);

/* True if a Host header value names this host's loopback: "localhost" (any case), an IPv4
 * address in 127.0.0.0/8 (dotted quad, no leading zeros) or "[::1]", each with an optional
 * ":port" (1..65535). Anything else, notably a DNS name that a page in a local browser could
 * point at 127.0.0.1 (DNS rebinding), is refused. len bytes of value, no NUL needed. */
bool metrics_host_allowed(const char *value, size_t len);

#endif
