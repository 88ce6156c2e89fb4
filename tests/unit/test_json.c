// SPDX-License-Identifier: MIT
/* json: the writer's structure (commas, nesting, keys) and its escaping of untrusted strings:
 * quotes, backslashes, control bytes, DEL, NUL inside a length-given string, and bytes that are
 * not valid UTF-8 (lone continuation, overlong, surrogate, truncated) as U+FFFD. */
#include <errno.h>

#include "buf.h"
#include "check.h"
#include "json.h"

/* The document as a C string (static buffer). */
static const char *doc(struct buf *b)
{
	static char s[1024];

	snprintf(s, sizeof(s), "%.*s", (int)buf_len(b), (const char *)buf_head(b));
	return s;
}

static const char *one(const char *s, size_t len)
{
	static struct buf b;
	struct json j;

	buf_release(&b);
	buf_init(&b);
	json_init(&j, &b);
	json_strn(&j, NULL, s, len);
	CHECK_INT_EQ(json_finish(&j), 0);
	return doc(&b);
}

#define ONE(s) one(s, sizeof(s) - 1)

static void test_structure(void)
{
	struct buf b = BUF_INIT;
	struct json j;

	json_init(&j, &b);
	json_object(&j, NULL);
	json_str(&j, "daemon", "server");
	json_u64(&j, "n", 18446744073709551615ull);
	json_i64(&j, "neg", -5);
	json_bool(&j, "t", true);
	json_null(&j, "z");
	json_str(&j, "nul", NULL);
	json_array(&j, "list");
	json_u64(&j, NULL, 1);
	json_object(&j, NULL);
	json_str(&j, "a\"b", "c");
	json_end(&j);
	json_array(&j, NULL);
	json_end(&j);
	json_end(&j);
	json_object(&j, "empty");
	json_end(&j);
	CHECK_INT_EQ(json_finish(&j), 0); /* closes the outer object */
	CHECK_STR_EQ(doc(&b), "{\"daemon\":\"server\",\"n\":18446744073709551615,\"neg\":-5,"
			      "\"t\":true,\"z\":null,\"nul\":null,\"list\":[1,{\"a\\\"b\":\"c\"},"
			      "[]],\"empty\":{}}\n");
	buf_release(&b);

	/* Misuse sticks as an error. */
	buf_init(&b);
	json_init(&j, &b);
	json_end(&j);
	CHECK_INT_EQ(json_finish(&j), -EINVAL);
	buf_release(&b);
	buf_init(&b);
	json_init(&j, &b);
	for (int i = 0; i < JSON_DEPTH + 1; i++)
		json_array(&j, NULL);
	CHECK_INT_EQ(json_finish(&j), -EINVAL);
	buf_release(&b);
}

static void test_escape(void)
{
	CHECK_STR_EQ(ONE("plain-id_1.2"), "\"plain-id_1.2\"\n");
	CHECK_STR_EQ(ONE("a\"b\\c"), "\"a\\\"b\\\\c\"\n");
	CHECK_STR_EQ(ONE("\"},\"evil\":1,{\""), "\"\\\"},\\\"evil\\\":1,{\\\"\"\n");
	CHECK_STR_EQ(ONE("l1\nl2\r\t"), "\"l1\\nl2\\r\\t\"\n");
	CHECK_STR_EQ(ONE("\x01\x1f\x7f"), "\"\\u0001\\u001f\\u007f\"\n");
	CHECK_STR_EQ(ONE("a\0b"), "\"a\\u0000b\"\n");
	CHECK_STR_EQ(ONE("</script>"), "\"</script>\"\n");
	/* Valid UTF-8 passes as it is: é, €, U+1F600. */
	CHECK_STR_EQ(ONE("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"),
		     "\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"\n");
	/* Not UTF-8: each bad byte is U+FFFD, the rest is kept. */
	CHECK_STR_EQ(ONE("a\x80z"), "\"a\\ufffdz\"\n");
	CHECK_STR_EQ(ONE("\xc0\xaf"), "\"\\ufffd\\ufffd\"\n");		  /* overlong '/' */
	CHECK_STR_EQ(ONE("\xed\xa0\x80"), "\"\\ufffd\\ufffd\\ufffd\"\n"); /* surrogate */
	CHECK_STR_EQ(ONE("x\xe2\x82"), "\"x\\ufffd\\ufffd\"\n");	  /* truncated */
	CHECK_STR_EQ(ONE("\xf5\x80\x80\x80"), "\"\\ufffd\\ufffd\\ufffd\\ufffd\"\n");
	CHECK_STR_EQ(ONE("\xff"), "\"\\ufffd\"\n");
}

int main(void)
{
	test_structure();
	test_escape();
	return check_done("test_json");
}
