//! Named outputs (`outputs: {name: ...}`): records a processor sends to one by name leave the
//! pipeline there and are written exactly once, like the main output, across SIGKILLs; a stream
//! without checkpoints writes them too. Runs the real binary with `filter` (its `rejects_to`) and
//! `counter` built from source.

mod common;
use common::kill::{env_or, kill_repeatedly};
use common::*;
use std::collections::{BTreeSet, HashMap};
use std::io::Write;

/// `n` JSON lines `{"id","user","amount"}` with `amount = id % 100`; returns (per-user count of
/// records with amount >= 50, ids with amount < 50).
fn write_amounts(path: &std::path::Path, n: u64, users: u64) -> (HashMap<String, i64>, BTreeSet<u64>) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let (mut kept, mut rejected) = (HashMap::new(), BTreeSet::new());
    for id in 0..n {
        let user = generated_key(5, users, id);
        let amount = id % 100;
        writeln!(f, "{{\"id\":{id},\"user\":\"{user}\",\"amount\":{amount}}}").unwrap();
        if amount >= 50 {
            *kept.entry(user).or_default() += 1;
        } else {
            rejected.insert(id);
        }
    }
    f.flush().unwrap();
    (kept, rejected)
}

fn config(dir: &Dir, input: &std::path::Path, state_management: &str, rate: u64) -> std::path::PathBuf {
    dir.config(&format!(
        r#"
{state_management}
streams:
  - name: split
    input: {{ type: file, path: {input}, key_field: user, rate_per_sec: {rate} }}
    pipeline:
      thread_num: 2
      processors:
        - type: wasm
          path: {filter}
          config: {{ field: amount, op: ge, value: "50", rejects_to: rejects }}
        - type: wasm
          path: {counter}
    output: {{ type: file, path: {main} }}
    outputs:
      rejects: {{ type: file, path: {rejects} }}
"#,
        input = input.display(),
        filter = plugin("filter").display(),
        counter = plugin("counter").display(),
        main = dir.path("main/out.jsonl").display(),
        rejects = dir.path("rejects/rejects.jsonl").display(),
    ))
}

/// Main output: each user's counts 1..=kept, in order; rejects: exactly the rejected input
/// records, untouched by the counter (they left the pipeline at the filter).
fn check(main: &[serde_json::Value], rejects: &[serde_json::Value], kept: &HashMap<String, i64>, rejected: &BTreeSet<u64>) {
    assert_eq!(main.len() as i64, kept.values().sum::<i64>(), "every kept record counted exactly once");
    let got = counts_by_key(main);
    assert_eq!(got.len(), kept.len());
    for (k, counts) in got {
        assert_eq!(counts, (1..=kept[&k]).collect::<Vec<_>>(), "key {k}");
    }
    let ids: Vec<u64> = rejects.iter().map(|r| r["id"].as_u64().expect("a raw input record, not a counter output")).collect();
    let unique: BTreeSet<u64> = ids.iter().copied().collect();
    assert_eq!(ids.len(), unique.len(), "no rejected record twice");
    assert_eq!(&unique, rejected, "every rejected record exactly once");
    assert!(rejects.iter().all(|r| r["amount"].as_u64().unwrap() < 50 && r.get("count").is_none()));
}

#[test]
fn records_routed_to_a_named_output_are_written_exactly_once_across_kills() {
    let dir = Dir::new();
    let n = env_or("ARKFLOW_CRASH_RECORDS", 200_000);
    let kills = env_or("ARKFLOW_CRASH_KILLS", 8);
    let input = dir.path("in.jsonl");
    let (kept, rejected) = write_amounts(&input, n, 500);
    let sm = format!(
        "state_management:\n  enabled: true\n  backend_type: local\n  local_config: {{ path: {} }}\n  checkpoint_interval_ms: 200\n  exactly_once: true",
        dir.path("state").display()
    );
    let cfg = config(&dir, &input, &sm, 20_000);
    let killed = kill_repeatedly(&cfg, kills, (300, 900));
    let (_, rejects_before) = read_parts(&dir.path("rejects"));
    let out = run(&cfg, &[]);
    assert!(out.status.success(), "final run: {}", stderr(&out));
    assert_eq!(killed, kills, "every planned kill landed while the stream ran");
    assert!(rejects_before > 0, "named-output parts were finalized before the last kill");
    let (main, _) = read_parts(&dir.path("main"));
    let (rejects, _) = read_parts(&dir.path("rejects"));
    check(&main, &rejects, &kept, &rejected);
}

#[test]
fn a_stream_without_checkpoints_writes_its_named_outputs() {
    let dir = Dir::new();
    let input = dir.path("in.jsonl");
    let (kept, rejected) = write_amounts(&input, 5_000, 40);
    let cfg = config(&dir, &input, "", 1_000_000);
    let out = run(&cfg, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let main = json_lines(&dir.path("main/out.jsonl"));
    let rejects = json_lines(&dir.path("rejects/rejects.jsonl"));
    check(&main, &rejects, &kept, &rejected);
}

#[test]
fn a_named_output_the_stream_lacks_fails_the_record_and_lists_the_names() {
    let dir = Dir::new();
    let input = dir.path("in.jsonl");
    write_amounts(&input, 200, 10);
    let yaml = std::fs::read_to_string(config(&dir, &input, "", 1_000_000)).unwrap();
    // The plugin names `rejects`; the stream only has `audit`.
    let yaml = yaml
        .replace("      rejects: {", "      audit: {")
        .replace("    output: {", &format!("    error_output: {{ type: file, path: {} }}\n    output: {{", dir.path("errors.jsonl").display()));
    let out = run(&dir.config(&yaml), &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let errs = json_lines(&dir.path("errors.jsonl"));
    assert_eq!(errs.len(), 100, "every rejected record failed");
    let msg = errs[0]["error"]["message"].as_str().unwrap();
    assert!(errs[0]["error"]["code"] == "invalid-output" && msg.contains("`rejects`") && msg.contains("its outputs are: audit"), "{msg}");
    assert_eq!(json_lines(&dir.path("main/out.jsonl")).len(), 100, "kept records still flow");
    assert!(json_lines(&dir.path("rejects/rejects.jsonl")).is_empty());
}
