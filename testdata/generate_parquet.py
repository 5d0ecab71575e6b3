"""Regenerates testdata/metrics.parquet (small, committed) deterministically."""
import datetime as dt
import decimal
import pathlib

import pyarrow as pa
import pyarrow.parquet as pq

HERE = pathlib.Path(__file__).parent
start = dt.datetime(2024, 3, 1, tzinfo=dt.timezone.utc)
rows = 48
table = pa.table(
    {
        "host": pa.array([f"web-{i % 3}" for i in range(rows)]),
        "at": pa.array([start + dt.timedelta(hours=i) for i in range(rows)], pa.timestamp("us", tz="UTC")),
        "cpu": pa.array([round((i * 7 % 100) / 100.0, 2) for i in range(rows)], pa.float64()),
        "requests": pa.array([i * 13 % 500 if i % 11 else None for i in range(rows)], pa.int64()),
        "cost": pa.array([decimal.Decimal(f"{i}.{i % 100:02d}") for i in range(rows)], pa.decimal128(10, 2)),
    }
)
pq.write_table(table, HERE / "metrics.parquet", compression="zstd")
