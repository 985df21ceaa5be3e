//! Skipping a test whose resource is missing (QEMU 10.0, the unpacked QEMU 7.2 in
//! `target/old-qemu/7.2`, the old schemas in `target/old-schemas`, `QAPI_CORPUS`), in
//! one place for the three crates' tests (each includes this file with `#[path]`;
//! qmp's and qapi-codegen's through the symlink in their own `tests/support/`, as
//! `#[path = "support/skip.rs"]`: a path out of the package would not be in its
//! `.crate`, and scripts/package-check builds the tests from those).
//!
//! Outside CI a missing resource skips the test with a line on stdout. CI sets
//! `QMP_TESTS_REQUIRE_ALL=1` (`.ci/run`), having set every resource up first
//! (`scripts/test`): there a skip would hide a test that did not run, so it fails the
//! test instead.
// Each test binary uses what it needs of this module.
#![allow(dead_code)]

/// The variable that turns skips into failures.
pub const REQUIRE_ALL: &str = "QMP_TESTS_REQUIRE_ALL";

/// Whether skipping is forbidden: `QMP_TESTS_REQUIRE_ALL` is set to anything but
/// empty or `0`.
pub fn required() -> bool {
    std::env::var_os(REQUIRE_ALL).is_some_and(|v| !v.is_empty() && v != "0")
}

/// Reports that the calling test skips (all or part of its work) because `why`; the
/// caller then returns. With `QMP_TESTS_REQUIRE_ALL` set it panics instead, naming
/// `why`, so that a CI run in which a test did not run fails.
#[track_caller]
pub fn skipping(why: &str) {
    if required() {
        panic!("{REQUIRE_ALL} is set, and this test would skip: {why}");
    }
    println!("skipping: {why}");
}
