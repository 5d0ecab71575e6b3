#!/usr/bin/env bash
# The bench command: every comparison against its peer in one run, one table
# and benches/results.json. Takes the release binaries (built here if
# missing), installs the pinned peers into benches/.venv, generates the data
# (cached in benches/data/).
#
#   benches/run.sh [--scale 1] [--only ingest,tpch,flight,rest,analytics,ws]
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}/release"
if [[ ! -x "$target/basin" || ! -x "$target/ws_fanout" ]]; then
    cargo build --release --locked -p basin-server -p basin-benches --bin basin --bin ws_fanout
fi

requirements=benches/peers/requirements.txt
if ! cmp -s "$requirements" benches/.venv/.requirements 2>/dev/null; then
    python3 -m venv benches/.venv
    benches/.venv/bin/pip install --quiet --disable-pip-version-check -r "$requirements"
    cp "$requirements" benches/.venv/.requirements
fi

exec benches/.venv/bin/python benches/peers/run_all.py --basin "$target/basin" "$@"
