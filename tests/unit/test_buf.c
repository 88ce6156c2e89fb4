// SPDX-License-Identifier: MIT
/* Unit tests for buf.c: storage exists only while bytes are held, compaction and growth keep
 * the bytes in order, reserve/commit and append/consume agree. */
#include "buf.h"
#include "check.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void test_empty(void)
{
	struct buf b = BUF_INIT;

	CHECK_INT_EQ(buf_len(&b), 0);
	CHECK_INT_EQ(buf_room(&b), 0);
	CHECK(b.data == NULL);
	CHECK_INT_EQ(buf_append(&b, "x", 0), 0);
	CHECK(b.data == NULL); /* appending nothing allocates nothing */
	buf_release(&b);
	buf_release(&b); /* twice is fine */
	CHECK(b.data == NULL);
}

static void test_append_consume(void)
{
	struct buf b;

	buf_init(&b);
	CHECK_INT_EQ(buf_append(&b, "hello ", 6), 0);
	CHECK_INT_EQ(buf_append(&b, "world", 5), 0);
	CHECK_INT_EQ(buf_len(&b), 11);
	CHECK(!memcmp(buf_head(&b), "hello world", 11));
	buf_consume(&b, 6);
	CHECK_INT_EQ(buf_len(&b), 5);
	CHECK(!memcmp(buf_head(&b), "world", 5));
	buf_consume(&b, 5);
	CHECK_INT_EQ(buf_len(&b), 0);
	CHECK(b.data == NULL); /* emptied: storage freed */
	CHECK_INT_EQ(b.cap, 0);
	/* reusable afterwards */
	CHECK_INT_EQ(buf_append(&b, "again", 5), 0);
	CHECK(!memcmp(buf_head(&b), "again", 5));
	buf_release(&b);
	CHECK(b.data == NULL);
	CHECK_INT_EQ(buf_len(&b), 0);
}

static void test_reserve_commit(void)
{
	struct buf b = BUF_INIT;
	uint8_t *p = buf_reserve(&b, 10);

	CHECK(p != NULL);
	CHECK(buf_room(&b) >= 10);
	CHECK_INT_EQ(buf_len(&b), 0); /* reserved, not committed */
	memcpy(p, "0123456789", 10);
	buf_commit(&b, 4);
	CHECK_INT_EQ(buf_len(&b), 4);
	CHECK(!memcmp(buf_head(&b), "0123", 4));
	/* a reserve that fits returns the tail without moving anything */
	p = buf_reserve(&b, 3);
	CHECK(p == b.data + 4);
	buf_release(&b);
}

/* Consume most of a buffer, then reserve: the live bytes move to the front (compaction) and
 * keep their order; no growth is needed. */
static void test_compaction(void)
{
	struct buf b = BUF_INIT;
	uint8_t chunk[1000];
	size_t cap;
	uint8_t *p;

	for (size_t i = 0; i < sizeof(chunk); i++)
		chunk[i] = (uint8_t)i;
	for (int i = 0; i < 4; i++)
		CHECK_INT_EQ(buf_append(&b, chunk, sizeof(chunk)), 0);
	cap = b.cap;
	CHECK(cap >= 4000);
	buf_consume(&b, 3500); /* 500 left at offset 3500 */
	CHECK_INT_EQ(b.head, 3500);
	p = buf_reserve(&b, cap - 600);
	CHECK(p != NULL);
	CHECK_INT_EQ(b.cap, cap); /* compacted, not grown */
	CHECK_INT_EQ(b.head, 0);
	CHECK_INT_EQ(buf_len(&b), 500);
	for (size_t i = 0; i < 500; i++)
		if (buf_head(&b)[i] != (uint8_t)(500 + i)) {
			CHECK(!"compaction reordered bytes");
			break;
		}
	buf_release(&b);
}

/* Growth by doubling with a head offset: bytes survive, head resets to 0. */
static void test_growth(void)
{
	struct buf b = BUF_INIT;
	size_t total = 0, consumed = 0;
	uint8_t blk[777];
	uint8_t expect = 0;
	int ok = 1;

	for (int round = 0; round < 200; round++) {
		for (size_t i = 0; i < sizeof(blk); i++)
			blk[i] = (uint8_t)(total + i);
		CHECK_INT_EQ(buf_append(&b, blk, sizeof(blk)), 0);
		total += sizeof(blk);
		if (round % 3 == 0) {
			size_t n = buf_len(&b) / 3;

			for (size_t i = 0; i < n; i++)
				if (buf_head(&b)[i] != (uint8_t)(consumed + i))
					ok = 0;
			buf_consume(&b, n);
			consumed += n;
		}
	}
	CHECK(ok);
	CHECK_INT_EQ(buf_len(&b), total - consumed);
	CHECK(b.cap >= buf_len(&b));
	CHECK((b.cap & (b.cap - 1)) == 0); /* doubling from 4096 keeps powers of two */
	expect = (uint8_t)consumed;
	for (size_t i = 0; i < buf_len(&b); i++, expect++)
		if (buf_head(&b)[i] != expect) {
			ok = 0;
			break;
		}
	CHECK(ok);
	buf_consume(&b, buf_len(&b));
	CHECK(b.data == NULL);
	/* one big append */
	{
		size_t big = 3u << 20;
		uint8_t *src = malloc(big);

		CHECK(src != NULL);
		if (src) {
			for (size_t i = 0; i < big; i++)
				src[i] = (uint8_t)(i * 7);
			CHECK_INT_EQ(buf_append(&b, src, big), 0);
			CHECK_INT_EQ(buf_len(&b), big);
			CHECK(!memcmp(buf_head(&b), src, big));
			free(src);
		}
	}
	buf_release(&b);
}

/* A buffer that empties starts its next use at the size the last one needed (a power of two,
 * at most 1 MiB), and shrinks back by halves after small uses. */
static void test_size_hint(void)
{
	static uint8_t blk[10 * 1024];
	struct buf b = BUF_INIT;
	uint8_t *big;

	for (int i = 0; i < 20; i++)
		CHECK_INT_EQ(buf_append(&b, blk, sizeof(blk)), 0);
	buf_consume(&b, buf_len(&b));
	CHECK(b.data == NULL);
	CHECK(buf_reserve(&b, 100) != NULL);
	CHECK_INT_EQ(b.cap, 256 * 1024); /* 200 KiB were needed: no doubling from 4 KiB */
	buf_commit(&b, 100);
	buf_consume(&b, 100);
	for (size_t want = 128 * 1024; want >= 4096; want /= 2) {
		CHECK(buf_reserve(&b, 100) != NULL);
		CHECK_INT_EQ(b.cap, want); /* uses of 100 bytes: halves each time */
		buf_release(&b);
	}
	CHECK(buf_reserve(&b, 100) != NULL);
	CHECK_INT_EQ(b.cap, 4096);
	buf_release(&b);
	big = calloc(1, 3u << 20);
	CHECK(big != NULL);
	if (big) {
		CHECK_INT_EQ(buf_append(&b, big, 3u << 20), 0);
		buf_consume(&b, 3u << 20);
		CHECK(buf_reserve(&b, 1) != NULL);
		CHECK_INT_EQ(b.cap, 1u << 20); /* capped */
		free(big);
	}
	buf_release(&b);
}

/* The chunk queue: bytes come out in order whatever the append sizes; peek gives the head
 * chunk, pullup joins chunks, copyout leaves bytes queued, an emptied queue holds nothing. */
static void test_bufq(void)
{
	struct bufq q = BUFQ_INIT;
	size_t total = 0, out = 0, n;
	static uint8_t src[300000], got[300000];
	const uint8_t *p;
	int ok = 1;

	for (size_t i = 0; i < sizeof(src); i++)
		src[i] = (uint8_t)(i * 31 + (i >> 8));
	/* appends of 1..70000 bytes, consumes in other sizes */
	for (size_t step = 1; total < sizeof(src); step = step * 7 % 70001 + 1) {
		n = step < sizeof(src) - total ? step : sizeof(src) - total;
		CHECK_INT_EQ(bufq_append(&q, src + total, n), 0);
		total += n;
		while (bufq_len(&q) > 50000) {
			size_t k = bufq_peek(&q, &p);

			CHECK(k > 0);
			if (k > 4099)
				k = 4099;
			memcpy(got + out, p, k);
			bufq_consume(&q, k);
			out += k;
		}
	}
	CHECK_INT_EQ(bufq_len(&q), total - out);
	/* pullup across chunks, copyout without consuming */
	p = bufq_pullup(&q, 40000);
	CHECK(p != NULL);
	if (p && memcmp(p, src + out, 40000))
		ok = 0;
	bufq_copyout(&q, got + out, bufq_len(&q));
	CHECK_INT_EQ(bufq_len(&q), total - out);
	if (memcmp(got, src, total))
		ok = 0;
	CHECK(ok);
	CHECK(bufq_pullup(&q, bufq_len(&q) + 1) == NULL); /* more than is queued */
	bufq_consume(&q, bufq_len(&q));
	CHECK_INT_EQ(bufq_len(&q), 0);
	CHECK(q.first == NULL && q.last == NULL);
	CHECK_INT_EQ(bufq_peek(&q, &p), 0);
	/* reusable after emptying, and after release */
	/* a chunk filled exactly, the next append in a new one: pullup must join them */
	CHECK_INT_EQ(bufq_append(&q, src, 32768), 0);
	CHECK_INT_EQ(bufq_append(&q, src + 32768, 10), 0);
	bufq_consume(&q, 32760);
	CHECK_INT_EQ(bufq_peek(&q, &p), 8);
	p = bufq_pullup(&q, 12);
	CHECK(p && !memcmp(p, src + 32760, 12));
	CHECK_INT_EQ(bufq_len(&q), 18);
	bufq_copyout(&q, got, 18);
	CHECK(!memcmp(got, src + 32760, 18));
	bufq_consume(&q, 18);
	CHECK(q.first == NULL && q.last == NULL);
	CHECK_INT_EQ(bufq_append(&q, "abc", 3), 0);
	CHECK_INT_EQ(bufq_append(&q, "de", 2), 0);
	p = bufq_pullup(&q, 5);
	CHECK(p && !memcmp(p, "abcde", 5));
	bufq_release(&q);
	CHECK_INT_EQ(bufq_len(&q), 0);
	CHECK(q.first == NULL);
}

int main(void)
{
	test_empty();
	test_append_consume();
	test_reserve_commit();
	test_compaction();
	test_growth();
	test_size_hint();
	test_bufq();
	return check_done("test_buf");
}
