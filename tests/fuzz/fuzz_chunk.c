// SPDX-License-Identifier: MIT
/* Fuzzes the held-message decoders of the gRPC layer: grpc_chunk_parse (a Chunk in any protobuf
 * encoding) and grpc_gunzip with an output cap, plus round trips through their encoders. */
#include <errno.h>
#include <string.h>

#include "buf.h"
#include "fuzz.h"
#include "grpc.h"

#define CAP (1u << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct buf out = BUF_INIT, plain = BUF_INIT, z = BUF_INIT;
	const uint8_t *d;
	uint8_t hdr[11];
	size_t len, hl;
	int rv;

	/* Whatever parses points inside the input. */
	rv = grpc_chunk_parse(data, size, &d, &len);
	FUZZ_CHECK(rv == 0 || rv == -EPROTO);
	if (rv == 0)
		FUZZ_CHECK(d >= data && len <= size && (size_t)(d - data) <= size - len);

	/* The input as a gzip member: bounded output, or an error. */
	rv = grpc_gunzip(data, size, &out, CAP);
	FUZZ_CHECK(rv == 0 || rv == -EPROTO || rv == -EMSGSIZE);
	if (rv == 0)
		FUZZ_CHECK(buf_len(&out) <= CAP);
	buf_release(&out);

	/* The input as a Chunk payload comes back whole. */
	hl = grpc_chunk_header(hdr, size);
	FUZZ_CHECK(hl >= 2 && hl <= sizeof(hdr));
	FUZZ_CHECK(buf_append(&plain, hdr, hl) == 0);
	if (size)
		FUZZ_CHECK(buf_append(&plain, data, size) == 0);
	FUZZ_CHECK(grpc_chunk_parse(buf_head(&plain), buf_len(&plain), &d, &len) == 0);
	FUZZ_CHECK(len == size && (size == 0 || !memcmp(d, data, size)));

	/* ...and survives gzip both ways, refused one byte under its size. */
	FUZZ_CHECK(grpc_gzip(buf_head(&plain), buf_len(&plain), &z) == 0);
	FUZZ_CHECK(grpc_gunzip(buf_head(&z), buf_len(&z), &out, buf_len(&plain)) == 0);
	FUZZ_CHECK(buf_len(&out) == buf_len(&plain));
	FUZZ_CHECK(!memcmp(buf_head(&out), buf_head(&plain), buf_len(&plain)));
	buf_release(&out);
	FUZZ_CHECK(grpc_gunzip(buf_head(&z), buf_len(&z), &out, buf_len(&plain) - 1) == -EMSGSIZE);
	buf_release(&out);
	buf_release(&z);
	buf_release(&plain);
	return 0;
}
