//! Older QAPI dialects: real schemas of older QEMU releases, fetched by
//! `scripts/fetch-old-schemas` into `target/old-schemas/<major.minor>/` (5.2 and 7.2
//! from Debian's source packages; 6.1, 7.0, 8.0, 8.1 and 9.1 from the `qapi-qmp` crate
//! on crates.io, `qapi/` only), are read without error in the dialect the automatic
//! selection ([`load_schema`]) picks, and agree with what QEMU of that release reported
//! through `query-qmp-schema` (libvirt's captures, fetched by the same script into
//! `target/old-schemas/introspect/`).

use std::path::Path;

use qapi_codegen::front::{load_schema, parse_file, parse_with_loader_dialect};
use qapi_codegen::model::{Dialect, EntityKind, IfCond, Origin, Schema};

#[path = "support/as_serde.rs"]
mod as_serde;
#[path = "support/schema_diff.rs"]
mod schema_diff;

#[path = "support/old_releases.rs"]
mod old_releases;
use old_releases::{expected_dialect, old_schemas, release_of, releases, RELEASES};

/// The three root schemas of a QEMU source tree.
const ROOTS: [&str; 3] = [
    "qapi/qapi-schema.json",
    "qga/qapi-schema.json",
    "storage-daemon/qapi/qapi-schema.json",
];

/// Reads a root schema of a release as the automatic selection does ([`load_schema`]):
/// no dialect given, whatever the release.
fn read_release(path: &Path, _release: (u32, u32)) -> Result<Schema, String> {
    load_schema(path).map_err(|e| e.to_string())
}

#[test]
fn old_release_schemas_are_read() {
    let Some(dir) = old_schemas() else {
        return;
    };
    let versions = releases(&dir);
    let names: Vec<_> = versions
        .iter()
        .map(|v| v.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for (v, _) in RELEASES {
        assert!(
            names.iter().any(|n| n == v),
            "QEMU {v} missing in {} (run scripts/fetch-old-schemas): {names:?}",
            dir.display()
        );
    }
    let mut failures = Vec::new();
    let mut read = 0;
    for version in &versions {
        let release = release_of(version);
        for root in ROOTS {
            let path = version.join(root);
            if !path.is_file() {
                // storage-daemon/ appeared in QEMU 5.0; the crate snapshots hold qapi/ only.
                continue;
            }
            match read_release(&path, release) {
                Ok(schema) => {
                    assert_eq!(
                        schema.origin,
                        Origin::Source {
                            dialect: expected_dialect(release)
                        },
                        "{}",
                        path.display()
                    );
                    println!(
                        "{}: {:?}, {} commands, {} events, {} docs, {} doc comments dropped{}",
                        path.display(),
                        schema.origin,
                        schema.commands().count(),
                        schema.events().count(),
                        schema.docs.len(),
                        schema.warnings.len(),
                        schema
                            .warnings
                            .first()
                            .map(|w| format!(" (first: {w})"))
                            .unwrap_or_default()
                    );
                    // Dropping is the exception: most of a release's docs are kept.
                    assert!(
                        schema.warnings.len() * 2 < schema.docs.len() + 1,
                        "{}: {} of {} doc comments dropped",
                        path.display(),
                        schema.warnings.len(),
                        schema.docs.len() + schema.warnings.len()
                    );
                    assert!(schema.commands().count() > 0, "{}", path.display());
                    read += 1;
                }
                Err(e) => failures.push(format!("{}:\n{e}", path.display())),
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    assert!(read >= RELEASES.len(), "read {read} root schemas");
}

/// Releases from before QEMU 6.2 are taken for the legacy dialect by the automatic
/// selection itself, later ones for the current one; the doc comments of all but
/// 9.1 (whose doc syntax QEMU 10.0 still reads) need the tolerant reading.
#[test]
fn automatic_selection_picks_the_dialect() {
    let Some(dir) = old_schemas() else {
        return;
    };
    let mut checked = 0;
    for version in releases(&dir) {
        let release = release_of(&version);
        let path = version.join("qapi/qapi-schema.json");
        let schema = load_schema(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        if ((6, 2)..(9, 1)).contains(&release) {
            // QEMU 10.0's rules reject their doc comments: read tolerantly.
            assert!(parse_file(&path).is_err(), "{}", path.display());
        }
        assert_eq!(
            schema.origin,
            Origin::Source {
                dialect: expected_dialect(release)
            },
            "{}",
            path.display()
        );
        checked += 1;
    }
    assert!(checked >= 3, "checked {checked} releases");
}

/// The sources of each release, read as [`old_release_schemas_are_read`] reads them,
/// against QEMU's own `query-qmp-schema` output of that release for x86_64: same
/// commands, events, members, values and branches, except items under an `if`.
#[test]
fn old_release_schemas_match_their_introspection() {
    let Some(dir) = old_schemas() else {
        return;
    };
    let mut compared = Vec::new();
    for version in releases(&dir) {
        let v = version.file_name().unwrap().to_string_lossy().into_owned();
        let capture = dir.join(format!("introspect/caps_{v}.0.x86_64.replies"));
        if !capture.is_file() {
            println!("{}: no capture of QEMU {v}", capture.display());
            continue;
        }
        let text = std::fs::read_to_string(&capture).unwrap();
        let reply = |command: &str| {
            let mut id = None;
            for value in serde_json::Deserializer::from_str(&text).into_iter::<serde_json::Value>()
            {
                let value = value.unwrap();
                if value["execute"] == command {
                    id = Some(value["id"].clone());
                } else if value.get("return").is_some() && Some(&value["id"]) == id.as_ref() {
                    return value;
                }
            }
            panic!("{}: no {command} reply", capture.display())
        };
        // libvirt names some captures after the coming release but took them from a
        // development build (caps_8.0.0 is 7.2.50): compare released binaries only.
        let qemu = &reply("query-version")["return"]["qemu"];
        let built = (
            qemu["major"].as_u64().unwrap(),
            qemu["minor"].as_u64().unwrap(),
            qemu["micro"].as_u64().unwrap(),
        );
        let release = release_of(&version);
        if (built.0, built.1) != (u64::from(release.0), u64::from(release.1)) || built.2 >= 50 {
            println!(
                "{}: captured from QEMU {}.{}.{}, not release {v}",
                capture.display(),
                built.0,
                built.1,
                built.2
            );
            continue;
        }
        let reply = reply("query-qmp-schema");
        let live = qapi_codegen::introspect::read(&reply.to_string(), &v).unwrap();
        let path = version.join("qapi/qapi-schema.json");
        let schema = read_release(&path, release).unwrap_or_else(|e| panic!("{e}"));
        schema_diff::diff(&schema, &live, release)
            .check(&format!("QEMU {v} sources vs its query-qmp-schema"));
        compared.push(v);
    }
    // 5.2 and 7.2 (Debian), 6.1 and 7.0 (crates.io); libvirt has no capture of a
    // released 8.0, 8.1 or 9.1.
    for v in ["5.2", "6.1", "7.0", "7.2"] {
        assert!(
            compared.iter().any(|c| c == v),
            "QEMU {v} not compared: {compared:?}"
        );
    }
}

/// The legacy constructs, each modelled as QEMU 5.2 did.
#[test]
fn legacy_constructs() {
    let schema = r#"
{ 'pragma': { 'returns-whitelist': [ 'x_get' ], 'name-case-whitelist': [ 'Old' ] } }
{ 'struct': 'Old', 'data': { 'CamelCase': 'str', 'under_score': 'int' } }
{ 'struct': 'Vnc', 'data': { 'port': 'int' }, 'if': 'defined(CONFIG_VNC)' }
{ 'union': 'Simple',
  'data': { 'vnc': 'Vnc', 'names': ['str'],
            'old': { 'type': 'Old', 'if': ['defined(A)', '!defined(B) || C'] } } }
{ 'command': 'x_get', 'returns': 'int', 'data': { 'arg': 'Simple' } }
"#;
    let parse = |dialect| {
        parse_with_loader_dialect(
            "s.json",
            "/",
            |_: &str| Ok(schema.as_bytes().to_vec()),
            dialect,
        )
    };
    assert!(parse(Dialect::Current).is_err());
    let s = parse(Dialect::Legacy).unwrap_or_else(|e| panic!("{e}"));
    let n = |x: &str| IfCond::Name(x.to_string());
    assert_eq!(s.lookup("Vnc").unwrap().ifcond, Some(n("CONFIG_VNC")));
    // The implicit enum of branch names, with the branches' conditions.
    let EntityKind::Enum(kind) = &s.lookup("SimpleKind").expect("SimpleKind").kind else {
        panic!()
    };
    let values: Vec<_> = kind.members.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(values, ["vnc", "names", "old"]);
    assert_eq!(
        kind.members[2].ifcond,
        Some(IfCond::All(vec![
            n("A"),
            IfCond::Any(vec![IfCond::Not(Box::new(n("B"))), n("C")])
        ]))
    );
    // One wrapper per branch type, conditional like the wrapped type.
    let wrapper = s.lookup("q_obj_Vnc-wrapper").expect("wrapper");
    assert_eq!(wrapper.ifcond, Some(n("CONFIG_VNC")));
    let EntityKind::Object(w) = &wrapper.kind else {
        panic!()
    };
    assert_eq!(w.members.len(), 1);
    assert_eq!(w.members[0].name, "data");
    assert_eq!(s.entity(w.members[0].ty).name, "Vnc");
    let EntityKind::Object(w) = &s.lookup("q_obj_strList-wrapper").expect("wrapper").kind else {
        panic!()
    };
    assert_eq!(s.entity(w.members[0].ty).name, "strList");
    // The union: tag `type` of the implicit enum, a branch per name.
    let EntityKind::Object(u) = &s.lookup("Simple").unwrap().kind else {
        panic!()
    };
    let branches = u.branches.as_ref().unwrap();
    assert_eq!(branches.tag_member.name, "type");
    assert_eq!(s.entity(branches.tag_member.ty).name, "SimpleKind");
    let cases: Vec<_> = branches
        .variants
        .iter()
        .map(|v| (v.name.as_str(), s.entity(v.ty).name.as_str()))
        .collect();
    assert_eq!(
        cases,
        [
            ("vnc", "q_obj_Vnc-wrapper"),
            ("names", "q_obj_strList-wrapper"),
            ("old", "q_obj_Old-wrapper")
        ]
    );
    // A union with a base but no discriminator was an error then as now.
    let bad = "{ 'struct': 'B', 'data': { 'x': 'int' } }\n\
               { 'union': 'U', 'base': 'B', 'data': { 'a': 'B' } }\n";
    let err = parse_with_loader_dialect(
        "b.json",
        "/",
        |_: &str| Ok(bad.as_bytes().to_vec()),
        Dialect::Legacy,
    );
    assert!(err.is_err());
    // Old pragma names and naming rules.
    assert_eq!(s.pragma.command_returns_exceptions, ["x_get"]);
    assert!(s.pragma.member_name_exceptions.contains(&"Old".to_string()));
    assert!(s
        .pragma
        .command_name_exceptions
        .contains(&"x_get".to_string()));
}

/// `dump` (through `load_schema`) reads sources of the 3.x–5.x era without being told
/// the dialect: they use simple unions and C-expression conditions.
#[test]
fn dump_detects_the_legacy_dialect() {
    let Some(dir) = old_schemas() else {
        return;
    };
    let root = dir.join("5.2/qapi");
    if !root.is_dir() {
        old_releases::skip::skipping(&format!("no QEMU 5.2 sources in {}", dir.display()));
        return;
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_qapi-codegen"))
        .arg("dump")
        .arg("qapi-schema.json")
        .current_dir(&root)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    // QEMU 5.2's simple union SocketAddressLegacy, expanded.
    assert!(
        stdout.contains("\nenum SocketAddressLegacyKind\n"),
        "{stdout:.300}"
    );
    assert!(stdout.contains("\nobject q_obj_InetSocketAddress-wrapper\n"));
}

/// `qapi-codegen dump` (the command, as a user runs it) reads every fetched root
/// schema of every release with no flag; the doc comments it drops are warnings on
/// stderr, each with its `file:line`.
#[test]
fn dump_reads_every_release_with_no_flag() {
    let Some(dir) = old_schemas() else {
        return;
    };
    let mut read = 0;
    for version in releases(&dir) {
        for root in ROOTS {
            let path = version.join(root);
            if !path.is_file() {
                continue;
            }
            let out = std::process::Command::new(env!("CARGO_BIN_EXE_qapi-codegen"))
                .arg("dump")
                .arg(&path)
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "{}:\n{stderr}", path.display());
            assert!(
                stderr.lines().all(|l| l.starts_with("warning: ")
                    && l.contains(".json:")
                    && l.contains(": doc comment dropped: ")),
                "{}:\n{stderr}",
                path.display()
            );
            assert!(
                out.stdout.starts_with(b"module ./builtin\n"),
                "{}",
                path.display()
            );
            read += 1;
        }
    }
    assert!(read >= RELEASES.len() + 4, "read {read} root schemas");
}

mod fuzz {
    use proptest::prelude::*;
    use qapi_codegen::front::parse_with_loader_dialect;
    use qapi_codegen::model::Dialect;

    const SEED: &str = r#"
{ 'pragma': { 'returns-whitelist': [ 'x_get' ], 'name-case-whitelist': [ 'Old' ] } }
{ 'struct': 'Old', 'data': { 'CamelCase': 'str', 'under_score': 'int' } }
{ 'struct': 'Vnc', 'data': { 'port': 'int' }, 'if': 'defined(CONFIG_VNC)' }
{ 'union': 'Simple',
  'data': { 'vnc': 'Vnc', 'names': ['str'],
            'old': { 'type': 'Old', 'if': ['defined(A)', '!defined(B) || C'] } } }
{ 'enum': 'E', 'data': [ { 'name': 'a', 'if': 'defined(X) && !(Y || Z)' } ] }
{ 'command': 'x_get', 'returns': 'int', 'data': { 'arg': 'Simple' } }
"#;

    const PIECES: [&str; 12] = [
        "'union'", "'if'", "defined(", ")", "||", "&&", "!", "[", "]", "{", "}", "'data'",
    ];

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        /// The legacy rewrite never panics on damaged legacy schemas.
        #[test]
        fn damaged_legacy_schemas_never_panic(
            edits in prop::collection::vec((any::<prop::sample::Index>(), 0usize..12, 0usize..4), 1..6)
        ) {
            let mut text = SEED.to_string();
            for (at, piece, cut) in edits {
                let mut i = at.index(text.len() + 1);
                while !text.is_char_boundary(i) {
                    i -= 1;
                }
                let end = (i + cut).min(text.len());
                if text.is_char_boundary(end) {
                    text.replace_range(i..end, PIECES[piece]);
                }
            }
            let _ = parse_with_loader_dialect(
                "f.json",
                "/",
                |_: &str| Ok(text.as_bytes().to_vec()),
                Dialect::Legacy,
            );
        }
    }
}

/// The build-script API reads every fetched release, with no dialect given and in
/// the dialect it is told, and emits bindings for it.
#[test]
fn config_generates_bindings_in_the_dialect_given() {
    let Some(dir) = old_schemas() else { return };
    for (version, given) in releases(&dir)
        .into_iter()
        .flat_map(|v| [(v.clone(), false), (v, true)])
    {
        let release = release_of(&version);
        let root = version.join("qapi/qapi-schema.json");
        let mut config = qapi_codegen::Config::new();
        config
            .schema(&root)
            .env_override(None)
            .cargo_directives(false);
        if given {
            config.dialect(expected_dialect(release));
        }
        let generated = config
            .generate_string()
            .unwrap_or_else(|e| panic!("{} (dialect given: {given}): {e}", root.display()));
        assert!(
            generated.code.contains("pub struct QueryVersion;"),
            "{}: no query-version command",
            root.display()
        );
        assert!(generated.files.len() > 10, "{:?}", generated.files);
        let mut unique = generated.files.clone();
        unique.dedup();
        assert_eq!(unique.len(), generated.files.len());
    }
}

/// The automatic choice reads a release's doc comments tolerantly: older syntax is
/// text, a doc that does not fit its definition is dropped with a warning naming its
/// `file:line`, and the definitions stand; sources that name no release (QEMU's own
/// test cases) keep QEMU 10.0's error.
#[test]
fn tolerant_docs_keep_the_definitions() {
    use qapi_codegen::front::parse_sources;
    let read =
        |text: &str| parse_sources("s.json", "/", |_: &str| Ok(text.as_bytes().to_vec()), None);
    let release = "\
##
# = Title
#
# Text, then a heading QEMU 10.0 rejects:
#
# = Second
##

##
# @stop:
#
# Stop.
#
# Note: an old-style note.
#
# Example:
#
# -> { \"execute\": \"stop\" }
#
# Since: 7.2
##
{ 'command': 'stop' }

##
# @Thing:
#
# @gone: a member that does not exist
#
# Since: 7.1
##
{ 'struct': 'Thing', 'data': { 'x': 'int' } }
";
    assert!(
        qapi_codegen::front::parse_with_loader("s.json", "/", |_: &str| Ok(release
            .as_bytes()
            .to_vec()))
        .is_err(),
        "QEMU 10.0's rules reject it"
    );
    let schema = read(release).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        schema.origin,
        Origin::Source {
            dialect: Dialect::Current
        }
    );
    assert!(schema.lookup("stop").is_some() && schema.lookup("Thing").is_some());
    let stop = schema.lookup("stop").unwrap();
    let doc = schema.doc(stop.doc.expect("stop keeps its doc"));
    assert!(
        doc.body.text.contains("Note: an old-style note."),
        "{doc:?}"
    );
    assert_eq!(stop.since.as_deref(), Some("7.2"));
    assert!(schema.lookup("Thing").unwrap().doc.is_none());
    let warnings: Vec<String> = schema.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(
        warnings,
        ["s.json:27: doc comment dropped: documented member 'gone' does not exist"]
    );

    // The same doc error without a release's `Since:` is QEMU 10.0's error.
    let test_case = release
        .replace("Since: 7.2", "Since: 2.3")
        .replace("Since: 7.1", "");
    let e = read(&test_case).expect_err("strict");
    assert_eq!(
        e.to_string(),
        "s.json:6:1: '=' heading must come first in a comment block"
    );
}
