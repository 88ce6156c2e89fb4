// SPDX-License-Identifier: MIT
/* A long path between two test namespaces, for a kernel without netem: a TUN device in each
 * namespace, and every packet read from one is written to the other DELAY_MS later, in order.
 * Each direction holds at most QUEUE_MAX bytes in flight; what would go beyond is dropped, as
 * a router's full queue would. The test gives the devices their addresses and brings them up.
 *
 *   delayline NS_A DEV_A NS_B DEV_B DELAY_MS
 *
 * NS_* are names under /run/netns. Runs until SIGTERM or SIGINT; prints "ready" once both
 * devices exist, and on exit the packets and bytes it carried and dropped each way. */
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#define PKT_MAX	  65536
#define QUEUE_MAX (64u << 20)

struct pkt {
	struct pkt *next;
	uint64_t due_ns;
	size_t len;
	uint8_t data[];
};

struct dir {
	int in, out;
	struct pkt *head, *tail;
	size_t queued;
	uint64_t pkts, bytes, dropped;
};

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* A TUN device named dev in namespace ns (we return to our own namespace afterwards). */
static int tun_in(const char *ns, const char *dev)
{
	char path[256];
	struct ifreq ifr;
	int self, nsfd, fd;

	self = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	snprintf(path, sizeof(path), "/run/netns/%s", ns);
	nsfd = open(path, O_RDONLY | O_CLOEXEC);
	if (self < 0 || nsfd < 0 || setns(nsfd, CLONE_NEWNET) < 0) {
		fprintf(stderr, "delayline: namespace %s: %s\n", ns, strerror(errno));
		exit(1);
	}
	fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC | O_NONBLOCK);
	memset(&ifr, 0, sizeof(ifr));
	ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", dev);
	if (fd < 0 || ioctl(fd, TUNSETIFF, &ifr) < 0) {
		fprintf(stderr, "delayline: tun %s in %s: %s\n", dev, ns, strerror(errno));
		exit(1);
	}
	if (setns(self, CLONE_NEWNET) < 0) {
		fprintf(stderr, "delayline: back to our namespace: %s\n", strerror(errno));
		exit(1);
	}
	close(self);
	close(nsfd);
	return fd;
}

/* Reads what waits on d->in into the queue, due delay_ns from now. */
static void take(struct dir *d, uint64_t delay_ns)
{
	static uint8_t buf[PKT_MAX];

	for (int i = 0; i < 256; i++) {
		ssize_t n = read(d->in, buf, sizeof(buf));
		struct pkt *p;

		if (n <= 0)
			return;
		if (d->queued + (size_t)n > QUEUE_MAX || !(p = malloc(sizeof(*p) + (size_t)n))) {
			d->dropped++;
			continue;
		}
		memcpy(p->data, buf, (size_t)n);
		p->len = (size_t)n;
		p->due_ns = now_ns() + delay_ns;
		p->next = NULL;
		if (d->tail)
			d->tail->next = p;
		else
			d->head = p;
		d->tail = p;
		d->queued += (size_t)n;
	}
}

/* Writes the packets that are due; returns ms until the next one (-1: none waits). */
static int give(struct dir *d)
{
	uint64_t now = now_ns();

	while (d->head && d->head->due_ns <= now) {
		struct pkt *p = d->head;

		/* a full TUN queue in the namespace drops, as a link would */
		if (write(d->out, p->data, p->len) == (ssize_t)p->len) {
			d->pkts++;
			d->bytes += p->len;
		} else {
			d->dropped++;
		}
		d->head = p->next;
		if (!d->head)
			d->tail = NULL;
		d->queued -= p->len;
		free(p);
	}
	if (!d->head)
		return -1;
	return (int)((d->head->due_ns - now) / 1000000u) + 1;
}

int main(int argc, char **argv)
{
	struct dir ab, ba;
	struct pollfd pf[2];
	uint64_t delay_ns;
	char *end;
	long ms;

	if (argc != 6) {
		fprintf(stderr, "usage: delayline NS_A DEV_A NS_B DEV_B DELAY_MS\n");
		return 2;
	}
	ms = strtol(argv[5], &end, 10);
	if (*end || ms < 0 || ms > 10000) {
		fprintf(stderr, "delayline: DELAY_MS must be 0-10000\n");
		return 2;
	}
	delay_ns = (uint64_t)ms * 1000000u;
	memset(&ab, 0, sizeof(ab));
	memset(&ba, 0, sizeof(ba));
	ab.in = ba.out = tun_in(argv[1], argv[2]);
	ab.out = ba.in = tun_in(argv[3], argv[4]);
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	printf("ready\n");
	fflush(stdout);
	pf[0] = (struct pollfd){.fd = ab.in, .events = POLLIN};
	pf[1] = (struct pollfd){.fd = ba.in, .events = POLLIN};
	while (!stop) {
		int t1 = give(&ab), t2 = give(&ba), t;

		t = t1 < 0 ? t2 : t2 < 0 ? t1 : t1 < t2 ? t1 : t2;
		if (poll(pf, 2, t < 0 || t > 100 ? 100 : t) < 0 && errno != EINTR)
			break;
		if (pf[0].revents & POLLIN)
			take(&ab, delay_ns);
		if (pf[1].revents & POLLIN)
			take(&ba, delay_ns);
	}
	printf("a->b %llu packets %llu bytes %llu dropped; b->a %llu packets %llu bytes %llu "
	       "dropped\n",
	       (unsigned long long)ab.pkts, (unsigned long long)ab.bytes,
	       (unsigned long long)ab.dropped, (unsigned long long)ba.pkts,
	       (unsigned long long)ba.bytes, (unsigned long long)ba.dropped);
	return 0;
}
