#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Installs the Debian packages a command of ntun needs, and no others. Idempotent: packages
# already present are left alone; nothing outside Debian is fetched.
#
#   tools/install-deps.sh [--list] [GROUP...]     GROUP: build (the default), test, bench
#
#   build   compile ntun (and its man pages) and run it: what tools/build.sh and tools/demo.sh
#           install
#   test    what tools/test.sh's suite calls beyond that (tools/test.sh installs build, test
#           and bench, since the suite includes the benchmark's smoke run)
#   bench   the benchmark's baselines and tools (tools/bench installs build and bench)
#   --list  print the packages of the groups, one a line, and install nothing
#
# One package a line under its group, with what needs it: adding one is adding a line.
set -euo pipefail

build=(
	build-essential cmake pkg-config # compiler, CMakeLists.txt (dpkg-shlibdeps for cpack)
	clang bpftool libbpf-dev libelf-dev # bpf/: the BPF programs and their skeleton
	libxdp-dev # the relay's XDP guard (ntun-server --xdp)
	libssl-dev libnghttp2-dev libprotobuf-c-dev protobuf-c-compiler
	libyaml-dev zlib1g-dev libevent-dev
	libjansson-dev # ntunctl reads the admin API's JSON
	help2man   # the man pages, made from each program's --help
	iproute2   # demo: namespaces and veth pairs (ip)
	util-linux # demo: nsenter
	curl       # demo: the app whose request is tunneled
	python3    # demo: the web server at the far end (python3 -m http.server)
)

test=(
	clang-format                      # tools/check-format.sh
	llvm                              # llvm-symbolizer: readable sanitizer reports
	lld libclang-rt-14-dev            # tools/fuzz.sh: the libFuzzer harnesses
	iptables nftables kmod            # the client's iptables fallback (e2e *_iptables, unit tests)
	openssl                           # test_gencerts: certificates read back with openssl x509
	python3-grpcio python3-grpc-tools # tests/interop: grpcio against the daemons
	python3-protobuf python3-h2       # e2e fake peers and hostile HTTP/2 clients
	nghttp2-client                    # test_attack_h2
	python3-kubernetes python3-yaml   # tests/deploy: offline check of deploy/kubernetes
	systemd                           # tests/deploy: systemd-analyze verify of the units
	man-db                            # tests/deploy: man -l renders every man page
	strace                            # tests/deploy: the daemons' syscalls against their units
	hping3                            # test_xdp_guard: the SYN flood
	python3-prometheus-client         # test_metrics, test_live_metrics: Prometheus' own parser
	chromium                          # test_status_page: the page in a headless browser
	# tests/interop/test_grpcgo_keepalive.sh: a grpc-go proxy (keepalive interop)
	golang-go golang-google-grpc-dev protoc-gen-go-grpc golang-goprotobuf-dev protobuf-compiler
)

bench=(
	stunnel4                         # baseline: a two-hop stunnel chain
	openssh-server openssh-client    # baseline: ssh -L
	openssl                          # stunnel's and sshd's keys
	procps                           # ps: the relays' processes
	iperf3 wrk nginx-light           # raw-tool reference rows (optional in tools/bench)
	haproxy sshuttle                 # baselines: a two-hop HAProxy TLS chain, sshuttle over ssh
	iptables                         # sshuttle's REDIRECT rules (in the bench's app namespace)
)

list=0
groups=()
for a in "$@"; do
	case "$a" in
	--list) list=1 ;;
	build | test | bench) groups+=("$a") ;;
	*)
		echo "usage: tools/install-deps.sh [--list] [build|test|bench]..." >&2
		exit 2
		;;
	esac
done
[ "${#groups[@]}" -gt 0 ] || groups=(build)

pkgs=()
for g in "${groups[@]}"; do
	declare -n grp="$g"
	for p in "${grp[@]}"; do
		case " ${pkgs[*]} " in *" $p "*) ;; *) pkgs+=("$p") ;; esac
	done
	unset -n grp
done
if [ $list = 1 ]; then
	printf '%s\n' "${pkgs[@]}"
	exit 0
fi

missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -eq 0 ]; then
	echo "install-deps (${groups[*]}): all ${#pkgs[@]} packages present"
	exit 0
fi
echo "install-deps (${groups[*]}): installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
# Services from packages must not start on their own on a shared machine (sshd, nginx, haproxy).
for s in ssh nginx haproxy; do
	case " ${missing[*]} " in
	*" openssh-server "* | *" nginx-light "* | *" haproxy "*) systemctl disable --now "$s" >/dev/null 2>&1 || true ;;
	esac
done
echo "install-deps: done"
