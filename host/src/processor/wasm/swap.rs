//! Live plugin swap: a running stream replaces a `wasm` processor's component without losing
//! state, skipping or reprocessing a record.
//!
//! Contract:
//! - A reload is asked for by the file watcher (`watch: true`: the file's inode, size or mtime changed)
//!   or by a control request (`POST /streams/<stream>/processors/<index>/reload` on the `http:`
//!   endpoint). Either way the file at the processor's `path` is read again and, off the data
//!   path, must pass everything a start does ([`super::prepare`]: compile through the artifact
//!   cache, link against world `plugin`, `describe()` with a compatible WIT version and only
//!   declared state stores) plus an `init` canary with the processor's config. A file that fails
//!   is refused with an error naming the path and the export; the running version keeps going.
//!   Identical bytes are a no-op.
//! - An accepted version is *staged*. When the stream checkpoints, it is *armed* by the input
//!   thread just before it injects the next barrier `e` (so every worker sees it at barrier `e`),
//!   and each worker switches right after its `on-checkpoint` calls for `e`: every record of
//!   epochs <= `e` was processed by the old version, every later record by the new one. State is
//!   host-owned and untouched; the new instance starts from it. After a crash, replayed records
//!   are processed by whatever file is at `path` then, and only decided epochs were ever visible.
//!   Without checkpointing there are no barriers: workers switch before their next batch.
//! - Counted per stream: swaps armed, reloads refused, and the longest worker pause of the last
//!   swap (dropping the old instance, instantiating and `init`ing the new one). Logged: the old
//!   and new `name@version` with content hashes, the epoch of the switch, and every refusal.

use super::{prepare, WasmProcessor, WasmShared};
use crate::processor::PipelineShared;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant, SystemTime};

/// An accepted version waiting for its barrier.
struct Armed {
    /// The barrier after which workers switch (0: at once, the stream has no barriers).
    epoch: u64,
    shared: Arc<WasmShared>,
    generation: u64,
}

/// The swap state of one `wasm` processor, shared by its per-worker instances.
pub struct SwapSlot {
    /// Position of the processor in its pipeline.
    pub index: usize,
    /// The version last accepted (active, staged or armed): the base of the next reload.
    latest: Mutex<Arc<WasmShared>>,
    staged: Mutex<Option<Arc<WasmShared>>>,
    armed: Mutex<Option<Armed>>,
    /// Bumped when a version is armed; workers compare it with theirs on every check.
    generation: AtomicU64,
    /// The stream has no periodic barriers: arm at once.
    immediate: AtomicBool,
    /// One reload at a time (watcher and control requests).
    reloading: Mutex<()>,
    stream: OnceLock<Weak<PipelineShared>>,
}

impl std::fmt::Debug for SwapSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SwapSlot").field("index", &self.index).field("generation", &self.generation.load(SeqCst)).finish()
    }
}

impl SwapSlot {
    pub fn new(initial: Arc<WasmShared>, index: usize) -> Arc<Self> {
        Arc::new(SwapSlot {
            index,
            latest: Mutex::new(initial),
            staged: Mutex::new(None),
            armed: Mutex::new(None),
            generation: AtomicU64::new(0),
            immediate: AtomicBool::new(false),
            reloading: Mutex::new(()),
            stream: OnceLock::new(),
        })
    }

    /// The version last accepted: its `obs` and `display_name()` are the processor's.
    pub fn latest(&self) -> Arc<WasmShared> {
        self.latest.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Registers the slot with its stream once (metrics, barrier arming, control requests) and
    /// starts the file watcher when the processor has `watch: true`.
    pub fn attach(self: &Arc<Self>, stream: &Arc<PipelineShared>) {
        if self.stream.set(Arc::downgrade(stream)).is_err() {
            return;
        }
        self.immediate.store(!stream.periodic_barriers.load(SeqCst), SeqCst);
        stream.swaps.lock().unwrap_or_else(|p| p.into_inner()).push(Arc::downgrade(self));
        let cfg = &self.latest().cfg;
        if cfg.watch {
            spawn_watcher(Arc::downgrade(self), cfg.path.clone(), Duration::from_millis(cfg.watch_interval_ms.max(1)));
        }
    }

    fn stream(&self) -> Option<Arc<PipelineShared>> {
        self.stream.get().and_then(Weak::upgrade)
    }

    /// Reads the processor's file again, checks it off the data path and stages it. Ok: what
    /// happened, for the requester; Err: why the file was refused (the old version keeps running).
    pub fn reload(&self) -> Result<String, String> {
        let _one = self.reloading.lock().unwrap_or_else(|p| p.into_inner());
        let old = self.latest();
        let shown = old.path.display().to_string();
        let refused = |msg: String| {
            if let Some(s) = self.stream() {
                s.plugin_swaps_refused.fetch_add(1, SeqCst);
            }
            tracing::error!(plugin = %shown, "{}: new plugin refused, {} keeps running: {msg}", old.label, old.display_name());
            msg
        };
        let bytes = std::fs::read(&old.path).map_err(|e| refused(format!("{}: cannot read plugin {shown}: {e}", old.label)))?;
        if super::cache::content_hash(&bytes) == old.content_hash {
            return Ok(format!("{shown} is unchanged ({} {}); nothing to do", old.display_name(), short(&old.content_hash)));
        }
        let mut new = prepare(&old.cfg, &old.label, &old.env()).map_err(|e| refused(format!("{e:#}")))?;
        if new.key_by() != old.key_by() {
            let shown_key = |k: Option<&str>| k.map_or("none".to_string(), |k| format!("`{k}`"));
            return Err(refused(format!(
                "{}: the new plugin's state is keyed by {} but the running one's by {}; the stream is routed by the old key until restart, so change the key with a restart (and a stream whose state layout allows it)",
                old.label,
                shown_key(new.key_by()),
                shown_key(old.key_by())
            )));
        }
        new.obs = old.obs.clone();
        let new = Arc::new(new);
        // The canary: a fresh instance must `init` with the processor's config.
        WasmProcessor::new(new.clone(), usize::MAX).ensure_instance().map_err(refused)?;
        if new.info.name != old.info.name {
            tracing::warn!(plugin = %shown, "{}: the new plugin calls itself `{}` (was `{}`); it inherits the old one's state", old.label, new.info.name, old.info.name);
        }
        *self.latest.lock().unwrap_or_else(|p| p.into_inner()) = new.clone();
        let what =
            format!("{}: {} ({}) -> {} ({}) staged", old.label, old.display_name(), short(&old.content_hash), new.display_name(), short(&new.content_hash));
        if self.immediate.load(SeqCst) {
            self.arm_with(new, 0);
            tracing::info!(plugin = %shown, "{what}; workers switch before their next batch");
            Ok(format!("{what}; workers switch before their next batch"))
        } else {
            *self.staged.lock().unwrap_or_else(|p| p.into_inner()) = Some(new);
            tracing::info!(plugin = %shown, "{what}; switches at the next checkpoint barrier");
            Ok(format!("{what}; switches at the next checkpoint barrier"))
        }
    }

    /// Called by the input thread just before it sends barrier `epoch` to the workers.
    pub fn arm(&self, epoch: u64) {
        let staged = self.staged.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(new) = staged {
            tracing::info!(plugin = %new.path.display(), "{}: switching to {} at checkpoint barrier {epoch}", new.label, new.display_name());
            self.arm_with(new, epoch);
        }
    }

    fn arm_with(&self, shared: Arc<WasmShared>, epoch: u64) {
        let mut armed = self.armed.lock().unwrap_or_else(|p| p.into_inner());
        let generation = self.generation.load(SeqCst) + 1;
        *armed = Some(Armed { epoch, shared, generation });
        self.generation.store(generation, SeqCst);
        if let Some(s) = self.stream() {
            s.plugin_swaps.fetch_add(1, SeqCst);
            s.plugin_swap_pause_us.store(0, SeqCst);
        }
    }

    /// Whether a worker that runs `seen` must switch now: at barrier `Some(e)`, or before a batch
    /// (`None`, only when the stream has no barriers). Returns the new version and generation.
    pub fn due(&self, seen: u64, barrier: Option<u64>) -> Option<(u64, Arc<WasmShared>)> {
        if self.generation.load(SeqCst) == seen {
            return None;
        }
        let armed = self.armed.lock().unwrap_or_else(|p| p.into_inner());
        let a = armed.as_ref()?;
        let now = match barrier {
            Some(e) => a.epoch <= e,
            None => a.epoch == 0,
        };
        now.then(|| (a.generation, a.shared.clone()))
    }

    /// A worker finished switching; `pause` is how long it stalled.
    pub fn switched(&self, pause: Duration) {
        if let Some(s) = self.stream() {
            s.plugin_swap_pause_us.fetch_max(pause.as_micros() as u64, SeqCst);
        }
    }
}

fn short(hash: &str) -> &str {
    &hash[..hash.len().min(12)]
}

/// Polls `path` every `every`; a change of inode, size or mtime triggers a reload. Ends when the slot
/// is gone (the stream ended).
fn spawn_watcher(slot: Weak<SwapSlot>, path: std::path::PathBuf, every: Duration) {
    use std::os::unix::fs::MetadataExt;
    // A replacement by rename changes the inode even when size and mtime happen to match.
    let stat = |p: &std::path::Path| std::fs::metadata(p).ok().map(|m| (m.ino(), m.len(), m.modified().unwrap_or(SystemTime::UNIX_EPOCH)));
    let mut last = stat(&path);
    let shown = path.display().to_string();
    let spawned = std::thread::Builder::new().name("plugin-watch".into()).spawn(move || loop {
        std::thread::sleep(every);
        let Some(slot) = slot.upgrade() else { return };
        let now = stat(&path);
        if now.is_some() && now != last {
            last = now;
            // A file still being written fails the checks; its next change is tried again.
            let start = Instant::now();
            let _ = slot.reload();
            tracing::debug!(plugin = %path.display(), ms = start.elapsed().as_millis() as u64, "watch: reload checked");
        }
    });
    if let Err(e) = spawned {
        tracing::error!(plugin = %shown, "cannot start the plugin file watcher: {e}");
    }
}
