use std::sync::Arc;

use arrow::datatypes::{DataType, TimeUnit};

use crate::{Error, Result};

/// Parses a column type as users write it in a supplied schema.
///
/// SQL-style names (`bigint`, `double`, `text`, `decimal(12,2)`, `timestamp`,
/// `timestamptz`, `date`, `boolean`) are accepted, and so is any Arrow type in
/// its display form (`Int32`, `Timestamp(Microsecond, Some("UTC"))`).
pub fn parse_data_type(name: &str) -> Result<DataType> {
    let lower = name.trim().to_ascii_lowercase();
    let simple = match lower.as_str() {
        "bool" | "boolean" => Some(DataType::Boolean),
        "tinyint" | "int8" => Some(DataType::Int8),
        "smallint" | "int16" => Some(DataType::Int16),
        "int" | "integer" | "int32" => Some(DataType::Int32),
        "bigint" | "long" | "int64" => Some(DataType::Int64),
        "float" | "real" | "float32" => Some(DataType::Float32),
        "double" | "float64" | "double precision" => Some(DataType::Float64),
        "text" | "string" | "varchar" | "utf8" => Some(DataType::Utf8),
        "date" => Some(DataType::Date32),
        "timestamp" => Some(DataType::Timestamp(TimeUnit::Microsecond, None)),
        "timestamptz" | "timestamp with time zone" => Some(DataType::Timestamp(
            TimeUnit::Microsecond,
            Some(Arc::from("UTC")),
        )),
        "binary" | "bytea" => Some(DataType::Binary),
        _ => None,
    };
    if let Some(data_type) = simple {
        return Ok(data_type);
    }
    if let Some(args) = lower
        .strip_prefix("decimal")
        .or_else(|| lower.strip_prefix("numeric"))
        .and_then(|rest| rest.trim().strip_prefix('('))
        .and_then(|rest| rest.strip_suffix(')'))
    {
        let mut parts = args.split(',').map(|p| p.trim().parse::<i16>());
        return match (parts.next(), parts.next(), parts.next()) {
            (Some(Ok(precision)), scale, None) if (1..=38).contains(&precision) => {
                let scale = match scale {
                    Some(Ok(s)) => s,
                    None => 0,
                    Some(Err(_)) => return Err(bad_type(name)),
                };
                Ok(DataType::Decimal128(precision as u8, scale as i8))
            }
            _ => Err(bad_type(name)),
        };
    }
    name.trim().parse::<DataType>().map_err(|_| bad_type(name))
}

fn bad_type(name: &str) -> Error {
    Error::InvalidOption {
        option: "schema".into(),
        message: format!("unknown column type `{name}`"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sql_and_arrow_names_parse() {
        assert_eq!(parse_data_type("BIGINT").unwrap(), DataType::Int64);
        assert_eq!(
            parse_data_type("decimal(12, 2)").unwrap(),
            DataType::Decimal128(12, 2)
        );
        assert_eq!(
            parse_data_type("timestamptz").unwrap(),
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
        );
        assert_eq!(parse_data_type("Int16").unwrap(), DataType::Int16);
        assert!(parse_data_type("decimal(99,2)").is_err());
        assert!(parse_data_type("money").is_err());
    }
}
