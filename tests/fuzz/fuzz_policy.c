// SPDX-License-Identifier: MIT
/* Fuzzes the server's authorization policy: each input line is given as --allow LINE (a
 * comma-separated list of CLIENT=DEST; an empty line empties the list) to config_load, and the
 * result is compared with a reference reading of the same lines: accepted exactly when every
 * item is valid, with the rules in order. Then policy_allows answers queries as a linear model
 * of the rules does (client "*" or equal, address in the prefix, port in the range).
 * The policy section of YAML files goes through the same rule parser (fuzz_config).
 *
 * Input: lines of --allow values, then a line "?" and queries of 7 bytes each: [client: which
 * rule's client, or one no rule names] [address, 4 bytes] [port, 2 bytes]. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_config.h"
#include "route.h"

#define MAXLINES 24
#define MAXRULES 64

struct ref_rule {
	char client[POLICY_CLIENT_LEN];
	struct policy_rule r;
};

/* A client as the policy names it: "*", or spiffe:// and 1..246 more of [A-Za-z0-9._-/:%]. */
static bool ref_client(const char *s, size_t n)
{
	static const char ok[] =
		"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-/:%";

	if (n == 1 && s[0] == '*')
		return true;
	if (n <= 9 || n >= POLICY_CLIENT_LEN || strncmp(s, "spiffe://", 9))
		return false;
	for (size_t i = 0; i < n; i++)
		if (!s[i] || !strchr(ok, s[i]))
			return false;
	return true;
}

/* One --allow value: appends its rules to ref[*n]. 1 if config_load must take it, 0 if it must
 * refuse it, -1 if the reference cannot tell (more rules than it holds). */
static int ref_value(const char *v, struct ref_rule *ref, size_t *n)
{
	size_t len = strlen(v);
	char item[512];

	if (!len) {
		*n = 0; /* an empty value restores the default: no rules */
		return 1;
	}
	if (v[0] == ',' || v[len - 1] == ',' || strstr(v, ",,"))
		return 0;
	while (*v) {
		size_t il = strcspn(v, ","), a = 0, b = il;
		const char *eq;

		while (a < b && (v[a] == ' ' || v[a] == '\t'))
			a++;
		while (b > a && (v[b - 1] == ' ' || v[b - 1] == '\t'))
			b--;
		if (*n == MAXRULES || b - a >= sizeof(item))
			return -1;
		if (b == a)
			return 0;
		memcpy(item, v + a, b - a);
		item[b - a] = 0;
		eq = strrchr(item, '=');
		if (!eq || !ref_client(item, (size_t)(eq - item)))
			return 0;
		memset(&ref[*n], 0, sizeof(ref[*n]));
		if (policy_dest_parse(eq + 1, &ref[*n].r) < 0)
			return 0;
		memcpy(ref[*n].client, item, (size_t)(eq - item));
		(*n)++;
		v += il + (v[il] == ',');
	}
	return 1;
}

static bool model_allows(const struct ref_rule *ref, size_t n, const char *client, uint32_t addr,
			 uint16_t port)
{
	for (size_t i = 0; i < n; i++) {
		const struct policy_rule *r = &ref[i].r;
		bool in = r->net.len == 0 || (addr ^ r->net.addr) >> (32 - r->net.len) == 0;

		if ((!strcmp(ref[i].client, "*") || !strcmp(ref[i].client, client)) && in &&
		    port >= r->port_lo && port <= r->port_hi)
			return true;
	}
	return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char *tls[] = {"--tls-cert", "c.pem", "--tls-key", "k.pem", "--tls-ca", "ca.pem"};
	static struct ref_rule ref[MAXRULES];
	static bool ready;
	char *argv[2 * MAXLINES + 8], *text, *p, *end, err[512];
	enum config_action action;
	struct config cfg;
	size_t nref = 0;
	bool sure = true, ok = true;
	int argc = 0, ret;

	if (!ready) {
		fuzz_config_clear_env();
		ready = true;
	}
	text = malloc(size + 1);
	FUZZ_CHECK(text != NULL);
	memcpy(text, data, size);
	text[size] = 0;
	argv[argc++] = "ntun-server";
	for (size_t i = 0; i < 6; i++)
		argv[argc++] = tls[i];
	for (p = text, end = text + size; p < end;) {
		char *eol = memchr(p, '\n', (size_t)(end - p));

		if (!eol)
			eol = end;
		*eol = 0;
		if (!strcmp(p, "?")) {
			p = eol + 1;
			break;
		}
		if (argc + 3 <= (int)(sizeof(argv) / sizeof(argv[0]))) {
			argv[argc++] = "--allow";
			argv[argc++] = p;
			if (strlen(p) != (size_t)(eol - p))
				sure = false; /* a NUL cuts the value short: not modelled */
			else if (sure && ok)
				switch (ref_value(p, ref, &nref)) {
				case 0:
					ok = false;
					break;
				case -1:
					sure = false;
					break;
				}
		}
		p = eol + 1;
	}
	argv[argc] = NULL;
	ret = config_load(&cfg, CONFIG_SERVER, argc, argv, &action, err, sizeof(err));
	FUZZ_CHECK(action == CONFIG_RUN);
	if (ret == 0)
		check_loaded(&cfg, CONFIG_SERVER);
	if (sure)
		FUZZ_CHECK(ok ? ret == 0 : ret == -EINVAL);
	if (ret == 0 && sure) {
		FUZZ_CHECK(cfg.n_policy == nref);
		for (size_t i = 0; i < nref; i++) {
			const struct policy_rule *r = &cfg.policy[i];

			FUZZ_CHECK(!strcmp(r->client, ref[i].client));
			FUZZ_CHECK(r->net.addr == ref[i].r.net.addr &&
				   r->net.len == ref[i].r.net.len);
			FUZZ_CHECK(r->port_lo == ref[i].r.port_lo &&
				   r->port_hi == ref[i].r.port_hi);
		}
		/* Queries: a rule's client, "*" itself, or a client no rule names. */
		for (; p + 7 <= end; p += 7) {
			const uint8_t *q = (const uint8_t *)p;
			uint8_t k = q[0] % (nref + 2);
			const char *client = k < nref	 ? ref[k].client
					     : k == nref ? "*"
							 : "spiffe://ntun.local/client/nobody";
			uint32_t addr = (uint32_t)q[1] << 24 | q[2] << 16 | q[3] << 8 | q[4];
			uint16_t port = (uint16_t)(q[5] << 8 | q[6]);

			FUZZ_CHECK(policy_allows(cfg.policy, cfg.n_policy, client, addr, port) ==
				   model_allows(ref, nref, client, addr, port));
		}
	}
	config_release(&cfg);
	free(text);
	return 0;
}
