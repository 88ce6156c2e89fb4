/* SPDX-License-Identifier: MIT */
/* The event loop: fd readiness, one-shot timers, deferred tasks and signals over libevent, with
 * monotonic milliseconds. Knows nothing of sockets beyond their fds; one loop per thread. */
#ifndef NTUN_LOOP_H
#define NTUN_LOOP_H

#include <stdbool.h>
#include <stdint.h>

struct loop;
struct loop_io;
struct loop_timer;
struct loop_signal;
struct event_base;

#define LOOP_READ  1u
#define LOOP_WRITE 2u

typedef void loop_io_cb(struct loop_io *io, unsigned events, void *arg);
typedef void loop_timer_cb(struct loop_timer *t, void *arg);
typedef void loop_signal_cb(struct loop_signal *s, int signo, void *arg);

/* Monotonic time in milliseconds. */
uint64_t loop_now_ms(void);

struct loop *loop_new(void);
/* Frees the loop; every io/timer/signal made on it must have been freed first. NULL ok. */
void loop_free(struct loop *l);
/* The libevent base under the loop, for modules that use other parts of libevent (http.c's
 * evhttp). Borrowed. */
struct event_base *loop_event_base(struct loop *l);
/* Runs until loop_stop(). Returns 0 or -EIO. */
int loop_run(struct loop *l);
/* Makes loop_run() return after the current iteration. */
void loop_stop(struct loop *l);

/* Watches fd (borrowed, not closed on free). Interest starts empty; set it with loop_io_set. */
struct loop_io *loop_io_new(struct loop *l, int fd, loop_io_cb *cb, void *arg);
/* Sets the interest to events (LOOP_READ|LOOP_WRITE bits); cheap when unchanged. */
void loop_io_set(struct loop_io *io, unsigned events);
unsigned loop_io_get(const struct loop_io *io);
void loop_io_free(struct loop_io *io);

/* A timer, disarmed until loop_timer_arm. A task is a timer armed for "now": it runs on the next
 * loop iteration, after the current callbacks, so work is batched and never reentrant. */
struct loop_timer *loop_timer_new(struct loop *l, loop_timer_cb *cb, void *arg);
/* (Re)arms to fire once after ms milliseconds. */
void loop_timer_arm(struct loop_timer *t, uint64_t ms);
/* Schedules a run on the next iteration; a no-op if one is already scheduled. */
void loop_timer_now(struct loop_timer *t);
void loop_timer_cancel(struct loop_timer *t);
bool loop_timer_pending(const struct loop_timer *t);
void loop_timer_free(struct loop_timer *t);

/* An edge-triggered watch for both directions, never re-armed: cb runs whenever fd becomes
 * readable or writable again. The owner reads and writes until EAGAIN before it relies on the
 * next call (sockets in relays). Cheaper per fd than loop_io_new: one event, no epoll_ctl
 * per burst. Free with loop_io_free; loop_io_set does nothing on it. */
struct loop_io *loop_io_new_edge(struct loop *l, int fd, loop_io_cb *cb, void *arg);

/* A deferred task embedded in its owner (no allocation): posted, it runs once on the next
 * loop iteration, after the callbacks running now, however often it was posted meanwhile. */
struct loop_task;
typedef void loop_task_cb(struct loop_task *t, void *arg);
struct loop_task {
	struct loop_task *next, *prev;
	loop_task_cb *cb;
	void *arg;
	unsigned epoch;
	bool queued;
};
void loop_task_init(struct loop_task *t, loop_task_cb *cb, void *arg);
void loop_task_post(struct loop *l, struct loop_task *t);
/* Takes a posted task back (the owner is going away). */
void loop_task_cancel(struct loop *l, struct loop_task *t);

/* Delivers signo through the loop (not in signal context). */
struct loop_signal *loop_signal_new(struct loop *l, int signo, loop_signal_cb *cb, void *arg);
void loop_signal_free(struct loop_signal *s);

#endif
