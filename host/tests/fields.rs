//! Typed fields decoded by the host (`arkflow:plugin/fields`), through the real binary with
//! plugins built from source:
//! - `sensor_stats` reading its two fields from the host's typed columns computes what it
//!   computes parsing the JSON itself, and what the input says, across a restart with another
//!   `thread_num` on the same checkpointed state; records that do not fit the declaration fail
//!   with the host's reason naming the field.
//! - A plugin that misuses the import (too many fields, fetching twice, declaring again mid-batch)
//!   gets a clear error or the same columns, never a crash of the host.

mod common;
use common::*;
use std::collections::BTreeMap;
use std::io::Write;

const SENSORS: u64 = 20;

/// Appends readings `from..to`: sensor `s<i % SENSORS>`, value `(i * 7919 % 1000) / 8`.
fn append_readings(path: &std::path::Path, from: u64, to: u64) {
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path).unwrap();
    for i in from..to {
        writeln!(f, r#"{{"ts":{i},"sensor":"s{}","value":{}}}"#, i % SENSORS, (i * 7919 % 1000) as f64 / 8.0).unwrap();
    }
}

fn config(dir: &Dir, read: &str, threads: u32, out: &str) -> std::path::PathBuf {
    std::fs::create_dir_all(dir.path(out)).unwrap();
    std::fs::create_dir_all(dir.path(&format!("{out}-errors"))).unwrap();
    dir.config(&format!(
        r#"{state}streams:
  - name: s
    input: {{ type: file, path: {input} }}
    pipeline:
      thread_num: {threads}
      processors:
        - type: wasm
          path: "{plugin}"
          config: {{ read: {read} }}
          on_failure: error_output
    output: {{ type: file, path: {out}/out.jsonl }}
    error_output: {{ type: file, path: {out}-errors/errors.jsonl }}
    state: {{ operator_id: stats, enabled: true }}
"#,
        state = local_state(dir, 100, true),
        input = dir.path("in.jsonl").display(),
        plugin = plugin("sensor_stats").display(),
        out = dir.path(out).display(),
    ))
}

/// (count, sum, min, max) per sensor from the input's well-formed readings, in input order.
fn expected(lines: &[serde_json::Value]) -> BTreeMap<String, (i64, f64, f64, f64)> {
    let mut m = BTreeMap::new();
    for v in lines {
        let (Some(s), Some(x)) = (v["sensor"].as_str(), v["value"].as_f64()) else { continue };
        let e = m.entry(s.to_string()).or_insert((0, 0.0, f64::INFINITY, f64::NEG_INFINITY));
        *e = (e.0 + 1, e.1 + x, e.2.min(x), e.3.max(x));
    }
    m
}

/// The last output per sensor (outputs of one sensor are in order; counts only grow).
fn last_stats(lines: &[serde_json::Value]) -> BTreeMap<String, (i64, f64, f64, f64)> {
    let mut m: BTreeMap<String, (i64, f64, f64, f64)> = BTreeMap::new();
    for v in lines {
        let s = (v["count"].as_i64().unwrap(), v["sum"].as_f64().unwrap(), v["min"].as_f64().unwrap(), v["max"].as_f64().unwrap());
        let e = m.entry(v["sensor"].as_str().unwrap().to_string()).or_insert(s);
        if s.0 >= e.0 {
            *e = s;
        }
    }
    m
}

fn run_ok(cfg: &std::path::Path, what: &str) {
    let o = run(cfg, &[]);
    assert!(o.status.success(), "{what}: {}", stderr(&o));
}

#[test]
fn typed_fields_compute_what_parsing_the_json_computes_across_a_restart_with_other_threads() {
    let mut outputs = Vec::new();
    for read in ["json", "fields"] {
        let dir = Dir::new();
        append_readings(&dir.path("in.jsonl"), 0, 3_000);
        run_ok(&config(&dir, read, 2, "out1"), read);
        append_readings(&dir.path("in.jsonl"), 3_000, 6_000);
        {
            let mut f = std::fs::OpenOptions::new().append(true).open(dir.path("in.jsonl")).unwrap();
            writeln!(f, r#"{{"sensor":"s1","value":"high"}}"#).unwrap();
            writeln!(f, r#"{{"sensor":7,"value":1}}"#).unwrap();
            writeln!(f, r#"{{"sensor":"s2"}}"#).unwrap();
        }
        append_readings(&dir.path("in.jsonl"), 6_000, 6_500);
        run_ok(&config(&dir, read, 1, "out2"), read);
        let mut lines = read_parts(&dir.path("out1")).0;
        lines.extend(read_parts(&dir.path("out2")).0);
        assert_eq!(lines.len(), 6_500, "read {read}: one output per well-formed reading, none twice across the restart");
        let input = json_lines(&dir.path("in.jsonl"));
        assert_eq!(last_stats(&lines), expected(&input), "read {read}: the last stats per sensor are the input's");
        assert!(read_parts(&dir.path("out1-errors")).0.is_empty(), "read {read}: the first run's input has no bad record");
        let errors = read_parts(&dir.path("out2-errors")).0;
        let found: Vec<(String, String)> =
            errors.iter().map(|e| (e["error"]["code"].as_str().unwrap().into(), e["error"]["message"].as_str().unwrap().into())).collect();
        let mut codes: Vec<&str> = found.iter().map(|(c, _)| c.as_str()).collect();
        codes.sort();
        assert_eq!(codes, ["bad-field", "bad-field", "no-value"], "read {read}: {found:?}");
        if read == "fields" {
            // The host's reasons name the field (records of different sensors may come in any order).
            for want in ["field `value`: a string where float64 was declared", "field `sensor`: a number where utf8 was declared"] {
                assert!(found.iter().any(|(c, m)| c == "bad-field" && m.starts_with(want)), "{want}: {found:?}");
            }
        }
        let mut sorted: Vec<String> = lines.iter().map(|v| v.to_string()).collect();
        sorted.sort();
        outputs.push(sorted);
    }
    assert!(outputs[0] == outputs[1], "read json and read fields emit the same records");
}

#[test]
fn a_plugin_misusing_the_fields_import_gets_clear_errors_and_the_host_carries_on() {
    let dir = Dir::new();
    std::fs::write(dir.path("in.jsonl"), "{\"n\":1}\n{\"n\":\"x\"}\n{\"m\":2}\n{\"n\":-5}\n").unwrap();
    let cfg = dir.config(&format!(
        r#"streams:
  - input: {{ type: file, path: {} }}
    pipeline:
      processors:
        - {{ type: wasm, path: "{}", config: {{ mode: fields-misuse }} }}
    output: {{ type: file, path: {} }}
"#,
        dir.path("in.jsonl").display(),
        plugin("evil").display(),
        dir.path("out.jsonl").display()
    ));
    run_ok(&cfg, "fields-misuse");
    let out = json_lines(&dir.path("out.jsonl"));
    let mut ns: Vec<String> = out.iter().map(|v| v["n"].to_string()).collect();
    ns.sort();
    assert_eq!(ns, ["-5", "1", "null", "null"], "{out:?}");
    for v in &out {
        assert_eq!(v["same"], true, "a second fetch in one batch returns the same columns: {v}");
        assert!(v["init_error"].as_str().unwrap().ends_with("bad-fields: fields.declare: 65 fields, at most 64"), "{v}");
        assert!(v["mid_batch_error"].as_str().unwrap().contains("after fields.declare in the same call (a declaration applies from the next batch)"), "{v}");
    }
}
