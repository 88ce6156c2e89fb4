// SPDX-License-Identifier: MIT
/* Mutual TLS 1.3: OpenSSL runs the handshake (SPIFFE role checks in the verify callback, ALPN
 * h2 only); the records after it are sealed and opened here, from the traffic secrets OpenSSL
 * derived. Does no polling or logging of its own: callers drive it from their event loop. */
#include "tls.h"

#include "buf.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sys/socket.h>
#include <sys/uio.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
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

/* TLS 1.3 record sizes (RFC 8446 5.1, 5.2): header, AEAD tag, content and ciphertext limits. */
#define REC_HDR	       5
#define REC_TAG	       16
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
};

/* One direction's AEAD state. secret is kept for KeyUpdate; wiped when the connection ends. */
struct rec_key {
	EVP_CIPHER_CTX *aead;
	uint8_t secret[EVP_MAX_MD_SIZE];
	uint8_t iv[12];
	uint64_t seq;
};

struct tls_conn {
	SSL *ssl;
	struct tls_ctx *ctx;
	int fd;
	struct buf wout; /* encrypted records not yet on the socket (see out_bio_write) */
	struct buf tail; /* tls_writev's last bytes short of a record, sealed with the next ones */
	uint8_t *rbuf;	 /* bytes read from the socket, not yet taken (in_bio_read, rec_next) */
	size_t rhead, rtail;
	/* After the handshake: our own record layer (see "records" below). */
	struct rec_key rx, tx;
	const EVP_MD *md; /* the suite's hash, and its AEAD (fetched once): set by rec_start */
	EVP_CIPHER *aead;
	size_t hash_len;
	const uint8_t *plain; /* opened record bytes not yet read, in place in rbuf */
	size_t plain_len;
	struct buf hs;	      /* a post-handshake message still arriving */
	uint64_t rekey_after; /* records sealed under one key before we send a KeyUpdate */
	uint8_t secret[2][EVP_MAX_MD_SIZE]; /* traffic secrets from keylog_cb: [0] client's */
	size_t secret_len[2];
	bool records; /* the record layer is ours */
	bool eof;     /* close_notify came */
	unsigned want;
	int fatal; /* sticky -errno once the connection is unusable; 0 while healthy */
	bool done; /* handshake complete and checked */
	bool notified;
	char reason[TLS_ERR_LEN]; /* why our own checks failed, set in callbacks */
	char err[TLS_ERR_LEN];
	struct tls_identity peer;
	char *server_name; /* tls_conn_set_server_name's, else NULL (the context's) */
};

static void keylog_cb(const SSL *ssl, const char *line);

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
	SSL_CTX_set_keylog_callback(sc, keylog_cb); /* the record layer's keys: see rec_start */
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

/* ---- connections ------------------------------------------------------------------------ */

/* Records go to an output buffer and leave in one send(2) per burst (the handshake's flights
 * from OpenSSL through out_bio_write, then ours from rec_seal): with a socket BIO every 16 KiB
 * record was its own syscall, the largest cost of a bulk transfer after the cipher. */
#define TLS_WOUT_LIMIT (256 * 1024) /* tls_write says -EAGAIN above this much unsent */

static int out_bio_write(BIO *b, const char *data, int len)
{
	struct tls_conn *c = BIO_get_data(b);

	if (len <= 0)
		return 0;
	if (buf_append(&c->wout, data, (size_t)len) < 0)
		return -1;
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

/* Reads go through our own buffer: one read(2) of up to 64 KiB feeds many records (OpenSSL's
 * read-ahead moved the unread rest of its buffer to the front after every record: 1.5 copies
 * per byte). in_bio_read hands the handshake's records to OpenSSL; rec_next keeps reading into
 * the same buffer afterwards. */
#define TLS_RBUF_SIZE (64 * 1024)
/* Room for one more whole record behind a read: see rec_next. */
#define TLS_RBUF_CAP (TLS_RBUF_SIZE + REC_HDR + REC_MAX_CIPHER)

static int in_bio_read(BIO *b, char *out, int len)
{
	struct tls_conn *c = BIO_get_data(b);
	size_t k;
	ssize_t n;

	BIO_clear_retry_flags(b);
	if (len <= 0)
		return 0;
	if (c->rhead == c->rtail) {
		c->rhead = c->rtail = 0;
		if (!c->rbuf) {
			c->rbuf = malloc(TLS_RBUF_CAP);
			if (!c->rbuf) {
				errno = ENOMEM;
				return -1;
			}
		}
		n = read(c->fd, c->rbuf, TLS_RBUF_SIZE);
		if (n == 0)
			return 0;
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				BIO_set_retry_read(b);
			return -1;
		}
		c->rtail = (size_t)n;
	}
	k = c->rtail - c->rhead;
	if (k > (size_t)len)
		k = (size_t)len;
	memcpy(out, c->rbuf + c->rhead, k);
	c->rhead += k;
	return (int)k;
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

static BIO_METHOD *in_bio_method(void)
{
	static BIO_METHOD *m;

	if (!m) {
		m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "ntun-in");
		if (m &&
		    (!BIO_meth_set_read(m, in_bio_read) || !BIO_meth_set_ctrl(m, in_bio_ctrl))) {
			BIO_meth_free(m);
			m = NULL;
		}
	}
	return m;
}

static BIO_METHOD *out_bio_method(void)
{
	static BIO_METHOD *m;

	if (!m) {
		m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "ntun-out");
		if (m && (!BIO_meth_set_write(m, out_bio_write) ||
			  !BIO_meth_set_ctrl(m, out_bio_ctrl))) {
			BIO_meth_free(m);
			m = NULL;
		}
	}
	return m;
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

/* ---- records ------------------------------------------------------------------------------
 *
 * After the handshake, records are sealed and opened here (RFC 8446 section 5) with the
 * traffic secrets OpenSSL hands its keylog callback, not by OpenSSL's record layer, which
 * copies every byte twice more on each side: into its record buffer and out of it when
 * reading, into its write buffer and on to ours when writing. Here a record is opened from the
 * socket buffer straight into the caller's buffer and sealed from the caller's bytes straight
 * into the output buffer. OpenSSL keeps the handshake, certificates and identity checks.
 *
 *   handshake (OpenSSL) --done--> rec_start: keys from the traffic secrets, sequence 0
 *   each record: [type 23][03 03][length] AEAD(content | inner type | zero padding) [tag]
 *   KeyUpdate in either direction: next secret = Expand-Label(secret, "traffic upd")
 */
#define REC_ALERT	      21
#define REC_HANDSHAKE	      22
#define REC_APPDATA	      23
#define HS_NEW_SESSION_TICKET 4
#define HS_KEY_UPDATE	      24
#define HS_MAX		      (70 * 1024) /* a NewSessionTicket may carry a 64 KiB ticket */
/* RFC 8446 5.5: an AES-GCM key is good for about 2^24.5 full records; we move on long before
 * (2^23 records of 16 KiB: every 128 GiB). */
#define REC_REKEY_AFTER (1ull << 23)

static int hexval(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

/* "CLIENT_TRAFFIC_SECRET_0 <client random> <secret>", the same for SERVER_: keeps the two
 * application traffic secrets for rec_start. OpenSSL wipes the line afterwards. */
static void keylog_cb(const SSL *ssl, const char *line)
{
	static const char *const labels[2] = {"CLIENT_TRAFFIC_SECRET_0 ",
					      "SERVER_TRAFFIC_SECRET_0 "};
	struct tls_conn *c = SSL_get_app_data(ssl);
	const char *p;
	size_t n = 0;
	int i;

	for (i = 0; i < 2; i++)
		if (!strncmp(line, labels[i], strlen(labels[i])))
			break;
	if (!c || i == 2 || !(p = strchr(line + strlen(labels[i]), ' ')))
		return;
	for (p++; n < sizeof(c->secret[i]) && hexval(p[0]) >= 0 && hexval(p[1]) >= 0; p += 2)
		c->secret[i][n++] = (uint8_t)(hexval(p[0]) << 4 | hexval(p[1]));
	c->secret_len[i] = *p ? 0 : n; /* not a whole secret: unusable, rec_start refuses */
}

/* HKDF-Expand-Label(secret, label, "", out_len) of RFC 8446 7.1. 0 or -1. */
static int expand_label(const EVP_MD *md, const uint8_t *secret, size_t slen, const char *label,
			uint8_t *out, size_t olen)
{
	uint8_t info[2 + 1 + 6 + 16 + 1];
	size_t ll = strlen(label), n = 0;
	int mode = EVP_KDF_HKDF_MODE_EXPAND_ONLY, rc = -1;
	EVP_KDF *kdf = EVP_KDF_fetch(NULL, OSSL_KDF_NAME_HKDF, NULL);
	EVP_KDF_CTX *k = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
	OSSL_PARAM params[5];

	EVP_KDF_free(kdf);
	if (!k || ll > 16)
		goto out;
	info[n++] = (uint8_t)(olen >> 8);
	info[n++] = (uint8_t)olen;
	info[n++] = (uint8_t)(6 + ll);
	memcpy(info + n, "tls13 ", 6);
	memcpy(info + n + 6, label, ll);
	n += 6 + ll;
	info[n++] = 0; /* empty context */
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST,
						     (char *)EVP_MD_get0_name(md), 0);
	params[1] = OSSL_PARAM_construct_int(OSSL_KDF_PARAM_MODE, &mode);
	params[2] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)secret, slen);
	params[3] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, info, n);
	params[4] = OSSL_PARAM_construct_end();
	if (EVP_KDF_derive(k, out, olen, params) == 1)
		rc = 0;
out:
	EVP_KDF_CTX_free(k);
	return rc;
}

/* The negotiated suite's AEAD: one of the three tls_ctx_new allows, else NULL. */
static const char *suite_cipher(const SSL_CIPHER *cs)
{
	switch (cs ? SSL_CIPHER_get_protocol_id(cs) : 0) {
	case 0x1301:
		return "AES-128-GCM";
	case 0x1302:
		return "AES-256-GCM";
	case 0x1303:
		return "ChaCha20-Poly1305";
	default:
		return NULL;
	}
}

/* Derives key and IV from k->secret and starts the direction over at sequence 0. 0 or -1. */
static int rec_key_init(struct tls_conn *c, struct rec_key *k, bool enc)
{
	int klen = EVP_CIPHER_get_key_length(c->aead), rc = -1;
	uint8_t key[32];

	if (klen <= 0 || klen > (int)sizeof(key) ||
	    expand_label(c->md, k->secret, c->hash_len, "key", key, (size_t)klen) ||
	    expand_label(c->md, k->secret, c->hash_len, "iv", k->iv, sizeof(k->iv)))
		goto out;
	if (!k->aead)
		k->aead = EVP_CIPHER_CTX_new();
	if (k->aead && EVP_CipherInit_ex(k->aead, c->aead, NULL, key, NULL, enc ? 1 : 0) == 1)
		rc = 0;
	k->seq = 0;
out:
	OPENSSL_cleanse(key, sizeof(key));
	ERR_clear_error();
	return rc;
}

/* KeyUpdate: the direction's next secret, then its key and IV. 0 or -1. */
static int rec_key_update(struct tls_conn *c, struct rec_key *k, bool enc)
{
	uint8_t next[EVP_MAX_MD_SIZE];
	int rc = -1;

	if (!expand_label(c->md, k->secret, c->hash_len, "traffic upd", next, c->hash_len)) {
		memcpy(k->secret, next, c->hash_len);
		rc = rec_key_init(c, k, enc);
	}
	OPENSSL_cleanse(next, sizeof(next));
	return rc;
}

static void rec_nonce(const struct rec_key *k, uint8_t nonce[12])
{
	memcpy(nonce, k->iv, 12);
	for (int i = 0; i < 8; i++)
		nonce[11 - i] ^= (uint8_t)(k->seq >> (8 * i));
}

/* Where sealing has got to in a list of pieces. */
struct gather {
	const struct iovec *v;
	size_t off; /* into v->iov_base */
};

/* The next contiguous bytes of g, at most max (some must remain): sets *p, advances g,
 * returns how many. */
static size_t gather_next(struct gather *g, size_t max, const uint8_t **p)
{
	size_t part;

	while (g->off == g->v->iov_len) {
		g->v++;
		g->off = 0;
	}
	part = g->v->iov_len - g->off;
	if (part > max)
		part = max;
	*p = (const uint8_t *)g->v->iov_base + g->off;
	g->off += part;
	return part;
}

/* Seals the next n bytes of g (n <= REC_MAX_PLAIN) as one record of the given inner type into
 * wout, advancing g. 0, -ENOMEM, or -EPROTO (the AEAD failed). */
static int rec_seal_gather(struct tls_conn *c, uint8_t type, struct gather *g, size_t n)
{
	struct rec_key *k = &c->tx;
	size_t clen = n + 1 + REC_TAG, done = 0, part;
	const uint8_t *src;
	uint8_t nonce[12], *p;
	int l;

	p = buf_reserve(&c->wout, REC_HDR + clen);
	if (!p)
		return -ENOMEM;
	p[0] = REC_APPDATA;
	p[1] = p[2] = 3;
	p[3] = (uint8_t)(clen >> 8);
	p[4] = (uint8_t)clen;
	rec_nonce(k, nonce);
	if (EVP_EncryptInit_ex(k->aead, NULL, NULL, NULL, nonce) != 1 ||
	    EVP_EncryptUpdate(k->aead, NULL, &l, p, REC_HDR) != 1)
		goto fail;
	while (done < n) {
		part = gather_next(g, n - done, &src);
		if (EVP_EncryptUpdate(k->aead, p + REC_HDR + done, &l, src, (int)part) != 1)
			goto fail;
		done += part;
	}
	if (EVP_EncryptUpdate(k->aead, p + REC_HDR + n, &l, &type, 1) != 1 ||
	    EVP_EncryptFinal_ex(k->aead, p + REC_HDR + n + 1, &l) != 1 ||
	    EVP_CIPHER_CTX_ctrl(k->aead, EVP_CTRL_AEAD_GET_TAG, REC_TAG, p + REC_HDR + n + 1) != 1)
		goto fail;
	buf_commit(&c->wout, REC_HDR + clen);
	k->seq++;
	return 0;
fail:
	ERR_clear_error();
	return -EPROTO;
}

/* Seals n bytes of content type `type` into one record at the end of wout. 0, -ENOMEM or
 * -EPROTO (the cipher failed). */
static int rec_seal(struct tls_conn *c, uint8_t type, const uint8_t *data, size_t n)
{
	struct iovec v = {(void *)data, n};
	struct gather g = {&v, 0};

	return rec_seal_gather(c, type, &g, n);
}

/* Ends the connection: says why, and for a protocol error sends the fatal alert (best
 * effort). Returns rc. */
static int rec_fail(struct tls_conn *c, int rc, uint8_t alert, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int rec_fail(struct tls_conn *c, int rc, uint8_t alert, const char *fmt, ...)
{
	uint8_t a[2] = {SSL3_AL_FATAL, alert};
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->err, sizeof(c->err), fmt, ap);
	va_end(ap);
	if (alert && !c->notified && !c->fatal) {
		c->notified = true;
		if (!rec_seal(c, REC_ALERT, a, sizeof(a)))
			flush_out(c);
	}
	c->fatal = rc;
	return rc;
}

/* Sends a KeyUpdate, then seals under the next key. 0 or a fatal -errno. */
static int rec_send_key_update(struct tls_conn *c, bool request)
{
	const uint8_t msg[5] = {HS_KEY_UPDATE, 0, 0, 1, request ? 1 : 0};
	int rc = rec_seal(c, REC_HANDSHAKE, msg, sizeof(msg));

	if (rc)
		return rec_fail(c, rc, 0, "write: cannot seal a KeyUpdate");
	if (rec_key_update(c, &c->tx, true))
		return rec_fail(c, -EPROTO, 0, "write: cannot derive the next traffic key");
	return 0;
}

static int rec_start(struct tls_conn *c)
{
	const SSL_CIPHER *cs = SSL_get_current_cipher(c->ssl);
	const char *name = suite_cipher(cs);
	int ours = SSL_is_server(c->ssl) ? 1 : 0;
	size_t h;
	int rc = 0;

	c->md = cs ? SSL_CIPHER_get_handshake_digest(cs) : NULL;
	c->aead = name ? EVP_CIPHER_fetch(NULL, name, NULL) : NULL;
	h = c->hash_len = c->md ? (size_t)EVP_MD_get_size(c->md) : 0;
	if (!c->aead || !h || h > sizeof(c->rx.secret) || c->secret_len[0] != h ||
	    c->secret_len[1] != h || SSL_pending(c->ssl) > 0) {
		snprintf(c->err, sizeof(c->err),
			 "handshake: no traffic secrets for the record layer");
		rc = -EPROTO;
		goto out;
	}
	memcpy(c->tx.secret, c->secret[ours], h);
	memcpy(c->rx.secret, c->secret[!ours], h);
	if (rec_key_init(c, &c->rx, false) || rec_key_init(c, &c->tx, true)) {
		snprintf(c->err, sizeof(c->err), "handshake: cannot set up the record keys");
		rc = -EPROTO;
		goto out;
	}
	c->records = true;
	c->rekey_after = REC_REKEY_AFTER;
out:
	OPENSSL_cleanse(c->secret, sizeof(c->secret));
	ERR_clear_error();
	c->fatal = rc;
	return rc;
}

static size_t rec_whole(const struct tls_conn *c)
{
	size_t avail = c->rtail - c->rhead, need;

	if (avail < REC_HDR)
		return 0;
	need = REC_HDR + ((size_t)c->rbuf[c->rhead + 3] << 8 | c->rbuf[c->rhead + 4]);
	return avail >= need ? need : 0;
}

/* Makes rbuf hold one whole record at rhead: 1, or 0 on EOF, -EAGAIN, or a fatal -errno.
 * Reads fill the buffer's free end; only the unfinished record at the end is ever moved. */
static int rec_next(struct tls_conn *c)
{
	size_t avail, need;
	ssize_t n;

	if (!c->rbuf && !(c->rbuf = malloc(TLS_RBUF_CAP)))
		return rec_fail(c, -ENOMEM, 0, "read: out of memory");
	for (;;) {
		avail = c->rtail - c->rhead;
		need = REC_HDR;
		if (avail >= REC_HDR) {
			need += (size_t)c->rbuf[c->rhead + 3] << 8 | c->rbuf[c->rhead + 4];
			if (need > REC_HDR + REC_MAX_CIPHER)
				return rec_fail(c, -EPROTO, SSL_AD_RECORD_OVERFLOW,
						"read: record of %zu bytes is over the limit",
						need - REC_HDR);
			if (avail >= need)
				return 1;
		}
		if (!avail) {
			c->rhead = c->rtail = 0;
		} else if (c->rhead + need > TLS_RBUF_CAP ||
			   TLS_RBUF_CAP - c->rtail < REC_HDR + REC_MAX_CIPHER) {
			memmove(c->rbuf, c->rbuf + c->rhead, avail);
			c->rhead = 0;
			c->rtail = avail;
		}
		n = read(c->fd, c->rbuf + c->rtail, TLS_RBUF_CAP - c->rtail);
		if (n > 0) {
			c->rtail += (size_t)n;
			continue;
		}
		if (n == 0)
			return 0; /* EOF without close_notify is EOF (GRPC-NOTES) */
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN) {
			c->want = TLS_WANT_READ;
			return -EAGAIN;
		}
		return rec_fail(c, -errno, 0, "read: %s", strerror(errno));
	}
}

/* Opens the whole record at rhead into dst: room for all its ciphertext less the tag, or the
 * ciphertext itself (in place). Returns the content type with *len the content's length (padding
 * and type byte gone), or a fatal -errno. The plaintext is only used once the tag checked. */
static int rec_open(struct tls_conn *c, uint8_t *dst, size_t *len)
{
	uint8_t *hdr = c->rbuf + c->rhead, *ct = hdr + REC_HDR, nonce[12];
	size_t clen = (size_t)hdr[3] << 8 | hdr[4], plen;
	struct rec_key *k = &c->rx;
	int l;

	if (hdr[0] != REC_APPDATA)
		return rec_fail(c, -EPROTO, SSL_AD_UNEXPECTED_MESSAGE,
				"read: unprotected record (type %u) after the handshake", hdr[0]);
	if (clen < 1 + REC_TAG)
		return rec_fail(c, -EPROTO, SSL_AD_DECODE_ERROR,
				"read: record of %zu bytes is too short", clen);
	plen = clen - REC_TAG;
	rec_nonce(k, nonce);
	if (EVP_DecryptInit_ex(k->aead, NULL, NULL, NULL, nonce) != 1 ||
	    EVP_DecryptUpdate(k->aead, NULL, &l, hdr, REC_HDR) != 1 ||
	    EVP_DecryptUpdate(k->aead, dst, &l, ct, (int)plen) != 1 ||
	    EVP_CIPHER_CTX_ctrl(k->aead, EVP_CTRL_AEAD_SET_TAG, REC_TAG, ct + plen) != 1 ||
	    EVP_DecryptFinal_ex(k->aead, dst + plen, &l) != 1) {
		ERR_clear_error();
		return rec_fail(c, -EPROTO, SSL_AD_BAD_RECORD_MAC,
				"read: record failed authentication (bad record mac)");
	}
	k->seq++;
	c->rhead += REC_HDR + clen;
	while (plen && !dst[plen - 1])
		plen--;
	if (!plen--)
		return rec_fail(c, -EPROTO, SSL_AD_UNEXPECTED_MESSAGE,
				"read: record without a content type");
	if (plen > REC_MAX_PLAIN)
		return rec_fail(c, -EPROTO, SSL_AD_RECORD_OVERFLOW,
				"read: record content of %zu bytes is over the limit", plen);
	*len = plen;
	return dst[plen];
}

/* Post-handshake messages: tickets are dropped (we resume nothing), KeyUpdate is followed.
 * 0 or a fatal -errno. */
static int rec_handshake(struct tls_conn *c, const uint8_t *p, size_t n)
{
	const uint8_t *m;
	size_t len;

	if (!n)
		return rec_fail(c, -EPROTO, SSL_AD_UNEXPECTED_MESSAGE,
				"read: empty handshake record");
	if (buf_len(&c->hs) + n > HS_MAX + 4)
		return rec_fail(c, -EPROTO, SSL_AD_DECODE_ERROR,
				"read: post-handshake message over %d bytes", HS_MAX);
	if (buf_append(&c->hs, p, n) < 0)
		return rec_fail(c, -ENOMEM, 0, "read: out of memory");
	while (buf_len(&c->hs) >= 4) {
		m = buf_head(&c->hs);
		len = (size_t)m[1] << 16 | (size_t)m[2] << 8 | m[3];
		if (len > HS_MAX)
			return rec_fail(c, -EPROTO, SSL_AD_DECODE_ERROR,
					"read: post-handshake message of %zu bytes", len);
		if (buf_len(&c->hs) < 4 + len)
			break;
		if (m[0] == HS_NEW_SESSION_TICKET && !SSL_is_server(c->ssl)) {
			buf_consume(&c->hs, 4 + len);
			continue;
		}
		if (m[0] != HS_KEY_UPDATE)
			return rec_fail(c, -EPROTO, SSL_AD_UNEXPECTED_MESSAGE,
					"read: unexpected handshake message (type %u) after the "
					"handshake",
					m[0]);
		if (len != 1 || m[4] > 1)
			return rec_fail(c, -EPROTO, SSL_AD_ILLEGAL_PARAMETER,
					"read: malformed KeyUpdate");
		/* The next record is under the next key: nothing may follow in this one. */
		if (buf_len(&c->hs) != 5)
			return rec_fail(c, -EPROTO, SSL_AD_UNEXPECTED_MESSAGE,
					"read: KeyUpdate not at the end of its record");
		if (rec_key_update(c, &c->rx, false))
			return rec_fail(c, -EPROTO, SSL_AD_INTERNAL_ERROR,
					"read: cannot derive the peer's next traffic key");
		if (m[4] && rec_send_key_update(c, false))
			return c->fatal;
		buf_consume(&c->hs, 5);
	}
	if (!buf_len(&c->hs))
		buf_release(&c->hs);
	return 0;
}

/* An alert record: close_notify is EOF, user_canceled (a warning) is dropped, the rest end
 * the connection. 0 or -EPROTO. */
static int rec_alert(struct tls_conn *c, const uint8_t *p, size_t n)
{
	const char *why;

	if (n != 2)
		return rec_fail(c, -EPROTO, SSL_AD_DECODE_ERROR, "read: malformed alert");
	if (p[1] == SSL_AD_CLOSE_NOTIFY) {
		c->eof = true;
		return 0;
	}
	if (p[1] == SSL_AD_USER_CANCELLED)
		return 0;
	why = ERR_reason_error_string(ERR_PACK(ERR_LIB_SSL, 0, SSL_AD_REASON_OFFSET + p[1]));
	return rec_fail(c, -EPROTO, 0, "read: peer sent an alert: SSL routines: %s (alert %u)",
			why ? why : SSL_alert_desc_string_long(p[1]), p[1]);
}

/* An idle connection holds no read buffer: it goes when a read finds nothing more (the last
 * read of every event), not each time it empties in between, which would free and allocate
 * it again within one event. */
static void rbuf_drop_if_empty(struct tls_conn *c)
{
	if (c->rhead == c->rtail && !c->plain_len) {
		free(c->rbuf);
		c->rbuf = NULL;
		c->rhead = c->rtail = 0;
	}
}

/* tls_read once the record layer is ours: whole records buffered are opened while they fit;
 * the socket is read only when nothing came from the buffer. */
static ssize_t rec_read(struct tls_conn *c, uint8_t *buf, size_t len)
{
	size_t got = 0, n = 0, k;
	uint8_t *rec;
	int rc;

	if (c->plain_len) {
		k = c->plain_len < len ? c->plain_len : len;
		memcpy(buf, c->plain, k);
		c->plain += k;
		c->plain_len -= k;
		return (ssize_t)k;
	}
	while (got < len && !c->eof && !c->fatal) {
		if (got && !rec_whole(c))
			break;
		rc = rec_next(c);
		if (rc <= 0) {
			if (rc == 0)
				c->eof = true;
			if (got)
				break;
			rbuf_drop_if_empty(c); /* nothing more came: idle until the next event */
			return rc;
		}
		/* Straight into the caller's buffer when all of it fits, else in place. */
		k = rec_whole(c) - REC_HDR - REC_TAG;
		rec = k <= len - got ? buf + got : c->rbuf + c->rhead + REC_HDR;
		rc = rec_open(c, rec, &n);
		if (rc < 0)
			break;
		if (rc != REC_HANDSHAKE && buf_len(&c->hs)) {
			rec_fail(c, -EPROTO, SSL_AD_UNEXPECTED_MESSAGE,
				 "read: a record came between the parts of a handshake message");
			break;
		}
		if (rc == REC_APPDATA) {
			if (rec != buf + got) {
				k = n < len - got ? n : len - got;
				memcpy(buf + got, rec, k);
				c->plain = rec + k;
				c->plain_len = n - k;
				n = k;
			}
			got += n;
			if (c->plain_len)
				break;
		} else if (rc == REC_ALERT) {
			rec_alert(c, rec, n);
		} else if (rc == REC_HANDSHAKE) {
			rec_handshake(c, rec, n);
		} else {
			rec_fail(c, -EPROTO, SSL_AD_UNEXPECTED_MESSAGE,
				 "read: record of content type %d after the handshake", rc);
		}
	}
	if (got)
		return (ssize_t)got;
	rbuf_drop_if_empty(c);
	return c->fatal ? c->fatal : 0;
}

/* Seals len bytes of g as application data, records of up to REC_MAX_PLAIN, a KeyUpdate first
 * whenever the key is due; bounded: stops once TLS_WOUT_LIMIT waits for the socket. Returns
 * bytes sealed or a fatal -errno. */
static ssize_t rec_write(struct tls_conn *c, struct gather *g, size_t len, bool bounded)
{
	size_t done = 0, n;
	int rc;

	while (done < len && (!bounded || buf_len(&c->wout) < TLS_WOUT_LIMIT)) {
		if (c->tx.seq >= c->rekey_after && rec_send_key_update(c, false))
			break;
		n = len - done < REC_MAX_PLAIN ? len - done : REC_MAX_PLAIN;
		rc = rec_seal_gather(c, REC_APPDATA, g, n);
		if (rc) {
			rec_fail(c, rc, 0, "write: cannot seal a record");
			break;
		}
		done += n;
	}
	return done ? (ssize_t)done : c->fatal;
}

/* Seals what tls_writev held back (less than a record). 0 or a fatal -errno. */
static int seal_tail(struct tls_conn *c)
{
	struct iovec v = {buf_head(&c->tail), buf_len(&c->tail)};
	struct gather g = {&v, 0};
	ssize_t n;

	if (!v.iov_len)
		return 0;
	n = rec_write(c, &g, v.iov_len, false);
	buf_release(&c->tail);
	return n < 0 ? (int)n : 0;
}

struct tls_conn *tls_conn_new(struct tls_ctx *ctx, int fd)
{
	struct tls_conn *c;
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
	/* Reads gather in rbuf (one read(2) feeds several records, nothing moves); writes
	 * gather in wout so a burst of records leaves in one send(2). */
	c->fd = fd;
	buf_init(&c->wout);
	buf_init(&c->tail);
	{
		BIO *rb = in_bio_method() ? BIO_new(in_bio_method()) : NULL;
		BIO *wb = out_bio_method() ? BIO_new(out_bio_method()) : NULL;

		if (!rb || !wb) {
			BIO_free(rb);
			BIO_free(wb);
			goto err;
		}
		BIO_set_data(wb, c);
		BIO_set_init(wb, 1);
		BIO_set_data(rb, c);
		BIO_set_init(rb, 1);
		SSL_set_bio(c->ssl, rb, wb);
	}
	if (ctx->sni && SSL_set_tlsext_host_name(c->ssl, ctx->server_name) != 1)
		goto err;
	SSL_set_app_data(c->ssl, c);
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
	buf_release(&c->hs);
	free(c->rbuf);
	EVP_CIPHER_CTX_free(c->rx.aead);
	EVP_CIPHER_CTX_free(c->tx.aead);
	EVP_CIPHER_free(c->aead);
	OPENSSL_cleanse(c, sizeof(*c)); /* traffic secrets */
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

/* Maps a failed SSL_do_handshake (ret, and errno saved right after it) to our return value,
 * fills c->err and drains the error queue. Returns -EAGAIN or a fatal -errno. */
static int handshake_error(struct tls_conn *c, int ret, int saved_errno)
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
	case SSL_ERROR_SYSCALL:
		if (ERR_peek_error()) {
			rc = -EPROTO;
			snprintf(c->err, sizeof(c->err), "handshake: ");
			drain_errors(c->err, sizeof(c->err), strlen(c->err), NULL);
		} else if (saved_errno) {
			rc = -saved_errno;
			snprintf(c->err, sizeof(c->err), "handshake: %s", strerror(saved_errno));
		} else {
			rc = -ECONNRESET;
			snprintf(c->err, sizeof(c->err),
				 "peer closed the connection during the handshake");
		}
		break;
	case SSL_ERROR_ZERO_RETURN:
		rc = -ECONNRESET;
		snprintf(c->err, sizeof(c->err), "peer closed the connection during the handshake");
		break;
	case SSL_ERROR_SSL:
		e = ERR_peek_error();
		if (ERR_GET_LIB(e) == ERR_LIB_SSL &&
		    ERR_GET_REASON(e) == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
			rc = -ECONNRESET;
			snprintf(c->err, sizeof(c->err),
				 "peer closed the connection during the handshake");
			break;
		}
		rc = -EPROTO;
		if (c->reason[0]) {
			/* Our own check failed; OpenSSL's "certificate verify failed" adds nothing. */
			snprintf(c->err, sizeof(c->err), "%s", c->reason);
			break;
		}
		drain_errors(tmp, sizeof(tmp), 0, &alert);
		snprintf(c->err, sizeof(c->err), "handshake: %s%s",
			 alert ? "peer sent an alert: " : "", tmp);
		break;
	default:
		rc = -EIO;
		snprintf(c->err, sizeof(c->err), "handshake: unexpected OpenSSL state: ");
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

int tls_handshake(struct tls_conn *c)
{
	int r, saved;

	if (c->fatal)
		return c->fatal;
	if (c->done)
		return 0;
	c->want = 0;
	errno = 0;
	r = SSL_do_handshake(c->ssl);
	saved = errno;
	/* Our flight is in wout: send it whatever happened (an alert must reach the peer too). */
	if (flush_out(c) < -EAGAIN || c->fatal)
		return c->fatal;
	if (r != 1) {
		int rc = handshake_error(c, r, saved);

		if (rc == -EAGAIN && buf_len(&c->wout))
			c->want |= TLS_WANT_WRITE;
		return rc;
	}
	r = handshake_check(c);
	if (!r)
		r = rec_start(c);
	if (!r) {
		c->done = true;
		rbuf_drop_if_empty(c);
	}
	return r;
}

unsigned tls_want(const struct tls_conn *c)
{
	return c->want;
}

/* Data moves only through our record layer, so only once the handshake is done. */
static int not_connected(struct tls_conn *c, const char *op)
{
	snprintf(c->err, sizeof(c->err), "%s before the handshake completed", op);
	return -ENOTCONN;
}

ssize_t tls_read(struct tls_conn *c, void *buf, size_t len)
{
	ssize_t r;

	if (c->fatal)
		return c->fatal;
	if (!len)
		return -EINVAL;
	if (!c->records)
		return not_connected(c, "read");
	c->want = 0;
	r = rec_read(c, buf, len);
	if (buf_len(&c->wout)) /* a KeyUpdate answered, or an alert */
		flush_out(c);
	return r;
}

bool tls_pending(const struct tls_conn *c)
{
	return c->plain_len || c->rhead < c->rtail;
}

ssize_t tls_write(struct tls_conn *c, const void *buf, size_t len)
{
	struct iovec v = {(void *)buf, len};
	struct gather g = {&v, 0};
	ssize_t done;
	int rc;

	if (c->fatal)
		return c->fatal;
	if (!c->records)
		return not_connected(c, "write");
	c->want = 0;
	rc = seal_tail(c);
	if (rc)
		return rc;
	rc = flush_out(c);
	if (rc < 0 && rc != -EAGAIN)
		return rc;
	if (buf_len(&c->wout) >= TLS_WOUT_LIMIT)
		return -EAGAIN;
	/* Records only gather in wout here; the limit bounds how much waits for the socket. */
	done = rec_write(c, &g, len, true);
	if (done <= 0)
		return done;
	rc = flush_out(c);
	if (rc < 0 && rc != -EAGAIN)
		return rc; /* the peer is gone: what was accepted cannot arrive */
	return done;
}

/* Copies n bytes from g to dst, advancing g. */
static void gather_copy(struct gather *g, uint8_t *dst, size_t n)
{
	const uint8_t *src;
	size_t part;

	for (; n; n -= part, dst += part) {
		part = gather_next(g, n, &src);
		memcpy(dst, src, part);
	}
}

ssize_t tls_writev(struct tls_conn *c, const struct iovec *iov, int iovcnt)
{
	struct iovec v[TLS_WRITEV_MAX + 1];
	struct gather g = {v + 1, 0};
	size_t held, total = 0, whole, rest;
	uint8_t *d;
	ssize_t n;
	int rc, i;

	if (c->fatal)
		return c->fatal;
	if (!c->records)
		return not_connected(c, "write");
	if (iovcnt < 0 || iovcnt > TLS_WRITEV_MAX)
		return -EINVAL;
	c->want = 0;
	if (buf_len(&c->wout) >= TLS_WOUT_LIMIT) {
		rc = flush_out(c);
		if (rc < 0 && rc != -EAGAIN)
			return rc;
		if (buf_len(&c->wout) >= TLS_WOUT_LIMIT)
			return -EAGAIN;
	}
	held = buf_len(&c->tail);
	v[0] = (struct iovec){buf_head(&c->tail), held};
	for (i = 0; i < iovcnt; i++) {
		v[i + 1] = iov[i];
		total += iov[i].iov_len;
	}
	/* Whole records straight from the pieces (the held-back bytes lead the first); what is
	 * left waits for the next call's bytes to fill its record. */
	whole = (held + total) / REC_MAX_PLAIN * REC_MAX_PLAIN;
	if (whole) {
		g.v = v;
		n = rec_write(c, &g, whole, false);
		if (n < 0)
			return n;
		if (c->fatal)
			return c->fatal;
		buf_release(&c->tail); /* all of it went into the first record */
	}
	/* what is left of the pieces (all of them when no record was whole) is held back */
	rest = held + total - whole - buf_len(&c->tail);
	if (rest) {
		d = buf_reserve(&c->tail, rest);
		if (!d)
			return rec_fail(c, -ENOMEM, 0, "write: out of memory");
		gather_copy(&g, d, rest);
		buf_commit(&c->tail, rest);
	}
	return (ssize_t)total;
}

int tls_flush(struct tls_conn *c)
{
	int rc;

	if (c->fatal)
		return c->fatal;
	c->want = 0;
	rc = seal_tail(c);
	return rc ? rc : flush_out(c);
}

bool tls_write_pending(const struct tls_conn *c)
{
	return buf_len(&c->wout) > 0 || buf_len(&c->tail) > 0;
}

void tls_close_notify(struct tls_conn *c)
{
	static const uint8_t close_notify[2] = {SSL3_AL_WARNING, SSL_AD_CLOSE_NOTIFY};

	if (c->notified || c->fatal || !c->done)
		return;
	c->notified = true;
	if (c->records && seal_tail(c))
		return;
	if (!rec_seal(c, REC_ALERT, close_notify, sizeof(close_notify)))
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

void tls_set_rekey_records(struct tls_conn *c, uint64_t records)
{
	c->rekey_after = records;
}

size_t tls_buffered(const struct tls_conn *c)
{
	return (c->rbuf ? TLS_RBUF_CAP : 0) + c->wout.cap + c->tail.cap + c->hs.cap;
}
