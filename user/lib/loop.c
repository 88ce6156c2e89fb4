// SPDX-License-Identifier: MIT
/* libevent behind a small API: persistent read and write events per fd, timers whose
 * "now" form makes deferred tasks, signals. Does no I/O itself and owns none of the fds. */
#include "loop.h"

#include <errno.h>
#include <event2/event.h>
#include <stdlib.h>
#include <time.h>

struct loop {
	struct event_base *base;
	struct event *tasks_ev; /* active while tasks are queued */
	struct loop_task *head, *tail;
	unsigned epoch; /* tasks posted since the last run carry this */
};

struct loop_io {
	struct loop *loop;
	struct event *rd, *wr; /* wr is NULL for an edge-triggered io (rd watches both) */
	bool edge;
	unsigned events;
	loop_io_cb *cb;
	void *arg;
};

struct loop_timer {
	struct event *ev;
	bool active; /* scheduled by loop_timer_now, not yet run */
	loop_timer_cb *cb;
	void *arg;
};

struct loop_signal {
	struct event *ev;
	loop_signal_cb *cb;
	void *arg;
};

uint64_t loop_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void run_tasks(evutil_socket_t fd, short what, void *arg)
{
	struct loop *l = arg;
	unsigned cur = l->epoch++;
	struct loop_task *t;

	/* Tasks posted while these run carry the next epoch and wait for the next iteration; a
	 * task may cancel others, so always take the current head. */
	while ((t = l->head) && t->epoch == cur) {
		l->head = t->next;
		if (l->head)
			l->head->prev = NULL;
		else
			l->tail = NULL;
		t->next = t->prev = NULL;
		t->queued = false;
		t->cb(t, t->arg);
	}
	if (l->head)
		event_active(l->tasks_ev, 0, 0);
}

struct loop *loop_new(void)
{
	struct event_config *cfg;
	struct loop *l = calloc(1, sizeof(*l));

	if (!l)
		return NULL;
	cfg = event_config_new();
	if (cfg) {
		/* Monotonic timers; no lock needed: one loop per thread. */
		event_config_set_flag(cfg, EVENT_BASE_FLAG_NOLOCK);
		l->base = event_base_new_with_config(cfg);
		event_config_free(cfg);
	}
	if (l->base)
		l->tasks_ev = event_new(l->base, -1, 0, run_tasks, l);
	if (!l->base || !l->tasks_ev) {
		if (l->base)
			event_base_free(l->base);
		free(l);
		errno = ENOMEM;
		return NULL;
	}
	return l;
}

void loop_free(struct loop *l)
{
	if (!l)
		return;
	event_free(l->tasks_ev);
	event_base_free(l->base);
	free(l);
}

struct event_base *loop_event_base(struct loop *l)
{
	return l->base;
}

int loop_run(struct loop *l)
{
	return event_base_dispatch(l->base) < 0 ? -EIO : 0;
}

void loop_stop(struct loop *l)
{
	event_base_loopbreak(l->base);
}

static void io_rd(evutil_socket_t fd, short what, void *arg)
{
	struct loop_io *io = arg;

	io->cb(io, LOOP_READ, io->arg);
}

static void io_wr(evutil_socket_t fd, short what, void *arg)
{
	struct loop_io *io = arg;

	io->cb(io, LOOP_WRITE, io->arg);
}

struct loop_io *loop_io_new(struct loop *l, int fd, loop_io_cb *cb, void *arg)
{
	struct loop_io *io = calloc(1, sizeof(*io));

	if (!io)
		return NULL;
	io->loop = l;
	io->cb = cb;
	io->arg = arg;
	io->rd = event_new(l->base, fd, EV_READ | EV_PERSIST, io_rd, io);
	io->wr = event_new(l->base, fd, EV_WRITE | EV_PERSIST, io_wr, io);
	if (!io->rd || !io->wr) {
		loop_io_free(io);
		errno = ENOMEM;
		return NULL;
	}
	return io;
}

static void io_edge(evutil_socket_t fd, short what, void *arg)
{
	struct loop_io *io = arg;
	unsigned ev = 0;

	if (what & EV_READ)
		ev |= LOOP_READ;
	if (what & EV_WRITE)
		ev |= LOOP_WRITE;
	io->cb(io, ev, io->arg);
}

struct loop_io *loop_io_new_edge(struct loop *l, int fd, loop_io_cb *cb, void *arg)
{
	struct loop_io *io = calloc(1, sizeof(*io));

	if (!io)
		return NULL;
	io->loop = l;
	io->cb = cb;
	io->arg = arg;
	io->edge = true;
	io->rd = event_new(l->base, fd, EV_READ | EV_WRITE | EV_PERSIST | EV_ET, io_edge, io);
	if (!io->rd || event_add(io->rd, NULL) < 0) {
		loop_io_free(io);
		errno = ENOMEM;
		return NULL;
	}
	io->events = LOOP_READ | LOOP_WRITE;
	return io;
}

void loop_task_init(struct loop_task *t, loop_task_cb *cb, void *arg)
{
	t->next = t->prev = NULL;
	t->cb = cb;
	t->arg = arg;
	t->queued = false;
}

void loop_task_post(struct loop *l, struct loop_task *t)
{
	if (t->queued)
		return;
	t->queued = true;
	t->epoch = l->epoch;
	t->next = NULL;
	t->prev = l->tail;
	if (l->tail)
		l->tail->next = t;
	else
		l->head = t;
	l->tail = t;
	if (t == l->head)
		event_active(l->tasks_ev, 0, 0); /* harmless if already active */
}

void loop_task_cancel(struct loop *l, struct loop_task *t)
{
	if (!t->queued)
		return;
	if (t->prev)
		t->prev->next = t->next;
	else if (l->head == t)
		l->head = t->next;
	if (t->next)
		t->next->prev = t->prev;
	else if (l->tail == t)
		l->tail = t->prev;
	t->next = t->prev = NULL;
	t->queued = false;
}

void loop_io_set(struct loop_io *io, unsigned events)
{
	unsigned changed = io->events ^ events;

	if (io->edge)
		return;
	if (changed & LOOP_READ) {
		if (events & LOOP_READ)
			event_add(io->rd, NULL);
		else
			event_del(io->rd);
	}
	if (changed & LOOP_WRITE) {
		if (events & LOOP_WRITE)
			event_add(io->wr, NULL);
		else
			event_del(io->wr);
	}
	io->events = events;
}

unsigned loop_io_get(const struct loop_io *io)
{
	return io->events;
}

void loop_io_free(struct loop_io *io)
{
	if (!io)
		return;
	if (io->rd)
		event_free(io->rd);
	if (io->wr)
		event_free(io->wr);
	free(io);
}

static void timer_fire(evutil_socket_t fd, short what, void *arg)
{
	struct loop_timer *t = arg;

	t->active = false;
	t->cb(t, t->arg);
}

struct loop_timer *loop_timer_new(struct loop *l, loop_timer_cb *cb, void *arg)
{
	struct loop_timer *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	t->cb = cb;
	t->arg = arg;
	t->ev = evtimer_new(l->base, timer_fire, t);
	if (!t->ev) {
		free(t);
		errno = ENOMEM;
		return NULL;
	}
	return t;
}

void loop_timer_arm(struct loop_timer *t, uint64_t ms)
{
	struct timeval tv = {.tv_sec = (time_t)(ms / 1000),
			     .tv_usec = (suseconds_t)(ms % 1000) * 1000};

	evtimer_add(t->ev, &tv);
}

void loop_timer_now(struct loop_timer *t)
{
	if (t->active)
		return;
	t->active = true;
	event_active(t->ev, EV_TIMEOUT, 0);
}

void loop_timer_cancel(struct loop_timer *t)
{
	t->active = false;
	event_del(t->ev);
}

bool loop_timer_pending(const struct loop_timer *t)
{
	return t->active || event_pending(t->ev, EV_TIMEOUT, NULL) != 0;
}

void loop_timer_free(struct loop_timer *t)
{
	if (!t)
		return;
	event_free(t->ev);
	free(t);
}

static void signal_fire(evutil_socket_t signo, short what, void *arg)
{
	struct loop_signal *s = arg;

	s->cb(s, (int)signo, s->arg);
}

struct loop_signal *loop_signal_new(struct loop *l, int signo, loop_signal_cb *cb, void *arg)
{
	struct loop_signal *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->cb = cb;
	s->arg = arg;
	s->ev = evsignal_new(l->base, signo, signal_fire, s);
	if (!s->ev || evsignal_add(s->ev, NULL) < 0) {
		if (s->ev)
			event_free(s->ev);
		free(s);
		errno = EINVAL;
		return NULL;
	}
	return s;
}

void loop_signal_free(struct loop_signal *s)
{
	if (!s)
		return;
	event_free(s->ev);
	free(s);
}
