//! Building values with the generated bindings the way a user writes them (issue 19):
//! `&str` for strings and the unboxed value for a boxed member, a union from its
//! branch's value, a reply from `Default` and setters instead of a positional `new`,
//! and the wire names as rustdoc aliases. Each test compiles only if the API allows
//! what it shows, and checks the JSON the value makes.

use qemu_qapi::commands::{BlockResize, BlockdevAdd};
use qemu_qapi::events::{Event, JobStatusChange};
use qemu_qapi::types::{
    BlockDeviceInfo, BlockdevDetectZeroesOptions, BlockdevOptions, BlockdevOptionsBranch,
    BlockdevOptionsFile, BlockdevOptionsQcow2, BlockdevRef, CpuInfoFast, CpuInfoFastBranch,
    CpuInfoS390, JobStatus, S390CpuState, SysEmuTarget,
};
use serde_json::json;

fn to_json<T: serde::Serialize>(value: &T) -> serde_json::Value {
    serde_json::to_value(value).expect("a generated value serializes")
}

/// `new` and the setters take `&str` for a string, and the plain value for a member
/// that is boxed because it closes a cycle (`BlockdevOptionsQcow2::file`).
#[test]
fn strings_take_str_and_boxed_members_take_the_value() {
    // `file`, `host_device` and `host_cdrom` all take `BlockdevOptionsFile`: no `From`
    // for it (which would it mean?); the variant says.
    let file = BlockdevOptions::new(BlockdevOptionsBranch::File(BlockdevOptionsFile::new(
        "/tmp/disk.img",
    )))
    .with_node_name("disk0-file");
    assert_eq!(
        to_json(&BlockdevAdd::new(file)),
        json!({"driver": "file", "filename": "/tmp/disk.img", "node-name": "disk0-file"})
    );
    let qcow2 = BlockdevOptionsQcow2::new(BlockdevRef::Reference("disk0-file".to_owned()))
        .with_lazy_refcounts(true);
    let disk = BlockdevOptions::from(qcow2).with_node_name("disk0");
    assert_eq!(
        to_json(&BlockdevAdd::new(disk)),
        json!({"driver": "qcow2", "node-name": "disk0", "file": "disk0-file",
               "lazy-refcounts": true})
    );
    // A setter of a required member; an owned `String` passes as well.
    let resize = BlockResize::new(1 << 20)
        .with_node_name(String::from("disk0"))
        .with_size(2 << 20);
    assert_eq!(
        to_json(&resize),
        json!({"node-name": "disk0", "size": 2 << 20})
    );
}

/// `From<BranchType>` builds the branch enum (boxing the branch that closes a cycle,
/// `qcow2`) and, when the discriminator is the union's only required member, the
/// union itself.
#[test]
fn a_union_and_its_branch_enum_convert_from_a_branch_value() {
    let branch = BlockdevOptionsBranch::from(BlockdevOptionsQcow2::new(BlockdevRef::Reference(
        "base".to_owned(),
    )));
    match &branch {
        BlockdevOptionsBranch::Qcow2(boxed) => {
            assert!(matches!(&*boxed.file, BlockdevRef::Reference(r) if r == "base"))
        }
        other => panic!("qcow2 options became another branch: {other:?}"),
    }
    let options: BlockdevOptions = branch.into();
    assert_eq!(
        to_json(&options),
        json!({"driver": "qcow2", "file": "base"})
    );

    // `CpuInfoFast` has required members besides `target`: only its branch enum
    // converts, and `new` takes the branch's value through it.
    let cpu = CpuInfoFast::new(
        0,
        "/machine/unattached/device[0]",
        4242,
        CpuInfoS390::new(S390CpuState::Operating),
    );
    assert_eq!(
        to_json(&cpu),
        json!({"cpu-index": 0, "qom-path": "/machine/unattached/device[0]",
               "thread-id": 4242, "target": "s390x", "cpu-state": "operating"})
    );
    assert!(matches!(
        CpuInfoFastBranch::from(CpuInfoS390::new(S390CpuState::Stopped)),
        CpuInfoFastBranch::S390x(_)
    ));
    assert_eq!(SysEmuTarget::S390x.as_str(), "s390x");
}

/// A reply with many required members (`BlockDeviceInfo`: 16) is built from
/// `Default` and setters; the rest are empty, zero, or their enum's first value.
#[test]
fn a_reply_builds_from_default_and_setters() {
    let info = BlockDeviceInfo::default()
        .with_file("disk.qcow2")
        .with_node_name("disk0")
        .with_drv("qcow2")
        .with_ro(true);
    let value = to_json(&info);
    assert_eq!(value["file"], "disk.qcow2");
    assert_eq!(value["node-name"], "disk0");
    assert_eq!(value["ro"], true);
    assert_eq!(value["bps"], 0);
    assert_eq!(value["detect_zeroes"], "off");
    assert_eq!(info.detect_zeroes, BlockdevDetectZeroesOptions::Off);
    assert_eq!(value["image"]["filename"], "");
    assert!(
        value.get("backing_file").is_none(),
        "unset optional member sent: {value}"
    );
    // And it is a valid reply: it decodes back to itself.
    let back: BlockDeviceInfo = serde_json::from_value(value).expect("decodes");
    assert_eq!(back, info);

    // An event's struct too, with its fields assigned (it is `#[non_exhaustive]`).
    let mut change = JobStatusChange::default();
    change.id = "job0".to_owned();
    change.status = JobStatus::Running;
    assert_eq!(to_json(&change), json!({"id": "job0", "status": "running"}));
    assert_eq!(Event::JobStatusChange(change).name(), "JOB_STATUS_CHANGE");
}

/// Each union's docs say how to build it from a branch's value, which types have no
/// `From` because several branches share them, and the one boxing rule.
#[test]
fn union_docs_say_how_to_build_one_and_when_a_branch_is_boxed() {
    let path = concat!(env!("OUT_DIR"), "/qapi.rs");
    let code = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let docs = |item: &str| -> Vec<String> {
        let at = code.find(item).unwrap_or_else(|| panic!("no {item}"));
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
    };
    let rule = "/// A branch is boxed (`Box<T>`) exactly when its type contains this union \
                again (otherwise the union would be infinitely large); `From` does the \
                boxing, so `Box::new` is never needed.";
    let blockdev = docs("pub struct BlockdevOptions {");
    let tail: Vec<&str> = blockdev[blockdev.len() - 3..]
        .iter()
        .map(String::as_str)
        .collect();
    assert_eq!(
        tail,
        [
            "/// Build it from the value of a branch: `BlockdevOptions::from(value)` (its \
             other members unset) or `BlockdevOptionsBranch::from(value)`.",
            "/// Some types are the type of several branches, so no `From` converts them: \
             `BlockdevOptionsGenericFormat`, `BlockdevOptionsFile`, `BlockdevOptionsNull`, \
             `BlockdevOptionsGenericCOWFormat`; name the variant.",
            rule,
        ]
    );
    let cpu = docs("pub struct CpuInfoFast {");
    let tail: Vec<&str> = cpu[cpu.len() - 2..].iter().map(String::as_str).collect();
    assert_eq!(
        tail,
        [
            "/// It has required members besides `target`, so it has no `From` a branch's \
             value: build it with `new`, giving the branch as `CpuInfoFastBranch::from(value)`.",
            rule,
        ]
    );
}

/// The command and event names of `schema/qemu-system-10.0.json`, read from the file
/// itself (not from the bindings), in definition order.
fn schema_names(kind: &str) -> Vec<String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/schema/qemu-system-10.0.json");
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let key = format!("{{ '{kind}': '");
    text.lines()
        .filter_map(|l| l.strip_prefix(&key))
        .filter_map(|rest| rest.split('\'').next())
        .map(str::to_owned)
        .collect()
}

/// Every command's struct and every event's struct and `Event` variant carry
/// `#[doc(alias = "wire-name")]`, so rustdoc's search finds `query-status` and
/// `JOB_STATUS_CHANGE`.
#[test]
fn every_command_and_event_has_its_wire_name_as_doc_alias() {
    let path = concat!(env!("OUT_DIR"), "/qapi.rs");
    let code = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let commands = schema_names("command");
    let events = schema_names("event");
    assert!(commands.len() > 200 && events.len() > 50, "schema not read");
    let count = |name: &str| code.matches(&format!("#[doc(alias = \"{name}\")]")).count();
    let missing: Vec<&String> = commands.iter().filter(|c| count(c) < 1).collect();
    assert!(missing.is_empty(), "commands without an alias: {missing:?}");
    // The event's struct and its variant of `Event`.
    let missing: Vec<&String> = events.iter().filter(|e| count(e) < 2).collect();
    assert!(
        missing.is_empty(),
        "events without both aliases: {missing:?}"
    );
    // Each on the item it names.
    for (alias, item) in [
        ("query-status", "pub struct QueryStatus;"),
        ("block_resize", "pub struct BlockResize {"),
        ("JOB_STATUS_CHANGE", "pub struct JobStatusChange {"),
        (
            "node-name",
            "pub node_name: ::std::option::Option<::std::string::String>,",
        ),
        // (`BlockdevDriver`'s value, before the union's branch of the same name)
        ("null-co", "NullCo,"),
    ] {
        let at = code
            .find(&format!("#[doc(alias = \"{alias}\")]"))
            .unwrap_or_else(|| panic!("no alias {alias}"));
        let next_item = code[at..]
            .lines()
            .map(str::trim)
            .find(|l| !l.starts_with('#') && !l.starts_with("///"))
            .unwrap_or_default();
        assert_eq!(next_item, item, "alias {alias}");
    }
}
