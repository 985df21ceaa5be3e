//! `qmp::reconnect::ReconnectingClient`: against `qmp::server` killed and restarted on
//! the same socket (subscriptions see a gap notice then the new server's events, a
//! call in flight at the drop fails and is never sent again, calls made while
//! reconnecting wait or fail at once, the backoff gives up after its limit, closing
//! ends everything), and live against QEMU 10.0 killed and restarted on the same
//! socket path.
//!
//! Every wait is bounded by `HANG`, a generous timeout that only a hang would hit;
//! nothing asserts on how long something took.
#![cfg(feature = "server")]

#[path = "support/skip.rs"]
mod skip;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use qmp::reconnect::{ReconnectState, ReconnectStateWatch, ReconnectingClient};
use qmp::server::{Listening, Server};
use qmp::{Config, ErrorKind, Event, EventSet, RawEvent};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::Notify;

/// A generous bound: a test that waits this long for one thing has hung.
const HANG: Duration = Duration::from_secs(30);

async fn bounded<T>(what: &str, f: impl Future<Output = T>) -> T {
    match tokio::time::timeout(HANG, f).await {
        Ok(v) => v,
        Err(_) => panic!("hung: {what} (waited {HANG:?})"),
    }
}

/// What the test servers count, shared by the server before and after a restart.
#[derive(Default)]
struct Counts {
    /// `hang` requests received (by any server).
    hang: AtomicUsize,
    /// Signalled when a `hang` request arrives.
    hang_arrived: Notify,
}

/// A stand-in for QEMU on `path`: `query-version`, and `hang`, which counts itself and
/// never answers (the call in flight when the server dies).
async fn serve(path: &Path, counts: &Arc<Counts>) -> (Server, Listening) {
    let c = counts.clone();
    let server = Server::builder()
        .version(10, 0, 0)
        .capabilities(["oob"])
        .handle_raw("query-version", false, |_ctx, _args| async {
            Ok(json!({"qemu": {"major": 10, "minor": 0, "micro": 0}, "package": ""}))
        })
        .handle_raw("hang", false, move |_ctx, _args| {
            let c = c.clone();
            async move {
                c.hang.fetch_add(1, Ordering::SeqCst);
                c.hang_arrived.notify_one();
                std::future::pending::<()>().await;
                Ok(Value::Null)
            }
        })
        .build();
    let listening = server.listen_unix(path).await.expect("listening");
    (server, listening)
}

/// Kills a test server as QEMU dies: every session closed, the socket file removed.
fn kill(server: (Server, Listening)) {
    server.0.shutdown();
    drop(server.1);
}

fn builder(path: &Path) -> qmp::reconnect::Builder {
    let mut b = ReconnectingClient::unix(&Config::new(), path);
    b.initial_delay(Duration::from_millis(10))
        .max_delay(Duration::from_millis(100));
    b
}

async fn wait_state(
    watch: &mut ReconnectStateWatch,
    what: &str,
    until: impl FnMut(&ReconnectState) -> bool,
) -> ReconnectState {
    bounded(what, watch.wait_until(until))
        .await
        .unwrap_or_else(|| panic!("the state became final before {what}"))
}

fn reconnecting(s: &ReconnectState) -> bool {
    matches!(s, ReconnectState::Reconnecting { .. })
}

fn connected(n: u64) -> impl FnMut(&ReconnectState) -> bool {
    move |s| *s == ReconnectState::Connected { connection: n }
}

#[derive(Debug, Deserialize, PartialEq)]
struct Stop {}
impl Event for Stop {
    const NAME: &'static str = "STOP";
}

/// A hand-written event set (the bindings generate one over every event).
#[derive(Debug, PartialEq)]
enum Events {
    Stop,
    Resume,
    Other(String),
}
impl EventSet for Events {
    fn decode(name: &str, _data: Option<&str>) -> Result<Self, serde_json::Error> {
        Ok(match name {
            "STOP" => Events::Stop,
            "RESUME" => Events::Resume,
            other => Events::Other(other.to_owned()),
        })
    }
}

/// The next item of a subscription, which must be an event.
async fn event<T>(sub: &mut qmp::reconnect::Subscription<T>, what: &str) -> T
where
    T: Send + 'static,
{
    match bounded(what, sub.next()).await {
        Some(Ok(ev)) => ev,
        Some(Err(e)) => panic!("{what}: expected an event, got the error {e}"),
        None => panic!("{what}: the subscription ended"),
    }
}

/// The next item of a subscription, which must be the gap notice.
async fn gap<T>(sub: &mut qmp::reconnect::Subscription<T>, what: &str) -> qmp::Error
where
    T: Send + std::fmt::Debug + 'static,
{
    match bounded(what, sub.next()).await {
        Some(Err(e)) if e.is_gap() => {
            assert!(e.is_lagged(), "a gap is reported as lagging is: {e:?}");
            assert_eq!(e.kind(), ErrorKind::Lagged);
            assert_eq!(e.missed_events(), None, "a gap has no count");
            e
        }
        other => panic!("{what}: expected the gap notice, got {other:?}"),
    }
}

#[tokio::test]
async fn subscriptions_see_a_gap_notice_then_the_restarted_servers_events() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("qmp.sock");
    let counts = Arc::new(Counts::default());
    let first = serve(&path, &counts).await;
    let qmp = bounded("connecting", builder(&path).connect())
        .await
        .expect("connecting to the first server");
    let mut watch = qmp.watch_connection_state();
    assert_eq!(
        qmp.connection_state(),
        ReconnectState::Connected { connection: 1 }
    );

    let mut raw = qmp.subscribe_raw();
    let mut typed = qmp.subscribe::<Stop>();
    let mut set = qmp.subscribe_all::<Events>();

    assert_eq!(first.0.emit_raw("STOP", None).await, 1);
    assert_eq!(
        event(&mut raw, "STOP on the first server").await.name(),
        "STOP"
    );
    assert_eq!(event(&mut typed, "typed STOP").await, Stop {});
    assert_eq!(event(&mut set, "set STOP").await, Events::Stop);

    kill(first);
    let lost = wait_state(&mut watch, "reconnecting", reconnecting).await;
    assert!(matches!(
        lost,
        ReconnectState::Reconnecting { attempt: 1, .. }
    ));
    assert!(qmp.current().is_none(), "no client while reconnecting");
    assert!(
        qmp.last_error().is_some(),
        "the error that ended the connection"
    );

    // Made while reconnecting: it was made after the first connection's events, so the
    // next connection is a gap for it too.
    let mut during = qmp.subscribe_raw();

    let second = serve(&path, &counts).await;
    wait_state(&mut watch, "connected again", connected(2)).await;
    assert!(qmp.current().is_some());
    // A subscription made on the new connection yields no gap notice.
    let mut fresh = qmp.subscribe_raw();

    assert_eq!(second.0.emit_raw("RESUME", None).await, 1);
    assert_eq!(second.0.emit_raw("STOP", None).await, 1);

    let notice = gap(&mut raw, "raw: the gap notice").await;
    let text = notice.to_string();
    assert!(
        text.contains(&path.display().to_string()) && text.contains("re-established"),
        "the notice says what happened and where: {text}"
    );
    assert_eq!(event(&mut raw, "raw RESUME").await.name(), "RESUME");
    assert_eq!(event(&mut raw, "raw STOP").await.name(), "STOP");

    gap(&mut typed, "typed: the gap notice").await;
    assert_eq!(
        event(&mut typed, "typed STOP (RESUME filtered)").await,
        Stop {}
    );

    gap(&mut set, "set: the gap notice").await;
    assert_eq!(event(&mut set, "set RESUME").await, Events::Resume);
    assert_eq!(event(&mut set, "set STOP").await, Events::Stop);

    assert_eq!(event(&mut fresh, "fresh RESUME").await.name(), "RESUME");

    gap(&mut during, "made while reconnecting: the gap notice").await;
    assert_eq!(event(&mut during, "during RESUME").await.name(), "RESUME");

    // Calls go to the new server.
    let v = bounded(
        "query-version",
        qmp.execute_raw("query-version", None::<&()>),
    )
    .await
    .expect("query-version on the second server");
    assert_eq!(v["qemu"]["major"], 10);

    bounded("closing", qmp.close()).await;
    assert_eq!(qmp.connection_state(), ReconnectState::Closed);
    assert!(bounded("end of raw", raw.next()).await.is_none());
    assert!(bounded("end of typed", typed.next()).await.is_none());
    assert!(bounded("end of set", set.next()).await.is_none());
    drop(second);
}

#[test]
fn handles_and_subscriptions_can_move_between_tasks() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<ReconnectingClient>();
    send::<qmp::reconnect::Subscription<RawEvent>>();
    send::<qmp::reconnect::Subscription<Stop>>();
    send::<ReconnectStateWatch>();
}

#[tokio::test]
async fn events_received_before_the_drop_come_before_the_gap_in_order() {
    const N: u64 = 50;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("qmp.sock");
    let counts = Arc::new(Counts::default());
    let first = serve(&path, &counts).await;
    let qmp = bounded("connecting", builder(&path).connect())
        .await
        .expect("connecting");
    let mut watch = qmp.watch_connection_state();
    let mut events = qmp.subscribe_raw();
    // Read by this one only, to know when the client has received them all: the
    // subscriptions get each event at the same time.
    let mut probe = qmp.subscribe_raw();
    for n in 0..N {
        first.0.emit_raw("SEQ", Some(json!({"n": n}))).await;
    }
    for n in 0..N {
        let ev = event(&mut probe, "the probe's events").await;
        assert_eq!(ev.to_value()["data"]["n"], n);
    }
    kill(first);
    wait_state(&mut watch, "reconnecting", reconnecting).await;
    let second = serve(&path, &counts).await;
    wait_state(&mut watch, "connected again", connected(2)).await;
    for n in N..2 * N {
        second.0.emit_raw("SEQ", Some(json!({"n": n}))).await;
    }
    for n in 0..N {
        let ev = event(&mut events, "the first connection's events").await;
        assert_eq!(ev.to_value()["data"]["n"], n, "in order, none lost");
    }
    gap(&mut events, "the gap notice after them").await;
    for n in N..2 * N {
        let ev = event(&mut events, "the second connection's events").await;
        assert_eq!(ev.to_value()["data"]["n"], n, "in order, none lost");
    }
    bounded("closing", qmp.close()).await;
    assert!(bounded("end of events", events.next()).await.is_none());
}

#[tokio::test]
async fn closing_fails_the_call_in_flight_and_the_waiting_ones() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("qmp.sock");
    let counts = Arc::new(Counts::default());
    let server = serve(&path, &counts).await;
    let qmp = bounded("connecting", builder(&path).connect())
        .await
        .expect("connecting");
    let arrived = counts.hang_arrived.notified();
    let in_flight = tokio::spawn({
        let qmp = qmp.clone();
        async move { qmp.execute_raw("hang", None::<&()>).await }
    });
    bounded("the server receiving `hang`", arrived).await;
    bounded("closing", qmp.close()).await;
    assert_eq!(qmp.connection_state(), ReconnectState::Closed);
    assert!(qmp.current().is_none());
    let err = bounded("the call in flight", in_flight)
        .await
        .unwrap()
        .expect_err("closed during the call");
    assert!(err.is_closed(), "{err:?}");
    assert!(
        err.to_string().contains("closed during the call"),
        "the error says the client was closed: {err}"
    );
    let err = bounded(
        "a call after closing",
        qmp.execute_raw("query-version", None::<&()>),
    )
    .await
    .expect_err("closed");
    assert!(
        err.is_closed() && err.to_string().contains("was not sent"),
        "{err}"
    );
    let why = bounded("closed", qmp.closed()).await;
    assert!(why.to_string().contains("was closed"), "{why}");
    drop(server);

    // A call waiting for a connection fails when the client is closed.
    let qmp = builder(&path).start().await;
    let mut watch = qmp.watch_connection_state();
    let waiting = tokio::spawn({
        let qmp = qmp.clone();
        async move { qmp.execute_raw("query-version", None::<&()>).await }
    });
    wait_state(
        &mut watch,
        "a failed attempt",
        |s| matches!(s, ReconnectState::Connecting { attempt } if *attempt >= 2),
    )
    .await;
    bounded("closing", qmp.close()).await;
    let err = bounded("the waiting call", waiting)
        .await
        .unwrap()
        .expect_err("closed while waiting");
    assert!(
        err.is_closed() && err.to_string().contains("was not sent"),
        "{err}"
    );
}

#[tokio::test]
async fn connections_that_came_and_went_unread_give_one_gap_notice() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("qmp.sock");
    let counts = Arc::new(Counts::default());
    let first = serve(&path, &counts).await;
    let qmp = bounded("connecting", builder(&path).connect())
        .await
        .expect("connecting");
    let mut watch = qmp.watch_connection_state();
    let mut events = qmp.subscribe_raw();
    assert_eq!(first.0.emit_raw("STOP", None).await, 1);
    // Read before the server dies: a server killed right after queuing an event may
    // never write it.
    assert_eq!(event(&mut events, "STOP").await.name(), "STOP");

    kill(first);
    wait_state(&mut watch, "reconnecting", reconnecting).await;
    let second = serve(&path, &counts).await;
    wait_state(&mut watch, "second connection", connected(2)).await;
    kill(second);
    wait_state(&mut watch, "reconnecting again", reconnecting).await;
    let third = serve(&path, &counts).await;
    wait_state(&mut watch, "third connection", connected(3)).await;
    assert_eq!(third.0.emit_raw("RESUME", None).await, 1);

    let notice = gap(&mut events, "one gap notice").await;
    assert!(
        notice.to_string().contains("connection #3"),
        "the notice names the connection it moved to: {notice}"
    );
    assert_eq!(
        event(
            &mut events,
            "the third server's RESUME, with no second notice"
        )
        .await
        .name(),
        "RESUME"
    );
    bounded("closing", qmp.close()).await;
    assert!(bounded("end of events", events.next()).await.is_none());
}

#[tokio::test]
async fn a_call_in_flight_at_the_drop_fails_and_is_not_sent_again() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("qmp.sock");
    let counts = Arc::new(Counts::default());
    let first = serve(&path, &counts).await;
    let qmp = bounded("connecting", builder(&path).connect())
        .await
        .expect("connecting");
    let mut watch = qmp.watch_connection_state();

    let arrived = counts.hang_arrived.notified();
    let call = tokio::spawn({
        let qmp = qmp.clone();
        async move { qmp.execute_raw("hang", None::<&()>).await }
    });
    bounded("the server receiving `hang`", arrived).await;
    assert_eq!(counts.hang.load(Ordering::SeqCst), 1);

    kill(first);
    let err = bounded("the call in flight", call)
        .await
        .unwrap()
        .expect_err("the call in flight must fail");
    assert!(
        err.is_closed() && err.may_have_run() && !err.is_not_sent(),
        "{err:?}"
    );
    assert_eq!(err.command(), Some("hang"));
    let text = err.to_string();
    assert!(
        text.starts_with("`hang` was sent, but QEMU closed the connection before answering")
            && text.contains("NOT retried"),
        "the error says the call was lost and not retried: {text}"
    );

    wait_state(&mut watch, "reconnecting", reconnecting).await;
    let second = serve(&path, &counts).await;
    wait_state(&mut watch, "connected again", connected(2)).await;
    // The new connection works, and the lost call never reached the new server.
    bounded(
        "query-version",
        qmp.execute_raw("query-version", None::<&()>),
    )
    .await
    .expect("query-version after reconnecting");
    assert_eq!(
        counts.hang.load(Ordering::SeqCst),
        1,
        "`hang` was sent again after reconnecting"
    );
    bounded("closing", qmp.close()).await;
    drop(second);
}

#[tokio::test]
async fn a_call_made_while_reconnecting_waits_for_the_connection() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("qmp.sock");
    let counts = Arc::new(Counts::default());
    let first = serve(&path, &counts).await;
    let qmp = bounded("connecting", builder(&path).connect())
        .await
        .expect("connecting");
    let mut watch = qmp.watch_connection_state();
    kill(first);
    wait_state(&mut watch, "reconnecting", reconnecting).await;

    // Made while nothing listens: it waits, then runs on the next connection.
    let call = tokio::spawn({
        let qmp = qmp.clone();
        async move { qmp.execute_raw("query-version", None::<&()>).await }
    });
    // With a handle timeout that ends the wait, it fails unsent, saying so.
    let short = qmp.with_timeout(Some(Duration::from_millis(50)));
    let err = bounded(
        "a call with a short timeout",
        short.execute_raw("hang", None::<&()>),
    )
    .await
    .expect_err("nothing listens");
    assert!(err.is_timeout(), "{err:?}");
    assert!(err.to_string().contains("not sent"), "{err}");

    let second = serve(&path, &counts).await;
    let v = bounded("the waiting call", call)
        .await
        .unwrap()
        .expect("the call made while reconnecting runs once connected");
    assert_eq!(v["qemu"]["major"], 10);
    assert_eq!(
        counts.hang.load(Ordering::SeqCst),
        0,
        "the timed-out call was sent"
    );
    bounded("closing", qmp.close()).await;
    drop(second);
}

#[tokio::test]
async fn without_waiting_a_call_made_while_reconnecting_fails_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("qmp.sock");
    let counts = Arc::new(Counts::default());
    let first = serve(&path, &counts).await;
    let qmp = bounded(
        "connecting",
        builder(&path).wait_while_reconnecting(false).connect(),
    )
    .await
    .expect("connecting");
    let mut watch = qmp.watch_connection_state();
    kill(first);
    wait_state(&mut watch, "reconnecting", reconnecting).await;
    let err = bounded(
        "a call while reconnecting",
        qmp.execute_raw("hang", None::<&()>),
    )
    .await
    .expect_err("not connected");
    assert!(err.is_closed(), "{err:?}");
    assert!(
        err.to_string().contains("was not sent"),
        "the error says nothing was sent: {err}"
    );
    let second = serve(&path, &counts).await;
    wait_state(&mut watch, "connected again", connected(2)).await;
    bounded(
        "query-version",
        qmp.execute_raw("query-version", None::<&()>),
    )
    .await
    .expect("query-version once connected");
    assert_eq!(counts.hang.load(Ordering::SeqCst), 0);
    bounded("closing", qmp.close()).await;
    drop(second);
}

#[tokio::test]
async fn the_backoff_gives_up_after_its_limit_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("qmp.sock");
    let counts = Arc::new(Counts::default());
    let first = serve(&path, &counts).await;
    let qmp = bounded(
        "connecting",
        builder(&path).give_up_after_attempts(Some(3)).connect(),
    )
    .await
    .expect("connecting");
    let mut watch = qmp.watch_connection_state();
    let mut events = qmp.subscribe_raw();
    assert_eq!(first.0.emit_raw("STOP", None).await, 1);
    assert_eq!(
        event(&mut events, "STOP before the drop").await.name(),
        "STOP"
    );
    kill(first);

    let mut attempts = Vec::new();
    let end = loop {
        let t = bounded("the next state", watch.next())
            .await
            .expect("the watch ended before giving up");
        assert_eq!(t.skipped, 0);
        match t.state {
            ReconnectState::Reconnecting { attempt, .. } => attempts.push(attempt),
            s @ ReconnectState::GivenUp { .. } => break s,
            s => panic!("unexpected state {s:?}"),
        }
    };
    assert_eq!(attempts, [1, 2, 3], "one state per attempt, in order");
    assert!(matches!(end, ReconnectState::GivenUp { attempts: 3, .. }));
    assert!(bounded("the watch's end", watch.next()).await.is_none());

    let why = bounded("closed", qmp.closed()).await;
    let text = why.to_string();
    assert!(why.is_closed(), "{why:?}");
    assert!(
        text.contains("gave up")
            && text.contains("3 failed attempt")
            && text.contains(&path.display().to_string()),
        "the error names the limit, the attempts and the address: {text}"
    );
    // Calls fail with it, unsent.
    let err = bounded(
        "a call after giving up",
        qmp.execute_raw("query-version", None::<&()>),
    )
    .await
    .expect_err("given up");
    assert!(
        err.is_closed() && err.to_string().contains("gave up"),
        "{err}"
    );
    // The subscription ends, without a gap notice.
    assert!(bounded("end of events", events.next()).await.is_none());
    // Subscribing now gives an ended subscription.
    assert!(bounded("a late subscription", qmp.subscribe_raw().next())
        .await
        .is_none());
}

#[tokio::test]
async fn the_backoff_gives_up_after_its_time_limit() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing ever listens there.
    let path = dir.path().join("qmp.sock");
    let qmp = builder(&path)
        .give_up_after(Some(Duration::from_millis(300)))
        .start()
        .await;
    let why = bounded("giving up", qmp.closed()).await;
    assert!(
        matches!(qmp.connection_state(), ReconnectState::GivenUp { attempts, .. } if attempts >= 1),
        "{:?}",
        qmp.connection_state()
    );
    let text = why.to_string();
    assert!(
        text.contains("gave up") && text.contains("No such file"),
        "the error names the limit and the last attempt's error: {text}"
    );
}

#[tokio::test]
async fn start_waits_for_a_server_that_is_not_there_yet() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("qmp.sock");
    let counts = Arc::new(Counts::default());
    let qmp = builder(&path).start().await;
    let mut watch = qmp.watch_connection_state();
    let mut events = qmp.subscribe_raw();
    let call = tokio::spawn({
        let qmp = qmp.clone();
        async move { qmp.execute_raw("query-version", None::<&()>).await }
    });
    wait_state(
        &mut watch,
        "a failed first attempt",
        |s| matches!(s, ReconnectState::Connecting { attempt } if *attempt >= 2),
    )
    .await;
    let server = serve(&path, &counts).await;
    wait_state(&mut watch, "connected", connected(1)).await;
    bounded("the waiting call", call)
        .await
        .unwrap()
        .expect("the call made before the first connection");
    server.0.emit_raw("STOP", None).await;
    // The first connection is no gap.
    assert_eq!(event(&mut events, "STOP").await.name(), "STOP");
    bounded("closing", qmp.close()).await;
}

#[tokio::test]
async fn a_first_connection_lost_before_it_was_read_is_a_gap_too() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("qmp.sock");
    let counts = Arc::new(Counts::default());
    let qmp = builder(&path).start().await;
    let mut watch = qmp.watch_connection_state();
    // Made before the first connection and not read while it lasts.
    let mut events = qmp.subscribe_raw();
    let first = serve(&path, &counts).await;
    wait_state(&mut watch, "connected", connected(1)).await;
    kill(first);
    wait_state(&mut watch, "reconnecting", reconnecting).await;
    let second = serve(&path, &counts).await;
    wait_state(&mut watch, "connected again", connected(2)).await;
    assert_eq!(second.0.emit_raw("STOP", None).await, 1);
    gap(&mut events, "the gap notice").await;
    assert_eq!(event(&mut events, "STOP").await.name(), "STOP");
    bounded("closing", qmp.close()).await;
}

#[tokio::test]
async fn reconnects_over_tcp() {
    let counts = Arc::new(Counts::default());
    let server = Server::builder()
        .handle_raw("query-version", false, |_ctx, _args| async {
            Ok(json!({"qemu": {"major": 10, "minor": 0, "micro": 0}, "package": ""}))
        })
        .build();
    let listening = server.listen_tcp("127.0.0.1:0").await.expect("listening");
    let addr = match listening.addr() {
        qmp::server::ListenAddr::Tcp(a) => *a,
        other => panic!("{other:?}"),
    };
    let qmp = bounded(
        "connecting",
        ReconnectingClient::tcp(&Config::new(), addr.to_string())
            .initial_delay(Duration::from_millis(10))
            .connect(),
    )
    .await
    .expect("connecting over TCP");
    let mut watch = qmp.watch_connection_state();
    let mut events = qmp.subscribe_raw();
    server.shutdown();
    drop(listening);
    wait_state(&mut watch, "reconnecting", reconnecting).await;
    // Another server on the same port.
    let again = Server::builder()
        .handle_raw("query-version", false, |_ctx, _args| async {
            Ok(json!({"qemu": {"major": 10, "minor": 0, "micro": 1}, "package": ""}))
        })
        .build();
    let _listening = again.listen_tcp(addr).await.expect("the same port again");
    wait_state(&mut watch, "connected again", connected(2)).await;
    let v = bounded(
        "query-version",
        qmp.execute_raw("query-version", None::<&()>),
    )
    .await
    .unwrap();
    assert_eq!(v["qemu"]["micro"], 1, "the call reached the new server");
    again.emit_raw("STOP", None).await;
    gap(&mut events, "the gap notice").await;
    assert_eq!(event(&mut events, "STOP").await.name(), "STOP");
    drop(counts);
    bounded("closing", qmp.close()).await;
}

#[tokio::test]
async fn dropping_the_last_handle_closes_the_connection() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("qmp.sock");
    let counts = Arc::new(Counts::default());
    let server = serve(&path, &counts).await;
    let qmp = bounded("connecting", builder(&path).connect())
        .await
        .expect("connecting");
    let mut events = qmp.subscribe_raw();
    let clone = qmp.clone();
    drop(qmp);
    assert_eq!(server.0.clients().len(), 1, "a clone keeps it open");
    drop(clone);
    assert!(
        bounded("the subscription's end", events.next())
            .await
            .is_none(),
        "the subscription ends with the last handle"
    );
    bounded("the server seeing the client go", async {
        while !server.0.clients().is_empty() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
}

// ---- Live: QEMU 10.0 killed and restarted on the same socket path ----

/// `qemu-storage-daemon` with its QMP monitor at `socket` (a fixed path), killed when
/// dropped.
fn start_qsd(socket: &Path) -> qmp::local::LocalQemu {
    let socket = socket.to_owned();
    qmp::local::LocalQemu::spawn("qemu-storage-daemon", move |_private| {
        vec![
            "--chardev".into(),
            format!("socket,id=m,path={},server=on,wait=off", socket.display()),
            "--monitor".into(),
            "chardev=m".into(),
        ]
    })
    .expect("starting qemu-storage-daemon")
}

/// `qemu-system-x86_64 -M none` with its QMP monitor at `socket` (a fixed path, so a
/// second one can take the first one's place), killed when dropped.
fn start_qemu(socket: &Path) -> qmp::local::LocalQemu {
    let socket = socket.to_owned();
    qmp::local::LocalQemu::spawn("qemu-system-x86_64", move |_private| {
        [
            "-M",
            "none",
            "-nodefaults",
            "-display",
            "none",
            "-qmp",
            &format!("unix:{},server=on,wait=off", socket.display()),
        ]
        .map(String::from)
        .to_vec()
    })
    .expect("starting qemu-system-x86_64")
}

fn kill_qemu(mut qemu: qmp::local::LocalQemu) {
    let child = qemu.child();
    let _ = child.kill();
    let _ = child.wait();
}

/// Reads events until one named `name`, which must come before anything else that is
/// not an event.
async fn until_event(sub: &mut qmp::reconnect::Subscription<RawEvent>, name: &str) {
    loop {
        if event(sub, name).await.name() == name {
            return;
        }
    }
}

#[tokio::test]
async fn live_qemu_killed_and_restarted_on_the_same_socket() {
    if !qmp::local::installed("qemu-system-x86_64") {
        skip::skipping("qemu-system-x86_64 is not installed (scripts/setup-qemu)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let socket: PathBuf = dir.path().join("qmp.sock");
    let qemu = start_qemu(&socket);
    // `start`: QEMU may not listen yet; the client retries until it does.
    let qmp = builder(&socket).give_up_after(Some(HANG)).start().await;
    let mut watch = qmp.watch_connection_state();
    let mut events = qmp.subscribe_raw();
    wait_state(&mut watch, "connected to the first QEMU", |s| {
        s.is_connected()
    })
    .await;
    let greeting = qmp
        .current()
        .expect("connected")
        .greeting()
        .qmp
        .version
        .qemu;
    assert_eq!(
        (greeting.major, greeting.minor),
        (10, 0),
        "QEMU 10.0 expected"
    );

    bounded("stop", qmp.execute_raw("stop", None::<&()>))
        .await
        .expect("stop");
    until_event(&mut events, "STOP").await;

    kill_qemu(qemu);
    wait_state(&mut watch, "reconnecting", reconnecting).await;
    let qemu = start_qemu(&socket);
    wait_state(&mut watch, "connected to the second QEMU", connected(2)).await;

    let status = bounded("query-status", qmp.execute_raw("query-status", None::<&()>))
        .await
        .expect("query-status on the second QEMU");
    assert_eq!(status["running"], true, "a fresh QEMU runs: {status}");
    bounded("stop", qmp.execute_raw("stop", None::<&()>))
        .await
        .expect("stop on the second QEMU");
    bounded("cont", qmp.execute_raw("cont", None::<&()>))
        .await
        .expect("cont on the second QEMU");
    gap(&mut events, "the gap notice").await;
    until_event(&mut events, "STOP").await;
    until_event(&mut events, "RESUME").await;

    bounded("closing", qmp.close()).await;
    assert!(bounded("end of events", events.next()).await.is_none());
    kill_qemu(qemu);
}

#[tokio::test]
async fn live_storage_daemon_killed_and_restarted_on_the_same_socket() {
    if !qmp::local::installed("qemu-storage-daemon") {
        skip::skipping("qemu-storage-daemon is not installed (scripts/setup-qemu)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let socket: PathBuf = dir.path().join("qsd.sock");
    let qsd = start_qsd(&socket);
    let qmp = builder(&socket).give_up_after(Some(HANG)).start().await;
    let mut watch = qmp.watch_connection_state();
    let mut events = qmp.subscribe_raw();
    wait_state(&mut watch, "connected to the first daemon", |s| {
        s.is_connected()
    })
    .await;
    let v = bounded(
        "query-version",
        qmp.execute_raw("query-version", None::<&()>),
    )
    .await
    .expect("query-version");
    assert_eq!(v["qemu"]["major"], 10, "QEMU 10.0 expected: {v}");
    // A node to tell the two daemons apart: the second one must not have it.
    let node = json!({"driver": "null-co", "node-name": "n0"});
    bounded("blockdev-add", qmp.execute_raw("blockdev-add", Some(&node)))
        .await
        .expect("blockdev-add on the first daemon");

    kill_qemu(qsd);
    wait_state(&mut watch, "reconnecting", reconnecting).await;
    let qsd = start_qsd(&socket);
    wait_state(&mut watch, "connected to the second daemon", connected(2)).await;
    let nodes = bounded(
        "query-named-block-nodes",
        qmp.execute_raw("query-named-block-nodes", None::<&()>),
    )
    .await
    .expect("query-named-block-nodes on the second daemon");
    assert_eq!(nodes, json!([]), "the call reached the new daemon");
    gap(&mut events, "the gap notice").await;

    bounded("closing", qmp.close()).await;
    assert!(bounded("end of events", events.next()).await.is_none());
    kill_qemu(qsd);
}
