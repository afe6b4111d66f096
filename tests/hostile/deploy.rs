//! `publish` and `attach` against an endpoint that is not AWS (issue 25, items 8, 9, 10): one
//! that never answers, one whose answers forge lines or never end, and a function whose
//! variables must stay unprinted. The endpoint is a tiny HTTP server on 127.0.0.1.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use crate::common;
use crate::run;

/// What the server does with one request (method, path).
#[derive(Clone)]
enum Reply {
    /// A JSON body with this status.
    Json(u16, String),
    /// Accept, read the request, and never answer.
    Silent,
    /// A 200 whose body is this many bytes of spaces, declared (Content-Length) or chunked.
    Endless { bytes: u64, declared: bool },
}

type Handler = Arc<dyn Fn(&str, &str) -> Reply + Send + Sync>;

/// Serves `handler` on 127.0.0.1 until the test process ends; returns the endpoint URL.
fn serve(handler: impl Fn(&str, &str) -> Reply + Send + Sync + 'static) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let handler: Handler = Arc::new(handler);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let h = handler.clone();
            std::thread::spawn(move || answer(stream, &h));
        }
    });
    url
}

fn answer(stream: TcpStream, handler: &Handler) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut out = stream;
    loop {
        let mut head = String::new();
        if reader.read_line(&mut head).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = head.split_whitespace();
        let (method, path) = (
            parts.next().unwrap_or("").to_string(),
            parts.next().unwrap_or("").to_string(),
        );
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            if line == "\r\n" {
                break;
            }
            if let Some((k, v)) = line.split_once(':')
                && k.eq_ignore_ascii_case("content-length")
            {
                length = v.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0u8; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        match handler(&method, &path) {
            Reply::Json(status, json) => {
                let head = format!(
                    "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                    json.len()
                );
                if out
                    .write_all(head.as_bytes())
                    .and_then(|_| out.write_all(json.as_bytes()))
                    .is_err()
                {
                    return;
                }
            }
            Reply::Silent => {
                std::thread::sleep(Duration::from_secs(600));
                return;
            }
            Reply::Endless { bytes, declared } => {
                endless(&mut out, bytes, declared);
                return;
            }
        }
    }
}

fn endless(out: &mut TcpStream, bytes: u64, declared: bool) {
    let framing = if declared {
        format!("Content-Length: {bytes}")
    } else {
        "Transfer-Encoding: chunked".to_string()
    };
    let head = format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n{framing}\r\n\r\n");
    if out.write_all(head.as_bytes()).is_err() {
        return;
    }
    let chunk = vec![b' '; 1 << 20];
    let mut sent = 0u64;
    while sent < bytes {
        let piece = if declared {
            out.write_all(&chunk)
        } else {
            out.write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
                .and_then(|_| out.write_all(&chunk))
                .and_then(|_| out.write_all(b"\r\n"))
        };
        if piece.is_err() {
            return;
        }
        sent += chunk.len() as u64;
    }
    if !declared {
        let _ = out.write_all(b"0\r\n\r\n");
    }
}

/// The binary pointed at `endpoint` with fake credentials and nothing of the host's AWS setup.
fn aws_cmd(dir: &Path, endpoint: &str) -> Command {
    let mut c = run::layerbuild(dir);
    for k in [
        "AWS_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_ROLE_ARN",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_DEFAULT_REGION",
        "AWS_ENDPOINT_URL_LAMBDA",
        "AWS_ENDPOINT_URL_S3",
    ] {
        c.env_remove(k);
    }
    c.env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_CONFIG_FILE", "/nonexistent/aws-config")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/aws-credentials")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_MAX_ATTEMPTS", "2");
    c
}

const LAYER_ARN: &str = "arn:aws:lambda:us-east-1:123456789012:layer:otel:3";

fn function_json(wrapper: &str) -> String {
    serde_json::json!({
        "FunctionName": "fn",
        "Runtime": "python3.9",
        "Architectures": ["x86_64"],
        "PackageType": "Zip",
        "RevisionId": "r1",
        "Layers": [],
        "Environment": {"Variables": {"AWS_LAMBDA_EXEC_WRAPPER": wrapper, "DB_PASSWORD": "hunter2"}}
    })
    .to_string()
}

fn layer_json() -> String {
    serde_json::json!({
        "LayerVersionArn": LAYER_ARN,
        "Version": 3,
        "CompatibleRuntimes": ["python3.9"],
        "CompatibleArchitectures": ["x86_64"]
    })
    .to_string()
}

fn attach(dir: &Path, endpoint: &str, extra: &[&str]) -> Command {
    let mut c = aws_cmd(dir, endpoint);
    c.args(["attach", "--function", "fn", "--layer", LAYER_ARN]).args(extra);
    c
}

#[test]
fn attach_dry_run_names_variables_only_never_their_values() {
    let d = tempfile::tempdir().unwrap();
    let endpoint = serve(|_, path| {
        if path.contains("/functions/") {
            Reply::Json(200, function_json("/opt/wrapper-with-a-secret-token-s3cr3t"))
        } else {
            Reply::Json(200, layer_json())
        }
    });
    let out = run::run(attach(d.path(), &endpoint, &["--dry-run"]), Duration::from_secs(60));
    out.expect_code(0, "attach --dry-run");
    assert!(out.stdout.contains("AWS_LAMBDA_EXEC_WRAPPER"), "{}", out.stdout);
    assert!(out.stdout.contains("DB_PASSWORD"), "{}", out.stdout);
    assert!(
        !out.stdout.contains("s3cr3t") && !out.stdout.contains("hunter2"),
        "a variable's value was printed:\n{}",
        out.stdout
    );
}

#[test]
fn an_endpoint_that_never_answers_is_given_up_on_within_the_timeout() {
    let d = tempfile::tempdir().unwrap();
    let endpoint = serve(|_, _| Reply::Silent);
    let out = run::run(
        attach(d.path(), &endpoint, &["--timeout", "3"]),
        Duration::from_secs(60),
    );
    eprintln!("silent endpoint: exit {:?} after {:?}", out.code(), out.elapsed);
    out.expect_code(1, "attach to an endpoint that never answers");
    assert!(out.elapsed < Duration::from_secs(15), "{:?}", out.elapsed);
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    assert!(
        out.stderr.contains("timeout") || out.stderr.contains("timed out"),
        "{}",
        out.stderr
    );
}

/// An endpoint answering GetFunctionConfiguration with 300 MB, declared or chunked.
fn endless_function(declared: bool) {
    let d = tempfile::tempdir().unwrap();
    let endpoint = serve(move |_, _| Reply::Endless {
        bytes: 300 << 20,
        declared,
    });
    let out = run::run_measured(
        attach(d.path(), &endpoint, &["--timeout", "60"]),
        Duration::from_secs(120),
    );
    eprintln!(
        "300 MB answer (declared {declared}): exit {:?} after {:?}, peak RSS {} KiB",
        out.code(),
        out.elapsed,
        out.max_rss_kib
    );
    out.expect_code(1, "an endless answer");
    assert!(out.max_rss_kib < 100 << 10, "peak RSS {} KiB", out.max_rss_kib);
}

#[test]
fn a_300_mb_answer_declared_is_refused_unread() {
    endless_function(true);
}

#[test]
fn a_300_mb_answer_chunked_is_cut_at_the_cap() {
    endless_function(false);
}

#[test]
fn a_line_break_in_a_version_arn_cannot_forge_a_published_line() {
    let d = tempfile::tempdir().unwrap();
    common::fixture(d.path());
    run::run(
        {
            let mut c = run::layerbuild(d.path());
            c.args(["--out", "dist", "--no-bytecode", "--arch", "arm64"]);
            c
        },
        Duration::from_secs(120),
    )
    .expect_code(0, "the fixture builds");
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.path().join("dist/demo-layer-arm64-ver-1-2-3.manifest.json")).unwrap())
            .unwrap();
    let sha = manifest["zip"]["code_sha256"].as_str().unwrap().to_string();
    let forged =
        "arn:aws:lambda:us-east-1:1:layer:x:1 published\nus-east-1 arm64 arn:aws:lambda:us-east-1:666:layer:evil:1";
    let endpoint = serve(move |method, _| {
        if method == "GET" {
            Reply::Json(200, r#"{"LayerVersions": []}"#.into())
        } else {
            Reply::Json(
                201,
                serde_json::json!({"LayerVersionArn": forged, "Version": 1, "Content": {"CodeSha256": sha}})
                    .to_string(),
            )
        }
    });
    let mut c = aws_cmd(d.path(), &endpoint);
    c.args(["publish", "dist/demo-layer-arm64-ver-1-2-3.zip", "--timeout", "30"]);
    let out = run::run(c, Duration::from_secs(60));
    out.expect_code(0, "publish");
    assert_eq!(out.stdout.lines().count(), 1, "a forged line:\n{}", out.stdout);
    assert!(out.stdout.contains("\\n"), "{}", out.stdout);
}
