//! Snapshot tests of the emitter: each `tests/emit/<construct>.json` (one small schema
//! per mapping rule) is generated and compared with the checked-in
//! `tests/emit/<construct>.rs`; `UPDATE_SNAPSHOTS=1` rewrites them instead. Then every
//! snapshot is compiled, with `#![deny(warnings, missing_docs)]`, against the real
//! `qmp` crate (trybuild), so the expected output is also known to be valid Rust.

use std::path::{Path, PathBuf};

use qapi_codegen::emit::{generate, Options};

fn cases() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir("tests/emit")
        .expect("tests/emit")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    v.sort();
    v
}

/// The snapshot text: the generated code wrapped so that it compiles as a program.
fn snapshot_text(json: &Path) -> String {
    let schema = qapi_codegen::front::parse_file(json).unwrap_or_else(|e| panic!("{e}"));
    let code = generate(&schema, &Options::default()).expect("generate");
    format!(
        "#![deny(warnings, missing_docs)]\n#![allow(dead_code)]\n//! Generated from `{}` (snapshot test).\n\n{code}\nfn main() {{}}\n",
        json.file_name().unwrap_or_default().to_string_lossy()
    )
}

#[test]
fn snapshots_match() {
    let update = std::env::var_os("UPDATE_SNAPSHOTS").is_some_and(|v| v == "1");
    let mut failed = Vec::new();
    for json in cases() {
        let rs = json.with_extension("rs");
        let text = snapshot_text(&json);
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

#[test]
fn snapshots_compile() {
    let t = trybuild::TestCases::new();
    for json in cases() {
        t.pass(json.with_extension("rs"));
    }
}

#[test]
fn generation_is_deterministic() {
    let json = Path::new("tests/emit/union.json");
    assert_eq!(snapshot_text(json), snapshot_text(json));
}
