// SPDX-License-Identifier: MIT
/* route: prefix parsing and formatting, longest-prefix match including /0 and /32,
 * translation with host bits kept, round robin among equal prefixes, veto, removal by owner. */
#include <errno.h>
#include <stdio.h>

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

	/* Vetoing all equals is a miss: no fallback to the /16, each candidate asked once. */
	CHECK(route_lookup(t, IP(100, 64, 1, 9), &real, veto_all, &calls) == NULL);
	CHECK_INT_EQ(calls, 3);

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

int main(void)
{
	test_cidr();
	test_ipport();
	test_lpm();
	test_round_robin();
	return check_done("test_route");
}
