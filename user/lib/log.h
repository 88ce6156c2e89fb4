/* SPDX-License-Identifier: MIT */
/* Structured logging: one JSON (or text) line per event with level, time, component, and the
 * connection id and peer identity when known. No buffering beyond stdio's line buffer. */
#ifndef NTUN_LOG_H
#define NTUN_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

enum log_level { LOG_LVL_DEBUG, LOG_LVL_INFO, LOG_LVL_WARN, LOG_LVL_ERROR };
enum log_format { LOG_FMT_JSON, LOG_FMT_TEXT };

/* Sets the component name (borrowed, must outlive logging), threshold and format.
 * output: "stderr" (default when NULL), "stdout", or a file path opened for append.
 * Returns 0 or -errno if the file cannot be opened (logging then stays on stderr). */
int log_setup(const char *component, enum log_level level, enum log_format format,
	      const char *output);

/* Parses "debug|info|warn|error" / "json|text". Return 0 or -EINVAL. */
int log_level_parse(const char *s, enum log_level *out);
int log_format_parse(const char *s, enum log_format *out);

bool log_enabled(enum log_level level);

/* Writes one line. conn and peer may be NULL; they become fields "conn" and "peer". */
void log_write(enum log_level level, const char *conn, const char *peer, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
void log_vwrite(enum log_level level, const char *conn, const char *peer, const char *fmt,
		va_list ap) __attribute__((format(printf, 4, 0)));

/* Start-up failures only: logs at error level and exits with status 1. */
void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

#define log_debug(...)                                                     \
	do {                                                               \
		if (log_enabled(LOG_LVL_DEBUG))                            \
			log_write(LOG_LVL_DEBUG, NULL, NULL, __VA_ARGS__); \
	} while (0)
#define log_info(...)  log_write(LOG_LVL_INFO, NULL, NULL, __VA_ARGS__)
#define log_warn(...)  log_write(LOG_LVL_WARN, NULL, NULL, __VA_ARGS__)
#define log_error(...) log_write(LOG_LVL_ERROR, NULL, NULL, __VA_ARGS__)

/* Length of the well-formed UTF-8 sequence (2-4 bytes, no overlong forms, surrogates or code
 * points above U+10FFFF) that s starts with, looking at most avail bytes (a NUL ends a
 * NUL-terminated s early), or 0. For escaping: log lines here, JSON in json.c. */
size_t log_utf8_seq(const unsigned char *s, size_t avail);

#endif
