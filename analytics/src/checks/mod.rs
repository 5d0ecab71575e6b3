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

mod compile;
mod measure;

pub use compile::*;
pub use measure::*;

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

#[cfg(test)]
mod tests;
