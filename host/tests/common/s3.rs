//! Real S3-compatible servers on 127.0.0.1 for tests: `moto_server` (in memory; implements
//! create-only writes correctly) and `garage` (persistent; ignores conditional headers).
//! `bash tests/servers/install.sh` installs both. Each server is a process this test started;
//! it is stopped by its own PID when the handle drops.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where and how to reach one S3 server: enough for an `S3Config` or a YAML `s3_config` block.
#[derive(Clone)]
pub struct S3Target {
    pub endpoint: String,
    pub region: String,
    pub bucket: String,
    pub access_key_id: String,
    pub secret_access_key: String,
}

impl std::fmt::Debug for S3Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Target").field("endpoint", &self.endpoint).field("region", &self.region).field("bucket", &self.bucket).finish_non_exhaustive()
    }
}

impl S3Target {
    pub fn s3_config(&self, prefix: &str) -> arkflow::config::S3Config {
        let mut c = arkflow::config::S3Config::new(self.bucket.clone());
        c.region = self.region.clone();
        c.prefix = prefix.to_string();
        c.endpoint_url = Some(self.endpoint.clone());
        c.access_key_id = Some(self.access_key_id.clone());
        c.secret_access_key = Some(self.secret_access_key.clone());
        c
    }

    /// A YAML flow mapping for `s3_config: <this>`, usable at any indentation.
    pub fn yaml_flow(&self, prefix: &str) -> String {
        format!(
            "{{bucket: {}, region: {}, prefix: {}, endpoint_url: {}, access_key_id: {}, secret_access_key: {}}}",
            q(&self.bucket),
            q(&self.region),
            q(prefix),
            q(&self.endpoint),
            q(&self.access_key_id),
            q(&self.secret_access_key)
        )
    }

    /// The block `s3_config:` with its fields, every line indented by `indent` spaces (the
    /// fields by two more), ending with a newline.
    pub fn yaml_block(&self, indent: usize, prefix: &str) -> String {
        let p = " ".repeat(indent);
        format!(
            "{p}s3_config:\n{p}  bucket: {}\n{p}  region: {}\n{p}  prefix: {}\n{p}  endpoint_url: {}\n{p}  access_key_id: {}\n{p}  secret_access_key: {}\n",
            q(&self.bucket),
            q(&self.region),
            q(prefix),
            q(&self.endpoint),
            q(&self.access_key_id),
            q(&self.secret_access_key)
        )
    }
}

/// A double-quoted YAML scalar.
fn q(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// A port free on 127.0.0.1 now (this file is also used alone, by the restore bench).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn on_path(cmd: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| std::env::split_paths(&paths).map(|d| d.join(cmd)).find(|p| p.is_file()))
}

/// One plain HTTP/1.1 request without a body; returns the status code.
pub fn http(port: u16, method: &str, path: &str) -> std::io::Result<u16> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(s, "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")?;
    let mut head = [0u8; 12];
    s.read_exact(&mut head)?;
    let text = String::from_utf8_lossy(&head);
    text.get(9..12).and_then(|c| c.parse().ok()).ok_or_else(|| std::io::Error::other(format!("bad status line {text:?}")))
}

fn kill(pid: u32, sig: &str) {
    let ok = Command::new("kill").arg(format!("-{sig}")).arg(pid.to_string()).status().map(|s| s.success()).unwrap_or(false);
    assert!(ok, "kill -{sig} {pid}");
}

/// `moto_server` on 127.0.0.1 with bucket `arkflow-test` (keys "test"/"test", region us-east-1).
pub struct Moto {
    pub endpoint: String,
    pub port: u16,
    pub target: S3Target,
    child: Child,
}

impl Moto {
    pub const BUCKET: &'static str = "arkflow-test";

    pub fn start() -> Moto {
        // moto_server from PATH (pip's console script), else the module through python3.
        let mut cmd = match std::env::var_os("MOTO_SERVER").map(PathBuf::from).or_else(|| on_path("moto_server")) {
            Some(bin) => Command::new(bin),
            None => {
                let mut c = Command::new("python3");
                c.args(["-m", "moto.server"]);
                c
            }
        };
        let port = free_port();
        let child = cmd
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto_server: run `bash tests/servers/install.sh`");
        let endpoint = format!("http://127.0.0.1:{port}");
        let target = S3Target {
            endpoint: endpoint.clone(),
            region: "us-east-1".into(),
            bucket: Self::BUCKET.into(),
            access_key_id: "test".into(),
            secret_access_key: "test".into(),
        };
        let mut moto = Moto { endpoint, port, target, child };
        let start = Instant::now();
        loop {
            if let Ok(code) = http(port, "PUT", &format!("/{}", Self::BUCKET)) {
                assert_eq!(code, 200, "creating bucket on moto");
                break;
            }
            if let Ok(Some(status)) = moto.child.try_wait() {
                panic!("moto_server exited early: {status}");
            }
            assert!(start.elapsed() < Duration::from_secs(60), "moto_server did not answer on port {port} within 60 s");
            std::thread::sleep(Duration::from_millis(100));
        }
        moto
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGSTOP: the server keeps its sockets but answers nothing (an outage without data loss).
    pub fn pause(&self) {
        kill(self.pid(), "STOP");
    }

    pub fn resume(&self) {
        kill(self.pid(), "CONT");
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill(); // SIGKILL to this PID; works on a stopped process too
        let _ = self.child.wait();
    }
}

/// A single-node garage started by `tests/servers/garage.sh` in a temp directory.
pub struct Garage {
    pub target: S3Target,
    pub pid: u32,
    dir: tempfile::TempDir,
}

impl Garage {
    pub fn start() -> Garage {
        let dir = tempfile::tempdir().unwrap();
        let script = repo_root().join("tests/servers/garage.sh");
        let out = Command::new("bash").arg(&script).arg("start").arg(dir.path()).stdin(Stdio::null()).output().expect("run garage.sh");
        let env = std::fs::read_to_string(dir.path().join("env")).unwrap_or_default();
        let pid = std::fs::read_to_string(dir.path().join("garage.pid")).ok().and_then(|p| p.trim().parse::<u32>().ok());
        let garage_dir = dir.path().display().to_string();
        if !out.status.success() {
            if let Some(pid) = pid {
                let _ = Command::new("kill").arg("-KILL").arg(pid.to_string()).status();
            }
            panic!(
                "garage.sh start {garage_dir} failed ({}): {}\n{}\n(run `bash tests/servers/install.sh`)",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let get =
            |k: &str| env.lines().find_map(|l| l.strip_prefix(&format!("{k}="))).unwrap_or_else(|| panic!("{k} missing from {garage_dir}/env")).to_string();
        Garage {
            target: S3Target {
                endpoint: get("endpoint"),
                region: get("region"),
                bucket: get("bucket"),
                access_key_id: get("access_key_id"),
                secret_access_key: get("secret_access_key"),
            },
            pid: pid.expect("garage.pid"),
            dir,
        }
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Garage {
    fn drop(&mut self) {
        let _ = Command::new("bash").arg(repo_root().join("tests/servers/garage.sh")).arg("stop").arg(self.dir.path()).stdout(Stdio::null()).status();
    }
}
