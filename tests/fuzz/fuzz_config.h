/* SPDX-License-Identifier: MIT */
/* What the config harnesses check of one config_load: a loaded config has what its daemon
 * needs; an error says where and leaves nothing behind. */
#ifndef NTUN_FUZZ_CONFIG_H
#define NTUN_FUZZ_CONFIG_H

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "fuzz.h"

extern char **environ;

/* Unsets every NTUN_* variable of the process. */
static inline void fuzz_config_clear_env(void)
{
	char names[64][128];
	size_t n = 0;

	for (char **e = environ; e && *e && n < 64; e++) {
		size_t len = strcspn(*e, "=");

		if (!strncmp(*e, "NTUN_", 5) && len < sizeof(names[0])) {
			memcpy(names[n], *e, len);
			names[n++][len] = 0;
		}
	}
	for (size_t i = 0; i < n; i++)
		unsetenv(names[i]);
}

static inline void check_loaded(const struct config *cfg, enum config_daemon d)
{
	FUZZ_CHECK(cfg->daemon == d);
	FUZZ_CHECK(cfg->tls.cert_file && cfg->tls.key_file && cfg->tls.ca_file);
	FUZZ_CHECK(cfg->log.output != NULL);
	FUZZ_CHECK(cfg->connect_timeout_ms > 0 && cfg->handshake_timeout_ms > 0);
	FUZZ_CHECK(cfg->ping_interval_ms > 0 && cfg->ping_timeout_ms > 0);
	switch (d) {
	case CONFIG_CLIENT:
		/* No target CIDR: the client follows the server's routes. */
		FUZZ_CHECK(cfg->n_server_addr > 0 && cfg->server_addr[0]);
		FUZZ_CHECK(!cfg->n_target_cidr || cfg->target_cidr);
		FUZZ_CHECK(cfg->listen_port > 0 && cfg->instance);
		for (size_t i = 0; i < cfg->n_target_cidr; i++)
			FUZZ_CHECK(cfg->target_cidr[i].len <= 32);
		break;
	case CONFIG_SERVER:
		FUZZ_CHECK(cfg->listen_addr != NULL);
		FUZZ_CHECK(!cfg->n_routes || cfg->routes);
		for (size_t i = 0; i < cfg->n_routes; i++) {
			const struct config_route *r = &cfg->routes[i];

			FUZZ_CHECK(r->proxy_id && *r->proxy_id && strlen(r->proxy_id) <= 63);
			FUZZ_CHECK(r->virt.len == r->real.len);
		}
		break;
	case CONFIG_PROXY:
		FUZZ_CHECK(cfg->n_server_addr > 0 && cfg->server_addr[0] && cfg->proxy_id &&
			   strlen(cfg->proxy_id) <= 63);
		FUZZ_CHECK(cfg->n_managed_cidr > 0 && cfg->managed_cidr);
		FUZZ_CHECK(!cfg->n_virtual_cidr || cfg->n_virtual_cidr == cfg->n_managed_cidr);
		break;
	}
}

static inline void load(enum config_daemon d, int argc, char **argv)
{
	static const struct config zero;
	struct config cfg, expect = zero;
	enum config_action action;
	char err[512];
	int ret;

	memset(err, 0x55, sizeof(err));
	ret = config_load(&cfg, d, argc, argv, &action, err, sizeof(err));
	FUZZ_CHECK(memchr(err, 0, sizeof(err)) != NULL);
	FUZZ_CHECK(action == CONFIG_RUN);
	if (ret == 0) {
		check_loaded(&cfg, d);
	} else {
		/* Errors say where and leave nothing behind. */
		FUZZ_CHECK(ret == -EINVAL || ret == -ENOMEM);
		FUZZ_CHECK(err[0] != 0);
		expect.daemon = d;
		FUZZ_CHECK(!memcmp(&cfg, &expect, sizeof(cfg)));
	}
	config_release(&cfg);
}

#endif
