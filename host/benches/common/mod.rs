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

/// CPU seconds (user + system, all threads) this process has used so far, from /proc/self/stat.
pub fn cpu_secs() -> f64 {
    let (user, sys) = cpu_user_sys();
    user + sys
}

/// (user, system) CPU seconds of this process so far.
pub fn cpu_user_sys() -> (f64, f64) {
    cpu_user_sys_of("self").expect("/proc/self/stat")
}

/// CPU seconds (user + system, all threads) of process `pid` so far; 0 when it is gone.
pub fn cpu_secs_of(pid: u32) -> f64 {
    cpu_user_sys_of(&pid.to_string()).map_or(0.0, |(u, s)| u + s)
}

fn cpu_user_sys_of(pid: &str) -> Option<(f64, f64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name: state is field 3, utime 14, stime 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let t = clock_ticks();
    Some((f[11].parse::<f64>().ok()? / t, f[12].parse::<f64>().ok()? / t))
}

fn clock_ticks() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf").arg("CLK_TCK").output().ok().and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok()).unwrap_or(100.0)
    })
}

/// The number in environment variable `name`, or `default` when it is unset or not a number.
pub fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Runs `a` and `b` in an order that alternates with `round` (a first in even rounds), so neither
/// side always runs on a machine warmed or loaded by the other; returns their results as (a, b).
pub fn alternate<A, B>(round: u64, a: impl FnOnce() -> A, b: impl FnOnce() -> B) -> (A, B) {
    if round.is_multiple_of(2) {
        let x = a();
        (x, b())
    } else {
        let y = b();
        (a(), y)
    }
}

/// Writes `n` lines to `path`, line `i` being `line(i)` (the input files the benches read).
pub fn write_lines(path: &std::path::Path, n: u64, line: impl Fn(u64) -> String) {
    use std::io::Write;
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    for i in 0..n {
        writeln!(f, "{}", line(i)).unwrap();
    }
    f.flush().unwrap();
}
