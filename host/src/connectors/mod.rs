//! Connectors: where records come from (`input`) and go to (`output`), and the Kafka client
//! both sides share (`kafka`). Each connector type is one file registered by one line in
//! `registry` (its settings, YAML, capabilities and how it opens); the engine sees connectors
//! only through the registry, the `Input` and `Output` traits and the sink commit protocol
//! (`checkpoint::commit`).

pub mod input;
pub mod kafka;
pub mod mqtt;
pub mod nats;
pub mod output;
pub mod registry;

/// A config of one stream with this `input:` and `output:` (YAML flow mappings), for the
/// connectors' settings tests.
#[cfg(test)]
pub(crate) fn one_stream(input: &str, output: &str) -> Result<crate::config::EngineConfig, crate::config::ConfigError> {
    crate::config::EngineConfig::from_yaml_str(&format!("streams:\n  - input: {input}\n    output: {output}\n"), None)
}
