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

    #[test]
    fn every_secret_field_is_marked_in_the_spec() {
        for connector in Registry::default().all() {
            let spec = connector.spec();
            for pointer in connector.secret_fields() {
                let mut node = &spec;
                for part in pointer.trim_start_matches('/').split('/') {
                    let properties = &node["properties"];
                    node = if properties.is_null() {
                        // A `oneOf` of objects: the field is in one of them.
                        node["oneOf"]
                            .as_array()
                            .and_then(|options| {
                                options.iter().find(|o| !o["properties"][part].is_null())
                            })
                            .map(|o| &o["properties"][part])
                            .unwrap_or(&serde_json::Value::Null)
                    } else {
                        &properties[part]
                    };
                }
                assert_eq!(
                    node["x-secret"],
                    serde_json::Value::Bool(true),
                    "{} {pointer}",
                    connector.kind()
                );
            }
        }
    }
}
