// SPDX-License-Identifier: MIT
/* The control-plane messages of the gRPC layer, between protobuf-c's generated structs and
 * plain fixed-size structs, so nothing outside this layer sees protobuf-c. Validates lengths
 * and counts; meaning (is this CIDR valid, may this proxy register it) is the caller's. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "grpc.h"
#include "ntun.pb-c.h"

static int copy_str(char *dst, size_t size, const char *src)
{
	size_t n = src ? strlen(src) : 0;

	if (n >= size)
		return -EPROTO;
	memcpy(dst, src ? src : "", n + 1);
	return 0;
}

static int copy_list(char (**dst)[CTL_CIDR_LEN], size_t *n, char **src, size_t count)
{
	if (count > CTL_MAX_LIST)
		return -EPROTO;
	*n = 0;
	if (!count)
		return 0;
	*dst = calloc(count, CTL_CIDR_LEN);
	if (!*dst)
		return -ENOMEM;
	for (size_t i = 0; i < count; i++)
		if (copy_str((*dst)[i], CTL_CIDR_LEN, src[i]) < 0)
			return -EPROTO;
	*n = count;
	return 0;
}

static int pack(const ProtobufCMessage *msg, struct buf *out)
{
	size_t n = protobuf_c_message_get_packed_size(msg);
	uint8_t *p = buf_reserve(out, n ? n : 1);

	if (!p)
		return -ENOMEM;
	buf_commit(out, protobuf_c_message_pack(msg, p));
	return 0;
}

int grpc_ctl_encode(enum ctl_family f, const struct ctl_msg *m, struct buf *out)
{
	char *cidrs[CTL_MAX_LIST], *virt[CTL_MAX_LIST];
	Ntun__V1__Drain drain = NTUN__V1__DRAIN__INIT;
	int rv = -EINVAL;

	if (m->n_cidrs > CTL_MAX_LIST || m->n_virt > CTL_MAX_LIST || m->n_routes > CTL_MAX_LIST)
		return -EINVAL;
	for (size_t i = 0; i < m->n_cidrs; i++)
		cidrs[i] = m->cidrs[i];
	for (size_t i = 0; i < m->n_virt; i++)
		virt[i] = m->virt[i];
	drain.deadline_ms = m->deadline_ms;
	drain.reason = (char *)m->reason;
	drain.refusal = m->refusal;

	if (f == CTL_CLIENT_EVENT && m->kind == CTL_CLIENT_HELLO) {
		Ntun__V1__ClientEvent ev = NTUN__V1__CLIENT_EVENT__INIT;
		Ntun__V1__ClientHello h = NTUN__V1__CLIENT_HELLO__INIT;

		h.client_id = (char *)m->id;
		h.version = (char *)m->version;
		h.n_cidrs = m->n_cidrs;
		h.cidrs = cidrs;
		ev.kind_case = NTUN__V1__CLIENT_EVENT__KIND_HELLO;
		ev.hello = &h;
		rv = pack(&ev.base, out);
	} else if (f == CTL_SERVER_EVENT) {
		Ntun__V1__ServerEvent ev = NTUN__V1__SERVER_EVENT__INIT;
		Ntun__V1__ServerHello h = NTUN__V1__SERVER_HELLO__INIT;
		Ntun__V1__RouteSet rs = NTUN__V1__ROUTE_SET__INIT;
		Ntun__V1__Route *rp = NULL, **rpp = NULL;

		switch (m->kind) {
		case CTL_SERVER_HELLO:
			h.server_id = (char *)m->id;
			h.version = (char *)m->version;
			ev.kind_case = NTUN__V1__SERVER_EVENT__KIND_HELLO;
			ev.hello = &h;
			break;
		case CTL_ROUTES:
			if (m->n_routes) {
				rp = calloc(m->n_routes, sizeof(*rp));
				rpp = calloc(m->n_routes, sizeof(*rpp));
				if (!rp || !rpp) {
					free(rp);
					free(rpp);
					return -ENOMEM;
				}
			}
			for (size_t i = 0; i < m->n_routes; i++) {
				ntun__v1__route__init(&rp[i]);
				rp[i].virtual_cidr = m->routes[i].virt;
				rp[i].real_cidr = m->routes[i].real;
				rp[i].proxy_id = m->routes[i].proxy_id;
				rpp[i] = &rp[i];
			}
			rs.n_routes = m->n_routes;
			rs.routes = rpp;
			ev.kind_case = NTUN__V1__SERVER_EVENT__KIND_ROUTES;
			ev.routes = &rs;
			break;
		case CTL_DRAIN:
			ev.kind_case = NTUN__V1__SERVER_EVENT__KIND_DRAIN;
			ev.drain = &drain;
			break;
		default:
			return -EINVAL;
		}
		rv = pack(&ev.base, out);
		free(rp);
		free(rpp);
	} else if (f == CTL_PROXY_EVENT) {
		Ntun__V1__ProxyEvent ev = NTUN__V1__PROXY_EVENT__INIT;
		Ntun__V1__Registration r = NTUN__V1__REGISTRATION__INIT;

		if (m->kind == CTL_REGISTER) {
			r.proxy_id = (char *)m->id;
			r.n_managed_cidr = m->n_cidrs;
			r.managed_cidr = cidrs;
			r.n_virtual_cidr = m->n_virt;
			r.virtual_cidr = virt;
			r.capacity = m->capacity;
			r.version = (char *)m->version;
			ev.kind_case = NTUN__V1__PROXY_EVENT__KIND_REGISTER;
			ev.register_ = &r;
		} else if (m->kind == CTL_DRAIN) {
			ev.kind_case = NTUN__V1__PROXY_EVENT__KIND_DRAIN;
			ev.drain = &drain;
		} else {
			return -EINVAL;
		}
		rv = pack(&ev.base, out);
	}
	return rv;
}

static int decode_drain(const Ntun__V1__Drain *d, struct ctl_msg *m)
{
	m->kind = CTL_DRAIN;
	m->deadline_ms = d->deadline_ms;
	m->refusal = d->refusal;
	return copy_str(m->reason, sizeof(m->reason), d->reason);
}

int grpc_ctl_decode(enum ctl_family f, const uint8_t *p, size_t n, struct ctl_msg *m)
{
	int rv = -EPROTO;

	memset(m, 0, sizeof(*m));
	if (f == CTL_CLIENT_EVENT) {
		Ntun__V1__ClientEvent *ev = ntun__v1__client_event__unpack(NULL, n, p);

		if (!ev)
			return -EPROTO;
		if (ev->kind_case == NTUN__V1__CLIENT_EVENT__KIND_HELLO) {
			m->kind = CTL_CLIENT_HELLO;
			rv = copy_str(m->id, sizeof(m->id), ev->hello->client_id);
			if (!rv)
				rv = copy_str(m->version, sizeof(m->version), ev->hello->version);
			if (!rv)
				rv = copy_list(&m->cidrs, &m->n_cidrs, ev->hello->cidrs,
					       ev->hello->n_cidrs);
		}
		ntun__v1__client_event__free_unpacked(ev, NULL);
	} else if (f == CTL_SERVER_EVENT) {
		Ntun__V1__ServerEvent *ev = ntun__v1__server_event__unpack(NULL, n, p);

		if (!ev)
			return -EPROTO;
		switch (ev->kind_case) {
		case NTUN__V1__SERVER_EVENT__KIND_HELLO:
			m->kind = CTL_SERVER_HELLO;
			rv = copy_str(m->id, sizeof(m->id), ev->hello->server_id);
			if (!rv)
				rv = copy_str(m->version, sizeof(m->version), ev->hello->version);
			break;
		case NTUN__V1__SERVER_EVENT__KIND_ROUTES:
			m->kind = CTL_ROUTES;
			rv = 0;
			if (ev->routes->n_routes > CTL_MAX_LIST) {
				rv = -EPROTO;
				break;
			}
			if (ev->routes->n_routes) {
				m->routes = calloc(ev->routes->n_routes, sizeof(*m->routes));
				if (!m->routes) {
					rv = -ENOMEM;
					break;
				}
			}
			for (size_t i = 0; i < ev->routes->n_routes && !rv; i++) {
				const Ntun__V1__Route *r = ev->routes->routes[i];

				rv = copy_str(m->routes[i].virt, CTL_CIDR_LEN, r->virtual_cidr);
				if (!rv)
					rv = copy_str(m->routes[i].real, CTL_CIDR_LEN,
						      r->real_cidr);
				if (!rv)
					rv = copy_str(m->routes[i].proxy_id,
						      sizeof(m->routes[i].proxy_id), r->proxy_id);
				m->n_routes = i + 1;
			}
			break;
		case NTUN__V1__SERVER_EVENT__KIND_DRAIN:
			rv = decode_drain(ev->drain, m);
			break;
		default:
			break;
		}
		ntun__v1__server_event__free_unpacked(ev, NULL);
	} else {
		Ntun__V1__ProxyEvent *ev = ntun__v1__proxy_event__unpack(NULL, n, p);

		if (!ev)
			return -EPROTO;
		if (ev->kind_case == NTUN__V1__PROXY_EVENT__KIND_REGISTER) {
			const Ntun__V1__Registration *r = ev->register_;

			m->kind = CTL_REGISTER;
			m->capacity = r->capacity;
			rv = copy_str(m->id, sizeof(m->id), r->proxy_id);
			if (!rv)
				rv = copy_str(m->version, sizeof(m->version), r->version);
			if (!rv)
				rv = copy_list(&m->cidrs, &m->n_cidrs, r->managed_cidr,
					       r->n_managed_cidr);
			if (!rv)
				rv = copy_list(&m->virt, &m->n_virt, r->virtual_cidr,
					       r->n_virtual_cidr);
		} else if (ev->kind_case == NTUN__V1__PROXY_EVENT__KIND_DRAIN) {
			rv = decode_drain(ev->drain, m);
		}
		ntun__v1__proxy_event__free_unpacked(ev, NULL);
	}
	if (rv < 0)
		grpc_ctl_release(m);
	return rv;
}

void grpc_ctl_release(struct ctl_msg *m)
{
	free(m->cidrs);
	free(m->virt);
	free(m->routes);
	memset(m, 0, sizeof(*m));
}
