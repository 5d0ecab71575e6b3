use std::sync::Arc;

use arrow::datatypes::{Field, TimeUnit};
use chrono::TimeDelta;

use super::*;

fn schema() -> Schema {
    Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("status", DataType::Utf8, true),
        Field::new("amount", DataType::Float64, true),
        Field::new(
            "updated_at",
            DataType::Timestamp(TimeUnit::Microsecond, Some(Arc::from("UTC"))),
            true,
        ),
        Field::new("day", DataType::Date32, true),
        Field::new("we\"ird", DataType::Utf8, true),
    ])
}

fn def(value: Value) -> CheckDefinition {
    serde_json::from_value(value).unwrap()
}

fn problem(result: Result<impl fmt::Debug>) -> AnalyticsProblem {
    match result {
        Err(Error::Refused { problem, .. }) => problem,
        other => panic!("expected an analytics error, got {other:?}"),
    }
}

fn compiled(value: Value) -> CheckQueries {
    compile(
        &def(value),
        "\"orders\"",
        Some("\"customers\""),
        &schema(),
        5,
    )
    .unwrap()
}

#[test]
fn timestamp_bounds_outside_nanosecond_range_are_refused() {
    let column = "at";
    let timestamp = DataType::Timestamp(arrow::datatypes::TimeUnit::Microsecond, None);
    assert!(literal(column, &timestamp, &json!("9999-12-31")).is_err());
    assert!(literal(column, &timestamp, &json!("2261-12-31")).is_ok());
    assert!(literal(column, &DataType::Date32, &json!("9999-12-31")).is_ok());
}

#[test]
fn every_check_type_reads_and_round_trips() {
    let cases = [
        json!({"name": "a", "type": "not_null", "column": "id"}),
        json!({"name": "b", "type": "unique", "columns": ["id", "day"]}),
        json!({"name": "c", "type": "accepted_values", "column": "status", "values": ["open", 1, true]}),
        json!({"name": "d", "type": "range", "column": "amount", "min": 0, "max": 100.5, "exclusive": true, "mostly": 0.99}),
        json!({"name": "e", "type": "regex", "column": "status", "pattern": "^[a-z]+$"}),
        json!({"name": "f", "type": "row_count", "min": 1}),
        json!({"name": "g", "type": "freshness", "column": "updated_at", "max_age": "24h", "warn_after": "12h"}),
        json!({"name": "h", "type": "schema", "columns": [{"name": "id", "type": "integer", "nullable": false}], "allow_extra": true}),
        json!({"name": "i", "type": "referential", "column": "id", "dataset": "customers", "ref_column": "customer_id"}),
        json!({"name": "j", "type": "distribution_drift", "column": "amount", "reference_version": 3, "method": "ks"}),
        json!({"name": "k", "type": "custom_sql", "sql": "SELECT * FROM orders WHERE amount < 0",
               "description": "no refunds", "fail_if": "> 10", "warn_if": ">= 1",
               "severity": "warning", "run_after_write": true}),
    ];
    for case in cases {
        let check = def(case.clone());
        let again: CheckDefinition =
            serde_json::from_value(serde_json::to_value(&check).unwrap()).unwrap();
        assert_eq!(again, check, "{case}");
    }
    let custom = def(
        json!({"name": "k", "type": "custom_sql", "sql": "SELECT 1", "fail_if": "> 10", "severity": "warning"}),
    );
    assert_eq!(custom.severity, Severity::Warning);
    assert_eq!(custom.fail_if.unwrap().comparison, Comparison::Greater);
    let drift = def(
        json!({"name": "j", "type": "distribution_drift", "column": "amount", "reference_version": 3}),
    );
    assert!(matches!(
        drift.spec,
        CheckSpec::DistributionDrift {
            method: DriftMethod::Psi,
            bins: None,
            ..
        }
    ));
}

#[test]
fn unique_takes_a_single_column_too() {
    let check = def(json!({"name": "u", "type": "unique", "column": "id"}));
    assert_eq!(
        check.spec,
        CheckSpec::Unique {
            columns: vec!["id".to_owned()]
        }
    );
    assert_eq!(
        serde_json::to_value(&check).unwrap()["columns"],
        json!(["id"])
    );
}

#[test]
fn unknown_types_and_fields_are_refused() {
    let error = |value: Value| {
        serde_json::from_value::<CheckDefinition>(value)
            .unwrap_err()
            .to_string()
    };
    let unknown_type = error(json!({"name": "a", "type": "not_nul", "column": "id"}));
    assert!(
        unknown_type.contains("unknown variant `not_nul`"),
        "{unknown_type}"
    );
    let unknown_field = error(json!({"name": "a", "type": "not_null", "colum": "id"}));
    assert!(
        unknown_field.contains("unknown field `colum`"),
        "{unknown_field}"
    );
    let extra_field =
        error(json!({"name": "a", "type": "not_null", "column": "id", "sevrity": "warning"}));
    assert!(
        extra_field.contains("unknown field `sevrity`"),
        "{extra_field}"
    );
    let nested = error(
        json!({"name": "a", "type": "schema", "columns": [{"name": "id", "nullabel": true}]}),
    );
    assert!(nested.contains("unknown field `nullabel`"), "{nested}");
    let untyped = error(json!({"name": "a", "column": "id"}));
    assert!(untyped.contains("type"), "{untyped}");
    let bad_condition =
        error(json!({"name": "a", "type": "not_null", "column": "id", "fail_if": "more than 3"}));
    assert!(
        bad_condition.contains("invalid condition"),
        "{bad_condition}"
    );
}

#[test]
fn conditions_round_trip_in_canonical_form() {
    for (written, canonical) in [
        ("> 10", "> 10"),
        (">=0.5", ">= 0.5"),
        ("!= 0", "!= 0"),
        ("<> 0", "!= 0"),
        ("< 3", "< 3"),
        ("= 0", "= 0"),
        ("== 2", "= 2"),
        ("<= 1e3", "<= 1000"),
        ("  > -2.5 ", "> -2.5"),
    ] {
        let condition: Condition = serde_json::from_value(json!(written)).unwrap();
        assert_eq!(serde_json::to_value(condition).unwrap(), json!(canonical));
        assert_eq!(canonical.parse::<Condition>().unwrap(), condition);
    }
    for bad in ["", "10", "> ", "> ten", "> inf", "~ 3", ">> 3"] {
        assert!(bad.parse::<Condition>().is_err(), "{bad:?} parsed");
    }
    let at_least_half: Condition = ">= 0.5".parse().unwrap();
    assert!(at_least_half.holds(0.5));
    assert!(!at_least_half.holds(0.49));
    assert!("!= 0".parse::<Condition>().unwrap().holds(1.0));
    assert!("= 0".parse::<Condition>().unwrap().holds(0.0));
}

#[test]
fn durations_parse() {
    assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
    assert_eq!(parse_duration("30m").unwrap(), Duration::from_secs(1800));
    assert_eq!(parse_duration("24h").unwrap(), Duration::from_secs(86_400));
    assert_eq!(parse_duration("7d").unwrap(), Duration::from_secs(604_800));
    assert_eq!(
        parse_duration("2w").unwrap(),
        Duration::from_secs(1_209_600)
    );
    assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
    // The grammar config durations use too: fractions and spaces read the same.
    assert_eq!(parse_duration("1.5h").unwrap(), Duration::from_secs(5400));
    assert_eq!(parse_duration("1 h").unwrap(), Duration::from_secs(3600));
    assert_eq!(parse_duration("1 hour").unwrap(), Duration::from_secs(3600));
    for bad in ["", "h", "10", "10ms", "-1h", "99999999999999999999w"] {
        assert!(parse_duration(bad).is_err(), "{bad:?} parsed");
    }
}

#[test]
fn validate_refuses_bad_definitions() {
    let schema = schema();
    let unknown = def(json!({"name": "a", "type": "not_null", "column": "nope"}));
    assert_eq!(
        problem(validate(&unknown, &schema)),
        AnalyticsProblem::UnknownColumn
    );
    let regex_on_int = def(json!({"name": "a", "type": "regex", "column": "id", "pattern": "^1"}));
    assert_eq!(
        problem(validate(&regex_on_int, &schema)),
        AnalyticsProblem::InvalidCheck
    );
    let bad_pattern =
        def(json!({"name": "a", "type": "regex", "column": "status", "pattern": "("}));
    assert_eq!(
        problem(validate(&bad_pattern, &schema)),
        AnalyticsProblem::InvalidCheck
    );
    for bad in [
        json!({"name": "a", "type": "not_null", "column": "id", "mostly": 1.5}),
        json!({"name": "a", "type": "not_null", "column": "id", "mostly": -0.1}),
        json!({"name": "a", "type": "row_count", "min": 1, "mostly": 0.5}),
        json!({"name": "Bad", "type": "not_null", "column": "id"}),
        json!({"name": "a", "type": "row_count", "min": 5, "max": 1}),
        json!({"name": "a", "type": "row_count"}),
        json!({"name": "a", "type": "range", "column": "amount"}),
        json!({"name": "a", "type": "range", "column": "amount", "min": 5, "max": 1}),
        json!({"name": "a", "type": "range", "column": "amount", "min": 1, "max": 1, "exclusive": true}),
        json!({"name": "a", "type": "range", "column": "amount", "min": "1"}),
        json!({"name": "a", "type": "range", "column": "status", "min": "a"}),
        json!({"name": "a", "type": "range", "column": "day", "min": "yesterday"}),
        json!({"name": "a", "type": "accepted_values", "column": "status", "values": [1]}),
        json!({"name": "a", "type": "accepted_values", "column": "status", "values": []}),
        json!({"name": "a", "type": "freshness", "column": "amount", "max_age": "1h"}),
        json!({"name": "a", "type": "freshness", "column": "updated_at", "max_age": "1 fortnight"}),
        json!({"name": "a", "type": "freshness", "column": "updated_at", "max_age": "1h", "warn_after": "2h"}),
        json!({"name": "a", "type": "distribution_drift", "column": "status", "reference_version": 1}),
        json!({"name": "a", "type": "distribution_drift", "column": "amount", "reference_version": 1, "bins": 1}),
        json!({"name": "a", "type": "distribution_drift", "column": "amount", "reference_version": 1, "method": "ks", "bins": 10}),
        json!({"name": "a", "type": "unique", "columns": []}),
        json!({"name": "a", "type": "unique", "columns": ["id", "id"]}),
        json!({"name": "a", "type": "referential", "column": "id", "dataset": "Customers"}),
        json!({"name": "a", "type": "custom_sql", "sql": " ; "}),
    ] {
        let check = def(bad.clone());
        assert_eq!(
            problem(validate(&check, &schema)),
            AnalyticsProblem::InvalidCheck,
            "{bad}"
        );
    }
    let ok = def(
        json!({"name": "a", "type": "range", "column": "day", "min": "2024-01-01", "max": "2024-12-31T23:59:59+02:00"}),
    );
    validate(&ok, &schema).unwrap();
}

#[test]
fn messages_name_the_check() {
    let check = def(json!({"name": "amount_ok", "type": "not_null", "column": "nope"}));
    let message = validate(&check, &schema()).unwrap_err().to_string();
    assert!(
        message.contains("amount_ok") && message.contains("nope"),
        "{message}"
    );
}

#[test]
fn row_level_sql_quotes_identifiers_and_literals() {
    let not_null = compiled(json!({"name": "a", "type": "not_null", "column": "we\"ird"}));
    let counts = not_null.counts_sql.unwrap();
    assert!(counts.contains("t.\"we\"\"ird\" IS NULL"), "{counts}");
    assert!(counts.contains("AS element_count") && counts.contains("AS unexpected_count"));
    assert!(counts.contains("FROM \"orders\" AS t"), "{counts}");
    assert!(not_null.sample_sql.unwrap().ends_with("LIMIT 5"));

    let accepted = compiled(
        json!({"name": "a", "type": "accepted_values", "column": "status", "values": ["O'Brien", "open"]}),
    );
    let counts = accepted.counts_sql.unwrap();
    assert!(
        counts.contains("t.\"status\" NOT IN ('O''Brien', 'open')"),
        "{counts}"
    );
    assert!(
        counts.contains("WHERE t.\"status\" IS NOT NULL"),
        "{counts}"
    );

    let range =
        compiled(json!({"name": "a", "type": "range", "column": "amount", "min": -5, "max": 2.5}));
    let counts = range.counts_sql.unwrap();
    assert!(
        counts.contains("NOT (t.\"amount\" >= (-5) AND t.\"amount\" <= 2.5)"),
        "{counts}"
    );
    let exclusive = compiled(
        json!({"name": "a", "type": "range", "column": "amount", "max": 10, "exclusive": true}),
    );
    assert!(
        exclusive
            .counts_sql
            .unwrap()
            .contains("NOT (t.\"amount\" < 10)")
    );
    let times = compiled(
        json!({"name": "a", "type": "range", "column": "updated_at", "min": "2024-01-01", "max": "2024-06-30T12:00:00+02:00"}),
    );
    let counts = times.counts_sql.unwrap();
    assert!(
        counts.contains("TIMESTAMP '2024-01-01T00:00:00Z'"),
        "{counts}"
    );
    assert!(
        counts.contains("TIMESTAMP '2024-06-30T10:00:00Z'"),
        "{counts}"
    );
    let days =
        compiled(json!({"name": "a", "type": "range", "column": "day", "min": "2024-01-01"}));
    assert!(
        days.counts_sql
            .unwrap()
            .contains("t.\"day\" >= DATE '2024-01-01'")
    );

    let regex =
        compiled(json!({"name": "a", "type": "regex", "column": "status", "pattern": "^it's$"}));
    let sample = regex.sample_sql.unwrap();
    assert!(
        sample.contains("NOT regexp_like(t.\"status\", '^it''s$')"),
        "{sample}"
    );

    let unique = compiled(json!({"name": "a", "type": "unique", "columns": ["id", "day"]}));
    let counts = unique.counts_sql.unwrap();
    assert!(counts.contains("GROUP BY t.\"id\", t.\"day\""), "{counts}");
    assert!(
        counts.contains("t.\"id\" IS NOT NULL AND t.\"day\" IS NOT NULL"),
        "{counts}"
    );
    let sample = unique.sample_sql.unwrap();
    assert!(
        sample.contains("HAVING count(*) > 1 ORDER BY duplicate_count DESC LIMIT 5"),
        "{sample}"
    );

    let referential = compiled(
        json!({"name": "a", "type": "referential", "column": "id", "dataset": "customers", "ref_column": "customer_id"}),
    );
    let counts = referential.counts_sql.unwrap();
    assert!(
        counts.contains("SELECT DISTINCT \"customer_id\" AS k FROM \"customers\""),
        "{counts}"
    );
    let sample = referential.sample_sql.unwrap();
    assert!(
        sample.contains(
            "NOT EXISTS (SELECT 1 FROM \"customers\" AS r WHERE r.\"customer_id\" = t.\"id\")"
        ),
        "{sample}"
    );
    let no_reference =
        def(json!({"name": "a", "type": "referential", "column": "id", "dataset": "customers"}));
    assert!(compile(&no_reference, "\"orders\"", None, &schema(), 5).is_err());
}

#[test]
fn other_checks_compile() {
    let custom = compiled(
        json!({"name": "a", "type": "custom_sql", "sql": "SELECT * FROM orders WHERE amount < 0 -- refunds\n;"}),
    );
    assert_eq!(
        custom.counts_sql.unwrap(),
        "SELECT CAST(count(*) AS BIGINT) AS element_count, CAST(count(*) AS BIGINT) AS unexpected_count \
         FROM (\nSELECT * FROM orders WHERE amount < 0 -- refunds\n) AS q"
    );
    assert!(custom.sample_sql.unwrap().ends_with(") AS q LIMIT 5"));

    let rows = compiled(json!({"name": "a", "type": "row_count", "max": 10}));
    assert_eq!(
        rows.counts_sql.unwrap(),
        "SELECT CAST(count(*) AS BIGINT) AS row_count FROM \"orders\""
    );
    assert!(rows.sample_sql.is_none());

    let fresh = compiled(
        json!({"name": "a", "type": "freshness", "column": "updated_at", "max_age": "1h"}),
    );
    assert_eq!(
        fresh.counts_sql.unwrap(),
        "SELECT max(t.\"updated_at\") AS max_value FROM \"orders\" AS t"
    );

    let shape = compiled(json!({"name": "a", "type": "schema", "columns": [{"name": "id"}]}));
    assert_eq!(shape, CheckQueries::default());
    let drift = compiled(
        json!({"name": "a", "type": "distribution_drift", "column": "amount", "reference_version": 0}),
    );
    assert_eq!(drift, CheckQueries::default());

    let unsampled = compile(
        &def(json!({"name": "a", "type": "not_null", "column": "id"})),
        "\"orders\"",
        None,
        &schema(),
        0,
    )
    .unwrap();
    assert!(unsampled.counts_sql.is_some() && unsampled.sample_sql.is_none());
}

#[test]
fn mostly_passes_at_exactly_the_fraction() {
    let check = def(json!({"name": "a", "type": "not_null", "column": "id", "mostly": 0.9}));
    assert_eq!(
        evaluate(&check, &measure_counts(&check, 10, 1)),
        Outcome::Pass
    );
    assert_eq!(
        evaluate(&check, &measure_counts(&check, 10, 2)),
        Outcome::Fail
    );
    assert_eq!(
        evaluate(&check, &measure_counts(&check, 0, 0)),
        Outcome::Pass
    );
    let strict = def(json!({"name": "a", "type": "not_null", "column": "id"}));
    assert_eq!(
        evaluate(&strict, &measure_counts(&strict, 10, 0)),
        Outcome::Pass
    );
    assert_eq!(
        evaluate(&strict, &measure_counts(&strict, 10, 1)),
        Outcome::Fail
    );
    let replaced = def(
        json!({"name": "a", "type": "not_null", "column": "id", "mostly": 0.99, "fail_if": "> 5"}),
    );
    assert_eq!(
        evaluate(&replaced, &measure_counts(&replaced, 10, 5)),
        Outcome::Pass
    );
    assert_eq!(
        evaluate(&replaced, &measure_counts(&replaced, 10, 6)),
        Outcome::Fail
    );
}

#[test]
fn warn_if_and_severity() {
    let check = def(
        json!({"name": "a", "type": "not_null", "column": "id", "mostly": 0.8, "warn_if": "> 0"}),
    );
    assert_eq!(
        evaluate(&check, &measure_counts(&check, 10, 0)),
        Outcome::Pass
    );
    assert_eq!(
        evaluate(&check, &measure_counts(&check, 10, 1)),
        Outcome::Warn
    );
    assert_eq!(
        evaluate(&check, &measure_counts(&check, 10, 3)),
        Outcome::Fail
    );
    let mild = def(json!({"name": "a", "type": "not_null", "column": "id", "severity": "warning"}));
    assert_eq!(
        evaluate(&mild, &measure_counts(&mild, 10, 1)),
        Outcome::Warn
    );
    assert_eq!(
        evaluate(&mild, &measure_counts(&mild, 10, 0)),
        Outcome::Pass
    );
    let failed = measure_error("table not found");
    assert_eq!(failed.details["error"], json!("table not found"));
    assert_eq!(evaluate(&mild, &failed), Outcome::Error);
    assert_eq!(
        evaluate(&check, &measure_schema(&check, &schema())),
        Outcome::Error
    );
}

#[test]
fn row_count_bounds() {
    let check = def(json!({"name": "a", "type": "row_count", "min": 1, "max": 10}));
    assert_eq!(evaluate(&check, &measure_row_count(0)), Outcome::Fail);
    assert_eq!(evaluate(&check, &measure_row_count(1)), Outcome::Pass);
    assert_eq!(evaluate(&check, &measure_row_count(10)), Outcome::Pass);
    assert_eq!(evaluate(&check, &measure_row_count(11)), Outcome::Fail);
}

#[test]
fn freshness_ages() {
    let check = def(
        json!({"name": "a", "type": "freshness", "column": "updated_at", "max_age": "1h", "warn_after": "30m"}),
    );
    let now = DateTime::parse_from_rfc3339("2024-05-01T12:00:00Z")
        .unwrap()
        .with_timezone(&Utc);
    let at = |minutes: i64| measure_freshness(Some(now - TimeDelta::minutes(minutes)), now);
    assert_eq!(at(10).observed, Some(600.0));
    assert_eq!(evaluate(&check, &at(10)), Outcome::Pass);
    assert_eq!(evaluate(&check, &at(45)), Outcome::Warn);
    assert_eq!(evaluate(&check, &at(120)), Outcome::Fail);
    let empty = measure_freshness(None, now);
    assert_eq!(empty.observed, None);
    assert_eq!(evaluate(&check, &empty), Outcome::Fail);
}

#[test]
fn schema_mismatches_are_listed() {
    let columns = json!([
        {"name": "id", "type": "integer", "nullable": false},
        {"name": "status", "type": "STRING"},
        {"name": "amount", "type": "Float64", "nullable": false},
        {"name": "updated_at", "type": "timestamp"},
        {"name": "day", "type": "int"},
        {"name": "missing"},
    ]);
    let check = def(json!({"name": "a", "type": "schema", "columns": columns}));
    let m = measure_schema(&check, &schema());
    // amount's nullability, day's type, missing, and the extra `we"ird`.
    assert_eq!(m.observed, Some(4.0), "{}", m.details);
    let problems: Vec<&str> = m.details["mismatches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|mismatch| mismatch["problem"].as_str().unwrap())
        .collect();
    assert_eq!(problems, ["nullability", "type", "missing", "extra"]);
    assert_eq!(evaluate(&check, &m), Outcome::Fail);
    let lenient =
        def(json!({"name": "a", "type": "schema", "columns": columns, "allow_extra": true}));
    assert_eq!(measure_schema(&lenient, &schema()).observed, Some(3.0));
    let exact = def(json!({"name": "a", "type": "schema", "columns": [
        {"name": "id", "type": "Int64", "nullable": false},
        {"name": "status"}, {"name": "amount", "type": "double"},
        {"name": "updated_at"}, {"name": "day", "type": "date"}, {"name": "we\"ird", "type": "text"},
    ]}));
    let m = measure_schema(&exact, &schema());
    assert_eq!(m.observed, Some(0.0), "{}", m.details);
    assert_eq!(evaluate(&exact, &m), Outcome::Pass);
}

/// Deterministic, roughly normal values: sums of four uniforms from an LCG.
fn normalish(n: usize, shift: f64, seed: u64) -> Vec<f64> {
    let mut state = seed;
    let mut values = Vec::with_capacity(n);
    for _ in 0..n {
        let mut sum = shift;
        for _ in 0..4 {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            sum += (state >> 11) as f64 / (1u64 << 53) as f64;
        }
        values.push(sum);
    }
    values
}

fn sorted(mut values: Vec<f64>) -> Vec<f64> {
    values.sort_by(f64::total_cmp);
    values
}

#[test]
fn psi_of_same_and_shifted_distributions() {
    let reference = sorted(normalish(2000, 0.0, 1));
    let (same, bins) = psi(&reference, &reference, 10);
    assert!(same.abs() < 1e-12, "{same}");
    assert_eq!(bins.len(), 10);
    for (expected, actual) in &bins {
        assert!((expected - 0.1).abs() < 1e-9 && (actual - 0.1).abs() < 1e-9);
    }
    let resampled = sorted(normalish(2000, 0.0, 2));
    assert!(psi(&reference, &resampled, 10).0 < PSI_WARN);
    let shifted = sorted(normalish(2000, 1.0, 3));
    assert!(psi(&reference, &shifted, 10).0 > PSI_FAIL);

    let check = def(
        json!({"name": "a", "type": "distribution_drift", "column": "amount", "reference_version": 1}),
    );
    let drifted = measure_drift(&check, &normalish(2000, 0.0, 1), &normalish(2000, 1.0, 3));
    assert_eq!(drifted.details["bins"].as_array().unwrap().len(), 10);
    assert_eq!(drifted.details["bins"][0]["lower"], Value::Null);
    assert_eq!(evaluate(&check, &drifted), Outcome::Fail);
    let steady = measure_drift(&check, &normalish(2000, 0.0, 1), &normalish(2000, 0.0, 2));
    assert_eq!(evaluate(&check, &steady), Outcome::Pass);
    let nothing = measure_drift(&check, &[], &[1.0]);
    assert_eq!(nothing.observed, None);
    assert_eq!(evaluate(&check, &nothing), Outcome::Fail);
}

#[test]
fn ks_statistic_and_p_value() {
    let sample = sorted(normalish(500, 0.0, 1));
    let (d, p) = ks_two_sample(&sample, &sample);
    assert_eq!(d, 0.0);
    assert!((p - 1.0).abs() < 1e-9, "{p}");

    // By hand: every a is below every b, so D = 1; nₑ = 1.5 and
    // λ = √1.5 + 0.12 + 0.11/√1.5 ≈ 1.4345, Q(λ) ≈ 2e^(−2λ²) − 2e^(−8λ²).
    let (d, p) = ks_two_sample(&[1.0, 2.0, 3.0], &[4.0, 5.0, 6.0]);
    assert_eq!(d, 1.0);
    let root = 1.5f64.sqrt();
    let lambda = root + 0.12 + 0.11 / root;
    let by_hand = 2.0 * (-2.0 * lambda * lambda).exp() - 2.0 * (-8.0 * lambda * lambda).exp();
    assert!((p - by_hand).abs() < 1e-9, "{p} vs {by_hand}");
    assert!((p - 0.032_621_65).abs() < 1e-6, "{p}");

    let (d, _) = ks_two_sample(&[1.0, 1.0, 2.0], &[1.0, 2.0, 2.0]);
    assert!((d - 1.0 / 3.0).abs() < 1e-12, "{d}");

    let other = sorted(normalish(500, 0.5, 2));
    let (_, p) = ks_two_sample(&sample, &other);
    assert!(p < 0.05, "{p}");

    let check = def(
        json!({"name": "a", "type": "distribution_drift", "column": "amount", "reference_version": 1, "method": "ks"}),
    );
    let moved = measure_drift(&check, &normalish(500, 0.0, 1), &normalish(500, 0.5, 2));
    assert!(moved.details["p_value"].as_f64().unwrap() < 0.05);
    assert_eq!(evaluate(&check, &moved), Outcome::Fail);
    let same = measure_drift(&check, &normalish(500, 0.0, 1), &normalish(500, 0.0, 1));
    assert_eq!(evaluate(&check, &same), Outcome::Pass);
}

#[test]
fn unexpected_percent_of_counts() {
    let check = def(json!({"name": "a", "type": "not_null", "column": "id"}));
    let m = measure_counts(&check, 200, 3);
    assert_eq!(unexpected_percent(&m), Some(1.5));
    assert_eq!(m.details["passing_fraction"], json!(0.985));
    assert_eq!(unexpected_percent(&measure_counts(&check, 0, 0)), Some(0.0));
    assert_eq!(unexpected_percent(&measure_row_count(5)), None);
    let custom = def(json!({"name": "a", "type": "custom_sql", "sql": "SELECT 1"}));
    assert_eq!(measure_counts(&custom, 2, 2).details, json!({}));
}
