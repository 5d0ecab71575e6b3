"""TPC-H (22 queries) over Flight SQL: Basin vs DuckDB vs raw DataFusion, same run.

Generates the eight tables as Parquet with tpchgen-cli (cached under
benches/data/), ingests them into a fresh Basin data directory, starts
`basin serve`, and runs each query through ADBC. DuckDB and the `datafusion`
Python package run the same SQL on the same Parquet files in process. Prints
per-query times (best of --repeat), geometric means and their ratios.

    python benches/peers/tpch_flight.py --basin target/release/basin --scale 1
"""
import math
import pathlib
import subprocess
import sys
import tempfile
import time

from basin_process import accelerate, adbc_login, ingest, serve, start
from tpch_queries import QUERIES

ROOT = pathlib.Path(__file__).resolve().parents[2]
TABLES = ["customer", "lineitem", "nation", "orders", "part", "partsupp", "region", "supplier"]


def generate(scale: float) -> dict:
    out = ROOT / "benches" / "data" / f"tpch_sf{scale:g}"
    paths = {t: out / f"{t}.parquet" for t in TABLES}
    if not all(p.exists() for p in paths.values()):
        out.mkdir(parents=True, exist_ok=True)
        tpchgen = pathlib.Path(sys.executable).parent / "tpchgen-cli"
        subprocess.run(
            [str(tpchgen), "parquet", "-s", str(scale), "--output-dir", str(out)],
            check=True,
        )
    missing = [t for t, p in paths.items() if not p.exists()]
    if missing:
        raise SystemExit(f"tpchgen-cli did not write {missing} under {out}")
    return paths


def best_of(repeat, run):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def geomean(values):
    return math.exp(sum(math.log(v) for v in values) / len(values))


def add_arguments(parser):
    parser.add_argument("--tpch-repeat", type=int, default=2, help="runs per query; the best counts")
    parser.add_argument("--queries", default="1-22", help="e.g. 1-22 or 1,3,18")


def run(args):
    """Runs the queries in the three systems; returns the bench rows."""
    from report import Row

    if "-" in args.queries:
        lo, hi = args.queries.split("-")
        numbers = list(range(int(lo), int(hi) + 1))
    else:
        numbers = [int(q) for q in args.queries.split(",")]

    import adbc_driver_flightsql.dbapi as flightsql
    import datafusion
    import duckdb

    paths = generate(args.scale)
    duck = duckdb.connect()
    for table, path in paths.items():
        duck.sql(f"CREATE VIEW {table} AS SELECT * FROM read_parquet('{path}')")
    df = datafusion.SessionContext()
    for table, path in paths.items():
        df.register_parquet(table, str(path))

    results = {}
    mismatched = []
    with tempfile.TemporaryDirectory() as data_dir:
        for table, path in paths.items():
            ingest(args.basin, data_dir, path, table)
        basin, address = serve(args.basin, data_dir, {"BASIN_QUERY_TIMEOUT": "1h"})
        try:
            kwargs = adbc_login()
            with flightsql.connect(address, db_kwargs=kwargs, autocommit=True) as conn:
                cur = conn.cursor()

                def run_basin(sql):
                    cur.execute(sql)
                    return cur.fetch_arrow_table().num_rows

                print(f"{'query':>5} {'basin s':>9} {'duckdb s':>9} {'datafusion s':>13} {'rows':>6}")
                for q in numbers:
                    sql = QUERIES[q]
                    rows = run_basin(sql)  # warm-up, and the row count to compare
                    duck_rows = len(duck.sql(sql).fetchall())
                    df_rows = df.sql(sql).to_arrow_table().num_rows
                    if not rows == duck_rows == df_rows:
                        mismatched.append(q)
                        print(f"  q{q}: row counts differ: basin {rows}, duckdb {duck_rows}, datafusion {df_rows}")
                    b = best_of(args.tpch_repeat, lambda: run_basin(sql))
                    d = best_of(args.tpch_repeat, lambda: duck.sql(sql).to_arrow_table())
                    f = best_of(args.tpch_repeat, lambda: df.sql(sql).to_arrow_table())
                    results[q] = (b, d, f, answer_digest(cur, sql))
                    print(f"{q:>5} {b:>9.3f} {d:>9.3f} {f:>13.3f} {rows:>6}", flush=True)
        finally:
            basin.terminate()
            basin.wait(timeout=60)

        accelerated = run_accelerated(args.basin, data_dir, numbers, args.tpch_repeat, results)

    b, d, f = (geomean([r[i] for r in results.values()]) for i in range(3))
    a = geomean([accelerated[q][0] for q in results])
    print(f"accelerated: basin {a:.3f} s ({d / a:.2f}x duckdb)")
    print(f"geomean  basin {b:.3f} s, duckdb {d:.3f} s, datafusion {f:.3f} s")
    print(f"ratios   basin/duckdb {b / d:.2f}, basin/datafusion {b / f:.2f}, datafusion/duckdb {f / d:.2f}")
    worst = sorted(results, key=lambda q: results[q][0] / results[q][1], reverse=True)[:3]
    unequal = [q for q in results if accelerated[q][1] != results[q][3]]
    if unequal:
        raise SystemExit(f"TPC-H answers differ with acceleration for {unequal}")
    print("worst basin/duckdb: " + ", ".join(f"q{q} {results[q][0] / results[q][1]:.2f}" for q in worst))
    if mismatched:
        raise SystemExit(f"TPC-H row counts differ for {mismatched}: the figures would compare different answers")
    label = f"TPC-H SF{args.scale:g} geomean, {len(results)} queries (ADBC)"
    return [
        # Goal: geomean <= 1.2x DuckDB's.
        Row(label, "s", b, "lower", f"duckdb {duckdb.__version__}", d, goal=round(1 / 1.2, 2)),
        # Goal: what Basin adds on top of DataFusion <= 1.05x.
        Row(label, "s", b, "lower", f"datafusion-python {datafusion.__version__}", f, goal=round(1 / 1.05, 2)),
        # Goal: geomean <= 1.2x DuckDB's with the tables in memory.
        Row(f"{label}, accelerated", "s", a, "lower", f"duckdb {duckdb.__version__}", d, goal=round(1 / 1.2, 2)),
    ]


def answer_digest(cur, sql):
    """The answer of `sql`, sorted, as text: equal answers give equal digests
    (floats to 9 digits: sums taken in another order differ in the last ones)."""
    cur.execute(sql)
    table = cur.fetch_arrow_table()

    def text(value):
        return f"{value:.9g}" if isinstance(value, float) else repr(value)

    return sorted("|".join(text(v) for v in row.values()) for row in table.to_pylist())


def run_accelerated(binary, data_dir, numbers, repeat, results):
    """Serves `data_dir` with acceleration on, reads every table twice so that
    each loads into memory, waits for the loads, and times the queries again;
    returns {query: (best seconds, answer digest)}."""
    import adbc_driver_flightsql.dbapi as flightsql

    env = {"BASIN_QUERY_TIMEOUT": "1h", "BASIN_QUERY_ACCELERATION": "6GiB"}
    basin, addresses = start(binary, data_dir, env)
    out = {}
    try:
        accelerate(addresses, TABLES)
        with flightsql.connect(addresses["flight"], db_kwargs=adbc_login(), autocommit=True) as conn:
            cur = conn.cursor()

            def run_basin(sql):
                cur.execute(sql)
                return cur.fetch_arrow_table().num_rows

            for q in numbers:
                out[q] = (best_of(repeat, lambda: run_basin(QUERIES[q])), answer_digest(cur, QUERIES[q]))
                print(f"{q:>5} {out[q][0]:>9.3f} accelerated (was {results[q][0]:.3f})", flush=True)
    finally:
        basin.terminate()
        basin.wait(timeout=60)
    return out



if __name__ == "__main__":
    import report

    report.run_script(sys.modules[__name__])
