#!/bin/sh
# Runs a command in a fresh loopback-only network namespace, for trying the browser pages and
# the gateway by hand (the tests do the same from Rust: tests/it/common/chromium/netns.rs).
#   tests/pages/run-in-netns.sh sh -c 'target/debug/interop-gateway serve ... & /usr/lib/chromium/chromium ...'
# --net: only `lo` (brought up below); --map-root-user: allowed to configure it; --pid --fork
# --mount-proc: the command's sh is pid 1, so everything it started dies with it.
set -eu
[ "$#" -gt 0 ] || { echo "usage: $0 COMMAND [ARGS...]" >&2; exit 2; }
exec unshare --map-root-user --net --pid --fork --kill-child --mount-proc \
  sh -c 'ip link set lo up
         if ip -o addr show | grep -v " lo " | grep -q .; then echo "non-loopback address present" >&2; exit 1; fi
         "$@"' sh "$@"
