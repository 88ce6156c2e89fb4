// SPDX-License-Identifier: MIT
/* config: every example in configs/ loads for its daemon, JSON input, precedence file < .env <
 * environment < flags, defaults, and error messages that name file:line, variable or flag. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "config.h"

#define CONFIGS_DIR "../../configs" /* ctest runs us in tests/unit */

#define TLS_YAML "tls:\n  cert_file: c.pem\n  key_file: k.pem\n  ca_file: ca.pem\n"

extern char **environ;

static char tmpdir[64];
static char errbuf[512];
static enum config_action action;

/* Writes name under the test's temporary directory; returns its path (static, rotating). */
static const char *tmpfile_with(const char *name, const char *text)
{
	static char paths[8][128];
	static unsigned next;
	char *path = paths[next++ % 8];
	FILE *f;

	snprintf(path, sizeof(paths[0]), "%s/%s", tmpdir, name);
	f = fopen(path, "w");
	CHECK(f != NULL);
	if (f) {
		fputs(text, f);
		fclose(f);
	}
	return path;
}

/* config_load with a NULL-terminated list of arguments after the program name. */
static int load(struct config *cfg, enum config_daemon d, ...)
{
	char *argv[32] = {"ntun-test"};
	int argc = 1;
	va_list ap;

	va_start(ap, d);
	while (argc < 31 && (argv[argc] = va_arg(ap, char *)))
		argc++;
	va_end(ap);
	return config_load(cfg, d, argc, argv, &action, errbuf, sizeof(errbuf));
}

/* Loads a YAML text as the config file of daemon d; expects an error containing
 * "<path>:<where>" and the given text. */
static void expect_file_error(enum config_daemon d, const char *yaml, const char *where,
			      const char *text, int line)
{
	const char *path = tmpfile_with("bad.yaml", yaml);
	char want[256];
	struct config cfg;
	int ret;

	ret = load(&cfg, d, "--config", path, NULL);
	snprintf(want, sizeof(want), "%s:%s", path, where);
	if (ret != -EINVAL || !strstr(errbuf, want) || !strstr(errbuf, text))
		fprintf(stderr, "  (case at line %d; message: %s)\n", line, errbuf);
	CHECK_INT_EQ(ret, -EINVAL);
	CHECK_STR_CONTAINS(errbuf, want);
	CHECK_STR_CONTAINS(errbuf, text);
	config_release(&cfg);
}

#define FILE_ERROR(d, yaml, where, text) expect_file_error(d, yaml, where, text, __LINE__)

static void clear_ntun_env(void)
{
	char name[128];

	for (size_t i = 0; environ[i];) {
		if (!strncmp(environ[i], "NTUN_", 5)) {
			snprintf(name, sizeof(name), "%.*s", (int)strcspn(environ[i], "="),
				 environ[i]);
			unsetenv(name);
			i = 0;
		} else {
			i++;
		}
	}
}

static void test_examples(void)
{
	static const struct {
		const char *prefix;
		enum config_daemon d;
	} kinds[] = {
		{"client.", CONFIG_CLIENT}, {"server.", CONFIG_SERVER}, {"proxy.", CONFIG_PROXY}};
	char path[512];
	struct dirent *de;
	struct config cfg;
	int found = 0, ret;
	DIR *dir = opendir(CONFIGS_DIR);

	CHECK(dir != NULL);
	while (dir && (de = readdir(dir))) {
		size_t n = strlen(de->d_name);

		if (!(n > 5 && !strcmp(de->d_name + n - 5, ".yaml")) &&
		    !(n > 4 && !strcmp(de->d_name + n - 4, ".yml")) &&
		    !(n > 5 && !strcmp(de->d_name + n - 5, ".json")))
			continue;
		snprintf(path, sizeof(path), "%s/%s", CONFIGS_DIR, de->d_name);
		for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
			if (strncmp(de->d_name, kinds[k].prefix, strlen(kinds[k].prefix)))
				continue;
			found++;
			ret = load(&cfg, kinds[k].d, "--config", path, NULL);
			if (ret)
				fprintf(stderr, "  %s: %s\n", path, errbuf);
			CHECK_INT_EQ(ret, 0);
			CHECK_STR_EQ(cfg.config_file, path);
			config_release(&cfg);
		}
	}
	if (dir)
		closedir(dir);
	CHECK(found >= 4);

	CHECK_INT_EQ(load(&cfg, CONFIG_CLIENT, "--config", CONFIGS_DIR "/client.yaml", NULL), 0);
	CHECK_STR_EQ(cfg.server_addr[0], "relay.example.net:8443");
	CHECK_INT_EQ(cfg.n_target_cidr, 2);
	CHECK_INT_EQ(cfg.listen_port, 15001);
	CHECK_STR_EQ(cfg.tls.cert_file, "certs/client/cert.pem");
	CHECK_STR_EQ(cfg.tls.server_name, "relay.example.net");
	config_release(&cfg);

	CHECK_INT_EQ(load(&cfg, CONFIG_PROXY, "--config", CONFIGS_DIR "/proxy.yaml", NULL), 0);
	CHECK_STR_EQ(cfg.proxy_id, "site-1");
	CHECK_INT_EQ(cfg.n_managed_cidr, 2);
	CHECK_INT_EQ(cfg.n_virtual_cidr, 2);
	CHECK_INT_EQ(cfg.capacity, 1024);
	CHECK_INT_EQ(cfg.connect_timeout_ms, 3000);
	CHECK_INT_EQ(cfg.log.format, LOG_FMT_TEXT);
	config_release(&cfg);
}

/* The JSON example says the same as the YAML one (bar the listen address). */
static void test_json(void)
{
	struct config y, j;
	char a[20], b[20];

	CHECK_INT_EQ(load(&y, CONFIG_SERVER, "--config", CONFIGS_DIR "/server.yaml", NULL), 0);
	CHECK_INT_EQ(load(&j, CONFIG_SERVER, "--config", CONFIGS_DIR "/server.json", NULL), 0);
	CHECK_STR_EQ(j.listen_addr, "0.0.0.0:8443"); /* ":8443": every address */
	CHECK_INT_EQ(j.n_routes, 2);
	CHECK_INT_EQ(y.n_routes, j.n_routes);
	for (size_t i = 0; i < y.n_routes && i < j.n_routes; i++) {
		CHECK_STR_EQ(cidr_format(&y.routes[i].virt, a, sizeof(a)),
			     cidr_format(&j.routes[i].virt, b, sizeof(b)));
		CHECK_STR_EQ(cidr_format(&y.routes[i].real, a, sizeof(a)),
			     cidr_format(&j.routes[i].real, b, sizeof(b)));
		CHECK_STR_EQ(y.routes[i].proxy_id, j.routes[i].proxy_id);
	}
	CHECK_STR_EQ(cidr_format(&j.routes[0].virt, a, sizeof(a)), "100.64.3.0/24");
	CHECK_STR_EQ(cidr_format(&j.routes[0].real, a, sizeof(a)), "10.3.0.0/24");
	CHECK_STR_EQ(cidr_format(&j.routes[1].virt, a, sizeof(a)), "172.20.0.0/16");
	CHECK_STR_EQ(cidr_format(&j.routes[1].real, a, sizeof(a)), "172.20.0.0/16");
	CHECK_INT_EQ(j.n_grants, 5);
	CHECK_INT_EQ(y.n_grants, j.n_grants);
	for (size_t i = 0; i < y.n_grants && i < j.n_grants; i++) {
		CHECK_STR_EQ(cidr_format(&y.grants[i].prefix, a, sizeof(a)),
			     cidr_format(&j.grants[i].prefix, b, sizeof(b)));
		CHECK_STR_EQ(y.grants[i].proxy_id, j.grants[i].proxy_id);
	}
	CHECK_INT_EQ(j.n_policy, 4);
	CHECK_INT_EQ(y.n_policy, j.n_policy);
	for (size_t i = 0; i < y.n_policy && i < j.n_policy; i++) {
		CHECK_STR_EQ(y.policy[i].client, j.policy[i].client);
		CHECK_STR_EQ(cidr_format(&y.policy[i].net, a, sizeof(a)),
			     cidr_format(&j.policy[i].net, b, sizeof(b)));
		CHECK_INT_EQ(y.policy[i].port_lo, j.policy[i].port_lo);
		CHECK_INT_EQ(y.policy[i].port_hi, j.policy[i].port_hi);
	}
	CHECK_STR_EQ(y.metrics_addr, j.metrics_addr);
	CHECK_INT_EQ(y.idle_timeout_ms, j.idle_timeout_ms);
	CHECK_INT_EQ(j.drain_timeout_ms, 15000);
	CHECK_STR_EQ(j.tls.ca_file, "certs/ca/cert.pem");
	config_release(&y);
	config_release(&j);

	/* JSON errors name lines too; a JSON syntax error is a YAML one. */
	FILE_ERROR(CONFIG_CLIENT, "{\n  \"server_addr\": \"h:1\",\n  \"listen_port\": 0\n}\n",
		   "3: key 'listen_port'", "port must be 1..65535 (got '0')");
	FILE_ERROR(CONFIG_CLIENT, "{\n  \"target_cidr\": [\"10.0.0.0/8\",\n    \"10.1.2.3/16\"]\n}",
		   "3: key 'target_cidr'", "host bits set");
	FILE_ERROR(CONFIG_CLIENT, "{\n  \"server_addr\": \"h:1\"\n  \"listen_port\": 1\n}\n", "",
		   "YAML syntax error");
}

static void test_defaults(void)
{
	const char *f =
		tmpfile_with("min.yaml", "server_addr: h:1\ntarget_cidr: 10.0.0.0/8\n" TLS_YAML);
	struct config cfg;

	CHECK_INT_EQ(load(&cfg, CONFIG_CLIENT, "--config", f, NULL), 0);
	CHECK_INT_EQ(action, CONFIG_RUN);
	CHECK_INT_EQ(cfg.daemon, CONFIG_CLIENT);
	CHECK_INT_EQ(cfg.n_target_cidr, 1); /* a single string is a one-item list */
	CHECK_INT_EQ(cfg.listen_port, 15001);
	CHECK_INT_EQ(cfg.intercept, CONFIG_INTERCEPT_AUTO);
	CHECK_STR_EQ(cfg.instance, "default");
	CHECK_STR_EQ(cfg.cgroup, NULL);
	CHECK_STR_EQ(cfg.client_id, NULL);
	CHECK_STR_EQ(cfg.metrics_addr, NULL);
	CHECK_STR_EQ(cfg.admin, NULL);
	CHECK_INT_EQ(cfg.log.level, LOG_LVL_INFO);
	CHECK_INT_EQ(cfg.log.format, LOG_FMT_JSON);
	CHECK_STR_EQ(cfg.log.output, "stderr");
	CHECK_INT_EQ(cfg.connect_timeout_ms, 5000);
	CHECK_INT_EQ(cfg.handshake_timeout_ms, 10000);
	CHECK_INT_EQ(cfg.idle_timeout_ms, 0);
	CHECK_INT_EQ(cfg.ping_interval_ms, 300000);
	CHECK_INT_EQ(cfg.ping_timeout_ms, 20000);
	CHECK(!cfg.ping_without_calls);
	CHECK_INT_EQ(cfg.ping_min_ms, 1000);
	CHECK_INT_EQ(cfg.drain_timeout_ms, 5000);
	CHECK(!cfg.gzip);
	CHECK(!cfg.tls.insecure);
	config_release(&cfg);

	f = tmpfile_with("srv.yaml", TLS_YAML);
	CHECK_INT_EQ(load(&cfg, CONFIG_SERVER, "--config", f, NULL), 0);
	CHECK_STR_EQ(cfg.listen_addr, "0.0.0.0:8443");
	CHECK_INT_EQ(cfg.n_routes, 0);
	/* limits a peer cannot exceed; early resets only where clients connect */
	CHECK_INT_EQ(cfg.max_streams, 131072);
	CHECK_INT_EQ(cfg.max_held_bytes, 16u << 20);
	CHECK_INT_EQ(cfg.conn_window, 512 * 1024);
	CHECK_INT_EQ(cfg.max_unforwarded, 1u << 30);
	CHECK_INT_EQ(cfg.early_resets, 200);
	CHECK_INT_EQ(cfg.early_reset_rate, 100);
	CHECK_INT_EQ(cfg.max_handshakes, 1024);
	CHECK_INT_EQ(cfg.max_handshakes_per_source, 64);
	config_release(&cfg);

	f = tmpfile_with("prx.yaml",
			 "server_addr: h:1\nproxy_id: p\nmanaged_cidr: 10.0.0.0/8\n" TLS_YAML);
	CHECK_INT_EQ(load(&cfg, CONFIG_PROXY, "--config", f, NULL), 0);
	CHECK_INT_EQ(cfg.capacity, 0);
	CHECK_INT_EQ(cfg.n_virtual_cidr, 0);
	CHECK_INT_EQ(cfg.max_streams, 131072);
	CHECK_INT_EQ(cfg.early_resets, 0);
	config_release(&cfg);
	CHECK_INT_EQ(load(&cfg, CONFIG_PROXY, "--config", f, "--max-early-resets", "5", NULL),
		     -EINVAL);

	/* An empty file sets nothing; null resets to the default. */
	f = tmpfile_with("empty.yaml", "# nothing\n");
	CHECK_INT_EQ(load(&cfg, CONFIG_SERVER, "--config", f, "--tls-cert", "c", "--tls-key", "k",
			  "--tls-ca", "a", NULL),
		     0);
	config_release(&cfg);
	f = tmpfile_with("null.yaml", "server_addr: h:1\ntarget_cidr: 10.0.0.0/8\nlisten_port: ~\n"
				      "client_id:\nlog: {level: null}\n" TLS_YAML);
	CHECK_INT_EQ(load(&cfg, CONFIG_CLIENT, "--config", f, NULL), 0);
	CHECK_INT_EQ(cfg.listen_port, 15001);
	CHECK_STR_EQ(cfg.client_id, NULL);
	CHECK_INT_EQ(cfg.log.level, LOG_LVL_INFO);
	config_release(&cfg);
}

static void test_values(void)
{
	const char *f;
	struct config cfg;
	char a[20];

	f = tmpfile_with("v.yaml",
			 "server_addr: '[2001:db8::1]:443'\n"
			 "target_cidr: [0.0.0.0/0, 1.2.3.4, 1.2.3.4/32]\n"
			 "intercept: iptables\n"
			 "cgroup: /sys/fs/cgroup/x\n"
			 "client_id: c.1_x-y\n"
			 "metrics_addr: 127.0.0.1:9101\n"
			 "timeouts:\n  connect_ms: 250ms\n  handshake_ms: 2s\n  idle_ms: 2m\n"
			 "  ping_interval_ms: 1h\n  ping_timeout_ms: \"1500\"\n  drain_ms: 0\n"
			 "grpc: {compression: gzip}\n"
			 "log: {level: debug, format: text, output: /var/log/ntun client.log}\n"
			 "tls:\n  cert_file: c.pem\n  key_file: k.pem\n  ca_file: ca.pem\n"
			 "  insecure: yes\n  server_name: relay\n  trust_domain: ntun.test\n");
	CHECK_INT_EQ(load(&cfg, CONFIG_CLIENT, "--config", f, NULL), 0);
	CHECK_STR_EQ(cfg.server_addr[0], "[2001:db8::1]:443");
	CHECK_INT_EQ(cfg.n_target_cidr, 3);
	CHECK_STR_EQ(cidr_format(&cfg.target_cidr[0], a, sizeof(a)), "0.0.0.0/0");
	CHECK_STR_EQ(cidr_format(&cfg.target_cidr[1], a, sizeof(a)), "1.2.3.4/32");
	CHECK_INT_EQ(cfg.intercept, CONFIG_INTERCEPT_IPTABLES);
	CHECK_STR_EQ(cfg.cgroup, "/sys/fs/cgroup/x");
	CHECK_STR_EQ(cfg.client_id, "c.1_x-y");
	CHECK_INT_EQ(cfg.connect_timeout_ms, 250);
	CHECK_INT_EQ(cfg.handshake_timeout_ms, 2000);
	CHECK_INT_EQ(cfg.idle_timeout_ms, 120000);
	CHECK_INT_EQ(cfg.ping_interval_ms, 3600000);
	CHECK_INT_EQ(cfg.ping_timeout_ms, 1500);
	CHECK_INT_EQ(cfg.drain_timeout_ms, 0);
	CHECK(cfg.gzip);
	CHECK_INT_EQ(cfg.log.level, LOG_LVL_DEBUG);
	CHECK_INT_EQ(cfg.log.format, LOG_FMT_TEXT);
	CHECK_STR_EQ(cfg.log.output, "/var/log/ntun client.log");
	CHECK(cfg.tls.insecure);
	CHECK_STR_EQ(cfg.tls.server_name, "relay");
	CHECK_STR_EQ(cfg.tls.trust_domain, "ntun.test");
	config_release(&cfg);

	/* Server routes from the file, a flag and the environment. */
	f = tmpfile_with(
		"r.yaml", TLS_YAML
		"routes:\n"
		"  - {virtual_cidr: 100.64.1.0/24, real_cidr: 192.168.1.0/24, proxy_id: a}\n"
		"  - {cidr: 10.9.0.0/16, proxy_id: b}\n");
	CHECK_INT_EQ(load(&cfg, CONFIG_SERVER, "--config", f, NULL), 0);
	CHECK_INT_EQ(cfg.n_routes, 2);
	CHECK_STR_EQ(cidr_format(&cfg.routes[0].real, a, sizeof(a)), "192.168.1.0/24");
	CHECK_STR_EQ(cfg.routes[1].proxy_id, "b");
	CHECK_STR_EQ(cidr_format(&cfg.routes[1].virt, a, sizeof(a)), "10.9.0.0/16");
	config_release(&cfg);

	CHECK_INT_EQ(load(&cfg, CONFIG_SERVER, "--config", f, "--route",
			  "100.64.7.0/24=site-7:10.7.0.0/24", "--route", "172.16.0.0/12=lab", NULL),
		     0);
	CHECK_INT_EQ(cfg.n_routes, 2); /* flags replace the file's list */
	CHECK_STR_EQ(cidr_format(&cfg.routes[0].virt, a, sizeof(a)), "100.64.7.0/24");
	CHECK_STR_EQ(cidr_format(&cfg.routes[0].real, a, sizeof(a)), "10.7.0.0/24");
	CHECK_STR_EQ(cfg.routes[0].proxy_id, "site-7");
	CHECK_STR_EQ(cidr_format(&cfg.routes[1].real, a, sizeof(a)), "172.16.0.0/12");
	CHECK_STR_EQ(cfg.routes[1].proxy_id, "lab");
	config_release(&cfg);

	setenv("NTUN_ROUTES", "100.64.1.0/24=a:192.168.1.0/24, 100.64.2.0/24=b:192.168.1.0/24", 1);
	CHECK_INT_EQ(load(&cfg, CONFIG_SERVER, "--config", f, NULL), 0);
	CHECK_INT_EQ(cfg.n_routes, 2);
	CHECK_STR_EQ(cfg.routes[1].proxy_id, "b");
	CHECK_STR_EQ(cidr_format(&cfg.routes[1].real, a, sizeof(a)), "192.168.1.0/24");
	config_release(&cfg);
	unsetenv("NTUN_ROUTES");
}

/* The proxies section: grants from the file (flattened to one per prefix), flags and the
 * environment; absent means none. */
static void test_grants(void)
{
	struct config cfg;
	const char *f;
	char a[20];

	f = tmpfile_with("g.yaml", TLS_YAML "proxies:\n"
					    "  - id: proxy-1\n"
					    "    prefixes: [\"100.64.1.0/24\"]\n"
					    "  - id: proxy-2\n"
					    "    prefixes:\n"
					    "      - 100.64.2.0/24\n"
					    "      - 100.64.1.0/24\n"
					    "  - {id: \"*\", prefixes: 10.0.0.0/8}\n");
	CHECK_INT_EQ(load(&cfg, CONFIG_SERVER, "--config", f, NULL), 0);
	CHECK_INT_EQ(cfg.n_grants, 4);
	if (cfg.n_grants == 4) {
		CHECK_STR_EQ(cfg.grants[0].proxy_id, "proxy-1");
		CHECK_STR_EQ(cidr_format(&cfg.grants[0].prefix, a, sizeof(a)), "100.64.1.0/24");
		CHECK_STR_EQ(cfg.grants[1].proxy_id, "proxy-2");
		CHECK_STR_EQ(cidr_format(&cfg.grants[1].prefix, a, sizeof(a)), "100.64.2.0/24");
		CHECK_STR_EQ(cfg.grants[2].proxy_id, "proxy-2");
		CHECK_STR_EQ(cidr_format(&cfg.grants[2].prefix, a, sizeof(a)), "100.64.1.0/24");
		CHECK_STR_EQ(cfg.grants[3].proxy_id, "*");
		CHECK_STR_EQ(cidr_format(&cfg.grants[3].prefix, a, sizeof(a)), "10.0.0.0/8");
	}
	config_release(&cfg);
	CHECK(cfg.grants == NULL && cfg.n_grants == 0);

	/* Flags replace the file's list; repeated flags append. */
	CHECK_INT_EQ(load(&cfg, CONFIG_SERVER, "--config", f, "--grant", "site-7=100.64.7.0/24",
			  "--grant", "*=172.16.0.0/12,site-7=100.64.8.0/24", NULL),
		     0);
	CHECK_INT_EQ(cfg.n_grants, 3);
	CHECK_STR_EQ(cfg.grants[0].proxy_id, "site-7");
	CHECK_STR_EQ(cfg.grants[1].proxy_id, "*");
	CHECK_STR_EQ(cidr_format(&cfg.grants[2].prefix, a, sizeof(a)), "100.64.8.0/24");
	config_release(&cfg);

	setenv("NTUN_PROXIES", "a=100.64.1.0/24, b=100.64.1.0/24", 1);
	CHECK_INT_EQ(load(&cfg, CONFIG_SERVER, "--config", f, NULL), 0);
	CHECK_INT_EQ(cfg.n_grants, 2);
	CHECK_STR_EQ(cfg.grants[1].proxy_id, "b");
	config_release(&cfg);
	/* An empty value is the default: no section. */
	setenv("NTUN_PROXIES", "", 1);
	CHECK_INT_EQ(load(&cfg, CONFIG_SERVER, "--config", f, NULL), 0);
	CHECK_INT_EQ(cfg.n_grants, 0);
	config_release(&cfg);
	unsetenv("NTUN_PROXIES");
	f = tmpfile_with("g.yaml", TLS_YAML "proxies: []\n");
	CHECK_INT_EQ(load(&cfg, CONFIG_SERVER, "--config", f, NULL), 0);
	CHECK_INT_EQ(cfg.n_grants, 0);
	config_release(&cfg);

	/* Errors name the file, the line and the key of the bad part. */
	FILE_ERROR(CONFIG_SERVER, "proxies:\n  - prefixes: [10.0.0.0/8]\n", "2: key 'proxies[0]'",
		   "missing id");
	FILE_ERROR(CONFIG_SERVER, "proxies:\n  - id: a\n", "2: key 'proxies[0]'",
		   "missing prefixes");
	FILE_ERROR(CONFIG_SERVER, "proxies:\n  - id: a\n    prefixes: []\n",
		   "3: key 'proxies[0].prefixes'", "empty list");
	FILE_ERROR(CONFIG_SERVER,
		   "proxies:\n  - id: a\n    prefixes: [10.0.0.0/8]\n  - id: b\n"
		   "    prefixes:\n      - 10.0.0.0/8\n      - 100.64.1.1/24\n",
		   "7: key 'proxies[1].prefixes'",
		   "host bits set in prefix; did you mean '100.64.1.0/24'? (got '100.64.1.1/24')");
	FILE_ERROR(CONFIG_SERVER, "proxies:\n  - {id: a, prefixes: [10.0.0.0/33]}\n",
		   "2: key 'proxies[0].prefixes'", "expected an IPv4 prefix");
	FILE_ERROR(CONFIG_SERVER, "proxies:\n  - id: a/b\n    prefixes: 10.0.0.0/8\n",
		   "2: key 'proxies[0].id'", "must be '*' or 1..63 of letters");
	FILE_ERROR(CONFIG_SERVER, "proxies:\n  - id: a\n    prefix: 10.0.0.0/8\n",
		   "3: key 'proxies[0].prefix'", "unknown key");
	FILE_ERROR(CONFIG_SERVER, "proxies:\n  - id: a\n    id: b\n", "3: key 'proxies[0].id'",
		   "duplicate key (first at line 2)");
	FILE_ERROR(CONFIG_SERVER, "proxies:\n  - id: [a]\n", "2: key 'proxies[0].id'",
		   "wrong type: expected a scalar, got a list");
	FILE_ERROR(CONFIG_SERVER, "proxies:\n  - id: a\n    prefixes: {x: 1}\n",
		   "3: key 'proxies[0].prefixes'", "wrong type");
	FILE_ERROR(CONFIG_SERVER, "proxies:\n  - id: a\n    prefixes: [[10.0.0.0/8]]\n",
		   "3: key 'proxies[0].prefixes'", "wrong type: expected a scalar, got a list");
	FILE_ERROR(CONFIG_SERVER, "proxies: a=10.0.0.0/8\n", "1: key 'proxies'",
		   "wrong type: expected a list of proxy mappings, got a scalar");
	FILE_ERROR(CONFIG_SERVER, "proxies: [a=10.0.0.0/8]\n", "1: key 'proxies[0]'",
		   "wrong type: expected a mapping with id and prefixes");
	FILE_ERROR(CONFIG_SERVER, "\n\nproxies:\n  x: 1\n", "3: key 'proxies'", "wrong type");
	FILE_ERROR(CONFIG_PROXY, "proxies: []\n", "1: key 'proxies'", "not a proxy setting");
	FILE_ERROR(CONFIG_CLIENT, "proxies: []\n", "1: key 'proxies'", "not a client setting");
	FILE_ERROR(CONFIG_SERVER,
		   "{\n  \"proxies\": [\n    {\"id\": \"a\", \"prefixes\": [\"10.0.0.1/8\"]}\n"
		   "  ]\n}\n",
		   "3: key 'proxies[0].prefixes'", "host bits set");

	CHECK_INT_EQ(load(&cfg, CONFIG_SERVER, "--grant", "100.64.0.0/16", NULL), -EINVAL);
	CHECK_STR_CONTAINS(errbuf, "--grant: expected ID=PREFIX");
	CHECK_INT_EQ(load(&cfg, CONFIG_SERVER, "--grant", "a b=100.64.0.0/16", NULL), -EINVAL);
	CHECK_STR_CONTAINS(errbuf, "--grant: proxy id must be '*' or");
	CHECK_INT_EQ(load(&cfg, CONFIG_SERVER, "--grant", "=100.64.0.0/16", NULL), -EINVAL);
	CHECK_STR_CONTAINS(errbuf, "--grant: proxy id must be");
	CHECK_INT_EQ(load(&cfg, CONFIG_SERVER, "--grant", "a=100.64.0.1/16", NULL), -EINVAL);
	CHECK_STR_CONTAINS(errbuf, "--grant: host bits set");
	setenv("NTUN_PROXIES", "a=10.0.0.0/8,,b=10.0.0.0/8", 1);
	CHECK_INT_EQ(load(&cfg, CONFIG_SERVER, NULL), -EINVAL);
	CHECK_STR_CONTAINS(errbuf, "NTUN_PROXIES: empty item");
	unsetenv("NTUN_PROXIES");
	CHECK_INT_EQ(load(&cfg, CONFIG_PROXY, "--grant", "a=10.0.0.0/8", NULL), -EINVAL);
	CHECK_STR_CONTAINS(errbuf, "--grant: not a proxy setting");
}

static void test_precedence(void)
{
	const char *file, *env1, *env2;
	struct config cfg;
	char a[20];

	file = tmpfile_with("p.yaml", "server_addr: file:1\n"
				      "target_cidr: [10.0.0.0/8, 10.1.0.0/16]\n"
				      "listen_port: 1000\n"
				      "client_id: from-file\n"
				      "log: {level: debug}\n" TLS_YAML);
	env1 = tmpfile_with("a.env", "# first .env\n"
				     "NTUN_LISTEN_PORT=2000\n"
				     "export NTUN_CLIENT_ID=\"from-env-file\"  # quoted\n"
				     "NTUN_TARGET_CIDR=172.16.0.0/12\n"
				     "NTUN_LOG_OUTPUT='/tmp/with space.log'\n"
				     "\n"
				     "NTUN_INSTANCE = spaced # bare value, trailing comment\n");
	env2 = tmpfile_with("b.env", "NTUN_LISTEN_PORT=2500\n");

	CHECK_INT_EQ(load(&cfg, CONFIG_CLIENT, "--config", file, NULL), 0);
	CHECK_INT_EQ(cfg.listen_port, 1000);
	CHECK_INT_EQ(cfg.n_target_cidr, 2);
	config_release(&cfg);

	/* .env beats the file; the file's other values stay. */
	CHECK_INT_EQ(load(&cfg, CONFIG_CLIENT, "--config", file, "--env-file", env1, NULL), 0);
	CHECK_INT_EQ(cfg.listen_port, 2000);
	CHECK_STR_EQ(cfg.client_id, "from-env-file");
	CHECK_INT_EQ(cfg.n_target_cidr, 1); /* the list is replaced, not merged */
	CHECK_STR_EQ(cidr_format(&cfg.target_cidr[0], a, sizeof(a)), "172.16.0.0/12");
	CHECK_STR_EQ(cfg.log.output, "/tmp/with space.log");
	CHECK_STR_EQ(cfg.instance, "spaced");
	CHECK_INT_EQ(cfg.log.level, LOG_LVL_DEBUG);
	CHECK_STR_EQ(cfg.server_addr[0], "file:1");
	config_release(&cfg);

	/* A later .env file beats an earlier one. */
	CHECK_INT_EQ(load(&cfg, CONFIG_CLIENT, "--config", file, "--env-file", env1, "--env-file",
			  env2, NULL),
		     0);
	CHECK_INT_EQ(cfg.listen_port, 2500);
	config_release(&cfg);

	/* The environment beats .env files. */
	setenv("NTUN_LISTEN_PORT", "3000", 1);
	setenv("NTUN_TARGET_CIDR", "192.168.0.0/16, 192.168.1.0/24", 1);
	setenv("NTUN_SERVER_ADDR", "env:3", 1);
	CHECK_INT_EQ(load(&cfg, CONFIG_CLIENT, "--config", file, "--env-file", env1, NULL), 0);
	CHECK_INT_EQ(cfg.listen_port, 3000);
	CHECK_INT_EQ(cfg.n_target_cidr, 2);
	CHECK_STR_EQ(cidr_format(&cfg.target_cidr[1], a, sizeof(a)), "192.168.1.0/24");
	CHECK_STR_EQ(cfg.server_addr[0], "env:3");
	CHECK_STR_EQ(cfg.client_id, "from-env-file");
	config_release(&cfg);

	/* Flags beat everything; repeated list flags append to each other. */
	CHECK_INT_EQ(load(&cfg, CONFIG_CLIENT, "--config", file, "--env-file", env1,
			  "--listen-port", "4000", "--cidr", "1.0.0.0/8", "--cidr",
			  "2.0.0.0/8,3.0.0.0/8", "--server", "flag:4", NULL),
		     0);
	CHECK_INT_EQ(cfg.listen_port, 4000);
	CHECK_INT_EQ(cfg.n_target_cidr, 3);
	CHECK_STR_EQ(cidr_format(&cfg.target_cidr[0], a, sizeof(a)), "1.0.0.0/8");
	CHECK_STR_EQ(cidr_format(&cfg.target_cidr[2], a, sizeof(a)), "3.0.0.0/8");
	CHECK_STR_EQ(cfg.server_addr[0], "flag:4");
	CHECK_STR_EQ(cfg.client_id, "from-env-file");
	config_release(&cfg);

	/* A later flag of a scalar wins; an empty variable resets to the default. */
	setenv("NTUN_LISTEN_PORT", "", 1);
	CHECK_INT_EQ(load(&cfg, CONFIG_CLIENT, "--config", file, "--log-level", "warn",
			  "--log-level", "error", NULL),
		     0);
	CHECK_INT_EQ(cfg.listen_port, 15001);
	CHECK_INT_EQ(cfg.log.level, LOG_LVL_ERROR);
	config_release(&cfg);
	unsetenv("NTUN_LISTEN_PORT");
	unsetenv("NTUN_TARGET_CIDR");
	unsetenv("NTUN_SERVER_ADDR");

	/* NTUN_CONFIG names the file unless --config does. */
	setenv("NTUN_CONFIG", file, 1);
	CHECK_INT_EQ(load(&cfg, CONFIG_CLIENT, NULL), 0);
	CHECK_STR_EQ(cfg.config_file, file);
	CHECK_INT_EQ(cfg.listen_port, 1000);
	config_release(&cfg);
	CHECK_INT_EQ(load(&cfg, CONFIG_CLIENT, "--config", env2, NULL), -EINVAL); /* not YAML */
	CHECK_STR_CONTAINS(errbuf, env2);
	setenv("NTUN_CONFIG", "/nonexistent/ntun.yaml", 1);
	CHECK_INT_EQ(load(&cfg, CONFIG_CLIENT, NULL), -EINVAL);
	CHECK_STR_CONTAINS(errbuf, "NTUN_CONFIG: cannot open '/nonexistent/ntun.yaml'");
	unsetenv("NTUN_CONFIG");

	/* A boolean flag, a duration flag, the compression flag. */
	CHECK_INT_EQ(load(&cfg, CONFIG_CLIENT, "--config", file, "--tls-insecure",
			  "--connect-timeout", "1s", "--idle-timeout", "0", "--compression", "gzip",
			  NULL),
		     0);
	CHECK(cfg.tls.insecure);
	CHECK_INT_EQ(cfg.connect_timeout_ms, 1000);
	CHECK(cfg.gzip);
	config_release(&cfg);
	setenv("NTUN_TLS_INSECURE", "true", 1);
	CHECK_INT_EQ(load(&cfg, CONFIG_CLIENT, "--config", file, "--tls-insecure=false", NULL), 0);
	CHECK(!cfg.tls.insecure);
	config_release(&cfg);
	unsetenv("NTUN_TLS_INSECURE");
}

static void test_file_errors(void)
{
	FILE_ERROR(CONFIG_CLIENT, "server_addr: h:1\n\nbogus: 1\n", "3: key 'bogus'",
		   "unknown key");
	FILE_ERROR(CONFIG_CLIENT, "tls:\n  cert_file: a\n  cert: b\n", "3: key 'tls.cert'",
		   "unknown key");
	FILE_ERROR(CONFIG_CLIENT, "cert_file: a\n", "1: key 'cert_file'",
		   "did you mean 'tls.cert_file'?");
	FILE_ERROR(
		CONFIG_CLIENT, "target_cidr:\n  - 10.0.0.0/8\n  - 192.168.1.1/24\n",
		"3: key 'target_cidr'",
		"host bits set in prefix; did you mean '192.168.1.0/24'? (got '192.168.1.1/24')");
	FILE_ERROR(CONFIG_CLIENT, "target_cidr: 10.0.0.0/33\n", "1: key 'target_cidr'",
		   "expected an IPv4 prefix");
	FILE_ERROR(CONFIG_CLIENT, "# c\nlisten_port: 0\n", "2: key 'listen_port'",
		   "port must be 1..65535 (got '0')");
	FILE_ERROR(CONFIG_CLIENT, "listen_port: 65536\n", "1: key 'listen_port'",
		   "port must be 1..65535 (got '65536')");
	FILE_ERROR(CONFIG_CLIENT, "listen_port: -1\n", "1: key 'listen_port'", "(got '-1')");
	FILE_ERROR(CONFIG_CLIENT, "server_addr: relay\n", "1: key 'server_addr'",
		   "missing ':PORT' after the host, as in relay.example.net:8443 (got 'relay')");
	FILE_ERROR(CONFIG_CLIENT, "server_addr: relay:0\n", "1: key 'server_addr'",
		   "must be a port number 1..65535 (got 'relay:0')");
	FILE_ERROR(CONFIG_CLIENT, "server_addr: ::1:80\n", "1: key 'server_addr'", "brackets");
	FILE_ERROR(CONFIG_CLIENT, "listen_port:\n  - 1\n", "1: key 'listen_port'",
		   "wrong type: expected a port number, got a list");
	FILE_ERROR(CONFIG_CLIENT, "server_addr: {host: a}\n", "1: key 'server_addr'",
		   "wrong type: expected HOST:PORT or a list of them, got a mapping");
	FILE_ERROR(CONFIG_CLIENT, "server_addr: a:1, b\n", "1: key 'server_addr'",
		   "missing ':PORT' after the host, as in relay.example.net:8443 (got 'b')");
	FILE_ERROR(CONFIG_CLIENT, "server_addr:\n  - a:1\n  - b:http\n", "3: key 'server_addr'",
		   "the part after the last ':' must be a port number 1..65535 (got 'b:http')");
	FILE_ERROR(CONFIG_CLIENT, "tls: certs\n", "1: key 'tls'",
		   "wrong type: expected a mapping, got a scalar");
	FILE_ERROR(CONFIG_CLIENT, "target_cidr: [[10.0.0.0/8]]\n", "1: key 'target_cidr'",
		   "wrong type: expected a scalar, got a list");
	FILE_ERROR(CONFIG_CLIENT, "intercept: ebpf\n", "1: key 'intercept'",
		   "expected auto, bpf or iptables (got 'ebpf')");
	FILE_ERROR(CONFIG_CLIENT, "log:\n  level: loud\n", "2: key 'log.level'", "(got 'loud')");
	FILE_ERROR(CONFIG_CLIENT, "grpc: {compression: zstd}\n", "1: key 'grpc.compression'",
		   "expected identity or gzip");
	FILE_ERROR(CONFIG_CLIENT, "timeouts:\n  connect_ms: 5 parsecs\n",
		   "2: key 'timeouts.connect_ms'", "bad duration");
	FILE_ERROR(CONFIG_CLIENT, "timeouts:\n  connect_ms: 0\n", "2: key 'timeouts.connect_ms'",
		   "must be greater than 0");
	FILE_ERROR(CONFIG_CLIENT, "timeouts:\n  idle_ms: 5000000h\n", "2: key 'timeouts.idle_ms'",
		   "bad duration");
	FILE_ERROR(CONFIG_CLIENT, "tls:\n  insecure: maybe\n", "2: key 'tls.insecure'",
		   "expected true or false");
	FILE_ERROR(CONFIG_CLIENT, "client_id: a/b\n", "1: key 'client_id'", "(got 'a/b')");
	FILE_ERROR(CONFIG_CLIENT, "instance: ..\n", "1: key 'instance'", "(got '..')");
	FILE_ERROR(CONFIG_CLIENT, "cgroup: relative/dir\n", "1: key 'cgroup'",
		   "must be an absolute path");
	FILE_ERROR(CONFIG_CLIENT, "client_id: a\nclient_id: b\n", "2: key 'client_id'",
		   "duplicate key (first at line 1)");
	FILE_ERROR(CONFIG_CLIENT, "client_id: \"a\\0b\"\n", "1: key 'client_id'", "NUL byte");

	/* Keys of other daemons. */
	FILE_ERROR(CONFIG_CLIENT, "server_addr: h:1\nmanaged_cidr: 10.0.0.0/8\n",
		   "2: key 'managed_cidr'", "not a client setting (only for ntun-proxy)");
	FILE_ERROR(CONFIG_SERVER, "server_addr: h:1\n", "1: key 'server_addr'",
		   "not a server setting (only for ntun-client/proxy)");
	FILE_ERROR(CONFIG_PROXY, "routes: []\n", "1: key 'routes'", "not a proxy setting");

	/* Routes. */
	FILE_ERROR(CONFIG_SERVER, "routes:\n  - cidr: 10.0.0.0/8\n", "2: key 'routes[0]'",
		   "missing proxy_id");
	FILE_ERROR(CONFIG_SERVER, "routes:\n  - proxy_id: a\n    virtual_cidr: 10.0.0.0/8\n",
		   "2: key 'routes[0]'", "missing real_cidr");
	FILE_ERROR(CONFIG_SERVER,
		   "routes:\n  - {cidr: 10.0.0.0/8, proxy_id: a}\n  - {cidr: 10.0.0.0/8, "
		   "real_cidr: 10.0.0.0/8, proxy_id: a}\n",
		   "3: key 'routes[1].real_cidr'", "not both");
	FILE_ERROR(CONFIG_SERVER,
		   "routes:\n  - virtual_cidr: 100.64.0.0/16\n    real_cidr: 10.0.0.0/8\n"
		   "    proxy_id: a\n",
		   "2: key 'routes[0].virtual_cidr'", "prefix length differs");
	FILE_ERROR(CONFIG_SERVER, "routes:\n  - {cidr: 10.0.0.1/8, proxy_id: a}\n",
		   "2: key 'routes[0].real_cidr'", "host bits set");
	FILE_ERROR(CONFIG_SERVER, "routes:\n  - {cidr: 10.0.0.0/8, proxy: a}\n",
		   "2: key 'routes[0].proxy'", "unknown key");
	FILE_ERROR(CONFIG_SERVER, "routes: 10.0.0.0/8\n", "1: key 'routes'", "wrong type");
	FILE_ERROR(CONFIG_SERVER, "routes: [10.0.0.0/8]\n", "1: key 'routes[0]'",
		   "wrong type: expected a mapping");

	/* Structure and syntax. */
	FILE_ERROR(CONFIG_CLIENT, "- a\n- b\n", "1:", "top level must be a mapping");
	FILE_ERROR(CONFIG_CLIENT, "server_addr: h:1\n  listen_port: 1\n",
		   "2:14:", "YAML syntax error: mapping values are not allowed in this context");
	FILE_ERROR(CONFIG_CLIENT, "target_cidr: [10.0.0.0/8\nlisten_port: 1\n", "",
		   "YAML syntax error");
	FILE_ERROR(CONFIG_CLIENT, "server_addr: \"h:1\n", "", "YAML syntax error");
	FILE_ERROR(CONFIG_CLIENT, "server_addr: h:1\n---\nserver_addr: h:2\n",
		   "3:", "only one YAML document");
}

static void test_proxy_pairs(void)
{
	const char *base = "server_addr: h:1\nproxy_id: p1\n" TLS_YAML;
	char yaml[512];
	struct config cfg;
	char a[20];

	snprintf(yaml, sizeof(yaml),
		 "%smanaged_cidr: [192.168.1.0/24, 10.0.0.0/8]\nvirtual_cidr: 100.64.1.0/24\n",
		 base);
	FILE_ERROR(CONFIG_PROXY, yaml, "8: key 'virtual_cidr'",
		   "1 virtual CIDR(s) for 2 managed CIDR(s)");
	snprintf(yaml, sizeof(yaml),
		 "%smanaged_cidr: [192.168.1.0/24]\nvirtual_cidr:\n  - 100.64.0.0/16\n", base);
	FILE_ERROR(CONFIG_PROXY, yaml, "8: key 'virtual_cidr'",
		   "virtual CIDR 100.64.0.0/16 and managed CIDR 192.168.1.0/24 differ in length");

	/* The check runs after merging: a flag can fix what the file got wrong. */
	CHECK_INT_EQ(load(&cfg, CONFIG_PROXY, "--config", tmpfile_with("bad.yaml", yaml),
			  "--virtual-cidr", "100.64.9.0/24", NULL),
		     0);
	CHECK_STR_EQ(cidr_format(&cfg.virtual_cidr[0], a, sizeof(a)), "100.64.9.0/24");
	config_release(&cfg);
	/* ... and the message names the flag when the flag is wrong. */
	CHECK_INT_EQ(load(&cfg, CONFIG_PROXY, "--config", tmpfile_with("bad.yaml", yaml),
			  "--virtual-cidr", "100.64.9.0/24", "--virtual-cidr", "100.64.10.0/24",
			  NULL),
		     -EINVAL);
	CHECK_STR_CONTAINS(errbuf, "--virtual-cidr: 2 virtual CIDR(s) for 1 managed CIDR(s)");
}

/* The handshake caps cannot be switched off: 0 is refused, naming where it came from. */
static void test_handshake_caps(void)
{
	struct config cfg;

	/* the connection window's floor stays in HTTP/2's range */
	FILE_ERROR(CONFIG_CLIENT, TLS_YAML "limits:\n  connection_window: 1000\n",
		   "6: key 'limits.connection_window'", "must be 65535..2147483647");
	CHECK_INT_EQ(load(&cfg, CONFIG_SERVER, "--config", tmpfile_with("s.yaml", TLS_YAML),
			  "--connection-window", "4194304", NULL),
		     0);
	CHECK_INT_EQ(cfg.conn_window, 4u << 20);
	config_release(&cfg);

	FILE_ERROR(CONFIG_SERVER, TLS_YAML "max_handshakes: 0\n", "5: key 'max_handshakes'",
		   "must be at least 1 (got '0')");
	CHECK_INT_EQ(load(&cfg, CONFIG_SERVER, "--config", tmpfile_with("s.yaml", TLS_YAML),
			  "--max-handshakes-per-source", "0", NULL),
		     -EINVAL);
	CHECK_STR_CONTAINS(errbuf, "--max-handshakes-per-source: must be at least 1");
	CHECK_INT_EQ(load(&cfg, CONFIG_SERVER, "--config", tmpfile_with("s.yaml", TLS_YAML),
			  "--max-handshakes", "5000", "--max-handshakes-per-source", "8", NULL),
		     0);
	CHECK_INT_EQ(cfg.max_handshakes, 5000);
	CHECK_INT_EQ(cfg.max_handshakes_per_source, 8);
	config_release(&cfg);
}

/* The listener's guard: allow_from and xdp.* from a file, flags and the environment, their
 * defaults, and what is refused. */
static void test_guard(void)
{
	struct config cfg;

	CHECK_INT_EQ(load(&cfg, CONFIG_SERVER, "--config", tmpfile_with("s.yaml", TLS_YAML), NULL),
		     0);
	CHECK_INT_EQ(cfg.n_allow_from, 0);
	CHECK(cfg.xdp_interface == NULL);
	CHECK_INT_EQ(cfg.xdp_mode, CONFIG_XDP_AUTO);
	CHECK_INT_EQ(cfg.xdp_syn_rate, 50);
	CHECK_INT_EQ(cfg.xdp_syn_burst, 100);
	CHECK_STR_EQ(cfg.instance, "default");
	config_release(&cfg);

	CHECK_INT_EQ(
		load(&cfg, CONFIG_SERVER, "--config",
		     tmpfile_with("s.yaml", TLS_YAML "allow_from: [10.0.0.0/8, 192.0.2.7]\n"
						     "instance: edge-1\n"
						     "xdp:\n  interface: eth0\n  mode: generic\n"
						     "  syn_rate: 7\n  syn_burst: 9\n"),
		     NULL),
		0);
	CHECK_INT_EQ(cfg.n_allow_from, 2);
	CHECK_INT_EQ(cfg.allow_from[0].addr, 0x0a000000);
	CHECK_INT_EQ(cfg.allow_from[0].len, 8);
	CHECK_INT_EQ(cfg.allow_from[1].addr, 0xc0000207);
	CHECK_INT_EQ(cfg.allow_from[1].len, 32);
	CHECK_STR_EQ(cfg.xdp_interface, "eth0");
	CHECK_STR_EQ(cfg.instance, "edge-1");
	CHECK_INT_EQ(cfg.xdp_mode, CONFIG_XDP_GENERIC);
	CHECK_INT_EQ(cfg.xdp_syn_rate, 7);
	CHECK_INT_EQ(cfg.xdp_syn_burst, 9);
	config_release(&cfg);

	/* Flags replace the file's list as a whole; the environment is a comma list. */
	setenv("NTUN_XDP_MODE", "native", 1);
	CHECK_INT_EQ(load(&cfg, CONFIG_SERVER, "--config",
			  tmpfile_with("s.yaml", TLS_YAML "allow_from: [10.0.0.0/8]\n"),
			  "--allow-from", "172.16.0.0/12", "--allow-from", "10.1.0.0/16", "--xdp",
			  "veth-relay0", "--xdp-syn-rate", "0", "--xdp-syn-burst", "0", NULL),
		     0);
	unsetenv("NTUN_XDP_MODE");
	CHECK_INT_EQ(cfg.n_allow_from, 2);
	CHECK_INT_EQ(cfg.allow_from[0].addr, 0xac100000);
	CHECK_STR_EQ(cfg.xdp_interface, "veth-relay0");
	CHECK_INT_EQ(cfg.xdp_mode, CONFIG_XDP_NATIVE);
	CHECK_INT_EQ(cfg.xdp_syn_rate, 0); /* no rate limit: a burst of 0 is fine then */
	config_release(&cfg);

	FILE_ERROR(CONFIG_SERVER, TLS_YAML "allow_from: [10.0.0.1/8]\n", "5: key 'allow_from'",
		   "did you mean '10.0.0.0/8'?");
	FILE_ERROR(CONFIG_SERVER, TLS_YAML "xdp:\n  mode: fast\n", "6: key 'xdp.mode'",
		   "expected auto, native or generic");
	FILE_ERROR(CONFIG_SERVER, TLS_YAML "xdp:\n  interface: a-very-long-name0\n",
		   "6: key 'xdp.interface'", "expected an interface name");
	FILE_ERROR(CONFIG_SERVER, TLS_YAML "xdp:\n  interface: eth0:1\n", "6: key 'xdp.interface'",
		   "expected an interface name");
	FILE_ERROR(CONFIG_SERVER, TLS_YAML "xdp:\n  syn_burst: 0\n", "6: key 'xdp.syn_burst'",
		   "must be at least 1 while xdp.syn_rate is set");
	FILE_ERROR(CONFIG_SERVER, TLS_YAML "xdp:\n  syn_rate: 1000001\n", "6: key 'xdp.syn_rate'",
		   "at most 1000000");
	CHECK_INT_EQ(load(&cfg, CONFIG_SERVER, "--config", tmpfile_with("s.yaml", TLS_YAML),
			  "--xdp", "", NULL),
		     0);
	CHECK(cfg.xdp_interface == NULL); /* empty: back to the default, off */
	config_release(&cfg);
	/* The guard is the server's: the other daemons refuse its settings. */
	CHECK_INT_EQ(load(&cfg, CONFIG_CLIENT, "--server", "r:1", "--tls-cert", "c", "--tls-key",
			  "k", "--tls-ca", "a", "--xdp", "eth0", NULL),
		     -EINVAL);
	CHECK_INT_EQ(load(&cfg, CONFIG_PROXY, "--server", "r:1", "--tls-cert", "c", "--tls-key",
			  "k", "--tls-ca", "a", "--proxy-id", "p", "--managed-cidr", "10.0.0.0/8",
			  "--allow-from", "10.0.0.0/8", NULL),
		     -EINVAL);
}

static void test_text_errors(void)
{
	struct config cfg;
	const char *f;

	setenv("NTUN_LISTEN_PORT", "0", 1);
	CHECK_INT_EQ(load(&cfg, CONFIG_CLIENT, NULL), -EINVAL);
	CHECK_STR_EQ(errbuf, "NTUN_LISTEN_PORT: port must be 1..65535 (got '0')");
	unsetenv("NTUN_LISTEN_PORT");

	setenv("NTUN_TARGET_CIDR", "10.0.0.0/8,,10.1.0.0/16", 1);
	CHECK_INT_EQ(load(&cfg, CONFIG_CLIENT, NULL), -EINVAL);
	CHECK_STR_CONTAINS(errbuf, "NTUN_TARGET_CIDR: empty item");
	setenv("NTUN_TARGET_CIDR", "10.0.0.0/8, 10.1.0.1/16", 1);
	CHECK_INT_EQ(load(&cfg, CONFIG_CLIENT, NULL), -EINVAL);
	CHECK_STR_CONTAINS(errbuf, "NTUN_TARGET_CIDR: host bits set");
	unsetenv("NTUN_TARGET_CIDR");

	setenv("NTUN_PROXY_ID", "p", 1);
	CHECK_INT_EQ(load(&cfg, CONFIG_CLIENT, NULL), -EINVAL);
	CHECK_STR_CONTAINS(errbuf, "NTUN_PROXY_ID: not a client setting");
	unsetenv("NTUN_PROXY_ID");

	CHECK_INT_EQ(load(&cfg, CONFIG_CLIENT, "--listen-port", "99999", NULL), -EINVAL);
	CHECK_STR_EQ(errbuf, "--listen-port: port must be 1..65535 (got '99999')");
	CHECK_INT_EQ(load(&cfg, CONFIG_CLIENT, "--cidr", "10.0.0.1/8", NULL), -EINVAL);
	CHECK_STR_CONTAINS(errbuf, "--cidr: host bits set in prefix; did you mean '10.0.0.0/8'?");
	CHECK_INT_EQ(load(&cfg, CONFIG_CLIENT, "--bogus", "1", NULL), -EINVAL);
	CHECK_STR_CONTAINS(errbuf, "--bogus: unknown option");
	CHECK_INT_EQ(load(&cfg, CONFIG_CLIENT, "-x", NULL), -EINVAL);
	CHECK_STR_CONTAINS(errbuf, "-x: unknown option");
	CHECK_INT_EQ(load(&cfg, CONFIG_CLIENT, "--tls-insecure=perhaps", NULL), -EINVAL);
	CHECK_STR_CONTAINS(errbuf, "--tls-insecure: expected true or false (got 'perhaps')");
	CHECK_INT_EQ(load(&cfg, CONFIG_CLIENT, "--help=yes", NULL), -EINVAL);
	CHECK_STR_CONTAINS(errbuf, "--help: takes no value");
	CHECK_INT_EQ(load(&cfg, CONFIG_CLIENT, "--managed-cidr", "10.0.0.0/8", NULL), -EINVAL);
	CHECK_STR_CONTAINS(errbuf, "--managed-cidr: not a client setting");
	CHECK_INT_EQ(load(&cfg, CONFIG_CLIENT, "--server", NULL), -EINVAL);
	CHECK_STR_CONTAINS(errbuf, "--server: missing value");
	CHECK_INT_EQ(load(&cfg, CONFIG_CLIENT, "--server", "h:1", "stray", NULL), -EINVAL);
	CHECK_STR_CONTAINS(errbuf, "unexpected argument 'stray'");
	CHECK_INT_EQ(load(&cfg, CONFIG_SERVER, "--route", "100.64.0.0/16", NULL), -EINVAL);
	CHECK_STR_CONTAINS(errbuf, "--route: expected VIRT=PROXY[:REAL]");
	CHECK_INT_EQ(load(&cfg, CONFIG_SERVER, "--route", "100.64.0.0/16=a:10.0.0.0/8", NULL),
		     -EINVAL);
	CHECK_STR_CONTAINS(errbuf, "--route: virtual and real prefix lengths differ");
	CHECK_INT_EQ(load(&cfg, CONFIG_SERVER, "--route", "100.64.0.0/16=a b", NULL), -EINVAL);
	CHECK_STR_CONTAINS(errbuf, "--route: proxy id must be");
	CHECK_INT_EQ(load(&cfg, CONFIG_CLIENT, "--config", "/nonexistent.yaml", NULL), -EINVAL);
	CHECK_STR_CONTAINS(errbuf, "--config: cannot open '/nonexistent.yaml'");

	f = tmpfile_with("bad.env", "# comment\nNTUN_SERVER_ADDR=h:1\nNTUN_LISTEN_PORT=0\n");
	CHECK_INT_EQ(load(&cfg, CONFIG_CLIENT, "--env-file", f, NULL), -EINVAL);
	CHECK_STR_CONTAINS(errbuf, ":3: key 'NTUN_LISTEN_PORT': port must be 1..65535 (got '0')");
	CHECK_STR_CONTAINS(errbuf, f);
	f = tmpfile_with("bad.env", "NTUN_SERVER_ADDR=h:1\nthis is not a setting\n");
	CHECK_INT_EQ(load(&cfg, CONFIG_CLIENT, "--env-file", f, NULL), -EINVAL);
	CHECK_STR_CONTAINS(errbuf, ":2: expected KEY=VALUE (got 'this is not a setting')");
	f = tmpfile_with("bad.env", "NTUN_CLIENT_ID=\"abc\n");
	CHECK_INT_EQ(load(&cfg, CONFIG_CLIENT, "--env-file", f, NULL), -EINVAL);
	CHECK_STR_CONTAINS(errbuf, ":1: key 'NTUN_CLIENT_ID': unterminated quote");
	f = tmpfile_with("bad.env", "\nNTUN_SERVERADDR=h:1\n");
	CHECK_INT_EQ(load(&cfg, CONFIG_CLIENT, "--env-file", f, NULL), -EINVAL);
	CHECK_STR_CONTAINS(errbuf, ":2: key 'NTUN_SERVERADDR': unknown setting");
	CHECK_INT_EQ(load(&cfg, CONFIG_CLIENT, "--env-file", "/nonexistent.env", NULL), -EINVAL);
	CHECK_STR_CONTAINS(errbuf, "--env-file: cannot open '/nonexistent.env'");
}

/* The seed's listen form ":PORT" is every address; HOST:PORT errors say what is wrong. */
static void test_hostport(void)
{
	static const struct {
		enum config_daemon d;
		const char *flag, *val, *err;
	} bad[] = {
		{CONFIG_CLIENT, "--server", "https://relay:8081",
		 "--server: expected HOST:PORT without a scheme such as https://"},
		{CONFIG_CLIENT, "--server", "relay",
		 "--server: missing ':PORT' after the host, as in relay.example.net:8443 (got 'relay')"},
		{CONFIG_CLIENT, "--server", ":8081", "--server: missing host in HOST:PORT"},
		{CONFIG_CLIENT, "--server", "::1:8081",
		 "--server: more than one ':' in HOST:PORT (an IPv6 host needs brackets"},
		{CONFIG_SERVER, "--listen", ":0",
		 "--listen: the part after the last ':' must be a port number 1..65535 (got ':0')"},
		{CONFIG_SERVER, "--listen", ":",
		 "--listen: the part after the last ':' must be a port number 1..65535"},
		{CONFIG_SERVER, "--listen", "8081", "--listen: missing ':PORT' after the host"},
		{CONFIG_SERVER, "--listen", "[::]:8081",
		 "--listen: IPv6 addresses are not supported"},
		{CONFIG_SERVER, "--listen", ":8081,:8082", "--listen: several addresses"},
		{CONFIG_SERVER, "--metrics", ":9100", "--metrics: missing host in HOST:PORT"},
		{CONFIG_SERVER, "--admin", "run/x.sock",
		 "--admin: must be 'off' or an absolute path (got 'run/x.sock')"},
		{CONFIG_PROXY, "--admin", "OFF", "--admin: must be 'off' or an absolute path"},
		{CONFIG_CLIENT, "--admin",
		 "/run/ntun/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		 "aaaaaaaaaaaaaaaaaaaaa.sock",
		 "--admin: a unix socket path is at most 107 bytes"},
	};
	struct config cfg;
	const char *f;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int ret = load(&cfg, bad[i].d, bad[i].flag, bad[i].val, NULL);

		if (ret != -EINVAL || !strstr(errbuf, bad[i].err))
			fprintf(stderr, "  (case %zu; message: %s)\n", i, errbuf);
		CHECK_INT_EQ(ret, -EINVAL);
		CHECK_STR_CONTAINS(errbuf, bad[i].err);
	}

	/* ":8081" from a flag, the YAML and JSON files, a .env file and the environment. */
	CHECK_INT_EQ(load(&cfg, CONFIG_SERVER, "--listen", ":8081", "--tls-cert", "c", "--tls-key",
			  "k", "--tls-ca", "ca", NULL),
		     0);
	CHECK_STR_EQ(cfg.listen_addr, "0.0.0.0:8081");
	config_release(&cfg);
	f = tmpfile_with("srv.yaml", "listen_addr: \":8081\"\n" TLS_YAML);
	CHECK_INT_EQ(load(&cfg, CONFIG_SERVER, "--config", f, NULL), 0);
	CHECK_STR_EQ(cfg.listen_addr, "0.0.0.0:8081");
	config_release(&cfg);
	f = tmpfile_with("srv.json", "{\"listen_addr\": \":8082\", \"tls\": {\"cert_file\": "
				     "\"c\", \"key_file\": \"k\", \"ca_file\": \"ca\"}}\n");
	CHECK_INT_EQ(load(&cfg, CONFIG_SERVER, "--config", f, NULL), 0);
	CHECK_STR_EQ(cfg.listen_addr, "0.0.0.0:8082");
	config_release(&cfg);
	f = tmpfile_with("a.env", "NTUN_LISTEN_ADDR=:8083\nNTUN_TLS_CERT_FILE=c\n"
				  "NTUN_TLS_KEY_FILE=k\nNTUN_TLS_CA_FILE=ca\n");
	CHECK_INT_EQ(load(&cfg, CONFIG_SERVER, "--env-file", f, NULL), 0);
	CHECK_STR_EQ(cfg.listen_addr, "0.0.0.0:8083");
	config_release(&cfg);
	setenv("NTUN_LISTEN_ADDR", ":8084", 1);
	CHECK_INT_EQ(load(&cfg, CONFIG_SERVER, "--env-file", f, NULL), 0);
	CHECK_STR_EQ(cfg.listen_addr, "0.0.0.0:8084");
	config_release(&cfg);
	unsetenv("NTUN_LISTEN_ADDR");
	/* An address with a host is kept as given. */
	CHECK_INT_EQ(load(&cfg, CONFIG_SERVER, "--env-file", f, "--listen", "10.1.2.3:8081", NULL),
		     0);
	CHECK_STR_EQ(cfg.listen_addr, "10.1.2.3:8081");
	config_release(&cfg);
}

/* A client with just its required settings, from flags. */
static int load_client(struct config *cfg)
{
	return load(cfg, CONFIG_CLIENT, "--server", "h:1", "--cidr", "10.0.0.0/8", "--tls-cert",
		    "c", "--tls-key", "k", "--tls-ca", "ca", NULL);
}

/* Unknown NTUN_* variables of the environment (Kubernetes service links) are listed for one
 * warning and ignored; an unknown name in a .env file, a key or a flag stays an error. */
/* admin: a socket path or off, from a flag, the file and the environment; restart-only. */
static void test_admin(void)
{
	const char *f = tmpfile_with("adm.yaml", "admin: /run/ntun/a.sock\n" TLS_YAML);
	struct config cfg;

	CHECK_INT_EQ(load(&cfg, CONFIG_SERVER, "--config", f, NULL), 0);
	CHECK_STR_EQ(cfg.admin, "/run/ntun/a.sock");
	config_release(&cfg);
	CHECK_INT_EQ(load(&cfg, CONFIG_SERVER, "--config", f, "--admin", "off", NULL), 0);
	CHECK_STR_EQ(cfg.admin, "off");
	config_release(&cfg);
	setenv("NTUN_ADMIN", "/tmp/x/admin.sock", 1);
	CHECK_INT_EQ(load(&cfg, CONFIG_SERVER, "--config", f, NULL), 0);
	CHECK_STR_EQ(cfg.admin, "/tmp/x/admin.sock");
	config_release(&cfg);
	unsetenv("NTUN_ADMIN");
	f = tmpfile_with("adm2.yaml", "admin: relative.sock\n" TLS_YAML);
	CHECK_INT_EQ(load(&cfg, CONFIG_SERVER, "--config", f, NULL), -EINVAL);
	CHECK_STR_CONTAINS(errbuf, "1: key 'admin': must be 'off' or an absolute path");
}

static void test_unknown_env(void)
{
	struct config cfg;
	const char *f;

	setenv("NTUN_SERVER_PORT", "tcp://10.96.0.10:8443", 1);
	setenv("NTUN_SERVER_SERVICE_HOST", "10.96.0.10", 1);
	CHECK_INT_EQ(load_client(&cfg), 0);
	CHECK(cfg.ignored_env != NULL);
	if (cfg.ignored_env) {
		CHECK_STR_CONTAINS(cfg.ignored_env, "NTUN_SERVER_PORT");
		CHECK_STR_CONTAINS(cfg.ignored_env, "NTUN_SERVER_SERVICE_HOST");
		CHECK_STR_CONTAINS(cfg.ignored_env, ", ");
		CHECK_INT_EQ(strlen(cfg.ignored_env),
			     strlen("NTUN_SERVER_PORT, NTUN_SERVER_SERVICE_HOST"));
	}
	CHECK_STR_EQ(cfg.n_server_addr ? cfg.server_addr[0] : "", "h:1");
	config_release(&cfg);
	CHECK(cfg.ignored_env == NULL);
	unsetenv("NTUN_SERVER_PORT");
	unsetenv("NTUN_SERVER_SERVICE_HOST");

	/* Known variables still apply next to unknown ones; bad values stay errors. */
	setenv("NTUN_BOGUS", "1", 1);
	setenv("NTUN_LISTEN_PORT", "15009", 1);
	CHECK_INT_EQ(load_client(&cfg), 0);
	CHECK_STR_EQ(cfg.ignored_env ? cfg.ignored_env : "(null)", "NTUN_BOGUS");
	CHECK_INT_EQ(cfg.listen_port, 15009);
	config_release(&cfg);
	setenv("NTUN_LISTEN_PORT", "tcp://10.96.0.10:8443", 1);
	CHECK_INT_EQ(load(&cfg, CONFIG_CLIENT, NULL), -EINVAL);
	CHECK_STR_CONTAINS(errbuf, "NTUN_LISTEN_PORT: port must be 1..65535");
	unsetenv("NTUN_LISTEN_PORT");
	/* Another daemon's setting (NTUN_PROXY_ID) is not unknown: an error (test_text_errors). */
	/* In a .env file the same name is an error. */
	f = tmpfile_with("b.env", "NTUN_BOGUS=1\n");
	CHECK_INT_EQ(load(&cfg, CONFIG_CLIENT, "--env-file", f, NULL), -EINVAL);
	CHECK_STR_CONTAINS(errbuf, ":1: key 'NTUN_BOGUS': unknown setting");
	unsetenv("NTUN_BOGUS");
	CHECK_INT_EQ(load_client(&cfg), 0);
	CHECK(cfg.ignored_env == NULL);
	config_release(&cfg);
}

/* server_addr: one or several servers, comma-separated or repeated, and a message for each
 * kind of bad entry that names the entry. */
static void test_server_list(void)
{
	struct config cfg;
	const char *f;

	CHECK_INT_EQ(load(&cfg, CONFIG_CLIENT, "--server", "a:1,b.example:2", "--cidr",
			  "10.0.0.0/8", "--tls-cert", "c", "--tls-key", "k", "--tls-ca", "ca",
			  NULL),
		     0);
	CHECK_INT_EQ(cfg.n_server_addr, 2);
	CHECK_STR_EQ(cfg.server_addr[0], "a:1");
	CHECK_STR_EQ(cfg.server_addr[1], "b.example:2");
	config_release(&cfg);

	CHECK_INT_EQ(load(&cfg, CONFIG_PROXY, "--server", "a:1", "--server", "[::1]:2, 10.0.0.1:3",
			  "--proxy-id", "p", "--managed-cidr", "10.0.0.0/8", "--tls-cert", "c",
			  "--tls-key", "k", "--tls-ca", "ca", NULL),
		     0);
	CHECK_INT_EQ(cfg.n_server_addr, 3);
	CHECK_STR_EQ(cfg.server_addr[1], "[::1]:2");
	CHECK_STR_EQ(cfg.server_addr[2], "10.0.0.1:3");
	config_release(&cfg);

	f = tmpfile_with("list.yaml",
			 "server_addr: [a:1, b:2]\ntarget_cidr: 10.0.0.0/8\n" TLS_YAML);
	CHECK_INT_EQ(load(&cfg, CONFIG_CLIENT, "--config", f, NULL), 0);
	CHECK_INT_EQ(cfg.n_server_addr, 2);
	CHECK_STR_EQ(cfg.server_addr[1], "b:2");
	config_release(&cfg);
	f = tmpfile_with("list.yaml", "server_addr: a:1,b:2\ntarget_cidr: 10.0.0.0/8\n" TLS_YAML);
	CHECK_INT_EQ(load(&cfg, CONFIG_CLIENT, "--config", f, NULL), 0);
	CHECK_INT_EQ(cfg.n_server_addr, 2);
	CHECK_STR_EQ(cfg.server_addr[0], "a:1");
	config_release(&cfg);
	/* A flag replaces the file's list. */
	CHECK_INT_EQ(load(&cfg, CONFIG_CLIENT, "--config", f, "--server", "c:3", NULL), 0);
	CHECK_INT_EQ(cfg.n_server_addr, 1);
	CHECK_STR_EQ(cfg.server_addr[0], "c:3");
	config_release(&cfg);

	setenv("NTUN_SERVER_ADDR", "a:1,b:2", 1);
	CHECK_INT_EQ(load(&cfg, CONFIG_CLIENT, "--config", f, NULL), 0);
	CHECK_INT_EQ(cfg.n_server_addr, 2);
	config_release(&cfg);
	setenv("NTUN_SERVER_ADDR", "a:1;b:2", 1);
	CHECK_INT_EQ(load(&cfg, CONFIG_CLIENT, NULL), -EINVAL);
	CHECK_STR_EQ(errbuf, "NTUN_SERVER_ADDR: more than one ':' in HOST:PORT (an IPv6 host "
			     "needs brackets, as in [::1]:8443) (got 'a:1;b:2')");
	unsetenv("NTUN_SERVER_ADDR");

	CHECK_INT_EQ(load(&cfg, CONFIG_CLIENT, "--server", "a:1,b", NULL), -EINVAL);
	CHECK_STR_EQ(errbuf, "--server: missing ':PORT' after the host, as in "
			     "relay.example.net:8443 (got 'b')");
	CHECK_INT_EQ(load(&cfg, CONFIG_CLIENT, "--server", "a:1,b:0", NULL), -EINVAL);
	CHECK_STR_EQ(errbuf, "--server: the part after the last ':' must be a port number "
			     "1..65535 (got 'b:0')");
	CHECK_INT_EQ(load(&cfg, CONFIG_CLIENT, "--server", "a:1:2", NULL), -EINVAL);
	CHECK_STR_EQ(errbuf, "--server: more than one ':' in HOST:PORT (an IPv6 host needs "
			     "brackets, as in [::1]:8443) (got 'a:1:2')");
	CHECK_INT_EQ(load(&cfg, CONFIG_CLIENT, "--server", "a:1,:2", NULL), -EINVAL);
	CHECK_STR_EQ(errbuf, "--server: missing host in HOST:PORT (got ':2')");
	CHECK_INT_EQ(load(&cfg, CONFIG_CLIENT, "--server", "a:1,,b:2", NULL), -EINVAL);
	CHECK_STR_CONTAINS(errbuf, "--server: empty item in comma-separated list");
	CHECK_INT_EQ(load(&cfg, CONFIG_CLIENT, "--server", "a:1 b:2", NULL), -EINVAL);
	CHECK_STR_EQ(errbuf, "--server: whitespace in HOST:PORT (got 'a:1 b:2')");
	CHECK_INT_EQ(load(&cfg, CONFIG_CLIENT, "--server",
			  "a:1,a:2,a:3,a:4,a:5,a:6,a:7,a:8,a:9,a:10,a:11,a:12,a:13,a:14,a:15,a:16,"
			  "a:17",
			  NULL),
		     -EINVAL);
	CHECK_STR_EQ(errbuf, "--server: more than 16 servers (got 'a:17')");
}

static void test_required(void)
{
	struct config cfg;

	CHECK_INT_EQ(load(&cfg, CONFIG_CLIENT, NULL), -EINVAL);
	CHECK_STR_CONTAINS(errbuf, "missing required settings for ntun-client: ");
	CHECK_STR_CONTAINS(errbuf, "server_addr (--server or NTUN_SERVER_ADDR)");
	CHECK_STR_CONTAINS(errbuf, "tls.cert_file (--tls-cert or NTUN_TLS_CERT_FILE)");
	CHECK_STR_CONTAINS(errbuf, "tls.key_file (--tls-key or NTUN_TLS_KEY_FILE)");
	CHECK_STR_CONTAINS(errbuf, "tls.ca_file (--tls-ca or NTUN_TLS_CA_FILE)");

	/* No --cidr: the client follows the server's routes. */
	CHECK_INT_EQ(load(&cfg, CONFIG_CLIENT, "--server", "h:1", "--tls-cert", "c", "--tls-key",
			  "k", "--tls-ca", "a", NULL),
		     0);
	CHECK_INT_EQ(cfg.n_target_cidr, 0);
	CHECK(!cfg.fail_closed);
	config_release(&cfg);
	CHECK_INT_EQ(load(&cfg, CONFIG_CLIENT, "--server", "h:1", "--tls-cert", "c", "--tls-key",
			  "k", "--tls-ca", "a", "--fail-closed", NULL),
		     0);
	CHECK(cfg.fail_closed);
	config_release(&cfg);

	CHECK_INT_EQ(load(&cfg, CONFIG_PROXY, "--tls-cert", "c", "--tls-key", "k", "--tls-ca", "a",
			  NULL),
		     -EINVAL);
	CHECK_STR_CONTAINS(errbuf, "server_addr");
	CHECK_STR_CONTAINS(errbuf, "proxy_id (--proxy-id or NTUN_PROXY_ID)");
	CHECK_STR_CONTAINS(errbuf, "managed_cidr (--managed-cidr or NTUN_MANAGED_CIDR)");
	CHECK(!strstr(errbuf, "tls."));

	CHECK_INT_EQ(load(&cfg, CONFIG_SERVER, "--tls-cert", "c", NULL), -EINVAL);
	CHECK_STR_CONTAINS(errbuf, "tls.key_file");
	CHECK_STR_CONTAINS(errbuf, "tls.ca_file");
	CHECK(!strstr(errbuf, "server_addr") && !strstr(errbuf, "cert_file"));

	/* An empty list from a later source empties the list again (route following). */
	setenv("NTUN_TARGET_CIDR", "", 1);
	CHECK_INT_EQ(load(&cfg, CONFIG_CLIENT, "--config", CONFIGS_DIR "/client.yaml", NULL), 0);
	CHECK_INT_EQ(cfg.n_target_cidr, 0);
	unsetenv("NTUN_TARGET_CIDR");

	/* cfg is zeroed after an error, so releasing it again is harmless. */
	config_release(&cfg);
	config_release(NULL);
}

/* Runs config_load with stdout captured into out. */
static int load_capture(struct config *cfg, enum config_daemon d, const char *flag, char *out,
			size_t size)
{
	const char *path = tmpfile_with("stdout.txt", "");
	int saved, fd, ret;
	ssize_t n;

	fflush(stdout);
	saved = dup(1);
	fd = open(path, O_WRONLY | O_TRUNC);
	dup2(fd, 1);
	close(fd);
	ret = load(cfg, d, flag, NULL);
	fflush(stdout);
	dup2(saved, 1);
	close(saved);
	fd = open(path, O_RDONLY);
	n = read(fd, out, size - 1);
	out[n > 0 ? n : 0] = '\0';
	close(fd);
	return ret;
}

static void test_help_version(void)
{
	char out[8192];
	struct config cfg;

	CHECK_INT_EQ(load_capture(&cfg, CONFIG_CLIENT, "--version", out, sizeof(out)), 0);
	CHECK_INT_EQ(action, CONFIG_EXIT_OK);
	CHECK_STR_EQ(out, "ntun-client " NTUN_VERSION "\n");
	CHECK_INT_EQ(load_capture(&cfg, CONFIG_PROXY, "-V", out, sizeof(out)), 0);
	CHECK_STR_EQ(out, "ntun-proxy " NTUN_VERSION "\n");
	config_release(&cfg);

	CHECK_INT_EQ(load_capture(&cfg, CONFIG_SERVER, "--help", out, sizeof(out)), 0);
	CHECK_INT_EQ(action, CONFIG_EXIT_OK);
	CHECK_STR_CONTAINS(out, "Usage: ntun-server");
	CHECK_STR_CONTAINS(out, "--listen [ADDR]:PORT");
	CHECK_STR_CONTAINS(out, "--route VIRT=PROXY[:REAL]");
	CHECK_STR_CONTAINS(out, "--grant ID=PREFIX");
	CHECK_STR_CONTAINS(out, "NTUN_PROXIES");
	CHECK_STR_CONTAINS(out, "NTUN_TLS_CERT_FILE");
	CHECK(!strstr(out, "--cidr"));

	CHECK_INT_EQ(load_capture(&cfg, CONFIG_CLIENT, "-h", out, sizeof(out)), 0);
	CHECK_STR_CONTAINS(out, "Usage: ntun-client");
	CHECK_STR_CONTAINS(out, "--cidr CIDR");
	CHECK_STR_CONTAINS(out, "--server HOST:PORT");
	CHECK(!strstr(out, "--managed-cidr"));
	CHECK_STR_CONTAINS(out, "--check-config");
	config_release(&cfg);

	/* --check-config: every source is checked, then nothing else is done. */
	setenv("NTUN_LISTEN_ADDR", ":8081", 1);
	setenv("NTUN_TLS_CERT_FILE", "/nonexistent/c.pem", 1);
	setenv("NTUN_TLS_KEY_FILE", "/nonexistent/k.pem", 1);
	setenv("NTUN_TLS_CA_FILE", "/nonexistent/ca.pem", 1);
	CHECK_INT_EQ(load_capture(&cfg, CONFIG_SERVER, "--check-config", out, sizeof(out)), 0);
	CHECK_INT_EQ(action, CONFIG_EXIT_OK);
	CHECK_STR_EQ(out, "ntun-server: configuration OK\n");
	CHECK(cfg.listen_addr == NULL && cfg.tls.cert_file == NULL);
	setenv("NTUN_SERVER_PORT", "tcp://10.96.0.10:8443", 1);
	CHECK_INT_EQ(load_capture(&cfg, CONFIG_SERVER, "--check-config", out, sizeof(out)), 0);
	CHECK_STR_EQ(out, "ntun-server: configuration OK; ignored unknown environment variables "
			  "NTUN_SERVER_PORT\n");
	unsetenv("NTUN_SERVER_PORT");
	setenv("NTUN_LISTEN_ADDR", ":0", 1);
	CHECK_INT_EQ(load_capture(&cfg, CONFIG_SERVER, "--check-config", out, sizeof(out)),
		     -EINVAL);
	CHECK_STR_EQ(out, "");
	CHECK_STR_CONTAINS(errbuf,
			   "NTUN_LISTEN_ADDR: the part after the last ':' must be a port number "
			   "1..65535 (got ':0')");
	unsetenv("NTUN_LISTEN_ADDR");
	unsetenv("NTUN_TLS_CERT_FILE");
	CHECK_INT_EQ(load_capture(&cfg, CONFIG_SERVER, "--check-config", out, sizeof(out)),
		     -EINVAL);
	CHECK_STR_CONTAINS(errbuf, "missing required setting for ntun-server: tls.cert_file");
	unsetenv("NTUN_TLS_KEY_FILE");
	unsetenv("NTUN_TLS_CA_FILE");
}

/* A second load in the same process (SIGHUP) gives the same result: getopt is reset. */
static void test_reload(void)
{
	struct config a, b;

	CHECK_INT_EQ(load(&a, CONFIG_CLIENT, "--config", CONFIGS_DIR "/client.yaml",
			  "--listen-port", "7000", "--cidr", "10.0.0.0/8", NULL),
		     0);
	CHECK_INT_EQ(load(&b, CONFIG_CLIENT, "--config", CONFIGS_DIR "/client.yaml",
			  "--listen-port", "7000", "--cidr", "10.0.0.0/8", NULL),
		     0);
	CHECK_INT_EQ(a.listen_port, 7000);
	CHECK_INT_EQ(b.listen_port, 7000);
	CHECK_INT_EQ(b.n_target_cidr, 1);
	CHECK_STR_EQ(a.server_addr[0], b.server_addr[0]);
	config_release(&a);
	config_release(&b);
}

/* The policy section: rules flattened to one per (client, destination), a single string for
 * either list, flags and the environment, limits and the dial timeout; errors with file:line. */
static void test_policy(void)
{
	struct config cfg;
	const char *f;
	char a[20];

	f = tmpfile_with("p.yaml",
			 TLS_YAML "policy:\n"
				  "  - clients: [\"spiffe://ntun.local/client/client-1\"]\n"
				  "    allow: [\"100.64.1.0/24:80\", \"100.64.1.0/24:8000-8999\"]\n"
				  "  - clients: [\"*\"]\n"
				  "    allow: 100.64.2.0/24\n"
				  "limits:\n  client_tunnels: 10\n  client_tunnel_rate: 5\n"
				  "timeouts:\n  dial_ms: 750ms\n");
	CHECK_INT_EQ(load(&cfg, CONFIG_SERVER, "--config", f, NULL), 0);
	CHECK_INT_EQ(cfg.n_policy, 3);
	if (cfg.n_policy == 3) {
		CHECK_STR_EQ(cfg.policy[0].client, "spiffe://ntun.local/client/client-1");
		CHECK_STR_EQ(cidr_format(&cfg.policy[0].net, a, sizeof(a)), "100.64.1.0/24");
		CHECK_INT_EQ(cfg.policy[0].port_lo, 80);
		CHECK_INT_EQ(cfg.policy[0].port_hi, 80);
		CHECK_INT_EQ(cfg.policy[1].port_lo, 8000);
		CHECK_INT_EQ(cfg.policy[1].port_hi, 8999);
		CHECK_STR_EQ(cfg.policy[2].client, "*");
		CHECK_INT_EQ(cfg.policy[2].port_lo, 1);
		CHECK_INT_EQ(cfg.policy[2].port_hi, 65535);
	}
	CHECK_INT_EQ(cfg.client_tunnels, 10);
	CHECK_INT_EQ(cfg.client_tunnel_rate, 5);
	CHECK_INT_EQ(cfg.dial_timeout_ms, 750);
	config_release(&cfg);
	CHECK(cfg.policy == NULL && cfg.n_policy == 0);

	/* Defaults: no policy, no limits, 2 s dial timeout. */
	CHECK_INT_EQ(load(&cfg, CONFIG_SERVER, "--config", tmpfile_with("p.yaml", TLS_YAML), NULL),
		     0);
	CHECK_INT_EQ(cfg.n_policy, 0);
	CHECK_INT_EQ(cfg.client_tunnels, 0);
	CHECK_INT_EQ(cfg.client_tunnel_rate, 0);
	CHECK_INT_EQ(cfg.dial_timeout_ms, 2000);
	config_release(&cfg);

	/* Flags replace the file's list; repeated flags append. */
	CHECK_INT_EQ(load(&cfg, CONFIG_SERVER, "--config", f, "--allow",
			  "spiffe://ntun.local/client/c2=10.0.0.0/8:443", "--allow",
			  "*=192.168.0.0/16:1-1023", "--max-client-tunnels", "3", NULL),
		     0);
	CHECK_INT_EQ(cfg.n_policy, 2);
	CHECK_STR_EQ(cfg.policy[0].client, "spiffe://ntun.local/client/c2");
	CHECK_INT_EQ(cfg.policy[0].port_lo, 443);
	CHECK_INT_EQ(cfg.policy[1].port_hi, 1023);
	CHECK_INT_EQ(cfg.client_tunnels, 3);
	config_release(&cfg);
	setenv("NTUN_POLICY", "*=100.64.9.0/24, spiffe://ntun.local/client/x=100.64.8.0/24:22", 1);
	CHECK_INT_EQ(load(&cfg, CONFIG_SERVER, "--config", f, NULL), 0);
	CHECK_INT_EQ(cfg.n_policy, 2);
	CHECK_STR_EQ(cfg.policy[1].client, "spiffe://ntun.local/client/x");
	config_release(&cfg);
	unsetenv("NTUN_POLICY");
	CHECK_INT_EQ(load(&cfg, CONFIG_PROXY, "--config", tmpfile_with("p.yaml", TLS_YAML),
			  "--server", "a:1", "--proxy-id", "p", "--managed-cidr", "10.0.0.0/8",
			  "--allow", "*=10.0.0.0/8", NULL),
		     -EINVAL);
	config_release(&cfg);

	FILE_ERROR(CONFIG_SERVER, "policy: []\n", "1: key 'policy'", "leave the section out");
	FILE_ERROR(CONFIG_SERVER, "policy:\n  - allow: [10.0.0.0/8]\n", "2: key 'policy[0]'",
		   "missing clients");
	FILE_ERROR(CONFIG_SERVER, "policy:\n  - clients: \"*\"\n", "2: key 'policy[0]'",
		   "missing allow");
	FILE_ERROR(CONFIG_SERVER, "policy:\n  - clients: [\"*\"]\n    allow: []\n",
		   "3: key 'policy[0].allow'", "empty list");
	FILE_ERROR(CONFIG_SERVER, "policy:\n  - clients: [client-1]\n    allow: 10.0.0.0/8\n",
		   "2: key 'policy[0].clients'", "SPIFFE id");
	FILE_ERROR(CONFIG_SERVER,
		   "policy:\n  - clients: \"*\"\n    allow:\n      - 10.0.0.0/8\n"
		   "      - 10.0.0.0/8:70000\n",
		   "5: key 'policy[0].allow'", "CIDR:LO-HI");
	FILE_ERROR(CONFIG_SERVER, "policy:\n  - clients: \"*\"\n    allow: 10.0.0.1/8:80\n",
		   "3: key 'policy[0].allow'", "host bits");
	FILE_ERROR(CONFIG_SERVER, "policy:\n  - clients: \"*\"\n    allow: 10.0.0.0/8:90-80\n",
		   "3: key 'policy[0].allow'", "CIDR:LO-HI");
	FILE_ERROR(CONFIG_SERVER,
		   "policy:\n  - clients: \"*\"\n    allow: 10.0.0.0/8\n    deny: x\n",
		   "4: key 'policy[0].deny'", "unknown key");
	FILE_ERROR(CONFIG_SERVER, "policy:\n  - clients: {a: b}\n    allow: 10.0.0.0/8\n",
		   "2: key 'policy[0].clients'", "wrong type");
	FILE_ERROR(CONFIG_SERVER, "policy: \"*=10.0.0.0/8\"\n", "1: key 'policy'", "wrong type");
	FILE_ERROR(CONFIG_SERVER, "timeouts:\n  dial_ms: 0\n", "2: key 'timeouts.dial_ms'",
		   "greater than 0");
}

int main(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/ntun-test-config-XXXXXX");
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 1;
	}
	clear_ntun_env();

	test_examples();
	test_json();
	test_defaults();
	test_values();
	test_grants();
	test_policy();
	test_precedence();
	test_file_errors();
	test_proxy_pairs();
	test_handshake_caps();
	test_guard();
	test_text_errors();
	test_hostport();
	test_admin();
	test_unknown_env();
	test_server_list();
	test_required();
	test_help_version();
	test_reload();

	{
		static const char *const names[] = {
			"bad.yaml",  "min.yaml", "srv.yaml", "prx.yaml",   "empty.yaml",
			"null.yaml", "v.yaml",	 "r.yaml",   "g.yaml",	   "p.yaml",
			"a.env",     "b.env",	 "bad.env",  "stdout.txt", "srv.json"};
		char path[128];

		for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
			snprintf(path, sizeof(path), "%s/%s", tmpdir, names[i]);
			unlink(path);
		}
		if (rmdir(tmpdir))
			perror(tmpdir);
	}
	return check_done("test_config");
}
