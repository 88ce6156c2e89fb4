// SPDX-License-Identifier: MIT
/* Start-up shared by the three daemons. A second SIGINT/SIGTERM during a drain exits at once;
 * SIGHUP is handed to the daemon. */
#include "daemon.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "loop.h"
#include "metrics.h"
#include "tls.h"

static void on_signal(struct loop_signal *s, int signo, void *arg)
{
	struct daemon *d = arg;

	if (signo == SIGHUP) {
		if (d->on_reload)
			d->on_reload(d);
		else
			log_info("SIGHUP: nothing to reload");
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

void daemon_init(struct daemon *d, enum config_daemon kind, int argc, char **argv)
{
	static const char *const names[] = {"ntun-client", "ntun-server", "ntun-proxy"};
	static const char *const comps[] = {"client", "server", "proxy"};
	static const int sigs[] = {SIGINT, SIGTERM, SIGHUP};
	struct tls_ctx_opts to = {0};
	enum config_action action;
	char err[512];
	int rv;

	memset(d, 0, sizeof(*d));
	d->name = names[kind];
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
	srandom((unsigned)(time(NULL) ^ getpid()));
	signal(SIGPIPE, SIG_IGN);

	to.cert_file = d->cfg.tls.cert_file;
	to.key_file = d->cfg.tls.key_file;
	to.ca_file = d->cfg.tls.ca_file;
	to.trust_domain = d->cfg.tls.trust_domain;
	to.insecure = d->cfg.tls.insecure;
	if (kind == CONFIG_SERVER) {
		to.is_server = true;
		to.accept_roles = TLS_ROLE_BIT(TLS_ROLE_CLIENT) | TLS_ROLE_BIT(TLS_ROLE_PROXY);
	} else {
		to.server_name = d->cfg.tls.server_name;
		to.accept_roles = TLS_ROLE_BIT(TLS_ROLE_SERVER);
	}
	d->tls = tls_ctx_new(&to, err, sizeof(err));
	if (!d->tls)
		fatal("TLS setup: %s", err);
	{
		const struct tls_identity *me = tls_ctx_identity(d->tls);
		enum tls_role want = kind == CONFIG_SERVER  ? TLS_ROLE_SERVER
				     : kind == CONFIG_PROXY ? TLS_ROLE_PROXY
							    : TLS_ROLE_CLIENT;

		if (me->role != want)
			fatal("certificate %s has role '%s' (%s); %s needs a '%s' certificate",
			      d->cfg.tls.cert_file, tls_role_name(me->role), me->uri, d->name,
			      tls_role_name(want));
		log_info("%s %s starting as %s", d->name, NTUN_VERSION, me->uri);
	}

	peer_opts_default(&d->popts);
	d->popts.connect_ms = d->cfg.connect_timeout_ms;
	d->popts.handshake_ms = d->cfg.handshake_timeout_ms;
	d->popts.ping_interval_ms = d->cfg.ping_interval_ms;
	d->popts.ping_timeout_ms = d->cfg.ping_timeout_ms;

	d->loop = loop_new();
	if (!d->loop)
		fatal("event loop: out of memory");
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
	{
		static const uint64_t one = 1;

		metrics_add(d->metrics, METRICS_GAUGE,
			    "ntun_build_info{version=\"" NTUN_VERSION "\"}", "ntun version", &one);
	}
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
}

void daemon_tunnel_started(struct daemon *d)
{
	d->stats.tunnels_total++;
	d->stats.tunnels_active++;
}

void daemon_tunnel_ended(struct daemon *d, int err, uint64_t up, uint64_t down)
{
	d->stats.tunnels_active--;
	if (err)
		d->stats.tunnels_failed++;
	d->stats.bytes_up += up;
	d->stats.bytes_down += down;
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
	metrics_free(d->metrics);
	for (unsigned i = 0; i < 3; i++)
		loop_signal_free(d->sig[i]);
	loop_free(d->loop);
	tls_ctx_free(d->tls);
	config_release(&d->cfg);
}
