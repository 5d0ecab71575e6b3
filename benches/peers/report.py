"""Rows of the bench table: one workload, Basin's figure, the best peer's from
the same run, their ratio, the goal and whether it is met.

Every ratio reads the same way: above 1, Basin is faster. For times it is
peer / Basin, for throughputs Basin / peer. A row without a peer is an
absolute goal (a latency, a memory bound).
"""
import argparse
import json
import pathlib
from dataclasses import asdict, dataclass
from typing import Optional

ROOT = pathlib.Path(__file__).resolve().parents[2]


@dataclass
class Row:
    workload: str
    unit: str
    basin: float
    # "lower" (seconds, milliseconds, MB) or "higher" (MB/s, requests/s).
    better: str
    peer: Optional[str] = None
    peer_value: Optional[float] = None
    # A ratio to reach (for rows with a peer) or a bound on Basin's figure.
    goal: Optional[float] = None

    @property
    def ratio(self) -> Optional[float]:
        if self.peer_value is None or not self.basin or not self.peer_value:
            return None
        if self.better == "lower":
            return self.peer_value / self.basin
        return self.basin / self.peer_value

    @property
    def goal_text(self) -> str:
        if self.goal is None:
            return ""
        if self.peer is not None:
            return f"ratio >= {self.goal:g}"
        sign = "<=" if self.better == "lower" else ">="
        return f"{sign} {self.goal:g} {self.unit}"

    @property
    def met(self) -> Optional[bool]:
        if self.goal is None:
            return None
        if self.peer is not None:
            return self.ratio is not None and self.ratio >= self.goal
        if self.better == "lower":
            return self.basin <= self.goal
        return self.basin >= self.goal

    def as_dict(self) -> dict:
        return dict(asdict(self), ratio=self.ratio, goal_text=self.goal_text, met=self.met)


def versus(workload, unit, better, basin, peers: dict, goal=None) -> Row:
    """A row against the best of `peers` ({name: figure}, same unit)."""
    pick = min if better == "lower" else max
    name = pick(peers, key=peers.get)
    return Row(workload, unit, basin, better, name, peers[name], goal)


def bound(workload, unit, better, basin, goal=None) -> Row:
    """A row with an absolute goal and no peer."""
    return Row(workload, unit, basin, better, goal=goal)


def _figure(value, unit) -> str:
    if value is None:
        return ""
    digits = 3 if value < 10 else 1 if value < 1000 else 0
    return f"{value:,.{digits}f} {unit}"


def print_table(rows):
    header = ("workload", "basin", "best peer", "ratio", "goal", "met")
    lines = [
        (
            r.workload,
            _figure(r.basin, r.unit),
            f"{r.peer} {_figure(r.peer_value, r.unit)}" if r.peer else "",
            f"{r.ratio:.2f}" if r.ratio is not None else "",
            r.goal_text,
            {True: "yes", False: "NO", None: ""}[r.met],
        )
        for r in rows
    ]
    widths = [max(len(str(x)) for x in column) for column in zip(header, *lines)]
    for line in [header, tuple("-" * w for w in widths), *lines]:
        print(" | ".join(str(x).ljust(w) for x, w in zip(line, widths)).rstrip())


def write_json(rows, path, context: dict):
    with open(path, "w") as f:
        json.dump(dict(context, rows=[r.as_dict() for r in rows]), f, indent=2)
        f.write("\n")


def common_arguments(parser):
    """The arguments every suite reads: the binary and the TPC-H scale."""
    parser.add_argument("--basin", default=str(ROOT / "target" / "release" / "basin"))
    parser.add_argument("--scale", type=float, default=1.0)


def run_script(suite):
    """Runs one suite module as a script: its arguments, its rows, the table."""
    parser = argparse.ArgumentParser(description=suite.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    common_arguments(parser)
    suite.add_arguments(parser)
    print_table(suite.run(parser.parse_args()))
