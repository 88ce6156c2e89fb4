#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Every metric deploy/grafana/ntun.json queries exists: the three daemons run with --metrics
# (tests/e2e/lib.sh, namespaces cli, rly, site, web), one request crosses the tunnel, each
# daemon's /metrics is scraped, then check_grafana.py compares names and labels.
. "$NTUN_SRC/tests/e2e/lib.sh"
e2e_init

scrape() { # scrape NAME NS: the daemon's /metrics into $E2E_TMP/NAME.prom, non-empty
	in_ns "$2" curl -sS --max-time 5 -o "$E2E_TMP/$1.prom" http://127.0.0.1:9100/metrics &&
		grep -q '^ntun_build_info' "$E2E_TMP/$1.prom"
}

run() {
	topo_sites
	cg_make
	certs_make || return 1
	mkdir -p "$E2E_TMP/www" && head -c 100000 /dev/urandom >"$E2E_TMP/www/blob"
	start web web $PY -m http.server 80 --bind 192.168.1.5 --directory "$E2E_TMP/www"
	start server rly "$BIN_SERVER" --listen 0.0.0.0:8443 $(tls_args server) --log-format text \
		--metrics 127.0.0.1:9100
	start proxy site "$BIN_PROXY" --server 10.10.2.2:8443 --proxy-id proxy-1 \
		--managed-cidr 192.168.1.0/24 --virtual-cidr 100.64.1.0/24 $(tls_args proxy) \
		--log-format text --metrics 127.0.0.1:9100
	start client cli "$BIN_CLIENT" --server 10.10.1.2:8443 --cidr 100.64.1.0/24 \
		--listen-port 15001 --cgroup "$CG_APPS" --instance "t$E2E_ID" $(tls_args client) \
		--log-format text --metrics 127.0.0.1:9100
	wait_log proxy "registered as" 10 && wait_log client "connected to server" 10 &&
		wait_log server "proxy registered" 10 || return 1
	# One tunnel, byte-exact, so that the counters have moved when they are scraped.
	local i
	for i in 1 2 3 4 5; do
		app cli curl -sS --max-time 10 -o "$E2E_TMP/got" http://100.64.1.5/blob && break
		sleep 0.5
	done
	check "the tunneled download is exact" cmp -s "$E2E_TMP/www/blob" "$E2E_TMP/got" || return 1
	scrape server rly && scrape proxy site && scrape client cli || return 1
	$PY "$NTUN_SRC/tests/deploy/check_grafana.py" "$NTUN_SRC/deploy/grafana/ntun.json" \
		"$E2E_TMP"/{server,proxy,client}.prom
}
run_case "dashboard metrics exist on the daemons" run
e2e_summary
