//! End-to-end checkpointing on real S3 servers started by the test on 127.0.0.1: the kill loop on
//! moto (`s3` and `hybrid` backends), S3 outages (server paused with SIGSTOP; connections refused
//! by a loopback proxy), and garage: a persistent store that ignores conditional writes, where
//! the `s3` backend checkpoints and recovers without exactly-once and is refused with it.
//! Servers: `bash tests/servers/install.sh` installs them.

mod common;
use common::kill::{kill_loop, write_input};
use common::proxy::{Mode, Proxy};
use common::s3::{Garage, Moto, S3Target};
use common::*;
use std::io::Write;
use std::time::Duration;

fn s3_state(backend: &str, target: &S3Target, prefix: &str) -> String {
    format!("  backend_type: {backend}\n{}", target.yaml_block(2, prefix))
}

#[test]
fn kill_loop_s3_backend_on_moto_is_exactly_once() {
    let moto = Moto::start();
    let dir = Dir::new();
    kill_loop(&dir, &s3_state("s3", &moto.target, "ck/"));
}

#[test]
fn kill_loop_hybrid_backend_on_moto_is_exactly_once() {
    let moto = Moto::start();
    let dir = Dir::new();
    // A RAM cache far smaller than the state: key groups are evicted and read back all along.
    let state = format!("{}  hybrid_config: {{ cache_kb: 16 }}\n", s3_state("hybrid", &moto.target, "hy/"));
    kill_loop(&dir, &state);
}

#[test]
fn hybrid_evicts_cold_key_groups_and_reads_them_back_exactly() {
    let moto = Moto::start();
    let dir = Dir::new();
    // Keys with locality: runs of 50 records per user, 100 users (long names) cycling, so a user
    // comes back every 5,000 records, after its key group went cold and was evicted.
    let input = dir.path("in.jsonl");
    let mut expected: std::collections::HashMap<String, i64> = Default::default();
    let mut f = std::io::BufWriter::new(std::fs::File::create(&input).unwrap());
    for id in 0..30_000u64 {
        let user = format!("user-{:040}", (id / 50) % 100);
        writeln!(f, "{{\"id\":{id},\"user\":\"{user}\"}}").unwrap();
        *expected.entry(user).or_default() += 1;
    }
    f.flush().unwrap();
    drop(f);
    let cfg = dir.config(&format!(
        "state_management:\n  enabled: true\n  checkpoint_interval_ms: 100\n  exactly_once: true\n{}  hybrid_config: {{ cache_kb: 1 }}\nstreams:\n  - name: h\n    input: {{ type: file, path: {}, key_field: user, rate_per_sec: 20000 }}\n    pipeline:\n      thread_num: 2\n      processors:\n        - {{ type: wasm, path: {} }}\n    output: {{ type: file, path: {} }}\n    state: {{ operator_id: hyb, enabled: true }}\n",
        s3_state("hybrid", &moto.target, "h/"),
        input.display(),
        plugin("counter").display(),
        dir.path("out/out.jsonl").display()
    ));
    let out = run(&cfg, &[]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    let line = err.lines().find(|l| l.contains("hybrid_loads=")).expect("checkpoint report");
    let num = |k: &str| -> u64 { line.split(&format!("{k}=")).nth(1).unwrap().split_whitespace().next().unwrap().parse().unwrap() };
    assert!(num("hybrid_evictions") > 10, "cold groups were evicted: {line}");
    assert!(num("hybrid_loads") > num("hybrid_evictions") / 2, "evicted groups were read back: {line}");
    let (lines, _) = read_parts(&dir.path("out"));
    assert_eq!(lines.len(), 30_000);
    for (k, c) in counts_by_key(&lines) {
        assert_eq!(c, (1..=expected[&k]).collect::<Vec<_>>(), "key {k}");
    }
}

/// Runs a throttled file stream with exactly-once output on `state`; `during` is called while it
/// runs; then the process is SIGKILLed, restarted to completion, and the output checked exact.
fn outage_run(dir: &Dir, state: &str, records: u64, during: impl FnOnce()) {
    let input = dir.path("in.jsonl");
    let expected = write_input(&input, records, 1000);
    let out_dir = dir.path("out");
    let cfg = dir.config(&format!(
        "state_management:\n  enabled: true\n  checkpoint_interval_ms: 200\n  exactly_once: true\n{state}streams:\n  - name: outage\n    input: {{ type: file, path: {}, key_field: user, rate_per_sec: 20000 }}\n    pipeline:\n      thread_num: 2\n      processors:\n        - {{ type: wasm, path: {} }}\n    output: {{ type: file, path: {} }}\n    state: {{ operator_id: outage, enabled: true }}\n",
        input.display(),
        plugin("counter").display(),
        out_dir.join("out.jsonl").display()
    ));
    let child = spawn(&cfg);
    // The outage must hit a running stream, not its start-up (slow on a loaded machine): wait
    // for its first finalized part.
    let started =
        wait_for(Duration::from_secs(60), || std::fs::read_dir(&out_dir).is_ok_and(|d| d.flatten().any(|e| !e.file_name().to_string_lossy().starts_with('.'))));
    assert!(started, "the stream wrote no part within 60 s");
    std::thread::sleep(Duration::from_millis(300));
    during();
    // The stream kept running (or backpressured) through the outage; now crash it.
    std::thread::sleep(Duration::from_millis(1500));
    assert!(std::fs::read_dir(&out_dir).is_ok());
    signal(&child, "KILL");
    let mut child = child;
    let _ = child.wait();
    let (before, _) = read_parts(&out_dir);
    let out = run(&cfg, &[]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("restored from the last decided checkpoint"), "{err}");
    let (lines, _) = read_parts(&out_dir);
    assert!(!before.is_empty(), "checkpoints were decided before the crash");
    assert_eq!(lines.len() as u64, records, "nothing lost or duplicated across the outage and the crash");
    for (k, c) in counts_by_key(&lines) {
        assert_eq!(c, (1..=expected[&k]).collect::<Vec<_>>(), "key {k}");
    }
}

#[test]
fn s3_paused_for_10s_then_resumed_loses_nothing() {
    let moto = Moto::start();
    let dir = Dir::new();
    outage_run(&dir, &s3_state("s3", &moto.target, "pause/"), 200_000, || {
        moto.pause();
        std::thread::sleep(Duration::from_secs(10));
        moto.resume();
    });
}

#[test]
fn s3_connections_refused_for_10s_loses_nothing() {
    let moto = Moto::start();
    let proxy = Proxy::start(moto.port);
    let mut target = moto.target.clone();
    target.endpoint = format!("http://127.0.0.1:{}", proxy.port);
    let dir = Dir::new();
    outage_run(&dir, &s3_state("s3", &target, "refuse/"), 200_000, || {
        proxy.set(Mode::Refuse);
        std::thread::sleep(Duration::from_secs(10));
        proxy.set(Mode::Pass);
    });
}

#[test]
fn garage_checkpoints_and_recovers_without_exactly_once_and_is_refused_with_it() {
    let garage = Garage::start();
    let dir = Dir::new();
    let input = dir.path("in.jsonl");
    write_input(&input, 3000, 3);
    let yaml = |eo: bool| {
        format!(
            "state_management:\n  enabled: true\n  checkpoint_interval_ms: 100\n  exactly_once: {eo}\n{}streams:\n  - name: g\n    input: {{ type: file, path: {}, key_field: user }}\n    pipeline:\n      processors:\n        - {{ type: wasm, path: {} }}\n    output: {{ type: file, path: {} }}\n    state: {{ operator_id: garage-op, enabled: true }}\n",
            s3_state("s3", &garage.target, "g/"),
            input.display(),
            plugin("counter").display(),
            dir.path("out.jsonl").display()
        )
    };
    let cfg = dir.config(&yaml(false));
    let out = run(&cfg, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(json_lines(&dir.path("out.jsonl")).len(), 3000);
    // Restart after new input: state comes back from garage and the counts continue.
    let mut f = std::fs::OpenOptions::new().append(true).open(&input).unwrap();
    for id in 3000..3003 {
        writeln!(f, "{{\"id\":{id},\"user\":\"{}\"}}", generated_key(77, 3, id)).unwrap();
    }
    drop(f);
    // The expected (key, count) of each new record, counted independently from the input.
    let mut running: std::collections::HashMap<String, i64> = Default::default();
    let mut expected_new = Vec::new();
    for id in 0..3003 {
        let k = generated_key(77, 3, id);
        let c = running.entry(k.clone()).or_default();
        *c += 1;
        if id >= 3000 {
            expected_new.push((k, *c));
        }
    }
    let out = run(&cfg, &[]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("restored from the last decided checkpoint"), "{err}");
    assert!(!err.contains(&garage.target.secret_access_key), "no secret in logs");
    let lines = json_lines(&dir.path("out.jsonl"));
    assert_eq!(lines.len(), 3003, "only the new records were processed, appended to the file");
    let mut got: Vec<(String, i64)> = lines[3000..].iter().map(|l| (l["key"].as_str().unwrap().to_string(), l["count"].as_i64().unwrap())).collect();
    got.sort();
    expected_new.sort();
    assert_eq!(got, expected_new, "counts continue from the state restored from garage");
    // exactly_once needs create-only writes, which garage ignores: refused at start.
    let cfg = dir.config(&yaml(true));
    let out = run(&cfg, &[]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("does not honour create-only writes") && err.contains("s3://"), "{err}");
    assert!(!err.contains(&garage.target.secret_access_key), "no secret in errors");
}
