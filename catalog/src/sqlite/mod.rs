mod analytics;
mod connections;
mod identity;
mod pipelines;

use std::path::Path;
use std::str::FromStr;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{QueryBuilder, Sqlite};

use super::{CatalogStore, DatasetFilter, DatasetRecord, DatasetSort, JobFilter, JobRecord, Page};
use crate::Entity;
use crate::{Error, Result};

/// The embedded catalog: one SQLite file in WAL mode.
#[derive(Debug, Clone)]
pub struct SqliteCatalog {
    pool: SqlitePool,
}

/// The catalog's schema migrations, each with a down migration.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

impl SqliteCatalog {
    /// Opens (creating if needed) the catalog at `path` and applies pending migrations.
    pub async fn open(path: &Path) -> Result<Self> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(std::time::Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options)
            .await?;
        MIGRATOR.run(&pool).await?;
        Ok(Self { pool })
    }

    /// Reverts migrations down to (and keeping) `target` version; `0` empties the schema.
    pub async fn migrate_down_to(&self, target: i64) -> Result<()> {
        MIGRATOR.undo(&self.pool, target).await.map_err(Error::from)
    }
}

fn is_unique_violation(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.is_unique_violation())
}

fn to_json_text(value: &impl serde::Serialize) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".into())
}

/// A catalog row as its record type.
fn record<T: for<'r> sqlx::FromRow<'r, SqliteRow>>(row: &SqliteRow) -> Result<T> {
    Ok(T::from_row(row)?)
}

fn parse_json(text: Option<String>) -> Option<serde_json::Value> {
    text.and_then(|t| serde_json::from_str(&t).ok())
}

fn push_dataset_filter(builder: &mut QueryBuilder<Sqlite>, filter: &DatasetFilter) {
    builder.push(" WHERE 1 = 1");
    if !filter.include_deleted {
        builder.push(" AND deleted_at IS NULL");
    }
    if let Some(fragment) = &filter.name_contains {
        builder
            .push(" AND instr(name, ")
            .push_bind(fragment.clone())
            .push(") > 0");
    }
    if let Some(only) = &filter.only {
        builder.push(" AND name IN (SELECT value FROM json_each(");
        builder.push_bind(to_json_text(only)).push("))");
    }
    if let Some(tag) = &filter.tag {
        builder
            .push(" AND EXISTS (SELECT 1 FROM json_each(datasets.tags) WHERE json_each.value = ")
            .push_bind(tag.clone())
            .push(")");
    }
}

fn push_job_filter(builder: &mut QueryBuilder<Sqlite>, filter: &JobFilter) {
    builder.push(" WHERE 1 = 1");
    if let Some(status) = filter.status {
        builder.push(" AND status = ").push_bind(status.as_str());
    }
    if let Some(kind) = &filter.kind {
        builder.push(" AND kind = ").push_bind(kind.clone());
    }
}

#[async_trait]
impl CatalogStore for SqliteCatalog {
    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn insert_dataset(&self, d: &DatasetRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO datasets (id, name, description, tags, owner, location, version, schema_json, \
             row_count, size_bytes, file_count, created_at, updated_at, deleted_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&d.id)
        .bind(&d.name)
        .bind(&d.description)
        .bind(to_json_text(&d.tags))
        .bind(&d.owner)
        .bind(&d.location)
        .bind(d.version)
        .bind(to_json_text(&d.schema))
        .bind(d.row_count)
        .bind(d.size_bytes)
        .bind(d.file_count)
        .bind(d.created_at)
        .bind(d.updated_at)
        .bind(d.deleted_at)
        .execute(&self.pool)
        .await
        .map_err(|e| if is_unique_violation(&e) { Error::already_exists(Entity::Dataset, d.name.clone()) } else { e.into() })?;
        Ok(())
    }

    async fn update_dataset(&self, d: &DatasetRecord) -> Result<()> {
        sqlx::query(
            "UPDATE datasets SET name = ?, description = ?, tags = ?, owner = ?, location = ?, version = ?, \
             schema_json = ?, row_count = ?, size_bytes = ?, file_count = ?, updated_at = ?, deleted_at = ? \
             WHERE id = ?",
        )
        .bind(&d.name)
        .bind(&d.description)
        .bind(to_json_text(&d.tags))
        .bind(&d.owner)
        .bind(&d.location)
        .bind(d.version)
        .bind(to_json_text(&d.schema))
        .bind(d.row_count)
        .bind(d.size_bytes)
        .bind(d.file_count)
        .bind(d.updated_at)
        .bind(d.deleted_at)
        .bind(&d.id)
        .execute(&self.pool)
        .await
        .map_err(|e| if is_unique_violation(&e) { Error::already_exists(Entity::Dataset, d.name.clone()) } else { e.into() })?;
        Ok(())
    }

    async fn dataset_by_name(&self, name: &str) -> Result<Option<DatasetRecord>> {
        sqlx::query("SELECT * FROM datasets WHERE name = ? AND deleted_at IS NULL")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(record::<DatasetRecord>)
            .transpose()
    }

    async fn dataset_by_id(&self, id: &str) -> Result<Option<DatasetRecord>> {
        sqlx::query("SELECT * FROM datasets WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(record::<DatasetRecord>)
            .transpose()
    }

    async fn list_datasets(
        &self,
        filter: &DatasetFilter,
        sort: DatasetSort,
        page: Page,
    ) -> Result<(Vec<DatasetRecord>, u64)> {
        let mut count = QueryBuilder::<Sqlite>::new("SELECT count(*) FROM datasets");
        push_dataset_filter(&mut count, filter);
        let total: i64 = count.build_query_scalar().fetch_one(&self.pool).await?;

        let mut select = QueryBuilder::<Sqlite>::new("SELECT * FROM datasets");
        push_dataset_filter(&mut select, filter);
        select.push(match sort {
            DatasetSort::NameAsc => " ORDER BY name ASC, id",
            DatasetSort::NameDesc => " ORDER BY name DESC, id",
            DatasetSort::CreatedAsc => " ORDER BY created_at ASC, id",
            DatasetSort::CreatedDesc => " ORDER BY created_at DESC, id",
            DatasetSort::UpdatedAsc => " ORDER BY updated_at ASC, id",
            DatasetSort::UpdatedDesc => " ORDER BY updated_at DESC, id",
        });
        select
            .push(" LIMIT ")
            .push_bind(i64::from(page.limit))
            .push(" OFFSET ")
            .push_bind(page.offset as i64);
        let rows = select.build().fetch_all(&self.pool).await?;
        let datasets = rows
            .iter()
            .map(record::<DatasetRecord>)
            .collect::<Result<Vec<_>>>()?;
        Ok((datasets, total as u64))
    }

    async fn live_dataset_names(&self) -> Result<Vec<String>> {
        Ok(
            sqlx::query_scalar("SELECT name FROM datasets WHERE deleted_at IS NULL ORDER BY name")
                .fetch_all(&self.pool)
                .await?,
        )
    }

    async fn dataset_locations(&self) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar("SELECT location FROM datasets")
            .fetch_all(&self.pool)
            .await?)
    }

    async fn purge_dataset(&self, id: &str) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        for statement in [
            "DELETE FROM dataset_profiles WHERE dataset_id = ?",
            "DELETE FROM quality_checks WHERE dataset_id = ?",
            "DELETE FROM check_results WHERE dataset_id = ?",
            "DELETE FROM dataset_metrics WHERE dataset_id = ?",
        ] {
            sqlx::query(statement).bind(id).execute(&mut *tx).await?;
        }
        sqlx::query("DELETE FROM datasets WHERE id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn insert_job(&self, j: &JobRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO jobs (id, kind, status, progress, message, attempts, params, result, error, \
             created_at, started_at, finished_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&j.id)
        .bind(&j.kind)
        .bind(j.status.as_str())
        .bind(j.progress)
        .bind(&j.message)
        .bind(j.attempts)
        .bind(to_json_text(&j.params))
        .bind(j.result.as_ref().map(to_json_text))
        .bind(j.error.as_ref().map(to_json_text))
        .bind(j.created_at)
        .bind(j.started_at)
        .bind(j.finished_at)
        .bind(j.updated_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn update_job(&self, j: &JobRecord) -> Result<()> {
        sqlx::query(
            "UPDATE jobs SET status = ?, progress = ?, message = ?, attempts = ?, result = ?, error = ?, \
             started_at = ?, finished_at = ?, updated_at = ? WHERE id = ?",
        )
        .bind(j.status.as_str())
        .bind(j.progress)
        .bind(&j.message)
        .bind(j.attempts)
        .bind(j.result.as_ref().map(to_json_text))
        .bind(j.error.as_ref().map(to_json_text))
        .bind(j.started_at)
        .bind(j.finished_at)
        .bind(j.updated_at)
        .bind(&j.id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn update_job_progress(
        &self,
        id: &str,
        progress: Option<f64>,
        message: &str,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE jobs SET progress = coalesce(?, progress), message = ?, updated_at = ? \
             WHERE id = ? AND status = 'running'",
        )
        .bind(progress)
        .bind(message)
        .bind(Utc::now())
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn job(&self, id: &str) -> Result<Option<JobRecord>> {
        sqlx::query("SELECT * FROM jobs WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(record::<JobRecord>)
            .transpose()
    }

    async fn list_jobs(&self, filter: &JobFilter, page: Page) -> Result<(Vec<JobRecord>, u64)> {
        let mut count = QueryBuilder::<Sqlite>::new("SELECT count(*) FROM jobs");
        push_job_filter(&mut count, filter);
        let total: i64 = count.build_query_scalar().fetch_one(&self.pool).await?;
        let mut select = QueryBuilder::<Sqlite>::new("SELECT * FROM jobs");
        push_job_filter(&mut select, filter);
        select
            .push(" ORDER BY created_at DESC, id DESC LIMIT ")
            .push_bind(i64::from(page.limit))
            .push(" OFFSET ")
            .push_bind(page.offset as i64);
        let rows = select.build().fetch_all(&self.pool).await?;
        Ok((
            rows.iter()
                .map(record::<JobRecord>)
                .collect::<Result<Vec<_>>>()?,
            total as u64,
        ))
    }

    async fn fail_interrupted_jobs(&self, reason: &str) -> Result<u64> {
        let now: DateTime<Utc> = Utc::now();
        let error = to_json_text(&serde_json::json!({ "code": "interrupted", "message": reason }));
        let done = sqlx::query(
            "UPDATE jobs SET status = 'failed', error = ?, message = ?, finished_at = ?, updated_at = ? \
             WHERE status IN ('queued', 'running')",
        )
        .bind(error)
        .bind(reason)
        .bind(now)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    async fn close(&self) {
        self.pool.close().await;
    }
}

impl FromStr for DatasetSort {
    type Err = Error;
    fn from_str(value: &str) -> Result<Self> {
        Self::parse(value).ok_or_else(|| {
            Error::InvalidInput(format!(
                "unknown sort {value:?}: use name, created_at or updated_at, prefixed with - for descending"
            ))
        })
    }
}
