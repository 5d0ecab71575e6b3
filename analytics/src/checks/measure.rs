//! Reading a check's answer: measurements, distribution drift (PSI, Kolmogorov–Smirnov), and the outcome under the check's thresholds.

#[allow(unused_imports)]
use super::*;

/// The measurement of a row-level or `custom_sql` check from its counts
/// query. Row-level checks also get `details.passing_fraction`, what
/// `mostly` is compared with (a `custom_sql` check counts failing rows only,
/// so it has none).
pub fn measure_counts(
    def: &CheckDefinition,
    element_count: u64,
    unexpected_count: u64,
) -> Measurement {
    let details = if def.spec.is_row_level() {
        json!({ "passing_fraction": passing_fraction(element_count, unexpected_count) })
    } else {
        no_details()
    };
    Measurement {
        element_count: Some(element_count),
        unexpected_count: Some(unexpected_count),
        observed: Some(unexpected_count as f64),
        details,
    }
}

/// 1 − unexpected / elements, and 1 without elements.
pub(super) fn passing_fraction(elements: u64, unexpected: u64) -> f64 {
    if elements == 0 {
        1.0
    } else {
        // Integer counts divided once, so a fraction exactly equal to
        // `mostly` compares equal instead of a rounding error below it.
        elements.saturating_sub(unexpected) as f64 / elements as f64
    }
}

/// A measurement saying the check could not be measured, with `message` in
/// `details.error`; [`evaluate`] gives it `error`.
pub fn measure_error(message: impl Into<String>) -> Measurement {
    let message: String = message.into();
    Measurement {
        element_count: None,
        unexpected_count: None,
        observed: None,
        details: json!({ "error": message }),
    }
}

/// A measuring function was given a check of another type.
pub(super) fn misapplied(def: &CheckDefinition, expected: &str) -> Measurement {
    measure_error(format!(
        "check `{}` is a {} check, not a {expected} check",
        def.name,
        def.spec.kind()
    ))
}

/// The measurement of a `row_count` check.
pub fn measure_row_count(rows: u64) -> Measurement {
    Measurement {
        element_count: Some(rows),
        unexpected_count: None,
        observed: Some(rows as f64),
        details: no_details(),
    }
}

/// The measurement of a `freshness` check: `max_value` is the column's
/// largest value in UTC (a date as its midnight), `None` when the table has
/// no rows (or only nulls in the column).
pub fn measure_freshness(max_value: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Measurement {
    let rfc3339 = |time: DateTime<Utc>| time.to_rfc3339_opts(SecondsFormat::AutoSi, true);
    Measurement {
        element_count: None,
        unexpected_count: None,
        observed: max_value.map(|max| (now - max).num_milliseconds() as f64 / 1000.0),
        details: json!({
            "max_value": max_value.map(rfc3339),
            "now": rfc3339(now),
        }),
    }
}

/// The measurement of a `schema` check against the dataset's schema: one
/// mismatch in `details.mismatches` per missing column, wrong type, wrong
/// nullability and (unless `allow_extra`) extra column.
pub fn measure_schema(def: &CheckDefinition, actual: &Schema) -> Measurement {
    match &def.spec {
        CheckSpec::Schema {
            columns,
            allow_extra,
        } => schema_mismatches(columns, *allow_extra, actual),
        _ => misapplied(def, "schema"),
    }
}

pub(super) fn schema_mismatches(
    expected: &[ExpectedColumn],
    allow_extra: bool,
    actual: &Schema,
) -> Measurement {
    let nullability = |nullable: bool| if nullable { "nullable" } else { "not null" };
    let mut mismatches = Vec::new();
    for column in expected {
        let Some(field) = actual
            .fields()
            .iter()
            .find(|field| *field.name() == column.name)
        else {
            mismatches.push(json!({"column": column.name, "problem": "missing"}));
            continue;
        };
        if let Some(wanted) = &column.data_type
            && !type_matches(wanted, field.data_type())
        {
            mismatches.push(json!({
                "column": column.name,
                "problem": "type",
                "expected": wanted,
                "actual": field.data_type().to_string(),
            }));
        }
        if let Some(nullable) = column.nullable
            && nullable != field.is_nullable()
        {
            mismatches.push(json!({
                "column": column.name,
                "problem": "nullability",
                "expected": nullability(nullable),
                "actual": nullability(field.is_nullable()),
            }));
        }
    }
    if !allow_extra {
        for field in actual.fields() {
            if !expected.iter().any(|column| column.name == *field.name()) {
                mismatches.push(json!({
                    "column": field.name(),
                    "problem": "extra",
                    "actual": field.data_type().to_string(),
                }));
            }
        }
    }
    Measurement {
        element_count: None,
        unexpected_count: None,
        observed: Some(mismatches.len() as f64),
        details: json!({ "mismatches": mismatches }),
    }
}

/// Whether a type as a user wrote it names `actual`: its Arrow spelling
/// (case and spaces ignored) or a friendly alias of its family.
pub(super) fn type_matches(wanted: &str, actual: &DataType) -> bool {
    let normalize = |text: &str| {
        text.chars()
            .filter(|c| !c.is_whitespace())
            .collect::<String>()
            .to_lowercase()
    };
    let wanted = normalize(wanted);
    if wanted == normalize(&actual.to_string()) {
        return true;
    }
    match wanted.as_str() {
        "int" | "integer" | "bigint" | "long" => actual.is_integer(),
        "float" | "double" | "real" => actual.is_floating(),
        "decimal" | "numeric" => actual.is_decimal(),
        "string" | "text" | "varchar" => is_text(actual),
        "bool" | "boolean" => *actual == DataType::Boolean,
        "date" => is_date(actual),
        "timestamp" => matches!(actual, DataType::Timestamp(..)),
        _ => false,
    }
}

/// The measurement of a `distribution_drift` check from the column's values
/// in the reference version and now (unsorted; nulls left out, non-finite
/// values ignored). With no values on either side the observed value is null.
pub fn measure_drift(def: &CheckDefinition, reference: &[f64], current: &[f64]) -> Measurement {
    match &def.spec {
        CheckSpec::DistributionDrift { method, bins, .. } => {
            drift(*method, *bins, reference, current)
        }
        _ => misapplied(def, "distribution_drift"),
    }
}

pub(super) fn drift(
    method: DriftMethod,
    bins: Option<usize>,
    reference: &[f64],
    current: &[f64],
) -> Measurement {
    let sorted = |values: &[f64]| {
        let mut values: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
        values.sort_by(f64::total_cmp);
        values
    };
    let (reference, current) = (sorted(reference), sorted(current));
    let mut details = Map::new();
    details.insert("method".to_owned(), json!(method));
    details.insert("reference_count".to_owned(), json!(reference.len()));
    details.insert("current_count".to_owned(), json!(current.len()));
    let observed = if reference.is_empty() || current.is_empty() {
        details.insert(
            "reason".to_owned(),
            json!("the reference or the current data has no values to compare"),
        );
        None
    } else {
        match method {
            DriftMethod::Psi => {
                let bins = bins.unwrap_or(DEFAULT_PSI_BINS);
                let (value, fractions) = psi(&reference, &current, bins);
                let edges = quantile_edges(&reference, bins);
                let described: Vec<Value> = fractions
                    .iter()
                    .enumerate()
                    .map(|(i, (expected, actual))| {
                        json!({
                            "lower": i.checked_sub(1).map(|j| edges[j]),
                            "upper": edges.get(i),
                            "expected": expected,
                            "actual": actual,
                        })
                    })
                    .collect();
                details.insert("bins".to_owned(), Value::Array(described));
                Some(value)
            }
            DriftMethod::Ks => {
                let (statistic, p_value) = ks_two_sample(&reference, &current);
                details.insert("p_value".to_owned(), json!(p_value));
                Some(statistic)
            }
        }
    };
    Measurement {
        element_count: Some(current.len() as u64),
        unexpected_count: None,
        observed,
        details: Value::Object(details),
    }
}

/// The cut points of `bins` equal-frequency bins of sorted values (fewer
/// when values repeat): bin i holds values from cut i − 1 (inclusive) to cut
/// i (exclusive), the first everything below the first cut, the last
/// everything from the last cut.
pub(super) fn quantile_edges(sorted: &[f64], bins: usize) -> Vec<f64> {
    let n = sorted.len();
    let mut edges: Vec<f64> = (1..bins).map(|i| sorted[i * n / bins]).collect();
    edges.dedup();
    edges
}

pub(super) fn bin_counts(sorted: &[f64], edges: &[f64]) -> Vec<usize> {
    let mut below = Vec::with_capacity(edges.len() + 2);
    below.push(0);
    below.extend(
        edges
            .iter()
            .map(|&edge| sorted.partition_point(|&v| v < edge)),
    );
    below.push(sorted.len());
    below.windows(2).map(|pair| pair[1] - pair[0]).collect()
}

/// The population stability index of `current_sorted` against
/// `reference_sorted` over `bins` equal-frequency bins of the reference
/// (fewer when reference values repeat), and each bin's (expected, actual)
/// fractions, empty bins as 0. An empty fraction counts as 0.0001 in the
/// index. Both inputs must be sorted; with an empty one the index is NaN
/// and there are no bins.
pub fn psi(
    reference_sorted: &[f64],
    current_sorted: &[f64],
    bins: usize,
) -> (f64, Vec<(f64, f64)>) {
    if reference_sorted.is_empty() || current_sorted.is_empty() {
        return (f64::NAN, Vec::new());
    }
    let edges = quantile_edges(reference_sorted, bins.max(1));
    let fractions = |sorted: &[f64]| -> Vec<(usize, f64)> {
        bin_counts(sorted, &edges)
            .into_iter()
            .map(|count| (count, count as f64 / sorted.len() as f64))
            .collect()
    };
    let (expected, actual) = (fractions(reference_sorted), fractions(current_sorted));
    let floor = |(count, fraction): (usize, f64)| if count == 0 { PSI_EPSILON } else { fraction };
    let index: f64 = expected
        .iter()
        .zip(&actual)
        .map(|(&e, &a)| {
            let (e, a) = (floor(e), floor(a));
            (a - e) * (a / e).ln()
        })
        .sum();
    let pairs: Vec<(f64, f64)> = expected
        .iter()
        .zip(&actual)
        .map(|(&(_, e), &(_, a))| (e, a))
        .collect();
    (index, pairs)
}

/// The two-sample Kolmogorov–Smirnov statistic D of two sorted samples and
/// its asymptotic p-value. With an empty sample both are NaN.
pub fn ks_two_sample(a_sorted: &[f64], b_sorted: &[f64]) -> (f64, f64) {
    if a_sorted.is_empty() || b_sorted.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let (n, m) = (a_sorted.len() as f64, b_sorted.len() as f64);
    let (mut i, mut j) = (0, 0);
    let mut statistic: f64 = 0.0;
    while i < a_sorted.len() && j < b_sorted.len() {
        // Step past every copy of the smallest value on both sides at once,
        // so ties move both distribution functions together.
        let x = a_sorted[i].min(b_sorted[j]);
        while i < a_sorted.len() && a_sorted[i] <= x {
            i += 1;
        }
        while j < b_sorted.len() && b_sorted[j] <= x {
            j += 1;
        }
        statistic = statistic.max((i as f64 / n - j as f64 / m).abs());
    }
    let effective = (n * m / (n + m)).sqrt();
    let lambda = (effective + 0.12 + 0.11 / effective) * statistic;
    (statistic, kolmogorov_q(lambda))
}

/// Q_KS(λ) = 2 Σ (−1)^(k−1) e^(−2k²λ²), the probability of a distance at
/// least this large between samples of one distribution.
pub(super) fn kolmogorov_q(lambda: f64) -> f64 {
    let exponent = -2.0 * lambda * lambda;
    let mut sign: f64 = 2.0;
    let mut sum: f64 = 0.0;
    let mut previous: f64 = 0.0;
    for k in 1..=100u32 {
        let k = f64::from(k);
        let term = sign * (exponent * k * k).exp();
        sum += term;
        if term.abs() <= 1e-3 * previous || term.abs() <= 1e-8 * sum {
            return sum.clamp(0.0, 1.0);
        }
        sign = -sign;
        previous = term.abs();
    }
    // The series only fails to converge for λ near 0, where Q tends to 1
    // (as in Numerical Recipes' probks).
    1.0
}

/// 100 · unexpected / elements (0 without elements), when the measurement has both counts.
pub fn unexpected_percent(m: &Measurement) -> Option<f64> {
    let (elements, unexpected) = (m.element_count?, m.unexpected_count?);
    Some(if elements == 0 {
        0.0
    } else {
        100.0 * unexpected as f64 / elements as f64
    })
}

/// The outcome of a check from what it measured (the rules are in the module
/// documentation).
pub fn evaluate(def: &CheckDefinition, m: &Measurement) -> Outcome {
    if m.details.get("error").is_some() {
        return Outcome::Error;
    }
    let outcome = match m.observed {
        None => Outcome::Fail,
        Some(observed) => {
            let fails = match &def.fail_if {
                Some(condition) => Some(condition.holds(observed)),
                None => default_failure(def, m, observed),
            };
            let warns = match &def.warn_if {
                Some(condition) => Some(condition.holds(observed)),
                None => default_warning(&def.spec, observed),
            };
            match (fails, warns) {
                (Some(true), _) => Outcome::Fail,
                (Some(false), Some(true)) => Outcome::Warn,
                (Some(false), Some(false)) => Outcome::Pass,
                (None, _) | (_, None) => return Outcome::Error,
            }
        }
    };
    if outcome == Outcome::Fail && def.severity == Severity::Warning {
        Outcome::Warn
    } else {
        outcome
    }
}

/// Whether the default failure condition holds; `None` when the definition
/// or measurement lacks what it needs.
pub(super) fn default_failure(
    def: &CheckDefinition,
    m: &Measurement,
    observed: f64,
) -> Option<bool> {
    match &def.spec {
        spec if spec.is_row_level() => match def.mostly {
            None => Some(observed > 0.0),
            Some(mostly) => Some(passing_fraction(m.element_count?, m.unexpected_count?) < mostly),
        },
        CheckSpec::RowCount { min, max } => Some(
            min.is_some_and(|min| observed < min as f64)
                || max.is_some_and(|max| observed > max as f64),
        ),
        CheckSpec::Freshness { max_age, .. } => {
            Some(observed > parse_duration(max_age).ok()?.as_secs_f64())
        }
        CheckSpec::DistributionDrift {
            method: DriftMethod::Psi,
            ..
        } => Some(observed > PSI_FAIL),
        CheckSpec::DistributionDrift {
            method: DriftMethod::Ks,
            ..
        } => Some(m.details.get("p_value")?.as_f64()? < KS_ALPHA),
        _ => Some(observed > 0.0),
    }
}

/// Whether the default warning condition holds; `None` when the definition
/// cannot say.
pub(super) fn default_warning(spec: &CheckSpec, observed: f64) -> Option<bool> {
    match spec {
        CheckSpec::Freshness {
            warn_after: Some(warn_after),
            ..
        } => Some(observed > parse_duration(warn_after).ok()?.as_secs_f64()),
        CheckSpec::DistributionDrift {
            method: DriftMethod::Psi,
            ..
        } => Some(observed > PSI_WARN),
        _ => Some(false),
    }
}

/// Reads a duration in the grammar every Basin duration uses (humantime's:
/// `90s`, `30m`, `24h`, `7d`, `2w`, `1.5h`, combined like `1h30m`). A check
/// measures ages in whole seconds, so a fraction of a second is refused.
pub fn parse_duration(text: &str) -> Result<Duration> {
    let invalid = |why: String| {
        invalid_check(format!(
            "invalid duration `{text}`: {why}; write a number and a unit, like `90s`, `30m`, `24h`, `7d` or `1h30m`"
        ))
    };
    let duration = humantime::parse_duration(text.trim()).map_err(|e| invalid(e.to_string()))?;
    if duration.subsec_nanos() != 0 {
        return Err(invalid("a check measures whole seconds".into()));
    }
    Ok(duration)
}
