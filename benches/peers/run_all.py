"""Every comparison of the bench command in one run: one table (workload,
Basin, best peer, ratio, goal, met) and the same figures as JSON.

    python benches/peers/run_all.py --basin target/release/basin --scale 1 --json benches/results.json

`--only ingest,tpch` runs some of them: ingest, tpch, flight, rest,
analytics, ws.
"""
import argparse
import datetime
import os
import pathlib
import platform
import subprocess
import sys
import time
import traceback

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import analytics_peers  # noqa: E402
import flight_doget  # noqa: E402
import ingest_peers  # noqa: E402
import rest_aggregates  # noqa: E402
import tpch_flight  # noqa: E402
import ws_fanout  # noqa: E402
from report import common_arguments, print_table, write_json  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[2]
SUITES = {
    "ingest": ingest_peers,
    "tpch": tpch_flight,
    "flight": flight_doget,
    "rest": rest_aggregates,
    "analytics": analytics_peers,
    "ws": ws_fanout,
}


def main():
    parser = argparse.ArgumentParser()
    common_arguments(parser)
    parser.add_argument("--json", default=str(ROOT / "benches" / "results.json"))
    parser.add_argument("--only", default=",".join(SUITES))
    for suite in SUITES.values():
        suite.add_arguments(parser)
    args = parser.parse_args()

    rows, failed, timings = [], [], {}
    for name in args.only.split(","):
        print(f"== {name}", flush=True)
        started = time.perf_counter()
        try:
            rows += SUITES[name].run(args)
        except Exception:  # one broken suite must not hide the others' figures
            traceback.print_exc()
            failed.append(name)
        timings[name] = round(time.perf_counter() - started, 1)
        print(f"   ({timings[name]:.0f} s)", flush=True)

    print()
    print_table(rows)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    write_json(rows, args.json, {
        "at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "commit": commit,
        "scale": args.scale,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "suite_seconds": timings,
        "failed_suites": failed,
    })
    print(f"\nfigures: {args.json}")
    if failed:
        raise SystemExit(f"suites that failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
