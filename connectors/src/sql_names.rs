//! Stream names as databases spell them: `schema.table`, quoted per dialect.

/// A stream's table name with the schema (or database) it lives in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QualifiedName {
    /// Schema or database, when given.
    pub namespace: Option<String>,
    /// Table name.
    pub table: String,
}

impl QualifiedName {
    /// The name quoted with `quote` (`"` for PostgreSQL and SQLite, `` ` `` for MySQL).
    pub fn quoted(&self, quote: char) -> String {
        let q = |part: &str| {
            let doubled = part.replace(quote, &format!("{quote}{quote}"));
            format!("{quote}{doubled}{quote}")
        };
        match &self.namespace {
            Some(namespace) => format!("{}.{}", q(namespace), q(&self.table)),
            None => q(&self.table),
        }
    }
}

/// `text` as a lowercase SQL identifier: letters and digits kept (lowercased),
/// anything else `_`.
pub fn identifier_from(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect()
}

/// Splits `schema.table` (or `table`); a part may be double-quoted to hold a dot.
pub fn split_stream(stream: &str) -> Result<QualifiedName, String> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    let mut chars = stream.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                current.push('"');
                chars.next();
            }
            '"' => quoted = !quoted,
            '.' if !quoted => parts.push(std::mem::take(&mut current)),
            c => current.push(c),
        }
    }
    if quoted {
        return Err(format!("unbalanced quote in stream name {stream:?}"));
    }
    parts.push(current);
    if parts.iter().any(String::is_empty) || parts.len() > 2 {
        return Err(format!(
            "stream name {stream:?} is not `table` or `schema.table`"
        ));
    }
    let table = parts.pop().unwrap_or_default();
    Ok(QualifiedName {
        namespace: parts.pop(),
        table,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_split_and_quote() {
        let name = split_stream("public.orders").unwrap();
        assert_eq!(name.namespace.as_deref(), Some("public"));
        assert_eq!(name.quoted('"'), "\"public\".\"orders\"");
        let dotted = split_stream("\"a.b\".c").unwrap();
        assert_eq!(dotted.namespace.as_deref(), Some("a.b"));
        assert_eq!(split_stream("t").unwrap().quoted('`'), "`t`");
        assert!(split_stream("a.b.c").is_err());
        assert!(split_stream("a.").is_err());
        assert_eq!(split_stream("x").unwrap().quoted('"'), "\"x\"",);
        let evil = QualifiedName {
            namespace: None,
            table: "a\"b".into(),
        };
        assert_eq!(evil.quoted('"'), "\"a\"\"b\"");
    }
}
