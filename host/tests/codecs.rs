//! The `encode` and `decode` processors with the real binary.
//! - Avro and Protobuf round trips: JSON records encoded, then decoded back, in one pipeline,
//!   equal what went in; a record that does not fit the schema goes to `error_output` with code
//!   `encode` and its source position, and the rest go on.
//! - Through a schema registry (`common::registry`: Karapace on a Kafka-protocol broker, both on
//!   127.0.0.1): one stream encodes records into the registry's wire format onto a NATS JetStream
//!   stream (registering the schema), a second decodes them by schema id; Avro and Protobuf.
//!   The Protobuf pair uses the `codec:` shorthand on the output and the input instead of stages.
//! - A registry that requires HTTP basic auth refuses a stream without `registry_auth` (or with a
//!   wrong password) at start, and serves one with it.

mod common;
use common::*;

const AVSC: &str = r#"{"type":"record","name":"Order","namespace":"shop","fields":[
  {"name":"id","type":"long"},{"name":"user","type":"string"},
  {"name":"note","type":["null","string"],"default":null}]}"#;

const PROTO: &str = r#"syntax = "proto3";
package shop;
message Order {
  int64 id = 1;
  string user = 2;
  string note = 3;
}
"#;

/// Writes the schema files into `dir`.
fn schemas(dir: &Dir) {
    std::fs::write(dir.path("order.avsc"), AVSC).unwrap();
    std::fs::write(dir.path("order.proto"), PROTO).unwrap();
}

fn round_trip(format: &str, extra: &str) {
    let dir = Dir::new();
    schemas(&dir);
    let file = if format == "avro" { "order.avsc" } else { "order.proto" };
    let lines: Vec<String> = (0..500).map(|i| format!("{{\"id\":{i},\"user\":\"u{}\",\"note\":\"n{i}\"}}", i % 7)).collect();
    let mut input = lines.join("\n");
    input.push_str("\n{\"id\":\"not a number\",\"user\":\"x\",\"note\":\"bad\"}\n");
    std::fs::write(dir.path("in.jsonl"), input).unwrap();
    let cfg = dir.config(&format!(
        r#"
streams:
  - input: {{ type: file, path: in.jsonl }}
    pipeline:
      processors:
        - {{ type: encode, format: {format}, schema_file: {file}{extra} }}
        - {{ type: decode, format: {format}, schema_file: {file}{extra} }}
    output: {{ type: file, path: out.jsonl }}
    error_output: {{ type: file, path: errors.jsonl }}
"#
    ));
    let out = run(&cfg, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let got = json_lines(&dir.path("out.jsonl"));
    let want: Vec<serde_json::Value> = lines.iter().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(got, want, "{format}: every record decodes to what was encoded");
    let errors = json_lines(&dir.path("errors.jsonl"));
    assert_eq!(errors.len(), 1, "{format}: the record that does not fit is an error record: {errors:?}");
    assert_eq!((errors[0]["error"]["code"].as_str(), errors[0]["offset"].as_u64()), (Some("encode"), Some(500)));
    assert!(errors[0]["error"]["message"].as_str().unwrap().contains("does not fit"), "{}", errors[0]);
}

#[test]
fn avro_round_trip_and_a_bad_record_to_error_output() {
    round_trip("avro", "");
}

#[test]
fn protobuf_round_trip_and_a_bad_record_to_error_output() {
    round_trip("protobuf", ", message: shop.Order");
}

#[test]
fn bad_codec_settings_are_refused_at_their_place() {
    let dir = Dir::new();
    schemas(&dir);
    let check = |processor: &str, want: &str| {
        let cfg = dir.config(&format!(
            "streams:\n  - input: {{ type: memory, messages: ['{{}}'] }}\n    pipeline:\n      processors:\n        - {processor}\n    output: {{ type: drop }}\n"
        ));
        let out = run(&cfg, &[]);
        assert!(!out.status.success());
        assert!(stderr(&out).contains(want), "{processor}: want {want:?} in {}", stderr(&out));
    };
    check("{ type: decode, format: protobuf, schema_file: order.proto, message: shop.Nope }", "config.yaml:5:");
    check("{ type: decode, format: protobuf, schema_file: order.proto, message: shop.Nope }", "streams[0].pipeline.processors[0].schema_file");
    check("{ type: decode, format: protobuf, schema_file: order.proto, message: shop.Nope }", "no message `shop.Nope` (messages: shop.Order)");
    check("{ type: decode, format: avro, schema_file: order.proto }", "not an Avro schema");
    check("{ type: decode, format: protobuf, schema_file: order.proto }", "message");
    check("{ type: encode, format: avro, schema_file: order.avsc, registry_url: 'http://127.0.0.1:1' }", "`registry_url` and `subject` go together");
    check("{ type: decode }", "needs `schema_file`");
    check("{ type: decode, format: avro, schema_file: order.avsc, registry_auth: { type: bearer, token: t } }", "registry_auth needs `registry_url`");
    check("{ type: decode, registry_url: 'http://127.0.0.1:1', registry_auth: { type: basic } }", "registry_auth.username is required");
}

#[test]
fn a_registry_that_requires_credentials_gets_them_from_registry_auth() {
    let registry = common::registry::Registry::start_with_auth(Some(("arkflow", "s3cret-pw")));
    let dir = Dir::new();
    schemas(&dir);
    let lines: Vec<String> = (0..50).map(|i| format!("{{\"id\":{i},\"user\":\"u{i}\",\"note\":null}}")).collect();
    std::fs::write(dir.path("in.jsonl"), lines.join("\n") + "\n").unwrap();
    let cfg = |auth: &str| {
        dir.config(&format!(
            "streams:\n  - input: {{ type: file, path: in.jsonl }}\n    pipeline:\n      processors:\n        - {{ type: encode, format: avro, schema_file: order.avsc, registry_url: '{url}', subject: orders-value{auth} }}\n        - {{ type: decode, registry_url: '{url}'{auth} }}\n    output: {{ type: file, path: out.jsonl }}\n",
            url = registry.url()
        ))
    };
    // Without credentials, or with a wrong password, the registry refuses the registration and
    // the start says so (never the password).
    for auth in ["", ", registry_auth: { type: basic, username: arkflow, password: wrong-pw }"] {
        let out = run(&cfg(auth), &[]);
        assert!(!out.status.success(), "refused: {auth}");
        let err = stderr(&out);
        assert!(err.contains("401") && err.contains("registering the schema failed"), "{auth}: {err}");
        assert!(!err.contains("wrong-pw"), "{err}");
    }
    // With them: the schema is registered and fetched back, every record unchanged.
    let out = run(&cfg(", registry_auth: { type: basic, username: arkflow, password: s3cret-pw }"), &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stderr(&out).contains("s3cret-pw"));
    let want: Vec<serde_json::Value> = lines.iter().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(json_lines(&dir.path("out.jsonl")), want);
}

/// Encodes `lines` through the registry onto NATS subject `subject`, then decodes them back:
/// with `encode` and `decode` stages, or (`shorthand`) with the output's and the input's `codec:`.
fn through_registry(
    dir: &Dir,
    registry: &common::registry::Registry,
    nats: &common::nats::Nats,
    encode: &str,
    subject: &str,
    lines: &[String],
    shorthand: bool,
) -> Vec<serde_json::Value> {
    let stream = subject.to_ascii_uppercase();
    nats.create_stream(&stream, &[subject]);
    let input = dir.path(&format!("{subject}.jsonl"));
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();
    let encode = format!("{encode}, registry_url: '{}', subject: {subject}-value", registry.url());
    let (stages, codec) = match shorthand {
        false => (format!("    pipeline:\n      processors:\n        - {{ type: encode, {encode} }}\n"), String::new()),
        true => (String::new(), format!(", codec: {{ {encode} }}")),
    };
    let produce = dir.config(&format!(
        "streams:\n  - input: {{ type: file, path: {} }}\n{stages}    output: {{ type: nats, url: '{}', subject: {subject}{codec} }}\n",
        input.display(),
        nats.url()
    ));
    let out = run(&produce, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let decoded = dir.path(&format!("{subject}.out.jsonl"));
    let decode = format!("registry_url: '{}', key_field: user", registry.url());
    let (stages, codec) = match shorthand {
        false => (format!("    pipeline:\n      processors:\n        - {{ type: decode, {decode} }}\n"), String::new()),
        true => (String::new(), format!(", codec: {{ {decode} }}")),
    };
    let consume = dir.config(&format!(
        "streams:\n  - input: {{ type: nats, url: '{}', stream: {stream}, stop_at_end: true{codec} }}\n{stages}    output: {{ type: file, path: {} }}\n",
        nats.url(),
        decoded.display()
    ));
    let out = run(&consume, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    // The messages are in the wire format, under the id the registry gave the subject's schema.
    let (code, latest) = http_request_or(registry.port, "GET", &format!("/subjects/{subject}-value/versions/latest"));
    assert_eq!(code, 200, "{latest}");
    let id = serde_json::from_str::<serde_json::Value>(latest.trim()).unwrap()["id"].as_u64().unwrap() as u32;
    for (payload, _) in nats.read_all(&stream) {
        assert_eq!((payload[0], u32::from_be_bytes(payload[1..5].try_into().unwrap())), (0, id), "a zero byte and the schema id lead every message");
    }
    // Sorted by id: the decode stage keys records by user, and keys may interleave differently.
    let mut got = json_lines(&decoded);
    got.sort_by_key(|v| v["id"].as_u64());
    got
}

#[test]
fn avro_and_protobuf_round_trip_through_a_schema_registry() {
    let registry = common::registry::Registry::start();
    let nats = common::nats::Nats::start();
    let dir = Dir::new();
    schemas(&dir);
    let lines: Vec<String> = (0..300).map(|i| format!("{{\"id\":{i},\"user\":\"u{}\",\"note\":\"n{i}\"}}", i % 5)).collect();
    let want: Vec<serde_json::Value> = lines.iter().map(|l| serde_json::from_str(l).unwrap()).collect();
    let avro = through_registry(&dir, &registry, &nats, &format!("format: avro, schema_file: {}", dir.path("order.avsc").display()), "avro", &lines, false);
    assert_eq!(avro, want, "Avro through the registry");
    let proto = format!("format: protobuf, schema_file: {}, message: shop.Order", dir.path("order.proto").display());
    // The `codec:` shorthand on the output and the input does what the stages do.
    let protobuf = through_registry(&dir, &registry, &nats, &proto, "proto", &lines, true);
    assert_eq!(protobuf, want, "Protobuf through the registry, with codec: on the output and the input");
}

#[test]
fn an_unknown_schema_id_is_an_error_record() {
    let registry = common::registry::Registry::start();
    let dir = Dir::new();
    // A value in the wire format naming schema id 4112 (0x1010), which the registry does not have.
    let cfg = dir.config(&format!(
        "streams:\n  - input: {{ type: memory, messages: [\"\\x00\\x00\\x00\\x10\\x10ab\"] }}\n    pipeline:\n      processors:\n        - {{ type: decode, registry_url: '{}' }}\n    output: {{ type: drop }}\n    error_output: {{ type: file, path: errors.jsonl }}\n",
        registry.url()
    ));
    let out = run(&cfg, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let errors = json_lines(&dir.path("errors.jsonl"));
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0]["error"]["code"], "decode");
    assert!(errors[0]["error"]["message"].as_str().unwrap().contains("schema id 4112: the registry has no such schema"), "{}", errors[0]);
}
