//! `qmp::blocking` against the installed `qemu-storage-daemon` (issue 19): connecting
//! by path alone, refusing (not panicking) inside a tokio runtime of either flavour
//! while working from `spawn_blocking`, dropping inside a runtime, a subscription's
//! timeout told from its end, and errors with the async client's texts. A test whose
//! QEMU is missing skips with one line (tests/support/skip.rs).

#[path = "support/skip.rs"]
mod skip;

use std::time::Duration;

use qmp::blocking::{Client, Events};
use qmp::local::{installed, Launch, LocalQemu};
use qmp::{Command, Config, ErrorKind, Event, Overflow, RawEvent};
use serde::{Deserialize, Serialize};
use serde_json::json;

fn have_daemon() -> bool {
    let found = installed("qemu-storage-daemon");
    if !found {
        skip::skipping("qemu-storage-daemon is not installed (scripts/setup-qemu)");
    }
    found
}

fn daemon() -> LocalQemu {
    let mut qemu = LocalQemu::storage_daemon().expect("starting qemu-storage-daemon");
    qemu.wait_for_socket(Duration::from_secs(10))
        .expect("qemu-storage-daemon listening");
    qemu
}

#[derive(Serialize)]
struct QueryVersion {}
#[derive(Deserialize, Debug)]
struct VersionInfo {
    qemu: Triple,
}
#[derive(Deserialize, Debug)]
struct Triple {
    major: u32,
}
impl Command for QueryVersion {
    const NAME: &'static str = "query-version";
    type Reply = VersionInfo;
}

#[derive(Deserialize, Debug)]
struct Stop {}
impl Event for Stop {
    const NAME: &'static str = "STOP";
}

/// The text every blocking method gives inside a runtime, naming itself.
fn refusal(method: &str) -> String {
    format!(
        "unsupported: {method} was called from inside a tokio runtime, whose thread it would \
         block: use `qmp::Client` there, or call it from `tokio::task::spawn_blocking`"
    )
}

#[track_caller]
fn assert_refused<T>(method: &str, r: qmp::Result<T>) {
    match r {
        Ok(_) => panic!("{method} worked inside a runtime"),
        Err(e) => {
            assert_eq!(e.kind(), ErrorKind::Unsupported, "{method}: {e}");
            assert_eq!(e.to_string(), refusal(method));
        }
    }
}

#[track_caller]
fn assert_event_refused<T>(method: &str, r: Option<qmp::Result<T>>) {
    match r {
        Some(r) => assert_refused(method, r),
        None => panic!("{method} ended the stream inside a runtime"),
    }
}

#[test]
fn connect_takes_a_path_alone_and_works_as_connect_unix() {
    if !have_daemon() {
        return;
    }
    let qemu = daemon();
    let client = Client::connect(qemu.socket()).expect("connecting by path");
    assert_eq!(client.execute(&QueryVersion {}).unwrap().qemu.major, 10);
    client.close().unwrap();
    // The path-only form fails as `connect_unix` with the default `Config` does.
    let missing = qemu.dir().join("absent.sock");
    let by_path = Client::connect(&missing).unwrap_err();
    let with_config = Client::connect_unix(&Config::new(), &missing).unwrap_err();
    assert_eq!(by_path.to_string(), with_config.to_string());
    assert_eq!(by_path.kind(), ErrorKind::Io);
}

/// A client, a typed and a raw subscription made outside any runtime (on a thread
/// of `spawn_blocking`), for the refusal tests to use inside one.
fn made_outside(socket: std::path::PathBuf) -> (Client, Events<Stop>, Events<RawEvent>) {
    let client = Client::connect(&socket).expect("connecting from spawn_blocking");
    let stops = client.subscribe::<Stop>().unwrap();
    let raw = client.subscribe_raw().unwrap();
    (client, stops, raw)
}

/// Every blocking method, called on the runtime's thread: each returns the refusal,
/// none panics, and the connection made outside still works afterwards (the
/// refusals sent nothing and closed nothing).
async fn every_method_refuses_inside_a_runtime() {
    if !have_daemon() {
        return;
    }
    let mut qemu = daemon();
    let socket = qemu.socket().to_owned();
    let (client, mut stops, mut raw) = tokio::task::spawn_blocking(move || made_outside(socket))
        .await
        .unwrap();
    let socket = qemu.socket().to_owned();

    assert_refused("qmp::blocking::Client::connect", Client::connect(&socket));
    assert_refused(
        "qmp::blocking::Client::connect_unix",
        Client::connect_unix(&Config::new(), &socket),
    );
    assert_refused(
        "qmp::blocking::Client::connect_tcp",
        Client::connect_tcp(&Config::new(), "127.0.0.1:1"),
    );
    let listen_at = qemu.dir().join("accept.sock");
    let listener = std::os::unix::net::UnixListener::bind(&listen_at).unwrap();
    assert_refused(
        "qmp::blocking::Client::accept_unix",
        Client::accept_unix(&Config::new(), listener),
    );
    assert_refused(
        "qmp::local::LocalQemu::connect_blocking",
        qemu.connect_blocking(&Config::new()),
    );

    assert_refused(
        "qmp::blocking::Client::execute",
        client.execute(&QueryVersion {}),
    );
    assert_refused(
        "qmp::blocking::Client::execute_oob",
        client.execute_oob(&QueryVersion {}),
    );
    assert_refused(
        "qmp::blocking::Client::execute_with_fds",
        client.execute_with_fds(&QueryVersion {}, Vec::new()),
    );
    assert_refused(
        "qmp::blocking::Client::execute_raw",
        client.execute_raw("query-version", None::<&()>),
    );
    assert_refused(
        "qmp::blocking::Client::execute_and_wait",
        client.execute_and_wait(&QueryVersion {}, |_: &Stop| true),
    );
    assert_refused("qmp::blocking::Client::peer_schema", client.peer_schema());
    assert_refused(
        "qmp::blocking::Client::supports",
        client.supports::<QueryVersion>(),
    );
    assert_refused(
        "qmp::blocking::Client::supports_event",
        client.supports_event::<Stop>(),
    );
    assert_refused(
        "qmp::blocking::Client::supports_probe",
        client.supports_probe("query-version"),
    );
    assert_refused(
        "qmp::blocking::Client::supports_member",
        client.supports_member::<QueryVersion>("x"),
    );
    assert_refused(
        "qmp::blocking::Client::supports_value",
        client.supports_value::<QueryVersion>("x", "y"),
    );
    assert_refused(
        "qmp::blocking::Client::subscribe",
        client.subscribe::<Stop>(),
    );
    assert_refused(
        "qmp::blocking::Client::subscribe_with",
        client.subscribe_with::<Stop>(Overflow::Backpressure),
    );
    assert_refused(
        "qmp::blocking::Client::subscribe_all",
        client.subscribe_all::<RawSet>(),
    );
    assert_refused(
        "qmp::blocking::Client::subscribe_all_with",
        client.subscribe_all_with::<RawSet>(Overflow::Backpressure),
    );
    #[allow(deprecated)]
    {
        assert_refused(
            "qmp::blocking::Client::subscribe_all",
            client.subscribe_set::<RawSet>(),
        );
    }
    assert_refused(
        "qmp::blocking::Client::subscribe_shared",
        client.subscribe_shared::<Stop>(),
    );
    assert_refused(
        "qmp::blocking::Client::subscribe_shared_with",
        client.subscribe_shared_with::<Stop>(Overflow::Backpressure),
    );
    assert_refused(
        "qmp::blocking::Client::subscribe_all_shared",
        client.subscribe_all_shared::<RawSet>(),
    );
    assert_refused(
        "qmp::blocking::Client::subscribe_all_shared_with",
        client.subscribe_all_shared_with::<RawSet>(Overflow::Backpressure),
    );
    assert_refused(
        "qmp::blocking::Client::subscribe_raw",
        client.subscribe_raw(),
    );
    assert_refused(
        "qmp::blocking::Client::subscribe_raw_with",
        client.subscribe_raw_with(Overflow::Backpressure),
    );
    assert_event_refused("qmp::blocking::Events::recv", stops.recv());
    assert_event_refused(
        "qmp::blocking::Events::recv_timeout",
        raw.recv_timeout(Duration::from_millis(10)),
    );
    assert_event_refused("qmp::blocking::Events::recv", raw.next());
    assert_refused("qmp::blocking::Client::close", client.close());

    // What needs no waiting works anywhere.
    assert_eq!(client.greeting().qmp.version.qemu.major, 10);
    assert!(client.peer_schema_if_known().is_none());

    // Nothing was closed: the same client answers from spawn_blocking.
    let major = tokio::task::spawn_blocking(move || {
        let major = client.execute(&QueryVersion {}).unwrap().qemu.major;
        client.close().unwrap();
        drop((stops, raw));
        major
    })
    .await
    .unwrap();
    assert_eq!(major, 10);
}

#[tokio::test(flavor = "current_thread")]
async fn every_method_refuses_inside_a_current_thread_runtime() {
    every_method_refuses_inside_a_runtime().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_method_refuses_inside_a_multi_thread_runtime() {
    every_method_refuses_inside_a_runtime().await;
}

/// And on a multi-thread runtime's worker (a spawned task), not only in the body
/// that `block_on` runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spawned_task_is_refused_too() {
    let e = tokio::spawn(async { Client::connect("/nonexistent/qmp.sock").map(|_| ()) })
        .await
        .unwrap();
    assert_refused("qmp::blocking::Client::connect", e);
}

/// The whole blocking API from `spawn_blocking`, against QEMU: connect, a typed
/// call, a subscription and a timeout, closing.
async fn works_from_spawn_blocking() {
    if !have_daemon() {
        return;
    }
    let qemu = daemon();
    let socket = qemu.socket().to_owned();
    tokio::task::spawn_blocking(move || {
        let client = Client::connect(&socket).expect("connecting");
        assert_eq!(client.execute(&QueryVersion {}).unwrap().qemu.major, 10);
        assert!(client.supports::<QueryVersion>().unwrap());
        let mut events = client.subscribe_all::<RawSet>().unwrap();
        let e = events
            .recv_timeout(Duration::from_millis(50))
            .expect("open")
            .unwrap_err();
        assert!(e.is_timeout(), "{e}");
        client.close().unwrap();
        assert!(events.recv().is_none());
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "current_thread")]
async fn from_spawn_blocking_on_a_current_thread_runtime_it_works() {
    works_from_spawn_blocking().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn from_spawn_blocking_on_a_multi_thread_runtime_it_works() {
    works_from_spawn_blocking().await;
}

/// Dropping the last client and subscription inside a runtime neither panics nor
/// blocks, and closes the connection: QEMU (one monitor client at a time) then greets
/// a new client.
async fn dropping_inside_a_runtime() {
    if !have_daemon() {
        return;
    }
    let qemu = daemon();
    let socket = qemu.socket().to_owned();
    let (client, stops, raw) = tokio::task::spawn_blocking(move || made_outside(socket))
        .await
        .unwrap();
    let clone = client.with_timeout(Some(Duration::from_secs(1)));
    drop(client);
    drop(stops);
    drop(clone);
    drop(raw);
    let mut config = Config::new();
    config.greeting_timeout(Some(Duration::from_secs(5)));
    let again = config
        .connect_unix(qemu.socket())
        .await
        .expect("QEMU greets a new client once the dropped one is gone");
    again.close().await;
}

#[tokio::test(flavor = "current_thread")]
async fn dropping_inside_a_current_thread_runtime_closes_without_panicking() {
    dropping_inside_a_runtime().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_inside_a_multi_thread_runtime_closes_without_panicking() {
    dropping_inside_a_runtime().await;
}

/// Any event, decoded as its name (an `EventSet` for `subscribe_all`).
#[derive(Debug)]
struct RawSet(String);
impl qmp::EventSet for RawSet {
    fn decode(name: &str, _data: Option<&str>) -> Result<Self, serde_json::Error> {
        Ok(RawSet(name.to_owned()))
    }
}

#[test]
fn a_timeout_names_its_limit_and_differs_from_the_end() {
    if !installed("qemu-system-x86_64") {
        skip::skipping("qemu-system-x86_64 is not installed (scripts/setup-qemu)");
        return;
    }
    let mut qemu = Launch::system_none().start().expect("starting QEMU");
    let client = qemu.connect_blocking(&Config::new()).expect("connecting");
    let mut stops = client.subscribe::<Stop>().unwrap();
    let e = stops
        .recv_timeout(Duration::from_secs(2))
        .expect("the stream is open")
        .unwrap_err();
    assert_eq!(e.to_string(), "timed out: no event arrived within 2 s");
    assert!(e.is_timeout() && !e.is_closed(), "{e}");
    let mut shared = client.subscribe_shared::<Stop>().unwrap();
    let mut all_shared = client.subscribe_all_shared::<RawSet>().unwrap();
    let mut raw = client.subscribe_raw().unwrap();
    let e = raw
        .recv_timeout(Duration::from_millis(150))
        .expect("the stream is open")
        .unwrap_err();
    assert_eq!(e.to_string(), "timed out: no event arrived within 150 ms");
    // The subscriptions outlive their timeouts: the next event still arrives.
    client.execute_raw("stop", None::<&()>).unwrap();
    stops
        .recv_timeout(Duration::from_secs(10))
        .expect("the stream is open")
        .expect("STOP after a timeout");
    let stop = raw
        .recv_timeout(Duration::from_secs(10))
        .expect("the stream is open")
        .expect("STOP after a timeout");
    assert_eq!(stop.name(), "STOP");
    shared
        .recv_timeout(Duration::from_secs(10))
        .expect("the stream is open")
        .expect("STOP, shared");
    let set = all_shared
        .recv_timeout(Duration::from_secs(10))
        .expect("the stream is open")
        .expect("STOP, shared set");
    assert_eq!(set.0, "STOP");
    // The end of the stream is `None`, with or without a limit, never a timeout.
    client.close().unwrap();
    assert!(raw.recv_timeout(Duration::from_secs(5)).is_none());
    assert!(stops.recv_timeout(Duration::from_secs(5)).is_none());
    assert!(stops.recv().is_none());
}

/// The blocking client's errors carry the async client's texts: a QMP error, a
/// malformed probe, a refused typed call, a connect failure.
#[test]
fn errors_have_the_async_clients_texts() {
    if !have_daemon() {
        return;
    }
    let qemu = daemon();
    let client = Client::connect(qemu.socket()).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let blocking_qmp = client
        .execute_raw("no-such-command", None::<&()>)
        .unwrap_err()
        .to_string();
    let blocking_probe = client
        .supports_probe("query-version//x")
        .unwrap_err()
        .to_string();
    let blocking_missing = Client::connect(qemu.dir().join("absent.sock"))
        .unwrap_err()
        .to_string();
    client.close().unwrap();
    let (async_qmp, async_probe, async_missing) = rt.block_on(async {
        let c = qmp::connect_unix(qemu.socket()).await.unwrap();
        let q = c
            .execute_raw("no-such-command", None::<&()>)
            .await
            .unwrap_err()
            .to_string();
        let p = c
            .supports_probe("query-version//x")
            .await
            .unwrap_err()
            .to_string();
        c.close().await;
        let m = qmp::connect_unix(qemu.dir().join("absent.sock"))
            .await
            .unwrap_err()
            .to_string();
        (q, p, m)
    });
    assert_eq!(
        blocking_qmp,
        "QMP error from `no-such-command`: CommandNotFound: The command no-such-command has \
         not been found"
    );
    assert_eq!(blocking_qmp, async_qmp);
    assert_eq!(blocking_probe, async_probe);
    assert_eq!(blocking_missing, async_missing);
}

/// A peer on a Unix socket at `path` for `connections` clients in turn: greets,
/// negotiates, never answers `query-status`, and closes the connection on
/// `query-name` (after reading it).
fn silent_peer(path: &std::path::Path, connections: usize) -> std::thread::JoinHandle<()> {
    use std::io::{BufRead, Write};
    let listener = std::os::unix::net::UnixListener::bind(path).unwrap();
    std::thread::spawn(move || {
        for _ in 0..connections {
            let (s, _) = listener.accept().unwrap();
            let mut w = s.try_clone().unwrap();
            let greeting = json!({"QMP": {"version": {"qemu": {"major": 10, "minor": 0,
                "micro": 0}, "package": ""}, "capabilities": []}});
            writeln!(w, "{greeting}\r").unwrap();
            for line in std::io::BufReader::new(s).lines() {
                let Ok(line) = line else { break };
                let req: serde_json::Value = serde_json::from_str(&line).unwrap();
                match req["execute"].as_str() {
                    Some("query-status") => {}
                    Some("query-name") => break,
                    _ => {
                        let reply = json!({"return": {}, "id": req["id"]});
                        if writeln!(w, "{reply}\r").is_err() {
                            break;
                        }
                    }
                }
            }
        }
    })
}

/// A call's timeout and a peer that closes the connection mid-call read as in the
/// async client, word for word.
#[test]
fn a_timeout_and_a_lost_peer_read_as_in_the_async_client() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("peer.sock");
    let peer = silent_peer(&path, 2);
    let blocking = Client::connect(&path).unwrap();
    let blocking_timeout = blocking
        .with_timeout(Some(Duration::from_millis(200)))
        .execute_raw("query-status", None::<&()>)
        .unwrap_err();
    let blocking_gone = blocking.execute_raw("query-name", None::<&()>).unwrap_err();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (async_timeout, async_gone) = rt.block_on(async {
        let c = qmp::connect_unix(&path).await.unwrap();
        let t = c
            .with_timeout(Some(Duration::from_millis(200)))
            .execute_raw("query-status", None::<&()>)
            .await
            .unwrap_err();
        let g = c.execute_raw("query-name", None::<&()>).await.unwrap_err();
        (t, g)
    });
    peer.join().unwrap();
    assert_eq!(
        blocking_timeout.to_string(),
        "`query-status` was sent but not answered within 200 ms (the call's timeout)"
    );
    assert_eq!(blocking_timeout.to_string(), async_timeout.to_string());
    assert_eq!(
        blocking_gone.to_string(),
        "`query-name` was sent, but QEMU closed the connection before answering (it may \
         have run): end of stream"
    );
    assert_eq!(blocking_gone.to_string(), async_gone.to_string());
    assert_eq!(blocking_gone.kind(), async_gone.kind());
}
