//! NATS (async-nats) on both sides: the `nats` input, a JetStream consumer (`input.rs`, its
//! fetch loop in `fetch.rs`), and the `nats` output, JetStream or core publishing (`output.rs`),
//! and the connection settings they share (`Conn`): the server `url` and credentials (`username`
//! and `password`, or `token`). Plain TCP (no TLS).
//!
//! Contract: each side owns one client, connected on the process's I/O runtime
//! (`state::backend::io_runtime`), which keeps the connection alive and reconnects by itself; a
//! server that is down at start is waited for (the client retries the first connection too), and
//! requests made while it is down fail with their timeout.

mod fetch;
pub mod input;
pub mod output;

pub use input::NatsInputConfig;
pub use output::NatsOutputConfig;

use crate::config::{ConfigError, Ctx, YPath};
use std::time::Duration;

/// The connection settings of either side.
#[derive(Clone, PartialEq)]
pub struct Conn {
    /// `nats://host:port` (required; several servers separated by commas)
    pub url: String,
    pub username: Option<String>,
    pub password: Option<String>,
    pub token: Option<String>,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn").field("url", &self.url).field("username", &self.username).finish_non_exhaustive()
    }
}

impl Conn {
    pub(crate) fn from_raw(
        ctx: &Ctx,
        url: String,
        username: Option<String>,
        password: Option<String>,
        token: Option<String>,
        at: &YPath,
    ) -> Result<Conn, ConfigError> {
        let url_at = at.key("url");
        let servers: Vec<&str> = url.split(',').map(str::trim).collect();
        for s in &servers {
            match s.parse::<async_nats::ServerAddr>() {
                Ok(a) if a.scheme() == "nats" => {}
                Ok(_) => return Err(ctx.invalid(&url_at, format!("{url_at}: `{s}`: only nats:// servers are supported (no TLS or websockets)"))),
                Err(e) => return Err(ctx.invalid(&url_at, format!("{url_at}: `{s}` is not a NATS server address like nats://127.0.0.1:4222 ({e})"))),
            }
        }
        if token.is_some() && username.is_some() {
            return Err(ctx.invalid(&at.key("token"), format!("{} and {} exclude each other", at.key("token"), at.key("username"))));
        }
        if password.is_some() && username.is_none() {
            return Err(ctx.invalid(&at.key("password"), format!("{} needs {}", at.key("password"), at.key("username"))));
        }
        Ok(Conn { url, username, password, token })
    }

    /// Connects (on the I/O runtime) as client `name`; a server that is not up yet is retried.
    pub(crate) async fn connect(&self, name: &str) -> anyhow::Result<async_nats::Client> {
        let mut o = async_nats::ConnectOptions::new().name(name).connection_timeout(Duration::from_secs(5)).retry_on_initial_connect();
        if let Some(u) = &self.username {
            o = o.user_and_password(u.clone(), self.password.clone().unwrap_or_default());
        }
        if let Some(t) = &self.token {
            o = o.token(t.clone());
        }
        let servers: Vec<async_nats::ServerAddr> = self.url.split(',').map(|s| s.trim().parse()).collect::<Result<_, _>>()?;
        o.connect(servers).await.map_err(|e| anyhow::anyhow!("{}: cannot connect: {e}", self.describe()))
    }

    pub(crate) fn describe(&self) -> String {
        self.url.clone()
    }
}

#[cfg(test)]
mod tests {

    use crate::connectors::one_stream as load;

    #[test]
    fn settings_have_defaults_and_are_checked() {
        let ok = load("{type: nats, url: 'nats://127.0.0.1:4222', stream: S}", "{type: nats, url: 'nats://127.0.0.1:4222', subject: out}").unwrap();
        let input = ok.streams[0].input.get::<super::NatsInputConfig>().unwrap();
        assert_eq!((input.durable.as_deref(), input.ack_wait_ms, input.deliver), (None, 60_000, super::input::Deliver::All));
        let output = ok.streams[0].output.get::<super::NatsOutputConfig>().unwrap();
        assert!(output.jetstream);
        let e = |i: &str, o: &str| load(i, o).unwrap_err().to_string();
        assert!(e("{type: nats, url: 'http://x:1', stream: S}", "{type: drop}").contains("input.url"));
        assert!(e("{type: nats, url: 'nats://h:1', stream: ''}", "{type: drop}").contains("input.stream"));
        assert!(e("{type: nats, url: 'nats://h:1', stream: 'a.b'}", "{type: drop}").contains("input.stream"));
        assert!(e("{type: nats, url: 'nats://h:1', stream: S, deliver: first}", "{type: drop}").contains("input.deliver"));
        assert!(e("{type: nats, url: 'nats://h:1', stream: S, token: t, username: u}", "{type: drop}").contains("exclude each other"));
        assert!(e("{type: memory, messages: [a]}", "{type: nats, url: 'nats://h:1', subject: 'a.*'}").contains("output.subject"));
    }
}
