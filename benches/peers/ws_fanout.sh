#!/bin/sh
# WebSocket fan-out: p50/p99 event delivery latency to 1,000 subscribers of
# one pipeline run (three runs), and the server memory of 10,000 idle
# connections. See benches/src/bin/ws_fanout.rs for what is measured.
#
#   cargo build --release -p basin-server -p basin-benches --bin basin --bin ws_fanout
#   benches/peers/ws_fanout.sh [path/to/basin] [path/to/ws_fanout]
#
# Needs an open-file limit above 11,000 for both processes (`ulimit -n`).
set -eu
target="${CARGO_TARGET_DIR:-target}/release"
basin="${1:-$target/basin}"
ws_fanout="${2:-$target/ws_fanout}"
exec "$ws_fanout" --basin "$basin"
