"""Runs one function under AWS's Runtime Interface Emulator inside private namespaces.

Started by the tests as
    unshare --mount --net --pid --fork --mount-proc --kill-child -- PYTHON sandbox.py SPEC.json
it is the first process of fresh mount, network and PID namespaces. When it exits, the kernel
kills every process left in them and drops every mount, so nothing outlives a run.

It lays out the file system as Lambda has it (read-only binds; the host is untouched):
    /opt          the unpacked layer
    /var/task     the function
    /var/runtime  the runtime's bootstrap and packages (awslambdaric, boto3, ...)
    /var/lang     the Python installation that plays the runtime's interpreter
and brings up loopback, the only network there is (sandbox.localdomain resolves to it, as
Lambda's sandbox name does). The emulator gets a binfmt_misc of its own, empty as Lambda has
it (without_binfmt_handlers). On 127.0.0.1 it serves what the function
and its collector talk to: an HTTP target the function calls, an OTLP/HTTP receiver, and
moto's server (X-Ray, S3), each backend optionally answering late. Then it starts the
emulator with a clean Lambda environment, sends the invocations one by one (timed), sends
SIGTERM, and writes everything it saw to the result file named in the spec. It judges
nothing: the tests do.
"""

import ctypes
import fcntl
import gzip
import http.client
import http.server
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

MS_RDONLY = 1
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384

LAMBDA_MOUNTS = ("task", "runtime", "lang")
# Bounds of one run's steps. The function's own timeout (30 s) ends a stuck invoke first.
COLD_INVOKE_TIMEOUT = 120
WARM_INVOKE_TIMEOUT = 60
SHUTDOWN_TIMEOUT = 20

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong,
                        ctypes.c_char_p]


def log(message):
    sys.stderr.write("sandbox: %s\n" % message)
    sys.stderr.flush()


# ------------------------------------------------------------------------ the namespaces


def _mount(source, target, fstype=None, flags=0, data=None):
    enc = lambda v: v.encode() if isinstance(v, str) else v  # noqa: E731
    if _libc.mount(enc(source), enc(str(target)), enc(fstype), flags, enc(data)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, "mount %s on %s: %s" % (source, target, os.strerror(err)))


def bind_readonly(source, target):
    _mount(str(source), target, None, MS_BIND | MS_REC)
    _mount(None, target, None, MS_REMOUNT | MS_BIND | MS_RDONLY)


def mount_tree(folders, target):
    """Mount one folder read-only at `target`, or several as one read-only overlay (the
    first on top), which is how the tests add a few changed files to a large tree."""
    if len(folders) == 1:
        bind_readonly(folders[0], target)
        return
    for folder in folders:
        if ":" in folder or "," in folder:
            raise ValueError("overlay layer %r: ':' and ',' cannot be used in its path" % folder)
    _mount("overlay", target, "overlay", MS_RDONLY, "lowerdir=" + ":".join(folders))


def layout_var(scratch: Path, binds: dict):
    """Cover /var with a tmpfs that holds the host's /var entries plus task, runtime, lang."""
    scratch.mkdir(parents=True, exist_ok=True)
    _mount("tmpfs", scratch, "tmpfs", 0, "mode=0755")
    for entry in os.scandir("/var"):
        if entry.name in LAMBDA_MOUNTS:
            continue
        target = scratch / entry.name
        if entry.is_symlink():
            os.symlink(os.readlink(entry.path), target)
        elif entry.is_dir():
            target.mkdir()
            _mount(entry.path, target, None, MS_BIND | MS_REC)
        else:
            target.touch()
            _mount(entry.path, target, None, MS_BIND)
    for name, folders in binds.items():
        (scratch / name).mkdir()
        mount_tree(folders, scratch / name)
    _mount(str(scratch), "/var", None, MS_BIND | MS_REC)


def sandbox_hosts(scratch: Path):
    """Make the name Lambda gives the sandbox resolve, as it does on Lambda: extensions
    listen on sandbox.localdomain for the Telemetry API. Only this namespace sees it."""
    hosts = scratch / "hosts"
    original = Path("/etc/hosts").read_text() if Path("/etc/hosts").exists() else ""
    hosts.write_text(original.rstrip("\n") + "\n127.0.0.1\tsandbox.localdomain sandbox\n")
    _mount(str(hosts), "/etc/hosts", None, MS_BIND)


def loopback_up():
    siocgifflags, siocsifflags, iff_up = 0x8913, 0x8914, 0x1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sH14s", b"lo", 0, b"")
        flags = struct.unpack("16sH", fcntl.ioctl(sock, siocgifflags, request)[:18])[1]
        fcntl.ioctl(sock, siocsifflags, struct.pack("16sH14s", b"lo", flags | iff_up, b""))


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -------------------------------------------------------------------------- the backends


class Server:
    """A threaded HTTP server on 127.0.0.1: `handle(method, path, headers, body)` answers
    each request (bodies come with a Content-Length: what the collector and boto3 send)
    with (status, headers, body)."""

    def __init__(self, handle):

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                status, headers, reply = handle(self.command, self.path, dict(self.headers), body)
                self.send_response(status)
                for key, value in headers.items():
                    if key.lower() not in ("content-length", "transfer-encoding", "connection"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _serve

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = "http://127.0.0.1:%d" % self.port
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


def target_server(hits):
    def handle(method, path, headers, body):
        hits.append({"method": method, "path": path, "traceparent": headers.get("traceparent"),
                     "x_amzn_trace_id": headers.get("X-Amzn-Trace-Id")})
        return 200, {"Content-Type": "text/plain"}, b"pong"
    return Server(handle)


def otlp_receiver(received, delay_s):
    """Accepts OTLP/HTTP JSON; answers `delay_s` late, like a backend far away."""
    def handle(method, path, headers, body):
        arrived = time.time()
        time.sleep(delay_s)
        try:
            if headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            document = json.loads(body.decode() or "null")
        except (ValueError, OSError):
            document = {"undecodable": body[:200].hex()}
        received.append({"path": path, "arrived": arrived,
                         "content_type": headers.get("Content-Type"), "body": document})
        return 200, {"Content-Type": "application/json"}, b"{}"
    return Server(handle)


def delaying_proxy(upstream_port, delay_s, seen):
    """Forwards every request to 127.0.0.1:upstream_port, `delay_s` late."""
    def handle(method, path, headers, body):
        seen.append({"method": method, "path": path, "at": time.time()})
        time.sleep(delay_s)
        conn = http.client.HTTPConnection("127.0.0.1", upstream_port, timeout=30)
        try:
            conn.request(method, path, body=body, headers=headers)
            resp = conn.getresponse()
            return resp.status, dict(resp.getheaders()), resp.read()
        finally:
            conn.close()
    return Server(handle)


def wait_for_port(port, seconds, proc=None):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        with socket.socket() as sock:
            sock.settimeout(0.5)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return True
        time.sleep(0.05)
    return False


def start_moto(workdir: Path):
    port = free_port()
    out = open(workdir / "moto.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p",
                             str(port)], stdout=out, stderr=subprocess.STDOUT,
                            start_new_session=True)
    if not wait_for_port(port, 60, proc):
        raise RuntimeError("moto's server did not listen on 127.0.0.1:%d within 60 s "
                           "(see %s)" % (port, workdir / "moto.log"))
    return proc, port


def aws_client(service, port, region):
    import boto3  # from the moto venv that runs this script

    return boto3.client(service, endpoint_url="http://127.0.0.1:%d" % port, region_name=region,
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def read_xray(port, region, since):
    """Every trace moto's X-Ray holds since `since`, with the segment documents parsed."""
    xray = aws_client("xray", port, region)
    ids, token = [], None
    while True:
        kwargs = {"StartTime": since - 60, "EndTime": time.time() + 60}
        if token:
            kwargs["NextToken"] = token
        page = xray.get_trace_summaries(**kwargs)
        ids.extend(summary["Id"] for summary in page.get("TraceSummaries", []))
        token = page.get("NextToken")
        if not token:
            break
    traces = []
    for start in range(0, len(ids), 5):
        for trace in xray.batch_get_traces(TraceIds=ids[start:start + 5]).get("Traces", []):
            traces.append({"id": trace.get("Id"),
                           "segments": [segment["Document"] for segment in trace["Segments"]]})
    return {"trace_ids": ids, "traces": traces}


# ---------------------------------------------------------------------------- invoking


def invoke(port, event, timeout):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    started = time.monotonic()
    try:
        conn.request("POST", "/2015-03-31/functions/function/invocations",
                     body=json.dumps(event).encode(), headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        body = resp.read().decode("utf-8", "replace")
        status = resp.status
    except (OSError, http.client.HTTPException) as exc:
        status, body = None, "%s: %s" % (type(exc).__name__, exc)
    finally:
        conn.close()
    elapsed_ms = (time.monotonic() - started) * 1000
    try:
        parsed = json.loads(body)
    except ValueError:
        parsed = None
    return {"status": status, "body": body, "json": parsed, "ms": round(elapsed_ms, 1),
            "started": time.time() - elapsed_ms / 1000}


def lambda_env(spec, rie_dir):
    """The emulator's whole environment, which it hands on to the runtime and extensions:
    what Lambda's python3.8/3.9 runtimes see (PATH, LD_LIBRARY_PATH, PYTHONPATH=/var/runtime
    included), fake credentials, and the spec's own variables."""
    env = {
        "PATH": "/var/lang/bin:/usr/local/bin:/usr/bin/:/bin:/opt/bin",
        "LD_LIBRARY_PATH": "/var/lang/lib:/lib64:/usr/lib64:/var/runtime:/var/runtime/lib:"
                           "/var/task:/var/task/lib:/opt/lib",
        "LANG": "en_US.UTF-8",
        "TZ": ":UTC",
        "LAMBDA_TASK_ROOT": "/var/task",
        "LAMBDA_RUNTIME_DIR": "/var/runtime",
        "PYTHONPATH": "/var/runtime",
        "AWS_REGION": spec["region"],
        "AWS_DEFAULT_REGION": spec["region"],
        "AWS_LAMBDA_FUNCTION_NAME": spec["function_name"],
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
        "AWS_LAMBDA_FUNCTION_TIMEOUT": "30",
        "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/" + spec["function_name"],
        "AWS_LAMBDA_LOG_STREAM_NAME": "2026/11/28/[$LATEST]0123456789abcdef0123456789abcdef",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "_HANDLER": "app.handler",
        "AWS_LAMBDA_EXEC_WRAPPER": "/opt/otel-instrument",
        # An empty home, so no SDK reads the host's ~/.aws or other dot files.
        "HOME": str(rie_dir),
    }
    env.update(spec.get("env", {}))
    return env


def start_backends(spec, workdir, result, delay_s):
    """The HTTP target, the OTLP receiver and (when asked) moto, with a late X-Ray proxy.
    Returns moto's process (or None) and the URLs the function and the config use."""
    target = target_server(result["target_hits"])
    receiver = otlp_receiver(result["otlp"], delay_s)
    result["ports"].update(target=target.port, otlp=receiver.port)
    urls = {"target_url": target.url + "/ping", "otlp_endpoint": receiver.url}
    if not spec.get("moto"):
        return None, urls
    moto, moto_port = start_moto(workdir)
    result["ports"]["moto"] = moto_port
    aws_client("s3", moto_port, spec["region"]).create_bucket(
        Bucket="rie-sample-bucket", CreateBucketConfiguration={"LocationConstraint": spec["region"]})
    xray_port = delaying_proxy(moto_port, delay_s, result["proxy_seen"]).port if delay_s else moto_port
    urls["xray_endpoint"] = "http://127.0.0.1:%d" % xray_port
    urls["aws_endpoint"] = "http://127.0.0.1:%d" % moto_port
    return moto, urls


def function_env(spec, workdir, urls):
    env = lambda_env(spec, workdir / "home")
    (workdir / "home").mkdir(exist_ok=True)
    if spec.get("collector_config") is not None:
        text = spec["collector_config"]
        for name, value in urls.items():
            text = text.replace("@%s@" % name.upper(), value)
        config = workdir / "collector.yaml"
        config.write_text(text)
        # Today's variable and the 1.20.0-era one, naming the same file.
        env["OPENTELEMETRY_COLLECTOR_CONFIG_URI"] = str(config)
        env["OPENTELEMETRY_COLLECTOR_CONFIG_FILE"] = str(config)
    if "aws_endpoint" in urls:
        env["AWS_ENDPOINT_URL"] = urls["aws_endpoint"]
    return env


# Run by /bin/sh as the emulator's launcher; $0 is an empty folder, "$@" the emulator's command.
PRIVATE_BINFMT = """\
if mount -t binfmt_misc binfmt_misc "$0" 2>/dev/null; then
    echo "sandbox: binfmt_misc: a private, empty instance" >&2
else
    echo "sandbox: binfmt_misc: the host's (a private one needs Linux 6.7 or later)" >&2
fi
exec "$@"
"""


def without_binfmt_handlers(argv, workdir):
    """`argv` run in a user and mount namespace of its own whose binfmt_misc is a fresh, empty
    instance (Linux 6.7+ gives each user namespace that mounts one its own). Lambda has no
    binfmt handlers, so a binary of the other architecture fails there with `exec format
    error`; a host with qemu-user-static registered would run it instead. Only root is
    mapped, which is who owns everything the run reads. The launcher says in the emulator's
    log which binfmt_misc the run had."""
    unshare, mount = shutil.which("unshare"), shutil.which("mount")
    probe = [unshare, "--user", "--map-root-user", "--mount", "true"]
    if not (unshare and mount) or subprocess.run(probe, capture_output=True).returncode != 0:
        return ["/bin/sh", "-c", 'echo "sandbox: binfmt_misc: the host\'s (no user namespace '
                'here)" >&2; exec "$@"', "sh"] + argv
    folder = workdir / "binfmt"
    folder.mkdir(exist_ok=True)
    return ([unshare, "--user", "--map-root-user", "--mount", "--", "/bin/sh", "-c",
             PRIVATE_BINFMT.replace("mount -t", mount + " -t"), str(folder)] + argv)


def drive_emulator(spec, env, workdir, target_url, result):
    """Start the emulator, send the invocations one by one, then SIGTERM it."""
    port = free_port()
    result["ports"]["rie"] = port
    result["invoked_at"] = time.time()
    argv = without_binfmt_handlers([spec["rie"], "--log-level", "debug",
                                    "--runtime-interface-emulator-address",
                                    "127.0.0.1:%d" % port], workdir)
    with open(workdir / "rie.stdout", "wb") as stdout, open(workdir / "rie.stderr", "wb") as stderr:
        rie = subprocess.Popen(argv, env=env, cwd="/", stdout=stdout, stderr=stderr,
                               start_new_session=True)
    if not wait_for_port(port, 30, rie):
        result["errors"].append("the emulator did not listen on 127.0.0.1:%d" % port)
    else:
        for index, event in enumerate(spec["invocations"]):
            timeout = COLD_INVOKE_TIMEOUT if index == 0 else WARM_INVOKE_TIMEOUT
            result["invocations"].append(invoke(port, dict(event, target_url=target_url), timeout))
            if rie.poll() is not None:
                result["errors"].append("the emulator exited during invocation %d" % index)
                break
    term_sent = time.monotonic()
    result["sigterm_at"] = time.time()
    if rie.poll() is None:
        rie.send_signal(signal.SIGTERM)
    try:
        result["rie_exit"] = rie.wait(timeout=SHUTDOWN_TIMEOUT)
    except subprocess.TimeoutExpired:
        result["errors"].append("the emulator did not exit within %d s of SIGTERM"
                                % SHUTDOWN_TIMEOUT)
        os.killpg(rie.pid, signal.SIGKILL)
        result["rie_exit"] = rie.wait()
    result["shutdown_ms"] = round((time.monotonic() - term_sent) * 1000, 1)


def run(spec):
    workdir = Path(spec["workdir"])
    result = {"invocations": [], "otlp": [], "target_hits": [], "proxy_seen": [],
              "ports": {}, "errors": []}
    loopback_up()
    sandbox_hosts(workdir)
    layout_var(workdir / "var", {"task": spec["task"], "runtime": spec["runtime"],
                                 "lang": spec["lang"]})
    mount_tree(spec["layer"], "/opt")
    delay_s = spec.get("backend_delay_ms", 0) / 1000.0
    moto, urls = start_backends(spec, workdir, result, delay_s)
    drive_emulator(spec, function_env(spec, workdir, urls), workdir, urls["target_url"], result)
    # What the collector sends on SHUTDOWN may still be on its way to a late backend.
    time.sleep(delay_s + 0.2)
    if moto is not None:
        try:
            result["xray"] = read_xray(result["ports"]["moto"], spec["region"],
                                       result["invoked_at"])
        except Exception as exc:  # reported, judged by the tests
            result["errors"].append("reading X-Ray back: %s: %s" % (type(exc).__name__, exc))
        moto.terminate()
        try:
            moto.wait(timeout=10)
        except subprocess.TimeoutExpired:
            moto.kill()
    return result


def main():
    spec = json.loads(Path(sys.argv[1]).read_text())
    out = Path(spec["result"])
    try:
        result = run(spec)
    except Exception as exc:
        import traceback

        result = {"fatal": "%s: %s" % (type(exc).__name__, exc),
                  "traceback": traceback.format_exc()}
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=1))
    tmp.rename(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
