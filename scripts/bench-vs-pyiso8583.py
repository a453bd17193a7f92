#!/usr/bin/env python3
"""Side-by-side: poskit-codec against pyiso8583 doing the same work on the same sale.

The work, on both sides (issue 18):
  * decode + read: decode the ISO 8583:1987 ASCII sale of
    `crates/codec/testdata/iso87-sale-pyiso8583.txt` (the bytes poskit's `iso87-ascii`
    profile produces: a unit test checks it) and read every field's value — pyiso8583
    hands back a dict of strings, which is read; poskit unpacks every value's digits;
  * build + encode: build the message from its field values (pyiso8583: a new dict;
    poskit: a MessageBuilder, each value checked) and encode it (poskit: into a reused
    buffer).
pyiso8583 (4.0.1, installed from PyPI if missing: run this in a venv) is timed with
`timeit`; poskit with `cargo bench -p poskit-codec --bench codec` (criterion), read from
`target/criterion/*/new/estimates.json`. Prints nanoseconds per operation and the ratios,
then the CUP POS figures against the 150 ns goal.

Usage: python3 scripts/bench-vs-pyiso8583.py [--quick]
Not part of CI (it needs the network for pip the first time and minutes of quiet CPU).
On a shared machine, run it when nothing else builds: both sides move with the load.
"""

import copy
import json
import os
import subprocess
import sys
import timeit
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The version the README's ratios were measured against.
PYISO8583 = "pyiso8583==4.0.1"
MESSAGE = (ROOT / "crates/codec/testdata/iso87-sale-pyiso8583.txt").read_text().strip().encode()


def ensure_pyiso8583():
    try:
        import iso8583  # noqa: F401
    except ImportError:
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", PYISO8583], check=True)


def time_pyiso8583(repeat: int, number: int):
    import iso8583
    import iso8583.specs

    spec = iso8583.specs.default_ascii
    decoded, _ = iso8583.decode(bytearray(MESSAGE), spec)
    values = {k: v for k, v in decoded.items() if k != "p"}  # the bitmap is worked out
    encoded, _ = iso8583.encode(copy.deepcopy(values), spec)
    assert bytes(encoded) == MESSAGE, "pyiso8583 does not round-trip the sample"

    def best(stmt):
        return min(timeit.repeat(stmt, repeat=repeat, number=number)) / number * 1e9

    def decode_and_read():
        doc, _ = iso8583.decode(bytearray(MESSAGE), spec)
        return sum(len(v) for v in doc.values())

    def build_and_encode():
        # A new dict from the values is the build step (encode fills in the bitmap).
        return iso8583.encode(dict(values), spec)

    return best(decode_and_read), best(build_and_encode)


def criterion_ns(name: str) -> float:
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    path = target / "criterion" / name / "new/estimates.json"
    return json.loads(path.read_text())["median"]["point_estimate"]


def main():
    quick = "--quick" in sys.argv
    ensure_pyiso8583()
    import iso8583

    print(f"pyiso8583 {getattr(iso8583, '__version__', '?')} on Python {sys.version.split()[0]}")
    py_decode, py_encode = time_pyiso8583(repeat=5, number=2000 if quick else 20000)

    measurement = "2" if quick else "5"
    subprocess.run(
        ["cargo", "bench", "-p", "poskit-codec", "--bench", "codec", "--",
         "--warm-up-time", "1", "--measurement-time", measurement],
        cwd=ROOT, check=True, stdout=subprocess.DEVNULL,
    )
    rows = [
        ("decode+read", criterion_ns("decode+read iso87-ascii sale"), py_decode),
        ("build+encode", criterion_ns("build+encode iso87-ascii sale"), py_encode),
    ]
    print(f"{'iso87-ascii sale':<18} {'poskit ns':>10} {'pyiso8583 ns':>13} {'ratio':>8}")
    for op, ours, theirs in rows:
        print(f"{op:<18} {ours:>10.0f} {theirs:>13.0f} {theirs / ours:>7.0f}x")
    for name in ("decode+read cup-pos sale", "build+encode cup-pos sale"):
        print(f"{name}: {criterion_ns(name):.0f} ns (goal 150 ns)")


if __name__ == "__main__":
    main()
