//! SQL text as tokens with byte ranges, read by the same tokenizer DataFusion
//! parses with (sqlparser's, generic dialect): where statements end, which
//! bytes are inside quotes, what the comments say. Reading the text the way
//! the parser will means a `;` or a `{{ placeholder }}` is never taken for
//! code when the parser sees it inside a string or a comment, nor the other
//! way round.

use sqlparser::dialect::GenericDialect;
use sqlparser::tokenizer::{Location, Token, TokenWithSpan, Tokenizer, Whitespace};

/// One token of SQL text and the bytes it covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlToken {
    /// What it is.
    pub kind: TokenKind,
    /// Byte offset of its first character.
    pub start: usize,
    /// Byte offset just past it.
    pub end: usize,
}

/// What a token is, as far as reading SQL text needs to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenKind {
    /// Spaces and tabs.
    Space,
    /// One line break.
    Newline,
    /// A `--` (or `#`) comment up to, not including, its line break.
    LineComment {
        /// `--` or `#`.
        prefix: String,
        /// The text after the prefix.
        text: String,
    },
    /// A `/* … */` comment (nested ones included), or an unterminated one
    /// running to the end.
    BlockComment,
    /// A string literal of any form (`'…'`, `E'…'`, `$$…$$`, …), or an
    /// unterminated quote running to the end.
    String,
    /// A keyword or identifier; `quote` is the quote of a quoted identifier.
    Word {
        /// The identifier, quotes removed.
        value: String,
        /// `"` or `` ` `` for quoted identifiers.
        quote: Option<char>,
    },
    /// `;`.
    Semicolon,
    /// Anything else: operators, numbers, punctuation, placeholders.
    Other,
}

impl SqlToken {
    /// Whether this is whitespace or a comment.
    pub fn is_trivia(&self) -> bool {
        matches!(
            self.kind,
            TokenKind::Space
                | TokenKind::Newline
                | TokenKind::LineComment { .. }
                | TokenKind::BlockComment
        )
    }

    /// Whether its bytes are quoted: a string literal or a quoted identifier.
    pub fn is_quoted(&self) -> bool {
        matches!(
            self.kind,
            TokenKind::String | TokenKind::Word { quote: Some(_), .. }
        )
    }
}

/// The tokens of `sql`, covering every byte in order. Text the tokenizer
/// refuses (an unterminated quote or comment) becomes one last token running
/// to the end: a string when it starts with a quote, a comment when it starts
/// a comment.
pub fn tokens(sql: &str) -> Vec<SqlToken> {
    let mut raw: Vec<TokenWithSpan> = Vec::new();
    let finished = Tokenizer::new(&GenericDialect {}, sql)
        .tokenize_with_location_into_buf(&mut raw)
        .is_ok();
    let mut offsets = Offsets::new(sql);
    let mut out = Vec::with_capacity(raw.len() + 1);
    for token in raw {
        let start = offsets.at(token.span.start);
        let end = offsets.at(token.span.end);
        if end <= start {
            continue;
        }
        push(&mut out, sql, kind_of(token.token), start, end);
    }
    let covered = out.last().map_or(0, |t: &SqlToken| t.end);
    if !finished && covered < sql.len() {
        let rest = sql[covered..].trim_start();
        let start = sql.len() - rest.len();
        if start > covered {
            out.push(SqlToken {
                kind: TokenKind::Space,
                start: covered,
                end: start,
            });
        }
        if rest.is_empty() {
            return out;
        }
        let kind = if rest.starts_with("/*") {
            TokenKind::BlockComment
        } else if rest.starts_with(['\'', '"', '`', '$']) || rest.chars().nth(1) == Some('\'') {
            // A quote, or a prefixed literal such as E'…' or X'…'.
            TokenKind::String
        } else {
            TokenKind::Other
        };
        out.push(SqlToken {
            kind,
            start,
            end: sql.len(),
        });
    }
    out
}

/// Adds a token, splitting a line comment from the line break the tokenizer
/// keeps in it.
fn push(out: &mut Vec<SqlToken>, sql: &str, kind: TokenKind, start: usize, end: usize) {
    if let TokenKind::LineComment { prefix, text } = &kind
        && sql[start..end].ends_with('\n')
    {
        let prefix = prefix.clone();
        let text = text.strip_suffix('\n').unwrap_or(text).to_owned();
        out.push(SqlToken {
            kind: TokenKind::LineComment { prefix, text },
            start,
            end: end - 1,
        });
        out.push(SqlToken {
            kind: TokenKind::Newline,
            start: end - 1,
            end,
        });
        return;
    }
    out.push(SqlToken { kind, start, end });
}

fn kind_of(token: Token) -> TokenKind {
    match token {
        Token::Whitespace(Whitespace::Space | Whitespace::Tab) => TokenKind::Space,
        Token::Whitespace(Whitespace::Newline) => TokenKind::Newline,
        Token::Whitespace(Whitespace::SingleLineComment { comment, prefix }) => {
            TokenKind::LineComment {
                prefix,
                text: comment,
            }
        }
        Token::Whitespace(Whitespace::MultiLineComment(_)) => TokenKind::BlockComment,
        Token::SemiColon => TokenKind::Semicolon,
        Token::Word(word) => TokenKind::Word {
            value: word.value,
            quote: word.quote_style,
        },
        Token::SingleQuotedString(_)
        | Token::DoubleQuotedString(_)
        | Token::TripleSingleQuotedString(_)
        | Token::TripleDoubleQuotedString(_)
        | Token::DollarQuotedString(_)
        | Token::SingleQuotedByteStringLiteral(_)
        | Token::DoubleQuotedByteStringLiteral(_)
        | Token::TripleSingleQuotedByteStringLiteral(_)
        | Token::TripleDoubleQuotedByteStringLiteral(_)
        | Token::SingleQuotedRawStringLiteral(_)
        | Token::DoubleQuotedRawStringLiteral(_)
        | Token::TripleSingleQuotedRawStringLiteral(_)
        | Token::TripleDoubleQuotedRawStringLiteral(_)
        | Token::NationalStringLiteral(_)
        | Token::EscapedStringLiteral(_)
        | Token::UnicodeStringLiteral(_)
        | Token::HexStringLiteral(_) => TokenKind::String,
        _ => TokenKind::Other,
    }
}

/// Byte offsets of tokenizer locations (1-based lines, columns in
/// characters), read forward: tokens come in order.
struct Offsets<'a> {
    text: &'a str,
    line: u64,
    column: u64,
    byte: usize,
}

impl<'a> Offsets<'a> {
    fn new(text: &'a str) -> Self {
        Self {
            text,
            line: 1,
            column: 1,
            byte: 0,
        }
    }

    fn at(&mut self, location: Location) -> usize {
        let target = (location.line, location.column);
        while (self.line, self.column) < target {
            let Some(c) = self.text[self.byte..].chars().next() else {
                break;
            };
            self.byte += c.len_utf8();
            if c == '\n' {
                self.line += 1;
                self.column = 1;
            } else {
                self.column += 1;
            }
        }
        self.byte
    }
}

/// Whether byte `at` of the text `tokens` were read from is inside a string
/// literal or a quoted identifier (a comment is not quotes).
pub fn inside_quotes(tokens: &[SqlToken], at: usize) -> bool {
    tokens
        .iter()
        .any(|t| t.is_quoted() && t.start < at && at < t.end)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Byte offsets of the `;` that end statements.
    fn statement_ends(sql: &str) -> Vec<usize> {
        tokens(sql)
            .into_iter()
            .filter(|t| t.kind == TokenKind::Semicolon)
            .map(|t| t.start)
            .collect()
    }

    fn quoted_at(sql: &str, at: usize) -> bool {
        inside_quotes(&tokens(sql), at)
    }

    #[test]
    fn tokens_cover_every_byte_in_order() {
        let sql = "SELECT 'a;b' AS \"x;y\", 2 -- c;\n/* d; */ FROM t; é";
        let tokens = tokens(sql);
        let mut at = 0;
        for token in &tokens {
            assert_eq!(token.start, at, "{tokens:?}");
            at = token.end;
        }
        assert_eq!(at, sql.len());
    }

    #[test]
    fn statements_end_only_at_code_semicolons() {
        let sql = "SELECT ';' -- ;\n; /* ; */ SELECT \"a;\"; SELECT 1";
        let ends = statement_ends(sql);
        assert_eq!(ends.len(), 2);
        assert!(ends.iter().all(|&e| &sql[e..=e] == ";"));
        assert_eq!(ends[0], sql.find("\n;").unwrap() + 1);
    }

    #[test]
    fn quotes_are_told_from_comments() {
        // A quote inside a block comment opens nothing: what follows is code.
        let sql = "SELECT /* ' */ {{x}}";
        assert!(!quoted_at(sql, sql.find("{{").unwrap()));
        let sql = "SELECT '{{x}}'";
        assert!(quoted_at(sql, sql.find("{{").unwrap()));
        let sql = "SELECT \"{{x}}\"";
        assert!(quoted_at(sql, sql.find("{{").unwrap()));
        let sql = "SELECT 1 -- '\n, {{x}}";
        assert!(!quoted_at(sql, sql.find("{{").unwrap()));
    }

    #[test]
    fn unterminated_text_runs_to_the_end() {
        let sql = "SELECT 1; SELECT 'open; more";
        assert_eq!(statement_ends(sql), vec![8]);
        assert!(quoted_at(sql, sql.len() - 2));
        let tokens = tokens("SELECT 1 /* open ;");
        assert_eq!(
            tokens.last().map(|t| &t.kind),
            Some(&TokenKind::BlockComment)
        );
    }

    #[test]
    fn line_comments_keep_their_text_without_the_line_break() {
        let tokens = tokens("-- basin: param x\nSELECT 1");
        assert_eq!(
            tokens[0].kind,
            TokenKind::LineComment {
                prefix: "--".into(),
                text: " basin: param x".into()
            }
        );
        assert_eq!(tokens[1].kind, TokenKind::Newline);
    }
}
