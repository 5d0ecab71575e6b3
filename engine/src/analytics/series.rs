//! Running time-series requests: resolve the source, plan, execute on the
//! CPU runtime, assemble, and cache answers by dataset version.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use chrono::Utc;

use super::timeseries::{self, Source, TimeseriesRequest, TimeseriesResponse};
use crate::auth::{Action, Principal, Resource};
use crate::query::plan_read_only;
use crate::{Engine, Error, Result};
use basin_sql::quote_ident;

/// Answers kept; the oldest goes first.
const CACHED_ANSWERS: usize = 256;
/// Values all kept answers may hold together (about 16 bytes each, with their times).
const CACHED_VALUES: usize = 8_000_000;
/// The table name a SQL source is registered under.
const SQL_SOURCE: &str = "__timeseries_source";

/// Answers to dataset-sourced requests, keyed by dataset id, dataset version
/// and the request: a new version is a new key, so a write invalidates
/// without anyone having to remember to.
#[derive(Debug, Default)]
pub struct ResponseCache {
    entries: Mutex<Entries>,
}

/// Answers by key, and their keys oldest first.
#[derive(Debug, Default)]
struct Entries {
    answers: HashMap<String, Arc<TimeseriesResponse>>,
    order: VecDeque<String>,
    values: usize,
}

/// How many values an answer holds, its comparison included.
fn values_of(answer: &TimeseriesResponse) -> usize {
    let comparison = answer.comparison.as_ref().map_or(0, |c| {
        c.series.iter().map(|s| s.values.len()).sum::<usize>()
    });
    answer.series.iter().map(|s| s.values.len()).sum::<usize>() + comparison
}

impl ResponseCache {
    fn get(&self, key: &str) -> Option<Arc<TimeseriesResponse>> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.answers.get(key).cloned()
    }

    fn put(&self, key: String, answer: Arc<TimeseriesResponse>) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let size = values_of(&answer);
        if size > CACHED_VALUES {
            return;
        }
        let Entries {
            answers,
            order,
            values,
        } = &mut *entries;
        match answers.insert(key.clone(), answer) {
            Some(replaced) => *values -= values_of(&replaced),
            None => order.push_back(key),
        }
        *values += size;
        while order.len() > CACHED_ANSWERS || *values > CACHED_VALUES {
            let Some(oldest) = order.pop_front() else {
                break;
            };
            if let Some(evicted) = answers.remove(&oldest) {
                *values -= values_of(&evicted);
            }
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
