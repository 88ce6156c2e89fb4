// SPDX-License-Identifier: MIT
/* Fuzzes the admin API's JSON writer with untrusted strings (ids, cgroup paths): whatever
 * bytes go in, out comes one valid JSON string: quoted, no raw control byte or lone quote or
 * backslash inside, every escape well-formed, every byte above 0x7f part of valid UTF-8, and
 * the same text when the input's bytes are written again as an object member. */
#include <string.h>

#include "buf.h"
#include "fuzz.h"
#include "json.h"
#include "log.h"

static bool hex(uint8_t c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* A whole JSON string token from p[0] (a '"'); its length, or 0 if it is not one. */
static size_t string_token(const uint8_t *p, size_t n)
{
	size_t i = 1, k;

	if (n < 2 || p[0] != '"')
		return 0;
	while (i < n && p[i] != '"') {
		if (p[i] == '\\') {
			if (i + 1 >= n)
				return 0;
			if (p[i + 1] == 'u') {
				if (i + 5 >= n || !hex(p[i + 2]) || !hex(p[i + 3]) ||
				    !hex(p[i + 4]) || !hex(p[i + 5]))
					return 0;
				i += 6;
			} else if (strchr("\"\\/bfnrt", p[i + 1]) && p[i + 1]) {
				i += 2;
			} else {
				return 0;
			}
		} else if (p[i] < 0x20) {
			return 0;
		} else if (p[i] >= 0x80) {
			k = log_utf8_seq(p + i, n - i);
			if (!k)
				return 0;
			i += k;
		} else {
			i++;
		}
	}
	return i < n ? i + 1 : 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct buf a = BUF_INIT, b = BUF_INIT;
	struct json j;
	size_t t;

	json_init(&j, &a);
	json_strn(&j, NULL, (const char *)data, size);
	FUZZ_CHECK(json_finish(&j) == 0);
	t = string_token(buf_head(&a), buf_len(&a));
	FUZZ_CHECK(t > 0 && t + 1 == buf_len(&a) && buf_head(&a)[t] == '\n');

	/* As a member of an object: the same text after the key. */
	json_init(&j, &b);
	json_object(&j, NULL);
	json_strn(&j, "k", (const char *)data, size);
	json_end(&j);
	FUZZ_CHECK(json_finish(&j) == 0);
	FUZZ_CHECK(buf_len(&b) == t + 7 && !memcmp(buf_head(&b), "{\"k\":", 5) &&
		   !memcmp(buf_head(&b) + 5, buf_head(&a), t) &&
		   !memcmp(buf_head(&b) + 5 + t, "}\n", 2));
	buf_release(&a);
	buf_release(&b);
	return 0;
}
