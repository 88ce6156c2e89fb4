#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Reads a Prometheus text exposition on stdin with prometheus_client's parser (the reference
Python one) and prints each sample as name{labels sorted} value; exits 1 if it is refused, or
if a family comes in two parts or a sample twice (which that parser lets pass)."""
import sys

from prometheus_client.parser import text_string_to_metric_families


def main():
    text = sys.stdin.read()
    out = []
    seen = set()
    families = set()
    try:
        for fam in text_string_to_metric_families(text):
            # The text format wants each family's samples together, under one HELP and TYPE.
            if fam.name in families:
                raise ValueError("family %s split in two" % fam.name)
            families.add(fam.name)
            for s in fam.samples:
                labels = ",".join('%s="%s"' % (k, v.replace("\\", "\\\\").replace('"', '\\"')
                                                .replace("\n", "\\n"))
                                  for k, v in sorted(s.labels.items()))
                key = "%s{%s}" % (s.name, labels) if labels else s.name
                if key in seen:
                    raise ValueError("sample %s twice" % key)
                seen.add(key)
                out.append("%s %r" % (key, float(s.value)))
    except Exception as e:  # the parser raises ValueError and others on bad input
        print("prom_parse: %s" % e, file=sys.stderr)
        return 1
    sys.stdout.write("".join(line + "\n" for line in out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
