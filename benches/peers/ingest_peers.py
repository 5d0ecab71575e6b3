"""CSV -> Parquet ingest: Basin vs DuckDB vs Polars, in the same run.

Generates TPC-H lineitem with tpchgen-cli (cached under benches/data/), then
times each system converting the same CSV to Parquet and prints MB/s, the
ratios, and Basin's peak RSS.

    python benches/peers/ingest_peers.py --scale 1 --basin target/release/basin
"""
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]


def generate(scale: float) -> pathlib.Path:
    out = ROOT / "benches" / "data" / f"sf{scale:g}"
    csv = out / "lineitem.csv"
    if not csv.exists():
        out.mkdir(parents=True, exist_ok=True)
        tpchgen = pathlib.Path(sys.executable).parent / "tpchgen-cli"
        subprocess.run(
            [str(tpchgen), "csv", "-s", str(scale), "--tables", "lineitem", "--output-dir", str(out)],
            check=True,
        )
        found = next(out.rglob("lineitem*.csv"))
        if found != csv:
            found.rename(csv)
    return csv


def timed(label, fn):
    start = time.perf_counter()
    fn()
    elapsed = time.perf_counter() - start
    return label, elapsed


def run_basin(binary: str, csv: pathlib.Path, work: pathlib.Path) -> float:
    """Runs `basin ingest`; returns its peak RSS in MB.

    Read from the process's own `VmHWM` while it runs (every 5 ms; the peak
    only grows, so the last reading is the highest), not from `wait4`: a
    forked child's `ru_maxrss` keeps the pages it shared with this process
    before `exec`, which after the analytics suite is gigabytes of Python.
    """
    data = work / "basin-data"
    cmd = [binary, "--data-dir", str(data), "ingest", str(csv), "--dataset", "lineitem", "--mode", "overwrite"]
    process = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    peak_kib = 0
    while process.poll() is None:
        try:
            status = pathlib.Path(f"/proc/{process.pid}/status").read_text()
        except OSError:  # exited between the poll and the read
            break
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                peak_kib = max(peak_kib, int(line.split()[1]))
        time.sleep(0.005)
    if process.wait() != 0:
        raise subprocess.CalledProcessError(process.returncode, cmd)
    return peak_kib / 1024


def run_duckdb(csv: pathlib.Path, work: pathlib.Path):
    import duckdb

    con = duckdb.connect()
    con.sql(f"COPY (FROM read_csv('{csv}')) TO '{work / 'duckdb.parquet'}' (FORMAT parquet)")
    con.close()


def run_polars(csv: pathlib.Path, work: pathlib.Path):
    import polars as pl

    pl.scan_csv(csv).sink_parquet(work / "polars.parquet")


def add_arguments(parser):
    parser.add_argument("--repeat", type=int, default=1)


def run(args):
    """Times the three conversions; returns the bench rows."""
    from report import bound, versus

    csv = generate(args.scale)
    size_mb = csv.stat().st_size / 1e6
    print(f"input: {csv} ({size_mb:.0f} MB)")
    results = {}
    peaks = []
    for _ in range(args.repeat):
        for label, fn in [
            ("basin", lambda w: peaks.append(run_basin(args.basin, csv, w))),
            ("duckdb", lambda w: run_duckdb(csv, w)),
            ("polars", lambda w: run_polars(csv, w)),
        ]:
            work = pathlib.Path(tempfile.mkdtemp(prefix=f"peer-{label}-"))
            try:
                _, elapsed = timed(label, lambda: fn(work))
            finally:
                shutil.rmtree(work, ignore_errors=True)
            results[label] = min(results.get(label, float("inf")), elapsed)

    peak_rss_mb = max(peaks)
    for label, elapsed in results.items():
        print(f"{label:>7}: {elapsed:6.2f} s  {size_mb / elapsed:7.1f} MB/s")
    print(f"basin peak RSS: {peak_rss_mb:.0f} MB (input {size_mb:.0f} MB)")
    import duckdb
    import polars

    throughput = {label: size_mb / elapsed for label, elapsed in results.items()}
    return [
        versus(
            f"ingest CSV -> dataset, lineitem SF{args.scale:g}",
            "MB/s",
            "higher",
            throughput["basin"],
            {
                f"duckdb {duckdb.__version__} COPY": throughput["duckdb"],
                f"polars {polars.__version__} sink_parquet": throughput["polars"],
            },
            goal=1.0,
        ),
        bound("ingest peak RSS", "MB", "lower", peak_rss_mb, goal=round(size_mb * 0.25)),
    ]


if __name__ == "__main__":
    import report

    report.run_script(sys.modules[__name__])
