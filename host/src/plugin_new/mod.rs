//! `arkflow plugin new`: writes a plugin project outside this repository, in one of the six guest
//! languages, from the files compiled into the binary (or a checkout's, `ARKFLOW_PLUGIN_FILES`).
//!
//! Contract (plugins/templates/README.md): the project gets the language's template with
//! `{{name}}`, `{{name_snake}}` and `{{sdk_version}}` replaced, the shared example fixtures, the
//! language's SDK package under `sdk/` (pinned: the copy this binary was built with, versioned as
//! the WIT package), `wit/plugin.wit`, the guest-toolchain installers under `toolchain/`, and an
//! `arkflow-plugin.toml` that `arkflow plugin build` reads. The name must be lowercase letters,
//! digits and `-`, starting with a letter; the directory must not exist or be empty. Nothing is
//! written unless every file can be: the project is assembled in a sibling temporary directory
//! and renamed into place.

pub mod build;
pub mod walk;

use std::path::{Path, PathBuf};

/// The WIT package version the SDKs target, and so every new project's SDK version.
pub const SDK_VERSION: &str = "0.2.0";

/// The file name of a project's manifest.
pub const MANIFEST: &str = "arkflow-plugin.toml";

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/plugin_files.rs"));
}

/// A guest language of `plugin new`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Rust,
    Python,
    Js,
    C,
    Zig,
    Go,
}

impl Lang {
    pub const ALL: [Lang; 6] = [Lang::Rust, Lang::Python, Lang::Js, Lang::C, Lang::Zig, Lang::Go];

    pub fn name(self) -> &'static str {
        match self {
            Lang::Rust => "rust",
            Lang::Python => "python",
            Lang::Js => "js",
            Lang::C => "c",
            Lang::Zig => "zig",
            Lang::Go => "go",
        }
    }

    pub fn parse(s: &str) -> Option<Lang> {
        Lang::ALL.into_iter().find(|l| l.name() == s)
    }

    /// The SDK package in the repository, copied to the project's `sdk/`.
    fn sdk_dir(self) -> &'static str {
        match self {
            Lang::Rust => "plugins/sdk/",
            Lang::Python => "plugins/python/sdk/",
            Lang::Js => "plugins/js/sdk/",
            Lang::C => "plugins/c/sdk/",
            Lang::Zig => "plugins/zig/sdk/",
            Lang::Go => "plugins/go/arkflow/",
        }
    }
}

/// Why `plugin new` wrote nothing.
#[derive(Debug, thiserror::Error)]
pub enum NewError {
    #[error("plugin name {0:?}: use up to 32 lowercase letters, digits and '-', starting with a letter (e.g. my-counter)")]
    BadName(String),
    #[error("{0} exists and is not empty: choose another name or --dir")]
    NotEmpty(PathBuf),
    #[error("this arkflow binary has no {0} template")]
    NoTemplate(&'static str),
    #[error("ARKFLOW_PLUGIN_FILES={0}: not a checkout of this repository (no plugins/templates)")]
    NoCheckout(PathBuf),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> NewError + '_ {
    move |source| NewError::Io { path: path.to_path_buf(), source }
}

/// Writes the project `name` in `lang` into `dir` (default `./name`); returns its directory and
/// the files written (project-relative).
pub fn create(name: &str, lang: Lang, dir: Option<&Path>) -> Result<(PathBuf, Vec<String>), NewError> {
    let valid = name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.ends_with('-')
        && name.len() <= 32; // Zig's limit for a package name
    if !valid {
        return Err(NewError::BadName(name.to_string()));
    }
    let dir = dir.map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from(name));
    if std::fs::read_dir(&dir).is_ok_and(|mut d| d.next().is_some()) {
        return Err(NewError::NotEmpty(dir));
    }
    let files = project_files(name, lang, &source()?)?;
    let parent = dir.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(io(parent))?;
    let staging = tempfile::Builder::new().prefix(".arkflow-new-").tempdir_in(parent).map_err(io(parent))?;
    for (rel, bytes) in &files {
        let path = staging.path().join(rel);
        std::fs::create_dir_all(path.parent().expect("a file in the project")).map_err(io(&path))?;
        std::fs::write(&path, bytes).map_err(io(&path))?;
        if rel.ends_with(".sh") {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).map_err(io(&path))?;
        }
    }
    if dir.exists() {
        std::fs::remove_dir(&dir).map_err(io(&dir))?; // empty, checked above
    }
    std::fs::rename(staging.keep(), &dir).map_err(io(&dir))?;
    Ok((dir, files.into_iter().map(|(rel, _)| rel).collect()))
}

/// The project's files: (project-relative path, contents), the manifest last.
fn project_files(name: &str, lang: Lang, source: &[(String, Vec<u8>)]) -> Result<Vec<(String, Vec<u8>)>, NewError> {
    let template = format!("plugins/templates/{}/", lang.name());
    let installer = format!("plugins/toolchain/{}.sh", lang.name());
    let snake = name.replace('-', "_");
    let fingerprint = zig_fingerprint(&snake);
    let fill = |bytes: &[u8]| match std::str::from_utf8(bytes) {
        Ok(text) => text
            .replace("{{name}}", name)
            .replace("{{name_snake}}", &snake)
            .replace("{{sdk_version}}", SDK_VERSION)
            .replace("{{zig_fingerprint}}", &fingerprint)
            .into_bytes(),
        Err(_) => bytes.to_vec(),
    };
    let mut out = Vec::new();
    for (path, bytes) in source {
        let dest = if let Some(rest) = path.strip_prefix(&template).or_else(|| path.strip_prefix("plugins/templates/common/")) {
            (rest.to_string(), fill(bytes))
        } else if let Some(rest) = path.strip_prefix(lang.sdk_dir()) {
            (format!("sdk/{rest}"), bytes.clone())
        } else if path == "wit/plugin.wit"
            || (lang != Lang::Rust && (path == "plugins/toolchain/common.sh" || *path == installer || path.starts_with("plugins/toolchain/adapter/")))
        {
            (path.trim_start_matches("plugins/").to_string(), bytes.clone())
        } else {
            continue;
        };
        out.push(dest);
    }
    if !source.iter().any(|(p, _)| p.starts_with(&template)) {
        return Err(NewError::NoTemplate(lang.name()));
    }
    out.push((MANIFEST.to_string(), build::Manifest::new(name, lang).to_toml().into_bytes()));
    Ok(out)
}

/// A Zig package's `.fingerprint` for package name `name`: the CRC-32 of the name in the high half,
/// a random id (neither 0 nor all ones) in the low half, as `zig build` expects of a new package.
fn zig_fingerprint(name: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    let id = (nanos ^ std::process::id().rotate_left(16)).clamp(1, u32::MAX - 1);
    format!("0x{:016x}", (u64::from(crc32fast::hash(name.as_bytes())) << 32) | u64::from(id))
}

/// The files to copy from: compiled in, or read from the checkout `ARKFLOW_PLUGIN_FILES` names.
fn source() -> Result<Vec<(String, Vec<u8>)>, NewError> {
    let Some(root) = std::env::var_os("ARKFLOW_PLUGIN_FILES").map(PathBuf::from) else {
        return Ok(embedded::FILES.iter().map(|(p, b)| (p.to_string(), b.to_vec())).collect());
    };
    if !root.join("plugins/templates").is_dir() {
        return Err(NewError::NoCheckout(root));
    }
    let mut paths = Vec::new();
    for r in walk::ROOTS {
        walk::walk(&root.join(r), &mut paths);
    }
    paths
        .into_iter()
        .map(|p| {
            let rel = p.strip_prefix(&root).expect("under the checkout").to_string_lossy().into_owned();
            std::fs::read(&p).map(|b| (rel, b)).map_err(io(&p))
        })
        .collect()
}

#[cfg(test)]
mod tests;
