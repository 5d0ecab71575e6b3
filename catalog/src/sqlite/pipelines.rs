//! Pipeline, version, run, view and event rows in the SQLite catalog.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{QueryBuilder, Sqlite};

use super::{SqliteCatalog, is_unique_violation, record, to_json_text};
use crate::Entity;
use crate::{Error, Result};
use crate::{
    EventRecord, Page, PipelineRecord, PipelineStore, PipelineVersionRecord, RunFilter, RunRecord,
};

fn name_clash(err: sqlx::Error, name: &str) -> Error {
    if is_unique_violation(&err) {
        Error::already_exists(Entity::Pipeline, name.to_owned())
    } else {
        err.into()
    }
}

async fn insert_version<'e, E>(executor: E, v: &PipelineVersionRecord) -> sqlx::Result<()>
where
    E: sqlx::Executor<'e, Database = Sqlite>,
{
    sqlx::query(
        "INSERT INTO pipeline_versions (pipeline_id, version, hash, definition_json, \
         outputs_json, created_by, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&v.pipeline_id)
    .bind(v.version)
    .bind(&v.hash)
    .bind(to_json_text(&v.definition))
    .bind(to_json_text(&v.outputs))
    .bind(&v.created_by)
    .bind(v.created_at)
    .execute(executor)
    .await?;
    Ok(())
}

fn push_run_filter(builder: &mut QueryBuilder<Sqlite>, filter: &RunFilter) {
    builder.push(" WHERE 1 = 1");
    if let Some(pipeline) = &filter.pipeline_id {
        builder
            .push(" AND pipeline_id = ")
            .push_bind(pipeline.clone());
    }
    if let Some(status) = filter.status {
        builder.push(" AND status = ").push_bind(status.as_str());
    }
}

#[async_trait]
impl PipelineStore for SqliteCatalog {
    async fn insert_pipeline(&self, p: &PipelineRecord, v: &PipelineVersionRecord) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO pipelines (id, name, active_version, created_by, created_at, \
             updated_at, archived_at, schedule_cursor) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&p.id)
        .bind(&p.name)
        .bind(p.active_version)
        .bind(&p.created_by)
        .bind(p.created_at)
        .bind(p.updated_at)
        .bind(p.archived_at)
        .bind(p.schedule_cursor)
        .execute(&mut *tx)
        .await
        .map_err(|e| name_clash(e, &p.name))?;
        insert_version(&mut *tx, v).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn add_pipeline_version(
        &self,
        v: &PipelineVersionRecord,
        expected_active: i64,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE pipelines SET active_version = ?, updated_at = ? \
             WHERE id = ? AND active_version = ?",
        )
        .bind(v.version)
        .bind(v.created_at)
        .bind(&v.pipeline_id)
        .bind(expected_active)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(Error::Conflict(
                "the pipeline changed meanwhile: read it again and retry".into(),
            ));
        }
        insert_version(&mut *tx, v).await.map_err(|e| {
            if is_unique_violation(&e) {
                Error::Conflict("the pipeline changed meanwhile: read it again and retry".into())
            } else {
                e.into()
            }
        })?;
        tx.commit().await?;
        Ok(())
    }

    async fn activate_pipeline_version(&self, pipeline_id: &str, version: i64) -> Result<()> {
        sqlx::query("UPDATE pipelines SET active_version = ?, updated_at = ? WHERE id = ?")
            .bind(version)
            .bind(Utc::now())
            .bind(pipeline_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn set_pipeline_archived(
        &self,
        pipeline_id: &str,
        archived_at: Option<DateTime<Utc>>,
    ) -> Result<()> {
        sqlx::query("UPDATE pipelines SET archived_at = ?, updated_at = ? WHERE id = ?")
            .bind(archived_at)
            .bind(Utc::now())
            .bind(pipeline_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn set_schedule_cursor(&self, pipeline_id: &str, cursor: DateTime<Utc>) -> Result<()> {
        sqlx::query("UPDATE pipelines SET schedule_cursor = ? WHERE id = ?")
            .bind(cursor)
            .bind(pipeline_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn pipeline(&self, id_or_name: &str) -> Result<Option<PipelineRecord>> {
        sqlx::query("SELECT * FROM pipelines WHERE id = ? OR name = ?")
            .bind(id_or_name)
            .bind(id_or_name)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(record::<PipelineRecord>)
            .transpose()
    }

    async fn list_pipelines(
        &self,
        include_archived: bool,
        page: Page,
    ) -> Result<(Vec<PipelineRecord>, u64)> {
        let total: i64 =
            sqlx::query_scalar("SELECT count(*) FROM pipelines WHERE ? OR archived_at IS NULL")
                .bind(include_archived)
                .fetch_one(&self.pool)
                .await?;
        let rows = sqlx::query(
            "SELECT * FROM pipelines WHERE ? OR archived_at IS NULL ORDER BY name LIMIT ? OFFSET ?",
        )
        .bind(include_archived)
        .bind(i64::from(page.limit))
        .bind(page.offset as i64)
        .fetch_all(&self.pool)
        .await?;
        let pipelines = rows
            .iter()
            .map(record::<PipelineRecord>)
            .collect::<Result<_>>()?;
        Ok((pipelines, total as u64))
    }

    async fn live_pipelines(&self) -> Result<Vec<PipelineRecord>> {
        sqlx::query("SELECT * FROM pipelines WHERE archived_at IS NULL ORDER BY name")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(record::<PipelineRecord>)
            .collect()
    }

    async fn pipeline_version(
        &self,
        pipeline_id: &str,
        version: i64,
    ) -> Result<Option<PipelineVersionRecord>> {
        sqlx::query("SELECT * FROM pipeline_versions WHERE pipeline_id = ? AND version = ?")
            .bind(pipeline_id)
            .bind(version)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(record::<PipelineVersionRecord>)
            .transpose()
    }

    async fn pipeline_versions(&self, pipeline_id: &str) -> Result<Vec<PipelineVersionRecord>> {
        sqlx::query("SELECT * FROM pipeline_versions WHERE pipeline_id = ? ORDER BY version DESC")
            .bind(pipeline_id)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(record::<PipelineVersionRecord>)
            .collect()
    }

    async fn insert_run(&self, r: &RunRecord) -> Result<Option<RunRecord>> {
        let inserted = sqlx::query(
            "INSERT INTO pipeline_runs (id, pipeline_id, version, status, trigger, params_json, \
             idempotency_key, retry_of, job_id, steps_json, error_json, created_by, created_at, \
             started_at, finished_at, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&r.id)
        .bind(&r.pipeline_id)
        .bind(r.version)
        .bind(r.status.as_str())
        .bind(&r.trigger)
        .bind(to_json_text(&r.params))
        .bind(&r.idempotency_key)
        .bind(&r.retry_of)
        .bind(&r.job_id)
        .bind(to_json_text(&r.steps))
        .bind(r.error.as_ref().map(to_json_text))
        .bind(&r.created_by)
        .bind(r.created_at)
        .bind(r.started_at)
        .bind(r.finished_at)
        .bind(r.updated_at)
        .execute(&self.pool)
        .await;
        match inserted {
            Ok(_) => Ok(None),
            Err(e) if is_unique_violation(&e) && r.idempotency_key.is_some() => sqlx::query(
                "SELECT * FROM pipeline_runs WHERE pipeline_id = ? AND idempotency_key = ?",
            )
            .bind(&r.pipeline_id)
            .bind(&r.idempotency_key)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(record::<RunRecord>)
            .transpose(),
            Err(e) => Err(e.into()),
        }
    }

    async fn update_run(&self, r: &RunRecord) -> Result<()> {
        sqlx::query(
            "UPDATE pipeline_runs SET status = ?, job_id = coalesce(?, job_id), steps_json = ?, error_json = ?, \
             started_at = ?, finished_at = ?, updated_at = ? WHERE id = ?",
        )
        .bind(r.status.as_str())
        .bind(&r.job_id)
        .bind(to_json_text(&r.steps))
        .bind(r.error.as_ref().map(to_json_text))
        .bind(r.started_at)
        .bind(r.finished_at)
        .bind(r.updated_at)
        .bind(&r.id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn set_run_job(&self, run_id: &str, job_id: &str) -> Result<()> {
        sqlx::query("UPDATE pipeline_runs SET job_id = ? WHERE id = ?")
            .bind(job_id)
            .bind(run_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn run(&self, id: &str) -> Result<Option<RunRecord>> {
        sqlx::query("SELECT * FROM pipeline_runs WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(record::<RunRecord>)
            .transpose()
    }

    async fn list_runs(&self, filter: &RunFilter, page: Page) -> Result<(Vec<RunRecord>, u64)> {
        let mut count = QueryBuilder::<Sqlite>::new("SELECT count(*) FROM pipeline_runs");
        push_run_filter(&mut count, filter);
        let total: i64 = count.build_query_scalar().fetch_one(&self.pool).await?;
        let mut select = QueryBuilder::<Sqlite>::new("SELECT * FROM pipeline_runs");
        push_run_filter(&mut select, filter);
        select
            .push(" ORDER BY id DESC LIMIT ")
            .push_bind(i64::from(page.limit))
            .push(" OFFSET ")
            .push_bind(page.offset as i64);
        let rows = select.build().fetch_all(&self.pool).await?;
        let runs = rows
            .iter()
            .map(record::<RunRecord>)
            .collect::<Result<_>>()?;
        Ok((runs, total as u64))
    }

    async fn unfinished_runs(&self) -> Result<Vec<RunRecord>> {
        sqlx::query(
            "SELECT * FROM pipeline_runs WHERE status NOT IN ('succeeded', 'failed', 'canceled') \
             ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(record::<RunRecord>)
        .collect()
    }

    async fn put_view(&self, name: &str, sql: &str, pipeline_id: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO views (name, sql, pipeline_id, updated_at) VALUES (?, ?, ?, ?) \
             ON CONFLICT (name) DO UPDATE SET sql = excluded.sql, \
             pipeline_id = excluded.pipeline_id, updated_at = excluded.updated_at",
        )
        .bind(name)
        .bind(sql)
        .bind(pipeline_id)
        .bind(Utc::now())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn views(&self) -> Result<Vec<(String, String)>> {
        Ok(sqlx::query_as("SELECT name, sql FROM views ORDER BY name")
            .fetch_all(&self.pool)
            .await?)
    }

    async fn append_events(&self, events: &mut [EventRecord]) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        for e in events.iter_mut() {
            e.seq = sqlx::query_scalar(
                "INSERT INTO events (type, pipeline_id, run_id, dataset, job_id, payload_json, at) \
                 VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING seq",
            )
            .bind(&e.kind)
            .bind(&e.pipeline_id)
            .bind(&e.run_id)
            .bind(&e.dataset)
            .bind(&e.job_id)
            .bind(to_json_text(&e.data))
            .bind(e.at)
            .fetch_one(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn events_after(&self, seq: i64, limit: u32) -> Result<Vec<EventRecord>> {
        sqlx::query("SELECT * FROM events WHERE seq > ? ORDER BY seq LIMIT ?")
            .bind(seq)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(record::<EventRecord>)
            .collect()
    }

    async fn last_event_seq(&self) -> Result<i64> {
        let seq: Option<i64> =
            sqlx::query_scalar("SELECT max(seq) FROM sqlite_sequence WHERE name = 'events'")
                .fetch_one(&self.pool)
                .await?;
        Ok(seq.unwrap_or(0))
    }

    async fn prune_events(&self, before: DateTime<Utc>) -> Result<u64> {
        Ok(sqlx::query("DELETE FROM events WHERE at < ?")
            .bind(before)
            .execute(&self.pool)
            .await?
            .rows_affected())
    }
}
