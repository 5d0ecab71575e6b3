//! Credentials as a transport found them: an `Authorization` header (HTTP or
//! gRPC metadata) or a session cookie.

use std::fmt;

use crate::{Error, Result};

/// The base64 of Basic credentials: the standard alphabet, padded or not.
/// RFC 7617 asks for padding, but common clients (the Go-based ADBC Flight
/// SQL driver among them) leave it out; both spellings name the same bytes.
const BASIC_BASE64: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new()
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
);

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
            let decoded = BASIC_BASE64
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
        // Anything but the standard alphabet is refused, with the same message.
        for malformed in ["Basic YW5u_nBh", "Basic YW5uOnBh=", "Basic YW5uOnBh==="] {
            let err = Credentials::from_authorization(malformed).unwrap_err();
            assert_eq!(
                err.to_string(),
                "malformed Basic credentials",
                "{malformed}"
            );
        }
    }

    #[test]
    fn basic_credentials_decode_padded_and_unpadded() {
        use base64::Engine as _;
        use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
        // One password for each remainder of len("user:password") mod 3, and one
        // outside ASCII.
        for password in ["pw-1", "pw-12", "pw-123", "pässwörd-€"] {
            let pair = format!("ann:{password}");
            for encoded in [STANDARD.encode(&pair), STANDARD_NO_PAD.encode(&pair)] {
                assert_eq!(
                    Credentials::from_authorization(&format!("Basic {encoded}")).unwrap(),
                    Credentials::Basic {
                        username: "ann".into(),
                        password: password.into()
                    },
                    "{encoded}"
                );
            }
        }
        assert!(Credentials::from_header(Some(b"Bearer")).is_err());
        assert_eq!(Credentials::from_header(None).unwrap(), None);
    }

    #[test]
    fn debug_output_hides_secrets() {
        let c = Credentials::Bearer("secret-value".into());
        assert!(!format!("{c:?}").contains("secret-value"));
    }
}
