//! The client's reliability suite: for each fault `qmp::server` can inject, the client's
//! documented behaviour holds: every caller gets an answer or a clear error, nobody
//! hangs (every wait is bounded by a generous timeout that only a hang would hit),
//! nothing reaches the wrong caller, and a new connection works afterwards.

mod server_support;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use qmp::server::transcript::{self, Direction, Recorder};

use qmp::server::{Faults, GreetingFault, Listening, Server};
use qmp::{Client, Config, ErrorKind, TimeoutStage};
use serde_json::{json, Value};
use server_support::HANG;

/// A server with `echo` (returns its arguments), `slow` (sleeps `ms`, then echoes) and
/// `query-version`, listening on a fresh Unix socket.
struct Harness {
    server: Server,
    path: PathBuf,
    _listening: Listening,
    _dir: tempfile::TempDir,
}

async fn harness(faults: Faults) -> Harness {
    harness_recorded(faults, None).await
}

/// The harness, recording the server's traffic to `record` (to check that a fault
/// really happened on the wire).
async fn harness_recorded(faults: Faults, record: Option<&std::path::Path>) -> Harness {
    let mut builder = Server::builder();
    if let Some(path) = record {
        builder = builder.traffic_hook(Arc::new(Recorder::create(path).unwrap()));
    }
    let server = builder
        .version(10, 0, 2)
        .capabilities(["oob"])
        .faults(faults)
        .handle_raw(
            "echo",
            true,
            |_ctx, args| async move { Ok(Value::Object(args)) },
        )
        .handle_raw("slow", false, |_ctx, args| async move {
            let ms = args.get("ms").and_then(Value::as_u64).unwrap_or(100);
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Ok(Value::Object(args))
        })
        .handle_raw("query-version", false, |_ctx, _args| async {
            Ok(json!({"qemu": {"major": 10, "minor": 0, "micro": 2}, "package": ""}))
        })
        .build();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("qmp.sock");
    let listening = server.listen_unix(&path).await.unwrap();
    Harness {
        server,
        path,
        _listening: listening,
        _dir: dir,
    }
}

impl Harness {
    async fn client(&self) -> Client {
        bounded(Config::new().connect_unix(&self.path))
            .await
            .expect("connect")
    }
}

/// Fails the test if `f` takes longer than the hang bound.
async fn bounded<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(HANG, f)
        .await
        .expect("hung: no answer within the hang bound")
}

async fn echo(c: &Client, k: u64) -> qmp::Result<Value> {
    c.execute_raw("echo", Some(&json!({ "k": k }))).await
}

/// A working connection after the fault is switched off.
async fn assert_recovers(h: &Harness) {
    h.server.set_faults(Faults::none());
    let c = h.client().await;
    assert_eq!(bounded(echo(&c, 99)).await.unwrap(), json!({"k": 99}));
    c.close().await;
}

#[tokio::test]
async fn reply_delay_then_call_timeout_then_late_reply_not_misdelivered() {
    let h = harness(Faults {
        reply_delay: Some(Duration::from_millis(300)),
        only_command: Some("echo".into()),
        ..Faults::none()
    })
    .await;
    let c = h.client().await;
    // A patient caller gets its answer.
    assert_eq!(bounded(echo(&c, 1)).await.unwrap(), json!({"k": 1}));
    // An impatient one times out, knowing the request was sent.
    let err = bounded(
        c.with_timeout(Some(Duration::from_millis(50)))
            .execute_raw("echo", Some(&json!({"k": 2}))),
    )
    .await
    .unwrap_err();
    assert!(err.is_timeout(), "{err}");
    assert_eq!(err.timeout_stage(), Some(TimeoutStage::Unanswered));
    // The late reply to k=2 must not reach the next caller.
    h.server.set_faults(Faults::none());
    assert_eq!(bounded(echo(&c, 3)).await.unwrap(), json!({"k": 3}));
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(bounded(echo(&c, 4)).await.unwrap(), json!({"k": 4}));
}

#[tokio::test]
async fn close_mid_reply_fails_every_pending_caller_and_reconnect_works() {
    let h = harness(Faults {
        close_mid_reply: true,
        only_command: Some("slow".into()),
        ..Faults::none()
    })
    .await;
    let c = h.client().await;
    let pending: Vec<_> = (0..5)
        .map(|k| {
            let c = c.clone();
            tokio::spawn(async move { echo(&c, k).await })
        })
        .collect();
    let cut = bounded(c.execute_raw("slow", Some(&json!({"ms": 10})))).await;
    let err = cut.unwrap_err();
    assert!(
        matches!(
            err.kind(),
            ErrorKind::Closed | ErrorKind::Protocol | ErrorKind::Io
        ),
        "{err}"
    );
    for p in pending {
        // Each echo either completed before the cut (with its own value) or failed.
        if let Ok(v) = bounded(p).await.unwrap() {
            assert!(v.get("k").is_some(), "{v}");
        }
    }
    let closed = bounded(c.closed()).await;
    assert!(!closed.is_timeout(), "{closed}");
    assert!(c.is_closed());
    let later = bounded(echo(&c, 7)).await.unwrap_err();
    assert!(
        later.is_closed() || later.kind() == ErrorKind::Protocol,
        "{later}"
    );
    assert_recovers(&h).await;
}

#[tokio::test]
async fn malformed_reply_is_a_protocol_error_for_the_caller() {
    let h = harness(Faults {
        malformed_reply: true,
        only_command: Some("echo".into()),
        ..Faults::none()
    })
    .await;
    let c = h.client().await;
    let err = bounded(echo(&c, 1)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Protocol, "{err}");
    assert_recovers(&h).await;
}

#[tokio::test]
async fn oversized_line_over_the_limit_is_an_error_under_it_is_fine() {
    let h = harness(Faults {
        oversized_line: Some(200_000),
        only_command: Some("echo".into()),
        ..Faults::none()
    })
    .await;
    // Under the default limit (16 MiB) the big event is just an event.
    let c = h.client().await;
    let mut events = c.subscribe_raw();
    assert_eq!(bounded(echo(&c, 1)).await.unwrap(), json!({"k": 1}));
    let ev = bounded(events.next()).await.unwrap().unwrap();
    assert_eq!(ev.name(), "OVERSIZED");
    c.close().await;
    // Over a 64 KiB limit it fails the connection, with a clear error.
    let small = bounded(
        Config::new()
            .max_message_size(64 * 1024)
            .connect_unix(&h.path),
    )
    .await
    .unwrap();
    let err = bounded(echo(&small, 2)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Protocol, "{err}");
    assert!(
        err.to_string().contains("65536") || err.to_string().contains("limit"),
        "{err}"
    );
    assert_recovers(&h).await;
}

#[tokio::test]
async fn unknown_id_reply_is_dropped() {
    let rec = tempfile::NamedTempFile::new().unwrap();
    let h = harness_recorded(
        Faults {
            unknown_id_reply: true,
            only_command: Some("echo".into()),
            ..Faults::none()
        },
        Some(rec.path()),
    )
    .await;
    let c = h.client().await;
    for k in 0..5 {
        assert_eq!(bounded(echo(&c, k)).await.unwrap(), json!({ "k": k }));
    }
    let unknown = transcript::read(rec.path())
        .unwrap()
        .into_iter()
        .filter(|e| e.dir == Direction::ToClient && e.msg.get("id") == Some(&json!(u64::MAX)))
        .count();
    assert_eq!(unknown, 5);
}

#[tokio::test]
async fn duplicate_reply_is_dropped() {
    let rec = tempfile::NamedTempFile::new().unwrap();
    let h = harness_recorded(
        Faults {
            duplicate_reply: true,
            only_command: Some("echo".into()),
            ..Faults::none()
        },
        Some(rec.path()),
    )
    .await;
    let c = h.client().await;
    for k in 0..5 {
        assert_eq!(bounded(echo(&c, k)).await.unwrap(), json!({ "k": k }));
    }
    // Concurrent callers too.
    let calls: Vec<_> = (10..20)
        .map(|k| {
            let c = c.clone();
            tokio::spawn(async move { (k, echo(&c, k).await) })
        })
        .collect();
    for call in calls {
        let (k, r) = bounded(call).await.unwrap();
        assert_eq!(r.unwrap(), json!({ "k": k }));
    }
    // The wire really carried every echo reply twice.
    let replies = sent_replies(rec.path());
    assert_eq!(replies.len(), 2 * 15, "{replies:?}");
}

/// The `return` values the server sent (in order), from its recorded traffic.
fn sent_replies(path: &std::path::Path) -> Vec<Value> {
    transcript::read(path)
        .unwrap()
        .into_iter()
        .filter(|e| e.dir == Direction::ToClient)
        .filter_map(|e| {
            e.msg
                .get("return")
                .filter(|r| r.get("k").is_some())
                .cloned()
        })
        .collect()
}

#[tokio::test]
async fn out_of_order_replies_reach_their_callers() {
    let rec = tempfile::NamedTempFile::new().unwrap();
    let h = harness_recorded(
        Faults {
            out_of_order: Some(4),
            only_command: Some("echo".into()),
            ..Faults::none()
        },
        Some(rec.path()),
    )
    .await;
    let c = h.client().await;
    let calls: Vec<_> = (0..16)
        .map(|k| {
            let c = c.clone();
            tokio::spawn(async move { (k, echo(&c, k).await) })
        })
        .collect();
    for call in calls {
        let (k, r) = bounded(call).await.unwrap();
        assert_eq!(r.unwrap(), json!({ "k": k }));
    }
    // The replies really went out in another order than the requests came in.
    let entries = transcript::read(rec.path()).unwrap();
    let order = |dir: Direction, key: &str| -> Vec<Value> {
        entries
            .iter()
            .filter(|e| e.dir == dir)
            .filter_map(|e| e.msg.get(key).and_then(|v| v.get("k")).cloned())
            .collect()
    };
    let asked = order(Direction::ToServer, "arguments");
    let answered = order(Direction::ToClient, "return");
    assert_eq!(asked.len(), 16);
    assert_eq!(answered.len(), 16);
    assert_ne!(asked, answered, "replies were not reordered");
}

#[tokio::test]
async fn event_flood_neither_blocks_calls_nor_grows_without_bound() {
    const FLOOD: u64 = 200_000;
    let h = harness(Faults {
        event_flood: Some(FLOOD),
        ..Faults::none()
    })
    .await;
    let c = bounded(Config::new().event_capacity(64).connect_unix(&h.path))
        .await
        .unwrap();
    // A subscriber that never reads must not block the reader...
    let _idle = c.subscribe_raw();
    // ...one that reads late is told what it missed...
    let mut late = c.subscribe_raw();
    // ...and one that keeps up accounts for every event (received or missed).
    let mut counter = c.subscribe_raw();
    let count = tokio::spawn(async move {
        let mut seen = 0u64;
        while seen < FLOOD {
            match counter.next().await {
                Some(Ok(_)) => seen += 1,
                Some(Err(e)) => seen += e.missed_events().expect("only lag errors"),
                None => break,
            }
        }
        seen
    });
    // Calls are answered during the flood.
    for k in 0..20 {
        assert_eq!(bounded(echo(&c, k)).await.unwrap(), json!({ "k": k }));
    }
    assert_eq!(bounded(count).await.unwrap(), FLOOD);
    let mut missed = 0;
    let mut got = 0;
    while let Ok(Some(item)) = tokio::time::timeout(Duration::from_millis(200), late.next()).await {
        match item {
            Ok(_) => got += 1,
            Err(e) => {
                assert!(e.is_lagged(), "{e}");
                missed += e.missed_events().unwrap();
            }
        }
    }
    assert!(
        missed > 0,
        "a late subscriber with capacity 64 missed nothing"
    );
    assert!(got <= 64 + 1, "more buffered than the capacity: {got}");
    assert_eq!(got + missed, FLOOD);
}

#[tokio::test]
async fn never_reading_server_times_out_callers_and_close_completes() {
    let h = harness(Faults {
        never_read_after: Some(0),
        ..Faults::none()
    })
    .await;
    let c = bounded(
        Config::new()
            .call_timeout(Some(Duration::from_millis(500)))
            .connect_unix(&h.path),
    )
    .await
    .unwrap();
    let big = "x".repeat(256 * 1024);
    let calls: Vec<_> = (0..16)
        .map(|_| {
            let c = c.clone();
            let big = big.clone();
            tokio::spawn(async move { c.execute_raw("echo", Some(&json!({ "pad": big }))).await })
        })
        .collect();
    let mut not_sent = 0;
    for call in calls {
        let err = bounded(call).await.unwrap().unwrap_err();
        assert!(err.is_timeout(), "{err}");
        if err.timeout_stage() == Some(TimeoutStage::NotSent) {
            not_sent += 1;
        }
    }
    assert!(
        not_sent > 0,
        "4 MiB of requests cannot all have been written to a peer that never reads"
    );
    bounded(c.close()).await;
    assert_recovers(&h).await;
}

#[tokio::test]
async fn greeting_faults_fail_connect_clearly() {
    for fault in [
        GreetingFault::Missing,
        GreetingFault::Close,
        GreetingFault::Garbage,
        GreetingFault::NotAGreeting,
        GreetingFault::Custom(r#"{"QMP": {"version": "ten", "capabilities": []}}"#.into()),
    ] {
        let h = harness(Faults {
            greeting: Some(fault.clone()),
            ..Faults::none()
        })
        .await;
        let r = bounded(
            Config::new()
                .connect_timeout(Some(Duration::from_millis(500)))
                .connect_unix(&h.path),
        )
        .await;
        let err = r.err().unwrap_or_else(|| panic!("{fault:?}: connected"));
        match fault {
            GreetingFault::Missing => assert!(err.is_timeout(), "{fault:?}: {err}"),
            _ => assert!(
                matches!(
                    err.kind(),
                    ErrorKind::Handshake | ErrorKind::Protocol | ErrorKind::Closed
                ),
                "{fault:?}: {err}"
            ),
        }
        assert_recovers(&h).await;
    }
}

#[tokio::test]
async fn server_closing_the_connection_fails_pending_callers() {
    let h = harness(Faults::none()).await;
    let c = h.client().await;
    h.server.wait_for_clients(1).await;
    let id = h.server.clients()[0];
    let slow = {
        let c = c.clone();
        tokio::spawn(async move { c.execute_raw("slow", Some(&json!({"ms": 5000}))).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    h.server.disconnect(id).await;
    let err = bounded(slow).await.unwrap().unwrap_err();
    assert!(err.is_closed() || err.kind() == ErrorKind::Io, "{err}");
    assert_recovers(&h).await;
}

#[tokio::test]
async fn many_concurrent_callers_each_get_their_own_reply() {
    let h = harness(Faults::none()).await;
    let c = h.client().await;
    let calls: Vec<_> = (0..500)
        .map(|k| {
            let c = c.clone();
            tokio::spawn(async move { (k, echo(&c, k).await) })
        })
        .collect();
    for call in calls {
        let (k, r) = bounded(call).await.unwrap();
        assert_eq!(r.unwrap(), json!({ "k": k }));
    }
}

#[tokio::test]
async fn cancelled_caller_reply_is_not_misdelivered() {
    let h = harness(Faults {
        reply_delay: Some(Duration::from_millis(300)),
        only_command: Some("echo".into()),
        ..Faults::none()
    })
    .await;
    let c = h.client().await;
    // Drop a call future after its request went out.
    let dropped = tokio::time::timeout(Duration::from_millis(50), echo(&c, 1)).await;
    assert!(dropped.is_err(), "the delayed call cannot have finished");
    // And one cancelled by aborting its task.
    let task = {
        let c = c.clone();
        tokio::spawn(async move { echo(&c, 2).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    task.abort();
    h.server.set_faults(Faults::none());
    for k in 3..10 {
        assert_eq!(bounded(echo(&c, k)).await.unwrap(), json!({ "k": k }));
        tokio::time::sleep(Duration::from_millis(60)).await;
    }
}

#[derive(serde::Serialize)]
struct Versioned {}

#[derive(Debug, serde::Deserialize, PartialEq)]
struct VersionedReply {
    a: u32,
}

impl qmp::Command for Versioned {
    const NAME: &'static str = "versioned";
    type Reply = VersionedReply;
}

#[tokio::test]
async fn newer_server_extra_capabilities_and_members_are_tolerated() {
    let server = Server::builder()
        .greeting_line(
            r#"{"QMP": {"version": {"qemu": {"micro": 0, "minor": 0, "major": 99}, "package": "", "extra": 1}, "capabilities": ["oob", "future-capability"], "new-member": true}}"#,
        )
        .handle_raw("versioned", false, |_ctx, _args| async {
            Ok(json!({"a": 1, "added-in-99": {"x": [1]}}))
        })
        .build();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.sock");
    let _l = server.listen_unix(&path).await.unwrap();
    let c = bounded(qmp::connect_unix(&path)).await.unwrap();
    assert!(c.oob_enabled());
    assert_eq!(c.greeting().qmp.version.qemu.major, 99);
    assert_eq!(
        bounded(c.execute(&Versioned {})).await.unwrap(),
        VersionedReply { a: 1 }
    );
}

/// The blocking wrapper under a fault: an error, not a hang, then a new connection.
#[test]
fn blocking_client_gets_an_error_when_the_server_cuts_a_reply() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let h = rt.block_on(harness(Faults {
        close_mid_reply: true,
        only_command: Some("echo".into()),
        ..Faults::none()
    }));
    let path = h.path.clone();
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let c = qmp::blocking::Client::connect_unix(&Config::new(), &path).unwrap();
        let r = c.execute_raw("echo", Some(&json!({"k": 1})));
        let _ = done_tx.send(r.map_err(|e| e.kind()));
    });
    let r = done_rx.recv_timeout(HANG).expect("blocking call hung");
    assert!(
        matches!(
            r,
            Err(ErrorKind::Closed | ErrorKind::Protocol | ErrorKind::Io)
        ),
        "{r:?}"
    );
    h.server.set_faults(Faults::none());
    let path = h.path.clone();
    let again = std::thread::spawn(move || {
        let c = qmp::blocking::Client::connect_unix(&Config::new(), &path).unwrap();
        c.execute_raw("echo", Some(&json!({"k": 2}))).unwrap()
    });
    assert_eq!(again.join().unwrap(), json!({"k": 2}));
    drop(h);
    drop(rt);
}

/// Every non-fatal fault at once, with many callers in flight.
#[tokio::test]
async fn all_non_fatal_faults_at_once_route_every_reply() {
    let h = harness(Faults {
        reply_delay: Some(Duration::from_millis(1)),
        oversized_line: Some(10_000),
        unknown_id_reply: true,
        duplicate_reply: true,
        out_of_order: Some(7),
        event_flood: Some(50_000),
        only_command: Some("echo".into()),
        ..Faults::none()
    })
    .await;
    let c = bounded(Config::new().event_capacity(16).connect_unix(&h.path))
        .await
        .unwrap();
    let _lagging = c.subscribe_raw();
    let calls: Vec<_> = (0..200)
        .map(|k| {
            let c = c.clone();
            tokio::spawn(async move { (k, echo(&c, k).await) })
        })
        .collect();
    for call in calls {
        let (k, r) = bounded(call).await.unwrap();
        assert_eq!(r.unwrap(), json!({ "k": k }));
    }
}
