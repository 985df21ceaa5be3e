//! End to end: a program written against the default bindings' names
//! (`tests/capture_bindings/program.rs`: `StatusInfo`, `RunState`, `VersionInfo`,
//! `BlockDeviceInfo`, `BlockdevOptions`, `BlockdevCreateOptions`, `JobInfo`,
//! `JobStatus`, `MigrationInfo`, and a `match` on `events::Event`) compiles unchanged
//! against the root crate `qemu-qapi` built with `QMP_SCHEMA` pointing at each
//! `query-qmp-schema` capture of `schema/introspect/` (whose types take their names
//! from the snapshots in `schema/`), and against the default bindings as a control.
//!
//! The storage daemon has no `query-status`, `query-migrate` or `STOP`: its program is
//! built without the feature `system`, which holds those parts.
//!
//! The builds share one target folder, `target/capture-bindings/target` (kept between
//! runs): the dependencies are checked once, and each schema reruns only the build
//! script and the bindings crate (`QMP_SCHEMA` changed). On a fresh machine, as in CI,
//! that is one cold check of the dependencies instead of one per schema. `cargo
//! check` is enough to see the compiler errors, which a failure shows in full.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .expect("workspace root")
}

/// Writes `content` unless the file holds it already (so cargo sees no change).
fn write_if_changed(path: &Path, content: &str) {
    if std::fs::read_to_string(path).is_ok_and(|old| old == content) {
        return;
    }
    std::fs::create_dir_all(path.parent().expect("parent")).expect("create dir");
    std::fs::write(path, content).expect("write");
}

#[test]
fn program_compiles_against_bindings_built_from_captures() {
    let root = root();
    let base = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
        .join("capture-bindings");
    let program = base.join("program");
    write_if_changed(
        &program.join("Cargo.toml"),
        &format!(
            "[package]\nname = \"capture-program\"\nversion = \"0.0.0\"\nedition = \"2021\"\n\
             publish = false\n[workspace]\n[lib]\npath = \"src/lib.rs\"\n\
             [dependencies]\nqemu-qapi = {{ path = {:?} }}\n\
             [features]\nsystem = []\n",
            root.display().to_string()
        ),
    );
    let source = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/capture_bindings/program.rs"),
    )
    .expect("program.rs");
    write_if_changed(&program.join("src/lib.rs"), &source);
    // The workspace's lock file, so that no new versions are resolved.
    if let Ok(lock) = std::fs::read_to_string(root.join("Cargo.lock")) {
        if !program.join("Cargo.lock").exists() {
            write_if_changed(&program.join("Cargo.lock"), &lock);
        }
    }

    let introspect = root.join("schema/introspect");
    let mut cases: Vec<(String, Option<PathBuf>, bool)> = vec![("default".into(), None, true)];
    let mut captures: Vec<PathBuf> = std::fs::read_dir(&introspect)
        .expect("schema/introspect")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    captures.sort();
    for c in captures {
        let stem = c
            .file_stem()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let system = !stem.starts_with("qemu-storage-daemon");
        cases.push((stem, Some(c), system));
    }

    let mut failures = Vec::new();
    let started = Instant::now();
    for (label, capture, system) in &cases {
        let t = Instant::now();
        let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        cmd.arg("check")
            .arg("--lib")
            .arg("--color=never")
            .current_dir(&program)
            .env("CARGO_TARGET_DIR", base.join("target"))
            .env_remove("RUSTFLAGS")
            .env_remove("QGA_SCHEMA");
        if *system {
            cmd.args(["--features", "system"]);
        }
        match capture {
            Some(c) => cmd.env("QMP_SCHEMA", c),
            None => cmd.env_remove("QMP_SCHEMA"),
        };
        let out = cmd.output().expect("run cargo");
        // The compiler's messages without cargo's progress lines.
        let stderr: String = String::from_utf8_lossy(&out.stderr)
            .lines()
            .filter(|l| {
                let l = l.trim_start();
                ![
                    "Checking ",
                    "Compiling ",
                    "Blocking ",
                    "Finished ",
                    "Updating ",
                    "Locking ",
                ]
                .iter()
                .any(|p| l.starts_with(p))
            })
            .map(|l| format!("{l}\n"))
            .collect();
        println!(
            "{label}: {} in {:.1} s",
            if out.status.success() { "ok" } else { "FAILED" },
            t.elapsed().as_secs_f64()
        );
        if !out.status.success() {
            failures.push(format!(
                "== {label} (QMP_SCHEMA={}):\n{stderr}",
                capture
                    .as_deref()
                    .map_or("unset".into(), |c| c.display().to_string())
            ));
        } else if stderr.contains("warning") {
            failures.push(format!("== {label}: warnings:\n{stderr}"));
        }
    }
    println!(
        "{} builds in {:.1} s",
        cases.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
