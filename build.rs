//! Generates the bindings (see `qapi-codegen`'s `Config`).
//!
//! * `qapi.rs`: QMP, from `schema/qemu-system-10.0.json` (a definitions-only snapshot
//!   of QEMU 10.0's system emulator schema), or from the file the environment variable
//!   `QMP_SCHEMA` names: QAPI sources (`qapi-schema.json`) or `query-qmp-schema`
//!   output, detected from the content.
//! * `qga.rs` (feature `qga`): the guest agent, from `schema/qemu-ga-10.0.json`, or from
//!   `QGA_SCHEMA`.
//!
//! `query-qmp-schema` output masks type names; its types take the names the named
//! snapshots of `schema/` give them (every `schema/qemu-system-*.json` for QMP, which
//! also covers the storage daemon, whose schema is a subset of the system emulator's;
//! every `schema/qemu-ga-*.json` for the guest agent; newest release first), so that
//! a program written against the default bindings compiles against bindings built
//! from a capture of the QEMU it runs on.
//!
//! Each item's docs link to its entry in the manual of its program: QEMU's QMP
//! reference manual, or the guest agent protocol reference.
//!
//! A schema error fails the build with its `file:line: message`.
use std::path::PathBuf;
use std::process::ExitCode;

use qapi_codegen::emit::Manual;

/// `schema/<prefix><version>.json`, newest version first.
fn references(prefix: &str) -> Vec<PathBuf> {
    let mut found: Vec<(Vec<u32>, PathBuf)> = std::fs::read_dir("schema")
        .into_iter()
        .flatten()
        .filter_map(|e| {
            let path = e.ok()?.path();
            let name = path.file_name()?.to_str()?;
            let version = name.strip_prefix(prefix)?.strip_suffix(".json")?;
            let key = version
                .split('.')
                .map(|n| n.parse().ok())
                .collect::<Option<Vec<u32>>>()?;
            Some((key, path))
        })
        .collect();
    found.sort();
    found.into_iter().rev().map(|(_, p)| p).collect()
}

fn main() -> ExitCode {
    println!("cargo:rerun-if-changed=build.rs");
    let mut jobs = vec![(
        "schema/qemu-system-10.0.json",
        "QMP_SCHEMA",
        "qapi.rs",
        Manual::qmp(),
        "qemu-system-",
    )];
    if std::env::var_os("CARGO_FEATURE_QGA").is_some() {
        jobs.push((
            "schema/qemu-ga-10.0.json",
            "QGA_SCHEMA",
            "qga.rs",
            Manual::guest_agent(),
            "qemu-ga-",
        ));
    }
    for (schema, var, out, manual, prefix) in jobs {
        // With an override, a reference added to schema/ changes the names.
        if std::env::var_os(var).is_some_and(|v| !v.is_empty()) {
            println!("cargo:rerun-if-changed=schema");
        }
        let result = qapi_codegen::Config::new()
            .check_arguments(std::env::var_os("CARGO_FEATURE_CHECK_ARGUMENTS").is_some())
            .schema_json(std::env::var_os("CARGO_FEATURE_SCHEMA").is_some())
            .schema(schema)
            .env_override(Some(var))
            .manual(manual)
            .name_references(references(prefix))
            .generate_to_out_dir(out);
        if let Err(e) = result {
            // cargo shows a build script's stderr when it fails.
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}
