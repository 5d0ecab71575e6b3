//! The profile's sketches, one value stream at a time, and the whole
//! one-pass profiler over a batch of typical columns.

// criterion_group! and criterion_main! generate undocumented items.
#![allow(missing_docs)]

use std::sync::Arc;

use basin_engine::analytics::profile::{ProfileOptions, TableProfiler};
use basin_engine::analytics::sketch::{FrequentItems, HyperLogLog, Moments, UniformSample};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use datafusion::arrow::array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};

const VALUES: usize = 1_000_000;

/// Deterministic, well-mixed 64-bit values (splitmix64).
fn mixed(i: u64) -> u64 {
    let mut z = i.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn sketch_benches(c: &mut Criterion) {
    let hashes: Vec<u64> = (0..VALUES as u64).map(mixed).collect();
    let floats: Vec<f64> = hashes
        .iter()
        .map(|h| (h >> 11) as f64 / (1u64 << 53) as f64)
        .collect();

    let mut group = c.benchmark_group("sketch");
    group.throughput(Throughput::Elements(VALUES as u64));
    group.bench_function("hyperloglog_insert_1m", |b| {
        b.iter(|| {
            let mut hll = HyperLogLog::new();
            for &h in &hashes {
                hll.insert_hash(h);
            }
            hll.estimate()
        })
    });
    group.bench_function("uniform_sample_insert_1m", |b| {
        b.iter(|| {
            let mut sample = UniformSample::new(32_768, 1);
            for chunk in floats.chunks(8192) {
                sample.insert_slice(chunk);
            }
            sample.finish().quantile(0.5)
        })
    });
    group.bench_function("moments_update_1m", |b| {
        b.iter(|| {
            let mut moments = Moments::default();
            for chunk in floats.chunks(8192) {
                moments.update_slice(chunk);
            }
            moments.skewness()
        })
    });
    group.bench_function("frequent_items_1m_unique", |b| {
        b.iter(|| {
            let mut items = FrequentItems::new(2048);
            for (i, &h) in hashes.iter().enumerate() {
                items.insert(h, 1, || i as i64);
            }
            items.top(10)
        })
    });
    group.bench_function("frequent_items_1m_of_100", |b| {
        b.iter(|| {
            let mut items = FrequentItems::new(2048);
            for &h in &hashes {
                let key = h % 100;
                items.insert(key, 1, || key);
            }
            items.top(10)
        })
    });
    group.finish();

    let batch = profile_batch();
    let mut group = c.benchmark_group("profile");
    group.sample_size(20);
    group.throughput(Throughput::Elements(VALUES as u64));
    group.bench_function("four_columns_1m_rows", |b| {
        b.iter_batched(
            || TableProfiler::new(batch.schema(), &ProfileOptions::default(), 0),
            |mut profiler| {
                for offset in (0..VALUES).step_by(8192) {
                    let len = 8192.min(VALUES - offset);
                    profiler.update(&batch.slice(offset, len)).expect("update");
                }
                profiler.finish()
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

/// An id, a measure, a count and a low-cardinality label.
fn profile_batch() -> RecordBatch {
    let n = VALUES as u64;
    let columns: Vec<(&str, ArrayRef)> = vec![
        (
            "id",
            Arc::new(Int64Array::from_iter_values((0..n).map(|i| i as i64))),
        ),
        (
            "amount",
            Arc::new(Float64Array::from_iter_values(
                (0..n).map(|i| (mixed(i) % 100_000) as f64 / 100.0),
            )),
        ),
        (
            "qty",
            Arc::new(Int64Array::from_iter_values(
                (0..n).map(|i| (mixed(i) % 20) as i64),
            )),
        ),
        (
            "country",
            Arc::new(StringArray::from_iter_values((0..n).map(|i| {
                ["DE", "FR", "US", "GB", "JP"][(mixed(i) % 5) as usize]
            }))),
        ),
    ];
    RecordBatch::try_from_iter(columns).expect("batch")
}

criterion_group!(benches, sketch_benches);
criterion_main!(benches);
