//! Bench binary: group mode (docs/SCALE_OUT.md, issue 8). Runs the real `arkflow` binary as
//! several processes against a real broker (`tansu`, sqlite storage) and S3 server (moto), both
//! started on 127.0.0.1 by this binary, with the `counter` plugin built from source. Each run has
//! its own consumer group, operator id and output topic; exactly-once Kafka output in outbox mode,
//! checkpoints every second to S3.
//!
//! 1. Throughput with 1, 2 and 3 processes on one 8-partition input of BENCH_RECORDS keyed
//!    records produced before the processes start; variants interleave per round. Reported:
//!    records/s over the middle of the run (20 % → 80 % of the output, when the group has formed),
//!    records/s from process start to the last output (joining included), and the CPU seconds of
//!    the arkflow processes, tansu and moto (where the machine's 2 cores go).
//! 2. Failover: 3 processes while records flow at BENCH_RATE records/s; one is SIGKILLed (with
//!    the default `session.timeout.ms` 30000, and with 10000) or stopped with SIGTERM. Reported:
//!    time from the signal to the survivors' revoke (the group noticed), and to the moment every
//!    partition of the victim runs in a survivor's session (its "group session started" `at_ms`,
//!    after fencing, take-over and restore), and the take-over's own time (`took_ms`).
//!
//! 3. Repartition cost: 1 process on the same input, the counter as is and with `key_by: user`
//!    (a repartition topic in between), in turn.
//!
//! Run: `bash plugins/build.sh && bash tests/servers/install.sh && cargo bench --bench group`
//! (env: BENCH_RECORDS 300000, BENCH_ROUNDS 2, BENCH_FAILOVER_ROUNDS 1, BENCH_RATE 2000,
//! BENCH_ONLY=throughput|failover|repartition, BENCH_KEEP=1 keeps the processes' logs).

#[path = "common/mod.rs"]
mod common;
#[path = "../tests/common/mod.rs"]
mod t;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::ClientConfig;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};
use t::kafka::{partition_of, Tansu};
use t::s3::Moto;

const PARTITIONS: i32 = 8;
const KEYS: u64 = 10_000;

struct Env {
    tansu: Tansu,
    moto: Moto,
    dir: t::Dir,
}

/// One `arkflow` process with its JSON log.
struct Proc {
    child: Child,
    log: PathBuf,
}

impl Proc {
    fn start(cfg: &Path, log: PathBuf) -> Proc {
        let f = std::fs::File::create(&log).unwrap();
        let child = Command::new(t::bin())
            .arg("--config")
            .arg(cfg)
            .args(["--log-format", "json"])
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(f.try_clone().unwrap())
            .stderr(f)
            .spawn()
            .expect("spawn arkflow");
        Proc { child, log }
    }

    /// The `fields` of every log event with this message.
    fn events(&self, message: &str) -> Vec<serde_json::Value> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        text.lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .map(|v| v["fields"].clone())
            .filter(|f| f["message"] == message)
            .collect()
    }

    /// Sessions started: (at_ms, took_ms, partitions).
    fn sessions(&self) -> Vec<(i64, i64, Vec<i32>)> {
        let parts = |s: &str| s.split(')').filter_map(|p| p.rsplit(", ").next()?.trim().parse().ok()).collect();
        self.events("group session started")
            .iter()
            .map(|f| (f["at_ms"].as_i64().unwrap_or(0), f["took_ms"].as_i64().unwrap_or(0), parts(f["partitions"].as_str().unwrap_or(""))))
            .collect()
    }

    fn revokes_after(&self, t: i64) -> Option<i64> {
        self.events("group session ended: partitions revoked after the last checkpoint").iter().filter_map(|f| f["at_ms"].as_i64()).find(|&at| at > t)
    }

    fn stop(mut self) {
        t::signal(&self.child, "TERM");
        let status = self.child.wait().unwrap();
        assert!(status.success(), "arkflow exited with {status}:\n{}", self.tail());
    }

    fn tail(&self) -> String {
        let s = std::fs::read_to_string(&self.log).unwrap_or_default();
        s[s.len().saturating_sub(3000)..].to_string()
    }
}

impl Env {
    /// `key_by`: the counter says `key_by: user`, so the stream reads a repartition topic.
    fn config(&self, run: &str, input: &str, options: &str, key_by: bool) -> PathBuf {
        let yaml = format!(
            r#"
state_management:
  enabled: true
  backend_type: s3
  checkpoint_interval_ms: 1000
  exactly_once: true
{s3}
streams:
  - name: bench
    input:
      type: kafka
      brokers: ["{b}"]
      topics: [{input}]
      consumer_group: {run}
      assignment: group
      options: {{ fetch.max.bytes: "262144", message.max.bytes: "200000"{options} }}
    pipeline:
      thread_num: 2
      processors:
        - type: wasm
          path: {counter}{key_by}
    output: {{ type: kafka, brokers: ["{b}"], topic: out-{run}, exactly_once: true, exactly_once_mode: outbox }}
    state: {{ operator_id: {run}, enabled: true }}
"#,
            s3 = self.moto.target.yaml_block(2, &format!("{run}/")),
            b = self.tansu.broker,
            counter = t::plugin("counter").display(),
            key_by = if key_by { "\n          key_by: user\n          config: { key_field: user }" } else { "" },
        );
        let p = self.dir.path(&format!("{run}.yaml"));
        std::fs::write(&p, yaml).unwrap();
        self.tansu.create_topic(&format!("out-{run}"), PARTITIONS);
        p
    }

    fn start(&self, cfg: &Path, run: &str, n: usize) -> Vec<Proc> {
        (0..n).map(|i| Proc::start(cfg, self.dir.path(&format!("{run}-p{i}.log")))).collect()
    }
}

/// Keyed JSON records `from..to` as (partition, key, value).
fn keyed(from: u64, to: u64) -> impl Iterator<Item = (i32, String, String)> {
    (from..to).map(|id| {
        let user = t::generated_key(23, KEYS, id);
        (partition_of(&user, PARTITIONS), user.clone(), format!("{{\"id\":{id},\"user\":\"{user}\"}}"))
    })
}

/// The sum of a topic's end offsets, read through one long-lived client.
struct Offsets(BaseConsumer, String);

impl Offsets {
    fn new(broker: &str, topic: &str) -> Offsets {
        Offsets(ClientConfig::new().set("bootstrap.servers", broker).create().unwrap(), topic.to_string())
    }
    fn total(&self) -> i64 {
        (0..PARTITIONS).filter_map(|p| self.0.fetch_watermarks(&self.1, p, Duration::from_secs(5)).ok()).map(|(_, h)| h).sum()
    }
}

struct Throughput {
    middle: f64,
    whole: f64,
    cpu: [f64; 3],
    sessions: usize,
}

fn throughput(env: &Env, n: usize, run: &str, records: u64, key_by: bool) -> Throughput {
    let cfg = env.config(run, "in", "", key_by);
    let out = Offsets::new(&env.tansu.broker, &format!("out-{run}"));
    let cpu0 = [common::cpu_secs_of(env.tansu.pid()), common::cpu_secs_of(env.moto.pid())];
    let start = Instant::now();
    let procs = env.start(&cfg, run, n);
    let (mut t20, mut t80) = (None, None);
    let done = loop {
        let o = out.total() as u64;
        let s = start.elapsed().as_secs_f64();
        if o * 5 >= records && t20.is_none() {
            t20 = Some(s);
        }
        if o * 5 >= records * 4 && t80.is_none() {
            t80 = Some(s);
        }
        if o >= records {
            break s;
        }
        assert!(s < 900.0, "{run}: {o} of {records} output records after 900 s:\n{}", procs.iter().map(Proc::tail).collect::<String>());
        std::thread::sleep(Duration::from_millis(100));
    };
    let cpu_ark: f64 = procs.iter().map(|p| common::cpu_secs_of(p.child.id())).sum();
    let cpu = [cpu_ark, common::cpu_secs_of(env.tansu.pid()) - cpu0[0], common::cpu_secs_of(env.moto.pid()) - cpu0[1]];
    let sessions = procs.iter().map(|p| p.sessions().len()).sum();
    procs.into_iter().for_each(Proc::stop);
    let total = out.total() as u64;
    assert_eq!(total, records, "{run}: the output must hold each record exactly once");
    let (t20, t80) = (t20.unwrap(), t80.unwrap());
    Throughput { middle: records as f64 * 0.6 / (t80 - t20).max(1e-3), whole: records as f64 / done, cpu, sessions }
}

/// Produces `rate` records/s to `topic` until `stop` (4 slices a second, one long-lived producer).
fn feed(broker: String, topic: String, rate: u64, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let p: ThreadedProducer<DefaultProducerContext> =
            ClientConfig::new().set("bootstrap.servers", &broker).set("linger.ms", "20").set("queue.buffering.max.messages", "1000000").create().unwrap();
        let mut id = 0;
        while !stop.load(Relaxed) {
            let tick = Instant::now();
            for (part, k, v) in keyed(id, id + rate / 4) {
                let _ = p.send(BaseRecord::to(&topic).partition(part).key(&k).payload(&v));
            }
            id += rate / 4;
            std::thread::sleep(Duration::from_millis(250).saturating_sub(tick.elapsed()));
        }
        p.flush(Duration::from_secs(60)).unwrap();
        id
    })
}

struct Failover {
    detect_ms: i64,
    resume_ms: i64,
    took_ms: i64,
}

fn failover(env: &Env, run: &str, signal: &str, options: &str, rate: u64) -> Failover {
    let input = format!("live-{run}");
    env.tansu.create_topic(&input, PARTITIONS);
    let cfg = env.config(run, &input, options, false);
    let stop = Arc::new(AtomicBool::new(false));
    let feeder = feed(env.tansu.broker.clone(), input, rate, stop.clone());
    let mut procs = env.start(&cfg, run, 3);
    // Wait for a settled group: every process has partitions and no session started for 5 s.
    let start = Instant::now();
    loop {
        let s: Vec<_> = procs.iter().map(Proc::sessions).collect();
        let last = s.iter().flatten().map(|x| x.0).max().unwrap_or(i64::MAX);
        if s.iter().all(|x| x.last().is_some_and(|l| !l.2.is_empty())) && arkflow::util::time::now_ms() - last > 5_000 {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(180), "{run}: the group did not settle:\n{}", procs.iter().map(Proc::tail).collect::<String>());
        std::thread::sleep(Duration::from_millis(200));
    }
    let victim = procs.remove(0);
    let lost = victim.sessions().last().unwrap().2.clone();
    let at = arkflow::util::time::now_ms();
    t::signal(&victim.child, signal);
    let mut victim = victim;
    if signal == "TERM" {
        let status = victim.child.wait().unwrap();
        assert!(status.success(), "{run}: graceful stop failed:\n{}", victim.tail());
    } else {
        let _ = victim.child.wait();
    }
    // Every lost partition runs again in a survivor's session started after the signal.
    let start = Instant::now();
    let (resume, took) = loop {
        let after: Vec<_> = procs.iter().flat_map(Proc::sessions).filter(|s| s.0 > at).collect();
        let firsts: Vec<_> = lost.iter().filter_map(|p| after.iter().filter(|s| s.2.contains(p)).min_by_key(|s| s.0)).collect();
        if firsts.len() == lost.len() {
            break (firsts.iter().map(|s| s.0).max().unwrap(), firsts.iter().map(|s| s.1).max().unwrap());
        }
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "{run}: partitions {lost:?} not resumed after 300 s:\n{}",
            procs.iter().map(Proc::tail).collect::<String>()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let detect = procs.iter().filter_map(|p| p.revokes_after(at)).min().unwrap_or(resume);
    stop.store(true, Relaxed);
    feeder.join().unwrap();
    procs.into_iter().for_each(Proc::stop);
    Failover { detect_ms: detect - at, resume_ms: resume - at, took_ms: took }
}

/// 3. The cost of a repartition topic: one process counts the keyed input as it is, and with
///    `key_by: user` on the counter (so through `{run}-0-repartition`, docs/SCALE_OUT.md), in
///    turn; ratios repartitioned / direct per round.
fn repartition(env: &Env, records: u64, rounds: u64) {
    let (mut middle, mut whole, mut cpu) = (Vec::new(), Vec::new(), Vec::new());
    for r in 0..rounds {
        let direct = throughput(env, 1, &format!("r{r}direct"), records, false);
        let split = throughput(env, 1, &format!("r{r}split"), records, true);
        println!(
            "round {r}: direct middle {:.0} rec/s whole {:.0} rec/s CPU s {:.1}; repartitioned middle {:.0} rec/s whole {:.0} rec/s CPU s {:.1}",
            direct.middle, direct.whole, direct.cpu[0], split.middle, split.whole, split.cpu[0]
        );
        middle.push(split.middle / direct.middle);
        whole.push(split.whole / direct.whole);
        cpu.push(split.cpu[0] / direct.cpu[0]);
    }
    let show = |v: &[f64]| v.iter().map(|r| format!("{r:.2}")).collect::<Vec<_>>().join(", ");
    println!("\n| repartitioned / direct | median | per round |\n|---|---|---|");
    for (name, v) in [("middle rec/s", &mut middle), ("whole rec/s", &mut whole), ("arkflow CPU s", &mut cpu)] {
        let per = show(v);
        println!("| {name} | {:.2} | {per} |", common::median(v));
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        println!("group: bench");
        return;
    }
    let records = common::env_u64("BENCH_RECORDS", 300_000);
    let rounds = common::env_u64("BENCH_ROUNDS", 2);
    let fo_rounds = common::env_u64("BENCH_FAILOVER_ROUNDS", 1);
    let rate = common::env_u64("BENCH_RATE", 2_000);
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    let env = Env { tansu: Tansu::start(), moto: Moto::start(), dir: t::Dir::new() };

    if only.is_empty() || only == "throughput" || only == "repartition" {
        env.tansu.create_topic("in", PARTITIONS);
        let t0 = Instant::now();
        t::kafka::produce_to(&env.tansu.broker, "in", keyed(0, records));
        println!("input: {records} records in {PARTITIONS} partitions, produced in {:.1} s", t0.elapsed().as_secs_f64());
    }
    if only.is_empty() || only == "throughput" {
        let t0 = Instant::now();
        let read = env.tansu.read_all_isolated("in", "read_uncommitted").len();
        println!("broker ceiling: one plain consumer reads the input at {:.0} rec/s", read as f64 / t0.elapsed().as_secs_f64());
        let mut by_n: Vec<Vec<Throughput>> = (0..3).map(|_| Vec::new()).collect();
        for r in 0..rounds {
            for i in 0..3 {
                let n = if r % 2 == 0 { i + 1 } else { 3 - i };
                let x = throughput(&env, n, &format!("t{r}n{n}"), records, false);
                println!(
                    "round {r}, {n} process(es): middle {:.0} rec/s, whole {:.0} rec/s, CPU s arkflow {:.1} tansu {:.1} moto {:.1}, sessions {}",
                    x.middle, x.whole, x.cpu[0], x.cpu[1], x.cpu[2], x.sessions
                );
                by_n[n - 1].push(x);
            }
        }
        // Ratios within each round (the rounds ran side by side), then their median.
        let med = |v: &[Throughput], f: fn(&Throughput) -> f64| common::median(&mut v.iter().map(f).collect::<Vec<_>>());
        println!("\n| processes | middle rec/s | ratio to 1 process (median; per round) | whole rec/s | CPU s arkflow | tansu | moto |\n|---|---|---|---|---|---|---|");
        for (i, v) in by_n.iter().enumerate() {
            let mut ratios: Vec<f64> = v.iter().zip(&by_n[0]).map(|(x, one)| x.middle / one.middle).collect();
            let per_round = ratios.iter().map(|r| format!("{r:.2}")).collect::<Vec<_>>().join(", ");
            println!(
                "| {} | {:.0} | {:.2}; {per_round} | {:.0} | {:.1} | {:.1} | {:.1} |",
                i + 1,
                med(v, |x| x.middle),
                common::median(&mut ratios),
                med(v, |x| x.whole),
                med(v, |x| x.cpu[0]),
                med(v, |x| x.cpu[1]),
                med(v, |x| x.cpu[2])
            );
        }
    }

    if only.is_empty() || only == "repartition" {
        repartition(&env, records, rounds);
    }

    if only.is_empty() || only == "failover" {
        let cases = [
            ("SIGKILL, session.timeout.ms 30000", "KILL", ""),
            ("SIGKILL, session.timeout.ms 10000", "KILL", r#", session.timeout.ms: "10000""#),
            ("SIGTERM", "TERM", ""),
        ];
        println!("\n| victim | signal → survivors revoked (ms) | signal → all its partitions resumed (ms) | take-over (ms) |\n|---|---|---|---|");
        for r in 0..fo_rounds {
            for (i, (name, sig, opts)) in cases.iter().enumerate() {
                let f = failover(&env, &format!("f{r}c{i}"), sig, opts, rate);
                println!("| {name} | {} | {} | {} |", f.detect_ms, f.resume_ms, f.took_ms);
            }
        }
    }
    if std::env::var_os("BENCH_KEEP").is_some() {
        println!("\nlogs and configs kept in {}", env.dir.0.keep().display());
    }
}
