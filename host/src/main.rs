//! The `arkflow` binary: `arkflow --config FILE` runs the streams of a YAML file until they end
//! or SIGINT/SIGTERM drains them; `--validate` only checks the file and its plugins.

use anyhow::Context;
use arkflow::config::{EngineConfig, ProcessorConfig};
use arkflow::EngineBuilder;
use clap::{Parser, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(name = "arkflow", version, about = "Stream processing with WebAssembly plugins and host-owned, checkpointed state")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// The YAML config file.
    #[arg(short, long)]
    config: Option<PathBuf>,
    /// Check the config and that every plugin loads, exports the right WIT world and accepts its
    /// config; then exit (0 when valid).
    #[arg(long)]
    validate: bool,
    /// Log format on stderr. Filter with RUST_LOG (default "info").
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

#[derive(clap::Subcommand, Debug)]
enum Command {
    /// Print the JSON Schema of the config file format (for editors and validators).
    Schema,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let b = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    match format {
        LogFormat::Text => b.init(),
        LogFormat::Json => b.json().init(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::Schema) = cli.command {
        println!("{}", serde_json::to_string_pretty(&arkflow::config::json_schema()).expect("schema serializes"));
        return ExitCode::SUCCESS;
    }
    init_tracing(cli.log_format);
    let rt = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let path = cli.config.as_ref().ok_or_else(|| anyhow::anyhow!("--config FILE is required (or run `arkflow schema`)"))?;
    let config = EngineConfig::from_file(path)?;
    if cli.validate {
        // Plugins run synchronously (and WASI may block on tokio): keep them off the async workers.
        return tokio::task::spawn_blocking(move || validate(config)).await?;
    }
    for s in &config.streams {
        if matches!(s.output, arkflow::config::OutputConfig::Stdout(_)) {
            tracing::info!(stream = %s.name, "stdout output is at-least-once: after a crash, records since the last checkpoint are printed again");
        }
    }
    let mut builder = EngineBuilder::new(config);
    let streams = builder.build_streams().await?;
    tracing::info!(streams = streams.len(), "streams built; running");
    let reports = builder.run(streams).await;
    let reports = match &reports {
        Ok(r) => r.clone(),
        Err(arkflow::Error::StreamsFailed { reports, .. }) => reports.clone(),
        Err(_) => Vec::new(),
    };
    for r in &reports {
        tracing::info!(
            stream = %r.name,
            records_in = r.records_in,
            records_out = r.records_out,
            dropped = r.records_dropped,
            failed = r.records_failed,
            last_barrier = r.last_aligned_epoch,
            state_entries = r.state_entries,
            state_bytes = r.state_bytes,
            "stream finished{}",
            if r.failure.is_some() { " with an error" } else { "" }
        );
    }
    for r in &reports {
        if let Some(c) = &r.checkpoints {
            tracing::info!(
                stream = %r.name,
                backend = %c.backend,
                last_decided = c.last_decided,
                decided = c.decided,
                failed = c.failures,
                last_duration_ms = c.last_duration_ms,
                last_bytes = c.last_bytes,
                restore_ms = c.restore_ms,
                hybrid_loads = c.hybrid_loads,
                hybrid_evictions = c.hybrid_evictions,
                "checkpoints"
            );
        }
    }
    let failures: Vec<_> = reports.iter().filter_map(|r| r.failure.clone()).collect();
    if failures.is_empty() {
        Ok(())
    } else {
        anyhow::bail!("{} stream(s) failed:\n  {}", failures.len(), failures.join("\n  "))
    }
}

fn validate(config: EngineConfig) -> anyhow::Result<()> {
    for s in &config.streams {
        let names = arkflow::engine::store_names(s);
        for (i, p) in s.pipeline.processors.iter().enumerate() {
            if let ProcessorConfig::Wasm(w) = p {
                let label = format!("streams[{}].pipeline.processors[{i}]", s.name);
                let f = arkflow::processor::wasm::WasmFactory::load(w, &label, &names, s.state.enabled)?;
                f.check_init().with_context(|| format!("{label}: init"))?;
                let info = f.info();
                println!("ok: {label}: {} {} (abi {}, stores {:?}) from {}", info.name, info.version, info.abi, info.state_stores, w.path.display());
            }
        }
    }
    println!("ok: {} stream(s) valid", config.streams.len());
    Ok(())
}
