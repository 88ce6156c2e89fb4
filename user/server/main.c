// SPDX-License-Identifier: MIT
/* ntun-server: the central relay. Reads its configuration, listens, runs until signalled. */
#include "daemon.h"
#include "server.h"

static struct server *srv;

static void on_stop(struct daemon *d)
{
	server_stop(srv);
}

static int on_reload(struct daemon *d, const struct config *nc, char *err, size_t errsz)
{
	return server_reload(srv, nc, err, errsz);
}

int main(int argc, char **argv)
{
	struct daemon d;

	daemon_init(&d, CONFIG_SERVER, argc, argv);
	srv = server_new(&d);
	/* Listening sockets are bound: nothing below needs a capability, reloads included. */
	daemon_drop_privileges(&d, 0, 0);
	d.on_stop = on_stop;
	d.on_reload = on_reload;
	daemon_run(&d);
	server_free(srv);
	daemon_release(&d);
	return 0;
}
