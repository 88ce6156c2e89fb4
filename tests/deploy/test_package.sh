#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The Debian package: cpack -G DEB from this build, then
#  1. its control data: name, version, Depends from dpkg-shlibdeps (each library the binaries
#     link), the conffiles (/etc/ntun/*.yaml, so dpkg keeps an operator's edits), maintainer
#     scripts that parse and never enable or start a service;
#  2. its files (dpkg-deb -c): exactly the expected list, with modes;
#  3. unpacked into a scratch root (dpkg-deb -x, and dpkg --root --unpack, which registers the
#     conffiles with their hashes; nothing touches this machine's own dpkg database): every
#     program runs and prints this build's version, the daemons accept their example
#     configurations, man finds the pages.
#   test_package.sh BUILD
set -uo pipefail
build=$(cd "$1" && pwd)
export LC_ALL=C
fail=0
bad() { echo "FAIL: $*"; fail=1; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/ntun-pkg.XXXXXX")
trap '[ "${KEEP:-0}" = 1 ] || rm -rf "$tmp"' EXIT

(cd "$build" && cpack -G DEB -B "$tmp/out" >"$tmp/cpack.log" 2>&1) || {
	cat "$tmp/cpack.log"
	echo "FAIL: cpack -G DEB"
	exit 1
}
deb=$(ls "$tmp"/out/ntun_*.deb 2>/dev/null | head -1)
[ -n "$deb" ] || { echo "FAIL: no .deb made"; exit 1; }
version=$(sed -n 's/^CMAKE_PROJECT_VERSION:STATIC=//p' "$build/CMakeCache.txt")
echo "package: $(basename "$deb"), $(stat -c %s "$deb") bytes"

# 1: control data.
field() { dpkg-deb -f "$deb" "$1"; }
[ "$(field Package)" = ntun ] || bad "Package: $(field Package)"
[ "$(field Version)" = "$version" ] || bad "Version: $(field Version), want $version"
[ "$(field Architecture)" = "$(dpkg --print-architecture)" ] || bad "Architecture: $(field Architecture)"
depends=$(field Depends)
echo "Depends: $depends"
for lib in libc6 libssl3 libnghttp2-14 libbpf1 libevent-core-2.1-7 libprotobuf-c1 libyaml-0-2 \
	zlib1g libjansson4 libxdp1 libevent-extra-2.1-7 adduser procps mount; do
	grep -qE "(^|, )$lib( |,|\$)" <<<"$depends" || bad "Depends lacks $lib"
done
dpkg-deb -e "$deb" "$tmp/control"
printf '/etc/ntun/client.yaml\n/etc/ntun/proxy.yaml\n/etc/ntun/server.yaml\n' >"$tmp/want-conffiles"
diff -u "$tmp/want-conffiles" "$tmp/control/conffiles" || bad "conffiles differ"
for s in postinst prerm postrm; do
	f="$tmp/control/$s"
	[ -x "$f" ] || { bad "no executable $s"; continue; }
	sh -n "$f" || bad "$s does not parse"
	grep -nE 'systemctl[^|;&]*(enable|start|restart)|deb-systemd-invoke|invoke-rc.d' "$f" &&
		bad "$s enables or starts a service"
done

# The scripts' actions, with stubs for the commands they may run (logged, nothing done): a
# configure adds the system user only when it is missing, and nothing enables or starts.
mkdir -p "$tmp/stubs"
for c in getent adduser systemctl deb-systemd-helper deb-systemd-invoke invoke-rc.d; do
	printf '#!/bin/sh\necho "%s $*" >>"%s"\n[ "%s" != getent ] || [ -n "${NTUN_HAVE_USER:-}" ]\n' \
		"$c" "$tmp/calls" "$c" >"$tmp/stubs/$c"
	chmod +x "$tmp/stubs/$c"
done
PATH="$tmp/stubs:$PATH" "$tmp/control/postinst" configure ||
	bad "postinst configure failed"
grep -q '^adduser --system --group .* ntun$' "$tmp/calls" 2>/dev/null ||
	bad "postinst configure did not add the system user ntun"
: >"$tmp/calls"
NTUN_HAVE_USER=1 PATH="$tmp/stubs:$PATH" "$tmp/control/postinst" configure ||
	bad "postinst configure (user present) failed"
grep -q '^adduser' "$tmp/calls" && bad "postinst added a user that exists"
for a in "prerm upgrade" "prerm remove" "postrm remove" "postrm purge"; do
	PATH="$tmp/stubs:$PATH" "$tmp/control/${a% *}" "${a#* }" || bad "${a% *} ${a#* } failed"
done
grep -E '^(systemctl .*(enable|start|restart)|deb-systemd|invoke-rc.d)' "$tmp/calls" |
	grep -v ' stop ' && bad "a maintainer script enables or starts a service"

# 2: the files.
dpkg-deb -c "$deb" | awk '$6 !~ /\/$/ { print $1, $6 }' | sort -k2 >"$tmp/files"
cat >"$tmp/want-files" <<'LIST'
-rw-r--r-- ./etc/ntun/client.yaml
-rw-r--r-- ./etc/ntun/proxy.yaml
-rw-r--r-- ./etc/ntun/server.yaml
-rw-r--r-- ./lib/systemd/system/ntun-client.service
-rw-r--r-- ./lib/systemd/system/ntun-client@.service
-rw-r--r-- ./lib/systemd/system/ntun-proxy.service
-rw-r--r-- ./lib/systemd/system/ntun-server.service
-rwxr-xr-x ./usr/bin/ntun-client
-rwxr-xr-x ./usr/bin/ntun-gencerts
-rwxr-xr-x ./usr/bin/ntun-proxy
-rwxr-xr-x ./usr/bin/ntun-server
-rwxr-xr-x ./usr/bin/ntunctl
-rw-r--r-- ./usr/share/doc/ntun/README.md
-rw-r--r-- ./usr/share/doc/ntun/examples/ntun.json
-rw-r--r-- ./usr/share/doc/ntun/examples/server.json
-rw-r--r-- ./usr/share/man/man1/ntun-gencerts.1.gz
-rw-r--r-- ./usr/share/man/man1/ntunctl.1.gz
-rw-r--r-- ./usr/share/man/man8/ntun-client.8.gz
-rw-r--r-- ./usr/share/man/man8/ntun-proxy.8.gz
-rw-r--r-- ./usr/share/man/man8/ntun-server.8.gz
LIST
diff -u "$tmp/want-files" "$tmp/files" || bad "the package's files differ from the list above"
dpkg-deb -c "$deb" | awk '{ print $2 }' | grep -vx root/root && bad "a file not owned by root"

# 3: unpacked.
root=$tmp/root
mkdir -p "$root"
dpkg-deb -x "$deb" "$root" || bad "dpkg-deb -x"
for p in ntun-server ntun-proxy ntun-client ntun-gencerts ntunctl; do
	out=$("$root/usr/bin/$p" --version 2>&1)
	[ "$out" = "$p $version" ] && echo "$p --version: $out" || bad "$p --version: '$out'"
done
for d in server proxy client; do
	(cd "$root/etc/ntun" && "$root/usr/bin/ntun-$d" --config "$d.yaml" --check-config >/dev/null) ||
		bad "ntun-$d --check-config on the packaged $d.yaml"
done
for m in man8/ntun-server.8 man8/ntun-proxy.8 man8/ntun-client.8 man1/ntun-gencerts.1 man1/ntunctl.1; do
	MANWIDTH=80 man -l "$root/usr/share/man/$m.gz" 2>/dev/null | grep -q "^NAME" || bad "$m does not render"
done
adm=$tmp/dpkgroot
mkdir -p "$adm/var/lib/dpkg/info" "$adm/var/lib/dpkg/updates"
touch "$adm/var/lib/dpkg/status" "$adm/var/lib/dpkg/available"
if dpkg --root="$adm" --force-depends --force-not-root --unpack "$deb" >"$tmp/dpkg.log" 2>&1; then
	got=$(dpkg-query --admindir="$adm/var/lib/dpkg" -W -f='${Conffiles}\n' ntun | awk 'NF { print $1 }')
	[ "$got" = "$(cat "$tmp/want-conffiles")" ] || bad "dpkg registered conffiles: '$got'"
	for f in $got; do
		# Unpacked, not configured: a conffile waits as .dpkg-new for configure to compare.
		[ -f "$adm$f.dpkg-new" ] || [ -f "$adm$f" ] || bad "$f not unpacked"
	done
else
	cat "$tmp/dpkg.log"
	bad "dpkg --root --unpack"
fi

[ $fail -eq 0 ] && echo "PASS: package" || echo "FAIL: package"
exit $fail
