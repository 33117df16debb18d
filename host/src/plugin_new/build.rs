//! `arkflow plugin build [dir]`: builds a plugin project and checks what it built.
//!
//! Contract: reads the project's `arkflow-plugin.toml` (errors name the file, line and column),
//! runs its `build` command with `sh -c` in the project directory (its output passes through),
//! then loads the component named by `wasm` exactly as a stream loads a plugin: the WIT world it
//! exports, `describe()`, the state stores and formats it declares. Errors say which step failed:
//! the manifest, the build command (with its exit status), or the component (with the loader's
//! message, which names the plugin path and the WIT export).

use super::{Lang, MANIFEST, SDK_VERSION};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

/// A project's `arkflow-plugin.toml`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub name: String,
    pub lang: String,
    /// The SDK (= WIT package) version the project's `sdk/` copy targets.
    pub sdk: String,
    /// The build command, run with `sh -c` in the project directory.
    pub build: String,
    /// The component the build produces, relative to the project.
    pub wasm: PathBuf,
}

impl Manifest {
    pub fn new(name: &str, lang: Lang) -> Manifest {
        Manifest {
            name: name.to_string(),
            lang: lang.name().to_string(),
            sdk: SDK_VERSION.to_string(),
            build: "bash build.sh".to_string(),
            wasm: PathBuf::from(format!("dist/{}.wasm", name.replace('-', "_"))),
        }
    }

    pub fn to_toml(&self) -> String {
        let body = toml::to_string(self).expect("a manifest serializes");
        format!("# Written by `arkflow plugin new`; read by `arkflow plugin build`. `sdk` is the version of\n# the WIT package arkflow:plugin that the SDK copy in sdk/ targets.\n{body}")
    }

    /// Reads `dir/arkflow-plugin.toml`.
    pub fn read(dir: &Path) -> Result<Manifest, BuildError> {
        let path = dir.join(MANIFEST);
        let text = std::fs::read_to_string(&path)
            .map_err(|e| BuildError::Manifest(format!("{}: {e} (is {} a project made by `arkflow plugin new`?)", path.display(), dir.display())))?;
        toml::from_str(&text).map_err(|e| BuildError::Manifest(located(&path, &text, &e)))
    }
}

/// A TOML error as `file:line:col: message`.
fn located(path: &Path, text: &str, e: &toml::de::Error) -> String {
    let at = e.span().map(|s| s.start.min(text.len())).unwrap_or(0);
    let line = text[..at].matches('\n').count() + 1;
    let col = at - text[..at].rfind('\n').map(|i| i + 1).unwrap_or(0) + 1;
    format!("{}:{line}:{col}: {}", path.display(), e.message())
}

/// Why a build did not produce a plugin that loads.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("{0}")]
    Manifest(String),
    #[error("build command `{command}` in {dir}: {status}")]
    Command { command: String, dir: PathBuf, status: String },
    #[error("{0}")]
    Component(String),
}

impl BuildError {
    /// The process exit code: 2 for a bad manifest, 1 for a failed build or component.
    pub fn exit_code(&self) -> u8 {
        if matches!(self, BuildError::Manifest(_)) {
            2
        } else {
            1
        }
    }
}

/// Builds the project in `dir` and describes the component; returns its path.
pub fn run(dir: &Path, out: &mut dyn Write) -> Result<PathBuf, BuildError> {
    let m = Manifest::read(dir)?;
    if Lang::parse(&m.lang).is_none() {
        let langs: Vec<_> = Lang::ALL.iter().map(|l| l.name()).collect();
        return Err(BuildError::Manifest(format!("{}: lang {:?} is not one of {}", dir.join(MANIFEST).display(), m.lang, langs.join(", "))));
    }
    let _ = writeln!(out, "building {} ({}, SDK {}): {}", m.name, m.lang, m.sdk, m.build);
    let status = std::process::Command::new("sh").arg("-c").arg(&m.build).current_dir(dir).status();
    let failed = |status: String| BuildError::Command { command: m.build.clone(), dir: dir.to_path_buf(), status };
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => return Err(failed(s.to_string())),
        Err(e) => return Err(failed(e.to_string())),
    }
    let wasm = dir.join(&m.wasm);
    if !wasm.is_file() {
        return Err(BuildError::Component(format!("{}: the build succeeded but did not write this file (`wasm` in {MANIFEST})", wasm.display())));
    }
    let plugin = crate::plugin_test::load_plugin(&wasm).map_err(|e| BuildError::Component(format!("{e:#}")))?;
    let info = plugin.info();
    let formats: Vec<String> = info.state_formats.iter().map(|(s, f)| format!("{s}: {f}")).collect();
    let _ = writeln!(out, "built {} ({} bytes)", wasm.display(), std::fs::metadata(&wasm).map(|m| m.len()).unwrap_or(0));
    let _ = writeln!(
        out,
        "  loads as {} {} (abi {}); state stores {:?}{}; key_by {}",
        info.name,
        info.version,
        info.abi,
        info.state_stores,
        if formats.is_empty() { String::new() } else { format!(" [{}]", formats.join(", ")) },
        info.key_by.as_deref().unwrap_or("(none: the record key)")
    );
    if m.sdk != SDK_VERSION {
        let _ = writeln!(out, "  note: the project's SDK is {}; this arkflow hands out {SDK_VERSION} (`arkflow plugin new` for a fresh copy)", m.sdk);
    }
    Ok(wasm)
}
