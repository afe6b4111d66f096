//! Unit tests of `debian_root`.

use super::*;
use crate::support::testenv;

fn rt(minor: u8) -> Runtime {
    Runtime { major: 3, minor }
}

/// A folder holding one executable shell script per `(name, body)`, as a `PATH`.
fn fake_tools(dir: &Path, tools: &[(&str, &str)]) -> OsString {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    for (name, body) in tools {
        let p = bin.join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    bin.into_os_string()
}

fn how<'a>(cache: &'a Path, path_var: OsString, apt: &'a Path) -> Prepare<'a> {
    Prepare {
        cache,
        arch: Arch::Arm64,
        emulator: None,
        limit: Duration::from_secs(30),
        path_var,
        apt_dir: apt,
        mirror_override: Some("file:///nonexistent/debian".into()),
        debootstrap_scripts: apt.join("no-scripts"),
    }
}

#[test]
fn suites_match_lambda_runtimes() {
    assert_eq!(suite_for(rt(9)).unwrap().name, "bullseye");
    assert_eq!(suite_for(rt(11)).unwrap().name, "bookworm");
    assert_eq!(suite_for(rt(13)).unwrap().name, "trixie");
    assert_eq!(suite_for(rt(14)).unwrap().name, "forky");
    assert_eq!(suite_for(rt(14)).unwrap().script_fallback, Some("sid"));
    for minor in [8, 10, 12] {
        assert!(suite_for(rt(minor)).is_none(), "3.{minor}");
    }
    let dir = cache_dir(Path::new("/c"), suite_for(rt(11)).unwrap(), Arch::Arm64);
    assert_eq!(dir, Path::new("/c/roots/v1-bookworm-arm64"));
}

#[test]
fn no_suite_is_an_error_that_says_static() {
    let t = tempfile::tempdir().unwrap();
    let e = prepare(rt(12), &how(t.path(), OsString::new(), t.path())).unwrap_err();
    assert!(matches!(e, RootError::NoSuite { .. }), "{e}");
    assert!(e.to_string().contains("only checked statically"), "{e}");
}

#[test]
fn debs_follow_the_base_list() {
    let debpaths =
        "python3 /var/cache/apt/archives/python3_3.11.2-1_arm64.deb\nlibc6 /var/cache/apt/archives/libc6.deb\n";
    assert_eq!(
        debs_to_unpack("python3 \n", debpaths).unwrap(),
        vec!["/var/cache/apt/archives/python3_3.11.2-1_arm64.deb"]
    );
    let e = debs_to_unpack("python3 libexpat1", debpaths).unwrap_err();
    assert!(e.contains("`libexpat1`"), "{e}");
}

#[test]
fn a_cached_root_needs_no_tools() {
    let t = tempfile::tempdir().unwrap();
    let dir = cache_dir(t.path(), suite_for(rt(11)).unwrap(), Arch::Arm64);
    std::fs::create_dir_all(dir.join("usr/bin")).unwrap();
    std::fs::write(dir.join("usr/bin/python3.11"), "").unwrap();
    // Without the marker the folder is not a root (a rename never leaves one like this,
    // but a hand-made folder might).
    let e = prepare(rt(11), &how(t.path(), OsString::new(), t.path())).unwrap_err();
    assert!(
        matches!(
            e,
            RootError::MissingTool {
                tool: "debootstrap",
                ..
            }
        ),
        "{e}"
    );
    std::fs::write(dir.join(VERSION_FILE), "3.11.2\n").unwrap();
    let root = prepare(rt(11), &how(t.path(), OsString::new(), t.path())).unwrap();
    assert_eq!(root.version, "3.11.2");
    assert_eq!(root.python, dir.join("usr/bin/python3.11"));
    assert_eq!(root.prepared_in, None);
}

#[test]
fn missing_tools_say_how_to_install() {
    let t = tempfile::tempdir().unwrap();
    let path = fake_tools(t.path(), &[("debootstrap", "exit 0")]);
    let e = prepare(rt(9), &how(t.path(), path, t.path())).unwrap_err();
    assert!(matches!(e, RootError::MissingTool { tool: "dpkg-deb", .. }), "{e}");
    let e = prepare(rt(9), &how(t.path(), OsString::new(), t.path())).unwrap_err();
    assert!(e.to_string().contains("apt-get install -y debootstrap"), "{e}");
}

/// Leftovers of a failed preparation: there must be none besides the logs.
fn leftovers(cache: &Path) -> Vec<String> {
    std::fs::read_dir(cache.join("roots"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "logs")
        .collect()
}

#[test]
fn a_failing_debootstrap_names_mirror_and_log() {
    let t = tempfile::tempdir().unwrap();
    let path = fake_tools(
        t.path(),
        &[
            (
                "debootstrap",
                "echo \"E: Failed getting release file $7/dists/$5/Release\" >&2; exit 1",
            ),
            ("dpkg-deb", "exit 0"),
            ("tar", "exit 0"),
        ],
    );
    let e = prepare(rt(13), &how(t.path(), path, t.path())).unwrap_err();
    if !testenv::is_root() {
        assert!(matches!(e, RootError::NotRoot { .. }), "{e}");
        testenv::skip("root (debootstrap runs as root)");
        return;
    }
    let text = e.to_string();
    assert!(matches!(e, RootError::Debootstrap { suite: "trixie", .. }), "{text}");
    assert!(
        text.contains("from file:///nonexistent/debian (found in $LAYERBUILD_DEBIAN_MIRROR)"),
        "{text}"
    );
    assert!(
        text.contains("E: Failed getting release file file:///nonexistent/debian/dists/trixie/Release"),
        "{text}"
    );
    assert!(leftovers(t.path()).is_empty(), "{:?}", leftovers(t.path()));
}

#[test]
fn a_hanging_step_is_killed_at_the_bound() {
    let t = tempfile::tempdir().unwrap();
    let path = fake_tools(
        t.path(),
        &[("debootstrap", "sleep 60"), ("dpkg-deb", "exit 0"), ("tar", "exit 0")],
    );
    let mut h = how(t.path(), path, t.path());
    h.limit = Duration::from_millis(500);
    let started = Instant::now();
    let e = prepare(rt(9), &h).unwrap_err();
    if !testenv::is_root() {
        assert!(matches!(e, RootError::NotRoot { .. }), "{e}");
        testenv::skip("root (debootstrap runs as root)");
        return;
    }
    assert!(matches!(e, RootError::Timeout { .. }), "{e}");
    assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
    assert!(leftovers(t.path()).is_empty(), "{:?}", leftovers(t.path()));
}

#[test]
fn no_mirror_lists_what_was_read() {
    let t = tempfile::tempdir().unwrap();
    let path = fake_tools(
        t.path(),
        &[("debootstrap", "exit 0"), ("dpkg-deb", "exit 0"), ("tar", "exit 0")],
    );
    let apt = t.path().join("apt");
    std::fs::create_dir_all(&apt).unwrap();
    std::fs::write(apt.join("sources.list"), "deb http://ports.invalid/ubuntu jammy main\n").unwrap();
    let mut h = how(t.path(), path, &apt);
    h.mirror_override = None;
    let e = prepare(rt(9), &h).unwrap_err();
    if !testenv::is_root() {
        assert!(matches!(e, RootError::NotRoot { .. }), "{e}");
        testenv::skip("root (debootstrap runs as root)");
        return;
    }
    assert!(matches!(e, RootError::NoMirror { .. }), "{e}");
    assert!(e.to_string().contains("sources.list: add a Debian source"), "{e}");
}

/// Fetches a real root (network, root, qemu-user): what `smoke` does on an x86_64 host.
#[test]
#[ignore = "fetches a Debian root from the mirror in apt's sources; needs root and qemu-user"]
fn prepares_a_real_bullseye_root_once() {
    let t = tempfile::tempdir().unwrap();
    let qemu = crate::smoke::process::find_qemu(Arch::Arm64);
    let host_is_arm = std::env::consts::ARCH == "aarch64";
    assert!(
        host_is_arm || qemu.is_some(),
        "no qemu-aarch64-static: apt-get install -y qemu-user-static"
    );
    let h = Prepare::here(t.path(), Arch::Arm64, if host_is_arm { None } else { qemu.as_deref() });
    let root = prepare(rt(9), &h).unwrap();
    assert!(root.version.starts_with("3.9."), "{root:?}");
    assert!(root.prepared_in.is_some());
    assert!(
        root.dir.join("usr/lib/python3.9/__pycache__").is_dir(),
        "stdlib not compiled"
    );
    assert!(!root.dir.join("var/cache/apt/archives").exists());
    assert!(
        leftovers(t.path()) == vec!["v1-bullseye-arm64".to_string()],
        "{:?}",
        leftovers(t.path())
    );
    let again = prepare(rt(9), &h).unwrap();
    assert_eq!((again.prepared_in, again.version), (None, root.version));
}

#[test]
fn a_suite_debootstrap_does_not_know_gets_its_fallback_script() {
    let t = tempfile::tempdir().unwrap();
    let seen = t.path().join("args");
    let path = fake_tools(
        t.path(),
        &[
            (
                "debootstrap",
                &format!("printf '%s\\n' \"$@\" > '{}'; exit 1", seen.display()),
            ),
            ("dpkg-deb", "exit 0"),
            ("tar", "exit 0"),
        ],
    );
    let e = prepare(rt(14), &how(t.path(), path, t.path())).unwrap_err();
    if unsafe { libc::geteuid() } != 0 {
        assert!(matches!(e, RootError::NotRoot { .. }), "{e}");
        return;
    }
    assert!(matches!(e, RootError::Debootstrap { suite: "forky", .. }), "{e}");
    let args = std::fs::read_to_string(&seen).unwrap();
    let last = args.lines().last().unwrap();
    assert_eq!(Path::new(last), t.path().join("no-scripts/sid"), "{args}");
}

#[test]
fn the_launcher_runs_the_roots_python_through_the_roots_loader() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("it's a root");
    let suite = suite_for(rt(14)).unwrap();
    let (triplet, ld) = loader(Arch::X86_64);
    let lib = root.join("usr/lib").join(triplet);
    std::fs::create_dir_all(&lib).unwrap();
    // A stand-in for the loader that prints what it was given, one argument per line.
    write_executable(&lib.join(ld), "#!/bin/sh\nfor a in \"$@\"; do echo \"$a\"; done\n").unwrap();
    let launcher = launcher_path(&root, suite);
    write_executable(&launcher, &launcher_script(&root, suite, Arch::X86_64)).unwrap();
    let out = std::process::Command::new(&launcher)
        .args(["-c", "print('a b')"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let lines: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    let python = root.join("usr/bin/python3.14");
    assert_eq!(
        lines,
        [
            "--library-path".to_string(),
            lib.display().to_string(),
            python.display().to_string(),
            "-c".into(),
            "print('a b')".into()
        ]
    );
}

/// Fetches a real forky root for this host (network, root) and runs its python3.14 natively:
/// what `layerbuild python fetch python3.14` does for bytecode and smoke.
#[test]
#[ignore = "fetches a Debian root from the mirror in apt's sources; needs root"]
fn prepares_a_real_native_forky_root_whose_python_runs() {
    let t = tempfile::tempdir().unwrap();
    let host = Arch::parse(std::env::consts::ARCH).unwrap();
    let h = Prepare::here(t.path(), host, None);
    let root = prepare(rt(14), &h).unwrap();
    assert!(root.version.starts_with("3.14."), "{root:?}");
    let launcher = root.launcher.clone().expect("a native root has a launcher");
    assert_eq!(native_launcher(t.path(), rt(14), host), Some(launcher.clone()));
    let out = std::process::Command::new(&launcher)
        .args([
            "-I",
            "-c",
            "import ssl, sqlite3, sys; print(sys.version.split()[0], sys.prefix)",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        text.trim(),
        format!("{} {}", root.version, root.dir.join("usr").display())
    );
}
