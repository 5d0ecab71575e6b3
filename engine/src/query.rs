//! Ad-hoc SQL over datasets: read-only, streamed, with a deadline.

use std::time::Duration;

use datafusion::error::DataFusionError;
use datafusion::execution::context::SQLOptions;
use datafusion::physical_plan::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::StreamExt;

use crate::{Engine, Error, Result};

/// A query as callers pose it.
#[derive(Debug, Clone)]
pub struct QueryRequest {
    /// One SQL statement (a query or `EXPLAIN`).
    pub sql: String,
    /// At most this many rows.
    pub limit: Option<usize>,
    /// Deadline for the whole query, results included; the engine default when absent.
    pub timeout: Option<Duration>,
}

impl Engine {
    /// Plans `request.sql` and returns its result as a stream of batches.
    ///
    /// Planning errors return here (with line and column); execution errors and
    /// the deadline arrive in the stream. Dropping the stream stops the query.
    pub async fn query(&self, request: QueryRequest) -> Result<SendableRecordBatchStream> {
        let timeout = request.timeout.unwrap_or(self.config().query_timeout);
        let ctx = self.sessions().context().await?;
        let started = std::time::Instant::now();
        let planned = self.executor().run_stream(move || async move {
            // Ad-hoc SQL may read anything but change nothing: writes go through
            // the dataset API, where they are validated and versioned.
            let options = SQLOptions::new()
                .with_allow_ddl(false)
                .with_allow_dml(false)
                .with_allow_statements(false);
            let mut frame = ctx.sql_with_options(&request.sql, options).await?;
            if let Some(limit) = request.limit {
                frame = frame.limit(0, Some(limit))?;
            }
            Ok(frame.execute_stream().await?)
        });
        let stream = match tokio::time::timeout(timeout, planned).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => {
                metrics::counter!("basin_queries_total", "outcome" => "error").increment(1);
                return Err(e);
            }
            Err(_) => return Err(Error::Timeout(timeout.as_millis() as u64)),
        };
        metrics::counter!("basin_queries_total", "outcome" => "ok").increment(1);
        Ok(with_deadline(
            stream,
            timeout.saturating_sub(started.elapsed()),
        ))
    }
}

/// Ends a stream with a timeout error once `remaining` has passed.
fn with_deadline(
    stream: SendableRecordBatchStream,
    remaining: Duration,
) -> SendableRecordBatchStream {
    let schema = stream.schema();
    let deadline = tokio::time::Instant::now() + remaining;
    let total_ms = remaining.as_millis() as u64;
    let bounded = futures::stream::unfold(Some(stream), move |state| async move {
        let mut stream = state?;
        tokio::select! {
            item = stream.next() => item.map(|item| (item, Some(stream))),
            () = tokio::time::sleep_until(deadline) => {
                let error = DataFusionError::External(Box::new(Error::Timeout(total_ms)));
                Some((Err(error), None))
            }
        }
    });
    Box::pin(RecordBatchStreamAdapter::new(schema, bounded))
}
