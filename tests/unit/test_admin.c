// SPDX-License-Identifier: MIT
/* admin: the shared endpoints over a real unix socket with relays over socketpairs: status,
 * the tunnel list (live bytes while the relay runs, paging with limit/offset and "truncated"),
 * close (resets that relay, others stay; an id two tunnels share resets neither), reload's
 * outcome, and the answers to misuse (unknown tunnel, bad limit, wrong method, unknown path). */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>

#include "admin.h"
#include "check.h"
#include "httpc.h"
#include "json.h"
#include "loop.h"
#include "relay.h"

#define NT 3

struct tun {
	char id[8];
	int app, site; /* our ends of the socketpairs */
	bool done;
	struct admin_tunnel at;
};

static struct admin *adm;
static struct tun tuns[NT];
static char sock_path[128];
static int reloads;

static const char *tun_id(void *arg, const struct admin_tunnel *t)
{
	return admin_tunnel_owner(t, struct tun, at)->id;
}

static void tun_json(void *arg, const struct admin_tunnel *t, struct json *j)
{
	json_str(j, "dst", "10.0.0.1:80\"<x>");
}

static void status(void *arg, struct json *j)
{
	json_str(j, "extra", "yes");
}

static const struct admin_ops ops = {.status = status, .tunnel_id = tun_id, .tunnel = tun_json};

static int reload(void *arg, char *err, size_t errsz)
{
	if (reloads++ == 0)
		return 0;
	snprintf(err, errsz, "x.yaml:3: key 'k': bad");
	return -EINVAL;
}

static void tun_done(void *arg, const char *reason, int err, uint64_t ab, uint64_t ba)
{
	struct tun *t = arg;

	admin_tunnel_del(adm, &t->at);
	t->done = true;
}

static char body[65536];

static int get(const char *method, const char *target)
{
	char req[256];
	int n = snprintf(req, sizeof(req), "%s %s HTTP/1.0\r\n\r\n", method, target);

	return httpc_do(sock_path, req, (size_t)n, body, sizeof(body), NULL);
}

static void *client(void *arg)
{
	char buf[200];
	struct pollfd p;
	size_t got = 0;

	CHECK_INT_EQ(get("GET", "/v1/status"), 200);
	CHECK_STR_CONTAINS(body, "\"daemon\":\"server\"");
	CHECK_STR_CONTAINS(body, "\"identity\":\"spiffe://t/server/s\"");
	CHECK_STR_CONTAINS(body, "\"tunnels_open\":3");
	CHECK_STR_CONTAINS(body, "\"extra\":\"yes\"");

	/* 150 bytes from the app of tunnel 1 reach its site end: the list shows them. */
	CHECK(write(tuns[1].app, body, 150) == 150);
	while (got < 150) {
		p = (struct pollfd){.fd = tuns[1].site, .events = POLLIN};
		if (poll(&p, 1, 3000) != 1)
			break;
		got += (size_t)read(tuns[1].site, buf, sizeof(buf));
	}
	CHECK_INT_EQ(got, 150);
	CHECK_INT_EQ(get("GET", "/v1/tunnels"), 200);
	CHECK_STR_CONTAINS(body, "{\"conn_id\":\"t1\",\"dst\":\"10.0.0.1:80\\\"<x>\",\"age_ms\":");
	CHECK_STR_CONTAINS(body, "\"bytes_up\":150,\"bytes_down\":0,");
	CHECK_STR_CONTAINS(body, "\"count\":3,");
	CHECK_STR_CONTAINS(body, "\"returned\":3,\"truncated\":false}");

	CHECK_INT_EQ(get("GET", "/v1/tunnels?limit=2"), 200);
	CHECK_STR_CONTAINS(body, "\"conn_id\":\"t1\"");
	CHECK(!strstr(body, "\"conn_id\":\"t2\""));
	CHECK_STR_CONTAINS(body, "\"returned\":2,\"truncated\":true}");
	CHECK_INT_EQ(get("GET", "/v1/tunnels?limit=2&offset=2"), 200);
	CHECK_STR_CONTAINS(body, "\"conn_id\":\"t2\"");
	CHECK_STR_CONTAINS(body, "\"returned\":1,\"truncated\":false}");
	CHECK_INT_EQ(get("GET", "/v1/tunnels?limit=-1"), 400);
	CHECK_INT_EQ(get("GET", "/v1/tunnels?offset=x"), 400);
	CHECK_INT_EQ(get("POST", "/v1/tunnels"), 405);

	CHECK_INT_EQ(get("POST", "/v1/tunnels/nope/close"), 404);
	CHECK_STR_CONTAINS(body, "no open tunnel nope");
	CHECK_INT_EQ(get("GET", "/v1/tunnels/t1/close"), 405);
	CHECK_INT_EQ(get("POST", "/v1/tunnels/t1/stop"), 404);
	CHECK_INT_EQ(get("POST", "/v1/tunnels/t1/close"), 200);
	CHECK_STR_CONTAINS(body, "{\"closed\":\"t1\"}");
	/* Its app end is closed (a unix socketpair has no reset to show); the others stay. */
	p = (struct pollfd){.fd = tuns[1].app, .events = POLLIN};
	CHECK(poll(&p, 1, 3000) == 1 && read(tuns[1].app, buf, 1) <= 0);
	CHECK_INT_EQ(get("GET", "/v1/tunnels"), 200);
	CHECK_STR_CONTAINS(body, "\"count\":2,");
	CHECK(!strstr(body, "\"conn_id\":\"t1\""));
	/* Two tunnels with one id (overlapping container networks): neither is reset on a guess. */
	snprintf(tuns[2].id, sizeof(tuns[2].id), "t0");
	CHECK_INT_EQ(get("POST", "/v1/tunnels/t0/close"), 409);
	CHECK_STR_CONTAINS(body, "2 open tunnels have the id t0");
	snprintf(tuns[2].id, sizeof(tuns[2].id), "t2");
	CHECK_INT_EQ(get("GET", "/v1/tunnels"), 200);
	CHECK_STR_CONTAINS(body, "\"count\":2,");

	CHECK_INT_EQ(get("POST", "/v1/reload"), 200);
	CHECK_STR_EQ(body, "{\"ok\":true}\n");
	CHECK_INT_EQ(get("POST", "/v1/reload"), 409);
	CHECK_STR_EQ(body, "{\"ok\":false,\"error\":\"x.yaml:3: key 'k': bad\"}\n");
	CHECK_INT_EQ(get("GET", "/v1/nope"), 404);
	return NULL;
}

static uint64_t wait_until;

/* Stops the loop once every relay ended (or at wait_until). */
static void wait_done(struct loop_timer *t, void *arg)
{
	if (!admin_tunnel_count(adm) || loop_now_ms() > wait_until)
		loop_stop(arg);
	else
		loop_timer_arm(t, 10);
}

int main(void)
{
	struct loop *l = loop_new();
	char tmpl[] = "/tmp/ntun-admin-XXXXXX", err[256];

	CHECK(mkdtemp(tmpl));
	snprintf(sock_path, sizeof(sock_path), "%s/a.sock", tmpl);
	adm = admin_new(l, sock_path, "server", "spiffe://t/server/s", reload, NULL, err,
			sizeof(err));
	CHECK(adm);
	if (!adm)
		return check_done("test_admin");
	admin_set_ops(adm, &ops, NULL);
	for (int i = 0; i < NT; i++) {
		int a[2], b[2];
		struct relay *r;

		/* The relay's ends are non-blocking, like every socket it is given. */
		CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, a) == 0);
		CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, b) == 0);
		fcntl(a[0], F_SETFL, O_NONBLOCK);
		fcntl(b[0], F_SETFL, O_NONBLOCK);
		snprintf(tuns[i].id, sizeof(tuns[i].id), "t%d", i);
		tuns[i].app = a[1];
		tuns[i].site = b[1];
		r = relay_new(l, relay_sock_end(l, a[0], false, 0),
			      relay_sock_end(l, b[0], false, 0), 0, tun_done, &tuns[i]);
		CHECK(r);
		admin_tunnel_add(adm, &tuns[i].at, r);
	}
	CHECK_INT_EQ(admin_tunnel_count(adm), NT);
	httpc_run(l, client, NULL);
	CHECK(tuns[1].done && !tuns[0].done && !tuns[2].done);
	/* The rest end as their apps close. */
	for (int i = 0; i < NT; i++) {
		close(tuns[i].app);
		close(tuns[i].site);
	}
	{
		struct loop_timer *t = loop_timer_new(l, wait_done, l);

		wait_until = loop_now_ms() + 5000;
		loop_timer_arm(t, 10);
		loop_run(l);
		loop_timer_free(t);
	}
	CHECK_INT_EQ(admin_tunnel_count(adm), 0);
	admin_free(adm);
	loop_free(l);
	rmdir(tmpl);
	return check_done("test_admin");
}
