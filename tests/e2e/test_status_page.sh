#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The status page in a real browser: headless Chromium loads http://127.0.0.1:9100/ from the
# server's metrics listener during a transfer; after the page's script ran, the open tunnel is in
# its table, and a second load shows more bytes for it. The page references no URL (everything
# is served by the daemon), the Host check covers the page and its JSON, and Chromium talks only
# to loopback inside the relay's namespace. Screenshots (laptop and phone sizes) are kept; set
# STATUS_SCREENSHOT=FILE to have the laptop one copied there (docs/status-page.png).
#
#   ns cli (client host)          ns rly (relay)             ns site (remote site)    ns web
#   app in cgroup apps            ntun-server :8443          ntun-proxy (dials out)   192.168.1.5
#   ntun-client                   metrics 127.0.0.1:9100     metrics 127.0.0.1:9100   :80 netapp
#   metrics 127.0.0.1:9100        chromium --headless
#   10.10.1.1 ----------------- 10.10.1.2
#                                10.10.2.2 ----------------- 10.10.2.1
#                                                            192.168.1.1 ------------ 192.168.1.5
. "$(dirname "$0")/lib.sh"
e2e_init

VIP=100.64.1.5
URL=http://127.0.0.1:9100/
CHROMIUM=$(command -v chromium || true)
ECHO_SIZE=$((96 * 1024 * 1024)) # at ECHO_RATE: about 48 s with the tunnel open
ECHO_RATE=$((2 * 1024 * 1024))
PUT_SIZE=$((32 * 1024 * 1024)) # a second tunnel, up only, for the screenshot
PUT_RATE=$((1024 * 1024))

setup() {
	[ -n "$CHROMIUM" ] || { e2e_log "chromium is not installed (tools/test.sh installs it)"; return 1; }
	topo_sites
	cg_make
	certs_make || return 1
	start web web $PY "$NETAPP" serve --bind 192.168.1.5 --port 80
	start server rly "$BIN_SERVER" --listen 0.0.0.0:8443 $(tls_args server) --log-format text \
		--metrics 127.0.0.1:9100 --ping-interval 2s --ping-timeout 4s \
		--route 100.64.2.0/24=proxy-2:192.168.2.0/24 --admin "$E2E_TMP/server.sock"
	start proxy site "$BIN_PROXY" --server 10.10.2.2:8443 --proxy-id proxy-1 \
		--managed-cidr 192.168.1.0/24 --virtual-cidr 100.64.1.0/24 $(tls_args proxy) \
		--log-format text --ping-interval 2s --ping-timeout 4s --metrics 127.0.0.1:9100 \
		--admin "$E2E_TMP/proxy.sock"
	start client cli "$BIN_CLIENT" --server 10.10.1.2:8443 --cidr 100.64.0.0/16 \
		--listen-port 15001 --cgroup "$CG_APPS" --instance "t$E2E_ID" $(tls_args client) \
		--log-format text --ping-interval 2s --ping-timeout 4s --metrics 127.0.0.1:9100 \
		--admin "$E2E_TMP/client.sock"
	wait_log web listening 10 || return 1
	wait_log proxy "registered as proxy-1" 10 || return 1
	wait_log client "connected to server" 10 || return 1
	wait_log server "proxy registered" 10 || return 1
}

# browse NS OUT [ARGS...]: headless Chromium in NS on $URL: the DOM after the page's script ran
# (--dump-dom) or what ARGS ask for. Its profile is the test's; it may resolve no name (every
# name maps to nothing but 127.0.0.1) and does no background fetching of its own.
browse() {
	local ns=$1 out=$2
	shift 2
	in_ns "$ns" timeout 60 "$CHROMIUM" --headless --no-sandbox --disable-gpu \
		--user-data-dir="$E2E_TMP/chromium" --no-first-run --disable-extensions \
		--disable-background-networking --disable-component-update --disable-sync \
		--disable-default-apps --disable-domain-reliability --no-pings \
		--host-resolver-rules="MAP * ~NOTFOUND, EXCLUDE 127.0.0.1" \
		--virtual-time-budget=4000 "$@" "$URL" >"$out" 2>"$out.log"
}

# tunnel_bytes DOM: "up down" of the first tunnel row of a dumped page, "" if none.
tunnel_bytes() {
	$PY - "$1" <<'EOF'
import html.parser, sys

class P(html.parser.HTMLParser):
    rows = []
    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "tr" and "data-conn" in a:
            self.rows.append((a["data-conn"], a.get("data-up"), a.get("data-down")))

p = P()
p.feed(open(sys.argv[1]).read())
if p.rows:
    print(p.rows[0][1], p.rows[0][2], p.rows[0][0])
EOF
}

case_page_self_contained() {
	local page urls code
	page="$E2E_TMP/page.html"
	in_ns rly curl -sS --max-time 5 -o "$page" -w '%{http_code} %{content_type}' "$URL" \
		>"$E2E_TMP/page.code" || return 1
	e2e_log "  GET /: $(cat "$E2E_TMP/page.code"), $(wc -c <"$page") bytes"
	grep -q '^200 text/html' "$E2E_TMP/page.code" || return 1
	# No URL of any scheme in the page: scripts, styles and data all come from the daemon.
	urls=$(grep -oiE '(https?|wss?|ftp)://[^"'"'"' )<>]*' "$page" | sort -u)
	check "the page names no URL (found: $urls)" [ -z "$urls" ] || return 1
	check "the page loads nothing by src= or href=" \
		bash -c '! grep -qiE "(src|href)=" "$1"' _ "$page" || return 1
	# The Host check covers the page and its JSON (DNS rebinding).
	for p in / /status.json; do
		code=$(in_ns rly curl -s -o /dev/null -w '%{http_code}' -H "Host: evil.example" \
			"http://127.0.0.1:9100$p")
		check "Host evil.example on $p is refused (got $code)" [ "$code" = 403 ] || return 1
	done
	code=$(in_ns rly curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:9100/status.json)
	check "status.json answers (got $code)" [ "$code" = 200 ]
}

# stop_bg: ends the case's transfers (a failed check returns before they finish).
stop_bg() {
	kill $bg $bg2 2>/dev/null
	wait $bg $bg2 2>/dev/null
}

case_browser_sees_tunnel_grow() {
	local bg bg2 first second u1 d1 u2 d2 c1 c2 urls shot="$E2E_TMP/status-page.png"
	app cli $PY "$NETAPP" client echo --host $VIP --port 80 --size $ECHO_SIZE --seed 21 \
		--rate $ECHO_RATE --timeout 120 >"$E2E_TMP/echo.out" 2>&1 &
	bg=$!
	sleep 1
	app cli $PY "$NETAPP" client put --host $VIP --port 80 --size $PUT_SIZE --seed 22 \
		--rate $PUT_RATE --timeout 120 >"$E2E_TMP/put.out" 2>&1 &
	bg2=$!
	sleep 2
	browse rly "$E2E_TMP/dom1.html" --dump-dom || {
		e2e_log "$(tail -5 "$E2E_TMP/dom1.html.log")"
		stop_bg
		return 1
	}
	first=$(tunnel_bytes "$E2E_TMP/dom1.html")
	sleep 3
	browse rly "$E2E_TMP/dom2.html" --dump-dom || { stop_bg; return 1; }
	second=$(tunnel_bytes "$E2E_TMP/dom2.html")
	read -r u1 d1 c1 <<<"$first"
	read -r u2 d2 c2 <<<"$second"
	e2e_log "  first load: tunnel $c1 up $u1 down $d1; second: $c2 up $u2 down $d2"
	check "the page's script ran and filled the tunnel table" [ -n "$c1" ] && [ -n "$c2" ] &&
		check "the same tunnel both times" [ "$c1" = "$c2" ] &&
		check "its bytes grew between the loads" [ "$u2" -gt "$u1" ] && [ "$d2" -gt "$d1" ] &&
		check "the page says it is live" grep -q 'live ·' "$E2E_TMP/dom2.html" || {
		stop_bg
		return 1
	}
	urls=$(grep -oiE '(https?|wss?)://[^"'"'"' )<>]*' "$E2E_TMP/dom2.html" | sort -u)
	check "the rendered page names no URL (found: $urls)" [ -z "$urls" ] || { stop_bg; return 1; }
	# Screenshots while both tunnels run: a laptop and a phone.
	browse rly "$E2E_TMP/shot.out" --screenshot="$shot" --window-size=1280,1000 \
		--hide-scrollbars || { stop_bg; return 1; }
	browse rly "$E2E_TMP/shot-phone.out" --screenshot="$E2E_TMP/status-page-phone.png" \
		--window-size=390,1400 --hide-scrollbars || { stop_bg; return 1; }
	e2e_log "  screenshots: $shot ($(wc -c <"$shot") bytes), phone $(wc -c <"$E2E_TMP/status-page-phone.png") bytes"
	[ -n "${STATUS_SCREENSHOT:-}" ] && cp "$shot" "$STATUS_SCREENSHOT" &&
		cp "$E2E_TMP/status-page-phone.png" "${STATUS_SCREENSHOT%.png}-phone.png"
	# The client's and the proxy's pages: their script runs and lists the server they are
	# connected to, and the tunnel if the echo was open throughout the load.
	for ns in cli site; do
		local running=0
		kill -0 $bg 2>/dev/null && running=1
		browse $ns "$E2E_TMP/dom-$ns.html" --dump-dom || { stop_bg; return 1; }
		kill -0 $bg 2>/dev/null || running=0
		read -r u1 d1 c1 <<<"$(tunnel_bytes "$E2E_TMP/dom-$ns.html")"
		e2e_log "  $ns page: first tunnel $c1 up $u1 down $d1 (echo open throughout: $running)"
		check "the $ns page is live" grep -q 'live ·' "$E2E_TMP/dom-$ns.html" &&
			check "the $ns page lists its server as connected" \
				grep -q '>connected<' "$E2E_TMP/dom-$ns.html" || { stop_bg; return 1; }
		if [ $running = 1 ]; then
			check "the $ns page lists the open tunnel" [ -n "$c1" ] || { stop_bg; return 1; }
		fi
	done
	wait $bg
	local rc=$?
	wait $bg2
	local rc2=$?
	e2e_log "  echo: $(cat "$E2E_TMP/echo.out")"
	e2e_log "  put: $(cat "$E2E_TMP/put.out")"
	[ $rc -eq 0 ] && [ $rc2 -eq 0 ] && [ -s "$shot" ]
}

case_browser_only_loopback() {
	local bad
	# Every connection Chromium made in the namespace: its log of network errors, and the
	# server's accept side: nothing but 127.0.0.1 (the namespace has no other way out but the
	# test's veths, and names resolve to nothing).
	bad=$(grep -ohE '(https?|wss?)://[^ "]*' "$E2E_TMP"/dom*.html.log "$E2E_TMP"/shot*.out.log \
		2>/dev/null | grep -v '^http://127\.0\.0\.1:9100' | sort -u)
	check "chromium's logs name no address but the daemon's (found: $bad)" [ -z "$bad" ]
}

run_case "setup" setup || exit 1
run_case "the page is self-contained and behind the Host check" case_page_self_contained
run_case "in Chromium the open tunnel shows and its bytes grow" case_browser_sees_tunnel_grow
run_case "Chromium talked to loopback only" case_browser_only_loopback
e2e_summary
