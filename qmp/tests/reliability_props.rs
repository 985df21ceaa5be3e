//! Property tests of the client's framing and decoding, driven by a raw peer over an
//! in-memory stream:
//! * random splits of the server's byte stream and random interleavings of events
//!   and (reordered) replies: every caller gets its own reply, every event arrives in
//!   order;
//! * a fuzz-style run of the message decoder: arbitrary bytes (and QMP-shaped
//!   garbage) from the peer never panic, and every pending caller gets an answer or an
//!   error once the peer goes away.

use std::time::Duration;

use proptest::prelude::*;
use qmp::codec::LineReader;
use qmp::message::Incoming;
use qmp::Config;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, DuplexStream};

const GREETING: &str = r#"{"QMP": {"version": {"qemu": {"micro": 2, "minor": 0, "major": 10}, "package": ""}, "capabilities": []}}"#;
const HANG: Duration = Duration::from_secs(20);

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Reads one request line and returns it parsed.
async fn read_request(r: &mut BufReader<tokio::io::ReadHalf<DuplexStream>>) -> Value {
    let mut line = String::new();
    r.read_line(&mut line).await.unwrap();
    serde_json::from_str(&line).unwrap()
}

/// Greets and answers `qmp_capabilities`, returning the halves of the server end.
async fn handshake(
    server: DuplexStream,
) -> (
    BufReader<tokio::io::ReadHalf<DuplexStream>>,
    tokio::io::WriteHalf<DuplexStream>,
) {
    let (r, mut w) = tokio::io::split(server);
    let mut r = BufReader::new(r);
    w.write_all(format!("{GREETING}\r\n").as_bytes())
        .await
        .unwrap();
    let caps = read_request(&mut r).await;
    assert_eq!(caps["execute"], "qmp_capabilities");
    let mut reply = json!({"return": {}});
    if let Some(id) = caps.get("id") {
        reply["id"] = id.clone();
    }
    w.write_all(format!("{reply}\r\n").as_bytes())
        .await
        .unwrap();
    (r, w)
}

#[derive(Debug, Clone)]
struct Script {
    /// Reply order: a permutation of 0..n.
    order: Vec<usize>,
    /// For each event, the number of replies sent before it.
    events_at: Vec<usize>,
    /// Chunk sizes the byte stream is cut into (cycled).
    cuts: Vec<usize>,
    /// Per message: end lines with `\r\n` (QEMU) rather than `\n`.
    crlf: Vec<bool>,
}

fn script() -> impl Strategy<Value = Script> {
    (1usize..8).prop_flat_map(|n| {
        (
            Just((0..n).collect::<Vec<_>>()).prop_shuffle(),
            prop::collection::vec(0..=n, 0..12),
            prop::collection::vec(1usize..80, 1..16),
            prop::collection::vec(any::<bool>(), 32),
        )
            .prop_map(|(order, mut events_at, cuts, crlf)| {
                events_at.sort_unstable();
                Script {
                    order,
                    events_at,
                    cuts,
                    crlf,
                }
            })
    })
}

async fn run_script(s: Script) {
    let (client_end, server_end) = tokio::io::duplex(256);
    let n = s.order.len();
    let n_events = s.events_at.len();
    let server = tokio::spawn(async move {
        let (mut r, mut w) = handshake(server_end).await;
        let mut ids = vec![Value::Null; n];
        for _ in 0..n {
            let req = read_request(&mut r).await;
            let k = req["arguments"]["k"].as_u64().unwrap() as usize;
            ids[k] = req["id"].clone();
        }
        // Compose: replies in `order`, events inserted after `events_at[i]` replies.
        let mut messages = Vec::new();
        let mut ev = s.events_at.iter().enumerate().peekable();
        for (sent, &k) in s.order.iter().enumerate() {
            while let Some((i, _)) = ev.next_if(|(_, at)| **at <= sent) {
                messages.push(json!({"event": "E", "data": {"i": i}, "timestamp": {"seconds": 1, "microseconds": 2}}));
            }
            messages.push(json!({"return": {"k": k}, "id": ids[k]}));
        }
        for (i, _) in ev {
            messages.push(json!({"event": "E", "data": {"i": i}, "timestamp": {"seconds": 1, "microseconds": 2}}));
        }
        let mut bytes = Vec::new();
        for (i, m) in messages.iter().enumerate() {
            bytes.extend_from_slice(m.to_string().as_bytes());
            bytes.extend_from_slice(if s.crlf[i % s.crlf.len()] {
                b"\r\n"
            } else {
                b"\n"
            });
        }
        let mut pos = 0;
        for cut in s.cuts.iter().cycle() {
            if pos >= bytes.len() {
                break;
            }
            let end = (pos + cut).min(bytes.len());
            w.write_all(&bytes[pos..end]).await.unwrap();
            w.flush().await.unwrap();
            tokio::task::yield_now().await;
            pos = end;
        }
        // Keep the connection open until the client is done.
        let mut rest = String::new();
        let _ = r.read_line(&mut rest).await;
    });
    let client = tokio::time::timeout(HANG, Config::new().connect_stream(client_end))
        .await
        .expect("connect hung")
        .expect("connect");
    let mut events = client.subscribe_raw();
    let calls: Vec<_> = (0..n)
        .map(|k| {
            let c = client.clone();
            tokio::spawn(async move { (k, c.execute_raw("echo", Some(&json!({ "k": k }))).await) })
        })
        .collect();
    for call in calls {
        let (k, r) = tokio::time::timeout(HANG, call)
            .await
            .expect("call hung")
            .unwrap();
        assert_eq!(r.unwrap(), json!({ "k": k }));
    }
    for i in 0..n_events {
        let e = tokio::time::timeout(HANG, events.next())
            .await
            .expect("event hung")
            .unwrap()
            .unwrap();
        assert_eq!(e.name(), "E");
        assert_eq!(e.to_value()["data"]["i"], json!(i));
    }
    client.close().await;
    let _ = tokio::time::timeout(HANG, server).await;
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn random_splits_and_interleavings_route_every_reply_and_event(s in script()) {
        runtime().block_on(run_script(s));
    }
}

/// Bytes a broken peer might send: QMP-shaped fragments and raw noise.
fn garbage() -> impl Strategy<Value = Vec<u8>> {
    let fragment = prop_oneof![
        Just(b"{\"return\": {}, \"id\": 1}\n".to_vec()),
        Just(b"{\"return\": {}, \"id\": 0}\n".to_vec()),
        Just(b"{\"error\": {\"class\": \"GenericError\", \"desc\": \"x\"}, \"id\": 0}\n".to_vec()),
        Just(b"{\"error\": 5, \"id\": 0}\n".to_vec()),
        Just(
            b"{\"event\": \"E\", \"timestamp\": {\"seconds\": 1, \"microseconds\": 1}}\n".to_vec()
        ),
        Just(b"{\"event\": 7}\n".to_vec()),
        Just(b"{\"id\": \"0\", \"return\": [1, 2]}\n".to_vec()),
        Just(b"{\"QMP\": {}}\n".to_vec()),
        Just(b"[]\n".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b"{".to_vec()),
        Just(b"}".to_vec()),
        Just(b"\"".to_vec()),
        prop::collection::vec(any::<u8>(), 0..40),
    ];
    prop::collection::vec(fragment, 0..12).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// The decoder itself: lines from arbitrary bytes classify or fail, never panic.
    #[test]
    fn decoder_never_panics(bytes in garbage()) {
        runtime().block_on(async move {
            let mut r = LineReader::with_max_line(&bytes[..], 64);
            for _ in 0..64 {
                match r.next_line().await {
                    Ok(Some(line)) => { let _ = Incoming::parse(line); }
                    Ok(None) => break,
                    Err(_) => {}
                }
            }
        });
    }

    /// The whole client fed garbage after a good handshake: no panic, and the pending
    /// callers all finish (answer or error) once the peer is gone.
    #[test]
    fn client_fed_garbage_answers_every_caller(bytes in garbage()) {
        runtime().block_on(async move {
            let (client_end, server_end) = tokio::io::duplex(1024);
            let server = tokio::spawn(async move {
                let (mut r, mut w) = handshake(server_end).await;
                for _ in 0..3 {
                    read_request(&mut r).await;
                }
                let _ = w.write_all(&bytes).await;
                // Then the peer goes away.
            });
            let client = tokio::time::timeout(HANG, Config::new().connect_stream(client_end))
                .await
                .expect("connect hung")
                .expect("connect");
            let calls: Vec<_> = (0..3)
                .map(|k| {
                    let c = client.clone();
                    tokio::spawn(async move { c.execute_raw("echo", Some(&json!({ "k": k }))).await })
                })
                .collect();
            for call in calls {
                let r = tokio::time::timeout(HANG, call).await.expect("a caller hung").unwrap();
                if let Ok(v) = r {
                    // Only a well-formed reply with a matching id may succeed.
                    assert!(v.is_object() || v.is_array(), "{v}");
                }
            }
            let _ = server.await;
        });
    }
}
