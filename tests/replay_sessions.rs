//! `qmp serve --replay FILE` serves the transcript to every connection from its start:
//! a session recorded with `qmp --record` against a real `qemu-storage-daemon` is
//! replayed to `qmp call` two and three times in a row, to two `qmp call`s at once,
//! and to two of our clients connected at the same time, each getting the recorded
//! replies. Skipped (with a line) where the daemon is not installed.
#![cfg(feature = "cli")]

#[path = "support/skip.rs"]
mod skip;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use qemu_qapi::qmp::{self, local::LocalQemu};
use serde_json::Value;

const QMP: &str = env!("CARGO_BIN_EXE_qmp");

fn qmp(args: &[&str]) -> Output {
    Command::new(QMP)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// The JSON `qmp call` printed, after checking it succeeded.
fn printed(out: &Output, what: &str) -> Value {
    assert!(
        out.status.success(),
        "{what}: qmp failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{what}: {e}"))
}

/// Records `qmp call query-version` against a real storage daemon (the session has
/// `query-qmp-schema` too: `call` checks its arguments against the peer's schema);
/// returns the reply as `qmp call` printed it.
fn record(transcript: &Path) -> Option<Value> {
    if !qmp::local::installed("qemu-storage-daemon") {
        skip::skipping("qemu-storage-daemon is not installed (scripts/setup-qemu)");
        return None;
    }
    let mut qsd = LocalQemu::storage_daemon().expect("starting qemu-storage-daemon");
    qsd.wait_for_socket(Duration::from_secs(10)).unwrap();
    let s = qsd.socket().to_str().unwrap();
    let t = transcript.to_str().unwrap();
    let version = printed(
        &qmp(&["--socket", s, "--record", t, "call", "query-version"]),
        "recording query-version",
    );
    Some(version)
}

/// `qmp serve --replay TRANSCRIPT` on a socket in a private directory, stopped on drop.
fn serve(transcript: &Path) -> LocalQemu {
    let t = transcript.display().to_string();
    let mut server = LocalQemu::spawn(QMP, |socket| {
        vec![
            "--socket".into(),
            socket.display().to_string(),
            "serve".into(),
            "--replay".into(),
            t,
        ]
    })
    .unwrap();
    server.wait_for_socket(Duration::from_secs(10)).unwrap();
    server
}

#[test]
fn qmp_call_again_and_again_is_answered_from_the_transcript() {
    let dir = tempfile::tempdir().unwrap();
    let transcript = dir.path().join("session.jsonl");
    let Some(version) = record(&transcript) else {
        return;
    };
    assert_eq!(version["qemu"]["major"], 10, "{version}");
    let server = serve(&transcript);
    let r = server.socket().to_str().unwrap();
    // Three connections in a row (the second was refused before: "no recorded
    // request matches").
    for n in 1..=3 {
        let out = qmp(&["--socket", r, "call", "query-version"]);
        assert_eq!(printed(&out, &format!("call {n}")), version, "call {n}");
    }
    // Two at once.
    let spawn = || {
        Command::new(QMP)
            .args(["--socket", r, "call", "query-version"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    for (name, child) in [("a", a), ("b", b)] {
        let out = child.wait_with_output().unwrap();
        assert_eq!(printed(&out, name), version, "concurrent call {name}");
    }
}

#[tokio::test]
async fn two_clients_connected_at_once_each_get_the_recorded_replies() {
    let dir = tempfile::tempdir().unwrap();
    let transcript = dir.path().join("session.jsonl");
    let Some(version) = record(&transcript) else {
        return;
    };
    let server = serve(&transcript);
    let connect = || async {
        tokio::time::timeout(Duration::from_secs(20), qmp::connect_unix(server.socket()))
            .await
            .expect("connecting in time")
            .expect("connecting")
    };
    let a = connect().await;
    let b = connect().await;
    assert_eq!(
        a.greeting().qmp.version.qemu.major,
        10,
        "the recorded greeting"
    );
    for (name, c) in [("a", &a), ("b", &b)] {
        let v = c.execute_raw("query-version", None::<&()>).await.unwrap();
        assert_eq!(v, version, "client {name}");
    }
    // Each session had one query-version recorded, and used it.
    let err = a
        .execute_raw("query-version", None::<&()>)
        .await
        .unwrap_err();
    assert_eq!(
        err.qmp_error().map(|e| e.desc.as_str()),
        Some("qmp::server replay: no recorded request matches query-version {}")
    );
}
