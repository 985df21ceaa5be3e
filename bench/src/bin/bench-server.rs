//! The benchmark's own QMP server, for the workloads QEMU cannot drive:
//!
//! - `bench-server flood --socket PATH [--events N] [--at-negotiation]`: sends a client
//!   N small QEMU-shaped events as fast as the socket takes them (see
//!   `bench_common::flood_event`), then answers commands until the client leaves. The
//!   flood starts right after the reply to the client's first command after
//!   `qmp_capabilities`, so that every client can subscribe first (a client whose
//!   subscriptions need a connected handle could otherwise not avoid losing the first
//!   events); with `--at-negotiation` it starts right after the `qmp_capabilities`
//!   reply.
//! - `bench-server idle --socket PATH`: greets, negotiates and answers `query-version`,
//!   for the idle-connections workload when `qmp::server` is not built.
//!
//! It offers `oob` in its greeting, answers `qmp_capabilities` and echoes ids, like
//! QEMU's monitor; it checks nothing else (the clients are the subject, not the server).

use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};

const GREETING: &str = r#"{"QMP": {"version": {"qemu": {"micro": 2, "minor": 0, "major": 10}, "package": "bench-server"}, "capabilities": ["oob"]}}"#;

fn reply(id: Option<&serde_json::Value>, ret: &str) -> String {
    match id {
        Some(id) => format!("{{\"return\": {ret}, \"id\": {id}}}\n"),
        None => format!("{{\"return\": {ret}}}\n"),
    }
}

/// Splits the JSON objects out of `buf` (QEMU's monitor parses a stream of JSON values,
/// with or without newlines between them: `qemu.qmp` sends none), leaving an incomplete
/// tail in place.
fn take_messages(buf: &mut Vec<u8>) -> Vec<Result<serde_json::Value, ()>> {
    let mut out = Vec::new();
    let mut stream = serde_json::Deserializer::from_slice(buf).into_iter::<serde_json::Value>();
    let mut used = 0;
    loop {
        match stream.next() {
            Some(Ok(v)) => {
                used = stream.byte_offset();
                out.push(Ok(v));
            }
            Some(Err(e)) if e.is_eof() => break,
            Some(Err(_)) => {
                // Like QEMU: report the error and drop what was buffered.
                out.push(Err(()));
                used = buf.len();
                break;
            }
            None => {
                used = buf.len();
                break;
            }
        }
    }
    buf.drain(..used);
    out
}

async fn serve(
    stream: UnixStream,
    flood: Arc<Vec<u8>>,
    at_negotiation: bool,
) -> std::io::Result<()> {
    let (mut r, mut w) = stream.into_split();
    w.write_all(GREETING.as_bytes()).await?;
    w.write_all(b"\n").await?;
    let mut buf = Vec::new();
    // 0: not negotiated; 1: negotiated, flood not sent; 2: flood sent.
    let mut stage = 0u8;
    let mut chunk = vec![0u8; 1 << 16];
    loop {
        let n = r.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        for msg in take_messages(&mut buf) {
            let Ok(msg) = msg else {
                w.write_all(
                    b"{\"error\": {\"class\": \"GenericError\", \"desc\": \"JSON parse error\"}}\n",
                )
                .await?;
                continue;
            };
            let name = msg
                .get("execute")
                .or_else(|| msg.get("exec-oob"))
                .and_then(|n| n.as_str())
                .unwrap_or("");
            let id = msg.get("id");
            let flood_now = match name {
                "qmp_capabilities" if stage == 0 => {
                    w.write_all(reply(id, "{}").as_bytes()).await?;
                    stage = 1;
                    at_negotiation
                }
                "query-version" => {
                    let v = r#"{"qemu": {"micro": 2, "minor": 0, "major": 10}, "package": "bench-server"}"#;
                    w.write_all(reply(id, v).as_bytes()).await?;
                    stage == 1
                }
                "quit" => {
                    w.write_all(reply(id, "{}").as_bytes()).await?;
                    return Ok(());
                }
                _ => {
                    w.write_all(reply(id, "{}").as_bytes()).await?;
                    stage == 1
                }
            };
            if flood_now && stage == 1 {
                stage = 2;
                if !flood.is_empty() {
                    w.write_all(&flood).await?;
                }
            }
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_default();
    let (mut socket, mut events, mut at_negotiation) = (String::new(), 200_000usize, false);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--socket" => socket = args.next().unwrap_or_default(),
            "--at-negotiation" => at_negotiation = true,
            "--events" => events = args.next().and_then(|v| v.parse().ok()).unwrap_or(events),
            _ => {}
        }
    }
    if socket.is_empty() || !matches!(mode.as_str(), "flood" | "idle") {
        eprintln!("usage: bench-server flood|idle --socket PATH [--events N] [--at-negotiation]");
        std::process::exit(2);
    }
    let mut flood = String::new();
    if mode == "flood" {
        for i in 0..events {
            bench_common::flood_event(&mut flood, i);
        }
    }
    let flood = Arc::new(flood.into_bytes());
    let _ = std::fs::remove_file(&socket);
    let listener = UnixListener::bind(&socket).unwrap_or_else(|e| {
        eprintln!("bench-server: bind {socket}: {e}");
        std::process::exit(1)
    });
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let flood = flood.clone();
                tokio::spawn(async move {
                    if let Err(e) = serve(stream, flood, at_negotiation).await {
                        if e.kind() != std::io::ErrorKind::BrokenPipe
                            && e.kind() != std::io::ErrorKind::ConnectionReset
                        {
                            eprintln!("bench-server: {e}");
                        }
                    }
                });
            }
            Err(e) => eprintln!("bench-server: accept: {e}"),
        }
    }
}
