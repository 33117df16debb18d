//! The state-management guide's programmatic example: load `config.yaml` from the working
//! directory, build the streams (state management is wired in), run them until their inputs end
//! or SIGINT/SIGTERM drains them. Run: `cargo run --release --example run_stateful_example` in a
//! directory with a `config.yaml` (e.g. a copy of `examples/stateful_example.yaml`).

use arkflow::config::EngineConfig;
use arkflow::engine_builder::EngineBuilder;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // 加载配置
    let config = EngineConfig::from_file("config.yaml")?;

    // 创建引擎构建器
    let mut engine_builder = EngineBuilder::new(config);

    // 构建流（会自动集成状态管理）
    let streams = engine_builder.build_streams().await?;

    // 运行流
    engine_builder.run(streams).await?;

    Ok(())
}
