//! Profile, check, check result and metric rows in the SQLite catalog.

use async_trait::async_trait;
use sqlx::{QueryBuilder, Sqlite};

use super::{SqliteCatalog, is_unique_violation, record, to_json_text};
use crate::Entity;
use crate::{
    AnalyticsStore, CheckRecord, CheckResultRecord, MetricFilter, MetricRecord, ProfileRecord,
};
use crate::{Error, Result};

fn check_clash(err: sqlx::Error, name: &str) -> Error {
    if is_unique_violation(&err) {
        Error::already_exists(Entity::Check, name.to_owned())
    } else {
        err.into()
    }
}

#[async_trait]
impl AnalyticsStore for SqliteCatalog {
    async fn insert_profile(&self, p: &ProfileRecord, keep: u32) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO dataset_profiles (id, dataset_id, version, job_id, profile_json, created_at) \
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(&p.id)
        .bind(&p.dataset_id)
        .bind(p.version)
        .bind(&p.job_id)
        .bind(to_json_text(&p.profile))
        .bind(p.created_at)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "DELETE FROM dataset_profiles WHERE dataset_id = ? AND id NOT IN \
             (SELECT id FROM dataset_profiles WHERE dataset_id = ? ORDER BY created_at DESC LIMIT ?)",
        )
        .bind(&p.dataset_id)
        .bind(&p.dataset_id)
        .bind(i64::from(keep.max(1)))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn latest_profile(&self, dataset_id: &str) -> Result<Option<ProfileRecord>> {
        sqlx::query(
            "SELECT * FROM dataset_profiles WHERE dataset_id = ? ORDER BY created_at DESC LIMIT 1",
        )
        .bind(dataset_id)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(record::<ProfileRecord>)
        .transpose()
    }

    async fn insert_check(&self, c: &CheckRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO quality_checks (id, dataset_id, name, definition_json, created_by, \
             created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&c.id)
        .bind(&c.dataset_id)
        .bind(&c.name)
        .bind(to_json_text(&c.definition))
        .bind(&c.created_by)
        .bind(c.created_at)
        .bind(c.updated_at)
        .execute(&self.pool)
        .await
        .map_err(|e| check_clash(e, &c.name))?;
        Ok(())
    }

    async fn update_check(&self, c: &CheckRecord) -> Result<()> {
        sqlx::query(
            "UPDATE quality_checks SET name = ?, definition_json = ?, updated_at = ? WHERE id = ?",
        )
        .bind(&c.name)
        .bind(to_json_text(&c.definition))
        .bind(c.updated_at)
        .bind(&c.id)
        .execute(&self.pool)
        .await
        .map_err(|e| check_clash(e, &c.name))?;
        Ok(())
    }

    async fn delete_check(&self, id: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM quality_checks WHERE id = ?")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn checks_of(&self, dataset_id: &str) -> Result<Vec<CheckRecord>> {
        sqlx::query("SELECT * FROM quality_checks WHERE dataset_id = ? ORDER BY name")
            .bind(dataset_id)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(record::<CheckRecord>)
            .collect()
    }

    async fn insert_check_results(&self, results: &mut [CheckResultRecord]) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        for r in results.iter_mut() {
            r.seq = sqlx::query_scalar(
                "INSERT INTO check_results (check_id, check_name, dataset_id, dataset_version, \
                 run_id, trigger, outcome, observed, element_count, unexpected_count, \
                 unexpected_percent, details_json, sample_json, error_json, started_at, duration_ms) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING seq",
            )
            .bind(&r.check_id)
            .bind(&r.check_name)
            .bind(&r.dataset_id)
            .bind(r.dataset_version)
            .bind(&r.run_id)
            .bind(&r.trigger)
            .bind(&r.outcome)
            .bind(r.observed)
            .bind(r.element_count)
            .bind(r.unexpected_count)
            .bind(r.unexpected_percent)
            .bind(r.details.as_ref().map(to_json_text))
            .bind(r.sample.as_ref().map(to_json_text))
            .bind(r.error.as_ref().map(to_json_text))
            .bind(r.started_at)
            .bind(r.duration_ms)
            .fetch_one(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn check_results(
        &self,
        dataset_id: &str,
        check_id: Option<&str>,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<CheckResultRecord>> {
        let mut query =
            QueryBuilder::<Sqlite>::new("SELECT * FROM check_results WHERE dataset_id = ");
        query.push_bind(dataset_id);
        if let Some(check_id) = check_id {
            query.push(" AND check_id = ").push_bind(check_id);
        }
        if let Some(before) = before {
            query.push(" AND seq < ").push_bind(before);
        }
        query
            .push(" ORDER BY seq DESC LIMIT ")
            .push_bind(i64::from(limit));
        query
            .build()
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(record::<CheckResultRecord>)
            .collect()
    }

    async fn latest_check_results(
        &self,
        dataset_id: Option<&str>,
    ) -> Result<Vec<CheckResultRecord>> {
        let mut query = QueryBuilder::<Sqlite>::new(
            "SELECT r.* FROM check_results r JOIN \
             (SELECT check_id, max(seq) AS seq FROM check_results GROUP BY check_id) newest \
             ON r.seq = newest.seq JOIN quality_checks c ON c.id = r.check_id",
        );
        if let Some(dataset_id) = dataset_id {
            query.push(" WHERE r.dataset_id = ").push_bind(dataset_id);
        }
        query.push(" ORDER BY r.seq DESC");
        query
            .build()
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(record::<CheckResultRecord>)
            .collect()
    }

    async fn insert_metrics(&self, metrics: &[MetricRecord]) -> Result<()> {
        if metrics.is_empty() {
            return Ok(());
        }
        let mut query = QueryBuilder::<Sqlite>::new(
            "INSERT INTO dataset_metrics (dataset_id, name, value, version, recorded_at) ",
        );
        query.push_values(metrics, |mut row, m| {
            row.push_bind(&m.dataset_id)
                .push_bind(&m.name)
                .push_bind(m.value)
                .push_bind(m.version)
                .push_bind(m.recorded_at);
        });
        query.build().execute(&self.pool).await?;
        Ok(())
    }

    async fn metrics(&self, dataset_id: &str, filter: &MetricFilter) -> Result<Vec<MetricRecord>> {
        let mut query = QueryBuilder::<Sqlite>::new(
            "SELECT * FROM (SELECT * FROM dataset_metrics WHERE dataset_id = ",
        );
        query.push_bind(dataset_id);
        if let Some(name) = &filter.name {
            query.push(" AND name = ").push_bind(name);
        }
        if let Some(from) = filter.from {
            query.push(" AND recorded_at >= ").push_bind(from);
        }
        if let Some(to) = filter.to {
            query.push(" AND recorded_at < ").push_bind(to);
        }
        query
            .push(" ORDER BY seq DESC LIMIT ")
            .push_bind(i64::from(filter.limit))
            .push(") ORDER BY seq");
        query
            .build()
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(record::<MetricRecord>)
            .collect()
    }

    async fn job_status_counts(&self) -> Result<Vec<(String, i64)>> {
        Ok(
            sqlx::query_as("SELECT status, count(*) FROM jobs GROUP BY status ORDER BY status")
                .fetch_all(&self.pool)
                .await?,
        )
    }

    async fn run_status_counts(&self) -> Result<Vec<(String, i64)>> {
        Ok(sqlx::query_as(
            "SELECT status, count(*) FROM pipeline_runs GROUP BY status ORDER BY status",
        )
        .fetch_all(&self.pool)
        .await?)
    }
}
