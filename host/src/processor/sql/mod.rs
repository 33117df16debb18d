//! The `sql` processor (DataFusion). Each batch's JSON object values become an Arrow table named
//! `table_name` (plus `__key`, `__timestamp`, `__partition`, `__offset`), and the query runs over
//! it with a plan built once per input schema (`engine.rs`).
//!
//! Modes. `batch`: the query's result rows of each batch are emitted as JSON records. `continuous`
//! (the default when the stream's state is enabled and the query has a GROUP BY): aggregates
//! accumulate over the whole stream in the keyed state store `store` (default: the stream's first
//! `custom_keys` entry), checkpointed and restored like plugin state; each batch emits one upsert
//! record per changed group (`continuous.rs`). A group's records must share a key group: the
//! factory declares the GROUP BY columns as its key (`KeyNeed`) and the stream routes by them
//! (`engine::routing`).
//!
//! Windows: a continuous query may also group by `tumble(INTERVAL ..)` or `hop(..)`
//! (`window.rs`); then each window's aggregates are emitted once, when the watermark closes it,
//! instead of an upsert per batch, and records too late for every window fail (`windowed.rs`).
//!
//! Start-up check: the query is planned against a placeholder table (every identifier of the
//! query as a nullable float column) so that DDL/DML and clauses continuous mode cannot keep are
//! refused before data flows. Records whose value is not a JSON object fail one by one
//! (`invalid-input`); the others go on. Results are attached to the batch's last good record.
//!
//! The columnar lane (batch mode): `process_lines` decodes a whole block of JSON lines
//! (`codec::lines_table`: the host's flat-object decoder, `flat.rs`, else arrow-json; typed by
//! the first block and widened by later ones) and returns the result batches as they are; a block
//! it cannot run as one takes `process`.

mod codec;
pub use codec::result_records;
pub mod codecs;
mod config;
mod continuous;
mod engine;
mod flat;
mod json_size;
pub use json_size::json_rows_size;
mod window;
mod windowed;

use crate::processor::{BatchCtx, BatchError, Clock, FailurePolicy, Fired, KeyNeed, Processor, ProcessorFactory, StateSlot, StreamEnv};
use crate::record::{Outcome, Record, RecordError};
use crate::state::{Staging, WorkerState};
pub use config::*;
use continuous::Shape;
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::common::tree_node::TreeNode;
use datafusion::logical_expr::LogicalPlan;
use std::sync::Arc;

pub struct SqlFactory {
    cfg: SqlProcessorConfig,
    mode: SqlMode,
    store: u16,
    declared: Option<Schema>,
    label: String,
    /// The GROUP BY columns in continuous mode (see `engine::routing`).
    key: KeyNeed,
    /// A windowed query: its shape as planned at start, the event-time field, the stage index.
    windowed: Option<(Shape, Option<String>, u16)>,
    wanted: Arc<Vec<String>>,
}

/// Every word of `query` that could name a column, for the placeholder table: keywords included
/// (`key`, `value`, `date` are keywords and common field names; a surplus column is harmless),
/// unquoted words also lowercased (the planner's spelling of them). A word written right after `AS` is
/// an alias, not a column: left out everywhere, so that `GROUP BY <alias>` plans as it will on real data.
fn identifiers(query: &str) -> Vec<String> {
    use datafusion::sql::sqlparser::{
        dialect::GenericDialect,
        keywords::Keyword,
        tokenizer::{Token, Tokenizer},
    };
    let tokens = Tokenizer::new(&GenericDialect {}, query).tokenize().unwrap_or_default();
    let words: Vec<_> = tokens.into_iter().filter_map(|t| if let Token::Word(w) = t { Some(w) } else { None }).collect();
    // `x AS y` with y != x (`amount AS amount` still names the column).
    let aliases: Vec<&str> =
        words.windows(3).filter(|p| p[1].keyword == Keyword::AS && !p[0].value.eq_ignore_ascii_case(&p[2].value)).map(|p| p[2].value.as_str()).collect();
    let mut out = Vec::new();
    for w in words.iter().filter(|w| !aliases.contains(&w.value.as_str())) {
        match w.quote_style {
            None => out.extend([w.value.to_lowercase(), w.value.clone()]),
            Some(_) => out.push(w.value.clone()),
        }
    }
    out.sort();
    out.dedup();
    out
}

/// The declared Arrow schema of a `schema:` list (None when empty: inferred per batch).
pub fn declared_schema(fields: &[(String, SqlType)]) -> Option<Schema> {
    (!fields.is_empty()).then(|| codec::declared(fields))
}

/// Batch mode runs the query as written.
fn as_written(plan: &LogicalPlan) -> Result<(LogicalPlan, ()), String> {
    Ok((plan.clone(), ()))
}

fn has_group_by(plan: &LogicalPlan) -> bool {
    let mut found = false;
    let _ = plan.apply(|n| {
        found |= matches!(n, LogicalPlan::Aggregate(a) if !a.group_expr.is_empty());
        Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
    });
    found
}

impl SqlFactory {
    /// `stage`: the processor's index in the pipeline.
    pub fn new(cfg: &SqlProcessorConfig, label: &str, env: &StreamEnv, stage: usize) -> anyhow::Result<Self> {
        let (store_names, state_enabled) = (&env.store_names, env.state_enabled);
        let declared = declared_schema(&cfg.schema);
        let words: Vec<String> =
            identifiers(&cfg.query).into_iter().filter(|n| !codec::META_COLUMNS.contains(&n.as_str()) && n != window::WINDOW_COLUMN).collect();
        // The placeholder table: the declared columns, else every identifier as a nullable float.
        let mut fields: Vec<Field> = match &declared {
            Some(s) => s.fields().iter().map(|f| f.as_ref().clone()).collect(),
            None => words.iter().map(|n| Field::new(n, DataType::Float64, true)).collect(),
        };
        fields.extend(codec::meta_fields());
        fields.push(window::window_field());
        let placeholder = Arc::new(Schema::new(fields));
        let checked = match probe_logical(&cfg.table_name, &cfg.query, &placeholder) {
            Ok(plan) => {
                engine::check_read_only(&plan).map_err(|e| anyhow::anyhow!("{label}: sql query: {e}"))?;
                Some(plan)
            }
            Err(e) if e.to_string().contains("SQL error") => anyhow::bail!("{label}: sql query does not parse: {e}"),
            Err(e) => {
                tracing::warn!("{label}: the sql query could not be checked before data arrives ({e}); it is checked on the first batch");
                None
            }
        };
        let grouped = match &checked {
            Some(plan) => has_group_by(plan),
            None => cfg.query.to_ascii_lowercase().contains("group by"),
        };
        let mode = cfg.mode.unwrap_or(if state_enabled && grouped { SqlMode::Continuous } else { SqlMode::Batch });
        let mut store = 0;
        if mode == SqlMode::Continuous {
            if !state_enabled {
                anyhow::bail!("{label}: sql `mode: continuous` keeps aggregates in keyed state, but the stream's state is disabled (state.enabled: false)");
            }
            let name = cfg.store.clone().unwrap_or_else(|| store_names.get(1).cloned().unwrap_or_else(|| "default".into()));
            store = store_names
                .iter()
                .position(|n| *n == name)
                .ok_or_else(|| anyhow::anyhow!("{label}: sql store `{name}` is not a state store of the stream (declare it in state.custom_keys)"))?
                as u16;
        }
        let windowed = windows_at_start(cfg, label, env, mode, checked.as_ref())?
            .map(|shape| (shape, env.event_time.as_ref().and_then(|e| e.field.clone()), stage as u16));
        let key = match (mode, &checked) {
            (SqlMode::Batch, _) => KeyNeed::None,
            // Grouped by the record key alone: routing by the record key keeps groups whole.
            (SqlMode::Continuous, Some(plan)) => match continuous::group_columns(plan) {
                Ok(c) if c == ["__key"] => KeyNeed::None,
                Ok(c) => KeyNeed::Fields(c),
                Err(e) => KeyNeed::Unknown(e),
            },
            (SqlMode::Continuous, None) => KeyNeed::Unknown("the GROUP BY columns of this continuous sql query could not be read before data arrives".into()),
        };
        let wanted = words.into_iter().filter(|n| *n == n.to_lowercase()).collect();
        Ok(SqlFactory { cfg: cfg.clone(), mode, store, declared, label: label.to_string(), key, windowed, wanted: Arc::new(wanted) })
    }

    pub fn mode(&self) -> SqlMode {
        self.mode
    }
}

/// Checks a query's windows at start: the continuous shape when the query is windowed. Refuses
/// window functions in batch mode, a window without `event_time:`, and `allowed_lateness_ms`
/// without a window.
fn windows_at_start(cfg: &SqlProcessorConfig, label: &str, env: &StreamEnv, mode: SqlMode, checked: Option<&LogicalPlan>) -> anyhow::Result<Option<Shape>> {
    let Some(plan) = checked else {
        if window::FUNCTIONS.iter().any(|f| cfg.query.to_ascii_lowercase().contains(&format!("{f}("))) {
            anyhow::bail!("{label}: a windowed sql query must be checked at start, and this one could not be planned (see the warning above); declare its columns with `schema:`");
        }
        return Ok(None);
    };
    let shape = match mode {
        SqlMode::Batch if window::plan_mentions_window(plan) => {
            anyhow::bail!("{label}: tumble() and hop() group a continuous query (`mode: continuous`, state enabled, GROUP BY <keys>, tumble(..)); this query runs in batch mode")
        }
        SqlMode::Batch => None,
        SqlMode::Continuous => Some(continuous::derive(plan).map_err(|e| anyhow::anyhow!("{label}: sql query: {e}"))?.1),
    };
    let shape = shape.filter(|s| s.window.is_some());
    match (&shape, cfg.allowed_lateness_ms) {
        (None, Some(_)) => {
            anyhow::bail!("{label}: `allowed_lateness_ms` applies to a windowed continuous query (GROUP BY <keys>, tumble(INTERVAL '1 minute'))")
        }
        (Some(_), _) if env.event_time.is_none() => {
            anyhow::bail!("{label}: a window closes when the stream's watermark passes it: add `event_time:` to the stream (docs/CONFIG.md, *Event time*)")
        }
        _ => Ok(shape),
    }
}

/// The logical plan of `query` over a table of `schema` (start-up checks only).
fn probe_logical(table: &str, query: &str, schema: &Arc<Schema>) -> anyhow::Result<LogicalPlan> {
    let ctx = datafusion::prelude::SessionContext::new();
    window::udfs().into_iter().for_each(|f| ctx.register_udf(f));
    let empty = datafusion::datasource::MemTable::try_new(schema.clone(), vec![vec![]])?;
    ctx.register_table(table, Arc::new(empty))?;
    let rt = tokio::runtime::Builder::new_current_thread().build()?;
    Ok(rt.block_on(ctx.state().create_logical_plan(query))?)
}

impl ProcessorFactory for SqlFactory {
    fn name(&self) -> &str {
        "sql"
    }
    fn key(&self) -> KeyNeed {
        self.key.clone()
    }
    /// A batch query keeps nothing between batches.
    fn keeps_state(&self) -> bool {
        self.mode == SqlMode::Continuous
    }
    /// A batch query runs whole blocks of JSON lines (the columnar lane).
    fn takes_lines(&self) -> bool {
        self.mode == SqlMode::Batch && self.windowed.is_none()
    }
    fn instantiate(&self, _: &crate::processor::ProcessorContext) -> anyhow::Result<Box<dyn Processor>> {
        let (t, q) = (&self.cfg.table_name, &self.cfg.query);
        Ok(Box::new(SqlProcessor {
            engine: match self.mode {
                SqlMode::Batch => Mode::Batch(engine::Engine::new(t, q)?),
                SqlMode::Continuous => Mode::Continuous(engine::Engine::new(t, q)?),
            },
            store: self.store,
            lane: codec::LaneSchema::new(self.declared.as_ref()),
            declared: self.declared.clone(),
            staging: Staging::default(),
            label: self.label.clone(),
            wanted: self.wanted.clone(),
            window: self.windowed.as_ref().map(|(shape, time_field, stage)| windowed::Windowed {
                lateness: self.cfg.allowed_lateness_ms.unwrap_or(0),
                stage: *stage,
                shape: shape.clone(),
                time_field: time_field.clone(),
                store: self.store,
                watermark: i64::MIN,
                index: Default::default(),
            }),
        }))
    }
}

enum Mode {
    Batch(engine::Engine<()>),
    Continuous(engine::Engine<Shape>),
}

pub struct SqlProcessor {
    engine: Mode,
    store: u16,
    declared: Option<Schema>,
    /// How blocks of JSON lines are typed (the columnar lane).
    lane: codec::LaneSchema,
    staging: Staging,
    label: String,
    window: Option<windowed::Windowed>,
    /// The lowercase words of the query that may name columns (`codec::fill_missing`).
    wanted: Arc<Vec<String>>,
}

/// A failed batch of the stage labelled `label`: `what` failed with `e`.
fn batch_err(label: &str, what: &str, e: impl std::fmt::Display) -> BatchError {
    BatchError { message: format!("{label}: sql: {what}: {e}"), policy: FailurePolicy::Fail }
}

/// A state call failed (borrows only the label, so it can be used while the staging is lent).
fn state_err(label: &str, e: impl std::fmt::Display) -> BatchError {
    batch_err(label, "state", e)
}

impl SqlProcessor {
    fn fail(&self, what: &str, e: impl std::fmt::Display) -> BatchError {
        batch_err(&self.label, what, e)
    }

    /// Continuous mode: merges the batch's partial aggregates into state; returns the upserts.
    fn accumulate(
        &mut self,
        ctx: &BatchCtx,
        table: datafusion::arrow::array::RecordBatch,
        state: &mut StateSlot,
        last: &Record,
    ) -> Result<Vec<Record>, BatchError> {
        let Mode::Continuous(engine) = &mut self.engine else { unreachable!("continuous engine") };
        let planned = engine.prepared(&table.schema(), continuous::derive);
        let p = planned.map_err(|e| self.fail("planning the query", e))?;
        let Mode::Continuous(engine) = &self.engine else { unreachable!("continuous engine") };
        let result = engine.run(&p, table).map_err(|e| self.fail("running the query", e))?;
        let rows = codec::to_value_rows(&result, &p.schema()).map_err(|e| self.fail("reading results", e))?;
        let shape = &p.shape;
        let st = state.as_mut().expect("worker state lent to processor");
        if let Some(w) = &mut self.window {
            let mut scope = st.scope(&mut self.staging, ctx.key_group, ctx.now_ms);
            for row in rows {
                if let Err(e) = w.merge_row(&mut scope, ctx.key_group, &row) {
                    self.staging.discard();
                    return Err(state_err(&self.label, e));
                }
            }
            st.commit(&mut self.staging, ctx.key_group, ctx.now_ms);
            return Ok(Vec::new()); // a window is emitted when it closes
        }
        let mut out = Vec::with_capacity(rows.len());
        {
            let mut scope = st.scope(&mut self.staging, ctx.key_group, ctx.now_ms);
            for row in rows {
                let (groups, partial) = row.split_at(shape.groups);
                let key = serde_json::to_vec(groups).expect("json");
                let old =
                    scope.get(self.store, &key).map_err(|e| state_err(&self.label, e))?.and_then(|v| serde_json::from_slice::<Vec<serde_json::Value>>(v).ok());
                let acc = continuous::merge(shape, old, partial);
                scope.put(self.store, key.clone(), serde_json::to_vec(&acc).expect("json")).map_err(|e| state_err(&self.label, e))?;
                let record_key = match groups {
                    [serde_json::Value::String(s)] => s.as_bytes().to_vec(),
                    _ => key,
                };
                out.push(Record {
                    key: Some(record_key),
                    value: Some(continuous::render(shape, groups, &acc)),
                    headers: vec![],
                    timestamp_ms: last.timestamp_ms,
                    partition: last.partition,
                    offset: last.offset,
                });
            }
        }
        st.commit(&mut self.staging, ctx.key_group, ctx.now_ms);
        Ok(out)
    }
}

impl Processor for SqlProcessor {
    fn name(&self) -> &str {
        "sql"
    }

    fn process(&mut self, ctx: &BatchCtx, records: &[Record], state: &mut StateSlot) -> Result<Vec<Outcome>, BatchError> {
        if records.first().is_some_and(codec::is_arrow) {
            return self.process_arrow(ctx, records, state);
        }
        let (good, bad) = codec::parse(records);
        let mut outcomes: Vec<Outcome> = (0..records.len()).map(|_| Outcome::Emit(Vec::new())).collect();
        for (i, why) in bad {
            let (code, message) = match why {
                codec::Rejected::NoValue => ("no-value", "record has no value".to_string()),
                codec::Rejected::NotAnObject(m) => ("bad-json", m),
            };
            outcomes[i] = Outcome::Fail(RecordError { class: crate::record::ErrorClass::InvalidInput, code: code.into(), message });
        }
        let (good, starts) = match &self.window {
            Some(w) => {
                let (good, starts) = w.split(good, records, &mut outcomes);
                (good, Some(starts))
            }
            None => (good, None),
        };
        let Some(&(last, _)) = good.last() else { return Ok(outcomes) };
        let mut table = codec::to_batch(&good, records, self.declared.as_ref()).map_err(|e| self.fail("decoding the batch's JSON", e))?;
        if self.declared.is_none() {
            table = codec::fill_missing(table, &self.wanted).map_err(|e| self.fail("decoding the batch's JSON", e))?;
        }
        if let Some(starts) = starts {
            table = window::expand(&table, &starts).map_err(|e| self.fail("assigning windows", e))?;
        }
        outcomes[last] = Outcome::Emit(self.query(ctx, table, state, &records[last])?);
        Ok(outcomes)
    }

    fn process_lines(&mut self, _: &BatchCtx, lines: &crate::lines::Lines) -> Option<Vec<datafusion::arrow::array::RecordBatch>> {
        let Mode::Batch(engine) = &mut self.engine else { return None };
        if self.window.is_some() {
            return None;
        }
        let mut table = codec::lines_table(&mut self.lane, lines, lines.object_offsets()?)?;
        if self.declared.is_none() {
            table = codec::fill_missing(table, &self.wanted).ok()?;
        }
        let p = engine.prepared(&table.schema(), as_written).ok()?;
        engine.run(&p, table).ok()
    }

    fn on_checkpoint(&mut self, _: u64, _: u32, _: i64, _: &mut StateSlot) -> Result<(), BatchError> {
        Ok(())
    }

    fn has_timers(&self) -> bool {
        self.window.is_some()
    }

    fn on_restore(&mut self, state: &WorkerState) {
        if let Some(w) = &mut self.window {
            w.restore(state);
        }
    }

    fn due_groups(&self, clock: Clock) -> Vec<u32> {
        match (&self.window, clock) {
            (Some(w), Clock::Event(t)) => w.due_groups(t),
            _ => Vec::new(),
        }
    }

    fn fire(&mut self, clock: Clock, _epoch: u64, now_ms: i64, state: &mut StateSlot) -> Result<Vec<Fired>, BatchError> {
        let (Some(w), Clock::Event(t)) = (&mut self.window, clock) else { return Ok(Vec::new()) };
        w.fire(t, now_ms, state, &mut self.staging).map_err(|e| state_err(&self.label, e))
    }
}

impl SqlProcessor {
    /// A batch of Arrow records (from `json_to_arrow`): their tables concatenated.
    fn process_arrow(&mut self, ctx: &BatchCtx, records: &[Record], state: &mut StateSlot) -> Result<Vec<Outcome>, BatchError> {
        let mut outcomes: Vec<Outcome> = (0..records.len()).map(|_| Outcome::Emit(Vec::new())).collect();
        let arrow: Vec<Record> = records.iter().filter(|r| codec::is_arrow(r)).cloned().collect();
        for (i, r) in records.iter().enumerate() {
            if !codec::is_arrow(r) {
                outcomes[i] = Outcome::Fail(RecordError {
                    class: crate::record::ErrorClass::InvalidInput,
                    code: "mixed".into(),
                    message: "a JSON record in a batch of Arrow records".into(),
                });
            }
        }
        let last = records.iter().rposition(codec::is_arrow).expect("first is arrow");
        let table = match &self.window {
            Some(w) => match w.arrow_table(records, &mut outcomes).map_err(|e| self.fail("reading Arrow records", e))? {
                Some(t) => t,
                None => return Ok(outcomes),
            },
            None => codec::from_arrow_records(&arrow).map_err(|e| self.fail("reading Arrow records", e))?,
        };
        outcomes[last] = Outcome::Emit(self.query(ctx, table, state, &records[last])?);
        Ok(outcomes)
    }

    /// Runs the query over `table`; returns the records to emit.
    fn query(
        &mut self,
        ctx: &BatchCtx,
        table: datafusion::arrow::array::RecordBatch,
        state: &mut StateSlot,
        last_rec: &Record,
    ) -> Result<Vec<Record>, BatchError> {
        let emitted = match matches!(self.engine, Mode::Continuous(_)) {
            true => self.accumulate(ctx, table, state, last_rec)?,
            false => {
                let Mode::Batch(engine) = &mut self.engine else { unreachable!("batch engine") };
                let planned = engine.prepared(&table.schema(), as_written);
                let p = planned.map_err(|e| self.fail("planning the query", e))?;
                let Mode::Batch(engine) = &self.engine else { unreachable!("batch engine") };
                let result = engine.run(&p, table).map_err(|e| self.fail("running the query", e))?;
                let r = last_rec;
                codec::result_records(&result, (r.timestamp_ms, r.partition, r.offset)).map_err(|e| self.fail("encoding results", e))?
            }
        };
        Ok(emitted)
    }
}

#[cfg(test)]
mod tests;
