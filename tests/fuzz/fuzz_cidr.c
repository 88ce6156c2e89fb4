// SPDX-License-Identifier: MIT
/* Fuzzes the address parsers (cidr_parse, policy_dest_parse, ipport_parse, conntrack_id_valid)
 * against simple
 * reference parsers, and the route table (lookup with fall back, claim checks under grants)
 * against a linear model under input-driven ops. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "conntrack.h"
#include "fuzz.h"
#include "route.h"

#define MAX_MODEL 256

/* Reference: 1..max_digits decimal digits, no leading zero, value <= max. */
static bool ref_dec(const char **s, unsigned max, unsigned *out)
{
	const char *p = *s;
	unsigned long v = 0;
	int n = 0;

	while (*p >= '0' && *p <= '9' && n < 6) {
		v = v * 10 + (unsigned long)(*p++ - '0');
		n++;
	}
	if (n == 0 || n == 6 || (n > 1 && **s == '0') || v > max)
		return false;
	*s = p;
	*out = (unsigned)v;
	return true;
}

static bool ref_ipv4(const char **s, uint32_t *addr)
{
	unsigned o;

	*addr = 0;
	for (int i = 0; i < 4; i++) {
		if (i && *(*s)++ != '.')
			return false;
		if (!ref_dec(s, 255, &o))
			return false;
		*addr = *addr << 8 | o;
	}
	return true;
}

static uint32_t mask_of(unsigned len)
{
	return len ? ~0u << (32 - len) : 0;
}

static bool ref_cidr(const char *s, struct cidr *c)
{
	uint32_t a;
	unsigned len = 32;

	if (!ref_ipv4(&s, &a))
		return false;
	if (*s == '/') {
		s++;
		if (!ref_dec(&s, 32, &len))
			return false;
	}
	if (*s || (a & ~mask_of(len)))
		return false;
	c->addr = a;
	c->len = (uint8_t)len;
	return true;
}

static bool ref_ipport(const char *s, uint32_t *a, uint16_t *port)
{
	unsigned p;

	if (!ref_ipv4(&s, a) || *s++ != ':' || !ref_dec(&s, 65535, &p) || !p || *s)
		return false;
	*port = (uint16_t)p;
	return true;
}

/* Reference: CIDR, CIDR:PORT or CIDR:LO-HI (1..65535, LO <= HI). */
static bool ref_policy_dest(const char *s, struct cidr *c, unsigned *lo, unsigned *hi)
{
	const char *colon = strchr(s, ':');
	char net[64];

	*lo = 1;
	*hi = 65535;
	snprintf(net, sizeof(net), "%.*s", (int)(colon ? colon - s : (long)strlen(s)), s);
	if (!ref_cidr(net, c))
		return false;
	if (!colon)
		return true;
	s = colon + 1;
	if (!ref_dec(&s, 65535, lo) || !*lo)
		return false;
	*hi = *lo;
	if (*s == '-') {
		s++;
		if (!ref_dec(&s, 65535, hi) || *hi < *lo)
			return false;
	}
	return !*s;
}

/* ---- text ops ---- */

static void op_text(struct fuzz_in *in, char kind)
{
	const uint8_t *p;
	char s[64], fmt[32];
	size_t n = fuzz_take(in, fuzz_u8(in) % sizeof(s), &p);
	struct cidr c, r;
	uint32_t a, ra;
	uint16_t port, rport;
	bool ok;

	memcpy(s, p, n);
	s[n] = 0;
	switch (kind) {
	case 0: {
		struct policy_rule pr;
		unsigned lo, hi;

		memset(&pr, 0, sizeof(pr));
		ok = policy_dest_parse(s, &pr) == 0;
		FUZZ_CHECK(ok == ref_policy_dest(s, &r, &lo, &hi));
		if (ok)
			FUZZ_CHECK(pr.net.addr == r.addr && pr.net.len == r.len &&
				   pr.port_lo == lo && pr.port_hi == hi);
		memset(&c, 0, sizeof(c));
		ok = cidr_parse(s, &c) == 0;
		FUZZ_CHECK(ok == ref_cidr(s, &r));
		if (!ok)
			break;
		FUZZ_CHECK(c.addr == r.addr && c.len == r.len);
		cidr_format(&c, fmt, sizeof(fmt));
		FUZZ_CHECK(cidr_parse(fmt, &r) == 0 && r.addr == c.addr && r.len == c.len);
		FUZZ_CHECK(cidr_contains(&c, c.addr | ~mask_of(c.len)));
		break;
	}
	case 1:
		ok = ipport_parse(s, &a, &port) == 0;
		FUZZ_CHECK(ok == ref_ipport(s, &ra, &rport));
		if (!ok)
			break;
		FUZZ_CHECK(a == ra && port == rport);
		ipport_format(a, port, fmt, sizeof(fmt));
		FUZZ_CHECK(ipport_parse(fmt, &ra, &rport) == 0 && ra == a && rport == port);
		break;
	default:
		ok = strlen(s) == CONNTRACK_ID_LEN &&
		     strspn(s, "0123456789abcdefABCDEF") == strlen(s);
		FUZZ_CHECK(!!conntrack_id_valid(s) == ok);
		break;
	}
}

/* ---- route table against a model ---- */

struct model {
	struct route r[MAX_MODEL];
	size_t n;
};

static uint8_t veto; /* bit i set: proxy "p<i>" refuses */

static bool accept_cb(const struct route *r, void *arg)
{
	(void)arg;
	return !(veto >> (r->proxy_id[1] - '0') & 1);
}

static bool same_route(const struct route *a, const struct route *b)
{
	return a->virt.addr == b->virt.addr && a->virt.len == b->virt.len &&
	       a->real.addr == b->real.addr && a->real.len == b->real.len && a->owner == b->owner &&
	       !strcmp(a->proxy_id, b->proxy_id);
}

static void random_route(struct fuzz_in *in, struct route *r)
{
	uint8_t sel = fuzz_u8(in);
	unsigned len = fuzz_u8(in) % 34;

	memset(r, 0, sizeof(*r));
	r->virt.addr = fuzz_u32(in);
	r->real.addr = fuzz_u32(in);
	r->virt.len = (uint8_t)len;
	r->real.len = (uint8_t)(sel & 0x80 ? (len + 1) % 34 : len);
	if (!(sel & 0x40)) { /* mostly valid prefixes */
		r->virt.addr &= mask_of(len > 32 ? 32 : len);
		r->real.addr &= mask_of(r->real.len > 32 ? 32 : r->real.len);
	}
	snprintf(r->proxy_id, sizeof(r->proxy_id), "p%u", sel & 7);
	r->owner = (void *)(uintptr_t)((sel >> 3 & 3) * 16);
}

static bool valid_route(const struct route *r)
{
	return r->virt.len <= 32 && r->virt.len == r->real.len &&
	       !(r->virt.addr & ~mask_of(r->virt.len)) && !(r->real.addr & ~mask_of(r->real.len));
}

static void check_table(struct route_table *t, const struct model *m)
{
	FUZZ_CHECK(route_count(t) == m->n);
	FUZZ_CHECK(route_at(t, m->n) == NULL);
	for (size_t i = 0; i < m->n; i++) {
		const struct route *r = route_at(t, i);
		size_t found = 0;

		FUZZ_CHECK(r != NULL);
		if (i)
			FUZZ_CHECK(route_at(t, i - 1)->virt.len >= r->virt.len);
		for (size_t j = 0; j < m->n; j++)
			found += same_route(r, &m->r[j]);
		FUZZ_CHECK(found == 1);
	}
}

static void op_lookup(struct route_table *t, const struct model *m, uint32_t addr)
{
	const struct route *hit;
	uint32_t real = 0;
	int best = -1;
	bool any = false;

	/* The longest prefix among the routes that contain addr and are accepted. */
	for (size_t i = 0; i < m->n; i++)
		if (cidr_contains(&m->r[i].virt, addr) && m->r[i].virt.len > best &&
		    accept_cb(&m->r[i], NULL))
			best = m->r[i].virt.len;
	any = best >= 0;
	hit = route_lookup(t, addr, &real, accept_cb, NULL);
	FUZZ_CHECK(!hit == !any);
	if (!hit)
		return;
	FUZZ_CHECK(hit->virt.len == best && cidr_contains(&hit->virt, addr));
	FUZZ_CHECK(accept_cb(hit, NULL));
	FUZZ_CHECK(cidr_contains(&hit->real, real));
	FUZZ_CHECK((real & ~mask_of(hit->real.len)) == (addr & ~mask_of(hit->virt.len)));
}

/* Reference grant check: c inside a grant for id or "*". */
static bool ref_granted(const struct route_grant *g, size_t n, const char *id, const struct cidr *c)
{
	for (size_t i = 0; i < n; i++)
		if ((!strcmp(g[i].proxy_id, id) || !strcmp(g[i].proxy_id, "*")) &&
		    c->len >= g[i].prefix.len &&
		    !((c->addr ^ g[i].prefix.addr) & mask_of(g[i].prefix.len)))
			return true;
	return false;
}

/* route_claim_check against the model with up to 3 random grants (none: no section). */
static void op_claim(struct route_table *t, const struct model *m, struct fuzz_in *in)
{
	struct route_grant g[3];
	size_t n = fuzz_u8(in) % 4;
	const struct route *o = NULL;
	struct cidr c;
	char id[4];
	int want = 0, rv;

	for (size_t i = 0; i < n; i++) {
		uint8_t sel = fuzz_u8(in);

		g[i].prefix.len = (uint8_t)(fuzz_u8(in) % 33);
		g[i].prefix.addr = fuzz_u32(in) & mask_of(g[i].prefix.len);
		snprintf(g[i].proxy_id, sizeof(g[i].proxy_id), sel & 8 ? "*" : "p%u", sel & 7);
	}
	c.len = (uint8_t)(fuzz_u8(in) % 33);
	c.addr = fuzz_u32(in) & mask_of(c.len);
	snprintf(id, sizeof(id), "p%u", fuzz_u8(in) & 7);
	if (n && !ref_granted(g, n, id, &c))
		want = -EPERM;
	for (size_t i = 0; i < m->n && !want; i++) {
		const struct route *r = &m->r[i];
		const struct cidr *l = r->virt.len < c.len ? &r->virt : &c;

		if (!strcmp(r->proxy_id, id) || ((r->virt.addr ^ c.addr) & mask_of(l->len)))
			continue;
		if (!n || !ref_granted(g, n, id, l) || !ref_granted(g, n, r->proxy_id, l))
			want = -EEXIST;
	}
	rv = route_claim_check(t, g, n, id, &c, &o);
	FUZZ_CHECK(rv == want);
	if (rv == -EEXIST)
		FUZZ_CHECK(o && strcmp(o->proxy_id, id) && cidr_overlap(&o->virt, &c));
}

/* Drops the model's routes of owner; returns how many. */
static size_t model_remove(struct model *m, const void *owner)
{
	size_t kept = 0, removed;

	for (size_t i = 0; i < m->n; i++)
		if (m->r[i].owner != owner)
			m->r[kept++] = m->r[i];
	removed = m->n - kept;
	m->n = kept;
	return removed;
}

static void op_add(struct route_table *t, struct model *m, struct fuzz_in *in)
{
	struct route r;
	bool dup = false;
	int rv;

	random_route(in, &r);
	rv = route_add(t, &r);
	FUZZ_CHECK(rv == (valid_route(&r) ? 0 : -EINVAL));
	if (rv)
		return;
	for (size_t i = 0; i < m->n; i++)
		dup |= same_route(&m->r[i], &r);
	if (dup)
		return;
	if (m->n == MAX_MODEL) { /* keep the model in reach */
		route_remove_owner(t, r.owner);
		model_remove(m, r.owner);
		return;
	}
	m->r[m->n++] = r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_in in = {data, size};
	struct route_table *t = route_table_new();
	static struct model m;
	const void *owner;

	FUZZ_CHECK(t != NULL);
	m.n = 0;
	while (in.n) {
		uint8_t op = fuzz_u8(&in);

		switch (op % 8) {
		case 0:
		case 1:
		case 2:
			op_text(&in, (char)(op % 8));
			break;
		case 3:
		case 4:
			op_add(t, &m, &in);
			break;
		case 5:
			owner = (const void *)(uintptr_t)((fuzz_u8(&in) & 3) * 16);
			FUZZ_CHECK(route_remove_owner(t, owner) == model_remove(&m, owner));
			break;
		case 6:
			veto = fuzz_u8(&in);
			op_lookup(t, &m, fuzz_u32(&in));
			break;
		default:
			op_claim(t, &m, &in);
			break;
		}
		check_table(t, &m);
	}
	route_table_free(t);
	return 0;
}
