//! A Python runtime of another architecture: the CPython of a cached Debian root, started through
//! a launcher that runs it under qemu-user, so that smoke runs it exactly as it runs a native one
//! (exec wrapper, runtime client, handler, the collector, the receiver).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::python::{Foreign, Interp};
use crate::model::arch::Arch;
use crate::model::runtime::Runtime;
use crate::python::debian_root::{self, Prepare, Root, RootError, shell_word};

/// How much longer every time bound of a run is under emulation. CPython under qemu-user starts
/// and imports 4 to 8 times slower than natively on this 2-core machine (the SDK and the
/// instrumentations: about 1.3 s natively, 5 to 10 s emulated under load).
pub(crate) const SLOWDOWN: u32 = 8;

/// A foreign interpreter ready to run, and where it came from.
pub(crate) struct Emulated {
    pub(crate) interp: Interp,
    pub(crate) root: Root,
    /// What the report says the interpreter is.
    pub(crate) describe: String,
}

/// The runtime's CPython for `arch` from a Debian root (prepared once, then cached), with a
/// `python3.X` launcher in a bin folder under `work`, as Lambda has /var/lang/bin.
pub(crate) fn interpreter(rt: Runtime, arch: Arch, qemu: &Path, work: &Path) -> Result<Emulated, RootError> {
    let bin = work.join(format!("bin-{rt}-{}", arch.wheel_machine()));
    let io = |e: std::io::Error| RootError::Io {
        path: bin.clone(),
        what: e.to_string(),
    };
    std::fs::create_dir_all(&bin).map_err(io)?;
    let cpu = cpu_model(qemu, arch);
    let emulator = bin.join(format!("qemu-{}", arch.wheel_machine()));
    write_script(&emulator, &run_under(qemu, cpu, &[])).map_err(io)?;
    let cache = crate::support::cache::dir()
        .and_then(|c| crate::support::cache::ensure_private(&c).map(|()| c))
        .map_err(|e| RootError::Io {
            path: std::path::PathBuf::from("the layerbuild cache"),
            what: format!("{e:#}"),
        })?;
    let how = Prepare::here(&cache, arch, Some(&emulator));
    if let Some(suite) = debian_root::suite_for(rt)
        && !debian_root::cache_dir(&cache, suite, arch).exists()
    {
        eprintln!(
            "layerbuild: smoke: preparing a Debian {} {arch} root for {rt} (once; it is kept in {})",
            suite.name,
            cache.join("roots").display()
        );
    }
    let root = debian_root::prepare(rt, &how)?;
    let python = bin.join(format!("python{}", rt.dotted()));
    let script = run_under(qemu, cpu, &[Path::new("-L"), &root.dir, &root.python]);
    write_script(&python, &script).map_err(io)?;
    std::os::unix::fs::symlink(python.file_name().unwrap_or_default(), bin.join("python3"))
        .or_else(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                Ok(())
            } else {
                Err(e)
            }
        })
        .map_err(io)?;
    let suite = debian_root::suite_for(rt).map(|s| s.name).unwrap_or("?");
    let cpu_note = cpu.map(|c| format!(" -cpu {c}")).unwrap_or_default();
    Ok(Emulated {
        describe: format!(
            "Debian {suite} CPython {} for {arch} under {}{cpu_note}",
            root.version,
            qemu.display()
        ),
        interp: Interp {
            runtime: rt,
            python,
            bin_dir: bin,
            foreign: Some(Foreign { arch, emulator }),
            own_pip: false,
        },
        root,
    })
}

/// The CPU qemu emulates for `arch`: Lambda's arm64 is Graviton2, a Neoverse N1 (Armv8.2). qemu's
/// default `max` CPU has pointer authentication, which Debian trixie's binaries use on every
/// call and qemu emulates with a real cipher: CPython 3.13 ran 10 to 20 times slower with it.
/// An older qemu without the N1 model gets a Cortex-A72 (Armv8.0, no pointer authentication).
fn cpu_model(qemu: &Path, arch: Arch) -> Option<&'static str> {
    if arch != Arch::Arm64 {
        return None;
    }
    let out = std::process::Command::new(qemu).args(["-cpu", "help"]).output().ok()?;
    let known = String::from_utf8_lossy(&out.stdout).into_owned();
    let listed = |m: &str| known.split_whitespace().any(|w| w == m);
    ["neoverse-n1", "cortex-a72"].into_iter().find(|m| listed(m))
}

/// A shell script that runs `qemu` (with `cpu`) on `args` and then its own arguments: with
/// `-L ROOT ROOT/usr/bin/python3.X`, the root's interpreter with the root as its library prefix
/// (no binfmt registration or namespaces needed).
fn run_under(qemu: &Path, cpu: Option<&str>, args: &[&Path]) -> String {
    let mut words = vec![shell_word(qemu)];
    if let Some(c) = cpu {
        words.extend(["-cpu".to_string(), c.to_string()]);
    }
    words.extend(args.iter().map(|a| shell_word(a)));
    format!(
        "#!/bin/sh\n# Written by layerbuild smoke: runs code of another architecture under qemu-user.\nexec {} \"$@\"\n",
        words.join(" ")
    )
}

fn write_script(path: &Path, text: &str) -> std::io::Result<()> {
    std::fs::write(path, text)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn launcher_passes_arguments_through_one_quoted_word_each() {
        let dir = tempfile::tempdir().unwrap();
        // A stand-in for qemu that prints what it was given, one argument per line.
        let fake = dir.path().join("fake qemu's");
        std::fs::write(&fake, "#!/bin/sh\nfor a in \"$@\"; do echo \"$a\"; done\n").unwrap();
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
        let script = dir.path().join("python3.11");
        let root = Path::new("/roots/it's here");
        let python = root.join("usr/bin/python3.11");
        let text = run_under(&fake, Some("neoverse-n1"), &[Path::new("-L"), root, &python]);
        write_script(&script, &text).unwrap();
        let out = Command::new(&script).args(["-c", "print('a b')", ""]).output().unwrap();
        assert!(out.status.success(), "{out:?}");
        let lines: Vec<String> = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect();
        assert_eq!(
            lines,
            [
                "-cpu",
                "neoverse-n1",
                "-L",
                "/roots/it's here",
                "/roots/it's here/usr/bin/python3.11",
                "-c",
                "print('a b')",
                ""
            ]
        );
    }
}
