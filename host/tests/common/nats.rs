//! A NATS server with JetStream on 127.0.0.1 for tests (Debian's nats-server), its store in a
//! temporary directory, started by this test and stopped by its own PID when the handle drops.
//! `bash tests/servers/install.sh` installs it when missing. Also a small JetStream client
//! (async-nats) to make streams, publish and read them.

use super::server::Server;
use async_nats::jetstream;
use std::process::Command;
use std::time::Duration;

pub struct Nats {
    pub port: u16,
    rt: tokio::runtime::Runtime,
    js: jetstream::Context,
    /// Dropped last (fields drop in order): the client goes before the server.
    _server: Server,
}

impl Nats {
    pub fn start() -> Nats {
        let bin = Server::binary("nats-server", &["/usr/sbin/nats-server", "/usr/bin/nats-server"]);
        let (port, dir) = Server::prepare("nats");
        let mut cmd = Command::new(bin);
        cmd.args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"]).arg(&dir);
        let server = Server::spawn("nats-server", cmd, port, dir);
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        // The server may accept TCP a moment before it serves clients: a reset then is retried.
        let js = rt.block_on(async {
            let start = std::time::Instant::now();
            loop {
                match async_nats::connect(format!("127.0.0.1:{port}")).await {
                    Ok(c) => break jetstream::new(c),
                    Err(e) if start.elapsed() < Duration::from_secs(20) => eprintln!("connect to nats-server on {port}: {e}; retrying"),
                    Err(e) => panic!("connect to nats-server on 127.0.0.1:{port}: {e}"),
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        Nats { port, rt, js, _server: server }
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
