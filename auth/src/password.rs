//! Passwords: the policy, and argon2id hashing (CPU-heavy by design, so the
//! engine runs it on its CPU runtime, never on the IO runtime).

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

use crate::{Error, Result};

/// Shortest password accepted.
pub const MIN_LEN: usize = 12;
/// Longest password accepted (bounds the hashing work one request can cause).
pub const MAX_LEN: usize = 256;

/// Checks a new password against the policy: 12 to 256 characters, not
/// containing the username, not one repeated character.
///
/// Length rather than composition rules, as NIST SP 800-63B advises: rules
/// about digits and symbols make passwords harder to remember, not to guess.
pub fn check_policy(username: &str, password: &str) -> Result<()> {
    let length = password.chars().count();
    if length < MIN_LEN {
        return Err(Error::WeakPassword(format!(
            "the password must be at least {MIN_LEN} characters"
        )));
    }
    if length > MAX_LEN {
        return Err(Error::WeakPassword(format!(
            "the password must be at most {MAX_LEN} characters"
        )));
    }
    if !username.is_empty() && password.to_lowercase().contains(&username.to_lowercase()) {
        return Err(Error::WeakPassword(
            "the password must not contain the username".into(),
        ));
    }
    let mut chars = password.chars();
    let first = chars.next();
    if chars.all(|c| Some(c) == first) {
        return Err(Error::WeakPassword(
            "the password must not be one repeated character".into(),
        ));
    }
    Ok(())
}

/// argon2id with OWASP's minimum parameters (19 MiB, 2 passes, 1 lane).
fn argon2() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).expect("valid argon2 parameters");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// The PHC string (`$argon2id$v=19$…`) of `password` with a fresh salt.
pub fn hash(password: &str) -> Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    argon2()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| Error::Internal(format!("password hash: {e}")))
}

/// Whether `password` matches the PHC string `hash`.
pub fn verify(password: &str, hash: &str) -> bool {
    if password.len() > MAX_LEN * 4 {
        return false;
    }
    PasswordHash::new(hash)
        .map(|parsed| {
            argon2()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

/// A hash to verify against when the user does not exist, so that the
/// response time does not tell whether a username is taken.
pub fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash("decoy-password-never-matches").unwrap_or_default())
}

/// A random password for the first admin when none was configured.
pub fn generate() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::rng();
    (0..24)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_refuses_short_long_and_obvious_passwords() {
        assert!(check_policy("ann", "correct horse battery").is_ok());
        assert!(check_policy("ann", "short").is_err());
        assert!(check_policy("ann", &"x".repeat(300)).is_err());
        assert!(check_policy("ann", "aaaaaaaaaaaaaaaa").is_err());
        assert!(check_policy("annabelle", "my-Annabelle-pw-1").is_err());
    }

    #[test]
    fn hashes_verify_and_differ_by_salt() {
        let a = hash("correct horse battery").unwrap();
        let b = hash("correct horse battery").unwrap();
        assert!(a.starts_with("$argon2id$"));
        assert_ne!(a, b);
        assert!(verify("correct horse battery", &a));
        assert!(!verify("wrong horse battery", &a));
        assert!(!verify("anything", "not a phc string"));
        assert_eq!(generate().len(), 24);
    }
}
