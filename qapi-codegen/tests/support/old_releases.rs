//! The older QEMU releases `scripts/fetch-old-schemas` puts under
//! `target/old-schemas/<major.minor>/`, and the dialect each is read in (shared by
//! `old_dialects.rs` and `full_bindings.rs`).
// Each test binary uses part of this module.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use qapi_codegen::model::Dialect;

// Public for the tests that include this file and skip for other reasons: one
// copy of the module per test binary.
#[path = "skip.rs"]
pub mod skip;

/// Releases the fetch script provides, each with the dialect the automatic choice
/// reads its sources in (QEMU 6.2 removed the legacy constructs; the doc comments of
/// releases other than 10.0 are read tolerantly either way).
pub const RELEASES: [(&str, Dialect); 7] = [
    ("5.2", Dialect::Legacy),
    ("6.1", Dialect::Legacy),
    ("7.0", Dialect::Current),
    ("7.2", Dialect::Current),
    ("8.0", Dialect::Current),
    ("8.1", Dialect::Current),
    ("9.1", Dialect::Current),
];

/// `target/old-schemas`, or `None` (with a line saying so; a failure when
/// `QMP_TESTS_REQUIRE_ALL` is set) when it was not fetched.
pub fn old_schemas() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/old-schemas");
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

/// `<dir>/<major.minor>/` folders holding a fetched release.
pub fn releases(dir: &Path) -> Vec<PathBuf> {
    let mut versions: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.join("VERSION").is_file() && p.join("qapi").is_dir())
        .collect();
    versions.sort();
    versions
}

/// `(major, minor)` of a release folder.
pub fn release_of(version: &Path) -> (u32, u32) {
    let v = version.file_name().unwrap().to_string_lossy();
    let (major, minor) = v.split_once('.').unwrap();
    (major.parse().unwrap(), minor.parse().unwrap())
}

/// The dialect [`RELEASES`] gives a release; releases it does not list are legacy
/// before 6.2 and current from 6.2 on.
pub fn expected_dialect(release: (u32, u32)) -> Dialect {
    RELEASES
        .iter()
        .find(|(v, _)| *v == format!("{}.{}", release.0, release.1))
        .map_or(
            if release < (6, 2) {
                Dialect::Legacy
            } else {
                Dialect::Current
            },
            |(_, d)| *d,
        )
}
