// SPDX-License-Identifier: MIT
/* Start-up shared by the three daemons. A second SIGINT/SIGTERM during a drain exits at once;
 * SIGHUP is handed to the daemon. */
#include "daemon.h"

#include <errno.h>
#include <linux/capability.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "admin.h"
#include "json.h"
#include "log.h"
#include "loop.h"
#include "metrics.h"
#include "relay.h"
#include "status.h"
#include "tls.h"

static const char *const comps[] = {"client", "server", "proxy"};

const char *daemon_server_name(const struct config *cfg, const char *entry, char *buf, size_t size)
{
	const char *hp = entry, *colon;
	size_t len;

	if (cfg->tls.server_name && *cfg->tls.server_name)
		return cfg->tls.server_name;
	if (!hp || !(colon = strrchr(hp, ':')))
		return NULL;
	len = (size_t)(colon - hp);
	if (hp[0] == '[' && len >= 2 && hp[len - 1] == ']') {
		hp++;
		len -= 2;
	}
	if (!len || len >= size)
		return NULL;
	memcpy(buf, hp, len);
	buf[len] = '\0';
	return buf;
}

/* TLS credentials for a daemon of this kind, checking that our certificate has its role. */
static struct tls_ctx *make_tls(enum config_daemon kind, const struct config *cfg, char *err,
				size_t errsz)
{
	static const enum tls_role want[] = {TLS_ROLE_CLIENT, TLS_ROLE_SERVER, TLS_ROLE_PROXY};
	struct tls_ctx_opts to = {0};
	const struct tls_identity *me;
	struct tls_ctx *t;
	char why[400];

	to.cert_file = cfg->tls.cert_file;
	to.key_file = cfg->tls.key_file;
	to.ca_file = cfg->tls.ca_file;
	to.trust_domain = cfg->tls.trust_domain;
	to.insecure = cfg->tls.insecure;
	if (kind == CONFIG_SERVER) {
		to.is_server = true;
		to.accept_roles = TLS_ROLE_BIT(TLS_ROLE_CLIENT) | TLS_ROLE_BIT(TLS_ROLE_PROXY);
	} else {
		/* Each connection checks the name of its own server (uplink.c). */
		to.server_name = cfg->tls.server_name;
		to.accept_roles = TLS_ROLE_BIT(TLS_ROLE_SERVER);
	}
	t = tls_ctx_new(&to, why, sizeof(why));
	if (!t) {
		snprintf(err, errsz, "TLS setup: %s", why);
		return NULL;
	}
	me = tls_ctx_identity(t);
	if (me->role != want[kind]) {
		snprintf(err, errsz,
			 "certificate %s has role '%s' (%s); ntun-%s needs a '%s' certificate",
			 cfg->tls.cert_file, tls_role_name(me->role), me->uri, comps[kind],
			 tls_role_name(want[kind]));
		tls_ctx_free(t);
		return NULL;
	}
	return t;
}

static void metrics_init(struct daemon *d);

static void set_peer_opts(struct daemon *d)
{
	peer_opts_default(&d->popts);
	d->popts.connect_ms = d->cfg.connect_timeout_ms;
	d->popts.handshake_ms = d->cfg.handshake_timeout_ms;
	d->popts.ping_interval_ms = d->cfg.ping_interval_ms;
	d->popts.ping_timeout_ms = d->cfg.ping_timeout_ms;
	d->popts.ping_without_calls = d->cfg.ping_without_calls;
	d->popts.h2.ping_min_ms = d->cfg.ping_min_ms;
	d->popts.h2.ping_without_calls = d->cfg.ping_without_calls;
	d->popts.drain_ms = d->cfg.drain_timeout_ms;
	d->popts.h2.max_streams = d->cfg.max_streams;
	d->popts.h2.reset_burst = d->cfg.early_resets;
	d->popts.h2.reset_rate = d->cfg.early_reset_rate;
	d->popts.h2.max_held = d->cfg.max_held_bytes;
	d->popts.h2.conn_window = d->cfg.conn_window;
	d->popts.h2.max_unforwarded = d->cfg.max_unforwarded;
}

static bool str_changed(const char *a, const char *b)
{
	return (a == NULL) != (b == NULL) || (a && strcmp(a, b));
}

/* Settings the running daemon cannot change in place. Returns the first changed one or NULL. */
static const char *restart_only_changed(const struct config *o, const struct config *n)
{
	if (str_changed(o->listen_addr, n->listen_addr))
		return "listen_addr";
	if (o->listen_port != n->listen_port)
		return "listen_port";
	if (str_changed(o->cgroup, n->cgroup))
		return "cgroup";
	if (o->intercept != n->intercept)
		return "intercept";
	if (str_changed(o->instance, n->instance))
		return "instance";
	if (o->fail_closed != n->fail_closed)
		return "fail_closed";
	if (str_changed(o->metrics_addr, n->metrics_addr))
		return "metrics_addr";
	if (str_changed(o->admin, n->admin))
		return "admin";
	if (str_changed(o->proxy_id, n->proxy_id))
		return "proxy_id";
	return NULL;
}

/* SIGHUP and the admin API: reads every source again; applies it whole or not at all.
 * Returns 0, or -EINVAL with the reason (for the log and the API) in err. */
static int daemon_reload(struct daemon *d, char *err, size_t errsz)
{
	struct config nc;
	enum config_action action;
	struct tls_ctx *t;
	const char *field;
	char why[512];

	if (config_load(&nc, d->kind, d->argc, d->argv, &action, why, sizeof(why)) < 0) {
		snprintf(err, errsz, "%s", why);
		return -EINVAL;
	}
	field = restart_only_changed(&d->cfg, &nc);
	if (field) {
		snprintf(err, errsz, "'%s' changed and needs a restart", field);
		config_release(&nc);
		return -EINVAL;
	}
	t = make_tls(d->kind, &nc, why, sizeof(why));
	if (!t) {
		snprintf(err, errsz, "%s", why);
		config_release(&nc);
		return -EINVAL;
	}
	if (d->on_reload && d->on_reload(d, &nc, why, sizeof(why)) < 0) {
		snprintf(err, errsz, "%s", why);
		tls_ctx_free(t);
		config_release(&nc);
		return -EINVAL;
	}
	/* Open connections keep the credentials they were made with; new ones use these. */
	tls_ctx_free(d->tls);
	d->tls = t;
	config_release(&d->cfg);
	d->cfg = nc;
	set_peer_opts(d);
	if (log_setup(comps[d->kind], d->cfg.log.level, d->cfg.log.format, d->cfg.log.output) < 0)
		log_error("cannot open log output '%s'; logging to stderr", d->cfg.log.output);
	return 0;
}

static int reload_logged(void *arg, char *err, size_t errsz)
{
	int rv = daemon_reload(arg, err, errsz);

	if (rv < 0)
		log_error("reload failed, keeping the running configuration: %s", err);
	else
		log_info("configuration reloaded");
	return rv;
}

static void on_signal(struct loop_signal *s, int signo, void *arg)
{
	struct daemon *d = arg;

	if (signo == SIGHUP) {
		char err[512];

		log_info("SIGHUP: reloading the configuration");
		reload_logged(d, err, sizeof(err));
		return;
	}
	if (d->stops++ > 0 || !d->on_stop) {
		log_info("%s: stopping now", strsignal(signo));
		loop_stop(d->loop);
		return;
	}
	log_info("%s: draining (send again to stop at once)", strsignal(signo));
	d->on_stop(d);
}

/* The admin socket: the configured path, or /run/ntun/<daemon>[-<instance>].sock. A default
 * path another daemon holds (several on one host, tests) only costs this one its socket; a
 * configured one that cannot be served is fatal. */
static void admin_start(struct daemon *d)
{
	const char *inst = d->cfg.instance; /* "default" but on clients and servers that set it */
	bool dflt = !d->cfg.admin;
	char path[CONFIG_ADMIN_PATH_MAX], err[400];

	if (d->cfg.admin && !strcmp(d->cfg.admin, "off"))
		return;
	if (dflt)
		snprintf(path, sizeof(path), "%s/%s%s%s.sock", DAEMON_ADMIN_DIR, comps[d->kind],
			 inst && strcmp(inst, "default") ? "-" : "",
			 inst && strcmp(inst, "default") ? inst : "");
	else
		snprintf(path, sizeof(path), "%s", d->cfg.admin);
	d->admin = admin_new(d->loop, path, comps[d->kind], tls_ctx_identity(d->tls)->uri,
			     reload_logged, d, err, sizeof(err));
	if (!d->admin && !dflt)
		fatal("admin API: %s", err);
	if (!d->admin)
		log_warn("admin API off: %s (set admin: PATH, or admin: off)", err);
	else
		log_info("admin API on %s", path);
}

void daemon_admin_status(struct daemon *d, struct json *j)
{
	json_u64(j, "tunnels_total", d->stats.tunnels_total);
	json_u64(j, "tunnels_active", d->stats.tunnels_active);
	json_u64(j, "tunnels_failed", d->stats.tunnels_failed);
	json_u64(j, "tunnels_refused", d->stats.refused_total);
}

#define TRIM_EVERY_MS 10000

static void trim_tick(struct loop_timer *t, void *arg)
{
	malloc_trim(0);
	loop_timer_arm(t, TRIM_EVERY_MS);
}

void daemon_init(struct daemon *d, enum config_daemon kind, int argc, char **argv)
{
	static const char *const names[] = {"ntun-client", "ntun-server", "ntun-proxy"};
	static const int sigs[] = {SIGINT, SIGTERM, SIGHUP};
	enum config_action action;
	char err[512];
	int rv;

	memset(d, 0, sizeof(*d));
	d->name = names[kind];
	d->kind = kind;
	d->argc = argc;
	d->argv = argv;
	log_setup(comps[kind], LOG_LVL_INFO, LOG_FMT_JSON, NULL);
	rv = config_load(&d->cfg, kind, argc, argv, &action, err, sizeof(err));
	if (rv < 0) {
		fprintf(stderr, "%s: %s\n", d->name, err);
		exit(2);
	}
	if (action == CONFIG_EXIT_OK)
		exit(0);
	if (log_setup(comps[kind], d->cfg.log.level, d->cfg.log.format, d->cfg.log.output) < 0)
		fatal("cannot open log output '%s'", d->cfg.log.output);
	if (d->cfg.ignored_env)
		log_warn("ignoring unknown NTUN_* environment variables: %s (not %s settings; "
			 "Kubernetes service links look like this: set enableServiceLinks: false)",
			 d->cfg.ignored_env, d->name);
	srandom((unsigned)(time(NULL) ^ getpid()));
	/* Relay buffers (64 KiB-2 MiB: up to a stream window) come and go with every burst: keep
	 * them on the heap rather than mmap/munmap (and fault in) each, and do not give freed
	 * heap back on every free: with 8 streams the buffered bytes swing by tens of MiB, and
	 * trimming at 8 MiB made the server fault in 12,000 fresh pages a second (a quarter of
	 * its time). Freed memory goes back every TRIM_EVERY_MS instead (trim_tick). */
	mallopt(M_MMAP_THRESHOLD, 4 << 20);
	mallopt(M_TRIM_THRESHOLD, 512 << 20);
	signal(SIGPIPE, SIG_IGN);

	d->tls = make_tls(kind, &d->cfg, err, sizeof(err));
	if (!d->tls)
		fatal("%s", err);
	log_info("%s %s starting as %s", d->name, NTUN_VERSION, tls_ctx_identity(d->tls)->uri);
	for (size_t i = 0; kind != CONFIG_SERVER && i < d->cfg.n_server_addr; i++) {
		char name[256];

		if (d->cfg.tls.insecure) {
			log_warn("tls.insecure: the server certificate's name is not checked");
			break;
		}
		log_info("the server certificate must name %s%s%s",
			 daemon_server_name(&d->cfg, d->cfg.server_addr[i], name, sizeof(name)),
			 d->cfg.n_server_addr > 1 ? " for " : "",
			 d->cfg.n_server_addr > 1 ? d->cfg.server_addr[i] : "");
	}

	set_peer_opts(d);

	d->loop = loop_new();
	if (!d->loop)
		fatal("event loop: out of memory");
	d->trim = loop_timer_new(d->loop, trim_tick, d);
	if (!d->trim)
		fatal("event loop: out of memory");
	loop_timer_arm(d->trim, TRIM_EVERY_MS);
	for (unsigned i = 0; i < 3; i++) {
		d->sig[i] = loop_signal_new(d->loop, sigs[i], on_signal, d);
		if (!d->sig[i])
			fatal("cannot handle signal %d", sigs[i]);
	}
	if (d->cfg.metrics_addr) {
		d->metrics = metrics_new(d->loop, d->cfg.metrics_addr, err, sizeof(err));
		if (!d->metrics)
			fatal("%s", err);
	}
	admin_start(d);
	{
		static const uint64_t one = 1;

		metrics_add(d->metrics, METRICS_GAUGE,
			    "ntun_build_info{version=\"" NTUN_VERSION "\"}", "ntun version", &one);
	}
	metrics_add(d->metrics, METRICS_COUNTER, "ntun_tls_handshakes_total",
		    "TLS handshakes completed", &tls_stats()->handshakes);
	metrics_add(d->metrics, METRICS_COUNTER, "ntun_tls_ktls_send_total",
		    "TLS connections whose records the kernel seals", &tls_stats()->ktls_send);
	metrics_add(d->metrics, METRICS_COUNTER, "ntun_tls_ktls_recv_total",
		    "TLS connections whose records the kernel opens", &tls_stats()->ktls_recv);
	metrics_add(d->metrics, METRICS_COUNTER, "ntun_tunnels_total",
		    "tunneled TCP connections started", &d->stats.tunnels_total);
	metrics_add(d->metrics, METRICS_GAUGE, "ntun_tunnels_active",
		    "tunneled TCP connections open now", &d->stats.tunnels_active);
	metrics_add(d->metrics, METRICS_COUNTER, "ntun_tunnels_failed_total",
		    "tunneled connections that ended with an error", &d->stats.tunnels_failed);
	metrics_add(d->metrics, METRICS_COUNTER, "ntun_tunnels_refused_total",
		    "connections refused before a tunnel was set up", &d->stats.refused_total);
	metrics_add(d->metrics, METRICS_COUNTER, "ntun_tunnel_bytes_up_total",
		    "bytes carried toward destinations", &d->stats.bytes_up);
	metrics_add(d->metrics, METRICS_COUNTER, "ntun_tunnel_bytes_down_total",
		    "bytes carried back toward applications", &d->stats.bytes_down);
	metrics_init(d);
	d->status = status_new(d);
}

/* Histogram buckets, in ms: connects take a millisecond on a LAN and seconds when a proxy is
 * slow to answer; tunnels last from a request to days. */
static const uint32_t connect_bounds[] = {1,   2,   5,	  10,	25,   50,    100,
					  250, 500, 1000, 2500, 5000, 10000, 30000};
static const uint32_t duration_bounds[] = {10,	   100,	    1000,    10000,    60000,
					   300000, 1800000, 3600000, 14400000, 86400000};

static const char *const server_labels[] = {"server"};
static const struct metrics_series server_series[DAEMON_ROW_N] = {
	[DAEMON_ROW_OPENED] = {METRICS_COUNTER, "ntun_server_tunnels_total",
			       "tunnels started over each server"},
	[DAEMON_ROW_OPEN] = {METRICS_GAUGE, "ntun_server_tunnels_open",
			     "tunnels open over each server now"},
	[DAEMON_ROW_UP] = {METRICS_COUNTER, "ntun_server_tunnel_bytes_up_total",
			   "bytes carried toward destinations over each server"},
	[DAEMON_ROW_DOWN] = {METRICS_COUNTER, "ntun_server_tunnel_bytes_down_total",
			     "bytes carried back toward applications over each server"},
};

/* The histograms every daemon has, and the client's and proxy's per-server rows. */
static void metrics_init(struct daemon *d)
{
	static const char *const connect_help[] = {
		[CONFIG_CLIENT] =
			"seconds from accepting an app's connection to the server's answer "
			"(sent with the first byte back, or the failure)",
		[CONFIG_SERVER] =
			"seconds from a client's Connect to its proxy's answer to the Dial "
			"(retries on other proxies included)",
		[CONFIG_PROXY] = "seconds a connect() to a destination took",
	};

	d->connect_ms = metrics_hist_new(d->metrics, "ntun_tunnel_connect_seconds",
					 connect_help[d->kind], connect_bounds,
					 sizeof(connect_bounds) / sizeof(connect_bounds[0]));
	d->duration_ms = metrics_hist_new(d->metrics, "ntun_tunnel_duration_seconds",
					  "seconds tunnels lasted, from their start to their close",
					  duration_bounds,
					  sizeof(duration_bounds) / sizeof(duration_bounds[0]));
	if (d->kind != CONFIG_SERVER)
		d->per_server =
			metrics_vec_new(d->metrics, server_labels, 1, server_series, DAEMON_ROW_N);
}

/* Highest capability number this kernel knows. */
static unsigned cap_last(void)
{
	FILE *f = fopen("/proc/sys/kernel/cap_last_cap", "re");
	unsigned last = CAP_LAST_CAP;

	if (f) {
		if (fscanf(f, "%u", &last) != 1 || last > 63)
			last = CAP_LAST_CAP;
		fclose(f);
	}
	return last;
}

/* Sets this thread's permitted, effective and inheritable sets. Returns 0 or -errno. */
static int caps_set(uint64_t perm, uint64_t eff, uint64_t inh)
{
	struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3};
	struct __user_cap_data_struct data[2] = {
		{(uint32_t)eff, (uint32_t)perm, (uint32_t)inh},
		{(uint32_t)(eff >> 32), (uint32_t)(perm >> 32), (uint32_t)(inh >> 32)},
	};

	return syscall(SYS_capset, &hdr, data) ? -errno : 0;
}

/* "net_admin,bpf" for the capabilities in set, numbers for those without a name here. */
static const char *caps_names(uint64_t set, char *buf, size_t size)
{
	static const char *const names[64] = {
		[CAP_DAC_OVERRIDE] = "dac_override", [CAP_NET_BIND_SERVICE] = "net_bind_service",
		[CAP_NET_ADMIN] = "net_admin",	     [CAP_NET_RAW] = "net_raw",
		[CAP_SYS_ADMIN] = "sys_admin",	     [CAP_BPF] = "bpf",
		[CAP_SYS_PTRACE] = "sys_ptrace",     [CAP_PERFMON] = "perfmon",
	};
	size_t len = 0;

	buf[0] = '\0';
	for (unsigned c = 0; c < 64 && len < size; c++) {
		if (!(set & DAEMON_CAP(c)))
			continue;
		if (names[c])
			len += (size_t)snprintf(buf + len, size - len, "%s%s", len ? "," : "",
						names[c]);
		else
			len += (size_t)snprintf(buf + len, size - len, "%s%u", len ? "," : "", c);
	}
	return set ? buf : "none";
}

void daemon_drop_privileges(struct daemon *d, uint64_t keep, uint64_t reserve)
{
	struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3};
	struct __user_cap_data_struct data[2] = {0};
	unsigned last = cap_last(), bset_kept = 0;
	uint64_t perm, inh;
	char names[2][160];
	int rv;

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
		fatal("prctl(PR_SET_NO_NEW_PRIVS): %s", strerror(errno));
	/* The bounding set limits only what an exec gains: reserve stays out of it. */
	for (unsigned c = 0; c <= last; c++) {
		if ((keep & DAEMON_CAP(c)) || prctl(PR_CAPBSET_READ, c, 0, 0, 0) != 1)
			continue;
		if (prctl(PR_CAPBSET_DROP, c, 0, 0, 0))
			bset_kept++;
	}
	if (bset_kept)
		log_debug("%u capabilities stay in the bounding set (no CAP_SETPCAP)", bset_kept);
	prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
	if (syscall(SYS_capget, &hdr, data))
		fatal("capget: %s", strerror(errno));
	perm = (uint64_t)data[1].permitted << 32 | data[0].permitted;
	keep &= perm;
	reserve &= perm & ~keep;
	inh = geteuid() == 0 ? 0 : keep;
	rv = caps_set(keep | reserve, keep, inh);
	if (rv < 0)
		fatal("capset: %s", strerror(-rv));
	for (unsigned c = 0; c <= last && inh; c++)
		if (inh & DAEMON_CAP(c))
			prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, c, 0, 0);
	d->caps_keep = keep;
	d->caps_reserve = reserve;
	log_info("privileges dropped: capabilities kept: %s; held for the exit only: %s",
		 caps_names(keep, names[0], sizeof(names[0])),
		 caps_names(reserve, names[1], sizeof(names[1])));
}

int daemon_raise_reserved(struct daemon *d)
{
	if (!d->caps_reserve)
		return 0;
	return caps_set(d->caps_keep | d->caps_reserve, d->caps_keep | d->caps_reserve,
			geteuid() == 0 ? 0 : d->caps_keep);
}

void daemon_tunnel_started(struct daemon *d, struct relay *r, uint64_t *row)
{
	if (!r)
		return;
	d->stats.tunnels_total++;
	d->stats.tunnels_active++;
	relay_count_into(r, &d->stats.bytes_up, &d->stats.bytes_down);
	if (row) {
		row[DAEMON_ROW_OPENED]++;
		row[DAEMON_ROW_OPEN]++;
		relay_count_into(r, &row[DAEMON_ROW_UP], &row[DAEMON_ROW_DOWN]);
	}
}

void daemon_tunnel_connected(struct daemon *d, uint64_t start_ms)
{
	metrics_hist_observe(d->connect_ms, loop_now_ms() - start_ms);
}

void daemon_tunnel_ended(struct daemon *d, int err, uint64_t start_ms, uint64_t *row)
{
	d->stats.tunnels_active--;
	if (err)
		d->stats.tunnels_failed++;
	if (row)
		row[DAEMON_ROW_OPEN]--;
	metrics_hist_observe(d->duration_ms, loop_now_ms() - start_ms);
}

uint64_t *daemon_server_row(struct daemon *d, const char *label)
{
	return metrics_vec_row(d->per_server, &label);
}

void daemon_refused(struct daemon *d)
{
	d->stats.refused_total++;
}

void daemon_run(struct daemon *d)
{
	if (loop_run(d->loop) < 0)
		fatal("event loop failed");
}

void daemon_release(struct daemon *d)
{
	admin_free(d->admin);
	loop_timer_free(d->trim);
	status_free(d->status);
	metrics_free(d->metrics);
	for (unsigned i = 0; i < 3; i++)
		loop_signal_free(d->sig[i]);
	loop_free(d->loop);
	tls_ctx_free(d->tls);
	config_release(&d->cfg);
}
