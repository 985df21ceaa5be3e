//! Serving from the command line (`qmp serve`): a replayed transcript or a minimal
//! server, as a QMP monitor or a guest agent, on a Unix or TCP socket, optionally
//! recording its traffic, until stopped.

use std::path::PathBuf;
use std::sync::Arc;

use serde_json::json;

use super::replay::Replay;
use super::transcript::Recorder;
use super::{ListenAddr, Listening, Server};

/// What `qmp serve` does.
#[derive(Debug, Clone, Default)]
pub struct ServeOptions {
    /// Listen on this Unix socket path.
    pub socket: Option<PathBuf>,
    /// Listen on this TCP address (`HOST:PORT`).
    pub tcp: Option<String>,
    /// Replay this transcript, to every connection from its start
    /// ([`ReplayMode::EverySession`](super::replay::ReplayMode::EverySession)). Without
    /// it, the server answers only `query-version` (every other command gets
    /// `CommandNotFound`).
    pub replay: Option<PathBuf>,
    /// Record every session's traffic to this transcript file (owner-only, secrets
    /// redacted: see [`Recorder`]).
    pub record: Option<PathBuf>,
    /// Record secret members as sent instead of redacting them.
    pub record_secrets: bool,
    /// Speak as the guest agent (`qemu-ga`) instead of a QMP monitor: no greeting, no
    /// negotiation, `guest-sync`, `guest-sync-delimited` (0xFF before its reply) and
    /// `guest-ping` built in (see [`ServerBuilder::guest_agent`]). Without `replay` it
    /// also answers `guest-info` (version 10.0.0, those four commands); with it, the
    /// syncs are answered afresh and the rest from the transcript.
    ///
    /// [`ServerBuilder::guest_agent`]: super::ServerBuilder::guest_agent
    pub guest_agent: bool,
}

/// The commands `qmp serve --guest-agent` answers without a transcript.
const AGENT_COMMANDS: [&str; 4] = [
    "guest-info",
    "guest-ping",
    "guest-sync",
    "guest-sync-delimited",
];

/// Builds the server `options` describe and starts listening; the server runs until
/// the returned [`Listening`] is dropped.
///
/// # Errors
/// A message naming what failed: no address given, an unreadable transcript, a file
/// that cannot be created, or a socket that cannot be bound.
pub async fn start(options: &ServeOptions) -> Result<(Server, Listening), String> {
    let mut builder = Server::builder();
    if let Some(path) = &options.record {
        let rec = Recorder::create(path)
            .map_err(|e| format!("{}: {e}", path.display()))?
            .keep_secrets(options.record_secrets);
        builder = builder.traffic_hook(Arc::new(rec));
    }
    if options.guest_agent {
        builder = builder.guest_agent();
    }
    builder = match &options.replay {
        Some(path) => builder.replay(Replay::from_file(path).map_err(|e| e.to_string())?),
        None if options.guest_agent => {
            builder.handle_raw("guest-info", false, |_ctx, _args| async {
                let commands: Vec<_> = AGENT_COMMANDS
                    .iter()
                    .map(|name| json!({"name": name, "enabled": true, "success-response": true}))
                    .collect();
                Ok(json!({"version": "10.0.0", "supported_commands": commands}))
            })
        }
        None => builder.version(10, 0, 0).capabilities(["oob"]).handle_raw(
            "query-version",
            false,
            |_ctx, _args| async {
                Ok(json!({"qemu": {"major": 10, "minor": 0, "micro": 0}, "package": "qmp::server"}))
            },
        ),
    };
    let server = builder.build();
    let listening = match (&options.socket, &options.tcp) {
        (Some(path), None) => server
            .listen_unix(path)
            .await
            .map_err(|e| format!("{}: {e}", path.display()))?,
        (None, Some(addr)) => server
            .listen_tcp(addr.as_str())
            .await
            .map_err(|e| format!("{addr}: {e}"))?,
        _ => return Err("`serve` needs exactly one of --socket PATH or --tcp HOST:PORT".into()),
    };
    Ok((server, listening))
}

/// Runs [`start`] and serves until Ctrl-C or SIGTERM, printing the address to stderr.
///
/// # Errors
/// As [`start`].
pub async fn run(options: &ServeOptions) -> Result<(), String> {
    let (server, listening) = start(options).await?;
    match listening.addr() {
        ListenAddr::Unix(p) => eprintln!("qmp serve: listening on {}", p.display()),
        ListenAddr::Tcp(a) => eprintln!("qmp serve: listening on {a}"),
    }
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| format!("signal handler: {e}"))?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    server.shutdown();
    drop(listening);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn serves_a_guest_agent() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("qga.sock");
        let (_server, _listening) = start(&ServeOptions {
            socket: Some(socket.clone()),
            guest_agent: true,
            ..ServeOptions::default()
        })
        .await
        .unwrap();
        let agent = tokio::time::timeout(
            std::time::Duration::from_secs(60),
            crate::ga::connect_unix(&socket),
        )
        .await
        .expect("the agent answers the sync")
        .unwrap();
        let info = agent.execute_raw("guest-info", None::<&()>).await.unwrap();
        assert_eq!(info["version"], "10.0.0");
        assert_eq!(info["supported_commands"].as_array().unwrap().len(), 4);
        agent.execute_raw("guest-ping", None::<&()>).await.unwrap();
        let e = agent
            .execute_raw("query-version", None::<&()>)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("has not been found"), "{e}");
    }

    #[tokio::test]
    async fn needs_one_address() {
        let err = start(&ServeOptions::default()).await.unwrap_err();
        assert!(err.contains("--socket"), "{err}");
        let err = start(&ServeOptions {
            socket: Some("/nonexistent-dir/x.sock".into()),
            ..ServeOptions::default()
        })
        .await
        .unwrap_err();
        assert!(err.contains("/nonexistent-dir/x.sock"), "{err}");
    }
}
