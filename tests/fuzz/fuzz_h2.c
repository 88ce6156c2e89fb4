// SPDX-License-Identifier: MIT
/* Fuzzes HTTP/2 input through our session code: raw bytes into h2_session_recv of a server
 * session (requests become gRPC calls or are rejected) or of a client session with three calls
 * open, in input-chosen pieces, with the calls read, echoed, finished, aborted and freed as a
 * daemon would, or joined in pairs by real relays (the server's Connect -> Dial, zero-copy
 * pull included) on a loop; failures are chosen by a generator seeded from the input.
 * Checks memory safety and leaks only, not protocol answers.
 *
 * Input: [flags] bytes...
 *   bit 0: client session (else server)   bit 1: join bytes-mode calls in pairs by relays
 *   bits 2-3: pieces: whole, 1 byte, 1..64, 1..32768    bit 4: gzip
 *   bit 5: serve calls after every piece   bit 6: echo what is read
 *   bit 7: send limit 64 and one burst per piece (frames wait while calls are served) */
#include <errno.h>
#include <string.h>

#include "buf.h"
#include "fuzz.h"
#include "grpc.h"
#include "h2.h"
#include "loop.h"
#include "relay.h"

#define MAXC	     16
#define MAXR	     (MAXC / 2)
#define CONNECT_PATH "/ntun.v1.Relay/Connect"

struct slot {
	struct grpc_call *call; /* NULL once freed or handed to a relay */
	enum grpc_mode mode;
	bool finished;
	bool want_relay; /* bytes mode: joined to the next such call by a real relay */
};

struct rel {
	struct relay *r;
	bool live;
};

struct state {
	uint8_t flags;
	struct slot calls[MAXC];
	size_t ncalls;
	struct rel rels[MAXR];
	size_t nrels;
	size_t limit; /* h2_session_send limit */
	uint32_t rnd; /* from the input's size and flags: what fails when */
};

/* One loop for every input: relays run on it, a round at a time. */
static struct loop *loop;
static struct loop_timer *stop_task;

static void stop_cb(struct loop_timer *t, void *arg)
{
	loop_stop(loop);
}

/* Runs what the relays scheduled: rounds, each ended by a stop task queued behind them. */
static void run_loop(const struct state *s, int rounds)
{
	bool live = false;

	for (size_t i = 0; i < s->nrels; i++)
		live |= s->rels[i].live;
	for (int i = 0; live && i < rounds; i++) {
		loop_timer_now(stop_task);
		FUZZ_CHECK(loop_run(loop) == 0);
	}
}

static void relay_done(void *arg, const char *reason, int err, uint64_t a_to_b, uint64_t b_to_a)
{
	((struct rel *)arg)->live = false;
}

/* Joins pairs of calls that want a relay, as the server joins Connect to Dial: only calls
 * not finished here, as a daemon relays no call it has answered (the relay writes to an end
 * until it shuts it down; one finished before would never take the other end's bytes). */
static void join_calls(struct state *s)
{
	struct slot *a = NULL;

	for (size_t i = 0; i < s->ncalls && s->nrels < MAXR; i++) {
		struct slot *b = &s->calls[i];
		struct rel *r;

		if (!b->call || !b->want_relay || b->mode != GRPC_BYTES || b->finished)
			continue;
		if (!a) {
			a = b;
			continue;
		}
		r = &s->rels[s->nrels++];
		r->r = relay_new(loop, grpc_call_end(a->call), grpc_call_end(b->call), 0,
				 relay_done, r);
		r->live = r->r != NULL;
		a->call = b->call = NULL;
		a = NULL;
	}
}

static void on_request(void *arg, struct h2_stream *st, const struct h2_nv *nv, size_t n, bool end)
{
	struct state *s = arg;
	const char *path, *msg;
	enum grpc_status status = grpc_request_check(nv, n, s->flags & 16, &path, &msg);
	struct slot *sl;

	if (status != GRPC_OK) {
		grpc_reject(st, status, msg, NULL);
		return;
	}
	if (s->ncalls == MAXC) {
		grpc_reject(st, GRPC_RESOURCE_EXHAUSTED, "too many calls", "ENOBUFS");
		return;
	}
	sl = &s->calls[s->ncalls++];
	sl->mode = strcmp(path, CONNECT_PATH) ? GRPC_MESSAGES : GRPC_BYTES;
	sl->call = grpc_call_accept(st, nv, n, end, sl->mode, s->flags & 16);
	sl->want_relay = s->flags & 2;
	FUZZ_CHECK(sl->call != NULL);
}

/* Sends what the session has. A tiny limit with !all models a socket that is mostly full:
 * often nothing is written, else one burst that leaves frames waiting (WOULDBLOCK) while
 * input goes on arriving and calls fail or go away in between. */
static void flush(struct state *st, struct h2_session *s, bool all)
{
	struct buf out = BUF_INIT;

	if (!all && st->limit < 1024 && fuzz_rand(&st->rnd) % 4)
		return;
	for (int i = 0; i < 256; i++) {
		if (h2_session_send(s, &out, st->limit) < 0 || !buf_len(&out))
			break;
		buf_release(&out);
		if (!all && st->limit < 1024)
			break;
	}
	buf_release(&out);
}

static void serve_bytes(struct state *s, struct slot *sl)
{
	struct relay_end *e = grpc_call_end(sl->call);
	const uint8_t *p;
	size_t n, w;

	while ((n = e->ops->peek(e, &p)) > 0) {
		/* Echo what the other end takes; drop the rest as if it had been forwarded. */
		if ((s->flags & 64) && (w = e->ops->write(e, p, n)) > 0)
			n = w;
		e->ops->consume(e, n);
	}
	if (e->rx_err) {
		/* The relay would abort the other end and free both. */
		grpc_call_free(sl->call);
		sl->call = NULL;
	} else if (e->rx_eof && !sl->finished) {
		e->ops->shutdown(e);
		sl->finished = true;
	}
}

static void serve_messages(struct state *s, struct slot *sl)
{
	const uint8_t *p;
	size_t n;
	struct ctl_msg m;
	int rv;

	while ((rv = grpc_call_recv(sl->call, &p, &n)) == 1) {
		if (grpc_ctl_decode(CTL_CLIENT_EVENT, p, n, &m) == 0)
			grpc_ctl_release(&m);
		if (s->flags & 64)
			grpc_call_send(sl->call, p, n);
	}
	if (rv == -EPIPE && !sl->finished) {
		grpc_call_finish(sl->call, GRPC_OK, NULL, NULL);
		sl->finished = true;
	} else if (rv < 0 && rv != -EPIPE) {
		grpc_call_free(sl->call);
		sl->call = NULL;
	}
}

/* Now and then what lies behind a call fails, as sockets, dials and daemons do. */
static void chaos(struct state *s, struct slot *sl)
{
	struct relay_end *e = grpc_call_end(sl->call);

	switch (fuzz_rand(&s->rnd) % 32) {
	case 0: /* the relay's other end was reset: abort this end, then free both */
		if (sl->mode == GRPC_BYTES)
			e->ops->abort(e, ECONNRESET);
		grpc_call_free(sl->call);
		sl->call = NULL;
		break;
	case 1: /* a refused dial: answered with a status; freed once serve sees rx_err */
		if (sl->mode == GRPC_BYTES)
			e->ops->abort(e, ECONNREFUSED);
		else
			grpc_call_finish(sl->call, GRPC_UNAVAILABLE, "refused", "ECONNREFUSED");
		sl->finished = true;
		break;
	case 2: /* the daemon drops the call (shutdown, idle timeout) */
		grpc_call_free(sl->call);
		sl->call = NULL;
		break;
	case 3:
		grpc_call_finish(sl->call, GRPC_PERMISSION_DENIED, "no route\n%", NULL);
		sl->finished = true;
		break;
	default:
		break;
	}
}

static void serve(struct state *s)
{
	join_calls(s);
	for (size_t i = 0; i < s->nrels; i++)
		if (s->rels[i].live && fuzz_rand(&s->rnd) % 64 == 0)
			relay_abort(s->rels[i].r, ETIMEDOUT); /* idle timeout, shutdown */
	for (size_t i = 0; i < s->ncalls; i++) {
		struct slot *sl = &s->calls[i];

		if (sl->call && sl->mode == GRPC_BYTES)
			serve_bytes(s, sl);
		else if (sl->call)
			serve_messages(s, sl);
		if (sl->call)
			chaos(s, sl);
	}
}

/* Client side: the calls a client or proxy has open when the server's bytes arrive. */
static void open_calls(struct state *s, struct h2_session *h)
{
	static const char hello[] = "\x0a\x07\x0a\x02id\x12\x01v";
	struct h2_nv md[] = {H2_NV("ntun-dst", "192.168.1.5:80")};
	static const struct {
		const char *path;
		enum grpc_mode mode;
	} want[] = {
		{CONNECT_PATH, GRPC_BYTES},
		{"/ntun.v1.Relay/Attach", GRPC_MESSAGES},
		{CONNECT_PATH, GRPC_BYTES},
	};

	for (size_t i = 0; i < 3; i++) {
		struct slot *sl = &s->calls[s->ncalls++];

		sl->mode = want[i].mode;
		sl->call =
			grpc_call_open(h, want[i].path, md, 1, sl->mode, i == 2 && s->flags & 16);
		sl->want_relay = s->flags & 2;
		FUZZ_CHECK(sl->call != NULL);
	}
	FUZZ_CHECK(grpc_call_end(s->calls[0].call)
			   ->ops->write(grpc_call_end(s->calls[0].call), (const uint8_t *)"GET /",
					5) == 5);
	FUZZ_CHECK(grpc_call_send(s->calls[1].call, hello, sizeof(hello) - 1) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_in in = {data, size};
	struct state st = {0};
	struct h2_session_cbs cbs = {.on_request = on_request};
	struct h2_settings set;
	struct h2_session *s;
	uint32_t rnd = 0x9e3779b9u ^ (uint32_t)size;
	const uint8_t *p;
	bool client;
	int rv = 0;

	if (!loop) {
		loop = loop_new();
		FUZZ_CHECK(loop != NULL);
		stop_task = loop_timer_new(loop, stop_cb, NULL);
		FUZZ_CHECK(stop_task != NULL);
	}
	st.flags = fuzz_u8(&in);
	st.rnd = 0x2545f491u ^ st.flags ^ (uint32_t)size * 2654435761u;
	client = st.flags & 1;
	st.limit = st.flags & 128 ? 64 : 1 << 20;
	h2_settings_default(&set);
	s = h2_session_new(!client, &set, &cbs, &st);
	FUZZ_CHECK(s != NULL);
	if (client)
		open_calls(&st, s);
	flush(&st, s, true);

	while (rv == 0 && in.n) {
		size_t piece = fuzz_piece(st.flags >> 2 & 3, in.n, &rnd);

		piece = fuzz_take(&in, piece, &p);
		rv = h2_session_recv(s, p, piece);
		if (st.flags & 32)
			serve(&st);
		/* The connection may write before the relays run: a frame can go out after its
		 * source failed, and before the relay noticed. */
		flush(&st, s, false);
		run_loop(&st, 2);
	}
	serve(&st);
	run_loop(&st, 8);
	flush(&st, s, false);
	for (size_t i = 0; i < st.ncalls; i++)
		grpc_call_free(st.calls[i].call);
	flush(&st, s, true);
	run_loop(&st, 8);
	/* Closing the session fails what relays still hold; they then free their calls. */
	h2_session_free(s);
	run_loop(&st, 8);
	for (size_t i = 0; i < st.nrels; i++)
		FUZZ_CHECK(!st.rels[i].live);
	return 0;
}
