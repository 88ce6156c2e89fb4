// SPDX-License-Identifier: MIT
/* Mutual TLS 1.3 over OpenSSL with SPIFFE role checks in the verify callback and ALPN h2 only.
 * OpenSSL seals and opens every record (the kernel does, where it offers kernel TLS). Does no
 * polling or logging of its own: callers drive it from their event loop. */
#include "tls.h"

#include "buf.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <netinet/in.h>
#include <netinet/tcp.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

/*
 * Invariant: every function here leaves this thread's OpenSSL error queue empty, so the I/O
 * paths can call SSL_get_error() without an ERR_clear_error() on every read and write.
 * OpenSSL is used by no other module (STYLE.md), so nobody else leaves errors behind.
 */

#define TLS_ROLES_VALID                                                  \
	(TLS_ROLE_BIT(TLS_ROLE_SERVER) | TLS_ROLE_BIT(TLS_ROLE_CLIENT) | \
	 TLS_ROLE_BIT(TLS_ROLE_PROXY))
#define TLS_ERR_LEN 384
/* One read(2) of up to this much feeds many records. */
#define TLS_RBUF_SIZE (64 * 1024)

/* TLS 1.3 record sizes (RFC 8446 5.1, 5.2): header, content and ciphertext limits. */
#define REC_HDR	       5
#define REC_MAX_PLAIN  16384
#define REC_MAX_CIPHER (REC_MAX_PLAIN + 256)

struct tls_ctx {
	SSL_CTX *ssl_ctx;
	atomic_uint refs; /* the owner's reference plus one per live tls_conn */
	bool is_server;
	unsigned accept_roles;
	bool sni;
	bool insecure;
	char server_name[256];
	char trust_domain[sizeof(((struct tls_identity *)0)->trust_domain)];
	struct tls_identity self;
	bool sock_io; /* connections let OpenSSL write to the socket itself (see tls_conn_new) */
};

struct tls_conn {
	SSL *ssl;
	struct tls_ctx *ctx;
	int fd;
	bool sock_io;	 /* OpenSSL writes to fd itself (a socket BIO: kernel TLS possible) */
	struct buf wout; /* records not yet on the socket (out_bio_write; not with sock_io) */
	struct buf tail; /* bytes not given to OpenSSL yet: see tls_writev */
	uint8_t *rbuf;	 /* bytes read from the socket, not yet taken by OpenSSL (in_bio_read) */
	size_t rhead, rtail;
	bool no_refill;	       /* in_bio_read: tls_read has data already, no read(2) now */
	bool reading;	       /* inside SSL_read_ex: what OpenSSL writes now is its own answer */
	size_t answers;	       /* bytes of those answers in wout (0 once wout empties) */
	unsigned idle_records; /* records opened since the last one that gave data */
	unsigned call_records; /* records opened by this tls_read */
	unsigned ktls;	       /* TLS_KTLS_* */
	unsigned want;
	int fatal;  /* sticky -errno once the connection is unusable; 0 while healthy */
	bool done;  /* handshake complete and checked */
	bool hello; /* server: a whole first record came (see first_record_in) */
	bool lowat; /* SO_RCVLOWAT raised until it did */
	bool notified;
	char reason[TLS_ERR_LEN]; /* why our own checks failed, set in callbacks */
	char err[TLS_ERR_LEN];
	struct tls_identity peer;
	char *server_name; /* tls_conn_set_server_name's, else NULL (the context's) */
};

static const char *const role_names[] = {"none", "server", "client", "proxy"};

const char *tls_role_name(enum tls_role r)
{
	if ((unsigned)r >= sizeof(role_names) / sizeof(role_names[0]))
		return "none";
	return role_names[r];
}

static void roles_str(unsigned roles, char *buf, size_t n)
{
	size_t off = 0;

	buf[0] = '\0';
	for (enum tls_role r = TLS_ROLE_SERVER; r <= TLS_ROLE_PROXY; r++) {
		if (!(roles & TLS_ROLE_BIT(r)) || off >= n)
			continue;
		off += snprintf(buf + off, n - off, "%s%s", off ? "|" : "", tls_role_name(r));
	}
}

/* Appends the drained OpenSSL error queue to dst[off..]: "lib: reason (data); ...". The queue
 * is empty afterwards. *alert is set when one entry is a TLS alert the peer sent us. */
static void drain_errors(char *dst, size_t n, size_t off, bool *alert)
{
	const char *data, *lib, *reason;
	bool first = true;
	unsigned long e;
	int flags;

	while ((e = ERR_get_error_all(NULL, NULL, NULL, &data, &flags))) {
		if (off >= n)
			continue;
		lib = ERR_lib_error_string(e);
		reason = ERR_reason_error_string(e);
		if (alert && ERR_GET_LIB(e) == ERR_LIB_SSL &&
		    ERR_GET_REASON(e) >= SSL_AD_REASON_OFFSET)
			*alert = true;
		off += snprintf(dst + off, n - off, "%s%s%s", first ? "" : "; ", lib ? lib : "",
				lib ? ": " : "");
		first = false;
		if (off >= n)
			continue;
		if (reason)
			off += snprintf(dst + off, n - off, "%s", reason);
		else
			off += snprintf(dst + off, n - off, "error %#lx", e);
		if (off < n && (flags & ERR_TXT_STRING) && data && *data)
			off += snprintf(dst + off, n - off, " (%s)", data);
	}
}

/* ---- SPIFFE IDs ------------------------------------------------------------------------- */

static bool td_char(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '.' || ch == '-' ||
	       ch == '_';
}

static bool id_char(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
	       ch == '.' || ch == '-' || ch == '_';
}

static bool trust_domain_valid(const char *td)
{
	size_t len = strlen(td);

	if (!len || len >= sizeof(((struct tls_identity *)0)->trust_domain))
		return false;
	for (size_t i = 0; i < len; i++)
		if (!td_char(td[i]))
			return false;
	return true;
}

/* Parses "spiffe://td/role/id" (len bytes, not NUL-terminated) into id. Returns 0 or -EINVAL
 * with the reason in why. */
static int spiffe_parse(const char *s, size_t len, struct tls_identity *id, char *why, size_t n)
{
	static const char scheme[] = "spiffe://";
	const char *p, *end = s + len, *slash;
	size_t seg;
	int role;

	memset(id, 0, sizeof(*id));
	if (len >= sizeof(id->uri) || memchr(s, '\0', len)) {
		snprintf(why, n, "SPIFFE URI too long or malformed");
		return -EINVAL;
	}
	memcpy(id->uri, s, len);
	if (len < sizeof(scheme) - 1 || memcmp(s, scheme, sizeof(scheme) - 1)) {
		snprintf(why, n, "'%.120s' is not a spiffe:// URI", id->uri);
		return -EINVAL;
	}
	p = s + sizeof(scheme) - 1;
	slash = memchr(p, '/', (size_t)(end - p));
	seg = slash ? (size_t)(slash - p) : (size_t)(end - p);
	if (!seg || seg >= sizeof(id->trust_domain))
		goto bad;
	for (size_t i = 0; i < seg; i++)
		if (!td_char(p[i]))
			goto bad;
	memcpy(id->trust_domain, p, seg);
	if (!slash)
		goto bad;
	p = slash + 1;
	slash = memchr(p, '/', (size_t)(end - p));
	if (!slash)
		goto bad;
	seg = (size_t)(slash - p);
	for (role = TLS_ROLE_SERVER; role <= TLS_ROLE_PROXY; role++)
		if (seg == strlen(role_names[role]) && !memcmp(p, role_names[role], seg))
			break;
	if (role > TLS_ROLE_PROXY) {
		snprintf(why, n,
			 "SPIFFE ID '%.120s' has no known role (want server, client or proxy)",
			 id->uri);
		memset(id->trust_domain, 0, sizeof(id->trust_domain));
		return -EINVAL;
	}
	p = slash + 1;
	seg = (size_t)(end - p);
	if (!seg || seg >= sizeof(id->id) || (seg == 1 && p[0] == '.') ||
	    (seg == 2 && p[0] == '.' && p[1] == '.'))
		goto bad;
	for (size_t i = 0; i < seg; i++)
		if (!id_char(p[i]))
			goto bad;
	memcpy(id->id, p, seg);
	id->role = (enum tls_role)role;
	return 0;
bad:
	snprintf(why, n, "'%.120s' is not a valid SPIFFE ID spiffe://<trust-domain>/<role>/<id>",
		 id->uri);
	memset(id->trust_domain, 0, sizeof(id->trust_domain));
	return -EINVAL;
}

/* Reads the single spiffe:// URI SAN of cert into id. Returns 0 or -EINVAL with why set. */
static int identity_from_cert(X509 *cert, struct tls_identity *id, char *why, size_t n)
{
	const ASN1_IA5STRING *uri = NULL;
	GENERAL_NAMES *gens;
	int crit = 0, count = 0, ret;

	memset(id, 0, sizeof(*id));
	gens = X509_get_ext_d2i(cert, NID_subject_alt_name, &crit, NULL);
	if (!gens) {
		snprintf(why, n,
			 crit == -1 ? "no subjectAltName (want a SPIFFE URI SAN)"
				    : "unreadable subjectAltName");
		ret = -EINVAL;
		goto out;
	}
	for (int i = 0; i < sk_GENERAL_NAME_num(gens); i++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);

		if (g->type != GEN_URI)
			continue;
		if (ASN1_STRING_length(g->d.uniformResourceIdentifier) >= 9 &&
		    !strncasecmp(
			    (const char *)ASN1_STRING_get0_data(g->d.uniformResourceIdentifier),
			    "spiffe://", 9)) {
			uri = g->d.uniformResourceIdentifier;
			count++;
		}
	}
	if (count != 1) {
		snprintf(why, n,
			 count ? "%d SPIFFE URI SANs (want exactly one)"
			       : "no SPIFFE URI SAN (want spiffe://<trust-domain>/<role>/<id>)",
			 count);
		ret = -EINVAL;
		goto out;
	}
	ret = spiffe_parse((const char *)ASN1_STRING_get0_data(uri),
			   (size_t)ASN1_STRING_length(uri), id, why, n);
out:
	GENERAL_NAMES_free(gens);
	ERR_clear_error();
	return ret;
}

/* ---- handshake callbacks ---------------------------------------------------------------- */

static const char *verify_hint(long e)
{
	switch (e) {
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
	case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
	case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
	case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
		return " (unknown CA: not signed by our ca_file)";
	case X509_V_ERR_INVALID_PURPOSE:
		return " (wrong extendedKeyUsage for this side of the connection)";
	default:
		return "";
	}
}

static int verify_cb(int ok, X509_STORE_CTX *store)
{
	SSL *ssl = X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx());
	struct tls_conn *c = SSL_get_app_data(ssl);
	struct tls_ctx *ctx = c->ctx;
	struct tls_identity id;
	char why[TLS_ERR_LEN / 2], want[32];
	long e;

	if (!ok) {
		e = X509_STORE_CTX_get_error(store);
		if (!c->reason[0]) {
			snprintf(c->reason, sizeof(c->reason),
				 "peer certificate verify failed at depth %d: %s%s",
				 X509_STORE_CTX_get_error_depth(store),
				 X509_verify_cert_error_string(e), verify_hint(e));
			if (e == X509_V_ERR_HOSTNAME_MISMATCH ||
			    e == X509_V_ERR_IP_ADDRESS_MISMATCH)
				snprintf(c->reason + strlen(c->reason),
					 sizeof(c->reason) - strlen(c->reason),
					 " (want server_name '%s' in its DNS/IP SAN)",
					 c->server_name ? c->server_name : ctx->server_name);
		}
		return 0;
	}
	if (X509_STORE_CTX_get_error_depth(store) != 0)
		return 1;
	if (identity_from_cert(X509_STORE_CTX_get_current_cert(store), &id, why, sizeof(why))) {
		snprintf(c->reason, sizeof(c->reason), "peer certificate: %s", why);
		goto reject;
	}
	if (strcmp(id.trust_domain, ctx->trust_domain)) {
		snprintf(c->reason, sizeof(c->reason),
			 "peer certificate trust domain '%s' not accepted (want '%s')",
			 id.trust_domain, ctx->trust_domain);
		goto reject;
	}
	if (!(ctx->accept_roles & TLS_ROLE_BIT(id.role))) {
		roles_str(ctx->accept_roles, want, sizeof(want));
		snprintf(c->reason, sizeof(c->reason),
			 "peer certificate role '%s' not accepted (want %s)",
			 tls_role_name(id.role), want);
		goto reject;
	}
	c->peer = id;
	return 1;
reject:
	/* CERT_REJECTED makes OpenSSL send a bad_certificate alert. */
	X509_STORE_CTX_set_error(store, X509_V_ERR_CERT_REJECTED);
	return 0;
}

/* Server: a ClientHello without the ALPN extension never reaches the select callback. */
static int client_hello_cb(SSL *ssl, int *al, void *arg)
{
	struct tls_conn *c = SSL_get_app_data(ssl);
	const unsigned char *p;
	size_t len;

	if (SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_application_layer_protocol_negotiation, &p,
				      &len))
		return SSL_CLIENT_HELLO_SUCCESS;
	snprintf(c->reason, sizeof(c->reason), "peer offered no ALPN protocol (want h2)");
	*al = SSL_AD_NO_APPLICATION_PROTOCOL;
	return SSL_CLIENT_HELLO_ERROR;
}

static int alpn_select_cb(SSL *ssl, const unsigned char **out, unsigned char *outlen,
			  const unsigned char *in, unsigned int inlen, void *arg)
{
	struct tls_conn *c = SSL_get_app_data(ssl);

	for (unsigned i = 0; i < inlen; i += 1u + in[i]) {
		if (in[i] == 2 && i + 3 <= inlen && in[i + 1] == 'h' && in[i + 2] == '2') {
			*out = in + i + 1;
			*outlen = 2;
			return SSL_TLSEXT_ERR_OK;
		}
	}
	snprintf(c->reason, sizeof(c->reason), "peer did not offer ALPN h2");
	return SSL_TLSEXT_ERR_ALERT_FATAL;
}

/* ---- contexts --------------------------------------------------------------------------- */

/* A clean "cannot read F: strerror" before OpenSSL's noisier file errors. */
static int check_readable(const char *what, const char *path, char *err, size_t errsz)
{
	int fd;

	if (!path || !*path) {
		snprintf(err, errsz, "tls: no %s file configured", what);
		return -EINVAL;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;

		snprintf(err, errsz, "tls: cannot read %s file %s: %s", what, path, strerror(e));
		return -e;
	}
	close(fd);
	return 0;
}

/* Formats the message, then appends the drained OpenSSL error queue to it. */
static void __attribute__((format(printf, 3, 4)))
ctx_fail(char *err, size_t errsz, const char *fmt, ...)
{
	va_list ap;
	int off;

	va_start(ap, fmt);
	off = vsnprintf(err, errsz, fmt, ap);
	va_end(ap);
	if (off >= 0 && (size_t)off < errsz)
		drain_errors(err, errsz, (size_t)off, NULL);
	ERR_clear_error();
}

/* True when the kernel has TLS: its "tls" TCP upper layer exists (or loads on demand). Asked
 * once per process on a socket that is not connected, which the layer refuses with ENOTCONN
 * when it exists and the kernel with ENOENT when it does not. */
static bool kernel_has_tls(void)
{
	static atomic_int known; /* 0 not asked yet, 1 no, 2 yes */
	int fd, k = atomic_load(&known);

	if (!k) {
		k = 1;
		fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd >= 0) {
			if (!setsockopt(fd, IPPROTO_TCP, TCP_ULP, "tls", sizeof("tls")) ||
			    errno != ENOENT)
				k = 2;
			close(fd);
		}
		atomic_store(&known, k);
	}
	return k == 2;
}

static void ctx_put(struct tls_ctx *ctx)
{
	if (atomic_fetch_sub(&ctx->refs, 1) != 1)
		return;
	SSL_CTX_free(ctx->ssl_ctx);
	free(ctx);
}

struct tls_ctx *tls_ctx_new(const struct tls_ctx_opts *o, char *err, size_t errsz)
{
	static const unsigned char alpn_h2[] = {2, 'h', '2'};
	struct tls_ctx *ctx = NULL;
	SSL_CTX *sc;
	char why[TLS_ERR_LEN / 2];
	unsigned char ipbuf[16];
	unsigned long e;

	if (errsz)
		err[0] = '\0';
	if (!o->accept_roles || (o->accept_roles & ~TLS_ROLES_VALID)) {
		snprintf(err, errsz, "tls: accept_roles %#x is empty or invalid", o->accept_roles);
		goto err;
	}
	if (check_readable("certificate", o->cert_file, err, errsz) ||
	    check_readable("key", o->key_file, err, errsz) ||
	    check_readable("CA", o->ca_file, err, errsz))
		goto err;
	ctx = calloc(1, sizeof(*ctx));
	if (!ctx) {
		snprintf(err, errsz, "tls: out of memory");
		goto err;
	}
	atomic_init(&ctx->refs, 1);
	ctx->is_server = o->is_server;
	ctx->accept_roles = o->accept_roles;
	ctx->insecure = o->insecure;
	sc = ctx->ssl_ctx = SSL_CTX_new(o->is_server ? TLS_server_method() : TLS_client_method());
	if (!sc) {
		ctx_fail(err, errsz, "tls: SSL_CTX_new failed: ");
		goto err;
	}
	if (!SSL_CTX_set_min_proto_version(sc, TLS1_3_VERSION) ||
	    !SSL_CTX_set_max_proto_version(sc, TLS1_3_VERSION)) {
		ctx_fail(err, errsz, "tls: cannot restrict to TLS 1.3: ");
		goto err;
	}
	SSL_CTX_set_options(sc, SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_TICKET |
					SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
	/* Where the kernel has TLS, OpenSSL hands it the sending keys after the handshake and the
	 * kernel seals the records (OpenSSL 3.0 does not give it TLS 1.3's receiving keys): OpenSSL
	 * must then write to the socket itself. Elsewhere an output buffer of ours saves system
	 * calls (see "connections"). */
	ctx->sock_io = o->socket_io || kernel_has_tls();
	if (ctx->sock_io)
		SSL_CTX_set_options(sc, SSL_OP_ENABLE_KTLS);
	/* NO_AUTO_CHAIN: send what cert_file holds (leaf + intermediates), not the root too. */
	SSL_CTX_set_mode(sc, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
				     SSL_MODE_RELEASE_BUFFERS | SSL_MODE_NO_AUTO_CHAIN);
	/* AES-128-GCM first (then AES-256-GCM, ChaCha20): the TLS 1.3 mandatory suite, about a
	 * quarter less CPU per byte than AES-256 with AES-NI, and every byte of a tunnel is
	 * sealed and opened twice. The server's order decides. */
	if (!SSL_CTX_set_ciphersuites(sc, "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:"
					  "TLS_CHACHA20_POLY1305_SHA256")) {
		ctx_fail(err, errsz, "tls: cannot set TLS 1.3 cipher suites: ");
		goto err;
	}
	SSL_CTX_set_options(sc, SSL_OP_CIPHER_SERVER_PREFERENCE);
	SSL_CTX_set_num_tickets(sc, 0);
	SSL_CTX_set_session_cache_mode(sc, SSL_SESS_CACHE_OFF);

	if (SSL_CTX_use_certificate_chain_file(sc, o->cert_file) != 1) {
		ctx_fail(err, errsz, "tls: certificate %s: ", o->cert_file);
		goto err;
	}
	/* OpenSSL reads the key straight into its own EVP_PKEY; no copy of the file stays here. */
	if (SSL_CTX_use_PrivateKey_file(sc, o->key_file, SSL_FILETYPE_PEM) != 1) {
		e = ERR_peek_last_error();
		if (ERR_GET_LIB(e) == ERR_LIB_X509 &&
		    ERR_GET_REASON(e) == X509_R_KEY_VALUES_MISMATCH)
			ctx_fail(err, errsz,
				 "tls: key %s does not match certificate %s: ", o->key_file,
				 o->cert_file);
		else
			ctx_fail(err, errsz, "tls: key %s: ", o->key_file);
		goto err;
	}
	if (SSL_CTX_check_private_key(sc) != 1) {
		ctx_fail(err, errsz, "tls: key %s does not match certificate %s: ", o->key_file,
			 o->cert_file);
		goto err;
	}
	if (SSL_CTX_load_verify_file(sc, o->ca_file) != 1) {
		ctx_fail(err, errsz, "tls: CA file %s: ", o->ca_file);
		goto err;
	}
	if (identity_from_cert(SSL_CTX_get0_certificate(sc), &ctx->self, why, sizeof(why))) {
		snprintf(err, errsz, "tls: certificate %s: %s", o->cert_file, why);
		goto err;
	}
	if (o->trust_domain && !trust_domain_valid(o->trust_domain)) {
		snprintf(err, errsz, "tls: invalid trust domain '%s' (want [a-z0-9._-]+)",
			 o->trust_domain);
		goto err;
	}
	snprintf(ctx->trust_domain, sizeof(ctx->trust_domain), "%s",
		 o->trust_domain ? o->trust_domain : ctx->self.trust_domain);

	SSL_CTX_set_verify(sc,
			   SSL_VERIFY_PEER | (o->is_server ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0),
			   verify_cb);
	SSL_CTX_set_verify_depth(sc, 8);
	if (o->is_server) {
		SSL_CTX_set_client_hello_cb(sc, client_hello_cb, NULL);
		SSL_CTX_set_alpn_select_cb(sc, alpn_select_cb, NULL);
	} else if (SSL_CTX_set_alpn_protos(sc, alpn_h2, sizeof(alpn_h2))) { /* 0 is success */
		ctx_fail(err, errsz, "tls: cannot set ALPN: ");
		goto err;
	}

	if (!o->is_server && o->server_name && *o->server_name) {
		X509_VERIFY_PARAM *param = SSL_CTX_get0_param(sc);
		bool is_ip = inet_pton(AF_INET, o->server_name, ipbuf) == 1 ||
			     inet_pton(AF_INET6, o->server_name, ipbuf) == 1;

		if (strlen(o->server_name) >= sizeof(ctx->server_name)) {
			snprintf(err, errsz, "tls: server_name too long");
			goto err;
		}
		snprintf(ctx->server_name, sizeof(ctx->server_name), "%s", o->server_name);
		ctx->sni = !is_ip; /* SNI carries host names only (RFC 6066) */
		if (!o->insecure) {
			int okp;

			X509_VERIFY_PARAM_set_hostflags(param,
							X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
			okp = is_ip ? X509_VERIFY_PARAM_set1_ip_asc(param, o->server_name)
				    : X509_VERIFY_PARAM_set1_host(param, o->server_name, 0);
			if (okp != 1) {
				ctx_fail(err, errsz,
					 "tls: invalid server_name '%s': ", o->server_name);
				goto err;
			}
		}
	}
	ERR_clear_error();
	return ctx;
err:
	if (ctx)
		ctx_put(ctx);
	ERR_clear_error();
	errno = EINVAL;
	return NULL;
}

void tls_ctx_free(struct tls_ctx *ctx)
{
	if (ctx)
		ctx_put(ctx);
}

const struct tls_identity *tls_ctx_identity(const struct tls_ctx *ctx)
{
	return &ctx->self;
}

/* ---- connections ------------------------------------------------------------------------
 *
 * OpenSSL reads through a BIO of ours: one read(2) of up to 64 KiB feeds many records
 * (OpenSSL's own read-ahead moves the unread rest of its buffer to the front after each
 * record), and the limits on records without data are checked there. Without kernel TLS it
 * writes through another: records go to an output buffer and leave in one send(2) per call
 * (with a socket BIO every 16 KiB record was its own system call, the largest cost of a bulk
 * transfer after the cipher). With kernel TLS, OpenSSL writes to the socket itself. */
#define TLS_WOUT_LIMIT (256 * 1024) /* writes say -EAGAIN above this much unsent */
/* One SSL_write_ex seals at most this much, so a write overshoots the limit by less. */
#define TLS_WRITE_CHUNK (4 * REC_MAX_PLAIN)
/* What OpenSSL writes on its own while reading (KeyUpdate answers, alerts) goes to wout too,
 * past the limit. OpenSSL 3.0 answers every KeyUpdate that asks for one (it stops reading only
 * when its socket is full, which ours never is), so a peer that asks and never reads could
 * make wout grow without end: it may hold this much of those answers at most. */
#define TLS_ANSWERS_MAX (64 * 1024)
/* Records in a row that give no data (KeyUpdates, empty records, alerts, tickets). OpenSSL 3.0
 * stops 32 empty records and 5 warnings in a row but not KeyUpdates, each of which costs a key
 * derivation (and an answer): an honest peer sends a handful between two data records. */
#define TLS_IDLE_RECORDS_MAX 64

static int out_bio_write(BIO *b, const char *data, int len)
{
	struct tls_conn *c = BIO_get_data(b);

	BIO_clear_retry_flags(b);
	if (len <= 0)
		return 0;
	if (c->reading) {
		c->answers += (size_t)len;
		if (c->answers > TLS_ANSWERS_MAX) {
			errno = ENOBUFS;
			return -1;
		}
	}
	if (buf_append(&c->wout, data, (size_t)len) < 0) {
		errno = ENOMEM;
		return -1;
	}
	return len;
}

static long out_bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
	struct tls_conn *c = BIO_get_data(b);

	switch (cmd) {
	case BIO_CTRL_FLUSH:
		return 1;
	case BIO_CTRL_WPENDING:
	case BIO_CTRL_PENDING:
		return c ? (long)buf_len(&c->wout) : 0;
	default:
		return 0;
	}
}

/* During the handshake OpenSSL reads exactly one record header, then its body, straight from
 * the socket: no byte waits in a buffer of ours between flights, and with nothing read of a
 * record OpenSSL releases its own (SSL_MODE_RELEASE_BUFFERS). Afterwards reads go through
 * rbuf, refilled only once empty so nothing is ever moved. */
static int in_bio_read(BIO *b, char *out, int len)
{
	struct tls_conn *c = BIO_get_data(b);
	ssize_t n;
	size_t k;

	BIO_clear_retry_flags(b);
	if (len <= 0)
		return 0;
	if (!c->done) {
		n = read(c->fd, out, (size_t)len);
		goto out;
	}
	if (c->idle_records > TLS_IDLE_RECORDS_MAX) {
		errno = EPROTO; /* fails the read: see io_error */
		return -1;
	}
	if (c->rhead == c->rtail) {
		if (c->no_refill) {
			BIO_set_retry_read(b);
			return -1;
		}
		c->rhead = c->rtail = 0;
		if (!c->rbuf) {
			c->rbuf = malloc(TLS_RBUF_SIZE);
			if (!c->rbuf) {
				errno = ENOMEM;
				return -1;
			}
		}
		n = read(c->fd, c->rbuf, TLS_RBUF_SIZE);
		if (n <= 0)
			goto out;
		c->rtail = (size_t)n;
	}
	k = c->rtail - c->rhead;
	n = (ssize_t)(k < (size_t)len ? k : (size_t)len);
	memcpy(out, c->rbuf + c->rhead, (size_t)n);
	c->rhead += (size_t)n;
out:
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		BIO_set_retry_read(b);
	return n < 0 ? -1 : (int)n;
}

static long in_bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
	struct tls_conn *c = BIO_get_data(b);

	switch (cmd) {
	case BIO_CTRL_FLUSH:
		return 1;
	case BIO_CTRL_PENDING:
		return c ? (long)(c->rtail - c->rhead) : 0;
	default:
		return 0;
	}
}

static BIO_METHOD *bio_method(bool in)
{
	static BIO_METHOD *m[2];

	if (!m[in]) {
		BIO_METHOD *n = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK,
					     in ? "ntun-in" : "ntun-out");

		if (n &&
		    (in ? !BIO_meth_set_read(n, in_bio_read) || !BIO_meth_set_ctrl(n, in_bio_ctrl)
			: !BIO_meth_set_write(n, out_bio_write) ||
				     !BIO_meth_set_ctrl(n, out_bio_ctrl))) {
			BIO_meth_free(n);
			n = NULL;
		}
		m[in] = n;
	}
	return m[in];
}

/* Sends buffered records. 0 when all are out, -EAGAIN when the socket is full, or a fatal
 * -errno (sticky). */
static int flush_out(struct tls_conn *c)
{
	ssize_t n;

	while (buf_len(&c->wout)) {
		n = send(c->fd, buf_head(&c->wout), buf_len(&c->wout), MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n > 0) {
			buf_consume(&c->wout, (size_t)n);
			if (!buf_len(&c->wout))
				c->answers = 0;
			continue;
		}
		if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
			c->want |= TLS_WANT_WRITE;
			return -EAGAIN;
		}
		c->fatal = n < 0 ? -errno : -EPIPE;
		snprintf(c->err, sizeof(c->err), "write: %s", strerror(-c->fatal));
		buf_release(&c->wout);
		return c->fatal;
	}
	return 0;
}

/* Counts the records OpenSSL opens (it reports each one's inner content type); tls_read
 * starts again from 0 whenever one gave data. */
static void msg_cb(int write_p, int version, int type, const void *buf, size_t len, SSL *ssl,
		   void *arg)
{
	struct tls_conn *c = arg;

	if (!write_p && type == SSL3_RT_INNER_CONTENT_TYPE && c->done) {
		c->idle_records++;
		c->call_records++;
	}
}

static struct tls_stats stats;

const struct tls_stats *tls_stats(void)
{
	return &stats;
}

struct tls_conn *tls_conn_new(struct tls_ctx *ctx, int fd)
{
	struct tls_conn *c;
	BIO *rb = NULL, *wb = NULL;
	int e = ENOMEM;

	if (fd < 0) {
		errno = EBADF;
		return NULL;
	}
	c = calloc(1, sizeof(*c));
	if (!c)
		goto err;
	c->ssl = SSL_new(ctx->ssl_ctx);
	if (!c->ssl)
		goto err;
	c->fd = fd;
	c->sock_io = ctx->sock_io;
	buf_init(&c->wout);
	buf_init(&c->tail);
	rb = bio_method(true) ? BIO_new(bio_method(true)) : NULL;
	if (c->sock_io)
		wb = BIO_new_socket(fd, BIO_NOCLOSE);
	else
		wb = bio_method(false) ? BIO_new(bio_method(false)) : NULL;
	if (!rb || !wb) {
		BIO_free(rb);
		BIO_free(wb);
		goto err;
	}
	if (!c->sock_io) {
		BIO_set_data(wb, c);
		BIO_set_init(wb, 1);
	}
	BIO_set_data(rb, c);
	BIO_set_init(rb, 1);
	SSL_set_bio(c->ssl, rb, wb);
	if (ctx->sni && SSL_set_tlsext_host_name(c->ssl, ctx->server_name) != 1)
		goto err;
	SSL_set_app_data(c->ssl, c);
	SSL_set_msg_callback(c->ssl, msg_cb);
	SSL_set_msg_callback_arg(c->ssl, c);
	if (ctx->is_server)
		SSL_set_accept_state(c->ssl);
	else
		SSL_set_connect_state(c->ssl);
	c->ctx = ctx;
	atomic_fetch_add(&ctx->refs, 1);
	return c;
err:
	if (c)
		SSL_free(c->ssl);
	free(c);
	ERR_clear_error();
	errno = e;
	return NULL;
}

void tls_conn_free(struct tls_conn *c)
{
	if (!c)
		return;
	SSL_free(c->ssl);
	ERR_clear_error();
	ctx_put(c->ctx);
	free(c->server_name);
	buf_release(&c->wout);
	buf_release(&c->tail);
	free(c->rbuf);
	free(c);
}

int tls_conn_set_server_name(struct tls_conn *c, const char *name)
{
	X509_VERIFY_PARAM *param = SSL_get0_param(c->ssl);
	unsigned char ipbuf[16];
	bool is_ip;
	char *copy;
	int ok;

	if (c->ctx->is_server || !name || !*name || strlen(name) >= sizeof(c->ctx->server_name))
		return -EINVAL;
	is_ip = inet_pton(AF_INET, name, ipbuf) == 1 || inet_pton(AF_INET6, name, ipbuf) == 1;
	copy = strdup(name);
	if (!copy)
		return -ENOMEM;
	/* SNI carries host names only (RFC 6066); NULL clears the context's. */
	ok = SSL_set_tlsext_host_name(c->ssl, is_ip ? NULL : copy) == 1;
	if (ok && !c->ctx->insecure) {
		/* One kind of name replaces the other the context may have set. */
		X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
		ok = is_ip ? X509_VERIFY_PARAM_set1_host(param, NULL, 0) == 1 &&
				     X509_VERIFY_PARAM_set1_ip_asc(param, name) == 1
			   : X509_VERIFY_PARAM_set1_ip(param, NULL, 0) == 1 &&
				     X509_VERIFY_PARAM_set1_host(param, name, 0) == 1;
	}
	ERR_clear_error();
	if (!ok) {
		free(copy);
		return -EINVAL;
	}
	free(c->server_name);
	c->server_name = copy;
	return 0;
}

enum tls_op { OP_HANDSHAKE, OP_READ, OP_WRITE };
static const char *const op_names[] = {"handshake", "read", "write"};

/* The peer closed the connection in the middle of op (not a read's EOF). */
static int closed_during(struct tls_conn *c, enum tls_op op)
{
	snprintf(c->err, sizeof(c->err), "peer closed the connection during the %s", op_names[op]);
	return -ECONNRESET;
}

/* Maps a failed SSL call (ret, and errno saved right after it) to our return value, fills
 * c->err and drains the error queue. Returns -EAGAIN, 0 (EOF on read) or a fatal -errno. */
static int io_error(struct tls_conn *c, int ret, int saved_errno, enum tls_op op)
{
	char tmp[TLS_ERR_LEN - 48];
	bool alert = false;
	unsigned long e;
	int rc;

	switch (SSL_get_error(c->ssl, ret)) {
	case SSL_ERROR_WANT_READ:
		c->want = TLS_WANT_READ;
		return -EAGAIN;
	case SSL_ERROR_WANT_WRITE:
		c->want = TLS_WANT_WRITE;
		return -EAGAIN;
	case SSL_ERROR_ZERO_RETURN:
		if (op == OP_READ)
			return 0;
		rc = closed_during(c, op);
		break;
	case SSL_ERROR_SYSCALL:
		if (c->idle_records > TLS_IDLE_RECORDS_MAX) {
			rc = -EPROTO;
			snprintf(
				c->err, sizeof(c->err),
				"%s: %u records in a row without data (KeyUpdates, empty records or "
				"alerts)",
				op_names[op], c->idle_records);
		} else if (c->answers > TLS_ANSWERS_MAX) {
			rc = -ENOBUFS;
			snprintf(c->err, sizeof(c->err),
				 "%s: the peer does not read the answers it asks for (%zu KiB of "
				 "KeyUpdates unsent)",
				 op_names[op], c->answers / 1024);
		} else if (ERR_peek_error()) {
			rc = -EPROTO;
			snprintf(c->err, sizeof(c->err), "%s: ", op_names[op]);
			drain_errors(c->err, sizeof(c->err), strlen(c->err), NULL);
		} else if (saved_errno) {
			rc = -saved_errno;
			snprintf(c->err, sizeof(c->err), "%s: %s", op_names[op],
				 strerror(saved_errno));
		} else if (op == OP_READ) {
			return 0; /* EOF without close_notify is EOF (GRPC-NOTES) */
		} else {
			rc = closed_during(c, op);
		}
		break;
	case SSL_ERROR_SSL:
		e = ERR_peek_error();
		if (ERR_GET_LIB(e) == ERR_LIB_SSL &&
		    ERR_GET_REASON(e) == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
			ERR_clear_error();
			if (op == OP_READ)
				return 0;
			rc = closed_during(c, op);
			break;
		}
		rc = -EPROTO;
		if (c->reason[0]) {
			/* Our own check failed; OpenSSL's "certificate verify failed" adds nothing. */
			snprintf(c->err, sizeof(c->err), "%s", c->reason);
			break;
		}
		drain_errors(tmp, sizeof(tmp), 0, &alert);
		snprintf(c->err, sizeof(c->err), "%s: %s%s", op_names[op],
			 alert ? "peer sent an alert: " : "", tmp);
		break;
	default:
		rc = -EIO;
		snprintf(c->err, sizeof(c->err), "%s: unexpected OpenSSL state: ", op_names[op]);
		drain_errors(c->err, sizeof(c->err), strlen(c->err), NULL);
		break;
	}
	ERR_clear_error();
	c->fatal = rc;
	return rc;
}

static int handshake_check(struct tls_conn *c)
{
	const unsigned char *proto = NULL;
	unsigned int len = 0;

	SSL_get0_alpn_selected(c->ssl, &proto, &len);
	if (len != 2 || memcmp(proto, "h2", 2))
		snprintf(c->err, sizeof(c->err), "ALPN h2 was not agreed");
	else if (SSL_get_verify_result(c->ssl) != X509_V_OK || !SSL_get0_peer_certificate(c->ssl) ||
		 c->peer.role == TLS_ROLE_NONE)
		snprintf(c->err, sizeof(c->err), "peer certificate was not verified");
	else
		return 0;
	c->fatal = -EPROTO;
	return -EPROTO;
}

/* A server hands OpenSSL its connection only once a whole first record (the ClientHello) is
 * in the socket: OpenSSL sets up about 64 KiB of buffers and state as soon as it reads a
 * byte. Until then the socket reports readable only when the record can be complete
 * (SO_RCVLOWAT), so a client that sends a byte and waits costs the SSL object alone, and
 * polling it does not spin. True when OpenSSL may go on (also on EOF or a socket error, which
 * it reports). A peer that closed its side before the record was whole gets the same: EOF
 * keeps the socket readable whatever SO_RCVLOWAT says, so waiting on would spin until the
 * handshake timeout; OpenSSL reads what came and fails the handshake. */
static bool first_record_in(struct tls_conn *c)
{
	uint8_t h[REC_HDR];
	int want = REC_HDR, avail = 0;
	ssize_t n = recv(c->fd, h, sizeof(h), MSG_PEEK | MSG_DONTWAIT);
	struct pollfd pf = {.fd = c->fd, .events = POLLRDHUP};

	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
		return true;
	if (n == REC_HDR) {
		want += h[3] << 8 | h[4];
		if (want > REC_HDR + REC_MAX_CIPHER || ioctl(c->fd, FIONREAD, &avail) ||
		    avail >= want)
			return true; /* OpenSSL refuses one too long */
	}
	if (n > 0 && poll(&pf, 1, 0) == 1 && pf.revents & (POLLRDHUP | POLLHUP | POLLERR))
		return true;
	if (!setsockopt(c->fd, SOL_SOCKET, SO_RCVLOWAT, &want, sizeof(want)))
		c->lowat = true;
	return false;
}

int tls_handshake(struct tls_conn *c)
{
	int r, saved;

	if (c->fatal)
		return c->fatal;
	if (c->done)
		return 0;
	c->want = 0;
	if (c->ctx->is_server && !c->hello) {
		if (!first_record_in(c)) {
			c->want = TLS_WANT_READ;
			return -EAGAIN;
		}
		c->hello = true;
		if (c->lowat)
			(void)setsockopt(c->fd, SOL_SOCKET, SO_RCVLOWAT, &(int){1}, sizeof(int));
	}
	errno = 0;
	r = SSL_do_handshake(c->ssl);
	saved = errno;
	/* Our flight is in wout: send it whatever happened (an alert must reach the peer too). */
	if (flush_out(c) < -EAGAIN || c->fatal)
		return c->fatal;
	if (r != 1) {
		int rc = io_error(c, r, saved, OP_HANDSHAKE);

		if (rc == -EAGAIN && buf_len(&c->wout))
			c->want |= TLS_WANT_WRITE;
		return rc;
	}
	r = handshake_check(c);
	if (r)
		return r;
	c->done = true;
	/* OpenSSL released its record buffers whenever they emptied, so a connection waiting in
	 * its handshake holds none. From now on that would be a free and a malloc per record
	 * (an eighth of the CPU of a bulk transfer): they go when the connection goes idle
	 * (idle_point) instead. */
	SSL_clear_mode(c->ssl, SSL_MODE_RELEASE_BUFFERS);
	c->ktls = (BIO_get_ktls_send(SSL_get_wbio(c->ssl)) ? TLS_KTLS_SEND : 0) |
		  (BIO_get_ktls_recv(SSL_get_rbio(c->ssl)) ? TLS_KTLS_RECV : 0);
	stats.handshakes++;
	stats.ktls_send += !!(c->ktls & TLS_KTLS_SEND);
	stats.ktls_recv += !!(c->ktls & TLS_KTLS_RECV);
	return 0;
}

unsigned tls_want(const struct tls_conn *c)
{
	return c->want;
}

unsigned tls_ktls(const struct tls_conn *c)
{
	return c->ktls;
}

/* Data moves only once the handshake is done. */
static int not_connected(struct tls_conn *c, const char *op)
{
	snprintf(c->err, sizeof(c->err), "%s before the handshake completed", op);
	return -ENOTCONN;
}

/* Read and record buffers go once a read finds nothing more, which is how every event ends,
 * or everything written went out (not each time they empty within one, which would free and
 * allocate them again). OpenSSL keeps its buffers while they hold bytes. */
static void idle_point(struct tls_conn *c)
{
	if (c->rhead == c->rtail) {
		free(c->rbuf);
		c->rbuf = NULL;
		c->rhead = c->rtail = 0;
	}
	if (c->done && !buf_len(&c->wout))
		(void)SSL_free_buffers(c->ssl);
}

ssize_t tls_read(struct tls_conn *c, void *buf, size_t len)
{
	size_t got = 0, n;
	int rc = 0, saved;

	if (c->fatal)
		return c->fatal;
	if (!len)
		return -EINVAL;
	if (!c->done)
		return not_connected(c, "read");
	c->want = 0;
	c->reading = true;
	c->call_records = 0;
	/* Records OpenSSL has, and whole ones in rbuf, while they fit; the socket is read only
	 * when nothing came from them. OpenSSL gives one record per call. */
	for (;;) {
		errno = 0;
		if (SSL_read_ex(c->ssl, (uint8_t *)buf + got, len - got, &n) != 1) {
			saved = errno;
			rc = io_error(c, 0, saved, OP_READ);
			break;
		}
		got += n;
		c->idle_records = 0;
		if (got == len || c->call_records >= TLS_IDLE_RECORDS_MAX)
			break; /* full, or enough work for one call (tiny records) */
		c->no_refill = true;
	}
	c->no_refill = c->reading = false;
	if (buf_len(&c->wout)) /* a KeyUpdate answered, or an alert */
		flush_out(c);
	if (got) {
		if (rc == -EAGAIN && c->want == TLS_WANT_READ)
			c->want = 0;
		return (ssize_t)got; /* an error or EOF behind the data is sticky in OpenSSL */
	}
	if (rc == -EAGAIN || rc == 0)
		idle_point(c);
	return rc;
}

bool tls_pending(const struct tls_conn *c)
{
	return SSL_has_pending(c->ssl) || c->rhead < c->rtail;
}

/* Gives OpenSSL n bytes at p to seal (and with sock_io, to send), in calls of at most
 * TLS_WRITE_CHUNK. *done says how many it took. 0, -EAGAIN (sock_io: the socket is full; the
 * next call must offer the same bytes again), or a fatal -errno. */
static int seal(struct tls_conn *c, const uint8_t *p, size_t n, size_t *done)
{
	size_t w, k;
	int saved;

	for (*done = 0; *done < n; *done += w) {
		k = n - *done < TLS_WRITE_CHUNK ? n - *done : TLS_WRITE_CHUNK;
		errno = 0;
		if (SSL_write_ex(c->ssl, p + *done, k, &w) != 1) {
			saved = errno;
			return io_error(c, 0, saved, OP_WRITE);
		}
	}
	return 0;
}

/* Seals what tail holds: whole records only, or all of it. 0, -EAGAIN (sock_io) or fatal. */
static int seal_tail(struct tls_conn *c, bool all)
{
	size_t n = buf_len(&c->tail), done;
	int rc;

	if (!all)
		n = n / REC_MAX_PLAIN * REC_MAX_PLAIN;
	if (!n)
		return 0;
	rc = seal(c, buf_head(&c->tail), n, &done);
	buf_consume(&c->tail, done);
	return rc;
}

/* Bytes waiting for the socket, sealed or not. */
static size_t queued(const struct tls_conn *c)
{
	return buf_len(&c->wout) + (c->sock_io ? buf_len(&c->tail) : 0);
}

/* Room for more: makes some if the queue is full. 0, -EAGAIN (still full) or fatal. */
static int make_room(struct tls_conn *c)
{
	int rc;

	if (queued(c) < TLS_WOUT_LIMIT)
		return 0;
	rc = c->sock_io ? seal_tail(c, false) : flush_out(c);
	if (rc && rc != -EAGAIN)
		return rc;
	return queued(c) < TLS_WOUT_LIMIT ? 0 : -EAGAIN;
}

/* Appends n bytes at p to tail. 0 or a fatal -ENOMEM. */
static int tail_append(struct tls_conn *c, const void *p, size_t n)
{
	if (buf_append(&c->tail, p, n) == 0)
		return 0;
	snprintf(c->err, sizeof(c->err), "write: out of memory");
	c->fatal = -ENOMEM;
	return c->fatal;
}

ssize_t tls_write(struct tls_conn *c, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	size_t done = 0, n, k;
	int rc;

	if (c->fatal)
		return c->fatal;
	if (!c->done)
		return not_connected(c, "write");
	c->want = 0;
	/* what tls_writev held back goes first */
	rc = seal_tail(c, true);
	if (rc && (rc != -EAGAIN || buf_len(&c->tail) >= TLS_WOUT_LIMIT))
		return rc;
	if (c->sock_io) {
		/* OpenSSL must be offered a record it could not send again: ours to keep */
		n = TLS_WOUT_LIMIT - buf_len(&c->tail);
		n = len < n ? len : n;
		if (n && tail_append(c, p, n))
			return c->fatal;
		rc = seal_tail(c, true);
		return rc && rc != -EAGAIN ? rc : (ssize_t)n;
	}
	rc = flush_out(c);
	if (rc < 0 && rc != -EAGAIN)
		return rc;
	if (buf_len(&c->wout) >= TLS_WOUT_LIMIT)
		return -EAGAIN;
	/* Records only gather in wout here; the limit bounds how much waits for the socket. */
	while (done < len && buf_len(&c->wout) < TLS_WOUT_LIMIT) {
		n = len - done < TLS_WRITE_CHUNK ? len - done : TLS_WRITE_CHUNK;
		rc = seal(c, p + done, n, &k);
		done += k;
		if (rc) {
			if (!done)
				return rc;
			break; /* a fatal error stays in c->fatal for the next call */
		}
	}
	rc = flush_out(c);
	if (rc < 0 && rc != -EAGAIN)
		return rc; /* the peer is gone: what was accepted cannot arrive */
	if (!rc)
		idle_point(c);
	return (ssize_t)done;
}

ssize_t tls_writev(struct tls_conn *c, const struct iovec *iov, int iovcnt)
{
	size_t total = 0, left, done;
	const uint8_t *p;
	int rc, i;

	if (c->fatal)
		return c->fatal;
	if (!c->done)
		return not_connected(c, "write");
	if (iovcnt < 0 || iovcnt > TLS_WRITEV_MAX)
		return -EINVAL;
	c->want = 0;
	rc = make_room(c);
	if (rc)
		return rc;
	for (i = 0; i < iovcnt; i++) {
		p = iov[i].iov_base;
		left = iov[i].iov_len;
		total += left;
		while (left) {
			/* Whole records straight from a piece when nothing is held back (OpenSSL
			 * seals them without blocking: our BIO takes them); else through tail,
			 * sealed once it holds a record. With sock_io all goes through tail. */
			if (!c->sock_io && !buf_len(&c->tail) && left >= REC_MAX_PLAIN) {
				rc = seal(c, p, left / REC_MAX_PLAIN * REC_MAX_PLAIN, &done);
				if (rc)
					return rc;
			} else {
				done = c->sock_io ? left : REC_MAX_PLAIN - buf_len(&c->tail);
				done = left < done ? left : done;
				if (tail_append(c, p, done))
					return c->fatal;
				rc = seal_tail(c, false);
				if (rc && rc != -EAGAIN)
					return rc;
			}
			p += done;
			left -= done;
		}
	}
	return (ssize_t)total;
}

int tls_flush(struct tls_conn *c)
{
	int rc, saved;

	if (c->fatal)
		return c->fatal;
	c->want = 0;
	rc = seal_tail(c, true);
	if (rc)
		return rc;
	if (c->sock_io && c->done && SSL_in_init(c->ssl)) {
		/* an answer of OpenSSL's own (KeyUpdate) still waits for the socket */
		errno = 0;
		rc = SSL_do_handshake(c->ssl);
		saved = errno;
		return rc == 1 ? 0 : io_error(c, rc, saved, OP_WRITE);
	}
	rc = flush_out(c);
	if (!rc)
		idle_point(c);
	return rc;
}

bool tls_write_pending(const struct tls_conn *c)
{
	return buf_len(&c->wout) > 0 || buf_len(&c->tail) > 0 ||
	       (c->sock_io && c->done && SSL_in_init(c->ssl));
}

void tls_close_notify(struct tls_conn *c)
{
	if (c->notified || c->fatal || !c->done)
		return;
	c->notified = true;
	if (seal_tail(c, true))
		return;
	errno = 0;
	(void)SSL_shutdown(c->ssl);
	ERR_clear_error();
	flush_out(c);
}

const struct tls_identity *tls_peer(const struct tls_conn *c)
{
	return &c->peer;
}

const char *tls_error(const struct tls_conn *c)
{
	return c->err[0] ? c->err : "no error";
}

size_t tls_buffered(const struct tls_conn *c)
{
	/* OpenSSL's record buffers go while they hold nothing (SSL_MODE_RELEASE_BUFFERS in the
	 * handshake, idle_point after it): counted as one record's worth while it holds bytes. */
	size_t ossl = SSL_has_pending(c->ssl) ? REC_MAX_CIPHER : 0;

	return (c->rbuf ? TLS_RBUF_SIZE : 0) + c->wout.cap + c->tail.cap + ossl;
}
