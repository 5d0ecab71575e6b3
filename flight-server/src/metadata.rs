//! Static answers to metadata commands: SQL info, XDBC type info, and the
//! (always empty) key listings, whose schemas the Flight SQL spec fixes.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow_flight::sql::metadata::{
    SqlInfoData, SqlInfoDataBuilder, XdbcTypeInfo, XdbcTypeInfoData, XdbcTypeInfoDataBuilder,
};
use arrow_flight::sql::{
    Nullable, Searchable, SqlInfo, SqlNullOrdering, SqlOuterJoinsSupportLevel,
    SqlSupportedCaseSensitivity, SqlSupportedTransaction, SupportedSqlGrammar, XdbcDataType,
    XdbcDatetimeSubcode,
};

/// What GetSqlInfo answers.
pub(crate) fn sql_info() -> SqlInfoData {
    let mut info = SqlInfoDataBuilder::new();
    info.append(SqlInfo::FlightSqlServerName, "Basin");
    info.append(SqlInfo::FlightSqlServerVersion, env!("CARGO_PKG_VERSION"));
    info.append(SqlInfo::FlightSqlServerArrowVersion, arrow_version());
    info.append(SqlInfo::FlightSqlServerReadOnly, false);
    info.append(SqlInfo::FlightSqlServerSql, true);
    info.append(SqlInfo::FlightSqlServerSubstrait, false);
    info.append(
        SqlInfo::FlightSqlServerTransaction,
        SqlSupportedTransaction::None as i32,
    );
    info.append(SqlInfo::FlightSqlServerCancel, true);
    info.append(SqlInfo::FlightSqlServerBulkIngestion, true);
    info.append(SqlInfo::FlightSqlServerIngestTransactionsSupported, false);
    info.append(SqlInfo::SqlDdlCatalog, false);
    info.append(SqlInfo::SqlDdlSchema, false);
    info.append(SqlInfo::SqlDdlTable, true);
    // Unquoted identifiers fold to lowercase; quoted ones keep their case.
    info.append(
        SqlInfo::SqlIdentifierCase,
        SqlSupportedCaseSensitivity::SqlCaseSensitivityLowercase as i32,
    );
    info.append(SqlInfo::SqlIdentifierQuoteChar, "\"");
    info.append(
        SqlInfo::SqlQuotedIdentifierCase,
        SqlSupportedCaseSensitivity::SqlCaseSensitivityCaseInsensitive as i32,
    );
    info.append(SqlInfo::SqlAllTablesAreSelectable, true);
    // DataFusion sorts nulls last in ascending order: "high".
    info.append(
        SqlInfo::SqlNullOrdering,
        SqlNullOrdering::SqlNullsSortedHigh as i32,
    );
    info.append(SqlInfo::SqlSupportsColumnAliasing, true);
    info.append(SqlInfo::SqlNullPlusNullIsNull, true);
    info.append(
        SqlInfo::SqlSupportedGrammar,
        (1 << SupportedSqlGrammar::SqlMinimumGrammar as i32)
            | (1 << SupportedSqlGrammar::SqlCoreGrammar as i32),
    );
    // A bitmask over SupportedAnsi92SqlGrammarLevel (not re-exported by
    // arrow-flight): bit 0 entry, bit 1 intermediate.
    info.append(SqlInfo::SqlAnsi92SupportedLevel, 0b011_i32);
    info.append(
        SqlInfo::SqlOuterJoinsSupportLevel,
        SqlOuterJoinsSupportLevel::SqlFullOuterJoins as i32,
    );
    info.append(SqlInfo::SqlSchemaTerm, "schema");
    info.append(SqlInfo::SqlCatalogTerm, "catalog");
    info.append(SqlInfo::SqlMaxColumnNameLength, 63_i64);
    info.append(SqlInfo::SqlTransactionsSupported, false);
    info.build().expect("the SQL info table builds")
}

fn arrow_version() -> &'static str {
    // The arrow major is pinned workspace-wide (DataFusion's); see Cargo.toml.
    "59"
}

/// What GetXdbcTypeInfo answers: the SQL types DataFusion accepts in casts and DDL.
pub(crate) fn xdbc_type_info() -> XdbcTypeInfoData {
    let mut types = XdbcTypeInfoDataBuilder::new();
    let plain = |name: &str, data_type: XdbcDataType, searchable: Searchable| XdbcTypeInfo {
        type_name: name.to_owned(),
        data_type,
        column_size: None,
        literal_prefix: None,
        literal_suffix: None,
        create_params: None,
        nullable: Nullable::NullabilityNullable,
        case_sensitive: false,
        searchable,
        unsigned_attribute: None,
        fixed_prec_scale: false,
        auto_increment: None,
        local_type_name: Some(name.to_owned()),
        minimum_scale: None,
        maximum_scale: None,
        sql_data_type: data_type,
        datetime_subcode: None,
        num_prec_radix: None,
        interval_precision: None,
    };
    let numeric = |name: &str, data_type: XdbcDataType, size: i32| XdbcTypeInfo {
        column_size: Some(size),
        unsigned_attribute: Some(false),
        num_prec_radix: Some(10),
        ..plain(name, data_type, Searchable::Basic)
    };
    types.append(plain("BOOLEAN", XdbcDataType::XdbcBit, Searchable::Basic));
    types.append(numeric("TINYINT", XdbcDataType::XdbcTinyint, 3));
    types.append(numeric("SMALLINT", XdbcDataType::XdbcSmallint, 5));
    types.append(numeric("INTEGER", XdbcDataType::XdbcInteger, 10));
    types.append(numeric("BIGINT", XdbcDataType::XdbcBigint, 19));
    types.append(numeric("REAL", XdbcDataType::XdbcReal, 7));
    types.append(numeric("DOUBLE", XdbcDataType::XdbcDouble, 15));
    types.append(XdbcTypeInfo {
        create_params: Some(vec!["precision".into(), "scale".into()]),
        fixed_prec_scale: true,
        minimum_scale: Some(0),
        maximum_scale: Some(38),
        ..numeric("DECIMAL", XdbcDataType::XdbcDecimal, 38)
    });
    types.append(XdbcTypeInfo {
        literal_prefix: Some("'".into()),
        literal_suffix: Some("'".into()),
        case_sensitive: true,
        ..plain("VARCHAR", XdbcDataType::XdbcVarchar, Searchable::Full)
    });
    types.append(XdbcTypeInfo {
        literal_prefix: Some("X'".into()),
        literal_suffix: Some("'".into()),
        ..plain("BYTEA", XdbcDataType::XdbcVarbinary, Searchable::None)
    });
    types.append(XdbcTypeInfo {
        literal_prefix: Some("DATE '".into()),
        literal_suffix: Some("'".into()),
        // ODBC's SQL_CODE_DATE is 1, which the proto names "year".
        datetime_subcode: Some(XdbcDatetimeSubcode::XdbcSubcodeYear),
        ..plain("DATE", XdbcDataType::XdbcDate, Searchable::Basic)
    });
    types.append(XdbcTypeInfo {
        literal_prefix: Some("TIME '".into()),
        literal_suffix: Some("'".into()),
        datetime_subcode: Some(XdbcDatetimeSubcode::XdbcSubcodeTime),
        ..plain("TIME", XdbcDataType::XdbcTime, Searchable::Basic)
    });
    types.append(XdbcTypeInfo {
        literal_prefix: Some("TIMESTAMP '".into()),
        literal_suffix: Some("'".into()),
        datetime_subcode: Some(XdbcDatetimeSubcode::XdbcSubcodeTimestamp),
        ..plain("TIMESTAMP", XdbcDataType::XdbcTimestamp, Searchable::Basic)
    });
    types.build().expect("the XDBC type table builds")
}

/// The columns of GetPrimaryKeys results.
pub(crate) fn primary_keys_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("catalog_name", DataType::Utf8, true),
        Field::new("db_schema_name", DataType::Utf8, true),
        Field::new("table_name", DataType::Utf8, false),
        Field::new("column_name", DataType::Utf8, false),
        Field::new("key_name", DataType::Utf8, true),
        Field::new("key_sequence", DataType::Int32, false),
    ]))
}

/// The columns of GetExportedKeys, GetImportedKeys and GetCrossReference results.
pub(crate) fn foreign_keys_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("pk_catalog_name", DataType::Utf8, true),
        Field::new("pk_db_schema_name", DataType::Utf8, true),
        Field::new("pk_table_name", DataType::Utf8, false),
        Field::new("pk_column_name", DataType::Utf8, false),
        Field::new("fk_catalog_name", DataType::Utf8, true),
        Field::new("fk_db_schema_name", DataType::Utf8, true),
        Field::new("fk_table_name", DataType::Utf8, false),
        Field::new("fk_column_name", DataType::Utf8, false),
        Field::new("key_sequence", DataType::Int32, false),
        Field::new("fk_key_name", DataType::Utf8, true),
        Field::new("pk_key_name", DataType::Utf8, true),
        Field::new("update_rule", DataType::UInt8, false),
        Field::new("delete_rule", DataType::UInt8, false),
    ]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_tables_build() {
        let info = sql_info();
        let batch = info
            .record_batch([SqlInfo::FlightSqlServerName as u32])
            .unwrap();
        assert_eq!(batch.num_rows(), 1);
        let types = xdbc_type_info();
        assert!(types.record_batch(None).unwrap().num_rows() >= 10);
    }
}
