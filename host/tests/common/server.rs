//! A server process a test starts on 127.0.0.1 (redis-server, nats-server, mosquitto): found at
//! its Debian install paths, given a free port and a scratch directory, waited for until it
//! accepts connections, and stopped by its own PID (SIGTERM, then waited for) when the handle
//! drops, its directory removed. `bash tests/servers/install.sh` installs the servers.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Server {
    child: Child,
    pub dir: PathBuf,
    pub port: u16,
}

impl Server {
    /// A free port and a fresh scratch directory for server `name`, before it starts.
    pub fn prepare(name: &str) -> (u16, PathBuf) {
        let port = super::free_port();
        let dir = std::env::temp_dir().join(format!("arkflow-{name}-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        (port, dir)
    }

    /// The first of `paths` that exists: the server's binary.
    pub fn binary(name: &str, paths: &[&str]) -> PathBuf {
        let found = paths.iter().map(PathBuf::from).find(|p| p.exists());
        found.unwrap_or_else(|| panic!("{name} is not installed: run `bash tests/servers/install.sh`"))
    }

    /// Runs `cmd` (output discarded) and waits until it accepts TCP connections on `port`.
    pub fn spawn(name: &str, mut cmd: Command, port: u16, dir: PathBuf) -> Server {
        let child = cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap_or_else(|e| panic!("start {name}: {e}"));
        let server = Server { child, dir, port };
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(start.elapsed() < Duration::from_secs(20), "{name} did not come up on 127.0.0.1:{port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
