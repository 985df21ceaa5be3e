//! Interop with a client nobody here wrote: QEMU's own Python library `qemu.qmp` (from
//! PyPI, in the venv `scripts/python-venv` creates) against `qmp::server`.

mod server_support;

use std::time::Duration;

use qmp::server::replay::Replay;
use qmp::server::transcript::{self, Recorder};
use qmp::server::{QmpError, Server};
use serde_json::{json, Value};
use server_support::{record_session, run_qemu_qmp, venv_python, Qsd};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qemu_qmp_negotiates_executes_gets_events_and_oob() {
    let python = venv_python();
    let server = Server::builder()
        .version(10, 0, 2)
        .package("qmp-test")
        .capabilities(["oob"])
        .handle_raw("query-version", false, |_ctx, _args| async {
            Ok(json!({"qemu": {"major": 10, "minor": 0, "micro": 2}, "package": "qmp-test"}))
        })
        .handle_raw("emit-event", false, |ctx, args| async move {
            let name = args
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("X")
                .to_string();
            ctx.server
                .emit_raw_to(ctx.client, &name, Some(json!({"n": args.get("n")})))
                .await;
            Ok(json!({}))
        })
        .handle_raw("slow", false, |_ctx, _args| async {
            tokio::time::sleep(Duration::from_millis(500)).await;
            Ok(json!({}))
        })
        .handle_raw("fast-oob", true, |ctx, _args| async move {
            if !ctx.oob {
                return Err(QmpError::generic("expected exec-oob"));
            }
            Ok(json!({}))
        })
        .build();
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("s.sock");
    let _l = server.listen_unix(&sock).await.unwrap();

    let out = run_qemu_qmp(&python, &["basic", sock.to_str().unwrap()]).await;
    assert_eq!(out["greeting"]["capabilities"], json!(["oob"]));
    assert_eq!(out["greeting"]["version"]["package"], "qmp-test");
    assert_eq!(out["version"]["qemu"]["major"], 10);
    assert_eq!(out["error"]["class"], "CommandNotFound");
    assert_eq!(
        out["error"]["desc"],
        "The command no-such-command has not been found"
    );
    assert_eq!(out["emit"], json!({}));
    assert_eq!(
        out["event"],
        json!({"event": "TEST_EVENT", "data": {"n": 7}, "has_timestamp": true})
    );
    // The OOB command overtook the slow in-band one.
    assert_eq!(out["order"], json!(["fast-oob", "slow"]));
}

/// A transcript recorded against real QEMU, replayed by our server to `qemu.qmp`:
/// every reply is the recorded one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qemu_qmp_gets_replies_recorded_from_real_qemu() {
    let Some(qsd) = Qsd::start() else { return };
    let python = venv_python();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("session.jsonl");
    let requests = [
        r#"{"execute":"qmp_capabilities","arguments":{"enable":["oob"]},"id":"c"}"#,
        r#"{"execute":"query-version","id":1}"#,
        r#"{"execute":"blockdev-add","arguments":{"driver":"null-co","node-name":"n0","size":4096},"id":2}"#,
        r#"{"execute":"query-named-block-nodes","arguments":{"flat":true},"id":3}"#,
        r#"{"execute":"blockdev-add","arguments":{"driver":"null-co","node-name":"n0"},"id":4}"#,
        r#"{"execute":"blockdev-del","arguments":{"node-name":"n0"},"id":5}"#,
    ];
    let recorded = {
        let rec = Recorder::create(&path).unwrap();
        record_session(&qsd.socket, &rec, &requests).await
    };
    assert!(
        recorded[4].get("error").is_some(),
        "duplicate node name must fail in QEMU"
    );

    let server = Server::builder()
        .replay(Replay::from_file(&path).unwrap())
        .build();
    let sock = dir.path().join("replay.sock");
    let _l = server.listen_unix(&sock).await.unwrap();
    let commands: Vec<Value> = requests[1..]
        .iter()
        .map(|r| {
            let v: Value = serde_json::from_str(r).unwrap();
            json!([
                v["execute"],
                v.get("arguments").cloned().unwrap_or(json!({}))
            ])
        })
        .collect();
    let out = run_qemu_qmp(
        &python,
        &[
            "replay",
            sock.to_str().unwrap(),
            &Value::Array(commands).to_string(),
        ],
    )
    .await;
    let entries = transcript::read(&path).unwrap();
    assert_eq!(
        out["greeting"]["capabilities"],
        entries[0].msg["QMP"]["capabilities"]
    );
    let replies = out["replies"].as_array().unwrap();
    assert_eq!(replies.len(), recorded.len() - 1);
    for (got, want) in replies.iter().zip(&recorded[1..]) {
        let mut want = want.clone();
        want.as_object_mut().unwrap().remove("id");
        assert_eq!(got, &want);
    }
}
