//! A program layerbuild ran (go, pip) failed: the error stays one line, and the program's own
//! output is printed above it, where a reader of the log finds the detail.

/// The one-line summary (what, why, how to fix) and what the program printed.
#[derive(Debug, thiserror::Error)]
#[error("{summary}")]
pub(crate) struct ToolFailed {
    pub summary: String,
    pub output: String,
}

/// The output of every failed program in the chain, indented, to print before the error line.
pub fn output_of(err: &anyhow::Error) -> Vec<String> {
    err.chain()
        .filter_map(|e| e.downcast_ref::<ToolFailed>())
        .flat_map(|t| t.output.lines().map(|l| format!("  | {l}")).collect::<Vec<_>>())
        .collect()
}

#[cfg(test)]
mod tests {
    use anyhow::Context;

    use super::*;

    #[test]
    fn the_output_is_apart_and_the_error_one_line() {
        let err = Err::<(), _>(ToolFailed {
            summary: "`go build` failed (exit status: 1): its output is above: fix the module".into(),
            output: "main.go:3: undefined: x\nmain.go:4: undefined: y\n".into(),
        })
        .context("cannot build the arm64 layer")
        .unwrap_err();
        assert_eq!(
            format!("{err:#}"),
            "cannot build the arm64 layer: `go build` failed (exit status: 1): its output is above: fix the module"
        );
        assert_eq!(
            output_of(&err),
            ["  | main.go:3: undefined: x", "  | main.go:4: undefined: y"]
        );
    }
}
