// SPDX-License-Identifier: MIT
/* Unit tests for tls.c and ntun-gencerts: certificates generated at test time (two CAs), then
 * mutual TLS over socketpair() with poll(). Uses OpenSSL directly only to inspect and craft certs. */
#include "check.h"
#include "../tls_forge.h"
#include "tls.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <malloc.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

/* Where ntun-gencerts is: $NTUN_GENCERTS, else the path CMake compiled in (user/gencerts/
 * CMakeLists.txt adds NTUN_GENCERTS_PATH to this target: the binary of this very build tree). */
#ifndef NTUN_GENCERTS_PATH
#define NTUN_GENCERTS_PATH NULL
#endif

#define ROLE(r) TLS_ROLE_BIT(TLS_ROLE_##r)

static char tmp[256]; /* mkdtemp'd; A = tmp/a (CA "a"), B = tmp/b (an unrelated CA) */
static const char *gencerts;
static char out[8192]; /* captured output of the last run */

/* ---- helpers ---------------------------------------------------------------------------- */

static const char *path(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static const char *path(const char *fmt, ...)
{
	static char bufs[8][512];
	static unsigned next;
	char *b = bufs[next++ % 8];
	int off = snprintf(b, sizeof(bufs[0]), "%s/", tmp);
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(b + off, sizeof(bufs[0]) - (size_t)off, fmt, ap);
	va_end(ap);
	return b;
}

/* Runs gencerts with the NULL-terminated arguments; output goes to out[]. Returns the exit
 * status, or -1 if it did not exit normally. */
static int run_gencerts(const char *arg, ...)
{
	const char *argv[32] = {gencerts};
	const char *log = path("gencerts.log");
	int argc = 1, status, fd;
	ssize_t n;
	va_list ap;
	pid_t pid;

	va_start(ap, arg);
	for (const char *a = arg; a && argc < 31; a = va_arg(ap, const char *))
		argv[argc++] = a;
	va_end(ap);
	fflush(NULL);
	pid = fork();
	if (pid == 0) {
		fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		if (fd < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
			_exit(127);
		execv(gencerts, (char *const *)argv);
		_exit(127);
	}
	if (pid < 0 || waitpid(pid, &status, 0) != pid)
		return -1;
	out[0] = '\0';
	fd = open(log, O_RDONLY);
	if (fd >= 0) {
		n = read(fd, out, sizeof(out) - 1);
		out[n > 0 ? n : 0] = '\0';
		close(fd);
	}
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static X509 *load_cert(const char *file)
{
	FILE *f = fopen(file, "r");
	X509 *x = f ? PEM_read_X509(f, NULL, NULL, NULL) : NULL;

	if (f)
		fclose(f);
	return x;
}

static EVP_PKEY *load_key(const char *file)
{
	FILE *f = fopen(file, "r");
	EVP_PKEY *k = f ? PEM_read_PrivateKey(f, NULL, NULL, NULL) : NULL;

	if (f)
		fclose(f);
	return k;
}

/* The cert's SANs as "URI:x,DNS:y,IP:1.2.3.4," (IPv4 only, enough here). */
static void san_string(X509 *x, char *buf, size_t n)
{
	GENERAL_NAMES *gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	size_t off = 0;

	buf[0] = '\0';
	for (int i = 0; i < sk_GENERAL_NAME_num(gens) && off < n; i++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
		const unsigned char *d;

		if (g->type == GEN_URI || g->type == GEN_DNS) {
			d = ASN1_STRING_get0_data(g->d.ia5);
			off += snprintf(buf + off, n - off, "%s:%.*s,",
					g->type == GEN_URI ? "URI" : "DNS",
					ASN1_STRING_length(g->d.ia5), (const char *)d);
		} else if (g->type == GEN_IPADD && ASN1_STRING_length(g->d.ip) == 4) {
			d = ASN1_STRING_get0_data(g->d.ip);
			off += snprintf(buf + off, n - off, "IP:%u.%u.%u.%u,", d[0], d[1], d[2],
					d[3]);
		}
	}
	GENERAL_NAMES_free(gens);
}

/* Writes dir/{cert,key}.pem: a leaf signed by CA ca_dir with any SAN and extendedKeyUsage,
 * to make certificates gencerts deliberately cannot (role and EKU that disagree, ...). */
static int craft_leaf(const char *ca_dir, const char *dir, const char *san, const char *eku)
{
	char cpath[512], kpath[512];
	X509 *ca = load_cert(path("%s/cert.pem", ca_dir)), *x = X509_new();
	EVP_PKEY *ca_key = load_key(path("%s/key.pem", ca_dir));
	EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	const char *vals[] = {san, eku};
	const int nids[] = {NID_subject_alt_name, NID_ext_key_usage};
	X509V3_CTX v3;
	FILE *f;
	int ret = -1;

	snprintf(cpath, sizeof(cpath), "%s/cert.pem", path("%s", dir));
	snprintf(kpath, sizeof(kpath), "%s/key.pem", path("%s", dir));
	if (!ca || !x || !ca_key || !key || mkdir(path("%s", dir), 0700))
		goto out;
	X509_set_version(x, X509_VERSION_3);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 4242);
	X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
				   (const unsigned char *)dir, -1, -1, 0);
	X509_set_issuer_name(x, X509_get_subject_name(ca));
	X509_gmtime_adj(X509_getm_notBefore(x), -60);
	X509_gmtime_adj(X509_getm_notAfter(x), 3600);
	X509_set_pubkey(x, key);
	X509V3_set_ctx(&v3, ca, x, NULL, NULL, 0);
	for (int i = 0; i < 2; i++) {
		X509_EXTENSION *ext;

		if (!vals[i])
			continue;
		ext = X509V3_EXT_nconf_nid(NULL, &v3, nids[i], vals[i]);
		if (!ext || !X509_add_ext(x, ext, -1))
			goto out;
		X509_EXTENSION_free(ext);
	}
	if (!X509_sign(x, ca_key, EVP_sha256()))
		goto out;
	f = fopen(cpath, "w");
	if (!f || !PEM_write_X509(f, x) || fclose(f))
		goto out;
	f = fopen(kpath, "w");
	if (!f || !PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL) || fclose(f))
		goto out;
	ret = 0;
out:
	ERR_clear_error();
	X509_free(ca);
	X509_free(x);
	EVP_PKEY_free(ca_key);
	EVP_PKEY_free(key);
	return ret;
}

struct ctx_args {
	const char *dir;    /* cert/key from tmp/dir/{cert,key}.pem */
	const char *ca_dir; /* CA from tmp/ca_dir/cert.pem */
	bool server;
	unsigned roles; /* 0: what each side of ntun accepts by default */
	const char *server_name;
	const char *trust_domain;
	bool insecure;
	bool socket_io;
};

static char ctx_err[512];

static struct tls_ctx *mkctx(struct ctx_args a)
{
	char cert[512], key[512], ca[512];
	struct tls_ctx_opts o = {
		.cert_file = cert,
		.key_file = key,
		.ca_file = ca,
		.is_server = a.server,
		.server_name = a.server_name,
		.trust_domain = a.trust_domain,
		.accept_roles = a.roles	   ? a.roles
				: a.server ? ROLE(CLIENT) | ROLE(PROXY)
					   : ROLE(SERVER),
		.insecure = a.insecure,
		.socket_io = a.socket_io,
	};
	struct tls_ctx *ctx;

	snprintf(cert, sizeof(cert), "%s", path("%s/cert.pem", a.dir));
	snprintf(key, sizeof(key), "%s", path("%s/key.pem", a.dir));
	snprintf(ca, sizeof(ca), "%s", path("%s/cert.pem", a.ca_dir));
	ctx = tls_ctx_new(&o, ctx_err, sizeof(ctx_err));
	if (!ctx && getenv("NTUN_TEST_VERBOSE"))
		fprintf(stderr, "  tls_ctx_new(%s): %s\n", a.dir, ctx_err);
	return ctx;
}

#define CLIENT_CTX(...) mkctx((struct ctx_args){__VA_ARGS__})
#define SERVER_CTX(...) mkctx((struct ctx_args){.server = true, __VA_ARGS__})

/* A connected pair: [0] is the TLS client (dialer), [1] the TLS server. */
struct pair {
	int fd[2];
	struct tls_conn *c[2];
	int rc[2];
};

static int pair_open(struct pair *p, struct tls_ctx *client, struct tls_ctx *server)
{
	memset(p, 0, sizeof(*p));
	p->fd[0] = p->fd[1] = -1;
	if (!client || !server) {
		fprintf(stderr, "  no context: %s\n", ctx_err);
		return -1;
	}
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, p->fd))
		return -1;
	p->c[0] = tls_conn_new(client, p->fd[0]);
	p->c[1] = tls_conn_new(server, p->fd[1]);
	return p->c[0] && p->c[1] ? 0 : -1;
}

static void pair_close(struct pair *p)
{
	for (int i = 0; i < 2; i++) {
		tls_conn_free(p->c[i]);
		if (p->fd[i] >= 0)
			close(p->fd[i]);
	}
}

static short poll_events(unsigned want)
{
	return (short)(((want & TLS_WANT_READ) ? POLLIN : 0) |
		       ((want & TLS_WANT_WRITE) ? POLLOUT : 0));
}

/* Drives both handshakes until neither can progress. rc[i]: 0, -EAGAIN (still waiting when the
 * other side gave up) or the error. */
static void pair_handshake(struct pair *p)
{
	struct pollfd pfd[2];
	int nfds;

	p->rc[0] = p->rc[1] = -EAGAIN;
	for (int round = 0; round < 100; round++) {
		for (int i = 0; i < 2; i++)
			if (p->rc[i] == -EAGAIN)
				p->rc[i] = tls_handshake(p->c[i]);
		nfds = 0;
		for (int i = 0; i < 2; i++) {
			if (p->rc[i] != -EAGAIN)
				continue;
			pfd[nfds].fd = p->fd[i];
			pfd[nfds].events = poll_events(tls_want(p->c[i]));
			nfds++;
		}
		if (!nfds || poll(pfd, (nfds_t)nfds, 1000) <= 0)
			return;
	}
}

static void die(const char *what)
{
	fprintf(stderr, "test_tls: %s\n", what);
	exit(1);
}

/* ---- gencerts --------------------------------------------------------------------------- */

static void test_gencerts(void)
{
	static const char *const dirs[] = {"ca", "server", "client", "proxy"};
	char san[512];
	struct stat st;
	X509 *x, *ca;
	EVP_PKEY *k;
	BIGNUM *serial;
	char group[32];
	size_t glen;

	CHECK_INT_EQ(run_gencerts("--out", path("a"), "--server-san", "127.0.0.1", "--server-san",
				  "tunnel.example.com", NULL),
		     0);
	CHECK_STR_CONTAINS(out, "a/ca/key.pem");
	CHECK_STR_CONTAINS(out, "a/proxy/cert.pem");
	for (size_t i = 0; i < 4; i++) {
		CHECK_INT_EQ(stat(path("a/%s/key.pem", dirs[i]), &st), 0);
		CHECK_INT_EQ(st.st_mode & 07777, 0600);
		CHECK_INT_EQ(stat(path("a/%s/cert.pem", dirs[i]), &st), 0);
		CHECK(!(st.st_mode & 022));
	}

	/* No silent overwrite; --force replaces (the CA too: everything after uses the new one). */
	CHECK_INT_EQ(run_gencerts("--out", path("a"), NULL), 1);
	CHECK_STR_CONTAINS(out, "refusing to overwrite");
	CHECK_STR_CONTAINS(out, "a/ca/key.pem");
	CHECK_INT_EQ(run_gencerts("--out", path("a"), "--force", "--server-san", "127.0.0.1",
				  "--server-san", "tunnel.example.com", NULL),
		     0);
	CHECK_INT_EQ(stat(path("a/ca/key.pem"), &st), 0);
	CHECK_INT_EQ(st.st_mode & 07777, 0600);

	/* The second, unrelated CA. */
	CHECK_INT_EQ(run_gencerts("--out", path("b"), NULL), 0);

	/* Extra leaves from CA a. */
	CHECK_INT_EQ(run_gencerts("--out", path("a"), "--issue", "client", "--id", "client-2",
				  "--name", "client2", NULL),
		     0);
	CHECK_STR_CONTAINS(out, "spiffe://ntun.local/client/client-2");
	CHECK_INT_EQ(run_gencerts("--out", path("a"), "--issue", "proxy", "--id", "proxy-2",
				  "--name", "proxy2", NULL),
		     0);
	CHECK_INT_EQ(run_gencerts("--out", path("a"), "--issue", "client", "--id", "impostor",
				  "--name", "badproxy", NULL),
		     0);
	CHECK_INT_EQ(run_gencerts("--out", path("a"), "--issue", "client", "--id", "c3", "--name",
				  "othertd", "--trust-domain", "other.local", NULL),
		     0);
	CHECK_INT_EQ(run_gencerts("--out", path("a"), "--issue", "client", "--id", "client-2",
				  "--name", "client2", NULL),
		     1);
	CHECK_STR_CONTAINS(out, "client2/key.pem");
	CHECK_INT_EQ(run_gencerts("--out", path("a"), "--issue", "admin", "--id", "x", NULL), 2);
	CHECK_INT_EQ(run_gencerts("--out", path("a"), "--server-san", "bad,name", NULL), 2);
	CHECK_INT_EQ(run_gencerts("--out", path("nope"), "--issue", "client", "--id", "x", NULL),
		     1);
	CHECK_STR_CONTAINS(out, "nope/ca/cert.pem");
	CHECK_INT_EQ(stat(path("a/proxy2/key.pem"), &st), 0);
	CHECK_INT_EQ(st.st_mode & 07777, 0600);

	/* Contents, read back with OpenSSL. */
	ca = load_cert(path("a/ca/cert.pem"));
	CHECK(ca != NULL);
	CHECK_INT_EQ(X509_check_ca(ca), 1);
	CHECK(X509_get_key_usage(ca) & KU_KEY_CERT_SIGN);
	CHECK(X509_get0_subject_key_id(ca) != NULL);
	san_string(ca, san, sizeof(san));
	CHECK_STR_EQ(san, "URI:spiffe://ntun.local,");

	x = load_cert(path("a/server/cert.pem"));
	CHECK(x != NULL);
	san_string(x, san, sizeof(san));
	CHECK_STR_EQ(san, "URI:spiffe://ntun.local/server/server-1,DNS:localhost,IP:127.0.0.1,"
			  "DNS:tunnel.example.com,");
	CHECK_INT_EQ(X509_check_ca(x), 0);
	CHECK(X509_get_extended_key_usage(x) & XKU_SSL_SERVER);
	CHECK(!(X509_get_extended_key_usage(x) & XKU_SSL_CLIENT));
	CHECK(X509_get_key_usage(x) & KU_DIGITAL_SIGNATURE);
	CHECK_INT_EQ(X509_verify(x, X509_get0_pubkey(ca)), 1);
	serial = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
	CHECK(serial && BN_num_bits(serial) > 100 && BN_num_bits(serial) <= 128);
	BN_free(serial);
	k = load_key(path("a/server/key.pem"));
	CHECK(k && EVP_PKEY_get_group_name(k, group, sizeof(group), &glen) == 1);
	CHECK_STR_EQ(group, "prime256v1");
	EVP_PKEY_free(k);
	X509_free(x);

	x = load_cert(path("a/client/cert.pem"));
	san_string(x, san, sizeof(san));
	CHECK_STR_EQ(san, "URI:spiffe://ntun.local/client/client-1,");
	CHECK(X509_get_extended_key_usage(x) & XKU_SSL_CLIENT);
	X509_free(x);
	x = load_cert(path("a/proxy/cert.pem"));
	san_string(x, san, sizeof(san));
	CHECK_STR_EQ(san, "URI:spiffe://ntun.local/proxy/proxy-1,");
	CHECK(X509_get_extended_key_usage(x) & XKU_SSL_CLIENT);
	X509_free(x);
	x = load_cert(path("a/client2/cert.pem"));
	san_string(x, san, sizeof(san));
	CHECK_STR_EQ(san, "URI:spiffe://ntun.local/client/client-2,");
	CHECK_INT_EQ(X509_verify(x, X509_get0_pubkey(ca)), 1);
	X509_free(x);
	x = load_cert(path("a/othertd/cert.pem"));
	san_string(x, san, sizeof(san));
	CHECK_STR_EQ(san, "URI:spiffe://other.local/client/c3,");
	X509_free(x);
	X509_free(ca);
	ERR_clear_error();
}

/* Certificates gencerts will not make, for the negative tests. */
static void craft_certs(void)
{
	/* Role client with serverAuth: passes the EKU check as a server, fails the role check. */
	if (craft_leaf("a/ca", "fakeserver", "URI:spiffe://ntun.local/client/fake", "serverAuth") ||
	    /* Role server with clientAuth, presented by a dialer. */
	    craft_leaf("a/ca", "fakeclient", "URI:spiffe://ntun.local/server/fake", "clientAuth") ||
	    craft_leaf("a/ca", "twouris",
		       "URI:spiffe://ntun.local/client/x,URI:spiffe://ntun.local/client/y",
		       "clientAuth") ||
	    craft_leaf("a/ca", "badrole", "URI:spiffe://ntun.local/admin/x", "clientAuth") ||
	    craft_leaf("a/ca", "badid", "URI:spiffe://ntun.local/client/a%2Fb", "clientAuth") ||
	    craft_leaf("a/ca", "nosan", NULL, "clientAuth"))
		die("cannot craft test certificates");
}

/* ---- contexts --------------------------------------------------------------------------- */

static void test_ctx(void)
{
	struct tls_ctx_opts o = {0};
	const struct tls_identity *id;
	struct tls_ctx *ctx;
	char err[512];

	CHECK_STR_EQ(tls_role_name(TLS_ROLE_SERVER), "server");
	CHECK_STR_EQ(tls_role_name(TLS_ROLE_CLIENT), "client");
	CHECK_STR_EQ(tls_role_name(TLS_ROLE_PROXY), "proxy");
	CHECK_STR_EQ(tls_role_name(TLS_ROLE_NONE), "none");
	CHECK_STR_EQ(tls_role_name((enum tls_role)42), "none");

	ctx = SERVER_CTX(.dir = "a/server", .ca_dir = "a/ca");
	CHECK(ctx != NULL);
	if (ctx) {
		id = tls_ctx_identity(ctx);
		CHECK_INT_EQ(id->role, TLS_ROLE_SERVER);
		CHECK_STR_EQ(id->id, "server-1");
		CHECK_STR_EQ(id->trust_domain, "ntun.local");
		CHECK_STR_EQ(id->uri, "spiffe://ntun.local/server/server-1");
	}
	tls_ctx_free(ctx);
	tls_ctx_free(NULL);
	tls_conn_free(NULL);

	CHECK(!CLIENT_CTX(.dir = "missing", .ca_dir = "a/ca"));
	CHECK_STR_CONTAINS(ctx_err, "missing/cert.pem");
	CHECK_STR_CONTAINS(ctx_err, "No such file");
	CHECK(!CLIENT_CTX(.dir = "a/client", .ca_dir = "missing"));
	CHECK_STR_CONTAINS(ctx_err, "missing/cert.pem");
	CHECK(!CLIENT_CTX(.dir = "a/ca", .ca_dir = "a/ca"));
	CHECK_STR_CONTAINS(ctx_err, "a/ca/cert.pem");
	CHECK_STR_CONTAINS(ctx_err, "not a valid SPIFFE ID");
	CHECK(!CLIENT_CTX(.dir = "twouris", .ca_dir = "a/ca"));
	CHECK_STR_CONTAINS(ctx_err, "2 SPIFFE URI SANs");
	CHECK(!CLIENT_CTX(.dir = "nosan", .ca_dir = "a/ca"));
	CHECK_STR_CONTAINS(ctx_err, "no subjectAltName");
	CHECK(!CLIENT_CTX(.dir = "badrole", .ca_dir = "a/ca"));
	CHECK_STR_CONTAINS(ctx_err, "no known role");
	CHECK(!CLIENT_CTX(.dir = "badid", .ca_dir = "a/ca"));
	CHECK_STR_CONTAINS(ctx_err, "not a valid SPIFFE ID");
	CHECK(!CLIENT_CTX(.dir = "a/client", .ca_dir = "a/ca", .trust_domain = "Bad Domain"));
	CHECK_STR_CONTAINS(ctx_err, "trust domain");

	o.cert_file = path("a/client/cert.pem");
	o.key_file = path("a/client/key.pem");
	o.ca_file = path("a/ca/cert.pem");
	CHECK(!tls_ctx_new(&o, err, sizeof(err)));
	CHECK_STR_CONTAINS(err, "accept_roles");
	o.accept_roles = ROLE(SERVER) | 1u;
	CHECK(!tls_ctx_new(&o, err, sizeof(err)));
	CHECK_STR_CONTAINS(err, "accept_roles");
	/* A key that is not the certificate's. */
	o.key_file = path("a/proxy/key.pem");
	o.accept_roles = ROLE(SERVER);
	CHECK(!tls_ctx_new(&o, err, sizeof(err)));
	CHECK_STR_CONTAINS(err, "does not match");
	/* A key file that holds no key. */
	o.key_file = path("a/client/cert.pem");
	CHECK(!tls_ctx_new(&o, err, sizeof(err)));
	CHECK_STR_CONTAINS(err, "a/client/cert.pem");
	CHECK(ERR_peek_error() == 0); /* tls.c leaves the error queue empty */
}

/* ---- handshakes ------------------------------------------------------------------------- */

/* Handshakes client ctx against server ctx; expects both OK and returns the pair open. */
static int expect_ok(const char *name, struct pair *p, struct tls_ctx *cc, struct tls_ctx *sc)
{
	if (pair_open(p, cc, sc)) {
		CHECK(!"pair_open");
		return -1;
	}
	pair_handshake(p);
	CHECK_INT_EQ(p->rc[0], 0);
	CHECK_INT_EQ(p->rc[1], 0);
	if (p->rc[0] || p->rc[1]) {
		fprintf(stderr, "  %s: client: %s / server: %s\n", name, tls_error(p->c[0]),
			tls_error(p->c[1]));
		return -1;
	}
	return 0;
}

/* Expects side `who` (0 client, 1 server) to fail with -EPROTO and a message containing why.
 * The other side must fail too, now or (a TLS 1.3 client whose certificate was rejected) on
 * its first read. */
static void expect_reject(const char *name, struct tls_ctx *cc, struct tls_ctx *sc, int who,
			  const char *why, const char *other_why)
{
	struct pair p;
	char buf[16];
	ssize_t r;

	if (pair_open(&p, cc, sc)) {
		CHECK(!"pair_open");
		goto out;
	}
	pair_handshake(&p);
	CHECK_INT_EQ(p.rc[who], -EPROTO);
	CHECK_STR_CONTAINS(tls_error(p.c[who]), why);
	if (p.rc[who] != -EPROTO || !strstr(tls_error(p.c[who]), why) ||
	    getenv("NTUN_TEST_VERBOSE"))
		fprintf(stderr, "  %s: rc %d: %s\n", name, p.rc[who], tls_error(p.c[who]));
	if (p.rc[!who] == 0) {
		CHECK_INT_EQ(who, 1); /* only the server can reject after the client finished */
		r = tls_read(p.c[!who], buf, sizeof(buf));
		CHECK_INT_EQ(r, -EPROTO);
		if (getenv("NTUN_TEST_VERBOSE"))
			fprintf(stderr, "    other side, first read: %s\n", tls_error(p.c[!who]));
		CHECK_STR_CONTAINS(tls_error(p.c[!who]), other_why);
	} else {
		CHECK(p.rc[!who] == -EPROTO || p.rc[!who] == -ECONNRESET);
		if (getenv("NTUN_TEST_VERBOSE"))
			fprintf(stderr, "    other side: rc %d: %s\n", p.rc[!who],
				tls_error(p.c[!who]));
		CHECK_STR_CONTAINS(tls_error(p.c[!who]), other_why);
	}
out:
	pair_close(&p);
	tls_ctx_free(cc);
	tls_ctx_free(sc);
}

static void test_handshakes(void)
{
	const struct tls_identity *id;
	struct tls_ctx *cc, *sc;
	struct pair p;

	/* client <-> server */
	cc = CLIENT_CTX(.dir = "a/client", .ca_dir = "a/ca");
	sc = SERVER_CTX(.dir = "a/server", .ca_dir = "a/ca");
	if (!expect_ok("client/server", &p, cc, sc)) {
		id = tls_peer(p.c[1]);
		CHECK_INT_EQ(id->role, TLS_ROLE_CLIENT);
		CHECK_STR_EQ(id->id, "client-1");
		CHECK_STR_EQ(id->trust_domain, "ntun.local");
		CHECK_STR_EQ(id->uri, "spiffe://ntun.local/client/client-1");
		id = tls_peer(p.c[0]);
		CHECK_INT_EQ(id->role, TLS_ROLE_SERVER);
		CHECK_STR_EQ(id->id, "server-1");
		CHECK_INT_EQ(tls_handshake(p.c[0]), 0); /* idempotent once done */
	}
	pair_close(&p);
	tls_ctx_free(cc);

	/* proxy <-> server, with the server ctx freed before the connection ends (refcounted). */
	cc = CLIENT_CTX(.dir = "a/proxy", .ca_dir = "a/ca");
	if (pair_open(&p, cc, sc))
		die("pair_open");
	tls_ctx_free(sc);
	tls_ctx_free(cc);
	pair_handshake(&p);
	CHECK_INT_EQ(p.rc[0], 0);
	CHECK_INT_EQ(p.rc[1], 0);
	id = tls_peer(p.c[1]);
	CHECK_INT_EQ(id->role, TLS_ROLE_PROXY);
	CHECK_STR_EQ(id->id, "proxy-1");
	pair_close(&p);

	/* The dialer wants a server; the peer's certificate says client (EKU says serverAuth). */
	expect_reject("client rejects non-server", CLIENT_CTX(.dir = "a/client", .ca_dir = "a/ca"),
		      SERVER_CTX(.dir = "fakeserver", .ca_dir = "a/ca"), 0,
		      "peer certificate role 'client' not accepted (want server)", "alert");
	/* A proxy certificate as a server: no serverAuth EKU. */
	expect_reject("client rejects proxy cert as server",
		      CLIENT_CTX(.dir = "a/client", .ca_dir = "a/ca"),
		      SERVER_CTX(.dir = "a/proxy", .ca_dir = "a/ca"), 0,
		      "unsuitable certificate purpose", "alert");
	/* The listener takes clients and proxies; a server-role certificate dials in. */
	expect_reject("server rejects server role",
		      CLIENT_CTX(.dir = "fakeclient", .ca_dir = "a/ca"),
		      SERVER_CTX(.dir = "a/server", .ca_dir = "a/ca"), 1,
		      "peer certificate role 'server' not accepted (want client|proxy)", "alert");
	/* A proxies-only listener and a client certificate. */
	expect_reject("server rejects client as proxy",
		      CLIENT_CTX(.dir = "a/badproxy", .ca_dir = "a/ca"),
		      SERVER_CTX(.dir = "a/server", .ca_dir = "a/ca", .roles = ROLE(PROXY)), 1,
		      "peer certificate role 'client' not accepted (want proxy)", "alert");
	/* The server's own certificate used by a dialer: no clientAuth EKU. */
	expect_reject("server rejects server cert as client",
		      CLIENT_CTX(.dir = "a/server", .ca_dir = "a/ca"),
		      SERVER_CTX(.dir = "a/server", .ca_dir = "a/ca"), 1,
		      "unsuitable certificate purpose", "alert");

	/* Another CA, both directions. */
	expect_reject("client rejects foreign CA", CLIENT_CTX(.dir = "a/client", .ca_dir = "a/ca"),
		      SERVER_CTX(.dir = "b/server", .ca_dir = "b/ca"), 0,
		      "peer certificate verify failed", "unknown ca");
	expect_reject("client error names unknown CA",
		      CLIENT_CTX(.dir = "a/client", .ca_dir = "a/ca"),
		      SERVER_CTX(.dir = "b/server", .ca_dir = "b/ca"), 0, "unknown CA", "alert");
	expect_reject("server rejects foreign CA", CLIENT_CTX(.dir = "b/client", .ca_dir = "a/ca"),
		      SERVER_CTX(.dir = "a/server", .ca_dir = "a/ca"), 1,
		      "peer certificate verify failed", "unknown ca");

	/* Trust domains. */
	expect_reject(
		"server rejects other trust domain",
		CLIENT_CTX(.dir = "a/othertd", .ca_dir = "a/ca", .trust_domain = "ntun.local"),
		SERVER_CTX(.dir = "a/server", .ca_dir = "a/ca"), 1,
		"trust domain 'other.local' not accepted (want 'ntun.local')", "alert");
	expect_reject(
		"configured trust domain",
		CLIENT_CTX(.dir = "a/client", .ca_dir = "a/ca", .trust_domain = "other.local"),
		SERVER_CTX(.dir = "a/server", .ca_dir = "a/ca"), 0,
		"trust domain 'ntun.local' not accepted (want 'other.local')", "alert");
}

static void test_server_name(void)
{
	static const char *const good[] = {"localhost", "tunnel.example.com", "127.0.0.1", NULL};
	struct tls_ctx *cc, *sc;
	struct pair p;

	sc = SERVER_CTX(.dir = "a/server", .ca_dir = "a/ca");
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		cc = CLIENT_CTX(.dir = "a/client", .ca_dir = "a/ca", .server_name = good[i]);
		expect_ok(good[i] ? good[i] : "no server_name", &p, cc, sc);
		pair_close(&p);
		tls_ctx_free(cc);
	}
	/* insecure skips only the name check... */
	cc = CLIENT_CTX(.dir = "a/client", .ca_dir = "a/ca", .server_name = "wrong.example.com",
			.insecure = true);
	expect_ok("insecure", &p, cc, sc);
	pair_close(&p);
	tls_ctx_free(cc);
	/* ...never the chain. */
	expect_reject("insecure still checks the chain",
		      CLIENT_CTX(.dir = "a/client", .ca_dir = "a/ca", .insecure = true),
		      SERVER_CTX(.dir = "b/server", .ca_dir = "b/ca"), 0,
		      "peer certificate verify failed", "alert");
	tls_ctx_free(sc);

	expect_reject(
		"wrong DNS name",
		CLIENT_CTX(.dir = "a/client", .ca_dir = "a/ca", .server_name = "wrong.example.com"),
		SERVER_CTX(.dir = "a/server", .ca_dir = "a/ca"), 0,
		"mismatch (want server_name 'wrong.example.com'", "alert");
	expect_reject("wrong IP",
		      CLIENT_CTX(.dir = "a/client", .ca_dir = "a/ca", .server_name = "10.9.9.9"),
		      SERVER_CTX(.dir = "a/server", .ca_dir = "a/ca"), 0, "IP address mismatch",
		      "alert");
}

/* One handshake with the client connection's own server name (tls_conn_set_server_name) over
 * the context's; why NULL: must succeed, else the client's error must contain it. */
static void conn_name_case(struct tls_ctx *cc, const char *name, const char *why)
{
	struct tls_ctx *sc = SERVER_CTX(.dir = "a/server", .ca_dir = "a/ca");
	struct pair p;

	if (pair_open(&p, cc, sc)) {
		CHECK(!"pair_open");
		goto out;
	}
	CHECK_INT_EQ(tls_conn_set_server_name(p.c[0], name), 0);
	CHECK_INT_EQ(tls_conn_set_server_name(p.c[1], name), -EINVAL); /* server side */
	pair_handshake(&p);
	if (why) {
		CHECK_INT_EQ(p.rc[0], -EPROTO);
		CHECK_STR_CONTAINS(tls_error(p.c[0]), why);
	} else {
		CHECK_INT_EQ(p.rc[0], 0);
		CHECK_INT_EQ(p.rc[1], 0);
	}
	if ((why && p.rc[0] != -EPROTO) || (!why && p.rc[0]))
		fprintf(stderr, "  server name %s: %s\n", name, tls_error(p.c[0]));
out:
	pair_close(&p);
	tls_ctx_free(cc);
	tls_ctx_free(sc);
}

/* Each server of a list is checked for its own name: a connection's name replaces the
 * context's, a DNS name an IP address and the other way round. */
static void test_conn_server_name(void)
{
	struct tls_ctx *cc = CLIENT_CTX(.dir = "a/client", .ca_dir = "a/ca");
	struct tls_conn *c;
	int fd[2];

	conn_name_case(CLIENT_CTX(.dir = "a/client", .ca_dir = "a/ca"), "localhost", NULL);
	conn_name_case(CLIENT_CTX(.dir = "a/client", .ca_dir = "a/ca", .server_name = "10.9.9.9"),
		       "tunnel.example.com", NULL);
	conn_name_case(
		CLIENT_CTX(.dir = "a/client", .ca_dir = "a/ca", .server_name = "wrong.example.com"),
		"127.0.0.1", NULL);
	conn_name_case(CLIENT_CTX(.dir = "a/client", .ca_dir = "a/ca", .server_name = "localhost"),
		       "wrong.example.com", "mismatch (want server_name 'wrong.example.com'");
	conn_name_case(CLIENT_CTX(.dir = "a/client", .ca_dir = "a/ca", .server_name = "localhost"),
		       "10.9.9.9", "IP address mismatch (want server_name '10.9.9.9'");
	conn_name_case(CLIENT_CTX(.dir = "a/client", .ca_dir = "a/ca", .insecure = true),
		       "wrong.example.com", NULL);

	if (!cc || socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fd)) {
		CHECK(!"set-up");
		tls_ctx_free(cc);
		return;
	}
	c = tls_conn_new(cc, fd[0]);
	CHECK(c != NULL);
	CHECK_INT_EQ(tls_conn_set_server_name(c, ""), -EINVAL);
	{
		char longname[300];

		memset(longname, 'a', sizeof(longname) - 1);
		longname[sizeof(longname) - 1] = '\0';
		CHECK_INT_EQ(tls_conn_set_server_name(c, longname), -EINVAL);
	}
	tls_conn_free(c);
	close(fd[0]);
	close(fd[1]);
	tls_ctx_free(cc);
}

/* Our side against a raw OpenSSL peer. raw_is_server picks its side, raw_cert whether it has a
 * certificate; alpn is the wire-format list it offers (client) or NULL; why NULL: success. */
static void raw_case(const char *name, bool raw_is_server, bool raw_cert, const unsigned char *alpn,
		     unsigned alpn_len, const char *why)
{
	SSL_CTX *rctx = SSL_CTX_new(raw_is_server ? TLS_server_method() : TLS_client_method());
	struct tls_ctx *ours;
	struct tls_conn *c = NULL;
	SSL *raw = NULL;
	int fd[2] = {-1, -1}, rc = -EAGAIN, rr = -1;
	const char *dir = raw_is_server ? "a/server" : "a/client";

	ours = raw_is_server ? CLIENT_CTX(.dir = "a/client", .ca_dir = "a/ca")
			     : SERVER_CTX(.dir = "a/server", .ca_dir = "a/ca");
	if (!rctx || !ours ||
	    (raw_cert &&
	     (SSL_CTX_use_certificate_file(rctx, path("%s/cert.pem", dir), SSL_FILETYPE_PEM) != 1 ||
	      SSL_CTX_use_PrivateKey_file(rctx, path("%s/key.pem", dir), SSL_FILETYPE_PEM) != 1)) ||
	    (alpn && SSL_CTX_set_alpn_protos(rctx, alpn, alpn_len)) ||
	    socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fd)) {
		CHECK(!"raw_case setup");
		goto out;
	}
	raw = SSL_new(rctx);
	SSL_set_fd(raw, fd[1]);
	if (raw_is_server)
		SSL_set_accept_state(raw);
	else
		SSL_set_connect_state(raw);
	c = tls_conn_new(ours, fd[0]);
	for (int i = 0; i < 100 && (rc == -EAGAIN || rr < 0); i++) {
		struct pollfd pfd[2] = {{fd[0], POLLIN, 0}, {fd[1], POLLIN, 0}};

		if (rc == -EAGAIN)
			rc = tls_handshake(c);
		if (rr < 0) {
			rr = SSL_do_handshake(raw);
			if (rr < 0 && SSL_get_error(raw, rr) != SSL_ERROR_WANT_READ)
				rr = 0; /* failed */
		}
		if (poll(pfd, 2, 200) <= 0)
			break;
	}
	if (!why) {
		const unsigned char *proto = NULL;
		unsigned plen = 0;

		CHECK_INT_EQ(rc, 0);
		CHECK_INT_EQ(rr, 1);
		SSL_get0_alpn_selected(raw, &proto, &plen);
		CHECK(plen == 2 && !memcmp(proto, "h2", 2));
		CHECK_INT_EQ(tls_peer(c)->role, TLS_ROLE_CLIENT);
		if (rc)
			fprintf(stderr, "  %s: rc %d: %s\n", name, rc, tls_error(c));
		goto out;
	}
	CHECK_INT_EQ(rc, -EPROTO);
	CHECK_STR_CONTAINS(tls_error(c), why);
	if (rc != -EPROTO || !strstr(tls_error(c), why) || getenv("NTUN_TEST_VERBOSE"))
		fprintf(stderr, "  %s: rc %d: %s\n", name, rc, tls_error(c));
out:
	ERR_clear_error();
	tls_conn_free(c);
	SSL_free(raw);
	SSL_CTX_free(rctx);
	tls_ctx_free(ours);
	for (int i = 0; i < 2; i++)
		if (fd[i] >= 0)
			close(fd[i]);
}

static void test_raw_peers(void)
{
	static const unsigned char http11[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
	static const unsigned char h2c[] = {3, 'h', '2', 'c', 2, 'h', '3'};

	static const unsigned char grpc_like[] = {8,   'h', 't', 't', 'p', '/',
						  '1', '.', '1', 2,   'h', '2'};

	/* A plain OpenSSL client offering what HTTP/2 stacks offer: h2 is picked. */
	raw_case("http/1.1,h2", false, true, grpc_like, sizeof(grpc_like), NULL);
	raw_case("no ALPN from client", false, true, NULL, 0, "offered no ALPN");
	raw_case("http/1.1 only", false, true, http11, sizeof(http11), "did not offer ALPN h2");
	raw_case("near misses", false, true, h2c, sizeof(h2c), "did not offer ALPN h2");
	raw_case("server without ALPN", true, true, NULL, 0, "ALPN h2 was not agreed");
	/* Not ALPN, but the same harness: a client that presents no certificate at all. */
	raw_case("no client certificate", false, false, grpc_like, sizeof(grpc_like),
		 "did not return a certificate");
}

/* ---- data ------------------------------------------------------------------------------- */

static void fill(unsigned char *buf, size_t len, uint32_t seed)
{
	uint32_t x = seed;

	for (size_t i = 0; i < len; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		buf[i] = (unsigned char)x;
	}
}

/* Two directions' worth of len-byte sources (filled from seed) and sinks. */
static void xfer_new(unsigned char *src[2], unsigned char *dst[2], size_t len, uint32_t seed)
{
	for (int i = 0; i < 2; i++) {
		src[i] = malloc(len);
		dst[i] = malloc(len);
		if (!src[i] || !dst[i])
			die("malloc");
		fill(src[i], len, seed * (uint32_t)(i + 1));
	}
}

/* 0 when both directions got all len bytes intact; frees the buffers. */
static int xfer_end(unsigned char *src[2], unsigned char *dst[2], const size_t got[2], size_t len)
{
	int ret = got[0] == len && got[1] == len && !memcmp(src[0], dst[0], len) &&
				  !memcmp(src[1], dst[1], len)
			  ? 0
			  : -1;

	for (int i = 0; i < 2; i++) {
		free(src[i]);
		free(dst[i]);
	}
	return ret;
}

/* Sends len bytes each way at once, through staging buffers that alternate on every call (the
 * buffer moves between retries), reading in odd-sized pieces. Returns 0 when both arrived
 * intact. *partial counts writes that took less than offered. */
static int exchange(struct pair *p, size_t len, unsigned *partial)
{
	enum { CHUNK = 256 * 1024 };
	unsigned char *src[2], *dst[2], *stage[2];
	size_t sent[2] = {0}, got[2] = {0}, n;
	int calls = 0;
	ssize_t r;

	xfer_new(src, dst, len, 0x9e3779b9u);
	for (int i = 0; i < 2; i++)
		if (!(stage[i] = malloc(CHUNK)))
			die("malloc");
	for (int round = 0; round < 100000 && (got[0] < len || got[1] < len); round++) {
		bool progress = false;
		struct pollfd pfd[2];

		for (int i = 0; i < 2; i++) {
			if (sent[i] < len) {
				n = len - sent[i] < CHUNK ? len - sent[i] : CHUNK;
				memcpy(stage[calls & 1], src[i] + sent[i], n);
				r = tls_write(p->c[i], stage[calls++ & 1], n);
				if (r > 0) {
					*partial += (size_t)r < n;
					sent[i] += (size_t)r;
					progress = true;
				} else if (r != -EAGAIN) {
					fprintf(stderr, "  write: %zd %s\n", r, tls_error(p->c[i]));
					goto out;
				}
			} else if (tls_write_pending(p->c[i]) && tls_flush(p->c[i]) < -EAGAIN) {
				goto out; /* what was taken but not sent yet */
			}
			/* reads land in the peer's buffer: side i reads what !i sent */
			n = len - got[!i] < 7777 ? len - got[!i] : 7777;
			if (!n)
				continue;
			r = tls_read(p->c[i], dst[!i] + got[!i], n);
			if (r > 0) {
				got[!i] += (size_t)r;
				progress = true;
			} else if (r != -EAGAIN) {
				fprintf(stderr, "  read: %zd %s\n", r, tls_error(p->c[i]));
				goto out;
			}
		}
		if (progress)
			continue;
		for (int i = 0; i < 2; i++) {
			pfd[i].fd = p->fd[i];
			pfd[i].events =
				(short)(POLLIN |
					(sent[i] < len || tls_write_pending(p->c[i]) ? POLLOUT
										     : 0));
		}
		if (poll(pfd, 2, 2000) <= 0) {
			fprintf(stderr, "  exchange stalled\n");
			goto out;
		}
	}
out:
	for (int i = 0; i < 2; i++)
		free(stage[i]);
	return xfer_end(src, dst, got, len);
}

/* Reads until data or something other than -EAGAIN, waiting up to a second. */
static ssize_t read_wait(struct tls_conn *c, int fd, void *buf, size_t len)
{
	struct pollfd pfd = {fd, POLLIN, 0};
	ssize_t r;

	for (int i = 0; i < 50; i++) {
		r = tls_read(c, buf, len);
		if (r != -EAGAIN)
			return r;
		pfd.events = poll_events(tls_want(c));
		poll(&pfd, 1, 20);
	}
	return -EAGAIN;
}

static struct tls_ctx *data_cc, *data_sc;

static int open_ok(struct pair *p)
{
	return expect_ok("data", p, data_cc, data_sc);
}

/* socket_io: OpenSSL writes to the sockets itself, as with kernel TLS. */
static void test_data(bool socket_io)
{
	unsigned char buf[4096];
	unsigned partial = 0;
	struct pair p;
	ssize_t r;

	data_cc = CLIENT_CTX(.dir = "a/client", .ca_dir = "a/ca", .server_name = "localhost",
			     .socket_io = socket_io);
	data_sc = SERVER_CTX(.dir = "a/server", .ca_dir = "a/ca", .socket_io = socket_io);

	/* Small messages and byte-exact bulk in both directions at once. */
	if (!open_ok(&p)) {
		size_t heap = mallinfo2().uordblks;

		CHECK_INT_EQ(tls_write(p.c[0], "ping", 4), 4);
		CHECK_INT_EQ(read_wait(p.c[1], p.fd[1], buf, sizeof(buf)), 4);
		CHECK(!memcmp(buf, "ping", 4));
		CHECK_INT_EQ(tls_write(p.c[1], "pong!", 5), 5);
		CHECK_INT_EQ(read_wait(p.c[0], p.fd[0], buf, sizeof(buf)), 5);
		CHECK(!memcmp(buf, "pong!", 5));
		/* Idle again (read until -EAGAIN, as the daemons do): neither side holds a buffer. */
		CHECK_INT_EQ(tls_read(p.c[0], buf, sizeof(buf)), -EAGAIN);
		CHECK_INT_EQ(tls_read(p.c[1], buf, sizeof(buf)), -EAGAIN);
		CHECK_INT_EQ(tls_buffered(p.c[0]), 0);
		CHECK_INT_EQ(tls_buffered(p.c[1]), 0);
		/* OpenSSL's record buffers went too (16 KiB each while they exist). */
		CHECK(mallinfo2().uordblks <= heap + 2048);
		if (mallinfo2().uordblks > heap + 2048)
			fprintf(stderr, "  heap grew by %zu bytes\n", mallinfo2().uordblks - heap);
		CHECK_INT_EQ(tls_write(p.c[0], "x", 0), 0);
		CHECK_INT_EQ(tls_read(p.c[0], buf, 0), -EINVAL);
		CHECK_INT_EQ(exchange(&p, 1u << 20, &partial), 0);
		CHECK(partial > 0); /* 1 MiB does not fit a socketpair: writes were partial */
		CHECK_INT_EQ(exchange(&p, 3, &partial), 0);
		CHECK_INT_EQ(tls_read(p.c[0], buf, sizeof(buf)), -EAGAIN);
		CHECK_INT_EQ(tls_read(p.c[1], buf, sizeof(buf)), -EAGAIN);
		CHECK_INT_EQ(tls_buffered(p.c[0]) + tls_buffered(p.c[1]), 0);
		CHECK(mallinfo2().uordblks <= heap + 2048);
		if (mallinfo2().uordblks > heap + 2048)
			fprintf(stderr, "  heap grew by %zu bytes\n", mallinfo2().uordblks - heap);
	}
	pair_close(&p);

	/* Connections in their handshake hold little. A server whose client sent one byte of its
	 * ClientHello holds no buffer at all (the old read buffer alone was 81 KiB, OpenSSL's
	 * own setup 64 KiB more); one that answered a whole ClientHello holds OpenSSL's state
	 * until the client's second flight. Heap growth of 16 servers each, per server. */
	{
		enum { N = 32 };
		static const unsigned char hello[] = {22, 3, 1, 2, 0, 1};
		struct pair q[N];
		size_t heap, grew[2];

		for (int i = 0; i < N; i++) {
			if (pair_open(&q[i], data_cc, data_sc))
				die("pair_open");
			if (i % 2)
				CHECK_INT_EQ(tls_handshake(q[i].c[0]),
					     -EAGAIN); /* its ClientHello */
			else
				CHECK_INT_EQ(write(q[i].fd[0], hello, 1), 1);
		}
		for (int k = 0; k < 2; k++) {
			heap = mallinfo2().uordblks;
			for (int i = k; i < N; i += 2) {
				CHECK_INT_EQ(tls_handshake(q[i].c[1]), -EAGAIN);
				CHECK_INT_EQ(tls_buffered(q[i].c[1]), 0);
			}
			grew[k] = (mallinfo2().uordblks - heap) / (N / 2);
		}
		if (getenv("NTUN_TEST_VERBOSE") || grew[0] > 1024 || grew[1] > 48 * 1024)
			fprintf(stderr,
				"  in handshake: %zu bytes per server after one byte, %zu "
				"after a ClientHello\n",
				grew[0], grew[1]);
		CHECK(grew[0] <= 1024);
		CHECK(grew[1] <= 48 * 1024);
		for (int i = 0; i < N; i++)
			pair_close(&q[i]);
	}

	/* A record bigger than the read buffer stays inside OpenSSL: tls_pending says so. */
	if (!open_ok(&p)) {
		CHECK_INT_EQ(tls_write(p.c[0], "0123456789abcdef", 16), 16);
		CHECK_INT_EQ(read_wait(p.c[1], p.fd[1], buf, 10), 10);
		CHECK(tls_pending(p.c[1]));
		CHECK(tls_buffered(p.c[1]) > 0); /* the rest waits in the read buffer */
		CHECK_INT_EQ(tls_read(p.c[1], buf, sizeof(buf)), 6);
		CHECK(!memcmp(buf, "abcdef", 6));
		CHECK(!tls_pending(p.c[1]));
		CHECK_INT_EQ(tls_read(p.c[1], buf, sizeof(buf)), -EAGAIN);
		CHECK_INT_EQ(tls_want(p.c[1]), TLS_WANT_READ);
		CHECK_INT_EQ(tls_buffered(p.c[1]), 0);
	}
	pair_close(&p);

	/* close_notify reads as EOF, and the other direction keeps working. */
	if (!open_ok(&p)) {
		tls_close_notify(p.c[0]);
		tls_close_notify(p.c[0]); /* once only */
		CHECK_INT_EQ(read_wait(p.c[1], p.fd[1], buf, sizeof(buf)), 0);
		CHECK_INT_EQ(tls_write(p.c[1], "bye", 3), 3);
		CHECK_INT_EQ(read_wait(p.c[0], p.fd[0], buf, sizeof(buf)), 3);
	}
	pair_close(&p);

	/* A peer that closes without close_notify: EOF too, not an error. */
	if (!open_ok(&p)) {
		CHECK_INT_EQ(tls_write(p.c[0], "last", 4), 4);
		shutdown(p.fd[0], SHUT_WR);
		CHECK_INT_EQ(read_wait(p.c[1], p.fd[1], buf, sizeof(buf)), 4);
		CHECK_INT_EQ(read_wait(p.c[1], p.fd[1], buf, sizeof(buf)), 0);
	}
	pair_close(&p);

	/* A peer that closes with our data unread: the kernel resets, we see -ECONNRESET. */
	if (!open_ok(&p)) {
		CHECK_INT_EQ(tls_write(p.c[1], "unread", 6), 6);
		close(p.fd[0]);
		p.fd[0] = -1;
		r = read_wait(p.c[1], p.fd[1], buf, sizeof(buf));
		CHECK_INT_EQ(r, -ECONNRESET);
		CHECK_STR_CONTAINS(tls_error(p.c[1]), "reset");
		CHECK_INT_EQ(tls_write(p.c[1], "more", 4), -ECONNRESET); /* sticky */
	}
	pair_close(&p);

	/* Writing to a peer that is gone: -EPIPE (SIGPIPE is ignored, as daemons must). */
	if (!open_ok(&p)) {
		close(p.fd[0]);
		p.fd[0] = -1;
		CHECK_INT_EQ(tls_write(p.c[1], "void", 4), -EPIPE);
	}
	pair_close(&p);

	/* The peer hangs up in the middle of the handshake. */
	if (!pair_open(&p, data_cc, data_sc)) {
		CHECK_INT_EQ(tls_read(p.c[0], buf, sizeof(buf)), -ENOTCONN); /* no data before it */
		CHECK_INT_EQ(tls_write(p.c[0], "early", 5), -ENOTCONN);
		CHECK_INT_EQ(tls_handshake(p.c[0]), -EAGAIN); /* ClientHello sent */
		CHECK_INT_EQ(tls_want(p.c[0]), TLS_WANT_READ);
		shutdown(p.fd[0], SHUT_WR);
		r = -EAGAIN;
		for (int i = 0; i < 50 && r == -EAGAIN; i++) {
			struct pollfd pfd = {p.fd[1], POLLIN, 0};

			r = tls_handshake(p.c[1]);
			poll(&pfd, 1, 20);
		}
		CHECK_INT_EQ(r, -ECONNRESET);
		CHECK_STR_CONTAINS(tls_error(p.c[1]),
				   "peer closed the connection during the handshake");
	}
	pair_close(&p);
	/* ...or before it: our ClientHello meets a closed socket. */
	if (!pair_open(&p, data_cc, data_sc)) {
		close(p.fd[1]);
		p.fd[1] = -1;
		r = tls_handshake(p.c[0]);
		CHECK(r == -EPIPE || r == -ECONNRESET);
	}
	pair_close(&p);
	CHECK(tls_conn_new(data_cc, -1) == NULL && errno == EBADF);

	tls_ctx_free(data_cc);
	tls_ctx_free(data_sc);
}

/* ---- records: our record layer against OpenSSL's ----------------------------------------- */

/* Ours (a tls_conn) and a raw OpenSSL peer after the handshake, with what the raw side's
 * callbacks saw. Forged records are sealed under the raw side's write secret (keylog). */
struct raw_pair {
	int fd[2]; /* [0] ours, [1] the raw peer's */
	struct tls_ctx *ctx;
	struct tls_conn *c;
	SSL_CTX *rctx;
	SSL *raw;
	bool raw_is_server;
	unsigned char wsecret[EVP_MAX_MD_SIZE]; /* the raw side's write traffic secret */
	size_t wsecret_len;
	struct tls_forge fg;		 /* forge(): AES-128-GCM under wsecret and its successors */
	int key_updates_in, tickets_out; /* handshake messages the raw side received / sent */
	int records_in, short_in;	 /* records the raw side received, those under 16 KiB */
};

static void raw_keylog(const SSL *ssl, const char *line)
{
	struct raw_pair *rp = SSL_get_app_data(ssl);
	const char *want =
		rp->raw_is_server ? "SERVER_TRAFFIC_SECRET_0 " : "CLIENT_TRAFFIC_SECRET_0 ";
	const char *p;
	unsigned v;

	if (strncmp(line, want, strlen(want)) || !(p = strchr(line + strlen(want), ' ')))
		return;
	for (rp->wsecret_len = 0, p++;
	     rp->wsecret_len < sizeof(rp->wsecret) && sscanf(p, "%2x", &v) == 1; p += 2)
		rp->wsecret[rp->wsecret_len++] = (unsigned char)v;
}

static void raw_msg(int write_p, int version, int type, const void *buf, size_t len, SSL *ssl,
		    void *arg)
{
	struct raw_pair *rp = SSL_get_app_data(ssl);
	const unsigned char *m = buf;

	if (!write_p && type == SSL3_RT_HEADER && len == 5) {
		rp->records_in++;
		rp->short_in += (m[3] << 8 | m[4]) < 16384 + 1 + 16;
		return;
	}
	if (type != SSL3_RT_HANDSHAKE || !len)
		return;
	rp->key_updates_in += !write_p && m[0] == SSL3_MT_KEY_UPDATE;
	rp->tickets_out += write_p && m[0] == SSL3_MT_NEWSESSION_TICKET;
}

static int raw_alpn(SSL *ssl, const unsigned char **sel, unsigned char *sel_len,
		    const unsigned char *in, unsigned inlen, void *arg)
{
	*sel = (const unsigned char *)"h2";
	*sel_len = 2;
	return SSL_TLSEXT_ERR_OK;
}

static void raw_close(struct raw_pair *rp)
{
	ERR_clear_error();
	tls_conn_free(rp->c);
	tls_ctx_free(rp->ctx);
	SSL_free(rp->raw);
	SSL_CTX_free(rp->rctx);
	tls_forge_free(&rp->fg);
	for (int i = 0; i < 2; i++)
		if (rp->fd[i] >= 0)
			close(rp->fd[i]);
	memset(rp, 0, sizeof(*rp));
	rp->fd[0] = rp->fd[1] = -1;
}

/* Ours against a raw peer: OpenSSL writes to our socket itself (as with kernel TLS). */
static bool raw_socket_io;

/* Handshakes ours against a raw OpenSSL peer restricted to `suites` (NULL: its defaults) that
 * sends `tickets` session tickets if it is the server. 0 or -1. */
static int raw_open(struct raw_pair *rp, bool raw_is_server, const char *suites, int tickets)
{
	static const unsigned char h2[] = {2, 'h', '2'};
	const char *dir = raw_is_server ? "a/server" : "a/client";
	int rc = -EAGAIN, rr = -1;

	memset(rp, 0, sizeof(*rp));
	rp->fd[0] = rp->fd[1] = -1;
	rp->raw_is_server = raw_is_server;
	rp->ctx = raw_is_server ? CLIENT_CTX(.dir = "a/client", .ca_dir = "a/ca",
					     .socket_io = raw_socket_io)
				: SERVER_CTX(.dir = "a/server", .ca_dir = "a/ca",
					     .socket_io = raw_socket_io);
	rp->rctx = SSL_CTX_new(raw_is_server ? TLS_server_method() : TLS_client_method());
	if (!rp->ctx || !rp->rctx ||
	    SSL_CTX_use_certificate_file(rp->rctx, path("%s/cert.pem", dir), SSL_FILETYPE_PEM) !=
		    1 ||
	    SSL_CTX_use_PrivateKey_file(rp->rctx, path("%s/key.pem", dir), SSL_FILETYPE_PEM) != 1 ||
	    (suites && SSL_CTX_set_ciphersuites(rp->rctx, suites) != 1) ||
	    socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, rp->fd))
		return -1;
	if (raw_is_server) {
		SSL_CTX_set_alpn_select_cb(rp->rctx, raw_alpn, NULL);
		SSL_CTX_set_num_tickets(rp->rctx, (size_t)tickets);
	} else if (SSL_CTX_set_alpn_protos(rp->rctx, h2, sizeof(h2))) {
		return -1;
	}
	SSL_CTX_set_mode(rp->rctx,
			 SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_ENABLE_PARTIAL_WRITE);
	SSL_CTX_set_keylog_callback(rp->rctx, raw_keylog);
	rp->raw = SSL_new(rp->rctx);
	if (!rp->raw)
		return -1;
	SSL_set_app_data(rp->raw, rp);
	SSL_set_msg_callback(rp->raw, raw_msg);
	SSL_set_fd(rp->raw, rp->fd[1]);
	if (raw_is_server)
		SSL_set_accept_state(rp->raw);
	else
		SSL_set_connect_state(rp->raw);
	rp->c = tls_conn_new(rp->ctx, rp->fd[0]);
	for (int i = 0; rp->c && i < 100 && (rc == -EAGAIN || rr < 0); i++) {
		struct pollfd pfd[2] = {{rp->fd[0], POLLIN, 0}, {rp->fd[1], POLLIN, 0}};

		if (rc == -EAGAIN)
			rc = tls_handshake(rp->c);
		if (rr < 0) {
			rr = SSL_do_handshake(rp->raw);
			if (rr < 0 && SSL_get_error(rp->raw, rr) != SSL_ERROR_WANT_READ)
				rr = 0;
		}
		if ((rc == -EAGAIN || rr < 0) && poll(pfd, 2, 200) <= 0)
			break;
	}
	if (rc || rr != 1)
		fprintf(stderr, "  raw_open: ours %d (%s), raw %d\n", rc,
			rp->c ? tls_error(rp->c) : "-", rr);
	return rc || rr != 1 ? -1 : 0;
}

static bool raw_retry(struct raw_pair *rp, int r)
{
	int e = SSL_get_error(rp->raw, r);

	return e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE;
}

/* A non-blocking call's result, ours or the raw peer's: bytes moved are counted; 0, or -1 for
 * anything but "try again". */
static int ours_step(ssize_t r, size_t *count, bool *progress)
{
	if (r > 0) {
		*count += (size_t)r;
		*progress = true;
	}
	return r > 0 || r == -EAGAIN ? 0 : -1;
}

static int raw_step(struct raw_pair *rp, int ok, size_t n, size_t *count, bool *progress)
{
	if (ok) {
		*count += n;
		*progress = true;
	}
	return ok || raw_retry(rp, ok) ? 0 : -1;
}

/* len bytes each way at once between ours and the raw peer. 0 when both arrived intact. */
static int raw_exchange(struct raw_pair *rp, size_t len)
{
	unsigned char *src[2], *dst[2];
	size_t sent[2] = {0}, got[2] = {0}, n; /* [0]: ours to raw, [1]: raw to ours */
	int ret = -1;

	xfer_new(src, dst, len, 0x51ed270bu);
	for (int round = 0; round < 100000 && (got[0] < len || got[1] < len); round++) {
		struct pollfd pfd[2] = {{rp->fd[0], POLLIN, 0}, {rp->fd[1], POLLIN, 0}};
		bool progress = false;
		int ok;

		if (sent[0] < len) {
			n = len - sent[0] < 100000 ? len - sent[0] : 100000;
			if (ours_step(tls_write(rp->c, src[0] + sent[0], n), &sent[0], &progress))
				goto out;
		} else if (tls_write_pending(rp->c) && tls_flush(rp->c) < -EAGAIN) {
			goto out;
		}
		if (sent[1] < len) {
			ok = SSL_write_ex(rp->raw, src[1] + sent[1], len - sent[1], &n);
			if (raw_step(rp, ok, n, &sent[1], &progress))
				goto out;
		}
		if (got[1] < len) {
			n = len - got[1] < 7777 ? len - got[1] : 7777;
			if (ours_step(tls_read(rp->c, dst[1] + got[1], n), &got[1], &progress))
				goto out;
		}
		if (got[0] < len) {
			ok = SSL_read_ex(rp->raw, dst[0] + got[0], len - got[0], &n);
			if (raw_step(rp, ok, n, &got[0], &progress))
				goto out;
		}
		if (progress)
			continue;
		pfd[0].events |= (short)(tls_write_pending(rp->c) ? POLLOUT : 0);
		pfd[1].events |= (short)(sent[1] < len ? POLLOUT : 0);
		if (poll(pfd, 2, 2000) <= 0)
			goto out;
	}
out:
	ret = xfer_end(src, dst, got, len);
	if (ret)
		fprintf(stderr, "  raw_exchange: %zu/%zu %zu/%zu: %s\n", got[0], sent[0], got[1],
			sent[1], tls_error(rp->c));
	return ret;
}

/* Reads one record's worth (or EOF/error) on the raw side, waiting up to a second. Returns
 * SSL_read_ex's result and leaves the raw side's error in *err. */
static int raw_read_wait(struct raw_pair *rp, void *buf, size_t len, size_t *n, int *err)
{
	int ok = 0;

	for (int i = 0; i < 50; i++) {
		struct pollfd pfd = {rp->fd[1], POLLIN, 0};

		ok = SSL_read_ex(rp->raw, buf, len, n);
		*err = ok ? SSL_ERROR_NONE : SSL_get_error(rp->raw, ok);
		if (*err != SSL_ERROR_WANT_READ)
			break;
		poll(&pfd, 1, 20);
	}
	return ok;
}

static void test_record_suites(void)
{
	static const struct {
		bool raw_is_server;
		const char *suites, *want;
	} cases[] = {
		{false, NULL, "TLS_AES_128_GCM_SHA256"}, /* our server's preference */
		{true, NULL, "TLS_AES_128_GCM_SHA256"},	 /* the raw server follows our order */
		{true, "TLS_AES_256_GCM_SHA384", "TLS_AES_256_GCM_SHA384"},
		{false, "TLS_AES_256_GCM_SHA384", "TLS_AES_256_GCM_SHA384"},
		{true, "TLS_CHACHA20_POLY1305_SHA256", "TLS_CHACHA20_POLY1305_SHA256"},
		{false, "TLS_CHACHA20_POLY1305_SHA256", "TLS_CHACHA20_POLY1305_SHA256"},
	};
	unsigned char buf[64];
	struct raw_pair rp;
	size_t n;
	int err;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (raw_open(&rp, cases[i].raw_is_server, cases[i].suites, 0)) {
			CHECK(!"raw_open");
			raw_close(&rp);
			continue;
		}
		CHECK_STR_EQ(SSL_get_cipher_name(rp.raw), cases[i].want);
		CHECK_INT_EQ(raw_exchange(&rp, 1u << 20), 0);
		CHECK_INT_EQ(raw_exchange(&rp, 1), 0);
		/* close_notify both ways */
		tls_close_notify(rp.c);
		CHECK_INT_EQ(raw_read_wait(&rp, buf, sizeof(buf), &n, &err), 0);
		CHECK_INT_EQ(err, SSL_ERROR_ZERO_RETURN);
		CHECK(SSL_shutdown(rp.raw) >= 0);
		CHECK_INT_EQ(read_wait(rp.c, rp.fd[0], buf, sizeof(buf)), 0);
		CHECK_INT_EQ(tls_read(rp.c, buf, sizeof(buf)), 0); /* and stays EOF */
		raw_close(&rp);
	}
}

static void test_record_key_updates(void)
{
	struct raw_pair rp;

	/* The peer updates its key and asks us to update ours: we follow and answer once. */
	if (!raw_open(&rp, false, NULL, 0)) {
		CHECK_INT_EQ(SSL_key_update(rp.raw, SSL_KEY_UPDATE_REQUESTED), 1);
		CHECK_INT_EQ(raw_exchange(&rp, 100000), 0);
		/* Our answer may follow all our data: one more exchange brings it in. */
		CHECK_INT_EQ(raw_exchange(&rp, 1), 0);
		CHECK_INT_EQ(rp.key_updates_in, 1);
		CHECK_INT_EQ(SSL_key_update(rp.raw, SSL_KEY_UPDATE_NOT_REQUESTED), 1);
		CHECK_INT_EQ(raw_exchange(&rp, 100000), 0);
		CHECK_INT_EQ(raw_exchange(&rp, 1), 0);
		CHECK_INT_EQ(rp.key_updates_in, 1);
	}
	raw_close(&rp);

	/* A server's session tickets are dropped; data flows. */
	if (!raw_open(&rp, true, NULL, 2)) {
		CHECK_INT_EQ(rp.tickets_out, 2);
		CHECK_INT_EQ(raw_exchange(&rp, 100000), 0);
	}
	raw_close(&rp);
}

/* Writes len bytes of src through tls_writev in pieces of odd sizes, one to three per call, then
 * tls_flush; the raw side reads as it goes unless !reading (then ours stops at the first
 * -EAGAIN and *len becomes what was taken). 0 when the raw side got exactly those bytes. */
static int writev_run(struct raw_pair *rp, const unsigned char *src, size_t *len, bool reading)
{
	static const size_t sizes[] = {9, 65527, 27, 1, 16384, 5, 40000, 3, 70000, 16375};
	enum { NS = sizeof(sizes) / sizeof(sizes[0]) };
	unsigned char *dst = malloc(*len);
	size_t sent = 0, got = 0, n;
	bool flushed = false, refused = false;
	int calls = 0, ret = -1, err;
	ssize_t w;

	if (!dst)
		die("malloc");
	for (int round = 0; round < 100000 && (!flushed || got < sent); round++) {
		struct pollfd pfd[2] = {{rp->fd[0], POLLOUT, 0}, {rp->fd[1], POLLIN, 0}};
		bool progress = false;
		int ok;

		if (sent < *len && !refused) {
			struct iovec v[3];
			int k = 0, want = 1 + calls % 3;
			size_t t = 0;

			for (; k < want && sent + t < *len; k++) {
				n = sizes[(size_t)(calls + k) % NS];
				n = n < *len - sent - t ? n : *len - sent - t;
				v[k] = (struct iovec){(void *)(src + sent + t), n};
				t += n;
			}
			calls++;
			w = tls_writev(rp->c, v, k);
			if (w == -EAGAIN) {
				refused = !reading; /* all or nothing: none of v was taken */
			} else if (w != (ssize_t)t) {
				fprintf(stderr, "  writev_run: took %zd of %zu\n", w, t);
				goto out;
			} else {
				sent += t;
				progress = true;
			}
		} else if (!flushed) {
			w = tls_flush(rp->c);
			flushed = w == 0;
			if (w && w != -EAGAIN)
				goto out;
		}
		if ((reading || refused || flushed) && got < sent) {
			ok = SSL_read_ex(rp->raw, dst + got, sent - got, &n);
			if (raw_step(rp, ok, n, &got, &progress))
				goto out;
		}
		if (progress)
			continue;
		if (poll(pfd, 2, 2000) <= 0)
			goto out;
	}
	/* nothing more behind what was taken */
	ret = got == sent && flushed && !memcmp(src, dst, got) &&
			      raw_read_wait(rp, dst, 1, &n, &err) == 0 && err == SSL_ERROR_WANT_READ
		      ? 0
		      : -1;
	if (!reading)
		*len = sent;
out:
	if (ret)
		fprintf(stderr, "  writev_run: %zu of %zu, %s\n", got, sent, tls_error(rp->c));
	free(dst);
	return ret;
}

/* tls_writev: whole records straight from the pieces, the last bytes short of one held back
 * until a flush, nothing taken when it says -EAGAIN, held bytes first in whatever follows. */
static void test_record_writev(void)
{
	enum { LEN = 1 << 20 };
	unsigned char *src = malloc(LEN), buf[256];
	struct raw_pair rp;
	size_t len, n;
	int err;

	if (!src)
		die("malloc");
	fill(src, LEN, 0x2545f491u);
	if (raw_open(&rp, true, NULL, 0)) {
		CHECK(!"raw_open");
		goto out;
	}
	/* 300000 bytes: 18 whole records and one of 5088 bytes, sent by the one flush */
	rp.records_in = rp.short_in = 0;
	len = 300000;
	CHECK_INT_EQ(writev_run(&rp, src, &len, true), 0);
	CHECK_INT_EQ(rp.records_in, 19);
	CHECK_INT_EQ(rp.short_in, 1);
	CHECK_INT_EQ(tls_buffered(rp.c), 0);

	/* The raw side reads nothing until ours is refused: then exactly what was taken came. */
	len = LEN;
	CHECK_INT_EQ(writev_run(&rp, src, &len, false), 0);
	CHECK(len > 256 * 1024 && len < LEN);

	/* Held back until something sends: tls_write seals them first, close_notify too. */
	CHECK_INT_EQ(tls_writev(rp.c, &(struct iovec){src, 100}, 1), 100);
	CHECK(tls_write_pending(rp.c));
	CHECK(tls_buffered(rp.c) > 0);
	CHECK_INT_EQ(raw_read_wait(&rp, buf, sizeof(buf), &n, &err), 0);
	CHECK_INT_EQ(err, SSL_ERROR_WANT_READ);
	CHECK_INT_EQ(tls_write(rp.c, src + 100, 50), 50);
	CHECK_INT_EQ(tls_buffered(rp.c), 0);
	for (len = 0; len < 150 && raw_read_wait(&rp, buf + len, 150 - len, &n, &err); len += n)
		;
	CHECK_INT_EQ(len, 150);
	CHECK(!memcmp(buf, src, 150));
	CHECK_INT_EQ(tls_writev(rp.c, &(struct iovec){src + 7, 10}, 1), 10);
	tls_close_notify(rp.c);
	CHECK(raw_read_wait(&rp, buf, sizeof(buf), &n, &err) == 1 && n == 10);
	CHECK(!memcmp(buf, src + 7, 10));
	CHECK_INT_EQ(raw_read_wait(&rp, buf, sizeof(buf), &n, &err), 0);
	CHECK_INT_EQ(err, SSL_ERROR_ZERO_RETURN);
out:
	raw_close(&rp);
	free(src);
}

static void forge_keys(struct raw_pair *rp)
{
	memcpy(rp->fg.secret, rp->wsecret, sizeof(rp->fg.secret));
	if (tls_forge_keys(&rp->fg))
		die("forge key");
}

/* Seals one record as the raw peer would, but with any content: inner type, content, zero
 * padding, and optionally a broken tag. outer_len (0: the right one) overrides the header.
 * Returns the record (malloc'd) and its size in *size. */
static unsigned char *forge_seal(struct raw_pair *rp, unsigned char type, const void *data,
				 size_t len, size_t pad, bool bad_tag, unsigned outer_len,
				 size_t *size)
{
	unsigned char *rec = malloc(5 + len + 1 + pad + 16);

	if (!rec || !(*size = tls_forge_seal(&rp->fg, type, data, len, pad, rec)))
		die("forge");
	if (bad_tag)
		rec[*size - 1] ^= 0x40;
	if (outer_len) {
		rec[3] = (unsigned char)(outer_len >> 8);
		rec[4] = (unsigned char)outer_len;
	}
	return rec;
}

/* Writes one forged record (see forge_seal). */
static void forge(struct raw_pair *rp, unsigned char type, const void *data, size_t len, size_t pad,
		  bool bad_tag, unsigned outer_len)
{
	size_t n;
	unsigned char *rec = forge_seal(rp, type, data, len, pad, bad_tag, outer_len, &n);

	if (write(rp->fd[1], rec, n) != (ssize_t)n)
		die("forge write");
	free(rec);
}

/* The forged direction's next key, after a KeyUpdate. */
static void forge_keys_next(struct raw_pair *rp)
{
	if (tls_forge_next(&rp->fg))
		die("forge key update");
}

/* A raw client whose records we forge from here on (its own SSL never writes again). */
static int forge_open(struct raw_pair *rp)
{
	if (raw_open(rp, false, "TLS_AES_128_GCM_SHA256", 0) || rp->wsecret_len != 32)
		return -1;
	forge_keys(rp);
	return 0;
}

/* Our side must fail with -EPROTO and `why`, say `alert` to the raw peer, and stay failed. */
static void expect_record_error(const char *name, struct raw_pair *rp, const char *why,
				const char *alert)
{
	unsigned char buf[256];
	unsigned long e;
	size_t n;
	int err;
	ssize_t r = read_wait(rp->c, rp->fd[0], buf, sizeof(buf));

	CHECK_INT_EQ(r, -EPROTO);
	CHECK_STR_CONTAINS(tls_error(rp->c), why);
	if (r != -EPROTO || !strstr(tls_error(rp->c), why) || getenv("NTUN_TEST_VERBOSE"))
		fprintf(stderr, "  %s: %zd %s\n", name, r, tls_error(rp->c));
	CHECK_INT_EQ(tls_read(rp->c, buf, sizeof(buf)), -EPROTO);
	CHECK_INT_EQ(tls_write(rp->c, "x", 1), -EPROTO);
	if (!alert)
		return;
	CHECK_INT_EQ(raw_read_wait(rp, buf, sizeof(buf), &n, &err), 0);
	CHECK_INT_EQ(err, SSL_ERROR_SSL);
	e = ERR_peek_error();
	CHECK_STR_CONTAINS(ERR_reason_error_string(e) ? ERR_reason_error_string(e) : "", alert);
	ERR_clear_error();
}

static void test_record_input(void)
{
	static unsigned char big[16385];
	/* One forged record each, on a fresh connection: what we must say, and the alert the
	 * peer must get. */
	static const struct {
		const char *name;
		unsigned char type;
		const void *data;
		size_t len, pad;
		bool bad_tag;
		unsigned outer_len;
		const char *why, *alert;
	} bad[] = {
		{"bad tag", 23, "hello", 5, 0, true, 0, "bad record mac", "bad record mac"},
		{"content type", 99, "hello", 5, 0, false, 0, "bad record type",
		 "unexpected message"},
		{"no type", 0, "", 0, 20, false, 0, "bad record type", "unexpected message"},
		{"content over 2^14", 23, big, sizeof(big), 0, false, 0, "data length too long",
		 "record overflow"},
		{"length over 2^14+256", 23, "hello", 5, 0, false, 16641,
		 "encrypted length too long", "record overflow"},
		{"peer alert", 21, "\x02\x28", 2, 0, false, 0,
		 "peer sent an alert: SSL routines: sslv3 alert handshake failure", NULL},
		{"KeyUpdate value", 22, "\x18\x00\x00\x01\x02", 5, 0, false, 0, "bad key update",
		 "illegal parameter"},
		{"KeyUpdate mid-record", 22, "\x18\x00\x00\x01\x00x", 6, 0, false, 0,
		 "not on record boundary", "unexpected message"},
		{"ticket from a client", 22, "\x04\x00\x00\x00", 4, 0, false, 0,
		 "unexpected message", "unexpected message"},
	};
	unsigned char buf[256];
	struct raw_pair rp;

	/* The forger first: well-formed records read back, with padding and an empty record. */
	if (!forge_open(&rp)) {
		forge(&rp, 23, "hello", 5, 0, false, 0);
		forge(&rp, 23, "", 0, 0, false, 0);
		forge(&rp, 23, " world", 6, 100, false, 0);
		CHECK_INT_EQ(read_wait(rp.c, rp.fd[0], buf, sizeof(buf)), 11);
		CHECK(!memcmp(buf, "hello world", 11));
		/* A KeyUpdate split over two records, then data under the next key. */
		forge(&rp, 22, "\x18\x00", 2, 0, false, 0);
		forge(&rp, 22, "\x00\x01\x00", 3, 0, false, 0);
		forge_keys_next(&rp);
		forge(&rp, 23, "after", 5, 0, false, 0);
		forge(&rp, 21, "\x01\x5a", 2, 0, false, 0); /* user_canceled, a warning: ignored */
		CHECK_INT_EQ(read_wait(rp.c, rp.fd[0], buf, sizeof(buf)), 5);
		CHECK(!memcmp(buf, "after", 5));
		forge(&rp, 21, "\x01\x00", 2, 0, false, 0); /* close_notify */
		CHECK_INT_EQ(read_wait(rp.c, rp.fd[0], buf, sizeof(buf)), 0);
		CHECK_INT_EQ(tls_write(rp.c, "still", 5), 5); /* half-closed: we may still send */
	}
	raw_close(&rp);

	memset(big, 'b', sizeof(big));
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (!forge_open(&rp)) {
			forge(&rp, bad[i].type, bad[i].data, bad[i].len, bad[i].pad, bad[i].bad_tag,
			      bad[i].outer_len);
			expect_record_error(bad[i].name, &rp, bad[i].why, bad[i].alert);
		}
		raw_close(&rp);
	}
	/* Two records: data between the parts of a handshake message. */
	if (!forge_open(&rp)) {
		forge(&rp, 22, "\x18\x00", 2, 0, false, 0);
		forge(&rp, 23, "x", 1, 0, false, 0);
		expect_record_error("data inside a handshake message", &rp,
				    "mixed handshake and non handshake data", "unexpected message");
	}
	raw_close(&rp);
	/* A plaintext record (ChangeCipherSpec) after the handshake. */
	if (!forge_open(&rp)) {
		static const unsigned char ccs[] = {20, 3, 3, 0, 1, 1};

		CHECK_INT_EQ(write(rp.fd[1], ccs, sizeof(ccs)), (ssize_t)sizeof(ccs));
		expect_record_error("unprotected record", &rp, "bad record type",
				    "unexpected message");
	}
	raw_close(&rp);
}

/* ---- floods: OpenSSL's limits on what a peer may make us do without data -------------------
 *
 * A raw client that never reads sends one kind of record without end: KeyUpdates that ask for
 * ours, empty application-data records, or warning alerts. Ours must fail with OpenSSL's
 * reason within a bounded number of records, no tls_read may work through more than one
 * read(2) of the socket's bytes, and the connection's buffers must stay bounded. */
enum flood_kind { FLOOD_KEY_UPDATE, FLOOD_KEY_UPDATE_DATA, FLOOD_EMPTY, FLOOD_WARNING };

struct flood {
	size_t sent;	      /* records the raw client wrote */
	size_t taken;	      /* bytes ours took from the socket before it failed */
	size_t most_taken;    /* the most one tls_read took */
	double slowest_ms;    /* the longest one tls_read took */
	size_t most_buffered; /* the most tls_buffered said */
	ssize_t r;	      /* how ours ended: its error, or -EAGAIN if it never failed */
};

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static unsigned char *flood_record(struct raw_pair *rp, enum flood_kind kind, size_t *size)
{
	unsigned char *rec;

	if (kind == FLOOD_KEY_UPDATE_DATA && rp->fg.seq % 32 == 0)
		return forge_seal(rp, 23, "x", 1, 0, false, 0, size); /* data between them */
	switch (kind) {
	case FLOOD_KEY_UPDATE_DATA:
	case FLOOD_KEY_UPDATE: /* update_requested: each one asks ours for an answer */
		rec = forge_seal(rp, 22, "\x18\x00\x00\x01\x01", 5, 0, false, 0, size);
		forge_keys_next(rp);
		return rec;
	case FLOOD_EMPTY:
		return forge_seal(rp, 23, "", 0, 0, false, 0, size);
	default: /* user_canceled, a warning */
		return forge_seal(rp, 21, "\x01\x5a", 2, 0, false, 0, size);
	}
}

/* Writes up to max records of one kind while the socket takes them (several to a write, as
 * a real flood would come), then lets ours make one tls_read; again until ours fails, all went
 * and were taken, or nothing moves. */
static void flood_run(struct raw_pair *rp, enum flood_kind kind, size_t max, struct flood *f)
{
	unsigned char buf[4096], batch[16384], *rec;
	size_t size, len = 0, off = 0, taken;
	int before, after, stuck = 0;
	double t;
	ssize_t w;
	bool wrote;

	memset(f, 0, sizeof(*f));
	f->r = -EAGAIN;
	for (int round = 0; round < 10000000 && f->r == -EAGAIN; round++) {
		wrote = false;
		for (;;) {
			if (off == len) {
				for (off = len = 0; f->sent < max && len + 64 <= sizeof(batch);
				     f->sent++, len += size) {
					rec = flood_record(rp, kind, &size);
					memcpy(batch + len, rec, size);
					free(rec);
				}
				if (!len)
					break;
			}
			w = write(rp->fd[1], batch + off, len - off);
			if (w < 0 && errno == EAGAIN)
				break;
			if (w <= 0)
				die("flood write");
			off += (size_t)w;
			wrote = true;
		}
		if (ioctl(rp->fd[0], FIONREAD, &before))
			die("FIONREAD");
		t = now_ms();
		f->r = tls_read(rp->c, buf, sizeof(buf));
		t = now_ms() - t;
		if (ioctl(rp->fd[0], FIONREAD, &after))
			die("FIONREAD");
		taken = (size_t)(before - after);
		f->taken += taken;
		f->most_taken = taken > f->most_taken ? taken : f->most_taken;
		f->slowest_ms = t > f->slowest_ms ? t : f->slowest_ms;
		if (tls_buffered(rp->c) > f->most_buffered)
			f->most_buffered = tls_buffered(rp->c);
		if (f->r > 0)
			f->r = kind == FLOOD_KEY_UPDATE_DATA ? -EAGAIN : -EIO;
		if (f->r == -EAGAIN && !taken && !tls_pending(rp->c))
			break; /* all taken, or the socket is full and ours takes nothing */
		/* Ours holds a pending answer it cannot write and the flooder cannot write either:
		 * nothing moves any more (without this the loop spun its 10 million rounds). */
		stuck = f->r == -EAGAIN && !taken && !wrote ? stuck + 1 : 0;
		if (stuck >= 100)
			break;
	}
}

static void test_floods(void)
{
	static const struct {
		const char *name;
		enum flood_kind kind;
		ssize_t r;
		const char *why;
		size_t max_taken; /* bytes ours may take from the socket before it fails */
	} cases[] = {
		/* OpenSSL 3.0 has no limit of its own on KeyUpdates: ours, 64 records in a row
		 * without data. */
		{"KeyUpdate flood", FLOOD_KEY_UPDATE, -EPROTO, "records in a row without data",
		 64 * 1024},
		/* With a byte of data after every 31: each asks for an answer, which the socket
		 * holds until it is full (about 200 KiB here), then ours 64 KiB more; a request is
		 * as large as its answer (27 bytes). */
		{"KeyUpdate flood with data", FLOOD_KEY_UPDATE_DATA, -ENOBUFS,
		 "does not read the answers", 1024 * 1024},
		/* OpenSSL's limits: 32 empty records, 5 warnings in a row. Ours reads the socket
		 * 64 KiB at a time: it took at most one such read before failing. */
		{"empty record flood", FLOOD_EMPTY, -EPROTO, "record too small", 64 * 1024},
		{"warning alert flood", FLOOD_WARNING, -EPROTO, "too many warn alerts", 64 * 1024},
	};
	/* No tls_read takes more than one read(2) of the socket's bytes (a read that spins on
	 * the flood takes its whole backlog in one call: the byte bound catches that exactly;
	 * the time bound is loose because the machine is loaded). Memory: the read buffer, 64
	 * KiB of answers, OpenSSL's record buffers, far below the 1 MiB bound; 100,000 records
	 * would make a read layer without limits hold megabytes of answers. */
	const size_t max_one_read = 64 * 1024 + 64, max_buffered = 1024 * 1024;
	struct raw_pair rp;
	struct flood f;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (forge_open(&rp)) {
			CHECK(!"forge_open");
			raw_close(&rp);
			continue;
		}
		/* When OpenSSL writes to the socket itself, its answers wait there: once the
		 * socket is full, ours stops reading until it can write (and holds nothing). */
		bool stops = raw_socket_io && cases[i].kind == FLOOD_KEY_UPDATE_DATA;
		ssize_t want = stops ? -EAGAIN : cases[i].r;

		flood_run(&rp, cases[i].kind, 100000, &f);
		if (getenv("NTUN_TEST_VERBOSE") || f.r != want || f.taken > cases[i].max_taken ||
		    f.most_taken > max_one_read || f.most_buffered > max_buffered)
			fprintf(stderr,
				"  %s%s: %zd (%s) after %zu records sent, %zu bytes taken (at most "
				"%zu in %.1f ms by one read), %zu bytes buffered at most\n",
				cases[i].name, raw_socket_io ? " (socket_io)" : "", f.r,
				tls_error(rp.c), f.sent, f.taken, f.most_taken, f.slowest_ms,
				f.most_buffered);
		CHECK_INT_EQ(f.r, want);
		if (stops) {
			CHECK_INT_EQ(tls_want(rp.c), TLS_WANT_WRITE);
			raw_close(&rp);
			continue;
		}
		CHECK_STR_CONTAINS(tls_error(rp.c), cases[i].why);
		CHECK(f.taken <= cases[i].max_taken);
		CHECK(f.most_taken <= max_one_read);
		CHECK(f.most_buffered <= max_buffered);
		CHECK(f.slowest_ms < 1000);
		CHECK_INT_EQ(tls_write(rp.c, "x", 1), cases[i].r); /* it stays failed */
		raw_close(&rp);
	}
}

/* ---- main ------------------------------------------------------------------------------- */

static int rm_one(const char *fpath, const struct stat *sb, int type, struct FTW *ftw)
{
	return remove(fpath);
}

int main(void)
{
	const char *base = getenv("TMPDIR");

	signal(SIGPIPE, SIG_IGN);
	gencerts = getenv("NTUN_GENCERTS");
	if (!gencerts || !*gencerts)
		gencerts = NTUN_GENCERTS_PATH;
	if (!gencerts || access(gencerts, X_OK))
		die("ntun-gencerts not found: build target ntun-gencerts or set NTUN_GENCERTS");
	snprintf(tmp, sizeof(tmp), "%s/ntun-test-tls.XXXXXX", base && *base ? base : "/tmp");
	if (!mkdtemp(tmp))
		die("mkdtemp");

	test_gencerts();
	craft_certs();
	test_ctx();
	test_handshakes();
	test_server_name();
	test_conn_server_name();
	test_raw_peers();
	for (int i = 0; i < 2; i++) {
		raw_socket_io = i;
		test_data(raw_socket_io);
		test_record_suites();
		test_record_key_updates();
		test_record_writev();
		test_floods();
	}
	raw_socket_io = false;
	test_record_input();

	if (getenv("NTUN_KEEP_TMP"))
		fprintf(stderr, "test_tls: kept %s\n", tmp);
	else
		nftw(tmp, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	return check_done("test_tls");
}
