// SPDX-License-Identifier: MIT
/* Interception set-up and tear-down: the daemon cgroup, the BPF skeleton (load, attach, pins)
 * or the iptables chain. The only user of libbpf; relays nothing, keeps no per-connection state. */
#include "redirect.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stddef.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <linux/magic.h>
#include <netinet/in.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "log.h"
#include "route.h"
#include "ntun_bpf_abi.h"
#include "redirect.skel.h"

#ifndef SO_ORIGINAL_DST
#define SO_ORIGINAL_DST 80 /* linux/netfilter_ipv4.h */
#endif

_Static_assert(REDIRECT_MARK == NTUN_REDIRECT_MARK, "one mark for both modes");
_Static_assert(sizeof(struct redirect_stats) == sizeof(struct ntun_stats), "stats mirror");

#define BPFFS_DIR    "/sys/fs/bpf"
#define PIN_ROOT     BPFFS_DIR "/ntun"
#define INSTANCE_MAX 23 /* "NTUN-" + instance fits iptables' 28-character chain names */
#define N_LINKS	     7
#define N_TLINKS     5 /* links on the intercepted cgroup: pinned when failing closed */
#define LINK_PREFIX  "link_"

struct redirect {
	int mode; /* REDIRECT_BPF or REDIRECT_IPTABLES */
	char instance[INSTANCE_MAX + 1];
	uint16_t listen_port;
	bool fail_closed;   /* interception outlives the process (pinned links, chain kept) */
	bool set_up;	    /* redirect_new() succeeded: a fail-closed exit keeps everything */
	struct cidr *cidrs; /* owned, normalized, no duplicates */
	size_t n_cidrs;

	char v2root[PATH_MAX];	/* cgroup2 mount point; "" if none */
	char orig_cg[PATH_MAX]; /* where the process came from */
	char self_cg[PATH_MAX]; /* the daemon cgroup we made; "" if none */
	uint64_t self_cgid;
	char target[PATH_MAX]; /* the intercepted subtree (BPF mode) */
	char why[256];	       /* why BPF set-up failed: the first reason, logged once */

	/* BPF mode */
	struct redirect_bpf *skel;
	struct bpf_link *links[N_LINKS];
	struct bpf_link *tlinks[N_TLINKS]; /* those of links[] on the intercepted cgroup */
	const char *tnames[N_TLINKS];	   /* their programs' names */
	char pin_dir[PATH_MAX];
	int pin_fd; /* flock()ed for as long as the instance lives; -1 if none */

	/* iptables mode */
	char chain[INSTANCE_MAX + 6];
	char chain_next[INSTANCE_MAX + 6]; /* built beside the chain, then renamed to it */
	bool chain_made;
	bool chain_stale; /* kept a predecessor's rules: the next set_cidrs rebuilds the chain */
	int lock_fd;	  /* abstract unix socket naming the instance in this netns; -1 if none */
};

/* ---- small helpers ---- */

/* Records why BPF cannot be used (the first reason wins); redirect_new() logs it in one line. */
static void why_set(struct redirect *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void why_set(struct redirect *r, const char *fmt, ...)
{
	va_list ap;

	if (r->why[0])
		return;
	va_start(ap, fmt);
	vsnprintf(r->why, sizeof(r->why), fmt, ap);
	va_end(ap);
}

static int write_file(const char *path, const char *s)
{
	int fd, err = 0;
	size_t len = strlen(s);

	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (write(fd, s, len) != (ssize_t)len)
		err = -errno;
	close(fd);
	return err;
}

static int path_fmt(char *buf, size_t size, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int path_fmt(char *buf, size_t size, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, size, fmt, ap);
	va_end(ap);
	return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

static uint32_t prefix_mask(uint8_t len)
{
	return len ? 0xffffffffu << (32 - len) : 0;
}

static const char *ip_str(uint32_t host_addr, char buf[INET_ADDRSTRLEN])
{
	struct in_addr a = {.s_addr = htonl(host_addr)};

	return inet_ntop(AF_INET, &a, buf, INET_ADDRSTRLEN);
}

static bool cidr_same(const struct cidr *a, const struct cidr *b)
{
	return a->addr == b->addr && a->len == b->len;
}

static bool cidr_in(const struct cidr *set, size_t n, const struct cidr *c)
{
	for (size_t i = 0; i < n; i++) {
		if (cidr_same(&set[i], c))
			return true;
	}
	return false;
}

/* Copies c[0..n) with host bits cleared and duplicates dropped into a new array. */
static int cidrs_normalize(const struct cidr *c, size_t n, struct cidr **out, size_t *n_out)
{
	struct cidr *v;
	size_t k = 0;

	*out = NULL;
	*n_out = 0;
	if (n > NTUN_CIDRS_MAX)
		return -ENOSPC;
	if (!n)
		return 0;
	v = calloc(n, sizeof(*v));
	if (!v)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		struct cidr x;

		if (c[i].len > 32) {
			free(v);
			return -EINVAL;
		}
		x.len = c[i].len;
		x.addr = c[i].addr & prefix_mask(x.len);
		if (!cidr_in(v, k, &x))
			v[k++] = x;
	}
	*out = v;
	*n_out = k;
	return 0;
}

static bool instance_valid(const char *s)
{
	size_t n = strlen(s);

	if (!n || n > INSTANCE_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char ch = s[i];

		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || ch == '_' || ch == '-'))
			return false;
	}
	return true;
}

/* ---- cgroups ---- */

/* Undoes mountinfo's octal escapes (\040 for space...) in place. */
static void unescape_octal(char *s)
{
	char *d = s;

	for (; *s; s++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' &&
		    s[3] >= '0' && s[3] <= '7') {
			*d++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
			s += 3;
		} else {
			*d++ = *s;
		}
	}
	*d = '\0';
}

/* First cgroup2 mount point in mountinfo; if something was mounted over it later, that mount's
 * root wins (what the path actually shows). root (may be NULL) gets the cgroup path the mount
 * point shows, relative to our cgroup namespace. */
static int cgroup2_mount(char *mnt, size_t mnt_size, char *root, size_t root_size)
{
	char line[4096], m_root[PATH_MAX], m_point[PATH_MAX], fstype[64];
	bool found = false;
	FILE *f;
	int err = -ENOENT;

	f = fopen("/proc/self/mountinfo", "re");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		char *sep = strstr(line, " - ");

		if (!sep || sscanf(sep + 3, "%63s", fstype) != 1)
			continue;
		if (sscanf(line, "%*s %*s %*s %4095s %4095s", m_root, m_point) != 2)
			continue;
		unescape_octal(m_root);
		unescape_octal(m_point);
		if (found && strcmp(m_point, mnt))
			continue;
		if (strcmp(fstype, "cgroup2")) {
			if (found) { /* something else mounted over the cgroup2 mount */
				err = -ENOENT;
				found = false;
			}
			continue;
		}
		if (strlen(m_point) >= mnt_size || (root && strlen(m_root) >= root_size)) {
			err = -ENAMETOOLONG;
			break;
		}
		strcpy(mnt, m_point);
		if (root)
			strcpy(root, m_root);
		found = true;
		err = 0;
	}
	fclose(f);
	return err;
}

int redirect_cgroup_root(char *buf, size_t size)
{
	return cgroup2_mount(buf, size, NULL, 0);
}

/* Directory (under the v2 mount) of the cgroup the process is in now, or the mount itself when
 * that cgroup is not visible through it. */
static int current_cgroup_dir(const char *mnt, const char *mnt_root, char *out, size_t size)
{
	char line[PATH_MAX + 8];
	const char *rel = NULL;
	size_t rlen = strlen(mnt_root);
	FILE *f;

	f = fopen("/proc/self/cgroup", "re");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, "0::", 3)) {
			line[strcspn(line, "\n")] = '\0';
			rel = line + 3;
			break;
		}
	}
	fclose(f);
	if (rel && !strcmp(mnt_root, "/"))
		return path_fmt(out, size, "%s%s", mnt, strcmp(rel, "/") ? rel : "");
	if (rel && !strncmp(rel, mnt_root, rlen) && (rel[rlen] == '/' || !rel[rlen]))
		return path_fmt(out, size, "%s%s", mnt, rel + rlen);
	return path_fmt(out, size, "%s", mnt);
}

int redirect_cgroup_id(const char *path, uint64_t *id)
{
	union {
		struct file_handle fh;
		char buf[sizeof(struct file_handle) + 64];
	} h;
	int mount_id;

	memset(&h, 0, sizeof(h));
	h.fh.handle_bytes = 64;
	if (name_to_handle_at(AT_FDCWD, path, &h.fh, &mount_id, 0) < 0)
		return -errno;
	if (h.fh.handle_bytes < sizeof(*id))
		return -EINVAL;
	memcpy(id, h.fh.f_handle, sizeof(*id));
	return 0;
}

static int cgroup_join(const char *dir, pid_t pid)
{
	char path[PATH_MAX], num[32];
	int err;

	err = path_fmt(path, sizeof(path), "%s/cgroup.procs", dir);
	if (err)
		return err;
	snprintf(num, sizeof(num), "%d\n", (int)pid);
	return write_file(path, num);
}

static bool is_cgroup2(const char *path)
{
	struct statfs st;

	return !statfs(path, &st) && st.f_type == CGROUP2_SUPER_MAGIC;
}

/* Removes empty ntun-<instance>-<pid> cgroups left by dead daemons of this instance. */
static void cgroup_remove_stale(const struct redirect *r)
{
	char prefix[64], path[PATH_MAX];
	struct dirent *de;
	size_t plen;
	DIR *d;

	snprintf(prefix, sizeof(prefix), "ntun-%s-", r->instance);
	plen = strlen(prefix);
	d = opendir(r->v2root);
	if (!d)
		return;
	while ((de = readdir(d))) {
		const char *num = de->d_name + plen;
		char *end;
		long pid;

		if (strncmp(de->d_name, prefix, plen) || !*num)
			continue;
		errno = 0;
		pid = strtol(num, &end, 10);
		if (*end || errno || pid <= 0 || pid == getpid())
			continue;
		if (!kill((pid_t)pid, 0) || errno != ESRCH)
			continue;
		if (path_fmt(path, sizeof(path), "%s/%s", r->v2root, de->d_name))
			continue;
		if (!rmdir(path))
			log_info("redirect: removed stale cgroup %s", path);
	}
	closedir(d);
}

/* Creates <v2root>/ntun-<instance>-<pid> and moves the process into it. On failure nothing of
 * it is left and r->why says why. */
static int cgroup_self_enter(struct redirect *r)
{
	char mnt_root[PATH_MAX], path[PATH_MAX];
	int err;

	err = cgroup2_mount(r->v2root, sizeof(r->v2root), mnt_root, sizeof(mnt_root));
	if (err) {
		r->v2root[0] = '\0';
		why_set(r, "no cgroup v2 mount (%s)", strerror(-err));
		return err;
	}
	err = current_cgroup_dir(r->v2root, mnt_root, r->orig_cg, sizeof(r->orig_cg));
	if (err) {
		why_set(r, "finding our cgroup: %s", strerror(-err));
		return err;
	}
	cgroup_remove_stale(r);
	err = path_fmt(path, sizeof(path), "%s/ntun-%s-%d", r->v2root, r->instance, (int)getpid());
	if (err) {
		why_set(r, "cgroup path too long");
		return err;
	}
	if (mkdir(path, 0755) && errno != EEXIST) {
		err = -errno;
		why_set(r, "mkdir %s: %s", path, strerror(-err));
		return err;
	}
	err = redirect_cgroup_id(path, &r->self_cgid);
	if (err)
		why_set(r, "cgroup id of %s: %s", path, strerror(-err));
	if (!err) {
		err = cgroup_join(path, getpid());
		if (err)
			why_set(r, "joining %s: %s", path, strerror(-err));
	}
	if (err) {
		rmdir(path);
		return err;
	}
	strcpy(r->self_cg, path);
	log_debug("redirect: moved into cgroup %s (id %llu) from %s", path,
		  (unsigned long long)r->self_cgid, r->orig_cg);
	return 0;
}

static void cgroup_self_leave(struct redirect *r)
{
	int err;

	if (!r->self_cg[0])
		return;
	err = cgroup_join(r->orig_cg, getpid());
	if (err && strcmp(r->orig_cg, r->v2root))
		err = cgroup_join(r->v2root, getpid());
	if (err)
		log_warn("redirect: leaving cgroup %s: %s", r->self_cg, strerror(-err));
	if (rmdir(r->self_cg))
		log_warn("redirect: rmdir %s: %s", r->self_cg, strerror(errno));
	r->self_cg[0] = '\0';
}

/* ---- BPF mode ---- */

/* libbpf's warnings (verifier rejections...) at warn, its info at debug, its debug chatter not
 * at all. Its lines already start with "libbpf: ". */
static bool libbpf_quiet; /* mode auto: a failure is one line from redirect_new(), not many */

static int __attribute__((format(printf, 2, 0)))
libbpf_log(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	enum log_level lvl = level == LIBBPF_WARN && !libbpf_quiet ? LOG_LVL_WARN : LOG_LVL_DEBUG;
	char msg[1024];
	size_t n;

	if (level == LIBBPF_DEBUG || !log_enabled(lvl))
		return 0;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	n = strlen(msg);
	while (n && msg[n - 1] == '\n')
		msg[--n] = '\0';
	if (n)
		log_write(lvl, NULL, NULL, "%s", msg);
	return 0;
}

static int bpffs_ensure(struct redirect *r)
{
	struct statfs st;

	if (!statfs(BPFFS_DIR, &st) && st.f_type == BPF_FS_MAGIC)
		return 0;
	if (mount("bpf", BPFFS_DIR, "bpf", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=0700")) {
		int err = -errno;

		why_set(r, "mounting bpffs on %s: %s", BPFFS_DIR, strerror(errno));
		return err;
	}
	log_info("redirect: mounted bpffs on %s", BPFFS_DIR);
	return 0;
}

static const char *const pin_names[] = {NTUN_MAP_CIDRS, NTUN_MAP_CONN, NTUN_MAP_STATS};

static void pins_remove(const char *dir)
{
	char path[PATH_MAX];

	for (size_t i = 0; i < sizeof(pin_names) / sizeof(pin_names[0]); i++) {
		if (!path_fmt(path, sizeof(path), "%s/%s", dir, pin_names[i]))
			unlink(path);
	}
}

/* A fail-closed predecessor's prefixes (its pinned ntun_cidrs) as our initial set, so that a
 * route-following restart intercepts what it did until the server's first push. */
static void cidrs_inherit(struct redirect *r)
{
	struct ntun_cidr_key k, next;
	struct cidr *v = NULL;
	char path[PATH_MAX];
	size_t n = 0;
	int fd;

	if (path_fmt(path, sizeof(path), "%s/%s", r->pin_dir, NTUN_MAP_CIDRS) || access(path, F_OK))
		return;
	fd = bpf_obj_get(path);
	if (fd < 0)
		return;
	v = calloc(NTUN_CIDRS_MAX, sizeof(*v));
	for (void *prev = NULL; v && n < NTUN_CIDRS_MAX && !bpf_map_get_next_key(fd, prev, &next);
	     prev = &k) {
		uint32_t be;

		k = next;
		memcpy(&be, k.addr, sizeof(be));
		if (k.prefixlen > 32)
			continue;
		v[n].addr = ntohl(be);
		v[n++].len = (uint8_t)k.prefixlen;
	}
	close(fd);
	if (v && n) {
		free(r->cidrs);
		r->cidrs = v;
		r->n_cidrs = n;
		log_info("redirect: keeping the %zu prefix(es) the previous daemon intercepted", n);
		return;
	}
	free(v);
}

/* Creates and locks /sys/fs/bpf/ntun/<instance>; a live daemon of the instance holds the lock,
 * so whatever is pinned there without one is stale. */
static int pin_dir_lock(struct redirect *r)
{
	int err;

	err = path_fmt(r->pin_dir, sizeof(r->pin_dir), "%s/%s", PIN_ROOT, r->instance);
	if (err)
		return err;
	if ((mkdir(PIN_ROOT, 0700) && errno != EEXIST) ||
	    (mkdir(r->pin_dir, 0700) && errno != EEXIST)) {
		err = -errno;
		why_set(r, "mkdir %s: %s", r->pin_dir, strerror(errno));
		goto err;
	}
	r->pin_fd = open(r->pin_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (r->pin_fd < 0) {
		err = -errno;
		why_set(r, "open %s: %s", r->pin_dir, strerror(errno));
		goto err;
	}
	if (flock(r->pin_fd, LOCK_EX | LOCK_NB)) {
		err = errno == EWOULDBLOCK ? -EBUSY : -errno;
		why_set(r, "instance \"%s\" is in use by another daemon (%s locked)", r->instance,
			r->pin_dir);
		goto err;
	}
	if (r->fail_closed && !r->n_cidrs)
		cidrs_inherit(r);
	pins_remove(r->pin_dir);
	return 0;
err:
	if (r->pin_fd >= 0)
		close(r->pin_fd);
	r->pin_fd = -1;
	return err;
}

static void pin_dir_release(struct redirect *r)
{
	if (r->pin_fd < 0)
		return;
	pins_remove(r->pin_dir);
	if (rmdir(r->pin_dir) && errno != ENOENT)
		log_warn("redirect: rmdir %s: %s", r->pin_dir, strerror(errno));
	rmdir(PIN_ROOT); /* fails while other instances live there: fine */
	close(r->pin_fd);
	r->pin_fd = -1;
}

static struct ntun_cidr_key lpm_key(const struct cidr *c)
{
	struct ntun_cidr_key k = {.prefixlen = c->len};
	uint32_t be = htonl(c->addr);

	memcpy(k.addr, &be, sizeof(be));
	return k;
}

static int lpm_add(struct redirect *r, const struct cidr *c)
{
	struct ntun_cidr_key k = lpm_key(c);
	struct ntun_cidr_val v = {0};

	return bpf_map__update_elem(r->skel->maps.ntun_cidrs, &k, sizeof(k), &v, sizeof(v),
				    BPF_ANY);
}

static int lpm_del(struct redirect *r, const struct cidr *c)
{
	struct ntun_cidr_key k = lpm_key(c);
	int err;

	err = bpf_map__delete_elem(r->skel->maps.ntun_cidrs, &k, sizeof(k), 0);
	return err == -ENOENT ? 0 : err;
}

static int link_store(struct redirect *r, struct bpf_link *l, struct bpf_link **out)
{
	size_t i;

	for (i = 0; i < N_LINKS && r->links[i]; i++)
		;
	if (i == N_LINKS) {
		bpf_link__destroy(l);
		return -E2BIG;
	}
	r->links[i] = l;
	if (out)
		*out = l;
	return 0;
}

static int bpf_attach(struct redirect *r, struct bpf_program *prog, int cg_fd, const char *cg,
		      struct bpf_link **out)
{
	struct bpf_link *l;
	int err;

	l = bpf_program__attach_cgroup(prog, cg_fd);
	if (!l) {
		err = -errno;
		why_set(r, "attaching %s to %s: %s", bpf_program__name(prog), cg, strerror(errno));
		return err;
	}
	return link_store(r, l, out);
}

/* Attaches prog to the intercepted cgroup as the n-th target link. A link a fail-closed
 * predecessor pinned for it on the same cgroup gets prog in its place in one step
 * (BPF_LINK_UPDATE: no moment without a program); one on another cgroup is detached once the
 * new one is attached. */
static int bpf_attach_target(struct redirect *r, size_t n, struct bpf_program *prog, int cg_fd,
			     const char *cg, uint64_t cgid)
{
	struct bpf_link_info info;
	__u32 len = sizeof(info);
	struct bpf_link *old = NULL;
	char path[PATH_MAX];
	int err;

	err = path_fmt(path, sizeof(path), "%s/" LINK_PREFIX "%s", r->pin_dir,
		       bpf_program__name(prog));
	if (err)
		return err;
	if (!access(path, F_OK))
		old = bpf_link__open(path);
	memset(&info, 0, sizeof(info));
	r->tnames[n] = bpf_program__name(prog);
	if (old && !bpf_obj_get_info_by_fd(bpf_link__fd(old), &info, &len) &&
	    info.type == BPF_LINK_TYPE_CGROUP && info.cgroup.cgroup_id == cgid &&
	    !bpf_link__update_program(old, prog)) {
		log_info("redirect: took over %s", path);
		return link_store(r, old, &r->tlinks[n]);
	}
	err = bpf_attach(r, prog, cg_fd, cg, &r->tlinks[n]);
	if (old) {
		if (!err) {
			bpf_link__unpin(old);
			bpf_link__detach(old);
		}
		bpf_link__destroy(old);
	}
	return err;
}

/* Fail closed: the target links stay attached after we exit (pinned). Fail open: no pin, so
 * they go with our file descriptors, however the process ends. */
static int bpf_pin_links(struct redirect *r)
{
	char path[PATH_MAX];
	int err;

	for (size_t i = 0; i < N_TLINKS && r->tlinks[i]; i++) {
		struct bpf_link *l = r->tlinks[i];

		if (!r->fail_closed) {
			if (bpf_link__pin_path(l))
				bpf_link__unpin(l);
			continue;
		}
		if (bpf_link__pin_path(l))
			continue;
		err = path_fmt(path, sizeof(path), "%s/" LINK_PREFIX "%s", r->pin_dir,
			       r->tnames[i]);
		if (!err)
			err = bpf_link__pin(l, path);
		if (err) {
			why_set(r, "pinning %s: %s", path, strerror(-err));
			return err;
		}
	}
	return 0;
}

/* True if dir is root or below it (both resolved). */
static bool path_below(const char *dir, const char *root)
{
	char a[PATH_MAX], b[PATH_MAX];
	size_t n;

	if (!realpath(dir, a) || !realpath(root, b))
		return false;
	n = strlen(b);
	if (n == 1) /* "/" */
		return true;
	return !strncmp(a, b, n) && (a[n] == '/' || !a[n]);
}

/* Closing a pinned link's fd leaves it attached: a fail-closed exit keeps the target links and
 * the map pins, and only gives up the lock. */
static void bpf_teardown(struct redirect *r)
{
	for (size_t i = 0; i < N_LINKS; i++) {
		bpf_link__destroy(r->links[i]);
		r->links[i] = NULL;
	}
	memset(r->tlinks, 0, sizeof(r->tlinks));
	if (r->fail_closed && r->set_up && r->pin_fd >= 0) {
		close(r->pin_fd);
		r->pin_fd = -1;
	}
	pin_dir_release(r);
	redirect_bpf__destroy(r->skel);
	r->skel = NULL;
}

static int bpf_setup(struct redirect *r, const char *target)
{
	struct rlimit rl = {RLIM_INFINITY, RLIM_INFINITY};
	struct bpf_map *pin_maps[3];
	char path[PATH_MAX];
	uint64_t cgid;
	int cg_fd = -1, self_fd = -1, err;

	if (!r->self_cg[0]) {
		why_set(r, "no daemon cgroup");
		return -ENOENT;
	}
	if (!is_cgroup2(target)) {
		why_set(r, "%s is not a cgroup v2 directory", target);
		return -EINVAL;
	}
	/* BPF memory is charged to the memory cgroup on current kernels. */
	if (setrlimit(RLIMIT_MEMLOCK, &rl))
		log_debug("redirect: setrlimit(RLIMIT_MEMLOCK): %s (ignored)", strerror(errno));
	libbpf_set_print(libbpf_log);

	err = bpffs_ensure(r);
	if (err)
		goto err;
	err = pin_dir_lock(r);
	if (err)
		goto err;

	r->skel = redirect_bpf__open();
	if (!r->skel) {
		err = -errno;
		why_set(r, "opening BPF object: %s", strerror(errno));
		goto err;
	}
	r->skel->rodata->listen_port = r->listen_port;
	r->skel->rodata->daemon_cgid = r->self_cgid;
	err = redirect_bpf__load(r->skel);
	if (err) {
		why_set(r, "loading BPF programs: %s", strerror(-err));
		goto err;
	}
	for (size_t i = 0; i < r->n_cidrs; i++) {
		err = lpm_add(r, &r->cidrs[i]);
		if (err) {
			why_set(r, "filling %s: %s", NTUN_MAP_CIDRS, strerror(-err));
			goto err;
		}
	}

	cg_fd = open(target, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	self_fd = open(r->self_cg, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (cg_fd < 0 || self_fd < 0) {
		err = -errno;
		why_set(r, "opening cgroup %s: %s", cg_fd < 0 ? target : r->self_cg,
			strerror(errno));
		goto err;
	}
	/* The daemon side of each connection needs sockops too; it runs there already when the
	 * daemon cgroup lies inside the intercepted subtree. */
	err = redirect_cgroup_id(target, &cgid);
	if (err) {
		why_set(r, "cgroup id of %s: %s", target, strerror(-err));
		goto err;
	}
	err = bpf_attach(r, r->skel->progs.ntun_getsockopt, self_fd, r->self_cg, NULL);
	if (!err && !path_below(r->self_cg, target))
		err = bpf_attach(r, r->skel->progs.ntun_sockops, self_fd, r->self_cg, NULL);
	if (!err)
		err = bpf_attach_target(r, 0, r->skel->progs.ntun_sockops, cg_fd, target, cgid);
	if (!err)
		err = bpf_attach_target(r, 1, r->skel->progs.ntun_getpeer4, cg_fd, target, cgid);
	if (!err)
		err = bpf_attach_target(r, 2, r->skel->progs.ntun_getpeer6, cg_fd, target, cgid);
	/* last: nothing is redirected before the rest is in place */
	if (!err)
		err = bpf_attach_target(r, 3, r->skel->progs.ntun_connect4, cg_fd, target, cgid);
	if (!err)
		err = bpf_attach_target(r, 4, r->skel->progs.ntun_connect6, cg_fd, target, cgid);
	if (!err)
		err = bpf_pin_links(r);
	if (err)
		goto err;

	pin_maps[0] = r->skel->maps.ntun_cidrs;
	pin_maps[1] = r->skel->maps.ntun_conn;
	pin_maps[2] = r->skel->maps.ntun_stats;
	for (size_t i = 0; i < sizeof(pin_maps) / sizeof(pin_maps[0]); i++) {
		err = path_fmt(path, sizeof(path), "%s/%s", r->pin_dir, bpf_map__name(pin_maps[i]));
		if (!err)
			err = bpf_map__pin(pin_maps[i], path);
		if (err) {
			why_set(r, "pinning %s: %s", path, strerror(-err));
			goto err;
		}
	}
	goto out;
err:
	bpf_teardown(r);
out:
	if (cg_fd >= 0)
		close(cg_fd);
	if (self_fd >= 0)
		close(self_fd);
	return err;
}

static int bpf_set_cidrs(struct redirect *r, const struct cidr *v, size_t n)
{
	size_t added = 0;
	int err = 0;

	for (; added < n; added++) {
		if (cidr_in(r->cidrs, r->n_cidrs, &v[added]))
			continue;
		err = lpm_add(r, &v[added]);
		if (err)
			break;
	}
	if (err) {
		log_error("redirect: updating %s: %s", NTUN_MAP_CIDRS, strerror(-err));
		while (added--) {
			if (!cidr_in(r->cidrs, r->n_cidrs, &v[added]))
				lpm_del(r, &v[added]);
		}
		return err;
	}
	for (size_t i = 0; i < r->n_cidrs; i++) {
		if (cidr_in(v, n, &r->cidrs[i]))
			continue;
		err = lpm_del(r, &r->cidrs[i]);
		if (err)
			log_warn("redirect: removing a prefix from %s: %s", NTUN_MAP_CIDRS,
				 strerror(-err));
	}
	return 0;
}

/* ---- iptables mode ---- */

static const char *iptables_path(void)
{
	static const char *const paths[] = {"/usr/sbin/iptables", "/sbin/iptables",
					    "/usr/bin/iptables", "/bin/iptables"};

	for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
		if (!access(paths[i], X_OK))
			return paths[i];
	}
	return NULL;
}

/* Reads the child's output into out (truncated, NUL-terminated) and drains the rest, so that
 * the child never blocks on a full pipe. */
static void read_all(int fd, char *out, size_t size)
{
	size_t got = 0;
	char sink[256];
	ssize_t k;

	for (;;) {
		if (got < size - 1)
			k = read(fd, out + got, size - 1 - got);
		else
			k = read(fd, sink, sizeof(sink));
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break;
		if (got < size - 1)
			got += (size_t)k;
	}
	out[got] = '\0';
}

/* Runs iptables -w 5 -t nat <args...> (NULL-terminated) without a shell. Returns 0, -ENOENT
 * (no iptables binary) or -EIO (non-zero exit; its output is logged unless quiet). */
static int iptables(bool quiet, const char *const *args)
{
	const char *argv[24] = {"iptables", "-w", "5", "-t", "nat"};
	const char *bin = iptables_path();
	char out[512], cmd[256];
	size_t n = 5, len = 0;
	int pfd[2] = {-1, -1}, status, err = 0;
	pid_t pid;

	if (!bin)
		return -ENOENT;
	for (size_t i = 0; args[i] && n < sizeof(argv) / sizeof(argv[0]) - 1; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	if (pipe2(pfd, O_CLOEXEC))
		return -errno;
	pid = fork();
	if (pid < 0) {
		err = -errno;
		goto out;
	}
	if (!pid) {
		/* Only async-signal-safe calls here: the parent may have threads. */
		int devnull = open("/dev/null", O_RDONLY);

		if (devnull >= 0)
			dup2(devnull, STDIN_FILENO);
		dup2(pfd[1], STDOUT_FILENO);
		dup2(pfd[1], STDERR_FILENO);
		execv(bin, (char *const *)argv);
		_exit(127);
	}
	close(pfd[1]);
	pfd[1] = -1;
	read_all(pfd[0], out, sizeof(out));
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR) {
			err = -errno;
			goto out;
		}
	}
	if (WIFEXITED(status) && !WEXITSTATUS(status))
		goto out;
	err = WIFEXITED(status) && WEXITSTATUS(status) == 127 ? -ENOENT : -EIO;
	if (!quiet) {
		for (size_t i = 5; argv[i] && len < sizeof(cmd) - 1; i++)
			len += (size_t)snprintf(cmd + len, sizeof(cmd) - len, " %s", argv[i]);
		out[strcspn(out, "\n")] = '\0';
		log_error("redirect: iptables -t nat%s: %s (status %d)", cmd,
			  out[0] ? out : "failed", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
	}
out:
	if (pfd[0] >= 0)
		close(pfd[0]);
	if (pfd[1] >= 0)
		close(pfd[1]);
	return err;
}

static int ipt_rule(struct redirect *r, const char *chain, const char *op, const struct cidr *c,
		    bool quiet)
{
	char dst[INET_ADDRSTRLEN + 4], ip[INET_ADDRSTRLEN], port[8];
	const char *args[] = {op,   chain,	"-p",	      "tcp", "-d", dst,
			      "-j", "REDIRECT", "--to-ports", port,  NULL};

	snprintf(dst, sizeof(dst), "%s/%u", ip_str(c->addr, ip), c->len);
	snprintf(port, sizeof(port), "%u", r->listen_port);
	return iptables(quiet, args);
}

/* Removes the jump, the rules and the chain, whatever of them exists. */
static void ipt_remove_chain(const char *chain)
{
	const char *unjump[] = {"-D", "OUTPUT", "-p", "tcp", "-j", chain, NULL};
	const char *flush[] = {"-F", chain, NULL};
	const char *del[] = {"-X", chain, NULL};

	for (int i = 0; i < 16 && !iptables(true, unjump); i++)
		;
	iptables(true, flush);
	iptables(true, del);
}

/* One daemon per instance and network namespace (chains are per namespace): an abstract unix
 * socket name is per namespace too, and is released however the process ends. */
static int ipt_lock(struct redirect *r)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	int n, err;

	n = snprintf(sun.sun_path + 1, sizeof(sun.sun_path) - 1, "ntun-redirect-%s", r->instance);
	r->lock_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (r->lock_fd < 0)
		return -errno;
	if (!bind(r->lock_fd, (struct sockaddr *)&sun,
		  (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n)))
		return 0;
	err = errno == EADDRINUSE ? -EBUSY : -errno;
	log_error("redirect: instance \"%s\" is in use by another daemon in this network namespace",
		  r->instance);
	close(r->lock_fd);
	r->lock_fd = -1;
	return err;
}

static bool ipt_chain_exists(const char *chain)
{
	return !iptables(true, (const char *[]){"-n", "-L", chain, NULL});
}

/* A fail-closed exit leaves the chain in place: connects to the CIDRs are then refused. */
static void ipt_teardown(struct redirect *r)
{
	const char *del[] = {"-X", r->chain, NULL};

	if (r->chain_made && !(r->fail_closed && r->set_up)) {
		ipt_remove_chain(r->chain_next);
		ipt_remove_chain(r->chain);
		if (!iptables(true, (const char *[]){"-n", "-L", r->chain, NULL}))
			iptables(false, del); /* still there: log why */
		r->chain_made = false;
	}
	if (r->lock_fd >= 0) {
		close(r->lock_fd);
		r->lock_fd = -1;
	}
}

/* Fills chain (which exists, empty): our own marked connects pass, then one REDIRECT per CIDR. */
static int ipt_fill(struct redirect *r, const char *chain, const struct cidr *v, size_t n)
{
	char mark[16];
	const char *ret[] = {"-A", chain, "-m", "mark", "--mark", mark, "-j", "RETURN", NULL};
	int err;

	snprintf(mark, sizeof(mark), "0x%x", REDIRECT_MARK);
	err = iptables(false, ret);
	for (size_t i = 0; !err && i < n; i++)
		err = ipt_rule(r, chain, "-A", &v[i], false);
	return err;
}

/* Replaces a chain that is in use without a moment where connects escape: the new rules go
 * into chain_next, which OUTPUT jumps to before the old chain; then the old chain goes and
 * chain_next is renamed to it (the jump follows the rename). */
static int ipt_replace(struct redirect *r, const struct cidr *v, size_t n)
{
	const char *mk[] = {"-N", r->chain_next, NULL};
	const char *jump[] = {"-I", "OUTPUT", "1", "-p", "tcp", "-j", r->chain_next, NULL};
	const char *rename[] = {"-E", r->chain_next, r->chain, NULL};
	int err;

	ipt_remove_chain(r->chain_next); /* left by an interrupted replacement */
	err = iptables(false, mk);
	if (!err)
		err = ipt_fill(r, r->chain_next, v, n);
	if (!err)
		err = iptables(false, jump);
	if (err) {
		ipt_remove_chain(r->chain_next);
		return err;
	}
	ipt_remove_chain(r->chain);
	err = iptables(false, rename);
	if (!err)
		log_info("redirect: took over chain %s", r->chain);
	return err;
}

static int ipt_setup(struct redirect *r)
{
	const char *probe[] = {"-S", "OUTPUT", NULL};
	const char *mk[] = {"-N", r->chain, NULL};
	const char *jump[] = {"-I", "OUTPUT", "1", "-p", "tcp", "-j", r->chain, NULL};
	const char *has_jump[] = {"-C", "OUTPUT", "-p", "tcp", "-j", r->chain, NULL};
	int err;

	err = ipt_lock(r);
	if (err)
		return err;
	err = iptables(false, probe);
	if (err) {
		log_error("redirect: iptables nat table unavailable%s",
			  err == -ENOENT ? " (no iptables binary)" : "");
		ipt_teardown(r);
		return err == -ENOENT ? -ENOENT : -ENOTSUP;
	}
	if (ipt_chain_exists(r->chain)) {
		/* Left by a crash or a fail-closed exit, and maybe in use: replaced in place. A
		 * route-following fail-closed client keeps the old rules until its first set. */
		r->chain_made = true;
		if (r->fail_closed && !r->n_cidrs) {
			r->chain_stale = true;
			log_info("redirect: keeping the previous daemon's rules in %s until the "
				 "server's routes arrive",
				 r->chain);
			return iptables(true, has_jump) ? iptables(false, jump) : 0;
		}
		err = ipt_replace(r, r->cidrs, r->n_cidrs);
		if (err)
			ipt_teardown(r);
		return err;
	}
	ipt_remove_chain(r->chain_next);
	err = iptables(false, mk);
	if (err) {
		ipt_teardown(r);
		return err;
	}
	r->chain_made = true;
	err = ipt_fill(r, r->chain, r->cidrs, r->n_cidrs);
	if (!err) /* last: the chain is complete before anything jumps to it */
		err = iptables(false, jump);
	if (err)
		ipt_teardown(r);
	return err;
}

static int ipt_set_cidrs(struct redirect *r, const struct cidr *v, size_t n)
{
	size_t added = 0;
	int err = 0;

	if (r->chain_stale) {
		err = ipt_replace(r, v, n);
		if (!err)
			r->chain_stale = false;
		return err;
	}

	for (; added < n; added++) {
		if (cidr_in(r->cidrs, r->n_cidrs, &v[added]))
			continue;
		err = ipt_rule(r, r->chain, "-A", &v[added], false);
		if (err)
			break;
	}
	if (err) {
		while (added--) {
			if (!cidr_in(r->cidrs, r->n_cidrs, &v[added]))
				ipt_rule(r, r->chain, "-D", &v[added], true);
		}
		return err;
	}
	for (size_t i = 0; i < r->n_cidrs; i++) {
		if (!cidr_in(v, n, &r->cidrs[i]))
			ipt_rule(r, r->chain, "-D", &r->cidrs[i], false);
	}
	return 0;
}

/* ---- API ---- */

struct redirect *redirect_new(const struct redirect_opts *o)
{
	const char *instance = o->instance ? o->instance : "default";
	const char *target;
	struct redirect *r;
	char list[256];
	size_t len = 0;
	int err;

	if (!instance_valid(instance)) {
		log_error("redirect: bad instance name \"%s\" (use [A-Za-z0-9_-], at most %d)",
			  instance, INSTANCE_MAX);
		errno = EINVAL;
		return NULL;
	}
	if (!o->listen_port || o->mode < REDIRECT_AUTO || o->mode > REDIRECT_IPTABLES ||
	    (o->n_cidrs && !o->cidrs)) {
		log_error("redirect: bad options (port %u, mode %d)", o->listen_port, o->mode);
		errno = EINVAL;
		return NULL;
	}
	r = calloc(1, sizeof(*r));
	if (!r) {
		errno = ENOMEM;
		return NULL;
	}
	r->pin_fd = -1;
	r->lock_fd = -1;
	r->listen_port = o->listen_port;
	strcpy(r->instance, instance);
	snprintf(r->chain, sizeof(r->chain), "NTUN-%s", instance);
	snprintf(r->chain_next, sizeof(r->chain_next), "NTUX-%s", instance);
	r->fail_closed = o->fail_closed;
	err = cidrs_normalize(o->cidrs, o->n_cidrs, &r->cidrs, &r->n_cidrs);
	if (err) {
		log_error("redirect: bad CIDR list: %s", strerror(-err));
		goto err;
	}

	/* iptables mode needs no cgroup of its own (SO_MARK skips our connects), BPF mode does. */
	err = cgroup_self_enter(r);
	if (err && o->mode == REDIRECT_BPF) {
		log_error("redirect: BPF interception unavailable: %s", r->why);
		goto err;
	}
	if (err && o->mode == REDIRECT_IPTABLES)
		log_warn("redirect: staying in the current cgroup: %s", r->why);
	target = o->cgroup ? o->cgroup : r->v2root;
	/* A mistyped --cgroup must not turn into netns-wide iptables interception. */
	if (o->cgroup && o->mode != REDIRECT_IPTABLES && !is_cgroup2(o->cgroup)) {
		log_error("redirect: %s is not a cgroup v2 directory", o->cgroup);
		err = -EINVAL;
		goto err;
	}

	if (o->mode != REDIRECT_IPTABLES) {
		libbpf_quiet = o->mode == REDIRECT_AUTO;
		err = err ? err : bpf_setup(r, target);
		libbpf_quiet = false;
		if (!err) {
			r->mode = REDIRECT_BPF;
		} else if (o->mode == REDIRECT_AUTO && err != -EBUSY) {
			log_warn("redirect: BPF unavailable (%s); falling back to iptables",
				 r->why);
		} else {
			log_error("redirect: BPF interception unavailable: %s", r->why);
			goto err;
		}
	} else {
		err = -ENOTSUP;
	}
	if (err) {
		err = ipt_setup(r);
		if (!err)
			r->mode = REDIRECT_IPTABLES;
	}
	if (err)
		goto err;
	if (r->mode == REDIRECT_BPF && !realpath(target, r->target))
		snprintf(r->target, sizeof(r->target), "%s", target);

	for (size_t i = 0; i < r->n_cidrs && len < sizeof(list) - 20; i++) {
		char ip[INET_ADDRSTRLEN];

		len += (size_t)snprintf(list + len, sizeof(list) - len, "%s%s/%u", i ? "," : "",
					ip_str(r->cidrs[i].addr, ip), r->cidrs[i].len);
	}
	list[len] = '\0';
	if (r->mode == REDIRECT_BPF)
		log_info("redirect: mode=bpf cgroup=%s listener=127.0.0.1:%u cidrs=%s pins=%s "
			 "daemon_cgroup=%s",
			 target, r->listen_port, list, r->pin_dir, r->self_cg);
	else
		log_info("redirect: mode=iptables chain=%s listener=127.0.0.1:%u cidrs=%s "
			 "daemon_cgroup=%s",
			 r->chain, r->listen_port, list, r->self_cg[0] ? r->self_cg : "-");
	if (r->mode == REDIRECT_IPTABLES)
		log_warn(
			"redirect: iptables mode intercepts this network namespace only: containers "
			"in other network namespaces are NOT intercepted (use --intercept bpf)");
	log_info("redirect: while the daemon is down connects to the CIDRs %s",
		 r->fail_closed ? "are refused (fail closed; ntun-client --cleanup removes it)"
				: "follow normal routing (fail open)");
	r->set_up = true;
	return r;
err:
	redirect_free(r);
	errno = -err;
	return NULL;
}

/* Removes every entry of the (locked) pin directory, links first, then the directory. */
static size_t pins_remove_all(const char *dir)
{
	char path[PATH_MAX];
	struct dirent *de;
	size_t n = 0;
	DIR *d;

	d = opendir(dir);
	if (!d)
		return 0;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.' || path_fmt(path, sizeof(path), "%s/%s", dir, de->d_name))
			continue;
		if (!unlink(path))
			n++;
		else
			log_warn("redirect: unlink %s: %s", path, strerror(errno));
	}
	closedir(d);
	if (rmdir(dir) && errno != ENOENT)
		log_warn("redirect: rmdir %s: %s", dir, strerror(errno));
	rmdir(PIN_ROOT); /* fails while other instances live there: fine */
	return n;
}

int redirect_cleanup(const char *instance)
{
	char mnt_root[PATH_MAX];
	struct redirect *r;
	size_t pins = 0;
	bool chain = false;
	int err = 0;

	if (!instance_valid(instance))
		return -EINVAL;
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->pin_fd = -1;
	r->lock_fd = -1;
	strcpy(r->instance, instance);
	snprintf(r->chain, sizeof(r->chain), "NTUN-%s", instance);
	snprintf(r->chain_next, sizeof(r->chain_next), "NTUX-%s", instance);
	err = path_fmt(r->pin_dir, sizeof(r->pin_dir), "%s/%s", PIN_ROOT, instance);
	if (err)
		goto out;
	/* Both locks first: nothing is removed from under a live daemon. */
	r->pin_fd = open(r->pin_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (r->pin_fd >= 0 && flock(r->pin_fd, LOCK_EX | LOCK_NB)) {
		log_error("redirect: instance \"%s\" is in use by a running daemon (%s locked)",
			  instance, r->pin_dir);
		err = -EBUSY;
		goto out;
	}
	if (iptables_path()) {
		err = ipt_lock(r);
		if (err)
			goto out;
	}
	if (r->pin_fd >= 0)
		pins = pins_remove_all(r->pin_dir);
	if (iptables_path() && (ipt_chain_exists(r->chain) || ipt_chain_exists(r->chain_next))) {
		ipt_remove_chain(r->chain_next);
		ipt_remove_chain(r->chain);
		chain = true;
	}
	if (!cgroup2_mount(r->v2root, sizeof(r->v2root), mnt_root, sizeof(mnt_root)))
		cgroup_remove_stale(r);
	log_info("redirect: instance \"%s\" cleaned up: %zu pin(s) removed%s", instance, pins,
		 chain ? ", iptables chain removed" : "");
out:
	if (r->pin_fd >= 0)
		close(r->pin_fd);
	if (r->lock_fd >= 0)
		close(r->lock_fd);
	free(r);
	return err;
}

int redirect_set_cidrs(struct redirect *r, const struct cidr *c, size_t n)
{
	struct cidr *v;
	size_t nv;
	int err;

	if (n && !c)
		return -EINVAL;
	err = cidrs_normalize(c, n, &v, &nv);
	if (err)
		return err;
	err = r->mode == REDIRECT_BPF ? bpf_set_cidrs(r, v, nv) : ipt_set_cidrs(r, v, nv);
	if (err) {
		free(v);
		return err;
	}
	free(r->cidrs);
	r->cidrs = v;
	r->n_cidrs = nv;
	log_info("redirect: %zu intercepted prefixes", nv);
	return 0;
}

int redirect_original_dst(int fd, uint32_t *addr, uint16_t *port)
{
	struct sockaddr_in orig, local;
	socklen_t len = sizeof(orig), llen = sizeof(local);

	memset(&orig, 0, sizeof(orig));
	if (getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, &orig, &len))
		return errno == ENOPROTOOPT ? -ENOENT : -errno;
	if (len < sizeof(orig) || orig.sin_family != AF_INET)
		return -ENOENT;
	/* netfilter answers for unNATed connections too, with our own address: such a client
	 * dialed the listener directly and must not be relayed back to it. */
	if (!getsockname(fd, (struct sockaddr *)&local, &llen) &&
	    local.sin_addr.s_addr == orig.sin_addr.s_addr && local.sin_port == orig.sin_port)
		return -ENOENT;
	*addr = ntohl(orig.sin_addr.s_addr);
	*port = ntohs(orig.sin_port);
	return 0;
}

int redirect_mark_socket(int fd)
{
	unsigned int mark = REDIRECT_MARK;

	return setsockopt(fd, SOL_SOCKET, SO_MARK, &mark, sizeof(mark)) ? -errno : 0;
}

int redirect_conn_origin(const struct redirect *r, int fd, uint64_t *cgroup_id, uint32_t *pid)
{
	struct ntun_orig o;
	int err;

	if (r->mode != REDIRECT_BPF)
		return -ENOTSUP;
	err = bpf_map__lookup_elem(r->skel->maps.ntun_sk_orig, &fd, sizeof(fd), &o, sizeof(o), 0);
	if (err)
		return err;
	if (!(o.flags & NTUN_ORIG_PASSIVE))
		return -ENOENT;
	*cgroup_id = o.cgroup_id;
	*pid = o.pid;
	return 0;
}

const char *redirect_cgroup(const struct redirect *r)
{
	return r->mode == REDIRECT_BPF ? r->target : NULL;
}

const char *redirect_mode_name(const struct redirect *r)
{
	return r->mode == REDIRECT_BPF ? "bpf" : "iptables";
}

int redirect_mode_parse(const char *s, int *mode)
{
	if (!strcmp(s, "auto"))
		*mode = REDIRECT_AUTO;
	else if (!strcmp(s, "bpf"))
		*mode = REDIRECT_BPF;
	else if (!strcmp(s, "iptables"))
		*mode = REDIRECT_IPTABLES;
	else
		return -EINVAL;
	return 0;
}

int redirect_get_stats(const struct redirect *r, struct redirect_stats *out)
{
	struct ntun_stats st;
	__u32 zero = 0;
	int err;

	if (r->mode != REDIRECT_BPF)
		return -ENOTSUP;
	err = bpf_map__lookup_elem(r->skel->maps.ntun_stats, &zero, sizeof(zero), &st, sizeof(st),
				   0);
	if (err)
		return err;
	out->redirected = st.redirected;
	out->skip_self = st.skip_self;
	out->skip_mark = st.skip_mark;
	out->tracked = st.tracked;
	out->track_fail = st.track_fail;
	out->orig_answer = st.orig_answer;
	return 0;
}

void redirect_free(struct redirect *r)
{
	if (!r)
		return;
	bpf_teardown(r);
	ipt_teardown(r);
	cgroup_self_leave(r);
	free(r->cidrs);
	free(r);
}
