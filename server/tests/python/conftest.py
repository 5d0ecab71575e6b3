"""Starts real `basin serve` processes (the binary in BASIN_BIN) for the tests in this directory."""

import contextlib
import os
import subprocess
import tempfile

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
