//! Dependencies between steps, read from their SQL: a step depends on every
//! step whose name its query reads from. [`table_references`] finds the
//! tables a step reads, [`step_for`] says which of them are steps, and
//! [`Dag`] orders the steps.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use datafusion::common::TableReference;
use datafusion::error::DataFusionError;
use datafusion::sql::parser::{DFParser, Statement as DFStatement};
use datafusion::sql::resolve::resolve_table_references;
use datafusion::sql::sqlparser::ast::Statement;
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::ParserError;

use crate::Diagnostic;
use crate::model::Step;
use basin_sql::{CATALOG_NAME, SCHEMA_NAME};

/// What a step must be.
const NOT_A_QUERY: &str =
    "a step is one SELECT; its name and materialization say where the rows go";

/// The tables and views `sql` reads, as written (unquoted names folded to
/// lowercase), without the names of its CTEs. `sql` must be exactly one
/// query (`SELECT`, `WITH … SELECT`, `VALUES`), else `not_a_query`; SQL that
/// does not parse is `sql_error`, with the line and column in `sql` where
/// the parser gave one. Render `{{ param }}` placeholders first (with
/// [`crate::model::placeholder_values_for_validation`] when checking). The
/// diagnostic names no step: attach it with [`for_step`].
pub fn table_references(sql: &str) -> Result<Vec<TableReference>, Diagnostic> {
    let mut statements =
        DFParser::parse_sql_with_dialect(sql, &GenericDialect {}).map_err(|err| sql_error(&err))?;
    if statements.len() > 1 {
        return Err(Diagnostic::error(
            None,
            "not_a_query",
            format!("found {} statements: {NOT_A_QUERY}", statements.len()),
        ));
    }
    let Some(statement) = statements.pop_front() else {
        return Err(Diagnostic::error(
            None,
            "not_a_query",
            format!("the SQL is empty: {NOT_A_QUERY}"),
        ));
    };
    let is_query = matches!(
        &statement,
        DFStatement::Statement(inner) if matches!(**inner, Statement::Query(_))
    );
    if !is_query {
        return Err(Diagnostic::error(None, "not_a_query", NOT_A_QUERY));
    }
    let (relations, _ctes) =
        resolve_table_references(&statement, true).map_err(|err| sql_error(&err))?;
    Ok(relations)
}

/// A `sql_error` diagnostic for a parser error, at the position it names.
fn sql_error(err: &DataFusionError) -> Diagnostic {
    let message = match err.find_root() {
        DataFusionError::SQL(parser_error, _) => match &**parser_error {
            ParserError::TokenizerError(message) | ParserError::ParserError(message) => {
                message.clone()
            }
            ParserError::RecursionLimitExceeded => "the query nests too deeply".to_owned(),
        },
        other => other.to_string(),
    };
    let location = err
        .diagnostic()
        .and_then(|diagnostic| diagnostic.span)
        .map(|span| (span.start.line, span.start.column))
        .or_else(|| position_in(&message))
        .filter(|&(line, column)| line > 0 && column > 0);
    // The position is reported on its own (and moved into the file for file steps).
    let message = match (location, message.rfind(" at Line: ")) {
        (Some(_), Some(at)) => message[..at].to_owned(),
        _ => message,
    };
    let mut diagnostic = Diagnostic::error(None, "sql_error", message);
    if let Some((line, column)) = location {
        diagnostic.line = Some(line);
        diagnostic.column = Some(column);
    }
    diagnostic
}

/// The `Line: X, Column: Y` the parser writes into its messages.
fn position_in(message: &str) -> Option<(u64, u64)> {
    let at = message.rfind("Line: ")?;
    let rest = &message[at + "Line: ".len()..];
    let (line, rest) = rest.split_once(", Column: ")?;
    let column: String = rest.chars().take_while(char::is_ascii_digit).collect();
    Some((line.trim().parse().ok()?, column.parse().ok()?))
}

/// `diagnostic` as one about `step`: it names the step, and its line and
/// column (relative to the step's SQL) move to the step's place in its
/// `.sql` file when it came from one. A diagnostic without a position about
/// a file step points at the start of the step's SQL.
pub fn for_step(mut diagnostic: Diagnostic, step: &Step) -> Diagnostic {
    diagnostic.step = Some(step.name.clone());
    match (diagnostic.line, diagnostic.column) {
        (Some(line), Some(column)) => diagnostic.at(step, line, column),
        _ if step.source_line.is_some() => diagnostic.at(step, 1, 1),
        _ => diagnostic,
    }
}

/// The step `reference` names, if it names one of `steps`: a bare name, or
/// one qualified with Basin's schema (`public.x`) or catalog and schema
/// (`basin.public.x`). Names in other catalogs or schemas are not steps.
pub fn step_for(reference: &TableReference, steps: &[&str]) -> Option<String> {
    let ours = reference
        .catalog()
        .is_none_or(|catalog| catalog == CATALOG_NAME)
        && reference
            .schema()
            .is_none_or(|schema| schema == SCHEMA_NAME);
    if !ours {
        return None;
    }
    steps
        .iter()
        .find(|step| **step == reference.table())
        .map(|step| (*step).to_owned())
}

/// Steps and the steps they depend on, known to have no cycle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dag {
    /// The steps in the order given.
    names: Vec<String>,
    /// A topological order.
    order: Vec<String>,
    /// Each step's direct dependencies, in the order given.
    upstream: BTreeMap<String, Vec<String>>,
    /// The steps that depend directly on each step, in the order given.
    downstream: BTreeMap<String, Vec<String>>,
}

impl Dag {
    /// Builds the graph of `nodes`: step names with the names of the steps
    /// they depend on. Dependencies that are not nodes are ignored, repeated
    /// ones count once, and a repeated node adds its dependencies to the
    /// first. A cycle is refused with its path, each step feeding the next
    /// and the first repeated at the end (`["a", "b", "a"]`; a step reading
    /// itself is `["a", "a"]`).
    pub fn build(nodes: Vec<(String, Vec<String>)>) -> Result<Dag, Vec<String>> {
        let mut names: Vec<String> = Vec::new();
        let mut index: BTreeMap<String, usize> = BTreeMap::new();
        let mut dependencies: Vec<Vec<String>> = Vec::new();
        for (name, depends_on) in nodes {
            match index.get(&name) {
                Some(&at) => dependencies[at].extend(depends_on),
                None => {
                    index.insert(name.clone(), names.len());
                    names.push(name);
                    dependencies.push(depends_on);
                }
            }
        }
        let upstream: Vec<Vec<usize>> = dependencies
            .iter()
            .map(|depends_on| {
                let mut found: Vec<usize> = Vec::new();
                for dependency in depends_on {
                    if let Some(&at) = index.get(dependency)
                        && !found.contains(&at)
                    {
                        found.push(at);
                    }
                }
                found
            })
            .collect();
        let mut downstream: Vec<Vec<usize>> = vec![Vec::new(); names.len()];
        for (node, sources) in upstream.iter().enumerate() {
            for &source in sources {
                downstream[source].push(node);
            }
        }

        // Kahn's algorithm; among ready steps the earliest given goes first.
        let mut waiting: Vec<usize> = upstream.iter().map(Vec::len).collect();
        let mut ready: BTreeSet<usize> = (0..names.len()).filter(|&at| waiting[at] == 0).collect();
        let mut order = Vec::with_capacity(names.len());
        while let Some(next) = ready.pop_first() {
            order.push(next);
            for &after in &downstream[next] {
                waiting[after] -= 1;
                if waiting[after] == 0 {
                    ready.insert(after);
                }
            }
        }
        if order.len() < names.len() {
            return Err(find_cycle(&names, &upstream, &waiting));
        }

        let order = named(&names, &order);
        let upstream = names
            .iter()
            .zip(&upstream)
            .map(|(name, ids)| (name.clone(), named(&names, ids)))
            .collect();
        let downstream = names
            .iter()
            .zip(&downstream)
            .map(|(name, ids)| (name.clone(), named(&names, ids)))
            .collect();
        Ok(Dag {
            names,
            order,
            upstream,
            downstream,
        })
    }

    /// Every step, each after the steps it depends on; among steps that
    /// could go next, the one given first goes first.
    pub fn order(&self) -> &[String] {
        &self.order
    }

    /// The steps `step` reads directly (empty for unknown steps).
    pub fn upstream(&self, step: &str) -> &[String] {
        self.upstream
            .get(step)
            .map(Vec::as_slice)
            .unwrap_or_default()
    }

    /// The steps that read `step` directly (empty for unknown steps).
    pub fn downstream(&self, step: &str) -> &[String] {
        self.downstream
            .get(step)
            .map(Vec::as_slice)
            .unwrap_or_default()
    }

    /// Every step that depends on any of `steps`, directly or not, except
    /// `steps` themselves.
    pub fn descendants(&self, steps: &[String]) -> BTreeSet<String> {
        let mut found = BTreeSet::new();
        let mut queue: VecDeque<&str> = steps.iter().map(String::as_str).collect();
        while let Some(step) = queue.pop_front() {
            for next in self.downstream(step) {
                if found.insert(next.clone()) {
                    queue.push_back(next.as_str());
                }
            }
        }
        for step in steps {
            found.remove(step);
        }
        found
    }

    /// Every step `step` depends on, directly or not.
    pub fn ancestors(&self, step: &str) -> BTreeSet<String> {
        let mut found = BTreeSet::new();
        let mut queue: VecDeque<&str> = VecDeque::from([step]);
        while let Some(current) = queue.pop_front() {
            for next in self.upstream(current) {
                if found.insert(next.clone()) {
                    queue.push_back(next.as_str());
                }
            }
        }
        found.remove(step);
        found
    }

    /// Every dependency as (upstream, downstream), by downstream step in
    /// the order given.
    pub fn edges(&self) -> Vec<(String, String)> {
        self.names
            .iter()
            .flat_map(|step| {
                self.upstream(step)
                    .iter()
                    .map(move |source| (source.clone(), step.clone()))
            })
            .collect()
    }

    /// The steps grouped by the longest chain of dependencies leading to
    /// them: first the steps that depend on no step, then the steps that
    /// depend only on those, and so on. Steps of one level do not depend on
    /// each other and may run together.
    pub fn levels(&self) -> Vec<Vec<String>> {
        let mut depth: BTreeMap<&str, usize> = BTreeMap::new();
        let mut levels: Vec<Vec<String>> = Vec::new();
        for step in &self.order {
            let level = self
                .upstream(step)
                .iter()
                .filter_map(|source| depth.get(source.as_str()))
                .map(|source_level| source_level + 1)
                .max()
                .unwrap_or(0);
            depth.insert(step.as_str(), level);
            if levels.len() <= level {
                levels.resize_with(level + 1, Vec::new);
            }
            levels[level].push(step.clone());
        }
        levels
    }
}

/// A cycle among the steps Kahn's algorithm could not order (those still
/// `waiting` on a dependency), as a path in which each step feeds the next.
fn find_cycle(names: &[String], upstream: &[Vec<usize>], waiting: &[usize]) -> Vec<String> {
    let Some(mut current) = (0..names.len()).find(|&at| waiting[at] > 0) else {
        return Vec::new();
    };
    // Every waiting step waits on another waiting step: walking upstream
    // through them must come back to a step already on the path.
    let mut path: Vec<usize> = Vec::new();
    loop {
        if let Some(start) = path.iter().position(|&at| at == current) {
            let mut cycle = path[start..].to_vec();
            cycle.push(current);
            cycle.reverse();
            return named(names, &cycle);
        }
        path.push(current);
        match upstream[current]
            .iter()
            .copied()
            .find(|&at| waiting[at] > 0)
        {
            Some(next) => current = next,
            None => return named(names, &path),
        }
    }
}

/// The names of the steps at `ids`.
fn named(names: &[String], ids: &[usize]) -> Vec<String> {
    ids.iter().map(|&at| names[at].clone()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Materialization, StepPolicy};

    fn node(name: &str, depends_on: &[&str]) -> (String, Vec<String>) {
        (
            name.to_owned(),
            depends_on.iter().map(|d| (*d).to_owned()).collect(),
        )
    }

    fn names(steps: &[&str]) -> Vec<String> {
        steps.iter().map(|s| (*s).to_owned()).collect()
    }

    fn set(steps: &[&str]) -> BTreeSet<String> {
        steps.iter().map(|s| (*s).to_owned()).collect()
    }

    /// The references `sql` makes, as text, sorted.
    fn references(sql: &str) -> Vec<String> {
        let mut found: Vec<String> = table_references(sql)
            .unwrap()
            .iter()
            .map(ToString::to_string)
            .collect();
        found.sort();
        found
    }

    #[test]
    fn references_are_the_tables_read() {
        assert_eq!(
            references(
                "SELECT * FROM Orders o JOIN public.customers c ON o.c = c.id WHERE o.x IN (SELECT x FROM basin.public.flags)"
            ),
            ["basin.public.flags", "orders", "public.customers"]
        );
        assert!(references("VALUES (1), (2)").is_empty());
    }

    #[test]
    fn cte_names_are_not_references() {
        assert_eq!(
            references(
                "WITH recent AS (SELECT * FROM raw_orders), latest AS (SELECT * FROM recent) SELECT * FROM latest"
            ),
            ["raw_orders"]
        );
    }

    #[test]
    fn statements_other_than_one_query_are_refused() {
        for sql in [
            "INSERT INTO t VALUES (1)",
            "CREATE TABLE x AS SELECT 1",
            "DROP TABLE t",
            "SELECT 1; SELECT 2",
            "",
        ] {
            let diagnostic = table_references(sql).unwrap_err();
            assert_eq!(diagnostic.code, "not_a_query", "{sql}");
            assert!(diagnostic.message.contains("one SELECT"), "{sql}");
        }
    }

    #[test]
    fn syntax_errors_have_a_position() {
        let diagnostic = table_references("SELECT a FROM t\nWHERE x = = 1").unwrap_err();
        assert_eq!(diagnostic.code, "sql_error");
        assert_eq!((diagnostic.line, diagnostic.column), (Some(2), Some(11)));
        assert!(
            !diagnostic.message.contains("Line:"),
            "{}",
            diagnostic.message
        );
        assert_eq!(diagnostic.step, None);

        let step = Step {
            name: "s".into(),
            sql: String::new(),
            materialization: Materialization::Table,
            description: String::new(),
            policy: StepPolicy::default(),
            source_line: Some(10),
            source_column: Some(4),
            checks: Vec::new(),
        };
        let moved = for_step(diagnostic, &step);
        assert_eq!(moved.step.as_deref(), Some("s"));
        assert_eq!((moved.line, moved.column), (Some(11), Some(11)));
    }

    #[test]
    fn qualified_names_match_steps_only_in_basins_schema() {
        let steps = ["orders", "daily"];
        for (reference, expected) in [
            (TableReference::bare("orders"), Some("orders")),
            (TableReference::partial("public", "orders"), Some("orders")),
            (
                TableReference::full("basin", "public", "daily"),
                Some("daily"),
            ),
            (TableReference::bare("raw"), None),
            (TableReference::partial("staging", "orders"), None),
            (TableReference::full("other", "public", "orders"), None),
            (TableReference::full("basin", "staging", "orders"), None),
        ] {
            assert_eq!(
                step_for(&reference, &steps).as_deref(),
                expected,
                "{reference}"
            );
        }
        let read = table_references("SELECT * FROM basin.public.orders").unwrap();
        assert_eq!(step_for(&read[0], &steps).as_deref(), Some("orders"));
    }

    #[test]
    fn cycles_are_refused_with_their_path() {
        let cycle = Dag::build(vec![
            node("a", &["c"]),
            node("b", &["a"]),
            node("c", &["b"]),
            node("d", &[]),
        ])
        .unwrap_err();
        assert_eq!(cycle, ["a", "b", "c", "a"]);

        let own = Dag::build(vec![node("x", &[]), node("a", &["a", "x"])]).unwrap_err();
        assert_eq!(own, ["a", "a"]);
    }

    #[test]
    fn diamonds_order_stably() {
        let dag = Dag::build(vec![
            node("a", &[]),
            node("b", &["a"]),
            node("c", &["a"]),
            node("d", &["b", "c"]),
        ])
        .unwrap();
        assert_eq!(dag.order(), names(&["a", "b", "c", "d"]));
        assert_eq!(dag.upstream("d"), names(&["b", "c"]));
        assert_eq!(dag.downstream("a"), names(&["b", "c"]));
        assert!(dag.upstream("nope").is_empty());
        assert_eq!(dag.descendants(&names(&["b"])), set(&["d"]));
        assert_eq!(dag.descendants(&names(&["a", "b"])), set(&["c", "d"]));
        assert_eq!(dag.ancestors("d"), set(&["a", "b", "c"]));
        assert_eq!(
            dag.edges(),
            [
                ("a".to_owned(), "b".to_owned()),
                ("a".to_owned(), "c".to_owned()),
                ("b".to_owned(), "d".to_owned()),
                ("c".to_owned(), "d".to_owned()),
            ]
        );
        assert_eq!(
            dag.levels(),
            [names(&["a"]), names(&["b", "c"]), names(&["d"])]
        );

        // Given the other way round, ready steps still keep the given order.
        let reversed = Dag::build(vec![
            node("d", &["b", "c"]),
            node("c", &["a"]),
            node("b", &["a"]),
            node("a", &[]),
        ])
        .unwrap();
        assert_eq!(reversed.order(), names(&["a", "c", "b", "d"]));
    }

    #[test]
    fn independent_branches_share_levels() {
        let dag = Dag::build(vec![
            node("a", &[]),
            node("b", &["a"]),
            node("x", &[]),
            node("y", &["x", "outside"]),
            node("z", &["y"]),
        ])
        .unwrap();
        assert_eq!(
            dag.levels(),
            [names(&["a", "x"]), names(&["b", "y"]), names(&["z"])]
        );
        assert_eq!(dag.order(), names(&["a", "b", "x", "y", "z"]));
    }
}
