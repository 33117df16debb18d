//! `plugin new`'s file plan and checks, on the files compiled into the binary.
use super::*;

fn plan(name: &str, lang: Lang) -> Vec<(String, Vec<u8>)> {
    let source: Vec<(String, Vec<u8>)> = embedded::FILES.iter().map(|(p, b)| (p.to_string(), b.to_vec())).collect();
    project_files(name, lang, &source).unwrap()
}

#[test]
fn a_rust_project_gets_its_template_filled_the_sdk_the_wit_and_a_manifest() {
    let files = plan("my-counter", Lang::Rust);
    let get = |p: &str| files.iter().find(|(f, _)| f == p).map(|(_, b)| String::from_utf8_lossy(b).into_owned());
    let cargo = get("Cargo.toml").expect("the template's Cargo.toml");
    assert!(cargo.contains("name = \"my-counter\"") && cargo.contains("name = \"my_counter\""), "{cargo}");
    assert!(!cargo.contains("{{"), "placeholders left: {cargo}");
    assert!(get("sdk/Cargo.toml").unwrap().contains(&format!("version = \"{SDK_VERSION}\"")));
    assert!(get("sdk/src/lib.rs").is_some() && get("sdk/wit/plugin.wit").is_some());
    assert_eq!(get("wit/plugin.wit"), get("sdk/wit/plugin.wit"));
    assert!(get("wit/plugin.wit").unwrap().contains(&format!("package arkflow:plugin@{SDK_VERSION}")));
    assert!(get("fixtures/input.jsonl").is_some() && get("fixtures/expected.jsonl").is_some());
    let m: build::Manifest = toml::from_str(&get(MANIFEST).unwrap()).unwrap();
    assert_eq!(m, build::Manifest::new("my-counter", Lang::Rust));
    assert_eq!(m.wasm, PathBuf::from("dist/my_counter.wasm"));
    // No other language's SDK, no build output.
    assert!(
        files.iter().all(|(f, _)| !f.contains("target/") && !f.ends_with(".wasm") && !f.starts_with("plugins/")),
        "{:?}",
        files.iter().map(|f| &f.0).collect::<Vec<_>>()
    );
}

#[test]
fn bad_names_and_non_empty_directories_are_refused_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    for bad in ["", "My", "1st", "a_b", "a-", "a b", "../x"] {
        let e = create(bad, Lang::Rust, Some(&dir.path().join("p"))).unwrap_err();
        assert!(matches!(e, NewError::BadName(_)), "{bad:?}: {e}");
    }
    std::fs::write(dir.path().join("keep.txt"), "mine").unwrap();
    let e = create("ok", Lang::Rust, Some(dir.path())).unwrap_err();
    assert!(e.to_string().contains("exists and is not empty"), "{e}");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "nothing written beside keep.txt");
}

#[test]
fn a_project_is_written_with_executable_scripts_into_an_empty_directory() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("deep/demo");
    let (at, files) = create("demo", Lang::Rust, Some(&target)).unwrap();
    assert_eq!(at, target);
    assert!(files.iter().any(|f| f == "build.sh"));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(target.join("build.sh")).unwrap().permissions().mode();
    assert!(mode & 0o111 != 0, "build.sh is executable: {mode:o}");
    let parent: Vec<_> = std::fs::read_dir(dir.path().join("deep")).unwrap().flatten().map(|e| e.file_name()).collect();
    assert_eq!(parent, vec![std::ffi::OsString::from("demo")], "no staging directory left behind");
}

#[test]
fn a_manifest_error_names_the_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(MANIFEST), "name = \"x\"\nlang = \"rust\"\nsdk = 2\n").unwrap();
    let e = build::Manifest::read(dir.path()).unwrap_err().to_string();
    assert!(e.contains(&format!("{MANIFEST}:3:7")), "{e}");
    let e = build::run(tempfile::tempdir().unwrap().path(), &mut Vec::new()).unwrap_err();
    assert!(e.to_string().contains("arkflow plugin new"), "{e}");
    assert_eq!(e.exit_code(), 2);
}
