//! The handshake with peers that deviate from the protocol in ways QEMU itself does.

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixListener;

const GREETING: &str = r#"{"QMP": {"version": {"qemu": {"micro": 2, "minor": 0, "major": 10}, "package": ""}, "capabilities": ["oob"]}}"#;

/// An event QEMU 7.2 wrote to a new connection before its greeting (seen in CI; see
/// `read_greeting` in qmp/src/connect.rs for how QEMU comes to do it).
const STALE_EVENT: &str =
    r#"{"timestamp": {"seconds": 1796691205, "microseconds": 582146}, "event": "RESUME"}"#;

/// A peer that writes `before`, greets, reads `qmp_capabilities`, greets again if
/// `twice` (as qemu-storage-daemon 10.0 does when a client connects before its monitor
/// is attached to the chardev), then answers it and one `query-version`, echoing ids;
/// returns the lines it read.
async fn deviating_peer(listener: UnixListener, before: &str, twice: bool) -> Vec<String> {
    let (stream, _) = listener.accept().await.unwrap();
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    write
        .write_all(format!("{before}{GREETING}\r\n").as_bytes())
        .await
        .unwrap();
    let mut seen = Vec::new();
    let caps = lines.next_line().await.unwrap().unwrap();
    seen.push(caps.clone());
    let id = |line: &str| serde_json::from_str::<serde_json::Value>(line).unwrap()["id"].clone();
    let reply = serde_json::json!({"return": {}, "id": id(&caps)});
    let again = if twice {
        format!("{GREETING}\r\n")
    } else {
        String::new()
    };
    write
        .write_all(format!("{again}{reply}\r\n").as_bytes())
        .await
        .unwrap();
    let call = lines.next_line().await.unwrap().unwrap();
    seen.push(call.clone());
    let reply = serde_json::json!({"return": {"qemu": {"major": 10}}, "id": id(&call)});
    write
        .write_all(format!("{reply}\r\n").as_bytes())
        .await
        .unwrap();
    // Stay until the client has read the reply.
    let _ = lines.next_line().await;
    seen
}

/// Connects to a [`deviating_peer`] that writes `before` ahead of its greeting (and
/// greets again if `twice`), checks the handshake succeeds and a call then works, and
/// checks what the peer read.
async fn handshake_survives(before: &str, twice: bool, what: &str) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("qmp.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let before = before.to_owned();
    let peer = tokio::spawn(async move { deviating_peer(listener, &before, twice).await });
    let within = Duration::from_secs(10);
    let client = tokio::time::timeout(within, qmp::connect_unix(&path))
        .await
        .expect("connect finished")
        .unwrap_or_else(|e| panic!("{what} does not fail the handshake: {e}"));
    let version = client
        .execute_raw("query-version", None::<&()>)
        .await
        .expect("the connection works after it");
    assert_eq!(version["qemu"]["major"], 10);
    client.close().await;
    let seen = tokio::time::timeout(within, peer).await.unwrap().unwrap();
    assert!(seen[0].contains("qmp_capabilities"), "{seen:?}");
    assert!(seen[1].contains("query-version"), "{seen:?}");
}

#[tokio::test]
async fn a_second_greeting_during_negotiation_is_skipped() {
    handshake_survives("", true, "a repeated greeting").await;
}

/// An event before the greeting (QEMU 7.2) is dropped, not taken for a bad greeting;
/// the session then works.
#[tokio::test]
async fn an_event_before_the_greeting_is_skipped() {
    handshake_survives(
        &format!("{STALE_EVENT}\r\n"),
        false,
        "an event before the greeting",
    )
    .await;
}

/// The proxy's own connection to QEMU skips such an event too, and passes QEMU's
/// greeting on to its clients unchanged.
#[cfg(feature = "server")]
#[tokio::test]
async fn the_proxy_skips_an_event_before_qemus_greeting() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("qmp.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let before = format!("{STALE_EVENT}\r\n");
    let peer = tokio::spawn(async move { deviating_peer(listener, &before, false).await });
    let proxy = tokio::time::timeout(
        Duration::from_secs(10),
        qmp::proxy::ProxyConfig::new().connect_unix(&path),
    )
    .await
    .expect("connect finished")
    .expect("an event before the greeting does not fail the proxy's handshake");
    assert_eq!(proxy.greeting(), GREETING);
    proxy.close();
    peer.abort();
}

/// A socket of QEMU's human monitor (`-monitor unix:…`), the usual wrong socket: the
/// error says what it is and what to give QEMU instead.
#[tokio::test]
async fn a_human_monitor_socket_is_named_as_such() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hmp.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let peer = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        stream
            .write_all(b"QEMU 10.0.2 monitor - type 'help' for more information\r\n(qemu) ")
            .await
            .unwrap();
        let mut rest = Vec::new();
        let _ = tokio::io::AsyncReadExt::read_to_end(&mut stream, &mut rest).await;
    });
    let err = tokio::time::timeout(Duration::from_secs(10), qmp::connect_unix(&path))
        .await
        .expect("connect finished")
        .expect_err("an HMP socket is not QMP");
    assert_eq!(
        err.to_string(),
        "QMP handshake failed: expected a QMP greeting, got: QEMU 10.0.2 monitor - type \
         'help' for more information; this is QEMU's human monitor (HMP), not QMP: give \
         QEMU `-qmp unix:PATH,server=on,wait=off` (or `-mon chardev=ID,mode=control`) for \
         the socket to connect to"
    );
    peer.abort();
}
