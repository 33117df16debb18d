//! Bench binary: the exactly-once `s3` output against the AWS CLI (`aws s3 cp`), both writing the
//! same JSON lines to one moto server this binary starts on 127.0.0.1, interleaved per round (the
//! order alternating) so both see the same machine load.
//! - arkflow: one built stream, a file of N JSON lines → `s3` output, exactly-once (a local state
//!   store, 1 s checkpoints: a part per epoch and its marker after each decision), run to its end
//!   in this process; every record is checked to be in a committed part;
//! - the AWS CLI: `aws s3 cp <file> s3://<bucket>/<key>` of the same file, its whole process.
//!
//! Run: `bash tests/servers/install.sh && pip install awscli && cargo bench --bench s3_output`
//! (env: BENCH_RECORDS, default 200,000; BENCH_ROUNDS, default 3).

#[path = "common/mod.rs"]
mod common;
#[path = "../tests/common/s3.rs"]
#[allow(dead_code)]
mod s3;

use arkflow::checkpoint::block_on;
use arkflow::config::EngineConfig;
use arkflow::state::backend::{ObjectStore, S3Store};
use std::path::Path;
use std::process::Command;
use std::time::Instant;

/// Records/s of the stream `input` → s3 (under `prefix`), exactly-once with its state in `state`.
fn arkflow(t: &s3::S3Target, input: &Path, prefix: &str, state: &Path, n: u64) -> f64 {
    let yaml = format!(
        "state_management: {{ enabled: true, backend_type: local, local_config: {{ path: {} }}, checkpoint_interval_ms: 1000, exactly_once: true }}
streams:
  - name: bench
    input: {{ type: file, path: {} }}
    output: {{ type: s3, bucket: {}, region: {}, prefix: {prefix}, endpoint_url: \"{}\", access_key_id: {}, secret_access_key: {} }}
",
        state.display(),
        input.display(),
        t.bucket,
        t.region,
        t.endpoint,
        t.access_key_id,
        t.secret_access_key
    );
    let cfg = EngineConfig::from_yaml_str(&yaml, None).expect("bench config");
    let (rate, report) = common::run_stream(&cfg);
    assert_eq!(report.records_out, n);
    let store = block_on(S3Store::new(&t.s3_config(prefix))).unwrap();
    let mut committed = 0;
    for m in block_on(store.list("committed/")).unwrap() {
        let marker: serde_json::Value = serde_json::from_slice(&block_on(store.get(&m.key)).unwrap().unwrap()).unwrap();
        committed += marker["records"].as_u64().unwrap();
    }
    assert_eq!(committed, n, "every record in a committed part");
    rate
}

/// Records/s of `aws s3 cp` of `input` (n records) to `key`.
fn aws(t: &s3::S3Target, input: &Path, key: &str, n: u64) -> f64 {
    let mut cmd = Command::new("aws");
    cmd.args(["s3", "cp", "--only-show-errors", "--endpoint-url", &t.endpoint, "--region", &t.region])
        .arg(input)
        .arg(format!("s3://{}/{key}", t.bucket))
        .env("AWS_ACCESS_KEY_ID", &t.access_key_id)
        .env("AWS_SECRET_ACCESS_KEY", &t.secret_access_key);
    let start = Instant::now();
    let out = cmd.output().expect("run aws (pip install awscli)");
    assert!(out.status.success(), "aws s3 cp: {}", String::from_utf8_lossy(&out.stderr));
    n as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return;
    }
    let n = common::env_u64("BENCH_RECORDS", 200_000);
    let rounds = common::env_u64("BENCH_ROUNDS", 3);
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    common::write_lines(&input, n, |i| format!("{{\"id\":{i},\"who\":\"u{}\",\"amount\":{}}}", i % 10_000, i % 100));
    let moto = s3::Moto::start();
    let t = &moto.target;
    let (mut ark, mut cli) = (vec![], vec![]);
    for round in 0..rounds {
        let run_ark = || arkflow(t, &input, &format!("ark-{round}/"), &dir.path().join(format!("state-{round}")), n);
        let run_cli = || aws(t, &input, &format!("cli-{round}/in.jsonl"), n);
        let (a, c) = common::alternate(round, run_ark, run_cli);
        println!("round {round}: s3 output (exactly-once) {a:.0} rec/s vs aws s3 cp {c:.0} ({:.2})", a / c);
        ark.push(a);
        cli.push(c);
    }
    let (a, c) = (common::median(&mut ark), common::median(&mut cli));
    println!("median of {rounds}: s3 output {a:.0} rec/s, aws s3 cp {c:.0} rec/s: {:.2}", a / c);
}
