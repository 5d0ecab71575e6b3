//! Identifier rules for names users choose (datasets, later pipelines and connections).

use crate::{Error, Result};

/// The longest name Basin accepts.
pub const MAX_NAME_LEN: usize = 63;

/// Checks a dataset name: a lowercase letter or `_`, then lowercase letters,
/// digits and `_`, at most [`MAX_NAME_LEN`] characters.
///
/// Lowercase only, because SQL folds unquoted identifiers to lowercase: a
/// dataset called `Orders` could otherwise only be queried as `"Orders"`.
pub fn validate_name(name: &str) -> Result<()> {
    let mut chars = name.chars();
    let valid_start = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_');
    let valid_rest = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if valid_start && valid_rest && name.len() <= MAX_NAME_LEN {
        Ok(())
    } else {
        Err(Error::InvalidIdentifier {
            name: name.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_names_pass() {
        for name in ["orders", "_staging", "orders_2024", "a"] {
            validate_name(name).unwrap();
        }
    }

    #[test]
    fn bad_names_are_refused() {
        let long = "a".repeat(64);
        for name in [
            "",
            "Orders",
            "1st",
            "../etc",
            "a b",
            "a\"b",
            "a-b",
            "a.b",
            "é",
            long.as_str(),
        ] {
            assert!(validate_name(name).is_err(), "{name:?} passed");
        }
    }
}
