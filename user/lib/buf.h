/* SPDX-License-Identifier: MIT */
/* A byte buffer with a read head and a write tail, allocated on first use and freed whenever it
 * empties, so idle connections hold no buffer memory. It does not enforce a high-water mark:
 * owners check buf_len() against their own limits before adding. */
#ifndef NTUN_BUF_H
#define NTUN_BUF_H

#include <stddef.h>
#include <stdint.h>

struct buf {
	uint8_t *data;
	size_t head, tail, cap;
};

#define BUF_INIT              \
	{                     \
		NULL, 0, 0, 0 \
	}

static inline void buf_init(struct buf *b)
{
	b->data = NULL;
	b->head = b->tail = b->cap = 0;
}

static inline size_t buf_len(const struct buf *b)
{
	return b->tail - b->head;
}

static inline uint8_t *buf_head(const struct buf *b)
{
	/* NULL + 0 is undefined behaviour: an unallocated buffer's head is just NULL. */
	return b->data ? b->data + b->head : NULL;
}

/* Frees the storage. The buffer is empty and reusable afterwards. */
void buf_release(struct buf *b);

/* Returns a pointer to at least n writable bytes after the tail (growing or compacting as
 * needed), or NULL if memory ran out. Make them part of the buffer with buf_commit. */
uint8_t *buf_reserve(struct buf *b, size_t n);

/* Writable room after the tail without moving anything (0 before the first reserve). */
static inline size_t buf_room(const struct buf *b)
{
	return b->cap - b->tail;
}

static inline void buf_commit(struct buf *b, size_t n)
{
	b->tail += n;
}

/* Copies n bytes in. Returns 0 or -ENOMEM. */
int buf_append(struct buf *b, const void *p, size_t n);

/* Drops n bytes (n <= buf_len) from the head; frees the storage when the buffer empties. */
void buf_consume(struct buf *b, size_t n);

#endif
