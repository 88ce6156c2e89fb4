// SPDX-License-Identifier: MIT
/* Test harness for the client's interception module: redirect_new() plus a loopback echo
 * listener that tells each client its original destination. Driven by test_intercept.sh; no TLS.
 *
 * usage: ntun-redirect-harness --mode auto|bpf|iptables --cgroup DIR|default --instance NAME
 *                              --port PORT [--cidr A.B.C.D/LEN]...
 * stdout: "ready mode=M port=P", then per accepted connection "orig=IP:PORT peer=IP:PORT" (or
 *         "orig-err=ENAME peer=IP:PORT"); the client first receives that same orig line, then
 *         its bytes echoed back until EOF.
 * stdin, one command per line, each answered on stdout:
 *   cidrs [CIDR...]                       ok cidrs | err cidrs ENAME
 *   connect IP:PORT mark|nomark [CGDIR]   connect IP:PORT -> LINE | err=ENAME
 *                                         (from the harness itself, or a child moved to CGDIR)
 *   hold | release                        ok hold | ok release (stop/resume accepting)
 *   stats                                 stats redirected=N skip_self=N ...
 *   quit (also EOF, SIGINT, SIGTERM)      bye
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include "log.h"
#include "redirect.h"
#include "route.h"

#define MAX_CIDRS 64

static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_bool held;
static volatile sig_atomic_t stop;

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&out_lock);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
	pthread_mutex_unlock(&out_lock);
}

static const char *ename(int e)
{
	const char *s = strerrorname_np(e);

	return s ? s : "E?";
}

/* The harness's own tiny parsers: route.c belongs to another module. */
static int parse_cidr(const char *s, struct cidr *c)
{
	char ip[INET_ADDRSTRLEN];
	const char *slash = strchr(s, '/');
	struct in_addr a;
	size_t n = slash ? (size_t)(slash - s) : strlen(s);
	char *end;
	long len = 32;

	if (n >= sizeof(ip))
		return -EINVAL;
	memcpy(ip, s, n);
	ip[n] = '\0';
	if (inet_pton(AF_INET, ip, &a) != 1)
		return -EINVAL;
	if (slash) {
		len = strtol(slash + 1, &end, 10);
		if (*end || end == slash + 1 || len < 0 || len > 32)
			return -EINVAL;
	}
	c->addr = ntohl(a.s_addr);
	c->len = (uint8_t)len;
	return 0;
}

static int parse_ipport(const char *s, struct sockaddr_in *sin)
{
	char ip[INET_ADDRSTRLEN];
	const char *colon = strrchr(s, ':');
	char *end;
	long port;

	if (!colon || (size_t)(colon - s) >= sizeof(ip))
		return -EINVAL;
	memcpy(ip, s, (size_t)(colon - s));
	ip[colon - s] = '\0';
	port = strtol(colon + 1, &end, 10);
	if (*end || port < 1 || port > 65535)
		return -EINVAL;
	memset(sin, 0, sizeof(*sin));
	sin->sin_family = AF_INET;
	sin->sin_port = htons((uint16_t)port);
	return inet_pton(AF_INET, ip, &sin->sin_addr) == 1 ? 0 : -EINVAL;
}

static char *fmt_sin(const struct sockaddr_in *sin, char *buf, size_t size)
{
	char ip[INET_ADDRSTRLEN];

	inet_ntop(AF_INET, &sin->sin_addr, ip, sizeof(ip));
	snprintf(buf, size, "%s:%u", ip, ntohs(sin->sin_port));
	return buf;
}

/* Refuses the real root cgroup (id 1): tests attach only to cgroups they made. */
static int cgroup_is_root(const char *path)
{
	union {
		struct file_handle fh;
		char buf[sizeof(struct file_handle) + 64];
	} h;
	uint64_t id;
	int mount_id;

	memset(&h, 0, sizeof(h));
	h.fh.handle_bytes = 64;
	if (name_to_handle_at(AT_FDCWD, path, &h.fh, &mount_id, 0) < 0)
		return -errno;
	memcpy(&id, h.fh.f_handle, sizeof(id));
	return id == 1;
}

/* ---- echo server ---- */

static void *conn_main(void *arg)
{
	int fd = (int)(intptr_t)arg;
	struct sockaddr_in peer;
	socklen_t plen = sizeof(peer);
	char line[96], p[32], buf[16384];
	uint32_t addr;
	uint16_t port;
	ssize_t n;
	int err;

	getpeername(fd, (struct sockaddr *)&peer, &plen);
	fmt_sin(&peer, p, sizeof(p));
	err = redirect_original_dst(fd, &addr, &port);
	if (err) {
		snprintf(line, sizeof(line), "orig-err=%s", ename(-err));
	} else {
		struct sockaddr_in o = {.sin_family = AF_INET,
					.sin_port = htons(port),
					.sin_addr.s_addr = htonl(addr)};
		char os[32];

		snprintf(line, sizeof(line), "orig=%s", fmt_sin(&o, os, sizeof(os)));
	}
	say("%s peer=%s", line, p);
	strcat(line, "\n");
	if (send(fd, line, strlen(line), MSG_NOSIGNAL) < 0)
		goto out;
	while ((n = recv(fd, buf, sizeof(buf), 0)) > 0) {
		for (ssize_t off = 0; off < n;) {
			ssize_t w = send(fd, buf + off, (size_t)(n - off), MSG_NOSIGNAL);

			if (w < 0)
				goto out;
			off += w;
		}
	}
	shutdown(fd, SHUT_WR);
out:
	close(fd);
	return NULL;
}

/* Polls rather than blocking in accept() so that "hold" takes effect at once. */
static void *accept_main(void *arg)
{
	int lfd = (int)(intptr_t)arg;
	pthread_attr_t attr;

	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	while (!stop) {
		struct pollfd pfd = {.fd = lfd, .events = POLLIN};
		pthread_t t;
		int fd;

		if (poll(&pfd, 1, 50) <= 0 || atomic_load(&held))
			continue;
		if (pfd.revents & (POLLERR | POLLHUP | POLLNVAL))
			break; /* listener shut down */
		fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (fd < 0)
			continue;
		/* blocking I/O per connection thread */
		fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
		if (pthread_create(&t, &attr, conn_main, (void *)(intptr_t)fd))
			close(fd);
	}
	pthread_attr_destroy(&attr);
	return NULL;
}

/* ---- commands ---- */

/* Connects to dst (marked or not) and reads the first line the server sends. */
static void try_connect(const struct sockaddr_in *dst, bool mark, char *res, size_t size)
{
	struct timeval tv = {.tv_sec = 3};
	size_t got = 0;
	int fd, err;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(res, size, "err=%s", ename(errno));
		return;
	}
	if (mark && (err = redirect_mark_socket(fd))) {
		snprintf(res, size, "err=mark:%s", ename(-err));
		goto out;
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (const struct sockaddr *)dst, sizeof(*dst))) {
		snprintf(res, size, "err=%s", ename(errno));
		goto out;
	}
	while (got < size - 1) {
		ssize_t n = recv(fd, res + got, 1, 0);

		if (n <= 0 || res[got] == '\n')
			break;
		got++;
	}
	res[got] = '\0';
	if (!got)
		snprintf(res, size, "err=noline");
out:
	close(fd);
}

static void cmd_connect(char *args)
{
	char *dst_s = strtok(args, " "), *how = strtok(NULL, " "), *cg = strtok(NULL, " ");
	struct sockaddr_in dst;
	char res[128] = "", d[32];
	int pfd[2];
	pid_t pid;

	if (!dst_s || !how || parse_ipport(dst_s, &dst)) {
		say("err connect usage");
		return;
	}
	if (!cg) {
		try_connect(&dst, !strcmp(how, "mark"), res, sizeof(res));
		say("connect %s -> %s", fmt_sin(&dst, d, sizeof(d)), res);
		return;
	}
	if (pipe(pfd) || (pid = fork()) < 0) {
		say("err connect %s", ename(errno));
		return;
	}
	if (!pid) {
		char path[4096], num[32];
		int fd;

		close(pfd[0]);
		snprintf(path, sizeof(path), "%s/cgroup.procs", cg);
		snprintf(num, sizeof(num), "%d\n", (int)getpid());
		fd = open(path, O_WRONLY);
		if (fd < 0 || write(fd, num, strlen(num)) < 0)
			snprintf(res, sizeof(res), "err=cgroup:%s", ename(errno));
		else
			try_connect(&dst, !strcmp(how, "mark"), res, sizeof(res));
		if (write(pfd[1], res, strlen(res)) < 0)
			_exit(1);
		_exit(0);
	}
	close(pfd[1]);
	for (size_t got = 0;;) {
		ssize_t n = read(pfd[0], res + got, sizeof(res) - 1 - got);

		if (n <= 0)
			break;
		got += (size_t)n;
		res[got] = '\0';
	}
	close(pfd[0]);
	waitpid(pid, NULL, 0);
	say("connect %s -> %s", fmt_sin(&dst, d, sizeof(d)), res[0] ? res : "err=child");
}

static void cmd_cidrs(struct redirect *r, char *args)
{
	struct cidr c[MAX_CIDRS];
	size_t n = 0;
	int err;

	for (char *t = strtok(args, " "); t; t = strtok(NULL, " ")) {
		if (n == MAX_CIDRS || parse_cidr(t, &c[n])) {
			say("err cidrs EINVAL");
			return;
		}
		n++;
	}
	err = redirect_set_cidrs(r, c, n);
	if (err)
		say("err cidrs %s", ename(-err));
	else
		say("ok cidrs");
}

static void cmd_stats(struct redirect *r)
{
	struct redirect_stats s;
	int err = redirect_get_stats(r, &s);

	if (err) {
		say("stats err=%s", ename(-err));
		return;
	}
	say("stats redirected=%llu skip_self=%llu skip_mark=%llu tracked=%llu track_fail=%llu "
	    "orig_answer=%llu",
	    (unsigned long long)s.redirected, (unsigned long long)s.skip_self,
	    (unsigned long long)s.skip_mark, (unsigned long long)s.tracked,
	    (unsigned long long)s.track_fail, (unsigned long long)s.orig_answer);
}

static void cmd_hold(bool on)
{
	atomic_store(&held, on);
	say("ok %s", on ? "hold" : "release");
}

static void on_signal(int sig)
{
	stop = 1;
}

static void usage(void)
{
	fprintf(stderr, "usage: ntun-redirect-harness --mode auto|bpf|iptables --cgroup DIR|default"
			" --instance NAME --port PORT [--cidr A.B.C.D/LEN]...\n");
	exit(2);
}

int main(int argc, char **argv)
{
	struct redirect_opts o = {.mode = REDIRECT_AUTO};
	struct cidr cidrs[MAX_CIDRS];
	struct sockaddr_in sin = {.sin_family = AF_INET};
	struct sigaction sa = {.sa_handler = on_signal};
	const char *cg = NULL;
	char cgbuf[4096], line[1024];
	struct redirect *r;
	pthread_t acc;
	int lfd, one = 1, rc;
	size_t n = 0;

	log_setup("harness", getenv("NTUN_HARNESS_DEBUG") ? LOG_LVL_DEBUG : LOG_LVL_INFO,
		  LOG_FMT_TEXT, "stderr");
	for (int i = 1; i < argc; i += 2) { /* flag, value */
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!v)
			usage();
		if (!strcmp(argv[i], "--mode")) {
			if (redirect_mode_parse(v, &o.mode))
				usage();
		} else if (!strcmp(argv[i], "--cgroup")) {
			cg = v;
		} else if (!strcmp(argv[i], "--instance")) {
			o.instance = v;
		} else if (!strcmp(argv[i], "--port")) {
			o.listen_port = (uint16_t)atoi(v);
		} else if (!strcmp(argv[i], "--cidr")) {
			if (n == MAX_CIDRS || parse_cidr(v, &cidrs[n++]))
				usage();
		} else {
			usage();
		}
	}
	if (!cg || !o.listen_port)
		usage();
	if (!strcmp(cg, "default")) {
		if (redirect_cgroup_root(cgbuf, sizeof(cgbuf)))
			fatal("no cgroup v2 mount");
	} else {
		snprintf(cgbuf, sizeof(cgbuf), "%s", cg);
		o.cgroup = cg;
	}
	rc = cgroup_is_root(cgbuf);
	if (rc < 0)
		fatal("cgroup %s: %s", cgbuf, strerror(-rc));
	if (rc)
		fatal("refusing to intercept the root cgroup (%s) in a test", cgbuf);
	o.cidrs = cidrs;
	o.n_cidrs = n;

	r = redirect_new(&o);
	if (!r)
		fatal("redirect_new: %s", strerror(errno));

	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sin.sin_port = htons(o.listen_port);
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sin, sizeof(sin)) || listen(lfd, 1024)) {
		log_error("listener 127.0.0.1:%u: %s", o.listen_port, strerror(errno));
		redirect_free(r);
		return 1;
	}
	sigaction(SIGINT, &sa, NULL); /* no SA_RESTART: a signal ends the blocking read */
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	pthread_create(&acc, NULL, accept_main, (void *)(intptr_t)lfd);
	say("ready mode=%s port=%u", redirect_mode_name(r), o.listen_port);

	while (!stop) {
		if (!fgets(line, sizeof(line), stdin)) {
			if (ferror(stdin) && errno == EINTR && !stop) {
				clearerr(stdin);
				continue;
			}
			break;
		}
		line[strcspn(line, "\r\n")] = '\0';
		if (!strncmp(line, "cidrs", 5) && (!line[5] || line[5] == ' '))
			cmd_cidrs(r, line + 5);
		else if (!strncmp(line, "connect ", 8))
			cmd_connect(line + 8);
		else if (!strcmp(line, "hold") || !strcmp(line, "release"))
			cmd_hold(!strcmp(line, "hold"));
		else if (!strcmp(line, "stats"))
			cmd_stats(r);
		else if (!strcmp(line, "quit"))
			break;
		else if (line[0])
			say("err unknown command");
	}
	stop = 1;
	shutdown(lfd, SHUT_RDWR);
	pthread_join(acc, NULL);
	close(lfd);
	redirect_free(r);
	say("bye");
	return 0;
}
