#!/usr/bin/env bash
# Generates clients for Basin's REST API from its OpenAPI document:
#   python      a typed Python package (openapi-python-client, from PyPI)
#   typescript  TypeScript types for openapi-fetch and friends (openapi-typescript, from npm)
#
# Usage: ./scripts/generate-clients.sh OUT_DIR [python] [typescript]
#   (both when none is named). The document comes from `basin openapi` (the
#   binary in BASIN_BIN, else target/debug/basin), or from a running server
#   when BASIN_OPENAPI_URL is set, e.g. http://127.0.0.1:8080/api/v1/openapi.json.
#   PYTHON names the interpreter that has openapi-python-client (default:
#   .venv/bin/python when it exists, else python3).
set -euo pipefail

if [ $# -lt 1 ]; then
    sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
fi
root="$(cd "$(dirname "$0")/.." && pwd)"
out="$1"
shift
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(python typescript)
for target in "${targets[@]}"; do
    case "$target" in
    python | typescript) ;;
    *)
        echo "unknown target '$target' (python, typescript)" >&2
        exit 2
        ;;
    esac
done

mkdir -p "$out"
document="$out/openapi.json"
if [ -n "${BASIN_OPENAPI_URL:-}" ]; then
    curl --fail --silent --show-error "$BASIN_OPENAPI_URL" -o "$document"
else
    "${BASIN_BIN:-$root/${CARGO_TARGET_DIR:-target}/debug/basin}" openapi >"$document"
fi

for target in "${targets[@]}"; do
    case "$target" in
    python)
        python="${PYTHON:-}"
        if [ -z "$python" ]; then
            if [ -x "$root/.venv/bin/python" ]; then python="$root/.venv/bin/python"; else python=python3; fi
        fi
        config="$out/openapi-python-client.yaml"
        # No post hooks: the default ones format with ruff, which need not be installed.
        printf 'project_name_override: basin-client\npackage_name_override: basin_client\npost_hooks: []\n' >"$config"
        "$python" -m openapi_python_client generate --path "$document" --config "$config" \
            --output-path "$out/python" --overwrite --meta pdm --fail-on-warning
        echo "python client: $out/python (pip install $out/python; import basin_client)"
        ;;
    typescript)
        npx --yes openapi-typescript@7.13.0 "$document" --output "$out/typescript/basin.d.ts"
        echo "typescript types: $out/typescript/basin.d.ts"
        ;;
    esac
done
