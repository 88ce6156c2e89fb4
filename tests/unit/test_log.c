// SPDX-License-Identifier: MIT
/* log: whatever a string holds (a peer's version or drain reason, a connection id), each call
 * writes exactly one line, in text and in JSON format; control characters, backslashes, quotes
 * and malformed UTF-8 come out escaped, well-formed UTF-8 unchanged. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "log.h"

static char out_path[] = "/tmp/ntun-test-log.XXXXXX";

/* Logs msg (as a %s argument, with conn and peer) in format fmt and returns the file's whole
 * contents (static buffer). */
static const char *log_one(enum log_format fmt, const char *conn, const char *peer, const char *msg)
{
	static char got[8192];
	FILE *f;
	size_t n;

	CHECK(truncate(out_path, 0) == 0);
	CHECK_INT_EQ(log_setup("test", LOG_LVL_DEBUG, fmt, out_path), 0);
	log_write(LOG_LVL_WARN, conn, peer, "said: %s", msg);
	log_setup(NULL, LOG_LVL_INFO, fmt, NULL); /* closes the file */
	f = fopen(out_path, "r");
	CHECK(f != NULL);
	if (!f)
		return "";
	n = fread(got, 1, sizeof(got) - 1, f);
	got[n] = '\0';
	fclose(f);
	return got;
}

/* The message part of a text line, after "component...: ". */
static const char *text_msg(const char *line)
{
	const char *p = strstr(line, ": said: ");

	return p ? p + 2 : "";
}

static size_t count(const char *s, char c)
{
	size_t n = 0;

	for (; *s; s++)
		n += *s == c;
	return n;
}

static void test_text(void)
{
	static const struct {
		const char *in, *want;
	} cases[] = {
		{"plain", "said: plain\n"},
		{"v1\n2026-01-01T00:00:00.000Z error ntun: forged",
		 "said: v1\\n2026-01-01T00:00:00.000Z error ntun: forged\n"},
		{"a\rb\tc", "said: a\\rb\\tc\n"},
		{"bell\a esc\x1b[31m del\x7f", "said: bell\\x07 esc\\x1b[31m del\\x7f\n"},
		{"back\\nslash", "said: back\\\\nslash\n"},
		{"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80",
		 "said: caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\n"},
		{"nel\xc2\x85 ls\xe2\x80\xa8 ps\xe2\x80\xa9",
		 "said: nel\\xc2\\x85 ls\\xe2\\x80\\xa8 ps\\xe2\\x80\\xa9\n"},
		{"bad\xff \xc0\xaf \xed\xa0\x80 cut\xe2\x82",
		 "said: bad\\xff \\xc0\\xaf \\xed\\xa0\\x80 cut\\xe2\\x82\n"},
	};
	const char *line;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		line = log_one(LOG_FMT_TEXT, NULL, NULL, cases[i].in);
		CHECK_STR_EQ(text_msg(line), cases[i].want);
		CHECK_INT_EQ(count(line, '\n'), 1);
	}
	/* conn and peer fields are escaped too; the level is padded as before. */
	line = log_one(LOG_FMT_TEXT, "c1\nx", "spiffe://td/client/a\r\n", "m");
	CHECK_STR_CONTAINS(line,
			   " warn  test conn=c1\\nx peer=spiffe://td/client/a\\r\\n: said: m\n");
	CHECK_INT_EQ(count(line, '\n'), 1);
}

static void test_json(void)
{
	static const struct {
		const char *in, *want;
	} cases[] = {
		{"v1\n{\"level\":\"error\"}",
		 "\"msg\":\"said: v1\\n{\\\"level\\\":\\\"error\\\"}\"}\n"},
		{"a\rb\tc\x01\x1f\x7f",
		 "\"msg\":\"said: a\\u000db\\u0009c\\u0001\\u001f\\u007f\"}\n"},
		{"back\\slash", "\"msg\":\"said: back\\\\slash\"}\n"},
		{"caf\xc3\xa9 \xf0\x9f\x98\x80",
		 "\"msg\":\"said: caf\xc3\xa9 \xf0\x9f\x98\x80\"}\n"},
		{"bad\xff \xc0\xaf cut\xe2\x82",
		 "\"msg\":\"said: bad\\ufffd \\ufffd\\ufffd cut\\ufffd\\ufffd\"}\n"},
	};
	const char *line;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		line = log_one(LOG_FMT_JSON, NULL, NULL, cases[i].in);
		CHECK_STR_CONTAINS(line, cases[i].want);
		CHECK_INT_EQ(count(line, '\n'), 1);
	}
	line = log_one(LOG_FMT_JSON, "c\"1", "p\n", "m");
	CHECK_STR_CONTAINS(line, "\"conn\":\"c\\\"1\",\"peer\":\"p\\n\",\"msg\":\"said: m\"}\n");
}

/* A message longer than the line buffer is cut, still one line. */
static void test_long(void)
{
	static char big[4096];
	const char *line;

	memset(big, '\n', sizeof(big) - 1);
	line = log_one(LOG_FMT_TEXT, NULL, NULL, big);
	CHECK_INT_EQ(count(line, '\n'), 1);
	line = log_one(LOG_FMT_JSON, NULL, NULL, big);
	CHECK_INT_EQ(count(line, '\n'), 1);
}

int main(void)
{
	int fd = mkstemp(out_path);

	if (fd < 0) {
		perror("mkstemp");
		return 1;
	}
	close(fd);
	test_text();
	test_json();
	test_long();
	unlink(out_path);
	return check_done("test_log");
}
