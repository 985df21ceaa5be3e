//! `qapi_codegen::diff` and `qapi-codegen diff`: one pair of small schemas per kind of
//! change (`tests/diff/<case>/{old,new}.json`), checked as `Change` values and as
//! text; a capture against the sources of the same release; every fetched release
//! against itself; 9.1 against 10.0; the command's exit statuses.

#[path = "support/old_releases.rs"]
mod old_releases;

use std::path::{Path as FsPath, PathBuf};
use std::process::Command;

use qapi_codegen::diff::{diff, Change, ChangeKind, Diff, Path, Segment};
use qapi_codegen::front::load_schema;
use qapi_codegen::model::Schema;

fn manifest() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn case_file(case: &str, side: &str) -> PathBuf {
    manifest()
        .join("tests/diff")
        .join(case)
        .join(format!("{side}.json"))
}

fn load(path: &FsPath) -> Schema {
    load_schema(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn case(name: &str) -> Diff {
    diff(
        &load(&case_file(name, "old")),
        &load(&case_file(name, "new")),
    )
}

/// `"command x member y reply [] value z"` as a [`Path`].
fn path(text: &str) -> Path {
    let mut words = text.split_whitespace();
    let mut segments = Vec::new();
    while let Some(w) = words.next() {
        let mut name = || words.next().expect("a name after the step").to_owned();
        segments.push(match w {
            "command" => Segment::Command(name()),
            "event" => Segment::Event(name()),
            "type" => Segment::Type(name()),
            "enum" => Segment::Enum(name()),
            "member" => Segment::Member(name()),
            "branch" => Segment::Branch(name()),
            "alternative" => Segment::Alternative(name()),
            "value" => Segment::Value(name()),
            "reply" => Segment::Reply,
            "[]" => Segment::Element,
            _ => panic!("unknown step {w}"),
        });
    }
    Path(segments)
}

fn change(p: &str, kind: ChangeKind) -> Change {
    Change {
        path: path(p),
        kind,
    }
}

fn added(p: &str) -> Change {
    change(
        p,
        ChangeKind::Added {
            optional: None,
            condition: None,
        },
    )
}

fn removed(p: &str) -> Change {
    change(
        p,
        ChangeKind::Removed {
            optional: None,
            condition: None,
        },
    )
}

fn member_added(p: &str, optional: bool) -> Change {
    change(
        p,
        ChangeKind::Added {
            optional: Some(optional),
            condition: None,
        },
    )
}

fn member_removed(p: &str, optional: bool) -> Change {
    change(
        p,
        ChangeKind::Removed {
            optional: Some(optional),
            condition: None,
        },
    )
}

fn type_changed(p: &str, old: &str, new: &str) -> Change {
    change(
        p,
        ChangeKind::TypeChanged {
            old: old.into(),
            new: new.into(),
        },
    )
}

fn feature_added(p: &str, f: &str) -> Change {
    change(p, ChangeKind::FeatureAdded { feature: f.into() })
}

fn feature_removed(p: &str, f: &str) -> Change {
    change(p, ChangeKind::FeatureRemoved { feature: f.into() })
}

/// The case gives exactly these changes, printed as exactly these lines.
fn check(name: &str, expected: &[Change], lines: &[&str]) {
    let d = case(name);
    assert_eq!(d.changes, expected, "{name}:\n{d}");
    let text: Vec<String> = d.to_string().lines().map(String::from).collect();
    assert_eq!(text, lines, "{name}");
}

#[test]
fn commands_added_and_removed() {
    check(
        "commands",
        &[
            added("command bar"),
            removed("command x-foo"),
            added("type Info"),
        ],
        &[
            "+ command bar added",
            "- command x-foo removed",
            "+ type Info added",
        ],
    );
}

#[test]
fn events_added_and_removed() {
    check(
        "events",
        &[removed("event GONE"), added("event NEW_EVENT")],
        &["- event GONE removed", "+ event NEW_EVENT added"],
    );
}

#[test]
fn types_added_and_removed() {
    check(
        "types",
        &[
            removed("enum Colour"),
            added("type Either"),
            removed("type Old"),
            added("enum Shape"),
        ],
        &[
            "- enum Colour removed",
            "+ type Either added",
            "- type Old removed",
            "+ enum Shape added",
        ],
    );
}

#[test]
fn members_added_and_removed() {
    // Of command arguments, event data and a named struct (the reply of
    // query-status, reported once, under the type's name).
    check(
        "members",
        &[
            member_removed("command stop member force", false),
            member_added("event STOPPED member reason", false),
            member_removed("type StatusInfo member singlestep", false),
            member_added("type StatusInfo member status", true),
        ],
        &[
            "- command stop member force removed, was required",
            "+ event STOPPED member reason added, required",
            "- type StatusInfo member singlestep removed, was required",
            "+ type StatusInfo member status added, optional",
        ],
    );
}

#[test]
fn members_made_required_or_optional() {
    check(
        "optional",
        &[
            change("command set-opts member force", ChangeKind::MadeRequired),
            change("type Opts member a", ChangeKind::MadeOptional),
            change("type Opts member b", ChangeKind::MadeRequired),
        ],
        &[
            "~ command set-opts member force: optional -> required",
            "~ type Opts member a: required -> optional",
            "~ type Opts member b: optional -> required",
        ],
    );
}

#[test]
fn member_types_changed() {
    // Between two source schemas integer widths are types of their own.
    check(
        "member-type",
        &[
            type_changed("command set-limits member size", "int", "size"),
            type_changed("type Limits member count", "int", "str"),
            type_changed("type Limits member name", "str", "[str]"),
            type_changed("type Limits member mode", "str", "Mode"),
            type_changed("type Limits member ids []", "str", "int"),
            type_changed("type Limits member width", "uint8", "uint32"),
        ],
        &[
            "~ command set-limits member size: type int -> size",
            "~ type Limits member count: type int -> str",
            "~ type Limits member name: type str -> [str]",
            "~ type Limits member mode: type str -> Mode",
            "~ type Limits member ids[]: type str -> int",
            "~ type Limits member width: type uint8 -> uint32",
        ],
    );
}

#[test]
fn a_named_type_that_changed_kind() {
    // Reported once, under its name; the member that uses it has the same type.
    check(
        "kind",
        &[type_changed("enum Mode", "enum", "struct")],
        &["~ enum Mode: type enum -> struct"],
    );
}

#[test]
fn union_branches_added_and_removed() {
    // `nbd` loses its members (the tag value stays, its branch is now empty), `null`
    // gains some; the branch types themselves are types of their own.
    check(
        "branches",
        &[
            member_removed("type DevOptions branch nbd member export", false),
            member_added("type DevOptions branch null member size", false),
            removed("type NbdOptions"),
            added("type NullOptions"),
        ],
        &[
            "- type DevOptions branch nbd member export removed, was required",
            "+ type DevOptions branch null member size added, required",
            "- type NbdOptions removed",
            "+ type NullOptions added",
        ],
    );
}

#[test]
fn enum_values_added_and_removed() {
    check(
        "enum-values",
        &[
            removed("enum JobStatus value paused"),
            added("enum JobStatus value pending"),
        ],
        &[
            "- enum JobStatus value paused removed",
            "+ enum JobStatus value pending added",
        ],
    );
}

#[test]
fn features_added_and_removed() {
    check(
        "features",
        &[
            feature_added("command query-bar", "deprecated"),
            feature_added("command query-bar member a", "deprecated"),
            feature_removed("command x-query-foo", "unstable"),
            feature_added("event BAR", "my-feature"),
            feature_added("enum Level value high", "deprecated"),
            feature_added("type Props", "my-feature"),
            feature_removed("type Props member x", "unstable"),
        ],
        &[
            "+ command query-bar feature deprecated added",
            "+ command query-bar member a feature deprecated added",
            "- command x-query-foo feature unstable removed",
            "+ event BAR feature my-feature added",
            "+ enum Level value high feature deprecated added",
            "+ type Props feature my-feature added",
            "- type Props member x feature unstable removed",
        ],
    );
}

#[test]
fn reply_types_changed() {
    check(
        "reply",
        &[
            type_changed("command cont reply", "{}", "CpuInfo"),
            type_changed("command query-block reply", "[BlockInfo]", "BlockInfo"),
            type_changed("command query-cpu reply", "CpuInfo", "CpuInfoFast"),
            type_changed("command query-cpus reply", "CpuInfo", "[CpuInfo]"),
        ],
        &[
            "~ command cont reply: type {} -> CpuInfo",
            "~ command query-block reply: type [BlockInfo] -> BlockInfo",
            "~ command query-cpu reply: type CpuInfo -> CpuInfoFast",
            "~ command query-cpus reply: type CpuInfo -> [CpuInfo]",
        ],
    );
}

#[test]
fn alternatives_added_and_removed() {
    // Alternatives are told apart by the JSON type that selects them.
    check(
        "alternate",
        &[
            removed("type RefOrName alternative string"),
            added("type RefOrName alternative null"),
            added("type RefOrName alternative number"),
        ],
        &[
            "- type RefOrName alternative string removed",
            "+ type RefOrName alternative null added",
            "+ type RefOrName alternative number added",
        ],
    );
}

#[test]
fn a_member_moved_into_the_base_is_no_change_on_the_wire() {
    // `Info` has the same members on the wire; `Base` itself gained one.
    check(
        "base",
        &[member_added("type Base member name", false)],
        &["+ type Base member name added, required"],
    );
}

#[test]
fn a_renamed_type_is_compared_by_structure() {
    // The command's member keeps its place: its values are compared, not its names.
    check(
        "rename",
        &[
            added("command hash member alg value sm3"),
            added("enum HashAlgo"),
            removed("enum HashAlgorithm"),
        ],
        &[
            "+ command hash member alg value sm3 added",
            "+ enum HashAlgo added",
            "- enum HashAlgorithm removed",
        ],
    );
}

#[test]
fn a_type_replaced_by_a_new_one_is_compared_by_structure() {
    // `in` now refers to a type the old schema does not have: what a client sees
    // there is one more member, not another type name.
    check(
        "replaced",
        &[
            added("type SdlOptions"),
            member_added("type Settings member in member samples", true),
        ],
        &[
            "+ type SdlOptions added",
            "+ type Settings member in member samples added, optional",
        ],
    );
}

#[test]
fn conditions_changed_between_sources() {
    let cond = |old: Option<&str>, new: Option<&str>| ChangeKind::ConditionChanged {
        old: old.map(String::from),
        new: new.map(String::from),
    };
    check(
        "conditions",
        &[
            change("command query-kvm", cond(Some("CONFIG_KVM"), None)),
            change(
                "command query-sev",
                cond(None, Some("TARGET_I386 and not CONFIG_USER_ONLY")),
            ),
            change(
                "command query-tdx",
                ChangeKind::Added {
                    optional: None,
                    condition: Some("TARGET_I386 or TARGET_X86_64".into()),
                },
            ),
            change("type SevInfo member verbose", cond(None, Some("CONFIG_X"))),
        ],
        &[
            "~ command query-kvm: if CONFIG_KVM -> (none)",
            "~ command query-sev: if (none) -> TARGET_I386 and not CONFIG_USER_ONLY",
            "+ command query-tdx added (if TARGET_I386 or TARGET_X86_64)",
            "~ type SevInfo member verbose: if (none) -> CONFIG_X",
        ],
    );
}

#[test]
fn each_case_against_itself_is_empty() {
    for entry in std::fs::read_dir(manifest().join("tests/diff")).unwrap() {
        let dir = entry.unwrap().path();
        for side in ["old", "new"] {
            let file = dir.join(format!("{side}.json"));
            if file.is_file() {
                let s = load(&file);
                assert!(diff(&s, &s).is_empty(), "{}", file.display());
            }
        }
    }
}

#[test]
fn json_output_reads_back() {
    let d = case("members");
    let text = d.to_json_text();
    assert_eq!(text.lines().count(), d.changes.len() + 2);
    let v = qapi_codegen::json::parse(&text).unwrap();
    let items = v.as_array().unwrap();
    assert_eq!(items.len(), 4);
    let first = &items[0];
    assert_eq!(
        first.get("path").and_then(|p| p.as_str()),
        Some("command stop member force")
    );
    assert_eq!(
        first.get("change").and_then(|p| p.as_str()),
        Some("removed")
    );
    assert_eq!(first.get("optional").and_then(|p| p.as_bool()), Some(false));
    let segments: Vec<&str> = first
        .get("segments")
        .and_then(|s| s.as_array())
        .unwrap()
        .iter()
        .filter_map(|s| s.as_str())
        .collect();
    assert_eq!(segments, ["command stop", "member force"]);
    assert_eq!(Diff::default().to_json_text(), "[]\n");
}

fn capture_and_snapshot() -> (Schema, Schema) {
    let root = manifest().join("..");
    (
        load(&root.join("schema/introspect/qemu-system-x86_64-10.0.json")),
        load(&root.join("schema/qemu-system-10.0.json")),
    )
}

#[test]
fn capture_against_sources_of_the_same_release() {
    let (capture, sources) = capture_and_snapshot();
    for (d, direction) in [
        (diff(&capture, &sources), "capture -> sources"),
        (diff(&sources, &capture), "sources -> capture"),
    ] {
        println!("{direction}: {} changes\n{d}", d.changes.len());
        // What is under a condition the x86_64 build does not compile in (other
        // targets, other hosts, libraries Debian does not build with), and a member
        // documented as added after 10.0 that the sources have and the binary not.
        assert!(!d.is_empty() && d.changes.len() <= 60, "{direction}:\n{d}");
        for c in &d.changes {
            // No type is named in a capture: nothing is reported by type name, and no
            // integer width or condition is compared.
            assert!(
                matches!(
                    c.path.0.first(),
                    Some(Segment::Command(_) | Segment::Event(_))
                ),
                "{c}"
            );
            assert!(
                !matches!(
                    c.kind,
                    ChangeKind::TypeChanged { .. } | ChangeKind::ConditionChanged { .. }
                ),
                "{c}"
            );
            let line = c.to_string();
            assert!(
                !line.contains("renamed") && !line.contains("q_obj_"),
                "{line}"
            );
        }
        let unexplained: Vec<String> = d
            .changes
            .iter()
            .filter(|c| {
                !matches!(
                    c.kind,
                    ChangeKind::Added {
                        condition: Some(_),
                        ..
                    } | ChangeKind::Removed {
                        condition: Some(_),
                        ..
                    }
                )
            })
            .map(|c| c.to_string())
            .collect();
        assert!(unexplained.len() <= 2, "{direction}: {unexplained:#?}");
    }
}

#[test]
fn capture_against_itself_is_empty() {
    let (capture, sources) = capture_and_snapshot();
    assert!(diff(&capture, &capture).is_empty());
    assert!(diff(&sources, &sources).is_empty());
}

#[test]
fn every_release_against_itself_is_empty() {
    let Some(dir) = old_releases::old_schemas() else {
        return;
    };
    let mut failures = Vec::new();
    let mut read = 0;
    for release in old_releases::releases(&dir) {
        for sub in ["qapi", "qga", "storage-daemon/qapi"] {
            let file = release.join(sub).join("qapi-schema.json");
            if !file.is_file() {
                continue;
            }
            let (a, b) = match (load_schema(&file), load_schema(&file)) {
                (Ok(a), Ok(b)) => (a, b),
                (Err(e), _) | (_, Err(e)) => {
                    failures.push(format!("{}: cannot be read: {e}", file.display()));
                    continue;
                }
            };
            read += 1;
            let d = diff(&a, &b);
            if !d.is_empty() {
                failures.push(format!("{}: differs from itself:\n{d}", file.display()));
            }
        }
    }
    println!("{read} schemas read and compared with themselves");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn from_9_1_to_10_0() {
    let Some(dir) = old_releases::old_schemas() else {
        return;
    };
    let old_file = dir.join("9.1/qapi/qapi-schema.json");
    if !old_file.is_file() {
        old_releases::skip::skipping(&format!("{} is absent", old_file.display()));
        return;
    }
    let new_file = match std::env::var_os("QAPI_CORPUS") {
        Some(corpus) => PathBuf::from(corpus).join("qapi/qapi-schema.json"),
        None => manifest().join("../schema/qemu-system-10.0.json"),
    };
    let d = diff(&load(&old_file), &load(&new_file));
    println!(
        "9.1 -> 10.0 ({}): {} changes\n{d}",
        new_file.display(),
        d.changes.len()
    );
    let text = d.to_string();
    for line in [
        "+ command blockdev-set-active added",
        "+ event BLOCK_IO_ERROR member qom-path added, required",
        "+ type BlockDeviceInfo member active added, required",
        "- enum SysEmuTarget value cris removed",
        "~ type NetdevStreamOptions member reconnect: type uint32 -> int",
    ] {
        assert!(text.lines().any(|l| l == line), "missing: {line}\n{text}");
    }
    let mut lines: Vec<&str> = text.lines().collect();
    let n = lines.len();
    lines.sort_unstable();
    lines.dedup();
    assert_eq!(lines.len(), n, "a change reported twice");
    // The same again gives the same text, in the same order.
    assert_eq!(diff(&load(&old_file), &load(&new_file)).to_string(), text);
}

/// Each fetched release against the next (and the last against 10.0): every change
/// once, the same text each time, and nothing between two readings of one release.
#[test]
fn consecutive_releases() {
    let Some(dir) = old_releases::old_schemas() else {
        return;
    };
    let mut files: Vec<PathBuf> = old_releases::releases(&dir)
        .into_iter()
        .map(|r| r.join("qapi/qapi-schema.json"))
        .filter(|f| f.is_file())
        .collect();
    files.push(manifest().join("../schema/qemu-system-10.0.json"));
    let mut failures = Vec::new();
    for pair in files.windows(2) {
        let (a, b) = match (load_schema(&pair[0]), load_schema(&pair[1])) {
            (Ok(a), Ok(b)) => (a, b),
            (Err(e), _) | (_, Err(e)) => {
                failures.push(format!("cannot be read: {e}"));
                continue;
            }
        };
        let d = diff(&a, &b);
        println!(
            "{} -> {}: {} changes",
            pair[0].display(),
            pair[1].display(),
            d.changes.len()
        );
        let text = d.to_string();
        let mut lines: Vec<&str> = text.lines().collect();
        let n = lines.len();
        lines.sort_unstable();
        lines.dedup();
        if lines.len() != n || n == 0 || diff(&a, &b) != d {
            failures.push(format!(
                "{} -> {}: empty, repeated or unstable",
                pair[0].display(),
                pair[1].display()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Schemas of different kinds in any order: a capture against each small case.
#[test]
fn mixed_kinds() {
    let (capture, sources) = capture_and_snapshot();
    for entry in std::fs::read_dir(manifest().join("tests/diff")).unwrap() {
        let file = entry.unwrap().path().join("new.json");
        if file.is_file() {
            let small = load(&file);
            for (a, b) in [(&capture, &small), (&small, &capture), (&sources, &small)] {
                let d = diff(a, b);
                assert!(!d.is_empty(), "{}", file.display());
                assert_eq!(d.to_json().as_array().map(Vec::len), Some(d.changes.len()));
            }
        }
    }
}

fn run_cli(args: &[&FsPath]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_qapi-codegen"))
        .arg("diff")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn cli_exit_statuses() {
    let (old, new) = (case_file("events", "old"), case_file("events", "new"));

    let (code, stdout, _) = run_cli(&[&old, &old]);
    assert_eq!((code, stdout.as_str()), (Some(0), ""));

    let (code, stdout, _) = run_cli(&[&old, &new]);
    assert_eq!(code, Some(1));
    assert_eq!(stdout, "- event GONE removed\n+ event NEW_EVENT added\n");

    let (code, stdout, _) = run_cli(&[&old, &new, FsPath::new("--json")]);
    assert_eq!(code, Some(1));
    assert!(
        stdout.starts_with("[\n  {\"change\":\"removed\""),
        "{stdout}"
    );

    let bad = manifest().join("tests/diff/bad/bad.json");
    let (code, stdout, stderr) = run_cli(&[&old, &bad]);
    assert_eq!((code, stdout.as_str()), (Some(2), ""));
    assert!(stderr.contains("bad.json:3:"), "{stderr}");

    let missing = manifest().join("tests/diff/no-such-file.json");
    let (code, _, stderr) = run_cli(&[&missing, &old]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("no-such-file.json"), "{stderr}");
}
