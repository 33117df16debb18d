//! A Redis server on 127.0.0.1 for tests (Debian's redis-server), without persistence, started
//! by this test and stopped by its own PID when the handle drops. `bash tests/servers/install.sh`
//! installs it when missing.

use super::server::Server;
use std::process::Command;
use std::time::Duration;

pub struct Redis {
    _server: Server,
    pub port: u16,
}

impl Redis {
    pub fn start() -> Redis {
        let bin = Server::binary("redis-server", &["/usr/bin/redis-server", "/usr/sbin/redis-server"]);
        let (port, dir) = Server::prepare("redis");
        let mut cmd = Command::new(bin);
        cmd.args(["--bind", "127.0.0.1", "--port", &port.to_string(), "--save", "", "--appendonly", "no", "--daemonize", "no", "--dir"]).arg(&dir);
        Redis { _server: Server::spawn("redis-server", cmd, port, dir), port }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    pub fn connection(&self) -> redis::RedisResult<redis::Connection> {
        redis::Client::open(self.url())?.get_connection_with_timeout(Duration::from_secs(2))
    }

    /// Runs one command.
    pub fn query<T: redis::FromRedisValue>(&self, args: &[&str]) -> T {
        let mut cmd = redis::cmd(args[0]);
        for a in &args[1..] {
            cmd.arg(*a);
        }
        cmd.query(&mut self.connection().unwrap()).unwrap()
    }
}
