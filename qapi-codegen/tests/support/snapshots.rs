//! Checked-in snapshot files (shared by `emit.rs` and `union.rs`): each must equal
//! what the generator writes now; `UPDATE_SNAPSHOTS=1` rewrites them instead.

use std::path::PathBuf;

/// Compares each `(file, text)` with the file, or writes the text with
/// `UPDATE_SNAPSHOTS=1`; panics naming every file that differs and its first line
/// that does.
pub fn check(snapshots: impl IntoIterator<Item = (PathBuf, String)>) {
    let update = std::env::var_os("UPDATE_SNAPSHOTS").is_some_and(|v| v == "1");
    let mut failed = Vec::new();
    for (rs, text) in snapshots {
        if update {
            std::fs::write(&rs, &text).expect("write snapshot");
            continue;
        }
        let old = std::fs::read_to_string(&rs).unwrap_or_default();
        if old != text {
            let line = old
                .lines()
                .zip(text.lines())
                .position(|(a, b)| a != b)
                .unwrap_or(old.lines().count().min(text.lines().count()));
            failed.push(format!(
                "{}: differs from line {} (run with UPDATE_SNAPSHOTS=1 to accept)",
                rs.display(),
                line + 1
            ));
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}
