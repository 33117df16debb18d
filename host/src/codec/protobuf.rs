//! Protobuf messages by reflection (prost-reflect) to and from JSON.
//!
//! Contract: a message type comes from a `.proto` file (compiled here by protox: imports from the
//! file's directory and the well-known Google types), a descriptor set file, or `.proto` text
//! (a registry's schema, compiled in memory). `decode` reads one message; `encode` reads the
//! canonical JSON mapping (proto or JSON field names; unknown fields refused) and writes one.
//! [`ProtoMessage::index_path`] and [`ProtoMessage::by_index_path`] map a message to and from its
//! position in its file (the registry wire format names messages that way).

use prost::Message;
use prost_reflect::{DescriptorPool, DeserializeOptions, DynamicMessage, MessageDescriptor, SerializeOptions};
use std::path::Path;

const JSON_OUT: SerializeOptions = SerializeOptions::new().stringify_64_bit_integers(false).use_proto_field_name(true).skip_default_fields(false);

/// One message type.
#[derive(Debug, Clone)]
pub struct ProtoMessage(MessageDescriptor);

/// Serves one in-memory `.proto` file by name.
struct OneFile {
    name: String,
    source: String,
}

impl protox::file::FileResolver for OneFile {
    fn open_file(&self, name: &str) -> Result<protox::file::File, protox::Error> {
        if name == self.name {
            protox::file::File::from_source(name, &self.source)
        } else {
            Err(protox::Error::file_not_found(name))
        }
    }
}

impl ProtoMessage {
    /// Message `message` of a `.proto` file or a descriptor set file.
    pub fn load(file: &Path, message: &str) -> anyhow::Result<ProtoMessage> {
        let pool = if file.extension().is_some_and(|e| e == "proto") {
            let dir = file.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
            let mut c = protox::Compiler::new([dir]).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            c.open_file(file.file_name().unwrap_or_default()).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            c.descriptor_pool()
        } else {
            let bytes = std::fs::read(file).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            DescriptorPool::decode(bytes.as_slice()).map_err(|e| anyhow::anyhow!("{}: not a protobuf descriptor set ({e})", file.display()))?
        };
        Self::named(&pool, message).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))
    }

    /// The file of `.proto` text `source` (a registry schema), compiled in memory.
    pub fn pool_of_source(source: &str) -> Result<DescriptorPool, String> {
        let mut resolver = protox::file::ChainFileResolver::new();
        resolver.add(OneFile { name: "schema.proto".into(), source: source.into() });
        resolver.add(protox::file::GoogleFileResolver::new());
        let mut c = protox::Compiler::with_file_resolver(resolver);
        c.open_file("schema.proto").map_err(|e| format!("the registry's Protobuf schema does not compile: {e}"))?;
        Ok(c.descriptor_pool())
    }

    fn named(pool: &DescriptorPool, message: &str) -> anyhow::Result<ProtoMessage> {
        match pool.get_message_by_name(message) {
            Some(m) => Ok(ProtoMessage(m)),
            None => {
                let known: Vec<String> = pool.all_messages().map(|m| m.full_name().to_string()).filter(|n| !n.starts_with("google.protobuf.")).collect();
                anyhow::bail!("no message `{message}` (messages: {})", known.join(", "))
            }
        }
    }

    /// The message's position: its index among its file's top-level messages, then among each
    /// enclosing message's nested messages.
    pub fn index_path(&self) -> Vec<i32> {
        let mut path = Vec::new();
        let mut m = self.0.clone();
        loop {
            let siblings: Vec<MessageDescriptor> = match m.parent_message() {
                Some(p) => p.child_messages().collect(),
                None => m.parent_file().messages().collect(),
            };
            path.push(siblings.iter().position(|s| s.full_name() == m.full_name()).unwrap_or(0) as i32);
            match m.parent_message() {
                Some(p) => m = p,
                None => break,
            }
        }
        path.reverse();
        path
    }

    /// The message at `path` in the (single) file of `pool` whose name is `file`.
    pub fn by_index_path(pool: &DescriptorPool, file: &str, path: &[i32]) -> Result<ProtoMessage, String> {
        let f = pool.get_file_by_name(file).ok_or_else(|| format!("no file {file}"))?;
        let mut here: Vec<MessageDescriptor> = f.messages().collect();
        let mut found = None;
        for &i in path {
            let m = here.get(i as usize).cloned().ok_or_else(|| format!("no message at index path {path:?}"))?;
            here = m.child_messages().collect();
            found = Some(m);
        }
        found.map(ProtoMessage).ok_or_else(|| "an empty message index path".into())
    }

    pub fn decode(&self, bytes: &[u8]) -> Result<serde_json::Value, String> {
        let m = DynamicMessage::decode(self.0.clone(), bytes).map_err(|e| format!("not a {} message: {e}", self.0.full_name()))?;
        m.serialize_with_options(serde_json::value::Serializer, &JSON_OUT).map_err(|e| format!("{} message without a JSON form: {e}", self.0.full_name()))
    }

    pub fn encode(&self, json: &[u8]) -> Result<Vec<u8>, String> {
        let mut de = serde_json::Deserializer::from_slice(json);
        let m = DynamicMessage::deserialize_with_options(self.0.clone(), &mut de, &DeserializeOptions::new())
            .map_err(|e| format!("does not fit the {} message: {e}", self.0.full_name()))?;
        Ok(m.encode_to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROTO: &str = r#"syntax = "proto3";
package shop;
message Order {
  int64 id = 1;
  string user = 2;
  message Line { string sku = 1; uint32 qty = 2; }
  repeated Line lines = 3;
}
message Other { bool ok = 1; }
"#;

    #[test]
    fn round_trip_index_paths_and_errors() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("shop.proto");
        std::fs::write(&file, PROTO).unwrap();
        let order = ProtoMessage::load(&file, "shop.Order").unwrap();
        let bytes = order.encode(br#"{"id":7,"user":"u1","lines":[{"sku":"a","qty":2}]}"#).unwrap();
        assert_eq!(order.decode(&bytes).unwrap(), serde_json::json!({"id":7,"user":"u1","lines":[{"sku":"a","qty":2}]}));
        assert_eq!(order.decode(&[]).unwrap(), serde_json::json!({"id":0,"user":"","lines":[]}), "defaults present");
        assert!(order.encode(br#"{"id":7,"nope":1}"#).unwrap_err().contains("does not fit"));
        assert!(order.decode(&[0xff, 0xff]).unwrap_err().contains("not a shop.Order"));
        assert!(ProtoMessage::load(&file, "shop.Missing").unwrap_err().to_string().contains("messages: shop.Order"));
        assert_eq!(order.index_path(), [0]);
        assert_eq!(ProtoMessage::load(&file, "shop.Other").unwrap().index_path(), [1]);
        assert_eq!(ProtoMessage::load(&file, "shop.Order.Line").unwrap().index_path(), [0, 0]);
        let pool = ProtoMessage::pool_of_source(PROTO).unwrap();
        let line = ProtoMessage::by_index_path(&pool, "schema.proto", &[0, 0]).unwrap();
        assert_eq!(line.0.full_name(), "shop.Order.Line");
        assert!(ProtoMessage::pool_of_source("syntax = \"proto3\"; message {").is_err());
    }
}
