//! Checking a definition against the dataset's schema, and the SQL each check compiles to.

#[allow(unused_imports)]
use super::*;

pub(super) fn invalid_check(message: impl Into<String>) -> Error {
    Error::Refused {
        problem: AnalyticsProblem::InvalidCheck,
        message: message.into(),
    }
}

/// Checks a definition against the dataset's schema: the name, that columns
/// exist and have fitting types, bounds and thresholds, the pattern and the
/// durations. The referenced dataset and its column of a `referential`
/// check are not checked here: the runner resolves them.
pub fn validate(def: &CheckDefinition, schema: &Schema) -> Result<()> {
    validate_definition(def, schema).map_err(|error| match error {
        Error::Refused { problem, message } => Error::Refused {
            problem,
            message: format!("check `{}`: {message}", def.name),
        },
        other => other,
    })
}

pub(super) fn validate_definition(def: &CheckDefinition, schema: &Schema) -> Result<()> {
    validate_name(&def.name).map_err(|_| {
        invalid_check(format!(
            "invalid name: use lowercase letters, digits and _, starting with a letter or _, at most {MAX_NAME_LEN} characters"
        ))
    })?;
    if let Some(mostly) = def.mostly {
        if !def.spec.is_row_level() {
            return Err(invalid_check(format!(
                "`mostly` applies to not_null, unique, accepted_values, range, regex and referential checks, not to {}",
                def.spec.kind()
            )));
        }
        if !(0.0..=1.0).contains(&mostly) {
            return Err(invalid_check(format!(
                "`mostly` must be between 0 and 1, got {mostly}"
            )));
        }
    }
    for (key, condition) in [("warn_if", &def.warn_if), ("fail_if", &def.fail_if)] {
        if condition
            .as_ref()
            .is_some_and(|condition| !condition.threshold.is_finite())
        {
            return Err(invalid_check(format!("`{key}` needs a finite threshold")));
        }
    }
    match &def.spec {
        CheckSpec::NotNull { column } => {
            column_type(schema, column)?;
        }
        CheckSpec::Unique { columns } => {
            if columns.is_empty() {
                return Err(invalid_check("unique needs at least one column"));
            }
            let mut seen = BTreeSet::new();
            for column in columns {
                if !seen.insert(column.as_str()) {
                    return Err(invalid_check(format!("column `{column}` is listed twice")));
                }
                column_type(schema, column)?;
            }
        }
        CheckSpec::AcceptedValues { column, values } => {
            let data_type = column_type(schema, column)?;
            if values.is_empty() {
                return Err(invalid_check("accepted_values needs at least one value"));
            }
            for value in values {
                literal(column, data_type, value)?;
            }
        }
        CheckSpec::Range {
            column,
            min,
            max,
            exclusive,
        } => {
            range_bounds(schema, column, min.as_ref(), max.as_ref(), *exclusive)?;
        }
        CheckSpec::Regex { column, pattern } => {
            let data_type = column_type(schema, column)?;
            if !is_text(data_type) {
                return Err(invalid_check(format!(
                    "regex needs a text column; `{column}` is {data_type}"
                )));
            }
            regex::Regex::new(pattern)
                .map_err(|e| invalid_check(format!("the pattern does not compile: {e}")))?;
        }
        CheckSpec::RowCount { min, max } => {
            if let (Some(min), Some(max)) = (min, max)
                && min > max
            {
                return Err(invalid_check(format!(
                    "min ({min}) is larger than max ({max})"
                )));
            }
            if min.is_none() && max.is_none() && def.fail_if.is_none() {
                return Err(invalid_check("row_count needs min, max or fail_if"));
            }
        }
        CheckSpec::Freshness {
            column,
            max_age,
            warn_after,
        } => {
            let data_type = column_type(schema, column)?;
            if !is_instant(data_type) {
                return Err(invalid_check(format!(
                    "freshness needs a timestamp or date column; `{column}` is {data_type}"
                )));
            }
            let max_age = parse_duration(max_age)?;
            if max_age.is_zero() {
                return Err(invalid_check("max_age must be longer than 0"));
            }
            if let Some(warn_after) = warn_after
                && parse_duration(warn_after)? > max_age
            {
                return Err(invalid_check(
                    "warn_after must not be longer than max_age: the check would fail before it warns",
                ));
            }
        }
        CheckSpec::Schema { columns, .. } => {
            let mut seen = BTreeSet::new();
            for expected in columns {
                if expected.name.is_empty() {
                    return Err(invalid_check("an expected column has an empty name"));
                }
                if !seen.insert(expected.name.as_str()) {
                    return Err(invalid_check(format!(
                        "column `{}` is listed twice",
                        expected.name
                    )));
                }
                if expected
                    .data_type
                    .as_ref()
                    .is_some_and(|data_type| data_type.trim().is_empty())
                {
                    return Err(invalid_check(format!(
                        "column `{}` has an empty type: give one or leave it out",
                        expected.name
                    )));
                }
            }
        }
        CheckSpec::Referential {
            column,
            dataset,
            ref_column,
        } => {
            column_type(schema, column)?;
            validate_name(dataset)
                .map_err(|_| invalid_check(format!("`{dataset}` is not a valid dataset name")))?;
            if ref_column.as_ref().is_some_and(String::is_empty) {
                return Err(invalid_check(
                    "ref_column is empty: give one or leave it out",
                ));
            }
        }
        CheckSpec::DistributionDrift {
            column,
            reference_version,
            method,
            bins,
        } => {
            let data_type = column_type(schema, column)?;
            if !data_type.is_numeric() {
                return Err(invalid_check(format!(
                    "distribution_drift needs a numeric column; `{column}` is {data_type}"
                )));
            }
            if *reference_version < 0 {
                return Err(invalid_check(format!(
                    "reference_version must be 0 or more, got {reference_version}"
                )));
            }
            if let Some(bins) = bins {
                if *method != DriftMethod::Psi {
                    return Err(invalid_check("bins applies to the psi method only"));
                }
                if !(2..=MAX_PSI_BINS).contains(bins) {
                    return Err(invalid_check(format!(
                        "bins must be between 2 and {MAX_PSI_BINS}, got {bins}"
                    )));
                }
            }
        }
        CheckSpec::CustomSql { sql } => {
            if custom_query(sql).is_empty() {
                return Err(invalid_check("custom_sql needs a query"));
            }
        }
    }
    Ok(())
}

pub(super) fn column_type<'a>(schema: &'a Schema, column: &str) -> Result<&'a DataType> {
    schema
        .fields()
        .iter()
        .find(|field| field.name() == column)
        .map(|field| field.data_type())
        .ok_or_else(|| Error::Refused {
            problem: AnalyticsProblem::UnknownColumn,
            message: format!("the dataset has no column `{column}`"),
        })
}

pub(super) fn is_text(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
    )
}

pub(super) fn is_date(data_type: &DataType) -> bool {
    matches!(data_type, DataType::Date32 | DataType::Date64)
}

/// Dates and timestamps: the types that place a row in time.
pub(super) fn is_instant(data_type: &DataType) -> bool {
    is_date(data_type) || matches!(data_type, DataType::Timestamp(..))
}

/// A value from a definition, checked against its column's type.
pub(super) enum Literal {
    /// A number and the SQL text that writes it exactly.
    Number {
        value: f64,
        sql: String,
    },
    Text(String),
    Bool(bool),
    /// An instant; a date is midnight UTC with `day` set.
    Time {
        at: DateTime<Utc>,
        day: bool,
    },
}

impl Literal {
    fn to_sql(&self, column_type: &DataType) -> String {
        match self {
            // Parenthesized so a negative number stays one operand wherever it lands.
            Self::Number { sql, .. } if sql.starts_with('-') => format!("({sql})"),
            Self::Number { sql, .. } => sql.clone(),
            Self::Text(text) => quote_literal(text),
            Self::Bool(true) => "TRUE".to_owned(),
            Self::Bool(false) => "FALSE".to_owned(),
            Self::Time { at, day: true } if is_date(column_type) => {
                format!("DATE '{}'", at.format("%Y-%m-%d"))
            }
            Self::Time { at, .. } => format!(
                "TIMESTAMP '{}'",
                at.to_rfc3339_opts(SecondsFormat::AutoSi, true)
            ),
        }
    }

    fn compare(&self, other: &Self) -> Option<Ordering> {
        match (self, other) {
            (Self::Number { value: a, .. }, Self::Number { value: b, .. }) => a.partial_cmp(b),
            (Self::Time { at: a, .. }, Self::Time { at: b, .. }) => Some(a.cmp(b)),
            _ => None,
        }
    }
}

pub(super) fn literal(column: &str, data_type: &DataType, value: &Value) -> Result<Literal> {
    let wrong = |expected: &str| {
        invalid_check(format!(
            "{value} does not fit column `{column}` of type {data_type}: expected {expected}"
        ))
    };
    if data_type.is_numeric() {
        return match value {
            Value::Number(number) => number_literal(number).ok_or_else(|| wrong("a finite number")),
            _ => Err(wrong("a number")),
        };
    }
    if is_text(data_type) {
        return value
            .as_str()
            .map(|text| Literal::Text(text.to_owned()))
            .ok_or_else(|| wrong("a string"));
    }
    if is_instant(data_type) {
        let literal = value
            .as_str()
            .and_then(time_literal)
            .ok_or_else(|| wrong("a date (like 2024-01-31) or an RFC 3339 timestamp"))?;
        // Timestamp literals are nanoseconds: outside these years every run would error.
        if let Literal::Time { at, .. } = &literal
            && !is_date(data_type)
            && at.timestamp_nanos_opt().is_none()
        {
            return Err(wrong("an instant between the years 1678 and 2261"));
        }
        return Ok(literal);
    }
    if *data_type == DataType::Boolean {
        return value
            .as_bool()
            .map(Literal::Bool)
            .ok_or_else(|| wrong("true or false"));
    }
    Err(invalid_check(format!(
        "column `{column}` has type {data_type}, which this check does not support"
    )))
}

pub(super) fn number_literal(number: &serde_json::Number) -> Option<Literal> {
    if let Some(integer) = number.as_i64() {
        Some(Literal::Number {
            value: integer as f64,
            sql: integer.to_string(),
        })
    } else if let Some(integer) = number.as_u64() {
        Some(Literal::Number {
            value: integer as f64,
            sql: integer.to_string(),
        })
    } else {
        // Debug keeps a `.0` or an exponent, so SQL reads the text as a float.
        number
            .as_f64()
            .filter(|value| value.is_finite())
            .map(|value| Literal::Number {
                value,
                sql: format!("{value:?}"),
            })
    }
}

pub(super) fn time_literal(text: &str) -> Option<Literal> {
    if let Ok(day) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Some(Literal::Time {
            at: day.and_time(NaiveTime::MIN).and_utc(),
            day: true,
        });
    }
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|time| Literal::Time {
            at: time.with_timezone(&Utc),
            day: false,
        })
}

/// A range check's bounds, checked: at least one, of the column's kind, in order.
pub(super) fn range_bounds(
    schema: &Schema,
    column: &str,
    min: Option<&Value>,
    max: Option<&Value>,
    exclusive: bool,
) -> Result<(Option<Literal>, Option<Literal>)> {
    let data_type = column_type(schema, column)?;
    if !data_type.is_numeric() && !is_instant(data_type) {
        return Err(invalid_check(format!(
            "range needs a numeric, date or timestamp column; `{column}` is {data_type}"
        )));
    }
    if min.is_none() && max.is_none() {
        return Err(invalid_check("range needs min, max or both"));
    }
    let min = min.map(|v| literal(column, data_type, v)).transpose()?;
    let max = max.map(|v| literal(column, data_type, v)).transpose()?;
    if let (Some(low), Some(high)) = (&min, &max)
        && let Some(order) = low.compare(high)
        && (order == Ordering::Greater || (exclusive && order == Ordering::Equal))
    {
        return Err(invalid_check(if exclusive {
            "min must be smaller than max when the range is exclusive"
        } else {
            "min must not be larger than max"
        }));
    }
    Ok((min, max))
}

/// A custom query without surrounding blanks and trailing `;`, which would
/// break the subquery it is wrapped in.
pub(super) fn custom_query(sql: &str) -> &str {
    sql.trim()
        .trim_end_matches(|c: char| c == ';' || c.is_whitespace())
}

/// `column` of the checked table, which every query aliases `t`.
pub(super) fn col(column: &str) -> String {
    format!("t.{}", quote_ident(column))
}

/// Compiles a valid check to SQL (see [`CheckQueries`] for what each query
/// returns). `table` and `reference_table` (the `referential` check's other
/// dataset) are table references the caller has quoted; a `sample_limit` of
/// 0 asks for no sample query.
///
/// Every column is quoted and every value written as a literal of the
/// column's type, so nothing in a definition can change the statement's
/// shape; a `custom_sql` query is wrapped as a subquery, so it must be a
/// query.
pub fn compile(
    def: &CheckDefinition,
    table: &str,
    reference_table: Option<&str>,
    schema: &Schema,
    sample_limit: usize,
) -> Result<CheckQueries> {
    validate(def, schema)?;
    let queries = match &def.spec {
        CheckSpec::NotNull { column } => row_level(
            table,
            None,
            &format!("{} IS NULL", col(column)),
            sample_limit,
        ),
        CheckSpec::Unique { columns } => unique(table, columns, sample_limit),
        CheckSpec::AcceptedValues { column, values } => {
            let data_type = column_type(schema, column)?;
            let literals = values
                .iter()
                .map(|value| Ok(literal(column, data_type, value)?.to_sql(data_type)))
                .collect::<Result<Vec<_>>>()?;
            row_level(
                table,
                Some(&format!("{} IS NOT NULL", col(column))),
                &format!("{} NOT IN ({})", col(column), literals.join(", ")),
                sample_limit,
            )
        }
        CheckSpec::Range {
            column,
            min,
            max,
            exclusive,
        } => {
            let data_type = column_type(schema, column)?;
            let (min, max) = range_bounds(schema, column, min.as_ref(), max.as_ref(), *exclusive)?;
            let (above, below) = if *exclusive { (">", "<") } else { (">=", "<=") };
            let mut inside = Vec::new();
            if let Some(min) = min {
                inside.push(format!("{} {above} {}", col(column), min.to_sql(data_type)));
            }
            if let Some(max) = max {
                inside.push(format!("{} {below} {}", col(column), max.to_sql(data_type)));
            }
            row_level(
                table,
                Some(&format!("{} IS NOT NULL", col(column))),
                &format!("NOT ({})", inside.join(" AND ")),
                sample_limit,
            )
        }
        CheckSpec::Regex { column, pattern } => row_level(
            table,
            Some(&format!("{} IS NOT NULL", col(column))),
            &format!(
                "NOT regexp_like({}, {})",
                col(column),
                quote_literal(pattern)
            ),
            sample_limit,
        ),
        CheckSpec::Referential {
            column, ref_column, ..
        } => {
            let reference = reference_table.ok_or_else(|| {
                invalid_check(format!(
                    "check `{}`: a referential check needs the referenced dataset's table",
                    def.name
                ))
            })?;
            referential(
                table,
                reference,
                column,
                ref_column.as_deref().unwrap_or(column),
                sample_limit,
            )
        }
        CheckSpec::CustomSql { sql } => {
            // The query goes on lines of its own, so a trailing `--` comment
            // cannot swallow the closing parenthesis.
            let from = format!("FROM (\n{}\n) AS q", custom_query(sql));
            CheckQueries {
                counts_sql: Some(format!(
                    "SELECT CAST(count(*) AS BIGINT) AS element_count, CAST(count(*) AS BIGINT) AS unexpected_count {from}"
                )),
                sample_sql: (sample_limit > 0)
                    .then(|| format!("SELECT * {from} LIMIT {sample_limit}")),
            }
        }
        CheckSpec::RowCount { .. } => CheckQueries {
            counts_sql: Some(format!(
                "SELECT CAST(count(*) AS BIGINT) AS row_count FROM {table}"
            )),
            sample_sql: None,
        },
        CheckSpec::Freshness { column, .. } => CheckQueries {
            counts_sql: Some(format!(
                "SELECT max({}) AS max_value FROM {table} AS t",
                col(column)
            )),
            sample_sql: None,
        },
        CheckSpec::Schema { .. } | CheckSpec::DistributionDrift { .. } => CheckQueries::default(),
    };
    Ok(queries)
}

/// Queries of a check whose rows fail one by one: among the rows where
/// `considered` holds (all when `None`), those where `failing` holds.
pub(super) fn row_level(
    table: &str,
    considered: Option<&str>,
    failing: &str,
    sample_limit: usize,
) -> CheckQueries {
    let counts_filter = considered
        .map(|considered| format!(" WHERE {considered}"))
        .unwrap_or_default();
    let sample_filter = match considered {
        Some(considered) => format!("{considered} AND ({failing})"),
        None => failing.to_owned(),
    };
    CheckQueries {
        counts_sql: Some(format!(
            "SELECT CAST(count(*) AS BIGINT) AS element_count, \
             CAST(count(*) FILTER (WHERE {failing}) AS BIGINT) AS unexpected_count \
             FROM {table} AS t{counts_filter}"
        )),
        sample_sql: (sample_limit > 0).then(|| {
            format!("SELECT t.* FROM {table} AS t WHERE {sample_filter} LIMIT {sample_limit}")
        }),
    }
}

pub(super) fn unique(table: &str, columns: &[String], sample_limit: usize) -> CheckQueries {
    let keys = columns
        .iter()
        .map(|c| col(c))
        .collect::<Vec<_>>()
        .join(", ");
    let not_null = columns
        .iter()
        .map(|c| format!("{} IS NOT NULL", col(c)))
        .collect::<Vec<_>>()
        .join(" AND ");
    let groups = format!("FROM {table} AS t WHERE {not_null} GROUP BY {keys}");
    CheckQueries {
        counts_sql: Some(format!(
            "SELECT CAST(COALESCE(sum(g.n), 0) AS BIGINT) AS element_count, \
             CAST(COALESCE(sum(g.n) FILTER (WHERE g.n > 1), 0) AS BIGINT) AS unexpected_count \
             FROM (SELECT count(*) AS n {groups}) AS g"
        )),
        sample_sql: (sample_limit > 0).then(|| {
            format!(
                "SELECT {keys}, count(*) AS duplicate_count {groups} \
                 HAVING count(*) > 1 ORDER BY duplicate_count DESC LIMIT {sample_limit}"
            )
        }),
    }
}

pub(super) fn referential(
    table: &str,
    reference: &str,
    column: &str,
    ref_column: &str,
    sample_limit: usize,
) -> CheckQueries {
    let value = col(column);
    // Counted through a join with the distinct referenced values rather than
    // NOT EXISTS: DataFusion turns a subquery into a join only in a WHERE
    // clause, not inside an aggregate's FILTER.
    let counts_sql = format!(
        "SELECT CAST(count(*) AS BIGINT) AS element_count, \
         CAST(count(*) FILTER (WHERE r.k IS NULL) AS BIGINT) AS unexpected_count \
         FROM {table} AS t LEFT JOIN (SELECT DISTINCT {} AS k FROM {reference}) AS r ON {value} = r.k \
         WHERE {value} IS NOT NULL",
        quote_ident(ref_column)
    );
    CheckQueries {
        counts_sql: Some(counts_sql),
        sample_sql: (sample_limit > 0).then(|| {
            format!(
                "SELECT t.* FROM {table} AS t WHERE {value} IS NOT NULL AND NOT EXISTS \
                 (SELECT 1 FROM {reference} AS r WHERE r.{} = {value}) LIMIT {sample_limit}",
                quote_ident(ref_column)
            )
        }),
    }
}

pub(super) fn no_details() -> Value {
    Value::Object(Map::new())
}
