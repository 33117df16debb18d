//! The `arkflow` binary: `arkflow --config FILE` runs the streams of a YAML file until they end
//! or SIGINT/SIGTERM drains them; `--validate` only checks the file and its plugins.

use anyhow::Context;
use arkflow::config::EngineConfig;
use arkflow::processor::wasm::WasmProcessorConfig;
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
    #[arg(short, long, global = true)]
    config: Option<PathBuf>,
    /// Check the config and that every plugin loads, exports the right WIT world and accepts its
    /// config; then exit (0 when valid).
    #[arg(long)]
    validate: bool,
    /// Start from this savepoint (see `arkflow state savepoint`) instead of the last decided
    /// checkpoint.
    #[arg(long, value_name = "NAME")]
    from_savepoint: Option<String>,
    /// Log format on stderr. Filter with RUST_LOG (default "info").
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

#[derive(clap::Subcommand, Debug)]
enum Command {
    /// Print the JSON Schema of the config file format (for editors and validators).
    Schema,
    /// Inspect checkpointed state and take savepoints (uses the config's state backend).
    #[command(subcommand)]
    State(StateCmd),
    /// Tools for plugin authors.
    #[command(subcommand)]
    Plugin(PluginCmd),
}

/// The plugin and fixture of `plugin test` and `plugin bench`.
#[derive(clap::Args, Debug)]
struct FixtureArgs {
    /// The plugin component (.wasm).
    plugin: PathBuf,
    /// The fixture: one JSON value per line (the records' values).
    #[arg(long)]
    input: PathBuf,
    /// A `config` entry of the plugin, KEY=VALUE (repeatable).
    #[arg(long = "config-entry", short = 'C', value_name = "KEY=VALUE")]
    config_entry: Vec<String>,
    /// The JSON field whose value is the record key (as the file input's `key_field`).
    #[arg(long)]
    key_field: Option<String>,
    /// Records per batch.
    #[arg(long, default_value_t = 256)]
    batch_size: usize,
}

impl FixtureArgs {
    /// The test these arguments name (`--config-entry` without `=` refused).
    fn test(self) -> Result<arkflow::plugin_test::PluginTest, String> {
        let config = self
            .config_entry
            .iter()
            .map(|kv| kv.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())).ok_or_else(|| format!("--config-entry {kv}: expected KEY=VALUE")))
            .collect::<Result<_, _>>()?;
        Ok(arkflow::plugin_test::PluginTest {
            plugin: self.plugin,
            input: self.input,
            config,
            key_field: self.key_field,
            batch_size: self.batch_size,
            ..Default::default()
        })
    }
}

#[derive(clap::Subcommand, Debug)]
enum PluginCmd {
    /// Start a plugin project outside this repository: the example (a count per key), its own
    /// pinned copy of the SDK, the WIT, a build script that installs its toolchain when missing,
    /// a README and a test fixture.
    New {
        /// The plugin's name: lowercase letters, digits and '-'.
        name: String,
        /// The guest language.
        #[arg(long, value_parser = ["rust", "python", "js", "c", "zig", "go"])]
        lang: String,
        /// Where to write it (default ./NAME); must not exist or be empty.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Build a project made by `plugin new` (its arkflow-plugin.toml's build command), then load
    /// the component as a stream would: WIT world, describe(), declared state stores.
    Build {
        /// The project directory.
        #[arg(default_value = ".")]
        dir: PathBuf,
    },
    /// Run a plugin over a fixture of JSON lines in the real sandbox, with in-memory keyed state:
    /// every record's outcome, the state each batch changed, and (with --expect) a diff against
    /// the expected output. Exits 1 when a batch fails, the output differs from --expect, or
    /// --checkpoint-every changes the outcomes.
    Test {
        #[command(flatten)]
        fixture: FixtureArgs,
        /// The expected emitted values, one per line, in order (compared as JSON).
        #[arg(long)]
        expect: Option<PathBuf>,
        /// Run the fixture again with a checkpoint and a restore into a fresh instance after
        /// every N records; fail if any outcome changes (state kept in guest memory).
        #[arg(long, value_name = "N")]
        checkpoint_every: Option<usize>,
        /// Print only failures, state changes and the summary.
        #[arg(long)]
        quiet: bool,
        /// Start from this state: {"<store>": {"<key>": value}}, each value in its store's
        /// declared format (i64: an integer; utf8: a string; json: any JSON; bytes: hex).
        #[arg(long, value_name = "FILE")]
        state: Option<PathBuf>,
    },
    /// Measure a plugin on a fixture in the real sandbox (fed again and again): records/s, time
    /// per record, per-call latency, bytes across the boundary and linear-memory high water; with
    /// --baseline, the ratio to another plugin (e.g. a pass-through) run in alternating rounds.
    Bench {
        #[command(flatten)]
        fixture: FixtureArgs,
        /// Another plugin to run in alternating rounds on the same fixture (with the same
        /// config entries).
        #[arg(long)]
        baseline: Option<PathBuf>,
        /// Seconds of calls per plugin, over three rounds.
        #[arg(long, default_value_t = 3.0)]
        seconds: f64,
    },
}

#[derive(clap::Subcommand, Debug)]
enum StateCmd {
    /// Decided checkpoints of every stream: epoch, time, size, input position.
    List,
    /// Keys (and values) of a store in the last decided checkpoint.
    Show {
        /// Only this stream.
        #[arg(long)]
        stream: Option<String>,
        /// The state store ("default" or one of custom_keys).
        #[arg(long, default_value = "default")]
        store: String,
        /// Only this key.
        #[arg(long)]
        key: Option<String>,
        /// At most this many entries.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Copy the last decided checkpoint into a self-contained savepoint that GC never touches.
    Savepoint {
        #[arg(long)]
        name: String,
        /// Only this stream.
        #[arg(long)]
        stream: Option<String>,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// `arkflow plugin new | build | test | bench`: exit 0 when done or passed, 1 when the plugin
/// failed (a test, a build, or a bench that could not run), 2 for bad arguments, a bad manifest,
/// or a plugin or fixture that does not load.
fn plugin_command(cmd: PluginCmd) -> ExitCode {
    let fail = |e: &dyn std::fmt::Display, code: u8| {
        eprintln!("error: {e:#}");
        ExitCode::from(code)
    };
    let out = &mut std::io::stdout().lock();
    match cmd {
        PluginCmd::New { name, lang, dir } => {
            let lang = arkflow::plugin_new::Lang::parse(&lang).expect("clap checked the language");
            match arkflow::plugin_new::create(&name, lang, dir.as_deref()) {
                Ok((dir, files)) => {
                    println!("created {} ({} files, SDK {}); next:", dir.display(), files.len(), arkflow::plugin_new::SDK_VERSION);
                    println!("  arkflow plugin build {}", dir.display());
                    println!("  then see {}/README.md for the test, bench and run commands", dir.display());
                    ExitCode::SUCCESS
                }
                Err(e) => fail(&e, 2),
            }
        }
        PluginCmd::Build { dir } => match arkflow::plugin_new::build::run(&dir, out) {
            Ok(_) => ExitCode::SUCCESS,
            Err(e) => fail(&e, e.exit_code()),
        },
        PluginCmd::Test { fixture, expect, checkpoint_every, quiet, state } => {
            let t = match fixture.test() {
                Ok(t) => arkflow::plugin_test::PluginTest { expect, checkpoint_every, quiet, state, ..t },
                Err(e) => return fail(&e, 2),
            };
            match arkflow::plugin_test::run(&t, out) {
                Ok(true) => ExitCode::SUCCESS,
                Ok(false) => ExitCode::FAILURE,
                Err(e) => fail(&format!("{e:#}"), 2),
            }
        }
        PluginCmd::Bench { fixture, baseline, seconds } => match fixture.test() {
            Err(e) => fail(&e, 2),
            Ok(t) => match arkflow::plugin_test::bench::run(&t, baseline.as_deref(), seconds, out) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(&format!("{e:#}"), 1),
            },
        },
    }
}

/// Logs to stderr, filtered by RUST_LOG, else by `default`.
fn init_tracing(format: LogFormat, default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| default.into());
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
        println!("{}", serde_json::to_string_pretty(&arkflow::registry::json_schema()).expect("schema serializes"));
        return ExitCode::SUCCESS;
    }
    if let Some(Command::State(cmd)) = &cli.command {
        return match state_command(cli.config.as_deref(), cmd) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    // A plugin author's commands show the plugin's own log lines from level debug.
    let plugin_cmd = matches!(cli.command, Some(Command::Plugin(_)));
    init_tracing(cli.log_format, if plugin_cmd { "info,arkflow::processor::wasm::host=debug" } else { "info" });
    if let Some(Command::Plugin(cmd)) = cli.command {
        return plugin_command(cmd);
    }
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
    let mut config = EngineConfig::from_file(path)?;
    config.state_management.from_savepoint = cli.from_savepoint.clone();
    if cli.validate {
        // Plugins run synchronously (and WASI may block on tokio): keep them off the async workers.
        return tokio::task::spawn_blocking(move || validate(config)).await?;
    }
    for s in &config.streams {
        if s.output.caps().at_least_once {
            let ty = s.output.type_name();
            tracing::info!(stream = %s.name, "{ty} output is at-least-once: after a crash, records since the last checkpoint are written again");
        }
    }
    // A signal while the streams are built (recovery, plugin compilation) stops the process
    // cleanly once they are, before they run.
    let early_stop = arkflow::engine::shutdown_flag_on_signals();
    let mut builder = EngineBuilder::new(config);
    let streams = builder.build_streams().await?;
    if early_stop.load(std::sync::atomic::Ordering::SeqCst) {
        tracing::info!("a signal arrived while the streams were built: stopping before they run");
        return Ok(());
    }
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
            columnar = r.records_columnar,
            bytes_out = r.bytes_out,
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
    use arkflow::processor::{build_factory, wasm::WasmFactory, ProcessorFactory, StreamEnv};
    arkflow::processor::wasm::cache::configure(&config.plugin_cache);
    for s in &config.streams {
        let env = StreamEnv::of(s);
        let mut factories: Vec<std::sync::Arc<dyn ProcessorFactory>> = Vec::new();
        for (i, p) in s.pipeline.processors.iter().enumerate() {
            let Some(w) = p.get::<WasmProcessorConfig>() else {
                factories.push(build_factory(s, i, p, &env)?);
                continue;
            };
            let label = s.stage_label(i);
            let f = WasmFactory::load(w, &label, i, &env)?;
            f.check_init().with_context(|| format!("{label}: init"))?;
            let info = f.info();
            println!("ok: {label}: {} {} (abi {}, stores {:?}) from {}", info.name, info.version, info.abi, info.state_stores, w.path.display());
            factories.push(std::sync::Arc::new(f));
        }
        let plan = arkflow::engine::plan::plan(&config, s, &factories)?;
        for part in &plan.parts {
            println!("ok: streams[{}]: records are routed to key groups by {}", part.config.name, part.tiers.describe());
        }
        for line in arkflow::engine::plan::describe(&plan, &factories) {
            println!("ok: streams[{}]: topology: {line}", s.name);
        }
    }
    println!("ok: {} stream(s) valid", config.streams.len());
    Ok(())
}

/// `arkflow state ...`: read-only inspection, and savepoints.
fn state_command(config: Option<&std::path::Path>, cmd: &StateCmd) -> anyhow::Result<()> {
    use arkflow::checkpoint::{block_on, decision, recovery, savepoint, Decision};
    let path = config.ok_or_else(|| anyhow::anyhow!("--config FILE is required"))?;
    let config = EngineConfig::from_file(path)?;
    let store = arkflow::engine::open_store(&config.state_management)?;
    let wanted = |name: &str, only: &Option<String>| only.as_deref().is_none_or(|o| o == name);
    for s in &config.streams {
        let scope = &s.state.operator_id;
        match cmd {
            StateCmd::List => {
                println!("stream {} (operator {scope}, {}):", s.name, store.describe());
                let (all, _) = block_on(decision::decisions(&*store, scope))?;
                for (epoch, d) in all {
                    let Decision::Commit { manifest, checksum, .. } = d else { continue };
                    match block_on(recovery::load_manifest(&*store, &manifest, Some(checksum))) {
                        Ok(m) => println!(
                            "  epoch {epoch:>8}  created_ms {}  state {} bytes in {} files  position {}",
                            m.created_ms,
                            m.state_files.iter().map(|f| f.size).sum::<u64>(),
                            m.state_files.len(),
                            m.input_position
                        ),
                        Err(e) => println!("  epoch {epoch:>8}  (manifest unavailable: {e})"),
                    }
                }
            }
            StateCmd::Show { stream, store: store_name, key, limit } => {
                if !wanted(&s.name, stream) {
                    continue;
                }
                let Some(m) = block_on(recovery::last_decided(&*store, scope))? else {
                    println!("stream {}: no decided checkpoint", s.name);
                    continue;
                };
                // Value format as the stream's plugins declare it (describe().state-formats).
                let mut format = String::from("bytes");
                for (i, p) in s.pipeline.processors.iter().enumerate() {
                    if let Some(w) = p.get::<WasmProcessorConfig>() {
                        let label = s.stage_label(i);
                        let f = arkflow::processor::wasm::WasmFactory::load(w, &label, i, &arkflow::processor::StreamEnv::of(s))?;
                        if let Some((_, fmt)) = f.info().state_formats.iter().find(|(st, _)| st == store_name) {
                            format = fmt.clone();
                        }
                    }
                }
                println!("stream {} epoch {} store {store_name} ({format}):", s.name, m.epoch);
                let mut live = std::collections::BTreeMap::new();
                for e in block_on(recovery::load_entries(store.clone(), &m.state_files))? {
                    if e.store == *store_name {
                        live.insert(e.key.clone(), e);
                    }
                }
                let shown = live.into_values().filter(|e| e.value.is_some()).filter(|e| key.as_deref().is_none_or(|k| e.key == k.as_bytes())).take(*limit);
                for e in shown {
                    let text = arkflow::state::show_value(&format, &e.value.unwrap_or_default());
                    println!("  {}\t{text}", String::from_utf8_lossy(&e.key));
                }
            }
            StateCmd::Savepoint { name, stream } => {
                if !wanted(&s.name, stream) {
                    continue;
                }
                let m = block_on(savepoint::take(store.clone(), scope, name))?;
                println!("savepoint {name} of stream {} (operator {scope}): epoch {}, {} entries", s.name, m.epoch, m.state_files[0].entries);
            }
        }
    }
    Ok(())
}
