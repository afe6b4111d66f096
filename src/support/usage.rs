//! Errors in how a command was called (exit 2), told apart from failures of the work (exit 1):
//! a flag or a path that points at nothing, an architecture or runtime the layer does not have.

use std::process::ExitCode;

/// A command line that cannot work as typed; the message says what, why and how to fix it.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct UsageError(pub String);

/// A usage error as an `anyhow::Error`, for `bail!`-style returns.
pub(crate) fn usage(message: impl Into<String>) -> anyhow::Error {
    UsageError(message.into()).into()
}

/// 2 when a usage error is anywhere in the chain, else 1.
pub fn exit_code(err: &anyhow::Error) -> ExitCode {
    if err.chain().any(|e| e.is::<UsageError>()) {
        ExitCode::from(2)
    } else {
        ExitCode::FAILURE
    }
}

#[cfg(test)]
mod tests {
    use anyhow::Context;

    use super::*;

    #[test]
    fn a_usage_error_under_context_still_exits_2() {
        let err = Err::<(), _>(usage("--arch sparc: unknown"))
            .context("cannot build")
            .unwrap_err();
        assert_eq!(exit_code(&err), ExitCode::from(2));
        assert_eq!(exit_code(&anyhow::anyhow!("zip is broken")), ExitCode::FAILURE);
    }
}
