//! A collector binary taken out of a collector layer zip pinned by its sha256.

use std::io::Cursor;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result, anyhow, bail};
use sha2::{Digest, Sha256};

use crate::check::zipcanon;
use crate::support::text::show;
use crate::support::{extract, input};

/// The bytes of `member` in the zip at `path`, once the zip's sha256 is the pinned one.
pub(super) fn member(path: &Path, want_sha: &str, member: &str) -> Result<Arc<[u8]>> {
    let bytes = input::read(path, input::ARCHIVE_CAP, "collector zip")
        .context("the collector zip is missing or unreadable: download it or fix `zip:` in the spec")?;
    let shown = show(&path.display().to_string()).to_string();
    let got = hex::encode(Sha256::digest(&bytes));
    if got != want_sha {
        bail!("{shown}: sha256 is {got} but the spec pins {want_sha}: download the pinned zip or update `sha256:`");
    }
    zipcanon::scan(&mut Cursor::new(&bytes), bytes.len() as u64)
        .map_err(|e| anyhow!("{shown}: not a zip layerbuild can read safely: {e}"))?;
    let mut zip = zip::ZipArchive::new(Cursor::new(bytes)).with_context(|| format!("{shown}: not a readable zip"))?;
    let mut file = zip.by_name(member).with_context(|| {
        format!(
            "{shown}: has no `{}`: set `member:` to the collector's path in the zip",
            show(member)
        )
    })?;
    let data = extract::read_entry(&mut file, input::FILE_CAP)
        .map_err(|e| anyhow!("{shown}: cannot read `{}`: {e}", show(member)))?;
    Ok(data.into())
}
