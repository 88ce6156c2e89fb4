/* SPDX-License-Identifier: MIT */
/* Mutual TLS 1.3 over a non-blocking socket, with SPIFFE identities (spiffe://td/role/id in the
 * URI SAN) checked against the roles a side accepts. ALPN is always h2. The only module that
 * includes OpenSSL headers; it never touches the event loop (callers poll on tls_want()). */
#ifndef NTUN_TLS_H
#define NTUN_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

enum tls_role { TLS_ROLE_NONE = 0, TLS_ROLE_SERVER = 1, TLS_ROLE_CLIENT = 2, TLS_ROLE_PROXY = 3 };
#define TLS_ROLE_BIT(r) (1u << (r))

/* "server", "client", "proxy", or "none". */
const char *tls_role_name(enum tls_role r);

struct tls_identity {
	enum tls_role role;
	char trust_domain[128];
	char id[128];
	char uri[320]; /* the whole spiffe:// URI */
};

struct tls_ctx_opts {
	const char *cert_file;	  /* PEM leaf (optionally followed by intermediates) */
	const char *key_file;	  /* PEM private key */
	const char *ca_file;	  /* PEM CA bundle peers must chain to */
	bool is_server;		  /* true: accepts connections (requires client certificates) */
	const char *server_name;  /* client side: verify the server's DNS/IP SAN only if set */
	const char *trust_domain; /* peers must be in it; NULL = our own certificate's */
	unsigned accept_roles;	  /* TLS_ROLE_BIT()s a peer may have; checked in the handshake */
	bool insecure; /* skips only the server-name check; the chain is always verified */
	/* OpenSSL writes to the socket itself, as it always does when the kernel has TLS (then
	 * the kernel seals records); without kernel TLS that costs a system call per record, so
	 * only tests set it. */
	bool socket_io;
};

struct tls_ctx;
struct tls_conn;

/* Loads certificate, key and CA; checks that our own certificate has a SPIFFE URI SAN.
 * Returns a context or NULL with a one-line reason in err (file names included). */
struct tls_ctx *tls_ctx_new(const struct tls_ctx_opts *o, char *err, size_t errsz);
/* Drops the caller's reference; connections made from ctx hold their own, so a reloaded
 * context can replace this one while old connections finish. NULL is a no-op. */
void tls_ctx_free(struct tls_ctx *ctx);

/* Our own identity, parsed from our certificate. Borrowed from ctx. */
const struct tls_identity *tls_ctx_identity(const struct tls_ctx *ctx);

/* Wraps fd (borrowed; non-blocking, connected, accepted or still connecting: nothing is sent
 * before tls_handshake). Holds a reference on ctx until tls_conn_free. NULL with errno on
 * failure. */
struct tls_conn *tls_conn_new(struct tls_ctx *ctx, int fd);
/* Client side, before the handshake: the server's certificate must have name (a DNS name or
 * an IP address) in its DNS/IP SAN, instead of the context's server_name (unless the context
 * is insecure); SNI carries it when it is a DNS name. 0, -EINVAL (server side, empty, too long
 * or not a valid name) or -ENOMEM. */
int tls_conn_set_server_name(struct tls_conn *c, const char *name);
/* Frees the connection without I/O (no close_notify). NULL is a no-op. Does not close fd. */
void tls_conn_free(struct tls_conn *c);

#define TLS_WANT_READ  1u
#define TLS_WANT_WRITE 2u

/* Drives the handshake. Returns 0 when complete (peer verified, ALPN h2 agreed), -EAGAIN when
 * it must be called again once tls_want() is satisfied, or another -errno (-EPROTO for a
 * verification, role or ALPN failure, -ECONNRESET, ...) with tls_error() saying why.
 * TLS 1.3: a client learns that the server rejected *its* certificate only on its first
 * tls_read (-EPROTO, "peer sent an alert: ..."), after tls_handshake returned 0.
 * Errors are sticky: once a call failed, every later call returns the same -errno.
 * A server hands the connection to OpenSSL only once a whole first record (the ClientHello) is
 * in the socket, raising the fd's SO_RCVLOWAT meanwhile so that poll waits for it. */
int tls_handshake(struct tls_conn *c);

/* What the last -EAGAIN waited for: TLS_WANT_READ and/or TLS_WANT_WRITE. */
unsigned tls_want(const struct tls_conn *c);

/* Which directions got kernel TLS (the kernel seals or opens the records) after the handshake:
 * TLS_KTLS_SEND and/or TLS_KTLS_RECV, 0 when OpenSSL does both (or before the handshake). */
#define TLS_KTLS_SEND 1u
#define TLS_KTLS_RECV 2u
unsigned tls_ktls(const struct tls_conn *c);

/* Counts of this process's connections, kept by tls_handshake (plain integers: one thread):
 * handshakes completed, and how many of those got kernel TLS for sending and for receiving. */
struct tls_stats {
	uint64_t handshakes, ktls_send, ktls_recv;
};
const struct tls_stats *tls_stats(void);

/* Reads decrypted bytes: the records OpenSSL opens from what is buffered while they fit, else
 * one read(2). Returns >0, 0 on EOF (close_notify, or a peer that closed without one), -EAGAIN,
 * or another -errno with tls_error() set: -EPROTO for a record OpenSSL refuses (a fatal alert
 * goes to the peer), for too many records in a row without data (OpenSSL's limits of 32 empty
 * records and 5 warning alerts, ours of 64 of any kind, e.g. KeyUpdates), -ENOBUFS when a peer
 * that does not read let 64 KiB of OpenSSL's answers to its KeyUpdates pile up, -ENOTCONN
 * before the handshake completed. len 0 is -EINVAL. A peer's KeyUpdate is followed (and
 * answered if asked); session tickets are dropped. */
ssize_t tls_read(struct tls_conn *c, void *buf, size_t len);

/* True when bytes are already buffered (the rest of a record larger than the last tls_read's
 * len, or records read from the socket but not opened yet). The fd will not become readable
 * for them: a caller that stops reading before -EAGAIN (e.g. its window closed) must check
 * this, not wait for poll, when it resumes. */
bool tls_pending(const struct tls_conn *c);

/* Encrypts and sends (-ENOTCONN before the handshake completed). Records gather in an output
 * buffer and leave in one send(2) per call; what the socket does not take yet stays queued
 * (up to 256 KiB, then -EAGAIN). Returns bytes accepted (>0; a short count when the queue
 * filled), -EAGAIN, or another -errno with tls_error() set (-EPIPE: the peer is gone); len 0
 * only flushes and returns 0. The buffer may move between calls: accepted bytes are ours. */
ssize_t tls_write(struct tls_conn *c, const void *buf, size_t len);

/* Takes the bytes of iov (at most TLS_WRITEV_MAX pieces) as full records (16 KiB) queued for
 * the socket, without sending them: tls_flush sends, as does the next tls_write. The last
 * bytes short of a full record are copied and held back to lead the next call's records, and
 * are sealed by tls_flush, tls_write or tls_close_notify. All or nothing: returns the bytes
 * taken (all of them), -EAGAIN when 256 KiB already wait for the socket (nothing taken), or
 * another -errno as tls_write. */
#define TLS_WRITEV_MAX 8
struct iovec;
ssize_t tls_writev(struct tls_conn *c, const struct iovec *iov, int iovcnt);

/* Seals what tls_writev held back, then sends records still waiting for the socket (tls_write
 * queues up to 256 KiB when the socket is full). 0 when none is left, -EAGAIN (wait for
 * writability), or -errno. */
int tls_flush(struct tls_conn *c);

/* Bytes of buffer memory the connection holds now (ours, and OpenSSL's record buffers while
 * they hold bytes). 0 while idle: buffers exist only while bytes are in them. */
size_t tls_buffered(const struct tls_conn *c);

/* True while records wait for the socket (or bytes held back by tls_writev). */
bool tls_write_pending(const struct tls_conn *c);

/* Sends close_notify once, best effort, never blocks. */
void tls_close_notify(struct tls_conn *c);

/* The verified peer identity; valid after tls_handshake() returned 0. Borrowed. */
const struct tls_identity *tls_peer(const struct tls_conn *c);

/* The reason for the last failure, OpenSSL's error queue drained into one line. Borrowed. */
const char *tls_error(const struct tls_conn *c);

#endif
