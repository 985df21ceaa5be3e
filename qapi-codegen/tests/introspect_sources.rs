//! QEMU 10.0's QAPI sources (from `QAPI_CORPUS`), written out with
//! `introspect::to_json`, against what the installed QEMU 10.0 binaries report
//! (`schema/introspect/`).
//!
//! QEMU builds its introspection data from these same sources, leaving out what its
//! build's conditions exclude. So the two must agree on every command, event, member,
//! enum value, branch and feature, except items that carry an `if` in the sources (and
//! are not compiled into that binary). Types are matched by where they are used, since
//! the binary's names are masked.

use std::path::Path;

use qapi_codegen::introspect::read;
use qapi_codegen::model::Schema;

#[path = "support/as_serde.rs"]
mod as_serde;
#[path = "support/schema_diff.rs"]
mod schema_diff;

#[path = "support/corpus.rs"]
mod corpus_dir;
use corpus_dir::corpus;

/// The release of the binaries whose output is in `schema/introspect/`.
const BINARY_VERSION: (u32, u32) = (10, 0);

fn captured(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../schema/introspect")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Reads the sources at `root` and the capture; `None` when there is no corpus.
fn diff(root: &str, capture: &str) -> Option<schema_diff::Diff> {
    let corpus = corpus("the comparison with the sources")?;
    let path = corpus.join(root);
    assert!(
        path.is_file(),
        "QAPI_CORPUS is set but {} is missing",
        path.display()
    );
    let schema: Schema = qapi_codegen::front::parse_file(&path).unwrap_or_else(|e| panic!("{e}"));
    let live = read(&captured(capture), capture).unwrap();
    Some(schema_diff::diff(&schema, &live, BINARY_VERSION))
}

#[test]
fn system_sources_match_the_binary() {
    if let Some(d) = diff("qapi/qapi-schema.json", "qemu-system-x86_64-10.0.json") {
        d.check("qapi/qapi-schema.json vs qemu-system-x86_64 10.0");
    }
}

#[test]
fn storage_daemon_sources_match_the_binary() {
    let root = "storage-daemon/qapi/qapi-schema.json";
    if let Some(d) = diff(root, "qemu-storage-daemon-10.0.json") {
        d.check("storage-daemon/qapi/qapi-schema.json vs qemu-storage-daemon 10.0");
    }
}

/// The comparison is not vacuous: the system emulator's sources against the storage
/// daemon's output leave most commands unexplained, and the storage daemon's sources
/// against the system emulator's output find commands only in the binary.
#[test]
fn comparison_notices_differences() {
    let Some(d) = diff("qapi/qapi-schema.json", "qemu-storage-daemon-10.0.json") else {
        return;
    };
    assert!(d.unexplained() > 100, "{}", d.unexplained());
    let Some(d) = diff(
        "storage-daemon/qapi/qapi-schema.json",
        "qemu-system-x86_64-10.0.json",
    ) else {
        return;
    };
    assert!(!d.mismatches.is_empty());
}
