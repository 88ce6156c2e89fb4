// SPDX-License-Identifier: MIT
/* Linear buffer: compacts by moving the live bytes to the front when the tail runs out, grows
 * by doubling. Storage exists only while bytes are held; each allocation starts at the size the
 * previous one needed, so a buffer that empties with every burst (TLS output, HTTP/2 output)
 * does not regrow from 4 KiB and copy its contents at each doubling every time. Queues that
 * hold up to a stream window use the chunk queue below instead. */
#include "buf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define BUF_MIN	     4096
#define BUF_HINT_MAX (1u << 20)

/* While storage exists, hint is the most this use of it has needed; once freed, the size for
 * the next allocation: that need rounded up to a power of two, but at least half the size just
 * freed, so that a buffer whose bursts vary shrinks slowly instead of regrowing every time. */
void buf_release(struct buf *b)
{
	size_t hint = b->hint, next = BUF_MIN;

	if (b->data) {
		while (next < hint && next < BUF_HINT_MAX)
			next *= 2;
		if (next < b->cap / 2)
			next = b->cap / 2 < BUF_HINT_MAX ? b->cap / 2 : BUF_HINT_MAX;
		hint = next;
	}
	free(b->data);
	buf_init(b);
	b->hint = hint;
}

uint8_t *buf_reserve(struct buf *b, size_t n)
{
	size_t len = buf_len(b), cap;
	uint8_t *p;

	if (b->data && len + n > b->hint)
		b->hint = len + n;
	if (b->cap - b->tail >= n)
		return b->data + b->tail;
	if (b->head && b->cap - len >= n && len <= b->cap / 2) {
		memmove(b->data, b->data + b->head, len);
		b->head = 0;
		b->tail = len;
		return b->data + b->tail;
	}
	if (!b->data) {
		cap = b->hint > BUF_MIN ? b->hint : BUF_MIN;
		b->hint = len + n;
	} else {
		cap = b->cap;
	}
	while (cap - len < n)
		cap *= 2;
	if (b->head == 0) {
		p = realloc(b->data, cap);
		if (!p)
			return NULL;
	} else {
		p = malloc(cap);
		if (!p)
			return NULL;
		memcpy(p, b->data + b->head, len);
		free(b->data);
	}
	b->data = p;
	b->cap = cap;
	b->head = 0;
	b->tail = len;
	return b->data + b->tail;
}

int buf_append(struct buf *b, const void *p, size_t n)
{
	uint8_t *dst;

	if (n == 0)
		return 0;
	dst = buf_reserve(b, n);
	if (!dst)
		return -ENOMEM;
	memcpy(dst, p, n);
	b->tail += n;
	return 0;
}

void buf_consume(struct buf *b, size_t n)
{
	b->head += n;
	if (b->head >= b->tail)
		buf_release(b);
}

/* ---- chunk queue ---- */

#define BUFQ_CHUNK (32 * 1024) /* least chunk size: a DATA frame or two */

struct bufq_chunk {
	struct bufq_chunk *next;
	size_t head, tail, cap;
	uint8_t data[];
};

static struct bufq_chunk *chunk_new(size_t cap)
{
	struct bufq_chunk *k = malloc(sizeof(*k) + cap);

	if (!k)
		return NULL;
	k->next = NULL;
	k->head = k->tail = 0;
	k->cap = cap;
	return k;
}

void bufq_release(struct bufq *q)
{
	struct bufq_chunk *k = q->first, *next;

	for (; k; k = next) {
		next = k->next;
		free(k);
	}
	bufq_init(q);
}

int bufq_append(struct bufq *q, const void *p, size_t n)
{
	const uint8_t *src = p;
	struct bufq_chunk *k = q->last;
	size_t room;

	if (n == 0)
		return 0;
	room = k ? k->cap - k->tail : 0;
	if (room < n) {
		/* Fill the tail chunk, the rest goes to one new chunk: a chunk per append at most. */
		struct bufq_chunk *nk = chunk_new(n - room > BUFQ_CHUNK ? n - room : BUFQ_CHUNK);

		if (!nk)
			return -ENOMEM;
		if (room) {
			memcpy(k->data + k->tail, src, room);
			k->tail += room;
			src += room;
			n -= room;
			q->len += room;
		}
		if (k)
			k->next = nk;
		else
			q->first = nk;
		q->last = k = nk;
	}
	memcpy(k->data + k->tail, src, n);
	k->tail += n;
	q->len += n;
	return 0;
}

size_t bufq_peek(const struct bufq *q, const uint8_t **p)
{
	struct bufq_chunk *k = q->first;

	if (!k) {
		*p = NULL;
		return 0;
	}
	*p = k->data + k->head;
	return k->tail - k->head;
}

void bufq_copyout(const struct bufq *q, void *dst, size_t n)
{
	const struct bufq_chunk *k = q->first;
	uint8_t *d = dst;
	size_t here;

	for (; n && k; k = k->next) {
		here = k->tail - k->head;
		if (here > n)
			here = n;
		memcpy(d, k->data + k->head, here);
		d += here;
		n -= here;
	}
}

void bufq_consume(struct bufq *q, size_t n)
{
	struct bufq_chunk *k;
	size_t here;

	if (n > q->len)
		n = q->len;
	q->len -= n;
	while (n && (k = q->first)) {
		here = k->tail - k->head;
		if (n < here) {
			k->head += n;
			return;
		}
		n -= here;
		q->first = k->next;
		free(k);
	}
	if (!q->first)
		q->last = NULL;
}

const uint8_t *bufq_pullup(struct bufq *q, size_t n)
{
	struct bufq_chunk *k = q->first, *nk, *next;
	size_t need = n, here;

	if (n == 0 || n > q->len)
		return n == 0 && k ? k->data + k->head : NULL;
	if (k->tail - k->head >= n)
		return k->data + k->head;
	nk = chunk_new(n > BUFQ_CHUNK ? n : BUFQ_CHUNK);
	if (!nk)
		return NULL;
	/* Move the first n bytes into nk, freeing the chunks they empty. */
	while (need) {
		here = k->tail - k->head;
		if (here > need)
			here = need;
		memcpy(nk->data + nk->tail, k->data + k->head, here);
		nk->tail += here;
		k->head += here;
		need -= here;
		if (k->head == k->tail) {
			next = k->next;
			if (q->last == k)
				q->last = nk;
			free(k);
			k = next;
		}
	}
	nk->next = k;
	q->first = nk;
	return nk->data;
}
