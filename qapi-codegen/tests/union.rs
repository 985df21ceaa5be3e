//! The union of several releases' schemas ([`qapi_codegen::union::merge`]), by rule.
//!
//! Each folder `tests/union/<case>/` holds one small schema per release, named after
//! the release (`7.2.json`, `10.0.json`); their union's bindings are compared with the
//! checked-in `tests/union/<case>.rs` (`UPDATE_SNAPSHOTS=1` rewrites them) and every
//! snapshot is compiled with `#![deny(warnings, missing_docs)]` against the real `qmp`
//! crate, as `tests/emit.rs` does for one schema. The cases: a member present in one
//! release only, a member required in one and optional in the other, a member whose
//! type changed, enum values (and union branches) that differ, and commands and events
//! present in one release only. The other tests check the merged model against each
//! rule, and the errors.

use std::path::{Path, PathBuf};

use qapi_codegen::emit::{generate, Options};
use qapi_codegen::model::{Builtin, EntityKind, Member, Part, Schema};
use qapi_codegen::union::{merge, release_label, UnionError};

#[path = "support/snapshots.rs"]
mod snapshots;

fn cases() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir("tests/union")
        .expect("tests/union")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.is_dir())
        .collect();
    v.sort();
    v
}

/// The schemas of a case, labelled by file name, in directory order (merge sorts).
fn case(dir: &Path) -> Vec<(String, Schema)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("case folder")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|f| {
            let label = f.file_stem().unwrap_or_default().to_string_lossy();
            let schema = qapi_codegen::front::parse_file(f).unwrap_or_else(|e| panic!("{e}"));
            (label.into_owned(), schema)
        })
        .collect()
}

fn merged(name: &str) -> Schema {
    merge(&case(&Path::new("tests/union").join(name))).unwrap_or_else(|e| panic!("{e}"))
}

fn snapshot_text(dir: &Path) -> String {
    let schema = merge(&case(dir)).unwrap_or_else(|e| panic!("{e}"));
    let code = generate(&schema, &Options::default()).expect("generate");
    format!(
        "#![deny(warnings, missing_docs)]\n#![allow(dead_code)]\n//! Generated from the union of `{}/*.json` (snapshot test).\n\n{code}\nfn main() {{}}\n",
        dir.file_name().unwrap_or_default().to_string_lossy()
    )
}

#[test]
fn snapshots_match() {
    snapshots::check(cases().into_iter().map(|dir| {
        let text = snapshot_text(&dir);
        (dir.with_extension("rs"), text)
    }));
}

#[test]
fn snapshots_compile() {
    let t = trybuild::TestCases::new();
    for dir in cases() {
        t.pass(dir.with_extension("rs"));
    }
}

/// The member `name` of object type `ty` in `s`.
fn member<'a>(s: &'a Schema, ty: &str, name: &str) -> &'a Member {
    match &s.lookup(ty).unwrap_or_else(|| panic!("no {ty}")).kind {
        EntityKind::Object(o) => o
            .members
            .iter()
            .find(|m| m.name == name)
            .unwrap_or_else(|| panic!("no {ty}.{name}")),
        _ => panic!("{ty} is not an object"),
    }
}

/// Which releases have part `part` of `entity`.
fn releases(s: &Schema, entity: &str, part: Part) -> Vec<String> {
    let av = s.availability.as_ref().expect("a union has availability");
    let id = s.lookup_id(entity).unwrap_or_else(|| panic!("no {entity}"));
    let p = av
        .get(id, &part)
        .unwrap_or_else(|| panic!("{entity} {part:?} not recorded"));
    av.names(p.releases)
        .into_iter()
        .map(str::to_owned)
        .collect()
}

fn type_name(s: &Schema, m: &Member) -> String {
    s.entity(m.ty).name.clone()
}

#[test]
fn a_member_of_one_release_is_optional_and_recorded() {
    let s = merged("member_in_one");
    assert!(!member(&s, "Info", "name").optional);
    assert!(member(&s, "Info", "old-only").optional);
    assert!(member(&s, "Info", "old-opt").optional);
    assert!(member(&s, "Info", "new-only").optional);
    // A type only one release has keeps its required members.
    assert!(!member(&s, "Added", "x").optional);
    assert!(!member(&s, "Gone", "x").optional);
    let m = |n: &str| Part::Member(n.to_owned());
    assert_eq!(releases(&s, "Info", m("old-only")), ["7.2"]);
    assert_eq!(releases(&s, "Info", m("new-only")), ["10.0"]);
    assert_eq!(releases(&s, "Info", m("name")), ["7.2", "10.0"]);
    assert_eq!(releases(&s, "Added", Part::Whole), ["10.0"]);
    assert_eq!(releases(&s, "Gone", Part::Whole), ["7.2"]);
}

#[test]
fn required_only_where_every_release_requires() {
    let s = merged("required_optional");
    assert!(!member(&s, "Opts", "a").optional);
    assert!(member(&s, "Opts", "b").optional);
    assert!(member(&s, "Opts", "c").optional);
    assert!(member(&s, "Opts", "d").optional);
    let args = "q_obj_set-opts-arg";
    assert!(!member(&s, args, "x").optional);
    assert!(member(&s, args, "y").optional);
    let av = s.availability.as_ref().expect("availability");
    let b = av
        .get(
            s.lookup_id("Opts").expect("Opts"),
            &Part::Member("b".into()),
        )
        .expect("b recorded");
    assert_eq!(av.names(b.required), ["10.0"]);
}

#[test]
fn a_changed_type_accepts_each_shape() {
    let s = merged("type_changed");
    assert_eq!(type_name(&s, member(&s, "Tee", "width")), "uint64");
    assert_eq!(type_name(&s, member(&s, "Tee", "size")), "int");
    assert_eq!(type_name(&s, member(&s, "Tee", "kind")), "Kind");
    assert_eq!(type_name(&s, member(&s, "Tee", "ratio")), "number");
    assert_eq!(type_name(&s, member(&s, "Tee", "small")), "int16");
    let value = member(&s, "Tee", "value");
    let EntityKind::Alternate(a) = &s.entity(value.ty).kind else {
        panic!("value: {}", type_name(&s, value))
    };
    let alternatives: Vec<(&str, &str)> = a
        .alternatives
        .variants
        .iter()
        .map(|v| (v.name.as_str(), s.entity(v.ty).name.as_str()))
        .collect();
    assert_eq!(alternatives, [("string", "str"), ("number", "int")]);
    // Each release's type is recorded for the docs.
    let av = s.availability.as_ref().expect("availability");
    let p = av
        .get(
            s.lookup_id("Tee").expect("Tee"),
            &Part::Member("width".into()),
        )
        .expect("width recorded");
    let types: Vec<(Vec<&str>, &str)> = p
        .types
        .iter()
        .map(|(r, t)| (av.names(*r), t.as_str()))
        .collect();
    assert_eq!(types, [(vec!["7.2"], "int"), (vec!["10.0"], "uint64")]);
    assert!(matches!(
        s.entity(member(&s, "Tee", "ratio").ty).kind,
        EntityKind::Builtin(Builtin::Number)
    ));
}

#[test]
fn enum_values_and_branches_of_every_release() {
    let s = merged("enum_values");
    let EntityKind::Enum(e) = &s.lookup("Colour").expect("Colour").kind else {
        panic!("Colour")
    };
    let values: Vec<&str> = e.members.iter().map(|m| m.name.as_str()).collect();
    // The newest's order, then what only older releases have.
    assert_eq!(values, ["red", "green", "blue", "cyan"]);
    let v = |n: &str| Part::Value(n.to_owned());
    assert_eq!(releases(&s, "Colour", v("cyan")), ["7.2"]);
    assert_eq!(releases(&s, "Colour", v("blue")), ["10.0"]);
    assert_eq!(releases(&s, "Colour", v("red")), ["7.2", "10.0"]);
    let b = |n: &str| Part::Branch(n.to_owned());
    assert_eq!(releases(&s, "Paint", b("cyan")), ["7.2"]);
    assert_eq!(releases(&s, "Paint", b("blue")), ["10.0"]);
    // The discriminator stays required.
    assert!(!member(&s, "Paint", "colour").optional);
}

#[test]
fn commands_and_events_of_one_release() {
    let s = merged("command_event_in_one");
    assert_eq!(releases(&s, "old-cmd", Part::Whole), ["7.2"]);
    assert_eq!(releases(&s, "new-cmd", Part::Whole), ["10.0"]);
    assert_eq!(releases(&s, "OLD_EVENT", Part::Whole), ["7.2"]);
    assert_eq!(releases(&s, "NEW_EVENT", Part::Whole), ["10.0"]);
    // 7.2's `both` takes no argument: 10.0's new one is optional.
    assert!(member(&s, "q_obj_both-arg", "force").optional);
    // A command only one release has keeps its required arguments.
    assert!(!member(&s, "q_obj_new-cmd-arg", "id").optional);
    assert!(member(&s, "q_obj_BOTH-arg", "b").optional);
    assert!(!member(&s, "q_obj_BOTH-arg", "a").optional);
}

#[test]
fn one_schema_is_itself_with_availability() {
    let s = merged("member_in_one");
    let one = merge(&[(
        "10.0".to_owned(),
        case(Path::new("tests/union/member_in_one"))[0].1.clone(),
    )])
    .expect("merge one");
    let av = one.availability.as_ref().expect("availability");
    assert_eq!(av.releases(), ["10.0"]);
    assert!(one.lookup("Info").is_some());
    assert!(s.lookup("Gone").is_some());
}

fn parse(text: &str, name: &str) -> Schema {
    let dir = std::env::temp_dir().join(format!("qapi-union-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let f = dir.join(format!("{name}.json"));
    std::fs::write(&f, text).expect("write");
    let s = qapi_codegen::front::parse_file(&f).unwrap_or_else(|e| panic!("{e}"));
    let _ = std::fs::remove_dir_all(&dir);
    s
}

#[test]
fn errors_name_what_and_where() {
    let a = parse("{ 'struct': 'Xy', 'data': { 'a': 'int' } }\n", "a");
    let b = parse(
        "{ 'command': 'c' }\n{ 'enum': 'Xy', 'data': [ 'v' ] }\n",
        "b",
    );
    let e = merge(&[("7.2".into(), a.clone()), ("10.0".into(), b)]).expect_err("conflict");
    let msg = e.to_string();
    assert!(matches!(e, UnionError::KindConflict { .. }), "{msg}");
    assert!(msg.contains("b.json:2: 'Xy' is an enum in 10.0"), "{msg}");
    assert!(msg.contains("an object type in 7.2 ("), "{msg}");
    assert!(msg.contains("a.json:1)"), "{msg}");
    let e = merge(&[("7.2".into(), a.clone()), ("7.2".into(), a)]).expect_err("same label");
    assert!(e.to_string().contains("'7.2'"), "{e}");
    assert!(matches!(merge(&[]), Err(UnionError::Empty)));
}

#[test]
fn labels_come_from_titles_file_names_and_since() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../schema");
    for (file, want) in [
        ("qemu-system-7.2.json", "7.2"),
        ("qemu-system-10.0.json", "10.0"),
        ("qemu-ga-7.2.json", "7.2"),
    ] {
        let path = root.join(file);
        let s = qapi_codegen::front::parse_file(&path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(release_label(&path, &s), want, "{file}");
    }
    let capture = root.join("introspect/qemu-system-x86_64-7.2.json");
    let s = qapi_codegen::introspect::read_file(&capture).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(release_label(&capture, &s), "7.2");
    // Sources name no release: their newest `Since:`.
    let src = parse(
        "##\n# @a:\n#\n# Since: 9.1\n##\n{ 'command': 'a' }\n##\n# @b:\n#\n# Since: 10.0\n##\n{ 'command': 'b' }\n",
        "qapi-schema",
    );
    assert_eq!(
        release_label(Path::new("/x/qapi-schema.json"), &src),
        "10.0"
    );
    let none = parse("{ 'command': 'a' }\n", "plain");
    assert_eq!(
        release_label(Path::new("/x/plain.json"), &none),
        "plain.json"
    );
}

#[test]
fn a_struct_that_became_a_union() {
    let s = merged("struct_to_union");
    // 7.2's policy is 10.0's sev branch's: not a base member.
    let EntityKind::Object(o) = &s.lookup("SevInfo").expect("SevInfo").kind else {
        panic!("SevInfo")
    };
    let names: Vec<&str> = o.members.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["enabled", "sev-type"]);
    let tag = &o.branches.as_ref().expect("a union").tag_member;
    assert!(tag.optional, "7.2 sends no discriminator");
    assert_eq!(
        releases(&s, "SevInfo", Part::Member("policy".into())),
        ["7.2"]
    );
}

#[test]
fn a_capture_merges_with_a_snapshot_and_keeps_its_widths() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../schema");
    let snapshot = qapi_codegen::front::parse_file(root.join("qemu-system-10.0.json"))
        .unwrap_or_else(|e| panic!("{e}"));
    let mut capture =
        qapi_codegen::introspect::read_file(&root.join("introspect/qemu-system-x86_64-7.2.json"))
            .unwrap_or_else(|e| panic!("{e}"));
    let reference = qapi_codegen::front::parse_file(root.join("qemu-system-7.2.json"))
        .unwrap_or_else(|e| panic!("{e}"));
    qapi_codegen::introspect::recover_names(&mut capture, &[&reference]);
    let s = merge(&[("7.2".into(), capture), ("10.0".into(), snapshot)])
        .unwrap_or_else(|e| panic!("{e}"));
    // The capture's `int` says no width: the snapshot's `size` stays.
    assert_eq!(
        type_name(&s, member(&s, "MemoryInfo", "base-memory")),
        "size"
    );
    assert!(matches!(
        s.origin,
        qapi_codegen::model::Origin::Source { .. }
    ));
    assert_eq!(
        releases(&s, "StatusInfo", Part::Member("singlestep".into())),
        ["7.2"]
    );
}
