//! What a package set's own code needs that its metadata does not declare: contrib below 0.49b0
//! imports `pkg_resources` (0.49b0 moved to `importlib.metadata`), which only setuptools below 82
//! ships; a layer without it fails at the first import of an instrumentation.

use std::str::FromStr;

use pep440_rs::Version;

use crate::model::arch::Arch;
use crate::model::runtime::Runtime;
use crate::python::tags::normalize;

/// The first contrib release that no longer imports `pkg_resources`.
const CONTRIB_WITHOUT_PKG_RESOURCES: &str = "0.49b0";
/// The first setuptools release without `pkg_resources`.
const SETUPTOOLS_WITHOUT_PKG_RESOURCES: &str = "82";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "opentelemetry-instrumentation {instrumentation} (below {CONTRIB_WITHOUT_PKG_RESOURCES}) imports pkg_resources, but {found} for {runtime} on {arch}: pin a setuptools below {SETUPTOOLS_WITHOUT_PKG_RESOURCES} (e.g. setuptools==75.3.4) in requirements.in and run `layerbuild lock`"
)]
pub(crate) struct NoPkgResources {
    pub instrumentation: String,
    pub found: String,
    pub runtime: Runtime,
    pub arch: Arch,
}

/// Checks one target's `(name, version)` pins.
pub(crate) fn check_pkg_resources<'a>(
    pins: impl IntoIterator<Item = (&'a str, &'a str)>,
    arch: Arch,
    runtime: Runtime,
) -> Result<(), NoPkgResources> {
    let (mut instrumentation, mut setuptools) = (None, None);
    for (name, version) in pins {
        match normalize(name).as_str() {
            "opentelemetry-instrumentation" => instrumentation = Some(version),
            "setuptools" => setuptools = Some(version),
            _ => {}
        }
    }
    let below = |v: &str, bound: &str| match (Version::from_str(v), Version::from_str(bound)) {
        (Ok(v), Ok(b)) => v < b,
        // A version pep440 cannot read is not one we can reason about: leave it to the runtime.
        _ => false,
    };
    let Some(instr) = instrumentation.filter(|v| below(v, CONTRIB_WITHOUT_PKG_RESOURCES)) else {
        return Ok(());
    };
    let found = match setuptools {
        Some(v) if below(v, SETUPTOOLS_WITHOUT_PKG_RESOURCES) => return Ok(()),
        Some(v) => format!("setuptools {v} no longer ships it"),
        None => "no setuptools is locked".to_string(),
    };
    Err(NoPkgResources {
        instrumentation: instr.to_string(),
        found,
        runtime,
        arch,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(pins: &[(&str, &str)]) -> Result<(), NoPkgResources> {
        check_pkg_resources(pins.iter().copied(), Arch::X86_64, "python3.9".parse().unwrap())
    }

    #[test]
    fn old_contrib_needs_a_setuptools_with_pkg_resources() {
        assert!(check(&[("opentelemetry-instrumentation", "0.41b0"), ("setuptools", "75.3.4")]).is_ok());
        assert!(check(&[("Opentelemetry_Instrumentation", "0.48b0"), ("setuptools", "81.0.0")]).is_ok());
        let e = check(&[("opentelemetry-instrumentation", "0.41b0"), ("setuptools", "82.0.0")]).unwrap_err();
        assert_eq!(e.found, "setuptools 82.0.0 no longer ships it");
        assert!(e.to_string().starts_with("opentelemetry-instrumentation 0.41b0 (below 0.49b0) imports pkg_resources, but setuptools 82.0.0 no longer ships it for python3.9 on x86_64: pin"), "{e}");
        let e = check(&[("opentelemetry-instrumentation", "0.41b0")]).unwrap_err();
        assert_eq!(e.found, "no setuptools is locked");
    }

    #[test]
    fn current_contrib_needs_none() {
        assert!(check(&[("opentelemetry-instrumentation", "0.49b0")]).is_ok());
        assert!(check(&[("opentelemetry-instrumentation", "0.66b1"), ("setuptools", "84.2.1")]).is_ok());
        assert!(check(&[("requests", "2.32.4")]).is_ok());
    }
}
