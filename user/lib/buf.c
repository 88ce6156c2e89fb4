// SPDX-License-Identifier: MIT
/* Linear buffer: compacts by moving the live bytes to the front when the tail runs out, grows
 * by doubling. Storage exists only while bytes are held. */
#include "buf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define BUF_MIN 4096

void buf_release(struct buf *b)
{
	free(b->data);
	buf_init(b);
}

uint8_t *buf_reserve(struct buf *b, size_t n)
{
	size_t len = buf_len(b), cap;
	uint8_t *p;

	if (b->cap - b->tail >= n)
		return b->data + b->tail;
	if (b->head && b->cap - len >= n && len <= b->cap / 2) {
		memmove(b->data, b->data + b->head, len);
		b->head = 0;
		b->tail = len;
		return b->data + b->tail;
	}
	cap = b->cap ? b->cap : BUF_MIN;
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
