//! One worker's DataFusion session. The table (`table_name`) is a streaming table whose only
//! partition hands out the batch placed in its slot, so a physical plan is built once per input
//! schema and executed again for every batch (`reset_plan_states` between runs); nothing is
//! planned per batch. One target partition: batches are small and the worker is the unit of
//! parallelism.

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::streaming::StreamingTable;
use datafusion::execution::TaskContext;
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::PartitionStream;
use datafusion::physical_plan::{ExecutionPlan, SendableRecordBatchStream};
use datafusion::prelude::{SessionConfig, SessionContext};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

type Slot = Arc<Mutex<Option<RecordBatch>>>;

#[derive(Debug)]
struct SlotStream {
    schema: SchemaRef,
    slot: Slot,
}

impl PartitionStream for SlotStream {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }
    fn execute(&self, _: Arc<TaskContext>) -> SendableRecordBatchStream {
        let batch = self.slot.lock().unwrap_or_else(|p| p.into_inner()).take();
        Box::pin(RecordBatchStreamAdapter::new(self.schema.clone(), futures::stream::iter(batch.map(Ok))))
    }
}

/// A query planned for one input schema.
pub struct Prepared<S> {
    slot: Slot,
    plan: Arc<dyn ExecutionPlan>,
    /// What the caller derived from the logical plan (the continuous-mode shape).
    pub shape: S,
}

impl<S> Prepared<S> {
    pub fn schema(&self) -> SchemaRef {
        self.plan.schema()
    }
}

pub struct Engine<S> {
    rt: tokio::runtime::Runtime,
    ctx: SessionContext,
    table: String,
    query: String,
    cache: HashMap<String, Arc<Prepared<S>>>,
    /// The plan used last, with its schema: most batches have the schema of the one before, so
    /// they skip the fingerprint.
    last: Option<(SchemaRef, Arc<Prepared<S>>)>,
    /// The session's task context, built once (the session's functions and settings are fixed
    /// after `new`): building it per run cloned its registries every batch.
    task: Arc<TaskContext>,
}

/// `plan` with its filters passing their output batches on as they are. A filter copies the rows
/// it keeps into batches of its batch size unless a batch has more than half that many: here every
/// run is one small batch collected whole, so that copy was a second one of every kept row (as
/// much time as the filter). At batch size 1 every non-empty batch passes and nothing is ever
/// held (at 2, a held row would make the next batch be cut into batches of 2).
fn no_filter_coalescing(plan: Arc<dyn ExecutionPlan>) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
    use datafusion::common::tree_node::{Transformed, TreeNode};
    use datafusion::physical_plan::filter::FilterExec;
    let plan = plan.transform_up(|p| match p.downcast_ref::<FilterExec>() {
        Some(f) => Ok(Transformed::yes(Arc::new(f.with_batch_size(1)?) as Arc<dyn ExecutionPlan>)),
        None => Ok(Transformed::no(p)),
    })?;
    Ok(plan.data)
}

/// Rejects plans that change anything (DDL, DML, COPY, SET ...).
pub fn check_read_only(plan: &LogicalPlan) -> Result<(), String> {
    match plan {
        LogicalPlan::Ddl(_) => Err("DDL (CREATE/DROP ...) is not allowed in a sql processor".into()),
        LogicalPlan::Dml(_) => Err("DML (INSERT/UPDATE/DELETE) is not allowed in a sql processor".into()),
        LogicalPlan::Copy(_) => Err("COPY is not allowed in a sql processor".into()),
        LogicalPlan::Statement(_) => Err("statements (SET, transactions, PREPARE ...) are not allowed in a sql processor".into()),
        LogicalPlan::Explain(_) | LogicalPlan::Analyze(_) => Err("EXPLAIN is not allowed in a sql processor".into()),
        _ => Ok(()),
    }
}

impl<S> Engine<S> {
    pub fn new(table: &str, query: &str) -> anyhow::Result<Self> {
        let rt = tokio::runtime::Builder::new_current_thread().build()?;
        let config = SessionConfig::new().with_target_partitions(1).with_information_schema(false);
        let ctx = SessionContext::new_with_config(config);
        super::window::udfs().into_iter().for_each(|f| ctx.register_udf(f));
        let task = ctx.task_ctx();
        Ok(Engine { rt, ctx, table: table.to_string(), query: query.to_string(), cache: HashMap::new(), last: None, task })
    }

    /// Plans the query for `schema` (once per schema). `derive` turns the logical plan into the
    /// plan to run and its shape (the identity for batch mode).
    pub fn prepared(&mut self, schema: &SchemaRef, derive: impl Fn(&LogicalPlan) -> Result<(LogicalPlan, S), String>) -> Result<Arc<Prepared<S>>, String> {
        if let Some((s, p)) = &self.last {
            if Arc::ptr_eq(s, schema) || s == schema {
                return Ok(p.clone());
            }
        }
        let fingerprint = format!("{:?}", schema.fields());
        if let Some(p) = self.cache.get(&fingerprint) {
            self.last = Some((schema.clone(), p.clone()));
            return Ok(p.clone());
        }
        let slot: Slot = Arc::default();
        let part: Arc<dyn PartitionStream> = Arc::new(SlotStream { schema: schema.clone(), slot: slot.clone() });
        let table = StreamingTable::try_new(schema.clone(), vec![part]).map_err(|e| e.to_string())?;
        let _ = self.ctx.deregister_table(&self.table);
        self.ctx.register_table(&self.table, Arc::new(table)).map_err(|e| e.to_string())?;
        let state = self.ctx.state();
        let query = self.query.clone();
        let plan = self.rt.block_on(async move {
            let logical = state.create_logical_plan(&query).await.map_err(|e| e.to_string())?;
            check_read_only(&logical)?;
            let (logical, shape) = derive(&logical)?;
            let physical = state.create_physical_plan(&logical).await.map_err(|e| e.to_string())?;
            Ok::<_, String>((no_filter_coalescing(physical).map_err(|e| e.to_string())?, shape))
        })?;
        let prepared = Arc::new(Prepared { slot, plan: plan.0, shape: plan.1 });
        if self.cache.len() >= 16 {
            self.cache.clear(); // schemas that keep changing: do not grow without bound
        }
        self.cache.insert(fingerprint, prepared.clone());
        self.last = Some((schema.clone(), prepared.clone()));
        Ok(prepared)
    }

    /// Runs the prepared plan over `batch`.
    pub fn run(&self, p: &Prepared<S>, batch: RecordBatch) -> Result<Vec<RecordBatch>, String> {
        *p.slot.lock().unwrap_or_else(|x| x.into_inner()) = Some(batch);
        let plan = datafusion::physical_plan::execution_plan::reset_plan_states(p.plan.clone()).map_err(|e| e.to_string())?;
        let task = self.task.clone();
        let out = self.rt.block_on(datafusion::physical_plan::collect(plan, task)).map_err(|e| e.to_string());
        p.slot.lock().unwrap_or_else(|x| x.into_inner()).take();
        out
    }
}
