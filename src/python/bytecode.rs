//! Checked-hash `.pyc` (PEP 552) for each target runtime, compiled by that runtime's own CPython
//! in one process per runtime, and cached so a warm build runs no Python at all.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};

use crate::model::runtime::Runtime;
use crate::python::interpreter::Interpreter;
use crate::support::cache::{Blobs, digest_of_hex};
use crate::support::input;

/// One source file to compile.
#[derive(Debug, Clone)]
pub(crate) struct Source {
    /// The path Python reports in tracebacks: where the file is on Lambda.
    pub dfile: String,
    pub data: Arc<[u8]>,
    pub sha256: [u8; 32],
}

/// Reads stdin as (dfile, source) frames and writes one frame per file: the checked-hash pyc,
/// or nothing for a file this Python cannot compile (as compileall skips it). The calls are the
/// ones `py_compile.compile(..., invalidation_mode=CHECKED_HASH, dfile=...)` makes.
const COMPILER: &str = r#"
import sys, struct, importlib.util
from importlib._bootstrap_external import _code_to_hash_pyc
inp, out = sys.stdin.buffer, sys.stdout.buffer
def take(n):
    b = inp.read(n)
    if len(b) != n:
        raise SystemExit("short input")
    return b
(count,) = struct.unpack("<I", take(4))
for _ in range(count):
    (n,) = struct.unpack("<I", take(4)); dfile = take(n).decode()
    (n,) = struct.unpack("<I", take(4)); src = take(n)
    try:
        code = compile(src, dfile, "exec", dont_inherit=True)
        data = _code_to_hash_pyc(code, importlib.util.source_hash(src), True)
        # marshal flags objects by their refcount: a live code object of the previous file
        # would change the next file's bytes.
        del code
    except Exception:
        data = b""
    out.write(struct.pack("<I", len(data))); out.write(data)
out.flush()
"#;

/// One lock per runtime: the architectures build at once and mostly compile the same files, so
/// the second waits and finds them in the cache.
static COMPILING: Mutex<BTreeMap<String, Arc<Mutex<()>>>> = Mutex::new(BTreeMap::new());

fn cache_slot(cache: &Path, interp: &Interpreter, src: &Source) -> PathBuf {
    let mut h = Sha256::new();
    h.update(src.sha256);
    h.update(src.dfile.as_bytes());
    h.update([0]);
    h.update(interp.version.to_string().as_bytes());
    h.update([0]);
    h.update(interp.magic.as_bytes());
    // Entries compiled before the hash seed was fixed are valid but not reproducible.
    h.update(b"\0hashseed=0");
    let key = hex::encode(h.finalize());
    // Records, not the raw .pyc an older layerbuild kept under `pyc/`: a cache shared with
    // one must not hand either the other's format.
    cache.join("bytecode").join(&key[..2]).join(&key)
}

/// Each source's `.pyc`, `None` where the runtime cannot compile the file.
pub(crate) type Pycs = Vec<Option<Pyc>>;

/// One compiled file, with the sha256 the cache stores it under (hashed once, there).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pyc {
    pub data: Arc<[u8]>,
    pub sha256: [u8; 32],
}

/// Compiles every source; `None` where the runtime cannot compile the file (e.g. syntax of a
/// newer Python in a file that is never imported there). Also says how many were compiled now
/// rather than found in the cache.
pub(crate) fn compile(interp: &Interpreter, sources: &[Source], cache: &Path) -> Result<(Pycs, usize)> {
    let lock = {
        let mut map = COMPILING.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(interp.version.to_string()).or_default().clone()
    };
    let _guard = lock.lock().unwrap_or_else(|e| e.into_inner());

    let blobs = Blobs::new(cache);
    let magic = hex::decode(&interp.magic).unwrap_or_default();
    let slots: Vec<PathBuf> = sources.iter().map(|s| cache_slot(cache, interp, s)).collect();
    let mut out: Vec<Option<Option<Pyc>>> = slots
        .iter()
        .map(|slot| match blobs.get_record(slot, input::FILE_CAP) {
            // An empty entry records that this Python could not compile the file.
            Ok(Some(hit)) if hit.data.is_empty() => Some(None),
            // A hit is bytecode of this Python, stored under its own hash.
            Ok(Some(hit)) if hit.data.starts_with(&magic) => Some(Some(Pyc {
                sha256: hit.digest(),
                data: Arc::from(hit.data),
            })),
            _ => None,
        })
        .collect();
    let todo: Vec<usize> = (0..sources.len()).filter(|&i| out[i].is_none()).collect();
    if !todo.is_empty() {
        let compiled = run_compiler(interp, todo.iter().map(|&i| &sources[i]))?;
        for (&i, pyc) in todo.iter().zip(compiled) {
            let sha = blobs.put(&pyc)?;
            blobs.put_record(&slots[i], &sha, &interp.version.to_string())?;
            let pyc = (!pyc.is_empty()).then(|| Pyc {
                sha256: digest_of_hex(&sha).unwrap_or_else(|| Sha256::digest(&pyc).into()),
                data: Arc::from(pyc),
            });
            out[i] = Some(pyc);
        }
    }
    let pycs = out
        .into_iter()
        .map(|o| o.expect("every file was compiled or cached"))
        .collect();
    Ok((pycs, todo.len()))
}

fn run_compiler<'a>(interp: &Interpreter, sources: impl Iterator<Item = &'a Source>) -> Result<Vec<Vec<u8>>> {
    let mut input = Vec::new();
    let sources: Vec<&Source> = sources.collect();
    input.extend_from_slice(&(sources.len() as u32).to_le_bytes());
    for s in &sources {
        input.extend_from_slice(&(s.dfile.len() as u32).to_le_bytes());
        input.extend_from_slice(s.dfile.as_bytes());
        input.extend_from_slice(&(s.data.len() as u32).to_le_bytes());
        input.extend_from_slice(&s.data);
    }
    // Not `-I`: it would also ignore PYTHONHASHSEED. String hashes order frozenset constants
    // in the marshalled code, so a random seed gives other bytes on every build. A clean
    // environment, no site and `/` as the folder keep the host's packages out instead.
    let mut child = Command::new(&interp.path)
        .args(["-s", "-S", "-c", COMPILER])
        .env_clear()
        .env("PYTHONHASHSEED", "0")
        .current_dir("/")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {} to compile bytecode", interp.path.display()))?;
    let mut stdin = child.stdin.take().expect("piped stdin");
    let stderr = child.stderr.take().expect("piped stderr");
    // Feed from one thread and drain stderr from another: the child writes results while it
    // still reads, and a warning per line of source (SyntaxWarning for every invalid escape,
    // Python 3.12 on) fills the stderr pipe long before the last result.
    let feeder = std::thread::spawn(move || stdin.write_all(&input));
    let drainer = std::thread::spawn(move || drain(stderr, STDERR_KEPT));
    let mut stdout = Vec::new();
    child.stdout.take().expect("piped stdout").read_to_end(&mut stdout)?;
    let status = child.wait()?;
    let fed = feeder.join().expect("feeder thread does not panic");
    let errors = drainer.join().expect("stderr thread does not panic");
    if !status.success() || fed.is_err() {
        bail!(
            "{} (Python {}) failed compiling bytecode: {}: build with --no-bytecode to skip it",
            interp.path.display(),
            interp.version,
            String::from_utf8_lossy(&errors).trim_end()
        );
    }
    let mut results = Vec::with_capacity(sources.len());
    let mut rest = stdout.as_slice();
    for _ in &sources {
        let (len, tail) = rest
            .split_first_chunk::<4>()
            .context("the bytecode compiler's output ended early")?;
        let len = u32::from_le_bytes(*len) as usize;
        if tail.len() < len {
            bail!("the bytecode compiler's output ended early");
        }
        results.push(tail[..len].to_vec());
        rest = &tail[len..];
    }
    Ok(results)
}

/// How much of the compiler's stderr is kept for an error message.
const STDERR_KEPT: usize = 64 << 10;

/// Reads `r` to its end, keeping the last `keep` bytes.
fn drain(mut r: impl Read, keep: usize) -> Vec<u8> {
    let mut kept = Vec::new();
    let mut buf = [0u8; 8192];
    while let Ok(n) = r.read(&mut buf) {
        if n == 0 {
            break;
        }
        kept.extend_from_slice(&buf[..n]);
        if kept.len() > 2 * keep {
            kept.drain(..kept.len() - keep);
        }
    }
    if kept.len() > keep {
        kept.drain(..kept.len() - keep);
    }
    kept
}

/// `pkg/mod.py` -> `pkg/__pycache__/mod.cpython-39.pyc`.
pub(crate) fn pyc_path(py: &str, rt: Runtime) -> Option<String> {
    let stem = py.strip_suffix(".py")?;
    let (dir, name) = match stem.rsplit_once('/') {
        Some((d, n)) => (format!("{d}/"), n),
        None => (String::new(), stem),
    };
    Some(format!("{dir}__pycache__/{name}.cpython-{}{}.pyc", rt.major, rt.minor))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::python::interpreter::{Sources, find};

    #[test]
    fn pyc_names() {
        let rt = Runtime::parse("python3.9").unwrap();
        assert_eq!(
            pyc_path("python/a/b.py", rt).unwrap(),
            "python/a/__pycache__/b.cpython-39.pyc"
        );
        assert_eq!(pyc_path("x.py", rt).unwrap(), "__pycache__/x.cpython-39.pyc");
        assert_eq!(pyc_path("x.pyi", rt), None);
    }

    #[test]
    fn stderr_is_drained_whole_and_its_end_kept() {
        let text: Vec<u8> = (0..100_000u32)
            .flat_map(|i| format!("warning {i}\n").into_bytes())
            .collect();
        let kept = drain(&text[..], 1000);
        assert_eq!(kept.len(), 1000);
        assert!(text.ends_with(&kept));
    }

    #[test]
    #[ignore = "needs a python3.8 or python3.9 interpreter"]
    fn same_source_compiles_to_the_same_bytes_in_any_process() {
        // Python 3.11 and later sort set elements when marshalling; the layer's 3.8 and 3.9 do not.
        let sources = Sources::new(None, None, None);
        let interp = ["python3.9", "python3.8"]
            .iter()
            .find_map(|r| find(r.parse().unwrap(), &sources).ok())
            .expect("this test needs python3.9 or python3.8 (on PATH or from pyenv, asdf or uv)");
        // A frozenset of strings is ordered by their hashes: random seeds reorder it.
        let words: Vec<String> = (0..40).map(|i| format!("'w{i}'")).collect();
        let text = format!("def f(x):\n    return x in {{{}}}\n", words.join(", "));
        let source = |dfile: &str, text: &str| Source {
            dfile: dfile.into(),
            data: Arc::from(text.as_bytes()),
            sha256: Sha256::digest(text.as_bytes()).into(),
        };
        let target = source("/opt/python/a.py", &text);
        let other = source("/opt/python/b.py", "class w1:\n    w2 = 'w3'\n");
        // Separate caches, separate processes, different companions in the batch.
        let alone = compile(
            &interp,
            std::slice::from_ref(&target),
            tempfile::tempdir().unwrap().path(),
        )
        .unwrap()
        .0;
        let (after, fresh) = compile(&interp, &[other, target], tempfile::tempdir().unwrap().path()).unwrap();
        assert_eq!(fresh, 2, "an empty cache compiles every file");
        assert!(alone[0].is_some());
        assert_eq!(alone[0], after[1]);
    }
}
