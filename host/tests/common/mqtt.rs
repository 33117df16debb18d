//! A mosquitto broker on 127.0.0.1 for tests, started by this test and stopped by its own PID
//! when the handle drops; no limit on in-flight or queued messages (the `mqtt` input holds its
//! acknowledgements until a checkpoint is decided). `bash tests/servers/install.sh` installs
//! mosquitto when missing. Also a small MQTT client (rumqttc) for publishing and subscribing.

use super::server::Server;
use rumqttc::{Client, Event, MqttOptions, Packet, QoS};
use std::process::Command;
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

pub struct Mosquitto {
    _server: Server,
    pub port: u16,
}

impl Mosquitto {
    pub fn start() -> Mosquitto {
        let bin = Server::binary("mosquitto", &["/usr/sbin/mosquitto", "/usr/bin/mosquitto"]);
        let (port, dir) = Server::prepare("mosquitto");
        let conf = dir.join("mosquitto.conf");
        let text = format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\nmax_inflight_messages 0\nmax_queued_messages 0\npersistence false\nset_tcp_nodelay true\n"
        );
        std::fs::write(&conf, text).unwrap();
        let mut cmd = Command::new(bin);
        cmd.arg("-c").arg(&conf);
        Mosquitto { _server: Server::spawn("mosquitto", cmd, port, dir), port }
    }

    fn client(&self, id: &str) -> (Client, rumqttc::Connection) {
        client(self.port, id)
    }

    /// Publishes `payloads` to `topic` at QoS 1, at most `rate` a second; returns once the broker
    /// acknowledged all of them.
    pub fn publish(&self, topic: &str, payloads: Vec<String>, rate: u64) {
        publish_to(self.port, topic, payloads, rate)
    }

    /// Subscribes to `topic` at QoS 1 (returns once subscribed); the payloads arrive on the receiver.
    pub fn subscribe(&self, topic: &str) -> Receiver<Vec<u8>> {
        let (client, mut conn) = self.client("arkflow-test-subscriber");
        client.subscribe(topic, QoS::AtLeastOnce).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let (ready_tx, ready) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _client = client;
            for event in conn.iter() {
                match event {
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        let _ = ready_tx.send(());
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        if tx.send(p.payload.to_vec()).is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(_) => std::thread::sleep(Duration::from_millis(100)),
                }
            }
        });
        ready.recv_timeout(Duration::from_secs(20)).expect("subscribed");
        rx
    }
}

fn client(port: u16, id: &str) -> (Client, rumqttc::Connection) {
    let mut o = MqttOptions::new(id, "127.0.0.1", port);
    o.set_keep_alive(Duration::from_secs(30)).set_max_packet_size(1 << 20, 1 << 20);
    Client::new(o, 10_000)
}

/// [`Mosquitto::publish`] to the broker on `port` (from any thread).
pub fn publish_to(port: u16, topic: &str, payloads: Vec<String>, rate: u64) {
    let (client, mut conn) = client(port, "arkflow-test-publisher");
    let n = payloads.len();
    let acks = std::thread::spawn(move || {
        let mut acked = 0;
        for event in conn.iter() {
            if let Ok(Event::Incoming(Packet::PubAck(_))) = event {
                acked += 1;
                if acked == n {
                    break;
                }
            }
        }
    });
    let start = Instant::now();
    for (i, p) in payloads.into_iter().enumerate() {
        let due = start + Duration::from_secs_f64(i as f64 / rate as f64);
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        client.publish(topic, QoS::AtLeastOnce, false, p).unwrap();
    }
    acks.join().unwrap();
    let _ = client.disconnect();
}
