//! RECORD, the wheel's list of its files with their hashes and sizes (a CSV file): read to
//! check every file a wheel holds, and written for the paths a package ends up at.

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine;

/// One row: a file, its sha256 (urlsafe base64, no padding) and its size. RECORD lists itself
/// (and any signature) without hash and size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Row {
    pub path: String,
    pub sha256: Option<String>,
    pub size: Option<u64>,
}

impl Row {
    /// The row of a file with these bytes' digest and length.
    pub(crate) fn of(path: impl Into<String>, sha256: &[u8], size: usize) -> Row {
        Row {
            path: path.into(),
            sha256: Some(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha256)),
            size: Some(size as u64),
        }
    }

    /// The row of a file listed without hash, as RECORD lists itself.
    pub(crate) fn unhashed(path: impl Into<String>) -> Row {
        Row {
            path: path.into(),
            sha256: None,
            size: None,
        }
    }
}

/// The hash and size fields, as RECORD spells them: `sha256=...,123`.
impl fmt::Display for Row {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(h) = &self.sha256 {
            write!(f, "sha256={h}")?;
        }
        f.write_str(",")?;
        if let Some(s) = self.size {
            write!(f, "{s}")?;
        }
        Ok(())
    }
}

/// RECORD as CSV the way Python's csv module writes it: no header, rows checked by the caller.
fn reader(text: &str) -> csv::Reader<&[u8]> {
    csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(text.as_bytes())
}

/// Every row's path, hashed or not, in file order: what an installed distribution owns.
pub(crate) fn paths(text: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for rec in reader(text).records() {
        // Said after the file's path by the caller.
        let rec = rec.map_err(|e| format!("is not readable CSV ({e})"))?;
        if let Some(path) = rec.get(0).filter(|p| !p.is_empty()) {
            out.push(path.to_string());
        }
    }
    Ok(out)
}

/// The hashed rows by path. Rows without a hash (RECORD itself, signatures) are left out.
pub(super) fn parse(text: &str) -> Result<BTreeMap<String, Row>, String> {
    let mut reader = reader(text);
    let mut out = BTreeMap::new();
    for result in reader.records() {
        let rec = result.map_err(|e| format!("RECORD is not readable CSV: {e}"))?;
        // csv counts neither the blank lines it skips nor, in its position, the ones before a
        // record: count them, as an editor would.
        let from = rec.position().map_or(0, |p| p.byte() as usize);
        let blank = text.as_bytes()[from..]
            .iter()
            .take_while(|b| b"\r\n".contains(b))
            .count();
        let line = text.as_bytes()[..from + blank].iter().filter(|&&b| b == b'\n').count() + 1;
        if rec.iter().all(|f| f.trim().is_empty()) {
            continue;
        }
        let [path, hash, size] = rec.iter().collect::<Vec<_>>()[..] else {
            return Err(format!("RECORD line {line} is not `path,hash,size`"));
        };
        if hash.is_empty() {
            continue;
        }
        let sha256 = hash.strip_prefix("sha256=").ok_or_else(|| {
            format!(
                "RECORD line {line} uses `{}`: only sha256 hashes are checked",
                hash.split('=').next().unwrap_or("")
            )
        })?;
        let size = size
            .parse()
            .map_err(|_| format!("RECORD line {line}: size `{size}` is not a number of bytes"))?;
        let row = Row {
            path: path.to_string(),
            sha256: Some(sha256.to_string()),
            size: Some(size),
        };
        out.insert(row.path.clone(), row);
    }
    Ok(out)
}

/// RECORD's bytes for `rows`, quoted as Python's csv module quotes (only where needed), one
/// row per `\n`-ended line, as pip and installer write it.
pub(crate) fn write(rows: &[Row]) -> Vec<u8> {
    let mut w = csv::WriterBuilder::new()
        .terminator(csv::Terminator::Any(b'\n'))
        .quote_style(csv::QuoteStyle::Necessary)
        .from_writer(Vec::new());
    for r in rows {
        let size = r.size.map(|s| s.to_string()).unwrap_or_default();
        let hash = r.sha256.as_ref().map(|h| format!("sha256={h}")).unwrap_or_default();
        w.write_record([r.path.as_str(), &hash, &size])
            .expect("writing to memory does not fail");
    }
    w.into_inner().expect("writing to memory does not fail")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_roundtrips() {
        let rows = [
            Row::of("a,b\"c.py", &[0; 32], 1),
            Row::of("plain.py", &[1; 32], 2),
            Row::unhashed("x.dist-info/RECORD"),
        ];
        let text = String::from_utf8(write(&rows)).unwrap();
        assert!(text.starts_with("\"a,b\"\"c.py\",sha256="), "{text}");
        assert!(text.ends_with("\nx.dist-info/RECORD,,\n"), "{text}");
        let back = parse(&text).unwrap();
        assert_eq!(back.len(), 2);
        assert_eq!(back["a,b\"c.py"], rows[0]);
        assert_eq!(
            back["plain.py"].to_string(),
            format!("{},2", rows[1].to_string().trim_end_matches(",2"))
        );
    }

    #[test]
    fn bad_rows_name_their_line() {
        let e = parse("a.py,sha256=x,1\n\nb.py,md5=y,2\n").unwrap_err();
        assert_eq!(e, "RECORD line 3 uses `md5`: only sha256 hashes are checked");
        assert!(
            parse("a.py,sha256=x\n")
                .unwrap_err()
                .contains("line 1 is not `path,hash,size`")
        );
        assert!(parse("a.py,sha256=x,big\n").unwrap_err().contains("`big`"));
    }
}
