//! A Redis server on 127.0.0.1 for tests (Debian's redis-server), without persistence, started
//! by this test and stopped by its own PID when the handle drops. `bash tests/servers/install.sh`
//! installs it when missing.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Redis {
    child: Child,
    dir: PathBuf,
    pub port: u16,
}

impl Redis {
    pub fn start() -> Redis {
        let bin = ["/usr/bin/redis-server", "/usr/sbin/redis-server"].into_iter().map(PathBuf::from).find(|p| p.exists());
        let bin = bin.expect("redis-server is not installed: run `bash tests/servers/install.sh`");
        let port = super::free_port();
        let dir = std::env::temp_dir().join(format!("arkflow-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let child = Command::new(bin)
            .args(["--bind", "127.0.0.1", "--port", &port.to_string(), "--save", "", "--appendonly", "no", "--daemonize", "no", "--dir"])
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        let r = Redis { child, dir, port };
        let start = Instant::now();
        while r.connection().is_err() {
            assert!(start.elapsed() < Duration::from_secs(20), "redis-server did not come up on 127.0.0.1:{port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        r
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

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
