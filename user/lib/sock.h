/* SPDX-License-Identifier: MIT */
/* Non-blocking TCP socket helpers: listen, accept, connect, half-close, reset, name lookup.
 * IPv4 only for now; every socket made here is non-blocking, close-on-exec and TCP_NODELAY. */
#ifndef NTUN_SOCK_H
#define NTUN_SOCK_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/* Resolves "host:port" (host: dotted quad or a name; "[::]"-style is not supported) to an IPv4
 * address and port in host order. Blocking (getaddrinfo): start-up and reconnect only.
 * Returns 0 or -EINVAL (syntax) / -EHOSTUNREACH (no IPv4 address). */
int sock_resolve(const char *hostport, uint32_t *addr, uint16_t *port);

/* As sock_resolve, for every IPv4 address of the name (in getaddrinfo's order, duplicates
 * dropped, at most max): returns how many were stored in addrs (>= 1), or -EINVAL (syntax or
 * max 0), -EAGAIN (temporary DNS failure), -EHOSTUNREACH (no IPv4 address). */
int sock_resolve_all(const char *hostport, uint32_t *addrs, size_t max, uint16_t *port);

/* Listening socket on addr:port (host order), SO_REUSEADDR. Returns fd or -errno. */
int sock_listen(uint32_t addr, uint16_t port, int backlog);

/* Accepts one connection. Returns fd or -errno (-EAGAIN when none pending). Fills the peer's
 * address and port (host order) if the pointers are non-NULL. */
int sock_accept(int lfd, uint32_t *addr, uint16_t *port);

/* Starts a connect to addr:port (host order). mark != 0 sets SO_MARK first. Returns the fd
 * (connect may still be in progress: wait for writability, then sock_connect_result) or
 * -errno. */
int sock_connect(uint32_t addr, uint16_t port, uint32_t mark);

/* The outcome of a non-blocking connect once the fd is writable: 0 or -errno. */
int sock_connect_result(int fd);

/* Local or peer address of fd, host order. 0 or -errno. */
int sock_local(int fd, uint32_t *addr, uint16_t *port);
int sock_peer(int fd, uint32_t *addr, uint16_t *port);

/* Closes fd so that the peer sees a reset (SO_LINGER 0). */
void sock_close_reset(int fd);

/* on: a later close of fd, by us or by the kernel when the process dies, resets the
 * connection (SO_LINGER 0) instead of sending a FIN; off: the normal close again. */
void sock_reset_on_close(int fd, bool on);

/* Sets socket buffer sizes (0 leaves one alone). 0 or -errno. */
int sock_set_buffers(int fd, int sndbuf, int rcvbuf);

/* Dead-peer detection by the kernel for a long-lived connection, where application PINGs are
 * rare or not allowed: a peer silent for about timeout_ms (TCP keepalive probes from
 * timeout/2 of silence on, every timeout/8, at least 1 s) or data unacknowledged that long
 * (TCP_USER_TIMEOUT) ends the connection with ETIMEDOUT. timeout_ms 0 turns both off.
 * 0 or -errno. */
int sock_set_keepalive(int fd, uint32_t timeout_ms);

/* "ECONNREFUSED"-style name of a positive errno value, or "E<number>". Never NULL. */
const char *sock_errname(int err);

/* Inverse of sock_errname for the names it produces; returns the errno or 0 if unknown. */
int sock_errno_from_name(const char *name);

#endif
