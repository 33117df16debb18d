//! Codecs: Avro and Protobuf values, plain or in the schema-registry wire format, to and from
//! the JSON records the pipeline's stages (plugins, SQL) and most outputs see. The `decode` and
//! `encode` processors (`processor::codec`) run them on any input's or output's records.
//!
//! Contract:
//! - [`Codec::decode`] turns one encoded value into one JSON document; [`Codec::encode`] turns
//!   one JSON document into one encoded value. A value that does not fit the schema is a
//!   [`CodecError::Data`] (the record's own fault); a registry that cannot be reached is a
//!   [`CodecError::Unavailable`] (nobody's fault: retry later).
//! - **Schemas.** Avro: a schema file (`.avsc`). Protobuf: a `.proto` file (compiled by the host,
//!   imports resolved from its directory and the well-known Google types) or a descriptor set
//!   (`protoc --include_imports --descriptor_set_out`), and the message's full name.
//! - **Registry** (`registry_url`): the Confluent wire format, a zero byte, the schema id (4 bytes,
//!   big-endian), for Protobuf the message's index path, then the encoded value. Decoding looks
//!   each id up in the registry once (`GET /schemas/ids/<id>`), Avro or Protobuf as it says;
//!   encoding registers the local schema under `subject` once, at start, and frames every value
//!   with the id the registry gave it.
//! - JSON shapes: Protobuf as its canonical JSON mapping with proto field names, 64-bit integers as
//!   numbers and default values present; Avro records as objects, unions as their branch's value,
//!   bytes as arrays of numbers.

pub mod avro;
pub mod protobuf;
pub mod registry;

use std::path::PathBuf;
use std::sync::Arc;

pub use registry::Registry;

/// The schema language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Avro,
    Protobuf,
}

crate::config::named_enum!(Format { "avro" => Avro, "protobuf" => Protobuf });

/// Where a codec's local schema comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum SchemaSource {
    /// An `.avsc` file.
    Avro(PathBuf),
    /// A `.proto` file or a descriptor set (by extension: `.proto` is compiled) and a message name.
    Protobuf { file: PathBuf, message: String },
}

/// Why a value could not be decoded or encoded.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The value does not fit its schema, or names a schema the registry does not have.
    #[error("{0}")]
    Data(String),
    /// The registry could not be reached or failed.
    #[error("{0}")]
    Unavailable(String),
}

/// One compiled schema.
#[derive(Debug)]
pub enum Schema {
    Avro(avro::AvroSchema),
    Protobuf(protobuf::ProtoMessage),
}

impl Schema {
    pub fn load(source: &SchemaSource) -> anyhow::Result<Schema> {
        Ok(match source {
            SchemaSource::Avro(p) => Schema::Avro(avro::AvroSchema::parse(&std::fs::read_to_string(p).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?)?),
            SchemaSource::Protobuf { file, message } => Schema::Protobuf(protobuf::ProtoMessage::load(file, message)?),
        })
    }

    fn decode(&self, bytes: &[u8]) -> Result<serde_json::Value, String> {
        match self {
            Schema::Avro(s) => s.decode(bytes),
            Schema::Protobuf(m) => m.decode(bytes),
        }
    }

    fn encode(&self, json: &[u8]) -> Result<Vec<u8>, String> {
        match self {
            Schema::Avro(s) => s.encode(json),
            Schema::Protobuf(m) => m.encode(json),
        }
    }
}

/// A codec ready to run, shared by a stage's workers.
#[derive(Debug)]
pub enum Codec {
    /// A local schema, no framing.
    Plain(Schema),
    /// Decoding the registry's wire format: schemas by id, from the registry.
    RegistryDecode(Arc<Registry>),
    /// Encoding into the registry's wire format: the local schema, registered as `id`, and the
    /// framing before each value.
    RegistryEncode { schema: Schema, frame: Vec<u8> },
}

impl Codec {
    /// One encoded value as JSON.
    pub fn decode(&self, bytes: &[u8]) -> Result<Vec<u8>, CodecError> {
        let json = match self {
            Codec::Plain(s) => s.decode(bytes).map_err(CodecError::Data)?,
            Codec::RegistryDecode(r) => r.decode(bytes)?,
            Codec::RegistryEncode { schema, .. } => schema.decode(bytes).map_err(CodecError::Data)?,
        };
        serde_json::to_vec(&json).map_err(|e| CodecError::Data(e.to_string()))
    }

    /// One JSON document, encoded.
    pub fn encode(&self, json: &[u8]) -> Result<Vec<u8>, CodecError> {
        match self {
            Codec::Plain(s) => s.encode(json).map_err(CodecError::Data),
            Codec::RegistryEncode { schema, frame } => {
                let body = schema.encode(json).map_err(CodecError::Data)?;
                let mut out = Vec::with_capacity(frame.len() + body.len());
                out.extend_from_slice(frame);
                out.extend_from_slice(&body);
                Ok(out)
            }
            Codec::RegistryDecode(_) => Err(CodecError::Data("a decoding codec cannot encode".into())),
        }
    }
}
