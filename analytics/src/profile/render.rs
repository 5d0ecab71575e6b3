//! Rendering a column's values as JSON, and the text patterns (email, URL, UUID, dates, numbers, phone numbers) a sample may match.

#[allow(unused_imports)]
use super::*;

/// Renders a column's values as JSON.
pub(super) struct Renderer {
    repr: Repr,
    tz: Option<Tz>,
}

impl Renderer {
    pub(super) fn new(repr: &Repr) -> Self {
        let tz = match repr {
            Repr::Timestamp { tz: Some(tz), .. } => tz.parse::<Tz>().ok(),
            _ => None,
        };
        Self {
            repr: repr.clone(),
            tz,
        }
    }

    pub(super) fn is_float(&self) -> bool {
        matches!(self.repr, Repr::Float { .. })
    }

    fn is_temporal(&self) -> bool {
        matches!(
            self.repr,
            Repr::Date32 | Repr::Date64 | Repr::Timestamp { .. }
        )
    }

    /// A value as stored: min, max, a top value.
    pub(super) fn exact(&self, value: Num) -> Value {
        match value {
            // Temporal natives are i32 or i64, so this never truncates.
            Num::Int(v) if self.is_temporal() => self.temporal(v as i64),
            Num::Int(v) => int_value(v),
            Num::Float(v) => float_value(v, matches!(self.repr, Repr::Float { single: true })),
        }
    }

    /// A computed value: a quantile, a histogram edge.
    pub(super) fn real(&self, value: f64) -> Value {
        if self.is_temporal() {
            self.temporal(value.round() as i64)
        } else {
            float_value(value, false)
        }
    }

    pub(super) fn key(&self, key: TopKey) -> Value {
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

pub(super) fn int_value(value: i128) -> Value {
    if let Ok(v) = i64::try_from(value) {
        Value::from(v)
    } else if let Ok(v) = u64::try_from(value) {
        Value::from(v)
    } else {
        float_value(value as f64, false)
    }
}

/// JSON has no NaN or infinity: those become strings.
pub(super) fn float_value(value: f64, single: bool) -> Value {
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

pub(super) fn date_string(days: i64) -> Option<String> {
    let date = DateTime::<Utc>::from_timestamp(days.checked_mul(86_400)?, 0)?;
    Some(date.date_naive().to_string())
}

pub(super) fn timestamp_string(value: i64, unit: TimeUnit, tz: Option<Tz>) -> Option<String> {
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

pub(super) type Matcher = fn(&str) -> bool;

/// Patterns in preference order: on a tie the earlier one is reported, so a
/// column of plain digits is `integer_text` rather than `decimal_text` or
/// `phone`, and dates are `iso_date` rather than `phone`.
pub(super) const PATTERNS: [(&str, Matcher); 10] = [
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

pub(super) fn compile(pattern: &str) -> Regex {
    Regex::new(pattern).expect("built-in patterns are valid regular expressions")
}

pub(super) static EMAIL: LazyLock<Regex> =
    LazyLock::new(|| compile(r"^[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}$"));
pub(super) static URL: LazyLock<Regex> =
    LazyLock::new(|| compile(r"^[A-Za-z][A-Za-z0-9+.-]*://[^\s/?#]+[^\s]*$"));
pub(super) static UUID: LazyLock<Regex> = LazyLock::new(|| {
    compile(r"^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$")
});
pub(super) static ISO_DATE: LazyLock<Regex> =
    LazyLock::new(|| compile(r"^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$"));
pub(super) static ISO_DATETIME: LazyLock<Regex> = LazyLock::new(|| {
    compile(concat!(
        r"^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])",
        r"[T ]([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]+)?)?",
        r"([Zz]|[+-]([01][0-9]|2[0-3])(:?[0-5][0-9])?)?$",
    ))
});
pub(super) static INTEGER_TEXT: LazyLock<Regex> = LazyLock::new(|| compile(r"^[+-]?[0-9]+$"));
pub(super) static DECIMAL_TEXT: LazyLock<Regex> =
    LazyLock::new(|| compile(r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?$"));
pub(super) static PHONE: LazyLock<Regex> =
    LazyLock::new(|| compile(r"^\+?[0-9(][0-9 ().-]{5,22}[0-9]$"));

pub(super) fn is_email(value: &str) -> bool {
    EMAIL.is_match(value)
}

pub(super) fn is_url(value: &str) -> bool {
    URL.is_match(value)
}

pub(super) fn is_uuid(value: &str) -> bool {
    UUID.is_match(value)
}

pub(super) fn is_ipv4(value: &str) -> bool {
    value.parse::<Ipv4Addr>().is_ok()
}

pub(super) fn is_ipv6(value: &str) -> bool {
    value.parse::<Ipv6Addr>().is_ok()
}

pub(super) fn is_iso_date(value: &str) -> bool {
    ISO_DATE.is_match(value)
}

pub(super) fn is_iso_datetime(value: &str) -> bool {
    ISO_DATETIME.is_match(value)
}

pub(super) fn is_integer_text(value: &str) -> bool {
    INTEGER_TEXT.is_match(value)
}

pub(super) fn is_decimal_text(value: &str) -> bool {
    DECIMAL_TEXT.is_match(value)
}

/// 7 to 15 digits (E.164 allows 15) with the usual separators.
pub(super) fn is_phone(value: &str) -> bool {
    PHONE.is_match(value) && (7..=15).contains(&value.bytes().filter(u8::is_ascii_digit).count())
}

/// The pattern the most sampled values match, if at least 90% do.
pub(super) fn detect_pattern(samples: &[String]) -> Option<Pattern> {
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
