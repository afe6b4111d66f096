//! The wheel's executables: `.data/scripts` with the `#!python` placeholder resolved, and the
//! launchers an installer writes for `console_scripts` entry points.

/// What the `bin/` launchers run: the function's Python, whatever host built the layer.
pub(crate) const SHEBANG: &str = "#!/usr/bin/env python3";

/// `#!python` is the wheel spec's placeholder for "the interpreter this is installed for".
pub(super) fn rewrite_shebang(data: &[u8]) -> Vec<u8> {
    for placeholder in [&b"#!pythonw"[..], b"#!python"] {
        if let Some(rest) = data.strip_prefix(placeholder) {
            let end = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
            // Only the bare placeholder: `#!python3.9-config`-like lines are left alone.
            if rest[..end].iter().all(|b| b.is_ascii_whitespace()) {
                let mut out = SHEBANG.as_bytes().to_vec();
                out.extend_from_slice(&rest[end..]);
                return out;
            }
        }
    }
    data.to_vec()
}

/// `[console_scripts]` (and `[gui_scripts]`, the same on Linux) as (script name, `module:attr`).
pub(super) fn console_scripts(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    let mut section = "";
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(s) = line.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
            section = s.trim();
            continue;
        }
        if section != "console_scripts" && section != "gui_scripts" {
            continue;
        }
        let (name, target) = line
            .split_once('=')
            .ok_or_else(|| format!("entry_points.txt: `{line}` is not `name = module:function`"))?;
        let name = name.trim();
        if name.is_empty() || name.contains(['/', '\\']) || name == "." || name == ".." {
            return Err(format!(
                "entry_points.txt: console script name `{name}` is not a file name"
            ));
        }
        // Extras (`[extra]`) only matter to installers that resolve; the launcher ignores them.
        let target = target.split('[').next().unwrap_or("").trim();
        out.push((name.to_string(), target.to_string()));
    }
    Ok(out)
}

/// The launcher pip writes, with a portable shebang.
pub(super) fn launcher(target: &str) -> Result<String, String> {
    let (module, attr) = target
        .split_once(':')
        .map(|(m, a)| (m.trim(), a.trim()))
        .filter(|(m, a)| !m.is_empty() && !a.is_empty())
        .ok_or_else(|| format!("entry_points.txt: `{target}` is not `module:function`"))?;
    let ident = |s: &str| {
        s.split('.')
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_alphanumeric() || c == '_'))
    };
    if !ident(module) || !ident(attr) {
        return Err(format!("entry_points.txt: `{target}` is not `module:function`"));
    }
    let import = attr.split('.').next().expect("split yields one part");
    Ok(format!(
        "{SHEBANG}\n# -*- coding: utf-8 -*-\nimport re\nimport sys\nfrom {module} import {import}\nif __name__ == \"__main__\":\n    sys.argv[0] = re.sub(r\"(-script\\.pyw|\\.exe)?$\", \"\", sys.argv[0])\n    sys.exit({attr}())\n"
    ))
}
