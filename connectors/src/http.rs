//! Files behind HTTP(S) URLs, downloaded to local disk under an allowlist.
//!
//! A server that fetches URLs for its callers can be pointed at internal
//! services, so only URLs under an allowed prefix are fetched, and redirects
//! are followed only while they stay under one.

use std::path::Path;
use std::time::Duration;

use futures::TryStreamExt;
use url::Url;

use crate::file::{SpoolStats, spool};
use crate::{Error, Result};

/// URL prefixes a download may fetch from.
#[derive(Debug, Clone, Default)]
pub struct UrlAllowlist {
    prefixes: Vec<Url>,
}

impl UrlAllowlist {
    /// An allowlist of `prefixes` (`https://data.example.com/exports/`); empty allows nothing.
    pub fn new(prefixes: &[String]) -> Result<Self> {
        let prefixes = prefixes
            .iter()
            .map(|p| {
                let url = Url::parse(p).map_err(|e| Error::InvalidOption {
                    option: "allowed URL prefix".into(),
                    message: format!("{p:?}: {e}"),
                })?;
                if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
                    return Err(Error::InvalidOption {
                        option: "allowed URL prefix".into(),
                        message: format!("{p:?} is not an http(s) URL with a host"),
                    });
                }
                Ok(url)
            })
            .collect::<Result<_>>()?;
        Ok(Self { prefixes })
    }

    /// Whether `url` lies under an allowed prefix: same scheme, host and port,
    /// and a path that starts with the prefix's.
    pub fn allows(&self, url: &Url) -> bool {
        self.prefixes.iter().any(|prefix| {
            prefix.scheme() == url.scheme()
                && prefix.host() == url.host()
                && prefix.port_or_known_default() == url.port_or_known_default()
                && url.path().starts_with(prefix.path())
        })
    }
}

/// Why a download failed, for callers that map it to their own errors.
#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    /// The URL is not under an allowed prefix (or redirected outside one).
    #[error("URL {0} is not under an allowed prefix")]
    NotAllowed(String),
    /// The server answered 404 or 410.
    #[error("{0} was not found (HTTP {1})")]
    NotFound(String, u16),
    /// The server could not be reached or answered with another error.
    #[error("{0}")]
    Unavailable(String),
    /// Spooling failed (size limit, decompression, disk).
    #[error(transparent)]
    Spool(#[from] Error),
}

/// Downloads `url` to `dest` (decompressing gzip/zstd on the way), refusing
/// URLs outside `allowlist` and bodies beyond `output_limit` decompressed bytes.
pub async fn download(
    url: &Url,
    dest: &Path,
    allowlist: &UrlAllowlist,
    output_limit: Option<u64>,
    timeout: Duration,
) -> Result<SpoolStats, DownloadError> {
    if !allowlist.allows(url) {
        return Err(DownloadError::NotAllowed(url.to_string()));
    }
    let redirects = allowlist.clone();
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() >= 5 {
                attempt.error("too many redirects")
            } else if redirects.allows(attempt.url()) {
                attempt.follow()
            } else {
                attempt.stop()
            }
        }))
        .connect_timeout(timeout.min(Duration::from_secs(30)))
        .read_timeout(timeout)
        .build()
        .map_err(|e| DownloadError::Unavailable(format!("HTTP client: {e}")))?;
    let response = client.get(url.clone()).send().await.map_err(|e| {
        DownloadError::Unavailable(format!("cannot fetch {url}: {}", root_cause(&e)))
    })?;
    let status = response.status();
    if status.is_redirection() {
        // The redirect policy stopped: the target is outside the allowlist.
        let target = response
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|l| l.to_str().ok())
            .unwrap_or("elsewhere")
            .to_owned();
        return Err(DownloadError::NotAllowed(target));
    }
    if status == reqwest::StatusCode::NOT_FOUND || status == reqwest::StatusCode::GONE {
        return Err(DownloadError::NotFound(url.to_string(), status.as_u16()));
    }
    if !status.is_success() {
        return Err(DownloadError::Unavailable(format!(
            "{url} answered HTTP {}",
            status.as_u16()
        )));
    }
    let body = response
        .bytes_stream()
        .map_err(|e| std::io::Error::other(root_cause(&e)));
    let reader = tokio_util::io::StreamReader::new(body);
    Ok(spool(reader, dest, None, output_limit).await?)
}

/// reqwest's top-level message hides the cause ("error sending request").
fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = error;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowlist_matches_scheme_host_port_and_path() {
        let list = UrlAllowlist::new(&["http://127.0.0.1:9000/exports/".into()]).unwrap();
        let ok = Url::parse("http://127.0.0.1:9000/exports/a.csv").unwrap();
        assert!(list.allows(&ok));
        for bad in [
            "http://127.0.0.1:9001/exports/a.csv",
            "https://127.0.0.1:9000/exports/a.csv",
            "http://127.0.0.1:9000/other/a.csv",
            "http://127.0.0.1.evil:9000/exports/a.csv",
        ] {
            assert!(!list.allows(&Url::parse(bad).unwrap()), "{bad}");
        }
        assert!(!UrlAllowlist::default().allows(&ok));
        assert!(UrlAllowlist::new(&["ftp://x/".into()]).is_err());
    }
}
