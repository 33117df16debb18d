//! Loader error tests: every message is checked verbatim, including file:line:col.

use super::tests::{parse, SEED};
use super::ConfigErrorKind as K;

/// Loads `text` as config.yaml and returns the error's Display text.
fn err(text: &str) -> String {
    parse(text).expect_err("expected an error").to_string()
}

fn kind(text: &str) -> K {
    parse(text).expect_err("expected an error").kind()
}

const HEAD: &str = "streams:\n  - name: a\n";

#[test]
fn unknown_keys_are_located_with_suggestions() {
    let text = format!("{HEAD}    input:\n      tpye: generate\n    output: {{type: drop}}\n");
    assert_eq!(err(&text), "config.yaml:4:7: unknown key `tpye` in streams[0].input (did you mean `type`?)");
    let e = parse(&text).unwrap_err();
    assert_eq!(e.kind(), K::UnknownKey);
    assert_eq!(e.location(), Some(("config.yaml".to_string(), 4, 7)));
    assert_eq!(e.path(), Some("streams[0].input"));

    let text = format!("{HEAD}    input: {{type: generate, cuont: 5}}\n    output: {{type: drop}}\n");
    assert_eq!(err(&text), "config.yaml:3:29: unknown key `cuont` in streams[0].input (did you mean `count`?)");

    let text = format!(
        "{HEAD}    input: {{type: stdin}}\n    pipeline:\n      processors:\n        - type: native_counter\n        - type: wasm\n          path: x.wasm\n          limits:\n            memory_mb: 1\n            memroy_mb: 2\n    output: {{type: drop}}\n"
    );
    assert_eq!(err(&text), "config.yaml:11:13: unknown key `memroy_mb` in streams[0].pipeline.processors[1].limits (did you mean `memory_mb`?)");

    assert_eq!(err("stream: []\n"), "config.yaml:1:1: unknown key `stream` at the top level (did you mean `streams`?)");
    let text = format!("{HEAD}    input: {{type: stdin}}\n    output: {{type: drop, zzz: 1}}\n");
    assert_eq!(err(&text), "config.yaml:4:26: unknown key `zzz` in streams[0].output (known keys: type)");
    let text = format!("{HEAD}    input: {{type: stdin}}\n    output: {{type: drop}}\n    wibble: 1\n");
    assert!(err(&text).starts_with("config.yaml:5:5: unknown key `wibble` in streams[0] (known keys: name, input, pipeline,"));
}

#[test]
fn bad_types_are_located_at_the_value() {
    let text = format!("{HEAD}    input: {{type: generate, context: '[1, 2]'}}\n    output: {{type: drop}}\n");
    assert_eq!(err(&text), r#"config.yaml:3:38: `context` must be a JSON object, e.g. '{"value": 10}'"#);
    let text = format!("{HEAD}    input: {{type: generate, context: '{{\"a\": '}}\n    output: {{type: drop}}\n");
    assert!(err(&text).starts_with("config.yaml:3:38: `context` is not JSON: EOF while parsing"), "{}", err(&text));
    let text = format!("{HEAD}    input:\n      type: generate\n      count: abc\n    output: {{type: drop}}\n");
    assert_eq!(err(&text), "config.yaml:5:14: invalid value for streams[0].input.count: expected a non-negative integer, found string \"abc\"");
    assert_eq!(kind(&text), K::InvalidType);
    let text = "state_management:\n  key_groups: -3\nstreams: []\n";
    assert_eq!(
        err(text),
        "config.yaml:2:15: invalid value for state_management.key_groups: expected a non-negative integer (at most 4294967295), found integer -3"
    );
    let text = "state_management:\n  enabled: yes please\nstreams: []\n";
    assert_eq!(err(text), "config.yaml:2:12: invalid value for state_management.enabled: expected a boolean (true or false), found string \"yes please\"");
    assert_eq!(err("streams: 5\n"), "config.yaml:1:10: invalid value for streams: expected a list, found integer 5");
    let text = format!("{HEAD}    input: generate\n    output: {{type: drop}}\n");
    assert_eq!(
        err(&text),
        "config.yaml:3:12: invalid value for streams[0].input: expected a mapping with a `type` key (one of: generate, file, stdin, memory, kafka, http, mqtt, nats), found string \"generate\""
    );
}

#[test]
fn missing_required_keys_name_the_map() {
    let text =
        format!("{HEAD}    input: {{type: stdin}}\n    pipeline:\n      processors:\n        - type: wasm\n          retries: 1\n    output: {{type: drop}}\n");
    assert_eq!(err(&text), "config.yaml:6:11: missing required key `path` in streams[0].pipeline.processors[0]");
    assert_eq!(kind(&text), K::MissingKey);
    assert_eq!(err("streams:\n  - name: a\n    input: {type: stdin}\n"), "config.yaml:2:5: missing required key `output` in streams[0]");
    assert_eq!(err("state_management: {}\n"), "config.yaml:1:1: missing required key `streams` in the top level");
    let text = format!("{HEAD}    input: {{count: 3}}\n    output: {{type: drop}}\n");
    assert_eq!(
        err(&text),
        "config.yaml:3:12: missing required key `type` in streams[0].input (known input types: generate, file, stdin, memory, kafka, http, mqtt, nats)"
    );
    assert_eq!(err(""), "config.yaml: the configuration is empty: expected a mapping with at least a `streams:` list");
}

#[test]
fn unsupported_types_fail_clearly() {
    let text = "streams:\n  - input:\n      type: pulsar\n      brokers: [localhost:9092]\n      topics: [orders]\n    pipeline:\n      processors:\n        - type: sql\n          query: SELECT 1\n    output: {type: stdout}\n";
    assert_eq!(
        err(text),
        "config.yaml:3:13: unknown input type `pulsar` at streams[0].input.type (known: generate, file, stdin, memory, kafka, http, mqtt, nats)"
    );
    assert_eq!(kind(text), K::UnknownVariant);
    let text = text.replace("pulsar", "kafka").replace("type: sql", "type: sqll");
    assert_eq!(
        err(&text),
        "config.yaml:8:17: unknown processor type `sqll` at streams[0].pipeline.processors[0].type (did you mean `sql`? known: wasm, sql, json_to_arrow, arrow_to_json, native_counter, window, decode, encode)"
    );
    let text = format!("{HEAD}    input: {{type: stdin}}\n    output: {{type: stdot}}\n");
    assert_eq!(
        err(&text),
        "config.yaml:4:20: unknown output type `stdot` at streams[0].output.type (did you mean `stdout`? known: stdout, file, kafka, s3, http, postgres, mqtt, nats, redis, drop)"
    );
}

#[test]
fn enum_names_list_the_known_ones() {
    let text = SEED.replace("backend_type: memory", "backend_type: redis");
    assert_eq!(err(&text), "config.yaml:3:17: unknown backend_type `redis` at state_management.backend_type (known: memory, s3, hybrid, local)");
    let text = SEED.replace("on_failure: fail", "on_failure: retry");
    assert!(
        err(&text).starts_with("config.yaml:31:23: unknown on_failure `retry` at streams[0].pipeline.processors[0].on_failure (known: fail, error_output)"),
        "{}",
        err(&text)
    );
    let text = SEED.replace("type: stdout ", "{type: stdout, format: xml}");
    assert!(err(&text).contains("unknown format `xml` at streams[0].output.format (known: json, raw)"), "{}", err(&text));
    let text = SEED.replace("backend_type: memory", "backend_type: hybrid");
    assert!(parse(&text).is_ok());
    let text = SEED.replace("on_failure: fail", "on_failure: error_output");
    assert!(parse(&text).is_ok());
}

#[test]
fn validation_rules() {
    let one = |extra: &str| format!("{HEAD}    input: {{type: stdin}}\n    output: {{type: drop}}\n{extra}");
    assert_eq!(err(&one("    pipeline: {thread_num: 0}\n")), "config.yaml:5:28: streams[0].pipeline.thread_num must be at least 1, got 0");
    assert_eq!(kind(&one("    pipeline: {thread_num: 0}\n")), K::Invalid);
    assert!(err(&one("    pipeline: {batch_size: 0}\n")).ends_with("streams[0].pipeline.batch_size must be at least 1, got 0"));
    let text = format!("state_management: {{key_groups: 2}}\n{}", one("    pipeline: {thread_num: 4}\n"));
    assert!(err(&text).starts_with("config.yaml:6:28: streams[0].pipeline.thread_num (4) must not exceed state_management.key_groups (2)"));
    assert!(err("state_management: {key_groups: 0}\nstreams: []\n").starts_with("config.yaml:1:32: state_management.key_groups must be at least 1"));
    assert_eq!(
        err(&one("    state: {custom_keys: [a, b, a]}\n")),
        "config.yaml:5:33: duplicate custom key `a` in streams[0].state.custom_keys (also at index 0)"
    );
    assert!(err(&one("    state: {custom_keys: [default]}\n")).contains("5:27: streams[0].state.custom_keys[0]: `default` is reserved"));
    assert!(err(&one("    state: {custom_keys: [a, $timers]}\n"))
        .contains("5:30: streams[0].state.custom_keys[1]: `$timers`: store names starting with `$` are reserved"));
    assert_eq!(
        err("state_management:\n  backend_type: s3\nstreams: []\n"),
        "config.yaml:2:17: state_management.s3_config is required when backend_type is `s3` (add s3_config: {bucket: ...})"
    );
    let text = format!("{}  - name: a\n    input: {{type: stdin}}\n    output: {{type: drop}}\n", one(""));
    assert_eq!(err(&text), "config.yaml:5:11: duplicate stream name `a`: streams[0] has the same name");
    let text = format!("{}  - input: {{type: stdin}}\n    output: {{type: drop}}\n    state: {{operator_id: a}}\n", one(""));
    assert!(err(&text).starts_with("config.yaml:7:26: duplicate state operator_id `a`"), "{}", err(&text));
    assert_eq!(err("streams: []\n"), "config.yaml:1:10: streams must list at least one stream");
    let text = one("    pipeline: {processors: [{type: wasm, path: p.wasm, on_failure: error_output}]}\n");
    assert!(err(&text).contains("on_failure is `error_output` but streams[0] has no `error_output:` section"));
    assert!(err(&one("    pipeline: {processors: [{type: wasm, path: p.wasm, limits: {memory_mb: 0}}]}\n")).contains("limits.memory_mb must be at least 1"));
}

#[test]
fn syntax_errors_and_duplicates_are_located() {
    let e = parse("streams:\n  - name: a\n    name: b\n").unwrap_err();
    assert_eq!(e.to_string(), "config.yaml:3:5: invalid YAML: duplicate key `name` in streams[0]");
    assert_eq!(e.kind(), K::Syntax);
    let e = parse("streams: [a, b\nx: 1\n").unwrap_err();
    assert_eq!(e.kind(), K::Syntax);
    assert_eq!(e.location().map(|l| l.1), Some(2));
    let e = EngineConfig_from_str_no_origin("a:\n\tb: 1\n");
    assert!(e.starts_with("<config>:2:"), "{e}");
}

#[allow(non_snake_case)]
fn EngineConfig_from_str_no_origin(text: &str) -> String {
    super::EngineConfig::from_yaml_str(text, None).unwrap_err().to_string()
}

#[test]
fn kafka_sections_are_checked() {
    let kafka = |input: &str, output: &str| format!("streams:\n  - input: {input}\n    output: {output}\n");
    let ok_in = "{type: kafka, brokers: [\"127.0.0.1:9092\"], topics: [orders]}";
    assert_eq!(
        err(&kafka("{type: kafka, brokers: [], topics: [orders]}", "{type: drop}")),
        "config.yaml:2:35: streams[0].input.brokers must be a non-empty list of non-empty names"
    );
    assert_eq!(
        err(&kafka(ok_in, "{type: kafka, brokers: [b], topic: t, acks: 1, exactly_once: true}")),
        "config.yaml:3:74: streams[0].output.exactly_once needs acks: all"
    );
    assert!(err(&kafka(ok_in, "{type: kafka, brokers: [b], topic: t, acks: 2}")).contains("unknown acks `2`"));
    assert!(err(&kafka("{type: kafka, brokers: [b], topics: [t], start_from: newest}", "{type: drop}")).contains("unknown start_from `newest`"));
    assert!(err(&kafka(ok_in, "{type: kafka, brokers: [b], topic: t, compresion: lz4}")).contains("did you mean `compression`"));
}

mod fuzz {
    use super::super::tests::{parse, SEED};
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]
        /// The loader never panics: random text, and the seed with random bytes replaced,
        /// inserted or cut, load or fail with an error that names config.yaml.
        #[test]
        fn the_loader_never_panics(noise in ".{0,200}", pos in any::<prop::sample::Index>(), cut in any::<prop::sample::Index>(), byte in prop::sample::select(b":-{}[]\n #&*!|>'\"%@`,?0a".to_vec())) {
            if let Err(e) = parse(&noise) {
                prop_assert!(e.to_string().contains("config.yaml"), "{}", e);
            }
            let mut b = SEED.as_bytes().to_vec();
            let i = pos.index(b.len());
            b[i] = byte;
            let text = String::from_utf8_lossy(&b).into_owned();
            if let Err(e) = parse(&text) {
                prop_assert!(e.to_string().contains("config.yaml"), "{}", e);
            }
            let mut c = SEED.as_bytes().to_vec();
            c.insert(cut.index(c.len()), byte);
            let _ = parse(&String::from_utf8_lossy(&c));
            let _ = parse(&SEED[..SEED.char_indices().map(|(i, _)| i).nth(cut.index(SEED.chars().count())).unwrap_or(0)]);
        }
    }
}

#[test]
fn named_outputs_are_checked() {
    let head = format!("{HEAD}    input: {{type: stdin}}\n    output: {{type: file, path: /tmp/main.jsonl}}\n");
    let ok = parse(&format!("{head}    outputs:\n      audit: {{type: drop}}\n      late-1: {{type: stdout}}\n")).unwrap();
    let names: Vec<&str> = ok.streams[0].outputs.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["audit", "late-1"], "file order kept");
    assert_eq!(
        err(&format!("{head}    outputs:\n      \"a b\": {{type: drop}}\n")),
        "config.yaml:6:7: streams[0].outputs.a b: output name `a b` must be 1-64 characters of letters, digits, `_` and `-`"
    );
    assert_eq!(
        err(&format!("{head}    outputs: [audit]\n")),
        "config.yaml:5:14: invalid value for streams[0].outputs: expected a mapping of output names to outputs (`outputs: {audit: {type: file, path: audit.jsonl}}`)"
    );
    assert!(err(&format!("{head}    outputs:\n      audit: {{type: nope}}\n"))
        .starts_with("config.yaml:6:21: unknown output type `nope` at streams[0].outputs.audit.type"));
    assert_eq!(
        err(&format!("{head}    outputs:\n      audit: {{type: file, path: /tmp/main.jsonl}}\n")),
        "config.yaml:6:33: streams[0].outputs.audit.path writes /tmp/main.jsonl, which streams[0].output.path writes too: two outputs in one file would interleave (and exactly-once parts of one would be taken for the other's)"
    );
}
