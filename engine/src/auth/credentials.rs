//! Credentials as a transport found them: an `Authorization` header (HTTP or
//! gRPC metadata) or a session cookie.

use std::fmt;

use crate::{Error, Result};

/// Credentials as a transport found them.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    /// `Authorization: Bearer <token>`.
    Bearer(String),
    /// `Authorization: Basic <base64(user:password)>`.
    Basic {
        /// The user name.
        username: String,
        /// The password.
        password: String,
    },
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Secrets never reach logs, even through a stray `{:?}`.
        match self {
            Self::Bearer(_) => f.write_str("Bearer(<redacted>)"),
            Self::Basic { username, .. } => write!(f, "Basic({username}, <redacted>)"),
        }
    }
}

impl Credentials {
    /// The credentials of an `Authorization` header (HTTP or gRPC metadata), if one was sent.
    pub fn from_header(value: Option<&[u8]>) -> Result<Option<Self>> {
        let Some(value) = value else {
            return Ok(None);
        };
        let value = std::str::from_utf8(value)
            .map_err(|_| Error::Unauthenticated("malformed authorization header".into()))?;
        Self::from_authorization(value).map(Some)
    }

    /// Parses an `Authorization` header value (`Bearer …` or `Basic …`).
    pub fn from_authorization(header: &str) -> Result<Self> {
        let (scheme, value) = header
            .trim()
            .split_once(' ')
            .ok_or_else(|| Error::Unauthenticated("malformed authorization header".into()))?;
        let value = value.trim();
        if scheme.eq_ignore_ascii_case("bearer") {
            return Ok(Self::Bearer(value.to_owned()));
        }
        if scheme.eq_ignore_ascii_case("basic") {
            use base64::Engine as _;
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(value)
                .ok()
                .and_then(|bytes| String::from_utf8(bytes).ok())
                .ok_or_else(|| Error::Unauthenticated("malformed Basic credentials".into()))?;
            let (username, password) = decoded
                .split_once(':')
                .ok_or_else(|| Error::Unauthenticated("malformed Basic credentials".into()))?;
            return Ok(Self::Basic {
                username: username.to_owned(),
                password: password.to_owned(),
            });
        }
        Err(Error::Unauthenticated(format!(
            "unsupported authorization scheme `{scheme}` (use Bearer or Basic)"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_and_basic_parse() {
        assert_eq!(
            Credentials::from_authorization("Bearer abc").unwrap(),
            Credentials::Bearer("abc".into())
        );
        // base64("ann:pa:ss")
        assert_eq!(
            Credentials::from_authorization("basic YW5uOnBhOnNz").unwrap(),
            Credentials::Basic {
                username: "ann".into(),
                password: "pa:ss".into()
            }
        );
        assert!(Credentials::from_authorization("Digest x").is_err());
        assert!(Credentials::from_authorization("Basic !!!").is_err());
        assert!(Credentials::from_header(Some(b"Bearer")).is_err());
        assert_eq!(Credentials::from_header(None).unwrap(), None);
    }

    #[test]
    fn debug_output_hides_secrets() {
        let c = Credentials::Bearer("secret-value".into());
        assert!(!format!("{c:?}").contains("secret-value"));
    }
}
