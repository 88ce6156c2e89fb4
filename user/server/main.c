// SPDX-License-Identifier: MIT
/* ntun-server: the central relay. Reads its configuration, listens, runs until signalled. */
#include "daemon.h"
#include "server.h"

static struct server *srv;

static void on_stop(struct daemon *d)
{
	server_stop(srv);
}

int main(int argc, char **argv)
{
	struct daemon d;

	daemon_init(&d, CONFIG_SERVER, argc, argv);
	srv = server_new(&d);
	d.on_stop = on_stop;
	daemon_run(&d);
	server_free(srv);
	daemon_release(&d);
	return 0;
}
