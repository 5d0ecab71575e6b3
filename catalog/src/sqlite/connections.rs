//! Connection rows in the SQLite catalog.

use async_trait::async_trait;
use chrono::Utc;

use super::identity::upsert_secret;
use super::{SqliteCatalog, is_unique_violation, parse_json, record, to_json_text};
use crate::Entity;
use crate::{
    ConnectionRecord, ConnectionStore, SchemaHistoryRecord, SecretRecord, SyncStateRecord,
};
use crate::{Error, Result};

fn name_clash(err: sqlx::Error, name: &str) -> Error {
    if is_unique_violation(&err) {
        Error::already_exists(Entity::Connection, name.to_owned())
    } else {
        err.into()
    }
}

#[async_trait]
impl ConnectionStore for SqliteCatalog {
    async fn insert_connection(&self, c: &ConnectionRecord, secret: &SecretRecord) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        upsert_secret(&mut *tx, secret).await?;
        sqlx::query(
            "INSERT INTO connections (id, name, kind, description, config_json, secret_fields_json, \
             created_by, version, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&c.id)
        .bind(&c.name)
        .bind(&c.kind)
        .bind(&c.description)
        .bind(to_json_text(&c.config))
        .bind(to_json_text(&c.secret_fields))
        .bind(&c.created_by)
        .bind(c.version)
        .bind(c.created_at)
        .bind(c.updated_at)
        .execute(&mut *tx)
        .await
        .map_err(|e| name_clash(e, &c.name))?;
        tx.commit().await?;
        Ok(())
    }

    async fn update_connection(
        &self,
        c: &ConnectionRecord,
        secret: Option<&SecretRecord>,
        expected_version: i64,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE connections SET name = ?, description = ?, config_json = ?, \
             secret_fields_json = ?, version = ?, updated_at = ? WHERE id = ? AND version = ?",
        )
        .bind(&c.name)
        .bind(&c.description)
        .bind(to_json_text(&c.config))
        .bind(to_json_text(&c.secret_fields))
        .bind(c.version)
        .bind(c.updated_at)
        .bind(&c.id)
        .bind(expected_version)
        .execute(&mut *tx)
        .await
        .map_err(|e| name_clash(e, &c.name))?;
        if done.rows_affected() == 0 {
            return Err(Error::Conflict(format!(
                "connection `{}` changed meanwhile: read it again and retry",
                c.name
            )));
        }
        if let Some(secret) = secret {
            upsert_secret(&mut *tx, secret).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn connection(&self, id_or_name: &str) -> Result<Option<ConnectionRecord>> {
        sqlx::query("SELECT * FROM connections WHERE id = ? OR name = ?")
            .bind(id_or_name)
            .bind(id_or_name)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(record::<ConnectionRecord>)
            .transpose()
    }

    async fn list_connections(&self) -> Result<Vec<ConnectionRecord>> {
        sqlx::query("SELECT * FROM connections ORDER BY name")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(record::<ConnectionRecord>)
            .collect()
    }

    async fn delete_connection(&self, id: &str, secret_name: &str) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query("DELETE FROM connections WHERE id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM secrets WHERE name = ?")
            .bind(secret_name)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    async fn append_schema(&self, r: &SchemaHistoryRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO schema_history (subject, version, fingerprint, schema_json, changes_json, \
             cause, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&r.subject)
        .bind(r.version)
        .bind(&r.fingerprint)
        .bind(to_json_text(&r.schema))
        .bind(to_json_text(&r.changes))
        .bind(&r.cause)
        .bind(r.recorded_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn schema_history(&self, subject: &str) -> Result<Vec<SchemaHistoryRecord>> {
        sqlx::query("SELECT * FROM schema_history WHERE subject = ? ORDER BY seq")
            .bind(subject)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(record::<SchemaHistoryRecord>)
            .collect()
    }

    async fn latest_schema(&self, subject: &str) -> Result<Option<SchemaHistoryRecord>> {
        sqlx::query("SELECT * FROM schema_history WHERE subject = ? ORDER BY seq DESC LIMIT 1")
            .bind(subject)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(record::<SchemaHistoryRecord>)
            .transpose()
    }

    async fn sync_state(
        &self,
        connection_id: &str,
        stream: &str,
        dataset: &str,
    ) -> Result<Option<SyncStateRecord>> {
        let row = sqlx::query(
            "SELECT * FROM sync_state WHERE connection_id = ? AND stream = ? AND dataset = ?",
        )
        .bind(connection_id)
        .bind(stream)
        .bind(dataset)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(record::<SyncStateRecord>).transpose()
    }

    async fn put_sync_state(&self, s: &SyncStateRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO sync_state (connection_id, stream, dataset, cursor_field, cursor_value, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (connection_id, stream, dataset) DO UPDATE SET \
             cursor_field = excluded.cursor_field, cursor_value = excluded.cursor_value, \
             updated_at = excluded.updated_at",
        )
        .bind(&s.connection_id)
        .bind(&s.stream)
        .bind(&s.dataset)
        .bind(&s.cursor_field)
        .bind(s.cursor_value.as_ref().map(to_json_text))
        .bind(s.updated_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn field_mappings(
        &self,
        connection_id: &str,
        stream: &str,
    ) -> Result<Option<serde_json::Value>> {
        let text: Option<String> = sqlx::query_scalar(
            "SELECT mappings_json FROM field_mappings WHERE connection_id = ? AND stream = ?",
        )
        .bind(connection_id)
        .bind(stream)
        .fetch_optional(&self.pool)
        .await?;
        Ok(parse_json(text))
    }

    async fn put_field_mappings(
        &self,
        connection_id: &str,
        stream: &str,
        mappings: Option<&serde_json::Value>,
    ) -> Result<()> {
        match mappings {
            Some(mappings) => {
                sqlx::query(
                    "INSERT INTO field_mappings (connection_id, stream, mappings_json, updated_at) \
                     VALUES (?, ?, ?, ?) ON CONFLICT (connection_id, stream) DO UPDATE SET \
                     mappings_json = excluded.mappings_json, updated_at = excluded.updated_at",
                )
                .bind(connection_id)
                .bind(stream)
                .bind(to_json_text(mappings))
                .bind(Utc::now())
                .execute(&self.pool)
                .await?;
            }
            None => {
                sqlx::query("DELETE FROM field_mappings WHERE connection_id = ? AND stream = ?")
                    .bind(connection_id)
                    .bind(stream)
                    .execute(&self.pool)
                    .await?;
            }
        }
        Ok(())
    }
}
