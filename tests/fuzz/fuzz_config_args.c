// SPDX-License-Identifier: MIT
/* Fuzzes config_load's operator sources other than files: command-line flags (getopt_long,
 * "--flag value", "--flag=value", booleans, repeatable lists, abbreviations) and NTUN_*
 * environment variables, for the daemon the input picks, with the same checks as fuzz_config.
 *
 * Input: [daemon: byte % 3 = client, server, proxy] then lines: "NTUN_NAME=value" sets that
 * variable (unset again afterwards), any other line is the next argv element. Flags that read
 * a file or print and exit (--config, --env-file, NTUN_CONFIG, --help, --version,
 * --check-config, and their abbreviations and short forms) are dropped: files are
 * fuzz_config's part, and a path from the input must not open what it names. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_config.h"

#define MAXARGS 48
#define MAXENV	16

/* Whether argv element a could name a flag that reads a file or exits. */
static bool dropped(const char *a)
{
	static const char *const bad[] = {"config", "env-file", "help", "version", "check-config"};
	size_t len;

	if (a[0] != '-')
		return false;
	if (a[1] != '-') /* short options, maybe clustered: -c FILE, -h, -V */
		return strpbrk(a + 1, "chV") != NULL;
	len = strcspn(a + 2, "=");
	if (len == 0)
		return false; /* "--": the end of the flags */
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (!strncmp(bad[i], a + 2, len))
			return true; /* getopt_long takes unambiguous prefixes */
	return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const enum config_daemon daemons[] = {CONFIG_CLIENT, CONFIG_SERVER, CONFIG_PROXY};
	static bool ready;
	char *argv[MAXARGS + 2], *env[MAXENV], *text, *p, *end;
	size_t nenv = 0;
	int argc = 0;

	if (!ready) {
		fuzz_config_clear_env();
		ready = true;
	}
	if (!size)
		return 0;
	text = malloc(size);
	FUZZ_CHECK(text != NULL);
	memcpy(text, data + 1, size - 1);
	text[size - 1] = 0;
	argv[argc++] = "ntun-fuzz";
	for (p = text, end = text + size - 1; p < end;) {
		char *eol = memchr(p, '\n', (size_t)(end - p)), *eq;

		if (!eol)
			eol = end;
		*eol = 0;
		eq = strchr(p, '=');
		if (!strncmp(p, "NTUN_", 5) && eq && nenv < MAXENV) {
			*eq = 0;
			if (strcmp(p, "NTUN_CONFIG") && setenv(p, eq + 1, 1) == 0)
				env[nenv++] = p;
		} else if (argc < MAXARGS && !dropped(p)) {
			argv[argc++] = p;
		}
		p = eol + 1;
	}
	argv[argc] = NULL;
	load(daemons[data[0] % 3], argc, argv);
	for (size_t i = 0; i < nenv; i++)
		unsetenv(env[i]);
	free(text);
	return 0;
}
