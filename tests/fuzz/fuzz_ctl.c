// SPDX-License-Identifier: MIT
/* Fuzzes grpc_ctl_decode for ClientEvent, ServerEvent and ProxyEvent: bounded strings and lists
 * on success, nothing held on failure, and what decodes re-encodes to the same message. */
#include <errno.h>
#include <string.h>

#include "buf.h"
#include "fuzz.h"
#include "grpc.h"

static bool terminated(const char *s, size_t size)
{
	return memchr(s, 0, size) != NULL;
}

static void check_bounds(const struct ctl_msg *m)
{
	FUZZ_CHECK(terminated(m->id, sizeof(m->id)));
	FUZZ_CHECK(terminated(m->version, sizeof(m->version)));
	FUZZ_CHECK(terminated(m->reason, sizeof(m->reason)));
	FUZZ_CHECK(m->n_cidrs <= CTL_MAX_LIST && m->n_virt <= CTL_MAX_LIST);
	FUZZ_CHECK(m->n_routes <= CTL_MAX_LIST);
	FUZZ_CHECK(!m->n_cidrs || m->cidrs);
	FUZZ_CHECK(!m->n_virt || m->virt);
	FUZZ_CHECK(!m->n_routes || m->routes);
	for (size_t i = 0; i < m->n_cidrs; i++)
		FUZZ_CHECK(terminated(m->cidrs[i], CTL_CIDR_LEN));
	for (size_t i = 0; i < m->n_virt; i++)
		FUZZ_CHECK(terminated(m->virt[i], CTL_CIDR_LEN));
	for (size_t i = 0; i < m->n_routes; i++) {
		FUZZ_CHECK(terminated(m->routes[i].virt, CTL_CIDR_LEN));
		FUZZ_CHECK(terminated(m->routes[i].real, CTL_CIDR_LEN));
		FUZZ_CHECK(terminated(m->routes[i].proxy_id, sizeof(m->routes[i].proxy_id)));
	}
}

static void check_same(const struct ctl_msg *a, const struct ctl_msg *b)
{
	FUZZ_CHECK(a->kind == b->kind);
	FUZZ_CHECK(!strcmp(a->id, b->id) && !strcmp(a->version, b->version));
	FUZZ_CHECK(!strcmp(a->reason, b->reason));
	FUZZ_CHECK(a->deadline_ms == b->deadline_ms && a->capacity == b->capacity);
	FUZZ_CHECK(a->n_cidrs == b->n_cidrs && a->n_virt == b->n_virt);
	FUZZ_CHECK(a->n_routes == b->n_routes);
	for (size_t i = 0; i < a->n_cidrs; i++)
		FUZZ_CHECK(!strcmp(a->cidrs[i], b->cidrs[i]));
	for (size_t i = 0; i < a->n_virt; i++)
		FUZZ_CHECK(!strcmp(a->virt[i], b->virt[i]));
	for (size_t i = 0; i < a->n_routes; i++) {
		FUZZ_CHECK(!strcmp(a->routes[i].virt, b->routes[i].virt));
		FUZZ_CHECK(!strcmp(a->routes[i].real, b->routes[i].real));
		FUZZ_CHECK(!strcmp(a->routes[i].proxy_id, b->routes[i].proxy_id));
	}
}

static bool kind_of(enum ctl_family f, enum ctl_kind k)
{
	switch (f) {
	case CTL_CLIENT_EVENT:
		return k == CTL_CLIENT_HELLO;
	case CTL_SERVER_EVENT:
		return k == CTL_SERVER_HELLO || k == CTL_ROUTES || k == CTL_DRAIN;
	case CTL_PROXY_EVENT:
		return k == CTL_REGISTER || k == CTL_DRAIN;
	}
	return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const enum ctl_family fams[] = {CTL_CLIENT_EVENT, CTL_SERVER_EVENT, CTL_PROXY_EVENT};
	static const struct ctl_msg zero;

	for (size_t i = 0; i < 3; i++) {
		struct ctl_msg m, again;
		struct buf out = BUF_INIT;
		int rv;

		memset(&m, 0x5a, sizeof(m));
		rv = grpc_ctl_decode(fams[i], data, size, &m);
		FUZZ_CHECK(rv == 0 || rv == -EPROTO || rv == -ENOMEM);
		if (rv < 0) {
			FUZZ_CHECK(!memcmp(&m, &zero, sizeof(m)));
			continue;
		}
		FUZZ_CHECK(kind_of(fams[i], m.kind));
		check_bounds(&m);
		FUZZ_CHECK(grpc_ctl_encode(fams[i], &m, &out) == 0);
		rv = grpc_ctl_decode(fams[i], buf_head(&out), buf_len(&out), &again);
		FUZZ_CHECK(rv == 0);
		check_same(&m, &again);
		grpc_ctl_release(&again);
		grpc_ctl_release(&m);
		buf_release(&out);
	}
	return 0;
}
