#![cfg(feature = "server")]
//! A monitor connection kept open for a long time: every phase of connecting has a
//! deadline whose error names the phase and the limit, a write QEMU does not take
//! closes the connection, the keepalive declares a silent QEMU dead, and QEMU's exit
//! fails every pending caller at once with its command named.
//!
//! The first tests use in-memory or Unix-socket peers written here (deterministic);
//! the last ones run QEMU 10.0 (`qemu-system-x86_64 -M none`) through `qmp::local`
//! and stop (`SIGSTOP`) or kill (`SIGKILL`) it. No assertion is about time: hangs are
//! bounded by a generous timeout.

#[path = "support/skip.rs"]
mod skip;

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use qmp::local::LocalQemu;
use qmp::{Config, ConnectionState};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};

/// Bound on anything that should finish: far above every deadline used here.
const HANG: Duration = Duration::from_secs(60);

async fn bounded<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(HANG, f).await.expect("hung")
}

const GREETING: &str = "{\"QMP\": {\"version\": {\"qemu\": {\"major\": 10, \"minor\": 0, \
    \"micro\": 0}, \"package\": \"\"}, \"capabilities\": []}}\r\n";

/// What a toy peer does after the handshake.
#[derive(Clone, Copy, PartialEq)]
enum After {
    /// Answers `query-version` (the keepalive) and nothing else.
    AnswerPings,
    /// Reads nothing at all, keeping the stream open.
    StopReading,
    /// Reads `n` requests, answers none, then closes the stream.
    Close(usize),
}

/// A toy QMP peer on `stream`: greets, answers `qmp_capabilities`, then behaves as
/// `after`. `pings` counts the `query-version` requests answered; `silent` (for
/// `AnswerPings`) is the number of pings after which it stops answering anything.
async fn toy_peer<S: AsyncRead + AsyncWrite>(
    stream: S,
    after: After,
    pings: Arc<AtomicUsize>,
    silent_after: usize,
) {
    let (r, mut w) = tokio::io::split(stream);
    w.write_all(GREETING.as_bytes()).await.unwrap();
    let mut lines = BufReader::new(r).lines();
    let caps = lines.next_line().await.unwrap().unwrap();
    let req: Value = serde_json::from_str(&caps).unwrap();
    assert_eq!(req["execute"], "qmp_capabilities");
    let reply = json!({"return": {}, "id": req["id"]});
    w.write_all(format!("{reply}\r\n").as_bytes())
        .await
        .unwrap();
    let mut read = 0;
    match after {
        After::StopReading => std::future::pending::<()>().await,
        After::Close(n) => {
            while read < n {
                if lines.next_line().await.unwrap().is_none() {
                    return;
                }
                read += 1;
            }
            // Dropping both halves closes the stream.
        }
        After::AnswerPings => {
            while let Ok(Some(line)) = lines.next_line().await {
                let req: Value = serde_json::from_str(&line).unwrap();
                if req["execute"] != "query-version" || pings.load(Ordering::SeqCst) >= silent_after
                {
                    continue;
                }
                let ret = json!({"qemu": {"major": 10, "minor": 0, "micro": 0}, "package": ""});
                let reply = json!({"return": ret, "id": req["id"]});
                w.write_all(format!("{reply}\r\n").as_bytes())
                    .await
                    .unwrap();
                pings.fetch_add(1, Ordering::SeqCst);
            }
        }
    }
}

// --- Connecting: one deadline per phase ---------------------------------------------

/// A listener that accepts and never greets: as QEMU does for a second client.
#[tokio::test]
async fn no_greeting_names_the_phase_the_limit_and_the_likely_cause() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("qmp.sock");
    let listener = tokio::net::UnixListener::bind(&sock).unwrap();
    let held = tokio::spawn(async move {
        let (s, _) = listener.accept().await.unwrap();
        std::future::pending::<()>().await;
        drop(s);
    });
    let err = bounded(
        Config::new()
            .greeting_timeout(Some(Duration::from_millis(300)))
            .connect_unix(&sock),
    )
    .await
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "no greeting within 300 ms from {}: QEMU serves one client per monitor; is \
             another client connected?",
            sock.display()
        )
    );
    assert!(err.is_timeout() && !err.is_closed(), "{err:?}");
    assert_eq!(format!("{:?}", err.timeout_phase()), "Some(Greeting)");
    assert_eq!(err.timeout_limit(), Some(Duration::from_millis(300)));
    held.abort();
}

/// With no greeting deadline of its own, the connect timeout bounds the greeting,
/// and the error says which limit ran out.
#[tokio::test]
async fn the_connect_timeout_bounds_every_phase_and_says_so() {
    let (ours, theirs) = tokio::io::duplex(4096);
    let err = bounded(
        Config::new()
            .greeting_timeout(None)
            .connect_timeout(Some(Duration::from_millis(250)))
            .connect_stream(ours),
    )
    .await
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "no greeting within the connect timeout (250 ms) from stream: QEMU serves one \
         client per monitor; is another client connected?"
    );
    assert!(err.is_timeout());
    drop(theirs);
}

/// A peer that greets but never answers `qmp_capabilities`.
#[tokio::test]
async fn unanswered_negotiation_names_qmp_capabilities_and_its_limit() {
    let (ours, theirs) = tokio::io::duplex(4096);
    let peer = tokio::spawn(async move {
        let (r, mut w) = tokio::io::split(theirs);
        w.write_all(GREETING.as_bytes()).await.unwrap();
        let mut lines = BufReader::new(r).lines();
        while let Ok(Some(_)) = lines.next_line().await {}
    });
    let err = bounded(
        Config::new()
            .negotiation_timeout(Some(Duration::from_millis(200)))
            .connect_stream(ours),
    )
    .await
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "`qmp_capabilities` not answered within 200 ms by stream: is QEMU stopped, or its \
         main loop blocked?"
    );
    assert_eq!(err.command(), Some("qmp_capabilities"));
    assert_eq!(format!("{:?}", err.timeout_phase()), "Some(Negotiation)");
    peer.abort();
}

/// Accepting: nobody connects.
#[tokio::test]
async fn nobody_connecting_to_accept_names_the_socket_phase() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("back.sock");
    let listener = tokio::net::UnixListener::bind(&path).unwrap();
    let err = bounded(
        Config::new()
            .socket_timeout(Some(Duration::from_millis(200)))
            .accept_unix(&listener),
    )
    .await
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "QEMU did not connect to {} within 200 ms: did it start, with its monitor \
             pointed at this socket?",
            path.display()
        )
    );
    assert_eq!(format!("{:?}", err.timeout_phase()), "Some(Connect)");
}

// --- Writing: a peer that stops reading --------------------------------------------

#[tokio::test]
async fn a_write_the_peer_does_not_take_closes_the_connection() {
    let (ours, theirs) = tokio::io::duplex(1024);
    tokio::spawn(toy_peer(theirs, After::StopReading, Default::default(), 0));
    let c = bounded(
        Config::new()
            .write_timeout(Some(Duration::from_millis(200)))
            .connect_stream(ours),
    )
    .await
    .unwrap();
    // Far more than the 1 KiB the in-memory pipe holds.
    let big = "x".repeat(64 * 1024);
    let err = bounded(c.execute_raw("echo", Some(&json!({ "text": big }))))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "`echo` was being written when the connection ended (it may have run): could not \
         write to stream within 200 ms: QEMU stopped reading (stopped, hung, or its monitor \
         saturated); the connection is closed, since a half-written request leaves the \
         stream unusable"
    );
    assert!(err.is_timeout() && err.is_closed(), "{err:?}");
    assert!(err.may_have_run() && !err.is_not_sent(), "{err:?}");
    assert_eq!(err.command(), Some("echo"));
    assert_eq!(format!("{:?}", err.timeout_phase()), "Some(Write)");
    // The connection is gone: run state Idle, later calls fail at once.
    bounded(c.closed()).await;
    assert_eq!(c.connection_state(), ConnectionState::Idle);
    let later = bounded(c.execute_raw("query-status", None::<&()>))
        .await
        .unwrap_err();
    assert!(later.is_closed() && later.is_timeout(), "{later:?}");
    assert_eq!(later.command(), Some("query-status"));
}

// --- Keepalive ---------------------------------------------------------------------

/// A healthy peer answers the keepalive, and the connection stays up.
#[tokio::test]
async fn an_answered_keepalive_keeps_the_connection() {
    let (ours, theirs) = tokio::io::duplex(4096);
    let pings = Arc::new(AtomicUsize::new(0));
    tokio::spawn(toy_peer(
        theirs,
        After::AnswerPings,
        pings.clone(),
        usize::MAX,
    ));
    let c = bounded(
        Config::new()
            .keepalive(Duration::from_millis(50), Duration::from_secs(30))
            .connect_stream(ours),
    )
    .await
    .unwrap();
    bounded(async {
        while pings.load(Ordering::SeqCst) < 3 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(!c.is_closed());
    assert_eq!(c.connection_state(), ConnectionState::Running);
    let v = bounded(c.execute_raw("query-version", None::<&()>))
        .await
        .unwrap();
    assert_eq!(v["qemu"]["major"], 10);
    c.close().await;
}

/// A peer that stops answering (but still reads): the keepalive declares it dead,
/// the pending caller fails with that, and later calls fail at once.
#[tokio::test]
async fn an_unanswered_keepalive_declares_the_peer_dead() {
    let (ours, theirs) = tokio::io::duplex(4096);
    let pings = Arc::new(AtomicUsize::new(0));
    tokio::spawn(toy_peer(theirs, After::AnswerPings, pings.clone(), 2));
    let config = {
        let mut c = Config::new();
        c.keepalive(Duration::from_millis(100), Duration::from_millis(300));
        c
    };
    let mut watch = config.watch_connection_state();
    let c = bounded(config.connect_stream(ours)).await.unwrap();
    // The peer never answers this; only the keepalive can end the wait.
    let err = bounded(c.execute_raw("query-status", None::<&()>))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "`query-status` was sent, but the connection ended before its reply (it may have \
         run): QEMU did not answer the keepalive (`query-version`, sent after 100 ms of \
         silence) within 300 ms on stream: declared dead; the connection is closed"
    );
    assert!(
        err.is_peer_dead() && err.is_timeout() && err.is_closed(),
        "{err:?}"
    );
    assert_eq!(err.command(), Some("query-status"));
    assert_eq!(pings.load(Ordering::SeqCst), 2);
    bounded(watch.wait_for(ConnectionState::Idle)).await;
    let later = bounded(c.execute_raw("query-name", None::<&()>))
        .await
        .unwrap_err();
    assert!(later.is_peer_dead(), "{later:?}");
    assert_eq!(later.command(), Some("query-name"));
}

// --- The peer going away ------------------------------------------------------------

/// Every pending caller gets the end of the stream, with its own command named.
#[tokio::test]
async fn peer_closing_fails_every_pending_caller_with_its_command() {
    let (ours, theirs) = tokio::io::duplex(64 * 1024);
    tokio::spawn(toy_peer(theirs, After::Close(3), Default::default(), 0));
    let c = bounded(Config::new().connect_stream(ours)).await.unwrap();
    let names = ["query-status", "query-name", "query-uuid"];
    let calls = names.map(|n| {
        let c = c.clone();
        tokio::spawn(async move { c.execute_raw(n, None::<&()>).await })
    });
    for (name, call) in names.iter().zip(calls) {
        let err = bounded(call).await.unwrap().unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "`{name}` was sent, but QEMU closed the connection before answering (it may \
                 have run): end of stream"
            )
        );
        assert!(err.is_closed() && err.is_peer_gone(), "{err:?}");
        assert!(err.may_have_run() && !err.is_not_sent(), "{err:?}");
        assert_eq!(err.command(), Some(*name));
    }
}

// --- QEMU 10.0 ----------------------------------------------------------------------

/// `qemu-system-x86_64 -M none`, or `None` (after reporting the skip).
fn qemu() -> Option<LocalQemu> {
    if !qmp::local::installed("qemu-system-x86_64") {
        skip::skipping("qemu-system-x86_64 is not installed");
        return None;
    }
    Some(LocalQemu::system_none().expect("starting qemu-system-x86_64"))
}

fn signal(qemu: &mut LocalQemu, sig: &str) {
    let pid = qemu.child().id().to_string();
    let status = std::process::Command::new("kill")
        .args([sig, &pid])
        .status()
        .expect("running kill");
    assert!(status.success(), "kill {sig} {pid}: {status}");
}

/// QEMU stopped with `SIGSTOP`: a call with a timeout fails naming the limit, the
/// keepalive declares QEMU dead and fails the call without one; QEMU is then
/// continued and killed (on drop).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_qemu_times_out_and_the_keepalive_declares_it_dead() {
    let Some(mut qemu) = qemu() else { return };
    let config = {
        let mut c = Config::new();
        // Ends well after the 1 s call timeout below, even on a loaded host.
        c.keepalive(Duration::from_secs(2), Duration::from_secs(3));
        c
    };
    let c = bounded(qemu.connect(&config)).await.unwrap();
    let status = bounded(c.execute_raw("query-status", None::<&()>))
        .await
        .unwrap();
    assert!(status.get("status").is_some(), "{status}");
    signal(&mut qemu, "-STOP");
    let pending = {
        let c = c.clone();
        tokio::spawn(async move { c.execute_raw("query-name", None::<&()>).await })
    };
    let err = bounded(
        c.with_timeout(Some(Duration::from_secs(1)))
            .execute_raw("query-status", None::<&()>),
    )
    .await
    .unwrap_err();
    let limit = err.timeout_limit().expect("a limit");
    assert!(limit >= Duration::from_secs(1), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "`query-status` was sent but not answered within {} s (the call's timeout)",
            limit.as_secs()
        )
    );
    assert_eq!(format!("{:?}", err.timeout_phase()), "Some(Call)");
    assert!(err.is_timeout() && !err.is_closed(), "{err:?}");
    let dead = bounded(pending).await.unwrap().unwrap_err();
    assert_eq!(
        dead.to_string(),
        format!(
            "`query-name` was sent, but the connection ended before its reply (it may have \
             run): QEMU did not answer the keepalive (`query-version`, sent after 2 s of \
             silence) within 3 s on {}: declared dead; the connection is closed",
            qemu.socket().display()
        )
    );
    assert!(dead.is_peer_dead() && dead.is_closed(), "{dead:?}");
    bounded(c.closed()).await;
    assert_eq!(c.connection_state(), ConnectionState::Idle);
    let later = bounded(c.execute_raw("query-status", None::<&()>))
        .await
        .unwrap_err();
    assert!(later.is_peer_dead(), "{later:?}");
    signal(&mut qemu, "-CONT");
}

/// QEMU killed with `SIGKILL` while ten calls wait: each caller fails at once, its
/// own command named.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_qemu_fails_every_pending_caller_with_its_command() {
    let Some(mut qemu) = qemu() else { return };
    let c = bounded(qemu.connect(&Config::new())).await.unwrap();
    bounded(c.execute_raw("query-status", None::<&()>))
        .await
        .unwrap();
    // Stopped first, so that none of the ten is answered before the kill.
    signal(&mut qemu, "-STOP");
    let names = [
        "query-status",
        "query-version",
        "query-name",
        "query-uuid",
        "query-kvm",
        "query-chardev",
        "query-commands",
        "query-machines",
        "query-cpus-fast",
        "query-iothreads",
    ];
    let calls: Vec<_> = names
        .iter()
        .map(|&n| {
            let c = c.clone();
            tokio::spawn(async move { c.execute_raw(n, None::<&()>).await })
        })
        .collect();
    // Let the callers queue their requests (not needed for the outcome: a call made
    // after the kill fails the same way).
    tokio::time::sleep(Duration::from_millis(200)).await;
    signal(&mut qemu, "-KILL");
    for (name, call) in names.iter().zip(calls) {
        let err = bounded(call).await.unwrap().unwrap_err();
        // QEMU had not read the requests: Linux reports a reset when a Unix socket
        // closes with unread data, else the end of the stream.
        let sent = format!(
            "`{name}` was sent, but QEMU closed the connection before answering (it may have \
             run): "
        );
        let reset = format!(
            "{sent}connection reset while reading: Connection reset by peer (os error 104)"
        );
        let eof = format!("{sent}end of stream");
        let text = err.to_string();
        assert!(text == reset || text == eof, "{text}");
        assert!(err.is_closed() && err.is_peer_gone(), "{err:?}");
        assert!(err.may_have_run() && !err.is_not_sent(), "{err:?}");
        assert_eq!(err.command(), Some(*name));
    }
    let _ = qemu.child().wait();
}

/// QEMU serves one client per monitor: a second client gets the greeting error
/// within its greeting timeout, and the first one keeps working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_client_on_a_busy_monitor_gets_the_greeting_error() {
    let Some(mut qemu) = qemu() else { return };
    let first = bounded(qemu.connect(&Config::new())).await.unwrap();
    let socket: &Path = qemu.socket();
    let err = bounded(
        Config::new()
            .greeting_timeout(Some(Duration::from_secs(1)))
            .connect_unix(socket),
    )
    .await
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "no greeting within 1 s from {}: QEMU serves one client per monitor; is \
             another client connected?",
            socket.display()
        )
    );
    assert!(err.is_timeout(), "{err:?}");
    let status = bounded(first.execute_raw("query-status", None::<&()>))
        .await
        .unwrap();
    assert!(status.get("status").is_some(), "{status}");
    first.close().await;
}

/// The same over a Unix socket, where a lone call writes what fits itself and the
/// writer task must finish the rest: the rest cannot be written, so the connection
/// closes.
#[tokio::test]
async fn a_write_the_peer_does_not_take_closes_a_unix_connection() {
    let (ours, theirs) = tokio::net::UnixStream::pair().unwrap();
    tokio::spawn(toy_peer(theirs, After::StopReading, Default::default(), 0));
    let c = bounded(
        Config::new()
            .write_timeout(Some(Duration::from_millis(200)))
            .connect_unix_stream(ours),
    )
    .await
    .unwrap();
    // Far more than a Unix socket's buffer.
    let big = "x".repeat(8 * 1024 * 1024);
    let err = bounded(c.execute_raw("echo", Some(&json!({ "text": big }))))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "`echo` was being written when the connection ended (it may have run): could not \
         write to unix-stream within 200 ms: QEMU stopped reading (stopped, hung, or its \
         monitor saturated); the connection is closed, since a half-written request leaves \
         the stream unusable"
    );
    assert!(err.is_timeout() && err.is_closed(), "{err:?}");
    bounded(c.closed()).await;
    assert_eq!(c.connection_state(), ConnectionState::Idle);
}

/// Over TCP the errors name the address connected to.
#[tokio::test]
async fn over_tcp_the_errors_name_the_address() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let held = tokio::spawn(async move {
        let (s, _) = listener.accept().await.unwrap();
        std::future::pending::<()>().await;
        drop(s);
    });
    let err = bounded(
        Config::new()
            .greeting_timeout(Some(Duration::from_millis(300)))
            .connect_tcp(addr),
    )
    .await
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "no greeting within 300 ms from {addr}: QEMU serves one client per monitor; is \
             another client connected?"
        )
    );
    held.abort();
}

/// The keepalive does not keep a connection open: dropping the last handle still
/// closes it (the peer sees the end of the stream).
#[tokio::test]
async fn the_keepalive_does_not_keep_a_dropped_client_open() {
    let (ours, theirs) = tokio::io::duplex(4096);
    let pings = Arc::new(AtomicUsize::new(0));
    let peer = tokio::spawn(toy_peer(
        theirs,
        After::AnswerPings,
        pings.clone(),
        usize::MAX,
    ));
    let c = bounded(
        Config::new()
            .keepalive(Duration::from_millis(20), Duration::from_secs(30))
            .connect_stream(ours),
    )
    .await
    .unwrap();
    bounded(async {
        while pings.load(Ordering::SeqCst) < 2 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    drop(c);
    // The peer's loop ends at the end of the stream.
    bounded(peer).await.unwrap();
}
