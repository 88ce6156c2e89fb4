// SPDX-License-Identifier: MIT
/* ntunctl: asks a running ntun daemon through its admin socket (HTTP over a unix socket, JSON
 * answers) and prints tables for people or the JSON for scripts. Parses JSON with jansson, the
 * only user of it; speaks just enough HTTP/1.0 over a blocking socket to need no library.
 * Exit codes: 0 ok, 1 the daemon answered with an error, 2 usage, 3 daemon unreachable. */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define EXIT_ERROR	 1
#define EXIT_USAGE	 2
#define EXIT_UNREACHABLE 3

#define ADMIN_DIR	 "/run/ntun"
#define IO_TIMEOUT_MS	 5000
#define RESPONSE_MAX	 (16u << 20) /* a tunnel page is a few MiB at most */
#define WATCH_MAX_ROUNDS 1000000

static const char usage_text[] =
	"Usage: ntunctl [OPTIONS] COMMAND [ARGS]\n"
	"Asks a running ntun daemon through its admin socket.\n"
	"\n"
	"Commands:\n"
	"  status                 daemon, version, identity, uptime, connections, counts\n"
	"  peers                  (server) connected clients and proxies\n"
	"  routes                 (server) virtual -> real prefixes, their proxies and health\n"
	"  tunnels                open tunnels with live bytes and rates\n"
	"  close CONN-ID          reset one tunnel\n"
	"  drain proxy ID         (server) no new tunnels to that proxy; open ones finish\n"
	"  resume proxy ID        (server) undo a drain\n"
	"  reload                 re-read the configuration (like SIGHUP) and print the outcome\n"
	"\n"
	"Options:\n"
	"  --admin PATH           the daemon's admin socket\n"
	"  --daemon NAME          client, server or proxy: socket " ADMIN_DIR "/NAME.sock\n"
	"  --instance N           with --daemon: " ADMIN_DIR "/NAME-N.sock\n"
	"                         (neither: the only socket in " ADMIN_DIR ")\n"
	"  --json                 print the daemon's JSON answer as it is\n"
	"  --watch [SEC]          (status, peers, routes, tunnels) refresh every SEC seconds\n"
	"                         (default 2) until interrupted\n"
	"  --count N              with --watch: stop after N refreshes\n"
	"  --limit N              tunnels: list at most N (default 500)\n"
	"  -h, --help             show this help\n"
	"  -V, --version          show the version\n"
	"\n"
	"Exit status: 0 ok, 1 the daemon answered with an error (or not found), 2 usage error,\n"
	"3 the daemon cannot be reached.\n";

static volatile sig_atomic_t interrupted;

static void on_sigint(int sig)
{
	interrupted = 1;
}

__attribute__((format(printf, 1, 2))) static int usage_error(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "ntunctl: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, " (see --help)\n");
	return EXIT_USAGE;
}

/* ---- HTTP over the unix socket ---- */

struct answer {
	int code;
	char *body; /* NUL-terminated, malloc'd */
};

static int io_wait(int fd, short ev)
{
	struct pollfd p = {.fd = fd, .events = ev};
	int n = poll(&p, 1, IO_TIMEOUT_MS);

	return n == 1 ? 0 : n == 0 ? -ETIMEDOUT : -errno;
}

/* One request; EXIT_UNREACHABLE with a message on stderr if no answer came. */
static int request(const char *path, const char *method, const char *target, struct answer *a)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	char req[512], *buf = NULL, *p;
	size_t len = 0, cap = 0;
	int fd, n, rv = EXIT_UNREACHABLE;
	ssize_t w;

	memset(a, 0, sizeof(*a));
	if (strlen(path) >= sizeof(sa.sun_path)) {
		fprintf(stderr, "ntunctl: socket path too long: %s\n", path);
		return EXIT_USAGE;
	}
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		fprintf(stderr, "ntunctl: cannot reach the daemon at %s: %s\n", path,
			strerror(errno));
		goto out;
	}
	n = snprintf(req, sizeof(req),
		     "%s %s HTTP/1.0\r\nHost: ntun\r\nUser-Agent: ntunctl/" NTUN_VERSION
		     "\r\nContent-Length: 0\r\n\r\n",
		     method, target);
	for (int off = 0; off < n; off += (int)w) {
		if (io_wait(fd, POLLOUT) < 0 ||
		    (w = write(fd, req + off, (size_t)(n - off))) <= 0) {
			fprintf(stderr, "ntunctl: sending to %s failed\n", path);
			goto out;
		}
	}
	for (;;) {
		ssize_t r;

		if (cap - len < 65536) {
			if (cap >= RESPONSE_MAX) {
				fprintf(stderr, "ntunctl: answer larger than %u bytes\n",
					RESPONSE_MAX);
				goto out;
			}
			cap = cap ? cap * 2 : 65536;
			p = realloc(buf, cap + 1);
			if (!p)
				goto out;
			buf = p;
		}
		if (io_wait(fd, POLLIN) < 0) {
			fprintf(stderr, "ntunctl: no answer from %s within %d s\n", path,
				IO_TIMEOUT_MS / 1000);
			goto out;
		}
		r = read(fd, buf + len, cap - len);
		if (r < 0) {
			fprintf(stderr, "ntunctl: reading from %s: %s\n", path, strerror(errno));
			goto out;
		}
		if (r == 0)
			break;
		len += (size_t)r;
	}
	if (!buf || len < 12 || strncmp(buf, "HTTP/1.", 7)) {
		fprintf(stderr, "ntunctl: %s did not answer in HTTP\n", path);
		goto out;
	}
	buf[len] = '\0';
	a->code = atoi(buf + 9);
	p = strstr(buf, "\r\n\r\n");
	a->body = strdup(p ? p + 4 : "");
	rv = a->body ? 0 : EXIT_UNREACHABLE;
out:
	if (fd >= 0)
		close(fd);
	free(buf);
	return rv;
}

/* ---- formatting ---- */

static const char *human_bytes(double v, const char *suffix, char *b, size_t size)
{
	static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
	int u = 0;

	while (v >= 1024 && u < 5) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(b, size, "%.0f %s%s", v, units[u], suffix);
	else
		snprintf(b, size, "%.*f %s%s", v < 10 ? 2 : v < 100 ? 1 : 0, v, units[u], suffix);
	return b;
}

static const char *human_age(double ms, char *b, size_t size)
{
	unsigned long long s = (unsigned long long)(ms / 1000);

	if (s < 60)
		snprintf(b, size, "%llus", s);
	else if (s < 3600)
		snprintf(b, size, "%llum%02llus", s / 60, s % 60);
	else if (s < 86400)
		snprintf(b, size, "%lluh%02llum", s / 3600, s / 60 % 60);
	else
		snprintf(b, size, "%llud%02lluh", s / 86400, s / 3600 % 24);
	return b;
}

static const char *str(const json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s ? s : "-";
}

static double num(const json_t *o, const char *key)
{
	return json_number_value(json_object_get(o, key));
}

static const char *bytes_of(const json_t *o, const char *key, char *b, size_t size)
{
	return human_bytes(num(o, key), "", b, size);
}

static void print_value(const char *key, const json_t *v, int indent)
{
	const char *k;
	json_t *x;
	size_t i;

	if (json_is_object(v)) {
		printf("%*s%s:\n", indent, "", key);
		json_object_foreach((json_t *)v, k, x)
		{
			print_value(k, x, indent + 2);
		}
		return;
	}
	if (json_is_array(v)) {
		printf("%*s%s:%s\n", indent, "", key, json_array_size(v) ? "" : " (none)");
		json_array_foreach(v, i, x)
		{
			char idx[24];

			snprintf(idx, sizeof(idx), "- %zu", i + 1);
			if (json_is_object(x) || json_is_array(x))
				print_value(idx, x, indent + 2);
			else
				print_value("-", x, indent + 2);
		}
		return;
	}
	printf("%*s%-16s ", indent, "", key);
	if (json_is_string(v))
		printf("%s\n", json_string_value(v));
	else if (json_is_integer(v))
		printf("%lld\n", (long long)json_integer_value(v));
	else if (json_is_true(v))
		printf("yes\n");
	else if (json_is_false(v))
		printf("no\n");
	else if (json_is_null(v))
		printf("-\n");
	else
		printf("%g\n", json_number_value(v));
}

static void show_status(const json_t *o)
{
	char b[32];
	const char *k;
	json_t *v;

	json_object_foreach((json_t *)o, k, v)
	{
		if (!strcmp(k, "uptime_s")) {
			printf("%-16s %s\n", "uptime", human_age(num(o, k) * 1000, b, sizeof(b)));
			continue;
		}
		print_value(k, v, 0);
	}
}

static void show_peers(const json_t *o)
{
	char since[32], up[32], down[32], win[32];
	json_t *p;
	size_t i;

	printf("%-6s %-24s %-21s %8s %7s %11s %11s %9s %s\n", "ROLE", "ID", "ADDRESS", "SINCE",
	       "TUNNELS", "UP", "DOWN", "WINDOW", "HEALTH");
	json_array_foreach(json_object_get(o, "peers"), i, p)
	{
		printf("%-6s %-24s %-21s %8s %7.0f %11s %11s %9s %s\n", str(p, "role"),
		       str(p, "id"), str(p, "addr"),
		       human_age(num(p, "since_ms"), since, sizeof(since)), num(p, "tunnels"),
		       bytes_of(p, "bytes_up", up, sizeof(up)),
		       bytes_of(p, "bytes_down", down, sizeof(down)),
		       bytes_of(p, "recv_window", win, sizeof(win)), str(p, "health"));
	}
	if (json_is_true(json_object_get(o, "truncated")))
		printf("(%.0f peers, list truncated)\n", num(o, "count"));
}

static void show_routes(const json_t *o)
{
	json_t *r, *p, *d;
	size_t i, k;

	printf("%-18s    %-18s %-16s %-10s %s\n", "VIRTUAL", "REAL", "PROXY ID", "SOURCE",
	       "PROXIES (address health tunnels)");
	json_array_foreach(json_object_get(o, "routes"), i, r)
	{
		json_t *ps = json_object_get(r, "proxies");

		printf("%-18s -> %-18s %-16s %-10s", str(r, "virtual"), str(r, "real"),
		       str(r, "proxy_id"), str(r, "source"));
		if (!json_array_size(ps))
			printf(" (none connected)");
		json_array_foreach(ps, k, p)
		{
			printf("%s %s %s %.0f", k ? "," : "", str(p, "addr"), str(p, "health"),
			       num(p, "tunnels"));
		}
		printf("\n");
	}
	d = json_object_get(o, "drained");
	if (json_array_size(d)) {
		printf("drained:");
		json_array_foreach(d, i, p)
		{
			printf(" %s", json_string_value(p));
		}
		printf("\n");
	}
}

static void show_tunnels(const json_t *o)
{
	char age[32], up[32], down[32], ru[32], rd[32];
	json_t *t;
	size_t i;

	printf("%-32s %-16s %-21s %-21s %-21s %-12s %7s %10s %10s %12s %12s\n", "CONN-ID", "CLIENT",
	       "SOURCE", "DESTINATION", "AT SITE", "PROXY", "AGE", "UP", "DOWN", "RATE UP",
	       "RATE DOWN");
	json_array_foreach(json_object_get(o, "tunnels"), i, t)
	{
		const char *src = str(t, "src"),
			   *cg = json_string_value(json_object_get(t, "cgroup"));

		printf("%-32s %-16s %-21s %-21s %-21s %-12s %7s %10s %10s %12s %12s",
		       str(t, "conn_id"), str(t, "client"), src, str(t, "dst"), str(t, "dst_site"),
		       str(t, "proxy"), human_age(num(t, "age_ms"), age, sizeof(age)),
		       bytes_of(t, "bytes_up", up, sizeof(up)),
		       bytes_of(t, "bytes_down", down, sizeof(down)),
		       human_bytes(num(t, "rate_up"), "/s", ru, sizeof(ru)),
		       human_bytes(num(t, "rate_down"), "/s", rd, sizeof(rd)));
		if (cg)
			printf("  cgroup %s", cg);
		printf("\n");
	}
	printf("%.0f open", num(o, "count"));
	if (json_is_true(json_object_get(o, "truncated")))
		printf(", %.0f listed (truncated: use --limit)", num(o, "returned"));
	printf("\n");
}

/* ---- commands ---- */

struct cmd {
	const char *name;
	const char *method;
	int args; /* words after the command */
	bool watchable;
	void (*show)(const json_t *o);
};

static const struct cmd cmds[] = {
	{"status", "GET", 0, true, show_status}, {"peers", "GET", 0, true, show_peers},
	{"routes", "GET", 0, true, show_routes}, {"tunnels", "GET", 0, true, show_tunnels},
	{"close", "POST", 1, false, NULL},	 {"drain", "POST", 2, false, NULL},
	{"resume", "POST", 2, false, NULL},	 {"reload", "POST", 0, false, NULL},
};

/* Ids go into the request path: only the characters ids and conn ids are made of. */
static bool id_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 128 || !strcmp(s, ".") || !strcmp(s, ".."))
		return false;
	return strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == n;
}

/* The socket: --admin, --daemon/--instance, or the only one in ADMIN_DIR. */
static int socket_path(const char *admin, const char *daemon, const char *instance, char *path,
		       size_t size)
{
	static const char *const names[] = {"server", "client", "proxy"};
	int found = 0;

	if (admin) {
		snprintf(path, size, "%s", admin);
		return 0;
	}
	if (daemon) {
		if (strcmp(daemon, "client") && strcmp(daemon, "server") && strcmp(daemon, "proxy"))
			return usage_error("--daemon must be client, server or proxy, not '%s'",
					   daemon);
		if (instance && !id_ok(instance))
			return usage_error("bad --instance '%s'", instance);
		snprintf(path, size, ADMIN_DIR "/%s%s%s.sock", daemon, instance ? "-" : "",
			 instance ? instance : "");
		return 0;
	}
	if (instance)
		return usage_error("%s needs --daemon", "--instance");
	for (size_t i = 0; i < 3; i++) {
		char p[128];

		snprintf(p, sizeof(p), ADMIN_DIR "/%s.sock", names[i]);
		if (access(p, F_OK) == 0) {
			snprintf(path, size, "%s", p);
			found++;
		}
	}
	if (found == 1)
		return 0;
	if (found == 0)
		fprintf(stderr, "ntunctl: no daemon socket in " ADMIN_DIR
				" (is a daemon running? else use --admin PATH)\n");
	else
		fprintf(stderr, "ntunctl: several daemons run here: say which with --daemon\n");
	return found == 0 ? EXIT_UNREACHABLE : EXIT_USAGE;
}

/* Runs one request and prints its outcome. */
static int run_once(const char *path, const struct cmd *c, const char *target, bool json_out,
		    const char *arg)
{
	struct answer a;
	json_error_t jerr;
	json_t *o = NULL;
	int rv = request(path, c->method, target, &a);

	if (rv)
		return rv;
	o = json_loads(a.body, 0, &jerr);
	if (json_out) {
		fputs(a.body, stdout);
		if (a.code >= 300 && o)
			fprintf(stderr, "ntunctl: %s\n", str(o, "error"));
		rv = a.code >= 300 ? EXIT_ERROR : 0;
		goto out;
	}
	if (!o) {
		fprintf(stderr, "ntunctl: the daemon's answer (HTTP %d) is not JSON: %s\n", a.code,
			jerr.text);
		rv = EXIT_ERROR;
		goto out;
	}
	if (a.code >= 300) {
		if (!strcmp(c->name, "reload"))
			fprintf(stderr, "reload failed: %s\n", str(o, "error"));
		else
			fprintf(stderr, "ntunctl: %s\n", str(o, "error"));
		rv = EXIT_ERROR;
		goto out;
	}
	if (c->show)
		c->show(o);
	else if (!strcmp(c->name, "close"))
		printf("tunnel %s reset\n", arg);
	else if (!strcmp(c->name, "drain"))
		printf("proxy %s drained (%.0f connection(s)): no new tunnels to it\n", arg,
		       num(o, "connections"));
	else if (!strcmp(c->name, "resume"))
		printf("proxy %s back in rotation (%.0f connection(s))\n", arg,
		       num(o, "connections"));
	else if (!strcmp(c->name, "reload"))
		printf("configuration reloaded\n");
out:
	json_decref(o);
	free(a.body);
	return rv;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"admin", required_argument, NULL, 'a'},
		{"daemon", required_argument, NULL, 'd'},
		{"instance", required_argument, NULL, 'i'},
		{"json", no_argument, NULL, 'j'},
		{"watch", optional_argument, NULL, 'w'},
		{"count", required_argument, NULL, 'n'},
		{"limit", required_argument, NULL, 'l'},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{NULL, 0, NULL, 0},
	};
	const char *admin = NULL, *daemon = NULL, *instance = NULL, *arg = NULL;
	double watch = 0;
	long count = 0, limit = 0;
	bool json_out = false, watching = false;
	const struct cmd *c = NULL;
	char path[256], target[300], *end;
	int opt, rv;

	while ((opt = getopt_long(argc, argv, "hV", longopts, NULL)) != -1) {
		switch (opt) {
		case 'a':
			admin = optarg;
			break;
		case 'd':
			daemon = optarg;
			break;
		case 'i':
			instance = optarg;
			break;
		case 'j':
			json_out = true;
			break;
		case 'w':
			watching = true;
			watch = 2;
			/* "--watch 0.5": an optional argument may also be the next word. */
			if (!optarg && optind < argc && argv[optind][0] >= '0' &&
			    argv[optind][0] <= '9')
				optarg = argv[optind++];
			if (optarg) {
				watch = strtod(optarg, &end);
				if (*end || !isfinite(watch) || watch < 0.1 || watch > 86400)
					return usage_error(
						"--watch takes seconds from 0.1 to 86400, not '%s'",
						optarg);
			}
			break;
		case 'n':
			count = strtol(optarg, &end, 10);
			if (*end || count < 1 || count > WATCH_MAX_ROUNDS)
				return usage_error("--count takes a number from 1, not '%s'",
						   optarg);
			break;
		case 'l':
			limit = strtol(optarg, &end, 10);
			if (*end || limit < 1 || limit > 5000)
				return usage_error(
					"--limit takes a number from 1 to 5000, not '%s'", optarg);
			break;
		case 'h':
			fputs(usage_text, stdout);
			return 0;
		case 'V':
			printf("ntunctl %s\n", NTUN_VERSION);
			return 0;
		default:
			return EXIT_USAGE;
		}
	}
	if (optind >= argc)
		return usage_error("%s", "missing command");
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (!strcmp(argv[optind], cmds[i].name))
			c = &cmds[i];
	if (!c)
		return usage_error("unknown command '%s'", argv[optind]);
	if (argc - optind - 1 != c->args)
		return usage_error("wrong number of arguments for '%s'", c->name);
	if (watching && !c->watchable)
		return usage_error("--watch does not go with '%s'", c->name);
	if (count && !watching)
		return usage_error("%s needs --watch", "--count");
	if (limit && strcmp(c->name, "tunnels"))
		return usage_error("%s is for 'tunnels'", "--limit");
	if (!strcmp(c->name, "close")) {
		arg = argv[optind + 1];
		if (!id_ok(arg))
			return usage_error("bad CONN-ID '%s'", arg);
		snprintf(target, sizeof(target), "/v1/tunnels/%s/close", arg);
	} else if (c->args == 2) {
		if (strcmp(argv[optind + 1], "proxy"))
			return usage_error("'%s' takes: proxy ID", c->name);
		arg = argv[optind + 2];
		if (!id_ok(arg))
			return usage_error("bad proxy ID '%s'", arg);
		snprintf(target, sizeof(target), "/v1/proxies/%s/%s", arg, c->name);
	} else if (limit) {
		snprintf(target, sizeof(target), "/v1/tunnels?limit=%ld", limit);
	} else {
		snprintf(target, sizeof(target), "/v1/%s", c->name);
	}
	rv = socket_path(admin, daemon, instance, path, sizeof(path));
	if (rv)
		return rv;
	if (!watching)
		return run_once(path, c, target, json_out, arg);

	signal(SIGINT, on_sigint);
	signal(SIGTERM, on_sigint);
	for (long round = 0; !interrupted && round < (count ? count : WATCH_MAX_ROUNDS); round++) {
		struct timespec ts = {(time_t)watch, (long)((watch - (time_t)watch) * 1e9)};
		time_t now = time(NULL);
		char when[64];

		if (round) {
			if (nanosleep(&ts, NULL) < 0 && interrupted)
				break;
		}
		if (isatty(STDOUT_FILENO) && !json_out)
			printf("\033[H\033[2J");
		else if (round && !json_out)
			printf("\n");
		strftime(when, sizeof(when), "%H:%M:%S", localtime(&now));
		if (!json_out)
			printf("ntunctl %s  every %gs  %s  (^C to stop)\n\n", c->name, watch, when);
		rv = run_once(path, c, target, json_out, arg);
		fflush(stdout);
		if (rv == EXIT_UNREACHABLE || rv == EXIT_USAGE)
			return rv;
	}
	return rv;
}
