/* SPDX-License-Identifier: MIT */
/* Tiny assertions for unit tests: each failed check prints file:line and the expression (and
 * values for the typed forms) and is counted; check_done() reports and gives the exit status. */
#ifndef NTUN_CHECK_H
#define NTUN_CHECK_H

#include <stdio.h>
#include <string.h>

static unsigned check_total __attribute__((unused));
static unsigned check_failed __attribute__((unused));

#define CHECK(expr)                                                                              \
	do {                                                                                     \
		check_total++;                                                                   \
		if (!(expr)) {                                                                   \
			check_failed++;                                                          \
			fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #expr); \
		}                                                                                \
	} while (0)

/* Integers of any type, compared and printed as long long. */
#define CHECK_INT_EQ(a, b)                                                                    \
	do {                                                                                  \
		long long check_a_ = (long long)(a), check_b_ = (long long)(b);               \
		check_total++;                                                                \
		if (check_a_ != check_b_) {                                                   \
			check_failed++;                                                       \
			fprintf(stderr, "%s:%d: CHECK_INT_EQ(%s, %s) failed: %lld != %lld\n", \
				__FILE__, __LINE__, #a, #b, check_a_, check_b_);              \
		}                                                                             \
	} while (0)

/* Strings; NULL equals only NULL. */
#define CHECK_STR_EQ(a, b)                                                                    \
	do {                                                                                  \
		const char *check_a_ = (a), *check_b_ = (b);                                  \
		check_total++;                                                                \
		if (check_a_ != check_b_ &&                                                   \
		    (!check_a_ || !check_b_ || strcmp(check_a_, check_b_))) {                 \
			check_failed++;                                                       \
			fprintf(stderr, "%s:%d: CHECK_STR_EQ(%s, %s) failed: '%s' != '%s'\n", \
				__FILE__, __LINE__, #a, #b, check_a_ ? check_a_ : "(null)",   \
				check_b_ ? check_b_ : "(null)");                              \
		}                                                                             \
	} while (0)

/* haystack contains needle (e.g. an error message names the right file:line). */
#define CHECK_STR_CONTAINS(haystack, needle)                                            \
	do {                                                                            \
		const char *check_h_ = (haystack), *check_n_ = (needle);                \
		check_total++;                                                          \
		if (!check_h_ || !strstr(check_h_, check_n_)) {                         \
			check_failed++;                                                 \
			fprintf(stderr,                                                 \
				"%s:%d: CHECK_STR_CONTAINS(%s, %s) failed: '%s' lacks " \
				"'%s'\n",                                               \
				__FILE__, __LINE__, #haystack, #needle,                 \
				check_h_ ? check_h_ : "(null)", check_n_);              \
		}                                                                       \
	} while (0)

/* Prints a summary line; returns the process exit status (0, or 1 if any check failed). */
static inline int check_done(const char *name)
{
	fprintf(stderr, "%s: %u checks, %u failed\n", name, check_total, check_failed);
	return check_failed ? 1 : 0;
}

#endif
