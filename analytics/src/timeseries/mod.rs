//! Time series for charts: the pure half of `POST /api/v1/analytics/timeseries`.
//!
//! [`plan`] checks a [`TimeseriesRequest`] against the source's schema,
//! resolves its date range in the request's time zone and writes the SQL;
//! the runner executes it and hands the batches to [`assemble`], which pivots
//! them into one array per series and measure over every bucket of the range,
//! fills gaps, computes rolling windows, aligns the comparison range and
//! downsamples with LTTB. Nothing here does IO.
//!
//! Buckets come in two kinds. Fixed widths (`second`, `minute`, `hour`,
//! `15 minutes`) are spans of absolute time counted from the range start, so a
//! day with a DST change has 23 or 25 hourly buckets. Calendar units (`day`,
//! `week`, `month`, `quarter`, `year`) are local calendar units of the
//! request's time zone: a daily bucket is local midnight to local midnight,
//! however long that is.

mod answer;
mod calendar;
mod sql;

pub use answer::*;
pub use calendar::*;
pub use sql::*;

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, Float64Array, RecordBatch, StringArray, TimestampMillisecondArray,
};
use arrow::compute::cast;
use arrow::datatypes::{
    DataType, Date32Type, Date64Type, Field, Float64Type, Int64Type, Schema, TimeUnit, UInt64Type,
};
use arrow::error::ArrowError;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use chrono::{
    DateTime, Datelike, Days, FixedOffset, LocalResult, Months, NaiveDate, NaiveDateTime,
    NaiveTime, SecondsFormat, TimeDelta, TimeZone, Timelike, Utc,
};
use chrono_tz::Tz;
use serde::de::{self, Deserializer};
use serde::ser::{SerializeMap, SerializeSeq, Serializer};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{AnalyticsProblem, Error, Result};
use basin_sql::{quote_ident, quote_literal};

/// Most buckets one series may span before downsampling, counting the
/// buckets read before the range for rolling windows.
pub const MAX_BUCKETS: usize = 100_000;

/// Most series (combinations of dimension values) one answer may hold.
pub const MAX_SERIES: usize = 1_000;

/// Most values (series × measures × buckets, comparison included) one answer may hold.
pub const MAX_CELLS: usize = 2_000_000;

const NANOS_PER_SECOND: i64 = 1_000_000_000;
const NANOS_PER_MILLI: i64 = 1_000_000;
const MILLIS_PER_DAY: i64 = 86_400_000;
/// A fixed interval wider than a year would be a calendar question in disguise.
const MAX_INTERVAL_SECONDS: u32 = 366 * 86_400;
/// Columns named in "does not exist" messages; wide tables would drown the point.
const COLUMNS_LISTED: usize = 20;

// ---------------------------------------------------------------------------
// Request
// ---------------------------------------------------------------------------

/// A time series request, in the spirit of Cube's query format.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "source": {"dataset": "orders"}, "time_column": "ordered_at", "granularity": "day",
    "date_range": ["2024-03-01", "2024-04-30"], "timezone": "Europe/Berlin",
    "measures": [{"agg": "count"}, {"agg": "sum", "column": "amount", "name": "revenue"}],
    "fill": "zero"
}))]
pub struct TimeseriesRequest {
    /// What to read: a dataset or a SQL query.
    pub source: Source,
    /// The timestamp or date column that places rows in time.
    pub time_column: String,
    /// Bucket width: `second`, `minute`, `hour`, `day`, `week`, `month`,
    /// `quarter`, `year`, or a fixed interval such as `15 minutes`, `5m`,
    /// `2 hours` or `90s`.
    pub granularity: String,
    /// The range to chart: `[from, to]` or a relative name such as `last 7 days`.
    pub date_range: DateRange,
    /// The IANA time zone ranges, calendar buckets and output times are read in.
    #[serde(default = "default_timezone")]
    pub timezone: String,
    /// What to compute per bucket; at least one.
    #[schema(min_items = 1)]
    pub measures: Vec<Measure>,
    /// Columns whose value combinations each get their own series.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dimensions: Vec<String>,
    /// Which rows count: a filter, or a list of filters that must all hold.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "filters_or_list"
    )]
    #[schema(schema_with = filters_schema)]
    pub filters: Option<Filter>,
    /// How buckets without rows are filled.
    #[serde(default)]
    pub fill: Fill,
    /// A second range to compute the same series over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compare_to: Option<CompareTo>,
    /// Downsample each series with LTTB to at most this many points (at least 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 3)]
    pub max_points: Option<usize>,
    /// How times are written in the answer.
    #[serde(default)]
    pub time_format: TimeFormat,
    /// Computes the answer afresh instead of serving a cached one (Cube's
    /// `renewQuery`); the fresh answer is cached.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub renew: bool,
}

fn default_timezone() -> String {
    "UTC".to_owned()
}

/// Where the rows come from: `{"dataset": "events"}` or `{"sql": "SELECT ..."}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(untagged, deny_unknown_fields)]
#[schema(as = TimeseriesSource)]
pub enum Source {
    /// A dataset, by name.
    Dataset {
        /// The dataset's name.
        dataset: String,
    },
    /// The result of a read-only SQL query.
    Sql {
        /// The query.
        sql: String,
    },
}

/// A date range: two bounds, or a name relative to now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum DateRange {
    /// `[from, to]`. A date-only `from` is local midnight and a date-only
    /// `to` includes its whole day; timestamps without an offset are local
    /// time; a timestamp `to` is exclusive.
    Absolute(Vec<String>),
    /// `today`, `yesterday`, `this <unit>`, `last <unit>` (the previous full
    /// unit) or `last <n> <units>` (n whole units ending with the current one).
    Relative(String),
}

/// The second range of a comparison.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum CompareTo {
    /// An explicit `[from, to]`, read like [`DateRange::Absolute`].
    Range(Vec<String>),
    /// `previous_period` (as many buckets immediately before) or
    /// `previous_year` (the same local dates a year earlier).
    Period(String),
}

/// One value computed per bucket and series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Measure {
    /// The aggregate.
    pub agg: Agg,
    /// Its input column; `count` without one counts rows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
    /// The name in the answer; defaults to `count`, `sum_amount`, `p95_latency`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The quantile of `percentile`, between 0 and 1 exclusive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(exclusive_minimum = 0.0, exclusive_maximum = 1.0)]
    pub q: Option<f64>,
    /// Turns the measure into a trailing window over its buckets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rolling: Option<Rolling>,
}

/// The aggregates a measure may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Agg {
    /// Rows, or non-null values of the column.
    Count,
    /// Sum of a numeric column.
    Sum,
    /// Mean of a numeric column.
    Avg,
    /// Smallest value of a numeric, timestamp or date column.
    Min,
    /// Largest value of a numeric, timestamp or date column.
    Max,
    /// Distinct non-null values of any column.
    CountDistinct,
    /// Approximate quantile `q` of a numeric column.
    Percentile,
    /// Approximate median.
    P50,
    /// Approximate 90th percentile.
    P90,
    /// Approximate 95th percentile.
    P95,
    /// Approximate 99th percentile.
    P99,
}

impl Agg {
    pub(super) fn name(self) -> &'static str {
        match self {
            Self::Count => "count",
            Self::Sum => "sum",
            Self::Avg => "avg",
            Self::Min => "min",
            Self::Max => "max",
            Self::CountDistinct => "count_distinct",
            Self::Percentile => "percentile",
            Self::P50 => "p50",
            Self::P90 => "p90",
            Self::P95 => "p95",
            Self::P99 => "p99",
        }
    }
}

/// A trailing window over a measure's buckets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Rolling {
    /// Buckets in the window, the current one included (1 to 100,000).
    #[schema(minimum = 1, maximum = 100_000)]
    pub window: usize,
    /// How the window's values combine; nulls are skipped.
    pub agg: RollingAgg,
}

/// How a rolling window combines its values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RollingAgg {
    /// The sum of the window's values.
    Sum,
    /// Their mean.
    Avg,
    /// The smallest.
    Min,
    /// The largest.
    Max,
}

/// Which rows count: conditions combined with `and`, `or` and `not`.
///
/// JSON: `{"and": [...]}`, `{"or": [...]}`, `{"not": {...}}` or a
/// [`Condition`]; a request's `filters` may also be a list, meaning `and`.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    /// Every filter holds.
    And(Vec<Filter>),
    /// At least one filter holds.
    Or(Vec<Filter>),
    /// The filter does not hold.
    Not(Box<Filter>),
    /// One comparison on one column.
    Condition(Condition),
}

/// One comparison: `{"column": "country", "op": "eq", "value": "DE"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = TimeseriesCondition)]
pub struct Condition {
    /// The column compared.
    pub column: String,
    /// The comparison.
    pub op: FilterOp,
    /// What it is compared with: a scalar, or an array for `in`, `not_in` and
    /// `between`; absent for `is_null` and `is_not_null`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
}

/// The comparisons a [`Condition`] may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FilterOp {
    /// Equal.
    Eq,
    /// Not equal.
    Ne,
    /// Greater than.
    Gt,
    /// Greater than or equal.
    Gte,
    /// Less than.
    Lt,
    /// Less than or equal.
    Lte,
    /// One of the array's values.
    In,
    /// None of the array's values.
    NotIn,
    /// Between the array's two values, both included.
    Between,
    /// Text containing the value.
    Contains,
    /// Text starting with the value.
    StartsWith,
    /// Null.
    IsNull,
    /// Not null.
    IsNotNull,
}

impl FilterOp {
    pub(super) fn name(self) -> &'static str {
        match self {
            Self::Eq => "eq",
            Self::Ne => "ne",
            Self::Gt => "gt",
            Self::Gte => "gte",
            Self::Lt => "lt",
            Self::Lte => "lte",
            Self::In => "in",
            Self::NotIn => "not_in",
            Self::Between => "between",
            Self::Contains => "contains",
            Self::StartsWith => "starts_with",
            Self::IsNull => "is_null",
            Self::IsNotNull => "is_not_null",
        }
    }
}

/// `filters` of a request: a [`Filter`], or a list of them meaning `and`.
fn filters_or_list<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> std::result::Result<Option<Filter>, D::Error> {
    match Option::<Value>::deserialize(deserializer)? {
        None => Ok(None),
        Some(Value::Array(items)) => Filter::list(items)
            .map(|items| Some(Filter::And(items)))
            .map_err(de::Error::custom),
        Some(value) => Filter::from_json(value)
            .map(Some)
            .map_err(de::Error::custom),
    }
}

/// The schema of a request's `filters`: a filter or a list of filters.
fn filters_schema() -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, OneOfBuilder, Ref, Type};
    let filter = || Ref::from_schema_name(<Filter as utoipa::ToSchema>::name());
    OneOfBuilder::new()
        .description(Some("a filter, or a list of filters that must all hold"))
        .item(filter())
        .item(ArrayBuilder::new().items(filter()))
        .item(ObjectBuilder::new().schema_type(Type::Null))
        .build()
        .into()
}

impl Filter {
    fn from_json(value: Value) -> Result<Self, String> {
        match value {
            Value::Object(mut map) => {
                if map.len() == 1 {
                    if let Some(items) = map.remove("and") {
                        return Self::group("and", items).map(Self::And);
                    }
                    if let Some(items) = map.remove("or") {
                        return Self::group("or", items).map(Self::Or);
                    }
                    if let Some(inner) = map.remove("not") {
                        return Ok(Self::Not(Box::new(Self::from_json(inner)?)));
                    }
                }
                serde_json::from_value(Value::Object(map))
                    .map(Self::Condition)
                    .map_err(|e| format!("invalid filter condition: {e}"))
            }
            other => Err(format!(
                "a filter is {{\"column\": ..., \"op\": ..., \"value\": ...}}, {{\"and\": [...]}}, {{\"or\": [...]}} or {{\"not\": {{...}}}}, not {other}"
            )),
        }
    }

    fn group(key: &str, items: Value) -> Result<Vec<Self>, String> {
        match items {
            Value::Array(items) => Self::list(items),
            other => Err(format!("`{key}` takes an array of filters, not {other}")),
        }
    }

    fn list(items: Vec<Value>) -> Result<Vec<Self>, String> {
        items.into_iter().map(Self::from_json).collect()
    }
}

impl<'de> Deserialize<'de> for Filter {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        // Through a Value because the shape is chosen by which key is present,
        // and an untagged derive would say only "did not match any variant".
        let value = Value::deserialize(deserializer)?;
        Self::from_json(value).map_err(de::Error::custom)
    }
}

impl Serialize for Filter {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            Self::And(items) => single_entry(serializer, "and", items),
            Self::Or(items) => single_entry(serializer, "or", items),
            Self::Not(inner) => single_entry(serializer, "not", inner),
            Self::Condition(condition) => condition.serialize(serializer),
        }
    }
}

/// The combinations of [`Filter`], by their schema names.
const FILTER_GROUPS: [(&str, &str, &str); 3] = [
    ("TimeseriesAnd", "and", "every filter holds"),
    ("TimeseriesOr", "or", "at least one filter holds"),
    ("TimeseriesNot", "not", "the filter does not hold"),
];

impl utoipa::PartialSchema for Filter {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{OneOfBuilder, Ref};
        let mut one_of = OneOfBuilder::new()
            .description(Some(
                "a condition, or conditions combined with `and`, `or`, `not`",
            ))
            .item(Ref::from_schema_name(
                <Condition as utoipa::ToSchema>::name(),
            ));
        for (name, _, _) in FILTER_GROUPS {
            one_of = one_of.item(Ref::from_schema_name(name));
        }
        one_of.into()
    }
}

impl utoipa::ToSchema for Filter {
    fn name() -> std::borrow::Cow<'static, str> {
        "TimeseriesFilter".into()
    }

    fn schemas(
        schemas: &mut Vec<(
            String,
            utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
        )>,
    ) {
        use utoipa::PartialSchema as _;
        use utoipa::openapi::schema::{AdditionalProperties, ArrayBuilder, ObjectBuilder, Ref};
        let filter = || Ref::from_schema_name(<Self as utoipa::ToSchema>::name());
        for (name, key, description) in FILTER_GROUPS {
            let value: utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> = if key == "not" {
                filter().into()
            } else {
                ArrayBuilder::new()
                    .items(filter())
                    .min_items(Some(1))
                    .into()
            };
            let group = ObjectBuilder::new()
                .description(Some(description))
                .property(key, value)
                .required(key)
                .additional_properties(Some(AdditionalProperties::FreeForm(false)));
            schemas.push((name.to_owned(), group.into()));
        }
        schemas.push((
            <Condition as utoipa::ToSchema>::name().into(),
            Condition::schema(),
        ));
        <Condition as utoipa::ToSchema>::schemas(schemas);
    }
}

fn single_entry<S: Serializer, T: Serialize + ?Sized>(
    serializer: S,
    key: &str,
    value: &T,
) -> std::result::Result<S::Ok, S::Error> {
    let mut map = serializer.serialize_map(Some(1))?;
    map.serialize_entry(key, value)?;
    map.end()
}

/// How buckets without rows are filled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Fill {
    /// Left null.
    #[default]
    Null,
    /// Zero.
    Zero,
    /// The last value seen; leading gaps stay null.
    Previous,
    /// Interpolated between the known neighbours; leading and trailing gaps stay null.
    Linear,
}

/// How times are written in the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TimeFormat {
    /// RFC 3339 with the local offset: `2026-03-29T00:00:00+01:00`.
    #[default]
    Iso,
    /// Milliseconds since the Unix epoch.
    EpochMs,
}

#[cfg(test)]
mod tests;
