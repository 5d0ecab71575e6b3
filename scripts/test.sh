#!/usr/bin/env bash
# The one test command: formatting, lints, every Rust test, and the Python
# client tests (ADBC, pyarrow) against a real `basin serve`.
# Usage: ./scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== build every target, linted by clippy as it compiles (warnings are errors)"
# .cargo/config.toml makes clippy-driver the compiler of workspace members,
# so this one build is both `cargo clippy --all-targets` and the test build.
# Cargo replays the warnings of crates it does not rebuild, so a warm run
# still sees them.
build_log=$(mktemp)
cargo test --workspace --all-targets --locked --no-run 2>&1 | tee "$build_log"
if grep -q '^warning' "$build_log"; then
    echo "error: the build has warnings (above); they count as errors" >&2
    exit 1
fi
rm -f "$build_log"

echo "== test tools (.venv)"
# The venv is rebuilt when the pinned requirements change.
requirements=server/tests/python/requirements.txt
if ! cmp -s "$requirements" .venv/.requirements 2>/dev/null; then
    python3 -m venv .venv
    .venv/bin/pip install --quiet --disable-pip-version-check -r "$requirements"
    cp "$requirements" .venv/.requirements
fi

echo "== S3-compatible server (moto) on loopback"
s3_port=$(.venv/bin/python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
.venv/bin/moto_server -H 127.0.0.1 -p "$s3_port" >/dev/null 2>&1 &
s3_pid=$!
trap 'kill "$s3_pid" 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
    if .venv/bin/python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$s3_port/')" 2>/dev/null; then
        break
    fi
    sleep 0.1
done
export TEST_S3_ENDPOINT="http://127.0.0.1:$s3_port"
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing

echo "== cargo test"
cargo test --workspace --locked

echo "== python client tests"
target_dir="${CARGO_TARGET_DIR:-target}"
BASIN_BIN="$target_dir/debug/basin" .venv/bin/python -m pytest -q server/tests/python
