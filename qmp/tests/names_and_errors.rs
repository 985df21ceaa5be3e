#![cfg(feature = "server")]
//! The transport's names and errors (issue 19): the connection's state is
//! `ConnectionState` (not the VM's `RunState`), one `QmpError` serves client and test
//! server, every timeout states its limit and phase, and a call cut off by QEMU's
//! end names its command and says whether it may have run (`Error::may_have_run`,
//! `Error::is_not_sent`).
//!
//! Peers: the crate's test server (`qmp::server`), silent Unix listeners written
//! here, and for the reconnecting client a real QEMU 10.0 (`qemu-system-x86_64 -M
//! none`) killed mid-call. Waits are bounded by a generous timeout; no assertion is
//! about time.

#[path = "support/skip.rs"]
mod skip;

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use qmp::reconnect::{ReconnectState, ReconnectStateWatch, ReconnectingClient};
use qmp::server::{Faults, Server};
use qmp::{Client, Config, ConnectionState, ConnectionStateWatch, Phase, QmpError, TimeoutStage};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

/// Bound on anything that should finish: far above every deadline used here.
const HANG: Duration = Duration::from_secs(60);

async fn bounded<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(HANG, f).await.expect("hung")
}

const GREETING: &str = "{\"QMP\": {\"version\": {\"qemu\": {\"major\": 10, \"minor\": 0, \
    \"micro\": 0}, \"package\": \"\"}, \"capabilities\": []}}\r\n";

#[derive(Serialize)]
struct QueryStatus {}

#[derive(Debug, Deserialize)]
#[allow(dead_code)] // only decoded
struct StatusInfo {
    running: bool,
    status: String,
}

impl qmp::Command for QueryStatus {
    const NAME: &'static str = "query-status";
    type Reply = StatusInfo;
    // Not so in QEMU; lets the typed `execute_oob` path run against the test server.
    const ALLOW_OOB: bool = true;
}

/// A test server that answers `query-status` (in band and out of band), or with
/// `dies` closes the connection on reading it, listening in a fresh directory.
async fn server(dies: bool) -> (Server, qmp::server::Listening, tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("qmp.sock");
    let server = Server::builder()
        .capabilities(["oob"])
        .handle_raw("query-status", true, move |ctx, _args| async move {
            if dies {
                // QEMU dying mid-call: the request was read, no reply comes.
                ctx.server.disconnect(ctx.client).await;
                std::future::pending::<()>().await;
            }
            Ok(json!({"status": "running", "running": true}))
        })
        .build();
    let listening = server.listen_unix(&path).await.unwrap();
    (server, listening, dir, path)
}

/// A listener that greets, answers `qmp_capabilities`, then reads every request and
/// answers none (QEMU whose main loop is blocked).
async fn silent_peer(path: &Path) -> tokio::task::JoinHandle<()> {
    let listener = UnixListener::bind(path).unwrap();
    tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let (r, mut w) = stream.into_split();
        w.write_all(GREETING.as_bytes()).await.unwrap();
        let mut lines = BufReader::new(r).lines();
        let caps: Value = serde_json::from_str(&lines.next_line().await.unwrap().unwrap()).unwrap();
        let reply = json!({"return": {}, "id": caps["id"]});
        w.write_all(format!("{reply}\r\n").as_bytes())
            .await
            .unwrap();
        while let Ok(Some(_)) = lines.next_line().await {}
        drop(w);
    })
}

// --- 1. Names: the connection's state ------------------------------------------------

/// `Client::connection_state` and `watch_connection_state` report the connection's
/// own state through its life; the old names still work (deprecated) and are the
/// same types and values.
#[tokio::test]
async fn the_connection_state_has_its_own_name_and_the_old_names_still_work() {
    let (_server, _listening, _dir, path) = server(false).await;
    let config = Config::new();
    let mut config_watch: ConnectionStateWatch = config.watch_connection_state();
    let client = bounded(config.connect_unix(&path)).await.unwrap();
    assert_eq!(client.connection_state(), ConnectionState::Running);
    assert_eq!(
        bounded(config_watch.next()).await.unwrap().state,
        ConnectionState::Connecting
    );
    assert_eq!(
        bounded(config_watch.next()).await.unwrap().state,
        ConnectionState::Running
    );
    let mut watch = client.watch_connection_state();
    #[allow(deprecated)]
    {
        // The old names are aliases, not copies: these assignments type-check.
        let old: qmp::RunState = client.state();
        let same: ConnectionState = old;
        assert_eq!(same, ConnectionState::Running);
        let old_watch: qmp::RunStateWatch = client.run_state();
        let _: ConnectionStateWatch = old_watch;
        let _: ConnectionStateWatch = config.run_state();
    }
    bounded(client.close()).await;
    let seen = [
        bounded(watch.next()).await.unwrap().state,
        bounded(watch.next()).await.unwrap().state,
    ];
    assert_eq!(
        seen,
        [ConnectionState::Disconnecting, ConnectionState::Idle]
    );
    assert_eq!(client.connection_state(), ConnectionState::Idle);
}

/// `ReconnectingClient` has the same method names, its own state type
/// (`ReconnectState`), and the same watch type (`qmp::StateWatch`) as a connection.
#[tokio::test]
async fn the_reconnecting_client_uses_the_same_names_and_the_same_watch() {
    let (_server, _listening, _dir, path) = server(false).await;
    let qmp = bounded(ReconnectingClient::unix(&Config::new(), &path).connect())
        .await
        .unwrap();
    assert_eq!(
        qmp.connection_state(),
        ReconnectState::Connected { connection: 1 }
    );
    let mut watch: qmp::StateWatch<ReconnectState> = qmp.watch_connection_state();
    #[allow(deprecated)]
    {
        let old: qmp::reconnect::ConnectionState = qmp.state();
        assert_eq!(old, ReconnectState::Connected { connection: 1 });
        let old_watch: qmp::reconnect::StateWatch = qmp.state_watch();
        let _: ReconnectStateWatch = old_watch;
    }
    bounded(qmp.close()).await;
    assert_eq!(
        bounded(watch.wait_until(ReconnectState::is_final)).await,
        Some(ReconnectState::Closed)
    );
    // Every transition is reported, then the final state ends the watch.
    let t = bounded(watch.next()).await.unwrap();
    assert_eq!((t.state, t.skipped), (ReconnectState::Closed, 0));
    assert!(bounded(watch.next()).await.is_none());
}

// --- 2. One QmpError ----------------------------------------------------------------

/// A handler answers with a `qmp::QmpError`; the client receives it as the same type,
/// equal in class and description; `qmp::server::QmpError` is that type.
#[tokio::test]
async fn a_handler_error_reaches_the_client_as_the_same_qmp_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("qmp.sock");
    let sent = QmpError::new("DeviceNotFound", "Device 'disk9' not found");
    let server = Server::builder()
        .handle_raw("device_del", false, {
            let sent = sent.clone();
            move |_ctx, _args| {
                let sent = sent.clone();
                async move { Err(sent) }
            }
        })
        .build();
    let _listening = server.listen_unix(&path).await.unwrap();
    // The server's name is the same type: no conversion.
    let same: qmp::server::QmpError = sent.clone();
    assert_eq!(same, sent);
    assert_eq!(
        sent.raw,
        r#"{"error":{"class":"DeviceNotFound","desc":"Device 'disk9' not found"}}"#
    );
    assert_eq!(sent.to_string(), "DeviceNotFound: Device 'disk9' not found");
    assert_eq!(
        QmpError::generic("nope"),
        QmpError::new("GenericError", "nope")
    );
    assert_eq!(QmpError::command_not_found("x").class(), "CommandNotFound");

    let client = bounded(qmp::connect_unix(&path)).await.unwrap();
    let err = bounded(client.execute_raw("device_del", Some(&json!({"id": "disk9"}))))
        .await
        .unwrap_err();
    let got: &QmpError = err.qmp_error().expect("an error reply");
    assert_eq!(
        (got.class(), got.desc()),
        (sent.class(), sent.desc()),
        "{err}"
    );
    // What was received carries the id; the rest is the line the server stands for.
    assert_eq!(
        got.raw,
        r#"{"error":{"class":"DeviceNotFound","desc":"Device 'disk9' not found"},"id":1}"#
    );
    assert_eq!(
        err.to_string(),
        "QMP error from `device_del`: DeviceNotFound: Device 'disk9' not found"
    );
    // It ran and failed: neither retry predicate holds.
    assert!(!err.may_have_run() && !err.is_not_sent(), "{err:?}");
    client.close().await;
}

// --- 3. Timeouts state the limit and the phase --------------------------------------

/// A call QEMU reads but never answers.
#[tokio::test]
async fn an_unanswered_call_states_its_limit_and_phase() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("qmp.sock");
    let peer = silent_peer(&path).await;
    let mut config = Config::new();
    config.call_timeout(Some(Duration::from_millis(200)));
    let client = bounded(config.connect_unix(&path)).await.unwrap();
    let err = bounded(client.execute(&QueryStatus {})).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "`query-status` was sent but not answered within 200 ms (the call's timeout)"
    );
    assert_eq!(err.timeout_phase(), Some(Phase::Call));
    assert_eq!(err.timeout_stage(), Some(TimeoutStage::Unanswered));
    assert_eq!(err.timeout_limit(), Some(Duration::from_millis(200)));
    assert!(err.may_have_run() && !err.is_not_sent() && !err.is_closed());
    // A per-handle limit is the one stated.
    let err = bounded(
        client
            .with_timeout(Some(Duration::from_millis(1500)))
            .execute_raw("query-name", None::<&()>),
    )
    .await
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "`query-name` was sent but not answered within 1.5 s (the call's timeout)"
    );
    client.close().await;
    peer.abort();
}

/// A reconnecting client's unanswered call states the handle's limit (the call got
/// what was left of it after getting the connection).
#[tokio::test]
async fn a_reconnecting_call_states_the_handles_limit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("qmp.sock");
    let peer = silent_peer(&path).await;
    let qmp = bounded(
        ReconnectingClient::unix(&Config::new(), &path)
            .call_timeout(Some(Duration::from_millis(300)))
            .connect(),
    )
    .await
    .unwrap();
    let err = bounded(qmp.execute_raw("query-status", None::<&()>))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "`query-status` was sent but not answered within 300 ms (the call's timeout)"
    );
    assert_eq!(err.timeout_limit(), Some(Duration::from_millis(300)));
    assert!(err.may_have_run() && !err.is_closed(), "{err:?}");
    bounded(qmp.close()).await;
    peer.abort();
}

/// A peer that stops reading: the request cut mid-write and the one queued behind
/// it each say what became of them, with the limit.
#[tokio::test]
async fn calls_stuck_behind_a_peer_that_stops_reading_state_their_limit() {
    let (ours, theirs) = UnixStream::pair().unwrap();
    let peer = tokio::spawn(async move {
        let (r, mut w) = theirs.into_split();
        w.write_all(GREETING.as_bytes()).await.unwrap();
        let mut lines = BufReader::new(r).lines();
        let caps: Value = serde_json::from_str(&lines.next_line().await.unwrap().unwrap()).unwrap();
        let reply = json!({"return": {}, "id": caps["id"]});
        w.write_all(format!("{reply}\r\n").as_bytes())
            .await
            .unwrap();
        // Reads nothing more, keeping the socket open.
        std::future::pending::<()>().await;
        drop(lines);
    });
    let mut config = Config::new();
    config
        .call_timeout(Some(Duration::from_millis(200)))
        // The connection must outlive the calls' timeouts.
        .write_timeout(None);
    let client = bounded(config.connect_unix_stream(ours)).await.unwrap();
    // Far more than a Unix socket's buffer: written in part, then stuck.
    let big = json!({"data": "x".repeat(8 * 1024 * 1024)});
    let writing = {
        let client = client.clone();
        tokio::spawn(async move { client.execute_raw("big", Some(&big)).await })
    };
    let err = bounded(writing).await.unwrap().unwrap_err();
    assert_eq!(
        err.to_string(),
        "`big` was not completely written within 200 ms (the call's timeout): QEMU stopped \
         reading; it may still run if QEMU reads the rest"
    );
    assert_eq!(err.timeout_stage(), Some(TimeoutStage::NotSent));
    assert_eq!(err.timeout_limit(), Some(Duration::from_millis(200)));
    assert!(err.may_have_run() && !err.is_not_sent(), "{err:?}");
    // The writer is still stuck on `big`: this one stays queued.
    let err = bounded(client.execute_raw("queued", None::<&()>))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "`queued` was not sent within 200 ms (the call's timeout): it was still queued \
         behind other requests, and will not be sent"
    );
    assert_eq!(err.timeout_phase(), Some(Phase::Call));
    assert!(err.is_not_sent() && !err.may_have_run(), "{err:?}");
    bounded(client.close()).await;
    peer.abort();
}

/// The connection's own phases: greeting and negotiation name phase and limit.
#[tokio::test]
async fn connect_phases_state_their_limit() {
    let dir = tempfile::tempdir().unwrap();
    // Greets nobody.
    let mute = dir.path().join("mute.sock");
    let listener = UnixListener::bind(&mute).unwrap();
    let err = bounded(
        Config::new()
            .greeting_timeout(Some(Duration::from_millis(200)))
            .connect_unix(&mute),
    )
    .await
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "no greeting within 200 ms from {}: QEMU serves one client per monitor; is \
             another client connected?",
            mute.display()
        )
    );
    assert_eq!(err.timeout_phase(), Some(Phase::Greeting));
    assert_eq!(err.timeout_limit(), Some(Duration::from_millis(200)));
    drop(listener);
    // Greets, then reads `qmp_capabilities` and never answers it.
    let slow = dir.path().join("slow.sock");
    let listener = UnixListener::bind(&slow).unwrap();
    let peer = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let (r, mut w) = stream.into_split();
        w.write_all(GREETING.as_bytes()).await.unwrap();
        let mut lines = BufReader::new(r).lines();
        while let Ok(Some(_)) = lines.next_line().await {}
        drop(w);
    });
    let err = bounded(
        Config::new()
            .negotiation_timeout(Some(Duration::from_millis(200)))
            .connect_unix(&slow),
    )
    .await
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "`qmp_capabilities` not answered within 200 ms by {}: is QEMU stopped, or its \
             main loop blocked?",
            slow.display()
        )
    );
    assert_eq!(err.timeout_phase(), Some(Phase::Negotiation));
    assert_eq!(err.timeout_limit(), Some(Duration::from_millis(200)));
    peer.abort();
}

/// The guest agent's timeouts: an agent that never answers the sync, and a call it
/// does not answer in time.
#[tokio::test]
async fn guest_agent_timeouts_state_their_limit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("qga.sock");
    let listener = UnixListener::bind(&path).unwrap();
    // Accepts and reads, answers nothing.
    let mute = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut sink = Vec::new();
        let _ = tokio::io::AsyncReadExt::read_to_end(&mut stream, &mut sink).await;
    });
    let err = bounded(
        qmp::ga::Config::new()
            .sync_timeout(Duration::from_millis(200))
            .connect_unix(&path),
    )
    .await
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "timed out: the guest agent on {} did not answer `guest-sync-delimited` within \
             200 ms (`sync_timeout`; is it running?)",
            path.display()
        )
    );
    assert!(err.is_timeout());
    mute.abort();

    let agent_path = dir.path().join("agent.sock");
    let agent = Server::builder()
        .guest_agent()
        .handle_raw("guest-info", false, |_ctx, _args| async move {
            Ok(json!({"version": "10.0.0", "supported_commands": []}))
        })
        .faults(Faults {
            reply_delay: Some(Duration::from_secs(5)),
            only_command: Some("guest-info".into()),
            ..Faults::none()
        })
        .build();
    let _listening = agent.listen_unix(&agent_path).await.unwrap();
    let ga = bounded(
        qmp::ga::Config::new()
            .call_timeout(Some(Duration::from_millis(300)))
            .connect_unix(&agent_path),
    )
    .await
    .unwrap();
    let err = bounded(ga.execute_raw("guest-info", None::<&()>))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "`guest-info` was sent but not answered within 300 ms (the call's timeout)"
    );
    assert_eq!(err.timeout_limit(), Some(Duration::from_millis(300)));
    ga.close().await;
}

/// A reconnecting client's call that gets no connection within its timeout: not
/// sent, limit stated, the last attempt's error attached.
#[tokio::test]
async fn a_reconnecting_call_without_a_connection_states_its_limit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("absent.sock");
    let qmp = ReconnectingClient::unix(&Config::new(), &path)
        .call_timeout(Some(Duration::from_millis(300)))
        .start()
        .await;
    let err = bounded(qmp.execute(&QueryStatus {})).await.unwrap_err();
    let last = qmp.last_error().expect("an attempt failed");
    assert_eq!(
        err.to_string(),
        format!(
            "`query-status` was not sent: no connection to QEMU at unix:{} within 300 ms \
             (the call's timeout, waiting for it to be re-established): {last}",
            path.display()
        )
    );
    assert_eq!(err.timeout_phase(), Some(Phase::Call));
    assert_eq!(err.timeout_stage(), Some(TimeoutStage::NotSent));
    assert_eq!(err.timeout_limit(), Some(Duration::from_millis(300)));
    assert!(err.is_timeout() && err.is_not_sent() && !err.may_have_run());
    assert_eq!(err.command(), Some("query-status"));
    bounded(qmp.close()).await;
}

// --- 4. QEMU dies mid-call ----------------------------------------------------------

/// Each way of calling, against a server that closes the connection on reading the
/// request: the command is named, it was sent, it may have run.
#[tokio::test]
async fn every_call_path_names_its_command_when_qemu_closes_mid_call() {
    type Call =
        fn(Client) -> std::pin::Pin<Box<dyn std::future::Future<Output = qmp::Error> + Send>>;
    fn fds() -> Vec<OwnedFd> {
        vec![std::fs::File::open("/dev/null").unwrap().into()]
    }
    let paths: [(&str, Call); 7] = [
        ("execute", |c| {
            Box::pin(async move { c.execute(&QueryStatus {}).await.unwrap_err() })
        }),
        ("execute_oob", |c| {
            Box::pin(async move { c.execute_oob(&QueryStatus {}).await.unwrap_err() })
        }),
        ("execute_with_fds", |c| {
            Box::pin(async move {
                c.execute_with_fds(&QueryStatus {}, fds())
                    .await
                    .unwrap_err()
            })
        }),
        ("execute_raw", |c| {
            Box::pin(async move {
                c.execute_raw("query-status", None::<&()>)
                    .await
                    .unwrap_err()
            })
        }),
        ("execute_oob_raw", |c| {
            Box::pin(async move {
                c.execute_oob_raw("query-status", None::<&()>)
                    .await
                    .unwrap_err()
            })
        }),
        ("execute_raw_with_fds", |c| {
            Box::pin(async move {
                c.execute_raw_with_fds("query-status", None::<&()>, fds())
                    .await
                    .unwrap_err()
            })
        }),
        ("execute_raw_without_id", |c| {
            Box::pin(async move {
                c.execute_raw_without_id("query-status", None::<&()>)
                    .await
                    .unwrap_err()
            })
        }),
    ];
    for (how, call) in paths {
        let (_server, _listening, _dir, path) = server(true).await;
        let client = bounded(qmp::connect_unix(&path)).await.unwrap();
        assert!(client.oob_enabled(), "{how}");
        let err = bounded(call(client.clone())).await;
        assert_eq!(
            err.to_string(),
            "`query-status` was sent, but QEMU closed the connection before answering (it \
             may have run): end of stream",
            "{how}"
        );
        assert_eq!(err.command(), Some("query-status"), "{how}");
        assert!(err.is_closed() && err.is_peer_gone(), "{how}: {err:?}");
        assert!(err.may_have_run() && !err.is_not_sent(), "{how}: {err:?}");
        // Once the connection is gone, a call is not sent at all.
        bounded(client.closed()).await;
        let later = bounded(call(client.clone())).await;
        assert_eq!(
            later.to_string(),
            "`query-status` was not sent: QEMU closed the connection (end of stream)",
            "{how}"
        );
        assert!(
            later.is_not_sent() && !later.may_have_run(),
            "{how}: {later:?}"
        );
        assert!(
            later.is_closed() && later.is_peer_gone(),
            "{how}: {later:?}"
        );
    }
}

/// Errors before anything is written are `is_not_sent`.
#[tokio::test]
async fn errors_before_the_write_are_not_sent() {
    let (_server, _listening, _dir, path) = server(false).await;
    let mut config = Config::new();
    config.negotiate_oob(false);
    let client = bounded(config.connect_unix(&path)).await.unwrap();
    let err = bounded(client.execute_oob_raw("query-status", None::<&()>))
        .await
        .unwrap_err();
    assert!(err.is_unsupported() && err.is_not_sent() && !err.may_have_run());
    client.close().await;
}

/// A real QEMU killed while a `ReconnectingClient` call waits: the error names the
/// command, says it was sent and not retried, and `may_have_run` is true.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnecting_call_lost_with_a_killed_qemu_names_its_command() {
    if !qmp::local::installed("qemu-system-x86_64") {
        skip::skipping("qemu-system-x86_64 is not installed");
        return;
    }
    let mut qemu = qmp::local::LocalQemu::system_none().expect("starting qemu-system-x86_64");
    let socket = qemu.socket().to_owned();
    // Waits until QEMU listens; QEMU serves the next client once this one has gone.
    bounded(qemu.connect(&Config::new()))
        .await
        .unwrap()
        .close()
        .await;
    let qmp = bounded(ReconnectingClient::unix(&Config::new(), &socket).connect())
        .await
        .unwrap();
    bounded(qmp.execute(&QueryStatus {})).await.unwrap();
    // Stopped first, so that the call is written but not answered before the kill.
    signal(&mut qemu, "-STOP");
    let call = tokio::spawn({
        let qmp = qmp.clone();
        async move { qmp.execute(&QueryStatus {}).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    signal(&mut qemu, "-KILL");
    let err = bounded(call).await.unwrap().unwrap_err();
    let sent = "`query-status` was sent, but QEMU closed the connection before answering (it \
                may have run): ";
    let note = format!(
        "; connection #1 to QEMU at unix:{} was lost; the command was NOT retried: check its \
         effect before calling again (the client is reconnecting by itself)",
        socket.display()
    );
    // QEMU had not read everything: Linux may report a reset instead of the end.
    let eof = format!("{sent}end of stream{note}");
    let reset = format!(
        "{sent}connection reset while reading: Connection reset by peer (os error 104){note}"
    );
    let text = err.to_string();
    assert!(text == eof || text == reset, "{text}");
    assert_eq!(err.command(), Some("query-status"));
    assert!(err.is_closed() && err.is_peer_gone(), "{err:?}");
    assert!(err.may_have_run() && !err.is_not_sent(), "{err:?}");
    let _ = qemu.child().wait();
    bounded(qmp.close()).await;
}

fn signal(qemu: &mut qmp::local::LocalQemu, sig: &str) {
    let pid = qemu.child().id().to_string();
    let status = std::process::Command::new("kill")
        .args([sig, &pid])
        .status()
        .expect("running kill");
    assert!(status.success(), "kill {sig} {pid}: {status}");
}

/// `{:?}` of an error reads as its message (what `main` returning
/// `Result<(), qmp::Error>` prints, and what `unwrap` panics with), with its kind;
/// `{:#?}` keeps the fields. `qmp::Limit` writes durations as the error texts do.
#[tokio::test]
async fn an_error_debug_form_is_its_message_and_kind() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such.sock");
    let err = bounded(qmp::connect_unix(&missing)).await.unwrap_err();
    let shown = err.to_string();
    assert!(shown.contains("no-such.sock"), "{shown}");
    assert_eq!(
        format!("{err:?}"),
        format!("Error({:?}): {shown}", err.kind())
    );
    let fields = format!("{err:#?}");
    assert!(
        fields.starts_with("Error {") && fields.contains("kind:"),
        "{fields}"
    );
    let main_says = format!("Error: {err:?}"); // what `main` prints
    assert!(!main_says.contains('{'), "{main_says}");

    let texts: Vec<String> = [5000, 2500, 1250, 200, 1]
        .into_iter()
        .map(|ms| qmp::Limit(Duration::from_millis(ms)).to_string())
        .collect();
    assert_eq!(texts, ["5 s", "2.5 s", "1.25 s", "200 ms", "1 ms"]);
}
