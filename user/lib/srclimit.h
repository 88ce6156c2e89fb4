/* SPDX-License-Identifier: MIT */
/* Admission counts for work in progress (TLS handshakes) per source IPv4 address, with a cap in
 * total and one per source. The per-source table has a fixed size: it only holds sources with
 * work in progress, never more than the total cap. No I/O, no clock. */
#ifndef NTUN_SRCLIMIT_H
#define NTUN_SRCLIMIT_H

#include <stdint.h>

struct srclimit;

enum srclimit_verdict {
	SRCLIMIT_OK,	 /* a slot was taken: give it back with srclimit_put */
	SRCLIMIT_TOTAL,	 /* max_total slots are taken */
	SRCLIMIT_SOURCE, /* this source holds max_per_source slots */
};

/* A limiter admitting max_total (>= 1) slots, at most max_per_source (>= 1) of them for one
 * address. NULL + errno (EINVAL, ENOMEM). Caller owns it; srclimit_free(NULL) is a no-op. */
struct srclimit *srclimit_new(uint32_t max_total, uint32_t max_per_source);
void srclimit_free(struct srclimit *l);

/* Changes both caps (same rules as srclimit_new). Slots already taken stay taken, even above
 * the new caps; new ones are admitted once the counts are below them. 0, -EINVAL, or -ENOMEM
 * (the table had to grow and could not: the old caps stay). */
int srclimit_set(struct srclimit *l, uint32_t max_total, uint32_t max_per_source);

/* Takes a slot for addr (host order) if both caps allow. */
enum srclimit_verdict srclimit_take(struct srclimit *l, uint32_t addr);

/* Gives back a slot srclimit_take granted for addr. */
void srclimit_put(struct srclimit *l, uint32_t addr);

/* Slots taken in total, and by addr. */
uint32_t srclimit_total(const struct srclimit *l);
uint32_t srclimit_count(const struct srclimit *l, uint32_t addr);

/* The total cap in force. */
uint32_t srclimit_max_total(const struct srclimit *l);

/* Sources that hold at least one slot (entries in the table). */
uint32_t srclimit_sources(const struct srclimit *l);

#endif
