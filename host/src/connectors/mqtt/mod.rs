//! MQTT (3.1.1, rumqttc) on both sides: the `mqtt` input (`input.rs`) and output (`output.rs`),
//! and the connection settings they share (`Conn`): broker `host` and `port`, `client_id`,
//! credentials, `keep_alive` (seconds) and `clean_session`. Plain TCP (no TLS).
//!
//! Contract: each side owns one client whose event loop runs on a thread of its own (one
//! current-thread tokio runtime) and reconnects by itself after a lost connection (every
//! 500 ms); the engine's threads talk to it through channels and counters, never by polling it.

pub mod input;
pub mod output;

pub use input::MqttInputConfig;
pub use output::MqttOutputConfig;

use crate::config::{ConfigError, Ctx, YPath};
use std::time::Duration;

/// The connection settings of either side.
#[derive(Clone, PartialEq)]
pub struct Conn {
    pub host: String,
    pub port: u16,
    /// None: `arkflow-<stream>` (input) or `arkflow-<stream>-<sink>` (output).
    pub client_id: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub keep_alive_secs: u64,
    pub clean_session: bool,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("client_id", &self.client_id)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// The raw connection keys, as both sides read them.
pub(crate) struct RawConn {
    pub host: String,
    pub port: Option<u16>,
    pub client_id: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub keep_alive: Option<u64>,
    pub clean_session: Option<bool>,
}

impl Conn {
    pub(crate) fn from_raw(ctx: &Ctx, raw: RawConn, at: &YPath) -> Result<Conn, ConfigError> {
        if raw.host.is_empty() {
            return Err(ctx.invalid(&at.key("host"), format!("{} must not be empty", at.key("host"))));
        }
        let conn = Conn {
            host: raw.host,
            port: raw.port.unwrap_or(1883),
            client_id: raw.client_id,
            username: raw.username,
            password: raw.password,
            keep_alive_secs: raw.keep_alive.unwrap_or(60),
            clean_session: raw.clean_session.unwrap_or(false),
        };
        ctx.at_least(&at.key("keep_alive"), conn.keep_alive_secs, 5)?;
        if conn.client_id.as_deref().is_some_and(str::is_empty) {
            return Err(ctx.invalid(&at.key("client_id"), format!("{} must not be empty", at.key("client_id"))));
        }
        Ok(conn)
    }

    /// The client options, with `default_id` when no `client_id` is set.
    pub(crate) fn options(&self, default_id: &str) -> rumqttc::MqttOptions {
        let id = self.client_id.clone().unwrap_or_else(|| default_id.to_string());
        let mut o = rumqttc::MqttOptions::new(id, self.host.clone(), self.port);
        o.set_keep_alive(Duration::from_secs(self.keep_alive_secs)).set_clean_session(self.clean_session).set_max_packet_size(16 << 20, 16 << 20);
        if let Some(u) = &self.username {
            o.set_credentials(u.clone(), self.password.clone().unwrap_or_default());
        }
        o
    }

    /// A client and its event loop, writing each packet at once (TCP_NODELAY: a publish and an
    /// acknowledgement are small writes that Nagle's algorithm would hold for the peer's ACK).
    pub(crate) fn client(options: rumqttc::MqttOptions) -> (rumqttc::AsyncClient, rumqttc::EventLoop) {
        let (client, mut event_loop) = rumqttc::AsyncClient::new(options, 65_536);
        let mut network = rumqttc::NetworkOptions::new();
        network.set_tcp_nodelay(true);
        event_loop.set_network_options(network);
        (client, event_loop)
    }

    pub(crate) fn describe(&self) -> String {
        format!("mqtt://{}:{}", self.host, self.port)
    }
}

/// `qos` (0, 1 or 2) at `path`.
pub(crate) fn qos(ctx: &Ctx, raw: Option<u8>, path: &YPath) -> Result<rumqttc::QoS, ConfigError> {
    match raw.unwrap_or(1) {
        0 => Ok(rumqttc::QoS::AtMostOnce),
        1 => Ok(rumqttc::QoS::AtLeastOnce),
        2 => Ok(rumqttc::QoS::ExactlyOnce),
        n => Err(ctx.invalid(path, format!("{path} must be 0, 1 or 2 (got {n})"))),
    }
}

/// Runs `event_loop` on a thread named `name` until `stop` is set (seen at the next event), handing every event to `on`
/// (which returns what to wait for, if anything); a connection error is logged once per outage and retried every 500 ms.
pub(crate) fn drive(
    name: &str,
    what: String,
    mut event_loop: rumqttc::EventLoop,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    mut on: impl FnMut(rumqttc::Event) -> Option<futures::future::BoxFuture<'static, ()>> + Send + 'static,
) -> anyhow::Result<()> {
    use std::sync::atomic::Ordering::Relaxed;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    std::thread::Builder::new().name(name.into()).spawn(move || {
        rt.block_on(async move {
            let mut down = false;
            while !stop.load(Relaxed) {
                // Never cancelled mid-way: the loop wakes at least every keep-alive (a ping).
                match event_loop.poll().await {
                    Ok(event) => {
                        if down {
                            tracing::info!("{what}: connected again");
                            down = false;
                        }
                        if let Some(wait) = on(event) {
                            wait.await;
                        }
                    }
                    Err(e) => {
                        if !down {
                            tracing::warn!("{what}: {e}; reconnecting every 500 ms");
                            down = true;
                        }
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                }
            }
        })
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {

    use crate::connectors::one_stream as load;

    #[test]
    fn settings_have_defaults_and_are_checked() {
        let ok = load("{type: mqtt, host: 127.0.0.1, topics: ['a/#']}", "{type: mqtt, host: 127.0.0.1, topic: b, qos: 0}").unwrap();
        let input = ok.streams[0].input.get::<super::MqttInputConfig>().unwrap();
        assert_eq!(
            (input.conn.port, input.qos, input.conn.clean_session, input.ack),
            (1883, rumqttc::QoS::AtLeastOnce, false, crate::connectors::input::Ack::AfterCheckpoint)
        );
        assert_eq!(ok.streams[0].output.get::<super::MqttOutputConfig>().unwrap().qos, rumqttc::QoS::AtMostOnce);
        let e = |i: &str, o: &str| load(i, o).unwrap_err().to_string();
        assert!(e("{type: mqtt, host: h, topics: [a], qos: 3}", "{type: drop}").contains("input.qos must be 0, 1 or 2"));
        assert!(e("{type: mqtt, host: h, topics: []}", "{type: drop}").contains("topics"));
        assert!(e("{type: memory, messages: [a]}", "{type: mqtt, host: h, topic: 'a/#'}").contains("output.topic must be a topic name without wildcards"));
        assert!(e("{type: mqtt, host: h, topics: [a], keep_alive: 1}", "{type: drop}").contains("keep_alive"));
    }
}
