//! The .sql file form: CREATE … AS SELECT statements with -- basin: directives, read with the SQL tokenizer and written back.

#[allow(unused_imports)]
use super::*;

// ---------------------------------------------------------------------------
// `.sql` files

/// What marks a comment as a directive.
pub(super) const DIRECTIVE_PREFIX: &str = "basin:";

/// Every kind of param, for reading their names.
pub(super) const PARAM_TYPES: [ParamType; 7] = [
    ParamType::String,
    ParamType::Integer,
    ParamType::Number,
    ParamType::Boolean,
    ParamType::Date,
    ParamType::Timestamp,
    ParamType::Identifier,
];

impl PipelineDefinition {
    /// Reads a pipeline from a `.sql` file: one `CREATE [OR REPLACE]
    /// [TEMP|TEMPORARY] TABLE|VIEW name AS <select>` statement per step
    /// (a table, a view, or with `TEMP` an ephemeral step), each ended by
    /// `;` (the last one may omit it), and `-- basin: …` directive comments.
    ///
    /// A block of directives directly above a statement (no blank line
    /// between its last line and the `CREATE`; other comments may sit
    /// between) belongs to that step: `description TEXT` (one line each,
    /// joined with newlines), `retries N`, `backoff_ms N`, `timeout_secs N`,
    /// and `incremental append cursor COLUMN` or `incremental merge
    /// unique_key COLUMN, …` (on a `CREATE TABLE`). Every other directive is
    /// the pipeline's: `description TEXT`, `param NAME TYPE [default VALUE]
    /// [allowed VALUE, …] [description TEXT]` (values written `'text'`,
    /// numbers, `true`, `false` or `null`), `retries`, `backoff_ms` and
    /// `timeout_secs` (the step defaults), `max_parallel N`, `schedule "CRON"
    /// [timezone ZONE] [missed skip|run_once] [disabled]`, `trigger DATASET`
    /// and `template`; these pipeline kinds are the pipeline's even directly
    /// above a statement. Other comments are ignored.
    ///
    /// Unquoted step names are folded to lowercase, as SQL folds them; the
    /// step's SQL is the text after `AS`, trimmed, with `{{ param }}`
    /// placeholders as written, and `source_line`/`source_column` say where
    /// in the file it starts. Every problem (a statement of another kind, an
    /// unknown or malformed directive) is reported as an `invalid_definition`
    /// diagnostic at its place in the file.
    pub fn from_sql_file(text: &str) -> Result<PipelineDefinition, Vec<Diagnostic>> {
        let mut reader = SqlFileReader {
            text,
            definition: PipelineDefinition {
                description: String::new(),
                params: Vec::new(),
                steps: Vec::new(),
                defaults: StepPolicy::default(),
                max_parallel: None,
                schedule: None,
                triggers: Vec::new(),
                template: false,
                layout: BTreeMap::new(),
            },
            description: Vec::new(),
            diagnostics: Vec::new(),
        };
        // One pass of the tokenizer; each statement reads its own tokens.
        let tokens = scan::tokens(text);
        let (mut start, mut first) = (0, 0);
        for (i, token) in tokens.iter().enumerate() {
            if token.kind == TokenKind::Semicolon {
                reader.statement(start, token.start, &tokens[first..i]);
                (start, first) = (token.end, i + 1);
            }
        }
        reader.statement(start, text.len(), &tokens[first..]);
        let SqlFileReader {
            mut definition,
            description,
            diagnostics,
            ..
        } = reader;
        if !diagnostics.is_empty() {
            return Err(diagnostics);
        }
        definition.description = description.join("\n");
        Ok(definition)
    }

    /// Writes the pipeline as a `.sql` file [`from_sql_file`](Self::from_sql_file)
    /// reads back to the same definition, except that `layout` is dropped,
    /// `source_line`/`source_column` are set, step SQL and description lines
    /// are trimmed, line breaks in param descriptions and param string
    /// values become spaces, and array or object param values and checks
    /// on steps that write no dataset do not read back.
    pub fn to_sql_file(&self) -> String {
        let mut header = description_directives(&self.description);
        header.extend(self.params.iter().map(param_directive));
        header.extend(policy_directives(&self.defaults));
        if let Some(max_parallel) = self.max_parallel {
            header.push(directive_line("max_parallel", &max_parallel.to_string()));
        }
        if let Some(schedule) = &self.schedule {
            header.push(schedule_directive(schedule));
        }
        header.extend(
            self.triggers
                .iter()
                .map(|trigger| directive_line("trigger", &directive_word(&trigger.dataset))),
        );
        if self.template {
            header.push(directive_line("template", ""));
        }

        let mut file = String::new();
        for line in &header {
            file.push_str(line);
            file.push('\n');
        }
        for step in &self.steps {
            if !file.is_empty() {
                file.push('\n');
            }
            let mut lines = description_directives(&step.description);
            lines.extend(policy_directives(&step.policy));
            if let Materialization::Incremental(incremental) = &step.materialization {
                lines.push(incremental_directive(incremental));
            }
            lines.extend(step.checks.iter().map(check_directive));
            for line in &lines {
                file.push_str(line);
                file.push('\n');
            }
            let head = match step.materialization {
                Materialization::Table => "CREATE OR REPLACE TABLE",
                Materialization::Incremental(_) => "CREATE TABLE",
                Materialization::View => "CREATE VIEW",
                Materialization::Ephemeral => "CREATE TEMPORARY VIEW",
            };
            file.push_str(&format!(
                "{head} {} AS\n{}",
                sql_name(&step.name),
                step.sql.trim()
            ));
            // A `;` after a trailing `--` comment would be part of the comment.
            let last_line = step.sql.trim().rsplit('\n').next().unwrap_or_default();
            file.push_str(if last_line.contains("--") {
                "\n;\n"
            } else {
                ";\n"
            });
        }
        file
    }
}

/// A `-- basin:` comment before a statement.
pub(super) struct DirectiveLine<'a> {
    /// What follows `basin:`, trimmed.
    text: &'a str,
    /// Where its `--` is in the file.
    offset: usize,
    /// Whether no blank line separates it from what follows.
    attached: bool,
}

/// Reads the whitespace and comments at the start of a statement's
/// `tokens` (which start at `start`): the directives among them, and the
/// index of the first other token (the statement's body), if any.
pub(super) fn scan_leading<'a>(
    text: &'a str,
    start: usize,
    tokens: &[SqlToken],
) -> (Vec<DirectiveLine<'a>>, Option<usize>) {
    let mut directives: Vec<DirectiveLine<'a>> = Vec::new();
    // What follows a `;` on its line is not a blank line.
    let mut line_has_content = start > 0 && text.as_bytes()[start - 1] != b'\n';
    for (index, token) in tokens.iter().enumerate() {
        let at = token.start;
        match &token.kind {
            TokenKind::Newline => {
                if !line_has_content {
                    for directive in &mut directives {
                        directive.attached = false;
                    }
                }
                line_has_content = false;
            }
            TokenKind::Space => {}
            TokenKind::LineComment { prefix, .. } => {
                let comment = &text[at + prefix.len()..token.end];
                if prefix == "--"
                    && let Some(directive) = directive_text(comment)
                {
                    directives.push(DirectiveLine {
                        text: directive,
                        offset: at,
                        attached: true,
                    });
                }
                line_has_content = true;
            }
            TokenKind::BlockComment => line_has_content = true,
            _ => return (directives, Some(index)),
        }
    }
    (directives, None)
}

/// The directive in a `--` comment's text, if it is one.
pub(super) fn directive_text(comment: &str) -> Option<&str> {
    let comment = comment.trim_start();
    let head = comment.get(..DIRECTIVE_PREFIX.len())?;
    head.eq_ignore_ascii_case(DIRECTIVE_PREFIX)
        .then_some(comment[DIRECTIVE_PREFIX.len()..].trim())
}

/// What a `CREATE` statement makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum HeadKind {
    Table,
    View,
    TempView,
}

/// Reads `CREATE [OR REPLACE] [TEMP|TEMPORARY] TABLE|VIEW name AS` at the
/// start of a statement's tokens: the name, the kind and the offset after `AS`.
pub(super) fn parse_head(tokens: &[SqlToken]) -> Option<(String, HeadKind, usize)> {
    let mut words = tokens.iter().filter(|t| !t.is_trivia());
    let mut next_word = || match words.next() {
        Some(SqlToken {
            kind: TokenKind::Word { value, quote },
            end,
            ..
        }) => Some((value.as_str(), *quote, *end)),
        _ => None,
    };
    /// The word, if it is the unquoted keyword `expected`.
    fn keyword<'t>(
        word: Option<(&'t str, Option<char>, usize)>,
        expected: &str,
    ) -> Option<(&'t str, Option<char>, usize)> {
        word.filter(|(value, quote, _)| quote.is_none() && value.eq_ignore_ascii_case(expected))
    }
    keyword(next_word(), "create")?;
    let mut word = next_word()?;
    if keyword(Some(word), "or").is_some() {
        keyword(next_word(), "replace")?;
        word = next_word()?;
    }
    let temporary =
        keyword(Some(word), "temp").is_some() || keyword(Some(word), "temporary").is_some();
    if temporary {
        word = next_word()?;
    }
    let kind = match (temporary, word) {
        (false, (value, None, _)) if value.eq_ignore_ascii_case("table") => HeadKind::Table,
        (false, (value, None, _)) if value.eq_ignore_ascii_case("view") => HeadKind::View,
        (true, (value, None, _)) if value.eq_ignore_ascii_case("view") => HeadKind::TempView,
        _ => return None,
    };
    let name = match next_word()? {
        (value, Some('"'), _) => value.to_owned(),
        (value, None, _) if is_identifier(value) => value.to_ascii_lowercase(),
        _ => return None,
    };
    let (_, _, after_as) = keyword(next_word(), "as")?;
    Some((name, kind, after_as))
}

/// `text` starts with `quote`: the text up to the closing quote, doubled
/// quotes standing for one, and the bytes used.
pub(super) fn unquote(text: &str, quote: char) -> Option<(String, usize)> {
    let mut value = String::new();
    let mut used = quote.len_utf8();
    loop {
        let rest = text.get(used..)?;
        let at = rest.find(quote)?;
        value.push_str(&rest[..at]);
        used += at + quote.len_utf8();
        if text[used..].starts_with(quote) {
            value.push(quote);
            used += quote.len_utf8();
        } else {
            return Some((value, used));
        }
    }
}

/// A parsed directive.
pub(super) enum Directive {
    Description(String),
    Param(ParamSpec),
    Retries(u32),
    BackoffMs(u64),
    TimeoutSecs(u64),
    MaxParallel(u32),
    Schedule(Schedule),
    Trigger(Vec<String>),
    Template,
    Incremental(Incremental),
    Check(StepCheck),
}

impl Directive {
    /// Its spelling.
    fn kind(&self) -> &'static str {
        match self {
            Self::Description(_) => "description",
            Self::Param(_) => "param",
            Self::Retries(_) => "retries",
            Self::BackoffMs(_) => "backoff_ms",
            Self::TimeoutSecs(_) => "timeout_secs",
            Self::MaxParallel(_) => "max_parallel",
            Self::Schedule(_) => "schedule",
            Self::Trigger(_) => "trigger",
            Self::Template => "template",
            Self::Incremental(_) => "incremental",
            Self::Check(_) => "check",
        }
    }
}

/// Reads a directive (the text after `basin:`).
pub(super) fn parse_directive(text: &str) -> Result<Directive, String> {
    let (kind, rest) = match text.split_once(char::is_whitespace) {
        Some((kind, rest)) => (kind, rest.trim()),
        None => (text, ""),
    };
    match kind.to_ascii_lowercase().as_str() {
        "description" => Ok(Directive::Description(rest.to_owned())),
        "param" => parse_param(rest).map(Directive::Param),
        "retries" => whole_number(rest, "retries").map(Directive::Retries),
        "backoff_ms" => whole_number(rest, "backoff_ms").map(Directive::BackoffMs),
        "timeout_secs" => whole_number(rest, "timeout_secs").map(Directive::TimeoutSecs),
        "max_parallel" => whole_number(rest, "max_parallel").map(Directive::MaxParallel),
        "schedule" => parse_schedule(rest).map(Directive::Schedule),
        "trigger" => parse_triggers(rest).map(Directive::Trigger),
        "template" if rest.is_empty() => Ok(Directive::Template),
        "template" => Err("`template` takes no arguments".to_owned()),
        "incremental" => parse_incremental(rest).map(Directive::Incremental),
        "check" => parse_check(rest).map(Directive::Check),
        _ => Err(format!(
            "unknown directive `{kind}`; directives are description, param, retries, backoff_ms, \
             timeout_secs, max_parallel, schedule, trigger, template, incremental and check"
        )),
    }
}

pub(super) fn whole_number<T: std::str::FromStr>(text: &str, kind: &str) -> Result<T, String> {
    text.parse()
        .map_err(|_| format!("`{kind}` takes a whole number, got `{text}`"))
}

pub(super) fn parse_param(text: &str) -> Result<ParamSpec, String> {
    const USAGE: &str =
        "expected `param NAME TYPE [default VALUE] [allowed VALUE, …] [description TEXT]`";
    let mut args = Args::new(text);
    let name = args.text_arg(USAGE)?;
    let type_name = args.text_arg(USAGE)?;
    let lowercase = type_name.to_ascii_lowercase();
    let kind = PARAM_TYPES
        .into_iter()
        .find(|kind| param_type_name(*kind) == lowercase)
        .ok_or_else(|| {
            format!(
                "unknown param type `{type_name}`; types are string, integer, number, boolean, \
                 date, timestamp and identifier"
            )
        })?;
    let mut spec = ParamSpec {
        name,
        kind,
        default: None,
        description: String::new(),
        allowed: None,
    };
    while let Some(token) = args.token()? {
        match token {
            Token::Word(word) if word == "default" => spec.default = Some(args.literal(USAGE)?),
            Token::Word(word) if word == "allowed" => {
                let mut allowed = vec![args.literal(USAGE)?];
                while args.comma() {
                    allowed.push(args.literal(USAGE)?);
                }
                spec.allowed = Some(allowed);
            }
            Token::Word(word) if word == "description" => {
                spec.description = args.rest().to_owned();
            }
            other => return Err(format!("unexpected {}: {USAGE}", other.describe())),
        }
    }
    Ok(spec)
}

pub(super) fn parse_schedule(text: &str) -> Result<Schedule, String> {
    const USAGE: &str =
        "expected `schedule \"CRON\" [timezone ZONE] [missed skip|run_once] [disabled]`";
    let mut args = Args::new(text);
    let mut schedule = Schedule {
        cron: args.text_arg(USAGE)?,
        timezone: utc(),
        missed: MissedRuns::Skip,
        enabled: true,
    };
    while let Some(token) = args.token()? {
        match token {
            Token::Word(word) if word == "timezone" => schedule.timezone = args.text_arg(USAGE)?,
            Token::Word(word) if word == "missed" => {
                schedule.missed = match args.text_arg(USAGE)?.as_str() {
                    "skip" => MissedRuns::Skip,
                    "run_once" => MissedRuns::RunOnce,
                    other => {
                        return Err(format!(
                            "unknown missed-run policy `{other}`; use skip or run_once"
                        ));
                    }
                }
            }
            Token::Word(word) if word == "disabled" => schedule.enabled = false,
            Token::Word(word) if word == "enabled" => schedule.enabled = true,
            other => return Err(format!("unexpected {}: {USAGE}", other.describe())),
        }
    }
    Ok(schedule)
}

pub(super) fn parse_triggers(text: &str) -> Result<Vec<String>, String> {
    const USAGE: &str = "expected `trigger DATASET`";
    let mut args = Args::new(text);
    let mut datasets = vec![args.text_arg(USAGE)?];
    while args.comma() {
        datasets.push(args.text_arg(USAGE)?);
    }
    args.end(USAGE)?;
    Ok(datasets)
}

pub(super) fn parse_incremental(text: &str) -> Result<Incremental, String> {
    const USAGE: &str =
        "expected `incremental append cursor COLUMN` or `incremental merge unique_key COLUMN, …`";
    let mut args = Args::new(text);
    let strategy = args.text_arg(USAGE)?;
    let key = args.text_arg(USAGE)?;
    let incremental = match (strategy.as_str(), key.as_str()) {
        ("append", "cursor") => Incremental::Append {
            cursor: args.text_arg(USAGE)?,
        },
        ("merge", "unique_key") => {
            let mut unique_key = vec![args.text_arg(USAGE)?];
            while args.comma() {
                unique_key.push(args.text_arg(USAGE)?);
            }
            Incremental::Merge { unique_key }
        }
        _ => return Err(USAGE.to_owned()),
    };
    args.end(USAGE)?;
    Ok(incremental)
}

pub(super) fn parse_check(text: &str) -> Result<StepCheck, String> {
    const USAGE: &str = "expected `check {JSON}`, one line of JSON such as \
         {\"name\": \"ids_present\", \"type\": \"not_null\", \"column\": \"id\"}";
    if text.is_empty() {
        return Err(USAGE.to_owned());
    }
    serde_json::from_str(text).map_err(|e| format!("invalid check: {e}; {USAGE}"))
}

/// A token of a directive's arguments.
pub(super) enum Token {
    /// Text up to whitespace, a comma or a quote.
    Word(String),
    /// `'text'`.
    Quoted(String),
    /// `"text"`.
    Ident(String),
    /// `,`.
    Comma,
}

impl Token {
    fn describe(&self) -> String {
        match self {
            Self::Word(word) => format!("`{word}`"),
            Self::Quoted(text) => format!("'{text}'"),
            Self::Ident(text) => format!("\"{text}\""),
            Self::Comma => "`,`".to_owned(),
        }
    }
}

/// A directive's arguments, read a token at a time.
pub(super) struct Args<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Args<'a> {
    fn new(text: &'a str) -> Self {
        Self { text, at: 0 }
    }

    fn skip_space(&mut self) {
        let rest = &self.text[self.at..];
        self.at += rest.len() - rest.trim_start().len();
    }

    /// The next token, if any.
    fn token(&mut self) -> Result<Option<Token>, String> {
        self.skip_space();
        let text = self.text;
        let rest = &text[self.at..];
        let Some(first) = rest.chars().next() else {
            return Ok(None);
        };
        let token = match first {
            ',' => {
                self.at += 1;
                Token::Comma
            }
            '\'' | '"' => {
                let (value, used) =
                    unquote(rest, first).ok_or_else(|| format!("unterminated {first}…{first}"))?;
                self.at += used;
                if first == '\'' {
                    Token::Quoted(value)
                } else {
                    Token::Ident(value)
                }
            }
            _ => {
                let length = rest
                    .find(|c: char| c.is_whitespace() || matches!(c, ',' | '\'' | '"'))
                    .unwrap_or(rest.len());
                self.at += length;
                Token::Word(rest[..length].to_owned())
            }
        };
        Ok(Some(token))
    }

    /// Whether a comma comes next; reads it if so.
    fn comma(&mut self) -> bool {
        self.skip_space();
        if self.text[self.at..].starts_with(',') {
            self.at += 1;
            true
        } else {
            false
        }
    }

    /// Everything left, trimmed.
    fn rest(&mut self) -> &'a str {
        let text = self.text;
        let rest = text[self.at..].trim();
        self.at = text.len();
        rest
    }

    /// A name or other text: a word or a quoted string.
    fn text_arg(&mut self, usage: &str) -> Result<String, String> {
        match self.token()? {
            Some(Token::Word(text) | Token::Quoted(text) | Token::Ident(text)) => Ok(text),
            Some(Token::Comma) | None => Err(usage.to_owned()),
        }
    }

    /// A value: `'text'`, a number, `true`, `false` or `null`.
    fn literal(&mut self, usage: &str) -> Result<Value, String> {
        match self.token()? {
            Some(Token::Quoted(text)) => Ok(Value::String(text)),
            Some(Token::Word(word)) => literal_word(&word).ok_or_else(|| {
                format!("`{word}` is not a value: write 'text', a number, true, false or null")
            }),
            Some(other) => Err(format!(
                "expected a value ('text', a number, true, false or null), found {}",
                other.describe()
            )),
            None => Err(usage.to_owned()),
        }
    }

    /// Fails unless nothing is left.
    fn end(&mut self, usage: &str) -> Result<(), String> {
        match self.token()? {
            None => Ok(()),
            Some(token) => Err(format!("unexpected {}: {usage}", token.describe())),
        }
    }
}

/// An unquoted value: `true`, `false`, `null` or a number.
pub(super) fn literal_word(word: &str) -> Option<Value> {
    match word.to_ascii_lowercase().as_str() {
        "true" => return Some(Value::Bool(true)),
        "false" => return Some(Value::Bool(false)),
        "null" => return Some(Value::Null),
        _ => {}
    }
    if let Ok(number) = word.parse::<i64>() {
        return Some(Value::from(number));
    }
    if let Ok(number) = word.parse::<u64>() {
        return Some(Value::from(number));
    }
    // `inf` and `nan` parse as floats but are no JSON numbers.
    word.parse::<f64>()
        .ok()
        .and_then(serde_json::Number::from_f64)
        .map(Value::Number)
}

/// Reads a `.sql` file statement by statement.
pub(super) struct SqlFileReader<'a> {
    text: &'a str,
    definition: PipelineDefinition,
    /// The pipeline's description lines.
    description: Vec<String>,
    diagnostics: Vec<Diagnostic>,
}

/// A step being read, with what its directives add.
pub(super) struct PendingStep {
    step: Step,
    kind: HeadKind,
    description: Vec<String>,
}

impl SqlFileReader<'_> {
    fn error(&mut self, offset: usize, message: impl Into<String>) {
        let (line, column) = line_column(self.text, offset);
        let mut diagnostic = Diagnostic::error(None, "invalid_definition", message);
        diagnostic.line = Some(line);
        diagnostic.column = Some(column);
        self.diagnostics.push(diagnostic);
    }

    /// The statement ending at `end` (its `;` or the end of the file) and
    /// the comments before it, from `start`.
    fn statement(&mut self, start: usize, end: usize, tokens: &[SqlToken]) {
        let text = self.text;
        let (directives, body) = scan_leading(text, start, tokens);
        let has_body = body.is_some();
        let mut pending = body.and_then(|first| {
            let body_start = tokens[first].start;
            self.step(
                body_start,
                text[body_start..end].trim_end(),
                &tokens[first..],
            )
        });
        for line in &directives {
            let directive = match parse_directive(line.text) {
                Ok(directive) => directive,
                Err(message) => {
                    self.error(line.offset, message);
                    continue;
                }
            };
            if line.attached && has_body {
                self.step_directive(directive, line.offset, pending.as_mut());
            } else {
                self.pipeline_directive(directive, line.offset);
            }
        }
        if let Some(PendingStep {
            mut step,
            description,
            ..
        }) = pending
        {
            step.description = description.join("\n");
            self.definition.steps.push(step);
        }
    }

    /// The step a statement defines, or `None` (and a diagnostic) when it
    /// is not a step.
    fn step(&mut self, body_start: usize, body: &str, tokens: &[SqlToken]) -> Option<PendingStep> {
        let Some((name, kind, after_as)) = parse_head(tokens) else {
            self.error(
                body_start,
                "expected `CREATE [OR REPLACE] [TEMP|TEMPORARY] TABLE|VIEW name AS SELECT …`: \
                 each statement of a pipeline file is one step",
            );
            return None;
        };
        let after_as = after_as - body_start;
        let rest = &body[after_as..];
        let sql = rest.trim();
        if sql.is_empty() {
            self.error(body_start, format!("step `{name}` has no query after AS"));
            return None;
        }
        let sql_start = body_start + after_as + (rest.len() - rest.trim_start().len());
        let (line, column) = line_column(self.text, sql_start);
        let materialization = match kind {
            HeadKind::Table => Materialization::Table,
            HeadKind::View => Materialization::View,
            HeadKind::TempView => Materialization::Ephemeral,
        };
        Some(PendingStep {
            step: Step {
                name,
                sql: sql.to_owned(),
                materialization,
                description: String::new(),
                policy: StepPolicy::default(),
                source_line: Some(line),
                source_column: Some(column),
                checks: Vec::new(),
            },
            kind,
            description: Vec::new(),
        })
    }

    /// Applies a directive directly above a statement; `pending` is `None`
    /// when the statement is no step (its step directives are then dropped).
    fn step_directive(
        &mut self,
        directive: Directive,
        offset: usize,
        pending: Option<&mut PendingStep>,
    ) {
        let kind = directive.kind();
        let fresh =
            match directive {
                Directive::Description(text) => {
                    if let Some(pending) = pending {
                        pending.description.push(text);
                    }
                    true
                }
                Directive::Retries(retries) => pending
                    .is_none_or(|pending| set_once(&mut pending.step.policy.retries, retries)),
                Directive::BackoffMs(backoff) => pending
                    .is_none_or(|pending| set_once(&mut pending.step.policy.backoff_ms, backoff)),
                Directive::TimeoutSecs(timeout) => pending
                    .is_none_or(|pending| set_once(&mut pending.step.policy.timeout_secs, timeout)),
                Directive::Incremental(incremental) => {
                    let Some(pending) = pending else { return };
                    if pending.kind != HeadKind::Table {
                        self.error(
                            offset,
                            "an incremental step writes a dataset: define it with CREATE TABLE",
                        );
                        return;
                    }
                    if matches!(
                        pending.step.materialization,
                        Materialization::Incremental(_)
                    ) {
                        false
                    } else {
                        pending.step.materialization = Materialization::Incremental(incremental);
                        true
                    }
                }
                Directive::Check(check) => {
                    let Some(pending) = pending else { return };
                    if pending.kind != HeadKind::Table {
                        self.error(
                            offset,
                            "a check runs on the dataset a step writes: \
                         define the step with CREATE TABLE",
                        );
                        return;
                    }
                    let name = &check.check.name;
                    if pending.step.checks.iter().any(|c| c.check.name == *name) {
                        self.error(
                            offset,
                            format!("check `{name}` is given twice for this step"),
                        );
                        return;
                    }
                    pending.step.checks.push(check);
                    true
                }
                other => {
                    self.pipeline_directive(other, offset);
                    return;
                }
            };
        if !fresh {
            self.error(offset, format!("`{kind}` is given twice for this step"));
        }
    }

    /// Applies a directive that is the pipeline's.
    fn pipeline_directive(&mut self, directive: Directive, offset: usize) {
        let kind = directive.kind();
        let definition = &mut self.definition;
        let fresh = match directive {
            Directive::Description(text) => {
                self.description.push(text);
                true
            }
            Directive::Param(spec) => {
                definition.params.push(spec);
                true
            }
            Directive::Retries(retries) => set_once(&mut definition.defaults.retries, retries),
            Directive::BackoffMs(backoff) => set_once(&mut definition.defaults.backoff_ms, backoff),
            Directive::TimeoutSecs(timeout) => {
                set_once(&mut definition.defaults.timeout_secs, timeout)
            }
            Directive::MaxParallel(max) => set_once(&mut definition.max_parallel, max),
            Directive::Schedule(schedule) => set_once(&mut definition.schedule, schedule),
            Directive::Trigger(datasets) => {
                definition
                    .triggers
                    .extend(datasets.into_iter().map(|dataset| Trigger { dataset }));
                true
            }
            Directive::Template => {
                definition.template = true;
                true
            }
            Directive::Incremental(_) | Directive::Check(_) => {
                self.error(
                    offset,
                    format!(
                        "`{kind}` belongs directly above its CREATE TABLE statement, \
                         with no blank line between"
                    ),
                );
                return;
            }
        };
        if !fresh {
            self.error(offset, format!("`{kind}` is given twice for the pipeline"));
        }
    }
}

/// Sets `slot` unless it is set already; false when it was.
pub(super) fn set_once<T>(slot: &mut Option<T>, value: T) -> bool {
    if slot.is_some() {
        return false;
    }
    *slot = Some(value);
    true
}

/// `-- basin: KIND ARGS`.
pub(super) fn directive_line(kind: &str, args: &str) -> String {
    if args.is_empty() {
        format!("-- basin: {kind}")
    } else {
        format!("-- basin: {kind} {args}")
    }
}

/// One `description` directive per line of `description`.
pub(super) fn description_directives(description: &str) -> Vec<String> {
    if description.is_empty() {
        return Vec::new();
    }
    description
        .split('\n')
        .map(|line| directive_line("description", line.trim()))
        .collect()
}

pub(super) fn policy_directives(policy: &StepPolicy) -> Vec<String> {
    [
        ("retries", policy.retries.map(u64::from)),
        ("backoff_ms", policy.backoff_ms),
        ("timeout_secs", policy.timeout_secs),
    ]
    .into_iter()
    .filter_map(|(kind, value)| value.map(|value| directive_line(kind, &value.to_string())))
    .collect()
}

pub(super) fn param_directive(spec: &ParamSpec) -> String {
    let mut args = format!(
        "{} {}",
        directive_word(&spec.name),
        param_type_name(spec.kind)
    );
    if let Some(default) = &spec.default {
        args.push_str(" default ");
        args.push_str(&literal_text(default));
    }
    if let Some(allowed) = spec.allowed.as_ref().filter(|allowed| !allowed.is_empty()) {
        args.push_str(" allowed ");
        args.push_str(
            &allowed
                .iter()
                .map(literal_text)
                .collect::<Vec<_>>()
                .join(", "),
        );
    }
    if !spec.description.is_empty() {
        args.push_str(" description ");
        args.push_str(&one_line(&spec.description));
    }
    directive_line("param", &args)
}

pub(super) fn schedule_directive(schedule: &Schedule) -> String {
    let mut args = format!(
        "{} timezone {}",
        quote_ident(&schedule.cron),
        directive_word(&schedule.timezone)
    );
    if schedule.missed == MissedRuns::RunOnce {
        args.push_str(" missed run_once");
    }
    if !schedule.enabled {
        args.push_str(" disabled");
    }
    directive_line("schedule", &args)
}

pub(super) fn incremental_directive(incremental: &Incremental) -> String {
    let args = match incremental {
        Incremental::Append { cursor } => format!("append cursor {}", directive_word(cursor)),
        Incremental::Merge { unique_key } => format!(
            "merge unique_key {}",
            unique_key
                .iter()
                .map(String::as_str)
                .map(directive_word)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    directive_line("incremental", &args)
}

pub(super) fn check_directive(check: &StepCheck) -> String {
    // Compact JSON is one line, as a directive must be. Serializing a derived
    // type with string keys does not fail.
    directive_line("check", &serde_json::to_string(check).unwrap_or_default())
}

pub(super) fn param_type_name(kind: ParamType) -> &'static str {
    match kind {
        ParamType::String => "string",
        ParamType::Integer => "integer",
        ParamType::Number => "number",
        ParamType::Boolean => "boolean",
        ParamType::Date => "date",
        ParamType::Timestamp => "timestamp",
        ParamType::Identifier => "identifier",
    }
}

/// A value as a directive writes it.
pub(super) fn literal_text(value: &Value) -> String {
    match value {
        Value::String(text) => basin_sql::quote_literal(&one_line(text)),
        other => other.to_string(),
    }
}

pub(super) fn one_line(text: &str) -> String {
    text.replace(['\r', '\n'], " ")
}

/// A name as a directive argument: bare when it is one word, else double-quoted.
pub(super) fn directive_word(name: &str) -> String {
    let bare = !name.is_empty()
        && !name.contains(|c: char| c.is_whitespace() || matches!(c, ',' | '\'' | '"'));
    if bare {
        name.to_owned()
    } else {
        quote_ident(name)
    }
}

/// A step name in a `CREATE` statement: bare when SQL would not fold it.
pub(super) fn sql_name(name: &str) -> String {
    if is_identifier(name) && !name.bytes().any(|byte| byte.is_ascii_uppercase()) {
        name.to_owned()
    } else {
        quote_ident(name)
    }
}
