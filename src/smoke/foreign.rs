//! A layer of another architecture, runtime by runtime: run under qemu-user with a Debian root's
//! CPython exactly as a native run goes, or, where no such CPython can be had, checked
//! statically, with the reason in the report.

use std::path::Path;

use super::Ctx;
use super::emulated::{self, SLOWDOWN};
use super::options::ForeignPython;
use super::report::{Report, RunReport};
use crate::model::arch::Arch;
use crate::model::runtime::Runtime;
use crate::python::debian_root::RootError;

/// What became of one runtime.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Its run is in the report (passed or not).
    Ran,
    /// Not run; checked statically only, for this reason.
    Static(String),
}

/// Runs `rt`'s Python for `arch` under `qemu` and adds the run to `report`, or says why not.
pub(crate) fn run_python(ctx: &Ctx, rt: Runtime, arch: Arch, qemu: &Path, report: &mut Report) -> Outcome {
    let choice = ctx.args.foreign_python;
    if choice == ForeignPython::Never {
        return Outcome::Static("--foreign-python never".into());
    }
    let scope = format!("{rt} {arch}");
    let stage = ctx.progress.stage(&scope, "python root");
    stage.set_message(format!(
        "a Debian {arch} root with CPython {} (debootstrap the first time)",
        rt.dotted()
    ));
    let em = match emulated::interpreter(rt, arch, qemu, ctx.work) {
        Ok(em) => {
            stage.done(match em.root.prepared_in {
                Some(_) => format!("prepared in {}", em.root.dir.display()),
                None => format!("reused {}", em.root.dir.display()),
            });
            em
        }
        Err(RootError::NoSuite { .. }) => {
            return Outcome::Static(format!("no Debian suite has CPython {}", rt.dotted()));
        }
        Err(e) if choice == ForeignPython::Require => {
            report.runs.push(RunReport {
                runtime: rt.to_string(),
                failure: Some(format!("no {arch} Python for {rt} here: {e}")),
                ..RunReport::default()
            });
            return Outcome::Ran;
        }
        Err(e) => {
            report.notes.push(format!(
                "{rt} not run under qemu ({e}); --foreign-python require makes this a failure"
            ));
            return Outcome::Static(format!("no {arch} Python could be prepared here"));
        }
    };
    let (prep, mut run) = super::staged_run(ctx, &scope, &em.interp, &ctx.args.rounds());
    run.python = Some(em.describe.clone());
    run.notes.insert(
        0,
        format!(
            "under emulation every time bound is {SLOWDOWN}x (this run's {} s became {} s); Lambda's 10 s init limit is not judged",
            ctx.args.timeout().as_secs(),
            (ctx.args.timeout() * SLOWDOWN).as_secs()
        ),
    );
    if let Some(took) = em.root.prepared_in {
        run.notes.push(format!(
            "its Debian root was prepared in {} s and is kept in {}",
            took.as_secs(),
            em.root.dir.display()
        ));
    }
    let time_cold_starts = ctx.args.cold_start_runs > 0 && run.worked() && report.cold_start.is_none();
    report.runs.push(run);
    if time_cold_starts {
        report.cold_start = Some(super::staged_cold_starts(ctx, &scope, &em.interp, &prep));
    }
    Outcome::Ran
}

/// The report's one-line account of what ran where.
pub(crate) fn mode(arch: Arch, host: Arch, qemu: &Path, ran: &[String], statically: &[String]) -> String {
    let mut mode = format!("{arch} layer on a {host} host: ");
    if ran.is_empty() {
        mode.push_str(&format!("extensions under {}; Python not run", qemu.display()));
    } else {
        mode.push_str(&format!(
            "{} run under {} with Debian's CPython (time bounds {SLOWDOWN}x)",
            ran.join(", "),
            qemu.display()
        ));
    }
    if !statically.is_empty() {
        mode.push_str(&format!("; checked statically only: {}", statically.join(", ")));
    }
    mode
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mode_names_what_ran_and_what_was_only_read() {
        let q = Path::new("/usr/bin/qemu-aarch64-static");
        let both = mode(
            Arch::Arm64,
            Arch::X86_64,
            q,
            &["python3.9".into()],
            &["python3.8".into()],
        );
        assert_eq!(
            both,
            "arm64 layer on a x86_64 host: python3.9 run under /usr/bin/qemu-aarch64-static with Debian's CPython (time bounds 8x); checked statically only: python3.8"
        );
        let none = mode(Arch::Arm64, Arch::X86_64, q, &[], &["python3.10".into()]);
        assert!(
            none.contains("extensions under /usr/bin/qemu-aarch64-static; Python not run"),
            "{none}"
        );
    }
}
