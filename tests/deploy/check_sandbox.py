#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Checks strace logs of a daemon against its systemd unit's sandbox.

A unit's SystemCallFilter= (an allow list of syscall groups) turns any other syscall into EPERM,
and RestrictAddressFamilies= makes socket() of any other family fail: a daemon that starts
using one works in tests and breaks only under systemd. This reads both settings from the unit,
expands the groups with systemd-analyze syscall-filter, and checks every syscall and socket
family in the traces (strace -f -o FILE). The checker itself must reject a syscall outside the
filter and a family outside the list.

Usage: check_sandbox.py UNIT TRACE...
"""
import re
import subprocess
import sys


def groups():
    out = subprocess.run(["systemd-analyze", "syscall-filter"], capture_output=True, text=True,
                         check=True).stdout
    g, cur = {}, None
    for line in out.splitlines():
        if line.startswith("@"):
            cur = line.strip()
            g[cur] = set()
        elif cur and line.strip() and not line.strip().startswith("#"):
            g[cur].add(line.strip())
    return g


def expand(names, g, seen=None):
    seen = set() if seen is None else seen
    out = set()
    for n in names:
        if n.startswith("@"):
            if n not in seen:
                seen.add(n)
                out |= expand(g.get(n, ()), g, seen)
        else:
            out.add(n)
    return out


def unit_settings(path):
    allow, deny, fams = None, set(), None
    for line in open(path):
        line = line.strip()
        if line.startswith("SystemCallFilter="):
            v = line.split("=", 1)[1].split()
            if v and v[0].startswith("~"):
                deny |= {v[0][1:]} | set(v[1:])
            else:
                allow = (allow or set()) | set(v)
        elif line.startswith("RestrictAddressFamilies="):
            fams = set(line.split("=", 1)[1].split())
    return allow, deny, fams


CALL = re.compile(r"^(?:\[pid\s+\d+\]\s+|\d+\s+)?([a-z0-9_]+)\((.*)")


def used(lines):
    calls, fams = set(), set()
    for line in lines:
        m = CALL.match(line)
        if not m:
            continue
        calls.add(m.group(1))
        if m.group(1) == "socket":
            f = re.match(r"(AF_[A-Z0-9]+)", m.group(2))
            if f:
                fams.add(f.group(1))
    return calls, fams


def findings(unit, calls, fams, g):
    allow, deny, allowed_fams = unit_settings(unit)
    out = []
    if allow is not None:
        ok = expand(allow, g) - expand(deny, g)
        out += [f"syscall {c} is outside SystemCallFilter" for c in sorted(calls - ok)]
    if allowed_fams is not None:
        out += [f"socket family {f} is outside RestrictAddressFamilies"
                for f in sorted(fams - allowed_fams)]
    return out


def main():
    unit, traces = sys.argv[1], sys.argv[2:]
    g = groups()
    lines = []
    for t in traces:
        lines += open(t).read().splitlines()
    calls, fams = used(lines)
    errs = findings(unit, calls, fams, g)
    name = unit.rsplit("/", 1)[-1]
    print(f"{name}: {len(calls)} syscalls, families {sorted(fams)}: "
          f"{'all allowed' if not errs else 'NOT allowed: ' + '; '.join(errs)}")
    if len(calls) < 10:
        errs.append(f"only {len(calls)} syscalls traced: no trace?")
    # The checker itself.
    allow, _, allowed_fams = unit_settings(unit)
    if allow is not None and not findings(unit, calls | {"kexec_load"}, fams, g):
        errs.append("checker: a kexec_load call was accepted")
    if allowed_fams is not None and not findings(unit, calls, fams | {"AF_PACKET"}, g):
        errs.append("checker: an AF_PACKET socket was accepted")
    for e in errs:
        print("  " + e)
    return 1 if errs else 0


if __name__ == "__main__":
    sys.exit(main())
