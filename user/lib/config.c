// SPDX-License-Identifier: MIT
/* Configuration: one table of settings drives the YAML/JSON reader, .env files, NTUN_*
 * variables, getopt_long flags and --help. Validates syntax only: opens no sockets, reads no keys.
 *
 * Precedence, lowest first: defaults, the YAML file, each --env-file in order, the environment,
 * flags in order. A later source replaces a scalar, and replaces a list (cidrs, routes, grants) as
 * a whole; repeated flags of one list append to each other. An empty value (or YAML null) resets
 * a setting to its default. tls.insecure is passed to the TLS layer, where it skips only the
 * server-name check (tls.server_name, by default the host of server_addr): the chain, the SPIFFE
 * role and the trust domain are always verified.
 *
 * No global state besides getopt's (optind is reset on every call), so config_load may run
 * again for a SIGHUP reload. */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

#ifndef NTUN_VERSION
#define NTUN_VERSION "unknown"
#endif

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#define D_CLIENT (1u << CONFIG_CLIENT)
#define D_SERVER (1u << CONFIG_SERVER)
#define D_PROXY	 (1u << CONFIG_PROXY)
#define D_ALL	 (D_CLIENT | D_SERVER | D_PROXY)

#define ID_MAX 63 /* ids and instance names; fits struct route's proxy_id */

extern char **environ;

enum opt_type {
	OPT_STR,	 /* any text (file paths, log output) */
	OPT_ID,		 /* 1..63 of [A-Za-z0-9._-], not "." or ".." */
	OPT_ABSPATH,	 /* absolute path */
	OPT_ADMIN,	 /* "off" or the absolute path of a unix socket */
	OPT_HOSTPORT,	 /* HOST:PORT, an IPv6 host in brackets */
	OPT_LISTEN,	 /* [HOST]:PORT to bind, IPv4; ":PORT" is stored as "0.0.0.0:PORT" */
	OPT_HOSTPORTS,	 /* list of HOST:PORT (char *), at most CONFIG_MAX_SERVERS */
	OPT_PORT,	 /* 1..65535 */
	OPT_U32,	 /* 0..4294967295 */
	OPT_MS,		 /* duration > 0, stored in milliseconds */
	OPT_MS0,	 /* duration >= 0 */
	OPT_BOOL,	 /* true|false|yes|no|on|off|1|0 */
	OPT_LOG_LEVEL,	 /* debug|info|warn|error */
	OPT_LOG_FORMAT,	 /* json|text */
	OPT_INTERCEPT,	 /* auto|bpf|iptables */
	OPT_COMPRESSION, /* identity|gzip, stored as bool gzip */
	OPT_CIDRS,	 /* list of struct cidr */
	OPT_ROUTES,	 /* list of struct config_route */
	OPT_GRANTS,	 /* list of struct route_grant */
	OPT_POLICY,	 /* list of struct policy_rule */
	OPT_IFNAME,	 /* network interface name, 1..15 characters, no '/', ':' or space */
	OPT_XDP_MODE,	 /* auto|native|generic */
};

/* One setting. key is its YAML path; the NTUN_* name is derived from it. */
struct opt {
	const char *key;
	const char *flag;    /* long flag without "--" */
	const char *metavar; /* NULL: a boolean flag, true unless given as --flag=false */
	enum opt_type type;
	unsigned daemons;  /* D_* where the setting is valid */
	unsigned required; /* D_* where it must be set after merging */
	size_t off;	   /* field in struct config */
	size_t n_off;	   /* count field, lists only */
	const char *def;   /* default, parsed like any other value; NULL = zero/empty */
	const char *help;
};

#define F(field) offsetof(struct config, field)

static const struct opt opts[] = {
	{"server_addr", "server", "HOST:PORT,...", OPT_HOSTPORTS, D_CLIENT | D_PROXY,
	 D_CLIENT | D_PROXY, F(server_addr), F(n_server_addr), NULL,
	 "ntun-server(s) (repeatable); a name is one server per address"},
	{"target_cidr", "cidr", "CIDR", OPT_CIDRS, D_CLIENT, 0, F(target_cidr), F(n_target_cidr),
	 NULL, "intercept connections to CIDR (repeatable; none: follow the server's routes)"},
	{"listen_port", "listen-port", "PORT", OPT_PORT, D_CLIENT, 0, F(listen_port), 0, "15001",
	 "loopback port intercepted connections are sent to"},
	{"client_id", "client-id", "ID", OPT_ID, D_CLIENT, 0, F(client_id), 0, NULL,
	 "informative id; the certificate's id is authoritative"},
	{"cgroup", "cgroup", "PATH", OPT_ABSPATH, D_CLIENT, 0, F(cgroup), 0, NULL,
	 "cgroup v2 directory whose processes are intercepted (default: v2 root)"},
	{"intercept", "intercept", "MODE", OPT_INTERCEPT, D_CLIENT, 0, F(intercept), 0, "auto",
	 "auto, bpf or iptables"},
	{"instance", "instance", "NAME", OPT_ID, D_CLIENT | D_SERVER, 0, F(instance), 0, "default",
	 "names the BPF pin directory /sys/fs/bpf/ntun/NAME (server: server-NAME) and the admin "
	 "socket /run/ntun/DAEMON-NAME.sock: several on one host"},
	{"fail_closed", "fail-closed", NULL, OPT_BOOL, D_CLIENT, 0, F(fail_closed), 0, "false",
	 "keep intercepting while the client is down: connects are refused (=false to unset)"},
	{"listen_addr", "listen", "[ADDR]:PORT", OPT_LISTEN, D_SERVER, 0, F(listen_addr), 0,
	 "0.0.0.0:8443", "address clients and proxies connect to (no ADDR: every address)"},
	{"routes", "route", "VIRT=PROXY[:REAL]", OPT_ROUTES, D_SERVER, 0, F(routes), F(n_routes),
	 NULL, "static route; REAL defaults to VIRT (repeatable)"},
	{"proxies", "grant", "ID=PREFIX", OPT_GRANTS, D_SERVER, 0, F(grants), F(n_grants), NULL,
	 "proxy ID (or *) may register virtual prefixes inside PREFIX (repeatable)"},
	{"policy", "allow", "CLIENT=DEST", OPT_POLICY, D_SERVER, 0, F(policy), F(n_policy), NULL,
	 "client (spiffe:// URI or *) may dial DEST = CIDR[:PORT[-PORT]] (repeatable)"},
	{"max_handshakes", "max-handshakes", "N", OPT_U32, D_SERVER, 0, F(max_handshakes), 0,
	 "1024", "TLS handshakes in progress at once; more connections are closed at accept"},
	{"max_handshakes_per_source", "max-handshakes-per-source", "N", OPT_U32, D_SERVER, 0,
	 F(max_handshakes_per_source), 0, "64", "TLS handshakes in progress from one address"},
	{"proxy_id", "proxy-id", "ID", OPT_ID, D_PROXY, D_PROXY, F(proxy_id), 0, NULL,
	 "this proxy's id; must equal the id in its certificate"},
	{"managed_cidr", "managed-cidr", "CIDR", OPT_CIDRS, D_PROXY, D_PROXY, F(managed_cidr),
	 F(n_managed_cidr), NULL, "real network this proxy reaches (repeatable)"},
	{"virtual_cidr", "virtual-cidr", "CIDR", OPT_CIDRS, D_PROXY, 0, F(virtual_cidr),
	 F(n_virtual_cidr), NULL,
	 "prefix clients dial for the managed CIDR at the same position (repeatable)"},
	{"capacity", "capacity", "N", OPT_U32, D_PROXY, 0, F(capacity), 0, "0",
	 "maximum concurrent dials, 0 = unlimited"},
	{"allow_local", "allow-local", NULL, OPT_BOOL, D_PROXY, 0, F(allow_local), 0, "false",
	 "also dial loopback, link-local, multicast and this host's addresses (=false to unset)"},
	{"metrics_addr", "metrics", "ADDR:PORT", OPT_HOSTPORT, D_ALL, 0, F(metrics_addr), 0, NULL,
	 "Prometheus metrics on this loopback address (default: off)"},
	{"admin", "admin", "PATH|off", OPT_ADMIN, D_ALL, 0, F(admin), 0, NULL,
	 "admin API unix socket (default: /run/ntun/DAEMON[-INSTANCE].sock; off: none)"},
	{"tls.cert_file", "tls-cert", "FILE", OPT_STR, D_ALL, D_ALL, F(tls.cert_file), 0, NULL,
	 "PEM certificate with a SPIFFE URI SAN"},
	{"tls.key_file", "tls-key", "FILE", OPT_STR, D_ALL, D_ALL, F(tls.key_file), 0, NULL,
	 "PEM private key"},
	{"tls.ca_file", "tls-ca", "FILE", OPT_STR, D_ALL, D_ALL, F(tls.ca_file), 0, NULL,
	 "PEM CA bundle peers must chain to"},
	{"tls.server_name", "tls-server-name", "NAME", OPT_STR, D_ALL, 0, F(tls.server_name), 0,
	 NULL, "name the server certificate must have (default: the host of each --server)"},
	{"tls.trust_domain", "trust-domain", "DOMAIN", OPT_STR, D_ALL, 0, F(tls.trust_domain), 0,
	 NULL, "SPIFFE trust domain of peers (default: our certificate's)"},
	{"tls.insecure", "tls-insecure", NULL, OPT_BOOL, D_ALL, 0, F(tls.insecure), 0, "false",
	 "skip only the server-name check, never the chain (=false to unset)"},
	{"log.level", "log-level", "LEVEL", OPT_LOG_LEVEL, D_ALL, 0, F(log.level), 0, "info",
	 "debug, info, warn or error"},
	{"log.format", "log-format", "FORMAT", OPT_LOG_FORMAT, D_ALL, 0, F(log.format), 0, "json",
	 "json or text"},
	{"log.output", "log-output", "OUTPUT", OPT_STR, D_ALL, 0, F(log.output), 0, "stderr",
	 "stderr, stdout or a file path"},
	{"timeouts.connect_ms", "connect-timeout", "DURATION", OPT_MS, D_ALL, 0,
	 F(connect_timeout_ms), 0, "5s", "TCP connect deadline"},
	{"timeouts.handshake_ms", "handshake-timeout", "DURATION", OPT_MS, D_ALL, 0,
	 F(handshake_timeout_ms), 0, "10s", "TLS and HTTP/2 set-up deadline"},
	{"timeouts.idle_ms", "idle-timeout", "DURATION", OPT_MS0, D_ALL, 0, F(idle_timeout_ms), 0,
	 "0", "close tunneled connections idle this long, 0 = never"},
	/* gRPC keepalive (proposal A8), see peer.h for the defaults. The timeouts.ping_* names
	 * are the older spellings of the first two and set the same values. */
	{"keepalive.time_ms", "keepalive-time", "DURATION", OPT_MS0, D_ALL, 0, F(ping_interval_ms),
	 0, "5m", "PING a peer silent this long while calls are open, 0 = never"},
	{"keepalive.timeout_ms", "keepalive-timeout", "DURATION", OPT_MS, D_ALL, 0,
	 F(ping_timeout_ms), 0, "20s",
	 "peer is dead after this long without a PING ack, or TCP keepalive/ACK answers"},
	{"keepalive.permit_without_calls", "keepalive-permit-without-calls", NULL, OPT_BOOL, D_ALL,
	 0, F(ping_without_calls), 0, "false",
	 "PING, and take PINGs, also on connections without open calls (=false to unset)"},
	{"keepalive.min_time_ms", "keepalive-min-time", "DURATION", OPT_MS0, D_ALL, 0,
	 F(ping_min_ms), 0, "1s",
	 "PINGs a peer sends closer than this without data: GOAWAY too_many_pings (0 = any)"},
	{"timeouts.ping_interval_ms", "ping-interval", "DURATION", OPT_MS0, D_ALL, 0,
	 F(ping_interval_ms), 0, "5m", "older name of keepalive.time_ms"},
	{"timeouts.ping_timeout_ms", "ping-timeout", "DURATION", OPT_MS, D_ALL, 0,
	 F(ping_timeout_ms), 0, "20s", "older name of keepalive.timeout_ms"},
	{"timeouts.drain_ms", "drain-timeout", "DURATION", OPT_MS0, D_ALL, 0, F(drain_timeout_ms),
	 0, "5s", "grace period on SIGTERM before connections are closed"},
	{"grpc.compression", "compression", "ALG", OPT_COMPRESSION, D_ALL, 0, F(gzip), 0,
	 "identity", "identity, or gzip: send and accept gzip (both ends of a hop need it)"},
	/* Compressed and control messages are held whole, with their window given back, until
	 * they are complete: this caps what one connection's peer can make us hold that way.
	 * 16 MiB is four largest messages; a bulk tunnel's compressed messages are <= 256 KiB. */
	{"limits.held_bytes", "max-held-bytes", "BYTES", OPT_U32, D_ALL, 0, F(max_held_bytes), 0,
	 "16777216", "bytes of whole messages held per connection; beyond: RESOURCE_EXHAUSTED"},
	/* The connection window's floor (h2.c: it grows with rate x the socket's smallest round
	 * trip). Behind a TCP-terminating balancer the socket sees only the first hop's round
	 * trip: raise the floor to the path's bandwidth-delay product there. */
	{"limits.connection_window", "connection-window", "BYTES", OPT_U32, D_ALL, 0,
	 F(conn_window), 0, "524288",
	 "receive window per connection at least (grows with the path), 65535-2147483647"},
	{"limits.unforwarded_bytes", "max-unforwarded-bytes", "BYTES", OPT_U32, D_ALL, 0,
	 F(max_unforwarded), 0, "1073741824",
	 "bytes a connection's streams may hold waiting to be forwarded; beyond, its window waits"},
	/* One client host carries one stream per tunneled TCP connection (10,000 idle tunnels in
	 * the benchmark, 100,000 wanted), and the server opens one Dial per tunnel on a proxy's
	 * connection. Bytes in flight are bounded by the windows whatever the count; what a
	 * stream costs beyond them is its state (a tunnel's two streams with their calls: 1.2 KB
	 * measured, so 131072 cost about 160 MB), which an authenticated peer may hold: the cap
	 * stops an unbounded flood without limiting a real host. */
	{"limits.max_streams", "max-streams", "N", OPT_U32, D_SERVER | D_PROXY, 0, F(max_streams),
	 0, "131072", "concurrent streams a peer may open, 0 = unlimited"},
	/* Rapid reset (CVE-2023-44487): streams a client resets before its Dial was answered
	 * cost the server and the proxy a dial each and the client nothing. Apps that abort a
	 * connection before the remote end spoke are rare; a storm is thousands a second. */
	{"limits.early_resets", "max-early-resets", "N", OPT_U32, D_SERVER, 0, F(early_resets), 0,
	 "200", "streams a client may reset before they are answered, in a burst (0 = no limit)"},
	/* Per client id (every connection with its certificate counts): one greedy client
	 * cannot take the relay from the others. Over either: RESOURCE_EXHAUSTED. */
	{"limits.client_tunnels", "max-client-tunnels", "N", OPT_U32, D_SERVER, 0,
	 F(client_tunnels), 0, "0", "concurrent tunnels per client id, 0 = no limit"},
	{"limits.client_tunnel_rate", "client-tunnel-rate", "N", OPT_U32, D_SERVER, 0,
	 F(client_tunnel_rate), 0, "0", "new tunnels per second per client id, 0 = no limit"},
	{"timeouts.dial_ms", "dial-timeout", "DURATION", OPT_MS, D_SERVER, 0, F(dial_timeout_ms), 0,
	 "2s", "a proxy that has not answered a Dial this long is passed over for another"},
	{"limits.early_reset_rate", "early-reset-rate", "N", OPT_U32, D_SERVER, 0,
	 F(early_reset_rate), 0, "100", "...and per second after the burst"},
	/* The listener's guard: allow_from is enforced at accept, and before the TCP handshake
	 * by the XDP program when xdp.interface is set. */
	{"allow_from", "allow-from", "CIDR", OPT_CIDRS, D_SERVER, 0, F(allow_from), F(n_allow_from),
	 NULL, "only sources in CIDR may connect (repeatable; none: every source)"},
	{"xdp.interface", "xdp", "IFACE", OPT_IFNAME, D_SERVER, 0, F(xdp_interface), 0, NULL,
	 "guard the listen port with XDP on IFACE: allow_from and a per-source SYN rate"},
	{"xdp.mode", "xdp-mode", "MODE", OPT_XDP_MODE, D_SERVER, 0, F(xdp_mode), 0, "auto",
	 "auto (native, else generic), native or generic"},
	{"xdp.syn_rate", "xdp-syn-rate", "N", OPT_U32, D_SERVER, 0, F(xdp_syn_rate), 0, "50",
	 "SYNs per second one source may send past the burst, 0 = no limit"},
	{"xdp.syn_burst", "xdp-syn-burst", "N", OPT_U32, D_SERVER, 0, F(xdp_syn_burst), 0, "100",
	 "SYNs one source may send at once"},
};

#define N_OPTS ARRAY_SIZE(opts)

/* getopt_long codes of the flags that are not settings. */
enum { FLAG_CONFIG = 1000, FLAG_ENV_FILE, FLAG_CHECK, FLAG_OPT_BASE = 2000 };

enum where_kind { W_FILE, W_ENV, W_FLAG };

/* Where a value came from, for messages: "file:line: key 'k'", "NTUN_K" or "--flag". */
struct where {
	enum where_kind kind;
	const char *file;
	unsigned long line;
	const char *name; /* key path, variable name, or flag without "--" */
};

struct loader {
	struct config *cfg;
	unsigned dmask;
	char *err;
	size_t errsz;
	bool flag_seen[N_OPTS];	  /* lists: later flags of the same list append */
	char origin[N_OPTS][160]; /* where each setting was last set, for post-merge errors */
};

static const char *const daemon_names[] = {"client", "server", "proxy"};

static const char *daemon_name(unsigned dmask)
{
	for (unsigned i = 0; i < ARRAY_SIZE(daemon_names); i++) {
		if (dmask & (1u << i))
			return daemon_names[i];
	}
	return "?";
}

/* ---- messages ---- */

static int fail(struct loader *L, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(struct loader *L, const char *fmt, ...)
{
	va_list ap;

	if (L->err && L->errsz) {
		va_start(ap, fmt);
		vsnprintf(L->err, L->errsz, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

static int fail_nomem(struct loader *L)
{
	fail(L, "out of memory");
	return -ENOMEM;
}

static void where_fmt(const struct where *w, char *buf, size_t size)
{
	switch (w->kind) {
	case W_FILE:
		snprintf(buf, size, "%s:%lu: key '%s'", w->file, w->line, w->name);
		break;
	case W_ENV:
		snprintf(buf, size, "%s", w->name);
		break;
	case W_FLAG:
		snprintf(buf, size, "--%s", w->name);
		break;
	}
}

/* Copies a value for quoting in a message: control characters become '?', long ones are cut. */
static void show(const char *val, char *buf, size_t size)
{
	size_t i;

	for (i = 0; val[i] && i + 1 < size; i++)
		buf[i] = (unsigned char)val[i] < 0x20 || val[i] == 0x7f ? '?' : val[i];
	buf[i] = '\0';
	if (val[i] && size > 4)
		memcpy(buf + size - 4, "...", 4);
}

/* "<where>: <reason> (got '<val>')" */
static int bad(struct loader *L, const struct where *w, const char *val, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int bad(struct loader *L, const struct where *w, const char *val, const char *fmt, ...)
{
	char at[256], why[256], got[96];
	va_list ap;

	where_fmt(w, at, sizeof(at));
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	show(val, got, sizeof(got));
	return fail(L, "%s: %s (got '%s')", at, why, got);
}

/* ---- the table ---- */

/* NTUN_ + key uppercased with dots as underscores. */
static void env_name(const struct opt *o, char *buf, size_t size)
{
	size_t i = 0;

	snprintf(buf, size, "NTUN_");
	for (const char *k = o->key; *k && 5 + i + 1 < size; k++, i++)
		buf[5 + i] = *k == '.' ? '_' : (char)(*k >= 'a' && *k <= 'z' ? *k - 32 : *k);
	buf[5 + i] = '\0';
}

static const struct opt *opt_by_key(const char *key)
{
	for (size_t i = 0; i < N_OPTS; i++) {
		if (!strcmp(opts[i].key, key))
			return &opts[i];
	}
	return NULL;
}

static const struct opt *opt_by_env(const char *name)
{
	char buf[64];

	for (size_t i = 0; i < N_OPTS; i++) {
		env_name(&opts[i], buf, sizeof(buf));
		if (!strcmp(buf, name))
			return &opts[i];
	}
	return NULL;
}

/* True if path names a group of settings such as "tls". */
static bool is_section(const char *path)
{
	size_t n = strlen(path);

	for (size_t i = 0; i < N_OPTS; i++) {
		if (!strncmp(opts[i].key, path, n) && opts[i].key[n] == '.')
			return true;
	}
	return false;
}

static bool is_list(const struct opt *o)
{
	return o->type == OPT_CIDRS || o->type == OPT_ROUTES || o->type == OPT_GRANTS ||
	       o->type == OPT_POLICY || o->type == OPT_HOSTPORTS;
}

static bool is_string(const struct opt *o)
{
	return o->type == OPT_STR || o->type == OPT_ID || o->type == OPT_ABSPATH ||
	       o->type == OPT_HOSTPORT || o->type == OPT_LISTEN || o->type == OPT_IFNAME;
}

static void *field(struct config *cfg, size_t off)
{
	return (char *)cfg + off;
}

static size_t *count_field(struct config *cfg, const struct opt *o)
{
	return (size_t *)field(cfg, o->n_off);
}

static const char *type_desc(const struct opt *o)
{
	switch (o->type) {
	case OPT_PORT:
		return "a port number";
	case OPT_U32:
		return "a number";
	case OPT_MS:
	case OPT_MS0:
		return "a duration";
	case OPT_BOOL:
		return "true or false";
	case OPT_CIDRS:
		return "a CIDR or a list of CIDRs";
	case OPT_HOSTPORTS:
		return "HOST:PORT or a list of them";
	case OPT_ROUTES:
		return "a list of route mappings";
	case OPT_GRANTS:
		return "a list of proxy mappings";
	case OPT_POLICY:
		return "a list of policy rules";
	default:
		return "a string";
	}
}

/* Empties a setting (not to its default: see opt_reset). */
static void opt_clear(struct config *cfg, const struct opt *o)
{
	void *p = field(cfg, o->off);

	switch (o->type) {
	case OPT_STR:
	case OPT_ID:
	case OPT_ABSPATH:
	case OPT_ADMIN:
	case OPT_HOSTPORT:
	case OPT_LISTEN:
	case OPT_IFNAME:
		free(*(char **)p);
		*(char **)p = NULL;
		break;
	case OPT_PORT:
		*(uint16_t *)p = 0;
		break;
	case OPT_U32:
	case OPT_MS:
	case OPT_MS0:
		*(uint32_t *)p = 0;
		break;
	case OPT_BOOL:
	case OPT_COMPRESSION:
		*(bool *)p = false;
		break;
	case OPT_LOG_LEVEL:
		*(enum log_level *)p = LOG_LVL_INFO;
		break;
	case OPT_LOG_FORMAT:
		*(enum log_format *)p = LOG_FMT_JSON;
		break;
	case OPT_INTERCEPT:
		*(enum config_intercept *)p = CONFIG_INTERCEPT_AUTO;
		break;
	case OPT_XDP_MODE:
		*(enum config_xdp_mode *)p = CONFIG_XDP_AUTO;
		break;
	case OPT_CIDRS:
		free(*(struct cidr **)p);
		*(struct cidr **)p = NULL;
		*count_field(cfg, o) = 0;
		break;
	case OPT_ROUTES: {
		struct config_route *r = *(struct config_route **)p;

		for (size_t i = 0; r && i < *count_field(cfg, o); i++)
			free(r[i].proxy_id);
		free(r);
		*(struct config_route **)p = NULL;
		*count_field(cfg, o) = 0;
		break;
	}
	case OPT_POLICY:
		free(*(struct policy_rule **)p);
		*(struct policy_rule **)p = NULL;
		*count_field(cfg, o) = 0;
		break;
	case OPT_GRANTS:
		free(*(struct route_grant **)p);
		*(struct route_grant **)p = NULL;
		*count_field(cfg, o) = 0;
		break;
	case OPT_HOSTPORTS: {
		char **v = *(char ***)p;

		for (size_t i = 0; v && i < *count_field(cfg, o); i++)
			free(v[i]);
		free(v);
		*(char ***)p = NULL;
		*count_field(cfg, o) = 0;
		break;
	}
	}
}

static bool opt_is_set(struct config *cfg, const struct opt *o)
{
	if (is_list(o))
		return *count_field(cfg, o) > 0;
	if (is_string(o))
		return *(char **)field(cfg, o->off) != NULL;
	return true;
}

/* ---- value syntax ---- */

/* Decimal digits only (no sign, no spaces), value <= max. */
static int parse_uint(const char *s, unsigned long long max, unsigned long long *out)
{
	unsigned long long v = 0;

	if (!*s)
		return -EINVAL;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return -EINVAL;
		if (v > (max - (unsigned long long)(*s - '0')) / 10)
			return -ERANGE;
		v = v * 10 + (unsigned long long)(*s - '0');
	}
	*out = v;
	return 0;
}

/* Milliseconds, or a number with unit ms, s, m or h. */
static int parse_ms(const char *s, uint32_t *out)
{
	static const struct {
		const char *unit;
		unsigned long long ms;
	} units[] = {{"", 1}, {"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}};
	char digits[16];
	unsigned long long v;
	size_t n = strspn(s, "0123456789");

	if (n == 0 || n >= sizeof(digits))
		return -EINVAL;
	memcpy(digits, s, n);
	digits[n] = '\0';
	if (parse_uint(digits, UINT32_MAX, &v))
		return -EINVAL;
	for (size_t i = 0; i < ARRAY_SIZE(units); i++) {
		if (!strcmp(s + n, units[i].unit)) {
			if (v > UINT32_MAX / units[i].ms)
				return -ERANGE;
			*out = (uint32_t)(v * units[i].ms);
			return 0;
		}
	}
	return -EINVAL;
}

static int parse_bool(const char *s, bool *out)
{
	static const char *const yes[] = {"true", "yes", "on", "1"};
	static const char *const no[] = {"false", "no", "off", "0"};

	for (size_t i = 0; i < ARRAY_SIZE(yes); i++) {
		if (!strcasecmp(s, yes[i]) || !strcasecmp(s, no[i])) {
			*out = !strcasecmp(s, yes[i]);
			return 0;
		}
	}
	return -EINVAL;
}

static bool valid_id(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > ID_MAX || !strcmp(s, ".") || !strcmp(s, ".."))
		return false;
	for (; *s; s++) {
		char c = *s;

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-'))
			return false;
	}
	return true;
}

/* NULL if s is a usable HOST:PORT (":PORT" too if any_host), else why not, said about what
 * was given. */
static const char *hostport_problem(const char *s, bool any_host)
{
	const char *colon = strrchr(s, ':');
	unsigned long long port;

	if (strpbrk(s, " \t\r\n"))
		return "whitespace in HOST:PORT";
	if (strchr(s, ','))
		return "several addresses are not supported here: give one HOST:PORT";
	if (strstr(s, "://"))
		return "expected HOST:PORT without a scheme such as https://";
	if (!colon)
		return "missing ':PORT' after the host, as in relay.example.net:8443";
	if (colon == s && !any_host)
		return "missing host in HOST:PORT";
	if (s[0] == '[') {
		if (colon[-1] != ']' || colon - s < 3 ||
		    memchr(s + 1, '[', (size_t)(colon - s - 1)))
			return "expected [IPv6]:PORT";
	} else if (memchr(s, ':', (size_t)(colon - s)) || memchr(s, ']', (size_t)(colon - s))) {
		return "more than one ':' in HOST:PORT (an IPv6 host needs brackets, as in "
		       "[::1]:8443)";
	}
	if (parse_uint(colon + 1, 65535, &port) || port == 0)
		return "the part after the last ':' must be a port number 1..65535";
	return NULL;
}

/* cidr_parse with a message that names the common mistake: host bits set. */
static int parse_cidr_at(struct loader *L, const struct where *w, const char *s, struct cidr *out)
{
	const char *slash = strchr(s, '/');
	unsigned long long len;
	struct cidr a;
	char addr[16], fixed[20];

	if (!cidr_parse(s, out))
		return 0;
	if (slash && (size_t)(slash - s) < sizeof(addr)) {
		memcpy(addr, s, (size_t)(slash - s));
		addr[slash - s] = '\0';
		if (!cidr_parse(addr, &a) && !parse_uint(slash + 1, 32, &len)) {
			a.len = (uint8_t)len;
			a.addr &= len ? 0xffffffffu << (32 - len) : 0;
			return bad(L, w, s, "host bits set in prefix; did you mean '%s'?",
				   cidr_format(&a, fixed, sizeof(fixed)));
		}
	}
	return bad(L, w, s, "expected an IPv4 prefix like 10.0.0.0/8");
}

static int route_append(struct loader *L, const struct opt *o, const struct cidr *virt,
			const struct cidr *real, const char *proxy_id)
{
	struct config_route **arr = field(L->cfg, o->off), *r;
	size_t *n = count_field(L->cfg, o);
	char *id = strdup(proxy_id);

	if (!id)
		return fail_nomem(L);
	r = realloc(*arr, (*n + 1) * sizeof(**arr));
	if (!r) {
		free(id);
		return fail_nomem(L);
	}
	*arr = r;
	r[*n] = (struct config_route){.virt = *virt, .real = *real, .proxy_id = id};
	(*n)++;
	return 0;
}

/* VIRT=PROXY[:REAL] */
static int route_parse(struct loader *L, const struct opt *o, const struct where *w, const char *s)
{
	const char *eq = strchr(s, '='), *colon;
	char virt_s[32], id[ID_MAX + 2], fixed[20];
	struct cidr virt, real;
	size_t idlen;
	int ret;

	if (!eq || (size_t)(eq - s) >= sizeof(virt_s))
		return bad(L, w, s, "expected VIRT=PROXY[:REAL], e.g. 100.64.1.0/24=site-1");
	memcpy(virt_s, s, (size_t)(eq - s));
	virt_s[eq - s] = '\0';
	ret = parse_cidr_at(L, w, virt_s, &virt);
	if (ret)
		return ret;
	colon = strchr(eq + 1, ':');
	idlen = colon ? (size_t)(colon - eq - 1) : strlen(eq + 1);
	snprintf(id, sizeof(id), "%.*s", (int)(idlen < sizeof(id) ? idlen : sizeof(id) - 1),
		 eq + 1);
	if (idlen > ID_MAX || !valid_id(id))
		return bad(L, w, s, "proxy id must be 1..%d of letters, digits, '.', '_', '-'",
			   ID_MAX);
	real = virt;
	if (colon) {
		ret = parse_cidr_at(L, w, colon + 1, &real);
		if (ret)
			return ret;
		if (real.len != virt.len)
			return bad(L, w, s, "virtual and real prefix lengths differ (/%u vs %s)",
				   virt.len, cidr_format(&real, fixed, sizeof(fixed)));
	}
	return route_append(L, o, &virt, &real, id);
}

static bool valid_grant_id(const char *s)
{
	return valid_id(s) || !strcmp(s, "*");
}

static int grant_append(struct loader *L, const struct opt *o, const char *id,
			const struct cidr *prefix)
{
	struct route_grant **arr = field(L->cfg, o->off), *g;
	size_t *n = count_field(L->cfg, o);

	g = realloc(*arr, (*n + 1) * sizeof(**arr));
	if (!g)
		return fail_nomem(L);
	*arr = g;
	g[*n] = (struct route_grant){.prefix = *prefix};
	snprintf(g[*n].proxy_id, sizeof(g[*n].proxy_id), "%s", id);
	(*n)++;
	return 0;
}

/* ID=PREFIX */
static int grant_parse(struct loader *L, const struct opt *o, const struct where *w, const char *s)
{
	const char *eq = strchr(s, '=');
	char id[ID_MAX + 2];
	struct cidr prefix;
	int ret;

	if (!eq)
		return bad(L, w, s, "expected ID=PREFIX, e.g. site-1=100.64.1.0/24");
	snprintf(id, sizeof(id), "%.*s", (int)(eq - s < ID_MAX + 1 ? eq - s : ID_MAX + 1), s);
	if (eq - s > ID_MAX || !valid_grant_id(id))
		return bad(L, w, s,
			   "proxy id must be '*' or 1..%d of letters, digits, '.', '_', '-'",
			   ID_MAX);
	ret = parse_cidr_at(L, w, eq + 1, &prefix);
	if (ret)
		return ret;
	return grant_append(L, o, id, &prefix);
}

/* A policy client: "*" or a spiffe:// URI of the characters SPIFFE ids use (nothing that needs
 * quoting in a metrics label or a log line). */
static bool valid_policy_client(const char *s)
{
	size_t n = strlen(s);

	if (!strcmp(s, "*"))
		return true;
	if (strncmp(s, "spiffe://", 9) || n == 9 || n >= POLICY_CLIENT_LEN)
		return false;
	return strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-/:%") ==
	       n;
}

#define POLICY_CLIENT_WHY                                                                         \
	"a client must be '*' or a SPIFFE id like spiffe://ntun.local/client/client-1 (letters, " \
	"digits and . _ - / : %%, at most 255 characters)"
#define POLICY_DEST_WHY "expected CIDR, CIDR:PORT or CIDR:LO-HI, e.g. 100.64.1.0/24:8000-8999"

static int policy_append(struct loader *L, const struct opt *o, const struct where *w,
			 const char *client, const char *dest)
{
	struct policy_rule **arr = field(L->cfg, o->off), *r, rule;
	size_t *n = count_field(L->cfg, o);

	memset(&rule, 0, sizeof(rule));
	if (!valid_policy_client(client))
		return bad(L, w, client, POLICY_CLIENT_WHY);
	if (policy_dest_parse(dest, &rule) < 0) {
		const char *colon = strchr(dest, ':');
		char net[32];

		/* Name a bad prefix as the other CIDR settings do (host bits, ...). */
		snprintf(net, sizeof(net), "%.*s", (int)(colon ? colon - dest : 31), dest);
		if (parse_cidr_at(L, w, net, &rule.net))
			return -EINVAL;
		return bad(L, w, dest, POLICY_DEST_WHY);
	}
	snprintf(rule.client, sizeof(rule.client), "%s", client);
	r = realloc(*arr, (*n + 1) * sizeof(**arr));
	if (!r)
		return fail_nomem(L);
	*arr = r;
	r[(*n)++] = rule;
	return 0;
}

/* CLIENT=DEST */
static int policy_parse(struct loader *L, const struct opt *o, const struct where *w, const char *s)
{
	const char *eq = strrchr(s, '=');
	char client[POLICY_CLIENT_LEN + 1];

	if (!eq)
		return bad(
			L, w, s,
			"expected CLIENT=DEST, e.g. spiffe://ntun.local/client/c1=100.64.1.0/24:80");
	snprintf(client, sizeof(client), "%.*s",
		 (int)(eq - s < POLICY_CLIENT_LEN ? eq - s : POLICY_CLIENT_LEN), s);
	return policy_append(L, o, w, client, eq + 1);
}

/* Sets a scalar setting, or appends one item to a list; val is not empty. */
static int opt_set_one(struct loader *L, const struct opt *o, const struct where *w,
		       const char *val)
{
	void *p = field(L->cfg, o->off);
	unsigned long long u;
	const char *why;
	char *s;
	int ret;

	switch (o->type) {
	case OPT_ID:
		if (!valid_id(val))
			return bad(L, w, val, "must be 1..%d of letters, digits, '.', '_', '-'",
				   ID_MAX);
		goto string;
	case OPT_ABSPATH:
		if (val[0] != '/')
			return bad(L, w, val, "must be an absolute path");
		goto string;
	case OPT_ADMIN:
		if (strcmp(val, "off") && val[0] != '/')
			return bad(L, w, val, "must be 'off' or an absolute path");
		if (strlen(val) >= CONFIG_ADMIN_PATH_MAX)
			return bad(L, w, val, "a unix socket path is at most %d bytes",
				   CONFIG_ADMIN_PATH_MAX - 1);
		goto string;
	case OPT_IFNAME:
		/* IFNAMSIZ - 1; the kernel refuses '/', ':' and whitespace in names. */
		if (strlen(val) > 15 || strpbrk(val, "/: \t\r\n") || !strcmp(val, ".") ||
		    !strcmp(val, ".."))
			return bad(L, w, val,
				   "expected an interface name (1..15 characters, no "
				   "'/', ':' or spaces)");
		goto string;
	case OPT_HOSTPORT:
		why = hostport_problem(val, false);
		if (why)
			return bad(L, w, val, "%s", why);
		goto string;
	case OPT_LISTEN:
		/* The seed's form: an empty host is every address. Listeners are IPv4 only. */
		why = val[0] == '[' ? "IPv6 addresses are not supported here yet; use :PORT "
				      "(every IPv4 address) or ADDR:PORT"
				    : hostport_problem(val, true);
		if (why)
			return bad(L, w, val, "%s", why);
		if (val[0] != ':')
			goto string;
		s = malloc(strlen(val) + sizeof("0.0.0.0"));
		if (!s)
			return fail_nomem(L);
		strcpy(stpcpy(s, "0.0.0.0"), val);
		free(*(char **)p);
		*(char **)p = s;
		return 0;
	case OPT_HOSTPORTS: {
		size_t *n = count_field(L->cfg, o);
		char **arr;

		why = hostport_problem(val, false);
		if (why)
			return bad(L, w, val, "%s", why);
		if (*n >= CONFIG_MAX_SERVERS)
			return bad(L, w, val, "more than %d servers", CONFIG_MAX_SERVERS);
		s = strdup(val);
		arr = s ? realloc(*(char ***)p, (*n + 1) * sizeof(*arr)) : NULL;
		if (!arr) {
			free(s);
			return fail_nomem(L);
		}
		arr[(*n)++] = s;
		*(char ***)p = arr;
		return 0;
	}
	case OPT_STR:
	string:
		s = strdup(val);
		if (!s)
			return fail_nomem(L);
		free(*(char **)p);
		*(char **)p = s;
		return 0;
	case OPT_PORT:
		if (parse_uint(val, 65535, &u) || u == 0)
			return bad(L, w, val, "port must be 1..65535");
		*(uint16_t *)p = (uint16_t)u;
		return 0;
	case OPT_U32:
		if (parse_uint(val, UINT32_MAX, &u))
			return bad(L, w, val, "expected a number 0..%u", UINT32_MAX);
		*(uint32_t *)p = (uint32_t)u;
		return 0;
	case OPT_MS:
	case OPT_MS0:
		if (parse_ms(val, p))
			return bad(L, w, val,
				   "bad duration: milliseconds, or a number with unit "
				   "ms, s, m or h, at most 2^32-1 ms");
		if (o->type == OPT_MS && *(uint32_t *)p == 0)
			return bad(L, w, val, "must be greater than 0");
		return 0;
	case OPT_BOOL:
		if (parse_bool(val, p))
			return bad(L, w, val, "expected true or false");
		return 0;
	case OPT_LOG_LEVEL:
		if (log_level_parse(val, p))
			return bad(L, w, val, "expected debug, info, warn or error");
		return 0;
	case OPT_LOG_FORMAT:
		if (log_format_parse(val, p))
			return bad(L, w, val, "expected json or text");
		return 0;
	case OPT_INTERCEPT:
		if (!strcmp(val, "auto"))
			*(enum config_intercept *)p = CONFIG_INTERCEPT_AUTO;
		else if (!strcmp(val, "bpf"))
			*(enum config_intercept *)p = CONFIG_INTERCEPT_BPF;
		else if (!strcmp(val, "iptables"))
			*(enum config_intercept *)p = CONFIG_INTERCEPT_IPTABLES;
		else
			return bad(L, w, val, "expected auto, bpf or iptables");
		return 0;
	case OPT_XDP_MODE:
		if (!strcmp(val, "auto"))
			*(enum config_xdp_mode *)p = CONFIG_XDP_AUTO;
		else if (!strcmp(val, "native"))
			*(enum config_xdp_mode *)p = CONFIG_XDP_NATIVE;
		else if (!strcmp(val, "generic"))
			*(enum config_xdp_mode *)p = CONFIG_XDP_GENERIC;
		else
			return bad(L, w, val, "expected auto, native or generic");
		return 0;
	case OPT_COMPRESSION:
		if (strcmp(val, "identity") && strcmp(val, "gzip"))
			return bad(L, w, val, "expected identity or gzip");
		*(bool *)p = !strcmp(val, "gzip");
		return 0;
	case OPT_CIDRS: {
		struct cidr c, *arr;
		size_t *n = count_field(L->cfg, o);

		ret = parse_cidr_at(L, w, val, &c);
		if (ret)
			return ret;
		arr = realloc(*(struct cidr **)p, (*n + 1) * sizeof(c));
		if (!arr)
			return fail_nomem(L);
		arr[(*n)++] = c;
		*(struct cidr **)p = arr;
		return 0;
	}
	case OPT_ROUTES:
		return route_parse(L, o, w, val);
	case OPT_GRANTS:
		return grant_parse(L, o, w, val);
	case OPT_POLICY:
		return policy_parse(L, o, w, val);
	}
	return -EINVAL;
}

/* Back to the default value (the default text is valid by construction). */
static int opt_reset(struct loader *L, const struct opt *o)
{
	struct where w = {W_FLAG, NULL, 0, "default"};

	opt_clear(L->cfg, o);
	return o->def ? opt_set_one(L, o, &w, o->def) : 0;
}

static void note_origin(struct loader *L, const struct opt *o, const struct where *w)
{
	where_fmt(w, L->origin[o - opts], sizeof(L->origin[0]));
}

/* Sets a setting from text (.env, environment, flag): lists are comma-separated; append keeps
 * the list built so far (repeated flags), otherwise it is replaced. */
static int opt_set_text(struct loader *L, const struct opt *o, const struct where *w,
			const char *val, bool append)
{
	char *copy, *item, *save = NULL;
	int ret = 0;

	note_origin(L, o, w);
	if (!*val)
		return opt_reset(L, o);
	if (!is_list(o))
		return opt_set_one(L, o, w, val);
	if (!append)
		opt_clear(L->cfg, o);
	copy = strdup(val);
	if (!copy)
		return fail_nomem(L);
	if (val[strlen(val) - 1] == ',' || val[0] == ',' || strstr(val, ",,")) {
		ret = bad(L, w, val, "empty item in comma-separated list");
		goto out;
	}
	for (item = strtok_r(copy, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
		char *end;

		item += strspn(item, " \t");
		end = item + strlen(item);
		while (end > item && (end[-1] == ' ' || end[-1] == '\t'))
			*--end = '\0';
		if (!*item) {
			ret = bad(L, w, val, "empty item in comma-separated list");
			goto out;
		}
		ret = opt_set_one(L, o, w, item);
		if (ret)
			goto out;
	}
out:
	free(copy);
	return ret;
}

/* Error for a setting that exists but belongs to other daemons. */
static int not_ours(struct loader *L, const struct opt *o, const struct where *w)
{
	char at[256], names[32] = "";

	where_fmt(w, at, sizeof(at));
	for (unsigned i = 0; i < ARRAY_SIZE(daemon_names); i++) {
		if (o->daemons & (1u << i))
			snprintf(names + strlen(names), sizeof(names) - strlen(names), "%s%s",
				 names[0] ? "/" : "", daemon_names[i]);
	}
	return fail(L, "%s: not a %s setting (only for ntun-%s)", at, daemon_name(L->dmask), names);
}

/* ---- YAML (and JSON, its subset) ---- */

struct yaml_walk {
	struct loader *L;
	yaml_document_t *doc;
	const char *file;
};

static const char *node_kind(const yaml_node_t *n)
{
	switch (n->type) {
	case YAML_SEQUENCE_NODE:
		return "a list";
	case YAML_MAPPING_NODE:
		return "a mapping";
	default:
		return "a scalar";
	}
}

static const char *scalar_text(const yaml_node_t *n)
{
	return (const char *)n->data.scalar.value;
}

static bool scalar_is_null(const yaml_node_t *n)
{
	static const char *const nulls[] = {"", "~", "null", "Null", "NULL"};

	if (n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return false;
	for (size_t i = 0; i < ARRAY_SIZE(nulls); i++) {
		if (!strcmp(scalar_text(n), nulls[i]))
			return true;
	}
	return false;
}

static struct where yaml_where(const struct yaml_walk *y, const yaml_node_t *n, const char *path)
{
	return (struct where){W_FILE, y->file, n->start_mark.line + 1, path};
}

/* A scalar usable as a value: no NUL bytes hidden inside (YAML "\0" escapes). */
static int yaml_scalar(struct yaml_walk *y, const yaml_node_t *n, const char *path)
{
	struct where w = yaml_where(y, n, path);

	if (n->type != YAML_SCALAR_NODE)
		return fail(y->L, "%s:%lu: key '%s': wrong type: expected a scalar, got %s",
			    y->file, w.line, path, node_kind(n));
	if (strlen(scalar_text(n)) != n->data.scalar.length)
		return bad(y->L, &w, scalar_text(n), "contains a NUL byte");
	return 0;
}

/* Rejects a key seen earlier in the same mapping (libyaml does not). */
static int yaml_dup_key(struct yaml_walk *y, const yaml_node_t *map, const yaml_node_pair_t *pair,
			const char *path)
{
	const char *key = scalar_text(yaml_document_get_node(y->doc, pair->key));

	for (const yaml_node_pair_t *p = map->data.mapping.pairs.start; p < pair; p++) {
		const yaml_node_t *k = yaml_document_get_node(y->doc, p->key);

		if (k->type == YAML_SCALAR_NODE && !strcmp(scalar_text(k), key))
			return fail(y->L, "%s:%lu: key '%s': duplicate key (first at line %lu)",
				    y->file,
				    yaml_document_get_node(y->doc, pair->key)->start_mark.line + 1,
				    path, k->start_mark.line + 1);
	}
	return 0;
}

/* Entry idx of the list o (routes, proxies) must be a mapping (of what, for the message);
 * writes its path "key[idx]". */
static int yaml_entry(struct yaml_walk *y, const struct opt *o, const yaml_node_t *n, size_t idx,
		      const char *what, char *path, size_t size)
{
	snprintf(path, size, "%s[%zu]", o->key, idx);
	if (n->type != YAML_MAPPING_NODE)
		return fail(y->L,
			    "%s:%lu: key '%s': wrong type: expected a mapping with %s, got %s",
			    y->file, n->start_mark.line + 1, path, what, node_kind(n));
	return 0;
}

/* The key k of pair p of entry n at path: a scalar, given once; writes "path.key" to sub. */
static int yaml_entry_key(struct yaml_walk *y, const yaml_node_t *n, const yaml_node_pair_t *p,
			  const yaml_node_t *k, const char *path, char *sub, size_t size)
{
	if (k->type != YAML_SCALAR_NODE)
		return fail(y->L, "%s:%lu: key '%s': mapping keys must be scalars", y->file,
			    k->start_mark.line + 1, path);
	snprintf(sub, size, "%s.%s", path, scalar_text(k));
	return yaml_dup_key(y, n, p, sub);
}

/* Entry idx of the list o as a mapping with the keys keys[0..nk) (each at most once; any other
 * is an error naming what an entry has): the key and value nodes of each into kn[i], vn[i],
 * NULL when absent. Writes the entry's path "key[idx]". */
static int yaml_entry_fields(struct yaml_walk *y, const struct opt *o, const yaml_node_t *n,
			     size_t idx, const char *what, const char *const *keys, size_t nk,
			     const yaml_node_t **kn, const yaml_node_t **vn, char *path,
			     size_t size)
{
	char sub[96];
	int ret = yaml_entry(y, o, n, idx, what, path, size);

	for (size_t i = 0; i < nk; i++)
		kn[i] = vn[i] = NULL;
	if (ret)
		return ret;
	for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top;
	     p++) {
		yaml_node_t *k = yaml_document_get_node(y->doc, p->key);
		size_t i;

		ret = yaml_entry_key(y, n, p, k, path, sub, sizeof(sub));
		if (ret)
			return ret;
		for (i = 0; i < nk && strcmp(scalar_text(k), keys[i]); i++)
			;
		if (i == nk)
			return fail(y->L, "%s:%lu: key '%s': unknown key (a %s entry has %s)",
				    y->file, k->start_mark.line + 1, sub, o->key, what);
		kn[i] = k;
		vn[i] = yaml_document_get_node(y->doc, p->value);
	}
	return 0;
}

/* One entry of routes: {virtual_cidr?, real_cidr | cidr, proxy_id}. */
static int yaml_route(struct yaml_walk *y, const struct opt *o, const yaml_node_t *n, size_t idx)
{
	const yaml_node_t *virt_n = NULL, *real_n = NULL, *id_n = NULL;
	struct cidr virt, real;
	char path[64], sub[96], fixed[20];
	struct where w;
	int ret;

	ret = yaml_entry(y, o, n, idx, "real_cidr, proxy_id and optional virtual_cidr", path,
			 sizeof(path));
	if (ret)
		return ret;
	for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top;
	     p++) {
		yaml_node_t *k = yaml_document_get_node(y->doc, p->key);
		yaml_node_t *v = yaml_document_get_node(y->doc, p->value);
		const yaml_node_t **slot;

		ret = yaml_entry_key(y, n, p, k, path, sub, sizeof(sub));
		if (ret)
			return ret;
		if (!strcmp(scalar_text(k), "virtual_cidr"))
			slot = &virt_n;
		else if (!strcmp(scalar_text(k), "real_cidr") || !strcmp(scalar_text(k), "cidr"))
			slot = &real_n;
		else if (!strcmp(scalar_text(k), "proxy_id"))
			slot = &id_n;
		else
			return fail(y->L,
				    "%s:%lu: key '%s': unknown key (a route has virtual_cidr, "
				    "real_cidr or cidr, and proxy_id)",
				    y->file, k->start_mark.line + 1, sub);
		if (slot == &real_n && real_n)
			return fail(y->L, "%s:%lu: key '%s': give real_cidr or cidr, not both",
				    y->file, k->start_mark.line + 1, sub);
		ret = yaml_scalar(y, v, sub);
		if (ret)
			return ret;
		*slot = v;
	}
	if (!real_n || !id_n)
		return fail(y->L, "%s:%lu: key '%s': missing %s", y->file, n->start_mark.line + 1,
			    path, !real_n ? "real_cidr" : "proxy_id");

	snprintf(sub, sizeof(sub), "%s.proxy_id", path);
	w = yaml_where(y, id_n, sub);
	if (!valid_id(scalar_text(id_n)))
		return bad(y->L, &w, scalar_text(id_n),
			   "must be 1..%d of letters, digits, '.', '_', '-'", ID_MAX);
	snprintf(sub, sizeof(sub), "%s.real_cidr", path);
	w = yaml_where(y, real_n, sub);
	ret = parse_cidr_at(y->L, &w, scalar_text(real_n), &real);
	if (ret)
		return ret;
	virt = real;
	if (virt_n) {
		snprintf(sub, sizeof(sub), "%s.virtual_cidr", path);
		w = yaml_where(y, virt_n, sub);
		ret = parse_cidr_at(y->L, &w, scalar_text(virt_n), &virt);
		if (ret)
			return ret;
		if (virt.len != real.len)
			return bad(y->L, &w, scalar_text(virt_n),
				   "prefix length differs from real_cidr %s",
				   cidr_format(&real, fixed, sizeof(fixed)));
	}
	return route_append(y->L, o, &virt, &real, scalar_text(id_n));
}

/* One entry of proxies: {id: ID or "*", prefixes: [PREFIX, ...] or PREFIX}. */
static int yaml_grant(struct yaml_walk *y, const struct opt *o, const yaml_node_t *n, size_t idx)
{
	static const char *const keys[] = {"id", "prefixes"};
	const yaml_node_t *kn[2], *vn[2], *id_n, *pfx_n;
	char path[64], sub[96];
	struct cidr prefix;
	struct where w;
	int ret;

	ret = yaml_entry_fields(y, o, n, idx, "id and prefixes", keys, 2, kn, vn, path,
				sizeof(path));
	if (ret)
		return ret;
	id_n = vn[0];
	pfx_n = vn[1];
	snprintf(sub, sizeof(sub), "%s.id", path);
	if (id_n && (ret = yaml_scalar(y, id_n, sub)))
		return ret;
	if (pfx_n && pfx_n->type == YAML_MAPPING_NODE)
		return fail(y->L,
			    "%s:%lu: key '%s.prefixes': wrong type: expected a CIDR or a list of "
			    "CIDRs, got a mapping",
			    y->file, kn[1]->start_mark.line + 1, path);
	if (!id_n || !pfx_n)
		return fail(y->L, "%s:%lu: key '%s': missing %s", y->file, n->start_mark.line + 1,
			    path, !id_n ? "id" : "prefixes");
	snprintf(sub, sizeof(sub), "%s.id", path);
	w = yaml_where(y, id_n, sub);
	if (!valid_grant_id(scalar_text(id_n)))
		return bad(y->L, &w, scalar_text(id_n),
			   "must be '*' or 1..%d of letters, digits, '.', '_', '-'", ID_MAX);
	snprintf(sub, sizeof(sub), "%s.prefixes", path);
	if (pfx_n->type == YAML_SCALAR_NODE) {
		ret = yaml_scalar(y, pfx_n, sub);
		if (ret)
			return ret;
		w = yaml_where(y, pfx_n, sub);
		ret = parse_cidr_at(y->L, &w, scalar_text(pfx_n), &prefix);
		return ret ? ret : grant_append(y->L, o, scalar_text(id_n), &prefix);
	}
	/* An id granted nothing would read like a grant: say what is meant instead. */
	if (pfx_n->data.sequence.items.start == pfx_n->data.sequence.items.top)
		return fail(y->L,
			    "%s:%lu: key '%s': empty list: give at least one prefix, or leave "
			    "the id out to grant it nothing",
			    y->file, pfx_n->start_mark.line + 1, sub);
	for (yaml_node_item_t *it = pfx_n->data.sequence.items.start;
	     it < pfx_n->data.sequence.items.top; it++) {
		const yaml_node_t *item = yaml_document_get_node(y->doc, *it);

		ret = yaml_scalar(y, item, sub);
		if (ret)
			return ret;
		w = yaml_where(y, item, sub);
		ret = parse_cidr_at(y->L, &w, scalar_text(item), &prefix);
		if (!ret)
			ret = grant_append(y->L, o, scalar_text(id_n), &prefix);
		if (ret)
			return ret;
	}
	return 0;
}

/* The scalars of a policy rule's key (clients or allow) at path: one scalar or a non-empty
 * list of them; each is handed to fn. */
static int yaml_scalars(struct yaml_walk *y, const yaml_node_t *k, const yaml_node_t *v,
			const char *path, const yaml_node_t **out, size_t max, size_t *n)
{
	*n = 0;
	if (v->type == YAML_MAPPING_NODE)
		return fail(y->L,
			    "%s:%lu: key '%s': wrong type: expected a string or a list, got %s",
			    y->file, k->start_mark.line + 1, path, node_kind(v));
	if (v->type == YAML_SCALAR_NODE) {
		out[(*n)++] = v;
		return yaml_scalar(y, v, path);
	}
	if (v->data.sequence.items.start == v->data.sequence.items.top)
		return fail(y->L, "%s:%lu: key '%s': empty list: a rule needs at least one",
			    y->file, v->start_mark.line + 1, path);
	for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top;
	     it++) {
		const yaml_node_t *item = yaml_document_get_node(y->doc, *it);
		int ret = yaml_scalar(y, item, path);

		if (ret)
			return ret;
		if (*n == max)
			return fail(y->L, "%s:%lu: key '%s': more than %zu entries in one rule",
				    y->file, item->start_mark.line + 1, path, max);
		out[(*n)++] = item;
	}
	return 0;
}

#define POLICY_RULE_MAX 256 /* clients, and destinations, in one rule */

/* One entry of policy: {clients: [ID or "*", ...], allow: [DEST, ...]} (each may be a single
 * string), flattened to one rule per (client, destination). */
static int yaml_policy(struct yaml_walk *y, const struct opt *o, const yaml_node_t *n, size_t idx)
{
	static const char *const keys[] = {"clients", "allow"};
	const yaml_node_t *cl[POLICY_RULE_MAX], *al[POLICY_RULE_MAX], *kn[2], *vn[2];
	size_t ncl = 0, nal = 0;
	char path[64], sub[96];
	int ret;

	ret = yaml_entry_fields(y, o, n, idx, "clients and allow", keys, 2, kn, vn, path,
				sizeof(path));
	if (ret)
		return ret;
	if (!vn[0] || !vn[1])
		return fail(y->L, "%s:%lu: key '%s': missing %s", y->file, n->start_mark.line + 1,
			    path, !vn[0] ? "clients" : "allow");
	snprintf(sub, sizeof(sub), "%s.clients", path);
	ret = yaml_scalars(y, kn[0], vn[0], sub, cl, POLICY_RULE_MAX, &ncl);
	if (ret)
		return ret;
	snprintf(sub, sizeof(sub), "%s.allow", path);
	ret = yaml_scalars(y, kn[1], vn[1], sub, al, POLICY_RULE_MAX, &nal);
	if (ret)
		return ret;
	for (size_t i = 0; i < ncl; i++) {
		for (size_t j = 0; j < nal; j++) {
			struct where w;

			snprintf(sub, sizeof(sub), "%s.%s", path, "clients");
			w = yaml_where(y, cl[i], sub);
			if (!valid_policy_client(scalar_text(cl[i])))
				return bad(y->L, &w, scalar_text(cl[i]), POLICY_CLIENT_WHY);
			snprintf(sub, sizeof(sub), "%s.%s", path, "allow");
			w = yaml_where(y, al[j], sub);
			ret = policy_append(y->L, o, &w, scalar_text(cl[i]), scalar_text(al[j]));
			if (ret)
				return ret;
		}
	}
	return 0;
}

/* Sets o from the value node v of key node k. Messages about the whole value name the key's
 * line, those about one scalar the scalar's. */
static int yaml_value(struct yaml_walk *y, const struct opt *o, const yaml_node_t *k,
		      const yaml_node_t *v, const char *path)
{
	struct where kw = yaml_where(y, k, path), w = yaml_where(y, v, path);
	int ret;

	note_origin(y->L, o, &kw);
	if (v->type == YAML_SCALAR_NODE && scalar_is_null(v))
		return opt_reset(y->L, o);
	if (v->type == YAML_MAPPING_NODE || (v->type == YAML_SEQUENCE_NODE && !is_list(o)) ||
	    (v->type == YAML_SCALAR_NODE &&
	     (o->type == OPT_ROUTES || o->type == OPT_GRANTS || o->type == OPT_POLICY)))
		return fail(y->L, "%s:%lu: key '%s': wrong type: expected %s, got %s", y->file,
			    kw.line, path, type_desc(o), node_kind(v));
	if (v->type == YAML_SCALAR_NODE) {
		ret = yaml_scalar(y, v, path);
		if (ret)
			return ret;
		if (o->type == OPT_HOSTPORTS) /* "a:1,b:2" as on the command line */
			return opt_set_text(y->L, o, &w, scalar_text(v), false);
		if (is_list(o))
			opt_clear(y->L->cfg, o);
		return *scalar_text(v) ? opt_set_one(y->L, o, &w, scalar_text(v))
				       : opt_reset(y->L, o);
	}
	/* An empty policy would read like "deny everything" but means no section: say so. */
	if (o->type == OPT_POLICY && v->data.sequence.items.start == v->data.sequence.items.top)
		return fail(y->L,
			    "%s:%lu: key '%s': empty list: give at least one rule, or leave the "
			    "section out (then every client may reach every route)",
			    y->file, kw.line, path);
	opt_clear(y->L->cfg, o);
	for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top;
	     it++) {
		const yaml_node_t *item = yaml_document_get_node(y->doc, *it);
		struct where iw = yaml_where(y, item, path);

		if (o->type == OPT_ROUTES) {
			ret = yaml_route(y, o, item, (size_t)(it - v->data.sequence.items.start));
		} else if (o->type == OPT_GRANTS) {
			ret = yaml_grant(y, o, item, (size_t)(it - v->data.sequence.items.start));
		} else if (o->type == OPT_POLICY) {
			ret = yaml_policy(y, o, item, (size_t)(it - v->data.sequence.items.start));
		} else {
			ret = yaml_scalar(y, item, path);
			if (!ret)
				ret = opt_set_one(y->L, o, &iw, scalar_text(item));
		}
		if (ret)
			return ret;
	}
	return 0;
}

/* Suggests the full key for a misplaced leaf ("cert_file" -> "tls.cert_file"). */
static const char *key_hint(const char *key)
{
	for (size_t i = 0; i < N_OPTS; i++) {
		const char *dot = strrchr(opts[i].key, '.');

		if (dot && !strcmp(dot + 1, key))
			return opts[i].key;
	}
	return NULL;
}

static int yaml_map(struct yaml_walk *y, const yaml_node_t *map, const char *prefix)
{
	for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
	     p++) {
		yaml_node_t *k = yaml_document_get_node(y->doc, p->key);
		yaml_node_t *v = yaml_document_get_node(y->doc, p->value);
		unsigned long line = k->start_mark.line + 1;
		const struct opt *o;
		const char *hint;
		char path[128];
		int ret;

		if (k->type != YAML_SCALAR_NODE)
			return fail(y->L, "%s:%lu: mapping keys must be scalars, got %s", y->file,
				    line, node_kind(k));
		snprintf(path, sizeof(path), "%s%s%s", prefix, *prefix ? "." : "", scalar_text(k));
		ret = yaml_dup_key(y, map, p, path);
		if (ret)
			return ret;
		o = opt_by_key(path);
		if (o) {
			struct where w = yaml_where(y, k, path);

			if (!(o->daemons & y->L->dmask))
				return not_ours(y->L, o, &w);
			ret = yaml_value(y, o, k, v, path);
		} else if (is_section(path)) {
			if (v->type != YAML_MAPPING_NODE)
				return fail(y->L,
					    "%s:%lu: key '%s': wrong type: expected a mapping, "
					    "got %s",
					    y->file, line, path, node_kind(v));
			ret = yaml_map(y, v, path);
		} else {
			hint = key_hint(scalar_text(k));
			return fail(y->L, "%s:%lu: key '%s': unknown key%s%s%s", y->file, line,
				    path, hint ? " (did you mean '" : "", hint ? hint : "",
				    hint ? "'?)" : "");
		}
		if (ret)
			return ret;
	}
	return 0;
}

static int yaml_error(struct loader *L, const char *file, const yaml_parser_t *p)
{
	if (p->error == YAML_MEMORY_ERROR)
		return fail_nomem(L);
	if (p->error == YAML_READER_ERROR)
		return fail(L, "%s: YAML read error at byte %zu: %s", file, p->problem_offset,
			    p->problem ? p->problem : "unknown");
	return fail(L, "%s:%lu:%lu: YAML syntax error: %s%s%s", file,
		    (unsigned long)p->problem_mark.line + 1,
		    (unsigned long)p->problem_mark.column + 1, p->problem ? p->problem : "unknown",
		    p->context ? " " : "", p->context ? p->context : "");
}

static int load_yaml(struct loader *L, const char *file, const struct where *from)
{
	struct yaml_walk y = {.L = L, .file = file};
	yaml_document_t doc, extra;
	yaml_parser_t parser;
	yaml_node_t *root;
	char at[256];
	FILE *f;
	int ret;

	f = fopen(file, "re");
	if (!f) {
		where_fmt(from, at, sizeof(at));
		ret = -errno;
		fail(L, "%s: cannot open '%s': %s", at, file, strerror(-ret));
		return ret == -ENOMEM ? -ENOMEM : -EINVAL;
	}
	if (!yaml_parser_initialize(&parser)) {
		ret = fail_nomem(L);
		goto out_file;
	}
	yaml_parser_set_input_file(&parser, f);
	if (!yaml_parser_load(&parser, &doc)) {
		ret = yaml_error(L, file, &parser);
		goto out_parser;
	}
	y.doc = &doc;
	root = yaml_document_get_root_node(&doc);
	if (!root) {
		ret = 0; /* an empty file sets nothing */
		goto out_doc;
	}
	if (root->type != YAML_MAPPING_NODE) {
		ret = fail(L, "%s:%lu: top level must be a mapping of settings, got %s", file,
			   (unsigned long)root->start_mark.line + 1, node_kind(root));
		goto out_doc;
	}
	ret = yaml_map(&y, root, "");
	if (ret)
		goto out_doc;
	if (!yaml_parser_load(&parser, &extra)) {
		ret = yaml_error(L, file, &parser);
		goto out_doc;
	}
	root = yaml_document_get_root_node(&extra);
	if (root)
		ret = fail(L, "%s:%lu: only one YAML document is allowed", file,
			   (unsigned long)root->start_mark.line + 1);
	yaml_document_delete(&extra);
out_doc:
	yaml_document_delete(&doc);
out_parser:
	yaml_parser_delete(&parser);
out_file:
	fclose(f);
	return ret;
}

/* ---- .env files and the environment ---- */

/* Applies NAME=value from a .env file (w->kind W_FILE) or the environment (W_ENV). */
static int apply_var(struct loader *L, const char *name, const char *val, struct where *w)
{
	const struct opt *o = opt_by_env(name);
	char at[256];

	if (!o) {
		where_fmt(w, at, sizeof(at));
		if (!strcmp(name, "NTUN_CONFIG"))
			return fail(L, "%s: NTUN_CONFIG is read from the environment only", at);
		return fail(L, "%s: unknown setting%s", at,
			    strncmp(name, "NTUN_", 5) ? " (names start with NTUN_)" : "");
	}
	if (!(o->daemons & L->dmask))
		return not_ours(L, o, w);
	return opt_set_text(L, o, w, val, false);
}

/* Parses the value part of a .env line in place: "double" (with \" \\ \n \t escapes),
 * 'single' (literal) or bare (a " #" starts a comment). Returns NULL if a quote is not
 * closed or text follows it. */
static char *env_value(char *s)
{
	char *out, *in, q = *s;

	if (q == '"' || q == '\'') {
		for (in = out = s + 1; *in && *in != q; in++) {
			if (q == '"' && *in == '\\' && in[1]) {
				in++;
				*in = *in == 'n' ? '\n' : *in == 't' ? '\t' : *in;
			}
			*out++ = *in;
		}
		if (*in != q)
			return NULL;
		in++;
		in += strspn(in, " \t\r\n");
		if (*in && *in != '#')
			return NULL;
		*out = '\0';
		return s + 1;
	}
	for (in = s; *in; in++) {
		if (*in == '#' && (in == s || in[-1] == ' ' || in[-1] == '\t')) {
			*in = '\0';
			break;
		}
	}
	out = s + strlen(s);
	while (out > s && strchr(" \t\r\n", out[-1]))
		*--out = '\0';
	return s;
}

static int load_env_file(struct loader *L, const char *file)
{
	char *line = NULL, *p, *name, *val, got[96];
	struct where w = {W_FILE, file, 0, NULL};
	size_t cap = 0, n;
	FILE *f;
	int ret = 0;

	f = fopen(file, "re");
	if (!f) {
		ret = -errno;
		fail(L, "--env-file: cannot open '%s': %s", file, strerror(-ret));
		return ret == -ENOMEM ? -ENOMEM : -EINVAL;
	}
	while (getline(&line, &cap, f) >= 0) {
		w.line++;
		line[strcspn(line, "\r\n")] = '\0';
		p = line + strspn(line, " \t");
		if (!*p || *p == '#')
			continue;
		if (!strncmp(p, "export", 6) && (p[6] == ' ' || p[6] == '\t'))
			p += 7 + strspn(p + 7, " \t");
		name = p;
		n = strspn(p, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_");
		p += n;
		p += strspn(p, " \t");
		if (n == 0 || *p != '=' || (name[0] >= '0' && name[0] <= '9')) {
			show(line, got, sizeof(got));
			ret = fail(L, "%s:%lu: expected KEY=VALUE (got '%s')", file, w.line, got);
			break;
		}
		name[n] = '\0';
		p++;
		p += strspn(p, " \t");
		w.name = name;
		val = env_value(p);
		if (!val) {
			ret = bad(L, &w, p, "unterminated quote or text after the closing quote");
			break;
		}
		ret = apply_var(L, name, val, &w);
		if (ret)
			break;
	}
	free(line);
	fclose(f);
	return ret;
}

/* Adds name to cfg->ignored_env ("A, B"). */
static int note_ignored(struct loader *L, const char *name)
{
	char *old = L->cfg->ignored_env;
	size_t n = old ? strlen(old) + 2 : 0;
	char *s = malloc(n + strlen(name) + 1);

	if (!s)
		return fail_nomem(L);
	if (old) {
		memcpy(s, old, n - 2);
		memcpy(s + n - 2, ", ", 2);
	}
	strcpy(s + n, name);
	free(old);
	L->cfg->ignored_env = s;
	return 0;
}

/* Applies the NTUN_* variables of the environment. Unknown ones are noted, not errors: an
 * orchestrator adds variables of its own there (Kubernetes service links: a Service named
 * ntun-server gives NTUN_SERVER_PORT=tcp://...). */
static int load_environ(struct loader *L)
{
	char name[128];
	const char *eq;
	struct where w = {W_ENV, NULL, 0, name};
	int ret;

	for (char **e = environ; e && *e; e++) {
		if (strncmp(*e, "NTUN_", 5))
			continue;
		eq = strchr(*e, '=');
		if (!eq)
			continue;
		snprintf(name, sizeof(name), "%.*s", (int)(eq - *e), *e);
		if (!strcmp(name, "NTUN_CONFIG"))
			continue;
		if (!opt_by_env(name)) {
			ret = note_ignored(L, name);
			if (ret)
				return ret;
			continue;
		}
		ret = apply_var(L, name, eq + 1, &w);
		if (ret)
			return ret;
	}
	return 0;
}

/* ---- flags, help ---- */

/* One --help entry: HEAD in a 28-column field (on a line of its own when longer), then TEXT
 * word-wrapped to 80 columns, continuation lines indented to the text's column. help2man turns
 * these entries into the man pages' OPTIONS, so the layout is the man pages' too. */
enum { HELP_COL = 31, HELP_WIDTH = 80 };

static void help_entry(const char *head, const char *text)
{
	enum { COL = HELP_COL, WIDTH = HELP_WIDTH };
	int col;

	col = printf("  %s", head);
	if (col > COL - 2) {
		putchar('\n');
		col = 0;
	}
	while (*text) {
		size_t w = strcspn(text, " ");

		if (col > COL && col + 1 + (int)w > WIDTH) {
			putchar('\n');
			col = 0;
		}
		if (col < COL)
			col += printf("%*s", COL - col, "");
		else
			col += printf(" ");
		col += printf("%.*s", (int)w, text);
		text += w;
		text += strspn(text, " ");
	}
	putchar('\n');
}

static void usage(unsigned dmask)
{
	const char *d = daemon_name(dmask);
	char env[64], head[64], text[512];

	printf("Usage: ntun-%s [OPTIONS]\n\n"
	       "Settings come from, later ones winning: the config file, --env-file files,\n"
	       "NTUN_* environment variables, then flags. Each flag below is also a config key\n"
	       "and a variable (listed after it). Lists take repeated flags or commas.\n\n"
	       "Options:\n",
	       d);
	help_entry("-c, --config FILE", "YAML or JSON config file (env NTUN_CONFIG)");
	help_entry("--env-file FILE", "KEY=VALUE file of NTUN_* settings (repeatable)");
	help_entry("--check-config",
		   "check the settings, then exit (files they name are not read)");
	for (size_t i = 0; i < N_OPTS; i++) {
		const struct opt *o = &opts[i];

		if (!(o->daemons & dmask))
			continue;
		env_name(o, env, sizeof(env));
		snprintf(head, sizeof(head), "--%s%s%s", o->flag, o->metavar ? " " : "",
			 o->metavar ? o->metavar : "");
		snprintf(text, sizeof(text), "%s%s%s%s%s", o->help,
			 o->required & dmask ? " (required)" : "", o->def ? " (default: " : "",
			 o->def ? o->def : "", o->def ? ")" : "");
		help_entry(head, text);
		snprintf(text, sizeof(text), "[%s, %s]", o->key, env);
		if (HELP_COL + strlen(text) > HELP_WIDTH) /* the variable on a line of its own */
			printf("%*s[%s,\n%*s%s]\n", HELP_COL, "", o->key, HELP_COL, "", env);
		else
			printf("%*s%s\n", HELP_COL, "", text);
	}
	help_entry("-h, --help", "show this help");
	help_entry("-V, --version", "show the version");
	printf("\nDurations are milliseconds or take a unit: 500ms, 5s, 2m, 1h.\n");
}

/* Parses argv into recorded (opt, value) pairs; files and actions are noted, nothing applied. */
struct flag_val {
	const struct opt *o;
	const char *arg;
};

struct flags {
	struct flag_val *vals;
	size_t n;
	const char *config;
	const char **env_files;
	size_t n_env_files;
	bool help, version, check;
};

static int parse_flags(struct loader *L, int argc, char **argv, struct flags *fl)
{
	struct option longopts[N_OPTS + 6];
	size_t n = 0;
	char name[64];
	int c;

	for (size_t i = 0; i < N_OPTS; i++)
		longopts[n++] = (struct option){
			opts[i].flag, opts[i].metavar ? required_argument : optional_argument, NULL,
			FLAG_OPT_BASE + (int)i};
	longopts[n++] = (struct option){"config", required_argument, NULL, FLAG_CONFIG};
	longopts[n++] = (struct option){"env-file", required_argument, NULL, FLAG_ENV_FILE};
	longopts[n++] = (struct option){"check-config", no_argument, NULL, FLAG_CHECK};
	longopts[n++] = (struct option){"help", no_argument, NULL, 'h'};
	longopts[n++] = (struct option){"version", no_argument, NULL, 'V'};
	longopts[n] = (struct option){NULL, 0, NULL, 0};

	optind = 0; /* glibc: full re-initialisation, so a second config_load starts afresh */
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+:hVc:", longopts, NULL)) != -1) {
		const char *arg = argv[optind - 1];

		switch (c) {
		case 'h':
			fl->help = true;
			break;
		case 'V':
			fl->version = true;
			break;
		case 'c':
		case FLAG_CONFIG:
			fl->config = optarg;
			break;
		case FLAG_ENV_FILE:
			fl->env_files[fl->n_env_files++] = optarg;
			break;
		case FLAG_CHECK:
			fl->check = true;
			break;
		case ':':
			return fail(L, "%s: missing value (see --help)", arg);
		case '?':
			snprintf(name, sizeof(name), "%.*s", (int)strcspn(arg, "="), arg);
			if (strncmp(arg, "--", 2))
				return fail(L, "-%c: unknown option (see --help)", optopt);
			if (optopt)
				return fail(L, "%s: takes no value (got '%s')", name, arg);
			return fail(L, "%s: unknown option (see --help)", name);
		default: {
			const struct opt *o = &opts[c - FLAG_OPT_BASE];
			struct where w = {W_FLAG, NULL, 0, o->flag};

			if (!(o->daemons & L->dmask))
				return not_ours(L, o, &w);
			fl->vals[fl->n++] = (struct flag_val){o, optarg ? optarg : "true"};
			break;
		}
		}
	}
	if (optind < argc)
		return fail(L, "unexpected argument '%s' (see --help)", argv[optind]);
	return 0;
}

static int apply_flags(struct loader *L, const struct flags *fl)
{
	int ret;

	for (size_t i = 0; i < fl->n; i++) {
		const struct opt *o = fl->vals[i].o;
		size_t idx = (size_t)(o - opts);
		struct where w = {W_FLAG, NULL, 0, o->flag};

		ret = opt_set_text(L, o, &w, fl->vals[i].arg, L->flag_seen[idx]);
		if (ret)
			return ret;
		L->flag_seen[idx] = true;
	}
	return 0;
}

/* ---- after merging ---- */

static void cidrs_fmt(const struct cidr *c, size_t n, char *buf, size_t size)
{
	char one[20];

	buf[0] = '\0';
	for (size_t i = 0; i < n; i++)
		snprintf(buf + strlen(buf), size - strlen(buf), "%s%s", i ? "," : "",
			 cidr_format(&c[i], one, sizeof(one)));
}

static int check_merged(struct loader *L)
{
	struct config *cfg = L->cfg;
	const struct opt *virt = opt_by_key("virtual_cidr");
	char missing[512] = "", env[64], list[256], a[20], b[20];
	size_t n_missing = 0;

	if (L->dmask == D_PROXY && cfg->n_virtual_cidr) {
		const char *at = L->origin[virt - opts];

		cidrs_fmt(cfg->virtual_cidr, cfg->n_virtual_cidr, list, sizeof(list));
		if (cfg->n_virtual_cidr != cfg->n_managed_cidr)
			return fail(L,
				    "%s: %zu virtual CIDR(s) for %zu managed CIDR(s); give one per "
				    "managed_cidr, in the same order (got '%s')",
				    at, cfg->n_virtual_cidr, cfg->n_managed_cidr, list);
		for (size_t i = 0; i < cfg->n_virtual_cidr; i++) {
			if (cfg->virtual_cidr[i].len != cfg->managed_cidr[i].len)
				return fail(L,
					    "%s: virtual CIDR %s and managed CIDR %s differ in "
					    "length (got '%s')",
					    at, cidr_format(&cfg->virtual_cidr[i], a, sizeof(a)),
					    cidr_format(&cfg->managed_cidr[i], b, sizeof(b)), list);
		}
	}
	if (L->dmask == D_SERVER && (!cfg->max_handshakes || !cfg->max_handshakes_per_source)) {
		const struct opt *o = opt_by_key(cfg->max_handshakes ? "max_handshakes_per_source"
								     : "max_handshakes");

		return fail(L, "%s: must be at least 1 (got '0')", L->origin[o - opts]);
	}
	if (cfg->conn_window < 65535 || cfg->conn_window > INT32_MAX) {
		const struct opt *o = opt_by_key("limits.connection_window");

		return fail(L, "%s: must be 65535..2147483647, HTTP/2's window range (got '%u')",
			    L->origin[o - opts], cfg->conn_window);
	}
	if (L->dmask == D_SERVER && cfg->xdp_syn_rate > 1000000) {
		const struct opt *o = opt_by_key("xdp.syn_rate");

		return fail(L, "%s: at most 1000000 SYNs per second (got '%u')",
			    L->origin[o - opts], cfg->xdp_syn_rate);
	}
	if (L->dmask == D_SERVER && cfg->xdp_syn_rate && !cfg->xdp_syn_burst) {
		const struct opt *o = opt_by_key("xdp.syn_burst");

		return fail(L, "%s: must be at least 1 while xdp.syn_rate is set (got '0')",
			    L->origin[o - opts]);
	}
	for (size_t i = 0; i < N_OPTS; i++) {
		if (!(opts[i].required & L->dmask) || opt_is_set(cfg, &opts[i]))
			continue;
		env_name(&opts[i], env, sizeof(env));
		snprintf(missing + strlen(missing), sizeof(missing) - strlen(missing),
			 "%s%s (--%s or %s)", n_missing++ ? ", " : "", opts[i].key, opts[i].flag,
			 env);
	}
	if (n_missing)
		return fail(L, "missing required setting%s for ntun-%s: %s",
			    n_missing > 1 ? "s" : "", daemon_name(L->dmask), missing);
	return 0;
}

/* ---- entry points ---- */

int config_load(struct config *cfg, enum config_daemon daemon, int argc, char **argv,
		enum config_action *action, char *err, size_t errsz)
{
	struct flags fl = {0};
	struct loader *L;
	const char *file;
	struct where from;
	int ret;

	if (err && errsz)
		err[0] = '\0';
	*action = CONFIG_RUN;
	memset(cfg, 0, sizeof(*cfg));
	cfg->daemon = daemon;
	L = calloc(1, sizeof(*L));
	fl.vals = calloc((size_t)(argc > 0 ? argc : 1), sizeof(*fl.vals));
	fl.env_files = calloc((size_t)(argc > 0 ? argc : 1), sizeof(*fl.env_files));
	if (!L || !fl.vals || !fl.env_files) {
		if (err && errsz)
			snprintf(err, errsz, "out of memory");
		ret = -ENOMEM;
		goto out;
	}
	*L = (struct loader){.cfg = cfg, .dmask = 1u << daemon, .err = err, .errsz = errsz};

	ret = parse_flags(L, argc, argv, &fl);
	if (ret)
		goto err;
	if (fl.help || fl.version) {
		if (fl.help)
			usage(L->dmask);
		else
			printf("ntun-%s %s\n", daemon_name(L->dmask), NTUN_VERSION);
		fflush(stdout);
		*action = CONFIG_EXIT_OK;
		goto out;
	}

	for (size_t i = 0; i < N_OPTS; i++) {
		if (opts[i].daemons & L->dmask) {
			ret = opt_reset(L, &opts[i]);
			if (ret)
				goto err;
		}
	}

	file = fl.config;
	from = (struct where){W_FLAG, NULL, 0, "config"};
	if (!file && getenv("NTUN_CONFIG") && *getenv("NTUN_CONFIG")) {
		file = getenv("NTUN_CONFIG");
		from = (struct where){W_ENV, NULL, 0, "NTUN_CONFIG"};
	}
	if (file) {
		cfg->config_file = strdup(file);
		if (!cfg->config_file) {
			ret = fail_nomem(L);
			goto err;
		}
		ret = load_yaml(L, file, &from);
		if (ret)
			goto err;
	}
	for (size_t i = 0; i < fl.n_env_files; i++) {
		ret = load_env_file(L, fl.env_files[i]);
		if (ret)
			goto err;
	}
	ret = load_environ(L);
	if (ret)
		goto err;
	ret = apply_flags(L, &fl);
	if (ret)
		goto err;
	ret = check_merged(L);
	if (ret)
		goto err;
	if (fl.check) {
		printf("ntun-%s: configuration OK%s%s\n", daemon_name(L->dmask),
		       cfg->ignored_env ? "; ignored unknown environment variables " : "",
		       cfg->ignored_env ? cfg->ignored_env : "");
		fflush(stdout);
		config_release(cfg);
		cfg->daemon = daemon;
		*action = CONFIG_EXIT_OK;
	}
	goto out;
err:
	config_release(cfg);
	cfg->daemon = daemon;
out:
	free(fl.env_files);
	free(fl.vals);
	free(L);
	return ret;
}

void config_release(struct config *cfg)
{
	if (!cfg)
		return;
	for (size_t i = 0; i < N_OPTS; i++)
		opt_clear(cfg, &opts[i]);
	free(cfg->config_file);
	free(cfg->ignored_env);
	memset(cfg, 0, sizeof(*cfg));
}
