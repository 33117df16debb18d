//! Which files of the repository `arkflow plugin new` hands out, shared by the build script that
//! compiles them into the binary (host/build.rs) and by the checkout reader
//! (`ARKFLOW_PLUGIN_FILES`), so both see the same set.
use std::path::{Path, PathBuf};

/// What `plugin new` may copy (see plugins/templates/README.md), repository-relative.
pub const ROOTS: &[&str] = &[
    "plugins/templates",
    "plugins/sdk",
    "plugins/python/sdk",
    "plugins/js/sdk",
    "plugins/go/arkflow",
    "plugins/c/sdk",
    "plugins/zig/sdk",
    "plugins/toolchain",
    "wit/plugin.wit",
];

/// Build output and caches, never copied.
const SKIP: &[&str] = &["target", "node_modules", "__pycache__", ".build", "dist", ".zig-cache", "zig-cache", "zig-out"];

/// Every file under `path` (itself, when a file) but build output, symbolic links followed.
pub fn walk(path: &Path, files: &mut Vec<PathBuf>) {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    if SKIP.contains(&name.as_str()) || name.ends_with(".wasm") || name.ends_with(".pyc") {
        return;
    }
    let Ok(meta) = std::fs::metadata(path) else { return };
    if meta.is_file() {
        files.push(path.to_path_buf());
    } else if meta.is_dir() {
        let Ok(entries) = std::fs::read_dir(path) else { return };
        for entry in entries.flatten() {
            walk(&entry.path(), files);
        }
    }
}
