//! A replayed transcript and its sessions (`qmp::server::replay`): by default every
//! connection is served the transcript from its start (greeting, negotiation, the
//! events recorded with it, each recorded exchange once per connection), two and
//! three connections in a row and two at once; `ReplayMode::Once` keeps the old
//! behaviour, where what one connection used is gone for the next. The transcript is
//! recorded here with a `Recorder` on a scripted server (server side, as `qmp serve
//! --record` records); `tests/replay_sessions.rs` of the bindings crate does the same
//! through the `qmp` program against real QEMU.
#![cfg(feature = "server")]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use qmp::server::replay::{Replay, ReplayMode};
use qmp::server::transcript::Recorder;
use qmp::server::{Listening, Server};
use qmp::Client;
use serde_json::{json, Value};

/// A test that waits this long for one message has hung.
const HANG: Duration = Duration::from_secs(20);

async fn bounded<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(HANG, f).await.expect("hung")
}

/// What the recorded server answered to `query-version`.
fn version_reply() -> Value {
    json!({"qemu": {"major": 9, "minor": 2, "micro": 1}, "package": "recorded"})
}

/// Records one session with a scripted server (QEMU 9.2.1 in its greeting):
/// `query-version`, then `stop`, which sends `STOP` before its reply.
async fn record(dir: &Path) -> PathBuf {
    let path = dir.join("session.jsonl");
    let server = Server::builder()
        .version(9, 2, 1)
        .traffic_hook(Arc::new(Recorder::create(&path).unwrap()))
        .handle_raw("query-version", false, |_ctx, _args| async {
            Ok(version_reply())
        })
        .handle_raw("stop", false, |ctx, _args| async move {
            ctx.server.emit_raw_to(ctx.client, "STOP", None).await;
            Ok(json!({}))
        })
        .build();
    let sock = dir.join("recorded.sock");
    let listening = server.listen_unix(&sock).await.unwrap();
    let c = bounded(qmp::connect_unix(&sock)).await.unwrap();
    bounded(c.execute_raw("query-version", None::<&()>))
        .await
        .unwrap();
    bounded(c.execute_raw("stop", None::<&()>)).await.unwrap();
    c.close().await;
    drop(listening);
    path
}

async fn serve(replay: Replay, dir: &Path, name: &str) -> (Server, Listening, PathBuf) {
    let server = Server::builder().replay(replay).build();
    let sock = dir.join(name);
    let listening = server.listen_unix(&sock).await.unwrap();
    (server, listening, sock)
}

const NO_MATCH: &str = "qmp::server replay: no recorded request matches query-version {}";

/// Asserts `err` is the replay's refusal of `query-version`, in full.
#[track_caller]
fn assert_no_match(err: &qmp::Error) {
    let e = err.qmp_error().unwrap_or_else(|| panic!("{err}"));
    assert_eq!(
        (e.class.as_str(), e.desc.as_str()),
        ("GenericError", NO_MATCH)
    );
}

/// One connection's whole transcript: the recorded greeting, `query-version`, `stop`
/// with its event; then `query-version` again, which the session has used up.
async fn replay_once_on(c: &Client) {
    assert_eq!(c.greeting().qmp.version.qemu.major, 9);
    assert_eq!(c.greeting().qmp.version.qemu.minor, 2);
    let mut events = c.subscribe_raw();
    assert_eq!(
        bounded(c.execute_raw("query-version", None::<&()>))
            .await
            .unwrap(),
        version_reply()
    );
    assert_eq!(
        bounded(c.execute_raw("stop", None::<&()>)).await.unwrap(),
        json!({})
    );
    assert_eq!(
        bounded(events.next()).await.unwrap().unwrap().name(),
        "STOP"
    );
    let err = bounded(c.execute_raw("query-version", None::<&()>))
        .await
        .unwrap_err();
    assert_no_match(&err);
}

#[tokio::test]
async fn two_and_three_connections_in_a_row_each_replay_the_transcript() {
    let dir = tempfile::tempdir().unwrap();
    let path = record(dir.path()).await;
    let replay = Replay::from_file(&path).unwrap();
    assert_eq!(replay.replay_mode(), ReplayMode::EverySession);
    assert_eq!(replay.remaining(), 2);
    let (_server, _l, sock) = serve(replay, dir.path(), "replay.sock").await;
    for n in 1..=3 {
        let c = bounded(qmp::connect_unix(&sock))
            .await
            .unwrap_or_else(|e| panic!("connection {n}: {e}"));
        replay_once_on(&c).await;
        c.close().await;
    }
}

#[tokio::test]
async fn two_connections_at_once_each_replay_the_transcript() {
    let dir = tempfile::tempdir().unwrap();
    let path = record(dir.path()).await;
    let (server, _l, sock) = serve(Replay::from_file(&path).unwrap(), dir.path(), "r.sock").await;
    let a = bounded(qmp::connect_unix(&sock)).await.unwrap();
    let b = bounded(qmp::connect_unix(&sock)).await.unwrap();
    bounded(server.wait_for_clients(2)).await;
    // Interleaved: each connection's cursor moves on its own.
    let mut a_events = a.subscribe_raw();
    let mut b_events = b.subscribe_raw();
    for c in [&a, &b] {
        assert_eq!(
            bounded(c.execute_raw("query-version", None::<&()>))
                .await
                .unwrap(),
            version_reply()
        );
    }
    for c in [&b, &a] {
        bounded(c.execute_raw("stop", None::<&()>)).await.unwrap();
    }
    assert_eq!(
        bounded(a_events.next()).await.unwrap().unwrap().name(),
        "STOP"
    );
    assert_eq!(
        bounded(b_events.next()).await.unwrap().unwrap().name(),
        "STOP"
    );
    // Concurrently too, on fresh connections.
    let (c, d) = tokio::join!(qmp::connect_unix(&sock), qmp::connect_unix(&sock));
    let (c, d) = (c.unwrap(), d.unwrap());
    tokio::join!(replay_once_on(&c), replay_once_on(&d));
    // Each used its own: a second `stop` on `a` is refused.
    let err = bounded(a.execute_raw("stop", None::<&()>))
        .await
        .unwrap_err();
    assert_eq!(
        err.qmp_error().unwrap().desc,
        "qmp::server replay: no recorded request matches stop {}"
    );
}

#[tokio::test]
async fn once_mode_serves_each_exchange_once_in_all() {
    let dir = tempfile::tempdir().unwrap();
    let path = record(dir.path()).await;
    let replay = Replay::from_file(&path).unwrap().mode(ReplayMode::Once);
    assert_eq!(replay.replay_mode(), ReplayMode::Once);
    let (_server, _l, sock) = serve(replay, dir.path(), "once.sock").await;
    let first = bounded(qmp::connect_unix(&sock)).await.unwrap();
    assert_eq!(
        bounded(first.execute_raw("query-version", None::<&()>))
            .await
            .unwrap(),
        version_reply()
    );
    first.close().await;
    // The next connection still gets the greeting and what is left (`stop`), but
    // not what the first used.
    let second = bounded(qmp::connect_unix(&sock)).await.unwrap();
    assert_eq!(second.greeting().qmp.version.qemu.major, 9);
    let err = bounded(second.execute_raw("query-version", None::<&()>))
        .await
        .unwrap_err();
    assert_no_match(&err);
    assert_eq!(
        bounded(second.execute_raw("stop", None::<&()>))
            .await
            .unwrap(),
        json!({})
    );
}

/// The events recorded with `qmp_capabilities` reach every session, before its first
/// reply.
#[tokio::test]
async fn events_recorded_with_the_negotiation_reach_every_session() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hand.jsonl");
    let lines = [
        json!({"t": 0.0, "dir": "s2c", "msg": {"QMP": {"version": {"qemu": {"major": 9, "minor": 2, "micro": 1}, "package": ""}, "capabilities": []}}}),
        json!({"t": 0.1, "dir": "c2s", "msg": {"execute": "qmp_capabilities", "id": 0}}),
        json!({"t": 0.1, "dir": "s2c", "msg": {"return": {}, "id": 0}}),
        json!({"t": 0.1, "dir": "s2c", "msg": {"event": "RESUME", "timestamp": {"seconds": 1, "microseconds": 0}}}),
        json!({"t": 0.2, "dir": "c2s", "msg": {"execute": "query-version", "id": 1}}),
        json!({"t": 0.2, "dir": "s2c", "msg": {"return": version_reply(), "id": 1}}),
    ];
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(&path, text).unwrap();
    let (_server, _l, sock) = serve(Replay::from_file(&path).unwrap(), dir.path(), "h.sock").await;
    for n in 1..=2 {
        let c = bounded(qmp::connect_unix(&sock)).await.unwrap();
        let mut events = c.subscribe_raw();
        assert_eq!(
            bounded(c.execute_raw("query-version", None::<&()>))
                .await
                .unwrap(),
            version_reply(),
            "connection {n}"
        );
        let ev = bounded(events.next()).await.unwrap().unwrap();
        assert_eq!(ev.name(), "RESUME", "connection {n}");
        c.close().await;
    }
}
