//! Named connections to sources: stored configuration with its secret fields
//! sealed, checks, discovery (recorded in schema history), and each
//! connection as a SQL catalog for live queries (`<connection>.<schema>.<table>`).
//!
//! Opened sources (database pools, registered object stores) are kept per
//! connection version, so a query does not reconnect; any change to a
//! connection bumps its version and drops the old source.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use basin_connectors::source::{self as connector, Connector, Source, SourceEnv};
use basin_connectors::{CheckOutcome, StreamInfo};
use chrono::Utc;
use datafusion::catalog::{CatalogProvider, SchemaProvider, TableProvider};
use datafusion::error::DataFusionError;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::catalog::{ConnectionRecord, SchemaHistoryRecord};
use crate::datasets::history::stream_subject;
use crate::datasets::schema::{SchemaChange, SchemaField, fields_of_stream};
use crate::error::Entity;
use crate::identity::{Action, Principal};
use crate::{Engine, Error, Result};

/// Longest a check or a connect may take when the connection sets no timeout of its own.
const CONNECT_LIMIT: Duration = Duration::from_secs(120);

/// A connector type as listed for frontends.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ConnectorType {
    /// Stable type name.
    pub kind: &'static str,
    /// Human title.
    pub title: &'static str,
    /// What it reads.
    pub description: &'static str,
    /// JSON pointers of secret fields.
    pub secret_fields: Vec<String>,
}

/// A connection to create.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewConnection {
    /// Unique name (an identifier: it becomes a SQL catalog name).
    pub name: String,
    /// Connector type.
    #[serde(rename = "type")]
    pub kind: String,
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// The connector's configuration, secrets included.
    pub config: Value,
}

/// Changes to a connection. Secret fields left out of `config` keep their
/// stored values; a secret field set to `null` is removed.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionPatch {
    /// New name.
    #[serde(default)]
    pub name: Option<String>,
    /// New description.
    #[serde(default)]
    pub description: Option<String>,
    /// New configuration (replaces the stored one, except omitted secrets).
    #[serde(default)]
    pub config: Option<Value>,
}

/// A source opened at a connection version.
type OpenedSource = (i64, Arc<dyn Source>);

/// Most connections whose opened sources are kept at once.
const OPENED_SOURCES: u64 = 256;
/// An opened source unused this long is dropped, closing its pool.
const SOURCE_IDLE: Duration = Duration::from_secs(30 * 60);

/// Opened sources by connection id, at the version they were opened at.
///
/// Eviction: at most [`OPENED_SOURCES`] connections (moka's TinyLFU policy
/// picks which), and a source idle for [`SOURCE_IDLE`] is dropped, so an
/// instance with many rarely used connections holds no pool for each.
pub(crate) struct SourceCache {
    opened: moka::sync::Cache<String, OpenedSource>,
}

impl Default for SourceCache {
    fn default() -> Self {
        Self {
            opened: moka::sync::Cache::builder()
                .max_capacity(OPENED_SOURCES)
                .time_to_idle(SOURCE_IDLE)
                .build(),
        }
    }
}

impl std::fmt::Debug for SourceCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceCache").finish_non_exhaustive()
    }
}

impl SourceCache {
    fn get(&self, id: &str, version: i64) -> Option<Arc<dyn Source>> {
        self.opened
            .get(id)
            .filter(|(v, _)| *v == version)
            .map(|(_, s)| s)
    }

    fn put(&self, id: &str, version: i64, source: Arc<dyn Source>) {
        self.opened.insert(id.to_owned(), (version, source));
    }

    fn forget(&self, id: &str) {
        self.opened.invalidate(id);
    }
}

/// SQL catalog names a connection may not take.
const RESERVED_NAMES: [&str; 3] = [basin_sql::CATALOG_NAME, "datafusion", "information_schema"];

fn secret_name(id: &str) -> String {
    format!("connection:{id}")
}

/// Splits the secret fields out of `config`: `(config without them, {pointer: value})`.
fn split_secrets(
    connector: &dyn Connector,
    config: &Value,
) -> (Value, serde_json::Map<String, Value>) {
    let mut public = config.clone();
    let mut secrets = serde_json::Map::new();
    for pointer in connector.secret_fields() {
        if let Some(value) = take_pointer(&mut public, &pointer)
            && !value.is_null()
        {
            secrets.insert(pointer, value);
        }
    }
    (public, secrets)
}

/// Removes and returns the value at `pointer`.
fn take_pointer(value: &mut Value, pointer: &str) -> Option<Value> {
    let (parent, key) = pointer.rsplit_once('/')?;
    let parent = if parent.is_empty() {
        value
    } else {
        value.pointer_mut(parent)?
    };
    parent.as_object_mut()?.remove(key)
}

/// Puts `secret` at `pointer`, creating parent objects as needed.
fn put_pointer(value: &mut Value, pointer: &str, secret: Value) {
    let mut node = value;
    let parts: Vec<&str> = pointer.trim_start_matches('/').split('/').collect();
    for (i, part) in parts.iter().enumerate() {
        if !node.is_object() {
            *node = Value::Object(serde_json::Map::new());
        }
        let Some(map) = node.as_object_mut() else {
            return;
        };
        if i + 1 == parts.len() {
            map.insert((*part).to_owned(), secret);
            return;
        }
        node = map
            .entry((*part).to_owned())
            .or_insert_with(|| Value::Object(serde_json::Map::new()));
    }
}

/// Whether `pointer` is explicitly `null` in `config`.
fn is_explicit_null(config: &Value, pointer: &str) -> bool {
    config.pointer(pointer).is_some_and(Value::is_null)
}

impl Engine {
    /// Only callers that may read beyond datasets see connections: an API
    /// key limited to datasets does not.
    pub(crate) fn authorize_connections(
        &self,
        principal: &crate::identity::Principal,
        action: crate::identity::Action,
    ) -> Result<()> {
        principal.authorize(action, crate::identity::Resource::Global)?;
        // A connection reads with its own credentials: nobody unidentified uses them.
        if principal.via == crate::identity::Via::Anonymous {
            return Err(Error::Unauthenticated(
                "connections need a signed-in user or an API key".into(),
            ));
        }
        if principal.dataset_limit().is_some() {
            return Err(Error::Forbidden(
                "this API key is limited to datasets: connections are out of its reach".into(),
            ));
        }
        Ok(())
    }

    fn connector(&self, kind: &str) -> Result<Arc<dyn Connector>> {
        self.inner
            .connectors
            .get(kind)
            .ok_or_else(|| Error::not_found(Entity::Connector, kind.to_owned()))
    }

    pub(crate) fn source_env(&self) -> SourceEnv {
        SourceEnv {
            allowed_roots: self.config().allowed_roots.clone(),
            runtime: self.sessions().runtime(),
            io: self.inner.io.clone(),
        }
    }

    /// The connector types this server offers.
    pub fn connector_types(&self, principal: &Principal) -> Result<Vec<ConnectorType>> {
        self.authorize_connections(principal, Action::Read)?;
        Ok(self
            .inner
            .connectors
            .all()
            .iter()
            .map(|c| ConnectorType {
                kind: c.kind(),
                title: c.title(),
                description: c.description(),
                secret_fields: c.secret_fields(),
            })
            .collect())
    }

    /// A connector type's configuration schema (JSON Schema 2020-12).
    pub fn connector_spec(&self, principal: &Principal, kind: &str) -> Result<Value> {
        self.authorize_connections(principal, Action::Read)?;
        Ok(self.connector(kind)?.spec())
    }

    /// All connections.
    pub async fn list_connections(&self, principal: &Principal) -> Result<Vec<ConnectionRecord>> {
        self.authorize_connections(principal, Action::Read)?;
        self.catalog().list_connections().await.map_err(Error::from)
    }

    /// One connection, by id or name.
    pub async fn connection(
        &self,
        principal: &Principal,
        id_or_name: &str,
    ) -> Result<ConnectionRecord> {
        self.authorize_connections(principal, Action::Read)?;
        self.connection_record(id_or_name).await
    }

    /// One connection, by id or name, for the engine's own use.
    pub(crate) async fn connection_record(&self, id_or_name: &str) -> Result<ConnectionRecord> {
        self.catalog()
            .connection(id_or_name)
            .await?
            .ok_or_else(|| Error::not_found(Entity::Connection, id_or_name.to_owned()))
    }

    fn check_connection_name(name: &str) -> Result<()> {
        basin_sql::validate_name(name)?;
        if RESERVED_NAMES.contains(&name) {
            return Err(Error::InvalidInput(format!(
                "`{name}` is reserved: choose another connection name"
            )));
        }
        Ok(())
    }

    /// Creates a connection; the configuration's shape is checked, the source
    /// is not contacted (`test` does that).
    pub async fn create_connection(
        &self,
        principal: &Principal,
        new: NewConnection,
    ) -> Result<ConnectionRecord> {
        self.authorize_connections(principal, Action::Admin)?;
        Self::check_connection_name(&new.name)?;
        let connector = self.connector(&new.kind)?;
        connector.validate(&new.config)?;
        let (public, secrets) = split_secrets(connector.as_ref(), &new.config);
        let now = Utc::now();
        let record = ConnectionRecord {
            id: uuid::Uuid::now_v7().to_string(),
            name: new.name,
            kind: new.kind,
            description: new.description,
            config: public,
            secret_fields: secrets.keys().cloned().collect(),
            created_by: Some(principal.username.clone()),
            version: 1,
            created_at: now,
            updated_at: now,
        };
        let sealed = self.sealed_secret(&secret_name(&record.id), &secret_bytes(&secrets)?)?;
        self.catalog().insert_connection(&record, &sealed).await?;
        Ok(record)
    }

    /// Changes a connection's name, description or configuration.
    pub async fn update_connection(
        &self,
        principal: &Principal,
        id_or_name: &str,
        patch: ConnectionPatch,
    ) -> Result<ConnectionRecord> {
        self.authorize_connections(principal, Action::Admin)?;
        let mut record = self.connection_record(id_or_name).await?;
        let read_version = record.version;
        let connector = self.connector(&record.kind)?;
        let mut sealed = None;
        if let Some(name) = patch.name {
            Self::check_connection_name(&name)?;
            record.name = name;
        }
        if let Some(description) = patch.description {
            record.description = description;
        }
        if let Some(config) = patch.config {
            let mut secrets = self.connection_secrets(&record.id).await?;
            let (public, given) = split_secrets(connector.as_ref(), &config);
            // Stored secrets never follow the connection to another server:
            // when where it points changes, only secrets given now are kept.
            let moved = connector
                .destination_fields()
                .iter()
                .any(|p| record.config.pointer(p) != public.pointer(p));
            if moved {
                secrets.clear();
            }
            for pointer in connector.secret_fields() {
                if is_explicit_null(&config, &pointer) {
                    secrets.remove(&pointer);
                }
            }
            secrets.extend(given);
            let mut full = public.clone();
            for (pointer, value) in &secrets {
                put_pointer(&mut full, pointer, value.clone());
            }
            connector.validate(&full)?;
            sealed = Some(self.sealed_secret(&secret_name(&record.id), &secret_bytes(&secrets)?)?);
            record.config = public;
            record.secret_fields = secrets.keys().cloned().collect();
        }
        record.version += 1;
        record.updated_at = Utc::now();
        self.catalog()
            .update_connection(&record, sealed.as_ref(), read_version)
            .await?;
        self.inner.sources.forget(&record.id);
        Ok(record)
    }

    /// Deletes a connection, its sealed secrets, sync state and mappings.
    pub async fn delete_connection(&self, principal: &Principal, id_or_name: &str) -> Result<()> {
        self.authorize_connections(principal, Action::Admin)?;
        let record = self.connection_record(id_or_name).await?;
        self.catalog()
            .delete_connection(&record.id, &secret_name(&record.id))
            .await?;
        self.inner.sources.forget(&record.id);
        Ok(())
    }

    async fn connection_secrets(&self, id: &str) -> Result<serde_json::Map<String, Value>> {
        match self.secret(&secret_name(id)).await? {
            Some(bytes) => {
                serde_json::from_slice(&bytes).map_err(|e| Error::internal("connection secrets", e))
            }
            None => Ok(serde_json::Map::new()),
        }
    }

    /// The connection's full configuration, secrets unsealed (never shown).
    async fn full_config(&self, record: &ConnectionRecord) -> Result<Value> {
        let mut config = record.config.clone();
        for (pointer, value) in self.connection_secrets(&record.id).await? {
            put_pointer(&mut config, &pointer, value);
        }
        Ok(config)
    }

    /// Checks an unsaved configuration: validates, connects, checks; never
    /// longer than the connection's own timeout.
    pub async fn test_connection_config(
        &self,
        principal: &Principal,
        kind: &str,
        config: &Value,
    ) -> Result<CheckOutcome> {
        self.authorize_connections(principal, Action::Admin)?;
        self.check_config(kind, config).await
    }

    async fn check_config(&self, kind: &str, config: &Value) -> Result<CheckOutcome> {
        let connector = self.connector(kind)?;
        Ok(connector::check(
            connector.as_ref(),
            config,
            &self.source_env(),
            CONNECT_LIMIT,
        )
        .await)
    }

    /// Checks a saved connection (a fresh connect, not the cached source).
    pub async fn test_connection(
        &self,
        principal: &Principal,
        id_or_name: &str,
    ) -> Result<CheckOutcome> {
        self.authorize_connections(principal, Action::Write)?;
        let record = self.connection_record(id_or_name).await?;
        let config = self.full_config(&record).await?;
        self.check_config(&record.kind, &config).await
    }

    /// Drops a connection's opened source after a failure that a fresh
    /// connection might not have (a restarted database, an idle timeout).
    pub(crate) fn forget_source_after(&self, record: &ConnectionRecord, error: &Error) {
        if let Error::Source(e) = error
            && e.kind == basin_connectors::FailureKind::Config
        {
            return;
        }
        self.inner.sources.forget(&record.id);
    }

    /// The opened source of a connection, reused while the connection is unchanged.
    pub(crate) async fn open_source(&self, record: &ConnectionRecord) -> Result<Arc<dyn Source>> {
        if let Some(source) = self.inner.sources.get(&record.id, record.version) {
            return Ok(source);
        }
        let connector = self.connector(&record.kind)?;
        let config = self.full_config(record).await?;
        let source = connector::with_timeout(
            CONNECT_LIMIT,
            connector.connect(&config, &self.source_env()),
        )
        .await?;
        self.inner
            .sources
            .put(&record.id, record.version, source.clone());
        Ok(source)
    }

    /// Lists a connection's streams, recording each stream's schema in its
    /// history when it changed.
    pub async fn discover(
        &self,
        principal: &Principal,
        id_or_name: &str,
    ) -> Result<Vec<DiscoveredStream>> {
        self.authorize_connections(principal, Action::Write)?;
        let record = self.connection_record(id_or_name).await?;
        let source = self.open_source(&record).await?;
        let streams = match source.discover().await {
            Ok(streams) => streams,
            Err(e) => {
                let e = Error::from(e);
                self.forget_source_after(&record, &e);
                return Err(e);
            }
        };
        let mut out = Vec::with_capacity(streams.len());
        for stream in streams {
            let subject = stream_subject(&record.id, &stream.name);
            let changes = self
                .record_schema(&subject, None, &fields_of_stream(&stream), "discover")
                .await?;
            out.push(DiscoveredStream {
                stream,
                schema_changes: changes,
            });
        }
        Ok(out)
    }

    /// A connection stream's schema history, oldest first.
    pub async fn stream_schema_history(
        &self,
        principal: &Principal,
        id_or_name: &str,
        stream: &str,
    ) -> Result<Vec<SchemaHistoryRecord>> {
        self.authorize_connections(principal, Action::Read)?;
        let record = self.connection_record(id_or_name).await?;
        self.catalog()
            .schema_history(&stream_subject(&record.id, stream))
            .await
            .map_err(Error::from)
    }

    /// Registers every connection as a SQL catalog in `ctx`, when `principal`
    /// may read beyond datasets (an API key limited to datasets may not).
    pub(crate) async fn register_connections(
        &self,
        principal: &Principal,
        ctx: &datafusion::prelude::SessionContext,
    ) -> Result<()> {
        if self.authorize_connections(principal, Action::Read).is_err() {
            return Ok(());
        }
        for record in self.catalog().list_connections().await? {
            let default_namespace = default_namespace(&record.kind);
            ctx.register_catalog(
                record.name.clone(),
                Arc::new(ConnectionCatalog {
                    engine: self.clone(),
                    record: Arc::new(record),
                    default_namespace,
                }),
            );
        }
        Ok(())
    }
}

/// The schema sources without namespaces show their streams in.
fn default_namespace(kind: &str) -> Option<&'static str> {
    match kind {
        "postgres" | "mysql" => None,
        "sqlite" => Some("main"),
        _ => Some("public"),
    }
}

fn secret_bytes(secrets: &serde_json::Map<String, Value>) -> Result<Vec<u8>> {
    serde_json::to_vec(secrets).map_err(|e| Error::internal("connection secrets", e))
}

/// A discovered stream and how its schema changed since the last record.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DiscoveredStream {
    /// The stream.
    #[serde(flatten)]
    pub stream: StreamInfo,
    /// Changes since the schema last recorded for it.
    pub schema_changes: Vec<SchemaChange>,
}

/// A connection as a SQL catalog: schemas and tables resolve when a query names them.
#[derive(Debug)]
struct ConnectionCatalog {
    engine: Engine,
    record: Arc<ConnectionRecord>,
    default_namespace: Option<&'static str>,
}

impl CatalogProvider for ConnectionCatalog {
    fn schema_names(&self) -> Vec<String> {
        self.default_namespace
            .map(|n| vec![n.to_owned()])
            .unwrap_or_default()
    }

    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        if let Some(only) = self.default_namespace
            && name != only
        {
            return None;
        }
        Some(Arc::new(ConnectionSchema {
            engine: self.engine.clone(),
            record: self.record.clone(),
            namespace: self.default_namespace.is_none().then(|| name.to_owned()),
        }))
    }
}

/// One schema of a connection.
#[derive(Debug)]
struct ConnectionSchema {
    engine: Engine,
    record: Arc<ConnectionRecord>,
    /// The source's schema or database; `None` for sources without namespaces.
    namespace: Option<String>,
}

/// Quotes a stream name part that holds a dot.
fn stream_part(part: &str) -> String {
    if part.contains('.') || part.contains('"') {
        basin_sql::quote_ident(part)
    } else {
        part.to_owned()
    }
}

#[async_trait]
impl SchemaProvider for ConnectionSchema {
    fn table_names(&self) -> Vec<String> {
        // Listing needs the source; `POST /connections/{id}/discover` lists.
        Vec::new()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>, DataFusionError> {
        let stream = match &self.namespace {
            Some(ns) => format!("{}.{}", stream_part(ns), stream_part(name)),
            None => name.to_owned(),
        };
        let to_df = |e: Error| DataFusionError::External(Box::new(e));
        let source = self.engine.open_source(&self.record).await.map_err(to_df)?;
        match source.table(&stream).await {
            Ok(table) => Ok(Some(table)),
            Err(basin_connectors::Error::Source(e))
                if e.kind == basin_connectors::FailureKind::Config
                    && e.field.as_deref() == Some("/stream") =>
            {
                Ok(None)
            }
            Err(e) => {
                let e = Error::from(e);
                self.engine.forget_source_after(&self.record, &e);
                Err(to_df(e))
            }
        }
    }

    fn table_exist(&self, _name: &str) -> bool {
        false
    }
}

/// Fields of a stream as it reads now (the table provider's schema).
pub(crate) fn provider_fields(table: &dyn TableProvider) -> Vec<SchemaField> {
    crate::datasets::schema::fields_of(&table.schema())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_split_and_merge_back() {
        let files = basin_connectors::objects::Files;
        let config = serde_json::json!({
            "url": "s3://b/x.csv",
            "s3": {"access_key_id": "AK", "secret_access_key": "SK", "region": "r"}
        });
        let (public, secrets) = split_secrets(&files, &config);
        assert!(public.pointer("/s3/secret_access_key").is_none());
        assert_eq!(
            public.pointer("/s3/access_key_id"),
            Some(&Value::from("AK"))
        );
        assert_eq!(secrets["/s3/secret_access_key"], Value::from("SK"));
        let mut merged = public.clone();
        for (p, v) in secrets {
            put_pointer(&mut merged, &p, v);
        }
        assert_eq!(merged, config);
    }

    #[test]
    fn secrets_land_in_missing_parents() {
        let mut config = serde_json::json!({"url": "x"});
        put_pointer(&mut config, "/auth/value", Value::from("t"));
        assert_eq!(config.pointer("/auth/value"), Some(&Value::from("t")));
    }

    #[test]
    fn dotted_stream_parts_are_quoted() {
        assert_eq!(stream_part("public"), "public");
        assert_eq!(stream_part("a.b"), "\"a.b\"");
    }
}
