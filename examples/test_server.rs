//! Testing your own QMP code without QEMU, against `qmp::server` (feature `server`):
//! a scripted peer that speaks the protocol as QEMU's monitor does, answers the
//! commands you register, sends the events you emit and misbehaves on request.
//!
//! ```sh
//! cargo run --example test_server --features server
//! ```
//!
//! It needs no QEMU and takes no argument: the code under test (`pause`, below) runs
//! against four scripted QEMUs (running, already paused, refusing `stop`, too slow)
//! and each outcome is checked; it prints one line per case and exits with 1 when one
//! fails. In your crate the same code goes into `#[tokio::test]` functions.
//! `tests/examples.rs` runs it.

use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use qemu_qapi::qmp::server::{Faults, QmpError, Server};
use qemu_qapi::types::{RunState, StatusInfo};
use qemu_qapi::{commands, events, qmp};

/// The code under test: pauses the VM if it runs, and returns once QEMU says it
/// stopped. `Ok(false)` when it was not running.
async fn pause(client: &qmp::Client) -> qmp::Result<bool> {
    let status = client.execute(&commands::QueryStatus {}).await?;
    if !status.running {
        return Ok(false);
    }
    client
        .execute_and_wait(&commands::Stop {}, |_: &events::Stop| true)
        .await?;
    Ok(true)
}

/// How the scripted QEMU answers `stop`.
#[derive(Clone, Copy)]
enum OnStop {
    /// Emits `STOP` (before its reply, as QEMU may) and answers `{}`.
    Stops,
    /// Answers with QEMU's error.
    Refuses,
}

/// A scripted QEMU whose VM is `running` or not; counts the `stop` commands it gets.
fn fake_qemu(running: bool, on_stop: OnStop, stops: Arc<AtomicUsize>) -> Server {
    Server::builder()
        .version(10, 0, 0)
        // Typed handlers: the command's arguments decoded, its reply type checked.
        .handle::<commands::QueryStatus, _, _>(move |_args, _ctx| async move {
            let state = if running {
                RunState::Running
            } else {
                RunState::Paused
            };
            Ok(StatusInfo::new(running, state))
        })
        .handle::<commands::Stop, _, _>(move |_args, ctx| {
            stops.fetch_add(1, Ordering::SeqCst);
            async move {
                match on_stop {
                    OnStop::Stops => {
                        let sent = ctx.server.emit_to(ctx.client, &events::Stop).await;
                        sent.map_err(|e| QmpError::generic(e.to_string()))?;
                        Ok(qmp::Empty)
                    }
                    OnStop::Refuses => Err(QmpError::generic("Migration is in progress")),
                }
            }
        })
        .build()
}

/// Runs `pause` against `server` with `config`, over an in-memory stream (a server
/// can also listen on a Unix socket or a TCP port: `Server::listen_unix`).
async fn pause_against(server: &Server, config: &qmp::Config) -> qmp::Result<bool> {
    let (ours, theirs) = tokio::io::duplex(64 * 1024);
    let peer = server.clone();
    tokio::spawn(async move { peer.serve_stream(theirs).await });
    let client = config.connect_stream(ours).await?;
    let result = pause(&client).await;
    client.close().await;
    result
}

/// An outcome as a line of text.
fn show(outcome: &qmp::Result<bool>) -> String {
    match outcome {
        Ok(paused) => format!("returned {paused}"),
        Err(e) => format!("error: {e}"),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let mut failed = 0;
    let mut check = |case: &str, ok: bool, what: String| {
        println!("{} {case}: {what}", if ok { "ok" } else { "FAILED" });
        failed += usize::from(!ok);
    };
    let config = qmp::Config::new();

    let stops = Arc::new(AtomicUsize::new(0));
    let server = fake_qemu(true, OnStop::Stops, stops.clone());
    let got = pause_against(&server, &config).await;
    let n = stops.load(Ordering::SeqCst);
    check(
        "running VM",
        matches!(got, Ok(true)) && n == 1,
        format!("{}, {n} stop", show(&got)),
    );

    let stops = Arc::new(AtomicUsize::new(0));
    let server = fake_qemu(false, OnStop::Stops, stops.clone());
    let got = pause_against(&server, &config).await;
    let n = stops.load(Ordering::SeqCst);
    check(
        "paused VM",
        matches!(got, Ok(false)) && n == 0,
        format!("{}, {n} stop", show(&got)),
    );

    let server = fake_qemu(true, OnStop::Refuses, Arc::default());
    let got = pause_against(&server, &config).await;
    let ok = matches!(&got, Err(e) if e.qmp_error().is_some_and(|q| q.desc.contains("Migration")));
    check("stop refused", ok, show(&got));

    // Faults: the scripted QEMU answers `stop` late; the client's timeout fires first.
    let server = fake_qemu(true, OnStop::Stops, Arc::default());
    server.set_faults(Faults {
        reply_delay: Some(Duration::from_secs(2)),
        only_command: Some("stop".to_owned()),
        ..Faults::none()
    });
    let mut impatient = qmp::Config::new();
    impatient.call_timeout(Some(Duration::from_millis(200)));
    let got = pause_against(&server, &impatient).await;
    check(
        "slow QEMU",
        matches!(&got, Err(e) if e.is_timeout()),
        show(&got),
    );

    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
