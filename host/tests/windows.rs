//! Event-time windows (`type: window`, stream `event_time:`), checked against results computed
//! here from the input, not by the host.
//!
//! The input is out of order: record `i` has time `10·i` minus a jitter of up to `max_delay_ms`
//! (so it is never late, whatever the batch cuts), and every 50th record of the second half is
//! 60 s behind (so it is always late: its windows closed long before). Each window's count and
//! sum must equal what the on-time records give; each late record must reach `error_output`
//! once with code `late`. Checked with 1, 2 and 4 workers, behind an exchange, for sliding
//! windows, across a SIGKILL loop (exactly-once output, also on the hybrid backend), and for a
//! session merged by a record that bridges two sessions. The same checks hold for the
//! `window_count` plugins (Rust, Python, JavaScript) built on host timers and for windowed
//! continuous SQL (`tumble`, `hop`), and processing-time timers are checked under a throttled
//! input across kills.

mod common;
use common::kill::{env_or, kill_repeatedly};
use common::s3::Moto;
use common::*;
use std::collections::BTreeMap;
use std::io::Write;

const DELAY: i64 = 2000;

/// (key, window start) -> (count, sum); and the ids of the late records.
type Expected = (BTreeMap<(String, i64), (i64, i64)>, Vec<u64>);

/// Writes `n` records over `keys` users; returns the expected windows of `size`/`slide`.
fn write_input(dir: &Dir, n: u64, keys: u64, size: i64, slide: i64) -> Expected {
    write_input_at(dir, n, keys, size, slide, 0)
}

/// `write_input` with every time shifted by `base` ms (0: the first times are negative).
fn write_input_at(dir: &Dir, n: u64, keys: u64, size: i64, slide: i64, base: i64) -> Expected {
    let mut f = std::io::BufWriter::new(std::fs::File::create(dir.path("in.jsonl")).unwrap());
    let (mut windows, mut late) = (BTreeMap::new(), Vec::new());
    for i in 0..n {
        let user = generated_key(5, keys, i);
        let v = (i % 7) as i64;
        let jitter = (generated_key(9, DELAY as u64, i)[1..].parse::<i64>().unwrap()) % DELAY;
        let is_late = i >= n / 2 && i % 50 == 0;
        let ts = base + if is_late { 10 * i as i64 - 60_000 } else { 10 * i as i64 - jitter };
        writeln!(f, "{{\"id\":{i},\"user\":\"{user}\",\"ts\":{ts},\"v\":{v}}}").unwrap();
        if is_late {
            late.push(i);
            continue;
        }
        let mut start = ts.div_euclid(slide) * slide;
        while start > ts - size {
            let w = windows.entry((user.clone(), start)).or_insert((0, 0));
            w.0 += 1;
            w.1 += v;
            start -= slide;
        }
    }
    f.flush().unwrap();
    (windows, late)
}

fn config(dir: &Dir, threads: usize, state: &str, input_extra: &str, before: &str, window: &str) -> std::path::PathBuf {
    let stage = format!("{before}        - {{ type: window, key_by: user, {window}, aggregates: {{ n: count, total: sum(v) }} }}\n");
    config_with(dir, threads, state, input_extra, &stage)
}

/// The stream over `in.jsonl` with event time `ts` and the processor lines `stages`.
fn config_with(dir: &Dir, threads: usize, state: &str, input_extra: &str, stages: &str) -> std::path::PathBuf {
    dir.config(&format!(
        "{state}streams:\n  - name: w\n    input: {{ type: file, path: {input}{batch}{input_extra} }}\n    event_time: {{ field: ts, max_delay_ms: {DELAY}, interval_ms: 1 }}\n    pipeline:\n      thread_num: {threads}\n      processors:\n{stages}    output: {{ type: file, path: {out} }}\n    error_output: {{ type: file, path: {err} }}\n    state: {{ operator_id: windows, enabled: true }}\n",
        input = dir.path("in.jsonl").display(),
        batch = if input_extra.contains("batch_size") { "" } else { ", batch_size: 97" },
        out = dir.path("out/out.jsonl").display(),
        err = dir.path("err/err.jsonl").display(),
    ))
}

/// The `window_count` timer plugin (`name`: its dist name) counting per user in `size_ms` windows.
fn timer_plugin(name: &str, size_ms: i64, domain: &str) -> String {
    format!("        - {{ type: wasm, path: {}, key_by: user, config: {{ size_ms: {size_ms}, key_field: user, domain: {domain} }} }}\n", plugin(name).display())
}

/// The output's windows and the late ids in `error_output` (parts or one file) match `want`.
fn check(dir: &Dir, want: &Expected, what: &str) {
    check_as(dir, want, what, ("user", "n", Some("total")))
}

/// `check` for output fields named (key, count, sum: None = not compared).
fn check_as(dir: &Dir, want: &Expected, what: &str, names: (&str, &str, Option<&str>)) {
    check_in(dir, ("out", "err"), want, what, names)
}

/// `check_as` on the output and error_output directories `subs`.
fn check_in(dir: &Dir, subs: (&str, &str), want: &Expected, what: &str, names: (&str, &str, Option<&str>)) {
    let lines = |sub: &str| {
        let d = dir.path(sub);
        let (parts, _) = read_parts(&d);
        parts
    };
    let mut got = BTreeMap::new();
    for l in lines(subs.0) {
        let k = (l[names.0].as_str().unwrap().to_string(), l["window_start"].as_i64().unwrap());
        let sum = names.2.map_or(0, |f| l[f].as_i64().unwrap());
        let prev = got.insert(k.clone(), (l[names.1].as_i64().unwrap(), sum));
        assert!(prev.is_none(), "{what}: window {k:?} emitted twice");
    }
    let want_sum = |v: &(i64, i64)| if names.2.is_some() { *v } else { (v.0, 0) };
    let missing: Vec<_> = want.0.iter().filter(|(k, v)| got.get(*k) != Some(&want_sum(v))).take(5).collect();
    assert!(missing.is_empty(), "{what}: {} windows expected, {} emitted; first differences (expected): {missing:?}", want.0.len(), got.len());
    assert_eq!(got.len(), want.0.len(), "{what}: no window beyond the expected ones");
    let mut late: Vec<u64> = lines(subs.1)
        .iter()
        .map(|e| {
            assert_eq!(e["error"]["code"], "late", "{what}: {e}");
            e["value"]["id"].as_u64().unwrap()
        })
        .collect();
    late.sort_unstable();
    assert_eq!(late, want.1, "{what}: each late record in error_output once");
}

#[test]
fn tumbling_windows_over_out_of_order_input_are_exact_with_1_2_and_4_workers_and_behind_an_exchange() {
    for (threads, before) in [(1, false), (2, false), (4, false), (2, true)] {
        let dir = Dir::new();
        let want = write_input(&dir, 20_000, 40, 5000, 5000);
        let filter = format!("        - {{ type: wasm, path: {}, config: {{ field: id, op: exists }} }}\n", plugin("filter").display());
        let cfg = config(&dir, threads, "", "", if before { &filter } else { "" }, "size_ms: 5000, allowed_lateness_ms: 1000");
        let v = String::from_utf8_lossy(&run(&cfg, &["--validate"]).stdout).into_owned();
        assert_eq!(v.contains("-> exchange ->"), before, "{v}");
        let o = run(&cfg, &[]);
        assert!(o.status.success(), "{}", stderr(&o));
        check(&dir, &want, &format!("thread_num {threads}, exchange {before}"));
    }
}

/// A windowed continuous SQL query over `in.jsonl` (`window`: its window function).
fn sql_window(window: &str, extra: &str) -> String {
    format!("        - {{ type: sql, query: \"SELECT user, {window} AS window_start, COUNT(*) AS n, SUM(v) AS total FROM flow GROUP BY user, window_start\"{extra} }}\n")
}

#[test]
fn sql_windows_over_out_of_order_input_are_exact_with_1_2_and_4_workers() {
    for (threads, window, size, slide, extra) in [
        (1, "tumble(INTERVAL '5 seconds')", 5000, 5000, ", allowed_lateness_ms: 1000"),
        (2, "tumble(INTERVAL '5 seconds')", 5000, 5000, ""),
        (4, "hop(INTERVAL '2 seconds', INTERVAL '6 seconds')", 6000, 2000, ""),
    ] {
        let dir = Dir::new();
        let want = write_input(&dir, 20_000, 40, size, slide);
        let cfg = config_with(&dir, threads, "", "", &sql_window(window, extra));
        let o = run(&cfg, &[]);
        assert!(o.status.success(), "{}", stderr(&o));
        check(&dir, &want, &format!("sql {window}, thread_num {threads}"));
    }
}

#[test]
fn sliding_windows_count_each_record_in_every_window_it_falls_in() {
    let dir = Dir::new();
    let want = write_input(&dir, 10_000, 20, 4000, 1000);
    let o = run(&config(&dir, 2, "", "", "", "kind: sliding, size_ms: 4000, slide_ms: 1000"), &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    check(&dir, &want, "sliding");
}

/// Two sessions of one key, then an out-of-order record within the gap of both: one session.
#[test]
fn a_record_that_bridges_two_sessions_merges_them() {
    let dir = Dir::new();
    let rows = [("a", 0), ("a", 500), ("b", 700), ("a", 1800), ("a", 1000), ("a", 9000), ("b", 9500)];
    let text: String = rows.iter().enumerate().map(|(i, (u, t))| format!("{{\"id\":{i},\"user\":\"{u}\",\"ts\":{t},\"v\":1}}\n")).collect();
    std::fs::write(dir.path("in.jsonl"), text).unwrap();
    let o = run(&config(&dir, 2, "", ", batch_size: 1", "", "kind: session, gap_ms: 1000"), &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let mut got: Vec<(String, i64, i64, i64)> = read_parts(&dir.path("out"))
        .0
        .iter()
        .map(|l| (l["user"].as_str().unwrap().into(), l["window_start"].as_i64().unwrap(), l["window_end"].as_i64().unwrap(), l["n"].as_i64().unwrap()))
        .collect();
    got.sort();
    let want = [("a", 0, 2800, 4), ("a", 9000, 10000, 1), ("b", 700, 1700, 1), ("b", 9500, 10500, 1)];
    assert_eq!(got, want.map(|(u, s, e, n)| (u.to_string(), s, e, n)), "a@1000 joins [0,1500) and [1800,2800)");
}

/// Records without the key field or the event time: the window stage fails them (`no-key`,
/// `no-event-time`) to error_output; a windowed SQL query fails the timeless ones and, as SQL
/// does, counts the keyless ones in a group of their own (the null key). Nothing is lost.
#[test]
fn records_without_a_key_or_event_time_are_failed_or_grouped_never_lost() {
    let dir = Dir::new();
    let rows = [
        r#"{"id":0,"user":"a","ts":100,"v":1}"#,
        r#"{"id":1,"ts":200,"v":1}"#,
        r#"{"id":2,"user":"a","v":1}"#,
        r#"{"id":3,"user":"b","ts":300,"v":1}"#,
        r#"{"id":4,"ts":400,"v":1}"#,
    ];
    std::fs::write(dir.path("in.jsonl"), rows.join("\n") + "\n").unwrap();
    let codes = |dir: &Dir| {
        let mut c: Vec<(u64, String)> =
            read_parts(&dir.path("err")).0.iter().map(|e| (e["value"]["id"].as_u64().unwrap(), e["error"]["code"].as_str().unwrap().to_string())).collect();
        c.sort();
        c
    };
    let o = run(&config(&dir, 2, "", ", batch_size: 2", "", "size_ms: 1000"), &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(codes(&dir), vec![(1, "no-key".into()), (2, "no-event-time".into()), (4, "no-key".into())]);
    let n: BTreeMap<String, i64> = read_parts(&dir.path("out")).0.iter().map(|l| (l["user"].to_string(), l["n"].as_i64().unwrap())).collect();
    assert_eq!(n, BTreeMap::from([("\"a\"".to_string(), 1), ("\"b\"".to_string(), 1)]));
    let dir2 = Dir::new();
    std::fs::write(dir2.path("in.jsonl"), rows.join("\n") + "\n").unwrap();
    let cfg = config_with(&dir2, 2, "", ", batch_size: 2", &sql_window("tumble(INTERVAL '1 second')", ""));
    let o = run(&cfg, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(codes(&dir2), vec![(2, "no-event-time".into())]);
    let n: BTreeMap<String, i64> =
        read_parts(&dir2.path("out")).0.iter().map(|l| (l.get("user").map_or("null".into(), |u| u.to_string()), l["n"].as_i64().unwrap())).collect();
    assert_eq!(n, BTreeMap::from([("\"a\"".to_string(), 1), ("\"b\"".to_string(), 1), ("null".to_string(), 2)]));
}

#[test]
fn a_window_without_event_time_or_with_bad_settings_is_refused_naming_the_place() {
    let dir = Dir::new();
    std::fs::write(dir.path("in.jsonl"), "{}\n").unwrap();
    let no_time = dir.config(&format!(
        "streams:\n  - input: {{ type: file, path: {} }}\n    pipeline:\n      processors:\n        - {{ type: window, size_ms: 10 }}\n    output: {{ type: drop }}\n",
        dir.path("in.jsonl").display()
    ));
    let err = stderr(&run(&no_time, &["--validate"]));
    assert!(err.contains("processors[0]") && err.contains("event_time"), "{err}");
    for (bad, says) in [
        ("kind: sliding, size_ms: 10", "slide_ms"),
        ("size_ms: 10, gap_ms: 5", "gap_ms"),
        ("kind: hourly, size_ms: 10", "tumbling"),
        ("size_ms: 10, aggregates: { s: 'median(v)' }", "median"),
    ] {
        let cfg = dir.config(&format!(
            "streams:\n  - input: {{ type: file, path: {} }}\n    event_time: {{ field: ts }}\n    pipeline:\n      processors:\n        - {{ type: window, {bad} }}\n    output: {{ type: drop }}\n",
            dir.path("in.jsonl").display()
        ));
        let err = stderr(&run(&cfg, &["--validate"]));
        assert!(err.contains(":6:") && err.contains(says), "{bad}: {err}");
    }
}

/// The same out-of-order input through the `window_count` plugin (host timers; the SDKs of all
/// six languages): each window's count as computed here, each late record in `error_output` once.
#[test]
fn timer_plugins_in_all_six_languages_count_event_time_windows_exactly() {
    // JavaScript: times from 1,000,000 ms on (its bindings cannot pass a negative time).
    for (name, n, base) in [
        ("window_count", 20_000, 0),
        ("window_count_c", 20_000, 0),
        ("window_count_zig", 20_000, 0),
        ("window_count_go", 10_000, 0),
        ("window_count_python", 4_000, 0),
        ("window_count_js", 4_000, 1_000_000),
    ] {
        let dir = Dir::new();
        let want = write_input_at(&dir, n, 30, 5000, 5000, base);
        let o = run(&config_with(&dir, 2, "", "", &timer_plugin(name, 5000, "event")), &[]);
        assert!(o.status.success(), "{name}: {}", stderr(&o));
        check_as(&dir, &want, name, ("key", "count", None));
    }
}

/// Processing-time windows of 200 ms over an input throttled to 2,000 records/s (8 s of input): windows are
/// emitted while the input still runs (the clock fires them, not the end), no window is emitted
/// twice across SIGKILLs and restarts, and per user the counts add up to the input exactly
/// (what had not fired at the end fires when the bounded input ends).
/// componentize-js cannot lower a negative s64: the JavaScript SDK refuses a timer before the
/// Unix epoch with a state error (code `negative-time`) the plugin turns into that record's
/// failure, instead of a trap. Every on-time record with a negative time fails so, once; the
/// windows from 0 on are exact.
#[test]
fn the_js_sdk_refuses_negative_timer_times_with_a_record_error_not_a_trap() {
    let dir = Dir::new();
    let (mut want, late) = write_input_at(&dir, 3_000, 10, 5000, 5000, -10_000);
    let negative: Vec<u64> = std::fs::read_to_string(dir.path("in.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["ts"].as_i64().unwrap() < 0 && !late.contains(&v["id"].as_u64().unwrap()))
        .map(|v| v["id"].as_u64().unwrap())
        .collect();
    assert!(negative.len() > 500, "the input has on-time records before the epoch");
    let o = run(&config_with(&dir, 1, "", "", &timer_plugin("window_count_js", 5000, "event")), &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let (mut refused, mut failed) = (Vec::new(), Vec::new());
    for e in read_parts(&dir.path("err")).0 {
        let id = e["value"]["id"].as_u64().unwrap();
        failed.push(id);
        match e["error"]["code"].as_str().unwrap() {
            // A late record's time is before the epoch too: either refusal is right.
            "negative-time" if !late.contains(&id) => refused.push(id),
            "negative-time" | "late" => assert!(late.contains(&id), "{e}"),
            other => panic!("unexpected error {other}: {e}"),
        }
    }
    refused.sort_unstable();
    assert_eq!(refused, negative, "each on-time record before the epoch refused once");
    failed.sort_unstable();
    let mut want_failed = [negative.clone(), late.clone()].concat();
    want_failed.sort_unstable();
    assert_eq!(failed, want_failed, "every refused or late record in error_output once");
    want.retain(|(_, start), _| *start >= 0);
    let got: BTreeMap<(String, i64), i64> = read_parts(&dir.path("out"))
        .0
        .iter()
        .map(|l| ((l["key"].as_str().unwrap().to_string(), l["window_start"].as_i64().unwrap()), l["count"].as_i64().unwrap()))
        .collect();
    assert_eq!(got, want.iter().map(|(k, v)| (k.clone(), v.0)).collect::<BTreeMap<_, _>>());
    assert!(!stderr(&o).contains("trap"), "{}", stderr(&o));
}

#[test]
fn processing_time_timers_fire_under_a_throttled_input_and_once_across_restarts() {
    let dir = Dir::new();
    let n = 16_000;
    write_input(&dir, n, 20, 1, 1);
    let sm = format!(
        "state_management:\n  enabled: true\n  backend_type: local\n  local_config: {{ path: {} }}\n  checkpoint_interval_ms: 100\n  exactly_once: true\n",
        dir.path("state").display()
    );
    let stage = timer_plugin("window_count", 200, "processing");
    let cfg = config_with(&dir, 2, &sm, ", rate_per_sec: 2000", &stage);
    let kills = kill_repeatedly(&cfg, 3, (1200, 1500));
    assert!(kills >= 3, "only {kills} kills landed");
    let fired_before_end = read_parts(&dir.path("out")).0.len();
    assert!(fired_before_end > 20, "windows fire by the clock while the input runs: {fired_before_end} emitted before the end");
    let o = run(&config_with(&dir, 1, &sm, "", &stage), &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let mut per_user: BTreeMap<String, i64> = BTreeMap::new();
    let mut seen = std::collections::BTreeSet::new();
    for l in read_parts(&dir.path("out")).0 {
        let k = (l["key"].as_str().unwrap().to_string(), l["window_start"].as_i64().unwrap());
        assert!(seen.insert(k.clone()), "window {k:?} emitted twice");
        *per_user.entry(k.0).or_default() += l["count"].as_i64().unwrap();
    }
    let mut want: BTreeMap<String, i64> = BTreeMap::new();
    for i in 0..n {
        *want.entry(generated_key(5, 20, i)).or_default() += 1;
    }
    assert_eq!(per_user, want, "every record counted in exactly one emitted window");
}

/// Three streams over `in.jsonl` under the state settings `sm`: the window stage (`stage`), the
/// `window_count` timer plugin (`plugin`) and a windowed SQL query (`sql`), each with its own
/// operator, output and error_output.
fn stage_and_plugin(dir: &Dir, sm: &str, threads: usize, rate: &str) -> std::path::PathBuf {
    let stream = |name: &str, stage: &str| {
        format!(
            "  - name: {name}\n    input: {{ type: file, path: {input}, batch_size: 97{rate} }}\n    event_time: {{ field: ts, max_delay_ms: {DELAY}, interval_ms: 1 }}\n    pipeline:\n      thread_num: {threads}\n      processors:\n{stage}    output: {{ type: file, path: {out} }}\n    error_output: {{ type: file, path: {err} }}\n    state: {{ operator_id: {name}, enabled: true }}\n",
            input = dir.path("in.jsonl").display(),
            out = dir.path(&format!("out_{name}/out.jsonl")).display(),
            err = dir.path(&format!("err_{name}/err.jsonl")).display(),
        )
    };
    dir.config(&format!(
        "{sm}streams:\n{}{}{}",
        stream("stage", "        - { type: window, key_by: user, size_ms: 5000, aggregates: { n: count, total: sum(v) } }\n"),
        stream("plugin", &timer_plugin("window_count", 5000, "event")),
        stream("sql", &sql_window("tumble(INTERVAL '5 seconds')", "")),
    ))
}

/// SIGKILLs `stage_and_plugin` under `sm` `kills` times at random moments (restarting with 1-4
/// workers), runs it to its end, and checks both outputs: every window once with its result,
/// every late record once in error_output.
fn kill_loop_stage_and_plugin(dir: &Dir, sm: &str, want: &Expected, kills: u64, rate: &str) -> String {
    let mut landed = 0;
    for round in 0..4 {
        landed += kill_repeatedly(&stage_and_plugin(dir, sm, 1 + round % 4, rate), kills / 4, (300, 1000));
    }
    assert!(landed * 5 >= kills * 4, "only {landed} of {kills} kills landed");
    let o = run(&stage_and_plugin(dir, sm, 3, ""), &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    check_in(dir, ("out_stage", "err_stage"), want, &format!("window stage after {landed} kills"), ("user", "n", Some("total")));
    check_in(dir, ("out_plugin", "err_plugin"), want, &format!("timer plugin after {landed} kills"), ("key", "count", None));
    check_in(dir, ("out_sql", "err_sql"), want, &format!("sql windows after {landed} kills"), ("user", "n", Some("total")));
    stderr(&o)
}

/// SIGKILLed at random moments (state and exactly-once output on the local backend), restarted
/// with 1-4 workers: every window, of the stage, the timer plugin and the SQL query, exactly
/// once with the right result, every late record once.
#[test]
fn windows_and_plugin_timers_are_exactly_once_across_a_kill_loop() {
    let dir = Dir::new();
    // Records enough for every kill to land on a running input (about 0.65 s each at 3,000/s).
    let kills = env_or("ARKFLOW_WINDOW_KILLS", 24);
    let want = write_input(&dir, env_or("ARKFLOW_WINDOW_RECORDS", kills * 2500), 100, 5000, 5000);
    let sm = format!(
        "state_management:\n  enabled: true\n  backend_type: local\n  local_config: {{ path: {} }}\n  checkpoint_interval_ms: 100\n  exactly_once: true\n",
        dir.path("state").display()
    );
    kill_loop_stage_and_plugin(&dir, &sm, &want, kills, ", rate_per_sec: 3000");
}

/// The same on the hybrid backend (S3 on moto, a 2 KiB RAM cache per worker against about 40 KiB
/// of open windows and timers per stream, so key groups holding them are evicted and reloaded).
#[test]
fn windows_and_plugin_timers_are_exactly_once_on_the_hybrid_backend_across_kills() {
    let dir = Dir::new();
    let moto = Moto::start();
    let kills = env_or("ARKFLOW_WINDOW_KILLS", 24) / 2;
    let want = write_input(&dir, env_or("ARKFLOW_WINDOW_RECORDS", kills * 2500), 400, 5000, 5000);
    let sm = format!(
        "state_management:\n  enabled: true\n  backend_type: hybrid\n{}  hybrid_config: {{ cache_kb: 2 }}\n  checkpoint_interval_ms: 100\n  exactly_once: true\n",
        moto.target.yaml_block(2, "windows/")
    );
    let log = kill_loop_stage_and_plugin(&dir, &sm, &want, kills, ", rate_per_sec: 2000");
    let evicted: Vec<u64> = log.lines().filter_map(|l| l.split("hybrid_evictions=").nth(1)?.split_whitespace().next()?.parse().ok()).collect();
    assert!(evicted.len() == 3 && evicted.iter().all(|n| *n > 0), "every stream evicted key groups in the last run: {evicted:?}\n{log}");
}
