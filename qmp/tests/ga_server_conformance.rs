//! Conformance of the guest-agent mode: the same bytes sent to the real `qemu-ga` of
//! QEMU 10.0 (run on the host, `-m unix-listen`, a fresh one per case because it keeps
//! a half-read request across connections) and to `qmp::server` built with
//! `guest_agent()` must get the same replies: same JSON, same 0xFF before the same
//! replies, lines ending in `\n`, nothing more and nothing less. Every case ends with a
//! `guest-ping` whose reply marks the end, so a missing or an extra reply shows.
//!
//! Skipped (through `tests/support/skip.rs`) where qemu-ga is not installed.

#[path = "support/qemu_ga.rs"]
mod qemu_ga;
#[path = "support/skip.rs"]
mod skip;

use std::path::Path;
use std::time::Duration;

use qmp::server::Server;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

/// Bounds every wait, so that a hang fails instead of blocking the suite (not a
/// timing assertion: each exchange takes milliseconds).
const HANG: Duration = Duration::from_secs(30);

/// Sent after every case; its reply ends the case.
const END: &[u8] = b"\n{\"execute\": \"guest-ping\", \"id\": \"end\"}";

/// The cases: each is written chunk by chunk (a pause between chunks, so that the
/// agent reads a partial request before the rest).
const CASES: &[(&str, &[&[u8]])] = &[
    (
        "guest-sync-delimited without id",
        &[br#"{"execute": "guest-sync-delimited", "arguments": {"id": 123}}"#],
    ),
    (
        "guest-sync-delimited with ids",
        &[
            br#"{"execute": "guest-sync-delimited", "arguments": {"id": -5}, "id": "x"}"#,
            br#"{"execute": "guest-sync-delimited", "arguments": {"id": 9}, "id": {"a": [1, null]}}"#,
        ],
    ),
    (
        "what qmp::ga::Client sends to synchronise",
        &[b"\xff{\"execute\":\"guest-sync-delimited\",\"arguments\":{\"id\":77}}"],
    ),
    ("0xFF alone", &[b"\xff"]),
    ("0xFF twice", &[b"\xff\xff"]),
    ("0xFE", &[b"\xfe"]),
    (
        "0xFF in the middle of a request",
        &[
            br#"{"execute": "guest-pi"#,
            b"\xff",
            br#"{"execute": "guest-ping", "id": 3}"#,
        ],
    ),
    (
        "0xFF in a single-quoted string with escapes",
        &[b"{'execute': 'it\\'s \"x", b"\xff"],
    ),
    (
        "0xFF after an escape",
        &[br#"{"execute": "a\"#, b"\xff"],
    ),
    (
        "0xFF in a number and after one",
        &[b"{\"id\": -1.5e", b"\xff", b"{\"id\": 12", b"\xff"],
    ),
    (
        "0xFF after a keyword, and between two requests",
        &[
            b"{\"id\": tru\xff",
            b"{\"execute\": \"guest-ping\", \"id\": 1}\xff{\"execute\": \"guest-ping\", \"id\": 2}",
        ],
    ),
    ("an array", &[b"[1, 2]"]),
    ("a string", &[b"\"str\"\n"]),
    ("a number", &[b"42\n"]),
    ("an empty object", &[b"{}"]),
    (
        "an unknown command",
        &[
            br#"{"execute": "nope", "id": "a"}"#,
            br#"{"execute": "nope"}"#,
        ],
    ),
    (
        "qmp_capabilities (qemu-ga has no such command)",
        &[br#"{"execute": "qmp_capabilities", "id": 1}"#],
    ),
    (
        "guest-ping",
        &[
            br#"{"execute": "guest-ping"}"#,
            br#"{"execute": "guest-ping", "id": 1}"#,
            br#"{"execute": "guest-ping", "id": null}"#,
            br#"{"execute": "guest-ping", "arguments": {}, "id": 1.5}"#,
        ],
    ),
    (
        "guest-ping with a bad argument",
        &[br#"{"execute": "guest-ping", "arguments": {"x": 1}, "id": 2}"#],
    ),
    (
        "guest-sync",
        &[br#"{"execute": "guest-sync", "arguments": {"id": 5}, "id": 9}"#],
    ),
    (
        "guest-sync{,-delimited} with bad arguments",
        &[
            br#"{"execute": "guest-sync"}"#,
            br#"{"execute": "guest-sync-delimited", "arguments": {"id": "x", "y": 1}}"#,
            br#"{"execute": "guest-sync-delimited", "arguments": {"id": 5.0}}"#,
            br#"{"execute": "guest-sync-delimited", "arguments": {"id": 18446744073709551615}}"#,
            br#"{"execute": "guest-sync-delimited", "arguments": {"y": 1}}"#,
            br#"{"execute": "guest-sync-delimited", "arguments": {"id": 1, "x": 2}}"#,
        ],
    ),
    (
        "bad requests",
        &[
            br#"{"execute": "guest-ping", "foo": 1}"#,
            br#"{"id": 7}"#,
            br#"{"execute": 1}"#,
            br#"{"execute": "guest-ping", "arguments": []}"#,
            br#"{"exec-oob": "guest-ping", "id": 6}"#,
            br#"{"execute": "guest-ping", "execute": "guest-ping"}"#,
        ],
    ),
    (
        "JSON errors and garbage",
        &[
            br#"{"execute": }"#,
            br#"{"execute": "x",}"#,
            b"{\"execute\"; 1}\n",
            b"garbage more words\n",
            b"%% not json %%\n",
            b"\x01garbage\n",
            b"{\"a\": \"x\ny\"}",
        ],
    ),
    (
        "two requests in one write",
        &[br#"{"execute": "guest-ping", "id": 1}{"execute": "guest-ping", "id": 2}"#],
    ),
];

/// Connects, retrying while the agent has not created or opened its socket yet.
async fn connect(path: &Path) -> UnixStream {
    let deadline = tokio::time::Instant::now() + HANG;
    loop {
        match UnixStream::connect(path).await {
            Ok(s) => return s,
            Err(e) if tokio::time::Instant::now() > deadline => {
                panic!("{}: no agent listening after {HANG:?}: {e}", path.display())
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

/// One reply as seen on the wire.
#[derive(Debug, PartialEq)]
struct Reply {
    /// Preceded by 0xFF.
    delimited: bool,
    json: Value,
}

/// Writes the chunks and the end marker, and reads replies up to the marker's.
async fn exchange(mut stream: UnixStream, chunks: &[&[u8]]) -> Vec<Reply> {
    for chunk in chunks {
        stream.write_all(chunk).await.expect("writing a chunk");
        // Let the peer read this chunk on its own: partial requests are the point.
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    stream.write_all(END).await.expect("writing the end marker");
    let mut input = Vec::new();
    let mut replies = Vec::new();
    let read_all = async {
        loop {
            while let Some(nl) = input.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = input.drain(..=nl).collect();
                let mut line = &line[..line.len() - 1];
                assert!(
                    !line.ends_with(b"\r"),
                    "a line ending in CRLF: {}",
                    String::from_utf8_lossy(line)
                );
                let delimited = line.first() == Some(&0xFF);
                if delimited {
                    line = &line[1..];
                }
                let json: Value = serde_json::from_slice(line).unwrap_or_else(|e| {
                    panic!(
                        "a reply that is not JSON ({e}): {:?}",
                        String::from_utf8_lossy(line)
                    )
                });
                let end = json.get("id") == Some(&Value::from("end"));
                replies.push(Reply { delimited, json });
                if end {
                    return;
                }
            }
            let mut buf = [0u8; 4096];
            let n = stream.read(&mut buf).await.expect("reading replies");
            assert!(
                n > 0,
                "the peer closed the connection; replies so far: {replies:?}"
            );
            input.extend_from_slice(&buf[..n]);
        }
    };
    tokio::time::timeout(HANG, read_all)
        .await
        .expect("no reply to the end marker: a reply is missing or the peer hung");
    assert!(input.is_empty(), "bytes after the last reply: {input:?}");
    replies
}

#[tokio::test]
async fn the_agent_mode_answers_as_qemu_ga_does() {
    let Some(program) = qemu_ga::program() else {
        skip::skipping("qemu-ga is not installed (scripts/setup-qemu)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let ours_path = dir.path().join("ours.sock");
    let server = Server::builder().guest_agent().build();
    let _listening = server.listen_unix(&ours_path).await.unwrap();

    let mut failures = Vec::new();
    for (name, chunks) in CASES {
        let agent = qemu_ga::Agent::start(program.clone());
        let theirs = exchange(connect(&agent.socket()).await, chunks).await;
        drop(agent);
        let ours = exchange(connect(&ours_path).await, chunks).await;
        if theirs != ours {
            failures.push(format!(
                "{name}:\n  qemu-ga:    {theirs:?}\n  qmp::server: {ours:?}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "the server differs from qemu-ga:\n{}",
        failures.join("\n")
    );
}
