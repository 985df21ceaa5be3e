//! Conformance: the same scripted sessions sent to a real `qemu-storage-daemon` 10.0 and
//! to `qmp::server` (given the daemon's own `query-qmp-schema`) must get the same
//! replies: same shapes, classes and texts. Only the version (greeting and
//! `query-version`) is normalised, plus the one known divergence listed in `STEPS`.

mod server_support;

use qmp::schema_check::Schema;
use qmp::server::{QmpError, Server};
use serde_json::{json, Value};
use server_support::{live_schema, Qsd, RawPeer};

#[derive(Clone, Copy, PartialEq)]
enum Compare {
    /// Replies must be equal JSON.
    Exact,
    /// Only the error class must match: QEMU names an alternate type whose name a
    /// live `query-qmp-schema` masks (we say "109" where QEMU says "BlockdevRef").
    ClassOnly,
}

use Compare::*;

/// Session without `oob`: handshake errors, bad requests, bad arguments, successes.
const PLAIN: &[(&str, Compare)] = &[
    (r#"{"execute":"query-version"}"#, Exact),
    (r#"{"execute":"query-version","id":1}"#, Exact),
    (r#"{"execute":"nope","id":"a"}"#, Exact),
    (r#"{"exec-oob":"query-version","id":2}"#, Exact),
    (r#"{"execute": }"#, Exact),
    (r#"[1,2]"#, Exact),
    (
        r#"{"execute":"qmp_capabilities","arguments":{"enable":"oob"},"id":5}"#,
        Exact,
    ),
    (
        r#"{"execute":"qmp_capabilities","arguments":{"enable":["foo"]}}"#,
        Exact,
    ),
    (
        r#"{"execute":"qmp_capabilities","arguments":{"bogus":1}}"#,
        Exact,
    ),
    (r#"{"execute":"qmp_capabilities","id":{"k":[1]}}"#, Exact),
    (
        r#"{"execute":"qmp_capabilities","id":[1,{"a":null}]}"#,
        Exact,
    ),
    (r#"{"execute":"qmp_capabilities","id":1.5}"#, Exact),
    (r#"{"execute":"nope","id":"a"}"#, Exact),
    (
        r#"{"execute":"blockdev-add","arguments":{"node-name":"n"},"id":1}"#,
        Exact,
    ),
    (
        r#"{"execute":"blockdev-add","arguments":{"driver":"null-co","node-name":"n","bogus":1},"id":2}"#,
        Exact,
    ),
    (
        r#"{"execute":"blockdev-add","arguments":{"driver":"nul","node-name":"n"},"id":3}"#,
        Exact,
    ),
    (
        r#"{"execute":"blockdev-add","arguments":{"driver":"null-co","node-name":5},"id":4}"#,
        Exact,
    ),
    (
        r#"{"execute":"query-version","arguments":{"x":1},"id":5}"#,
        Exact,
    ),
    (r#"{"exec-oob":"query-version","id":6}"#, Exact),
    (r#"{"execute": }"#, Exact),
    (r#"{"execute":"x",}"#, Exact),
    (r#"[1,2]"#, Exact),
    (r#""str""#, Exact),
    (r#"{"execute":"query-version","id":null}"#, Exact),
    (r#"{"execute":"query-version","id":true}"#, Exact),
    (r#"{"execute":"query-version","id":{"a":[1]}}"#, Exact),
    (r#"{"execute":"query-version","id":-7}"#, Exact),
    (r#"{"execute":1}"#, Exact),
    (r#"{"execute":"query-version","arguments":[]}"#, Exact),
    (r#"{"execute":"query-version","foo":1}"#, Exact),
    (r#"{"id":7}"#, Exact),
    (
        r#"{"execute":"query-version","exec-oob":"query-version"}"#,
        Exact,
    ),
    (
        r#"{"execute":"blockdev-add","arguments":{"driver":"null-co","node-name":"n","size":1.5},"id":8}"#,
        Exact,
    ),
    (
        r#"{"execute":"blockdev-add","arguments":{"driver":"raw","node-name":"r","file":{"driver":"null-co","xx":1}},"id":10}"#,
        Exact,
    ),
    (
        r#"{"execute":"blockdev-add","arguments":{"driver":"raw","node-name":"r","file":5},"id":11}"#,
        ClassOnly,
    ),
    (
        r#"{"execute":"blockdev-add","arguments":{"driver":"null-co","node-name":"n","cache":{"direct":"x"}},"id":12}"#,
        Exact,
    ),
    (
        r#"{"execute":"query-named-block-nodes","arguments":{"flat":null},"id":13}"#,
        Exact,
    ),
    (
        r#"{"execute":"blockdev-add","arguments":{"driver":"raw","node-name":"r","file":{"driver":"nullx"}},"id":15}"#,
        Exact,
    ),
    (
        r#"{"execute":"blockdev-add","arguments":{"driver":"raw","node-name":"r","file":{"driver":"null-co","cache":{"direct":1}}},"id":16}"#,
        Exact,
    ),
    (
        r#"{"execute":"object-add","arguments":{"qom-type":"throttle-group","id":"t","limits":{"iops-total":"x"}},"id":17}"#,
        Exact,
    ),
    (
        r#"{"execute":"blockdev-add","arguments":{"driver":"null-co","node-name":"n0"},"id":14}"#,
        Exact,
    ),
    (r#"{'execute':'query-version','id':'it\'s "sq"'}"#, Exact),
    (r#"{"a" 1}"#, Exact),
    (r#"{1:2}"#, Exact),
    (r#"[1 2]"#, Exact),
    (r#"{"a":1,,}"#, Exact),
    (r#"tru"#, Exact),
    (r#"{"a": nul}"#, Exact),
    (r#"{"a":"\x"}"#, Exact),
    (r#"{"execute":"query-version","id":1,"id":2}"#, Exact),
    ("@", Exact),
    ("\u{1}", Exact),
    (r#"{"a": @"#, Exact),
    (r#"123"#, Exact),
    (r#"null"#, Exact),
    (r#"{"execute":"query-version","id":"last"}"#, Exact),
];

/// Session with `oob` negotiated.
const OOB: &[(&str, Compare)] = &[
    (
        r#"{"execute":"qmp_capabilities","arguments":{"enable":["oob"]}}"#,
        Exact,
    ),
    (r#"{"exec-oob":"query-version","id":1}"#, Exact),
    (r#"{"exec-oob":"nope","id":2}"#, Exact),
    (
        r#"{"execute":"query-version","exec-oob":"query-version","id":4}"#,
        Exact,
    ),
    (r#"{"exec-oob":"qmp_capabilities","id":6}"#, Exact),
    (r#"{"exec-oob":5,"id":7}"#, Exact),
    (r#"{"execute":"query-version","id":8}"#, Exact),
];

/// Replaces the version in a greeting or a `query-version` reply.
fn normalise(mut v: Value) -> Value {
    if let Some(version) = v.pointer_mut("/QMP/version") {
        *version = json!("<version>");
    }
    if let Some(ret) = v.get_mut("return") {
        if ret.get("qemu").is_some() && ret.get("package").is_some() {
            *ret = json!("<version>");
        }
    }
    v
}

fn class_of(v: &Value) -> Option<&str> {
    v.pointer("/error/class").and_then(Value::as_str)
}

async fn transcript(socket: &std::path::Path, steps: &[(&str, Compare)]) -> Vec<Value> {
    let mut p = RawPeer::connect(socket).await;
    let mut out = vec![normalise(p.recv().await)];
    for (line, _) in steps {
        out.push(normalise(p.call(line).await));
    }
    out
}

fn our_server(schema: Schema) -> Server {
    Server::builder()
        .version(10, 0, 2)
        .capabilities(["oob"])
        .schema(schema)
        .handle_raw("query-version", false, |_ctx, _args| async {
            Ok(json!({"qemu": {"major": 10, "minor": 0, "micro": 2}, "package": ""}))
        })
        .handle_raw("blockdev-add", false, |_ctx, _args| async { Ok(json!({})) })
        .fallback_raw(|ctx, _args| async move {
            Err(QmpError::generic(format!("not scripted: {}", ctx.command)))
        })
        .build()
}

#[tokio::test]
async fn scripted_sessions_match_qemu_storage_daemon() {
    let Some(qsd) = Qsd::start() else { return };
    let schema =
        Schema::from_introspection(&live_schema(&qsd.socket).await).expect("live schema indexes");
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("ours.sock");
    let server = our_server(schema);
    let _listening = server.listen_unix(&sock).await.unwrap();

    for (name, steps) in [("plain", PLAIN), ("oob", OOB)] {
        let theirs = transcript(&qsd.socket, steps).await;
        let ours = transcript(&sock, steps).await;
        assert_eq!(theirs[0], ours[0], "{name}: greeting");
        for (i, (line, compare)) in steps.iter().enumerate() {
            let (t, o) = (&theirs[i + 1], &ours[i + 1]);
            match compare {
                Exact => assert_eq!(t, o, "{name} step {i}: {line}\n qemu: {t}\n ours: {o}"),
                ClassOnly => {
                    assert_eq!(
                        class_of(t),
                        class_of(o),
                        "{name} step {i}: {line}\n qemu: {t}\n ours: {o}"
                    );
                    assert_eq!(t.get("id"), o.get("id"), "{name} step {i}: id");
                }
            }
        }
    }
}

/// What the checker built from the daemon's live schema accepts, the daemon accepts
/// too (each request is sent to it and must succeed); and for every command of the
/// schema sent with no arguments, the checker and the daemon agree: both refuse it
/// with the same class and text, or neither refuses the arguments.
#[tokio::test]
async fn live_schema_accepts_what_qemu_accepts() {
    let Some(qsd) = Qsd::start() else { return };
    let schema = Schema::from_introspection(&live_schema(&qsd.socket).await).unwrap();
    let mut qemu = RawPeer::connect(&qsd.socket).await;
    qemu.recv().await;
    qemu.call(r#"{"execute":"qmp_capabilities"}"#).await;
    let ok = [
        (
            "blockdev-add",
            json!({"driver": "null-co", "node-name": "a", "size": 1024}),
        ),
        (
            "blockdev-add",
            json!({"driver": "raw", "node-name": "b", "file": "a"}),
        ),
        (
            "blockdev-add",
            json!({"driver": "raw", "node-name": "c", "file": {"driver": "null-co"}}),
        ),
        ("query-named-block-nodes", json!({"flat": true})),
        ("query-version", json!({})),
        (
            "object-add",
            json!({"qom-type": "throttle-group", "id": "t", "limits": {"iops-total": 5}}),
        ),
    ];
    for (cmd, args) in ok {
        assert!(
            schema.check_command(cmd, args.as_object()).is_ok(),
            "{cmd} {args}"
        );
        let request = json!({"execute": cmd, "arguments": args});
        let reply = qemu.call(&request.to_string()).await;
        assert!(
            reply.get("return").is_some(),
            "the checker accepted {request}, QEMU answered {reply}"
        );
    }
    // Every command of the live schema, with no arguments. `quit` would end the
    // daemon (the checker accepts it: it takes none).
    let mut accepted = 0;
    let commands: Vec<String> = schema.command_names().map(str::to_owned).collect();
    for cmd in commands.iter().filter(|c| *c != "quit") {
        let ours = schema.check_command(cmd, None);
        let reply = qemu
            .call(&json!({"execute": cmd, "id": cmd}).to_string())
            .await;
        assert_eq!(reply["id"], json!(cmd), "{reply}");
        match (reply.get("error"), ours) {
            (Some(e), Err(r)) => {
                assert_eq!(e["class"], r.class, "{cmd}: qemu {e}");
                assert_eq!(e["desc"], r.desc.as_str(), "{cmd}: qemu {e}");
            }
            (None, Err(r)) => panic!("{cmd}: QEMU accepted no arguments, the checker refused: {r}"),
            (None, Ok(_)) => accepted += 1,
            // QEMU may refuse a call for reasons other than its arguments (state).
            (Some(e), Ok(_)) => {
                let desc = e["desc"].as_str().unwrap_or("");
                assert!(
                    !desc.starts_with("Parameter") && !desc.starts_with("Invalid parameter"),
                    "{cmd}: QEMU refused no arguments ({e}), the checker accepted them"
                );
                accepted += 1;
            }
        }
    }
    assert!(accepted > 10, "only {accepted} argument-less commands");
}

/// Requests written back to back in one write, without newlines (as `qemu.qmp` sends
/// them), some single-quoted and one split over lines: QEMU's streaming parser and
/// ours find the same messages and answer them in order.
#[tokio::test]
async fn pipelined_requests_without_newlines_match() {
    let Some(qsd) = Qsd::start() else { return };
    let schema = Schema::from_introspection(&live_schema(&qsd.socket).await).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("ours.sock");
    let server = our_server(schema);
    let _listening = server.listen_unix(&sock).await.unwrap();
    let burst = concat!(
        r#"{"execute":"qmp_capabilities","id":0}"#,
        r#"{'execute':'query-version','id':1}"#,
        "{\"execute\":\n \"nope\",\n \"id\": 2}",
        r#"{"execute":"blockdev-add","arguments":{"driver":"null-co","node-name":"n1"},"id":3}"#,
        r#"[]{"execute":"query-version","id":4}"#,
        "\n"
    );
    let mut replies = Vec::new();
    for path in [&qsd.socket, &sock] {
        let mut p = RawPeer::connect(path).await;
        p.recv().await;
        p.send(burst.trim_end()).await;
        let mut got = Vec::new();
        for _ in 0..6 {
            got.push(normalise(p.recv().await));
        }
        replies.push(got);
    }
    assert_eq!(replies[0], replies[1]);
    assert_eq!(replies[0][2]["error"]["class"], "CommandNotFound");
}

/// The full system emulator's schema (many alternates, unions, features) indexes,
/// and the checker agrees with QEMU on a few real commands, accepted and refused.
#[tokio::test]
async fn system_emulator_schema_checks_agree_with_qemu() {
    let Some(qemu) = Qsd::start_system() else {
        return;
    };
    let schema = Schema::from_introspection(&live_schema(&qemu.socket).await).expect("indexes");
    let mut p = RawPeer::connect(&qemu.socket).await;
    p.recv().await;
    p.call(r#"{"execute":"qmp_capabilities"}"#).await;
    let cases = [
        r#"{"execute":"qom-list","arguments":{"path":"/machine"}}"#,
        r#"{"execute":"qom-list","arguments":{"path":5}}"#,
        r#"{"execute":"qom-list","arguments":{}}"#,
        r#"{"execute":"qom-get","arguments":{"path":"/machine","property":"type","x":1}}"#,
        r#"{"execute":"query-cpus-fast","arguments":{"x":1}}"#,
        r#"{"execute":"migrate-set-capabilities","arguments":{"capabilities":[{"capability":"nope","state":true}]}}"#,
        r#"{"execute":"migrate-set-capabilities","arguments":{"capabilities":[{"capability":"xbzrle","state":"on"}]}}"#,
        r#"{"execute":"set-action","arguments":{"reboot":"bogus"}}"#,
        r#"{"execute":"no-such-command"}"#,
    ];
    for line in cases {
        let req: Value = serde_json::from_str(line).unwrap();
        let reply = p.call(line).await;
        let ours = schema.check_command(
            req["execute"].as_str().unwrap(),
            req["arguments"].as_object(),
        );
        match (reply.get("error"), ours) {
            (Some(e), Err(r)) => {
                assert_eq!(e["class"], r.class, "{line}");
                assert_eq!(e["desc"], r.desc.as_str(), "{line}");
            }
            (None, Ok(_)) => {}
            // QEMU may refuse valid arguments for other reasons (state, values).
            (Some(e), Ok(_)) => assert!(
                !e["desc"].as_str().unwrap_or("").starts_with("Parameter")
                    && !e["desc"]
                        .as_str()
                        .unwrap_or("")
                        .starts_with("Invalid parameter"),
                "{line}: QEMU refused the arguments ({e}) but the checker accepted them"
            ),
            (None, Err(r)) => panic!("{line}: QEMU accepted it, the checker refused: {r}"),
        }
    }
}
