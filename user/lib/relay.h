/* SPDX-License-Identifier: MIT */
/* The relay engine: moves bytes between two ends (a TCP socket or a gRPC call), carries EOF
 * as a half-close and an error as a reset, and frees the pair once both directions are done.
 * Every daemon uses it; none has a relay loop of its own. It never buffers: bytes stay in the
 * source end until the destination end accepts them, which is the backpressure.
 *
 *   a --peek/consume--> [pump] --write--> b        a.rx_eof  -> b.shutdown (half-close)
 *   a <--write-------- [pump] <--peek---- b        a.rx_err  -> b.abort(err), then close
 */
#ifndef NTUN_RELAY_H
#define NTUN_RELAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct iovec;
struct loop;
struct relay;
struct relay_end;

struct relay_end_ops {
	/* Bytes readable now: sets *p and returns their count, 0 if none yet. May do I/O. */
	size_t (*peek)(struct relay_end *e, const uint8_t **p);
	/* Drops n bytes that peek returned (the other end took them). */
	void (*consume)(struct relay_end *e, size_t n);
	/* Takes up to n bytes; returns how many. 0 means full: the end calls relay_end_wake()
	 * once it has room again. */
	size_t (*write)(struct relay_end *e, const uint8_t *p, size_t n);
	/* No more bytes will be written (carry EOF as a half-close). */
	void (*shutdown)(struct relay_end *e);
	/* Carry a failure: err is a positive errno (ECONNRESET for a reset, ECONNREFUSED for a
	 * refused dial, ...). Nothing more will be read or written. */
	void (*abort)(struct relay_end *e, int err);
	/* The relay lets go. The end may live on privately to flush what it accepted. */
	void (*free)(struct relay_end *e);
	/* Optional zero-copy path: the end takes its bytes straight from src's peek/consume when
	 * its transport is ready for them (one copy, into the transport), instead of being
	 * written to. Returns true if it will; it then sets pull_done once src's EOF is carried.
	 * NULL or false: the relay writes to it. */
	bool (*pull)(struct relay_end *e, struct relay_end *src);
	/* Pulling ends: src may have new bytes, EOF or an error; look again. */
	void (*kick)(struct relay_end *e);
	/* Optional: the end may write arriving bytes straight to sink (whose write copies them
	 * out at once) while it has none buffered, instead of holding them for the pump. */
	void (*push_to)(struct relay_end *e, struct relay_end *sink);
	/* Optional, with sync_write: write() for several pieces in one go (one system call). */
	size_t (*writev)(struct relay_end *e, const struct iovec *iov, int n);
	/* write() copies the bytes out before returning and keeps no pointer (a socket). */
	bool sync_write;
};

struct relay_end {
	const struct relay_end_ops *ops;
	struct relay *relay; /* set by relay_new; NULL before and after */
	bool rx_eof;	     /* nothing follows what peek returns */
	bool pull_done;	     /* a pulling end carried its source's EOF */
	bool up;	     /* connected: see relay_on_up */
	int rx_err;	     /* the end failed (positive errno); terminal */
	uint64_t rx_bytes, tx_bytes;
};

/* Called once when the relay ends: reason is "done" for a clean close, else the error's
 * description; err is 0 or the positive errno that ended it. Borrowed strings. */
typedef void relay_done_cb(void *arg, const char *reason, int err, uint64_t a_to_b,
			   uint64_t b_to_a);

/* Joins a and b (ownership of both passes to the relay) and schedules the first pump.
 * Neither may have ended its sending side (shutdown, a gRPC call finished): the relay writes
 * to an end until it shuts it, and one that takes nothing and never fails would hold the
 * relay forever (a failed end is fine).
 * idle_ms > 0 ends a relay with no bytes moving for that long. Returns NULL + errno (the
 * ends are then aborted with ENOMEM and freed). */
struct relay *relay_new(struct loop *l, struct relay_end *a, struct relay_end *b, uint32_t idle_ms,
			relay_done_cb *done, void *arg);

/* Adds a pair of counters the relay adds the bytes it moves to as they move: a->b to *up,
 * b->a to *down (either may be NULL), so that totals grow during a long transfer rather than
 * at its end. Up to RELAY_SINKS pairs; each costs one add per transfer, not per byte.
 * Borrowed: they must outlive the relay. Call right after relay_new, before the loop runs
 * again. 0, or -ENOSPC when r has RELAY_SINKS pairs already. */
#define RELAY_SINKS 4
int relay_count_into(struct relay *r, uint64_t *up, uint64_t *down);

/* cb(the arg of relay_new) runs once, from the pump, when e (one of r's ends) is up: a socket
 * end made connecting once its connect succeeded, a client gRPC call once the server answered.
 * Not if the relay ends first. */
typedef void relay_up_cb(void *arg);
void relay_on_up(struct relay *r, struct relay_end *e, relay_up_cb *cb);

/* An end changed state (readable, writable, eof, error): pump on the next loop iteration.
 * Pulling ends also account the bytes they take: relay_end_pulled(). */
void relay_end_wake(struct relay_end *e);

/* A pulling end took n bytes from src. */
void relay_end_pulled(struct relay_end *dst, struct relay_end *src, size_t n);

/* Bytes moved so far a->b and b->a (what the done callback will report), live. */
void relay_bytes(const struct relay *r, uint64_t *ab, uint64_t *ba);

/* Aborts both ends with err and ends the relay (e.g. daemon shutdown). */
void relay_abort(struct relay *r, int err);

/* A TCP socket end over fd (ownership passes to the end). connecting: a non-blocking connect
 * is in progress and times out after connect_ms (rx_err ETIMEDOUT). NULL + errno. */
struct relay_end *relay_sock_end(struct loop *l, int fd, bool connecting, uint32_t connect_ms);

/* For a socket end: true once connected (always true if not created connecting). */
bool relay_sock_connected(const struct relay_end *e);

#endif
