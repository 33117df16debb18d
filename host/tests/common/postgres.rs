//! A PostgreSQL server on 127.0.0.1 for tests: a fresh cluster (`initdb`, trust auth, user
//! `arkflow`) in a temporary directory, started by this test and stopped by its own PID when the
//! handle drops. Run as root, the server runs as the `postgres` user (it refuses root) through
//! `setpriv`, which execs, so the PID is the server's. `bash tests/servers/install.sh` installs
//! PostgreSQL when missing; `ARKFLOW_PG_BIN` names another bin directory.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Postgres {
    child: Child,
    dir: PathBuf,
    bin: PathBuf,
    pub port: u16,
}

/// The directory holding initdb, postgres and psql.
fn bin_dir() -> PathBuf {
    if let Ok(b) = std::env::var("ARKFLOW_PG_BIN") {
        return PathBuf::from(b);
    }
    let mut found: Vec<PathBuf> =
        std::fs::read_dir("/usr/lib/postgresql").into_iter().flatten().flatten().map(|e| e.path().join("bin")).filter(|b| b.join("initdb").exists()).collect();
    found.sort();
    found.pop().expect("PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb): run `bash tests/servers/install.sh`")
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().map(|o| o.stdout.starts_with(b"0\n")).unwrap_or(false)
}

/// `program` as the server's user.
fn command(program: PathBuf) -> Command {
    if is_root() {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=postgres", "--regid=postgres", "--init-groups", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

impl Postgres {
    pub fn start() -> Postgres {
        Self::start_with(&[])
    }

    /// A cluster with extra `postgres` arguments (e.g. `["-c", "max_prepared_transactions=8"]`).
    pub fn start_with(extra: &[&str]) -> Postgres {
        let bin = bin_dir();
        let port = super::free_port();
        let dir = std::env::temp_dir().join(format!("arkflow-pg-{}-{port}", std::process::id()));
        let data = dir.join("data");
        std::fs::create_dir_all(&dir).unwrap();
        if is_root() {
            assert!(Command::new("chown").arg("postgres:postgres").arg(&dir).status().unwrap().success(), "chown {}", dir.display());
        }
        let init =
            command(bin.join("initdb")).arg("-D").arg(&data).args(["-U", "arkflow", "--auth=trust", "-E", "UTF8", "--no-sync"]).output().expect("run initdb");
        assert!(init.status.success(), "initdb: {}", String::from_utf8_lossy(&init.stderr));
        let child = command(bin.join("postgres"))
            .arg("-D")
            .arg(&data)
            .arg("-k")
            .arg(&dir)
            .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-c", "fsync=off", "-c", "max_connections=50"])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start postgres");
        let pg = Postgres { child, dir, bin, port };
        let start = Instant::now();
        while pg.try_psql("SELECT 1").is_err() {
            assert!(start.elapsed() < Duration::from_secs(60), "postgres did not come up on 127.0.0.1:{port}");
            std::thread::sleep(Duration::from_millis(100));
        }
        pg
    }

    /// The connection string the output's `url` takes.
    pub fn url(&self) -> String {
        format!("host=127.0.0.1 port={} user=arkflow dbname=postgres", self.port)
    }

    fn try_psql(&self, sql: &str) -> Result<String, String> {
        let out = Command::new(self.bin.join("psql"))
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", "arkflow", "-d", "postgres", "-At", "-v", "ON_ERROR_STOP=1", "-c", sql])
            .output()
            .map_err(|e| e.to_string())?;
        match out.status.success() {
            true => Ok(String::from_utf8_lossy(&out.stdout).into_owned()),
            false => Err(String::from_utf8_lossy(&out.stderr).into_owned()),
        }
    }

    /// A psql session reading SQL from its stdin (the caller writes, then closes it and waits).
    pub fn session(&self) -> std::process::Child {
        Command::new(self.bin.join("psql"))
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", "arkflow", "-d", "postgres", "-At", "-v", "ON_ERROR_STOP=1"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("start psql")
    }

    /// Runs `sql`; its rows, one per line, columns separated by `|`.
    pub fn psql(&self, sql: &str) -> String {
        self.try_psql(sql).unwrap_or_else(|e| panic!("psql {sql}: {e}"))
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg("-INT").arg(self.child.id().to_string()).status();
        let start = Instant::now();
        while self.child.try_wait().ok().flatten().is_none() && start.elapsed() < Duration::from_secs(20) {
            std::thread::sleep(Duration::from_millis(50));
        }
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
