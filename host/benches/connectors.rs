//! Bench binary: connectors against their servers' own client tools, on 127.0.0.1, the same
//! records both ways, interleaved per round so both see the same machine load:
//! - (M) `mqtt` output at QoS 1 vs `mosquitto_pub -q 1 -l` (one message per line), both to a
//!   mosquitto this binary starts, each timed until a `mosquitto_sub` has every message;
//! - (P) `postgres` output vs `psql \copy` of the same rows, both into a table of a PostgreSQL
//!   cluster this binary starts (prepared transactions allowed); the output at-least-once (COPY)
//!   and exactly-once two ways (local state store): by prepared transactions (COPY at each
//!   barrier, committed after the decision) and by staged rows (`two_phase: false`);
//! - (N) `nats` output (JetStream, each publish acknowledged, with a `Nats-Msg-Id`) vs the
//!   async-nats client publishing the same values to JetStream from this process, 1024
//!   acknowledgements in flight (no NATS command-line tool is packaged here), into one
//!   nats-server with a stream per side;
//! - (R) `redis` output (`rpush`) vs `redis-cli --pipe` of the same RPUSH commands (Redis's own
//!   mass-insertion tool), into one redis-server.
//!
//! Each arkflow figure is one built stream (file input of N JSON lines → output) run to its end
//! in this process; each tool is its whole process. Prints records/s and arkflow / tool.
//!
//! Run: `bash tests/servers/install.sh && apt-get install mosquitto-clients redis-tools && cargo bench --bench connectors`
//! (env: BENCH_RECORDS, default 200,000; BENCH_ROUNDS, default 3).

#[path = "common/mod.rs"]
mod common;
#[path = "../tests/common/mod.rs"]
mod t;

use arkflow::config::EngineConfig;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

/// The stream: the file `input` → `output` (a YAML flow mapping).
fn stream(input: &Path, output: &str, state: Option<&Path>) -> EngineConfig {
    // Each exactly-once run has a state of its own, so its own operator id (its commits claim).
    let op = state.and_then(|s| s.file_name()).map_or("bench".into(), |f| f.to_string_lossy().into_owned());
    let sm = match state {
        Some(s) => format!(
            "state_management: {{ enabled: true, backend_type: local, local_config: {{ path: {} }}, checkpoint_interval_ms: 1000, exactly_once: true }}\n",
            s.display()
        ),
        None => String::new(),
    };
    let yaml = format!(
        "{sm}streams:\n  - name: bench\n    input: {{ type: file, path: {} }}\n    pipeline: {{ processors: [] }}\n    output: {output}\n    state: {{ operator_id: {op}, enabled: true }}\n",
        input.display()
    );
    EngineConfig::from_yaml_str(&yaml, None).expect("bench config")
}

/// Runs `cmd` (stdin from `input` when given) to success; records/s for `n` records.
fn tool(mut cmd: Command, input: Option<&Path>, n: u64) -> f64 {
    if let Some(i) = input {
        cmd.stdin(std::fs::File::open(i).unwrap());
    }
    let start = Instant::now();
    let out = cmd.stdout(Stdio::null()).output().expect("run the client tool");
    assert!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
    n as f64 / start.elapsed().as_secs_f64()
}

/// Records/s until a QoS 1 `mosquitto_sub` on `topic` has received `n` messages from what
/// `publish` sends (a child it returns, if any, is ended by PID afterwards). Both MQTT sides are
/// timed this way: `mosquitto_pub -l` cannot be timed to its own end, since at end of input it
/// drops what it still queues.
fn delivered<T: MaybeChild>(port: u16, topic: &str, n: u64, publish: impl FnOnce() -> T) -> f64 {
    let mut sub = Command::new("mosquitto_sub")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-q", "1", "-t", topic, "-C", &n.to_string()])
        .stdout(Stdio::null())
        .spawn()
        .expect("run mosquitto_sub");
    std::thread::sleep(std::time::Duration::from_millis(500));
    let start = Instant::now();
    let publisher = publish();
    assert!(sub.wait().unwrap().success(), "mosquitto_sub on {topic}");
    let rate = n as f64 / start.elapsed().as_secs_f64();
    publisher.end();
    rate
}

/// What a publisher left running: nothing, or a child process.
trait MaybeChild {
    fn end(self);
}

impl MaybeChild for () {
    fn end(self) {}
}

impl MaybeChild for std::process::Child {
    fn end(mut self) {
        let _ = self.kill();
        let _ = self.wait();
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return;
    }
    let n = common::env_u64("BENCH_RECORDS", 200_000);
    let rounds = common::env_u64("BENCH_ROUNDS", 3);
    let dir = tempfile::tempdir().unwrap();
    let lines = dir.path().join("in.jsonl");
    let csv = dir.path().join("in.csv");
    common::write_lines(&lines, n, |i| format!("{{\"id\":{i},\"who\":\"u{}\",\"amount\":{}}}", i % 10_000, i % 100));
    common::write_lines(&csv, n, |i| format!("{i},u{},{}", i % 10_000, i % 100));
    let broker = t::mqtt::Mosquitto::start();
    let pg = t::postgres::Postgres::start_with(&["-c", "max_prepared_transactions=8"]);
    let psql = |sql: &str| pg.psql(sql);
    psql("CREATE TABLE rows_out (id bigint, who text, amount int)");
    psql("CREATE TABLE rows_copy (id bigint, who text, amount int)");
    let nats = t::nats::Nats::start();
    nats.create_stream("ARK", &["bench.ark"]);
    nats.create_stream("RAW", &["bench.raw"]);
    let values: Vec<String> = std::fs::read_to_string(&lines).unwrap().lines().map(String::from).collect();
    let redis = t::redis::Redis::start();
    let resp = dir.path().join("in.resp");
    {
        let mut r = std::io::BufWriter::new(std::fs::File::create(&resp).unwrap());
        for v in &values {
            write!(r, "*3\r\n$5\r\nRPUSH\r\n$3\r\nraw\r\n${}\r\n{v}\r\n", v.len()).unwrap();
        }
    }
    let (mut m_ark, mut m_pub, mut p_alo, mut p_eo, mut p_copy, mut p_staged) = (vec![], vec![], vec![], vec![], vec![], vec![]);
    let (mut n_ark, mut n_raw, mut r_ark, mut r_cli) = (vec![], vec![], vec![], vec![]);
    for round in 0..rounds {
        let nats_out = format!("{{ type: nats, url: '{}', subject: bench.ark }}", nats.url());
        let nark = common::run_stream(&stream(&lines, &nats_out, None)).0;
        let start = Instant::now();
        nats.publish("bench.raw", values.iter().cloned());
        let nraw = n as f64 / start.elapsed().as_secs_f64();
        let redis_out = format!("{{ type: redis, url: '{}', key: ark }}", redis.url());
        let rark = common::run_stream(&stream(&lines, &redis_out, None)).0;
        let mut cli = Command::new("redis-cli");
        cli.args(["-h", "127.0.0.1", "-p", &redis.port.to_string(), "--pipe"]);
        let rcli = tool(cli, Some(&resp), n);
        println!(
            "round {round}: nats output {nark:.0} rec/s vs async-nats client {nraw:.0} ({:.2}) | redis output {rark:.0} vs redis-cli --pipe {rcli:.0} ({:.2})",
            nark / nraw,
            rark / rcli
        );
        n_ark.push(nark);
        n_raw.push(nraw);
        r_ark.push(rark);
        r_cli.push(rcli);

        let mqtt_out = format!("{{ type: mqtt, host: 127.0.0.1, port: {}, topic: bench/ark, qos: 1 }}", broker.port);
        let ark = delivered(broker.port, "bench/ark", n, || {
            common::run_stream(&stream(&lines, &mqtt_out, None));
        });
        let pub_rate = delivered(broker.port, "bench/pub", n, || {
            let mut pubc = Command::new("mosquitto_pub");
            pubc.args(["-h", "127.0.0.1", "-p", &broker.port.to_string(), "-q", "1", "-t", "bench/pub", "-l"]);
            let mut child = pubc.stdin(Stdio::piped()).stdout(Stdio::null()).spawn().expect("run mosquitto_pub");
            // Its stdin stays open until the subscriber has every message: at end of input
            // mosquitto_pub 2.0.11 disconnects without sending what it still queues.
            child.stdin.as_mut().unwrap().write_all(&std::fs::read(&lines).unwrap()).unwrap();
            child
        });

        psql("TRUNCATE rows_out; TRUNCATE rows_copy");
        let pg_out = format!("{{ type: postgres, url: \"{}\", table: rows_out }}", pg.url());
        let alo = common::run_stream(&stream(&lines, &pg_out, None)).0;
        psql("TRUNCATE rows_out");
        let eo = common::run_stream(&stream(&lines, &pg_out, Some(&dir.path().join(format!("state-{round}"))))).0;
        psql("TRUNCATE rows_out");
        let staged_out = format!("{{ type: postgres, url: \"{}\", table: rows_out, two_phase: false }}", pg.url());
        let eo_staged = common::run_stream(&stream(&lines, &staged_out, Some(&dir.path().join(format!("staged-{round}"))))).0;
        let mut copy = Command::new("psql");
        let copy_sql = format!("\\copy rows_copy (id, who, amount) FROM '{}' CSV", csv.display());
        copy.args(["-h", "127.0.0.1", "-p", &pg.port.to_string(), "-U", "arkflow", "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-c", &copy_sql]);
        let copy_rate = tool(copy, None, n);
        assert_eq!(psql("SELECT count(*) FROM rows_out").trim(), n.to_string(), "every row written");
        println!(
            "round {round}: mqtt output {ark:.0} rec/s vs mosquitto_pub {pub_rate:.0} ({:.2}) | postgres output at-least-once {alo:.0}, exactly-once {eo:.0} (staged: {eo_staged:.0}) vs psql \\copy {copy_rate:.0} ({:.2}, {:.2}, staged {:.2})",
            ark / pub_rate,
            alo / copy_rate,
            eo / copy_rate,
            eo_staged / copy_rate
        );
        m_ark.push(ark);
        m_pub.push(pub_rate);
        p_alo.push(alo);
        p_eo.push(eo);
        p_staged.push(eo_staged);
        p_copy.push(copy_rate);
    }
    let med = common::median;
    let (ma, mp, pa, pe, pc, ps) = (med(&mut m_ark), med(&mut m_pub), med(&mut p_alo), med(&mut p_eo), med(&mut p_copy), med(&mut p_staged));
    println!("median of {rounds}: mqtt output {ma:.0} rec/s, mosquitto_pub {mp:.0} rec/s: {:.2}", ma / mp);
    let (na, nr, ra, rc) = (med(&mut n_ark), med(&mut n_raw), med(&mut r_ark), med(&mut r_cli));
    println!("median of {rounds}: nats output {na:.0} rec/s, async-nats client {nr:.0} rec/s: {:.2}", na / nr);
    println!("median of {rounds}: redis output {ra:.0} rec/s, redis-cli --pipe {rc:.0} rec/s: {:.2}", ra / rc);
    println!(
        "median of {rounds}: postgres output at-least-once {pa:.0} rec/s ({:.2} of psql \\copy {pc:.0}), exactly-once by prepared transactions {pe:.0} rec/s ({:.2}), by staged rows {ps:.0} rec/s ({:.2})",
        pa / pc,
        pe / pc,
        ps / pc
    );
}
