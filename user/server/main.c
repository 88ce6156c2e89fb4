// SPDX-License-Identifier: MIT
/* ntun-server: the central relay. Reads its configuration, listens, guards the listen port
 * with XDP if asked, runs until signalled. */
#include <string.h>

#include "daemon.h"
#include "log.h"
#include "server.h"
#include "sock.h"
#include "xdp.h"

static struct server *srv;

static void on_stop(struct daemon *d)
{
	server_stop(srv);
}

static int on_reload(struct daemon *d, const struct config *nc, char *err, size_t errsz)
{
	return server_reload(srv, nc, err, errsz);
}

/* Attaches the XDP guard to the listener's port (server_new has checked the address). */
static struct xdp_guard *guard_start(struct daemon *d)
{
	struct xdp_guard *g;
	uint32_t addr;
	uint16_t port;
	char err[512];

	if (!d->cfg.xdp_interface)
		return NULL;
	if (sock_resolve(d->cfg.listen_addr, &addr, &port) < 0)
		fatal("listen address '%s' does not resolve", d->cfg.listen_addr);
	g = xdp_guard_new(&d->cfg, addr, port, err, sizeof(err));
	if (!g)
		fatal("xdp: %s", err);
	xdp_guard_metrics(g, d->metrics);
	return g;
}

int main(int argc, char **argv)
{
	struct xdp_guard *guard;
	struct daemon d;
	int rv;

	daemon_init(&d, CONFIG_SERVER, argc, argv);
	srv = server_new(&d);
	guard = guard_start(&d);
	/* Listening sockets are bound and the guard attached: nothing below needs a capability,
	 * reloads included, but detaching the guard at exit; those stay permitted, out of the
	 * effective set, until then. */
	daemon_drop_privileges(&d, 0, xdp_guard_exit_caps(guard));
	d.on_stop = on_stop;
	d.on_reload = on_reload;
	daemon_run(&d);
	server_free(srv);
	if (guard) {
		rv = daemon_raise_reserved(&d);
		if (rv < 0)
			log_warn("xdp: cannot raise the capabilities to detach: %s", strerror(-rv));
		xdp_guard_free(guard);
	}
	daemon_release(&d);
	return 0;
}
