"""WebSocket fan-out as bench rows: runs the `ws_fanout` binary (see
benches/src/bin/ws_fanout.rs) and reads its `RESULT` line."""
import json
import pathlib
import resource
import subprocess
import sys


def add_arguments(parser):
    parser.add_argument("--subscribers", type=int, default=1000)


def run(args):
    from report import bound

    binary = pathlib.Path(args.basin).with_name("ws_fanout")
    # 1,000 subscribers and 10,000 idle sockets need more descriptors than the default.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))
    done = subprocess.run(
        [str(binary), "--basin", args.basin, "--subscribers", str(args.subscribers)],
        check=True, capture_output=True, text=True,
    )
    print(done.stdout, end="")
    result = json.loads(next(line for line in done.stdout.splitlines() if line.startswith("RESULT "))[7:])
    latency = result["latency_ms"]
    label = f"WebSocket fan-out, {args.subscribers} subscribers"
    expected = result["events_per_subscriber_run"]
    return [
        bound(f"{label}: p99 delivery", "ms", "lower", latency["p99"], goal=50),
        bound(f"{label}: runs with an event missing", "runs", "lower",
              float(result["failed_runs"] + (expected["min"] != expected["max"])), goal=0),
    ]


if __name__ == "__main__":
    import report

    report.run_script(sys.modules[__name__])
