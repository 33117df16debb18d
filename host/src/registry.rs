//! What the loader knows: the connector and processor registries' tables together
//! (`connectors::registry`, `processor::registry`), the config file's JSON Schema, and
//! `EngineConfig::from_file` / `from_yaml_str`, which load a file against them.

use crate::config::{ConfigError, EngineConfig, Tables};

/// The tables the loader dispatches `type:` on.
pub(crate) fn tables() -> Tables {
    use crate::connectors::registry::{INPUTS, OUTPUTS};
    use crate::processor::codec_stage::{DecodeConfig, EncodeConfig};
    use crate::processor::registry::ProcessorType;
    use crate::processor::registry::PROCESSORS;
    let stage = |name: &str| PROCESSORS.iter().map(|e| &e.config).find(|c| c.name == name);
    Tables {
        inputs: INPUTS.iter().map(|e| &e.config).collect(),
        outputs: OUTPUTS.iter().map(|e| &e.config).collect(),
        processors: PROCESSORS.iter().map(|e| &e.config).collect(),
        codecs: stage(DecodeConfig::NAME).zip(stage(EncodeConfig::NAME)).map(|(decode, encode)| crate::config::Codecs { decode, encode }),
    }
}

/// The JSON Schema (draft 2020-12) of an arkflow config file (`arkflow schema`).
pub fn json_schema() -> serde_json::Value {
    crate::config::json_schema_of(&tables())
}

impl EngineConfig {
    /// Reads and loads the config file at `path` (relative paths inside resolve against its
    /// directory).
    pub fn from_file(path: impl AsRef<std::path::Path>) -> Result<EngineConfig, ConfigError> {
        crate::config::load_file(path.as_ref(), &tables())
    }

    /// Loads config text. `origin` names the file in messages (`<config>` when None) and is the
    /// base for relative paths (left relative when None); it becomes `EngineConfig::source`.
    pub fn from_yaml_str(text: &str, origin: Option<&std::path::Path>) -> Result<EngineConfig, ConfigError> {
        crate::config::load_str(text, origin, &|name| std::env::var(name).ok(), &tables())
    }
}
