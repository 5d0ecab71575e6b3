//! Uploads whose end the server can trust.
//!
//! On HTTP/2, hyper reports a client's `RST_STREAM(CANCEL)` as the end of
//! the request body, not as an error, so a `DoPut` the client abandons
//! midway looks like a finished one and its rows would be committed. hyper
//! does look for a reset each time the request's handler is pending, and drops
//! the handler when it finds one. So the request's own task reads the upload
//! and, after the last message, yields once before it confirms the end: an
//! abandoned upload is dropped at that point, and the stream the engine
//! writes from fails instead of ending.

use std::future::Future;

use arrow::array::RecordBatch;
use datafusion::error::DataFusionError;
use futures::{Stream, StreamExt};
use tokio::sync::mpsc;

/// One message from the pump: a batch (or the upload's error), or `None`
/// once the client is known to have finished.
type Delivery = Option<Result<RecordBatch, DataFusionError>>;

/// Splits `upload` into a pump, to be awaited by the request's handler, and
/// the stream the engine consumes. The stream ends only when the pump saw
/// the client finish; if the pump is dropped first it yields an error.
pub(crate) fn confirmed_end<S>(
    upload: S,
) -> (
    impl Future<Output = ()> + Send,
    impl Stream<Item = Result<RecordBatch, DataFusionError>> + Send,
)
where
    S: Stream<Item = Result<RecordBatch, DataFusionError>> + Send,
{
    // One batch in flight keeps the upload's memory bounded by the writer's pace.
    let (sender, receiver) = mpsc::channel::<Delivery>(1);
    let pump = async move {
        let mut upload = std::pin::pin!(upload);
        while let Some(item) = upload.next().await {
            let failed = item.is_err();
            // A closed channel means the write already failed or finished.
            if sender.send(Some(item)).await.is_err() || failed {
                return;
            }
        }
        // hyper checks for a reset only while the handler is pending.
        tokio::task::yield_now().await;
        let _ = sender.send(None).await;
    };
    let stream = futures::stream::unfold(Some(receiver), |receiver| async move {
        let mut receiver = receiver?;
        match receiver.recv().await {
            Some(Some(item)) => Some((item, Some(receiver))),
            Some(None) => None,
            None => Some((
                Err(DataFusionError::External(
                    "invalid_input: the client abandoned the upload before its end".into(),
                )),
                None,
            )),
        }
    });
    (pump, stream)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Int64Array;
    use futures::TryStreamExt;
    use std::sync::Arc;

    fn batch(value: i64) -> Result<RecordBatch, DataFusionError> {
        Ok(RecordBatch::try_from_iter([(
            "n",
            Arc::new(Int64Array::from(vec![value])) as _,
        )])?)
    }

    #[tokio::test]
    async fn a_finished_upload_ends_the_stream() {
        let (pump, stream) = confirmed_end(futures::stream::iter([batch(1), batch(2)]));
        let (_, batches) = tokio::join!(pump, stream.try_collect::<Vec<_>>());
        assert_eq!(batches.unwrap().len(), 2);
    }

    #[tokio::test]
    async fn a_dropped_pump_fails_the_stream() {
        let (pump, stream) = confirmed_end(futures::stream::iter([batch(1)]));
        let reader = tokio::spawn(stream.try_collect::<Vec<_>>());
        // The pump delivers the batch and stops at its yield, where it is dropped.
        let mut pump = Box::pin(pump);
        assert!(futures::poll!(pump.as_mut()).is_pending());
        drop(pump);
        let err = reader.await.unwrap().unwrap_err();
        assert!(err.to_string().contains("abandoned"), "{err}");
    }
}
