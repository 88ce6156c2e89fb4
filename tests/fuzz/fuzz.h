/* SPDX-License-Identifier: MIT */
/* What every harness shares: the libFuzzer entry points and a check that aborts, so a broken
 * invariant is a crash to libFuzzer and a failed test to the corpus replay alike. */
#ifndef NTUN_FUZZ_H
#define NTUN_FUZZ_H

#include <errno.h>
#include <poll.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define FUZZ_CHECK(expr)                                                                      \
	do {                                                                                  \
		if (!(expr)) {                                                                \
			fprintf(stderr, "%s:%d: FUZZ_CHECK(%s) failed\n", __FILE__, __LINE__, \
				#expr);                                                       \
			abort();                                                              \
		}                                                                             \
	} while (0)

/* A cursor over the input: harnesses take bytes from it and get zeros once it runs dry. */
struct fuzz_in {
	const uint8_t *p;
	size_t n;
};

static inline uint8_t fuzz_u8(struct fuzz_in *in)
{
	uint8_t v = 0;

	if (in->n) {
		v = *in->p++;
		in->n--;
	}
	return v;
}

static inline uint32_t fuzz_u32(struct fuzz_in *in)
{
	uint32_t v = 0;

	for (int i = 0; i < 4; i++)
		v = v << 8 | fuzz_u8(in);
	return v;
}

/* Takes up to n bytes; returns how many were taken and points *p at them. */
static inline size_t fuzz_take(struct fuzz_in *in, size_t n, const uint8_t **p)
{
	if (n > in->n)
		n = in->n;
	*p = in->p;
	in->p += n;
	in->n -= n;
	return n;
}

/* connect() that finishes what a signal interrupted (libFuzzer's SIGALRM each second for
 * -timeout can land while a loaded machine keeps even a loopback connect waiting: EINTR, and
 * the connection goes on by itself). 0 or -1 with errno. */
static inline int fuzz_connect(int fd, const struct sockaddr *sa, socklen_t len)
{
	struct pollfd p = {.fd = fd, .events = POLLOUT};
	int err = 0;
	socklen_t elen = sizeof(err);

	if (connect(fd, sa, len) == 0)
		return 0;
	if (errno != EINTR)
		return -1;
	while (poll(&p, 1, 10000) < 0)
		if (errno != EINTR)
			return -1;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) || err) {
		errno = err ? err : errno;
		return -1;
	}
	return 0;
}

/* xorshift32: the harnesses' input-seeded choices (what fails when, piece sizes). */
static inline uint32_t fuzz_rand(uint32_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 17;
	*x ^= *x << 5;
	return *x;
}

/* The size of the next piece an input is fed in, by mode (0..3): all that is left, 1 byte,
 * 1..64, or log-uniform up to 32 KiB (some pieces span several frames or records). */
static inline size_t fuzz_piece(unsigned mode, size_t left, uint32_t *rnd)
{
	switch (mode & 3) {
	case 0:
		return left;
	case 1:
		return 1;
	case 2:
		return 1 + fuzz_rand(rnd) % 64;
	default:
		return 1 + fuzz_rand(rnd) % (16u << fuzz_rand(rnd) % 12);
	}
}

#endif
