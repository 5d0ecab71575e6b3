//! What Basin's tickets carry. They are self-contained, so a ticket works on
//! any connection until its query finishes.

use arrow_flight::sql::Any;
use basin_engine::{Error, Result};
use prost::Message;

/// A query (or write) to run on `DoGet`.
#[derive(Clone, PartialEq, Message)]
pub(crate) struct QueryTicket {
    /// Identifies the run for `CancelFlightInfo`.
    #[prost(string, tag = "1")]
    pub(crate) id: String,
    /// The statement.
    #[prost(string, tag = "2")]
    pub(crate) sql: String,
    /// The prepared statement whose bound parameters apply.
    #[prost(string, optional, tag = "3")]
    pub(crate) prepared_handle: Option<String>,
}

impl QueryTicket {
    pub(crate) fn new(sql: String, prepared_handle: Option<String>) -> Self {
        Self {
            id: uuid::Uuid::new_v4().to_string(),
            sql,
            prepared_handle,
        }
    }
}

/// A dataset (at a version) to stream on `DoGet`.
#[derive(Clone, PartialEq, Message)]
pub(crate) struct DatasetTicket {
    /// The dataset.
    #[prost(string, tag = "1")]
    pub(crate) name: String,
    /// The version; the latest when absent.
    #[prost(int64, optional, tag = "2")]
    pub(crate) version: Option<i64>,
}

const DATASET_TICKET_TYPE: &str = "type.googleapis.com/basin.DatasetTicket";

impl DatasetTicket {
    /// From a path descriptor: `[dataset]` or `[dataset, version]`.
    pub(crate) fn from_path(path: &[String]) -> Result<Self> {
        match path {
            [name] => Ok(Self {
                name: name.clone(),
                version: None,
            }),
            [name, version] => {
                let version = version
                    .parse::<i64>()
                    .ok()
                    .filter(|v| *v >= 0)
                    .ok_or_else(|| {
                        Error::InvalidInput(format!("version {version:?} is not a number"))
                    })?;
                Ok(Self {
                    name: name.clone(),
                    version: Some(version),
                })
            }
            _ => Err(Error::InvalidInput(
                "a path descriptor is [dataset] or [dataset, version]".into(),
            )),
        }
    }

    pub(crate) fn to_any(&self) -> Any {
        Any {
            type_url: DATASET_TICKET_TYPE.into(),
            value: self.encode_to_vec().into(),
        }
    }

    pub(crate) fn from_any(any: &Any) -> Option<Self> {
        (any.type_url == DATASET_TICKET_TYPE)
            .then(|| Self::decode(&*any.value).ok())
            .flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dataset_paths_parse() {
        let t = DatasetTicket::from_path(&["orders".into(), "3".into()]).unwrap();
        assert_eq!(t.version, Some(3));
        assert!(DatasetTicket::from_path(&["orders".into(), "x".into()]).is_err());
        assert!(DatasetTicket::from_path(&[]).is_err());
        let back = DatasetTicket::from_any(&t.to_any()).unwrap();
        assert_eq!(back, t);
    }
}
