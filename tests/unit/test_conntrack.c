// SPDX-License-Identifier: MIT
/* conntrack: conn ids against vectors computed independently with sha256sum, and the id
 * syntax check. */
#include "check.h"
#include "conntrack.h"

#define IP(a, b, c, d) ((uint32_t)(a) << 24 | (uint32_t)(b) << 16 | (uint32_t)(c) << 8 | (d))

int main(void)
{
	char id[33];

	/* printf '%s' '10.0.0.1:1234->100.64.1.5:80' | sha256sum | cut -c1-32 */
	conntrack_id(IP(10, 0, 0, 1), 1234, IP(100, 64, 1, 5), 80, id);
	CHECK_STR_EQ(id, "06d3bc7286c56bfd1bd3b48f451ab970");
	CHECK(conntrack_id_valid(id));

	/* Extremes of every field: '0.0.0.0:0->255.255.255.255:65535' */
	conntrack_id(0, 0, IP(255, 255, 255, 255), 65535, id);
	CHECK_STR_EQ(id, "1f2a08fc788083af28f50176f1bf4ae2");

	/* '192.168.1.5:65535->8.8.8.8:53' */
	conntrack_id(IP(192, 168, 1, 5), 65535, IP(8, 8, 8, 8), 53, id);
	CHECK_STR_EQ(id, "54b9896c0d23f2c1e355436784da9202");

	/* Direction matters. */
	conntrack_id(IP(100, 64, 1, 5), 80, IP(10, 0, 0, 1), 1234, id);
	CHECK(strcmp(id, "06d3bc7286c56bfd1bd3b48f451ab970") != 0);

	CHECK(conntrack_id_valid("06D3BC7286C56BFD1BD3B48F451AB970"));
	CHECK(!conntrack_id_valid("06d3bc7286c56bfd1bd3b48f451ab97"));
	CHECK(!conntrack_id_valid("06d3bc7286c56bfd1bd3b48f451ab9700"));
	CHECK(!conntrack_id_valid("06d3bc7286c56bfd1bd3b48f451ab97g"));
	CHECK(!conntrack_id_valid(""));
	CHECK(!conntrack_id_valid(NULL));

	return check_done("test_conntrack");
}
