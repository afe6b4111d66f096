//! Inflates a zip's entries with one deflate state and one pair of buffers for the whole zip,
//! holding each to its declared size and crc32. A reader per entry (what the zip crate gives)
//! allocates its own state each time, and between thousands of tiny entries those freed
//! blocks fragment the heap: 60,000 one-byte entries took 1.1 GB that way.

use std::io::{self, Read, Write};

use flate2::{Decompress, FlushDecompress, Status};

const BUF: usize = 64 << 10;

pub(super) struct Inflater {
    state: Decompress,
    input: Vec<u8>,
    output: Vec<u8>,
}

fn invalid(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

/// A writer that counts and checksums what passes, refusing a byte past `declared`.
struct Held<'a> {
    w: &'a mut dyn Write,
    declared: u64,
    done: u64,
    crc: crc32fast::Hasher,
}

impl Held<'_> {
    fn put(&mut self, data: &[u8]) -> io::Result<()> {
        self.done += data.len() as u64;
        if self.done > self.declared {
            return Err(invalid(format!(
                "holds more than the {} bytes it declares",
                self.declared
            )));
        }
        self.crc.update(data);
        self.w.write_all(data)
    }
}

impl Inflater {
    pub(super) fn new() -> Inflater {
        Inflater {
            state: Decompress::new(false),
            input: vec![0; BUF],
            output: vec![0; BUF],
        }
    }

    /// Copies one entry's data from `raw` (its stored bytes, or a raw deflate stream when
    /// `deflated`) into `w`: exactly `declared` bytes whose crc32 is `crc`.
    pub(super) fn copy(
        &mut self,
        raw: &mut dyn Read,
        deflated: bool,
        declared: u64,
        crc: u32,
        w: &mut dyn Write,
    ) -> io::Result<u64> {
        let mut out = Held {
            w,
            declared,
            done: 0,
            crc: crc32fast::Hasher::new(),
        };
        if deflated {
            self.inflate(raw, &mut out)?;
        } else {
            loop {
                let n = raw.read(&mut self.input)?;
                if n == 0 {
                    break;
                }
                out.put(&self.input[..n])?;
            }
        }
        if out.done != declared {
            return Err(invalid(format!("holds {} bytes but declares {declared}", out.done)));
        }
        let got = out.crc.finalize();
        if got != crc {
            return Err(invalid(format!("its crc32 is {got:08x} but it declares {crc:08x}")));
        }
        Ok(out.done)
    }

    fn inflate(&mut self, raw: &mut dyn Read, out: &mut Held) -> io::Result<()> {
        self.state.reset(false);
        let (mut at, mut end, mut eof) = (0, 0, false);
        loop {
            if at == end && !eof {
                end = raw.read(&mut self.input)?;
                at = 0;
                eof = end == 0;
            }
            let (before_in, before_out) = (self.state.total_in(), self.state.total_out());
            let status = self
                .state
                .decompress(&self.input[at..end], &mut self.output, FlushDecompress::None)
                .map_err(|e| invalid(format!("its deflate data is damaged ({e})")))?;
            let used = (self.state.total_in() - before_in) as usize;
            let made = (self.state.total_out() - before_out) as usize;
            at += used;
            out.put(&self.output[..made])?;
            if status == Status::StreamEnd {
                return Ok(());
            }
            if used == 0 && made == 0 && (eof || at < end) {
                return Err(invalid("its deflate data is cut short".into()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deflate(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn crc(data: &[u8]) -> u32 {
        crc32fast::hash(data)
    }

    #[test]
    fn inflates_and_holds_size_and_crc() {
        let data = b"hello hello hello hello".repeat(10_000);
        let z = deflate(&data);
        let mut inf = Inflater::new();
        for _ in 0..2 {
            let mut out = Vec::new();
            let n = inf.copy(&mut z.as_slice(), true, data.len() as u64, crc(&data), &mut out);
            assert_eq!(n.unwrap(), data.len() as u64);
            assert_eq!(out, data);
        }
        let short = data.len() as u64 - 1;
        let e = inf.copy(&mut z.as_slice(), true, short, crc(&data), &mut io::sink());
        assert!(e.unwrap_err().to_string().contains("more than"));
        let e = inf.copy(&mut z.as_slice(), true, data.len() as u64, 7, &mut io::sink());
        assert!(e.unwrap_err().to_string().contains("crc32"));
        let e = inf.copy(
            &mut &z[..z.len() / 2],
            true,
            data.len() as u64,
            crc(&data),
            &mut io::sink(),
        );
        assert!(e.unwrap_err().to_string().contains("cut short"));
        let mut out = Vec::new();
        inf.copy(&mut &b"abc"[..], false, 3, crc(b"abc"), &mut out).unwrap();
        assert_eq!(out, b"abc");
        assert!(
            inf.copy(&mut &b"abcd"[..], false, 3, crc(b"abc"), &mut io::sink())
                .is_err()
        );
    }
}
