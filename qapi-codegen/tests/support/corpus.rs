//! Where QEMU's schemas and QAPI test suite are: the folder `QAPI_CORPUS` names (see
//! `corpus.rs` for its layout).

use std::path::{Path, PathBuf};

// Public for the tests that include this file and skip for other reasons: one
// copy of the module per test binary.
#[path = "skip.rs"]
pub mod skip;

/// The corpus folder; a relative `QAPI_CORPUS` is taken from the workspace root (CI
/// passes `../shared/qemu-10.0`), whatever folder cargo runs the test in. `None`, after
/// printing that `what` is skipped, when the variable is not set (a failure when
/// `QMP_TESTS_REQUIRE_ALL` is: `tests/support/skip.rs`).
pub fn corpus(what: &str) -> Option<PathBuf> {
    let Some(p) = std::env::var_os("QAPI_CORPUS") else {
        skip::skipping(&format!("QAPI_CORPUS is not set: {what}"));
        return None;
    };
    let p = PathBuf::from(p);
    Some(if p.is_relative() {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(p)
    } else {
        p
    })
}
