//! The `wasm` processor: a WebAssembly component loaded by path through the `arkflow:plugin` WIT
//! package.
//!
//! Contract:
//! - [`WasmFactory::load`] compiles the component once, links it against the host's `state`, `log`,
//!   `metrics` and a capability-less WASI, prepares an `InstancePre`, and checks the plugin's
//!   `describe()`: ABI compatible with the host's WIT version and every declared state store known
//!   to the stream. Every failure names the plugin path and the WIT export involved.
//! - Compiled code is cached by content hash ([`cache`]), so restarts do not recompile.
//! - A processor can be replaced while the stream runs ([`swap`]): the new file passes the same
//!   checks plus an `init` canary off the data path and takes over at a checkpoint barrier.
//! - Each worker gets its own `Store` ([`instance::WasmProcessor`]); limits (memory, CPU deadline by
//!   epoch interruption, output size, state quotas) come from the YAML. Every guest call, blocking
//!   WASI calls included (a plugin that sleeps), ends by its deadline ([`instance`]).
//! - A trap, deadline, bad result or error discards the batch's staged state writes, drops the
//!   instance, re-instantiates and retries; after `retries` the configured policy applies.

mod bindings;
pub mod cache;
mod calls;
mod columns;
mod config;
mod convert;
mod engine;
mod fields;
mod fields_scan;
mod host;
mod imports;
mod instance;
pub mod locate;
pub mod obs;
mod outcomes;
mod resource;
pub mod swap;
mod timers;

use anyhow::{anyhow, Context};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use wasmtime::component::Linker;

pub use config::*;
pub use engine::shared_engine;
pub use host::HostCtx;
pub use instance::WasmProcessor;

pub use bindings::Abi;

/// The WIT package version this host implements (and 0.1.x, for components built against it).
pub const HOST_ABI: &str = Abi::V02.version();

/// What `describe()` returned.
#[derive(Debug, Clone, Default)]
pub struct PluginInfo {
    pub name: String,
    pub version: String,
    pub abi: String,
    pub state_stores: Vec<String>,
    /// (store, format) as declared: "bytes", "utf8", "json" or "i64".
    pub state_formats: Vec<(String, String)>,
    /// The key the plugin's state needs (`info.key-by`, 0.2.0): a field name or `record_key`.
    pub key_by: Option<String>,
}

/// Everything shared by a processor's per-worker instances.
pub struct WasmShared {
    pub path: PathBuf,
    pub label: String,
    pub cfg: WasmProcessorConfig,
    pub info: PluginInfo,
    pub pre: wasmtime::component::InstancePre<HostCtx>,
    /// The ABI the component was built against.
    pub abi: Abi,
    /// Its `processor` and (when it has them) `timer-handler` exports.
    indices: bindings::Indices,
    /// Whether the component imports `timers` (it may register timers).
    pub timed: bool,
    pub store_names: Arc<Vec<String>>,
    pub state_enabled: bool,
    /// The stream's named outputs, in order (what `record-out.output` may name).
    pub outputs: Arc<Vec<String>>,
    pub init_config: Vec<(String, String)>,
    /// xxh3-128 of the component bytes (hex): the version identity used by swaps and the cache.
    pub content_hash: String,
    /// Log limit, metrics and circuit breaker of the processor (kept across live swaps).
    pub obs: Arc<obs::ProcessorObs>,
}

pub struct WasmFactory {
    shared: Arc<WasmShared>,
    /// The processor's index in its stream.
    stage: usize,
    name: String,
    /// Where live swaps of this processor are staged (shared by its per-worker instances).
    slot: Arc<swap::SwapSlot>,
}

/// Reads, compiles (through the artifact cache), links and checks the plugin at `cfg.path`:
/// everything a swap must pass too. Does not `init` an instance.
pub(crate) fn prepare(cfg: &WasmProcessorConfig, label: &str, env: &crate::processor::StreamEnv) -> anyhow::Result<WasmShared> {
    let shared = prepare_unchecked(cfg, label, env)?;
    check(&shared, cfg, label, env)?;
    Ok(shared)
}

/// Checks what `describe()` said against the stream (`env`) and the stage's YAML.
fn check(shared: &WasmShared, cfg: &WasmProcessorConfig, label: &str, env: &crate::processor::StreamEnv) -> anyhow::Result<()> {
    let shown = shared.path.display();
    check_info(&shared.info, shared.abi, &env.store_names, env.state_enabled).map_err(|e| anyhow!("{label}: plugin {shown}: {e}"))?;
    check_key(shared.info.key_by.as_deref(), cfg.key_by.as_deref()).map_err(|e| anyhow!("{label}: plugin {shown}: {e}"))
}

/// [`prepare`] without checking `describe()` against the stream.
fn prepare_unchecked(cfg: &WasmProcessorConfig, label: &str, env: &crate::processor::StreamEnv) -> anyhow::Result<WasmShared> {
    let (store_names, state_enabled) = (&env.store_names[..], env.state_enabled);
    let path = cfg.path.clone();
    let shown = path.display().to_string();
    let bytes = std::fs::read(&path).map_err(|e| anyhow!("{label}: cannot read plugin {shown}: {e}"))?;
    engine::check_env().map_err(|e| anyhow!("{label}: plugin {shown}: {e}"))?;
    let engine = shared_engine();
    let loaded =
        cache::load(engine, &bytes, cache::dir().as_deref()).map_err(|e| anyhow!("{label}: plugin {shown} is not a valid WebAssembly component: {e}"))?;
    tracing::debug!(plugin = %shown, hash = %loaded.content_hash, outcome = ?loaded.outcome, ms = loaded.elapsed.as_millis() as u64, "plugin loaded");
    let mut linker: Linker<HostCtx> = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(|e| anyhow!("linking WASI: {e}"))?;
    bindings::v02::TimedPlugin::add_to_linker::<HostCtx, wasmtime::component::HasSelf<HostCtx>>(&mut linker, |h| h)
        .and_then(|()| bindings::v01::TimedPlugin::add_to_linker::<HostCtx, wasmtime::component::HasSelf<HostCtx>>(&mut linker, |h| h))
        .map_err(|e| anyhow!("linking arkflow:plugin imports: {e}"))?;
    let pre = linker
        .instantiate_pre(&loaded.component)
        .map_err(|e| anyhow!("{label}: plugin {shown} imports something the host does not provide (world arkflow:plugin/plugin@{HOST_ABI} or @0.1.x): {e}"))?;
    let (abi, indices) = exports(&pre, &loaded.component).map_err(|e| anyhow!("{label}: plugin {shown} {e}"))?;
    let timed = loaded.component.component_type().imports(engine).any(|(name, _)| name.starts_with("arkflow:plugin/timers@"));
    let exports_timers = matches!(&indices, bindings::Indices::V01(_, Some(_)) | bindings::Indices::V02(_, Some(_)));
    if timed && !exports_timers {
        anyhow::bail!(
            "{label}: plugin {shown} imports arkflow:plugin/timers but does not export {}#on-timers, so its timers could never fire (target the world arkflow:plugin/timed-plugin)",
            abi.timer_export()
        );
    }
    let init_config: Vec<(String, String)> = cfg.config.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    let mut shared = WasmShared {
        path: path.clone(),
        label: label.to_string(),
        cfg: cfg.clone(),
        info: PluginInfo::default(),
        pre,
        abi,
        indices,
        timed,
        store_names: Arc::new(store_names.to_vec()),
        state_enabled,
        outputs: Arc::new(env.outputs.clone()),
        init_config,
        content_hash: loaded.content_hash,
        obs: Arc::new(obs::ProcessorObs::new(&cfg.limits, &cfg.circuit_breaker)),
    };
    shared.info = instance::describe(&shared).with_context(|| format!("{label}: plugin {shown}"))?;
    Ok(shared)
}

/// Which ABI's `processor` the component exports (0.2.0 first), with its export indices.
fn exports(pre: &wasmtime::component::InstancePre<HostCtx>, component: &wasmtime::component::Component) -> Result<(Abi, bindings::Indices), String> {
    let has = |name: &str| component.get_export_index(None, name).is_some();
    let bad = |abi: Abi, e: wasmtime::Error| format!("does not export {} with the expected functions: {e}", abi.processor_export());
    let bad_timers = |abi: Abi, e: wasmtime::Error| format!("export {} does not have the expected functions: {e}", abi.timer_export());
    if has(Abi::V02.processor_export()) || !has(Abi::V01.processor_export()) {
        let p = bindings::v02::ProcessorIndices::new(pre).map_err(|e| {
            let hint = "(world arkflow:plugin/plugin@0.2.0, or a 0.1.x world of an older SDK)";
            format!("{} {hint}", bad(Abi::V02, e))
        })?;
        let t = has(Abi::V02.timer_export()).then(|| bindings::v02::TimerIndices::new(pre)).transpose().map_err(|e| bad_timers(Abi::V02, e))?;
        return Ok((Abi::V02, bindings::Indices::V02(p, t)));
    }
    let p = bindings::v01::ProcessorIndices::new(pre).map_err(|e| bad(Abi::V01, e))?;
    let t = has(Abi::V01.timer_export()).then(|| bindings::v01::TimerIndices::new(pre)).transpose().map_err(|e| bad_timers(Abi::V01, e))?;
    Ok((Abi::V01, bindings::Indices::V01(p, t)))
}

impl WasmShared {
    /// What the processor was prepared against (a swap is prepared against the same).
    pub fn env(&self) -> crate::processor::StreamEnv {
        crate::processor::StreamEnv {
            store_names: self.store_names.to_vec(),
            state_enabled: self.state_enabled,
            outputs: self.outputs.to_vec(),
            event_time: None,
        }
    }
}

impl WasmFactory {
    /// Compiles, links and checks the plugin at `cfg.path`, the processor at `index` of its
    /// pipeline (the address of control requests).
    pub fn load(cfg: &WasmProcessorConfig, label: &str, index: usize, env: &crate::processor::StreamEnv) -> anyhow::Result<Self> {
        Ok(Self::of(prepare(cfg, label, env)?, index))
    }

    /// [`WasmFactory::load`] for a plugin run outside a stream (`arkflow plugin test` and
    /// `bench`): the state stores its `describe()` declares are the stream's, so one compile both
    /// describes and loads it.
    pub fn load_declaring_stores(cfg: &WasmProcessorConfig, label: &str) -> anyhow::Result<Self> {
        let mut env = crate::processor::StreamEnv { store_names: vec!["default".into()], state_enabled: true, outputs: vec![], event_time: None };
        let mut shared = prepare_unchecked(cfg, label, &env)?;
        let declared: Vec<String> = shared.info.state_stores.iter().filter(|s| *s != "default").cloned().collect();
        env.store_names.extend(declared);
        shared.store_names = Arc::new(env.store_names.clone());
        check(&shared, cfg, label, &env)?;
        Ok(Self::of(shared, 0))
    }

    fn of(shared: WasmShared, index: usize) -> Self {
        let shared = Arc::new(shared);
        let name = shared.display_name();
        let slot = swap::SwapSlot::new(shared.clone(), index);
        WasmFactory { shared, stage: index, name, slot }
    }

    /// The state stores the processor may open, "default" first (a store's index is its id).
    pub fn store_names(&self) -> &[String] {
        &self.shared.store_names
    }

    /// Instantiates the plugin once and calls `init` with its config (used by `--validate`).
    pub fn check_init(&self) -> anyhow::Result<()> {
        let mut p = WasmProcessor::new(self.shared.clone(), 0);
        p.ensure_instance().map_err(|e| anyhow!("{e}"))
    }

    pub fn info(&self) -> &PluginInfo {
        &self.shared.info
    }

    /// What the host measured of this processor's calls (every instance's).
    /// The metrics the plugin reported so far: (name, plugin, value).
    pub fn plugin_metrics(&self) -> Vec<(String, String, obs::Value)> {
        self.shared.obs.metrics.snapshot()
    }

    pub fn figures(&self) -> &obs::HostFigures {
        &self.shared.obs.host
    }

    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// The live-swap slot of this processor.
    pub fn slot(&self) -> &Arc<swap::SwapSlot> {
        &self.slot
    }
}

impl WasmShared {
    /// `name@version`, for logs and error records.
    pub fn display_name(&self) -> String {
        format!("{}@{}", self.info.name, self.info.version)
    }

    /// The key this stage's state needs: the YAML `key_by:`, else the one `describe()` declares
    /// (`check_key` refused a disagreement).
    pub fn key_by(&self) -> Option<&str> {
        self.cfg.key_by.as_deref().or(self.info.key_by.as_deref())
    }
}

impl super::ProcessorFactory for WasmFactory {
    fn name(&self) -> &str {
        &self.name
    }
    fn key(&self) -> super::KeyNeed {
        match self.shared.key_by() {
            Some(KEY_BY_RECORD_KEY) => super::KeyNeed::RecordKey,
            Some(k) => super::KeyNeed::Fields(vec![k.to_string()]),
            None => super::KeyNeed::None,
        }
    }
    fn instantiate(&self, ctx: &super::ProcessorContext) -> anyhow::Result<Box<dyn super::Processor>> {
        self.slot.attach(&ctx.pipeline);
        let mut p = WasmProcessor::new(self.shared.clone(), ctx.worker);
        p.slot = Some(self.slot.clone());
        p.ctx = Some(ctx.clone());
        p.stage = self.stage as u16;
        Ok(Box::new(p))
    }
}

/// Checks `describe()` against the ABI of the component's exports and the stream's stores.
fn check_info(info: &PluginInfo, abi: Abi, store_names: &[String], state_enabled: bool) -> Result<(), String> {
    if !abi_compatible(&info.abi, abi.version()) {
        return Err(format!(
            "describe() reports ABI `{}` but the component exports {}, so it must report `{}` (info.abi is the WIT package version the plugin was built against, MAJOR.MINOR.PATCH; this host implements arkflow:plugin@{HOST_ABI} and @0.1.x; rebuild the plugin with an SDK of one of them)",
            info.abi,
            abi.processor_export(),
            accepted_abi(abi.version())
        ));
    }
    if !info.state_stores.is_empty() && !state_enabled {
        return Err(format!("describe() declares state stores {:?} but the stream has `state.enabled: false`", info.state_stores));
    }
    for s in &info.state_stores {
        if !store_names.iter().any(|n| n == s) {
            return Err(format!(
                "describe() declares state store `{s}`, which is not \"default\" nor in the stream's state.custom_keys {:?}",
                &store_names[1..]
            ));
        }
    }
    Ok(())
}

/// Checks the key `describe()` declares (`info.key-by`) against the stage's YAML `key_by:`: a
/// declared key must be a field name or `record_key`, and a YAML key naming another one is
/// refused (the plugin's state would be split over key groups by a key it does not use).
fn check_key(declared: Option<&str>, yaml: Option<&str>) -> Result<(), String> {
    let Some(d) = declared else { return Ok(()) };
    if d.trim().is_empty() || d.trim() != d {
        return Err(format!("describe() declares key-by `{d}`, which is not a field name nor `{KEY_BY_RECORD_KEY}`"));
    }
    match yaml {
        Some(y) if y != d => Err(format!(
            "the stage's `key_by: {y}` disagrees with the key the plugin declares in describe() (`{d}`): its state is grouped by `{d}`; drop `key_by:` or set it to `{d}`"
        )),
        _ => Ok(()),
    }
}

/// The `info.abi` versions compatible with package version `of`, as shown in errors: `0.2.x`
/// (for 0.x the same minor), or `1.x` from 1.0 on.
fn accepted_abi(of: &str) -> String {
    let mut it = of.split('.');
    match (it.next(), it.next()) {
        (Some("0"), Some(minor)) => format!("0.{minor}.x"),
        (Some(major), _) => format!("{major}.x"),
        _ => of.to_string(),
    }
}

/// Whether a plugin's `info.abi` is compatible with package version `of` (`arkflow:plugin@`
/// before the version is allowed).
fn abi_compatible(abi: &str, of: &str) -> bool {
    let parse = |s: &str| -> Option<(u64, u64)> {
        let s = s.trim();
        let mut it = s.strip_prefix("arkflow:plugin@").unwrap_or(s).split('.');
        Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
    };
    match (parse(abi), parse(of)) {
        (Some((ma, mi)), Some((hma, hmi))) => ma == hma && (ma != 0 || mi == hmi),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn abi_rules() {
        assert!(abi_compatible("0.1.0", "0.1.1"));
        assert!(abi_compatible("0.1.7", "0.1.1"));
        assert!(!abi_compatible("0.2.0", "0.1.1"));
        assert!(abi_compatible("0.2.0", HOST_ABI) && abi_compatible("0.2.3", HOST_ABI));
        assert!(!abi_compatible("0.1.1", HOST_ABI));
        assert!(!abi_compatible("1.1.0", HOST_ABI));
        assert!(!abi_compatible("garbage", HOST_ABI));
        assert!(abi_compatible("arkflow:plugin@0.1.0", "0.1.1"));
        assert!(!abi_compatible("arkflow:plugin@0.3.0", HOST_ABI));
        assert_eq!(accepted_abi(HOST_ABI), "0.2.x");
        let info = PluginInfo { name: "x".into(), version: "1".into(), abi: "arkflow:plugin@0.2.0".into(), ..PluginInfo::default() };
        let msg = check_info(&info, Abi::V01, &["default".to_string()], true).unwrap_err();
        assert!(msg.contains("reports ABI `arkflow:plugin@0.2.0`") && msg.contains("processor@0.1.1, so it must report `0.1.x`"), "{msg}");
        assert!(check_info(&info, Abi::V02, &["default".to_string()], true).is_ok());
    }

    #[test]
    fn a_declared_key_must_agree_with_the_yaml_key() {
        assert!(check_key(None, Some("user")).is_ok());
        assert!(check_key(Some("user"), None).is_ok());
        assert!(check_key(Some("user"), Some("user")).is_ok());
        let msg = check_key(Some("user"), Some("account")).unwrap_err();
        assert!(msg.contains("`key_by: account`") && msg.contains("(`user`)"), "{msg}");
        assert!(check_key(Some(" "), None).unwrap_err().contains("not a field name"));
    }

    #[test]
    fn stores_must_be_declared() {
        let info = PluginInfo { name: "x".into(), version: "1".into(), abi: "0.1.0".into(), state_stores: vec!["counts".into()], ..PluginInfo::default() };
        let names = vec!["default".to_string()];
        assert!(check_info(&info, Abi::V01, &names, true).unwrap_err().contains("custom_keys"));
        let names = vec!["default".to_string(), "counts".to_string()];
        assert!(check_info(&info, Abi::V01, &names, true).is_ok());
        assert!(check_info(&info, Abi::V01, &names, false).unwrap_err().contains("state.enabled"));
    }
}
