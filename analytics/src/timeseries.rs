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
    fn name(self) -> &'static str {
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
    fn name(self) -> &'static str {
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

// ---------------------------------------------------------------------------
// Granularity and calendar arithmetic
// ---------------------------------------------------------------------------

/// A bucket width.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Granularity {
    /// A fixed span of absolute time, counted from the range start.
    Fixed {
        /// The span in seconds (at least 1).
        seconds: u32,
    },
    /// A local calendar unit of the request's time zone.
    Calendar(CalendarUnit),
}

/// The calendar units buckets can be; weeks start on Monday (ISO).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CalendarUnit {
    /// Local midnight to local midnight.
    Day,
    /// Monday to Monday.
    Week,
    /// First of a month to the first of the next.
    Month,
    /// January, April, July or October to the next of them.
    Quarter,
    /// January 1st to January 1st.
    Year,
}

impl CalendarUnit {
    fn name(self) -> &'static str {
        match self {
            Self::Day => "day",
            Self::Week => "week",
            Self::Month => "month",
            Self::Quarter => "quarter",
            Self::Year => "year",
        }
    }

    /// The first day of the unit `date` lies in.
    fn truncate(self, date: NaiveDate) -> Option<NaiveDate> {
        match self {
            Self::Day => Some(date),
            Self::Week => {
                date.checked_sub_days(Days::new(u64::from(date.weekday().num_days_from_monday())))
            }
            Self::Month => date.with_day(1),
            Self::Quarter => NaiveDate::from_ymd_opt(date.year(), date.month0() / 3 * 3 + 1, 1),
            Self::Year => NaiveDate::from_ymd_opt(date.year(), 1, 1),
        }
    }

    /// `date` moved by `count` units (back when negative).
    fn shift(self, date: NaiveDate, count: i64) -> Option<NaiveDate> {
        let days = |n: i64| {
            let step = Days::new(n.unsigned_abs());
            if n >= 0 {
                date.checked_add_days(step)
            } else {
                date.checked_sub_days(step)
            }
        };
        let months = |n: i64| {
            let step = Months::new(u32::try_from(n.unsigned_abs()).ok()?);
            if n >= 0 {
                date.checked_add_months(step)
            } else {
                date.checked_sub_months(step)
            }
        };
        match self {
            Self::Day => days(count),
            Self::Week => days(count.checked_mul(7)?),
            Self::Month => months(count),
            Self::Quarter => months(count.checked_mul(3)?),
            Self::Year => months(count.checked_mul(12)?),
        }
    }
}

impl Granularity {
    /// Reads a granularity: a unit name, or a fixed interval of seconds,
    /// minutes or hours (`15 minutes`, `5m`, `2 hours`, `90s`).
    pub fn parse(text: &str) -> Result<Self> {
        let normalized = text.trim().to_ascii_lowercase();
        if let Some(named) = Self::named(&normalized) {
            return Ok(named);
        }
        let invalid = |why: &str| {
            problem(
                AnalyticsProblem::InvalidGranularity,
                format!("`granularity` `{text}` {why}"),
            )
        };
        let unknown = || {
            invalid(
                "is not second, minute, hour, day, week, month, quarter, year or an interval such as `15 minutes`, `5m`, `2 hours` or `90s`",
            )
        };
        let digits = normalized
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(normalized.len());
        let (count, unit) = normalized.split_at(digits);
        if count.is_empty() {
            return Err(unknown());
        }
        let count: u32 = count
            .parse()
            .map_err(|_| invalid("has a count too large to be a bucket width"))?;
        if count == 0 {
            return Err(invalid("is zero: an interval must be longer than that"));
        }
        let unit_seconds: u32 = match unit.trim() {
            "s" | "sec" | "secs" | "second" | "seconds" => 1,
            "m" | "min" | "mins" | "minute" | "minutes" => 60,
            "h" | "hr" | "hrs" | "hour" | "hours" => 3600,
            calendar => {
                let unit = match calendar {
                    "d" | "day" | "days" => CalendarUnit::Day,
                    "w" | "week" | "weeks" => CalendarUnit::Week,
                    "month" | "months" => CalendarUnit::Month,
                    "quarter" | "quarters" => CalendarUnit::Quarter,
                    "y" | "year" | "years" => CalendarUnit::Year,
                    _ => return Err(unknown()),
                };
                if count != 1 {
                    // Fixed multi-day widths would drift off local midnight at
                    // every DST change; refuse rather than chart that.
                    return Err(invalid(
                        "is not supported: calendar units take no count; use day, week, month, quarter or year, or a fixed interval in hours such as `48 hours`",
                    ));
                }
                return Ok(Self::Calendar(unit));
            }
        };
        let seconds = count
            .checked_mul(unit_seconds)
            .filter(|s| *s <= MAX_INTERVAL_SECONDS)
            .ok_or_else(|| invalid("is longer than a year; use month, quarter or year"))?;
        Ok(Self::Fixed { seconds })
    }

    fn named(name: &str) -> Option<Self> {
        Some(match name {
            "second" => Self::Fixed { seconds: 1 },
            "minute" => Self::Fixed { seconds: 60 },
            "hour" => Self::Fixed { seconds: 3600 },
            "day" => Self::Calendar(CalendarUnit::Day),
            "week" => Self::Calendar(CalendarUnit::Week),
            "month" => Self::Calendar(CalendarUnit::Month),
            "quarter" => Self::Calendar(CalendarUnit::Quarter),
            "year" => Self::Calendar(CalendarUnit::Year),
            _ => return None,
        })
    }
}

impl fmt::Display for Granularity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Calendar(unit) => f.write_str(unit.name()),
            Self::Fixed { seconds: 1 } => f.write_str("second"),
            Self::Fixed { seconds: 60 } => f.write_str("minute"),
            Self::Fixed { seconds: 3600 } => f.write_str("hour"),
            Self::Fixed { seconds } if seconds % 3600 == 0 => {
                write!(f, "{} hours", seconds / 3600)
            }
            Self::Fixed { seconds } if seconds % 60 == 0 => write!(f, "{} minutes", seconds / 60),
            Self::Fixed { seconds } => write!(f, "{seconds} seconds"),
        }
    }
}

fn problem(problem: AnalyticsProblem, message: impl Into<String>) -> Error {
    Error::Refused {
        problem,
        message: message.into(),
    }
}

fn out_of_range() -> Error {
    problem(
        AnalyticsProblem::InvalidDateRange,
        "the date range reaches beyond the dates Basin can represent",
    )
}

fn arrow_error(e: ArrowError) -> Error {
    Error::internal("timeseries", e)
}

/// The instant a local wall-clock time names in `tz`.
fn local_time(naive: NaiveDateTime, tz: Tz) -> Result<DateTime<Tz>> {
    match tz.from_local_datetime(&naive) {
        LocalResult::Single(t) => Ok(t),
        LocalResult::Ambiguous(earliest, _) => Ok(earliest),
        LocalResult::None => {
            // The clocks skipped this time: read it with the offset from before
            // the jump, which is what DataFusion's date_trunc does, so our
            // bucket starts match the ones the SQL produces.
            let shift = TimeDelta::hours(3);
            naive
                .checked_sub_signed(shift)
                .and_then(|before| tz.from_local_datetime(&before).earliest())
                .and_then(|t| t.checked_add_signed(shift))
                .ok_or_else(|| {
                    problem(
                        AnalyticsProblem::InvalidDateRange,
                        format!("local time {naive} does not exist in {}", tz.name()),
                    )
                })
        }
    }
}

fn local_midnight(date: NaiveDate, tz: Tz) -> Result<DateTime<Tz>> {
    local_time(date.and_time(NaiveTime::MIN), tz)
}

/// The start of the bucket (or relative-range unit) `t` lies in. Fixed widths
/// align to the local clock so `last 24 hours` starts on a local hour even in
/// zones with half-hour offsets.
fn truncate(t: DateTime<Tz>, unit: Granularity, tz: Tz) -> Result<DateTime<Tz>> {
    match unit {
        Granularity::Calendar(unit) => {
            local_midnight(unit.truncate(t.date_naive()).ok_or_else(out_of_range)?, tz)
        }
        Granularity::Fixed { seconds } => {
            let local = t.naive_local();
            let into = TimeDelta::seconds(i64::from(local.num_seconds_from_midnight() % seconds))
                + TimeDelta::nanoseconds(i64::from(local.nanosecond()));
            t.checked_sub_signed(into).ok_or_else(out_of_range)
        }
    }
}

/// `t` moved by `count` buckets: calendar units in the local calendar, fixed
/// widths in absolute time.
fn step(t: DateTime<Tz>, unit: Granularity, tz: Tz, count: i64) -> Result<DateTime<Tz>> {
    match unit {
        Granularity::Calendar(unit) => {
            let date = unit.shift(t.date_naive(), count).ok_or_else(out_of_range)?;
            local_midnight(date, tz)
        }
        Granularity::Fixed { seconds } => {
            let delta = count
                .checked_mul(i64::from(seconds))
                .and_then(TimeDelta::try_seconds)
                .ok_or_else(out_of_range)?;
            t.checked_add_signed(delta).ok_or_else(out_of_range)
        }
    }
}

fn span_nanos(start: DateTime<Tz>, end: DateTime<Tz>) -> i128 {
    i128::from(end.timestamp() - start.timestamp()) * i128::from(NANOS_PER_SECOND)
        + i128::from(end.timestamp_subsec_nanos())
        - i128::from(start.timestamp_subsec_nanos())
}

/// Every bucket start of `[start, end)` at `granularity` in `tz`.
///
/// Fixed widths step in absolute time from `start`. Calendar units start at
/// `start` truncated to its local unit (which may lie before `start`) and step
/// in the local calendar, each at local midnight (the earliest instant of an
/// ambiguous midnight; the first instant after a skipped one).
pub fn bucket_starts(
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    granularity: Granularity,
    tz: Tz,
) -> Result<Vec<DateTime<Tz>>> {
    if start >= end {
        return Err(problem(
            AnalyticsProblem::InvalidDateRange,
            format!("the range starts at {start}, not before its end {end}"),
        ));
    }
    if granularity == (Granularity::Fixed { seconds: 0 }) {
        return Err(problem(
            AnalyticsProblem::InvalidGranularity,
            "a fixed granularity must be longer than zero",
        ));
    }
    let (start, end) = (start.with_timezone(&tz), end.with_timezone(&tz));
    let too_many = |count: &str| {
        problem(
            AnalyticsProblem::TooManyPoints,
            format!(
                "{} to {} at granularity `{granularity}` has {count} buckets; at most {MAX_BUCKETS} are allowed: choose a coarser granularity or a shorter range",
                start.to_rfc3339(),
                end.to_rfc3339()
            ),
        )
    };
    match granularity {
        Granularity::Fixed { seconds } => {
            let width = u128::from(seconds) * NANOS_PER_SECOND as u128;
            let span = u128::try_from(span_nanos(start, end)).map_err(|_| out_of_range())?;
            let count = span.div_ceil(width);
            if count > MAX_BUCKETS as u128 {
                return Err(too_many(&count.to_string()));
            }
            (0..count as i64)
                .map(|i| step(start, granularity, tz, i))
                .collect()
        }
        Granularity::Calendar(_) => {
            let mut starts = Vec::new();
            let mut current = truncate(start, granularity, tz)?;
            while current < end {
                if starts.len() == MAX_BUCKETS {
                    return Err(too_many(&format!("more than {MAX_BUCKETS}")));
                }
                starts.push(current);
                current = step(current, granularity, tz, 1)?;
            }
            Ok(starts)
        }
    }
}

// ---------------------------------------------------------------------------
// Date ranges
// ---------------------------------------------------------------------------

type Span = (DateTime<Tz>, DateTime<Tz>);

fn resolve_range(range: &DateRange, tz: Tz, now: DateTime<Utc>) -> Result<Span> {
    match range {
        DateRange::Absolute(bounds) => absolute_range(bounds, tz, "date_range"),
        DateRange::Relative(text) => relative_range(text, tz, now),
    }
}

fn absolute_range(bounds: &[String], tz: Tz, field: &str) -> Result<Span> {
    let [from, to] = bounds else {
        return Err(problem(
            AnalyticsProblem::InvalidDateRange,
            format!(
                "`{field}` needs two values, [from, to]; it has {}",
                bounds.len()
            ),
        ));
    };
    let start = parse_instant(from, tz, false, field)?;
    let end = parse_instant(to, tz, true, field)?;
    if start >= end {
        return Err(problem(
            AnalyticsProblem::InvalidDateRange,
            format!(
                "`{field}` starts at {}, not before its end {}",
                start.to_rfc3339(),
                end.to_rfc3339()
            ),
        ));
    }
    Ok((start, end))
}

/// Reads a range bound or filter value: a date is local midnight (the next
/// one for an inclusive end), a timestamp with an offset is that instant,
/// one without is local time.
fn parse_instant(text: &str, tz: Tz, is_end: bool, field: &str) -> Result<DateTime<Tz>> {
    let text = text.trim();
    if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        let date = if is_end {
            date.checked_add_days(Days::new(1))
                .ok_or_else(out_of_range)?
        } else {
            date
        };
        return local_midnight(date, tz);
    }
    if let Ok(t) = text.parse::<DateTime<FixedOffset>>() {
        return Ok(t.with_timezone(&tz));
    }
    for format in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(naive) = NaiveDateTime::parse_from_str(text, format) {
            return local_time(naive, tz);
        }
    }
    Err(problem(
        AnalyticsProblem::InvalidDateRange,
        format!(
            "`{field}` value `{text}` is not a date (2026-03-28), a timestamp with an offset (2026-03-28T12:00:00Z) or a local timestamp (2026-03-28T12:00:00)"
        ),
    ))
}

fn range_unit(word: &str) -> Option<Granularity> {
    Some(match word {
        "second" | "seconds" => Granularity::Fixed { seconds: 1 },
        "minute" | "minutes" => Granularity::Fixed { seconds: 60 },
        "hour" | "hours" => Granularity::Fixed { seconds: 3600 },
        "day" | "days" => Granularity::Calendar(CalendarUnit::Day),
        "week" | "weeks" => Granularity::Calendar(CalendarUnit::Week),
        "month" | "months" => Granularity::Calendar(CalendarUnit::Month),
        "quarter" | "quarters" => Granularity::Calendar(CalendarUnit::Quarter),
        "year" | "years" => Granularity::Calendar(CalendarUnit::Year),
        _ => return None,
    })
}

fn relative_range(text: &str, tz: Tz, now: DateTime<Utc>) -> Result<Span> {
    let lowered = text.to_ascii_lowercase();
    let words: Vec<&str> = lowered.split_whitespace().collect();
    let unknown = || {
        problem(
            AnalyticsProblem::InvalidDateRange,
            format!(
                "`date_range` `{text}` is not [from, to], today, yesterday, this <unit>, last <unit> or last <n> <units> (units: second, minute, hour, day, week, month, quarter, year)"
            ),
        )
    };
    let day = Granularity::Calendar(CalendarUnit::Day);
    // Offsets in units from the current unit: [from, to).
    let (unit, from, to) = match words.as_slice() {
        ["today"] => (day, 0, 1),
        ["yesterday"] => (day, -1, 0),
        ["this", unit] => (range_unit(unit).ok_or_else(unknown)?, 0, 1),
        ["last", unit] => (range_unit(unit).ok_or_else(unknown)?, -1, 0),
        ["last", count, unit] => {
            let count: i64 = count.parse().ok().filter(|n| *n >= 1).ok_or_else(|| {
                problem(
                    AnalyticsProblem::InvalidDateRange,
                    format!(
                        "`date_range` `{text}`: the count must be a whole number of at least 1"
                    ),
                )
            })?;
            (range_unit(unit).ok_or_else(unknown)?, 1 - count, 1)
        }
        _ => return Err(unknown()),
    };
    let current = truncate(now.with_timezone(&tz), unit, tz)?;
    Ok((step(current, unit, tz, from)?, step(current, unit, tz, to)?))
}

fn comparison_range(
    compare: &CompareTo,
    (start, end): Span,
    granularity: Granularity,
    tz: Tz,
) -> Result<Span> {
    match compare {
        CompareTo::Range(bounds) => absolute_range(bounds, tz, "compare_to"),
        CompareTo::Period(name) => match name.trim() {
            "previous_period" => previous_period(start, end, granularity, tz),
            "previous_year" => Ok((year_before(start, tz)?, year_before(end, tz)?)),
            other => Err(problem(
                AnalyticsProblem::InvalidDateRange,
                format!(
                    "`compare_to` `{other}` is not previous_period, previous_year or a [from, to] range"
                ),
            )),
        },
    }
}

/// The range ending where this one starts, as long as this one in the units
/// people count it in: whole months for monthly and coarser buckets over whole
/// months, local days for ranges from midnight to midnight, absolute time
/// otherwise. Index-aligned buckets then mean "the same day of the period".
fn previous_period(
    start: DateTime<Tz>,
    end: DateTime<Tz>,
    granularity: Granularity,
    tz: Tz,
) -> Result<Span> {
    let (from, to) = (start.naive_local(), end.naive_local());
    let is_midnight = |t: NaiveDateTime| t.time() == NaiveTime::MIN;
    let is_month_start = |t: NaiveDateTime| is_midnight(t) && t.day() == 1;
    let month_index = |d: NaiveDate| i64::from(d.year()) * 12 + i64::from(d.month0());
    let coarse = matches!(
        granularity,
        Granularity::Calendar(CalendarUnit::Month | CalendarUnit::Quarter | CalendarUnit::Year)
    );
    let earlier = if coarse && is_month_start(from) && is_month_start(to) {
        let months = month_index(to.date()) - month_index(from.date());
        let date = CalendarUnit::Month
            .shift(from.date(), -months)
            .ok_or_else(out_of_range)?;
        local_midnight(date, tz)?
    } else if is_midnight(from) && is_midnight(to) {
        let days = to.date().signed_duration_since(from.date()).num_days();
        let date = CalendarUnit::Day
            .shift(from.date(), -days)
            .ok_or_else(out_of_range)?;
        local_midnight(date, tz)?
    } else {
        start
            .checked_sub_signed(end.signed_duration_since(start))
            .ok_or_else(out_of_range)?
    };
    Ok((earlier, start))
}

/// The same local wall-clock time a year earlier (February 29th becomes the 28th).
fn year_before(t: DateTime<Tz>, tz: Tz) -> Result<DateTime<Tz>> {
    let local = t
        .naive_local()
        .checked_sub_months(Months::new(12))
        .ok_or_else(out_of_range)?;
    local_time(local, tz)
}

// ---------------------------------------------------------------------------
// SQL
// ---------------------------------------------------------------------------

fn zoned_type(tz: &str) -> String {
    format!("Timestamp(Nanosecond, Some(\"{tz}\"))")
}

/// A timestamp literal for the instant `t`. A zoned one is needed to compare
/// with zoned columns: DataFusion coerces a naive literal to the column's zone
/// by reading it as local time there, which would shift it.
fn timestamp_literal(t: DateTime<Tz>, zoned: bool) -> String {
    let naive = format!(
        "TIMESTAMP '{}'",
        t.with_timezone(&Utc)
            .to_rfc3339_opts(SecondsFormat::AutoSi, true)
    );
    if zoned {
        format!("arrow_cast({naive}, '{}')", zoned_type("UTC"))
    } else {
        naive
    }
}

/// The bucket of a calendar unit: DataFusion truncates a zoned timestamp in
/// its local time, resolving DST like [`local_time`].
fn calendar_bucket_sql(unit: CalendarUnit, instant: &str, tz: Tz) -> String {
    format!(
        "date_trunc('{}', arrow_cast({instant}, '{}'))",
        unit.name(),
        zoned_type(tz.name())
    )
}

/// An approximate quantile. The cast makes decimals and integers acceptable
/// to the t-digest and the result always a float.
fn percentile_sql(column: &str, q: f64) -> String {
    format!("approx_percentile_cont(CAST({column} AS DOUBLE), {q})")
}

fn value_type(data_type: &DataType) -> &DataType {
    match data_type {
        DataType::Dictionary(_, values) => values.as_ref(),
        other => other,
    }
}

fn column_list(schema: &Schema) -> String {
    let names: Vec<&str> = schema
        .fields()
        .iter()
        .take(COLUMNS_LISTED)
        .map(|f| f.name().as_str())
        .collect();
    let more = schema.fields().len().saturating_sub(names.len());
    if names.is_empty() {
        "no columns".to_owned()
    } else if more > 0 {
        format!("{} and {more} more", names.join(", "))
    } else {
        names.join(", ")
    }
}

fn column_type<'a>(schema: &'a Schema, name: &str, role: &str) -> Result<&'a DataType> {
    schema
        .field_with_name(name)
        .map(|f| f.data_type())
        .map_err(|_| {
            problem(
                AnalyticsProblem::UnknownColumn,
                format!(
                    "{role} column `{name}` does not exist; the source has {}",
                    column_list(schema)
                ),
            )
        })
}

/// The measure's name and SQL.
fn plan_measure(measure: &Measure, schema: &Schema) -> Result<(String, String)> {
    let agg = measure.agg.name();
    let invalid = |message: String| problem(AnalyticsProblem::InvalidMeasure, message);
    let input = match &measure.column {
        Some(column) => Some((
            column.as_str(),
            value_type(column_type(schema, column, &format!("`{agg}`"))?),
        )),
        None => None,
    };
    let q = match measure.agg {
        Agg::Percentile => Some(measure.q.filter(|q| *q > 0.0 && *q < 1.0).ok_or_else(|| {
            invalid("`percentile` needs `q` between 0 and 1 (exclusive), such as 0.95".into())
        })?),
        _ if measure.q.is_some() => {
            return Err(invalid(format!(
                "`q` belongs to `percentile`; `{agg}` takes none"
            )));
        }
        Agg::P50 => Some(0.5),
        Agg::P90 => Some(0.9),
        Agg::P95 => Some(0.95),
        Agg::P99 => Some(0.99),
        _ => None,
    };
    let sql = match (measure.agg, input) {
        (Agg::Count, None) => "count(*)".to_owned(),
        (Agg::Count, Some((column, _))) => format!("count({})", quote_ident(column)),
        (_, None) => return Err(invalid(format!("`{agg}` needs a `column`"))),
        (Agg::CountDistinct, Some((column, _))) => {
            format!("count(DISTINCT {})", quote_ident(column))
        }
        (Agg::Min | Agg::Max, Some((column, data_type))) => {
            let fits = data_type.is_numeric()
                || matches!(
                    data_type,
                    DataType::Timestamp(..) | DataType::Date32 | DataType::Date64
                );
            if !fits {
                return Err(invalid(format!(
                    "`{agg}` needs a numeric, timestamp or date column; `{column}` is {data_type}"
                )));
            }
            format!("{agg}({})", quote_ident(column))
        }
        (_, Some((column, data_type))) => {
            if !data_type.is_numeric() {
                return Err(invalid(format!(
                    "`{agg}` needs a numeric column; `{column}` is {data_type}"
                )));
            }
            match q {
                Some(q) => percentile_sql(&quote_ident(column), q),
                None => format!("{agg}({})", quote_ident(column)),
            }
        }
    };
    let name = match (&measure.name, input, q) {
        (Some(name), ..) => name.clone(),
        (None, None, _) => agg.to_owned(),
        (None, Some((column, _)), Some(q)) => {
            // Percent to three decimals, printed without trailing zeros: p95, p99.9.
            let percent = (q * 100_000.0).round() / 1000.0;
            format!("p{percent}_{column}")
        }
        (None, Some((column, _)), None) => format!("{agg}_{column}"),
    };
    if name.is_empty() {
        return Err(invalid("a measure `name` must not be empty".into()));
    }
    Ok((name, sql))
}

enum Kind {
    Numeric,
    Text,
    Boolean,
    Timestamp { zoned: bool },
    Date,
    Other,
}

fn kind(data_type: &DataType) -> Kind {
    match data_type {
        t if t.is_numeric() => Kind::Numeric,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => Kind::Text,
        DataType::Boolean => Kind::Boolean,
        DataType::Timestamp(_, zone) => Kind::Timestamp {
            zoned: zone.is_some(),
        },
        DataType::Date32 | DataType::Date64 => Kind::Date,
        _ => Kind::Other,
    }
}

fn filter_sql(filter: &Filter, schema: &Schema, tz: Tz) -> Result<String> {
    let group = |items: &[Filter], joiner: &str, key: &str| -> Result<String> {
        if items.is_empty() {
            return Err(problem(
                AnalyticsProblem::InvalidFilter,
                format!("`{key}` needs at least one filter"),
            ));
        }
        let parts = items
            .iter()
            .map(|f| filter_sql(f, schema, tz))
            .collect::<Result<Vec<_>>>()?;
        Ok(format!("({})", parts.join(joiner)))
    };
    match filter {
        Filter::And(items) => group(items, " AND ", "and"),
        Filter::Or(items) => group(items, " OR ", "or"),
        Filter::Not(inner) => Ok(format!("(NOT {})", filter_sql(inner, schema, tz)?)),
        Filter::Condition(condition) => condition_sql(condition, schema, tz),
    }
}

fn invalid_filter(condition: &Condition, why: impl fmt::Display) -> Error {
    problem(
        AnalyticsProblem::InvalidFilter,
        format!(
            "filter `{}` on `{}`: {why}",
            condition.op.name(),
            condition.column
        ),
    )
}

fn single_value(condition: &Condition) -> Result<&Value> {
    match &condition.value {
        None => Err(invalid_filter(condition, "needs a `value`")),
        Some(Value::Array(_) | Value::Object(_)) => Err(invalid_filter(
            condition,
            "takes a single value, not an array or object",
        )),
        Some(value) => Ok(value),
    }
}

fn value_list(condition: &Condition, exactly: Option<usize>) -> Result<&[Value]> {
    match &condition.value {
        Some(Value::Array(items))
            if !items.is_empty() && exactly.is_none_or(|n| items.len() == n) =>
        {
            Ok(items.as_slice())
        }
        _ => Err(invalid_filter(
            condition,
            match exactly {
                Some(n) => format!("needs an array of {n} values"),
                None => "needs a non-empty array of values".to_owned(),
            },
        )),
    }
}

fn condition_sql(condition: &Condition, schema: &Schema, tz: Tz) -> Result<String> {
    let data_type = value_type(column_type(schema, &condition.column, "filter")?);
    let column = quote_ident(&condition.column);
    let render = |value: &Value| literal(condition, data_type, value, tz);
    Ok(match condition.op {
        FilterOp::IsNull | FilterOp::IsNotNull => {
            if condition.value.is_some() {
                return Err(invalid_filter(condition, "takes no `value`"));
            }
            let not = if condition.op == FilterOp::IsNotNull {
                "NOT "
            } else {
                ""
            };
            format!("{column} IS {not}NULL")
        }
        FilterOp::Eq
        | FilterOp::Ne
        | FilterOp::Gt
        | FilterOp::Gte
        | FilterOp::Lt
        | FilterOp::Lte => {
            let symbol = match condition.op {
                FilterOp::Eq => "=",
                FilterOp::Ne => "<>",
                FilterOp::Gt => ">",
                FilterOp::Gte => ">=",
                FilterOp::Lt => "<",
                _ => "<=",
            };
            format!("{column} {symbol} {}", render(single_value(condition)?)?)
        }
        FilterOp::In | FilterOp::NotIn => {
            let items = value_list(condition, None)?
                .iter()
                .map(render)
                .collect::<Result<Vec<_>>>()?;
            let not = if condition.op == FilterOp::NotIn {
                "NOT "
            } else {
                ""
            };
            format!("{column} {not}IN ({})", items.join(", "))
        }
        FilterOp::Between => {
            let [low, high] = value_list(condition, Some(2))? else {
                return Err(invalid_filter(condition, "needs an array of 2 values"));
            };
            format!("{column} BETWEEN {} AND {}", render(low)?, render(high)?)
        }
        FilterOp::Contains | FilterOp::StartsWith => {
            if !matches!(kind(data_type), Kind::Text) {
                return Err(invalid_filter(
                    condition,
                    format!("needs a text column; `{}` is {data_type}", condition.column),
                ));
            }
            let Some(Value::String(text)) = &condition.value else {
                return Err(invalid_filter(condition, "needs a string `value`"));
            };
            // Functions rather than LIKE, so % and _ in the value mean themselves.
            if condition.op == FilterOp::Contains {
                format!("strpos({column}, {}) > 0", quote_literal(text))
            } else {
                format!("starts_with({column}, {})", quote_literal(text))
            }
        }
    })
}

fn literal(condition: &Condition, data_type: &DataType, value: &Value, tz: Tz) -> Result<String> {
    let wrong = |want: &str| {
        invalid_filter(
            condition,
            format!(
                "`{}` is {data_type}, so the value must be {want}, not {value}",
                condition.column
            ),
        )
    };
    if value.is_null() {
        return Err(invalid_filter(
            condition,
            "cannot compare with null; use `is_null` or `is_not_null`",
        ));
    }
    match (kind(data_type), value) {
        // serde_json prints finite numbers only, in a form SQL reads back.
        (Kind::Numeric, Value::Number(n)) => Ok(n.to_string()),
        (Kind::Numeric, _) => Err(wrong("a number")),
        (Kind::Text, Value::String(text)) => Ok(quote_literal(text)),
        (Kind::Text, _) => Err(wrong("a string")),
        (Kind::Boolean, Value::Bool(b)) => Ok(if *b { "TRUE" } else { "FALSE" }.to_owned()),
        (Kind::Boolean, _) => Err(wrong("true or false")),
        (Kind::Timestamp { zoned }, Value::String(text)) => {
            let field = format!("filter on `{}`", condition.column);
            parse_instant(text, tz, false, &field)
                .map(|t| timestamp_literal(t, zoned))
                .map_err(|_| wrong("a date or timestamp such as \"2026-03-28T12:00:00Z\""))
        }
        (Kind::Timestamp { .. }, _) => Err(wrong(
            "a date or timestamp such as \"2026-03-28T12:00:00Z\"",
        )),
        (Kind::Date, Value::String(text)) => NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d")
            .map(|d| format!("DATE '{d}'"))
            .map_err(|_| wrong("a date such as \"2026-03-28\"")),
        (Kind::Date, _) => Err(wrong("a date such as \"2026-03-28\"")),
        (Kind::Other, _) => Err(invalid_filter(
            condition,
            format!(
                "`{}` is {data_type}: only `is_null` and `is_not_null` apply",
                condition.column
            ),
        )),
    }
}

/// The parts of the query both ranges share.
struct Query<'a> {
    source_table: &'a str,
    time_column: String,
    time_type: DataType,
    tz: Tz,
    granularity: Granularity,
    dimensions: Vec<String>,
    measures: Vec<String>,
    filter: Option<String>,
    row_limit: usize,
}

impl Query<'_> {
    fn bucket_sql(&self, origin: DateTime<Tz>) -> String {
        let column = &self.time_column;
        let instant = match &self.time_type {
            DataType::Timestamp(_, Some(_)) => column.clone(),
            // Naive timestamps are UTC instants.
            DataType::Timestamp(_, None) => {
                format!("arrow_cast({column}, '{}')", zoned_type("UTC"))
            }
            // A date is a local calendar day: its midnight in the request's zone.
            _ => format!(
                "arrow_cast(arrow_cast({column}, 'Timestamp(Nanosecond, None)'), '{}')",
                zoned_type(self.tz.name())
            ),
        };
        match self.granularity {
            Granularity::Fixed { seconds } => format!(
                "date_bin(INTERVAL '{seconds} seconds', {instant}, {})",
                timestamp_literal(origin, true)
            ),
            Granularity::Calendar(unit) => calendar_bucket_sql(unit, &instant, self.tz),
        }
    }

    /// The first local date whose midnight is at or after `t`.
    fn first_date_from(&self, t: DateTime<Tz>) -> Result<NaiveDate> {
        let date = t.date_naive();
        if local_midnight(date, self.tz)? >= t {
            Ok(date)
        } else {
            date.checked_add_days(Days::new(1)).ok_or_else(out_of_range)
        }
    }

    fn bounds_sql(&self, from: DateTime<Tz>, to: DateTime<Tz>) -> Result<String> {
        let column = &self.time_column;
        Ok(match &self.time_type {
            DataType::Timestamp(_, zone) => format!(
                "{column} >= {} AND {column} < {}",
                timestamp_literal(from, zone.is_some()),
                timestamp_literal(to, zone.is_some())
            ),
            _ => format!(
                "{column} >= DATE '{}' AND {column} < DATE '{}'",
                self.first_date_from(from)?,
                self.first_date_from(to)?
            ),
        })
    }

    fn sql(&self, from: DateTime<Tz>, to: DateTime<Tz>, origin: DateTime<Tz>) -> Result<String> {
        let bucket = self.bucket_sql(origin);
        let mut select = vec![format!("{bucket} AS \"__bucket\"")];
        let mut group = vec![bucket];
        for (i, dimension) in self.dimensions.iter().enumerate() {
            select.push(format!("{dimension} AS \"d{i}\""));
            group.push(dimension.clone());
        }
        for (i, measure) in self.measures.iter().enumerate() {
            select.push(format!("{measure} AS \"m{i}\""));
        }
        let mut condition = self.bounds_sql(from, to)?;
        if let Some(filter) = &self.filter {
            condition = format!("{condition} AND ({filter})");
        }
        // GROUP BY repeats the expressions: an output alias could be shadowed
        // by a source column of the same name.
        Ok(format!(
            "SELECT {}\nFROM {}\nWHERE {condition}\nGROUP BY {}\nLIMIT {}",
            select.join(", "),
            self.source_table,
            group.join(", "),
            self.row_limit
        ))
    }

    /// Buckets and SQL of `[start, end)`, with `lookback` extra buckets before
    /// it for rolling windows.
    fn range(&self, (start, end): Span, lookback: usize, field: &str) -> Result<RangePlan> {
        let main = bucket_starts(
            start.with_timezone(&Utc),
            end.with_timezone(&Utc),
            self.granularity,
            self.tz,
        )?;
        let Some(&first) = main.first() else {
            return Err(Error::Internal(
                "a non-empty range produced no buckets".into(),
            ));
        };
        let total = main.len() + lookback;
        if total > MAX_BUCKETS {
            return Err(problem(
                AnalyticsProblem::TooManyPoints,
                format!(
                    "`{field}` needs {total} buckets ({} in the range and {lookback} before it for rolling windows); at most {MAX_BUCKETS} are allowed",
                    main.len()
                ),
            ));
        }
        let mut starts = Vec::with_capacity(total);
        for back in (1..=lookback).rev() {
            starts.push(step(first, self.granularity, self.tz, -(back as i64))?);
        }
        starts.extend(main);
        let nanos = |t: &DateTime<Tz>| {
            t.timestamp_nanos_opt().ok_or_else(|| {
                problem(
                    AnalyticsProblem::InvalidDateRange,
                    format!(
                        "`{field}` reaches beyond 1677–2262, the years nanosecond timestamps cover"
                    ),
                )
            })
        };
        let buckets = starts.iter().map(nanos).collect::<Result<Vec<_>>>()?;
        let from = if lookback > 0 { starts[0] } else { start };
        Ok(RangePlan {
            start: nanos(&start)?,
            end: nanos(&end)?,
            buckets,
            lookback,
            sql: self.sql(from, end, start)?,
        })
    }
}

// ---------------------------------------------------------------------------
// Plan
// ---------------------------------------------------------------------------

/// One range's buckets and query.
#[derive(Debug, Clone)]
struct RangePlan {
    start: i64,
    end: i64,
    /// Bucket starts (UTC nanoseconds), the `lookback` ones before the range first.
    buckets: Vec<i64>,
    lookback: usize,
    sql: String,
}

impl RangePlan {
    fn bucket_count(&self) -> usize {
        self.buckets.len() - self.lookback
    }

    fn shown(&self) -> &[i64] {
        &self.buckets[self.lookback..]
    }
}

#[derive(Debug, Clone)]
struct PlannedMeasure {
    name: String,
    rolling: Option<Rolling>,
}

/// A checked request: its resolved ranges, buckets and SQL.
#[derive(Debug, Clone)]
pub struct TimeseriesPlan {
    tz: Tz,
    granularity: Granularity,
    fill: Fill,
    time_format: TimeFormat,
    max_points: Option<usize>,
    dimensions: Vec<String>,
    measures: Vec<PlannedMeasure>,
    main: RangePlan,
    comparison: Option<RangePlan>,
    row_limit: usize,
}

impl TimeseriesPlan {
    /// The query of the main range. Output columns: `__bucket` (the bucket
    /// start), `d0`, `d1`, ... (dimensions), `m0`, `m1`, ... (measures).
    pub fn sql(&self) -> &str {
        &self.main.sql
    }

    /// The same query over the comparison range, if one was asked for.
    pub fn compare_sql(&self) -> Option<&str> {
        self.comparison.as_ref().map(|c| c.sql.as_str())
    }

    /// Buckets of the main range (without those read for rolling windows).
    pub fn bucket_count(&self) -> usize {
        self.main.bucket_count()
    }

    /// The main range, `[from, to)`, in the request's time zone.
    pub fn range(&self) -> (DateTime<Tz>, DateTime<Tz>) {
        (self.local(self.main.start), self.local(self.main.end))
    }

    /// The comparison range, `[from, to)`, if one was asked for.
    pub fn compare_range(&self) -> Option<(DateTime<Tz>, DateTime<Tz>)> {
        self.comparison
            .as_ref()
            .map(|c| (self.local(c.start), self.local(c.end)))
    }

    /// The request's time zone.
    pub fn timezone(&self) -> Tz {
        self.tz
    }

    fn local(&self, nanos: i64) -> DateTime<Tz> {
        DateTime::from_timestamp_nanos(nanos).with_timezone(&self.tz)
    }

    fn point(&self, nanos: i64) -> TimePoint {
        TimePoint {
            nanos,
            tz: self.tz,
            format: self.time_format,
        }
    }

    fn time_range(&self, range: &RangePlan) -> TimeRange {
        TimeRange {
            from: self.point(range.start),
            to: self.point(range.end),
        }
    }
}

/// Checks `req` against the source's `schema` and writes its SQL over
/// `source_table` (an already quoted table reference). Relative ranges are
/// resolved against `now`.
pub fn plan(
    req: &TimeseriesRequest,
    schema: &Schema,
    source_table: &str,
    now: DateTime<Utc>,
) -> Result<TimeseriesPlan> {
    let tz: Tz = req.timezone.trim().parse().map_err(|_| {
        problem(
            AnalyticsProblem::InvalidTimezone,
            format!(
                "`timezone` `{}` is not an IANA time zone name such as `Europe/Berlin` or `UTC`",
                req.timezone
            ),
        )
    })?;
    let granularity = Granularity::parse(&req.granularity)?;
    let time_type = column_type(schema, &req.time_column, "`time_column`")?;
    if !matches!(
        time_type,
        DataType::Timestamp(..) | DataType::Date32 | DataType::Date64
    ) {
        return Err(problem(
            AnalyticsProblem::InvalidTimeColumn,
            format!(
                "column `{}` is {time_type}, not a timestamp or date",
                req.time_column
            ),
        ));
    }
    if req.measures.is_empty() {
        return Err(problem(
            AnalyticsProblem::InvalidMeasure,
            "`measures` is empty: ask for at least one, such as {\"agg\": \"count\"}",
        ));
    }
    let mut dimensions: Vec<String> = Vec::with_capacity(req.dimensions.len());
    for dimension in &req.dimensions {
        column_type(schema, dimension, "dimension")?;
        // Grouping by a column twice changes nothing; keep one.
        if !dimensions.contains(dimension) {
            dimensions.push(dimension.clone());
        }
    }
    let mut measures: Vec<PlannedMeasure> = Vec::with_capacity(req.measures.len());
    let mut measure_sql = Vec::with_capacity(req.measures.len());
    for measure in &req.measures {
        let (name, sql) = plan_measure(measure, schema)?;
        if measures.iter().any(|m| m.name == name) {
            return Err(problem(
                AnalyticsProblem::InvalidMeasure,
                format!("two measures are named `{name}`: give one another `name`"),
            ));
        }
        if let Some(rolling) = measure.rolling
            && !(1..=MAX_BUCKETS).contains(&rolling.window)
        {
            return Err(problem(
                AnalyticsProblem::InvalidMeasure,
                format!(
                    "measure `{name}`: `rolling.window` must be between 1 and {MAX_BUCKETS} buckets"
                ),
            ));
        }
        measures.push(PlannedMeasure {
            name,
            rolling: measure.rolling,
        });
        measure_sql.push(sql);
    }
    if let Some(max_points) = req.max_points
        && max_points < 3
    {
        return Err(problem(
            AnalyticsProblem::TooManyPoints,
            format!(
                "`max_points` must be at least 3 (downsampling keeps the first and last point); it is {max_points}"
            ),
        ));
    }
    let filter = req
        .filters
        .as_ref()
        .map(|f| filter_sql(f, schema, tz))
        .transpose()?;
    let main_span = resolve_range(&req.date_range, tz, now)?;
    let compare_span = req
        .compare_to
        .as_ref()
        .map(|c| comparison_range(c, main_span, granularity, tz))
        .transpose()?;
    let lookback = measures
        .iter()
        .filter_map(|m| m.rolling)
        .map(|r| r.window - 1)
        .max()
        .unwrap_or(0);
    // Every result row carries one value per measure, so more rows than this
    // already mean more than MAX_CELLS values; the LIMIT keeps such an answer
    // from being materialized only to be refused.
    let row_limit = MAX_CELLS / measures.len() + 1;
    let query = Query {
        source_table,
        time_column: quote_ident(&req.time_column),
        time_type: time_type.clone(),
        tz,
        granularity,
        dimensions: dimensions
            .iter()
            .map(String::as_str)
            .map(quote_ident)
            .collect(),
        measures: measure_sql,
        filter,
        row_limit,
    };
    let main = query.range(main_span, lookback, "date_range")?;
    let comparison = compare_span
        .map(|span| query.range(span, lookback, "compare_to"))
        .transpose()?;
    let buckets = main.buckets.len() + comparison.as_ref().map_or(0, |c| c.buckets.len());
    let cells = buckets.saturating_mul(measures.len());
    if cells > MAX_CELLS {
        return Err(problem(
            AnalyticsProblem::TooManyPoints,
            format!(
                "{} measures over {buckets} buckets are {cells} values per series; at most {MAX_CELLS} are allowed",
                measures.len()
            ),
        ));
    }
    Ok(TimeseriesPlan {
        tz,
        granularity,
        fill: req.fill,
        time_format: req.time_format,
        max_points: req.max_points,
        dimensions,
        measures,
        main,
        comparison,
        row_limit,
    })
}

// ---------------------------------------------------------------------------
// Response
// ---------------------------------------------------------------------------

/// The answer: one array per series and measure, ready for a chart.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct TimeseriesResponse {
    /// The granularity, normalized (`hour`, `15 minutes`, `day`).
    pub granularity: String,
    /// The time zone buckets and times are in.
    pub timezone: String,
    /// The resolved range, `to` exclusive.
    pub range: TimeRange,
    /// Buckets in the range (before downsampling).
    pub buckets: usize,
    /// How gaps were filled.
    pub fill: Fill,
    /// Whether series were downsampled to `max_points`.
    pub downsampled: bool,
    /// Result rows that fell on no bucket of the range and were left out.
    pub dropped_rows: u64,
    /// Measure names, in request order.
    pub measures: Vec<String>,
    /// Dimension names, in request order.
    pub dimensions: Vec<String>,
    /// Sorted by dimension values (nulls first), then by measure.
    pub series: Vec<Series>,
    /// The same series over the comparison range, index-aligned with `series`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comparison: Option<Comparison>,
    /// Whether the answer came from the cache (set by the runner).
    pub cached: bool,
    /// The dataset version answered from (set by the runner).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dataset_version: Option<i64>,
}

/// One measure for one combination of dimension values.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Series {
    /// The measure's name.
    pub measure: String,
    /// Dimension name to value (null allowed).
    pub dimensions: Map<String, Value>,
    /// Bucket starts; all buckets unless downsampled.
    #[schema(schema_with = time_axis_schema)]
    pub time: TimeAxis,
    /// The values, index-aligned with `time`.
    pub values: Vec<Option<f64>>,
}

/// The comparison range's series.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Comparison {
    /// The resolved comparison range, `to` exclusive.
    pub range: TimeRange,
    /// Buckets in the comparison range.
    pub buckets: usize,
    /// One per main series, in the same order. Without downsampling, value `i`
    /// is bucket `i` of the comparison range; downsampling picks each series'
    /// points on its own, so then `time` says which buckets were kept.
    pub series: Vec<Series>,
}

/// A range `[from, to)`.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct TimeRange {
    /// Its first instant.
    #[schema(schema_with = time_point_schema)]
    pub from: TimePoint,
    /// The instant after its last.
    #[schema(schema_with = time_point_schema)]
    pub to: TimePoint,
}

/// An instant, written in the request's `time_format`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TimePoint {
    nanos: i64,
    tz: Tz,
    format: TimeFormat,
}

impl TimePoint {
    /// Nanoseconds since the Unix epoch.
    pub fn epoch_nanos(&self) -> i64 {
        self.nanos
    }
}

impl Serialize for TimePoint {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        match self.format {
            TimeFormat::Iso => serializer.serialize_str(&iso_time(self.nanos, self.tz)),
            TimeFormat::EpochMs => serializer.serialize_i64(self.nanos.div_euclid(NANOS_PER_MILLI)),
        }
    }
}

/// A series' instants, written in the request's `time_format`.
#[derive(Debug, Clone, PartialEq)]
pub struct TimeAxis {
    nanos: Vec<i64>,
    tz: Tz,
    format: TimeFormat,
}

impl TimeAxis {
    /// Nanoseconds since the Unix epoch.
    pub fn epoch_nanos(&self) -> &[i64] {
        &self.nanos
    }
}

impl Serialize for TimeAxis {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.nanos.len()))?;
        for &nanos in &self.nanos {
            match self.format {
                TimeFormat::Iso => seq.serialize_element(&iso_time(nanos, self.tz))?,
                TimeFormat::EpochMs => seq.serialize_element(&nanos.div_euclid(NANOS_PER_MILLI))?,
            }
        }
        seq.end()
    }
}

/// The schema of an instant as answers write it: RFC 3339 text in the
/// request's zone, or epoch milliseconds (`time_format`).
fn time_point_schema() -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, OneOfBuilder, SchemaFormat, Type};
    OneOfBuilder::new()
        .item(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime))),
        )
        .item(
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64))),
        )
        .build()
        .into()
}

/// The schema of a series' instants: an array of [`time_point_schema`].
fn time_axis_schema() -> utoipa::openapi::schema::Array {
    utoipa::openapi::schema::ArrayBuilder::new()
        .items(utoipa::openapi::RefOr::T(time_point_schema()))
        .build()
}

fn iso_time(nanos: i64, tz: Tz) -> String {
    DateTime::from_timestamp_nanos(nanos)
        .with_timezone(&tz)
        .to_rfc3339_opts(SecondsFormat::AutoSi, false)
}

impl TimeseriesResponse {
    /// The answer in long format for Arrow IPC: `time` (milliseconds, in the
    /// answer's zone), one text column per dimension (strings as they are,
    /// other values as JSON), one float column per measure; one row per
    /// series and kept time. With a comparison, a leading `period` column says
    /// `main` or `comparison`.
    pub fn to_record_batch(&self) -> Result<RecordBatch> {
        let with_period = self.comparison.is_some();
        let mut names: Vec<&str> = Vec::new();
        if with_period {
            names.push("period");
        }
        names.push("time");
        names.extend(self.dimensions.iter().map(String::as_str));
        names.extend(self.measures.iter().map(String::as_str));
        for (i, name) in names.iter().enumerate() {
            if names[..i].contains(name) {
                return Err(Error::InvalidInput(format!(
                    "`{name}` names two columns of the Arrow answer; rename the measure or ask for JSON"
                )));
            }
        }

        let mut periods: Vec<&str> = Vec::new();
        let mut times: Vec<i64> = Vec::new();
        let mut dimension_columns: Vec<Vec<Option<String>>> =
            vec![Vec::new(); self.dimensions.len()];
        let mut measure_columns: Vec<Vec<Option<f64>>> = vec![Vec::new(); self.measures.len()];
        let mut parts = vec![("main", self.series.as_slice())];
        if let Some(comparison) = &self.comparison {
            parts.push(("comparison", comparison.series.as_slice()));
        }
        for (period, series) in parts {
            // Series come sorted by dimensions, so one combination's measures are adjacent.
            for group in series.chunk_by(|a, b| a.dimensions == b.dimensions) {
                let mut rows: BTreeMap<i64, Vec<Option<f64>>> = BTreeMap::new();
                for one in group {
                    let m = self
                        .measures
                        .iter()
                        .position(|name| *name == one.measure)
                        .ok_or_else(|| {
                            Error::Internal(format!(
                                "a series of unknown measure `{}`",
                                one.measure
                            ))
                        })?;
                    for (&t, &value) in one.time.nanos.iter().zip(&one.values) {
                        rows.entry(t)
                            .or_insert_with(|| vec![None; self.measures.len()])[m] = value;
                    }
                }
                let texts: Vec<Option<String>> = self
                    .dimensions
                    .iter()
                    .map(|d| {
                        group
                            .first()
                            .and_then(|s| s.dimensions.get(d))
                            .and_then(dimension_text)
                    })
                    .collect();
                for (t, values) in rows {
                    periods.push(period);
                    times.push(t.div_euclid(NANOS_PER_MILLI));
                    for (column, text) in dimension_columns.iter_mut().zip(&texts) {
                        column.push(text.clone());
                    }
                    for (column, value) in measure_columns.iter_mut().zip(values) {
                        column.push(value);
                    }
                }
            }
        }

        let mut fields = Vec::with_capacity(names.len());
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(names.len());
        if with_period {
            fields.push(Field::new("period", DataType::Utf8, false));
            columns.push(Arc::new(StringArray::from(periods)));
        }
        fields.push(Field::new(
            "time",
            DataType::Timestamp(TimeUnit::Millisecond, Some(self.timezone.as_str().into())),
            false,
        ));
        columns.push(Arc::new(
            TimestampMillisecondArray::from(times).with_timezone(self.timezone.as_str()),
        ));
        for (name, column) in self.dimensions.iter().zip(dimension_columns) {
            fields.push(Field::new(name, DataType::Utf8, true));
            columns.push(Arc::new(StringArray::from(column)));
        }
        for (name, column) in self.measures.iter().zip(measure_columns) {
            fields.push(Field::new(name, DataType::Float64, true));
            columns.push(Arc::new(Float64Array::from(column)));
        }
        RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).map_err(arrow_error)
    }
}

fn dimension_text(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(text) => Some(text.clone()),
        other => Some(other.to_string()),
    }
}

// ---------------------------------------------------------------------------
// Assembly
// ---------------------------------------------------------------------------

/// Per measure, one value per bucket (lookback included).
type Columns = Vec<Vec<Option<f64>>>;

struct Collected {
    groups: HashMap<Vec<Value>, Columns>,
    dropped: u64,
}

fn result_column<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a ArrayRef> {
    batch
        .column_by_name(name)
        .ok_or_else(|| Error::Internal(format!("the time series result has no column `{name}`")))
}

fn too_many_values() -> Error {
    problem(
        AnalyticsProblem::TooManyPoints,
        format!(
            "the answer would hold more than {MAX_CELLS} values: use fewer dimensions or measures, a coarser granularity or a shorter range"
        ),
    )
}

fn collect_rows(
    plan: &TimeseriesPlan,
    range: &RangePlan,
    batches: &[RecordBatch],
) -> Result<Collected> {
    let index: HashMap<i64, usize> = range
        .buckets
        .iter()
        .enumerate()
        .map(|(i, &b)| (b, i))
        .collect();
    let mut groups: HashMap<Vec<Value>, Columns> = HashMap::new();
    let mut dropped = 0;
    let mut rows = 0;
    for batch in batches {
        rows += batch.num_rows();
        if rows >= plan.row_limit {
            return Err(too_many_values());
        }
        let buckets = bucket_nanos(result_column(batch, "__bucket")?)?;
        let dimensions = (0..plan.dimensions.len())
            .map(|i| json_values(result_column(batch, &format!("d{i}"))?))
            .collect::<Result<Vec<_>>>()?;
        let measures = (0..plan.measures.len())
            .map(|i| measure_values(result_column(batch, &format!("m{i}"))?))
            .collect::<Result<Vec<_>>>()?;
        for (row, bucket) in buckets.iter().enumerate() {
            let Some(&slot) = bucket.and_then(|b| index.get(&b)) else {
                dropped += 1;
                continue;
            };
            let key: Vec<Value> = dimensions.iter().map(|d| d[row].clone()).collect();
            // Refuse a new series before allocating it: its columns are what costs.
            let cells = (groups.len() + 1) * range.buckets.len() * plan.measures.len();
            if !groups.contains_key(&key) && cells > MAX_CELLS {
                return Err(too_many_values());
            }
            if groups.len() == MAX_SERIES && !groups.contains_key(&key) {
                return Err(problem(
                    AnalyticsProblem::TooManyPoints,
                    format!(
                        "the dimensions have more than {MAX_SERIES} combinations of values; at most {MAX_SERIES} series are allowed: filter, or use fewer dimensions"
                    ),
                ));
            }
            let values = groups
                .entry(key)
                .or_insert_with(|| vec![vec![None; range.buckets.len()]; plan.measures.len()]);
            for (column, measure) in values.iter_mut().zip(&measures) {
                column[slot] = measure[row];
            }
        }
    }
    Ok(Collected { groups, dropped })
}

/// Raw values of a timestamp array (in its own unit).
fn timestamp_raw(array: &ArrayRef) -> Result<Vec<Option<i64>>> {
    let raw = cast(array, &DataType::Int64).map_err(arrow_error)?;
    Ok(raw.as_primitive::<Int64Type>().iter().collect())
}

fn unit_nanos(unit: TimeUnit) -> i64 {
    match unit {
        TimeUnit::Second => NANOS_PER_SECOND,
        TimeUnit::Millisecond => NANOS_PER_MILLI,
        TimeUnit::Microsecond => 1_000,
        TimeUnit::Nanosecond => 1,
    }
}

/// Bucket starts as UTC nanoseconds; zoned or naive, Arrow stores the
/// instant, and naive buckets are taken as UTC.
fn bucket_nanos(array: &ArrayRef) -> Result<Vec<Option<i64>>> {
    let DataType::Timestamp(unit, _) = array.data_type() else {
        return Err(Error::Internal(format!(
            "the time series bucket came back as {}",
            array.data_type()
        )));
    };
    let factor = unit_nanos(*unit);
    Ok(timestamp_raw(array)?
        .into_iter()
        .map(|v| v.and_then(|v| v.checked_mul(factor)))
        .collect())
}

/// A measure column as floats; timestamps and dates (from min and max) as epoch milliseconds.
fn measure_values(array: &ArrayRef) -> Result<Vec<Option<f64>>> {
    Ok(match array.data_type() {
        DataType::Timestamp(unit, _) => {
            let factor = unit_nanos(*unit);
            timestamp_raw(array)?
                .into_iter()
                .map(|v| {
                    v.map(|v| {
                        (i128::from(v) * i128::from(factor)).div_euclid(i128::from(NANOS_PER_MILLI))
                            as f64
                    })
                })
                .collect()
        }
        DataType::Date32 => array
            .as_primitive::<Date32Type>()
            .iter()
            .map(|d| d.map(|d| (i64::from(d) * MILLIS_PER_DAY) as f64))
            .collect(),
        DataType::Date64 => array
            .as_primitive::<Date64Type>()
            .iter()
            .map(|d| d.map(|d| d as f64))
            .collect(),
        t if t.is_numeric() || *t == DataType::Null => {
            let floats = cast(array, &DataType::Float64).map_err(arrow_error)?;
            floats.as_primitive::<Float64Type>().iter().collect()
        }
        other => {
            return Err(Error::Internal(format!(
                "a time series measure came back as {other}"
            )));
        }
    })
}

/// Dimension values as JSON: numbers and booleans as themselves, text as
/// strings, anything else as Arrow displays it.
fn json_values(array: &ArrayRef) -> Result<Vec<Value>> {
    let data_type = array.data_type();
    Ok(match data_type {
        DataType::Dictionary(_, values) => {
            return json_values(&cast(array, values).map_err(arrow_error)?);
        }
        DataType::Null => vec![Value::Null; array.len()],
        DataType::Boolean => array
            .as_boolean()
            .iter()
            .map(|v| v.map_or(Value::Null, Value::Bool))
            .collect(),
        t if t.is_signed_integer() => {
            let ints = cast(array, &DataType::Int64).map_err(arrow_error)?;
            ints.as_primitive::<Int64Type>()
                .iter()
                .map(|v| v.map_or(Value::Null, Value::from))
                .collect()
        }
        t if t.is_unsigned_integer() => {
            let ints = cast(array, &DataType::UInt64).map_err(arrow_error)?;
            ints.as_primitive::<UInt64Type>()
                .iter()
                .map(|v| v.map_or(Value::Null, Value::from))
                .collect()
        }
        t if t.is_floating() => {
            let floats = cast(array, &DataType::Float64).map_err(arrow_error)?;
            floats
                .as_primitive::<Float64Type>()
                .iter()
                .map(|v| {
                    v.map_or(Value::Null, |v| {
                        serde_json::Number::from_f64(v)
                            .map_or_else(|| Value::String(v.to_string()), Value::Number)
                    })
                })
                .collect()
        }
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
            let text = cast(array, &DataType::Utf8).map_err(arrow_error)?;
            text.as_string::<i32>()
                .iter()
                .map(|v| v.map_or(Value::Null, |s| Value::String(s.to_owned())))
                .collect()
        }
        _ => {
            let options = FormatOptions::default();
            let formatter =
                ArrayFormatter::try_new(array.as_ref(), &options).map_err(arrow_error)?;
            (0..array.len())
                .map(|i| {
                    if array.is_null(i) {
                        Value::Null
                    } else {
                        Value::String(formatter.value(i).to_string())
                    }
                })
                .collect()
        }
    })
}

/// Orders JSON values: null, booleans, numbers, strings, then the rest by text.
fn cmp_json(a: &Value, b: &Value) -> Ordering {
    fn rank(v: &Value) -> u8 {
        match v {
            Value::Null => 0,
            Value::Bool(_) => 1,
            Value::Number(_) => 2,
            Value::String(_) => 3,
            Value::Array(_) => 4,
            Value::Object(_) => 5,
        }
    }
    match (a, b) {
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Number(x), Value::Number(y)) => {
            match (x.as_i64(), y.as_i64(), x.as_u64(), y.as_u64()) {
                (Some(x), Some(y), ..) => x.cmp(&y),
                (.., Some(x), Some(y)) => x.cmp(&y),
                _ => {
                    let (x, y) = (
                        x.as_f64().unwrap_or(f64::NAN),
                        y.as_f64().unwrap_or(f64::NAN),
                    );
                    x.total_cmp(&y)
                }
            }
        }
        (Value::String(x), Value::String(y)) => x.cmp(y),
        _ => rank(a)
            .cmp(&rank(b))
            .then_with(|| a.to_string().cmp(&b.to_string())),
    }
}

fn cmp_keys(a: &[Value], b: &[Value]) -> Ordering {
    a.iter()
        .zip(b)
        .map(|(x, y)| cmp_json(x, y))
        .find(|o| o.is_ne())
        .unwrap_or(Ordering::Equal)
}

fn fill_gaps(values: &mut [Option<f64>], fill: Fill) {
    match fill {
        Fill::Null => {}
        Fill::Zero => {
            for value in values.iter_mut() {
                *value = Some(value.unwrap_or(0.0));
            }
        }
        Fill::Previous => {
            let mut last = None;
            for value in values.iter_mut() {
                match *value {
                    Some(v) => last = Some(v),
                    None => *value = last,
                }
            }
        }
        Fill::Linear => {
            let known: Vec<(usize, f64)> = values
                .iter()
                .enumerate()
                .filter_map(|(i, v)| v.map(|v| (i, v)))
                .collect();
            for pair in known.windows(2) {
                let ((i, a), (j, b)) = (pair[0], pair[1]);
                for (k, slot) in values.iter_mut().enumerate().take(j).skip(i + 1) {
                    let t = (k - i) as f64 / (j - i) as f64;
                    *slot = Some(a + (b - a) * t);
                }
            }
        }
    }
}

/// A trailing window of `window` values at each position, nulls skipped; a
/// window of nulls only is null.
fn rolling(values: &[Option<f64>], window: usize, agg: RollingAgg) -> Vec<Option<f64>> {
    match agg {
        RollingAgg::Sum => rolling_sum(values, window, false),
        RollingAgg::Avg => rolling_sum(values, window, true),
        RollingAgg::Min => rolling_extreme(values, window, Ordering::Less),
        RollingAgg::Max => rolling_extreme(values, window, Ordering::Greater),
    }
}

fn rolling_sum(values: &[Option<f64>], window: usize, mean: bool) -> Vec<Option<f64>> {
    let (mut sum, mut count, mut non_finite) = (0.0, 0usize, 0usize);
    let mut out = Vec::with_capacity(values.len());
    for (i, value) in values.iter().enumerate() {
        if let Some(v) = *value {
            count += 1;
            if v.is_finite() {
                sum += v;
            } else {
                non_finite += 1;
            }
        }
        if i >= window
            && let Some(v) = values[i - window]
        {
            count -= 1;
            if v.is_finite() {
                sum -= v;
            } else {
                non_finite -= 1;
            }
        }
        // A running sum cannot take an infinity or NaN back out; such windows
        // are summed afresh.
        let total: f64 = if non_finite > 0 {
            values[(i + 1).saturating_sub(window)..=i]
                .iter()
                .flatten()
                .sum()
        } else {
            sum
        };
        out.push(match count {
            0 => None,
            _ if mean => Some(total / count as f64),
            _ => Some(total),
        });
    }
    out
}

/// Sliding minimum (`keep` = Less) or maximum (Greater) with a monotonic deque.
fn rolling_extreme(values: &[Option<f64>], window: usize, keep: Ordering) -> Vec<Option<f64>> {
    let mut deque: VecDeque<(usize, f64)> = VecDeque::new();
    let mut out = Vec::with_capacity(values.len());
    for (i, value) in values.iter().enumerate() {
        if let Some(v) = *value {
            // Earlier values no better than the new one can never be the answer again.
            while deque
                .back()
                .is_some_and(|&(_, back)| v.total_cmp(&back) != keep.reverse())
            {
                deque.pop_back();
            }
            deque.push_back((i, v));
        }
        while deque.front().is_some_and(|&(j, _)| j + window <= i) {
            deque.pop_front();
        }
        out.push(deque.front().map(|&(_, v)| v));
    }
    out
}

/// Indices of the points Largest-Triangle-Three-Buckets (Steinarsson 2013)
/// keeps: the first, the last, and from each of `threshold - 2` equal slices
/// the point spanning the largest triangle with the previous pick and the
/// next slice's mean.
fn lttb(points: &[(f64, f64)], threshold: usize) -> Vec<usize> {
    let n = points.len();
    if threshold >= n || threshold < 3 {
        return (0..n).collect();
    }
    let every = (n - 2) as f64 / (threshold - 2) as f64;
    let mut kept = Vec::with_capacity(threshold);
    kept.push(0);
    let mut a = 0;
    for i in 0..threshold - 2 {
        let next_start = ((i + 1) as f64 * every) as usize + 1;
        let next_end = (((i + 2) as f64 * every) as usize + 1).min(n);
        let (mean_x, mean_y) = if next_start < next_end {
            let slice = &points[next_start..next_end];
            let len = slice.len() as f64;
            (
                slice.iter().map(|p| p.0).sum::<f64>() / len,
                slice.iter().map(|p| p.1).sum::<f64>() / len,
            )
        } else {
            points[n - 1]
        };
        let start = (i as f64 * every) as usize + 1;
        let end = (((i + 1) as f64 * every) as usize + 1).min(n - 1);
        let (ax, ay) = points[a];
        let mut best = start;
        let mut best_area = -1.0;
        for (j, &(x, y)) in points.iter().enumerate().take(end).skip(start) {
            let area = ((ax - mean_x) * (y - ay) - (ax - x) * (mean_y - ay)).abs();
            if area > best_area {
                best_area = area;
                best = j;
            }
        }
        kept.push(best);
        a = best;
    }
    kept.push(n - 1);
    kept
}

/// Bucket indices to keep of a series longer than `max_points`: LTTB over
/// its non-null points, x being the bucket index.
fn downsample(values: &[Option<f64>], max_points: usize) -> Vec<usize> {
    let present: Vec<(usize, f64)> = values
        .iter()
        .enumerate()
        .filter_map(|(i, v)| v.map(|v| (i, v)))
        .collect();
    let points: Vec<(f64, f64)> = present.iter().map(|&(i, v)| (i as f64, v)).collect();
    lttb(&points, max_points)
        .into_iter()
        .map(|k| present[k].0)
        .collect()
}

/// Fills, rolls and trims one measure's values to the range's own buckets.
fn finish(
    mut values: Vec<Option<f64>>,
    lookback: usize,
    fill: Fill,
    window: Option<Rolling>,
) -> Vec<Option<f64>> {
    match window {
        // The window reaches into the lookback, so it is filled and rolled first.
        Some(window) => {
            fill_gaps(&mut values, fill);
            rolling(&values, window.window, window.agg).split_off(lookback)
        }
        None => {
            let mut shown = values.split_off(lookback);
            fill_gaps(&mut shown, fill);
            shown
        }
    }
}

fn make_series(
    plan: &TimeseriesPlan,
    measure: &str,
    dimensions: &Map<String, Value>,
    times: &[i64],
    values: Vec<Option<f64>>,
) -> Series {
    let (times, values) = match plan.max_points {
        Some(max_points) if values.len() > max_points => {
            let keep = downsample(&values, max_points);
            (
                keep.iter().map(|&i| times[i]).collect(),
                keep.iter().map(|&i| values[i]).collect(),
            )
        }
        _ => (times.to_vec(), values),
    };
    Series {
        measure: measure.to_owned(),
        dimensions: dimensions.clone(),
        time: TimeAxis {
            nanos: times,
            tz: plan.tz,
            format: plan.time_format,
        },
        values,
    }
}

/// Turns the rows of [`TimeseriesPlan::sql`] (and of
/// [`TimeseriesPlan::compare_sql`], when the plan has a comparison) into the
/// answer. Rows whose bucket is not one of the range's are counted in
/// `dropped_rows`.
pub fn assemble(
    plan: &TimeseriesPlan,
    batches: &[RecordBatch],
    compare_batches: Option<&[RecordBatch]>,
) -> Result<TimeseriesResponse> {
    let mut main = collect_rows(plan, &plan.main, batches)?;
    let mut comparison = match (&plan.comparison, compare_batches) {
        (Some(range), Some(batches)) => Some((range, collect_rows(plan, range, batches)?)),
        (None, None) => None,
        (Some(_), None) => {
            return Err(Error::Internal(
                "the plan has a comparison but no comparison rows were given".into(),
            ));
        }
        (None, Some(_)) => {
            return Err(Error::Internal(
                "comparison rows were given but the plan has no comparison".into(),
            ));
        }
    };

    let mut keys: Vec<Vec<Value>> = main.groups.keys().cloned().collect();
    if let Some((_, other)) = &comparison {
        keys.extend(
            other
                .groups
                .keys()
                .filter(|k| !main.groups.contains_key(*k))
                .cloned(),
        );
    }
    if keys.is_empty() && plan.dimensions.is_empty() {
        // Without dimensions there is always the one series, empty or not.
        keys.push(Vec::new());
    }
    if keys.len() > MAX_SERIES {
        return Err(problem(
            AnalyticsProblem::TooManyPoints,
            format!(
                "the dimensions have {} combinations of values; at most {MAX_SERIES} series are allowed: filter, or use fewer dimensions",
                keys.len()
            ),
        ));
    }
    let buckets = plan.main.buckets.len() + comparison.as_ref().map_or(0, |(r, _)| r.buckets.len());
    if keys
        .len()
        .saturating_mul(plan.measures.len())
        .saturating_mul(buckets)
        > MAX_CELLS
    {
        return Err(too_many_values());
    }
    keys.sort_by(|a, b| cmp_keys(a, b));

    let dropped_rows = main.dropped + comparison.as_ref().map_or(0, |(_, c)| c.dropped);
    let empty = |buckets: usize| vec![vec![None; buckets]; plan.measures.len()];
    let mut series = Vec::with_capacity(keys.len() * plan.measures.len());
    let mut compare_series = Vec::new();
    for key in keys {
        let main_values = main
            .groups
            .remove(&key)
            .unwrap_or_else(|| empty(plan.main.buckets.len()));
        let mut compare_values = comparison.as_mut().map(|(range, collected)| {
            collected
                .groups
                .remove(&key)
                .unwrap_or_else(|| empty(range.buckets.len()))
                .into_iter()
        });
        let dimensions: Map<String, Value> = plan.dimensions.iter().cloned().zip(key).collect();
        for (measure, values) in plan.measures.iter().zip(main_values) {
            let values = finish(values, plan.main.lookback, plan.fill, measure.rolling);
            series.push(make_series(
                plan,
                &measure.name,
                &dimensions,
                plan.main.shown(),
                values,
            ));
            if let (Some((range, _)), Some(values)) = (
                &comparison,
                compare_values.as_mut().and_then(Iterator::next),
            ) {
                let values = finish(values, range.lookback, plan.fill, measure.rolling);
                compare_series.push(make_series(
                    plan,
                    &measure.name,
                    &dimensions,
                    range.shown(),
                    values,
                ));
            }
        }
    }

    Ok(TimeseriesResponse {
        granularity: plan.granularity.to_string(),
        timezone: plan.tz.name().to_owned(),
        range: plan.time_range(&plan.main),
        buckets: plan.bucket_count(),
        fill: plan.fill,
        downsampled: plan
            .max_points
            .is_some_and(|max_points| plan.bucket_count() > max_points),
        dropped_rows,
        measures: plan.measures.iter().map(|m| m.name.clone()).collect(),
        dimensions: plan.dimensions.clone(),
        series,
        comparison: comparison.map(|(range, _)| Comparison {
            range: plan.time_range(range),
            buckets: range.bucket_count(),
            series: compare_series,
        }),
        cached: false,
        dataset_version: None,
    })
}

#[cfg(test)]
mod tests {
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
        let autumn =
            bucket_starts(berlin(2026, 10, 25), berlin(2026, 10, 26), hour, Berlin).unwrap();
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
            r#"date_trunc('day', arrow_cast("ts", 'Timestamp(Nanosecond, Some("Europe/Berlin"))')) AS "__bucket""#,
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
            r#"GROUP BY date_trunc('day', arrow_cast("ts", 'Timestamp(Nanosecond, Some("Europe/Berlin"))')), "device", "we""ird""#,
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
            r#"date_bin(INTERVAL '3600 seconds', "ts", arrow_cast(TIMESTAMP '2026-01-01T00:00:00Z', 'Timestamp(Nanosecond, Some("UTC"))')) AS "__bucket""#
        ), "{}", plan.sql());
        assert_eq!(plan.bucket_count(), 5 * 24);

        let naive = planned(json!({"granularity": "15 minutes", "time_column": "naive"}));
        let sql = naive.sql();
        assert!(sql.contains(
            r#"date_bin(INTERVAL '900 seconds', arrow_cast("naive", 'Timestamp(Nanosecond, Some("UTC"))'), "#
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
}
