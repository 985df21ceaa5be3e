//! Behaviour of the generated bindings (QEMU 10.0 system schema): what a newer QEMU may
//! send decodes, values round-trip exactly, and the run-time tables and argument checks
//! answer.

use qemu_qapi::commands::{self, BlockResize, QueryStatus};
use qemu_qapi::events::{self, Event};
use qemu_qapi::qmp::{Command, EventSet};
use qemu_qapi::types::{
    BlockdevOptions, BlockdevOptionsBranch, BlockdevOptionsGenericCOWFormat, BlockdevRefOrNull,
    Memdev, RunState, SchemaInfo, SchemaInfoBranch,
};
use serde_json::{json, Value};

fn roundtrip<T: serde::Serialize + serde::de::DeserializeOwned>(v: Value) -> T {
    let t: T = serde_json::from_value(v.clone()).expect("decode");
    assert_eq!(serde_json::to_value(&t).expect("encode"), v);
    t
}

#[test]
fn enum_values_a_newer_qemu_sends_are_kept() {
    assert_eq!(roundtrip::<RunState>(json!("paused")), RunState::Paused);
    let v = roundtrip::<RunState>(json!("hibernating-in-2030"));
    assert_eq!(v, RunState::Unknown("hibernating-in-2030".into()));
    assert_eq!(v.as_str(), "hibernating-in-2030");
}

#[test]
fn union_branch_follows_the_discriminator() {
    let o = roundtrip::<BlockdevOptions>(
        json!({"driver": "file", "node-name": "disk0", "filename": "/tmp/x.img"}),
    );
    assert_eq!(o.node_name.as_deref(), Some("disk0"));
    match &o.driver {
        BlockdevOptionsBranch::File(f) => assert_eq!(f.filename, "/tmp/x.img"),
        other => panic!("wrong branch {other:?}"),
    }
}

#[test]
fn union_with_an_unknown_discriminator_value_decodes_and_reencodes() {
    let o =
        roundtrip::<BlockdevOptions>(json!({"driver": "future-fmt", "node-name": "n", "knob": 3}));
    match &o.driver {
        BlockdevOptionsBranch::Unknown { value, members } => {
            assert_eq!(value, "future-fmt");
            assert_eq!(members.get("knob"), Some(&json!(3)));
        }
        other => panic!("wrong branch {other:?}"),
    }
}

#[test]
fn union_without_its_discriminator_is_an_error() {
    let e = serde_json::from_value::<BlockdevOptions>(json!({"node-name": "n"})).unwrap_err();
    assert!(e.to_string().contains("driver"), "{e}");
}

#[test]
fn union_discriminator_may_come_after_the_branch_members() {
    // QEMU writes members in hash order: `query-qmp-schema` sends `ret-type` before
    // `meta-type`. Decoded from text (the streaming path) and from a `Value`.
    let text = r#"{"name":"query-status","ret-type":"1","meta-type":"command","arg-type":"0"}"#;
    for info in [
        serde_json::from_str::<SchemaInfo>(text).expect("from text"),
        serde_json::from_value::<SchemaInfo>(serde_json::from_str(text).unwrap()).expect("value"),
    ] {
        assert_eq!(info.name, "query-status");
        match &info.meta_type {
            SchemaInfoBranch::Command(c) => {
                assert_eq!((c.arg_type.as_str(), c.ret_type.as_str()), ("0", "1"));
            }
            other => panic!("wrong branch {other:?}"),
        }
        let back = serde_json::to_value(&info).unwrap();
        assert_eq!(back, serde_json::from_str::<Value>(text).unwrap());
    }
    // A branch member that does not decode is named, whether it came before the
    // discriminator or after it.
    for text in [
        r#"{"name":"x","ret-type":1,"meta-type":"command","arg-type":"0"}"#,
        r#"{"name":"x","meta-type":"command","ret-type":1,"arg-type":"0"}"#,
    ] {
        let e = serde_json::from_str::<SchemaInfo>(text).unwrap_err();
        assert!(e.to_string().contains("invalid type"), "{e}");
    }
}

#[test]
fn members_given_twice_or_missing_are_errors_that_name_them() {
    let e = serde_json::from_str::<BlockdevOptionsGenericCOWFormat>(
        r#"{"file": "a", "backing": null, "backing": "b"}"#,
    )
    .unwrap_err();
    assert!(e.to_string().contains("duplicate member `backing`"), "{e}");
    let e = serde_json::from_str::<commands::BlockResize>(r#"{"node-name": "n"}"#).unwrap_err();
    assert!(e.to_string().contains("missing field `size`"), "{e}");
    let e = serde_json::from_str::<commands::BlockResize>(r#"[1]"#).unwrap_err();
    assert!(e.to_string().contains("block_resize"), "{e}");
}

#[test]
fn alternates_are_decided_by_the_json_kind() {
    let r = roundtrip::<BlockdevRefOrNull>(json!("node0"));
    assert_eq!(r, BlockdevRefOrNull::Reference("node0".into()));
    assert_eq!(
        roundtrip::<BlockdevRefOrNull>(Value::Null),
        BlockdevRefOrNull::Null(())
    );
    let r: BlockdevRefOrNull =
        serde_json::from_str(r#"{"driver": "null-co", "node-name": "n0"}"#).unwrap();
    assert!(matches!(r, BlockdevRefOrNull::Definition(_)), "{r:?}");
    let e = serde_json::from_str::<BlockdevRefOrNull>("1").unwrap_err();
    assert!(e.to_string().contains("BlockdevRefOrNull"), "{e}");
    // An object that is not a valid branch reports the branch's error.
    let e = serde_json::from_str::<BlockdevRefOrNull>(r#"{"node-name": "n0"}"#).unwrap_err();
    assert!(e.to_string().contains("driver"), "{e}");
}

#[test]
fn records_debug_as_their_wire_json() {
    let resize = BlockResize::new(1024).with_node_name("disk0");
    assert_eq!(
        format!("{resize:?}"),
        r#"BlockResize {"node-name":"disk0","size":1024}"#
    );
    let pretty = format!("{resize:#?}");
    assert!(pretty.starts_with("BlockResize {\n"), "{pretty}");
}

#[test]
fn gen_false_commands_keep_undeclared_arguments() {
    let add = roundtrip::<commands::DeviceAdd>(
        json!({"driver": "virtio-blk-pci", "id": "d0", "drive": "disk0", "num-queues": 2}),
    );
    assert_eq!(add.driver, "virtio-blk-pci");
    assert_eq!(add.extra.get("drive"), Some(&json!("disk0")));
    assert_eq!(add.extra.get("num-queues"), Some(&json!(2)));
}

#[test]
fn optional_nullable_member_has_three_states() {
    let absent: BlockdevOptionsGenericCOWFormat = roundtrip(json!({"file": "disk0"}));
    assert!(absent.backing.is_none());
    let null: BlockdevOptionsGenericCOWFormat =
        roundtrip(json!({"file": "disk0", "backing": null}));
    assert!(matches!(
        null.backing.as_deref(),
        Some(BlockdevRefOrNull::Null(()))
    ));
    let set: BlockdevOptionsGenericCOWFormat =
        roundtrip(json!({"file": "disk0", "backing": "base0"}));
    assert!(
        matches!(set.backing.as_deref(), Some(BlockdevRefOrNull::Reference(r)) if r == "base0")
    );
}

#[test]
fn uint64_and_size_take_values_above_i64_max() {
    let m: Memdev = roundtrip(json!({
        "size": u64::MAX, "merge": false, "dump": true, "prealloc": false,
        "share": false, "host-nodes": [0, 1], "policy": "default"
    }));
    assert_eq!(m.size, u64::MAX);
}

#[test]
fn unknown_reply_members_are_ignored() {
    let s: <QueryStatus as Command>::Reply =
        serde_json::from_value(json!({"running": true, "status": "running", "new-in-qemu-12": 1}))
            .expect("decode");
    assert!(s.running);
}

#[test]
fn events_decode_by_name_and_unknown_events_are_kept() {
    assert_eq!(Event::decode("STOP", None).expect("stop"), Event::Stop);
    let data = r#"{"type":"commit","device":"j0","len":10,"offset":10,"speed":0}"#;
    match Event::decode("BLOCK_JOB_COMPLETED", Some(data)).expect("decode") {
        Event::BlockJobCompleted(e) => assert_eq!(e.device, "j0"),
        other => panic!("{other:?}"),
    }
    let e = Event::decode("FUTURE_EVENT", Some(r#"{"x":1}"#)).expect("unknown events decode");
    assert_eq!(
        e,
        Event::Unknown {
            name: "FUTURE_EVENT".into(),
            data: Some(json!({"x": 1}))
        }
    );
    assert_eq!(e.name(), "FUTURE_EVENT");
    // A known event with bad data is an error, not a silent catch-all.
    assert!(Event::decode("BLOCK_JOB_COMPLETED", Some("{}")).is_err());
    // Data that is not JSON is an error too (the reader has already checked it, but
    // `decode` is public).
    assert!(Event::decode("BLOCK_JOB_COMPLETED", Some("{")).is_err());
}

#[test]
fn commands_serialize_to_their_wire_arguments() {
    let c = BlockResize::new(1 << 30).with_node_name("disk0");
    assert_eq!(
        serde_json::to_value(&c).expect("encode"),
        json!({"node-name": "disk0", "size": 1073741824})
    );
    assert_eq!(<BlockResize as Command>::NAME, "block_resize");
    assert_eq!(
        serde_json::to_value(QueryStatus).expect("encode"),
        Value::Null
    );
}

#[cfg(feature = "check-arguments")]
#[test]
fn argument_check_names_the_member() {
    assert_eq!(
        commands::check_command_arguments("block_resize", &json!({"size": 1})),
        Some(Ok(()))
    );
    let e = commands::check_command_arguments("block_resize", &json!({"size": "big"}))
        .expect("known command")
        .unwrap_err();
    assert!(e.contains("size"), "{e}");
    let e = commands::check_command_arguments("block_resize", &json!({}))
        .expect("known command")
        .unwrap_err();
    assert!(e.contains("size"), "{e}");
    assert!(commands::check_command_arguments("stop", &json!({"x": 1})).is_some_and(|r| r.is_err()));
    assert_eq!(
        commands::check_command_arguments("no-such-command", &json!({})),
        None
    );
}

#[test]
fn run_time_tables_know_conditions_and_features() {
    let qs = commands::COMMANDS
        .iter()
        .find(|c| c.name == "query-status")
        .expect("query-status");
    assert!(!qs.deprecated && qs.success_response && !qs.allow_oob);
    // The commands QEMU 10.0's system schema declares `allow-oob: true` (migration.json,
    // yank.json; every release since 3.1 has the first two). A command missing from
    // the table fails the test rather than skipping the check.
    for name in ["migrate-pause", "migrate-recover", "yank", "query-yank"] {
        let c = commands::COMMANDS
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("{name} is missing from the bindings"));
        assert!(c.allow_oob, "{name} allows out-of-band execution");
    }
    assert!(commands::COMMANDS.iter().any(|c| c.ifcond.is_some()));
    assert!(commands::COMMANDS.iter().any(|c| c.deprecated));
    assert!(events::EVENTS.iter().any(|e| e.name == "STOP"));
}

#[cfg(feature = "check-arguments")]
#[test]
fn reply_check_decodes_as_execute_and_names_the_member() {
    // A member the bindings do not know (QEMU 7.2's `singlestep`, gone in 10.0) is
    // ignored; a missing one is an error naming the command and the path.
    let ok = r#"{"status": "running", "running": true, "singlestep": false}"#;
    assert!(matches!(
        commands::check_command_reply("query-status", ok),
        Some(Ok(()))
    ));
    let e = commands::check_command_reply("query-status", r#"{"running": true}"#)
        .expect("known command")
        .unwrap_err();
    assert!(e.is_decode());
    assert_eq!(e.command(), Some("query-status"));
    assert_eq!(e.decode_path(), Some("return"));
    assert!(e.to_string().contains("missing field `status`"), "{e}");
    let e = commands::check_command_reply("query-version", r#"{"qemu": {"major": 1}}"#)
        .expect("known command")
        .unwrap_err();
    assert_eq!(e.decode_path(), Some("return.qemu"));
    // Commands that return nothing accept `{}`.
    assert!(matches!(
        commands::check_command_reply("stop", "{}"),
        Some(Ok(()))
    ));
    assert!(commands::check_command_reply("no-such-command", "{}").is_none());
}
