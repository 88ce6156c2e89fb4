/* SPDX-License-Identifier: MIT */
/* TLS 1.3 records sealed by hand (RFC 8446 5.2), for tests that play a peer which breaks the
 * rules: keys from a traffic secret (TLS_AES_128_GCM_SHA256 only), any inner content type and
 * padding. Used by tests/unit/test_tls.c and the attacker tests/e2e/tls_flood.c, which take
 * the secret from their own OpenSSL peer's keylog callback. */
#ifndef NTUN_TESTS_TLS_FORGE_H
#define NTUN_TESTS_TLS_FORGE_H

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/kdf.h>

/* One direction's write state. Zero it, fill secret, then tls_forge_keys. */
struct tls_forge {
	unsigned char secret[32]; /* the write traffic secret (SHA-256) */
	unsigned char iv[12];
	EVP_CIPHER_CTX *aead;
	uint64_t seq;
};

/* HKDF-Expand-Label(secret, label, "", olen) with SHA-256 (RFC 8446 7.1). 0 or -1. */
static inline int tls_forge_expand(const unsigned char *secret, const char *label,
				   unsigned char *out, size_t olen)
{
	unsigned char info[64];
	size_t n = (size_t)snprintf((char *)info + 3, sizeof(info) - 4, "tls13 %s", label);
	EVP_PKEY_CTX *k = EVP_PKEY_CTX_new_id(EVP_PKEY_HKDF, NULL);
	int ok;

	info[0] = 0;
	info[1] = (unsigned char)olen;
	info[2] = (unsigned char)n;
	info[3 + n] = 0;
	ok = k && EVP_PKEY_derive_init(k) == 1 &&
	     EVP_PKEY_CTX_set_hkdf_mode(k, EVP_PKEY_HKDEF_MODE_EXPAND_ONLY) == 1 &&
	     EVP_PKEY_CTX_set_hkdf_md(k, EVP_sha256()) == 1 &&
	     EVP_PKEY_CTX_set1_hkdf_key(k, secret, 32) == 1 &&
	     EVP_PKEY_CTX_add1_hkdf_info(k, info, (int)(4 + n)) == 1 &&
	     EVP_PKEY_derive(k, out, &olen) == 1;
	EVP_PKEY_CTX_free(k);
	return ok ? 0 : -1;
}

/* Key and IV from f->secret; the sequence starts again at 0. 0 or -1. */
static inline int tls_forge_keys(struct tls_forge *f)
{
	unsigned char key[16];

	if (tls_forge_expand(f->secret, "key", key, sizeof(key)) ||
	    tls_forge_expand(f->secret, "iv", f->iv, sizeof(f->iv)))
		return -1;
	if (!f->aead)
		f->aead = EVP_CIPHER_CTX_new();
	f->seq = 0;
	return f->aead && EVP_EncryptInit_ex(f->aead, EVP_aes_128_gcm(), NULL, key, NULL) == 1 ? 0
											       : -1;
}

/* The next secret and keys, as after a KeyUpdate. 0 or -1. */
static inline int tls_forge_next(struct tls_forge *f)
{
	unsigned char next[32];

	if (tls_forge_expand(f->secret, "traffic upd", next, sizeof(next)))
		return -1;
	memcpy(f->secret, next, sizeof(next));
	return tls_forge_keys(f);
}

/* Seals one record into out (room for 5 + len + 1 + pad + 16 bytes): the content, inner
 * type, pad zero bytes. Returns the record's size, or 0 if sealing failed. */
static inline size_t tls_forge_seal(struct tls_forge *f, unsigned char type, const void *data,
				    size_t len, size_t pad, unsigned char *out)
{
	size_t clen = len + 1 + pad + 16;
	unsigned char nonce[12];
	int l;

	out[0] = 23;
	out[1] = out[2] = 3;
	out[3] = (unsigned char)(clen >> 8);
	out[4] = (unsigned char)clen;
	memmove(out + 5, data, len);
	out[5 + len] = type;
	memset(out + 5 + len + 1, 0, pad);
	memcpy(nonce, f->iv, 12);
	for (int i = 0; i < 8; i++)
		nonce[11 - i] ^= (unsigned char)(f->seq >> (8 * i));
	if (EVP_EncryptInit_ex(f->aead, NULL, NULL, NULL, nonce) != 1 ||
	    EVP_EncryptUpdate(f->aead, NULL, &l, out, 5) != 1 ||
	    EVP_EncryptUpdate(f->aead, out + 5, &l, out + 5, (int)(len + 1 + pad)) != 1 ||
	    EVP_EncryptFinal_ex(f->aead, out + 5 + len + 1 + pad, &l) != 1 ||
	    EVP_CIPHER_CTX_ctrl(f->aead, EVP_CTRL_AEAD_GET_TAG, 16, out + 5 + clen - 16) != 1)
		return 0;
	f->seq++;
	return 5 + clen;
}

static inline void tls_forge_free(struct tls_forge *f)
{
	EVP_CIPHER_CTX_free(f->aead);
	f->aead = NULL;
}

#endif
