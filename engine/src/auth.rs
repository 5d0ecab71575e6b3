//! Who is calling: one check every door (HTTP, WebSocket, Flight) goes through.
//!
//! Until users, sessions and API keys exist, Basin has one secret: the access
//! token from configuration (or generated into the data directory on first
//! start). It is accepted as a bearer token, and as the password of HTTP Basic
//! credentials for the user [`TOKEN_USER`] (what Flight's handshake sends).

use std::fmt;

use subtle::ConstantTimeEq;

use crate::{Error, Result};

/// The user name Basic credentials carry the access token under.
pub const TOKEN_USER: &str = "basin";

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

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// Who it is.
    pub name: String,
}

/// Checks credentials against the access token.
#[derive(Clone)]
pub struct Authenticator {
    token: String,
}

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authenticator").finish_non_exhaustive()
    }
}

/// Shortest access token accepted: shorter ones are guessable.
pub const MIN_TOKEN_LEN: usize = 16;

impl Authenticator {
    /// An authenticator for `token`.
    pub fn new(token: impl Into<String>) -> Result<Self> {
        let token = token.into();
        if token.len() < MIN_TOKEN_LEN {
            return Err(Error::InvalidInput(format!(
                "the access token must be at least {MIN_TOKEN_LEN} characters"
            )));
        }
        Ok(Self { token })
    }

    /// A fresh random token (`bsn_` and 64 hex digits).
    pub fn generate_token() -> String {
        let a = uuid::Uuid::new_v4().simple().to_string();
        let b = uuid::Uuid::new_v4().simple().to_string();
        format!("bsn_{a}{b}")
    }

    /// The caller behind `credentials`, or `Unauthenticated`.
    pub fn authenticate(&self, credentials: Option<&Credentials>) -> Result<Principal> {
        let secret = match credentials {
            None => return Err(Error::Unauthenticated("credentials required".into())),
            Some(Credentials::Bearer(token)) => token,
            Some(Credentials::Basic { username, password }) if username == TOKEN_USER => password,
            Some(Credentials::Basic { .. }) => {
                return Err(Error::Unauthenticated("invalid credentials".into()));
            }
        };
        if bool::from(secret.as_bytes().ct_eq(self.token.as_bytes())) {
            Ok(Principal {
                name: TOKEN_USER.to_owned(),
            })
        } else {
            Err(Error::Unauthenticated("invalid credentials".into()))
        }
    }

    /// The bearer token a successful Basic login hands out.
    pub fn bearer_for(&self, _principal: &Principal) -> String {
        self.token.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth() -> Authenticator {
        Authenticator::new("0123456789abcdef-token").unwrap()
    }

    #[test]
    fn bearer_and_basic_with_the_token_pass() {
        let ok = Credentials::from_authorization("Bearer 0123456789abcdef-token").unwrap();
        assert!(auth().authenticate(Some(&ok)).is_ok());
        // base64("basin:0123456789abcdef-token")
        let basic =
            Credentials::from_authorization("Basic YmFzaW46MDEyMzQ1Njc4OWFiY2RlZi10b2tlbg==")
                .unwrap();
        assert!(auth().authenticate(Some(&basic)).is_ok());
    }

    #[test]
    fn missing_wrong_or_malformed_credentials_fail() {
        assert!(matches!(
            auth().authenticate(None),
            Err(Error::Unauthenticated(_))
        ));
        let wrong = Credentials::Bearer("nope".into());
        assert!(auth().authenticate(Some(&wrong)).is_err());
        let other_user = Credentials::Basic {
            username: "root".into(),
            password: "0123456789abcdef-token".into(),
        };
        assert!(auth().authenticate(Some(&other_user)).is_err());
        assert!(Credentials::from_authorization("Digest x").is_err());
        assert!(Credentials::from_authorization("Basic !!!").is_err());
        assert!(Authenticator::new("short").is_err());
    }

    #[test]
    fn debug_output_hides_secrets() {
        let c = Credentials::Bearer("secret-value".into());
        assert!(!format!("{c:?}").contains("secret-value"));
    }
}
