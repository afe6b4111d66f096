//! A small HTTP/1.1 server on 127.0.0.1 for smoke's local endpoints (Lambda APIs, OTLP receiver).
//!
//! Hand-written on std::net because the needs are narrow but specific: long polls that block a
//! connection's thread for seconds, keep-alive (Go's and curl's clients reuse connections),
//! `Expect: 100-continue` and chunked request bodies (curl may send either), and a stop that
//! never waits on a client.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

/// Largest request body accepted: OTLP batches of one smoke run are far smaller.
const MAX_BODY: usize = 64 << 20;
const MAX_HEADER_LINES: usize = 200;
const MAX_LINE: usize = 64 << 10;
/// Connections served at once; more are refused so a misbehaving client cannot exhaust threads.
const MAX_CONNECTIONS: usize = 256;
/// Requests on one keep-alive connection before it is closed.
const MAX_REQUESTS_PER_CONNECTION: usize = 100_000;
/// How long a keep-alive connection may sit idle; long, because a client that reuses a connection
/// the server just closed may fail a POST instead of retrying it.
const IDLE_LIMIT: Duration = Duration::from_secs(600);
/// Once a request has started to arrive, the rest must follow within this.
const REQUEST_READ_LIMIT: Duration = Duration::from_secs(30);
/// How often idle connections look at the stop flag.
const POLL: Duration = Duration::from_millis(100);

#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    /// The path without the query string.
    pub path: String,
    pub query: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn new(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Response {
        Response {
            status,
            headers: vec![("Content-Type".into(), content_type.into())],
            body: body.into(),
        }
    }

    pub fn json(status: u16, value: &serde_json::Value) -> Response {
        Response::new(status, "application/json", value.to_string())
    }

    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Response {
        self.headers.push((name.into(), value.into()));
        self
    }
}

/// `None` closes the connection without an answer (a long poll cut short by the stop).
pub type Handler = Arc<dyn Fn(Request) -> Option<Response> + Send + Sync>;

pub struct Server {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

impl Server {
    /// Binds 127.0.0.1 on a free port (or `port` when not 0) and serves each connection on a thread.
    pub fn start(name: &str, port: u16, handler: Handler) -> Result<Server> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, port))
            .with_context(|| format!("cannot listen on 127.0.0.1:{port} for the {name}"))?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let live = Arc::new(AtomicUsize::new(0));
        let stop2 = stop.clone();
        let accept = std::thread::Builder::new()
            .name(format!("smoke-{name}"))
            .spawn(move || {
                for conn in listener.incoming() {
                    if stop2.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = conn else { continue };
                    if live.load(Ordering::SeqCst) >= MAX_CONNECTIONS {
                        continue; // dropping the stream refuses it
                    }
                    live.fetch_add(1, Ordering::SeqCst);
                    let (handler, stop, live) = (handler.clone(), stop2.clone(), live.clone());
                    let spawned = std::thread::Builder::new().spawn(move || {
                        serve(stream, &handler, &stop);
                        live.fetch_sub(1, Ordering::SeqCst);
                    });
                    if spawned.is_err() {
                        // The closure (and its counter decrement) was dropped with the error.
                        continue;
                    }
                }
            })?;
        Ok(Server {
            addr,
            stop,
            accept: Some(accept),
        })
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `127.0.0.1:PORT`, as `AWS_LAMBDA_RUNTIME_API` wants it.
    pub fn host_port(&self) -> String {
        self.addr.to_string()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept so its thread sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

fn serve(stream: TcpStream, handler: &Handler, stop: &AtomicBool) {
    let _ = stream.set_nodelay(true);
    let Ok(write_half) = stream.try_clone() else { return };
    let mut out = write_half;
    let mut reader = BufReader::new(stream);
    for _ in 0..MAX_REQUESTS_PER_CONNECTION {
        if !wait_for_data(&mut reader, stop) {
            return;
        }
        let _ = reader.get_ref().set_read_timeout(Some(REQUEST_READ_LIMIT));
        let Ok(Some((req, close))) = read_request(&mut reader, &mut out) else {
            return;
        };
        let Some(resp) = handler(req) else { return };
        if write_response(&mut out, &resp, close).is_err() || close {
            return;
        }
    }
}

/// Waits until the next request starts to arrive; false on EOF, error, stop or idle limit.
fn wait_for_data(reader: &mut BufReader<TcpStream>, stop: &AtomicBool) -> bool {
    if !reader.buffer().is_empty() {
        return true;
    }
    let _ = reader.get_ref().set_read_timeout(Some(POLL));
    let started = Instant::now();
    while started.elapsed() < IDLE_LIMIT {
        if stop.load(Ordering::SeqCst) {
            return false;
        }
        match reader.fill_buf() {
            Ok([]) => return false,
            Ok(_) => return true,
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(_) => return false,
        }
    }
    false
}

fn read_line(reader: &mut impl BufRead) -> std::io::Result<String> {
    let mut buf = Vec::new();
    let n = reader.by_ref().take(MAX_LINE as u64).read_until(b'\n', &mut buf)?;
    if n == 0 {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    while buf.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        buf.pop();
    }
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

/// Reads one request; the flag says whether the connection closes after the answer.
fn read_request(reader: &mut impl BufRead, out: &mut impl Write) -> std::io::Result<Option<(Request, bool)>> {
    let line = read_line(reader)?;
    let mut parts = line.split_whitespace();
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next()) else {
        return Ok(None);
    };
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut req = Request {
        method: method.to_string(),
        path: path.to_string(),
        query: query.to_string(),
        headers: Vec::new(),
        body: Vec::new(),
    };
    for _ in 0..MAX_HEADER_LINES {
        let h = read_line(reader)?;
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            req.headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    let close = version == "HTTP/1.0"
        || req
            .header("Connection")
            .is_some_and(|c| c.eq_ignore_ascii_case("close"));
    if req
        .header("Expect")
        .is_some_and(|e| e.eq_ignore_ascii_case("100-continue"))
    {
        out.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
        out.flush()?;
    }
    let chunked = req
        .header("Transfer-Encoding")
        .is_some_and(|t| t.to_ascii_lowercase().contains("chunked"));
    if chunked {
        req.body = read_chunked(reader)?;
    } else if let Some(len) = req.header("Content-Length") {
        let len: usize = len
            .parse()
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "bad Content-Length"))?;
        if len > MAX_BODY {
            return Ok(None);
        }
        let mut body = vec![0; len];
        reader.read_exact(&mut body)?;
        req.body = body;
    }
    Ok(Some((req, close)))
}

fn read_chunked(reader: &mut impl BufRead) -> std::io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let size_line = read_line(reader)?;
        let size = usize::from_str_radix(size_line.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "bad chunk size"))?;
        if size == 0 {
            // Trailers, then the empty line.
            for _ in 0..MAX_HEADER_LINES {
                if read_line(reader)?.is_empty() {
                    break;
                }
            }
            return Ok(body);
        }
        if body.len() + size > MAX_BODY {
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "body too large"));
        }
        let start = body.len();
        body.resize(start + size, 0);
        reader.read_exact(&mut body[start..])?;
        read_line(reader)?;
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        202 => "Accepted",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        413 => "Payload Too Large",
        415 => "Unsupported Media Type",
        500 => "Internal Server Error",
        _ => "Status",
    }
}

fn write_response(out: &mut impl Write, resp: &Response, close: bool) -> std::io::Result<()> {
    let mut head = format!("HTTP/1.1 {} {}\r\n", resp.status, reason(resp.status));
    for (k, v) in &resp.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\n", resp.body.len()));
    if close {
        head.push_str("Connection: close\r\n");
    }
    head.push_str("\r\n");
    out.write_all(head.as_bytes())?;
    out.write_all(&resp.body)?;
    out.flush()
}

/// A tiny client for smoke's own requests (posting a probe span to the collector).
pub fn post(
    url_host_port: &str,
    path: &str,
    content_type: &str,
    body: &[u8],
    timeout: Duration,
) -> Result<(u16, String)> {
    let addr: SocketAddr = resolve(url_host_port)?;
    let mut s =
        TcpStream::connect_timeout(&addr, timeout).with_context(|| format!("cannot connect to {url_host_port}"))?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {url_host_port}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes())?;
    s.write_all(body)?;
    let mut reader = BufReader::new(s);
    let status_line = read_line(&mut reader).with_context(|| format!("no answer from {url_host_port}{path}"))?;
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("bad status line from {url_host_port}: {status_line}"))?;
    let mut rest = Vec::new();
    let _ = reader.take(1 << 20).read_to_end(&mut rest);
    let text = String::from_utf8_lossy(&rest);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("").to_string();
    Ok((status, body))
}

/// The address to connect to: IPv4 when the name has one (the local servers listen there).
fn resolve(host_port: &str) -> Result<SocketAddr> {
    use std::net::ToSocketAddrs;
    let addrs: Vec<SocketAddr> = host_port
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve {host_port}"))?
        .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .copied()
        .with_context(|| format!("{host_port} has no address"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn echo() -> Handler {
        Arc::new(|r: Request| {
            Some(Response::new(
                200,
                "text/plain",
                format!("{} {} {}", r.method, r.path, String::from_utf8_lossy(&r.body)),
            ))
        })
    }

    fn roundtrip(port: u16, raw: &[u8]) -> String {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(raw).unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    }

    #[test]
    fn content_length_body_and_close() {
        let srv = Server::start("test", 0, echo()).unwrap();
        let out = roundtrip(
            srv.port(),
            b"POST /a?x=1 HTTP/1.1\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
        );
        assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
        assert!(out.ends_with("POST /a hello"), "{out}");
    }

    #[test]
    fn chunked_body_after_expect_continue_and_keep_alive() {
        let srv = Server::start("test", 0, echo()).unwrap();
        let out = roundtrip(
            srv.port(),
            b"PUT /b HTTP/1.1\r\nExpect: 100-continue\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\nGET /c HTTP/1.1\r\nConnection: close\r\n\r\n",
        );
        assert!(out.starts_with("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK"), "{out}");
        assert!(out.contains("PUT /b abcde"), "{out}");
        assert!(out.ends_with("GET /c "), "{out}");
    }

    #[test]
    fn client_post() {
        let srv = Server::start("test", 0, echo()).unwrap();
        let (status, body) = post(
            &srv.host_port(),
            "/v1/traces",
            "application/json",
            b"{}",
            Duration::from_secs(5),
        )
        .unwrap();
        assert_eq!(status, 200);
        assert_eq!(body, "POST /v1/traces {}");
    }

    #[test]
    fn addresses_prefer_ipv4_but_take_ipv6_literals() {
        assert!(resolve("[::1]:80").unwrap().is_ipv6());
        assert!(resolve("127.0.0.1:80").unwrap().is_ipv4());
        assert!(resolve("localhost:80").unwrap().is_ipv4());
    }
}
