//! `arkflow schema`: the JSON Schema of the whole config, generated from the same raw structs the
//! loader deserializes (`schemars` derives on them) and the same `type` tables it dispatches on,
//! so the schema cannot drift from the parser. Editors use it to complete and check YAML.

use serde_json::{json, Value};

use super::dispatch::{schema_of, Entry};

/// `oneOf` the types of a table, each with its `type` constant.
fn one_of<'a, T: 'static>(table: impl IntoIterator<Item = &'a Entry<T>>) -> Value {
    let variants: Vec<Value> = table
        .into_iter()
        .map(|e| {
            let (name, mut v) = (e.name, (e.schema)());
            v["properties"]["type"] = json!({ "const": name });
            let req = v["required"].as_array().cloned().unwrap_or_default();
            let mut req: Vec<Value> = req.into_iter().filter(|r| r != "type").collect();
            req.insert(0, json!("type"));
            v["required"] = Value::Array(req);
            v["title"] = json!(name);
            v
        })
        .collect();
    json!({ "oneOf": variants })
}

/// `sections` (a `oneOf`) with a `codec` property in every variant: the mapping of the stage
/// `codec:` stands for.
fn with_codec(sections: &Value, stage: Option<&Entry<super::connector::ProcessorConfig>>) -> Value {
    let mut v = sections.clone();
    if let (Some(stage), Some(variants)) = (stage, v["oneOf"].as_array_mut()) {
        let mut codec = (stage.schema)();
        codec["description"] = json!(format!("Shorthand for a `type: {}` stage with these settings", stage.name));
        for variant in variants {
            variant["properties"]["codec"] = codec.clone();
        }
    }
    v
}

/// Replaces the free-form component sections with the `oneOf` of their types (`main`: the main
/// output's, which may carry a codec).
fn patch(v: &mut Value, inputs: &Value, processors: &Value, outputs: &Value, main: &Value) {
    match v {
        Value::Object(o) => {
            if let Some(Value::Object(props)) = o.get_mut("properties") {
                if props.contains_key("input") && props.contains_key("output") {
                    props.insert("input".into(), inputs.clone());
                    props.insert("output".into(), main.clone());
                    props.insert("error_output".into(), json!({ "anyOf": [outputs, { "type": "null" }] }));
                    props.insert(
                        "outputs".into(),
                        json!({ "type": ["object", "null"], "additionalProperties": outputs, "propertyNames": { "pattern": "^[A-Za-z0-9_-]{1,64}$" } }),
                    );
                }
                if props.contains_key("processors") && props.contains_key("thread_num") {
                    props.insert("processors".into(), json!({ "type": ["array", "null"], "items": processors }));
                }
            }
            for child in o.values_mut() {
                patch(child, inputs, processors, outputs, main);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|c| patch(c, inputs, processors, outputs, main)),
        _ => {}
    }
}

/// The JSON Schema (draft 2020-12) of an arkflow config file whose connector and processor types
/// are `tables` (`crate::registry::json_schema`).
pub(crate) fn json_schema_of(tables: &super::connector::Tables) -> Value {
    let mut root = schema_of::<super::load::RawRootSchema>();
    let (i, p, o) = (one_of(tables.inputs.iter().copied()), one_of(tables.processors.iter().copied()), one_of(tables.outputs.iter().copied()));
    let (i, main) = (with_codec(&i, tables.codecs.map(|c| c.decode)), with_codec(&o, tables.codecs.map(|c| c.encode)));
    patch(&mut root, &i, &p, &o, &main);
    root["$schema"] = json!("https://json-schema.org/draft/2020-12/schema");
    root["title"] = json!("arkflow configuration");
    root
}
