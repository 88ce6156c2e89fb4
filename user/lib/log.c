// SPDX-License-Identifier: MIT
/* Structured log lines to stderr, stdout or a file. Formats JSON with escaping; does not
 * rotate files or rate-limit (the layer that logs decides how often). */
#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

static const char *log_component = "ntun";
static enum log_level log_threshold = LOG_LVL_INFO;
static enum log_format log_fmt = LOG_FMT_JSON;
static FILE *log_out;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

int log_setup(const char *component, enum log_level level, enum log_format format,
	      const char *output)
{
	FILE *f;

	if (component)
		log_component = component;
	log_threshold = level;
	log_fmt = format;
	if (log_out && log_out != stderr && log_out != stdout)
		fclose(log_out);
	log_out = stderr;
	if (!output || !strcmp(output, "stderr"))
		return 0;
	if (!strcmp(output, "stdout")) {
		log_out = stdout;
		setvbuf(stdout, NULL, _IOLBF, 0);
		return 0;
	}
	f = fopen(output, "ae");
	if (!f)
		return -errno;
	setvbuf(f, NULL, _IOLBF, 0);
	log_out = f;
	return 0;
}

int log_level_parse(const char *s, enum log_level *out)
{
	for (unsigned i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
		if (!strcmp(s, level_names[i])) {
			*out = (enum log_level)i;
			return 0;
		}
	}
	if (!strcmp(s, "warning")) {
		*out = LOG_LVL_WARN;
		return 0;
	}
	return -EINVAL;
}

int log_format_parse(const char *s, enum log_format *out)
{
	if (!strcmp(s, "json"))
		*out = LOG_FMT_JSON;
	else if (!strcmp(s, "text"))
		*out = LOG_FMT_TEXT;
	else
		return -EINVAL;
	return 0;
}

bool log_enabled(enum log_level level)
{
	return level >= log_threshold;
}

/* Appends s to dst as the inside of a JSON string; returns the new length (capped). */
static size_t json_escape(char *dst, size_t len, size_t cap, const char *s)
{
	static const char hex[] = "0123456789abcdef";

	for (; *s && len + 7 < cap; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\') {
			dst[len++] = '\\';
			dst[len++] = (char)c;
		} else if (c == '\n') {
			dst[len++] = '\\';
			dst[len++] = 'n';
		} else if (c < 0x20 || c == 0x7f) {
			memcpy(dst + len, "\\u00", 4);
			dst[len + 4] = hex[c >> 4];
			dst[len + 5] = hex[c & 15];
			len += 6;
		} else {
			dst[len++] = (char)c;
		}
	}
	return len;
}

static size_t append(char *dst, size_t len, size_t cap, const char *s)
{
	size_t n = strlen(s);

	if (len + n >= cap)
		n = cap - len - 1;
	memcpy(dst + len, s, n);
	return len + n;
}

void log_vwrite(enum log_level level, const char *conn, const char *peer, const char *fmt,
		va_list ap)
{
	char msg[1024], line[2560], ts[64];
	struct timeval tv;
	struct tm tm;
	size_t len = 0, cap = sizeof(line) - 2;
	FILE *out = log_out ? log_out : stderr;
	int saved = errno;

	if (!log_enabled(level))
		return;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	snprintf(ts, sizeof(ts), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
		 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
		 (long)(tv.tv_usec / 1000));

	if (log_fmt == LOG_FMT_JSON) {
		len = append(line, len, cap, "{\"time\":\"");
		len = append(line, len, cap, ts);
		len = append(line, len, cap, "\",\"level\":\"");
		len = append(line, len, cap, level_names[level]);
		len = append(line, len, cap, "\",\"component\":\"");
		len = json_escape(line, len, cap, log_component);
		if (conn) {
			len = append(line, len, cap, "\",\"conn\":\"");
			len = json_escape(line, len, cap, conn);
		}
		if (peer) {
			len = append(line, len, cap, "\",\"peer\":\"");
			len = json_escape(line, len, cap, peer);
		}
		len = append(line, len, cap, "\",\"msg\":\"");
		len = json_escape(line, len, cap, msg);
		len = append(line, len, cap, "\"}");
	} else {
		len = (size_t)snprintf(line, cap, "%s %-5s %s%s%s%s%s: %s", ts, level_names[level],
				       log_component, conn ? " conn=" : "", conn ? conn : "",
				       peer ? " peer=" : "", peer ? peer : "", msg);
		if (len >= cap)
			len = cap - 1;
	}
	line[len++] = '\n';
	fwrite(line, 1, len, out);
	fflush(out);
	errno = saved;
}

void log_write(enum log_level level, const char *conn, const char *peer, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vwrite(level, conn, peer, fmt, ap);
	va_end(ap);
}

void fatal(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vwrite(LOG_LVL_ERROR, NULL, NULL, fmt, ap);
	va_end(ap);
	exit(1);
}
