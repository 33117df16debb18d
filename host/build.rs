//! Compiles the files `arkflow plugin new` writes into the binary (host/src/plugin_new): the
//! project templates, every language's SDK, the WIT package and the guest-toolchain installers,
//! so a binary always hands out the SDK it was built with. Generates `$OUT_DIR/plugin_files.rs`:
//! `FILES: &[(&str, &[u8])]`, repository-relative paths (symbolic links followed) and contents.
use std::path::{Path, PathBuf};

#[path = "src/plugin_new/walk.rs"]
mod walk;

fn main() {
    // Read when the script runs, not when it was compiled: cargo reuses a compiled build script
    // for a checkout at another path (a shared target directory), and `env!` would keep
    // pointing at the checkout that compiled it.
    let manifest = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let repo = Path::new(&manifest).join("..");
    let mut files = Vec::new();
    for root in walk::ROOTS {
        let path = repo.join(root);
        println!("cargo:rerun-if-changed={}", path.display());
        walk::walk(&path, &mut files);
    }
    files.sort();
    let mut out = String::from("pub static FILES: &[(&str, &[u8])] = &[\n");
    for f in &files {
        let rel = f.strip_prefix(&repo).expect("under the repository").to_string_lossy().replace('\\', "/");
        out.push_str(&format!("    ({rel:?}, include_bytes!({:?})),\n", f.canonicalize().expect("a readable file")));
    }
    out.push_str("];\n");
    let dest = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR")).join("plugin_files.rs");
    std::fs::write(dest, out).expect("write plugin_files.rs");
}
