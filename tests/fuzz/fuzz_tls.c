// SPDX-License-Identifier: MIT
/* Fuzzes what anyone on the network can send the relay before a certificate is checked: the
 * input goes, in pieces, over a loopback TCP connection into a server-side tls_conn (the
 * first-record peek with SO_RCVLOWAT, our BIOs, the ClientHello and ALPN callbacks, OpenSSL's
 * parser behind them), optionally followed by the peer's FIN. Checks memory safety and that
 * the handshake never asks to be called again for something the socket already has: a
 * -EAGAIN whose wait poll() satisfies at once is a busy loop in the daemon.
 *
 * Input: [flags] bytes...   bits 0-1: pieces: whole, 1 byte, 1..64, 1..32768
 *   bit 2: the peer shuts down its sending side after the last piece */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fuzz.h"
#include "tls.h"

#ifndef NTUN_GENCERTS_PATH
#define NTUN_GENCERTS_PATH "ntun-gencerts"
#endif

static char dir[64];
static struct tls_ctx *ctx;
static int lfd = -1;
static struct sockaddr_in laddr;

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *f)
{
	return remove(p);
}

static void cleanup(void)
{
	if (dir[0])
		nftw(dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
}

/* Certificates from ntun-gencerts ($NTUN_GENCERTS, else this build's), a server context that
 * takes clients and proxies, and a loopback listener. */
static void setup(void)
{
	const char *gencerts =
		getenv("NTUN_GENCERTS") ? getenv("NTUN_GENCERTS") : NTUN_GENCERTS_PATH;
	char cert[128], key[128], ca[128], err[256];
	struct tls_ctx_opts o = {
		.cert_file = cert,
		.key_file = key,
		.ca_file = ca,
		.is_server = true,
		.accept_roles = TLS_ROLE_BIT(TLS_ROLE_CLIENT) | TLS_ROLE_BIT(TLS_ROLE_PROXY),
	};
	socklen_t alen = sizeof(laddr);
	int status;
	pid_t pid;

	snprintf(dir, sizeof(dir), "/tmp/ntun-fuzz-tls-XXXXXX");
	FUZZ_CHECK(mkdtemp(dir) != NULL);
	atexit(cleanup);
	pid = fork();
	FUZZ_CHECK(pid >= 0);
	if (pid == 0) {
		int fd = open("/dev/null", O_WRONLY);

		dup2(fd, 1);
		execl(gencerts, gencerts, "--out", dir, (char *)NULL);
		_exit(127);
	}
	FUZZ_CHECK(waitpid(pid, &status, 0) == pid);
	if (!WIFEXITED(status) || WEXITSTATUS(status)) {
		fprintf(stderr, "fuzz_tls: %s --out %s failed (set NTUN_GENCERTS)\n", gencerts,
			dir);
		abort();
	}
	snprintf(cert, sizeof(cert), "%s/server/cert.pem", dir);
	snprintf(key, sizeof(key), "%s/server/key.pem", dir);
	snprintf(ca, sizeof(ca), "%s/ca/cert.pem", dir);
	ctx = tls_ctx_new(&o, err, sizeof(err));
	if (!ctx) {
		fprintf(stderr, "fuzz_tls: %s\n", err);
		abort();
	}
	laddr.sin_family = AF_INET;
	laddr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	FUZZ_CHECK(lfd >= 0);
	FUZZ_CHECK(bind(lfd, (struct sockaddr *)&laddr, sizeof(laddr)) == 0);
	FUZZ_CHECK(listen(lfd, 16) == 0);
	FUZZ_CHECK(getsockname(lfd, (struct sockaddr *)&laddr, &alen) == 0);
}

/* Closes with RST: thousands of connections a second must not fill TIME_WAIT. */
static void close_now(int fd)
{
	struct linger l = {1, 0};

	setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
	close(fd);
}

/* Reads and drops what the server sent (its flight, alerts), so its sends never block. */
static void drain(int fd)
{
	char buf[4096];

	while (recv(fd, buf, sizeof(buf), MSG_DONTWAIT) > 0)
		;
}

/* Whether the wait the last -EAGAIN asked for is already over. */
static bool ready_now(struct tls_conn *c, int fd)
{
	unsigned want = tls_want(c);
	struct pollfd p = {fd,
			   (short)((want & TLS_WANT_READ ? POLLIN : 0) |
				   (want & TLS_WANT_WRITE ? POLLOUT : 0)),
			   0};

	return p.events && poll(&p, 1, 0) == 1 && (p.revents & (p.events | POLLHUP | POLLERR));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_in in = {data, size};
	uint32_t rnd = 0x9e3779b9u ^ (uint32_t)size;
	struct tls_conn *c;
	uint8_t flags;
	int cfd, sfd, rv = -EAGAIN, spins = 0;

	if (!ctx)
		setup();
	flags = fuzz_u8(&in);
	cfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	FUZZ_CHECK(cfd >= 0);
	FUZZ_CHECK(fuzz_connect(cfd, (struct sockaddr *)&laddr, sizeof(laddr)) == 0);
	do
		sfd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	while (sfd < 0 && errno == EINTR);
	FUZZ_CHECK(sfd >= 0);
	c = tls_conn_new(ctx, sfd);
	FUZZ_CHECK(c != NULL);

	while (in.n && rv == -EAGAIN) {
		const uint8_t *p;
		size_t piece = fuzz_piece(flags & 3, in.n, &rnd);

		piece = fuzz_take(&in, piece, &p);
		FUZZ_CHECK(send(cfd, p, piece, MSG_NOSIGNAL) == (ssize_t)piece);
		rv = tls_handshake(c);
		drain(cfd);
	}
	if (flags & 4)
		shutdown(cfd, SHUT_WR);
	/* As the daemon's loop would: call again while poll says the wait is over. */
	while (rv == -EAGAIN && ready_now(c, sfd)) {
		FUZZ_CHECK(++spins < 16);
		rv = tls_handshake(c);
		drain(cfd);
	}
	FUZZ_CHECK(rv == -EAGAIN || rv < 0 || rv == 0);
	tls_conn_free(c);
	close_now(sfd);
	close_now(cfd);
	return 0;
}
