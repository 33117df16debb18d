//! A real Kafka-protocol broker on 127.0.0.1 for tests: `tansu` (installed by
//! `bash tests/servers/install.sh`) with sqlite storage in a fresh directory, stopped by its own
//! PID when the handle drops. Topics are created with the admin API; records are produced and
//! read back with rdkafka.

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Tansu {
    pub broker: String,
    child: Child,
    _dir: tempfile::TempDir,
}

fn tansu_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("TANSU") {
        return p.into();
    }
    let cargo_bin =
        std::env::var_os("CARGO_HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(std::env::var("HOME").unwrap()).join(".cargo")).join("bin/tansu");
    if cargo_bin.exists() {
        cargo_bin
    } else {
        "tansu".into()
    }
}

impl Tansu {
    pub fn start() -> Tansu {
        Self::start_logging("warn")
    }

    /// Starts tansu with its log at `level` (group tests read its membership decisions).
    pub fn start_logging(level: &str) -> Tansu {
        let dir = tempfile::tempdir().unwrap();
        let port = super::s3::free_port();
        let url = format!("tcp://127.0.0.1:{port}");
        let log = std::fs::File::create(dir.path().join("tansu.log")).unwrap();
        let child = Command::new(tansu_bin())
            .arg("broker")
            .args(["--listener-url", &url, "--advertised-listener-url", &url])
            // Relative to the working directory (an absolute path is doubled by tansu 0.6.0).
            .args(["--storage-engine", "sqlite://tansu.db"])
            .current_dir(dir.path())
            .env("RUST_LOG", level)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start tansu: run `bash tests/servers/install.sh`");
        let mut t = Tansu { broker: format!("127.0.0.1:{port}"), child, _dir: dir };
        let start = Instant::now();
        while arkflow::connectors::kafka::probe::api_keys(&t.broker, Duration::from_secs(2)).is_err() {
            if let Ok(Some(status)) = t.child.try_wait() {
                panic!("tansu exited early: {status}: {}", t.log());
            }
            assert!(start.elapsed() < Duration::from_secs(60), "tansu did not answer on {} within 60 s", t.broker);
            std::thread::sleep(Duration::from_millis(100));
        }
        index_headers(&t._dir.path().join("tansu.db"));
        t
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("tansu.log")).unwrap_or_default()
    }

    fn config(&self) -> ClientConfig {
        config_for(&self.broker)
    }

    pub fn create_topic(&self, name: &str, partitions: i32) {
        let admin: AdminClient<DefaultClientContext> = self.config().create().unwrap();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
        let res = rt.block_on(admin.create_topics([&topic], &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))))).unwrap();
        for r in res {
            r.unwrap_or_else(|(t, e)| panic!("creating topic {t}: {e}"));
        }
    }

    /// Produces `(partition, key, value)` records (idempotent producer) and waits for them all.
    pub fn produce(&self, topic: &str, records: impl IntoIterator<Item = (i32, String, String)>) {
        produce_to(&self.broker, topic, records)
    }

    /// Every record of `topic` (all partitions, start to end): (partition, key, value).
    pub fn read_all(&self, topic: &str) -> Vec<(i32, String, String)> {
        self.read_all_isolated(topic, "read_committed")
    }

    /// [`Tansu::read_all`] with an explicit `isolation.level`.
    pub fn read_all_isolated(&self, topic: &str, isolation: &str) -> Vec<(i32, String, String)> {
        let c: BaseConsumer = self
            .config()
            .set("group.id", "arkflow-test-reader")
            .set("enable.auto.commit", "false")
            .set("isolation.level", isolation)
            // tansu 0.6.0 answers a default-sized fetch of records with headers with nothing.
            .set("fetch.max.bytes", "262144")
            .set("message.max.bytes", "200000")
            .set("fetch.wait.max.ms", "50")
            .create()
            .unwrap();
        let md = c.fetch_metadata(Some(topic), Duration::from_secs(10)).unwrap();
        let parts: Vec<i32> = md.topics()[0].partitions().iter().map(|p| p.id()).collect();
        let mut tpl = TopicPartitionList::new();
        let mut remaining = 0;
        let mut ends = std::collections::HashMap::new();
        for &p in &parts {
            let (low, high) = c.fetch_watermarks(topic, p, Duration::from_secs(10)).unwrap();
            ends.insert(p, high);
            remaining += (high - low).max(0);
            tpl.add_partition_offset(topic, p, Offset::Offset(low)).unwrap();
        }
        c.assign(&tpl).unwrap();
        let mut out = Vec::with_capacity(remaining as usize);
        let start = Instant::now();
        let mut done: std::collections::HashSet<i32> = ends.iter().filter(|(_, &h)| h == 0).map(|(&p, _)| p).collect();
        while done.len() < parts.len() {
            if start.elapsed() > Duration::from_secs(120) {
                let log = self.log();
                panic!("reading {topic}: {} of {remaining} records after 120 s; tansu log tail:\n{}", out.len(), &log[log.len().saturating_sub(4000)..]);
            }
            let Some(m) = c.poll(Duration::from_millis(200)) else { continue };
            let m = m.unwrap_or_else(|e| panic!("reading {topic}: {e}"));
            let key = String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned();
            let val = String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned();
            out.push((m.partition(), key, val));
            if m.offset() + 1 >= ends[&m.partition()] {
                done.insert(m.partition());
            }
        }
        out
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Adds the index tansu 0.6.0's sqlite schema lacks: without it, every fetched record runs a
/// header query that scans every header the broker holds, so a topic written with headers (the
/// outbox output) makes each later fetch cost O(all headers) and the broker's one sqlite thread
/// falls behind on heartbeats too (measured: 100 % CPU, group sessions timing out, at ~70k headers).
fn index_headers(db: &std::path::Path) {
    let sql = "create index if not exists header_topition_offset on header (topition, offset_id)";
    let script = format!("import sqlite3, sys\nc = sqlite3.connect(sys.argv[1], timeout=30)\nc.execute('{sql}')\nc.commit()");
    let out = Command::new("python3").arg("-c").arg(script).arg(db).output().expect("python3 (for tansu's header index)");
    assert!(out.status.success(), "indexing {}: {}", db.display(), String::from_utf8_lossy(&out.stderr));
}

fn config_for(broker: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", broker);
    c
}

/// Produces `(partition, key, value)` records to `broker` (idempotent producer) and waits for them.
pub fn produce_to(broker: &str, topic: &str, records: impl IntoIterator<Item = (i32, String, String)>) {
    send_all(broker, topic, records.into_iter().map(|(p, k, v)| (p, Some(k), v)))
}

/// Produces `(partition, value)` records without a key to `broker` and waits for them.
#[allow(dead_code)]
pub fn produce_unkeyed(broker: &str, topic: &str, records: impl IntoIterator<Item = (i32, String)>) {
    send_all(broker, topic, records.into_iter().map(|(p, v)| (p, None, v)))
}

/// Remembers the first failed delivery: the default context drops delivery reports, so a record
/// the broker never took would vanish from the input unseen (and show up, minutes later, as a
/// shortfall in the output of the test using it).
#[derive(Default)]
struct Deliveries {
    failed: std::sync::Mutex<Option<String>>,
    count: std::sync::atomic::AtomicU64,
}

impl rdkafka::ClientContext for Deliveries {}

impl rdkafka::producer::ProducerContext for Deliveries {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &rdkafka::producer::DeliveryResult<'_>, _: ()) {
        if let Err((e, m)) = result {
            self.count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            self.failed.lock().unwrap().get_or_insert_with(|| format!("{}/{}: {e}", m.topic(), m.partition()));
        }
    }
}

/// Sends `(partition, key, value)` records (idempotent producer), retrying a full queue, and
/// waits for them all. A record is retried until the broker takes it (no delivery timeout: a
/// loaded broker only slows the test down); one it refuses for good fails the test, naming why.
fn send_all(broker: &str, topic: &str, records: impl Iterator<Item = (i32, Option<String>, String)>) {
    let p: ThreadedProducer<Deliveries> = config_for(broker)
        .set("enable.idempotence", "true")
        .set("linger.ms", "20")
        .set("message.timeout.ms", "0")
        .set("queue.buffering.max.messages", "1000000")
        .create_with_context(Deliveries::default())
        .unwrap();
    for (part, k, v) in records {
        let mut rec = BaseRecord::<str, str>::to(topic).partition(part).payload(v.as_str());
        if let Some(k) = &k {
            rec = rec.key(k.as_str());
        }
        loop {
            match p.send(rec) {
                Ok(()) => break,
                Err((_, back)) => {
                    rec = back;
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        }
    }
    p.flush(Duration::from_secs(300)).unwrap();
    let failed = p.context().failed.lock().unwrap().clone();
    if let Some(e) = failed {
        panic!("the broker refused {} records (first: {e}): the test's input is incomplete", p.context().count.load(std::sync::atomic::Ordering::Relaxed));
    }
}

/// The sum of the end offsets of every partition of `topic` on `broker` (0 when unreadable).
#[allow(dead_code)]
pub fn end_offsets(broker: &str, topic: &str) -> i64 {
    let Ok(c) = config_for(broker).create::<BaseConsumer>() else { return 0 };
    let Ok(md) = c.fetch_metadata(Some(topic), Duration::from_secs(10)) else { return 0 };
    let parts: Vec<i32> = md.topics().iter().flat_map(|t| t.partitions().iter().map(|p| p.id())).collect();
    parts.iter().filter_map(|&p| c.fetch_watermarks(topic, p, Duration::from_secs(10)).ok()).map(|(_, h)| h).sum()
}

/// The partition the tests give a key: deterministic, independent of any client's partitioner.
pub fn partition_of(key: &str, partitions: i32) -> i32 {
    let h = key.bytes().fold(0xcbf29ce484222325u64, |h, b| (h ^ b as u64).wrapping_mul(0x100000001b3));
    (h % partitions as u64) as i32
}
