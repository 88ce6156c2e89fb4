#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Installs the Debian packages ntun needs to build, test, demo and benchmark.
# Idempotent: packages already present are left alone; nothing outside Debian is fetched.
set -euo pipefail

pkgs=(
	# build
	build-essential cmake pkg-config clang llvm lld libclang-rt-14-dev
	libbpf-dev bpftool libelf-dev
	libssl-dev libnghttp2-dev libprotobuf-c-dev protobuf-c-compiler
	libyaml-dev zlib1g-dev libevent-dev libjansson-dev
	# run and test
	iproute2 iptables nftables procps psmisc util-linux kmod curl
	python3 python3-grpcio python3-grpc-tools python3-h2 python3-protobuf
	nghttp2-client
	# offline check of deploy/kubernetes (the Kubernetes API types, YAML)
	python3-kubernetes python3-yaml
	# benchmark baselines
	iperf3 stunnel4 openssh-server openssh-client wrk nginx-light openssl
)

missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -eq 0 ]; then
	echo "install-deps: all ${#pkgs[@]} packages present"
	exit 0
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
# Services from packages must not start on their own on a shared machine (sshd, nginx).
for s in ssh nginx; do
	systemctl disable --now "$s" >/dev/null 2>&1 || true
done
echo "install-deps: done"
