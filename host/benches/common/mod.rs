//! What every bench binary shares: running one built stream to its end with records/s, and the
//! median of a round's figures. Included with `#[path]` (bench targets are separate crates).
#![allow(dead_code)]

use arkflow::config::EngineConfig;
use arkflow::engine::{self, StreamReport};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

/// Builds and runs the config's first stream to its end; records in per second, and the report.
/// Panics when the stream failed.
pub fn run_stream(cfg: &EngineConfig) -> (f64, StreamReport) {
    let stream = engine::build_stream(cfg, &cfg.streams[0]).expect("build");
    let start = Instant::now();
    let report = stream.run(Arc::new(AtomicBool::new(false)));
    let secs = start.elapsed().as_secs_f64();
    assert!(report.failure.is_none(), "{:?}", report.failure);
    (report.records_in as f64 / secs, report)
}

/// The median of `v` (upper middle for an even count).
pub fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}
