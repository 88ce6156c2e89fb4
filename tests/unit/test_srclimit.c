// SPDX-License-Identifier: MIT
/* srclimit: both caps, slots given back, entries gone at zero, the table never above the total
 * cap, growth on srclimit_set, and a long random churn checked against a plain model. */
#include <errno.h>
#include <stdlib.h>

#include "check.h"
#include "srclimit.h"

#define IP(a, b, c, d) ((uint32_t)(a) << 24 | (uint32_t)(b) << 16 | (uint32_t)(c) << 8 | (d))

static void test_caps(void)
{
	struct srclimit *l = srclimit_new(5, 2);
	uint32_t a = IP(10, 0, 0, 1), b = IP(10, 0, 0, 2), c = IP(10, 0, 0, 3);

	CHECK(l);
	CHECK_INT_EQ(srclimit_take(l, a), SRCLIMIT_OK);
	CHECK_INT_EQ(srclimit_take(l, a), SRCLIMIT_OK);
	CHECK_INT_EQ(srclimit_take(l, a), SRCLIMIT_SOURCE);
	CHECK_INT_EQ(srclimit_count(l, a), 2);
	CHECK_INT_EQ(srclimit_take(l, b), SRCLIMIT_OK);
	CHECK_INT_EQ(srclimit_take(l, b), SRCLIMIT_OK);
	CHECK_INT_EQ(srclimit_take(l, c), SRCLIMIT_OK);
	CHECK_INT_EQ(srclimit_total(l), 5);
	/* Total full: refused as such even for a source below its own cap. */
	CHECK_INT_EQ(srclimit_take(l, c), SRCLIMIT_TOTAL);
	CHECK_INT_EQ(srclimit_take(l, IP(10, 0, 0, 9)), SRCLIMIT_TOTAL);
	CHECK_INT_EQ(srclimit_sources(l), 3);

	srclimit_put(l, a);
	CHECK_INT_EQ(srclimit_count(l, a), 1);
	CHECK_INT_EQ(srclimit_take(l, c), SRCLIMIT_OK);
	CHECK_INT_EQ(srclimit_count(l, c), 2);
	/* A put for a source holding nothing changes nothing. */
	srclimit_put(l, IP(192, 0, 2, 1));
	CHECK_INT_EQ(srclimit_total(l), 5);
	srclimit_put(l, a);
	srclimit_put(l, b);
	srclimit_put(l, b);
	srclimit_put(l, c);
	srclimit_put(l, c);
	CHECK_INT_EQ(srclimit_total(l), 0);
	CHECK_INT_EQ(srclimit_sources(l), 0);
	CHECK_INT_EQ(srclimit_count(l, b), 0);

	CHECK(!srclimit_new(0, 1) && errno == EINVAL);
	CHECK(!srclimit_new(1, 0) && errno == EINVAL);
	CHECK_INT_EQ(srclimit_set(l, 0, 4), -EINVAL);
	srclimit_free(l);
	srclimit_free(NULL);
}

/* Caps changed with slots taken: a lowered cap refuses until counts fall below it; a raised
 * total grows the table and keeps every count. */
static void test_set(void)
{
	struct srclimit *l = srclimit_new(4, 4);
	uint32_t a = IP(10, 1, 0, 1);

	for (int i = 0; i < 4; i++)
		CHECK_INT_EQ(srclimit_take(l, a), SRCLIMIT_OK);
	CHECK_INT_EQ(srclimit_set(l, 4, 2), 0);
	srclimit_put(l, a);
	CHECK_INT_EQ(srclimit_take(l, a), SRCLIMIT_SOURCE);
	srclimit_put(l, a);
	srclimit_put(l, a);
	CHECK_INT_EQ(srclimit_take(l, a), SRCLIMIT_OK);
	CHECK_INT_EQ(srclimit_count(l, a), 2);

	CHECK_INT_EQ(srclimit_set(l, 1000, 1), 0);
	CHECK_INT_EQ(srclimit_max_total(l), 1000);
	for (uint32_t i = 0; i < 998; i++)
		CHECK_INT_EQ(srclimit_take(l, IP(172, 16, 0, 0) + i), SRCLIMIT_OK);
	CHECK_INT_EQ(srclimit_count(l, a), 2);
	CHECK_INT_EQ(srclimit_total(l), 1000);
	CHECK_INT_EQ(srclimit_sources(l), 999);
	CHECK_INT_EQ(srclimit_take(l, IP(172, 17, 0, 0)), SRCLIMIT_TOTAL);
	srclimit_free(l);
}

/* Random takes and puts over a small address space (long probe runs, many deletions in the
 * middle of them), compared with a plain array after every step. */
static void test_churn(void)
{
	enum { NADDR = 300, MAXT = 128, PER = 3 };
	static uint32_t model[NADDR];
	struct srclimit *l = srclimit_new(MAXT, PER);
	uint32_t total = 0, bad = 0;

	srandom(7);
	for (int step = 0; step < 200000; step++) {
		uint32_t k = (uint32_t)random() % NADDR;
		/* Addresses that differ only in high bits, as one attacker's /24s would. */
		uint32_t addr = IP(10, 0, 0, 0) + k * 0x10000u;

		if (random() % 2) {
			enum srclimit_verdict v = srclimit_take(l, addr);
			enum srclimit_verdict want = total >= MAXT     ? SRCLIMIT_TOTAL
						     : model[k] >= PER ? SRCLIMIT_SOURCE
								       : SRCLIMIT_OK;

			bad += v != want;
			if (want == SRCLIMIT_OK) {
				model[k]++;
				total++;
			}
		} else if (model[k]) {
			srclimit_put(l, addr);
			model[k]--;
			total--;
		}
		if (step % 997 == 0) {
			for (uint32_t i = 0; i < NADDR; i++)
				bad += srclimit_count(l, IP(10, 0, 0, 0) + i * 0x10000u) !=
				       model[i];
		}
		bad += srclimit_total(l) != total;
		bad += srclimit_sources(l) > MAXT;
	}
	CHECK_INT_EQ(bad, 0);
	srclimit_free(l);
}

int main(void)
{
	test_caps();
	test_set();
	test_churn();
	return check_done("test_srclimit");
}
