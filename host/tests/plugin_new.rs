//! The plugin author's loop with the real binary, in every guest language: `arkflow plugin new`
//! writes a project outside the repository (from the files compiled into the binary), `arkflow
//! plugin build` builds it with the project's own build script (installing its toolchain when
//! missing) and loads the component as a stream would, and `arkflow plugin test --expect` passes
//! on the project's own fixture; a wrong expectation fails with exit 1 and a readable diff.
//! Also: `plugin build`'s errors for a failing build command and for a component that is not a
//! plugin.

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn arkflow(args: &[&str], cwd: &Path) -> Output {
    // A Rust project's build shares a warm target directory across runs (and stays out of the
    // host's); the other languages' build scripts keep their caches where their tools do.
    let plugins_target = std::env::var_os("ARKFLOW_PLUGIN_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/arkflow-plugins-target"));
    Command::new(bin())
        .args(args)
        .current_dir(cwd)
        .env("RUST_LOG", "warn")
        .env_remove("ARKFLOW_PLUGIN_FILES")
        .env("CARGO_TARGET_DIR", plugins_target.join("plugin-new"))
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// new → build → test --expect (passes) → a wrong expectation (fails with a diff).
fn author_loop(lang: &str) {
    let dir = Dir::new();
    let name = format!("my-{lang}-counter");
    let snake = name.replace('-', "_");
    let o = arkflow(&["plugin", "new", &name, "--lang", lang], dir.0.path());
    assert!(o.status.success(), "plugin new: {}", text(&o));
    let project = dir.0.path().join(&name);
    assert!(project.join("README.md").is_file() && project.join("sdk").is_dir() && project.join("wit/plugin.wit").is_file());

    let o = arkflow(&["plugin", "build", project.to_str().unwrap()], dir.0.path());
    assert!(o.status.success(), "plugin build: {}", text(&o));
    assert!(text(&o).contains(&format!("loads as {name} ")), "{}", text(&o));
    assert!(text(&o).contains("[default: i64]"), "{}", text(&o));

    let wasm = format!("dist/{snake}.wasm");
    let test = |expect: &str| arkflow(&["plugin", "test", &wasm, "--input", "fixtures/input.jsonl", "--key-field", "user", "--expect", expect], &project);
    let o = test("fixtures/expected.jsonl");
    assert!(o.status.success(), "plugin test --expect: {}", text(&o));
    assert!(text(&o).contains("same (8 records)"), "{}", text(&o));

    let wrong = std::fs::read_to_string(project.join("fixtures/expected.jsonl")).unwrap().replace(r#"{"key":"dave","count":1}"#, r#"{"key":"dave","count":7}"#);
    std::fs::write(project.join("fixtures/wrong.jsonl"), wrong).unwrap();
    let o = test("fixtures/wrong.jsonl");
    assert_eq!(o.status.code(), Some(1), "a wrong expectation fails: {}", text(&o));
    let report = text(&o);
    assert!(report.contains(r#"- expected {"key":"dave","count":7}"#) && report.contains(r#"+ got      {"key":"dave","count":1}"#), "{report}");
}

#[test]
fn rust_new_build_test() {
    author_loop("rust")
}

#[test]
fn python_new_build_test() {
    author_loop("python")
}

#[test]
fn js_new_build_test() {
    author_loop("js")
}

#[test]
fn c_new_build_test() {
    author_loop("c")
}

#[test]
fn zig_new_build_test() {
    author_loop("zig")
}

#[test]
fn go_new_build_test() {
    author_loop("go")
}

#[test]
fn a_failing_build_and_a_component_that_is_not_a_plugin_are_reported_as_such() {
    let dir = Dir::new();
    let o = arkflow(&["plugin", "new", "broken", "--lang", "rust"], dir.0.path());
    assert!(o.status.success(), "{}", text(&o));
    let project = dir.0.path().join("broken");
    let manifest = project.join("arkflow-plugin.toml");
    let m = std::fs::read_to_string(&manifest).unwrap();

    std::fs::write(&manifest, m.replace("build = \"bash build.sh\"", "build = \"exit 3\"")).unwrap();
    let o = arkflow(&["plugin", "build", "broken"], dir.0.path());
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("build command `exit 3`") && text(&o).contains("exit status: 3"), "{}", text(&o));

    // A build that "succeeds" with a file that is not a component of the plugin world.
    let not_a_plugin = plugin("wrong_world");
    std::fs::write(&manifest, m.replace("build = \"bash build.sh\"", &format!("build = \"mkdir -p dist && cp {} dist/broken.wasm\"", not_a_plugin.display())))
        .unwrap();
    let o = arkflow(&["plugin", "build", "broken"], dir.0.path());
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("broken.wasm"), "names the component: {}", text(&o));

    std::fs::write(&manifest, "name = \"broken\"\nlang = \"cobol\"\nsdk = \"0.2.0\"\nbuild = \"true\"\nwasm = \"x.wasm\"\n").unwrap();
    let o = arkflow(&["plugin", "build", "broken"], dir.0.path());
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("lang \"cobol\""), "{}", text(&o));
}
