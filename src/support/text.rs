//! Untrusted text (entry names, manifest fields, lock lines, tool output) made safe to print:
//! control and invisible characters escaped, long values cut.

use std::borrow::Cow;
use std::fmt::{self, Display, Write as _};

/// How many characters of one untrusted value are shown; the rest is counted, not printed.
pub(crate) const MAX_CHARS: usize = 200;

/// How many characters of a whole message reach the terminal.
pub(crate) const MAX_MESSAGE_CHARS: usize = 64 * 1024;

/// An untrusted value, displayed escaped and cut: `format!("entry `{}`", show(name))`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Show<'a> {
    text: &'a str,
    max: usize,
}

/// Shows `text` escaped, cut after [`MAX_CHARS`] characters.
pub(crate) fn show(text: &str) -> Show<'_> {
    Show { text, max: MAX_CHARS }
}

/// Shows `text` escaped, cut after `max` characters.
pub(crate) fn show_max(text: &str, max: usize) -> Show<'_> {
    Show { text, max }
}

impl Display for Show<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (shown, (at, c)) in self.text.char_indices().enumerate() {
            if shown == self.max {
                return write!(f, "…({} more bytes)", self.text.len() - at);
            }
            escape(c, f)?;
        }
        Ok(())
    }
}

/// Bytes that should be UTF-8 (a zip entry name): valid text shown as [`show`] does, every
/// invalid byte as `\xNN`.
pub(crate) fn show_bytes(bytes: &[u8]) -> String {
    let mut out = String::new();
    let mut shown = 0;
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if shown == MAX_CHARS {
                let _ = write!(out, "…(cut at {MAX_CHARS} characters of {} bytes)", bytes.len());
                return out;
            }
            let _ = escape(c, &mut out);
            shown += 1;
        }
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
            shown += 1;
        }
    }
    out
}

/// The last guard before a whole message reaches the terminal: line breaks and tabs stay (a
/// message may span lines), every other control character is escaped, and the length is cut.
pub fn terminal_safe(message: &str) -> Cow<'_, str> {
    let clean = message.chars().all(|c| c == '\n' || c == '\t' || !needs_escape(c));
    if clean && message.len() <= MAX_MESSAGE_CHARS {
        return Cow::Borrowed(message);
    }
    let mut out = String::with_capacity(message.len().min(MAX_MESSAGE_CHARS + 64));
    for (shown, (at, c)) in message.char_indices().enumerate() {
        if shown == MAX_MESSAGE_CHARS {
            let _ = write!(out, "…({} more bytes)", message.len() - at);
            break;
        }
        if c == '\n' || c == '\t' {
            out.push(c);
        } else {
            let _ = escape(c, &mut out);
        }
    }
    Cow::Owned(out)
}

fn escape(c: char, out: &mut impl fmt::Write) -> fmt::Result {
    match c {
        '\n' => out.write_str("\\n"),
        '\r' => out.write_str("\\r"),
        '\t' => out.write_str("\\t"),
        c if (c as u32) < 0x80 && needs_escape(c) => write!(out, "\\x{:02x}", c as u32),
        c if needs_escape(c) => write!(out, "\\u{{{:04x}}}", c as u32),
        c => out.write_char(c),
    }
}

/// JSON as serde wrote it, with every character [`show`] would escape written as a `\uXXXX`
/// escape instead: the same document to a parser, nothing a terminal acts on. serde escapes
/// C0 controls inside strings itself, so a raw line break or tab is layout and stays; every
/// other such character can only be inside a string, where an escape means the same.
pub(crate) fn json_safe(json: String) -> String {
    if !json
        .chars()
        .any(|c| needs_escape(c) && !matches!(c, '\n' | '\t' | '\r'))
    {
        return json;
    }
    let mut out = String::with_capacity(json.len() + 64);
    for c in json.chars() {
        if needs_escape(c) && !matches!(c, '\n' | '\t' | '\r') {
            let mut units = [0u16; 2];
            for u in c.encode_utf16(&mut units) {
                let _ = write!(out, "\\u{u:04x}");
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// A value as pretty JSON that is safe on a terminal (see [`json_safe`]).
pub(crate) fn json_pretty<T: serde::Serialize + ?Sized>(value: &T) -> serde_json::Result<String> {
    serde_json::to_string_pretty(value).map(json_safe)
}

/// Control characters (C0, DEL, C1) and the invisible ones that reorder or hide text.
pub(crate) fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061c}'
                | '\u{200b}'..='\u{200f}'
                | '\u{2028}'..='\u{202e}'
                | '\u{2060}'..='\u{2069}'
                | '\u{feff}'
                | '\u{fff9}'..='\u{fffb}'
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped() {
        let forged = "x\n\u{1b}[2Kok dist/a.zip\r\u{7f}\u{9b}\u{202e}";
        let shown = show(forged).to_string();
        assert_eq!(shown, "x\\n\\x1b[2Kok dist/a.zip\\r\\x7f\\u{009b}\\u{202e}");
        assert!(!shown.chars().any(char::is_control));
        assert_eq!(show("python/otel_wrapper.py").to_string(), "python/otel_wrapper.py");
        assert_eq!(show("naïve/日本.py").to_string(), "naïve/日本.py");
    }

    #[test]
    fn long_values_are_cut_with_a_count() {
        let long = "a".repeat(10_000);
        let shown = show(&long).to_string();
        assert!(shown.starts_with(&"a".repeat(MAX_CHARS)));
        assert!(shown.ends_with("…(9800 more bytes)"), "{shown}");
        assert_eq!(show_max("abcdef", 3).to_string(), "abc…(3 more bytes)");
        assert_eq!(show_max("abc", 3).to_string(), "abc");
    }

    #[test]
    fn invalid_utf8_bytes_are_shown_in_hex() {
        assert_eq!(show_bytes(b"ok/\xff\xfe\n.py"), "ok/\\xff\\xfe\\n.py");
        let long = vec![b'z'; 1000];
        assert!(show_bytes(&long).contains("cut at 200 characters of 1000 bytes"));
    }

    #[test]
    fn json_keeps_its_meaning_and_loses_what_a_terminal_acts_on() {
        let v = serde_json::json!({"name": "a\u{7f}b\u{9b}c\u{202e}d\u{1b}e\nf"});
        let text = json_pretty(&v).unwrap();
        assert!(!text.chars().any(|c| needs_escape(c) && c != '\n'), "{text}");
        assert!(text.contains("a\\u007fb\\u009bc\\u202ed\\u001be\\nf"), "{text}");
        let back: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back, v);
        let plain = serde_json::to_string_pretty(&serde_json::json!({"a": [1, "x"]})).unwrap();
        assert_eq!(json_safe(plain.clone()), plain);
    }

    #[test]
    fn whole_messages_keep_their_lines_and_lose_their_escapes() {
        assert!(matches!(terminal_safe("two\nlines\tok"), Cow::Borrowed(_)));
        assert_eq!(terminal_safe("a\u{1b}[1Ab\nc"), "a\\x1b[1Ab\nc");
        let huge = "y".repeat(MAX_MESSAGE_CHARS + 10);
        assert!(terminal_safe(&huge).ends_with("…(10 more bytes)"));
    }
}
