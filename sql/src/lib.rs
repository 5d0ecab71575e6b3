//! SQL names as Basin uses them, with no IO: the rules for names users
//! choose (datasets, users, pipelines, connections, checks), quoting of
//! identifiers and literals (the one place either is done), and the catalog
//! and schema every dataset is registered under; and [`scan`], which reads
//! SQL text as the parser's tokens.

pub mod scan;

/// The catalog every query's datasets live in.
pub const CATALOG_NAME: &str = "basin";
/// The schema every query's datasets live in.
pub const SCHEMA_NAME: &str = "public";

/// A name that breaks the identifier rules of [`validate_name`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid identifier {name:?}: use lowercase letters, digits and _, starting with a letter or _, at most 63 characters"
)]
pub struct InvalidName {
    /// The name as given.
    pub name: String,
}

/// The longest name Basin accepts.
pub const MAX_NAME_LEN: usize = 63;

/// [`validate_name`]'s rules as a regular expression, for API documents.
pub const NAME_PATTERN: &str = "^[a-z_][a-z0-9_]{0,62}$";

/// Checks a dataset name: a lowercase letter or `_`, then lowercase letters,
/// digits and `_`, at most [`MAX_NAME_LEN`] characters.
///
/// Lowercase only, because SQL folds unquoted identifiers to lowercase: a
/// dataset called `Orders` could otherwise only be queried as `"Orders"`.
pub fn validate_name(name: &str) -> Result<(), InvalidName> {
    let mut chars = name.chars();
    let valid_start = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_');
    let valid_rest = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if valid_start && valid_rest && name.len() <= MAX_NAME_LEN {
        Ok(())
    } else {
        Err(InvalidName {
            name: name.to_owned(),
        })
    }
}

/// `name` as a SQL identifier: double-quoted, inner quotes doubled, so any
/// name (mixed case, spaces, quotes) stays one identifier.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `text` as a SQL string literal: single-quoted, inner quotes doubled (the
/// dialect has no backslash escapes).
pub fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_keeps_names_and_text_whole() {
        assert_eq!(quote_ident(r#"a "b" c"#), r#""a ""b"" c""#);
        assert_eq!(quote_literal("O'Brien"), "'O''Brien'");
    }

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

    #[test]
    fn the_pattern_says_what_validation_does() {
        let pattern = regex::Regex::new(NAME_PATTERN).unwrap();
        let long = "a".repeat(63);
        let too_long = "a".repeat(64);
        for name in [
            "orders", "_staging", "a", "Orders", "1st", "a-b", "é", "", &long, &too_long,
        ] {
            assert_eq!(
                pattern.is_match(name),
                validate_name(name).is_ok(),
                "{name:?}"
            );
        }
    }
}
