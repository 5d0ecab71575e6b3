use std::io;
use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Poll};

use async_compression::tokio::bufread::{GzipDecoder, ZstdDecoder};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWriteExt, BufReader, ReadBuf};

use crate::file::Compression;
use crate::{Error, Result};

/// What [`spool`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpoolStats {
    /// Bytes read from the source, as sent (compressed).
    pub input_bytes: u64,
    /// Bytes written to the destination (decompressed).
    pub output_bytes: u64,
    /// The compression found on the input.
    pub compression: Compression,
}

/// Copies `source` to `dest`, decompressing gzip or zstd found by magic bytes, in bounded memory.
///
/// `input_limit` caps the bytes read from the source and `output_limit` the
/// bytes written (a guard against decompression bombs). Over either limit the
/// partial file is removed and [`Error::TooLarge`] returned.
pub async fn spool<R>(
    source: R,
    dest: &Path,
    input_limit: Option<u64>,
    output_limit: Option<u64>,
) -> Result<SpoolStats>
where
    R: AsyncRead + Unpin + Send,
{
    let result = spool_inner(source, dest, input_limit, output_limit).await;
    if result.is_err() {
        // A partial spool is useless and may be large.
        let _ = tokio::fs::remove_file(dest).await;
    }
    result
}

async fn spool_inner<R>(
    source: R,
    dest: &Path,
    input_limit: Option<u64>,
    output_limit: Option<u64>,
) -> Result<SpoolStats>
where
    R: AsyncRead + Unpin + Send,
{
    let mut counted = BufReader::with_capacity(
        256 * 1024,
        CountingReader {
            inner: source,
            count: 0,
            limit: input_limit,
        },
    );
    let head = counted.fill_buf().await.map_err(map_limit)?;
    let compression = Compression::sniff(head);
    let file = tokio::fs::File::create(dest).await?;
    let mut out = tokio::io::BufWriter::with_capacity(1024 * 1024, file);
    let decoded: Pin<Box<dyn AsyncRead + Send + '_>> = match compression {
        Compression::None => Box::pin(&mut counted),
        Compression::Gzip => {
            let mut decoder = GzipDecoder::new(&mut counted);
            decoder.multiple_members(true);
            Box::pin(decoder)
        }
        Compression::Zstd => {
            let mut decoder = ZstdDecoder::new(&mut counted);
            decoder.multiple_members(true);
            Box::pin(decoder)
        }
    };
    let max_output = output_limit.unwrap_or(u64::MAX);
    let mut limited = tokio::io::AsyncReadExt::take(decoded, max_output.saturating_add(1));
    let output_bytes =
        tokio::io::copy(&mut limited, &mut out)
            .await
            .map_err(|e| match e.kind() {
                io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof
                    if compression != Compression::None =>
                {
                    Error::Malformed(format!("corrupt {compression:?} stream: {e}").to_lowercase())
                }
                _ => map_limit(e),
            })?;
    if output_bytes > max_output {
        return Err(Error::TooLarge { limit: max_output });
    }
    out.flush().await?;
    out.into_inner().sync_all().await?;
    drop(limited);
    Ok(SpoolStats {
        input_bytes: counted.get_ref().count,
        output_bytes,
        compression,
    })
}

#[derive(Debug)]
struct LimitExceeded(u64);

impl std::fmt::Display for LimitExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "input exceeds {} bytes", self.0)
    }
}

impl std::error::Error for LimitExceeded {}

fn map_limit(e: io::Error) -> Error {
    match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<LimitExceeded>())
    {
        Some(LimitExceeded(limit)) => Error::TooLarge { limit: *limit },
        None => Error::Io(e),
    }
}

struct CountingReader<R> {
    inner: R,
    count: u64,
    limit: Option<u64>,
}

impl<R: AsyncRead + Unpin> AsyncRead for CountingReader<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = &poll {
            self.count += (buf.filled().len() - before) as u64;
            if let Some(limit) = self.limit
                && self.count > limit
            {
                return Poll::Ready(Err(io::Error::other(LimitExceeded(limit))));
            }
        }
        poll
    }
}

#[cfg(test)]
mod tests {
    use async_compression::tokio::bufread::GzipEncoder;
    use tokio::io::AsyncReadExt;

    use super::*;

    async fn gzip(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        GzipEncoder::new(data).read_to_end(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn gzip_is_decompressed_transparently() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("out.csv");
        let stats = spool(gzip(b"a,b\n1,2\n").await.as_slice(), &dest, None, None)
            .await
            .unwrap();
        assert_eq!(stats.compression, Compression::Gzip);
        assert_eq!(std::fs::read(&dest).unwrap(), b"a,b\n1,2\n");
        assert_eq!(stats.output_bytes, 8);
    }

    #[tokio::test]
    async fn oversize_input_is_refused_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("out.csv");
        let data = vec![b'x'; 10_000];
        let err = spool(data.as_slice(), &dest, Some(100), None)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::TooLarge { limit: 100 }), "{err}");
        assert!(!dest.exists());
    }

    #[tokio::test]
    async fn decompression_bombs_are_capped() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("out.csv");
        let data = gzip(&vec![b'0'; 100_000]).await;
        let err = spool(data.as_slice(), &dest, None, Some(1000))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::TooLarge { limit: 1000 }), "{err}");
    }
}
