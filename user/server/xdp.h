/* SPDX-License-Identifier: MIT */
/* The relay's XDP guard (bpf/xdp_guard.bpf.c): loads and attaches it with libxdp on one
 * interface, pins its maps for bpftool, exports its counters, detaches it at exit. The only
 * code of the server that uses libxdp and libbpf. */
#ifndef NTUN_XDP_H
#define NTUN_XDP_H

#include <stddef.h>
#include <stdint.h>

struct config;
struct metrics;
struct xdp_guard;

/* Loads the guard for the listener at addr:port (host order; addr 0 = every address) with
 * cfg's allow_from, xdp.* and instance, and attaches it to cfg->xdp_interface: through
 * libxdp's dispatcher when the kernel allows it, else as the interface's only program; in
 * xdp.mode auto natively, else generic. A guard left attached by a daemon of the same
 * instance that died (identified by its pinned program) is replaced; any other program on
 * the interface is left alone and the start fails. Pins the maps (and the program) under
 * /sys/fs/bpf/ntun/server[-<instance>]/, mounting bpffs if needed. Needs CAP_NET_ADMIN,
 * CAP_SYS_ADMIN (or CAP_BPF). Returns the guard, or NULL with errno set and the reason in
 * err. */
struct xdp_guard *xdp_guard_new(const struct config *cfg, uint32_t addr, uint16_t port, char *err,
				size_t errsz);

/* Registers ntun_xdp_packets_total{verdict,reason} (summed over CPUs at scrape time) in m.
 * g and m stay owned by the caller; g must outlive m's scrapes. */
void xdp_guard_metrics(struct xdp_guard *g, struct metrics *m);

/* The capabilities (DAEMON_CAP() bits) xdp_guard_free needs: CAP_NET_ADMIN, and
 * CAP_SYS_ADMIN too when the guard is behind libxdp's dispatcher. 0 for a NULL g. */
uint64_t xdp_guard_exit_caps(const struct xdp_guard *g);

/* Detaches the program (xdp_guard_exit_caps() must be effective), removes the pins
 * and frees g. Returns 0, or -errno if the program could not be detached (then it stays
 * attached, its pins are kept so that the next start replaces it, and the reason is logged).
 * A NULL g is a no-op returning 0. */
int xdp_guard_free(struct xdp_guard *g);

#endif
