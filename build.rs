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
//! Several releases at once: `QMP_SCHEMA` (and `QGA_SCHEMA`) may list several schemas
//! separated by `:`, and `QAPI_RELEASES` selects the snapshots of `schema/` by release
//! (`7.2..10.0`: every shipped release from 7.2 to 10.0; `7.2,10.0`: these; `7.2`:
//! that one alone) for both the system emulator and the guest agent when their
//! variable is unset. The bindings are then the union of the schemas (see
//! `qapi_codegen::union`), and the crate gets `availability` (cfg `qapi_availability`).
//!
//! A schema error fails the build with its `file:line: message`.
use std::path::PathBuf;
use std::process::ExitCode;

use qapi_codegen::emit::Manual;

/// The snapshots `schema/<prefix><version>.json`, each with its version, oldest first.
fn shipped(prefix: &str) -> Vec<(Vec<u32>, PathBuf)> {
    let mut found: Vec<(Vec<u32>, PathBuf)> = std::fs::read_dir("schema")
        .into_iter()
        .flatten()
        .filter_map(|e| {
            let path = e.ok()?.path();
            let name = path.file_name()?.to_str()?;
            let key = version(name.strip_prefix(prefix)?.strip_suffix(".json")?)?;
            Some((key, path))
        })
        .collect();
    found.sort();
    found
}

/// `schema/<prefix><version>.json`, newest version first.
fn references(prefix: &str) -> Vec<PathBuf> {
    shipped(prefix).into_iter().rev().map(|(_, p)| p).collect()
}

/// The snapshots `schema/<prefix><release>.json` that `QAPI_RELEASES` selects,
/// oldest first: a range `A..B` (every shipped release from A to B), a list `A,B`, or
/// one release.
fn selected(prefix: &str, value: &str) -> Result<Vec<PathBuf>, String> {
    let shipped = shipped(prefix);
    let names = || {
        shipped
            .iter()
            .filter_map(|(_, p)| p.file_stem()?.to_str()?.strip_prefix(prefix))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let bad = |what: &str| {
        format!(
            "QAPI_RELEASES={value:?}: {what} (shipped in schema/ as {prefix}*.json: {}; \
             write a range `7.2..10.0`, a list `7.2,10.0` or one release)",
            names()
        )
    };
    let value = value.trim();
    let picked: Vec<PathBuf> = if let Some((a, b)) = value.split_once("..") {
        let (Some(a), Some(b)) = (version(a.trim()), version(b.trim())) else {
            return Err(bad("not a range of releases"));
        };
        shipped
            .iter()
            .filter(|(v, _)| *v >= a && *v <= b)
            .map(|(_, p)| p.clone())
            .collect()
    } else {
        let mut picked = Vec::new();
        for r in value.split(',').map(str::trim).filter(|r| !r.is_empty()) {
            let v = version(r).ok_or_else(|| bad(&format!("`{r}` is not a release")))?;
            let p = shipped
                .iter()
                .find(|(x, _)| *x == v)
                .ok_or_else(|| bad(&format!("no snapshot of release {r}")))?;
            picked.push(p.1.clone());
        }
        picked
    };
    if picked.is_empty() {
        return Err(bad("no shipped release in it"));
    }
    Ok(picked)
}

/// `"10.0"` → `[10, 0]`.
fn version(v: &str) -> Option<Vec<u32>> {
    v.split('.').map(|n| n.parse().ok()).collect()
}

fn main() -> ExitCode {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=QAPI_RELEASES");
    println!("cargo::rustc-check-cfg=cfg(qapi_availability)");
    let releases = std::env::var("QAPI_RELEASES")
        .ok()
        .filter(|v| !v.trim().is_empty());
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
        let overridden = std::env::var_os(var).filter(|v| !v.is_empty());
        if overridden.is_some() {
            println!("cargo:rerun-if-changed=schema");
        }
        // The variable names the schemas when set; QAPI_RELEASES otherwise.
        let schemas = match (&overridden, &releases) {
            (None, Some(r)) => match selected(prefix, r) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::FAILURE;
                }
            },
            _ => vec![PathBuf::from(schema)],
        };
        let several = match &overridden {
            Some(v) => {
                std::env::split_paths(v)
                    .filter(|p| !p.as_os_str().is_empty())
                    .count()
                    > 1
            }
            None => schemas.len() > 1,
        };
        if several && out == "qapi.rs" {
            println!("cargo:rustc-cfg=qapi_availability");
        }
        let result = qapi_codegen::Config::new()
            .check_arguments(std::env::var_os("CARGO_FEATURE_CHECK_ARGUMENTS").is_some())
            .schema_json(std::env::var_os("CARGO_FEATURE_SCHEMA").is_some())
            .schemas(&schemas)
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
