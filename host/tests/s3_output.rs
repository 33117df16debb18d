//! The `s3` output against a real S3 server (moto on 127.0.0.1): SIGKILLed at random moments
//! while a throttled file input flows through the wasm counter into it (exactly-once), restarted
//! each time, then run to the end: the parts the committed markers name must hold every input
//! record's effect exactly once, each key's counts 1..=n in epoch order. A restart with a wiped
//! state directory is refused, naming the committed output of the earlier run. The same with
//! `format: parquet` and a declared `parquet_schema`: the Parquet parts the markers name hold every
//! record's effect once, each with the declared columns. And with
//! epochs of tens of MiB (1 KiB records, 5 MiB chunks), each part goes up as a multipart upload
//! completed after the decision: every record once, no upload left pending at the end.
//! Size: ARKFLOW_S3_OUT_RECORDS (default 200,000), ARKFLOW_S3_OUT_KILLS (8),
//! ARKFLOW_S3_MULTIPART_MB (input MiB of the multipart run, default 80).

mod common;
use arkflow::checkpoint::block_on;
use arkflow::state::backend::{ObjectStore, S3Store};
use common::kill::{env_or, kill_repeatedly, write_input};
use common::s3::{Moto, S3Target};
use common::*;
use std::collections::HashMap;

/// Every record the committed markers under `prefix` name, in marker (epoch) order.
fn committed(target: &S3Target, prefix: &str) -> (usize, Vec<serde_json::Value>) {
    let store = block_on(S3Store::new(&target.s3_config(prefix))).unwrap();
    let markers = block_on(store.list("committed/")).unwrap();
    let mut lines = Vec::new();
    for m in &markers {
        let marker: serde_json::Value = serde_json::from_slice(&block_on(store.get(&m.key)).unwrap().unwrap()).unwrap();
        let part = block_on(store.get(marker["part"].as_str().unwrap())).unwrap().unwrap_or_else(|| panic!("the part {marker} names is there"));
        assert_eq!(part.len() as u64, marker["bytes"].as_u64().unwrap(), "{marker}");
        let text = match marker["part"].as_str().unwrap().ends_with(".parquet") {
            true => parquet_as_json_lines(part),
            false => String::from_utf8(part.to_vec()).unwrap(),
        };
        assert_eq!(text.lines().count() as u64, marker["records"].as_u64().unwrap(), "{marker}");
        lines.extend(text.lines().map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()));
    }
    (markers.len(), lines)
}

/// The rows of a Parquet file as JSON lines.
fn parquet_as_json_lines(part: bytes::Bytes) -> String {
    use datafusion::arrow::array::RecordBatchReader;
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(part).unwrap().build().unwrap();
    let columns: Vec<String> = reader.schema().fields().iter().map(|f| format!("{}:{}", f.name(), f.data_type())).collect();
    assert_eq!(columns, ["key:Utf8", "count:Int64", "absent:Float64"], "every part has the declared columns");
    let mut writer = arrow_json::LineDelimitedWriter::new(Vec::new());
    for batch in reader {
        writer.write(&batch.unwrap()).unwrap();
    }
    writer.finish().unwrap();
    String::from_utf8(writer.into_inner()).unwrap()
}

fn config(dir: &Dir, target: &S3Target, input: &std::path::Path, format: &str) -> std::path::PathBuf {
    dir.config(&format!(
        r#"
state_management:
  enabled: true
  backend_type: local
  checkpoint_interval_ms: 200
  exactly_once: true
  local_config: {{ path: {state} }}
streams:
  - name: s3out
    input: {{ type: file, path: {input}, key_field: user, rate_per_sec: 20000 }}
    pipeline:
      thread_num: 2
      processors:
        - type: wasm
          path: {counter}
    output: {{ type: s3, bucket: {bucket}, region: {region}, prefix: out/, endpoint_url: "{endpoint}", access_key_id: {id}, secret_access_key: {secret}, format: {format} }}
    state: {{ operator_id: s3-counter, enabled: true }}
"#,
        state = dir.path("state").display(),
        input = input.display(),
        counter = plugin("counter").display(),
        bucket = target.bucket,
        region = target.region,
        endpoint = target.endpoint,
        id = target.access_key_id,
        secret = target.secret_access_key,
    ))
}

#[test]
fn kill_loop_into_the_s3_output_is_exactly_once_and_a_wiped_state_is_refused() {
    kill_loop(env_or("ARKFLOW_S3_OUT_RECORDS", 200_000), env_or("ARKFLOW_S3_OUT_KILLS", 8), "json", true);
}

#[test]
fn parquet_parts_of_a_declared_schema_hold_every_record_exactly_once_under_sigkills() {
    let format = "parquet, parquet_schema: {key: string, count: int64, absent: float64}";
    kill_loop(env_or("ARKFLOW_S3_OUT_RECORDS", 200_000) / 3, env_or("ARKFLOW_S3_OUT_KILLS", 8) / 2, format, false);
}

/// SIGKILLs the counter → s3 stream `kills` times over `n` records in `format`, runs it to the
/// end and checks the committed parts; with `wipe`, then refuses a run over a wiped state.
fn kill_loop(n: u64, kills: u64, format: &str, wipe: bool) {
    let moto = Moto::start();
    let dir = Dir::new();
    let input = dir.path("in.jsonl");
    let expected = write_input(&input, n, 5_000);
    let cfg = config(&dir, &moto.target, &input, format);

    let killed = kill_repeatedly(&cfg, kills, (150, 800));
    let (markers_before, before) = committed(&moto.target, "out/");
    let out = run(&cfg, &[]);
    assert!(out.status.success(), "final run: {}", stderr(&out));
    let (markers, lines) = committed(&moto.target, "out/");
    eprintln!("s3 output ({format}): {killed} kills; {markers_before} markers ({} records) before the final run, {markers} after", before.len());
    assert_eq!(killed, kills, "every planned kill landed while the stream ran");
    assert!(markers_before > 0, "kills landed after decided checkpoints");
    assert_eq!(lines.len() as u64, n, "every input record's effect exactly once");
    let mut got: HashMap<String, Vec<i64>> = HashMap::new();
    for l in &lines {
        got.entry(l["key"].as_str().unwrap().to_string()).or_default().push(l["count"].as_i64().unwrap());
    }
    assert_eq!(got.len(), expected.len());
    for (k, counts) in got {
        assert_eq!(counts, (1..=expected[&k]).collect::<Vec<_>>(), "key {k}: each count exactly once, in epoch order");
    }

    if !wipe {
        return;
    }
    // A wiped state directory: the committed output belongs to a run this state never decided.
    std::fs::remove_dir_all(dir.path("state")).unwrap();
    let out = run(&cfg, &[]);
    let err = stderr(&out);
    assert!(!out.status.success(), "a wiped state over committed output is refused");
    assert!(err.contains("committed/s3-counter/") && err.contains("another run"), "{err}");
}

#[test]
fn multipart_parts_hold_every_record_once_and_no_upload_is_left_under_sigkills() {
    let moto = Moto::start();
    let dir = Dir::new();
    let input = dir.path("in.jsonl");
    let n = env_or("ARKFLOW_S3_MULTIPART_MB", 80) * 1024;
    {
        use std::io::Write;
        let mut f = std::io::BufWriter::new(std::fs::File::create(&input).unwrap());
        let pad = "p".repeat(1000);
        for id in 0..n {
            writeln!(f, "{{\"id\":{id},\"pad\":\"{pad}\"}}").unwrap();
        }
    }
    let t = &moto.target;
    let cfg = dir.config(&format!(
        r#"
state_management:
  enabled: true
  backend_type: local
  checkpoint_interval_ms: 1500
  exactly_once: true
  local_config: {{ path: {state} }}
streams:
  - name: big
    input: {{ type: file, path: {input}, rate_per_sec: 8000 }}
    pipeline: {{ thread_num: 1, processors: [] }}
    output: {{ type: s3, bucket: {bucket}, region: {region}, prefix: big/, endpoint_url: "{endpoint}", access_key_id: {id}, secret_access_key: {secret}, upload_chunk_mb: 5 }}
    state: {{ operator_id: big, enabled: true }}
"#,
        state = dir.path("state").display(),
        input = input.display(),
        bucket = t.bucket,
        region = t.region,
        endpoint = t.endpoint,
        id = t.access_key_id,
        secret = t.secret_access_key,
    ));
    // Each run decides at most two 1.5 s epochs (24,000 records) before its kill: the input
    // outlasts the kills.
    let kills = 3;
    let killed = kill_repeatedly(&cfg, kills, (1500, 3000));
    let out = run(&cfg, &[]);
    assert!(out.status.success(), "final run: {}", stderr(&out));
    assert_eq!(killed, kills, "every planned kill landed while the stream ran");
    let (markers, lines) = committed(t, "big/");
    let mut seen = vec![0u32; n as usize];
    for l in &lines {
        seen[l["id"].as_u64().unwrap() as usize] += 1;
    }
    let wrong: Vec<(usize, u32)> = seen.iter().enumerate().filter(|(_, c)| **c != 1).map(|(i, c)| (i, *c)).take(10).collect();
    assert!(wrong.is_empty(), "every record exactly once; (id, times) off: {wrong:?}");
    let store = block_on(S3Store::new(&t.s3_config("big/"))).unwrap();
    let sizes: Vec<u64> = block_on(store.list("parts/")).unwrap().iter().map(|m| m.size).collect();
    assert!(sizes.iter().any(|s| *s > 5 << 20), "some parts span several 5 MiB chunks: {sizes:?}");
    let pending = block_on(arkflow::state::backend::Multipart::pending(&store, "parts/")).unwrap();
    assert!(pending.is_empty(), "no upload is left pending: {pending:?}");
    eprintln!("s3 multipart: {killed} kills, {markers} markers, part sizes {sizes:?}");
}
