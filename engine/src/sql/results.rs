//! The result cache: answers of read-only queries, kept by the versions of
//! the datasets they read, so that dashboards repeating their queries are
//! answered from memory until one of those datasets changes.
//!
//! An answer is reused only when
//! 1. the same SQL, parameters and row limit are asked;
//! 2. every dataset it read still has the id and catalog version it was read
//!    at, and every view it read still has the same SQL: a write records its
//!    version in the catalog as it becomes visible to queries, so the first
//!    query after a write misses (there is nothing to invalidate by hand);
//! 3. the caller may read every one of them, as planning would demand.
//!
//! Answers of plans that read anything else (connections, the information
//! schema, table functions), call a function whose value is not fixed by its
//! arguments (`now()`, `random()`), or explain themselves are never kept, nor
//! are answers larger than a sixteenth of the budget or streams that end
//! early (an error, a deadline, a client that went away).
//!
//! Eviction: moka's TinyLFU policy within `query.result_cache` bytes, an
//! answer weighing the Arrow memory of its batches.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::common::TableReference;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::error::DataFusionError;
use datafusion::logical_expr::{Expr, LogicalPlan, Volatility};
use datafusion::physical_plan::memory::MemoryStream;
use datafusion::physical_plan::{RecordBatchStream, SendableRecordBatchStream};
use futures::{Stream, StreamExt};

use crate::identity::Principal;
use crate::sql::contexts::Reads;
use crate::{Engine, Result};
use basin_sql::{CATALOG_NAME, SCHEMA_NAME};

/// The largest share of the budget one answer may take.
const ANSWER_SHARE: u64 = 16;

/// Kept answers; cheap to clone (one shared cache inside).
#[derive(Debug, Clone)]
pub struct ResultCache {
    answers: moka::sync::Cache<String, Arc<KeptAnswer>>,
    max_answer_bytes: usize,
}

/// An answer and the reads it stays true for.
#[derive(Debug)]
struct KeptAnswer {
    reads: Reads,
    schema: SchemaRef,
    batches: Vec<RecordBatch>,
    bytes: usize,
}

/// Whether an answer came from the result cache.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum CacheOutcome {
    /// Answered from memory.
    Hit,
    /// Computed; kept for the next caller if it may be.
    Miss,
    /// Not looked up: the cache is off or the request bypassed it.
    Bypass,
}

impl ResultCache {
    /// A cache of at most `budget_bytes`; zero turns it off.
    pub fn new(budget_bytes: u64) -> Option<Self> {
        (budget_bytes > 0).then(|| Self {
            answers: moka::sync::Cache::builder()
                .max_capacity(budget_bytes)
                .weigher(|_, answer: &Arc<KeptAnswer>| {
                    u32::try_from(answer.bytes).unwrap_or(u32::MAX)
                })
                .build(),
            max_answer_bytes: usize::try_from(budget_bytes / ANSWER_SHARE)
                .unwrap_or(usize::MAX)
                .min(u32::MAX as usize),
        })
    }

    /// The key of a query: its SQL, parameters (with their types) and limit.
    pub(crate) fn key(
        sql: &str,
        params: &[datafusion::common::ScalarValue],
        limit: Option<usize>,
    ) -> String {
        format!("{limit:?}\u{1f}{params:?}\u{1f}{sql}")
    }

    /// Passes `stream` through, keeping its batches; when it ends whole and
    /// small enough, its answer is kept under `key`.
    pub(crate) fn keep(
        &self,
        key: String,
        reads: Reads,
        stream: SendableRecordBatchStream,
    ) -> SendableRecordBatchStream {
        let schema = stream.schema();
        Box::pin(Keeping {
            pending: Some(KeptAnswer {
                reads,
                schema: schema.clone(),
                batches: Vec::new(),
                bytes: 0,
            }),
            schema,
            inner: stream,
            key,
            cache: self.clone(),
        })
    }

    fn insert(&self, key: String, answer: KeptAnswer) {
        self.answers.insert(key, Arc::new(answer));
        metrics::gauge!("basin_result_cache_bytes").set(self.answers.weighted_size() as f64);
    }
}

/// A stream whose batches are also kept for the cache.
struct Keeping {
    schema: SchemaRef,
    inner: SendableRecordBatchStream,
    /// `None` once the answer cannot be kept (too large, or it failed).
    pending: Option<KeptAnswer>,
    key: String,
    cache: ResultCache,
}

impl Stream for Keeping {
    type Item = Result<RecordBatch, DataFusionError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        let item = futures::ready!(this.inner.poll_next_unpin(cx));
        match &item {
            Some(Ok(batch)) => {
                if let Some(pending) = &mut this.pending {
                    pending.bytes += batch.get_array_memory_size();
                    if pending.bytes > this.cache.max_answer_bytes {
                        this.pending = None;
                    } else {
                        pending.batches.push(batch.clone());
                    }
                }
            }
            Some(Err(_)) => this.pending = None,
            None => {
                if let Some(answer) = this.pending.take() {
                    this.cache.insert(std::mem::take(&mut this.key), answer);
                }
            }
        }
        Poll::Ready(item)
    }
}

impl RecordBatchStream for Keeping {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }
}

/// Whether `plan`'s answer is fixed by the datasets and views in `reads`: it
/// reads nothing else, calls only functions fixed by their arguments and does
/// not explain itself.
pub(crate) fn answer_is_stable(plan: &LogicalPlan, reads: &Reads) -> bool {
    if reads.unstable {
        return false;
    }
    let mut stable = true;
    let walked = plan.apply_with_subqueries(|node| {
        let node_stable = match node {
            LogicalPlan::TableScan(scan) => reads_dataset_or_view(&scan.table_name, reads),
            LogicalPlan::Explain(_) | LogicalPlan::Analyze(_) | LogicalPlan::Extension(_) => false,
            _ => true,
        } && node
            .apply_expressions(|expr| {
                expr.apply(|e| {
                    Ok(if fixed_by_arguments(e) {
                        TreeNodeRecursion::Continue
                    } else {
                        stable = false;
                        TreeNodeRecursion::Stop
                    })
                })
            })
            .is_ok()
            && stable;
        if node_stable {
            Ok(TreeNodeRecursion::Continue)
        } else {
            stable = false;
            Ok(TreeNodeRecursion::Stop)
        }
    });
    walked.is_ok() && stable
}

fn reads_dataset_or_view(table: &TableReference, reads: &Reads) -> bool {
    let in_basin_public = match table {
        TableReference::Bare { .. } => true,
        TableReference::Partial { schema, .. } => schema.as_ref() == SCHEMA_NAME,
        TableReference::Full {
            catalog, schema, ..
        } => catalog.as_ref() == CATALOG_NAME && schema.as_ref() == SCHEMA_NAME,
    };
    let name = table.table();
    in_basin_public && (reads.datasets.contains_key(name) || reads.views.contains_key(name))
}

fn fixed_by_arguments(expr: &Expr) -> bool {
    let volatility = match expr {
        Expr::ScalarFunction(f) => f.func.signature().volatility,
        Expr::AggregateFunction(f) => f.func.signature().volatility,
        _ => return true,
    };
    volatility == Volatility::Immutable
}

impl Engine {
    /// The cache's answer to `key` when it still holds for `principal`.
    pub(crate) async fn kept_answer(
        &self,
        cache: &ResultCache,
        principal: &Principal,
        key: &str,
    ) -> Result<Option<SendableRecordBatchStream>> {
        let Some(answer) = cache.answers.get(key) else {
            metrics::counter!("basin_result_cache_misses_total").increment(1);
            return Ok(None);
        };
        let reads = &answer.reads;
        // As planning would: views are out of reach of dataset-limited keys,
        // and every dataset read must be readable by the caller.
        let may_read = (reads.views.is_empty() || principal.dataset_limit().is_none())
            && reads
                .datasets
                .keys()
                .all(|name| principal.can_see_dataset(name));
        if !may_read {
            metrics::counter!("basin_result_cache_misses_total").increment(1);
            return Ok(None);
        }
        if !self.reads_are_current(reads).await? {
            cache.answers.invalidate(key);
            metrics::counter!("basin_result_cache_misses_total").increment(1);
            return Ok(None);
        }
        metrics::counter!("basin_result_cache_hits_total").increment(1);
        let stream = MemoryStream::try_new(answer.batches.clone(), answer.schema.clone(), None)?;
        Ok(Some(Box::pin(stream)))
    }

    /// Whether every dataset in `reads` is at the version it was read at and
    /// every view has the SQL it was read with.
    async fn reads_are_current(&self, reads: &Reads) -> Result<bool> {
        for (name, (id, version)) in &reads.datasets {
            match self.catalog().dataset_by_name(name).await? {
                Some(record) if record.id == *id && record.version == *version => {}
                _ => return Ok(false),
            }
        }
        if !reads.views.is_empty() {
            let current: std::collections::HashMap<String, String> =
                self.catalog().views().await?.into_iter().collect();
            if reads
                .views
                .iter()
                .any(|(name, sql)| current.get(name) != Some(sql))
            {
                return Ok(false);
            }
        }
        Ok(true)
    }
}
