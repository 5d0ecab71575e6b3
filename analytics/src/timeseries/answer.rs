//! The answer: response types, and assembling batches into one array per series and measure with gap filling, rolling windows and LTTB downsampling.

#[allow(unused_imports)]
use super::*;

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
    pub(super) nanos: i64,
    pub(super) tz: Tz,
    pub(super) format: TimeFormat,
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
pub(super) fn time_point_schema() -> utoipa::openapi::schema::Schema {
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
pub(super) fn time_axis_schema() -> utoipa::openapi::schema::Array {
    utoipa::openapi::schema::ArrayBuilder::new()
        .items(utoipa::openapi::RefOr::T(time_point_schema()))
        .build()
}

pub(super) fn iso_time(nanos: i64, tz: Tz) -> String {
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

pub(super) fn dimension_text(value: &Value) -> Option<String> {
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
pub(super) type Columns = Vec<Vec<Option<f64>>>;

pub(super) struct Collected {
    groups: HashMap<Vec<Value>, Columns>,
    dropped: u64,
}

pub(super) fn result_column<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a ArrayRef> {
    batch
        .column_by_name(name)
        .ok_or_else(|| Error::Internal(format!("the time series result has no column `{name}`")))
}

pub(super) fn too_many_values() -> Error {
    problem(
        AnalyticsProblem::TooManyPoints,
        format!(
            "the answer would hold more than {MAX_CELLS} values: use fewer dimensions or measures, a coarser granularity or a shorter range"
        ),
    )
}

pub(super) fn collect_rows(
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
pub(super) fn timestamp_raw(array: &ArrayRef) -> Result<Vec<Option<i64>>> {
    let raw = cast(array, &DataType::Int64).map_err(arrow_error)?;
    Ok(raw.as_primitive::<Int64Type>().iter().collect())
}

pub(super) fn unit_nanos(unit: TimeUnit) -> i64 {
    match unit {
        TimeUnit::Second => NANOS_PER_SECOND,
        TimeUnit::Millisecond => NANOS_PER_MILLI,
        TimeUnit::Microsecond => 1_000,
        TimeUnit::Nanosecond => 1,
    }
}

/// Bucket starts as UTC nanoseconds; zoned or naive, Arrow stores the
/// instant, and naive buckets are taken as UTC.
pub(super) fn bucket_nanos(array: &ArrayRef) -> Result<Vec<Option<i64>>> {
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
pub(super) fn measure_values(array: &ArrayRef) -> Result<Vec<Option<f64>>> {
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
pub(super) fn json_values(array: &ArrayRef) -> Result<Vec<Value>> {
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
pub(super) fn cmp_json(a: &Value, b: &Value) -> Ordering {
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

pub(super) fn cmp_keys(a: &[Value], b: &[Value]) -> Ordering {
    a.iter()
        .zip(b)
        .map(|(x, y)| cmp_json(x, y))
        .find(|o| o.is_ne())
        .unwrap_or(Ordering::Equal)
}

pub(super) fn fill_gaps(values: &mut [Option<f64>], fill: Fill) {
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
pub(super) fn rolling(values: &[Option<f64>], window: usize, agg: RollingAgg) -> Vec<Option<f64>> {
    match agg {
        RollingAgg::Sum => rolling_sum(values, window, false),
        RollingAgg::Avg => rolling_sum(values, window, true),
        RollingAgg::Min => rolling_extreme(values, window, Ordering::Less),
        RollingAgg::Max => rolling_extreme(values, window, Ordering::Greater),
    }
}

pub(super) fn rolling_sum(values: &[Option<f64>], window: usize, mean: bool) -> Vec<Option<f64>> {
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
pub(super) fn rolling_extreme(
    values: &[Option<f64>],
    window: usize,
    keep: Ordering,
) -> Vec<Option<f64>> {
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
pub(super) fn lttb(points: &[(f64, f64)], threshold: usize) -> Vec<usize> {
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
pub(super) fn downsample(values: &[Option<f64>], max_points: usize) -> Vec<usize> {
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
pub(super) fn finish(
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

pub(super) fn make_series(
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
