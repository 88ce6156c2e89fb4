/* SPDX-License-Identifier: MIT */
/* A byte buffer with a read head and a write tail, allocated on first use and freed whenever it
 * empties, so idle connections hold no buffer memory. It does not enforce a high-water mark:
 * owners check buf_len() against their own limits before adding. A buffer remembers the size
 * it last had and starts there when it is next used, so one that empties and refills with
 * every burst does not grow by doubling (and copy what it holds) each time. */
#ifndef NTUN_BUF_H
#define NTUN_BUF_H

#include <stddef.h>
#include <stdint.h>

struct buf {
	uint8_t *data;
	size_t head, tail, cap;
	size_t hint; /* most bytes needed while allocated; once freed, the next allocation size */
};

#define BUF_INIT                 \
	{                        \
		NULL, 0, 0, 0, 0 \
	}

static inline void buf_init(struct buf *b)
{
	b->data = NULL;
	b->head = b->tail = b->cap = b->hint = 0;
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

/* Frees the storage. The buffer is empty and reusable afterwards; its next allocation has
 * the size this one had (at most BUF_HINT_MAX). */
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

/* A queue of bytes in a list of chunks: appending never moves what is queued, so a queue that
 * holds up to a stream window while its consumer is slow costs one copy per byte, where a
 * linear buffer copies its contents again each time it grows or compacts. Chunks are freed as
 * they are consumed: an empty queue holds no memory. */
struct bufq_chunk;
struct bufq {
	struct bufq_chunk *first, *last;
	size_t len;
};

#define BUFQ_INIT             \
	{                     \
		NULL, NULL, 0 \
	}

static inline void bufq_init(struct bufq *q)
{
	q->first = q->last = NULL;
	q->len = 0;
}

static inline size_t bufq_len(const struct bufq *q)
{
	return q->len;
}

/* Frees every chunk. The queue is empty and reusable afterwards. */
void bufq_release(struct bufq *q);

/* Copies n bytes in at the tail. Returns 0 or -ENOMEM. */
int bufq_append(struct bufq *q, const void *p, size_t n);

/* The contiguous bytes at the head: sets *p and returns how many (0 when empty). */
size_t bufq_peek(const struct bufq *q, const uint8_t **p);

/* Makes the first n bytes (n <= bufq_len) contiguous, copying them into one chunk if they
 * span several. Returns them, or NULL if memory ran out (the queue is unchanged then). */
const uint8_t *bufq_pullup(struct bufq *q, size_t n);

/* Copies the first n bytes (n <= bufq_len) to dst, leaving them queued. */
void bufq_copyout(const struct bufq *q, void *dst, size_t n);

/* Drops n bytes (n <= bufq_len) from the head. */
void bufq_consume(struct bufq *q, size_t n);

#endif
