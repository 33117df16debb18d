//! The columnar lane with the real binary: a file of JSON lines → a batch SQL query → a file runs
//! whole blocks through arrow-json and DataFusion, and writes what the record path writes
//! (`ARKFLOW_COLUMNAR_LANE=off`), bad lines to `error_output` included; with the exactly-once file
//! output it survives a SIGKILL loop with every result exactly once, also when each restart runs
//! another `thread_num`.

mod common;
use common::kill::{env_or, kill_repeatedly};
use common::*;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

/// Writes the input: blocks (batch_size 4) that type `value` as an integer, then bring a
/// fraction, a field seen late, nulls, a line that is not JSON, a nested value, a numeric string.
/// Returns the ids the filter `value >= 10` keeps.
fn write_mixed(path: &Path, n: u64) -> Vec<u64> {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut kept = vec![];
    for id in 0..n {
        let value = id % 20;
        let line = match id % 97 {
            13 => format!("{{\"id\":{id},\"value\":{value}.5,\"sensor\":\"s{}\"}}", id % 3),
            29 => format!("{{\"id\":{id},\"value\":{value},\"sensor\":\"s{}\",\"extra\":true}}", id % 3),
            41 => format!("{{\"id\":{id},\"value\":null,\"sensor\":\"s{}\"}}", id % 3),
            53 => format!("not json {id}"),
            67 => format!("{{\"id\":{id},\"value\":{value},\"tags\":{{\"a\":1}}}}"),
            83 => String::new(),
            _ => format!("{{\"id\":{id},\"value\":{value},\"sensor\":\"s{}\"}}", id % 3),
        };
        let keeps = !matches!(id % 97, 41 | 53 | 83) && value >= 10;
        if keeps {
            kept.push(id);
        }
        writeln!(f, "{line}").unwrap();
    }
    f.flush().unwrap();
    kept
}

fn run_with(cfg: &Path, lane: bool) -> std::process::Output {
    Command::new(bin())
        .arg("--config")
        .arg(cfg)
        .env("RUST_LOG", "info")
        .env("ARKFLOW_COLUMNAR_LANE", if lane { "on" } else { "off" })
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// Every line of `path` as JSON with numbers as f64 and without `__timestamp` (the time the
/// line was read), sorted by its text (thread order aside).
fn rows(path: &Path) -> Vec<String> {
    fn norm(v: serde_json::Value) -> serde_json::Value {
        match v {
            serde_json::Value::Number(n) => serde_json::json!(n.as_f64().unwrap()),
            serde_json::Value::Object(m) => serde_json::Value::Object(m.into_iter().filter(|(k, _)| k != "__timestamp").map(|(k, v)| (k, norm(v))).collect()),
            other => other,
        }
    }
    let mut out: Vec<String> = json_lines(path).into_iter().map(|v| norm(v).to_string()).collect();
    out.sort();
    out
}

/// (stream, records_in, columnar, dropped) of each stream's final report in `log`, by stream.
fn reported(log: &str) -> Vec<(String, u64, u64, u64)> {
    let field = |l: &str, k: &str| l.split(&format!(" {k}=")).nth(1).map(|v| v.split(' ').next().unwrap().to_string());
    let number = |l: &str, k: &str| field(l, k).unwrap().parse().unwrap();
    let mut out: Vec<_> = log
        .lines()
        .filter(|l| l.contains("stream finished"))
        .map(|l| (field(l, "stream").unwrap(), number(l, "records_in"), number(l, "columnar"), number(l, "dropped")))
        .collect();
    assert_eq!(out.len(), 2, "{log}");
    out.sort();
    out
}

/// The lane's rows are the record path's, or the first difference.
fn same(lane: &[String], records: &[String], what: &str) {
    let first = lane.iter().zip(records).find(|(a, b)| a != b);
    assert!(
        first.is_none() && lane.len() == records.len(),
        "{what}: {} rows on the lane, {} on the record path; first difference: {first:?}",
        lane.len(),
        records.len()
    );
}

#[test]
fn the_lane_writes_what_the_record_path_writes() {
    let dir = Dir::new();
    let input = dir.path("in.jsonl");
    let kept = write_mixed(&input, 20_000);
    let config = |tag: &str| {
        dir.config(&format!(
            r#"
streams:
  - name: filter
    input: {{ type: file, path: {input}, batch_size: 4 }}
    pipeline:
      thread_num: 2
      processors:
        - type: sql
          query: "SELECT * FROM flow WHERE value >= 10"
    output: {{ type: file, path: {out} }}
    error_output: {{ type: file, path: {err} }}
  - name: project
    input: {{ type: file, path: {input}, batch_size: 16 }}
    pipeline:
      thread_num: 2
      processors:
        - type: sql
          query: "SELECT id, value * 2 AS twice, upper(sensor) AS s FROM flow WHERE extra IS NULL AND id % 2 = 0"
    output: {{ type: file, path: {out2} }}
"#,
            input = input.display(),
            out = dir.path(&format!("{tag}-filter.jsonl")).display(),
            err = dir.path(&format!("{tag}-errors.jsonl")).display(),
            out2 = dir.path(&format!("{tag}-project.jsonl")).display(),
        ))
    };
    let lane = run_with(&config("lane"), true);
    assert!(lane.status.success(), "{}", stderr(&lane));
    assert_eq!(stderr(&lane).matches("columnar lane").count(), 2, "both streams ran the lane: {}", stderr(&lane));
    let records = run_with(&config("records"), false);
    assert!(records.status.success(), "{}", stderr(&records));
    assert!(!stderr(&records).contains("columnar lane"), "ARKFLOW_COLUMNAR_LANE=off turns it off");
    // Most blocks ran whole; those with a line the lane cannot type took the record path.
    for (stream, read, columnar, _) in reported(&stderr(&lane)) {
        assert!(columnar > read / 2 && columnar < read, "{stream}: {columnar} of {read} records ran as blocks");
    }
    assert!(reported(&stderr(&records)).iter().all(|(_, _, c, _)| *c == 0));
    // The lane counts what the record path counts (a batch query drops no record).
    let counts = |log: &str| reported(log).into_iter().map(|(s, read, _, dropped)| (s, read, dropped)).collect::<Vec<_>>();
    assert_eq!(counts(&stderr(&lane)), counts(&stderr(&records)));

    let filtered = rows(&dir.path("lane-filter.jsonl"));
    let mut ids: Vec<u64> = json_lines(&dir.path("lane-filter.jsonl")).iter().map(|v| v["id"].as_u64().unwrap()).collect();
    ids.sort_unstable();
    assert_eq!(ids, kept, "the lane keeps exactly the rows with value >= 10");
    same(&filtered, &rows(&dir.path("records-filter.jsonl")), "filter");
    same(&rows(&dir.path("lane-project.jsonl")), &rows(&dir.path("records-project.jsonl")), "project");
    assert!(json_lines(&dir.path("lane-project.jsonl")).len() > 9_000);

    // The lines that are not JSON objects failed one by one, as on the record path.
    let errors = json_lines(&dir.path("lane-errors.jsonl"));
    let bad: Vec<u64> = (0..20_000).filter(|id| id % 97 == 53).collect();
    assert_eq!(errors.len(), bad.len(), "{errors:?}");
    assert_eq!(rows(&dir.path("lane-errors.jsonl")).len(), rows(&dir.path("records-errors.jsonl")).len());
    let nested: BTreeMap<u64, serde_json::Value> = json_lines(&dir.path("lane-filter.jsonl"))
        .into_iter()
        .filter(|v| !v["tags"].is_null())
        .map(|v| (v["id"].as_u64().unwrap(), v["tags"].clone()))
        .collect();
    assert!(!nested.is_empty() && nested.values().all(|t| t == &serde_json::json!({"a": 1})), "nested values kept through the record path");
}

/// `bytes_out` of each stream's final report in `log`, by stream.
fn bytes_out(log: &str) -> Vec<(String, u64)> {
    let field = |l: &str, k: &str| l.split(&format!(" {k}=")).nth(1).map(|v| v.split(' ').next().unwrap().to_string()).unwrap();
    let mut out: Vec<_> = log.lines().filter(|l| l.contains("stream finished")).map(|l| (field(l, "stream"), field(l, "bytes_out").parse().unwrap())).collect();
    out.sort();
    out
}

#[test]
fn a_drop_output_on_the_lane_counts_the_bytes_its_rows_would_take() {
    let dir = Dir::new();
    let input = dir.path("in.jsonl");
    write_mixed(&input, 5_000);
    let output = |file: bool, stream: &str| match file {
        true => format!("{{ type: file, path: {} }}", dir.path(&format!("{stream}.jsonl")).display()),
        false => "{ type: drop }".to_string(),
    };
    let config = |file: bool| {
        dir.config(&format!(
            r#"
streams:
  - name: filter
    input: {{ type: file, path: {input}, batch_size: 4 }}
    pipeline:
      thread_num: 2
      processors:
        - type: sql
          query: "SELECT * FROM flow WHERE value >= 10"
    output: {filter}
  - name: project
    input: {{ type: file, path: {input}, batch_size: 16 }}
    pipeline:
      thread_num: 1
      processors:
        - type: sql
          query: "SELECT id, value / 3.0 AS third, upper(sensor) AS s, id % 3 = 0 AS flag FROM flow WHERE extra IS NULL"
    output: {project}
"#,
            input = input.display(),
            filter = output(file, "filter"),
            project = output(file, "project"),
        ))
    };
    let dropped = run_with(&config(false), true);
    assert!(dropped.status.success(), "{}", stderr(&dropped));
    assert!(reported(&stderr(&dropped)).iter().all(|(_, _, columnar, _)| *columnar > 0), "the lane ran: {}", stderr(&dropped));
    // The same blocks, written: their rows are typed alike, so they weigh the same.
    let written = run_with(&config(true), true);
    assert!(written.status.success(), "{}", stderr(&written));
    let (counted, wrote) = (bytes_out(&stderr(&dropped)), bytes_out(&stderr(&written)));
    assert!(counted.iter().all(|(_, b)| *b > 100_000), "{counted:?}");
    assert_eq!(counted, wrote, "rows the lane counts without encoding them weigh what it writes");
    for (stream, bytes) in &wrote {
        let text = std::fs::read_to_string(dir.path(&format!("{stream}.jsonl"))).unwrap();
        assert_eq!(*bytes, (text.len() - text.lines().count()) as u64, "{stream}: bytes_out is the bytes of the lines written");
    }
}

/// The lane stream of the kill loops: `thread_num` workers, the exactly-once file output.
fn lane_config(dir: &Dir, input: &Path, threads: u64) -> std::path::PathBuf {
    dir.config(&format!(
        r#"
state_management:
  enabled: true
  checkpoint_interval_ms: 200
  exactly_once: true
  backend_type: local
  local_config: {{ path: {state} }}
streams:
  - name: lane
    input: {{ type: file, path: {input}, rate_per_sec: 20000 }}
    pipeline:
      thread_num: {threads}
      processors:
        - type: sql
          query: "SELECT id, sensor FROM flow WHERE value >= 10"
    output: {{ type: file, path: {out} }}
    error_output: {{ type: file, path: {err} }}
"#,
        state = dir.path("state").display(),
        input = input.display(),
        out = dir.path("out").join("out.jsonl").display(),
        err = dir.path("errors").join("errors.jsonl").display(),
    ))
}

/// SIGKILLs the lane stream at random moments, `kills` times at each of `threads` in turn, then
/// runs it to the end at the last; every kept row is in the finalized parts exactly once, and
/// every bad line's error too.
fn lane_kill_loop(n: u64, kills: u64, threads: &[u64]) {
    let dir = Dir::new();
    let input = dir.path("in.jsonl");
    let kept = write_mixed(&input, n);
    for &t in threads {
        let killed = kill_repeatedly(&lane_config(&dir, &input, t), kills, (100, 900));
        assert_eq!(killed, kills, "every kill at thread_num {t} landed while the stream ran");
    }
    let final_run = run(&lane_config(&dir, &input, *threads.last().unwrap()), &[]);
    assert!(final_run.status.success(), "{}", stderr(&final_run));
    assert!(stderr(&final_run).contains("columnar lane"), "{}", stderr(&final_run));
    let (lines, parts) = read_parts(&dir.path("out"));
    assert!(parts > 1);
    let mut ids: Vec<u64> = lines.iter().map(|v| v["id"].as_u64().unwrap()).collect();
    ids.sort_unstable();
    assert_eq!(ids.len(), kept.len(), "every kept row exactly once ({} duplicates or losses)", ids.len().abs_diff(kept.len()));
    assert_eq!(ids, kept);
    let (errors, _) = read_parts(&dir.path("errors"));
    assert_eq!(errors.len() as u64, (0..n).filter(|id| id % 97 == 53).count() as u64, "every bad line's error exactly once");
}

/// SIGKILLs a lane stream with the exactly-once file output at random moments; every kept row
/// is in the finalized parts exactly once. The input (20,000 lines a second) outlasts the kills (10
/// of at most 0.9 s). Size: ARKFLOW_CRASH_RECORDS (200,000), ARKFLOW_CRASH_KILLS (10).
#[test]
fn the_lane_is_exactly_once_across_a_kill_loop() {
    lane_kill_loop(env_or("ARKFLOW_CRASH_RECORDS", 200_000), env_or("ARKFLOW_CRASH_KILLS", 10), &[2]);
}

/// The same loop restarting at another `thread_num` after each set of kills (2, then 1, then 3):
/// the checkpoint holds the input's position, not a worker's, so a restart with more or fewer
/// workers resumes exactly where the last decided checkpoint left off. Size: ARKFLOW_CRASH_KILLS
/// per thread count (default 3; 9 kills of at most 0.9 s within the 200,000 lines' 10 s).
#[test]
fn the_lane_is_exactly_once_across_restarts_at_another_thread_num() {
    lane_kill_loop(env_or("ARKFLOW_CRASH_RECORDS", 200_000), env_or("ARKFLOW_CRASH_KILLS", 3), &[2, 1, 3]);
}

/// Blocks of 100,000 generated lines (ArkFlow's benchmark shape) through json_to_arrow and an
/// aggregate: every block is one exact row, and the input does not run ahead of the workers
/// (the lane bounds the bytes in flight: 60 blocks of ~6 MB would otherwise queue up).
#[test]
fn big_blocks_are_exact_and_bounded_in_memory() {
    let dir = Dir::new();
    let out = dir.path("out.jsonl");
    let cfg = dir.config(&format!(
        r#"
streams:
  - name: big
    input: {{ type: generate, count: 6000000, batch_size: 100000, context: '{{ "timestamp": 1625000000000, "value": 10, "sensor": "temp_1" }}' }}
    pipeline:
      thread_num: 2
      processors:
        - type: json_to_arrow
        - type: sql
          query: "SELECT count(*) AS n, sum(value) AS s, min(sensor) AS m FROM flow WHERE value >= 10"
    output: {{ type: file, path: {out} }}
"#,
        out = out.display()
    ));
    let mut cmd = Command::new(bin());
    cmd.arg("--config").arg(&cfg).env("RUST_LOG", "info").stdin(Stdio::null());
    let (peak_kb, run) = peak_rss_kb(cmd);
    assert!(run.status.success(), "{}", stderr(&run));
    assert!(stderr(&run).contains("columnar=6000000"), "every block ran whole: {}", stderr(&run));
    let rows = json_lines(&out);
    assert_eq!(rows.len(), 60, "one row per block: {rows:?}");
    assert!(rows.iter().all(|r| r["n"] == 100_000 && r["s"] == 1_000_000 && r["m"] == "temp_1"), "{rows:?}");
    // Measured: ~130 MB bounded, ~240 MB when the input ran ahead.
    assert!(peak_kb < 190_000, "peak resident memory {peak_kb} kB");
}
