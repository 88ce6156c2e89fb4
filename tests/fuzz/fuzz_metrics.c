// SPDX-License-Identifier: MIT
/* Fuzzes what /metrics reads from a client: metrics_request_check on the input as a request
 * head, metrics_host_allowed on it as a Host value, and the two agreeing: a value the host
 * check allows, put into a request as its only Host header, gets that request served. */
#include <string.h>

#include "fuzz.h"
#include "metrics.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char pre[] = "GET /metrics HTTP/1.1\r\nHost: ", post[] = "\r\n\r\n";
	char req[sizeof(pre) + 64 + sizeof(post)];
	enum metrics_verdict v = metrics_request_check((const char *)data, size);

	FUZZ_CHECK(v == METRICS_SERVE || v == METRICS_NOT_FOUND || v == METRICS_BAD_HOST);
	if (!metrics_host_allowed((const char *)data, size))
		return 0;
	/* Allowed values are short and plain: no line breaks, no spaces. */
	FUZZ_CHECK(size > 0 && size <= 64);
	FUZZ_CHECK(!memchr(data, '\n', size) && !memchr(data, '\r', size) &&
		   !memchr(data, ' ', size));
	memcpy(req, pre, sizeof(pre) - 1);
	memcpy(req + sizeof(pre) - 1, data, size);
	memcpy(req + sizeof(pre) - 1 + size, post, sizeof(post) - 1);
	FUZZ_CHECK(metrics_request_check(req, sizeof(pre) - 1 + size + sizeof(post) - 1) ==
		   METRICS_SERVE);
	return 0;
}
