// SPDX-License-Identifier: MIT
/* Per-source admission counts in an open-addressing table (linear probing, deletion by
 * backward shift, so no tombstones). An entry exists only while its count is above zero, so
 * the table never holds more than max_total entries; it is sized for twice that, and the
 * hash is seeded so that chosen source addresses cannot line up in one probe run. */
#include "srclimit.h"

#include <errno.h>
#include <stdlib.h>

struct src_slot {
	uint32_t addr;
	uint32_t count; /* 0 = empty */
};

struct srclimit {
	uint32_t max_total, max_per_source;
	uint32_t total, used;
	uint32_t mask; /* table size - 1 */
	uint32_t seed;
	struct src_slot *tab;
};

static uint32_t slot_of(const struct srclimit *l, uint32_t addr)
{
	uint32_t h = (addr ^ l->seed) * 0x9e3779b1u;

	h ^= h >> 16;
	return h & l->mask;
}

/* The slot holding addr, or the empty slot where it would go. */
static struct src_slot *find(const struct srclimit *l, uint32_t addr)
{
	uint32_t i = slot_of(l, addr);

	while (l->tab[i].count && l->tab[i].addr != addr)
		i = (i + 1) & l->mask;
	return &l->tab[i];
}

/* Twice max_total slots (a power of two, at least 16): the load stays at or below one half. */
static uint32_t table_size(uint32_t max_total)
{
	uint32_t n = 16;

	while (n < 2 * (uint64_t)max_total && n < (1u << 31))
		n <<= 1;
	return n;
}

static int resize(struct srclimit *l, uint32_t size)
{
	struct src_slot *old = l->tab, *tab = calloc(size, sizeof(*tab));
	uint32_t old_size = l->tab ? l->mask + 1 : 0;

	if (!tab)
		return -ENOMEM;
	l->tab = tab;
	l->mask = size - 1;
	for (uint32_t i = 0; i < old_size; i++)
		if (old[i].count)
			*find(l, old[i].addr) = old[i];
	free(old);
	return 0;
}

int srclimit_set(struct srclimit *l, uint32_t max_total, uint32_t max_per_source)
{
	uint32_t size = table_size(max_total);

	if (!max_total || !max_per_source || max_total > (1u << 30))
		return -EINVAL;
	/* Entries taken above a lowered cap stay until put back: never shrink below them. */
	if ((!l->tab || size > l->mask + 1) && resize(l, size) < 0)
		return -ENOMEM;
	l->max_total = max_total;
	l->max_per_source = max_per_source;
	return 0;
}

struct srclimit *srclimit_new(uint32_t max_total, uint32_t max_per_source)
{
	struct srclimit *l = calloc(1, sizeof(*l));
	int rv;

	if (!l)
		return NULL;
	l->seed = (uint32_t)random();
	rv = srclimit_set(l, max_total, max_per_source);
	if (rv < 0) {
		free(l);
		errno = -rv;
		return NULL;
	}
	return l;
}

void srclimit_free(struct srclimit *l)
{
	if (!l)
		return;
	free(l->tab);
	free(l);
}

enum srclimit_verdict srclimit_take(struct srclimit *l, uint32_t addr)
{
	struct src_slot *s;

	if (l->total >= l->max_total || l->used > l->mask / 2)
		return SRCLIMIT_TOTAL;
	s = find(l, addr);
	if (s->count >= l->max_per_source)
		return SRCLIMIT_SOURCE;
	if (!s->count) {
		s->addr = addr;
		l->used++;
	}
	s->count++;
	l->total++;
	return SRCLIMIT_OK;
}

void srclimit_put(struct srclimit *l, uint32_t addr)
{
	struct src_slot *s = find(l, addr);
	uint32_t i, j, home;

	if (!s->count)
		return; /* not ours: nothing to give back */
	l->total--;
	if (--s->count)
		return;
	l->used--;
	/* Backward shift: pull later members of the probe run into the hole when the hole lies
	 * between their home slot and where they sit. */
	i = (uint32_t)(s - l->tab);
	for (j = (i + 1) & l->mask; l->tab[j].count; j = (j + 1) & l->mask) {
		home = slot_of(l, l->tab[j].addr);
		if (((j - home) & l->mask) >= ((j - i) & l->mask)) {
			l->tab[i] = l->tab[j];
			l->tab[j].count = 0;
			i = j;
		}
	}
}

uint32_t srclimit_total(const struct srclimit *l)
{
	return l->total;
}

uint32_t srclimit_count(const struct srclimit *l, uint32_t addr)
{
	return find(l, addr)->count;
}

uint32_t srclimit_max_total(const struct srclimit *l)
{
	return l->max_total;
}

uint32_t srclimit_sources(const struct srclimit *l)
{
	return l->used;
}
