//! Identity, audit and secret rows in the SQLite catalog.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{QueryBuilder, Row, Sqlite};

use super::{SqliteCatalog, is_unique_violation, record, to_json_text};
use crate::Entity;
use crate::{
    ApiKeyRecord, AuditFilter, AuditRecord, AuditSeal, AuditStore, IdentityStore, NewAuditRecord,
    Page, SecretRecord, SecretStore, SessionRecord, UserRecord,
};
use crate::{Error, Result};
use basin_auth::{DatasetGrant, GrantAccess};

fn push_audit_filter(builder: &mut QueryBuilder<Sqlite>, filter: &AuditFilter) {
    builder.push(" WHERE 1 = 1");
    if let Some(actor) = &filter.actor {
        builder.push(" AND actor = ").push_bind(actor.clone());
    }
    if let Some(action) = &filter.action {
        if action.ends_with('.') {
            builder
                .push(" AND substr(action, 1, length(")
                .push_bind(action.clone())
                .push(")) = ")
                .push_bind(action.clone());
        } else {
            builder.push(" AND action = ").push_bind(action.clone());
        }
    }
    if let Some(outcome) = &filter.outcome {
        builder.push(" AND outcome = ").push_bind(outcome.clone());
    }
    if let Some(target) = &filter.target {
        builder.push(" AND target = ").push_bind(target.clone());
    }
    if let Some(since) = &filter.since {
        builder.push(" AND at >= ").push_bind(since.clone());
    }
    if let Some(until) = &filter.until {
        builder.push(" AND at < ").push_bind(until.clone());
    }
}

#[async_trait]
impl IdentityStore for SqliteCatalog {
    async fn count_users(&self) -> Result<u64> {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
            .fetch_one(&self.pool)
            .await?;
        Ok(n as u64)
    }

    async fn count_enabled_admins(&self) -> Result<u64> {
        let n: i64 =
            sqlx::query_scalar("SELECT count(*) FROM users WHERE role = 'admin' AND disabled = 0")
                .fetch_one(&self.pool)
                .await?;
        Ok(n as u64)
    }

    async fn insert_user(&self, u: &UserRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO users (id, username, email, password_hash, role, disabled, created_at, \
             updated_at, password_changed_at, last_login_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&u.id)
        .bind(&u.username)
        .bind(&u.email)
        .bind(&u.password_hash)
        .bind(u.role.as_str())
        .bind(u.disabled)
        .bind(u.created_at)
        .bind(u.updated_at)
        .bind(u.password_changed_at)
        .bind(u.last_login_at)
        .execute(&self.pool)
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                Error::already_exists(Entity::User, u.username.clone())
            } else {
                e.into()
            }
        })?;
        Ok(())
    }

    async fn update_user(&self, u: &UserRecord) -> Result<()> {
        sqlx::query(
            "UPDATE users SET username = ?, email = ?, password_hash = ?, role = ?, disabled = ?, \
             updated_at = ?, password_changed_at = ?, last_login_at = ? WHERE id = ?",
        )
        .bind(&u.username)
        .bind(&u.email)
        .bind(&u.password_hash)
        .bind(u.role.as_str())
        .bind(u.disabled)
        .bind(u.updated_at)
        .bind(u.password_changed_at)
        .bind(u.last_login_at)
        .bind(&u.id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn user_by_id(&self, id: &str) -> Result<Option<UserRecord>> {
        sqlx::query("SELECT * FROM users WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(record::<UserRecord>)
            .transpose()
    }

    async fn user_by_name(&self, username: &str) -> Result<Option<UserRecord>> {
        sqlx::query("SELECT * FROM users WHERE username = ?")
            .bind(username)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(record::<UserRecord>)
            .transpose()
    }

    async fn list_users(&self, page: Page) -> Result<(Vec<UserRecord>, u64)> {
        let total = self.count_users().await?;
        let rows = sqlx::query("SELECT * FROM users ORDER BY username LIMIT ? OFFSET ?")
            .bind(i64::from(page.limit))
            .bind(page.offset as i64)
            .fetch_all(&self.pool)
            .await?;
        Ok((
            rows.iter()
                .map(record::<UserRecord>)
                .collect::<Result<_>>()?,
            total,
        ))
    }

    async fn delete_user(&self, id: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM users WHERE id = ?")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn insert_session(&self, s: &SessionRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO sessions (id, user_id, token_hash, created_at, last_seen_at, expires_at, \
             max_expires_at, revoked_at, source_ip, user_agent) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&s.id)
        .bind(&s.user_id)
        .bind(&s.token_hash)
        .bind(s.created_at)
        .bind(s.last_seen_at)
        .bind(s.expires_at)
        .bind(s.max_expires_at)
        .bind(s.revoked_at)
        .bind(&s.source_ip)
        .bind(&s.user_agent)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn session_by_token(&self, token_hash: &str) -> Result<Option<SessionRecord>> {
        sqlx::query("SELECT * FROM sessions WHERE token_hash = ?")
            .bind(token_hash)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(record::<SessionRecord>)
            .transpose()
    }

    async fn touch_session(
        &self,
        id: &str,
        seen: DateTime<Utc>,
        expires: DateTime<Utc>,
    ) -> Result<()> {
        sqlx::query("UPDATE sessions SET last_seen_at = ?, expires_at = ? WHERE id = ?")
            .bind(seen)
            .bind(expires)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn revoke_session(&self, user_id: &str, id: &str, at: DateTime<Utc>) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE sessions SET revoked_at = ? WHERE id = ? AND user_id = ? AND revoked_at IS NULL",
        )
        .bind(at)
        .bind(id)
        .bind(user_id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn revoke_user_sessions(&self, user_id: &str, at: DateTime<Utc>) -> Result<u64> {
        let done = sqlx::query(
            "UPDATE sessions SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL",
        )
        .bind(at)
        .bind(user_id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    async fn purge_ended_sessions(&self, user_id: Option<&str>, now: DateTime<Utc>) -> Result<u64> {
        let done = sqlx::query(
            "DELETE FROM sessions WHERE (? IS NULL OR user_id = ?) AND (revoked_at IS NOT NULL \
             OR expires_at <= ? OR max_expires_at <= ?)",
        )
        .bind(user_id)
        .bind(user_id)
        .bind(now)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    async fn live_sessions(&self, user_id: &str, now: DateTime<Utc>) -> Result<Vec<SessionRecord>> {
        let rows = sqlx::query(
            "SELECT * FROM sessions WHERE user_id = ? AND revoked_at IS NULL AND expires_at > ? \
             AND max_expires_at > ? ORDER BY created_at DESC",
        )
        .bind(user_id)
        .bind(now)
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(record::<SessionRecord>).collect()
    }

    async fn insert_api_key(&self, k: &ApiKeyRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO api_keys (id, user_id, name, prefix, secret_hash, scopes, datasets, \
             created_at, expires_at, last_used_at, revoked_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&k.id)
        .bind(&k.user_id)
        .bind(&k.name)
        .bind(&k.prefix)
        .bind(&k.secret_hash)
        .bind(to_json_text(&k.scopes))
        .bind(k.datasets.as_ref().map(to_json_text))
        .bind(k.created_at)
        .bind(k.expires_at)
        .bind(k.last_used_at)
        .bind(k.revoked_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn api_key_by_secret(&self, secret_hash: &str) -> Result<Option<ApiKeyRecord>> {
        sqlx::query("SELECT * FROM api_keys WHERE secret_hash = ?")
            .bind(secret_hash)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(record::<ApiKeyRecord>)
            .transpose()
    }

    async fn api_key(&self, id: &str) -> Result<Option<ApiKeyRecord>> {
        sqlx::query("SELECT * FROM api_keys WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(record::<ApiKeyRecord>)
            .transpose()
    }

    async fn list_api_keys(&self, user_id: Option<&str>) -> Result<Vec<ApiKeyRecord>> {
        let rows = match user_id {
            Some(user_id) => {
                sqlx::query("SELECT * FROM api_keys WHERE user_id = ? ORDER BY created_at DESC")
                    .bind(user_id)
                    .fetch_all(&self.pool)
                    .await?
            }
            None => {
                sqlx::query("SELECT * FROM api_keys ORDER BY created_at DESC")
                    .fetch_all(&self.pool)
                    .await?
            }
        };
        rows.iter().map(record::<ApiKeyRecord>).collect()
    }

    async fn revoke_api_key(&self, id: &str, at: DateTime<Utc>) -> Result<bool> {
        let done =
            sqlx::query("UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL")
                .bind(at)
                .bind(id)
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn touch_api_key(&self, id: &str, at: DateTime<Utc>) -> Result<()> {
        sqlx::query("UPDATE api_keys SET last_used_at = ? WHERE id = ?")
            .bind(at)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn grants(&self, user_id: &str) -> Result<Vec<DatasetGrant>> {
        let rows = sqlx::query(
            "SELECT dataset, access FROM dataset_grants WHERE user_id = ? ORDER BY dataset",
        )
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(DatasetGrant {
                    dataset: row.try_get("dataset")?,
                    access: GrantAccess::parse(&row.try_get::<String, _>("access")?)
                        .map_err(|e| Error::corrupt("grant access", e))?,
                })
            })
            .collect()
    }

    async fn put_grant(&self, user_id: &str, grant: &DatasetGrant) -> Result<()> {
        sqlx::query(
            "INSERT INTO dataset_grants (user_id, dataset, access, created_at) VALUES (?, ?, ?, ?) \
             ON CONFLICT (user_id, dataset) DO UPDATE SET access = excluded.access",
        )
        .bind(user_id)
        .bind(&grant.dataset)
        .bind(grant.access.as_str())
        .bind(Utc::now())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn delete_grant(&self, user_id: &str, dataset: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM dataset_grants WHERE user_id = ? AND dataset = ?")
            .bind(user_id)
            .bind(dataset)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }
}

#[async_trait]
impl AuditStore for SqliteCatalog {
    async fn append_audit(
        &self,
        entry: &NewAuditRecord,
        seal: AuditSeal<'_>,
    ) -> Result<AuditRecord> {
        // IMMEDIATE takes the write lock up front, so two appenders cannot both
        // chain onto the same previous row.
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let high: i64 = sqlx::query_scalar(
            "SELECT coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'audit_log'), 0)",
        )
        .fetch_one(&mut *tx)
        .await?;
        let prev_mac: String = sqlx::query_scalar(
            "SELECT coalesce((SELECT mac FROM audit_log ORDER BY seq DESC LIMIT 1), '')",
        )
        .fetch_one(&mut *tx)
        .await?;
        let seq = high + 1;
        let mac = seal(seq, &prev_mac, entry);
        sqlx::query(
            "INSERT INTO audit_log (seq, at, actor, action, target, outcome, request_id, source_ip, \
             details, prev_mac, mac) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(seq)
        .bind(&entry.at)
        .bind(&entry.actor)
        .bind(&entry.action)
        .bind(&entry.target)
        .bind(&entry.outcome)
        .bind(&entry.request_id)
        .bind(&entry.source_ip)
        .bind(&entry.details)
        .bind(&prev_mac)
        .bind(&mac)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(AuditRecord {
            seq,
            entry: entry.clone(),
            prev_mac,
            mac,
        })
    }

    async fn list_audit(
        &self,
        filter: &AuditFilter,
        page: Page,
    ) -> Result<(Vec<AuditRecord>, u64)> {
        let mut count = QueryBuilder::<Sqlite>::new("SELECT count(*) FROM audit_log");
        push_audit_filter(&mut count, filter);
        let total: i64 = count.build_query_scalar().fetch_one(&self.pool).await?;
        let mut select = QueryBuilder::<Sqlite>::new("SELECT * FROM audit_log");
        push_audit_filter(&mut select, filter);
        select
            .push(" ORDER BY seq DESC LIMIT ")
            .push_bind(i64::from(page.limit))
            .push(" OFFSET ")
            .push_bind(page.offset as i64);
        let rows = select.build().fetch_all(&self.pool).await?;
        Ok((
            rows.iter()
                .map(record::<AuditRecord>)
                .collect::<Result<_>>()?,
            total as u64,
        ))
    }

    async fn audit_after(&self, after_seq: i64, limit: u32) -> Result<Vec<AuditRecord>> {
        let rows = sqlx::query("SELECT * FROM audit_log WHERE seq > ? ORDER BY seq LIMIT ?")
            .bind(after_seq)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(record::<AuditRecord>).collect()
    }

    async fn audit_high_water(&self) -> Result<i64> {
        Ok(sqlx::query_scalar(
            "SELECT coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'audit_log'), 0)",
        )
        .fetch_one(&self.pool)
        .await?)
    }
}

#[async_trait]
impl SecretStore for SqliteCatalog {
    async fn put_secret(&self, s: &SecretRecord) -> Result<()> {
        upsert_secret(&self.pool, s).await
    }

    async fn secret(&self, name: &str) -> Result<Option<SecretRecord>> {
        sqlx::query("SELECT * FROM secrets WHERE name = ?")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(record::<SecretRecord>)
            .transpose()
    }

    async fn all_secrets(&self) -> Result<Vec<SecretRecord>> {
        let rows = sqlx::query("SELECT * FROM secrets ORDER BY name")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(record::<SecretRecord>).collect()
    }

    async fn reseal_secrets(&self, secrets: &[SecretRecord]) -> Result<()> {
        let mut conn = self.pool.acquire().await?;
        // The key file is replaced right after this commit: the commit must be
        // on disk first, which WAL's NORMAL sync does not promise.
        sqlx::query("PRAGMA synchronous = FULL")
            .execute(&mut *conn)
            .await?;
        let mut tx = sqlx::Connection::begin(&mut *conn).await?;
        for s in secrets {
            sqlx::query("UPDATE secrets SET key_id = ?, sealed = ?, updated_at = ? WHERE name = ?")
                .bind(&s.key_id)
                .bind(&s.sealed)
                .bind(s.updated_at)
                .bind(&s.name)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        sqlx::query("PRAGMA synchronous = NORMAL")
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    async fn delete_secret(&self, name: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM secrets WHERE name = ?")
            .bind(name)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }
}

/// Inserts or replaces a sealed secret, on a pool or inside a transaction.
pub(super) async fn upsert_secret<'e, E>(executor: E, s: &SecretRecord) -> Result<()>
where
    E: sqlx::Executor<'e, Database = Sqlite>,
{
    sqlx::query(
        "INSERT INTO secrets (name, key_id, sealed, created_at, updated_at) VALUES (?, ?, ?, ?, ?) \
         ON CONFLICT (name) DO UPDATE SET key_id = excluded.key_id, sealed = excluded.sealed, \
         updated_at = excluded.updated_at",
    )
    .bind(&s.name)
    .bind(&s.key_id)
    .bind(&s.sealed)
    .bind(s.created_at)
    .bind(s.updated_at)
    .execute(executor)
    .await?;
    Ok(())
}
