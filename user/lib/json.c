// SPDX-License-Identifier: MIT
/* The admin API's JSON: written straight into the response buffer, escaping every string, so
 * a peer's id or a cgroup path cannot break out of its string or make the document invalid. */
#include "json.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "buf.h"
#include "log.h"

static void put(struct json *j, const void *p, size_t n)
{
	if (!j->err && buf_append(j->out, p, n) < 0)
		j->err = -ENOMEM;
}

static void put_str(struct json *j, const char *s, size_t len);

/* The comma and the member name before a value. */
static bool member(struct json *j, const char *key)
{
	if (j->err)
		return false;
	if (!j->first[j->depth])
		put(j, ",", 1);
	j->first[j->depth] = false;
	if (key) {
		put_str(j, key, strlen(key));
		put(j, ":", 1);
	}
	return !j->err;
}

void json_init(struct json *j, struct buf *out)
{
	memset(j, 0, sizeof(*j));
	j->out = out;
	j->first[0] = true;
}

static void open_(struct json *j, const char *key, char c, char close)
{
	if (!member(j, key))
		return;
	if (j->depth >= JSON_DEPTH) {
		j->err = -EINVAL;
		return;
	}
	put(j, &c, 1);
	j->depth++;
	j->first[j->depth] = true;
	j->close[j->depth] = close;
}

void json_object(struct json *j, const char *key)
{
	open_(j, key, '{', '}');
}

void json_array(struct json *j, const char *key)
{
	open_(j, key, '[', ']');
}

void json_end(struct json *j)
{
	if (j->err)
		return;
	if (j->depth == 0) {
		j->err = -EINVAL;
		return;
	}
	put(j, &j->close[j->depth], 1);
	j->depth--;
}

static void put_str(struct json *j, const char *s, size_t len)
{
	const uint8_t *p = (const uint8_t *)s;
	size_t i = 0, run = 0, n;
	char esc[8];

	put(j, "\"", 1);
	while (i < len) {
		const char *e = NULL;

		if (p[i] == '"')
			e = "\\\"";
		else if (p[i] == '\\')
			e = "\\\\";
		else if (p[i] == '\n')
			e = "\\n";
		else if (p[i] == '\r')
			e = "\\r";
		else if (p[i] == '\t')
			e = "\\t";
		else if (p[i] < 0x20 || p[i] == 0x7f) {
			snprintf(esc, sizeof(esc), "\\u%04x", p[i]);
			e = esc;
		}
		n = e ? 0 : p[i] < 0x80 ? 1 : log_utf8_seq(p + i, len - i);
		if (!e && n == 0)
			e = "\\ufffd";
		if (e) {
			put(j, p + i - run, run);
			put(j, e, strlen(e));
			run = 0;
			i++;
		} else {
			run += n;
			i += n;
		}
	}
	put(j, p + i - run, run);
	put(j, "\"", 1);
}

void json_strn(struct json *j, const char *key, const char *s, size_t len)
{
	if (member(j, key))
		put_str(j, s, len);
}

void json_str(struct json *j, const char *key, const char *s)
{
	if (!s)
		json_null(j, key);
	else if (member(j, key))
		put_str(j, s, strlen(s));
}

static void raw(struct json *j, const char *key, const char *v)
{
	if (member(j, key))
		put(j, v, strlen(v));
}

void json_u64(struct json *j, const char *key, uint64_t v)
{
	char b[24];

	snprintf(b, sizeof(b), "%" PRIu64, v);
	raw(j, key, b);
}

void json_i64(struct json *j, const char *key, int64_t v)
{
	char b[24];

	snprintf(b, sizeof(b), "%" PRId64, v);
	raw(j, key, b);
}

void json_bool(struct json *j, const char *key, bool v)
{
	raw(j, key, v ? "true" : "false");
}

void json_null(struct json *j, const char *key)
{
	raw(j, key, "null");
}

int json_finish(struct json *j)
{
	while (!j->err && j->depth > 0)
		json_end(j);
	put(j, "\n", 1);
	return j->err;
}
