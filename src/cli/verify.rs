//! `layerbuild verify`: re-check finished zips and print one line per zip.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use serde_json::json;

use crate::support::input;
use crate::support::text::{json_pretty, show, terminal_safe};
use crate::support::usage::usage;
use crate::verify;

#[derive(Debug, Args)]
pub(super) struct VerifyArgs {
    /// Zips to check; each needs the manifest written beside it by `build`.
    #[arg(required = true, value_name = "ZIP")]
    zips: Vec<PathBuf>,
    /// Manifest to check against, instead of the one beside the zip.
    #[arg(long, value_name = "PATH")]
    manifest: Option<PathBuf>,
    /// Print a machine-readable summary on stdout.
    #[arg(long)]
    json: bool,
    /// Print nothing on success.
    #[arg(long, short)]
    quiet: bool,
}

pub(super) fn run(args: &VerifyArgs) -> Result<ExitCode> {
    if args.manifest.is_some() && args.zips.len() > 1 {
        return Err(usage(
            "--manifest names one manifest: verify one zip at a time with it, or drop --manifest to use the one beside each zip",
        ));
    }
    for zip in &args.zips {
        require_zip(zip)?;
    }
    let results = verify::run(&args.zips, args.manifest.as_deref())?;
    for (_, v) in &results {
        for w in &v.warnings {
            eprintln!("layerbuild: warning: {}", terminal_safe(w));
        }
    }
    if args.json {
        let v: Vec<_> = results
            .iter()
            .map(|(z, v)| json!({"zip": z, "ok": true, "entries": v.entries, "size": v.size, "unzipped_size": v.unzipped, "sha256": v.sha256, "checked_beside": v.beside}))
            .collect();
        println!("{}", json_pretty(&json!({ "verified": v }))?);
    } else if !args.quiet {
        for (z, v) in &results {
            let beside = if v.beside.is_empty() {
                "no .sha256 or SBOM beside it".to_string()
            } else {
                let names: Vec<String> = v.beside.iter().map(|n| show(n).to_string()).collect();
                format!("also checked {}", names.join(", "))
            };
            println!(
                "ok {} ({} entries, {} bytes, sha256 {}; {beside})",
                show(&z.display().to_string()),
                v.entries,
                v.size,
                v.sha256
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A path that names nothing is a usage error; a file that is not a zip at all is named as
/// such, before any talk of manifests. A file with a zip's end record is left to `verify`,
/// which names what else is wrong with it (bytes before or after the archive, and so on).
fn require_zip(zip: &std::path::Path) -> Result<()> {
    use std::io::{Read, Seek, SeekFrom};
    // The end record and its comment sit in the last 22 + 65,535 bytes of a zip.
    const TAIL: u64 = 22 + 65_535;
    let io = |source| input::InputError::Io {
        path: zip.to_path_buf(),
        source,
    };
    // Opened as a regular file first: a FIFO or a device is refused before anything is read.
    let looks_like_zip = input::open_regular(zip).and_then(|mut f| {
        let len = f.metadata().map_err(io)?.len();
        let mut head = [0u8; 4];
        let got = f.read(&mut head).map_err(io)?;
        if got == 4 && (&head == b"PK\x03\x04" || &head == b"PK\x05\x06") {
            return Ok(true);
        }
        f.seek(SeekFrom::Start(len.saturating_sub(TAIL))).map_err(io)?;
        let mut tail = Vec::with_capacity(input::capacity(len, TAIL));
        f.take(TAIL).read_to_end(&mut tail).map_err(io)?;
        Ok(tail.windows(4).any(|w| w == b"PK\x05\x06"))
    });
    match looks_like_zip {
        Err(e) if e.is_not_found() => Err(usage(format!(
            "{}: no such file: give the path of a layer zip written by `layerbuild build`",
            zip.display()
        ))),
        Err(e) => Err(anyhow::Error::new(e)),
        Ok(true) => Ok(()),
        Ok(false) => anyhow::bail!(
            "{}: not a zip file: give a layer zip written by `layerbuild build`",
            zip.display()
        ),
    }
}
