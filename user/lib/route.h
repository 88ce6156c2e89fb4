/* SPDX-License-Identifier: MIT */
/* IPv4 prefixes and the server's route table: virtual prefix -> (proxy id, real prefix) with
 * longest-prefix match and host bits preserved. Knows nothing of connections or sockets. */
#ifndef NTUN_ROUTE_H
#define NTUN_ROUTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* An IPv4 prefix. addr is in host byte order with the host bits cleared. */
struct cidr {
	uint32_t addr;
	uint8_t len; /* 0..32 */
};

/* Parses "a.b.c.d/len" or a bare "a.b.c.d" (= /32). Host bits set in the input are an error
 * (-EINVAL), as is any trailing garbage. Returns 0 or -EINVAL. */
int cidr_parse(const char *s, struct cidr *out);

/* Formats as "a.b.c.d/len" into buf (at least 19 bytes). Returns buf. */
char *cidr_format(const struct cidr *c, char *buf, size_t size);

/* True if addr (host order) lies inside c. */
bool cidr_contains(const struct cidr *c, uint32_t addr);

/* The server's allow_from check: true if n is 0 (no list: every source) or addr (host order)
 * lies inside one of the n prefixes of list. */
bool cidr_list_allows(const struct cidr *list, size_t n, uint32_t addr);

/* True if inner lies wholly inside outer (equal counts). */
bool cidr_within(const struct cidr *inner, const struct cidr *outer);

/* True if a and b share an address: one of them contains the other. */
bool cidr_overlap(const struct cidr *a, const struct cidr *b);

/* Parses "a.b.c.d:port" (port 1..65535). addr and port in host order. Returns 0 or -EINVAL. */
int ipport_parse(const char *s, uint32_t *addr, uint16_t *port);

/* Formats "a.b.c.d:port" into buf (at least 22 bytes). Returns buf. */
char *ipport_format(uint32_t addr, uint16_t port, char *buf, size_t size);

/* ---- route table ---- */

struct route_table;

struct route {
	struct cidr virt;  /* what clients dial */
	struct cidr real;  /* what the proxy connects to; same length as virt */
	char proxy_id[64]; /* NUL-terminated */
	void *owner; /* borrowed tag of whoever added it (a proxy connection, or NULL = config) */
};

struct route_table *route_table_new(void);
void route_table_free(struct route_table *t);

/* Adds a route (copied). virt.len must equal real.len. An identical (virt, real, proxy_id,
 * owner) entry is not added twice. Returns 0, -EINVAL or -ENOMEM. */
int route_add(struct route_table *t, const struct route *r);

/* Removes every route whose owner is owner. Returns how many were removed. */
size_t route_remove_owner(struct route_table *t, const void *owner);

/* Longest-prefix match of addr (host order) among the routes accept takes (NULL: all). On a
 * hit, *real_addr is addr translated into the route's real prefix (host bits preserved).
 * Among several routes with the same prefix, the one chosen rotates (round robin) so equal
 * routes share the load; accept may veto a candidate (e.g. a proxy that is draining or full)
 * and the next is tried. If every route of the longest matching prefix is vetoed, the next
 * shorter matching prefix is tried, and so on: an address inside a more specific route whose
 * proxies are all gone falls back to the covering route's live proxy. (Route ownership, see
 * route_claim_check, lets another proxy id hold a covering route only where both ids share
 * a grant for it.) Each candidate is offered to accept at most once per call.
 * Returns the route (borrowed, valid until the table changes) or NULL. */
typedef bool route_accept_cb(const struct route *r, void *arg);
const struct route *route_lookup(struct route_table *t, uint32_t addr, uint32_t *real_addr,
				 route_accept_cb *accept, void *arg);

/* Number of routes, and the i-th (0-based, any stable order) for listing/pushing. */
size_t route_count(const struct route_table *t);
const struct route *route_at(const struct route_table *t, size_t i);

/* ---- route ownership ---- */

/* One grant of the server's proxies section: proxy_id ("*" = every proxy) may claim any
 * virtual prefix inside prefix. */
struct route_grant {
	struct cidr prefix;
	char proxy_id[64]; /* NUL-terminated */
};

/* True if c lies inside a grant g[0..n) for proxy id or for "*". */
bool route_granted(const struct route_grant *g, size_t n, const char *id, const struct cidr *c);

/* May proxy id claim the virtual prefix virt, given the routes held in t and the grants
 * g[0..n)? n == 0 means no proxies section: every id may claim any prefix, and no two ids
 * share one. The rules:
 *  - with grants, virt must lie inside a grant for id or "*" (else -EPERM);
 *  - virt may not overlap (contain, lie inside or equal) the virtual prefix of a route in t
 *    held by another proxy id, unless both ids are granted the larger of the two prefixes (a
 *    shared grant: several proxies serve one site). Else -EEXIST and *conflict (if not NULL)
 *    is that route (borrowed, valid until t changes).
 * Routes of id itself never conflict. Whether two claims may coexist does not depend on
 * which came first; of two that may not, the one already in t stays.
 * Returns 0, -EPERM or -EEXIST. */
int route_claim_check(const struct route_table *t, const struct route_grant *g, size_t n,
		      const char *id, const struct cidr *virt, const struct route **conflict);

/* ---- authorization policy ---- */

#define POLICY_CLIENT_LEN 256 /* a client's whole SPIFFE URI, NUL-terminated */

/* One (client, destination) pair of the server's policy section, flattened: client (its
 * whole spiffe:// URI, or "*" = every client) may dial addresses inside net on ports
 * port_lo..port_hi (1..65535 when the rule names no port), as the client dialed them. */
struct policy_rule {
	char client[POLICY_CLIENT_LEN];
	struct cidr net;
	uint16_t port_lo, port_hi;
};

/* Parses a destination "CIDR", "CIDR:PORT" or "CIDR:LO-HI" (ports 1..65535, LO <= HI) into
 * r's net and ports (r->client untouched). Returns 0 or -EINVAL. */
int policy_dest_parse(const char *s, struct policy_rule *r);

/* True if one of r[0..n) lets client (its spiffe:// URI) reach addr:port (host order). With
 * n == 0 nothing is allowed: the caller decides what a missing policy means. */
bool policy_allows(const struct policy_rule *r, size_t n, const char *client, uint32_t addr,
		   uint16_t port);

#endif
