//! The connectors a server offers, by type name.

use std::sync::Arc;

use crate::source::Connector;

/// Every built-in connector.
#[derive(Debug, Clone)]
pub struct Registry {
    connectors: Vec<Arc<dyn Connector>>,
}

impl Default for Registry {
    fn default() -> Self {
        Self {
            connectors: vec![
                Arc::new(crate::postgres::Postgres),
                Arc::new(crate::mysql::MySql),
                Arc::new(crate::sqlite::Sqlite),
                Arc::new(crate::objects::Files),
                Arc::new(crate::json_api::JsonApi),
            ],
        }
    }
}

impl Registry {
    /// All connectors, in display order.
    pub fn all(&self) -> &[Arc<dyn Connector>] {
        &self.connectors
    }

    /// The connector of type `kind`.
    pub fn get(&self, kind: &str) -> Option<Arc<dyn Connector>> {
        self.connectors.iter().find(|c| c.kind() == kind).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Secret fields are those typed `Secret`; these are the ones stored
    /// sealed and never shown, so a change here must be deliberate.
    #[test]
    fn secret_fields_are_the_fields_typed_secret() {
        let registry = Registry::default();
        let secrets = |kind: &str| registry.get(kind).unwrap().secret_fields();
        assert_eq!(secrets("postgres"), ["/password"]);
        assert_eq!(secrets("mysql"), ["/password"]);
        assert!(secrets("sqlite").is_empty());
        assert_eq!(
            secrets("files"),
            [
                "/s3/secret_access_key",
                "/s3/session_token",
                "/gcs/service_account_key",
                "/azure/access_key"
            ]
        );
        assert_eq!(secrets("http_api"), ["/auth/value", "/auth/password"]);
    }
}
