#!/usr/bin/env bash
# The interop suite: an independent CUP POS client (Python, pyiso8583 + cryptography,
# written from spec/cup-pos.md) against a real `poskit host --demo` process on loopback.
# Creates a virtual environment with the pinned dependencies (pip, from PyPI, once), builds
# the debug binary if `cargo test` has not (CI reuses it: cheaper than a release build),
# then runs pytest; its last line is pytest's summary.
set -euo pipefail
cd "$(dirname "$0")"
target="${CARGO_TARGET_DIR:-$(cd .. && pwd)/target}"
venv="${INTEROP_VENV:-$target/interop-venv}"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check -r requirements.txt
if [ -z "${POSKIT_BIN:-}" ]; then
  (cd .. && cargo build --quiet --locked -p poskit)
  export POSKIT_BIN="$target/debug/poskit"
fi
export PYTHONDONTWRITEBYTECODE=1
exec "$venv/bin/python" -m pytest -q -p no:cacheprovider "$@"
