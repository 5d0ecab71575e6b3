use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The kinds of file Basin reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FormatKind {
    /// Delimited text.
    Csv,
    /// One JSON object per line.
    Ndjson,
    /// A single JSON array of objects.
    Json,
    /// Apache Parquet.
    Parquet,
    /// Arrow IPC, file or stream format.
    Arrow,
}

impl FormatKind {
    /// Parses the names users write (`csv`, `tsv`, `ndjson`, `jsonl`, `json`, `parquet`, `arrow`, `ipc`, ...).
    pub fn parse(name: &str) -> Result<Self> {
        match name.to_ascii_lowercase().as_str() {
            "csv" | "tsv" | "txt" => Ok(Self::Csv),
            "ndjson" | "jsonl" | "jsonlines" => Ok(Self::Ndjson),
            "json" => Ok(Self::Json),
            "parquet" | "pq" => Ok(Self::Parquet),
            "arrow" | "ipc" | "feather" | "arrows" => Ok(Self::Arrow),
            other => Err(Error::UnsupportedFormat(format!(
                "`{other}` (expected csv, ndjson, json, parquet or arrow)"
            ))),
        }
    }

    /// Guesses the format from a file name's extension, ignoring a compression suffix.
    pub fn from_path(path: &Path) -> Option<Self> {
        let name = path.file_name()?.to_str()?.to_ascii_lowercase();
        let name = name
            .strip_suffix(".gz")
            .or_else(|| name.strip_suffix(".zst"))
            .unwrap_or(&name);
        let ext = Path::new(name).extension()?.to_str()?;
        Self::parse(ext).ok()
    }

    /// The file extension DataFusion expects for this format.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Csv => "csv",
            Self::Ndjson => "ndjson",
            Self::Json => "json",
            Self::Parquet => "parquet",
            Self::Arrow => "arrow",
        }
    }

    /// Whether the format can hold rows that fail to parse; typed binary formats cannot.
    pub fn is_text(self) -> bool {
        matches!(self, Self::Csv | Self::Ndjson | Self::Json)
    }
}

impl std::fmt::Display for FormatKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.extension())
    }
}

/// Transparent compression wrapped around a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Compression {
    /// Plain bytes.
    #[default]
    None,
    /// gzip (`.gz`).
    Gzip,
    /// Zstandard (`.zst`).
    Zstd,
}

impl Compression {
    /// Recognises compression by its magic bytes.
    pub fn sniff(head: &[u8]) -> Self {
        if head.starts_with(&[0x1f, 0x8b]) {
            Self::Gzip
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Self::Zstd
        } else {
            Self::None
        }
    }
}

/// CSV options a caller may set; everything left out is sniffed from the data.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CsvOptions {
    /// Field delimiter, one ASCII character (`,`, `;`, `\t`, `|`, ...).
    pub delimiter: Option<String>,
    /// Whether the first line names the columns.
    pub header: Option<bool>,
    /// Quote character, one ASCII character.
    pub quote: Option<String>,
    /// Strings read as null, in addition to the empty field.
    #[serde(default)]
    pub null_values: Vec<String>,
}

impl CsvOptions {
    /// The delimiter as a byte, if given.
    pub fn delimiter_byte(&self) -> Result<Option<u8>> {
        single_ascii("delimiter", self.delimiter.as_deref())
    }

    /// The quote as a byte, if given.
    pub fn quote_byte(&self) -> Result<Option<u8>> {
        single_ascii("quote", self.quote.as_deref())
    }

    /// Checks the options that are given, before any data is read.
    pub fn validate(&self) -> Result<()> {
        self.delimiter_byte()?;
        self.quote_byte()?;
        Ok(())
    }
}

fn single_ascii(option: &str, value: Option<&str>) -> Result<Option<u8>> {
    let Some(value) = value else { return Ok(None) };
    let value = match value {
        "\\t" | "tab" => "\t",
        other => other,
    };
    match value.as_bytes() {
        [byte] if byte.is_ascii() => Ok(Some(*byte)),
        _ => Err(Error::InvalidOption {
            option: option.to_owned(),
            message: format!("expected one ASCII character, got {value:?}"),
        }),
    }
}

/// A fully resolved description of how to read one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileFormat {
    /// The format.
    pub kind: FormatKind,
    /// For CSV, the dialect (given or sniffed).
    pub csv: crate::file::CsvDialect,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_from_path_ignores_compression_suffix() {
        assert_eq!(
            FormatKind::from_path(Path::new("a/orders.csv.gz")),
            Some(FormatKind::Csv)
        );
        assert_eq!(
            FormatKind::from_path(Path::new("e.jsonl.zst")),
            Some(FormatKind::Ndjson)
        );
        assert_eq!(
            FormatKind::from_path(Path::new("t.parquet")),
            Some(FormatKind::Parquet)
        );
        assert_eq!(FormatKind::from_path(Path::new("noext")), None);
    }

    #[test]
    fn unknown_format_names_are_refused() {
        assert!(matches!(
            FormatKind::parse("xlsx"),
            Err(Error::UnsupportedFormat(_))
        ));
    }

    #[test]
    fn compression_is_recognised_by_magic() {
        assert_eq!(Compression::sniff(&[0x1f, 0x8b, 8]), Compression::Gzip);
        assert_eq!(
            Compression::sniff(&[0x28, 0xb5, 0x2f, 0xfd, 0]),
            Compression::Zstd
        );
        assert_eq!(Compression::sniff(b"a,b\n"), Compression::None);
    }

    #[test]
    fn delimiter_must_be_one_ascii_char() {
        let opts = CsvOptions {
            delimiter: Some("\\t".into()),
            ..Default::default()
        };
        assert_eq!(opts.delimiter_byte().unwrap(), Some(b'\t'));
        let bad = CsvOptions {
            delimiter: Some(";;".into()),
            ..Default::default()
        };
        assert!(bad.delimiter_byte().is_err());
    }
}
