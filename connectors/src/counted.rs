//! A table provider wrapper for scans that need no columns (`count(*)`).
//!
//! datafusion-table-providers' SQL tables answer an empty projection with a
//! full row schema, which DataFusion rejects. The wrapper asks the source for
//! its first column instead and drops it again, so the SQL sent stays small
//! and filters still reach the source.

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::Constraints;
use datafusion::error::Result;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown, TableType};
use datafusion::physical_expr::projection::ProjectionExpr;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::projection::ProjectionExec;

/// Wraps a source table so that scans without columns work.
#[derive(Debug)]
pub struct CountSafe {
    inner: Arc<dyn TableProvider>,
}

impl CountSafe {
    /// Wraps `inner`.
    pub fn wrap(inner: Arc<dyn TableProvider>) -> Arc<dyn TableProvider> {
        Arc::new(Self { inner })
    }
}

#[async_trait]
impl TableProvider for CountSafe {
    fn schema(&self) -> SchemaRef {
        self.inner.schema()
    }

    fn constraints(&self) -> Option<&Constraints> {
        self.inner.constraints()
    }

    fn table_type(&self) -> TableType {
        self.inner.table_type()
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        match projection {
            Some(columns) if columns.is_empty() && !self.schema().fields().is_empty() => {
                let first = self
                    .inner
                    .scan(state, Some(&vec![0]), filters, limit)
                    .await?;
                let none: Vec<ProjectionExpr> = Vec::new();
                Ok(Arc::new(ProjectionExec::try_new(none, first)?))
            }
            _ => self.inner.scan(state, projection, filters, limit).await,
        }
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        self.inner.supports_filters_pushdown(filters)
    }
}
