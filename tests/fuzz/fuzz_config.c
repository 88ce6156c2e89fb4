// SPDX-License-Identifier: MIT
/* Fuzzes config_load: the input is written to a file and loaded as the YAML/JSON config and as
 * a .env file, for every daemon, alone and with the required flags (the environment is
 * cleared of NTUN_* once). Flags and NTUN_* variables themselves: fuzz_config_args. */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz_config.h"

static char path[64];

static void cleanup(void)
{
	if (path[0])
		unlink(path);
}

static void setup(void)
{
	int fd;

	/* A variable in the fuzzer's environment would change what the file means. */
	fuzz_config_clear_env();
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
