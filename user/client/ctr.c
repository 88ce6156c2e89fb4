// SPDX-License-Identifier: MIT
/* Containers: one listener per network namespace of the intercepted cgroup subtree (see ctr.h).
 * A scan walks the subtree, reads each cgroup.procs and names each process's netns by the inode
 * of /proc/PID/ns/net; a new netns gets a listener made inside it with setns(), a netns no
 * process of the subtree is in any more loses it (the fd would pin the namespace).
 *
 *   inotify: IN_CREATE on every cgroup dir (a new child cgroup), IN_MODIFY on cgroup.events
 *            ("populated" flips when the first process moves in)   --> scan now
 *   timer:   every scan_ms (a process that changed netns inside a populated cgroup)  --> scan
 */
#include "ctr.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "log.h"
#include "loop.h"
#include "redirect.h"
#include "sock.h"

#ifndef SO_NETNS_COOKIE
#define SO_NETNS_COOKIE 71
#endif

#define CTR_BUCKETS	256
#define CTR_MAX_NS	4096  /* namespaces served at once */
#define CTR_MAX_CGROUPS 65536 /* cgroup dirs walked per scan */
#define CTR_MAX_DEPTH	32
#define CTR_SCAN_MS	500
#define LOOPBACK	0x7f000001u

struct ctr_nsent {
	struct ctr_ns id;
	struct ctr *c;
	int lfd; /* -1 while listen failed there (lo down...): retried each scan */
	struct loop_io *io;
	unsigned gen; /* the last scan that saw a process in it */
	bool warned;  /* listen failed there, said once */
	struct ctr_nsent *next;
};

struct ctr_cg {
	uint64_t id;
	char *path; /* relative to the v2 mount */
};

struct ctr {
	struct loop *loop;
	ctr_accept_cb *cb;
	void *arg;
	uint16_t port;
	int backlog;
	uint32_t scan_ms;
	char root[PATH_MAX]; /* the subtree */
	size_t mnt_len;	     /* length of the v2 mount prefix of root */
	int self_fd;	     /* our own netns */
	struct ctr_ns self;
	int ifd; /* inotify */
	struct loop_io *iio;
	struct loop_timer *scan;
	uint64_t next_ok; /* monotonic ms: no event-driven scan before (a tenth of our time) */
	unsigned gen;
	size_t n_ns;
	bool full_logged;
	struct ctr_nsent *ns[CTR_BUCKETS];
	struct ctr_cg *cgs; /* from the last scan, sorted by id */
	size_t n_cgs;
	struct ctr_cg *next_cgs; /* being built by the current scan */
	size_t n_next, cap_next;
};

static uint64_t netns_cookie(int fd)
{
	uint64_t cookie = 0;
	socklen_t len = sizeof(cookie);

	if (getsockopt(fd, SOL_SOCKET, SO_NETNS_COOKIE, &cookie, &len))
		return 0;
	return cookie;
}

static void on_listener(struct loop_io *io, unsigned events, void *arg)
{
	struct ctr_nsent *e = arg;

	e->c->cb(e->lfd, &e->id, e->c->arg);
}

/* Opens the listener inside the netns of pid. 0 or -errno; we are back in our own netns in
 * every case (if we cannot get back, nothing else would be safe: abort). */
static int ns_listen(struct ctr *c, struct ctr_nsent *e, int pid)
{
	char path[64];
	struct stat st;
	int nsfd, lfd, err = 0;

	snprintf(path, sizeof(path), "/proc/%d/ns/net", pid);
	nsfd = open(path, O_RDONLY | O_CLOEXEC);
	if (nsfd < 0)
		return -errno;
	if (fstat(nsfd, &st) || (uint64_t)st.st_ino != e->id.ino) { /* pid was reused */
		close(nsfd);
		return -ESRCH;
	}
	if (setns(nsfd, CLONE_NEWNET)) {
		err = -errno;
		close(nsfd);
		return err;
	}
	lfd = sock_listen(LOOPBACK, c->port, c->backlog);
	if (setns(c->self_fd, CLONE_NEWNET)) {
		log_error("ctr: cannot return to the daemon's netns: %s", strerror(errno));
		abort();
	}
	close(nsfd);
	if (lfd < 0)
		return lfd;
	e->io = loop_io_new(c->loop, lfd, on_listener, e);
	if (!e->io) {
		close(lfd);
		return -ENOMEM;
	}
	e->lfd = lfd;
	e->id.cookie = netns_cookie(lfd);
	loop_io_set(e->io, LOOP_READ);
	return 0;
}

static void ns_close(struct ctr_nsent *e)
{
	loop_io_free(e->io);
	e->io = NULL;
	if (e->lfd >= 0)
		close(e->lfd);
	e->lfd = -1;
}

static struct ctr_nsent **ns_slot(struct ctr *c, uint64_t ino)
{
	struct ctr_nsent **pp = &c->ns[ino % CTR_BUCKETS];

	while (*pp && (*pp)->id.ino != ino)
		pp = &(*pp)->next;
	return pp;
}

/* A process of the subtree runs in netns ino: make sure it has a listener. */
static void ns_seen(struct ctr *c, uint64_t ino, int pid, const char *cg)
{
	struct ctr_nsent **pp = ns_slot(c, ino), *e = *pp;
	int err;

	if (e && e->gen == c->gen)
		return;
	if (!e) {
		if (c->n_ns >= CTR_MAX_NS) {
			if (!c->full_logged)
				log_warn("ctr: %d network namespaces served already; netns %llu "
					 "(pid %d) is not",
					 CTR_MAX_NS, (unsigned long long)ino, pid);
			c->full_logged = true;
			return;
		}
		e = calloc(1, sizeof(*e));
		if (!e)
			return;
		e->c = c;
		e->lfd = -1;
		e->id.ino = ino;
		*pp = e;
		c->n_ns++;
	}
	e->gen = c->gen;
	if (e->lfd >= 0)
		return;
	err = ns_listen(c, e, pid);
	if (err == -ENOENT || err == -ESRCH) /* the process is gone already */
		return;
	if (err && !e->warned)
		log_warn("ctr: netns %llu (pid %d, cgroup %s): cannot listen on 127.0.0.1:%u there "
			 "(%s); its intercepted connects are not served until a retry works",
			 (unsigned long long)ino, pid, cg, c->port, strerror(-err));
	e->warned |= err != 0;
	if (!err)
		log_info("ctr: netns %llu (cookie %llu, pid %d, cgroup %s): listening on "
			 "127.0.0.1:%u",
			 (unsigned long long)ino, (unsigned long long)e->id.cookie, pid, cg,
			 c->port);
}

static void cg_remember(struct ctr *c, uint64_t id, const char *rel)
{
	struct ctr_cg *v;

	if (c->n_next == c->cap_next) {
		size_t cap = c->cap_next ? c->cap_next * 2 : 64;

		v = realloc(c->next_cgs, cap * sizeof(*v));
		if (!v)
			return;
		c->next_cgs = v;
		c->cap_next = cap;
	}
	c->next_cgs[c->n_next].path = strdup(*rel ? rel : "/");
	if (!c->next_cgs[c->n_next].path)
		return;
	c->next_cgs[c->n_next++].id = id;
}

static void cgs_free(struct ctr_cg *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i].path);
	free(v);
}

/* One cgroup dir: watch it, note its id, and every process's netns; then its children. */
static void scan_dir(struct ctr *c, char *path, size_t len, int depth, size_t *n_dirs)
{
	const char *rel = path + c->mnt_len;
	struct dirent *de;
	uint64_t id;
	DIR *d;
	FILE *f;
	int pid;

	if (++*n_dirs > CTR_MAX_CGROUPS)
		return;
	inotify_add_watch(c->ifd, path, IN_CREATE | IN_ONLYDIR);
	if (!redirect_cgroup_id(path, &id))
		cg_remember(c, id, rel);
	if (len + 16 < PATH_MAX) {
		strcpy(path + len, "/cgroup.events");
		inotify_add_watch(c->ifd, path, IN_MODIFY);
		strcpy(path + len, "/cgroup.procs");
		f = fopen(path, "re");
		path[len] = '\0';
		while (f && fscanf(f, "%d", &pid) == 1) {
			char ns[64];
			struct stat st;

			snprintf(ns, sizeof(ns), "/proc/%d/ns/net", pid);
			if (stat(ns, &st) || (uint64_t)st.st_ino == c->self.ino)
				continue;
			ns_seen(c, (uint64_t)st.st_ino, pid, *rel ? rel : "/");
		}
		if (f)
			fclose(f);
	}
	if (depth >= CTR_MAX_DEPTH)
		return;
	d = opendir(path);
	if (!d)
		return;
	while ((de = readdir(d))) {
		size_t n = strlen(de->d_name);

		if (de->d_type != DT_DIR || de->d_name[0] == '.' || len + 1 + n >= PATH_MAX)
			continue;
		path[len] = '/';
		memcpy(path + len + 1, de->d_name, n + 1);
		scan_dir(c, path, len + 1 + n, depth + 1, n_dirs);
		path[len] = '\0';
	}
	closedir(d);
}

static int cg_cmp(const void *a, const void *b)
{
	uint64_t x = ((const struct ctr_cg *)a)->id, y = ((const struct ctr_cg *)b)->id;

	return x < y ? -1 : x > y;
}

/* The thread's CPU time in ms: what a scan costs the daemon. Wall time would count the time
 * the scheduler gave others on a loaded machine: a scan of 6 cgroups preempted for 244 ms held
 * the next scans back 2.2 s, and a new container waited 1.5 s for its listener. */
static uint64_t cpu_ms(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts))
		return 0;
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void scan(struct ctr *c)
{
	char path[PATH_MAX];
	size_t n_dirs = 0, n_before = c->n_ns;
	uint64_t t0 = loop_now_ms(), c0 = cpu_ms(), dt, cost;

	c->gen++;
	c->n_next = 0;
	strcpy(path, c->root);
	scan_dir(c, path, strlen(path), 0, &n_dirs);
	/* Namespaces no process of the subtree is in any more. */
	for (size_t b = 0; b < CTR_BUCKETS; b++) {
		struct ctr_nsent **pp = &c->ns[b];

		while (*pp) {
			struct ctr_nsent *e = *pp;

			if (e->gen == c->gen) {
				pp = &e->next;
				continue;
			}
			if (e->lfd >= 0)
				log_info("ctr: netns %llu (cookie %llu) has left the subtree; "
					 "listener closed",
					 (unsigned long long)e->id.ino,
					 (unsigned long long)e->id.cookie);
			ns_close(e);
			*pp = e->next;
			free(e);
			c->n_ns--;
			c->full_logged = false;
		}
	}
	cgs_free(c->cgs, c->n_cgs);
	if (c->n_next)
		qsort(c->next_cgs, c->n_next, sizeof(*c->next_cgs), cg_cmp);
	c->cgs = c->next_cgs;
	c->n_cgs = c->n_next;
	c->next_cgs = NULL;
	c->n_next = c->cap_next = 0;
	dt = loop_now_ms() - t0;
	cost = cpu_ms() - c0;
	if (dt >= 5 || c->n_ns != n_before)
		log_debug(
			"ctr: scanned %zu cgroups in %llu ms (%llu ms CPU); %zu namespaces served",
			n_dirs, (unsigned long long)dt, (unsigned long long)cost, c->n_ns);
	if (n_dirs > CTR_MAX_CGROUPS)
		log_warn("ctr: more than %d cgroups below %s; the rest is not served",
			 CTR_MAX_CGROUPS, c->root);
	/* A huge or busy tree must not eat the daemon: scans take at most a tenth of its CPU time,
	 * periodic ones and those cgroup events ask for alike. */
	c->next_ok = loop_now_ms() + cost * 9;
	loop_timer_arm(c->scan, cost * 10 > c->scan_ms ? cost * 10 : c->scan_ms);
}

static void on_scan(struct loop_timer *t, void *arg)
{
	scan(arg);
}

static void on_inotify(struct loop_io *io, unsigned events, void *arg)
{
	struct ctr *c = arg;
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	bool any = false;

	for (int i = 0; i < 64; i++) {
		ssize_t n = read(c->ifd, buf, sizeof(buf));

		if (n <= 0)
			break;
		any = true;
	}
	if (!any)
		return;
	if (loop_now_ms() >= c->next_ok)
		loop_timer_now(c->scan);
	else
		loop_timer_arm(c->scan, c->next_ok - loop_now_ms());
}

struct ctr *ctr_new(struct loop *l, const struct ctr_opts *o, ctr_accept_cb *cb, void *arg)
{
	char mnt[PATH_MAX];
	struct ctr *c;
	struct stat st;
	int err;

	c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->loop = l;
	c->cb = cb;
	c->arg = arg;
	c->port = o->port;
	c->backlog = o->backlog;
	c->scan_ms = o->scan_ms ? o->scan_ms : CTR_SCAN_MS;
	c->self_fd = -1;
	c->ifd = -1;
	if (!realpath(o->cgroup, c->root)) {
		err = -errno;
		goto err;
	}
	err = redirect_cgroup_root(mnt, sizeof(mnt));
	if (!err && !strncmp(c->root, mnt, strlen(mnt)))
		c->mnt_len = strlen(mnt);
	c->self_fd = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	if (c->self_fd < 0 || fstat(c->self_fd, &st)) {
		err = -errno;
		goto err;
	}
	c->self.ino = (uint64_t)st.st_ino;
	{
		int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

		if (s >= 0) {
			c->self.cookie = netns_cookie(s);
			close(s);
		}
	}
	c->ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (c->ifd < 0) {
		err = -errno;
		goto err;
	}
	c->iio = loop_io_new(l, c->ifd, on_inotify, c);
	c->scan = loop_timer_new(l, on_scan, c);
	if (!c->iio || !c->scan) {
		err = -ENOMEM;
		goto err;
	}
	loop_io_set(c->iio, LOOP_READ);
	scan(c);
	log_info("ctr: serving every network namespace below %s (%zu now besides our own, netns "
		 "%llu)",
		 c->root, c->n_ns, (unsigned long long)c->self.ino);
	return c;
err:
	ctr_free(c);
	errno = -err;
	return NULL;
}

void ctr_free(struct ctr *c)
{
	if (!c)
		return;
	for (size_t b = 0; b < CTR_BUCKETS; b++) {
		while (c->ns[b]) {
			struct ctr_nsent *e = c->ns[b];

			c->ns[b] = e->next;
			ns_close(e);
			free(e);
		}
	}
	loop_timer_free(c->scan);
	loop_io_free(c->iio);
	if (c->ifd >= 0)
		close(c->ifd);
	if (c->self_fd >= 0)
		close(c->self_fd);
	cgs_free(c->cgs, c->n_cgs);
	cgs_free(c->next_cgs, c->n_next);
	free(c);
}

size_t ctr_count(const struct ctr *c)
{
	size_t n = 0;

	for (size_t b = 0; b < CTR_BUCKETS; b++) {
		for (const struct ctr_nsent *e = c->ns[b]; e; e = e->next)
			n += e->lfd >= 0;
	}
	return n;
}

void ctr_self(const struct ctr *c, struct ctr_ns *out)
{
	*out = c->self;
}

int ctr_cgroup_path(const struct ctr *c, uint64_t id, char *buf, size_t size)
{
	struct ctr_cg key = {.id = id}, *hit = NULL;

	if (c->n_cgs)
		hit = bsearch(&key, c->cgs, c->n_cgs, sizeof(*c->cgs), cg_cmp);
	if (!hit)
		return -ENOENT;
	if (strlen(hit->path) >= size)
		return -ENAMETOOLONG;
	strcpy(buf, hit->path);
	return 0;
}
