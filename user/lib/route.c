// SPDX-License-Identifier: MIT
/* IPv4 prefix parsing and the route table: a sorted array (longest prefix first) searched
 * linearly, which is plenty for tables of tens of routes; no trie, no locking. */
#include "route.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Entries are kept sorted by (virt.len descending, virt.addr ascending), insertion order
 * among equals, so the routes sharing one virtual prefix form a contiguous group. The first
 * entry of a group holds the group's round-robin cursor. */
struct route_entry {
	struct route r;
	unsigned rr;
};

struct route_table {
	struct route_entry *e;
	size_t n;
	size_t cap;
};

static uint32_t prefix_mask(uint8_t len)
{
	return len ? 0xffffffffu << (32 - len) : 0;
}

/* Parses 1..5 decimal digits (no sign, no leading zero unless the number is 0) as a number
 * <= max. Advances *s past the digits. */
static int parse_dec(const char **s, unsigned max, unsigned *out)
{
	const char *p = *s;
	unsigned v = 0;
	int n = 0;

	while (*p >= '0' && *p <= '9') {
		if (n == 5)
			return -EINVAL;
		v = v * 10 + (unsigned)(*p - '0');
		p++;
		n++;
	}
	if (n == 0 || (n > 1 && **s == '0') || v > max)
		return -EINVAL;
	*s = p;
	*out = v;
	return 0;
}

/* Parses a dotted quad at *s, advancing past it. */
static int parse_ipv4(const char **s, uint32_t *out)
{
	uint32_t addr = 0;
	unsigned octet;

	for (int i = 0; i < 4; i++) {
		if (i > 0) {
			if (**s != '.')
				return -EINVAL;
			(*s)++;
		}
		if (parse_dec(s, 255, &octet))
			return -EINVAL;
		addr = addr << 8 | octet;
	}
	*out = addr;
	return 0;
}

int cidr_parse(const char *s, struct cidr *out)
{
	uint32_t addr;
	unsigned len = 32;

	if (!s || parse_ipv4(&s, &addr))
		return -EINVAL;
	if (*s == '/') {
		s++;
		if (parse_dec(&s, 32, &len))
			return -EINVAL;
	}
	if (*s != '\0' || (addr & ~prefix_mask((uint8_t)len)))
		return -EINVAL;
	out->addr = addr;
	out->len = (uint8_t)len;
	return 0;
}

char *cidr_format(const struct cidr *c, char *buf, size_t size)
{
	snprintf(buf, size, "%u.%u.%u.%u/%u", c->addr >> 24, c->addr >> 16 & 0xff,
		 c->addr >> 8 & 0xff, c->addr & 0xff, c->len);
	return buf;
}

bool cidr_contains(const struct cidr *c, uint32_t addr)
{
	return ((addr ^ c->addr) & prefix_mask(c->len)) == 0;
}

bool cidr_list_allows(const struct cidr *list, size_t n, uint32_t addr)
{
	for (size_t i = 0; i < n; i++)
		if (cidr_contains(&list[i], addr))
			return true;
	return n == 0;
}

bool cidr_within(const struct cidr *inner, const struct cidr *outer)
{
	return inner->len >= outer->len && cidr_contains(outer, inner->addr);
}

bool cidr_overlap(const struct cidr *a, const struct cidr *b)
{
	return cidr_within(a, b) || cidr_within(b, a);
}

int ipport_parse(const char *s, uint32_t *addr, uint16_t *port)
{
	uint32_t a;
	unsigned p;

	if (!s || parse_ipv4(&s, &a) || *s++ != ':' || parse_dec(&s, 65535, &p) || p == 0 ||
	    *s != '\0')
		return -EINVAL;
	*addr = a;
	*port = (uint16_t)p;
	return 0;
}

char *ipport_format(uint32_t addr, uint16_t port, char *buf, size_t size)
{
	snprintf(buf, size, "%u.%u.%u.%u:%u", addr >> 24, addr >> 16 & 0xff, addr >> 8 & 0xff,
		 addr & 0xff, port);
	return buf;
}

struct route_table *route_table_new(void)
{
	return calloc(1, sizeof(struct route_table));
}

void route_table_free(struct route_table *t)
{
	if (!t)
		return;
	free(t->e);
	free(t);
}

static bool cidr_equal(const struct cidr *a, const struct cidr *b)
{
	return a->addr == b->addr && a->len == b->len;
}

static bool cidr_valid(const struct cidr *c)
{
	return c->len <= 32 && !(c->addr & ~prefix_mask(c->len));
}

/* True if a sorts strictly before b (longer prefix first, then lower address). */
static bool prefix_before(const struct cidr *a, const struct cidr *b)
{
	if (a->len != b->len)
		return a->len > b->len;
	return a->addr < b->addr;
}

int route_add(struct route_table *t, const struct route *r)
{
	struct route_entry *e;
	size_t i;

	if (!t || !r || r->virt.len != r->real.len || !cidr_valid(&r->virt) ||
	    !cidr_valid(&r->real) || !memchr(r->proxy_id, '\0', sizeof(r->proxy_id)))
		return -EINVAL;
	for (i = 0; i < t->n; i++) {
		const struct route *o = &t->e[i].r;

		if (cidr_equal(&o->virt, &r->virt) && cidr_equal(&o->real, &r->real) &&
		    o->owner == r->owner && !strcmp(o->proxy_id, r->proxy_id))
			return 0;
	}
	if (t->n == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 8;

		e = realloc(t->e, cap * sizeof(*e));
		if (!e)
			return -ENOMEM;
		t->e = e;
		t->cap = cap;
	}
	/* Insert after every entry that sorts before or equal to r: the end of its group. */
	for (i = 0; i < t->n; i++) {
		if (prefix_before(&r->virt, &t->e[i].r.virt))
			break;
	}
	memmove(&t->e[i + 1], &t->e[i], (t->n - i) * sizeof(*t->e));
	memset(&t->e[i], 0, sizeof(t->e[i]));
	t->e[i].r = *r;
	t->n++;
	return 0;
}

size_t route_remove_owner(struct route_table *t, const void *owner)
{
	size_t i, kept = 0, removed;

	if (!t)
		return 0;
	for (i = 0; i < t->n; i++) {
		if (t->e[i].r.owner != owner)
			t->e[kept++] = t->e[i];
	}
	removed = t->n - kept;
	t->n = kept;
	return removed;
}

/* Offers the group of equal prefixes e[first..end) to accept in round-robin order. */
static const struct route *group_pick(struct route_table *t, size_t first, size_t end,
				      route_accept_cb *accept, void *arg)
{
	size_t n = end - first;
	unsigned start = t->e[first].rr % n;

	for (size_t k = 0; k < n; k++) {
		const struct route *r = &t->e[first + (start + k) % n].r;

		if (accept && !accept(r, arg))
			continue;
		t->e[first].rr = (unsigned)((start + k + 1) % n);
		return r;
	}
	return NULL;
}

const struct route *route_lookup(struct route_table *t, uint32_t addr, uint32_t *real_addr,
				 route_accept_cb *accept, void *arg)
{
	const struct route *hit = NULL;
	size_t first, end;

	if (!t)
		return NULL;
	/* Groups come longest prefix first: the first group with a usable route wins. */
	for (first = 0; first < t->n && !hit; first = end) {
		for (end = first + 1; end < t->n; end++) {
			if (!cidr_equal(&t->e[end].r.virt, &t->e[first].r.virt))
				break;
		}
		if (cidr_contains(&t->e[first].r.virt, addr))
			hit = group_pick(t, first, end, accept, arg);
	}
	if (hit && real_addr)
		*real_addr = hit->real.addr | (addr & ~prefix_mask(hit->real.len));
	return hit;
}

size_t route_count(const struct route_table *t)
{
	return t ? t->n : 0;
}

const struct route *route_at(const struct route_table *t, size_t i)
{
	return t && i < t->n ? &t->e[i].r : NULL;
}

bool route_granted(const struct route_grant *g, size_t n, const char *id, const struct cidr *c)
{
	for (size_t i = 0; i < n; i++) {
		if ((!strcmp(g[i].proxy_id, id) || !strcmp(g[i].proxy_id, "*")) &&
		    cidr_within(c, &g[i].prefix))
			return true;
	}
	return false;
}

int route_claim_check(const struct route_table *t, const struct route_grant *g, size_t n,
		      const char *id, const struct cidr *virt, const struct route **conflict)
{
	if (n && !route_granted(g, n, id, virt))
		return -EPERM;
	for (size_t i = 0; t && i < t->n; i++) {
		const struct route *o = &t->e[i].r;
		const struct cidr *larger;

		if (!strcmp(o->proxy_id, id) || !cidr_overlap(&o->virt, virt))
			continue;
		larger = o->virt.len < virt->len ? &o->virt : virt;
		if (n && route_granted(g, n, id, larger) &&
		    route_granted(g, n, o->proxy_id, larger))
			continue;
		if (conflict)
			*conflict = o;
		return -EEXIST;
	}
	return 0;
}

int policy_dest_parse(const char *s, struct policy_rule *r)
{
	const char *colon = s ? strchr(s, ':') : NULL;
	char net[20];
	unsigned lo = 1, hi = 65535;

	if (!s || (colon ? (size_t)(colon - s) : strlen(s)) >= sizeof(net))
		return -EINVAL;
	snprintf(net, sizeof(net), "%.*s", (int)(colon ? colon - s : (long)strlen(s)), s);
	if (cidr_parse(net, &r->net) < 0)
		return -EINVAL;
	if (colon) {
		s = colon + 1;
		if (parse_dec(&s, 65535, &lo) || lo == 0)
			return -EINVAL;
		hi = lo;
		if (*s == '-') {
			s++;
			if (parse_dec(&s, 65535, &hi) || hi < lo)
				return -EINVAL;
		}
		if (*s != '\0')
			return -EINVAL;
	}
	r->port_lo = (uint16_t)lo;
	r->port_hi = (uint16_t)hi;
	return 0;
}

bool policy_allows(const struct policy_rule *r, size_t n, const char *client, uint32_t addr,
		   uint16_t port)
{
	for (size_t i = 0; i < n; i++) {
		if ((!strcmp(r[i].client, "*") || !strcmp(r[i].client, client)) &&
		    cidr_contains(&r[i].net, addr) && port >= r[i].port_lo && port <= r[i].port_hi)
			return true;
	}
	return false;
}
