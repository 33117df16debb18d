//! The per-language plugin guides (docs/plugins/<lang>.md) checked against `wit/plugin.wit`:
//! every guide names the WIT package version, every function of the `store` resource and every
//! export of the `processor` interface (and every guide each timer function), so a change to the WIT that the guides do not follow
//! fails here.

use std::path::Path;

const LANGS: &[&str] = &["rust", "c", "zig", "go", "python", "js"];

/// Function names declared inside `<kind> <name> { ... }` of the WIT text.
fn functions_in(wit: &str, kind: &str, name: &str) -> Vec<String> {
    let start = wit.find(&format!("{kind} {name} {{")).unwrap_or_else(|| panic!("no {kind} {name} in the WIT"));
    let mut depth = 0;
    let mut names = Vec::new();
    for line in wit[start..].lines() {
        let code = line.split("//").next().unwrap_or("").trim();
        if let Some((f, rest)) = code.split_once(':') {
            if depth == 1 && (rest.trim_start().starts_with("func") || rest.trim_start().starts_with("static func")) {
                names.push(f.trim().to_string());
            }
        }
        depth += code.matches('{').count() as i32;
        depth -= code.matches('}').count() as i32;
        if depth == 0 && code.contains('}') {
            break;
        }
    }
    names
}

#[test]
fn every_language_guide_covers_the_wit() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let wit = std::fs::read_to_string(root.join("wit/plugin.wit")).unwrap();
    let package = wit.lines().find_map(|l| l.trim().strip_prefix("package ")).unwrap().trim_end_matches(';').to_string();
    let store = functions_in(&wit, "resource", "store");
    let exports = functions_in(&wit, "interface", "processor");
    assert_eq!(store.len(), 9, "store functions parsed: {store:?}");
    assert_eq!(exports, ["describe", "init", "process-batch", "on-checkpoint"]);
    for lang in LANGS {
        let path = root.join(format!("docs/plugins/{lang}.md"));
        let doc = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(doc.contains(&package), "{}: does not name the WIT package {package}", path.display());
        for f in store.iter().chain(&exports) {
            assert!(doc.contains(&format!("`{f}")), "{}: does not document `{f}` of the WIT", path.display());
        }
    }
    // The SDKs that wrap timers document every timer function.
    let mut timers = functions_in(&wit, "interface", "timers");
    timers.extend(functions_in(&wit, "interface", "timer-handler"));
    assert_eq!(timers, ["register-timer", "delete-timer", "watermark", "now", "on-timers"]);
    for lang in LANGS {
        let doc = std::fs::read_to_string(root.join(format!("docs/plugins/{lang}.md"))).unwrap();
        for f in &timers {
            assert!(doc.contains(&format!("`{f}")), "docs/plugins/{lang}.md: does not document `{f}` of the WIT timers");
        }
    }
}
