//! A NATS server with JetStream on 127.0.0.1 for tests (Debian's nats-server), its store in a
//! temporary directory, started by this test and stopped by its own PID when the handle drops.
//! `bash tests/servers/install.sh` installs it when missing. Also a small JetStream client
//! (async-nats) to make streams, publish and read them.

use async_nats::jetstream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Nats {
    child: Child,
    dir: PathBuf,
    pub port: u16,
    rt: tokio::runtime::Runtime,
    js: jetstream::Context,
}

impl Nats {
    pub fn start() -> Nats {
        let bin = ["/usr/sbin/nats-server", "/usr/bin/nats-server"].into_iter().map(PathBuf::from).find(|p| p.exists());
        let bin = bin.expect("nats-server is not installed: run `bash tests/servers/install.sh`");
        let port = super::free_port();
        let dir = std::env::temp_dir().join(format!("arkflow-nats-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let child = Command::new(bin)
            .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nats-server");
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(start.elapsed() < Duration::from_secs(20), "nats-server did not come up on 127.0.0.1:{port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let js = rt.block_on(async { jetstream::new(async_nats::connect(format!("127.0.0.1:{port}")).await.expect("connect to nats-server")) });
        Nats { child, dir, port, rt, js }
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Makes the JetStream stream `name` capturing `subjects`.
    pub fn create_stream(&self, name: &str, subjects: &[&str]) {
        let config = jetstream::stream::Config { name: name.into(), subjects: subjects.iter().map(|s| s.to_string()).collect(), ..Default::default() };
        self.rt.block_on(self.js.create_stream(config)).expect("create stream");
    }

    /// Publishes `payloads` to `subject`, every one acknowledged by the server.
    pub fn publish(&self, subject: &str, payloads: impl IntoIterator<Item = String>) {
        self.rt.block_on(async {
            let mut acks = Vec::new();
            for p in payloads {
                acks.push(self.js.publish(subject.to_string(), p.into()).await.expect("publish"));
                if acks.len() >= 1000 {
                    for a in acks.drain(..) {
                        a.await.expect("publish ack");
                    }
                }
            }
            for a in acks {
                a.await.expect("publish ack");
            }
        })
    }

    /// Every message of stream `name` (payload, `Nats-Msg-Id`), in order.
    pub fn read_all(&self, name: &str) -> Vec<(Vec<u8>, Option<String>)> {
        use futures::StreamExt;
        self.rt.block_on(async {
            let stream = self.js.get_stream(name).await.expect("get stream");
            let count = stream.get_info().await.unwrap().state.messages;
            let consumer = stream.create_consumer(jetstream::consumer::pull::OrderedConfig::default()).await.expect("ordered consumer");
            let mut messages = consumer.messages().await.expect("messages");
            let mut out = Vec::new();
            while (out.len() as u64) < count {
                let m = tokio::time::timeout(Duration::from_secs(10), messages.next()).await.expect("a message within 10 s").unwrap().unwrap();
                let id = m.headers.as_ref().and_then(|h| h.get(async_nats::header::NATS_MESSAGE_ID)).map(|v| v.as_str().to_string());
                out.push((m.payload.to_vec(), id));
            }
            out
        })
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
