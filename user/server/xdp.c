// SPDX-License-Identifier: MIT
/* The XDP guard's user side: pin directory, leftover replacement, load and attach through
 * libxdp (dispatcher, else the interface's only program; native, else generic), the maps'
 * contents and pins, counters for /metrics, detach. Decides nothing per packet. */
#include "xdp.h"

#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <linux/capability.h>
#include <linux/if_link.h>
#include <linux/magic.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <xdp/libxdp.h>

#include "config.h"
#include "daemon.h"
#include "log.h"
#include "metrics.h"
#include "route.h"
#include "ntun_bpf_abi.h"
#include "xdp_guard.skel.h"

#define BPFFS_DIR "/sys/fs/bpf"
#define PIN_ROOT  BPFFS_DIR "/ntun"
#define N_MAPS	  4
/* "/sys/fs/bpf/ntun/server-" + an instance (an id: at most 63 characters) + "/" + a pin name
 * (at most 15): every pin path fits. */
#define PIN_PATH_MAX 128

/* One /metrics series: a field of struct ntun_xdp_stats. */
struct xdp_series {
	struct xdp_guard *g;
	size_t off;
	const char *name;
};

struct xdp_guard {
	struct xdp_guard_bpf *skel;
	struct xdp_program *prog;
	enum xdp_attach_mode mode;
	bool legacy; /* the interface's only program, not behind libxdp's dispatcher */
	int ifindex;
	char ifname[IF_NAMESIZE];
	char pin_dir[PIN_PATH_MAX - 16];
	int pin_fd; /* flock()ed while the guard lives; -1 if none */
	int ncpus;
	struct xdp_series series[5];
};

static const char *const map_pins[N_MAPS] = {NTUN_XDP_CFG, NTUN_XDP_ALLOW, NTUN_XDP_SRC,
					     NTUN_XDP_STATS};

/* The pin of name in the guard's directory, in buf[PIN_PATH_MAX]. */
static char *pin_path(const struct xdp_guard *g, const char *name, char *buf)
{
	snprintf(buf, PIN_PATH_MAX, "%s/%s", g->pin_dir, name);
	return buf;
}

/* libxdp's last word on why its dispatcher could not be used, for our attach line. */
static char dispatcher_why[160];

/* libbpf's and libxdp's lines at debug only: a dispatcher that cannot load here is expected
 * and reported in one line of ours, as is any final failure. */
static int __attribute__((format(printf, 1, 0))) lib_vlog(const char *fmt, va_list ap)
{
	char msg[1024];
	size_t n;

	vsnprintf(msg, sizeof(msg), fmt, ap);
	n = strlen(msg);
	while (n && msg[n - 1] == '\n')
		msg[--n] = '\0';
	if (strstr(msg, "dispatcher") && strstr(msg, "failed"))
		snprintf(dispatcher_why, sizeof(dispatcher_why), "%s", msg);
	if (n && log_enabled(LOG_LVL_DEBUG))
		log_write(LOG_LVL_DEBUG, NULL, NULL, "%s", msg);
	return 0;
}

static int __attribute__((format(printf, 2, 0)))
libbpf_log(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	return level == LIBBPF_DEBUG ? 0 : lib_vlog(fmt, ap);
}

static int __attribute__((format(printf, 2, 0)))
libxdp_log(enum libxdp_print_level level, const char *fmt, va_list ap)
{
	return level == LIBXDP_DEBUG ? 0 : lib_vlog(fmt, ap);
}

static const char *mode_name(enum xdp_attach_mode m)
{
	return m == XDP_MODE_NATIVE ? "native" : m == XDP_MODE_SKB ? "generic" : "unknown";
}

static int bpffs_ensure(void)
{
	struct statfs st;

	if (!statfs(BPFFS_DIR, &st) && st.f_type == BPF_FS_MAGIC)
		return 0;
	if (mount("bpf", BPFFS_DIR, "bpf", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=0700"))
		return -errno;
	log_info("xdp: mounted bpffs on %s", BPFFS_DIR);
	return 0;
}

static void pins_remove(struct xdp_guard *g)
{
	char path[PIN_PATH_MAX];

	for (size_t i = 0; i < N_MAPS; i++)
		unlink(pin_path(g, map_pins[i], path));
	unlink(pin_path(g, NTUN_XDP_PROG, path));
}

/* Creates and locks the pin directory: a live daemon of the instance holds the lock, so what
 * is pinned there without one was left by a daemon that died. */
static int pin_dir_lock(struct xdp_guard *g, const char *instance, char *err, size_t errsz)
{
	bool dflt = !instance || !strcmp(instance, "default");
	int rv;

	if (!dflt && strlen(instance) > 63) {
		snprintf(err, errsz, "instance name too long");
		return -ENAMETOOLONG;
	}
	snprintf(g->pin_dir, sizeof(g->pin_dir), "%s/server%s%s", PIN_ROOT, dflt ? "" : "-",
		 dflt ? "" : instance);
	rv = bpffs_ensure();
	if (rv < 0) {
		snprintf(err, errsz, "mounting bpffs on %s: %s", BPFFS_DIR, strerror(-rv));
		return rv;
	}
	if ((mkdir(PIN_ROOT, 0700) && errno != EEXIST) ||
	    (mkdir(g->pin_dir, 0700) && errno != EEXIST)) {
		rv = -errno;
		snprintf(err, errsz, "mkdir %s: %s", g->pin_dir, strerror(errno));
		return rv;
	}
	g->pin_fd = open(g->pin_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (g->pin_fd < 0) {
		rv = -errno;
		snprintf(err, errsz, "open %s: %s", g->pin_dir, strerror(errno));
		return rv;
	}
	if (flock(g->pin_fd, LOCK_EX | LOCK_NB)) {
		rv = errno == EWOULDBLOCK ? -EBUSY : -errno;
		snprintf(err, errsz, "%s is locked by another ntun-server of this instance",
			 g->pin_dir);
		close(g->pin_fd);
		g->pin_fd = -1;
		return rv;
	}
	return 0;
}

static void pin_dir_release(struct xdp_guard *g)
{
	if (g->pin_fd < 0)
		return;
	pins_remove(g);
	if (rmdir(g->pin_dir) && errno != ENOENT)
		log_warn("xdp: rmdir %s: %s", g->pin_dir, strerror(errno));
	rmdir(PIN_ROOT); /* fails while other daemons pin there: fine */
	close(g->pin_fd);
	g->pin_fd = -1;
}

/* A guard pinned here was left by a daemon of this instance that died: detach it if it is
 * still on our interface, then drop its pins. */
static void leftover_replace(struct xdp_guard *g)
{
	struct xdp_program *old;
	enum xdp_attach_mode am;
	char path[PIN_PATH_MAX];
	int rv;

	if (access(pin_path(g, NTUN_XDP_PROG, path), F_OK))
		goto out;
	old = xdp_program__from_pin(path);
	if (libxdp_get_error(old)) {
		log_warn("xdp: cannot open the pinned guard %s: %s", path,
			 strerror((int)-libxdp_get_error(old)));
		goto out;
	}
	am = xdp_program__is_attached(old, g->ifindex);
	if (am != XDP_MODE_UNSPEC) {
		rv = xdp_program__detach(old, g->ifindex, am, 0);
		if (rv < 0)
			log_warn(
				"xdp: cannot detach the guard (prog id %u) a previous daemon left on "
				"%s: %s",
				xdp_program__id(old), g->ifname, strerror(-rv));
		else
			log_info("xdp: detached the guard (prog id %u, %s mode) a previous daemon "
				 "left on %s",
				 xdp_program__id(old), mode_name(am), g->ifname);
	}
	xdp_program__close(old);
out:
	pins_remove(g);
}

static void attempt_free(struct xdp_guard *g)
{
	xdp_program__close(g->prog);
	g->prog = NULL;
	xdp_guard_bpf__destroy(g->skel);
	g->skel = NULL;
}

/* One try at loading and attaching in mode. libxdp cannot load an object twice, so every try
 * opens the skeleton afresh. */
static int attach_once(struct xdp_guard *g, enum xdp_attach_mode mode)
{
	DECLARE_LIBXDP_OPTS(xdp_program_opts, po);
	int rv;

	g->skel = xdp_guard_bpf__open();
	if (!g->skel)
		return -errno;
	po.obj = g->skel->obj;
	po.prog_name = NTUN_XDP_PROG;
	g->prog = xdp_program__create(&po);
	rv = (int)libxdp_get_error(g->prog);
	if (rv) {
		g->prog = NULL;
		goto err;
	}
	rv = xdp_program__attach(g->prog, g->ifindex, mode, 0);
	if (rv < 0)
		goto err;
	g->mode = mode;
	return 0;
err:
	attempt_free(g);
	return rv;
}

/* Through libxdp's dispatcher first (other programs can share the interface), where the
 * kernel refuses it (freplace loads fail with EPERM on some kernels) as the only program: the
 * same fallback libxdp makes, forced with its LIBXDP_SKIP_DISPATCHER. An operator's own
 * LIBXDP_SKIP_DISPATCHER=1 skips the first round. */
static int attach(struct xdp_guard *g, enum config_xdp_mode cm, char *err, size_t errsz)
{
	static const enum xdp_attach_mode native_first[] = {XDP_MODE_NATIVE, XDP_MODE_SKB};
	const enum xdp_attach_mode *modes = native_first;
	size_t n_modes = 2;
	const char *skip = getenv("LIBXDP_SKIP_DISPATCHER");
	char why[2][160] = {"", ""};
	struct xdp_multiprog *mp;
	int rv = -EINVAL;
	bool legacy;

	dispatcher_why[0] = '\0';
	if (cm == CONFIG_XDP_NATIVE || cm == CONFIG_XDP_GENERIC) {
		modes = cm == CONFIG_XDP_NATIVE ? &native_first[0] : &native_first[1];
		n_modes = 1;
	}
	for (int round = skip && !strcmp(skip, "1") ? 1 : 0; round < 2; round++) {
		if (round == 1 && setenv("LIBXDP_SKIP_DISPATCHER", "1", 1)) {
			rv = -errno;
			snprintf(err, errsz, "setenv: %s", strerror(errno));
			goto out;
		}
		for (size_t i = 0; i < n_modes; i++) {
			rv = attach_once(g, modes[i]);
			if (!rv)
				goto done;
			snprintf(why[round] + strlen(why[round]),
				 sizeof(why[round]) - strlen(why[round]), "%s%s: %s", i ? ", " : "",
				 mode_name(modes[i]), strerror(-rv));
		}
	}
	snprintf(err, errsz, "attaching to %s failed (with libxdp's dispatcher: %s; alone: %s)",
		 g->ifname, why[0][0] ? why[0] : "skipped", why[1]);
	goto out;
done:
	mp = xdp_multiprog__get_from_ifindex(g->ifindex);
	legacy = libxdp_get_error(mp) || xdp_multiprog__is_legacy(mp);
	g->legacy = legacy;

	if (legacy && !dispatcher_why[0])
		snprintf(dispatcher_why, sizeof(dispatcher_why), "%s",
			 why[0][0] ? why[0] : "LIBXDP_SKIP_DISPATCHER=1");
	log_info("xdp: guard (prog id %u) attached to %s in %s mode %s%s%s%s",
		 xdp_program__id(g->prog), g->ifname, mode_name(g->mode),
		 legacy ? "as the interface's only program" : "through libxdp's dispatcher",
		 legacy ? " (no dispatcher: " : "", legacy ? dispatcher_why : "",
		 legacy ? ")" : "");
	if (!libxdp_get_error(mp))
		xdp_multiprog__close(mp);
out:
	if (skip)
		setenv("LIBXDP_SKIP_DISPATCHER", skip, 1);
	else
		unsetenv("LIBXDP_SKIP_DISPATCHER");
	return rv;
}

/* Writes allow_from, then the configuration that turns the program on (until then it passes
 * everything: the listen port is 0). */
static int maps_fill(struct xdp_guard *g, const struct config *cfg, uint32_t addr, uint16_t port)
{
	struct ntun_xdp_cfg c = {.port = port};
	struct ntun_cidr_val v = {0};
	uint32_t be = htonl(addr), zero = 0;

	for (size_t i = 0; i < cfg->n_allow_from; i++) {
		struct ntun_cidr_key k = {.prefixlen = cfg->allow_from[i].len};
		uint32_t a = htonl(cfg->allow_from[i].addr);

		memcpy(k.addr, &a, sizeof(k.addr));
		if (bpf_map__update_elem(g->skel->maps.ntun_xdp_allow, &k, sizeof(k), &v, sizeof(v),
					 BPF_ANY))
			return -errno;
	}
	memcpy(c.addr, &be, sizeof(c.addr));
	if (cfg->n_allow_from)
		c.flags |= NTUN_XDP_F_ALLOW;
	if (cfg->xdp_syn_rate) {
		c.syn_gap_ns = 1000000000ull / cfg->xdp_syn_rate;
		c.syn_burst_ns = (uint64_t)cfg->xdp_syn_burst * c.syn_gap_ns;
	}
	if (bpf_map__update_elem(g->skel->maps.ntun_xdp_cfg, &zero, sizeof(zero), &c, sizeof(c),
				 BPF_ANY))
		return -errno;
	return 0;
}

static int pins_make(struct xdp_guard *g, char *err, size_t errsz)
{
	struct bpf_map *maps[N_MAPS] = {g->skel->maps.ntun_xdp_cfg, g->skel->maps.ntun_xdp_allow,
					g->skel->maps.ntun_xdp_src, g->skel->maps.ntun_xdp_stats};
	char path[PIN_PATH_MAX];
	int rv;

	for (size_t i = 0; i < N_MAPS; i++) {
		rv = bpf_map__pin(maps[i], pin_path(g, map_pins[i], path));
		if (rv < 0) {
			snprintf(err, errsz, "pinning %s: %s", path, strerror(-rv));
			return rv;
		}
	}
	rv = xdp_program__pin(g->prog, pin_path(g, NTUN_XDP_PROG, path));
	if (rv < 0)
		snprintf(err, errsz, "pinning %s: %s", path, strerror(-rv));
	return rv;
}

struct xdp_guard *xdp_guard_new(const struct config *cfg, uint32_t addr, uint16_t port, char *err,
				size_t errsz)
{
	struct xdp_guard *g = calloc(1, sizeof(*g));
	int rv;

	if (!g) {
		snprintf(err, errsz, "out of memory");
		return NULL;
	}
	g->pin_fd = -1;
	libbpf_set_print(libbpf_log);
	libxdp_set_print(libxdp_log);
	snprintf(g->ifname, sizeof(g->ifname), "%s", cfg->xdp_interface);
	g->ifindex = (int)if_nametoindex(g->ifname);
	if (!g->ifindex) {
		rv = -errno;
		snprintf(err, errsz, "interface %s: %s", g->ifname, strerror(errno));
		goto err;
	}
	g->ncpus = libbpf_num_possible_cpus();
	if (g->ncpus <= 0) {
		rv = g->ncpus ? g->ncpus : -EINVAL;
		snprintf(err, errsz, "cannot count the CPUs: %s", strerror(-rv));
		goto err;
	}
	rv = pin_dir_lock(g, cfg->instance, err, errsz);
	if (rv < 0)
		goto err;
	leftover_replace(g);
	rv = attach(g, cfg->xdp_mode, err, errsz);
	if (rv < 0)
		goto err;
	rv = maps_fill(g, cfg, addr, port);
	if (rv < 0) {
		snprintf(err, errsz, "writing the guard's maps: %s", strerror(-rv));
		goto err;
	}
	rv = pins_make(g, err, errsz);
	if (rv < 0)
		goto err;
	log_info("xdp: guarding port %u on %s: %zu allow_from prefix(es), %u SYN/s per source "
		 "after a burst of %u; counters pinned in %s",
		 port, g->ifname, cfg->n_allow_from, cfg->xdp_syn_rate, cfg->xdp_syn_burst,
		 g->pin_dir);
	return g;
err:
	xdp_guard_free(g);
	errno = -rv;
	return NULL;
}

static uint64_t m_series(void *arg)
{
	struct xdp_series *s = arg;
	struct xdp_guard *g = s->g;
	struct ntun_xdp_stats *v;
	uint32_t zero = 0;
	uint64_t sum = 0;
	size_t sz = sizeof(*v) * (size_t)g->ncpus;

	v = malloc(sz);
	if (!v)
		return 0;
	if (!bpf_map__lookup_elem(g->skel->maps.ntun_xdp_stats, &zero, sizeof(zero), v, sz, 0))
		for (int i = 0; i < g->ncpus; i++)
			sum += *(const uint64_t *)((const char *)&v[i] + s->off);
	free(v);
	return sum;
}

void xdp_guard_metrics(struct xdp_guard *g, struct metrics *m)
{
	static const struct {
		size_t off;
		const char *name;
	} defs[] = {
		{offsetof(struct ntun_xdp_stats, pass_syn),
		 "ntun_xdp_packets_total{verdict=\"pass\",reason=\"syn\"}"},
		{offsetof(struct ntun_xdp_stats, pass_other),
		 "ntun_xdp_packets_total{verdict=\"pass\",reason=\"not_syn\"}"},
		{offsetof(struct ntun_xdp_stats, drop_allow),
		 "ntun_xdp_packets_total{verdict=\"drop\",reason=\"allow_from\"}"},
		{offsetof(struct ntun_xdp_stats, drop_rate),
		 "ntun_xdp_packets_total{verdict=\"drop\",reason=\"syn_rate\"}"},
		{offsetof(struct ntun_xdp_stats, drop_frag),
		 "ntun_xdp_packets_total{verdict=\"drop\",reason=\"fragment\"}"},
	};

	for (size_t i = 0; i < sizeof(defs) / sizeof(defs[0]); i++) {
		g->series[i] =
			(struct xdp_series){.g = g, .off = defs[i].off, .name = defs[i].name};
		metrics_add_fn(m, METRICS_COUNTER, defs[i].name,
			       "TCP packets to the listen port the XDP guard passed or dropped",
			       m_series, &g->series[i]);
	}
}

uint64_t xdp_guard_exit_caps(const struct xdp_guard *g)
{
	if (!g)
		return 0;
	return DAEMON_CAP(CAP_NET_ADMIN) | (g->legacy ? 0 : DAEMON_CAP(CAP_SYS_ADMIN));
}

/* Alone on the interface, the program is detached by netlink with our own fd as the one to
 * replace: that needs CAP_NET_ADMIN only, and never removes a program someone attached in
 * its place. libxdp's detach (for the dispatcher) reads the attached programs by id, which
 * needs CAP_SYS_ADMIN as well. */
static int detach(struct xdp_guard *g)
{
	LIBBPF_OPTS(bpf_xdp_attach_opts, ao, .old_prog_fd = xdp_program__fd(g->prog));

	if (!g->legacy)
		return xdp_program__detach(g->prog, g->ifindex, g->mode, 0);
	if (bpf_xdp_detach(g->ifindex,
			   g->mode == XDP_MODE_SKB ? XDP_FLAGS_SKB_MODE : XDP_FLAGS_DRV_MODE, &ao))
		return -errno;
	return 0;
}

int xdp_guard_free(struct xdp_guard *g)
{
	int rv = 0;

	if (!g)
		return 0;
	if (g->prog && g->ifindex) {
		rv = detach(g);
		if (rv < 0)
			log_error(
				"xdp: detaching the guard from %s failed: %s; it stays attached "
				"until the next start replaces it (or: ip link set dev %s xdp off)",
				g->ifname, strerror(-rv), g->ifname);
		else
			log_info("xdp: guard detached from %s", g->ifname);
	}
	/* Kept pins let the next start find the program it must replace. */
	if (rv < 0) {
		if (g->pin_fd >= 0)
			close(g->pin_fd);
	} else {
		pin_dir_release(g);
	}
	attempt_free(g);
	free(g);
	return rv;
}
