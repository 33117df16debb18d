use super::*;

fn config(keys: &str) -> Result<PostgresOutputConfig, ConfigError> {
    let yaml = format!("streams:\n  - input: {{type: memory, messages: [a]}}\n    output: {{type: postgres{keys}}}\n");
    let cfg = crate::config::EngineConfig::from_yaml_str(&yaml, None)?;
    Ok(cfg.streams[0].output.get::<PostgresOutputConfig>().unwrap().clone())
}

#[test]
fn settings_are_checked() {
    let ok = config(", url: 'host=127.0.0.1 port=5432 user=u dbname=d', table: app.counts, key_columns: [key]").unwrap();
    assert_eq!((ok.table.as_str(), ok.key_columns.clone(), ok.columns.is_empty()), ("app.counts", vec!["key".to_string()], true));
    let e = |keys: &str| config(keys).unwrap_err().to_string();
    assert!(e(", url: 'postgres://u@127.0.0.1/d', table: a.b.c").contains("output.table must be `table` or `schema.table`"));
    assert!(e(", url: 'host=127.0.0.1 bogus', table: t").contains("output.url is not a connection string"));
    assert!(e(", table: t").contains("url"));
}

#[test]
fn rows_are_json_arrays_in_chunks() {
    let mut rows = Rows::default();
    rows.push(b"{\"a\":1}");
    rows.push(b"{\"a\":2}");
    assert_eq!(rows.records, 2);
    assert_eq!(rows.texts(), vec!["[{\"a\":1},{\"a\":2}]".to_string()]);
    let mut big = Rows::default();
    let value = format!("{{\"s\":\"{}\"}}", "x".repeat(CHUNK_BYTES / 2));
    (0..3).for_each(|_| big.push(value.as_bytes()));
    let texts = big.texts();
    assert_eq!(texts.len(), 3, "a chunk stays under {CHUNK_BYTES} bytes");
    assert!(texts.iter().all(|t| serde_json::from_str::<Vec<serde_json::Value>>(t).unwrap().len() == 1));
}
