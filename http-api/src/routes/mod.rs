//! One sub-router per resource.

pub(crate) mod analytics;
pub(crate) mod api_keys;
pub(crate) mod audit;
pub(crate) mod auth;
pub(crate) mod connections;
pub(crate) mod datasets;
pub(crate) mod events;
pub(crate) mod jobs;
pub(crate) mod ops;
pub(crate) mod pipelines;
pub(crate) mod query;
pub(crate) mod users;
pub(crate) mod ws;

use axum::http::Uri;
use serde::Deserialize;

use crate::envelope::{PageInfo, PageMeta};
use crate::error::ApiError;

/// The default and largest page sizes of listings.
const DEFAULT_LIMIT: u32 = 50;
const MAX_LIMIT: u32 = 1000;

/// `?limit=&offset=`.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
pub(crate) struct PageParams {
    limit: Option<u32>,
    offset: Option<u64>,
}

impl PageParams {
    pub(crate) fn page(self) -> Result<basin_engine::catalog::Page, ApiError> {
        let limit = self.limit.unwrap_or(DEFAULT_LIMIT);
        if limit == 0 || limit > MAX_LIMIT {
            return Err(ApiError::invalid(format!(
                "limit must be between 1 and {MAX_LIMIT}"
            )));
        }
        let offset = self.offset.unwrap_or(0);
        // The catalog counts rows in signed 64 bits, as the document's `int64` says.
        if i64::try_from(offset).is_err() {
            return Err(ApiError::invalid(format!(
                "offset must be at most {}",
                i64::MAX
            )));
        }
        Ok(basin_engine::catalog::Page { limit, offset })
    }
}

/// `meta.page` of a listing, with a `next` link when more rows follow.
pub(crate) fn page_meta(uri: &Uri, page: basin_engine::catalog::Page, total: u64) -> PageMeta {
    let next_offset = page.offset + u64::from(page.limit);
    let next = (next_offset < total).then(|| {
        let mut query: Vec<String> = uri
            .query()
            .unwrap_or("")
            .split('&')
            .filter(|p| !p.is_empty() && !p.starts_with("offset=") && !p.starts_with("limit="))
            .map(str::to_owned)
            .collect();
        query.push(format!("limit={}", page.limit));
        query.push(format!("offset={next_offset}"));
        format!("/api/v1{}?{}", uri.path(), query.join("&"))
    });
    PageMeta {
        page: PageInfo {
            limit: page.limit,
            offset: page.offset,
            total,
            next,
        },
    }
}
