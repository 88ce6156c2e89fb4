#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The demo: installs what is missing for building and running (tools/install-deps.sh build,
# through tools/build.sh: nothing that only the tests or the benchmark need), builds, then runs
# all three daemons in network namespaces and tunnels one unmodified curl request to a web host
# in a "remote" namespace it has no route to. Prints the answer. Needs root; everything it makes
# is removed on exit.
#
#   ns cli: curl, ntun-client ──▶ ns rly: ntun-server ◀── ns site: ntun-proxy ──▶ ns web: 192.168.1.5:80
#   curl http://100.64.1.5/  (100.64.1.0/24 is the virtual name of the site's 192.168.1.0/24)
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
if [ "$(id -u)" != 0 ]; then
	echo "tools/demo.sh: run as root (namespaces, cgroups and BPF)" >&2
	exit 1
fi
"$top/tools/build.sh" build
set +e
NTUN_BUILD="$top/build" NTUN_SRC="$top"
. "$top/tests/e2e/lib.sh"
e2e_init

topo_sites
cg_make
certs_make || exit 1

mkdir -p "$E2E_TMP/www"
cat >"$E2E_TMP/www/index.html" <<'HTML'
<h1>Hello from 192.168.1.5, inside the remote site.</h1>
<p>This page crossed ntun: client -> server -> proxy, over mutual TLS and gRPC/HTTP2.</p>
HTML
start web web $PY -m http.server 80 --bind 192.168.1.5 --directory "$E2E_TMP/www"
start server rly "$BIN_SERVER" --listen 0.0.0.0:8443 $(tls_args server) --log-format text
start proxy site "$BIN_PROXY" --server 10.10.2.2:8443 --proxy-id proxy-1 \
	--managed-cidr 192.168.1.0/24 --virtual-cidr 100.64.1.0/24 $(tls_args proxy) --log-format text
start client cli "$BIN_CLIENT" --server 10.10.1.2:8443 --cidr 100.64.1.0/24 --listen-port 15001 \
	--cgroup "$CG_APPS" --instance "t$E2E_ID" $(tls_args client) --log-format text
wait_log proxy "registered as" 10 && wait_log client "connected to server" 10 &&
	wait_log server "proxy registered" 10 || { cat "$E2E_TMP"/*.log; exit 1; }
sleep 0.3

echo "== curl http://100.64.1.5/ from an app in namespace cli (cgroup $CG_APPS)"
app cli curl -sS -i --max-time 10 http://100.64.1.5/
rc=$?
echo
echo "== what the daemons logged"
for d in client server proxy; do
	sed "s/^/[$d] /" "$E2E_TMP/$d.log" | grep -v "TLS established"
done
[ $rc -eq 0 ] && echo "== demo OK" || echo "== demo FAILED (curl exit $rc)"
exit $rc
