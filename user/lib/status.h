/* SPDX-License-Identifier: MIT */
/* The status page on a daemon's metrics listener: GET / is a self-contained HTML page
 * (status.html, built into the binary) that draws itself from GET /status.json once a second:
 * totals, a throughput history, what the admin API lists as status and open tunnels (when the
 * admin API is on: it keeps the tunnel list), and the daemon's own sections (the server's peers
 * and routes). Read-only; the metrics listener's Host check and limits apply. */
#ifndef NTUN_STATUS_H
#define NTUN_STATUS_H

#include <stdint.h>

struct daemon;
struct json;
struct status;

#define STATUS_HISTORY 600 /* seconds of per-second byte totals kept (10 minutes) */

/* Writes the daemon's members of status.json (e.g. "peers", "routes", "tunnels") into j, an
 * open object. See status.html for what the page shows of them. */
typedef void status_json_cb(void *arg, struct json *j);

/* Serves the page and status.json on d's metrics listener and samples d's byte totals every
 * second. NULL if metrics are off (nothing to serve on) or out of memory (logged). */
struct status *status_new(struct daemon *d);

/* The daemon's own members of status.json (replaces any set before); cb NULL: none. */
void status_set_json(struct status *st, status_json_cb *cb, void *arg);

/* NULL ok. */
void status_free(struct status *st);

#endif
