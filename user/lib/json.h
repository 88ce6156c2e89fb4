/* SPDX-License-Identifier: MIT */
/* A streaming JSON writer into a buf, for the admin API: objects, arrays, strings escaped
 * whatever bytes they hold (ids and paths come from peers), integers, booleans, null. Keeps
 * no tree; the caller writes in order. Not a parser. */
#ifndef NTUN_JSON_H
#define NTUN_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct buf;

#define JSON_DEPTH 16

struct json {
	struct buf *out;	    /* borrowed */
	int depth;		    /* open objects and arrays */
	bool first[JSON_DEPTH + 1]; /* nothing written yet at this depth */
	char close[JSON_DEPTH + 1]; /* '}' or ']' for each open depth */
	int err;		    /* first error: -ENOMEM, or -EINVAL (misuse, too deep) */
};

/* Starts a document in out (appended to). */
void json_init(struct json *j, struct buf *out);

/* Every writer takes key: the member name inside an object, NULL inside an array or at the
 * top. Errors stick in j->err; later calls do nothing. */
void json_object(struct json *j, const char *key);
void json_array(struct json *j, const char *key);
void json_end(struct json *j); /* closes the innermost object or array */

/* s (NULL writes null) as a JSON string: '"', '\\' and control characters escaped, bytes that
 * are not valid UTF-8 each written as U+FFFD. json_strn takes len bytes, NULs included. */
void json_str(struct json *j, const char *key, const char *s);
void json_strn(struct json *j, const char *key, const char *s, size_t len);
void json_u64(struct json *j, const char *key, uint64_t v);
void json_i64(struct json *j, const char *key, int64_t v);
void json_bool(struct json *j, const char *key, bool v);
void json_null(struct json *j, const char *key);

/* Ends the document (every object and array closed, a newline added). 0 or j->err. */
int json_finish(struct json *j);

#endif
