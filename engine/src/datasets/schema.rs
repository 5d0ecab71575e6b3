//! One schema model for sources and datasets, the diff between two schemas,
//! schema history, and the casts that make any source's types storable in
//! Delta.
//!
//! A field is its Arrow type (Arrow's spelling, `Int64`), the source's own
//! type name when it came from a source (`numeric(12,2)`), nullability and a
//! description. Diffs classify each change and say whether it breaks readers
//! of the data; the rules follow Delta's type widening.

use std::collections::BTreeMap;
use std::str::FromStr;

use arrow::datatypes::{DataType, Field, Fields, Schema, TimeUnit};
use sha2::{Digest, Sha256};

pub use basin_catalog::schema::{ChangeKind, SchemaChange, SchemaField};

use crate::{Error, Result};

/// The Arrow type of a field, parsed.
pub fn arrow_type(field: &SchemaField) -> Result<DataType> {
    parse_type(&field.data_type)
}

/// Parses Arrow's spelling of a type, or Basin's short names.
pub fn parse_type(text: &str) -> Result<DataType> {
    if let Ok(t) = DataType::from_str(text) {
        return Ok(t);
    }
    basin_connectors::file::parse_data_type(text)
        .map_err(|e| Error::InvalidInput(format!("type {text:?}: {e}")))
}

/// The fields of an Arrow schema.
pub fn fields_of(schema: &Schema) -> Vec<SchemaField> {
    schema
        .fields()
        .iter()
        .map(|f| SchemaField {
            name: f.name().clone(),
            data_type: f.data_type().to_string(),
            native_type: None,
            nullable: f.is_nullable(),
            description: f.metadata().get("comment").cloned(),
        })
        .collect()
}

/// The fields of a discovered stream.
pub fn fields_of_stream(stream: &basin_connectors::StreamInfo) -> Vec<SchemaField> {
    stream
        .columns
        .iter()
        .map(|c| SchemaField {
            name: c.name.clone(),
            data_type: c.data_type.clone(),
            native_type: Some(c.native_type.clone()),
            nullable: c.nullable,
            description: c.description.clone(),
        })
        .collect()
}

/// A stable hash of names, types and nullability (not descriptions).
pub fn fingerprint(fields: &[SchemaField]) -> String {
    let mut hash = Sha256::new();
    for f in fields {
        hash.update(f.name.as_bytes());
        hash.update([0]);
        hash.update(f.data_type.as_bytes());
        hash.update([0, u8::from(f.nullable), 0xff]);
    }
    hex::encode(&hash.finalize()[..16])
}

/// Differences from `old` to `new`. `renames` maps old names to new ones.
pub fn diff(
    old: &[SchemaField],
    new: &[SchemaField],
    renames: &BTreeMap<String, String>,
) -> Result<Vec<SchemaChange>> {
    let mut changes = Vec::new();
    let renamed_to = |old_name: &str| renames.get(old_name).map(String::as_str);
    for before in old {
        let target = renamed_to(&before.name).unwrap_or(&before.name);
        let Some(after) = new.iter().find(|f| f.name == target) else {
            changes.push(SchemaChange {
                kind: ChangeKind::Removed,
                column: before.name.clone(),
                from: Some(before.data_type.clone()),
                to: None,
                breaking: true,
            });
            continue;
        };
        if target != before.name {
            changes.push(SchemaChange {
                kind: ChangeKind::Renamed,
                column: target.to_owned(),
                from: Some(before.name.clone()),
                to: Some(target.to_owned()),
                breaking: true,
            });
        }
        let (from_type, to_type) = (arrow_type(before)?, arrow_type(after)?);
        if !same_type(&from_type, &to_type) {
            let kind = if widens(&from_type, &to_type) {
                ChangeKind::TypeWidened
            } else if widens(&to_type, &from_type) {
                ChangeKind::TypeNarrowed
            } else {
                ChangeKind::TypeChanged
            };
            changes.push(SchemaChange {
                kind,
                column: target.to_owned(),
                from: Some(before.data_type.clone()),
                to: Some(after.data_type.clone()),
                breaking: kind != ChangeKind::TypeWidened,
            });
        }
        if before.nullable != after.nullable {
            let label = |n: bool| if n { "nullable" } else { "not null" };
            changes.push(SchemaChange {
                kind: ChangeKind::NullabilityChanged,
                column: target.to_owned(),
                from: Some(label(before.nullable).into()),
                to: Some(label(after.nullable).into()),
                // Allowing nulls keeps old data valid; forbidding them may not.
                breaking: !after.nullable,
            });
        }
    }
    for after in new {
        let existed = old
            .iter()
            .any(|b| renamed_to(&b.name).unwrap_or(&b.name) == after.name);
        if !existed {
            changes.push(SchemaChange {
                kind: ChangeKind::Added,
                column: after.name.clone(),
                from: None,
                to: Some(after.data_type.clone()),
                breaking: false,
            });
        }
    }
    Ok(changes)
}

/// Types that differ only in representation: string views, large offsets,
/// and the names and nullability of nested fields (sources call list items
/// `item`, Delta calls them `element`).
fn same_type(a: &DataType, b: &DataType) -> bool {
    representation_free(a) == representation_free(b)
}

fn representation_free(t: &DataType) -> DataType {
    use DataType::*;
    let field = |f: &Field| Field::new("item", representation_free(f.data_type()), true);
    match t {
        LargeUtf8 | Utf8View => Utf8,
        LargeBinary | BinaryView => Binary,
        List(f) | LargeList(f) | ListView(f) | LargeListView(f) => List(field(f).into()),
        FixedSizeList(f, n) => FixedSizeList(field(f).into(), *n),
        Struct(fields) => Struct(Fields::from(
            fields
                .iter()
                .map(|f| Field::new(f.name(), representation_free(f.data_type()), true))
                .collect::<Vec<_>>(),
        )),
        Map(f, sorted) => Map(field(f).into(), *sorted),
        other => other.clone(),
    }
}

/// Whether every value of `from` fits `to` (Delta's type widening and the
/// lossless integer/float/decimal steps).
pub fn widens(from: &DataType, to: &DataType) -> bool {
    use DataType::*;
    let int_bits = |t: &DataType| match t {
        Int8 => Some((8, true)),
        Int16 => Some((16, true)),
        Int32 => Some((32, true)),
        Int64 => Some((64, true)),
        UInt8 => Some((8, false)),
        UInt16 => Some((16, false)),
        UInt32 => Some((32, false)),
        UInt64 => Some((64, false)),
        _ => None,
    };
    // Decimal digits an integer type needs.
    let int_digits = |bits: u32| match bits {
        8 => 3,
        16 => 5,
        32 => 10,
        _ => 20,
    };
    match (from, to) {
        _ if same_type(from, to) => false,
        (a, b) if int_bits(a).is_some() && int_bits(b).is_some() => {
            let ((fb, fs), (tb, ts)) = (
                int_bits(a).unwrap_or_default(),
                int_bits(b).unwrap_or_default(),
            );
            (fs == ts && tb > fb) || (!fs && ts && tb > fb)
        }
        (a, Float64) if int_bits(a).is_some_and(|(b, _)| b <= 32) => true,
        (a, Float32) if int_bits(a).is_some_and(|(b, _)| b <= 16) => true,
        (Float16, Float32 | Float64) | (Float32, Float64) => true,
        (a, Decimal128(p, s) | Decimal256(p, s)) if int_bits(a).is_some() => {
            let (bits, _) = int_bits(a).unwrap_or_default();
            i32::from(*p) - i32::from(*s) >= int_digits(bits)
        }
        (Decimal128(p1, s1) | Decimal256(p1, s1), Decimal128(p2, s2) | Decimal256(p2, s2)) => {
            s2 >= s1 && i32::from(*p2) - i32::from(*s2) >= i32::from(*p1) - i32::from(*s1)
        }
        (Date32 | Date64, Timestamp(_, None)) => true,
        (Timestamp(u1, z1), Timestamp(u2, z2)) => z1 == z2 && finer_or_equal(u2, u1),
        (Utf8 | LargeUtf8 | Utf8View, Utf8 | LargeUtf8 | Utf8View) => false,
        _ => false,
    }
}

fn finer_or_equal(a: &TimeUnit, b: &TimeUnit) -> bool {
    let rank = |u: &TimeUnit| match u {
        TimeUnit::Second => 0,
        TimeUnit::Millisecond => 1,
        TimeUnit::Microsecond => 2,
        TimeUnit::Nanosecond => 3,
    };
    rank(a) >= rank(b)
}

/// The type Delta stores a column of `data_type` as: Delta has no unsigned,
/// time-of-day, interval, dictionary or nanosecond types, so those become
/// the nearest type that keeps every value (documented in docs/connectors.md).
pub fn storable_type(data_type: &DataType) -> DataType {
    use DataType::*;
    match data_type {
        UInt8 => Int16,
        UInt16 => Int32,
        UInt32 => Int64,
        UInt64 => Decimal128(20, 0),
        Float16 => Float32,
        Dictionary(_, value) => storable_type(value),
        Time32(_) | Time64(_) | Interval(_) | Duration(_) => Utf8,
        Timestamp(TimeUnit::Nanosecond | TimeUnit::Millisecond | TimeUnit::Second, tz) => {
            Timestamp(TimeUnit::Microsecond, tz.clone())
        }
        Date64 => Date32,
        LargeUtf8 | Utf8View => Utf8,
        LargeBinary | BinaryView | FixedSizeBinary(_) => Binary,
        Decimal256(p, s) if *p <= 38 => Decimal128(*p, *s),
        Decimal256(..) => Utf8,
        Decimal128(p, s) if *p == 0 || *s > 38 => Decimal128(38, (*s).min(38)),
        Null => Utf8,
        List(field)
        | LargeList(field)
        | FixedSizeList(field, _)
        | ListView(field)
        | LargeListView(field) => List(storable_field(field).into()),
        Struct(fields) => Struct(Fields::from(
            fields.iter().map(|f| storable_field(f)).collect::<Vec<_>>(),
        )),
        Map(field, sorted) => Map(storable_field(field).into(), *sorted),
        other => other.clone(),
    }
}

fn storable_field(field: &Field) -> Field {
    field
        .clone()
        .with_data_type(storable_type(field.data_type()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(name: &str, t: &str, nullable: bool) -> SchemaField {
        SchemaField {
            name: name.into(),
            data_type: t.into(),
            native_type: None,
            nullable,
            description: None,
        }
    }

    #[test]
    fn diff_classifies_each_change() {
        let old = vec![
            field("id", "Int32", false),
            field("amount", "Decimal128(10, 2)", true),
            field("gone", "Utf8", true),
            field("old_name", "Utf8", true),
            field("score", "Int64", true),
            field("flag", "Boolean", true),
        ];
        let new = vec![
            field("id", "Int64", false),
            field("amount", "Decimal128(12, 2)", false),
            field("new_name", "Utf8", true),
            field("score", "Int32", true),
            field("flag", "Utf8", true),
            field("extra", "Float64", true),
        ];
        let renames = BTreeMap::from([("old_name".to_owned(), "new_name".to_owned())]);
        let changes = diff(&old, &new, &renames).unwrap();
        let find = |kind: ChangeKind, column: &str| {
            changes
                .iter()
                .find(|c| c.kind == kind && c.column == column)
                .unwrap_or_else(|| panic!("{kind:?} {column} in {changes:?}"))
        };
        assert!(!find(ChangeKind::TypeWidened, "id").breaking);
        assert!(!find(ChangeKind::TypeWidened, "amount").breaking);
        assert!(find(ChangeKind::NullabilityChanged, "amount").breaking);
        assert!(find(ChangeKind::Removed, "gone").breaking);
        assert!(find(ChangeKind::Renamed, "new_name").breaking);
        assert!(find(ChangeKind::TypeNarrowed, "score").breaking);
        assert!(find(ChangeKind::TypeChanged, "flag").breaking);
        assert!(!find(ChangeKind::Added, "extra").breaking);
        assert_eq!(changes.len(), 8);
    }

    #[test]
    fn list_item_names_are_not_changes() {
        let a = SchemaField {
            name: "xs".into(),
            data_type: DataType::List(Field::new("item", DataType::Int32, true).into()).to_string(),
            native_type: None,
            nullable: true,
            description: None,
        };
        let mut b = a.clone();
        b.data_type =
            DataType::List(Field::new("element", DataType::Int32, false).into()).to_string();
        assert!(diff(&[a], &[b], &BTreeMap::new()).unwrap().is_empty());
    }

    #[test]
    fn short_names_parse_like_arrow_names() {
        assert_eq!(parse_type("bigint").unwrap(), DataType::Int64);
        assert_eq!(parse_type("Int64").unwrap(), DataType::Int64);
        assert_eq!(
            parse_type("decimal(12,2)").unwrap(),
            DataType::Decimal128(12, 2)
        );
        assert!(parse_type("nonsense").is_err());
    }

    #[test]
    fn unchanged_schemas_have_equal_fingerprints() {
        let a = vec![field("id", "Int64", false)];
        let mut b = a.clone();
        b[0].description = Some("the key".into());
        assert_eq!(fingerprint(&a), fingerprint(&b));
        b[0].nullable = true;
        assert_ne!(fingerprint(&a), fingerprint(&b));
    }

    #[test]
    fn storable_types_cover_what_delta_lacks() {
        assert_eq!(storable_type(&DataType::UInt32), DataType::Int64);
        assert_eq!(
            storable_type(&DataType::Time64(TimeUnit::Nanosecond)),
            DataType::Utf8
        );
        assert_eq!(
            storable_type(&DataType::Timestamp(
                TimeUnit::Nanosecond,
                Some("UTC".into())
            )),
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
        );
        assert_eq!(
            storable_type(&DataType::Dictionary(
                Box::new(DataType::Int8),
                Box::new(DataType::Utf8)
            )),
            DataType::Utf8
        );
    }
}
