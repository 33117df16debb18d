//! Bench binary for the `sql` processor, interleaved per round so all runs see the same load:
//! (A) generate -> sql projection/filter (batch mode) -> drop through the engine, next to (B) a
//! plain DataFusion baseline over the same records in the same 1,024-record batches (decode the
//! JSON with arrow-json, register the batch, `ctx.sql(query)`, collect: per-batch planning, as a
//! pipeline without a reusable plan does it); (C) continuous GROUP BY over 1,000,000 records with
//! 100,000 groups (state in RAM, no checkpoints) -> drop.
//!
//! Run: `cargo bench --bench sql` (env: BENCH_RECORDS, default 1,000,000; BENCH_ROUNDS, default 3).

#[path = "common/mod.rs"]
mod common;

use arkflow::config::EngineConfig;
use std::sync::Arc;
use std::time::Instant;

const FILTER: &str = "SELECT key, id, payload FROM flow WHERE id % 2 = 0";

fn run(yaml: &str) -> (f64, u64) {
    let cfg = EngineConfig::from_yaml_str(yaml, None).expect("bench config");
    let (rate, report) = common::run_stream(&cfg);
    (rate, report.records_out)
}

fn pipeline(n: u64, query: &str, state: bool) -> String {
    format!(
        "streams:\n  - name: sql\n    input: {{ type: generate, count: {n}, keys: 100000, payload_bytes: 16, seed: 1, batch_size: 1024 }}\n    pipeline:\n      thread_num: 1\n      batch_size: 1024\n      processors:\n        - {{ type: sql, query: \"{query}\" }}\n    output: {{ type: drop }}\n    state: {{ enabled: {state} }}\n"
    )
}

/// The same records as the generate input, in batches of 1,024 JSON lines.
fn batches(n: u64) -> Vec<Vec<u8>> {
    let cfg = arkflow::connectors::input::GenerateConfig { count: Some(n), keys: 100_000, payload_bytes: 16, seed: 1, batch_size: 1024, ..Default::default() };
    let mut input = arkflow::connectors::input::GenerateInput::new(cfg);
    let mut out = Vec::new();
    use arkflow::connectors::input::Input;
    while let Some(b) = input.next_batch().unwrap() {
        let mut text = Vec::new();
        for r in b {
            text.extend_from_slice(r.value.as_deref().unwrap());
            text.push(b'\n');
        }
        out.push(text);
    }
    out
}

fn datafusion_baseline(batches: &[Vec<u8>], n: u64) -> f64 {
    use datafusion::prelude::*;
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let ctx = SessionContext::new_with_config(SessionConfig::new().with_target_partitions(1));
    let start = Instant::now();
    let mut rows = 0;
    for text in batches {
        let (schema, _) = arrow_json::reader::infer_json_schema(std::io::Cursor::new(text), None).unwrap();
        let mut reader = arrow_json::ReaderBuilder::new(Arc::new(schema)).with_batch_size(2048).build(std::io::Cursor::new(text)).unwrap();
        let batch = reader.next().unwrap().unwrap();
        let _ = ctx.deregister_table("flow");
        ctx.register_batch("flow", batch).unwrap();
        let out = rt.block_on(async { ctx.sql(FILTER).await.unwrap().collect().await.unwrap() });
        rows += out.iter().map(|b| b.num_rows()).sum::<usize>();
    }
    assert_eq!(rows as u64, n / 2);
    n as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return;
    }
    let n: u64 = std::env::var("BENCH_RECORDS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let rounds: usize = std::env::var("BENCH_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(3);
    let data = batches(n);
    let (mut a, mut b, mut c) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        let (ra, out) = run(&pipeline(n, FILTER, false));
        assert_eq!(out, n / 2, "the filter keeps even ids");
        let rb = datafusion_baseline(&data, n);
        let (rc, _) = run(&pipeline(n, "SELECT key, COUNT(*) FROM flow GROUP BY key", true));
        println!("round {round}: engine sql filter {ra:.0} rec/s | plain DataFusion per batch {rb:.0} rec/s | ratio {:.2} | continuous GROUP BY (100k groups) {rc:.0} rec/s", ra / rb);
        a.push(ra);
        b.push(rb);
        c.push(rc);
    }
    let (ma, mb, mc) = (common::median(&mut a), common::median(&mut b), common::median(&mut c));
    println!("median of {rounds}: engine {ma:.0} rec/s, plain DataFusion {mb:.0} rec/s (ratio {:.2}); continuous GROUP BY {mc:.0} rec/s", ma / mb);
}
