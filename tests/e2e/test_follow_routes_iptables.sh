#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The route-following test again with the client's iptables REDIRECT fallback instead of BPF
# (rules and routes only inside the test's client namespace).
INTERCEPT=iptables exec bash "$(dirname "$0")/test_follow_routes.sh"
