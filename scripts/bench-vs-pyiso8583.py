#!/usr/bin/env python3
"""Side-by-side: poskit-codec against pyiso8583 on the same ISO 8583:1987 ASCII sale.

Runs, in one go:
  1. pyiso8583 (installed from PyPI if missing) decoding and encoding the message that
     `crates/codec/testdata/iso87-sale-pyiso8583.txt` holds (the same bytes poskit's
     `iso87-ascii` profile produces: a unit test checks it), timed with `timeit`;
  2. `cargo bench -p poskit-codec --bench codec` (criterion), read back from
     `target/criterion/*/new/estimates.json`;
and prints nanoseconds per operation and the ratios.

Usage: python3 scripts/bench-vs-pyiso8583.py [--quick]
Not part of CI (it needs the network for pip the first time and minutes of quiet CPU).
"""

import copy
import json
import subprocess
import sys
import timeit
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MESSAGE = (ROOT / "crates/codec/testdata/iso87-sale-pyiso8583.txt").read_text().strip().encode()


def ensure_pyiso8583():
    try:
        import iso8583  # noqa: F401
    except ImportError:
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "pyiso8583"], check=True)


def time_pyiso8583(repeat: int, number: int):
    import iso8583
    import iso8583.specs

    spec = iso8583.specs.default_ascii
    decoded, _ = iso8583.decode(bytearray(MESSAGE), spec)
    encoded, _ = iso8583.encode(copy.deepcopy(decoded), spec)
    assert bytes(encoded) == MESSAGE, "pyiso8583 does not round-trip the sample"

    def best(stmt):
        return min(timeit.repeat(stmt, repeat=repeat, number=number)) / number * 1e9

    decode_ns = best(lambda: iso8583.decode(bytearray(MESSAGE), spec))
    # encode() fills the dict it is given (bitmaps), so each run gets a fresh shallow copy,
    # which is timed separately and subtracted.
    copy_ns = best(lambda: dict(decoded))
    encode_ns = best(lambda: iso8583.encode(dict(decoded), spec)) - copy_ns
    return decode_ns, encode_ns


def criterion_ns(name: str) -> float:
    path = ROOT / "target/criterion" / name / "new/estimates.json"
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
        ("decode", "iso87-ascii sale", criterion_ns("decode iso87-ascii sale"), py_decode),
        ("encode", "iso87-ascii sale", criterion_ns("encode iso87-ascii sale"), py_encode),
    ]
    print(f"{'operation':<8} {'message':<18} {'poskit ns':>10} {'pyiso8583 ns':>13} {'ratio':>8}")
    for op, msg, ours, theirs in rows:
        print(f"{op:<8} {msg:<18} {ours:>10.0f} {theirs:>13.0f} {theirs / ours:>7.0f}x")
    for name in ("decode cup-pos sale", "encode cup-pos sale"):
        print(f"{name}: {criterion_ns(name):.0f} ns (target 150 ns)")


if __name__ == "__main__":
    main()
