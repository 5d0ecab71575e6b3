//! The SQL a request plans to: measures, filters, the bucketed query, and the plan the answer is assembled by.

#[allow(unused_imports)]
use super::*;

// ---------------------------------------------------------------------------
// SQL
// ---------------------------------------------------------------------------

pub(super) fn zoned_type(tz: &str) -> String {
    zoned_type_in(TimeUnit::Nanosecond, tz)
}

/// A zoned timestamp type in `unit`, as `arrow_cast` spells it.
pub(super) fn zoned_type_in(unit: TimeUnit, tz: &str) -> String {
    format!("Timestamp({unit:?}, Some(\"{tz}\"))")
}

/// A timestamp literal for the instant `t`. A zoned one is needed to compare
/// with zoned columns: DataFusion coerces a naive literal to the column's zone
/// by reading it as local time there, which would shift it.
pub(super) fn timestamp_literal(t: DateTime<Tz>, zoned: bool) -> String {
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
/// its local time, resolving DST like [`local_time`]. `instant` is in
/// `time_unit`; keeping it (only the zone changes) spares a cast of every row.
pub(super) fn calendar_bucket_sql(
    unit: CalendarUnit,
    instant: &str,
    tz: Tz,
    time_unit: TimeUnit,
) -> String {
    format!(
        "date_trunc('{}', arrow_cast({instant}, '{}'))",
        unit.name(),
        zoned_type_in(time_unit, tz.name())
    )
}

/// An approximate quantile. The cast makes decimals and integers acceptable
/// to the t-digest and the result always a float.
pub(super) fn percentile_sql(column: &str, q: f64) -> String {
    format!("approx_percentile_cont(CAST({column} AS DOUBLE), {q})")
}

pub(super) fn value_type(data_type: &DataType) -> &DataType {
    match data_type {
        DataType::Dictionary(_, values) => values.as_ref(),
        other => other,
    }
}

pub(super) fn column_list(schema: &Schema) -> String {
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

pub(super) fn column_type<'a>(schema: &'a Schema, name: &str, role: &str) -> Result<&'a DataType> {
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
pub(super) fn plan_measure(measure: &Measure, schema: &Schema) -> Result<(String, String)> {
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

pub(super) enum Kind {
    Numeric,
    Text,
    Boolean,
    Timestamp { zoned: bool },
    Date,
    Other,
}

pub(super) fn kind(data_type: &DataType) -> Kind {
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

pub(super) fn filter_sql(filter: &Filter, schema: &Schema, tz: Tz) -> Result<String> {
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

pub(super) fn invalid_filter(condition: &Condition, why: impl fmt::Display) -> Error {
    problem(
        AnalyticsProblem::InvalidFilter,
        format!(
            "filter `{}` on `{}`: {why}",
            condition.op.name(),
            condition.column
        ),
    )
}

pub(super) fn single_value(condition: &Condition) -> Result<&Value> {
    match &condition.value {
        None => Err(invalid_filter(condition, "needs a `value`")),
        Some(Value::Array(_) | Value::Object(_)) => Err(invalid_filter(
            condition,
            "takes a single value, not an array or object",
        )),
        Some(value) => Ok(value),
    }
}

pub(super) fn value_list(condition: &Condition, exactly: Option<usize>) -> Result<&[Value]> {
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

pub(super) fn condition_sql(condition: &Condition, schema: &Schema, tz: Tz) -> Result<String> {
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

pub(super) fn literal(
    condition: &Condition,
    data_type: &DataType,
    value: &Value,
    tz: Tz,
) -> Result<String> {
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
pub(super) struct Query<'a> {
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
        // Buckets are computed in the column's own unit: a literal in another
        // would have DataFusion cast every row to it first.
        let time_unit = match &self.time_type {
            DataType::Timestamp(unit, _) => *unit,
            _ => TimeUnit::Nanosecond,
        };
        let instant = match &self.time_type {
            DataType::Timestamp(_, Some(_)) => column.clone(),
            // Naive timestamps are UTC instants.
            DataType::Timestamp(_, None) => {
                format!(
                    "arrow_cast({column}, '{}')",
                    zoned_type_in(time_unit, "UTC")
                )
            }
            // A date is a local calendar day: its midnight in the request's zone.
            _ => format!(
                "arrow_cast(arrow_cast({column}, 'Timestamp(Nanosecond, None)'), '{}')",
                zoned_type(self.tz.name())
            ),
        };
        match self.granularity {
            Granularity::Fixed { seconds } => format!(
                "date_bin(INTERVAL '{seconds} seconds', {instant}, arrow_cast({}, '{}'))",
                timestamp_literal(origin, false),
                zoned_type_in(time_unit, "UTC")
            ),
            Granularity::Calendar(unit) => calendar_bucket_sql(unit, &instant, self.tz, time_unit),
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
pub(super) struct RangePlan {
    start: i64,
    end: i64,
    /// Bucket starts (UTC nanoseconds), the `lookback` ones before the range first.
    pub(super) buckets: Vec<i64>,
    pub(super) lookback: usize,
    sql: String,
}

impl RangePlan {
    pub(super) fn bucket_count(&self) -> usize {
        self.buckets.len() - self.lookback
    }

    pub(super) fn shown(&self) -> &[i64] {
        &self.buckets[self.lookback..]
    }
}

#[derive(Debug, Clone)]
pub(super) struct PlannedMeasure {
    pub(super) name: String,
    pub(super) rolling: Option<Rolling>,
}

/// A checked request: its resolved ranges, buckets and SQL.
#[derive(Debug, Clone)]
pub struct TimeseriesPlan {
    pub(super) tz: Tz,
    pub(super) granularity: Granularity,
    pub(super) fill: Fill,
    pub(super) time_format: TimeFormat,
    pub(super) max_points: Option<usize>,
    pub(super) dimensions: Vec<String>,
    pub(super) measures: Vec<PlannedMeasure>,
    pub(super) main: RangePlan,
    pub(super) comparison: Option<RangePlan>,
    pub(super) row_limit: usize,
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

    pub(super) fn time_range(&self, range: &RangePlan) -> TimeRange {
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
