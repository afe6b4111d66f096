//! A local AWS API for the publish and attach tests: moto's server on 127.0.0.1, from the venv
//! the RIE tests' provisioning keeps, and boto3 (which moto brings) to set up and read back.
#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The Python of the venv holding moto and boto3, as the RIE tests' provisioning makes it: one
/// pinned moto under the cache root, built once under a lock and reused (`make provision` does it
/// ahead of the tests; a test that finds it missing makes it the same way).
fn moto_python() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/rie");
    let o = Command::new("python3")
        .arg("-c")
        .arg("import sys; sys.path.insert(0, sys.argv[1]); import provision; print(provision.moto_python())")
        .arg(&dir)
        .output()
        .expect("python3 runs");
    assert!(
        o.status.success(),
        "provisioning moto failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let out = String::from_utf8(o.stdout).unwrap();
    PathBuf::from(out.lines().last().expect("provision prints the moto python").trim())
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A moto server of this test's own, stopped when dropped.
pub struct Moto {
    child: Child,
    pub endpoint: String,
    python: PathBuf,
    log: tempfile::NamedTempFile,
}

impl Moto {
    pub fn start() -> Moto {
        let python = moto_python();
        let port = free_port();
        let log = tempfile::NamedTempFile::new().unwrap();
        let child = Command::new(&python)
            .args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(log.reopen().unwrap())
            .spawn()
            .expect("moto_server starts");
        let moto = Moto {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
            python,
            log,
        };
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "moto did not listen within 60 s: {}",
                std::fs::read_to_string(moto.log.path()).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        moto
    }

    /// Points a command at this server with fake credentials and nothing from the host's
    /// AWS configuration.
    pub fn env(&self, cmd: &mut assert_cmd::Command) {
        for k in [
            "AWS_PROFILE",
            "AWS_SESSION_TOKEN",
            "AWS_ENDPOINT_URL_LAMBDA",
            "AWS_ENDPOINT_URL_S3",
            "AWS_DEFAULT_REGION",
            "AWS_ROLE_ARN",
            "AWS_WEB_IDENTITY_TOKEN_FILE",
        ] {
            cmd.env_remove(k);
        }
        cmd.env("AWS_ENDPOINT_URL", &self.endpoint)
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_CONFIG_FILE", "/nonexistent/aws-config")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/aws-credentials")
            .env("AWS_EC2_METADATA_DISABLED", "true");
    }

    /// Runs Python with boto3 clients `lam`, `iam` and `s3` for `region` bound to this server;
    /// the snippet calls `out(value)` once, and that value comes back as JSON.
    pub fn boto(&self, region: &str, snippet: &str) -> serde_json::Value {
        let script = format!(
            "import boto3, json, io, zipfile\n\
             kw = dict(endpoint_url={ep:?}, region_name={region:?}, aws_access_key_id='testing', aws_secret_access_key='testing')\n\
             lam = boto3.client('lambda', **kw)\n\
             iam = boto3.client('iam', **kw)\n\
             s3 = boto3.client('s3', **kw)\n\
             def out(v):\n    print(json.dumps(v, default=str))\n\
             def tiny_zip(name='index.py', body='def handler(e, c):\\n    return e\\n'):\n    \
                 b = io.BytesIO()\n    \
                 with zipfile.ZipFile(b, 'w') as z:\n        z.writestr(name, body)\n    \
                 return b.getvalue()\n\
             {snippet}\n",
            ep = self.endpoint,
        );
        let o = Command::new(&self.python)
            .arg("-c")
            .arg(&script)
            .env_remove("AWS_PROFILE")
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "boto3 snippet failed:\n{snippet}\n{}",
            String::from_utf8_lossy(&o.stderr)
        );
        serde_json::from_slice(&o.stdout).unwrap_or(serde_json::Value::Null)
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
