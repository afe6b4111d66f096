//! RECORD, the wheel's list of its files with their hashes and sizes: read to check every file
//! a wheel holds, and written for the paths a package ends up at.

use std::collections::BTreeMap;

use base64::Engine;

/// RECORD's hash form: urlsafe base64 without padding.
pub(crate) fn urlsafe(sha: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha)
}

/// RECORD lines as path -> (`sha256=...`, size). The RECORD itself has empty fields.
pub(super) fn parse(text: &str) -> Result<BTreeMap<String, (String, String)>, String> {
    let mut out = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let fields = csv_fields(line);
        let [path, hash, size] = fields.as_slice() else {
            return Err(format!("RECORD line {} is not `path,hash,size`", i + 1));
        };
        if hash.is_empty() {
            continue;
        }
        if !hash.starts_with("sha256=") {
            return Err(format!(
                "RECORD line {} uses `{}`: only sha256 hashes are checked",
                i + 1,
                hash.split('=').next().unwrap_or("")
            ));
        }
        out.insert(path.clone(), (hash.clone(), size.clone()));
    }
    Ok(out)
}

/// Splits one CSV line, honouring double quotes (paths with commas are quoted).
fn csv_fields(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                chars.next();
                fields.last_mut().expect("one field").push('"');
            }
            '"' => quoted = !quoted,
            ',' if !quoted => fields.push(String::new()),
            _ => fields.last_mut().expect("one field").push(c),
        }
    }
    fields
}

/// Writes one RECORD line, quoting like Python's csv module when needed.
pub(crate) fn line(path: &str, hash: &str, size: &str) -> String {
    let quote = |s: &str| {
        if s.contains([',', '"', '\n']) {
            format!("\"{}\"", s.replace('"', "\"\""))
        } else {
            s.to_string()
        }
    };
    format!("{},{},{}\n", quote(path), hash, size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quoting_roundtrips() {
        let line = line("a,b\"c.py", "sha256=x", "1");
        assert_eq!(csv_fields(line.trim_end()), vec!["a,b\"c.py", "sha256=x", "1"]);
    }
}
