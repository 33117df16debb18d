//! Avro datums (apache-avro) to and from JSON, under one writer schema.
//!
//! Contract: `decode` reads one datum (no container header, no framing) and fails when bytes
//! are left over; `encode` resolves a JSON document against the schema (objects become records,
//! a value picks its union branch, integers widen) and writes one datum.

/// A parsed Avro schema.
#[derive(Debug)]
pub struct AvroSchema(apache_avro::Schema);

impl AvroSchema {
    pub fn parse(text: &str) -> anyhow::Result<AvroSchema> {
        apache_avro::Schema::parse_str(text).map(AvroSchema).map_err(|e| anyhow::anyhow!("not an Avro schema: {e}"))
    }

    pub fn decode(&self, mut bytes: &[u8]) -> Result<serde_json::Value, String> {
        let value = apache_avro::from_avro_datum(&self.0, &mut bytes, None).map_err(|e| format!("not an Avro datum of the schema: {e}"))?;
        if !bytes.is_empty() {
            return Err(format!("not an Avro datum of the schema: {} byte(s) left after the datum", bytes.len()));
        }
        serde_json::Value::try_from(value).map_err(|e| format!("Avro value without a JSON form: {e}"))
    }

    pub fn encode(&self, json: &[u8]) -> Result<Vec<u8>, String> {
        let doc: serde_json::Value = serde_json::from_slice(json).map_err(|e| format!("not JSON: {e}"))?;
        let value = apache_avro::types::Value::from(doc).resolve(&self.0).map_err(|e| format!("does not fit the Avro schema: {e}"))?;
        apache_avro::to_avro_datum(&self.0, value).map_err(|e| format!("does not fit the Avro schema: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCHEMA: &str = r#"{"type":"record","name":"Order","fields":[
        {"name":"id","type":"long"},{"name":"user","type":"string"},
        {"name":"note","type":["null","string"],"default":null}]}"#;

    #[test]
    fn round_trip_and_errors() {
        let s = AvroSchema::parse(SCHEMA).unwrap();
        let bytes = s.encode(br#"{"id":7,"user":"u1","note":"hi"}"#).unwrap();
        assert_eq!(s.decode(&bytes).unwrap(), serde_json::json!({"id":7,"user":"u1","note":"hi"}));
        let null_note = s.encode(br#"{"id":8,"user":"u2","note":null}"#).unwrap();
        assert_eq!(s.decode(&null_note).unwrap()["note"], serde_json::Value::Null);
        assert!(s.encode(br#"{"id":"x","user":"u1"}"#).unwrap_err().contains("does not fit"));
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(s.decode(&longer).unwrap_err().contains("left after"));
        assert!(AvroSchema::parse("{").is_err());
    }
}
