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
