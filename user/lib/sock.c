// SPDX-License-Identifier: MIT
/* Thin wrappers over BSD sockets that set the options every ntun socket needs (non-blocking,
 * cloexec, TCP_NODELAY). No buffering and no event handling: that belongs to relay and peer. */
#include "sock.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void set_nodelay(int fd)
{
	int one = 1;

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

int sock_resolve_all(const char *hostport, uint32_t *addrs, size_t max, uint16_t *port)
{
	struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM};
	struct addrinfo *res = NULL, *ai;
	char host[256];
	const char *colon = strrchr(hostport, ':');
	char *end;
	unsigned long p;
	size_t hlen, n = 0;
	int ret;

	if (!colon || colon == hostport || max == 0)
		return -EINVAL;
	hlen = (size_t)(colon - hostport);
	if (hlen >= sizeof(host))
		return -EINVAL;
	memcpy(host, hostport, hlen);
	host[hlen] = 0;
	errno = 0;
	p = strtoul(colon + 1, &end, 10);
	if (*end || colon[1] == 0 || p == 0 || p > 65535 || errno)
		return -EINVAL;
	ret = getaddrinfo(host, NULL, &hints, &res);
	if (ret != 0 || !res)
		return ret == EAI_AGAIN ? -EAGAIN : -EHOSTUNREACH;
	for (ai = res; ai && n < max; ai = ai->ai_next) {
		uint32_t a = ntohl(((struct sockaddr_in *)ai->ai_addr)->sin_addr.s_addr);
		size_t i;

		for (i = 0; i < n && addrs[i] != a; i++)
			;
		if (i == n)
			addrs[n++] = a;
	}
	*port = (uint16_t)p;
	freeaddrinfo(res);
	return (int)n;
}

int sock_resolve(const char *hostport, uint32_t *addr, uint16_t *port)
{
	int n = sock_resolve_all(hostport, addr, 1, port);

	return n < 0 ? n : 0;
}

static void fill_sin(struct sockaddr_in *sin, uint32_t addr, uint16_t port)
{
	memset(sin, 0, sizeof(*sin));
	sin->sin_family = AF_INET;
	sin->sin_addr.s_addr = htonl(addr);
	sin->sin_port = htons(port);
}

int sock_listen(uint32_t addr, uint16_t port, int backlog)
{
	struct sockaddr_in sin;
	int fd, one = 1, err;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	fill_sin(&sin, addr, port);
	if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0 || listen(fd, backlog) < 0)
		goto err;
	return fd;
err:
	err = -errno;
	close(fd);
	return err;
}

int sock_accept(int lfd, uint32_t *addr, uint16_t *port)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	int fd;

	fd = accept4(lfd, (struct sockaddr *)&sin, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd < 0)
		return errno == EWOULDBLOCK ? -EAGAIN : -errno;
	set_nodelay(fd);
	if (addr)
		*addr = ntohl(sin.sin_addr.s_addr);
	if (port)
		*port = ntohs(sin.sin_port);
	return fd;
}

int sock_connect(uint32_t addr, uint16_t port, uint32_t mark)
{
	struct sockaddr_in sin;
	int fd, err;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (mark && setsockopt(fd, SOL_SOCKET, SO_MARK, &mark, sizeof(mark)) < 0)
		goto err;
	set_nodelay(fd);
	fill_sin(&sin, addr, port);
	if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0 && errno != EINPROGRESS)
		goto err;
	return fd;
err:
	err = -errno;
	close(fd);
	return err;
}

int sock_connect_result(int fd)
{
	int err = 0;
	socklen_t len = sizeof(err);

	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		return -errno;
	return -err;
}

static int name_of(int fd, bool peer, uint32_t *addr, uint16_t *port)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	int ret = peer ? getpeername(fd, (struct sockaddr *)&sin, &len)
		       : getsockname(fd, (struct sockaddr *)&sin, &len);

	if (ret < 0)
		return -errno;
	if (sin.sin_family != AF_INET)
		return -EAFNOSUPPORT;
	*addr = ntohl(sin.sin_addr.s_addr);
	*port = ntohs(sin.sin_port);
	return 0;
}

int sock_local(int fd, uint32_t *addr, uint16_t *port)
{
	return name_of(fd, false, addr, port);
}

int sock_peer(int fd, uint32_t *addr, uint16_t *port)
{
	return name_of(fd, true, addr, port);
}

void sock_reset_on_close(int fd, bool on)
{
	struct linger lg = {.l_onoff = on, .l_linger = 0};

	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
}

void sock_close_reset(int fd)
{
	sock_reset_on_close(fd, true);
	close(fd);
}

int sock_set_buffers(int fd, int sndbuf, int rcvbuf)
{
	if (sndbuf && setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf)) < 0)
		return -errno;
	if (rcvbuf && setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf)) < 0)
		return -errno;
	return 0;
}

static const struct {
	int err;
	const char *name;
} errnames[] = {
	{ECONNREFUSED, "ECONNREFUSED"},
	{ECONNRESET, "ECONNRESET"},
	{ETIMEDOUT, "ETIMEDOUT"},
	{EHOSTUNREACH, "EHOSTUNREACH"},
	{ENETUNREACH, "ENETUNREACH"},
	{EACCES, "EACCES"},
	{EPERM, "EPERM"},
	{ECONNABORTED, "ECONNABORTED"},
	{EPIPE, "EPIPE"},
	{EADDRNOTAVAIL, "EADDRNOTAVAIL"},
	{ENOBUFS, "ENOBUFS"},
	{ENOMEM, "ENOMEM"},
	{EPROTO, "EPROTO"},
	{EMSGSIZE, "EMSGSIZE"},
	{EINVAL, "EINVAL"},
	{ENOENT, "ENOENT"},
	{EHOSTDOWN, "EHOSTDOWN"},
	{ENETDOWN, "ENETDOWN"},
	{ECANCELED, "ECANCELED"},
	{EAGAIN, "EAGAIN"},
	{EBUSY, "EBUSY"},
	{ESHUTDOWN, "ESHUTDOWN"},
};

int sock_set_keepalive(int fd, uint32_t timeout_ms)
{
	int on = timeout_ms > 0, idle = (int)(timeout_ms / 2000), intvl = (int)(timeout_ms / 8000);
	int cnt = 8;
	unsigned user = timeout_ms;

	idle = idle < 1 ? 1 : idle;
	intvl = intvl < 1 ? 1 : intvl;
	/* With TCP_USER_TIMEOUT set the kernel ends a keepalive-probed connection once nothing
	 * came back for that long, whatever the probe count. */
	if (setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on)) < 0 ||
	    setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user, sizeof(user)) < 0)
		return -errno;
	if (on && (setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle)) < 0 ||
		   setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl)) < 0 ||
		   setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt)) < 0))
		return -errno;
	return 0;
}

const char *sock_errname(int err)
{
	static __thread char buf[16];

	for (size_t i = 0; i < sizeof(errnames) / sizeof(errnames[0]); i++)
		if (errnames[i].err == err)
			return errnames[i].name;
	snprintf(buf, sizeof(buf), "E%d", err);
	return buf;
}

int sock_errno_from_name(const char *name)
{
	for (size_t i = 0; i < sizeof(errnames) / sizeof(errnames[0]); i++)
		if (!strcmp(errnames[i].name, name))
			return errnames[i].err;
	return 0;
}
