//! `arkflow plugin test`: runs one processor plugin over a fixture of JSON lines in the real
//! sandbox, with in-memory keyed state, and says what became of every record.
//!
//! Contract: the fixture is read by the `file` input (one JSON value per line, blank lines
//! skipped, `key_field` as in a stream's YAML), cut into batches of `batch_size`, and every batch
//! goes through one instance of the plugin in key group 0 with the plugin's `config`, exactly as a
//! worker runs it (staged writes, retries, the plugin's limits). The report prints each record's
//! outcome (emitted values, failures with class and code), the state entries each batch changed
//! (decoded by the store's declared format) and a summary. With `expect`, the emitted values must
//! equal the expected file's lines (compared as JSON when both parse, else as text), else the
//! report ends with a line-by-line diff and the test fails. With `checkpoint_every: N`, the
//! fixture runs a second time with a checkpoint after every N records (`on-checkpoint`, a snapshot
//! of the state, a fresh instance restored from it): any difference from the first run fails the
//! test, naming the first record that differs: the plugin keeps something in guest memory that
//! it does not write to state. The metrics the plugin reported during the first run follow its
//! report (`metric <name>: <kind> <value>`); its log lines go through the host's log (stderr, as
//! they happen: `arkflow plugin test` shows them from level debug). Timers do not fire here.

pub mod bench;

use crate::config::EngineConfig;
use crate::connectors::registry::{open_input, SourceCx};
use crate::processor::wasm::obs::Value;
use crate::processor::wasm::{PluginInfo, WasmFactory, WasmProcessorConfig};
use crate::processor::{BatchCtx, Processor, ProcessorContext, ProcessorFactory, StateSlot};
use crate::record::{Outcome, Record};
use crate::state::{StateLimits, WorkerState};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;

/// What to run.
#[derive(Debug, Clone, Default)]
pub struct PluginTest {
    pub plugin: PathBuf,
    pub input: PathBuf,
    pub expect: Option<PathBuf>,
    /// The plugin's `config` entries.
    pub config: Vec<(String, String)>,
    /// The JSON field whose value is the record key (none: records have no key).
    pub key_field: Option<String>,
    pub batch_size: usize,
    pub checkpoint_every: Option<usize>,
    /// Print only the summary, state changes and failures, not every record's outcome.
    pub quiet: bool,
    /// State to start from: `{"<store>": {"<key>": value}}`, each value in its store's declared
    /// format (`i64`: an integer; `utf8`: a string; `json`: any JSON; `bytes`: a hex string).
    pub state: Option<PathBuf>,
}

/// One record's outcome, as the report shows and compares it.
#[derive(Debug, Clone, PartialEq)]
enum Seen {
    Emit(Vec<String>),
    Fail(String),
    Drop,
}

/// The outcomes of one run over the fixture, and its report so far.
struct Run {
    seen: Vec<Seen>,
    report: String,
}

/// Runs the test; the report goes to `out`. Ok(true): passed.
pub fn run(t: &PluginTest, out: &mut dyn std::io::Write) -> anyhow::Result<bool> {
    let (factory, records) = load(t)?;
    let info = factory.info().clone();
    writeln!(out, "plugin {} ({}@{}, ABI {}): {} records from {}", t.plugin.display(), info.name, info.version, info.abi, records.len(), t.input.display())?;
    let plain = pass(&factory, &info, &records, t, None)?;
    out.write_all(plain.report.as_bytes())?;
    for (name, _, value) in factory.plugin_metrics() {
        let value = match value {
            Value::Counter(n) => format!("counter {n}"),
            Value::Gauge(x) => format!("gauge {x}"),
            Value::Histogram(_, sum, count) => format!("histogram count {count} sum {sum}"),
        };
        writeln!(out, "  metric {name}: {value}")?;
    }
    let mut ok = plain.report.lines().all(|l| !l.starts_with("batch failed"));
    if let Some(n) = t.checkpoint_every {
        let again = pass(&factory, &info, &records, t, Some(n.max(1)))?;
        match plain.seen.iter().zip(&again.seen).position(|(a, b)| a != b) {
            None if plain.seen.len() == again.seen.len() => writeln!(out, "checkpoint + restore every {n} records: same outcomes")?,
            at => {
                ok = false;
                let i = at.unwrap_or(plain.seen.len().min(again.seen.len()));
                writeln!(out, "checkpoint + restore every {n} records CHANGED the outcomes, first at record {i}:")?;
                writeln!(out, "  without checkpoints: {}", show(plain.seen.get(i)))?;
                writeln!(out, "  restored from state: {}", show(again.seen.get(i)))?;
                writeln!(out, "  the plugin keeps something in guest memory that it does not write to state (guest memory does not survive a restart: write it in on-checkpoint, or keep it in state)")?;
            }
        }
    }
    if let Some(path) = &t.expect {
        let want = std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("cannot read --expect {}: {e}", path.display()))?;
        let got: Vec<&str> = plain.seen.iter().flat_map(|s| if let Seen::Emit(v) = s { v.as_slice() } else { &[] }).map(String::as_str).collect();
        let diff = diff(&want.lines().filter(|l| !l.trim().is_empty()).collect::<Vec<_>>(), &got);
        match diff {
            None => writeln!(out, "expected output {}: same ({} records)", path.display(), got.len())?,
            Some(d) => {
                ok = false;
                writeln!(out, "expected output {} differs:\n{d}", path.display())?;
            }
        }
    }
    writeln!(out, "{}", if ok { "PASS" } else { "FAIL" })?;
    Ok(ok)
}

/// The plugin, loaded once (its declared state stores are the stream's), and the fixture's
/// records, both read from the test as a one-stream engine config, so they are read and
/// checked exactly as a stream's YAML would be.
pub(super) fn load(t: &PluginTest) -> anyhow::Result<(WasmFactory, Vec<Record>)> {
    let cfg = EngineConfig::from_yaml_str(&yaml(t)?, None)?;
    let wasm = cfg.streams[0].pipeline.processors[0].get::<WasmProcessorConfig>().expect("a wasm processor");
    Ok((WasmFactory::load_declaring_stores(wasm, "plugin")?, read_fixture(&cfg)?))
}

/// Loads `plugin` as a stream would (the WIT world, `describe()`, its declared stores), without
/// instantiating it: `arkflow plugin build`'s check.
pub fn load_plugin(plugin: &std::path::Path) -> anyhow::Result<WasmFactory> {
    let t = PluginTest { plugin: plugin.to_path_buf(), input: PathBuf::from("/dev/null"), batch_size: 1, ..Default::default() };
    let cfg = EngineConfig::from_yaml_str(&yaml(&t)?, None)?;
    WasmFactory::load_declaring_stores(cfg.streams[0].pipeline.processors[0].get::<WasmProcessorConfig>().expect("a wasm processor"), "plugin")
}

fn yaml(t: &PluginTest) -> anyhow::Result<String> {
    let s = |v: &str| serde_json::to_string(v).expect("a string serializes");
    let path = |p: &std::path::Path| std::path::absolute(p).map(|p| s(&p.display().to_string()));
    let config: Vec<String> = t.config.iter().map(|(k, v)| format!("{}: {}", s(k), s(v))).collect();
    let key_field = t.key_field.as_deref().map(|k| format!(", key_field: {}", s(k))).unwrap_or_default();
    Ok(format!(
        "state_management: {{ enabled: true, backend_type: memory }}\nstreams:\n  - name: plugin-test\n    input: {{ type: file, path: {input}, batch_size: {bs}{key_field} }}\n    pipeline:\n      thread_num: 1\n      processors:\n        - {{ type: wasm, path: {plugin}, config: {{ {config} }} }}\n    output: {{ type: drop }}\n    state: {{ operator_id: plugin-test, enabled: true }}\n",
        input = path(&t.input)?,
        bs = t.batch_size.max(1),
        plugin = path(&t.plugin)?,
        config = config.join(", "),
    ))
}

/// Every record of the fixture, in order.
fn read_fixture(cfg: &EngineConfig) -> anyhow::Result<Vec<Record>> {
    let stream = &cfg.streams[0];
    let cx = SourceCx { stream: &stream.name, checkpoints: false, default_group: "plugin-test", kafka: Arc::default() };
    let mut input = open_input(&stream.input, &cx)?;
    let mut all = Vec::new();
    while let Some(batch) = input.next_batch()? {
        all.extend(batch);
    }
    Ok(all)
}

/// The state's entries (store, key) -> value.
type Entries = BTreeMap<(String, Vec<u8>), Vec<u8>>;

fn entries(state: &StateSlot) -> Entries {
    let Some(st) = state.as_ref() else { return Entries::new() };
    st.full_snapshot().into_iter().filter_map(|e| Some(((e.store, e.key), e.value?))).collect()
}

/// One run over the fixture: batches of `t.batch_size`, a checkpoint and restore after every
/// `checkpoint_every` records when set.
fn pass(factory: &WasmFactory, info: &PluginInfo, records: &[Record], t: &PluginTest, checkpoint_every: Option<usize>) -> anyhow::Result<Run> {
    let mut start = empty_state(factory.store_names());
    if let Some(path) = &t.state {
        for e in initial_state(path, info)? {
            start.restore(e).map_err(|e| anyhow::anyhow!("--state {}: {e}", path.display()))?;
        }
    }
    let mut state: StateSlot = Some(Box::new(start));
    let cx = ProcessorContext { stream: "plugin-test".into(), worker: 0, pipeline: Arc::default() };
    let mut proc = factory.instantiate(&cx)?;
    let mut run = Run { seen: Vec::with_capacity(records.len()), report: String::new() };
    let quiet = t.quiet || checkpoint_every.is_some();
    let size = checkpoint_every.map_or(t.batch_size, |n| n.min(t.batch_size)).max(1);
    let (mut epoch, mut since) = (1u64, 0usize);
    for (b, batch) in records.chunks(size).enumerate() {
        let before = entries(&state);
        let ctx = BatchCtx { batch_id: b as u64 + 1, key_group: 0, partition: 0, epoch, now_ms: crate::util::time::now_ms() };
        let outcomes = match proc.process(&ctx, batch, &mut state) {
            Ok(o) => o,
            Err(e) => {
                let _ = writeln!(run.report, "batch failed (records {}..{}): {}", b * size, b * size + batch.len(), e.message);
                let _ = writeln!(run.report, "{}", locate(factory, &cx, &state, batch, b * size));
                break;
            }
        };
        for (i, (r, o)) in batch.iter().zip(&outcomes).enumerate() {
            let seen = seen(o);
            if !quiet || matches!(seen, Seen::Fail(_)) {
                let _ = writeln!(run.report, "#{} {} -> {}", b * size + i, show_record(r), show(Some(&seen)));
            }
            run.seen.push(seen);
        }
        if checkpoint_every.is_none() {
            state_changes(&before, &entries(&state), info, &mut run.report);
        }
        since += batch.len();
        if checkpoint_every.is_some_and(|n| since >= n) {
            (proc, state) = checkpoint_and_restore(factory, &cx, proc, state, epoch)?;
            (epoch, since) = (epoch + 1, 0);
        }
    }
    if checkpoint_every.is_none() {
        run.report += &summary(&run.seen, &state);
    }
    Ok(run)
}

/// The record a failed batch fails on: the batch again, one record at a time, in a fresh
/// instance over a copy of the state (the failed batch changed none).
fn locate(factory: &WasmFactory, cx: &ProcessorContext, state: &StateSlot, batch: &[Record], first: usize) -> String {
    let mut copy: StateSlot = state.as_deref().map(|st| Box::new(copy_of(st)));
    let Ok(mut proc) = factory.instantiate(cx) else { return "  (the plugin did not instantiate again to find the record)".into() };
    for (i, r) in batch.iter().enumerate() {
        let ctx = BatchCtx { batch_id: i as u64 + 1, key_group: 0, partition: 0, epoch: 1, now_ms: crate::util::time::now_ms() };
        if proc.process(&ctx, std::slice::from_ref(r), &mut copy).is_err() {
            return format!(
                "  the batch fails at record {} (index {i} in its batch), run alone after the ones before it: {}",
                first + i,
                crate::processor::wasm::locate::head(r.value.as_deref().unwrap_or_default())
            );
        }
    }
    "  no record fails on its own: the failure depends on the batch as a whole".into()
}

/// The entries of a `--state` file (see [`PluginTest::state`]), in key group 0.
fn initial_state(path: &std::path::Path, info: &PluginInfo) -> anyhow::Result<Vec<crate::state::snapshot::SnapshotEntry>> {
    let at = |m: String| anyhow::anyhow!("--state {}: {m}", path.display());
    let text = std::fs::read_to_string(path).map_err(|e| at(format!("cannot read: {e}")))?;
    let doc: serde_json::Value = serde_json::from_str(&text).map_err(|e| at(format!("not JSON: {e}")))?;
    let stores = doc.as_object().ok_or_else(|| at("expected an object of stores, {\"default\": {\"key\": value}}".into()))?;
    let mut out = Vec::new();
    for (store, entries) in stores {
        if store != "default" && !info.state_stores.contains(store) {
            return Err(at(format!("store `{store}` is not one the plugin declares ({:?})", info.state_stores)));
        }
        let format = info.state_formats.iter().find(|(s, _)| s == store).map_or("bytes", |(_, f)| f.as_str());
        let entries = entries.as_object().ok_or_else(|| at(format!("store `{store}`: expected an object of key: value")))?;
        for (key, v) in entries {
            let value = encode(v, format).ok_or_else(|| at(format!("store `{store}` key `{key}`: {v} is not a {format} value")))?;
            out.push(crate::state::snapshot::SnapshotEntry {
                group: 0,
                store: store.clone(),
                key: key.as_bytes().to_vec(),
                value: Some(value),
                written_ms: crate::util::time::now_ms(),
            });
        }
    }
    Ok(out)
}

/// A JSON value as the bytes of a store of `format`.
fn encode(v: &serde_json::Value, format: &str) -> Option<Vec<u8>> {
    match format {
        "i64" => v.as_i64().map(|n| n.to_le_bytes().to_vec()),
        "utf8" => v.as_str().map(|s| s.as_bytes().to_vec()),
        "json" => Some(v.to_string().into_bytes()),
        _ => {
            let hex = v.as_str()?;
            (hex.len() % 2 == 0).then_some(())?;
            (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok()).collect()
        }
    }
}

/// `on-checkpoint`, a snapshot of the state, and a fresh instance with the state restored from it.
fn checkpoint_and_restore(
    factory: &WasmFactory,
    cx: &ProcessorContext,
    mut proc: Box<dyn Processor>,
    mut state: StateSlot,
    epoch: u64,
) -> anyhow::Result<(Box<dyn Processor>, StateSlot)> {
    proc.on_checkpoint(epoch, 0, crate::util::time::now_ms(), &mut state)
        .map_err(|e| anyhow::anyhow!("on-checkpoint failed at epoch {epoch}: {}", e.message))?;
    drop(proc);
    let fresh = state.as_deref().map(|st| Box::new(copy_of(st)));
    Ok((factory.instantiate(cx)?, fresh))
}

/// Empty state with these stores, no TTL, the default limits (what a fresh worker starts with).
pub(super) fn empty_state(stores: &[String]) -> WorkerState {
    WorkerState::new(stores.to_vec(), None, StateLimits::default())
}

/// A state restored from a full snapshot of `st` (what a restart from a checkpoint holds).
fn copy_of(st: &WorkerState) -> WorkerState {
    let mut c = empty_state(st.store_names());
    st.full_snapshot().into_iter().for_each(|e| c.restore(e).expect("a snapshot of the same stores restores"));
    c
}

fn summary(seen: &[Seen], state: &StateSlot) -> String {
    let count = |f: fn(&Seen) -> bool| seen.iter().filter(|s| f(s)).count();
    let emitted: usize = seen.iter().map(|s| if let Seen::Emit(v) = s { v.len() } else { 0 }).sum();
    format!(
        "{} records: {} emitted {emitted} records, {} failed, {} dropped; state holds {} entries\n",
        seen.len(),
        count(|s| matches!(s, Seen::Emit(_))),
        count(|s| matches!(s, Seen::Fail(_))),
        count(|s| matches!(s, Seen::Drop)),
        entries(state).len()
    )
}

fn seen(o: &Outcome) -> Seen {
    let text = |r: &Record| r.value.as_deref().map_or_else(|| "(tombstone)".to_string(), |v| String::from_utf8_lossy(v).into_owned());
    match o {
        Outcome::Emit(v) if v.is_empty() => Seen::Drop,
        Outcome::Drop => Seen::Drop,
        Outcome::Fail(e) => Seen::Fail(e.to_string()),
        o => Seen::Emit(o.emitted().map(text).collect()),
    }
}

fn show(s: Option<&Seen>) -> String {
    match s {
        None => "(no outcome)".into(),
        Some(Seen::Emit(v)) => format!("emit {}", v.join(" | ")),
        Some(Seen::Fail(e)) => format!("FAIL {e}"),
        Some(Seen::Drop) => "drop".into(),
    }
}

fn show_record(r: &Record) -> String {
    let key = r.key.as_deref().map_or_else(|| "-".to_string(), |k| String::from_utf8_lossy(k).into_owned());
    let value = r.value.as_deref().map_or_else(String::new, |v| String::from_utf8_lossy(&v[..v.len().min(80)]).into_owned());
    format!("key={key} {value}")
}

/// The entries one batch changed, each value decoded by its store's declared format.
fn state_changes(before: &Entries, after: &Entries, info: &PluginInfo, report: &mut String) {
    let fmt = |store: &str, v: Option<&Vec<u8>>| match v {
        None => "(none)".to_string(),
        Some(v) => crate::state::show_value(info.state_formats.iter().find(|(s, _)| s == store).map_or("bytes", |(_, f)| f.as_str()), v),
    };
    for k in before.keys().chain(after.keys().filter(|k| !before.contains_key(*k))) {
        let (a, b) = (before.get(k), after.get(k));
        if a != b {
            let _ = writeln!(report, "  state {} {}: {} -> {}", k.0, String::from_utf8_lossy(&k.1), fmt(&k.0, a), fmt(&k.0, b));
        }
    }
}

/// A line-by-line diff of the expected and emitted values (JSON compared as values), or None
/// when they are the same.
fn diff(want: &[&str], got: &[&str]) -> Option<String> {
    let same = |a: &str, b: &str| match (serde_json::from_str::<serde_json::Value>(a), serde_json::from_str::<serde_json::Value>(b)) {
        (Ok(x), Ok(y)) => x == y,
        _ => a.trim() == b.trim(),
    };
    let mut out = String::new();
    let mut shown = 0;
    for i in 0..want.len().max(got.len()) {
        let (w, g) = (want.get(i), got.get(i));
        if matches!((w, g), (Some(w), Some(g)) if same(w, g)) {
            continue;
        }
        shown += 1;
        if shown <= 20 {
            let _ = writeln!(out, "  line {}:\n    - expected {}\n    + got      {}", i + 1, w.unwrap_or(&"(nothing)"), g.unwrap_or(&"(nothing)"));
        }
    }
    if shown > 20 {
        let _ = writeln!(out, "  ... and {} more differing lines", shown - 20);
    }
    (shown > 0).then(|| format!("{out}  {shown} of {} lines differ ({} expected, {} emitted)", want.len().max(got.len()), want.len(), got.len()))
}
