//! Granularity and calendar arithmetic in the request's time zone, and date ranges: absolute, relative and the comparison range.

#[allow(unused_imports)]
use super::*;

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
    pub(super) fn name(self) -> &'static str {
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

pub(super) fn problem(problem: AnalyticsProblem, message: impl Into<String>) -> Error {
    Error::Refused {
        problem,
        message: message.into(),
    }
}

pub(super) fn out_of_range() -> Error {
    problem(
        AnalyticsProblem::InvalidDateRange,
        "the date range reaches beyond the dates Basin can represent",
    )
}

pub(super) fn arrow_error(e: ArrowError) -> Error {
    Error::internal("timeseries", e)
}

/// The instant a local wall-clock time names in `tz`.
pub(super) fn local_time(naive: NaiveDateTime, tz: Tz) -> Result<DateTime<Tz>> {
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

pub(super) fn local_midnight(date: NaiveDate, tz: Tz) -> Result<DateTime<Tz>> {
    local_time(date.and_time(NaiveTime::MIN), tz)
}

/// The start of the bucket (or relative-range unit) `t` lies in. Fixed widths
/// align to the local clock so `last 24 hours` starts on a local hour even in
/// zones with half-hour offsets.
pub(super) fn truncate(t: DateTime<Tz>, unit: Granularity, tz: Tz) -> Result<DateTime<Tz>> {
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
pub(super) fn step(t: DateTime<Tz>, unit: Granularity, tz: Tz, count: i64) -> Result<DateTime<Tz>> {
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

pub(super) fn span_nanos(start: DateTime<Tz>, end: DateTime<Tz>) -> i128 {
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

pub(super) type Span = (DateTime<Tz>, DateTime<Tz>);

pub(super) fn resolve_range(range: &DateRange, tz: Tz, now: DateTime<Utc>) -> Result<Span> {
    match range {
        DateRange::Absolute(bounds) => absolute_range(bounds, tz, "date_range"),
        DateRange::Relative(text) => relative_range(text, tz, now),
    }
}

pub(super) fn absolute_range(bounds: &[String], tz: Tz, field: &str) -> Result<Span> {
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
pub(super) fn parse_instant(text: &str, tz: Tz, is_end: bool, field: &str) -> Result<DateTime<Tz>> {
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

pub(super) fn range_unit(word: &str) -> Option<Granularity> {
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

pub(super) fn relative_range(text: &str, tz: Tz, now: DateTime<Utc>) -> Result<Span> {
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

pub(super) fn comparison_range(
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
pub(super) fn previous_period(
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
pub(super) fn year_before(t: DateTime<Tz>, tz: Tz) -> Result<DateTime<Tz>> {
    let local = t
        .naive_local()
        .checked_sub_months(Months::new(12))
        .ok_or_else(out_of_range)?;
    local_time(local, tz)
}
