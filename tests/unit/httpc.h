/* SPDX-License-Identifier: MIT */
/* For unit tests of local HTTP servers: runs the loop in the test's thread while a client in a
 * second thread does blocking exchanges over TCP or a unix socket, with a time bound on each. */
#ifndef NTUN_HTTPC_H
#define NTUN_HTTPC_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "loop.h"

/* Connects to addr ("/path" or "127.0.0.1:PORT"); blocking fd or -1. */
static inline int httpc_connect(const char *addr)
{
	struct sockaddr_un un = {.sun_family = AF_UNIX};
	struct sockaddr_in in = {.sin_family = AF_INET};
	int fd;

	if (addr[0] == '/') {
		fd = socket(AF_UNIX, SOCK_STREAM, 0);
		snprintf(un.sun_path, sizeof(un.sun_path), "%s", addr);
		if (fd >= 0 && connect(fd, (struct sockaddr *)&un, sizeof(un)) == 0)
			return fd;
	} else {
		const char *colon = strrchr(addr, ':');
		char host[64];

		snprintf(host, sizeof(host), "%.*s", (int)(colon - addr), addr);
		inet_pton(AF_INET, host, &in.sin_addr);
		in.sin_port = htons((uint16_t)atoi(colon + 1));
		fd = socket(AF_INET, SOCK_STREAM, 0);
		if (fd >= 0 && connect(fd, (struct sockaddr *)&in, sizeof(in)) == 0)
			return fd;
	}
	if (fd >= 0)
		close(fd);
	return -1;
}

/* Reads until EOF, an error or timeout_ms of silence; returns the bytes read (NUL-terminated
 * in buf) and sets *eof when the server closed the connection. */
static inline size_t httpc_read(int fd, char *buf, size_t size, int timeout_ms, bool *eof)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	size_t got = 0;
	ssize_t n;

	*eof = false;
	while (got + 1 < size && poll(&p, 1, timeout_ms) == 1) {
		n = read(fd, buf + got, size - 1 - got);
		if (n <= 0) {
			*eof = true;
			break;
		}
		got += (size_t)n;
	}
	buf[got] = '\0';
	return got;
}

/* One request: the status code of the answer (0 if none), its body in body (may be NULL), and
 * whether the server closed the connection within timeout_ms. */
static inline int httpc_do(const char *addr, const char *req, size_t len, char *body, size_t bodysz,
			   bool *closed)
{
	static char resp[1 << 20];
	bool eof = false;
	int fd = httpc_connect(addr), code = 0;
	const char *b;

	if (fd < 0)
		return -1;
	if (write(fd, req, len) == (ssize_t)len) {
		httpc_read(fd, resp, sizeof(resp), 3000, &eof);
		if (!strncmp(resp, "HTTP/1.", 7))
			code = atoi(resp + 9);
		b = strstr(resp, "\r\n\r\n");
		if (body)
			snprintf(body, bodysz, "%s", b ? b + 4 : "");
	}
	if (closed)
		*closed = eof;
	close(fd);
	return code;
}

struct httpc_run {
	void *(*fn)(void *);
	void *arg;
	atomic_bool done;
	struct loop *loop;
};

static inline void *httpc_thread(void *arg)
{
	struct httpc_run *r = arg;

	r->fn(r->arg);
	atomic_store(&r->done, true);
	return NULL;
}

static inline void httpc_poll(struct loop_timer *t, void *arg)
{
	struct httpc_run *r = arg;

	if (atomic_load(&r->done))
		loop_stop(r->loop);
	else
		loop_timer_arm(t, 5);
}

/* Runs fn(arg) in a thread while l runs here; returns when fn has. */
static inline void httpc_run(struct loop *l, void *(*fn)(void *), void *arg)
{
	struct httpc_run r = {.fn = fn, .arg = arg, .loop = l};
	struct loop_timer *t = loop_timer_new(l, httpc_poll, &r);
	pthread_t th;

	atomic_init(&r.done, false);
	pthread_create(&th, NULL, httpc_thread, &r);
	loop_timer_arm(t, 5);
	loop_run(l);
	pthread_join(th, NULL);
	loop_timer_free(t);
}

#endif
