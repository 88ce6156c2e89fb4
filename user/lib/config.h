/* SPDX-License-Identifier: MIT */
/* Daemon configuration from, in increasing precedence: a YAML (or JSON) file, .env files,
 * NTUN_* environment variables, then command-line flags. Validates every value and names the
 * source (file:line, variable or flag) of anything wrong; opens no sockets and reads no keys. */
#ifndef NTUN_CONFIG_H
#define NTUN_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "log.h"
#include "route.h"

enum config_daemon { CONFIG_CLIENT, CONFIG_SERVER, CONFIG_PROXY };

#define CONFIG_MAX_SERVERS    16  /* server_addr entries */
#define CONFIG_ADMIN_PATH_MAX 108 /* sun_path: the admin socket's path, NUL included */

enum config_intercept { CONFIG_INTERCEPT_AUTO, CONFIG_INTERCEPT_BPF, CONFIG_INTERCEPT_IPTABLES };

/* xdp.mode: auto tries native (driver) XDP, then generic (skb). */
enum config_xdp_mode { CONFIG_XDP_AUTO, CONFIG_XDP_NATIVE, CONFIG_XDP_GENERIC };

struct config_tls {
	char *cert_file;
	char *key_file;
	char *ca_file;
	char *server_name;  /* client/proxy: name in the server cert's DNS/IP SAN; NULL = the host
			     * part of server_addr (daemon.c) */
	char *trust_domain; /* SPIFFE trust domain peers must be in; NULL = taken from own cert */
	bool insecure;	    /* seed key; see config.c for what it relaxes (never the chain) */
};

struct config_log {
	enum log_level level;	/* default info */
	enum log_format format; /* default json */
	char *output;		/* "stderr" (default), "stdout" or a path */
};

/* One server-side route from the config file (routes: list). */
struct config_route {
	struct cidr virt; /* equals real when virtual_cidr is absent */
	struct cidr real;
	char *proxy_id;
};

struct config {
	enum config_daemon daemon;
	char *config_file; /* the file that was loaded, or NULL */
	char *ignored_env; /* unknown NTUN_* environment variables, "A, B", or NULL: for a warning */

	/* client and proxy */
	char **server_addr; /* "host:port" of each ntun-server; at least one */
	size_t n_server_addr;

	/* client */
	struct cidr
		*target_cidr; /* what to intercept (repeatable --cidr); none: the server's routes */
	size_t n_target_cidr;
	uint16_t listen_port; /* loopback listener port, default 15001 */
	char *client_id;      /* informative; the certificate's id is authoritative */
	char *cgroup;	      /* cgroup v2 dir whose processes are intercepted; NULL = v2 root */
	enum config_intercept intercept; /* default auto */
	char *instance;	  /* client: /sys/fs/bpf/ntun/<instance>, server: .../server[-<instance>] */
	bool fail_closed; /* interception outlives the process (pinned); default false */

	/* server */
	char *listen_addr; /* "[addr]:port", default "0.0.0.0:8443" */
	struct config_route *routes;
	size_t n_routes;
	struct route_grant *grants; /* proxies: section, one (id or "*", prefix) per entry */
	size_t n_grants;	    /* 0: no section, any proxy may register any prefix */
	uint32_t max_handshakes;    /* TLS handshakes in progress, default 1024 */
	uint32_t max_handshakes_per_source; /* of them from one address, default 64 */
	struct policy_rule *policy;  /* policy: section, one (client, destination) per entry */
	size_t n_policy;	     /* 0: no section, every client may reach every route */
	uint32_t client_tunnels;     /* concurrent tunnels per client id, 0 = no limit */
	uint32_t client_tunnel_rate; /* new tunnels per second per client id, 0 = no limit */
	uint32_t dial_timeout_ms;    /* a Dial unanswered this long: try another proxy (2 s) */
	/* server: the listener's guard (restart-only). allow_from applies at accept, and in
	 * XDP when xdp_interface is set. */
	struct cidr *allow_from; /* sources that may connect; none: every source */
	size_t n_allow_from;
	char *xdp_interface;	       /* XDP guard on this interface; NULL = no XDP */
	enum config_xdp_mode xdp_mode; /* default auto */
	uint32_t xdp_syn_rate;	       /* SYNs per second per source, 0 = no limit (default 50) */
	uint32_t xdp_syn_burst;	       /* ...beyond the rate, in a burst (default 100) */

	/* proxy */
	char *proxy_id;
	struct cidr *managed_cidr; /* at least one */
	size_t n_managed_cidr;
	struct cidr *virtual_cidr; /* optional; when present, pairwise with managed_cidr */
	size_t n_virtual_cidr;
	uint32_t capacity; /* max concurrent dials, 0 = unlimited */
	bool allow_local;  /* dial loopback, link-local, multicast, own addresses; default false */

	/* all daemons */
	struct config_tls tls;
	struct config_log log;
	char *metrics_addr; /* "127.0.0.1:port" or NULL (off) */
	char *admin; /* admin API socket path, "off", or NULL (/run/ntun/<daemon>[-<instance>].sock) */
	uint32_t connect_timeout_ms;   /* default 5000 */
	uint32_t handshake_timeout_ms; /* default 10000 */
	uint32_t idle_timeout_ms;      /* per tunneled connection, 0 = none (default 0) */
	uint32_t ping_interval_ms;     /* keepalive.time_ms, default 5 min, 0 = no PINGs */
	uint32_t ping_timeout_ms;      /* keepalive.timeout_ms, default 20000 */
	bool ping_without_calls;       /* keepalive.permit_without_calls, default false */
	uint32_t ping_min_ms;	       /* keepalive.min_time_ms (PINGs received), default 1000 */
	uint32_t drain_timeout_ms;     /* default 5000 */
	bool gzip;		       /* send and accept grpc-encoding gzip; default false */
	uint32_t max_held_bytes;       /* whole messages held per connection, default 16 MiB */
	uint32_t conn_window;	       /* connection receive window floor, default 512 KiB */
	uint32_t max_unforwarded;      /* bytes waiting to be forwarded per connection, 1 GiB */
	uint32_t max_streams;	       /* server, proxy: concurrent streams per peer, 131072 */
	uint32_t early_resets;	       /* server: client resets before an answer, burst 200 */
	uint32_t early_reset_rate;     /* server: ...and per second, 100 */
};

/* Result of config_load besides errors: what the caller should do. */
enum config_action { CONFIG_RUN, CONFIG_EXIT_OK };

/* Loads the configuration for daemon from argv/environ. Flags (each also a config key):
 * common: --config F (-c) --env-file F (repeatable) --check-config --tls-cert F --tls-key F
 *   --tls-ca F --tls-server-name N --trust-domain D --tls-insecure[=false] --log-level L
 *   --log-format F --log-output O --metrics ADDR --admin PATH|off
 *   --connect-timeout T --handshake-timeout T
 *   --idle-timeout T --keepalive-time T --keepalive-timeout T --keepalive-min-time T
 *   --keepalive-permit-without-calls[=false] --ping-interval T (= --keepalive-time)
 *   --ping-timeout T (= --keepalive-timeout) --drain-timeout T
 *   --compression identity|gzip --max-held-bytes N --version (-V) --help (-h)
 * client: --server H:P[,H:P...] (repeatable) --cidr C (repeatable) --listen-port P
 *   --client-id ID --cgroup PATH
 *   --intercept MODE --instance NAME --fail-closed[=false]
 * server: --listen [ADDR]:PORT --route VIRT=PROXY[:REAL] (repeatable) --max-streams N
 *   --max-early-resets N --early-reset-rate N
 *   --grant ID=PREFIX (repeatable; the proxies section: ID, or "*" for every proxy, may
 *   register virtual prefixes inside PREFIX)
 *   --max-handshakes N --max-handshakes-per-source N (both at least 1)
 *   --allow CLIENT=DEST (repeatable; the policy section: CLIENT, a spiffe:// URI or "*",
 *   may dial DEST = CIDR[:PORT[-PORT]]) --max-client-tunnels N --client-tunnel-rate N
 *   --dial-timeout T --instance NAME
 *   --allow-from CIDR (repeatable; only these sources may connect, checked at accept and by
 *   XDP) --xdp IFACE --xdp-mode auto|native|generic --xdp-syn-rate N --xdp-syn-burst N
 *   (xdp.syn_burst at least 1 when xdp.syn_rate is set; syn_rate at most 1000000)
 * proxy:  --server H:P[,H:P...] (repeatable) --proxy-id ID --managed-cidr C (repeatable)
 *   --virtual-cidr C (repeatable)
 *   --capacity N --max-streams N --allow-local[=false]
 * The variable of a key is NTUN_ + the key path uppercased with '.' as '_' (tls.cert_file ->
 * NTUN_TLS_CERT_FILE; NTUN_CONFIG names the file when --config is absent). List values in
 * variables and flags are comma-separated. Durations (timeouts.*_ms, --*-timeout) are
 * milliseconds or take a unit: 500ms, 5s, 2m, 1h. An empty value or YAML null restores the
 * default. Ids (client_id, proxy_id, instance, route and grant proxy ids) are 1..63 of
 * [A-Za-z0-9._-]; a grant's id may also be "*".
 * Unknown keys, flags and .env names, and settings of another daemon in any source, are
 * errors; unknown NTUN_* variables of the environment are only listed in cfg->ignored_env.
 * On --version/--help, and on --check-config once every source is valid, prints to stdout,
 * leaves *cfg zeroed and returns 0 with CONFIG_EXIT_OK in *action (--check-config: "ntun-D:
 * configuration OK"; invalid settings are the usual error). On success returns 0 with
 * CONFIG_RUN and fills *cfg: every string and array in it is heap memory owned by cfg (caller
 * frees with config_release). On error returns -EINVAL (-ENOMEM when out of memory), leaves
 * *cfg zeroed and writes one message naming the source into err[errsz]: "file:line: key 'k':
 * reason (got 'v')", "NTUN_K: ..." or "--flag: ...".
 * No global state but getopt's (optind is reset): safe to call again to reload on SIGHUP. */
int config_load(struct config *cfg, enum config_daemon daemon, int argc, char **argv,
		enum config_action *action, char *err, size_t errsz);

/* Frees everything config_load allocated; cfg may be zeroed. */
void config_release(struct config *cfg);

#endif
