//! Snapshot tests of the emitter: each `tests/emit/<construct>.json` (one small schema
//! per mapping rule) is generated and compared with the checked-in
//! `tests/emit/<construct>.rs`; `UPDATE_SNAPSHOTS=1` rewrites them instead. Then every
//! snapshot is compiled, with `#![deny(warnings, missing_docs)]`, against the real
//! `qmp` crate (trybuild), so the expected output is also known to be valid Rust.
//! Last, the bindings built from the checked-in snapshots under `schema/` link their
//! items to their entries in QEMU's manuals.

use std::path::{Path, PathBuf};

use qapi_codegen::emit::{generate, Manual, Options};

#[path = "support/skip.rs"]
mod skip;
#[path = "support/snapshots.rs"]
mod snapshots;

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
    snapshots::check(cases().into_iter().map(|json| {
        let text = snapshot_text(&json);
        (json.with_extension("rs"), text)
    }));
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

/// The docs of item `what name` in `code`: its lines up to its first attribute or item
/// line, without the `///`.
fn item_docs(code: &str, what: &str, name: &str) -> Vec<String> {
    let head = format!("/// QAPI {what} `{name}`.");
    let mut lines = code.lines().map(str::trim_start);
    assert!(lines.any(|l| l == head), "no {what} {name}");
    let mut out = vec![head];
    out.extend(
        lines
            .take_while(|l| l.starts_with("///"))
            .map(str::to_owned),
    );
    out
}

/// Generates the bindings for `schema/FILE` with `manual`.
fn checked_in(file: &str, manual: Manual) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../schema")
        .join(file);
    let schema = qapi_codegen::front::parse_file(&path).unwrap_or_else(|e| panic!("{e}"));
    let opts = Options {
        manual,
        ..Options::default()
    };
    generate(&schema, &opts).expect("generate")
}

#[test]
fn checked_in_snapshots_link_items_to_their_manual_entries() {
    let qmp = "https://www.qemu.org/docs/master/interop/qemu-qmp-ref.html";
    let code = checked_in("qemu-system-10.0.json", Manual::qmp());
    for (what, name, anchor, since) in [
        (
            "command",
            "block_resize",
            "command-QMP-block-core.block_resize",
            Some("0.14"),
        ),
        (
            "event",
            "BLOCK_JOB_COMPLETED",
            "event-QMP-block-core.BLOCK_JOB_COMPLETED",
            Some("1.1"),
        ),
        (
            "struct",
            "SnapshotInfo",
            "object-QMP-block-core.SnapshotInfo",
            Some("1.3"),
        ),
        (
            "union",
            "BlockdevOptions",
            "object-QMP-block-core.BlockdevOptions",
            Some("2.9"),
        ),
        ("enum", "RunState", "enum-QMP-run-state.RunState", None),
        // Defined in block.json, documented in block-core's section of the manual.
        (
            "enum",
            "BiosAtaTranslation",
            "enum-QMP-block-core.BiosAtaTranslation",
            Some("2.0"),
        ),
        (
            "alternate",
            "StrOrNull",
            "alternate-QMP-common.StrOrNull",
            Some("2.10"),
        ),
    ] {
        let mut want = vec![
            format!("/// QAPI {what} `{name}`."),
            "///".to_owned(),
            format!("/// See [`{name}` in QEMU's QMP reference manual]({qmp}#{anchor}) for what it does."),
        ];
        if let Some(v) = since {
            want.push("///".to_owned());
            want.push(format!("/// Since QEMU {v}."));
        }
        let got = item_docs(&code, what, name);
        assert_eq!(got[..want.len()], want[..], "{name}");
    }

    let qga = "https://www.qemu.org/docs/master/interop/qemu-ga-ref.html";
    let code = checked_in("qemu-ga-10.0.json", Manual::guest_agent());
    for (what, name, anchor, since) in [
        (
            "command",
            "guest-sync",
            "command-QGA-qapi-schema.guest-sync",
            "0.15.0",
        ),
        (
            "struct",
            "GuestAgentInfo",
            "object-QGA-qapi-schema.GuestAgentInfo",
            "0.15.0",
        ),
        (
            "enum",
            "GuestDiskBusType",
            "enum-QGA-qapi-schema.GuestDiskBusType",
            "2.2; 'Unknown' and all entries below since 2.4",
        ),
    ] {
        let want = [
            format!("/// QAPI {what} `{name}`."),
            "///".to_owned(),
            format!(
                "/// See [`{name}` in QEMU's guest agent protocol reference]({qga}#{anchor}) \
                 for what it does."
            ),
            "///".to_owned(),
            format!("/// Since QEMU {since}."),
        ];
        let got = item_docs(&code, what, name);
        assert_eq!(got[..want.len()], want[..], "{name}");
    }
}

/// The docs of field `field` (its declaration, `pub name:`) of the struct whose
/// declaration line is `item`, without their indentation: the `///` lines before it.
fn field_docs(code: &str, item: &str, field: &str) -> Vec<String> {
    let start = code.find(item).unwrap_or_else(|| panic!("no {item}"));
    let at = start
        + code[start..]
            .find(field)
            .unwrap_or_else(|| panic!("no {field} in {item}"));
    let mut lines: Vec<String> = code[..at]
        .trim_end()
        .lines()
        .rev()
        .map(str::trim)
        .take_while(|l| l.starts_with("///") || l.starts_with("#["))
        .filter(|l| l.starts_with("///"))
        .map(str::to_owned)
        .collect();
    lines.reverse();
    lines
}

/// A member's docs say what the schema says of it: from a definitions-only snapshot
/// (no prose), its QAPI type, optional or required, conditional, deprecated or
/// unstable, and the link to the manual's entry of the command or type that documents
/// it; from QAPI sources, its own text first, then the same.
#[test]
fn member_docs_give_type_presence_condition_features_and_manual_entry() {
    let qmp = "https://www.qemu.org/docs/master/interop/qemu-qmp-ref.html";
    let see = |entry: &str, anchor: &str, tail: &str| {
        format!("/// See [`{entry}` in QEMU's QMP reference manual]({qmp}#{anchor}){tail}.")
    };
    let what = " for what it does";
    let code = checked_in("qemu-system-10.0.json", Manual::qmp());
    let resize = "command-QMP-block-core.block_resize";
    for (item, field, want) in [
        (
            "pub struct BlockResize {",
            "pub size:",
            vec![
                "/// QAPI member `size`: `int`, required.".to_owned(),
                "///".to_owned(),
                see("block_resize", resize, what),
            ],
        ),
        (
            "pub struct BlockResize {",
            "pub node_name:",
            vec![
                "/// QAPI member `node-name`: `str`, optional.".to_owned(),
                "///".to_owned(),
                see("block_resize", resize, what),
            ],
        ),
        (
            "pub struct CpuModelExpansionInfo {",
            "pub deprecated_props:",
            vec![
                "/// QAPI member `deprecated-props`: `['str']`, required (an `Option` here: \
                 absent where its condition does not hold), conditional (QAPI `if`)."
                    .to_owned(),
                "///".to_owned(),
                see(
                    "CpuModelExpansionInfo",
                    "object-QMP-machine-target.CpuModelExpansionInfo",
                    what,
                ),
                "///".to_owned(),
                "/// Only in QEMU builds where `TARGET_S390X` holds.".to_owned(),
            ],
        ),
        (
            "pub struct BlockIOThrottle {",
            "pub device:",
            vec![
                "/// QAPI member `device`: `str`, optional, deprecated (QAPI feature \
                 `deprecated`)."
                    .to_owned(),
                "///".to_owned(),
                see(
                    "BlockIOThrottle",
                    "object-QMP-block-core.BlockIOThrottle",
                    what,
                ),
            ],
        ),
        (
            // Inherited from `BackupCommon`, which the manual documents it under.
            "pub struct DriveBackup {",
            "pub x_perf:",
            vec![
                "/// QAPI member `x-perf`: `BackupPerf`, optional, unstable (QAPI feature \
                 `unstable`)."
                    .to_owned(),
                "///".to_owned(),
                see("BackupCommon", "object-QMP-block-core.BackupCommon", what),
            ],
        ),
        (
            "pub struct BlockDeviceInfo {",
            "pub image:",
            vec![
                "/// QAPI member `image`: `ImageInfo`, required.".to_owned(),
                "///".to_owned(),
                see(
                    "BlockDeviceInfo",
                    "object-QMP-block-core.BlockDeviceInfo",
                    what,
                ),
            ],
        ),
    ] {
        assert_eq!(field_docs(&code, item, field), want, "{item} {field}");
    }

    // From QAPI sources: the member's text, then the same facts; the link without
    // "for what it does".
    let path = Path::new("tests/emit/docs.json");
    let schema = qapi_codegen::front::parse_file(path).unwrap_or_else(|e| panic!("{e}"));
    let code = generate(&schema, &Options::default()).expect("generate");
    assert_eq!(
        field_docs(&code, "pub struct Thing {", "pub size:"),
        [
            "/// The size in bytes; must be a multiple of `align`.".to_owned(),
            "///".to_owned(),
            "/// QAPI member `size`: `size`, required.".to_owned(),
            "///".to_owned(),
            see("Thing", "object-QMP-docs.Thing", ""),
        ]
    );
    let Some(corpus) = std::env::var_os("QAPI_CORPUS") else {
        skip::skipping("QAPI_CORPUS is not set (QEMU 10.0's own sources)");
        return;
    };
    let path = Path::new(&corpus).join("qapi/qapi-schema.json");
    let schema = qapi_codegen::front::parse_file(&path).unwrap_or_else(|e| panic!("{e}"));
    let code = generate(&schema, &Options::default()).expect("generate");
    assert_eq!(
        field_docs(&code, "pub struct BlockResize {", "pub size:"),
        [
            "/// new image size in bytes".to_owned(),
            "///".to_owned(),
            "/// QAPI member `size`: `int`, required.".to_owned(),
            "///".to_owned(),
            see("block_resize", resize, ""),
        ]
    );
    assert_eq!(
        field_docs(&code, "pub struct DriveBackup {", "pub x_perf:"),
        [
            "/// Performance options.  (Since 6.0)".to_owned(),
            "///".to_owned(),
            "/// QAPI member `x-perf`: `BackupPerf`, optional, unstable (QAPI feature \
             `unstable`)."
                .to_owned(),
            "///".to_owned(),
            see("BackupCommon", "object-QMP-block-core.BackupCommon", ""),
        ]
    );
}
