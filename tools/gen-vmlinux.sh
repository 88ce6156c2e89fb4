#!/bin/sh
# SPDX-License-Identifier: MIT
# Regenerates vmlinux/vmlinux.h (the kernel types the CO-RE BPF programs compile against) from
# the running kernel's BTF. Run it by hand after a kernel upgrade and commit the result.
set -eu

btf=${BTF:-/sys/kernel/btf/vmlinux}
bpftool=${BPFTOOL:-bpftool}
out=${1:-$(dirname "$0")/../vmlinux/vmlinux.h}

if [ ! -r "$btf" ]; then
	echo "gen-vmlinux: $btf not readable (kernel built without CONFIG_DEBUG_INFO_BTF?)" >&2
	exit 1
fi
tmp=$(mktemp "${out}.XXXXXX")
trap 'rm -f "$tmp"' EXIT
"$bpftool" btf dump file "$btf" format c >"$tmp"
chmod 0644 "$tmp"
mv "$tmp" "$out"
trap - EXIT
echo "gen-vmlinux: wrote $out ($(wc -l <"$out") lines) from $btf ($(uname -r))"
