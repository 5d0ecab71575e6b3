use super::*;
use arrow::array::{Int64Array, TimestampMicrosecondArray, TimestampNanosecondArray};
use chrono_tz::America::New_York;
use chrono_tz::Europe::Berlin;
use serde_json::json;

fn schema() -> Schema {
    Schema::new(vec![
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            true,
        ),
        Field::new(
            "naive",
            DataType::Timestamp(TimeUnit::Millisecond, None),
            true,
        ),
        Field::new("day", DataType::Date32, true),
        Field::new("city", DataType::Utf8, true),
        Field::new("device", DataType::Utf8, true),
        Field::new("name", DataType::Utf8, true),
        Field::new("we\"ird", DataType::Utf8, true),
        Field::new("amount", DataType::Float64, true),
        Field::new("latency", DataType::Int64, true),
    ])
}

fn base() -> Value {
    json!({
        "source": {"dataset": "events"},
        "time_column": "ts",
        "granularity": "day",
        "date_range": ["2026-01-01", "2026-01-05"],
        "measures": [{"agg": "count"}]
    })
}

fn with(changes: Value) -> TimeseriesRequest {
    let mut request = base();
    for (key, value) in changes.as_object().unwrap() {
        request[key] = value.clone();
    }
    serde_json::from_value(request).unwrap()
}

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 29, 12, 0, 0).unwrap()
}

fn planned(changes: Value) -> TimeseriesPlan {
    plan(&with(changes), &schema(), "\"events\"", now()).unwrap()
}

fn refused(changes: Value) -> (AnalyticsProblem, String) {
    match plan(&with(changes), &schema(), "\"events\"", now()) {
        Err(Error::Refused { problem, message }) => (problem, message),
        other => panic!("expected an analytics error, got {other:?}"),
    }
}

fn utc(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, h, 0, 0).unwrap()
}

fn berlin(y: i32, m: u32, d: u32) -> DateTime<Utc> {
    Berlin
        .with_ymd_and_hms(y, m, d, 0, 0, 0)
        .unwrap()
        .with_timezone(&Utc)
}

fn relative(text: &str, tz: Tz, now: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
    let (from, to) = resolve_range(&DateRange::Relative(text.into()), tz, now).unwrap();
    (from.with_timezone(&Utc), to.with_timezone(&Utc))
}

fn day_nanos(day: u32) -> i64 {
    utc(2026, 1, day, 0).timestamp_nanos_opt().unwrap()
}

/// A result batch as the runner would hand it over.
fn batch(
    days: &[u32],
    dimension: Option<Vec<Option<&str>>>,
    measures: Vec<ArrayRef>,
) -> RecordBatch {
    let buckets: Vec<i64> = days.iter().map(|&d| day_nanos(d)).collect();
    let mut columns: Vec<(String, ArrayRef)> = vec![(
        "__bucket".into(),
        Arc::new(TimestampNanosecondArray::from(buckets).with_timezone("UTC")),
    )];
    if let Some(values) = dimension {
        columns.push(("d0".into(), Arc::new(StringArray::from(values))));
    }
    for (i, measure) in measures.into_iter().enumerate() {
        columns.push((format!("m{i}"), measure));
    }
    RecordBatch::try_from_iter(columns).unwrap()
}

fn floats(values: Vec<Option<f64>>) -> ArrayRef {
    Arc::new(Float64Array::from(values))
}

#[test]
fn relative_ranges_resolve_in_the_time_zone() {
    // Sunday 2026-03-29, 14:00 in Berlin, the day clocks go forward.
    let now = now();
    assert_eq!(
        relative("today", Berlin, now),
        (utc(2026, 3, 28, 23), utc(2026, 3, 29, 22))
    );
    assert_eq!(
        relative("yesterday", Berlin, now),
        (utc(2026, 3, 27, 23), utc(2026, 3, 28, 23))
    );
    assert_eq!(
        relative("this week", Berlin, now),
        (utc(2026, 3, 22, 23), utc(2026, 3, 29, 22))
    );
    assert_eq!(
        relative("last month", Berlin, now),
        (utc(2026, 1, 31, 23), utc(2026, 2, 28, 23))
    );
    assert_eq!(
        relative("this quarter", Berlin, now),
        (utc(2025, 12, 31, 23), utc(2026, 3, 31, 22))
    );
    assert_eq!(
        relative("last year", Berlin, now),
        (utc(2024, 12, 31, 23), utc(2025, 12, 31, 23))
    );
    assert_eq!(
        relative("last 24 hours", Berlin, now),
        (utc(2026, 3, 28, 13), utc(2026, 3, 29, 13))
    );
    assert_eq!(
        relative("Last 3 Months", Berlin, now),
        (utc(2025, 12, 31, 23), utc(2026, 3, 31, 22))
    );
}

#[test]
fn last_7_days_near_midnight_utc_uses_the_local_day() {
    // 03:30 UTC on March 10th is still March 9th, 23:30 in New York, two
    // days after clocks went forward there.
    let now = Utc.with_ymd_and_hms(2026, 3, 10, 3, 30, 0).unwrap();
    assert_eq!(
        relative("last 7 days", New_York, now),
        (utc(2026, 3, 3, 5), utc(2026, 3, 10, 4))
    );
    assert_eq!(
        relative("today", Tz::UTC, now),
        (utc(2026, 3, 10, 0), utc(2026, 3, 11, 0))
    );
}

#[test]
fn absolute_ranges_include_a_date_only_end_but_not_a_timestamp_end() {
    let range = |from: &str, to: &str| {
        let (from, to) =
            absolute_range(&[from.to_owned(), to.to_owned()], Berlin, "date_range").unwrap();
        (from.with_timezone(&Utc), to.with_timezone(&Utc))
    };
    assert_eq!(
        range("2026-03-28", "2026-03-30"),
        (utc(2026, 3, 27, 23), utc(2026, 3, 30, 22))
    );
    assert_eq!(
        range("2026-03-28T00:00:00Z", "2026-03-29T12:00:00+01:00"),
        (utc(2026, 3, 28, 0), utc(2026, 3, 29, 11))
    );
    assert_eq!(
        range("2026-03-28T10:00:00", "2026-03-28 12:00"),
        (utc(2026, 3, 28, 9), utc(2026, 3, 28, 11))
    );
    let (problem, _) = refused(json!({"date_range": ["2026-03-30", "2026-03-28"]}));
    assert_eq!(problem, AnalyticsProblem::InvalidDateRange);
    let (problem, message) = refused(json!({"date_range": "next week"}));
    assert_eq!(problem, AnalyticsProblem::InvalidDateRange);
    assert!(message.contains("next week"), "{message}");
}

#[test]
fn hourly_buckets_follow_absolute_time_across_dst() {
    let hour = Granularity::Fixed { seconds: 3600 };
    let spring = bucket_starts(berlin(2026, 3, 29), berlin(2026, 3, 30), hour, Berlin).unwrap();
    assert_eq!(spring.len(), 23);
    let autumn = bucket_starts(berlin(2026, 10, 25), berlin(2026, 10, 26), hour, Berlin).unwrap();
    assert_eq!(autumn.len(), 25);
    let plan = planned(json!({
        "granularity": "hour",
        "timezone": "Europe/Berlin",
        "date_range": ["2026-03-29", "2026-03-29"]
    }));
    assert_eq!(plan.bucket_count(), 23);
}

#[test]
fn daily_and_monthly_buckets_follow_the_local_calendar() {
    let day = Granularity::Calendar(CalendarUnit::Day);
    let days = bucket_starts(berlin(2026, 3, 28), berlin(2026, 3, 31), day, Berlin).unwrap();
    let days: Vec<String> = days.iter().map(DateTime::to_rfc3339).collect();
    assert_eq!(
        days,
        [
            "2026-03-28T00:00:00+01:00",
            "2026-03-29T00:00:00+01:00",
            "2026-03-30T00:00:00+02:00"
        ]
    );
    let month = Granularity::Calendar(CalendarUnit::Month);
    let months = bucket_starts(berlin(2026, 1, 1), berlin(2027, 1, 1), month, Berlin).unwrap();
    assert_eq!(months.len(), 12);
    assert_eq!(months[3].to_rfc3339(), "2026-04-01T00:00:00+02:00");
    // A week bucket starts on the Monday before a mid-week range start.
    let week = Granularity::Calendar(CalendarUnit::Week);
    let weeks = bucket_starts(utc(2026, 3, 4, 12), utc(2026, 3, 10, 0), week, Tz::UTC).unwrap();
    let weeks: Vec<String> = weeks.iter().map(DateTime::to_rfc3339).collect();
    assert_eq!(
        weeks,
        ["2026-03-02T00:00:00+00:00", "2026-03-09T00:00:00+00:00"]
    );
}

#[test]
fn granularities_parse() {
    let fixed = |seconds| Granularity::Fixed { seconds };
    for (text, expected) in [
        ("hour", fixed(3600)),
        ("15 minutes", fixed(900)),
        ("5m", fixed(300)),
        ("2 hours", fixed(7200)),
        ("90s", fixed(90)),
        ("1 day", Granularity::Calendar(CalendarUnit::Day)),
        ("Week", Granularity::Calendar(CalendarUnit::Week)),
    ] {
        assert_eq!(Granularity::parse(text).unwrap(), expected, "{text}");
    }
    assert_eq!(fixed(900).to_string(), "15 minutes");
    assert_eq!(fixed(7200).to_string(), "2 hours");
    for text in ["fortnight", "0 minutes", "2 days", "1.5 hours", ""] {
        let (problem, message) = refused(json!({"granularity": text}));
        assert_eq!(problem, AnalyticsProblem::InvalidGranularity, "{text}");
        assert!(message.contains("granularity"), "{message}");
    }
}

#[test]
fn sql_quotes_identifiers_and_escapes_literals() {
    let plan = planned(json!({
        "timezone": "Europe/Berlin",
        "dimensions": ["device", "we\"ird"],
        "measures": [
            {"agg": "sum", "column": "amount", "name": "revenue"},
            {"agg": "p95", "column": "latency"},
            {"agg": "count_distinct", "column": "city"}
        ],
        "filters": {"and": [
            {"column": "name", "op": "eq", "value": "O'Brien"},
            {"or": [
                {"column": "amount", "op": "gt", "value": 10},
                {"not": {"column": "city", "op": "in", "value": ["Köln", "Bonn"]}}
            ]},
            {"column": "city", "op": "contains", "value": "50%"},
            {"column": "ts", "op": "gte", "value": "2026-01-02"}
        ]}
    }));
    let sql = plan.sql();
    for expected in [
        r#"date_trunc('day', arrow_cast("ts", 'Timestamp(Microsecond, Some("Europe/Berlin"))')) AS "__bucket""#,
        r#""device" AS "d0""#,
        r#""we""ird" AS "d1""#,
        r#"sum("amount") AS "m0""#,
        r#"approx_percentile_cont(CAST("latency" AS DOUBLE), 0.95) AS "m1""#,
        r#"count(DISTINCT "city") AS "m2""#,
        r#"FROM "events""#,
        r#""ts" >= arrow_cast(TIMESTAMP '2025-12-31T23:00:00Z', 'Timestamp(Nanosecond, Some("UTC"))')"#,
        r#""ts" < arrow_cast(TIMESTAMP '2026-01-05T23:00:00Z', 'Timestamp(Nanosecond, Some("UTC"))')"#,
        r#""name" = 'O''Brien'"#,
        r#"("amount" > 10 OR (NOT "city" IN ('Köln', 'Bonn')))"#,
        r#"strpos("city", '50%') > 0"#,
        r#""ts" >= arrow_cast(TIMESTAMP '2026-01-01T23:00:00Z', 'Timestamp(Nanosecond, Some("UTC"))')"#,
        r#"GROUP BY date_trunc('day', arrow_cast("ts", 'Timestamp(Microsecond, Some("Europe/Berlin"))')), "device", "we""ird""#,
    ] {
        assert!(sql.contains(expected), "missing {expected} in\n{sql}");
    }
    assert!(plan.compare_sql().is_none());
    let (from, to) = plan.range();
    assert_eq!(from.to_rfc3339(), "2026-01-01T00:00:00+01:00");
    assert_eq!(to.to_rfc3339(), "2026-01-06T00:00:00+01:00");
}

#[test]
fn sql_bins_fixed_widths_from_the_range_start() {
    let plan = planned(json!({"granularity": "hour"}));
    assert!(plan.sql().contains(
        r#"date_bin(INTERVAL '3600 seconds', "ts", arrow_cast(TIMESTAMP '2026-01-01T00:00:00Z', 'Timestamp(Microsecond, Some("UTC"))')) AS "__bucket""#
    ), "{}", plan.sql());
    assert_eq!(plan.bucket_count(), 5 * 24);

    let naive = planned(json!({"granularity": "15 minutes", "time_column": "naive"}));
    let sql = naive.sql();
    assert!(sql.contains(
        r#"date_bin(INTERVAL '900 seconds', arrow_cast("naive", 'Timestamp(Millisecond, Some("UTC"))'), arrow_cast(TIMESTAMP '2026-01-01T00:00:00Z', 'Timestamp(Millisecond, Some("UTC"))'))"#
    ), "{sql}");
    assert!(
        sql.contains(r#""naive" >= TIMESTAMP '2026-01-01T00:00:00Z'"#),
        "{sql}"
    );

    let dates = planned(json!({"time_column": "day", "timezone": "Europe/Berlin"}));
    let sql = dates.sql();
    assert!(sql.contains(
        r#"date_trunc('day', arrow_cast(arrow_cast(arrow_cast("day", 'Timestamp(Nanosecond, None)'), 'Timestamp(Nanosecond, Some("Europe/Berlin"))'), 'Timestamp(Nanosecond, Some("Europe/Berlin"))'))"#
    ), "{sql}");
    assert!(
        sql.contains(r#""day" >= DATE '2026-01-01' AND "day" < DATE '2026-01-06'"#),
        "{sql}"
    );
}

#[test]
fn validation_names_the_offending_field() {
    let (problem, message) = refused(json!({"dimensions": ["nope"]}));
    assert_eq!(problem, AnalyticsProblem::UnknownColumn);
    assert!(message.contains("`nope`"), "{message}");
    let (problem, _) = refused(json!({"time_column": "nope"}));
    assert_eq!(problem, AnalyticsProblem::UnknownColumn);
    let (problem, _) = refused(json!({"filters": {"column": "nope", "op": "is_null"}}));
    assert_eq!(problem, AnalyticsProblem::UnknownColumn);

    let (problem, message) = refused(json!({"time_column": "city"}));
    assert_eq!(problem, AnalyticsProblem::InvalidTimeColumn);
    assert_eq!(message, "column `city` is Utf8, not a timestamp or date");

    let (problem, message) = refused(json!({"measures": [{"agg": "sum", "column": "city"}]}));
    assert_eq!(problem, AnalyticsProblem::InvalidMeasure);
    assert_eq!(message, "`sum` needs a numeric column; `city` is Utf8");
    for measures in [
        json!([{"agg": "percentile", "column": "latency"}]),
        json!([{"agg": "percentile", "column": "latency", "q": 1.0}]),
        json!([{"agg": "avg"}]),
        json!([{"agg": "max", "column": "city"}]),
        json!([{"agg": "count"}, {"agg": "count"}]),
        json!([{"agg": "sum", "column": "amount", "rolling": {"window": 0, "agg": "sum"}}]),
        json!([]),
    ] {
        let (problem, _) = refused(json!({ "measures": measures }));
        assert_eq!(problem, AnalyticsProblem::InvalidMeasure, "{measures}");
    }

    let (problem, message) = refused(json!({"timezone": "Mars/Olympus"}));
    assert_eq!(problem, AnalyticsProblem::InvalidTimezone);
    assert!(message.contains("Mars/Olympus"), "{message}");

    for filter in [
        json!({"column": "amount", "op": "contains", "value": "1"}),
        json!({"column": "city", "op": "in", "value": "Bonn"}),
        json!({"column": "amount", "op": "between", "value": [1]}),
        json!({"column": "amount", "op": "eq", "value": "ten"}),
        json!({"column": "city", "op": "eq"}),
        json!({"column": "city", "op": "is_null", "value": "x"}),
        json!({"column": "ts", "op": "gt", "value": "soon"}),
        json!({"and": []}),
    ] {
        let (problem, _) = refused(json!({ "filters": filter }));
        assert_eq!(problem, AnalyticsProblem::InvalidFilter, "{filter}");
    }
    assert!(
        serde_json::from_value::<TimeseriesRequest>(json!({
            "source": {"dataset": "events"}, "time_column": "ts", "granularity": "day",
            "date_range": "today", "measures": [{"agg": "count"}],
            "filters": {"column": "city", "op": "like", "value": "x"}
        }))
        .is_err()
    );
}

#[test]
fn too_many_buckets_or_too_few_points_are_refused() {
    let (problem, message) = refused(json!({
        "granularity": "second",
        "date_range": ["2025-01-01", "2025-12-31"]
    }));
    assert_eq!(problem, AnalyticsProblem::TooManyPoints);
    assert!(message.contains("31536000"), "{message}");
    let (problem, _) = refused(json!({"max_points": 2}));
    assert_eq!(problem, AnalyticsProblem::TooManyPoints);
}

fn fill_case(fill: &str) -> Vec<Option<f64>> {
    let plan = planned(json!({"fill": fill}));
    let rows = batch(&[2, 4], None, vec![floats(vec![Some(2.0), Some(6.0)])]);
    let answer = assemble(&plan, &[rows], None).unwrap();
    assert_eq!(answer.series.len(), 1);
    answer.series[0].values.clone()
}

#[test]
fn gaps_are_filled_as_asked() {
    assert_eq!(fill_case("null"), [None, Some(2.0), None, Some(6.0), None]);
    assert_eq!(
        fill_case("zero"),
        [Some(0.0), Some(2.0), Some(0.0), Some(6.0), Some(0.0)]
    );
    assert_eq!(
        fill_case("previous"),
        [None, Some(2.0), Some(2.0), Some(6.0), Some(6.0)]
    );
    assert_eq!(
        fill_case("linear"),
        [None, Some(2.0), Some(4.0), Some(6.0), None]
    );
}

#[test]
fn buckets_of_any_unit_match_and_strays_are_counted() {
    let plan = planned(json!({}));
    let micros: Vec<i64> = [1, 3, 20].iter().map(|&d| day_nanos(d) / 1_000).collect();
    let rows = RecordBatch::try_from_iter(vec![
        (
            "__bucket",
            Arc::new(TimestampMicrosecondArray::from(micros).with_timezone("Europe/Berlin"))
                as ArrayRef,
        ),
        ("m0", Arc::new(Int64Array::from(vec![5, 7, 9])) as ArrayRef),
    ])
    .unwrap();
    let answer = assemble(&plan, &[rows], None).unwrap();
    assert_eq!(answer.dropped_rows, 1);
    assert_eq!(
        answer.series[0].values,
        [Some(5.0), None, Some(7.0), None, None]
    );
    assert_eq!(answer.series[0].measure, "count");
    assert_eq!(answer.buckets, 5);
}

#[test]
fn rolling_windows_skip_nulls() {
    let values = [Some(1.0), None, Some(3.0), Some(4.0)];
    assert_eq!(
        rolling(&values, 2, RollingAgg::Sum),
        [Some(1.0), Some(1.0), Some(3.0), Some(7.0)]
    );
    assert_eq!(
        rolling(&values, 2, RollingAgg::Avg),
        [Some(1.0), Some(1.0), Some(3.0), Some(3.5)]
    );
    assert_eq!(
        rolling(&values, 2, RollingAgg::Min),
        [Some(1.0), Some(1.0), Some(3.0), Some(3.0)]
    );
    assert_eq!(
        rolling(&values, 2, RollingAgg::Max),
        [Some(1.0), Some(1.0), Some(3.0), Some(4.0)]
    );
    assert_eq!(rolling(&[None, None], 3, RollingAgg::Sum), [None, None]);
}

#[test]
fn rolling_windows_read_buckets_before_the_range() {
    let plan = planned(json!({
        "date_range": ["2026-01-02", "2026-01-05"],
        "measures": [{"agg": "sum", "column": "amount", "name": "revenue_2d",
                      "rolling": {"window": 2, "agg": "sum"}}]
    }));
    assert_eq!(plan.bucket_count(), 4);
    assert!(
        plan.sql().contains("TIMESTAMP '2026-01-01T00:00:00Z'"),
        "{}",
        plan.sql()
    );
    let rows = batch(
        &[1, 2, 4],
        None,
        vec![floats(vec![Some(1.0), Some(2.0), Some(4.0)])],
    );
    let answer = assemble(&plan, &[rows], None).unwrap();
    assert_eq!(
        answer.series[0].values,
        [Some(3.0), Some(2.0), Some(4.0), Some(4.0)]
    );
    assert_eq!(answer.series[0].time.epoch_nanos()[0], day_nanos(2));
}

#[test]
fn lttb_keeps_the_ends_and_exactly_max_points() {
    let values: Vec<Option<f64>> = (0..100)
        .map(|i| Some((f64::from(i) / 7.0).sin() * f64::from(i)))
        .collect();
    let kept = downsample(&values, 10);
    assert_eq!(kept.len(), 10);
    assert_eq!(kept[0], 0);
    assert_eq!(kept[9], 99);
    assert!(kept.windows(2).all(|w| w[0] < w[1]), "{kept:?}");

    let gappy = [
        Some(1.0),
        None,
        Some(5.0),
        None,
        Some(2.0),
        Some(8.0),
        None,
        Some(3.0),
    ];
    let kept = downsample(&gappy, 3);
    assert_eq!(kept.len(), 3);
    assert_eq!((kept[0], kept[2]), (0, 7));
    assert!(kept.iter().all(|&i| gappy[i].is_some()));

    let plan = planned(json!({"max_points": 3}));
    let rows = batch(
        &[1, 2, 3, 4, 5],
        None,
        vec![floats(vec![
            Some(1.0),
            Some(9.0),
            Some(2.0),
            Some(3.0),
            Some(4.0),
        ])],
    );
    let answer = assemble(&plan, &[rows], None).unwrap();
    assert!(answer.downsampled);
    assert_eq!(answer.series[0].values, [Some(1.0), Some(9.0), Some(4.0)]);
    assert_eq!(
        answer.series[0].time.epoch_nanos(),
        [day_nanos(1), day_nanos(2), day_nanos(5)]
    );
}

#[test]
fn comparison_series_align_by_index() {
    let plan = planned(json!({
        "date_range": ["2026-01-04", "2026-01-06"],
        "compare_to": "previous_period"
    }));
    let compare_sql = plan.compare_sql().unwrap();
    assert!(
        compare_sql.contains("TIMESTAMP '2026-01-01T00:00:00Z'"),
        "{compare_sql}"
    );
    assert!(
        compare_sql.contains("TIMESTAMP '2026-01-04T00:00:00Z'"),
        "{compare_sql}"
    );
    let main = batch(&[4, 6], None, vec![floats(vec![Some(10.0), Some(30.0)])]);
    let before = batch(&[1, 2], None, vec![floats(vec![Some(1.0), Some(2.0)])]);
    let answer = assemble(&plan, &[main], Some(&[before][..])).unwrap();
    assert_eq!(answer.series[0].values, [Some(10.0), None, Some(30.0)]);
    let comparison = answer.comparison.as_ref().unwrap();
    assert_eq!(comparison.buckets, 3);
    assert_eq!(comparison.series[0].values, [Some(1.0), Some(2.0), None]);
    assert_eq!(
        comparison.series[0].time.epoch_nanos(),
        [day_nanos(1), day_nanos(2), day_nanos(3)]
    );

    let json = serde_json::to_value(&answer).unwrap();
    assert_eq!(
        json["comparison"]["range"]["from"],
        "2026-01-01T00:00:00+00:00"
    );
    assert_eq!(
        json["comparison"]["range"]["to"],
        "2026-01-04T00:00:00+00:00"
    );
    assert_eq!(json["range"]["to"], "2026-01-07T00:00:00+00:00");

    let leap = planned(json!({
        "date_range": ["2024-02-01", "2024-02-29"],
        "compare_to": "previous_year"
    }));
    let (from, to) = leap.compare_range().unwrap();
    assert_eq!(from.to_rfc3339(), "2023-02-01T00:00:00+00:00");
    assert_eq!(to.to_rfc3339(), "2023-03-01T00:00:00+00:00");
    assert_eq!(leap.bucket_count(), 29);
}

fn by_device() -> TimeseriesResponse {
    let plan = planned(json!({
        "dimensions": ["device"],
        "measures": [{"agg": "count"}, {"agg": "sum", "column": "amount"}]
    }));
    let rows = batch(
        &[1, 1, 2],
        Some(vec![Some("b"), None, Some("a")]),
        vec![
            Arc::new(Int64Array::from(vec![1, 2, 3])) as ArrayRef,
            floats(vec![Some(10.0), Some(20.0), Some(30.0)]),
        ],
    );
    assemble(&plan, &[rows], None).unwrap()
}

#[test]
fn series_are_sorted_by_dimension_then_measure() {
    let answer = by_device();
    let order: Vec<(Value, &str)> = answer
        .series
        .iter()
        .map(|s| (s.dimensions["device"].clone(), s.measure.as_str()))
        .collect();
    assert_eq!(
        order,
        [
            (Value::Null, "count"),
            (Value::Null, "sum_amount"),
            (json!("a"), "count"),
            (json!("a"), "sum_amount"),
            (json!("b"), "count"),
            (json!("b"), "sum_amount"),
        ]
    );
    assert_eq!(
        answer.series[3].values,
        [None, Some(30.0), None, None, None]
    );
}

#[test]
fn answers_serialize_in_either_time_format() {
    let answer = by_device();
    let json = serde_json::to_value(&answer).unwrap();
    assert_eq!(json["granularity"], "day");
    assert_eq!(json["range"]["from"], "2026-01-01T00:00:00+00:00");
    assert_eq!(json["series"][0]["time"][1], "2026-01-02T00:00:00+00:00");
    assert_eq!(json["series"][0]["dimensions"], json!({"device": null}));
    assert_eq!(json["series"][0]["values"][0], 2.0);
    assert!(json.get("comparison").is_none());
    assert!(json.get("dataset_version").is_none());

    let plan = planned(json!({"time_format": "epoch_ms"}));
    let answer = assemble(&plan, &[], None).unwrap();
    let json = serde_json::to_value(&answer).unwrap();
    assert_eq!(json["series"][0]["time"][0], 1_767_225_600_000_i64);
    assert_eq!(json["range"]["from"], 1_767_225_600_000_i64);
    assert_eq!(
        json["series"][0]["values"],
        json!([null, null, null, null, null])
    );
}

#[test]
fn the_long_format_has_a_row_per_series_and_time() {
    let batch = by_device().to_record_batch().unwrap();
    let schema = batch.schema();
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(names, ["time", "device", "count", "sum_amount"]);
    assert_eq!(batch.num_rows(), 15);
    assert_eq!(
        schema.field(0).data_type(),
        &DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
    );
    let devices = batch.column(1).as_string::<i32>();
    assert!(devices.is_null(0));
    assert_eq!(devices.value(5), "a");
    let sums = batch.column(3).as_primitive::<Float64Type>();
    assert_eq!(sums.value(6), 30.0);
}
