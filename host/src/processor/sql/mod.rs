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
//! Start-up check: the query is planned against a placeholder table (every identifier of the
//! query as a nullable float column) so that DDL/DML and clauses continuous mode cannot keep are
//! refused before data flows. Records whose value is not a JSON object fail one by one
//! (`invalid-input`); the others go on. Results are attached to the batch's last good record.

mod codec;
pub mod codecs;
mod config;
mod continuous;
mod engine;

use crate::processor::{BatchCtx, BatchError, FailurePolicy, KeyNeed, Processor, ProcessorFactory, StateSlot};
use crate::record::{Outcome, Record, RecordError};
use crate::state::Staging;
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
}

/// Every word of `query` that could name a column, for the placeholder table: keywords included
/// (`key`, `value`, `date` are keywords and common field names; a surplus column is harmless),
/// unquoted words also lowercased (the planner's spelling of them).
fn identifiers(query: &str) -> Vec<String> {
    use datafusion::sql::sqlparser::{
        dialect::GenericDialect,
        tokenizer::{Token, Tokenizer},
    };
    let mut out: Vec<String> = Tokenizer::new(&GenericDialect {}, query)
        .tokenize()
        .unwrap_or_default()
        .into_iter()
        .flat_map(|t| match t {
            Token::Word(w) if w.quote_style.is_none() => vec![w.value.to_lowercase(), w.value],
            Token::Word(w) => vec![w.value],
            _ => vec![],
        })
        .collect();
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
    pub fn new(cfg: &SqlProcessorConfig, label: &str, store_names: &[String], state_enabled: bool) -> anyhow::Result<Self> {
        let declared = declared_schema(&cfg.schema);
        // The placeholder table: the declared columns, else every identifier as a nullable float.
        let mut fields: Vec<Field> = match &declared {
            Some(s) => s.fields().iter().map(|f| f.as_ref().clone()).collect(),
            None => identifiers(&cfg.query)
                .into_iter()
                .filter(|n| !codec::META_COLUMNS.contains(&n.as_str()))
                .map(|n| Field::new(n, DataType::Float64, true))
                .collect(),
        };
        fields.extend(codec::meta_fields());
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
            if let Some(plan) = &checked {
                continuous::derive(plan).map_err(|e| anyhow::anyhow!("{label}: sql query: {e}"))?;
            }
        }
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
        Ok(SqlFactory { cfg: cfg.clone(), mode, store, declared, label: label.to_string(), key })
    }

    pub fn mode(&self) -> SqlMode {
        self.mode
    }
}

/// The logical plan of `query` over a table of `schema` (start-up checks only).
fn probe_logical(table: &str, query: &str, schema: &Arc<Schema>) -> anyhow::Result<LogicalPlan> {
    let ctx = datafusion::prelude::SessionContext::new();
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
    fn instantiate(&self, _: &crate::processor::ProcessorContext) -> anyhow::Result<Box<dyn Processor>> {
        let (t, q) = (&self.cfg.table_name, &self.cfg.query);
        Ok(Box::new(SqlProcessor {
            engine: match self.mode {
                SqlMode::Batch => Mode::Batch(engine::Engine::new(t, q)?),
                SqlMode::Continuous => Mode::Continuous(engine::Engine::new(t, q)?),
            },
            store: self.store,
            declared: self.declared.clone(),
            staging: Staging::default(),
            label: self.label.clone(),
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
    staging: Staging,
    label: String,
}

impl SqlProcessor {
    fn fail(&self, what: &str, e: impl std::fmt::Display) -> BatchError {
        BatchError { message: format!("{}: sql: {what}: {e}", self.label), policy: FailurePolicy::Fail }
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
        let mut out = Vec::with_capacity(rows.len());
        {
            let mut scope = st.scope(&mut self.staging, ctx.key_group, ctx.now_ms);
            for row in rows {
                let (groups, partial) = row.split_at(shape.groups);
                let key = serde_json::to_vec(groups).expect("json");
                let old = scope
                    .get(self.store, &key)
                    .map_err(|e| BatchError { message: format!("{}: sql: state: {e}", self.label), policy: FailurePolicy::Fail })?
                    .and_then(|v| serde_json::from_slice::<Vec<serde_json::Value>>(v).ok());
                let acc = continuous::merge(shape, old, partial);
                scope
                    .put(self.store, key.clone(), serde_json::to_vec(&acc).expect("json"))
                    .map_err(|e| BatchError { message: format!("{}: sql: state: {e}", self.label), policy: FailurePolicy::Fail })?;
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
        let Some(&(last, _)) = good.last() else { return Ok(outcomes) };
        let table = codec::to_batch(&good, records, self.declared.as_ref()).map_err(|e| self.fail("decoding the batch's JSON", e))?;
        outcomes[last] = Outcome::Emit(self.query(ctx, table, state, &records[last])?);
        Ok(outcomes)
    }

    fn on_checkpoint(&mut self, _: u64, _: u32, _: i64, _: &mut StateSlot) -> Result<(), BatchError> {
        Ok(())
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
        let table = codec::from_arrow_records(&arrow).map_err(|e| self.fail("reading Arrow records", e))?;
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
                codec::to_json_rows(&result)
                    .map_err(|e| self.fail("encoding results", e))?
                    .into_iter()
                    .map(|v| Record { key: None, value: Some(v), headers: vec![], timestamp_ms: r.timestamp_ms, partition: r.partition, offset: r.offset })
                    .collect()
            }
        };
        Ok(emitted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::WorkerState;

    fn cfg(query: &str, mode: Option<SqlMode>) -> SqlProcessorConfig {
        SqlProcessorConfig { query: query.into(), table_name: "flow".into(), mode, store: None, schema: vec![] }
    }

    fn stores() -> Vec<String> {
        vec!["default".into(), "user_counts".into()]
    }

    fn processor(query: &str, mode: Option<SqlMode>) -> (SqlFactory, Box<dyn Processor>) {
        let f = SqlFactory::new(&cfg(query, mode), "p", &stores(), true).unwrap();
        let p = f.instantiate(&crate::processor::ProcessorContext { stream: "t".into(), worker: 0, pipeline: Default::default() }).unwrap();
        (f, p)
    }

    fn recs(vals: &[&str]) -> Vec<Record> {
        vals.iter()
            .enumerate()
            .map(|(i, v)| Record { key: Some(b"k".to_vec()), value: Some(v.as_bytes().to_vec()), offset: i as u64, ..Default::default() })
            .collect()
    }

    fn ctx(batch_id: u64) -> BatchCtx {
        BatchCtx { batch_id, key_group: 3, partition: 0, epoch: 1, now_ms: 1000 }
    }

    fn emitted(out: &[Outcome]) -> Vec<serde_json::Value> {
        out.iter()
            .flat_map(|o| match o {
                Outcome::Emit(v) => v.iter().map(|r| serde_json::from_slice(r.value.as_deref().unwrap()).unwrap()).collect(),
                _ => vec![],
            })
            .collect()
    }

    #[test]
    fn batch_mode_projects_and_filters_each_batch_with_metadata_columns() {
        let (f, mut p) = processor("SELECT user_id, amount * 2 AS double, __offset FROM flow WHERE amount > 10", None);
        assert_eq!(f.mode(), SqlMode::Batch, "no GROUP BY: batch mode");
        let mut slot: StateSlot = Some(Box::new(WorkerState::new(stores(), None, Default::default())));
        let batch = recs(&[r#"{"user_id":"a","amount":5}"#, r#"{"user_id":"b","amount":20}"#, "not json", r#"{"user_id":"c","amount":11.5}"#]);
        let out = p.process(&ctx(1), &batch, &mut slot).unwrap();
        assert_eq!(out.len(), 4, "one outcome per input record");
        assert!(matches!(&out[2], Outcome::Fail(e) if e.code == "bad-json"), "{:?}", out[2]);
        let rows = emitted(&out);
        assert_eq!(rows, vec![serde_json::json!({"user_id":"b","double":40.0,"__offset":1}), serde_json::json!({"user_id":"c","double":23.0,"__offset":3})]);
        // A second batch with another schema is planned again and still right.
        let out = p.process(&ctx(2), &recs(&[r#"{"user_id":"d","amount":30,"extra":true}"#]), &mut slot).unwrap();
        assert_eq!(emitted(&out), vec![serde_json::json!({"user_id":"d","double":60,"__offset":0})]);
    }

    #[test]
    fn continuous_group_by_accumulates_in_state_across_batches() {
        let (f, mut p) = processor("SELECT user_id, COUNT(*), SUM(amount) AS total, AVG(amount) AS mean FROM flow GROUP BY user_id", None);
        assert_eq!(f.mode(), SqlMode::Continuous, "state on + GROUP BY: continuous");
        let mut slot: StateSlot = Some(Box::new(WorkerState::new(stores(), None, Default::default())));
        p.process(&ctx(1), &recs(&[r#"{"user_id":"a","amount":1}"#, r#"{"user_id":"b","amount":2}"#, r#"{"user_id":"a","amount":3}"#]), &mut slot).unwrap();
        let out = p.process(&ctx(2), &recs(&[r#"{"user_id":"a","amount":6}"#]), &mut slot).unwrap();
        let rows = emitted(&out);
        assert_eq!(rows.len(), 1, "only the changed group is emitted: {rows:?}");
        assert_eq!(rows[0]["user_id"], "a");
        assert_eq!(rows[0]["count(*)"], 3, "running total over both batches: {}", rows[0]);
        assert_eq!(rows[0]["total"], 10);
        assert_eq!(rows[0]["mean"].as_f64().unwrap(), 10.0 / 3.0);
        let st = slot.as_ref().unwrap();
        assert!(st.peek(3, "user_counts", br#"["a"]"#).is_some(), "kept in the custom_keys store, under the batch's key group");
    }

    fn codec(direction: codecs::Direction) -> Box<dyn Processor> {
        let f = codecs::CodecFactory { direction, declared: None, label: "c".into() };
        f.instantiate(&crate::processor::ProcessorContext { stream: "t".into(), worker: 0, pipeline: Default::default() }).unwrap()
    }

    fn records_out(out: Vec<Outcome>) -> Vec<Record> {
        out.into_iter()
            .flat_map(|o| match o {
                Outcome::Emit(v) => v,
                _ => vec![],
            })
            .collect()
    }

    #[test]
    fn json_to_arrow_and_back_round_trips_and_sql_reads_arrow_records() {
        let mut slot: StateSlot = Some(Box::new(WorkerState::new(stores(), None, Default::default())));
        let input = recs(&[r#"{"user_id":"a","amount":5}"#, r#"{"user_id":"b","amount":20.5}"#, "[1]"]);
        let out = codec(codecs::Direction::JsonToArrow).process(&ctx(1), &input, &mut slot).unwrap();
        assert!(matches!(&out[2], Outcome::Fail(e) if e.code == "bad-json"));
        let arrow = records_out(out);
        assert_eq!(arrow.len(), 1, "one Arrow record per batch");
        assert!(codec::is_arrow(&arrow[0]));
        let back = records_out(codec(codecs::Direction::ArrowToJson).process(&ctx(2), &arrow, &mut slot).unwrap());
        let vals: Vec<serde_json::Value> = back.iter().map(|r| serde_json::from_slice(r.value.as_deref().unwrap()).unwrap()).collect();
        assert_eq!(vals, vec![serde_json::json!({"user_id":"a","amount":5.0}), serde_json::json!({"user_id":"b","amount":20.5})]);
        assert_eq!((back[1].key.as_deref(), back[1].offset), (Some(&b"k"[..]), 1), "metadata columns restore key and offset");
        let not_arrow = codec(codecs::Direction::ArrowToJson).process(&ctx(3), &input[..1], &mut slot).unwrap();
        assert!(matches!(&not_arrow[0], Outcome::Fail(e) if e.code == "not-arrow"));
        let (_, mut p) = processor("SELECT user_id FROM flow WHERE amount > 10", None);
        let rows = emitted(&p.process(&ctx(4), &arrow, &mut slot).unwrap());
        assert_eq!(rows, vec![serde_json::json!({"user_id":"b"})]);
    }

    #[test]
    fn continuous_mode_refuses_what_it_cannot_keep_naming_the_clause() {
        for (q, clause) in [
            ("SELECT user_id, COUNT(*) FROM flow GROUP BY user_id HAVING COUNT(*) > 1", "HAVING"),
            ("SELECT user_id, COUNT(*) FROM flow GROUP BY user_id ORDER BY user_id", "ORDER BY"),
            ("SELECT user_id, COUNT(DISTINCT amount) FROM flow GROUP BY user_id", "COUNT(DISTINCT"),
            ("SELECT user_id, MEDIAN(amount) FROM flow GROUP BY user_id", "MEDIAN()"),
            ("SELECT user_id, COUNT(*) + 1 FROM flow GROUP BY user_id", "expression over the aggregates"),
            ("SELECT COUNT(*) FROM flow", "needs GROUP BY"),
        ] {
            let e = SqlFactory::new(&cfg(q, Some(SqlMode::Continuous)), "streams[s].pipeline.processors[0]", &stores(), true)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(e.contains(clause) && e.contains("processors[0]"), "{q}: {e}");
        }
        let e = SqlFactory::new(&cfg("DROP TABLE flow", None), "p", &stores(), true).err().unwrap().to_string();
        assert!(e.contains("not allowed"), "{e}");
        let e = SqlFactory::new(&cfg("SELEC user_id FROM flow", None), "p", &stores(), true).err().unwrap().to_string();
        assert!(e.contains("does not parse"), "{e}");
        let e = SqlFactory::new(&cfg("SELECT user_id, COUNT(*) FROM flow GROUP BY user_id", Some(SqlMode::Continuous)), "p", &stores(), false)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("state is disabled"), "{e}");
        // Batch mode keeps any query.
        SqlFactory::new(&cfg("SELECT user_id, COUNT(*) FROM flow GROUP BY user_id ORDER BY user_id LIMIT 3", Some(SqlMode::Batch)), "p", &stores(), true)
            .unwrap();
        let _ = SqlType::Int;
    }
}
