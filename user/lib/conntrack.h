/* SPDX-License-Identifier: MIT */
/* Connection identity: the conn-id carried as ntun-conn-id, derived from the 4-tuple exactly
 * as the wire protocol specifies. Pure functions, no state. */
#ifndef NTUN_CONNTRACK_H
#define NTUN_CONNTRACK_H

#include <stdint.h>

#define CONNTRACK_ID_LEN 32 /* hex chars, without the NUL */

/* Writes the 32 lowercase hex chars of the first 16 bytes of
 * SHA-256("srcip:srcport->dstip:dstport") plus a NUL into out[33].
 * Addresses and ports in host order. */
void conntrack_id(uint32_t src, uint16_t sport, uint32_t dst, uint16_t dport, char out[33]);

/* True if s is exactly 32 lowercase or uppercase hex chars. */
int conntrack_id_valid(const char *s);

#endif
