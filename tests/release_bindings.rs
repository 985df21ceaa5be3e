//! The bindings crate builds warning-free through `QMP_SCHEMA` / `QGA_SCHEMA` from the
//! QAPI sources of every older QEMU release `scripts/fetch-old-schemas` fetched
//! (`target/old-schemas/<major.minor>/`), with no dialect given: the system emulator's
//! and the guest agent's schemas in one build, then the storage daemon's where the
//! release has one. Each build is `cargo check` of this crate (feature `qga`, `-D
//! warnings`) in its own target folder, `target/release-bindings`, so that only the
//! build script and this crate run again from one schema to the next, and the
//! workspace's own build is left alone.
//!
//! The doc comments the tolerant reading of an older release drops are reported by the
//! build script as `cargo:warning` lines (`warning: qemu-qapi@…: …`); they are printed
//! here, and are the only warnings allowed.

#[path = "support/skip.rs"]
mod skip;

use std::path::{Path, PathBuf};
use std::process::Command;

/// `target/old-schemas`, or `None` with a line saying so (a failure with
/// `QMP_TESTS_REQUIRE_ALL` set).
fn old_schemas(root: &Path) -> Option<PathBuf> {
    let dir = root.join("target/old-schemas");
    if dir.is_dir() {
        Some(dir)
    } else {
        skip::skipping(&format!(
            "{} is absent (run scripts/fetch-old-schemas)",
            dir.display()
        ));
        None
    }
}

/// One `cargo check` with these variables; the build's stderr, or the failure.
fn check(root: &Path, vars: &[(&str, &Path)]) -> Result<String, String> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
        .join("release-bindings");
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.args([
        "check",
        "--lib",
        "--features",
        "qga",
        "--message-format",
        "short",
    ])
    .current_dir(root)
    .env("CARGO_TARGET_DIR", &target)
    .env("RUSTFLAGS", "-D warnings")
    .env_remove("QMP_SCHEMA_DIALECT")
    .env_remove("QGA_SCHEMA_DIALECT");
    for (k, v) in vars {
        cmd.env(k, v);
    }
    let out = cmd.output().map_err(|e| format!("cargo: {e}"))?;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if out.status.success() {
        Ok(stderr)
    } else {
        Err(stderr)
    }
}

#[test]
fn every_release_builds_through_qmp_schema() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let Some(dir) = old_schemas(root) else {
        return;
    };
    let mut releases: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("old schemas")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.join("qapi/qapi-schema.json").is_file())
        .collect();
    releases.sort();
    assert!(releases.len() >= 7, "releases: {releases:?}");
    let default_ga = root.join("schema/qemu-ga-10.0.json");
    let mut failures = Vec::new();
    let mut built = 0;
    for release in &releases {
        let name = release.file_name().unwrap_or_default().to_string_lossy();
        let system = release.join("qapi/qapi-schema.json");
        let qga = release.join("qga/qapi-schema.json");
        let qsd = release.join("storage-daemon/qapi/qapi-schema.json");
        // The crate snapshots of some releases hold qapi/ only.
        let has_ga = qga.is_file();
        let ga = if has_ga { qga } else { default_ga.clone() };
        let mut builds = vec![(
            if has_ga {
                "system emulator + guest agent"
            } else {
                "system emulator"
            },
            vec![("QMP_SCHEMA", system), ("QGA_SCHEMA", ga)],
        )];
        if qsd.is_file() {
            builds.push(("storage daemon", vec![("QMP_SCHEMA", qsd)]));
        }
        for (what, vars) in builds {
            let vars: Vec<(&str, &Path)> = vars.iter().map(|(k, v)| (*k, v.as_path())).collect();
            match check(root, &vars) {
                Ok(stderr) => {
                    // Only the build script's notes on dropped doc comments.
                    let stray: Vec<&str> = stderr
                        .lines()
                        .filter(|l| {
                            l.starts_with("warning") && !l.starts_with("warning: qemu-qapi@")
                        })
                        .collect();
                    if !stray.is_empty() {
                        failures.push(format!(
                            "QEMU {name} {what}: warnings:\n{}",
                            stray.join("\n")
                        ));
                    }
                    let notes = stderr
                        .lines()
                        .filter(|l| l.starts_with("warning: qemu-qapi@"))
                        .count();
                    println!("QEMU {name} {what}: built ({notes} build-script notes)");
                    for l in stderr
                        .lines()
                        .filter(|l| l.starts_with("warning: qemu-qapi@"))
                    {
                        println!("    {l}");
                    }
                    built += 1;
                }
                Err(stderr) => failures.push(format!("QEMU {name} {what}:\n{stderr}")),
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    assert!(built >= releases.len(), "built {built}");
}

/// A relative `QMP_SCHEMA` that does not exist: the build fails naming the absolute
/// path tried, and says where a relative path is taken from.
#[test]
fn a_missing_qmp_schema_names_the_absolute_path() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    if old_schemas(root).is_none() {
        // Shares the release builds' target folder; only worth it beside them.
        return;
    }
    let err = check(root, &[("QMP_SCHEMA", Path::new("no/such/schema.json"))])
        .expect_err("the build must fail");
    let abs = root.join("no/such/schema.json");
    assert!(err.contains(&format!("'{}'", abs.display())), "{err}");
    assert!(err.contains("QMP_SCHEMA=no/such/schema.json"), "{err}");
}
