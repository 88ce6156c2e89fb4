// SPDX-License-Identifier: MIT
/* Conn-id derivation: SHA-256 (OpenSSL EVP, one-shot) of the 4-tuple text, first 16 bytes as
 * lowercase hex. Stateless; no table of connections lives here. */
#include "conntrack.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

void conntrack_id(uint32_t src, uint16_t sport, uint32_t dst, uint16_t dport, char out[33])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	char text[64];
	int n;

	n = snprintf(text, sizeof(text), "%u.%u.%u.%u:%u->%u.%u.%u.%u:%u", src >> 24,
		     src >> 16 & 0xff, src >> 8 & 0xff, src & 0xff, sport, dst >> 24,
		     dst >> 16 & 0xff, dst >> 8 & 0xff, dst & 0xff, dport);
	/* SHA-256 of a short buffer only fails if libcrypto itself is broken; an all-zero id
	 * is then still well formed, so callers need no error path. */
	if (n < 0 || !EVP_Digest(text, (size_t)n, md, &mdlen, EVP_sha256(), NULL) || mdlen < 16)
		memset(md, 0, 16);
	for (int i = 0; i < CONNTRACK_ID_LEN / 2; i++) {
		out[2 * i] = hex[md[i] >> 4];
		out[2 * i + 1] = hex[md[i] & 0xf];
	}
	out[CONNTRACK_ID_LEN] = '\0';
}

int conntrack_id_valid(const char *s)
{
	if (!s)
		return 0;
	for (int i = 0; i < CONNTRACK_ID_LEN; i++) {
		char c = s[i];

		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')))
			return 0;
	}
	return s[CONNTRACK_ID_LEN] == '\0';
}
