//! The client against a scripted peer over in-memory streams (`tokio::io::duplex`):
//! framing, id routing, timeouts, cancellation, disconnects, events.

use std::time::Duration;

use qmp::{Client, Command, Config, ConnectionState, ErrorKind, Event, TimeoutStage};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::io::{
    AsyncBufReadExt, AsyncWriteExt, BufReader, DuplexStream, Lines, ReadHalf, WriteHalf,
};

struct Peer<S = DuplexStream> {
    lines: Lines<BufReader<ReadHalf<S>>>,
    w: WriteHalf<S>,
}

impl<S: tokio::io::AsyncRead + tokio::io::AsyncWrite> Peer<S> {
    async fn recv(&mut self) -> Value {
        let line = self
            .lines
            .next_line()
            .await
            .unwrap()
            .expect("client closed");
        serde_json::from_str(&line).unwrap()
    }
    async fn send(&mut self, line: &str) {
        self.w.write_all(line.as_bytes()).await.unwrap();
        self.w.write_all(b"\r\n").await.unwrap();
    }
    async fn reply(&mut self, req: &Value, ret: Value) {
        let mut r = json!({"return": ret});
        if let Some(id) = req.get("id") {
            r["id"] = id.clone();
        }
        self.send(&r.to_string()).await;
    }
}

const GREETING: &str = r#"{"QMP": {"version": {"qemu": {"micro": 2, "minor": 0, "major": 10}, "package": "test"}, "capabilities": ["oob"]}}"#;

async fn pair_with(config: &Config, buffer: usize) -> (Client, Peer) {
    let (a, b) = tokio::io::duplex(buffer);
    let peer = async move {
        let (r, w) = tokio::io::split(b);
        let mut p = Peer {
            lines: BufReader::new(r).lines(),
            w,
        };
        p.send(GREETING).await;
        let caps = p.recv().await;
        assert_eq!(caps["execute"], "qmp_capabilities");
        assert_eq!(caps["arguments"]["enable"], json!(["oob"]));
        p.reply(&caps, json!({})).await;
        p
    };
    let (client, peer) = tokio::join!(config.connect_stream(a), peer);
    (client.unwrap(), peer)
}

async fn pair() -> (Client, Peer) {
    pair_with(&Config::new(), 1 << 16).await
}

#[derive(Serialize)]
struct QueryVersion {}
#[derive(Deserialize, Debug)]
#[allow(dead_code)]
struct VersionInfo {
    qemu: Triple,
    package: String,
}
#[derive(Deserialize, Debug)]
#[allow(dead_code)]
struct Triple {
    major: u32,
    minor: u32,
    micro: u32,
}
impl Command for QueryVersion {
    const NAME: &'static str = "query-version";
    type Reply = VersionInfo;
}

#[derive(Deserialize, Debug, PartialEq)]
struct Tick {
    n: u32,
}
impl Event for Tick {
    const NAME: &'static str = "TICK";
}

fn version_json() -> Value {
    json!({"qemu": {"major": 10, "minor": 0, "micro": 2}, "package": "x", "newer-field": [1]})
}

#[tokio::test]
async fn handshake_and_typed_call() {
    let (client, mut peer) = pair().await;
    assert!(client.oob_enabled());
    assert_eq!(client.connection_state(), ConnectionState::Running);
    assert_eq!(client.greeting().qmp.version.qemu.micro, 2);
    let call = client.execute(&QueryVersion {});
    let serve = async {
        let req = peer.recv().await;
        assert_eq!(req["execute"], "query-version");
        assert!(
            req.get("arguments").is_none(),
            "empty arguments are omitted"
        );
        assert!(req["id"].is_u64());
        peer.reply(&req, version_json()).await;
    };
    let (v, ()) = tokio::join!(call, serve);
    assert_eq!(v.unwrap().qemu.major, 10);
}

#[tokio::test]
async fn out_of_order_replies_reach_their_callers() {
    let (client, mut peer) = pair().await;
    let calls = futures_join_all(
        (0..5)
            .map(|i| {
                let c = client.clone();
                async move { c.execute_raw("echo", Some(&json!({"i": i}))).await }
            })
            .collect(),
    );
    let serve = async {
        let mut reqs = Vec::new();
        for _ in 0..5 {
            reqs.push(peer.recv().await);
        }
        // Unknown ids, foreign ids and an id-less stray reply are dropped.
        peer.send(r#"{"return": {}, "id": 999999}"#).await;
        peer.send(r#"{"return": {}, "id": "not-ours"}"#).await;
        peer.send(r#"{"return": {}}"#).await;
        for req in reqs.iter().rev() {
            peer.reply(req, json!({"i": req["arguments"]["i"]})).await;
        }
    };
    let (results, ()) = tokio::join!(calls, serve);
    for (i, r) in results.into_iter().enumerate() {
        assert_eq!(r.unwrap(), json!({"i": i}));
    }
    // The connection is still fine.
    let serve = async {
        let req = peer.recv().await;
        peer.reply(&req, json!(7)).await;
    };
    let (r, ()) = tokio::join!(client.execute_raw("x", None::<&()>), serve);
    assert_eq!(r.unwrap(), json!(7));
}

/// Join futures without pulling in the `futures` crate.
async fn futures_join_all<F: std::future::Future + Send + 'static>(futs: Vec<F>) -> Vec<F::Output>
where
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futs.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

#[tokio::test]
async fn reply_split_into_single_bytes() {
    let (client, mut peer) = pair().await;
    let serve = async {
        let req = peer.recv().await;
        let line = format!("{}\r\n", json!({"return": version_json(), "id": req["id"]}));
        for b in line.as_bytes() {
            peer.w.write_all(&[*b]).await.unwrap();
            peer.w.flush().await.unwrap();
        }
    };
    let (v, ()) = tokio::join!(client.execute(&QueryVersion {}), serve);
    assert_eq!(v.unwrap().qemu.minor, 0);
}

#[tokio::test]
async fn qmp_errors_are_typed() {
    let (client, mut peer) = pair().await;
    let serve = async {
        let req = peer.recv().await;
        peer.send(
            &json!({"error": {"class": "CommandNotFound", "desc": "The command nope has not been found"}, "id": req["id"]})
                .to_string(),
        )
        .await;
    };
    let (r, ()) = tokio::join!(client.execute_raw("nope", None::<&()>), serve);
    let e = r.unwrap_err();
    assert!(e.is_qmp_error());
    assert_eq!(e.qmp_error().unwrap().class, "CommandNotFound");
    assert_eq!(e.command(), Some("nope"));
    assert!(e.raw().unwrap().contains("has not been found"));
    assert!(!e.is_closed());
}

#[tokio::test]
async fn decode_errors_name_command_path_and_raw_reply() {
    let (client, mut peer) = pair().await;
    let serve = async {
        let req = peer.recv().await;
        peer.reply(
            &req,
            json!({"qemu": {"major": "ten", "minor": 0, "micro": 2}, "package": ""}),
        )
        .await;
    };
    let (r, ()) = tokio::join!(client.execute(&QueryVersion {}), serve);
    let e = r.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Decode);
    assert_eq!(e.command(), Some("query-version"));
    assert_eq!(e.decode_path(), Some("return.qemu.major"));
    assert!(e.raw().unwrap().contains("\"ten\""));
    assert!(e.to_string().contains("return.qemu.major"), "{e}");
}

#[tokio::test]
async fn garbage_fails_every_pending_caller_with_the_first_error() {
    let (client, mut peer) = pair().await;
    let calls = futures_join_all(
        (0..3)
            .map(|_| {
                let c = client.clone();
                async move { c.execute_raw("x", None::<&()>).await }
            })
            .collect(),
    );
    let serve = async {
        for _ in 0..3 {
            peer.recv().await;
        }
        peer.send("this is not json").await;
        peer
    };
    let (results, _peer) = tokio::join!(calls, serve);
    for r in results {
        let e = r.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Protocol, "{e}");
        assert!(e.is_closed());
        assert!(e.to_string().contains("this is not json"), "{e}");
    }
    // Later calls fail at once with the same error.
    let e = client.execute_raw("x", None::<&()>).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Protocol);
    assert_eq!(client.closed().await.kind(), ErrorKind::Protocol);
    assert_eq!(client.connection_state(), ConnectionState::Idle);
}

#[tokio::test]
async fn oversized_line_is_a_protocol_error() {
    let mut config = Config::new();
    config.max_message_size(1000);
    let (client, mut peer) = pair_with(&config, 1 << 16).await;
    let serve = async {
        let req = peer.recv().await;
        peer.reply(&req, json!("x".repeat(5000))).await;
        peer
    };
    let (r, _peer) = tokio::join!(client.execute_raw("big", None::<&()>), serve);
    let e = r.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Protocol);
    assert!(e.to_string().contains("1000"), "{e}");
}

#[tokio::test]
async fn disconnect_mid_command_fails_all_pending_callers() {
    let (client, mut peer) = pair().await;
    let mut watch = client.watch_connection_state();
    let calls = futures_join_all(
        (0..10)
            .map(|_| {
                let c = client.clone();
                async move { c.execute_raw("x", None::<&()>).await }
            })
            .collect(),
    );
    let serve = async move {
        for _ in 0..10 {
            peer.recv().await;
        }
        drop(peer);
    };
    let (results, ()) = tokio::join!(calls, serve);
    for r in results {
        let e = r.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Closed, "{e}");
    }
    assert_eq!(
        watch.next().await.unwrap().state,
        ConnectionState::Disconnecting
    );
    assert_eq!(watch.next().await.unwrap().state, ConnectionState::Idle);
}

#[tokio::test]
async fn timeout_after_send_then_late_reply_is_dropped() {
    let (client, mut peer) = pair().await;
    let short = client.with_timeout(Some(Duration::from_millis(100)));
    let (r, req) = tokio::join!(short.execute_raw("slow", None::<&()>), peer.recv());
    let e = r.unwrap_err();
    assert!(e.is_timeout());
    assert_eq!(e.timeout_stage(), Some(TimeoutStage::Unanswered));
    // The late reply must not reach the next caller.
    peer.reply(&req, json!("late")).await;
    let serve = async {
        let req2 = peer.recv().await;
        assert_ne!(req2["id"], req["id"], "ids never collide");
        peer.reply(&req2, json!("fresh")).await;
    };
    let (r, ()) = tokio::join!(client.execute_raw("next", None::<&()>), serve);
    assert_eq!(r.unwrap(), json!("fresh"));
}

#[tokio::test]
async fn timeout_before_send_says_not_sent() {
    // A tiny pipe the peer never reads: the writer blocks.
    let mut config = Config::new();
    config.call_timeout(Some(Duration::from_millis(100)));
    let (client, _peer) = pair_with(&config, 256).await;
    let big = json!({"data": "x".repeat(10_000)});
    let e = client.execute_raw("big", Some(&big)).await.unwrap_err();
    assert_eq!(e.timeout_stage(), Some(TimeoutStage::NotSent), "{e}");
    let e = client.execute_raw("queued", None::<&()>).await.unwrap_err();
    assert_eq!(e.timeout_stage(), Some(TimeoutStage::NotSent), "{e}");
    // close() completes although the writer is stuck on a peer that does not read.
    tokio::time::timeout(Duration::from_secs(5), client.close())
        .await
        .expect("disconnect completes");
}

#[tokio::test]
async fn dropped_call_future_does_not_corrupt_the_connection() {
    let (client, mut peer) = pair().await;
    {
        let call = client.execute_raw("abandoned", None::<&()>);
        tokio::pin!(call);
        // Poll until the request is on the wire, then drop the future.
        let req = tokio::select! {
            _ = &mut call => panic!("no reply was sent"),
            req = peer.recv() => req,
        };
        assert_eq!(req["execute"], "abandoned");
        peer.reply(&req, json!("for nobody")).await;
    }
    let serve = async {
        let req = peer.recv().await;
        assert_eq!(req["execute"], "after");
        peer.reply(&req, json!("mine")).await;
    };
    let (r, ()) = tokio::join!(client.execute_raw("after", None::<&()>), serve);
    assert_eq!(r.unwrap(), json!("mine"));
}

#[tokio::test]
async fn call_dropped_before_sending_is_not_sent() {
    let (client, mut peer) = pair().await;
    // Never polled: nothing is queued at all.
    drop(client.execute_raw("never-polled", None::<&()>));
    let serve = async {
        let req = peer.recv().await;
        assert_eq!(req["execute"], "real");
        peer.reply(&req, json!(1)).await;
    };
    let (r, ()) = tokio::join!(client.execute_raw("real", None::<&()>), serve);
    assert_eq!(r.unwrap(), json!(1));
}

#[tokio::test]
async fn calls_without_id_are_matched_in_order() {
    let (client, mut peer) = pair().await;
    let a = client.execute_raw_without_id("a", None::<&()>);
    let b = client.execute_raw_without_id("b", None::<&()>);
    let serve = async {
        let ra = peer.recv().await;
        let rb = peer.recv().await;
        assert!(ra.get("id").is_none() && rb.get("id").is_none());
        peer.reply(&ra, json!(ra["execute"])).await;
        peer.reply(&rb, json!(rb["execute"])).await;
    };
    let (ra, rb, ()) = tokio::join!(a, b, serve);
    assert_eq!(ra.unwrap(), json!("a"));
    assert_eq!(rb.unwrap(), json!("b"));
}

#[tokio::test]
async fn events_before_the_reply_are_seen_by_execute_and_wait() {
    let (client, mut peer) = pair().await;
    #[derive(Serialize)]
    struct Go {}
    impl Command for Go {
        const NAME: &'static str = "go";
        type Reply = qmp::Empty;
    }
    let serve = async {
        let req = peer.recv().await;
        peer.send(r#"{"event": "TICK", "data": {"n": 1}, "timestamp": {"seconds": 1, "microseconds": 0}}"#).await;
        peer.send(r#"{"event": "OTHER", "timestamp": {"seconds": 1, "microseconds": 0}}"#)
            .await;
        peer.send(r#"{"event": "TICK", "data": {"n": 2}, "timestamp": {"seconds": 1, "microseconds": 0}}"#).await;
        peer.reply(&req, json!({})).await;
    };
    let (r, ()) = tokio::join!(client.execute_and_wait(&Go {}, |t: &Tick| t.n == 2), serve);
    let (_, tick) = r.unwrap();
    assert_eq!(tick, Tick { n: 2 });
}

#[tokio::test]
async fn lagging_subscriber_is_told_how_many_it_missed() {
    let mut config = Config::new();
    config.event_capacity(4);
    let (client, mut peer) = pair_with(&config, 1 << 16).await;
    let mut raw = client.subscribe_raw();
    let mut ticks = client.subscribe::<Tick>();
    for n in 0..10 {
        peer.send(&format!(
            r#"{{"event": "TICK", "data": {{"n": {n}}}, "timestamp": {{"seconds": 1, "microseconds": 2}}}}"#
        ))
        .await;
    }
    // A round trip guarantees the reader has routed all ten events.
    let serve = async {
        let req = peer.recv().await;
        peer.reply(&req, json!({})).await;
    };
    let (r, ()) = tokio::join!(client.execute_raw("sync", None::<&()>), serve);
    r.unwrap();
    // The buffer keeps the first four; the six that did not fit are counted where
    // they are missing (after the fourth).
    for n in 0..4 {
        let ev = raw.next().await.unwrap().unwrap();
        assert_eq!(ev.name(), "TICK");
        assert_eq!(ev.data_json(), Some(format!(r#"{{"n": {n}}}"#).as_str()));
        assert_eq!(ev.timestamp().microseconds, 2);
        assert_eq!(ticks.next().await.unwrap().unwrap(), Tick { n });
    }
    let e = raw.next().await.unwrap().unwrap_err();
    assert_eq!(e.missed_events(), Some(6));
    let e = ticks.next().await.unwrap().unwrap_err();
    assert_eq!(e.missed_events(), Some(6));
    drop(peer);
    // Streams end when the connection closes.
    let mut rest = 0;
    while let Some(item) = raw.next().await {
        item.unwrap();
        rest += 1;
    }
    assert_eq!(rest, 0);
}

#[tokio::test]
async fn typed_event_decode_error_names_the_member() {
    let (client, mut peer) = pair().await;
    let mut ticks = client.subscribe::<Tick>();
    peer.send(r#"{"event": "TICK", "data": {"n": "one"}, "timestamp": {"seconds": 1, "microseconds": 0}}"#)
        .await;
    let e = ticks.next().await.unwrap().unwrap_err();
    assert!(e.is_decode());
    assert_eq!(e.command(), Some("TICK"));
    assert_eq!(e.decode_path(), Some("data.n"));
}

#[tokio::test]
async fn oob_and_fd_preconditions_fail_locally() {
    let mut config = Config::new();
    config.negotiate_oob(false);
    let (a, b) = tokio::io::duplex(4096);
    let peer = async move {
        let (r, w) = tokio::io::split(b);
        let mut p = Peer {
            lines: BufReader::new(r).lines(),
            w,
        };
        p.send(GREETING).await;
        let caps = p.recv().await;
        assert_eq!(caps["arguments"]["enable"], json!([]));
        p.reply(&caps, json!({})).await;
        p
    };
    let (client, _peer) = tokio::join!(config.connect_stream(a), peer);
    let client = client.unwrap();
    assert!(!client.oob_enabled());
    let e = client
        .execute_oob_raw("migrate-pause", None::<&()>)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported);
    let fd = std::fs::File::open("/dev/null").unwrap();
    let e = client
        .execute_raw_with_fds("getfd", Some(&json!({"fdname": "x"})), vec![fd.into()])
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported);
}

#[tokio::test]
async fn bad_greeting_and_refused_negotiation() {
    let (a, b) = tokio::io::duplex(4096);
    let peer = async move {
        let mut b = b;
        b.write_all(b"{\"hello\": 1}\n").await.unwrap();
        b
    };
    let config = Config::new();
    let (r, _b) = tokio::join!(config.connect_stream(a), peer);
    assert_eq!(r.unwrap_err().kind(), ErrorKind::Handshake);

    let (a, b) = tokio::io::duplex(4096);
    let peer = async move {
        let (r, w) = tokio::io::split(b);
        let mut p = Peer {
            lines: BufReader::new(r).lines(),
            w,
        };
        p.send(GREETING).await;
        let caps = p.recv().await;
        p.send(
            &json!({"error": {"class": "GenericError", "desc": "no"}, "id": caps["id"]})
                .to_string(),
        )
        .await;
        p
    };
    let mut watch = config.watch_connection_state();
    let (r, _p) = tokio::join!(config.connect_stream(a), peer);
    let e = r.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Handshake);
    assert!(e.to_string().contains("GenericError: no"), "{e}");
    assert_eq!(
        watch.next().await.unwrap().state,
        ConnectionState::Connecting
    );
    assert_eq!(watch.next().await.unwrap().state, ConnectionState::Idle);
}

#[tokio::test]
async fn connect_timeout_when_no_greeting() {
    let (a, _b) = tokio::io::duplex(4096);
    let mut config = Config::new();
    config.connect_timeout(Some(Duration::from_millis(50)));
    let e = config.connect_stream(a).await.unwrap_err();
    assert!(e.is_timeout());
}

#[tokio::test]
async fn dropping_every_handle_closes_the_connection() {
    let (client, mut peer) = pair().await;
    drop(client);
    assert!(peer.lines.next_line().await.unwrap().is_none());
}

#[tokio::test]
async fn many_concurrent_calls_are_coalesced_and_all_answered() {
    let (client, mut peer) = pair().await;
    let n = 500;
    let calls = futures_join_all(
        (0..n)
            .map(|i| {
                let c = client.clone();
                async move { c.execute_raw("echo", Some(&json!({"i": i}))).await }
            })
            .collect(),
    );
    let serve = async {
        for _ in 0..n {
            let req = peer.recv().await;
            peer.reply(&req, req["arguments"]["i"].clone()).await;
        }
    };
    let (results, ()) = tokio::join!(calls, serve);
    for (i, r) in results.into_iter().enumerate() {
        assert_eq!(r.unwrap(), json!(i));
    }
}

#[test]
fn blocking_wrapper_over_a_socket_pair() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("qmp.sock");
    let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
    let server = std::thread::spawn(move || {
        use std::io::{BufRead, Write};
        let (s, _) = listener.accept().unwrap();
        let mut w = s.try_clone().unwrap();
        writeln!(w, "{GREETING}\r").unwrap();
        for line in std::io::BufReader::new(s).lines() {
            let req: Value = serde_json::from_str(&line.unwrap()).unwrap();
            let ret = if req["execute"] == "query-version" {
                version_json()
            } else {
                json!({})
            };
            writeln!(w, "{}\r", json!({"return": ret, "id": req["id"]})).unwrap();
            if req["execute"] == "stop" {
                writeln!(w, r#"{{"event": "TICK", "data": {{"n": 5}}, "timestamp": {{"seconds": 0, "microseconds": 0}}}}"#).unwrap();
            }
        }
    });
    let client = qmp::blocking::Client::connect_unix(&Config::new(), &path).unwrap();
    assert!(client.as_async().fd_passing());
    assert_eq!(client.execute(&QueryVersion {}).unwrap().qemu.major, 10);
    let mut ticks = client.subscribe::<Tick>().unwrap();
    client.execute_raw("stop", None::<&()>).unwrap();
    let t = ticks.recv_timeout(Duration::from_secs(5)).unwrap().unwrap();
    assert_eq!(t.n, 5);
    client.close().unwrap();
    server.join().unwrap();
}

/// On a current-thread runtime the reader yields during a flood (it never waits for
/// subscribers), so a subscriber that keeps reading loses nothing.
#[tokio::test(flavor = "current_thread")]
async fn flood_on_a_current_thread_runtime_reaches_a_reading_subscriber() {
    const N: u32 = 20_000;
    // A pipe big enough that one read returns thousands of events.
    let (client, mut peer) = pair_with(&Config::new(), 4 << 20).await;
    let mut ticks = client.subscribe::<Tick>();
    let counter = tokio::spawn(async move {
        let mut n = 0;
        while n < N {
            let t = ticks.next().await.unwrap().expect("no event missed");
            assert_eq!(t.n, n);
            n += 1;
        }
        n
    });
    let mut flood = String::new();
    for n in 0..N {
        flood.push_str(&format!(
            "{{\"event\": \"TICK\", \"data\": {{\"n\": {n}}}, \"timestamp\": {{\"seconds\": 1, \"microseconds\": 0}}}}\r\n"
        ));
    }
    let writer = tokio::spawn(async move {
        peer.w.write_all(flood.as_bytes()).await.unwrap();
        peer
    });
    assert_eq!(counter.await.unwrap(), N);
    let _peer = writer.await.unwrap();
}

/// Over a Unix socket, callers write directly when nothing is queued; a request too
/// big for the socket buffer is finished by the writer task, and requests queued
/// meanwhile go out after it, intact and in order.
#[tokio::test]
async fn big_and_small_requests_over_a_unix_socket_stay_intact() {
    let (ours, theirs) = tokio::net::UnixStream::pair().unwrap();
    let peer = async move {
        let (r, w) = tokio::io::split(theirs);
        let mut p = Peer {
            lines: BufReader::new(r).lines(),
            w,
        };
        p.send(GREETING).await;
        let caps = p.recv().await;
        p.reply(&caps, json!({})).await;
        p
    };
    let config = Config::new();
    let (client, peer) = tokio::join!(config.connect_unix_stream(ours), peer);
    let client = client.unwrap();
    assert!(client.fd_passing());
    let mut peer = peer;
    let big = "b".repeat(4 << 20);
    let mut calls = Vec::new();
    for i in 0..20 {
        let c = client.clone();
        let arg = if i % 5 == 0 {
            big.clone()
        } else {
            format!("s{i}")
        };
        calls.push(tokio::spawn(async move {
            c.execute_raw("echo", Some(&json!({ "v": arg }))).await
        }));
    }
    let serve = async {
        for _ in 0..20 {
            let req = peer.recv().await;
            let v = req["arguments"]["v"].as_str().unwrap();
            assert!(
                v == big || (v.starts_with('s') && v.len() < 4),
                "corrupt request"
            );
            peer.reply(&req, json!(v.len())).await;
        }
    };
    let ((), results) = tokio::join!(serve, async {
        let mut out = Vec::new();
        for c in calls {
            out.push(c.await.unwrap());
        }
        out
    });
    for (i, r) in results.into_iter().enumerate() {
        let expected = if i % 5 == 0 {
            4 << 20
        } else {
            format!("s{i}").len()
        };
        assert_eq!(r.unwrap(), json!(expected));
    }
}
