"""A real `poskit host --demo` process on loopback for the interop suite.

POSKIT_BIN names the binary (default: target/release/poskit, else target/debug/poskit).
POSKIT_HOST=ADDR:PORT talks to a host already running instead of starting one.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT_S = 30


def poskit_bin() -> str:
    if os.environ.get("POSKIT_BIN"):
        return os.environ["POSKIT_BIN"]
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    for profile in ("release", "debug"):
        candidate = target / profile / "poskit"
        if candidate.exists():
            return str(candidate)
    raise RuntimeError("no poskit binary: build it or set POSKIT_BIN")


@pytest.fixture(scope="session")
def demo() -> dict:
    """`poskit host demo-data --json`, by scenario name."""
    out = subprocess.run([poskit_bin(), "host", "demo-data", "--json"], check=True,
                         capture_output=True, text=True, timeout=60).stdout
    return {row["scenario"]: row for row in json.loads(out)}


@pytest.fixture(scope="session")
def host_addr():
    if os.environ.get("POSKIT_HOST"):
        host, port = os.environ["POSKIT_HOST"].rsplit(":", 1)
        yield (host, int(port))
        return
    with tempfile.TemporaryDirectory(prefix="poskit-interop-") as data:
        proc = subprocess.Popen(
            [poskit_bin(), "host", "--data", data, "--demo", "--listen", "127.0.0.1:0"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )
        try:
            line = proc.stdout.readline()
            if "listening on" not in line:
                raise RuntimeError(f"host did not start: {line!r}")
            addr = line.split("listening on ", 1)[1].split()[0]
            host, port = addr.rsplit(":", 1)
            yield (host, int(port))
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=START_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
