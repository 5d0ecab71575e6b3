#!/usr/bin/env bash
# The one test command: formatting, lints, every Rust test, and the Python
# client tests (ADBC, pyarrow) against a real `basin serve`.
# Usage: ./scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy (warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== cargo test"
cargo test --workspace --locked

echo "== python client tests"
# The venv is rebuilt when the pinned requirements change.
requirements=server/tests/python/requirements.txt
if ! cmp -s "$requirements" .venv/.requirements 2>/dev/null; then
    python3 -m venv .venv
    .venv/bin/pip install --quiet --disable-pip-version-check -r "$requirements"
    cp "$requirements" .venv/.requirements
fi
target_dir="${CARGO_TARGET_DIR:-target}"
BASIN_BIN="$target_dir/debug/basin" .venv/bin/python -m pytest -q server/tests/python
