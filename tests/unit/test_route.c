// SPDX-License-Identifier: MIT
/* route: prefix parsing and formatting, longest-prefix match including /0 and /32,
 * translation with host bits kept, round robin among equal prefixes, veto with fall back to
 * shorter prefixes, removal by owner, and route ownership: grants, containment, overlapping
 * claims and shared grants. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "route.h"

#define IP(a, b, c, d) ((uint32_t)(a) << 24 | (uint32_t)(b) << 16 | (uint32_t)(c) << 8 | (d))

static struct route mk(const char *virt, const char *real, const char *proxy, void *owner)
{
	struct route r = {.owner = owner};

	CHECK_INT_EQ(cidr_parse(virt, &r.virt), 0);
	CHECK_INT_EQ(cidr_parse(real, &r.real), 0);
	snprintf(r.proxy_id, sizeof(r.proxy_id), "%s", proxy);
	return r;
}

static void test_cidr(void)
{
	struct cidr c;
	char buf[20];

	CHECK_INT_EQ(cidr_parse("10.0.0.0/8", &c), 0);
	CHECK_INT_EQ(c.addr, IP(10, 0, 0, 0));
	CHECK_INT_EQ(c.len, 8);
	CHECK_STR_EQ(cidr_format(&c, buf, sizeof(buf)), "10.0.0.0/8");
	CHECK_INT_EQ(cidr_parse("192.168.1.5", &c), 0);
	CHECK_INT_EQ(c.len, 32);
	CHECK_STR_EQ(cidr_format(&c, buf, sizeof(buf)), "192.168.1.5/32");
	CHECK_INT_EQ(cidr_parse("0.0.0.0/0", &c), 0);
	CHECK_INT_EQ(c.len, 0);
	CHECK_INT_EQ(cidr_parse("255.255.255.255/32", &c), 0);
	CHECK_STR_EQ(cidr_format(&c, buf, sizeof(buf)), "255.255.255.255/32");

	CHECK_INT_EQ(cidr_parse("10.0.0.1/8", &c), -EINVAL); /* host bits */
	CHECK_INT_EQ(cidr_parse("1.0.0.0/0", &c), -EINVAL);
	CHECK_INT_EQ(cidr_parse("10.0.0.0/33", &c), -EINVAL);
	CHECK_INT_EQ(cidr_parse("10.0.0.0/", &c), -EINVAL);
	CHECK_INT_EQ(cidr_parse("10.0.0.0/08", &c), -EINVAL);
	CHECK_INT_EQ(cidr_parse("10.0.0/8", &c), -EINVAL);
	CHECK_INT_EQ(cidr_parse("256.0.0.0/8", &c), -EINVAL);
	CHECK_INT_EQ(cidr_parse("010.0.0.0/8", &c), -EINVAL);
	CHECK_INT_EQ(cidr_parse("10.0.0.0/8 ", &c), -EINVAL);
	CHECK_INT_EQ(cidr_parse(" 10.0.0.0/8", &c), -EINVAL);
	CHECK_INT_EQ(cidr_parse("10.0.0.0/+8", &c), -EINVAL);
	CHECK_INT_EQ(cidr_parse("", &c), -EINVAL);

	CHECK(cidr_contains(&(struct cidr){IP(10, 0, 0, 0), 8}, IP(10, 255, 1, 2)));
	CHECK(!cidr_contains(&(struct cidr){IP(10, 0, 0, 0), 8}, IP(11, 0, 0, 0)));
	CHECK(cidr_contains(&(struct cidr){0, 0}, IP(203, 0, 113, 9)));
	CHECK(cidr_contains(&(struct cidr){IP(1, 2, 3, 4), 32}, IP(1, 2, 3, 4)));
	CHECK(!cidr_contains(&(struct cidr){IP(1, 2, 3, 4), 32}, IP(1, 2, 3, 5)));
}

/* The server's allow_from check at accept: no list admits every source; a list admits what
 * lies inside one of its prefixes, edges included, and nothing else. */
static void test_allow_list(void)
{
	const struct cidr list[] = {
		{IP(10, 10, 1, 0), 24}, {IP(192, 0, 2, 7), 32}, {IP(172, 16, 0, 0), 12}};

	CHECK(cidr_list_allows(NULL, 0, IP(203, 0, 113, 9)));
	CHECK(cidr_list_allows(list, 3, IP(10, 10, 1, 0)));
	CHECK(cidr_list_allows(list, 3, IP(10, 10, 1, 255)));
	CHECK(!cidr_list_allows(list, 3, IP(10, 10, 2, 0)));
	CHECK(!cidr_list_allows(list, 3, IP(10, 10, 0, 255)));
	CHECK(cidr_list_allows(list, 3, IP(192, 0, 2, 7)));
	CHECK(!cidr_list_allows(list, 3, IP(192, 0, 2, 6)));
	CHECK(!cidr_list_allows(list, 3, IP(192, 0, 2, 8)));
	CHECK(cidr_list_allows(list, 3, IP(172, 31, 255, 255)));
	CHECK(!cidr_list_allows(list, 3, IP(172, 32, 0, 0)));
	CHECK(!cidr_list_allows(list, 3, IP(10, 10, 7, 7)));
	CHECK(!cidr_list_allows(list, 1, IP(192, 0, 2, 7))); /* only the first n count */
	CHECK(cidr_list_allows(&(struct cidr){0, 0}, 1, IP(203, 0, 113, 9)));
}

static void test_ipport(void)
{
	uint32_t a;
	uint16_t p;
	char buf[22];

	CHECK_INT_EQ(ipport_parse("100.64.1.5:80", &a, &p), 0);
	CHECK_INT_EQ(a, IP(100, 64, 1, 5));
	CHECK_INT_EQ(p, 80);
	CHECK_INT_EQ(ipport_parse("255.255.255.255:65535", &a, &p), 0);
	CHECK_STR_EQ(ipport_format(a, p, buf, sizeof(buf)), "255.255.255.255:65535");
	CHECK_INT_EQ(ipport_parse("1.2.3.4:0", &a, &p), -EINVAL);
	CHECK_INT_EQ(ipport_parse("1.2.3.4:65536", &a, &p), -EINVAL);
	CHECK_INT_EQ(ipport_parse("1.2.3.4", &a, &p), -EINVAL);
	CHECK_INT_EQ(ipport_parse("1.2.3.4:", &a, &p), -EINVAL);
	CHECK_INT_EQ(ipport_parse("1.2.3.4:80x", &a, &p), -EINVAL);
	CHECK_INT_EQ(ipport_parse("host:80", &a, &p), -EINVAL);
}

static void test_lpm(void)
{
	struct route_table *t = route_table_new();
	struct route r;
	const struct route *hit;
	uint32_t real = 0;

	CHECK(t != NULL);
	CHECK(route_lookup(t, IP(1, 2, 3, 4), &real, NULL, NULL) == NULL);

	r = mk("0.0.0.0/0", "0.0.0.0/0", "default", NULL);
	CHECK_INT_EQ(route_add(t, &r), 0);
	r = mk("100.64.0.0/16", "10.20.0.0/16", "wide", NULL);
	CHECK_INT_EQ(route_add(t, &r), 0);
	r = mk("100.64.1.0/24", "192.168.1.0/24", "site-1", NULL);
	CHECK_INT_EQ(route_add(t, &r), 0);
	r = mk("100.64.1.77/32", "172.16.0.9/32", "host", NULL);
	CHECK_INT_EQ(route_add(t, &r), 0);
	CHECK_INT_EQ(route_count(t), 4);

	/* Adding an identical route again is a no-op. */
	r = mk("100.64.1.0/24", "192.168.1.0/24", "site-1", NULL);
	CHECK_INT_EQ(route_add(t, &r), 0);
	CHECK_INT_EQ(route_count(t), 4);

	hit = route_lookup(t, IP(100, 64, 1, 5), &real, NULL, NULL);
	CHECK(hit && !strcmp(hit->proxy_id, "site-1"));
	CHECK_INT_EQ(real, IP(192, 168, 1, 5));

	hit = route_lookup(t, IP(100, 64, 1, 77), &real, NULL, NULL);
	CHECK(hit && !strcmp(hit->proxy_id, "host"));
	CHECK_INT_EQ(real, IP(172, 16, 0, 9));

	hit = route_lookup(t, IP(100, 64, 200, 3), &real, NULL, NULL);
	CHECK(hit && !strcmp(hit->proxy_id, "wide"));
	CHECK_INT_EQ(real, IP(10, 20, 200, 3));

	/* /0 is the identity here and catches everything else. */
	hit = route_lookup(t, IP(8, 8, 4, 4), &real, NULL, NULL);
	CHECK(hit && !strcmp(hit->proxy_id, "default"));
	CHECK_INT_EQ(real, IP(8, 8, 4, 4));
	hit = route_lookup(t, IP(255, 255, 255, 255), &real, NULL, NULL);
	CHECK(hit && !strcmp(hit->proxy_id, "default"));
	CHECK_INT_EQ(real, IP(255, 255, 255, 255));

	/* real_addr may be NULL. */
	CHECK(route_lookup(t, IP(100, 64, 1, 5), NULL, NULL, NULL) != NULL);

	/* Invalid routes. */
	r = mk("100.64.2.0/24", "192.168.2.0/24", "x", NULL);
	r.real.len = 23;
	CHECK_INT_EQ(route_add(t, &r), -EINVAL);
	r = mk("100.64.2.0/24", "192.168.2.0/24", "x", NULL);
	r.virt.addr |= 1; /* host bits */
	CHECK_INT_EQ(route_add(t, &r), -EINVAL);
	r = mk("100.64.2.0/24", "192.168.2.0/24", "x", NULL);
	memset(r.proxy_id, 'a', sizeof(r.proxy_id)); /* unterminated */
	CHECK_INT_EQ(route_add(t, &r), -EINVAL);
	CHECK_INT_EQ(route_count(t), 4);

	/* route_at lists every route once, longest prefix first. */
	CHECK_INT_EQ(route_at(t, 0)->virt.len, 32);
	CHECK_INT_EQ(route_at(t, 3)->virt.len, 0);
	CHECK(route_at(t, 4) == NULL);

	route_table_free(t);
	route_table_free(NULL);
}

static bool veto_proxy(const struct route *r, void *arg)
{
	return strcmp(r->proxy_id, arg) != 0;
}

static bool veto_all(const struct route *r, void *arg)
{
	(*(int *)arg)++;
	return false;
}

static void test_round_robin(void)
{
	struct route_table *t = route_table_new();
	int owner_a, owner_b, seen[3] = {0}, calls = 0;
	const struct route *hit;
	struct route r;
	uint32_t real;

	r = mk("100.64.1.0/24", "192.168.1.0/24", "p0", &owner_a);
	CHECK_INT_EQ(route_add(t, &r), 0);
	r = mk("100.64.1.0/24", "192.168.1.0/24", "p1", &owner_b);
	CHECK_INT_EQ(route_add(t, &r), 0);
	r = mk("100.64.1.0/24", "192.168.1.0/24", "p2", &owner_b);
	CHECK_INT_EQ(route_add(t, &r), 0);
	r = mk("100.64.0.0/16", "100.64.0.0/16", "fallback", NULL);
	CHECK_INT_EQ(route_add(t, &r), 0);
	/* Same prefixes, other owner: a distinct entry. */
	r = mk("100.64.0.0/16", "100.64.0.0/16", "fallback", &owner_a);
	CHECK_INT_EQ(route_add(t, &r), 0);
	CHECK_INT_EQ(route_count(t), 5);

	/* Nine lookups spread evenly and in turn over the three equal routes. */
	for (int i = 0; i < 9; i++) {
		hit = route_lookup(t, IP(100, 64, 1, (uint32_t)i), &real, NULL, NULL);
		CHECK(hit != NULL);
		if (!hit)
			continue;
		CHECK_INT_EQ(real, IP(192, 168, 1, (uint32_t)i));
		CHECK_INT_EQ(hit->proxy_id[1] - '0', i % 3);
		seen[hit->proxy_id[1] - '0']++;
	}
	CHECK(seen[0] == 3 && seen[1] == 3 && seen[2] == 3);

	/* A vetoed candidate is skipped, the rest still alternate. */
	for (int i = 0; i < 4; i++) {
		hit = route_lookup(t, IP(100, 64, 1, 9), &real, veto_proxy, "p1");
		CHECK(hit && strcmp(hit->proxy_id, "p1") != 0);
	}
	hit = route_lookup(t, IP(100, 64, 1, 9), &real, veto_proxy, "p1");
	CHECK(hit != NULL);
	{
		const struct route *next =
			route_lookup(t, IP(100, 64, 1, 9), &real, veto_proxy, "p1");
		CHECK(next && hit && next != hit);
	}

	/* Vetoing everything is a miss; each of the five candidates that contain the address
	 * (three /24s, two /16s) is asked once. */
	CHECK(route_lookup(t, IP(100, 64, 1, 9), &real, veto_all, &calls) == NULL);
	CHECK_INT_EQ(calls, 5);

	/* Remove by owner: owner_b had p1 and p2. */
	CHECK_INT_EQ(route_remove_owner(t, &owner_b), 2);
	CHECK_INT_EQ(route_count(t), 3);
	for (int i = 0; i < 3; i++) {
		hit = route_lookup(t, IP(100, 64, 1, 1), &real, NULL, NULL);
		CHECK(hit && !strcmp(hit->proxy_id, "p0"));
	}
	CHECK_INT_EQ(route_remove_owner(t, &owner_b), 0);
	CHECK_INT_EQ(route_remove_owner(t, &owner_a), 2);
	hit = route_lookup(t, IP(100, 64, 1, 1), &real, NULL, NULL);
	CHECK(hit && !strcmp(hit->proxy_id, "fallback") && hit->owner == NULL);
	CHECK_INT_EQ(real, IP(100, 64, 1, 1));
	CHECK_INT_EQ(route_remove_owner(t, NULL), 1);
	CHECK_INT_EQ(route_count(t), 0);
	CHECK(route_lookup(t, IP(100, 64, 1, 1), &real, NULL, NULL) == NULL);

	route_table_free(t);
}

static bool veto_owner(const struct route *r, void *arg)
{
	return r->owner != arg;
}

/* Only routes of live proxies are usable: "dead" stands for a drained or gone proxy. */
static bool live_only(const struct route *r, void *arg)
{
	return strcmp(r->proxy_id, "dead") != 0 && r->owner != arg;
}

static void test_fallback(void)
{
	struct route_table *t = route_table_new();
	int site1, host, other;
	const struct route *hit;
	struct route r;
	uint32_t real = 0;

	r = mk("100.64.1.0/24", "192.168.1.0/24", "site-1", &site1);
	CHECK_INT_EQ(route_add(t, &r), 0);
	r = mk("100.64.1.0/25", "10.1.0.0/25", "site-1", &site1);
	CHECK_INT_EQ(route_add(t, &r), 0);
	r = mk("100.64.1.5/32", "172.16.0.5/32", "host", &host);
	CHECK_INT_EQ(route_add(t, &r), 0);
	r = mk("100.64.0.0/10", "100.64.0.0/10", "wide", &other);
	CHECK_INT_EQ(route_add(t, &r), 0);

	hit = route_lookup(t, IP(100, 64, 1, 5), &real, NULL, NULL);
	CHECK(hit && !strcmp(hit->proxy_id, "host"));
	CHECK_INT_EQ(real, IP(172, 16, 0, 5));
	/* The /32's proxy is gone: the next shorter prefix (the /25) serves, translated by it. */
	hit = route_lookup(t, IP(100, 64, 1, 5), &real, veto_owner, &host);
	CHECK(hit && hit->virt.len == 25);
	CHECK_INT_EQ(real, IP(10, 1, 0, 5));
	/* Without the /25 and /24 owner, down to the /10; other addresses are unaffected. */
	hit = route_lookup(t, IP(100, 64, 1, 5), &real, veto_owner, &site1);
	CHECK(hit && !strcmp(hit->proxy_id, "host"));
	hit = route_lookup(t, IP(100, 64, 1, 200), &real, veto_owner, &site1);
	CHECK(hit && !strcmp(hit->proxy_id, "wide"));
	CHECK_INT_EQ(real, IP(100, 64, 1, 200));
	hit = route_lookup(t, IP(100, 64, 1, 200), &real, veto_owner, &host);
	CHECK(hit && hit->virt.len == 24);
	CHECK_INT_EQ(real, IP(192, 168, 1, 200));
	/* A shorter prefix that does not contain the address is never used. */
	CHECK(route_lookup(t, IP(10, 0, 0, 1), &real, NULL, NULL) == NULL);

	/* Round robin still holds inside the group that serves after a fall back: two live
	 * proxies share the /24 behind a dead /32 and alternate. */
	route_remove_owner(t, &site1);
	r = mk("100.64.1.0/24", "192.168.1.0/24", "a", &site1);
	CHECK_INT_EQ(route_add(t, &r), 0);
	r = mk("100.64.1.0/24", "192.168.1.0/24", "b", &other);
	CHECK_INT_EQ(route_add(t, &r), 0);
	r = mk("100.64.1.0/24", "192.168.1.0/24", "dead", &other);
	CHECK_INT_EQ(route_add(t, &r), 0);
	{
		int a = 0, b = 0;

		for (int i = 0; i < 10; i++) {
			hit = route_lookup(t, IP(100, 64, 1, 5), &real, live_only, &host);
			CHECK(hit != NULL);
			if (!hit)
				continue;
			CHECK(strcmp(hit->proxy_id, "dead") != 0);
			a += !strcmp(hit->proxy_id, "a");
			b += !strcmp(hit->proxy_id, "b");
			CHECK_INT_EQ(real, IP(192, 168, 1, 5));
		}
		CHECK_INT_EQ(a, 5);
		CHECK_INT_EQ(b, 5);
	}
	/* Removing the /32 from the table (drain) has the same effect for every lookup. */
	CHECK_INT_EQ(route_remove_owner(t, &host), 1);
	hit = route_lookup(t, IP(100, 64, 1, 5), &real, NULL, NULL);
	CHECK(hit && hit->virt.len == 24);
	route_table_free(t);
}

static struct cidr C(const char *s) {
	struct cidr c = {0};

	CHECK_INT_EQ(cidr_parse(s, &c), 0);
	return c;
}

static struct route_grant
G(const char *id, const char *prefix) {
	struct route_grant g = {.prefix = C(prefix)};

	snprintf(g.proxy_id, sizeof(g.proxy_id), "%s", id);
	return g;
}

static void
test_containment(void)
{
	struct cidr a = C("100.64.1.0/24"), b = C("100.64.1.5/32"), c = C("100.64.0.0/16"),
		    d = C("100.64.2.0/24"), all = C("0.0.0.0/0");

	CHECK(cidr_within(&b, &a) && !cidr_within(&a, &b));
	CHECK(cidr_within(&a, &a));
	CHECK(cidr_within(&a, &c) && cidr_within(&d, &c) && !cidr_within(&c, &a));
	CHECK(!cidr_within(&a, &d) && !cidr_within(&d, &a));
	CHECK(cidr_within(&c, &all) && !cidr_within(&all, &c));
	CHECK(cidr_overlap(&a, &b) && cidr_overlap(&b, &a) && cidr_overlap(&a, &a));
	CHECK(cidr_overlap(&a, &c) && cidr_overlap(&all, &b));
	CHECK(!cidr_overlap(&a, &d) && !cidr_overlap(&b, &d));
	/* Same address, different length: the shorter contains the longer. */
	CHECK(cidr_overlap(&(struct cidr){IP(10, 0, 0, 0), 8}, &(struct cidr){IP(10, 0, 0, 0), 9}));
	CHECK(!cidr_overlap(&(struct cidr){IP(10, 0, 0, 0), 9},
			    &(struct cidr){IP(10, 128, 0, 0), 9}));
}

static void test_grants(void)
{
	struct route_grant g[] = {G("proxy-1", "100.64.1.0/24"), G("proxy-2", "100.64.2.0/24"),
				  G("proxy-2", "100.64.1.0/24"), G("*", "100.127.0.0/16")};
	size_t n = sizeof(g) / sizeof(g[0]);
	struct cidr c;

	c = C("100.64.1.0/24");
	CHECK(route_granted(g, n, "proxy-1", &c) && route_granted(g, n, "proxy-2", &c));
	CHECK(!route_granted(g, n, "proxy-3", &c));
	c = C("100.64.1.128/25"); /* inside a grant counts */
	CHECK(route_granted(g, n, "proxy-1", &c));
	c = C("100.64.0.0/23"); /* larger than the grant: no */
	CHECK(!route_granted(g, n, "proxy-1", &c) && !route_granted(g, n, "proxy-2", &c));
	c = C("100.64.2.7/32");
	CHECK(!route_granted(g, n, "proxy-1", &c) && route_granted(g, n, "proxy-2", &c));
	c = C("100.127.9.0/24"); /* "*" grants every id */
	CHECK(route_granted(g, n, "proxy-1", &c) && route_granted(g, n, "anyone", &c));
	c = C("100.64.1.0/24");
	CHECK(!route_granted(g, 0, "proxy-1", &c)); /* no grants: nothing granted */
	CHECK(!route_granted(g, n, "Proxy-1", &c)); /* ids are exact */
}

/* Claim checks against a table holding what proxy-1 registered. */
static void test_claims(void)
{
	struct route_table *t = route_table_new();
	struct route_grant g[] = {G("proxy-1", "100.64.1.0/24"), G("proxy-2", "100.64.2.0/24"),
				  G("proxy-2", "100.64.1.5/32"), G("proxy-3", "100.64.1.0/24"),
				  G("*", "10.0.0.0/8"),		 G("lab", "100.64.9.0/24")};
	size_t n = sizeof(g) / sizeof(g[0]);
	const struct route *o;
	int p1, p3;
	struct route r;
	struct cidr c;

	r = mk("100.64.1.0/24", "192.168.1.0/24", "proxy-1", &p1);
	CHECK_INT_EQ(route_add(t, &r), 0);

	/* No proxies section (n == 0): anything may be claimed, but no overlap by another id. */
	c = C("100.64.2.0/24");
	CHECK_INT_EQ(route_claim_check(t, g, 0, "proxy-2", &c, NULL), 0);
	o = NULL;
	c = C("100.64.1.5/32"); /* the hijack: more specific, inside proxy-1's prefix */
	CHECK_INT_EQ(route_claim_check(t, g, 0, "proxy-2", &c, &o), -EEXIST);
	CHECK(o && !strcmp(o->proxy_id, "proxy-1"));
	c = C("100.64.0.0/16"); /* containing it */
	CHECK_INT_EQ(route_claim_check(t, g, 0, "proxy-2", &c, NULL), -EEXIST);
	c = C("100.64.1.0/24"); /* equal */
	CHECK_INT_EQ(route_claim_check(t, g, 0, "proxy-2", &c, NULL), -EEXIST);
	c = C("0.0.0.0/0");
	CHECK_INT_EQ(route_claim_check(t, g, 0, "proxy-2", &c, NULL), -EEXIST);
	/* The holder itself may add to its own prefixes (another connection, a re-register). */
	c = C("100.64.1.5/32");
	CHECK_INT_EQ(route_claim_check(t, g, 0, "proxy-1", &c, NULL), 0);
	c = C("100.64.0.0/16");
	CHECK_INT_EQ(route_claim_check(t, g, 0, "proxy-1", &c, NULL), 0);

	/* With grants: outside a grant is refused first, whatever the table holds. */
	c = C("100.64.3.0/24");
	CHECK_INT_EQ(route_claim_check(t, g, n, "proxy-2", &c, NULL), -EPERM);
	c = C("100.64.0.0/16");
	CHECK_INT_EQ(route_claim_check(t, g, n, "proxy-1", &c, NULL), -EPERM);
	c = C("100.64.1.0/24");
	CHECK_INT_EQ(route_claim_check(t, g, n, "stranger", &c, NULL), -EPERM);
	c = C("100.64.2.0/24");
	CHECK_INT_EQ(route_claim_check(t, g, n, "proxy-2", &c, NULL), 0);
	/* Granted the /32 but not proxy-1's /24: a carve-out is not a shared grant. */
	o = NULL;
	c = C("100.64.1.5/32");
	CHECK_INT_EQ(route_claim_check(t, g, n, "proxy-2", &c, &o), -EEXIST);
	CHECK(o && o->owner == &p1);
	/* proxy-3 shares proxy-1's grant: the same prefix, or a more specific one, is fine. */
	c = C("100.64.1.0/24");
	CHECK_INT_EQ(route_claim_check(t, g, n, "proxy-3", &c, NULL), 0);
	c = C("100.64.1.5/32");
	CHECK_INT_EQ(route_claim_check(t, g, n, "proxy-3", &c, NULL), 0);
	/* The "*" grant is shared by every id. */
	r = mk("10.1.0.0/16", "10.1.0.0/16", "lab", NULL);
	CHECK_INT_EQ(route_add(t, &r), 0);
	c = C("10.1.2.0/24");
	CHECK_INT_EQ(route_claim_check(t, g, n, "proxy-2", &c, NULL), 0);
	c = C("10.0.0.0/8");
	CHECK_INT_EQ(route_claim_check(t, g, n, "proxy-2", &c, NULL), 0);
	CHECK_INT_EQ(route_claim_check(t, g, 0, "proxy-2", &c, NULL), -EEXIST);

	/* Whether two claims may coexist does not depend on their order: with proxy-3 holding
	 * the /32, proxy-1 (sharing the /24 with it) may take the /24; proxy-2 may share the
	 * /32 with proxy-3 (both are granted all of it) but not once proxy-1 holds the /24. */
	route_table_free(t);
	t = route_table_new();
	r = mk("100.64.1.5/32", "192.168.1.5/32", "proxy-3", &p3);
	CHECK_INT_EQ(route_add(t, &r), 0);
	c = C("100.64.1.0/24");
	CHECK_INT_EQ(route_claim_check(t, g, n, "proxy-1", &c, NULL), 0);
	c = C("100.64.1.5/32");
	CHECK_INT_EQ(route_claim_check(t, g, n, "proxy-2", &c, NULL), 0);
	r = mk("100.64.1.0/24", "192.168.1.0/24", "proxy-1", &p1);
	CHECK_INT_EQ(route_add(t, &r), 0);
	o = NULL;
	CHECK_INT_EQ(route_claim_check(t, g, n, "proxy-2", &c, &o), -EEXIST);
	CHECK(o && !strcmp(o->proxy_id, "proxy-1"));
	/* An empty table never conflicts; a NULL table is an empty one. */
	CHECK_INT_EQ(route_claim_check(NULL, g, n, "proxy-2", &c, NULL), 0);
	route_table_free(t);
}

/* Policy destinations: CIDR, CIDR:PORT, CIDR:LO-HI; matching by client URI or "*", address
 * and port, with the edges of ranges and of prefixes. */
static void test_policy(void)
{
	static const char *const bad[] = {"",
					  "100.64.1.0/24:",
					  "100.64.1.0/24:0",
					  "100.64.1.0/24:65536",
					  "100.64.1.0/24:90-80",
					  "100.64.1.0/24:80-",
					  "100.64.1.0/24:-80",
					  "100.64.1.1/24",
					  "100.64.1.0/24:80x",
					  "100.64.1.0/24:80-90-100",
					  "a.b.c.d",
					  "100.64.1.0/24:080"};
	struct policy_rule r[3];
	const char *c1 = "spiffe://ntun.local/client/client-1";
	const char *c2 = "spiffe://ntun.local/client/client-2";

	memset(r, 0, sizeof(r));
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		CHECK_INT_EQ(policy_dest_parse(bad[i], &r[0]), -EINVAL);
	CHECK_INT_EQ(policy_dest_parse(NULL, &r[0]), -EINVAL);
	CHECK_INT_EQ(policy_dest_parse("100.64.1.0/24:80", &r[0]), 0);
	CHECK_INT_EQ(r[0].port_lo, 80);
	CHECK_INT_EQ(r[0].port_hi, 80);
	CHECK_INT_EQ(policy_dest_parse("100.64.1.0/24:8000-8999", &r[1]), 0);
	CHECK_INT_EQ(r[1].port_lo, 8000);
	CHECK_INT_EQ(r[1].port_hi, 8999);
	CHECK_INT_EQ(policy_dest_parse("100.64.2.0/24", &r[2]), 0);
	CHECK_INT_EQ(r[2].port_lo, 1);
	CHECK_INT_EQ(r[2].port_hi, 65535);
	CHECK_INT_EQ(policy_dest_parse("10.0.0.7:1-65535", &r[2]), 0);
	CHECK_INT_EQ(r[2].net.len, 32);
	CHECK_INT_EQ(policy_dest_parse("100.64.2.0/24", &r[2]), 0);
	snprintf(r[0].client, sizeof(r[0].client), "%s", c1);
	snprintf(r[1].client, sizeof(r[1].client), "%s", c1);
	snprintf(r[2].client, sizeof(r[2].client), "*");

	CHECK(!policy_allows(r, 0, c1, IP(100, 64, 2, 1), 80)); /* no rules: nothing */
	CHECK(policy_allows(r, 3, c1, IP(100, 64, 1, 5), 80));
	CHECK(!policy_allows(r, 3, c1, IP(100, 64, 1, 5), 81));
	CHECK(!policy_allows(r, 3, c1, IP(100, 64, 1, 5), 79));
	CHECK(policy_allows(r, 3, c1, IP(100, 64, 1, 255), 8000));
	CHECK(policy_allows(r, 3, c1, IP(100, 64, 1, 0), 8999));
	CHECK(!policy_allows(r, 3, c1, IP(100, 64, 1, 5), 9000));
	CHECK(!policy_allows(r, 3, c1, IP(100, 64, 0, 255), 80));
	CHECK(!policy_allows(r, 3, c1, IP(100, 64, 3, 0), 80));
	CHECK(!policy_allows(r, 3, c2, IP(100, 64, 1, 5), 80)); /* rule of another client */
	CHECK(policy_allows(r, 3, c2, IP(100, 64, 2, 9), 1));	/* "*" */
	CHECK(policy_allows(r, 3, c2, IP(100, 64, 2, 9), 65535));
	CHECK(!policy_allows(r, 3, "spiffe://ntun.local/client/client-1x", IP(100, 64, 1, 5), 80));
	CHECK(!policy_allows(r, 3, "spiffe://ntun.local/client/client", IP(100, 64, 1, 5), 80));
}

int main(void)
{
	test_cidr();
	test_allow_list();
	test_ipport();
	test_lpm();
	test_round_robin();
	test_fallback();
	test_containment();
	test_grants();
	test_claims();
	test_policy();
	return check_done("test_route");
}
