//! The fault-injection harness: runs the real `arkflow` binary (a throttled file input -> wasm
//! `counter` -> exactly-once file output, failing records -> exactly-once file `error_output`)
//! against a real store, and plays a randomized schedule of faults:
//! - `kill`: SIGKILL at a random moment, restart;
//! - `term`: SIGTERM (graceful drain), restart;
//! - `stop`: SIGSTOP for longer than the checkpoint timeout, then SIGCONT;
//! - `zombie`: SIGSTOP, a second process on the same state, SIGCONT: the first must stop itself;
//! - `store-refuse` / `store-pause` (S3 backends, through [`super::proxy`]): connections refused
//!   and cut, or every request held, for 1-3 s;
//! - `dir-fail`: writes under one of the store's directories (`manifests`, `commits`, `data`)
//!   fail for 1-3 s (local: the directory is replaced by a file; S3: the proxy answers 503);
//! - `wipe-output`: SIGKILL, then the finalized parts are moved away (a downstream job took them).
//!
//! With [`Harness::two_tiers`] the input is unkeyed and a stateless `filter` plugin runs before
//! the counter (`key_by: user`): the filter may rewrite records, so the counter runs in a second
//! worker tier behind an in-process exchange, and every fault also hits barrier alignment.
//!
//! Every (re)start picks `thread_num` from 1..=4. Then a last run drains the input (no throttle)
//! and [`check`] verifies from the output alone, the moved-away parts included, that each key's
//! counts are exactly 1..n in order and each failing record's error appears exactly once.
//! Size: `ARKFLOW_FAULTS` faults per backend (CI: the default), seed `ARKFLOW_FAULTS_SEED`.

use super::proxy::{Mode, Proxy};
use super::s3::Moto;
use super::*;
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Records per second while faults are injected.
const RATE: u64 = 4000;
const CHECKPOINT_TIMEOUT_MS: u64 = 1500;
/// Every this-th record has no `user`: the counter fails it (an error record).
const ERROR_EVERY: u64 = 97;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Local,
    S3,
    Hybrid,
}

/// What a run found.
#[derive(Debug, Default)]
pub struct Outcome {
    pub faults: BTreeMap<&'static str, u64>,
    pub records: u64,
    pub errors: u64,
    pub lost: u64,
    pub duplicated: u64,
    pub out_of_order: u64,
    pub zombies_stopped: u64,
    pub failed_starts: u64,
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo).max(1)
    }
}

pub struct Harness {
    dir: Dir,
    backend: Backend,
    /// Kept alive for the run.
    _moto: Option<Moto>,
    proxy: Option<Proxy>,
    state_block: String,
    rng: Rng,
    runs: u64,
    archived: u64,
    outcome: Outcome,
    two_tiers: bool,
}

struct Proc {
    child: Child,
    log: PathBuf,
}

impl Harness {
    pub fn new(backend: Backend) -> Harness {
        let dir = Dir::new();
        let (moto, proxy, state_block) = match backend {
            Backend::Local => (None, None, format!("  backend_type: local\n  local_config: {{ path: {} }}\n", dir.path("state").display())),
            Backend::S3 | Backend::Hybrid => {
                let moto = Moto::start();
                let proxy = Proxy::start(moto.port);
                let mut t = moto.target.clone();
                t.endpoint = format!("http://127.0.0.1:{}", proxy.port);
                let (kind, extra) = if backend == Backend::Hybrid { ("hybrid", "  hybrid_config: { cache_kb: 64 }\n") } else { ("s3", "") };
                (Some(moto), Some(proxy), format!("  backend_type: {kind}\n{}{extra}", t.yaml_block(2, "faults/")))
            }
        };
        let seed = std::env::var("ARKFLOW_FAULTS_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64);
        eprintln!("faults[{backend:?}]: seed {seed} (ARKFLOW_FAULTS_SEED to replay)");
        std::fs::create_dir_all(dir.path("logs")).unwrap();
        Harness { dir, backend, _moto: moto, proxy, state_block, rng: Rng(seed), runs: 0, archived: 0, outcome: Outcome::default(), two_tiers: false }
    }

    /// Runs the counter in a second tier behind an exchange (see the module contract).
    pub fn two_tiers(mut self) -> Self {
        self.two_tiers = true;
        self
    }

    /// The input's key option and the processors, per topology.
    fn pipeline(&self) -> (&'static str, String) {
        let counter = plugin("counter");
        if self.two_tiers {
            let filter = plugin("filter");
            let p = format!(
                "        - {{ type: wasm, path: {}, config: {{ field: id, op: exists }} }}\n        - {{ type: wasm, path: {}, config: {{ key_field: user }}, key_by: user }}\n",
                filter.display(),
                counter.display()
            );
            ("", p)
        } else {
            (", key_field: user", format!("        - {{ type: wasm, path: {} }}\n", counter.display()))
        }
    }

    fn config(&mut self, threads: u64, throttled: bool) -> PathBuf {
        let rate = if throttled { format!(", rate_per_sec: {RATE}") } else { String::new() };
        let (key, processors) = self.pipeline();
        let yaml = format!(
            "state_management:\n  enabled: true\n  checkpoint_interval_ms: 200\n  checkpoint_timeout_ms: {CHECKPOINT_TIMEOUT_MS}\n  tolerated_checkpoint_failures: 100000\n  gc_grace_ms: 2000\n  exactly_once: true\n{state}streams:\n  - name: faults\n    input: {{ type: file, path: {input}{key}{rate} }}\n    pipeline:\n      thread_num: {threads}\n      processors:\n{processors}    output: {{ type: file, path: {out} }}\n    error_output: {{ type: file, path: {err} }}\n    state: {{ operator_id: faults, enabled: true }}\n",
            state = self.state_block,
            input = self.dir.path("in.jsonl").display(),
            out = self.dir.path("out/out.jsonl").display(),
            err = self.dir.path("err/errors.jsonl").display(),
        );
        let p = self.dir.path(&format!("config-{threads}-{throttled}.yaml"));
        std::fs::write(&p, yaml).unwrap();
        p
    }

    fn start(&mut self, throttled: bool) -> Proc {
        let threads = self.rng.range(1, 5);
        let cfg = self.config(threads, throttled);
        self.runs += 1;
        let log = self.dir.path(&format!("logs/run-{:04}.log", self.runs));
        let f = std::fs::File::create(&log).unwrap();
        let child = Command::new(bin())
            .arg("--config")
            .arg(&cfg)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(f)
            .spawn()
            .expect("spawn arkflow");
        Proc { child, log }
    }

    fn count(&mut self, kind: &'static str) {
        *self.outcome.faults.entry(kind).or_default() += 1;
    }

    fn sleep_ms(&mut self, lo: u64, hi: u64) {
        std::thread::sleep(Duration::from_millis(self.rng.range(lo, hi)));
    }

    /// A store directory for `dir-fail`.
    fn store_dir(&mut self) -> &'static str {
        ["manifests", "commits", "data"][self.rng.range(0, 3) as usize]
    }

    /// Makes writes under `sub` fail for a while (see the module contract).
    fn fail_dir(&mut self, sub: &str) {
        match &self.proxy {
            Some(p) => {
                p.set(Mode::FailWrites(format!("/faults/faults/{sub}/")));
                self.sleep_ms(1000, 3000);
                self.proxy.as_ref().unwrap().set(Mode::Pass);
            }
            None => {
                let d = self.dir.path(&format!("state/faults/{sub}"));
                let aside = self.dir.path(&format!("state/faults/{sub}.aside"));
                if std::fs::rename(&d, &aside).is_err() {
                    return; // not created yet
                }
                std::fs::write(&d, b"not a directory").unwrap();
                self.sleep_ms(1000, 3000);
                std::fs::remove_file(&d).unwrap();
                std::fs::rename(&aside, &d).unwrap();
            }
        }
    }

    /// Moves every finalized part of `out/` and `err/` into `archive/{n}/`.
    fn wipe_output(&mut self) {
        self.archived += 1;
        for sub in ["out", "err"] {
            let from = self.dir.path(sub);
            let to = self.dir.path(&format!("archive/{}/{sub}", self.archived));
            std::fs::create_dir_all(&to).unwrap();
            for e in std::fs::read_dir(&from).into_iter().flatten().flatten() {
                let n = e.file_name().to_string_lossy().into_owned();
                if !n.starts_with('.') {
                    std::fs::rename(e.path(), to.join(&n)).unwrap();
                }
            }
        }
    }

    /// Writes the input: `n` records over `keys` users, every `ERROR_EVERY`-th without a user.
    fn write_input(&self, n: u64, keys: u64) -> (HashMap<String, i64>, u64) {
        let mut f = std::io::BufWriter::new(std::fs::File::create(self.dir.path("in.jsonl")).unwrap());
        let (mut counts, mut errors) = (HashMap::new(), 0);
        for id in 0..n {
            if id % ERROR_EVERY == ERROR_EVERY - 1 {
                writeln!(f, "{{\"id\":{id},\"bad\":true}}").unwrap();
                errors += 1;
            } else {
                let user = generated_key(91, keys, id);
                writeln!(f, "{{\"id\":{id},\"user\":\"{user}\"}}").unwrap();
                *counts.entry(user).or_default() += 1;
            }
        }
        f.flush().unwrap();
        (counts, errors)
    }

    /// Plays `faults` faults, drains the input, checks the output. Panics on loss or duplication.
    pub fn run(mut self, faults: u64) -> Outcome {
        let started = Instant::now();
        // Enough input that the stream is still running when the last fault comes.
        let n = (faults * 2 * RATE).max(40_000);
        let (expected, errors) = self.write_input(n, 500);
        self.outcome.records = n;
        self.outcome.errors = errors;
        let mut current: Option<Proc> = None;
        let (mut injected, mut failed_in_a_row) = (0, 0);
        while injected < faults {
            let mut p = match current.take() {
                Some(p) => p,
                None => self.start(true),
            };
            self.sleep_ms(300, 1500);
            if let Some(status) = p.child.try_wait().unwrap() {
                self.exited(&p, status);
                if status.success() {
                    eprintln!("faults[{:?}]: the input was drained after {injected} faults", self.backend);
                    break;
                }
                failed_in_a_row += 1;
                let log = std::fs::read_to_string(&p.log).unwrap_or_default();
                eprintln!(
                    "faults: a run ended with {status}: {}",
                    log.lines().rev().find(|l| l.contains("error") || l.contains("ERROR")).unwrap_or("(no error line)")
                );
                assert!(failed_in_a_row < 20, "20 starts in a row failed; last log:\n{}", tail(&std::fs::read_to_string(&p.log).unwrap_or_default()));
                continue;
            }
            failed_in_a_row = 0;
            injected += 1;
            current = self.inject(p);
        }
        if let Some(mut p) = current.take() {
            signal(&p.child, "KILL");
            let _ = p.child.wait();
        }
        self.drain();
        let outcome = self.check(&expected);
        eprintln!("faults[{:?}]: {outcome:?} in {:?}", self.backend, started.elapsed());
        if (outcome.lost, outcome.duplicated, outcome.out_of_order) != (0, 0, 0) {
            // Keep the outputs, archives and logs for the post-mortem (a TempDir deletes itself).
            let kept = std::mem::replace(&mut self.dir, Dir::new()).0.keep();
            panic!("exactly-once broke: {outcome:?} (outputs and logs kept in {})", kept.display());
        }
        outcome
    }

    /// Applies one random fault to the running `p`; returns the process that runs afterwards.
    fn inject(&mut self, mut p: Proc) -> Option<Proc> {
        let s3 = self.backend != Backend::Local;
        let kinds: &[&'static str] = if s3 {
            &["kill", "kill", "term", "stop", "zombie", "store-refuse", "store-pause", "dir-fail", "wipe-output"]
        } else {
            &["kill", "kill", "term", "stop", "zombie", "dir-fail", "dir-fail", "wipe-output"]
        };
        let kind = kinds[self.rng.range(0, kinds.len() as u64) as usize];
        self.count(kind);
        match kind {
            "kill" | "wipe-output" => {
                signal(&p.child, "KILL");
                let _ = p.child.wait();
                if kind == "wipe-output" {
                    self.wipe_output();
                }
                None
            }
            "term" => {
                signal(&p.child, "TERM");
                let status =
                    wait_exit(&mut p.child, Duration::from_secs(120)).unwrap_or_else(|| panic!("SIGTERM did not end the process (log {})", p.log.display()));
                self.exited(&p, status);
                None
            }
            "stop" => {
                signal(&p.child, "STOP");
                self.sleep_ms(CHECKPOINT_TIMEOUT_MS + 300, CHECKPOINT_TIMEOUT_MS * 2);
                signal(&p.child, "CONT");
                Some(p)
            }
            "zombie" => {
                signal(&p.child, "STOP");
                let b = self.start(true);
                self.sleep_ms(1500, 3000);
                signal(&p.child, "CONT");
                // The paused process must find itself fenced and stop, unless the second one
                // failed before fencing it (a store fault during its recovery): then the first
                // one is not fenced and rightly goes on, as the current process.
                let mut b = b;
                let resumed = Instant::now();
                let mut b_failed = false;
                let stopped = wait_until(Duration::from_secs(60), || {
                    if let Ok(Some(_)) = p.child.try_wait() {
                        return true;
                    }
                    b_failed = matches!(b.child.try_wait(), Ok(Some(s)) if !s.success());
                    b_failed
                });
                if b_failed && matches!(p.child.try_wait(), Ok(None)) {
                    let status = b.child.wait().unwrap();
                    self.exited(&b, status);
                    return Some(p);
                }
                match stopped.then(|| p.child.wait().unwrap()) {
                    Some(status) => {
                        if resumed.elapsed() > Duration::from_secs(5) {
                            eprintln!(
                                "faults: a fenced process took {:?} to stop; its log:\n{}",
                                resumed.elapsed(),
                                tail(&std::fs::read_to_string(&p.log).unwrap_or_default())
                            );
                        }
                        self.exited(&p, status);
                        if !status.success() {
                            self.outcome.zombies_stopped += 1;
                        }
                    }
                    None => {
                        signal(&p.child, "KILL");
                        panic!("a fenced process kept running for 60 s after SIGCONT; its log:\n{}", tail(&std::fs::read_to_string(&p.log).unwrap_or_default()))
                    }
                }
                // Both may have ended (the second one failed while the first was stopping): the
                // next fault must not signal a process already reaped.
                if let Ok(Some(status)) = b.child.try_wait() {
                    self.exited(&b, status);
                    return None;
                }
                Some(b)
            }
            "store-refuse" | "store-pause" => {
                let m = if kind == "store-refuse" { Mode::Refuse } else { Mode::Pause };
                self.proxy.as_ref().unwrap().set(m);
                self.sleep_ms(1000, 3000);
                self.proxy.as_ref().unwrap().set(Mode::Pass);
                Some(p)
            }
            "dir-fail" => {
                let sub = self.store_dir();
                self.fail_dir(sub);
                Some(p)
            }
            _ => unreachable!(),
        }
    }

    /// Looks at how a process ended: a panic is a bug; an error exit is counted.
    fn exited(&mut self, p: &Proc, status: std::process::ExitStatus) {
        let log = std::fs::read_to_string(&p.log).unwrap_or_default();
        assert!(!log.contains("panicked"), "the host panicked (log {}):\n{}", p.log.display(), tail(&log));
        if !status.success() && status.code().is_some() {
            self.outcome.failed_starts += 1;
        }
    }

    /// Runs without throttle or faults until the input is drained (restarting after failures).
    fn drain(&mut self) {
        for attempt in 0..5 {
            let mut p = self.start(false);
            match wait_exit(&mut p.child, Duration::from_secs(600)) {
                Some(s) if s.success() => {
                    self.exited(&p, s);
                    return;
                }
                Some(s) => {
                    self.exited(&p, s);
                    eprintln!("faults: drain attempt {attempt} failed: {}", tail(&std::fs::read_to_string(&p.log).unwrap_or_default()));
                }
                None => panic!("the drain run did not finish within 10 minutes (log {})", p.log.display()),
            }
        }
        panic!("the drain run failed 5 times (logs in {})", self.dir.path("logs").display());
    }

    /// Every finalized part under `sub` (current and archived), in epoch order.
    fn parts(&self, sub: &str) -> Vec<serde_json::Value> {
        let mut dirs = vec![self.dir.path(sub)];
        dirs.extend((1..=self.archived).map(|k| self.dir.path(&format!("archive/{k}/{sub}"))));
        let mut files: Vec<(String, PathBuf)> = Vec::new();
        for d in dirs {
            for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                let n = e.file_name().to_string_lossy().into_owned();
                assert!(!n.ends_with(".tmp") || n.starts_with('.'), "unexpected file {n}");
                if !n.starts_with('.') {
                    files.push((n, e.path()));
                }
            }
        }
        files.sort();
        let names: Vec<&String> = files.iter().map(|(n, _)| n).collect();
        let mut unique = names.clone();
        unique.dedup();
        assert_eq!(names.len(), unique.len(), "one part per epoch in {sub}");
        files.iter().flat_map(|(_, p)| json_lines(p)).collect()
    }

    fn check(&mut self, expected: &HashMap<String, i64>) -> Outcome {
        let lines = self.parts("out");
        let mut got: HashMap<String, Vec<i64>> = HashMap::new();
        for l in &lines {
            got.entry(l["key"].as_str().expect("key").to_string()).or_default().push(l["count"].as_i64().expect("count"));
        }
        let mut o = std::mem::take(&mut self.outcome);
        for (k, n) in expected {
            let counts = got.remove(k).unwrap_or_default();
            let mut seen = vec![0u32; *n as usize + 1];
            for c in &counts {
                match usize::try_from(*c).ok().filter(|c| (1..=*n as usize).contains(c)) {
                    Some(c) => seen[c] += 1,
                    None => o.duplicated += 1,
                }
            }
            o.lost += seen[1..].iter().filter(|s| **s == 0).count() as u64;
            o.duplicated += seen[1..].iter().map(|s| s.saturating_sub(1) as u64).sum::<u64>();
            o.out_of_order += counts.windows(2).filter(|w| w[0] >= w[1]).count() as u64;
        }
        o.duplicated += got.values().map(|v| v.len() as u64).sum::<u64>();
        // Error records: each failing id exactly once.
        let mut ids: HashMap<u64, u32> = HashMap::new();
        for e in self.parts("err") {
            assert_eq!(e["error"]["code"], "no-key", "{e}");
            assert!(e["plugin"].as_str().is_some_and(|p| p.starts_with("counter@")), "provenance: {e}");
            *ids.entry(e["value"]["id"].as_u64().expect("id")).or_default() += 1;
        }
        let want = (0..o.records).filter(|id| id % ERROR_EVERY == ERROR_EVERY - 1);
        let mut missing = 0;
        for id in want {
            match ids.remove(&id) {
                None => missing += 1,
                Some(k) => o.duplicated += k as u64 - 1,
            }
        }
        o.lost += missing;
        o.duplicated += ids.len() as u64;
        o
    }
}

fn wait_exit(c: &mut Child, timeout: Duration) -> Option<std::process::ExitStatus> {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if let Some(s) = c.try_wait().unwrap() {
            return Some(s);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

fn wait_until(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// `ARKFLOW_FAULTS` or `default`.
pub fn faults_from_env(default: u64) -> u64 {
    std::env::var("ARKFLOW_FAULTS").ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}
