//! Properties over generated inputs: merging sketches built on parts of a
//! column gives what one pass over the whole column gives, and calendar
//! buckets tile any range in any time zone.

use basin_analytics::sketch::{FrequentItems, HyperLogLog, Moments, UniformSample};
use basin_analytics::timeseries::{Granularity, bucket_starts};
use chrono::{DateTime, Datelike, NaiveTime, TimeDelta, Utc};
use chrono_tz::Tz;
use proptest::collection::vec;
use proptest::prelude::*;

/// Zones with the awkward cases: DST in both hemispheres, a half-hour
/// offset, a 45-minute offset, a half-hour DST shift, and none at all.
const ZONES: [Tz; 7] = [
    Tz::UTC,
    Tz::Europe__Berlin,
    Tz::America__New_York,
    Tz::Australia__Sydney,
    Tz::Asia__Kolkata,
    Tz::Pacific__Chatham,
    Tz::Australia__Lord_Howe,
];

const GRANULARITIES: [&str; 9] = [
    "day",
    "week",
    "month",
    "quarter",
    "year",
    "hour",
    "minute",
    "15 minutes",
    "90s",
];

fn hll_of(hashes: &[u64]) -> HyperLogLog {
    let mut sketch = HyperLogLog::new();
    for &hash in hashes {
        sketch.insert_hash(hash);
    }
    sketch
}

fn moments_of(values: &[f64]) -> Moments {
    let mut moments = Moments::default();
    moments.update_slice(values);
    moments
}

fn close(a: Option<f64>, b: Option<f64>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => (a - b).abs() <= 1e-6 * (1.0 + a.abs().max(b.abs())),
        (None, None) => true,
        _ => false,
    }
}

proptest! {
    #[test]
    fn distinct_count_sketches_merge_to_the_one_pass_sketch(
        left in vec(any::<u64>(), 0..3000),
        right in vec(any::<u64>(), 0..3000),
    ) {
        let whole: Vec<u64> = left.iter().chain(&right).copied().collect();
        let expected = hll_of(&whole).estimate();
        let mut merged = hll_of(&left);
        merged.merge(&hll_of(&right));
        prop_assert_eq!(merged.estimate(), expected);
        let mut other_way = hll_of(&right);
        other_way.merge(&hll_of(&left));
        prop_assert_eq!(other_way.estimate(), expected);
    }

    #[test]
    fn frequent_items_within_capacity_merge_to_exact_counts(
        left in vec(0u64..40, 0..400),
        right in vec(0u64..40, 0..400),
    ) {
        let summarize = |values: &[u64]| {
            let mut items = FrequentItems::new(64);
            for &v in values {
                items.insert(v.wrapping_mul(0x9E37_79B9_7F4A_7C15), 1, || v);
            }
            items
        };
        let mut merged = summarize(&left);
        merged.merge(summarize(&right));
        prop_assert!(merged.is_exact());
        prop_assert_eq!(merged.seen(), (left.len() + right.len()) as u64);
        let mut truth = std::collections::BTreeMap::<u64, u64>::new();
        for &v in left.iter().chain(&right) {
            *truth.entry(v).or_default() += 1;
        }
        let mut counted: Vec<(u64, u64)> = merged.top(usize::MAX);
        counted.sort_unstable();
        prop_assert_eq!(counted, truth.into_iter().collect::<Vec<_>>());
    }

    #[test]
    fn moments_merge_to_the_one_pass_moments(
        parts in vec(vec(-1e6f64..1e6, 0..200), 1..6),
    ) {
        let whole: Vec<f64> = parts.iter().flatten().copied().collect();
        let expected = moments_of(&whole);
        let mut merged = Moments::default();
        for part in &parts {
            merged.merge(&moments_of(part));
        }
        prop_assert_eq!(merged.count(), expected.count());
        prop_assert!(close(merged.mean(), expected.mean()));
        prop_assert!(close(merged.variance_sample(), expected.variance_sample()));
        prop_assert!(close(merged.skewness(), expected.skewness()));
    }

    #[test]
    fn uniform_samples_of_whole_streams_merge_to_the_union(
        left in vec(-1e3f64..1e3, 0..100),
        right in vec(-1e3f64..1e3, 0..100),
        seed in any::<u64>(),
    ) {
        let sample_of = |values: &[f64], seed: u64| {
            let mut sample = UniformSample::new(256, seed);
            sample.insert_slice(values);
            sample
        };
        let merged = sample_of(&left, seed).merge(sample_of(&right, seed ^ 1));
        prop_assert!(merged.is_exact());
        prop_assert_eq!(merged.seen(), (left.len() + right.len()) as u64);
        let mut got = merged.into_values();
        let mut want: Vec<f64> = left.iter().chain(&right).copied().collect();
        got.sort_by(f64::total_cmp);
        want.sort_by(f64::total_cmp);
        prop_assert_eq!(got, want);
    }

    #[test]
    fn buckets_tile_any_range_in_any_zone(
        start in 1_500_000_000i64..2_000_000_000,
        length in 1i64..(3 * 366 * 86_400),
        zone in 0..ZONES.len(),
        granularity in 0..GRANULARITIES.len(),
    ) {
        let tz = ZONES[zone];
        let unit = Granularity::parse(GRANULARITIES[granularity]).expect("granularity");
        let from = DateTime::<Utc>::from_timestamp(start, 0).expect("start");
        let to = from + TimeDelta::seconds(length);
        let starts = match bucket_starts(from, to, unit, tz) {
            Ok(starts) => starts,
            // Too many buckets is a refusal, not a tiling to check.
            Err(_) => return Ok(()),
        };
        prop_assert!(!starts.is_empty());
        prop_assert!(starts[0] <= from, "first bucket {} after the start {from}", starts[0]);
        prop_assert!(starts.windows(2).all(|w| w[0] < w[1]), "buckets out of order");
        prop_assert!(*starts.last().expect("a bucket") < to);
        match unit {
            Granularity::Fixed { seconds } => {
                prop_assert_eq!(starts[0], from.with_timezone(&tz));
                let width = TimeDelta::seconds(i64::from(seconds));
                prop_assert!(starts.windows(2).all(|w| w[1] - w[0] == width));
                prop_assert!(*starts.last().expect("a bucket") + width >= to);
            }
            Granularity::Calendar(_) => {
                // Each bucket starts at a local midnight (or, where DST
                // skips midnight, within the hour after it), and the first
                // holds the range's start.
                for bucket in &starts {
                    let time = bucket.naive_local().time();
                    prop_assert!(time < NaiveTime::from_hms_opt(1, 0, 0).expect("time"), "{bucket}");
                }
                let first = starts[0].date_naive();
                let local_start = from.with_timezone(&tz).date_naive();
                prop_assert!(first <= local_start);
                let unit_name = GRANULARITIES[granularity];
                let aligned = match unit_name {
                    "day" => first == local_start,
                    "week" => first.weekday() == chrono::Weekday::Mon,
                    "month" => first.day() == 1,
                    "quarter" => first.day() == 1 && first.month0() % 3 == 0,
                    _ => first.day() == 1 && first.month() == 1,
                };
                prop_assert!(aligned, "{unit_name} bucket starts on {first}");
            }
        }
    }
}
