//! One column's state while profiling: its representation, the sketches it feeds, numeric and text statistics.

#[allow(unused_imports)]
use super::*;

/// The splitmix64 finalizer: a bijective mix of all 64 bits.
pub(super) fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// How a column's values are read and rendered.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Repr {
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
pub(super) enum TopKey {
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
pub(super) enum Num {
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

pub(super) fn lower(current: Option<Num>, candidate: Option<Num>) -> Option<Num> {
    match (current, candidate) {
        (Some(a), Some(b)) => Some(if b.less_than(a) { b } else { a }),
        (a, None) => a,
        (None, b) => b,
    }
}

pub(super) fn higher(current: Option<Num>, candidate: Option<Num>) -> Option<Num> {
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
pub(super) struct ColumnState {
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
pub(super) enum Detail {
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
    pub(super) fn new(field: &Field, options: &ProfileOptions, seed: u64) -> Self {
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
    pub(super) fn update(
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

    pub(super) fn merge(mut self, other: Self) -> Self {
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
    pub(super) fn finish(self, top_k: usize, bins: usize) -> (ColumnProfile, Option<f64>) {
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
pub(super) const KEPT_TEXT_CHARS: usize = 256;

/// `text`, cut after [`KEPT_TEXT_CHARS`] characters with `…` marking the cut.
pub(super) fn kept_text(text: &str) -> String {
    match text.char_indices().nth(KEPT_TEXT_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

pub(super) fn bool_hash(value: bool) -> u64 {
    if value { TRUE_HASH } else { FALSE_HASH }
}

/// Calls `f` with each non-null row index.
#[inline]
pub(super) fn for_each_valid(len: usize, nulls: Option<&NullBuffer>, f: impl FnMut(usize)) {
    match nulls {
        Some(nulls) => nulls.valid_indices().for_each(f),
        None => (0..len).for_each(f),
    }
}

/// Feeds non-null values' hashes to the distinct and top-value sketches.
///
/// Runs of equal values (sorted or clustered columns) are counted first and
/// inserted once.
pub(super) fn feed(
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
pub(super) fn collect_valid<N: Copy>(
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

pub(super) fn min_max(values: &[f64]) -> Option<(f64, f64)> {
    let (&first, rest) = values.split_first()?;
    Some(
        rest.iter()
            .fold((first, first), |(low, high), &v| (low.min(v), high.max(v))),
    )
}

/// Sketches of numeric and temporal columns.
pub(super) struct NumericStats {
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
    pub(super) fn new(sample_size: usize, seed: u64) -> Self {
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

    pub(super) fn merge(self, other: Self) -> Self {
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

    pub(super) fn finish(self, profile: &mut ColumnProfile, render: &Renderer, bins: usize) {
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
pub(super) fn histogram(
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
pub(super) struct TextStats {
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
    pub(super) fn new() -> Self {
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

    pub(super) fn update<'a, A>(
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

    pub(super) fn merge(&mut self, other: Self) {
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

    pub(super) fn finish(self, profile: &mut ColumnProfile) {
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
