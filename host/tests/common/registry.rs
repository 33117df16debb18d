//! A Confluent-compatible schema registry on 127.0.0.1 for tests: Karapace 3.16.0 (installed by
//! `bash tests/servers/install.sh` into `$HOME/.cache/arkflow-karapace-3.16.0`, or
//! `ARKFLOW_KARAPACE_VENV`) keeping its schemas on a tansu broker of its own
//! (`common::kafka::Tansu`); both stopped by their own PIDs when the handle drops. See
//! tests/servers/karapace/README.md.

use super::kafka::Tansu;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Registry {
    child: Child,
    dir: tempfile::TempDir,
    pub port: u16,
    /// Dropped after the registry (fields drop in order).
    _broker: Tansu,
}

fn karapace_bin() -> PathBuf {
    let venv = std::env::var_os("ARKFLOW_KARAPACE_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/arkflow-karapace-3.16.0"));
    let bin = venv.join("bin/karapace");
    assert!(bin.exists(), "{} is missing: run `bash tests/servers/install.sh`", bin.display());
    bin
}

impl Registry {
    pub fn start() -> Registry {
        Self::start_with_auth(None)
    }

    /// A registry that admits only `user` with `password` (HTTP basic auth; karapace's
    /// `registry_authfile`, the user hashed by its own `karapace_mkpasswd`), when given.
    pub fn start_with_auth(user: Option<(&str, &str)>) -> Registry {
        let broker = Tansu::start();
        let dir = tempfile::tempdir().unwrap();
        let port = super::free_port();
        let mut config = serde_json::json!({
            "karapace_registry": true, "karapace_rest": false,
            "bootstrap_uri": broker.broker, "host": "127.0.0.1", "port": port,
            "advertised_hostname": "127.0.0.1", "advertised_port": port,
            "topic_name": "_schemas", "group_id": format!("schema-registry-{}-{port}", std::process::id()),
            "replication_factor": 1, "compatibility": "BACKWARD", "log_level": "WARNING",
            "protobuf_runtime_directory": dir.path().join("pb"),
        });
        if let Some((name, password)) = user {
            let mkpasswd = karapace_bin().with_file_name("karapace_mkpasswd");
            let out = Command::new(mkpasswd).args(["-u", name, "-a", "sha256", password]).output().expect("run karapace_mkpasswd");
            assert!(out.status.success(), "karapace_mkpasswd: {}", String::from_utf8_lossy(&out.stderr));
            let entry: serde_json::Value = serde_json::from_slice(&out.stdout).expect("karapace_mkpasswd prints a user");
            let acl = serde_json::json!({ "users": [entry], "permissions": [{ "username": name, "operation": "Write", "resource": ".*" }] });
            let file = dir.path().join("auth.json");
            std::fs::write(&file, acl.to_string()).unwrap();
            config["registry_authfile"] = serde_json::json!(file);
        }
        std::fs::write(dir.path().join("karapace.json"), config.to_string()).unwrap();
        let log = std::fs::File::create(dir.path().join("karapace.log")).unwrap();
        let child = Command::new(karapace_bin())
            .arg("karapace.json")
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start karapace");
        let mut r = Registry { child, dir, port, _broker: broker };
        let start = Instant::now();
        loop {
            let (code, body) = super::http_request_or(port, "GET", "/_health");
            if code == 200 && body.contains("\"schema_registry_ready\":true") {
                break;
            }
            if let Ok(Some(status)) = r.child.try_wait() {
                panic!("karapace exited early: {status}: {}", r.log());
            }
            assert!(start.elapsed() < Duration::from_secs(60), "karapace was not ready within 60 s: {}", r.log());
            std::thread::sleep(Duration::from_millis(100));
        }
        r
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("karapace.log")).unwrap_or_default()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let _ = self.child.wait();
    }
}
