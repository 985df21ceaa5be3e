//! The full bindings compile with `#![deny(warnings, missing_docs)]` for QEMU 10.0's
//! system, storage-daemon and guest-agent source schemas and for the
//! `query-qmp-schema` captures under `schema/introspect/` (taken from the installed
//! `qemu-system-x86_64` and `qemu-storage-daemon`; the older releases' bindings are
//! built through `QMP_SCHEMA` by the root crate's `tests/release_bindings.rs`): each
//! is generated into a module of one temporary crate that depends on the real
//! `qmp` crate, and `cargo check` runs on it (sharing `CARGO_TARGET_DIR` when set, so
//! dependencies build once). The root crate's own build covers `cargo clippy` for the
//! 10.0 system and guest agent bindings.
//!
//! Needs the QEMU sources through `QAPI_CORPUS`; skips when it is unset.

use std::path::{Path, PathBuf};
use std::process::Command;

use qapi_codegen::emit::{generate, Options};
use qapi_codegen::model::Dialect;

#[path = "support/corpus.rs"]
mod corpus_dir;
use corpus_dir::corpus;

#[test]
fn full_bindings_compile_without_warnings() {
    let Some(corpus) = corpus("the full bindings build") else {
        return;
    };
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let root = manifest.parent().expect("workspace");
    let mut inputs: Vec<(String, PathBuf, Option<Dialect>)> = vec![
        ("system".into(), corpus.join("qapi/qapi-schema.json"), None),
        (
            "storage_daemon".into(),
            corpus.join("storage-daemon/qapi/qapi-schema.json"),
            None,
        ),
        (
            "guest_agent".into(),
            corpus.join("qga/qapi-schema.json"),
            None,
        ),
    ];
    let mut captures: Vec<PathBuf> = std::fs::read_dir(root.join("schema/introspect"))
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    captures.sort();
    assert!(
        !captures.is_empty(),
        "no query-qmp-schema captures under schema/introspect"
    );
    for c in captures {
        let stem = c
            .file_stem()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let m: String = stem
            .chars()
            .map(|ch| if ch.is_ascii_alphanumeric() { ch } else { '_' })
            .collect();
        inputs.push((format!("introspected_{m}"), c, None));
    }
    // Older releases are built through QMP_SCHEMA by the root crate's
    // tests/release_bindings.rs.

    let dir = std::env::temp_dir().join(format!("qapi-full-bindings-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("src")).expect("temp crate");
    let qmp = root.join("qmp");
    std::fs::write(
        dir.join("Cargo.toml"),
        format!(
            "[package]\nname = \"full-bindings\"\nversion = \"0.0.0\"\nedition = \"2021\"\n\
             [workspace]\n[dependencies]\nqemu-qmp = {{ path = {:?} }}\nserde = \"1\"\nserde_json = \"1\"\n",
            qmp.display().to_string()
        ),
    )
    .expect("Cargo.toml");
    let mut lib = String::from(
        "//! Full bindings, one module per schema.\n#![deny(warnings, missing_docs)]\n",
    );
    for (module, path, dialect) in &inputs {
        let loaded =
            qapi_codegen::config::load_with(path, *dialect).unwrap_or_else(|e| panic!("{e}"));
        let code = generate(&loaded.schema, &Options::default()).expect("generate");
        std::fs::write(dir.join(format!("src/{module}.rs")), code).expect("write module");
        lib.push_str(&format!(
            "/// Bindings for `{}`.\npub mod {module} {{\n    include!(\"{module}.rs\");\n}}\n",
            path.display()
        ));
    }
    std::fs::write(dir.join("src/lib.rs"), lib).expect("lib.rs");
    // Reuse the lock file so no new versions are resolved.
    let _ = std::fs::copy(root.join("Cargo.lock"), dir.join("Cargo.lock"));
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
        .join("full-bindings");
    let out = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .arg("check")
        .arg("--quiet")
        .current_dir(&dir)
        .env("CARGO_TARGET_DIR", &target)
        .env_remove("RUSTFLAGS")
        .output()
        .expect("run cargo");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(out.status.success(), "cargo check failed:\n{stderr}");
    assert!(!stderr.contains("warning"), "warnings:\n{stderr}");
}
