"""Profiles and quality checks against values computed independently with pyarrow.

The fixture is generated here (seeded), uploaded as Parquet, profiled and
checked through the REST API; every figure is then recomputed with
pyarrow.compute on the same table and compared within the bounds
docs/analytics.md states.
"""

import bisect
import io
import random
import time
from datetime import datetime, timedelta, timezone

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from conftest import ADMIN_PASSWORD, call

ROWS = 60_000  # above the 32,768-value sample, so quantiles are estimated
DUPLICATES = 37
# DKW with m = 32,768 and δ = 0.001: ε ≈ 1.08 percentage points of rank.
RANK_BOUND = 0.0108
# HyperLogLog with 2^14 registers: σ ≈ 0.81 %; 4σ.
DISTINCT_BOUND = 0.033


@pytest.fixture(scope="module")
def token(server):
    status, body = call(server, "POST", "/auth/login", {"username": "admin", "password": ADMIN_PASSWORD})
    assert status == 200, body
    return body["data"]["token"]


def fixture_table():
    rng = random.Random(7)
    start = datetime(2026, 3, 1, tzinfo=timezone.utc)
    amount, qty, city, email, at, flag = [], [], [], [], [], []
    for i in range(ROWS - DUPLICATES):
        amount.append(None if rng.random() < 0.1 else round(rng.lognormvariate(3, 1), 4))
        qty.append(rng.randint(-5, 40))
        city.append(rng.choices(["berlin", "paris", "rome", "oslo"], weights=[60, 25, 10, 5])[0])
        email.append(f"user{rng.randint(0, 20_000)}@example.com")
        at.append(start + timedelta(seconds=rng.randint(0, 86_400 * 30)))
        flag.append(rng.random() < 0.8)
    # Exact copies of earlier rows, for the duplicate count.
    for i in range(DUPLICATES):
        for column in (amount, qty, city, email, at, flag):
            column.append(column[i * 3])
    return pa.table(
        {
            "amount": pa.array(amount, pa.float64()),
            "qty": pa.array(qty, pa.int64()),
            "city": pa.array(city, pa.string()),
            "email": pa.array(email, pa.string()),
            "at": pa.array(at, pa.timestamp("us", "UTC")),
            "flag": pa.array(flag, pa.bool_()),
        }
    )


@pytest.fixture(scope="module")
def profiled(server, token):
    table = fixture_table()
    sink = io.BytesIO()
    pq.write_table(table, sink)
    status, body = call(
        server, "POST", "/datasets/sales/upload?format=parquet", token=token,
        raw=sink.getvalue(), content_type="application/octet-stream",
    )
    assert status == 201, body
    status, body = call(server, "POST", "/datasets/sales/profile", {}, token=token)
    assert status == 202, body
    job_id = body["data"]["id"]
    for _ in range(600):
        status, body = call(server, "GET", f"/jobs/{job_id}", token=token)
        if body["data"]["status"] in ("succeeded", "failed", "canceled"):
            break
        time.sleep(0.1)
    assert body["data"]["status"] == "succeeded", body
    status, body = call(server, "GET", "/datasets/sales/profile", token=token)
    assert status == 200, body
    return table, body["data"]


def column(profile, name):
    return next(c for c in profile["columns"] if c["name"] == name)


def rank_of(sorted_values, value):
    """The fraction of values at or below `value` (mid-rank for ties)."""
    low = bisect.bisect_left(sorted_values, value)
    high = bisect.bisect_right(sorted_values, value)
    return (low + high) / 2 / len(sorted_values)


def test_table_figures(profiled):
    table, profile = profiled
    assert profile["rows"] == table.num_rows
    assert profile["column_count"] == table.num_columns
    assert profile["duplicate_rows"] == DUPLICATES


def test_counts_nulls_and_moments_are_exact(profiled):
    table, profile = profiled
    for name in ("amount", "qty"):
        values = table[name]
        stats = column(profile, name)
        assert stats["nulls"] == values.null_count
        assert stats["count"] == len(values) - values.null_count
        minmax = pc.min_max(values).as_py()
        assert stats["min"] == pytest.approx(minmax["min"], rel=1e-12)
        assert stats["max"] == pytest.approx(minmax["max"], rel=1e-12)
        assert stats["mean"] == pytest.approx(pc.mean(values).as_py(), rel=1e-9)
        assert stats["stddev"] == pytest.approx(pc.stddev(values, ddof=1).as_py(), rel=1e-9)
    qty = table["qty"]
    assert column(profile, "qty")["zeros"] == pc.sum(pc.equal(qty, 0)).as_py()
    assert column(profile, "qty")["negatives"] == pc.sum(pc.less(qty, 0)).as_py()


def test_quantiles_are_within_the_stated_rank_bound(profiled):
    table, profile = profiled
    for name in ("amount", "qty"):
        values = sorted(v for v in table[name].to_pylist() if v is not None)
        quantiles = column(profile, name)["quantiles"]
        for key, q in [("p1", 0.01), ("p5", 0.05), ("p25", 0.25), ("p50", 0.5), ("p75", 0.75), ("p95", 0.95), ("p99", 0.99)]:
            low = bisect.bisect_left(values, quantiles[key]) / len(values)
            high = bisect.bisect_right(values, quantiles[key]) / len(values)
            # The reported value's rank range must come within the bound of q.
            assert low - RANK_BOUND <= q <= high + RANK_BOUND, (name, key, quantiles[key], low, high)


def test_distinct_counts(profiled):
    table, profile = profiled
    city = column(profile, "city")
    assert city["distinct"] == pc.count_distinct(table["city"]).as_py()
    assert city["distinct_exact"] is True
    email = column(profile, "email")
    truth = pc.count_distinct(table["email"]).as_py()
    if email["distinct_exact"]:
        assert email["distinct"] == truth
    else:
        assert abs(email["distinct"] - truth) / truth <= DISTINCT_BOUND, (email["distinct"], truth)


def test_top_values_histogram_and_pattern(profiled):
    table, profile = profiled
    counts = {row["values"]: row["counts"] for row in pc.value_counts(table["city"]).to_pylist()}
    city = column(profile, "city")
    assert [(t["value"], t["count"]) for t in city["top_values"]] == sorted(counts.items(), key=lambda kv: -kv[1])
    assert city["top_values_exact"] is True
    histogram = column(profile, "amount")["histogram"]
    assert sum(histogram["counts"]) == column(profile, "amount")["count"]
    assert len(histogram["edges"]) == len(histogram["counts"]) + 1
    assert column(profile, "email")["pattern"]["name"] == "email"
    assert column(profile, "flag")["true_count"] == pc.sum(table["flag"]).as_py()


def test_checks_agree_with_pyarrow(server, token, profiled):
    table, _ = profiled
    checks = [
        {"name": "amount_present", "type": "not_null", "column": "amount"},
        {"name": "amount_mostly_present", "type": "not_null", "column": "amount", "mostly": 0.85},
        {"name": "known_city", "type": "accepted_values", "column": "city", "values": ["berlin", "paris", "rome"]},
        {"name": "qty_positive", "type": "range", "column": "qty", "min": 0},
        {"name": "emails", "type": "regex", "column": "email", "pattern": "^user[0-9]+@example\\.com$"},
        {"name": "enough_rows", "type": "row_count", "min": 1000},
    ]
    for check in checks:
        status, body = call(server, "POST", "/datasets/sales/checks", check, token=token)
        assert status == 201, body
    status, body = call(server, "POST", "/datasets/sales/check-runs", {}, token=token)
    assert status == 200, body
    results = {r["check_name"]: r for r in body["data"]["results"]}

    nulls = table["amount"].null_count
    assert results["amount_present"]["outcome"] == "fail"
    assert results["amount_present"]["unexpected_count"] == nulls
    assert results["amount_present"]["element_count"] == table.num_rows
    assert results["amount_mostly_present"]["outcome"] == "pass"
    oslo = pc.sum(pc.equal(table["city"], "oslo")).as_py()
    assert results["known_city"]["unexpected_count"] == oslo
    assert all(row["city"] == "oslo" for row in results["known_city"]["sample"])
    negative = pc.sum(pc.less(table["qty"], 0)).as_py()
    assert results["qty_positive"]["unexpected_count"] == negative
    assert results["qty_positive"]["unexpected_percent"] == pytest.approx(100 * negative / table.num_rows)
    assert results["emails"]["outcome"] == "pass"
    assert results["enough_rows"]["outcome"] == "pass"
    assert results["enough_rows"]["observed"] == table.num_rows
