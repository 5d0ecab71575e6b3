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

mod column;
mod render;

use column::*;
use render::*;

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

#[cfg(test)]
mod tests;
