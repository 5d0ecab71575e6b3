//! A dedicated runtime for CPU-bound work (planning, decoding, encoding).
//!
//! DataFusion runs on tokio, but a long scan on the runtime that serves HTTP
//! would stall unrelated requests. Queries and ingests run here instead and
//! hand their batches to the IO runtime through small bounded channels, which
//! also gives backpressure: a slow client slows the producer, it does not
//! buffer the result.

use std::future::Future;

use datafusion::physical_plan::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::StreamExt;
use tokio::runtime::Runtime;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::{Error, Result};

/// Batches in flight between the CPU runtime and a consumer.
const CHANNEL_DEPTH: usize = 2;

/// Owns the CPU runtime; dropping it stops the runtime's threads.
#[derive(Debug)]
pub struct Executor {
    runtime: Option<Runtime>,
}

impl Executor {
    /// Starts a runtime with `threads` workers (at least one).
    pub fn new(threads: usize) -> Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads.max(1))
            .thread_name("basin-cpu")
            .enable_all()
            .build()
            .map_err(|e| Error::internal("cpu runtime", e))?;
        Ok(Self {
            runtime: Some(runtime),
        })
    }

    /// The CPU runtime's handle, for work that outlives its caller (loading an accelerated dataset).
    pub(crate) fn handle(&self) -> &tokio::runtime::Handle {
        self.runtime
            .as_ref()
            .expect("runtime lives until drop")
            .handle()
    }

    /// Runs `future` on the CPU runtime and awaits it from the caller's runtime.
    ///
    /// Dropping the returned future aborts the work: a canceled job or a gone
    /// client must not leave a write running (and committing) behind it.
    pub async fn run<F, T>(&self, future: F) -> Result<T>
    where
        F: Future<Output = Result<T>> + Send + 'static,
        T: Send + 'static,
    {
        let mut task = AbortOnDrop(self.handle().spawn(future));
        match (&mut task.0).await {
            Ok(result) => result,
            Err(e) if e.is_cancelled() => Err(Error::Canceled),
            Err(e) => Err(Error::internal("cpu task", e)),
        }
    }

    /// Builds a stream on the CPU runtime and drives it there; the returned
    /// stream yields its batches on the caller's runtime. Dropping the returned
    /// stream stops the work.
    pub async fn run_stream<F, Fut>(&self, make: F) -> Result<SendableRecordBatchStream>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<SendableRecordBatchStream>> + Send + 'static,
    {
        let (schema_tx, schema_rx) = tokio::sync::oneshot::channel();
        let (tx, rx) = mpsc::channel(CHANNEL_DEPTH);
        self.handle().spawn(async move {
            let mut schema_tx = schema_tx;
            let made = tokio::select! {
                made = make() => made,
                () = schema_tx.closed() => return,
            };
            let mut stream = match made {
                Ok(stream) => stream,
                Err(e) => {
                    let _ = schema_tx.send(Err(e));
                    return;
                }
            };
            if schema_tx.send(Ok(stream.schema())).is_err() {
                return;
            }
            // When the consumer goes away the stream is dropped, which stops the
            // plan, even in the middle of computing a batch.
            loop {
                let item = tokio::select! {
                    item = stream.next() => item,
                    () = tx.closed() => return,
                };
                let Some(item) = item else { return };
                if tx.send(item).await.is_err() {
                    return;
                }
            }
        });
        let schema = schema_rx.await.map_err(|_| Error::Canceled)??;
        let batches = ReceiverStream::new(rx);
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, batches)))
    }
}

/// Aborts a spawned task when dropped.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Drop for Executor {
    fn drop(&mut self) {
        // A runtime may not be dropped from async context; shutting down in the
        // background is safe anywhere.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}
