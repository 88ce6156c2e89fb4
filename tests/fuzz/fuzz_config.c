// SPDX-License-Identifier: MIT
/* Fuzzes config_load: the input is written to a file and loaded as the YAML/JSON config and as
 * a .env file, for every daemon, alone and with the required flags. Not covered: flags and
 * NTUN_* variables themselves (the environment is cleared of NTUN_* once). */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "fuzz.h"

extern char **environ;

static char path[64];

static void cleanup(void)
{
	if (path[0])
		unlink(path);
}

static void setup(void)
{
	char names[64][128];
	size_t n = 0;
	int fd;

	/* A variable in the fuzzer's environment would change what the file means. */
	for (char **e = environ; e && *e && n < 64; e++) {
		size_t len = strcspn(*e, "=");

		if (!strncmp(*e, "NTUN_", 5) && len < sizeof(names[0])) {
			memcpy(names[n], *e, len);
			names[n++][len] = 0;
		}
	}
	for (size_t i = 0; i < n; i++)
		unsetenv(names[i]);
	snprintf(path, sizeof(path), "/tmp/ntun-fuzz-config-XXXXXX");
	fd = mkstemp(path);
	FUZZ_CHECK(fd >= 0);
	close(fd);
	atexit(cleanup);
}

static void write_input(const uint8_t *data, size_t size)
{
	FILE *f = fopen(path, "wb");

	FUZZ_CHECK(f != NULL);
	FUZZ_CHECK(fwrite(data, 1, size, f) == size);
	FUZZ_CHECK(fclose(f) == 0);
}

static void check_loaded(const struct config *cfg, enum config_daemon d)
{
	FUZZ_CHECK(cfg->daemon == d);
	FUZZ_CHECK(cfg->tls.cert_file && cfg->tls.key_file && cfg->tls.ca_file);
	FUZZ_CHECK(cfg->log.output != NULL);
	FUZZ_CHECK(cfg->connect_timeout_ms > 0 && cfg->handshake_timeout_ms > 0);
	FUZZ_CHECK(cfg->ping_interval_ms > 0 && cfg->ping_timeout_ms > 0);
	switch (d) {
	case CONFIG_CLIENT:
		FUZZ_CHECK(cfg->n_server_addr > 0 && cfg->server_addr[0] &&
			   cfg->n_target_cidr > 0 && cfg->target_cidr);
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

static void load(enum config_daemon d, int argc, char **argv)
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char *client[] = {"--server", "127.0.0.1:8443", "--cidr", "10.0.0.0/8"};
	static char *proxy[] = {"--server", "127.0.0.1:8443", "--proxy-id",
				"p1",	    "--managed-cidr", "10.0.0.0/8"};
	static char *tls[] = {"--tls-cert", "c.pem", "--tls-key", "k.pem", "--tls-ca", "ca.pem"};
	static const enum config_daemon daemons[] = {CONFIG_CLIENT, CONFIG_SERVER, CONFIG_PROXY};
	char *argv[32];
	int argc;

	if (!path[0])
		setup();
	write_input(data, size);
	for (size_t k = 0; k < 3; k++) {
		enum config_daemon d = daemons[k];

		for (int form = 0; form < 3; form++) {
			argc = 0;
			argv[argc++] = "ntun-fuzz";
			argv[argc++] = form == 2 ? "--env-file" : "--config";
			argv[argc++] = path;
			if (form > 0) {
				if (d == CONFIG_CLIENT)
					for (size_t i = 0; i < 4; i++)
						argv[argc++] = client[i];
				if (d == CONFIG_PROXY)
					for (size_t i = 0; i < 6; i++)
						argv[argc++] = proxy[i];
				for (size_t i = 0; i < 6; i++)
					argv[argc++] = tls[i];
			}
			argv[argc] = NULL;
			load(d, argc, argv);
		}
	}
	return 0;
}
