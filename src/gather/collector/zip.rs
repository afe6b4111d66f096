//! A collector binary taken out of a collector layer zip pinned by its sha256.

use std::io::{Cursor, Read};
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};

/// The bytes of `member` in the zip at `path`, once the zip's sha256 is the pinned one.
pub(super) fn member(path: &Path, want_sha: &str, member: &str) -> Result<Arc<[u8]>> {
    let bytes = fs_err::read(path).context("the collector zip is missing: download it or fix `zip:` in the spec")?;
    let got = hex::encode(Sha256::digest(&bytes));
    if got != want_sha {
        bail!(
            "{}: sha256 is {got} but the spec pins {want_sha}: download the pinned zip or update `sha256:`",
            path.display()
        );
    }
    let mut zip =
        zip::ZipArchive::new(Cursor::new(bytes)).with_context(|| format!("{}: not a readable zip", path.display()))?;
    let mut file = zip.by_name(member).with_context(|| {
        format!(
            "{}: has no `{member}`: set `member:` to the collector's path in the zip",
            path.display()
        )
    })?;
    let mut data = Vec::new();
    file.read_to_end(&mut data)
        .with_context(|| format!("{}: cannot read `{member}`", path.display()))?;
    Ok(data.into())
}
