//! Definitions-only snapshots (`qapi-codegen snapshot`) and their `# @qapi-codegen`
//! markers: a snapshot read back gives every definition the module, manual module and
//! `Since:` version the sources gave it; the checked-in snapshots under `schema/` are
//! what the tool writes today; markers that cannot be read are errors at their line,
//! and comments that merely look like markers are comments.
//!
//! The tests over QEMU's schemas need `QAPI_CORPUS` (see `corpus.rs`) and skip with one
//! line without it.

use std::collections::HashMap;
use std::io;
use std::path::Path;

use qapi_codegen::front::{parse_file, parse_with_loader, SchemaError};
use qapi_codegen::model::{Entity, Schema};

#[path = "support/corpus.rs"]
mod corpus_dir;
use corpus_dir::corpus;

/// Parses `files` (name → text) from memory, rooted at the first one.
fn parse_mem(files: &[(&str, &str)]) -> Result<Schema, SchemaError> {
    let map: HashMap<&str, &str> = files.iter().copied().collect();
    parse_with_loader(files[0].0, "/t", |f| {
        map.get(f)
            .map(|t| t.as_bytes().to_vec())
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))
    })
}

/// What a snapshot must keep of a definition besides its shape.
fn facts<'s>(s: &'s Schema, e: &'s Entity) -> (&'s str, &'s str, Option<&'s str>, Option<&'s str>) {
    (
        e.name.as_str(),
        s.modules[e.module.0 as usize].name.as_str(),
        e.manual_module.as_deref(),
        e.since.as_deref(),
    )
}

/// The facts of every definition (not the implicit types), in order.
fn all_facts(s: &Schema) -> Vec<(&str, &str, Option<&str>, Option<&str>)> {
    s.entities
        .iter()
        .filter(|e| !e.implicit)
        .map(|e| facts(s, e))
        .collect()
}

#[test]
fn round_trip_keeps_module_manual_module_and_since() {
    let Some(root) = corpus("the snapshot tests over QEMU's schemas") else {
        return;
    };
    for (dir, commands) in [("qapi", 200), ("qga", 40), ("storage-daemon/qapi", 40)] {
        let src = root.join(dir).join("qapi-schema.json");
        let sources = parse_file(&src).unwrap_or_else(|e| panic!("{e}"));
        let text = qapi_codegen::snapshot::write(&sources, "round trip");
        let snap = parse_mem(&[("snap.json", &text)]).unwrap_or_else(|e| panic!("{e}"));
        let (want, got) = (all_facts(&sources), all_facts(&snap));
        assert!(
            want.len() > commands,
            "{dir}: only {} definitions",
            want.len()
        );
        for (w, g) in want.iter().zip(&got) {
            assert_eq!(w, g, "{dir}");
        }
        assert_eq!(want.len(), got.len(), "{dir}: number of definitions");
        // QEMU 10.0 documents every definition (`doc-required`), with a `Since:` for
        // nearly all of them, so the facts above are not vacuously `None`.
        assert!(
            want.iter().all(|f| f.2.is_some()),
            "{dir}: undocumented definition"
        );
        let with_since = want.iter().filter(|f| f.3.is_some()).count();
        assert!(
            with_since * 10 > want.len() * 9,
            "{dir}: {with_since} with Since"
        );
        // Written again from the snapshot, the snapshot is the same.
        assert_eq!(
            qapi_codegen::snapshot::write(&snap, "round trip"),
            text,
            "{dir}"
        );
    }
}

#[test]
fn manual_modules_follow_qemus_manual_sections() {
    let Some(root) = corpus("the snapshot tests over QEMU's schemas") else {
        return;
    };
    let s = parse_file(root.join("qapi/qapi-schema.json")).unwrap_or_else(|e| panic!("{e}"));
    let get = |name: &str| s.lookup(name).map(|e| facts(&s, e));
    assert_eq!(
        get("block_resize"),
        Some((
            "block_resize",
            "block-core.json",
            Some("block-core"),
            Some("0.14")
        ))
    );
    // block.json includes block-core.json after its first doc comment, so what it
    // defines afterwards sits in block-core's section of the manual.
    assert_eq!(
        get("BiosAtaTranslation"),
        Some((
            "BiosAtaTranslation",
            "block.json",
            Some("block-core"),
            Some("2.0")
        ))
    );
    let moved: Vec<&str> = s
        .entities
        .iter()
        .filter(|e| !e.implicit)
        .filter(|e| {
            let file = &s.modules[e.module.0 as usize].name;
            e.manual_module.as_deref() != file.strip_suffix(".json")
        })
        .map(|e| e.name.as_str())
        .collect();
    assert!(moved.iter().all(|n| s
        .lookup(n)
        .is_some_and(|e| { s.modules[e.module.0 as usize].name == "block.json" })));
    assert!(moved.len() > 10, "{moved:?}");
}

#[test]
fn checked_in_snapshots_are_what_the_tool_writes() {
    let Some(root) = corpus("the snapshot tests over QEMU's schemas") else {
        return;
    };
    // The commands in schema/README.md.
    for (src, title, file) in [
        (
            "qapi/qapi-schema.json",
            "QEMU 10.0 system emulator schema (qapi/qapi-schema.json)",
            "qemu-system-10.0.json",
        ),
        (
            "qga/qapi-schema.json",
            "QEMU 10.0 guest agent schema (qga/qapi-schema.json)",
            "qemu-ga-10.0.json",
        ),
    ] {
        let schema = parse_file(root.join(src)).unwrap_or_else(|e| panic!("{e}"));
        let want = qapi_codegen::snapshot::write(&schema, title);
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../schema")
            .join(file);
        let have = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            have == want,
            "{} is stale: regenerate it as schema/README.md says",
            path.display()
        );
    }
}

/// The snapshots of older releases are what the tool writes from their sources
/// (fetched by `scripts/fetch-old-schemas`), read with no dialect given.
#[test]
fn checked_in_release_snapshots_are_what_the_tool_writes() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/old-schemas");
    if !dir.is_dir() {
        corpus_dir::skip::skipping(&format!(
            "{} is absent (run scripts/fetch-old-schemas)",
            dir.display()
        ));
        return;
    }
    let mut checked = 0;
    for entry in std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("../schema"))
        .expect("schema/")
        .filter_map(Result::ok)
    {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(version) = name
            .strip_suffix(".json")
            .and_then(|n| n.rsplit_once('-'))
            .map(|(_, v)| v.to_owned())
        else {
            continue;
        };
        if version == "10.0" {
            continue; // from QAPI_CORPUS, above
        }
        let (src, program) = if name.starts_with("qemu-system-") {
            ("qapi/qapi-schema.json", "system emulator")
        } else if name.starts_with("qemu-ga-") {
            ("qga/qapi-schema.json", "guest agent")
        } else {
            continue;
        };
        let title = format!("QEMU {version} {program} schema ({src})");
        let root = dir.join(&version).join(src);
        let schema = qapi_codegen::front::load_schema(&root)
            .unwrap_or_else(|e| panic!("{}: {e}", root.display()));
        let want = qapi_codegen::snapshot::write(&schema, &title);
        let have = std::fs::read_to_string(entry.path()).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            have == want,
            "schema/{name} is stale: regenerate it as schema/README.md says"
        );
        checked += 1;
    }
    assert!(checked >= 2, "checked {checked} release snapshots");
}

/// A small snapshot: markers give modules, the manual's sections and versions.
const SNAP: &str = "\
# @qapi-codegen {\"module\": \"run-state.json\", \"manual\": \"run-state\"}
# @qapi-codegen {\"since\": \"0.14\"}
{ 'command': 'stop' }

# @qapi-codegen {\"since\": \"2.2; 'Unknown' since 2.4\"}
{ 'enum': 'Kind', 'data': ['a', 'b'] }

# @qapi-codegen {\"module\": \"sub/other.json\"}
{ 'struct': 'Plain', 'data': { 'k': 'Kind', 'l': ['Kind'] } }
";

#[test]
fn markers_give_module_manual_module_and_since() {
    let s = parse_mem(&[("snap.json", SNAP)]).unwrap_or_else(|e| panic!("{e}"));
    let names: Vec<&str> = s.modules.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(
        names,
        ["./builtin", "snap.json", "run-state.json", "sub/other.json"]
    );
    let get = |name: &str| s.lookup(name).map(|e| facts(&s, e));
    assert_eq!(
        get("stop"),
        Some(("stop", "run-state.json", Some("run-state"), Some("0.14")))
    );
    assert_eq!(
        get("Kind"),
        Some((
            "Kind",
            "run-state.json",
            Some("run-state"),
            Some("2.2; 'Unknown' since 2.4")
        ))
    );
    assert_eq!(get("Plain"), Some(("Plain", "sub/other.json", None, None)));
    // Implicit types go with the definition that needs them; arrays with their element.
    assert_eq!(get("KindList").map(|f| f.1), Some("run-state.json"));
    // Errors still point into the snapshot itself.
    assert_eq!(
        s.lookup("Plain")
            .and_then(|e| e.pos.clone())
            .map(|p| p.line),
        Some(9)
    );
}

#[test]
fn lookalike_comments_are_comments() {
    let text = "  # @qapi-codegen {\"since\": \"1.0\"}\n\
                #@qapi-codegen {\"since\": \"1.0\"}\n\
                # qapi-codegen {\"since\": \"1.0\"}\n\
                # @qapi-codegenx {\"since\": \"1.0\"}\n\
                { 'command': 'c' } # @qapi-codegen {\"since\": \"1.0\"}\n";
    let s = parse_mem(&[("x.json", text)]).unwrap_or_else(|e| panic!("{e}"));
    let c = s.lookup("c").expect("c");
    assert_eq!(
        (c.since.as_deref(), c.manual_module.as_deref()),
        (None, None)
    );
}

/// The error text for `text` as `x.json` (with `sub.json` to include).
fn error(text: &str) -> String {
    let sub = "{ 'command': 'sub' }\n";
    match parse_mem(&[("x.json", text), ("sub.json", sub)]) {
        Ok(_) => panic!("no error for:\n{text}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn bad_markers_are_errors_at_their_line() {
    let since = "# @qapi-codegen {\"since\": \"1.0\"}\n";
    for (text, want) in [
        (
            "{ 'command': 'a' }\n# @qapi-codegen since 1.0\n{ 'command': 'b' }\n".to_owned(),
            "x.json:2: malformed qapi-codegen marker: not JSON (expected value at line 1 column 1)",
        ),
        (
            "# @qapi-codegen {\"module\": \"a.json\", \"manual\": 7}\n".to_owned(),
            "x.json:1: malformed qapi-codegen marker: 'manual' must be a non-empty string",
        ),
        (
            "# @qapi-codegen {\"Since\": \"1.0\"}\n{ 'command': 'a' }\n".to_owned(),
            "x.json:1: malformed qapi-codegen marker: unknown key 'Since'",
        ),
        (
            "{ 'command': 'a',\n# @qapi-codegen {\"since\": \"1.0\"}\n  'data': {} }\n".to_owned(),
            "x.json:2:1: qapi-codegen marker inside an expression",
        ),
        (
            format!("{since}{{ 'include': 'sub.json' }}\n"),
            "x.json:1: qapi-codegen since marker not followed by a definition",
        ),
        (
            format!("{{ 'command': 'a' }}\n{since}{{ 'pragma': {{ 'doc-required': false }} }}\n"),
            "x.json:2: qapi-codegen since marker not followed by a definition",
        ),
        (
            format!("{since}{since}{{ 'command': 'a' }}\n"),
            "x.json:1: qapi-codegen since marker not followed by a definition",
        ),
        (
            format!("{{ 'command': 'a' }}\n{since}"),
            "x.json:2: qapi-codegen since marker not followed by a definition",
        ),
        (
            format!("##\n# @a:\n##\n{since}{{ 'command': 'a' }}\n"),
            "x.json:4: qapi-codegen marker in a file with doc comments (line 1)",
        ),
        (
            format!("{since}##\n# @a:\n##\n{{ 'command': 'a' }}\n"),
            "x.json:2: doc comment in a file with qapi-codegen markers (line 1)",
        ),
    ] {
        assert_eq!(error(&text), want, "{text}");
    }
}
