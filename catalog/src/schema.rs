//! The shapes of schemas the catalog stores: a dataset's or a source's
//! columns, and one change between two versions of them. The engine derives
//! them from Arrow and diffs them; here they are plain data.

use serde::{Deserialize, Serialize};

/// One column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SchemaField {
    /// Column name.
    pub name: String,
    /// Arrow type as Arrow spells it (`Int64`, `Decimal128(12, 2)`,
    /// `Timestamp(µs, "UTC")`); Basin's short names (`bigint`,
    /// `decimal(12,2)`, `timestamptz`) are accepted on input.
    #[serde(rename = "type")]
    pub data_type: String,
    /// The source's type name, when the column came from a source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub native_type: Option<String>,
    /// Whether nulls are allowed.
    #[serde(default = "yes")]
    pub nullable: bool,
    /// What the column holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

fn yes() -> bool {
    true
}

/// What changed about a column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// A new column.
    Added,
    /// A column is gone.
    Removed,
    /// Renamed, as declared by the caller.
    Renamed,
    /// The type can hold every old value (`Int32` → `Int64`).
    TypeWidened,
    /// The new type holds fewer values (`Int64` → `Int32`).
    TypeNarrowed,
    /// The type changed to one of another family (`Int64` → `Utf8`).
    TypeChanged,
    /// Nulls are now allowed or no longer allowed.
    NullabilityChanged,
}

/// One difference between two schemas.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SchemaChange {
    /// What kind of change.
    pub kind: ChangeKind,
    /// The column (its new name for renames).
    pub column: String,
    /// Before: the type, the old name, or `nullable`/`not null`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// After.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// Whether queries or writes that worked before may fail now.
    pub breaking: bool,
}
