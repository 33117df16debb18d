//! The same keyed `counter` written in Rust, C, Zig, Go, Python and JavaScript (each built from
//! source by `plugins/<lang>/build.sh`), run through the real binary with checkpointed state:
//! every language's output equals the Rust counter's and the counts computed from the input, the
//! record without a key fails the same way everywhere, and state written by one language is
//! continued by another (the state API and its encoding are the contract, not the language).

mod common;
use common::*;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

const LANGS: &[&str] = &["rust", "c", "zig", "go", "python", "js"];
const RECORDS: u64 = 20_000;
const USERS: u64 = 100;

fn wasm(lang: &str) -> std::path::PathBuf {
    let name = if lang == "rust" { "counter".to_string() } else { format!("counter_{lang}") };
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/dist").join(format!("{name}.wasm"));
    assert!(p.exists(), "{} is missing: run `bash plugins/{lang}/build.sh` (or `bash plugins/build.sh` for Rust)", p.display());
    p
}

fn config(dir: &Dir, lang: &str, read: &str, input: &str, output: &str) -> std::path::PathBuf {
    // Default limits for every language (Python and JavaScript need >= 14 / 10 MiB of the 64).
    dir.config(&format!(
        r#"
state_management:
  enabled: true
  backend_type: local
  local_config: {{ path: ./state }}
  checkpoint_interval_ms: 200
  exactly_once: true
streams:
  - name: s
    input: {{ type: file, path: {input} }}
    key_by: user
    pipeline:
      thread_num: 2
      processors:
        - type: wasm
          path: "{}"
          config: {{ key_field: user, read: {read} }}
          on_failure: error_output
    output: {{ type: file, path: out/{output} }}
    error_output: {{ type: file, path: errors-{output} }}
    state: {{ operator_id: counter, enabled: true }}
"#,
        wasm(lang).display()
    ))
}

/// Writes `n` records over `USERS` users starting at id `from`, plus (when `with_bad`) one
/// record without a `user` field; returns each user's record count.
fn write_input(path: &Path, from: u64, n: u64, with_bad: bool) -> HashMap<String, i64> {
    append_users(path, from, from + n, USERS);
    if with_bad {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
        writeln!(f, "{{\"id\":-1,\"name\":\"no user\"}}").unwrap();
    }
    let mut m = HashMap::new();
    for id in from..from + n {
        *m.entry(format!("u{}", id % USERS)).or_default() += 1;
    }
    m
}

/// (sorted output lines of the finalized parts with prefix `name.`, the error records' codes).
fn run_lang(dir: &Dir, lang: &str, input: &str, output: &str) -> (Vec<String>, Vec<String>) {
    run_read(dir, lang, "json", input, output)
}

/// [`run_lang`] with config `read` (`json`: the guest parses the value; `fields`: the host's typed
/// column).
fn run_read(dir: &Dir, lang: &str, read: &str, input: &str, output: &str) -> (Vec<String>, Vec<String>) {
    let o = run(&config(dir, lang, read, input, output), &[]);
    assert!(o.status.success(), "{lang}: arkflow failed: {}", stderr(&o));
    let mut lines: Vec<String> = std::fs::read_dir(dir.path("out"))
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(&format!("{output}.")))
        .flat_map(|p| std::fs::read_to_string(p).unwrap().lines().map(String::from).collect::<Vec<_>>())
        .collect();
    lines.sort();
    // The error output is exactly-once too: one finalized part per epoch.
    let mut error_parts: Vec<std::path::PathBuf> = std::fs::read_dir(dir.path(""))
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(&format!("errors-{output}.")))
        .collect();
    error_parts.sort();
    let errors = error_parts
        .iter()
        .flat_map(|p| json_lines(p))
        .collect::<Vec<_>>()
        .iter()
        .map(|e| format!("{}/{}", e["error"]["class"].as_str().unwrap_or("?"), e["error"]["code"].as_str().unwrap_or("?")))
        .collect();
    (lines, errors)
}

fn final_counts(lines: &[String]) -> BTreeMap<String, i64> {
    let mut m = BTreeMap::new();
    for l in lines {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        let c = m.entry(v["key"].as_str().unwrap().to_string()).or_insert(0);
        *c = (*c).max(v["count"].as_i64().unwrap());
    }
    m
}

/// Every language, reading the key both ways (`read: json` in the guest, `read: fields` from the
/// host's typed column), gives the Rust counter's output.
#[test]
fn every_language_counts_the_same() {
    let mut reference: Option<(Vec<String>, Vec<String>)> = None;
    for lang in LANGS {
        for read in ["json", "fields"] {
            let dir = Dir::new();
            std::fs::create_dir_all(dir.path("out")).unwrap();
            let expected = write_input(&dir.path("in.jsonl"), 0, RECORDS, true);
            if read == "fields" {
                // A number is a key when the guest parses it, a mismatch of the utf8 field when
                // the host decodes it: this record tells the two paths apart.
                use std::io::Write;
                let mut f = std::fs::OpenOptions::new().append(true).open(dir.path("in.jsonl")).unwrap();
                writeln!(f, "{{\"id\":-2,\"user\":7}}").unwrap();
            }
            let (lines, mut errors) = run_read(&dir, lang, read, "in.jsonl", "out.jsonl");
            errors.sort();
            assert_eq!(lines.len() as u64, RECORDS, "{lang} read {read}: one output per keyed record");
            let want: BTreeMap<String, i64> = expected.into_iter().collect();
            assert_eq!(final_counts(&lines), want, "{lang} read {read}: final counts equal the input's");
            let mut want_errors = vec!["invalid-input/no-key".to_string()];
            if read == "fields" {
                want_errors.insert(0, "invalid-input/bad-field".to_string());
            }
            assert_eq!(
                errors, want_errors,
                "{lang} read {read}: the record without a key fails as no-key, a number where the key must be a string as bad-field"
            );
            match &reference {
                None => reference = Some((lines, errors)),
                Some((ref_lines, _)) => assert!(&lines == ref_lines, "{lang} read {read}: output differs from Rust's"),
            }
        }
    }
}

#[test]
fn state_written_by_one_language_is_continued_by_the_next() {
    // The input file grows by one slice before each run, and each run uses the next language on
    // the same state directory: it resumes after the previous slice with the previous languages'
    // counts. Across all runs, each key's outputs (parts in epoch order) must run 1..=n.
    let dir = Dir::new();
    std::fs::create_dir_all(dir.path("out")).unwrap();
    let slice = 2_000;
    let mut total: HashMap<String, i64> = HashMap::new();
    for (i, lang) in LANGS.iter().enumerate() {
        for (k, n) in write_input(&dir.path("in.jsonl"), i as u64 * slice, slice, false) {
            *total.entry(k).or_default() += n;
        }
        let (lines, _) = run_lang(&dir, lang, "in.jsonl", "out.jsonl");
        assert_eq!(lines.len() as u64, (i as u64 + 1) * slice, "{lang}: one output per record so far");
        let (ordered, _) = read_parts(&dir.path("out"));
        for (k, counts) in counts_by_key(&ordered) {
            assert_eq!(counts, (1..=total[&k]).collect::<Vec<_>>(), "after {lang}: key {k} must count on from the previous languages");
        }
    }
}
