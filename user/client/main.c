// SPDX-License-Identifier: MIT
/* ntun-client: intercepts connects to the configured CIDRs (BPF on a cgroup, or iptables),
 * accepts them on a loopback listener, and carries each over its own Relay/Connect call to the
 * server. Interception lives in redirect.c; relaying in the shared relay engine. */
#include <errno.h>
#include <linux/capability.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "admin.h"
#include "buf.h"
#include "conntrack.h"
#include "ctr.h"
#include "daemon.h"
#include "grpc.h"
#include "json.h"
#include "log.h"
#include "loop.h"
#include "metrics.h"
#include "peer.h"
#include "redirect.h"
#include "relay.h"
#include "route.h"
#include "sock.h"
#include "tls.h"
#include "uplink.h"

#define PATH_CONNECT "/ntun.v1.Relay/Connect"
#define PATH_ATTACH  "/ntun.v1.Relay/Attach"

struct client {
	struct daemon *d;
	struct config *cfg;
	struct redirect *rd;
	struct ctr *ctr; /* listeners in the subtree's other namespaces (BPF mode) */
	struct ctr_ns self_ns;
	int lfd;
	struct loop_io *lio;
	struct uplink *up;
	struct grpc_call *attach;
	/* The control call of a connection the server is draining, read until it ends: the
	 * server's Drain (how long open tunnels may take) can arrive after its GOAWAY has
	 * already moved us to another server. */
	struct grpc_call *attach_old;
	struct loop_timer *ctl_task;
	struct loop_timer *stop_poll;
	uint64_t active;
	bool stopping;
	bool follow;	     /* no --cidr: intercept the virtual prefixes the server pushes */
	struct cidr *pushed; /* the last route set the server pushed (validated), kept across */
	size_t n_pushed;     /* disconnects: see apply_pushed() */
};

struct client_conn {
	struct client *cl;
	uint64_t start_ms; /* accepted */
	uint64_t *row;	   /* its server's counters */
	char conn_id[CONNTRACK_ID_LEN + 1];
	char dst[24];
	char src[24];
	uint64_t netns;		/* inode of the app's network namespace, 0 if unknown */
	char *cgroup;		/* the app's cgroup, NULL if unknown */
	struct admin_tunnel at; /* linked while relaying */
};

static struct client cl_state;

static void cleanup_redirect(void)
{
	/* Removing the daemon cgroup needs write access to the cgroup root (mode 0555). */
	int rv = cl_state.rd && cl_state.d ? daemon_raise_reserved(cl_state.d) : 0;

	if (rv < 0)
		log_warn("cannot raise CAP_DAC_OVERRIDE for the clean-up: %s", strerror(-rv));
	redirect_free(cl_state.rd);
	cl_state.rd = NULL;
}

/* ---- Relay/Attach: hello, then route pushes ---- */

#define PUSHED_MAX 1024 /* prefixes taken from one RouteSet; more are dropped */

/* A pushed prefix we refuse to intercept: shorter than /8 (a default route would take every
 * connect of the subtree), or touching 0.0.0.0/8, loopback (the listener itself), link-local,
 * multicast or 240.0.0.0/4. */
static bool pushed_unsafe(const struct cidr *c)
{
	static const struct cidr ranges[] = {
		{0x00000000u, 8}, {0x7f000000u, 8}, {0xa9fe0000u, 16},
		{0xe0000000u, 4}, {0xf0000000u, 4},
	};

	if (c->len < 8)
		return true;
	for (size_t i = 0; i < sizeof(ranges) / sizeof(ranges[0]); i++)
		if (cidr_overlap(&ranges[i], c))
			return true;
	return false;
}

/* Policy: a route-following client intercepts the last set the server pushed until the next
 * push replaces it, also while it is not connected (intercepted connects are then refused at
 * once, see handle_conn), so a server restart never lets connects to those prefixes leak onto
 * the local network; before the first push it intercepts nothing. */
static void apply_pushed(struct client *cl, const struct ctl_msg *m)
{
	struct cidr *v = calloc(m->n_routes ? m->n_routes : 1, sizeof(*v));
	size_t n = 0, bad = 0;
	int rv;

	if (!v) {
		log_warn("route set from server ignored: out of memory");
		return;
	}
	for (size_t i = 0; i < m->n_routes; i++) {
		struct cidr c;

		if (cidr_parse(m->routes[i].virt, &c) < 0 || pushed_unsafe(&c) || n == PUSHED_MAX) {
			if (!bad++)
				log_warn(
					"route %s from server not intercepted (malformed, unsafe or "
					"more than %d)",
					m->routes[i].virt, PUSHED_MAX);
			continue;
		}
		v[n++] = c;
	}
	rv = redirect_set_cidrs(cl->rd, v, n);
	if (rv < 0) {
		log_error("cannot follow the server's routes: %s (keeping the previous %zu)",
			  strerror(-rv), cl->n_pushed);
		free(v);
		return;
	}
	free(cl->pushed);
	cl->pushed = v;
	cl->n_pushed = n;
	log_info("following the server's routes: intercepting %zu prefix(es)%s", n,
		 bad ? " (some refused, see above)" : "");
}

/* Reads the messages waiting on *cp, the current control call or (old) a draining one's, and
 * ends the call when the server has. A draining server's routes are no longer ours. */
static void ctl_read(struct client *cl, struct grpc_call **cp, bool old)
{
	const uint8_t *p;
	size_t n;
	int rv = 0;

	while (*cp && (rv = grpc_call_recv(*cp, &p, &n)) == 1) {
		struct ctl_msg m;

		if (grpc_ctl_decode(CTL_SERVER_EVENT, p, n, &m) < 0) {
			log_warn("malformed control message from server");
			continue;
		}
		if (m.kind == CTL_ROUTES && !old) {
			log_info("server reaches %zu route(s)", m.n_routes);
			for (size_t i = 0; i < m.n_routes; i++)
				log_debug("route %s -> %s via %s", m.routes[i].virt,
					  m.routes[i].real, m.routes[i].proxy_id);
			if (cl->follow)
				apply_pushed(cl, &m);
		} else if (m.kind == CTL_DRAIN) {
			log_info("server draining: %s", m.reason);
			uplink_expect_drain(cl->up, m.deadline_ms);
		}
		grpc_ctl_release(&m);
	}
	if (*cp && rv < 0) {
		if (rv != -EPIPE && !old)
			log_warn("attach call failed: %s (%s)", strerror(-rv),
				 grpc_call_peer_message(*cp));
		grpc_call_finish(*cp, GRPC_OK, NULL, NULL);
		grpc_call_free(*cp);
		*cp = NULL;
	}
}

static void ctl_task(struct loop_timer *t, void *arg)
{
	struct client *cl = arg;

	ctl_read(cl, &cl->attach_old, true);
	ctl_read(cl, &cl->attach, false);
}

static void ctl_wake(void *arg)
{
	struct client *cl = arg;

	loop_timer_now(cl->ctl_task);
}

static void on_up(struct uplink *u, struct peer *p, void *arg)
{
	struct client *cl = arg;
	struct ctl_msg hello = {.kind = CTL_CLIENT_HELLO};
	struct buf out = BUF_INIT;
	char(*cidrs)[CTL_CIDR_LEN];

	/* The connection this one replaces is draining (GOAWAY), or gone: its call is read on
	 * until the server ends it (our half-close asks it to), one replaced before that is
	 * dropped. */
	grpc_call_free(cl->attach_old);
	if (cl->attach)
		grpc_call_finish(cl->attach, GRPC_OK, NULL, NULL);
	cl->attach_old = cl->attach;
	cl->attach = grpc_call_open(peer_session(p), PATH_ATTACH, NULL, 0, GRPC_MESSAGES, false);
	if (!cl->attach)
		return;
	grpc_call_set_wake(cl->attach, ctl_wake, cl);
	cidrs = calloc(cl->cfg->n_target_cidr ? cl->cfg->n_target_cidr : 1, CTL_CIDR_LEN);
	if (!cidrs)
		return;
	snprintf(hello.id, sizeof(hello.id), "%s", tls_ctx_identity(cl->d->tls)->id);
	snprintf(hello.version, sizeof(hello.version), "%s", NTUN_VERSION);
	for (size_t i = 0; i < cl->cfg->n_target_cidr; i++)
		cidr_format(&cl->cfg->target_cidr[i], cidrs[i], CTL_CIDR_LEN);
	hello.cidrs = cidrs;
	hello.n_cidrs = cl->cfg->n_target_cidr;
	if (grpc_ctl_encode(CTL_CLIENT_EVENT, &hello, &out) == 0)
		grpc_call_send(cl->attach, buf_head(&out), buf_len(&out));
	buf_release(&out);
	free(cidrs);
}

static void on_down(struct uplink *u, const char *reason, void *arg)
{
	struct client *cl = arg;

	grpc_call_free(cl->attach);
	cl->attach = NULL;
}

static const struct uplink_cbs client_uplink_cbs = {
	.on_up = on_up,
	.on_down = on_down,
};

/* ---- intercepted connections ---- */

static void conn_done(void *arg, const char *reason, int err, uint64_t up, uint64_t down)
{
	struct client_conn *c = arg;

	admin_tunnel_del(c->cl->d->admin, &c->at);
	daemon_tunnel_ended(c->cl->d, err, c->start_ms, c->row);
	log_write(err ? LOG_LVL_INFO : LOG_LVL_DEBUG, c->conn_id, NULL,
		  "connection to %s closed: %s (%llu bytes sent, %llu received)", c->dst, reason,
		  (unsigned long long)up, (unsigned long long)down);
	c->cl->active--;
	free(c->cgroup);
	free(c);
}

static void conn_up(void *arg)
{
	struct client_conn *c = arg;

	daemon_tunnel_connected(c->cl->d, c->start_ms);
}

/* Where a redirected connection came from: its cgroup (path relative to the cgroup v2 mount,
 * or its id if not seen yet) into cg, printable ASCII only (it goes into a header and logs),
 * and the pid that connected (0 if unknown). */
static void conn_origin(struct client *cl, int fd, char *cg, size_t size, uint32_t *pid)
{
	uint64_t id;

	snprintf(cg, size, "-");
	*pid = 0;
	if (redirect_conn_origin(cl->rd, fd, &id, pid) < 0)
		return;
	if (!cl->ctr || ctr_cgroup_path(cl->ctr, id, cg, size) < 0)
		snprintf(cg, size, "id:%llu", (unsigned long long)id);
	for (char *p = cg; *p; p++) {
		if (*p < 0x21 || *p > 0x7e)
			*p = '?';
	}
}

static void handle_conn(struct client *cl, int fd, uint32_t saddr, uint16_t sport,
			const struct ctr_ns *ns)
{
	struct client_conn *c;
	struct grpc_call *call;
	struct relay_end *sock;
	struct relay *r;
	struct peer *p;
	uint32_t daddr;
	uint16_t dport;
	char src[24], cg[256], netns[24];
	uint32_t pid;
	struct h2_nv md[5];
	int rv;

	rv = redirect_original_dst(fd, &daddr, &dport);
	if (rv < 0) {
		log_warn(
			"connection from %s (netns %llu) has no original destination (%s); closing",
			ipport_format(saddr, sport, src, sizeof(src)), (unsigned long long)ns->ino,
			strerror(-rv));
		sock_close_reset(fd);
		daemon_refused(cl->d);
		return;
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		sock_close_reset(fd);
		return;
	}
	c->cl = cl;
	c->start_ms = loop_now_ms();
	ipport_format(daddr, dport, c->dst, sizeof(c->dst));
	ipport_format(saddr, sport, src, sizeof(src));
	memcpy(c->src, src, sizeof(c->src));
	c->netns = ns->ino;
	conntrack_id(saddr, sport, daddr, dport, c->conn_id);
	p = uplink_peer(cl->up);
	if (!p) {
		/* Policy: with no server connection the app is refused at once, not left hanging. */
		log_write(LOG_LVL_WARN, c->conn_id, NULL,
			  "%s -> %s refused: not connected to server", src, c->dst);
		sock_close_reset(fd);
		free(c);
		return;
	}
	md[0] = (struct h2_nv)H2_NV("ntun-dst", c->dst);
	md[1] = (struct h2_nv)H2_NV("ntun-src", src);
	md[2] = (struct h2_nv)H2_NV("ntun-conn-id", c->conn_id);
	conn_origin(cl, fd, cg, sizeof(cg), &pid);
	snprintf(netns, sizeof(netns), "%llu", (unsigned long long)ns->ino);
	md[3] = (struct h2_nv)H2_NV("ntun-src-cgroup", cg);
	md[4] = (struct h2_nv)H2_NV("ntun-src-netns", netns);
	if (strcmp(cg, "-"))
		c->cgroup = strdup(cg); /* for the admin API only: NULL is fine */
	/* iptables mode knows neither */
	call = grpc_call_open(peer_session(p), PATH_CONNECT, md, ns->ino ? 5 : 3, GRPC_BYTES,
			      cl->cfg->gzip);
	if (!call) {
		log_write(LOG_LVL_WARN, c->conn_id, NULL, "%s -> %s refused: %s", src, c->dst,
			  strerror(errno));
		sock_close_reset(fd);
		daemon_refused(cl->d);
		free(c);
		return;
	}
	sock = relay_sock_end(cl->d->loop, fd, false, 0);
	if (!sock) {
		grpc_call_free(call);
		free(c->cgroup);
		free(c);
		return;
	}
	log_write(LOG_LVL_DEBUG, c->conn_id, NULL,
		  "%s -> %s from cgroup %s netns %s (cookie %llu) pid %u", src, c->dst, cg, netns,
		  (unsigned long long)ns->cookie, pid);
	c->row = daemon_server_row(cl->d, uplink_target(cl->up)->label);
	r = relay_new(cl->d->loop, sock, grpc_call_end(call), cl->cfg->idle_timeout_ms, conn_done,
		      c);
	if (!r) { /* the relay freed both ends */
		free(c->cgroup);
		free(c);
		return;
	}
	cl->active++;
	daemon_tunnel_started(cl->d, r, c->row);
	relay_on_up(r, grpc_call_end(call), conn_up);
	admin_tunnel_add(cl->d->admin, &c->at, r);
}

static void accept_some(struct client *cl, int lfd, const struct ctr_ns *ns)
{
	uint32_t a;
	uint16_t port;
	int fd;

	for (int i = 0; i < 64; i++) {
		fd = sock_accept(lfd, &a, &port);
		if (fd == -EAGAIN)
			return;
		if (fd < 0) {
			log_warn("accept: %s", strerror(-fd));
			return;
		}
		handle_conn(cl, fd, a, port, ns);
	}
}

static void on_accept(struct loop_io *io, unsigned events, void *arg)
{
	struct client *cl = arg;

	accept_some(cl, cl->lfd, &cl->self_ns);
}

/* A listener in a container's netns. */
static void on_ctr_accept(int lfd, const struct ctr_ns *ns, void *arg)
{
	accept_some(arg, lfd, ns);
}

/* ---- stop ---- */

static void stop_poll(struct loop_timer *t, void *arg)
{
	struct client *cl = arg;

	if (uplink_stopped(cl->up)) {
		loop_stop(cl->d->loop);
		return;
	}
	loop_timer_arm(t, 50);
}

static void on_stop(struct daemon *d)
{
	struct client *cl = &cl_state;

	cl->stopping = true;
	loop_io_free(cl->lio);
	cl->lio = NULL;
	close(cl->lfd);
	cl->lfd = -1;
	ctr_free(cl->ctr);
	cl->ctr = NULL;
	if (cl->attach)
		grpc_call_finish(cl->attach, GRPC_OK, NULL, NULL);
	uplink_stop(cl->up, d->cfg.drain_timeout_ms);
	loop_timer_arm(cl->stop_poll, 0);
}

/* SIGHUP: the intercepted CIDRs change in place (prefixes in both sets never stop). Without
 * CIDRs the client follows the server's routes: the last pushed set applies at once. */
static int on_reload(struct daemon *d, const struct config *nc, char *err, size_t errsz)
{
	struct client *cl = &cl_state;
	bool follow = !nc->n_target_cidr;
	int rv = follow ? redirect_set_cidrs(cl->rd, cl->pushed, cl->n_pushed)
			: redirect_set_cidrs(cl->rd, nc->target_cidr, nc->n_target_cidr);

	if (rv < 0) {
		snprintf(err, errsz, "cannot update intercepted CIDRs: %s", strerror(-rv));
		return rv;
	}
	cl->follow = follow;
	if (follow)
		log_info("following the server's routes: intercepting %zu prefix(es)",
			 cl->n_pushed);
	else
		log_info("intercepting %zu CIDR(s)", nc->n_target_cidr);
	uplink_reset(cl->up, nc);
	return 0;
}

static uint64_t m_connected(void *arg)
{
	struct client *cl = arg;

	return uplink_peer(cl->up) != NULL;
}

static uint64_t m_redirected(void *arg)
{
	struct client *cl = arg;
	struct redirect_stats st;

	return redirect_get_stats(cl->rd, &st) == 0 ? st.redirected : 0;
}

static uint64_t m_namespaces(void *arg)
{
	struct client *cl = arg;

	return cl->ctr ? ctr_count(cl->ctr) : 0;
}

/* ---- admin API ---- */

static void adm_status(void *arg, struct json *j)
{
	struct client *cl = arg;
	const struct uplink_target *t = uplink_target(cl->up);

	daemon_admin_status(cl->d, j);
	json_object(j, "server");
	json_str(j, "addr", t ? t->label : NULL);
	json_bool(j, "connected", uplink_peer(cl->up) != NULL);
	json_end(j);
	json_str(j, "intercept", redirect_mode_name(cl->rd));
	json_str(j, "instance", cl->cfg->instance);
	json_bool(j, "follow_routes", cl->follow);
	json_u64(j, "listen_port", cl->cfg->listen_port);
	json_u64(j, "namespaces", cl->ctr ? ctr_count(cl->ctr) : 0);
}

static const char *adm_tunnel_id(void *arg, const struct admin_tunnel *t)
{
	return admin_tunnel_owner(t, struct client_conn, at)->conn_id;
}

static void adm_tunnel(void *arg, const struct admin_tunnel *t, struct json *j)
{
	const struct client_conn *c = admin_tunnel_owner(t, struct client_conn, at);

	json_str(j, "src", c->src);
	json_str(j, "dst", c->dst);
	json_str(j, "cgroup", c->cgroup);
	if (c->netns)
		json_u64(j, "netns", c->netns);
	else
		json_null(j, "netns");
}

static const struct admin_ops client_admin_ops = {
	.status = adm_status,
	.tunnel_id = adm_tunnel_id,
	.tunnel = adm_tunnel,
};

/* ntun-client --cleanup [--instance NAME]: removes what a stopped client of the instance left
 * (a fail-closed one's pinned links, maps and chain; a crashed one's leftovers) and exits. Only
 * --instance is read: no server, certificates or configuration are needed. */
static int cleanup_main(int argc, char **argv)
{
	const char *instance = "default";
	int rv;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--instance") && i + 1 < argc)
			instance = argv[++i];
		else if (!strncmp(argv[i], "--instance=", 11))
			instance = argv[i] + 11;
		else if (strcmp(argv[i], "--cleanup")) {
			fprintf(stderr,
				"ntun-client: --cleanup takes only --instance NAME, not %s\n",
				argv[i]);
			return 2;
		}
	}
	log_setup("client", LOG_LVL_INFO, LOG_FMT_TEXT, NULL);
	rv = redirect_cleanup(instance);
	if (rv < 0) {
		fprintf(stderr, "ntun-client: cleanup of instance \"%s\" failed: %s\n", instance,
			strerror(-rv));
		return 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct daemon d;
	struct client *cl = &cl_state;
	struct redirect_opts ro = {0};
	uint64_t keep;

	for (int i = 1; i < argc; i++)
		if (!strcmp(argv[i], "--cleanup"))
			return cleanup_main(argc, argv);
	daemon_init(&d, CONFIG_CLIENT, argc, argv);
	cl->d = &d;
	cl->cfg = &d.cfg;
	cl->lfd = -1;

	/* Interception first: it moves us into our own cgroup, before any socket exists. */
	ro.mode = d.cfg.intercept == CONFIG_INTERCEPT_BPF	 ? REDIRECT_BPF
		  : d.cfg.intercept == CONFIG_INTERCEPT_IPTABLES ? REDIRECT_IPTABLES
								 : REDIRECT_AUTO;
	ro.cgroup = d.cfg.cgroup;
	ro.instance = d.cfg.instance;
	ro.listen_port = d.cfg.listen_port;
	ro.cidrs = d.cfg.target_cidr;
	ro.n_cidrs = d.cfg.n_target_cidr;
	ro.fail_closed = d.cfg.fail_closed;
	cl->rd = redirect_new(&ro);
	if (!cl->rd)
		fatal("interception setup failed: %s", strerror(errno));
	atexit(cleanup_redirect);

	cl->lfd = sock_listen(0x7f000001u, d.cfg.listen_port, 4096);
	if (cl->lfd < 0)
		fatal("listen on 127.0.0.1:%u: %s", d.cfg.listen_port, strerror(-cl->lfd));
	cl->lio = loop_io_new(d.loop, cl->lfd, on_accept, cl);
	cl->ctl_task = loop_timer_new(d.loop, ctl_task, cl);
	cl->stop_poll = loop_timer_new(d.loop, stop_poll, cl);
	if (!cl->lio || !cl->ctl_task || !cl->stop_poll)
		fatal("out of memory");
	loop_io_set(cl->lio, LOOP_READ);
	if (redirect_cgroup(cl->rd)) {
		struct ctr_opts co = {.cgroup = redirect_cgroup(cl->rd),
				      .port = d.cfg.listen_port,
				      .backlog = 1024};

		cl->ctr = ctr_new(d.loop, &co, on_ctr_accept, cl);
		if (!cl->ctr)
			fatal("serving the cgroup's network namespaces: %s", strerror(errno));
		ctr_self(cl->ctr, &cl->self_ns);
	}
	cl->follow = !d.cfg.n_target_cidr;
	if (cl->follow)
		log_info("following the server's routes with %s, listening on 127.0.0.1:%u",
			 redirect_mode_name(cl->rd), d.cfg.listen_port);
	else
		log_info("intercepting %zu CIDR(s) with %s, listening on 127.0.0.1:%u",
			 d.cfg.n_target_cidr, redirect_mode_name(cl->rd), d.cfg.listen_port);

	d.on_stop = on_stop;
	d.on_reload = on_reload;
	cl->up = uplink_new(&d, false, REDIRECT_MARK, NULL, &client_uplink_cbs, cl);
	admin_set_ops(d.admin, &client_admin_ops, cl);
	/* Attached and listening. What is left: SO_MARK on each connection to the server
	 * (CAP_NET_ADMIN), live CIDR updates and clean-up at exit: BPF map writes (CAP_BPF; links
	 * close with their fds) or running iptables (CAP_NET_ADMIN, CAP_NET_RAW for
	 * iptables-legacy). Pins are root's files, but removing the daemon cgroup at exit needs
	 * CAP_DAC_OVERRIDE: held back until then (cleanup_redirect). */
	keep = DAEMON_CAP(CAP_NET_ADMIN);
	keep |= strcmp(redirect_mode_name(cl->rd), "bpf") ? DAEMON_CAP(CAP_NET_RAW)
							  : DAEMON_CAP(CAP_BPF);
	/* Containers come and go while we run: finding their namespaces reads /proc/PID/ns/net of
	 * processes that may hold more capabilities than we keep (CAP_SYS_PTRACE), and opening a
	 * listener inside one is setns() (CAP_SYS_ADMIN). */
	if (cl->ctr)
		keep |= DAEMON_CAP(CAP_SYS_ADMIN) | DAEMON_CAP(CAP_SYS_PTRACE);
	daemon_drop_privileges(&d, keep, DAEMON_CAP(CAP_DAC_OVERRIDE));
	metrics_add_fn(d.metrics, METRICS_GAUGE, "ntun_server_connected",
		       "1 while the connection to the server is up", m_connected, cl);
	metrics_add_fn(d.metrics, METRICS_GAUGE, "ntun_container_namespaces",
		       "network namespaces besides our own with a listener (BPF mode)",
		       m_namespaces, cl);
	metrics_add_fn(d.metrics, METRICS_COUNTER, "ntun_redirected_total",
		       "connects redirected by the BPF programs (0 in iptables mode)", m_redirected,
		       cl);
	daemon_run(&d);

	loop_io_free(cl->lio);
	if (cl->lfd >= 0)
		close(cl->lfd);
	ctr_free(cl->ctr);
	grpc_call_free(cl->attach);
	grpc_call_free(cl->attach_old);
	uplink_free(cl->up);
	loop_timer_free(cl->ctl_task);
	loop_timer_free(cl->stop_poll);
	free(cl->pushed);
	cleanup_redirect();
	daemon_release(&d);
	return 0;
}
