//! Compiled-artifact cache: a plugin is compiled to native code once per content and engine, so a
//! restart (or a swap back to a known version) loads it in milliseconds instead of recompiling
//! (seconds for the Python and JavaScript components, which embed an interpreter).
//!
//! Contract:
//! - Key: xxh3-128 of the component bytes plus a hash of the engine's
//!   `precompile_compatibility_hash` (wasmtime version, target, engine settings). A file is only
//!   ever reused for the same bytes and a compatible engine.
//! - File: `<dir>/<key>.cwasm` = magic `ARKCWASM`, xxh3-64 of the payload, payload (wasmtime's
//!   serialized component). The checksum is verified before the payload is handed to
//!   `Component::deserialize`; a file that fails it, or that wasmtime rejects, is recompiled and
//!   replaced (logged). Files are written to a temp name and renamed, so concurrent processes
//!   never see a partial file.
//! - Trust: loading native code from the cache is as trusted as the directory itself; it lives
//!   under the user's cache dir by default (`$ARKFLOW_PLUGIN_CACHE`, else
//!   `$XDG_CACHE_HOME/arkflow/plugins`, else `~/.cache/arkflow/plugins`); `off` disables it.
//!   The top-level YAML key `plugin_cache` overrides it for a process.
//! - The cache never fails a load: any I/O error falls back to compiling in memory.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::RwLock;
use std::time::{Duration, Instant};
use wasmtime::component::Component;
use wasmtime::Engine;

const MAGIC: &[u8; 8] = b"ARKCWASM";

/// How a component was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    /// Loaded from the cache.
    Hit,
    /// Compiled (and stored when the cache is enabled).
    Compiled,
}

/// A loaded component, with its content hash and how long loading took.
pub struct Loaded {
    pub component: Component,
    /// xxh3-128 of the component bytes, hex.
    pub content_hash: String,
    pub outcome: CacheOutcome,
    pub elapsed: Duration,
}

static DIR: RwLock<Option<Option<PathBuf>>> = RwLock::new(None);

/// Sets the cache directory for this process (None: disabled).
pub fn set_dir(dir: Option<PathBuf>) {
    *DIR.write().unwrap_or_else(|p| p.into_inner()) = Some(dir);
}

/// Applies a config's top-level `plugin_cache` (None: keep the default).
pub fn configure(plugin_cache: &Option<Option<PathBuf>>) {
    if let Some(dir) = plugin_cache {
        set_dir(dir.clone());
    }
}

/// The cache directory in effect: the one set by [`set_dir`], else the environment default.
pub fn dir() -> Option<PathBuf> {
    if let Some(d) = DIR.read().unwrap_or_else(|p| p.into_inner()).clone() {
        return d;
    }
    crate::util::dirs::plugin_cache()
}

/// The content hash used in cache keys and logs.
pub fn content_hash(bytes: &[u8]) -> String {
    format!("{:032x}", xxhash_rust::xxh3::xxh3_128(bytes))
}

fn engine_hash(engine: &Engine) -> u64 {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    engine.precompile_compatibility_hash().hash(&mut h);
    h.finish()
}

/// Loads `bytes` as a component through the cache in `dir` (None: compile only).
pub fn load(engine: &Engine, bytes: &[u8], dir: Option<&Path>) -> wasmtime::Result<Loaded> {
    let start = Instant::now();
    let content_hash = content_hash(bytes);
    let file = dir.map(|d| d.join(format!("{content_hash}-{:016x}.cwasm", engine_hash(engine))));
    if let Some(f) = &file {
        if let Some(component) = read(engine, f) {
            return Ok(Loaded { component, content_hash, outcome: CacheOutcome::Hit, elapsed: start.elapsed() });
        }
    }
    let component = Component::new(engine, bytes)?;
    if let Some(f) = &file {
        if let Err(e) = write(&component, f) {
            tracing::warn!(file = %f.display(), "plugin cache: cannot store the compiled component: {e}");
        }
    }
    Ok(Loaded { component, content_hash, outcome: CacheOutcome::Compiled, elapsed: start.elapsed() })
}

fn read(engine: &Engine, file: &Path) -> Option<Component> {
    let data = std::fs::read(file).ok()?;
    let ok = data.len() >= 16 && &data[..8] == MAGIC && {
        let sum = u64::from_le_bytes(data[8..16].try_into().expect("8 bytes"));
        xxhash_rust::xxh3::xxh3_64(&data[16..]) == sum
    };
    if !ok {
        tracing::warn!(file = %file.display(), "plugin cache: checksum mismatch; recompiling");
        return None;
    }
    // SAFETY: the payload was produced by `Component::serialize` of this engine configuration (the
    // key includes the compatibility hash) and its checksum matches what was written; the cache
    // directory is trusted like the binary (module doc).
    match unsafe { Component::deserialize(engine, &data[16..]) } {
        Ok(c) => Some(c),
        Err(e) => {
            tracing::warn!(file = %file.display(), "plugin cache: unusable entry ({e}); recompiling");
            None
        }
    }
}

fn write(component: &Component, file: &Path) -> anyhow::Result<()> {
    let payload = component.serialize()?;
    if let Some(d) = file.parent() {
        std::fs::create_dir_all(d)?;
    }
    let mut data = Vec::with_capacity(payload.len() + 16);
    data.extend_from_slice(MAGIC);
    data.extend_from_slice(&xxhash_rust::xxh3::xxh3_64(&payload).to_le_bytes());
    data.extend_from_slice(&payload);
    let tmp = file.with_extension(format!("tmp.{}.{:?}", std::process::id(), std::thread::current().id()).replace(['(', ')'], ""));
    std::fs::write(&tmp, &data)?;
    std::fs::rename(&tmp, file).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const WAT: &str = r#"(component (core module (func (export "f"))))"#;

    #[test]
    fn second_load_hits_and_corruption_recompiles() {
        let engine = super::super::shared_engine();
        // Component::new accepts the text format (wasmtime feature `wat`).
        let bytes = WAT.as_bytes().to_vec();
        let dir = tempfile::tempdir().unwrap();
        let a = load(engine, &bytes, Some(dir.path())).unwrap();
        assert_eq!(a.outcome, CacheOutcome::Compiled);
        let b = load(engine, &bytes, Some(dir.path())).unwrap();
        assert_eq!(b.outcome, CacheOutcome::Hit);
        assert_eq!(a.content_hash, b.content_hash);
        // Flip one payload byte: the checksum catches it and the entry is rebuilt.
        let file = std::fs::read_dir(dir.path()).unwrap().next().unwrap().unwrap().path();
        let mut data = std::fs::read(&file).unwrap();
        let last = data.len() - 1;
        data[last] ^= 0xff;
        std::fs::write(&file, &data).unwrap();
        assert_eq!(load(engine, &bytes, Some(dir.path())).unwrap().outcome, CacheOutcome::Compiled);
        assert_eq!(load(engine, &bytes, Some(dir.path())).unwrap().outcome, CacheOutcome::Hit);
        // Other bytes, other entry; no directory, no cache.
        let other = br#"(component (core module (func (export "g"))))"#.to_vec();
        assert_eq!(load(engine, &other, Some(dir.path())).unwrap().outcome, CacheOutcome::Compiled);
        assert_eq!(load(engine, &bytes, None).unwrap().outcome, CacheOutcome::Compiled);
    }
}
