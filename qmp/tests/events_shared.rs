//! Event subscriptions seen from a program: the `subscribe_all*` names (and the
//! deprecated `subscribe_set*` ones they replace) deliver the same events.
//!
//! The peer is written by hand over an in-memory stream, so each test chooses the
//! exact event lines (names, data, timestamps) the client receives.

use std::time::Duration;

use qmp::{Client, Config, EventSet, Overflow};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, DuplexStream};

const GREETING: &str = r#"{"QMP": {"version": {"qemu": {"micro": 0, "minor": 0, "major": 10}, "package": "test"}, "capabilities": []}}"#;

/// A peer that negotiates, answers the client's next request with `{}` followed (in
/// the same write) by `events`, one line each, and then closes the connection.
async fn peer(stream: DuplexStream, events: Vec<String>) {
    let (r, mut w) = tokio::io::split(stream);
    let mut lines = BufReader::new(r).lines();
    let reply = |line: &str| {
        let req: Value = serde_json::from_str(line).expect("the client sends JSON");
        format!("{}\r\n", json!({"return": {}, "id": req["id"]}))
    };
    w.write_all(format!("{GREETING}\r\n").as_bytes())
        .await
        .unwrap();
    let Ok(Some(caps)) = lines.next_line().await else {
        return;
    };
    w.write_all(reply(&caps).as_bytes()).await.unwrap();
    let Ok(Some(request)) = lines.next_line().await else {
        return;
    };
    let mut out = reply(&request);
    for ev in &events {
        out.push_str(ev);
        out.push_str("\r\n");
    }
    w.write_all(out.as_bytes()).await.unwrap();
    w.shutdown().await.unwrap();
}

/// Connects to a [`peer`] that will send `events` after the client's first request.
async fn connect(events: Vec<String>) -> Client {
    let (a, b) = tokio::io::duplex(64 * 1024);
    tokio::spawn(peer(b, events));
    Config::new().connect_stream(a).await.unwrap()
}

/// The line of an event named `name` with data `{"n": n}` stamped `seconds`.`micros`.
fn line(name: &str, n: u64, seconds: i64, micros: i64) -> String {
    json!({
        "event": name,
        "data": {"n": n},
        "timestamp": {"seconds": seconds, "microseconds": micros},
    })
    .to_string()
}

/// A small event set: the event name and its `n`.
#[derive(Debug, Clone, PartialEq)]
struct Named {
    name: String,
    n: u64,
}

impl EventSet for Named {
    fn decode(name: &str, data: Option<&str>) -> Result<Self, serde_json::Error> {
        #[derive(serde::Deserialize)]
        struct Data {
            n: u64,
        }
        let data: Data = serde_json::from_str(data.unwrap_or("{}"))?;
        Ok(Named {
            name: name.to_owned(),
            n: data.n,
        })
    }
}

/// Everything a stream yields until it ends (bounded in time: a stall fails).
async fn collect<T>(mut stream: qmp::EventStream<T>) -> Vec<T>
where
    T: Send + 'static,
{
    let mut out = Vec::new();
    loop {
        match tokio::time::timeout(Duration::from_secs(20), stream.next()).await {
            Ok(Some(Ok(item))) => out.push(item),
            Ok(Some(Err(e))) => panic!("unexpected error item: {e}"),
            Ok(None) => return out,
            Err(_) => panic!("stream stalled after {} items", out.len()),
        }
    }
}

fn some_events() -> (Vec<String>, Vec<Named>) {
    let names = ["STOP", "RESUME", "JOB_STATUS_CHANGE", "STOP", "SHUTDOWN"];
    let lines = names
        .iter()
        .enumerate()
        .map(|(i, name)| line(name, i as u64, 1_700_000_000 + i as i64, 10 * i as i64))
        .collect();
    let expected = names
        .iter()
        .enumerate()
        .map(|(i, name)| Named {
            name: (*name).to_owned(),
            n: i as u64,
        })
        .collect();
    (lines, expected)
}

/// The deprecated `subscribe_set*` names forward to `subscribe_all*`: subscribed side
/// by side on one connection, each pair yields the same events, in the order sent.
#[tokio::test]
#[allow(deprecated)]
async fn deprecated_subscribe_set_names_deliver_what_subscribe_all_delivers() {
    let (lines, expected) = some_events();
    let client = connect(lines).await;
    let all = client.subscribe_all::<Named>();
    let set = client.subscribe_set::<Named>();
    let all_with = client.subscribe_all_with::<Named>(Overflow::Backpressure);
    let set_with = client.subscribe_set_with::<Named>(Overflow::Backpressure);
    let all_shared = client.subscribe_all_shared::<Named>();
    let set_shared = client.subscribe_set_shared::<Named>();
    let all_shared_with = client.subscribe_all_shared_with::<Named>(Overflow::Backpressure);
    let set_shared_with = client.subscribe_set_shared_with::<Named>(Overflow::Backpressure);
    client
        .execute_raw::<Value>("go", None)
        .await
        .expect("the peer answers");

    let all = collect(all).await;
    assert_eq!(all, expected);
    assert_eq!(collect(set).await, all, "subscribe_set");
    assert_eq!(collect(all_with).await, all, "subscribe_all_with");
    assert_eq!(collect(set_with).await, all, "subscribe_set_with");
    let unshare = |v: Vec<std::sync::Arc<Named>>| -> Vec<Named> {
        v.into_iter().map(|a| (*a).clone()).collect()
    };
    assert_eq!(
        unshare(collect(all_shared).await),
        all,
        "subscribe_all_shared"
    );
    assert_eq!(
        unshare(collect(set_shared).await),
        all,
        "subscribe_set_shared"
    );
    assert_eq!(
        unshare(collect(all_shared_with).await),
        all,
        "subscribe_all_shared_with"
    );
    assert_eq!(
        unshare(collect(set_shared_with).await),
        all,
        "subscribe_set_shared_with"
    );
}

/// `next_ref` (lending `&S`, decoded once per batch for all the subscribers) yields,
/// to each of many subscribers of one connection, every event in the order sent,
/// the same values `next` yields; an event that does not decode is an error item, in
/// its place, for each of them, and the stream goes on after it.
#[test]
fn next_ref_lends_every_event_to_every_subscriber_in_order() {
    const N: u64 = 3000;
    const SUBSCRIBERS: usize = 12;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        // Every 500th event has data the set cannot decode (`n` is a string).
        let lines: Vec<String> = (0..N)
            .map(|i| {
                if i % 500 == 250 {
                    json!({"event": "BAD", "data": {"n": "x"}}).to_string()
                } else {
                    line(if i % 2 == 0 { "EVEN" } else { "ODD" }, i, 1, 0)
                }
            })
            .collect();
        let client = connect(lines).await;
        let mut tasks = Vec::new();
        for _ in 0..SUBSCRIBERS {
            let mut sub = client.subscribe_all_shared_with::<Named>(Overflow::Backpressure);
            tasks.push(tokio::spawn(async move {
                let mut seen = Vec::new();
                while let Some(item) = sub.next_ref().await {
                    seen.push(item.cloned().map_err(|e| e.to_string()));
                }
                seen
            }));
        }
        let owned = client.subscribe_all_shared_with::<Named>(Overflow::Backpressure);
        client.execute_raw::<Value>("go", None).await.unwrap();
        let by_next: Vec<_> = {
            let mut owned = owned;
            let mut out = Vec::new();
            while let Some(item) = owned.next().await {
                out.push(item.map(|v| (*v).clone()).map_err(|e| e.to_string()));
            }
            out
        };
        assert_eq!(by_next.len(), N as usize);
        for (i, item) in by_next.iter().enumerate() {
            match item {
                Ok(v) => assert_eq!(v.n, i as u64, "event {i}"),
                Err(e) => {
                    assert_eq!(i % 500, 250, "event {i} failed: {e}");
                    assert!(e.contains("BAD"), "the error names the event: {e}");
                }
            }
        }
        for t in tasks {
            let seen = t.await.unwrap();
            assert_eq!(seen, by_next, "next_ref and next disagree");
        }
    });
}

/// A lossy `next_ref` subscriber that reads slowly with a small buffer: every event
/// is either lent or counted in a lag error, and the ones lent come in order.
#[tokio::test]
async fn next_ref_accounts_for_every_event_it_misses() {
    const N: u64 = 5000;
    let lines = (0..N).map(|i| line("E", i, 1, 0)).collect();
    let mut config = Config::new();
    config.event_capacity(16);
    let (a, b) = tokio::io::duplex(64 * 1024);
    tokio::spawn(peer(b, lines));
    let client = config.connect_stream(a).await.unwrap();
    let mut sub = client.subscribe_all_shared::<Named>();
    client.execute_raw::<Value>("go", None).await.unwrap();
    let (mut lent, mut missed, mut last) = (0u64, 0u64, None::<u64>);
    while let Some(item) = sub.next_ref().await {
        match item {
            Ok(v) => {
                assert!(
                    last.is_none_or(|l| v.n > l),
                    "out of order: {last:?} then {}",
                    v.n
                );
                last = Some(v.n);
                lent += 1;
                if lent % 8 == 0 {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
            Err(e) => missed += e.missed_events().expect("only lag errors"),
        }
    }
    assert_eq!(lent + missed, N, "lent {lent} + missed {missed}");
    assert!(
        missed > 0,
        "the buffer of 16 never overflowed: the test shows nothing"
    );
}

/// A typed event of the test lines: `{"n": n}` named `EVEN`.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
struct Even {
    n: u64,
}

impl qmp::Event for Even {
    const NAME: &'static str = "EVEN";
}

/// `next_stamped` gives each event with the exact `timestamp` the peer wrote on its
/// line, for every kind of subscription: one type, every event (owned and shared),
/// raw, and lent through `next_ref_stamped`; a line without a timestamp gives zero.
#[tokio::test]
async fn typed_events_carry_the_timestamp_the_peer_sent() {
    // (name, n, seconds, microseconds); the last one has no timestamp member.
    let sent: [(&str, u64, i64, i64); 4] = [
        ("EVEN", 0, 1_700_000_001, 5),
        ("ODD", 1, 1_700_000_002, 999_999),
        ("EVEN", 2, -1, -1),
        ("EVEN", 4, 0, 0),
    ];
    let mut lines: Vec<String> = sent[..3]
        .iter()
        .map(|&(name, n, s, us)| line(name, n, s, us))
        .collect();
    lines.push(json!({"event": "EVEN", "data": {"n": 4}}).to_string());
    let client = connect(lines).await;
    let mut one = client.subscribe::<Even>();
    let mut one_shared = client.subscribe_shared::<Even>();
    let mut all = client.subscribe_all::<Named>();
    let mut all_shared = client.subscribe_all_shared::<Named>();
    let mut lent = client.subscribe_all_shared::<Named>();
    let mut raw = client.subscribe_raw();
    client.execute_raw::<Value>("go", None).await.unwrap();

    let stamp = |s: i64, us: i64| qmp::message::Timestamp {
        seconds: s,
        microseconds: us,
    };
    let evens: Vec<_> = sent.iter().filter(|e| e.0 == "EVEN").collect();
    for &&(_, n, s, us) in &evens {
        let got = one.next_stamped().await.unwrap().unwrap();
        assert_eq!((got.event.n, got.timestamp), (n, stamp(s, us)), "subscribe");
        let got = one_shared.next_stamped().await.unwrap().unwrap();
        assert_eq!(
            (got.event.n, got.timestamp),
            (n, stamp(s, us)),
            "subscribe_shared"
        );
    }
    for &(name, n, s, us) in &sent {
        let want = (name.to_owned(), n, stamp(s, us));
        let got = all.next_stamped().await.unwrap().unwrap();
        assert_eq!(
            (got.event.name, got.event.n, got.timestamp),
            want,
            "subscribe_all"
        );
        let got = all_shared.next_stamped().await.unwrap().unwrap();
        let event = (*got.event).clone();
        assert_eq!(
            (event.name, event.n, got.timestamp),
            want,
            "subscribe_all_shared"
        );
        let got = lent.next_ref_stamped().await.unwrap().unwrap();
        let event = got.event.clone();
        assert_eq!(
            (event.name, event.n, got.timestamp),
            want,
            "next_ref_stamped"
        );
        let got = raw.next_stamped().await.unwrap().unwrap();
        assert_eq!(got.timestamp, got.event.timestamp(), "raw: the event's own");
        assert_eq!(
            (got.event.name(), got.timestamp),
            (name, stamp(s, us)),
            "raw"
        );
    }
    assert!(one.next_stamped().await.is_none(), "the connection closed");
    assert!(all.next().await.is_none());
}
