//! The per-language plugin guides (docs/plugins/<lang>.md) checked against the WIT package their
//! SDK targets (all six: `wit/plugin.wit`, 0.2.0): every
//! guide names that package version, every function of the `store` resource and every export of
//! the `processor` interface, each timer function and both `fields` functions, so a change to the WIT that the guides do
//! not follow fails here.

use std::path::Path;

const LANGS: &[&str] = &["rust", "c", "zig", "go", "python", "js"];

/// The WIT file of the package a language's SDK targets (every SDK is on 0.2.0; a language
/// still on 0.1.x would name `wit/v0.1/plugin.wit` here).
fn wit_of(_lang: &str) -> &'static str {
    "wit/plugin.wit"
}

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
    for lang in LANGS {
        let wit = std::fs::read_to_string(root.join(wit_of(lang))).unwrap();
        let package = wit.lines().find_map(|l| l.trim().strip_prefix("package ")).unwrap().trim_end_matches(';').to_string();
        let store = functions_in(&wit, "resource", "store");
        let exports = functions_in(&wit, "interface", "processor");
        let expected_store = if wit_of(lang) == "wit/plugin.wit" { 11 } else { 9 };
        assert_eq!(store.len(), expected_store, "{}: store functions parsed: {store:?}", wit_of(lang));
        assert_eq!(exports, ["describe", "init", "process-batch", "on-checkpoint"]);
        let mut timers = functions_in(&wit, "interface", "timers");
        timers.extend(functions_in(&wit, "interface", "timer-handler"));
        assert_eq!(timers, ["register-timer", "delete-timer", "watermark", "now", "on-timers"]);
        let fields = functions_in(&wit, "interface", "fields");
        assert_eq!(fields, ["declare", "columns"]);
        let path = root.join(format!("docs/plugins/{lang}.md"));
        let doc = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(doc.contains(&package), "{}: does not name the WIT package {package}", path.display());
        for f in store.iter().chain(&exports).chain(&timers).chain(&fields) {
            assert!(doc.contains(&format!("`{f}")), "{}: does not document `{f}` of {}", path.display(), wit_of(lang));
        }
    }
}
