// SPDX-License-Identifier: MIT
/* ntun-proxy: lives inside the remote network and only dials out, to every server it is given
 * (each address of each server_addr entry), and registers with each. On each connection it
 * dialed it is the HTTP/2 server: it answers Connector/Control with its registration and serves one
 * Connector/Dial per tunneled connection by connecting to the destination, which must lie in
 * its managed CIDRs whatever the server asks, and must not be local (loopback, link-local,
 * multicast, this host's own addresses) unless allow_local says so. */
#include <errno.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "buf.h"
#include "daemon.h"
#include "grpc.h"
#include "json.h"
#include "log.h"
#include "loop.h"
#include "metrics.h"
#include "peer.h"
#include "relay.h"
#include "route.h"
#include "sock.h"
#include "tls.h"
#include "uplink.h"

#define PATH_DIAL    "/ntun.v1.Connector/Dial"
#define PATH_CONTROL "/ntun.v1.Connector/Control"

#define OWN_ADDRS_TTL_MS 1000
#define RESOLVE_EVERY_MS 30000 /* server names are looked up again this often */

struct proxy;

/* One server and our connection to it. */
struct px_server {
	struct proxy *px;
	struct px_server *next;
	struct uplink_target t;
	struct uplink *up;
	struct grpc_call *ctl;
	struct loop_timer *ctl_task;
	bool gone; /* left the configuration or the DNS: draining, freed once stopped */
};

struct proxy {
	struct daemon *d;
	struct config *cfg;
	struct px_server *servers;
	struct loop_timer *resolve;
	struct loop_timer *stop_poll;
	uint32_t active;
	/* This host's IPv4 addresses (and interface broadcasts), read again at a dial when
	 * older than OWN_ADDRS_TTL_MS and on SIGHUP; own_at 0 = not read yet. */
	uint32_t *own;
	size_t n_own;
	uint64_t own_at;
};

struct proxy_conn {
	struct proxy *px;
	char conn_id[40];
	char dst[24];
	char src[24];		/* the app's address as the client saw it, "" if not sent */
	char client[64];	/* the client's id as the server sent it, "" if not sent */
	struct admin_tunnel at; /* linked while relaying */
};

static struct proxy px_state;

static void ctl_task(struct loop_timer *t, void *arg)
{
	struct px_server *ps = arg;
	const uint8_t *p;
	size_t n;
	int rv;

	while (ps->ctl && (rv = grpc_call_recv(ps->ctl, &p, &n)) == 1) {
		struct ctl_msg m;

		if (grpc_ctl_decode(CTL_SERVER_EVENT, p, n, &m) < 0) {
			log_warn("malformed control message from server");
			continue;
		}
		if (m.kind == CTL_SERVER_HELLO) {
			log_info("server %s (%s, version %s) accepted the control call", m.id,
				 ps->t.label, m.version);
		} else if (m.kind == CTL_DRAIN && m.refusal) {
			/* Connecting again unchanged gets the same answer: say so loudly, and
			 * only now and then (uplink_refused) until the configuration changes. */
			log_error("server %s refused this proxy: %s (next attempts back off up to "
				  "5 minutes; fix the configuration or the server's grants, then "
				  "send SIGHUP to retry at once)",
				  ps->t.label, m.reason);
			uplink_refused(ps->up);
		} else if (m.kind == CTL_DRAIN) {
			log_info("server %s drains: %s", ps->t.label, m.reason);
			uplink_expect_drain(ps->up, m.deadline_ms);
		}
		grpc_ctl_release(&m);
	}
	if (ps->ctl && rv < 0) {
		if (rv == -EPIPE)
			log_info("server %s ended the control call", ps->t.label);
		else
			log_warn("control call to %s failed: %s (%s)", ps->t.label, strerror(-rv),
				 grpc_call_peer_message(ps->ctl));
		grpc_call_finish(ps->ctl, GRPC_OK, NULL, NULL);
		grpc_call_free(ps->ctl);
		ps->ctl = NULL;
	}
}

static void ctl_wake(void *arg)
{
	struct px_server *ps = arg;

	loop_timer_now(ps->ctl_task);
}

/* Sends our registration (from cfg) on the control call. */
static void send_registration(struct px_server *ps, const struct config *cfg)
{
	struct proxy *px = ps->px;
	struct ctl_msg m = {.kind = CTL_REGISTER};
	struct buf out = BUF_INIT;
	char(*cidrs)[CTL_CIDR_LEN] = NULL, (*virt)[CTL_CIDR_LEN] = NULL;

	cidrs = calloc(cfg->n_managed_cidr, CTL_CIDR_LEN);
	virt = calloc(cfg->n_virtual_cidr ? cfg->n_virtual_cidr : 1, CTL_CIDR_LEN);
	if (!cidrs || !virt)
		goto out;
	snprintf(m.id, sizeof(m.id), "%s", tls_ctx_identity(px->d->tls)->id);
	snprintf(m.version, sizeof(m.version), "%s", NTUN_VERSION);
	for (size_t i = 0; i < cfg->n_managed_cidr; i++)
		cidr_format(&cfg->managed_cidr[i], cidrs[i], CTL_CIDR_LEN);
	for (size_t i = 0; i < cfg->n_virtual_cidr; i++)
		cidr_format(&cfg->virtual_cidr[i], virt[i], CTL_CIDR_LEN);
	m.cidrs = cidrs;
	m.n_cidrs = cfg->n_managed_cidr;
	m.virt = virt;
	m.n_virt = cfg->n_virtual_cidr;
	m.capacity = cfg->capacity;
	if (grpc_ctl_encode(CTL_PROXY_EVENT, &m, &out) == 0 &&
	    grpc_call_send(ps->ctl, buf_head(&out), buf_len(&out)) == 0)
		log_info("registered as %s with %zu managed CIDR(s) at %s", m.id, m.n_cidrs,
			 ps->t.label);
out:
	buf_release(&out);
	free(cidrs);
	free(virt);
}

static void handle_control(struct px_server *ps, struct h2_stream *st, const struct h2_nv *nv,
			   size_t n, bool end)
{
	if (ps->ctl) {
		grpc_call_free(ps->ctl);
		ps->ctl = NULL;
	}
	ps->ctl = grpc_call_accept(st, nv, n, end, GRPC_MESSAGES, false);
	if (!ps->ctl) {
		grpc_reject(st, GRPC_RESOURCE_EXHAUSTED, "out of memory", NULL);
		return;
	}
	grpc_call_set_wake(ps->ctl, ctl_wake, ps);
	send_registration(ps, ps->px->cfg);
}

/* Tells the server we leave it (its routes through us go at once; open dials finish) and ends
 * the control call. */
static void send_drain(struct px_server *ps, const char *reason, uint32_t ms)
{
	struct ctl_msg m = {.kind = CTL_DRAIN, .deadline_ms = ms};
	struct buf out = BUF_INIT;

	if (!ps->ctl)
		return;
	snprintf(m.reason, sizeof(m.reason), "%s", reason);
	if (grpc_ctl_encode(CTL_PROXY_EVENT, &m, &out) == 0)
		grpc_call_send(ps->ctl, buf_head(&out), buf_len(&out));
	buf_release(&out);
	grpc_call_finish(ps->ctl, GRPC_OK, NULL, NULL);
}

static bool cidrs_equal(const struct cidr *a, size_t na, const struct cidr *b, size_t nb)
{
	if (na != nb)
		return false;
	for (size_t i = 0; i < na; i++)
		if (a[i].addr != b[i].addr || a[i].len != b[i].len)
			return false;
	return true;
}

/* SIGHUP: a changed set of networks or capacity is registered again at once; servers added to
 * server_addr are attached, removed ones left; a refused proxy tries again now. */
static int on_reload(struct daemon *d, const struct config *nc, char *err, size_t errsz)
{
	struct proxy *px = &px_state;
	bool same;

	px->own_at = 0; /* read this host's addresses again at the next dial */

	same = cidrs_equal(px->cfg->managed_cidr, px->cfg->n_managed_cidr, nc->managed_cidr,
			   nc->n_managed_cidr) &&
	       cidrs_equal(px->cfg->virtual_cidr, px->cfg->n_virtual_cidr, nc->virtual_cidr,
			   nc->n_virtual_cidr) &&
	       px->cfg->capacity == nc->capacity;
	for (struct px_server *ps = px->servers; ps; ps = ps->next) {
		if (!same && ps->ctl && !ps->gone)
			send_registration(ps, nc);
		if (!ps->gone)
			uplink_reset(ps->up, nc);
	}
	/* Servers are looked up again once nc and its credentials are in place. */
	loop_timer_arm(px->resolve, 0);
	return 0;
}

/* Reads this host's addresses (in the proxy's network namespace) into px->own. Returns 0 or
 * -errno with the previous list kept. */
static int own_addrs_read(struct proxy *px)
{
	struct ifaddrs *ifs, *i;
	uint32_t *own;
	size_t n = 0;

	if (getifaddrs(&ifs) < 0)
		return -errno;
	for (i = ifs; i; i = i->ifa_next)
		n += 2; /* its address and its broadcast address at most */
	own = malloc((n ? n : 1) * sizeof(*own));
	if (!own) {
		freeifaddrs(ifs);
		return -ENOMEM;
	}
	n = 0;
	for (i = ifs; i; i = i->ifa_next) {
		const struct sockaddr *sa[2] = {
			i->ifa_addr, i->ifa_flags & IFF_BROADCAST ? i->ifa_broadaddr : NULL};

		for (size_t k = 0; k < 2; k++)
			if (sa[k] && sa[k]->sa_family == AF_INET)
				own[n++] =
					ntohl(((const struct sockaddr_in *)sa[k])->sin_addr.s_addr);
	}
	freeifaddrs(ifs);
	free(px->own);
	px->own = own;
	px->n_own = n;
	px->own_at = loop_now_ms();
	return 0;
}

/* Is addr one no dial may reach without allow_local: 0.0.0.0/8, loopback, link-local (cloud
 * metadata services live at 169.254.169.254), multicast, 240.0.0.0/4 and the broadcast
 * address, or an address of this host? An address list that cannot be read (never read yet)
 * counts as local: refusing is the safe side. */
static bool local_dst(struct proxy *px, uint32_t addr)
{
	static const struct cidr ranges[] = {
		{0x00000000u, 8}, {0x7f000000u, 8}, {0xa9fe0000u, 16},
		{0xe0000000u, 4}, {0xf0000000u, 4},
	};
	int rv;

	for (size_t i = 0; i < sizeof(ranges) / sizeof(ranges[0]); i++)
		if (cidr_contains(&ranges[i], addr))
			return true;
	if (!px->own_at || loop_now_ms() - px->own_at >= OWN_ADDRS_TTL_MS) {
		rv = own_addrs_read(px);
		if (rv < 0) {
			log_warn("cannot list this host's addresses: %s", strerror(-rv));
			if (!px->own_at)
				return true;
		}
	}
	for (size_t i = 0; i < px->n_own; i++)
		if (px->own[i] == addr)
			return true;
	return false;
}

static bool managed(const struct proxy *px, uint32_t addr)
{
	for (size_t i = 0; i < px->cfg->n_managed_cidr; i++)
		if (cidr_contains(&px->cfg->managed_cidr[i], addr))
			return true;
	return false;
}

static void conn_done(void *arg, const char *reason, int err, uint64_t up, uint64_t down)
{
	struct proxy_conn *c = arg;

	admin_tunnel_del(c->px->d->admin, &c->at);
	daemon_tunnel_ended(c->px->d, err, up, down);
	log_write(err ? LOG_LVL_INFO : LOG_LVL_DEBUG, c->conn_id, NULL,
		  "dial %s closed: %s (%llu bytes to destination, %llu back)", c->dst, reason,
		  (unsigned long long)up, (unsigned long long)down);
	c->px->active--;
	free(c);
}

static void handle_dial(struct proxy *px, struct h2_stream *st, const struct h2_nv *nv, size_t n,
			bool end)
{
	const char *dst = grpc_md_get(nv, n, "ntun-dst");
	const char *cid = grpc_md_get(nv, n, "ntun-conn-id");
	struct proxy_conn *c;
	struct grpc_call *call;
	struct relay_end *sock;
	struct relay *r;
	const char *v;
	uint32_t addr;
	uint16_t port;
	int fd;

	if (!dst || ipport_parse(dst, &addr, &port) < 0) {
		grpc_reject(st, GRPC_INVALID_ARGUMENT, "ntun-dst must be IPv4:port", "EINVAL");
		daemon_refused(px->d);
		return;
	}
	if (!managed(px, addr)) {
		daemon_refused(px->d);
		log_write(LOG_LVL_WARN, cid, NULL, "refused dial to %s: outside managed CIDRs",
			  dst);
		grpc_reject(st, GRPC_PERMISSION_DENIED, "destination outside managed CIDRs",
			    "EACCES");
		return;
	}
	if (!px->cfg->allow_local && local_dst(px, addr)) {
		daemon_refused(px->d);
		log_write(LOG_LVL_WARN, cid, NULL,
			  "refused dial to %s: local address (set allow_local to permit)", dst);
		grpc_reject(st, GRPC_PERMISSION_DENIED, "denied: local address", "EACCES");
		return;
	}
	if (px->cfg->capacity && px->active >= px->cfg->capacity) {
		grpc_reject(st, GRPC_RESOURCE_EXHAUSTED, "proxy at capacity", "EBUSY");
		daemon_refused(px->d);
		return;
	}
	fd = sock_connect(addr, port, 0);
	if (fd < 0) {
		char msg[96];

		snprintf(msg, sizeof(msg), "connect %s: %s", dst, strerror(-fd));
		log_write(LOG_LVL_INFO, cid, NULL, "%s", msg);
		grpc_reject(st, grpc_status_from_errno(-fd), msg, sock_errname(-fd));
		daemon_refused(px->d);
		return;
	}
	c = calloc(1, sizeof(*c));
	sock = relay_sock_end(px->d->loop, fd, true, px->cfg->connect_timeout_ms);
	call = sock && c ? grpc_call_accept(st, nv, n, end, GRPC_BYTES, px->cfg->gzip) : NULL;
	if (!call) {
		if (sock) {
			sock->ops->abort(sock, ENOMEM);
			sock->ops->free(sock);
		}
		free(c);
		grpc_reject(st, GRPC_RESOURCE_EXHAUSTED, "out of memory", "ENOMEM");
		return;
	}
	c->px = px;
	snprintf(c->conn_id, sizeof(c->conn_id), "%s", cid ? cid : "-");
	snprintf(c->dst, sizeof(c->dst), "%s", dst);
	if ((v = grpc_md_get(nv, n, "ntun-src")))
		snprintf(c->src, sizeof(c->src), "%s", v);
	if ((v = grpc_md_get(nv, n, "ntun-client")))
		snprintf(c->client, sizeof(c->client), "%s", v);
	px->active++;
	daemon_tunnel_started(px->d);
	r = relay_new(px->d->loop, grpc_call_end(call), sock, px->cfg->idle_timeout_ms, conn_done,
		      c);
	if (r)
		admin_tunnel_add(px->d->admin, &c->at, r);
	else
		conn_done(c, "out of memory", ENOMEM, 0, 0); /* the relay freed both ends */
}

static void on_request(struct uplink *u, struct h2_stream *st, const struct h2_nv *nv, size_t n,
		       bool end, void *arg)
{
	struct px_server *ps = arg;
	struct proxy *px = ps->px;
	const char *path, *msg;
	enum grpc_status status = grpc_request_check(nv, n, px->cfg->gzip, &path, &msg);

	if (status != GRPC_OK) {
		log_warn("bad request from server: %s", msg);
		grpc_reject(st, status, msg, NULL);
	} else if (!strcmp(path, PATH_DIAL)) {
		handle_dial(px, st, nv, n, end);
	} else if (!strcmp(path, PATH_CONTROL)) {
		handle_control(ps, st, nv, n, end);
	} else {
		log_warn("unknown method %s", path);
		grpc_reject(st, GRPC_UNIMPLEMENTED, "unknown method", NULL);
	}
}

static void on_down(struct uplink *u, const char *reason, void *arg)
{
	struct px_server *ps = arg;

	if (ps->ctl) {
		grpc_call_free(ps->ctl);
		ps->ctl = NULL;
	}
}

static const struct uplink_cbs proxy_uplink_cbs = {
	.on_request = on_request,
	.on_down = on_down,
};

/* ---- the servers ---- */

static void server_add(struct proxy *px, const struct uplink_target *t)
{
	struct px_server *ps = calloc(1, sizeof(*ps));

	if (!ps || !(ps->ctl_task = loop_timer_new(px->d->loop, ctl_task, ps)))
		fatal("out of memory");
	ps->px = px;
	ps->t = *t;
	ps->next = px->servers;
	px->servers = ps;
	log_info("attaching to server %s", t->label);
	ps->up = uplink_new(px->d, true, 0, t, &proxy_uplink_cbs, ps);
}

/* Frees the servers that left and are done draining; true if none is left at all. */
static bool servers_reap(struct proxy *px)
{
	struct px_server **pp = &px->servers, *ps;

	while ((ps = *pp)) {
		if (!ps->gone || !uplink_stopped(ps->up)) {
			pp = &ps->next;
			continue;
		}
		*pp = ps->next;
		grpc_call_free(ps->ctl);
		uplink_free(ps->up);
		loop_timer_free(ps->ctl_task);
		free(ps);
	}
	return !px->servers;
}

/* Attaches to cfg's servers we have no connection to, and leaves those no longer among them
 * (unless a name failed to resolve this time: its addresses are kept). */
static void servers_sync(struct proxy *px, const struct config *cfg)
{
	struct uplink_target *t;
	bool all;
	int n = uplink_resolve(cfg, &t, &all);

	if (n < 0) {
		log_warn("resolving servers: %s", strerror(-n));
		return;
	}
	for (struct px_server *ps = px->servers; ps; ps = ps->next) {
		int i;

		if (ps->gone) /* leaving: an address back in the list gets a new connection */
			continue;
		for (i = 0; i < n && !uplink_target_eq(&t[i], &ps->t); i++)
			;
		if (i < n) {
			t[i].port = 0; /* have it */
		} else if (all) {
			log_info("leaving server %s: no longer configured", ps->t.label);
			send_drain(ps, "proxy left this server", cfg->drain_timeout_ms);
			uplink_stop(ps->up, cfg->drain_timeout_ms);
			ps->gone = true;
		}
	}
	for (int i = 0; i < n; i++)
		if (t[i].port)
			server_add(px, &t[i]);
	free(t);
}

static void resolve_tick(struct loop_timer *t, void *arg)
{
	struct proxy *px = arg;

	servers_reap(px);
	servers_sync(px, px->cfg);
	/* Until some name resolves, try again soon. */
	loop_timer_arm(t, px->servers ? RESOLVE_EVERY_MS : 2000);
}

static void stop_poll(struct loop_timer *t, void *arg)
{
	struct proxy *px = arg;

	if (servers_reap(px)) {
		loop_stop(px->d->loop);
		return;
	}
	loop_timer_arm(t, 50);
}

static void on_stop(struct daemon *d)
{
	struct proxy *px = &px_state;

	loop_timer_cancel(px->resolve);
	for (struct px_server *ps = px->servers; ps; ps = ps->next) {
		if (!ps->gone)
			send_drain(ps, "proxy shutting down", d->cfg.drain_timeout_ms);
		uplink_stop(ps->up, d->cfg.drain_timeout_ms);
		ps->gone = true;
	}
	loop_timer_arm(px->stop_poll, 0);
}

static uint64_t m_connected(void *arg)
{
	struct proxy *px = arg;
	uint64_t n = 0;

	for (struct px_server *ps = px->servers; ps; ps = ps->next)
		n += !ps->gone && uplink_peer(ps->up) != NULL;
	return n;
}

/* ---- admin API ---- */

static void adm_status(void *arg, struct json *j)
{
	struct proxy *px = arg;
	char b[24];

	daemon_admin_status(px->d, j);
	json_str(j, "proxy_id", px->cfg->proxy_id);
	json_u64(j, "capacity", px->cfg->capacity);
	json_array(j, "managed");
	for (size_t i = 0; i < px->cfg->n_managed_cidr; i++)
		json_str(j, NULL, cidr_format(&px->cfg->managed_cidr[i], b, sizeof(b)));
	json_end(j);
	json_array(j, "servers");
	for (struct px_server *ps = px->servers; ps; ps = ps->next) {
		json_object(j, NULL);
		json_str(j, "addr", ps->t.label);
		json_bool(j, "connected", uplink_peer(ps->up) != NULL);
		json_bool(j, "registered", ps->ctl != NULL);
		json_bool(j, "leaving", ps->gone);
		json_end(j);
	}
	json_end(j);
}

static const char *adm_tunnel_id(void *arg, const struct admin_tunnel *t)
{
	return admin_tunnel_owner(t, struct proxy_conn, at)->conn_id;
}

static void adm_tunnel(void *arg, const struct admin_tunnel *t, struct json *j)
{
	const struct proxy_conn *c = admin_tunnel_owner(t, struct proxy_conn, at);

	json_str(j, "client", c->client[0] ? c->client : NULL);
	json_str(j, "src", c->src[0] ? c->src : NULL);
	json_str(j, "dst", c->dst);
}

static const struct admin_ops proxy_admin_ops = {
	.status = adm_status,
	.tunnel_id = adm_tunnel_id,
	.tunnel = adm_tunnel,
};

int main(int argc, char **argv)
{
	struct daemon d;
	struct proxy *px = &px_state;

	daemon_init(&d, CONFIG_PROXY, argc, argv);
	px->d = &d;
	px->cfg = &d.cfg;
	if (strcmp(d.cfg.proxy_id, tls_ctx_identity(d.tls)->id))
		fatal("proxy id '%s' differs from the certificate's id '%s' (%s)", d.cfg.proxy_id,
		      tls_ctx_identity(d.tls)->id, d.cfg.tls.cert_file);
	px->resolve = loop_timer_new(d.loop, resolve_tick, px);
	px->stop_poll = loop_timer_new(d.loop, stop_poll, px);
	if (!px->resolve || !px->stop_poll)
		fatal("out of memory");
	d.on_stop = on_stop;
	d.on_reload = on_reload;
	admin_set_ops(d.admin, &proxy_admin_ops, px);
	servers_sync(px, &d.cfg);
	if (!px->servers)
		log_warn("no server address resolves yet; trying again every 2 s");
	loop_timer_arm(px->resolve, px->servers ? RESOLVE_EVERY_MS : 2000);
	/* The proxy only dials out (its metrics listener is bound): it keeps no capability. */
	daemon_drop_privileges(&d, 0, 0);
	metrics_add_fn(d.metrics, METRICS_GAUGE, "ntun_server_connected",
		       "servers this proxy is connected to now", m_connected, px);
	daemon_run(&d);
	while (px->servers) {
		struct px_server *ps = px->servers;

		px->servers = ps->next;
		grpc_call_free(ps->ctl);
		uplink_free(ps->up);
		loop_timer_free(ps->ctl_task);
		free(ps);
	}
	loop_timer_free(px->resolve);
	loop_timer_free(px->stop_poll);
	free(px->own);
	daemon_release(&d);
	return 0;
}
