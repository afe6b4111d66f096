//! End to end: `publish` and `attach` against moto, a local AWS API, and their one-line AWS
//! errors against no AWS at all.
#![cfg(feature = "publish")]

mod common;
#[path = "common/moto.rs"]
mod moto;

use std::path::Path;

use common::*;
use moto::Moto;
use predicates::str::contains;
use serde_json::Value;

const ARM_NAME: &str = "demo-layer-arm64-ver-1-2-3";
const AMD_NAME: &str = "demo-layer-amd64-ver-1-2-3";
const ACCOUNT: &str = "123456789012";

fn built(dir: &Path) {
    fixture(dir);
    layerbuild(dir).args(["--out", "dist"]).assert().success();
}

fn run(moto: &Moto, dir: &Path, args: &[&str]) -> assert_cmd::assert::Assert {
    let mut c = layerbuild(dir);
    moto.env(&mut c);
    c.args(args).assert()
}

fn stdout(a: &assert_cmd::assert::Assert) -> String {
    String::from_utf8_lossy(&a.get_output().stdout).into_owned()
}

fn stderr(a: &assert_cmd::assert::Assert) -> String {
    String::from_utf8_lossy(&a.get_output().stderr).into_owned()
}

fn arn(region: &str, name: &str, version: u32) -> String {
    format!("arn:aws:lambda:{region}:{ACCOUNT}:layer:{name}:{version}")
}

fn code_sha256(dir: &Path, out: &str, name: &str) -> String {
    let m: Value =
        serde_json::from_slice(&std::fs::read(dir.join(out).join(format!("{name}.manifest.json"))).unwrap()).unwrap();
    m["zip"]["code_sha256"].as_str().unwrap().to_string()
}

fn versions(moto: &Moto, region: &str, name: &str) -> Vec<Value> {
    let v = moto.boto(
        region,
        &format!("out(lam.list_layer_versions(LayerName={name:?})['LayerVersions'])"),
    );
    v.as_array().unwrap().clone()
}

fn layer_version(moto: &Moto, region: &str, name: &str, version: u32) -> Value {
    moto.boto(
        region,
        &format!(
            "r = lam.get_layer_version(LayerName={name:?}, VersionNumber={version}); r.pop('ResponseMetadata'); out(r)"
        ),
    )
}

#[test]
#[ignore = "needs moto (pip)"]
fn publishing_twice_reuses_the_version_and_force_publishes_anew() {
    let moto = Moto::start();
    let d = tempfile::tempdir().unwrap();
    built(d.path());
    let first = run(&moto, d.path(), &["publish", "--out", "dist"]).success();
    let text = stdout(&first);
    assert_eq!(
        text,
        format!(
            "us-east-1 arm64 {} published\nus-east-1 x86_64 {} published\n",
            arn("us-east-1", ARM_NAME, 1),
            arn("us-east-1", AMD_NAME, 1)
        )
    );
    let lv = layer_version(&moto, "us-east-1", ARM_NAME, 1);
    assert_eq!(lv["Content"]["CodeSha256"], code_sha256(d.path(), "dist", ARM_NAME));
    assert_eq!(lv["CompatibleArchitectures"], serde_json::json!(["arm64"]));
    assert_eq!(lv["CompatibleRuntimes"], serde_json::json!(["python3.9"]));

    let again = run(&moto, d.path(), &["publish", "--out", "dist", "--json"]).success();
    let doc: Value = serde_json::from_str(&stdout(&again)).unwrap();
    let statuses: Vec<(&str, i64)> = doc["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["status"].as_str().unwrap(), r["version"].as_i64().unwrap()))
        .collect();
    assert_eq!(statuses, [("reused", 1), ("reused", 1)]);
    assert_eq!(versions(&moto, "us-east-1", ARM_NAME).len(), 1);
    let on_disk: Value = serde_json::from_slice(&std::fs::read(d.path().join("dist/published.json")).unwrap()).unwrap();
    assert_eq!(on_disk, doc);

    let forced = run(
        &moto,
        d.path(),
        &["publish", "dist/demo-layer-arm64-ver-1-2-3.zip", "--force"],
    )
    .success();
    assert_eq!(
        stdout(&forced),
        format!("us-east-1 arm64 {} published\n", arn("us-east-1", ARM_NAME, 2))
    );
    assert_eq!(versions(&moto, "us-east-1", ARM_NAME).len(), 2);
    assert_eq!(versions(&moto, "us-east-1", AMD_NAME).len(), 1);
}

#[test]
#[ignore = "needs moto (pip)"]
fn two_regions_get_one_version_each() {
    let moto = Moto::start();
    let d = tempfile::tempdir().unwrap();
    built(d.path());
    // The service's own endpoint variable wins over the general one, which leads nowhere here.
    let mut c = layerbuild(d.path());
    moto.env(&mut c);
    c.env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .env("AWS_ENDPOINT_URL_LAMBDA", &moto.endpoint)
        .args([
            "publish",
            "--out",
            "dist",
            "--region",
            "us-east-1",
            "--region",
            "eu-west-1",
        ]);
    let out = c.assert().success();
    let text = stdout(&out);
    for region in ["us-east-1", "eu-west-1"] {
        for name in [ARM_NAME, AMD_NAME] {
            assert!(text.contains(&format!("{} published", arn(region, name, 1))), "{text}");
            assert_eq!(versions(&moto, region, name).len(), 1, "{region} {name}");
        }
    }
    assert_eq!(text.lines().count(), 4, "{text}");
}

#[test]
#[ignore = "needs moto (pip)"]
fn public_and_account_grants_read_back_from_the_policy() {
    let moto = Moto::start();
    let d = tempfile::tempdir().unwrap();
    built(d.path());
    let args = [
        "publish",
        "dist/demo-layer-arm64-ver-1-2-3.zip",
        "--public",
        "--principal",
        "111122223333",
    ];
    run(&moto, d.path(), &args).success();
    // A rerun finds the statements already there and says so by succeeding.
    run(&moto, d.path(), &args).success().stdout(contains("reused"));
    let policy = moto.boto(
        "us-east-1",
        &format!("out(json.loads(lam.get_layer_version_policy(LayerName={ARM_NAME:?}, VersionNumber=1)['Policy']))"),
    );
    let statements = policy["Statement"].as_array().unwrap();
    assert_eq!(statements.len(), 2, "{policy}");
    let text = policy.to_string();
    assert!(
        text.contains("\"Principal\":\"*\"") || text.contains("\"Principal\":{\"AWS\":\"*\"}"),
        "{text}"
    );
    assert!(text.contains("111122223333"), "{text}");
    assert!(
        statements.iter().all(|s| s["Action"] == "lambda:GetLayerVersion"),
        "{text}"
    );
}

/// The fixture layer with 51 MiB that deflate cannot shrink, so the zip is over 50 MB.
fn padded(dir: &Path) {
    fixture(dir);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let blob: Vec<u8> = (0..51 * 1024 * 1024)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect();
    write(dir, "pad/blob.bin", &blob);
    let spec = std::fs::read_to_string(dir.join("layer.yaml"))
        .unwrap()
        .replace("files:\n", "files:\n  - src: pad/blob.bin\n    dest: python/blob.bin\n");
    write(dir, "layer.yaml", spec.as_bytes());
    layerbuild(dir)
        .args(["--out", "big", "--arch", "arm64"])
        .assert()
        .success();
    let size = std::fs::metadata(dir.join("big").join(ARM64_ZIP)).unwrap().len();
    assert!(size > 52_428_800, "padded zip is only {size} bytes");
}

#[test]
#[ignore = "needs moto (pip)"]
fn big_zip_goes_through_s3_and_a_failed_region_is_finished_by_a_rerun() {
    let moto = Moto::start();
    let d = tempfile::tempdir().unwrap();
    padded(d.path());
    let refused = run(&moto, d.path(), &["publish", "--out", "big"]).code(1);
    let err = stderr(&refused);
    assert!(
        err.contains("over Lambda's direct-upload limit of 52428800 bytes") && err.contains("--s3-bucket"),
        "{err}"
    );
    assert_eq!(
        moto.boto("us-east-1", "out(lam.list_layers()['Layers'])"),
        serde_json::json!([])
    );

    // Only us-east-1 has its bucket: eu-west-1 fails after us-east-1 succeeded.
    moto.boto("us-east-1", "s3.create_bucket(Bucket='layers-us-east-1'); out(1)");
    let args = [
        "publish",
        "--out",
        "big",
        "--s3-bucket",
        "layers-{region}",
        "--region",
        "us-east-1",
        "--region",
        "eu-west-1",
    ];
    let partial = run(&moto, d.path(), &args).code(1);
    assert_eq!(
        stdout(&partial),
        format!("us-east-1 arm64 {} published\n", arn("us-east-1", ARM_NAME, 1))
    );
    let err = stderr(&partial);
    assert!(err.contains("eu-west-1 (arm64)") && err.contains("rerun"), "{err}");
    assert!(err.contains("s3://layers-eu-west-1"), "{err}");
    let doc: Value = serde_json::from_slice(&std::fs::read(d.path().join("big/published.json")).unwrap()).unwrap();
    assert_eq!(doc["layers"].as_array().unwrap().len(), 1);
    assert_eq!(doc["failed"][0]["region"], "eu-west-1");

    moto.boto(
        "eu-west-1",
        "s3.create_bucket(Bucket='layers-eu-west-1', CreateBucketConfiguration={'LocationConstraint': 'eu-west-1'}); out(1)",
    );
    let rerun = run(&moto, d.path(), &args).success();
    let text = stdout(&rerun);
    assert!(
        text.contains(&format!("{} reused", arn("us-east-1", ARM_NAME, 1))),
        "{text}"
    );
    assert!(
        text.contains(&format!("{} published", arn("eu-west-1", ARM_NAME, 1))),
        "{text}"
    );
    assert_eq!(versions(&moto, "us-east-1", ARM_NAME).len(), 1);
    let sha = code_sha256(d.path(), "big", ARM_NAME);
    assert_eq!(
        layer_version(&moto, "eu-west-1", ARM_NAME, 1)["Content"]["CodeSha256"],
        sha
    );
    let keys = moto.boto(
        "eu-west-1",
        "out([o['Key'] for o in s3.list_objects_v2(Bucket='layers-eu-west-1')['Contents']])",
    );
    assert!(
        keys[0]
            .as_str()
            .unwrap()
            .starts_with(&format!("layerbuild/{ARM_NAME}/")),
        "{keys}"
    );
    let doc: Value = serde_json::from_slice(&std::fs::read(d.path().join("big/published.json")).unwrap()).unwrap();
    assert_eq!(doc["layers"].as_array().unwrap().len(), 2);
    assert_eq!(doc["failed"], serde_json::json!([]));
}

#[test]
#[ignore = "needs moto (pip)"]
fn a_tampered_zip_is_refused_before_anything_is_uploaded() {
    let moto = Moto::start();
    let d = tempfile::tempdir().unwrap();
    built(d.path());
    let zip = d.path().join("dist").join(ARM64_ZIP);
    let mut bytes = std::fs::read(&zip).unwrap();
    let mid = bytes.len() / 3;
    bytes[mid] ^= 0x40;
    std::fs::write(&zip, bytes).unwrap();
    let out = run(&moto, d.path(), &["publish", "--out", "dist"]).code(1);
    let err = stderr(&out);
    assert!(err.contains("refusing to publish") && err.contains(ARM64_ZIP), "{err}");
    assert_eq!(
        moto.boto("us-east-1", "out(lam.list_layers()['Layers'])"),
        serde_json::json!([])
    );
    assert!(!d.path().join("dist/published.json").exists());
}

/// A function with the given architecture and runtime, two layers of its own and three variables.
fn function(moto: &Moto, arch: &str, runtime: &str) {
    moto.boto(
        "us-east-1",
        &format!(
            "role = iam.create_role(RoleName='r', AssumeRolePolicyDocument='{{}}')['Role']['Arn']\n\
             a = lam.publish_layer_version(LayerName='first', Content={{'ZipFile': tiny_zip('a.py')}})['LayerVersionArn']\n\
             b = lam.publish_layer_version(LayerName='second', Content={{'ZipFile': tiny_zip('b.py')}})['LayerVersionArn']\n\
             lam.create_function(FunctionName='fn', Runtime={runtime:?}, Role=role, Handler='index.handler',\n\
                 Code={{'ZipFile': tiny_zip()}}, Architectures=[{arch:?}], Layers=[a, b],\n\
                 Environment={{'Variables': {{'A': '1', 'B': 'two', 'C': 'x=y'}}}})\n\
             out(1)"
        ),
    );
}

fn config(moto: &Moto) -> (Vec<String>, Value) {
    let c = moto.boto("us-east-1", "out(lam.get_function_configuration(FunctionName='fn'))");
    let layers = c["Layers"]
        .as_array()
        .map(|v| v.iter().map(|l| l["Arn"].as_str().unwrap().to_string()).collect())
        .unwrap_or_default();
    (layers, c["Environment"]["Variables"].clone())
}

#[test]
#[ignore = "needs moto (pip)"]
fn attach_keeps_every_other_layer_and_variable_and_replaces_its_older_version() {
    let moto = Moto::start();
    function(&moto, "arm64", "python3.9");
    let d = tempfile::tempdir().unwrap();
    built(d.path());
    run(&moto, d.path(), &["publish", "--out", "dist"]).success();
    let (first, second) = (arn("us-east-1", "first", 1), arn("us-east-1", "second", 1));
    let ours = arn("us-east-1", ARM_NAME, 1);

    let dry = run(
        &moto,
        d.path(),
        &[
            "attach",
            "--function",
            "fn",
            "--from",
            "dist/published.json",
            "--dry-run",
        ],
    )
    .success();
    let text = stdout(&dry);
    assert!(text.contains(&format!("  + {ours}\n")), "{text}");
    assert!(
        text.contains("  + AWS_LAMBDA_EXEC_WRAPPER=/opt/otel-instrument"),
        "{text}"
    );
    assert!(text.contains("kept: A, B, C") && text.contains("dry run"), "{text}");
    assert!(!text.contains("x=y"), "values must not be printed: {text}");
    assert_eq!(config(&moto).0, [first.clone(), second.clone()]);

    run(
        &moto,
        d.path(),
        &["attach", "--function", "fn", "--from", "dist/published.json"],
    )
    .success();
    let (layers, env) = config(&moto);
    assert_eq!(layers, [first.clone(), second.clone(), ours]);
    assert_eq!(
        env,
        serde_json::json!({"A": "1", "B": "two", "C": "x=y", "AWS_LAMBDA_EXEC_WRAPPER": "/opt/otel-instrument"})
    );

    run(&moto, d.path(), &["publish", "--out", "dist", "--force"]).success();
    let newer = arn("us-east-1", ARM_NAME, 2);
    let out = run(
        &moto,
        d.path(),
        &["attach", "--function", "fn", "--from", "dist/published.json"],
    )
    .success();
    assert!(stdout(&out).contains(&format!("  - {}\n", arn("us-east-1", ARM_NAME, 1))));
    assert_eq!(config(&moto).0, [first, second, newer.clone()]);
    run(&moto, d.path(), &["attach", "--function", "fn", "--layer", &newer])
        .success()
        .stdout(contains("nothing to change"));
}

#[test]
#[ignore = "needs moto (pip)"]
fn attach_refuses_another_architecture_or_runtime_naming_both() {
    let moto = Moto::start();
    function(&moto, "x86_64", "python3.9");
    let d = tempfile::tempdir().unwrap();
    built(d.path());
    run(&moto, d.path(), &["publish", "dist/demo-layer-arm64-ver-1-2-3.zip"]).success();
    let arm = arn("us-east-1", ARM_NAME, 1);
    let out = run(&moto, d.path(), &["attach", "--function", "fn", "--layer", &arm]).code(1);
    let err = stderr(&out);
    assert!(
        err.contains(&format!("function `fn` is x86_64 but layer {arm} is for arm64")),
        "{err}"
    );
    let out = run(
        &moto,
        d.path(),
        &["attach", "--function", "fn", "--from", "dist/published.json"],
    )
    .code(1);
    let err = stderr(&out);
    assert!(
        err.contains("no layer for us-east-1 x86_64") && err.contains("us-east-1 arm64"),
        "{err}"
    );
    let (layers, env) = config(&moto);
    assert_eq!(layers.len(), 2);
    assert!(env.get("AWS_LAMBDA_EXEC_WRAPPER").is_none());

    moto.boto(
        "us-east-1",
        "lam.update_function_configuration(FunctionName='fn', Runtime='python3.12'); out(1)",
    );
    let amd = d.path().join("dist").join(AMD64_ZIP);
    run(&moto, d.path(), &["publish", amd.to_str().unwrap()]).success();
    let out = run(
        &moto,
        d.path(),
        &["attach", "--function", "fn", "--layer", &arn("us-east-1", AMD_NAME, 1)],
    )
    .code(1);
    let err = stderr(&out);
    assert!(
        err.contains("runs python3.12") && err.contains("supports python3.9"),
        "{err}"
    );
}

/// Publishes with AWS nowhere: `endpoint` is a closed local port.
fn publish_offline(dir: &Path, endpoint: &str) -> assert_cmd::Command {
    let mut c = layerbuild(dir);
    for k in [
        "AWS_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_ROLE_ARN",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_DEFAULT_REGION",
    ] {
        c.env_remove(k);
    }
    c.env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_CONFIG_FILE", "/nonexistent/aws-config")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/aws-credentials")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_MAX_ATTEMPTS", "2")
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .args(["publish", "dist/demo-layer-arm64-ver-1-2-3.zip"]);
    c
}

fn one_line_error(mut c: assert_cmd::Command, expect: &str) {
    let a = c.assert().code(1);
    let err = stderr(&a);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("layerbuild: ") && err.contains(expect), "{err}");
}

#[test]
fn aws_failures_are_one_clear_line() {
    let d = tempfile::tempdir().unwrap();
    built(d.path());
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://127.0.0.1:{}", l.local_addr().unwrap().port())
    };
    one_line_error(
        publish_offline(d.path(), &closed),
        &format!("publish {ARM_NAME} in us-east-1: no AWS credentials found: set AWS_PROFILE"),
    );
    let mut c = publish_offline(d.path(), &closed);
    c.env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing");
    one_line_error(c, &format!("publish {ARM_NAME} in us-east-1: cannot reach AWS ("));
    let mut c = publish_offline(d.path(), &closed);
    c.env_remove("AWS_REGION");
    one_line_error(c, "no AWS region: pass --region");
    // Mistakes in the command line itself are usage errors: exit 2, before any AWS call.
    let mut c = publish_offline(d.path(), &closed);
    c.args(["--layer-name", "bad.name"])
        .assert()
        .code(2)
        .stderr(contains("not a valid layer name"));
    let mut c = layerbuild(d.path());
    c.args(["publish", "--out", "nowhere"])
        .assert()
        .code(2)
        .stderr(contains("nothing to publish"));
}
