//! Ingest: any supported file into a dataset as one atomic Delta version.
//!
//! Every source becomes a local, decompressed file first (uploads are spooled
//! to disk, never held in memory). Text formats are scanned by DataFusion in
//! parallel byte ranges; under the `fail` policy a failed write is followed by
//! a row-level pass that names the bad rows, and under `skip`/`quarantine`
//! that pass runs first and splits the file into clean rows and rejects.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use basin_connectors::file::{
    self, CsvOptions, FileFormat, FormatKind, ScanOptions, ValidationReport,
};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncReadExt;

use crate::datasets::write::{Expected, WriteMode, WriteTarget};
use crate::datasets::{open_table, schema_json, snapshot_of};
use crate::error::{Entity, MalformedRows};
use crate::identity::{Action, Principal, Resource};
use crate::runtime::jobs::ProgressFn;
use crate::{Engine, Error, Result};

/// What to do with rows that do not parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BadRowPolicy {
    /// Write nothing and report the bad rows.
    #[default]
    Fail,
    /// Write the good rows and report the bad ones.
    Skip,
    /// Write the good rows; keep the bad ones in `<name>__rejected`.
    Quarantine,
}

crate::option_words!(BadRowPolicy);

/// Suffix of the side dataset that keeps quarantined rows.
pub const REJECTED_SUFFIX: &str = "__rejected";

/// Everything an ingest needs to know besides the data.
#[derive(Debug, Clone, Default)]
pub struct IngestOptions {
    /// How to combine with existing data.
    pub mode: WriteMode,
    /// The format; sniffed from the name or content when absent.
    pub format: Option<FormatKind>,
    /// A file name hinting at the format (from an upload or path).
    pub file_name: Option<String>,
    /// CSV options; what is left out is sniffed.
    pub csv: CsvOptions,
    /// A schema to read with instead of inferring one.
    pub schema: Option<SchemaRef>,
    /// Bad-row policy.
    pub on_error: BadRowPolicy,
    /// Description for a new dataset.
    pub description: Option<String>,
    /// Tags for a new dataset.
    pub tags: Vec<String>,
}

/// What an ingest did.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct IngestReport {
    /// The dataset written.
    pub dataset: String,
    /// The version the write created.
    pub version: i64,
    /// The format read.
    pub format: FormatKind,
    /// Rows written.
    pub rows_written: u64,
    /// Rows refused (skipped or quarantined).
    pub rows_rejected: u64,
    /// The first refused rows.
    pub rejected_sample: Vec<file::RejectedRow>,
    /// Where refused rows were kept, under `quarantine`.
    pub rejected_dataset: Option<String>,
    /// Bytes of (decompressed) input.
    pub bytes_read: u64,
    /// Columns written, as `[{name, type, nullable}]`.
    #[schema(value_type = Vec<crate::datasets::schema::SchemaField>)]
    pub schema: serde_json::Value,
    /// Wall time.
    pub elapsed_ms: u64,
}

/// A file under the data directory's `tmp/` that is removed when dropped.
#[derive(Debug)]
pub struct TempFile(PathBuf);

impl TempFile {
    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

const SNIFF_BYTES: usize = 64 * 1024;

/// How long a download may go without receiving a byte.
const DOWNLOAD_IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// A checked server-side source, not yet read.
#[derive(Debug, Clone)]
pub enum ImportSource {
    /// A file inside the import roots (symlinks resolved).
    Local(PathBuf),
    /// A URL under an allowed prefix.
    Url(url::Url),
}

impl ImportSource {
    /// The name the source carries, a hint at its format.
    pub fn file_name(&self) -> Option<String> {
        match self {
            Self::Local(path) => path.file_name().and_then(|n| n.to_str()).map(str::to_owned),
            Self::Url(url) => url
                .path_segments()
                .and_then(|mut segments| segments.next_back())
                .filter(|name| !name.is_empty())
                .map(str::to_owned),
        }
    }
}

/// A source as a local file.
#[derive(Debug)]
pub enum ImportFile {
    /// A file that stays where it is (a server-side path).
    Local(PathBuf),
    /// A file spooled under `tmp/` (an upload or a download), removed when dropped.
    Temporary {
        /// The spooled file.
        file: TempFile,
        /// The name it came with, a hint at its format.
        name: Option<String>,
    },
}

impl ImportFile {
    /// Where the file is.
    pub fn path(&self) -> &Path {
        match self {
            Self::Local(path) => path,
            Self::Temporary { file, .. } => file.path(),
        }
    }
}

impl Engine {
    fn temp_file(&self, extension: &str) -> TempFile {
        TempFile(
            self.tmp_dir()
                .join(format!("{}.{extension}", uuid::Uuid::now_v7())),
        )
    }

    /// Spools an upload to a temporary file, decompressing it on the way.
    ///
    /// `limit` caps the bytes read (the request body limit); the decompressed
    /// size is capped by the engine's `max_ingest_bytes`. An empty upload is
    /// refused before anything is queued or written.
    pub async fn spool_upload<R>(&self, body: R, limit: Option<u64>) -> Result<(TempFile, u64)>
    where
        R: tokio::io::AsyncRead + Unpin + Send,
    {
        let temp = self.temp_file("upload");
        let stats = file::spool(
            body,
            temp.path(),
            limit,
            Some(self.config().max_ingest_bytes),
        )
        .await?;
        metrics::counter!("basin_ingest_bytes_total").increment(stats.input_bytes);
        if stats.output_bytes == 0 {
            return Err(Error::InvalidInput(
                "the upload is empty: send the file as the body, or as a multipart file field"
                    .into(),
            ));
        }
        Ok((temp, stats.output_bytes))
    }

    /// Checks a server-side source for an ingest into `dataset`: that the
    /// caller may write the dataset (first, so a refused caller never makes
    /// Basin look anything up), and that the source is a path inside the
    /// import roots or an http(s) URL under an allowed prefix. Nothing is
    /// read yet.
    pub async fn resolve_import(
        &self,
        principal: &Principal,
        dataset: &str,
        source: &str,
    ) -> Result<ImportSource> {
        principal.authorize(Action::Write, Resource::Dataset(dataset))?;
        match url::Url::parse(source)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https"))
        {
            Some(url) if self.url_allowlist().allows(&url) => Ok(ImportSource::Url(url)),
            Some(url) => Err(Error::PathNotAllowed(url.to_string())),
            None => Ok(ImportSource::Local(self.resolve_import_path(source).await?)),
        }
    }

    /// Makes a resolved source a local file: a path is used in place; a URL
    /// is downloaded (and decompressed) into a temporary file.
    pub async fn fetch_import(&self, source: ImportSource) -> Result<ImportFile> {
        let url = match source {
            ImportSource::Local(path) => return Ok(ImportFile::Local(path)),
            ImportSource::Url(url) => url,
        };
        use basin_connectors::http::{DownloadError, download};
        let temp = self.temp_file("download");
        let stats = download(
            &url,
            temp.path(),
            self.url_allowlist(),
            Some(self.config().max_ingest_bytes),
            DOWNLOAD_IDLE_TIMEOUT,
        )
        .await
        .map_err(|e| match e {
            DownloadError::NotAllowed(url) => Error::PathNotAllowed(url),
            DownloadError::NotFound(url, _) => Error::PathNotFound(url),
            DownloadError::Unavailable(message) => Error::SourceUnavailable(message),
            DownloadError::Spool(e) => e.into(),
        })?;
        metrics::counter!("basin_ingest_bytes_total").increment(stats.input_bytes);
        let name = ImportSource::Url(url).file_name();
        Ok(ImportFile::Temporary { file: temp, name })
    }

    /// Resolves a server-side path, refusing anything outside the allowed import roots.
    pub async fn resolve_import_path(&self, source: &str) -> Result<PathBuf> {
        let source_path = Path::new(source.strip_prefix("file://").unwrap_or(source));
        if !source_path.is_absolute() {
            return Err(Error::InvalidInput(format!(
                "source {source:?} must be an absolute path"
            )));
        }
        if source.contains('\0') {
            return Err(Error::InvalidInput(
                "source must not contain a NUL character".into(),
            ));
        }
        let resolved = match tokio::fs::canonicalize(source_path).await {
            Ok(p) => p,
            // Missing, a file used as a directory, unreadable, too long: the
            // caller's path names no file Basin may read. Whether paths
            // outside the roots exist is not revealed.
            Err(_) => {
                return Err(if self.inside_roots(&file::lexically_normal(source_path)) {
                    Error::PathNotFound(source.to_owned())
                } else {
                    Error::PathNotAllowed(source.to_owned())
                });
            }
        };
        if !self.inside_roots(&resolved) {
            return Err(Error::PathNotAllowed(source.to_owned()));
        }
        if !resolved.is_file() {
            return Err(Error::InvalidInput(format!(
                "source {source:?} is not a file"
            )));
        }
        Ok(resolved)
    }

    fn inside_roots(&self, path: &Path) -> bool {
        self.config()
            .allowed_roots
            .iter()
            .any(|root| path.starts_with(root))
    }

    /// Writes a local file into a dataset as one new version, if the caller
    /// may write it. Audited, with the door it came through.
    pub async fn ingest_file(
        &self,
        principal: &Principal,
        name: &str,
        path: &Path,
        options: IngestOptions,
        progress: Option<ProgressFn>,
    ) -> Result<IngestReport> {
        let ingest = async {
            principal.authorize(Action::Write, Resource::Dataset(name))?;
            self.ingest_authorized_file(name, path, options, progress)
                .await
        };
        self.audited(
            principal,
            "dataset.ingest",
            &format!("dataset:{name}"),
            ingest,
        )
        .await
    }

    /// [`Engine::ingest_file`] once access is decided; its quarantine side
    /// table belongs to the same write.
    async fn ingest_authorized_file(
        &self,
        name: &str,
        path: &Path,
        options: IngestOptions,
        progress: Option<ProgressFn>,
    ) -> Result<IngestReport> {
        let started = Instant::now();
        basin_sql::validate_name(name)?;
        crate::datasets::validate_tags(&options.tags)?;
        if options.on_error == BadRowPolicy::Quarantine {
            basin_sql::validate_name(&format!("{name}{REJECTED_SUFFIX}"))?;
        }
        let existing = self.catalog().dataset_by_name(name).await?;
        if options.mode == WriteMode::Create && existing.is_some() {
            return Err(Error::already_exists(Entity::Dataset, name.to_owned()));
        }
        let report = |msg: &str| {
            if let Some(p) = &progress {
                p(None, msg.to_owned());
            }
        };

        // Compressed server-side files are decompressed to a temporary copy first.
        let mut head = read_head(path).await?;
        let mut _decompressed = None;
        let mut path = path.to_path_buf();
        if file::Compression::sniff(&head) != file::Compression::None {
            report("decompressing");
            let temp = self.temp_file("raw");
            let source = tokio::fs::File::open(&path).await?;
            file::spool(
                source,
                temp.path(),
                None,
                Some(self.config().max_ingest_bytes),
            )
            .await?;
            path = temp.path().to_path_buf();
            head = read_head(&path).await?;
            _decompressed = Some(temp);
        }
        let bytes_read = tokio::fs::metadata(&path).await?.len();

        let kind = match options.format {
            Some(kind) => kind,
            None => options
                .file_name
                .as_deref()
                .and_then(|n| FormatKind::from_path(Path::new(n)))
                .unwrap_or_else(|| file::sniff_format(&head)),
        };
        let mut _converted = None;
        let kind = if kind == FormatKind::Json {
            report("converting JSON array");
            let temp = self.temp_file("ndjson");
            let (src, dest) = (path.clone(), temp.path().to_path_buf());
            tokio::task::spawn_blocking(move || file::json_array_to_ndjson(&src, &dest))
                .await
                .map_err(|e| Error::internal("json conversion", e))??;
            path = temp.path().to_path_buf();
            _converted = Some(temp);
            FormatKind::Ndjson
        } else {
            kind
        };
        let format = FileFormat {
            kind,
            csv: if kind == FormatKind::Csv {
                file::sniff_csv(&head, &options.csv)?
            } else {
                Default::default()
            },
        };

        let ctx = self.sessions().file_context();
        let inferred = file::infer_schema(
            &ctx,
            &path,
            &format,
            &ScanOptions {
                schema: options.schema.clone(),
            },
        )
        .await?;
        let schema = match (&existing, options.mode, &options.schema) {
            (Some(record), WriteMode::Append, None) if kind.is_text() => {
                let table = open_table(&record.location, None).await?;
                align_schema(&snapshot_of(&table).await?.schema, &inferred)?
            }
            _ => inferred,
        };

        let mut validation: Option<ValidationReport> = None;
        let mut _clean = None;
        let mut rejects_file = None;
        // DataFusion's CSV scan ignores null markers, so the validation pass,
        // which blanks them in its clean copy, runs whenever there are any.
        let blank_null_markers = kind == FormatKind::Csv && !format.csv.null_values.is_empty();
        if kind.is_text() && (options.on_error != BadRowPolicy::Fail || blank_null_markers) {
            report("validating rows");
            let clean = self.temp_file(kind.extension());
            let rejects =
                (options.on_error == BadRowPolicy::Quarantine).then(|| self.temp_file("ndjson"));
            let report = run_validation(
                path.clone(),
                format.clone(),
                schema.clone(),
                Some(clean.path().to_path_buf()),
                rejects.as_ref().map(|r| r.path().to_path_buf()),
            )
            .await?;
            if options.on_error == BadRowPolicy::Fail && report.rows_rejected > 0 {
                return Err(Error::MalformedRows(MalformedRows {
                    count: report.rows_rejected,
                    rows: report.rejected_sample,
                }));
            }
            path = clean.path().to_path_buf();
            _clean = Some(clean);
            rejects_file = rejects.filter(|_| report.rows_rejected > 0);
            validation = Some(report);
        }

        let frame = file::scan(
            &ctx,
            &path,
            &format,
            &ScanOptions {
                schema: Some(schema.clone()),
            },
        )
        .await?;
        report("writing");
        let target = WriteTarget {
            name,
            existing,
            mode: options.mode,
            description: options.description.clone(),
            tags: options.tags.clone(),
            add_columns: false,
            // A file's rows keep its order: sorted or time-ordered files prune.
            in_input_order: true,
        };
        let (snapshot, rows_written) = match self
            .commit_frame(target, frame, Expected::Bytes(bytes_read), progress.clone())
            .await
        {
            Ok(done) => done,
            Err(err) => {
                // A scan error may stem from rows the fast path could not
                // name; the row-level pass names them.
                if kind.is_text() && validation.is_none() {
                    let report = run_validation(path.clone(), format, schema, None, None).await?;
                    if report.rows_rejected > 0 {
                        return Err(Error::MalformedRows(MalformedRows {
                            count: report.rows_rejected,
                            rows: report.rejected_sample,
                        }));
                    }
                }
                return Err(err);
            }
        };

        let validation = validation.unwrap_or_default();
        let mut rejected_dataset = None;
        if let Some(rejects) = rejects_file {
            let side = format!("{name}{REJECTED_SUFFIX}");
            let side_options = IngestOptions {
                mode: WriteMode::Append,
                format: Some(FormatKind::Ndjson),
                schema: Some(rejects_schema()),
                description: Some(format!("rows of `{name}` that failed to parse")),
                ..Default::default()
            };
            Box::pin(self.ingest_authorized_file(&side, rejects.path(), side_options, None))
                .await?;
            rejected_dataset = Some(side);
        }
        Ok(IngestReport {
            dataset: name.to_owned(),
            version: snapshot.version,
            format: kind,
            rows_written,
            rows_rejected: validation.rows_rejected,
            rejected_sample: validation.rejected_sample,
            rejected_dataset,
            bytes_read,
            schema: schema_json(&snapshot.schema),
            elapsed_ms: started.elapsed().as_millis() as u64,
        })
    }
}

async fn read_head(path: &Path) -> Result<Vec<u8>> {
    let mut head = Vec::with_capacity(SNIFF_BYTES);
    tokio::fs::File::open(path)
        .await?
        .take(SNIFF_BYTES as u64)
        .read_to_end(&mut head)
        .await?;
    Ok(head)
}

async fn run_validation(
    path: PathBuf,
    format: FileFormat,
    schema: SchemaRef,
    clean: Option<PathBuf>,
    rejects: Option<PathBuf>,
) -> Result<ValidationReport> {
    tokio::task::spawn_blocking(move || {
        file::validate(
            &path,
            &format,
            &schema,
            clean.as_deref(),
            rejects.as_deref(),
        )
    })
    .await
    .map_err(|e| Error::internal("validation", e))?
    .map_err(Error::from)
}

/// The columns of a `__rejected` side dataset.
fn rejects_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("line", DataType::Int64, true),
        Field::new("reason", DataType::Utf8, true),
        Field::new("raw", DataType::Utf8, true),
    ]))
}

/// Reads appended text files with the dataset's own types, in the file's column order.
fn align_schema(existing: &Schema, file: &Schema) -> Result<SchemaRef> {
    let mut fields = Vec::with_capacity(file.fields().len());
    for field in file.fields() {
        match existing.field_with_name(field.name()) {
            Ok(known) => fields.push(known.as_ref().clone().with_nullable(true)),
            Err(_) => {
                return Err(Error::SchemaMismatch(format!(
                    "column `{}` is not in the dataset (columns: {})",
                    field.name(),
                    existing
                        .fields()
                        .iter()
                        .map(|f| f.name().as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
        }
    }
    if let Some(missing) = existing
        .fields()
        .iter()
        .find(|f| file.field_with_name(f.name()).is_err())
    {
        return Err(Error::SchemaMismatch(format!(
            "column `{}` of the dataset is missing from the file",
            missing.name()
        )));
    }
    Ok(Arc::new(Schema::new(fields)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema(fields: &[(&str, DataType)]) -> Schema {
        Schema::new(
            fields
                .iter()
                .map(|(n, t)| Field::new(*n, t.clone(), true))
                .collect::<Vec<_>>(),
        )
    }

    #[test]
    fn paths_normalize_lexically() {
        assert_eq!(
            file::lexically_normal(Path::new("/a/b/../c/./d.csv")),
            PathBuf::from("/a/c/d.csv")
        );
        assert_eq!(
            file::lexically_normal(Path::new("/a/../../etc")),
            PathBuf::from("/etc")
        );
    }

    #[test]
    fn appends_read_with_the_datasets_types_in_file_order() {
        let existing = schema(&[
            ("id", DataType::Int64),
            ("amount", DataType::Decimal128(10, 2)),
        ]);
        let file = schema(&[("amount", DataType::Float64), ("id", DataType::Int64)]);
        let aligned = align_schema(&existing, &file).unwrap();
        assert_eq!(aligned.field(0).name(), "amount");
        assert_eq!(aligned.field(0).data_type(), &DataType::Decimal128(10, 2));
    }

    #[test]
    fn appends_with_unknown_or_missing_columns_are_refused() {
        let existing = schema(&[("id", DataType::Int64), ("name", DataType::Utf8)]);
        let extra = schema(&[
            ("id", DataType::Int64),
            ("name", DataType::Utf8),
            ("x", DataType::Utf8),
        ]);
        assert!(matches!(
            align_schema(&existing, &extra),
            Err(Error::SchemaMismatch(_))
        ));
        let missing = schema(&[("id", DataType::Int64)]);
        assert!(matches!(
            align_schema(&existing, &missing),
            Err(Error::SchemaMismatch(_))
        ));
    }
}
