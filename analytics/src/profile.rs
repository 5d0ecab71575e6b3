//! One-pass table profiling over Arrow record batches.
//!
//! A [`TableProfiler`] per partition fills, for every column, the sketches of
//! [`super::sketch`]: counts and nulls, distinct values (exact while they fit
//! the frequent-items table, HyperLogLog beyond), top values, min and max,
//! moments, a uniform sample for quantiles and histograms, and per kind
//! (numeric, text, temporal, boolean) the extra counts. Profilers merge, and
//! [`TableProfiler::finish`] renders a [`TableProfile`] with ydata-style
//! alerts.
//!
//! Values are hashed column-at-a-time with DataFusion's vectorized hashing;
//! the same hashes feed the distinct counts, the top values and the
//! duplicate-row count.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, LazyLock};

use arrow::array::timezone::Tz;
use arrow::array::{Array, AsArray, BooleanArray, RecordBatch, StringArrayType};
use arrow::buffer::NullBuffer;
use arrow::compute;
use arrow::datatypes::{
    ArrowPrimitiveType, DataType, Date32Type, Date64Type, Decimal128Type, Field, Float32Type,
    Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, SchemaRef, TimeUnit,
    TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
    TimestampSecondType, UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};
use chrono::{DateTime, SecondsFormat, Utc};
use datafusion::common::hash_utils::{HLL_RANDOM_STATE, create_hashes};
use datafusion::common::{DataFusionError, Result};
use regex::Regex;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::sketch::{
    DEFAULT_FREQUENT_CAPACITY, DEFAULT_SAMPLE_CAPACITY, FrequentItems, HyperLogLog, Moments,
    SortedSample, UniformSample,
};

/// Missing values above this percentage of a column's rows raise
/// `high_missing`.
const HIGH_MISSING_PERCENT: f64 = 20.0;
/// |skewness| above this raises `skewed` (ydata-profiling's default).
const SKEWNESS_THRESHOLD: f64 = 20.0;
/// Zeros above this percentage of a column's non-null values raise `zeros`.
const ZEROS_PERCENT: f64 = 10.0;
/// Text and boolean columns with at most this many distinct values are
/// categorical (checked for `imbalanced`); text columns with more may be
/// `high_cardinality`.
const CATEGORICAL_MAX_DISTINCT: u64 = 50;
/// Distinct values above this percentage of non-null values make a text
/// column with many of them `high_cardinality`.
const HIGH_CARDINALITY_PERCENT: f64 = 50.0;
/// Imbalance, 1 − entropy/ln(classes), above this raises `imbalanced`
/// (ydata-profiling's default).
const IMBALANCE_THRESHOLD: f64 = 0.5;
/// Without an exact distinct count, an estimate reaching this share of the
/// non-null values makes a column approximately `unique`.
const APPROX_UNIQUE_SHARE: f64 = 0.99;
/// Text values kept for pattern detection, per partition and in all.
const PATTERN_SAMPLE: usize = 2000;
/// Share of the kept text values a pattern must match to be reported.
const PATTERN_MIN_PERCENT: f64 = 90.0;
/// Quantiles reported, as fractions.
const QUANTILES: [f64; 7] = [0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99];
/// Row hashes are kept in this many buckets by their top byte, so counting
/// distinct rows sorts small independent pieces in parallel.
const ROW_BUCKETS: usize = 256;
/// Below this many rows, distinct rows are counted on the calling thread:
/// spawning would cost more than the sort.
const PARALLEL_DISTINCT_MIN: usize = 1 << 16;
/// Where every row hash starts before its columns are folded in.
const ROW_SEED: u64 = 0x243f_6a88_85a3_08d3;
/// Boolean values are not hashed through DataFusion: two fixed keys serve.
const TRUE_HASH: u64 = 0x9e37_79b9_7f4a_7c15;
/// See [`TRUE_HASH`].
const FALSE_HASH: u64 = 0xc2b2_ae3d_27d4_eb4f;
/// Separates partition numbers from column numbers in the seeds.
const PARTITION_SALT: u64 = 0x5851_f42d_4c95_7f2d;
/// Milliseconds in a day, for `Date64`.
const MILLIS_PER_DAY: i64 = 86_400_000;

/// What a profile computes and how precisely.
#[derive(Debug, Clone, PartialEq)]
pub struct ProfileOptions {
    /// Most frequent values reported per column.
    pub top_k: usize,
    /// Bins of numeric and temporal histograms.
    pub histogram_bins: usize,
    /// Values sampled per column for quantiles and histograms; quantiles
    /// are exact for columns with at most this many values.
    pub sample_size: usize,
    /// Distinct values per column counted exactly; beyond, distinct counts
    /// are HyperLogLog estimates and top values approximate.
    pub frequent_capacity: usize,
    /// Tables with more rows get no duplicate-row count (it keeps 8 bytes
    /// per row in memory).
    pub max_rows_for_duplicates: u64,
    /// Seeds the sampling, so a profile is reproducible.
    pub seed: u64,
}

impl Default for ProfileOptions {
    fn default() -> Self {
        Self {
            top_k: 10,
            histogram_bins: 20,
            sample_size: DEFAULT_SAMPLE_CAPACITY,
            frequent_capacity: DEFAULT_FREQUENT_CAPACITY,
            max_rows_for_duplicates: 50_000_000,
            seed: 0,
        }
    }
}

/// A table's profile.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct TableProfile {
    /// Rows profiled.
    pub rows: u64,
    /// Columns profiled.
    pub column_count: usize,
    /// Rows equal to an earlier row, exact up to 64-bit hash collisions;
    /// `None` when the table had too many rows to count them.
    pub duplicate_rows: Option<u64>,
    /// Each column's statistics, in schema order.
    pub columns: Vec<ColumnProfile>,
    /// What looks worth a look: table-level first, then by column.
    pub alerts: Vec<Alert>,
}

/// The broad kind of a column, which decides its statistics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ColumnKind {
    /// Integers, floats and decimals.
    Numeric,
    /// Strings.
    Text,
    /// Dates and timestamps.
    Temporal,
    /// Booleans.
    Boolean,
    /// Anything else (lists, structs, binary, ...): counts and distinct only.
    #[default]
    Other,
}

/// One column's statistics.
///
/// `min`, `max`, quantiles, histogram edges and top values are rendered by
/// kind: numbers for numeric columns (non-finite floats as the strings
/// `"NaN"`, `"inf"`, `"-inf"`), RFC 3339 strings for dates and timestamps
/// (timestamps in the column's time zone, else UTC), strings for text and
/// booleans for booleans.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct ColumnProfile {
    /// The column's name.
    pub name: String,
    /// Its Arrow data type.
    pub data_type: String,
    /// Its kind.
    pub kind: ColumnKind,
    /// Non-null values.
    pub count: u64,
    /// Null values.
    pub nulls: u64,
    /// Nulls as a percentage of rows.
    pub null_percent: f64,
    /// Distinct non-null values.
    pub distinct: u64,
    /// Whether `distinct` is exact (else a HyperLogLog estimate, ±0.8%).
    pub distinct_exact: bool,
    /// Distinct values as a percentage of non-null values.
    pub distinct_percent: f64,
    /// The smallest value (text: lexicographically by bytes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min: Option<Value>,
    /// The largest value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max: Option<Value>,
    /// The mean (numeric).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mean: Option<f64>,
    /// The sample standard deviation (numeric, divisor n − 1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stddev: Option<f64>,
    /// The sample variance (numeric, divisor n − 1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variance: Option<f64>,
    /// The adjusted Fisher–Pearson skewness, as pandas `skew()` (numeric).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skewness: Option<f64>,
    /// The excess kurtosis, as pandas `kurt()` (numeric).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kurtosis: Option<f64>,
    /// The sum (numeric).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sum: Option<f64>,
    /// Quantiles (numeric and temporal), numpy's `linear` method on the
    /// sample.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quantiles: Option<Quantiles>,
    /// Whether the quantiles come from every value (else from a uniform
    /// sample: each within about 1.1 percentage points of rank).
    pub quantiles_exact: bool,
    /// p75 − p25 (numeric).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iqr: Option<f64>,
    /// Equal-width histogram between min and max (numeric and temporal).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub histogram: Option<Histogram>,
    /// The most frequent values, most frequent first.
    pub top_values: Vec<TopValue>,
    /// Whether the top values' counts are exact (else each may fall short by
    /// at most n/(capacity + 1)).
    pub top_values_exact: bool,
    /// Values equal to zero (numeric).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zeros: Option<u64>,
    /// Values below zero (numeric).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub negatives: Option<u64>,
    /// NaN values (floats); they are left out of min, max, moments,
    /// quantiles and histogram.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nan: Option<u64>,
    /// Infinite values (floats), left out likewise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub infinite: Option<u64>,
    /// `true` values (boolean).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub true_count: Option<u64>,
    /// `false` values (boolean).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub false_count: Option<u64>,
    /// Lengths in characters (text).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lengths: Option<LengthStats>,
    /// The pattern most text values match, when at least 90% of a sample
    /// of non-empty values do.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pattern: Option<Pattern>,
    /// Empty strings (text).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub empty_strings: Option<u64>,
}

/// Quantiles of a column, rendered like its values.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct Quantiles {
    /// 1st percentile.
    pub p1: Value,
    /// 5th percentile.
    pub p5: Value,
    /// First quartile.
    pub p25: Value,
    /// Median.
    pub p50: Value,
    /// Third quartile.
    pub p75: Value,
    /// 95th percentile.
    pub p95: Value,
    /// 99th percentile.
    pub p99: Value,
}

/// An equal-width histogram.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct Histogram {
    /// Bin edges, one more than bins, rendered like the column's values.
    pub edges: Vec<Value>,
    /// Values per bin (the last bin includes its upper edge), scaled from
    /// the sample to sum to the non-null count exactly.
    pub counts: Vec<u64>,
}

/// A frequent value.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct TopValue {
    /// The value.
    pub value: Value,
    /// How often it occurs.
    pub count: u64,
}

/// Text lengths in characters.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct LengthStats {
    /// The shortest.
    pub min: u64,
    /// The longest.
    pub max: u64,
    /// The mean.
    pub mean: f64,
}

/// A recognized text pattern.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct Pattern {
    /// `email`, `url`, `uuid`, `ipv4`, `ipv6`, `iso_date`, `iso_datetime`,
    /// `integer_text`, `decimal_text` or `phone`.
    pub name: String,
    /// Percentage of the sampled non-empty values matching it.
    pub percent: f64,
}

/// Something in the data worth a look.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct Alert {
    /// The column concerned; `None` for the table.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
    /// What was found.
    pub kind: AlertKind,
    /// A sentence for people.
    pub message: String,
    /// The measure that raised it (see each [`AlertKind`]).
    pub value: f64,
}

/// Kinds of [`Alert`], after ydata-profiling's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// Every non-null value is the same; the value is the distinct count (1).
    Constant,
    /// Every non-null value differs (approximately, without an exact
    /// distinct count); the value is the distinct percentage.
    Unique,
    /// A text column with many distinct values; the value is the distinct
    /// percentage.
    HighCardinality,
    /// Many nulls; the value is the null percentage.
    HighMissing,
    /// A very skewed numeric column; the value is the skewness.
    Skewed,
    /// A categorical column dominated by few values; the value is the
    /// imbalance, 1 − entropy/ln(distinct).
    Imbalanced,
    /// Many zeros; the value is their percentage of non-null values.
    Zeros,
    /// Rows repeating earlier rows; the value is their percentage of rows.
    Duplicates,
}

/// Profiles the batches of one partition; merge partitions' profilers, then
/// [`finish`](Self::finish).
pub struct TableProfiler {
    rows: u64,
    columns: Vec<ColumnState>,
    top_k: usize,
    histogram_bins: usize,
    max_rows_for_duplicates: u64,
    /// Row hashes by top byte, while duplicates are still counted.
    row_hashes: Option<Vec<Vec<u64>>>,
    /// The current column's value hashes (0 for nulls), reused per batch.
    hashes: Vec<u64>,
    /// The current batch's row hashes, reused per batch.
    row_buffer: Vec<u64>,
    /// The current column's usable values as `f64`, reused per batch.
    floats: Vec<f64>,
}

impl TableProfiler {
    /// A profiler for batches of `schema`; `partition` varies the sampling
    /// seed so partitions sample independently.
    pub fn new(schema: SchemaRef, options: &ProfileOptions, partition: usize) -> Self {
        let base = mix64(options.seed ^ mix64(partition as u64 ^ PARTITION_SALT));
        let columns = schema
            .fields()
            .iter()
            .enumerate()
            .map(|(index, field)| ColumnState::new(field, options, mix64(base ^ index as u64)))
            .collect();
        Self {
            rows: 0,
            columns,
            top_k: options.top_k,
            histogram_bins: options.histogram_bins,
            max_rows_for_duplicates: options.max_rows_for_duplicates,
            row_hashes: Some(vec![Vec::new(); ROW_BUCKETS]),
            hashes: Vec::new(),
            row_buffer: Vec::new(),
            floats: Vec::new(),
        }
    }

    /// Adds a batch of the profiler's schema.
    pub fn update(&mut self, batch: &RecordBatch) -> Result<()> {
        if batch.num_columns() != self.columns.len() {
            return Err(DataFusionError::Execution(format!(
                "profile expects {} columns, a batch has {}",
                self.columns.len(),
                batch.num_columns()
            )));
        }
        let rows = batch.num_rows();
        if rows == 0 {
            return Ok(());
        }
        let total = self.rows + rows as u64;
        if total > self.max_rows_for_duplicates {
            self.row_hashes = None;
        }
        let track_rows = self.row_hashes.is_some();
        if track_rows {
            self.row_buffer.clear();
            self.row_buffer.resize(rows, ROW_SEED);
        }
        for (column, array) in self.columns.iter_mut().zip(batch.columns()) {
            let cast;
            let array: &dyn Array = match array.data_type() {
                DataType::Dictionary(_, value_type) => {
                    cast = compute::cast(array.as_ref(), value_type.as_ref())?;
                    cast.as_ref()
                }
                _ => array.as_ref(),
            };
            column.update(array, &mut self.hashes, &mut self.floats, track_rows)?;
            if track_rows {
                // Mixing after each column makes the row hash depend on
                // which column holds which value, nulls (hash 0) included.
                for (row, &hash) in self.row_buffer.iter_mut().zip(&self.hashes) {
                    *row = mix64(*row ^ hash);
                }
            }
        }
        if let Some(buckets) = &mut self.row_hashes {
            for &hash in &self.row_buffer {
                buckets[(hash >> 56) as usize].push(hash);
            }
        }
        self.rows = total;
        Ok(())
    }

    /// Folds in another partition's profiler of the same schema.
    pub fn merge(&mut self, other: TableProfiler) {
        let rows = self.rows + other.rows;
        self.row_hashes = match (self.row_hashes.take(), other.row_hashes) {
            (Some(mut mine), Some(theirs)) if rows <= self.max_rows_for_duplicates => {
                for (bucket, incoming) in mine.iter_mut().zip(theirs) {
                    bucket.extend(incoming);
                }
                Some(mine)
            }
            _ => None,
        };
        let columns = std::mem::take(&mut self.columns);
        self.columns = columns
            .into_iter()
            .zip(other.columns)
            .map(|(mine, theirs)| mine.merge(theirs))
            .collect();
        self.rows = rows;
    }

    /// Rows seen so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// The profile. Counting duplicate rows sorts the row hashes on all
    /// available cores.
    pub fn finish(self) -> TableProfile {
        let rows = self.rows;
        let (top_k, bins) = (self.top_k, self.histogram_bins);
        let duplicate_rows = self
            .row_hashes
            .map(|buckets| rows - count_distinct(buckets));
        let finished: Vec<(ColumnProfile, Option<f64>)> = self
            .columns
            .into_iter()
            .map(|column| column.finish(top_k, bins))
            .collect();
        let mut alerts = Vec::new();
        if let Some(duplicates) = duplicate_rows
            && duplicates > 0
        {
            let share = percent(duplicates, rows);
            alerts.push(Alert {
                column: None,
                kind: AlertKind::Duplicates,
                message: format!("{duplicates} rows ({share:.1}%) repeat an earlier row"),
                value: share,
            });
        }
        for (column, imbalance) in &finished {
            column_alerts(column, *imbalance, &mut alerts);
        }
        let columns: Vec<ColumnProfile> = finished.into_iter().map(|(c, _)| c).collect();
        TableProfile {
            rows,
            column_count: columns.len(),
            duplicate_rows,
            columns,
            alerts,
        }
    }
}

/// How many distinct hashes the buckets hold, sorting them in parallel.
fn count_distinct(mut buckets: Vec<Vec<u64>>) -> u64 {
    let total: usize = buckets.iter().map(Vec::len).sum();
    let threads = if total < PARALLEL_DISTINCT_MIN {
        1
    } else {
        std::thread::available_parallelism().map_or(1, usize::from)
    };
    if threads <= 1 {
        return buckets
            .iter_mut()
            .map(|bucket| distinct_in(bucket.as_mut_slice()))
            .sum();
    }
    let per_thread = buckets.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let workers: Vec<_> = buckets
            .chunks_mut(per_thread)
            .map(|chunk| {
                scope.spawn(move || {
                    chunk
                        .iter_mut()
                        .map(|bucket| distinct_in(bucket.as_mut_slice()))
                        .sum::<u64>()
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|worker| {
                worker
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .sum()
    })
}

/// Distinct values of a bucket, which it sorts.
fn distinct_in(bucket: &mut [u64]) -> u64 {
    if bucket.is_empty() {
        return 0;
    }
    bucket.sort_unstable();
    1 + bucket.windows(2).filter(|pair| pair[0] != pair[1]).count() as u64
}

/// The alerts of one column.
fn column_alerts(column: &ColumnProfile, imbalance: Option<f64>, alerts: &mut Vec<Alert>) {
    let name = &column.name;
    let mut raise = |kind: AlertKind, value: f64, message: String| {
        alerts.push(Alert {
            column: Some(name.clone()),
            kind,
            message,
            value,
        });
    };
    if column.count > 0 && column.distinct == 1 {
        raise(
            AlertKind::Constant,
            1.0,
            format!("`{name}` has a constant value"),
        );
    }
    let unique = column.count > 1
        && if column.distinct_exact {
            column.distinct == column.count
        } else {
            column.distinct as f64 >= APPROX_UNIQUE_SHARE * column.count as f64
        };
    if unique {
        let message = if column.distinct_exact {
            format!("`{name}` has unique values")
        } else {
            format!("`{name}` has approximately unique values")
        };
        raise(AlertKind::Unique, column.distinct_percent, message);
    }
    if column.kind == ColumnKind::Text
        && !unique
        && column.distinct > CATEGORICAL_MAX_DISTINCT
        && column.distinct_percent > HIGH_CARDINALITY_PERCENT
    {
        raise(
            AlertKind::HighCardinality,
            column.distinct_percent,
            format!(
                "`{name}` has {} distinct values ({:.1}%)",
                column.distinct, column.distinct_percent
            ),
        );
    }
    if column.null_percent > HIGH_MISSING_PERCENT {
        raise(
            AlertKind::HighMissing,
            column.null_percent,
            format!(
                "`{name}` has {} missing values ({:.1}%)",
                column.nulls, column.null_percent
            ),
        );
    }
    if let Some(skewness) = column.skewness
        && skewness.abs() > SKEWNESS_THRESHOLD
    {
        raise(
            AlertKind::Skewed,
            skewness,
            format!("`{name}` is highly skewed (γ1 = {skewness:.1})"),
        );
    }
    if let Some(imbalance) = imbalance
        && imbalance > IMBALANCE_THRESHOLD
    {
        raise(
            AlertKind::Imbalanced,
            imbalance,
            format!("`{name}` is highly imbalanced ({:.0}%)", imbalance * 100.0),
        );
    }
    if let Some(zeros) = column.zeros {
        let share = percent(zeros, column.count);
        if share > ZEROS_PERCENT {
            raise(
                AlertKind::Zeros,
                share,
                format!("`{name}` has {zeros} zeros ({share:.1}%)"),
            );
        }
    }
}

/// 1 − entropy/ln(classes) of a complete value distribution (ydata's
/// imbalance score); `None` for fewer than two classes.
fn imbalance_score(ranked: &[(TopKey, u64)]) -> Option<f64> {
    let total: u64 = ranked.iter().map(|(_, count)| count).sum();
    if ranked.len() < 2 || total == 0 {
        return None;
    }
    let total = total as f64;
    let entropy: f64 = ranked
        .iter()
        .map(|(_, count)| {
            let p = *count as f64 / total;
            -p * p.ln()
        })
        .sum();
    Some(1.0 - entropy / (ranked.len() as f64).ln())
}

/// `part` as a percentage of `whole` (0 when `whole` is 0).
fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 * 100.0 / whole as f64
    }
}

/// The splitmix64 finalizer: a bijective mix of all 64 bits.
fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// How a column's values are read and rendered.
#[derive(Debug, Clone, PartialEq)]
enum Repr {
    /// Any signed or unsigned integer width.
    Integer,
    Float {
        /// `Float32`, rendered by its shortest `f32` form.
        single: bool,
    },
    Decimal {
        scale: i8,
    },
    /// Days since the epoch.
    Date32,
    /// Milliseconds since the epoch.
    Date64,
    Timestamp {
        unit: TimeUnit,
        tz: Option<Arc<str>>,
    },
    Text,
    Boolean,
    Other,
}

impl Repr {
    fn of(data_type: &DataType) -> Self {
        match data_type {
            DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
            | DataType::UInt64 => Self::Integer,
            DataType::Float32 => Self::Float { single: true },
            DataType::Float64 => Self::Float { single: false },
            DataType::Decimal128(_, scale) => Self::Decimal { scale: *scale },
            DataType::Date32 => Self::Date32,
            DataType::Date64 => Self::Date64,
            DataType::Timestamp(unit, tz) => Self::Timestamp {
                unit: *unit,
                tz: tz.clone(),
            },
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => Self::Text,
            DataType::Boolean => Self::Boolean,
            DataType::Dictionary(_, value_type) => Self::of(value_type),
            _ => Self::Other,
        }
    }

    fn kind(&self) -> ColumnKind {
        match self {
            Self::Integer | Self::Float { .. } | Self::Decimal { .. } => ColumnKind::Numeric,
            Self::Date32 | Self::Date64 | Self::Timestamp { .. } => ColumnKind::Temporal,
            Self::Text => ColumnKind::Text,
            Self::Boolean => ColumnKind::Boolean,
            Self::Other => ColumnKind::Other,
        }
    }
}

/// A frequent value as kept by the sketch, rendered at the end.
#[derive(Debug, Clone)]
enum TopKey {
    /// Integers and temporal values.
    Int(i128),
    /// Floats and decimals.
    Float(f64),
    Text(String),
    Bool(bool),
    /// Kinds whose values are not reported.
    Opaque,
}

/// An exact numeric or temporal bound.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Num {
    Int(i128),
    Float(f64),
}

impl Num {
    fn as_f64(self) -> f64 {
        match self {
            Self::Int(v) => v as f64,
            Self::Float(v) => v,
        }
    }

    fn less_than(self, other: Self) -> bool {
        match (self, other) {
            (Self::Int(a), Self::Int(b)) => a < b,
            _ => self.as_f64() < other.as_f64(),
        }
    }
}

fn lower(current: Option<Num>, candidate: Option<Num>) -> Option<Num> {
    match (current, candidate) {
        (Some(a), Some(b)) => Some(if b.less_than(a) { b } else { a }),
        (a, None) => a,
        (None, b) => b,
    }
}

fn higher(current: Option<Num>, candidate: Option<Num>) -> Option<Num> {
    match (current, candidate) {
        (Some(a), Some(b)) => Some(if a.less_than(b) { b } else { a }),
        (a, None) => a,
        (None, b) => b,
    }
}

/// Native values widened to `f64` for moments and the sample.
trait LossyF64: Copy {
    fn lossy_f64(self) -> f64;
}

/// Integer natives widened exactly, for min, max and top values.
trait ExactI128: LossyF64 {
    fn exact_i128(self) -> i128;
}

macro_rules! integer_natives {
    ($($native:ty),*) => {$(
        impl LossyF64 for $native {
            #[inline]
            fn lossy_f64(self) -> f64 {
                self as f64
            }
        }
        impl ExactI128 for $native {
            #[inline]
            fn exact_i128(self) -> i128 {
                i128::from(self)
            }
        }
    )*};
}

integer_natives!(i8, i16, i32, i64, u8, u16, u32, u64);

impl LossyF64 for f32 {
    #[inline]
    fn lossy_f64(self) -> f64 {
        f64::from(self)
    }
}

impl LossyF64 for f64 {
    #[inline]
    fn lossy_f64(self) -> f64 {
        self
    }
}

/// One column's sketches.
struct ColumnState {
    name: String,
    data_type: DataType,
    repr: Repr,
    count: u64,
    nulls: u64,
    hll: HyperLogLog,
    frequent: FrequentItems<TopKey>,
    detail: Detail,
}

/// The kind-specific part of a column's sketches.
enum Detail {
    /// Numeric and temporal columns.
    Numeric(Box<NumericStats>),
    Text(Box<TextStats>),
    Boolean {
        trues: u64,
        falses: u64,
    },
    Other,
}

impl ColumnState {
    fn new(field: &Field, options: &ProfileOptions, seed: u64) -> Self {
        let repr = Repr::of(field.data_type());
        let detail = match repr.kind() {
            ColumnKind::Numeric | ColumnKind::Temporal => {
                Detail::Numeric(Box::new(NumericStats::new(options.sample_size, seed)))
            }
            ColumnKind::Text => Detail::Text(Box::new(TextStats::new())),
            ColumnKind::Boolean => Detail::Boolean {
                trues: 0,
                falses: 0,
            },
            ColumnKind::Other => Detail::Other,
        };
        Self {
            name: field.name().clone(),
            data_type: field.data_type().clone(),
            repr,
            count: 0,
            nulls: 0,
            hll: HyperLogLog::new(),
            frequent: FrequentItems::new(options.frequent_capacity),
            detail,
        }
    }

    /// Adds a column of a batch (dictionaries already decoded). Leaves the
    /// values' hashes in `hashes` (0 for nulls) when `row_hashes_wanted`.
    fn update(
        &mut self,
        array: &dyn Array,
        hashes: &mut Vec<u64>,
        floats: &mut Vec<f64>,
        row_hashes_wanted: bool,
    ) -> Result<()> {
        if Repr::of(array.data_type()) != self.repr {
            return Err(DataFusionError::Execution(format!(
                "column `{}` is {} but a batch holds {}",
                self.name,
                self.data_type,
                array.data_type()
            )));
        }
        let len = array.len();
        let logical_nulls = array.logical_nulls();
        let nulls = logical_nulls.as_ref().filter(|n| n.null_count() > 0);
        let null_count = nulls.map_or(0, NullBuffer::null_count);
        self.nulls += null_count as u64;
        self.count += (len - null_count) as u64;
        hashes.clear();
        hashes.resize(len, 0);
        if self.repr == Repr::Boolean {
            self.update_boolean(array.as_boolean(), nulls, hashes, row_hashes_wanted);
            return Ok(());
        }
        // Nulls keep the buffer's 0; every other slot gets its value's hash.
        create_hashes([array], &HLL_RANDOM_STATE, hashes.as_mut_slice())?;
        let hashes: &[u64] = hashes;
        match array.data_type() {
            DataType::Int8 => self.update_integers::<Int8Type>(array, nulls, hashes, floats),
            DataType::Int16 => self.update_integers::<Int16Type>(array, nulls, hashes, floats),
            DataType::Int32 => self.update_integers::<Int32Type>(array, nulls, hashes, floats),
            DataType::Int64 => self.update_integers::<Int64Type>(array, nulls, hashes, floats),
            DataType::UInt8 => self.update_integers::<UInt8Type>(array, nulls, hashes, floats),
            DataType::UInt16 => self.update_integers::<UInt16Type>(array, nulls, hashes, floats),
            DataType::UInt32 => self.update_integers::<UInt32Type>(array, nulls, hashes, floats),
            DataType::UInt64 => self.update_integers::<UInt64Type>(array, nulls, hashes, floats),
            DataType::Float32 => self.update_floats::<Float32Type>(array, nulls, hashes, floats),
            DataType::Float64 => self.update_floats::<Float64Type>(array, nulls, hashes, floats),
            DataType::Decimal128(_, scale) => {
                self.update_decimal(array, *scale, nulls, hashes, floats);
            }
            DataType::Date32 => self.update_integers::<Date32Type>(array, nulls, hashes, floats),
            DataType::Date64 => self.update_integers::<Date64Type>(array, nulls, hashes, floats),
            DataType::Timestamp(TimeUnit::Second, _) => {
                self.update_integers::<TimestampSecondType>(array, nulls, hashes, floats);
            }
            DataType::Timestamp(TimeUnit::Millisecond, _) => {
                self.update_integers::<TimestampMillisecondType>(array, nulls, hashes, floats);
            }
            DataType::Timestamp(TimeUnit::Microsecond, _) => {
                self.update_integers::<TimestampMicrosecondType>(array, nulls, hashes, floats);
            }
            DataType::Timestamp(TimeUnit::Nanosecond, _) => {
                self.update_integers::<TimestampNanosecondType>(array, nulls, hashes, floats);
            }
            DataType::Utf8 => {
                let strings = array.as_string::<i32>();
                let (min, max) = (compute::min_string(strings), compute::max_string(strings));
                self.update_text(strings, nulls, hashes, min, max);
            }
            DataType::LargeUtf8 => {
                let strings = array.as_string::<i64>();
                let (min, max) = (compute::min_string(strings), compute::max_string(strings));
                self.update_text(strings, nulls, hashes, min, max);
            }
            DataType::Utf8View => {
                let strings = array.as_string_view();
                let (min, max) = (
                    compute::min_string_view(strings),
                    compute::max_string_view(strings),
                );
                self.update_text(strings, nulls, hashes, min, max);
            }
            _ => feed(&mut self.hll, &mut self.frequent, hashes, nulls, |_| {
                TopKey::Opaque
            }),
        }
        Ok(())
    }

    /// Integers, dates and timestamps: exact bounds from their native
    /// values, moments for integers only.
    fn update_integers<T>(
        &mut self,
        array: &dyn Array,
        nulls: Option<&NullBuffer>,
        hashes: &[u64],
        floats: &mut Vec<f64>,
    ) where
        T: ArrowPrimitiveType,
        T::Native: ExactI128,
    {
        let values = array.as_primitive::<T>();
        feed(&mut self.hll, &mut self.frequent, hashes, nulls, |row| {
            TopKey::Int(values.value(row).exact_i128())
        });
        let with_moments = self.repr == Repr::Integer;
        let Detail::Numeric(stats) = &mut self.detail else {
            return;
        };
        if let (Some(low), Some(high)) = (compute::min(values), compute::max(values)) {
            stats.widen(Num::Int(low.exact_i128()), Num::Int(high.exact_i128()));
        }
        collect_valid(values.values(), nulls, floats, |v| v.lossy_f64());
        stats.add_finite(floats, with_moments);
    }

    /// Floats: NaN and infinities are counted, then left out of everything
    /// but distinct and top values.
    fn update_floats<T>(
        &mut self,
        array: &dyn Array,
        nulls: Option<&NullBuffer>,
        hashes: &[u64],
        floats: &mut Vec<f64>,
    ) where
        T: ArrowPrimitiveType,
        T::Native: LossyF64,
    {
        let values = array.as_primitive::<T>();
        feed(&mut self.hll, &mut self.frequent, hashes, nulls, |row| {
            TopKey::Float(values.value(row).lossy_f64())
        });
        let Detail::Numeric(stats) = &mut self.detail else {
            return;
        };
        collect_valid(values.values(), nulls, floats, |v| v.lossy_f64());
        if floats.iter().any(|v| !v.is_finite()) {
            let before = floats.len();
            let nan = floats.iter().filter(|v| v.is_nan()).count();
            floats.retain(|v| v.is_finite());
            stats.nan += nan as u64;
            stats.infinite += (before - floats.len() - nan) as u64;
        }
        if let Some((low, high)) = min_max(floats) {
            stats.widen(Num::Float(low), Num::Float(high));
        }
        stats.add_finite(floats, true);
    }

    /// Decimals, read as `f64` through their scale.
    fn update_decimal(
        &mut self,
        array: &dyn Array,
        scale: i8,
        nulls: Option<&NullBuffer>,
        hashes: &[u64],
        floats: &mut Vec<f64>,
    ) {
        let values = array.as_primitive::<Decimal128Type>();
        let factor = 10f64.powi(i32::from(scale));
        let to_f64 = |v: i128| v as f64 / factor;
        feed(&mut self.hll, &mut self.frequent, hashes, nulls, |row| {
            TopKey::Float(to_f64(values.value(row)))
        });
        let Detail::Numeric(stats) = &mut self.detail else {
            return;
        };
        collect_valid(values.values(), nulls, floats, to_f64);
        if let Some((low, high)) = min_max(floats) {
            stats.widen(Num::Float(low), Num::Float(high));
        }
        stats.add_finite(floats, true);
    }

    fn update_text<'a, A>(
        &mut self,
        strings: A,
        nulls: Option<&NullBuffer>,
        hashes: &[u64],
        min: Option<&str>,
        max: Option<&str>,
    ) where
        A: StringArrayType<'a> + Copy,
    {
        feed(&mut self.hll, &mut self.frequent, hashes, nulls, |row| {
            TopKey::Text(kept_text(strings.value(row)))
        });
        if let Detail::Text(stats) = &mut self.detail {
            stats.update(strings, nulls, hashes.len(), min, max);
        }
    }

    /// Booleans need no hashing: their counts come from the bitmaps and two
    /// fixed keys stand for the values.
    fn update_boolean(
        &mut self,
        booleans: &BooleanArray,
        nulls: Option<&NullBuffer>,
        hashes: &mut [u64],
        row_hashes_wanted: bool,
    ) {
        let trues = booleans.true_count() as u64;
        let falses = booleans.false_count() as u64;
        // Keys enter in order of first appearance, as hashed columns' do.
        let first = booleans.iter().flatten().next();
        let order = if first == Some(false) {
            [(false, falses), (true, trues)]
        } else {
            [(true, trues), (false, falses)]
        };
        for (value, count) in order {
            if count > 0 {
                let hash = bool_hash(value);
                self.hll.insert_hash(hash);
                self.frequent.insert(hash, count, || TopKey::Bool(value));
            }
        }
        if let Detail::Boolean {
            trues: all_trues,
            falses: all_falses,
        } = &mut self.detail
        {
            *all_trues += trues;
            *all_falses += falses;
        }
        if row_hashes_wanted {
            for_each_valid(booleans.len(), nulls, |row| {
                hashes[row] = bool_hash(booleans.value(row));
            });
        }
    }

    fn merge(mut self, other: Self) -> Self {
        self.count += other.count;
        self.nulls += other.nulls;
        self.hll.merge(&other.hll);
        self.frequent.merge(other.frequent);
        self.detail = match (self.detail, other.detail) {
            (Detail::Numeric(mine), Detail::Numeric(theirs)) => {
                Detail::Numeric(Box::new((*mine).merge(*theirs)))
            }
            (Detail::Text(mut mine), Detail::Text(theirs)) => {
                mine.merge(*theirs);
                Detail::Text(mine)
            }
            (
                Detail::Boolean { trues, falses },
                Detail::Boolean {
                    trues: more_trues,
                    falses: more_falses,
                },
            ) => Detail::Boolean {
                trues: trues + more_trues,
                falses: falses + more_falses,
            },
            (mine, _) => mine,
        };
        self
    }

    /// The column's profile, and its imbalance when it is categorical.
    fn finish(self, top_k: usize, bins: usize) -> (ColumnProfile, Option<f64>) {
        let kind = self.repr.kind();
        let (distinct, distinct_exact) = match self.frequent.distinct_if_exact() {
            Some(distinct) => (distinct, true),
            None => {
                // The table overflowed, so there are more distinct values
                // than it holds, whatever the estimate's noise says.
                let floor = 2 * self.frequent.capacity() as u64 + 1;
                (self.hll.estimate().max(floor).min(self.count), false)
            }
        };
        let categorical = matches!(kind, ColumnKind::Text | ColumnKind::Boolean)
            && distinct_exact
            && (2..=CATEGORICAL_MAX_DISTINCT).contains(&distinct);
        let ranked = match self.repr {
            Repr::Other => Vec::new(),
            _ => self
                .frequent
                .top(if categorical { usize::MAX } else { top_k }),
        };
        let imbalance = if categorical {
            imbalance_score(&ranked)
        } else {
            None
        };
        let render = Renderer::new(&self.repr);
        let top_values = ranked
            .into_iter()
            .take(top_k)
            .map(|(key, count)| TopValue {
                value: render.key(key),
                count,
            })
            .collect();
        let mut profile = ColumnProfile {
            name: self.name,
            data_type: self.data_type.to_string(),
            kind,
            count: self.count,
            nulls: self.nulls,
            null_percent: percent(self.nulls, self.count + self.nulls),
            distinct,
            distinct_exact,
            distinct_percent: percent(distinct, self.count),
            top_values,
            top_values_exact: self.frequent.is_exact(),
            ..ColumnProfile::default()
        };
        match self.detail {
            Detail::Numeric(stats) => (*stats).finish(&mut profile, &render, bins),
            Detail::Text(stats) => (*stats).finish(&mut profile),
            Detail::Boolean { trues, falses } => {
                profile.true_count = Some(trues);
                profile.false_count = Some(falses);
                if trues + falses > 0 {
                    profile.min = Some(Value::Bool(falses == 0));
                    profile.max = Some(Value::Bool(trues > 0));
                }
            }
            Detail::Other => {}
        }
        (profile, imbalance)
    }
}

/// The longest text a profile keeps of one value (top values, pattern
/// samples): memory stays bounded whatever the column holds.
const KEPT_TEXT_CHARS: usize = 256;

/// `text`, cut after [`KEPT_TEXT_CHARS`] characters with `…` marking the cut.
fn kept_text(text: &str) -> String {
    match text.char_indices().nth(KEPT_TEXT_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

fn bool_hash(value: bool) -> u64 {
    if value { TRUE_HASH } else { FALSE_HASH }
}

/// Calls `f` with each non-null row index.
#[inline]
fn for_each_valid(len: usize, nulls: Option<&NullBuffer>, f: impl FnMut(usize)) {
    match nulls {
        Some(nulls) => nulls.valid_indices().for_each(f),
        None => (0..len).for_each(f),
    }
}

/// Feeds non-null values' hashes to the distinct and top-value sketches.
///
/// Runs of equal values (sorted or clustered columns) are counted first and
/// inserted once.
fn feed(
    hll: &mut HyperLogLog,
    frequent: &mut FrequentItems<TopKey>,
    hashes: &[u64],
    nulls: Option<&NullBuffer>,
    make: impl Fn(usize) -> TopKey,
) {
    let (mut run_hash, mut run_row, mut run_len) = (0u64, 0usize, 0u64);
    let mut visit = |row: usize| {
        let hash = hashes[row];
        if run_len > 0 && hash == run_hash {
            run_len += 1;
            return;
        }
        if run_len > 0 {
            hll.insert_hash(run_hash);
            frequent.insert(run_hash, run_len, || make(run_row));
        }
        (run_hash, run_row, run_len) = (hash, row, 1);
    };
    for_each_valid(hashes.len(), nulls, &mut visit);
    if run_len > 0 {
        hll.insert_hash(run_hash);
        frequent.insert(run_hash, run_len, || make(run_row));
    }
}

/// Replaces `out` with the non-null values, converted.
fn collect_valid<N: Copy>(
    values: &[N],
    nulls: Option<&NullBuffer>,
    out: &mut Vec<f64>,
    convert: impl Fn(N) -> f64,
) {
    out.clear();
    match nulls {
        Some(nulls) => out.extend(nulls.valid_indices().map(|row| convert(values[row]))),
        None => out.extend(values.iter().map(|&v| convert(v))),
    }
}

fn min_max(values: &[f64]) -> Option<(f64, f64)> {
    let (&first, rest) = values.split_first()?;
    Some(
        rest.iter()
            .fold((first, first), |(low, high), &v| (low.min(v), high.max(v))),
    )
}

/// Sketches of numeric and temporal columns.
struct NumericStats {
    moments: Moments,
    sample: UniformSample,
    min: Option<Num>,
    max: Option<Num>,
    zeros: u64,
    negatives: u64,
    nan: u64,
    infinite: u64,
}

impl NumericStats {
    fn new(sample_size: usize, seed: u64) -> Self {
        Self {
            moments: Moments::default(),
            sample: UniformSample::new(sample_size, seed),
            min: None,
            max: None,
            zeros: 0,
            negatives: 0,
            nan: 0,
            infinite: 0,
        }
    }

    fn widen(&mut self, low: Num, high: Num) {
        self.min = lower(self.min, Some(low));
        self.max = higher(self.max, Some(high));
    }

    /// Adds finite values; moments, zeros and negatives only for numeric
    /// columns (a temporal mean is not reported).
    fn add_finite(&mut self, values: &[f64], numeric: bool) {
        if numeric {
            self.moments.update_slice(values);
            self.zeros += values.iter().filter(|&&v| v == 0.0).count() as u64;
            self.negatives += values.iter().filter(|&&v| v < 0.0).count() as u64;
        }
        self.sample.insert_slice(values);
    }

    fn merge(self, other: Self) -> Self {
        let mut moments = self.moments;
        moments.merge(&other.moments);
        Self {
            moments,
            sample: self.sample.merge(other.sample),
            min: lower(self.min, other.min),
            max: higher(self.max, other.max),
            zeros: self.zeros + other.zeros,
            negatives: self.negatives + other.negatives,
            nan: self.nan + other.nan,
            infinite: self.infinite + other.infinite,
        }
    }

    fn finish(self, profile: &mut ColumnProfile, render: &Renderer, bins: usize) {
        let numeric = profile.kind == ColumnKind::Numeric;
        profile.min = self.min.map(|v| render.exact(v));
        profile.max = self.max.map(|v| render.exact(v));
        if numeric {
            let moments = &self.moments;
            profile.mean = moments.mean();
            profile.variance = moments.variance_sample();
            profile.stddev = moments.stddev();
            profile.skewness = moments.skewness();
            profile.kurtosis = moments.kurtosis();
            profile.sum = (moments.count() > 0).then_some(moments.sum());
            profile.zeros = Some(self.zeros);
            profile.negatives = Some(self.negatives);
            if render.is_float() {
                profile.nan = Some(self.nan);
                profile.infinite = Some(self.infinite);
            }
        }
        let sorted = self.sample.finish();
        if sorted.is_empty() {
            return;
        }
        let q = QUANTILES.map(|p| sorted.quantile(p).unwrap_or_default());
        profile.quantiles = Some(Quantiles {
            p1: render.real(q[0]),
            p5: render.real(q[1]),
            p25: render.real(q[2]),
            p50: render.real(q[3]),
            p75: render.real(q[4]),
            p95: render.real(q[5]),
            p99: render.real(q[6]),
        });
        profile.quantiles_exact = sorted.is_exact();
        if numeric {
            profile.iqr = Some(q[4] - q[2]);
        }
        if bins > 0
            && let (Some(low), Some(high)) = (self.min, self.max)
        {
            profile.histogram = Some(histogram(
                &sorted,
                low.as_f64(),
                high.as_f64(),
                bins,
                render,
            ));
        }
    }
}

/// Equal-width bins over the exact range, counts from the sample.
fn histogram(
    sorted: &SortedSample,
    low: f64,
    high: f64,
    bins: usize,
    render: &Renderer,
) -> Histogram {
    if high > low {
        let width = (high - low) / bins as f64;
        let edges = (0..=bins)
            .map(|i| {
                if i == bins {
                    high
                } else {
                    low + width * i as f64
                }
            })
            .map(|edge| render.real(edge))
            .collect();
        Histogram {
            edges,
            counts: sorted.histogram(low, high, bins),
        }
    } else {
        Histogram {
            edges: vec![render.real(low), render.real(high)],
            counts: vec![sorted.seen()],
        }
    }
}

/// Sketches of text columns.
struct TextStats {
    min: Option<String>,
    max: Option<String>,
    shortest: u64,
    longest: u64,
    total_length: u64,
    empty: u64,
    /// The first non-empty values, for pattern detection.
    samples: Vec<String>,
}

impl TextStats {
    fn new() -> Self {
        Self {
            min: None,
            max: None,
            shortest: u64::MAX,
            longest: 0,
            total_length: 0,
            empty: 0,
            samples: Vec::new(),
        }
    }

    fn update<'a, A>(
        &mut self,
        strings: A,
        nulls: Option<&NullBuffer>,
        len: usize,
        min: Option<&str>,
        max: Option<&str>,
    ) where
        A: StringArrayType<'a> + Copy,
    {
        if let Some(min) = min
            && self.min.as_deref().is_none_or(|current| min < current)
        {
            self.min = Some(min.to_owned());
        }
        if let Some(max) = max
            && self.max.as_deref().is_none_or(|current| max > current)
        {
            self.max = Some(max.to_owned());
        }
        // One check over the whole value buffer lets ASCII batches count
        // characters as bytes.
        let ascii = strings.is_ascii();
        for_each_valid(len, nulls, |row| {
            let value = strings.value(row);
            let length = if ascii {
                value.len() as u64
            } else {
                value.chars().count() as u64
            };
            self.shortest = self.shortest.min(length);
            self.longest = self.longest.max(length);
            self.total_length += length;
            if length == 0 {
                self.empty += 1;
            } else if self.samples.len() < PATTERN_SAMPLE {
                self.samples.push(kept_text(value));
            }
        });
    }

    fn merge(&mut self, other: Self) {
        if let Some(min) = other.min
            && self.min.as_ref().is_none_or(|current| min < *current)
        {
            self.min = Some(min);
        }
        if let Some(max) = other.max
            && self.max.as_ref().is_none_or(|current| max > *current)
        {
            self.max = Some(max);
        }
        self.shortest = self.shortest.min(other.shortest);
        self.longest = self.longest.max(other.longest);
        self.total_length += other.total_length;
        self.empty += other.empty;
        let room = PATTERN_SAMPLE.saturating_sub(self.samples.len());
        self.samples.extend(other.samples.into_iter().take(room));
    }

    fn finish(self, profile: &mut ColumnProfile) {
        profile.min = self.min.map(Value::String);
        profile.max = self.max.map(Value::String);
        if profile.count > 0 {
            profile.lengths = Some(LengthStats {
                min: self.shortest,
                max: self.longest,
                mean: self.total_length as f64 / profile.count as f64,
            });
        }
        profile.empty_strings = Some(self.empty);
        profile.pattern = detect_pattern(&self.samples);
    }
}

/// Renders a column's values as JSON.
struct Renderer {
    repr: Repr,
    tz: Option<Tz>,
}

impl Renderer {
    fn new(repr: &Repr) -> Self {
        let tz = match repr {
            Repr::Timestamp { tz: Some(tz), .. } => tz.parse::<Tz>().ok(),
            _ => None,
        };
        Self {
            repr: repr.clone(),
            tz,
        }
    }

    fn is_float(&self) -> bool {
        matches!(self.repr, Repr::Float { .. })
    }

    fn is_temporal(&self) -> bool {
        matches!(
            self.repr,
            Repr::Date32 | Repr::Date64 | Repr::Timestamp { .. }
        )
    }

    /// A value as stored: min, max, a top value.
    fn exact(&self, value: Num) -> Value {
        match value {
            // Temporal natives are i32 or i64, so this never truncates.
            Num::Int(v) if self.is_temporal() => self.temporal(v as i64),
            Num::Int(v) => int_value(v),
            Num::Float(v) => float_value(v, matches!(self.repr, Repr::Float { single: true })),
        }
    }

    /// A computed value: a quantile, a histogram edge.
    fn real(&self, value: f64) -> Value {
        if self.is_temporal() {
            self.temporal(value.round() as i64)
        } else {
            float_value(value, false)
        }
    }

    fn key(&self, key: TopKey) -> Value {
        match key {
            TopKey::Int(v) => self.exact(Num::Int(v)),
            TopKey::Float(v) => self.exact(Num::Float(v)),
            TopKey::Text(text) => Value::String(text),
            TopKey::Bool(b) => Value::Bool(b),
            TopKey::Opaque => Value::Null,
        }
    }

    /// RFC 3339; the raw number when out of chrono's range.
    fn temporal(&self, value: i64) -> Value {
        let text = match &self.repr {
            Repr::Date32 => date_string(value),
            Repr::Date64 => date_string(value.div_euclid(MILLIS_PER_DAY)),
            Repr::Timestamp { unit, .. } => timestamp_string(value, *unit, self.tz),
            _ => None,
        };
        text.map_or(Value::from(value), Value::String)
    }
}

fn int_value(value: i128) -> Value {
    if let Ok(v) = i64::try_from(value) {
        Value::from(v)
    } else if let Ok(v) = u64::try_from(value) {
        Value::from(v)
    } else {
        float_value(value as f64, false)
    }
}

/// JSON has no NaN or infinity: those become strings.
fn float_value(value: f64, single: bool) -> Value {
    if value.is_nan() {
        return Value::from("NaN");
    }
    if value.is_infinite() {
        return Value::from(if value > 0.0 { "inf" } else { "-inf" });
    }
    // An f32 widened to f64 prints its binary expansion (0.1 becomes
    // 0.10000000149011612); its shortest f32 form is what was stored.
    let value = if single {
        (value as f32).to_string().parse().unwrap_or(value)
    } else {
        value
    };
    Value::from(value)
}

fn date_string(days: i64) -> Option<String> {
    let date = DateTime::<Utc>::from_timestamp(days.checked_mul(86_400)?, 0)?;
    Some(date.date_naive().to_string())
}

fn timestamp_string(value: i64, unit: TimeUnit, tz: Option<Tz>) -> Option<String> {
    let utc = match unit {
        TimeUnit::Second => DateTime::<Utc>::from_timestamp(value, 0)?,
        TimeUnit::Millisecond => DateTime::<Utc>::from_timestamp_millis(value)?,
        TimeUnit::Microsecond => DateTime::<Utc>::from_timestamp_micros(value)?,
        TimeUnit::Nanosecond => DateTime::<Utc>::from_timestamp_nanos(value),
    };
    let local = match tz {
        Some(tz) => utc.with_timezone(&tz).fixed_offset(),
        None => utc.fixed_offset(),
    };
    Some(local.to_rfc3339_opts(SecondsFormat::AutoSi, true))
}

type Matcher = fn(&str) -> bool;

/// Patterns in preference order: on a tie the earlier one is reported, so a
/// column of plain digits is `integer_text` rather than `decimal_text` or
/// `phone`, and dates are `iso_date` rather than `phone`.
const PATTERNS: [(&str, Matcher); 10] = [
    ("email", is_email),
    ("url", is_url),
    ("uuid", is_uuid),
    ("ipv4", is_ipv4),
    ("ipv6", is_ipv6),
    ("iso_date", is_iso_date),
    ("iso_datetime", is_iso_datetime),
    ("integer_text", is_integer_text),
    ("decimal_text", is_decimal_text),
    ("phone", is_phone),
];

fn compile(pattern: &str) -> Regex {
    Regex::new(pattern).expect("built-in patterns are valid regular expressions")
}

static EMAIL: LazyLock<Regex> =
    LazyLock::new(|| compile(r"^[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}$"));
static URL: LazyLock<Regex> =
    LazyLock::new(|| compile(r"^[A-Za-z][A-Za-z0-9+.-]*://[^\s/?#]+[^\s]*$"));
static UUID: LazyLock<Regex> = LazyLock::new(|| {
    compile(r"^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$")
});
static ISO_DATE: LazyLock<Regex> =
    LazyLock::new(|| compile(r"^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$"));
static ISO_DATETIME: LazyLock<Regex> = LazyLock::new(|| {
    compile(concat!(
        r"^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])",
        r"[T ]([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]+)?)?",
        r"([Zz]|[+-]([01][0-9]|2[0-3])(:?[0-5][0-9])?)?$",
    ))
});
static INTEGER_TEXT: LazyLock<Regex> = LazyLock::new(|| compile(r"^[+-]?[0-9]+$"));
static DECIMAL_TEXT: LazyLock<Regex> =
    LazyLock::new(|| compile(r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?$"));
static PHONE: LazyLock<Regex> = LazyLock::new(|| compile(r"^\+?[0-9(][0-9 ().-]{5,22}[0-9]$"));

fn is_email(value: &str) -> bool {
    EMAIL.is_match(value)
}

fn is_url(value: &str) -> bool {
    URL.is_match(value)
}

fn is_uuid(value: &str) -> bool {
    UUID.is_match(value)
}

fn is_ipv4(value: &str) -> bool {
    value.parse::<Ipv4Addr>().is_ok()
}

fn is_ipv6(value: &str) -> bool {
    value.parse::<Ipv6Addr>().is_ok()
}

fn is_iso_date(value: &str) -> bool {
    ISO_DATE.is_match(value)
}

fn is_iso_datetime(value: &str) -> bool {
    ISO_DATETIME.is_match(value)
}

fn is_integer_text(value: &str) -> bool {
    INTEGER_TEXT.is_match(value)
}

fn is_decimal_text(value: &str) -> bool {
    DECIMAL_TEXT.is_match(value)
}

/// 7 to 15 digits (E.164 allows 15) with the usual separators.
fn is_phone(value: &str) -> bool {
    PHONE.is_match(value) && (7..=15).contains(&value.bytes().filter(u8::is_ascii_digit).count())
}

/// The pattern the most sampled values match, if at least 90% do.
fn detect_pattern(samples: &[String]) -> Option<Pattern> {
    if samples.is_empty() {
        return None;
    }
    let mut best: Option<(&str, usize)> = None;
    for (name, matches) in PATTERNS {
        let hits = samples.iter().filter(|value| matches(value)).count();
        if best.is_none_or(|(_, most)| hits > most) {
            best = Some((name, hits));
        }
    }
    let (name, hits) = best?;
    let share = hits as f64 * 100.0 / samples.len() as f64;
    (share >= PATTERN_MIN_PERCENT).then(|| Pattern {
        name: name.to_owned(),
        percent: share,
    })
}

#[cfg(test)]
mod tests {
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
}
