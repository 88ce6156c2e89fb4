// SPDX-License-Identifier: MIT
/* Fuzzes the Host check of /metrics (requests themselves are parsed by evhttp): a value
 * metrics_host_allowed accepts is short and plain, names loopback, and stays accepted when
 * only its own bytes are given (no reading past len). */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fuzz.h"
#include "metrics.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *copy;
	bool ok = metrics_host_allowed((const char *)data, size);

	if (!ok)
		return 0;
	/* Allowed values are short and plain: no line breaks, no spaces, no NUL. */
	FUZZ_CHECK(size > 0 && size <= 64);
	FUZZ_CHECK(!memchr(data, '\n', size) && !memchr(data, '\r', size) &&
		   !memchr(data, ' ', size) && !memchr(data, '\0', size));
	FUZZ_CHECK(!strncasecmp((const char *)data, "localhost", 9) ||
		   !strncmp((const char *)data, "127.", 4) ||
		   !strncmp((const char *)data, "[::1]", 5));
	/* The same bytes in an exact-size heap copy (ASan catches any over-read). */
	copy = malloc(size);
	FUZZ_CHECK(copy);
	memcpy(copy, data, size);
	FUZZ_CHECK(metrics_host_allowed(copy, size));
	free(copy);
	return 0;
}
