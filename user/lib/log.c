// SPDX-License-Identifier: MIT
/* Structured log lines to stderr, stdout or a file. Escapes every field in both formats, so no
 * string (a peer's included) can forge a line; does not rotate files or rate-limit (the layer
 * that logs decides how often). */
#include "log.h"

#include <errno.h>
#include <stdint.h>
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

size_t log_utf8_seq(const unsigned char *s, size_t avail)
{
	size_t n = s[0] >= 0xf0 ? 4 : s[0] >= 0xe0 ? 3 : 2;
	uint32_t cp;

	if (s[0] < 0xc2 || s[0] > 0xf4 || avail < n)
		return 0;
	cp = s[0] & (0x7f >> n);
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

/* Appends s to dst as the inside of a JSON string; returns the new length (capped). Bytes that
 * are not well-formed UTF-8 become U+FFFD, so every line stays valid JSON. */
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
		} else if (c >= 0x80) {
			size_t n = log_utf8_seq((const unsigned char *)s, SIZE_MAX);

			if (n) {
				memcpy(dst + len, s, n);
				len += n;
				s += n - 1;
			} else {
				memcpy(dst + len, "\\ufffd", 6);
				len += 6;
			}
		} else {
			dst[len++] = (char)c;
		}
	}
	return len;
}

/* Appends s to dst for a text line: control characters (< 0x20, 0x7f) become \n, \r, \t or
 * \xNN so a peer's string cannot start a line of its own, as do bytes that are not well-formed
 * UTF-8 and the Unicode line breaks; a backslash is doubled so an escape cannot be forged either. Returns the new length
 * (capped). */
static size_t text_escape(char *dst, size_t len, size_t cap, const char *s)
{
	static const char hex[] = "0123456789abcdef";

	for (; *s && len + 5 < cap; s++) {
		unsigned char c = (unsigned char)*s;
		size_t n;

		if (c == '\\' || c == '\n' || c == '\r' || c == '\t') {
			dst[len++] = '\\';
			dst[len++] = c == '\n' ? 'n' : c == '\r' ? 'r' : c == '\t' ? 't' : '\\';
		} else if (c >= 0x80 && (n = log_utf8_seq((const unsigned char *)s, SIZE_MAX)) &&
			   !(n == 2 && c == 0xc2 && (unsigned char)s[1] < 0xa0) &&
			   !(n == 3 && !memcmp(s, "\xe2\x80", 2) &&
			     ((unsigned char)s[2] & 0xfe) == 0xa8)) {
			/* Well-formed, and neither a C1 control (U+0080-U+009F, NEL among them)
			 * nor U+2028/U+2029, which some viewers also take as line breaks. */
			memcpy(dst + len, s, n);
			len += n;
			s += n - 1;
		} else if (c < 0x20 || c >= 0x7f) {
			memcpy(dst + len, "\\x", 2);
			dst[len + 2] = hex[c >> 4];
			dst[len + 3] = hex[c & 15];
			len += 4;
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
	static const char *const seps[][4] = {
		[LOG_FMT_JSON] = {"\",\"conn\":\"", "\",\"peer\":\"", "\",\"msg\":\"", "\"}"},
		[LOG_FMT_TEXT] = {" conn=", " peer=", ": ", ""},
	};
	size_t (*esc)(char *, size_t, size_t, const char *) =
		log_fmt == LOG_FMT_JSON ? json_escape : text_escape;
	char msg[1024], line[2560], ts[64];
	const char *fields[3] = {conn, peer, msg};
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

	/* JSON: {"time":"T","level":"L","component":"C"[,"conn":..][,"peer":..],"msg":"M"}
	 * text: T LEVEL C[ conn=..][ peer=..]: M */
	if (log_fmt == LOG_FMT_JSON) {
		len = append(line, len, cap, "{\"time\":\"");
		len = append(line, len, cap, ts);
		len = append(line, len, cap, "\",\"level\":\"");
		len = append(line, len, cap, level_names[level]);
		len = append(line, len, cap, "\",\"component\":\"");
	} else {
		len = append(line, len, cap, ts);
		len = append(line, len, cap, " ");
		len = append(line, len, cap, level_names[level]);
		len = append(line, len, cap,
			     level == LOG_LVL_INFO || level == LOG_LVL_WARN ? "  " : " ");
	}
	len = esc(line, len, cap, log_component);
	for (size_t i = 0; i < 3; i++) {
		if (!fields[i])
			continue;
		len = append(line, len, cap, seps[log_fmt][i]);
		len = esc(line, len, cap, fields[i]);
	}
	len = append(line, len, cap, seps[log_fmt][3]);
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
