//! Running time-series requests: resolve the source, plan, execute on the
//! CPU runtime, assemble, and cache answers by dataset version.

use std::sync::Arc;

use chrono::Utc;

use super::timeseries::{self, Source, TimeseriesRequest, TimeseriesResponse};
use crate::identity::{Action, Principal, Resource};
use crate::sql::query::plan_read_only;
use crate::{Engine, Error, Result};
use basin_sql::quote_ident;

/// Most answers kept at once.
const CACHED_ANSWERS: u32 = 256;
/// Values all kept answers may hold together (about 16 bytes each, with their times).
const CACHED_VALUES: u32 = 8_000_000;
/// The table name a SQL source is registered under.
const SQL_SOURCE: &str = "__timeseries_source";

/// Answers to dataset-sourced requests, keyed by dataset id, dataset version
/// and the request: a new version is a new key, so a write invalidates
/// without anyone having to remember to.
///
/// Eviction: an answer weighs its values, and at least a 256th of
/// [`CACHED_VALUES`], so the kept answers hold at most [`CACHED_VALUES`]
/// values and number at most [`CACHED_ANSWERS`]; moka's TinyLFU policy picks
/// which go. An answer larger than the whole budget is not kept.
#[derive(Debug)]
pub struct ResponseCache {
    answers: moka::sync::Cache<String, Arc<TimeseriesResponse>>,
}

impl Default for ResponseCache {
    fn default() -> Self {
        Self {
            answers: moka::sync::Cache::builder()
                .max_capacity(u64::from(CACHED_VALUES))
                .weigher(|_, answer: &Arc<TimeseriesResponse>| weight_of(answer))
                .build(),
        }
    }
}

/// What an answer costs in the budget: its values, its comparison included,
/// and never less than one [`CACHED_ANSWERS`]th of the budget.
fn weight_of(answer: &TimeseriesResponse) -> u32 {
    let comparison = answer.comparison.as_ref().map_or(0, |c| {
        c.series.iter().map(|s| s.values.len()).sum::<usize>()
    });
    let values = answer.series.iter().map(|s| s.values.len()).sum::<usize>() + comparison;
    u32::try_from(values)
        .unwrap_or(u32::MAX)
        .max(CACHED_VALUES / CACHED_ANSWERS)
}

impl ResponseCache {
    fn get(&self, key: &str) -> Option<Arc<TimeseriesResponse>> {
        self.answers.get(key)
    }

    fn put(&self, key: String, answer: Arc<TimeseriesResponse>) {
        if weight_of(&answer) <= CACHED_VALUES {
            self.answers.insert(key, answer);
        }
    }
}

impl Engine {
    /// Answers a time-series request (see [`timeseries`] for its shape).
    pub async fn timeseries(
        &self,
        principal: &Principal,
        request: TimeseriesRequest,
    ) -> Result<Arc<TimeseriesResponse>> {
        principal.authorize(Action::Read, Resource::Global)?;
        let ctx = self.query_context(principal).await?;
        let (table, schema, dataset) = match &request.source {
            Source::Dataset { dataset } => {
                principal.authorize(Action::Read, Resource::Dataset(dataset))?;
                let record = self.dataset_record(dataset).await?;
                let table = quote_ident(dataset);
                let schema = ctx.table(table.as_str()).await?.schema().as_arrow().clone();
                (table, schema, Some(record))
            }
            Source::Sql { sql } => {
                let (planner, sql) = (ctx.clone(), sql.clone());
                let frame = self
                    .executor()
                    .run(async move { plan_read_only(&planner, &sql).await })
                    .await?;
                let schema = frame.schema().as_arrow().clone();
                ctx.register_table(SQL_SOURCE, frame.into_view())?;
                (SQL_SOURCE.to_owned(), schema, None)
            }
        };
        let plan = timeseries::plan(&request, &schema, &table, Utc::now())?;
        let key = dataset.as_ref().map(|record| {
            let request = serde_json::to_string(&TimeseriesRequest {
                renew: false,
                ..request.clone()
            })
            .unwrap_or_default();
            format!(
                "{}\u{1}{}\u{1}{}\u{1}{}\u{1}{}",
                record.id,
                record.version,
                request,
                plan.sql(),
                plan.compare_sql().unwrap_or_default()
            )
        });
        if let Some(key) = &key
            && !request.renew
            && let Some(hit) = self.inner_timeseries_cache().get(key)
        {
            return Ok(hit);
        }
        let timeout = self.config().query_timeout;
        let work = async {
            let batches = self.collect_read_only(&ctx, plan.sql()).await?;
            let compare = match plan.compare_sql() {
                Some(sql) => Some(self.collect_read_only(&ctx, sql).await?),
                None => None,
            };
            // Pivoting, filling and downsampling up to millions of values is CPU work.
            self.executor()
                .run(async move {
                    timeseries::assemble(&plan, &batches, compare.as_deref()).map_err(Error::from)
                })
                .await
        };
        let mut answer = tokio::time::timeout(timeout, work)
            .await
            .map_err(|_| Error::Timeout(timeout.as_millis() as u64))??;
        answer.dataset_version = dataset.as_ref().map(|d| d.version);
        let answer = Arc::new(answer);
        if let Some(key) = key {
            // Marked once here, so a hit is served without copying the answer.
            let mut cached = (*answer).clone();
            cached.cached = true;
            self.inner_timeseries_cache().put(key, Arc::new(cached));
        }
        Ok(answer)
    }
}
