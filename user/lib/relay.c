// SPDX-License-Identifier: MIT
/* The pump between two ends, and the TCP socket end. Pumps run as deferred loop tasks, never
 * inside another layer's callback, so an end may report anything at any time. Holds no data
 * of its own; a socket end reads only when asked to peek, i.e. when the other side has room. */
#include "relay.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "buf.h"
#include "log.h"
#include "loop.h"
#include "sock.h"

/* One read(2) takes up to this much: with 64 KiB reads a proxy spent 1.65 s/GiB in the kernel,
 * with 256 KiB 1.10 (fewer reads, and fewer window-update rounds with the sender). The buffer
 * is only held while bytes wait in it. */
#define SOCK_READ_CHUNK (256 * 1024)
#define SOCK_READ_FIRST (16 * 1024) /* where a socket end's reads start (sock_peek) */

struct relay {
	struct loop *loop;
	struct relay_end *a, *b;
	struct loop_task task; /* the pump */
	struct loop_timer *idle;
	uint32_t idle_ms;
	uint64_t last_moved, last_total;
	bool a_shut, b_shut;   /* a->b, b->a directions ended */
	bool b_pulls, a_pulls; /* b takes a's bytes itself (a->b), a takes b's (b->a) */
	bool finished;
	relay_done_cb *done;
	void *arg;
};

static void relay_finish(struct relay *r, const char *reason, int err)
{
	uint64_t ab = r->a->rx_bytes, ba = r->b->rx_bytes;

	r->finished = true;
	r->a->relay = NULL;
	r->b->relay = NULL;
	r->a->ops->free(r->a);
	r->b->ops->free(r->b);
	loop_task_cancel(r->loop, &r->task);
	loop_timer_free(r->idle);
	if (r->done)
		r->done(r->arg, reason, err, ab, ba);
	free(r);
}

/* Moves src -> dst while both can. Returns true if any byte moved. */
static bool pump_dir(struct relay_end *src, struct relay_end *dst, bool *shut, bool pulled)
{
	const uint8_t *p;
	size_t n, w;
	bool moved = false;

	if (pulled) {
		/* dst takes the bytes itself when its transport is ready; tell it to look. */
		if (!*shut && !src->rx_err && !dst->rx_err) {
			if (dst->pull_done)
				*shut = true;
			else
				dst->ops->kick(dst);
		}
		return false;
	}
	while (!*shut && !src->rx_err && !dst->rx_err) {
		n = src->ops->peek(src, &p);
		if (n == 0) {
			if (src->rx_eof && !src->rx_err) {
				dst->ops->shutdown(dst);
				*shut = true;
			}
			break;
		}
		w = dst->ops->write(dst, p, n);
		if (w == 0)
			break;
		src->ops->consume(src, w);
		src->rx_bytes += w;
		dst->tx_bytes += w;
		moved = true;
		/* A short write is not "full": only a write of 0 means the end will wake us. */
	}
	return moved;
}

static void pump(struct loop_task *t, void *arg)
{
	struct relay *r = arg;
	bool moved;

	moved = pump_dir(r->a, r->b, &r->a_shut, r->b_pulls);
	moved |= pump_dir(r->b, r->a, &r->b_shut, r->a_pulls);
	if (moved)
		r->last_moved = loop_now_ms();
	if (r->a->rx_err || r->b->rx_err) {
		struct relay_end *bad = r->a->rx_err ? r->a : r->b;
		struct relay_end *good = bad == r->a ? r->b : r->a;
		int err = bad->rx_err;

		if (!good->rx_err)
			good->ops->abort(good, err);
		/* The failed end answers too where it still can (a gRPC call that got malformed
		 * input replies with a status instead of a bare reset). */
		bad->ops->abort(bad, err);
		relay_finish(r, strerror(err), err);
		return;
	}
	if (r->a_shut && r->b_shut)
		relay_finish(r, "done", 0);
}

static void idle_check(struct loop_timer *t, void *arg)
{
	struct relay *r = arg;
	uint64_t now = loop_now_ms(), total = r->a->rx_bytes + r->b->rx_bytes, quiet;

	/* Pulled bytes never pass through the pump: count them as activity here. */
	if (total != r->last_total) {
		r->last_total = total;
		r->last_moved = now;
	}
	quiet = now - r->last_moved;

	if (quiet >= r->idle_ms) {
		relay_abort(r, ETIMEDOUT);
		return;
	}
	loop_timer_arm(r->idle, r->idle_ms - quiet);
}

struct relay *relay_new(struct loop *l, struct relay_end *a, struct relay_end *b, uint32_t idle_ms,
			relay_done_cb *done, void *arg)
{
	struct relay *r = calloc(1, sizeof(*r));

	if (!r)
		goto err;
	r->loop = l;
	r->a = a;
	r->b = b;
	r->done = done;
	r->arg = arg;
	r->idle_ms = idle_ms;
	r->last_moved = loop_now_ms();
	loop_task_init(&r->task, pump, r);
	if (idle_ms) {
		r->idle = loop_timer_new(l, idle_check, r);
		if (!r->idle)
			goto err;
		loop_timer_arm(r->idle, idle_ms);
	}
	a->relay = r;
	b->relay = r;
	r->b_pulls = b->ops->pull && b->ops->pull(b, a);
	r->a_pulls = a->ops->pull && a->ops->pull(a, b);
	if (b->ops->sync_write && a->ops->push_to)
		a->ops->push_to(a, b);
	if (a->ops->sync_write && b->ops->push_to)
		b->ops->push_to(b, a);
	loop_task_post(l, &r->task);
	return r;
err:
	free(r);
	a->ops->abort(a, ENOMEM);
	b->ops->abort(b, ENOMEM);
	a->ops->free(a);
	b->ops->free(b);
	errno = ENOMEM;
	return NULL;
}

void relay_end_wake(struct relay_end *e)
{
	if (e->relay)
		loop_task_post(e->relay->loop, &e->relay->task);
}

void relay_end_pulled(struct relay_end *dst, struct relay_end *src, size_t n)
{
	src->rx_bytes += n;
	dst->tx_bytes += n;
}

void relay_bytes(const struct relay *r, uint64_t *ab, uint64_t *ba)
{
	*ab = r->a->rx_bytes;
	*ba = r->b->rx_bytes;
}

void relay_abort(struct relay *r, int err)
{
	if (!r->a->rx_err)
		r->a->ops->abort(r->a, err);
	if (!r->b->rx_err)
		r->b->ops->abort(r->b, err);
	relay_finish(r, strerror(err), err);
}

/* ---- TCP socket end ---- */

struct sock_end {
	struct relay_end end;
	int fd;
	struct loop_io *io;
	struct loop_timer *connect_timer;
	struct buf in;
	uint32_t rd_size; /* the next read's size, see sock_peek */
	bool connecting;
	bool rd_eof;
	bool wr_shut;
};

static void sock_io(struct loop_io *io, unsigned events, void *arg)
{
	struct sock_end *s = arg;
	int err;

	/* Edge-triggered: every call means something may have changed; the pump looks. */
	if ((events & LOOP_WRITE) && s->connecting) {
		err = sock_connect_result(s->fd);
		s->connecting = false;
		loop_timer_free(s->connect_timer);
		s->connect_timer = NULL;
		if (err)
			s->end.rx_err = -err;
		else if (s->wr_shut)
			shutdown(s->fd, SHUT_WR); /* the EOF came while connecting */
	}
	relay_end_wake(&s->end);
}

static void sock_connect_timeout(struct loop_timer *t, void *arg)
{
	struct sock_end *s = arg;

	if (!s->connecting)
		return;
	s->end.rx_err = ETIMEDOUT;
	relay_end_wake(&s->end);
}

static size_t sock_peek(struct relay_end *e, const uint8_t **p)
{
	struct sock_end *s = (struct sock_end *)e;
	uint8_t *dst;
	ssize_t n;

	if (buf_len(&s->in) == 0 && !s->rd_eof && !s->connecting && s->fd >= 0) {
		/* Reads start at 16 KiB and grow fourfold while they come back full, up to
		 * SOCK_READ_CHUNK; one under a quarter full starts over. A bulk sender is read
		 * 256 KiB at a time from the third read on, while a connection that carries a few
		 * bytes at a time reads 16 KiB (its buffer may still be larger for a while after
		 * a burst: struct buf sizes an allocation by the last one's need). */
		dst = buf_reserve(&s->in, s->rd_size);
		if (!dst) {
			e->rx_err = ENOMEM;
			return 0;
		}
		n = read(s->fd, dst, s->rd_size);
		if (n > 0) {
			buf_commit(&s->in, (size_t)n);
			if ((size_t)n == s->rd_size && s->rd_size < SOCK_READ_CHUNK)
				s->rd_size *= 4;
			else if ((size_t)n < s->rd_size / 4)
				s->rd_size = SOCK_READ_FIRST;
		} else if (n == 0) {
			s->rd_eof = true;
			e->rx_eof = true;
		} else if (errno == EAGAIN || errno == EINTR) {
			/* drained: the next edge will tell */
		} else {
			e->rx_err = errno;
		}
		if (buf_len(&s->in) == 0)
			buf_release(&s->in);
	}
	*p = buf_head(&s->in);
	return buf_len(&s->in);
}

static void sock_consume(struct relay_end *e, size_t n)
{
	struct sock_end *s = (struct sock_end *)e;

	buf_consume(&s->in, n);
}

static size_t sock_writev(struct relay_end *e, const struct iovec *iov, int n)
{
	struct sock_end *s = (struct sock_end *)e;
	struct msghdr m = {.msg_iov = (struct iovec *)(uintptr_t)iov, .msg_iovlen = (size_t)n};
	ssize_t w;

	if (s->connecting || s->fd < 0)
		return 0;
	w = sendmsg(s->fd, &m, MSG_NOSIGNAL);
	if (w >= 0)
		return (size_t)w;
	if (errno != EAGAIN && errno != EINTR)
		e->rx_err = errno;
	return 0; /* full: the next writable edge wakes the relay */
}

static size_t sock_write(struct relay_end *e, const uint8_t *p, size_t n)
{
	struct iovec v = {.iov_base = (void *)(uintptr_t)p, .iov_len = n};

	return sock_writev(e, &v, 1);
}

static void sock_shutdown(struct relay_end *e)
{
	struct sock_end *s = (struct sock_end *)e;

	if (s->fd >= 0 && !s->wr_shut && !s->connecting)
		shutdown(s->fd, SHUT_WR);
	s->wr_shut = true;
}

static void sock_abort(struct relay_end *e, int err)
{
	struct sock_end *s = (struct sock_end *)e;

	if (s->fd >= 0) {
		loop_io_free(s->io);
		s->io = NULL;
		sock_close_reset(s->fd);
		s->fd = -1;
	}
	if (!e->rx_err)
		e->rx_err = err;
}

static void sock_free(struct relay_end *e)
{
	struct sock_end *s = (struct sock_end *)e;

	loop_io_free(s->io);
	loop_timer_free(s->connect_timer);
	if (s->fd >= 0)
		close(s->fd);
	buf_release(&s->in);
	free(s);
}

static const struct relay_end_ops sock_ops = {
	.peek = sock_peek,
	.consume = sock_consume,
	.write = sock_write,
	.shutdown = sock_shutdown,
	.abort = sock_abort,
	.free = sock_free,
	.writev = sock_writev,
	.sync_write = true,
};

struct relay_end *relay_sock_end(struct loop *l, int fd, bool connecting, uint32_t connect_ms)
{
	struct sock_end *s = calloc(1, sizeof(*s));

	if (!s)
		goto err;
	s->end.ops = &sock_ops;
	s->fd = fd;
	s->rd_size = SOCK_READ_FIRST;
	s->connecting = connecting;
	buf_init(&s->in);
	s->io = loop_io_new_edge(l, fd, sock_io, s);
	if (!s->io)
		goto err;
	if (connecting) {
		s->connect_timer = loop_timer_new(l, sock_connect_timeout, s);
		if (!s->connect_timer)
			goto err;
		loop_timer_arm(s->connect_timer, connect_ms);
	}
	return &s->end;
err:
	if (s) {
		loop_io_free(s->io);
		free(s);
	}
	close(fd);
	errno = ENOMEM;
	return NULL;
}

bool relay_sock_connected(const struct relay_end *e)
{
	return !((const struct sock_end *)e)->connecting;
}
