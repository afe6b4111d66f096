//! Tests that need what a machine may lack (root, qemu, an interpreter, the network): where it
//! is missing they skip, saying so, unless `LAYERBUILD_REQUIRE_ALL=1` (CI sets it) turns the
//! skip into a failure, so that a CI run cannot pass having checked nothing.

/// The variable that makes every skip a failure.
pub(crate) const REQUIRE_ALL: &str = "LAYERBUILD_REQUIRE_ALL";

/// Called where a test gives up for want of `missing`; the test returns after it. Fails the
/// test instead when [`REQUIRE_ALL`] is `1`.
pub(crate) fn skip(missing: &str) {
    if required(std::env::var_os(REQUIRE_ALL)) {
        panic!(
            "{REQUIRE_ALL}=1 but this test needs {missing}: provide it (see README.md, Tests) or unset {REQUIRE_ALL}"
        );
    }
    eprintln!("skipped: this test needs {missing}");
}

fn required(value: Option<std::ffi::OsString>) -> bool {
    value.is_some_and(|v| v == "1")
}

/// Whether the tests run as root.
pub(crate) fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_one_turns_skips_into_failures() {
        assert!(required(Some("1".into())));
        assert!(!required(Some("0".into())));
        assert!(!required(Some("".into())));
        assert!(!required(None));
    }
}
