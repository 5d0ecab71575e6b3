//! The success envelope, `{"data": …, "meta": …}`, as one named type per
//! answer. Handlers return these types and their `utoipa::path` names the same
//! type, so the OpenAPI document describes the real body and a client
//! generated from it is typed. (Generic envelopes would inline the data's
//! schema into every answer instead of referring to it by name.)

use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// `meta` of an answer that carries none.
#[derive(Debug, Default, Serialize, ToSchema)]
pub(crate) struct NoMeta {}

/// `meta` of a paged listing.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct PageMeta {
    /// Where this page is in the listing.
    pub(crate) page: PageInfo,
}

/// A page's place in its listing.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct PageInfo {
    /// Page size.
    pub(crate) limit: u32,
    /// Rows skipped.
    pub(crate) offset: u64,
    /// Rows matching the filter in all.
    pub(crate) total: u64,
    /// The next page's path and query, when more rows follow.
    pub(crate) next: Option<String>,
}

/// `meta` of a whole (unpaged) listing.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct TotalMeta {
    /// Items in `data`.
    pub(crate) total: usize,
}

impl TotalMeta {
    /// The meta of `items`.
    pub(crate) fn of<T>(items: &[T]) -> Self {
        Self { total: items.len() }
    }
}

/// Declares answer types: `Name(Data)` has an empty `meta`, `Name(Data, Meta)`
/// the given one; attributes before `Data` go on the `data` field. Each
/// serializes as `{"data", "meta"}` and is a response.
macro_rules! answers {
    ($($(#[$doc:meta])* $name:ident($(#[$data_attr:meta])* $data:ty $(, $meta:ty)?);)+) => {$(
        $crate::envelope::answers!(@one [$(#[$doc])*] $name [$(#[$data_attr])*] $data, $($meta)?);
    )+};
    (@one [$(#[$doc:meta])*] $name:ident [$(#[$data_attr:meta])*] $data:ty, ) => {
        $(#[$doc])*
        #[derive(Debug, serde::Serialize, utoipa::ToSchema)]
        struct $name {
            /// The answer.
            $(#[$data_attr])*
            data: $data,
            /// Nothing, for this answer.
            meta: $crate::envelope::NoMeta,
        }

        impl $name {
            /// The answer with an empty `meta`.
            fn new(data: $data) -> Self {
                Self { data, meta: $crate::envelope::NoMeta {} }
            }
        }

        $crate::envelope::answers!(@response $name);
    };
    (@one [$(#[$doc:meta])*] $name:ident [$(#[$data_attr:meta])*] $data:ty, $meta:ty) => {
        $(#[$doc])*
        #[derive(Debug, serde::Serialize, utoipa::ToSchema)]
        struct $name {
            /// The answer.
            $(#[$data_attr])*
            data: $data,
            /// About the answer.
            meta: $meta,
        }

        impl $name {
            /// The answer with its `meta`.
            fn new(data: $data, meta: $meta) -> Self {
                Self { data, meta }
            }
        }

        $crate::envelope::answers!(@response $name);
    };
    (@response $name:ident) => {
        impl axum::response::IntoResponse for $name {
            fn into_response(self) -> axum::response::Response {
                $crate::envelope::json_response(&self)
            }
        }
    };
}

pub(crate) use answers;

/// A JSON response of an answer.
pub(crate) fn json_response(answer: &impl Serialize) -> Response {
    axum::Json(answer).into_response()
}
