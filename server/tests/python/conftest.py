"""Starts real `basin serve` processes (the binary in BASIN_BIN) for the tests in this directory."""

import contextlib
import json
import os
import subprocess
import tempfile
import urllib.error
import urllib.request

import pytest

ADMIN_PASSWORD = "python-test-root-password-0123"


class Server:
    def __init__(self, http, flight, data_dir):
        self.http = http
        self.flight = flight
        self.data_dir = data_dir


@contextlib.contextmanager
def basin_server(**env_overrides):
    """A `basin serve` on free loopback ports with a fresh data directory;
    `env_overrides` are extra `BASIN_*` settings."""
    binary = os.environ.get("BASIN_BIN")
    if not binary:
        pytest.fail("BASIN_BIN must point at the basin binary (scripts/test.sh sets it)")
    with tempfile.TemporaryDirectory() as data_dir:
        env = {k: v for k, v in os.environ.items() if not k.startswith("BASIN_")}
        env["BASIN_ADMIN_PASSWORD"] = ADMIN_PASSWORD
        env.update(env_overrides)
        process = subprocess.Popen(
            [
                binary,
                "serve",
                "--data-dir",
                data_dir,
                "--http-addr",
                "127.0.0.1:0",
                "--flight-addr",
                "127.0.0.1:0",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
            text=True,
        )
        http = flight = None
        try:
            for line in process.stdout:
                line = line.strip()
                if line.startswith("http:"):
                    http = line.split(None, 1)[1].removesuffix("/api/v1")
                elif line.startswith("flight:"):
                    flight = line.split(None, 1)[1]
                if http and flight:
                    break
            if not (http and flight):
                pytest.fail("basin serve did not print its addresses")
            yield Server(http, flight, data_dir)
        finally:
            process.terminate()
            process.wait(timeout=30)


@pytest.fixture(scope="session")
def server():
    with basin_server() as server:
        yield server


def call(server, method, path, body=None, token=None, raw=None, content_type="application/json"):
    """A REST call: `body` as JSON or `raw` bytes; the status and the decoded answer."""
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    headers = {"content-type": content_type}
    if token:
        headers["authorization"] = f"Bearer {token}"
    request = urllib.request.Request(server.http + "/api/v1" + path, method=method, data=data, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            text = response.read()
            return response.status, json.loads(text) if text else None
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")
