//! Data-quality checks: what users write (shapes known from dbt, Great
//! Expectations and Soda), the SQL each check compiles to, and how the numbers
//! that SQL returns become an outcome.
//!
//! Everything here is pure: the runner executes [`compile`]'s SQL, turns the
//! rows into a [`Measurement`] with one of the `measure_*` functions and asks
//! [`evaluate`] for the [`Outcome`].
//!
//! | Type | Element count | Unexpected count | Observed | Fails by default when | Warns by default when |
//! |---|---|---|---|---|---|
//! | `not_null` | all rows | rows where the column is null | unexpected count | unexpected count > 0; with `mostly`, passing fraction < `mostly` | never |
//! | `unique` | rows where none of the columns is null | rows whose value (tuple of values) occurs more than once | unexpected count | as `not_null` | never |
//! | `accepted_values` | rows where the column is not null | rows whose value is not one of `values` | unexpected count | as `not_null` | never |
//! | `range` | rows where the column is not null | rows below `min` or above `max` (or equal to a bound when `exclusive`) | unexpected count | as `not_null` | never |
//! | `regex` | rows where the column is not null | rows the pattern matches nowhere in (it searches: anchor it with `^…$` to match whole values) | unexpected count | as `not_null` | never |
//! | `referential` | rows where the column is not null | rows whose value is not in `ref_column` of `dataset` | unexpected count | as `not_null` | never |
//! | `custom_sql` | rows the query returns | rows the query returns | unexpected count | unexpected count > 0 | never |
//! | `row_count` | rows | — | rows | rows < `min` or rows > `max` | never |
//! | `freshness` | — | — | seconds from the column's largest value to now; null when the table has no rows | age > `max_age`, or no rows | age > `warn_after` |
//! | `schema` | — | — | mismatches: missing columns, wrong types, wrong nullability, extra columns unless `allow_extra` | mismatches > 0 | never |
//! | `distribution_drift`, `method: psi` | current values | — | population stability index | PSI > 0.25 | PSI > 0.1 |
//! | `distribution_drift`, `method: ks` | current values | — | Kolmogorov–Smirnov statistic D | p-value < 0.05 | never |
//!
//! - The unexpected percent is 100 · unexpected / elements, and 0 when there
//!   are no elements; the passing fraction is 1 − unexpected / elements, and
//!   1 when there are no elements (row-level checks show it as
//!   `details.passing_fraction`). `mostly` (0 to 1, row-level checks only)
//!   passes a check whose passing fraction is at least `mostly`: exactly
//!   equal passes.
//! - `fail_if` (like `"> 10"`), when given, replaces the default failure
//!   condition, `mostly` included, and is applied to the observed value.
//! - `warn_if`, when given, replaces the default warning condition and is
//!   applied to the observed value. A check warns when its warning condition
//!   holds and its failure condition does not.
//! - A null observed value (a `freshness` check on an empty table, a
//!   `distribution_drift` check with no values on one side) fails.
//! - `severity: warning` reports a failure as `warn`.
//! - A check that could not be measured (its query failed: see
//!   [`measure_error`]), or whose definition cannot be evaluated, gives
//!   `error`; severity does not change that.
//!
//! `psi` cuts the reference values into equal-frequency bins at their
//! quantiles (deciles unless `bins` says otherwise; bins are left-closed and
//! equal cut points merge), counts the fraction of reference (expected) and
//! current (actual) values in each, and sums (actual − expected) ·
//! ln(actual / expected), with an empty bin's fraction taken as 0.0001. The
//! details list every bin with its bounds and both fractions.
//!
//! `ks` observes the largest distance D between the two empirical
//! distribution functions; its p-value (in the details) comes from the
//! asymptotic Kolmogorov distribution Q(λ) = 2 Σ (−1)^(k−1) e^(−2k²λ²) with
//! λ = (√nₑ + 0.12 + 0.11/√nₑ) · D and nₑ = n·m/(n+m).

use std::cmp::Ordering;
use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use arrow::datatypes::{DataType, Schema};
use chrono::{DateTime, NaiveDate, NaiveTime, SecondsFormat, Utc};
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::{Map, Value, json};

use crate::{AnalyticsProblem, Error, Result};
use basin_sql::{MAX_NAME_LEN, quote_ident, quote_literal, validate_name};

/// Bins of a `psi` check when the definition gives none.
pub const DEFAULT_PSI_BINS: usize = 10;
/// Most bins a `psi` check may ask for.
const MAX_PSI_BINS: usize = 1000;
/// The fraction an empty bin counts as, so the logarithm stays finite.
const PSI_EPSILON: f64 = 1e-4;
const PSI_WARN: f64 = 0.1;
const PSI_FAIL: f64 = 0.25;
const KS_ALPHA: f64 = 0.05;

/// A data-quality check on one dataset, as users write it.
///
/// Unknown keys are refused: the check's own fields are checked by
/// [`CheckSpec`], which receives every key this struct does not know.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(example = json!({"name": "amount_not_null", "type": "not_null", "column": "amount"}))]
pub struct CheckDefinition {
    /// Unique per dataset; lowercase letters, digits and `_`, starting with a
    /// letter or `_`, at most 63 characters.
    #[schema(pattern = "^[a-z_][a-z0-9_]{0,62}$")]
    pub name: String,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// What is checked, tagged by `type`.
    #[serde(flatten)]
    pub spec: CheckSpec,
    /// Row-level checks only: pass when at least this fraction (0 to 1) of
    /// the rows considered pass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0.0, maximum = 1.0)]
    pub mostly: Option<f64>,
    /// Warn when this holds for the observed value (replaces the default warning).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warn_if: Option<Condition>,
    /// Fail when this holds for the observed value (replaces the default failure and `mostly`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fail_if: Option<Condition>,
    /// How a failure is reported.
    #[serde(default)]
    pub severity: Severity,
    /// Whether the check runs after every write to the dataset.
    #[serde(default)]
    pub run_after_write: bool,
}

/// What a check looks at. Each variant's fields are the keys next to `type`.
// deny_unknown_fields lives here, not on CheckDefinition: a flattened
// internally tagged enum only borrows the buffered keys, so the outer struct
// would see every key of the spec as unknown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum CheckSpec {
    /// The column has no nulls.
    NotNull {
        /// The column.
        column: String,
    },
    /// No value (or tuple of values) occurs twice; rows with a null in any
    /// of the columns are not considered.
    Unique {
        /// The columns whose combined value must be unique; a single
        /// `column` is accepted too.
        #[serde(alias = "column", deserialize_with = "column_list")]
        columns: Vec<String>,
    },
    /// Every non-null value is one of `values`.
    AcceptedValues {
        /// The column.
        column: String,
        /// The values allowed: strings for text columns, numbers for numeric
        /// ones, booleans, dates or RFC 3339 timestamps for temporal ones.
        values: Vec<Value>,
    },
    /// Every non-null value lies between the bounds.
    Range {
        /// The column (numeric, date or timestamp).
        column: String,
        /// The lower bound: a number, or a date or RFC 3339 timestamp.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        min: Option<Value>,
        /// The upper bound: a number, or a date or RFC 3339 timestamp.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max: Option<Value>,
        /// Whether values equal to a bound are outside.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        exclusive: bool,
    },
    /// Every non-null value contains a match of the pattern.
    Regex {
        /// The column (text).
        column: String,
        /// A regular expression (Rust `regex` syntax, as DataFusion's `regexp_like`).
        pattern: String,
    },
    /// The number of rows lies between the bounds.
    RowCount {
        /// Fewest rows.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        min: Option<u64>,
        /// Most rows.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max: Option<u64>,
    },
    /// The column's largest value is recent.
    Freshness {
        /// The column (timestamp or date).
        column: String,
        /// Oldest acceptable age of the largest value, like `24h`.
        max_age: String,
        /// Age from which the check warns, like `12h`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        warn_after: Option<String>,
    },
    /// The dataset has the expected columns.
    Schema {
        /// The columns expected.
        columns: Vec<ExpectedColumn>,
        /// Whether columns not listed are accepted.
        #[serde(default)]
        allow_extra: bool,
    },
    /// Every non-null value exists in a column of another dataset.
    Referential {
        /// The column.
        column: String,
        /// The dataset referred to.
        dataset: String,
        /// Its column (default: the same name as `column`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ref_column: Option<String>,
    },
    /// The column's distribution has not moved away from that of an earlier version.
    DistributionDrift {
        /// The column (numeric).
        column: String,
        /// The dataset version whose values are the reference.
        reference_version: i64,
        /// How distributions are compared.
        #[serde(default)]
        method: DriftMethod,
        /// Bins of the `psi` method (default 10).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        bins: Option<usize>,
    },
    /// A `SELECT` returning the rows that should not exist.
    CustomSql {
        /// The query.
        sql: String,
    },
}

impl CheckSpec {
    /// The `type` as written in JSON.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::NotNull { .. } => "not_null",
            Self::Unique { .. } => "unique",
            Self::AcceptedValues { .. } => "accepted_values",
            Self::Range { .. } => "range",
            Self::Regex { .. } => "regex",
            Self::RowCount { .. } => "row_count",
            Self::Freshness { .. } => "freshness",
            Self::Schema { .. } => "schema",
            Self::Referential { .. } => "referential",
            Self::DistributionDrift { .. } => "distribution_drift",
            Self::CustomSql { .. } => "custom_sql",
        }
    }

    /// Whether the check counts passing and failing rows (and so takes `mostly`).
    pub fn is_row_level(&self) -> bool {
        Self::ROW_LEVEL_KINDS.contains(&self.kind())
    }

    /// The [`kind`](Self::kind)s of the row-level checks, the ones that take
    /// `mostly`.
    pub const ROW_LEVEL_KINDS: &'static [&'static str] = &[
        "not_null",
        "unique",
        "accepted_values",
        "range",
        "regex",
        "referential",
    ];
}

/// A column a `schema` check expects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExpectedColumn {
    /// The column's name.
    pub name: String,
    /// Its type: an Arrow type as Basin shows it (`Int64`, `Utf8`, …,
    /// case-insensitive) or `integer`, `float`, `decimal`, `string`,
    /// `boolean`, `date`, `timestamp`; any type when absent.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub data_type: Option<String>,
    /// Whether it may hold nulls; either when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nullable: Option<bool>,
}

/// How a `distribution_drift` check compares distributions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DriftMethod {
    /// Population stability index over the reference's quantile bins.
    #[default]
    Psi,
    /// Two-sample Kolmogorov–Smirnov test.
    Ks,
}

/// How a failing check is reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = CheckSeverity)]
pub enum Severity {
    /// As a failure.
    #[default]
    Error,
    /// As a warning.
    Warning,
}

/// The result of running a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = CheckOutcome)]
pub enum Outcome {
    /// The data is as expected.
    Pass,
    /// The warning condition holds, or a failure of a `warning` severity check.
    Warn,
    /// The failure condition holds.
    Fail,
    /// The check could not be run.
    Error,
}

/// A comparison of an observed value with a threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    /// `>`
    Greater,
    /// `>=`
    GreaterOrEqual,
    /// `<`
    Less,
    /// `<=`
    LessOrEqual,
    /// `=` (also written `==`)
    Equal,
    /// `!=` (also written `<>`)
    NotEqual,
}

impl Comparison {
    fn symbol(self) -> &'static str {
        match self {
            Self::Greater => ">",
            Self::GreaterOrEqual => ">=",
            Self::Less => "<",
            Self::LessOrEqual => "<=",
            Self::Equal => "=",
            Self::NotEqual => "!=",
        }
    }
}

/// A condition on the observed value, written as a string like `"> 10"` or
/// `"<= 0.5"`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Condition {
    /// How the observed value is compared.
    pub comparison: Comparison,
    /// What it is compared with (finite).
    pub threshold: f64,
}

impl Condition {
    /// Whether `observed` satisfies the condition.
    pub fn holds(&self, observed: f64) -> bool {
        let threshold = self.threshold;
        match self.comparison {
            Comparison::Greater => observed > threshold,
            Comparison::GreaterOrEqual => observed >= threshold,
            Comparison::Less => observed < threshold,
            Comparison::LessOrEqual => observed <= threshold,
            Comparison::Equal => observed == threshold,
            Comparison::NotEqual => observed != threshold,
        }
    }
}

impl utoipa::PartialSchema for Condition {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .description(Some(
                "a comparison with a finite number: `>`, `>=`, `<`, `<=`, `==` (or `=`), `!=` (or `<>`), e.g. `> 10`",
            ))
            .pattern(Some(CONDITION_PATTERN))
            .into()
    }
}

impl utoipa::ToSchema for Condition {
    fn name() -> std::borrow::Cow<'static, str> {
        "CheckCondition".into()
    }
}

/// What [`Condition`]'s parser accepts, for the API document.
const CONDITION_PATTERN: &str =
    r"^\s*(>=|<=|!=|<>|==|>|<|=)\s*[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?\s*$";

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.comparison.symbol(), self.threshold)
    }
}

impl FromStr for Condition {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self> {
        // Two-character operators first, so `>=` is not read as `>` and `=0`.
        const OPERATORS: [(&str, Comparison); 8] = [
            (">=", Comparison::GreaterOrEqual),
            ("<=", Comparison::LessOrEqual),
            ("!=", Comparison::NotEqual),
            ("<>", Comparison::NotEqual),
            ("==", Comparison::Equal),
            (">", Comparison::Greater),
            ("<", Comparison::Less),
            ("=", Comparison::Equal),
        ];
        let invalid = || {
            invalid_check(format!(
                "invalid condition `{text}`: write a comparison (>, >=, <, <=, =, !=) and a number, like `> 10` or `<= 0.5`"
            ))
        };
        let trimmed = text.trim();
        let (comparison, rest) = OPERATORS
            .iter()
            .find_map(|(symbol, comparison)| {
                trimmed.strip_prefix(symbol).map(|rest| (*comparison, rest))
            })
            .ok_or_else(invalid)?;
        let threshold: f64 = rest.trim().parse().map_err(|_| invalid())?;
        if !threshold.is_finite() {
            return Err(invalid());
        }
        Ok(Self {
            comparison,
            threshold,
        })
    }
}

impl Serialize for Condition {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Condition {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(de::Error::custom)
    }
}

/// `unique`'s columns: a list, or one name.
fn column_list<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    struct Columns;

    impl<'de> Visitor<'de> for Columns {
        type Value = Vec<String>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a column name or a list of column names")
        }

        fn visit_str<E: de::Error>(self, name: &str) -> Result<Self::Value, E> {
            Ok(vec![name.to_owned()])
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut columns = Vec::new();
            while let Some(column) = seq.next_element::<String>()? {
                columns.push(column);
            }
            Ok(columns)
        }
    }

    deserializer.deserialize_any(Columns)
}

/// What a check's queries return, for the runner to turn into a [`Measurement`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CheckQueries {
    /// One row: `element_count` and `unexpected_count` (Int64) for row-level
    /// and `custom_sql` checks, `row_count` (Int64) for `row_count`,
    /// `max_value` for `freshness`. `None` for `schema` and
    /// `distribution_drift`, whose inputs the runner reads itself.
    pub counts_sql: Option<String>,
    /// Up to the sample limit of failing rows (for `unique`, the duplicated
    /// values with their `duplicate_count`, most frequent first). `None` for
    /// checks without failing rows, or when no samples are wanted.
    pub sample_sql: Option<String>,
}

/// What a check observed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Measurement {
    /// Rows (or values) considered.
    pub element_count: Option<u64>,
    /// Rows that failed.
    pub unexpected_count: Option<u64>,
    /// The value conditions apply to; null when there was nothing to observe.
    pub observed: Option<f64>,
    /// Check-specific facts: schema mismatches, PSI bins, the KS p-value, an error.
    pub details: Value,
}

fn invalid_check(message: impl Into<String>) -> Error {
    Error::Refused {
        problem: AnalyticsProblem::InvalidCheck,
        message: message.into(),
    }
}

/// Checks a definition against the dataset's schema: the name, that columns
/// exist and have fitting types, bounds and thresholds, the pattern and the
/// durations. The referenced dataset and its column of a `referential`
/// check are not checked here: the runner resolves them.
pub fn validate(def: &CheckDefinition, schema: &Schema) -> Result<()> {
    validate_definition(def, schema).map_err(|error| match error {
        Error::Refused { problem, message } => Error::Refused {
            problem,
            message: format!("check `{}`: {message}", def.name),
        },
        other => other,
    })
}

fn validate_definition(def: &CheckDefinition, schema: &Schema) -> Result<()> {
    validate_name(&def.name).map_err(|_| {
        invalid_check(format!(
            "invalid name: use lowercase letters, digits and _, starting with a letter or _, at most {MAX_NAME_LEN} characters"
        ))
    })?;
    if let Some(mostly) = def.mostly {
        if !def.spec.is_row_level() {
            return Err(invalid_check(format!(
                "`mostly` applies to not_null, unique, accepted_values, range, regex and referential checks, not to {}",
                def.spec.kind()
            )));
        }
        if !(0.0..=1.0).contains(&mostly) {
            return Err(invalid_check(format!(
                "`mostly` must be between 0 and 1, got {mostly}"
            )));
        }
    }
    for (key, condition) in [("warn_if", &def.warn_if), ("fail_if", &def.fail_if)] {
        if condition
            .as_ref()
            .is_some_and(|condition| !condition.threshold.is_finite())
        {
            return Err(invalid_check(format!("`{key}` needs a finite threshold")));
        }
    }
    match &def.spec {
        CheckSpec::NotNull { column } => {
            column_type(schema, column)?;
        }
        CheckSpec::Unique { columns } => {
            if columns.is_empty() {
                return Err(invalid_check("unique needs at least one column"));
            }
            let mut seen = BTreeSet::new();
            for column in columns {
                if !seen.insert(column.as_str()) {
                    return Err(invalid_check(format!("column `{column}` is listed twice")));
                }
                column_type(schema, column)?;
            }
        }
        CheckSpec::AcceptedValues { column, values } => {
            let data_type = column_type(schema, column)?;
            if values.is_empty() {
                return Err(invalid_check("accepted_values needs at least one value"));
            }
            for value in values {
                literal(column, data_type, value)?;
            }
        }
        CheckSpec::Range {
            column,
            min,
            max,
            exclusive,
        } => {
            range_bounds(schema, column, min.as_ref(), max.as_ref(), *exclusive)?;
        }
        CheckSpec::Regex { column, pattern } => {
            let data_type = column_type(schema, column)?;
            if !is_text(data_type) {
                return Err(invalid_check(format!(
                    "regex needs a text column; `{column}` is {data_type}"
                )));
            }
            regex::Regex::new(pattern)
                .map_err(|e| invalid_check(format!("the pattern does not compile: {e}")))?;
        }
        CheckSpec::RowCount { min, max } => {
            if let (Some(min), Some(max)) = (min, max)
                && min > max
            {
                return Err(invalid_check(format!(
                    "min ({min}) is larger than max ({max})"
                )));
            }
            if min.is_none() && max.is_none() && def.fail_if.is_none() {
                return Err(invalid_check("row_count needs min, max or fail_if"));
            }
        }
        CheckSpec::Freshness {
            column,
            max_age,
            warn_after,
        } => {
            let data_type = column_type(schema, column)?;
            if !is_instant(data_type) {
                return Err(invalid_check(format!(
                    "freshness needs a timestamp or date column; `{column}` is {data_type}"
                )));
            }
            let max_age = parse_duration(max_age)?;
            if max_age.is_zero() {
                return Err(invalid_check("max_age must be longer than 0"));
            }
            if let Some(warn_after) = warn_after
                && parse_duration(warn_after)? > max_age
            {
                return Err(invalid_check(
                    "warn_after must not be longer than max_age: the check would fail before it warns",
                ));
            }
        }
        CheckSpec::Schema { columns, .. } => {
            let mut seen = BTreeSet::new();
            for expected in columns {
                if expected.name.is_empty() {
                    return Err(invalid_check("an expected column has an empty name"));
                }
                if !seen.insert(expected.name.as_str()) {
                    return Err(invalid_check(format!(
                        "column `{}` is listed twice",
                        expected.name
                    )));
                }
                if expected
                    .data_type
                    .as_ref()
                    .is_some_and(|data_type| data_type.trim().is_empty())
                {
                    return Err(invalid_check(format!(
                        "column `{}` has an empty type: give one or leave it out",
                        expected.name
                    )));
                }
            }
        }
        CheckSpec::Referential {
            column,
            dataset,
            ref_column,
        } => {
            column_type(schema, column)?;
            validate_name(dataset)
                .map_err(|_| invalid_check(format!("`{dataset}` is not a valid dataset name")))?;
            if ref_column.as_ref().is_some_and(String::is_empty) {
                return Err(invalid_check(
                    "ref_column is empty: give one or leave it out",
                ));
            }
        }
        CheckSpec::DistributionDrift {
            column,
            reference_version,
            method,
            bins,
        } => {
            let data_type = column_type(schema, column)?;
            if !data_type.is_numeric() {
                return Err(invalid_check(format!(
                    "distribution_drift needs a numeric column; `{column}` is {data_type}"
                )));
            }
            if *reference_version < 0 {
                return Err(invalid_check(format!(
                    "reference_version must be 0 or more, got {reference_version}"
                )));
            }
            if let Some(bins) = bins {
                if *method != DriftMethod::Psi {
                    return Err(invalid_check("bins applies to the psi method only"));
                }
                if !(2..=MAX_PSI_BINS).contains(bins) {
                    return Err(invalid_check(format!(
                        "bins must be between 2 and {MAX_PSI_BINS}, got {bins}"
                    )));
                }
            }
        }
        CheckSpec::CustomSql { sql } => {
            if custom_query(sql).is_empty() {
                return Err(invalid_check("custom_sql needs a query"));
            }
        }
    }
    Ok(())
}

fn column_type<'a>(schema: &'a Schema, column: &str) -> Result<&'a DataType> {
    schema
        .fields()
        .iter()
        .find(|field| field.name() == column)
        .map(|field| field.data_type())
        .ok_or_else(|| Error::Refused {
            problem: AnalyticsProblem::UnknownColumn,
            message: format!("the dataset has no column `{column}`"),
        })
}

fn is_text(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
    )
}

fn is_date(data_type: &DataType) -> bool {
    matches!(data_type, DataType::Date32 | DataType::Date64)
}

/// Dates and timestamps: the types that place a row in time.
fn is_instant(data_type: &DataType) -> bool {
    is_date(data_type) || matches!(data_type, DataType::Timestamp(..))
}

/// A value from a definition, checked against its column's type.
enum Literal {
    /// A number and the SQL text that writes it exactly.
    Number {
        value: f64,
        sql: String,
    },
    Text(String),
    Bool(bool),
    /// An instant; a date is midnight UTC with `day` set.
    Time {
        at: DateTime<Utc>,
        day: bool,
    },
}

impl Literal {
    fn to_sql(&self, column_type: &DataType) -> String {
        match self {
            // Parenthesized so a negative number stays one operand wherever it lands.
            Self::Number { sql, .. } if sql.starts_with('-') => format!("({sql})"),
            Self::Number { sql, .. } => sql.clone(),
            Self::Text(text) => quote_literal(text),
            Self::Bool(true) => "TRUE".to_owned(),
            Self::Bool(false) => "FALSE".to_owned(),
            Self::Time { at, day: true } if is_date(column_type) => {
                format!("DATE '{}'", at.format("%Y-%m-%d"))
            }
            Self::Time { at, .. } => format!(
                "TIMESTAMP '{}'",
                at.to_rfc3339_opts(SecondsFormat::AutoSi, true)
            ),
        }
    }

    fn compare(&self, other: &Self) -> Option<Ordering> {
        match (self, other) {
            (Self::Number { value: a, .. }, Self::Number { value: b, .. }) => a.partial_cmp(b),
            (Self::Time { at: a, .. }, Self::Time { at: b, .. }) => Some(a.cmp(b)),
            _ => None,
        }
    }
}

fn literal(column: &str, data_type: &DataType, value: &Value) -> Result<Literal> {
    let wrong = |expected: &str| {
        invalid_check(format!(
            "{value} does not fit column `{column}` of type {data_type}: expected {expected}"
        ))
    };
    if data_type.is_numeric() {
        return match value {
            Value::Number(number) => number_literal(number).ok_or_else(|| wrong("a finite number")),
            _ => Err(wrong("a number")),
        };
    }
    if is_text(data_type) {
        return value
            .as_str()
            .map(|text| Literal::Text(text.to_owned()))
            .ok_or_else(|| wrong("a string"));
    }
    if is_instant(data_type) {
        let literal = value
            .as_str()
            .and_then(time_literal)
            .ok_or_else(|| wrong("a date (like 2024-01-31) or an RFC 3339 timestamp"))?;
        // Timestamp literals are nanoseconds: outside these years every run would error.
        if let Literal::Time { at, .. } = &literal
            && !is_date(data_type)
            && at.timestamp_nanos_opt().is_none()
        {
            return Err(wrong("an instant between the years 1678 and 2261"));
        }
        return Ok(literal);
    }
    if *data_type == DataType::Boolean {
        return value
            .as_bool()
            .map(Literal::Bool)
            .ok_or_else(|| wrong("true or false"));
    }
    Err(invalid_check(format!(
        "column `{column}` has type {data_type}, which this check does not support"
    )))
}

fn number_literal(number: &serde_json::Number) -> Option<Literal> {
    if let Some(integer) = number.as_i64() {
        Some(Literal::Number {
            value: integer as f64,
            sql: integer.to_string(),
        })
    } else if let Some(integer) = number.as_u64() {
        Some(Literal::Number {
            value: integer as f64,
            sql: integer.to_string(),
        })
    } else {
        // Debug keeps a `.0` or an exponent, so SQL reads the text as a float.
        number
            .as_f64()
            .filter(|value| value.is_finite())
            .map(|value| Literal::Number {
                value,
                sql: format!("{value:?}"),
            })
    }
}

fn time_literal(text: &str) -> Option<Literal> {
    if let Ok(day) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Some(Literal::Time {
            at: day.and_time(NaiveTime::MIN).and_utc(),
            day: true,
        });
    }
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|time| Literal::Time {
            at: time.with_timezone(&Utc),
            day: false,
        })
}

/// A range check's bounds, checked: at least one, of the column's kind, in order.
fn range_bounds(
    schema: &Schema,
    column: &str,
    min: Option<&Value>,
    max: Option<&Value>,
    exclusive: bool,
) -> Result<(Option<Literal>, Option<Literal>)> {
    let data_type = column_type(schema, column)?;
    if !data_type.is_numeric() && !is_instant(data_type) {
        return Err(invalid_check(format!(
            "range needs a numeric, date or timestamp column; `{column}` is {data_type}"
        )));
    }
    if min.is_none() && max.is_none() {
        return Err(invalid_check("range needs min, max or both"));
    }
    let min = min.map(|v| literal(column, data_type, v)).transpose()?;
    let max = max.map(|v| literal(column, data_type, v)).transpose()?;
    if let (Some(low), Some(high)) = (&min, &max)
        && let Some(order) = low.compare(high)
        && (order == Ordering::Greater || (exclusive && order == Ordering::Equal))
    {
        return Err(invalid_check(if exclusive {
            "min must be smaller than max when the range is exclusive"
        } else {
            "min must not be larger than max"
        }));
    }
    Ok((min, max))
}

/// A custom query without surrounding blanks and trailing `;`, which would
/// break the subquery it is wrapped in.
fn custom_query(sql: &str) -> &str {
    sql.trim()
        .trim_end_matches(|c: char| c == ';' || c.is_whitespace())
}

/// `column` of the checked table, which every query aliases `t`.
fn col(column: &str) -> String {
    format!("t.{}", quote_ident(column))
}

/// Compiles a valid check to SQL (see [`CheckQueries`] for what each query
/// returns). `table` and `reference_table` (the `referential` check's other
/// dataset) are table references the caller has quoted; a `sample_limit` of
/// 0 asks for no sample query.
///
/// Every column is quoted and every value written as a literal of the
/// column's type, so nothing in a definition can change the statement's
/// shape; a `custom_sql` query is wrapped as a subquery, so it must be a
/// query.
pub fn compile(
    def: &CheckDefinition,
    table: &str,
    reference_table: Option<&str>,
    schema: &Schema,
    sample_limit: usize,
) -> Result<CheckQueries> {
    validate(def, schema)?;
    let queries = match &def.spec {
        CheckSpec::NotNull { column } => row_level(
            table,
            None,
            &format!("{} IS NULL", col(column)),
            sample_limit,
        ),
        CheckSpec::Unique { columns } => unique(table, columns, sample_limit),
        CheckSpec::AcceptedValues { column, values } => {
            let data_type = column_type(schema, column)?;
            let literals = values
                .iter()
                .map(|value| Ok(literal(column, data_type, value)?.to_sql(data_type)))
                .collect::<Result<Vec<_>>>()?;
            row_level(
                table,
                Some(&format!("{} IS NOT NULL", col(column))),
                &format!("{} NOT IN ({})", col(column), literals.join(", ")),
                sample_limit,
            )
        }
        CheckSpec::Range {
            column,
            min,
            max,
            exclusive,
        } => {
            let data_type = column_type(schema, column)?;
            let (min, max) = range_bounds(schema, column, min.as_ref(), max.as_ref(), *exclusive)?;
            let (above, below) = if *exclusive { (">", "<") } else { (">=", "<=") };
            let mut inside = Vec::new();
            if let Some(min) = min {
                inside.push(format!("{} {above} {}", col(column), min.to_sql(data_type)));
            }
            if let Some(max) = max {
                inside.push(format!("{} {below} {}", col(column), max.to_sql(data_type)));
            }
            row_level(
                table,
                Some(&format!("{} IS NOT NULL", col(column))),
                &format!("NOT ({})", inside.join(" AND ")),
                sample_limit,
            )
        }
        CheckSpec::Regex { column, pattern } => row_level(
            table,
            Some(&format!("{} IS NOT NULL", col(column))),
            &format!(
                "NOT regexp_like({}, {})",
                col(column),
                quote_literal(pattern)
            ),
            sample_limit,
        ),
        CheckSpec::Referential {
            column, ref_column, ..
        } => {
            let reference = reference_table.ok_or_else(|| {
                invalid_check(format!(
                    "check `{}`: a referential check needs the referenced dataset's table",
                    def.name
                ))
            })?;
            referential(
                table,
                reference,
                column,
                ref_column.as_deref().unwrap_or(column),
                sample_limit,
            )
        }
        CheckSpec::CustomSql { sql } => {
            // The query goes on lines of its own, so a trailing `--` comment
            // cannot swallow the closing parenthesis.
            let from = format!("FROM (\n{}\n) AS q", custom_query(sql));
            CheckQueries {
                counts_sql: Some(format!(
                    "SELECT CAST(count(*) AS BIGINT) AS element_count, CAST(count(*) AS BIGINT) AS unexpected_count {from}"
                )),
                sample_sql: (sample_limit > 0)
                    .then(|| format!("SELECT * {from} LIMIT {sample_limit}")),
            }
        }
        CheckSpec::RowCount { .. } => CheckQueries {
            counts_sql: Some(format!(
                "SELECT CAST(count(*) AS BIGINT) AS row_count FROM {table}"
            )),
            sample_sql: None,
        },
        CheckSpec::Freshness { column, .. } => CheckQueries {
            counts_sql: Some(format!(
                "SELECT max({}) AS max_value FROM {table} AS t",
                col(column)
            )),
            sample_sql: None,
        },
        CheckSpec::Schema { .. } | CheckSpec::DistributionDrift { .. } => CheckQueries::default(),
    };
    Ok(queries)
}

/// Queries of a check whose rows fail one by one: among the rows where
/// `considered` holds (all when `None`), those where `failing` holds.
fn row_level(
    table: &str,
    considered: Option<&str>,
    failing: &str,
    sample_limit: usize,
) -> CheckQueries {
    let counts_filter = considered
        .map(|considered| format!(" WHERE {considered}"))
        .unwrap_or_default();
    let sample_filter = match considered {
        Some(considered) => format!("{considered} AND ({failing})"),
        None => failing.to_owned(),
    };
    CheckQueries {
        counts_sql: Some(format!(
            "SELECT CAST(count(*) AS BIGINT) AS element_count, \
             CAST(count(*) FILTER (WHERE {failing}) AS BIGINT) AS unexpected_count \
             FROM {table} AS t{counts_filter}"
        )),
        sample_sql: (sample_limit > 0).then(|| {
            format!("SELECT t.* FROM {table} AS t WHERE {sample_filter} LIMIT {sample_limit}")
        }),
    }
}

fn unique(table: &str, columns: &[String], sample_limit: usize) -> CheckQueries {
    let keys = columns
        .iter()
        .map(|c| col(c))
        .collect::<Vec<_>>()
        .join(", ");
    let not_null = columns
        .iter()
        .map(|c| format!("{} IS NOT NULL", col(c)))
        .collect::<Vec<_>>()
        .join(" AND ");
    let groups = format!("FROM {table} AS t WHERE {not_null} GROUP BY {keys}");
    CheckQueries {
        counts_sql: Some(format!(
            "SELECT CAST(COALESCE(sum(g.n), 0) AS BIGINT) AS element_count, \
             CAST(COALESCE(sum(g.n) FILTER (WHERE g.n > 1), 0) AS BIGINT) AS unexpected_count \
             FROM (SELECT count(*) AS n {groups}) AS g"
        )),
        sample_sql: (sample_limit > 0).then(|| {
            format!(
                "SELECT {keys}, count(*) AS duplicate_count {groups} \
                 HAVING count(*) > 1 ORDER BY duplicate_count DESC LIMIT {sample_limit}"
            )
        }),
    }
}

fn referential(
    table: &str,
    reference: &str,
    column: &str,
    ref_column: &str,
    sample_limit: usize,
) -> CheckQueries {
    let value = col(column);
    // Counted through a join with the distinct referenced values rather than
    // NOT EXISTS: DataFusion turns a subquery into a join only in a WHERE
    // clause, not inside an aggregate's FILTER.
    let counts_sql = format!(
        "SELECT CAST(count(*) AS BIGINT) AS element_count, \
         CAST(count(*) FILTER (WHERE r.k IS NULL) AS BIGINT) AS unexpected_count \
         FROM {table} AS t LEFT JOIN (SELECT DISTINCT {} AS k FROM {reference}) AS r ON {value} = r.k \
         WHERE {value} IS NOT NULL",
        quote_ident(ref_column)
    );
    CheckQueries {
        counts_sql: Some(counts_sql),
        sample_sql: (sample_limit > 0).then(|| {
            format!(
                "SELECT t.* FROM {table} AS t WHERE {value} IS NOT NULL AND NOT EXISTS \
                 (SELECT 1 FROM {reference} AS r WHERE r.{} = {value}) LIMIT {sample_limit}",
                quote_ident(ref_column)
            )
        }),
    }
}

fn no_details() -> Value {
    Value::Object(Map::new())
}

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
fn passing_fraction(elements: u64, unexpected: u64) -> f64 {
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
fn misapplied(def: &CheckDefinition, expected: &str) -> Measurement {
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

fn schema_mismatches(
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
fn type_matches(wanted: &str, actual: &DataType) -> bool {
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

fn drift(
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
fn quantile_edges(sorted: &[f64], bins: usize) -> Vec<f64> {
    let n = sorted.len();
    let mut edges: Vec<f64> = (1..bins).map(|i| sorted[i * n / bins]).collect();
    edges.dedup();
    edges
}

fn bin_counts(sorted: &[f64], edges: &[f64]) -> Vec<usize> {
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
fn kolmogorov_q(lambda: f64) -> f64 {
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
fn default_failure(def: &CheckDefinition, m: &Measurement, observed: f64) -> Option<bool> {
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
fn default_warning(spec: &CheckSpec, observed: f64) -> Option<bool> {
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

/// Reads a duration written as whole numbers with units `s`, `m`, `h`, `d`
/// or `w`: `90s`, `30m`, `24h`, `7d`, `2w`, or combined like `1h30m`.
pub fn parse_duration(text: &str) -> Result<Duration> {
    let invalid = || {
        invalid_check(format!(
            "invalid duration `{text}`: write a whole number and a unit s, m, h, d or w, like `90s`, `30m`, `24h`, `7d` or `1h30m`"
        ))
    };
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut seconds: u64 = 0;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(invalid());
        }
        let amount: u64 = rest[..digits].parse().map_err(|_| invalid())?;
        let mut after = rest[digits..].chars();
        let unit: u64 = match after.next() {
            Some('s') => 1,
            Some('m') => 60,
            Some('h') => 3_600,
            Some('d') => 86_400,
            Some('w') => 604_800,
            _ => return Err(invalid()),
        };
        seconds = amount
            .checked_mul(unit)
            .and_then(|part| seconds.checked_add(part))
            .ok_or_else(invalid)?;
        rest = after.as_str();
    }
    Ok(Duration::from_secs(seconds))
}

#[cfg(test)]
mod tests {
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
        let bad_condition = error(
            json!({"name": "a", "type": "not_null", "column": "id", "fail_if": "more than 3"}),
        );
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
        for bad in [
            "",
            "h",
            "10",
            "1.5h",
            "10ms",
            "-1h",
            "1 h",
            "99999999999999999999w",
        ] {
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
        let regex_on_int =
            def(json!({"name": "a", "type": "regex", "column": "id", "pattern": "^1"}));
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
            json!({"name": "a", "type": "freshness", "column": "updated_at", "max_age": "1 hour"}),
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

        let range = compiled(
            json!({"name": "a", "type": "range", "column": "amount", "min": -5, "max": 2.5}),
        );
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

        let regex = compiled(
            json!({"name": "a", "type": "regex", "column": "status", "pattern": "^it's$"}),
        );
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
        let no_reference = def(
            json!({"name": "a", "type": "referential", "column": "id", "dataset": "customers"}),
        );
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
        let mild =
            def(json!({"name": "a", "type": "not_null", "column": "id", "severity": "warning"}));
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
}
