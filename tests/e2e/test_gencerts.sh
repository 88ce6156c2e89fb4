#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# ntun-gencerts' CA, read back with the openssl CLI: basicConstraints CA:TRUE, pathlen:0 (a CA
# made under it is refused by a verifier), validity as asked with --ca-days/--days, leaves never
# outlive the CA, and server certificates carry localhost, 127.0.0.1 and --server-san.
# No namespaces, no daemons: files in a temporary directory only.
. "$(dirname "$0")/lib.sh"
e2e_init

D="$E2E_TMP/certs"
DAY=86400

# not_after FILE: notAfter as seconds since the epoch.
not_after() { date -u -d "$(openssl x509 -in "$1" -noout -enddate | cut -d= -f2)" +%s; }

# near A B: |A - B| within an hour (the certificate is made a moment after "now").
near() { local d=$(($1 - $2)); [ ${d#-} -le 3600 ]; }

setup() {
	"$BIN_GENCERTS" --out "$D" --ca-days 2000 --days 300 --server-san 10.10.1.2 \
		--server-san relay.example.net >"$E2E_TMP/gencerts.out" 2>&1 ||
		{ cat "$E2E_TMP/gencerts.out" >&2; return 1; }
}

case_ca_constraints() {
	local text
	text=$(openssl x509 -in "$D/ca/cert.pem" -noout -text) || return 1
	e2e_log "  $(grep -A1 'Basic Constraints' <<<"$text" | tr -s ' \n' ' ')"
	grep -A1 'X509v3 Basic Constraints: critical' <<<"$text" | grep -q 'CA:TRUE, pathlen:0'
}

case_dates() {
	local now ca leaf rc=0 r
	now=$(date -u +%s)
	ca=$(not_after "$D/ca/cert.pem")
	e2e_log "  CA expires in $(((ca - now) / DAY)) days (asked 2000)"
	near "$ca" $((now + 2000 * DAY)) || rc=1
	for r in server client proxy; do
		leaf=$(not_after "$D/$r/cert.pem")
		e2e_log "  $r expires in $(((leaf - now) / DAY)) days (asked 300)"
		near "$leaf" $((now + 300 * DAY)) || rc=1
		[ "$leaf" -lt "$ca" ] || rc=1
		openssl verify -CAfile "$D/ca/cert.pem" "$D/$r/cert.pem" >/dev/null || rc=1
	done
	# The defaults: the CA (3650 days) outlives the leaves (825 days).
	"$BIN_GENCERTS" --out "$E2E_TMP/def" >/dev/null || return 1
	ca=$(not_after "$E2E_TMP/def/ca/cert.pem")
	leaf=$(not_after "$E2E_TMP/def/server/cert.pem")
	e2e_log "  defaults: CA $(((ca - now) / DAY)) days, leaves $(((leaf - now) / DAY)) days"
	near "$ca" $((now + 3650 * DAY)) && near "$leaf" $((now + 825 * DAY)) || rc=1
	return $rc
}

case_leaf_never_outlives_ca() {
	local out rc=0
	out=$("$BIN_GENCERTS" --out "$E2E_TMP/long" --ca-days 100 --days 200 2>&1)
	[ $? -eq 2 ] && grep -q "outlives the CA" <<<"$out" || { e2e_log "  $out"; rc=1; }
	[ ! -e "$E2E_TMP/long/ca/cert.pem" ] || rc=1
	out=$("$BIN_GENCERTS" --out "$D" --issue client --id late --days 2100 2>&1)
	[ $? -eq 1 ] && grep -q "would outlive the CA" <<<"$out" || { e2e_log "  $out"; rc=1; }
	e2e_log "  $out"
	[ ! -e "$D/late/cert.pem" ] || rc=1
	"$BIN_GENCERTS" --out "$D" --issue client --id early --days 1900 >/dev/null || rc=1
	[ "$(not_after "$D/early/cert.pem")" -lt "$(not_after "$D/ca/cert.pem")" ] || rc=1
	return $rc
}

# A CA made under ours (its key signs a CA:TRUE certificate) issues a leaf: pathlen:0 makes
# every verifier refuse that chain, while the same leaf signed by our CA directly is fine.
case_no_sub_ca() {
	local t="$E2E_TMP/sub" out
	mkdir -p "$t"
	printf 'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign\n' >"$t/ca.ext"
	printf 'basicConstraints=critical,CA:FALSE\nsubjectAltName=DNS:evil.example\n' >"$t/leaf.ext"
	openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$t/sub.key" \
		-subj /CN=sub -out "$t/sub.csr" 2>/dev/null &&
		openssl x509 -req -in "$t/sub.csr" -CA "$D/ca/cert.pem" -CAkey "$D/ca/key.pem" \
			-CAcreateserial -days 30 -extfile "$t/ca.ext" -out "$t/sub.pem" 2>/dev/null &&
		openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
			-keyout "$t/leaf.key" -subj /CN=leaf -out "$t/leaf.csr" 2>/dev/null &&
		openssl x509 -req -in "$t/leaf.csr" -CA "$t/sub.pem" -CAkey "$t/sub.key" \
			-CAcreateserial -days 10 -extfile "$t/leaf.ext" -out "$t/leaf.pem" 2>/dev/null ||
		{ e2e_log "  openssl could not build the chain"; return 1; }
	out=$(openssl verify -CAfile "$D/ca/cert.pem" -untrusted "$t/sub.pem" "$t/leaf.pem" 2>&1)
	e2e_log "  sub-CA chain: $(tr '\n' ' ' <<<"$out")"
	grep -q "path length constraint exceeded" <<<"$out" || return 1
	openssl x509 -req -in "$t/leaf.csr" -CA "$D/ca/cert.pem" -CAkey "$D/ca/key.pem" \
		-CAcreateserial -days 10 -extfile "$t/leaf.ext" -out "$t/direct.pem" 2>/dev/null &&
		openssl verify -CAfile "$D/ca/cert.pem" "$t/direct.pem" >/dev/null
}

case_server_sans() {
	local san
	san=$(openssl x509 -in "$D/server/cert.pem" -noout -ext subjectAltName | tail -n +2 |
		tr -d ' ')
	e2e_log "  server SAN: $san"
	[ "$san" = "URI:spiffe://ntun.local/server/server-1,DNS:localhost,IPAddress:127.0.0.1,IPAddress:10.10.1.2,DNS:relay.example.net" ]
}

run_case "setup: a CA for 2000 days, leaves for 300" setup || exit 1
run_case "the CA is CA:TRUE with pathlen:0" case_ca_constraints
run_case "validity as asked; the CA outlives its leaves (also by default)" case_dates
run_case "a leaf that would outlive the CA is refused" case_leaf_never_outlives_ca
run_case "a CA under the generated CA is not trusted (pathlen:0)" case_no_sub_ca
run_case "server certificates name localhost, 127.0.0.1 and --server-san" case_server_sans
e2e_summary
