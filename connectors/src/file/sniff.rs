use crate::Result;
use crate::file::{CsvOptions, FormatKind};

/// How a CSV file is written, resolved from the caller's options and the data itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvDialect {
    /// Field delimiter.
    pub delimiter: u8,
    /// Quote character.
    pub quote: u8,
    /// Whether the first record names the columns.
    pub has_header: bool,
    /// Strings read as null, besides the empty field.
    pub null_values: Vec<String>,
    /// Whether quoted fields may contain line breaks; parallel byte-range
    /// scanning is only safe when they do not.
    pub newlines_in_values: bool,
}

impl Default for CsvDialect {
    fn default() -> Self {
        Self {
            delimiter: b',',
            quote: b'"',
            has_header: true,
            null_values: Vec::new(),
            newlines_in_values: false,
        }
    }
}

/// Recognises a file's format from its first bytes (already decompressed).
pub fn sniff_format(head: &[u8]) -> FormatKind {
    if head.starts_with(b"PAR1") {
        return FormatKind::Parquet;
    }
    if head.starts_with(b"ARROW1") || head.starts_with(&[0xff, 0xff, 0xff, 0xff]) {
        return FormatKind::Arrow;
    }
    let text = head
        .strip_prefix(b"\xef\xbb\xbf".as_slice())
        .unwrap_or(head);
    match text.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'[') => FormatKind::Json,
        Some(b'{') => FormatKind::Ndjson,
        _ => FormatKind::Csv,
    }
}

const DELIMITER_CANDIDATES: [u8; 4] = [b',', b';', b'\t', b'|'];
const SNIFF_RECORDS: usize = 200;

/// Resolves a CSV dialect: what the caller set wins, the rest is sniffed from `head`.
pub fn sniff_csv(head: &[u8], options: &CsvOptions) -> Result<CsvDialect> {
    let quote = options.quote_byte()?.unwrap_or(b'"');
    // The sample may end mid-record; only whole lines take part.
    let sample = match head.iter().rposition(|&b| b == b'\n') {
        Some(end) if end + 1 < head.len() => &head[..=end],
        _ => head,
    };
    let delimiter = match options.delimiter_byte()? {
        Some(d) => d,
        None => sniff_delimiter(sample, quote),
    };
    let records = sample_records(sample, delimiter, quote);
    let has_header = options
        .header
        .unwrap_or_else(|| looks_like_header(&records.rows));
    Ok(CsvDialect {
        delimiter,
        quote,
        has_header,
        null_values: options.null_values.clone(),
        newlines_in_values: records.spans_lines,
    })
}

struct Sample {
    rows: Vec<Vec<String>>,
    spans_lines: bool,
}

fn sample_records(sample: &[u8], delimiter: u8, quote: u8) -> Sample {
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .quote(quote)
        .has_headers(false)
        .flexible(true)
        .from_reader(sample);
    let mut rows = Vec::new();
    let mut spans_lines = false;
    let mut record = csv::StringRecord::new();
    let mut last_line = 0;
    while rows.len() < SNIFF_RECORDS {
        match reader.read_record(&mut record) {
            Ok(true) => {
                let line = record.position().map_or(0, |p| p.line());
                if !rows.is_empty() && line > last_line + 1 {
                    spans_lines = true;
                }
                last_line = line;
                rows.push(record.iter().map(str::to_owned).collect());
            }
            Ok(false) | Err(_) => break,
        }
    }
    Sample { rows, spans_lines }
}

/// Picks the candidate that splits the sample into the most consistent number (> 1) of fields.
fn sniff_delimiter(sample: &[u8], quote: u8) -> u8 {
    let mut best = (b',', 0.0_f64);
    for candidate in DELIMITER_CANDIDATES {
        let rows = sample_records(sample, candidate, quote).rows;
        let Some(first) = rows.first() else { continue };
        if first.len() < 2 {
            continue;
        }
        let consistent = rows.iter().filter(|r| r.len() == first.len()).count();
        let score = consistent as f64 / rows.len() as f64 + first.len() as f64 * 1e-3;
        if score > best.1 {
            best = (candidate, score);
        }
    }
    best.0
}

fn looks_numeric(value: &str) -> bool {
    let v = value.trim();
    !v.is_empty() && v.parse::<f64>().is_ok()
}

/// A first row is a header when its fields are distinct, non-empty and non-numeric,
/// and at least one column below it holds numbers, or the sample has only that row.
fn looks_like_header(rows: &[Vec<String>]) -> bool {
    let Some(first) = rows.first() else {
        return true;
    };
    let distinct: std::collections::HashSet<&String> = first.iter().collect();
    if distinct.len() != first.len()
        || first
            .iter()
            .any(|f| f.trim().is_empty() || looks_numeric(f))
    {
        return false;
    }
    if rows.len() == 1 {
        return true;
    }
    let numeric_below = (0..first.len()).any(|col| {
        rows[1..]
            .iter()
            .filter_map(|r| r.get(col))
            .filter(|v| !v.is_empty())
            .all(|v| looks_numeric(v))
    });
    // All-text tables: a first row of short identifier-like names is still a header.
    numeric_below
        || first.iter().all(|f| {
            f.len() <= 64
                && f.chars()
                    .all(|c| c.is_alphanumeric() || matches!(c, '_' | ' ' | '-' | '.'))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_are_recognised_from_leading_bytes() {
        assert_eq!(sniff_format(b"PAR1...."), FormatKind::Parquet);
        assert_eq!(sniff_format(b"ARROW1\0\0"), FormatKind::Arrow);
        assert_eq!(sniff_format(b"  [{\"a\":1}]"), FormatKind::Json);
        assert_eq!(sniff_format(b"{\"a\":1}\n{\"a\":2}"), FormatKind::Ndjson);
        assert_eq!(sniff_format(b"a,b\n1,2\n"), FormatKind::Csv);
    }

    #[test]
    fn semicolon_files_are_sniffed() {
        let d = sniff_csv(
            b"id;name;amount\n1;a,b;2.5\n2;c;3\n",
            &CsvOptions::default(),
        )
        .unwrap();
        assert_eq!(d.delimiter, b';');
        assert!(d.has_header);
        assert!(!d.newlines_in_values);
    }

    #[test]
    fn headerless_numeric_files_are_detected() {
        let d = sniff_csv(b"1,2,3\n4,5,6\n", &CsvOptions::default()).unwrap();
        assert!(!d.has_header);
    }

    #[test]
    fn quoted_line_breaks_disable_range_splitting() {
        let d = sniff_csv(b"id,note\n1,\"two\nlines\"\n2,x\n", &CsvOptions::default()).unwrap();
        assert!(d.newlines_in_values);
    }

    #[test]
    fn caller_options_win_over_sniffing() {
        let opts = CsvOptions {
            delimiter: Some("|".into()),
            header: Some(false),
            ..Default::default()
        };
        let d = sniff_csv(b"a,b\n1,2\n", &opts).unwrap();
        assert_eq!(d.delimiter, b'|');
        assert!(!d.has_header);
    }
}
