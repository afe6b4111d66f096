//! Lambda's own limits. They are constants: a spec may ask for less, but no spec or manifest
//! can raise them, since Lambda would refuse the layer at deploy time.

/// Unzipped bytes of a function and all its layers together (250 MB).
pub(crate) const UNZIPPED_BYTES: u64 = 262_144_000;

/// Zipped bytes of a direct upload; larger zips go through S3.
pub(crate) const ZIPPED_DIRECT_BYTES: u64 = 50 * 1024 * 1024;
