//! The structure of `host/src`, checked from the source (docs/ARCHITECTURE.md, *Layers*):
//! - no import circle between its top-level modules, nor between the files of `config/`, and
//!   every top-level module imports only modules of lower layers ([`LAYERS`]);
//! - no file over 500 lines, no function over 80.
//!
//! Read as text: every `crate::m` path names top-level module `m`, every `super::f` /
//! `crate::config::f` in `config/` names file `f`. Comments and test code (files named
//! `tests*.rs` / `*_tests.rs`, a trailing `#[cfg(test)] mod tests { .. }`) and the generated
//! bindings are left out. A failure names the files and lines to look at.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type Graph = BTreeMap<String, BTreeMap<String, BTreeSet<String>>>;

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            sources(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            let name = p.file_stem().unwrap().to_string_lossy().into_owned();
            if !(name.starts_with("tests") || name.ends_with("_tests")) {
                out.push(p);
            }
        }
    }
}

/// The code of a file without comments and without its trailing test module.
fn code(p: &Path) -> String {
    let src = std::fs::read_to_string(p).unwrap();
    let src = match src.find("#[cfg(test)]\nmod tests {") {
        Some(i) => &src[..i],
        None => &src[..],
    };
    src.lines().map(|l| l.split("//").next().unwrap_or("")).collect::<Vec<_>>().join("\n")
}

/// Every module name that follows `prefix` in `src` (`prefix{a::X, b}` names `a` and `b`).
fn after(src: &str, prefix: &str) -> Vec<String> {
    let ident = |s: &str| s.trim_start().split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).next().unwrap_or("").to_string();
    let mut out = Vec::new();
    for (i, _) in src.match_indices(prefix) {
        if i > 0 && (src.as_bytes()[i - 1].is_ascii_alphanumeric() || src.as_bytes()[i - 1] == b'_') {
            continue;
        }
        let rest = &src[i + prefix.len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let (mut depth, mut item) = (0, String::new());
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        out.push(ident(&item));
                        item.clear();
                        continue;
                    }
                    _ => {}
                }
                item.push(c);
            }
            out.push(ident(&item));
        } else {
            out.push(ident(rest));
        }
    }
    out.retain(|s| !s.is_empty());
    out
}

/// A circle in `g`, as its edges, if there is one.
fn circle(g: &Graph) -> Option<Vec<(String, String)>> {
    fn visit(n: &str, g: &Graph, state: &mut BTreeMap<String, u8>, stack: &mut Vec<String>) -> Option<Vec<String>> {
        state.insert(n.to_string(), 1);
        stack.push(n.to_string());
        for m in g.get(n).map(|e| e.keys().cloned().collect::<Vec<_>>()).unwrap_or_default() {
            match state.get(&m).copied().unwrap_or(0) {
                1 => {
                    let at = stack.iter().position(|s| *s == m).unwrap();
                    let mut c = stack[at..].to_vec();
                    c.push(m);
                    return Some(c);
                }
                0 => {
                    if let Some(c) = visit(&m, g, state, stack) {
                        return Some(c);
                    }
                }
                _ => {}
            }
        }
        stack.pop();
        state.insert(n.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for n in g.keys() {
        if state.get(n).copied().unwrap_or(0) == 0 {
            if let Some(c) = visit(n, g, &mut state, &mut Vec::new()) {
                return Some(c.windows(2).map(|w| (w[0].clone(), w[1].clone())).collect());
            }
        }
    }
    None
}

fn assert_no_circle(g: &Graph, what: &str) {
    if let Some(c) = circle(g) {
        let lines: Vec<String> = c.iter().map(|(a, b)| format!("  {a} -> {b} (in {})", g[a][b].iter().cloned().collect::<Vec<_>>().join(", "))).collect();
        panic!("import circle between {what}:\n{}", lines.join("\n"));
    }
}

/// The layers of `host/src`, lowest first: a module imports only modules of lower layers.
const LAYERS: &[&[&str]] = &[
    &["util", "record", "layout"],
    &["config", "lines"],
    &["state"],
    &["codec"],
    &["checkpoint"],
    &["connectors", "processor"],
    &["registry"],
    &["engine"],
    &["metrics"],
    &["engine_builder"],
    &["plugin_test"],
    &["plugin_new"],
];

fn src_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

#[test]
fn top_level_modules_of_host_src_import_no_circle() {
    let root = src_root();
    let mut files = Vec::new();
    sources(&root, &mut files);
    let tops: BTreeSet<String> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .filter(|n| n != "lib" && n != "main")
        .collect();
    let mut g = Graph::new();
    for f in &files {
        let rel = f.strip_prefix(&root).unwrap();
        let top = rel.components().next().unwrap().as_os_str().to_string_lossy().trim_end_matches(".rs").to_string();
        if top == "lib" || top == "main" {
            continue;
        }
        for m in after(&code(f), "crate::") {
            if m != top && tops.contains(&m) {
                g.entry(top.clone()).or_default().entry(m).or_default().insert(rel.display().to_string());
            }
        }
    }
    assert!(g.len() > 5, "the scan found the modules: {g:?}");
    assert_no_circle(&g, "top-level modules of host/src");
    let layer = |m: &str| LAYERS.iter().position(|l| l.contains(&m));
    for m in &tops {
        assert!(layer(m).is_some(), "top-level module `{m}` is in no layer of LAYERS (host/tests/structure.rs, docs/ARCHITECTURE.md)");
    }
    let upward: Vec<String> = g
        .iter()
        .flat_map(|(a, e)| e.iter().map(move |(b, files)| (a, b, files)))
        .filter(|(a, b, _)| layer(b) >= layer(a))
        .map(|(a, b, files)| format!("  {a} -> {b} (in {})", files.iter().cloned().collect::<Vec<_>>().join(", ")))
        .collect();
    assert!(upward.is_empty(), "imports from a module to one of the same or a higher layer:\n{}", upward.join("\n"));
}

#[test]
fn files_of_config_import_no_circle() {
    let dir = src_root().join("config");
    let mut files = Vec::new();
    sources(&dir, &mut files);
    let names: BTreeSet<String> = files.iter().map(|p| p.file_stem().unwrap().to_string_lossy().into_owned()).collect();
    let mut g = Graph::new();
    for f in &files {
        let me = f.file_stem().unwrap().to_string_lossy().into_owned();
        let code = code(f);
        let mut refs = after(&code, "crate::config::");
        if me != "mod" {
            refs.extend(after(&code, "super::"));
        }
        for m in refs {
            if m != me && names.contains(&m) {
                g.entry(me.clone()).or_default().entry(m).or_default().insert(format!("config/{me}.rs"));
            }
        }
    }
    assert_no_circle(&g, "files of host/src/config");
}

#[test]
fn the_circle_finder_finds_a_circle() {
    let mut g = Graph::new();
    for (a, b) in [("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")] {
        g.entry(a.into()).or_default().entry(b.into()).or_default().insert(format!("{a}.rs"));
    }
    let c = circle(&g).expect("a -> b -> c -> a");
    assert_eq!(c.len(), 3);
    g.get_mut("c").unwrap().remove("a");
    assert!(circle(&g).is_none());
}

/// The line count of a file without its trailing test module, and the functions (name, first
/// line, lines) longer than `max_fn` lines.
fn sizes(p: &Path, max_fn: usize) -> (usize, Vec<(String, usize, usize)>) {
    let src = std::fs::read_to_string(p).unwrap();
    let lines: Vec<&str> = src.lines().collect();
    let n = lines.windows(2).position(|w| w[0].starts_with("#[cfg(test)]") && w[1].starts_with("mod tests")).unwrap_or(lines.len());
    let mut long = Vec::new();
    let mut i = 0;
    while i < n {
        let t = lines[i].trim_start();
        let t = t.strip_prefix("pub(crate) ").or_else(|| t.strip_prefix("pub(super) ")).or_else(|| t.strip_prefix("pub ")).unwrap_or(t);
        let t = t.strip_prefix("async ").unwrap_or(t);
        let t = t.strip_prefix("const ").unwrap_or(t);
        let Some(rest) = t.strip_prefix("fn ") else {
            i += 1;
            continue;
        };
        let name: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
        // Brace depth over the code (comments, strings and char literals left out).
        let (mut depth, mut opened, mut j) = (0i32, false, i);
        while j < n {
            let code = strip_literals(lines[j]);
            for c in code.chars() {
                match c {
                    '{' => {
                        depth += 1;
                        opened = true;
                    }
                    '}' => depth -= 1,
                    _ => {}
                }
            }
            if (opened && depth == 0) || (!opened && code.trim_end().ends_with(';')) {
                break;
            }
            j += 1;
        }
        if opened && j + 1 - i > max_fn {
            long.push((name, i + 1, j + 1 - i));
        }
        i += 1;
    }
    (n, long)
}

/// A line of code without its comment, string and char literals.
fn strip_literals(line: &str) -> String {
    let (mut out, mut chars) = (String::new(), line.chars().peekable());
    while let Some(c) = chars.next() {
        match c {
            '/' if chars.peek() == Some(&'/') => break,
            '"' => {
                while let Some(d) = chars.next() {
                    match d {
                        '\\' => {
                            chars.next();
                        }
                        '"' => break,
                        _ => {}
                    }
                }
            }
            '\'' => {
                // A char literal ('x', '\n', '{'), not a lifetime ('a).
                let ahead: String = chars.clone().take(3).collect();
                if ahead.starts_with('\\') {
                    chars.next();
                    chars.next();
                    chars.next();
                } else if ahead.chars().nth(1) == Some('\'') {
                    chars.next();
                    chars.next();
                }
            }
            c => out.push(c),
        }
    }
    out
}

#[test]
fn no_file_over_500_lines_and_no_function_over_80_in_host_src() {
    let root = src_root();
    let mut files = Vec::new();
    sources(&root, &mut files);
    let mut over = Vec::new();
    for f in files.iter().filter(|f| !f.ends_with("bindings.rs")) {
        let rel = f.strip_prefix(&root).unwrap().display().to_string();
        let (n, long) = sizes(f, 80);
        if n > 500 {
            over.push(format!("  {rel}: {n} lines"));
        }
        over.extend(long.into_iter().map(|(name, at, len)| format!("  {rel}:{at}: fn {name} is {len} lines")));
    }
    assert!(files.len() > 50, "the scan found the sources");
    assert!(over.is_empty(), "over the size limits (500 lines a file, 80 a function):\n{}", over.join("\n"));
}

#[test]
fn the_size_check_counts_a_function_to_its_closing_brace() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("x.rs");
    let body: String = (0..90).map(|i| format!("    let _x{i} = '{{'; // {{\n")).collect();
    std::fs::write(&p, format!("pub fn long() {{\n{body}}}\n\nfn short() -> &'static str {{\n    \"}}\"\n}}\n")).unwrap();
    let (n, long) = sizes(&p, 80);
    assert_eq!(n, 96);
    assert_eq!(long, vec![("long".to_string(), 1, 92)]);
}
