"""Schemathesis over the whole OpenAPI document of a real `basin serve`:
every phase, authenticated with an API key; 0 server errors, 0 schema errors
and no validation mismatch warnings."""

import base64
import json
import os
import pathlib
import subprocess
import sys
import tempfile

from conftest import ADMIN_PASSWORD, basin_server
from conftest import call as rest_call

HERE = pathlib.Path(__file__).parent
TESTDATA = HERE.parent.parent.parent / "testdata"


def call(server, method, path, body=None, token=None, content_type="application/json"):
    """A REST call that must succeed: `body` as JSON, or bytes; the decoded answer."""
    raw = body if isinstance(body, bytes) else None
    status, answer = rest_call(server, method, path, None if raw else body, token, raw, content_type)
    assert 200 <= status < 300, (method, path, status, answer)
    return answer


def seed(server, token):
    """What the document's examples name: the dataset `sales` (the example of
    every dataset in a path, the fuzzer's to change), the dataset `orders`
    (read by the example time series, checks and queries) with a check, a
    pipeline, and the template `daily_template`."""
    call(server, "POST", "/datasets/sales/upload?mode=create", b"order_id,amount\n1,19.99\n", token, "text/csv")
    call(server, "POST", "/datasets/orders/upload?mode=create&on_error=skip", (TESTDATA / "orders.csv").read_bytes(), token, "text/csv")
    call(server, "POST", "/datasets/orders/checks", {"name": "amount_positive", "type": "range", "column": "amount", "min": 0}, token)
    steps = [{"name": "big_orders", "sql": "SELECT * FROM orders WHERE amount > 100"}]
    call(server, "POST", "/pipelines", {"name": "daily", "definition": {"steps": steps}}, token)
    template = {
        "template": True,
        "params": [{"name": "min_amount", "type": "number", "default": 100}],
        "steps": [{"name": "orders_over", "sql": "SELECT * FROM orders WHERE amount > {{ min_amount }}"}],
    }
    call(server, "POST", "/pipelines", {"name": "daily_template", "definition": template}, token)


PHASES = ["examples", "coverage", "fuzzing", "stateful"]


def test_schemathesis_finds_no_server_or_schema_errors():
    # One fresh, seeded server per phase: what one phase creates or deletes
    # (the examples' own names) would otherwise decide what the next finds.
    summaries = {}
    for phase in PHASES:
        report, run = fuzz_phase(phase)
        summary = run.stdout[run.stdout.find("SUMMARY") :] if "SUMMARY" in run.stdout else run.stdout[-4000:]
        assert run.returncode == 0, f"{phase}: schemathesis failed:\n{run.stdout[-20000:]}\n{run.stderr[-4000:]}"
        assert report["errors"] == [], f"{phase}: {summary}"
        assert report["failures"] == [], f"{phase}: {summary}"
        assert report["warnings"].get("validation_mismatch", []) == [], f"{phase}: {summary}"
        summaries[phase] = report["test_cases"]["generated"]
    assert sum(summaries.values()) > 5000, summaries


def fuzz_phase(phase):
    """One schemathesis phase over a fresh server; its JSON report and the process."""
    # The fuzzer sends thousands of requests in minutes: rate limits would
    # answer most of them 429 and test nothing.
    limits = {"BASIN_RATE_LIMIT_PER_IP": "0", "BASIN_RATE_LIMIT_PER_USER": "0", "BASIN_AUTH_LOGIN_DELAY": "1ms"}
    with tempfile.TemporaryDirectory() as imports, tempfile.TemporaryDirectory() as reports:
        # `POST /datasets` reads server-side files: the document's example
        # names one, which the hooks point at this copy.
        import_file = pathlib.Path(imports) / "orders.csv"
        import_file.write_bytes((TESTDATA / "orders.csv").read_bytes())
        with basin_server(**limits, BASIN_INGEST_ALLOWED_ROOTS=imports) as server:
            return fuzz(server, phase, reports, import_file)


def fuzz(server, phase, reports, import_file):
    """Runs one phase of schemathesis against `server`; its JSON report and the process."""
    schemathesis = pathlib.Path(sys.executable).with_name("schemathesis")
    token = call(server, "POST", "/auth/login", {"username": "admin", "password": ADMIN_PASSWORD})["data"]["token"]
    key = call(server, "POST", "/api-keys", {"name": "schemathesis", "scopes": ["read", "write", "admin"]}, token)["data"]
    seed(server, token)
    env = dict(os.environ)
    env.update(
        {
            "BASIN_FUZZ_KEY_ID": key["id"],
            "BASIN_FUZZ_BASIC": base64.b64encode(f"admin:{ADMIN_PASSWORD}".encode()).decode(),
            "SCHEMATHESIS_HOOKS": "schemathesis_hooks",
            "PYTHONPATH": str(HERE),
            "BASIN_FUZZ_IMPORT": str(import_file),
        }
    )
    run = subprocess.run(
        [
            str(schemathesis),
            "--config-file",
            str(HERE / "schemathesis.toml"),
            "run",
            f"{server.http}/api/v1/openapi.json",
            "--phases",
            phase,
            "--header",
            f"Authorization: Bearer {key['secret']}",
            "--seed",
            "20261202",
            "--no-color",
            "--report",
            "json",
            "--report-dir",
            reports,
        ],
        env=env,
        # Its cache (`.schemathesis/`) goes with the reports, not into the clone.
        cwd=reports,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    report = json.loads(next(pathlib.Path(reports).glob("*.json")).read_text())
    return report, run
