//! Connectors: where records come from (`input`) and go to (`output`), and the Kafka client
//! both sides share (`kafka`). A connector knows its own system; the engine sees it only through
//! the `Input` and `Output` traits and the sink commit protocol (`checkpoint::commit`).

pub mod input;
pub mod kafka;
pub mod output;
