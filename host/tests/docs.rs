//! docs/CONFIG.md documents every connector and processor type the loader knows, and every key
//! of each: the tables come from the same registry the loader dispatches on
//! (`connectors::registry`, `arkflow schema`), so a new connector or key without its docs fails
//! here.

use serde_json::Value;

/// `oneOf` variants of section `name` (input, output, processors' items) in the config schema.
fn variants<'a>(schema: &'a Value, section: &str) -> Vec<&'a Value> {
    fn find<'a>(v: &'a Value, section: &str, out: &mut Vec<&'a Value>) {
        match v {
            Value::Object(o) => {
                if let Some(Value::Object(props)) = o.get("properties") {
                    let here = match section {
                        "processors" => props.contains_key("processors") && props.contains_key("thread_num"),
                        _ => props.contains_key("input") && props.contains_key("output"),
                    };
                    if here {
                        let s = if section == "processors" { &props["processors"]["items"] } else { &props[section] };
                        out.extend(s["oneOf"].as_array().into_iter().flatten());
                        return;
                    }
                }
                o.values().for_each(|c| find(c, section, out));
            }
            Value::Array(a) => a.iter().for_each(|c| find(c, section, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    find(schema, section, &mut out);
    out
}

/// The text of `### `type: name`` under `## heading` in CONFIG.md.
fn section<'a>(doc: &'a str, heading: &str, name: &str) -> Option<&'a str> {
    let part = &doc[doc.find(&format!("\n## {heading}\n"))?..];
    let end = part[4..].find("\n## ").map_or(part.len(), |e| e + 4);
    let part = &part[..end];
    let start = part.find(&format!("### `type: {name}`")).or_else(|| part.find(&format!("`type: {name}`")))?;
    let rest = &part[start + 1..];
    Some(&part[start..start + 1 + rest.find("\n### ").unwrap_or(rest.len())])
}

#[test]
fn config_md_documents_every_type_and_key() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/CONFIG.md")).expect("docs/CONFIG.md");
    let schema = arkflow::registry::json_schema();
    let mut missing = Vec::new();
    let mut seen = 0;
    for (heading, sec) in [("Inputs", "input"), ("Outputs", "output"), ("Processors", "processors")] {
        let vs = variants(&schema, sec);
        assert!(!vs.is_empty(), "no {sec} types in the schema");
        for v in vs {
            let name = v["title"].as_str().expect("type title");
            seen += 1;
            let Some(text) = section(&doc, heading, name) else {
                missing.push(format!("## {heading}: no section for `type: {name}`"));
                continue;
            };
            // `codec` is the same on every input and output: documented once, under the heading.
            for key in v["properties"].as_object().into_iter().flatten().map(|(k, _)| k).filter(|k| *k != "type" && *k != "codec") {
                if !text.contains(&format!("`{key}`")) {
                    missing.push(format!("## {heading}, `type: {name}`: key `{key}` is not documented"));
                }
            }
        }
    }
    assert!(seen >= 12, "found only {seen} types in the schema");
    for heading in ["Inputs", "Outputs"] {
        let part = &doc[doc.find(&format!("\n## {heading}\n")).unwrap()..];
        let intro = &part[..part.find("\n### ").unwrap_or(part.len())];
        if !intro.contains("`codec`") {
            missing.push(format!("## {heading}: the `codec` shorthand is not documented before the first type"));
        }
    }
    assert!(missing.is_empty(), "docs/CONFIG.md is missing:\n  {}", missing.join("\n  "));
}

#[test]
fn the_registry_lists_each_type_once_and_the_schema_has_them_all() {
    let inputs: Vec<&str> = arkflow::connectors::registry::INPUTS.iter().map(|e| e.name()).collect();
    let outputs: Vec<&str> = arkflow::connectors::registry::OUTPUTS.iter().map(|e| e.name()).collect();
    let processors: Vec<&str> = arkflow::processor::registry::PROCESSORS.iter().map(|e| e.name()).collect();
    for list in [&inputs, &outputs, &processors] {
        let mut sorted = list.to_vec();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), list.len(), "a type is registered twice: {list:?}");
    }
    let schema = arkflow::registry::json_schema();
    let names = |sec| variants(&schema, sec).iter().map(|v| v["title"].as_str().unwrap().to_string()).collect::<Vec<_>>();
    assert_eq!(names("input"), inputs);
    assert_eq!(names("output"), outputs);
    assert_eq!(names("processors"), processors);
}
