//! `codec:` on inputs and outputs: the stage it stands for, where it runs, and its errors.

use super::tests::parse;
use crate::processor::codec_stage::{DecodeConfig, EncodeConfig};
use crate::processor::native_counter::NativeCounterConfig;

const AVSC: &str = r#"{"type":"record","name":"Count","fields":[{"name":"n","type":"long"}]}"#;

#[test]
fn codecs_are_stages_first_and_last_and_are_named_where_they_were_written() {
    let dir = tempfile::tempdir().unwrap();
    let schema = dir.path().join("count.avsc");
    std::fs::write(&schema, AVSC).unwrap();
    let text = format!(
        "streams:\n  - name: s\n    input: {{type: stdin, codec: {{registry_url: \"http://127.0.0.1:8081\", key_field: user}}}}\n    pipeline:\n      processors:\n        - type: native_counter\n    output:\n      type: stdout\n      codec: {{format: avro, schema_file: {}}}\n",
        schema.display()
    );
    let cfg = parse(&text).unwrap();
    let s = &cfg.streams[0];
    let stages = &s.pipeline.processors;
    assert_eq!(stages.len(), 3);
    let decode = stages[0].get::<DecodeConfig>().expect("the input's codec runs first");
    assert_eq!((decode.registry_url.as_deref(), decode.key_field.as_deref()), (Some("http://127.0.0.1:8081"), Some("user")));
    assert!(stages[1].get::<NativeCounterConfig>().is_some());
    assert!(stages[2].get::<EncodeConfig>().is_some(), "the output's codec runs last");
    assert_eq!(s.pipeline.codecs, (true, true));
    let labels: Vec<String> = (0..3).map(|i| s.stage_label(i)).collect();
    assert_eq!(labels, ["streams[s].input.codec", "streams[s].pipeline.processors[0]", "streams[s].output.codec"]);

    // Without codecs, stages are labelled by their place in the file.
    let plain = parse("streams:\n  - name: p\n    input: {type: stdin}\n    pipeline:\n      processors: [{type: native_counter}]\n    output: {type: drop}\n")
        .unwrap();
    assert_eq!((plain.streams[0].pipeline.codecs, plain.streams[0].stage_label(0)), ((false, false), "streams[p].pipeline.processors[0]".to_string()));
}

fn err(text: &str) -> String {
    parse(text).expect_err("expected an error").to_string()
}

#[test]
fn a_bad_codec_is_refused_where_it_is_written() {
    let head = "streams:\n  - name: s\n";
    assert_eq!(
        err(&format!("{head}    input: {{type: stdin, codec: {{type: avro}}}}\n    output: {{type: drop}}\n")),
        "config.yaml:3:34: streams[0].input.codec.type: a codec has no `type`; its keys are the `type: decode` stage's (`format`, `schema_file`, `registry_url`, ...)"
    );
    assert_eq!(
        err(&format!("{head}    input: {{type: stdin, codec: avro}}\n    output: {{type: drop}}\n")),
        "config.yaml:3:33: invalid value for streams[0].input.codec: expected a mapping of `decode` settings (`{format: avro, schema_file: ...}`)"
    );
    assert!(err(&format!("{head}    input: {{type: stdin, codec: {{formta: avro}}}}\n    output: {{type: drop}}\n"))
        .starts_with("config.yaml:3:34: unknown key `formta` in streams[0].input.codec (did you mean `format`?)"));
    let e = err(&format!("{head}    input: {{type: stdin}}\n    output: {{type: drop, codec: {{format: avro, schema_file: nope.avsc}}}}\n"));
    assert!(e.starts_with("config.yaml:4:61: streams[0].output.codec.schema_file: "), "{e}");
    let refused = "only `input:` and the main `output:` take a codec";
    let e = err(&format!("{head}    input: {{type: stdin}}\n    output: {{type: drop}}\n    error_output: {{type: drop, codec: {{}}}}\n"));
    assert!(e.starts_with("config.yaml:5:32: streams[0].error_output.codec: ") && e.contains(refused), "{e}");
    let e = err(&format!("{head}    input: {{type: stdin}}\n    output: {{type: drop}}\n    outputs:\n      audit: {{type: drop, codec: {{}}}}\n"));
    assert!(e.starts_with("config.yaml:6:27: streams[0].outputs.audit.codec: ") && e.contains(refused), "{e}");
}
