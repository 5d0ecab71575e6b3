use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, DictionaryArray, Float64Array, Int32Array, Int64Array, StringArray,
    TimestampSecondArray,
};
use arrow::datatypes::Int32Type;
use serde_json::json;

use super::*;

fn sample_batch() -> RecordBatch {
    let n: ArrayRef = Arc::new(Int64Array::from(vec![3, 1, 4, 1, 5, 5]));
    let x: ArrayRef = Arc::new(Float64Array::from(vec![
        Some(1.5),
        Some(f64::NAN),
        None,
        Some(2.5),
        Some(-0.5),
        Some(-0.5),
    ]));
    let email: ArrayRef = Arc::new(StringArray::from(vec![
        "a@example.com",
        "b@example.com",
        "c@example.org",
        "d@example.net",
        "e@example.com",
        "e@example.com",
    ]));
    let ts: ArrayRef = Arc::new(
        TimestampSecondArray::from(vec![0, 3600, 7200, 10_800, 86_400, 86_400])
            .with_timezone("+02:00"),
    );
    let flag: ArrayRef = Arc::new(BooleanArray::from(vec![
        true, false, true, true, true, true,
    ]));
    let k: ArrayRef = Arc::new(StringArray::from(vec!["x"; 6]));
    let sparse: ArrayRef = Arc::new(Int32Array::from(vec![
        Some(7),
        None,
        Some(8),
        None,
        None,
        None,
    ]));
    RecordBatch::try_from_iter(vec![
        ("n", n),
        ("x", x),
        ("email", email),
        ("ts", ts),
        ("flag", flag),
        ("k", k),
        ("sparse", sparse),
    ])
    .expect("valid batch")
}

fn profile_of(batches: &[RecordBatch]) -> TableProfile {
    let mut profiler = TableProfiler::new(batches[0].schema(), &ProfileOptions::default(), 0);
    for batch in batches {
        profiler.update(batch).expect("profile update");
    }
    profiler.finish()
}

fn column<'a>(profile: &'a TableProfile, name: &str) -> &'a ColumnProfile {
    profile
        .columns
        .iter()
        .find(|c| c.name == name)
        .expect("profiled column")
}

fn tops(column: &ColumnProfile) -> Vec<(Value, u64)> {
    column
        .top_values
        .iter()
        .map(|t| (t.value.clone(), t.count))
        .collect()
}

fn has_alert(profile: &TableProfile, column: Option<&str>, kind: AlertKind) -> bool {
    profile
        .alerts
        .iter()
        .any(|a| a.kind == kind && a.column.as_deref() == column)
}

#[test]
fn profiles_every_kind() {
    let profile = profile_of(&[sample_batch()]);
    assert_eq!(profile.rows, 6);
    assert_eq!(profile.column_count, 7);
    assert_eq!(profile.duplicate_rows, Some(1));

    let n = column(&profile, "n");
    assert_eq!(n.kind, ColumnKind::Numeric);
    assert_eq!((n.count, n.nulls, n.distinct), (6, 0, 4));
    assert!(n.distinct_exact);
    assert_eq!(n.min, Some(json!(1)));
    assert_eq!(n.max, Some(json!(5)));
    assert_eq!(n.sum, Some(19.0));
    assert!((n.mean.unwrap_or_default() - 19.0 / 6.0).abs() < 1e-12);
    let quantiles = n.quantiles.as_ref().expect("quantiles");
    // numpy.quantile([3, 1, 4, 1, 5, 5], [.25, .5, .75]) == [1.5, 3.5, 4.75]
    assert_eq!(quantiles.p25, json!(1.5));
    assert_eq!(quantiles.p50, json!(3.5));
    assert_eq!(quantiles.p75, json!(4.75));
    assert_eq!(quantiles.p1, json!(1.0));
    assert_eq!(quantiles.p99, json!(5.0));
    assert!(n.quantiles_exact);
    assert_eq!(n.iqr, Some(3.25));
    assert_eq!(
        tops(n),
        vec![(json!(1), 2), (json!(5), 2), (json!(3), 1), (json!(4), 1)]
    );
    assert!(n.top_values_exact);
    let histogram = n.histogram.as_ref().expect("histogram");
    assert_eq!(histogram.edges.len(), 21);
    assert_eq!(histogram.counts.iter().sum::<u64>(), 6);
    assert_eq!(n.zeros, Some(0));
    assert_eq!(n.nan, None);

    let x = column(&profile, "x");
    assert_eq!((x.count, x.nulls, x.distinct), (5, 1, 4));
    assert_eq!((x.nan, x.infinite), (Some(1), Some(0)));
    assert_eq!(x.min, Some(json!(-0.5)));
    assert_eq!(x.max, Some(json!(2.5)));
    assert_eq!(x.negatives, Some(2));
    let quantiles = x.quantiles.as_ref().expect("quantiles");
    // numpy.quantile([1.5, 2.5, -0.5, -0.5], [.25, .5, .75]) == [-0.5, 0.5, 1.75]
    assert_eq!(quantiles.p25, json!(-0.5));
    assert_eq!(quantiles.p50, json!(0.5));
    assert_eq!(quantiles.p75, json!(1.75));
    assert_eq!(tops(x)[0], (json!(-0.5), 2));
    assert!(tops(x).contains(&(json!("NaN"), 1)));

    let email = column(&profile, "email");
    assert_eq!(email.kind, ColumnKind::Text);
    assert_eq!(email.distinct, 5);
    assert_eq!(email.min, Some(json!("a@example.com")));
    assert_eq!(email.max, Some(json!("e@example.com")));
    assert_eq!(tops(email)[0], (json!("e@example.com"), 2));
    let pattern = email.pattern.as_ref().expect("pattern");
    assert_eq!(pattern.name, "email");
    assert_eq!(pattern.percent, 100.0);
    assert_eq!(
        email.lengths,
        Some(LengthStats {
            min: 13,
            max: 13,
            mean: 13.0
        })
    );
    assert_eq!(email.empty_strings, Some(0));
    assert_eq!(email.quantiles, None);

    let ts = column(&profile, "ts");
    assert_eq!(ts.kind, ColumnKind::Temporal);
    assert_eq!(ts.min, Some(json!("1970-01-01T02:00:00+02:00")));
    assert_eq!(ts.max, Some(json!("1970-01-02T02:00:00+02:00")));
    let quantiles = ts.quantiles.as_ref().expect("quantiles");
    assert_eq!(quantiles.p50, json!("1970-01-01T04:30:00+02:00"));
    assert_eq!(ts.mean, None);
    assert_eq!(tops(ts)[0], (json!("1970-01-02T02:00:00+02:00"), 2));

    let flag = column(&profile, "flag");
    assert_eq!(flag.kind, ColumnKind::Boolean);
    assert_eq!((flag.true_count, flag.false_count), (Some(5), Some(1)));
    assert_eq!(
        (flag.min.clone(), flag.max.clone()),
        (Some(json!(false)), Some(json!(true)))
    );
    assert_eq!(flag.distinct, 2);
    assert_eq!(tops(flag), vec![(json!(true), 5), (json!(false), 1)]);

    let sparse = column(&profile, "sparse");
    assert_eq!((sparse.count, sparse.nulls), (2, 4));

    assert!(has_alert(&profile, Some("k"), AlertKind::Constant));
    assert!(has_alert(&profile, Some("sparse"), AlertKind::HighMissing));
    assert!(has_alert(&profile, None, AlertKind::Duplicates));
    assert!(!has_alert(&profile, Some("n"), AlertKind::Constant));
    assert!(!has_alert(&profile, Some("flag"), AlertKind::Imbalanced));

    let json = serde_json::to_value(&profile).expect("serializes");
    assert!(json["columns"][0].get("lengths").is_none());
    let back: TableProfile = serde_json::from_value(json).expect("deserializes");
    assert_eq!(back.columns.len(), 7);
}

#[test]
fn merged_partitions_match_the_whole() {
    let batch = sample_batch();
    let whole = profile_of(std::slice::from_ref(&batch));
    let options = ProfileOptions::default();
    let mut first = TableProfiler::new(batch.schema(), &options, 0);
    let mut second = TableProfiler::new(batch.schema(), &options, 1);
    first.update(&batch.slice(0, 5)).expect("first partition");
    second.update(&batch.slice(5, 1)).expect("second partition");
    first.merge(second);
    assert_eq!(first.rows(), 6);
    let merged = first.finish();

    assert_eq!(merged.rows, whole.rows);
    assert_eq!(merged.duplicate_rows, whole.duplicate_rows);
    for (a, b) in merged.columns.iter().zip(&whole.columns) {
        assert_eq!(a.name, b.name);
        assert_eq!(
            (a.count, a.nulls, a.distinct, a.distinct_exact),
            (b.count, b.nulls, b.distinct, b.distinct_exact),
            "{}",
            a.name
        );
        assert_eq!((&a.min, &a.max), (&b.min, &b.max), "{}", a.name);
        assert_eq!(a.quantiles, b.quantiles, "{}", a.name);
        assert_eq!(a.quantiles_exact, b.quantiles_exact, "{}", a.name);
        assert_eq!(a.histogram, b.histogram, "{}", a.name);
        assert_eq!(a.top_values, b.top_values, "{}", a.name);
        assert_eq!(a.top_values_exact, b.top_values_exact, "{}", a.name);
        assert_eq!((a.true_count, a.false_count), (b.true_count, b.false_count));
        assert_eq!((a.zeros, a.negatives), (b.zeros, b.negatives), "{}", a.name);
        assert_eq!((a.nan, a.infinite), (b.nan, b.infinite), "{}", a.name);
        assert_eq!(a.lengths, b.lengths, "{}", a.name);
        assert_eq!(a.pattern, b.pattern, "{}", a.name);
        assert_eq!(a.empty_strings, b.empty_strings, "{}", a.name);
        match (a.mean, b.mean) {
            (Some(x), Some(y)) => assert!((x - y).abs() <= 1e-12 * y.abs().max(1.0)),
            (x, y) => assert_eq!(x, y, "{}", a.name),
        }
    }
    let kinds = |p: &TableProfile| {
        p.alerts
            .iter()
            .map(|a| (a.column.clone(), a.kind))
            .collect::<Vec<_>>()
    };
    assert_eq!(kinds(&merged), kinds(&whole));
}

#[test]
fn dictionaries_profile_as_their_values() {
    let dictionary: DictionaryArray<Int32Type> = vec!["a", "b", "a"].into_iter().collect();
    let batch = RecordBatch::try_from_iter(vec![("d", Arc::new(dictionary) as ArrayRef)])
        .expect("valid batch");
    let profile = profile_of(&[batch]);
    let d = column(&profile, "d");
    assert_eq!(d.kind, ColumnKind::Text);
    assert_eq!(d.distinct, 2);
    assert_eq!(tops(d), vec![(json!("a"), 2), (json!("b"), 1)]);
    assert_eq!(d.min, Some(json!("a")));
}

#[test]
fn patterns_prefer_the_earlier_on_ties() {
    let digits: Vec<String> = (0..20).map(|i| format!("555{i:04}12")).collect();
    assert_eq!(
        detect_pattern(&digits).map(|p| p.name),
        Some("integer_text".to_owned())
    );
    let dates = vec!["2024-01-31".to_owned(), "1999-12-01".to_owned()];
    assert_eq!(
        detect_pattern(&dates).map(|p| p.name),
        Some("iso_date".to_owned())
    );
    let mixed = vec!["1".to_owned(), "2.5".to_owned()];
    assert_eq!(
        detect_pattern(&mixed).map(|p| p.name),
        Some("decimal_text".to_owned())
    );
    let words = vec!["hello".to_owned(), "world".to_owned()];
    assert_eq!(detect_pattern(&words), None);
}
