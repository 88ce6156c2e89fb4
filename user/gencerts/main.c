// SPDX-License-Identifier: MIT
/* ntun-gencerts: writes a CA and per-role EC P-256 leaves with SPIFFE URI SANs, or issues one
 * more leaf from an existing CA. Uses the OpenSSL 3 API only (no openssl CLI); not a full CA. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#ifndef NTUN_VERSION
#define NTUN_VERSION "unknown"
#endif

#define PROG	     "ntun-gencerts"
#define MAX_SANS     32
#define MAX_DAYS     36500
#define SKEW_SECONDS 300 /* notBefore is backdated this much for clock skew between hosts */

struct opts {
	const char *out;
	const char *trust_domain; /* NULL: default, or the CA's for --issue */
	const char *server_id, *client_id, *proxy_id;
	const char *sans[MAX_SANS];
	int nsans;
	bool force;
	long days;    /* leaves */
	long ca_days; /* the CA; never shorter than days */
	bool ca_days_given;
	const char *issue_role; /* --issue mode when set */
	const char *issue_id;
	const char *issue_name;
};

/* One certificate to write: role NULL is the CA. */
struct spec {
	const char *role;
	const char *id;
	const char *dir; /* subdirectory of out */
};

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: " PROG " [options]\n"
		"  or:  " PROG " --issue ROLE --id ID [--name SUBDIR] [options]\n"
		"\n"
		"Writes OUT/{ca,server,client,proxy}/{cert.pem,key.pem}: a CA and EC P-256 leaves\n"
		"whose URI SAN is spiffe://TRUST-DOMAIN/ROLE/ID. Keys are created mode 0600.\n"
		"With --issue, writes one more leaf OUT/SUBDIR/{cert,key}.pem signed by OUT/ca.\n"
		"\n"
		"Options:\n"
		"  --out DIR            output directory (default ./certs)\n"
		"  --trust-domain TD    SPIFFE trust domain (default ntun.local; with --issue,\n"
		"                       the CA's)\n"
		"  --server-id ID       id of the server certificate (default server-1)\n"
		"  --client-id ID       id of the client certificate (default client-1)\n"
		"  --proxy-id ID        id of the proxy certificate (default proxy-1)\n"
		"  --server-san NAME    extra DNS name or IP address for server certificates\n"
		"                       (repeatable; localhost and 127.0.0.1 are always included)\n"
		"  --days N             validity of the leaves in days (default 825)\n"
		"  --ca-days N          validity of the CA in days (default 3650, at least --days;\n"
		"                       a leaf never outlives its CA)\n"
		"  --force              replace existing files\n"
		"  --issue ROLE         issue one leaf (server, client or proxy) from OUT/ca\n"
		"  --id ID              its SPIFFE id (with --issue)\n"
		"  --name SUBDIR        its directory under OUT (with --issue; default ID)\n"
		"  --help               show this help\n"
		"  --version            show the version\n");
}

static void ossl_error(const char *what)
{
	unsigned long e;
	char buf[256];
	bool any = false;

	fprintf(stderr, PROG ": %s", what);
	while ((e = ERR_get_error())) {
		ERR_error_string_n(e, buf, sizeof(buf));
		fprintf(stderr, "%s%s", any ? "; " : ": ", buf);
		any = true;
	}
	fputc('\n', stderr);
}

/* ---- validation ------------------------------------------------------------------------- */

static bool valid_chars(const char *s, size_t max, bool upper)
{
	size_t len = strlen(s);

	if (!len || len > max)
		return false;
	for (size_t i = 0; i < len; i++) {
		char ch = s[i];

		if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '.' ||
		      ch == '-' || ch == '_' || (upper && ch >= 'A' && ch <= 'Z')))
			return false;
	}
	return true;
}

/* SPIFFE trust domains: lowercase letters, digits, '.', '-', '_' (tls.c accepts up to 127). */
static bool valid_trust_domain(const char *s)
{
	return valid_chars(s, 127, false);
}

static bool valid_id(const char *s)
{
	return valid_chars(s, 127, true) && strcmp(s, ".") && strcmp(s, "..");
}

static bool valid_role(const char *s)
{
	return !strcmp(s, "server") || !strcmp(s, "client") || !strcmp(s, "proxy");
}

/* A DNS name: labels of letters, digits and '-', optionally "*." in front. */
static bool valid_dns(const char *s)
{
	size_t label = 0;

	if (!strncmp(s, "*.", 2))
		s += 2;
	if (!*s || strlen(s) > 253)
		return false;
	for (; *s; s++) {
		if (*s == '.') {
			if (!label)
				return false;
			label = 0;
			continue;
		}
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || *s == '-') ||
		    ++label > 63)
			return false;
	}
	return label > 0;
}

/* ---- files ------------------------------------------------------------------------------ */

static int path_join(char *dst, const char *dir, const char *sub, const char *file)
{
	int n = snprintf(dst, PATH_MAX, "%s/%s%s%s", dir, sub, file ? "/" : "", file ? file : "");

	if (n < 0 || n >= PATH_MAX) {
		fprintf(stderr, PROG ": path too long: %s/%s\n", dir, sub);
		return -ENAMETOOLONG;
	}
	return 0;
}

/* mkdir that accepts an existing directory. */
static int make_dir(const char *path, mode_t mode)
{
	struct stat st;

	if (!mkdir(path, mode))
		return 0;
	if (errno == EEXIST && !stat(path, &st) && S_ISDIR(st.st_mode))
		return 0;
	fprintf(stderr, PROG ": cannot create directory %s: %s\n", path,
		errno == EEXIST ? "exists and is not a directory" : strerror(errno));
	return -1;
}

/* mkdir -p for the output directory. */
static int make_dirs(const char *path)
{
	char buf[PATH_MAX];
	size_t len = strlen(path);

	if (len >= sizeof(buf)) {
		fprintf(stderr, PROG ": path too long: %s\n", path);
		return -1;
	}
	memcpy(buf, path, len + 1);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (make_dir(buf, 0755))
			return -1;
		*p = '/';
	}
	return make_dir(buf, 0755);
}

static bool exists(const char *path)
{
	struct stat st;

	return !lstat(path, &st);
}

/* Creates path exclusively with mode (never chmod afterwards: the key is never readable by
 * others, not even for an instant). With force an existing file is unlinked first. */
static FILE *create_file(const char *path, mode_t mode, bool force)
{
	FILE *f;
	int fd;

	if (force && unlink(path) && errno != ENOENT) {
		fprintf(stderr, PROG ": cannot replace %s: %s\n", path, strerror(errno));
		return NULL;
	}
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
	if (fd < 0) {
		if (errno == EEXIST)
			fprintf(stderr, PROG ": refusing to overwrite %s (use --force)\n", path);
		else
			fprintf(stderr, PROG ": cannot create %s: %s\n", path, strerror(errno));
		return NULL;
	}
	f = fdopen(fd, "w");
	if (!f) {
		fprintf(stderr, PROG ": cannot create %s: %s\n", path, strerror(errno));
		close(fd);
		unlink(path);
	}
	return f;
}

static int finish_file(FILE *f, const char *path, bool ok)
{
	if (ok && !ferror(f) && !fclose(f))
		return 0;
	if (ok)
		fprintf(stderr, PROG ": cannot write %s: %s\n", path, strerror(errno));
	else
		fclose(f);
	unlink(path);
	return -1;
}

static int write_key(const char *path, EVP_PKEY *key, bool force)
{
	FILE *f = create_file(path, 0600, force);
	bool ok;

	if (!f)
		return -1;
	ok = PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL) == 1;
	if (!ok)
		ossl_error("cannot encode private key");
	if (finish_file(f, path, ok))
		return -1;
	printf("wrote %s\n", path);
	return 0;
}

static int write_cert(const char *path, X509 *x, const char *uri, bool force)
{
	FILE *f = create_file(path, 0644, force);
	bool ok;

	if (!f)
		return -1;
	ok = PEM_write_X509(f, x) == 1;
	if (!ok)
		ossl_error("cannot encode certificate");
	if (finish_file(f, path, ok))
		return -1;
	printf("wrote %s (%s)\n", path, uri);
	return 0;
}

/* ---- certificates ----------------------------------------------------------------------- */

static int add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX v3;
	X509_EXTENSION *ext;
	int ret = -1;

	X509V3_set_ctx(&v3, issuer, x, NULL, NULL, 0);
	ext = X509V3_EXT_nconf_nid(NULL, &v3, nid, value);
	if (ext && X509_add_ext(x, ext, -1))
		ret = 0;
	else
		ossl_error(value);
	X509_EXTENSION_free(ext);
	return ret;
}

static int push_name(GENERAL_NAMES *gens, int type, const char *value)
{
	GENERAL_NAME *g = GENERAL_NAME_new();
	ASN1_STRING *s = NULL;

	if (!g)
		goto err;
	if (type == GEN_IPADD) {
		s = a2i_IPADDRESS(value);
	} else {
		s = ASN1_IA5STRING_new();
		if (s && !ASN1_STRING_set(s, value, -1)) {
			ASN1_STRING_free(s);
			s = NULL;
		}
	}
	if (!s)
		goto err;
	GENERAL_NAME_set0_value(g, type, s);
	if (!sk_GENERAL_NAME_push(gens, g))
		goto err;
	return 0;
err:
	GENERAL_NAME_free(g);
	ossl_error("cannot build subjectAltName");
	return -1;
}

/* Is value an IPv4/IPv6 literal? a2i_IPADDRESS says so without side effects but the queue. */
static bool is_ip(const char *value)
{
	ASN1_OCTET_STRING *ip = a2i_IPADDRESS(value);

	ERR_clear_error();
	ASN1_OCTET_STRING_free(ip);
	return ip != NULL;
}

static int add_san(X509 *x, const char *uri, const struct opts *o, bool server)
{
	GENERAL_NAMES *gens = sk_GENERAL_NAME_new_null();
	int ret = -1;

	if (!gens || push_name(gens, GEN_URI, uri))
		goto out;
	if (server) {
		/* What a client dialing this host by name or loopback address checks. */
		if (push_name(gens, GEN_DNS, "localhost") ||
		    push_name(gens, GEN_IPADD, "127.0.0.1"))
			goto out;
		for (int i = 0; i < o->nsans; i++) {
			if (!strcmp(o->sans[i], "localhost") || !strcmp(o->sans[i], "127.0.0.1"))
				continue;
			if (push_name(gens, is_ip(o->sans[i]) ? GEN_IPADD : GEN_DNS, o->sans[i]))
				goto out;
		}
	}
	if (X509_add1_ext_i2d(x, NID_subject_alt_name, gens, 0, X509V3_ADD_DEFAULT) != 1) {
		ossl_error("cannot add subjectAltName");
		goto out;
	}
	ret = 0;
out:
	GENERAL_NAMES_free(gens);
	return ret;
}

static int set_serial(X509 *x)
{
	unsigned char raw[16];
	BIGNUM *bn = NULL;
	int ret = -1;

	if (RAND_bytes(raw, sizeof(raw)) != 1)
		goto out;
	raw[0] &= 0x7f; /* positive, and at most 128 bits as RFC 5280 wants (<= 20 octets) */
	raw[0] |= 0x40; /* never a short or zero serial */
	bn = BN_bin2bn(raw, sizeof(raw), NULL);
	if (bn && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)))
		ret = 0;
out:
	if (ret)
		ossl_error("cannot make a serial number");
	BN_free(bn);
	OPENSSL_cleanse(raw, sizeof(raw));
	return ret;
}

static int set_name(X509 *x, const char *org_unit, const char *cn)
{
	X509_NAME *name = X509_get_subject_name(x);

	if (!X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, (const unsigned char *)"ntun", -1,
					-1, 0) ||
	    (org_unit && !X509_NAME_add_entry_by_txt(name, "OU", MBSTRING_ASC,
						     (const unsigned char *)org_unit, -1, -1, 0)) ||
	    !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1,
					0)) {
		ossl_error("cannot set subject name");
		return -1;
	}
	return 0;
}

/* Builds and signs one certificate for key. ca/ca_key NULL: a self-signed CA. */
static X509 *make_cert(const struct spec *sp, const char *uri, EVP_PKEY *key, X509 *ca,
		       EVP_PKEY *ca_key, const struct opts *o)
{
	bool is_ca = !sp->role, server = sp->role && !strcmp(sp->role, "server");
	X509 *x = X509_new();
	char cn[192];

	if (!x) {
		ossl_error("cannot allocate certificate");
		return NULL;
	}
	if (is_ca)
		snprintf(cn, sizeof(cn), "ntun CA %s", o->trust_domain);
	else
		snprintf(cn, sizeof(cn), "%s", sp->id);
	if (!X509_set_version(x, X509_VERSION_3) || set_serial(x) ||
	    set_name(x, is_ca ? NULL : sp->role, cn) ||
	    !X509_set_issuer_name(x, X509_get_subject_name(is_ca ? x : ca)) ||
	    !X509_gmtime_adj(X509_getm_notBefore(x), -SKEW_SECONDS) ||
	    !X509_time_adj_ex(X509_getm_notAfter(x), (int)(is_ca ? o->ca_days : o->days), 0,
			      NULL) ||
	    !X509_set_pubkey(x, key))
		goto err;
	/* A leaf never outlives its CA (past the CA's notAfter it fails to verify anyway): it is
	 * refused, unless only the seconds between making the two separate them. */
	if (!is_ca && ASN1_TIME_compare(X509_get0_notAfter(x), X509_get0_notAfter(ca)) > 0) {
		int day = 0, sec = 0;

		if (!ASN1_TIME_diff(&day, &sec, X509_get0_notAfter(ca), X509_get0_notAfter(x)) ||
		    day >= 1) {
			ASN1_TIME_diff(&day, &sec, NULL, X509_get0_notAfter(ca));
			fprintf(stderr,
				PROG ": --days %ld would outlive the CA, which expires in %d days: "
				     "pass a shorter --days or make a new CA\n",
				o->days, day);
			goto err_quiet;
		}
		if (!X509_set1_notAfter(x, X509_get0_notAfter(ca)))
			goto err;
	}
	/* The subject key id goes first: a self-signed CA's authority key id is taken from it. */
	if (add_ext(x, is_ca ? x : ca, NID_subject_key_identifier, "hash") ||
	    add_ext(x, is_ca ? x : ca, NID_authority_key_identifier, "keyid:always") ||
	    add_ext(x, NULL, NID_basic_constraints,
		    is_ca ? "critical,CA:TRUE,pathlen:0" : "critical,CA:FALSE") ||
	    add_ext(x, NULL, NID_key_usage,
		    is_ca ? "critical,keyCertSign,cRLSign" : "critical,digitalSignature") ||
	    (!is_ca && add_ext(x, NULL, NID_ext_key_usage, server ? "serverAuth" : "clientAuth")) ||
	    add_san(x, uri, o, server))
		goto err_quiet;
	if (!X509_sign(x, is_ca ? key : ca_key, EVP_sha256()))
		goto err;
	return x;
err:
	ossl_error("cannot build certificate");
err_quiet:
	X509_free(x);
	return NULL;
}

/* Generates a key and certificate for sp and writes both under o->out/sp->dir. */
static int issue(const struct spec *sp, X509 *ca, EVP_PKEY *ca_key, const struct opts *o,
		 X509 **cert_out, EVP_PKEY **key_out)
{
	char dir[PATH_MAX], kpath[PATH_MAX], cpath[PATH_MAX], uri[320];
	EVP_PKEY *key = NULL;
	X509 *x = NULL;
	int ret = -1;

	if (sp->role)
		snprintf(uri, sizeof(uri), "spiffe://%s/%s/%s", o->trust_domain, sp->role, sp->id);
	else
		snprintf(uri, sizeof(uri), "spiffe://%s", o->trust_domain);
	if (path_join(dir, o->out, sp->dir, NULL) || path_join(kpath, o->out, sp->dir, "key.pem") ||
	    path_join(cpath, o->out, sp->dir, "cert.pem") || make_dir(dir, 0700))
		goto out;
	key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	if (!key) {
		ossl_error("cannot generate an EC P-256 key");
		goto out;
	}
	x = make_cert(sp, uri, key, ca, ca_key, o);
	if (!x || write_key(kpath, key, o->force) || write_cert(cpath, x, uri, o->force))
		goto out;
	ret = 0;
out:
	if (!ret && cert_out) {
		*cert_out = x;
		*key_out = key;
	} else {
		X509_free(x);
		EVP_PKEY_free(key);
	}
	return ret;
}

/* Fails, naming the file, if any of sp's files exists and --force was not given. */
static int check_free(const struct spec *sp, const struct opts *o)
{
	static const char *const files[] = {"key.pem", "cert.pem"};
	char path[PATH_MAX];

	if (o->force)
		return 0;
	for (size_t i = 0; i < 2; i++) {
		if (path_join(path, o->out, sp->dir, files[i]))
			return -1;
		if (exists(path)) {
			fprintf(stderr, PROG ": refusing to overwrite %s (use --force)\n", path);
			return -1;
		}
	}
	return 0;
}

/* Reads one PEM object (a certificate, or a private key when key is true) from path. */
static void *read_pem(const char *path, bool key)
{
	FILE *f = fopen(path, "re");
	void *obj;

	if (!f) {
		fprintf(stderr, PROG ": cannot read %s: %s\n", path, strerror(errno));
		return NULL;
	}
	obj = key ? (void *)PEM_read_PrivateKey(f, NULL, NULL, NULL)
		  : (void *)PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	if (!obj)
		ossl_error(path);
	return obj;
}

/* The trust domain of a CA's spiffe://TD URI SAN into td, or -1. */
static int ca_trust_domain(X509 *ca, char *td, size_t tdsz)
{
	GENERAL_NAMES *gens = X509_get_ext_d2i(ca, NID_subject_alt_name, NULL, NULL);
	int ret = -1;

	for (int i = 0; i < sk_GENERAL_NAME_num(gens) && ret; i++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
		const char *s;
		int len;

		if (g->type != GEN_URI)
			continue;
		s = (const char *)ASN1_STRING_get0_data(g->d.uniformResourceIdentifier);
		len = ASN1_STRING_length(g->d.uniformResourceIdentifier);
		if (len <= 9 || (size_t)len - 9 >= tdsz || strncmp(s, "spiffe://", 9))
			continue;
		snprintf(td, tdsz, "%.*s", len - 9, s + 9);
		if (valid_trust_domain(td))
			ret = 0;
	}
	GENERAL_NAMES_free(gens);
	ERR_clear_error();
	return ret;
}

/* Loads OUT/ca and, unless given, takes the trust domain from its spiffe://TD URI SAN. On
 * success the caller owns *ca and *ca_key. */
static int load_ca(struct opts *o, X509 **ca, EVP_PKEY **ca_key, char *td, size_t tdsz)
{
	char cpath[PATH_MAX], kpath[PATH_MAX];

	if (path_join(cpath, o->out, "ca", "cert.pem") || path_join(kpath, o->out, "ca", "key.pem"))
		goto err;
	*ca = read_pem(cpath, false);
	*ca_key = *ca ? read_pem(kpath, true) : NULL;
	if (!*ca_key)
		goto err;
	if (X509_check_private_key(*ca, *ca_key) != 1) {
		ERR_clear_error();
		fprintf(stderr, PROG ": %s does not match %s\n", kpath, cpath);
		goto err;
	}
	if (!o->trust_domain) {
		if (ca_trust_domain(*ca, td, tdsz)) {
			fprintf(stderr,
				PROG
				": %s has no spiffe://TRUST-DOMAIN URI SAN; pass --trust-domain\n",
				cpath);
			goto err;
		}
		o->trust_domain = td;
	}
	return 0;
err:
	X509_free(*ca);
	EVP_PKEY_free(*ca_key);
	*ca = NULL;
	*ca_key = NULL;
	return -1;
}

/* ---- main ------------------------------------------------------------------------------- */

enum {
	OPT_OUT = 256,
	OPT_TD,
	OPT_CLIENT,
	OPT_PROXY,
	OPT_SERVER,
	OPT_SAN,
	OPT_FORCE,
	OPT_DAYS,
	OPT_CA_DAYS,
	OPT_ISSUE,
	OPT_ID,
	OPT_NAME,
	OPT_HELP,
	OPT_VERSION
};

static int parse_args(int argc, char **argv, struct opts *o)
{
	static const struct option longopts[] = {
		{"out", required_argument, NULL, OPT_OUT},
		{"trust-domain", required_argument, NULL, OPT_TD},
		{"client-id", required_argument, NULL, OPT_CLIENT},
		{"proxy-id", required_argument, NULL, OPT_PROXY},
		{"server-id", required_argument, NULL, OPT_SERVER},
		{"server-san", required_argument, NULL, OPT_SAN},
		{"force", no_argument, NULL, OPT_FORCE},
		{"days", required_argument, NULL, OPT_DAYS},
		{"ca-days", required_argument, NULL, OPT_CA_DAYS},
		{"issue", required_argument, NULL, OPT_ISSUE},
		{"id", required_argument, NULL, OPT_ID},
		{"name", required_argument, NULL, OPT_NAME},
		{"help", no_argument, NULL, OPT_HELP},
		{"version", no_argument, NULL, OPT_VERSION},
		{NULL, 0, NULL, 0},
	};
	char *end;
	int c;

	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case OPT_OUT:
			o->out = optarg;
			break;
		case OPT_TD:
			o->trust_domain = optarg;
			break;
		case OPT_CLIENT:
			o->client_id = optarg;
			break;
		case OPT_PROXY:
			o->proxy_id = optarg;
			break;
		case OPT_SERVER:
			o->server_id = optarg;
			break;
		case OPT_SAN:
			if (o->nsans == MAX_SANS) {
				fprintf(stderr, PROG ": at most %d --server-san\n", MAX_SANS);
				return 2;
			}
			o->sans[o->nsans++] = optarg;
			break;
		case OPT_FORCE:
			o->force = true;
			break;
		case OPT_DAYS:
		case OPT_CA_DAYS: {
			long *days = c == OPT_DAYS ? &o->days : &o->ca_days;

			errno = 0;
			*days = strtol(optarg, &end, 10);
			if (errno || *end || end == optarg || *days < 1 || *days > MAX_DAYS) {
				fprintf(stderr, PROG ": --%s '%s': want 1..%d\n",
					c == OPT_DAYS ? "days" : "ca-days", optarg, MAX_DAYS);
				return 2;
			}
			o->ca_days_given |= c == OPT_CA_DAYS;
			break;
		}
		case OPT_ISSUE:
			o->issue_role = optarg;
			break;
		case OPT_ID:
			o->issue_id = optarg;
			break;
		case OPT_NAME:
			o->issue_name = optarg;
			break;
		case OPT_HELP:
			usage(stdout);
			return 0;
		case OPT_VERSION:
			printf(PROG " %s\n", NTUN_VERSION);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, PROG ": unexpected argument '%s'\n", argv[optind]);
		return 2;
	}
	return -1;
}

static int check_args(struct opts *o)
{
	const char *ids[] = {o->server_id, o->client_id, o->proxy_id, o->issue_id};

	if (!*o->out) {
		fprintf(stderr, PROG ": --out is empty\n");
		return -1;
	}
	if (o->trust_domain && !valid_trust_domain(o->trust_domain)) {
		fprintf(stderr, PROG ": --trust-domain '%s': want 1-127 of [a-z0-9._-]\n",
			o->trust_domain);
		return -1;
	}
	for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
		if (ids[i] && !valid_id(ids[i])) {
			fprintf(stderr, PROG ": id '%s': want 1-127 of [A-Za-z0-9._-]\n", ids[i]);
			return -1;
		}
	}
	for (int i = 0; i < o->nsans; i++) {
		if (!is_ip(o->sans[i]) && !valid_dns(o->sans[i])) {
			fprintf(stderr,
				PROG
				": --server-san '%s' is neither an IP address nor a DNS name\n",
				o->sans[i]);
			return -1;
		}
	}
	if (!o->issue_role) {
		if (o->issue_id || o->issue_name) {
			fprintf(stderr, PROG ": --id and --name go with --issue\n");
			return -1;
		}
		if (o->days > o->ca_days) {
			fprintf(stderr,
				PROG ": --days %ld outlives the CA (--ca-days %ld): leaves must "
				     "expire before their CA\n",
				o->days, o->ca_days);
			return -1;
		}
		return 0;
	}
	if (o->ca_days_given) {
		fprintf(stderr, PROG ": --ca-days goes without --issue (the CA exists)\n");
		return -1;
	}
	if (!valid_role(o->issue_role)) {
		fprintf(stderr, PROG ": --issue '%s': want server, client or proxy\n",
			o->issue_role);
		return -1;
	}
	if (!o->issue_id) {
		fprintf(stderr, PROG ": --issue needs --id\n");
		return -1;
	}
	if (!o->issue_name)
		o->issue_name = o->issue_id;
	if (!valid_id(o->issue_name) || !strcmp(o->issue_name, "ca")) {
		fprintf(stderr, PROG ": --name '%s': want a plain directory name other than 'ca'\n",
			o->issue_name);
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct opts o = {
		.out = "./certs",
		.server_id = "server-1",
		.client_id = "client-1",
		.proxy_id = "proxy-1",
		.days = 825,
		.ca_days = 3650,
	};
	char ca_td[128];
	X509 *ca = NULL;
	EVP_PKEY *ca_key = NULL;
	int ret = 1, rc;

	rc = parse_args(argc, argv, &o);
	if (rc >= 0)
		return rc;
	if (check_args(&o))
		return 2;
	umask(022); /* the modes asked for are the modes written */
	if (o.issue_role) {
		const struct spec sp = {o.issue_role, o.issue_id, o.issue_name};

		if (load_ca(&o, &ca, &ca_key, ca_td, sizeof(ca_td)) || check_free(&sp, &o) ||
		    issue(&sp, ca, ca_key, &o, NULL, NULL))
			goto out;
	} else {
		const struct spec all[] = {
			{NULL, NULL, "ca"},
			{"server", o.server_id, "server"},
			{"client", o.client_id, "client"},
			{"proxy", o.proxy_id, "proxy"},
		};

		if (!o.trust_domain)
			o.trust_domain = "ntun.local";
		/* Check everything first so a refusal leaves no half-written set behind. */
		for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
			if (check_free(&all[i], &o))
				goto out;
		if (make_dirs(o.out) || issue(&all[0], NULL, NULL, &o, &ca, &ca_key))
			goto out;
		for (size_t i = 1; i < sizeof(all) / sizeof(all[0]); i++)
			if (issue(&all[i], ca, ca_key, &o, NULL, NULL))
				goto out;
	}
	ret = 0;
out:
	X509_free(ca);
	EVP_PKEY_free(ca_key);
	return ret;
}
