//! Helpers for tests that run the real `arkflow` binary with plugins built from source
//! (`bash plugins/build.sh` puts them in `plugins/dist/`).
#![allow(dead_code)]

pub mod faults;
pub mod kafka;
pub mod kill;
pub mod mqtt;
pub mod nats;
pub mod postgres;
pub mod proxy;
pub mod redis;
pub mod registry;
pub mod s3;
pub mod server;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// `ARKFLOW_BIN` overrides it: a copied test executable can then run against a copied binary
/// while the target directory is rebuilt (e.g. a flaky end-to-end test looped in the background).
pub fn bin() -> PathBuf {
    std::env::var_os("ARKFLOW_BIN").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_arkflow")))
}

/// Path of a built plugin; panics with the command to build it when absent.
pub fn plugin(name: &str) -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/dist").join(format!("{name}.wasm"));
    assert!(p.exists(), "{} is missing: run `bash plugins/build.sh`", p.display());
    p.canonicalize().unwrap()
}

pub struct Dir(pub tempfile::TempDir);

impl Dir {
    pub fn new() -> Self {
        Dir(tempfile::tempdir().unwrap())
    }
    pub fn path(&self, name: &str) -> PathBuf {
        self.0.path().join(name)
    }
    /// Writes `config.yaml` and returns its path.
    pub fn config(&self, yaml: &str) -> PathBuf {
        let p = self.path("config.yaml");
        std::fs::write(&p, yaml).unwrap();
        p
    }
}

/// Starts `arkflow --config cfg` (RUST_LOG=info) with its stdout and stderr in `log`.
pub fn start_logged(cfg: &Path, log: &Path) -> Child {
    let f = std::fs::File::create(log).unwrap();
    let cmd = Command::new(bin()).arg("--config").arg(cfg).env("RUST_LOG", "info").stdin(Stdio::null()).stdout(f.try_clone().unwrap()).stderr(f).spawn();
    cmd.expect("spawn arkflow")
}

/// The logs at `paths`, each under a header naming it (for failure messages).
pub fn logs_of(paths: &[PathBuf]) -> String {
    paths.iter().map(|p| format!("==== {}\n{}", p.display(), std::fs::read_to_string(p).unwrap_or_default())).collect()
}

pub fn run(config: &Path, extra: &[&str]) -> Output {
    Command::new(bin()).arg("--config").arg(config).args(extra).env("RUST_LOG", "info").stdin(Stdio::null()).output().expect("run arkflow")
}

pub fn spawn(config: &Path) -> Child {
    Command::new(bin())
        .arg("--config")
        .arg(config)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn arkflow")
}

/// Sends `sig` ("TERM", "INT", "KILL") to a child this test started.
pub fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill").arg(format!("-{sig}")).arg(child.id().to_string()).status().unwrap().success();
    assert!(ok, "kill -{sig} {}", child.id());
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Parses a JSON-lines file.
pub fn json_lines(path: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines().filter(|l| !l.trim().is_empty()).map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad line {l}: {e}"))).collect()
}

/// The whole JSON lines of a file written at-least-once: a torn last line, cut by a kill, is
/// skipped (its record was not acknowledged, so it is written again).
pub fn whole_json_lines(path: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
}

/// A port free on 127.0.0.1 now (for a server a test starts).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Waits until `f` holds or `timeout` passes.
pub fn wait_for(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    f()
}

/// For `{"key","count"}` lines: the counts of each key in output order.
pub fn counts_by_key(lines: &[serde_json::Value]) -> HashMap<String, Vec<i64>> {
    let mut m: HashMap<String, Vec<i64>> = HashMap::new();
    for l in lines {
        let k = l["key"].as_str().unwrap_or_else(|| panic!("no key in {l}")).to_string();
        m.entry(k).or_default().push(l["count"].as_i64().unwrap());
    }
    m
}

/// Independent re-computation of the generate input's key of record `id` (splitmix64 of
/// seed ^ id, modulo keys), used to check counts without trusting the host.
pub fn generated_key(seed: u64, keys: u64, id: u64) -> String {
    let mut x = (seed ^ id).wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^= x >> 31;
    format!("k{}", x % keys)
}

/// Every finalized output part in `dir` (the exactly-once file output's `<name>.<epoch>` files;
/// hidden temp files skipped), in epoch order, and how many parts there were.
pub fn read_parts(dir: &Path) -> (Vec<serde_json::Value>, usize) {
    let mut parts: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.') && !n.ends_with(".tmp"))
        .collect();
    parts.sort();
    let lines = parts.iter().flat_map(|p| json_lines(&dir.join(p))).collect();
    (lines, parts.len())
}

/// A `state_management` block with a local state store in `dir`'s `state` directory, checkpoints
/// every `interval_ms`.
pub fn local_state(dir: &Dir, interval_ms: u64, exactly_once: bool) -> String {
    format!(
        "state_management:\n  enabled: true\n  backend_type: local\n  checkpoint_interval_ms: {interval_ms}\n  exactly_once: {exactly_once}\n  local_config: {{ path: {} }}\n",
        dir.path("state").display()
    )
}

/// Appends JSON lines `{"id":N,"user":"u<N % users>"}` for ids `from..to`.
pub fn append_users(path: &Path, from: u64, to: u64, users: u64) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path).unwrap();
    for id in from..to {
        writeln!(f, "{{\"id\":{id},\"user\":\"u{}\"}}", id % users).unwrap();
    }
}

/// One HTTP/1.1 request without a body to 127.0.0.1:`port`: (status, body).
pub fn http_request(port: u16, method: &str, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(s, "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let code = text[9..12].parse().unwrap();
    (code, text.split("\r\n\r\n").nth(1).unwrap_or_default().to_string())
}

/// [`http_request`] that asks the server to close the connection and answers (0, "") when
/// nothing listens or the reply is not HTTP (a server still starting).
pub fn http_request_or(port: u16, method: &str, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else { return (0, String::new()) };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = write!(s, "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    let code = text.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    (code, text.split("\r\n\r\n").nth(1).unwrap_or_default().to_string())
}

/// The value of `metric{stream="<stream>"}` in a Prometheus text body.
pub fn metric_value(body: &str, metric: &str, stream: &str) -> Option<i64> {
    body.lines().find(|l| l.starts_with(&format!("{metric}{{stream=\"{stream}\"}}"))).and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok()).map(|v| v as i64)
}

/// The peak resident memory of `cmd` (VmHWM, read until it exits) and its output.
pub fn peak_rss_kb(mut cmd: Command) -> (u64, std::process::Output) {
    let child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let status = format!("/proc/{}/status", child.id());
    let peak = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let watch = {
        let peak = peak.clone();
        std::thread::spawn(move || {
            while let Ok(s) = std::fs::read_to_string(&status) {
                let hwm = s.lines().find_map(|l| l.strip_prefix("VmHWM:")).and_then(|v| v.trim().trim_end_matches(" kB").parse().ok());
                match hwm {
                    Some(kb) => peak.fetch_max(kb, std::sync::atomic::Ordering::Relaxed),
                    None => break, // a zombie: it has exited
                };
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        })
    };
    let out = child.wait_with_output().unwrap();
    watch.join().unwrap();
    (peak.load(std::sync::atomic::Ordering::Relaxed), out)
}
