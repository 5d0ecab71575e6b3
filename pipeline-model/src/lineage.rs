//! Column-level lineage read from a DataFusion [`LogicalPlan`]: for each
//! column a query outputs, the columns of scanned tables that feed it, and
//! whether it passes them through, computes from them, aggregates them or
//! computes a window function over them.
//!
//! Lineage is data flow, not control flow: columns that only filter, join,
//! sort or group rows (a `WHERE`, a join key, an `ORDER BY`) are not sources of
//! the columns they touch, except where they are an argument of the output
//! expression itself (a window function's `PARTITION BY`/`ORDER BY` are, since
//! they determine its value).
//!
//! The plan is walked bottom-up; each node maps its output schema, position
//! by position, to a set of source columns and a [`Transform`]:
//!
//! - `TableScan`: every projected column is its own source, [`Transform::Identity`]
//!   (the scan of a recursive CTE's work table has no sources: its rows come
//!   from the CTE's own terms).
//! - `Projection` and `DISTINCT ON`: each expression's sources are the union of the
//!   sources of the input columns it references. A bare column (possibly
//!   renamed) keeps the transform of the column it reads; any other expression
//!   is [`Transform::Expression`], or [`Transform::Aggregation`]/[`Transform::Window`]
//!   when it computes on an aggregated or windowed column. A literal has no sources.
//!   A scalar subquery (and `IN (subquery)`, `op ANY/ALL (subquery)`) in an
//!   output expression adds the lineage of the subquery's output column; `EXISTS`
//!   adds nothing.
//! - `Aggregate`: group expressions as in a projection, then GROUPING SETS'
//!   internal grouping id (no sources), then the aggregates: [`Transform::Aggregation`]
//!   of the columns they reference (`count(*)` has none).
//! - `Window`: the input's columns, then one [`Transform::Window`] column per
//!   window expression, fed by its arguments, `PARTITION BY` and `ORDER BY`.
//! - `Join`: the left side's columns then the right side's, only the kept side
//!   for semi and anti joins; a mark join's mark column comes from the join condition.
//! - `Union` and recursive CTEs: position by position, the union of the inputs'
//!   sources, with the strongest of their transforms.
//! - `Unnest`: every output column comes from the input column it was unnested
//!   from (an unnested column is an [`Transform::Expression`]).
//! - `Filter`, `Sort`, `Limit`, `Repartition`, `DISTINCT`, subquery aliases
//!   (CTEs, `FROM (…) AS x`): the input's lineage, unchanged.
//! - `EmptyRelation`, `VALUES`: no sources.
//! - Anything else (extension nodes, DML, `EXPLAIN`, …), and any node whose
//!   lineage cannot be matched to its schema: every output column depends on
//!   every column of every input, as a [`Transform::Expression`].

use std::collections::BTreeSet;

use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::common::{Column, DFSchema, TableReference};
use datafusion::datasource::cte_worktable::CteWorkTable;
use datafusion::datasource::source_as_provider;
use datafusion::logical_expr::expr::{InSubquery, SetComparison};
use datafusion::logical_expr::utils::grouping_set_to_exprlist;
use datafusion::logical_expr::{
    Aggregate, Distinct, Expr, Filter, Join, JoinType, Limit, LogicalPlan, Repartition, Sort,
    Subquery, SubqueryAlias, TableScan, Unnest, Window,
};
use serde::{Deserialize, Serialize};

use basin_sql::CATALOG_NAME;

/// A column of a table a plan reads.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, utoipa::ToSchema,
)]
pub struct SourceColumn {
    /// The table, by the name it was scanned under: its bare name, or
    /// `catalog.schema.table` for a table of a connection.
    pub table: String,
    /// The column's name in that table.
    pub column: String,
}

/// How an output column comes from its sources.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Transform {
    /// A plain passthrough of a column, possibly renamed.
    Identity,
    /// Computed row by row from its sources (or a constant, with no sources).
    Expression,
    /// An aggregate over its sources, or computed from one.
    Aggregation,
    /// A window function over its sources, or computed from one.
    Window,
}

impl Transform {
    /// Orders transforms so that combining columns keeps the strongest:
    /// an expression over an aggregate is still an aggregation.
    fn rank(self) -> u8 {
        match self {
            Self::Identity => 0,
            Self::Expression => 1,
            Self::Aggregation => 2,
            Self::Window => 3,
        }
    }

    /// The stronger of two transforms.
    fn stronger(self, other: Self) -> Self {
        if other.rank() > self.rank() {
            other
        } else {
            self
        }
    }
}

/// Where one output column of a plan comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ColumnLineage {
    /// The output column's name.
    pub column: String,
    /// How it is derived from its sources.
    pub transform: Transform,
    /// The scanned columns that feed it, sorted and without duplicates.
    pub sources: Vec<SourceColumn>,
}

/// For each output column of `plan` (in schema order), the input columns that
/// feed it. Never fails: what cannot be traced precisely falls back to "every
/// column of the node's inputs" (see the module documentation).
pub fn column_lineage(plan: &LogicalPlan) -> Vec<ColumnLineage> {
    plan.schema()
        .fields()
        .iter()
        .zip(flows(plan))
        .map(|(field, flow)| ColumnLineage {
            column: field.name().clone(),
            transform: flow.transform,
            sources: flow.sources.into_iter().collect(),
        })
        .collect()
}

/// The tables a plan scans (sorted, deduped), by the name they were scanned
/// under, including tables read only by subqueries (`IN (SELECT …)`,
/// `EXISTS`, scalar subqueries). A recursive CTE's reference to itself is not
/// a table.
pub fn scanned_tables(plan: &LogicalPlan) -> Vec<String> {
    let mut tables = BTreeSet::new();
    // The closure never fails, so neither does the walk.
    let _ = plan.apply_with_subqueries(|node| {
        if let LogicalPlan::TableScan(scan) = node
            && !is_work_table(scan)
        {
            tables.insert(table_label(&scan.table_name));
        }
        Ok(TreeNodeRecursion::Continue)
    });
    tables.into_iter().collect()
}

/// The name a scanned table goes by in lineage: Basin registers datasets and
/// steps under their bare names, so the table part; connection tables are
/// only reachable as `catalog.schema.table`, so all of it.
fn table_label(reference: &TableReference) -> String {
    match reference {
        TableReference::Full { catalog, .. } if &**catalog != CATALOG_NAME => reference.to_string(),
        _ => reference.table().to_owned(),
    }
}

/// Whether a scan reads a recursive CTE's work table (the CTE referring to itself).
fn is_work_table(scan: &TableScan) -> bool {
    source_as_provider(&scan.source).is_ok_and(|provider| provider.is::<CteWorkTable>())
}

/// The lineage of one column of a plan node's output.
#[derive(Debug, Clone)]
struct Flow {
    sources: BTreeSet<SourceColumn>,
    transform: Transform,
}

impl Flow {
    /// No sources yet.
    fn new(transform: Transform) -> Self {
        Self {
            sources: BTreeSet::new(),
            transform,
        }
    }

    /// Adds `other`'s sources, keeping the stronger transform.
    fn absorb(&mut self, other: &Flow) {
        self.sources.extend(other.sources.iter().cloned());
        self.transform = self.transform.stronger(other.transform);
    }
}

/// The lineage of each column of `plan`'s output schema: always exactly one
/// entry per field.
fn flows(plan: &LogicalPlan) -> Vec<Flow> {
    let width = plan.schema().fields().len();
    match node_flows(plan) {
        Some(flows) if flows.len() == width => flows,
        _ => fallback(plan, width),
    }
}

/// Every output column depends on every column of every input.
fn fallback(plan: &LogicalPlan, width: usize) -> Vec<Flow> {
    let mut all = Flow::new(Transform::Expression);
    for input in plan.inputs() {
        for flow in flows(input) {
            all.sources.extend(flow.sources);
        }
    }
    vec![all; width]
}

/// The lineage of a node's output, or `None` when this node is not traced
/// precisely.
fn node_flows(plan: &LogicalPlan) -> Option<Vec<Flow>> {
    match plan {
        LogicalPlan::TableScan(scan) => Some(scan_flows(scan)),
        LogicalPlan::Projection(projection) => Some(project(&projection.expr, &projection.input)),
        LogicalPlan::Distinct(Distinct::On(distinct)) => {
            Some(project(&distinct.select_expr, &distinct.input))
        }
        LogicalPlan::Filter(Filter { input, .. })
        | LogicalPlan::Sort(Sort { input, .. })
        | LogicalPlan::Limit(Limit { input, .. })
        | LogicalPlan::Repartition(Repartition { input, .. })
        | LogicalPlan::Distinct(Distinct::All(input))
        | LogicalPlan::SubqueryAlias(SubqueryAlias { input, .. })
        | LogicalPlan::Subquery(Subquery {
            subquery: input, ..
        }) => Some(flows(input)),
        LogicalPlan::Aggregate(aggregate) => aggregate_flows(aggregate),
        LogicalPlan::Window(window) => Some(window_flows(window)),
        LogicalPlan::Join(join) => Some(join_flows(join)),
        LogicalPlan::Union(union) => {
            positional_union(union.inputs.iter().map(|input| flows(input.as_ref())))
        }
        LogicalPlan::RecursiveQuery(query) => {
            positional_union([flows(&query.static_term), flows(&query.recursive_term)])
        }
        LogicalPlan::Unnest(unnest) => Some(unnest_flows(unnest)),
        LogicalPlan::EmptyRelation(_) | LogicalPlan::Values(_) => {
            Some(vec![
                Flow::new(Transform::Expression);
                plan.schema().fields().len()
            ])
        }
        _ => None,
    }
}

/// Each projected column of a scan is its own source.
fn scan_flows(scan: &TableScan) -> Vec<Flow> {
    let work_table = is_work_table(scan);
    let table = table_label(&scan.table_name);
    scan.projected_schema
        .fields()
        .iter()
        .map(|field| {
            let mut flow = Flow::new(Transform::Identity);
            if !work_table {
                flow.sources.insert(SourceColumn {
                    table: table.clone(),
                    column: field.name().clone(),
                });
            }
            flow
        })
        .collect()
}

/// One column per row-wise expression evaluated over `input`.
fn project(exprs: &[Expr], input: &LogicalPlan) -> Vec<Flow> {
    let input_flows = flows(input);
    exprs
        .iter()
        .map(|expr| row_wise(expr, input.schema(), &input_flows))
        .collect()
}

/// The lineage of a row-wise expression (a projection's or a group key):
/// a bare column keeps its input's lineage; anything else is at least an
/// [`Transform::Expression`] of what it references.
fn row_wise(expr: &Expr, schema: &DFSchema, input: &[Flow]) -> Flow {
    if let Expr::Column(column) = unalias(expr) {
        return lookup(column, schema, input)
            .cloned()
            .unwrap_or_else(|| Flow::new(Transform::Expression));
    }
    let mut flow = reads(expr, schema, input);
    flow.transform = flow.transform.stronger(Transform::Expression);
    flow
}

/// The expression under any aliases.
fn unalias(expr: &Expr) -> &Expr {
    match expr {
        Expr::Alias(alias) => unalias(&alias.expr),
        _ => expr,
    }
}

/// The lineage of the input column `column` names, if it resolves.
fn lookup<'a>(column: &Column, schema: &DFSchema, input: &'a [Flow]) -> Option<&'a Flow> {
    schema
        .maybe_index_of_column(column)
        .and_then(|index| input.get(index))
}

/// Everything `expr` reads: the union of the lineage of the input columns it
/// references and of the output of the subqueries whose values it uses,
/// with the strongest of their transforms (`Identity` when it reads nothing).
fn reads(expr: &Expr, schema: &DFSchema, input: &[Flow]) -> Flow {
    let mut read = Flow::new(Transform::Identity);
    // The closure never fails, so neither does the walk.
    let _ = expr.apply(|node| {
        match node {
            Expr::Column(column) => {
                if let Some(flow) = lookup(column, schema, input) {
                    read.absorb(flow);
                }
            }
            Expr::ScalarSubquery(subquery)
            | Expr::InSubquery(InSubquery { subquery, .. })
            | Expr::SetComparison(SetComparison { subquery, .. }) => {
                for flow in flows(&subquery.subquery) {
                    read.absorb(&flow);
                }
            }
            _ => {}
        }
        Ok(TreeNodeRecursion::Continue)
    });
    read
}

/// Group keys (deduplicated, or a grouping set's distinct expressions plus
/// its grouping id), then one column per aggregate expression.
fn aggregate_flows(aggregate: &Aggregate) -> Option<Vec<Flow>> {
    let input = flows(&aggregate.input);
    let schema = aggregate.input.schema();
    let groups = grouping_set_to_exprlist(&aggregate.group_expr).ok()?;
    let mut out: Vec<Flow> = groups
        .into_iter()
        .map(|expr| row_wise(expr, schema, &input))
        .collect();
    if matches!(aggregate.group_expr.as_slice(), [Expr::GroupingSet(_)]) {
        // `__grouping_id`: which grouping set a row belongs to.
        out.push(Flow::new(Transform::Aggregation));
    }
    out.extend(aggregate.aggr_expr.iter().map(|expr| Flow {
        sources: reads(expr, schema, &input).sources,
        transform: Transform::Aggregation,
    }));
    Some(out)
}

/// The input's columns, then one column per window expression.
fn window_flows(window: &Window) -> Vec<Flow> {
    let mut out = flows(&window.input);
    let schema = window.input.schema();
    let computed: Vec<Flow> = window
        .window_expr
        .iter()
        .map(|expr| Flow {
            sources: reads(expr, schema, &out).sources,
            transform: Transform::Window,
        })
        .collect();
    out.extend(computed);
    out
}

/// The columns a join outputs, as `build_join_schema` lays them out.
fn join_flows(join: &Join) -> Vec<Flow> {
    let left = flows(&join.left);
    let right = flows(&join.right);
    match join.join_type {
        JoinType::Inner | JoinType::Left | JoinType::Right | JoinType::Full => {
            let mut out = left;
            out.extend(right);
            out
        }
        JoinType::LeftSemi | JoinType::LeftAnti => left,
        JoinType::RightSemi | JoinType::RightAnti => right,
        JoinType::LeftMark => {
            let mark = mark_flow(join, &left, &right);
            let mut out = left;
            out.push(mark);
            out
        }
        JoinType::RightMark => {
            let mark = mark_flow(join, &left, &right);
            let mut out = right;
            out.push(mark);
            out
        }
    }
}

/// A mark join's `mark` column (whether a row found a match) comes from the
/// columns of the join condition.
fn mark_flow(join: &Join, left: &[Flow], right: &[Flow]) -> Flow {
    let mut mark = Flow::new(Transform::Expression);
    let conditions = join
        .on
        .iter()
        .flat_map(|(l, r)| [l, r])
        .chain(join.filter.as_ref());
    for expr in conditions {
        mark.sources
            .extend(reads(expr, join.left.schema(), left).sources);
        mark.sources
            .extend(reads(expr, join.right.schema(), right).sources);
    }
    mark
}

/// Position by position, the union of the inputs' lineage; `None` when the
/// inputs do not line up (or there are none).
fn positional_union(inputs: impl IntoIterator<Item = Vec<Flow>>) -> Option<Vec<Flow>> {
    let mut inputs = inputs.into_iter();
    let mut merged = inputs.next()?;
    for input in inputs {
        if input.len() != merged.len() {
            return None;
        }
        for (flow, other) in merged.iter_mut().zip(&input) {
            flow.absorb(other);
        }
    }
    Some(merged)
}

/// Each output column comes from the input column it depends on; unnested
/// columns are computed from it.
fn unnest_flows(unnest: &Unnest) -> Vec<Flow> {
    let input = flows(&unnest.input);
    unnest
        .dependency_indices
        .iter()
        .map(|&index| {
            let Some(flow) = input.get(index) else {
                return Flow::new(Transform::Expression);
            };
            let unnested = unnest
                .list_type_columns
                .iter()
                .any(|(column, _)| *column == index)
                || unnest.struct_type_columns.contains(&index);
            let mut flow = flow.clone();
            if unnested {
                flow.transform = flow.transform.stronger(Transform::Expression);
            }
            flow
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::RecordBatch;
    use arrow::datatypes::{DataType, Field, Schema};
    use datafusion::error::Result;
    use datafusion::prelude::{SessionConfig, SessionContext};

    use super::*;
    use basin_sql::SCHEMA_NAME;

    /// A context like Basin's (default catalog `basin`) with three empty tables.
    fn context() -> Result<SessionContext> {
        let config =
            SessionConfig::new().with_default_catalog_and_schema(CATALOG_NAME, SCHEMA_NAME);
        let ctx = SessionContext::new_with_config(config);
        register(
            &ctx,
            "orders",
            &[
                ("id", DataType::Int64),
                ("customer", DataType::Int64),
                ("amount", DataType::Float64),
                ("status", DataType::Utf8),
            ],
        )?;
        register(
            &ctx,
            "customers",
            &[("id", DataType::Int64), ("name", DataType::Utf8)],
        )?;
        register(
            &ctx,
            "refunds",
            &[("id", DataType::Int64), ("amount", DataType::Float64)],
        )?;
        Ok(ctx)
    }

    fn register(ctx: &SessionContext, name: &str, columns: &[(&str, DataType)]) -> Result<()> {
        let fields: Vec<Field> = columns
            .iter()
            .map(|(column, data_type)| Field::new(*column, data_type.clone(), true))
            .collect();
        ctx.register_batch(name, RecordBatch::new_empty(Arc::new(Schema::new(fields))))?;
        Ok(())
    }

    /// The unoptimized plan, as callers get it.
    async fn plan_of(ctx: &SessionContext, sql: &str) -> Result<LogicalPlan> {
        Ok(ctx.sql(sql).await?.logical_plan().clone())
    }

    async fn lineage(sql: &str) -> Result<Vec<ColumnLineage>> {
        let ctx = context()?;
        Ok(column_lineage(&plan_of(&ctx, sql).await?))
    }

    fn entry(column: &str, transform: Transform, sources: &[(&str, &str)]) -> ColumnLineage {
        let mut sources: Vec<SourceColumn> = sources
            .iter()
            .map(|(table, column)| SourceColumn {
                table: (*table).to_owned(),
                column: (*column).to_owned(),
            })
            .collect();
        sources.sort();
        ColumnLineage {
            column: column.to_owned(),
            transform,
            sources,
        }
    }

    #[tokio::test]
    async fn select_star_passes_every_column_through() -> Result<()> {
        let ctx = context()?;
        let plan = plan_of(&ctx, "SELECT * FROM orders").await?;
        assert_eq!(
            column_lineage(&plan),
            vec![
                entry("id", Transform::Identity, &[("orders", "id")]),
                entry("customer", Transform::Identity, &[("orders", "customer")]),
                entry("amount", Transform::Identity, &[("orders", "amount")]),
                entry("status", Transform::Identity, &[("orders", "status")]),
            ]
        );
        assert_eq!(scanned_tables(&plan), vec!["orders"]);
        Ok(())
    }

    #[tokio::test]
    async fn a_renamed_column_is_still_identity() -> Result<()> {
        assert_eq!(
            lineage("SELECT id AS order_id, status FROM orders").await?,
            vec![
                entry("order_id", Transform::Identity, &[("orders", "id")]),
                entry("status", Transform::Identity, &[("orders", "status")]),
            ]
        );
        Ok(())
    }

    #[tokio::test]
    async fn an_expression_reads_every_column_it_references() -> Result<()> {
        assert_eq!(
            lineage("SELECT id + amount AS s, upper(status) AS loud FROM orders").await?,
            vec![
                entry(
                    "s",
                    Transform::Expression,
                    &[("orders", "id"), ("orders", "amount")]
                ),
                entry("loud", Transform::Expression, &[("orders", "status")]),
            ]
        );
        Ok(())
    }

    #[tokio::test]
    async fn literals_have_no_sources() -> Result<()> {
        assert_eq!(
            lineage("SELECT 1 AS one, 'x' AS label, id FROM orders").await?,
            vec![
                entry("one", Transform::Expression, &[]),
                entry("label", Transform::Expression, &[]),
                entry("id", Transform::Identity, &[("orders", "id")]),
            ]
        );
        Ok(())
    }

    #[tokio::test]
    async fn ctes_pass_lineage_through() -> Result<()> {
        let sql = "WITH big AS (SELECT customer, amount * 2 AS doubled FROM orders WHERE amount > 10) \
                   SELECT * FROM big";
        assert_eq!(
            lineage(sql).await?,
            vec![
                entry("customer", Transform::Identity, &[("orders", "customer")]),
                entry("doubled", Transform::Expression, &[("orders", "amount")]),
            ]
        );
        Ok(())
    }

    #[tokio::test]
    async fn joins_take_columns_from_both_sides() -> Result<()> {
        let ctx = context()?;
        let plan = plan_of(
            &ctx,
            "SELECT o.id, c.name, o.amount FROM orders o JOIN customers c ON o.customer = c.id",
        )
        .await?;
        assert_eq!(
            column_lineage(&plan),
            vec![
                entry("id", Transform::Identity, &[("orders", "id")]),
                entry("name", Transform::Identity, &[("customers", "name")]),
                entry("amount", Transform::Identity, &[("orders", "amount")]),
            ]
        );
        assert_eq!(scanned_tables(&plan), vec!["customers", "orders"]);
        Ok(())
    }

    #[tokio::test]
    async fn aggregates_are_aggregations_and_group_keys_identity() -> Result<()> {
        let sql = "SELECT customer, sum(amount) AS total, count(*) AS n, max(amount) - min(amount) AS spread \
                   FROM orders GROUP BY customer";
        assert_eq!(
            lineage(sql).await?,
            vec![
                entry("customer", Transform::Identity, &[("orders", "customer")]),
                entry("total", Transform::Aggregation, &[("orders", "amount")]),
                entry("n", Transform::Aggregation, &[]),
                entry("spread", Transform::Aggregation, &[("orders", "amount")]),
            ]
        );
        Ok(())
    }

    #[tokio::test]
    async fn grouping_sets_have_a_grouping_id_without_sources() -> Result<()> {
        let ctx = context()?;
        let sql = "SELECT customer, status, sum(amount) AS total FROM orders \
                   GROUP BY ROLLUP (customer, status)";
        let plan = plan_of(&ctx, sql).await?;
        assert_eq!(
            column_lineage(&plan),
            vec![
                entry("customer", Transform::Identity, &[("orders", "customer")]),
                entry("status", Transform::Identity, &[("orders", "status")]),
                entry("total", Transform::Aggregation, &[("orders", "amount")]),
            ]
        );
        let mut aggregate = None;
        plan.apply(|node| {
            if let LogicalPlan::Aggregate(_) = node {
                aggregate = Some(node.clone());
                return Ok(TreeNodeRecursion::Stop);
            }
            Ok(TreeNodeRecursion::Continue)
        })?;
        let aggregate = aggregate.expect("the plan has an aggregate");
        let grouping_id = column_lineage(&aggregate)
            .into_iter()
            .find(|column| column.column == Aggregate::INTERNAL_GROUPING_ID)
            .expect("a grouping id column");
        assert!(grouping_id.sources.is_empty());
        Ok(())
    }

    #[tokio::test]
    async fn union_all_merges_positions() -> Result<()> {
        let ctx = context()?;
        let plan = plan_of(
            &ctx,
            "SELECT id, amount FROM orders UNION ALL SELECT id, amount * -1 FROM refunds",
        )
        .await?;
        assert_eq!(
            column_lineage(&plan),
            vec![
                entry(
                    "id",
                    Transform::Identity,
                    &[("orders", "id"), ("refunds", "id")]
                ),
                entry(
                    "amount",
                    Transform::Expression,
                    &[("orders", "amount"), ("refunds", "amount")]
                ),
            ]
        );
        assert_eq!(scanned_tables(&plan), vec!["orders", "refunds"]);
        Ok(())
    }

    #[tokio::test]
    async fn window_functions_read_partition_and_order_columns() -> Result<()> {
        let sql = "SELECT id, row_number() OVER (PARTITION BY customer ORDER BY amount) AS rn \
                   FROM orders";
        assert_eq!(
            lineage(sql).await?,
            vec![
                entry("id", Transform::Identity, &[("orders", "id")]),
                entry(
                    "rn",
                    Transform::Window,
                    &[("orders", "customer"), ("orders", "amount")]
                ),
            ]
        );
        Ok(())
    }

    #[tokio::test]
    async fn subqueries_count_as_scanned_and_scalar_ones_as_sources() -> Result<()> {
        let ctx = context()?;
        let sql = "SELECT id, (SELECT max(amount) FROM refunds) AS top_refund FROM orders \
                   WHERE customer IN (SELECT id FROM customers)";
        let plan = plan_of(&ctx, sql).await?;
        assert_eq!(
            column_lineage(&plan),
            vec![
                entry("id", Transform::Identity, &[("orders", "id")]),
                entry(
                    "top_refund",
                    Transform::Aggregation,
                    &[("refunds", "amount")]
                ),
            ]
        );
        assert_eq!(
            scanned_tables(&plan),
            vec!["customers", "orders", "refunds"]
        );
        Ok(())
    }

    #[tokio::test]
    async fn recursive_ctes_do_not_scan_themselves() -> Result<()> {
        let ctx = context()?;
        let sql = "WITH RECURSIVE chain AS ( \
                     SELECT id, customer FROM orders \
                     UNION ALL \
                     SELECT o.id, o.customer FROM orders o JOIN chain c ON o.customer = c.id \
                   ) SELECT id FROM chain";
        let plan = plan_of(&ctx, sql).await?;
        assert_eq!(
            column_lineage(&plan),
            vec![entry("id", Transform::Identity, &[("orders", "id")])]
        );
        assert_eq!(scanned_tables(&plan), vec!["orders"]);
        Ok(())
    }

    #[tokio::test]
    async fn lineage_survives_optimization() -> Result<()> {
        let ctx = context()?;
        let sql = "SELECT o.id, c.name, o.amount * 2 AS doubled \
                   FROM orders o JOIN customers c ON o.customer = c.id \
                   WHERE o.status = 'open'";
        let plan = plan_of(&ctx, sql).await?;
        let expected = vec![
            entry("id", Transform::Identity, &[("orders", "id")]),
            entry("name", Transform::Identity, &[("customers", "name")]),
            entry("doubled", Transform::Expression, &[("orders", "amount")]),
        ];
        assert_eq!(column_lineage(&plan), expected);
        let optimized = ctx.state().optimize(&plan)?;
        assert_eq!(column_lineage(&optimized), expected);
        assert_eq!(scanned_tables(&optimized), vec!["customers", "orders"]);
        Ok(())
    }

    #[tokio::test]
    async fn basin_qualified_names_render_bare() -> Result<()> {
        let ctx = context()?;
        let plan = plan_of(&ctx, "SELECT id FROM basin.public.orders").await?;
        assert_eq!(
            column_lineage(&plan),
            vec![entry("id", Transform::Identity, &[("orders", "id")])]
        );
        assert_eq!(scanned_tables(&plan), vec!["orders"]);
        Ok(())
    }

    #[test]
    fn connection_tables_keep_their_full_name() {
        assert_eq!(
            table_label(&TableReference::full("pg", "public", "customers")),
            "pg.public.customers"
        );
        assert_eq!(
            table_label(&TableReference::full(CATALOG_NAME, "public", "orders")),
            "orders"
        );
        assert_eq!(
            table_label(&TableReference::partial("public", "orders")),
            "orders"
        );
        assert_eq!(table_label(&TableReference::bare("orders")), "orders");
    }

    #[test]
    fn transforms_serialize_in_snake_case() -> serde_json::Result<()> {
        let column = entry("total", Transform::Aggregation, &[("orders", "amount")]);
        assert_eq!(
            serde_json::to_value(&column)?,
            serde_json::json!({
                "column": "total",
                "transform": "aggregation",
                "sources": [{ "table": "orders", "column": "amount" }],
            })
        );
        Ok(())
    }
}
