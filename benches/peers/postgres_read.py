"""PostgreSQL -> Arrow: Basin's connector vs `COPY … TO STDOUT (FORMAT binary)`, same run.

Creates (once) `basin_bench.big`, a 5M-row table of ten columns (integers,
numeric, float, text, boolean, timestamptz, date), and `basin_bench_wide`, a
schema of 200 tables. Then, on the same table and in the same run:

- psql: `COPY basin_bench.big TO STDOUT (FORMAT binary)` into /dev/null
  (the server's fastest export, with no client-side decoding at all);
- Basin: `pg_read` (benches/src/bin/pg_read.rs) reads the table through the
  postgres connector (datafusion-table-providers) into Arrow batches;

and prints rows/s for both, the ratio, and the time to discover the 200-table schema.

    cargo build --release -p basin-benches --bin pg_read
    python3 benches/peers/postgres_read.py --pg-read $CARGO_TARGET_DIR/release/pg_read
"""
import argparse
import os
import subprocess
import time

ROWS = 5_000_000
WIDE_TABLES = 200


def psql(args, sql, **kw):
    return subprocess.run(
        ["psql", "-h", args.host, "-p", str(args.port), "-U", args.user, "-d", args.database,
         "-v", "ON_ERROR_STOP=1", "-q", "-At", "-c", sql],
        check=True, **kw)


def prepare(args):
    exists = psql(args, "SELECT count(*) FROM pg_tables WHERE schemaname = 'basin_bench' AND tablename = 'big'",
                  capture_output=True, text=True).stdout.strip()
    count = psql(args, "SELECT count(*) FROM basin_bench.big", capture_output=True, text=True).stdout.strip() \
        if exists == "1" else "0"
    if count != str(ROWS):
        print(f"creating basin_bench.big ({ROWS:,} rows)…", flush=True)
        psql(args, f"""
            DROP SCHEMA IF EXISTS basin_bench CASCADE; CREATE SCHEMA basin_bench;
            CREATE TABLE basin_bench.big AS
            SELECT g::bigint AS id, (g % 1000)::integer AS customer, (g % 97)::smallint AS shop,
                   round((random() * 1000)::numeric, 2)::numeric(12,2) AS amount,
                   random() * 100 AS score, md5(g::text) AS label, (g % 3 = 0) AS flagged,
                   timestamptz '2024-01-01' + g * interval '1 second' AS created_at,
                   date '2024-01-01' + (g % 365) AS day, 'c' || (g % 50) AS category
            FROM generate_series(1, {ROWS}) g;
            ANALYZE basin_bench.big;""")
    wide = psql(args, "SELECT count(*) FROM pg_tables WHERE schemaname = 'basin_bench_wide'",
                capture_output=True, text=True).stdout.strip()
    if wide != str(WIDE_TABLES):
        print(f"creating basin_bench_wide ({WIDE_TABLES} tables)…", flush=True)
        statements = ["DROP SCHEMA IF EXISTS basin_bench_wide CASCADE", "CREATE SCHEMA basin_bench_wide"]
        for i in range(WIDE_TABLES):
            statements.append(
                f"CREATE TABLE basin_bench_wide.t{i:03} (id bigint PRIMARY KEY, name text, amount numeric(10,2), "
                f"created_at timestamptz, active boolean, payload jsonb, tags text[], d date)")
        psql(args, "; ".join(statements))


def best_of(n, fn):
    return min(fn() for _ in range(n))


def time_copy(args):
    start = time.perf_counter()
    with open(os.devnull, "wb") as sink:
        psql(args, "COPY basin_bench.big TO STDOUT (FORMAT binary)", stdout=sink)
    return time.perf_counter() - start


def run_pg_read(args, *extra):
    out = subprocess.run(
        [args.pg_read, "--host", args.host, "--port", str(args.port), "--database", args.database,
         "--user", args.user, *extra], check=True, capture_output=True, text=True).stdout
    fields = dict(part.split("=") for part in out.split()[1:])
    return fields


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--pg-read", default="target/release/pg_read")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5432)
    parser.add_argument("--database", default="test")
    parser.add_argument("--user", default="postgres")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    prepare(args)

    copy = best_of(args.runs, lambda: time_copy(args))
    basin_runs = [run_pg_read(args, "--stream", "basin_bench.big") for _ in range(args.runs)]
    assert all(int(r["rows"]) == ROWS for r in basin_runs), basin_runs
    basin = min(float(r["seconds"]) for r in basin_runs)
    discover = min(float(run_pg_read(args, "--discover", "basin_bench_wide")["seconds"]) for _ in range(args.runs))

    print(f"\nPostgreSQL read, {ROWS:,} rows x 10 columns (best of {args.runs})")
    print(f"  psql COPY (FORMAT binary) > /dev/null  {copy:7.2f} s  {ROWS / copy / 1e6:6.2f} M rows/s")
    print(f"  Basin postgres connector -> Arrow       {basin:7.2f} s  {ROWS / basin / 1e6:6.2f} M rows/s")
    print(f"  ratio Basin / COPY (rows/s)             {copy / basin:7.2f}")
    print(f"Discover {WIDE_TABLES} tables: {discover * 1000:.0f} ms")


if __name__ == "__main__":
    main()
