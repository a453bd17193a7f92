#!/usr/bin/env python3
"""poskit's reconciliation against DuckDB's on the same generated day.

Runs `poskit bench recon --keep --json` (which generates one clearing day, reconciles it
with the production path in a child process and checks the injected breaks), then has
DuckDB do the same matching on the same files: the switch's ACOMA file (fixed-width GBK
text, read as Latin-1 so that byte offsets are character offsets; the offsets come from
crates/clearing/profiles/acoma.toml) and the host's ledger. DuckDB's sqlite extension
needs a download this machine may not have, so the ledger's `transactions` and
`settlements` tables are exported to Parquet first, untimed (the copy is DuckDB's gain: it
reads columnar Parquet where poskit reads SQLite's rows).

Timed for DuckDB: reading the ACOMA file and the Parquet ledger, the key join with
duplicates, the fallback key, the classes (C, B, E, G, duplicate, one-sided reversal)
and the batch totals. Timed for poskit: its whole run (file parsed, ledger read, compare,
breaks kept in recon.db), with and without posting the credit adjustments. The class
counts of both must agree (exit 1 if not).

    python3 -m pip install --user duckdb
    cargo build --release -p poskit
    python3 scripts/recon-vs-duckdb.py --rows 10000000 --dir /work/bench-day
"""

import argparse
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import duckdb

ROOT = Path(__file__).resolve().parent.parent
ACQUIRER = 8010000  # "08010000", as poskit's key keeps it: a number
FORWARD_STAN_MAX = 999_999
MONEY_KINDS = "('sale', 'completion', 'void', 'completion-void', 'refund')"


def field_offsets():
    """(1-based start, width) of each ACOMA field by name."""
    profile = tomllib.loads((ROOT / "crates/clearing/profiles/acoma.toml").read_text())
    offsets, at = {}, 1
    for field in profile["fields"]:
        offsets[field["name"]] = (at, field["width"])
        at += field["width"] + 1
    return offsets


def export_ledger(data, out):
    """The ledger's tables as Parquet (untimed): through CSV, as Python's sqlite3 reads."""
    db = sqlite3.connect(data / "host.sqlite")
    con = duckdb.connect()
    for table, cols in [
        ("transactions", "id, kind, reversal, tid, mid, batch, stan, amount_fen, pan_masked,"
                         " code, state, created_ms, fwd, mmdd, hhmmss"),
        ("settlements", "id, tid, batch, terminal_debit_fen, terminal_debit_count,"
                        " terminal_credit_fen, terminal_credit_count, host_debit_fen,"
                        " host_debit_count, host_credit_fen, host_credit_count, balanced,"
                        " settled_ms, closed_ms"),
    ]:
        csv_path = out / f"{table}.csv"
        with open(csv_path, "w") as f:
            cur = db.execute(f"SELECT {cols} FROM {table}")
            f.write(",".join(c.strip() for c in cols.split(",")) + "\n")
            while rows := cur.fetchmany(100_000):
                f.writelines(",".join("" if v is None else str(v) for v in r) + "\n" for r in rows)
        con.execute(f"COPY (SELECT * FROM read_csv('{csv_path}', all_varchar=false))"
                    f" TO '{out / table}.parquet' (FORMAT parquet)")
        csv_path.unlink()


def duckdb_recon(acoma, ledger, day_from_ms, day_to_ms):
    """DuckDB's reconciliation of the day: class counts and matched."""
    o = field_offsets()
    f = lambda name: f"substr(l, {o[name][0]}, {o[name][1]})"
    con = duckdb.connect()
    con.execute(f"""
    CREATE TEMP TABLE sw AS
    SELECT row_number() OVER () AS line,
        CAST(trim({f('acquirer_inst')}) AS BIGINT) AS acq,
        CAST({f('stan')} AS BIGINT) AS stan,
        CAST({f('transmission_time')} AS BIGINT) AS time,
        CAST({f('amount_fen')} AS BIGINT) AS amount,
        rtrim({f('pan_masked')}) AS pan,
        {f('mti')} LIKE '04%' AS is_reversal,
        {f('processing_code')} LIKE '20%' AS credit,
        rtrim({f('tid')}) AS tid, rtrim({f('mid')}) AS mid,
        {f('response_code')} AS code,
        {f('reversal_flag')} = 'R' AS reversed
    FROM read_csv('{acoma}', columns = {{'l': 'VARCHAR'}}, header = false, delim = '\\t',
                  quote = '', escape = '', encoding = 'latin-1', auto_detect = false)""")
    con.execute(f"""
    CREATE TEMP TABLE h AS
    SELECT id, kind IN ('void', 'completion-void', 'refund') AS credit, tid, mid, batch, stan,
        coalesce(amount_fen, 0) AS amount, pan_masked AS pan,
        CASE WHEN state = 'reversed' THEN 'R'
             WHEN state IN ('approved', 'voided', 'closed') AND code = '00' THEN 'A'
             ELSE 'N' END AS st,
        fwd = 1 AS fwd, (id - 1) % {FORWARD_STAN_MAX} + 1 AS fstan,
        CAST(lpad(CAST(mmdd AS VARCHAR), 4, '0') || lpad(CAST(hhmmss AS VARCHAR), 6, '0') AS BIGINT) AS ftime
    FROM '{ledger}/transactions.parquet'
    WHERE created_ms >= {day_from_ms} AND created_ms < {day_to_ms} AND reversal = 0
        AND kind IN {MONEY_KINDS} AND tid IS NOT NULL""")
    # Switch originals grouped by key: the first record of each key (by line) and how many.
    con.execute("""
    CREATE TEMP TABLE g AS
    SELECT * FROM (
        SELECT *, row_number() OVER (k ORDER BY line) AS rn, count(*) OVER k AS n
        FROM sw WHERE NOT is_reversal
        WINDOW k AS (PARTITION BY acq, stan, time)) WHERE rn = 1""")
    con.execute(f"""
    CREATE TEMP TABLE pairs AS
    SELECT h.id, h.st, h.credit AS h_credit, h.amount AS h_amount, h.pan AS h_pan,
        h.tid AS h_tid, h.mid AS h_mid, h.fstan, h.ftime,
        g.line, g.code, g.reversed, g.credit AS s_credit, g.amount AS s_amount, g.pan AS s_pan,
        g.tid AS s_tid, g.mid AS s_mid, g.n, g.stan, g.time
    FROM (SELECT * FROM h WHERE fwd) h
    FULL OUTER JOIN g ON g.acq = {ACQUIRER} AND g.stan = h.fstan AND g.time = h.ftime""")
    # The fallback key for what the key left alone: STAN, time, amount, card (length, last 4).
    con.execute("""
    CREATE TEMP TABLE fb AS
    SELECT lh.id, ls.line FROM
        (SELECT *, row_number() OVER (PARTITION BY fstan, ftime, h_amount, length(h_pan),
             right(h_pan, 4) ORDER BY ftime, fstan) AS r FROM pairs WHERE line IS NULL) lh
    JOIN (SELECT *, row_number() OVER (PARTITION BY stan, time, s_amount, length(s_pan),
             right(s_pan, 4) ORDER BY line) AS r FROM pairs WHERE id IS NULL) ls
    ON lh.fstan = ls.stan AND lh.ftime = ls.time AND lh.h_amount = ls.s_amount
        AND length(lh.h_pan) = length(ls.s_pan) AND right(lh.h_pan, 4) = right(ls.s_pan, 4)
        AND lh.r = ls.r""")
    con.execute("""
    CREATE TEMP TABLE joined AS
    SELECT coalesce(a.id, b.id) AS id, coalesce(a.st, b.st) AS st, a.h_credit, a.h_amount,
        a.h_pan, a.h_tid, a.h_mid, coalesce(b.line, a.line) AS line,
        coalesce(b.code, a.code) AS code, coalesce(b.reversed, a.reversed) AS reversed,
        coalesce(b.s_credit, a.s_credit) AS s_credit, coalesce(b.s_amount, a.s_amount) AS s_amount,
        coalesce(b.s_pan, a.s_pan) AS s_pan, coalesce(b.s_tid, a.s_tid) AS s_tid,
        coalesce(b.s_mid, a.s_mid) AS s_mid, coalesce(b.n, a.n) AS n
    FROM (SELECT * FROM pairs WHERE line IS NULL OR id IS NOT NULL
              OR line NOT IN (SELECT line FROM fb)) a
    LEFT JOIN (SELECT fb.id, p.* EXCLUDE (id, st), hs.st FROM fb
               JOIN pairs p ON p.line = fb.line AND p.id IS NULL
               JOIN pairs hs ON hs.id = fb.id) b
        ON a.line IS NULL AND a.id = b.id""")
    classes = con.execute("""
    WITH c AS (
        SELECT n,
            CASE WHEN id IS NULL THEN 'absent' WHEN st = 'A' THEN 'charged' ELSE 'not' END AS h,
            CASE WHEN line IS NULL THEN 'absent'
                 WHEN code = '00' AND NOT reversed THEN 'charged' ELSE 'not' END AS s,
            st, reversed,
            h_amount IS DISTINCT FROM s_amount OR h_pan IS DISTINCT FROM s_pan
                OR h_tid IS DISTINCT FROM s_tid OR h_mid IS DISTINCT FROM s_mid
                OR h_credit IS DISTINCT FROM s_credit AS differs
        FROM joined)
    SELECT CASE
        WHEN h = 'charged' AND s = 'charged' THEN CASE WHEN differs THEN 'G' ELSE 'A' END
        WHEN h = 'not' AND s = 'charged' AND st = 'R' THEN 'one_sided_reversal'
        WHEN h = 'not' AND s = 'charged' THEN 'C'
        WHEN h = 'absent' AND s = 'charged' THEN 'B'
        WHEN h = 'charged' AND s = 'not' AND reversed THEN 'one_sided_reversal'
        WHEN h = 'charged' THEN 'E'
        ELSE 'A' END AS class, count(*), sum(CASE WHEN n > 1 THEN 1 ELSE 0 END)
    FROM c GROUP BY ALL""").fetchall()
    batch = con.execute(f"""
    SELECT count(*) FROM '{ledger}/settlements.parquet' s
    WHERE settled_ms >= {day_from_ms} AND settled_ms < {day_to_ms}
        AND id = (SELECT max(id) FROM '{ledger}/settlements.parquet' t
                  WHERE t.tid = s.tid AND t.batch = s.batch)
        AND (terminal_debit_fen != host_debit_fen OR terminal_debit_count != host_debit_count
             OR terminal_credit_fen != host_credit_fen
             OR terminal_credit_count != host_credit_count OR balanced = 0)""").fetchone()[0]
    counts = {"duplicate": 0, "batch_total": batch}
    matched = 0
    for cls, n, dups in classes:
        counts["duplicate"] += int(dups or 0)
        if cls == "A":
            matched += n
        else:
            counts[cls] = counts.get(cls, 0) + n
    return {k: v for k, v in counts.items() if v}, matched


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--breaks", type=int, default=1_000)
    ap.add_argument("--dir", type=Path, default=Path("/tmp/poskit-recon-vs-duckdb"))
    ap.add_argument("--poskit", default=str(Path(os.environ.get(
        "CARGO_TARGET_DIR", ROOT / "target")) / "release/poskit"))
    ap.add_argument("--keep", action="store_true", help="keep the generated day")
    a = ap.parse_args()
    if a.dir.exists():
        sys.exit(f"--dir {a.dir}: already exists")
    out = subprocess.run([a.poskit, "bench", "recon", "--rows", str(a.rows), "--breaks",
                          str(a.breaks), "--dir", str(a.dir), "--keep", "--json"],
                         capture_output=True, text=True)
    if out.returncode not in (0, 1):
        sys.exit(f"poskit bench recon failed: {out.stderr}")
    try:
        bench = json.loads(out.stdout)
        run = bench["run"]
        ledger = a.dir / "parquet"
        ledger.mkdir()
        started = time.monotonic()
        export_ledger(a.dir, ledger)
        export_s = time.monotonic() - started
        # The clearing day 2026-03-04, cut at 23:00 Beijing time (poskit's default).
        day_from_ms = 1_772_550_000_000  # 2026-03-03 23:00 +08:00
        day_to_ms = day_from_ms + 86_400_000
        acoma = next((a.dir / "clearing").glob("*ACOMA"))
        started = time.monotonic()
        duck_classes, duck_matched = duckdb_recon(acoma, ledger, day_from_ms, day_to_ms)
        duck_s = time.monotonic() - started
    finally:
        if not a.keep:
            shutil.rmtree(a.dir, ignore_errors=True)
    poskit_s = run["total_ms"] / 1000
    poskit_lean_s = run["without_posting_ms"] / 1000
    agree = duck_classes == run["classes"] and duck_matched == run["matched"]
    print(f"{a.rows} ids, {a.breaks} breaks of each class")
    print(f"poskit: {poskit_s:.2f} s ({poskit_lean_s:.2f} s without posting"
          f" {run['adjustments']} credit adjustments), peak {run['peak_rss_bytes'] / 2**20:.0f} MiB")
    print(f"DuckDB {duckdb.__version__}: {duck_s:.2f} s (after an untimed export of the ledger"
          f" to Parquet, {export_s:.1f} s)")
    print(f"DuckDB / poskit (without posting): {duck_s / poskit_lean_s:.2f}")
    print(f"{'class':<20}{'poskit':>10}{'duckdb':>10}")
    for cls in sorted(set(duck_classes) | set(run["classes"])):
        print(f"{cls:<20}{run['classes'].get(cls, 0):>10}{duck_classes.get(cls, 0):>10}")
    print(f"{'matched':<20}{run['matched']:>10}{duck_matched:>10}")
    print("the counts agree" if agree else "MISMATCH between poskit and DuckDB")
    print("poskit found exactly the injected breaks" if bench["exact"]
          else "MISMATCH: poskit's breaks are not the injected ones")
    sys.exit(0 if agree and bench["exact"] else 1)


if __name__ == "__main__":
    main()
